/*
 * Fake event loop for unit tests; see fake_loop.h.
 *
 * The one design choice that matters: a watch callback may free any watch,
 * so a run first takes a snapshot of (serial number, fd, events) and, before
 * each callback, looks the watch up again by its serial; a freed watch (or
 * a new one that reused its memory) is never called.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "fake_loop.h"

/* A deferred call may schedule another; stop after this many so a
 * ping-pong in the code under test fails the test instead of hanging. */
#define DEFER_LIMIT 10000

struct vp_watch {
	struct fake_loop *fl;
	uint64_t serial;
	int fd;
	int events;
	vp_watch_cb cb;
	void *opaque;
};

struct deferred {
	vp_defer_cb cb;
	void *opaque;
};

/* Timers never fire by themselves: fake_loop_fire_timers fires the armed
 * ones. */
struct vp_timer {
	LIST_ENTRY(vp_timer) link;
	vp_timer_cb cb;
	void *opaque;
	bool armed;
	bool due; /* armed when fake_loop_fire_timers began */
	unsigned ms;
};

struct fake_loop {
	struct vp_loop base;
	LIST_HEAD(, vp_timer) timers;
	struct vp_watch **watches;
	unsigned nwatches, wcap;
	uint64_t next_serial;
	struct deferred *pending;
	unsigned npending, pcap;
	unsigned fail_watches; /* so many watch_new calls fail next */
};

static struct vp_watch *f_watch_new(struct vp_loop *loop, int fd, int events,
				    vp_watch_cb cb, void *opaque)
{
	struct fake_loop *fl = (struct fake_loop *)loop;
	struct vp_watch *w;

	if (fl->fail_watches) {
		fl->fail_watches--;
		return NULL;
	}
	if (fl->nwatches == fl->wcap) {
		unsigned cap = fl->wcap ? 2 * fl->wcap : 16;
		struct vp_watch **p = realloc(fl->watches, cap * sizeof(*p));

		if (!p)
			return NULL;
		fl->watches = p;
		fl->wcap = cap;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fl = fl;
	w->serial = ++fl->next_serial;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->opaque = opaque;
	fl->watches[fl->nwatches++] = w;
	return w;
}

static void f_watch_set(struct vp_watch *w, int events)
{
	w->events = events;
}

static void f_watch_free(struct vp_watch *w)
{
	struct fake_loop *fl;

	if (!w)
		return;
	fl = w->fl;
	for (unsigned i = 0; i < fl->nwatches; i++) {
		if (fl->watches[i] == w) {
			memmove(&fl->watches[i], &fl->watches[i + 1],
				(fl->nwatches - i - 1) * sizeof(*fl->watches));
			fl->nwatches--;
			break;
		}
	}
	free(w);
}

static int f_defer(struct vp_loop *loop, vp_defer_cb cb, void *opaque)
{
	struct fake_loop *fl = (struct fake_loop *)loop;

	for (unsigned i = 0; i < fl->npending; i++)
		if (fl->pending[i].cb == cb && fl->pending[i].opaque == opaque)
			return 0;
	if (fl->npending == fl->pcap) {
		unsigned cap = fl->pcap ? 2 * fl->pcap : 16;
		struct deferred *p = realloc(fl->pending, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		fl->pending = p;
		fl->pcap = cap;
	}
	fl->pending[fl->npending++] = (struct deferred){ cb, opaque };
	return 0;
}

static void f_defer_cancel(struct vp_loop *loop, vp_defer_cb cb, void *opaque)
{
	struct fake_loop *fl = (struct fake_loop *)loop;

	for (unsigned i = 0; i < fl->npending; i++) {
		if (fl->pending[i].cb == cb && fl->pending[i].opaque == opaque) {
			memmove(&fl->pending[i], &fl->pending[i + 1],
				(fl->npending - i - 1) * sizeof(*fl->pending));
			fl->npending--;
			return;
		}
	}
}

static struct vp_timer *f_timer_new(struct vp_loop *loop, vp_timer_cb cb,
				    void *opaque)
{
	struct fake_loop *fl = (struct fake_loop *)loop;
	struct vp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cb = cb;
	t->opaque = opaque;
	LIST_INSERT_HEAD(&fl->timers, t, link);
	return t;
}

static void f_timer_start(struct vp_timer *t, unsigned ms)
{
	t->armed = true;
	t->ms = ms;
}

static void f_timer_stop(struct vp_timer *t)
{
	t->armed = false;
}

static void f_timer_free(struct vp_timer *t)
{
	if (!t)
		return;
	LIST_REMOVE(t, link);
	free(t);
}

unsigned fake_loop_fire_timers(struct fake_loop *fl)
{
	struct vp_timer *t;
	unsigned n = 0;

	LIST_FOREACH(t, &fl->timers, link)
		t->due = t->armed;
	/* One at a time, from the start: a callback may free any timer, or
	 * re-arm its own (it fires at the next call, not this one). */
	for (;;) {
		LIST_FOREACH(t, &fl->timers, link)
			if (t->due)
				break;
		if (!t)
			return n;
		t->due = t->armed = false;
		t->cb(t, t->opaque);
		n++;
	}
}

void fake_loop_fail_watches(struct fake_loop *fl, unsigned n)
{
	fl->fail_watches = n;
}

unsigned fake_loop_ntimers(const struct fake_loop *fl)
{
	const struct vp_timer *t;
	unsigned n = 0;

	LIST_FOREACH(t, &fl->timers, link)
		n++;
	return n;
}

static const struct vp_loop_ops fake_ops = {
	.watch_new = f_watch_new,
	.watch_set = f_watch_set,
	.watch_free = f_watch_free,
	.defer = f_defer,
	.defer_cancel = f_defer_cancel,
	.timer_new = f_timer_new,
	.timer_start = f_timer_start,
	.timer_stop = f_timer_stop,
	.timer_free = f_timer_free,
};

struct fake_loop *fake_loop_new(void)
{
	struct fake_loop *fl = calloc(1, sizeof(*fl));

	if (!fl)
		return NULL;
	fl->base.ops = &fake_ops;
	return fl;
}

void fake_loop_free(struct fake_loop *fl)
{
	if (!fl)
		return;
	for (unsigned i = 0; i < fl->nwatches; i++)
		free(fl->watches[i]);
	free(fl->watches);
	while (!LIST_EMPTY(&fl->timers))
		f_timer_free(LIST_FIRST(&fl->timers));
	free(fl->pending);
	free(fl);
}

struct vp_loop *fake_loop_vp(struct fake_loop *fl)
{
	return &fl->base;
}

static struct vp_watch *find_serial(struct fake_loop *fl, uint64_t serial)
{
	for (unsigned i = 0; i < fl->nwatches; i++)
		if (fl->watches[i]->serial == serial)
			return fl->watches[i];
	return NULL;
}

unsigned fake_loop_run_deferred(struct fake_loop *fl)
{
	unsigned ran = 0;

	while (fl->npending && ran < DEFER_LIMIT) {
		struct deferred d = fl->pending[0];

		memmove(&fl->pending[0], &fl->pending[1],
			(fl->npending - 1) * sizeof(*fl->pending));
		fl->npending--;
		d.cb(d.opaque);
		ran++;
	}
	return ran;
}

int fake_loop_run(struct fake_loop *fl, int timeout_ms)
{
	struct pollfd *pfd;
	uint64_t *serial;
	unsigned n = 0;
	int called = 0;

	fake_loop_run_deferred(fl);
	pfd = calloc(fl->nwatches + 1, sizeof(*pfd));
	serial = calloc(fl->nwatches + 1, sizeof(*serial));
	if (!pfd || !serial)
		goto out;
	for (unsigned i = 0; i < fl->nwatches; i++) {
		const struct vp_watch *w = fl->watches[i];

		if (!w->events)
			continue;
		pfd[n].fd = w->fd;
		pfd[n].events = (short)((w->events & VP_EV_READ ? POLLIN : 0) |
					(w->events & VP_EV_WRITE ? POLLOUT : 0));
		serial[n] = w->serial;
		n++;
	}
	if (poll(pfd, n, timeout_ms) <= 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		struct vp_watch *w;
		int rev = 0;

		if (!pfd[i].revents)
			continue;
		w = find_serial(fl, serial[i]);
		if (!w || !w->events)
			continue; /* freed or paused by an earlier callback */
		/* Like libev: errors and hang-ups show up as readiness. */
		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
			rev |= w->events & VP_EV_READ;
		if (pfd[i].revents & (POLLOUT | POLLERR | POLLNVAL))
			rev |= w->events & VP_EV_WRITE;
		if (!rev)
			continue;
		w->cb(w, rev, w->opaque);
		called++;
	}
out:
	free(pfd);
	free(serial);
	fake_loop_run_deferred(fl);
	return called;
}

bool fake_loop_fire(struct fake_loop *fl, int fd, int revents)
{
	for (unsigned i = 0; i < fl->nwatches; i++) {
		struct vp_watch *w = fl->watches[i];

		if (w->fd == fd) {
			w->cb(w, revents, w->opaque);
			return true;
		}
	}
	return false;
}

unsigned fake_loop_nwatches(const struct fake_loop *fl)
{
	return fl->nwatches;
}

int fake_loop_watch_events(const struct fake_loop *fl, int fd)
{
	for (unsigned i = 0; i < fl->nwatches; i++)
		if (fl->watches[i]->fd == fd)
			return fl->watches[i]->events;
	return -1;
}

unsigned fake_loop_ndeferred(const struct fake_loop *fl)
{
	return fl->npending;
}
