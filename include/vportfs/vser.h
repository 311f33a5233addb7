/*
 * The virtio-serial (virtio-console, MULTIPORT) device: ports, the control
 * protocol, and each port's two byte streams.
 *
 * Guest -> host: the guest's TX buffers of a generic port are held, not
 * copied; the host side reads them in place (vser_port_peek) and releases
 * them (vser_port_consume), which is when the guest gets them back.  So a
 * host that does not read throttles exactly that port: the guest writer
 * blocks when its ring is full, nothing else slows down.  Console ports are
 * the exception: the guest kernel spins until its buffer comes back, so
 * their output is copied into a bounded ring at once, the oldest bytes
 * dropped (and counted) when it overflows.
 *
 * Host -> guest: vser_port_write copies into the guest's RX buffers, the
 * rest into a bounded per-port buffer that drains as the guest posts more.
 *
 * The host side of a port (the FUSE layer today) registers one listener and
 * is told, by one callback, whenever anything about the port changed; it
 * then looks at the state again.  Callbacks never re-enter the device.
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
struct vu;

#define VSER_MAX_PORTS_DEFAULT 31
#define VSER_MAX_PORTS_LIMIT 511
#define VSER_NAME_MAX 255
#define VSER_CONSOLE_RING_DEFAULT (1u << 20)
#define VSER_OUT_BUF_DEFAULT (256u << 10)

struct vser_config {
	unsigned max_ports; /* 1..VSER_MAX_PORTS_LIMIT */
	size_t console_ring; /* bytes kept per console port */
	size_t out_buf;      /* host -> guest buffer per port */
};

/* Device-level events, for the listener's `device` callback. */
enum vser_dev_event {
	VSER_DEV_FRONTEND_UP,
	VSER_DEV_FRONTEND_DOWN,
	VSER_DEV_DRIVER_READY,
};

struct vser_listener {
	/* Something about the port changed (data, buffers, guest open or
	 * close, device reset).  Must not call back into vser synchronously
	 * except for the read-only accessors and peek/consume/write. */
	void (*port_changed)(struct vser_port *port, void *opaque);
	void (*device_event)(enum vser_dev_event ev, void *opaque);
};

/* NULL on failure (logged).  The loop must outlive the device. */
struct vser *vser_new(struct vp_loop *loop, const struct vser_config *cfg);
void vser_free(struct vser *dev);

void vser_set_listener(struct vser *dev, const struct vser_listener *l,
		       void *opaque);

/* The vhost-user backend serving this device (owned by the device). */
struct vu *vser_vu(struct vser *dev);

/*
 * Add a port.  nr < 0 picks the lowest free number (never 0, which stays
 * for a console port, unless this is a console port and 0 is free).
 * 0 or -EINVAL (bad nr/name), -EEXIST (nr or name taken), -ENOSPC (no free
 * number), -ENOMEM.  A port added after the driver is ready is hot-plugged.
 */
int vser_port_add(struct vser *dev, int nr, const char *name, bool console,
		  struct vser_port **out);

unsigned vser_max_ports(const struct vser *dev);
struct vser_port *vser_port_by_nr(struct vser *dev, unsigned nr);
/* Iterate: first port with number >= nr, or NULL. */
struct vser_port *vser_port_next(struct vser *dev, unsigned nr);
bool vser_driver_ready(const struct vser *dev);
bool vser_frontend_connected(const struct vser *dev);
uint64_t vser_features(const struct vser *dev); /* negotiated */

unsigned vser_port_nr(const struct vser_port *port);
const char *vser_port_name(const struct vser_port *port);
bool vser_port_is_console(const struct vser_port *port);
bool vser_port_guest_connected(const struct vser_port *port);
bool vser_port_host_connected(const struct vser_port *port);

struct vser_port_stats {
	uint64_t rx_bytes;      /* guest -> host, handed to the host side */
	uint64_t tx_bytes;      /* host -> guest, placed in guest buffers */
	uint64_t dropped_bytes; /* console output lost to ring overflow, or
				   guest output with no host side to take it */
};
void vser_port_stats(const struct vser_port *port, struct vser_port_stats *st);

/* The host side opened / closed the port (any endpoint).  Closing is
 * deferred until what vser_port_write accepted has reached the guest. */
void vser_port_set_host_connected(struct vser_port *port, bool connected);

/* Guest -> host.  Describe up to max bytes of pending guest output as at
 * most niov iovecs (pointing into guest memory or the console ring; valid
 * until the next call into the device); returns the byte count. */
size_t vser_port_peek(struct vser_port *port, struct iovec *iov, int *niov,
		      size_t max);
/* The host side took n bytes of what peek described. */
void vser_port_consume(struct vser_port *port, size_t n);
size_t vser_port_readable(const struct vser_port *port);

/* Host -> guest.  Accepts up to len bytes; returns the count, -EAGAIN if
 * nothing fits now (guest not open, or no buffers and our buffer full).
 * The caller retries on port_changed. */
ssize_t vser_port_write(struct vser_port *port, const void *buf, size_t len);
/* Would a write of at least one byte be accepted now? */
bool vser_port_writable(const struct vser_port *port);
/* Bytes accepted by vser_port_write not yet in guest buffers. */
size_t vser_port_write_pending(const struct vser_port *port);

/* For unit tests: feed a control message as if the guest had sent it, and
 * take the messages the device queued for the guest. */
void vser_handle_control(struct vser *dev, const void *msg, size_t len);
/* Copies the oldest queued device->guest control message into buf and
 * removes it; returns its length, 0 if none. */
size_t vser_take_control(struct vser *dev, void *buf, size_t len);

#endif
