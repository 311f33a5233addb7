/*
 * Life under a service manager: systemd's socket activation
 * (sd_listen_fds(3)) and readiness and status notification (sd_notify(3)),
 * both protocols spoken directly, as sd_notify(3) invites ("the protocol
 * is stable").  Without a service manager every call here is a quiet
 * no-op, so the daemon runs the same by hand.
 */
#ifndef VPORTFS_SERVICE_H
#define VPORTFS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

struct hub;

/*
 * The vhost-user socket systemd passed us (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES), made close-on-exec; the variables are unset so that
 * nothing we start inherits them.  Returns the fd (we own it), -ENOENT if
 * none was passed to this process, or -EINVAL with one line in err when
 * more than one was (a vportfs instance serves one VM: vportfs@.socket
 * has one ListenStream=), a configuration error like a bad option.  *name gets
 * its LISTEN_FDNAMES name, or "activated socket" (valid until the next call).
 * LISTEN_PID or LISTEN_FDS that are not numbers, or a passed fd that is
 * not open, are -EINVAL with a line in err; variables meant for another
 * pid (a parent's, leaked) are -ENOENT and their fds are left alone.
 */
int vp_service_activated_fd(const char **name, char *err, size_t errlen);

/*
 * Send `state` (sd_notify(3)'s newline-separated VAR=value assignments,
 * e.g. "READY=1") as one datagram to $NOTIFY_SOCKET: a unix socket path,
 * or an abstract one when it starts with '@'.  0 when sent or when
 * NOTIFY_SOCKET is unset or empty (no service manager); -EAFNOSUPPORT
 * for another kind of address (systemd 254's "vsock:"), -ENAMETOOLONG
 * past sun_path, or the -errno of socket(2)/sendto(2) (-ECONNREFUSED:
 * nobody listens there).  Does not block: the manager's socket is a
 * datagram socket with a queue, and a full one is -EAGAIN.
 */
int vp_service_notify(const char *state);

/*
 * Is fd a listening socket (SO_ACCEPTCONN), as virtiofsd's --fd gets from
 * libvirt, or an already connected one, as crosvm and libvirt's
 * vhost-user-gpu launcher pass?  1 listening, 0 connected, -ENOTSOCK
 * (not a stream socket) or -errno.
 */
int vp_service_fd_listening(int fd);

/*
 * STATUS= lines for `systemctl status` (what the frontend and the guest
 * are doing, how many ports are open on each side), sent whenever the
 * hub reports a change and the line differs from the last one.  `where`
 * (the socket's path or name) is copied.  NULL on out of memory (nothing
 * is then sent; the daemon still runs).
 */
struct vp_service_status *vp_service_status_new(struct hub *hub,
						const char *where);
void vp_service_status_free(struct vp_service_status *st);

/* READY=1 with the first STATUS= line: socket and mount are live. */
void vp_service_ready(struct vp_service_status *st);
/* STOPPING=1: shutting down (signal, unmount, frontend gone). */
void vp_service_stopping(void);

#endif
