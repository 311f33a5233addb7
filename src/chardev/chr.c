/*
 * The chardev core (see include/vportfs/chr.h and src/chardev/chr_int.h).
 *
 * The design choice that matters: guest output is written to a peer
 * straight from the port's ring.  A chardev is one hub endpoint with a
 * cursor of its own; `flush_out` asks the hub for the iovecs past it and
 * hands them to writev() (or the backend's sink), then moves the cursor
 * by what was taken.  Nothing is copied on the way, nothing is queued per
 * chardev, and a peer that does not take its bytes holds only its own
 * cursor: the port's ring, then the guest's, fill up behind it, exactly
 * as behind a slow `cat` on the port file.  The write watch is on only
 * while bytes wait for the peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chr_int.h"
#include "vportfs/log.h"

struct chr {
	TAILQ_ENTRY(chr) link;
	struct chr_set *set;
	const struct chr_backend *be;
	void *priv;
	char *id;
	char *port;	     /* the port's name it serves; NULL: none */
	struct hub_port *hp; /* that port while plugged */
	struct hub_ep *ep;   /* while the peer is up and the port plugged */
	/* The peer. */
	bool up;
	unsigned peer_flags;
	int in_fd, out_fd;
	struct vp_watch *in_w, *out_w;
	bool in_eof; /* the peer's input ended; output goes on */
	/* Input read from the peer the guest has not taken yet. */
	char *ibuf;
	size_t ioff, ilen;
	/* logfile=: every byte the chardev takes from the guest. */
	char *logfile;
	bool logappend;
	int log_fd;
	uint64_t errors; /* sink, peer and logfile failures */
	bool parsed;	 /* the backend's parse ran: its stop must */
};

TAILQ_HEAD(chr_list, chr);

struct chr_set {
	struct vp_loop *loop;
	struct hub *hub;
	struct chr_list chrs;
};

static const struct chr_backend *const backends[] = {
	&chr_socket_backend, &chr_pipe_backend,	   &chr_file_backend,
	&chr_log_backend,    &chr_pty_backend,	   &chr_fd_backend,
	&chr_stdio_backend,  &chr_ringbuf_backend, &chr_null_backend,
};

void *chr_priv(struct chr *chr)
{
	return chr->priv;
}

const char *chr_id(const struct chr *chr)
{
	return chr->id;
}

struct vp_loop *chr_loop(const struct chr *chr)
{
	return chr->set->loop;
}

bool chr_peer_is_up(const struct chr *chr)
{
	return chr->up;
}

int chr_peer_out_fd(const struct chr *chr)
{
	return chr->out_fd;
}

int chr_errf(const struct chr *chr, int err_no, char *err, size_t errlen,
	     const char *fmt, ...)
{
	va_list ap;

	(void)chr;
	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -err_no;
}

/* ---- the stream ---------------------------------------------------------- */

static void pump(struct chr *chr);
static void sync_ep(struct chr *chr);

static void pump_cb(void *opaque)
{
	pump(opaque);
}

/* More than one wakeup's worth waits: go on before the loop sleeps, after
 * whatever else is ready. */
static void pump_later(struct chr *chr)
{
	vp_defer(chr->set->loop, pump_cb, chr);
}

static void watch_out(struct chr *chr, bool on)
{
	if (chr->out_w)
		vp_watch_set(chr->set->loop, chr->out_w, on ? VP_EV_WRITE : 0);
}

static void watch_in(struct chr *chr, bool on)
{
	if (chr->in_w)
		vp_watch_set(chr->set->loop, chr->in_w, on ? VP_EV_READ : 0);
}

/* logfile=: append what the chardev took.  A failing log is reported
 * once and closed; the chardev goes on. */
static void log_bytes(struct chr *chr, const struct iovec *iov, int niov,
		      size_t n)
{
	for (int i = 0; i < niov && n && chr->log_fd >= 0; i++) {
		const char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;

		n -= len;
		while (len) {
			ssize_t w = write(chr->log_fd, p, len);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				vp_warn("chardev %s: logfile %s: %s; logging "
					"stopped",
					chr->id, chr->logfile,
					w < 0 ? strerror(errno)
					      : "short write");
				chr->errors++;
				close(chr->log_fd);
				chr->log_fd = -1;
				return;
			}
			p += w;
			len -= (size_t)w;
		}
	}
}

/* Guest -> peer, from the port's ring, as far as the peer takes it. */
static void flush_out(struct chr *chr)
{
	size_t moved = 0;

	while (chr->ep) {
		struct iovec iov[2];
		int niov = 2;
		size_t n = hub_ep_peek(chr->ep, iov, &niov, CHR_BUDGET - moved);
		ssize_t w;

		if (!n) {
			/* A sink may hold bytes of its own (telnet): they go
			 * out before the watch goes off. */
			w = chr->be->sink ? chr->be->sink(chr, iov, 0) : 0;
			if (w < 0 && w != -EAGAIN)
				chr_peer_failed(chr, "write", (int)-w);
			else
				watch_out(chr, w == -EAGAIN);
			return;
		}
		if (chr->be->sink) {
			w = chr->be->sink(chr, iov, niov);
		} else {
			w = writev(chr->out_fd, iov, niov);
			if (w < 0)
				w = -errno;
		}
		if (w == -EINTR)
			continue;
		if (w == -EAGAIN || w == 0) {
			watch_out(chr, true);
			return;
		}
		if (w < 0) {
			chr_peer_failed(chr, "write", (int)-w);
			return;
		}
		log_bytes(chr, iov, niov, (size_t)w);
		hub_ep_consume(chr->ep, (size_t)w);
		moved += (size_t)w;
		if (moved >= CHR_BUDGET) {
			pump_later(chr);
			return;
		}
	}
}

/* The peer's input ended and the guest has taken all of it: the chardev
 * feeds the guest no more, and the next writer in turn may. */
static void input_drained(struct chr *chr)
{
	if (chr->ep)
		hub_ep_input_done(chr->ep);
}

static void input_ended(struct chr *chr)
{
	/* One fd both ways (a socket): the peer left, and what it sent the
	 * guest has not taken goes with it. */
	if (chr->in_fd == chr->out_fd) {
		vp_debug("chardev %s: peer disconnected", chr->id);
		chr_peer_down(chr);
		if (chr->be->peer_gone)
			chr->be->peer_gone(chr);
		return;
	}
	/* Input only (a file's input-path, fd in=): what was read still
	 * goes to the guest, in its turn. */
	chr->in_eof = true;
	watch_in(chr, false);
	if (!chr->ilen)
		input_drained(chr);
	else
		pump_later(chr);
}

/*
 * Peer -> guest.  The peer's input is read into ibuf whenever it has room:
 * also while the chardev waits its turn, while the guest cannot take more
 * and while its port is unplugged, so that a peer hanging up is seen at
 * once.  It is offered to the guest only while the chardev is the port's
 * source.  A full buffer stops the reading: then the peer's input waits
 * in its fd.
 */
static void feed_in(struct chr *chr)
{
	bool guest_full = false;
	size_t moved = 0;

	if (!chr->up || chr->in_fd < 0)
		return;
	while (moved < CHR_BUDGET) {
		ssize_t n;

		if (chr->ilen && !guest_full && chr->ep &&
		    hub_ep_is_source(chr->ep)) {
			n = hub_ep_write(chr->ep, chr->ibuf + chr->ioff,
					 chr->ilen);
			if (n < 0) {
				/* No room (or a transient failure): the rest
				 * waits for `changed`; reading goes on. */
				guest_full = true;
				continue;
			}
			chr->ioff += (size_t)n;
			chr->ilen -= (size_t)n;
			moved += (size_t)n;
			if (!chr->ilen && chr->in_eof)
				input_drained(chr);
			continue;
		}
		if (chr->in_eof)
			return;
		if (chr->ioff) {
			memmove(chr->ibuf, chr->ibuf + chr->ioff, chr->ilen);
			chr->ioff = 0;
		}
		if (chr->ilen == CHR_IN_BUF) {
			watch_in(chr, false);
			return;
		}
		n = read(chr->in_fd, chr->ibuf + chr->ilen,
			 CHR_IN_BUF - chr->ilen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			watch_in(chr, true);
			return;
		}
		if (n < 0) {
			chr_peer_failed(chr, "read", errno);
			return;
		}
		if (n == 0) {
			input_ended(chr);
			return;
		}
		moved += (size_t)n;
		chr->ilen += chr->be->filter_in
				     ? chr->be->filter_in(
					       chr, chr->ibuf + chr->ilen,
					       (size_t)n)
				     : (size_t)n;
	}
	pump_later(chr);
}

static void pump(struct chr *chr)
{
	flush_out(chr);
	feed_in(chr);
}

static void ep_changed(struct hub_ep *ep, void *opaque)
{
	struct chr *chr = opaque;

	(void)ep;
	if (hub_ep_gone(chr->ep)) {
		/* Unplugged: the peer stays, for the port that may come back
		 * under the same name; what it had sent the old one goes. */
		chr->hp = NULL;
		sync_ep(chr);
		return;
	}
	pump(chr);
}

static const struct hub_ep_ops chr_ep_ops = {
	.changed = ep_changed,
};

/* Attach while the peer is up and the port plugged, detach otherwise. */
static void sync_ep(struct chr *chr)
{
	bool want = chr->up && chr->hp && !hub_port_gone(chr->hp);
	unsigned flags = HUB_EP_PERSISTENT;
	int rc;

	if (!want && chr->ep) {
		hub_ep_detach(chr->ep);
		chr->ep = NULL;
		/* What the peer sent the old port goes; what it sends from
		 * now on waits for the next (feed_in). */
		chr->ilen = 0;
		watch_out(chr, false);
		if (chr->up)
			pump_later(chr);
		return;
	}
	if (!want || chr->ep)
		return;
	if (chr->out_fd >= 0 || chr->be->sink)
		flags |= HUB_EP_READ;
	if (chr->in_fd >= 0 && (!chr->in_eof || chr->ilen))
		flags |= HUB_EP_WRITE | HUB_EP_WAIT_TURN;
	rc = hub_ep_attach(chr->hp, flags, &chr_ep_ops, chr, &chr->ep);
	if (rc) {
		vp_warn("chardev %s: cannot attach to port '%s': %s", chr->id,
			chr->port, strerror(-rc));
		chr->ep = NULL;
		return;
	}
	pump(chr);
}

static void in_cb(struct vp_watch *w, int revents, void *opaque)
{
	(void)w;
	(void)revents;
	feed_in(opaque);
}

static void out_cb(struct vp_watch *w, int revents, void *opaque)
{
	(void)w;
	(void)revents;
	flush_out(opaque);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void chr_peer_up(struct chr *chr, int in_fd, int out_fd, unsigned flags)
{
	struct vp_loop *loop = chr->set->loop;

	chr_peer_down(chr);
	chr->up = true;
	chr->peer_flags = flags;
	chr->in_fd = in_fd;
	chr->out_fd = out_fd;
	chr->in_eof = false;
	chr->ilen = 0;
	if (in_fd >= 0) {
		set_nonblock(in_fd);
		chr->in_w = vp_watch_new(loop, in_fd, 0, in_cb, chr);
	}
	if (out_fd >= 0) {
		set_nonblock(out_fd);
		chr->out_w = vp_watch_new(loop, out_fd, 0, out_cb, chr);
	}
	if ((in_fd >= 0 && !chr->in_w) || (out_fd >= 0 && !chr->out_w)) {
		chr_peer_failed(chr, "watch", ENOMEM);
		return;
	}
	vp_debug("chardev %s: peer up", chr->id);
	sync_ep(chr);
	/* Not attached (no port of its name now): watch the peer anyway, so
	 * that its hang-up is seen. */
	if (!chr->ep)
		pump_later(chr);
}

void chr_peer_down(struct chr *chr)
{
	struct vp_loop *loop = chr->set->loop;

	if (!chr->up)
		return;
	chr->up = false;
	sync_ep(chr);
	vp_watch_free(loop, chr->in_w);
	vp_watch_free(loop, chr->out_w);
	chr->in_w = chr->out_w = NULL;
	if (chr->peer_flags & CHR_PEER_OWNS_FDS) {
		if (chr->in_fd >= 0)
			close(chr->in_fd);
		if (chr->out_fd >= 0 && chr->out_fd != chr->in_fd)
			close(chr->out_fd);
	}
	chr->in_fd = chr->out_fd = -1;
	chr->ilen = 0;
}

void chr_peer_set_out(struct chr *chr, int out_fd)
{
	if (!chr->up) {
		chr_peer_up(chr, -1, out_fd, CHR_PEER_OWNS_FDS);
		return;
	}
	vp_watch_free(chr->set->loop, chr->out_w);
	chr->out_w = NULL;
	if ((chr->peer_flags & CHR_PEER_OWNS_FDS) && chr->out_fd >= 0 &&
	    chr->out_fd != chr->in_fd)
		close(chr->out_fd);
	chr->out_fd = out_fd;
	set_nonblock(out_fd);
	chr->out_w = vp_watch_new(chr->set->loop, out_fd, 0, out_cb, chr);
	if (!chr->out_w) {
		chr_peer_failed(chr, "watch", ENOMEM);
		return;
	}
	/* Not now: a sink may be calling us with iovecs in hand. */
	pump_later(chr);
}

void chr_peer_failed(struct chr *chr, const char *what, int err)
{
	chr->errors++;
	vp_warn_rl("chardev %s: %s: %s; detached", chr->id, what,
		   strerror(err));
	chr_peer_down(chr);
	if (chr->be->peer_gone)
		chr->be->peer_gone(chr);
}

/* ---- the hub tells us ---------------------------------------------------- */

static void on_port_added(struct hub_port *hp, void *opaque)
{
	struct chr_set *set = opaque;
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link) {
		if (chr->port && !strcmp(chr->port, hub_port_label(hp))) {
			chr->hp = hp;
			sync_ep(chr);
		}
	}
}

static void on_port_removed(struct hub_port *hp, void *opaque)
{
	struct chr_set *set = opaque;
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link) {
		if (chr->hp == hp) {
			chr->hp = NULL;
			sync_ep(chr);
		}
	}
}

#define ATTR_PREFIX "chardev."

/* "chardev.ID.KEY\0" into buf at *used, counting what it needs. */
static void list_one(char *buf, size_t len, size_t *used, const char *id,
		     const char *key)
{
	int n = snprintf(*used < len ? buf + *used : NULL,
			 *used < len ? len - *used : 0, ATTR_PREFIX "%s.%s", id,
			 key);

	*used += (size_t)n + 1;
}

/* Every chardev's names into buf, as far as they fit; the bytes needed. */
static size_t list_all(struct chr_set *set, struct hub_port *hp, char *buf,
		       size_t len)
{
	static const char *const keys[] = {"backend", "connected", "errors"};
	size_t used = 0;
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link) {
		char extra[256];
		size_t n;

		if (!chr->port || strcmp(chr->port, hub_port_label(hp)))
			continue;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			list_one(buf, len, &used, chr->id, keys[i]);
		n = chr->be->attr_list
			    ? chr->be->attr_list(chr, extra, sizeof(extra))
			    : 0;
		for (size_t k = 0; n <= sizeof(extra) && k < n;
		     k += strlen(extra + k) + 1)
			list_one(buf, len, &used, chr->id, extra + k);
	}
	return used;
}

static size_t attr_list(struct hub_port *hp, char *buf, size_t len,
			void *opaque)
{
	size_t need = list_all(opaque, hp, NULL, 0);

	/* The contract: all or nothing. */
	if (buf && need <= len)
		list_all(opaque, hp, buf, len);
	return need;
}

ssize_t chr_attr_printf(char *buf, size_t len, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp) || (size_t)n > len)
		return -ERANGE;
	memcpy(buf, tmp, (size_t)n);
	return n;
}

static ssize_t attr_get(struct hub_port *hp, const char *key, char *buf,
			size_t len, void *opaque)
{
	struct chr_set *set = opaque;
	struct chr *chr;

	if (strncmp(key, ATTR_PREFIX, strlen(ATTR_PREFIX)) != 0)
		return -ENODATA;
	key += strlen(ATTR_PREFIX);
	TAILQ_FOREACH(chr, &set->chrs, link) {
		size_t idlen = strlen(chr->id);
		const char *k = key + idlen + 1;

		if (!chr->port || strcmp(chr->port, hub_port_label(hp)) ||
		    strncmp(key, chr->id, idlen) || key[idlen] != '.')
			continue;
		if (!strcmp(k, "backend"))
			return chr_attr_printf(buf, len, "%s", chr->be->name);
		if (!strcmp(k, "connected"))
			return chr_attr_printf(buf, len, "%d", chr->ep != NULL);
		if (!strcmp(k, "errors"))
			return chr_attr_printf(buf, len, "%llu",
					  (unsigned long long)chr->errors);
		if (chr->be->attr_get) {
			ssize_t n = chr->be->attr_get(chr, k, buf, len);

			/* Not this one's: the key may be of an id that
			 * extends this one ("a" and "a.b"). */
			if (n != -ENODATA)
				return n;
		}
	}
	return -ENODATA;
}

static const struct hub_observer_ops chr_observer = {
	.port_added = on_port_added,
	.port_removed = on_port_removed,
	.attr_list = attr_list,
	.attr_get = attr_get,
};

/* ---- the set ------------------------------------------------------------- */

struct chr_set *chr_set_new(struct vp_loop *loop, struct hub *hub)
{
	struct chr_set *set = calloc(1, sizeof(*set));

	if (!set)
		return NULL;
	set->loop = loop;
	set->hub = hub;
	TAILQ_INIT(&set->chrs);
	if (hub_observer_add(hub, &chr_observer, set)) {
		free(set);
		return NULL;
	}
	return set;
}

static void chr_free(struct chr *chr)
{
	chr_peer_down(chr);
	if (chr->parsed && chr->be->stop)
		chr->be->stop(chr);
	vp_defer_cancel(chr->set->loop, pump_cb, chr);
	if (chr->log_fd >= 0)
		close(chr->log_fd);
	free(chr->logfile);
	free(chr->ibuf);
	free(chr->priv);
	free(chr->id);
	free(chr->port);
	free(chr);
}

void chr_set_free(struct chr_set *set)
{
	struct chr *chr;

	if (!set)
		return;
	hub_observer_remove(set->hub, &chr_observer, set);
	while ((chr = TAILQ_FIRST(&set->chrs))) {
		TAILQ_REMOVE(&set->chrs, chr, link);
		chr_free(chr);
	}
	free(set);
}

static struct chr *chr_find(struct chr_set *set, const char *id)
{
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link)
		if (!strcmp(chr->id, id))
			return chr;
	return NULL;
}

static const struct chr_backend *backend_find(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

/* An option the backend does not take is named first: "pth=" is a typo
 * of "path=", not a missing "path=". */
static int check_known(const struct chr_backend *be,
		       const struct chr_spec *spec, char *err, size_t errlen)
{
	static const char *const common[] = {"logfile", "logappend"};

	for (unsigned i = 0; i < spec->nopts; i++) {
		const char *key = spec->opts[i].key;
		bool known = false;

		for (size_t k = 0; k < 2 && !known; k++)
			known = !strcmp(key, common[k]);
		for (const char *const *o = be->options; *o && !known; o++)
			known = !strcmp(key, *o);
		if (!known)
			return chr_errf(NULL, EINVAL, err, errlen,
					"unknown option '%s' for backend '%s'",
					key, be->name);
	}
	return 0;
}

int chr_set_add(struct chr_set *set, const char *text, char *err, size_t errlen)
{
	struct chr_spec spec;
	struct chr *chr;
	const char *logfile;
	int rc;

	rc = chr_spec_parse(text, &spec, err, errlen);
	if (rc)
		return rc;
	chr = calloc(1, sizeof(*chr));
	if (!chr) {
		rc = chr_errf(NULL, ENOMEM, err, errlen, "out of memory");
		goto err_spec;
	}
	chr->set = set;
	chr->in_fd = chr->out_fd = chr->log_fd = -1;
	chr->be = backend_find(spec.backend);
	if (!chr->be) {
		rc = chr_errf(chr, EINVAL, err, errlen,
			      "unknown backend '%s' (socket, pipe, file, log, "
			      "pty, fd, stdio, ringbuf, null)",
			      spec.backend);
		goto err_chr;
	}
	if (chr_find(set, spec.id)) {
		rc = chr_errf(chr, EEXIST, err, errlen,
			      "id '%s' is used by another chardev", spec.id);
		goto err_chr;
	}
	chr->id = strdup(spec.id);
	chr->ibuf = malloc(CHR_IN_BUF);
	chr->priv = calloc(1, chr->be->priv_size ? chr->be->priv_size : 1);
	if (!chr->id || !chr->ibuf || !chr->priv) {
		rc = chr_errf(chr, ENOMEM, err, errlen, "out of memory");
		goto err_chr;
	}
	rc = check_known(chr->be, &spec, err, errlen);
	if (rc)
		goto err_chr;
	logfile = chr_spec_str(&spec, "logfile");
	if (logfile && !*logfile) {
		rc = chr_errf(chr, EINVAL, err, errlen, "logfile= is empty");
		goto err_chr;
	}
	if (logfile && !(chr->logfile = strdup(logfile))) {
		rc = chr_errf(chr, ENOMEM, err, errlen, "out of memory");
		goto err_chr;
	}
	rc = chr_spec_bool(&spec, "logappend", false, &chr->logappend, err,
			   errlen);
	if (!rc) {
		chr->parsed = true;
		rc = chr->be->parse(chr, &spec, err, errlen);
	}
	if (!rc)
		rc = chr_spec_check_unused(&spec, err, errlen);
	if (rc)
		goto err_chr;
	TAILQ_INSERT_TAIL(&set->chrs, chr, link);
	chr_spec_free(&spec);
	return 0;

err_chr:
	chr_free(chr);
err_spec:
	chr_spec_free(&spec);
	return rc;
}

int chr_set_bind(struct chr_set *set, const char *id, const char *port,
		 char *err, size_t errlen)
{
	struct chr *chr = chr_find(set, id);

	if (!chr)
		return chr_errf(NULL, ENOENT, err, errlen,
				"no chardev has id '%s'", id);
	if (chr->port && strcmp(chr->port, port))
		return chr_errf(chr, EBUSY, err, errlen,
				"chardev '%s' already serves port '%s'", id,
				chr->port);
	if (chr->port)
		return 0;
	chr->port = strdup(port);
	if (!chr->port)
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

/* logfile= is written from the loop: opened non-blocking, so that a fifo
 * nobody reads, or a terminal, makes a write fail (and logging stop)
 * instead of blocking the daemon.  0 or -errno. */
static int open_logfile(struct chr *chr)
{
	chr->log_fd = open(chr->logfile,
			   O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK |
				   (chr->logappend ? O_APPEND : O_TRUNC),
			   0666);
	return chr->log_fd < 0 ? -errno : 0;
}

int chr_set_start(struct chr_set *set, char *err, size_t errlen)
{
	struct chr *chr;
	int rc;

	TAILQ_FOREACH(chr, &set->chrs, link) {
		char msg[256];

		if (!chr->port)
			vp_warn("chardev %s serves no port", chr->id);
		if (chr->port)
			chr->hp = hub_port_by_label(set->hub, chr->port);
		if (chr->logfile) {
			rc = open_logfile(chr);
			if (rc)
				return chr_errf(chr, -rc, err, errlen,
						"chardev %s: logfile %s: %s",
						chr->id, chr->logfile,
						strerror(-rc));
		}
		rc = chr->be->start(chr, msg, sizeof(msg));
		if (rc)
			return chr_errf(chr, -rc, err, errlen, "chardev %s: %s",
					chr->id, msg);
	}
	return 0;
}

bool chr_set_waiting(const struct chr_set *set)
{
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link)
		if (chr->be->waiting && chr->be->waiting(chr))
			return true;
	return false;
}

void chr_set_reopen(struct chr_set *set)
{
	struct chr *chr;

	TAILQ_FOREACH(chr, &set->chrs, link)
		if (chr->be->reopen)
			chr->be->reopen(chr);
}
