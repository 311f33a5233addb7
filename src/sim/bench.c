/*
 * vportfs-bench: guest-side throughput and latency of ports, through the
 * simulated guest (sim.h), while host-side processes use the port files.
 *
 *   g2h: opens the port(s), waits for a host reader on each, streams N
 *        bytes of the pattern into every port at once (one loop, TX
 *        interleaved) as fast as the TX rings allow; done when the device
 *        has returned every TX buffer.  MB/s are over all ports.
 *   h2g: opens the port, receives N bytes written by the host; timed from
 *        the first byte to the last.
 *   rtt: opens the port, waits for a host echo (--echo), then N times
 *        sends 1 byte and waits for it to come back; median and p99.
 *   idle: opens every port and does nothing until --seconds pass or
 *        SIGTERM: a connected, quiet guest (memory and idle CPU rows).
 *
 * Host-side tools for the same rows and their ceilings: --gen and
 * --check (writer and verifying reader, timed from the first byte),
 * --echo (the host end of rtt), --rtt-file (1-byte write + read round
 * trips on one file, for a null FUSE file) and --rtt-pipe (the same
 * between two processes over two pipes).
 *
 * The pattern is byte[i] = i % 251 (a prime, so chunk boundaries never line
 * up with it).  --gen and --check produce and verify it on the host side.
 *
 * The one design choice that matters: the loop measures the daemon, not
 * the sim, so it batches: big TX buffers, one kick per batch, EVENT_IDX
 * with delayed TX interrupts, blocking in epoll only when the ring is full.
 */
#include "vportfs/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_MOD 251u
#define CHUNK	    (4u << 20)
#define MAX_PORTS   127u /* 256 queues, the sim's (and the daemon's) cap */
#define RTT_WARMUP  100u

struct bench {
	const char *socket;
	const char *port[MAX_PORTS];
	unsigned nports;
	enum {
		MODE_NONE,
		MODE_G2H,
		MODE_H2G,
		MODE_RTT,
		MODE_IDLE,
		MODE_GEN,
		MODE_CHECK,
		MODE_ECHO,
		MODE_RTT_FILE,
		MODE_RTT_PIPE,
	} mode;
	uint64_t bytes; /* per port; rtt: round trips */
	const char *echo_path;
	uint32_t buf_size;
	unsigned rx_bufs;
	double timeout;	  /* whole run, seconds */
	double stall;	  /* no progress, seconds */
	double wait_host; /* g2h: for the host reader, seconds */
	bool verify;
	bool zero;	 /* --check: the stream is zeros, not the pattern */
	size_t io_size;	 /* --gen / --check */
	double seconds;	 /* idle */
	uint64_t warmup; /* g2h: untimed bytes per port first */
	uint64_t skip;	 /* --check: untimed bytes first */
	unsigned rounds; /* g2h: timed streams of `bytes` per port */
	struct sim_opts o;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The pattern, byte[i] = i % 251, as one buffer holding a copy of the
 * stream from each offset k < PATTERN_MOD, CHUNK bytes long, starting at
 * bytes + start[k].  Laid out compactly (start[k] = k), or so that every
 * copy starts on a page: pages and 251 (an odd prime) are coprime, so the
 * first PATTERN_MOD pages start at PATTERN_MOD different offsets.  --gen
 * writes from page-aligned copies: on a FUSE file opened for direct I/O
 * the kernel cuts each request at max_pages pages, so 1 MiB from a buffer
 * 16 bytes into a page (what malloc gives) is two requests, one of 16
 * bytes.  dd and cat align theirs. */
struct pattern {
	uint8_t *bytes;
	size_t start[PATTERN_MOD];
};

static size_t page_size(void)
{
	long n = sysconf(_SC_PAGESIZE);

	return n > 0 ? (size_t)n : 4096;
}

/* NULL when out of memory.  Free with pattern_free. */
static struct pattern *pattern_new(bool page_aligned)
{
	size_t page = page_size(), step = page_aligned ? page : 1;
	size_t have = PATTERN_MOD, len = CHUNK + PATTERN_MOD * step;
	struct pattern *pat = calloc(1, sizeof(*pat));

	if (!pat)
		return NULL;
	pat->bytes = page_aligned ? aligned_alloc(page, len) : malloc(len);
	if (!pat->bytes) {
		free(pat);
		return NULL;
	}
	for (size_t i = 0; i < PATTERN_MOD; i++)
		pat->bytes[i] = (uint8_t)i;
	/* Doubling copies: 127 readers start at once in the N-port rows. */
	while (have < len) {
		size_t n = have < len - have ? have : len - have;
		memcpy(pat->bytes + have, pat->bytes, n);
		have += n;
	}
	for (size_t j = 0; j < PATTERN_MOD; j++)
		pat->start[j * step % PATTERN_MOD] = j * step;
	return pat;
}

static void pattern_free(struct pattern *pat)
{
	if (pat)
		free(pat->bytes);
	free(pat);
}

/* The stream from offset `at` on, CHUNK bytes of it. */
static const uint8_t *pattern_at(const struct pattern *pat, uint64_t at)
{
	return pat->bytes + pat->start[at % PATTERN_MOD];
}

/* Offset of the first mismatch in buf (stream offset `at`), or -1. */
static long long pattern_check(const struct pattern *pat, uint64_t at,
			       const uint8_t *buf, size_t len)
{
	const uint8_t *want = pattern_at(pat, at);

	if (memcmp(buf, want, len) == 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != want[i])
			return (long long)(at + i);
	return -1;
}

static void report_to(FILE *f, const char *mode, uint64_t bytes, double secs,
		      const struct sim *s)
{
	struct sim_stats st = {0};

	if (s)
		sim_get_stats(s, &st);
	fprintf(f,
		"mode=%s bytes=%llu seconds=%.6f MBps=%.1f kicks=%llu "
		"calls=%llu\n",
		mode, (unsigned long long)bytes, secs,
		secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
		(unsigned long long)st.kicks, (unsigned long long)st.calls);
	fflush(f);
}

static void report(const char *mode, uint64_t bytes, double secs,
		   const struct sim *s)
{
	report_to(stdout, mode, bytes, secs, s);
}

static void fail_diag(struct sim *s, const char *what)
{
	char buf[4096];

	fprintf(stderr, "vportfs-bench: %s: %s\n", what,
		sim_bug(s) ? sim_bug(s) : sim_error(s));
	if (sim_diagnose(s, buf, sizeof(buf)))
		fprintf(stderr, "vportfs-bench: diagnosis:\n%s", buf);
}

struct port_set {
	const unsigned *nr;
	unsigned n;
};

static bool cond_hosts(struct sim *s, void *a)
{
	const struct port_set *ps = a;
	struct sim_port_info pi;

	for (unsigned i = 0; i < ps->n; i++)
		if (sim_port_info(s, ps->nr[i], &pi) != 0 || !pi.host_connected)
			return false;
	return true;
}

/* Bytes not yet returned on all ports, or -errno. */
static long tx_pending_all(const struct sim *s, const unsigned *nr, unsigned n)
{
	long sum = 0;

	for (unsigned i = 0; i < n; i++) {
		long p = sim_port_tx_pending(s, nr[i]);
		if (p < 0)
			return p;
		sum += p;
	}
	return sum;
}

/* Streams into each of nr[0..n) at once until queued[i] == upto and the
 * device returned every buffer: every round tops up every port's TX ring,
 * so the daemon sees all queues busy together. */
static int stream(struct bench *b, struct sim *s, const unsigned *nr,
		  unsigned n, const struct pattern *pat, uint64_t *queued,
		  uint64_t upto)
{
	double start, last_progress;
	long pending;
	bool all_queued;
	int rc;

	start = last_progress = now_s();
	for (;;) {
		all_queued = true;
		for (unsigned i = 0; i < n; i++) {
			while (queued[i] < upto) {
				uint64_t want = upto - queued[i];
				long w = sim_port_write(
					s, nr[i], pattern_at(pat, queued[i]),
					want < CHUNK ? (size_t)want : CHUNK);
				if (w == -EAGAIN)
					break;
				if (w < 0) {
					fail_diag(s, "write");
					return (int)w;
				}
				queued[i] += (uint64_t)w;
				last_progress = now_s();
			}
			if (queued[i] < upto)
				all_queued = false;
		}
		pending = tx_pending_all(s, nr, n);
		if (pending < 0) {
			fail_diag(s, "port");
			return (int)pending;
		}
		if (all_queued && pending == 0)
			return 0;
		rc = sim_process(s, 100);
		if (rc) {
			fail_diag(s, "device");
			return rc;
		}
		double t = now_s();
		if (tx_pending_all(s, nr, n) != pending)
			last_progress = t;
		if (t - last_progress > b->stall || t - start > b->timeout) {
			fail_diag(s, t - start > b->timeout ? "timeout"
							    : "stalled");
			return -ETIMEDOUT;
		}
	}
}

/* --warmup bytes first, untimed, on every port (guest memory and the
 * daemon's rings touched once, as in a VM that has been running), then
 * b->bytes on every port, timed, --rounds times (one line each). */
static int run_g2h(struct bench *b, struct sim *s, const unsigned *nr,
		   unsigned n, const struct pattern *pat)
{
	struct port_set ps = {nr, n};
	struct sim_port_info pi;
	uint64_t queued[MAX_PORTS] = {0};
	double start;

	int rc = sim_wait(s, cond_hosts, &ps, (int)(b->wait_host * 1000));
	if (rc) {
		fail_diag(s, "waiting for a host reader");
		return rc;
	}
	if (b->warmup) {
		rc = stream(b, s, nr, n, pat, queued, b->warmup);
		if (rc)
			return rc;
	}
	for (unsigned r = 1; r <= b->rounds; r++) {
		uint64_t upto = b->warmup + r * b->bytes;

		start = now_s();
		rc = stream(b, s, nr, n, pat, queued, upto);
		if (rc)
			return rc;
		double end = now_s();
		for (unsigned i = 0; i < n; i++)
			if (sim_port_info(s, nr[i], &pi) == 0 &&
			    pi.tx_total < upto)
				fprintf(stderr,
					"vportfs-bench: port %u: only %llu "
					"bytes returned\n",
					nr[i], (unsigned long long)pi.tx_total);
		report("g2h", b->bytes * n, end - start, s);
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* How many CPUs this process may run on (its affinity), 0 if unknown:
 * the bench runs its round trips on one (docs/performance.md). */
static int cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	return CPU_COUNT(&set);
}

/* Sorts us[0..count) and prints its nearest-rank percentiles. */
static void print_rtt(const char *mode, double *us, size_t count)
{
	qsort(us, count, sizeof(*us), cmp_double);
	printf("mode=%s count=%zu min_us=%.1f median_us=%.1f p99_us=%.1f "
	       "max_us=%.1f cpus=%d\n",
	       mode, count, us[0], us[(count - 1) / 2],
	       us[(count * 99 + 99) / 100 - 1], us[count - 1], cpus_allowed());
	fflush(stdout);
}

/* One round trip: 1 byte out, the same byte back.  Returns 0 or -errno. */
static int rtt_once(struct bench *b, struct sim *s, unsigned nr, uint8_t out)
{
	double start = now_s();
	uint8_t in;
	long n;
	int rc;

	while ((n = sim_port_write(s, nr, &out, 1)) == -EAGAIN) {
		/* TX buffers come back in batches (tx_event_delay). */
		rc = sim_process(s, 100);
		if (rc)
			return rc;
		if (now_s() - start > b->stall)
			return -ETIMEDOUT;
	}
	if (n < 0)
		return (int)n;
	while ((n = sim_port_read(s, nr, &in, 1)) == 0) {
		rc = sim_process(s, 100);
		if (rc)
			return rc;
		if (now_s() - start > b->stall)
			return -ETIMEDOUT;
	}
	if (n < 0)
		return (int)n;
	if (in != out) {
		fprintf(stderr, "vportfs-bench: echoed 0x%02x, sent 0x%02x\n",
			in, out);
		return -EILSEQ;
	}
	return 0;
}

static int run_rtt(struct bench *b, struct sim *s, unsigned nr)
{
	struct port_set ps = {&nr, 1};
	size_t count = (size_t)b->bytes;
	double *us = malloc(count * sizeof(*us));
	int rc;

	if (!us)
		return -ENOMEM;
	rc = sim_wait(s, cond_hosts, &ps, (int)(b->wait_host * 1000));
	if (rc) {
		fail_diag(s, "waiting for a host echo");
		goto out_free_us;
	}
	/* The echo may have met EOF before we opened and be retrying. */
	for (unsigned i = 0; i < RTT_WARMUP; i++) {
		rc = rtt_once(b, s, nr, (uint8_t)(i % PATTERN_MOD));
		if (rc)
			goto out_fail;
	}
	for (size_t i = 0; i < count; i++) {
		double t = now_s();
		rc = rtt_once(b, s, nr, (uint8_t)(i % PATTERN_MOD));
		if (rc)
			goto out_fail;
		us[i] = (now_s() - t) * 1e6;
	}
	print_rtt("rtt", us, count);
	goto out_free_us;
out_fail:
	fail_diag(s, rc == -ETIMEDOUT ? "round trip stalled" : "round trip");
out_free_us:
	free(us);
	return rc;
}

static volatile sig_atomic_t stop_idle;

static void on_stop(int sig)
{
	(void)sig;
	stop_idle = 1;
}

/* A quiet guest: its ports open, nothing sent, until --seconds pass or
 * SIGTERM/SIGINT.  Says "mode=idle ... ready" once every port is open. */
static int run_idle(struct bench *b, struct sim *s, unsigned n)
{
	struct sigaction sa = {.sa_handler = on_stop};
	double start = now_s();
	int rc;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	rc = sim_process(s, 100);
	if (rc) {
		fail_diag(s, "device");
		return rc;
	}
	printf("mode=idle ports=%u ready\n", n);
	fflush(stdout);
	while (!stop_idle && now_s() - start < b->seconds) {
		rc = sim_process(s, 1000);
		if (rc) {
			fail_diag(s, "device");
			return rc;
		}
	}
	return 0;
}

/* The h2g guest's reader: checks received bytes where they lie in guest
 * memory (sim_port_consume), as a program would use them, with no copy
 * into a buffer of its own first. */
struct h2g_reader {
	const struct pattern *pat;
	bool verify;
	uint64_t at;   /* stream offset of the next byte */
	long long bad; /* first mismatch, or -1 */
};

static int h2g_check(const void *p, size_t n, void *opaque)
{
	struct h2g_reader *c = opaque;

	if (c->verify) {
		c->bad = pattern_check(c->pat, c->at, p, n);
		if (c->bad >= 0)
			return -EILSEQ;
	}
	c->at += n;
	return 0;
}

static int run_h2g(struct bench *b, struct sim *s, unsigned nr,
		   const struct pattern *pat)
{
	struct h2g_reader c = {.pat = pat, .verify = b->verify, .bad = -1};
	double opened = now_s(), first = 0, last_progress = opened;

	while (c.at < b->bytes) {
		uint64_t want = b->bytes - c.at;
		long n = sim_port_consume(s, nr, want < CHUNK ? want : CHUNK,
					  h2g_check, &c);
		if (n == -EILSEQ && c.bad >= 0) {
			fprintf(stderr,
				"vportfs-bench: data mismatch at offset %lld\n",
				c.bad);
			return -EILSEQ;
		}
		if (n < 0) {
			fail_diag(s, "read");
			return (int)n;
		}
		if (n > 0) {
			if (first == 0)
				first = now_s();
			last_progress = now_s();
			continue;
		}
		int rc = sim_process(s, 100);
		if (rc) {
			fail_diag(s, "device");
			return rc;
		}
		double t = now_s();
		/* Before the first byte, the host writer may still be
		 * starting: only the overall timeout applies. */
		if ((c.at > 0 && t - last_progress > b->stall) ||
		    t - opened > b->timeout) {
			fprintf(stderr,
				"vportfs-bench: got %llu of %llu bytes\n",
				(unsigned long long)c.at,
				(unsigned long long)b->bytes);
			fail_diag(s, c.at ? "stalled" : "timeout");
			return -ETIMEDOUT;
		}
	}
	report("h2g", b->bytes, now_s() - first, s);
	return 0;
}

/* Offset of the first non-zero byte in buf (stream offset `at`), or -1.
 * memcmp against zeros, not a byte loop: the UML row's reader checks every
 * byte on the CPUs the guest runs on (a byte loop took 0.37 s of CPU per
 * GiB, this 0.14). */
static long long zero_check(uint64_t at, const uint8_t *buf, size_t len)
{
	static const uint8_t zeros[64 << 10];

	for (size_t done = 0; done < len;) {
		size_t n =
			len - done < sizeof(zeros) ? len - done : sizeof(zeros);

		if (memcmp(buf + done, zeros, n) != 0)
			for (size_t i = done;; i++)
				if (buf[i])
					return (long long)(at + i);
		done += n;
	}
	return -1;
}

/* --gen: the pattern to stdout; --check: verify stdin.  Host side.
 * Timed from the return of the first read or write to the last, over the
 * bytes after the first call: so a writer blocked until the guest opens,
 * or a reader waiting for the first byte, measures the stream only, and
 * the same way on a port file, a null FUSE file and a pipe.  With --skip
 * the clock starts at the first read that reaches that many bytes (a
 * guest's untimed --warmup). */
static int run_gen_check(struct bench *b, const struct pattern *pat)
{
	/* --check reads into a page-aligned buffer, as cat does (see struct
	 * pattern); --gen writes from the pattern's aligned copies. */
	size_t page = page_size();
	uint8_t *buf = b->mode == MODE_CHECK
			       ? aligned_alloc(page, (b->io_size + page - 1) /
							     page * page)
			       : NULL;
	uint64_t done = 0, first_done = 0;
	double start = now_s(), first = 0;

	if (b->mode == MODE_CHECK && !buf)
		return 1;
	while (done < b->bytes) {
		size_t want = b->bytes - done < b->io_size
				      ? (size_t)(b->bytes - done)
				      : b->io_size;
		ssize_t n;
		if (b->mode == MODE_GEN) {
			n = write(1, pattern_at(pat, done), want);
		} else {
			n = read(0, buf, want);
			if (n > 0 && b->verify) {
				long long bad =
					b->zero ? zero_check(done, buf,
							     (size_t)n)
						: pattern_check(pat, done, buf,
								(size_t)n);
				if (bad >= 0) {
					fprintf(stderr,
						"vportfs-bench: data mismatch "
						"at offset %lld\n",
						bad);
					free(buf);
					return 1;
				}
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr,
				"vportfs-bench: %s after %llu bytes: %s\n",
				b->mode == MODE_GEN ? "write" : "read",
				(unsigned long long)done,
				n == 0 ? "end of file" : strerror(errno));
			free(buf);
			return 1;
		}
		done += (uint64_t)n;
		if (first == 0 && done >= b->skip) {
			first = now_s();
			first_done = done;
		}
	}
	free(buf);
	double end = now_s();
	/* One call carried it all: nothing to time but the whole. */
	if (first_done == done) {
		first = start;
		first_done = 0;
	}
	report_to(b->mode == MODE_CHECK ? stdout : stderr,
		  b->mode == MODE_CHECK ? "check" : "gen", done - first_done,
		  end - first, NULL);
	return 0;
}

/* --rtt-file: 1 byte written to a file and 1 byte read back from it, N
 * times, on one read-write fd: two FUSE round trips on a null FUSE file.
 * What comes back is that file's stream (the pattern), checked. */
static int run_rtt_file(struct bench *b, const struct pattern *pat)
{
	size_t count = (size_t)b->bytes;
	double *us = malloc(count * sizeof(*us));
	int fd, rc = 1;

	if (!us)
		return 1;
	fd = open(b->echo_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "vportfs-bench: %s: %s\n", b->echo_path,
			strerror(errno));
		goto out_free_us;
	}
	for (size_t i = 0; i < RTT_WARMUP + count; i++) {
		uint8_t out = (uint8_t)(i % PATTERN_MOD), in;
		double t = now_s();
		errno = 0;
		if (write(fd, &out, 1) != 1 || read(fd, &in, 1) != 1) {
			fprintf(stderr, "vportfs-bench: round trip %zu: %s\n",
				i, errno ? strerror(errno) : "short");
			goto out_close;
		}
		if (in != *pattern_at(pat, i)) {
			fprintf(stderr,
				"vportfs-bench: read 0x%02x, expected 0x%02x\n",
				in, *pattern_at(pat, i));
			goto out_close;
		}
		if (i >= RTT_WARMUP)
			us[i - RTT_WARMUP] = (now_s() - t) * 1e6;
	}
	print_rtt("rtt-file", us, count);
	rc = 0;
out_close:
	close(fd);
out_free_us:
	free(us);
	return rc;
}

static bool io_byte(int fd, uint8_t *c, bool out)
{
	for (;;) {
		ssize_t n = out ? write(fd, c, 1) : read(fd, c, 1);
		if (n == 1)
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		return false;
	}
}

/* --rtt-pipe: 1 byte to a child over one pipe, back over another, N
 * times: the round trip of two processes with nothing in between. */
static int run_rtt_pipe(struct bench *b)
{
	size_t count = (size_t)b->bytes;
	double *us = malloc(count * sizeof(*us));
	int to[2] = {-1, -1}, from[2] = {-1, -1}, status, rc = 1;
	pid_t child;

	if (!us)
		return 1;
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC)) {
		perror("vportfs-bench: pipe");
		goto out_close;
	}
	child = fork();
	if (child < 0) {
		perror("vportfs-bench: fork");
		goto out_close;
	}
	if (child == 0) {
		uint8_t c;

		close(to[1]); /* or it never sees EOF */
		close(from[0]);
		while (io_byte(to[0], &c, false) && io_byte(from[1], &c, true))
			;
		_exit(0);
	}
	close(to[0]);
	close(from[1]);
	to[0] = from[1] = -1;
	for (size_t i = 0; i < RTT_WARMUP + count; i++) {
		uint8_t out = (uint8_t)(i % PATTERN_MOD), in = 0;
		double t = now_s();
		if (!io_byte(to[1], &out, true) ||
		    !io_byte(from[0], &in, false) || in != out) {
			fprintf(stderr,
				"vportfs-bench: pipe round trip %zu "
				"failed\n",
				i);
			goto out_reap;
		}
		if (i >= RTT_WARMUP)
			us[i - RTT_WARMUP] = (now_s() - t) * 1e6;
	}
	print_rtt("rtt-pipe", us, count);
	rc = 0;
out_reap:
	close(to[1]);
	to[1] = -1;
	waitpid(child, &status, 0);
out_close:
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	free(us);
	return rc;
}

/* --echo: host side of rtt.  Reads the port file and writes every byte
 * back through the same fd until the guest closes its end.  An EOF before
 * the first byte only means the guest has not opened yet: retry. */
static int run_echo(struct bench *b)
{
	uint8_t buf[4096];
	uint64_t echoed = 0;
	double start = now_s();
	int fd = open(b->echo_path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "vportfs-bench: %s: %s\n", b->echo_path,
			strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "vportfs-bench: echo read: %s\n",
				strerror(errno));
			goto out_close;
		}
		if (n == 0) {
			if (echoed > 0)
				break;
			if (now_s() - start > b->wait_host) {
				fputs("vportfs-bench: echo: the guest never "
				      "opened the port\n",
				      stderr);
				goto out_close;
			}
			usleep(10000);
			continue;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr,
					"vportfs-bench: echo write: %s\n",
					w < 0 ? strerror(errno) : "short");
				goto out_close;
			}
			off += w;
		}
		echoed += (uint64_t)n;
	}
	close(fd);
	fprintf(stderr, "mode=echo bytes=%llu\n", (unsigned long long)echoed);
	return 0;
out_close:
	close(fd);
	return 1;
}

/* clang-format off */
static void usage(FILE *f)
{
	fputs("usage: vportfs-bench --socket PATH --port NAME --mode g2h|h2g "
	      "--bytes N [OPTIONS]\n"
	      "       vportfs-bench --socket PATH --port NAME [--port NAME]... "
	      "--mode g2h --bytes N\n"
	      "       vportfs-bench --socket PATH --port NAME --mode rtt "
	      "--count N\n"
	      "       vportfs-bench --gen N  > PORTFILE   (host writer)\n"
	      "       vportfs-bench --check N < PORTFILE  (host reader)\n"
	      "       vportfs-bench --echo PORTFILE       (host echo, rtt)\n"
	      "       vportfs-bench --socket PATH --port NAME... --mode idle "
	      "[--seconds S]\n"
	      "       vportfs-bench --rtt-file FILE --count N  (write+read)\n"
	      "       vportfs-bench --rtt-pipe --count N       (two pipes)\n"
	      "\n"
	      "Drives the guest side of ports through the simulated guest\n"
	      "and prints one line:\n"
	      "  mode=g2h|h2g bytes=N seconds=S MBps=X kicks=N calls=N\n"
	      "(MB = 10^6 bytes).  A host-side process must read (g2h) or\n"
	      "write (h2g) the port file meanwhile.  The stream is the\n"
	      "pattern byte[i] = i % 251; --gen writes it, --check reads and\n"
	      "verifies it (and prints its own mode=check line).\n"
	      "g2h with several --port streams N bytes into each at once;\n"
	      "bytes and MBps are the totals over all ports.\n"
	      "rtt: N times, 1 byte to the port and back from --echo, which\n"
	      "holds the port file open read-write and returns what it reads;\n"
	      "prints mode=rtt count=N min_us median_us p99_us max_us\n"
	      "cpus (how many CPUs it was allowed to run on).\n"
	      "--rtt-file: N times, write 1 byte to FILE and read 1 byte\n"
	      "from it (one fd, read-write; the read must return the\n"
	      "pattern: a null FUSE file); --rtt-pipe: N times, 1 byte to a\n"
	      "child and back over two pipes; both print mode=rtt-file or\n"
	      "rtt-pipe and the same fields.\n"
	      "idle: opens the ports, prints \"mode=idle ports=N ready\",\n"
	      "then sends nothing until --seconds (3600) or SIGTERM.\n"
	      "--gen and --check time from the return of their first write\n"
	      "or read to the last, over the bytes after the first call\n"
	      "(--gen prints its mode=gen line on stderr).\n"
	      "\n"
	      "Options:\n"
	      "  --buf-size N      g2h: TX buffer size (32768); h2g: RX buffer\n"
	      "                    size (4096, Linux's PAGE_SIZE)\n"
	      "  --rx-bufs N       h2g: RX buffers on the port (fill the ring)\n"
	      "  --seg-size N      split each buffer into N-byte segments\n"
	      "  --queue-size N    ring size (256)\n"
	      "  --mem-mb N        guest memory (256)\n"
	      "  --no-event-idx, --no-indirect, --call-eventfd\n"
	      "  --timeout SEC     whole run (120)\n"
	      "  --stall SEC       no progress (10)\n"
	      "  --wait-host SEC   g2h/rtt: wait this long for the host side;\n"
	      "                    --echo: for the guest to open (30)\n"
	      "  --connect-timeout SEC (10)\n"
	      "  --verify          h2g: check the received pattern\n"
	      "  --no-verify       --check: don't compare, just count\n"
	      "  --zero            --check: the stream is zeros\n"
	      "  --max-ports N     ports to set up queues for (at most 127;\n"
	      "                    default: the device's, capped at 31)\n"
	      "  --seconds S       idle: how long (3600)\n"
	      "  --warmup N        g2h: first stream N bytes into each port,\n"
	      "                    untimed (the readers get N more bytes)\n"
	      "  --rounds R        g2h: R timed streams of --bytes per port,\n"
	      "                    one line each (readers get R x --bytes)\n"
	      "  --io-size N       --gen/--check: bytes per write/read (1 MiB,\n"
	      "                    at most 4 MiB)\n"
	      "  --skip N          --check: read and check N bytes untimed\n"
	      "                    first (a g2h guest's --warmup)\n"
	      "Exit status: 0 ok, 1 failure, 2 usage.\n",
	      f);
}
/* clang-format on */

static bool parse_num(const char *name, const char *s, uint64_t max,
		      uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || !*s || *s == '-' || v > max) {
		fprintf(stderr, "vportfs-bench: bad value '%s' for %s\n", s,
			name);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_secs(const char *name, const char *s, double *out)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !*s || v <= 0 || v > 1e6) {
		fprintf(stderr, "vportfs-bench: bad value '%s' for %s\n", s,
			name);
		return false;
	}
	*out = v;
	return true;
}

enum {
	OPT_BUF_SIZE = 256,
	OPT_RX_BUFS,
	OPT_SEG_SIZE,
	OPT_QUEUE_SIZE,
	OPT_MEM_MB,
	OPT_NO_EVENT_IDX,
	OPT_NO_INDIRECT,
	OPT_CALL_EVENTFD,
	OPT_TIMEOUT,
	OPT_STALL,
	OPT_WAIT_HOST,
	OPT_CONNECT_TIMEOUT,
	OPT_VERIFY,
	OPT_NO_VERIFY,
	OPT_IO_SIZE,
	OPT_GEN,
	OPT_CHECK,
	OPT_BYTES,
	OPT_COUNT,
	OPT_ECHO,
	OPT_MAX_PORTS,
	OPT_SECONDS,
	OPT_ZERO,
	OPT_RTT_FILE,
	OPT_RTT_PIPE,
	OPT_WARMUP,
	OPT_SKIP,
	OPT_ROUNDS,
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, 's'},
	{"port", required_argument, NULL, 'p'},
	{"mode", required_argument, NULL, 'm'},
	{"bytes", required_argument, NULL, OPT_BYTES},
	{"count", required_argument, NULL, OPT_COUNT},
	{"echo", required_argument, NULL, OPT_ECHO},
	{"rtt-file", required_argument, NULL, OPT_RTT_FILE},
	{"rtt-pipe", no_argument, NULL, OPT_RTT_PIPE},
	{"max-ports", required_argument, NULL, OPT_MAX_PORTS},
	{"seconds", required_argument, NULL, OPT_SECONDS},
	{"zero", no_argument, NULL, OPT_ZERO},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"skip", required_argument, NULL, OPT_SKIP},
	{"rounds", required_argument, NULL, OPT_ROUNDS},
	{"buf-size", required_argument, NULL, OPT_BUF_SIZE},
	{"rx-bufs", required_argument, NULL, OPT_RX_BUFS},
	{"seg-size", required_argument, NULL, OPT_SEG_SIZE},
	{"queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
	{"mem-mb", required_argument, NULL, OPT_MEM_MB},
	{"no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX},
	{"no-indirect", no_argument, NULL, OPT_NO_INDIRECT},
	{"call-eventfd", no_argument, NULL, OPT_CALL_EVENTFD},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"stall", required_argument, NULL, OPT_STALL},
	{"wait-host", required_argument, NULL, OPT_WAIT_HOST},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"verify", no_argument, NULL, OPT_VERIFY},
	{"no-verify", no_argument, NULL, OPT_NO_VERIFY},
	{"io-size", required_argument, NULL, OPT_IO_SIZE},
	{"gen", required_argument, NULL, OPT_GEN},
	{"check", required_argument, NULL, OPT_CHECK},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct bench b = {
		.timeout = 120,
		.stall = 10,
		.wait_host = 30,
		.io_size = 1u << 20,
		.seconds = 3600,
		.rounds = 1,
	};
	double connect_timeout = 10;
	bool verify_set = false, buf_size_set = false;
	uint64_t v, seg = 0;
	int opt;

	sim_opts_default(&b.o);
	b.o.mem_size = 256ull << 20;
	while ((opt = getopt_long(argc, argv, "s:p:m:h", long_opts, NULL)) !=
	       -1) {
		switch (opt) {
		case 's':
			b.socket = optarg;
			break;
		case 'p':
			if (b.nports == MAX_PORTS) {
				fprintf(stderr,
					"vportfs-bench: at most %u ports\n",
					MAX_PORTS);
				return 2;
			}
			b.port[b.nports++] = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "g2h") == 0)
				b.mode = MODE_G2H;
			else if (strcmp(optarg, "h2g") == 0)
				b.mode = MODE_H2G;
			else if (strcmp(optarg, "rtt") == 0)
				b.mode = MODE_RTT;
			else if (strcmp(optarg, "idle") == 0)
				b.mode = MODE_IDLE;
			else {
				fprintf(stderr, "vportfs-bench: --mode g2h, "
						"h2g, rtt or idle\n");
				return 2;
			}
			break;
		case OPT_COUNT:
			if (!parse_num("--count", optarg, 100000000, &b.bytes))
				return 2;
			break;
		case OPT_ECHO:
		case OPT_RTT_FILE:
			b.echo_path = optarg;
			b.mode = opt == OPT_ECHO ? MODE_ECHO : MODE_RTT_FILE;
			break;
		case OPT_RTT_PIPE:
			b.mode = MODE_RTT_PIPE;
			break;
		case OPT_MAX_PORTS:
			if (!parse_num("--max-ports", optarg, MAX_PORTS, &v) ||
			    v == 0)
				return 2;
			b.o.max_ports = (unsigned)v;
			break;
		case OPT_SECONDS:
			if (!parse_secs("--seconds", optarg, &b.seconds))
				return 2;
			break;
		case OPT_ZERO:
			b.zero = true;
			break;
		case OPT_ROUNDS:
			if (!parse_num("--rounds", optarg, 1000, &v) || v == 0)
				return 2;
			b.rounds = (unsigned)v;
			break;
		case OPT_WARMUP:
			if (!parse_num("--warmup", optarg, UINT64_MAX / 4,
				       &b.warmup))
				return 2;
			break;
		case OPT_SKIP:
			if (!parse_num("--skip", optarg, UINT64_MAX / 4,
				       &b.skip))
				return 2;
			break;
		case OPT_BYTES:
		case OPT_GEN:
		case OPT_CHECK:
			if (!parse_num("--bytes", optarg, UINT64_MAX / 2,
				       &b.bytes))
				return 2;
			if (opt == OPT_GEN)
				b.mode = MODE_GEN;
			if (opt == OPT_CHECK)
				b.mode = MODE_CHECK;
			break;
		case OPT_BUF_SIZE:
			if (!parse_num("--buf-size", optarg, 1u << 30, &v) ||
			    v == 0)
				return 2;
			b.buf_size = (uint32_t)v;
			buf_size_set = true;
			break;
		case OPT_RX_BUFS:
			if (!parse_num("--rx-bufs", optarg, 32768, &v))
				return 2;
			b.rx_bufs = (unsigned)v;
			break;
		case OPT_SEG_SIZE:
			if (!parse_num("--seg-size", optarg, 1u << 30, &seg))
				return 2;
			break;
		case OPT_QUEUE_SIZE:
			if (!parse_num("--queue-size", optarg, 32768, &v))
				return 2;
			b.o.queue_size = (unsigned)v;
			break;
		case OPT_MEM_MB:
			if (!parse_num("--mem-mb", optarg, 1u << 20, &v))
				return 2;
			b.o.mem_size = v << 20;
			break;
		case OPT_NO_EVENT_IDX:
			b.o.event_idx = false;
			break;
		case OPT_NO_INDIRECT:
			b.o.indirect = false;
			break;
		case OPT_CALL_EVENTFD:
			b.o.call_eventfd = true;
			break;
		case OPT_TIMEOUT:
			if (!parse_secs("--timeout", optarg, &b.timeout))
				return 2;
			break;
		case OPT_STALL:
			if (!parse_secs("--stall", optarg, &b.stall))
				return 2;
			break;
		case OPT_WAIT_HOST:
			if (!parse_secs("--wait-host", optarg, &b.wait_host))
				return 2;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (!parse_secs("--connect-timeout", optarg,
					&connect_timeout))
				return 2;
			break;
		case OPT_VERIFY:
		case OPT_NO_VERIFY:
			b.verify = opt == OPT_VERIFY;
			verify_set = true;
			break;
		case OPT_IO_SIZE:
			if (!parse_num("--io-size", optarg, CHUNK, &v) ||
			    v == 0)
				return 2;
			b.io_size = (size_t)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || b.mode == MODE_NONE) {
		usage(stderr);
		return 2;
	}
	if (b.skip && (b.mode != MODE_CHECK || b.skip >= b.bytes)) {
		fputs("vportfs-bench: --skip is for --check, and less than "
		      "its bytes\n",
		      stderr);
		return 2;
	}

	struct pattern *pat = pattern_new(b.mode == MODE_GEN);
	if (!pat) {
		fputs("vportfs-bench: out of memory\n", stderr);
		return 1;
	}
	if (b.mode == MODE_GEN || b.mode == MODE_CHECK) {
		if (!verify_set)
			b.verify = true;
		int rc = run_gen_check(&b, pat);
		pattern_free(pat);
		return rc;
	}
	if (b.mode == MODE_ECHO) {
		pattern_free(pat);
		return run_echo(&b);
	}
	if (b.mode == MODE_RTT_FILE || b.mode == MODE_RTT_PIPE) {
		int rc = 2;
		if (b.bytes == 0)
			fputs("vportfs-bench: --count is required\n", stderr);
		else if (b.mode == MODE_RTT_FILE)
			rc = run_rtt_file(&b, pat);
		else
			rc = run_rtt_pipe(&b);
		pattern_free(pat);
		return rc;
	}
	if (b.mode == MODE_IDLE && b.bytes == 0)
		b.bytes = 1; /* nothing to count */
	if (!b.socket || b.nports == 0 || b.bytes == 0) {
		fputs("vportfs-bench: --socket, --port and --bytes (rtt: "
		      "--count) are required\n",
		      stderr);
		pattern_free(pat);
		return 2;
	}
	if (b.mode != MODE_G2H && b.mode != MODE_IDLE && b.nports > 1) {
		fputs("vportfs-bench: several ports only with --mode g2h "
		      "or idle\n",
		      stderr);
		pattern_free(pat);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Other ports get a few small receive buffers only; the measured
	 * port gets its own below. */
	b.o.rx_bufs = 4;
	b.o.rx_buf_size = 4096;
	b.o.tx_event_delay = true;
	if (b.mode == MODE_RTT) {
		/* Latency, not batching: take every TX interrupt. */
		b.o.tx_event_delay = false;
	} else if (b.mode == MODE_G2H) {
		b.o.tx_buf_size = buf_size_set ? b.buf_size : 32768;
		b.o.tx_seg_size = (uint32_t)seg;
	} else {
		b.o.rx_seg_size = (uint32_t)seg;
	}

	int status = 1;
	struct sim *s = sim_new(&b.o);
	if (!s) {
		perror("vportfs-bench: sim_new");
		goto out_free_pat;
	}
	int rc = sim_connect(s, b.socket, (int)(connect_timeout * 1000));
	if (rc) {
		fprintf(stderr, "vportfs-bench: connect: %s\n", sim_error(s));
		goto out_free_sim;
	}
	unsigned nrs[MAX_PORTS];
	for (unsigned i = 0; i < b.nports; i++) {
		rc = sim_wait_port(s, b.port[i], (int)(connect_timeout * 1000));
		if (rc < 0) {
			fprintf(stderr, "vportfs-bench: port %s:\n", b.port[i]);
			fail_diag(s, "waiting for the port");
			goto out_free_sim;
		}
		nrs[i] = (unsigned)rc;
	}
	unsigned nr = nrs[0];
	if (b.mode == MODE_H2G) {
		struct sim_state st;
		sim_get_state(s, &st);
		unsigned want = b.rx_bufs ? b.rx_bufs : b.o.queue_size;
		uint32_t size = buf_size_set ? b.buf_size : 4096;
		rc = sim_port_rx_post(s, nr, want, size);
		if (rc < 0) {
			fail_diag(s, "posting receive buffers");
			goto out_free_sim;
		}
	}
	for (unsigned i = 0; i < b.nports; i++) {
		rc = sim_port_open(s, nrs[i]);
		if (rc) {
			fail_diag(s, "open");
			goto out_free_sim;
		}
	}
	if (b.mode == MODE_G2H)
		rc = run_g2h(&b, s, nrs, b.nports, pat);
	else if (b.mode == MODE_IDLE)
		rc = run_idle(&b, s, b.nports);
	else if (b.mode == MODE_RTT)
		rc = run_rtt(&b, s, nr);
	else
		rc = run_h2g(&b, s, nr, pat);
	if (rc == 0) {
		status = 0;
		/* The host readers of g2h and the echo of rtt see EOF once
		 * the guest closes. */
		for (unsigned i = 0; i < b.nports; i++)
			sim_port_close(s, nrs[i]);
		sim_process(s, 50);
	}
out_free_sim:
	sim_free(s);
out_free_pat:
	pattern_free(pat);
	return status;
}
