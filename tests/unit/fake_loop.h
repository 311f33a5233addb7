/*
 * A fake struct vp_loop for unit tests: it records fd watches and deferred
 * calls and runs nothing by itself.  The test drives it explicitly, so no
 * test sleeps: fake_loop_run() polls the watched fds once (with the given
 * timeout) and calls the callbacks of the ready ones, then runs the deferred
 * calls, exactly as one iteration of the real loop would.
 *
 * Callbacks may free any watch (their own or others) and schedule more
 * deferred calls; the fake copes with both.
 */
#ifndef VPORTFS_TESTS_FAKE_LOOP_H
#define VPORTFS_TESTS_FAKE_LOOP_H

#include <stdbool.h>

#include "vportfs/loop.h"

struct fake_loop;

struct fake_loop *fake_loop_new(void);
/* Frees the fake and any watch or deferred call still recorded (a leak of
 * the code under test shows up in fake_loop_nwatches() before that). */
void fake_loop_free(struct fake_loop *fl);
struct vp_loop *fake_loop_vp(struct fake_loop *fl);

/* One iteration: run deferred calls, poll() the watched fds once with
 * timeout_ms (0: do not wait), call the callbacks of ready watches, run the
 * deferred calls again.  Returns the number of watch callbacks called. */
int fake_loop_run(struct fake_loop *fl, int timeout_ms);
/* Run the deferred calls only (also those they schedule, bounded).
 * Returns how many ran. */
unsigned fake_loop_run_deferred(struct fake_loop *fl);

/* Call the callback of the (first) watch on fd as if revents had happened,
 * whatever the fd's state.  false if no watch is on fd. */
bool fake_loop_fire(struct fake_loop *fl, int fd, int revents);

/* The next n watch_new calls fail (allocation failure). */
void fake_loop_fail_watches(struct fake_loop *fl, unsigned n);

/* Live watches, and the events watched on fd (-1 if fd is not watched). */
unsigned fake_loop_nwatches(const struct fake_loop *fl);
int fake_loop_watch_events(const struct fake_loop *fl, int fd);
/* Fire every armed timer once (not those armed by the callbacks);
 * returns how many fired.  Live timers, armed or not. */
unsigned fake_loop_fire_timers(struct fake_loop *fl);
unsigned fake_loop_ntimers(const struct fake_loop *fl);
/* Deferred calls scheduled and not yet run. */
unsigned fake_loop_ndeferred(const struct fake_loop *fl);

#endif
