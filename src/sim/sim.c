/*
 * sim: a vhost-user frontend and a user-space virtio-console driver.
 *
 * The VMM half negotiates with the daemon the way User-Mode-Linux 6.x does
 * (arch/um/drivers/virtio_uml.c) and owns the guest memory; the driver half
 * follows Linux's drivers/char/virtio_console.c: it fills control-rx, sends
 * DEVICE_READY, answers PORT_ADD with receive buffers and PORT_READY, keeps
 * received buffers out of the ring until they are read, and discards data
 * that arrives on a closed port.
 *
 * The one design choice that matters: all bookkeeping lives in host memory
 * (shadow descriptor links, per-head state, allocator extents), never in
 * the shared guest memory the device can scribble on, and everything read
 * back from the device is validated.  A violation is a "device bug": it is
 * recorded once, printed, and makes every later wait fail with -EPROTO, so
 * a test cannot miss it.
 */
#include "vportfs/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SIM_ALIGN	  64u /* allocation granule in guest memory */
#define RING_ALIGN	  4096u /* used ring alignment, as vring_create_virtqueue */
#define CANARY_LEN	  16u /* guard bytes after each receive segment */
#define CANARY_BYTE	  0xa5
#define GAP_BYTE	  0xee	/* filler between transmit segments */
#define CTRL_BUF_SIZE	  4096u /* control-rx buffers: PAGE_SIZE, like Linux */
#define MAX_PORT_IDS	  4096u /* port numbers the sim keeps state for */
#define MAX_QUEUES	  256u /* vring index is 8 bits in SET_VRING_KICK/CALL */
#define DEFAULT_PORTS	  31u  /* UML: 64 queues at most */
#define RAW_COMPLETIONS	  256u
#define STALE_CALL_MS	  500
#define MAX_BUGS_PRINTED  20u
#define MAX_REPLY_DISCARD (1u << 20)

#define ALIGN_UP(x, a) (((x) + ((uint64_t)(a)-1)) & ~((uint64_t)(a)-1))

#define VU_REPLY_FLAGS (VU_VERSION | VU_FLAG_REPLY)
#define BIT64(n)       (1ull << (n))

/* epoll tags: kind in the high half, queue index in the low half. */
enum { TAG_SOCK = 1, TAG_BACKEND = 2, TAG_CALL = 3 };
#define TAG(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))

/* Guest memory owned by the sim: [gpa, gpa + cap). */
struct sim_buf {
	uint64_t gpa;
	uint32_t cap;
};

/* One segment of a chain being added. */
struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* A port's receive buffer.  It is in exactly one place: posted on the ring
 * (a head points at it), in the port's data fifo (used, unread), or in the
 * port's spare list (withheld). */
struct sim_rxbuf {
	TAILQ_ENTRY(sim_rxbuf) link;
	struct sim_buf mem;
	uint32_t size; /* data capacity posted */
	uint32_t seg;  /* segment size; segment i at i * (seg + CANARY_LEN) */
	uint32_t len;  /* bytes the device wrote */
	uint32_t off;  /* bytes already read */
};
TAILQ_HEAD(sim_rxq, sim_rxbuf);

enum head_kind {
	HK_FREE = 0,
	HK_CTRL_RX,
	HK_CTRL_TX,
	HK_RX,
	HK_TX,
	HK_RAW,
};

/* State of one chain in flight, indexed by its head slot. */
struct sim_head {
	uint8_t kind;
	uint16_t ndesc;	      /* ring slots the chain holds */
	uint32_t wlen;	      /* device-writable bytes */
	uint32_t rlen;	      /* device-readable bytes */
	struct sim_buf buf;   /* data buffer (control, TX) */
	struct sim_buf table; /* indirect table, gpa 0 if none */
	struct sim_rxbuf *rx; /* HK_RX */
	struct sim_buf *raw;  /* HK_RAW: buffers allocated for it */
	unsigned nraw;
};

struct sim_vq {
	struct sim *sim;
	unsigned idx;
	uint16_t num;
	struct sim_buf ring;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t *next; /* free list links / chain links, shadow */
	uint16_t free_head;
	uint16_t num_free;
	struct sim_head *heads;
	unsigned inflight;
	uint16_t avail_idx;  /* shadow of avail->idx */
	uint16_t kicked_idx; /* avail idx at the last kick decision */
	uint16_t last_used;
	uint16_t used_event; /* last value written */
	int kick_fd;
	int call_fd;
	bool broken;  /* a device bug was seen on this queue */
	bool tainted; /* raw avail manipulation: unknown ids are not bugs */
	bool no_interrupt;
	bool last_kick_suppressed;
	bool kick_withheld; /* publish chains, do not kick (fault injection) */
	bool flooded;	    /* a flood thread owns (or owned) it: not reaped */
	bool stale;
	int64_t stale_since;
	/* Spare buffers of returned TX / control-tx chains, for reuse. */
	struct sim_buf *spare;
	unsigned nspare;
};

struct sim_port {
	bool present, console, host, guest, withhold, named;
	char *name;
	uint16_t cols, rows;
	struct sim_rxq rxdata;
	struct sim_rxq rxspare;
	unsigned rx_owned;  /* receive buffers of this port, anywhere */
	unsigned rx_posted; /* of those, on the ring */
	size_t rx_pending;
	size_t tx_pending;
	uint64_t rx_total, tx_total, rx_discarded;
	unsigned adds, removes;
};

struct sim_extent {
	uint64_t off, len;
};

struct sim {
	struct sim_opts o;
	int memfd;
	uint8_t *mem;
	struct sim_extent *fext;
	size_t nfext, capfext;

	int sock;
	int backend_fd;
	int epfd;
	bool connected;
	bool connect_called;
	bool reply_ack; /* NEED_REPLY on every request without a reply */

	struct sim_state st;
	struct sim_stats stats;
	struct sim_vq *vqs;
	unsigned nvqs;
	struct sim_port *ports;
	unsigned nport_ids;

	struct sim_raw_completion raw[RAW_COMPLETIONS];
	unsigned raw_head, raw_count;

	/* sim_flood_start(): a second thread playing a guest vCPU that keeps
	 * one queue full of chains the device must refuse. */
	struct {
		pthread_t thread;
		bool running;
		bool stop; /* atomic: set by the main thread */
		struct sim_vq *vq;
		uint64_t posted; /* atomic: written by the flood thread */
	} flood;

	char err[512];
	char *bug;
	unsigned nbugs;
	uint8_t ctrl_scratch[CTRL_BUF_SIZE + 1];
};

/* ---- small helpers --------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left < 0)
		return 0;
	return left > 1000000 ? 1000000 : (int)left;
}

__attribute__((format(printf, 3, 4))) static int fail(struct sim *s, int rc,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return rc;
}

__attribute__((format(printf, 2, 3))) static void trace(const struct sim *s,
							const char *fmt, ...)
{
	va_list ap;

	if (!s->o.verbose)
		return;
	fputs("vportfs-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Records a device bug.  Returns -EPROTO so callers can `return bug(...)`.*/
__attribute__((format(printf, 2, 3))) static int bug(struct sim *s,
						     const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->nbugs < MAX_BUGS_PRINTED)
		fprintf(stderr, "vportfs-sim: device-bug: %s\n", msg);
	if (!s->bug)
		s->bug = strdup(msg);
	s->nbugs++;
	snprintf(s->err, sizeof(s->err), "device-bug: %s", msg);
	return -EPROTO;
}

static const char *const req_names[VU_REQ_MAX] = {
	[VU_REQ_GET_FEATURES] = "GET_FEATURES",
	[VU_REQ_SET_FEATURES] = "SET_FEATURES",
	[VU_REQ_SET_OWNER] = "SET_OWNER",
	[VU_REQ_RESET_OWNER] = "RESET_OWNER",
	[VU_REQ_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VU_REQ_SET_LOG_BASE] = "SET_LOG_BASE",
	[VU_REQ_SET_LOG_FD] = "SET_LOG_FD",
	[VU_REQ_SET_VRING_NUM] = "SET_VRING_NUM",
	[VU_REQ_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VU_REQ_SET_VRING_BASE] = "SET_VRING_BASE",
	[VU_REQ_GET_VRING_BASE] = "GET_VRING_BASE",
	[VU_REQ_SET_VRING_KICK] = "SET_VRING_KICK",
	[VU_REQ_SET_VRING_CALL] = "SET_VRING_CALL",
	[VU_REQ_SET_VRING_ERR] = "SET_VRING_ERR",
	[VU_REQ_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VU_REQ_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VU_REQ_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VU_REQ_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VU_REQ_SEND_RARP] = "SEND_RARP",
	[VU_REQ_NET_SET_MTU] = "NET_SET_MTU",
	[VU_REQ_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VU_REQ_IOTLB_MSG] = "IOTLB_MSG",
	[VU_REQ_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VU_REQ_GET_CONFIG] = "GET_CONFIG",
	[VU_REQ_SET_CONFIG] = "SET_CONFIG",
};

static const char *req_name(uint32_t req)
{
	if (req < VU_REQ_MAX && req_names[req])
		return req_names[req];
	return "?";
}

static const char *const event_names[] = {
	[VIRTIO_CONSOLE_DEVICE_READY] = "DEVICE_READY",
	[VIRTIO_CONSOLE_PORT_ADD] = "PORT_ADD",
	[VIRTIO_CONSOLE_PORT_REMOVE] = "PORT_REMOVE",
	[VIRTIO_CONSOLE_PORT_READY] = "PORT_READY",
	[VIRTIO_CONSOLE_CONSOLE_PORT] = "CONSOLE_PORT",
	[VIRTIO_CONSOLE_RESIZE] = "RESIZE",
	[VIRTIO_CONSOLE_PORT_OPEN] = "PORT_OPEN",
	[VIRTIO_CONSOLE_PORT_NAME] = "PORT_NAME",
};

static const char *event_name(unsigned ev)
{
	if (ev < sizeof(event_names) / sizeof(event_names[0]))
		return event_names[ev];
	return "?";
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- guest memory ------------------------------------------------------ */

void *sim_gpa_ptr(const struct sim *s, uint64_t gpa, uint64_t len)
{
	if (gpa < s->o.guest_base)
		return NULL;
	uint64_t off = gpa - s->o.guest_base;
	if (off > s->o.mem_size || len > s->o.mem_size - off)
		return NULL;
	return s->mem + off;
}

/* Our own allocations are always inside guest memory. */
static uint8_t *gp(const struct sim *s, uint64_t gpa)
{
	return s->mem + (gpa - s->o.guest_base);
}

static int heap_insert(struct sim *s, size_t at, uint64_t off, uint64_t len)
{
	if (s->nfext == s->capfext) {
		size_t ncap = s->capfext ? 2 * s->capfext : 64;
		struct sim_extent *n = realloc(s->fext, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->fext = n;
		s->capfext = ncap;
	}
	memmove(&s->fext[at + 1], &s->fext[at],
		(s->nfext - at) * sizeof(s->fext[0]));
	s->fext[at].off = off;
	s->fext[at].len = len;
	s->nfext++;
	return 0;
}

/* First fit over the sorted free extents. */
static int heap_alloc(struct sim *s, uint64_t len, uint64_t align,
		      struct sim_buf *out)
{
	len = ALIGN_UP(len ? len : 1, SIM_ALIGN);
	if (len > UINT32_MAX)
		return -ENOMEM;
	for (size_t i = 0; i < s->nfext; i++) {
		struct sim_extent *e = &s->fext[i];
		uint64_t base = s->o.guest_base + e->off;
		uint64_t start = ALIGN_UP(base, align) - s->o.guest_base;
		uint64_t end = e->off + e->len;

		if (start > end || end - start < len)
			continue;
		uint64_t before = start - e->off;
		uint64_t after = end - (start + len);
		if (before && after) {
			if (heap_insert(s, i + 1, start + len, after))
				return -ENOMEM;
			s->fext[i].len = before;
		} else if (before) {
			e->len = before;
		} else if (after) {
			e->off = start + len;
			e->len = after;
		} else {
			memmove(&s->fext[i], &s->fext[i + 1],
				(s->nfext - i - 1) * sizeof(s->fext[0]));
			s->nfext--;
		}
		out->gpa = s->o.guest_base + start;
		out->cap = (uint32_t)len;
		return 0;
	}
	return -ENOMEM;
}

static void heap_free(struct sim *s, struct sim_buf *b)
{
	if (!b->gpa)
		return;
	uint64_t off = b->gpa - s->o.guest_base;
	uint64_t len = ALIGN_UP(b->cap ? b->cap : 1, SIM_ALIGN);
	size_t lo = 0, hi = s->nfext;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->fext[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	bool join_prev =
		lo > 0 && s->fext[lo - 1].off + s->fext[lo - 1].len == off;
	bool join_next = lo < s->nfext && off + len == s->fext[lo].off;
	if (join_prev && join_next) {
		s->fext[lo - 1].len += len + s->fext[lo].len;
		memmove(&s->fext[lo], &s->fext[lo + 1],
			(s->nfext - lo - 1) * sizeof(s->fext[0]));
		s->nfext--;
	} else if (join_prev) {
		s->fext[lo - 1].len += len;
	} else if (join_next) {
		s->fext[lo].off = off;
		s->fext[lo].len += len;
	} else if (heap_insert(s, lo, off, len)) {
		/* Out of host memory for the extent list: leak this block
		 * of guest memory rather than corrupt the allocator. */
	}
	b->gpa = 0;
	b->cap = 0;
}

/* ---- socket I/O -------------------------------------------------------- */

static void lost(struct sim *s, const char *why);
static void backend_service(struct sim *s);

/* Waits until the vhost-user socket is ready for `ev`, servicing the
 * backend channel meanwhile: a daemon may send a CONFIG_CHANGE and want
 * its ack before it answers us. */
static int wait_sock(struct sim *s, short ev, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {
			{.fd = s->sock, .events = ev},
			{.fd = s->backend_fd, .events = POLLIN},
		};
		int n = poll(p, s->backend_fd >= 0 ? 2 : 1,
			     remaining_ms(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(s, -errno, "poll: %s", strerror(errno));
		if (n == 0)
			return -ETIMEDOUT;
		if (s->backend_fd >= 0 && p[1].revents)
			backend_service(s);
		if (p[0].revents)
			return 0;
		if (!s->connected)
			return -ENOTCONN;
	}
}

static int sock_send(struct sim *s, const void *buf, size_t len, const int *fds,
		     unsigned nfds, int64_t deadline)
{
	const uint8_t *p = buf;
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} cm;

	if (nfds > VU_MAX_FDS)
		return fail(s, -EINVAL, "too many fds (%u)", nfds);
	while (len > 0) {
		struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

		if (nfds) {
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t n = sendmsg(s->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = wait_sock(s, POLLOUT, deadline);
			if (rc == -ETIMEDOUT)
				return fail(s, rc,
					    "send: daemon not reading "
					    "the vhost-user socket");
			if (rc)
				return rc;
			continue;
		}
		if (n < 0) {
			int e = errno;
			lost(s, strerror(e));
			return fail(s, -ENOTCONN, "send: %s", strerror(e));
		}
		p += n;
		len -= (size_t)n;
		nfds = 0;
	}
	return 0;
}

/* Reads exactly len bytes; fds that arrive are closed and counted. */
static int sock_recv(struct sim *s, void *buf, size_t len, int64_t deadline,
		     unsigned *nfds)
{
	uint8_t *p = buf;
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} cm;

	while (len > 0) {
		struct iovec iov = {.iov_base = p, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		ssize_t n =
			recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = wait_sock(s, POLLIN, deadline);
			if (rc)
				return rc;
			continue;
		}
		if (n <= 0) {
			const char *why =
				n == 0 ? "daemon closed the vhost-user "
					 "connection"
				       : strerror(errno);
			lost(s, why);
			return fail(s, -ENOTCONN, "%s", why);
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(int));
				close(fd);
			}
			if (nfds)
				*nfds += (unsigned)k;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one message.  The payload goes into msg up to its size; any excess
 * (up to MAX_REPLY_DISCARD) is read and dropped to keep the stream in step.
 * *got_payload = bytes stored. */
static int recv_msg(struct sim *s, struct vu_msg *msg, uint32_t *got_payload,
		    int64_t deadline, unsigned *nfds)
{
	int rc = sock_recv(s, &msg->hdr, VU_HDR_SIZE, deadline, nfds);
	if (rc)
		return rc;
	/* Once a header is in, the rest must follow promptly. */
	int64_t body_deadline = now_ms() + s->o.reply_timeout_ms;
	if (body_deadline < deadline)
		body_deadline = deadline;
	uint32_t size = msg->hdr.size;
	uint32_t keep = size < VU_MAX_PAYLOAD ? size : VU_MAX_PAYLOAD;
	if (size > MAX_REPLY_DISCARD) {
		lost(s, "message too large");
		return bug(s, "%s reply claims a %u-byte payload",
			   req_name(msg->hdr.request), size);
	}
	rc = sock_recv(s, &msg->payload, keep, body_deadline, nfds);
	for (uint32_t left = size - keep; !rc && left > 0;) {
		uint8_t junk[512];
		uint32_t k = left < sizeof(junk) ? left : sizeof(junk);
		rc = sock_recv(s, junk, k, body_deadline, nfds);
		left -= k;
	}
	if (rc == -ETIMEDOUT) {
		/* Half a message: the stream cannot be trusted any more. */
		lost(s, "truncated message");
		return bug(s,
			   "%s: header promised %u payload bytes that "
			   "never came",
			   req_name(msg->hdr.request), size);
	}
	if (rc)
		return rc;
	*got_payload = keep;
	return 0;
}

static int send_msg(struct sim *s, uint32_t req, uint32_t flags,
		    uint32_t hdr_size, const void *payload, uint32_t len,
		    const int *fds, unsigned nfds)
{
	uint8_t buf[VU_HDR_SIZE + sizeof(union vu_payload)];
	struct vu_msg_hdr h = {
		.request = req, .flags = flags, .size = hdr_size};
	int64_t deadline = now_ms() + s->o.reply_timeout_ms;
	int rc;

	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	trace(s, "-> %s (%u) flags 0x%x size %u fds %u", req_name(req), req,
	      flags, hdr_size, nfds);
	s->stats.vu_msgs++;
	memcpy(buf, &h, VU_HDR_SIZE);
	if (len <= sizeof(buf) - VU_HDR_SIZE) {
		if (len)
			memcpy(buf + VU_HDR_SIZE, payload, len);
		return sock_send(s, buf, VU_HDR_SIZE + len, fds, nfds,
				 deadline);
	}
	rc = sock_send(s, buf, VU_HDR_SIZE, fds, nfds, deadline);
	if (rc)
		return rc;
	return sock_send(s, payload, len, NULL, 0, deadline);
}

/* Reads the reply to `req` and checks it the way UML does: flags exactly
 * VERSION|REPLY, the same request, the expected size. */
static int recv_reply(struct sim *s, uint32_t req, struct vu_msg *reply,
		      uint32_t expect_size)
{
	int64_t deadline = now_ms() + s->o.reply_timeout_ms;
	uint32_t got = 0;
	unsigned nfds = 0;
	int rc = recv_msg(s, reply, &got, deadline, &nfds);

	if (rc == -ETIMEDOUT)
		return bug(s, "no reply to %s within %d ms", req_name(req),
			   s->o.reply_timeout_ms);
	if (rc)
		return rc;
	trace(s, "<- %s (%u) flags 0x%x size %u", req_name(reply->hdr.request),
	      reply->hdr.request, reply->hdr.flags, reply->hdr.size);
	if (reply->hdr.flags != VU_REPLY_FLAGS)
		return bug(s, "%s reply has flags 0x%x, expected 0x%x",
			   req_name(req), reply->hdr.flags, VU_REPLY_FLAGS);
	if (reply->hdr.request != req)
		return bug(s, "reply to %s (%u) carries request %u",
			   req_name(req), req, reply->hdr.request);
	if (reply->hdr.size != expect_size)
		return bug(s, "%s reply has size %u, expected %u",
			   req_name(req), reply->hdr.size, expect_size);
	if (nfds)
		return bug(s, "%s reply carried %u fds", req_name(req), nfds);
	return 0;
}

/* A request without a reply of its own: with REPLY_ACK (or force_ack) it
 * carries NEED_REPLY and the u64 ack must be 0. */
static int vu_set(struct sim *s, uint32_t req, const void *payload,
		  uint32_t size, const int *fds, unsigned nfds, bool force_ack)
{
	bool ack = s->reply_ack || force_ack;
	struct vu_msg reply;
	int rc = send_msg(s, req, VU_VERSION | (ack ? VU_FLAG_NEED_REPLY : 0),
			  size, payload, size, fds, nfds);
	if (rc || !ack)
		return rc;
	rc = recv_reply(s, req, &reply, sizeof(uint64_t));
	if (rc)
		return rc;
	if (reply.payload.u64 != 0)
		return fail(s, -EIO, "daemon refused %s (ack %llu)",
			    req_name(req),
			    (unsigned long long)reply.payload.u64);
	return 0;
}

static int vu_get_u64(struct sim *s, uint32_t req, const void *payload,
		      uint32_t size, uint64_t *out)
{
	struct vu_msg reply;
	int rc = send_msg(s, req, VU_VERSION, size, payload, size, NULL, 0);

	if (rc)
		return rc;
	rc = recv_reply(s, req, &reply, sizeof(uint64_t));
	if (rc)
		return rc;
	*out = reply.payload.u64;
	return 0;
}

static int vu_vring_state(struct sim *s, uint32_t req, unsigned idx,
			  uint32_t num)
{
	struct vu_vring_state st = {.index = idx, .num = num};

	return vu_set(s, req, &st, sizeof(st), NULL, 0, false);
}

static int vu_vring_fd(struct sim *s, uint32_t req, unsigned idx, int fd)
{
	uint64_t v = idx;

	if (fd < 0)
		v |= VU_VRING_NOFD_MASK;
	return vu_set(s, req, &v, sizeof(v), fd >= 0 ? &fd : NULL,
		      fd >= 0 ? 1 : 0, false);
}

/* ---- backend channel --------------------------------------------------- */

static void backend_close(struct sim *s)
{
	close_fd(&s->backend_fd);
}

static int backend_read(struct sim *s, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = recv(s->backend_fd, p, len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = s->backend_fd,
					    .events = POLLIN};
			int k = poll(&pf, 1, remaining_ms(deadline));
			if (k == 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Handles every request waiting on the backend channel.  Replies like UML
 * does: 0 for CONFIG_CHANGE_MSG, 1 (failure) for anything else. */
static void backend_service(struct sim *s)
{
	for (unsigned round = 0; round < 64 && s->backend_fd >= 0; round++) {
		struct vu_msg m;
		struct pollfd pf = {.fd = s->backend_fd, .events = POLLIN};

		if (poll(&pf, 1, 0) <= 0)
			return;
		int64_t deadline = now_ms() + s->o.reply_timeout_ms;
		int rc = backend_read(s, &m.hdr, VU_HDR_SIZE, deadline);
		if (rc == -ECONNRESET) {
			trace(s, "backend channel closed by the daemon");
			backend_close(s);
			return;
		}
		if (rc) {
			bug(s, "backend channel: broken header (%s)",
			    strerror(-rc));
			backend_close(s);
			return;
		}
		s->stats.backend_msgs++;
		trace(s, "<= backend request %u flags 0x%x size %u",
		      m.hdr.request, m.hdr.flags, m.hdr.size);
		if ((m.hdr.flags & ~VU_FLAG_NEED_REPLY) != VU_VERSION)
			bug(s, "backend request %u has flags 0x%x",
			    m.hdr.request, m.hdr.flags);
		if (m.hdr.size > VU_MAX_PAYLOAD) {
			bug(s, "backend request %u claims a %u-byte payload",
			    m.hdr.request, m.hdr.size);
			backend_close(s);
			return;
		}
		rc = backend_read(s, &m.payload, m.hdr.size, deadline);
		if (rc) {
			bug(s, "backend request %u: payload not received (%s)",
			    m.hdr.request, strerror(-rc));
			backend_close(s);
			return;
		}
		uint64_t resp = 1;
		if (m.hdr.request == VU_BACKEND_REQ_CONFIG_CHANGE_MSG) {
			s->stats.config_changes++;
			resp = 0;
		} else {
			bug(s, "unexpected backend request %u", m.hdr.request);
		}
		if (m.hdr.flags & VU_FLAG_NEED_REPLY) {
			struct {
				struct vu_msg_hdr h;
				uint64_t v;
			} __attribute__((packed)) r = {
				.h = {.request = m.hdr.request,
				      .flags = VU_REPLY_FLAGS,
				      .size = sizeof(uint64_t)},
				.v = resp,
			};
			if (send(s->backend_fd, &r, sizeof(r),
				 MSG_NOSIGNAL | MSG_DONTWAIT) !=
			    (ssize_t)sizeof(r)) {
				trace(s, "backend reply failed: %s",
				      strerror(errno));
				backend_close(s);
				return;
			}
		}
	}
}

/* ---- split rings: driver side ------------------------------------------ */

static uint16_t *vq_used_event(struct sim_vq *vq)
{
	return &vq->avail->ring[vq->num];
}

static uint16_t *vq_avail_event(struct sim_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static int vq_port_nr(unsigned q)
{
	if (q < 2)
		return 0;
	if (q < 4)
		return -1;
	return (int)(q / 2 - 1);
}

static int vq_init(struct sim *s, struct sim_vq *vq, unsigned idx)
{
	uint16_t num = (uint16_t)s->o.queue_size;
	uint64_t avail_off = vring_desc_size(num);
	uint64_t used_off =
		ALIGN_UP(avail_off + vring_avail_size(num), RING_ALIGN);
	uint64_t total = used_off + vring_used_size(num);

	vq->sim = s;
	vq->idx = idx;
	vq->num = num;
	vq->kick_fd = -1;
	vq->call_fd = -1;
	if (heap_alloc(s, total, RING_ALIGN, &vq->ring))
		return fail(s, -ENOMEM, "guest memory too small for queue %u",
			    idx);
	memset(gp(s, vq->ring.gpa), 0, vq->ring.cap);
	vq->desc_gpa = vq->ring.gpa;
	vq->avail_gpa = vq->ring.gpa + avail_off;
	vq->used_gpa = vq->ring.gpa + used_off;
	vq->desc = (struct vring_desc *)gp(s, vq->desc_gpa);
	vq->avail = (struct vring_avail *)gp(s, vq->avail_gpa);
	vq->used = (struct vring_used *)gp(s, vq->used_gpa);
	vq->next = calloc(num, sizeof(*vq->next));
	vq->heads = calloc(num, sizeof(*vq->heads));
	vq->spare = calloc(num, sizeof(*vq->spare));
	if (!vq->next || !vq->heads || !vq->spare)
		return fail(s, -ENOMEM, "out of memory");
	for (unsigned i = 0; i + 1 < num; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->num_free = num;
	/* Control-tx has no callback in Linux: interrupts off. */
	if (idx == VSER_CTRL_TXQ) {
		vq->no_interrupt = true;
		if (!s->st.event_idx)
			vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	}
	return 0;
}

static void rxbuf_free(struct sim *s, struct sim_rxbuf *b);

static void vq_fini(struct sim *s, struct sim_vq *vq)
{
	if (vq->heads) {
		for (unsigned i = 0; i < vq->num; i++) {
			struct sim_head *h = &vq->heads[i];
			if (h->kind == HK_RX && h->rx)
				rxbuf_free(s, h->rx);
			for (unsigned k = 0; k < h->nraw; k++)
				heap_free(s, &h->raw[k]);
			free(h->raw);
			heap_free(s, &h->buf);
			heap_free(s, &h->table);
		}
	}
	for (unsigned i = 0; i < vq->nspare; i++)
		heap_free(s, &vq->spare[i]);
	heap_free(s, &vq->ring);
	close_fd(&vq->kick_fd);
	close_fd(&vq->call_fd);
	free(vq->next);
	free(vq->heads);
	free(vq->spare);
	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
}

static int vq_take_slots(struct sim_vq *vq, unsigned n, uint16_t *first)
{
	if (n == 0 || vq->num_free < n)
		return -ENOSPC;
	uint16_t head = vq->free_head, last = head;
	for (unsigned i = 1; i < n; i++)
		last = vq->next[last];
	vq->free_head = vq->next[last];
	vq->num_free = (uint16_t)(vq->num_free - n);
	*first = head;
	return 0;
}

static void vq_put_chain(struct sim_vq *vq, uint16_t head, unsigned n)
{
	uint16_t last = head;

	for (unsigned i = 1; i < n; i++)
		last = vq->next[last];
	vq->next[last] = vq->free_head;
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free + n);
}

static bool vq_use_indirect(const struct sim_vq *vq, unsigned nseg)
{
	return nseg > 1 && vq->sim->st.indirect;
}

/* Slots a chain of nseg segments needs. */
static unsigned vq_slots_for(const struct sim_vq *vq, unsigned nseg)
{
	return vq_use_indirect(vq, nseg) ? 1 : nseg;
}

static void vq_publish_head(struct sim_vq *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx % vq->num] = head;
	vq->avail_idx++;
}

/* Adds a chain; does not publish avail->idx (vq_kick does).  The head's
 * kind and buffers are filled in by the caller through *h_out. */
static int vq_add(struct sim_vq *vq, const struct seg *segs, unsigned n,
		  uint8_t kind, struct sim_head **h_out)
{
	struct sim *s = vq->sim;
	struct sim_buf table = {0};
	uint32_t wlen = 0, rlen = 0;
	uint16_t head;
	unsigned slots = vq_slots_for(vq, n);

	if (vq->flooded)
		return fail(s, -EBUSY, "queue %u is the flood's", vq->idx);
	if (vq->num_free < slots)
		return -ENOSPC;
	if (slots == 1 && n > 1) {
		if (heap_alloc(s, 16ull * n, 16, &table))
			return -ENOMEM;
	}
	if (vq_take_slots(vq, slots, &head)) {
		heap_free(s, &table);
		return -ENOSPC;
	}
	for (unsigned i = 0; i < n; i++) {
		if (segs[i].write)
			wlen += segs[i].len;
		else
			rlen += segs[i].len;
	}
	if (table.gpa) {
		struct vring_desc *t = (struct vring_desc *)gp(s, table.gpa);
		for (unsigned i = 0; i < n; i++) {
			t[i].addr = segs[i].gpa;
			t[i].len = segs[i].len;
			t[i].flags =
				(uint16_t)((segs[i].write ? VRING_DESC_F_WRITE
							  : 0) |
					   (i + 1 < n ? VRING_DESC_F_NEXT : 0));
			t[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
		}
		vq->desc[head].addr = table.gpa;
		vq->desc[head].len = 16u * n;
		vq->desc[head].flags = VRING_DESC_F_INDIRECT;
		vq->desc[head].next = 0;
	} else {
		uint16_t slot = head;
		for (unsigned i = 0; i < n; i++) {
			struct vring_desc *d = &vq->desc[slot];
			d->addr = segs[i].gpa;
			d->len = segs[i].len;
			d->flags =
				(uint16_t)((segs[i].write ? VRING_DESC_F_WRITE
							  : 0) |
					   (i + 1 < n ? VRING_DESC_F_NEXT : 0));
			d->next = i + 1 < n ? vq->next[slot] : 0;
			slot = vq->next[slot];
		}
	}
	struct sim_head *h = &vq->heads[head];
	memset(h, 0, sizeof(*h));
	h->kind = kind;
	h->ndesc = (uint16_t)slots;
	h->wlen = wlen;
	h->rlen = rlen;
	h->table = table;
	vq->inflight++;
	vq_publish_head(vq, head);
	*h_out = h;
	return 0;
}

static void vq_notify(struct sim_vq *vq)
{
	uint64_t one = 1;

	if (vq->kick_fd < 0)
		return;
	if (write(vq->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		vq->sim->stats.kicks++;
}

/* Publishes new avail entries and kicks unless the device said not to:
 * avail_event with EVENT_IDX, VRING_USED_F_NO_NOTIFY without. */
static void vq_kick(struct sim_vq *vq)
{
	uint16_t old = vq->kicked_idx, new_idx = vq->avail_idx;
	bool need;

	if (old == new_idx)
		return;
	__atomic_store_n(&vq->avail->idx, new_idx, __ATOMIC_RELEASE);
	if (vq->kick_withheld)
		return; /* visible to a device that looks, not announced */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->kicked_idx = new_idx;
	if (vq->sim->st.event_idx)
		need = need_event(
			__atomic_load_n(vq_avail_event(vq), __ATOMIC_RELAXED),
			new_idx, old);
	else
		need = !(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED) &
			 VRING_USED_F_NO_NOTIFY);
	vq->last_kick_suppressed = !need;
	if (need)
		vq_notify(vq);
	else
		vq->sim->stats.kicks_suppressed++;
}

static void raw_record(struct sim *s, unsigned q, uint32_t id, uint32_t len)
{
	if (s->raw_count == RAW_COMPLETIONS) {
		s->raw_head = (s->raw_head + 1) % RAW_COMPLETIONS;
		s->raw_count--;
	}
	struct sim_raw_completion *c =
		&s->raw[(s->raw_head + s->raw_count) % RAW_COMPLETIONS];
	c->qidx = (uint16_t)q;
	c->id = id;
	c->len = len;
	s->raw_count++;
}

static int complete(struct sim_vq *vq, uint32_t id, uint32_t len);

/* Where the device should next notify us.  TX queues with tx_event_delay
 * ask late, like virtqueue_enable_cb_delayed(). */
static void vq_arm(struct sim_vq *vq)
{
	uint16_t ev = vq->last_used;

	if (vq->sim->o.tx_event_delay && vq->idx % 2 == 1 &&
	    vq->idx != VSER_CTRL_TXQ && vq->inflight > 0)
		ev = (uint16_t)(ev + (vq->inflight * 3) / 4);
	vq->used_event = ev;
	__atomic_store_n(vq_used_event(vq), ev, __ATOMIC_RELAXED);
}

/* Reaps the used ring.  Returns 0 or -EPROTO (queue is then broken). */
static int vq_reap(struct sim_vq *vq)
{
	struct sim *s = vq->sim;

	if (vq->broken)
		return -EPROTO;
	if (vq->flooded)
		return 0;
	for (unsigned round = 0; round < 64; round++) {
		uint16_t uidx =
			__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
		uint16_t pending = (uint16_t)(uidx - vq->last_used);

		if (pending > vq->num && !vq->tainted) {
			vq->broken = true;
			return bug(s,
				   "queue %u: used idx jumped from %u to %u "
				   "(queue size %u)",
				   vq->idx, vq->last_used, uidx, vq->num);
		}
		while (vq->last_used != uidx) {
			struct vring_used_elem *e =
				&vq->used->ring[vq->last_used % vq->num];
			uint32_t id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
			uint32_t len =
				__atomic_load_n(&e->len, __ATOMIC_RELAXED);
			vq->last_used++;
			int rc = complete(vq, id, len);
			if (rc) {
				vq->broken = true;
				return rc;
			}
		}
		vq->stale = false;
		if (s->st.event_idx && !vq->no_interrupt) {
			vq_arm(vq);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		}
		if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) == uidx)
			break;
	}
	vq_kick(vq); /* re-posted buffers */
	return 0;
}

/* ---- buffers --------------------------------------------------------- */

/* Segment layout shared by RX and TX buffers: segment i of a buffer with
 * segment size `seg` starts at i * (seg + CANARY_LEN). */
static unsigned nsegs(uint32_t size, uint32_t seg)
{
	if (size == 0)
		return 1;
	return (size + seg - 1) / seg;
}

static uint32_t seg_size(uint32_t size, uint32_t opt)
{
	return opt && opt < size ? opt : (size ? size : 1);
}

static uint64_t seg_layout_bytes(uint32_t size, uint32_t seg)
{
	return (uint64_t)nsegs(size, seg) * (seg + CANARY_LEN);
}

static unsigned build_segs(uint64_t gpa, uint32_t size, uint32_t seg,
			   bool write, struct seg *out, unsigned max)
{
	unsigned n = nsegs(size, seg);

	if (n > max)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		uint32_t done = i * seg;
		out[i].gpa = gpa + (uint64_t)i * (seg + CANARY_LEN);
		out[i].len = size - done < seg ? size - done : seg;
		out[i].write = write;
	}
	return n;
}

static void rxbuf_free(struct sim *s, struct sim_rxbuf *b)
{
	heap_free(s, &b->mem);
	free(b);
}

static void rx_arm_canaries(struct sim *s, struct sim_rxbuf *b)
{
	unsigned n = nsegs(b->size, b->seg);

	for (unsigned i = 0; i < n; i++) {
		uint32_t l = b->size - i * b->seg < b->seg
				     ? b->size - i * b->seg
				     : b->seg;
		uint8_t *p =
			gp(s, b->mem.gpa + (uint64_t)i * (b->seg + CANARY_LEN));
		memset(p + l, CANARY_BYTE, CANARY_LEN);
	}
}

/* Returns the first segment whose guard bytes were overwritten, or -1. */
static int rx_check_canaries(struct sim *s, const struct sim_rxbuf *b)
{
	unsigned n = nsegs(b->size, b->seg);

	for (unsigned i = 0; i < n; i++) {
		uint32_t l = b->size - i * b->seg < b->seg
				     ? b->size - i * b->seg
				     : b->seg;
		const uint8_t *p =
			gp(s, b->mem.gpa + (uint64_t)i * (b->seg + CANARY_LEN));
		for (unsigned k = 0; k < CANARY_LEN; k++)
			if (p[l + k] != CANARY_BYTE)
				return (int)i;
	}
	return -1;
}

static int rx_post_buf(struct sim *s, struct sim_vq *vq, struct sim_rxbuf *b,
		       uint8_t kind)
{
	struct seg segs[64];
	struct sim_head *h;
	unsigned n = build_segs(b->mem.gpa, b->size, b->seg, true, segs, 64);

	if (n == 0)
		return -EINVAL;
	rx_arm_canaries(s, b);
	int rc = vq_add(vq, segs, n, kind, &h);
	if (rc)
		return rc;
	h->rx = b;
	return 0;
}

static struct sim_rxbuf *rxbuf_new(struct sim *s, uint32_t size, uint32_t seg)
{
	struct sim_rxbuf *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->size = size;
	b->seg = seg;
	if (heap_alloc(s, seg_layout_bytes(size, seg), SIM_ALIGN, &b->mem)) {
		free(b);
		return NULL;
	}
	return b;
}

static void spare_reclaim_all(struct sim *s)
{
	for (unsigned q = 0; q < s->nvqs; q++) {
		struct sim_vq *vq = &s->vqs[q];
		for (unsigned i = 0; i < vq->nspare; i++)
			heap_free(s, &vq->spare[i]);
		vq->nspare = 0;
	}
}

/* A buffer of at least cap bytes for a TX/control chain: a spare one if
 * possible; else fresh memory (after giving back every queue's spares if
 * guest memory ran out). */
static int spare_get(struct sim *s, struct sim_vq *vq, uint64_t cap,
		     struct sim_buf *out)
{
	while (vq->nspare > 0) {
		struct sim_buf b = vq->spare[--vq->nspare];
		if (b.cap >= cap) {
			*out = b;
			return 0;
		}
		heap_free(s, &b);
	}
	if (heap_alloc(s, cap, SIM_ALIGN, out)) {
		spare_reclaim_all(s);
		if (heap_alloc(s, cap, SIM_ALIGN, out))
			return -ENOMEM;
	}
	memset(gp(s, out->gpa), GAP_BYTE, out->cap);
	return 0;
}

static void spare_put(struct sim *s, struct sim_vq *vq, struct sim_buf *b)
{
	if (vq->nspare < vq->num)
		vq->spare[vq->nspare++] = *b;
	else
		heap_free(s, b);
	b->gpa = 0;
	b->cap = 0;
}

/* ---- control messages -------------------------------------------------- */

static struct sim_port *port_get(struct sim *s, unsigned nr)
{
	return nr < s->nport_ids ? &s->ports[nr] : NULL;
}

static bool port_has_queues(const struct sim *s, unsigned nr)
{
	return nr < s->st.nports && s->connected;
}

static void sock_event(struct sim *s);

/* Is there input, or a hang-up, on the vhost-user socket? */
static bool sock_readable(const struct sim *s)
{
	struct pollfd p = {.fd = s->sock, .events = POLLIN};

	return s->sock >= 0 && poll(&p, 1, 0) > 0;
}

/* Spin until the daemon returns a control-tx buffer, as Linux's
 * __send_control_msg does.  Its spin also ends when the device is broken
 * (virtqueue_is_broken), which recent UML kernels do when the backend's
 * socket closes (virtio_uml's vu_conn_broken calls virtio_break_device):
 * a daemon that exited is "disconnected", not a device that kept the
 * buffer. */
static int ctrl_tx_wait(struct sim *s, struct sim_vq *vq)
{
	int64_t deadline = now_ms() + s->o.ctrl_timeout_ms;
	unsigned spins = 0;

	for (;;) {
		int rc = vq_reap(vq);
		if (rc)
			return rc;
		if (vq->inflight == 0)
			return 0;
		if (!s->connected)
			return fail(s, -ENOTCONN, "not connected");
		if (now_ms() > deadline)
			return bug(s,
				   "control-tx buffer not returned within "
				   "%d ms (a Linux guest spins until it is)",
				   s->o.ctrl_timeout_ms);
		if (++spins < 200) {
			sched_yield();
			continue;
		}
		if (s->backend_fd >= 0)
			backend_service(s);
		if (sock_readable(s)) {
			unsigned nbugs = s->nbugs;

			sock_event(s); /* says why, if it was the end */
			if (!s->connected)
				return -ENOTCONN;
			if (s->nbugs != nbugs) /* an unsolicited message */
				return -EPROTO;
		}
		struct timespec ts = {.tv_nsec = 50000};
		nanosleep(&ts, NULL);
	}
}

static int ctrl_send(struct sim *s, uint32_t id, uint16_t ev, uint16_t val,
		     const void *extra, size_t elen)
{
	struct virtio_console_control c = {.id = id, .event = ev, .value = val};
	struct sim_vq *vq = NULL;
	struct sim_buf b;
	struct sim_head *h = NULL;
	int rc;

	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	if (elen > 65536)
		return fail(s, -EINVAL, "control payload too large");
	vq = &s->vqs[VSER_CTRL_TXQ];
	if (vq->broken)
		return fail(s, -EPROTO, "control-tx queue broken");
	/* Control-tx gets no interrupts: reap what came back so far. */
	rc = vq_reap(vq);
	if (rc)
		return rc;
	if (spare_get(s, vq, sizeof(c) + elen, &b))
		return fail(s, -ENOMEM, "guest memory exhausted");
	memcpy(gp(s, b.gpa), &c, sizeof(c));
	if (elen)
		memcpy(gp(s, b.gpa) + sizeof(c), extra, elen);
	struct seg sg = {.gpa = b.gpa, .len = (uint32_t)(sizeof(c) + elen)};
	rc = vq_add(vq, &sg, 1, HK_CTRL_TX, &h);
	if (rc) {
		spare_put(s, vq, &b);
		return fail(s, -EAGAIN, "control-tx ring full");
	}
	h->buf = b;
	trace(s, "ctrl -> %s id %u value %u", event_name(ev), id, val);
	s->stats.ctrl_tx++;
	vq_kick(vq);
	if (!s->o.ctrl_sync)
		return 0;
	return ctrl_tx_wait(s, vq);
}

static void port_discard(struct sim *s, unsigned nr, struct sim_port *p);

static int port_rx_fill(struct sim *s, unsigned nr, unsigned count,
			uint32_t size)
{
	struct sim_port *p = &s->ports[nr];
	struct sim_vq *vq = &s->vqs[vser_port_rxq(nr)];
	uint32_t seg = seg_size(size, s->o.rx_seg_size);
	unsigned posted = 0;
	bool nomem = false;

	if (nsegs(size, seg) > 64)
		seg = (size + 63) / 64;
	for (; posted < count; posted++) {
		if (vq->num_free < vq_slots_for(vq, nsegs(size, seg)))
			break;
		struct sim_rxbuf *b = rxbuf_new(s, size, seg);
		if (!b) {
			nomem = true;
			break;
		}
		if (rx_post_buf(s, vq, b, HK_RX)) {
			rxbuf_free(s, b);
			nomem = true;
			break;
		}
		p->rx_owned++;
		p->rx_posted++;
	}
	vq_kick(vq);
	if (posted == 0 && count > 0)
		return fail(s, -ENOSPC, "%s",
			    nomem ? "guest memory exhausted"
				  : "receive ring full");
	return (int)posted;
}

static int ctrl_port_add(struct sim *s, uint32_t id)
{
	struct sim_port *p = port_get(s, id);

	if (id >= s->st.max_nr_ports)
		return bug(s, "PORT_ADD for port %u, but max_nr_ports is %u",
			   id, s->st.max_nr_ports);
	if (!p) {
		fprintf(stderr,
			"vportfs-sim: PORT_ADD %u: beyond the %u port "
			"ids this sim tracks, ignored\n",
			id, s->nport_ids);
		return 0;
	}
	if (p->present) {
		/* Linux: "Port already added", answers PORT_READY again. */
		trace(s, "port %u added again", id);
		return ctrl_send(s, id, VIRTIO_CONSOLE_PORT_READY, 1, NULL, 0);
	}
	if (!port_has_queues(s, id)) {
		/* Linux's add_port() failure path. */
		fprintf(stderr,
			"vportfs-sim: port %u has no queues here (set "
			"up %u ports); answering PORT_READY 0\n",
			id, s->st.nports);
		return ctrl_send(s, id, VIRTIO_CONSOLE_PORT_READY, 0, NULL, 0);
	}
	p->present = true;
	p->host = p->guest = p->console = p->named = false;
	p->cols = p->rows = 0;
	p->adds++;
	unsigned target =
		s->o.rx_bufs == SIM_RX_FILL ? s->o.queue_size : s->o.rx_bufs;
	if (p->rx_owned < target) {
		int rc = port_rx_fill(s, id, target - p->rx_owned,
				      s->o.rx_buf_size);
		if (rc < 0)
			fprintf(stderr, "vportfs-sim: port %u: %s\n", id,
				s->err);
	}
	return ctrl_send(s, id, VIRTIO_CONSOLE_PORT_READY, 1, NULL, 0);
}

static void port_remove(struct sim *s, unsigned nr, struct sim_port *p)
{
	port_discard(s, nr, p);
	free(p->name);
	p->name = NULL;
	p->present = p->named = p->console = p->host = p->guest = false;
	p->removes++;
	if (p->withhold)
		sim_port_rx_withhold(s, nr, false);
}

static int ctrl_handle(struct sim *s, const uint8_t *msg, uint32_t len)
{
	struct virtio_console_control c;
	struct sim_port *p = NULL;

	if (len < sizeof(c))
		return bug(s, "control message of %u bytes (< 8)", len);
	memcpy(&c, msg, sizeof(c));
	s->stats.ctrl_rx++;
	trace(s, "ctrl <- %s id %u value %u len %u", event_name(c.event), c.id,
	      c.value, len);
	switch (c.event) {
	case VIRTIO_CONSOLE_PORT_ADD:
		return ctrl_port_add(s, c.id);
	case VIRTIO_CONSOLE_DEVICE_READY:
	case VIRTIO_CONSOLE_PORT_READY:
		return bug(s,
			   "device sent %s (a driver-to-device event), id "
			   "%u",
			   event_name(c.event), c.id);
	case VIRTIO_CONSOLE_PORT_REMOVE:
	case VIRTIO_CONSOLE_CONSOLE_PORT:
	case VIRTIO_CONSOLE_RESIZE:
	case VIRTIO_CONSOLE_PORT_OPEN:
	case VIRTIO_CONSOLE_PORT_NAME:
		break;
	default:
		return bug(s, "unknown control event %u for port %u", c.event,
			   c.id);
	}
	p = port_get(s, c.id);
	if (!p || !p->present) {
		if (c.id < s->st.max_nr_ports && c.id >= s->nport_ids)
			return 0; /* untracked port id, see ctrl_port_add */
		return bug(s, "%s for port %u, which is not added",
			   event_name(c.event), c.id);
	}
	switch (c.event) {
	case VIRTIO_CONSOLE_PORT_REMOVE:
		port_remove(s, c.id, p);
		return 0;
	case VIRTIO_CONSOLE_CONSOLE_PORT:
		if (!c.value || p->console)
			return 0;
		p->console = true;
		p->guest = true; /* hvc: always open, tells the host so */
		return ctrl_send(s, c.id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	case VIRTIO_CONSOLE_RESIZE: {
		struct virtio_console_resize rs;
		if (len < sizeof(c) + sizeof(rs))
			return bug(s, "RESIZE for port %u has %u bytes (< 12)",
				   c.id, len);
		if (!p->console)
			return 0; /* Linux ignores it too */
		memcpy(&rs, msg + sizeof(c), sizeof(rs));
		p->rows = rs.rows;
		p->cols = rs.cols;
		return 0;
	}
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->host = c.value != 0;
		return 0;
	case VIRTIO_CONSOLE_PORT_NAME: {
		if (p->named)
			return 0; /* Linux keeps the first name */
		size_t n = len - sizeof(c);
		char *name = malloc(n + 1);
		if (!name)
			return fail(s, -ENOMEM, "out of memory");
		memcpy(name, msg + sizeof(c), n);
		name[n] = '\0';
		p->name = name;
		p->named = true;
		return 0;
	}
	}
	return 0;
}

/* ---- used buffer completion ----------------------------------------- */

static void port_rx_repost(struct sim *s, unsigned nr, struct sim_rxbuf *b)
{
	struct sim_port *p = &s->ports[nr];
	struct sim_vq *vq = &s->vqs[vser_port_rxq(nr)];

	b->len = b->off = 0;
	if (p->withhold || !s->connected || vq->broken) {
		TAILQ_INSERT_TAIL(&p->rxspare, b, link);
		return;
	}
	if (rx_post_buf(s, vq, b, HK_RX)) {
		TAILQ_INSERT_TAIL(&p->rxspare, b, link);
		return;
	}
	p->rx_posted++;
}

static void port_discard(struct sim *s, unsigned nr, struct sim_port *p)
{
	struct sim_rxbuf *b;

	while ((b = TAILQ_FIRST(&p->rxdata))) {
		TAILQ_REMOVE(&p->rxdata, b, link);
		p->rx_discarded += b->len - b->off;
		port_rx_repost(s, nr, b);
	}
	p->rx_pending = 0;
	if (nr < s->st.nports && s->connected)
		vq_kick(&s->vqs[vser_port_rxq(nr)]);
}

static int complete_rx(struct sim *s, struct sim_vq *vq, struct sim_rxbuf *b,
		       uint32_t len)
{
	int nr = vq_port_nr(vq->idx);
	struct sim_port *p = &s->ports[nr];
	int seg;

	p->rx_posted--;
	seg = rx_check_canaries(s, b);
	if (seg >= 0) {
		port_rx_repost(s, (unsigned)nr, b);
		return bug(s,
			   "queue %u: device wrote past the end of receive "
			   "segment %d (len %u)",
			   vq->idx, seg, b->size);
	}
	if (len == 0) {
		port_rx_repost(s, (unsigned)nr, b);
		return bug(s,
			   "queue %u: receive buffer returned with len 0 (a "
			   "Linux guest's read() returns EOF)",
			   vq->idx);
	}
	b->len = len;
	b->off = 0;
	if (!p->present ||
	    (!p->guest && !p->console && s->o.discard_when_closed)) {
		p->rx_discarded += len;
		port_rx_repost(s, (unsigned)nr, b);
		return 0;
	}
	p->rx_total += len;
	p->rx_pending += len;
	TAILQ_INSERT_TAIL(&p->rxdata, b, link);
	return 0;
}

static int complete(struct sim_vq *vq, uint32_t id, uint32_t len)
{
	struct sim *s = vq->sim;
	struct sim_head *h;
	struct sim_head copy;

	if (id >= vq->num || vq->heads[id].kind == HK_FREE) {
		if (vq->tainted) {
			raw_record(s, vq->idx, id, len);
			return 0;
		}
		return bug(s, "queue %u: used id %u %s", vq->idx, id,
			   id >= vq->num ? "out of range" : "not in flight");
	}
	h = &vq->heads[id];
	copy = *h;
	memset(h, 0, sizeof(*h));
	vq_put_chain(vq, (uint16_t)id, copy.ndesc);
	heap_free(s, &copy.table);
	vq->inflight--;

	if (copy.kind == HK_RAW) {
		for (unsigned i = 0; i < copy.nraw; i++)
			heap_free(s, &copy.raw[i]);
		free(copy.raw);
		raw_record(s, vq->idx, id, len);
		return 0;
	}
	if (len > copy.wlen) {
		int rc = bug(s,
			     "queue %u: used len %u exceeds the %u "
			     "device-writable bytes of chain %u",
			     vq->idx, len, copy.wlen, id);
		/* Give the buffer back to its owner; its data is not used. */
		if (copy.kind == HK_RX) {
			unsigned nr = (unsigned)vq_port_nr(vq->idx);
			s->ports[nr].rx_posted--;
			port_rx_repost(s, nr, copy.rx);
		} else if (copy.kind == HK_CTRL_RX) {
			if (rx_post_buf(s, vq, copy.rx, HK_CTRL_RX))
				rxbuf_free(s, copy.rx);
		} else {
			if (copy.kind == HK_TX) {
				struct sim_port *p =
					&s->ports[vq_port_nr(vq->idx)];
				p->tx_pending -= copy.rlen;
			}
			spare_put(s, vq, &copy.buf);
		}
		return rc;
	}
	switch (copy.kind) {
	case HK_CTRL_RX: {
		struct sim_rxbuf *b = copy.rx;
		int rc = 0;
		if (rx_check_canaries(s, b) >= 0)
			rc = bug(s,
				 "control-rx: device wrote past the end of "
				 "the %u-byte buffer",
				 b->size);
		memcpy(s->ctrl_scratch, gp(s, b->mem.gpa), len);
		if (rx_post_buf(s, vq, b, HK_CTRL_RX))
			rxbuf_free(s, b); /* cannot happen: slot just freed */
		vq_kick(vq);
		if (rc)
			return rc;
		return ctrl_handle(s, s->ctrl_scratch, len);
	}
	case HK_CTRL_TX:
		spare_put(s, vq, &copy.buf);
		if (len)
			return bug(s,
				   "control-tx: used len %u for a "
				   "device-readable buffer (must be 0)",
				   len);
		return 0;
	case HK_RX:
		return complete_rx(s, vq, copy.rx, len);
	case HK_TX: {
		struct sim_port *p = &s->ports[vq_port_nr(vq->idx)];
		p->tx_pending -= copy.rlen;
		p->tx_total += copy.rlen;
		spare_put(s, vq, &copy.buf);
		if (len)
			return bug(s,
				   "queue %u: used len %u for a transmit "
				   "buffer (device-readable only, must be "
				   "0)",
				   vq->idx, len);
		return 0;
	}
	}
	return bug(s, "queue %u: internal: head %u of unknown kind", vq->idx,
		   id);
}

/* ---- connection -------------------------------------------------------- */

static void lost(struct sim *s, const char *why)
{
	if (!s->connected)
		return;
	trace(s, "connection lost: %s", why);
	if (s->flood.running)
		sim_flood_stop(s, NULL);
	s->connected = false;
	close_fd(&s->sock);
	backend_close(s);
	for (unsigned q = 0; q < s->nvqs; q++) {
		close_fd(&s->vqs[q].kick_fd);
		close_fd(&s->vqs[q].call_fd);
	}
}

void sim_disconnect(struct sim *s)
{
	lost(s, "disconnected by request");
}

bool sim_connected(const struct sim *s)
{
	return s->connected;
}

static int ep_add(struct sim *s, int fd, uint64_t tag, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};

	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev))
		return fail(s, -errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

static int set_nonblock(struct sim *s, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return fail(s, -errno, "fcntl: %s", strerror(errno));
	return 0;
}

static int connect_sock(struct sim *s, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = now_ms() + timeout_ms;

	if (strncmp(path, "fd:", 3) == 0) {
		char *end;
		long fd = strtol(path + 3, &end, 10);
		if (*end || end == path + 3 || fd < 0 || fd > INT_MAX)
			return fail(s, -EINVAL, "bad socket '%s'", path);
		s->sock = (int)fd;
		return 0;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(s, -ENAMETOOLONG, "socket path too long");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return fail(s, -errno, "socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			s->sock = fd;
			return 0;
		}
		int e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED && e != EINTR) ||
		    now_ms() >= deadline)
			return fail(s, -e, "connect %s: %s", path, strerror(e));
		struct timespec ts = {.tv_nsec = 20 * 1000000};
		nanosleep(&ts, NULL);
	}
}

/* GET_CONFIG of [0, offset + len) like UML; copies [offset, +len). */
static int get_config_uml(struct sim *s, uint32_t offset, void *buf,
			  uint32_t len)
{
	struct {
		struct vu_config_hdr h;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} __attribute__((packed))
	req = {.h = {.offset = 0, .size = offset + len}};
	uint32_t size = (uint32_t)sizeof(req.h) + offset + len;
	struct vu_msg reply;
	int rc;

	if (offset + len > VU_MAX_CONFIG_SIZE)
		return fail(s, -EINVAL, "config range too large");
	rc = send_msg(s, VU_REQ_GET_CONFIG, VU_VERSION, size, &req, size, NULL,
		      0);
	if (rc)
		return rc;
	rc = recv_reply(s, VU_REQ_GET_CONFIG, &reply, size);
	if (rc)
		return rc;
	if (reply.payload.config.hdr.size != offset + len)
		return bug(s, "GET_CONFIG reply config size %u, expected %u",
			   reply.payload.config.hdr.size, offset + len);
	memcpy(buf, reply.payload.config.data + offset, len);
	return 0;
}

int sim_read_config(struct sim *s, struct virtio_console_config *out)
{
	struct virtio_console_config c = {0};
	int rc;

	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	rc = get_config_uml(
		s, offsetof(struct virtio_console_config, max_nr_ports),
		&c.max_nr_ports, sizeof(c.max_nr_ports));
	if (rc)
		return rc;
	if (s->st.acked_features & BIT64(VIRTIO_CONSOLE_F_SIZE)) {
		rc = get_config_uml(
			s, offsetof(struct virtio_console_config, cols),
			&c.cols, sizeof(c.cols));
		if (rc)
			return rc;
		rc = get_config_uml(
			s, offsetof(struct virtio_console_config, rows),
			&c.rows, sizeof(c.rows));
		if (rc)
			return rc;
	}
	*out = c;
	return 0;
}

int sim_get_config(struct sim *s, uint32_t offset, void *buf, uint32_t len)
{
	struct {
		struct vu_config_hdr h;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} __attribute__((packed)) req = {.h = {.offset = offset, .size = len}};
	uint32_t size = (uint32_t)sizeof(req.h) + len;
	struct vu_msg reply;
	int rc;

	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	if (len > VU_MAX_CONFIG_SIZE)
		return fail(s, -EINVAL, "config range too large");
	rc = send_msg(s, VU_REQ_GET_CONFIG, VU_VERSION, size, &req, size, NULL,
		      0);
	if (rc)
		return rc;
	rc = recv_reply(s, VU_REQ_GET_CONFIG, &reply, size);
	if (rc)
		return rc;
	memcpy(buf, reply.payload.config.data, len);
	return 0;
}

int sim_set_config(struct sim *s, uint32_t offset, const void *buf,
		   uint32_t len)
{
	struct {
		struct vu_config_hdr h;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} __attribute__((packed)) req = {.h = {.offset = offset, .size = len}};

	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	if (len > VU_MAX_CONFIG_SIZE)
		return fail(s, -EINVAL, "config range too large");
	memcpy(req.data, buf, len);
	return vu_set(s, VU_REQ_SET_CONFIG, &req, (uint32_t)sizeof(req.h) + len,
		      NULL, 0, false);
}

static int read_config_at_connect(struct sim *s)
{
	struct virtio_console_config c = {0};
	int rc = sim_read_config(s, &c);

	if (rc)
		return rc;
	s->st.max_nr_ports = c.max_nr_ports;
	s->st.cols = c.cols;
	s->st.rows = c.rows;
	if (c.max_nr_ports == 0)
		return bug(s, "config max_nr_ports is 0 with MULTIPORT");
	return 0;
}

static int setup_queue_fds(struct sim *s, struct sim_vq *vq)
{
	int pair[2] = {-1, -1};
	int rc;

	/* Like UML: the kick eventfd is blocking (writes never block), and
	 * the call socketpair end the daemon gets is blocking too; only our
	 * own end is non-blocking.  A daemon must cope with that. */
	vq->kick_fd = eventfd(0, EFD_CLOEXEC);
	if (vq->kick_fd < 0)
		return fail(s, -errno, "eventfd: %s", strerror(errno));
	if (s->o.call_eventfd) {
		/* One file description shared with the daemon: non-blocking
		 * for both, as QEMU does it. */
		vq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (vq->call_fd < 0)
			return fail(s, -errno, "eventfd: %s", strerror(errno));
		pair[1] = vq->call_fd;
	} else {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair))
			return fail(s, -errno, "socketpair: %s",
				    strerror(errno));
		vq->call_fd = pair[0];
		rc = set_nonblock(s, pair[0]);
		if (rc) {
			close(pair[1]);
			return rc;
		}
	}
	rc = ep_add(s, vq->call_fd, TAG(TAG_CALL, vq->idx), EPOLLIN);
	if (rc)
		goto out_close_peer;
	rc = vu_vring_fd(s, VU_REQ_SET_VRING_CALL, vq->idx, pair[1]);
out_close_peer:
	/* The daemon holds its own copy now (UML closes it too). */
	if (!s->o.call_eventfd)
		close(pair[1]);
	return rc;
}

static int setup_queue_rings(struct sim *s, struct sim_vq *vq)
{
	struct vu_vring_addr a = {
		.index = vq->idx,
		.flags = 0,
		.desc_user_addr = vq->desc_gpa + s->o.user_offset,
		.used_user_addr = vq->used_gpa + s->o.user_offset,
		.avail_user_addr = vq->avail_gpa + s->o.user_offset,
		.log_guest_addr = s->o.uml_order ? UINT64_MAX : 0,
	};
	int rc = vu_vring_state(s, VU_REQ_SET_VRING_NUM, vq->idx, vq->num);

	if (rc)
		return rc;
	rc = vu_vring_state(s, VU_REQ_SET_VRING_BASE, vq->idx, 0);
	if (rc)
		return rc;
	return vu_set(s, VU_REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, false);
}

static int setup_queue_start(struct sim *s, struct sim_vq *vq)
{
	int rc = vu_vring_fd(s, VU_REQ_SET_VRING_KICK, vq->idx, vq->kick_fd);

	if (rc)
		return rc;
	return vu_vring_state(s, VU_REQ_SET_VRING_ENABLE, vq->idx, 1);
}

static int setup_queues(struct sim *s)
{
	int rc;

	for (unsigned q = 0; q < s->nvqs; q++) {
		rc = vq_init(s, &s->vqs[q], q);
		if (rc)
			return rc;
	}
	if (s->o.uml_order) {
		for (unsigned q = 0; q < s->nvqs; q++) {
			rc = setup_queue_fds(s, &s->vqs[q]);
			if (!rc)
				rc = setup_queue_rings(s, &s->vqs[q]);
			if (rc)
				return rc;
		}
		for (unsigned q = 0; q < s->nvqs; q++) {
			rc = setup_queue_start(s, &s->vqs[q]);
			if (rc)
				return rc;
		}
		return 0;
	}
	for (unsigned q = 0; q < s->nvqs; q++) {
		rc = setup_queue_rings(s, &s->vqs[q]);
		if (!rc)
			rc = setup_queue_fds(s, &s->vqs[q]);
		if (!rc)
			rc = setup_queue_start(s, &s->vqs[q]);
		if (rc)
			return rc;
	}
	return 0;
}

static int set_mem_table(struct sim *s)
{
	struct vu_mem_table mt;

	memset(&mt, 0, sizeof(mt));
	mt.nregions = 1;
	mt.regions[0].guest_addr = s->o.guest_base;
	mt.regions[0].size = s->o.mem_size;
	mt.regions[0].user_addr = s->o.guest_base + s->o.user_offset;
	mt.regions[0].mmap_offset = s->o.mmap_offset;
	return vu_set(s, VU_REQ_SET_MEM_TABLE, &mt,
		      VU_MEM_TABLE_HDR_SIZE +
			      s->o.mem_table_slots *
				      (uint32_t)sizeof(struct vu_mem_region),
		      &s->memfd, 1, false);
}

static int setup_backend_channel(struct sim *s)
{
	int pair[2];
	int rc;

	/* UML's end is non-blocking, the daemon's is not. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair))
		return fail(s, -errno, "socketpair: %s", strerror(errno));
	s->backend_fd = pair[0];
	rc = set_nonblock(s, s->backend_fd);
	if (!rc)
		rc = ep_add(s, s->backend_fd, TAG(TAG_BACKEND, 0), EPOLLIN);
	if (!rc)
		rc = vu_set(s, VU_REQ_SET_BACKEND_REQ_FD, NULL, 0, &pair[1], 1,
			    false);
	close(pair[1]);
	return rc;
}

static unsigned choose_nports(struct sim *s)
{
	unsigned n = s->o.max_ports ? s->o.max_ports : DEFAULT_PORTS;

	if (n > s->st.max_nr_ports)
		n = s->st.max_nr_ports;
	if (n > MAX_QUEUES / 2 - 1)
		n = MAX_QUEUES / 2 - 1;
	return n;
}

static int handshake(struct sim *s)
{
	uint64_t pf_want, feat_want, v;
	int rc;

	rc = vu_set(s, VU_REQ_SET_OWNER, NULL, 0, NULL, 0, false);
	if (rc)
		return rc;
	rc = vu_get_u64(s, VU_REQ_GET_FEATURES, NULL, 0, &s->st.features);
	if (rc)
		return rc;
	if (!(s->st.features & BIT64(VU_F_PROTOCOL_FEATURES)))
		return fail(s, -EPROTONOSUPPORT,
			    "daemon does not offer PROTOCOL_FEATURES (bit 30): "
			    "no GET_CONFIG, so no multiport");
	if (!(s->st.features & BIT64(VIRTIO_CONSOLE_F_MULTIPORT)))
		return fail(s, -EPROTONOSUPPORT,
			    "daemon does not offer VIRTIO_CONSOLE_F_MULTIPORT");
	rc = vu_get_u64(s, VU_REQ_GET_PROTOCOL_FEATURES, NULL, 0,
			&s->st.protocol_features);
	if (rc)
		return rc;
	pf_want = BIT64(VU_PROTOCOL_F_CONFIG);
	if (s->o.reply_ack)
		pf_want |= BIT64(VU_PROTOCOL_F_REPLY_ACK);
	if (s->o.backend_req)
		pf_want |= BIT64(VU_PROTOCOL_F_BACKEND_REQ);
	if (s->o.mq)
		pf_want |= BIT64(VU_PROTOCOL_F_MQ);
	s->st.acked_protocol = s->st.protocol_features & pf_want;
	if (!(s->st.acked_protocol & BIT64(VU_PROTOCOL_F_CONFIG)))
		return fail(s, -EPROTONOSUPPORT,
			    "daemon does not offer PROTOCOL_F_CONFIG");
	/* UML records the protocol features before sending them, so this
	 * very message already carries NEED_REPLY when REPLY_ACK is in. */
	s->reply_ack = s->st.acked_protocol & BIT64(VU_PROTOCOL_F_REPLY_ACK);
	v = s->st.acked_protocol;
	rc = vu_set(s, VU_REQ_SET_PROTOCOL_FEATURES, &v, sizeof(v), NULL, 0,
		    false);
	if (rc)
		return rc;
	if (s->st.acked_protocol & BIT64(VU_PROTOCOL_F_BACKEND_REQ)) {
		rc = setup_backend_channel(s);
		if (rc)
			return rc;
	}
	if (s->st.acked_protocol & BIT64(VU_PROTOCOL_F_MQ)) {
		rc = vu_get_u64(s, VU_REQ_GET_QUEUE_NUM, NULL, 0,
				&s->st.queue_num);
		if (rc)
			return rc;
	}
	feat_want = BIT64(VIRTIO_F_VERSION_1) |
		    BIT64(VIRTIO_CONSOLE_F_MULTIPORT) |
		    BIT64(VIRTIO_CONSOLE_F_EMERG_WRITE) |
		    BIT64(VIRTIO_CONSOLE_F_SIZE);
	if (s->o.event_idx)
		feat_want |= BIT64(VIRTIO_F_EVENT_IDX);
	if (s->o.indirect)
		feat_want |= BIT64(VIRTIO_F_INDIRECT_DESC);
	s->st.acked_features =
		(s->st.features & feat_want) | BIT64(VU_F_PROTOCOL_FEATURES);
	s->st.event_idx = s->st.acked_features & BIT64(VIRTIO_F_EVENT_IDX);
	s->st.indirect = s->st.acked_features & BIT64(VIRTIO_F_INDIRECT_DESC);
	if (!s->o.uml_order) {
		rc = read_config_at_connect(s);
		if (rc)
			return rc;
	}
	v = s->st.acked_features;
	rc = vu_set(s, VU_REQ_SET_FEATURES, &v, sizeof(v), NULL, 0, false);
	if (rc)
		return rc;
	if (s->o.uml_order) {
		rc = read_config_at_connect(s);
		if (rc)
			return rc;
	}
	if (s->st.queue_num &&
	    s->st.queue_num < 2ull * ((uint64_t)s->st.max_nr_ports + 1))
		return bug(s,
			   "GET_QUEUE_NUM says %llu queues, but "
			   "max_nr_ports %u needs %llu",
			   (unsigned long long)s->st.queue_num,
			   s->st.max_nr_ports,
			   2ull * ((uint64_t)s->st.max_nr_ports + 1));

	s->st.nports = choose_nports(s);
	s->st.nqueues = 2 * (s->st.nports + 1);
	s->nport_ids = s->st.max_nr_ports < MAX_PORT_IDS ? s->st.max_nr_ports
							 : MAX_PORT_IDS;
	s->ports = calloc(s->nport_ids, sizeof(*s->ports));
	s->vqs = calloc(s->st.nqueues, sizeof(*s->vqs));
	if (!s->ports || !s->vqs)
		return fail(s, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < s->nport_ids; i++) {
		TAILQ_INIT(&s->ports[i].rxdata);
		TAILQ_INIT(&s->ports[i].rxspare);
	}
	s->nvqs = s->st.nqueues;
	for (unsigned q = 0; q < s->nvqs; q++) {
		s->vqs[q].kick_fd = -1;
		s->vqs[q].call_fd = -1;
	}

	rc = set_mem_table(s);
	if (rc)
		return rc;
	rc = setup_queues(s);
	if (rc)
		return rc;

	/* virtcons_probe(): fill c_ivq, then DEVICE_READY. */
	struct sim_vq *cvq = &s->vqs[VSER_CTRL_RXQ];
	while (cvq->num_free > 0) {
		struct sim_rxbuf *b =
			rxbuf_new(s, CTRL_BUF_SIZE, CTRL_BUF_SIZE);
		if (!b)
			return fail(s, -ENOMEM, "guest memory exhausted");
		rc = rx_post_buf(s, cvq, b, HK_CTRL_RX);
		if (rc) {
			rxbuf_free(s, b);
			return fail(s, rc, "control-rx: %s", strerror(-rc));
		}
	}
	vq_kick(cvq);
	return ctrl_send(s, UINT32_MAX, VIRTIO_CONSOLE_DEVICE_READY, 1, NULL,
			 0);
}

int sim_connect(struct sim *s, const char *path, int connect_timeout_ms)
{
	int rc;

	if (s->connect_called)
		return fail(s, -EALREADY, "sim_connect may be called once");
	s->connect_called = true;
	rc = connect_sock(s, path, connect_timeout_ms);
	if (rc)
		return rc;
	s->connected = true;
	rc = ep_add(s, s->sock, TAG(TAG_SOCK, 0), EPOLLIN | EPOLLRDHUP);
	if (rc)
		goto out_lost;
	rc = handshake(s);
	if (rc)
		goto out_lost;
	return 0;

out_lost:
	lost(s, "handshake failed");
	return rc;
}

/* ---- lifecycle ------------------------------------------------------- */

void sim_opts_default(struct sim_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mem_size = 64ull << 20;
	o->guest_base = SIM_DEFAULT_GUEST_BASE;
	o->user_offset = SIM_DEFAULT_USER_OFFSET;
	o->mem_table_slots = 2;
	o->queue_size = 256;
	o->event_idx = o->indirect = true;
	o->reply_ack = o->backend_req = o->mq = true;
	o->uml_order = true;
	o->rx_bufs = SIM_RX_FILL;
	o->rx_buf_size = 4096;
	o->tx_buf_size = 32768;
	o->ctrl_sync = true;
	o->ctrl_timeout_ms = 1000;
	o->reply_timeout_ms = 5000;
	o->discard_when_closed = true;
	o->check_missed_calls = true;
}

static bool opts_valid(const struct sim_opts *o)
{
	long page = sysconf(_SC_PAGESIZE);

	return o->mem_size >= (1u << 20) && o->mem_size % (uint64_t)page == 0 &&
	       o->guest_base % (uint64_t)page == 0 && o->guest_base != 0 &&
	       o->mmap_offset % (uint64_t)page == 0 &&
	       o->mem_table_slots >= 1 &&
	       o->mem_table_slots <= VU_MAX_MEM_REGIONS && o->queue_size >= 2 &&
	       o->queue_size <= VRING_MAX_SIZE &&
	       (o->queue_size & (o->queue_size - 1)) == 0 &&
	       o->rx_buf_size >= 1 && o->tx_buf_size >= 1 &&
	       o->ctrl_timeout_ms > 0 && o->reply_timeout_ms > 0;
}

struct sim *sim_new(const struct sim_opts *opts)
{
	struct sim *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (opts)
		s->o = *opts;
	else
		sim_opts_default(&s->o);
	s->memfd = s->sock = s->backend_fd = s->epfd = -1;
	if (!opts_valid(&s->o)) {
		errno = EINVAL;
		goto out_free_sim;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		goto out_free_sim;
	s->memfd = memfd_create("vportfs-sim-guest", MFD_CLOEXEC);
	if (s->memfd < 0)
		goto out_free_sim;
	if (ftruncate(s->memfd, (off_t)(s->o.mmap_offset + s->o.mem_size)))
		goto out_free_sim;
	s->mem = mmap(NULL, s->o.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      s->memfd, (off_t)s->o.mmap_offset);
	if (s->mem == MAP_FAILED) {
		s->mem = NULL;
		goto out_free_sim;
	}
	if (heap_insert(s, 0, 0, s->o.mem_size)) {
		errno = ENOMEM;
		goto out_free_sim;
	}
	return s;

out_free_sim:
	sim_free(s);
	return NULL;
}

void sim_free(struct sim *s)
{
	int saved = errno;

	if (!s)
		return;
	lost(s, "freed");
	for (unsigned nr = 0; nr < s->nport_ids; nr++) {
		struct sim_port *p = &s->ports[nr];
		struct sim_rxbuf *b;
		while ((b = TAILQ_FIRST(&p->rxdata))) {
			TAILQ_REMOVE(&p->rxdata, b, link);
			rxbuf_free(s, b);
		}
		while ((b = TAILQ_FIRST(&p->rxspare))) {
			TAILQ_REMOVE(&p->rxspare, b, link);
			rxbuf_free(s, b);
		}
		free(p->name);
	}
	for (unsigned q = 0; q < s->nvqs; q++) {
		struct sim_vq *vq = &s->vqs[q];
		if (vq->heads) {
			for (unsigned i = 0; i < vq->num; i++)
				if (vq->heads[i].kind == HK_CTRL_RX &&
				    vq->heads[i].rx) {
					rxbuf_free(s, vq->heads[i].rx);
					vq->heads[i].rx = NULL;
				}
		}
		vq_fini(s, vq);
	}
	free(s->vqs);
	free(s->ports);
	if (s->mem)
		munmap(s->mem, s->o.mem_size);
	close_fd(&s->memfd);
	close_fd(&s->epfd);
	close_fd(&s->sock);
	free(s->fext);
	free(s->bug);
	free(s);
	errno = saved;
}

const char *sim_error(const struct sim *s)
{
	return s->err;
}

const char *sim_bug(const struct sim *s)
{
	return s->bug;
}

unsigned sim_bug_count(const struct sim *s)
{
	return s->nbugs;
}

void sim_bug_clear(struct sim *s)
{
	free(s->bug);
	s->bug = NULL;
	s->nbugs = 0;
}

int sim_fd(const struct sim *s)
{
	return s->epfd;
}

void sim_get_state(const struct sim *s, struct sim_state *out)
{
	*out = s->st;
}

void sim_get_stats(const struct sim *s, struct sim_stats *out)
{
	*out = s->stats;
}

int sim_queue_info(const struct sim *s, unsigned qidx,
		   struct sim_queue_info *out)
{
	if (qidx >= s->nvqs)
		return -EINVAL;
	const struct sim_vq *vq = &s->vqs[qidx];
	memset(out, 0, sizeof(*out));
	out->idx = qidx;
	out->num = vq->num;
	out->desc_gpa = vq->desc_gpa;
	out->avail_gpa = vq->avail_gpa;
	out->used_gpa = vq->used_gpa;
	out->desc_uaddr = vq->desc_gpa + s->o.user_offset;
	out->num_free = vq->num_free;
	out->inflight = vq->inflight;
	out->avail_idx = vq->avail_idx;
	out->last_used = vq->last_used;
	out->used_idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
	out->used_flags = __atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED);
	out->avail_event = __atomic_load_n(
		(const uint16_t *)&vq->used->ring[vq->num], __ATOMIC_RELAXED);
	out->broken = vq->broken;
	out->tainted = vq->tainted;
	return 0;
}

__attribute__((format(printf, 4, 5))) static void
diag_line(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;

	if (*at >= len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
}

unsigned sim_diagnose(const struct sim *s, char *buf, size_t len)
{
	unsigned found = 0;
	size_t at = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned q = 0; q < s->nvqs; q++) {
		const struct sim_vq *vq = &s->vqs[q];
		if (vq->flooded)
			continue;
		uint16_t uidx =
			__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
		uint16_t flags =
			__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED);
		uint16_t aev = __atomic_load_n(
			(const uint16_t *)&vq->used->ring[vq->num],
			__ATOMIC_RELAXED);
		uint16_t waiting = (uint16_t)(vq->avail_idx - uidx);
		uint16_t behind = (uint16_t)(uidx - aev);

		if (vq->broken) {
			diag_line(buf, len, &at,
				  "queue %u: broken by a device bug\n", q);
			found++;
		}
		if (uidx != vq->last_used && !vq->no_interrupt) {
			diag_line(buf, len, &at,
				  "queue %u: used idx %u is ahead of the last "
				  "reaped %u and no call came\n",
				  q, uidx, vq->last_used);
			found++;
		}
		if (waiting == 0 || waiting > vq->num)
			continue;
		if (s->st.event_idx && behind > 0 && behind <= vq->num &&
		    vq->last_kick_suppressed) {
			diag_line(buf, len, &at,
				  "queue %u: %u chains available past used "
				  "idx %u (avail idx %u), but avail_event %u "
				  "is behind the used idx, so the driver may "
				  "not kick (EVENT_IDX): an idle device must "
				  "publish avail_event = its last_avail and "
				  "re-check the ring\n",
				  q, waiting, uidx, vq->avail_idx, aev);
			found++;
		} else if (!s->st.event_idx &&
			   (flags & VRING_USED_F_NO_NOTIFY) &&
			   vq->last_kick_suppressed) {
			diag_line(
				buf, len, &at,
				"queue %u: %u chains available (avail idx "
				"%u, used idx %u) with VRING_USED_F_NO_NOTIFY "
				"set: an idle device must clear it and "
				"re-check the ring\n",
				q, waiting, vq->avail_idx, uidx);
			found++;
		}
	}
	return found;
}

/* ---- event processing ------------------------------------------------ */

/* What a guest's interrupt costs its vCPU: one read.  A short read
 * emptied the socketpair, and a call written after it wakes epoll again
 * (level-triggered): reading on until EAGAIN was a syscall per interrupt
 * that a KVM guest, whose calls are irqfds, never makes. */
static void drain_call(struct sim *s, struct sim_vq *vq)
{
	uint8_t buf[256];

	for (;;) {
		ssize_t n = read(vq->call_fd, buf, sizeof(buf));
		if (n > 0) {
			s->stats.calls +=
				s->o.call_eventfd ? 1 : (uint64_t)n / 8;
			if (s->o.call_eventfd || n < (ssize_t)sizeof(buf))
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			/* Peer end closed: stop watching it. */
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, vq->call_fd, NULL);
			close_fd(&vq->call_fd);
		}
		return;
	}
}

/* Input on the vhost-user socket while no request is pending: EOF, or an
 * unsolicited message (a device bug). */
static void sock_event(struct sim *s)
{
	uint8_t b;
	ssize_t n = recv(s->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		lost(s, n == 0 ? "daemon closed the vhost-user connection"
			       : strerror(errno));
		fail(s, -ENOTCONN, "daemon closed the vhost-user connection");
		return;
	}
	struct vu_msg m;
	uint32_t got;
	unsigned nfds = 0;
	if (recv_msg(s, &m, &got, now_ms() + s->o.reply_timeout_ms, &nfds))
		return;
	bug(s,
	    "unsolicited message on the vhost-user socket: request %u "
	    "flags 0x%x size %u",
	    m.hdr.request, m.hdr.flags, m.hdr.size);
}

/* A used ring that moved past used_event with no call for a while means
 * the device forgot a notification: a real guest would hang. */
static void check_stale(struct sim *s)
{
	int64_t t = now_ms();

	for (unsigned q = 0; q < s->nvqs; q++) {
		struct sim_vq *vq = &s->vqs[q];
		if (vq->broken || vq->tainted || vq->no_interrupt ||
		    vq->flooded || vq->call_fd < 0)
			continue;
		uint16_t uidx =
			__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
		bool due;
		if (uidx == vq->last_used)
			due = false;
		else if (s->st.event_idx)
			due = need_event(vq->used_event, uidx, vq->last_used);
		else
			due = true;
		if (!due) {
			vq->stale = false;
			continue;
		}
		if (!vq->stale) {
			vq->stale = true;
			vq->stale_since = t;
			continue;
		}
		if (t - vq->stale_since < STALE_CALL_MS)
			continue;
		bug(s,
		    "queue %u: used idx advanced to %u (used_event %u, "
		    "last seen %u) but no call came for %d ms",
		    q, uidx, vq->used_event, vq->last_used, STALE_CALL_MS);
		vq_reap(vq);
	}
}

int sim_process(struct sim *s, int timeout_ms)
{
	struct epoll_event ev[64];
	int n;

	if (s->bug)
		return -EPROTO;
	if (!s->connected)
		return -ENOTCONN;
	if (timeout_ms < 0)
		timeout_ms = 0;
	n = epoll_wait(s->epfd, ev, 64, timeout_ms);
	if (n < 0 && errno != EINTR)
		return fail(s, -errno, "epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n && s->connected; i++) {
		uint32_t kind = (uint32_t)(ev[i].data.u64 >> 32);
		uint32_t idx = (uint32_t)ev[i].data.u64;
		switch (kind) {
		case TAG_SOCK:
			sock_event(s);
			break;
		case TAG_BACKEND:
			backend_service(s);
			break;
		case TAG_CALL:
			if (idx < s->nvqs && s->vqs[idx].call_fd >= 0) {
				drain_call(s, &s->vqs[idx]);
				vq_reap(&s->vqs[idx]);
			}
			break;
		}
	}
	if (s->connected && s->o.poll_used)
		for (unsigned q = 0; q < s->nvqs; q++)
			vq_reap(&s->vqs[q]);
	if (n <= 0 && s->connected && s->o.check_missed_calls)
		check_stale(s);
	if (s->bug)
		return -EPROTO;
	return s->connected ? 0 : -ENOTCONN;
}

int sim_wait(struct sim *s, sim_cond_fn cond, void *arg, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		if (s->bug)
			return fail(s, -EPROTO, "device-bug: %s", s->bug);
		if (cond(s, arg))
			return 0;
		if (!s->connected)
			return fail(s, -ENOTCONN, "not connected");
		int left = remaining_ms(deadline);
		int rc = sim_process(s, left < 100 ? left : 100);
		if (rc && rc != -EPROTO && rc != -ENOTCONN)
			return rc;
		if (left == 0 && !cond(s, arg)) {
			if (s->bug)
				continue;
			return fail(s, -ETIMEDOUT, "timeout");
		}
	}
}

struct port_name_arg {
	const char *name;
	int nr;
};

static bool cond_port_named(struct sim *s, void *a)
{
	struct port_name_arg *pa = a;

	pa->nr = sim_port_find(s, pa->name);
	return pa->nr >= 0;
}

int sim_wait_port(struct sim *s, const char *name, int timeout_ms)
{
	struct port_name_arg a = {.name = name, .nr = -1};
	int rc = sim_wait(s, cond_port_named, &a, timeout_ms);

	return rc ? rc : a.nr;
}

/* ---- ports: public ---------------------------------------------------- */

static int port_lookup(const struct sim *s, unsigned nr, struct sim_port **out)
{
	struct sim_port *p = port_get((struct sim *)s, nr);

	if (!p || !p->present)
		return -ENOENT;
	*out = p;
	return 0;
}

unsigned sim_port_count(const struct sim *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->nport_ids; i++)
		n += s->ports[i].present;
	return n;
}

int sim_port_next(const struct sim *s, int after)
{
	for (unsigned i = after < 0 ? 0 : (unsigned)after + 1; i < s->nport_ids;
	     i++)
		if (s->ports[i].present)
			return (int)i;
	return -ENOENT;
}

int sim_port_find(const struct sim *s, const char *name)
{
	for (unsigned i = 0; i < s->nport_ids; i++)
		if (s->ports[i].present && s->ports[i].name &&
		    strcmp(s->ports[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

int sim_port_info(const struct sim *s, unsigned nr, struct sim_port_info *out)
{
	struct sim_port *p = NULL;

	if (port_lookup(s, nr, &p))
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->nr = nr;
	out->name = p->name;
	out->console = p->console;
	out->host_connected = p->host;
	out->guest_connected = p->guest;
	out->has_queues = nr < s->st.nports;
	out->rx_withheld = p->withhold;
	out->cols = p->cols;
	out->rows = p->rows;
	out->rx_avail = p->rx_posted;
	out->rx_pending = p->rx_pending;
	out->tx_pending = p->tx_pending;
	out->rx_total = p->rx_total;
	out->tx_total = p->tx_total;
	out->rx_discarded = p->rx_discarded;
	out->adds = p->adds;
	out->removes = p->removes;
	return 0;
}

static int port_ready_for_io(struct sim *s, unsigned nr, struct sim_port **p)
{
	if (port_lookup(s, nr, p))
		return fail(s, -ENOENT, "no port %u", nr);
	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	if (nr >= s->st.nports)
		return fail(s, -ENODEV, "port %u has no queues", nr);
	return 0;
}

int sim_port_open(struct sim *s, unsigned nr)
{
	struct sim_port *p = NULL;
	int rc = port_ready_for_io(s, nr, &p);

	if (rc)
		return rc;
	p->guest = true;
	return ctrl_send(s, nr, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
}

int sim_port_close(struct sim *s, unsigned nr)
{
	struct sim_port *p = NULL;
	int rc = port_ready_for_io(s, nr, &p);

	if (rc)
		return rc;
	rc = ctrl_send(s, nr, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);
	p->guest = false;
	if (s->o.discard_when_closed && !p->console)
		port_discard(s, nr, p);
	return rc;
}

long sim_port_write(struct sim *s, unsigned nr, const void *data, size_t len)
{
	const uint8_t *src = data;
	struct sim_port *p = NULL;
	struct sim_vq *vq = NULL;
	size_t done = 0;
	bool nomem = false, rechecked = false;
	int rc = port_ready_for_io(s, nr, &p);

	if (rc)
		return rc;
	vq = &s->vqs[vser_port_txq(nr)];
	if (vq->broken)
		return fail(s, -EPROTO, "transmit queue %u broken", vq->idx);
	if (vq->flooded)
		return fail(s, -EBUSY, "queue %u is the flood's", vq->idx);
	/* Take back what the device used, as Linux's virtio_console does
	 * before every add (reclaim_consumed_buffers): a writer needs no
	 * interrupt until the ring is full. */
	rc = vq_reap(vq);
	if (rc)
		return rc;
	while (done < len) {
		uint32_t chunk = len - done < s->o.tx_buf_size
					 ? (uint32_t)(len - done)
					 : s->o.tx_buf_size;
		uint32_t seg = seg_size(s->o.tx_buf_size, s->o.tx_seg_size);
		struct seg segs[64];
		struct sim_buf b;
		struct sim_head *h;

		if (nsegs(s->o.tx_buf_size, seg) > 64)
			seg = (s->o.tx_buf_size + 63) / 64;
		unsigned n = nsegs(chunk, seg);
		if (vq->num_free < vq_slots_for(vq, n)) {
			/* Full: look once more before waiting for an
			 * interrupt, as Linux's will_write_block does. */
			if (rechecked)
				break;
			rechecked = true;
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			rc = vq_reap(vq);
			if (rc)
				return rc;
			continue;
		}
		if (spare_get(s, vq, seg_layout_bytes(s->o.tx_buf_size, seg),
			      &b)) {
			nomem = true;
			break;
		}
		build_segs(b.gpa, chunk, seg, false, segs, 64);
		for (unsigned i = 0; i < n; i++)
			memcpy(gp(s, segs[i].gpa), src + done + i * seg,
			       segs[i].len);
		if (vq_add(vq, segs, n, HK_TX, &h)) {
			spare_put(s, vq, &b);
			nomem = true;
			break;
		}
		h->buf = b;
		p->tx_pending += chunk;
		done += chunk;
	}
	if (done) {
		vq_kick(vq);
		return (long)done;
	}
	if (len == 0)
		return 0;
	if (nomem && vq->inflight == 0)
		return fail(s, -ENOMEM,
			    "guest memory exhausted (raise the "
			    "memory size)");
	return fail(s, -EAGAIN, "transmit ring full");
}

long sim_port_tx_pending(const struct sim *s, unsigned nr)
{
	struct sim_port *p = NULL;

	if (port_lookup(s, nr, &p))
		return -ENOENT;
	return (long)p->tx_pending;
}

long sim_port_consume(struct sim *s, unsigned nr, size_t len, sim_rx_fn fn,
		      void *opaque)
{
	struct sim_port *p = NULL;
	size_t done = 0;
	bool reposted = false;
	int rc = 0;

	if (port_lookup(s, nr, &p))
		return fail(s, -ENOENT, "no port %u", nr);
	while (done < len && rc == 0) {
		struct sim_rxbuf *b = TAILQ_FIRST(&p->rxdata);
		if (!b)
			break;
		while (done < len && b->off < b->len && rc == 0) {
			uint32_t si = b->off / b->seg, so = b->off % b->seg;
			uint32_t run = b->seg - so;
			if (run > b->len - b->off)
				run = b->len - b->off;
			if (run > len - done)
				run = (uint32_t)(len - done);
			rc = fn(gp(s,
				   b->mem.gpa + (uint64_t)si *
							(b->seg + CANARY_LEN)) +
					so,
				run, opaque);
			b->off += run;
			done += run;
		}
		if (b->off == b->len) {
			TAILQ_REMOVE(&p->rxdata, b, link);
			port_rx_repost(s, nr, b);
			reposted = true;
		}
	}
	p->rx_pending -= done;
	if (reposted && nr < s->st.nports && s->connected)
		vq_kick(&s->vqs[vser_port_rxq(nr)]);
	if (rc)
		return fail(s, rc, "port %u: the reader failed after %zu bytes",
			    nr, done);
	return (long)done;
}

static int copy_out(const void *p, size_t n, void *opaque)
{
	uint8_t **dst = opaque;

	memcpy(*dst, p, n);
	*dst += n;
	return 0;
}

long sim_port_read(struct sim *s, unsigned nr, void *buf, size_t len)
{
	uint8_t *dst = buf;

	return sim_port_consume(s, nr, len, copy_out, &dst);
}

long sim_port_rx_pending(const struct sim *s, unsigned nr)
{
	struct sim_port *p = NULL;

	if (port_lookup(s, nr, &p))
		return -ENOENT;
	return (long)p->rx_pending;
}

int sim_port_rx_post(struct sim *s, unsigned nr, unsigned count, uint32_t size)
{
	struct sim_port *p = NULL;
	int rc = port_ready_for_io(s, nr, &p);

	if (rc)
		return rc;
	if (size == 0)
		return fail(s, -EINVAL, "buffer size 0");
	if (count == 0)
		return 0;
	return port_rx_fill(s, nr, count, size);
}

int sim_port_rx_withhold(struct sim *s, unsigned nr, bool withhold)
{
	struct sim_port *p = port_get(s, nr);
	struct sim_rxbuf *b;

	if (!p)
		return fail(s, -ENOENT, "no port %u", nr);
	p->withhold = withhold;
	if (withhold || nr >= s->st.nports || !s->connected)
		return 0;
	struct sim_vq *vq = &s->vqs[vser_port_rxq(nr)];
	while ((b = TAILQ_FIRST(&p->rxspare))) {
		if (vq->num_free < vq_slots_for(vq, nsegs(b->size, b->seg)))
			break;
		TAILQ_REMOVE(&p->rxspare, b, link);
		if (rx_post_buf(s, vq, b, HK_RX)) {
			TAILQ_INSERT_HEAD(&p->rxspare, b, link);
			break;
		}
		p->rx_posted++;
	}
	vq_kick(vq);
	return 0;
}

/* ---- fault injection -------------------------------------------------- */

int sim_port_tx_withhold_kick(struct sim *s, unsigned nr, bool withhold)
{
	struct sim_vq *vq;

	if (!port_get(s, nr))
		return fail(s, -ENOENT, "no port %u", nr);
	if (nr >= s->st.nports)
		return fail(s, -ENODEV, "port %u has no queues", nr);
	vq = &s->vqs[vser_port_txq(nr)];
	vq->kick_withheld = withhold;
	if (!withhold && vq->kicked_idx != vq->avail_idx) {
		vq->kicked_idx = vq->avail_idx;
		vq_notify(vq);
	}
	return 0;
}

int sim_port_tx_scribble(struct sim *s, unsigned nr, uint8_t byte)
{
	struct sim_vq *vq;
	int n = 0;

	if (!port_get(s, nr))
		return fail(s, -ENOENT, "no port %u", nr);
	if (nr >= s->st.nports)
		return fail(s, -ENODEV, "port %u has no queues", nr);
	vq = &s->vqs[vser_port_txq(nr)];
	for (unsigned i = 0; i < vq->num; i++) {
		struct sim_head *h = &vq->heads[i];

		if (h->kind != HK_TX || !h->buf.gpa)
			continue;
		memset(gp(s, h->buf.gpa), byte, h->buf.cap);
		n++;
	}
	return n;
}

int sim_send_ctrl(struct sim *s, uint32_t id, uint16_t event, uint16_t value,
		  const void *extra, size_t extra_len)
{
	return ctrl_send(s, id, event, value, extra, extra_len);
}

int sim_raw_msg(struct sim *s, uint32_t request, uint32_t flags,
		uint32_t hdr_size, const void *payload, uint32_t len,
		const int *fds, unsigned nfds, struct sim_raw_reply *reply,
		int timeout_ms)
{
	struct vu_msg m;
	uint32_t got = 0;
	int rc;

	memset(reply, 0, sizeof(*reply));
	rc = send_msg(s, request, flags, hdr_size, payload, len, fds, nfds);
	if (rc)
		return rc;
	rc = wait_sock(s, POLLIN, now_ms() + (timeout_ms > 0 ? timeout_ms : 0));
	if (rc == -ETIMEDOUT)
		return 0;
	if (rc)
		return rc;
	rc = recv_msg(s, &m, &got, now_ms() + s->o.reply_timeout_ms,
		      &reply->nfds);
	if (rc)
		return rc;
	trace(s, "<- raw reply %u flags 0x%x size %u", m.hdr.request,
	      m.hdr.flags, m.hdr.size);
	reply->got = true;
	reply->request = m.hdr.request;
	reply->flags = m.hdr.flags;
	reply->size = m.hdr.size;
	reply->payload_len = got;
	memcpy(reply->payload, &m.payload, got);
	return 0;
}

static int raw_vq(struct sim *s, unsigned qidx, struct sim_vq **out)
{
	if (!s->connected)
		return fail(s, -ENOTCONN, "not connected");
	if (qidx >= s->nvqs)
		return fail(s, -EINVAL, "no queue %u (have %u)", qidx, s->nvqs);
	if (s->vqs[qidx].flooded)
		return fail(s, -EBUSY, "queue %u is the flood's", qidx);
	*out = &s->vqs[qidx];
	return 0;
}

static uint16_t raw_next(const struct sim_raw_desc *d, unsigned n,
			 const uint16_t *slots)
{
	if (d->next_abs)
		return d->next;
	if (!(d->flags & VRING_DESC_F_NEXT))
		return 0;
	return d->next < n ? slots[d->next] : d->next;
}

int sim_raw_chain(struct sim *s, unsigned qidx,
		  const struct sim_raw_desc *descs, unsigned n,
		  const struct sim_raw_ring_desc *ring, uint16_t *head_out)
{
	struct sim_vq *vq = NULL;
	struct sim_buf *allocs = NULL, table = {0};
	uint16_t slots[VRING_MAX_SIZE > 1024 ? 1024 : VRING_MAX_SIZE];
	bool indirect = ring && ring->indirect;
	unsigned nslots = indirect ? 1 : n, nallocs = 0;
	uint16_t head;
	int rc = raw_vq(s, qidx, &vq);

	if (rc)
		return rc;
	if (n > 1024 || (!indirect && n == 0))
		return fail(s, -EINVAL, "chain of %u descriptors", n);
	if (vq->num_free < nslots)
		return fail(s, -ENOSPC, "queue %u: %u free slots, need %u",
			    qidx, vq->num_free, nslots);
	allocs = calloc(n ? n : 1, sizeof(*allocs));
	if (!allocs)
		return fail(s, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		if (!descs[i].alloc)
			continue;
		if (heap_alloc(s, descs[i].alloc, SIM_ALIGN,
			       &allocs[nallocs])) {
			rc = fail(s, -ENOMEM, "guest memory exhausted");
			goto out_free_allocs;
		}
		uint8_t *p = gp(s, allocs[nallocs].gpa);
		size_t dl = descs[i].data_len < descs[i].alloc
				    ? descs[i].data_len
				    : descs[i].alloc;
		memset(p, 0, allocs[nallocs].cap);
		if (dl)
			memcpy(p, descs[i].data, dl);
		nallocs++;
	}
	if (indirect && heap_alloc(s, 16ull * (n ? n : 1), 16, &table)) {
		rc = fail(s, -ENOMEM, "guest memory exhausted");
		goto out_free_allocs;
	}
	rc = vq_take_slots(vq, nslots, &head);
	if (rc) {
		rc = fail(s, rc, "no free slots");
		goto out_free_table;
	}
	/* slots[i]: where descriptor i lives (ring slot or table index). */
	uint16_t slot = head;
	for (unsigned i = 0; i < n; i++) {
		slots[i] = indirect ? (uint16_t)i : slot;
		if (!indirect)
			slot = vq->next[slot];
	}
	struct vring_desc *base =
		indirect ? (struct vring_desc *)gp(s, table.gpa) : vq->desc;
	for (unsigned i = 0, a = 0; i < n; i++) {
		struct vring_desc *d = &base[slots[i]];
		d->addr = descs[i].alloc ? allocs[a++].gpa : descs[i].addr;
		d->len = descs[i].len;
		d->flags = descs[i].flags;
		d->next = raw_next(&descs[i], n, slots);
	}
	if (indirect) {
		struct vring_desc *d = &vq->desc[head];
		d->addr = ring->set_addr ? ring->addr : table.gpa;
		d->len = ring->set_len ? ring->len : 16u * n;
		d->flags =
			(uint16_t)(VRING_DESC_F_INDIRECT | ring->extra_flags);
		d->next = 0;
	}
	struct sim_head *h = &vq->heads[head];
	memset(h, 0, sizeof(*h));
	h->kind = HK_RAW;
	h->ndesc = (uint16_t)nslots;
	h->table = table;
	h->raw = allocs;
	h->nraw = nallocs;
	vq->inflight++;
	vq_publish_head(vq, head);
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	vq->kicked_idx = vq->avail_idx;
	vq_notify(vq);
	if (head_out)
		*head_out = head;
	return 0;

out_free_table:
	heap_free(s, &table);
out_free_allocs:
	for (unsigned i = 0; i < nallocs; i++)
		heap_free(s, &allocs[i]);
	free(allocs);
	return rc;
}

int sim_raw_head(struct sim *s, unsigned qidx, uint16_t head)
{
	struct sim_vq *vq = NULL;
	int rc = raw_vq(s, qidx, &vq);

	if (rc)
		return rc;
	vq->tainted = true;
	vq_publish_head(vq, head);
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	vq->kicked_idx = vq->avail_idx;
	vq_notify(vq);
	return 0;
}

int sim_raw_avail_idx(struct sim *s, unsigned qidx, uint16_t idx)
{
	struct sim_vq *vq = NULL;
	int rc = raw_vq(s, qidx, &vq);

	if (rc)
		return rc;
	vq->tainted = true;
	vq->avail_idx = vq->kicked_idx = idx;
	__atomic_store_n(&vq->avail->idx, idx, __ATOMIC_RELEASE);
	vq_notify(vq);
	return 0;
}

int sim_shrink_memory(struct sim *s, uint64_t size)
{
	if (s->flood.running)
		return fail(s, -EBUSY, "a flood is running");
	size_t len = s->o.mem_size;
	void *copy = malloc(len);

	if (!copy)
		return -ENOMEM;
	/* Keep our own view on a private copy, so that only the device's
	 * mappings of the file fault. */
	memcpy(copy, s->mem, len);
	if (mmap(s->mem, len, PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0) == MAP_FAILED) {
		free(copy);
		return -errno;
	}
	memcpy(s->mem, copy, len);
	free(copy);
	if (ftruncate(s->memfd, (off_t)size) < 0)
		return -errno;
	return 0;
}

int sim_raw_kick(struct sim *s, unsigned qidx)
{
	struct sim_vq *vq = NULL;
	int rc = raw_vq(s, qidx, &vq);

	if (rc)
		return rc;
	vq_notify(vq);
	return 0;
}

int sim_raw_used(struct sim *s, unsigned qidx, struct sim_raw_completion *out)
{
	for (unsigned i = 0; i < s->raw_count; i++) {
		unsigned at = (s->raw_head + i) % RAW_COMPLETIONS;
		if (s->raw[at].qidx != qidx)
			continue;
		*out = s->raw[at];
		/* Close the gap, keeping the order of the others. */
		for (unsigned k = i; k > 0; k--)
			s->raw[(s->raw_head + k) % RAW_COMPLETIONS] =
				s->raw[(s->raw_head + k - 1) % RAW_COMPLETIONS];
		s->raw_head = (s->raw_head + 1) % RAW_COMPLETIONS;
		s->raw_count--;
		return 0;
	}
	return -EAGAIN;
}

/* ---- flood: a guest re-posting refused chains ------------------------- */

/* The flood thread: whatever the device returns goes straight back on the
 * avail ring, one chain at a time, at memory speed, as a vCPU spinning
 * beside the device would; it kicks when the device asks for a kick
 * (avail_event, or no VRING_USED_F_NO_NOTIFY).  It touches only its
 * queue's avail ring and reads its used ring. */
static void *flood_run(void *arg)
{
	struct sim *s = arg;
	struct sim_vq *vq = s->flood.vq;
	uint16_t avail = vq->avail_idx, kicked = avail;
	uint64_t one = 1;

	while (!__atomic_load_n(&s->flood.stop, __ATOMIC_ACQUIRE)) {
		uint16_t used =
			__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);

		if ((uint16_t)(avail - used) < vq->num) {
			vq->avail->ring[avail % vq->num] = avail % vq->num;
			avail++;
			__atomic_store_n(&vq->avail->idx, avail,
					 __ATOMIC_RELEASE);
			__atomic_fetch_add(&s->flood.posted, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		/* Ring full: the device has not caught up.  Kick if it asked
		 * since our last kick, then let it run. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		bool need =
			s->st.event_idx
				? need_event(__atomic_load_n(vq_avail_event(vq),
							     __ATOMIC_RELAXED),
					     avail, kicked)
				: !(__atomic_load_n(&vq->used->flags,
						    __ATOMIC_RELAXED) &
				    VRING_USED_F_NO_NOTIFY);
		if (need && avail != kicked) {
			kicked = avail;
			if (write(vq->kick_fd, &one, sizeof(one)) < 0 &&
			    errno != EAGAIN)
				break; /* the connection is going */
		}
		sched_yield();
	}
	return NULL;
}

int sim_flood_start(struct sim *s, unsigned qidx)
{
	struct sim_vq *vq = NULL;
	int rc = raw_vq(s, qidx, &vq);

	if (rc)
		return rc;
	if (s->flood.running)
		return fail(s, -EBUSY, "a flood is already running");
	if (vq->inflight || vq->num_free != vq->num || vq->kick_fd < 0)
		return fail(s, -EBUSY,
			    "queue %u is in use (%u chains in flight)", qidx,
			    vq->inflight);
	/* Every descriptor: 64 bytes just past the end of guest memory, so
	 * each chain is one the device must return unread. */
	for (unsigned i = 0; i < vq->num; i++)
		vq->desc[i] = (struct vring_desc){.addr = s->o.guest_base +
							  s->o.mem_size + 4096,
						  .len = 64};
	vq->flooded = true;
	s->flood.vq = vq;
	s->flood.posted = 0;
	s->flood.stop = false;
	rc = pthread_create(&s->flood.thread, NULL, flood_run, s);
	if (rc) {
		vq->flooded = false;
		return fail(s, -rc, "pthread_create: %s", strerror(rc));
	}
	s->flood.running = true;
	return 0;
}

int sim_flood_stop(struct sim *s, uint64_t *posted)
{
	if (!s->flood.running)
		return fail(s, -ESRCH, "no flood is running");
	__atomic_store_n(&s->flood.stop, true, __ATOMIC_RELEASE);
	pthread_join(s->flood.thread, NULL);
	s->flood.running = false;
	if (posted)
		*posted = __atomic_load_n(&s->flood.posted, __ATOMIC_RELAXED);
	return 0;
}
