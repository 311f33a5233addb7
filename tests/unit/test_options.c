/*
 * Unit tests for src/cli/options.c: the daemon's command line.
 *
 * Each error case checks both -EINVAL and that the message names the
 * offending option, since that line is all the user gets before exit 2.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vportfs/options.h"

#define MAX_ARGS 32

struct fx {
	struct vp_opts o;
	char err[256];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	return 0;
}

/* Make glibc's getopt forget everything (optind 0 forces a full
 * re-initialisation, including a half-scanned option group), so that one
 * test's failure cannot leak into the next. */
static void reset_getopt(void)
{
	static char arg0[] = "t";
	char *argv[] = {arg0, NULL};

	optind = 0;
	opterr = 0;
	while (getopt(1, argv, "") != -1)
		;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	reset_getopt();

	vp_opts_free(&f->o);
	free(f);
	return 0;
}

/* Parse a NULL-terminated argument list (argv[0] is supplied). */
static int parse_v(struct fx *f, va_list ap)
{
	/* getopt permutes argv, so it must be writable. */
	static char *argv[MAX_ARGS + 2];
	int argc = 0;
	const char *a;

	argv[argc++] = (char *)"vportfs";
	while ((a = va_arg(ap, const char *))) {
		assert_true(argc <= MAX_ARGS);
		argv[argc++] = (char *)a;
	}
	argv[argc] = NULL;
	memset(f->err, 0, sizeof(f->err));
	vp_opts_free(&f->o);
	return vp_opts_parse(&f->o, argc, argv, f->err, sizeof(f->err));
}

static int parse(struct fx *f, ...)
{
	va_list ap;
	int rc;

	va_start(ap, f);
	rc = parse_v(f, ap);
	va_end(ap);
	return rc;
}

/* Expect -EINVAL and a message containing `needle`. */
static void expect_error(struct fx *f, const char *needle, ...)
{
	va_list ap;
	int rc;

	va_start(ap, needle);
	rc = parse_v(f, ap);
	va_end(ap);
	assert_int_equal(rc, -EINVAL);
	if (!strstr(f->err, needle))
		fail_msg("error message \"%s\" does not name \"%s\"", f->err,
			 needle);
	/* One line, no trailing newline: main() adds it. */
	assert_null(strchr(f->err, '\n'));
}

/* ---- good command lines ------------------------------------------------ */

static void test_defaults_with_socket_and_mountpoint(void **state)
{
	struct fx *f = *state;

	assert_int_equal(
		parse(f, "--socket", "/run/vm1.sock", "/mnt/vm1", NULL), 0);
	assert_string_equal(f->o.socket_path, "/run/vm1.sock");
	assert_string_equal(f->o.mountpoint, "/mnt/vm1");
	assert_int_equal(f->o.fd, -1);
	assert_int_equal(f->o.max_ports, 31);
	assert_int_equal(f->o.mode, 0600);
	assert_int_equal(f->o.nports, 0);
	assert_int_equal(f->o.log_level, VP_LOG_WARN);
	assert_int_equal(f->o.uid, getuid());
	assert_int_equal(f->o.gid, getgid());
	assert_false(f->o.allow_other);
	assert_false(f->o.default_permissions);
	assert_false(f->o.syslog);
	assert_false(f->o.help);
	assert_false(f->o.version);
	assert_false(f->o.print_capabilities);
}

static void test_fd_instead_of_socket(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--fd", "3", "/mnt", NULL), 0);
	assert_int_equal(f->o.fd, 3);
	assert_null(f->o.socket_path);
}

static void test_full_command_line(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--socket", "s", "--max-ports", "127",
			       "--port", "name=org.qemu.guest_agent.0",
			       "--port", "name=console0,console=on,nr=0",
			       "--port", "name=b,nr=126", "-o",
			       "allow_other,default_permissions,uid=1000,gid="
			       "100,mode=0640",
			       "--log-level", "debug", "--syslog", "/mnt",
			       NULL),
			 0);
	assert_int_equal(f->o.max_ports, 127);
	assert_int_equal(f->o.nports, 3);
	assert_string_equal(f->o.ports[0].name, "org.qemu.guest_agent.0");
	assert_int_equal(f->o.ports[0].nr, -1);
	assert_false(f->o.ports[0].console);
	assert_string_equal(f->o.ports[1].name, "console0");
	assert_int_equal(f->o.ports[1].nr, 0);
	assert_true(f->o.ports[1].console);
	assert_int_equal(f->o.ports[2].nr, 126);
	assert_true(f->o.allow_other);
	assert_true(f->o.default_permissions);
	assert_int_equal(f->o.uid, 1000);
	assert_int_equal(f->o.gid, 100);
	assert_int_equal(f->o.mode, 0640);
	assert_int_equal(f->o.log_level, VP_LOG_DEBUG);
	assert_true(f->o.syslog);
}

static void test_options_after_mountpoint_are_parsed(void **state)
{
	struct fx *f = *state;

	assert_int_equal(
		parse(f, "/mnt", "--socket", "s", "--max-ports", "4", NULL), 0);
	assert_string_equal(f->o.mountpoint, "/mnt");
	assert_int_equal(f->o.max_ports, 4);
}

static void test_repeated_o_options_accumulate(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--socket", "s", "-o", "allow_other", "-o",
			       "mode=755", "/mnt", NULL),
			 0);
	assert_true(f->o.allow_other);
	assert_int_equal(f->o.mode, 0755);
}

static void test_help_version_and_capabilities_need_nothing_else(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--help", NULL), 0);
	assert_true(f->o.help);
	assert_int_equal(parse(f, "-h", NULL), 0);
	assert_true(f->o.help);
	assert_int_equal(parse(f, "-V", NULL), 0);
	assert_true(f->o.version);
	assert_int_equal(parse(f, "--version", NULL), 0);
	assert_true(f->o.version);
	assert_int_equal(parse(f, "--print-capabilities", NULL), 0);
	assert_true(f->o.print_capabilities);
}

/* QEMU's backend conventions: a management tool runs the binary with
 * --print-capabilities and whatever else it thinks fit. */
static void test_print_capabilities_wins_over_anything_anywhere(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--bogus", "-x", "--port", "nr=zz",
			       "--print-capabilities", NULL),
			 0);
	assert_true(f->o.print_capabilities);
	assert_int_equal(parse(f, "--print-capabilities", "--max-ports", "0",
			       "a", "b", "c", NULL),
			 0);
	assert_true(f->o.print_capabilities);
	assert_int_equal(parse(f, "--config", "/nonexistent", "/mnt",
			       "--print-capabilities", NULL),
			 0);
	assert_true(f->o.print_capabilities);
	/* getopt_long's unambiguous prefixes count too. */
	assert_int_equal(parse(f, "--bogus", "--print-cap", NULL), 0);
	assert_true(f->o.print_capabilities);
	assert_int_equal(parse(f, "--pr", "/mnt", NULL), 0);
	assert_true(f->o.print_capabilities);
	/* "--p" could be --port as well: not a request for capabilities. */
	expect_error(f, "--p", "--p", "/mnt", NULL);
}

static void test_socket_path_and_its_alias_socket(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--socket-path", "/run/a.sock", "/mnt", NULL),
			 0);
	assert_string_equal(f->o.socket_path, "/run/a.sock");
	assert_int_equal(parse(f, "--socket-path=/run/b.sock", "/mnt", NULL),
			 0);
	assert_string_equal(f->o.socket_path, "/run/b.sock");
	assert_int_equal(parse(f, "--socket", "/run/c.sock", "/mnt", NULL), 0);
	assert_string_equal(f->o.socket_path, "/run/c.sock");
	expect_error(f, "only one", "--socket-path", "s", "--fd", "3", "/mnt",
		     NULL);
	expect_error(f, "--socket-path: empty path", "--socket-path", "",
		     "/mnt", NULL);
}

static void test_socket_group_and_mode(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--socket-path", "s", "/mnt", NULL), 0);
	assert_false(f->o.socket_group_set);
	assert_int_equal(f->o.socket_mode, 0600);
	/* Group 0 is "root" on every Debian system. */
	assert_int_equal(parse(f, "--socket-path", "s", "--socket-group",
			       "root", "--socket-mode", "660", "/mnt", NULL),
			 0);
	assert_true(f->o.socket_group_set);
	assert_int_equal(f->o.socket_group, 0);
	assert_int_equal(f->o.socket_mode, 0660);
	assert_int_equal(parse(f, "--socket-path", "s", "--socket-group",
			       "4242", "--socket-mode", "0606", "/mnt", NULL),
			 0);
	assert_int_equal(f->o.socket_group, 4242);
	assert_int_equal(f->o.socket_mode, 0606);
}

static void test_socket_group_and_mode_errors(void **state)
{
	expect_error(*state, "no-such-group-here", "--socket-path", "s",
		     "--socket-group", "no-such-group-here", "/mnt", NULL);
	expect_error(*state, "--socket-mode '888'", "--socket-path", "s",
		     "--socket-mode", "888", "/mnt", NULL);
	expect_error(*state, "--socket-mode '1777'", "--socket-path", "s",
		     "--socket-mode", "1777", "/mnt", NULL);
	expect_error(*state, "--socket-mode '-1'", "--socket-path", "s",
		     "--socket-mode", "-1", "/mnt", NULL);
	expect_error(*state, "--socket-mode ''", "--socket-path", "s",
		     "--socket-mode", "", "/mnt", NULL);
	/* They are about the socket we create, not an inherited one. */
	expect_error(*state, "--socket-path creates", "--fd", "3",
		     "--socket-mode", "660", "/mnt", NULL);
	expect_error(*state, "--socket-path creates", "--socket-group", "root",
		     "/mnt", NULL);
}

static void test_log_levels_as_virtiofsd_names_them(void **state)
{
	static const struct {
		const char *name;
		enum vp_log_level level;
	} levels[] = {
		{"off", VP_LOG_OFF},	 {"error", VP_LOG_ERROR},
		{"warn", VP_LOG_WARN},	 {"info", VP_LOG_INFO},
		{"debug", VP_LOG_DEBUG}, {"trace", VP_LOG_TRACE},
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		assert_int_equal(
			parse(f, "--log-level", levels[i].name, "/mnt", NULL),
			0);
		assert_int_equal(f->o.log_level, levels[i].level);
	}
	expect_error(f, "trace or off", "--log-level", "warning", "/mnt", NULL);
}

/* ---- --config FILE ----------------------------------------------------- */

/* A config file with `text`, in a private temporary directory; its path
 * goes to `path` (removed by config_done). */
static void config_file(char *path, size_t len, const char *text)
{
	char dir[] = "/tmp/vportfs-options.XXXXXX";
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, len, "%s/vm1.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void config_done(const char *path)
{
	char dir[256];

	unlink(path);
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path),
		 path);
	rmdir(dir);
}

static void test_config_file_gives_every_kind_of_option(void **state)
{
	struct fx *f = *state;
	char path[256];

	config_file(path, sizeof(path),
		    "# vm1: the guest agent and a console\n"
		    "\n"
		    "socket-path /run/vportfs/vm1.sock\n"
		    "  socket-mode=0660   \n"
		    "port name=org.qemu.guest_agent.0\n"
		    "port name=console0,nr=0,console=on,chardev=log0\n"
		    "chardev log,id=log0,path=/var/log/vm1.log\n"
		    "max-ports 8\n"
		    "o allow_other,uid=1000\n"
		    "log-level\tdebug\n"
		    "syslog\n"
		    "mountpoint /run/vportfs/vm 1\n");
	assert_int_equal(parse(f, "--config", path, NULL), 0);
	config_done(path);
	assert_string_equal(f->o.socket_path, "/run/vportfs/vm1.sock");
	assert_int_equal(f->o.socket_mode, 0660);
	assert_int_equal(f->o.nports, 2);
	assert_string_equal(f->o.ports[0].name, "org.qemu.guest_agent.0");
	assert_true(f->o.ports[1].console);
	assert_string_equal(f->o.ports[1].chardevs[0], "log0");
	assert_int_equal(f->o.nchardevs, 1);
	assert_string_equal(f->o.chardevs[0],
			    "log,id=log0,path=/var/log/vm1.log");
	assert_int_equal(f->o.max_ports, 8);
	assert_true(f->o.allow_other);
	assert_int_equal(f->o.uid, 1000);
	assert_int_equal(f->o.log_level, VP_LOG_DEBUG);
	assert_true(f->o.syslog);
	/* The value is the rest of the line: a path may hold a space. */
	assert_string_equal(f->o.mountpoint, "/run/vportfs/vm 1");
}

static void test_command_line_overrides_the_config_file(void **state)
{
	struct fx *f = *state;
	char path[256];

	config_file(path, sizeof(path),
		    "socket-path /run/file.sock\n"
		    "max-ports 8\n"
		    "log-level info\n"
		    "port name=from-file\n"
		    "mountpoint /from/file\n");
	/* The command line comes first here, and still wins. */
	assert_int_equal(parse(f, "--max-ports", "4", "--config", path,
			       "--port", "name=from-cli", "/from/cli", NULL),
			 0);
	assert_string_equal(f->o.socket_path, "/run/file.sock");
	assert_int_equal(f->o.max_ports, 4);
	assert_int_equal(f->o.log_level, VP_LOG_INFO);
	assert_string_equal(f->o.mountpoint, "/from/cli");
	/* Repeatable options add up: the file's first. */
	assert_int_equal(f->o.nports, 2);
	assert_string_equal(f->o.ports[0].name, "from-file");
	assert_string_equal(f->o.ports[1].name, "from-cli");
	/* The command line's --fd replaces the file's socket, and the
	 * socket's mode with it. */
	config_done(path);
	config_file(path, sizeof(path),
		    "socket-path /run/file.sock\nsocket-mode 0660\n"
		    "mountpoint /m\n");
	assert_int_equal(parse(f, "--config", path, "--fd", "3", NULL), 0);
	assert_null(f->o.socket_path);
	assert_int_equal(f->o.fd, 3);
	assert_false(f->o.socket_mode_set);
	config_done(path);
	/* And the command line's --socket-path the file's --fd. */
	config_file(path, sizeof(path), "fd 3\nmountpoint /m\n");
	assert_int_equal(parse(f, "--config", path, "--socket-path", "/s",
			       NULL),
			 0);
	assert_string_equal(f->o.socket_path, "/s");
	assert_int_equal(f->o.fd, -1);
	/* Both on the command line is still one too many. */
	expect_error(f, "only one", "--config", path, "--socket-path", "/s",
		     "--fd", "4", NULL);
	config_done(path);
}

/* Each bad line: FILE:LINE and what is wrong with it. */
static void test_config_errors_name_file_and_line(void **state)
{
	static const struct {
		const char *text;
		const char *says;
	} cases[] = {
		{"# fine\nsocket-path s\nsokcet-path s\n",
		 "vm1.conf:3: unknown option 'sokcet-path'"},
		{"\n\nmax-ports\n", "vm1.conf:3: option 'max-ports' needs a "
				    "value"},
		{"syslog yes\n", "vm1.conf:1: option 'syslog' takes no value"},
		{"max-ports 0\n", "vm1.conf:1: --max-ports '0'"},
		{"socket-path s\nport nme=a\n",
		 "vm1.conf:2: --port: unknown key 'nme'"},
		{"config /etc/other.conf\n",
		 "vm1.conf:1: 'config' is for the command line only"},
		{"help\n", "vm1.conf:1: 'help' is for the command line only"},
		{"mountpoint\n", "vm1.conf:1: mountpoint needs a path"},
		{"--socket-path s\n",
		 "vm1.conf:1: unknown option '--socket-path'"},
		{"a\0b\n", "a NUL byte"},
	};
	struct fx *f = *state;
	char path[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_file(path, sizeof(path), cases[i].text);
		if (strstr(cases[i].says, "NUL")) {
			/* fputs stops at the NUL: write it by hand. */
			FILE *fp = fopen(path, "w");
			assert_non_null(fp);
			assert_int_equal(fwrite("a\0b\n", 1, 4, fp), 4);
			fclose(fp);
		}
		expect_error(f, cases[i].says, "--config", path, "/mnt", NULL);
		config_done(path);
	}
	expect_error(f, "--config /nonexistent/vm1.conf: No such file",
		     "--config", "/nonexistent/vm1.conf", "/mnt", NULL);
	/* Only a regular file: a fifo or /dev/stdin would hold the start. */
	expect_error(f, "--config /dev/null: not a regular file", "--config",
		     "/dev/null", "/mnt", NULL);
	expect_error(f, "--config /: not a regular file", "--config", "/",
		     "/mnt", NULL);
	config_file(path, sizeof(path), "");
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_error(f, "not a regular file", "--config", path, "/mnt", NULL);
	config_done(path);
	expect_error(f, "--config given twice", "--config", "a", "--config",
		     "b", "/mnt", NULL);
}

static void test_parse_can_be_called_twice(void **state)
{
	struct fx *f = *state;

	/* getopt state is reset between calls. */
	assert_int_equal(parse(f, "--socket", "a", "/m1", NULL), 0);
	assert_int_equal(parse(f, "--socket", "b", "/m2", NULL), 0);
	assert_string_equal(f->o.socket_path, "b");
	assert_string_equal(f->o.mountpoint, "/m2");
}

/* ---- --port specs ------------------------------------------------------- */

static void test_port_spec_name_only(void **state)
{
	struct fx *f = *state;
	struct vp_port_spec p;

	assert_int_equal(
		vp_opts_parse_port("name=agent", &p, f->err, sizeof(f->err)),
		0);
	assert_string_equal(p.name, "agent");
	assert_int_equal(p.nr, -1);
	assert_false(p.console);
}

static void test_port_spec_nr_and_console_on_off(void **state)
{
	struct fx *f = *state;
	struct vp_port_spec p;

	assert_int_equal(vp_opts_parse_port("nr=7,name=c,console=on", &p,
					    f->err, sizeof(f->err)),
			 0);
	assert_string_equal(p.name, "c");
	assert_int_equal(p.nr, 7);
	assert_true(p.console);
	assert_int_equal(vp_opts_parse_port("name=c,console=off", &p, f->err,
					    sizeof(f->err)),
			 0);
	assert_false(p.console);
	assert_int_equal(p.nr, -1);
}

static void
test_port_spec_double_comma_escapes_a_comma_in_the_name(void **state)
{
	struct fx *f = *state;
	struct vp_port_spec p;

	assert_int_equal(vp_opts_parse_port("name=a,,b,,,,c,nr=2", &p, f->err,
					    sizeof(f->err)),
			 0);
	assert_string_equal(p.name, "a,b,,c");
	assert_int_equal(p.nr, 2);
	assert_int_equal(vp_opts_parse_port("name=trailing,,", &p, f->err,
					    sizeof(f->err)),
			 0);
	assert_string_equal(p.name, "trailing,");
}

static void
test_port_spec_name_of_255_bytes_is_accepted_256_is_not(void **state)
{
	struct fx *f = *state;
	struct vp_port_spec p;
	char spec[5 + VSER_NAME_MAX + 2];

	memcpy(spec, "name=", 5);
	memset(spec + 5, 'n', VSER_NAME_MAX);
	spec[5 + VSER_NAME_MAX] = '\0';
	assert_int_equal(vp_opts_parse_port(spec, &p, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(strlen(p.name), VSER_NAME_MAX);
	spec[5 + VSER_NAME_MAX] = 'n';
	spec[5 + VSER_NAME_MAX + 1] = '\0';
	assert_int_equal(vp_opts_parse_port(spec, &p, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_non_null(strstr(f->err, "name"));
}

/* ---- errors ---------------------------------------------------------------
 */

static void test_unknown_long_option_is_named(void **state)
{
	expect_error(*state, "--bogus", "--socket", "s", "--bogus", "/mnt",
		     NULL);
}

/* Found by fuzz_options: the message printed optopt, the option's
 * value (a control character for --syslog). */
static void test_long_option_given_a_value_it_does_not_take(void **state)
{
	expect_error(*state, "'--syslog' takes no argument", "--socket", "s",
		     "--syslog=1", "/mnt", NULL);
	expect_error(*state, "'--help' takes no argument", "--help=x", NULL);
}

static void test_unknown_short_option_is_named(void **state)
{
	expect_error(*state, "-x", "--socket", "s", "-x", "/mnt", NULL);
}

static void test_unknown_short_option_in_a_group_is_named(void **state)
{
	/* "-xo allow_other": the bad one is -x, not the previous argument. */
	expect_error(*state, "-x", "--socket", "s", "-xo", "allow_other",
		     "/mnt", NULL);
}

static void
test_parse_after_error_inside_option_group_starts_fresh(void **state)
{
	struct fx *f = *state;

	/* The first parse stops inside "-xo"; the second must not resume
	 * there (it would read "-o" with the wrong argument). */
	assert_int_equal(
		parse(f, "--socket", "s", "-xo", "allow_other", "/mnt", NULL),
		-EINVAL);
	assert_int_equal(
		parse(f, "--socket", "s", "--max-ports", "4", "/mnt", NULL), 0);
	assert_int_equal(f->o.max_ports, 4);
	assert_false(f->o.allow_other);
}

static void test_missing_option_argument_is_named(void **state)
{
	expect_error(*state, "--max-ports", "--socket", "s", "/mnt",
		     "--max-ports", NULL);
}

static void test_missing_mountpoint(void **state)
{
	expect_error(*state, "MOUNTPOINT", "--socket", "s", NULL);
}

static void test_two_mountpoints(void **state)
{
	expect_error(*state, "/b", "--socket", "s", "/a", "/b", NULL);
}

static void test_both_socket_and_fd(void **state)
{
	expect_error(*state, "--socket", "--socket", "s", "--fd", "3", "/mnt",
		     NULL);
	expect_error(*state, "--fd", "--socket", "s", "--fd", "3", "/mnt",
		     NULL);
}

/* Neither: main() takes a socket-activated one, or says so. */
static void
test_neither_socket_nor_fd_is_left_to_socket_activation(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "/mnt", NULL), 0);
	assert_null(f->o.socket_path);
	assert_int_equal(f->o.fd, -1);
}

static void test_bad_fd(void **state)
{
	expect_error(*state, "--fd", "--fd", "-1", "/mnt", NULL);
	expect_error(*state, "--fd", "--fd", "three", "/mnt", NULL);
}

static void test_max_ports_0_128_and_abc(void **state)
{
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports", "0",
		     "/mnt", NULL);
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports",
		     "128", "/mnt", NULL);
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports",
		     "abc", "/mnt", NULL);
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports",
		     "-1", "/mnt", NULL);
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports",
		     "31x", "/mnt", NULL);
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports", "",
		     "/mnt", NULL);
}

static void test_port_without_name(void **state)
{
	expect_error(*state, "name", "--socket", "s", "--port", "nr=3", "/mnt",
		     NULL);
	expect_error(*state, "--port", "--socket", "s", "--port", "nr=3",
		     "/mnt", NULL);
}

/* A serial port's ring must hold a whole guest buffer (Linux: 32 KiB);
 * a console's may be small, it drops its oldest bytes anyway. */
static void test_port_serial_ring_below_64k_is_refused(void **state)
{
	struct fx *f = *state;
	struct vp_port_spec p;

	expect_error(*state, "ring-size", "--socket", "s", "--port",
		     "name=a,ring-size=4K", "/mnt", NULL);
	assert_int_equal(vp_opts_parse_port("name=a,ring-size=64K", &p, f->err,
					    sizeof(f->err)),
			 0);
	assert_int_equal(p.ring_size, 64 << 10);
	assert_int_equal(vp_opts_parse_port("name=c,console=on,ring-size=4K",
					    &p, f->err, sizeof(f->err)),
			 0);
}

static void test_port_unknown_key(void **state)
{
	expect_error(*state, "colour", "--socket", "s", "--port",
		     "name=a,colour=red", "/mnt", NULL);
}

static void test_port_key_without_value(void **state)
{
	expect_error(*state, "--port", "--socket", "s", "--port", "name",
		     "/mnt", NULL);
}

static void test_port_bad_console_value(void **state)
{
	expect_error(*state, "console", "--socket", "s", "--port",
		     "name=a,console=maybe", "/mnt", NULL);
}

static void test_port_nr_out_of_range(void **state)
{
	expect_error(*state, "nr", "--socket", "s", "--port", "name=a,nr=127",
		     "/mnt", NULL);
	expect_error(*state, "nr", "--socket", "s", "--port", "name=a,nr=-1",
		     "/mnt", NULL);
	expect_error(*state, "nr", "--socket", "s", "--port", "name=a,nr=x",
		     "/mnt", NULL);
}

static void test_port_nr_not_below_max_ports(void **state)
{
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports", "4",
		     "--port", "name=a,nr=4", "/mnt", NULL);
	/* Whatever the order of the options. */
	expect_error(*state, "nr=4", "--socket", "s", "--port", "name=a,nr=4",
		     "--max-ports", "4", "/mnt", NULL);
}

static void test_port_duplicate_name(void **state)
{
	expect_error(*state, "'a'", "--socket", "s", "--port", "name=a",
		     "--port", "name=a,nr=3", "/mnt", NULL);
}

static void test_port_duplicate_nr(void **state)
{
	expect_error(*state, "nr=3", "--socket", "s", "--port", "name=a,nr=3",
		     "--port", "name=b,nr=3", "/mnt", NULL);
}

static void test_more_ports_than_max_ports(void **state)
{
	expect_error(*state, "--max-ports", "--socket", "s", "--max-ports", "2",
		     "--port", "name=a", "--port", "name=b", "--port", "name=c",
		     "/mnt", NULL);
}

static void test_o_unknown_option(void **state)
{
	expect_error(*state, "unknown", "--socket", "s", "-o", "unknown",
		     "/mnt", NULL);
	expect_error(*state, "-o", "--socket", "s", "-o", "allow_other,nosuch",
		     "/mnt", NULL);
}

static void test_o_mode_not_octal(void **state)
{
	expect_error(*state, "mode", "--socket", "s", "-o", "mode=9", "/mnt",
		     NULL);
	expect_error(*state, "mode", "--socket", "s", "-o", "mode=", "/mnt",
		     NULL);
	expect_error(*state, "mode", "--socket", "s", "-o", "mode=17777",
		     "/mnt", NULL);
}

static void test_o_uid_not_a_number(void **state)
{
	expect_error(*state, "uid", "--socket", "s", "-o", "uid=root", "/mnt",
		     NULL);
}

static void test_log_level_bogus(void **state)
{
	expect_error(*state, "--log-level", "--socket", "s", "--log-level",
		     "bogus", "/mnt", NULL);
	expect_error(*state, "bogus", "--socket", "s", "--log-level", "bogus",
		     "/mnt", NULL);
}

static void test_serial_port_given_nr_0_is_refused(void **state)
{
	expect_error(*state, "nr=0", "--socket", "s", "--port", "name=a,nr=0",
		     "/mnt", NULL);
}

static void test_chardevs_are_kept_in_order_and_ports_name_several(void **state)
{
	struct fx *f = *state;

	assert_int_equal(parse(f, "--socket", "s", "--chardev", "null,id=a",
			       "--port", "name=p,chardev=a,chardev=b",
			       "--chardev", "file,id=b,path=x", "/mnt", NULL),
			 0);
	assert_int_equal(f->o.nchardevs, 2);
	assert_string_equal(f->o.chardevs[0], "null,id=a");
	assert_string_equal(f->o.chardevs[1], "file,id=b,path=x");
	assert_int_equal(f->o.ports[0].nchardevs, 2);
	assert_string_equal(f->o.ports[0].chardevs[0], "a");
	assert_string_equal(f->o.ports[0].chardevs[1], "b");
}

static void test_port_chardev_errors(void **state)
{
	expect_error(*state, "chardev=a given twice", "--socket", "s", "--port",
		     "name=p,chardev=a,chardev=a", "/mnt", NULL);
	expect_error(*state, "chardev=", "--socket", "s", "--port",
		     "name=p,chardev=", "/mnt", NULL);
	expect_error(*state, "more than 8", "--socket", "s", "--port",
		     "name=p,chardev=a,chardev=b,chardev=c,chardev=d,"
		     "chardev=e,chardev=f,chardev=g,chardev=h,chardev=i",
		     "/mnt", NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults_with_socket_and_mountpoint),
		T(test_fd_instead_of_socket),
		T(test_full_command_line),
		T(test_options_after_mountpoint_are_parsed),
		T(test_repeated_o_options_accumulate),
		T(test_help_version_and_capabilities_need_nothing_else),
		T(test_parse_can_be_called_twice),
		T(test_port_spec_name_only),
		T(test_port_spec_nr_and_console_on_off),
		T(test_port_spec_double_comma_escapes_a_comma_in_the_name),
		T(test_port_spec_name_of_255_bytes_is_accepted_256_is_not),
		T(test_unknown_long_option_is_named),
		T(test_long_option_given_a_value_it_does_not_take),
		T(test_unknown_short_option_is_named),
		T(test_unknown_short_option_in_a_group_is_named),
		T(test_parse_after_error_inside_option_group_starts_fresh),
		T(test_missing_option_argument_is_named),
		T(test_missing_mountpoint),
		T(test_two_mountpoints),
		T(test_both_socket_and_fd),
		T(test_neither_socket_nor_fd_is_left_to_socket_activation),
		T(test_print_capabilities_wins_over_anything_anywhere),
		T(test_socket_path_and_its_alias_socket),
		T(test_socket_group_and_mode),
		T(test_socket_group_and_mode_errors),
		T(test_log_levels_as_virtiofsd_names_them),
		T(test_config_file_gives_every_kind_of_option),
		T(test_command_line_overrides_the_config_file),
		T(test_config_errors_name_file_and_line),
		T(test_bad_fd),
		T(test_max_ports_0_128_and_abc),
		T(test_port_without_name),
		T(test_port_serial_ring_below_64k_is_refused),
		T(test_port_unknown_key),
		T(test_port_key_without_value),
		T(test_port_bad_console_value),
		T(test_port_nr_out_of_range),
		T(test_port_nr_not_below_max_ports),
		T(test_port_duplicate_name),
		T(test_port_duplicate_nr),
		T(test_more_ports_than_max_ports),
		T(test_o_unknown_option),
		T(test_o_mode_not_octal),
		T(test_o_uid_not_a_number),
		T(test_log_level_bogus),
		T(test_serial_port_given_nr_0_is_refused),
		T(test_chardevs_are_kept_in_order_and_ports_name_several),
		T(test_port_chardev_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
