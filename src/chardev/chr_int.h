/*
 * The chardev layer's private parts: the core (chr.c) and one file per
 * backend, which plugs in through a `static const struct chr_backend`.
 *
 * The core owns the *stream* between a chardev's peer and its port: the
 * peer's fds, their watches, the hub endpoint, the bytes read from the
 * peer that the guest has not taken yet, and logfile=.  A backend only
 * says when a peer comes (chr_peer_up) and goes (chr_peer_down), and
 * what happens next (its peer_gone: listen again, reconnect, wait for a
 * SIGHUP).
 */
#ifndef VPORTFS_CHARDEV_CHR_INT_H
#define VPORTFS_CHARDEV_CHR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vportfs/chr.h"
#include "vportfs/chr_spec.h"
#include "vportfs/hub.h"

/* Bytes read from a peer at a time, and held until the guest took them. */
#define CHR_IN_BUF (64u << 10)
/* What one wakeup moves, either way, before yielding to other work. */
#define CHR_BUDGET (1u << 20)

struct chr;

struct chr_backend {
	const char *name;
	/* The options it takes (besides id, logfile, logappend), NULL-ended:
	 * anything else is refused, naming it, before parse runs (as
	 * QEMU's per-backend option lists do). */
	const char *const *options;
	size_t priv_size; /* bytes of chr_priv(), zeroed */
	/* Read this backend's options from spec into chr_priv(); open
	 * nothing.  0 or -EINVAL with one line in err. */
	int (*parse)(struct chr *chr, struct chr_spec *spec, char *err,
		     size_t errlen);
	/* Open what the backend needs; bring a peer up if it has one
	 * already.  0 or -errno with one line in err. */
	int (*start)(struct chr *chr, char *err, size_t errlen);
	/* Close everything the backend opened and free what parse kept
	 * (the core has brought the peer down first).  Also after a failed
	 * parse, or a failed or missing start: priv may be half-built. */
	void (*stop)(struct chr *chr);
	/* Still waiting for a first peer before the VM may start (a socket
	 * server's wait=on).  NULL: never. */
	bool (*waiting)(struct chr *chr);
	/* SIGHUP.  NULL: nothing to reopen. */
	void (*reopen)(struct chr *chr);
	/* The core brought the peer down on EOF or an error (not on
	 * chr_peer_down from the backend itself): what next.  NULL:
	 * nothing. */
	void (*peer_gone)(struct chr *chr);
	/* Take guest output.  NULL: writev() to the peer's out fd.  Bytes
	 * taken (> 0), -EAGAIN (call again when out_fd is writable), or
	 * -errno: the sink failed.  Called with niov 0 when the port has
	 * nothing more: a sink that holds bytes of its own sends them, and
	 * returns 0 once it holds none, else -EAGAIN. */
	ssize_t (*sink)(struct chr *chr, const struct iovec *iov, int niov);
	/* Rewrite len bytes read from the peer in place (telnet); the new
	 * length.  NULL: as read. */
	size_t (*filter_in)(struct chr *chr, char *buf, size_t len);
	/* Extra attributes: "KEY\0" names and values, as in struct
	 * hub_observer_ops (the core prefixes "chardev.ID.").  NULL: none. */
	size_t (*attr_list)(struct chr *chr, char *buf, size_t len);
	ssize_t (*attr_get)(struct chr *chr, const char *key, char *buf,
			    size_t len);
};

/* Every backend, for chr_set_add. */
extern const struct chr_backend chr_socket_backend;
extern const struct chr_backend chr_pipe_backend;
extern const struct chr_backend chr_file_backend;
extern const struct chr_backend chr_log_backend;
extern const struct chr_backend chr_pty_backend;
extern const struct chr_backend chr_fd_backend;
extern const struct chr_backend chr_stdio_backend;
extern const struct chr_backend chr_ringbuf_backend;
extern const struct chr_backend chr_null_backend;

/* ---- for backends ---------------------------------------------------- */

void *chr_priv(struct chr *chr);
const char *chr_id(const struct chr *chr);
struct vp_loop *chr_loop(const struct chr *chr);

enum {
	CHR_PEER_OWNS_FDS = 1 << 0, /* close in_fd/out_fd at peer down */
};

/*
 * A peer is there: the core watches in_fd (its input to the guest; -1:
 * none) and writes guest output to out_fd (-1: through the backend's
 * sink only, or nowhere), both made non-blocking, and attaches the
 * chardev to its port when the port is plugged.  in_fd may equal out_fd
 * (a socket): then EOF or an error on it is the peer leaving.
 */
void chr_peer_up(struct chr *chr, int in_fd, int out_fd, unsigned flags);
/* The backend ends the peer (stop, reopen): detach, stop watching,
 * close the fds if owned.  peer_gone is not called.  No-op if none. */
void chr_peer_down(struct chr *chr);
bool chr_peer_is_up(const struct chr *chr);
/* The peer's out fd, for a sink that writes to it itself; -1: none. */
int chr_peer_out_fd(const struct chr *chr);
/* Replace the peer's out_fd (SIGHUP: a file reopened), keeping its place
 * in the port's stream; the old one is closed if the peer owns its fds.
 * If no peer is up (it failed), bring one up with this output only.  May
 * be called from the backend's sink: output resumes from the loop. */
void chr_peer_set_out(struct chr *chr, int out_fd);
/* The sink or the peer failed (-errno): report once, count, bring the
 * peer down and call peer_gone.  `what` names the operation. */
void chr_peer_failed(struct chr *chr, const char *what, int err);

/* An attribute value (not NUL-terminated, at most 63 bytes) into buf;
 * its length, or -ERANGE if it does not fit in len. */
ssize_t chr_attr_printf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fill err with the formatted message (the caller adds what names the
 * chardev); returns -err_no, for `return chr_errf(...)`. */
int chr_errf(const struct chr *chr, int err_no, char *err, size_t errlen,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
