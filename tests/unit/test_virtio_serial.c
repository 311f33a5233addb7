/*
 * Unit tests for src/device/virtio_serial.c: ports and the control-protocol
 * state machine.
 *
 * The device's vhost-user side is never connected (except in the last few
 * tests, which look at what the device offers a frontend), so control
 * messages for the guest stay queued: vser_handle_control() plays the
 * guest's control-tx queue and vser_take_control() reads what the device
 * queued for the guest's control-rx queue.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_loop.h"
#include "vportfs/log.h"
#include "vportfs/vhost_user_proto.h"
#include "vportfs/virtio_proto.h"
#include "vportfs/vser.h"
#include "vportfs/vu.h"

#define MAX_PORTS 8u
#define OUT_BUF 16u

struct fx {
	struct fake_loop *fl;
	struct vser *dev;
	/* The listener's record. */
	unsigned changed[MAX_PORTS];
	bool guest_seen[MAX_PORTS]; /* guest_connected when last told */
	unsigned dev_events[3];
	int sock; /* frontend end, when a test connects one */
};


/* vser_port_add with the fields these tests vary. */
static int port_add(struct vser *dev, int nr, const char *name, bool console,
		    struct vser_port **out)
{
	struct vser_port_config pc = {
		.nr = nr, .name = name, .console = console,
	};

	return vser_port_add(dev, &pc, out);
}

static void on_port_changed(struct vser_port *port, void *opaque)
{
	struct fx *f = opaque;
	unsigned nr = vser_port_nr(port);

	assert_true(nr < MAX_PORTS);
	f->changed[nr]++;
	f->guest_seen[nr] = vser_port_guest_connected(port);
}

static void on_device_event(enum vser_dev_event ev, void *opaque)
{
	struct fx *f = opaque;

	assert_true((unsigned)ev < 3);
	f->dev_events[ev]++;
}

static const struct vser_listener listener = {
	.port_changed = on_port_changed,
	.device_event = on_device_event,
};

static int setup_cfg(void **state, bool out_per_session)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vser_config cfg = { .max_ports = MAX_PORTS,
				   .out_buf = OUT_BUF,
				   .out_per_session = out_per_session };

	assert_non_null(f);
	f->sock = -1;
	f->fl = fake_loop_new();
	assert_non_null(f->fl);
	f->dev = vser_new(fake_loop_vp(f->fl), &cfg);
	assert_non_null(f->dev);
	vser_set_listener(f->dev, &listener, f);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_cfg(state, false);
}

/* -o session: host bytes belong to the guest session. */
static int setup_session(void **state)
{
	return setup_cfg(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vser_free(f->dev);
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
	assert_int_equal(fake_loop_ndeferred(f->fl), 0);
	fake_loop_free(f->fl);
	if (f->sock >= 0)
		close(f->sock);
	free(f);
	return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct vser_port *add_port(struct fx *f, int nr, const char *name,
				  bool console)
{
	struct vser_port *p = NULL;

	assert_int_equal(port_add(f->dev, nr, name, console, &p), 0);
	assert_non_null(p);
	return p;
}

/* The guest sends a control message. */
static void guest_ctrl(struct fx *f, uint32_t id, uint16_t event,
		       uint16_t value)
{
	struct virtio_console_control c = { id, event, value };

	vser_handle_control(f->dev, &c, sizeof(c));
}

/* The next message the device queued for the guest is exactly this. */
static void expect_ctrl_extra(struct fx *f, uint32_t id, uint16_t event,
			      uint16_t value, const char *extra)
{
	uint8_t buf[sizeof(struct virtio_console_control) + VSER_NAME_MAX + 8];
	struct virtio_console_control c;
	size_t extra_len = extra ? strlen(extra) : 0;
	size_t n = vser_take_control(f->dev, buf, sizeof(buf));

	assert_int_equal(n, sizeof(c) + extra_len);
	memcpy(&c, buf, sizeof(c));
	assert_int_equal(c.id, id);
	assert_int_equal(c.event, event);
	assert_int_equal(c.value, value);
	if (extra_len)
		assert_memory_equal(buf + sizeof(c), extra, extra_len);
}

static void expect_ctrl(struct fx *f, uint32_t id, uint16_t event,
			uint16_t value)
{
	expect_ctrl_extra(f, id, event, value, NULL);
}

static void expect_no_ctrl(struct fx *f)
{
	uint8_t buf[64];

	assert_int_equal(vser_take_control(f->dev, buf, sizeof(buf)), 0);
}

/* DEVICE_READY and drain the PORT_ADDs. */
static void driver_ready(struct fx *f)
{
	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_true(vser_driver_ready(f->dev));
	for (unsigned nr = 0; nr < MAX_PORTS; nr++)
		if (vser_port_by_nr(f->dev, nr))
			expect_ctrl(f, nr, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_no_ctrl(f);
}

/* PORT_READY for a port and drain what it produces. */
static void port_ready(struct fx *f, struct vser_port *p)
{
	uint8_t buf[512];

	guest_ctrl(f, vser_port_nr(p), VIRTIO_CONSOLE_PORT_READY, 1);
	while (vser_take_control(f->dev, buf, sizeof(buf)))
		;
}

/* ---- DEVICE_READY -------------------------------------------------------- */

static void test_device_ready_sends_port_add_for_every_port_in_number_order(
	void **state)
{
	struct fx *f = *state;

	add_port(f, 5, "five", false);
	add_port(f, 1, "one", false);
	add_port(f, 0, "console0", true);
	add_port(f, 3, "three", false);
	expect_no_ctrl(f); /* nothing before the driver is ready */
	assert_false(vser_driver_ready(f->dev));

	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_true(vser_driver_ready(f->dev));
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 3, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 5, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_no_ctrl(f);
	assert_int_equal(f->dev_events[VSER_DEV_DRIVER_READY], 1);
}

static void test_device_ready_again_is_a_driver_restart(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, -1, "a", false);

	driver_ready(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "a");
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(vser_port_guest_connected(p));
	/* A reloaded guest driver says DEVICE_READY again, as QEMU's device
	 * expects: every port is announced again, its old session is over. */
	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_no_ctrl(f);
	assert_false(vser_port_guest_connected(p));
	assert_int_equal(f->dev_events[VSER_DEV_DRIVER_READY], 2);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "a");
}

static void test_device_ready_value_0_is_not_ready(void **state)
{
	struct fx *f = *state;

	add_port(f, -1, "a", false);
	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 0);
	assert_false(vser_driver_ready(f->dev));
	expect_no_ctrl(f);
}

static void test_short_control_message_is_ignored(void **state)
{
	struct fx *f = *state;
	struct virtio_console_control c = { 0, VIRTIO_CONSOLE_DEVICE_READY, 1 };

	add_port(f, -1, "a", false);
	vser_handle_control(f->dev, &c, sizeof(c) - 1);
	vser_handle_control(f->dev, &c, 0);
	assert_false(vser_driver_ready(f->dev));
	expect_no_ctrl(f);
}

static void test_control_message_longer_than_8_bytes_is_read(void **state)
{
	struct fx *f = *state;
	uint8_t buf[12] = { 0 };
	struct virtio_console_control c = { 0, VIRTIO_CONSOLE_DEVICE_READY, 1 };

	add_port(f, -1, "a", false);
	memcpy(buf, &c, sizeof(c));
	vser_handle_control(f->dev, buf, sizeof(buf));
	assert_true(vser_driver_ready(f->dev));
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
}

/* ---- PORT_READY ---------------------------------------------------------- */

static void test_port_ready_on_console_port_sends_console_port_and_name(
	void **state)
{
	struct fx *f = *state;

	add_port(f, 0, "console0", true);
	driver_ready(f);
	guest_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	/* The name bytes, no NUL. */
	expect_ctrl_extra(f, 0, VIRTIO_CONSOLE_PORT_NAME, 1, "console0");
	/* The host side is not connected: no PORT_OPEN. */
	expect_no_ctrl(f);
}

static void test_port_ready_on_generic_port_sends_name_only(void **state)
{
	struct fx *f = *state;

	add_port(f, 2, "org.qemu.guest_agent.0", false);
	driver_ready(f);
	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 2, VIRTIO_CONSOLE_PORT_NAME, 1,
			  "org.qemu.guest_agent.0");
	expect_no_ctrl(f);
}

static void test_port_ready_sends_port_open_1_when_host_connected(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "agent", false);

	vser_port_set_host_connected(p, true);
	expect_no_ctrl(f); /* the guest does not know the port yet */
	driver_ready(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "agent");
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
}

static void test_port_ready_twice_is_idempotent(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 0, "console0", true);

	vser_port_set_host_connected(p, true);
	driver_ready(f);
	guest_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	expect_ctrl_extra(f, 0, VIRTIO_CONSOLE_PORT_NAME, 1, "console0");
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	guest_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_no_ctrl(f);
}

static void test_port_ready_for_unknown_port_is_ignored(void **state)
{
	struct fx *f = *state;

	add_port(f, 1, "a", false);
	driver_ready(f);
	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_READY, 1);         /* no port */
	guest_ctrl(f, MAX_PORTS, VIRTIO_CONSOLE_PORT_READY, 1); /* >= max */
	guest_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_PORT_READY, 1);
	guest_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
	/* The real port still works. */
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "a");
}

static void test_port_ready_value_0_sends_nothing(void **state)
{
	struct fx *f = *state;

	add_port(f, 1, "a", false);
	driver_ready(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 0);
	expect_no_ctrl(f);
	/* A later success is still answered. */
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "a");
}

static void test_port_name_of_255_bytes_is_sent_whole(void **state)
{
	struct fx *f = *state;
	char name[VSER_NAME_MAX + 1];

	memset(name, 'n', VSER_NAME_MAX);
	name[VSER_NAME_MAX] = '\0';
	add_port(f, 1, name, false);
	driver_ready(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, name);
}

static void test_unexpected_guest_event_is_ignored(void **state)
{
	struct fx *f = *state;

	add_port(f, 1, "a", false);
	driver_ready(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1);
	guest_ctrl(f, 1, 0xffff, 1);
	expect_no_ctrl(f);
	assert_false(vser_port_guest_connected(vser_port_by_nr(f->dev, 1)));
}

/* ---- PORT_OPEN, both directions ---------------------------------------- */

static void test_guest_port_open_toggles_guest_connected(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "a", false);

	driver_ready(f);
	port_ready(f, p);
	assert_false(vser_port_guest_connected(p));
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(vser_port_guest_connected(p));
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	assert_false(vser_port_guest_connected(p));
	/* Any non-zero value is open. */
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 7);
	assert_true(vser_port_guest_connected(p));
	/* Guest open/close is not answered. */
	expect_no_ctrl(f);
}

static void test_host_connect_and_disconnect_after_ready_queue_port_open(
	void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 3, "a", false);

	driver_ready(f);
	port_ready(f, p);
	vser_port_set_host_connected(p, true);
	assert_true(vser_port_host_connected(p));
	expect_ctrl(f, 3, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
	vser_port_set_host_connected(p, false);
	assert_false(vser_port_host_connected(p));
	expect_ctrl(f, 3, VIRTIO_CONSOLE_PORT_OPEN, 0);
	expect_no_ctrl(f);
	/* Setting the same state again says nothing. */
	vser_port_set_host_connected(p, false);
	expect_no_ctrl(f);
}

static void test_host_toggles_before_guest_reads_coalesce_to_last_value(
	void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "a", false);
	struct vser_port *q = add_port(f, 2, "b", false);

	driver_ready(f);
	port_ready(f, p);
	port_ready(f, q);
	vser_port_set_host_connected(p, true);
	vser_port_set_host_connected(q, true);
	vser_port_set_host_connected(p, false);
	/* One message per port, p's with its last value. */
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	expect_ctrl(f, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);

	vser_port_set_host_connected(p, true);
	vser_port_set_host_connected(p, false);
	vser_port_set_host_connected(p, true);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
}

/* Host writes, closes; the guest has no RX buffers yet. */
static struct vser_port *host_writes_and_closes(struct fx *f)
{
	struct vser_port *p = add_port(f, 1, "a", false);

	driver_ready(f);
	port_ready(f, p);
	vser_port_set_host_connected(p, true);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(vser_port_write(p, "abc", 3), 3);
	assert_int_equal(vser_port_write_pending(p), 3);
	vser_port_set_host_connected(p, false);
	fake_loop_run_deferred(f->fl);
	/* The guest must not see the close before it got the bytes. */
	expect_no_ctrl(f);
	return p;
}

/* Default mode: bytes a host write() accepted wait through the guest's
 * close for its next open, as they would in a socket; the host side stays
 * open for the guest until they are delivered. */
static void test_host_close_waits_for_accepted_output(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = host_writes_and_closes(f);

	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(vser_port_write_pending(p), 3);
	assert_int_equal(vser_port_write_discards(p), 0);
	expect_no_ctrl(f);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(vser_port_write_pending(p), 3);
	expect_no_ctrl(f);
}

/* The same across a guest reboot: after the driver comes back and the
 * port is ready again, the guest is told the host side is open. */
static void test_accepted_output_waits_across_driver_restart(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = host_writes_and_closes(f);

	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(vser_port_write_pending(p), 3);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "a");
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
}

/* -o session: they belong to the session that ended: discarded, counted,
 * and the host's close completes. */
static void test_session_close_discards_accepted_output(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = host_writes_and_closes(f);

	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	assert_int_equal(vser_port_write_pending(p), 0);
	assert_int_equal(vser_port_write_discards(p), 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	expect_no_ctrl(f);
}

/* ---- hot-plug ------------------------------------------------------------- */

static void test_port_added_after_device_ready_is_hot_plugged(void **state)
{
	struct fx *f = *state;
	struct vser_port *p;

	add_port(f, 1, "a", false);
	driver_ready(f);
	p = add_port(f, -1, "hot", false);
	assert_int_equal(vser_port_nr(p), 2);
	expect_ctrl(f, 2, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_no_ctrl(f);
	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl_extra(f, 2, VIRTIO_CONSOLE_PORT_NAME, 1, "hot");
	expect_no_ctrl(f);
}

static void test_control_messages_are_queued_not_dropped(void **state)
{
	struct fx *f = *state;

	/* No control-rx queue at all: every message waits, in order. */
	for (unsigned nr = 1; nr < MAX_PORTS; nr++) {
		char name[8];

		snprintf(name, sizeof(name), "p%u", nr);
		add_port(f, (int)nr, name, false);
	}
	guest_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned nr = 1; nr < MAX_PORTS; nr++)
		guest_ctrl(f, nr, VIRTIO_CONSOLE_PORT_READY, 1);
	for (unsigned nr = 1; nr < MAX_PORTS; nr++)
		expect_ctrl(f, nr, VIRTIO_CONSOLE_PORT_ADD, 1);
	for (unsigned nr = 1; nr < MAX_PORTS; nr++) {
		char name[8];

		snprintf(name, sizeof(name), "p%u", nr);
		expect_ctrl_extra(f, nr, VIRTIO_CONSOLE_PORT_NAME, 1, name);
	}
	expect_no_ctrl(f);
}

/* ---- port numbers ---------------------------------------------------------- */

static void test_port_add_picks_lowest_free_from_1_keeping_0_for_console(
	void **state)
{
	struct fx *f = *state;

	assert_int_equal(vser_port_nr(add_port(f, -1, "a", false)), 1);
	assert_int_equal(vser_port_nr(add_port(f, -1, "b", false)), 2);
	assert_int_equal(vser_port_nr(add_port(f, 4, "d", false)), 4);
	assert_int_equal(vser_port_nr(add_port(f, -1, "c", false)), 3);
	assert_int_equal(vser_port_nr(add_port(f, -1, "e", false)), 5);
	/* A console port takes 0 while it is free ... */
	assert_int_equal(vser_port_nr(add_port(f, -1, "con", true)), 0);
	/* ... and the lowest free number after that. */
	assert_int_equal(vser_port_nr(add_port(f, -1, "con2", true)), 6);
	assert_true(vser_port_is_console(vser_port_by_nr(f->dev, 6)));
	assert_false(vser_port_is_console(vser_port_by_nr(f->dev, 5)));
	assert_string_equal(vser_port_name(vser_port_by_nr(f->dev, 3)), "c");
}

static void test_port_add_generic_never_takes_0(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = NULL;

	for (unsigned nr = 1; nr < MAX_PORTS; nr++) {
		char name[8];

		snprintf(name, sizeof(name), "p%u", nr);
		add_port(f, -1, name, false);
	}
	assert_int_equal(port_add(f->dev, -1, "x", false, &p), -ENOSPC);
	assert_null(p);
	assert_null(vser_port_by_nr(f->dev, 0));
	/* 0 is still there for a console. */
	assert_int_equal(vser_port_nr(add_port(f, -1, "con", true)), 0);
	assert_int_equal(port_add(f->dev, -1, "y", true, NULL), -ENOSPC);
}

static void test_port_add_rejects_duplicate_nr_and_name(void **state)
{
	struct fx *f = *state;

	add_port(f, 2, "a", false);
	assert_int_equal(port_add(f->dev, 2, "b", false, NULL), -EEXIST);
	assert_int_equal(port_add(f->dev, 3, "a", false, NULL), -EEXIST);
	assert_int_equal(port_add(f->dev, -1, "a", true, NULL), -EEXIST);
	assert_null(vser_port_by_nr(f->dev, 3));
	assert_string_equal(vser_port_name(vser_port_by_nr(f->dev, 2)), "a");
}

static void test_port_add_rejects_nr_at_or_over_max_ports(void **state)
{
	struct fx *f = *state;

	assert_int_equal(port_add(f->dev, MAX_PORTS, "a", false, NULL),
			 -EINVAL);
	assert_int_equal(port_add(f->dev, 1000, "a", false, NULL),
			 -EINVAL);
	assert_int_equal(vser_port_nr(add_port(f, MAX_PORTS - 1, "a", false)),
			 MAX_PORTS - 1);
}

static void test_port_add_rejects_name_over_255_bytes(void **state)
{
	struct fx *f = *state;
	char name[VSER_NAME_MAX + 2];

	memset(name, 'n', VSER_NAME_MAX + 1);
	name[VSER_NAME_MAX + 1] = '\0';
	assert_int_equal(port_add(f->dev, -1, name, false, NULL), -EINVAL);
}

static void test_port_iteration_visits_ports_in_number_order(void **state)
{
	struct fx *f = *state;
	struct vser_port *p;
	unsigned seen[MAX_PORTS], n = 0;

	add_port(f, 6, "six", false);
	add_port(f, 2, "two", false);
	add_port(f, 0, "zero", true);
	for (p = vser_port_next(f->dev, 0); p;
	     p = vser_port_next(f->dev, vser_port_nr(p) + 1))
		seen[n++] = vser_port_nr(p);
	assert_int_equal(n, 3);
	assert_int_equal(seen[0], 0);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 6);
	assert_null(vser_port_by_nr(f->dev, MAX_PORTS));
	assert_int_equal(vser_max_ports(f->dev), MAX_PORTS);
}

/* ---- host -> guest writes ---------------------------------------------- */

static void test_port_write_returns_eagain_until_guest_opens(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "a", false);

	assert_int_equal(vser_port_write(p, "x", 1), -EAGAIN);
	assert_false(vser_port_writable(p));
	driver_ready(f);
	port_ready(f, p);
	vser_port_set_host_connected(p, true);
	assert_int_equal(vser_port_write(p, "x", 1), -EAGAIN);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(vser_port_writable(p));
	assert_int_equal(vser_port_write(p, "x", 1), 1);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	assert_int_equal(vser_port_write(p, "x", 1), -EAGAIN);
	assert_false(vser_port_writable(p));
}

static void test_port_write_is_bounded_by_out_buf(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "a", false);
	char big[40];

	memset(big, 'b', sizeof(big));
	driver_ready(f);
	port_ready(f, p);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* No guest RX buffers (no frontend): everything stays buffered. */
	assert_int_equal(vser_port_write(p, big, 10), 10);
	assert_int_equal(vser_port_write(p, big, sizeof(big)), OUT_BUF - 10);
	assert_int_equal(vser_port_write_pending(p), OUT_BUF);
	assert_false(vser_port_writable(p));
	assert_int_equal(vser_port_write(p, big, 1), -EAGAIN);
}

/* ---- the listener ----------------------------------------------------------- */

static void test_listener_told_about_guest_open_and_close(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 2, "a", false);

	driver_ready(f);
	port_ready(f, p);
	fake_loop_run_deferred(f->fl);
	f->changed[2] = 0;

	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed[2], 1);
	assert_true(f->guest_seen[2]);

	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_OPEN, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed[2], 2);
	assert_false(f->guest_seen[2]);
}

static void test_listener_not_called_synchronously_from_control(void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 2, "a", false);

	driver_ready(f);
	port_ready(f, p);
	fake_loop_run_deferred(f->fl);
	f->changed[2] = 0;
	guest_ctrl(f, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* Deferred: the caller may be anywhere in the device. */
	assert_int_equal(f->changed[2], 0);
	assert_true(fake_loop_ndeferred(f->fl) > 0);
	fake_loop_run_deferred(f->fl);
}

/* ---- what a frontend sees ------------------------------------------------- */

static void vu_send(struct fx *f, uint32_t request, uint32_t flags,
		    const void *payload, uint32_t size)
{
	struct vu_msg m = { .hdr = { request, VU_VERSION | flags, size } };

	if (size)
		memcpy(&m.payload, payload, size);
	assert_int_equal(send(f->sock, &m, VU_HDR_SIZE + size, MSG_NOSIGNAL),
			 (ssize_t)(VU_HDR_SIZE + size));
	fake_loop_run(f->fl, 0);
}

static void vu_recv(struct fx *f, struct vu_msg *m)
{
	memset(m, 0, sizeof(*m));
	assert_int_equal(recv(f->sock, &m->hdr, VU_HDR_SIZE, MSG_DONTWAIT),
			 VU_HDR_SIZE);
	assert_int_equal(m->hdr.flags, 0x5);
	if (m->hdr.size)
		assert_int_equal(recv(f->sock, &m->payload, m->hdr.size,
				      MSG_DONTWAIT),
				 (ssize_t)m->hdr.size);
}

static uint64_t vu_get_u64(struct fx *f, uint32_t request)
{
	struct vu_msg m;

	vu_send(f, request, 0, NULL, 0);
	vu_recv(f, &m);
	assert_int_equal(m.hdr.size, 8);
	return m.payload.u64;
}

static void connect_frontend(struct fx *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vu_attach_fd(vser_vu(f->dev), sv[0]), 0);
	f->sock = sv[1];
	assert_true(vser_frontend_connected(f->dev));
}

static void test_device_offers_console_features_and_bit_30(void **state)
{
	struct fx *f = *state;

	connect_frontend(f);
	assert_int_equal(vu_get_u64(f, VU_REQ_GET_FEATURES),
			 (1ull << VIRTIO_F_VERSION_1) |
				 (1ull << VIRTIO_CONSOLE_F_MULTIPORT) |
				 (1ull << VIRTIO_F_EVENT_IDX) |
				 (1ull << VIRTIO_F_INDIRECT_DESC) |
				 (1ull << VIRTIO_CONSOLE_F_EMERG_WRITE) |
				 (1ull << VIRTIO_CONSOLE_F_SIZE) | (1ull << 30));
}

static void test_device_offers_reply_ack_config_backend_req_mq_only(
	void **state)
{
	struct fx *f = *state;

	connect_frontend(f);
	/* Not INBAND_NOTIFICATIONS (14) nor anything else untested. */
	assert_int_equal(vu_get_u64(f, VU_REQ_GET_PROTOCOL_FEATURES),
			 (1ull << VU_PROTOCOL_F_MQ) |
				 (1ull << VU_PROTOCOL_F_REPLY_ACK) |
				 (1ull << VU_PROTOCOL_F_BACKEND_REQ) |
				 (1ull << VU_PROTOCOL_F_CONFIG));
}

static void test_device_has_two_queues_per_port_plus_control(void **state)
{
	struct fx *f = *state;

	connect_frontend(f);
	assert_int_equal(vu_get_u64(f, VU_REQ_GET_QUEUE_NUM),
			 2 * (MAX_PORTS + 1));
}

static void test_device_config_reports_max_nr_ports(void **state)
{
	struct fx *f = *state;
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[12];
	} __attribute__((packed)) req = { { 0, 12, 0 }, { 0 } };
	struct virtio_console_config cfg;
	struct vu_msg m;

	connect_frontend(f);
	vu_send(f, VU_REQ_GET_CONFIG, 0, &req, sizeof(req));
	vu_recv(f, &m);
	assert_int_equal(m.hdr.size, 12 + 12);
	memcpy(&cfg, m.payload.config.data, sizeof(cfg));
	assert_int_equal(cfg.max_nr_ports, MAX_PORTS);
	assert_int_equal(cfg.emerg_wr, 0);
}

static void test_emergency_write_goes_to_first_console_port(void **state)
{
	struct fx *f = *state;
	struct vser_port *con;
	struct {
		struct vu_config_hdr hdr;
		uint32_t emerg_wr;
	} __attribute__((packed)) req = {
		{ offsetof(struct virtio_console_config, emerg_wr), 4, 0 }, 'X'
	};
	struct vser_reader *r;
	struct iovec iov[2];
	int niov = 2;
	struct vu_msg m;

	add_port(f, 1, "a", false);
	con = add_port(f, 3, "con", true);
	connect_frontend(f);
	vu_send(f, VU_REQ_SET_CONFIG, VU_FLAG_NEED_REPLY, &req, sizeof(req));
	vu_recv(f, &m);
	assert_int_equal(m.payload.u64, 0);
	r = vser_reader_new(con, VSER_BACKLOG_UNREAD);
	assert_non_null(r);
	assert_int_equal(vser_reader_readable(r), 1);
	assert_int_equal(vser_reader_peek(r, iov, &niov, 16), 1);
	assert_int_equal(niov, 1);
	assert_memory_equal(iov[0].iov_base, "X", 1);
	vser_reader_free(r);
	assert_true(f->changed[3] >= 1);
}

static void test_frontend_going_away_resets_device_and_keeps_ports(
	void **state)
{
	struct fx *f = *state;
	struct vser_port *p = add_port(f, 1, "a", false);

	connect_frontend(f);
	assert_int_equal(f->dev_events[VSER_DEV_FRONTEND_UP], 1);
	driver_ready(f);
	port_ready(f, p);
	guest_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	fake_loop_run_deferred(f->fl);
	f->changed[1] = 0;

	close(f->sock);
	f->sock = -1;
	fake_loop_run(f->fl, 0);
	assert_false(vser_frontend_connected(f->dev));
	assert_int_equal(f->dev_events[VSER_DEV_FRONTEND_DOWN], 1);
	assert_false(vser_driver_ready(f->dev));
	assert_false(vser_port_guest_connected(p));
	assert_true(f->changed[1] >= 1);
	assert_false(f->guest_seen[1]);
	assert_ptr_equal(vser_port_by_nr(f->dev, 1), p);
	/* The next VM starts from DEVICE_READY again. */
	connect_frontend(f);
	driver_ready(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_device_ready_sends_port_add_for_every_port_in_number_order),
		T(test_device_ready_again_is_a_driver_restart),
		T(test_device_ready_value_0_is_not_ready),
		T(test_short_control_message_is_ignored),
		T(test_control_message_longer_than_8_bytes_is_read),
		T(test_port_ready_on_console_port_sends_console_port_and_name),
		T(test_port_ready_on_generic_port_sends_name_only),
		T(test_port_ready_sends_port_open_1_when_host_connected),
		T(test_port_ready_twice_is_idempotent),
		T(test_port_ready_for_unknown_port_is_ignored),
		T(test_port_ready_value_0_sends_nothing),
		T(test_port_name_of_255_bytes_is_sent_whole),
		T(test_unexpected_guest_event_is_ignored),
		T(test_guest_port_open_toggles_guest_connected),
		T(test_host_connect_and_disconnect_after_ready_queue_port_open),
		T(test_host_toggles_before_guest_reads_coalesce_to_last_value),
		T(test_host_close_waits_for_accepted_output),
		T(test_accepted_output_waits_across_driver_restart),
		cmocka_unit_test_setup_teardown(
			test_session_close_discards_accepted_output,
			setup_session, teardown),
		T(test_port_added_after_device_ready_is_hot_plugged),
		T(test_control_messages_are_queued_not_dropped),
		T(test_port_add_picks_lowest_free_from_1_keeping_0_for_console),
		T(test_port_add_generic_never_takes_0),
		T(test_port_add_rejects_duplicate_nr_and_name),
		T(test_port_add_rejects_nr_at_or_over_max_ports),
		T(test_port_add_rejects_name_over_255_bytes),
		T(test_port_iteration_visits_ports_in_number_order),
		T(test_port_write_returns_eagain_until_guest_opens),
		T(test_port_write_is_bounded_by_out_buf),
		T(test_listener_told_about_guest_open_and_close),
		T(test_listener_not_called_synchronously_from_control),
		T(test_device_offers_console_features_and_bit_30),
		T(test_device_offers_reply_ack_config_backend_req_mq_only),
		T(test_device_has_two_queues_per_port_plus_control),
		T(test_device_config_reports_max_nr_ports),
		T(test_emergency_write_goes_to_first_console_port),
		T(test_frontend_going_away_resets_device_and_keeps_ports),
	};

	vp_log_set_level(VP_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
