/*
 * sim: a simulated virtio-console guest for tests and benchmarks.
 *
 * One `struct sim` is a vhost-user *frontend* (the VMM side of the socket)
 * plus a user-space virtio-console *driver* that behaves like Linux's
 * drivers/char/virtio_console.c.  It owns the guest memory (a memfd), builds
 * the split rings in it, negotiates like User-Mode-Linux does, answers the
 * device's control messages and moves port data through the rings.
 *
 * The design choice that matters: the sim trusts nothing the device sends.
 * Every used element, length, reply header and control message is checked,
 * and a violation is recorded as a "device bug" (sticky, see sim_bug()):
 * the daemon under test is the thing being tested.  Faults the *driver*
 * could commit are not checked here; they are offered on purpose through
 * the sim_raw_*() fault-injection helpers.
 *
 * Single-threaded and deterministic: nothing happens behind the caller's
 * back.  Device input (call notifications, backend requests, disconnects)
 * is handled only inside sim_process(), sim_wait() and the calls that wait
 * for a vhost-user reply.  No function blocks longer than the timeout it is
 * given (or the sim's reply/control timeouts, see struct sim_opts).
 *
 * Errors: actions return 0 (or a count) on success and -errno on failure;
 * the reason is then in sim_error() until the next failing call.  -EPROTO
 * always means "device bug recorded" (see sim_bug()), -ENOTCONN "the
 * vhost-user connection is gone".
 */
#ifndef VPORTFS_SIM_H
#define VPORTFS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vportfs/vhost_user_proto.h"
#include "vportfs/virtio_proto.h"

struct sim;

/* Guest-physical address of the single memory region.  Deliberately not 0:
 * addresses below it are invalid, like a UML guest's unshared kernel
 * memory, so a device that dereferences small addresses is caught. */
#define SIM_DEFAULT_GUEST_BASE 0x100000ull
/* user_addr - guest_addr of the region, so that a device mixing up ring
 * (user) and buffer (guest) addresses breaks at once. */
#define SIM_DEFAULT_USER_OFFSET 0x7f0000000000ull
/* sim_opts.rx_bufs: fill the receive queue. */
#define SIM_RX_FILL UINT32_MAX

struct sim_opts {
	/* Guest memory: size in bytes (default 64 MiB), guest-physical base,
	 * user_addr offset, and mmap_offset of the region inside the memfd
	 * (page-aligned; the memfd is mmap_offset + mem_size bytes). */
	uint64_t mem_size;
	uint64_t guest_base;
	uint64_t user_offset;
	uint64_t mmap_offset;
	/* SET_MEM_TABLE payload slots: 1 (QEMU sends 8 + 32 bytes), 2 (UML,
	 * 72 bytes, default) or 8 (the whole struct, 264 bytes). */
	unsigned mem_table_slots;

	unsigned queue_size; /* power of two, 1..32768; default 256 */
	/* Ports to set queues up for: 0 = max_nr_ports from the config,
	 * capped at 31 (UML's limit, 64 queues). */
	unsigned max_ports;

	/* Features and protocol features the sim asks for when offered. */
	bool event_idx;	   /* VIRTIO_F_EVENT_IDX (default true) */
	bool indirect;	   /* VIRTIO_F_INDIRECT_DESC (default true) */
	bool reply_ack;	   /* PROTOCOL_F_REPLY_ACK (default true) */
	bool backend_req;  /* PROTOCOL_F_BACKEND_REQ (default true) */
	bool mq;	   /* PROTOCOL_F_MQ + GET_QUEUE_NUM (default true) */
	bool call_eventfd; /* call fds: eventfd instead of socketpair */
	/* Message order.  true (default): UML's, i.e. SET_FEATURES before
	 * GET_CONFIG, and CALL/NUM/BASE/ADDR for every queue before
	 * KICK/ENABLE for every queue.  false: GET_CONFIG before SET_FEATURES
	 * and NUM/BASE/ADDR/CALL/KICK/ENABLE queue by queue. */
	bool uml_order;

	/* Receive buffers posted per port on PORT_ADD: count (SIM_RX_FILL,
	 * the default, fills the queue like Linux's fill_queue; 0 posts none,
	 * so the device sees a guest without buffers until
	 * sim_port_rx_post()) and size (default 4096).  With
	 * rx_seg_size > 0 each buffer is a chain of segments of that size
	 * (indirect when negotiated), separated in memory by canaries. */
	unsigned rx_bufs;
	uint32_t rx_buf_size;
	uint32_t rx_seg_size;
	/* Transmit: bytes per TX buffer (default 32768, Linux's per-write
	 * cap) and optional segment size, as for rx. */
	uint32_t tx_buf_size;
	uint32_t tx_seg_size;

	/* Like Linux, wait (spin) until the device returns each control-tx
	 * buffer; a buffer not returned within ctrl_timeout_ms is a device
	 * bug (a real guest would spin forever).  false: fire and forget. */
	bool ctrl_sync;
	int ctrl_timeout_ms;  /* default 1000 */
	int reply_timeout_ms; /* vhost-user replies, default 5000 */
	/* Like Linux: data arriving on a closed generic port is discarded. */
	bool discard_when_closed;
	/* Record a device bug when a used ring advanced past used_event
	 * (or with interrupts enabled) and no call came for 500 ms. */
	bool check_missed_calls;
	/* Reap every used ring on every sim_process(), not only after a
	 * call: hides missing notifications (then they are only reported). */
	bool poll_used;
	/* TX queues ask for the call only when 3/4 of the buffers in flight
	 * are used (EVENT_IDX only), like virtqueue_enable_cb_delayed(). */
	bool tx_event_delay;
	/* Trace every vhost-user and control message on stderr. */
	bool verbose;
};

/* Fills *opts with the defaults documented above. */
void sim_opts_default(struct sim_opts *opts);

/* Constructor: allocates the guest memory.  opts is copied (NULL =
 * defaults).  Returns NULL on bad options or allocation failure, with
 * errno set. */
struct sim *sim_new(const struct sim_opts *opts);
/* Closes everything; accepts NULL. */
void sim_free(struct sim *sim);

/* Connects to the daemon's unix socket, retrying ENOENT/ECONNREFUSED for
 * up to connect_timeout_ms ("fd:N": socket N is already connected; the
 * sim owns it from then on), then does the whole handshake: vhost-user
 * negotiation, memory table, every queue, control-rx buffers and
 * DEVICE_READY.  Port announcements arrive later, through sim_process().
 * May be called once per sim. */
int sim_connect(struct sim *sim, const char *path, int connect_timeout_ms);
/* Closes the vhost-user socket and every ring fd, like a VM that dies.
 * Port state stays readable; everything that needs the device then fails
 * with -ENOTCONN. */
void sim_disconnect(struct sim *sim);
bool sim_connected(const struct sim *sim);

/* Message of the last failure, or "" if none.  Valid until the next call. */
const char *sim_error(const struct sim *sim);

/* Device bugs: violations of the virtio or vhost-user spec by the daemon.
 * sim_bug() returns the first one's message, or NULL if none; once one is
 * recorded, sim_process() and sim_wait() return -EPROTO.  sim_bug_clear()
 * forgets them (for tests that provoke them on purpose). */
const char *sim_bug(const struct sim *sim);
unsigned sim_bug_count(const struct sim *sim);
void sim_bug_clear(struct sim *sim);

/* One pollable fd (an epoll set) that is readable when sim_process() has
 * device input to handle.  Owned by the sim. */
int sim_fd(const struct sim *sim);
/* Handles the device input that is ready, waiting up to timeout_ms
 * (0 = don't wait, -1 is not allowed) for some.  Returns 0, -ENOTCONN
 * after a disconnect, -EPROTO once a device bug is recorded. */
int sim_process(struct sim *sim, int timeout_ms);

/* Runs sim_process() until cond(sim, arg) is true (checked first, then
 * after every round) or timeout_ms passed.  Returns 0, -ETIMEDOUT, or what
 * sim_process() returned.  cond must not call back into sim_wait(). */
typedef bool (*sim_cond_fn)(struct sim *sim, void *arg);
int sim_wait(struct sim *sim, sim_cond_fn cond, void *arg, int timeout_ms);

/* Wait until a port named `name` was added and named; its number, or
 * -errno as sim_wait. */
int sim_wait_port(struct sim *sim, const char *name, int timeout_ms);

/* Negotiated state, valid after sim_connect(). */
struct sim_state {
	uint64_t features;	    /* offered by the device */
	uint64_t acked_features;    /* SET_FEATURES */
	uint64_t protocol_features; /* offered */
	uint64_t acked_protocol;    /* SET_PROTOCOL_FEATURES */
	uint64_t queue_num;	    /* GET_QUEUE_NUM, 0 if not asked */
	uint32_t max_nr_ports;	    /* from the config */
	uint16_t cols, rows;	    /* from the config at connect time */
	unsigned nports;	    /* ports with queues set up */
	unsigned nqueues;	    /* 2 * (nports + 1) */
	bool event_idx, indirect;   /* negotiated */
};
void sim_get_state(const struct sim *sim, struct sim_state *out);

struct sim_stats {
	uint64_t kicks;		   /* eventfd writes */
	uint64_t kicks_suppressed; /* NO_NOTIFY / avail_event said no */
	uint64_t calls;		   /* notifications read */
	uint64_t backend_msgs;	   /* requests on the backend channel */
	uint64_t config_changes;   /* CONFIG_CHANGE_MSG among them */
	uint64_t ctrl_rx, ctrl_tx; /* control messages received / sent */
	uint64_t vu_msgs;	   /* vhost-user messages sent */
};
void sim_get_stats(const struct sim *sim, struct sim_stats *out);

/* One queue as the driver sees it (for tests and fault injection). */
struct sim_queue_info {
	unsigned idx;
	uint16_t num;
	uint64_t desc_gpa, avail_gpa, used_gpa; /* guest-physical */
	uint64_t desc_uaddr;			/* as sent in SET_VRING_ADDR */
	uint16_t num_free;			/* free descriptor slots */
	unsigned inflight;			/* chains not yet used */
	uint16_t avail_idx, last_used;
	uint16_t used_idx;   /* as the device last wrote it */
	uint16_t used_flags; /* VRING_USED_F_NO_NOTIFY */
	uint16_t avail_event;
	bool broken, tainted;
};
/* -EINVAL if qidx >= nqueues. */
int sim_queue_info(const struct sim *sim, unsigned qidx,
		   struct sim_queue_info *out);

/* Explains a stall: writes one line per suspicious queue into buf
 * (NUL-terminated, truncated to len) -- a device that asked not to be
 * kicked yet left buffers unprocessed, a used ring ahead of the last call,
 * a broken queue.  Returns the number of findings.  For timeouts. */
unsigned sim_diagnose(const struct sim *sim, char *buf, size_t len);

/* Config space, read the way UML reads it: one field at a time, each with
 * GET_CONFIG offset 0, size = offset + len. */
int sim_read_config(struct sim *sim, struct virtio_console_config *out);
/* Raw GET_CONFIG/SET_CONFIG of [offset, offset + len), len <= 256.  Note
 * UML never sends a non-zero offset in GET_CONFIG; this does what asked. */
int sim_get_config(struct sim *sim, uint32_t offset, void *buf, uint32_t len);
int sim_set_config(struct sim *sim, uint32_t offset, const void *buf,
		   uint32_t len);

/* --- Ports ---------------------------------------------------------- */

struct sim_port_info {
	unsigned nr;
	/* Name from PORT_NAME, NUL-terminated (truncated at an embedded NUL
	 * like Linux's strscpy), or NULL if none yet.  Owned by the sim,
	 * valid until the next sim_process()/sim_wait()/sim_free(). */
	const char *name;
	bool console;	      /* CONSOLE_PORT received */
	bool host_connected;  /* last PORT_OPEN from the device */
	bool guest_connected; /* our side open (console ports: always) */
	bool has_queues;      /* nr < nports: data can flow */
	bool rx_withheld;
	uint16_t cols, rows;	/* last RESIZE, 0 if none */
	unsigned rx_avail;	/* RX buffers posted, not yet used */
	size_t rx_pending;	/* received bytes not yet read */
	size_t tx_pending;	/* bytes in TX buffers not yet returned */
	uint64_t rx_total;	/* bytes received, ever */
	uint64_t tx_total;	/* bytes whose TX buffer came back */
	uint64_t rx_discarded;	/* bytes dropped: port closed / removed */
	unsigned adds, removes; /* PORT_ADD / PORT_REMOVE seen for nr */
};

/* Number of ports currently added (PORT_ADD without PORT_REMOVE). */
unsigned sim_port_count(const struct sim *sim);
/* Next added port number greater than `after` (-1 to start), or -ENOENT. */
int sim_port_next(const struct sim *sim, int after);
/* Port number of the added port named `name`, or -ENOENT. */
int sim_port_find(const struct sim *sim, const char *name);
/* -ENOENT unless port nr is currently added. */
int sim_port_info(const struct sim *sim, unsigned nr,
		  struct sim_port_info *out);

/* Guest-side open/close: PORT_OPEN(nr, 1/0) on control-tx.  Closing
 * discards unread data, like the Linux driver's release. */
int sim_port_open(struct sim *sim, unsigned nr);
int sim_port_close(struct sim *sim, unsigned nr);

/* Queues as much of buf as fits in free TX descriptors and guest memory,
 * in buffers of tx_buf_size, and kicks once.  Returns bytes queued (> 0),
 * -EAGAIN if nothing fits now (wait for sim_port_tx_pending() to drop),
 * -ENOENT (no such port) or -ENODEV (port has no queues).  Does not check
 * host_connected: Linux would block the writer, tests may want not to. */
long sim_port_write(struct sim *sim, unsigned nr, const void *buf, size_t len);
/* Bytes written but whose buffers the device has not returned, or -errno.*/
long sim_port_tx_pending(const struct sim *sim, unsigned nr);

/* Copies up to len received bytes (0 if none) and re-posts every buffer it
 * emptied (unless withheld), with one kick.  Returns bytes or -errno. */
long sim_port_read(struct sim *sim, unsigned nr, void *buf, size_t len);
/* What a reader does with received bytes in place: `p` points into guest
 * memory, valid during the call only.  Returns 0 to go on, or a negative
 * errno to stop.  It must not call into the sim. */
typedef int (*sim_rx_fn)(const void *p, size_t n, void *opaque);
/* sim_port_read without the copy: hands up to len received bytes to fn,
 * in order, one call per buffer segment (or the part of it len allows),
 * and re-posts every buffer it emptied, with one kick, as sim_port_read
 * does.  Returns the bytes handed over, 0 if none, or -errno: -ENOENT, or
 * fn's error (sim_error() says how many bytes were handed over; they,
 * the failing call's included, are consumed). */
long sim_port_consume(struct sim *sim, unsigned nr, size_t len, sim_rx_fn fn,
		      void *opaque);
long sim_port_rx_pending(const struct sim *sim, unsigned nr);
/* Posts `count` more receive buffers of `size` bytes.  Returns the number
 * posted (fewer if the ring or guest memory ran out, -ENOSPC if none). */
int sim_port_rx_post(struct sim *sim, unsigned nr, unsigned count,
		     uint32_t size);
/* withhold = true: emptied buffers are kept, not re-posted, so the device
 * runs out of receive buffers.  false: re-post the kept ones now. */
int sim_port_rx_withhold(struct sim *sim, unsigned nr, bool withhold);

/* --- Fault injection --------------------------------------------------- */

/* The guest frees every TX buffer of port nr it has posted and not got
 * back, and reuses the memory: it is overwritten with `byte`, the chains
 * stay on the ring.  What UML does when it resets the device without
 * telling the backend.  Returns the number of buffers, or -errno. */
int sim_port_tx_scribble(struct sim *sim, unsigned nr, uint8_t byte);

/* withhold = true: chains written to port nr's TX queue are published in
 * the avail ring but not kicked, so the device sees them only when it
 * looks for another reason (a guest close racing ahead of its data).
 * false: kick for what was published meanwhile. */
int sim_port_tx_withhold_kick(struct sim *sim, unsigned nr, bool withhold);

/* Any control message on control-tx, with extra payload after the 8-byte
 * header (extra may be NULL when extra_len is 0). */
int sim_send_ctrl(struct sim *sim, uint32_t id, uint16_t event, uint16_t value,
		  const void *extra, size_t extra_len);

/* Reply of sim_raw_msg(). */
struct sim_raw_reply {
	bool got;	  /* false: no reply within the timeout */
	uint32_t request; /* header as received */
	uint32_t flags;
	uint32_t size;
	uint8_t payload[sizeof(struct vu_msg)];
	uint32_t payload_len; /* bytes read into payload (min(size, max)) */
	unsigned nfds;	      /* fds that came with it (closed) */
};

/* Sends one arbitrary vhost-user message: header {request, flags,
 * hdr_size} followed by `len` payload bytes and the given fds (ownership
 * stays with the caller).  hdr_size may lie about len.  Then waits up to
 * timeout_ms for one reply; a reply too big is read (to keep the stream
 * in sync) but truncated.  Returns 0 (reply->got says whether one came),
 * or -ENOTCONN if the daemon closed the connection. */
int sim_raw_msg(struct sim *sim, uint32_t request, uint32_t flags,
		uint32_t hdr_size, const void *payload, uint32_t len,
		const int *fds, unsigned nfds, struct sim_raw_reply *reply,
		int timeout_ms);

/* One hand-made descriptor of sim_raw_chain(). */
struct sim_raw_desc {
	uint64_t addr; /* used as is, unless alloc */
	uint32_t len;
	uint16_t flags; /* VRING_DESC_F_*, used as is */
	/* next: with next_abs, the raw value written; otherwise an index
	 * into this chain (the sim translates it to the ring/table slot).
	 * Ignored without VRING_DESC_F_NEXT unless next_abs. */
	bool next_abs;
	uint16_t next;
	/* alloc > 0: allocate that many bytes of guest memory for addr and
	 * fill them from data (data_len bytes, rest zero). */
	uint32_t alloc;
	const void *data;
	size_t data_len;
};

/* How sim_raw_chain() puts the chain on the ring. */
struct sim_raw_ring_desc {
	bool indirect; /* chain goes into an indirect table */
	/* For indirect: the ring descriptor is {table, 16 * n, INDIRECT}
	 * unless overridden here. */
	bool set_addr, set_len;
	uint64_t addr;
	uint32_t len;
	uint16_t extra_flags; /* or-ed into the ring descriptor's flags */
};

/* Writes descs[0..n) into free ring slots (or an indirect table, see
 * ring), puts the head in the avail ring and kicks unconditionally.  n may
 * be 0 with ring->indirect (empty table).  The chain is tracked: when the
 * device returns it, sim_raw_used() reports (head, len).  *head_out gets
 * the head slot.  -ENOSPC: not enough free slots. */
int sim_raw_chain(struct sim *sim, unsigned qidx,
		  const struct sim_raw_desc *descs, unsigned n,
		  const struct sim_raw_ring_desc *ring, uint16_t *head_out);
/* Puts an arbitrary head index in the avail ring (no descriptor behind it
 * is touched) and kicks. */
int sim_raw_head(struct sim *sim, unsigned qidx, uint16_t head);
/* Writes avail->idx = idx and kicks.  The sim's own accounting for the
 * queue is not changed: the queue is marked tainted and used elements
 * the sim does not know are then recorded as raw completions, not bugs. */
int sim_raw_avail_idx(struct sim *sim, unsigned qidx, uint16_t idx);
/* Kicks qidx unconditionally. */
int sim_raw_kick(struct sim *sim, unsigned qidx);
/* Fault injection: cut the guest-memory file to `size` bytes behind the
 * device's back (its mappings beyond that fault).  The sim must not touch
 * its own guest memory afterwards: only raw messages and kicks. */
int sim_shrink_memory(struct sim *sim, uint64_t size);

/* Starts a thread that plays a guest vCPU spinning beside the device: it
 * keeps qidx's avail ring full of one-descriptor chains pointing past the
 * end of guest memory (which the device must return unread, virtio 1.2
 * 2.7.4.2), re-posts each one the moment the used ring returns it, and
 * kicks.  The queue is the thread's from then on and is never reaped or
 * used again on this connection.  One flood at a time.  -EBUSY: a flood
 * runs, or qidx has chains in flight. */
int sim_flood_start(struct sim *sim, unsigned qidx);
/* Stops the flood and waits for its thread; *posted (may be NULL): how
 * many chains it made available.  -ESRCH: none runs.  Losing the
 * connection stops it too. */
int sim_flood_stop(struct sim *sim, uint64_t *posted);

struct sim_raw_completion {
	uint16_t qidx;
	uint32_t id;
	uint32_t len;
};
/* Pops the oldest completion of a raw chain on qidx: 0, or -EAGAIN. */
int sim_raw_used(struct sim *sim, unsigned qidx,
		 struct sim_raw_completion *out);

/* Translation helper for tests: host pointer of [gpa, gpa + len) in guest
 * memory, or NULL if outside it. */
void *sim_gpa_ptr(const struct sim *sim, uint64_t gpa, uint64_t len);

#endif
