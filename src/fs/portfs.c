/*
 * The port filesystem (see include/vportfs/pfs.h): the FUSE session on
 * the daemon's loop, the mount, and the ops table.  The other files of
 * src/fs/ hold the operations, by concern (src/fs/pfs_int.h).
 *
 * The design choice that matters: libfuse's own loop is not used.  The
 * /dev/fuse fd is non-blocking and watched on our loop like any other, so
 * a request is one more event among the guest's kicks, and a request
 * that must wait is parked instead of holding a thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfs_int.h"
#include "vportfs/log.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = PFS_MAX_IO;
	conn->max_read = PFS_MAX_IO; /* must match the max_read mount option */
	/* Our data never goes through a pipe: keep libfuse off splice. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

static const struct fuse_lowlevel_ops pfs_ops = {
	.init = op_init,
	.lookup = pfs_op_lookup,
	.getattr = pfs_op_getattr,
	.setattr = pfs_op_setattr,
	.readdir = pfs_op_readdir,
	.mknod = pfs_op_mknod,
	.create = pfs_op_create,
	.unlink = pfs_op_unlink,
	.rmdir = pfs_op_deny_name,
	.mkdir = pfs_op_mkdir,
	.rename = pfs_op_rename,
	.link = pfs_op_link,
	.symlink = pfs_op_symlink,
	.open = pfs_op_open,
	.release = pfs_op_release,
	.read = pfs_op_read,
	.write = pfs_op_write,
	.flush = pfs_op_flush,
	.fsync = pfs_op_fsync,
	.poll = pfs_op_poll,
	.getxattr = pfs_op_getxattr,
	.listxattr = pfs_op_listxattr,
	.setxattr = pfs_op_setxattr,
	.removexattr = pfs_op_removexattr,
};

/* ---- the hub tells us ---------------------------------------------------- */

static void on_events_ready(void *opaque)
{
	pfs_files_changed(opaque, true);
}

static const struct hub_observer_ops pfs_observer = {
	.events_ready = on_events_ready,
};

/* ---- the session on our loop ------------------------------------------- */

/* One request per call.  The watch is level-triggered: if more requests
 * wait, the loop calls us again at once, after its deferred calls (the
 * used-ring interrupts this request caused) have gone out.  Reading on
 * until EAGAIN cost one read(2) per wakeup that found nothing: most
 * wakeups carry a single request (a reader's next read, a writer's next
 * write).  It also keeps a flood of requests from starving the guest. */
static void fuse_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct pfs *fs = opaque;
	int rc;

	(void)w;
	(void)revents;
	do
		rc = fuse_session_receive_buf(fs->se, &fs->buf);
	while (rc == -EINTR);
	if (rc == -EAGAIN)
		return;
	if (rc < 0 && rc != -ENODEV && !fuse_session_exited(fs->se)) {
		/* Transient (ENOMEM...): try again on the next wakeup. */
		vp_warn_rl("reading /dev/fuse: %s", strerror(-rc));
		return;
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

struct pfs *pfs_new(struct vp_loop *loop, struct hub *hub,
		    const struct pfs_config *cfg)
{
	char opts[256];
	char *argv[] = { "vportfs", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct pfs *fs;
	int fd, n;

	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		vp_err("cannot mount on %s: out of memory", cfg->mountpoint);
		return NULL;
	}
	fs->loop = loop;
	fs->hub = hub;
	fs->cfg = *cfg;
	LIST_INIT(&fs->files);
	clock_gettime(CLOCK_REALTIME, &fs->mtime);
	/* We check no permissions ourselves: letting other users in without
	 * the kernel checking modes would open every port to everybody. */
	n = snprintf(opts, sizeof(opts),
		     "fsname=vportfs,subtype=vportfs,max_read=%u%s%s",
		     PFS_MAX_IO, cfg->allow_other ? ",allow_other" : "",
		     cfg->default_permissions || cfg->allow_other
			     ? ",default_permissions"
			     : "");
	if (n < 0 || (size_t)n >= sizeof(opts)) {
		vp_err("cannot mount on %s: mount options too long",
		       cfg->mountpoint);
		goto err_free;
	}
	fs->se = fuse_session_new(&args, &pfs_ops, sizeof(pfs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		vp_err("cannot create the FUSE session");
		goto err_free;
	}
	if (fuse_session_mount(fs->se, cfg->mountpoint) != 0) {
		vp_err("cannot mount on %s", cfg->mountpoint);
		goto err_destroy;
	}
	fd = fuse_session_fd(fs->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fs->watch = vp_watch_new(loop, fd, VP_EV_READ, fuse_cb, fs);
	if (!fs->watch) {
		vp_err("cannot watch the FUSE session: out of memory");
		goto err_unmount;
	}
	if (hub_observer_add(hub, &pfs_observer, fs)) {
		vp_err("cannot mount on %s: the hub has too many observers",
		       cfg->mountpoint);
		goto err_unwatch;
	}
	return fs;

err_unwatch:
	vp_watch_free(loop, fs->watch);
err_unmount:
	fuse_session_unmount(fs->se);
err_destroy:
	fuse_session_destroy(fs->se);
err_free:
	free(fs);
	return NULL;
}

void pfs_free(struct pfs *fs)
{
	if (!fs)
		return;
	hub_observer_remove(fs->hub, &pfs_observer, fs);
	pfs_files_shutdown(fs);
	vp_watch_free(fs->loop, fs->watch);
	fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	free(fs->buf.mem);
	free(fs);
}
