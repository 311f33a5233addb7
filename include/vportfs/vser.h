/*
 * The virtio-serial (virtio-console, MULTIPORT) device: ports, the control
 * protocol, and each port's two byte streams.
 *
 * Guest -> host: every guest TX buffer is copied into the port's ring when
 * it is popped and given back at once; nothing is read from guest memory
 * later (a UML guest frees posted buffers at a device reset without telling
 * the backend).  A generic port pops only what its ring has room for, so a
 * host that does not read throttles exactly that port: the guest's ring
 * fills and its writer blocks, nothing else slows down; what the ring holds
 * outlives the VM.  Console ports never make the guest wait: their ring
 * keeps the latest output, the oldest bytes dropped when it overflows.
 *
 * Host -> guest: vser_port_write copies into the guest's RX buffers, the
 * rest into a bounded per-port buffer that drains as the guest posts more.
 *
 * Guest output fans out: every reader (struct vser_reader, one per open
 * host file that reads) has its own position in the port's byte stream;
 * ring bytes are released once every reader has read past them, so the
 * slowest reader throttles the port and nothing is copied per reader.
 *
 * The host side of a port (the FUSE layer today) registers one listener and
 * is told, by one callback, whenever anything about the port changed; it
 * then looks at the state again.  Guest open/close are also reported one by
 * one, synchronously, so that sessions can be told apart.  Callbacks never
 * re-enter the device except through the accessors and the reader/write
 * calls named in their contracts.
 */
#ifndef VPORTFS_VSER_H
#define VPORTFS_VSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vportfs/loop.h"

struct vser;
struct vser_port;
struct vser_reader;
struct vu;

#define VSER_MAX_PORTS_DEFAULT 31
/* vhost-user names a queue in 8 bits (SET_VRING_KICK/CALL), so 256 queues:
 * (127 + 1) * 2.  UML supports 64 queues, i.e. 31 ports. */
#define VSER_MAX_PORTS_LIMIT 127
#define VSER_NAME_MAX 255
#define VSER_CONSOLE_RING_DEFAULT (1u << 20)
#define VSER_PORT_RING_DEFAULT (1u << 20)
/* A serial port's ring must hold any guest buffer whole (Linux's are up to
 * 32 KiB): a chain larger than the ring loses its tail. */
#define VSER_PORT_RING_MIN (64u << 10)
#define VSER_OUT_BUF_DEFAULT (256u << 10)

struct vser_config {
	unsigned max_ports; /* 1..VSER_MAX_PORTS_LIMIT */
	size_t console_ring; /* bytes kept per console port; 0: default */
	size_t port_ring;    /* guest output kept per generic port, unread;
				0: default */
	size_t out_buf;      /* host -> guest buffer per port */
	/* Host bytes accepted but not yet in guest buffers belong to the
	 * guest session (-o session): dropped and counted when it ends.
	 * false: they wait for the guest's next open, as in a socket. */
	bool out_per_session;
};

/* Device-level events, for the listener's `device` callback. */
enum vser_dev_event {
	VSER_DEV_FRONTEND_UP,
	VSER_DEV_FRONTEND_DOWN,
	VSER_DEV_DRIVER_READY,
};

/* Per-port transitions, reported as they happen. */
enum vser_port_event {
	VSER_PORT_GUEST_OPEN,  /* a new guest session begins */
	VSER_PORT_GUEST_CLOSE, /* it ends (guest close, VM gone) */
};

struct vser_listener {
	/* Something about the port changed (data, buffers, guest open or
	 * close, device reset); called from the loop, never from inside a
	 * vser call.  May use the accessors, the reader calls,
	 * vser_port_write and vser_port_set_host_connected. */
	void (*port_changed)(struct vser_port *port, void *opaque);
	/* Called synchronously at the transition, possibly from inside a
	 * device callback: may use the accessors and vser_reader_set_limit
	 * only. */
	void (*port_event)(struct vser_port *port, enum vser_port_event ev,
			   void *opaque);
	void (*device_event)(enum vser_dev_event ev, void *opaque);
};

/* NULL on bad config or allocation failure.  The loop must outlive the
 * device. */
struct vser *vser_new(struct vp_loop *loop, const struct vser_config *cfg);
void vser_free(struct vser *dev);

void vser_set_listener(struct vser *dev, const struct vser_listener *l,
		       void *opaque);

/* The vhost-user backend serving this device (owned by the device). */
struct vu *vser_vu(struct vser *dev);

struct vser_port_config {
	int nr;           /* < 0: the lowest free number */
	const char *name; /* may be empty */
	bool console;
	size_t ring_size; /* ring bytes; 0: the device's default for the kind;
			     serial ports: at least VSER_PORT_RING_MIN */
};

/*
 * Add a port.  nr < 0 picks the lowest free number (never 0, which stays
 * for a console port, unless this is a console port and 0 is free).
 * 0 or -EINVAL (bad nr, name or ring_size), -EEXIST (nr or name taken),
 * -ENOSPC (no free number), -ENOMEM.  A port added after the driver is
 * ready is hot-plugged.
 */
int vser_port_add(struct vser *dev, const struct vser_port_config *pc,
		  struct vser_port **out);

/* Hot-unplug: tell the guest (PORT_REMOVE), free the port with what its
 * rings held (host bytes not yet delivered count as discarded).  The
 * caller must have freed the port's readers; the listener hears nothing
 * more of it. */
void vser_port_remove(struct vser_port *port);

unsigned vser_max_ports(const struct vser *dev);
struct vser_port *vser_port_by_nr(struct vser *dev, unsigned nr);
/* Iterate: first port with number >= nr, or NULL. */
struct vser_port *vser_port_next(struct vser *dev, unsigned nr);
bool vser_driver_ready(const struct vser *dev);
bool vser_frontend_connected(const struct vser *dev);
/* Guest output discarded because its TX queue had no port. */
uint64_t vser_orphan_bytes(const struct vser *dev);
uint64_t vser_features(const struct vser *dev); /* negotiated */

unsigned vser_port_nr(const struct vser_port *port);
const char *vser_port_name(const struct vser_port *port);
bool vser_port_is_console(const struct vser_port *port);
bool vser_port_guest_connected(const struct vser_port *port);
bool vser_port_host_connected(const struct vser_port *port);
/* Guest sessions: incremented at every guest open, starting at 1. */
uint64_t vser_port_guest_session(const struct vser_port *port);
/* Stream offset after the last byte the guest has sent on this port. */
uint64_t vser_port_stream_end(const struct vser_port *port);

/* Console ports: the window size the guest is told (RESIZE); 0 or
 * -EINVAL if not a console port or cols/rows is 0. */
int vser_port_resize(struct vser_port *port, uint16_t cols, uint16_t rows);
void vser_port_winsize(const struct vser_port *port, uint16_t *cols,
		       uint16_t *rows);

struct vser_port_stats {
	uint64_t rx_bytes;      /* guest -> host, handed to the host side */
	uint64_t tx_bytes;      /* host -> guest, placed in guest buffers */
	uint64_t dropped_bytes; /* guest output no reader received: pushed
				   out of a console ring before any reader
				   read it, left unread by the last host
				   file to close (it had been offered),
				   beyond a ring in one buffer, or still in
				   the guest's ring, not taken for want of
				   room, when the VM went */
};
void vser_port_stats(const struct vser_port *port, struct vser_port_stats *st);

/* The host side opened / closed the port (any endpoint).  Closing is
 * deferred until what vser_port_write accepted has reached the guest. */
void vser_port_set_host_connected(struct vser_port *port, bool connected);

/* What a new reader gets of the output already there. */
enum vser_backlog {
	VSER_BACKLOG_NONE,   /* nothing: what the guest sends from now on */
	/* What no reader has received yet: on a console port the ring's
	 * bytes past the furthest any reader consumed (a reader that reopens
	 * never gets a byte twice); on a generic port, for the first reader,
	 * what the ring keeps for nobody. */
	VSER_BACKLOG_UNREAD,
	/* The same, but only bytes of the guest session now open (none if
	 * the guest has the port closed): -o session. */
	VSER_BACKLOG_SESSION,
};

/*
 * Guest -> host readers, one per open host file that reads: a cursor into
 * the port's stream, starting as `backlog` says.  NULL on allocation
 * failure.  The reader must be freed before its port.
 */
struct vser_reader *vser_reader_new(struct vser_port *port,
				    enum vser_backlog backlog);
void vser_reader_free(struct vser_reader *r);
/* The reader sees no byte at or past stream offset `limit` (sessions). */
void vser_reader_set_limit(struct vser_reader *r, uint64_t limit);
/* Bytes the reader can read now. */
size_t vser_reader_readable(struct vser_reader *r);
/* Describe up to max readable bytes as at most *niov iovecs (at most two,
 * pointing into the port's ring; valid until the next call into the
 * device); returns the byte count and sets *niov. */
size_t vser_reader_peek(struct vser_reader *r, struct iovec *iov, int *niov,
			size_t max);
/* The reader took n bytes of what peek described. */
void vser_reader_consume(struct vser_reader *r, size_t n);
/* Console bytes overwritten before this reader read them. */
uint64_t vser_reader_dropped(const struct vser_reader *r);
/* The host side just looked at the port through this reader (a read or a
 * poll was answered): what the guest had sent so far counts as offered.
 * When the last host file closes, offered output nobody read is
 * discarded, as the guest driver does; output that came later, or while
 * no host file was open, is kept for the next opener, so nothing the guest
 * writes between two host readers is lost. */
void vser_reader_seen(struct vser_reader *r);

/* Host -> guest.  Accepts up to len bytes; returns the count, -EAGAIN if
 * nothing fits now (guest not open, or no buffers and our buffer full).
 * The caller retries on port_changed. */
ssize_t vser_port_write(struct vser_port *port, const void *buf, size_t len);
/*
 * The same write in two steps, so that the caller can answer its own
 * writer between them: a FUSE write is replied to before its bytes are
 * copied, and the writer prepares its next write while the copy runs.
 * vser_port_write_reserve moves older buffered bytes on first (which may
 * interrupt the guest), then pops the guest's posted RX buffers and takes
 * room in our buffer for up to len bytes; it returns how many bytes the
 * port accepts, > 0, or the errors of vser_port_write.
 * vser_port_write_commit then copies exactly that many bytes from buf
 * (borrowed for the call) and hands the buffers to the guest.  A reserve
 * that returned > 0 must be committed, and nothing else may use the
 * device in between: the commit follows before control returns to the
 * event loop (the popped buffers are held by the port until then).
 */
ssize_t vser_port_write_reserve(struct vser_port *port, size_t len);
void vser_port_write_commit(struct vser_port *port, const void *buf);
/* Would a write of at least one byte be accepted now? */
bool vser_port_writable(const struct vser_port *port);
/* Bytes accepted by vser_port_write not yet in guest buffers (they wait
 * for the guest's next open unless out_per_session). */
size_t vser_port_write_pending(const struct vser_port *port);
/* How many times accepted bytes were discarded undelivered (the guest
 * session they belonged to ended, -o session): fsync compares it. */
uint64_t vser_port_write_discards(const struct vser_port *port);

/* For unit tests: feed a control message as if the guest had sent it, and
 * take the messages the device queued for the guest. */
void vser_handle_control(struct vser *dev, const void *msg, size_t len);
/* Copies the oldest queued device->guest control message into buf and
 * removes it; returns its length, 0 if none. */
size_t vser_take_control(struct vser *dev, void *buf, size_t len);

#endif
