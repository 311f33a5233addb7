/*
 * libFuzzer harness for the vhost-user backend (src/device/vhost_user.c,
 * with src/device/virtqueue.c under it), played as its frontend.
 *
 * Per input: a fake loop (tests/unit/fake_loop.c), a vu with a minimal
 * device, one end of a socketpair attached with vu_attach_fd, and a 64 KiB
 * memfd of guest memory that the harness maps too.  The input is a script
 * of records that the harness plays on its end of the socket; after it, the
 * vu is freed, and the harness checks that nothing outlived it: no watch,
 * timer or deferred call in the fake loop, and exactly the fds open before
 * the input (every fd the vu received was closed).
 *
 * Input: byte 0 configures the run:
 *   bits 0-3  queues (1..16)
 *   bit 4     at the end, hang up our end of the socket and pump (EOF
 *             path) before vu_free
 *   bit 5     the device drains queues on every kick: pops every chain,
 *             reads and writes it, pushes it, asks for a notification
 *   bit 6     ... with vu_queue_notify_lazy on odd queues
 *   bit 7     offer no protocol features (rings enabled by their kick fd)
 * then records, each starting with a control byte c:
 *   c < 0x80  SEND: u16 length (little-endian), then that many bytes (cut
 *             at the end of the input), written in one sendmsg with
 *             c & 0x0f fds attached (SCM_RIGHTS; more than VU_MAX_FDS = 8
 *             is the backend's problem), of kind (c >> 4) & 3:
 *               0 a new eventfd (we keep our copy: KICK writes it)
 *               1 the guest memory memfd
 *               2 one end of a new socketpair (we keep the other)
 *               3 a new 4 KiB memfd
 *             (c & 0x40: no pump after the record, so that the next
 *             SEND's bytes join this one's in the socket)
 *   c >= 0x80  c & 0x0f selects:
 *               0 GUEST: u16 offset, u8 length, bytes: write guest memory
 *               1 KICK: write 1 to every eventfd and socketpair end kept
 *               2 TIMERS: fire the fake loop's armed timers
 *               3 SIZE: u8 b: ftruncate the guest memfd to b * 256 bytes
 *                 (255: back to 64 KiB): a frontend that shrinks guest
 *                 memory under us (the SIGBUS guard's business)
 *               4 RECONNECT: a new socketpair, if the vu has no frontend
 *               5 HANGUP: close our end of the socket
 *               6 DISCONNECT: vu_disconnect()
 *               7 CLOSE: close every eventfd and socketpair end we kept
 *                 (kick fds see EOF, call and err fds EPIPE)
 *               8-15 nothing but the pump
 *             (c & 0x10: no pump after the record)
 * A pump runs the fake loop until nothing happens (at most 32 rounds) and
 * reads and drops whatever the vu sent us.
 *
 * Bounds: at most 64 fds made per input, 512 pops, 8192 dropped chains:
 * any input finishes quickly.  The daemon ignores SIGPIPE (main.c), and so
 * does the harness.
 *
 * The vu installs a SIGBUS handler (its guard) that replaces libFuzzer's:
 * a SIGBUS outside guest memory then kills the process without a crash
 * artifact.  The harness itself never touches guest memory past the size
 * it last gave the memfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_loop.h"
#include "vportfs/log.h"
#include "vportfs/vu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MEM_SIZE	 0x10000u
#define SMALL_MEM_SIZE	 0x1000u
#define MAX_SEND_FDS	 12
#define MAX_MADE_FDS	 64
#define PUMP_ROUNDS	 32
#define POP_BUDGET	 512
#define BAD_CHAIN_BUDGET 8192

#define OFFERED_FEATURES                                                       \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) |         \
	 (1ull << VIRTIO_F_INDIRECT_DESC) |                                    \
	 (1ull << VIRTIO_CONSOLE_F_MULTIPORT) |                                \
	 (1ull << VIRTIO_CONSOLE_F_SIZE))
#define OFFERED_PROTOCOL_FEATURES                                              \
	((1ull << VU_PROTOCOL_F_MQ) | (1ull << VU_PROTOCOL_F_REPLY_ACK) |      \
	 (1ull << VU_PROTOCOL_F_BACKEND_REQ) | (1ull << VU_PROTOCOL_F_CONFIG))

/* Config bits (byte 0). */
#define CFG_EOF_AT_END	0x10
#define CFG_DRAIN	0x20
#define CFG_LAZY	0x40
#define CFG_NO_PROTOCOL 0x80

/* An fd we keep so that KICK can write it; sock: a socket (send with
 * MSG_NOSIGNAL), else an eventfd. */
struct kept {
	int fd;
	bool sock;
};

struct h {
	struct fake_loop *fl;
	struct vu *vu;
	uint8_t cfg;
	unsigned nqueues;
	int sock; /* our end of the frontend socket, or -1 */
	int memfd;
	uint8_t *gm;	/* our mapping of guest memory, MEM_SIZE bytes */
	size_t gm_size; /* the memfd's size as we last set it */
	struct kept kept[MAX_MADE_FDS];
	unsigned nkept;
	unsigned made; /* fds made for sending, this input */
	unsigned pops;
	uint64_t bad_chains;
	int connected; /* connected() minus disconnected() calls */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VPORTFS_FUZZ_LOG");
	enum vp_log_level l;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN); /* as main() does */
	if (lvl && vp_log_parse_level(lvl, &l) == 0)
		vp_log_set_level(l);
	return 0;
}

static void die(const char *why)
{
	fprintf(stderr, "fuzz_vhost_user: %s\n", why);
	abort();
}

/* ---- the device ------------------------------------------------------ */

static int d_get_config(void *opaque, uint32_t off, uint8_t *buf, uint32_t len)
{
	(void)opaque;
	if (off + len > VU_MAX_CONFIG_SIZE)
		die("get_config range not checked");
	/* Some failures too: a zero-size reply. */
	if (off % 7 == 3)
		return -EINVAL;
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(off + i);
	return 0;
}

static int d_set_config(void *opaque, uint32_t off, const uint8_t *buf,
			uint32_t len)
{
	volatile uint8_t sum = 0;

	(void)opaque;
	if (off + len > VU_MAX_CONFIG_SIZE)
		die("set_config range not checked");
	for (uint32_t i = 0; i < len; i++)
		sum += buf[i];
	(void)sum;
	return 0;
}

static void d_set_features(void *opaque, uint64_t features)
{
	(void)opaque;
	if (features & (1ull << VU_F_PROTOCOL_FEATURES))
		die("set_features got bit 30");
}

/* Pop, use and push what the queue holds, as a device that keeps
 * nothing would. */
static void drain(struct h *h, unsigned q)
{
	static const uint8_t pattern[64] = {'v', 'p'};
	struct vq *vq = vu_queue(h->vu, q);
	const struct vq_mem *mem = vu_mem(h->vu);

	for (unsigned i = 0; i <= vq->num; i++) {
		uint64_t bad = vq->bad_chains;
		volatile uint8_t sum = 0;
		struct vq_elem *e;
		int rc;

		if (h->pops >= POP_BUDGET || h->bad_chains > BAD_CHAIN_BUDGET)
			return;
		h->pops++;
		rc = vq_pop(vq, mem, &e);
		h->bad_chains += vq->bad_chains - bad;
		if (rc <= 0)
			break;
		for (unsigned k = 0; k < e->out_num; k++) {
			const uint8_t *b = e->iov[k].iov_base;

			sum += b[0];
			sum += b[e->iov[k].iov_len - 1];
		}
		(void)sum;
		vq_push(vq, e->head,
			(uint32_t)vq_elem_fill(e, 0, pattern, sizeof(pattern)));
		free(e);
	}
	if ((h->cfg & CFG_LAZY) && (q & 1))
		vu_queue_notify_lazy(h->vu, q);
	else
		vu_queue_notify(h->vu, q);
	vq_want_kick(vq);
	(void)vq_has_avail(vq);
}

static void d_queue_kick(void *opaque, unsigned q)
{
	struct h *h = opaque;

	if (q >= h->nqueues)
		die("queue_kick: queue out of range");
	if (!vu_queue_started(h->vu, q))
		die("queue_kick on a stopped queue");
	if (h->cfg & CFG_DRAIN)
		drain(h, q);
}

static void d_queue_stop(void *opaque, unsigned q, bool keep)
{
	struct h *h = opaque;

	(void)keep;
	if (q >= h->nqueues)
		die("queue_stop: queue out of range");
	if (!vu_queue_started(h->vu, q))
		die("queue_stop: not started (vu.h: still started, may push)");
}

static void d_disconnecting(void *opaque)
{
	struct h *h = opaque;

	if (!vu_connected(h->vu))
		die("disconnecting without a frontend");
}

static void d_connected(void *opaque)
{
	struct h *h = opaque;

	if (++h->connected != 1)
		die("connected twice");
}

static void d_disconnected(void *opaque)
{
	struct h *h = opaque;

	if (--h->connected != 0)
		die("disconnected twice");
}

static const struct vu_device_ops dev_ops = {
	.get_config = d_get_config,
	.set_config = d_set_config,
	.set_features = d_set_features,
	.queue_kick = d_queue_kick,
	.queue_stop = d_queue_stop,
	.disconnecting = d_disconnecting,
	.connected = d_connected,
	.disconnected = d_disconnected,
};

/* ---- the frontend ---------------------------------------------------- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd");
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void drop_input(int fd)
{
	char buf[4096];

	for (int i = 0; i < 64; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			return;
}

static void pump(struct h *h)
{
	for (int i = 0; i < PUMP_ROUNDS; i++) {
		int called = fake_loop_run(h->fl, 0);

		if (h->sock >= 0)
			drop_input(h->sock);
		/* Calls the vu made on socketpair call/err fds. */
		for (unsigned k = 0; k < h->nkept; k++)
			if (h->kept[k].sock)
				drop_input(h->kept[k].fd);
		if (!called && !fake_loop_ndeferred(h->fl))
			return;
	}
}

static void keep(struct h *h, int fd, bool sock)
{
	h->kept[h->nkept++] = (struct kept){fd, sock};
}

static void connect_frontend(struct h *h)
{
	int sv[2];

	if (vu_connected(h->vu))
		return;
	if (h->sock >= 0) {
		close(h->sock);
		h->sock = -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	/* vu_attach_fd owns sv[0] from here, success or not. */
	if (vu_attach_fd(h->vu, sv[0]) < 0) {
		close(sv[1]);
		return;
	}
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	h->sock = sv[1];
}

/* A new fd of `kind` to send; *close_after: ours to close once sent. */
static int make_fd(struct h *h, unsigned kind, bool *close_after)
{
	int fd = -1, sv[2];

	*close_after = true;
	/* Every kind but 1 may end up kept: room for one more. */
	if (h->made >= MAX_MADE_FDS || h->nkept >= MAX_MADE_FDS)
		kind = 1;
	switch (kind) {
	case 0:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0) {
			/* Our copy stays (the vu gets its own). */
			int mine = dup(fd);

			if (mine >= 0)
				keep(h, mine, false);
		}
		break;
	case 1:
		*close_after = false;
		return h->memfd;
	case 2:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			break;
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		keep(h, sv[1], true);
		fd = sv[0];
		break;
	case 3:
		fd = memfd_create("vportfs-fuzz-small", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, SMALL_MEM_SIZE) < 0) {
			close(fd);
			fd = -1;
		}
		break;
	}
	if (fd < 0)
		die("cannot make an fd to send");
	h->made++;
	return fd;
}

static void send_record(struct h *h, const uint8_t *buf, size_t len,
			unsigned nfds, unsigned kind)
{
	char cbuf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
	int fds[MAX_SEND_FDS];
	bool close_after[MAX_SEND_FDS];
	size_t done = 0;

	if (nfds > MAX_SEND_FDS)
		nfds = MAX_SEND_FDS;
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = make_fd(h, kind, &close_after[i]);
	for (int tries = 0; h->sock >= 0 && done < len && tries < 4;) {
		struct iovec iov = {(void *)(buf + done), len - done};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		/* The fds go with the first bytes sent. */
		if (nfds && done == 0) {
			struct cmsghdr *c;

			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(h->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break; /* the vu hung up */
		/* Its socket buffer is full: let it read. */
		pump(h);
		tries++;
	}
	for (unsigned i = 0; i < nfds; i++)
		if (close_after[i])
			close(fds[i]);
}

static void kick_all(struct h *h)
{
	static const uint64_t one = 1;

	for (unsigned k = 0; k < h->nkept; k++) {
		ssize_t n;

		if (h->kept[k].sock)
			n = send(h->kept[k].fd, &one, sizeof(one),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		else
			n = write(h->kept[k].fd, &one, sizeof(one));
		(void)n; /* full, or the other end gone: fine */
	}
}

static void close_kept(struct h *h)
{
	for (unsigned k = 0; k < h->nkept; k++)
		close(h->kept[k].fd);
	h->nkept = 0;
}

static void set_guest_size(struct h *h, uint8_t b)
{
	size_t size = b == 255 ? MEM_SIZE : (size_t)b * 256;

	if (ftruncate(h->memfd, (off_t)size) == 0)
		h->gm_size = size;
}

/* Bytes of the input not yet consumed. */
struct in {
	const uint8_t *p;
	size_t left;
};

static uint8_t get_u8(struct in *in)
{
	uint8_t v = 0;

	if (in->left) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

static uint16_t get_u16(struct in *in)
{
	uint16_t lo = get_u8(in);

	return (uint16_t)(lo | get_u8(in) << 8);
}

static const uint8_t *get_bytes(struct in *in, size_t *n)
{
	const uint8_t *p = in->p;

	if (*n > in->left)
		*n = in->left;
	in->p += *n;
	in->left -= *n;
	return p;
}

static void play(struct h *h, struct in *in)
{
	while (in->left) {
		uint8_t c = get_u8(in);
		bool do_pump = true;

		if (c < 0x80) {
			size_t n = get_u16(in);
			const uint8_t *p = get_bytes(in, &n);

			send_record(h, p, n, c & 0x0f, (c >> 4) & 3);
			do_pump = !(c & 0x40);
		} else {
			do_pump = !(c & 0x10);
			switch (c & 0x0f) {
			case 0: {
				size_t off = get_u16(in), n = get_u8(in);
				const uint8_t *p = get_bytes(in, &n);

				/* Never past what the file holds now: that
				 * would be our SIGBUS. */
				if (off < h->gm_size) {
					if (n > h->gm_size - off)
						n = h->gm_size - off;
					memcpy(h->gm + off, p, n);
				}
				break;
			}
			case 1:
				kick_all(h);
				break;
			case 2:
				fake_loop_fire_timers(h->fl);
				break;
			case 3:
				set_guest_size(h, get_u8(in));
				break;
			case 4:
				connect_frontend(h);
				break;
			case 5:
				if (h->sock >= 0) {
					close(h->sock);
					h->sock = -1;
				}
				break;
			case 6:
				vu_disconnect(h->vu);
				break;
			case 7:
				close_kept(h);
				break;
			default:
				break;
			}
		}
		if (do_pump)
			pump(h);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct h h = {.sock = -1, .memfd = -1};
	struct vu_config cfg;
	int fds_at_start = count_fds();

	h.cfg = get_u8(&in);
	h.nqueues = 1 + (h.cfg & 0x0f);
	cfg = (struct vu_config){
		.features = OFFERED_FEATURES,
		.protocol_features =
			h.cfg & CFG_NO_PROTOCOL ? 0 : OFFERED_PROTOCOL_FEATURES,
		.nqueues = h.nqueues,
	};
	h.fl = fake_loop_new();
	if (!h.fl)
		die("fake_loop_new");
	h.memfd = memfd_create("vportfs-fuzz-guest", MFD_CLOEXEC);
	if (h.memfd < 0 || ftruncate(h.memfd, MEM_SIZE) < 0)
		die("memfd");
	h.gm_size = MEM_SIZE;
	h.gm = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd,
		    0);
	if (h.gm == MAP_FAILED)
		die("mmap");
	h.vu = vu_new(fake_loop_vp(h.fl), &cfg, &dev_ops, &h);
	if (!h.vu)
		die("vu_new");
	connect_frontend(&h);
	if (h.sock < 0)
		die("vu_attach_fd");

	play(&h, &in);

	if (h.cfg & CFG_EOF_AT_END) {
		if (h.sock >= 0) {
			close(h.sock);
			h.sock = -1;
		}
		pump(&h);
		if (vu_connected(h.vu))
			die("frontend hung up, vu still connected");
	}
	vu_free(h.vu);
	/* Nothing the vu asked the loop for may outlive it. */
	if (fake_loop_nwatches(h.fl) || fake_loop_ndeferred(h.fl) ||
	    fake_loop_ntimers(h.fl))
		die("a watch, deferred call or timer outlived vu_free");
	fake_loop_free(h.fl);
	if (h.sock >= 0)
		close(h.sock);
	close_kept(&h);
	munmap(h.gm, MEM_SIZE);
	close(h.memfd);
	if (count_fds() != fds_at_start)
		die("fd leak: the vu kept an fd it received");
	return 0;
}
