/*
 * Unit tests for src/hub/hub.c: sharing, sessions, the host-connected
 * rule, hot-plug and the `.events` lines, against a fake device
 * (fake_vser.c) on the fake loop.
 *
 * Endpoints are fakes that count `changed` calls and can detach
 * themselves from inside one.  The fake device calls the hub's
 * port_event synchronously and port_changed from a deferred call, as the
 * real one does, so fake_loop_run_deferred() is "the loop iterates".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "fake_loop.h"
#include "fake_vser.h"
#include "vportfs/hub.h"
#include "vportfs/hub_events.h"
#include "vportfs/log.h"

#define MAX_PORTS  4u
#define NEP	   4
#define EVENTS_MAX 16384

struct fx;

/* A fake endpoint provider's endpoint. */
struct tep {
	struct fx *f;
	struct hub_ep *ep;
	unsigned changed;
	bool detach_on_changed; /* detach itself when told */
	bool gone_when_told;	/* hub_ep_gone() at the latest `changed` */
};

struct fx {
	struct fake_loop *fl;
	struct vser *dev;
	struct hub *hub;
	struct vser_port *con; /* nr 0, console "con" */
	struct vser_port *ser; /* nr 1, serial "ser" */
	struct hub_port *hcon, *hser;
	struct hub_events_reader *evr;
	char events[EVENTS_MAX]; /* every `.events` line read so far */
	size_t events_len;
	struct tep ep[NEP];
	/* The observer's record. */
	unsigned added, removed, events_ready, changed;
	struct hub_port *last_added, *last_removed;
	bool removed_was_gone;
};

/* ---- the fake provider -------------------------------------------------- */

static void tep_changed(struct hub_ep *ep, void *opaque)
{
	struct tep *t = opaque;

	assert_ptr_equal(ep, t->ep);
	t->changed++;
	t->gone_when_told = hub_ep_gone(ep);
	if (t->detach_on_changed) {
		hub_ep_detach(ep);
		t->ep = NULL;
	}
}

static const struct hub_ep_ops tep_ops = {
	.changed = tep_changed,
};

/* Another provider (a chardev beside the file system): other ops. */
static const struct hub_ep_ops other_ops = {
	.changed = tep_changed,
};

static void obs_port_added(struct hub_port *hp, void *opaque)
{
	struct fx *f = opaque;

	f->added++;
	f->last_added = hp;
}

static void obs_port_removed(struct hub_port *hp, void *opaque)
{
	struct fx *f = opaque;

	f->removed++;
	f->last_removed = hp;
	f->removed_was_gone = hub_port_gone(hp);
}

static void obs_events_ready(void *opaque)
{
	struct fx *f = opaque;

	f->events_ready++;
}

static void obs_changed(void *opaque)
{
	struct fx *f = opaque;

	f->changed++;
}

static const struct hub_observer_ops obs_ops = {
	.port_added = obs_port_added,
	.port_removed = obs_port_removed,
	.events_ready = obs_events_ready,
	.changed = obs_changed,
};

/* ---- fixtures ----------------------------------------------------------- */

static int setup_fx(void **state, const struct hub_config *cfg, bool odd_names)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fl = fake_loop_new();
	assert_non_null(f->fl);
	f->dev = fake_vser_new(fake_loop_vp(f->fl), MAX_PORTS);
	f->con = fake_vser_add_port(f->dev, 0, "con", true);
	f->ser = fake_vser_add_port(f->dev, 1, "ser", false);
	if (odd_names) {
		fake_vser_add_port(f->dev, 2, ".hidden", false);
		fake_vser_add_port(f->dev, 3, "", false);
	}
	/* -o session sets the device's out_per_session too (main does). */
	fake_vser_set_out_per_session(f->dev, cfg->session);
	f->hub = hub_new(fake_loop_vp(f->fl), f->dev, cfg);
	assert_non_null(f->hub);
	assert_true(fake_vser_has_listener(f->dev));
	f->hcon = hub_port_at(f->hub, 0);
	f->hser = hub_port_at(f->hub, 1);
	assert_non_null(f->hcon);
	assert_non_null(f->hser);
	f->evr = hub_events_open(hub_events(f->hub));
	assert_non_null(f->evr);
	assert_int_equal(hub_observer_add(f->hub, &obs_ops, f), 0);
	for (int i = 0; i < NEP; i++)
		f->ep[i].f = f;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	const struct hub_config cfg = {0};

	return setup_fx(state, &cfg, false);
}

static int setup_session(void **state)
{
	const struct hub_config cfg = {.session = true};

	return setup_fx(state, &cfg, false);
}

static int setup_exclusive(void **state)
{
	const struct hub_config cfg = {.exclusive = true};

	return setup_fx(state, &cfg, false);
}

static int setup_session_exclusive(void **state)
{
	const struct hub_config cfg = {.session = true, .exclusive = true};

	return setup_fx(state, &cfg, false);
}

/* Ports 2 ".hidden" and 3 "" as well: names that are no file names. */
static int setup_odd_names(void **state)
{
	const struct hub_config cfg = {0};

	return setup_fx(state, &cfg, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < NEP; i++)
		hub_ep_detach(f->ep[i].ep);
	hub_observer_remove(f->hub, &obs_ops, f);
	hub_events_close(f->evr);
	hub_free(f->hub);
	assert_false(fake_vser_has_listener(f->dev));
	fake_vser_free(f->dev);
	assert_int_equal(fake_loop_ndeferred(f->fl), 0);
	fake_loop_free(f->fl);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int try_attach_ops(struct fx *f, int i, struct hub_port *hp,
			  unsigned flags, const struct hub_ep_ops *ops)
{
	struct tep *t = &f->ep[i];

	assert_null(t->ep);
	t->changed = 0;
	t->detach_on_changed = false;
	return hub_ep_attach(hp, flags, ops, t, &t->ep);
}

static int try_attach(struct fx *f, int i, struct hub_port *hp, unsigned flags)
{
	return try_attach_ops(f, i, hp, flags, &tep_ops);
}

static struct tep *attach(struct fx *f, int i, struct hub_port *hp,
			  unsigned flags)
{
	assert_int_equal(try_attach(f, i, hp, flags), 0);
	assert_non_null(f->ep[i].ep);
	return &f->ep[i];
}

static void detach(struct tep *t)
{
	hub_ep_detach(t->ep);
	t->ep = NULL;
}

static void guest_send(struct vser_port *p, const char *s)
{
	assert_int_equal(fake_vser_guest_send(p, s, strlen(s)), strlen(s));
}

/* Peek up to max bytes (into two iovecs), check them, consume them. */
static void expect_read_max(struct tep *t, size_t max, const char *want)
{
	struct iovec iov[2];
	int niov = 2;
	char got[256];
	size_t n = hub_ep_peek(t->ep, iov, &niov, max), off = 0;

	assert_true(niov >= 0 && niov <= 2);
	for (int i = 0; i < niov; i++) {
		assert_true(off + iov[i].iov_len < sizeof(got));
		memcpy(got + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, n);
	got[off] = '\0';
	assert_string_equal(got, want);
	hub_ep_consume(t->ep, n);
}

static void expect_read(struct tep *t, const char *want)
{
	expect_read_max(t, SIZE_MAX, want);
}

static void expect_write(struct tep *t, const char *s, ssize_t want)
{
	assert_int_equal(hub_ep_write(t->ep, s, strlen(s)), want);
}

/* The guest takes up to max host bytes: they are exactly `want`. */
static void expect_guest_gets(struct vser_port *p, size_t max, const char *want)
{
	char got[256];
	size_t n;

	assert_true(max < sizeof(got));
	n = fake_vser_guest_drain(p, got, max);
	got[n] = '\0';
	assert_string_equal(got, want);
}

/* Everything the `.events` reader has queued, appended to f->events. */
static const char *events_text(struct fx *f)
{
	size_t n;

	while ((n = hub_events_readable(f->evr))) {
		struct iovec iov[2];
		int k = hub_events_peek(f->evr, iov, n);

		for (int i = 0; i < k; i++) {
			assert_true(f->events_len + iov[i].iov_len <
				    sizeof(f->events));
			memcpy(f->events + f->events_len, iov[i].iov_base,
			       iov[i].iov_len);
			f->events_len += iov[i].iov_len;
		}
		hub_events_consume(f->evr, n);
	}
	f->events[f->events_len] = '\0';
	return f->events;
}

/* The first line of event `name` read so far after `from`, or NULL. */
static const char *event_line_after(struct fx *f, const char *name,
				    const char *from)
{
	char needle[64];
	const char *hit;

	snprintf(needle, sizeof(needle), "\"event\":\"%s\"", name);
	hit = strstr(from ? from : events_text(f), needle);
	if (!hit)
		return NULL;
	while (hit > f->events && hit[-1] != '\n')
		hit--;
	return hit;
}

static const char *event_line(struct fx *f, const char *name)
{
	return event_line_after(f, name, NULL);
}

static unsigned count_events(struct fx *f, const char *name)
{
	const char *line = event_line(f, name);
	unsigned n = 0;

	while (line) {
		n++;
		line = event_line_after(f, name, strchr(line, '\n'));
	}
	return n;
}

/* The line (up to its newline) contains `s`. */
static void assert_line_has(const char *line, const char *s)
{
	const char *end = strchr(line, '\n');
	const char *hit = strstr(line, s);

	assert_non_null(line);
	assert_non_null(end);
	assert_non_null(hit);
	assert_true(hit < end);
}

/* ---- fan-out ------------------------------------------------------------ */

static void
test_each_reader_receives_all_guest_output_through_its_own_cursor(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	b = attach(f, 1, f->hser, HUB_EP_READ);
	fake_loop_run_deferred(f->fl);
	a->changed = b->changed = 0;

	guest_send(f->ser, "hello world");
	fake_loop_run_deferred(f->fl);
	assert_true(a->changed >= 1);
	assert_true(b->changed >= 1);
	assert_int_equal(hub_ep_readable(a->ep), 11);
	expect_read_max(a, 6, "hello ");
	/* A's reading took nothing from B. */
	assert_int_equal(hub_ep_readable(b->ep), 11);
	expect_read(b, "hello world");
	assert_int_equal(hub_ep_readable(a->ep), 5);
	expect_read(a, "world");
	assert_int_equal(hub_ep_readable(a->ep), 0);
	assert_int_equal(hub_ep_readable(b->ep), 0);
}

static void
test_first_reader_gets_output_the_guest_sent_before_anyone_came(void **state)
{
	struct fx *f = *state;
	struct tep *a;

	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "early");
	fake_loop_run_deferred(f->fl);

	a = attach(f, 0, f->hser, HUB_EP_READ);
	assert_int_equal(fake_vser_last_backlog(f->ser), VSER_BACKLOG_UNREAD);
	expect_read(a, "early");
}

static void
test_serial_reader_attached_while_another_reads_gets_new_output(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "abc");
	b = attach(f, 1, f->hser, HUB_EP_READ);
	assert_int_equal(hub_ep_readable(b->ep), 0);
	guest_send(f->ser, "d");
	fake_loop_run_deferred(f->fl);
	expect_read(b, "d");
	expect_read(a, "abcd");
}

static void
test_console_reader_attached_later_gets_what_no_reader_received(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b, *c;

	fake_vser_guest_open(f->con);
	a = attach(f, 0, f->hcon, HUB_EP_READ);
	b = attach(f, 1, f->hcon, HUB_EP_READ);
	guest_send(f->con, "abcdef");
	fake_loop_run_deferred(f->fl);
	expect_read_max(a, 4, "abcd");
	expect_read_max(b, 1, "a");

	c = attach(f, 2, f->hcon, HUB_EP_READ);
	expect_read(c, "ef");
	guest_send(f->con, "gh");
	fake_loop_run_deferred(f->fl);
	assert_true(c->changed >= 1);
	expect_read(a, "efgh");
	expect_read(b, "bcdefgh");
	expect_read(c, "gh");
}

static void
test_peek_describes_output_across_the_ring_end_in_two_iovecs(void **state)
{
	struct fx *f = *state;
	struct iovec iov[2];
	int niov = 2;
	struct tep *a;

	fake_vser_set_ring(f->ser, 8);
	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "123456");
	expect_read_max(a, 5, "12345");
	/* The ring gave those back: these wrap round its end. */
	guest_send(f->ser, "abcdef");
	assert_int_equal(hub_ep_peek(a->ep, iov, &niov, 100), 7);
	assert_int_equal(niov, 2);
	assert_int_equal(iov[0].iov_len, 3);
	assert_memory_equal(iov[0].iov_base, "6ab", 3);
	assert_int_equal(iov[1].iov_len, 4);
	assert_memory_equal(iov[1].iov_base, "cdef", 4);
	hub_ep_consume(a->ep, 7);
	assert_int_equal(hub_ep_readable(a->ep), 0);
}

/* The header allows any *niov up to two; one iovec gets the first run. */
static void
test_peek_into_one_iovec_still_describes_the_readable_bytes(void **state)
{
	struct fx *f = *state;
	struct iovec iov[1];
	int niov = 1;
	struct tep *a;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "xyz");
	assert_int_equal(hub_ep_readable(a->ep), 3);
	assert_int_equal(hub_ep_peek(a->ep, iov, &niov, 100), 3);
	assert_int_equal(niov, 1);
	assert_memory_equal(iov[0].iov_base, "xyz", 3);
}

static void
test_output_offered_to_the_last_reader_and_left_unread_is_dropped(void **state)
{
	struct fx *f = *state;
	struct iovec iov[2];
	int niov = 2;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "seen");
	/* The endpoint looked (a read was answered) and took nothing. */
	assert_int_equal(hub_ep_peek(a->ep, iov, &niov, 100), 4);
	guest_send(f->ser, "late");
	detach(a);

	b = attach(f, 1, f->hser, HUB_EP_READ);
	expect_read(b, "late");
}

static void
test_output_a_poll_offered_and_nobody_read_goes_with_the_last_reader(
	void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "polled");
	hub_ep_seen(a->ep);
	guest_send(f->ser, "after");
	detach(a);

	b = attach(f, 1, f->hser, HUB_EP_READ);
	expect_read(b, "after");
}

static void
test_output_no_reader_looked_at_waits_for_the_next_reader(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "kept");
	detach(a);

	b = attach(f, 1, f->hser, HUB_EP_READ);
	expect_read(b, "kept");
}

/* ---- the source --------------------------------------------------------- */

static void
test_first_writer_is_the_source_and_a_second_writer_gets_ebusy(void **state)
{
	struct fx *f = *state;
	struct tep *a, *c;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	assert_true(hub_ep_is_source(a->ep));
	assert_int_equal(try_attach(f, 1, f->hser, HUB_EP_WRITE), -EBUSY);
	assert_null(f->ep[1].ep);
	assert_int_equal(try_attach(f, 1, f->hser, HUB_EP_READ | HUB_EP_WRITE),
			 -EBUSY);
	/* Readers are never kept out, and never feed the guest. */
	c = attach(f, 2, f->hser, HUB_EP_READ);
	assert_false(hub_ep_is_source(c->ep));
	expect_write(c, "x", -EBADF);
	expect_write(a, "a", 1);
	expect_guest_gets(f->ser, 10, "a");
}

static void
test_writer_waiting_its_turn_becomes_source_when_the_source_leaves(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	b = attach(f, 1, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	assert_true(hub_ep_is_source(a->ep));
	assert_false(hub_ep_is_source(b->ep));
	expect_write(b, "b", -EAGAIN);
	assert_false(hub_ep_writable(b->ep));
	assert_true(hub_ep_writable(a->ep));
	expect_write(a, "a", 1);
	fake_loop_run_deferred(f->fl);
	b->changed = 0;

	detach(a);
	/* B hears of its turn from the loop, not from inside detach. */
	assert_int_equal(b->changed, 0);
	fake_loop_run_deferred(f->fl);
	assert_true(b->changed >= 1);
	assert_true(hub_ep_is_source(b->ep));
	assert_true(hub_ep_writable(b->ep));
	expect_write(b, "b", 1);
	expect_guest_gets(f->ser, 10, "ab");
	/* The host side never closed in between. */
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
}

static void test_source_detaching_itself_when_told_passes_the_turn(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	b = attach(f, 1, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	a->detach_on_changed = true;
	guest_send(f->ser, "poke");
	fake_loop_run_deferred(f->fl);
	assert_null(a->ep);
	assert_true(hub_ep_is_source(b->ep));
	assert_true(b->changed >= 1);
	expect_write(b, "b", 1);
	expect_guest_gets(f->ser, 10, "b");
}

static void test_input_done_passes_the_source_to_the_next_writer(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	b = attach(f, 1, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	expect_write(a, "a", 1);
	fake_loop_run_deferred(f->fl);
	b->changed = 0;

	hub_ep_input_done(a->ep);
	assert_false(hub_ep_is_source(a->ep));
	expect_write(a, "x", -EBADF);
	assert_int_equal(b->changed, 0);
	fake_loop_run_deferred(f->fl);
	assert_true(b->changed >= 1);
	assert_true(hub_ep_is_source(b->ep));
	expect_write(b, "b", 1);
	expect_guest_gets(f->ser, 10, "ab");
	/* A still reads, and still holds the host side open. */
	guest_send(f->ser, "r");
	expect_read(a, "r");
	detach(b);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
}

static void test_input_done_of_a_waiting_writer_gives_up_its_turn(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b, *c;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	b = attach(f, 1, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	c = attach(f, 2, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN);
	hub_ep_input_done(b->ep);
	assert_true(hub_ep_is_source(a->ep));
	detach(a);
	fake_loop_run_deferred(f->fl);
	assert_false(hub_ep_is_source(b->ep));
	assert_true(hub_ep_is_source(c->ep));
	expect_write(c, "c", 1);
}

/* ---- back-pressure ------------------------------------------------------ */

static void
test_write_returns_a_partial_count_then_eagain_when_the_device_is_full(
	void **state)
{
	struct fx *f = *state;
	struct tep *a;

	fake_vser_set_out_cap(f->ser, 8);
	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	expect_write(a, "12345", 5);
	expect_write(a, "abcde", 3);
	assert_false(hub_ep_writable(a->ep));
	expect_write(a, "x", -EAGAIN);
	fake_loop_run_deferred(f->fl);
	a->changed = 0;

	expect_guest_gets(f->ser, 4, "1234");
	fake_loop_run_deferred(f->fl);
	assert_true(a->changed >= 1);
	assert_true(hub_ep_writable(a->ep));
	expect_write(a, "wxyz!", 4);
	expect_guest_gets(f->ser, 100, "5abcwxyz");
}

static void
test_write_returns_eagain_while_the_guest_has_the_port_closed(void **state)
{
	struct fx *f = *state;
	struct tep *a;

	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	assert_true(hub_ep_is_source(a->ep));
	assert_false(hub_ep_writable(a->ep));
	expect_write(a, "x", -EAGAIN);
	fake_vser_guest_open(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(a->changed >= 1);
	assert_true(hub_ep_writable(a->ep));
	expect_write(a, "x", 1);
}

/* ---- the host-connected rule -------------------------------------------- */

static void
test_host_side_opens_on_the_first_attach_and_closes_after_the_last(void **state)
{
	struct fx *f = *state;
	const char *opened, *closed;
	struct tep *a, *b;

	assert_int_equal(fake_vser_host_connect_calls(f->ser), 0);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	assert_int_equal(fake_vser_host_connect_calls(f->ser), 1);
	assert_true(vser_port_host_connected(f->ser));
	b = attach(f, 1, f->hser, HUB_EP_WRITE);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(fake_vser_host_connect_calls(f->ser), 1);

	detach(a);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
	assert_true(vser_port_host_connected(f->ser));
	detach(b);
	fake_loop_run_deferred(f->fl);
	assert_false(vser_port_host_connected(f->ser));
	assert_int_equal(fake_vser_host_connect_calls(f->ser), 1);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 1);
	/* The console was never touched. */
	assert_int_equal(fake_vser_host_connect_calls(f->con), 0);

	assert_int_equal(count_events(f, "host-open"), 1);
	assert_int_equal(count_events(f, "host-close"), 1);
	opened = event_line(f, "host-open");
	closed = event_line(f, "host-close");
	assert_non_null(opened);
	assert_non_null(closed);
	assert_true(opened < closed);
	assert_line_has(opened, "\"port\":\"ser\"");
	assert_line_has(opened, "\"nr\":1");
}

/* ---- sessions ----------------------------------------------------------- */

static void
test_session_endpoint_is_hung_up_when_its_guest_session_closes(void **state)
{
	struct fx *f = *state;
	struct tep *a;
	uint64_t mark;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	guest_send(f->ser, "bye");
	expect_write(a, "x", 1);
	fake_loop_run_deferred(f->fl);
	assert_false(hub_ep_hung(a->ep));
	assert_false(hub_ep_eof(a->ep));
	a->changed = 0;

	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(a->changed >= 1);
	assert_true(hub_ep_hung(a->ep));
	expect_write(a, "y", -EPIPE);
	assert_false(hub_ep_writable(a->ep));
	assert_false(hub_ep_is_source(a->ep));
	/* EOF comes after the session's bytes. */
	expect_read(a, "bye");
	assert_int_equal(hub_ep_readable(a->ep), 0);
	assert_true(hub_ep_eof(a->ep));
	/* What it wrote died with the session: fsync says so, once. */
	mark = hub_ep_sync_mark(a->ep);
	assert_int_equal(hub_ep_sync(a->ep, mark), -EIO);
	mark = hub_ep_sync_mark(a->ep);
	assert_int_equal(hub_ep_sync(a->ep, mark), 0);
	/* The next session does not wake it up. */
	fake_vser_guest_open(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(a->ep));
	expect_write(a, "z", -EPIPE);
}

static void
test_hung_endpoint_keeps_its_unread_tail_after_the_reader_is_dropped(
	void **state)
{
	struct fx *f = *state;
	struct tep *a;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "tail");
	/* The next session starts and talks before the loop runs. */
	fake_vser_guest_close(f->ser);
	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "next");
	assert_true(hub_ep_hung(a->ep));
	assert_int_equal(hub_ep_readable(a->ep), 4);
	fake_loop_run_deferred(f->fl);

	/* The device's ring is free for the next session ... */
	assert_int_equal(fake_vser_nreaders(f->ser), 0);
	/* ... and A still has its own session's bytes, only those. */
	assert_int_equal(hub_ep_readable(a->ep), 4);
	expect_read_max(a, 2, "ta");
	assert_int_equal(hub_ep_readable(a->ep), 2);
	expect_read(a, "il");
	assert_int_equal(hub_ep_readable(a->ep), 0);
	assert_true(hub_ep_eof(a->ep));
}

/*
 * The guest of the next session may write before any endpoint of that
 * session came (the host side still looked open): a reader attached then
 * gets it (the session backlog), whatever the hung endpoint of the
 * session before did with its own tail.
 */
static void
test_next_sessions_early_output_outlives_the_hung_endpoints_tail(void **state)
{
	struct fx *f = *state;
	struct vser_port_stats st;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	guest_send(f->ser, "tail");
	fake_vser_guest_close(f->ser);
	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "next");
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(a->ep));
	assert_int_equal(hub_ep_readable(a->ep), 4);

	b = attach(f, 1, f->hser, HUB_EP_READ);
	assert_int_equal(hub_ep_readable(b->ep), 4);
	expect_read(b, "next");
	vser_port_stats(f->ser, &st);
	assert_int_equal(st.dropped_bytes, 0);
}

static void
test_session_endpoint_attached_while_the_guest_is_closed_binds_to_the_next(
	void **state)
{
	struct fx *f = *state;
	struct tep *a;

	a = attach(f, 0, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	assert_true(vser_port_host_connected(f->ser));
	assert_false(hub_ep_hung(a->ep));
	assert_false(hub_ep_eof(a->ep));
	assert_false(hub_ep_writable(a->ep));
	expect_write(a, "x", -EAGAIN);

	fake_vser_guest_open(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(a->changed >= 1);
	assert_false(hub_ep_hung(a->ep));
	assert_true(hub_ep_writable(a->ep));
	expect_write(a, "x", 1);
	expect_guest_gets(f->ser, 10, "x");
	guest_send(f->ser, "hi");
	fake_loop_run_deferred(f->fl);
	expect_read(a, "hi");

	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(a->ep));
	assert_true(hub_ep_eof(a->ep));
}

static void
test_host_side_closes_once_every_session_endpoint_is_hung_up(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b, *c;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	b = attach(f, 1, f->hser, HUB_EP_WRITE);
	assert_int_equal(fake_vser_host_connect_calls(f->ser), 1);

	/* Not from inside the device's call (the fake fails that). */
	fake_vser_guest_close(f->ser);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(a->ep));
	assert_true(hub_ep_hung(b->ep));
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 1);
	assert_false(vser_port_host_connected(f->ser));
	assert_int_equal(count_events(f, "host-close"), 1);

	/* A newcomer belongs to the next session: open again. */
	c = attach(f, 2, f->hser, HUB_EP_READ);
	assert_false(hub_ep_hung(c->ep));
	assert_int_equal(fake_vser_host_connect_calls(f->ser), 2);
	assert_true(vser_port_host_connected(f->ser));
	/* Hung-up endpoints leaving do not close it again. */
	detach(a);
	detach(b);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 1);
	assert_true(vser_port_host_connected(f->ser));
}

static void
test_session_reader_starts_with_the_open_sessions_output_only(void **state)
{
	struct fx *f = *state;
	struct tep *a;

	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "old");
	fake_vser_guest_close(f->ser);
	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "new");
	fake_loop_run_deferred(f->fl);

	a = attach(f, 0, f->hser, HUB_EP_READ);
	assert_int_equal(fake_vser_last_backlog(f->ser), VSER_BACKLOG_SESSION);
	expect_read(a, "new");
}

/* A chardev's endpoint in session mode: never bound, never hung up. */
static void test_persistent_endpoint_outlives_guest_sessions(void **state)
{
	struct fx *f = *state;
	struct tep *p, *s;

	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "zero");
	p = attach(f, 0, f->hser,
		   HUB_EP_READ | HUB_EP_WRITE | HUB_EP_PERSISTENT);
	/* Like a default-mode endpoint: what no reader received. */
	assert_int_equal(fake_vser_last_backlog(f->ser), VSER_BACKLOG_UNREAD);
	s = attach(f, 1, f->hser, HUB_EP_READ);
	guest_send(f->ser, "one");
	expect_write(p, "w1", 2);

	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(s->ep));
	assert_false(hub_ep_hung(p->ep));
	/* It keeps the host side open. */
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
	assert_true(vser_port_host_connected(f->ser));
	expect_write(p, "x", -EAGAIN);

	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "two");
	fake_loop_run_deferred(f->fl);
	assert_false(hub_ep_hung(p->ep));
	expect_read(p, "zeroonetwo");
	expect_write(p, "w2", 2);
	/* The session endpoint: its session's bytes, nobody had them. */
	expect_read(s, "zeroone");
	/* Nor is it bound to the session it saw open. */
	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_false(hub_ep_hung(p->ep));
	assert_true(vser_port_host_connected(f->ser));
}

static void
test_hung_endpoint_keeps_no_one_out_of_an_exclusive_port(void **state)
{
	struct fx *f = *state;

	fake_vser_guest_open(f->ser);
	attach(f, 0, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	assert_int_equal(try_attach(f, 1, f->hser, HUB_EP_READ), -EBUSY);
	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_hung(f->ep[0].ep));
	attach(f, 1, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	assert_true(hub_ep_is_source(f->ep[1].ep));
}

/* ---- default-mode EOF --------------------------------------------------- */

static void
test_eof_on_a_serial_port_whose_guest_is_closed_never_on_a_console(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	a = attach(f, 0, f->hser, HUB_EP_READ);
	b = attach(f, 1, f->hcon, HUB_EP_READ);
	assert_true(hub_ep_eof(a->ep));
	assert_false(hub_ep_eof(b->ep));

	fake_vser_guest_open(f->ser);
	fake_vser_guest_open(f->con);
	fake_loop_run_deferred(f->fl);
	assert_false(hub_ep_eof(a->ep));
	assert_false(hub_ep_eof(b->ep));

	fake_vser_guest_close(f->ser);
	fake_vser_guest_close(f->con);
	fake_loop_run_deferred(f->fl);
	assert_true(hub_ep_eof(a->ep));
	assert_false(hub_ep_eof(b->ep));
	/* Default mode: nobody is hung up by a guest close. */
	assert_false(hub_ep_hung(a->ep));
}

/* ---- exclusive ---------------------------------------------------------- */

static void
test_exclusive_port_refuses_a_second_endpoint_of_the_same_provider(void **state)
{
	struct fx *f = *state;
	struct tep *a;

	a = attach(f, 0, f->hser, HUB_EP_READ);
	assert_int_equal(try_attach(f, 1, f->hser, HUB_EP_READ), -EBUSY);
	assert_int_equal(try_attach(f, 1, f->hser, HUB_EP_WRITE), -EBUSY);
	assert_int_equal(
		try_attach(f, 1, f->hser, HUB_EP_WRITE | HUB_EP_WAIT_TURN),
		-EBUSY);
	assert_null(f->ep[1].ep);
	/* Other ports are not affected. */
	attach(f, 2, f->hcon, HUB_EP_READ);
	detach(a);
	attach(f, 1, f->hser, HUB_EP_READ | HUB_EP_WRITE);
}

/* hub_config: one endpoint per port, persistent ones (chardevs) aside:
 * they neither count nor are refused, whatever their provider. */
static void test_exclusive_port_leaves_persistent_endpoints_out(void **state)
{
	struct fx *f = *state;

	attach(f, 0, f->hser, HUB_EP_READ | HUB_EP_WRITE);
	assert_int_equal(try_attach_ops(f, 1, f->hser,
					HUB_EP_READ | HUB_EP_PERSISTENT,
					&other_ops),
			 0);
	assert_int_equal(try_attach_ops(f, 2, f->hser,
					HUB_EP_READ | HUB_EP_PERSISTENT,
					&other_ops),
			 0);
	assert_int_equal(try_attach_ops(f, 3, f->hser, HUB_EP_READ, &other_ops),
			 -EBUSY);
	assert_null(f->ep[3].ep);
}

/* ---- hot-plug ----------------------------------------------------------- */

static void test_port_add_refuses_unusable_and_taken_names(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL;

	assert_int_equal(hub_port_add(f->hub, ".x", &hp), -EINVAL);
	assert_int_equal(hub_port_add(f->hub, "a/b", &hp), -EINVAL);
	assert_int_equal(hub_port_add(f->hub, "", &hp), -EINVAL);
	assert_int_equal(hub_port_add(f->hub, "ser", &hp), -EEXIST);
	assert_int_equal(hub_port_add(f->hub, "con", &hp), -EEXIST);
	assert_null(hp);
	assert_null(vser_port_by_nr(f->dev, 2));
	assert_int_equal(f->added, 0);
	assert_int_equal(count_events(f, "port-added"), 0);
}

static void
test_port_add_takes_the_lowest_free_number_and_tells_observers(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL, *hp3 = NULL, *no = NULL;
	const char *line;

	assert_int_equal(hub_port_add(f->hub, "new", &hp), 0);
	assert_non_null(hp);
	assert_int_equal(hub_port_nr(hp), 2);
	assert_non_null(vser_port_by_nr(f->dev, 2));
	assert_ptr_equal(hub_port_at(f->hub, 2), hp);
	assert_ptr_equal(hub_port_by_label(f->hub, "new"), hp);
	assert_string_equal(hub_port_label(hp), "new");
	assert_false(hub_port_gone(hp));
	assert_ptr_equal(hub_port_by_id(f->hub, hub_port_id(hp)), hp);
	assert_true(hub_port_id(hp) != hub_port_id(f->hser));
	assert_true(hub_port_id(hp) != hub_port_id(f->hcon));
	assert_int_equal(f->added, 1);
	assert_ptr_equal(f->last_added, hp);
	line = event_line(f, "port-added");
	assert_non_null(line);
	assert_line_has(line, "\"port\":\"new\"");
	assert_line_has(line, "\"nr\":2");

	assert_int_equal(hub_port_add(f->hub, "n3", &hp3), 0);
	assert_int_equal(hub_port_nr(hp3), 3);
	assert_int_equal(hub_port_add(f->hub, "n4", &no), -ENOSPC);
	assert_null(no);
	assert_int_equal(f->added, 2);
}

static void
test_port_remove_leaves_its_endpoints_attached_to_a_gone_port(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL;
	struct hub_port_info info;
	struct iovec iov[2];
	int niov = 2;
	struct tep *a;
	uint64_t id;

	assert_int_equal(hub_port_add(f->hub, "hot", &hp), 0);
	id = hub_port_id(hp);
	fake_vser_guest_open(vser_port_by_nr(f->dev, 2));
	a = attach(f, 0, hp, HUB_EP_READ | HUB_EP_WRITE);
	guest_send(vser_port_by_nr(f->dev, 2), "data");
	fake_loop_run_deferred(f->fl);
	a->changed = 0;

	hub_port_remove(hp);
	/* The device's port is gone, the endpoint heard of it at once. */
	assert_int_equal(fake_vser_ports_removed(f->dev), 1);
	assert_null(vser_port_by_nr(f->dev, 2));
	assert_true(a->changed >= 1);
	assert_true(a->gone_when_told);
	assert_true(hub_ep_gone(a->ep));
	assert_true(hub_port_gone(hp));
	assert_ptr_equal(hub_ep_port(a->ep), hp);
	expect_write(a, "x", -ENODEV);
	assert_int_equal(hub_ep_readable(a->ep), 0);
	assert_int_equal(hub_ep_peek(a->ep, iov, &niov, 100), 0);
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), -ENODEV);
	assert_int_equal(hub_port_info(hp, &info), -ENODEV);
	assert_int_equal(hub_port_resize(hp, 80, 24), -ENODEV);
	assert_int_equal(try_attach(f, 1, hp, HUB_EP_READ), -ENODEV);
	/* Unlisted, but still found by id while held. */
	assert_null(hub_port_at(f->hub, 2));
	assert_null(hub_port_by_label(f->hub, "hot"));
	assert_ptr_equal(hub_port_by_id(f->hub, id), hp);
	assert_int_equal(f->removed, 1);
	assert_ptr_equal(f->last_removed, hp);
	assert_true(f->removed_was_gone);
	assert_int_equal(count_events(f, "port-removed"), 1);
	assert_line_has(event_line(f, "port-removed"), "\"port\":\"hot\"");
	fake_loop_run_deferred(f->fl);

	detach(a);
	assert_null(hub_port_by_id(f->hub, id));
	fake_loop_run_deferred(f->fl);
	/* The number is free again. */
	assert_int_equal(hub_port_add(f->hub, "again", &hp), 0);
	assert_int_equal(hub_port_nr(hp), 2);
	assert_true(hub_port_id(hp) != id);
}

static void
test_port_remove_without_endpoints_frees_the_port_at_once(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL;
	uint64_t id;

	assert_int_equal(hub_port_add(f->hub, "brief", &hp), 0);
	id = hub_port_id(hp);
	hub_port_remove(hp);
	assert_null(hub_port_by_id(f->hub, id));
	assert_null(hub_port_at(f->hub, 2));
	assert_int_equal(f->removed, 1);
	assert_int_equal(fake_vser_ports_removed(f->dev), 1);
	fake_loop_run_deferred(f->fl);
}

static void test_ports_are_labelled_by_name_or_else_by_number(void **state)
{
	struct fx *f = *state;
	struct hub_port *h2 = hub_port_at(f->hub, 2);
	struct hub_port *h3 = hub_port_at(f->hub, 3);

	assert_int_equal(hub_max_ports(f->hub), MAX_PORTS);
	assert_string_equal(hub_port_label(f->hcon), "con");
	assert_string_equal(hub_port_label(f->hser), "ser");
	assert_non_null(h2);
	assert_non_null(h3);
	assert_string_equal(hub_port_label(h2), "port2");
	assert_string_equal(hub_port_label(h3), "port3");
	assert_ptr_equal(hub_port_by_label(f->hub, "port2"), h2);
	assert_null(hub_port_by_label(f->hub, ".hidden"));
	/* A hot-plugged port may not take a label that exists. */
	assert_int_equal(hub_port_add(f->hub, "port3", NULL), -EEXIST);
	assert_true(hub_port_id(h2) != hub_port_id(h3));
	assert_true(hub_port_id(f->hcon) != hub_port_id(f->hser));
}

/* ---- fsync -------------------------------------------------------------- */

static void
test_fsync_waits_until_the_guest_has_taken_the_written_bytes(void **state)
{
	struct fx *f = *state;
	struct tep *a;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), 0);
	expect_write(a, "abc", 3);
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), -EAGAIN);
	expect_guest_gets(f->ser, 2, "ab");
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), -EAGAIN);
	/* Default mode: a guest close does not end the wait. */
	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), -EAGAIN);
	fake_vser_guest_open(f->ser);
	expect_guest_gets(f->ser, 10, "c");
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), 0);
}

static void test_fsync_reports_discarded_bytes_once(void **state)
{
	struct fx *f = *state;
	struct tep *a, *r;
	uint64_t rmark;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_WRITE);
	r = attach(f, 1, f->hser, HUB_EP_READ);
	rmark = hub_ep_sync_mark(r->ep);
	expect_write(a, "lost", 4);
	fake_vser_discard_out(f->ser);

	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), -EIO);
	assert_int_equal(hub_ep_sync(a->ep, hub_ep_sync_mark(a->ep)), 0);
	/* Another endpoint: the losses since it took its mark. */
	assert_int_equal(hub_ep_sync(r->ep, rmark), -EIO);
	assert_int_equal(hub_ep_sync(r->ep, hub_ep_sync_mark(r->ep)), 0);
}

/* ---- events ------------------------------------------------------------- */

static void
test_guest_open_and_close_are_events_observers_hear_of_from_the_loop(
	void **state)
{
	struct fx *f = *state;
	const char *line;

	fake_vser_guest_open(f->ser);
	line = event_line(f, "guest-open");
	assert_non_null(line);
	assert_line_has(line, "\"port\":\"ser\"");
	assert_line_has(line, "\"nr\":1");
	assert_int_equal(f->events_ready, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->events_ready, 1);

	fake_vser_guest_close(f->ser);
	assert_int_equal(count_events(f, "guest-close"), 1);
	assert_int_equal(count_events(f, "guest-open"), 1);
	assert_int_equal(f->events_ready, 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->events_ready, 2);
	/* Nothing new, nothing to hear. */
	guest_send(f->ser, "x");
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->events_ready, 2);
}

/* The status line of a service manager (main's) needs no .events reader:
 * every kind of event makes one `changed` call per loop turn. */
static void
test_changed_is_heard_without_events_readers_once_a_burst(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp;

	hub_events_close(f->evr);
	f->evr = NULL;
	fake_vser_device_event(f->dev, VSER_DEV_FRONTEND_UP);
	fake_vser_device_event(f->dev, VSER_DEV_DRIVER_READY);
	fake_vser_guest_open(f->ser);
	assert_int_equal(f->changed, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed, 1);
	assert_int_equal(f->events_ready, 0);
	/* Guest data is not a change of state. */
	guest_send(f->ser, "x");
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed, 1);
	assert_int_equal(hub_port_add(f->hub, "hot", &hp), 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed, 2);
	fake_vser_guest_close(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed, 3);
	fake_vser_device_event(f->dev, VSER_DEV_FRONTEND_DOWN);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->changed, 4);
}

static void
test_device_events_are_reported_and_device_info_follows_the_device(void **state)
{
	struct fx *f = *state;
	struct hub_device_info info;

	fake_vser_set_features(f->dev, 0x1234);
	fake_vser_set_orphan_bytes(f->dev, 7);
	fake_vser_device_event(f->dev, VSER_DEV_FRONTEND_UP);
	fake_vser_device_event(f->dev, VSER_DEV_DRIVER_READY);
	assert_non_null(event_line(f, "frontend-up"));
	assert_non_null(event_line(f, "driver-ready"));
	assert_true(event_line(f, "frontend-up") <
		    event_line(f, "driver-ready"));
	hub_device_info(f->hub, &info);
	assert_true(info.frontend);
	assert_true(info.driver_ready);
	assert_int_equal(info.max_ports, MAX_PORTS);
	assert_int_equal(info.features, 0x1234);
	assert_int_equal(info.orphan_bytes, 7);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->events_ready, 1);

	fake_vser_device_event(f->dev, VSER_DEV_FRONTEND_DOWN);
	assert_non_null(event_line(f, "frontend-down"));
	hub_device_info(f->hub, &info);
	assert_false(info.frontend);
	assert_false(info.driver_ready);
}

static void test_console_reader_overrun_is_reported_once_per_loss(void **state)
{
	struct fx *f = *state;
	const char *line;
	struct tep *a;

	fake_vser_set_ring(f->con, 8);
	fake_vser_guest_open(f->con);
	a = attach(f, 0, f->hcon, HUB_EP_READ);
	guest_send(f->con, "abcdef");
	guest_send(f->con, "ghijkl");
	fake_loop_run_deferred(f->fl);
	assert_int_equal(count_events(f, "reader-overrun"), 0);

	expect_read_max(a, 2, "ef");
	line = event_line(f, "reader-overrun");
	assert_non_null(line);
	assert_line_has(line, "\"lost\":4");
	assert_line_has(line, "\"port\":\"con\"");
	expect_read(a, "ghijkl");
	assert_int_equal(count_events(f, "reader-overrun"), 1);

	/* A later loss is a new line with its own count. */
	guest_send(f->con, "0123456789");
	expect_read(a, "23456789");
	assert_int_equal(count_events(f, "reader-overrun"), 2);
	line = event_line_after(f, "reader-overrun", strchr(line, '\n'));
	assert_line_has(line, "\"lost\":2");
}

/* ---- detaching from `changed` ------------------------------------------ */

static void
test_endpoint_may_detach_itself_from_its_changed_callback(void **state)
{
	struct fx *f = *state;
	struct tep *a, *b;

	fake_vser_guest_open(f->ser);
	a = attach(f, 0, f->hser, HUB_EP_READ);
	b = attach(f, 1, f->hser, HUB_EP_READ);
	a->detach_on_changed = true;
	guest_send(f->ser, "x");
	fake_loop_run_deferred(f->fl);
	assert_null(a->ep);
	assert_true(a->changed >= 1);
	assert_true(b->changed >= 1);
	assert_int_equal(fake_vser_nreaders(f->ser), 1);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 0);
	expect_read(b, "x");

	b->detach_on_changed = true;
	guest_send(f->ser, "y");
	fake_loop_run_deferred(f->fl);
	assert_null(b->ep);
	assert_int_equal(fake_vser_nreaders(f->ser), 0);
	assert_int_equal(fake_vser_host_disconnect_calls(f->ser), 1);
	assert_false(vser_port_host_connected(f->ser));
}

static void
test_last_endpoint_of_a_removed_port_may_detach_itself_when_told(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL;
	struct tep *a;
	uint64_t id;

	assert_int_equal(hub_port_add(f->hub, "hot", &hp), 0);
	id = hub_port_id(hp);
	a = attach(f, 0, hp, HUB_EP_READ | HUB_EP_WRITE);
	a->detach_on_changed = true;
	hub_port_remove(hp);
	assert_null(a->ep);
	assert_int_equal(a->changed, 1);
	assert_null(hub_port_by_id(f->hub, id));
	fake_loop_run_deferred(f->fl);
}

static void
test_endpoints_of_a_removed_port_may_detach_themselves_later(void **state)
{
	struct fx *f = *state;
	struct hub_port *hp = NULL;
	struct tep *a, *b;
	uint64_t id;

	assert_int_equal(hub_port_add(f->hub, "hot", &hp), 0);
	id = hub_port_id(hp);
	a = attach(f, 0, hp, HUB_EP_READ);
	b = attach(f, 1, hp, HUB_EP_WRITE);
	hub_port_remove(hp);
	fake_loop_run_deferred(f->fl);
	assert_ptr_equal(hub_port_by_id(f->hub, id), hp);

	/* Both hear of the next thing that happens, from the loop. */
	a->detach_on_changed = true;
	b->detach_on_changed = true;
	fake_vser_guest_open(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_null(a->ep);
	assert_null(b->ep);
	assert_null(hub_port_by_id(f->hub, id));
}

/* ---- ports as the device sees them -------------------------------------- */

static void
test_port_info_follows_the_device_and_resize_reaches_consoles_only(void **state)
{
	struct fx *f = *state;
	struct hub_port_info info;

	assert_int_equal(hub_port_resize(f->hcon, 80, 24), 0);
	assert_int_equal(hub_port_info(f->hcon, &info), 0);
	assert_true(info.console);
	assert_string_equal(info.name, "con");
	assert_int_equal(info.cols, 80);
	assert_int_equal(info.rows, 24);
	assert_int_equal(hub_port_resize(f->hser, 80, 24), -EINVAL);
	assert_int_equal(hub_port_resize(f->hcon, 0, 24), -EINVAL);

	fake_vser_guest_open(f->ser);
	guest_send(f->ser, "abc");
	attach(f, 0, f->hser, HUB_EP_READ);
	assert_int_equal(hub_port_info(f->hser, &info), 0);
	assert_false(info.console);
	assert_string_equal(info.name, "ser");
	assert_true(info.guest_connected);
	assert_true(info.host_connected);
	assert_int_equal(info.rx_bytes, 3);
}

static void test_at_most_four_observers_are_kept(void **state)
{
	struct fx *f = *state;
	static const struct hub_observer_ops other = {0};
	int tokens[HUB_MAX_OBSERVERS];

	/* The fixture's observer holds one place. */
	for (int i = 0; i < HUB_MAX_OBSERVERS - 1; i++)
		assert_int_equal(hub_observer_add(f->hub, &other, &tokens[i]),
				 0);
	assert_int_equal(hub_observer_add(f->hub, &other,
					  &tokens[HUB_MAX_OBSERVERS - 1]),
			 -ENOSPC);
	hub_observer_remove(f->hub, &other, &tokens[0]);
	assert_int_equal(hub_observer_add(f->hub, &other,
					  &tokens[HUB_MAX_OBSERVERS - 1]),
			 0);
	/* Ops all NULL: they are skipped. */
	fake_vser_guest_open(f->ser);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(f->events_ready, 1);
	for (int i = 1; i < HUB_MAX_OBSERVERS; i++)
		hub_observer_remove(f->hub, &other, &tokens[i]);
}

/* Two observers' attributes, as a FUSE getxattr/listxattr sees them. */
struct attr_obs {
	const char *key;
	const char *value;
};

static size_t attr_obs_list(struct hub_port *hp, char *buf, size_t len,
			    void *opaque)
{
	const struct attr_obs *o = opaque;
	size_t need = strlen(o->key) + 1;

	(void)hp;
	if (need <= len)
		memcpy(buf, o->key, need);
	return need;
}

static ssize_t attr_obs_get(struct hub_port *hp, const char *key, char *buf,
			    size_t len, void *opaque)
{
	const struct attr_obs *o = opaque;
	size_t n = strlen(o->value);

	(void)hp;
	if (strcmp(key, o->key))
		return -ENODATA;
	if (n > len)
		return -ERANGE;
	memcpy(buf, o->value, n);
	return (ssize_t)n;
}

static const struct hub_observer_ops attr_ops = {
	.attr_list = attr_obs_list,
	.attr_get = attr_obs_get,
};

static void test_port_attributes_come_from_every_observer(void **state)
{
	struct fx *f = *state;
	struct attr_obs one = {"one.key", "1"}, two = {"two.key", "22"};
	char buf[64];

	assert_int_equal(hub_observer_add(f->hub, &attr_ops, &one), 0);
	assert_int_equal(hub_observer_add(f->hub, &attr_ops, &two), 0);
	/* The size first, then the list. */
	assert_int_equal(hub_port_attr_list(f->hser, NULL, 0), 16);
	assert_int_equal(hub_port_attr_list(f->hser, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, "one.key\0two.key\0", 16);

	assert_int_equal(
		hub_port_attr_get(f->hser, "two.key", buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "22", 2);
	assert_int_equal(
		hub_port_attr_get(f->hser, "one.key", buf, sizeof(buf)), 1);
	assert_memory_equal(buf, "1", 1);
	assert_int_equal(hub_port_attr_get(f->hser, "two.key", buf, 1),
			 -ERANGE);
	assert_int_equal(hub_port_attr_get(f->hser, "none", buf, sizeof(buf)),
			 -ENODATA);
	hub_observer_remove(f->hub, &attr_ops, &one);
	hub_observer_remove(f->hub, &attr_ops, &two);
	assert_int_equal(hub_port_attr_list(f->hser, NULL, 0), 0);
}

#define T(name)	 cmocka_unit_test_setup_teardown(name, setup, teardown)
#define TS(name) cmocka_unit_test_setup_teardown(name, setup_session, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_each_reader_receives_all_guest_output_through_its_own_cursor),
		T(test_first_reader_gets_output_the_guest_sent_before_anyone_came),
		T(test_serial_reader_attached_while_another_reads_gets_new_output),
		T(test_console_reader_attached_later_gets_what_no_reader_received),
		T(test_peek_describes_output_across_the_ring_end_in_two_iovecs),
		T(test_peek_into_one_iovec_still_describes_the_readable_bytes),
		T(test_output_offered_to_the_last_reader_and_left_unread_is_dropped),
		T(test_output_a_poll_offered_and_nobody_read_goes_with_the_last_reader),
		T(test_output_no_reader_looked_at_waits_for_the_next_reader),
		T(test_first_writer_is_the_source_and_a_second_writer_gets_ebusy),
		T(test_input_done_passes_the_source_to_the_next_writer),
		T(test_input_done_of_a_waiting_writer_gives_up_its_turn),
		T(test_writer_waiting_its_turn_becomes_source_when_the_source_leaves),
		T(test_source_detaching_itself_when_told_passes_the_turn),
		T(test_write_returns_a_partial_count_then_eagain_when_the_device_is_full),
		T(test_write_returns_eagain_while_the_guest_has_the_port_closed),
		T(test_host_side_opens_on_the_first_attach_and_closes_after_the_last),
		TS(test_session_endpoint_is_hung_up_when_its_guest_session_closes),
		TS(test_hung_endpoint_keeps_its_unread_tail_after_the_reader_is_dropped),
		TS(test_next_sessions_early_output_outlives_the_hung_endpoints_tail),
		TS(test_session_endpoint_attached_while_the_guest_is_closed_binds_to_the_next),
		TS(test_host_side_closes_once_every_session_endpoint_is_hung_up),
		TS(test_session_reader_starts_with_the_open_sessions_output_only),
		TS(test_persistent_endpoint_outlives_guest_sessions),
		cmocka_unit_test_setup_teardown(
			test_hung_endpoint_keeps_no_one_out_of_an_exclusive_port,
			setup_session_exclusive, teardown),
		T(test_eof_on_a_serial_port_whose_guest_is_closed_never_on_a_console),
		cmocka_unit_test_setup_teardown(
			test_exclusive_port_refuses_a_second_endpoint_of_the_same_provider,
			setup_exclusive, teardown),
		cmocka_unit_test_setup_teardown(
			test_exclusive_port_leaves_persistent_endpoints_out,
			setup_exclusive, teardown),
		T(test_port_add_refuses_unusable_and_taken_names),
		T(test_port_add_takes_the_lowest_free_number_and_tells_observers),
		T(test_port_remove_leaves_its_endpoints_attached_to_a_gone_port),
		T(test_port_remove_without_endpoints_frees_the_port_at_once),
		cmocka_unit_test_setup_teardown(
			test_ports_are_labelled_by_name_or_else_by_number,
			setup_odd_names, teardown),
		T(test_fsync_waits_until_the_guest_has_taken_the_written_bytes),
		T(test_fsync_reports_discarded_bytes_once),
		T(test_guest_open_and_close_are_events_observers_hear_of_from_the_loop),
		T(test_changed_is_heard_without_events_readers_once_a_burst),
		T(test_device_events_are_reported_and_device_info_follows_the_device),
		T(test_console_reader_overrun_is_reported_once_per_loss),
		T(test_endpoint_may_detach_itself_from_its_changed_callback),
		T(test_last_endpoint_of_a_removed_port_may_detach_itself_when_told),
		T(test_endpoints_of_a_removed_port_may_detach_themselves_later),
		T(test_port_info_follows_the_device_and_resize_reaches_consoles_only),
		T(test_at_most_four_observers_are_kept),
		T(test_port_attributes_come_from_every_observer),
	};

	vp_log_set_level(VP_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
