/*
 * vportfs-bench: guest-side throughput of one port, through the simulated
 * guest (sim.h), while a host-side process reads or writes the port file.
 *
 *   g2h: opens the port, waits for a host reader, streams N bytes of the
 *        pattern as fast as the TX ring allows; done when the device has
 *        returned every TX buffer.
 *   h2g: opens the port, receives N bytes written by the host; timed from
 *        the first byte to the last.
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
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_MOD 251u
#define CHUNK	    (4u << 20)

struct bench {
	const char *socket;
	const char *port;
	enum { MODE_NONE, MODE_G2H, MODE_H2G, MODE_GEN, MODE_CHECK } mode;
	uint64_t bytes;
	uint32_t buf_size;
	unsigned rx_bufs;
	double timeout;	  /* whole run, seconds */
	double stall;	  /* no progress, seconds */
	double wait_host; /* g2h: for the host reader, seconds */
	bool verify;
	size_t io_size; /* --gen / --check */
	struct sim_opts o;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A buffer whose bytes at [k, k + CHUNK) are the pattern from offset k,
 * for any k < PATTERN_MOD: the stream at offset i is pat[i % 251 ...]. */
static uint8_t *pattern_new(void)
{
	uint8_t *p = malloc(CHUNK + PATTERN_MOD);

	if (!p)
		return NULL;
	for (size_t i = 0; i < CHUNK + PATTERN_MOD; i++)
		p[i] = (uint8_t)(i % PATTERN_MOD);
	return p;
}

/* Offset of the first mismatch in buf (stream offset `at`), or -1. */
static long long pattern_check(const uint8_t *pat, uint64_t at,
			       const uint8_t *buf, size_t len)
{
	const uint8_t *want = pat + at % PATTERN_MOD;

	if (memcmp(buf, want, len) == 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != want[i])
			return (long long)(at + i);
	return -1;
}

static void report(const char *mode, uint64_t bytes, double secs,
		   const struct sim *s)
{
	struct sim_stats st = {0};

	if (s)
		sim_get_stats(s, &st);
	printf("mode=%s bytes=%llu seconds=%.6f MBps=%.1f kicks=%llu "
	       "calls=%llu\n",
	       mode, (unsigned long long)bytes, secs,
	       secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
	       (unsigned long long)st.kicks, (unsigned long long)st.calls);
	fflush(stdout);
}

static void fail_diag(struct sim *s, const char *what)
{
	char buf[4096];

	fprintf(stderr, "vportfs-bench: %s: %s\n", what,
		sim_bug(s) ? sim_bug(s) : sim_error(s));
	if (sim_diagnose(s, buf, sizeof(buf)))
		fprintf(stderr, "vportfs-bench: diagnosis:\n%s", buf);
}

static bool cond_host(struct sim *s, void *a)
{
	struct sim_port_info pi;

	return sim_port_info(s, *(unsigned *)a, &pi) == 0 && pi.host_connected;
}

static int run_g2h(struct bench *b, struct sim *s, unsigned nr,
		   const uint8_t *pat)
{
	struct sim_port_info pi;
	uint64_t queued = 0;
	double start, last_progress, end;
	long pending = 0;

	int rc = sim_wait(s, cond_host, &nr, (int)(b->wait_host * 1000));
	if (rc) {
		fail_diag(s, "waiting for a host reader");
		return rc;
	}
	start = last_progress = now_s();
	for (;;) {
		while (queued < b->bytes) {
			uint64_t want = b->bytes - queued;
			long n = sim_port_write(
				s, nr, pat + queued % PATTERN_MOD,
				want < CHUNK ? (size_t)want : CHUNK);
			if (n == -EAGAIN)
				break;
			if (n < 0) {
				fail_diag(s, "write");
				return (int)n;
			}
			queued += (uint64_t)n;
			last_progress = now_s();
		}
		pending = sim_port_tx_pending(s, nr);
		if (queued == b->bytes && pending == 0)
			break;
		long before = pending;
		rc = sim_process(s, 100);
		if (rc) {
			fail_diag(s, "device");
			return rc;
		}
		double t = now_s();
		if (sim_port_tx_pending(s, nr) != before)
			last_progress = t;
		if (t - last_progress > b->stall || t - start > b->timeout) {
			fail_diag(s, t - start > b->timeout ? "timeout"
							    : "stalled");
			return -ETIMEDOUT;
		}
	}
	end = now_s();
	if (sim_port_info(s, nr, &pi) == 0 && pi.tx_total < b->bytes)
		fprintf(stderr, "vportfs-bench: only %llu bytes returned\n",
			(unsigned long long)pi.tx_total);
	report("g2h", b->bytes, end - start, s);
	return 0;
}

static int run_h2g(struct bench *b, struct sim *s, unsigned nr,
		   const uint8_t *pat)
{
	uint8_t *buf = malloc(CHUNK);
	uint64_t got = 0;
	double opened = now_s(), first = 0, last_progress = opened;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (got < b->bytes) {
		uint64_t want = b->bytes - got;
		long n = sim_port_read(s, nr, buf, want < CHUNK ? want : CHUNK);
		if (n < 0) {
			fail_diag(s, "read");
			rc = (int)n;
			goto out_free_buf;
		}
		if (n > 0) {
			if (got == 0)
				first = now_s();
			if (b->verify) {
				long long bad =
					pattern_check(pat, got, buf, (size_t)n);
				if (bad >= 0) {
					fprintf(stderr,
						"vportfs-bench: data mismatch "
						"at offset %lld\n",
						bad);
					rc = -EILSEQ;
					goto out_free_buf;
				}
			}
			got += (uint64_t)n;
			last_progress = now_s();
			continue;
		}
		rc = sim_process(s, 100);
		if (rc) {
			fail_diag(s, "device");
			goto out_free_buf;
		}
		double t = now_s();
		/* Before the first byte, the host writer may still be
		 * starting: only the overall timeout applies. */
		if ((got > 0 && t - last_progress > b->stall) ||
		    t - opened > b->timeout) {
			fprintf(stderr,
				"vportfs-bench: got %llu of %llu bytes\n",
				(unsigned long long)got,
				(unsigned long long)b->bytes);
			fail_diag(s, got ? "stalled" : "timeout");
			rc = -ETIMEDOUT;
			goto out_free_buf;
		}
	}
	report("h2g", b->bytes, now_s() - first, s);
out_free_buf:
	free(buf);
	return rc;
}

/* --gen: the pattern to stdout; --check: verify stdin.  Host side. */
static int run_gen_check(struct bench *b, const uint8_t *pat)
{
	uint8_t *buf = malloc(b->io_size);
	uint64_t done = 0;
	double start = now_s();

	if (!buf)
		return 1;
	while (done < b->bytes) {
		size_t want = b->bytes - done < b->io_size
				      ? (size_t)(b->bytes - done)
				      : b->io_size;
		ssize_t n;
		if (b->mode == MODE_GEN) {
			n = write(1, pat + done % PATTERN_MOD, want);
		} else {
			n = read(0, buf, want);
			if (n > 0 && b->verify) {
				long long bad = pattern_check(pat, done, buf,
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
	}
	free(buf);
	if (b->mode == MODE_CHECK)
		report("check", done, now_s() - start, NULL);
	else
		fprintf(stderr, "mode=gen bytes=%llu seconds=%.6f\n",
			(unsigned long long)done, now_s() - start);
	return 0;
}

/* clang-format off */
static void usage(FILE *f)
{
	fputs("usage: vportfs-bench --socket PATH --port NAME --mode g2h|h2g "
	      "--bytes N [OPTIONS]\n"
	      "       vportfs-bench --gen N  > PORTFILE   (host writer)\n"
	      "       vportfs-bench --check N < PORTFILE  (host reader)\n"
	      "\n"
	      "Drives the guest side of one port through the simulated guest\n"
	      "and prints one line:\n"
	      "  mode=g2h|h2g bytes=N seconds=S MBps=X kicks=N calls=N\n"
	      "(MB = 10^6 bytes).  A host-side process must read (g2h) or\n"
	      "write (h2g) the port file meanwhile.  The stream is the\n"
	      "pattern byte[i] = i % 251; --gen writes it, --check reads and\n"
	      "verifies it (and prints its own mode=check line).\n"
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
	      "  --wait-host SEC   g2h: wait this long for the reader (30)\n"
	      "  --connect-timeout SEC (10)\n"
	      "  --verify          h2g: check the received pattern\n"
	      "  --no-verify       --check: don't compare, just count\n"
	      "  --io-size N       --gen/--check: bytes per write/read (1 MiB)\n"
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
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, 's'},
	{"port", required_argument, NULL, 'p'},
	{"mode", required_argument, NULL, 'm'},
	{"bytes", required_argument, NULL, OPT_BYTES},
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
			b.port = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "g2h") == 0)
				b.mode = MODE_G2H;
			else if (strcmp(optarg, "h2g") == 0)
				b.mode = MODE_H2G;
			else {
				fprintf(stderr, "vportfs-bench: --mode g2h or "
						"h2g\n");
				return 2;
			}
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
			if (!parse_num("--io-size", optarg, 1u << 30, &v) ||
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

	uint8_t *pat = pattern_new();
	if (!pat) {
		fputs("vportfs-bench: out of memory\n", stderr);
		return 1;
	}
	if (b.mode == MODE_GEN || b.mode == MODE_CHECK) {
		if (!verify_set)
			b.verify = true;
		int rc = run_gen_check(&b, pat);
		free(pat);
		return rc;
	}
	if (!b.socket || !b.port || b.bytes == 0) {
		fputs("vportfs-bench: --socket, --port and --bytes are "
		      "required\n",
		      stderr);
		free(pat);
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
	if (b.mode == MODE_G2H) {
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
	rc = sim_wait_port(s, b.port, (int)(connect_timeout * 1000));
	if (rc < 0) {
		fail_diag(s, "waiting for the port");
		goto out_free_sim;
	}
	unsigned nr = (unsigned)rc;
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
	rc = sim_port_open(s, nr);
	if (rc) {
		fail_diag(s, "open");
		goto out_free_sim;
	}
	rc = b.mode == MODE_G2H ? run_g2h(&b, s, nr, pat)
				: run_h2g(&b, s, nr, pat);
	if (rc == 0) {
		status = 0;
		/* The host reader of g2h sees EOF once the guest closes. */
		sim_port_close(s, nr);
		sim_process(s, 50);
	}
out_free_sim:
	sim_free(s);
out_free_pat:
	free(pat);
	return status;
}
