/*
 * The chardev layer: QEMU-style host backends for ports (SPEC section 5),
 * one endpoint provider of the port hub.
 *
 * A chardev is made from one `--chardev BACKEND,id=ID,...` spec and bound
 * to one port by the port's name (`--port name=N,chardev=ID`).  Whenever it
 * has a peer (a socket client, an open file, a pty...) and its port is
 * plugged, it is one hub endpoint of that port: it receives all guest
 * output (each endpoint through its own cursor) and, when it is the port's
 * source, feeds the guest what its peer sends; otherwise its peer's input
 * waits.  A port unplugged and plugged again under the same name (`rm`,
 * `touch`) gets its chardevs back, as QEMU's device_del/device_add keep a
 * chardev.
 *
 * All I/O is non-blocking on the daemon's loop.  A slow peer throttles its
 * own port only (the slowest reader of a port holds the port's ring); a
 * failing sink (disk full, peer reset) is reported once, counted, and
 * detached, and the port goes on.
 */
#ifndef VPORTFS_CHR_H
#define VPORTFS_CHR_H

#include <stdbool.h>
#include <stddef.h>

#include "vportfs/loop.h"

struct chr_set;
struct hub;

/* NULL on allocation failure.  The loop and the hub must outlive the
 * set. */
struct chr_set *chr_set_new(struct vp_loop *loop, struct hub *hub);
/* Closes every chardev (sockets, files, pty links), detaching its
 * endpoint.  NULL accepted. */
void chr_set_free(struct chr_set *set);

/*
 * Parse and check one --chardev spec: its backend, id and every option
 * (docs/chardev.md); opens nothing.  0; -EINVAL with one line in err
 * naming the culprit (unknown backend, missing id, unknown or malformed
 * option, an option the backend cannot take with another), -EEXIST (the
 * id is taken), -ENOMEM.
 */
int chr_set_add(struct chr_set *set, const char *spec, char *err,
		size_t errlen);

/*
 * The fd and stdio backends name descriptors the daemon inherited: check
 * that those of one --chardev spec are open.  Call before the daemon opens any
 * descriptor of its own, or a number nobody passed would name one of
 * ours.  0 (also for any other backend, or a spec that does not parse:
 * chr_set_add reports that); -EBADF with one line in err naming the
 * chardev.
 */
int chr_check_inherited(const char *spec, char *err, size_t errlen);

/*
 * Bind chardev `id` to the port named `port`.  0; -ENOENT (no such
 * chardev), -EBUSY (bound to another port already: a chardev serves one
 * port, as in QEMU), with one line in err.
 */
int chr_set_bind(struct chr_set *set, const char *id, const char *port,
		 char *err, size_t errlen);

/*
 * Open every chardev, in the order they were added: listen, connect, open
 * files and ptys, attach to their ports (see chr_set_waiting for
 * wait=on).  0 or -errno with one line in err naming the chardev (a path
 * that cannot be opened, a server nobody can connect to...).  Call once,
 * after the hub has its ports.
 */
int chr_set_start(struct chr_set *set, char *err, size_t errlen);

/* A socket server with wait=on has had no client yet: the daemon runs its
 * loop, but lets no VM start (listens on nothing, mounts nothing) until
 * this is false, as QEMU waits before running the guest. */
bool chr_set_waiting(const struct chr_set *set);

/* SIGHUP: reopen the file and log backends' files (logrotate moved them
 * away), re-attaching those detached after a failure. */
void chr_set_reopen(struct chr_set *set);

#endif
