/*
 * The port hub (see include/vportfs/hub.h).
 *
 * The design choice that matters: endpoints are told only "your port
 * changed" and then look again, so one rule (update_host_connected, the
 * source, the session binding) is computed in one place from the state
 * of all endpoints, never pushed piecemeal by each provider.  Changes the
 * device reports from inside its own calls (guest open/close) only do
 * bookkeeping; endpoints hear of them from a deferred call, before the
 * loop sleeps, never from inside the device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "vportfs/buf.h"
#include "vportfs/hub.h"
#include "vportfs/log.h"
#include "vportfs/utf8.h"
#include "vportfs/vser.h"

struct hub_ep {
	TAILQ_ENTRY(hub_ep) link;
	struct hub_port *hp;
	const struct hub_ep_ops *ops;
	void *opaque;
	unsigned flags;
	struct vser_reader *reader; /* HUB_EP_READ, until hung or gone */
	struct vp_buf tail;	    /* hung up: its session's unread output */
	/* -o session: the guest session it belongs to (0: the next one),
	 * and whether that session has ended. */
	uint64_t session;
	bool hung;
	uint64_t discards_seen; /* write discards fsync reported */
	uint64_t lost_reported; /* console bytes this reader lost, told */
};

TAILQ_HEAD(hub_ep_list, hub_ep);

struct hub_port {
	LIST_ENTRY(hub_port) gone_link;
	struct hub *hub;
	struct vser_port *port; /* NULL once unplugged */
	uint64_t id;
	unsigned nr;
	char label[HUB_NAME_MAX + 1];
	struct hub_ep_list eps; /* in attach order: the order of turns */
	struct hub_ep *source;	/* the endpoint feeding the guest */
	bool host_connected;	/* what we last told the device */
	bool pinned; /* being unplugged: not freed by its last detach */
};

struct hub_observer {
	const struct hub_observer_ops *ops;
	void *opaque;
};

struct hub {
	struct vp_loop *loop;
	struct vser *dev;
	struct hub_config cfg;
	struct hub_port **ports;    /* indexed by port number */
	LIST_HEAD(, hub_port) gone; /* unplugged, endpoints still attached */
	unsigned max_ports;
	uint64_t next_id;
	struct hub_events *events;
	struct hub_observer obs[HUB_MAX_OBSERVERS];
	bool reap_scheduled;
	bool events_pending;
	bool changed_pending; /* observers' `changed` is due */
};

/* ---- names -------------------------------------------------------------- */

bool hub_name_usable(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= HUB_NAME_MAX && name[0] != '.' &&
	       !strchr(name, '/') && vp_utf8_valid(name);
}

void hub_label(unsigned nr, const char *name, char *buf, size_t len)
{
	if (hub_name_usable(name) && strlen(name) < len)
		memcpy(buf, name, strlen(name) + 1);
	else
		snprintf(buf, len, "port%u", nr);
}

/* ---- deferred work and events ------------------------------------------ */

static void schedule_reap(struct hub *hub);

/* Queue a line for the .events readers; observers hear of it from the
 * loop. */
static void emit_count(struct hub *hub, const char *event,
		       const struct hub_port *hp, const char *key,
		       uint64_t value)
{
	const char *label = hp ? hp->label : NULL;
	int nr = hp ? (int)hp->nr : 0;
	bool heard;

	hub->changed_pending = true;
	schedule_reap(hub);
	if (key)
		heard = hub_events_emit_count(hub->events, event, label, nr,
					      key, value);
	else
		heard = hub_events_emit(hub->events, event, label, nr);
	if (heard)
		hub->events_pending = true;
}

static void emit(struct hub *hub, const char *event, const struct hub_port *hp)
{
	emit_count(hub, event, hp, NULL, 0);
}

static bool session_mode(const struct hub *hub)
{
	return hub->cfg.session;
}

/* Is this endpoint bound to guest sessions (-o session, and not
 * HUB_EP_PERSISTENT)? */
static bool ep_in_sessions(const struct hub_ep *ep)
{
	return session_mode(ep->hp->hub) && !(ep->flags & HUB_EP_PERSISTENT);
}

/* Does this endpoint talk to a live guest session now? */
static bool ep_live(const struct hub_ep *ep)
{
	const struct vser_port *p = ep->hp->port;

	if (!ep_in_sessions(ep))
		return vser_port_guest_connected(p);
	return !ep->hung && ep->session != 0 && vser_port_guest_connected(p) &&
	       ep->session == vser_port_guest_session(p);
}

/* The guest sees the host side open while some endpoint may still talk
 * to it: any endpoint in default mode; in session mode any not hung up. */
static void update_host_connected(struct hub_port *hp)
{
	bool want = false;
	struct hub_ep *ep;

	TAILQ_FOREACH(ep, &hp->eps, link)
		if (!ep->hung)
			want = true;
	if (!hp->port || want == hp->host_connected)
		return;
	hp->host_connected = want;
	vser_port_set_host_connected(hp->port, want);
	emit(hp->hub, want ? "host-open" : "host-close", hp);
}

/* The source left (or hung up): the next writer waiting its turn, in
 * attach order, takes it.  True if one did. */
static bool pass_turn(struct hub_port *hp)
{
	struct hub_ep *ep;

	if (hp->source || !hp->port)
		return false;
	TAILQ_FOREACH(ep, &hp->eps, link) {
		if ((ep->flags & HUB_EP_WRITE) && !ep->hung) {
			hp->source = ep;
			return true;
		}
	}
	return false;
}

/*
 * -o session: a hung-up endpoint keeps what its session sent and it has
 * not read (up to HUB_HUNG_TAIL_MAX) in a buffer of its own, and lets go
 * of the device's ring: an endpoint that may never read again must not
 * hold up the next session.
 */
static void keep_hung_tail(struct hub_ep *ep)
{
	size_t n, kept = 0;

	if (!ep->hung || !ep->reader)
		return;
	n = vser_reader_readable(ep->reader);
	if (n > HUB_HUNG_TAIL_MAX)
		n = HUB_HUNG_TAIL_MAX;
	if (n && vp_buf_init(&ep->tail, n) == 0) {
		while (kept < n) {
			struct iovec iov[2];
			int niov = 2;
			size_t got = vser_reader_peek(ep->reader, iov, &niov,
						      n - kept);

			if (!got)
				break;
			for (int i = 0; i < niov; i++)
				vp_buf_put(&ep->tail, iov[i].iov_base,
					   iov[i].iov_len);
			vser_reader_consume(ep->reader, got);
			kept += got;
		}
	}
	vser_reader_free(ep->reader);
	ep->reader = NULL;
}

/* Apply the port's rules, then tell every endpoint to look again.  An
 * endpoint may detach itself from its callback (and with the last one an
 * unplugged port is freed): hp is not touched after the loop. */
static void port_changed(struct hub_port *hp)
{
	struct hub_ep *ep, *next;

	update_host_connected(hp);
	pass_turn(hp);
	for (ep = TAILQ_FIRST(&hp->eps); ep; ep = next) {
		next = TAILQ_NEXT(ep, link);
		keep_hung_tail(ep);
		ep->ops->changed(ep, ep->opaque);
	}
}

static void reap_cb(void *opaque)
{
	struct hub *hub = opaque;
	struct hub_port *hp, *next;

	hub->reap_scheduled = false;
	for (unsigned nr = 0; nr < hub->max_ports; nr++)
		if (hub->ports[nr])
			port_changed(hub->ports[nr]);
	for (hp = LIST_FIRST(&hub->gone); hp; hp = next) {
		next = LIST_NEXT(hp, gone_link);
		port_changed(hp);
	}
	if (hub->events_pending) {
		hub->events_pending = false;
		for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++)
			if (hub->obs[i].ops && hub->obs[i].ops->events_ready)
				hub->obs[i].ops->events_ready(
					hub->obs[i].opaque);
	}
	if (hub->changed_pending) {
		hub->changed_pending = false;
		for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++)
			if (hub->obs[i].ops && hub->obs[i].ops->changed)
				hub->obs[i].ops->changed(hub->obs[i].opaque);
	}
}

/* Re-examine everything before the loop sleeps (not from inside the
 * device or a provider's call). */
static void schedule_reap(struct hub *hub)
{
	if (!hub->reap_scheduled && vp_defer(hub->loop, reap_cb, hub) == 0)
		hub->reap_scheduled = true;
}

/* ---- the device's listener ---------------------------------------------- */

static struct hub_port *hport_of(struct hub *hub, struct vser_port *port)
{
	struct hub_port *hp = hub->ports[vser_port_nr(port)];

	return hp && hp->port == port ? hp : NULL;
}

static void on_port_changed(struct vser_port *port, void *opaque)
{
	struct hub_port *hp = hport_of(opaque, port);

	if (hp)
		port_changed(hp);
}

/* A guest session begins or ends.  Called from inside the device: only
 * bookkeeping here; endpoints hear of it from reap_cb. */
static void on_port_event(struct vser_port *port, enum vser_port_event ev,
			  void *opaque)
{
	struct hub *hub = opaque;
	struct hub_port *hp = hport_of(hub, port);
	struct hub_ep *ep;

	if (!hp)
		return;
	emit(hub, ev == VSER_PORT_GUEST_OPEN ? "guest-open" : "guest-close",
	     hp);
	if (session_mode(hub)) {
		TAILQ_FOREACH(ep, &hp->eps, link) {
			if (!ep_in_sessions(ep))
				continue;
			if (ev == VSER_PORT_GUEST_OPEN && ep->session == 0) {
				ep->session = vser_port_guest_session(port);
			} else if (ev == VSER_PORT_GUEST_CLOSE && !ep->hung &&
				   ep->session != 0) {
				/* For good: EOF after what the guest sent in
				 * this session, EPIPE, POLLHUP. */
				ep->hung = true;
				if (ep->reader)
					vser_reader_set_limit(
						ep->reader,
						vser_port_stream_end(port));
				if (hp->source == ep)
					hp->source = NULL;
			}
		}
	}
	/* reap_cb answers what waits and, in session mode, tells the guest
	 * the host side closed if no endpoint can talk to the next session:
	 * not from here, we are inside the device. */
	schedule_reap(hub);
}

static void on_device_event(enum vser_dev_event ev, void *opaque)
{
	static const char *const names[] = {
		[VSER_DEV_FRONTEND_UP] = "frontend-up",
		[VSER_DEV_FRONTEND_DOWN] = "frontend-down",
		[VSER_DEV_DRIVER_READY] = "driver-ready",
	};
	struct hub *hub = opaque;

	emit(hub, names[ev], NULL);
	schedule_reap(hub);
}

static const struct vser_listener hub_listener = {
	.port_changed = on_port_changed,
	.port_event = on_port_event,
	.device_event = on_device_event,
};

/* ---- the hub ---------------------------------------------------------- */

static struct hub_port *hport_new(struct hub *hub, struct vser_port *port)
{
	struct hub_port *hp = calloc(1, sizeof(*hp));

	if (!hp)
		return NULL;
	hp->hub = hub;
	hp->port = port;
	hp->nr = vser_port_nr(port);
	hp->id = hub->next_id++;
	hub_label(hp->nr, vser_port_name(port), hp->label, sizeof(hp->label));
	TAILQ_INIT(&hp->eps);
	hub->ports[hp->nr] = hp;
	return hp;
}

static void ep_free(struct hub_ep *ep)
{
	vser_reader_free(ep->reader);
	vp_buf_destroy(&ep->tail);
	free(ep);
}

static void hport_free(struct hub_port *hp)
{
	struct hub_ep *ep;

	while ((ep = TAILQ_FIRST(&hp->eps))) {
		TAILQ_REMOVE(&hp->eps, ep, link);
		ep_free(ep);
	}
	free(hp);
}

struct hub *hub_new(struct vp_loop *loop, struct vser *dev,
		    const struct hub_config *cfg)
{
	struct hub *hub = calloc(1, sizeof(*hub));

	if (!hub)
		return NULL;
	hub->loop = loop;
	hub->dev = dev;
	hub->cfg = *cfg;
	hub->max_ports = vser_max_ports(dev);
	LIST_INIT(&hub->gone);
	hub->ports = calloc(hub->max_ports, sizeof(*hub->ports));
	if (!hub->ports)
		goto err_free;
	hub->events = hub_events_new(0);
	if (!hub->events)
		goto err_free;
	for (unsigned nr = 0; nr < hub->max_ports; nr++) {
		struct vser_port *port = vser_port_by_nr(dev, nr);

		if (port && !hport_new(hub, port))
			goto err_free;
	}
	vser_set_listener(dev, &hub_listener, hub);
	return hub;

err_free:
	hub_free(hub);
	return NULL;
}

void hub_free(struct hub *hub)
{
	if (!hub)
		return;
	if (hub->ports)
		vser_set_listener(hub->dev, NULL, NULL);
	if (hub->reap_scheduled)
		vp_defer_cancel(hub->loop, reap_cb, hub);
	for (unsigned nr = 0; hub->ports && nr < hub->max_ports; nr++)
		if (hub->ports[nr])
			hport_free(hub->ports[nr]);
	while (!LIST_EMPTY(&hub->gone)) {
		struct hub_port *hp = LIST_FIRST(&hub->gone);

		LIST_REMOVE(hp, gone_link);
		hport_free(hp);
	}
	hub_events_free(hub->events);
	free(hub->ports);
	free(hub);
}

struct hub_events *hub_events(struct hub *hub)
{
	return hub->events;
}

int hub_observer_add(struct hub *hub, const struct hub_observer_ops *ops,
		     void *opaque)
{
	for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++) {
		if (!hub->obs[i].ops) {
			hub->obs[i].ops = ops;
			hub->obs[i].opaque = opaque;
			return 0;
		}
	}
	return -ENOSPC;
}

void hub_observer_remove(struct hub *hub, const struct hub_observer_ops *ops,
			 void *opaque)
{
	for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++)
		if (hub->obs[i].ops == ops && hub->obs[i].opaque == opaque)
			hub->obs[i].ops = NULL;
}

/* ---- ports -------------------------------------------------------------- */

unsigned hub_max_ports(const struct hub *hub)
{
	return hub->max_ports;
}

struct hub_port *hub_port_at(struct hub *hub, unsigned nr)
{
	return nr < hub->max_ports ? hub->ports[nr] : NULL;
}

struct hub_port *hub_port_by_label(struct hub *hub, const char *label)
{
	for (unsigned nr = 0; nr < hub->max_ports; nr++)
		if (hub->ports[nr] && strcmp(hub->ports[nr]->label, label) == 0)
			return hub->ports[nr];
	return NULL;
}

struct hub_port *hub_port_by_id(struct hub *hub, uint64_t id)
{
	struct hub_port *hp;

	for (unsigned nr = 0; nr < hub->max_ports; nr++)
		if (hub->ports[nr] && hub->ports[nr]->id == id)
			return hub->ports[nr];
	LIST_FOREACH(hp, &hub->gone, gone_link)
		if (hp->id == id)
			return hp;
	return NULL;
}

static void tell_observers(struct hub *hub, struct hub_port *hp, bool added)
{
	for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++) {
		const struct hub_observer_ops *ops = hub->obs[i].ops;

		if (ops && added && ops->port_added)
			ops->port_added(hp, hub->obs[i].opaque);
		else if (ops && !added && ops->port_removed)
			ops->port_removed(hp, hub->obs[i].opaque);
	}
}

int hub_port_add(struct hub *hub, const char *name, struct hub_port **out)
{
	struct vser_port_config pc = {.nr = -1, .name = name};
	struct vser_port *port;
	struct hub_port *hp;
	int rc;

	if (!hub_name_usable(name))
		return -EINVAL;
	if (hub_port_by_label(hub, name))
		return -EEXIST;
	rc = vser_port_add(hub->dev, &pc, &port);
	if (rc)
		return rc;
	hp = hport_new(hub, port);
	if (!hp) {
		vser_port_remove(port);
		return -ENOMEM;
	}
	vp_info("port %u '%s' hot-plugged", hp->nr, hp->label);
	emit(hub, "port-added", hp);
	tell_observers(hub, hp, true);
	if (out)
		*out = hp;
	return 0;
}

void hub_port_remove(struct hub_port *hp)
{
	struct hub *hub = hp->hub;
	struct hub_ep *ep;

	/* The device frees the port's ring: no cursor may outlive it. */
	TAILQ_FOREACH(ep, &hp->eps, link) {
		vser_reader_free(ep->reader);
		ep->reader = NULL;
	}
	vser_port_remove(hp->port);
	hp->port = NULL;
	hp->source = NULL;
	hub->ports[hp->nr] = NULL;
	vp_info("port %u '%s' unplugged", hp->nr, hp->label);
	emit(hub, "port-removed", hp);
	/* Observers and endpoints may detach from here on: the port stays
	 * until we are done with it. */
	LIST_INSERT_HEAD(&hub->gone, hp, gone_link);
	hp->pinned = true;
	tell_observers(hub, hp, false);
	port_changed(hp);
	hp->pinned = false;
	if (TAILQ_EMPTY(&hp->eps)) {
		LIST_REMOVE(hp, gone_link);
		free(hp);
	}
}

uint64_t hub_port_id(const struct hub_port *hp)
{
	return hp->id;
}

unsigned hub_port_nr(const struct hub_port *hp)
{
	return hp->nr;
}

const char *hub_port_label(const struct hub_port *hp)
{
	return hp->label;
}

bool hub_port_gone(const struct hub_port *hp)
{
	return !hp->port;
}

int hub_port_info(const struct hub_port *hp, struct hub_port_info *info)
{
	const struct vser_port *p = hp->port;
	struct vser_port_stats st;

	if (!p)
		return -ENODEV;
	vser_port_stats(p, &st);
	*info = (struct hub_port_info){
		.name = vser_port_name(p),
		.console = vser_port_is_console(p),
		.guest_connected = vser_port_guest_connected(p),
		.host_connected = vser_port_host_connected(p),
		.rx_bytes = st.rx_bytes,
		.tx_bytes = st.tx_bytes,
		.dropped_bytes = st.dropped_bytes,
	};
	if (info->console)
		vser_port_winsize(p, &info->cols, &info->rows);
	return 0;
}

int hub_port_resize(struct hub_port *hp, uint16_t cols, uint16_t rows)
{
	if (!hp->port)
		return -ENODEV;
	return vser_port_resize(hp->port, cols, rows);
}

/* All observers' names into buf (NULL: count only); the bytes needed. */
static size_t attr_list_all(struct hub_port *hp, char *buf, size_t len)
{
	size_t used = 0;

	for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++) {
		const struct hub_observer_ops *ops = hp->hub->obs[i].ops;
		size_t room = buf && used < len ? len - used : 0;

		if (ops && ops->attr_list)
			used += ops->attr_list(hp, room ? buf + used : NULL,
					       room, hp->hub->obs[i].opaque);
	}
	return used;
}

size_t hub_port_attr_list(struct hub_port *hp, char *buf, size_t len)
{
	size_t need = attr_list_all(hp, NULL, 0);

	/* All or nothing. */
	if (need <= len && buf)
		attr_list_all(hp, buf, len);
	return need;
}

ssize_t hub_port_attr_get(struct hub_port *hp, const char *key, char *buf,
			  size_t len)
{
	for (unsigned i = 0; i < HUB_MAX_OBSERVERS; i++) {
		const struct hub_observer_ops *ops = hp->hub->obs[i].ops;
		ssize_t n;

		if (!ops || !ops->attr_get)
			continue;
		n = ops->attr_get(hp, key, buf, len, hp->hub->obs[i].opaque);
		if (n != -ENODATA)
			return n;
	}
	return -ENODATA;
}

void hub_device_info(const struct hub *hub, struct hub_device_info *info)
{
	*info = (struct hub_device_info){
		.frontend = vser_frontend_connected(hub->dev),
		.driver_ready = vser_driver_ready(hub->dev),
		.max_ports = vser_max_ports(hub->dev),
		.features = vser_features(hub->dev),
		.orphan_bytes = vser_orphan_bytes(hub->dev),
	};
}

/* ---- endpoints ---------------------------------------------------------- */

/* Sharing: one source and any number of readers, or (exclusive) one
 * endpoint of any kind, persistent ones (chardevs) aside.  A hung-up endpoint
 * (-o session) can no longer talk to the guest: it keeps nobody out. */
static int check_sharing(const struct hub_port *hp, unsigned flags)
{
	const struct hub_ep *ep;

	if (hp->hub->cfg.exclusive && !(flags & HUB_EP_PERSISTENT))
		TAILQ_FOREACH(ep, &hp->eps, link)
			if (!ep->hung && !(ep->flags & HUB_EP_PERSISTENT))
				return -EBUSY;
	if ((flags & HUB_EP_WRITE) && hp->source && !(flags & HUB_EP_WAIT_TURN))
		return -EBUSY;
	return 0;
}

int hub_ep_attach(struct hub_port *hp, unsigned flags,
		  const struct hub_ep_ops *ops, void *opaque,
		  struct hub_ep **out)
{
	struct vser_port *p = hp->port;
	struct hub_ep *ep;
	int rc;

	if (!p)
		return -ENODEV;
	rc = check_sharing(hp, flags);
	if (rc)
		return rc;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->hp = hp;
	ep->ops = ops;
	ep->opaque = opaque;
	ep->flags = flags;
	ep->discards_seen = vser_port_write_discards(p);
	if (session_mode(hp->hub) && !(flags & HUB_EP_PERSISTENT) &&
	    vser_port_guest_connected(p))
		ep->session = vser_port_guest_session(p);
	if (flags & HUB_EP_READ) {
		/* What nobody has read yet waits for the first reader; in
		 * session mode only the open session's, never an older one's
		 * (a guest may write on a stale "host open" before this
		 * endpoint came). */
		ep->reader = vser_reader_new(p, ep_in_sessions(ep)
							? VSER_BACKLOG_SESSION
							: VSER_BACKLOG_UNREAD);
		if (!ep->reader) {
			free(ep);
			return -ENOMEM;
		}
	}
	TAILQ_INSERT_TAIL(&hp->eps, ep, link);
	if ((flags & HUB_EP_WRITE) && !hp->source)
		hp->source = ep;
	update_host_connected(hp);
	vp_debug("port %u: host endpoint attached", hp->nr);
	*out = ep;
	return 0;
}

void hub_ep_detach(struct hub_ep *ep)
{
	struct hub_port *hp;
	bool was_source;

	if (!ep)
		return;
	hp = ep->hp;
	TAILQ_REMOVE(&hp->eps, ep, link);
	was_source = hp->source == ep;
	ep_free(ep);
	if (was_source) {
		hp->source = NULL;
		/* The next in turn hears it from the loop. */
		if (pass_turn(hp))
			schedule_reap(hp->hub);
	}
	if (hp->port) {
		update_host_connected(hp);
	} else if (TAILQ_EMPTY(&hp->eps) && !hp->pinned) {
		LIST_REMOVE(hp, gone_link);
		free(hp);
	}
}

void hub_ep_input_done(struct hub_ep *ep)
{
	struct hub_port *hp = ep->hp;

	ep->flags &= ~(unsigned)(HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	if (hp->source == ep) {
		hp->source = NULL;
		if (pass_turn(hp))
			schedule_reap(hp->hub);
	}
}

struct hub_port *hub_ep_port(const struct hub_ep *ep)
{
	return ep->hp;
}

bool hub_ep_gone(const struct hub_ep *ep)
{
	return !ep->hp->port;
}

bool hub_ep_hung(const struct hub_ep *ep)
{
	return ep->hung;
}

bool hub_ep_is_source(const struct hub_ep *ep)
{
	return ep->hp->source == ep;
}

size_t hub_ep_readable(const struct hub_ep *ep)
{
	if (hub_ep_gone(ep))
		return 0;
	if (ep->reader)
		return vser_reader_readable(ep->reader);
	return vp_buf_len(&ep->tail);
}

/* A console reader that fell behind the ring lost its oldest bytes: say
 * how many, once, in .events ("reader-overrun", "lost"). */
static void report_overrun(struct hub_ep *ep)
{
	uint64_t lost = vser_reader_dropped(ep->reader);

	if (lost == ep->lost_reported)
		return;
	emit_count(ep->hp->hub, "reader-overrun", ep->hp, "lost",
		   lost - ep->lost_reported);
	ep->lost_reported = lost;
}

size_t hub_ep_peek(struct hub_ep *ep, struct iovec *iov, int *niov, size_t max)
{
	struct iovec two[2];
	size_t n = 0;
	int k;

	if (hub_ep_gone(ep) || *niov < 1) {
		*niov = 0;
		return 0;
	}
	if (!ep->reader) {
		/* Hung up (-o session): what it kept. */
		k = vp_buf_peek(&ep->tail, two, max);
		if (k > *niov)
			k = *niov;
		for (int i = 0; i < k; i++) {
			iov[i] = two[i];
			n += two[i].iov_len;
		}
		*niov = k;
		return n;
	}
	/* Whatever the endpoint makes of it, it has looked. */
	vser_reader_seen(ep->reader);
	n = vser_reader_peek(ep->reader, iov, niov, max);
	report_overrun(ep);
	return n;
}

void hub_ep_consume(struct hub_ep *ep, size_t n)
{
	if (hub_ep_gone(ep))
		return;
	if (ep->reader)
		vser_reader_consume(ep->reader, n);
	else
		vp_buf_consume(&ep->tail, n);
}

void hub_ep_seen(struct hub_ep *ep)
{
	if (!hub_ep_gone(ep) && ep->reader)
		vser_reader_seen(ep->reader);
}

bool hub_ep_eof(const struct hub_ep *ep)
{
	const struct vser_port *p = ep->hp->port;

	if (!p)
		return true;
	if (ep_in_sessions(ep))
		return ep->hung;
	/* As on a pipe, except on a console: its ring outlives the VM, and
	 * so do its readers (a logger's cat blocks across a reboot instead
	 * of ending). */
	return !vser_port_is_console(p) && !vser_port_guest_connected(p);
}

ssize_t hub_ep_write_reserve(struct hub_ep *ep, size_t len)
{
	if (hub_ep_gone(ep))
		return -ENODEV;
	if (!(ep->flags & HUB_EP_WRITE))
		return -EBADF;
	if (ep->hung)
		return -EPIPE;
	if (!hub_ep_is_source(ep) || (ep_in_sessions(ep) && !ep_live(ep)))
		return -EAGAIN;
	return vser_port_write_reserve(ep->hp->port, len);
}

void hub_ep_write_commit(struct hub_ep *ep, const void *buf)
{
	vser_port_write_commit(ep->hp->port, buf);
}

ssize_t hub_ep_write(struct hub_ep *ep, const void *buf, size_t len)
{
	ssize_t n = hub_ep_write_reserve(ep, len);

	if (n > 0)
		hub_ep_write_commit(ep, buf);
	return n;
}

bool hub_ep_writable(const struct hub_ep *ep)
{
	if (hub_ep_gone(ep) || ep->hung)
		return false;
	if ((ep->flags & HUB_EP_WRITE) && !hub_ep_is_source(ep))
		return false;
	if (ep_in_sessions(ep) && !ep_live(ep))
		return false;
	return vser_port_writable(ep->hp->port);
}

uint64_t hub_ep_sync_mark(const struct hub_ep *ep)
{
	if (hub_ep_gone(ep))
		return 0;
	/* Only a writer hears of the bytes it lost. */
	return (ep->flags & HUB_EP_WRITE)
		       ? ep->discards_seen
		       : vser_port_write_discards(ep->hp->port);
}

int hub_ep_sync(struct hub_ep *ep, uint64_t mark)
{
	const struct vser_port *p = ep->hp->port;
	int rc = 0;

	if (!p)
		return -ENODEV;
	/* Default mode: undelivered bytes wait for the guest's next open,
	 * and so does fsync; -o session: only while the session lives. */
	if (vser_port_write_pending(p) && (!ep_in_sessions(ep) || ep_live(ep)))
		return -EAGAIN;
	if (vser_port_write_discards(p) != mark || vser_port_write_pending(p))
		rc = -EIO;
	/* Each loss is reported once per endpoint, like a writeback
	 * error. */
	ep->discards_seen = vser_port_write_discards(p);
	return rc;
}
