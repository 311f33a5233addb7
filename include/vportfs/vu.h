/*
 * vhost-user backend: speaks the protocol on a unix socket, owns the guest
 * memory mappings, the virtqueues and their kick/call fds, and hands the
 * device (src/device/virtio_serial.c) kicks and config accesses through
 * struct vu_device_ops.
 *
 * It knows no device semantics and no event loop: fd watches go through the
 * injected struct vp_loop.  One frontend at a time; when it goes away every
 * queue stops, memory is unmapped, the device is told (disconnected) and the
 * next connection is a fresh device.  A malformed or out-of-order request
 * is refused (a failure ack) and changes nothing; one whose reply has no
 * failure form (GET_FEATURES, GET_VRING_BASE, ...), a bad header or a
 * memory file that shrinks ends that connection, never the daemon.
 */
#ifndef VPORTFS_VU_H
#define VPORTFS_VU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vportfs/loop.h"
#include "vportfs/vq.h"

struct vu;

struct vu_device_ops {
	/* Fill buf with config bytes [off, off+len); the range was checked to
	 * lie within VU_MAX_CONFIG_SIZE.  0 or -errno (failure reply). */
	int (*get_config)(void *opaque, uint32_t off, uint8_t *buf,
			  uint32_t len);
	int (*set_config)(void *opaque, uint32_t off, const uint8_t *buf,
			  uint32_t len);
	/* The driver accepted these virtio features (bit 30 removed). */
	void (*set_features)(void *opaque, uint64_t features);
	/* Queue `q` has new buffers, or was (re)started: look at it. */
	void (*queue_kick)(void *opaque, unsigned q);
	/* Queue `q` is stopping.  keep: only paused (disabled, new kick fd):
	 * the ring and the memory stay, so popped elements stay valid and may
	 * be pushed once it runs again.  !keep (GET_VRING_BASE, new memory
	 * table, reset, disconnect): push back what it popped now, while the
	 * queue and its memory are still there; they will not be after.
	 * Optional: NULL for a device that keeps no popped element. */
	void (*queue_stop)(void *opaque, unsigned q, bool keep);
	/* The frontend is going (EOF, protocol error, RESET_OWNER): queues
	 * and memory are still mapped, for a last look.  The device may pop
	 * (vq_pop pushes malformed chains back itself); what it pops need
	 * not be returned, and nothing is notified.  Optional. */
	void (*disconnecting)(void *opaque);
	/* A frontend connected / went away (the VM started / died). */
	void (*connected)(void *opaque);
	void (*disconnected)(void *opaque);
};

struct vu_config {
	uint64_t features;          /* virtio device features to offer */
	uint64_t protocol_features; /* VU_PROTOCOL_F_* to offer */
	unsigned nqueues;
};

/* NULL on allocation failure.  ops and opaque must outlive the vu. */
struct vu *vu_new(struct vp_loop *loop, const struct vu_config *cfg,
		  const struct vu_device_ops *ops, void *opaque);
/* Disconnects any frontend (without calling ops->disconnected), stops
 * listening, unlinks the socket it created.  NULL is accepted. */
void vu_free(struct vu *vu);

/* Listen on a new socket at path, created with `mode` (permission bits;
 * vportfs's default 0600) and, unless gid is (gid_t)-1, given that group
 * (without following whatever may have replaced it at path).  A stale
 * socket is replaced; a live one (-EADDRINUSE) or anything that is not a
 * socket (-EEXIST) is left alone.  0 or -errno. */
int vu_listen_path(struct vu *vu, const char *path, mode_t mode, gid_t gid);
/* Listen on an inherited listening socket (socket activation). */
int vu_listen_fd(struct vu *vu, int fd);
/* Serve an already connected frontend socket (tests; takes ownership). */
int vu_attach_fd(struct vu *vu, int fd);
/* Drop the current frontend, as if it had gone away. */
void vu_disconnect(struct vu *vu);

bool vu_connected(const struct vu *vu);
uint64_t vu_features(const struct vu *vu); /* negotiated */
unsigned vu_nqueues(const struct vu *vu);

/* The queue, or NULL if q is out of range.  A queue is usable (has rings,
 * a kick fd or enable) only while vu_queue_started(). */
struct vq *vu_queue(struct vu *vu, unsigned q);
bool vu_queue_started(const struct vu *vu, unsigned q);
const struct vq_mem *vu_mem(const struct vu *vu);

/* The guest may need an interrupt for what was pushed on q: sent before
 * the loop next sleeps, once per queue, if vq_should_notify() agrees. */
void vu_queue_notify(struct vu *vu, unsigned q);

/*
 * The same for a queue whose used ring the guest polls itself: a console's
 * transmit queue, where Linux spins until each buffer comes back (hvc
 * writes hold a lock).  The decision waits at most VU_LAZY_NOTIFY_MS (one
 * timer serves every queue), by when the spinning guest has taken the
 * buffers and moved its used_event past them: no interrupt, where an
 * immediate one would have found nothing to do (a console flood of such
 * interrupts makes Linux disable the shared IRQ: "nobody cared").  A
 * guest that does wait gets its interrupt that much later; without
 * EVENT_IDX the interrupt always goes.
 *
 * A guest whose avail index moved during the wait posted: it is writing,
 * not waiting, and the decision is put off by another VU_LAZY_NOTIFY_MS.
 * It is taken when the index stays put for one wait, when the ring stops,
 * or after VU_LAZY_PUT_OFF_MAX put-offs in a row, whichever comes first:
 * at most (VU_LAZY_PUT_OFF_MAX + 1) * VU_LAZY_NOTIFY_MS = 33 ms after it
 * was asked for.  This serves both users of the lazy path.  Linux asks
 * for an interrupt at the first buffer back after each reclaim (its
 * used_event), so a streaming writer on a generic port, whose latest
 * buffer always comes back after its latest reclaim, got one every
 * VU_LAZY_NOTIFY_MS: a SIGIO each to a UML guest, 450-523 per 256 MiB of
 * dd against 24-27 now (docs/performance.md, the UML row).  The bound,
 * in waits of VU_LAZY_NOTIFY_MS, keeps a driver we do not know from
 * waiting long for an interrupt it asked for while it goes on posting.
 */
#define VU_LAZY_NOTIFY_MS 1
#define VU_LAZY_PUT_OFF_MAX 32
void vu_queue_notify_lazy(struct vu *vu, unsigned q);

/*
 * After pushing chains on a queue whose driver takes its used buffers back
 * by itself before each add (a generic port's transmit queue: Linux's
 * virtio_console reclaims in every write and wants an interrupt only to
 * wake a writer that found the ring full): the interrupt is sent at once
 * if the driver may be waiting for room (vq_driver_may_wait since
 * used_before, the used index before the pushes), else as
 * vu_queue_notify_lazy, by when a streaming driver has taken the buffers
 * back and moved used_event past them.  Interrupt moderation: a guest
 * writing a stream costs no interrupt per buffer, a blocked writer still
 * wakes at once.
 */
void vu_queue_notify_moderated(struct vu *vu, unsigned q, uint16_t used_before);

/* Name of a request, for logs. */
const char *vu_request_name(uint32_t request);

#endif
