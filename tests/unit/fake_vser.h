/*
 * A fake virtio-serial device for the hub's unit tests: it implements the
 * vser_* calls src/hub/hub.c makes (see include/vportfs/vser.h) over a
 * model the test drives by hand, with no virtqueues and no frontend.
 *
 * The one design choice that matters: the fake keeps the device's
 * calling contracts, so a hub that breaks them fails the test.  Guest
 * open/close reach the listener's port_event synchronously, from inside
 * the fake_vser_guest_* call, and only the accessors and
 * vser_reader_set_limit may be used from there; port_changed comes from a
 * deferred call on the loop (fake_loop_run_deferred), never from inside a
 * vser call; a port may only be removed once its readers are freed.
 *
 * Guest output is one byte stream per port addressed by offsets, in a
 * ring of test-set size: a serial port's ring refuses what does not fit
 * (fake_vser_guest_send returns what it took), a console's drops its
 * oldest bytes and its readers that fell behind count them as dropped.
 * Readers start as enum vser_backlog says, as the real device does.
 */
#ifndef VPORTFS_TESTS_FAKE_VSER_H
#define VPORTFS_TESTS_FAKE_VSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vportfs/loop.h"
#include "vportfs/vser.h"

#define FAKE_VSER_RING_DEFAULT 4096u
#define FAKE_VSER_OUT_DEFAULT  4096u

/* Asserts (cmocka) on bad arguments: these are test set-up errors. */
struct vser *fake_vser_new(struct vp_loop *loop, unsigned max_ports);
/* The hub must be gone (no listener) and every reader freed.  NULL
 * accepted. */
void fake_vser_free(struct vser *dev);

/* A port with number nr (< max_ports, free) before the hub is made. */
struct vser_port *fake_vser_add_port(struct vser *dev, unsigned nr,
				     const char *name, bool console);
/* Ring (guest -> host) and out buffer (host -> guest) sizes; only while
 * they are empty. */
void fake_vser_set_ring(struct vser_port *port, size_t cap);
void fake_vser_set_out_cap(struct vser_port *port, size_t cap);
/* -o session on the device side: a guest close discards what the host
 * wrote and the guest has not taken (vser_config.out_per_session). */
void fake_vser_set_out_per_session(struct vser *dev, bool on);

/* Has the device a listener (hub_free must leave it none)? */
bool fake_vser_has_listener(const struct vser *dev);

/* ---- the guest ---------------------------------------------------------- */

/* A new session: session counter + 1, guest_connected, port_event(OPEN)
 * at once, port_changed from the loop. */
void fake_vser_guest_open(struct vser_port *port);
/* The session ends: port_event(CLOSE) at once (and, with out_per_session,
 * the out buffer discarded), port_changed from the loop. */
void fake_vser_guest_close(struct vser_port *port);
/* Guest output: returns the bytes the ring took (a console takes all). */
size_t fake_vser_guest_send(struct vser_port *port, const void *buf,
			    size_t len);
/* The guest takes up to n host bytes into buf; returns how many. */
size_t fake_vser_guest_drain(struct vser_port *port, void *buf, size_t n);
/* Accepted host bytes thrown away undelivered (a session ended):
 * write_discards + 1 if any were pending. */
void fake_vser_discard_out(struct vser_port *port);

/* ---- the device ------------------------------------------------------- */

/* Sets the matching state (frontend, driver_ready) and tells the
 * listener's device_event at once. */
void fake_vser_device_event(struct vser *dev, enum vser_dev_event ev);
void fake_vser_set_features(struct vser *dev, uint64_t features);
void fake_vser_set_orphan_bytes(struct vser *dev, uint64_t bytes);

/* ---- what the hub did --------------------------------------------------- */

/* vser_port_set_host_connected calls with true and with false (repeated
 * values counted too). */
unsigned fake_vser_host_connect_calls(const struct vser_port *port);
unsigned fake_vser_host_disconnect_calls(const struct vser_port *port);
unsigned fake_vser_nreaders(const struct vser_port *port);
/* The backlog the latest vser_reader_new on the port asked for. */
enum vser_backlog fake_vser_last_backlog(const struct vser_port *port);
/* vser_port_remove calls so far (the port itself is freed by them). */
unsigned fake_vser_ports_removed(const struct vser *dev);

#endif
