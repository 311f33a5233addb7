/*
 * The port filesystem (see include/vportfs/pfs.h).
 *
 * The design choice that matters: a request that must wait is parked, not
 * slept on.  Each parked request is re-examined whenever the device says its
 * port changed, and is answered exactly once: with data, with a count, with
 * EOF/EAGAIN/EINTR, or at unmount.  Port files are opened as stream,
 * direct-I/O, non-seekable files so the kernel neither caches nor
 * serialises reads against writes on one file description.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "vportfs/log.h"
#include "vportfs/pfs.h"
#include "vportfs/vser.h"

#define ROOT_INO FUSE_ROOT_ID
#define PORT_INO_BASE 2
#define MAX_IO (1u << 20)
#define PEEK_IOV 256

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
	struct pfs_file *file;
	size_t size;
	off_t off;
	char *data; /* PARK_WRITE: a copy of the caller's bytes */
	size_t done; /* PARK_WRITE: bytes of data already accepted */
	bool interrupted;
};

TAILQ_HEAD(parked_list, parked);

struct pfs_port;

struct pfs_file {
	LIST_ENTRY(pfs_file) link;
	struct pfs_port *pp;
	int open_flags;
	struct fuse_pollhandle *ph;
	unsigned polled; /* revents we last answered a poll with */
};

struct pfs_port {
	struct vser_port *port;
	LIST_HEAD(, pfs_file) files;
	unsigned nopen;
	struct parked_list parked;
};

struct pfs {
	struct vp_loop *loop;
	struct vser *dev;
	struct pfs_config cfg;
	struct fuse_session *se;
	struct vp_watch *watch;
	struct fuse_buf buf;
	struct pfs_port *ports; /* indexed by port number */
	unsigned max_ports;
	bool reap_scheduled;
	struct timespec mtime;
};

/* ---- names and attributes --------------------------------------------- */

void pfs_port_filename(unsigned nr, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	if (n == 0 || n >= len || name[0] == '.' || strchr(name, '/'))
		snprintf(buf, len, "port%u", nr);
	else
		memcpy(buf, name, n + 1);
}

static struct pfs_port *port_by_ino(struct pfs *fs, fuse_ino_t ino)
{
	unsigned nr;

	if (ino < PORT_INO_BASE)
		return NULL;
	nr = (unsigned)(ino - PORT_INO_BASE);
	if (nr >= fs->max_ports || !fs->ports[nr].port)
		return NULL;
	return &fs->ports[nr];
}

static fuse_ino_t port_ino(const struct pfs_port *pp)
{
	return PORT_INO_BASE + vser_port_nr(pp->port);
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
	} else {
		st->st_mode = S_IFREG | (fs->cfg.mode & 07777);
		st->st_nlink = 1;
	}
}

static struct pfs_port *port_by_name(struct pfs *fs, const char *name)
{
	char fname[VSER_NAME_MAX + 1];

	for (unsigned nr = 0; nr < fs->max_ports; nr++) {
		struct pfs_port *pp = &fs->ports[nr];

		if (!pp->port)
			continue;
		pfs_port_filename(nr, vser_port_name(pp->port), fname,
				  sizeof(fname));
		if (strcmp(fname, name) == 0)
			return pp;
	}
	return NULL;
}

/* ---- parked requests -------------------------------------------------- */

static unsigned port_revents(const struct pfs_port *pp)
{
	const struct vser_port *p = pp->port;
	unsigned ev = 0;

	if (vser_port_readable(p) || !vser_port_guest_connected(p))
		ev |= POLLIN;
	if (vser_port_writable(p))
		ev |= POLLOUT;
	if (!vser_port_guest_connected(p))
		ev |= POLLHUP;
	return ev;
}

static bool nonblocking(int flags)
{
	return flags & O_NONBLOCK;
}

/* Answer a read if it can be answered now; true if answered. */
static bool try_read(struct pfs_port *pp, fuse_req_t req, size_t size,
		     off_t off, int flags)
{
	struct vser_port *p = pp->port;
	struct iovec iov[PEEK_IOV];
	int niov = PEEK_IOV;
	size_t n;

	n = vser_port_peek(p, iov, &niov, size);
	if (n) {
		/* One copy: from guest memory (or the console ring) straight
		 * into the caller's buffer. */
		if (fuse_reply_iov(req, iov, niov) == 0)
			vser_port_consume(p, n);
		return true;
	}
	/* A continuation of a read the kernel split: what we had is gone
	 * with the first part; never block the tail. */
	if (off > 0 || !vser_port_guest_connected(p)) {
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
static bool try_write(struct pfs_port *pp, fuse_req_t req, const char *data,
		      size_t size, int flags, size_t *done)
{
	ssize_t n = vser_port_write(pp->port, data + *done, size - *done);

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

static bool try_fsync(struct pfs_port *pp, fuse_req_t req)
{
	if (vser_port_write_pending(pp->port) &&
	    vser_port_guest_connected(pp->port))
		return false;
	fuse_reply_err(req, 0);
	return true;
}

static void parked_free(struct pfs_port *pp, struct parked *pk)
{
	TAILQ_REMOVE(&pp->parked, pk, link);
	free(pk->data);
	free(pk);
}

/* Retry every parked request of the port, in arrival order. */
static void serve_parked(struct pfs_port *pp)
{
	struct parked *pk, *next;

	for (pk = TAILQ_FIRST(&pp->parked); pk; pk = next) {
		int flags = pk->file->open_flags;
		bool done;

		next = TAILQ_NEXT(pk, link);
		if (pk->interrupted) {
			/* Bytes already accepted are reported, as a pipe does. */
			if (pk->kind == PARK_WRITE && pk->done)
				fuse_reply_write(pk->req, pk->done);
			else
				fuse_reply_err(pk->req, EINTR);
			done = true;
		} else if (pk->kind == PARK_READ) {
			done = try_read(pp, pk->req, pk->size, pk->off, flags);
		} else if (pk->kind == PARK_WRITE) {
			done = try_write(pp, pk->req, pk->data, pk->size, flags,
					 &pk->done);
		} else {
			done = try_fsync(pp, pk->req);
		}
		if (done)
			parked_free(pp, pk);
	}
}

static void poll_notify(struct pfs_port *pp)
{
	unsigned ev = port_revents(pp);
	struct pfs_file *f;

	LIST_FOREACH(f, &pp->files, link) {
		if (f->ph && ev != f->polled) {
			fuse_lowlevel_notify_poll(f->ph);
			f->polled = ev;
		}
	}
}

static void port_changed(struct pfs_port *pp)
{
	serve_parked(pp);
	poll_notify(pp);
}

static void reap_cb(void *opaque)
{
	struct pfs *fs = opaque;

	fs->reap_scheduled = false;
	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr].port)
			serve_parked(&fs->ports[nr]);
}

/* libfuse calls this with the request's lock held, from inside
 * fuse_session_process_buf: replying here would free the request under
 * libfuse's feet.  Mark it; reap_cb answers EINTR from the loop. */
static void interrupt_cb(fuse_req_t req, void *data)
{
	struct parked *pk = data;
	struct pfs *fs = fuse_req_userdata(req);

	pk->interrupted = true;
	if (!fs->reap_scheduled && vp_defer(fs->loop, reap_cb, fs) == 0)
		fs->reap_scheduled = true;
}

static void park(struct pfs_port *pp, fuse_req_t req, enum park_kind kind,
		 struct pfs_file *f, size_t size, off_t off, const char *data,
		 size_t done)
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
	pk->file = f;
	pk->size = size;
	pk->off = off;
	pk->done = done;
	TAILQ_INSERT_TAIL(&pp->parked, pk, link);
	fuse_req_interrupt_func(req, interrupt_cb, pk);
	return;

err_free:
	free(pk);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

/* ---- device listener -------------------------------------------------- */

static void on_port_changed(struct vser_port *port, void *opaque)
{
	struct pfs *fs = opaque;
	struct pfs_port *pp = &fs->ports[vser_port_nr(port)];

	if (pp->port)
		port_changed(pp);
}

static void on_device_event(enum vser_dev_event ev, void *opaque)
{
	struct pfs *fs = opaque;

	(void)ev;
	for (unsigned nr = 0; nr < fs->max_ports; nr++)
		if (fs->ports[nr].port)
			port_changed(&fs->ports[nr]);
}

static const struct vser_listener pfs_listener = {
	.port_changed = on_port_changed,
	.device_event = on_device_event,
};

/* ---- FUSE operations -------------------------------------------------- */

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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pfs *fs = req_fs(req);
	struct fuse_entry_param e = { 0 };
	struct pfs_port *pp;

	if (parent != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	pp = port_by_name(fs, name);
	if (!pp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = port_ino(pp);
	e.generation = 1;
	fill_attr(fs, e.ino, &e.attr);
	/* No caching: ports come and go with hot-plug. */
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct stat st;

	(void)fi;
	if (ino != ROOT_INO && !port_by_ino(fs, ino)) {
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
	 * Anything else is not ours to change. */
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
	char *buf, fname[VSER_NAME_MAX + 1];
	size_t used = 0;
	struct stat st;

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
	/* Offsets: 1 after ".", 2 after "..", nr+3 after port nr. */
	for (off_t o = off; o < (off_t)fs->max_ports + 2; o++) {
		const char *name;
		fuse_ino_t e_ino;
		size_t need;

		if (o == 0) {
			name = ".";
			e_ino = ROOT_INO;
		} else if (o == 1) {
			name = "..";
			e_ino = ROOT_INO;
		} else {
			struct pfs_port *pp = &fs->ports[o - 2];

			if (!pp->port)
				continue;
			pfs_port_filename((unsigned)(o - 2),
					  vser_port_name(pp->port), fname,
					  sizeof(fname));
			name = fname;
			e_ino = port_ino(pp);
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

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct pfs_port *pp = port_by_ino(fs, ino);
	struct open_out out = { 0 };
	struct pfs_file *f;

	if (ino == ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!pp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->pp = pp;
	f->open_flags = fi->flags;
	out.fh = (uint64_t)(uintptr_t)f;
	out.open_flags = OPEN_DIRECT_IO | OPEN_NONSEEKABLE | OPEN_STREAM |
			 OPEN_NOFLUSH;
	if (fuse_reply_buf(req, (const char *)&out, sizeof(out)) != 0) {
		/* The caller is gone (interrupted open): no release will
		 * come for this file. */
		free(f);
		return;
	}
	LIST_INSERT_HEAD(&pp->files, f, link);
	if (pp->nopen++ == 0)
		vser_port_set_host_connected(pp->port, true);
	vp_debug("port %u: host open (%u open)", vser_port_nr(pp->port),
		 pp->nopen);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);
	struct pfs_port *pp = f->pp;

	(void)ino;
	LIST_REMOVE(f, link);
	if (f->ph)
		fuse_pollhandle_destroy(f->ph);
	free(f);
	if (--pp->nopen == 0)
		vser_port_set_host_connected(pp->port, false);
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);
	struct pfs_port *pp = f->pp;

	(void)ino;
	/* Later reads queue behind earlier parked ones: no overtaking. */
	if (!TAILQ_EMPTY(&pp->parked) && !nonblocking(fi->flags)) {
		park(pp, req, PARK_READ, f, size, off, NULL, 0);
		serve_parked(pp);
		return;
	}
	if (!try_read(pp, req, size, off, fi->flags))
		park(pp, req, PARK_READ, f, size, off, NULL, 0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pfs_file *f = req_file(fi);
	struct pfs_port *pp = f->pp;

	(void)ino;
	(void)off;
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	size_t done = 0;

	if (!try_write(pp, req, buf, size, fi->flags, &done))
		park(pp, req, PARK_WRITE, f, size, 0, buf, done);
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
	struct pfs_file *f = req_file(fi);

	(void)ino;
	(void)datasync;
	if (!try_fsync(f->pp, req))
		park(f->pp, req, PARK_FSYNC, f, 0, 0, NULL, 0);
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
	f->polled = port_revents(f->pp);
	fuse_reply_poll(req, f->polled);
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

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
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

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	/* Never ENOSYS: the kernel would turn xattrs off mount-wide. */
	fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, ENOTSUP);
}

static const struct fuse_lowlevel_ops pfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.poll = op_poll,
	.create = op_create,
	.mknod = op_mknod,
	.unlink = op_deny_name,
	.rmdir = op_deny_name,
	.mkdir = op_mkdir,
	.rename = op_rename,
	.link = op_link,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
};

/* ---- the session on our loop ------------------------------------------ */

static void fuse_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct pfs *fs = opaque;

	(void)w;
	(void)revents;
	/* Bounded, so a flood of requests cannot starve the guest. */
	for (unsigned budget = 64; budget; budget--) {
		int rc = fuse_session_receive_buf(fs->se, &fs->buf);

		if (rc == -EAGAIN)
			return;
		if (rc == -EINTR)
			continue;
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
	clock_gettime(CLOCK_REALTIME, &fs->mtime);
	fs->ports = calloc(fs->max_ports, sizeof(*fs->ports));
	if (!fs->ports)
		goto err_free_fs;
	for (unsigned nr = 0; nr < fs->max_ports; nr++) {
		fs->ports[nr].port = vser_port_by_nr(dev, nr);
		LIST_INIT(&fs->ports[nr].files);
		TAILQ_INIT(&fs->ports[nr].parked);
	}
	n = snprintf(opts, sizeof(opts),
		     "fsname=vportfs,subtype=vportfs,max_read=%u%s%s", MAX_IO,
		     cfg->allow_other ? ",allow_other" : "",
		     cfg->default_permissions ? ",default_permissions" : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		goto err_free_ports;
	fs->se = fuse_session_new(&args, &pfs_ops, sizeof(pfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		vp_err("cannot create the FUSE session");
		goto err_free_ports;
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
err_free_ports:
	free(fs->ports);
err_free_fs:
	free(fs);
	return NULL;
}

void pfs_free(struct pfs *fs)
{
	if (!fs)
		return;
	vser_set_listener(fs->dev, NULL, NULL);
	if (fs->reap_scheduled)
		vp_defer_cancel(fs->loop, reap_cb, fs);
	/* Nothing may stay blocked in the kernel once we are gone. */
	for (unsigned nr = 0; nr < fs->max_ports; nr++) {
		struct pfs_port *pp = &fs->ports[nr];
		struct parked *pk;
		struct pfs_file *f;

		while ((pk = TAILQ_FIRST(&pp->parked))) {
			if (pk->kind == PARK_WRITE)
				fuse_reply_err(pk->req, EPIPE);
			else if (pk->kind == PARK_READ)
				fuse_reply_buf(pk->req, NULL, 0);
			else
				fuse_reply_err(pk->req, 0);
			parked_free(pp, pk);
		}
		while ((f = LIST_FIRST(&pp->files))) {
			LIST_REMOVE(f, link);
			if (f->ph)
				fuse_pollhandle_destroy(f->ph);
			free(f);
		}
	}
	vp_watch_free(fs->loop, fs->watch);
	fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	free(fs->buf.mem);
	free(fs->ports);
	free(fs);
}
