/*
 * vportfs command line.  QEMU-style "key=value,key=value" specs, with ",,"
 * standing for a literal comma inside a value, as QEMU's option syntax does.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vportfs/options.h"
#include "vportfs/utf8.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Whole-string unsigned decimal (or 0x/0 prefixed) within [min, max]. */
static int parse_uint(const char *s, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "4096", "64K", "1M", "1G": 1 byte .. 1 GiB. */
static int parse_size(const char *s, size_t *out)
{
	unsigned long v, mul = 1;
	char num[32], *end;
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K': case 'k':
		mul = 1ul << 10;
		break;
	case 'M': case 'm':
		mul = 1ul << 20;
		break;
	case 'G': case 'g':
		mul = 1ul << 30;
		break;
	default:
		break;
	}
	if (mul != 1)
		num[n - 1] = '\0';
	if (!num[0] || num[0] == '-' || num[0] == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(num, &end, 10);
	if (errno || *end || v == 0 || v > (1ul << 30) / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/*
 * Split the next "key=value" item off *p (advancing it), undoing ",,"
 * escapes into buf.  Returns 1 with key/value pointing into buf, 0 at the
 * end, -EINVAL if the item is too long.
 */
static int next_item(const char **p, char *buf, size_t len, char **key,
		     char **value)
{
	const char *s = *p;
	size_t n = 0;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s == ',') {
			if (s[1] != ',')
				break;
			s++;
		}
		if (n + 1 >= len)
			return -EINVAL;
		buf[n++] = *s;
	}
	buf[n] = '\0';
	*p = *s ? s + 1 : s;
	*key = buf;
	*value = strchr(buf, '=');
	if (*value)
		*(*value)++ = '\0';
	return 1;
}

int vp_opts_parse_port(const char *spec, struct vp_port_spec *out, char *err,
		       size_t errlen)
{
	char item[VSER_NAME_MAX + 16], *key, *value;
	bool have_name = false;
	int rc;

	memset(out, 0, sizeof(*out));
	out->nr = -1;
	while ((rc = next_item(&spec, item, sizeof(item), &key, &value)) > 0) {
		unsigned long v;

		if (!value)
			return fail(err, errlen,
				    "--port: '%s' needs a value (key=value)", key);
		if (!strcmp(key, "name")) {
			size_t n = strlen(value);

			if (n > VSER_NAME_MAX)
				return fail(err, errlen,
					    "--port: name longer than %d bytes",
					    VSER_NAME_MAX);
			if (!vp_utf8_valid(value))
				return fail(err, errlen,
					    "--port: name is not valid UTF-8");
			memcpy(out->name, value, n + 1);
			have_name = true;
		} else if (!strcmp(key, "nr")) {
			if (parse_uint(value, 0, VSER_MAX_PORTS_LIMIT - 1, &v))
				return fail(err, errlen,
					    "--port: nr '%s' is not a number "
					    "from 0 to %d", value,
					    VSER_MAX_PORTS_LIMIT - 1);
			out->nr = (int)v;
		} else if (!strcmp(key, "console")) {
			if (parse_bool(value, &out->console))
				return fail(err, errlen,
					    "--port: console '%s' is not on or off",
					    value);
		} else if (!strcmp(key, "ring-size")) {
			if (parse_size(value, &out->ring_size))
				return fail(err, errlen,
					    "--port: ring-size '%s' is not a size "
					    "from 1 to 1G (suffixes K, M, G)",
					    value);
		} else if (!strcmp(key, "chardev")) {
			size_t n = strlen(value);

			if (out->nchardevs == VP_PORT_MAX_CHARDEVS)
				return fail(err, errlen,
					    "--port: more than %d chardev=",
					    VP_PORT_MAX_CHARDEVS);
			if (n == 0 || n > CHR_ID_MAX)
				return fail(err, errlen,
					    "--port: chardev= needs an id of 1 "
					    "to %d bytes",
					    CHR_ID_MAX);
			for (unsigned i = 0; i < out->nchardevs; i++)
				if (!strcmp(out->chardevs[i], value))
					return fail(err, errlen,
						    "--port: chardev=%s given "
						    "twice",
						    value);
			memcpy(out->chardevs[out->nchardevs++], value, n + 1);
		} else {
			return fail(err, errlen, "--port: unknown key '%s'", key);
		}
	}
	if (rc < 0)
		return fail(err, errlen, "--port: item too long");
	if (!have_name && !out->console)
		return fail(err, errlen, "--port: needs name=NAME");
	/* Linux and QEMU keep port 0 a console: a guest without MULTIPORT
	 * sees only port 0, as its console. */
	if (out->nr == 0 && !out->console)
		return fail(err, errlen,
			    "--port name=%s: nr=0 is for a console port "
			    "(console=on), as in QEMU",
			    out->name);
	if (!out->console && out->ring_size &&
	    out->ring_size < VSER_PORT_RING_MIN)
		return fail(err, errlen,
			    "--port: ring-size of a serial port must be at "
			    "least 64K (one guest buffer, up to 32K, must fit)");
	return 0;
}

static int parse_mount_opts(struct vp_opts *o, const char *s, char *err,
			    size_t errlen)
{
	char item[64], *key, *value;
	int rc;

	while ((rc = next_item(&s, item, sizeof(item), &key, &value)) > 0) {
		unsigned long v;

		if (!strcmp(key, "allow_other") && !value) {
			o->allow_other = true;
		} else if (!strcmp(key, "default_permissions") && !value) {
			o->default_permissions = true;
		} else if (!strcmp(key, "uid") && value) {
			if (parse_uint(value, 0, UINT_MAX - 1, &v))
				return fail(err, errlen, "-o uid='%s': not a number",
					    value);
			o->uid = (uid_t)v;
		} else if (!strcmp(key, "gid") && value) {
			if (parse_uint(value, 0, UINT_MAX - 1, &v))
				return fail(err, errlen, "-o gid='%s': not a number",
					    value);
			o->gid = (gid_t)v;
		} else if (!strcmp(key, "mode") && value) {
			char *end;

			errno = 0;
			v = strtoul(value, &end, 8);
			if (errno || *end || !*value || v > 07777)
				return fail(err, errlen,
					    "-o mode='%s': not an octal mode",
					    value);
			o->mode = (mode_t)v;
		} else if (!strcmp(key, "session") && !value) {
			o->session = true;
		} else if (!strcmp(key, "exclusive") && !value) {
			o->exclusive = true;
		} else {
			return fail(err, errlen, "-o: unknown option '%s'", key);
		}
	}
	if (rc < 0)
		return fail(err, errlen, "-o: option too long");
	return 0;
}

enum {
	OPT_SOCKET = 256,
	OPT_FD,
	OPT_PORT,
	OPT_MAX_PORTS,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_CAPS,
	OPT_CHARDEV,
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "fd", required_argument, NULL, OPT_FD },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "chardev", required_argument, NULL, OPT_CHARDEV },
	{ "max-ports", required_argument, NULL, OPT_MAX_PORTS },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "print-capabilities", no_argument, NULL, OPT_CAPS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int check_ports(struct vp_opts *o, char *err, size_t errlen)
{
	for (unsigned i = 0; i < o->nports; i++) {
		const struct vp_port_spec *p = &o->ports[i];

		if (p->nr >= (int)o->max_ports)
			return fail(err, errlen,
				    "--port name=%s: nr=%d is not below "
				    "--max-ports %u", p->name, p->nr,
				    o->max_ports);
		for (unsigned j = 0; j < i; j++) {
			const struct vp_port_spec *q = &o->ports[j];

			if (p->nr >= 0 && p->nr == q->nr)
				return fail(err, errlen,
					    "--port: nr=%d given twice", p->nr);
			if (p->name[0] && !strcmp(p->name, q->name))
				return fail(err, errlen,
					    "--port: name '%s' given twice",
					    p->name);
		}
	}
	if (o->nports > o->max_ports)
		return fail(err, errlen, "%u ports do not fit in --max-ports %u",
			    o->nports, o->max_ports);
	return 0;
}

int vp_opts_parse(struct vp_opts *o, int argc, char **argv, char *err,
		  size_t errlen)
{
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->listen_fd = -1;
	o->max_ports = VSER_MAX_PORTS_DEFAULT;
	o->log_level = VP_LOG_WARN;
	o->uid = getuid();
	o->gid = getgid();
	o->mode = 0600;
	err[0] = '\0';
	opterr = 0;
	optind = 0; /* 0, not 1: makes glibc forget a half-parsed "-xo" group */
	while ((c = getopt_long(argc, argv, ":ho:V", long_opts, NULL)) != -1) {
		unsigned long v;

		switch (c) {
		case OPT_SOCKET:
			o->socket_path = optarg;
			break;
		case OPT_FD:
			if (parse_uint(optarg, 0, INT_MAX, &v))
				return fail(err, errlen, "--fd '%s': not a descriptor",
					    optarg);
			o->listen_fd = (int)v;
			break;
		case OPT_PORT: {
			struct vp_port_spec *p;

			if (o->nports == VP_OPTS_MAX_PORTS_SPECS)
				return fail(err, errlen, "too many --port options");
			p = realloc(o->ports, (o->nports + 1) * sizeof(*p));
			if (!p)
				return fail(err, errlen, "out of memory");
			o->ports = p;
			rc = vp_opts_parse_port(optarg, &p[o->nports], err,
						errlen);
			if (rc)
				return rc;
			o->nports++;
			break;
		}
		case OPT_CHARDEV: {
			const char **list;

			if (o->nchardevs == VP_OPTS_MAX_CHARDEVS)
				return fail(err, errlen,
					    "too many --chardev options");
			list = realloc(o->chardevs,
				       (o->nchardevs + 1) * sizeof(*list));
			if (!list)
				return fail(err, errlen, "out of memory");
			o->chardevs = list;
			list[o->nchardevs++] = optarg;
			break;
		}
		case OPT_MAX_PORTS:
			if (parse_uint(optarg, 1, VSER_MAX_PORTS_LIMIT, &v))
				return fail(err, errlen,
					    "--max-ports '%s': not a number from "
					    "1 to %d", optarg, VSER_MAX_PORTS_LIMIT);
			o->max_ports = (unsigned)v;
			break;
		case 'o':
			rc = parse_mount_opts(o, optarg, err, errlen);
			if (rc)
				return rc;
			break;
		case OPT_LOG_LEVEL:
			if (vp_log_parse_level(optarg, &o->log_level))
				return fail(err, errlen,
					    "--log-level '%s': use error, warn, "
					    "info or debug", optarg);
			break;
		case OPT_SYSLOG:
			o->syslog = true;
			break;
		case OPT_CAPS:
			o->print_capabilities = true;
			return 0;
		case 'h':
			o->help = true;
			return 0;
		case 'V':
			o->version = true;
			return 0;
		case ':':
			return fail(err, errlen, "option '%s' needs an argument",
				    argv[optind - 1]);
		default:
			/* A long option given a value it does not take:
			 * glibc sets optopt to the option's value, no
			 * character to print. */
			if (optopt && !strncmp(argv[optind - 1], "--", 2))
				return fail(err, errlen,
					    "option '%.*s' takes no argument",
					    (int)strcspn(argv[optind - 1], "="),
					    argv[optind - 1]);
			if (optopt)
				return fail(err, errlen, "unknown option '-%c'",
					    optopt);
			return fail(err, errlen, "unknown option '%s'",
				    argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return fail(err, errlen, "missing MOUNTPOINT (see --help)");
	if (optind + 1 < argc)
		return fail(err, errlen, "unexpected argument '%s'",
			    argv[optind + 1]);
	o->mountpoint = argv[optind];
	if (!o->socket_path == (o->listen_fd < 0))
		return fail(err, errlen, "give exactly one of --socket and --fd");
	return check_ports(o, err, errlen);
}

void vp_opts_free(struct vp_opts *o)
{
	free(o->ports);
	o->ports = NULL;
	o->nports = 0;
	free(o->chardevs);
	o->chardevs = NULL;
	o->nchardevs = 0;
}

void vp_opts_usage(FILE *out)
{
	fputs("Usage: vportfs [OPTIONS] MOUNTPOINT\n"
	      "\n"
	      "Serve a virtio-serial (virtio-console, multiport) device over\n"
	      "vhost-user and mount its ports as files, one per port.\n"
	      "\n"
	      "  --socket PATH        listen for the VMM on this unix socket\n"
	      "  --fd N               listen on inherited socket N instead\n"
	      "  --port SPEC          add a port: name=NAME[,nr=N][,console=on]\n"
	      "                       [,ring-size=SIZE][,chardev=ID]...\n"
	      "                       (repeatable; nr defaults\n"
	      "                       to the lowest free; ring-size: guest output\n"
	      "                       kept in the daemon, the latest on a console,\n"
	      "                       the unread on other ports (at least 64K),\n"
	      "                       default 1M)\n"
	      "  --chardev SPEC       a host backend, as QEMU's -chardev:\n"
	      "                       BACKEND,id=ID[,OPTION=VALUE]... with BACKEND\n"
	      "                       socket, pipe, file, log, pty, fd, stdio,\n"
	      "                       ringbuf or null (see docs/chardev.md);\n"
	      "                       --port ...,chardev=ID attaches it\n"
	      "                       (repeatable, several per port)\n"
	      "  --max-ports N        ports the device offers (default 31, max 127,\n"
	      "                       vhost-user's limit; UML guests: at most 31)\n"
	      "  -o OPT[,OPT]         session: an fd belongs to one guest session\n"
	      "                       exclusive: one open per port, as in the guest\n"
	      "                       allow_other (implies default_permissions),\n"
	      "                       default_permissions, uid=N, gid=N,\n"
	      "                       mode=OCTAL: as for any FUSE mount\n"
	      "  --log-level LEVEL    error, warn (default), info or debug\n"
	      "  --syslog             log to syslog instead of stderr\n"
	      "  --print-capabilities print the vhost-user backend capabilities\n"
	      "  -h, --help           show this help\n"
	      "  -V, --version        show the version\n"
	      "\n"
	      "In the mount: one file per port (touch NAME adds a port, rm NAME\n"
	      "removes it), user.vport.* extended attributes, and .events, a\n"
	      "stream of JSON lines.\n"
	      "\n"
	      "Runs in the foreground; SIGINT or SIGTERM unmounts, removes the\n"
	      "socket and exits 0; SIGHUP reopens the file and log chardevs\n"
	      "(after logrotate).  A bad option exits 2 with nothing mounted;\n"
	      "a chardev or socket that cannot be opened exits 1.\n",
	      out);
}
