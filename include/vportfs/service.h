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
 * The vhost-user socket systemd passed us (sd_listen_fds(3): LISTEN_PID,
 * LISTEN_PIDFDID, LISTEN_FDS, LISTEN_FDNAMES), made close-on-exec.  The
 * variables are unset on every return, so that nothing we start inherits
 * them.  Returns the fd (3; we own it), or:
 *  -ENOENT   none for this process: no LISTEN_PID or LISTEN_FDS, a
 *            LISTEN_PID naming another process (a parent's, leaked: its
 *            fds are left alone, whatever LISTEN_FDS says), or
 *            LISTEN_FDS=0;
 *  -EINVAL   with one line in err: LISTEN_FDS not a number, a passed fd
 *            not open, or more than one socket (a vportfs instance serves
 *            one VM: vportfs@.socket has one ListenStream=; they are
 *            closed), a configuration error like a bad option.
 * *name gets its LISTEN_FDNAMES name, or "activated socket" for none,
 * "unknown" (systemd's word for none) or one past 255 bytes; valid until
 * the next call.
 */
int vp_service_activated_fd(const char **name, char *err, size_t errlen);

/*
 * Send `state` (sd_notify(3)'s newline-separated VAR=value assignments,
 * e.g. "READY=1") as one datagram to $NOTIFY_SOCKET: a unix socket path,
 * or an abstract one when it starts with '@'.  When the manager's queue
 * is full, wait up to wait_ms (milliseconds, >= 0; 0: not at all) for
 * room.  0 when sent, or when NOTIFY_SOCKET is unset or empty (no service
 * manager); -EAGAIN when the queue stayed full, -EAFNOSUPPORT for another
 * kind of address (systemd 254's "vsock:", a relative path),
 * -ENAMETOOLONG past sun_path (107 bytes), or the -errno of socket(2) or
 * sendto(2) (-ECONNREFUSED, -ENOENT: nobody listens there).
 */
int vp_service_notify(const char *state, int wait_ms);

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

/* READY=1 with the first STATUS= line: socket and mount are live.  Waits
 * up to 5 s for room at a busy manager (the unit's start waits for it);
 * a failure is logged.  STATUS= lines (vp_service_status_new) never wait:
 * they are sent from the loop. */
void vp_service_ready(struct vp_service_status *st);
/* STOPPING=1: shutting down (signal, unmount, frontend gone); waits as
 * vp_service_ready does. */
void vp_service_stopping(void);

#endif
