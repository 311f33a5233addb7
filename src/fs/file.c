/*
 * Open port files: each one a hub endpoint (see src/fs/pfs_int.h).
 *
 * The design choice that matters: a request that must wait is parked, not
 * slept on.  Each parked request is re-examined whenever the hub says the
 * file's port changed, and is answered exactly once: with data, with a
 * count, with EOF/EAGAIN/EINTR/ENODEV, or at unmount.  Port files are
 * opened as stream, direct-I/O, non-seekable files so the kernel neither
 * caches nor serialises reads against writes on one file description.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "pfs_int.h"
#include "vportfs/log.h"

#define PEEK_IOV 2
/* Each .events reader has a queue of its own: cap how many there are. */
#define MAX_EVENT_READERS 64
/* A write that completes with at least this many bytes is answered before
 * they are copied into guest buffers (try_write). */
#define REPLY_BEFORE_COPY_MIN (64u << 10)

/* The kernel's open flags for a stream; libfuse has no field for STREAM, so
 * FUSE_OPEN is answered with this struct by hand (same bytes as
 * fuse_reply_open would send). */
#define OPEN_DIRECT_IO (1u << 0)
#define OPEN_NONSEEKABLE (1u << 2)
#define OPEN_STREAM (1u << 4)
#define OPEN_NOFLUSH (1u << 5)

struct open_out {
	uint64_t fh;
	uint32_t open_flags;
	uint32_t padding;
};

static struct pfs_file *req_file(struct fuse_file_info *fi)
{
	return (struct pfs_file *)(uintptr_t)fi->fh;
}

static bool file_gone(const struct pfs_file *f)
{
	return f->ep && hub_ep_gone(f->ep);
}

static bool nonblocking(int flags)
{
	return flags & O_NONBLOCK;
}

/* One rule for both modes: in session mode a hung-up file is at EOF and
 * not writable, so it polls readable and hung up. */
static unsigned file_revents(struct pfs_file *f)
{
	unsigned ev = 0;
	bool eof;

	if (f->events)
		return hub_events_readable(f->events) ? POLLIN : 0;
	if (file_gone(f))
		return POLLHUP | POLLERR;
	eof = hub_ep_eof(f->ep);
	if (hub_ep_readable(f->ep) || eof)
		ev |= POLLIN;
	if (hub_ep_writable(f->ep))
		ev |= POLLOUT;
	if (eof)
		ev |= POLLHUP;
	return ev;
}

/* ---- answering requests -------------------------------------------------- */

static bool reply_from(fuse_req_t req, struct iovec *iov, int niov)
{
	return fuse_reply_iov(req, iov, niov) == 0;
}

static size_t iov_bytes(const struct iovec *iov, int niov)
{
	size_t n = 0;

	for (int i = 0; i < niov; i++)
		n += iov[i].iov_len;
	return n;
}

/* Answer a read if it can be answered now; true if answered. */
static bool try_read(struct pfs_file *f, fuse_req_t req, size_t size,
		     off_t off, int flags)
{
	struct iovec iov[PEEK_IOV];
	int niov = PEEK_IOV;
	size_t n;
	bool eof = false;

	if (f->events) {
		niov = hub_events_peek(f->events, iov, size);
		if (niov) {
			if (reply_from(req, iov, niov))
				hub_events_consume(f->events,
						   iov_bytes(iov, niov));
			return true;
		}
	} else if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	} else if (!f->reads) {
		fuse_reply_err(req, EBADF);
		return true;
	} else {
		n = hub_ep_peek(f->ep, iov, &niov, size);
		if (n) {
			/* One copy: from the port's ring straight into the
			 * caller's buffer. */
			if (reply_from(req, iov, niov))
				hub_ep_consume(f->ep, n);
			return true;
		}
		eof = hub_ep_eof(f->ep);
	}
	/* A continuation of a read the kernel split: what we had went with
	 * the first part; never block the tail. */
	if (eof || off > 0) {
		fuse_reply_buf(req, NULL, 0);
		return true;
	}
	if (nonblocking(flags)) {
		fuse_reply_err(req, EAGAIN);
		return true;
	}
	return false;
}

/*
 * Answer a write once it is complete.  Like a pipe, a blocking write
 * returns when every byte was accepted (it waits only while the port's
 * bounded buffer is full); a non-blocking one takes what fits now.  *done
 * counts the request's bytes accepted so far across retries; `data` holds
 * its bytes from `skip` on.  The answer may go out before the copy into
 * the guest (hub_ep_write_reserve, then hub_ep_write_commit).
 */
static bool try_write(struct pfs_file *f, fuse_req_t req, const char *data,
		      size_t skip, size_t size, int flags, size_t *done)
{
	const char *src = data + (*done - skip);
	ssize_t n;

	if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	}
	n = hub_ep_write_reserve(f->ep, size - *done);
	if (n > 0) {
		bool complete = *done + (size_t)n == size || nonblocking(flags);
		/* The writer learns its count before a large copy and
		 * prepares its next write meanwhile; a small write costs less
		 * to copy than the reply, so it is copied first (its
		 * interrupt goes, as every one, when the loop next sleeps). */
		bool reply_first =
			complete && (size_t)n >= REPLY_BEFORE_COPY_MIN;

		*done += (size_t)n;
		if (reply_first)
			fuse_reply_write(req, *done);
		hub_ep_write_commit(f->ep, src);
		if (complete && !reply_first)
			fuse_reply_write(req, *done);
		return complete;
	}
	if (*done > 0 && n == -EPIPE) {
		/* Bytes accepted before a hang-up are reported first. */
		fuse_reply_write(req, *done);
		return true;
	}
	if (n != -EAGAIN) {
		fuse_reply_err(req, (int)-n);
		return true;
	}
	if (nonblocking(flags)) {
		fuse_reply_err(req, EAGAIN);
		return true;
	}
	return false;
}

/* Done when what was accepted reached the guest (EIO if bytes were
 * thrown away since this fd's last fsync or its open). */
static bool try_fsync(struct pfs_file *f, fuse_req_t req, uint64_t mark)
{
	int rc;

	if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	}
	rc = hub_ep_sync(f->ep, mark);
	if (rc == -EAGAIN)
		return false;
	fuse_reply_err(req, -rc);
	return true;
}

static void parked_free(struct pfs_file *f, struct parked *pk)
{
	TAILQ_REMOVE(&f->parked, pk, link);
	free(pk->data);
	free(pk);
}

/* Retry every parked request of a file, in arrival order. */
static void serve_file(struct pfs_file *f)
{
	struct parked *pk, *next;

	for (pk = TAILQ_FIRST(&f->parked); pk; pk = next) {
		bool done;

		next = TAILQ_NEXT(pk, link);
		if (pk->interrupted) {
			/* Bytes already accepted are reported, as a pipe
			 * does. */
			if (pk->kind == PARK_WRITE && pk->done)
				fuse_reply_write(pk->req, pk->done);
			else
				fuse_reply_err(pk->req, EINTR);
			done = true;
		} else if (pk->kind == PARK_READ) {
			done = try_read(f, pk->req, pk->size, pk->off, 0);
		} else if (pk->kind == PARK_WRITE) {
			done = try_write(f, pk->req, pk->data, pk->skip,
					 pk->size, 0, &pk->done);
		} else {
			done = try_fsync(f, pk->req, pk->mark);
		}
		if (done)
			parked_free(f, pk);
	}
}

static void poll_notify(struct pfs_file *f)
{
	unsigned ev;

	if (!f->ph)
		return;
	ev = file_revents(f);
	if (ev != f->polled) {
		fuse_lowlevel_notify_poll(f->ph);
		f->polled = ev;
	}
}

static void file_changed(struct pfs_file *f)
{
	serve_file(f);
	poll_notify(f);
}

void pfs_files_changed(struct pfs *fs, bool events_only)
{
	struct pfs_file *f;

	LIST_FOREACH(f, &fs->files, link)
		if (!events_only || f->events)
			file_changed(f);
}

static void reap_cb(void *opaque)
{
	struct pfs *fs = opaque;

	fs->reap_scheduled = false;
	pfs_files_changed(fs, false);
}

/* libfuse calls this with the request's lock held, from inside
 * fuse_session_process_buf: replying here would free the request under
 * libfuse's feet.  Mark it; reap_cb answers EINTR from the loop. */
static void interrupt_cb(fuse_req_t req, void *data)
{
	struct pfs *fs = req_fs(req);
	struct parked *pk = data;

	pk->interrupted = true;
	if (!fs->reap_scheduled && vp_defer(fs->loop, reap_cb, fs) == 0)
		fs->reap_scheduled = true;
}

/* `arg`: PARK_WRITE, bytes already accepted; PARK_FSYNC, the mark. */
static void park(struct pfs_file *f, fuse_req_t req, enum park_kind kind,
		 size_t size, off_t off, const char *data, uint64_t arg)
{
	struct parked *pk = calloc(1, sizeof(*pk));

	if (!pk)
		goto err_nomem;
	if (data) {
		/* Only what was not accepted yet: arg bytes were. */
		pk->data = malloc(size - arg);
		if (!pk->data)
			goto err_free;
		memcpy(pk->data, data + arg, size - arg);
		pk->skip = arg;
	}
	pk->req = req;
	pk->kind = kind;
	pk->size = size;
	pk->off = off;
	if (kind == PARK_FSYNC)
		pk->mark = arg;
	else
		pk->done = arg;
	TAILQ_INSERT_TAIL(&f->parked, pk, link);
	fuse_req_interrupt_func(req, interrupt_cb, pk);
	return;

err_free:
	free(pk);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

/* ---- opening and closing ------------------------------------------------- */

static void ep_changed(struct hub_ep *ep, void *opaque)
{
	(void)ep;
	file_changed(opaque);
}

static const struct hub_ep_ops file_ep_ops = {
	.changed = ep_changed,
};

/* False if the caller is gone (interrupted open): then no release will
 * come for f, and the caller must undo the open. */
static bool reply_open(fuse_req_t req, struct pfs_file *f)
{
	struct open_out out = {
		.fh = (uint64_t)(uintptr_t)f,
		.open_flags = OPEN_DIRECT_IO | OPEN_NONSEEKABLE | OPEN_STREAM |
			      OPEN_NOFLUSH,
	};

	return fuse_reply_buf(req, (const char *)&out, sizeof(out)) == 0;
}

static struct pfs_file *file_new(struct pfs *fs)
{
	struct pfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->fs = fs;
	TAILQ_INIT(&f->parked);
	return f;
}

/* Unlink and free an open file whose requests have all been answered. */
static void file_free(struct pfs_file *f)
{
	LIST_REMOVE(f, link);
	if (f->ph)
		fuse_pollhandle_destroy(f->ph);
	if (f->events)
		f->fs->nevent_files--;
	hub_events_close(f->events);
	hub_ep_detach(f->ep);
	free(f);
}

static void open_events(fuse_req_t req, struct pfs *fs, int flags)
{
	struct pfs_file *f;

	if ((flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (fs->nevent_files >= MAX_EVENT_READERS) {
		fuse_reply_err(req, EMFILE);
		return;
	}
	f = file_new(fs);
	if (!f || !(f->events = hub_events_open(hub_events(fs->hub)))) {
		free(f);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!reply_open(req, f)) {
		hub_events_close(f->events);
		free(f);
		return;
	}
	LIST_INSERT_HEAD(&fs->files, f, link);
	fs->nevent_files++;
}

void pfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp;
	struct pfs_file *f;
	int acc = fi->flags & O_ACCMODE;
	unsigned flags = 0;
	int rc;

	if (ino == PFS_ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino == PFS_EVENTS_INO) {
		open_events(req, fs, fi->flags);
		return;
	}
	hp = pfs_port_of_ino(fs, ino);
	if (!hp || hub_port_gone(hp)) {
		fuse_reply_err(req, hp ? ENODEV : ENOENT);
		return;
	}
	f = file_new(fs);
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->reads = acc != O_WRONLY;
	f->writer = acc != O_RDONLY;
	if (f->reads)
		flags |= HUB_EP_READ;
	if (f->writer)
		flags |= HUB_EP_WRITE;
	rc = hub_ep_attach(hp, flags, &file_ep_ops, f, &f->ep);
	if (rc) {
		free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	if (!reply_open(req, f)) {
		hub_ep_detach(f->ep);
		free(f);
		return;
	}
	LIST_INSERT_HEAD(&fs->files, f, link);
}

void pfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	file_free(req_file(fi));
	fuse_reply_err(req, 0);
}

void pfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);

	(void)ino;
	/* Later reads queue behind earlier parked ones: no overtaking. */
	if (!TAILQ_EMPTY(&f->parked) && !nonblocking(fi->flags)) {
		park(f, req, PARK_READ, size, off, NULL, 0);
		serve_file(f);
		return;
	}
	if (!try_read(f, req, size, off, fi->flags))
		park(f, req, PARK_READ, size, off, NULL, 0);
}

void pfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		  size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);
	size_t done = 0;

	(void)ino;
	(void)off;
	if (f->events) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	if (!try_write(f, req, buf, 0, size, fi->flags, &done))
		park(f, req, PARK_WRITE, size, 0, buf, done);
}

void pfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

void pfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);
	uint64_t mark;

	(void)ino;
	(void)datasync;
	if (f->events) {
		fuse_reply_err(req, 0);
		return;
	}
	if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return;
	}
	mark = hub_ep_sync_mark(f->ep);
	if (!try_fsync(f, req, mark))
		park(f, req, PARK_FSYNC, 0, 0, NULL, mark);
}

void pfs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct fuse_pollhandle *ph)
{
	struct pfs_file *f = req_file(fi);

	(void)ino;
	if (ph) {
		if (f->ph)
			fuse_pollhandle_destroy(f->ph);
		f->ph = ph;
	}
	if (f->ep)
		hub_ep_seen(f->ep);
	f->polled = file_revents(f);
	fuse_reply_poll(req, f->polled);
}

/* ---- unmount ------------------------------------------------------------- */

void pfs_files_shutdown(struct pfs *fs)
{
	struct pfs_file *f;
	struct parked *pk;

	if (fs->reap_scheduled)
		vp_defer_cancel(fs->loop, reap_cb, fs);
	fs->reap_scheduled = false;
	/* Nothing may stay blocked in the kernel once we are gone. */
	while ((f = LIST_FIRST(&fs->files))) {
		while ((pk = TAILQ_FIRST(&f->parked))) {
			if (pk->kind == PARK_WRITE)
				fuse_reply_err(pk->req, EPIPE);
			else if (pk->kind == PARK_READ)
				fuse_reply_buf(pk->req, NULL, 0);
			else
				fuse_reply_err(pk->req, EIO); /* undelivered */
			parked_free(f, pk);
		}
		file_free(f);
	}
}
