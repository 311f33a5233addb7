/*
 * libFuzzer harness for the chardev option parser (src/chardev/spec.c).
 *
 * The input, cut at 8192 bytes (twice CHR_SPEC_MAX_LEN, so the length
 * limit is exercised) and at its first NUL, is one --chardev SPEC.  A spec
 * that parses is read through every getter, as a backend would, with keys
 * the backends use and with keys taken from the spec itself (so that the
 * getters see values the fuzzer chose), then checked for unused options
 * and freed.
 *
 * Besides memory errors (ASan) it checks the header's contracts: on error
 * the spec is zeroed and err holds one NUL-terminated line without control
 * characters.  err is a malloc of exactly errlen bytes (errlen chosen by
 * the input size, 0 included), filled with 'X' before each call, so that a
 * message not written, not terminated or written past errlen is caught.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/chr_spec.h"

#define INPUT_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys the backends read (src/chardev/), "id" (never found) and one
 * nobody reads. */
static const char *const keys[] = {
	"path",		"server",     "wait",	  "telnet",	 "nodelay",
	"reconnect-ms", "host",	      "port",	  "logfile",	 "logappend",
	"append",	"input-path", "max-size", "max-backups", "size",
	"link",		"in",	      "out",	  "id",		 "nonexistent",
};

/* err lengths worth trying: none, too short for "...", cut, roomy. */
static const size_t errlens[] = {0, 1, 3, 4, 5, 17, 64, 256};

struct errbuf {
	char *s;
	size_t len;
};

static void prep(struct errbuf *e)
{
	if (e->len)
		memset(e->s, 'X', e->len);
}

/* An action's result: 0, or -EINVAL/-ENOMEM with one line in err. */
static void check(int rc, const struct errbuf *e, const char *what)
{
	const char *nul;

	if (rc == 0 || e->len == 0)
		return;
	nul = memchr(e->s, '\0', e->len);
	if (!nul) {
		fprintf(stderr, "%s: error %d left err unterminated\n", what,
			rc);
		abort();
	}
	for (const char *p = e->s; p < nul; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f) {
			fprintf(stderr,
				"%s: error message has control byte 0x%02x: "
				"%s\n",
				what, c, e->s);
			abort();
		}
	}
}

static void read_all(struct chr_spec *s, const char *key, struct errbuf *e)
{
	const char *v;
	bool b;
	uint64_t u;

	v = chr_spec_str(s, key);
	if (v)
		(void)strlen(v);
	prep(e);
	check(chr_spec_bool(s, key, true, &b, e->s, e->len), e, "bool");
	prep(e);
	check(chr_spec_bool(s, key, false, &b, e->s, e->len), e, "bool");
	prep(e);
	check(chr_spec_u64(s, key, 7, UINT64_MAX, &u, e->s, e->len), e, "u64");
	prep(e);
	check(chr_spec_u64(s, key, 0, 65535, &u, e->s, e->len), e, "u64");
	prep(e);
	check(chr_spec_u64(s, key, 0, 0, &u, e->s, e->len), e, "u64");
	prep(e);
	check(chr_spec_size(s, key, 4096, UINT64_MAX, &u, e->s, e->len), e,
	      "size");
	prep(e);
	check(chr_spec_size(s, key, 0, UINT64_MAX / 2, &u, e->s, e->len), e,
	      "size");
	prep(e);
	check(chr_spec_size(s, key, 0, 1u << 20, &u, e->s, e->len), e, "size");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < INPUT_MAX ? size : INPUT_MAX;
	struct errbuf e = {
		.len = errlens[size % (sizeof(errlens) / sizeof(errlens[0]))],
	};
	struct chr_spec spec;
	char *text;
	int rc;

	text = malloc(n + 1);
	/* At least one byte: malloc(0) may return NULL. */
	e.s = malloc(e.len ? e.len : 1);
	if (!text || !e.s)
		goto out;
	memcpy(text, data, n);
	text[n] = '\0';

	prep(&e);
	rc = chr_spec_parse(text, &spec, e.s, e.len);
	check(rc, &e, "parse");
	if (rc) {
		/* On error the spec is left zeroed: every call must cope. */
		if (spec.backend || spec.id || spec.opts || spec.nopts)
			abort();
		(void)chr_spec_str(&spec, "path");
		prep(&e);
		if (chr_spec_check_unused(&spec, e.s, e.len))
			abort();
		chr_spec_free(&spec);
		goto out;
	}
	if (!spec.backend || !spec.id || spec.nopts >= CHR_SPEC_MAX_OPTS ||
	    (spec.nopts && !spec.opts))
		abort();
	/* Unused options are named before any getter ran... */
	prep(&e);
	rc = chr_spec_check_unused(&spec, e.s, e.len);
	if ((rc != 0) != (spec.nopts != 0))
		abort();
	check(rc, &e, "check_unused");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		read_all(&spec, keys[i], &e);
	/* ... and after some: read every other option given. */
	for (unsigned i = 0; i < spec.nopts; i += 2) {
		/* A copy: the getters must not depend on key being the
		 * spec's own string. */
		char *key = strdup(spec.opts[i].key);

		if (!key)
			break;
		read_all(&spec, key, &e);
		free(key);
	}
	(void)chr_spec_str(&spec, spec.backend);
	(void)chr_spec_str(&spec, spec.id);
	prep(&e);
	check(chr_spec_check_unused(&spec, e.s, e.len), &e, "check_unused");
	chr_spec_free(&spec);
	/* A freed spec may be freed again. */
	chr_spec_free(&spec);
out:
	free(e.s);
	free(text);
	return 0;
}
