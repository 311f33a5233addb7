/*
 * vportfs command line.  QEMU-style "key=value,key=value" specs, with ",,"
 * standing for a literal comma inside a value, as QEMU's option syntax does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	case 'K':
	case 'k':
		mul = 1ul << 10;
		break;
	case 'M':
	case 'm':
		mul = 1ul << 20;
		break;
	case 'G':
	case 'g':
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
				    "--port: '%s' needs a value (key=value)",
				    key);
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
					    "from 0 to %d",
					    value, VSER_MAX_PORTS_LIMIT - 1);
			out->nr = (int)v;
		} else if (!strcmp(key, "console")) {
			if (parse_bool(value, &out->console))
				return fail(
					err, errlen,
					"--port: console '%s' is not on or off",
					value);
		} else if (!strcmp(key, "ring-size")) {
			if (parse_size(value, &out->ring_size))
				return fail(
					err, errlen,
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
			return fail(err, errlen, "--port: unknown key '%s'",
				    key);
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
		return fail(
			err, errlen,
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
				return fail(err, errlen,
					    "-o uid='%s': not a number", value);
			o->uid = (uid_t)v;
		} else if (!strcmp(key, "gid") && value) {
			if (parse_uint(value, 0, UINT_MAX - 1, &v))
				return fail(err, errlen,
					    "-o gid='%s': not a number", value);
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
			return fail(err, errlen, "-o: unknown option '%s'",
				    key);
		}
	}
	if (rc < 0)
		return fail(err, errlen, "-o: option too long");
	return 0;
}

enum {
	OPT_SOCKET_PATH = 256,
	OPT_FD,
	OPT_SOCKET_GROUP,
	OPT_SOCKET_MODE,
	OPT_PORT,
	OPT_MAX_PORTS,
	OPT_LOG_LEVEL,
	OPT_SYSLOG,
	OPT_CAPS,
	OPT_CHARDEV,
	OPT_CONFIG,
};

/* QEMU's "Backend program conventions" (docs/interop/vhost-user.rst)
 * spell the socket --socket-path; --socket is the older alias. */
static const struct option long_opts[] = {
	{"socket-path", required_argument, NULL, OPT_SOCKET_PATH},
	{"socket", required_argument, NULL, OPT_SOCKET_PATH},
	{"fd", required_argument, NULL, OPT_FD},
	{"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
	{"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
	{"port", required_argument, NULL, OPT_PORT},
	{"chardev", required_argument, NULL, OPT_CHARDEV},
	{"max-ports", required_argument, NULL, OPT_MAX_PORTS},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"syslog", no_argument, NULL, OPT_SYSLOG},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"print-capabilities", no_argument, NULL, OPT_CAPS},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static int check_ports(struct vp_opts *o, char *err, size_t errlen)
{
	for (unsigned i = 0; i < o->nports; i++) {
		const struct vp_port_spec *p = &o->ports[i];

		if (p->nr >= (int)o->max_ports)
			return fail(err, errlen,
				    "--port name=%s: nr=%d is not below "
				    "--max-ports %u",
				    p->name, p->nr, o->max_ports);
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
		return fail(err, errlen,
			    "%u ports do not fit in --max-ports %u", o->nports,
			    o->max_ports);
	return 0;
}

/* A group name, or a number.  0, -ENOENT (no such group), -errno. */
static int parse_group(const char *s, gid_t *out)
{
	struct group gr, *res = NULL;
	unsigned long v;
	size_t len = 1024;
	char *buf = NULL;
	int rc;

	if (!parse_uint(s, 0, UINT_MAX - 1, &v)) {
		*out = (gid_t)v;
		return 0;
	}
	do {
		char *more = realloc(buf, len *= 2);

		if (!more) {
			free(buf);
			return -ENOMEM;
		}
		buf = more;
		rc = getgrnam_r(s, &gr, buf, len, &res);
	} while (rc == ERANGE && len < (1u << 24));
	if (!rc && res)
		*out = res->gr_gid;
	free(buf);
	return rc ? -rc : res ? 0 : -ENOENT;
}

/* One option, as getopt_long() returns it (c, arg), from the command line
 * or from a --config line.  arg must live as long as *o. */
static int apply_opt(struct vp_opts *o, int c, const char *arg, char *err,
		     size_t errlen)
{
	unsigned long v;
	char *end;
	int rc;

	switch (c) {
	case OPT_SOCKET_PATH:
		if (!*arg)
			return fail(err, errlen, "--socket-path: empty path");
		o->socket_path = arg;
		return 0;
	case OPT_FD:
		if (parse_uint(arg, 0, INT_MAX, &v))
			return fail(err, errlen, "--fd '%s': not a descriptor",
				    arg);
		o->fd = (int)v;
		return 0;
	case OPT_SOCKET_GROUP:
		rc = parse_group(arg, &o->socket_group);
		if (rc)
			return fail(err, errlen, "--socket-group '%s': %s", arg,
				    rc == -ENOENT ? "no such group"
						  : strerror(-rc));
		o->socket_group_set = true;
		return 0;
	case OPT_SOCKET_MODE:
		errno = 0;
		v = strtoul(arg, &end, 8);
		if (errno || *end || !*arg || *arg == '-' || v > 0777)
			return fail(err, errlen,
				    "--socket-mode '%s': not an octal mode "
				    "from 0 to 0777",
				    arg);
		o->socket_mode = (mode_t)v;
		o->socket_mode_set = true;
		return 0;
	case OPT_PORT: {
		struct vp_port_spec *p;

		if (o->nports == VP_OPTS_MAX_PORTS_SPECS)
			return fail(err, errlen, "too many --port options");
		p = realloc(o->ports, (o->nports + 1) * sizeof(*p));
		if (!p)
			return fail(err, errlen, "out of memory");
		o->ports = p;
		rc = vp_opts_parse_port(arg, &p[o->nports], err, errlen);
		if (rc)
			return rc;
		o->nports++;
		return 0;
	}
	case OPT_CHARDEV: {
		const char **list;

		if (o->nchardevs == VP_OPTS_MAX_CHARDEVS)
			return fail(err, errlen, "too many --chardev options");
		list = realloc(o->chardevs, (o->nchardevs + 1) * sizeof(*list));
		if (!list)
			return fail(err, errlen, "out of memory");
		o->chardevs = list;
		list[o->nchardevs++] = arg;
		return 0;
	}
	case OPT_MAX_PORTS:
		if (parse_uint(arg, 1, VSER_MAX_PORTS_LIMIT, &v))
			return fail(err, errlen,
				    "--max-ports '%s': not a number from "
				    "1 to %d",
				    arg, VSER_MAX_PORTS_LIMIT);
		o->max_ports = (unsigned)v;
		return 0;
	case 'o':
		return parse_mount_opts(o, arg, err, errlen);
	case OPT_LOG_LEVEL:
		if (vp_log_parse_level(arg, &o->log_level))
			return fail(err, errlen,
				    "--log-level '%s': use error, warn, info, "
				    "debug, trace or off",
				    arg);
		return 0;
	case OPT_SYSLOG:
		o->syslog = true;
		return 0;
	default:
		return fail(err, errlen, "option %d not handled", c);
	}
}

/* What getopt_long() returned for an option it refused. */
static int getopt_error(int c, char **argv, char *err, size_t errlen)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return fail(err, errlen, "option '%s' needs an argument", arg);
	/* A long option given a value it does not take: glibc sets optopt
	 * to the option's value, no character to print. */
	if (optopt && !strncmp(arg, "--", 2))
		return fail(err, errlen, "option '%.*s' takes no argument",
			    (int)strcspn(arg, "="), arg);
	if (optopt)
		return fail(err, errlen, "unknown option '-%c'", optopt);
	return fail(err, errlen, "unknown option '%s'", arg);
}

/* Like isspace() in the C locale, without the locale. */
static bool blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' ||
	       ch == '\f';
}

/* The long option named `name` ("o" is -o), or NULL. */
static const struct option *find_opt(const char *name)
{
	static const struct option short_o = {"o", required_argument, NULL,
					      'o'};

	if (!strcmp(name, "o"))
		return &short_o;
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (!strcmp(lo->name, name))
			return lo;
	return NULL;
}

/* One line of a --config file, split in place: "KEY", "KEY VALUE" or
 * "KEY=VALUE" (KEY a long option without its dashes, "o", or
 * "mountpoint").  0, or -EINVAL with the message in err. */
static int config_line(struct vp_opts *o, char *line, char *err, size_t errlen)
{
	const struct option *lo;
	char *key = line, *value, *end;

	end = key + strcspn(key, "= \t\r\v\f");
	value = end;
	if (*value) {
		bool eq = false;
		while (blank(*value) || (*value == '=' && !eq)) {
			eq |= *value == '=';
			value++;
		}
	}
	*end = '\0';
	if (!*value)
		value = NULL;
	if (!strcmp(key, "mountpoint")) {
		if (!value)
			return fail(err, errlen, "mountpoint needs a path");
		o->mountpoint = value;
		return 0;
	}
	lo = find_opt(key);
	if (!lo)
		return fail(err, errlen, "unknown option '%s'", key);
	switch (lo->val) {
	case OPT_CONFIG:
	case OPT_CAPS:
	case 'h':
	case 'V':
		return fail(err, errlen, "'%s' is for the command line only",
			    key);
	default:
		break;
	}
	if (lo->has_arg == required_argument && !value)
		return fail(err, errlen, "option '%s' needs a value", key);
	if (lo->has_arg == no_argument && value)
		return fail(err, errlen, "option '%s' takes no value", key);
	return apply_opt(o, lo->val, value, err, errlen);
}

#define CONFIG_MAX_BYTES (1u << 20)

/* Read --config FILE into o->config_text and apply its lines.  Errors
 * name the file and line. */
static int parse_config(struct vp_opts *o, const char *path, char *err,
			size_t errlen)
{
	char msg[512], *line, *next;
	unsigned lineno = 0;
	size_t len = 0;
	struct stat st;
	FILE *f;
	int rc = 0;
	/* O_NONBLOCK: a fifo must not hold the start-up (it is refused). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return fail(err, errlen, "--config %s: %s", path,
			    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "--config %s: not a regular file",
			    path);
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return fail(err, errlen, "--config %s: %s", path,
			    strerror(errno));
	}
	o->config_text = malloc(CONFIG_MAX_BYTES + 1);
	if (!o->config_text) {
		fclose(f);
		return fail(err, errlen, "--config %s: out of memory", path);
	}
	len = fread(o->config_text, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f))
		rc = fail(err, errlen, "--config %s: %s", path,
			  strerror(errno));
	else if (len > CONFIG_MAX_BYTES)
		rc = fail(err, errlen, "--config %s: larger than 1 MiB", path);
	fclose(f);
	if (rc)
		return rc;
	o->config_text[len] = '\0';
	if (strlen(o->config_text) != len)
		return fail(err, errlen, "%s: a NUL byte: not a text file",
			    path);
	for (line = o->config_text; line; line = next) {
		char *end;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (blank(*line))
			line++;
		end = line + strlen(line);
		while (end > line && blank(end[-1]))
			*--end = '\0';
		if (!*line || *line == '#')
			continue;
		if (config_line(o, line, msg, sizeof(msg)))
			return fail(err, errlen, "%s:%u: %s", path, lineno,
				    msg);
	}
	return 0;
}

/* Anywhere on the command line, --print-capabilities wins over every
 * other option and argument, valid or not (QEMU's backend conventions:
 * a management tool asks before it knows what else we accept). */
static bool wants_capabilities(int argc, char **argv)
{
	static const char name[] = "--print-capabilities";

	/* getopt_long takes any unambiguous prefix: "--pr" on. */
	for (int i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (n >= 4 && n < sizeof(name) && !strncmp(argv[i], name, n))
			return true;
	}
	return false;
}

/* A command-line option, kept until the --config file is applied. */
struct cl_opt {
	int c;
	const char *arg;
};

/* The command line's --socket-path or --fd overrides the file's, and the
 * other one with it (they exclude each other). */
static void override_socket(struct vp_opts *o, const struct cl_opt *cl,
			    unsigned ncl)
{
	for (unsigned i = 0; i < ncl; i++) {
		if (cl[i].c == OPT_SOCKET_PATH) {
			o->fd = -1;
		} else if (cl[i].c == OPT_FD) {
			o->socket_path = NULL;
			o->socket_group_set = o->socket_mode_set = false;
			o->socket_mode = 0600;
		}
	}
}

int vp_opts_parse(struct vp_opts *o, int argc, char **argv, char *err,
		  size_t errlen)
{
	struct cl_opt *cl;
	const char *config = NULL;
	unsigned ncl = 0;
	int c, rc = 0;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->max_ports = VSER_MAX_PORTS_DEFAULT;
	o->log_level = VP_LOG_WARN;
	o->uid = getuid();
	o->gid = getgid();
	o->mode = 0600;
	o->socket_mode = 0600;
	err[0] = '\0';
	if (wants_capabilities(argc, argv)) {
		o->print_capabilities = true;
		return 0;
	}
	/* The command line first only as syntax: its values apply after the
	 * --config file's, so that they override them. */
	cl = calloc((size_t)argc + 1, sizeof(*cl));
	if (!cl)
		return fail(err, errlen, "out of memory");
	opterr = 0;
	optind = 0; /* 0, not 1: makes glibc forget a half-parsed "-xo" group */
	while ((c = getopt_long(argc, argv, ":ho:V", long_opts, NULL)) != -1) {
		if (c == 'h' || c == 'V') {
			o->help = c == 'h';
			o->version = c == 'V';
			goto out;
		}
		if (c == ':' || c == '?') {
			rc = getopt_error(c, argv, err, errlen);
			goto out;
		}
		if (c == OPT_CONFIG) {
			if (config) {
				rc = fail(err, errlen, "--config given twice");
				goto out;
			}
			config = optarg;
			continue;
		}
		cl[ncl].c = c;
		cl[ncl++].arg = optarg;
	}
	if (optind + 1 < argc) {
		rc = fail(err, errlen, "unexpected argument '%s'",
			  argv[optind + 1]);
		goto out;
	}
	if (config && (rc = parse_config(o, config, err, errlen)))
		goto out;
	override_socket(o, cl, ncl);
	for (unsigned i = 0; i < ncl; i++)
		if ((rc = apply_opt(o, cl[i].c, cl[i].arg, err, errlen)))
			goto out;
	if (optind < argc)
		o->mountpoint = argv[optind];
	if (!o->mountpoint) {
		rc = fail(err, errlen, "missing MOUNTPOINT (see --help)");
		goto out;
	}
	/* Neither: main looks for a socket-activated one. */
	if (o->socket_path && o->fd >= 0) {
		rc = fail(err, errlen,
			  "give only one of --socket-path and --fd");
		goto out;
	}
	if ((o->socket_group_set || o->socket_mode_set) && !o->socket_path) {
		rc = fail(err, errlen,
			  "--socket-group and --socket-mode are for the "
			  "socket --socket-path creates");
		goto out;
	}
	rc = check_ports(o, err, errlen);
out:
	free(cl);
	return rc;
}

void vp_opts_free(struct vp_opts *o)
{
	free(o->config_text);
	o->config_text = NULL;
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
	      "  --socket-path PATH   listen for the VMM on this unix socket\n"
	      "                       (alias --socket)\n"
	      "  --socket-group NAME  the group of that socket (default: "
	      "ours)\n"
	      "  --socket-mode MODE   its mode, octal (default 0600)\n"
	      "  --fd N               an inherited socket instead: listening\n"
	      "                       (serve one VM after another) or\n"
	      "                       connected (serve that VM, exit after "
	      "it)\n"
	      "                       With neither: a socket from systemd's\n"
	      "                       socket activation (LISTEN_FDS)\n"
	      "  --port SPEC          add a port: "
	      "name=NAME[,nr=N][,console=on]\n"
	      "                       [,ring-size=SIZE][,chardev=ID]...\n"
	      "                       (repeatable; nr defaults\n"
	      "                       to the lowest free, 0 only for a "
	      "console;\n"
	      "                       ring-size: guest output\n"
	      "                       kept in the daemon, the latest on a "
	      "console,\n"
	      "                       the unread on other ports (at least "
	      "64K),\n"
	      "                       default 1M)\n"
	      "  --chardev SPEC       a host backend, as QEMU's -chardev:\n"
	      "                       BACKEND,id=ID[,OPTION=VALUE]... with "
	      "BACKEND\n"
	      "                       socket, pipe, file, log, pty, fd, "
	      "stdio,\n"
	      "                       ringbuf or null (see docs/chardev.md);\n"
	      "                       --port ...,chardev=ID attaches it\n"
	      "                       (repeatable, several per port)\n"
	      "  --max-ports N        ports the device offers (default 31, max "
	      "127,\n"
	      "                       vhost-user's limit; UML guests: at most "
	      "31)\n"
	      "  -o OPT[,OPT]         session: an fd belongs to one guest "
	      "session\n"
	      "                       exclusive: one open per port, as in the "
	      "guest\n"
	      "                       allow_other (implies "
	      "default_permissions),\n"
	      "                       default_permissions, uid=N, gid=N,\n"
	      "                       mode=OCTAL: as for any FUSE mount\n"
	      "  --config FILE        options from FILE, one per line, as "
	      "here\n"
	      "                       without the dashes (mountpoint PATH for\n"
	      "                       MOUNTPOINT); the command line overrides\n"
	      "  --log-level LEVEL    error, warn (default), info, debug, "
	      "trace\n"
	      "                       or off\n"
	      "  --syslog             log to syslog instead of stderr\n"
	      "  --print-capabilities print {\"type\": \"console\"} (QEMU's\n"
	      "                       vhost-user.json) and exit, whatever "
	      "else\n"
	      "                       is given\n"
	      "  -h, --help           show this help\n"
	      "  -V, --version        show the version\n"
	      "\n"
	      "In the mount: one file per port (touch NAME adds a port, rm "
	      "NAME\n"
	      "removes it), user.vport.* extended attributes, and .events, a\n"
	      "stream of JSON lines.\n"
	      "\n"
	      "Runs in the foreground; SIGINT or SIGTERM unmounts, removes "
	      "the\n"
	      "socket and exits 0; SIGHUP reopens the file and log chardevs\n"
	      "(after logrotate).  A bad option exits 2 with nothing mounted;\n"
	      "a chardev or socket that cannot be opened exits 1.\n",
	      out);
}
