/*
 * struct vp_loop implemented with libev: the only place that knows libev
 * besides main().
 */
#ifndef VPORTFS_EV_LOOP_H
#define VPORTFS_EV_LOOP_H

#include "vportfs/loop.h"

struct ev_loop;

/* NULL on allocation failure.  ev must outlive the result. */
struct vp_loop *vp_ev_loop_new(struct ev_loop *ev);
void vp_ev_loop_free(struct vp_loop *loop);

#endif
