/*
 * Unit tests for the chardev layer (src/chardev/): the real core and
 * backends on the real hub (src/hub/), against the fake device
 * (fake_vser.c) on the fake loop.
 *
 * The one design choice that matters: the fake loop polls the real fds the
 * chardevs use (socketpairs, unix sockets, files, fifos, a pty), so each
 * test looks at the bytes a real peer would see, and none sleeps: a loop
 * iteration is fake_loop_run(), a reconnect delay fake_loop_fire_timers().
 * Every test ends with everything freed and checks that nothing is left
 * behind: no watch, timer, deferred call or open fd.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_loop.h"
#include "fake_vser.h"
#include "vportfs/chr.h"
#include "vportfs/hub.h"
#include "vportfs/log.h"
#include "vportfs/vser.h"

#define MAX_PORTS 4u
#define NTFD	  16
/* Loop iterations before "nothing more happens" is assumed. */
#define SETTLE_MAX 64

/* A FUSE-like endpoint of another provider: an open port file. */
struct tep {
	struct hub_ep *ep;
};

struct fx {
	struct fake_loop *fl;
	struct vser *dev;
	struct hub *hub;
	struct chr_set *set;
	struct vser_port *con; /* nr 0, console "con" */
	struct vser_port *ser; /* nr 1, serial "ser" */
	struct hub_port *hcon, *hser;
	struct tep tep;
	char dir[64]; /* per-test temp dir */
	char err[512];
	char val[4096]; /* the latest attribute read */
	int tfd[NTFD];	/* the test's own fds, closed at teardown */
	unsigned nfds;	/* open fds before the fixture */
};

/* ---- fixture ------------------------------------------------------------ */

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void rm_dir(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* A port file would look again; the tests drive it by hand. */
static void tep_changed(struct hub_ep *ep, void *opaque)
{
	(void)ep;
	(void)opaque;
}

static const struct hub_ep_ops tep_ops = {
	.changed = tep_changed,
};

static int setup(void **state)
{
	const struct hub_config cfg = {0};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->nfds = count_fds();
	for (int i = 0; i < NTFD; i++)
		f->tfd[i] = -1;
	snprintf(f->dir, sizeof(f->dir), "/var/tmp/test_chr.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->fl = fake_loop_new();
	assert_non_null(f->fl);
	f->dev = fake_vser_new(fake_loop_vp(f->fl), MAX_PORTS);
	f->con = fake_vser_add_port(f->dev, 0, "con", true);
	f->ser = fake_vser_add_port(f->dev, 1, "ser", false);
	f->hub = hub_new(fake_loop_vp(f->fl), f->dev, &cfg);
	assert_non_null(f->hub);
	f->hcon = hub_port_at(f->hub, 0);
	f->hser = hub_port_at(f->hub, 1);
	assert_non_null(f->hcon);
	assert_non_null(f->hser);
	f->set = chr_set_new(fake_loop_vp(f->fl), f->hub);
	assert_non_null(f->set);
	*state = f;
	return 0;
}

/* -o session: the device discards per session, as main sets it. */
static int setup_session(void **state)
{
	const struct hub_config cfg = {.session = true};
	struct fx *f;

	setup(state);
	f = *state;
	chr_set_free(f->set);
	hub_free(f->hub);
	fake_vser_set_out_per_session(f->dev, true);
	f->hub = hub_new(fake_loop_vp(f->fl), f->dev, &cfg);
	assert_non_null(f->hub);
	f->hcon = hub_port_at(f->hub, 0);
	f->hser = hub_port_at(f->hub, 1);
	f->set = chr_set_new(fake_loop_vp(f->fl), f->hub);
	assert_non_null(f->set);
	return 0;
}

/* Free the set, the hub and the device, in the daemon's order. */
static void free_all(struct fx *f)
{
	chr_set_free(f->set);
	f->set = NULL;
	hub_ep_detach(f->tep.ep);
	f->tep.ep = NULL;
	hub_free(f->hub);
	f->hub = NULL;
	fake_vser_free(f->dev);
	f->dev = NULL;
}

static void close_test_fds(struct fx *f)
{
	for (int i = 0; i < NTFD; i++) {
		if (f->tfd[i] >= 0)
			close(f->tfd[i]);
		f->tfd[i] = -1;
	}
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unsigned watches, timers, deferred, nfds;

	free_all(f);
	/* Everything is gone: whatever the loop still holds is a leak. */
	watches = fake_loop_nwatches(f->fl);
	timers = fake_loop_ntimers(f->fl);
	deferred = fake_loop_ndeferred(f->fl);
	fake_loop_free(f->fl);
	close_test_fds(f);
	rm_dir(f->dir);
	nfds = count_fds();
	assert_int_equal(watches, 0);
	assert_int_equal(timers, 0);
	assert_int_equal(deferred, 0);
	assert_int_equal(nfds, f->nfds);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* Keep fd to be closed at teardown; returns it. */
static int keep_fd(struct fx *f, int fd)
{
	assert_true(fd >= 0);
	for (int i = 0; i < NTFD; i++) {
		if (f->tfd[i] < 0) {
			f->tfd[i] = fd;
			return fd;
		}
	}
	fail_msg("more than %d test fds", NTFD);
	return -1;
}

static void close_fd(struct fx *f, int fd)
{
	for (int i = 0; i < NTFD; i++)
		if (f->tfd[i] == fd)
			f->tfd[i] = -1;
	assert_int_equal(close(fd), 0);
}

static void path_in(struct fx *f, const char *name, char *buf, size_t len)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", f->dir, name) < len);
}

static int vadd(struct fx *f, const char *fmt, va_list ap)
{
	char spec[1024];

	assert_true((size_t)vsnprintf(spec, sizeof(spec), fmt, ap) <
		    sizeof(spec));
	f->err[0] = '\0';
	return chr_set_add(f->set, spec, f->err, sizeof(f->err));
}

static void add(struct fx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vadd(f, fmt, ap);
	va_end(ap);
	if (rc)
		fail_msg("chr_set_add: %d: %s", rc, f->err);
}

static int try_add(struct fx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int try_add(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vadd(f, fmt, ap);
	va_end(ap);
	return rc;
}

static void bind_port(struct fx *f, const char *id, const char *port)
{
	int rc = chr_set_bind(f->set, id, port, f->err, sizeof(f->err));

	if (rc)
		fail_msg("chr_set_bind %s %s: %d: %s", id, port, rc, f->err);
}

static void start(struct fx *f)
{
	int rc = chr_set_start(f->set, f->err, sizeof(f->err));

	if (rc)
		fail_msg("chr_set_start: %d: %s", rc, f->err);
}

/* One line naming `needle`. */
static void assert_message(const char *err, const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error message \"%s\" does not name \"%s\"", err,
			 needle);
	assert_null(strchr(err, '\n'));
}

/* Iterate the loop until nothing happens any more. */
static void settle(struct fx *f)
{
	for (int i = 0; i < SETTLE_MAX; i++)
		if (fake_loop_run(f->fl, 0) == 0 &&
		    fake_loop_ndeferred(f->fl) == 0)
			return;
}

/* A socketpair: *chr_end for a chardev (it owns it from then on), the
 * other end kept as the peer. */
static int peer_pair(struct fx *f, int *chr_end)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	*chr_end = sv[0];
	return keep_fd(f, sv[1]);
}

/* Whatever fd has for us now, up to max bytes, without blocking. */
static size_t read_now(int fd, void *buf, size_t max)
{
	size_t got = 0;

	while (got < max) {
		ssize_t n =
			recv(fd, (char *)buf + got, max - got, MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, (char *)buf + got, max - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* After the loop settled, the peer has exactly `want`. */
static void expect_peer(struct fx *f, int fd, const char *want)
{
	char got[1024];
	size_t n;

	settle(f);
	n = read_now(fd, got, sizeof(got) - 1);
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void peer_send(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), strlen(s));
}

static void guest_send(struct vser_port *p, const char *s)
{
	assert_int_equal(fake_vser_guest_send(p, s, strlen(s)), strlen(s));
}

/* After the loop settled, the guest takes exactly `want`. */
static void expect_guest(struct fx *f, struct vser_port *p, const char *want)
{
	char got[1024];
	size_t n;

	settle(f);
	n = fake_vser_guest_drain(p, got, sizeof(got) - 1);
	got[n] = '\0';
	assert_string_equal(got, want);
}

/* The attribute's value as a string; fails the test if there is none. */
static const char *attr(struct fx *f, struct hub_port *hp, const char *key)
{
	ssize_t n = hub_port_attr_get(hp, key, f->val, sizeof(f->val) - 1);

	if (n < 0)
		fail_msg("attribute %s: %zd", key, n);
	f->val[n] = '\0';
	return f->val;
}

static bool host_connected(const struct vser_port *p)
{
	return vser_port_host_connected(p);
}

/* The byte at stream offset i of the tests' long outputs. */
static unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 131u + (i >> 9) + 7u);
}

static void fill_pat(unsigned char *buf, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(from + i);
}

static void check_pat(const unsigned char *buf, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(from + i))
			fail_msg("byte %llu of the stream is %u, not %u",
				 (unsigned long long)(from + i), buf[i],
				 pat(from + i));
}

static size_t file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		fail_msg("%s: %s", path, strerror(errno));
	return (size_t)st.st_size;
}

/* The file's content (NUL-terminated) into buf; its length. */
static size_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got;

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	got = read_now(fd, buf, len - 1);
	close(fd);
	buf[got] = '\0';
	return got;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A unix socket connected to path. */
static int unix_connect(struct fx *f, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fail_msg("connect %s: %s", path, strerror(errno));
	return keep_fd(f, fd);
}

static int unix_listen(struct fx *f, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return keep_fd(f, fd);
}

/* ---- chr_set_add -------------------------------------------------------- */

static void test_add_refuses_bad_specs_naming_the_culprit(void **state)
{
	static const struct {
		const char *spec;
		const char *culprit;
	} bad[] = {
		{"bogus,id=a", "bogus"},
		{"null", "id="},
		{"null,path=x", "id="},
		{"null,id=a,path=x", "path"},
		{"null,id=a,logfile=", "logfile="},
		{"null,id=a,logappend=maybe", "logappend=maybe"},
		{"socket,id=s,path=/tmp/x,server=maybe", "server=maybe"},
		{"socket,id=s,path=/tmp/x,port=4444", "port="},
		{"socket,id=s,path=/tmp/x,host=localhost", "host="},
		{"socket,id=s,server=on,wait=off", "path="},
		{"socket,id=s,path=/tmp/x,server=on,reconnect-ms=10",
		 "reconnect-ms"},
		{"socket,id=s,path=/tmp/x,wait=off", "wait="},
		{"socket,id=s,path=/tmp/x,reconnect-ms=soon",
		 "reconnect-ms=soon"},
		{"socket,id=s,path=/tmp/x,telnet=maybe", "telnet=maybe"},
		{"fd,id=d,fd=3,in=4", "in="},
		{"fd,id=d,fd=3,out=4", "out="},
		{"fd,id=d,in=3", "out="},
		{"fd,id=d", "fd="},
		{"fd,id=d,fd=-1", "fd=-1"},
		{"ringbuf,id=r,size=100", "size=100"},
		{"ringbuf,id=r,size=0", "size=0"},
		{"ringbuf,id=r,size=128K", "size=128K"},
		{"file,id=f", "path="},
		{"file,id=f,path=", "path="},
		{"file,id=f,path=/tmp/x,append=maybe", "append=maybe"},
		{"log,id=l", "path="},
		{"log,id=l,path=/tmp/x,max-size=lots", "max-size=lots"},
		{"log,id=l,path=/tmp/x,max-backups=100", "max-backups=100"},
		{"pipe,id=p", "path="},
		{"pty,id=t,link=", "link="},
		{"stdio,id=o,path=x", "path"},
	};
	static const char *const ids[] = {"a", "s", "d", "r", "f",
					  "l", "p", "t", "o"};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = try_add(f, "%s", bad[i].spec);

		if (rc != -EINVAL)
			fail_msg("%s: %d (%s), not -EINVAL", bad[i].spec, rc,
				 f->err);
		assert_message(f->err, bad[i].culprit);
	}
	/* None of them took its id. */
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		add(f, "null,id=%s", ids[i]);
}

static void test_add_refuses_an_id_taken_and_keeps_the_first(void **state)
{
	struct fx *f = *state;

	add(f, "ringbuf,id=a,size=16");
	assert_int_equal(try_add(f, "null,id=a"), -EEXIST);
	assert_message(f->err, "'a'");
	/* Also when the duplicate would fail on its options. */
	assert_int_equal(try_add(f, "socket,id=a,path=/tmp/x,port=1"), -EEXIST);
	add(f, "null,id=b");
	bind_port(f, "a", "ser");
	start(f);
	assert_string_equal(attr(f, f->hser, "chardev.a.backend"), "ringbuf");
}

/* ---- chr_set_bind ------------------------------------------------------- */

static void test_bind_refuses_unknown_ids_and_a_second_port(void **state)
{
	struct fx *f = *state;

	add(f, "null,id=a");
	assert_int_equal(
		chr_set_bind(f->set, "nope", "ser", f->err, sizeof(f->err)),
		-ENOENT);
	assert_message(f->err, "nope");
	bind_port(f, "a", "ser");
	/* Twice to the same port: fine. */
	bind_port(f, "a", "ser");
	assert_int_equal(
		chr_set_bind(f->set, "a", "con", f->err, sizeof(f->err)),
		-EBUSY);
	assert_message(f->err, "ser");
	start(f);
	/* It serves the first port only. */
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");
	assert_int_equal(hub_port_attr_get(f->hcon, "chardev.a.connected",
					   f->val, sizeof(f->val)),
			 -ENODATA);
	assert_true(host_connected(f->ser));
	assert_false(host_connected(f->con));
}

/* ---- chr_set_start ------------------------------------------------------ */

/* Start one spec in a fresh set (after a working fd chardev, which the
 * failure must not leak): the error and its message. */
static int start_fails(struct fx *f, const char *spec, const char *culprit)
{
	int chr_end, rc;

	chr_set_free(f->set);
	f->set = chr_set_new(fake_loop_vp(f->fl), f->hub);
	assert_non_null(f->set);
	peer_pair(f, &chr_end);
	add(f, "fd,id=ok,fd=%d", chr_end);
	bind_port(f, "ok", "ser");
	add(f, "%s", spec);
	f->err[0] = '\0';
	rc = chr_set_start(f->set, f->err, sizeof(f->err));
	assert_message(f->err, culprit);
	return rc;
}

static void test_start_fails_naming_the_chardev_that_cannot_open(void **state)
{
	struct fx *f = *state;
	char path[256], spec[512];
	int fd;

	path_in(f, "no/such/file", path, sizeof(path));
	snprintf(spec, sizeof(spec), "file,id=fi,path=%s", path);
	assert_int_equal(start_fails(f, spec, "chardev fi"), -ENOENT);
	assert_message(f->err, path);

	path_in(f, "nobody.sock", path, sizeof(path));
	snprintf(spec, sizeof(spec), "socket,id=cl,path=%s", path);
	assert_int_equal(start_fails(f, spec, "chardev cl"), -ENOENT);
	assert_message(f->err, path);

	path_in(f, "no/such/log", path, sizeof(path));
	snprintf(spec, sizeof(spec), "null,id=nu,logfile=%s", path);
	assert_int_equal(start_fails(f, spec, "chardev nu"), -ENOENT);
	assert_message(f->err, path);

	path_in(f, "regular", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "pipe,id=pi,path=%s", path);
	assert_int_equal(start_fails(f, spec, "chardev pi"), -EINVAL);
	assert_message(f->err, "named pipe");

	/* Well above anything open. */
	assert_int_equal(start_fails(f, "fd,id=fd9,fd=900", "chardev fd9"),
			 -EBADF);
	assert_message(f->err, "900");
}

/* ---- the data path (fd backend) ----------------------------------------- */

static void
test_fd_chardev_carries_output_to_its_peer_and_input_back(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	/* Output from before the chardev came waits for it. */
	guest_send(f->ser, "early ");
	settle(f);
	assert_false(host_connected(f->ser));

	start(f);
	assert_true(host_connected(f->ser));
	assert_true(fake_vser_host_connect_calls(f->ser) >= 1);
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.a.backend"), "fd");
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "0");
	expect_peer(f, peer, "early ");

	guest_send(f->ser, "hello");
	fake_loop_run_deferred(f->fl);
	expect_peer(f, peer, "hello");

	peer_send(peer, "world");
	expect_guest(f, f->ser, "world");
	peer_send(peer, "again");
	expect_guest(f, f->ser, "again");
	/* Both ways at once. */
	guest_send(f->ser, "out");
	peer_send(peer, "in");
	settle(f);
	expect_peer(f, peer, "out");
	expect_guest(f, f->ser, "in");
}

static void
test_peer_input_waits_while_another_endpoint_is_the_source(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end), queued = 0;

	fake_vser_guest_open(f->ser);
	/* A port file opened for writing first: it is the source. */
	assert_int_equal(hub_ep_attach(f->hser, HUB_EP_WRITE, &tep_ops, &f->tep,
				       &f->tep.ep),
			 0);
	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	start(f);
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");

	peer_send(peer, "queued");
	expect_guest(f, f->ser, "");
	/* Read (so that a hang-up would be seen) but held for its turn. */
	assert_int_equal(ioctl(chr_end, FIONREAD, &queued), 0);
	assert_int_equal(queued, 0);
	/* Guest output still reaches the peer meanwhile. */
	guest_send(f->ser, "out");
	expect_peer(f, peer, "out");

	assert_int_equal(hub_ep_write(f->tep.ep, "fuse", 4), 4);
	expect_guest(f, f->ser, "fuse");

	hub_ep_detach(f->tep.ep);
	f->tep.ep = NULL;
	expect_guest(f, f->ser, "queued");
	peer_send(peer, "more");
	expect_guest(f, f->ser, "more");
}

static void
test_slow_peer_output_waits_in_the_port_with_write_watch_on(void **state)
{
	enum { RING = 256 << 10 };
	struct fx *f = *state;
	int chr_end, out, peer = peer_pair(f, &chr_end), small = 4096;
	unsigned char *buf = malloc(2 * RING);
	size_t took, total;

	assert_non_null(buf);
	assert_int_equal(setsockopt(chr_end, SOL_SOCKET, SO_SNDBUF, &small,
				    sizeof(small)),
			 0);
	assert_int_equal(
		setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)),
		0);
	/* Output on a descriptor of its own, to see its watch alone. */
	out = dup(chr_end);
	assert_true(out >= 0);
	fake_vser_set_ring(f->ser, RING);
	add(f, "fd,id=a,in=%d,out=%d", chr_end, out);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	assert_false(fake_loop_watch_events(f->fl, out) & VP_EV_WRITE);

	fill_pat(buf, 0, RING);
	assert_int_equal(fake_vser_guest_send(f->ser, buf, RING), RING);
	settle(f);
	/* The socket is full: output waits, and the watch is on. */
	assert_true(fake_loop_watch_events(f->fl, out) & VP_EV_WRITE);
	took = read_now(peer, buf, 2 * RING);
	assert_true(took > 0);
	assert_true(took < RING);
	check_pat(buf, 0, took);
	/* The chardev took only that much of the port's ring: exactly that
	 * much room came free, the rest is still there to read. */
	fill_pat(buf, RING, RING);
	assert_int_equal(fake_vser_guest_send(f->ser, buf, RING), took);

	/* The peer reads: the rest comes, in order. */
	total = took;
	for (int i = 0; i < 100000 && total < RING + took; i++) {
		int called = fake_loop_run(f->fl, 0);
		size_t n = read_now(peer, buf, 2 * RING);

		check_pat(buf, total, n);
		total += n;
		if (!called && !n && !fake_loop_ndeferred(f->fl))
			break;
	}
	assert_int_equal(total, RING + took);
	settle(f);
	assert_int_equal(read_now(peer, buf, 2 * RING), 0);
	/* Nothing pending: the watch is off. */
	assert_false(fake_loop_watch_events(f->fl, out) & VP_EV_WRITE);
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "0");
	free(buf);
}

/* ---- failures ----------------------------------------------------------- */

static void
test_peer_reset_detaches_the_chardev_and_counts_one_error(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	assert_true(host_connected(f->ser));
	assert_int_equal(fake_loop_nwatches(f->fl), 2);

	close_fd(f, peer);
	/* The write fails before anything polls the input's EOF. */
	guest_send(f->ser, "into the void");
	fake_loop_run_deferred(f->fl);
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "0");
	/* Its descriptor closed, nothing watched. */
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
	assert_int_equal(fcntl(chr_end, F_GETFD), -1);
	/* Reported once: later output changes nothing. */
	guest_send(f->ser, "more");
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "1");
}

static void
test_peer_leaving_detaches_the_chardev_without_an_error(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	peer_send(peer, "bye");
	close_fd(f, peer);
	settle(f);
	/* What it sent before leaving arrived. */
	expect_guest(f, f->ser, "bye");
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "0");
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "0");
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
}

static void
test_null_chardev_is_always_connected_and_takes_everything(void **state)
{
	enum { RING = 64 };
	struct fx *f = *state;
	char buf[RING];

	fake_vser_set_ring(f->ser, RING);
	add(f, "null,id=n");
	bind_port(f, "n", "ser");
	start(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.n.connected"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.n.backend"), "null");
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 4; i++) {
		/* The ring is emptied every time. */
		assert_int_equal(fake_vser_guest_send(f->ser, buf, RING), RING);
		settle(f);
	}
	assert_string_equal(attr(f, f->hser, "chardev.n.errors"), "0");
}

/* ---- ringbuf ------------------------------------------------------------ */

static void test_ringbuf_keeps_the_latest_bytes_oldest_first(void **state)
{
	static const char want_list[] =
		"chardev.r.backend\0chardev.r.connected\0chardev.r.errors\0"
		"chardev.r.data\0chardev.r.size";
	struct fx *f = *state;
	char list[256];
	size_t need;

	add(f, "ringbuf,id=r,size=16");
	bind_port(f, "r", "ser");
	start(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.r.data"), "");
	guest_send(f->ser, "0123456789");
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.r.data"), "0123456789");
	guest_send(f->ser, "abcdefghij");
	settle(f);
	guest_send(f->ser, "klmnopqrstuvwxyzABCD");
	settle(f);
	/* 40 bytes sent: the last 16. */
	assert_int_equal(hub_port_attr_get(f->hser, "chardev.r.data", f->val,
					   sizeof(f->val)),
			 16);
	assert_memory_equal(f->val, "opqrstuvwxyzABCD", 16);
	assert_int_equal(
		hub_port_attr_get(f->hser, "chardev.r.data", f->val, 15),
		-ERANGE);
	assert_string_equal(attr(f, f->hser, "chardev.r.size"), "16");
	assert_string_equal(attr(f, f->hser, "chardev.r.backend"), "ringbuf");
	assert_string_equal(attr(f, f->hser, "chardev.r.connected"), "1");

	need = hub_port_attr_list(f->hser, NULL, 0);
	assert_int_equal(need, sizeof(want_list));
	assert_int_equal(hub_port_attr_list(f->hser, list, sizeof(list)),
			 sizeof(want_list));
	assert_memory_equal(list, want_list, sizeof(want_list));
	/* Too small: nothing. */
	assert_int_equal(hub_port_attr_list(f->hser, list, need - 1), need);
	/* Another port has none of them. */
	assert_int_equal(hub_port_attr_list(f->hcon, NULL, 0), 0);
	assert_int_equal(hub_port_attr_get(f->hcon, "chardev.r.data", f->val,
					   sizeof(f->val)),
			 -ENODATA);
	assert_int_equal(hub_port_attr_get(f->hser, "chardev.r.nothing", f->val,
					   sizeof(f->val)),
			 -ENODATA);
}

/*
 * Ids may contain '.', so "chardev.a.b.backend" may be chardev a.b's
 * backend: chardev "a", matching the prefix "a." and not knowing the rest
 * of the key, must let the next chardev answer.
 */
static void test_attributes_of_an_id_that_extends_another_id(void **state)
{
	struct fx *f = *state;

	add(f, "null,id=a");
	add(f, "ringbuf,id=a.b,size=16");
	bind_port(f, "a", "ser");
	bind_port(f, "a.b", "ser");
	start(f);
	assert_string_equal(attr(f, f->hser, "chardev.a.backend"), "null");
	assert_string_equal(attr(f, f->hser, "chardev.a.b.backend"), "ringbuf");
	assert_string_equal(attr(f, f->hser, "chardev.a.b.size"), "16");
}

/* ---- re-plug ------------------------------------------------------------ */

static void test_replugged_port_gets_its_chardev_back(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);
	struct hub_port *hp;
	struct vser_port *p;
	char c;

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	guest_send(f->ser, "first");
	expect_peer(f, peer, "first");
	peer_send(peer, "one");
	expect_guest(f, f->ser, "one");

	hub_port_remove(f->hser);
	f->hser = NULL;
	f->ser = NULL; /* freed by the fake */
	settle(f);
	assert_int_equal(fake_vser_ports_removed(f->dev), 1);
	/* The peer stays: no EOF. */
	assert_int_equal(recv(peer, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	assert_int_equal(hub_port_add(f->hub, "ser", &hp), 0);
	p = vser_port_by_nr(f->dev, hub_port_nr(hp));
	assert_non_null(p);
	/* Attached to the new port at once. */
	assert_true(host_connected(p));
	assert_string_equal(attr(f, hp, "chardev.a.connected"), "1");
	fake_vser_guest_open(p);
	guest_send(p, "second");
	expect_peer(f, peer, "second");
	peer_send(peer, "two");
	expect_guest(f, p, "two");
}

/*
 * Unplugged, the chardev keeps reading its peer (a hang-up is seen, and
 * the loop does not spin on a readable fd nobody reads): what the peer
 * sends waits, up to the chardev's buffer, for the port of its name to
 * come back.
 */
static void test_unplugged_port_leaves_its_chardevs_peer_unwatched(void **state)
{
	struct fx *f = *state;
	int chr_end, out, peer = peer_pair(f, &chr_end);

	out = dup(chr_end);
	assert_true(out >= 0);
	add(f, "fd,id=a,in=%d,out=%d", chr_end, out);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	settle(f);
	/* The source waits for its peer's input. */
	assert_true(fake_loop_watch_events(f->fl, chr_end) & VP_EV_READ);

	hub_port_remove(f->hser);
	f->hser = NULL;
	f->ser = NULL;
	settle(f);
	peer_send(peer, "waits for the port");
	assert_int_equal(fake_loop_watch_events(f->fl, out), 0);
	/* One wakeup takes it; then nothing is ready. */
	settle(f);
	assert_int_equal(fake_loop_run(f->fl, 0), 0);

	assert_int_equal(hub_port_add(f->hub, "ser", &f->hser), 0);
	f->ser = vser_port_by_nr(f->dev, hub_port_nr(f->hser));
	assert_non_null(f->ser);
	fake_vser_guest_open(f->ser);
	settle(f);
	expect_guest(f, f->ser, "waits for the port");
}

/* ---- socket ------------------------------------------------------------- */

static void test_socket_server_serves_one_client_at_a_time(void **state)
{
	struct fx *f = *state;
	char path[256];
	struct stat st;
	int c1, c2;

	path_in(f, "s.sock", path, sizeof(path));
	add(f, "socket,id=s,path=%s,server=on,wait=off", path);
	bind_port(f, "s", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* Nobody there: the host side is closed. */
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.s.connected"), "0");

	c1 = unix_connect(f, path);
	settle(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.s.connected"), "1");

	c2 = unix_connect(f, path);
	settle(f);
	guest_send(f->ser, "to one");
	expect_peer(f, c1, "to one");
	expect_peer(f, c2, "");
	peer_send(c2, "from two");
	peer_send(c1, "from one");
	expect_guest(f, f->ser, "from one");

	/* The first leaves: the second's turn, input first. */
	close_fd(f, c1);
	settle(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.s.connected"), "1");
	expect_guest(f, f->ser, "from two");
	guest_send(f->ser, "to two");
	expect_peer(f, c2, "to two");
	peer_send(c2, "again");
	expect_guest(f, f->ser, "again");

	close_fd(f, c2);
	settle(f);
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.s.connected"), "0");
	assert_string_equal(attr(f, f->hser, "chardev.s.errors"), "0");

	/* The socket file goes with the set. */
	chr_set_free(f->set);
	f->set = NULL;
	assert_false(exists(path));
}

/*
 * A client that leaves is noticed when it leaves, also while the chardev
 * is not the port's source (a port file writes to the guest): the next
 * client is served then, and a client leaving is no error.  (feed_in
 * reads the peer into its buffer while it waits its turn: with the watch
 * off, the EOF would be seen only when guest output failed on the dead
 * socket, as an error, or never.)
 */
static void
test_client_leaving_while_not_the_source_passes_the_turn(void **state)
{
	struct fx *f = *state;
	char path[256];
	int c1, c2;

	path_in(f, "s.sock", path, sizeof(path));
	add(f, "socket,id=s,path=%s,server=on,wait=off", path);
	bind_port(f, "s", "ser");
	fake_vser_guest_open(f->ser);
	assert_int_equal(hub_ep_attach(f->hser, HUB_EP_WRITE, &tep_ops, &f->tep,
				       &f->tep.ep),
			 0);
	start(f);
	c1 = unix_connect(f, path);
	settle(f);
	c2 = unix_connect(f, path);
	settle(f);
	guest_send(f->ser, "to one");
	expect_peer(f, c1, "to one");

	close_fd(f, c1);
	settle(f);
	guest_send(f->ser, "to two");
	expect_peer(f, c2, "to two");
	assert_string_equal(attr(f, f->hser, "chardev.s.errors"), "0");
}

/* Name lookups the chardevs make: interposed on libc's, counted. */
static unsigned lookups;

int getaddrinfo(const char *node, const char *service,
		const struct addrinfo *hints, struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *,
		    struct addrinfo **);

	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	lookups++;
	return real(node, service, hints, res);
}

/* A lookup may block for seconds (a dead DNS server): it is made once, at
 * start, never on the loop at each reconnect. */
static void test_tcp_client_looks_its_server_up_once(void **state)
{
	struct fx *f = *state;
	int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	/* A port nobody listens on. */
	assert_true(probe >= 0);
	assert_int_equal(bind(probe, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
	close(probe);
	add(f, "socket,id=c,host=localhost,port=%u,reconnect-ms=50",
	    ntohs(sa.sin_port));
	bind_port(f, "c", "ser");
	lookups = 0;
	start(f);
	settle(f);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fake_loop_fire_timers(f->fl), 1);
		settle(f);
	}
	assert_string_equal(attr(f, f->hser, "chardev.c.connected"), "0");
	assert_int_equal(lookups, 1);
}

static void test_socket_client_reconnects_when_the_server_comes(void **state)
{
	struct fx *f = *state;
	char path[256];
	int lfd, srv;

	path_in(f, "c.sock", path, sizeof(path));
	add(f, "socket,id=c,path=%s,reconnect-ms=50", path);
	bind_port(f, "c", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	settle(f);
	/* No server: no endpoint, a retry pending. */
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.c.connected"), "0");
	assert_int_equal(fake_loop_ntimers(f->fl), 1);
	/* Still none. */
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.c.connected"), "0");

	lfd = unix_listen(f, path);
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	settle(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.c.connected"), "1");
	srv = keep_fd(f, accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
	guest_send(f->ser, "up");
	expect_peer(f, srv, "up");
	peer_send(srv, "down");
	expect_guest(f, f->ser, "down");

	/* The server drops it: connect again after the delay. */
	close_fd(f, srv);
	settle(f);
	assert_false(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.c.errors"), "0");
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	settle(f);
	assert_true(host_connected(f->ser));
	srv = keep_fd(f, accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
	guest_send(f->ser, "back");
	expect_peer(f, srv, "back");
}

static void test_telnet_escapes_output_and_strips_commands(void **state)
{
	static const unsigned char hello[] = {255, 251, 1, 255, 251, 3,
					      255, 251, 0, 255, 253, 0};
	struct fx *f = *state;
	unsigned char got[64];
	char path[256];
	int c;

	path_in(f, "t.sock", path, sizeof(path));
	add(f, "socket,id=t,path=%s,server=on,wait=off,telnet=on", path);
	bind_port(f, "t", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	c = unix_connect(f, path);
	settle(f);
	assert_int_equal(read_now(c, got, sizeof(got)), sizeof(hello));
	assert_memory_equal(got, hello, sizeof(hello));

	assert_int_equal(fake_vser_guest_send(f->ser,
					      "a\xff"
					      "b",
					      3),
			 3);
	settle(f);
	assert_int_equal(read_now(c, got, sizeof(got)), 4);
	assert_memory_equal(got,
			    "a\xff\xff"
			    "b",
			    4);

	/* IAC WILL ECHO, CR NUL, IAC IAC. */
	assert_int_equal(
		send(c, "x\xff\xfb\x01y\r\0z\xff\xff", 10, MSG_NOSIGNAL), 10);
	settle(f);
	assert_int_equal(fake_vser_guest_drain(f->ser, got, sizeof(got)), 5);
	assert_memory_equal(got, "xy\rz\xff", 5);
}

/* Which of the first FD_SCAN descriptors are open. */
#define FD_SCAN 1024

static void open_fds(bool open_now[FD_SCAN])
{
	for (int fd = 0; fd < FD_SCAN; fd++)
		open_now[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* The one descriptor opened since `before` other than `except`. */
static int fd_opened_since(const bool before[FD_SCAN], int except)
{
	int found = -1;

	for (int fd = 0; fd < FD_SCAN; fd++) {
		if (before[fd] || fd == except || fcntl(fd, F_GETFD) < 0)
			continue;
		assert_int_equal(found, -1);
		found = fd;
	}
	assert_true(found >= 0);
	return found;
}

/*
 * telnet=on: guest output goes through the backend's own buffer (0xff is
 * doubled).  All of it reaches a slow client, also when the guest stops
 * sending: with nothing more in the port, flush_out asks the sink (niov
 * 0) to send what it holds, and keeps the write watch on until it has.
 */
static void test_telnet_output_reaches_a_slow_client_in_full(void **state)
{
	enum { GUEST = 20000, HELLO = 12 };
	struct fx *f = *state;
	unsigned char buf[GUEST];
	bool before[FD_SCAN];
	size_t total = 0;
	char path[256];
	int c, accepted, small = 4096;

	fake_vser_set_ring(f->ser, GUEST);
	path_in(f, "t.sock", path, sizeof(path));
	add(f, "socket,id=t,path=%s,server=on,wait=off,telnet=on", path);
	bind_port(f, "t", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	open_fds(before);
	c = unix_connect(f, path);
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.t.connected"), "1");
	/* The chardev's end of the connection: a small send buffer, so that
	 * the client is slow whatever the system's defaults. */
	accepted = fd_opened_since(before, c);
	assert_int_equal(setsockopt(accepted, SOL_SOCKET, SO_SNDBUF, &small,
				    sizeof(small)),
			 0);
	assert_int_equal(read_now(c, buf, HELLO), HELLO);

	/* No 0xff: the client gets what the guest sent. */
	for (size_t i = 0; i < GUEST; i++)
		buf[i] = (unsigned char)('a' + i % 26);
	assert_int_equal(fake_vser_guest_send(f->ser, buf, GUEST), GUEST);
	settle(f);
	/* The client reads slowly, a little at each loop iteration, until
	 * nothing more comes. */
	for (int i = 0; i < 100000 && total < GUEST; i++) {
		size_t n = read_now(c, buf, 512);

		for (size_t k = 0; k < n; k++)
			if (buf[k] != 'a' + (total + k) % 26)
				fail_msg("byte %zu is wrong", total + k);
		total += n;
		if (fake_loop_run(f->fl, 0) == 0 && n == 0 &&
		    fake_loop_ndeferred(f->fl) == 0)
			break;
	}
	assert_int_equal(total, GUEST);
}

/* ---- log, file, pipe, pty, logfile= ------------------------------------- */

static void test_log_rotates_by_size_keeping_max_backups(void **state)
{
	enum { N = 350 };
	struct fx *f = *state;
	char path[256], p1[280], p2[280], p3[280], moved[280];
	char all[1024], part[512];
	unsigned char out[N];
	size_t len = 0, n;

	path_in(f, "log", path, sizeof(path));
	snprintf(p1, sizeof(p1), "%s.1", path);
	snprintf(p2, sizeof(p2), "%s.2", path);
	snprintf(p3, sizeof(p3), "%s.3", path);
	snprintf(moved, sizeof(moved), "%s.moved", path);
	add(f, "log,id=l,path=%s,max-size=100,max-backups=2", path);
	bind_port(f, "l", "ser");
	start(f);
	assert_true(host_connected(f->ser));
	fill_pat(out, 0, N);
	assert_int_equal(fake_vser_guest_send(f->ser, out, N), N);
	settle(f);

	assert_true(exists(path));
	assert_true(exists(p1));
	assert_true(exists(p2));
	assert_false(exists(p3));
	/* Oldest first. */
	for (int i = 0; i < 3; i++) {
		const char *p = i == 0 ? p2 : i == 1 ? p1 : path;

		n = slurp(p, part, sizeof(part));
		assert_true(n <= 100);
		assert_int_equal(n, file_size(p));
		memcpy(all + len, part, n);
		len += n;
	}
	/* 100 + 100 + 50: what came before went with the oldest backup. */
	assert_int_equal(len, 250);
	assert_memory_equal(all, out + N - len, len);
	assert_string_equal(attr(f, f->hser, "chardev.l.errors"), "0");

	/* logrotate moved it away: SIGHUP makes a new one. */
	assert_int_equal(rename(path, moved), 0);
	chr_set_reopen(f->set);
	settle(f);
	assert_true(exists(path));
	assert_int_equal(file_size(path), 0);
	guest_send(f->ser, "new");
	settle(f);
	slurp(path, part, sizeof(part));
	assert_string_equal(part, "new");
	assert_int_equal(file_size(moved), 50);
}

static void test_file_writes_output_feeds_input_and_reopens(void **state)
{
	struct fx *f = *state;
	char path[256], in[256], moved[280], buf[256];
	int fd;

	path_in(f, "out.txt", path, sizeof(path));
	path_in(f, "in.txt", in, sizeof(in));
	snprintf(moved, sizeof(moved), "%s.moved", path);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale", 5), 5);
	close(fd);
	fd = open(in, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "input", 5), 5);
	close(fd);

	add(f, "file,id=fi,path=%s,input-path=%s", path, in);
	bind_port(f, "fi", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	/* append=off: written over. */
	assert_int_equal(file_size(path), 0);
	expect_guest(f, f->ser, "input");
	guest_send(f->ser, "out");
	settle(f);
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "out");
	/* The input ended, the output goes on. */
	assert_string_equal(attr(f, f->hser, "chardev.fi.connected"), "1");
	/* And it is no longer the source: a port file can write. */
	assert_int_equal(hub_ep_attach(f->hser, HUB_EP_WRITE, &tep_ops, &f->tep,
				       &f->tep.ep),
			 0);
	assert_int_equal(hub_ep_write(f->tep.ep, "fuse", 4), 4);
	expect_guest(f, f->ser, "fuse");

	assert_int_equal(rename(path, moved), 0);
	chr_set_reopen(f->set);
	settle(f);
	guest_send(f->ser, "after");
	settle(f);
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "after");
	slurp(moved, buf, sizeof(buf));
	assert_string_equal(buf, "out");
}

static void test_pipe_pair_carries_both_ways(void **state)
{
	struct fx *f = *state;
	char base[256], pin[280], pout[280];
	int win, rout;

	path_in(f, "p", base, sizeof(base));
	snprintf(pin, sizeof(pin), "%s.in", base);
	snprintf(pout, sizeof(pout), "%s.out", base);
	assert_int_equal(mkfifo(pin, 0600), 0);
	assert_int_equal(mkfifo(pout, 0600), 0);
	add(f, "pipe,id=p,path=%s", base);
	bind_port(f, "p", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	assert_true(host_connected(f->ser));
	win = keep_fd(f, open(pin, O_WRONLY | O_NONBLOCK | O_CLOEXEC));
	rout = keep_fd(f, open(pout, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
	assert_int_equal(write(win, "in", 2), 2);
	expect_guest(f, f->ser, "in");
	guest_send(f->ser, "out");
	expect_peer(f, rout, "out");
	/* The writer leaving is no EOF: the pipe is held open. */
	close_fd(f, win);
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.p.connected"), "1");
}

static void test_pty_is_named_and_linked_and_carries_both_ways(void **state)
{
	struct fx *f = *state;
	char link[256], name[64], target[64];
	const char *pty;
	ssize_t n;
	int tty;

	path_in(f, "tty", link, sizeof(link));
	add(f, "pty,id=t,link=%s", link);
	bind_port(f, "t", "con");
	fake_vser_guest_open(f->con);
	start(f);
	assert_true(host_connected(f->con));
	pty = attr(f, f->hcon, "chardev.t.pty");
	assert_true(strlen(pty) < sizeof(name));
	memcpy(name, pty, strlen(pty) + 1);
	assert_int_equal(strncmp(name, "/dev/pts/", 9), 0);
	n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, name);

	tty = keep_fd(f,
		      open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
	guest_send(f->con, "raw\n");
	/* Raw mode: no "\r\n". */
	expect_peer(f, tty, "raw\n");
	assert_int_equal(write(tty, "typed", 5), 5);
	expect_guest(f, f->con, "typed");

	chr_set_free(f->set);
	f->set = NULL;
	assert_false(exists(link));
}

static void test_logfile_records_what_the_chardev_took(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end), fd;
	char path[256], buf[256];

	path_in(f, "copy.log", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);
	add(f, "fd,id=a,fd=%d,logfile=%s", chr_end, path);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	/* logappend=off: truncated at start. */
	assert_int_equal(file_size(path), 0);
	guest_send(f->ser, "logged");
	expect_peer(f, peer, "logged");
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "logged");
	/* Input from the peer is not guest output. */
	peer_send(peer, "typed");
	expect_guest(f, f->ser, "typed");
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "logged");
}

static void
test_failing_log_is_counted_detached_and_sighup_reattaches(void **state)
{
	struct fx *f = *state;
	char path[256], buf[64];

	/* Every write fails with ENOSPC (a full disk) until logrotate
	 * replaces the file. */
	path_in(f, "log", path, sizeof(path));
	assert_int_equal(symlink("/dev/full", path), 0);
	add(f, "log,id=l,path=%s", path);
	bind_port(f, "l", "ser");
	start(f);
	assert_true(host_connected(f->ser));
	guest_send(f->ser, "lost");
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.l.errors"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.l.connected"), "0");
	assert_false(host_connected(f->ser));
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
	/* Detached: more output is not its failure. */
	guest_send(f->ser, "more");
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.l.errors"), "1");

	assert_int_equal(unlink(path), 0);
	chr_set_reopen(f->set);
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.l.connected"), "1");
	assert_true(host_connected(f->ser));
	guest_send(f->ser, "again");
	settle(f);
	/* What nobody had received waited for it. */
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "moreagain");
	assert_string_equal(attr(f, f->hser, "chardev.l.errors"), "1");
}

static void
test_failing_logfile_is_counted_and_the_chardev_goes_on(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);

	add(f, "fd,id=a,fd=%d,logfile=/dev/full,logappend=on", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	guest_send(f->ser, "one");
	expect_peer(f, peer, "one");
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "1");
	/* Logging stopped, reported once; the chardev is still there. */
	guest_send(f->ser, "two");
	expect_peer(f, peer, "two");
	assert_string_equal(attr(f, f->hser, "chardev.a.errors"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");
}

/* -o session: chardevs are not bound to guest sessions. */
static void test_chardev_outlives_guest_sessions(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	guest_send(f->ser, "first");
	expect_peer(f, peer, "first");
	fake_vser_guest_close(f->ser);
	settle(f);
	assert_true(host_connected(f->ser));
	fake_vser_guest_open(f->ser);
	settle(f);
	assert_true(host_connected(f->ser));
	guest_send(f->ser, "second");
	expect_peer(f, peer, "second");
	peer_send(peer, "typed");
	expect_guest(f, f->ser, "typed");
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");
}

static void test_chardev_of_a_port_plugged_later_attaches_then(void **state)
{
	struct fx *f = *state;
	int chr_end, peer = peer_pair(f, &chr_end);
	struct hub_port *hp;
	struct vser_port *p;

	add(f, "fd,id=a,fd=%d", chr_end);
	bind_port(f, "a", "later");
	start(f);
	settle(f);
	assert_int_equal(hub_port_add(f->hub, "later", &hp), 0);
	p = vser_port_by_nr(f->dev, hub_port_nr(hp));
	assert_non_null(p);
	assert_true(host_connected(p));
	assert_string_equal(attr(f, hp, "chardev.a.connected"), "1");
	fake_vser_guest_open(p);
	guest_send(p, "out");
	expect_peer(f, peer, "out");
	peer_send(peer, "in");
	expect_guest(f, p, "in");
}

static void test_tcp_server_on_localhost(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int probe, c;

	/* A free port: the kernel's choice, given back. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(probe >= 0);
	assert_int_equal(bind(probe, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
	close(probe);

	add(f,
	    "socket,id=tcp,host=127.0.0.1,port=%u,server=on,wait=off,"
	    "nodelay=on",
	    ntohs(sa.sin_port));
	bind_port(f, "tcp", "ser");
	fake_vser_guest_open(f->ser);
	start(f);
	c = keep_fd(f, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* Loopback: everything below happens within the calls. */
	settle(f);
	assert_true(host_connected(f->ser));
	assert_string_equal(attr(f, f->hser, "chardev.tcp.connected"), "1");
	guest_send(f->ser, "over tcp");
	expect_peer(f, c, "over tcp");
	peer_send(c, "back");
	expect_guest(f, f->ser, "back");
	close_fd(f, c);
	settle(f);
	assert_false(host_connected(f->ser));
}

/* ---- chr_set_free ------------------------------------------------------- */

static void test_free_with_everything_up_leaves_nothing_behind(void **state)
{
	enum { RING = 128 << 10 };
	struct fx *f = *state;
	char srv[256], cli[256], log[256], file[256], pipe[256], pin[280],
		pout[280], link[256];
	int a_end, a_peer, c1, c2, small = 4096;
	unsigned nfds = count_fds();
	unsigned char *buf = malloc(RING);

	assert_non_null(buf);
	path_in(f, "srv.sock", srv, sizeof(srv));
	path_in(f, "cli.sock", cli, sizeof(cli));
	path_in(f, "log", log, sizeof(log));
	path_in(f, "file", file, sizeof(file));
	path_in(f, "p", pipe, sizeof(pipe));
	path_in(f, "tty", link, sizeof(link));
	snprintf(pin, sizeof(pin), "%s.in", pipe);
	snprintf(pout, sizeof(pout), "%s.out", pipe);
	assert_int_equal(mkfifo(pin, 0600), 0);
	assert_int_equal(mkfifo(pout, 0600), 0);
	fake_vser_set_ring(f->ser, RING);

	a_peer = peer_pair(f, &a_end);
	assert_int_equal(
		setsockopt(a_end, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
		0);
	add(f, "socket,id=s,path=%s,server=on,wait=off", srv);
	add(f, "socket,id=c,path=%s,reconnect-ms=50", cli);
	add(f, "fd,id=a,fd=%d,logfile=%s.copy", a_end, file);
	add(f, "log,id=l,path=%s,max-size=1K", log);
	add(f, "file,id=fi,path=%s", file);
	add(f, "pipe,id=p,path=%s", pipe);
	add(f, "pty,id=t,link=%s", link);
	add(f, "ringbuf,id=r");
	add(f, "null,id=n");
	add(f, "null,id=unbound");
	bind_port(f, "s", "ser");
	bind_port(f, "a", "ser");
	bind_port(f, "p", "ser");
	bind_port(f, "r", "ser");
	bind_port(f, "c", "con");
	bind_port(f, "l", "con");
	bind_port(f, "fi", "con");
	bind_port(f, "t", "con");
	bind_port(f, "n", "con");
	fake_vser_guest_open(f->ser);
	fake_vser_guest_open(f->con);
	start(f);
	c1 = unix_connect(f, srv);
	settle(f);
	c2 = unix_connect(f, srv);
	peer_send(c1, "in");
	peer_send(c2, "waiting");
	peer_send(a_peer, "queued");
	/* Output the fd chardev's peer cannot take (and nor can the pipe's,
	 * nobody reads it). */
	fill_pat(buf, 0, RING);
	assert_int_equal(fake_vser_guest_send(f->ser, buf, RING), RING);
	assert_int_equal(fake_vser_guest_send(f->con, buf, 4096), 4096);
	settle(f);
	assert_string_equal(attr(f, f->hser, "chardev.s.connected"), "1");
	assert_string_equal(attr(f, f->hser, "chardev.a.connected"), "1");
	assert_string_equal(attr(f, f->hcon, "chardev.c.connected"), "0");
	assert_string_equal(attr(f, f->hcon, "chardev.l.connected"), "1");
	assert_true(fake_loop_ntimers(f->fl) >= 1);
	/* Pending deferred pumps (reopened files) at the moment of free. */
	chr_set_reopen(f->set);
	assert_true(fake_loop_ndeferred(f->fl) >= 1);

	chr_set_free(f->set);
	f->set = NULL;
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
	assert_int_equal(fake_loop_ntimers(f->fl), 0);
	assert_false(exists(srv));
	assert_false(exists(link));
	/* The hub's and the device's own deferred calls go with them; any
	 * left after that is a chardev's. */
	free_all(f);
	assert_int_equal(fake_loop_ndeferred(f->fl), 0);
	close_test_fds(f);
	assert_int_equal(count_fds(), nfds);
	free(buf);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_add_refuses_bad_specs_naming_the_culprit),
		T(test_add_refuses_an_id_taken_and_keeps_the_first),
		T(test_bind_refuses_unknown_ids_and_a_second_port),
		T(test_start_fails_naming_the_chardev_that_cannot_open),
		T(test_fd_chardev_carries_output_to_its_peer_and_input_back),
		T(test_peer_input_waits_while_another_endpoint_is_the_source),
		T(test_slow_peer_output_waits_in_the_port_with_write_watch_on),
		T(test_peer_reset_detaches_the_chardev_and_counts_one_error),
		T(test_peer_leaving_detaches_the_chardev_without_an_error),
		T(test_null_chardev_is_always_connected_and_takes_everything),
		T(test_ringbuf_keeps_the_latest_bytes_oldest_first),
		T(test_attributes_of_an_id_that_extends_another_id),
		T(test_replugged_port_gets_its_chardev_back),
		T(test_unplugged_port_leaves_its_chardevs_peer_unwatched),
		T(test_socket_server_serves_one_client_at_a_time),
		T(test_client_leaving_while_not_the_source_passes_the_turn),
		T(test_socket_client_reconnects_when_the_server_comes),
		T(test_tcp_client_looks_its_server_up_once),
		T(test_telnet_escapes_output_and_strips_commands),
		T(test_telnet_output_reaches_a_slow_client_in_full),
		T(test_log_rotates_by_size_keeping_max_backups),
		T(test_file_writes_output_feeds_input_and_reopens),
		T(test_pipe_pair_carries_both_ways),
		T(test_pty_is_named_and_linked_and_carries_both_ways),
		T(test_logfile_records_what_the_chardev_took),
		T(test_failing_log_is_counted_detached_and_sighup_reattaches),
		T(test_failing_logfile_is_counted_and_the_chardev_goes_on),
		cmocka_unit_test_setup_teardown(
			test_chardev_outlives_guest_sessions, setup_session,
			teardown),
		T(test_chardev_of_a_port_plugged_later_attaches_then),
		T(test_tcp_server_on_localhost),
		T(test_free_with_everything_up_leaves_nothing_behind),
	};

	/* As main(): a peer gone is EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	vp_log_set_level(VP_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
