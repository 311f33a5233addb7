/*
 * Socket activation (sd_listen_fds(3)) and readiness notification
 * (sd_notify(3)), speaking systemd's protocols directly: see
 * vportfs/service.h.
 *
 * The one design choice: no libsystemd.  Both protocols are a few
 * environment variables and one datagram, and systemd documents them as
 * the stable interface ("Standalone Implementations" in sd_notify(3)).
 * libsystemd brings libgcrypt, libgpg-error, libzstd, liblzma, liblz4 and
 * libcap with it: about 1 MiB of the daemon's resident memory, a quarter
 * of its budget (docs/performance.md), for three calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vportfs/hub.h"
#include "vportfs/log.h"
#include "vportfs/service.h"

/* sd_listen_fds(3): passed fds start here. */
#define LISTEN_FDS_START 3

/* statfs(2)'s f_type of a pidfd where pidfds are pidfs inodes. */
#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

/* A whole decimal number in [0, max], or -1. */
static long parse_count(const char *s, long max)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	return v;
}

/*
 * The first colon-separated name of LISTEN_FDNAMES into buf, or "" when
 * there is none (systemd names unnamed sockets "unknown"); false if it
 * does not fit.
 */
static bool first_fd_name(const char *names, char *buf, size_t len)
{
	const char *p = names ? names : "";
	size_t k = strcspn(p, ":");

	if (k >= len)
		return false;
	memcpy(buf, p, k);
	buf[k] = 0;
	return true;
}

/*
 * Does LISTEN_PIDFDID (systemd 254 on: the inode of its pidfd for us,
 * which a recycled pid cannot share) name this process?  Where pidfds
 * have no inodes of their own (before pidfs, Linux 6.9) it cannot tell,
 * and LISTEN_PID alone decides, as in libsystemd.
 */
static bool pidfd_id_is_ours(const char *id_s)
{
	struct statfs sfs;
	struct stat st;
	bool ours = true;
	int fd;

	if (!id_s)
		return true;
	fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (fd < 0)
		return true;
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == PID_FS_MAGIC &&
	    fstat(fd, &st) == 0)
		ours = strtoull(id_s, NULL, 10) ==
		       (unsigned long long)st.st_ino;
	close(fd);
	return ours;
}

int vp_service_activated_fd(const char **name, char *err, size_t errlen)
{
	static char name_buf[256];
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long n;
	int rc = -ENOENT;

	/* For this process or for none: a parent's variables leaked to us
	 * describe its fds, not ours, whatever else they say. */
	if (!pid_s || !fds_s ||
	    parse_count(pid_s, LONG_MAX) != (long)getpid() ||
	    !pidfd_id_is_ours(getenv("LISTEN_PIDFDID")))
		goto unset;
	n = parse_count(fds_s, INT_MAX - LISTEN_FDS_START);
	if (n < 0) {
		snprintf(err, errlen,
			 "socket activation: LISTEN_FDS=%s: not a number",
			 fds_s);
		rc = -EINVAL;
		goto unset;
	}
	if (n == 0)
		goto unset;
	for (long i = 0; i < n; i++) {
		int fd = LISTEN_FDS_START + (int)i;
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
			snprintf(err, errlen,
				 "socket activation: fd %d of LISTEN_FDS=%ld: "
				 "%s",
				 fd, n, strerror(errno));
			rc = -EINVAL;
			goto unset;
		}
	}
	if (n > 1) {
		snprintf(err, errlen,
			 "socket activation passed %ld sockets; a vportfs "
			 "instance serves one VM (one ListenStream=)",
			 n);
		for (long i = 0; i < n; i++)
			close(LISTEN_FDS_START + (int)i);
		rc = -EINVAL;
		goto unset;
	}
	/* systemd caps a name at 255 bytes: one that does not fit is no
	 * name of its. */
	if (!first_fd_name(names, name_buf, sizeof(name_buf)) || !name_buf[0] ||
	    !strcmp(name_buf, "unknown"))
		snprintf(name_buf, sizeof(name_buf), "activated socket");
	*name = name_buf;
	rc = LISTEN_FDS_START;
unset:
	/* Nothing we start may take them for its own. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_PIDFDID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}

int vp_service_notify(const char *state, int wait_ms)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = wait_ms / 1000,
			     .tv_usec = (wait_ms % 1000) * 1000};
	size_t len;
	socklen_t salen;
	ssize_t sent;
	int fd, rc = 0;

	if (!path || !*path)
		return 0;
	/* A file system path, or '@' for Linux's abstract namespace. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	/* An abstract name is exactly its bytes; a path ends at its NUL. */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
			    (path[0] == '/'));
	/* A full queue at the manager: wait_ms for room (SO_SNDTIMEO bounds
	 * a blocking send to a datagram socket's peer), or none. */
	fd = socket(AF_UNIX,
		    SOCK_DGRAM | SOCK_CLOEXEC |
			    (wait_ms > 0 ? 0 : SOCK_NONBLOCK),
		    0);
	if (fd < 0)
		return -errno;
	if (wait_ms > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		rc = -errno;
		goto close_fd;
	}
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		      (struct sockaddr *)&sa, salen);
	if (sent < 0)
		rc = errno == EWOULDBLOCK ? -EAGAIN : -errno;
	else if ((size_t)sent != strlen(state))
		rc = -EMSGSIZE;
close_fd:
	close(fd);
	return rc;
}

int vp_service_fd_listening(int fd)
{
	int type, domain, listening;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -ENOTSOCK;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	/* vhost-user passes fds (SCM_RIGHTS): only a unix socket can. */
	if (domain != AF_UNIX)
		return -EAFNOSUPPORT;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return -errno;
	return listening ? 1 : 0;
}

struct vp_service_status {
	struct hub *hub;
	char *where;
	char last[512];
};

/* One line a person reads in `systemctl status`. */
static void status_line(struct vp_service_status *st, char *buf, size_t len)
{
	unsigned nports = 0, guest = 0, host = 0;
	struct hub_device_info di;

	hub_device_info(st->hub, &di);
	for (unsigned nr = 0; nr < di.max_ports; nr++) {
		struct hub_port *hp = hub_port_at(st->hub, nr);
		struct hub_port_info pi;

		if (!hp || hub_port_info(hp, &pi))
			continue;
		nports++;
		guest += pi.guest_connected;
		host += pi.host_connected;
	}
	if (!di.frontend)
		snprintf(buf, len, "waiting for a VM on %s; %u ports",
			 st->where, nports);
	else if (!di.driver_ready)
		snprintf(buf, len,
			 "VM connected on %s, its driver not ready yet; %u "
			 "ports",
			 st->where, nports);
	else
		snprintf(buf, len,
			 "VM connected on %s; %u ports, %u open in the guest, "
			 "%u on the host",
			 st->where, nports, guest, host);
}

/*
 * How long READY=1 and STOPPING=1 may wait for room at the manager: the
 * unit's start waits for the first (Type=notify), and neither is sent
 * from inside the loop.  STATUS= lines never wait: the loop serves the VM.
 */
#define NOTIFY_WAIT_MS 5000

/* prefix + line, sent; a failure is logged, rate-limited (a busy
 * manager's full queue comes and goes). */
static void notify_status(const char *prefix, const char *line, int wait_ms)
{
	char msg[sizeof(((struct vp_service_status *)0)->last) + 32];
	int rc = -EMSGSIZE;

	if (snprintf(msg, sizeof(msg), "%s%s", prefix, line) < (int)sizeof(msg))
		rc = vp_service_notify(msg, wait_ms);
	if (rc < 0)
		vp_warn_rl("NOTIFY_SOCKET=%s: %.*s not sent: %s",
			   getenv("NOTIFY_SOCKET"), (int)strcspn(prefix, "="),
			   prefix, strerror(-rc));
}

static void on_changed(void *opaque)
{
	struct vp_service_status *st = opaque;
	char line[sizeof(st->last)];

	status_line(st, line, sizeof(line));
	if (strcmp(line, st->last) != 0) {
		memcpy(st->last, line, sizeof(line));
		notify_status("STATUS=", line, 0);
	}
}

static const struct hub_observer_ops status_ops = {
	.changed = on_changed,
};

struct vp_service_status *vp_service_status_new(struct hub *hub,
						const char *where)
{
	struct vp_service_status *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->hub = hub;
	st->where = strdup(where);
	if (!st->where || hub_observer_add(hub, &status_ops, st)) {
		free(st->where);
		free(st);
		return NULL;
	}
	return st;
}

void vp_service_status_free(struct vp_service_status *st)
{
	if (!st)
		return;
	hub_observer_remove(st->hub, &status_ops, st);
	free(st->where);
	free(st);
}

void vp_service_ready(struct vp_service_status *st)
{
	if (st)
		status_line(st, st->last, sizeof(st->last));
	notify_status("READY=1\nSTATUS=", st ? st->last : "serving",
		      NOTIFY_WAIT_MS);
}

void vp_service_stopping(void)
{
	notify_status("STOPPING=1", "", NOTIFY_WAIT_MS);
}
