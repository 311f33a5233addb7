/*
 * libev adapter for struct vp_loop.  Deferred calls run from an ev_prepare
 * watcher, i.e. once per loop iteration just before libev blocks, which is
 * what batches used-ring notifications across all the events of one
 * iteration.
 */
#include <errno.h>
#include <ev.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/ev_loop.h"

/* A deferred call may schedule another; after this many rounds in one
 * iteration we let the loop poll (without blocking) and continue next
 * time, so a ping-pong of deferred calls cannot starve fd events. */
#define DEFER_ROUNDS 64

struct deferred {
	vp_defer_cb cb;
	void *opaque;
};

struct ev_vp_loop {
	struct vp_loop base;
	struct ev_loop *ev;
	ev_prepare prepare;
	ev_idle idle;
	struct deferred *pending;
	unsigned npending;
	unsigned cap;
};

struct vp_watch {
	ev_io io;
	struct ev_vp_loop *l;
	vp_watch_cb cb;
	void *opaque;
};

static int to_ev(int events)
{
	return (events & VP_EV_READ ? EV_READ : 0) |
	       (events & VP_EV_WRITE ? EV_WRITE : 0);
}

static void io_cb(struct ev_loop *ev, ev_io *io, int revents)
{
	struct vp_watch *w = (struct vp_watch *)io;

	(void)ev;
	w->cb(w, (revents & EV_READ ? VP_EV_READ : 0) |
			 (revents & EV_WRITE ? VP_EV_WRITE : 0),
	      w->opaque);
}

static struct vp_watch *watch_new(struct vp_loop *loop, int fd, int events,
				  vp_watch_cb cb, void *opaque)
{
	struct ev_vp_loop *l = (struct ev_vp_loop *)loop;
	struct vp_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->l = l;
	w->cb = cb;
	w->opaque = opaque;
	ev_io_init(&w->io, io_cb, fd, to_ev(events));
	if (events)
		ev_io_start(l->ev, &w->io);
	return w;
}

/* A watch set to what it already is changes nothing: restarting the
 * ev_io would make libev call epoll_ctl again on the next turn, and
 * callers (a chardev after each read that found EAGAIN) ask often. */
static void watch_set(struct vp_watch *w, int events)
{
	if (to_ev(events) == (w->io.events & (EV_READ | EV_WRITE)) &&
	    (ev_is_active(&w->io) != 0) == (events != 0))
		return;
	ev_io_stop(w->l->ev, &w->io);
	ev_io_set(&w->io, w->io.fd, to_ev(events));
	if (events)
		ev_io_start(w->l->ev, &w->io);
}

static void watch_free(struct vp_watch *w)
{
	if (!w)
		return;
	ev_io_stop(w->l->ev, &w->io);
	free(w);
}

struct vp_timer {
	ev_timer t;
	struct ev_vp_loop *l;
	vp_timer_cb cb;
	void *opaque;
};

static void timer_cb(struct ev_loop *ev, ev_timer *et, int revents)
{
	struct vp_timer *t = (struct vp_timer *)et;

	(void)ev;
	(void)revents;
	t->cb(t, t->opaque);
}

static struct vp_timer *timer_new(struct vp_loop *loop, vp_timer_cb cb,
				  void *opaque)
{
	struct vp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->l = (struct ev_vp_loop *)loop;
	t->cb = cb;
	t->opaque = opaque;
	ev_timer_init(&t->t, timer_cb, 0., 0.);
	return t;
}

static void timer_start(struct vp_timer *t, unsigned ms)
{
	ev_timer_stop(t->l->ev, &t->t);
	ev_timer_set(&t->t, ms / 1000., 0.);
	ev_timer_start(t->l->ev, &t->t);
}

static void timer_stop(struct vp_timer *t)
{
	ev_timer_stop(t->l->ev, &t->t);
}

static void timer_free(struct vp_timer *t)
{
	if (!t)
		return;
	ev_timer_stop(t->l->ev, &t->t);
	free(t);
}

static int defer(struct vp_loop *loop, vp_defer_cb cb, void *opaque)
{
	struct ev_vp_loop *l = (struct ev_vp_loop *)loop;

	for (unsigned i = 0; i < l->npending; i++)
		if (l->pending[i].cb == cb && l->pending[i].opaque == opaque)
			return 0;
	if (l->npending == l->cap) {
		unsigned cap = l->cap ? 2 * l->cap : 16;
		struct deferred *p = realloc(l->pending, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->pending = p;
		l->cap = cap;
	}
	l->pending[l->npending++] = (struct deferred){ cb, opaque };
	return 0;
}

static void defer_cancel(struct vp_loop *loop, vp_defer_cb cb, void *opaque)
{
	struct ev_vp_loop *l = (struct ev_vp_loop *)loop;

	for (unsigned i = 0; i < l->npending; i++) {
		if (l->pending[i].cb == cb && l->pending[i].opaque == opaque) {
			memmove(&l->pending[i], &l->pending[i + 1],
				(l->npending - i - 1) * sizeof(*l->pending));
			l->npending--;
			return;
		}
	}
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *p, int revents)
{
	struct ev_vp_loop *l = (struct ev_vp_loop *)((char *)p -
						     offsetof(struct ev_vp_loop, prepare));

	(void)revents;
	for (unsigned round = 0; round < DEFER_ROUNDS && l->npending; round++) {
		struct deferred d = l->pending[0];

		memmove(&l->pending[0], &l->pending[1],
			(l->npending - 1) * sizeof(*l->pending));
		l->npending--;
		d.cb(d.opaque);
	}
	/* Work left over: an idle watcher keeps libev from blocking. */
	if (l->npending)
		ev_idle_start(ev, &l->idle);
	else
		ev_idle_stop(ev, &l->idle);
}

static void idle_cb(struct ev_loop *ev, ev_idle *i, int revents)
{
	(void)ev;
	(void)i;
	(void)revents;
}

static const struct vp_loop_ops ev_vp_ops = {
	.watch_new = watch_new,
	.watch_set = watch_set,
	.watch_free = watch_free,
	.defer = defer,
	.defer_cancel = defer_cancel,
	.timer_new = timer_new,
	.timer_start = timer_start,
	.timer_stop = timer_stop,
	.timer_free = timer_free,
};

struct vp_loop *vp_ev_loop_new(struct ev_loop *ev)
{
	struct ev_vp_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->base.ops = &ev_vp_ops;
	l->ev = ev;
	ev_prepare_init(&l->prepare, prepare_cb);
	ev_prepare_start(ev, &l->prepare);
	ev_unref(ev); /* the prepare watcher alone must not keep ev_run alive */
	ev_idle_init(&l->idle, idle_cb);
	return &l->base;
}

void vp_ev_loop_free(struct vp_loop *loop)
{
	struct ev_vp_loop *l = (struct ev_vp_loop *)loop;

	if (!l)
		return;
	ev_ref(l->ev);
	ev_prepare_stop(l->ev, &l->prepare);
	ev_idle_stop(l->ev, &l->idle);
	free(l->pending);
	free(l);
}
