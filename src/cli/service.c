/*
 * Socket activation and sd_notify(3), through libsystemd: see
 * vportfs/service.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "vportfs/hub.h"
#include "vportfs/log.h"
#include "vportfs/service.h"

int vp_service_activated_fd(const char **name, char *err, size_t errlen)
{
	static char name_buf[256];
	char **names = NULL;
	int n;

	/* 1: unset LISTEN_*; the fds get FD_CLOEXEC. */
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		snprintf(err, errlen, "socket activation: %s", strerror(-n));
		return -EINVAL;
	}
	if (n > 1) {
		snprintf(err, errlen,
			 "socket activation passed %d sockets; a vportfs "
			 "instance serves one VM (one ListenStream=)",
			 n);
		for (int i = 0; i < n; i++)
			close(SD_LISTEN_FDS_START + i);
	}
	if (n == 1)
		snprintf(name_buf, sizeof(name_buf), "%s",
			 names && names[0] && strcmp(names[0], "unknown")
				 ? names[0]
				 : "activated socket");
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	if (n == 0)
		return -ENOENT;
	if (n > 1)
		return -EINVAL;
	*name = name_buf;
	return SD_LISTEN_FDS_START;
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

static void on_changed(void *opaque)
{
	struct vp_service_status *st = opaque;
	char line[sizeof(st->last)];

	status_line(st, line, sizeof(line));
	if (strcmp(line, st->last) != 0) {
		memcpy(st->last, line, sizeof(line));
		sd_notifyf(0, "STATUS=%s", line);
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
	int rc;

	if (st)
		status_line(st, st->last, sizeof(st->last));
	rc = sd_notifyf(0, "READY=1\nSTATUS=%s", st ? st->last : "serving");
	if (rc < 0)
		vp_warn("NOTIFY_SOCKET: %s", strerror(-rc));
}

void vp_service_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
