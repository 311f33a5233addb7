/*
 * The event-loop interface the core modules are given (house rule 6):
 * src/device, src/hub, src/fs and src/chardev never call libev; they ask
 * for fd watches, one-shot timers and deferred calls through this table.  src/cli/ev_loop.c implements it with
 * libev; unit tests implement it with fakes.
 */
#ifndef VPORTFS_LOOP_H
#define VPORTFS_LOOP_H

#include <stdbool.h>

enum {
	VP_EV_READ = 1,
	VP_EV_WRITE = 2,
};

struct vp_loop;
struct vp_watch;
struct vp_timer;

typedef void (*vp_watch_cb)(struct vp_watch *w, int revents, void *opaque);
typedef void (*vp_timer_cb)(struct vp_timer *t, void *opaque);
typedef void (*vp_defer_cb)(void *opaque);

struct vp_loop_ops {
	/* Watch fd for events (VP_EV_*); NULL on allocation failure.  The
	 * callback may free the watch. */
	struct vp_watch *(*watch_new)(struct vp_loop *loop, int fd, int events,
				      vp_watch_cb cb, void *opaque);
	/* Change the events watched; 0 pauses the watch. */
	void (*watch_set)(struct vp_watch *w, int events);
	/* Stop and free; NULL is accepted.  Does not close the fd. */
	void (*watch_free)(struct vp_watch *w);
	/* Run cb(opaque) once, just before the loop next waits for events:
	 * the place to batch work (used-ring notifications) that many events
	 * in one iteration produced.  Scheduling the same (cb, opaque) twice
	 * before it runs runs it once.  0 or -ENOMEM. */
	int (*defer)(struct vp_loop *loop, vp_defer_cb cb, void *opaque);
	/* Drop a scheduled deferred call, if any (before its owner dies). */
	void (*defer_cancel)(struct vp_loop *loop, vp_defer_cb cb,
			     void *opaque);
	/* A stopped one-shot timer; NULL on allocation failure. */
	struct vp_timer *(*timer_new)(struct vp_loop *loop, vp_timer_cb cb,
				      void *opaque);
	/* Fire once, ms milliseconds from now (re-arming replaces the
	 * previous deadline). */
	void (*timer_start)(struct vp_timer *t, unsigned ms);
	void (*timer_stop)(struct vp_timer *t);
	/* Stop and free; NULL is accepted.  The callback may free it. */
	void (*timer_free)(struct vp_timer *t);
};

struct vp_loop {
	const struct vp_loop_ops *ops;
};

static inline struct vp_watch *vp_watch_new(struct vp_loop *loop, int fd,
					    int events, vp_watch_cb cb,
					    void *opaque)
{
	return loop->ops->watch_new(loop, fd, events, cb, opaque);
}

static inline void vp_watch_set(struct vp_loop *loop, struct vp_watch *w,
				int events)
{
	loop->ops->watch_set(w, events);
}

static inline void vp_watch_free(struct vp_loop *loop, struct vp_watch *w)
{
	loop->ops->watch_free(w);
}

static inline struct vp_timer *vp_timer_new(struct vp_loop *loop,
					    vp_timer_cb cb, void *opaque)
{
	return loop->ops->timer_new(loop, cb, opaque);
}

static inline void vp_timer_start(struct vp_loop *loop, struct vp_timer *t,
				  unsigned ms)
{
	loop->ops->timer_start(t, ms);
}

static inline void vp_timer_stop(struct vp_loop *loop, struct vp_timer *t)
{
	loop->ops->timer_stop(t);
}

static inline void vp_timer_free(struct vp_loop *loop, struct vp_timer *t)
{
	loop->ops->timer_free(t);
}

static inline int vp_defer(struct vp_loop *loop, vp_defer_cb cb, void *opaque)
{
	return loop->ops->defer(loop, cb, opaque);
}

static inline void vp_defer_cancel(struct vp_loop *loop, vp_defer_cb cb,
				   void *opaque)
{
	loop->ops->defer_cancel(loop, cb, opaque);
}

#endif
