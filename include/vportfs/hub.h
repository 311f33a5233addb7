/*
 * The port hub: the one owner of every port's host side.
 *
 * The device (vser) holds each port's byte streams and one "host
 * connected" bit; it knows nothing of who is on the host side.  Every
 * endpoint (an open port file, a chardev, later a bridge) attaches to a
 * port through the hub, and the hub alone decides:
 *
 *  - when the host side counts as connected: while any endpoint is
 *    attached and not hung up (the guest's PORT_OPEN follows that rule);
 *  - sessions (-o session): an endpoint belongs to one guest session and
 *    is hung up when it ends;
 *  - sharing: at most one endpoint feeds the guest (the *source*); any
 *    number read, each through its own cursor into the device's stream
 *    (fan-out without copies);
 *  - what the `.events` stream reports.
 *
 * Endpoint providers (src/fs, src/chardev) know the hub only, never the
 * device and never each other.  The hub is told everything by the device
 * (it is the device's one listener) and tells each endpoint "something
 * changed" through the endpoint's ops; the endpoint then looks again
 * through the hub_ep_* calls below.
 */
#ifndef VPORTFS_HUB_H
#define VPORTFS_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vportfs/hub_events.h"
#include "vportfs/loop.h"

struct hub;
struct hub_port;
struct hub_ep;
struct vser;

/* The longest port name, as the device allows (virtio-serial names are
 * sent whole in one control buffer). */
#define HUB_NAME_MAX 255
/* -o session: what a hung-up endpoint keeps of its session's unread
 * output once the device's ring is given back for the next session. */
#define HUB_HUNG_TAIL_MAX (1u << 20)

struct hub_config {
	/* -o session: an endpoint belongs to the guest session open when it
	 * attached (or the next one); when that session ends it is hung up:
	 * EOF after the session's last byte, writes refused (-EPIPE). */
	bool session;
	/* -o exclusive: one endpoint of any kind per port, HUB_EP_PERSISTENT
	 * ones aside (one open port file, whatever chardevs are attached). */
	bool exclusive;
};

/*
 * NULL on allocation failure.  Creates a hub port for every port the
 * device has, and becomes the device's listener.  The device and the
 * loop must outlive the hub.  Free every endpoint before hub_free.
 */
struct hub *hub_new(struct vp_loop *loop, struct vser *dev,
		    const struct hub_config *cfg);
/* Leaves the device without a listener.  NULL accepted. */
void hub_free(struct hub *hub);

/* The device's `.events` line stream (owned by the hub). */
struct hub_events *hub_events(struct hub *hub);

/* ---- observers: providers that want to hear of the hub as a whole ---- */

struct hub_observer_ops {
	/* A port was plugged (at run time: `touch`) or unplugged. */
	void (*port_added)(struct hub_port *hp, void *opaque);
	void (*port_removed)(struct hub_port *hp, void *opaque);
	/* New `.events` lines are queued; called from the loop. */
	void (*events_ready)(void *opaque);
	/* Something a person would want in a status line changed (the
	 * frontend, the driver, a port plugged, opened or closed on either
	 * side: every kind of `.events` line), whether or not anyone reads
	 * `.events`; called from the loop, once for a burst. */
	void (*changed)(void *opaque);
	/* Attributes the observer adds to a port, for the FUSE layer to show
	 * as user.vport.KEY: attr_list appends "KEY\0" for each to buf
	 * (at most len bytes) and returns the bytes it needs (more than len:
	 * nothing written); attr_get writes KEY's value (not NUL-terminated)
	 * and returns its length, or -ENODATA (not ours), -ERANGE (more than
	 * len bytes). */
	size_t (*attr_list)(struct hub_port *hp, char *buf, size_t len,
			    void *opaque);
	ssize_t (*attr_get)(struct hub_port *hp, const char *key, char *buf,
			    size_t len, void *opaque);
};

#define HUB_MAX_OBSERVERS 4
/* 0 or -ENOSPC.  Any op may be NULL.  The observer must be removed before
 * its opaque dies. */
int hub_observer_add(struct hub *hub, const struct hub_observer_ops *ops,
		     void *opaque);
void hub_observer_remove(struct hub *hub, const struct hub_observer_ops *ops,
			 void *opaque);

/* ---- ports ----------------------------------------------------------- */

/* Is `name` usable as a port's file (and chardev binding) name: 1..255
 * bytes of UTF-8, no '/', not starting with '.'? */
bool hub_name_usable(const char *name);
/* A port's label: its name if usable, else "port<nr>".  Two ports never
 * share a label (main refuses such a configuration, hub_port_add refuses
 * such a name). */
void hub_label(unsigned nr, const char *name, char *buf, size_t len);

unsigned hub_max_ports(const struct hub *hub);
/* The plugged port numbered nr, or NULL. */
struct hub_port *hub_port_at(struct hub *hub, unsigned nr);
/* The plugged port labelled `label`, or NULL. */
struct hub_port *hub_port_by_label(struct hub *hub, const char *label);
/* The port with this id, plugged or unplugged but still held by an
 * endpoint; NULL once freed. */
struct hub_port *hub_port_by_id(struct hub *hub, uint64_t id);

/*
 * Hot-plug a serial port named `name` with the lowest free number.
 * 0; -EINVAL (name not usable), -EEXIST (a port has that label),
 * -ENOSPC (no free number), -ENOMEM.  Observers hear port_added.
 */
int hub_port_add(struct hub *hub, const char *name, struct hub_port **out);
/*
 * Hot-unplug.  Every endpoint stays attached to the unplugged port,
 * hears `changed` and from then on sees hub_ep_gone(); the port is freed
 * when its last endpoint detaches.  Observers hear port_removed.
 */
void hub_port_remove(struct hub_port *hp);

/* Unique for the hub's lifetime, from 0, never reused: a file system can
 * make inode numbers of it. */
uint64_t hub_port_id(const struct hub_port *hp);
unsigned hub_port_nr(const struct hub_port *hp);
const char *hub_port_label(const struct hub_port *hp);
/* Unplugged (rm), kept alive by its endpoints. */
bool hub_port_gone(const struct hub_port *hp);

struct hub_port_info {
	const char *name; /* as the guest sees it; valid until the next hub
			     call */
	bool console;
	bool guest_connected;
	bool host_connected;
	uint64_t rx_bytes; /* see struct vser_port_stats */
	uint64_t tx_bytes;
	uint64_t dropped_bytes;
	uint16_t cols, rows; /* console ports: the guest's window size */
};
/* -ENODEV if the port is gone. */
int hub_port_info(const struct hub_port *hp, struct hub_port_info *info);
/* Every observer's attributes of the port, as attr_list above; the bytes
 * needed. */
size_t hub_port_attr_list(struct hub_port *hp, char *buf, size_t len);
/* The first observer's value of KEY; its length, -ENODATA, -ERANGE. */
ssize_t hub_port_attr_get(struct hub_port *hp, const char *key, char *buf,
			  size_t len);

/* Console ports: tell the guest a new window size (VIRTIO_CONSOLE_RESIZE).
 * -EINVAL if not a console or a size is 0, -ENODEV if gone. */
int hub_port_resize(struct hub_port *hp, uint16_t cols, uint16_t rows);

struct hub_device_info {
	bool frontend;	   /* a vhost-user frontend is connected */
	bool driver_ready; /* the guest driver sent DEVICE_READY */
	unsigned max_ports;
	uint64_t features;     /* negotiated */
	uint64_t orphan_bytes; /* guest output on queues with no port */
};
void hub_device_info(const struct hub *hub, struct hub_device_info *info);

/* ---- endpoints ------------------------------------------------------- */

enum {
	HUB_EP_READ = 1 << 0,  /* receives guest output (fan-out) */
	HUB_EP_WRITE = 1 << 1, /* feeds the guest: takes the port's source */
	/* With HUB_EP_WRITE: if another endpoint is the source, wait for it
	 * to leave instead of failing with -EBUSY (a second socket client
	 * waits its turn, seed 004). */
	HUB_EP_WAIT_TURN = 1 << 2,
	/* Never bound to a guest session, never hung up (a chardev: a log
	 * outlives guest reboots); it starts with what no reader has
	 * received, like an endpoint in default mode. */
	HUB_EP_PERSISTENT = 1 << 3,
};

struct hub_ep_ops {
	/* Something about the port (or the device) may have changed:
	 * output to read, room to write,
	 * a guest open or close, a hang-up, the source passed to this
	 * endpoint, the port unplugged.  Called from the loop or from
	 * hub_port_remove, never from inside a hub_ep_* call on the same
	 * endpoint.  May call any hub_ep_* function on this endpoint,
	 * including hub_ep_detach, but must not detach another one. */
	void (*changed)(struct hub_ep *ep, void *opaque);
};

/*
 * Attach an endpoint to a plugged port.  `flags` is HUB_EP_*.  The hub
 * owns *out until hub_ep_detach.  0; -ENODEV (port gone), -EBUSY (the
 * sharing rule: the source is taken and HUB_EP_WAIT_TURN is not set, or
 * -o exclusive and the port has an endpoint, persistent ones aside),
 * -ENOMEM.  A reading
 * endpoint starts with what no reader has received yet (in session mode:
 * of the open guest session only); see enum vser_backlog.
 */
int hub_ep_attach(struct hub_port *hp, unsigned flags,
		  const struct hub_ep_ops *ops, void *opaque,
		  struct hub_ep **out);
/* Detach and free; the next waiting writer, if any, becomes the source.
 * NULL accepted. */
void hub_ep_detach(struct hub_ep *ep);

/* The endpoint will feed the guest no more (its peer's input ended):
 * it stops being the source, or waiting to be, and the next writer in
 * turn takes over. */
void hub_ep_input_done(struct hub_ep *ep);

struct hub_port *hub_ep_port(const struct hub_ep *ep);
/* Its port was unplugged: reads and writes get -ENODEV. */
bool hub_ep_gone(const struct hub_ep *ep);
/* -o session: the guest session it belonged to ended (for good). */
bool hub_ep_hung(const struct hub_ep *ep);
/* It may feed the guest now (HUB_EP_WRITE, not waiting its turn). */
bool hub_ep_is_source(const struct hub_ep *ep);

/* Guest -> host.  Bytes this endpoint can read now. */
size_t hub_ep_readable(const struct hub_ep *ep);
/*
 * Describe up to max readable bytes as at most *niov iovecs (at most
 * two; *niov >= 1); returns the byte count and sets *niov.  Valid until the
 * next hub call.  Marks what the guest sent so far as offered
 * (vser_reader_seen), and emits "reader-overrun" once for console bytes this
 * endpoint lost.
 */
size_t hub_ep_peek(struct hub_ep *ep, struct iovec *iov, int *niov, size_t max);
/* The endpoint took n bytes of what peek described. */
void hub_ep_consume(struct hub_ep *ep, size_t n);
/* The endpoint looked at the port (a poll was answered): what the guest
 * sent so far counts as offered (vser_reader_seen). */
void hub_ep_seen(struct hub_ep *ep);
/*
 * With nothing readable, is this the end of the stream?  Hung up
 * (session mode); in default mode, and for a HUB_EP_PERSISTENT endpoint
 * in any mode, a serial port whose guest end is closed (as a pipe's) but
 * never a console (its readers outlive the VM).
 */
bool hub_ep_eof(const struct hub_ep *ep);

/*
 * Host -> guest: accept up to len bytes; the count, or -EAGAIN (nothing
 * fits now: guest closed, buffers full, or not the source yet: retry on
 * `changed`), -EPIPE (hung up), -ENODEV (gone), -EBADF (no HUB_EP_WRITE),
 * -ENOMEM.
 */
ssize_t hub_ep_write(struct hub_ep *ep, const void *buf, size_t len);
/*
 * hub_ep_write in two steps (include/vportfs/vser.h,
 * vser_port_write_reserve): the reserve returns what hub_ep_write would,
 * and may already move older bytes into the guest; a count > 0 must then
 * be committed, with the bytes hub_ep_write would have been given (that
 * many are read from buf), before control returns to the event loop.
 */
ssize_t hub_ep_write_reserve(struct hub_ep *ep, size_t len);
void hub_ep_write_commit(struct hub_ep *ep, const void *buf);
/* Would hub_ep_write accept a byte now? */
bool hub_ep_writable(const struct hub_ep *ep);

/*
 * fsync: the value to wait with.  A writer compares with the losses it
 * was last told of, any other endpoint with the losses until now.
 */
uint64_t hub_ep_sync_mark(const struct hub_ep *ep);
/*
 * Has what was accepted reached guest buffers?  0 yes; -EAGAIN not yet
 * (wait for `changed`); -EIO bytes were discarded undelivered since
 * `mark` (-o session: their session ended), reported once; -ENODEV.
 */
int hub_ep_sync(struct hub_ep *ep, uint64_t mark);

#endif
