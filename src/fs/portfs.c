/*
 * The port filesystem (see include/vportfs/pfs.h).
 *
 * The design choice that matters: a request that must wait is parked, not
 * slept on.  Each parked request is re-examined whenever the device says its
 * port changed, and is answered exactly once: with data, with a count, with
 * EOF/EAGAIN/EINTR/ENODEV, or at unmount.  Port files are opened as stream,
 * direct-I/O, non-seekable files so the kernel neither caches nor
 * serialises reads against writes on one file description.
 *
 * Ports are objects of their own (struct pfs_port), referenced by the open
 * files: a hot-unplugged port stays alive, marked gone, until its last file
 * is released, so an fd of a removed port keeps answering ENODEV even if a
 * new port takes the same name or number.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "vportfs/buf.h"
#include "vportfs/log.h"
#include "vportfs/pfs.h"
#include "vportfs/pfs_events.h"
#include "vportfs/utf8.h"
#include "vportfs/vser.h"

#define ROOT_INO FUSE_ROOT_ID
#define EVENTS_INO 2
#define FIRST_PORT_INO 3
#define EVENTS_NAME ".events"
#define MAX_IO (1u << 20)
#define PEEK_IOV 256
#define XATTR_PREFIX "user.vport."
/* -o session: what a hung-up fd may keep of its session's unread output
 * once the guest's buffers are given back for the next session. */
#define HUNG_TAIL_MAX (1u << 20)
/* Each .events reader has a queue of its own: cap how many there are. */
#define MAX_EVENT_READERS 64

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

enum park_kind { PARK_READ, PARK_WRITE, PARK_FSYNC };

struct pfs_file;

struct parked {
	TAILQ_ENTRY(parked) link;
	fuse_req_t req;
	enum park_kind kind;
	size_t size;
	off_t off;
	char *data;  /* PARK_WRITE: a copy of the caller's bytes */
	size_t done; /* PARK_WRITE: bytes of data already accepted */
	uint64_t discards; /* PARK_FSYNC: the discard count fsync compares */
	bool interrupted;
};

TAILQ_HEAD(parked_list, parked);

struct pfs_port;

struct pfs_file {
	LIST_ENTRY(pfs_file) link;
	struct pfs_port *pp;               /* NULL for .events */
	struct pfs_events_reader *events;  /* .events only */
	struct vser_reader *reader;        /* while it reads from the device */
	bool reads;                        /* opened for reading */
	bool writer;                       /* opened for writing */
	uint64_t discards_seen; /* the port's write discards fsync reported */
	uint64_t lost_reported; /* console bytes this reader lost, told */
	struct vp_buf tail;  /* hung up: its session's unread output */
	/* -o session: the guest session this fd belongs to (0: the next
	 * one), and whether that session has ended. */
	uint64_t session;
	bool hung;
	struct fuse_pollhandle *ph;
	unsigned polled; /* revents we last answered a poll with */
	struct parked_list parked;
};

struct pfs_port {
	LIST_ENTRY(pfs_port) gone_link;
	struct vser_port *port; /* NULL once unplugged */
	fuse_ino_t ino;
	unsigned nr;
	char fname[VSER_NAME_MAX + 1];
	LIST_HEAD(, pfs_file) files;
	bool host_connected; /* what we last told the device */
};

struct pfs {
	struct vp_loop *loop;
	struct vser *dev;
	struct pfs_config cfg;
	struct fuse_session *se;
	struct vp_watch *watch;
	struct fuse_buf buf;
	struct pfs_port **ports; /* indexed by port number */
	LIST_HEAD(, pfs_port) gone; /* unplugged, files still open */
	unsigned max_ports;
	fuse_ino_t next_ino;
	struct pfs_events *events;
	LIST_HEAD(, pfs_file) event_files;
	unsigned nevent_files;
	bool reap_scheduled;
	struct timespec mtime;
};

/* ---- names, inodes, attributes ----------------------------------------- */

static bool usable_name(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= VSER_NAME_MAX && name[0] != '.' &&
	       !strchr(name, '/') && vp_utf8_valid(name);
}

void pfs_port_filename(unsigned nr, const char *name, char *buf, size_t len)
{
	if (usable_name(name) && strlen(name) < len)
		memcpy(buf, name, strlen(name) + 1);
	else
		snprintf(buf, len, "port%u", nr);
}

static struct pfs_port *port_by_ino(struct pfs *fs, fuse_ino_t ino)
{
	struct pfs_port *pp;

	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr] && fs->ports[nr]->ino == ino)
			return fs->ports[nr];
	LIST_FOREACH(pp, &fs->gone, gone_link)
		if (pp->ino == ino)
			return pp;
	return NULL;
}

static struct pfs_port *port_by_name(struct pfs *fs, const char *name)
{
	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr] && strcmp(fs->ports[nr]->fname, name) == 0)
			return fs->ports[nr];
	return NULL;
}

static void fill_attr(struct pfs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->cfg.uid;
	st->st_gid = fs->cfg.gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mtime;
	st->st_blksize = 4096;
	if (ino == ROOT_INO) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == EVENTS_INO) {
		st->st_mode = S_IFREG | (fs->cfg.mode & 0444);
		st->st_nlink = 1;
	} else {
		st->st_mode = S_IFREG | (fs->cfg.mode & 07777);
		st->st_nlink = 1;
	}
}

static void schedule_reap(struct pfs *fs);

/* Tell the .events readers; they are served before the loop sleeps. */
static void emit(struct pfs *fs, const char *event, const struct pfs_port *pp)
{
	bool heard;

	if (pp)
		heard = pfs_events_emit(fs->events, event, pp->fname,
					(int)pp->nr);
	else
		heard = pfs_events_emit(fs->events, event, NULL, 0);
	if (heard)
		schedule_reap(fs);
}

/* ---- port objects ------------------------------------------------------- */

static struct pfs_port *pport_new(struct pfs *fs, struct vser_port *port)
{
	struct pfs_port *pp = calloc(1, sizeof(*pp));

	if (!pp)
		return NULL;
	pp->port = port;
	pp->nr = vser_port_nr(port);
	pp->ino = fs->next_ino++;
	pfs_port_filename(pp->nr, vser_port_name(port), pp->fname,
			  sizeof(pp->fname));
	LIST_INIT(&pp->files);
	fs->ports[pp->nr] = pp;
	return pp;
}

/* ---- file state ----------------------------------------------------------- */

static bool session_mode(const struct pfs *fs)
{
	return fs->cfg.session;
}

static bool file_gone(const struct pfs_file *f)
{
	return f->pp && !f->pp->port;
}

/* Does this fd currently talk to a live guest session? */
static bool file_live(const struct pfs *fs, const struct pfs_file *f)
{
	const struct vser_port *p = f->pp->port;

	if (!session_mode(fs))
		return vser_port_guest_connected(p);
	return !f->hung && f->session != 0 && vser_port_guest_connected(p) &&
	       f->session == vser_port_guest_session(p);
}

/* The guest sees the host side open while some fd may still talk to it:
 * any fd in default mode; in session mode any fd not hung up. */
static void update_host_connected(struct pfs *fs, struct pfs_port *pp)
{
	bool want = false;
	struct pfs_file *f;

	LIST_FOREACH(f, &pp->files, link)
		if (!f->hung)
			want = true;
	if (!pp->port || want == pp->host_connected)
		return;
	pp->host_connected = want;
	vser_port_set_host_connected(pp->port, want);
	emit(fs, want ? "host-open" : "host-close", pp);
}

/* Default mode: does a read with nothing waiting return EOF?  While the
 * guest has its end closed, as on a pipe, except on a console: its ring
 * outlives the VM, and so do its readers (a logger's cat blocks across a
 * reboot instead of ending). */
static bool file_eof(const struct pfs_file *f)
{
	const struct vser_port *p = f->pp->port;

	return !vser_port_is_console(p) && !vser_port_guest_connected(p);
}

static unsigned file_revents(const struct pfs *fs, struct pfs_file *f)
{
	unsigned ev = 0;

	if (f->events)
		return pfs_events_readable(f->events) ? POLLIN : 0;
	if (file_gone(f))
		return POLLHUP | POLLERR;
	if (session_mode(fs)) {
		if (f->hung)
			return POLLIN | POLLHUP; /* EOF is readable */
		if (f->reader && vser_reader_readable(f->reader))
			ev |= POLLIN;
		if (file_live(fs, f) && vser_port_writable(f->pp->port))
			ev |= POLLOUT;
		return ev;
	}
	if ((f->reader && vser_reader_readable(f->reader)) || file_eof(f))
		ev |= POLLIN;
	if (vser_port_writable(f->pp->port))
		ev |= POLLOUT;
	if (file_eof(f))
		ev |= POLLHUP;
	return ev;
}

static bool nonblocking(int flags)
{
	return flags & O_NONBLOCK;
}

/* ---- answering requests -------------------------------------------------- */

static bool reply_from(fuse_req_t req, struct iovec *iov, int niov)
{
	return fuse_reply_iov(req, iov, niov) == 0;
}

/* A console reader that fell behind the ring lost its oldest bytes: say
 * how many, once, in .events ("reader-overrun", "lost"). */
static void report_overrun(struct pfs *fs, struct pfs_file *f)
{
	uint64_t lost = vser_reader_dropped(f->reader);

	if (lost == f->lost_reported)
		return;
	if (pfs_events_emit_count(fs->events, "reader-overrun", f->pp->fname,
				  (int)f->pp->nr, "lost",
				  lost - f->lost_reported))
		schedule_reap(fs);
	f->lost_reported = lost;
}

/* Answer a read if it can be answered now; true if answered. */
static bool try_read(struct pfs *fs, struct pfs_file *f, fuse_req_t req,
		     size_t size, off_t off, int flags)
{
	struct iovec iov[PEEK_IOV];
	int niov = PEEK_IOV;
	size_t n;
	bool eof;

	if (f->events) {
		niov = pfs_events_peek(f->events, iov, size);
		if (niov) {
			n = iov[0].iov_len + (niov > 1 ? iov[1].iov_len : 0);
			if (reply_from(req, iov, niov))
				pfs_events_consume(f->events, n);
			return true;
		}
		eof = false;
	} else if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	} else if (!f->reads) {
		fuse_reply_err(req, EBADF);
		return true;
	} else if (!f->reader) {
		/* Hung up (-o session): what it kept, then EOF. */
		niov = vp_buf_peek(&f->tail, iov, size);
		if (niov) {
			n = iov[0].iov_len + (niov > 1 ? iov[1].iov_len : 0);
			if (reply_from(req, iov, niov))
				vp_buf_consume(&f->tail, n);
			return true;
		}
		eof = true;
	} else {
		/* Whatever we answer, the reader has looked (see
		 * vser_reader_seen). */
		vser_reader_seen(f->reader);
		n = vser_reader_peek(f->reader, iov, &niov, size);
		report_overrun(fs, f);
		if (n) {
			/* One copy: from guest memory (or the console ring)
			 * straight into the caller's buffer. */
			if (reply_from(req, iov, niov))
				vser_reader_consume(f->reader, n);
			return true;
		}
		if (session_mode(fs))
			eof = f->hung;
		else
			eof = file_eof(f);
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
 * returns when every byte was accepted (it waits only while our bounded
 * buffer is full); a non-blocking one takes what fits now.  *done counts
 * the bytes accepted so far across retries.
 */
static bool try_write(struct pfs *fs, struct pfs_file *f, fuse_req_t req,
		      const char *data, size_t size, int flags, size_t *done)
{
	ssize_t n = -EAGAIN;

	if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	}
	if (session_mode(fs) && f->hung) {
		/* Bytes accepted before the hang-up are reported first. */
		if (*done)
			fuse_reply_write(req, *done);
		else
			fuse_reply_err(req, EPIPE);
		return true;
	}
	if (!session_mode(fs) || file_live(fs, f))
		n = vser_port_write(f->pp->port, data + *done, size - *done);
	if (n > 0)
		*done += (size_t)n;
	if (*done == size || (*done > 0 && nonblocking(flags))) {
		fuse_reply_write(req, *done);
		return true;
	}
	if (n == -ENOMEM) {
		fuse_reply_err(req, ENOMEM);
		return true;
	}
	if (nonblocking(flags)) {
		fuse_reply_err(req, EAGAIN);
		return true;
	}
	return false;
}

/* Done when our buffer is empty (EIO if bytes were thrown away since this
 * fd's last fsync or its open: the -o session they belonged to ended), or,
 * in session mode, once that session is over. */
static bool try_fsync(struct pfs *fs, struct pfs_file *f, fuse_req_t req,
		      uint64_t discards)
{
	const struct vser_port *p;

	if (file_gone(f)) {
		fuse_reply_err(req, ENODEV);
		return true;
	}
	p = f->pp->port;
	/* Default mode: undelivered bytes wait for the guest's next open,
	 * and so does fsync; -o session: only while the session lives. */
	if (vser_port_write_pending(p) &&
	    (file_live(fs, f) || !session_mode(fs)))
		return false;
	if (vser_port_write_discards(p) != discards || vser_port_write_pending(p))
		fuse_reply_err(req, EIO);
	else
		fuse_reply_err(req, 0);
	/* Each loss is reported once per fd, like a writeback error. */
	f->discards_seen = vser_port_write_discards(p);
	return true;
}

/* Unlink and free an open file whose requests have all been answered. */
static void file_free(struct pfs_file *f)
{
	LIST_REMOVE(f, link);
	if (f->ph)
		fuse_pollhandle_destroy(f->ph);
	pfs_events_close(f->events);
	vser_reader_free(f->reader);
	vp_buf_destroy(&f->tail);
	free(f);
}

static void parked_free(struct pfs_file *f, struct parked *pk)
{
	TAILQ_REMOVE(&f->parked, pk, link);
	free(pk->data);
	free(pk);
}

/* Retry every parked request of a file, in arrival order. */
static void serve_file(struct pfs *fs, struct pfs_file *f)
{
	struct parked *pk, *next;

	for (pk = TAILQ_FIRST(&f->parked); pk; pk = next) {
		int flags = 0;
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
			done = try_read(fs, f, pk->req, pk->size, pk->off, flags);
		} else if (pk->kind == PARK_WRITE) {
			done = try_write(fs, f, pk->req, pk->data, pk->size,
					 flags, &pk->done);
		} else {
			done = try_fsync(fs, f, pk->req, pk->discards);
		}
		if (done)
			parked_free(f, pk);
	}
}

static void poll_notify(struct pfs *fs, struct pfs_file *f)
{
	unsigned ev;

	if (!f->ph)
		return;
	ev = file_revents(fs, f);
	if (ev != f->polled) {
		fuse_lowlevel_notify_poll(f->ph);
		f->polled = ev;
	}
}

static void file_changed(struct pfs *fs, struct pfs_file *f)
{
	serve_file(fs, f);
	poll_notify(fs, f);
}

static void update_host_connected(struct pfs *fs, struct pfs_port *pp);

/*
 * -o session: a hung-up fd keeps what its session sent and it has not
 * read (up to HUNG_TAIL_MAX) in a buffer of its own, and lets go of the
 * guest's buffers: an fd that may never read again must not hold up the
 * next session.
 */
static void keep_hung_tail(struct pfs_file *f)
{
	size_t n, kept = 0;

	if (!f->hung || !f->reader)
		return;
	n = vser_reader_readable(f->reader);
	if (n > HUNG_TAIL_MAX)
		n = HUNG_TAIL_MAX;
	if (n && vp_buf_init(&f->tail, n) == 0) {
		while (kept < n) {
			struct iovec iov[PEEK_IOV];
			int niov = PEEK_IOV;
			size_t got = vser_reader_peek(f->reader, iov, &niov,
						      n - kept);

			if (!got)
				break;
			for (int i = 0; i < niov; i++)
				vp_buf_put(&f->tail, iov[i].iov_base,
					   iov[i].iov_len);
			vser_reader_consume(f->reader, got);
			kept += got;
		}
	}
	vser_reader_free(f->reader);
	f->reader = NULL;
}

static void port_changed(struct pfs *fs, struct pfs_port *pp)
{
	struct pfs_file *f;

	update_host_connected(fs, pp);
	LIST_FOREACH(f, &pp->files, link) {
		keep_hung_tail(f);
		file_changed(fs, f);
	}
}

static void events_changed(struct pfs *fs)
{
	struct pfs_file *f;

	LIST_FOREACH(f, &fs->event_files, link)
		file_changed(fs, f);
}

static void all_changed(struct pfs *fs)
{
	struct pfs_port *pp;

	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr])
			port_changed(fs, fs->ports[nr]);
	LIST_FOREACH(pp, &fs->gone, gone_link)
		port_changed(fs, pp);
	events_changed(fs);
}

static void reap_cb(void *opaque)
{
	struct pfs *fs = opaque;

	fs->reap_scheduled = false;
	all_changed(fs);
}

/* Re-examine everything before the loop sleeps (not from inside libfuse
 * or the device). */
static void schedule_reap(struct pfs *fs)
{
	if (!fs->reap_scheduled && vp_defer(fs->loop, reap_cb, fs) == 0)
		fs->reap_scheduled = true;
}

/* libfuse calls this with the request's lock held, from inside
 * fuse_session_process_buf: replying here would free the request under
 * libfuse's feet.  Mark it; reap_cb answers EINTR from the loop. */
static void interrupt_cb(fuse_req_t req, void *data)
{
	struct parked *pk = data;

	pk->interrupted = true;
	schedule_reap(fuse_req_userdata(req));
}

/* `done`: PARK_WRITE, bytes already accepted; PARK_FSYNC, the discard
 * count to compare with. */
static void park(struct pfs_file *f, fuse_req_t req, enum park_kind kind,
		 size_t size, off_t off, const char *data, uint64_t done)
{
	struct parked *pk = calloc(1, sizeof(*pk));

	if (!pk)
		goto err_nomem;
	if (data) {
		pk->data = malloc(size);
		if (!pk->data)
			goto err_free;
		memcpy(pk->data, data, size);
	}
	pk->req = req;
	pk->kind = kind;
	pk->size = size;
	pk->off = off;
	if (kind == PARK_FSYNC)
		pk->discards = done;
	else
		pk->done = done;
	TAILQ_INSERT_TAIL(&f->parked, pk, link);
	fuse_req_interrupt_func(req, interrupt_cb, pk);
	return;

err_free:
	free(pk);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

/* ---- device listener ------------------------------------------------------- */

static struct pfs_port *pport_of(struct pfs *fs, struct vser_port *port)
{
	struct pfs_port *pp = fs->ports[vser_port_nr(port)];

	return pp && pp->port == port ? pp : NULL;
}

static void on_port_changed(struct vser_port *port, void *opaque)
{
	struct pfs *fs = opaque;
	struct pfs_port *pp = pport_of(fs, port);

	if (pp)
		port_changed(fs, pp);
}

/* A guest session begins or ends.  Called from inside the device: only
 * bookkeeping here, the answers come from reap_cb. */
static void on_port_event(struct vser_port *port, enum vser_port_event ev,
			  void *opaque)
{
	struct pfs *fs = opaque;
	struct pfs_port *pp = pport_of(fs, port);
	struct pfs_file *f;

	if (!pp)
		return;
	emit(fs, ev == VSER_PORT_GUEST_OPEN ? "guest-open" : "guest-close", pp);
	if (session_mode(fs)) {
		LIST_FOREACH(f, &pp->files, link) {
			if (ev == VSER_PORT_GUEST_OPEN && f->session == 0) {
				f->session = vser_port_guest_session(port);
			} else if (ev == VSER_PORT_GUEST_CLOSE && !f->hung &&
				   f->session != 0) {
				/* For good: EOF after what the guest sent in
				 * this session, EPIPE, POLLHUP. */
				f->hung = true;
				if (f->reader)
					vser_reader_set_limit(
						f->reader,
						vser_port_stream_end(port));
			}
		}
	}
	/* reap_cb answers the parked requests and, in session mode, tells
	 * the guest the host side closed if no fd can talk to the next
	 * session: not from here, we are inside the device. */
	schedule_reap(fs);
}

static void on_device_event(enum vser_dev_event ev, void *opaque)
{
	static const char *const names[] = {
		[VSER_DEV_FRONTEND_UP] = "frontend-up",
		[VSER_DEV_FRONTEND_DOWN] = "frontend-down",
		[VSER_DEV_DRIVER_READY] = "driver-ready",
	};
	struct pfs *fs = opaque;

	emit(fs, names[ev], NULL);
	schedule_reap(fs);
}

static const struct vser_listener pfs_listener = {
	.port_changed = on_port_changed,
	.port_event = on_port_event,
	.device_event = on_device_event,
};

/* ---- FUSE operations: directory ------------------------------------------ */

static struct pfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pfs_file *req_file(struct fuse_file_info *fi)
{
	return (struct pfs_file *)(uintptr_t)fi->fh;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = MAX_IO;
	conn->max_read = MAX_IO; /* must match the max_read mount option */
	/* Our data never goes through a pipe: keep libfuse off splice. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

static void reply_entry(fuse_req_t req, struct pfs *fs, fuse_ino_t ino)
{
	struct fuse_entry_param e = { 0 };

	e.ino = ino;
	e.generation = 1;
	fill_attr(fs, ino, &e.attr);
	/* No caching: ports come and go with hot-plug. */
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp;

	if (parent != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strcmp(name, EVENTS_NAME) == 0) {
		reply_entry(req, fs, EVENTS_INO);
		return;
	}
	pp = port_by_name(fs, name);
	if (!pp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, fs, pp->ino);
}

static bool ino_exists(struct pfs *fs, fuse_ino_t ino)
{
	return ino == ROOT_INO || ino == EVENTS_INO || port_by_ino(fs, ino);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct stat st;

	(void)fi;
	if (!ino_exists(fs, ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	/* Timestamps (touch) and truncation to 0 (shell `>`) are accepted
	 * and change nothing: a port has no size and no stored bytes.
	 * Ownership and mode come from the mount options. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		      FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op_getattr(req, ino, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	size_t used = 0;
	struct stat st;
	char *buf;

	(void)fi;
	if (ino != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Offsets: 1 after ".", 2 after "..", 3 after .events, nr+4 after
	 * port nr. */
	for (off_t o = off; o < (off_t)fs->max_ports + 3; o++) {
		const char *name;
		fuse_ino_t e_ino;
		size_t need;

		if (o == 0) {
			name = ".";
			e_ino = ROOT_INO;
		} else if (o == 1) {
			name = "..";
			e_ino = ROOT_INO;
		} else if (o == 2) {
			name = EVENTS_NAME;
			e_ino = EVENTS_INO;
		} else {
			struct pfs_port *pp = fs->ports[o - 3];

			if (!pp)
				continue;
			name = pp->fname;
			e_ino = pp->ino;
		}
		fill_attr(fs, e_ino, &st);
		need = fuse_add_direntry(req, buf + used, size - used, name,
					 &st, o + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* touch NAME / open(O_CREAT): hot-plug a serial port. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct pfs *fs = req_fs(req);
	struct vser_port_config pc = { .nr = -1, .name = name };
	struct vser_port *port;
	struct pfs_port *pp;
	int rc;

	(void)rdev;
	if (parent != ROOT_INO || !S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!usable_name(name) || strcmp(name, EVENTS_NAME) == 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (port_by_name(fs, name)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	rc = vser_port_add(fs->dev, &pc, &port);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pp = pport_new(fs, port);
	if (!pp) {
		vser_port_remove(port);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	vp_info("port %u '%s' hot-plugged", pp->nr, pp->fname);
	emit(fs, "port-added", pp);
	reply_entry(req, fs, pp->ino);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	/* ENOSYS makes the kernel fall back to mknod + open. */
	fuse_reply_err(req, ENOSYS);
}

/* rm NAME: hot-unplug.  Open fds stay valid objects answering ENODEV. */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp;
	struct pfs_file *f;

	if (parent != ROOT_INO || strcmp(name, EVENTS_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pp = port_by_name(fs, name);
	if (!pp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	LIST_FOREACH(f, &pp->files, link) {
		vser_reader_free(f->reader);
		f->reader = NULL;
	}
	vser_port_remove(pp->port);
	pp->port = NULL;
	fs->ports[pp->nr] = NULL;
	vp_info("port %u '%s' unplugged", pp->nr, pp->fname);
	emit(fs, "port-removed", pp);
	if (LIST_EMPTY(&pp->files)) {
		free(pp);
	} else {
		LIST_INSERT_HEAD(&fs->gone, pp, gone_link);
		port_changed(fs, pp);
	}
	fuse_reply_err(req, 0);
}

static void op_deny_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)mode;
	op_deny_name(req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)newparent;
	(void)newname;
	(void)flags;
	op_deny_name(req, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	op_deny_name(req, newparent, newname);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link;
	op_deny_name(req, parent, name);
}

/* ---- FUSE operations: files ---------------------------------------------- */

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
	f = calloc(1, sizeof(*f));
	if (!f || !(f->events = pfs_events_open(fs->events))) {
		free(f);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	TAILQ_INIT(&f->parked);
	if (!reply_open(req, f)) {
		pfs_events_close(f->events);
		free(f);
		return;
	}
	LIST_INSERT_HEAD(&fs->event_files, f, link);
	fs->nevent_files++;
}

/* Sharing: one writer and any number of readers, or (exclusive) one open
 * of any kind, as in the guest. */
static int check_sharing(struct pfs *fs, struct pfs_port *pp, bool writer)
{
	struct pfs_file *f;

	/* A hung-up fd (-o session) can no longer talk to the guest: it
	 * does not keep a new session out. */
	LIST_FOREACH(f, &pp->files, link) {
		if (f->hung)
			continue;
		if (fs->cfg.exclusive || (writer && f->writer))
			return -EBUSY;
	}
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp;
	struct pfs_file *f;
	int acc = fi->flags & O_ACCMODE;
	bool reads = acc != O_WRONLY, writes = acc != O_RDONLY;
	int rc;

	if (ino == ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino == EVENTS_INO) {
		open_events(req, fs, fi->flags);
		return;
	}
	pp = port_by_ino(fs, ino);
	if (!pp || !pp->port) {
		fuse_reply_err(req, pp ? ENODEV : ENOENT);
		return;
	}
	rc = check_sharing(fs, pp, writes);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto err_nomem;
	TAILQ_INIT(&f->parked);
	f->pp = pp;
	f->reads = reads;
	f->writer = writes;
	f->discards_seen = vser_port_write_discards(pp->port);
	if (session_mode(fs) && vser_port_guest_connected(pp->port))
		f->session = vser_port_guest_session(pp->port);
	if (reads) {
		/* What nobody has read yet waits for the first reader; in
		 * session mode only the open session's, never an older one's
		 * (a guest may write on a stale "host open" before this fd
		 * came). */
		f->reader = vser_reader_new(pp->port,
					    session_mode(fs)
						    ? VSER_BACKLOG_SESSION
						    : VSER_BACKLOG_UNREAD);
		if (!f->reader)
			goto err_free;
	}
	if (!reply_open(req, f)) {
		vser_reader_free(f->reader);
		free(f);
		return;
	}
	LIST_INSERT_HEAD(&pp->files, f, link);
	update_host_connected(fs, pp);
	vp_debug("port %u: host open", pp->nr);
	return;

err_free:
	free(f);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct pfs_file *f = req_file(fi);
	struct pfs_port *pp = f->pp;

	(void)ino;
	if (f->events)
		fs->nevent_files--;
	file_free(f);
	if (!pp) {
		fuse_reply_err(req, 0);
		return;
	}
	if (pp->port) {
		update_host_connected(fs, pp);
	} else if (LIST_EMPTY(&pp->files)) {
		LIST_REMOVE(pp, gone_link);
		free(pp);
	}
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct pfs_file *f = req_file(fi);

	(void)ino;
	/* Later reads queue behind earlier parked ones: no overtaking. */
	if (!TAILQ_EMPTY(&f->parked) && !nonblocking(fi->flags)) {
		park(f, req, PARK_READ, size, off, NULL, 0);
		serve_file(fs, f);
		return;
	}
	if (!try_read(fs, f, req, size, off, fi->flags))
		park(f, req, PARK_READ, size, off, NULL, 0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
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
	if (!try_write(fs, f, req, buf, size, fi->flags, &done))
		park(f, req, PARK_WRITE, size, 0, buf, done);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct pfs_file *f = req_file(fi);
	uint64_t discards;

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
	/* A reader never wrote: only the writer hears of lost bytes. */
	discards = f->writer ? f->discards_seen
			     : vser_port_write_discards(f->pp->port);
	if (!try_fsync(fs, f, req, discards))
		park(f, req, PARK_FSYNC, 0, 0, NULL, discards);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	struct pfs_file *f = req_file(fi);

	(void)ino;
	if (ph) {
		if (f->ph)
			fuse_pollhandle_destroy(f->ph);
		f->ph = ph;
	}
	if (f->reader)
		vser_reader_seen(f->reader);
	f->polled = file_revents(req_fs(req), f);
	fuse_reply_poll(req, f->polled);
}

/* ---- extended attributes -------------------------------------------------- */

/* The value of attribute `name` of inode `ino` into buf; its length, or
 * -ENODATA. */
static int xattr_get(struct pfs *fs, fuse_ino_t ino, const char *name,
		     char *buf, size_t len)
{
	const char *key;
	struct pfs_port *pp;
	struct vser_port_stats st;
	const struct vser_port *p;
	int n = -ENODATA;

	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
		return -ENODATA;
	key = name + strlen(XATTR_PREFIX);
	if (ino == ROOT_INO) {
		if (!strcmp(key, "frontend"))
			n = snprintf(buf, len, "%d",
				     vser_frontend_connected(fs->dev));
		else if (!strcmp(key, "driver_ready"))
			n = snprintf(buf, len, "%d", vser_driver_ready(fs->dev));
		else if (!strcmp(key, "max_ports"))
			n = snprintf(buf, len, "%u", vser_max_ports(fs->dev));
		else if (!strcmp(key, "features"))
			n = snprintf(buf, len, "0x%" PRIx64,
				     vser_features(fs->dev));
		else if (!strcmp(key, "orphan_bytes"))
			n = snprintf(buf, len, "%" PRIu64,
				     vser_orphan_bytes(fs->dev));
		return n;
	}
	pp = port_by_ino(fs, ino);
	if (!pp || !pp->port)
		return -ENODATA;
	p = pp->port;
	vser_port_stats(p, &st);
	if (!strcmp(key, "nr"))
		n = snprintf(buf, len, "%u", pp->nr);
	else if (!strcmp(key, "name"))
		n = snprintf(buf, len, "%s", vser_port_name(p));
	else if (!strcmp(key, "console"))
		n = snprintf(buf, len, "%d", vser_port_is_console(p));
	else if (!strcmp(key, "guest_connected"))
		n = snprintf(buf, len, "%d", vser_port_guest_connected(p));
	else if (!strcmp(key, "host_connected"))
		n = snprintf(buf, len, "%d", vser_port_host_connected(p));
	else if (!strcmp(key, "rx_bytes"))
		n = snprintf(buf, len, "%" PRIu64, st.rx_bytes);
	else if (!strcmp(key, "tx_bytes"))
		n = snprintf(buf, len, "%" PRIu64, st.tx_bytes);
	else if (!strcmp(key, "dropped_bytes"))
		n = snprintf(buf, len, "%" PRIu64, st.dropped_bytes);
	else if (!strcmp(key, "winsize") && vser_port_is_console(p)) {
		uint16_t cols, rows;

		vser_port_winsize(p, &cols, &rows);
		n = snprintf(buf, len, "%ux%u", cols, rows);
	}
	return n;
}

static const char root_xattrs[] = XATTR_PREFIX "frontend\0" XATTR_PREFIX
	"driver_ready\0" XATTR_PREFIX "max_ports\0" XATTR_PREFIX "features\0"
	XATTR_PREFIX "orphan_bytes\0";
static const char port_xattrs[] = XATTR_PREFIX "nr\0" XATTR_PREFIX
	"name\0" XATTR_PREFIX "console\0" XATTR_PREFIX
	"guest_connected\0" XATTR_PREFIX "host_connected\0" XATTR_PREFIX
	"rx_bytes\0" XATTR_PREFIX "tx_bytes\0" XATTR_PREFIX "dropped_bytes\0";
static const char console_xattrs[] = XATTR_PREFIX "winsize\0";

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char buf[VSER_NAME_MAX + 64];
	int n = xattr_get(req_fs(req), ino, name, buf, sizeof(buf));

	/* Never ENOSYS: the kernel would turn xattrs off mount-wide. */
	if (n < 0)
		fuse_reply_err(req, -n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp = port_by_ino(fs, ino);
	char buf[sizeof(port_xattrs) + sizeof(console_xattrs)];
	size_t n = 0;

	if (ino == ROOT_INO) {
		memcpy(buf, root_xattrs, sizeof(root_xattrs) - 1);
		n = sizeof(root_xattrs) - 1;
	} else if (pp && pp->port) {
		memcpy(buf, port_xattrs, sizeof(port_xattrs) - 1);
		n = sizeof(port_xattrs) - 1;
		if (vser_port_is_console(pp->port)) {
			memcpy(buf + n, console_xattrs,
			       sizeof(console_xattrs) - 1);
			n += sizeof(console_xattrs) - 1;
		}
	}
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
}

/* "COLSxROWS", each 1..65535. */
static int parse_winsize(const char *value, size_t size, uint16_t *cols,
			 uint16_t *rows)
{
	char s[32], *x, *end;
	unsigned long c, r;

	if (size == 0 || size >= sizeof(s))
		return -EINVAL;
	memcpy(s, value, size);
	s[size] = '\0';
	if (s[size - 1] == '\n')
		s[size - 1] = '\0';
	x = strchr(s, 'x');
	if (!x || x == s || s[0] == '-' || x[1] == '-')
		return -EINVAL;
	*x = '\0';
	c = strtoul(s, &end, 10);
	if (*end || c == 0 || c > UINT16_MAX)
		return -EINVAL;
	r = strtoul(x + 1, &end, 10);
	if (*end || r == 0 || r > UINT16_MAX || !x[1])
		return -EINVAL;
	*cols = (uint16_t)c;
	*rows = (uint16_t)r;
	return 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp = port_by_ino(fs, ino);
	char probe[VSER_NAME_MAX + 64];
	uint16_t cols, rows;

	(void)flags;
	if (pp && pp->port && !strcmp(name, XATTR_PREFIX "winsize") &&
	    vser_port_is_console(pp->port)) {
		if (parse_winsize(value, size, &cols, &rows)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		vser_port_resize(pp->port, cols, rows);
		fuse_reply_err(req, 0);
		return;
	}
	/* Known attributes are read-only; others do not exist. */
	if (xattr_get(fs, ino, name, probe, sizeof(probe)) >= 0)
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENOTSUP);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char probe[VSER_NAME_MAX + 64];

	if (xattr_get(req_fs(req), ino, name, probe, sizeof(probe)) >= 0)
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENODATA);
}

static const struct fuse_lowlevel_ops pfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.mknod = op_mknod,
	.create = op_create,
	.unlink = op_unlink,
	.rmdir = op_deny_name,
	.mkdir = op_mkdir,
	.rename = op_rename,
	.link = op_link,
	.symlink = op_symlink,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.poll = op_poll,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

/* ---- the session on our loop ------------------------------------------- */

static void fuse_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct pfs *fs = opaque;

	(void)w;
	(void)revents;
	/* Bounded, so a flood of requests cannot starve the guest. */
	for (unsigned budget = 64; budget; budget--) {
		int rc = fuse_session_receive_buf(fs->se, &fs->buf);

		if (rc == -EAGAIN)
			break;
		if (rc == -EINTR)
			continue;
		if (rc < 0 && rc != -ENODEV && !fuse_session_exited(fs->se)) {
			/* Transient (ENOMEM...): try again on the next wakeup. */
			vp_warn_rl("reading /dev/fuse: %s", strerror(-rc));
			break;
		}
		if (rc <= 0 || fuse_session_exited(fs->se)) {
			vp_warn("mount %s went away", fs->cfg.mountpoint);
			vp_watch_set(fs->loop, fs->watch, 0);
			if (fs->cfg.on_unmounted)
				fs->cfg.on_unmounted(fs->cfg.opaque);
			return;
		}
		fuse_session_process_buf(fs->se, &fs->buf);
	}
}

struct pfs *pfs_new(struct vp_loop *loop, struct vser *dev,
		    const struct pfs_config *cfg)
{
	char opts[256];
	char *argv[] = { "vportfs", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct pfs *fs;
	int fd, n;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->loop = loop;
	fs->dev = dev;
	fs->cfg = *cfg;
	fs->max_ports = vser_max_ports(dev);
	fs->next_ino = FIRST_PORT_INO;
	LIST_INIT(&fs->gone);
	LIST_INIT(&fs->event_files);
	clock_gettime(CLOCK_REALTIME, &fs->mtime);
	fs->ports = calloc(fs->max_ports, sizeof(*fs->ports));
	if (!fs->ports)
		goto err_free_fs;
	fs->events = pfs_events_new(0);
	if (!fs->events)
		goto err_free_ports;
	for (unsigned nr = 0; nr < fs->max_ports; nr++) {
		struct vser_port *port = vser_port_by_nr(dev, nr);

		if (port && !pport_new(fs, port))
			goto err_free_pports;
	}
	/* We check no permissions ourselves: letting other users in without
	 * the kernel checking modes would open every port to everybody. */
	n = snprintf(opts, sizeof(opts),
		     "fsname=vportfs,subtype=vportfs,max_read=%u%s%s", MAX_IO,
		     cfg->allow_other ? ",allow_other" : "",
		     cfg->default_permissions || cfg->allow_other
			     ? ",default_permissions"
			     : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		goto err_free_pports;
	fs->se = fuse_session_new(&args, &pfs_ops, sizeof(pfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		vp_err("cannot create the FUSE session");
		goto err_free_pports;
	}
	if (fuse_session_mount(fs->se, cfg->mountpoint) != 0) {
		vp_err("cannot mount on %s", cfg->mountpoint);
		goto err_destroy;
	}
	fd = fuse_session_fd(fs->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fs->watch = vp_watch_new(loop, fd, VP_EV_READ, fuse_cb, fs);
	if (!fs->watch)
		goto err_unmount;
	vser_set_listener(dev, &pfs_listener, fs);
	return fs;

err_unmount:
	fuse_session_unmount(fs->se);
err_destroy:
	fuse_session_destroy(fs->se);
err_free_pports:
	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		free(fs->ports[nr]);
	pfs_events_free(fs->events);
err_free_ports:
	free(fs->ports);
err_free_fs:
	free(fs);
	return NULL;
}

/* Answer everything parked on f (EOF, EPIPE, done) and free f. */
static void file_shutdown(struct pfs_file *f)
{
	struct parked *pk;

	while ((pk = TAILQ_FIRST(&f->parked))) {
		if (pk->kind == PARK_WRITE)
			fuse_reply_err(pk->req, EPIPE);
		else if (pk->kind == PARK_READ)
			fuse_reply_buf(pk->req, NULL, 0);
		else
			fuse_reply_err(pk->req, EIO); /* never delivered */
		parked_free(f, pk);
	}
	file_free(f);
}

static void pport_shutdown(struct pfs_port *pp)
{
	while (!LIST_EMPTY(&pp->files))
		file_shutdown(LIST_FIRST(&pp->files));
	free(pp);
}

void pfs_free(struct pfs *fs)
{
	if (!fs)
		return;
	vser_set_listener(fs->dev, NULL, NULL);
	if (fs->reap_scheduled)
		vp_defer_cancel(fs->loop, reap_cb, fs);
	/* Nothing may stay blocked in the kernel once we are gone. */
	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr])
			pport_shutdown(fs->ports[nr]);
	while (!LIST_EMPTY(&fs->gone)) {
		struct pfs_port *pp = LIST_FIRST(&fs->gone);

		LIST_REMOVE(pp, gone_link);
		pport_shutdown(pp);
	}
	while (!LIST_EMPTY(&fs->event_files))
		file_shutdown(LIST_FIRST(&fs->event_files));
	pfs_events_free(fs->events);
	vp_watch_free(fs->loop, fs->watch);
	fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	free(fs->buf.mem);
	free(fs->ports);
	free(fs);
}
