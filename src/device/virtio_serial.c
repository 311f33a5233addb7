/*
 * virtio-serial device: the control protocol and each port's data queues.
 *
 * The design choice that matters: every byte leaves guest memory when its
 * buffer is popped.  A guest TX buffer is copied into the port's ring and
 * given back at once, so nothing is ever read from guest memory later: a
 * UML guest frees the buffers it still sees as posted when it resets the
 * device, without telling us, and bytes kept only there would die with the
 * VM.  Back-pressure stays exact and per port: a generic port pops only
 * what its ring has room for, so a host that does not read fills the
 * guest's ring and blocks the guest writer.  Readers are cursors into the
 * port's byte stream; ring bytes are released once the slowest cursor has
 * passed them.  Everything the guest writes into a control message or a
 * queue is checked; a bad message is dropped and logged, never trusted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/buf.h"
#include "vportfs/log.h"
#include "vportfs/vser.h"
#include "vportfs/vu.h"

/* Device -> guest control messages waiting for control-rx buffers.  Only
 * host actions create them, and PORT_OPEN ones coalesce, so this bound is
 * reached only by a guest that never posts control buffers. */
#define CTRL_OUT_MAX 4096

/* Guest opens/closes of one port waiting for the data posted before them
 * (see struct vser_port.gev).  A guest flapping faster than that gets the
 * oldest applied at once. */
#define GEV_MAX 8

struct ctrl_msg {
	TAILQ_ENTRY(ctrl_msg) link;
	size_t len;
	uint8_t data[sizeof(struct virtio_console_control) + VSER_NAME_MAX];
};

struct vser_port {
	struct vser *dev;
	unsigned nr;
	char name[VSER_NAME_MAX + 1];
	bool console;

	bool ready;           /* guest sent PORT_READY(1) */
	bool guest_connected; /* guest sent PORT_OPEN(1) */
	bool host_connected;  /* the host side wants the port open */
	bool host_announced;  /* what we last queued as PORT_OPEN */
	bool close_pending;   /* host closed; PORT_OPEN(0) waits for `out` */
	bool dirty;           /* needs port_service() */
	bool state_changed;   /* the listener has not heard of a state change */

	uint64_t session;       /* guest opens so far */
	uint64_t session_start; /* stream offset where the latest began */
	uint16_t cols, rows;  /* console size told to the guest; 0: none */

	/* Guest -> host: a byte stream, addressed by offsets since the port
	 * was created.  `ring` holds [stream_end - its length, stream_end):
	 * on a generic port the bytes some reader still needs (or that wait
	 * for the next reader), on a console port the latest output. */
	struct vp_buf ring;
	uint64_t stream_end;
	uint64_t offered;   /* the host side has looked up to here */
	uint64_t delivered; /* the furthest any reader has consumed */
	bool tx_stalled;    /* a TX chain waits for room in the ring */
	TAILQ_HEAD(, vser_reader) readers;
	unsigned nreaders;

	/* Guest opens and closes not applied yet.  Each takes effect once
	 * every TX chain the guest had posted when we saw it (its avail
	 * index, `mark`) is in the ring: a guest's close ends its session
	 * after every byte it wrote before closing, even when the control
	 * queue is served before the data queue. */
	struct guest_event {
		uint16_t mark;
		bool open;
	} gev[GEV_MAX];
	unsigned ngev;

	/* Host -> guest. */
	struct vp_buf out;
	uint64_t out_discards; /* times accepted bytes were thrown away */
	/* Between vser_port_write_reserve and its commit: the RX chains
	 * popped for the write, in ring order, and the bytes they and `out`
	 * will take.  Empty at any other time. */
	struct vq_elem_list rx_held;
	/* Chains returned unused meanwhile (malformed), not yet signalled. */
	unsigned rx_unnotified;
	size_t reserved_rx, reserved_out;

	struct vser_port_stats st;
};

struct vser {
	struct vp_loop *loop;
	struct vser_config cfg;
	struct vu *vu;
	const struct vser_listener *listener;
	void *listener_opaque;

	struct vser_port **ports; /* indexed by number, cfg.max_ports slots */
	bool driver_ready;
	bool process_scheduled;
	bool ctrl_tx_dirty; /* control TX had more than one budget's worth */
	bool ctrl_rx_dirty; /* so had control RX (our messages to send) */
	uint64_t features;
	struct virtio_console_config config;
	/* Guest output on a TX queue with no port (posted after an unplug,
	 * or for a number never plugged): discarded, counted. */
	uint64_t orphan_bytes;

	TAILQ_HEAD(, ctrl_msg) ctrl_out;
	unsigned nctrl_out;
};

struct vser_reader {
	TAILQ_ENTRY(vser_reader) link;
	struct vser_port *port;
	uint64_t pos;   /* stream offset of the next byte to read */
	uint64_t limit; /* no byte at or past this one */
	uint64_t dropped;
};

static void port_service(struct vser_port *port);
static void send_resize(struct vser_port *port);
static void out_discard(struct vser_port *port);

/* ---- queues ----------------------------------------------------------- */

/* Which port a data queue belongs to; NULL for control queues. */
static struct vser_port *queue_port(struct vser *dev, unsigned q, bool *is_tx)
{
	unsigned nr;

	if (q == VSER_CTRL_RXQ || q == VSER_CTRL_TXQ)
		return NULL;
	nr = q < 2 ? 0 : q / 2 - 1;
	*is_tx = q & 1;
	return nr < dev->cfg.max_ports ? dev->ports[nr] : NULL;
}

static struct vq *started_queue(struct vser *dev, unsigned q)
{
	if (!dev->vu || !vu_queue_started(dev->vu, q))
		return NULL;
	return vu_queue(dev->vu, q);
}

/* Interrupt the guest (batched) if anything went back on queue q since the
 * used index stood at `before` -- our pushes, or malformed chains vq_pop
 * returned on its own. */
static void notify_if_used(struct vser *dev, unsigned q, const struct vq *vq,
			   uint16_t before)
{
	if (vq->used_idx != before)
		vu_queue_notify(dev->vu, q);
}

/* A transmit chain must be all device-readable, a receive chain all
 * device-writable: anything else is a malformed chain, returned unused. */
static bool wrong_direction(struct vq_elem *e, bool tx)
{
	if (tx ? e->in_num == 0 : e->out_num == 0)
		return false;
	vp_warn_rl("guest %s chain %u has %s descriptors: dropped",
		   tx ? "transmit" : "receive", e->head,
		   tx ? "device-writable" : "device-readable");
	return true;
}

static void notify_listener(struct vser_port *port)
{
	struct vser *dev = port->dev;

	if (dev->listener && dev->listener->port_changed)
		dev->listener->port_changed(port, dev->listener_opaque);
}

static void device_event(struct vser *dev, enum vser_dev_event ev)
{
	if (dev->listener && dev->listener->device_event)
		dev->listener->device_event(ev, dev->listener_opaque);
}

static void ctrl_tx_kick(struct vser *dev);
static void ctrl_flush(struct vser *dev);

static void process_cb(void *opaque)
{
	struct vser *dev = opaque;

	dev->process_scheduled = false;
	if (dev->ctrl_tx_dirty) {
		dev->ctrl_tx_dirty = false;
		ctrl_tx_kick(dev);
	}
	if (dev->ctrl_rx_dirty) {
		dev->ctrl_rx_dirty = false;
		ctrl_flush(dev);
	}
	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++) {
		struct vser_port *port = dev->ports[nr];

		if (port && port->dirty)
			port_service(port);
	}
}

static void dev_schedule(struct vser *dev)
{
	if (!dev->process_scheduled && vp_defer(dev->loop, process_cb, dev) == 0)
		dev->process_scheduled = true;
}

/* Service the port before the loop sleeps, outside the caller's stack:
 * the caller may be the listener itself. */
static void port_schedule(struct vser_port *port)
{
	port->dirty = true;
	dev_schedule(port->dev);
}

/* ---- control messages ------------------------------------------------- */

static void ctrl_flush(struct vser *dev)
{
	struct vq *vq = started_queue(dev, VSER_CTRL_RXQ);
	unsigned budget;
	uint16_t before;

	if (!vq)
		return;
	before = vq->used_idx;
	/* A ring's worth per turn: buffers we cannot use (wrong direction,
	 * too small) a guest may post without end. */
	budget = vq->num;
	while (!TAILQ_EMPTY(&dev->ctrl_out)) {
		struct ctrl_msg *m = TAILQ_FIRST(&dev->ctrl_out);
		struct vq_elem *e;
		int rc;

		rc = budget-- ? vq_pop(vq, vu_mem(dev->vu), &e) : -EAGAIN;
		if (rc == -EAGAIN) {
			dev->ctrl_rx_dirty = true;
			dev_schedule(dev);
			break;
		}
		if (rc <= 0)
			break;
		if (wrong_direction(e, false)) {
			vq_push(vq, e->head, 0);
			free(e);
			continue;
		}
		if (e->in_len < m->len) {
			vp_warn_rl("guest control buffer of %u bytes is too small",
				   e->in_len);
			vq_push(vq, e->head, 0);
			free(e);
			continue;
		}
		vq_push(vq, e->head, (uint32_t)vq_elem_fill(e, 0, m->data, m->len));
		free(e);
		TAILQ_REMOVE(&dev->ctrl_out, m, link);
		dev->nctrl_out--;
		free(m);
	}
	notify_if_used(dev, VSER_CTRL_RXQ, vq, before);
	vq_want_kick(vq);
}

static void ctrl_send(struct vser *dev, unsigned id, uint16_t event,
		      uint16_t value, const void *extra, size_t extra_len)
{
	struct virtio_console_control c = { .id = id, .event = event,
					    .value = value };
	struct ctrl_msg *m;

	if (event == VIRTIO_CONSOLE_PORT_OPEN ||
	    event == VIRTIO_CONSOLE_RESIZE) {
		/* Only the latest open state or size of a port matters to a
		 * guest that has not read the earlier one yet. */
		TAILQ_FOREACH(m, &dev->ctrl_out, link) {
			struct virtio_console_control *q = (void *)m->data;

			if (q->id == id && q->event == event) {
				q->value = value;
				if (extra_len)
					memcpy(m->data + sizeof(c), extra,
					       extra_len);
				return;
			}
		}
	}
	if (dev->nctrl_out >= CTRL_OUT_MAX || extra_len > VSER_NAME_MAX) {
		/* Only reachable for a guest that never reads control
		 * messages; hot-plug is refused before it gets here. */
		vp_warn_rl("control queue to the guest is full (%u messages): "
			   "guest not reading; dropping event %u for port %u",
			   dev->nctrl_out, event, id);
		return;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		vp_err("out of memory queueing a control message");
		return;
	}
	memcpy(m->data, &c, sizeof(c));
	if (extra_len)
		memcpy(m->data + sizeof(c), extra, extra_len);
	m->len = sizeof(c) + extra_len;
	vp_trace("control to the guest: port %u event %u value %u (+%zu bytes)",
		 id, event, value, extra_len);
	TAILQ_INSERT_TAIL(&dev->ctrl_out, m, link);
	dev->nctrl_out++;
	ctrl_flush(dev);
}

size_t vser_take_control(struct vser *dev, void *buf, size_t len)
{
	struct ctrl_msg *m = TAILQ_FIRST(&dev->ctrl_out);
	size_t n;

	if (!m)
		return 0;
	n = m->len < len ? m->len : len;
	memcpy(buf, m->data, n);
	TAILQ_REMOVE(&dev->ctrl_out, m, link);
	dev->nctrl_out--;
	free(m);
	return n;
}

static void announce_host(struct vser_port *port)
{
	bool want = port->host_connected || port->close_pending;

	if (!port->ready || port->host_announced == want)
		return;
	port->host_announced = want;
	ctrl_send(port->dev, port->nr, VIRTIO_CONSOLE_PORT_OPEN, want, NULL, 0);
}

static void port_announce_add(struct vser_port *port)
{
	ctrl_send(port->dev, port->nr, VIRTIO_CONSOLE_PORT_ADD, 1, NULL, 0);
}

static void handle_port_ready(struct vser_port *port, uint16_t value)
{
	if (!value) {
		vp_warn_rl("guest failed to set up port %u", port->nr);
		return;
	}
	if (port->ready)
		return; /* the guest may say it twice */
	port->ready = true;
	if (port->console)
		ctrl_send(port->dev, port->nr, VIRTIO_CONSOLE_CONSOLE_PORT, 1,
			  NULL, 0);
	if (port->name[0])
		ctrl_send(port->dev, port->nr, VIRTIO_CONSOLE_PORT_NAME, 1,
			  port->name, strlen(port->name));
	send_resize(port);
	announce_host(port);
	/* Writers may wait for the port to be ready. */
	port->state_changed = true;
	port_schedule(port);
}

static void port_event(struct vser_port *port, enum vser_port_event ev)
{
	struct vser *dev = port->dev;

	if (dev->listener && dev->listener->port_event)
		dev->listener->port_event(port, ev, dev->listener_opaque);
}

static void guest_open_apply(struct vser_port *port, bool open)
{
	if (port->guest_connected == open)
		return;
	port->guest_connected = open;
	if (open) {
		port->session++;
		port->session_start = port->stream_end;
	}
	port_event(port, open ? VSER_PORT_GUEST_OPEN : VSER_PORT_GUEST_CLOSE);
	vp_debug("port %u: guest %s", port->nr, open ? "opened" : "closed");
	if (!open && port->dev->cfg.out_per_session) {
		/* -o session: what the host wrote and the guest never got
		 * belonged to the session that ended; a host close that
		 * waited for it completes now. */
		out_discard(port);
		if (port->close_pending) {
			port->close_pending = false;
			announce_host(port);
		}
	}
	port->state_changed = true;
	port_schedule(port);
}

/* Apply the guest's opens and closes in order, each once the chains posted
 * before it have all been popped; with `force`, the oldest one in any case.
 * An open needs no mark: the guest cannot write between its close and its
 * next open, so what follows an open is the new session's. */
static void guest_events_apply(struct vser_port *port, bool force)
{
	struct vq *vq = started_queue(port->dev, vser_port_txq(port->nr));

	while (port->ngev) {
		struct guest_event g = port->gev[0];

		if (vq && !force && !g.open && !vq_popped_past(vq, g.mark))
			break;
		port->ngev--;
		memmove(port->gev, port->gev + 1,
			port->ngev * sizeof(port->gev[0]));
		guest_open_apply(port, g.open);
		force = false;
	}
}

static bool port_pull_tx(struct vser_port *port);

static void handle_guest_open(struct vser_port *port, uint16_t value)
{
	struct vq *vq = started_queue(port->dev, vser_port_txq(port->nr));

	if (port->ngev == GEV_MAX)
		guest_events_apply(port, true);
	port->gev[port->ngev++] = (struct guest_event){
		.mark = vq ? vq_avail_mark(vq) : 0,
		.open = value != 0,
	};
	guest_events_apply(port, false);
	/* A close waits for what the guest wrote before it, usually already
	 * posted: take it now (port_pull_tx applies the close at its place
	 * in the stream). */
	if (port->ngev && port_pull_tx(port))
		port->state_changed = true;
	if (port->ngev)
		port_schedule(port);
}

/* Forget what the guest driver knew: its sessions, its ready ports, the
 * control messages it has not read. */
static void driver_reset(struct vser *dev)
{
	struct ctrl_msg *m;

	while ((m = TAILQ_FIRST(&dev->ctrl_out))) {
		TAILQ_REMOVE(&dev->ctrl_out, m, link);
		free(m);
	}
	dev->nctrl_out = 0;
	dev->driver_ready = false;
	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++) {
		struct vser_port *port = dev->ports[nr];

		if (!port)
			continue;
		port->ready = false;
		port->ngev = 0;
		if (port->guest_connected) {
			port->guest_connected = false;
			port_event(port, VSER_PORT_GUEST_CLOSE);
		}
		port->host_announced = false;
		/* Host bytes not yet in guest buffers wait for the guest's next
		 * open, after its reboot too; -o session drops them. */
		if (dev->cfg.out_per_session) {
			port->close_pending = false;
			out_discard(port);
		}
		port->state_changed = true;
		port_schedule(port);
	}
}

void vser_handle_control(struct vser *dev, const void *buf, size_t len)
{
	struct virtio_console_control c;
	struct vser_port *port;

	if (len < sizeof(c)) {
		vp_warn_rl("guest sent a %zu-byte control message", len);
		return;
	}
	memcpy(&c, buf, sizeof(c));
	vp_trace("control from the guest: port %u event %u value %u", c.id,
		 c.event, c.value);
	if (c.event == VIRTIO_CONSOLE_DEVICE_READY) {
		if (!c.value) {
			vp_warn_rl("guest driver failed to initialise the device");
			return;
		}
		if (dev->driver_ready) {
			/* The guest driver started over (module reload, guest
			 * reboot on the same connection): so do the ports. */
			vp_info("guest driver restarted");
			driver_reset(dev);
		}
		dev->driver_ready = true;
		vp_info("guest driver ready");
		for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++)
			if (dev->ports[nr])
				port_announce_add(dev->ports[nr]);
		device_event(dev, VSER_DEV_DRIVER_READY);
		return;
	}
	port = c.id < dev->cfg.max_ports ? dev->ports[c.id] : NULL;
	if (!port) {
		vp_warn_rl("guest control event %u for unknown port %u",
			   c.event, c.id);
		return;
	}
	switch (c.event) {
	case VIRTIO_CONSOLE_PORT_READY:
		handle_port_ready(port, c.value);
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		handle_guest_open(port, c.value);
		break;
	default:
		vp_warn_rl("guest sent unexpected control event %u", c.event);
		break;
	}
}

static void ctrl_tx_kick(struct vser *dev)
{
	struct vq *vq = started_queue(dev, VSER_CTRL_TXQ);
	struct vq_elem *e;
	unsigned budget;
	uint16_t before;

	if (!vq)
		return;
	before = vq->used_idx;
	/* The guest busy-waits for these buffers: take them now, one ring's
	 * worth per turn so that a flood cannot starve the loop. */
	budget = vq->num;
	do {
		int rc = 0;

		while (budget && (rc = vq_pop(vq, vu_mem(dev->vu), &e)) > 0) {
			uint8_t msg[sizeof(struct virtio_console_control)];
			size_t n = 0;

			budget--;
			if (wrong_direction(e, true)) {
				vq_push(vq, e->head, 0);
				free(e);
				continue;
			}
			for (unsigned i = 0; i < e->out_num && n < sizeof(msg);
			     i++) {
				size_t k = e->iov[i].iov_len;

				if (k > sizeof(msg) - n)
					k = sizeof(msg) - n;
				memcpy(msg + n, e->iov[i].iov_base, k);
				n += k;
			}
			vq_push(vq, e->head, 0);
			free(e);
			vser_handle_control(dev, msg, n);
		}
		if (!budget || rc == -EAGAIN) {
			dev->ctrl_tx_dirty = true;
			dev_schedule(dev);
			break;
		}
		vq_want_kick(vq);
	} while (vq_has_avail(vq));
	notify_if_used(dev, VSER_CTRL_TXQ, vq, before);
}

/* ---- guest -> host ---------------------------------------------------- */

static uint64_t ring_start(const struct vser_port *port)
{
	return port->stream_end - vp_buf_len(&port->ring);
}

/* Bytes in [from, to) that no reader consumed: dropped. */
static void count_dropped(struct vser_port *port, uint64_t from, uint64_t to)
{
	if (from < port->delivered)
		from = port->delivered;
	if (to > from)
		port->st.dropped_bytes += to - from;
}

/* Let go of the generic-port ring bytes before `upto`: every reader has
 * read them, or nobody will.  Readers behind move up.  True if room was
 * made (a stalled TX queue may go on). */
static bool ring_release(struct vser_port *port, uint64_t upto)
{
	uint64_t start = ring_start(port);
	struct vser_reader *r;

	if (upto > port->stream_end)
		upto = port->stream_end;
	if (upto <= start)
		return false;
	count_dropped(port, start, upto);
	vp_buf_consume(&port->ring, (size_t)(upto - start));
	TAILQ_FOREACH(r, &port->readers, link)
		if (r->pos < upto)
			r->pos = upto;
	return true;
}

/* Append console output to the ring, dropping the oldest bytes when it is
 * full: the guest must never wait for a console reader.  Dropped bytes no
 * reader had received are counted. */
static void console_put(struct vser_port *port, const char *p, size_t n)
{
	port->st.rx_bytes += n;
	if (n > vp_buf_room(&port->ring)) {
		uint64_t start = ring_start(port);
		size_t drop = n - vp_buf_room(&port->ring);

		if (drop > vp_buf_len(&port->ring))
			drop = vp_buf_len(&port->ring);
		count_dropped(port, start, start + drop);
		vp_buf_consume(&port->ring, drop);
	}
	if (n > port->ring.cap) {
		/* The ring is empty now; only the last cap bytes fit. */
		size_t skip = n - port->ring.cap;

		count_dropped(port, port->stream_end, port->stream_end + skip);
		port->stream_end += skip;
		p += skip;
		n = port->ring.cap;
	}
	vp_buf_put(&port->ring, p, n);
	port->stream_end += n;
}

static void console_take(struct vser_port *port, const struct vq_elem *e)
{
	for (unsigned i = 0; i < e->out_num; i++)
		console_put(port, e->iov[i].iov_base, e->iov[i].iov_len);
}

/* Copy a generic port's chain into the ring, whole, or say false if it
 * does not fit yet.  A chain larger than the whole ring never would: what
 * does not fit in the empty ring is dropped and counted. */
static bool generic_take(struct vser_port *port, const struct vq_elem *e)
{
	size_t copied = 0;

	if (e->out_len > vp_buf_room(&port->ring) && vp_buf_len(&port->ring))
		return false;
	for (unsigned i = 0; i < e->out_num; i++)
		copied += vp_buf_put(&port->ring, e->iov[i].iov_base,
				     e->iov[i].iov_len);
	port->stream_end += copied;
	port->st.rx_bytes += copied;
	if (copied < e->out_len) {
		vp_warn_rl("port %u: guest buffer of %u bytes is larger than "
			   "the port's ring (%zu): %zu bytes dropped",
			   port->nr, e->out_len, port->ring.cap,
			   e->out_len - copied);
		port->st.dropped_bytes += e->out_len - copied;
	}
	return true;
}

/* Take what the guest wrote, as far as there is room; true if there is
 * something new to read.  Every chain taken goes back to the guest at
 * once. */
static bool port_pull_tx(struct vser_port *port)
{
	struct vser *dev = port->dev;
	unsigned q = vser_port_txq(port->nr);
	struct vq *vq = started_queue(dev, q);
	bool got = false;
	struct vq_elem *e;
	unsigned budget;
	uint16_t before;
	int rc = 0;

	if (!vq)
		return false;
	port->tx_stalled = false;
	before = vq->used_idx;
	budget = vq->num; /* a ring's worth per turn; the rest comes next */
	do {
		while (budget) {
			/* A guest open or close takes effect exactly between
			 * the chains posted before it and those after. */
			if (port->ngev)
				guest_events_apply(port, false);
			rc = vq_pop(vq, vu_mem(dev->vu), &e);
			if (rc <= 0)
				break;
			budget--;
			if (wrong_direction(e, true)) {
				/* returned unused below */
			} else if (port->console) {
				console_take(port, e);
				got = true;
			} else if (!generic_take(port, e)) {
				/* Resumed when readers make room. */
				vq_unpop(vq);
				free(e);
				port->tx_stalled = true;
				goto out;
			} else if (e->out_len) {
				got = true;
			}
			vq_push(vq, e->head, 0);
			free(e);
		}
		if (rc == -ENOMEM || rc == -EAGAIN || !budget) {
			/* Later, rather than spin (or hog the loop) now. */
			port_schedule(port);
			break;
		}
		vq_want_kick(vq);
	} while (vq_has_avail(vq));
out:
	/* A console's writer spins for its buffers (vu_queue_notify_lazy); a
	 * generic port's takes them back at its next write and waits only on
	 * a full ring (vu_queue_notify_moderated). */
	if (port->console && vq->used_idx != before)
		vu_queue_notify_lazy(dev->vu, q);
	else
		vu_queue_notify_moderated(dev->vu, q, before);
	return got;
}

/* Chains on a TX queue whose port does not exist: data for a port that was
 * unplugged (Linux's write can post one more buffer after PORT_REMOVE) or
 * never plugged.  Returned unread, counted, never handed to the next port
 * of that number. */
static void orphan_discard(struct vser *dev, unsigned q)
{
	struct vq *vq = started_queue(dev, q);
	uint64_t bytes = 0;
	struct vq_elem *e;
	unsigned budget;
	uint16_t before;

	if (!vq)
		return;
	before = vq->used_idx;
	budget = vq->num;
	while (budget-- && vq_pop(vq, vu_mem(dev->vu), &e) > 0) {
		bytes += e->out_len;
		vq_push(vq, e->head, 0);
		free(e);
	}
	vq_want_kick(vq);
	notify_if_used(dev, q, vq, before);
	if (bytes)
		vp_warn_rl("guest wrote %llu bytes on queue %u, which has no "
			   "port: discarded",
			   (unsigned long long)bytes, q);
	dev->orphan_bytes += bytes;
}

/* Release the ring bytes every reader has read past. */
static void release_read(struct vser_port *port)
{
	uint64_t low = port->stream_end, done = 0;
	struct vser_reader *r;
	bool active = false;

	if (port->console || port->nreaders == 0)
		return;
	/* A reader that has everything up to its limit (a hung-up session
	 * drained) needs nothing more: it must not hold the next session.
	 * Nor may it give that session's bytes away: with no other reader,
	 * what lies past its limit waits for the next one. */
	TAILQ_FOREACH(r, &port->readers, link) {
		if (r->pos < r->limit) {
			active = true;
			if (r->pos < low)
				low = r->pos;
		} else if (r->limit > done) {
			done = r->limit;
		}
	}
	if (!active && done < low)
		low = done;
	/* Room lets a stalled guest writer go on. */
	if (ring_release(port, low) && port->tx_stalled)
		port_schedule(port);
}

struct vser_reader *vser_reader_new(struct vser_port *port,
				    enum vser_backlog backlog)
{
	struct vser_reader *r = calloc(1, sizeof(*r));
	uint64_t from = ring_start(port);

	if (!r)
		return NULL;
	r->port = port;
	r->limit = UINT64_MAX;
	r->pos = port->stream_end;
	if (backlog == VSER_BACKLOG_SESSION && !port->guest_connected)
		from = port->stream_end;
	else if (backlog == VSER_BACKLOG_SESSION && port->session_start > from)
		from = port->session_start;
	/* A generic port's unread output goes to its first reader; a hung-up
	 * session's readers (-o session) do not count. */
	if (backlog == VSER_BACKLOG_SESSION ||
	    (backlog == VSER_BACKLOG_UNREAD &&
	     (port->console || port->nreaders == 0))) {
		/* Never a byte some reader already had. */
		r->pos = port->delivered > from ? port->delivered : from;
		if (r->pos > port->stream_end)
			r->pos = port->stream_end;
	}
	TAILQ_INSERT_TAIL(&port->readers, r, link);
	port->nreaders++;
	return r;
}

void vser_reader_free(struct vser_reader *r)
{
	struct vser_port *port;

	if (!r)
		return;
	port = r->port;
	TAILQ_REMOVE(&port->readers, r, link);
	port->nreaders--;
	release_read(port);
	/* A guest close waiting behind a full ring nobody will read now
	 * applies at once (port_service). */
	if (port->nreaders == 0 && port->ngev && port->tx_stalled)
		port_schedule(port);
	free(r);
}

void vser_reader_seen(struct vser_reader *r)
{
	struct vser_port *port = r->port;
	uint64_t end = port->stream_end < r->limit ? port->stream_end : r->limit;

	if (end > port->offered)
		port->offered = end;
}

void vser_reader_set_limit(struct vser_reader *r, uint64_t limit)
{
	r->limit = limit;
}

/* Bring a console reader that fell behind the ring up to its start. */
static void reader_catch_up(struct vser_reader *r)
{
	struct vser_port *port = r->port;

	if (port->console && r->pos < ring_start(port)) {
		r->dropped += ring_start(port) - r->pos;
		r->pos = ring_start(port);
	}
}

size_t vser_reader_readable(struct vser_reader *r)
{
	uint64_t end = r->port->stream_end;

	reader_catch_up(r);
	if (r->limit < end)
		end = r->limit;
	return end > r->pos ? (size_t)(end - r->pos) : 0;
}

size_t vser_reader_peek(struct vser_reader *r, struct iovec *iov, int *niov,
			size_t max)
{
	struct vser_port *port = r->port;
	size_t total = 0, avail = vser_reader_readable(r);
	struct iovec two[2];
	int k, n = 0;

	if (max > avail)
		max = avail;
	k = vp_buf_peek_at(&port->ring, (size_t)(r->pos - ring_start(port)),
			   two, max);
	for (int i = 0; i < k && n < *niov; i++) {
		iov[n++] = two[i];
		total += two[i].iov_len;
	}
	*niov = n;
	return total;
}

void vser_reader_consume(struct vser_reader *r, size_t n)
{
	size_t avail = vser_reader_readable(r);

	r->pos += n < avail ? n : avail;
	if (r->pos > r->port->delivered)
		r->port->delivered = r->pos;
	release_read(r->port);
}

uint64_t vser_reader_dropped(const struct vser_reader *r)
{
	return r->dropped;
}

/* ---- host -> guest ---------------------------------------------------- */

/* Throw away accepted host bytes that can no longer reach the guest, and
 * remember that it happened (fsync reports it). */
static void out_discard(struct vser_port *port)
{
	if (vp_buf_len(&port->out))
		port->out_discards++;
	vp_buf_clear(&port->out);
}

uint64_t vser_port_write_discards(const struct vser_port *port)
{
	return port->out_discards;
}

/* Fill one guest receive buffer from src[], skipping the first `skip`
 * bytes of it; returns the bytes placed. */
static size_t elem_fill_segments(const struct vq_elem *e, const struct iovec *src,
				 int nsrc, size_t skip)
{
	size_t placed = 0;

	for (int i = 0; i < nsrc && placed < e->in_len; i++) {
		const char *p = src[i].iov_base;
		size_t n = src[i].iov_len;

		if (skip >= n) {
			skip -= n;
			continue;
		}
		p += skip;
		n -= skip;
		skip = 0;
		placed += vq_elem_fill(e, placed, p, n);
	}
	return placed;
}

/*
 * Pop the guest's posted receive buffers until they hold `want` bytes, into
 * port->rx_held; returns the bytes they will take (at most want).  When
 * the ring runs dry first, ask for a kick and look once more: with
 * EVENT_IDX a guest that posted a buffer just before we published
 * avail_event will not kick.
 */
static size_t rx_pop(struct vser_port *port, size_t want)
{
	struct vser *dev = port->dev;
	struct vq *vq = started_queue(dev, vser_port_rxq(port->nr));
	size_t room = 0;
	unsigned budget;
	uint16_t before;

	if (!vq || !port->guest_connected)
		return 0;
	before = vq->used_idx;
	budget = vq->num;
	while (room < want && budget) {
		struct vq_elem *e;
		int rc = vq_pop(vq, vu_mem(dev->vu), &e);

		if (rc == -EAGAIN)
			port_schedule(port);
		if (rc < 0)
			break;
		budget--;
		if (rc == 0) {
			vq_want_kick(vq);
			if (!vq_has_avail(vq))
				break;
			continue;
		}
		/* An empty receive buffer cannot take a byte: malformed,
		 * returned unused. */
		if (wrong_direction(e, false) || e->in_len == 0) {
			vq_push(vq, e->head, 0);
			free(e);
			continue;
		}
		TAILQ_INSERT_TAIL(&port->rx_held, e, link);
		room += e->in_len;
	}
	if (!budget && room < want)
		port_schedule(port); /* more buffers may be waiting */
	/* Returned here, or by vq_pop (a chain it could not map). */
	port->rx_unnotified += (uint16_t)(vq->used_idx - before);
	return room < want ? room : want;
}

/*
 * Copy src[] into the chains rx_pop held, one used entry per buffer, and
 * interrupt the guest; returns the bytes placed.  src holds exactly what
 * rx_pop returned, so every chain gets at least one byte: a used receive
 * buffer of length 0 would read as end of file in the guest.
 */
static size_t rx_push(struct vser_port *port, const struct iovec *src, int nsrc)
{
	struct vser *dev = port->dev;
	unsigned q = vser_port_rxq(port->nr);
	struct vq *vq = started_queue(dev, q);
	struct vq_elem *e;
	unsigned used = port->rx_unnotified;
	size_t done = 0;

	port->rx_unnotified = 0;
	if (!vq)
		return 0;
	while ((e = TAILQ_FIRST(&port->rx_held))) {
		size_t n = elem_fill_segments(e, src, nsrc, done);

		TAILQ_REMOVE(&port->rx_held, e, link);
		vq_push(vq, e->head, (uint32_t)n);
		free(e);
		done += n;
		used++;
	}
	if (used)
		vu_queue_notify(dev->vu, q);
	port->st.tx_bytes += done;
	return done;
}

/* Copy src[] into the guest's posted receive buffers; returns the bytes
 * placed. */
static size_t rx_fill(struct vser_port *port, const struct iovec *src, int nsrc)
{
	size_t total = 0;

	for (int i = 0; i < nsrc; i++)
		total += src[i].iov_len;
	rx_pop(port, total);
	return rx_push(port, src, nsrc);
}

/* Move buffered host bytes into guest RX buffers; true if any moved. */
static bool port_flush_out(struct vser_port *port)
{
	struct iovec two[2];
	int k = vp_buf_peek(&port->out, two, vp_buf_len(&port->out));
	size_t n;

	if (k == 0)
		return false;
	n = rx_fill(port, two, k);
	vp_buf_consume(&port->out, n);
	return n > 0;
}

bool vser_port_writable(const struct vser_port *port)
{
	return port->guest_connected && port->ready &&
	       (port->out.cap == 0 || vp_buf_room(&port->out) > 0);
}

size_t vser_port_write_pending(const struct vser_port *port)
{
	return vp_buf_len(&port->out);
}

ssize_t vser_port_write_reserve(struct vser_port *port, size_t len)
{
	size_t rx = 0, out;

	if (!vser_port_writable(port))
		return -EAGAIN;
	if (port->out.cap == 0 && vp_buf_init(&port->out, port->dev->cfg.out_buf))
		return -ENOMEM;
	/* Older bytes first; then straight into guest buffers (no copy
	 * into ours), and only the rest is buffered. */
	port_flush_out(port);
	if (vp_buf_len(&port->out) == 0)
		rx = rx_pop(port, len);
	out = len - rx < vp_buf_room(&port->out) ? len - rx
						 : vp_buf_room(&port->out);
	port->reserved_rx = rx;
	port->reserved_out = out;
	/* 0 only for len 0, as rx_pop runs only with our buffer empty: then
	 * no chain is held and none is owed an interrupt. */
	return rx + out ? (ssize_t)(rx + out) : -EAGAIN;
}

void vser_port_write_commit(struct vser_port *port, const void *buf)
{
	struct iovec iov = {(void *)buf, port->reserved_rx};

	rx_push(port, &iov, 1);
	vp_buf_put(&port->out, (const char *)buf + port->reserved_rx,
		   port->reserved_out);
	port->reserved_rx = port->reserved_out = 0;
}

ssize_t vser_port_write(struct vser_port *port, const void *buf, size_t len)
{
	ssize_t n = vser_port_write_reserve(port, len);

	if (n > 0)
		vser_port_write_commit(port, buf);
	return n;
}

/* ---- ports -------------------------------------------------------------- */

static void port_service(struct vser_port *port)
{
	bool changed;

	port->dirty = false;
	changed = port_pull_tx(port);
	/* A full ring nobody reads will not drain: the guest's close must
	 * not wait for it. */
	guest_events_apply(port, port->tx_stalled && port->nreaders == 0);
	changed |= port_flush_out(port);
	if (port->close_pending && vp_buf_len(&port->out) == 0) {
		port->close_pending = false;
		announce_host(port);
	}
	if (changed || port->state_changed) {
		port->state_changed = false;
		notify_listener(port);
	}
}

void vser_port_set_host_connected(struct vser_port *port, bool connected)
{
	if (port->host_connected == connected)
		return;
	port->host_connected = connected;
	if (connected) {
		port->close_pending = false;
		/* Output the guest wrote meanwhile may be waiting. */
		port_schedule(port);
	} else {
		/* Output the host was offered and left unread is discarded,
		 * as the guest driver does with host output when it closes;
		 * what arrived after the host last looked is kept for the next
		 * opener.  Readers that remain (hung-up sessions) keep theirs. */
		if (!port->console && port->nreaders == 0 &&
		    ring_release(port, port->offered))
			port_schedule(port);
		/* PORT_OPEN 0 waits until what the host wrote is in guest
		 * buffers, for the guest's next open if need be; -o session
		 * drops it with the session, so only a live one waits. */
		port->close_pending =
			vp_buf_len(&port->out) > 0 &&
			(port->guest_connected || !port->dev->cfg.out_per_session);
	}
	announce_host(port);
}

static bool name_taken(struct vser *dev, const char *name)
{
	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++)
		if (dev->ports[nr] && strcmp(dev->ports[nr]->name, name) == 0)
			return true;
	return false;
}

int vser_port_add(struct vser *dev, const struct vser_port_config *pc,
		  struct vser_port **out)
{
	size_t ring = pc->ring_size	? pc->ring_size
		      : pc->console ? dev->cfg.console_ring
				    : dev->cfg.port_ring;
	const char *name = pc->name ? pc->name : "";
	struct vser_port *port;
	int nr = pc->nr;

	if (strlen(name) > VSER_NAME_MAX || nr >= (int)dev->cfg.max_ports ||
	    (!pc->console && ring < VSER_PORT_RING_MIN))
		return -EINVAL;
	/* A guest that reads no control messages must not miss a PORT_ADD
	 * (or later PORT_REMOVE): refuse the hot-plug instead. */
	if (dev->driver_ready && dev->nctrl_out + 8 >= CTRL_OUT_MAX)
		return -EAGAIN;
	if (name[0] && name_taken(dev, name))
		return -EEXIST;
	if (nr < 0) {
		/* Port 0 is kept for a console, as QEMU does. */
		for (unsigned i = pc->console ? 0 : 1; i < dev->cfg.max_ports;
		     i++) {
			if (!dev->ports[i]) {
				nr = (int)i;
				break;
			}
		}
		if (nr < 0)
			return -ENOSPC;
	} else if (dev->ports[nr]) {
		return -EEXIST;
	}
	port = calloc(1, sizeof(*port));
	if (!port)
		return -ENOMEM;
	if (vp_buf_init(&port->ring, ring)) {
		free(port);
		return -ENOMEM;
	}
	port->dev = dev;
	port->nr = (unsigned)nr;
	port->console = pc->console;
	memcpy(port->name, name, strlen(name) + 1);
	TAILQ_INIT(&port->readers);
	TAILQ_INIT(&port->rx_held);
	dev->ports[nr] = port;
	if (dev->driver_ready) {
		/* Hot-plug.  Whatever waits on the TX queue was written to
		 * the earlier port of this number (after its unplug): not
		 * ours.  A guest that unplugged that port took back the
		 * buffers it had posted and rewound its avail index: start
		 * from where it stands now. */
		unsigned qs[2] = { vser_port_rxq(port->nr),
				   vser_port_txq(port->nr) };

		orphan_discard(dev, qs[1]);
		for (int i = 0; i < 2; i++) {
			struct vq *vq = started_queue(dev, qs[i]);

			if (vq)
				vq_resync_avail(vq);
		}
		port_announce_add(port);
	}
	if (out)
		*out = port;
	return 0;
}

static void port_free(struct vser_port *port)
{
	struct vser_reader *r;
	struct vq_elem *e;

	while ((r = TAILQ_FIRST(&port->readers))) {
		vp_err("port %u freed with a reader attached", port->nr);
		TAILQ_REMOVE(&port->readers, r, link);
		free(r);
	}
	while ((e = TAILQ_FIRST(&port->rx_held))) {
		vp_err("port %u freed with a write reserved", port->nr);
		TAILQ_REMOVE(&port->rx_held, e, link);
		free(e);
	}
	vp_buf_destroy(&port->ring);
	vp_buf_destroy(&port->out);
	free(port);
}

void vser_port_remove(struct vser_port *port)
{
	struct vser *dev = port->dev;

	out_discard(port);
	if (dev->driver_ready)
		ctrl_send(dev, port->nr, VIRTIO_CONSOLE_PORT_REMOVE, 1, NULL, 0);
	dev->ports[port->nr] = NULL;
	port_free(port);
}

static void send_resize(struct vser_port *port)
{
	struct virtio_console_resize sz = { .cols = port->cols,
					    .rows = port->rows };

	if (port->ready && port->cols && port->rows)
		ctrl_send(port->dev, port->nr, VIRTIO_CONSOLE_RESIZE, 0, &sz,
			  sizeof(sz));
}

int vser_port_resize(struct vser_port *port, uint16_t cols, uint16_t rows)
{
	if (!port->console || cols == 0 || rows == 0)
		return -EINVAL;
	port->cols = cols;
	port->rows = rows;
	send_resize(port);
	return 0;
}

void vser_port_winsize(const struct vser_port *port, uint16_t *cols,
		       uint16_t *rows)
{
	*cols = port->cols;
	*rows = port->rows;
}

/* ---- vhost-user device callbacks --------------------------------------- */

static int dev_get_config(void *opaque, uint32_t off, uint8_t *buf,
			  uint32_t len)
{
	struct vser *dev = opaque;
	const uint8_t *cfg = (const uint8_t *)&dev->config;

	memset(buf, 0, len);
	if (off < sizeof(dev->config)) {
		uint32_t n = sizeof(dev->config) - off;

		memcpy(buf, cfg + off, n < len ? n : len);
	}
	return 0;
}

static int dev_set_config(void *opaque, uint32_t off, const uint8_t *buf,
			  uint32_t len)
{
	struct vser *dev = opaque;
	const uint32_t emerg = offsetof(struct virtio_console_config, emerg_wr);

	/* Only emerg_wr is writable: its low byte is one character for the
	 * first console port. */
	if (off != emerg || len < 1 || len > 4)
		return -EINVAL;
	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++) {
		struct vser_port *port = dev->ports[nr];

		if (port && port->console) {
			console_put(port, (const char *)buf, 1);
			port->state_changed = true;
			port_schedule(port);
			return 0;
		}
	}
	vp_warn_rl("guest emergency write with no console port: dropped");
	return 0;
}

static void dev_set_features(void *opaque, uint64_t features)
{
	struct vser *dev = opaque;

	dev->features = features;
}

static void dev_queue_kick(void *opaque, unsigned q)
{
	struct vser *dev = opaque;
	struct vser_port *port;
	bool is_tx = false;

	if (q == VSER_CTRL_TXQ) {
		ctrl_tx_kick(dev);
		return;
	}
	if (q == VSER_CTRL_RXQ) {
		ctrl_flush(dev);
		return;
	}
	port = queue_port(dev, q, &is_tx);
	if (!port) {
		/* Receive buffers on a queue with no port hold no data:
		 * leave them. */
		if (is_tx)
			orphan_discard(dev, q);
		return;
	}
	port_service(port);
	/* New RX buffers make a blocked host writer runnable even when
	 * nothing was waiting in our buffer. */
	if (!is_tx)
		notify_listener(port);
}

/* The VM is gone (or reset its device): so are its sessions.  What it
 * wrote is in our rings, for the host to read after it. */
static void dev_reset(struct vser *dev)
{
	driver_reset(dev);
	dev->features = 0;
}

/* The VM is going; its rings are still mapped.  What it posted and we had
 * not taken yet (a kick not handled, or a generic port's ring full) is
 * taken now, in order, as far as the ring has room: the guest's write()
 * had returned for it.  The rest dies with the VM and is counted.  The
 * chains are not returned: the rings go away next. */
static void dev_disconnecting(void *opaque)
{
	struct vser *dev = opaque;

	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++) {
		struct vser_port *port = dev->ports[nr];
		struct vq *vq = port ? started_queue(dev, vser_port_txq(nr))
				     : NULL;
		unsigned budget = vq ? vq->num : 0;
		bool full = false;
		struct vq_elem *e;

		while (budget-- && vq_pop(vq, vu_mem(dev->vu), &e) > 0) {
			if (wrong_direction(e, true))
				; /* nothing of the guest's */
			else if (port->console)
				console_take(port, e);
			else if (full || !generic_take(port, e)) {
				full = true;
				port->st.dropped_bytes += e->out_len;
			}
			free(e);
		}
	}
}

static void dev_connected(void *opaque)
{
	struct vser *dev = opaque;

	dev_reset(dev);
	device_event(dev, VSER_DEV_FRONTEND_UP);
}

static void dev_disconnected(void *opaque)
{
	struct vser *dev = opaque;

	dev_reset(dev);
	device_event(dev, VSER_DEV_FRONTEND_DOWN);
}

static const struct vu_device_ops vser_vu_ops = {
	.get_config = dev_get_config,
	.set_config = dev_set_config,
	.set_features = dev_set_features,
	.queue_kick = dev_queue_kick,
	.disconnecting = dev_disconnecting,
	.connected = dev_connected,
	.disconnected = dev_disconnected,
};

/* ---- lifetime and accessors ------------------------------------------- */

struct vser *vser_new(struct vp_loop *loop, const struct vser_config *cfg)
{
	struct vu_config vcfg = {
		.features = (1ull << VIRTIO_F_VERSION_1) |
			    (1ull << VIRTIO_CONSOLE_F_MULTIPORT) |
			    (1ull << VIRTIO_F_EVENT_IDX) |
			    (1ull << VIRTIO_F_INDIRECT_DESC) |
			    (1ull << VIRTIO_CONSOLE_F_EMERG_WRITE) |
			    (1ull << VIRTIO_CONSOLE_F_SIZE),
		.protocol_features = (1ull << VU_PROTOCOL_F_MQ) |
				     (1ull << VU_PROTOCOL_F_REPLY_ACK) |
				     (1ull << VU_PROTOCOL_F_BACKEND_REQ) |
				     (1ull << VU_PROTOCOL_F_CONFIG),
	};
	struct vser *dev;

	if (cfg->max_ports < 1 || cfg->max_ports > VSER_MAX_PORTS_LIMIT)
		return NULL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->ports = calloc(cfg->max_ports, sizeof(*dev->ports));
	if (!dev->ports)
		goto err_free_dev;
	dev->loop = loop;
	dev->cfg = *cfg;
	if (!dev->cfg.console_ring)
		dev->cfg.console_ring = VSER_CONSOLE_RING_DEFAULT;
	if (!dev->cfg.port_ring)
		dev->cfg.port_ring = VSER_PORT_RING_DEFAULT;
	if (!dev->cfg.out_buf)
		dev->cfg.out_buf = VSER_OUT_BUF_DEFAULT;
	dev->config.max_nr_ports = cfg->max_ports;
	TAILQ_INIT(&dev->ctrl_out);
	vcfg.nqueues = 2 * (cfg->max_ports + 1);
	dev->vu = vu_new(loop, &vcfg, &vser_vu_ops, dev);
	if (!dev->vu)
		goto err_free_ports;
	return dev;

err_free_ports:
	free(dev->ports);
err_free_dev:
	free(dev);
	return NULL;
}

void vser_free(struct vser *dev)
{
	if (!dev)
		return;
	dev_reset(dev);
	vu_free(dev->vu);
	dev->vu = NULL;
	if (dev->process_scheduled)
		vp_defer_cancel(dev->loop, process_cb, dev);
	for (unsigned nr = 0; nr < dev->cfg.max_ports; nr++)
		if (dev->ports[nr])
			port_free(dev->ports[nr]);
	free(dev->ports);
	free(dev);
}

void vser_set_listener(struct vser *dev, const struct vser_listener *l,
		       void *opaque)
{
	dev->listener = l;
	dev->listener_opaque = opaque;
}

struct vu *vser_vu(struct vser *dev)
{
	return dev->vu;
}

unsigned vser_max_ports(const struct vser *dev)
{
	return dev->cfg.max_ports;
}

struct vser_port *vser_port_by_nr(struct vser *dev, unsigned nr)
{
	return nr < dev->cfg.max_ports ? dev->ports[nr] : NULL;
}

struct vser_port *vser_port_next(struct vser *dev, unsigned nr)
{
	for (; nr < dev->cfg.max_ports; nr++)
		if (dev->ports[nr])
			return dev->ports[nr];
	return NULL;
}

bool vser_driver_ready(const struct vser *dev)
{
	return dev->driver_ready;
}

bool vser_frontend_connected(const struct vser *dev)
{
	return vu_connected(dev->vu);
}

uint64_t vser_features(const struct vser *dev)
{
	return dev->features;
}

unsigned vser_port_nr(const struct vser_port *port)
{
	return port->nr;
}

const char *vser_port_name(const struct vser_port *port)
{
	return port->name;
}

bool vser_port_is_console(const struct vser_port *port)
{
	return port->console;
}

bool vser_port_guest_connected(const struct vser_port *port)
{
	return port->guest_connected;
}

bool vser_port_host_connected(const struct vser_port *port)
{
	return port->host_connected;
}

uint64_t vser_port_guest_session(const struct vser_port *port)
{
	return port->session;
}

uint64_t vser_port_stream_end(const struct vser_port *port)
{
	return port->stream_end;
}

void vser_port_stats(const struct vser_port *port, struct vser_port_stats *st)
{
	*st = port->st;
}

uint64_t vser_orphan_bytes(const struct vser *dev)
{
	return dev->orphan_bytes;
}
