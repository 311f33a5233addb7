/*
 * vhost-user backend: the protocol engine between a frontend (UML, QEMU,
 * the simulated frontend) and our virtio-serial device.
 *
 * The design choice that matters: the frontend socket is non-blocking and
 * messages are reassembled in a buffer, so a frontend that sends half a
 * message (or nothing at all) can never stall the loop that also serves the
 * guest and the FUSE mount.  Every request is answered at once: UML stops
 * the whole guest while it waits for an ack.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vportfs/log.h"
#include "vportfs/vu.h"

#define MAX_QUEUES 1024

/*
 * Guest memory is a file the frontend can shrink under us at any time;
 * touching a mapping past its end raises SIGBUS, which would kill the
 * daemon and leave a dead mount.  So every guest mapping is listed here,
 * and a SIGBUS handler that finds the faulting address in one of them
 * maps zero pages over it (the access then completes, reading zeros) and
 * wakes the backend, which drops that frontend.  A signal handler cannot
 * be given a context: this table is the one piece of process-wide state
 * of this module, and SIGBUS is synchronous, so it is never read while
 * being changed.
 */
#define GUARD_SLOTS (VU_MAX_MEM_REGIONS * 2)

static struct {
	void *addr;
	size_t len;
	int wake_fd; /* eventfd of the vu that mapped it */
} guard[GUARD_SLOTS];

static void guard_sigbus(int sig, siginfo_t *si, void *uctx)
{
	char *a = si->si_addr;
	static const uint64_t one = 1;

	(void)uctx;
	for (unsigned i = 0; i < GUARD_SLOTS; i++) {
		char *base = guard[i].addr;

		if (!base || a < base || a >= base + guard[i].len)
			continue;
		if (mmap(base, guard[i].len, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
			 0) == MAP_FAILED)
			break;
		if (write(guard[i].wake_fd, &one, sizeof(one)) < 0) {
			/* Nothing to do in a signal handler. */
		}
		return;
	}
	/* Not guest memory: a real bug, die as SIGBUS would have. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void guard_install(void)
{
	static bool installed;
	struct sigaction sa = { .sa_sigaction = guard_sigbus,
				.sa_flags = SA_SIGINFO };

	if (installed)
		return;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) == 0)
		installed = true;
}

/* 0, or -ENOSPC: the table is full, and the mapping must not be used
 * unguarded. */
static int guard_add(void *addr, size_t len, int wake_fd)
{
	for (unsigned i = 0; i < GUARD_SLOTS; i++) {
		if (!guard[i].addr) {
			guard[i].len = len;
			guard[i].wake_fd = wake_fd;
			guard[i].addr = addr;
			return 0;
		}
	}
	return -ENOSPC;
}

static void guard_remove(void *addr)
{
	for (unsigned i = 0; i < GUARD_SLOTS; i++)
		if (guard[i].addr == addr)
			guard[i].addr = NULL;
}

struct vu_queue {
	struct vq vq;
	unsigned num;
	struct vu_vring_addr addr;
	bool addr_set;
	uint16_t base;
	int kick_fd;
	int call_fd;
	int err_fd;
	bool kick_set;  /* SET_VRING_KICK seen */
	bool enabled;   /* SET_VRING_ENABLE, or implied without protocol features */
	bool started;
	bool notify_pending;
	/* vu_queue_notify_lazy: an interrupt to decide on when lazy_timer
	 * fires; the guest's avail index when it was asked for or last put
	 * off, and how many times in a row it was put off (vu.h). */
	bool lazy_pending;
	uint16_t lazy_mark;
	unsigned lazy_put_off;
	bool err_reported; /* the frontend was told this ring is broken */
	struct vp_watch *kick_watch;
	struct vu *vu;
};

struct vu {
	struct vp_loop *loop;
	struct vu_config cfg;
	const struct vu_device_ops *ops;
	void *opaque;

	int listen_fd;
	struct vp_watch *listen_watch;
	char *socket_path; /* set when we created the socket */
	dev_t socket_dev;  /* ... and which file it is, so that we never */
	ino_t socket_ino;  /* unlink a socket someone else made since */

	int conn_fd;
	struct vp_watch *conn_watch;
	uint8_t rbuf[sizeof(struct vu_msg)];
	size_t rlen;
	int rfds[VU_MAX_FDS];
	unsigned nrfds;

	int bus_fd; /* eventfd: guard_sigbus says our guest memory shrank */
	struct vp_watch *bus_watch;

	uint64_t features;          /* acked virtio features */
	uint64_t protocol_features; /* acked protocol features */
	int backend_fd;
	struct vq_mem mem;
	bool notify_scheduled;
	struct vp_timer *lazy_timer; /* armed while a lazy notify waits */
	bool lazy_armed;
	struct vu_queue *queues;
};

/* ---- small helpers -------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static bool has_protocol_features(const struct vu *vu)
{
	return vu->features & (1ull << VU_F_PROTOCOL_FEATURES);
}

static void mem_unmap(struct vq_mem *mem)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		guard_remove(mem->r[i].map);
		munmap(mem->r[i].map, mem->r[i].map_len);
	}
	mem->nregions = 0;
}

/* ---- queues ----------------------------------------------------------- */

/* See struct vu_device_ops.queue_stop for `keep`. */
static void queue_stop(struct vu *vu, unsigned q, bool keep)
{
	struct vu_queue *vq = &vu->queues[q];

	if (!vq->started)
		return;
	if (vu->ops->queue_stop) /* still started: may push */
		vu->ops->queue_stop(vu->opaque, q, keep);
	vq->started = false;
	vp_watch_set(vu->loop, vq->kick_watch, 0);
}

static void kick_cb(struct vp_watch *w, int revents, void *opaque);

/* Stop a running ring so that it resumes where it stands. */
static void queue_pause(struct vu *vu, unsigned q, bool keep)
{
	struct vu_queue *vq = &vu->queues[q];

	if (!vq->started)
		return;
	vq->base = vq->vq.last_avail;
	queue_stop(vu, q, keep);
}

/* A ring the guest broke is dead until the frontend resets it: tell it
 * once through its error fd (the vhost-user way to say DEVICE_NEEDS_RESET). */
static void report_broken(struct vu_queue *vq)
{
	static const uint64_t one = 1;

	if (!vq->vq.broken || vq->err_reported || vq->err_fd < 0)
		return;
	vq->err_reported = true;
	if (write(vq->err_fd, &one, sizeof(one)) < 0)
		vp_warn_rl("queue error fd: %s", strerror(errno));
}

/* A stopped ring keeps no pointer into guest memory: the table it pointed
 * into may be gone, and nothing may reach through it. */
static void queue_forget_rings(struct vu_queue *vq)
{
	vq->vq.num = 0;
	vq->vq.desc = NULL;
	vq->vq.avail = NULL;
	vq->vq.used = NULL;
}

/* Start the queue once it has everything it needs, guest memory included;
 * idempotent.  0 (started, or still waiting for something), or -EINVAL:
 * everything came but the rings do not fit guest memory.  Then the ring is
 * broken until the frontend sets it up again, and its error fd says so. */
static int queue_maybe_start(struct vu *vu, unsigned q)
{
	struct vu_queue *vq = &vu->queues[q];
	unsigned inflight;
	int rc;

	if (vq->started || !vq->kick_set || !vq->enabled || !vq->addr_set ||
	    !vq->num || !vu->mem.nregions)
		return 0;
	/* Elements kept over a pause are still in flight. */
	inflight = vq->vq.inflight;
	rc = vq_setup(&vq->vq, &vu->mem, vq->num, vq->addr.desc_user_addr,
		      vq->addr.avail_user_addr, vq->addr.used_user_addr,
		      vq->base);
	if (rc) {
		vp_warn_rl("queue %u: rings outside guest memory or misaligned",
			   q);
		queue_forget_rings(vq);
		vq->vq.broken = true;
		report_broken(vq);
		return rc;
	}
	vq->err_reported = false;
	/* A ring restarted mid-life resumes where its used ring stands,
	 * which is behind last_avail by whatever was popped and not pushed. */
	vq->vq.used_idx = __atomic_load_n(&vq->vq.used->idx, __ATOMIC_ACQUIRE);
	vq->vq.inflight = inflight;
	vq->vq.event_idx = vu->features & (1ull << VIRTIO_F_EVENT_IDX);
	vq->vq.indirect = vu->features & (1ull << VIRTIO_F_INDIRECT_DESC);
	/* Made with the kick fd (h_set_vring_kick), so that starting cannot
	 * fail after the frontend was told all went well. */
	vp_watch_set(vu->loop, vq->kick_watch, VP_EV_READ);
	vq->started = true;
	vp_debug("queue %u started (num %u, base %u)", q, vq->num, vq->base);
	/* An interrupt owed when the ring stopped (a pause inside a lazy
	 * notification's delay, say) goes now. */
	if (vq->notify_pending)
		vu_queue_notify(vu, q);
	/* Buffers may already be waiting: the guest kicked before we
	 * listened, or a restarted ring resumes. */
	vu->ops->queue_kick(vu->opaque, q);
	return 0;
}

static bool any_started(const struct vu *vu)
{
	for (unsigned q = 0; q < vu->cfg.nqueues; q++)
		if (vu->queues[q].started)
			return true;
	return false;
}

static void queue_reset(struct vu *vu, unsigned q)
{
	struct vu_queue *vq = &vu->queues[q];

	queue_stop(vu, q, false);
	vp_watch_free(vu->loop, vq->kick_watch);
	vq->kick_watch = NULL;
	close_fd(&vq->kick_fd);
	close_fd(&vq->call_fd);
	close_fd(&vq->err_fd);
	vq_reset(&vq->vq);
	vq->num = 0;
	vq->addr_set = false;
	vq->base = 0;
	vq->kick_set = false;
	vq->enabled = false;
	vq->notify_pending = false;
	vq->lazy_pending = false;
	vq->lazy_put_off = 0;
	vq->err_reported = false;
}

static void kick_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct vu_queue *vq = opaque;
	struct vu *vu = vq->vu;
	uint64_t buf[512];
	ssize_t n;

	(void)w;
	(void)revents;
	/* An eventfd reads 8 bytes; a pipe or socketpair (UML) may hold
	 * several notifications: drain them, one kick is enough.  Bounded:
	 * a frontend writing without pause must not hold the loop here. */
	for (int i = 0; i < 16; i++) {
		n = read(vq->kick_fd, buf, sizeof(buf));
		if (n < (ssize_t)sizeof(buf))
			break;
	}
	if (n == 0) {
		/* The frontend closed its end of the kick fd: stop watching
		 * it, or we would spin on EOF. */
		vp_watch_set(vu->loop, vq->kick_watch, 0);
	}
	vu->ops->queue_kick(vu->opaque, (unsigned)(vq - vu->queues));
	report_broken(vq);
}

static void notify_flush(void *opaque)
{
	struct vu *vu = opaque;
	static const uint64_t one = 1;

	vu->notify_scheduled = false;
	for (unsigned q = 0; q < vu->cfg.nqueues; q++) {
		struct vu_queue *vq = &vu->queues[q];

		report_broken(vq);
		/* A stopped ring keeps what it owes the guest until it starts
		 * again (queue_start): the used entries are in its ring. */
		if (!vq->notify_pending || !vq->started)
			continue;
		vq->notify_pending = false;
		if (vq->call_fd < 0 || !vq_should_notify(&vq->vq))
			continue;
		/* UML's call fd is a socketpair end: exactly 8 bytes.  A full
		 * pipe means an interrupt is already pending: fine. */
		if (write(vq->call_fd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			vp_warn_rl("queue %u: call fd write: %s", q,
				   strerror(errno));
	}
}

/* Fire lazy_cb VU_LAZY_NOTIFY_MS from now, unless it is due sooner. */
static void lazy_arm(struct vu *vu)
{
	if (!vu->lazy_armed) {
		vp_timer_start(vu->loop, vu->lazy_timer, VU_LAZY_NOTIFY_MS);
		vu->lazy_armed = true;
	}
}

/* A moment after a lazy notification was asked for: the guest has had
 * the time to look at the used ring itself, and asks for an interrupt
 * (used_event) only if it is still waiting.  One timer serves every
 * queue, so a queue's first wait is at most VU_LAZY_NOTIFY_MS. */
static void lazy_cb(struct vp_timer *t, void *opaque)
{
	struct vu *vu = opaque;

	(void)t;
	vu->lazy_armed = false;
	for (unsigned q = 0; q < vu->cfg.nqueues; q++) {
		struct vu_queue *vq = &vu->queues[q];
		uint16_t avail;

		if (!vq->lazy_pending)
			continue;
		/* A guest whose avail index moved meanwhile posted: it is not
		 * waiting for what came back, so the decision is put off
		 * (vu.h).  A stopped ring is decided now: its interrupt waits
		 * for the restart (notify_send). */
		avail = vq->started ? vq_avail_mark(&vq->vq) : vq->lazy_mark;
		if (avail != vq->lazy_mark &&
		    vq->lazy_put_off < VU_LAZY_PUT_OFF_MAX) {
			vq->lazy_mark = avail;
			vq->lazy_put_off++;
			lazy_arm(vu);
			continue;
		}
		vq->lazy_pending = false;
		vq->lazy_put_off = 0;
		vq->notify_pending = true;
	}
	notify_flush(vu);
}

void vu_queue_notify_lazy(struct vu *vu, unsigned q)
{
	struct vu_queue *vq;

	if (q >= vu->cfg.nqueues)
		return;
	vq = &vu->queues[q];
	if (!vq->lazy_pending && vq->started)
		vq->lazy_mark = vq_avail_mark(&vq->vq);
	vq->lazy_pending = true;
	lazy_arm(vu);
}

void vu_queue_notify_moderated(struct vu *vu, unsigned q, uint16_t used_before)
{
	struct vq *vq = vu_queue(vu, q);

	if (!vq || vq->used_idx == used_before)
		return;
	if (vq_driver_may_wait(vq, used_before))
		vu_queue_notify(vu, q);
	else
		vu_queue_notify_lazy(vu, q);
}

void vu_queue_notify(struct vu *vu, unsigned q)
{
	if (q >= vu->cfg.nqueues)
		return;
	vu->queues[q].notify_pending = true;
	if (!vu->notify_scheduled &&
	    vp_defer(vu->loop, notify_flush, vu) == 0)
		vu->notify_scheduled = true;
}

/* ---- connection ------------------------------------------------------- */

static void conn_close(struct vu *vu, bool tell_device)
{
	if (vu->conn_fd < 0)
		return;
	if (tell_device && vu->ops->disconnecting)
		vu->ops->disconnecting(vu->opaque);
	for (unsigned q = 0; q < vu->cfg.nqueues; q++)
		queue_reset(vu, q);
	mem_unmap(&vu->mem);
	vp_watch_free(vu->loop, vu->conn_watch);
	vu->conn_watch = NULL;
	close_fd(&vu->conn_fd);
	close_fd(&vu->backend_fd);
	for (unsigned i = 0; i < vu->nrfds; i++)
		close(vu->rfds[i]);
	vu->nrfds = 0;
	vu->rlen = 0;
	vu->features = 0;
	vu->protocol_features = 0;
	if (vu->listen_watch)
		vp_watch_set(vu->loop, vu->listen_watch, VP_EV_READ);
	vp_info("frontend disconnected");
	if (tell_device)
		vu->ops->disconnected(vu->opaque);
}

void vu_disconnect(struct vu *vu)
{
	conn_close(vu, true);
}

static int send_reply(struct vu *vu, uint32_t request, const void *payload,
		      uint32_t size)
{
	struct vu_msg_hdr hdr = {
		.request = request,
		.flags = VU_VERSION | VU_FLAG_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n = sendmsg(vu->conn_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

	/* Replies are tiny and the frontend waits for each one, so the socket
	 * buffer cannot be full unless the frontend misbehaves. */
	if (n != (ssize_t)(sizeof(hdr) + size))
		return -EIO;
	return 0;
}

static int send_u64(struct vu *vu, uint32_t request, uint64_t v)
{
	return send_reply(vu, request, &v, sizeof(v));
}

/* ---- request handlers -------------------------------------------------- */

/* What a handler tells the dispatcher: 0 success, -errno failure; replied
 * set when it sent its own reply (GET_* requests).  vq is the queue the
 * message names, for the per-queue shapes: check_msg() found it in range. */
struct req {
	struct vu *vu;
	const struct vu_msg *msg;
	int *fds;
	unsigned nfds;
	struct vu_queue *vq;
	bool replied;
};

/* Take ownership of the message's single fd, or -1 if none came. */
static int take_fd(struct req *r)
{
	int fd;

	if (r->nfds != 1)
		return -1;
	fd = r->fds[0];
	r->fds[0] = -1;
	return fd;
}

static unsigned req_queue(const struct req *r)
{
	return (unsigned)(r->vq - r->vu->queues);
}

static int h_get_features(struct req *r)
{
	r->replied = true;
	return send_u64(r->vu, r->msg->hdr.request,
			r->vu->cfg.features | (1ull << VU_F_PROTOCOL_FEATURES));
}

static int h_set_features(struct req *r)
{
	struct vu *vu = r->vu;
	uint64_t f = r->msg->payload.u64;
	uint64_t offered = vu->cfg.features | (1ull << VU_F_PROTOCOL_FEATURES);

	if (f & ~offered)
		return -EINVAL;
	/* A running ring keeps the features it started with: EVENT_IDX moves
	 * where the guest looks for notifications.  The same value again is
	 * harmless. */
	if (f != vu->features && any_started(vu))
		return -EBUSY;
	vu->features = f;
	for (unsigned q = 0; q < vu->cfg.nqueues; q++) {
		struct vq *vq = &vu->queues[q].vq;

		vq->event_idx = f & (1ull << VIRTIO_F_EVENT_IDX);
		vq->indirect = f & (1ull << VIRTIO_F_INDIRECT_DESC);
	}
	vu->ops->set_features(vu->opaque, f & ~(1ull << VU_F_PROTOCOL_FEATURES));
	return 0;
}

static int h_get_protocol_features(struct req *r)
{
	r->replied = true;
	return send_u64(r->vu, r->msg->hdr.request,
			r->vu->cfg.protocol_features);
}

static int h_set_protocol_features(struct req *r)
{
	uint64_t f = r->msg->payload.u64;

	if (f & ~r->vu->cfg.protocol_features)
		return -EINVAL;
	if (f != r->vu->protocol_features && any_started(r->vu))
		return -EBUSY;
	r->vu->protocol_features = f;
	return 0;
}

static int h_set_owner(struct req *r)
{
	(void)r; /* Any time, any number of times: nothing to own. */
	return 0;
}

static int h_reset_owner(struct req *r)
{
	struct vu *vu = r->vu;

	/* The VM reset its device: same as a new VM on this connection. */
	if (vu->ops->disconnecting)
		vu->ops->disconnecting(vu->opaque);
	for (unsigned q = 0; q < vu->cfg.nqueues; q++)
		queue_reset(vu, q);
	vu->features = 0;
	vu->ops->disconnected(vu->opaque);
	vu->ops->connected(vu->opaque);
	return 0;
}

static int h_get_queue_num(struct req *r)
{
	r->replied = true;
	return send_u64(r->vu, r->msg->hdr.request, r->vu->cfg.nqueues);
}

/* Every region non-empty with no end past 2^64, and no guest address in
 * two regions: a table that says two things about one address is refused
 * before anything is mapped.  User addresses may repeat (one piece of
 * frontend memory seen at two guest addresses). */
static int check_regions(const struct vu_mem_table *t)
{
	for (unsigned i = 0; i < t->nregions; i++) {
		const struct vu_mem_region *a = &t->regions[i];

		if (a->size == 0 || a->guest_addr > UINT64_MAX - a->size ||
		    a->user_addr > UINT64_MAX - a->size ||
		    a->mmap_offset > UINT64_MAX - a->size)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++) {
			const struct vu_mem_region *b = &t->regions[j];

			if (a->guest_addr < b->guest_addr + b->size &&
			    b->guest_addr < a->guest_addr + a->size)
				return -EINVAL;
		}
	}
	return 0;
}

/* m passed check_regions(). */
static int map_region(struct vq_mem_region *r, const struct vu_mem_region *m,
		      int fd)
{
	struct stat st;
	uint64_t len;
	void *p;

	/* Map from offset 0: mmap_offset need not be page aligned. */
	len = m->mmap_offset + m->size;
	if (len > SIZE_MAX)
		return -EINVAL;
	/* Touching a mapping beyond the end of its file is SIGBUS: a short
	 * file from the frontend must be refused here, not found later. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < len)
		return -EINVAL;
	p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->map = p;
	r->map_len = (size_t)len;
	r->host = (char *)p + m->mmap_offset;
	r->gpa = m->guest_addr;
	r->uva = m->user_addr;
	r->size = m->size;
	return 0;
}

static bool queue_rings_fit(const struct vq_mem *mem, const struct vu_queue *vq)
{
	return vq_rings_fit(mem, vq->num, vq->addr.desc_user_addr,
			    vq->addr.avail_user_addr, vq->addr.used_user_addr);
}

static int h_set_mem_table(struct req *r)
{
	struct vu *vu = r->vu;
	const struct vu_mem_table *t = &r->msg->payload.mem;
	struct vq_mem mem = { 0 };
	int rc;

	rc = check_regions(t);
	if (rc)
		return rc;
	for (unsigned i = 0; i < t->nregions; i++) {
		vp_debug("region %u: guest 0x%llx size 0x%llx user 0x%llx offset 0x%llx",
			 i, (unsigned long long)t->regions[i].guest_addr,
			 (unsigned long long)t->regions[i].size,
			 (unsigned long long)t->regions[i].user_addr,
			 (unsigned long long)t->regions[i].mmap_offset);
		rc = map_region(&mem.r[i], &t->regions[i], r->fds[i]);
		if (rc)
			goto err_unmap;
		mem.nregions++;
		rc = guard_add(mem.r[i].map, mem.r[i].map_len, vu->bus_fd);
		if (rc) {
			vp_warn("guest memory: no room left to guard region %u "
				"against SIGBUS; table refused",
				i);
			goto err_unmap;
		}
	}
	/* The spec lets a table change under running rings (memory
	 * hot-plug), but not pull memory from under one: that table is
	 * refused, and the old one and its rings go on. */
	for (unsigned q = 0; q < vu->cfg.nqueues; q++) {
		if (vu->queues[q].started &&
		    !queue_rings_fit(&mem, &vu->queues[q])) {
			vp_warn_rl("new memory table leaves running queue %u "
				   "outside guest memory: refused",
				   q);
			rc = -EINVAL;
			goto err_unmap;
		}
	}
	/* Stop rings that pointed into the old table; they restart below
	 * with the new mappings (the frontend may resend addresses too). */
	for (unsigned q = 0; q < vu->cfg.nqueues; q++)
		queue_pause(vu, q, false);
	mem_unmap(&vu->mem);
	vu->mem = mem;
	for (unsigned q = 0; q < vu->cfg.nqueues; q++) {
		queue_forget_rings(&vu->queues[q]);
		/* A ring this table completes but cannot hold is reported
		 * on its error fd; the table itself is fine. */
		(void)queue_maybe_start(vu, q);
	}
	return 0;

err_unmap:
	mem_unmap(&mem);
	return rc;
}

static int h_set_vring_num(struct req *r)
{
	uint32_t num = r->msg->payload.state.num;

	if (r->vq->started)
		return -EBUSY;
	if (num == 0 || num > VRING_MAX_SIZE || (num & (num - 1)))
		return -EINVAL;
	r->vq->num = num;
	return 0;
}

static int h_set_vring_addr(struct req *r)
{
	const struct vu_vring_addr *a = &r->msg->payload.addr;
	struct vu_queue *vq = r->vq;
	const struct vq_mem *mem = &r->vu->mem;

	if (vq->started)
		return -EBUSY;
	/* Checked now against what is known, so that the frontend hears of
	 * a bad address from the request that carried it; checked again
	 * when the ring starts (the table or the size may change first). */
	if (!vq_rings_aligned(a->desc_user_addr, a->avail_user_addr,
			      a->used_user_addr))
		return -EINVAL;
	if (mem->nregions && vq->num &&
	    !vq_rings_fit(mem, vq->num, a->desc_user_addr, a->avail_user_addr,
			  a->used_user_addr))
		return -EINVAL;
	vq->addr = *a;
	vq->addr_set = true;
	return queue_maybe_start(r->vu, req_queue(r));
}

static int h_set_vring_base(struct req *r)
{
	if (r->vq->started)
		return -EBUSY;
	if (r->msg->payload.state.num > UINT16_MAX)
		return -EINVAL;
	r->vq->base = (uint16_t)r->msg->payload.state.num;
	return 0;
}

static int h_get_vring_base(struct req *r)
{
	struct vu_queue *vq = r->vq;
	struct vu_vring_state st = {
		.index = req_queue(r),
		.num = vq->started ? vq->vq.last_avail : vq->base,
	};

	r->replied = true;
	/* "Stops the ring": the frontend takes it back. */
	queue_reset(r->vu, req_queue(r));
	return send_reply(r->vu, r->msg->hdr.request, &st, sizeof(st));
}

static int h_set_vring_kick(struct req *r)
{
	struct vu_queue *vq = r->vq;
	unsigned q = req_queue(r);
	int fd = take_fd(r);

	/* Polling mode (NOFD) would need busy polling: not offered. */
	if (fd < 0)
		return -EOPNOTSUPP;
	queue_pause(r->vu, q, true);
	vp_watch_free(r->vu->loop, vq->kick_watch);
	vq->kick_watch = NULL;
	close_fd(&vq->kick_fd);
	vq->kick_set = false;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* The watch is made here, paused, so that the frontend hears of a
	 * failure now (REPLY_ACK) rather than a queue never starting. */
	vq->kick_watch = vp_watch_new(r->vu->loop, fd, 0, kick_cb, vq);
	if (!vq->kick_watch) {
		close(fd);
		return -ENOMEM;
	}
	vq->kick_fd = fd;
	vq->kick_set = true;
	/* Without protocol features a ring is enabled by its kick fd. */
	if (!has_protocol_features(r->vu))
		vq->enabled = true;
	/* The kick fd itself is taken whatever the rings are: a ring that
	 * cannot start (its addresses) is reported on its error fd and waits
	 * for a SET_VRING_ADDR that fits. */
	queue_maybe_start(r->vu, q);
	return 0;
}

static int h_set_vring_call(struct req *r)
{
	struct vu_queue *vq = r->vq;
	int fd = take_fd(r); /* -1 with NOFD: no interrupts */

	close_fd(&vq->call_fd);
	if (fd >= 0)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	vq->call_fd = fd;
	/* The guest may have missed an interrupt while we had no call fd. */
	vq->vq.signalled_used_valid = false;
	return 0;
}

static int h_set_vring_err(struct req *r)
{
	struct vu_queue *vq = r->vq;
	int fd = take_fd(r);

	close_fd(&vq->err_fd);
	if (fd >= 0)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	vq->err_fd = fd;
	vq->err_reported = false;
	return 0;
}

static int h_set_vring_enable(struct req *r)
{
	struct vu_queue *vq = r->vq;

	/* Without protocol features rings are enabled by their kick fd and
	 * this request does not exist (it is also too early: the features
	 * a ring starts with are not known yet). */
	if (!has_protocol_features(r->vu))
		return -EPROTO;
	if (r->msg->payload.state.num > 1)
		return -EINVAL;
	vq->enabled = r->msg->payload.state.num;
	if (vq->enabled) {
		int rc = queue_maybe_start(r->vu, req_queue(r));

		/* Refused: the ring stays disabled (a later good address
		 * must not start it behind the frontend's back). */
		if (rc)
			vq->enabled = false;
		return rc;
	}
	queue_pause(r->vu, req_queue(r), true);
	return 0;
}

static int h_get_config(struct req *r)
{
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} reply = {.hdr = r->msg->payload.config.hdr};
	uint32_t len = reply.hdr.size;
	int rc;

	r->replied = true;
	/* The config bytes start at data[0]; UML asks for offset 0 and size
	 * offset+len and copies from data[offset] itself. */
	rc = r->vu->ops->get_config(r->vu->opaque, reply.hdr.offset, reply.data,
				    len);
	if (rc) {
		/* A zero-size reply is how a backend says "failed". */
		send_reply(r->vu, r->msg->hdr.request, NULL, 0);
		return rc;
	}
	return send_reply(r->vu, r->msg->hdr.request, &reply,
			  (uint32_t)sizeof(reply.hdr) + len);
}

static int h_set_config(struct req *r)
{
	const struct vu_config_hdr *h = &r->msg->payload.config.hdr;

	return r->vu->ops->set_config(r->vu->opaque, h->offset,
				      r->msg->payload.config.data, h->size);
}

static int h_set_backend_req_fd(struct req *r)
{
	close_fd(&r->vu->backend_fd);
	r->vu->backend_fd = take_fd(r);
	return 0;
}

/*
 * What a request's payload and fds must be, as the spec gives them.
 * check_msg() holds each message to its shape before the handler runs, so
 * a malformed message changes nothing, and its fds are closed.
 */
enum shape {
	SHAPE_NONE,	 /* no payload */
	SHAPE_U64,	 /* exactly 8 bytes */
	SHAPE_STATE,	 /* struct vu_vring_state naming one of our queues */
	SHAPE_ADDR,	 /* struct vu_vring_addr naming one of our queues */
	SHAPE_VRING_FD,	 /* u64: queue index | NOFD; one fd unless NOFD */
	SHAPE_MEM_TABLE, /* nregions, padding, whole slots, at least nregions
			    of them (UML sends 2, QEMU nregions, at most 8);
			    one fd per region */
	SHAPE_CONFIG,	 /* struct vu_config_hdr, then exactly its size bytes,
			    the range inside VU_MAX_CONFIG_SIZE */
};

/* How a request is answered, which is how a malformed one is refused. */
enum answer {
	ANSWER_ACK,    /* nothing, or the REPLY_ACK u64: a failure ack */
	ANSWER_VALUE,  /* a value with no failure form: the spec's
			  "back-end may close the connection" */
	ANSWER_CONFIG, /* GET_CONFIG: an empty payload means failure */
};

struct handler {
	const char *name;
	int (*fn)(struct req *r);
	enum shape shape;
	bool one_fd; /* SHAPE_NONE: exactly one fd comes along (else none) */
	enum answer answer;
};

/* SHAPE_MEM_TABLE: nregions (1..8), padding, then whole region slots,
 * at least nregions of them; one fd per region. */
static bool mem_table_ok(const struct vu_msg *m, unsigned nfds)
{
	uint32_t size = m->hdr.size, slots;

	if (size < VU_MEM_TABLE_HDR_SIZE)
		return false;
	size -= VU_MEM_TABLE_HDR_SIZE;
	if (size % sizeof(struct vu_mem_region))
		return false;
	slots = size / sizeof(struct vu_mem_region);
	return m->payload.mem.nregions >= 1 &&
	       m->payload.mem.nregions <= slots &&
	       slots <= VU_MAX_MEM_REGIONS && nfds == m->payload.mem.nregions;
}

/* SHAPE_CONFIG: the header, then exactly the bytes it announces, for a
 * range inside VU_MAX_CONFIG_SIZE; no fd. */
static bool config_ok(const struct vu_msg *m, unsigned nfds)
{
	uint32_t off = m->payload.config.hdr.offset;
	uint32_t len = m->payload.config.hdr.size;

	if (m->hdr.size < sizeof(struct vu_config_hdr) || nfds)
		return false;
	if (len > VU_MAX_CONFIG_SIZE || off > VU_MAX_CONFIG_SIZE - len)
		return false;
	return m->hdr.size == sizeof(struct vu_config_hdr) + len;
}

/* The queue a per-queue message names, or NULL if it is out of range. */
static struct vu_queue *named_queue(struct vu *vu, uint64_t index)
{
	return index < vu->cfg.nqueues ? &vu->queues[index] : NULL;
}

/* 0, or -EINVAL: the message does not have its request's shape.  Sets
 * r->vq for the per-queue shapes. */
static int check_msg(struct req *r, const struct handler *h)
{
	const struct vu_msg *m = r->msg;
	uint32_t size = m->hdr.size;
	uint64_t v = m->payload.u64;
	bool ok = false;

	switch (h->shape) {
	case SHAPE_NONE:
		ok = size == 0 && r->nfds == (h->one_fd ? 1u : 0u);
		break;
	case SHAPE_U64:
		ok = size == sizeof(uint64_t) && r->nfds == 0;
		break;
	case SHAPE_STATE:
		r->vq = named_queue(r->vu, m->payload.state.index);
		ok = size == sizeof(struct vu_vring_state) && r->nfds == 0 &&
		     r->vq;
		break;
	case SHAPE_ADDR:
		r->vq = named_queue(r->vu, m->payload.addr.index);
		ok = size == sizeof(struct vu_vring_addr) && r->nfds == 0 &&
		     r->vq;
		break;
	case SHAPE_VRING_FD:
		r->vq = named_queue(r->vu, v & VU_VRING_IDX_MASK);
		ok = size == sizeof(uint64_t) && r->vq &&
		     !(v &
		       ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD_MASK)) &&
		     r->nfds == (v & VU_VRING_NOFD_MASK ? 0u : 1u);
		break;
	case SHAPE_MEM_TABLE:
		ok = mem_table_ok(m, r->nfds);
		break;
	case SHAPE_CONFIG:
		ok = config_ok(m, r->nfds);
		break;
	}
	return ok ? 0 : -EINVAL;
}

#define REQ(req, fn_, shape_)                                                  \
	[VU_REQ_##req] = { .name = #req, .fn = fn_, .shape = shape_ }

static const struct handler handlers[VU_REQ_MAX] = {
	REQ(SET_FEATURES, h_set_features, SHAPE_U64),
	REQ(SET_OWNER, h_set_owner, SHAPE_NONE),
	REQ(RESET_OWNER, h_reset_owner, SHAPE_NONE),
	REQ(SET_MEM_TABLE, h_set_mem_table, SHAPE_MEM_TABLE),
	REQ(SET_LOG_BASE, NULL, SHAPE_NONE), /* not offered */
	REQ(SET_LOG_FD, NULL, SHAPE_NONE),   /* not offered */
	REQ(SET_VRING_NUM, h_set_vring_num, SHAPE_STATE),
	REQ(SET_VRING_ADDR, h_set_vring_addr, SHAPE_ADDR),
	REQ(SET_VRING_BASE, h_set_vring_base, SHAPE_STATE),
	REQ(SET_VRING_KICK, h_set_vring_kick, SHAPE_VRING_FD),
	REQ(SET_VRING_CALL, h_set_vring_call, SHAPE_VRING_FD),
	REQ(SET_VRING_ERR, h_set_vring_err, SHAPE_VRING_FD),
	REQ(SET_PROTOCOL_FEATURES, h_set_protocol_features, SHAPE_U64),
	REQ(SET_VRING_ENABLE, h_set_vring_enable, SHAPE_STATE),
	REQ(SET_CONFIG, h_set_config, SHAPE_CONFIG),
	[VU_REQ_SET_BACKEND_REQ_FD] = { .name = "SET_BACKEND_REQ_FD",
					.fn = h_set_backend_req_fd,
					.shape = SHAPE_NONE,
					.one_fd = true },
	/* Answered with a value that has no failure form. */
	[VU_REQ_GET_FEATURES] = { .name = "GET_FEATURES",
				  .fn = h_get_features,
				  .shape = SHAPE_NONE,
				  .answer = ANSWER_VALUE },
	[VU_REQ_GET_PROTOCOL_FEATURES] = { .name = "GET_PROTOCOL_FEATURES",
					   .fn = h_get_protocol_features,
					   .shape = SHAPE_NONE,
					   .answer = ANSWER_VALUE },
	[VU_REQ_GET_QUEUE_NUM] = { .name = "GET_QUEUE_NUM",
				   .fn = h_get_queue_num,
				   .shape = SHAPE_NONE,
				   .answer = ANSWER_VALUE },
	[VU_REQ_GET_VRING_BASE] = { .name = "GET_VRING_BASE",
				    .fn = h_get_vring_base,
				    .shape = SHAPE_STATE,
				    .answer = ANSWER_VALUE },
	[VU_REQ_GET_CONFIG] = { .name = "GET_CONFIG",
				.fn = h_get_config,
				.shape = SHAPE_CONFIG,
				.answer = ANSWER_CONFIG },
};

#undef REQ

const char *vu_request_name(uint32_t request)
{
	if (request < VU_REQ_MAX && handlers[request].name)
		return handlers[request].name;
	return "UNKNOWN";
}

/* Handle one complete message in vu->rbuf with vu->rfds.  Returns -EPROTO
 * when the connection cannot go on. */
static int dispatch(struct vu *vu)
{
	const struct vu_msg *msg = (const struct vu_msg *)vu->rbuf;
	uint32_t request = msg->hdr.request;
	const struct handler *h = request < VU_REQ_MAX ? &handlers[request] : NULL;
	struct req r = {
		.vu = vu, .msg = msg, .fds = vu->rfds, .nfds = vu->nrfds,
	};
	bool need_reply = msg->hdr.flags & VU_FLAG_NEED_REPLY;
	bool drop = false;
	int rc;

	if (!h || !h->fn) {
		vp_warn_rl("frontend sent unsupported request %u (%s)",
			   request, vu_request_name(request));
		rc = -EOPNOTSUPP;
	} else if ((rc = check_msg(&r, h)) != 0) {
		vp_warn_rl("frontend sent a malformed %s (%u payload bytes, "
			   "%u fds)%s",
			   h->name, msg->hdr.size, vu->nrfds,
			   h->answer == ANSWER_VALUE ? ": it has no failure "
						       "reply, disconnecting"
						     : "");
		if (h->answer == ANSWER_VALUE)
			drop = true;
		else if (h->answer == ANSWER_CONFIG) {
			r.replied = true;
			if (send_reply(vu, request, NULL, 0) < 0)
				rc = -EIO;
		}
	} else {
		vp_trace("frontend: %s (size %u, %u fds, flags 0x%x)", h->name,
			 msg->hdr.size, vu->nrfds, msg->hdr.flags);
		rc = h->fn(&r);
		if (rc && rc != -EIO)
			vp_warn_rl("frontend request %s failed: %s", h->name,
				   strerror(-rc));
	}
	/* Fds the handler did not take are not ours to keep. */
	for (unsigned i = 0; i < vu->nrfds; i++)
		if (vu->rfds[i] >= 0)
			close(vu->rfds[i]);
	vu->nrfds = 0;
	if (drop || vu->conn_fd < 0)
		return -EPROTO; /* malformed GET, or the handler dropped it */
	if (r.replied)
		return rc == -EIO ? -EPROTO : 0;
	/* REPLY_ACK: honour NEED_REPLY per message, whatever was negotiated
	 * (UML sets it on the SET_PROTOCOL_FEATURES that negotiates it). */
	if (need_reply && send_u64(vu, request, rc ? 1 : 0) < 0)
		return -EPROTO;
	return 0;
}

/* Read what the socket has, dispatching every complete message.  Bounded
 * per call so a chatty frontend cannot starve the rest of the loop. */
static void conn_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct vu *vu = opaque;

	(void)w;
	(void)revents;
	for (unsigned budget = 64; budget && vu->conn_fd >= 0; budget--) {
		const struct vu_msg_hdr *hdr = (const struct vu_msg_hdr *)vu->rbuf;
		size_t want = vu->rlen < VU_HDR_SIZE ? VU_HDR_SIZE - vu->rlen
						     : VU_HDR_SIZE + hdr->size - vu->rlen;
		char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct iovec iov = { vu->rbuf + vu->rlen, want };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(vu->conn_fd, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_close(vu, true);
			return;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			unsigned nfd;
			int *fds = (int *)CMSG_DATA(c);

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			nfd = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (unsigned i = 0; i < nfd; i++) {
				if (vu->nrfds < VU_MAX_FDS)
					vu->rfds[vu->nrfds++] = fds[i];
				else
					close(fds[i]);
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			vp_warn_rl("frontend sent more fds than a message may carry");
		vu->rlen += (size_t)n;
		if (vu->rlen == VU_HDR_SIZE) {
			if ((hdr->flags & VU_VERSION_MASK) != VU_VERSION ||
			    hdr->size > VU_MAX_PAYLOAD) {
				vp_warn_rl("frontend protocol error: version %u, "
					"payload %u bytes; disconnecting",
					hdr->flags & VU_VERSION_MASK, hdr->size);
				conn_close(vu, true);
				return;
			}
		}
		if (vu->rlen < VU_HDR_SIZE || vu->rlen < VU_HDR_SIZE + hdr->size)
			continue;
		/* Zero what the message did not send, so short payloads read
		 * as zeros, never as the previous message's bytes. */
		memset(vu->rbuf + vu->rlen, 0, sizeof(vu->rbuf) - vu->rlen);
		vu->rlen = 0;
		if (dispatch(vu) < 0) {
			conn_close(vu, true);
			return;
		}
	}
}

static void bus_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct vu *vu = opaque;
	uint64_t v;

	(void)w;
	(void)revents;
	if (read(vu->bus_fd, &v, sizeof(v)) < 0)
		return;
	vp_warn_rl("the frontend's guest memory shrank under us: disconnecting it");
	conn_close(vu, true);
}

static void accept_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct vu *vu = opaque;
	int fd;

	(void)w;
	(void)revents;
	fd = accept4(vu->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			vp_warn_rl("accept: %s", strerror(errno));
		return;
	}
	if (vu->conn_fd >= 0) {
		/* One VM per device; a second one must not hang waiting. */
		vp_warn_rl("refusing a second frontend while one is connected");
		close(fd);
		return;
	}
	vu_attach_fd(vu, fd);
}

int vu_attach_fd(struct vu *vu, int fd)
{
	if (vu->conn_fd >= 0) {
		close(fd);
		return -EBUSY;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	vu->conn_watch = vp_watch_new(vu->loop, fd, VP_EV_READ, conn_cb, vu);
	if (!vu->conn_watch) {
		close(fd);
		return -ENOMEM;
	}
	vu->conn_fd = fd;
	vu->rlen = 0;
	vp_info("frontend connected");
	vu->ops->connected(vu->opaque);
	return 0;
}

static int listen_start(struct vu *vu, int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	vu->listen_watch = vp_watch_new(vu->loop, fd, VP_EV_READ, accept_cb, vu);
	if (!vu->listen_watch)
		return -ENOMEM;
	vu->listen_fd = fd;
	return 0;
}

int vu_listen_fd(struct vu *vu, int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -ENOTSOCK;
	return listen_start(vu, fd);
}

/* Does some process accept connections on this unix socket? */
static bool socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
		errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return alive;
}

/* The socket we just bound at path: its group, without following a
 * symlink (or anything else) someone may have put in its place; its
 * device and inode into *st. */
static int socket_chgrp(const char *path, gid_t gid, struct stat *st)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		rc = -errno;
	else if (!S_ISSOCK(st->st_mode))
		rc = -EEXIST;
	else if (gid != (gid_t)-1 &&
		 fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int vu_listen_path(struct vu *vu, const char *path, mode_t mode, gid_t gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket from a dead daemon is replaced; a live one (some
	 * daemon answers on it) or anything that is not a socket is left
	 * alone. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			goto err_close;
		}
		if (socket_alive(&sa)) {
			rc = -EADDRINUSE;
			goto err_close;
		}
		unlink(path);
	}
	/* Born with its mode: never wider than asked, not even for a
	 * moment, and no chmod by path to race with. */
	old_mask = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc < 0) {
		rc = -errno;
		goto err_close;
	}
	rc = socket_chgrp(path, gid, &st);
	if (rc)
		goto err_unlink;
	if (listen(fd, 4) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	vu->socket_path = strdup(path);
	if (!vu->socket_path) {
		rc = -ENOMEM;
		goto err_unlink;
	}
	vu->socket_dev = st.st_dev;
	vu->socket_ino = st.st_ino;
	rc = listen_start(vu, fd);
	if (rc)
		goto err_free_path;
	return 0;

err_free_path:
	free(vu->socket_path);
	vu->socket_path = NULL;
err_unlink:
	unlink(path);
err_close:
	close(fd);
	return rc;
}

struct vu *vu_new(struct vp_loop *loop, const struct vu_config *cfg,
		  const struct vu_device_ops *ops, void *opaque)
{
	struct vu *vu;

	if (cfg->nqueues == 0 || cfg->nqueues > MAX_QUEUES)
		return NULL;
	vu = calloc(1, sizeof(*vu));
	if (!vu)
		return NULL;
	vu->queues = calloc(cfg->nqueues, sizeof(*vu->queues));
	if (!vu->queues) {
		free(vu);
		return NULL;
	}
	vu->loop = loop;
	vu->cfg = *cfg;
	vu->ops = ops;
	vu->opaque = opaque;
	vu->listen_fd = -1;
	vu->conn_fd = -1;
	vu->backend_fd = -1;
	vu->bus_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vu->bus_fd < 0)
		goto err_free_queues;
	vu->bus_watch = vp_watch_new(loop, vu->bus_fd, VP_EV_READ, bus_cb, vu);
	if (!vu->bus_watch)
		goto err_close_bus;
	vu->lazy_timer = vp_timer_new(loop, lazy_cb, vu);
	if (!vu->lazy_timer)
		goto err_free_watch;
	guard_install();
	for (unsigned q = 0; q < cfg->nqueues; q++) {
		vu->queues[q].vu = vu;
		vu->queues[q].kick_fd = -1;
		vu->queues[q].call_fd = -1;
		vu->queues[q].err_fd = -1;
	}
	return vu;

err_free_watch:
	vp_watch_free(loop, vu->bus_watch);
err_close_bus:
	close(vu->bus_fd);
err_free_queues:
	free(vu->queues);
	free(vu);
	return NULL;
}

void vu_free(struct vu *vu)
{
	if (!vu)
		return;
	conn_close(vu, false);
	if (vu->notify_scheduled)
		vp_defer_cancel(vu->loop, notify_flush, vu);
	vp_timer_free(vu->loop, vu->lazy_timer);
	vp_watch_free(vu->loop, vu->listen_watch);
	close_fd(&vu->listen_fd);
	vp_watch_free(vu->loop, vu->bus_watch);
	close_fd(&vu->bus_fd);
	if (vu->socket_path) {
		struct stat st;

		if (stat(vu->socket_path, &st) == 0 &&
		    st.st_dev == vu->socket_dev && st.st_ino == vu->socket_ino)
			unlink(vu->socket_path);
		free(vu->socket_path);
	}
	free(vu->queues);
	free(vu);
}

bool vu_connected(const struct vu *vu)
{
	return vu->conn_fd >= 0;
}

uint64_t vu_features(const struct vu *vu)
{
	return vu->features;
}

unsigned vu_nqueues(const struct vu *vu)
{
	return vu->cfg.nqueues;
}

struct vq *vu_queue(struct vu *vu, unsigned q)
{
	return q < vu->cfg.nqueues ? &vu->queues[q].vq : NULL;
}

bool vu_queue_started(const struct vu *vu, unsigned q)
{
	return q < vu->cfg.nqueues && vu->queues[q].started;
}

const struct vq_mem *vu_mem(const struct vu *vu)
{
	return &vu->mem;
}
