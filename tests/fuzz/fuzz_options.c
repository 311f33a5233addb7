/*
 * libFuzzer harness for the daemon's command line (src/cli/options.c).
 *
 * The input is split at its NUL bytes into at most 64 arguments, each its
 * own malloc of exactly its size (so ASan sees any read past one), after a
 * first "vportfs"; argv[argc] is NULL, as main() gets it.  vp_opts_parse
 * runs on that (getopt_long permutes the array: it is ours), then
 * vp_opts_free, whatever the result.  Each argument is also given to
 * vp_opts_parse_port, the --port SPEC parser, on its own.
 *
 * getopt_long keeps state in globals; vp_opts_parse resets it (optind = 0)
 * on every call, which is what makes one process able to run it again and
 * again.  Contracts checked: on error err holds a NUL-terminated message;
 * on success the fields are consistent (exactly one of socket and fd, a
 * mountpoint that is one of our arguments, socket path and chardev specs
 * pointing into them, ports within max-ports).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/log.h"
#include "vportfs/options.h"

#define MAX_ARGS 64
#define ERR_LEN	 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Keep the fuzzer's output readable: options.c logs nothing, but
	 * utf8/log helpers may. */
	vp_log_set_level(VP_LOG_ERROR);
	return 0;
}

static void check_err(const char *err, const char *what)
{
	if (!memchr(err, '\0', ERR_LEN)) {
		fprintf(stderr, "%s: unterminated error message\n", what);
		abort();
	}
}

static bool is_arg(char *const *argv, int argc, const char *p)
{
	for (int i = 0; i < argc; i++)
		if (argv[i] == p)
			return true;
	return false;
}

/* A pointer into one of the arguments ("--socket=PATH" gives its tail). */
static bool in_arg(char *const *argv, int argc, const char *p)
{
	for (int i = 0; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static bool in_config(const struct vp_opts *o, const char *p)
{
	return o->config_text && p >= o->config_text &&
	       p <= o->config_text + (1u << 20);
}

static void check_opts(const struct vp_opts *o, char *const *argv, int argc)
{
	if (o->help || o->version || o->print_capabilities)
		return; /* "other fields may be incomplete" */
	/* Strings come from argv, or from a --config file's text. */
	if (!o->mountpoint || (!is_arg(argv, argc, o->mountpoint) &&
			       !in_config(o, o->mountpoint)))
		abort();
	if (o->socket_path && o->fd >= 0)
		abort();
	if (o->socket_path && !in_arg(argv, argc, o->socket_path) &&
	    !in_config(o, o->socket_path))
		abort();
	if (o->max_ports < 1 || o->max_ports > VSER_MAX_PORTS_LIMIT ||
	    o->nports > o->max_ports || (o->nports && !o->ports) ||
	    (o->nchardevs && !o->chardevs))
		abort();
	for (unsigned i = 0; i < o->nports; i++) {
		const struct vp_port_spec *p = &o->ports[i];

		if (p->nr >= (int)o->max_ports || p->nr < -1 ||
		    p->nchardevs > VP_PORT_MAX_CHARDEVS ||
		    !memchr(p->name, '\0', sizeof(p->name)))
			abort();
	}
	for (unsigned i = 0; i < o->nchardevs; i++)
		if (!in_arg(argv, argc, o->chardevs[i]))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2] = {NULL};
	char *own[MAX_ARGS + 1] = {NULL}; /* argv gets permuted: free these */
	struct vp_opts opts;
	struct vp_port_spec port;
	char *err = malloc(ERR_LEN);
	int argc = 0, rc;
	size_t i = 0;

	if (!err)
		return 0;
	own[argc] = strdup("vportfs");
	if (!own[argc])
		goto out;
	argv[argc] = own[argc];
	argc++;
	/* "a\0b" is two arguments, "a\0" one, "" none. */
	while (i < size && argc < MAX_ARGS + 1) {
		const uint8_t *nul = memchr(data + i, 0, size - i);
		size_t n = nul ? (size_t)(nul - (data + i)) : size - i;
		char *a = malloc(n + 1);

		if (!a)
			goto out;
		memcpy(a, data + i, n);
		a[n] = '\0';
		own[argc] = argv[argc] = a;
		argc++;
		i += n + 1;
	}
	argv[argc] = NULL;

	for (int k = 1; k < argc; k++) {
		err[0] = '\0';
		if (vp_opts_parse_port(argv[k], &port, err, ERR_LEN))
			check_err(err, "parse_port");
		else if (port.nr < -1 || port.nchardevs > VP_PORT_MAX_CHARDEVS)
			abort();
	}

	memset(err, 'X', ERR_LEN);
	rc = vp_opts_parse(&opts, argc, argv, err, ERR_LEN);
	check_err(err, "parse");
	if (rc == 0)
		check_opts(&opts, own, argc);
	else if (!err[0])
		abort(); /* an error always says why */
	vp_opts_free(&opts);
	/* Freed options may be freed again. */
	vp_opts_free(&opts);
out:
	for (int k = 0; k < MAX_ARGS + 1; k++)
		free(own[k]);
	free(err);
	return 0;
}
