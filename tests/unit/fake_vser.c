/*
 * The fake virtio-serial device of the hub's tests; see fake_vser.h.
 *
 * The one design choice that matters: readers, the ring and the release
 * of ring bytes follow the real device's offset model (ring_start,
 * delivered, offered, per-reader pos/limit), only without virtqueues, so
 * what the hub asks of the device (backlog, limits, the order in which it
 * frees readers and drops the host side) has the consequences it would
 * have for real, and a contract the hub breaks fails the test at the call.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <cmocka.h>

#include "fake_vser.h"
#include "vportfs/buf.h"

struct vser_reader {
	TAILQ_ENTRY(vser_reader) link;
	struct vser_port *port;
	uint64_t pos;	/* stream offset of the next byte to read */
	uint64_t limit; /* no byte at or past this one */
	uint64_t dropped;
};

struct vser_port {
	struct vser *dev;
	unsigned nr;
	char name[VSER_NAME_MAX + 1];
	bool console;
	bool guest_connected;
	bool host_connected;
	bool dirty; /* port_changed owed from the loop */
	uint64_t session;
	uint64_t session_start;
	uint16_t cols, rows;

	/* Guest -> host: the ring holds [stream_end - its length,
	 * stream_end). */
	struct vp_buf ring;
	uint64_t stream_end;
	uint64_t delivered; /* the furthest any reader consumed */
	uint64_t offered;   /* the host side looked up to here */
	TAILQ_HEAD(, vser_reader) readers;
	unsigned nreaders;
	enum vser_backlog last_backlog;

	/* Host -> guest. */
	struct vp_buf out;
	uint64_t out_discards;

	struct vser_port_stats st;
	unsigned connect_calls, disconnect_calls;
};

struct vser {
	struct vp_loop *loop;
	unsigned max_ports;
	struct vser_port **ports;
	const struct vser_listener *listener;
	void *listener_opaque;
	bool frontend;
	bool driver_ready;
	bool out_per_session;
	uint64_t features;
	uint64_t orphan_bytes;
	/* Inside a listener callback: what the contract lets it call. */
	bool in_event;
	bool in_changed;
	unsigned removed;
};

/* port_event may use the accessors and vser_reader_set_limit only. */
static void check_not_in_event(const struct vser *dev, const char *fn)
{
	if (dev->in_event)
		fail_msg("%s called from the listener's port_event", fn);
}

/* Adding, removing and re-listening are not for listener callbacks. */
static void check_not_in_listener(const struct vser *dev, const char *fn)
{
	check_not_in_event(dev, fn);
	if (dev->in_changed)
		fail_msg("%s called from the listener's port_changed", fn);
}

/* ---- port_changed, from the loop ---------------------------------------- */

static void notify_cb(void *opaque)
{
	struct vser *dev = opaque;

	/* By number, looked up again each time: a callback may free
	 * readers, and the hub may unplug a port between two calls. */
	for (unsigned nr = 0; nr < dev->max_ports; nr++) {
		struct vser_port *p = dev->ports[nr];

		if (!p || !p->dirty)
			continue;
		p->dirty = false;
		if (dev->listener && dev->listener->port_changed) {
			dev->in_changed = true;
			dev->listener->port_changed(p, dev->listener_opaque);
			dev->in_changed = false;
		}
	}
}

static void mark_dirty(struct vser_port *p)
{
	p->dirty = true;
	assert_int_equal(vp_defer(p->dev->loop, notify_cb, p->dev), 0);
}

static void port_event(struct vser_port *p, enum vser_port_event ev)
{
	struct vser *dev = p->dev;

	if (!dev->listener || !dev->listener->port_event)
		return;
	dev->in_event = true;
	dev->listener->port_event(p, ev, dev->listener_opaque);
	dev->in_event = false;
}

/* ---- the ring ------------------------------------------------------------ */

static uint64_t ring_start(const struct vser_port *p)
{
	return p->stream_end - vp_buf_len(&p->ring);
}

/* Bytes in [from, to) no reader consumed. */
static void count_dropped(struct vser_port *p, uint64_t from, uint64_t to)
{
	if (from < p->delivered)
		from = p->delivered;
	if (to > from)
		p->st.dropped_bytes += to - from;
}

/* Let go of serial-port ring bytes before upto; readers behind move up. */
static void ring_release(struct vser_port *p, uint64_t upto)
{
	uint64_t start = ring_start(p);
	struct vser_reader *r;

	if (upto > p->stream_end)
		upto = p->stream_end;
	if (upto <= start)
		return;
	count_dropped(p, start, upto);
	vp_buf_consume(&p->ring, (size_t)(upto - start));
	TAILQ_FOREACH(r, &p->readers, link)
	if (r->pos < upto)
		r->pos = upto;
}

/* Release what every reader has read past (a reader drained up to its
 * limit holds nothing). */
static void release_read(struct vser_port *p)
{
	uint64_t low = p->stream_end, done = 0;
	struct vser_reader *r;
	bool active = false;

	if (p->console || p->nreaders == 0)
		return;
	/* As the device: readers done up to their limit hold nothing, and
	 * give nothing past it away. */
	TAILQ_FOREACH(r, &p->readers, link) {
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
	ring_release(p, low);
}

static void console_put(struct vser_port *p, const char *buf, size_t n)
{
	if (n > vp_buf_room(&p->ring)) {
		uint64_t start = ring_start(p);
		size_t drop = n - vp_buf_room(&p->ring);

		if (drop > vp_buf_len(&p->ring))
			drop = vp_buf_len(&p->ring);
		count_dropped(p, start, start + drop);
		vp_buf_consume(&p->ring, drop);
	}
	if (n > p->ring.cap) {
		size_t skip = n - p->ring.cap;

		count_dropped(p, p->stream_end, p->stream_end + skip);
		p->stream_end += skip;
		buf += skip;
		n = p->ring.cap;
	}
	vp_buf_put(&p->ring, buf, n);
	p->stream_end += n;
}

/* ---- the test's side ---------------------------------------------------- */

struct vser *fake_vser_new(struct vp_loop *loop, unsigned max_ports)
{
	struct vser *dev = calloc(1, sizeof(*dev));

	assert_non_null(dev);
	assert_true(max_ports >= 1 && max_ports <= VSER_MAX_PORTS_LIMIT);
	dev->loop = loop;
	dev->max_ports = max_ports;
	dev->ports = calloc(max_ports, sizeof(*dev->ports));
	assert_non_null(dev->ports);
	return dev;
}

static void port_free(struct vser_port *p)
{
	if (!TAILQ_EMPTY(&p->readers))
		fail_msg("port %u freed with %u reader(s) attached", p->nr,
			 p->nreaders);
	vp_buf_destroy(&p->ring);
	vp_buf_destroy(&p->out);
	free(p);
}

void fake_vser_free(struct vser *dev)
{
	if (!dev)
		return;
	vp_defer_cancel(dev->loop, notify_cb, dev);
	for (unsigned nr = 0; nr < dev->max_ports; nr++)
		if (dev->ports[nr])
			port_free(dev->ports[nr]);
	free(dev->ports);
	free(dev);
}

static struct vser_port *port_new(struct vser *dev, unsigned nr,
				  const char *name, bool console)
{
	struct vser_port *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->dev = dev;
	p->nr = nr;
	p->console = console;
	snprintf(p->name, sizeof(p->name), "%s", name);
	TAILQ_INIT(&p->readers);
	if (vp_buf_init(&p->ring, FAKE_VSER_RING_DEFAULT))
		goto err_free;
	if (vp_buf_init(&p->out, FAKE_VSER_OUT_DEFAULT))
		goto err_ring;
	dev->ports[nr] = p;
	return p;

err_ring:
	vp_buf_destroy(&p->ring);
err_free:
	free(p);
	return NULL;
}

struct vser_port *fake_vser_add_port(struct vser *dev, unsigned nr,
				     const char *name, bool console)
{
	struct vser_port *p;

	assert_true(nr < dev->max_ports);
	assert_null(dev->ports[nr]);
	assert_true(strlen(name) <= VSER_NAME_MAX);
	p = port_new(dev, nr, name, console);
	assert_non_null(p);
	return p;
}

void fake_vser_set_ring(struct vser_port *port, size_t cap)
{
	assert_int_equal(vp_buf_len(&port->ring), 0);
	assert_true(cap > 0);
	vp_buf_destroy(&port->ring);
	assert_int_equal(vp_buf_init(&port->ring, cap), 0);
}

void fake_vser_set_out_cap(struct vser_port *port, size_t cap)
{
	assert_int_equal(vp_buf_len(&port->out), 0);
	assert_true(cap > 0);
	vp_buf_destroy(&port->out);
	assert_int_equal(vp_buf_init(&port->out, cap), 0);
}

void fake_vser_set_out_per_session(struct vser *dev, bool on)
{
	dev->out_per_session = on;
}

bool fake_vser_has_listener(const struct vser *dev)
{
	return dev->listener != NULL;
}

void fake_vser_guest_open(struct vser_port *port)
{
	assert_false(port->guest_connected);
	port->guest_connected = true;
	port->session++;
	port->session_start = port->stream_end;
	port_event(port, VSER_PORT_GUEST_OPEN);
	mark_dirty(port);
}

void fake_vser_guest_close(struct vser_port *port)
{
	assert_true(port->guest_connected);
	port->guest_connected = false;
	port_event(port, VSER_PORT_GUEST_CLOSE);
	if (port->dev->out_per_session)
		fake_vser_discard_out(port);
	mark_dirty(port);
}

size_t fake_vser_guest_send(struct vser_port *port, const void *buf, size_t len)
{
	size_t n = len;

	if (port->console) {
		console_put(port, buf, len);
	} else {
		n = vp_buf_put(&port->ring, buf, len);
		port->stream_end += n;
	}
	port->st.rx_bytes += n;
	if (n)
		mark_dirty(port);
	return n;
}

size_t fake_vser_guest_drain(struct vser_port *port, void *buf, size_t n)
{
	struct iovec iov[2];
	int k = vp_buf_peek(&port->out, iov, n);
	size_t got = 0;

	for (int i = 0; i < k; i++) {
		memcpy((char *)buf + got, iov[i].iov_base, iov[i].iov_len);
		got += iov[i].iov_len;
	}
	vp_buf_consume(&port->out, got);
	port->st.tx_bytes += got;
	if (got)
		mark_dirty(port);
	return got;
}

void fake_vser_discard_out(struct vser_port *port)
{
	if (vp_buf_len(&port->out)) {
		port->out_discards++;
		vp_buf_clear(&port->out);
		mark_dirty(port);
	}
}

void fake_vser_device_event(struct vser *dev, enum vser_dev_event ev)
{
	switch (ev) {
	case VSER_DEV_FRONTEND_UP:
		dev->frontend = true;
		break;
	case VSER_DEV_FRONTEND_DOWN:
		dev->frontend = false;
		dev->driver_ready = false;
		break;
	case VSER_DEV_DRIVER_READY:
		dev->driver_ready = true;
		break;
	}
	if (dev->listener && dev->listener->device_event)
		dev->listener->device_event(ev, dev->listener_opaque);
}

void fake_vser_set_features(struct vser *dev, uint64_t features)
{
	dev->features = features;
}

void fake_vser_set_orphan_bytes(struct vser *dev, uint64_t bytes)
{
	dev->orphan_bytes = bytes;
}

unsigned fake_vser_host_connect_calls(const struct vser_port *port)
{
	return port->connect_calls;
}

unsigned fake_vser_host_disconnect_calls(const struct vser_port *port)
{
	return port->disconnect_calls;
}

unsigned fake_vser_nreaders(const struct vser_port *port)
{
	return port->nreaders;
}

enum vser_backlog fake_vser_last_backlog(const struct vser_port *port)
{
	return port->last_backlog;
}

unsigned fake_vser_ports_removed(const struct vser *dev)
{
	return dev->removed;
}

/* ---- the device API the hub uses ---------------------------------------- */

void vser_set_listener(struct vser *dev, const struct vser_listener *l,
		       void *opaque)
{
	check_not_in_listener(dev, __func__);
	dev->listener = l;
	dev->listener_opaque = opaque;
}

static bool name_taken(const struct vser *dev, const char *name)
{
	for (unsigned nr = 0; nr < dev->max_ports; nr++)
		if (dev->ports[nr] && strcmp(dev->ports[nr]->name, name) == 0)
			return true;
	return false;
}

int vser_port_add(struct vser *dev, const struct vser_port_config *pc,
		  struct vser_port **out)
{
	const char *name = pc->name ? pc->name : "";
	struct vser_port *p;
	unsigned nr;

	check_not_in_listener(dev, __func__);
	if (strlen(name) > VSER_NAME_MAX)
		return -EINVAL;
	if (pc->nr >= 0 && (unsigned)pc->nr >= dev->max_ports)
		return -EINVAL;
	if (name[0] && name_taken(dev, name))
		return -EEXIST;
	if (pc->nr >= 0) {
		nr = (unsigned)pc->nr;
		if (dev->ports[nr])
			return -EEXIST;
	} else {
		/* 0 stays for a console port. */
		nr = pc->console && !dev->ports[0] ? 0 : 1;
		while (nr < dev->max_ports && dev->ports[nr])
			nr++;
		if (nr >= dev->max_ports)
			return -ENOSPC;
	}
	p = port_new(dev, nr, name, pc->console);
	if (!p)
		return -ENOMEM;
	if (out)
		*out = p;
	return 0;
}

void vser_port_remove(struct vser_port *port)
{
	struct vser *dev = port->dev;

	check_not_in_listener(dev, __func__);
	dev->ports[port->nr] = NULL;
	dev->removed++;
	port_free(port);
}

unsigned vser_max_ports(const struct vser *dev)
{
	return dev->max_ports;
}

struct vser_port *vser_port_by_nr(struct vser *dev, unsigned nr)
{
	return nr < dev->max_ports ? dev->ports[nr] : NULL;
}

bool vser_driver_ready(const struct vser *dev)
{
	return dev->driver_ready;
}

bool vser_frontend_connected(const struct vser *dev)
{
	return dev->frontend;
}

uint64_t vser_orphan_bytes(const struct vser *dev)
{
	return dev->orphan_bytes;
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

int vser_port_resize(struct vser_port *port, uint16_t cols, uint16_t rows)
{
	check_not_in_event(port->dev, __func__);
	if (!port->console || cols == 0 || rows == 0)
		return -EINVAL;
	port->cols = cols;
	port->rows = rows;
	return 0;
}

void vser_port_winsize(const struct vser_port *port, uint16_t *cols,
		       uint16_t *rows)
{
	*cols = port->cols;
	*rows = port->rows;
}

void vser_port_stats(const struct vser_port *port, struct vser_port_stats *st)
{
	*st = port->st;
}

void vser_port_set_host_connected(struct vser_port *port, bool connected)
{
	check_not_in_event(port->dev, __func__);
	if (connected)
		port->connect_calls++;
	else
		port->disconnect_calls++;
	if (port->host_connected == connected)
		return;
	port->host_connected = connected;
	/* As the device: offered output nobody read goes with the last host
	 * file; what came later waits for the next one. */
	if (!connected && !port->console && port->nreaders == 0)
		ring_release(port, port->offered);
}

struct vser_reader *vser_reader_new(struct vser_port *port,
				    enum vser_backlog backlog)
{
	struct vser_reader *r;
	uint64_t from = ring_start(port);

	check_not_in_event(port->dev, __func__);
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->port = port;
	r->limit = UINT64_MAX;
	r->pos = port->stream_end;
	if (backlog == VSER_BACKLOG_SESSION && !port->guest_connected)
		from = port->stream_end;
	else if (backlog == VSER_BACKLOG_SESSION && port->session_start > from)
		from = port->session_start;
	/* A serial port's unread output goes to its first reader only. */
	if (backlog == VSER_BACKLOG_SESSION ||
	    (backlog == VSER_BACKLOG_UNREAD &&
	     (port->console || port->nreaders == 0))) {
		r->pos = port->delivered > from ? port->delivered : from;
		if (r->pos > port->stream_end)
			r->pos = port->stream_end;
	}
	port->last_backlog = backlog;
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
	check_not_in_event(port->dev, __func__);
	TAILQ_REMOVE(&port->readers, r, link);
	port->nreaders--;
	free(r);
	release_read(port);
}

void vser_reader_set_limit(struct vser_reader *r, uint64_t limit)
{
	r->limit = limit;
}

/* A console reader that fell behind the ring lost what was overwritten. */
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

	check_not_in_event(r->port->dev, __func__);
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

	if (n > avail)
		fail_msg("consumed %zu bytes of %zu readable", n, avail);
	r->pos += n;
	if (r->pos > r->port->delivered)
		r->port->delivered = r->pos;
	release_read(r->port);
}

uint64_t vser_reader_dropped(const struct vser_reader *r)
{
	check_not_in_event(r->port->dev, __func__);
	return r->dropped;
}

void vser_reader_seen(struct vser_reader *r)
{
	struct vser_port *port = r->port;
	uint64_t end =
		port->stream_end < r->limit ? port->stream_end : r->limit;

	check_not_in_event(port->dev, __func__);
	if (end > port->offered)
		port->offered = end;
}

/* The reserved count, for the commit that follows. */
static size_t fake_reserved;

ssize_t vser_port_write_reserve(struct vser_port *port, size_t len)
{
	size_t room = vp_buf_room(&port->out);

	check_not_in_event(port->dev, __func__);
	fake_reserved = len < room ? len : room;
	if (!port->guest_connected || fake_reserved == 0)
		return -EAGAIN;
	return (ssize_t)fake_reserved;
}

void vser_port_write_commit(struct vser_port *port, const void *buf)
{
	assert_int_equal(vp_buf_put(&port->out, buf, fake_reserved),
			 fake_reserved);
	fake_reserved = 0;
}

ssize_t vser_port_write(struct vser_port *port, const void *buf, size_t len)
{
	ssize_t n = vser_port_write_reserve(port, len);

	if (n > 0)
		vser_port_write_commit(port, buf);
	return n;
}

bool vser_port_writable(const struct vser_port *port)
{
	return port->guest_connected && vp_buf_room(&port->out) > 0;
}

size_t vser_port_write_pending(const struct vser_port *port)
{
	return vp_buf_len(&port->out);
}

uint64_t vser_port_write_discards(const struct vser_port *port)
{
	return port->out_discards;
}
