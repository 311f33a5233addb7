/*
 * vportfs-sim: the simulated guest as a line-driven tool for tests.
 *
 * It connects and handshakes, prints one greeting line, then reads one
 * command per line on stdin and answers each with exactly one line on
 * stdout, "ok ..." or "err REASON ...", flushed at once.  Between commands
 * and while a command waits, it keeps servicing the device (calls, backend
 * requests), so the daemon never waits on the test.
 *
 * The one rule that matters: a device bug (see sim.h) turns the answer of
 * the command during which it was seen, and of every later command, into
 * "err device-bug: ...", so a test cannot step over one.
 */
#include "vportfs/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINE   (64u << 20)
#define MAX_TOKENS 64
#define IO_CHUNK   (1u << 20)

struct strbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

struct cli {
	struct sim *sim;
	struct sim_opts opts;
	int timeout_ms;
	struct strbuf out;
	bool replied;
	bool is_err;
	bool quit;
};

/* ---- output ----------------------------------------------------------- */

static void sb_reserve(struct strbuf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more + 1)
		ncap *= 2;
	char *n = realloc(b->p, ncap);
	if (!n) {
		b->oom = true;
		return;
	}
	b->p = n;
	b->cap = ncap;
}

__attribute__((format(printf, 2, 3))) static void
sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[512];

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(tmp)) {
		sb_reserve(b, (size_t)n);
		if (b->oom)
			return;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	} else {
		sb_reserve(b, (size_t)n);
		if (b->oom)
			return;
		memcpy(b->p + b->len, tmp, (size_t)n + 1);
	}
	b->len += (size_t)n;
}

static void sb_hex(struct strbuf *b, const uint8_t *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	sb_reserve(b, 2 * len);
	if (b->oom)
		return;
	for (size_t i = 0; i < len; i++) {
		b->p[b->len++] = digits[data[i] >> 4];
		b->p[b->len++] = digits[data[i] & 15];
	}
	b->p[b->len] = '\0';
}

/* Names go on one space-separated line: escape what would break it. */
static void sb_name(struct strbuf *b, const char *name)
{
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		if (*c <= 0x20 || *c >= 0x7f || *c == '%' || *c == ':')
			sb_printf(b, "%%%02X", *c);
		else
			sb_printf(b, "%c", *c);
	}
}

__attribute__((format(printf, 2, 3))) static void ok(struct cli *c,
						     const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];

	if (c->replied)
		return;
	c->replied = true;
	c->is_err = false;
	c->out.len = 0;
	sb_printf(&c->out, "ok");
	if (!fmt || !*fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_printf(&c->out, " %s", tmp);
}

/* Starts an "ok" reply whose body the caller appends to c->out. */
static struct strbuf *ok_buf(struct cli *c)
{
	ok(c, NULL);
	sb_printf(&c->out, " ");
	return &c->out;
}

__attribute__((format(printf, 2, 3))) static void err(struct cli *c,
						      const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];

	if (c->replied)
		return;
	c->replied = true;
	c->is_err = true;
	c->out.len = 0;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Keep it one line whatever the message says. */
	for (char *p = tmp; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	sb_printf(&c->out, "err %s", tmp);
}

static void write_all_fd(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(1); /* the test went away */
		p += n;
		len -= (size_t)n;
	}
}

static void emit_line(struct cli *c)
{
	if (c->out.oom) {
		static const char m[] = "err out of memory building reply\n";
		write_all_fd(1, m, sizeof(m) - 1);
	} else {
		sb_printf(&c->out, "\n");
		write_all_fd(1, c->out.p, c->out.len);
	}
	c->out.len = 0;
	c->out.oom = false;
}

/* Maps a -errno from the library to a reply. */
static void diagnose(struct cli *c)
{
	char buf[4096];

	if (sim_diagnose(c->sim, buf, sizeof(buf)))
		fprintf(stderr, "vportfs-sim: timeout diagnosis:\n%s", buf);
}

static void err_rc(struct cli *c, int rc)
{
	if (rc == -ETIMEDOUT)
		err(c, "timeout");
	else if (rc == -EPROTO && sim_bug(c->sim))
		err(c, "device-bug: %s", sim_bug(c->sim));
	else if (rc == -ENOTCONN)
		err(c, "disconnected: %s", sim_error(c->sim));
	else
		err(c, "%s",
		    *sim_error(c->sim) ? sim_error(c->sim) : strerror(-rc));
}

/* ---- parsing ---------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes hex ("-" or "" = empty) into a new buffer.  false on bad input.*/
static bool parse_hex(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s);

	if (strcmp(s, "-") == 0)
		n = 0;
	if (n % 2)
		return false;
	*out = malloc(n / 2 + 1);
	if (!*out)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(*out);
			*out = NULL;
			return false;
		}
		(*out)[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return true;
}

/* writestr escapes: \n \r \t \0 \\ \xHH.  Decodes in place. */
static bool unescape(char *s, size_t *len)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r != '\\') {
			*w++ = *r;
			continue;
		}
		r++;
		switch (*r) {
		case 'n':
			*w++ = '\n';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 't':
			*w++ = '\t';
			break;
		case '0':
			*w++ = '\0';
			break;
		case '\\':
			*w++ = '\\';
			break;
		case 's':
			*w++ = ' ';
			break;
		case 'x': {
			int hi = hexval(r[1]), lo = hi >= 0 ? hexval(r[2]) : -1;
			if (hi < 0 || lo < 0)
				return false;
			*w++ = (char)(hi << 4 | lo);
			r += 2;
			break;
		}
		default:
			return false;
		}
	}
	*len = (size_t)(w - s);
	return true;
}

/* Optional trailing timeout argument. */
static bool opt_timeout(struct cli *c, int argc, char **argv, int at, int *t)
{
	unsigned v;

	*t = c->timeout_ms;
	if (argc <= at)
		return true;
	if (!parse_uint(argv[at], INT_MAX, &v))
		return false;
	*t = (int)v;
	return true;
}

/* ---- waiting ------------------------------------------------------------ */

struct port_flag_arg {
	unsigned nr;
	int want; /* host: 0/1; gone: -1 */
};

static bool cond_host(struct sim *s, void *a)
{
	struct port_flag_arg *pa = a;
	struct sim_port_info pi;

	if (sim_port_info(s, pa->nr, &pi))
		return pa->want == 0; /* a removed port is not connected */
	return pi.host_connected == (pa->want != 0);
}

static bool cond_gone(struct sim *s, void *a)
{
	struct port_flag_arg *pa = a;
	struct sim_port_info pi;

	return sim_port_info(s, pa->nr, &pi) != 0;
}

static bool cond_tx_done(struct sim *s, void *a)
{
	struct port_flag_arg *pa = a;

	return sim_port_tx_pending(s, pa->nr) <= 0;
}

static bool cond_rx_any(struct sim *s, void *a)
{
	struct port_flag_arg *pa = a;

	return sim_port_rx_pending(s, pa->nr) != 0;
}

struct raw_used_arg {
	unsigned q;
	struct sim_raw_completion c;
};

static bool cond_raw_used(struct sim *s, void *a)
{
	struct raw_used_arg *ra = a;

	return sim_raw_used(s, ra->q, &ra->c) == 0;
}

static bool cond_never(struct sim *s, void *a)
{
	(void)s;
	(void)a;
	return false;
}

static bool cond_tx_room(struct sim *s, void *a)
{
	struct port_flag_arg *pa = a;
	struct sim_port_info pi;

	/* Some buffer came back since the ring was full (or all did). */
	if (sim_port_info(s, pa->nr, &pi))
		return true;
	return pi.tx_pending < (size_t)pa->want;
}

/* ---- commands --------------------------------------------------------- */

struct cmd {
	const char *name;
	int min_args, max_args; /* after the command name */
	void (*fn)(struct cli *c, int argc, char **argv, char *rest);
	const char *usage;
	const char *help;
};

static bool port_arg(struct cli *c, const char *s, unsigned *nr)
{
	if (!parse_uint(s, UINT32_MAX, nr)) {
		err(c, "bad port number '%s'", s);
		return false;
	}
	return true;
}

static void cmd_status(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_state st;

	(void)argc, (void)argv, (void)rest;
	sim_get_state(c->sim, &st);
	ok(c,
	   "connected=%d ports=%u nports=%u nqueues=%u max_nr_ports=%u bugs=%u",
	   sim_connected(c->sim), sim_port_count(c->sim), st.nports, st.nqueues,
	   st.max_nr_ports, sim_bug_count(c->sim));
}

static void cmd_state(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_state st;

	(void)argc, (void)argv, (void)rest;
	sim_get_state(c->sim, &st);
	ok(c,
	   "features=0x%llx acked_features=0x%llx protocol=0x%llx "
	   "acked_protocol=0x%llx queue_num=%llu max_nr_ports=%u cols=%u "
	   "rows=%u nports=%u nqueues=%u event_idx=%d indirect=%d "
	   "guest_base=0x%llx mem_size=%llu user_offset=0x%llx "
	   "mmap_offset=%llu",
	   (unsigned long long)st.features,
	   (unsigned long long)st.acked_features,
	   (unsigned long long)st.protocol_features,
	   (unsigned long long)st.acked_protocol,
	   (unsigned long long)st.queue_num, st.max_nr_ports, st.cols, st.rows,
	   st.nports, st.nqueues, st.event_idx, st.indirect,
	   (unsigned long long)c->opts.guest_base,
	   (unsigned long long)c->opts.mem_size,
	   (unsigned long long)c->opts.user_offset,
	   (unsigned long long)c->opts.mmap_offset);
}

static void cmd_stats(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_stats st;

	(void)argc, (void)argv, (void)rest;
	sim_get_stats(c->sim, &st);
	ok(c,
	   "kicks=%llu kicks_suppressed=%llu calls=%llu backend_msgs=%llu "
	   "config_changes=%llu ctrl_rx=%llu ctrl_tx=%llu vu_msgs=%llu",
	   (unsigned long long)st.kicks,
	   (unsigned long long)st.kicks_suppressed,
	   (unsigned long long)st.calls, (unsigned long long)st.backend_msgs,
	   (unsigned long long)st.config_changes,
	   (unsigned long long)st.ctrl_rx, (unsigned long long)st.ctrl_tx,
	   (unsigned long long)st.vu_msgs);
}

static void cmd_wait_port(struct cli *c, int argc, char **argv, char *rest)
{
	int t, nr;

	(void)rest;
	if (!opt_timeout(c, argc, argv, 2, &t))
		return err(c, "bad timeout");
	nr = sim_wait_port(c->sim, argv[1], t);
	if (nr < 0)
		return err_rc(c, nr);
	ok(c, "%d", nr);
}

static void cmd_ports(struct cli *c, int argc, char **argv, char *rest)
{
	struct strbuf *b;
	bool first = true;

	(void)argc, (void)argv, (void)rest;
	b = ok_buf(c);
	b->len--; /* no trailing space when there are no ports */
	b->p[b->len] = '\0';
	for (int nr = sim_port_next(c->sim, -1); nr >= 0;
	     nr = sim_port_next(c->sim, nr)) {
		struct sim_port_info pi;
		if (sim_port_info(c->sim, (unsigned)nr, &pi))
			continue;
		sb_printf(b, first ? " %u:" : " %u:", pi.nr);
		first = false;
		sb_name(b, pi.name ? pi.name : "");
		sb_printf(b, ":console=%d:host=%d:guest=%d", pi.console,
			  pi.host_connected, pi.guest_connected);
	}
}

static void cmd_info(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_port_info pi;
	unsigned nr;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (sim_port_info(c->sim, nr, &pi))
		return err(c, "no port %u", nr);
	struct strbuf *b = ok_buf(c);
	sb_printf(b, "nr=%u name=", pi.nr);
	sb_name(b, pi.name ? pi.name : "");
	sb_printf(b,
		  " named=%d console=%d host=%d guest=%d queues=%d withheld=%d "
		  "cols=%u rows=%u rx_avail=%u rx_pending=%zu tx_pending=%zu "
		  "rx_total=%llu tx_total=%llu rx_discarded=%llu adds=%u "
		  "removes=%u",
		  pi.name != NULL, pi.console, pi.host_connected,
		  pi.guest_connected, pi.has_queues, pi.rx_withheld, pi.cols,
		  pi.rows, pi.rx_avail, pi.rx_pending, pi.tx_pending,
		  (unsigned long long)pi.rx_total,
		  (unsigned long long)pi.tx_total,
		  (unsigned long long)pi.rx_discarded, pi.adds, pi.removes);
}

static void cmd_open_close(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr;
	int rc;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	rc = strcmp(argv[0], "open") == 0 ? sim_port_open(c->sim, nr)
					  : sim_port_close(c->sim, nr);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_host(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_port_info pi;
	unsigned nr;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (sim_port_info(c->sim, nr, &pi))
		return err(c, "no port %u", nr);
	ok(c, "%d", pi.host_connected);
}

static void cmd_wait_host(struct cli *c, int argc, char **argv, char *rest)
{
	struct port_flag_arg a;
	unsigned v;
	int t, rc;

	(void)rest;
	if (!port_arg(c, argv[1], &a.nr))
		return;
	if (!parse_uint(argv[2], 1, &v))
		return err(c, "state must be 0 or 1");
	a.want = (int)v;
	if (!opt_timeout(c, argc, argv, 3, &t))
		return err(c, "bad timeout");
	rc = sim_wait(c->sim, cond_host, &a, t);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

/* "CMD NR [timeout_ms]": wait until cond holds for port NR. */
static void wait_port_cond(struct cli *c, int argc, char **argv,
			   bool (*cond)(struct sim *, void *))
{
	struct port_flag_arg a = {0};
	int t, rc;

	if (!port_arg(c, argv[1], &a.nr))
		return;
	if (!opt_timeout(c, argc, argv, 2, &t))
		return err(c, "bad timeout");
	rc = sim_wait(c->sim, cond, &a, t);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_wait_gone(struct cli *c, int argc, char **argv, char *rest)
{
	(void)rest;
	wait_port_cond(c, argc, argv, cond_gone);
}

/* Queues all of data, waiting for ring space; a stall longer than t ms
 * ends it.  Returns bytes queued, *rc_out the failure if short. */
static size_t write_stream(struct cli *c, unsigned nr, const uint8_t *data,
			   size_t len, int t, int *rc_out)
{
	size_t done = 0;

	*rc_out = 0;
	while (done < len) {
		long n = sim_port_write(c->sim, nr, data + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n != -EAGAIN) {
			*rc_out = (int)n;
			break;
		}
		long pending = sim_port_tx_pending(c->sim, nr);
		struct port_flag_arg a = {
			.nr = nr,
			.want = pending > INT_MAX ? INT_MAX : (int)pending};
		int rc = sim_wait(c->sim, cond_tx_room, &a, t);
		if (rc) {
			*rc_out = rc;
			break;
		}
	}
	return done;
}

static void cmd_write(struct cli *c, int argc, char **argv, char *rest)
{
	uint8_t *data;
	size_t len;
	unsigned nr;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_hex(argv[2], &data, &len))
		return err(c, "bad hex");
	long n = sim_port_write(c->sim, nr, data, len);
	free(data);
	if (n == -EAGAIN)
		return ok(c, "0");
	if (n < 0)
		return err_rc(c, (int)n);
	ok(c, "%ld", n);
}

static void cmd_write_all(struct cli *c, int argc, char **argv, char *rest)
{
	uint8_t *data;
	size_t len;
	unsigned nr;
	int t, rc;

	(void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!opt_timeout(c, argc, argv, 3, &t))
		return err(c, "bad timeout");
	if (!parse_hex(argv[2], &data, &len))
		return err(c, "bad hex");
	size_t done = write_stream(c, nr, data, len, t, &rc);
	free(data);
	if (rc == -ETIMEDOUT)
		return err(c, "timeout %zu", done);
	if (rc)
		return err_rc(c, rc);
	ok(c, "%zu", done);
}

static void cmd_writestr(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr;
	size_t len;

	(void)argc;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!rest)
		rest = argv[argc]; /* "" */
	if (!unescape(rest, &len))
		return err(c, "bad escape (\\n \\r \\t \\0 \\s \\\\ \\xHH)");
	long n = sim_port_write(c->sim, nr, rest, len);
	if (n == -EAGAIN)
		return ok(c, "0");
	if (n < 0)
		return err_rc(c, (int)n);
	ok(c, "%ld", n);
}

static void cmd_write_file(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr;
	int t, rc = 0;
	size_t total = 0;

	(void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!opt_timeout(c, argc, argv, 3, &t))
		return err(c, "bad timeout");
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err(c, "open %s: %s", argv[2], strerror(errno));
	uint8_t *buf = malloc(IO_CHUNK);
	if (!buf) {
		close(fd);
		return err(c, "out of memory");
	}
	for (;;) {
		ssize_t n = read(fd, buf, IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err(c, "read %s: %s", argv[2], strerror(errno));
			break;
		}
		if (n == 0)
			break;
		size_t done = write_stream(c, nr, buf, (size_t)n, t, &rc);
		total += done;
		if (rc)
			break;
	}
	free(buf);
	close(fd);
	if (rc == -ETIMEDOUT)
		return err(c, "timeout %zu", total);
	if (rc)
		return err_rc(c, rc);
	ok(c, "%zu", total);
}

static void cmd_wait_tx(struct cli *c, int argc, char **argv, char *rest)
{
	(void)rest;
	wait_port_cond(c, argc, argv, cond_tx_done);
}

static void cmd_read(struct cli *c, int argc, char **argv, char *rest)
{
	struct port_flag_arg a = {0};
	unsigned max;
	int t, rc;

	(void)rest;
	if (!port_arg(c, argv[1], &a.nr))
		return;
	if (!parse_uint(argv[2], 1u << 30, &max))
		return err(c, "bad byte count");
	if (!opt_timeout(c, argc, argv, 3, &t))
		return err(c, "bad timeout");
	rc = sim_wait(c->sim, cond_rx_any, &a, t);
	if (rc && rc != -ETIMEDOUT)
		return err_rc(c, rc);
	uint8_t *buf = malloc(max ? max : 1);
	if (!buf)
		return err(c, "out of memory");
	long n = sim_port_read(c->sim, a.nr, buf, max);
	if (n < 0) {
		free(buf);
		return err_rc(c, (int)n);
	}
	struct strbuf *b = ok_buf(c);
	if (n == 0) {
		b->len--;
		b->p[b->len] = '\0';
	}
	sb_hex(b, buf, (size_t)n);
	free(buf);
}

/* Reads exactly want bytes into buf (or to fd when fd >= 0), waiting up to
 * t ms for each step of progress.  Returns bytes got, *rc_out why short. */
static size_t read_exact(struct cli *c, unsigned nr, uint8_t *buf, size_t want,
			 int fd, int t, int *rc_out)
{
	struct port_flag_arg a = {.nr = nr};
	size_t got = 0;

	*rc_out = 0;
	while (got < want) {
		size_t room = want - got;
		uint8_t *dst = buf + (fd >= 0 ? 0 : got);
		if (fd >= 0 && room > IO_CHUNK)
			room = IO_CHUNK;
		long n = sim_port_read(c->sim, nr, dst, room);
		if (n < 0) {
			*rc_out = (int)n;
			break;
		}
		if (n > 0 && fd >= 0) {
			const uint8_t *p = dst;
			size_t left = (size_t)n;
			while (left > 0) {
				ssize_t w = write(fd, p, left);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					*rc_out = -errno;
					return got;
				}
				p += w;
				left -= (size_t)w;
			}
		}
		got += (size_t)n;
		if (got == want)
			break;
		if (n == 0) {
			int rc = sim_wait(c->sim, cond_rx_any, &a, t);
			if (rc) {
				*rc_out = rc;
				break;
			}
		}
	}
	return got;
}

static void cmd_readn(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr, want;
	int t, rc;

	(void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_uint(argv[2], 1u << 30, &want))
		return err(c, "bad byte count");
	if (!opt_timeout(c, argc, argv, 3, &t))
		return err(c, "bad timeout");
	uint8_t *buf = malloc(want ? want : 1);
	if (!buf)
		return err(c, "out of memory");
	size_t got = read_exact(c, nr, buf, want, -1, t, &rc);
	if (rc == -ETIMEDOUT) {
		struct strbuf hex = {0};
		sb_hex(&hex, buf, got);
		err(c, "timeout %s", hex.p ? hex.p : "");
		if (hex.len > 400) {
			/* err() truncates: rebuild the reply in full. */
			c->out.len = 0;
			sb_printf(&c->out, "err timeout ");
			sb_hex(&c->out, buf, got);
		}
		free(hex.p);
	} else if (rc) {
		err_rc(c, rc);
	} else {
		sb_hex(ok_buf(c), buf, got);
		if (got == 0) {
			c->out.len--;
			c->out.p[c->out.len] = '\0';
		}
	}
	free(buf);
}

static void cmd_read_file(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr;
	uint64_t want;
	int t, rc;

	(void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_u64(argv[3], &want))
		return err(c, "bad byte count");
	if (!opt_timeout(c, argc, argv, 4, &t))
		return err(c, "bad timeout");
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return err(c, "open %s: %s", argv[2], strerror(errno));
	uint8_t *buf = malloc(IO_CHUNK);
	if (!buf) {
		close(fd);
		return err(c, "out of memory");
	}
	size_t got = read_exact(c, nr, buf, (size_t)want, fd, t, &rc);
	free(buf);
	close(fd);
	if (rc == -ETIMEDOUT)
		return err(c, "timeout %zu", got);
	if (rc)
		return err_rc(c, rc);
	ok(c, "%zu", got);
}

/* rx-withhold NR 0|1 and tx-withhold-kick NR 0|1. */
static void cmd_withhold(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr, v;
	int rc;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_uint(argv[2], 1, &v))
		return err(c, "value must be 0 or 1");
	rc = strcmp(argv[0], "rx-withhold") == 0
		     ? sim_port_rx_withhold(c->sim, nr, v)
		     : sim_port_tx_withhold_kick(c->sim, nr, v);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_tx_scribble(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr, byte;
	int n;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_uint(argv[2], 255, &byte))
		return err(c, "byte must be 0 to 255");
	n = sim_port_tx_scribble(c->sim, nr, (uint8_t)byte);
	if (n < 0)
		return err_rc(c, n);
	ok(c, "%d", n);
}

static void cmd_rx_post(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned nr, count, size;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (!parse_uint(argv[2], 65536, &count) ||
	    !parse_uint(argv[3], UINT32_MAX, &size))
		return err(c, "bad count or size");
	int rc = sim_port_rx_post(c->sim, nr, count, size);
	if (rc < 0)
		return err_rc(c, rc);
	ok(c, "%d", rc);
}

static void cmd_rx_stat(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_port_info pi;
	unsigned nr;

	(void)argc, (void)rest;
	if (!port_arg(c, argv[1], &nr))
		return;
	if (sim_port_info(c->sim, nr, &pi))
		return err(c, "no port %u", nr);
	if (strcmp(argv[0], "rx-avail") == 0)
		ok(c, "%u", pi.rx_avail);
	else if (strcmp(argv[0], "rx-bytes") == 0)
		ok(c, "%zu", pi.rx_pending);
	else
		ok(c, "%zu", pi.tx_pending);
}

static void cmd_config(struct cli *c, int argc, char **argv, char *rest)
{
	struct virtio_console_config cfg;

	(void)argc, (void)argv, (void)rest;
	int rc = sim_read_config(c->sim, &cfg);
	if (rc)
		return err_rc(c, rc);
	ok(c, "%u %u %u", cfg.cols, cfg.rows, cfg.max_nr_ports);
}

static void cmd_get_config(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned off, len;
	uint8_t buf[VU_MAX_CONFIG_SIZE];

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], UINT32_MAX, &off) ||
	    !parse_uint(argv[2], VU_MAX_CONFIG_SIZE, &len))
		return err(c, "bad offset or length");
	int rc = sim_get_config(c->sim, off, buf, len);
	if (rc)
		return err_rc(c, rc);
	sb_hex(ok_buf(c), buf, len);
}

static void cmd_set_config(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned off;
	uint8_t *data;
	size_t len;

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], UINT32_MAX, &off))
		return err(c, "bad offset");
	if (!parse_hex(argv[2], &data, &len) || len > VU_MAX_CONFIG_SIZE) {
		free(data);
		return err(c, "bad hex");
	}
	int rc = sim_set_config(c->sim, off, data, (uint32_t)len);
	free(data);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_emerg(struct cli *c, int argc, char **argv, char *rest)
{
	size_t len;

	(void)argc;
	/* The text is the whole line after the command: the tokenizer's
	 * rest-of-line starts one token later, so join the two again. */
	if (rest)
		rest[-1] = ' ';
	rest = argv[1];
	if (!unescape(rest, &len))
		return err(c, "bad escape");
	/* Linux's put_chars for early consoles: one emerg_wr write per
	 * character, as a 32-bit config write at offset 8. */
	for (size_t i = 0; i < len; i++) {
		uint32_t ch = (uint8_t)rest[i];
		int rc = sim_set_config(
			c->sim,
			offsetof(struct virtio_console_config, emerg_wr), &ch,
			sizeof(ch));
		if (rc)
			return err_rc(c, rc);
	}
	ok(c, "%zu", len);
}

static const struct {
	const char *name;
	uint16_t ev;
} event_table[] = {
	{"DEVICE_READY", VIRTIO_CONSOLE_DEVICE_READY},
	{"PORT_ADD", VIRTIO_CONSOLE_PORT_ADD},
	{"PORT_REMOVE", VIRTIO_CONSOLE_PORT_REMOVE},
	{"PORT_READY", VIRTIO_CONSOLE_PORT_READY},
	{"CONSOLE_PORT", VIRTIO_CONSOLE_CONSOLE_PORT},
	{"RESIZE", VIRTIO_CONSOLE_RESIZE},
	{"PORT_OPEN", VIRTIO_CONSOLE_PORT_OPEN},
	{"PORT_NAME", VIRTIO_CONSOLE_PORT_NAME},
};

static void cmd_ctrl(struct cli *c, int argc, char **argv, char *rest)
{
	uint64_t id;
	unsigned ev = UINT_MAX, val;
	uint8_t *extra = NULL;
	size_t elen = 0;

	(void)rest;
	if (!parse_u64(argv[1], &id) || id > UINT32_MAX)
		return err(c, "bad id");
	for (size_t i = 0; i < sizeof(event_table) / sizeof(event_table[0]);
	     i++)
		if (strcasecmp(argv[2], event_table[i].name) == 0)
			ev = event_table[i].ev;
	if (ev == UINT_MAX && !parse_uint(argv[2], 0xffff, &ev))
		return err(c, "bad event");
	if (!parse_uint(argv[3], 0xffff, &val))
		return err(c, "bad value");
	if (argc > 4 && !parse_hex(argv[4], &extra, &elen))
		return err(c, "bad hex");
	int rc = sim_send_ctrl(c->sim, (uint32_t)id, (uint16_t)ev,
			       (uint16_t)val, extra, elen);
	free(extra);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

/* ---- raw vhost-user messages ------------------------------------------- */

static int make_fd(const char *spec, const struct cli *c, int *own)
{
	*own = -1;
	if (strcmp(spec, "eventfd") == 0)
		return *own = eventfd(0, EFD_CLOEXEC);
	if (strcmp(spec, "devnull") == 0)
		return *own = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (strncmp(spec, "memfd:", 6) == 0) {
		uint64_t size;
		if (!parse_u64(spec + 6, &size))
			return -1;
		int fd = memfd_create("vportfs-sim-raw", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)size)) {
			close(fd);
			return -1;
		}
		return *own = fd;
	}
	if (strcmp(spec, "sock") == 0) {
		int pair[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair))
			return -1;
		close(pair[1]);
		return *own = pair[0];
	}
	(void)c;
	return -1;
}

static bool request_has_reply(uint32_t req)
{
	return req == VU_REQ_GET_FEATURES ||
	       req == VU_REQ_GET_PROTOCOL_FEATURES ||
	       req == VU_REQ_GET_VRING_BASE || req == VU_REQ_GET_QUEUE_NUM ||
	       req == VU_REQ_GET_CONFIG;
}

static void cmd_raw_msg(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned req, flags;
	uint8_t *payload = NULL;
	size_t len = 0;
	uint64_t hdr_size = 0;
	bool size_set = false;
	int fds[8], own[8];
	unsigned nfds = 0;
	int timeout = -1;
	struct sim_raw_reply r;

	(void)rest;
	if (!parse_uint(argv[1], UINT32_MAX, &req) ||
	    !parse_uint(argv[2], UINT32_MAX, &flags))
		return err(c, "bad request or flags");
	if (!parse_hex(argv[3], &payload, &len))
		return err(c, "bad hex payload");
	for (int i = 4; i < argc; i++) {
		unsigned v;
		if (strncmp(argv[i], "size=", 5) == 0 &&
		    parse_u64(argv[i] + 5, &hdr_size) &&
		    hdr_size <= UINT32_MAX) {
			size_set = true;
		} else if (strncmp(argv[i], "timeout=", 8) == 0 &&
			   parse_uint(argv[i] + 8, INT_MAX, &v)) {
			timeout = (int)v;
		} else if (strncmp(argv[i], "fd=", 3) == 0 && nfds < 8) {
			fds[nfds] = make_fd(argv[i] + 3, c, &own[nfds]);
			if (fds[nfds] < 0) {
				err(c, "bad fd spec '%s'", argv[i] + 3);
				goto out_close_fds;
			}
			nfds++;
		} else {
			err(c, "bad option '%s'", argv[i]);
			goto out_close_fds;
		}
	}
	if (!size_set)
		hdr_size = len;
	if (timeout < 0)
		timeout = (flags & VU_FLAG_NEED_REPLY) || request_has_reply(req)
				  ? c->timeout_ms
				  : 200;
	int rc = sim_raw_msg(c->sim, req, flags, (uint32_t)hdr_size, payload,
			     (uint32_t)len, fds, nfds, &r, timeout);
	if (rc) {
		err_rc(c, rc);
	} else if (!r.got) {
		ok(c, "noreply");
	} else {
		struct strbuf *b = ok_buf(c);
		sb_printf(b, "%u 0x%x ", r.request, r.flags);
		sb_hex(b, r.payload, r.payload_len);
	}
out_close_fds:
	for (unsigned i = 0; i < nfds; i++)
		if (own[i] >= 0)
			close(own[i]);
	free(payload);
}

/* ---- raw descriptors --------------------------------------------------- */

static bool parse_flags(const char *s, uint16_t *out)
{
	unsigned v;

	if (strcmp(s, "-") == 0 || strcmp(s, "0") == 0) {
		*out = 0;
		return true;
	}
	if (parse_uint(s, 0xffff, &v)) {
		*out = (uint16_t)v;
		return true;
	}
	*out = 0;
	for (const char *p = s; *p; p++) {
		if (*p == 'n')
			*out |= VRING_DESC_F_NEXT;
		else if (*p == 'w')
			*out |= VRING_DESC_F_WRITE;
		else if (*p == 'i')
			*out |= VRING_DESC_F_INDIRECT;
		else
			return false;
	}
	return true;
}

/* ADDR:LEN[:FLAGS[:NEXT]], see --help. */
static bool parse_desc(char *spec, unsigned i, unsigned n,
		       struct sim_raw_desc *d, uint8_t **data)
{
	char *f[5] = {0};
	unsigned nf = 0;
	uint64_t v;

	memset(d, 0, sizeof(*d));
	for (char *save = NULL, *t = strtok_r(spec, ":", &save); t && nf < 5;
	     t = strtok_r(NULL, ":", &save))
		f[nf++] = t;
	if (nf < 2 || nf > 4)
		return false;
	bool len_auto = strcmp(f[1], "-") == 0;
	if (!len_auto) {
		if (!parse_u64(f[1], &v) || v > UINT32_MAX)
			return false;
		d->len = (uint32_t)v;
	}
	if (strcmp(f[0], "buf") == 0) {
		if (len_auto)
			return false;
		d->alloc = d->len ? d->len : 1;
	} else if (strncmp(f[0], "buf=", 4) == 0) {
		if (!parse_u64(f[0] + 4, &v) || v == 0 || v > (1u << 30))
			return false;
		d->alloc = (uint32_t)v;
		if (len_auto)
			d->len = d->alloc;
	} else if (strncmp(f[0], "hex=", 4) == 0) {
		size_t dl;
		if (!parse_hex(f[0] + 4, data, &dl))
			return false;
		d->data = *data;
		d->data_len = dl;
		d->alloc = dl ? (uint32_t)dl : 1;
		if (len_auto)
			d->len = (uint32_t)dl;
	} else {
		if (len_auto || !parse_u64(f[0], &d->addr))
			return false;
	}
	if (nf >= 3) {
		if (!parse_flags(f[2], &d->flags))
			return false;
	} else if (i + 1 < n) {
		d->flags = VRING_DESC_F_NEXT;
	}
	d->next = (uint16_t)(i + 1);
	if (nf == 4) {
		unsigned k;
		if (f[3][0] == '@') {
			if (!parse_uint(f[3] + 1, 0xffff, &k))
				return false;
			d->next = (uint16_t)k;
		} else {
			if (!parse_uint(f[3], 0xffff, &k))
				return false;
			d->next = (uint16_t)k;
			d->next_abs = true;
		}
	}
	return true;
}

static void cmd_raw_desc(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_raw_ring_desc ring = {0};
	struct sim_raw_desc descs[256];
	uint8_t *datas[256] = {0};
	unsigned q, n = 0;
	char *list = NULL;
	uint16_t head;

	(void)rest;
	if (!parse_uint(argv[1], 0xffff, &q))
		return err(c, "bad queue index");
	for (int i = 2; i < argc; i++) {
		uint64_t v;
		uint16_t fl;
		if (strcmp(argv[i], "indirect") == 0) {
			ring.indirect = true;
		} else if (strncmp(argv[i], "ring-addr=", 10) == 0 &&
			   parse_u64(argv[i] + 10, &v)) {
			ring.set_addr = true;
			ring.addr = v;
		} else if (strncmp(argv[i], "ring-len=", 9) == 0 &&
			   parse_u64(argv[i] + 9, &v) && v <= UINT32_MAX) {
			ring.set_len = true;
			ring.len = (uint32_t)v;
		} else if (strncmp(argv[i], "ring-flags=", 11) == 0 &&
			   parse_flags(argv[i] + 11, &fl)) {
			ring.extra_flags = fl;
		} else if (!list && i == argc - 1) {
			list = argv[i];
		} else {
			return err(c, "bad option '%s'", argv[i]);
		}
	}
	if (!list)
		return err(c, "no descriptor list");
	if (strcmp(list, "-") != 0) {
		unsigned total = 1;
		for (const char *p = list; *p; p++)
			total += *p == ',';
		if (total > 256)
			return err(c, "at most 256 descriptors");
		char *save = NULL;
		for (char *t = strtok_r(list, ",", &save); t;
		     t = strtok_r(NULL, ",", &save)) {
			if (!parse_desc(t, n, total, &descs[n], &datas[n])) {
				err(c,
				    "bad descriptor %u "
				    "(ADDR:LEN[:FLAGS[:NEXT]])",
				    n);
				goto out_free_data;
			}
			n++;
		}
	}
	int rc = sim_raw_chain(c->sim, q, descs, n, &ring, &head);
	if (rc)
		err_rc(c, rc);
	else
		ok(c, "%u", head);
out_free_data:
	for (unsigned i = 0; i < 256; i++)
		free(datas[i]);
}

static void cmd_raw_head(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned q, v;

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], 0xffff, &q) ||
	    !parse_uint(argv[2], 0xffff, &v))
		return err(c, "bad queue or value");
	int rc = strcmp(argv[0], "raw-head") == 0
			 ? sim_raw_head(c->sim, q, (uint16_t)v)
			 : sim_raw_avail_idx(c->sim, q, (uint16_t)v);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_raw_used(struct cli *c, int argc, char **argv, char *rest)
{
	struct raw_used_arg a;
	int t, rc;

	(void)rest;
	if (!parse_uint(argv[1], 0xffff, &a.q))
		return err(c, "bad queue index");
	if (!opt_timeout(c, argc, argv, 2, &t))
		return err(c, "bad timeout");
	rc = sim_wait(c->sim, cond_raw_used, &a, t);
	if (rc)
		return err_rc(c, rc);
	ok(c, "%u %u", a.c.id, a.c.len);
}

static void cmd_kick(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned q;

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], 0xffff, &q))
		return err(c, "bad queue index");
	int rc = sim_raw_kick(c->sim, q);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_flood(struct cli *c, int argc, char **argv, char *rest)
{
	uint64_t posted;
	unsigned q;
	int rc;

	(void)rest;
	if (strcmp(argv[0], "flood-stop") == 0) {
		rc = sim_flood_stop(c->sim, &posted);
		if (rc)
			return err_rc(c, rc);
		return ok(c, "%" PRIu64, posted);
	}
	if (argc != 2 || !parse_uint(argv[1], 0xffff, &q))
		return err(c, "bad queue index");
	rc = sim_flood_start(c->sim, q);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_shrink_mem(struct cli *c, int argc, char **argv, char *rest)
{
	uint64_t size;

	(void)argc, (void)rest;
	if (!parse_u64(argv[1], &size))
		return err(c, "bad size");
	int rc = sim_shrink_memory(c->sim, size);
	if (rc)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_queue(struct cli *c, int argc, char **argv, char *rest)
{
	struct sim_queue_info qi;
	unsigned q;

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], 0xffff, &q) || sim_queue_info(c->sim, q, &qi))
		return err(c, "no such queue");
	ok(c,
	   "num=%u desc=0x%llx avail=0x%llx used=0x%llx desc_uaddr=0x%llx "
	   "free=%u inflight=%u avail_idx=%u last_used=%u used_idx=%u "
	   "used_flags=%u avail_event=%u broken=%d tainted=%d",
	   qi.num, (unsigned long long)qi.desc_gpa,
	   (unsigned long long)qi.avail_gpa, (unsigned long long)qi.used_gpa,
	   (unsigned long long)qi.desc_uaddr, qi.num_free, qi.inflight,
	   qi.avail_idx, qi.last_used, qi.used_idx, qi.used_flags,
	   qi.avail_event, qi.broken, qi.tainted);
}

static void cmd_bugs(struct cli *c, int argc, char **argv, char *rest)
{
	(void)argc, (void)argv, (void)rest;
	if (sim_bug(c->sim))
		ok(c, "%u %s", sim_bug_count(c->sim), sim_bug(c->sim));
	else
		ok(c, "0");
}

static void cmd_bug_clear(struct cli *c, int argc, char **argv, char *rest)
{
	(void)argc, (void)argv, (void)rest;
	sim_bug_clear(c->sim);
	ok(c, NULL);
}

static void cmd_sleep(struct cli *c, int argc, char **argv, char *rest)
{
	unsigned ms;

	(void)argc, (void)rest;
	if (!parse_uint(argv[1], INT_MAX, &ms))
		return err(c, "bad duration");
	int rc = sim_wait(c->sim, cond_never, NULL, (int)ms);
	if (rc && rc != -ETIMEDOUT && rc != -ENOTCONN)
		return err_rc(c, rc);
	ok(c, NULL);
}

static void cmd_disconnect(struct cli *c, int argc, char **argv, char *rest)
{
	(void)argc, (void)argv, (void)rest;
	sim_disconnect(c->sim);
	ok(c, NULL);
}

static void cmd_quit(struct cli *c, int argc, char **argv, char *rest)
{
	(void)argc, (void)argv, (void)rest;
	c->quit = true;
	ok(c, NULL);
}

static void cmd_help(struct cli *c, int argc, char **argv, char *rest);

static const struct cmd commands[] = {
	{"help", 0, 0, cmd_help, "help", "list the commands (one line)"},
	{"status", 0, 0, cmd_status, "status",
	 "ok connected=0|1 ports=N nports=N nqueues=N max_nr_ports=N bugs=N"},
	{"state", 0, 0, cmd_state, "state",
	 "negotiated features, queue count, guest memory layout"},
	{"stats", 0, 0, cmd_stats, "stats",
	 "kicks, suppressed kicks, calls, backend and control messages"},
	{"wait-port", 1, 2, cmd_wait_port, "wait-port NAME [ms]",
	 "wait until a port named NAME is added and named -> ok NR"},
	{"ports", 0, 0, cmd_ports, "ports",
	 "-> ok NR:NAME:console=0|1:host=0|1:guest=0|1 ... (NAME %XX-escaped)"},
	{"info", 1, 1, cmd_info, "info NR", "port details as key=value"},
	{"open", 1, 1, cmd_open_close, "open NR", "guest PORT_OPEN(NR, 1)"},
	{"close", 1, 1, cmd_open_close, "close NR",
	 "guest PORT_OPEN(NR, 0); unread data is discarded like Linux"},
	{"host", 1, 1, cmd_host, "host NR",
	 "-> ok 0|1, host_connected as last told by the device"},
	{"wait-host", 2, 3, cmd_wait_host, "wait-host NR 0|1 [ms]",
	 "wait until host_connected is 0|1 -> ok | err timeout"},
	{"wait-gone", 1, 2, cmd_wait_gone, "wait-gone NR [ms]",
	 "wait until port NR is removed (PORT_REMOVE)"},
	{"write", 2, 2, cmd_write, "write NR HEX",
	 "queue as much as fits in the TX ring -> ok N (0: ring full)"},
	{"write-all", 2, 3, cmd_write_all, "write-all NR HEX [ms]",
	 "queue everything, waiting for ring space -> ok N | err timeout N"},
	{"writestr", 1, -1, cmd_writestr, "writestr NR TEXT",
	 "rest of line; escapes \\n \\r \\t \\0 \\s \\\\ \\xHH -> ok N"},
	{"write-file", 2, 3, cmd_write_file, "write-file NR PATH [ms]",
	 "stream a whole file; ms bounds each stall -> ok N | err timeout N"},
	{"wait-tx", 1, 2, cmd_wait_tx, "wait-tx NR [ms]",
	 "wait until the device returned every TX buffer"},
	{"tx-pending", 1, 1, cmd_rx_stat, "tx-pending NR",
	 "-> ok N, bytes in TX buffers not yet returned"},
	{"read", 2, 3, cmd_read, "read NR MAX [ms]",
	 "wait for >= 1 byte, return up to MAX -> ok HEX ('ok' if none)"},
	{"readn", 2, 3, cmd_readn, "readn NR N [ms]",
	 "exactly N bytes -> ok HEX | err timeout PARTIALHEX"},
	{"read-file", 3, 4, cmd_read_file, "read-file NR PATH N [ms]",
	 "append exactly N received bytes to PATH -> ok N | err timeout GOT"},
	{"rx-withhold", 2, 2, cmd_withhold, "rx-withhold NR 0|1",
	 "1: stop re-posting RX buffers; 0: re-post them"},
	{"tx-withhold-kick", 2, 2, cmd_withhold, "tx-withhold-kick NR 0|1",
	 "1: publish TX chains without kicking; 0: kick for them now"},
	{"tx-scribble", 2, 2, cmd_tx_scribble, "tx-scribble NR BYTE",
	 "overwrite every TX buffer still posted (a reset the device is "
	 "not told of) -> ok COUNT"},
	{"rx-post", 3, 3, cmd_rx_post, "rx-post NR COUNT SIZE",
	 "post COUNT more RX buffers of SIZE bytes -> ok POSTED"},
	{"rx-avail", 1, 1, cmd_rx_stat, "rx-avail NR",
	 "-> ok N, RX buffers posted and not used"},
	{"rx-bytes", 1, 1, cmd_rx_stat, "rx-bytes NR",
	 "-> ok N, received bytes not yet read"},
	{"config", 0, 0, cmd_config, "config",
	 "GET_CONFIG like UML -> ok COLS ROWS MAX_NR_PORTS"},
	{"get-config", 2, 2, cmd_get_config, "get-config OFF LEN",
	 "raw GET_CONFIG -> ok HEX"},
	{"set-config", 2, 2, cmd_set_config, "set-config OFF HEX",
	 "raw SET_CONFIG"},
	{"emerg", 1, -1, cmd_emerg, "emerg TEXT",
	 "emergency write: one emerg_wr SET_CONFIG per byte -> ok N"},
	{"ctrl", 3, 4, cmd_ctrl, "ctrl ID EVENT VALUE [HEX]",
	 "send any control message (EVENT: number or name)"},
	{"raw-msg", 3, 14, cmd_raw_msg,
	 "raw-msg REQ FLAGS HEX [size=N] [timeout=MS] [fd=SPEC]...",
	 "send any vhost-user message -> ok REQ FLAGS HEX | ok noreply"},
	{"raw-desc", 2, 7, cmd_raw_desc,
	 "raw-desc QIDX [indirect] [ring-addr=A] [ring-len=N] [ring-flags=F] "
	 "DESC[,DESC...]",
	 "post a hand-made chain and kick -> ok HEAD"},
	{"raw-head", 2, 2, cmd_raw_head, "raw-head QIDX HEAD",
	 "put any head index in the avail ring and kick"},
	{"raw-avail-idx", 2, 2, cmd_raw_head, "raw-avail-idx QIDX IDX",
	 "write avail->idx = IDX and kick"},
	{"raw-used", 1, 2, cmd_raw_used, "raw-used QIDX [ms]",
	 "wait for a raw chain's completion -> ok ID LEN | err timeout"},
	{"kick", 1, 1, cmd_kick, "kick QIDX", "kick a queue unconditionally"},
	{"flood", 1, 1, cmd_flood, "flood QIDX",
	 "a thread keeps QIDX full of chains the device must refuse"},
	{"flood-stop", 0, 0, cmd_flood, "flood-stop",
	 "stop the flood -> ok CHAINS_POSTED"},
	{"shrink-mem", 1, 1, cmd_shrink_mem, "shrink-mem SIZE",
	 "cut the guest-memory file behind the device's back (then only kick)"},
	{"queue", 1, 1, cmd_queue, "queue QIDX", "ring addresses and indexes"},
	{"bugs", 0, 0, cmd_bugs, "bugs", "-> ok COUNT [FIRST MESSAGE]"},
	{"bug-clear", 0, 0, cmd_bug_clear, "bug-clear",
	 "forget recorded device bugs"},
	{"sleep", 1, 1, cmd_sleep, "sleep MS",
	 "keep servicing the device for MS ms"},
	{"disconnect", 0, 0, cmd_disconnect, "disconnect",
	 "close the vhost-user socket, like a VM dying"},
	{"quit", 0, 0, cmd_quit, "quit", "answer ok and exit"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void cmd_help(struct cli *c, int argc, char **argv, char *rest)
{
	struct strbuf *b;

	(void)argc, (void)argv, (void)rest;
	b = ok_buf(c);
	for (size_t i = 0; i < NCOMMANDS; i++)
		sb_printf(b, i ? " %s" : "%s", commands[i].name);
}

/* Commands that still answer normally after a device bug. */
static bool bug_exempt(const char *name)
{
	return strcmp(name, "quit") == 0 || strcmp(name, "bugs") == 0 ||
	       strcmp(name, "bug-clear") == 0 || strcmp(name, "help") == 0 ||
	       strcmp(name, "status") == 0 || strcmp(name, "stats") == 0 ||
	       strcmp(name, "disconnect") == 0;
}

static void run_line(struct cli *c, char *line)
{
	char *argv[MAX_TOKENS + 1];
	char *rest = NULL;
	int argc = 0;
	char *p = line;

	c->replied = false;
	c->out.len = 0;
	/* Tokens; for "rest of line" commands, rest starts after token 2. */
	while (*p && argc < MAX_TOKENS) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p) {
			*p++ = '\0';
			if (argc == 2)
				rest = p;
		}
	}
	argv[argc] = "";
	if (argc == 0)
		return err(c, "empty command");
	const struct cmd *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return err(c, "unknown command '%s' (try help)", argv[0]);
	unsigned bugs_before = sim_bug_count(c->sim);
	if (bugs_before && !bug_exempt(cmd->name))
		return err(c, "device-bug: %s", sim_bug(c->sim));
	if (cmd->max_args >= 0) {
		/* Only rest-of-line commands keep the rest joined. */
		if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
			return err(c, "usage: %s", cmd->usage);
	} else if (argc - 1 < cmd->min_args) {
		return err(c, "usage: %s", cmd->usage);
	}
	if (cmd->max_args >= 0)
		rest = NULL;
	else if (argc < 3)
		rest = NULL;
	else
		/* Undo the tokenizer's NULs inside the rest of the line. */
		for (char *q = rest; q < p; q++)
			if (*q == '\0')
				*q = ' ';
	cmd->fn(c, argc, argv, rest);
	if (!c->replied)
		ok(c, NULL);
	if (c->is_err && c->out.len >= 11 &&
	    strncmp(c->out.p, "err timeout", 11) == 0)
		diagnose(c);
	if (sim_bug_count(c->sim) > bugs_before && !bug_exempt(cmd->name)) {
		c->replied = false;
		err(c, "device-bug: %s", sim_bug(c->sim));
	}
}

/* ---- main loop -------------------------------------------------------- */

struct linebuf {
	char *p;
	size_t len, cap;
	bool overflow;
};

/* Reads what stdin has; false on EOF or error. */
static bool lb_fill(struct linebuf *lb)
{
	if (lb->cap - lb->len < 65536) {
		size_t ncap = lb->cap ? lb->cap * 2 : 65536;
		if (ncap > MAX_LINE + 65536) {
			/* Drop the overlong line's start, keep looking for
			 * its end. */
			lb->overflow = true;
			lb->len = 0;
			ncap = lb->cap;
		} else {
			char *n = realloc(lb->p, ncap);
			if (!n)
				return false;
			lb->p = n;
			lb->cap = ncap;
		}
	}
	ssize_t n = read(0, lb->p + lb->len, lb->cap - lb->len - 1);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	lb->len += (size_t)n;
	return true;
}

static void run_lines(struct cli *c, struct linebuf *lb)
{
	char *nl;

	while (!c->quit && (nl = memchr(lb->p, '\n', lb->len))) {
		size_t n = (size_t)(nl - lb->p);
		*nl = '\0';
		if (n > 0 && lb->p[n - 1] == '\r')
			lb->p[n - 1] = '\0';
		if (lb->overflow) {
			c->replied = false;
			err(c, "line too long");
			lb->overflow = false;
		} else {
			run_line(c, lb->p);
		}
		emit_line(c);
		memmove(lb->p, nl + 1, lb->len - n - 1);
		lb->len -= n + 1;
	}
}

/* clang-format off */
static void usage(FILE *f)
{
	fputs("usage: vportfs-sim --socket PATH [OPTIONS]\n"
	      "\n"
	      "A simulated virtio-console guest for vportfs tests: a vhost-user\n"
	      "frontend plus a Linux-like virtio_console driver in user space.\n"
	      "It connects, handshakes like UML, prints one greeting line\n"
	      "('ok ready ...' or 'err ...' then exit 1), then answers each\n"
	      "command on stdin with exactly one line: 'ok ...' or 'err ...'.\n"
	      "After a device bug (a spec violation by the daemon) every\n"
	      "command but status/stats/bugs/bug-clear/help/disconnect/quit\n"
	      "answers 'err device-bug: MESSAGE'.\n"
	      "\n"
	      "Options:\n"
	      "  --socket PATH          daemon's vhost-user socket (required);\n"
	      "                         fd:N: inherited socket N, connected\n"
	      "  --connect-timeout MS   retry connecting this long (5000)\n"
	      "  --timeout MS           default command timeout (5000)\n"
	      "  --mem-mb N             guest memory (64)\n"
	      "  --guest-base ADDR      region guest address (0x100000)\n"
	      "  --user-offset ADDR     user_addr - guest_addr (0x7f0000000000)\n"
	      "  --mmap-offset N        region offset in the memfd (0)\n"
	      "  --mem-table-slots N    SET_MEM_TABLE payload: 1 QEMU, 2 UML, 8\n"
	      "  --queue-size N         ring size, power of two (256)\n"
	      "  --ports N              ports to set queues up for (31, capped\n"
	      "                         by max_nr_ports and 127)\n"
	      "  --no-event-idx         don't negotiate VIRTIO_F_EVENT_IDX\n"
	      "  --no-indirect          don't negotiate VIRTIO_F_INDIRECT_DESC\n"
	      "  --no-reply-ack, --no-backend-req, --no-mq\n"
	      "                         don't negotiate that protocol feature\n"
	      "  --call-eventfd         call fds are eventfds (UML: socketpair)\n"
	      "  --simple-order         GET_CONFIG before SET_FEATURES, queues\n"
	      "                         set up one by one (default: UML's order)\n"
	      "  --rx-bufs N|fill       RX buffers posted per port on PORT_ADD\n"
	      "                         (fill: the whole ring, like Linux; 0:\n"
	      "                         none until rx-post)\n"
	      "  --rx-buf-size N        RX buffer size (4096)\n"
	      "  --rx-seg-size N        split RX buffers in segments of N\n"
	      "  --tx-buf-size N        TX buffer size (32768)\n"
	      "  --tx-seg-size N        split TX buffers in segments of N\n"
	      "  --async-ctrl           don't wait for control-tx buffers\n"
	      "  --ctrl-timeout MS      control-tx return deadline (1000)\n"
	      "  --reply-timeout MS     vhost-user reply deadline (5000)\n"
	      "  --keep-closed-data     keep data arriving on a closed port\n"
	      "  --no-missed-call-check don't flag missing call notifications\n"
	      "  --poll-used            reap used rings without waiting for calls\n"
	      "  --tx-event-delay       ask for TX calls late (EVENT_IDX)\n"
	      "  -v, --verbose          trace messages on stderr\n"
	      "  -h, --help\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n      %s\n", commands[i].usage,
			commands[i].help);
	fputs("\n"
	      "Timeouts [ms] default to --timeout.  HEX is lowercase or\n"
	      "uppercase hex, '-' for empty.\n"
	      "\n"
	      "raw-desc DESC syntax: ADDR:LEN[:FLAGS[:NEXT]]\n"
	      "  ADDR   a number (any guest-physical address, even outside\n"
	      "         memory), 'buf' (allocate LEN zeroed bytes), 'buf=N'\n"
	      "         (allocate N bytes), 'hex=HEX' (allocate and fill)\n"
	      "  LEN    a number, or '-' for the allocation's size\n"
	      "  FLAGS  letters n (NEXT) w (WRITE) i (INDIRECT), a number, or\n"
	      "         '-' for 0; omitted: NEXT on all but the last\n"
	      "  NEXT   '@K' = descriptor K of this chain, a number = that raw\n"
	      "         value; omitted: @(i+1)\n"
	      "  With 'indirect' the chain goes into an indirect table and the\n"
	      "  ring gets {table, 16*n, INDIRECT}; ring-addr/ring-len/\n"
	      "  ring-flags override or add to that descriptor.  '-' as the\n"
	      "  list gives an empty table.  Completions: raw-used QIDX.\n"
	      "  Example: raw-desc 5 hex=6869:-,buf:64:w   (a TX chain with a\n"
	      "  writable descriptor: the device must refuse it)\n"
	      "\n"
	      "raw-msg fd=SPEC: eventfd | devnull | memfd:SIZE | sock\n"
	      "  FLAGS are sent as given (1 = version, 9 = version|NEED_REPLY).\n",
	      f);
}
/* clang-format on */

enum {
	OPT_CONNECT_TIMEOUT = 256,
	OPT_TIMEOUT,
	OPT_MEM_MB,
	OPT_GUEST_BASE,
	OPT_USER_OFFSET,
	OPT_MMAP_OFFSET,
	OPT_MEM_TABLE_SLOTS,
	OPT_QUEUE_SIZE,
	OPT_PORTS,
	OPT_NO_EVENT_IDX,
	OPT_NO_INDIRECT,
	OPT_NO_REPLY_ACK,
	OPT_NO_BACKEND_REQ,
	OPT_NO_MQ,
	OPT_CALL_EVENTFD,
	OPT_SIMPLE_ORDER,
	OPT_RX_BUFS,
	OPT_RX_BUF_SIZE,
	OPT_RX_SEG_SIZE,
	OPT_TX_BUF_SIZE,
	OPT_TX_SEG_SIZE,
	OPT_ASYNC_CTRL,
	OPT_CTRL_TIMEOUT,
	OPT_REPLY_TIMEOUT,
	OPT_KEEP_CLOSED,
	OPT_NO_MISSED,
	OPT_POLL_USED,
	OPT_TX_EVENT_DELAY,
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, 's'},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"mem-mb", required_argument, NULL, OPT_MEM_MB},
	{"guest-base", required_argument, NULL, OPT_GUEST_BASE},
	{"user-offset", required_argument, NULL, OPT_USER_OFFSET},
	{"mmap-offset", required_argument, NULL, OPT_MMAP_OFFSET},
	{"mem-table-slots", required_argument, NULL, OPT_MEM_TABLE_SLOTS},
	{"queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
	{"ports", required_argument, NULL, OPT_PORTS},
	{"no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX},
	{"no-indirect", no_argument, NULL, OPT_NO_INDIRECT},
	{"no-reply-ack", no_argument, NULL, OPT_NO_REPLY_ACK},
	{"no-backend-req", no_argument, NULL, OPT_NO_BACKEND_REQ},
	{"no-mq", no_argument, NULL, OPT_NO_MQ},
	{"call-eventfd", no_argument, NULL, OPT_CALL_EVENTFD},
	{"simple-order", no_argument, NULL, OPT_SIMPLE_ORDER},
	{"rx-bufs", required_argument, NULL, OPT_RX_BUFS},
	{"rx-buf-size", required_argument, NULL, OPT_RX_BUF_SIZE},
	{"rx-seg-size", required_argument, NULL, OPT_RX_SEG_SIZE},
	{"tx-buf-size", required_argument, NULL, OPT_TX_BUF_SIZE},
	{"tx-seg-size", required_argument, NULL, OPT_TX_SEG_SIZE},
	{"async-ctrl", no_argument, NULL, OPT_ASYNC_CTRL},
	{"ctrl-timeout", required_argument, NULL, OPT_CTRL_TIMEOUT},
	{"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
	{"keep-closed-data", no_argument, NULL, OPT_KEEP_CLOSED},
	{"no-missed-call-check", no_argument, NULL, OPT_NO_MISSED},
	{"poll-used", no_argument, NULL, OPT_POLL_USED},
	{"tx-event-delay", no_argument, NULL, OPT_TX_EVENT_DELAY},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static bool num_arg(const char *name, const char *s, uint64_t max,
		    uint64_t *out)
{
	if (parse_u64(s, out) && *out <= max)
		return true;
	fprintf(stderr, "vportfs-sim: bad value '%s' for --%s\n", s, name);
	return false;
}

/* Parses argv into c->opts.  Returns the socket path or NULL (exit 2). */
static const char *parse_args(struct cli *c, int argc, char **argv,
			      int *connect_timeout)
{
	const char *sock = NULL;
	struct sim_opts *o = &c->opts;
	uint64_t v;
	int opt, idx;

	while ((opt = getopt_long(argc, argv, "s:vh", long_opts, &idx)) != -1) {
		const char *name = opt >= 256 ? long_opts[idx].name : "";
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_CONNECT_TIMEOUT:
			if (!num_arg(name, optarg, INT_MAX, &v))
				return NULL;
			*connect_timeout = (int)v;
			break;
		case OPT_TIMEOUT:
			if (!num_arg(name, optarg, INT_MAX, &v))
				return NULL;
			c->timeout_ms = (int)v;
			break;
		case OPT_MEM_MB:
			if (!num_arg(name, optarg, 1u << 20, &v))
				return NULL;
			o->mem_size = v << 20;
			break;
		case OPT_GUEST_BASE:
			if (!num_arg(name, optarg, UINT64_MAX, &o->guest_base))
				return NULL;
			break;
		case OPT_USER_OFFSET:
			if (!num_arg(name, optarg, UINT64_MAX, &o->user_offset))
				return NULL;
			break;
		case OPT_MMAP_OFFSET:
			if (!num_arg(name, optarg, UINT64_MAX, &o->mmap_offset))
				return NULL;
			break;
		case OPT_MEM_TABLE_SLOTS:
			if (!num_arg(name, optarg, 8, &v))
				return NULL;
			o->mem_table_slots = (unsigned)v;
			break;
		case OPT_QUEUE_SIZE:
			if (!num_arg(name, optarg, 32768, &v))
				return NULL;
			o->queue_size = (unsigned)v;
			break;
		case OPT_PORTS:
			if (!num_arg(name, optarg, 127, &v))
				return NULL;
			o->max_ports = (unsigned)v;
			break;
		case OPT_NO_EVENT_IDX:
			o->event_idx = false;
			break;
		case OPT_NO_INDIRECT:
			o->indirect = false;
			break;
		case OPT_NO_REPLY_ACK:
			o->reply_ack = false;
			break;
		case OPT_NO_BACKEND_REQ:
			o->backend_req = false;
			break;
		case OPT_NO_MQ:
			o->mq = false;
			break;
		case OPT_CALL_EVENTFD:
			o->call_eventfd = true;
			break;
		case OPT_SIMPLE_ORDER:
			o->uml_order = false;
			break;
		case OPT_RX_BUFS:
			if (strcmp(optarg, "fill") == 0) {
				o->rx_bufs = SIM_RX_FILL;
				break;
			}
			if (!num_arg(name, optarg, 32768, &v))
				return NULL;
			o->rx_bufs = (unsigned)v;
			break;
		case OPT_RX_BUF_SIZE:
		case OPT_RX_SEG_SIZE:
		case OPT_TX_BUF_SIZE:
		case OPT_TX_SEG_SIZE:
			if (!num_arg(name, optarg, 1u << 30, &v))
				return NULL;
			if (opt == OPT_RX_BUF_SIZE)
				o->rx_buf_size = (uint32_t)v;
			else if (opt == OPT_RX_SEG_SIZE)
				o->rx_seg_size = (uint32_t)v;
			else if (opt == OPT_TX_BUF_SIZE)
				o->tx_buf_size = (uint32_t)v;
			else
				o->tx_seg_size = (uint32_t)v;
			break;
		case OPT_ASYNC_CTRL:
			o->ctrl_sync = false;
			break;
		case OPT_CTRL_TIMEOUT:
			if (!num_arg(name, optarg, INT_MAX, &v))
				return NULL;
			o->ctrl_timeout_ms = (int)v;
			break;
		case OPT_REPLY_TIMEOUT:
			if (!num_arg(name, optarg, INT_MAX, &v))
				return NULL;
			o->reply_timeout_ms = (int)v;
			break;
		case OPT_KEEP_CLOSED:
			o->discard_when_closed = false;
			break;
		case OPT_NO_MISSED:
			o->check_missed_calls = false;
			break;
		case OPT_POLL_USED:
			o->poll_used = true;
			break;
		case OPT_TX_EVENT_DELAY:
			o->tx_event_delay = true;
			break;
		default:
			fputs("vportfs-sim: try --help\n", stderr);
			return NULL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vportfs-sim: unexpected argument '%s'\n",
			argv[optind]);
		return NULL;
	}
	if (!sock)
		fputs("vportfs-sim: --socket PATH is required\n", stderr);
	return sock;
}

/* Every queue costs up to three fds; many ports need more than 1024. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct cli c = {.timeout_ms = 5000};
	struct linebuf lb = {0};
	int connect_timeout = 5000;
	int status = 0;

	sim_opts_default(&c.opts);
	const char *sock = parse_args(&c, argc, argv, &connect_timeout);
	if (!sock)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	c.sim = sim_new(&c.opts);
	if (!c.sim) {
		int e = errno;
		printf("err setup: %s\n",
		       e == EINVAL ? "invalid options" : strerror(e));
		return 1;
	}
	int rc = sim_connect(c.sim, sock, connect_timeout);
	if (rc) {
		printf("err connect: %s\n", sim_error(c.sim));
		fflush(stdout);
		sim_free(c.sim);
		return 1;
	}
	struct sim_state st;
	sim_get_state(c.sim, &st);
	c.replied = false;
	ok(&c,
	   "ready nports=%u nqueues=%u max_nr_ports=%u event_idx=%d "
	   "indirect=%d",
	   st.nports, st.nqueues, st.max_nr_ports, st.event_idx, st.indirect);
	emit_line(&c);

	while (!c.quit) {
		struct pollfd p[2] = {
			{.fd = 0, .events = POLLIN},
			{.fd = sim_fd(c.sim), .events = POLLIN},
		};
		int n = poll(p, 2, 100);
		if (n < 0 && errno != EINTR) {
			perror("vportfs-sim: poll");
			status = 1;
			break;
		}
		/* Device first, so a command sees the freshest state. */
		sim_process(c.sim, 0);
		if (n > 0 && p[0].revents) {
			if (!lb_fill(&lb)) {
				/* EOF: finish complete lines, then leave. */
				run_lines(&c, &lb);
				break;
			}
			run_lines(&c, &lb);
		}
	}
	free(lb.p);
	free(c.out.p);
	sim_free(c.sim);
	return status;
}
