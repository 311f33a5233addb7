/*
 * Unit tests for src/cli/service.c: systemd's socket activation and
 * notification protocols, spoken without libsystemd.
 *
 * Activation puts a socket on fd 3 and sets LISTEN_* as systemd does
 * (sd_listen_fds(3)); notification listens on a datagram socket of our
 * own, by path and in the abstract namespace, as systemd's manager does.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "vportfs/service.h"

/* ---- socket activation ------------------------------------------------ */

/* A socket on fd 3, not close-on-exec, as systemd hands it over. */
static int setup_fd3(void **state)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	if (fd != 3) {
		assert_int_equal(dup2(fd, 3), 3);
		close(fd);
	}
	assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);
	return 0;
}

static int teardown_fd3(void **state)
{
	(void)state;
	close(3);
	close(4);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_PIDFDID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return 0;
}

static void set_listen(const char *pid, const char *fds, const char *names)
{
	char own[32];

	if (!pid) {
		snprintf(own, sizeof(own), "%ld", (long)getpid());
		pid = own;
	}
	assert_int_equal(setenv("LISTEN_PID", pid, 1), 0);
	assert_int_equal(setenv("LISTEN_FDS", fds, 1), 0);
	if (names)
		assert_int_equal(setenv("LISTEN_FDNAMES", names, 1), 0);
}

static void assert_listen_unset(void)
{
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_activated_fd_is_fd_3_named_and_close_on_exec(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	set_listen(NULL, "1", "vm1");
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)), 3);
	assert_string_equal(name, "vm1");
	assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_listen_unset();
}

static void test_an_unnamed_socket_is_called_activated_socket(void **state)
{
	const char *names[] = {NULL, "unknown", ""};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		const char *name = NULL;
		char err[256] = "";

		set_listen(NULL, "1", names[i]);
		assert_int_equal(
			vp_service_activated_fd(&name, err, sizeof(err)), 3);
		assert_string_equal(name, "activated socket");
	}
}

static void test_nothing_passed_is_enoent(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	set_listen(NULL, "0", NULL);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	set_listen(NULL, "1", NULL); /* LISTEN_PID alone */
	unsetenv("LISTEN_FDS");
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "");
	assert_null(name);
	assert_listen_unset();
}

/* A parent's variables leaked to us describe its fds, not ours: fd 3 is
 * left as it was, and the variables go so no child of ours takes them. */
static void test_another_pids_sockets_are_not_ours(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	set_listen("1", "1", "vm1");
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);
	assert_listen_unset();
}

static void test_a_listen_fds_that_is_not_a_number_is_einval(void **state)
{
	static const char *const bad[] = {"one", "-1", "1x", "", "99999999999"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *name = NULL;
		char err[256] = "", want[64];

		set_listen(NULL, bad[i], NULL);
		assert_int_equal(
			vp_service_activated_fd(&name, err, sizeof(err)),
			-EINVAL);
		snprintf(want, sizeof(want), "LISTEN_FDS=%s: not a number",
			 bad[i]);
		assert_non_null(strstr(err, want));
		assert_listen_unset();
	}
}

/* Whatever else leaked variables say, they are not ours to judge: a
 * LISTEN_PID that is not ours (or not a pid) ends it. */
static void test_another_pids_bad_variables_are_not_ours_either(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	set_listen("1", "garbage", NULL);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	set_listen("x", "1", NULL);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "");
	assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);
}

/* systemd 254 on also sets LISTEN_PIDFDID; it goes with the rest. */
static void test_listen_pidfdid_is_unset_too(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	set_listen("1", "1", NULL);
	assert_int_equal(setenv("LISTEN_PIDFDID", "12345", 1), 0);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -ENOENT);
	assert_null(getenv("LISTEN_PIDFDID"));
}

/* This process's pidfd inode, or 0 where pidfds have none of their own
 * (no pidfs: before Linux 6.9). */
static unsigned long long own_pidfd_id(void)
{
	struct statfs sfs;
	struct stat st;
	unsigned long long id = 0;
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd < 0)
		return 0;
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == 0x50494446 /* pidfs */ &&
	    fstat(fd, &st) == 0)
		id = (unsigned long long)st.st_ino;
	close(fd);
	return id;
}

/* Our pid, recycled: LISTEN_PIDFDID tells the process that had it from
 * us.  Where pidfds have no inodes of their own, LISTEN_PID decides. */
static void test_listen_pidfdid_tells_a_recycled_pid(void **state)
{
	unsigned long long id = own_pidfd_id();
	const char *name = NULL;
	char err[256] = "", buf[32];

	(void)state;
	snprintf(buf, sizeof(buf), "%llu", id + 1);
	set_listen(NULL, "1", NULL);
	assert_int_equal(setenv("LISTEN_PIDFDID", buf, 1), 0);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 id ? -ENOENT : 3);
	assert_int_equal(fcntl(3, F_GETFD) & FD_CLOEXEC, id ? 0 : FD_CLOEXEC);
	snprintf(buf, sizeof(buf), "%llu", id);
	set_listen(NULL, "1", NULL);
	assert_int_equal(setenv("LISTEN_PIDFDID", buf, 1), 0);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)), 3);
	assert_null(getenv("LISTEN_PIDFDID"));
}

static void test_several_sockets_are_einval_and_closed(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(dup2(3, 4), 4);
	set_listen(NULL, "2", "a:b");
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "passed 2 sockets"));
	assert_true(fcntl(3, F_GETFD) < 0 && errno == EBADF);
	assert_true(fcntl(4, F_GETFD) < 0 && errno == EBADF);
	assert_listen_unset();
}

static void test_a_name_past_255_bytes_is_no_name(void **state)
{
	char names[300];
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	memset(names, 'n', sizeof(names) - 1);
	names[sizeof(names) - 1] = 0;
	set_listen(NULL, "1", names);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)), 3);
	assert_string_equal(name, "activated socket");
}

static void test_a_passed_fd_that_is_not_open_is_einval(void **state)
{
	const char *name = NULL;
	char err[256] = "";

	(void)state;
	close(4); /* whatever we inherited there */
	set_listen(NULL, "2", NULL);
	assert_int_equal(vp_service_activated_fd(&name, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "fd 4"));
	assert_listen_unset();
}

/* ---- notification ------------------------------------------------------ */

struct manager {
	int fd;
	char path[108];
};

/* A datagram socket standing in for systemd's: a path under a private
 * directory, or, with abstract, a name in Linux's abstract namespace. */
static void manager_open(struct manager *m, bool abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/test_service.XXXXXX";
	socklen_t len;

	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(m->fd >= 0);
	if (abstract) {
		snprintf(m->path, sizeof(m->path), "@vportfs-test-%ld",
			 (long)getpid());
		memcpy(sa.sun_path, m->path, strlen(m->path));
		sa.sun_path[0] = 0;
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				  strlen(m->path));
	} else {
		assert_non_null(mkdtemp(dir));
		snprintf(m->path, sizeof(m->path), "%s/notify", dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->path);
		len = sizeof(sa);
	}
	assert_int_equal(bind(m->fd, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", m->path, 1), 0);
}

static void manager_close(struct manager *m)
{
	close(m->fd);
	if (m->path[0] == '/') {
		unlink(m->path);
		*strrchr(m->path, '/') = 0;
		rmdir(m->path);
	}
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, whole. */
static void assert_received(struct manager *m, const char *want)
{
	char buf[1024];
	ssize_t n = recv(m->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = 0;
	assert_string_equal(buf, want);
}

static void test_notify_reaches_a_path_socket(void **state)
{
	struct manager m;

	(void)state;
	manager_open(&m, false);
	assert_int_equal(vp_service_notify("READY=1\nSTATUS=serving", 0), 0);
	assert_received(&m, "READY=1\nSTATUS=serving");
	manager_close(&m);
}

static void test_notify_reaches_an_abstract_socket(void **state)
{
	struct manager m;

	(void)state;
	manager_open(&m, true);
	assert_int_equal(vp_service_notify("STOPPING=1", 0), 0);
	assert_received(&m, "STOPPING=1");
	manager_close(&m);
}

/* The longest path sun_path holds with its NUL is 107 bytes. */
static void test_notify_path_length_limit(void **state)
{
	char dir[] = "/tmp/test_service.XXXXXX";
	char path[128];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%0*d", dir,
		 (int)(107 - strlen(dir) - 1), 0);
	assert_int_equal(strlen(path), 107);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(vp_service_notify("READY=1", 0), 0);
	path[107] = 'x';
	path[108] = 0;
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(vp_service_notify("READY=1", 0), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	path[107] = 0;
	unlink(path);
	rmdir(dir);
}

/* Fill the manager's queue; how many datagrams that took. */
static unsigned fill_queue(void)
{
	unsigned n = 0;

	while (vp_service_notify("STATUS=filler", 0) == 0)
		n++;
	return n;
}

/* A full queue: a notification that may not wait is -EAGAIN at once... */
static void test_notify_to_a_full_queue_without_waiting_is_eagain(void **state)
{
	struct manager m;

	(void)state;
	manager_open(&m, true);
	assert_true(fill_queue() > 0);
	assert_int_equal(vp_service_notify("STATUS=x", 0), -EAGAIN);
	manager_close(&m);
}

/* ...one that may wait gets through when room comes... */
static void *drain_later(void *arg)
{
	struct manager *m = arg;
	char buf[64];

	usleep(200 * 1000);
	while (recv(m->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	return NULL;
}

static void test_notify_that_may_wait_gets_through_once_room_comes(void **state)
{
	struct manager m;
	pthread_t t;

	(void)state;
	manager_open(&m, true);
	fill_queue();
	assert_int_equal(pthread_create(&t, NULL, drain_later, &m), 0);
	assert_int_equal(vp_service_notify("READY=1", 5000), 0);
	pthread_join(t, NULL);
	assert_received(&m, "READY=1");
	manager_close(&m);
}

/* ...and gives up after its bound when none does. */
static void test_notify_that_may_wait_gives_up_after_its_bound(void **state)
{
	struct manager m;
	struct timespec a, b;
	double ms;

	(void)state;
	manager_open(&m, true);
	fill_queue();
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(vp_service_notify("READY=1", 100), -EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	     (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	assert_true(ms >= 90);
	manager_close(&m);
}

static void test_notify_without_a_manager_is_a_quiet_no_op(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(vp_service_notify("READY=1", 0), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(vp_service_notify("READY=1", 0), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_notify_to_a_bad_address_says_why(void **state)
{
	char longpath[200];
	char dir[] = "/tmp/test_service.XXXXXX";
	char gone[64];

	(void)state;
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(vp_service_notify("READY=1", 0), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(vp_service_notify("READY=1", 0), -EAFNOSUPPORT);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	setenv("NOTIFY_SOCKET", longpath, 1);
	assert_int_equal(vp_service_notify("READY=1", 0), -ENAMETOOLONG);
	assert_non_null(mkdtemp(dir));
	snprintf(gone, sizeof(gone), "%s/nobody", dir);
	setenv("NOTIFY_SOCKET", gone, 1);
	assert_int_equal(vp_service_notify("READY=1", 0), -ENOENT);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

#define FD3(name) cmocka_unit_test_setup_teardown(name, setup_fd3, teardown_fd3)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FD3(test_activated_fd_is_fd_3_named_and_close_on_exec),
		FD3(test_an_unnamed_socket_is_called_activated_socket),
		FD3(test_nothing_passed_is_enoent),
		FD3(test_another_pids_sockets_are_not_ours),
		FD3(test_a_listen_fds_that_is_not_a_number_is_einval),
		FD3(test_another_pids_bad_variables_are_not_ours_either),
		FD3(test_listen_pidfdid_is_unset_too),
		FD3(test_listen_pidfdid_tells_a_recycled_pid),
		FD3(test_several_sockets_are_einval_and_closed),
		FD3(test_a_name_past_255_bytes_is_no_name),
		FD3(test_a_passed_fd_that_is_not_open_is_einval),
		cmocka_unit_test(test_notify_reaches_a_path_socket),
		cmocka_unit_test(test_notify_reaches_an_abstract_socket),
		cmocka_unit_test(test_notify_path_length_limit),
		cmocka_unit_test(
			test_notify_to_a_full_queue_without_waiting_is_eagain),
		cmocka_unit_test(
			test_notify_that_may_wait_gets_through_once_room_comes),
		cmocka_unit_test(
			test_notify_that_may_wait_gives_up_after_its_bound),
		cmocka_unit_test(
			test_notify_without_a_manager_is_a_quiet_no_op),
		cmocka_unit_test(test_notify_to_a_bad_address_says_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
