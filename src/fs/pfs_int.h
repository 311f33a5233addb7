/*
 * The port filesystem's private parts, shared by its files:
 *   portfs.c  the FUSE session on our loop, mount and unmount, the ops table
 *   dir.c     the directory: lookup, attributes, hot-plug by touch and rm
 *   file.c    open files: parked requests, read, write, fsync, poll
 *   xattr.c   the user.vport.* attributes
 * Each open port file is one hub endpoint; this layer knows the hub only.
 */
#ifndef VPORTFS_FS_PFS_INT_H
#define VPORTFS_FS_PFS_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <time.h>

#include "vportfs/hub.h"
#include "vportfs/pfs.h"

#define PFS_ROOT_INO FUSE_ROOT_ID
#define PFS_EVENTS_INO 2
#define PFS_FIRST_PORT_INO 3 /* + the hub's port id */
#define PFS_EVENTS_NAME ".events"
#define PFS_MAX_IO (1u << 20)
#define PFS_XATTR_PREFIX "user.vport."

enum park_kind { PARK_READ, PARK_WRITE, PARK_FSYNC };

/* A request that cannot be answered yet: answered exactly once, later,
 * by serve_file (or at unmount). */
struct parked {
	TAILQ_ENTRY(parked) link;
	fuse_req_t req;
	enum park_kind kind;
	size_t size;
	off_t off;
	/* PARK_WRITE: a copy of the request's bytes from `skip` on (those
	 * not accepted when it was parked), and how many of the request's
	 * bytes were accepted so far. */
	char *data;
	size_t skip;
	size_t done;
	uint64_t mark; /* PARK_FSYNC: what hub_ep_sync compares with */
	bool interrupted;
};

TAILQ_HEAD(parked_list, parked);

/* An open file: a port file (one hub endpoint) or a .events reader. */
struct pfs_file {
	LIST_ENTRY(pfs_file) link; /* in pfs.files */
	struct pfs *fs;
	struct hub_ep *ep;                /* port files */
	struct hub_events_reader *events; /* .events */
	bool reads;                       /* opened for reading */
	bool writer;                      /* opened for writing */
	struct fuse_pollhandle *ph;
	unsigned polled; /* revents we last answered a poll with */
	struct parked_list parked;
};

struct pfs {
	struct vp_loop *loop;
	struct hub *hub;
	struct pfs_config cfg;
	struct fuse_session *se;
	struct vp_watch *watch;
	struct fuse_buf buf;
	LIST_HEAD(, pfs_file) files; /* every open file */
	unsigned nevent_files;
	bool reap_scheduled;
	struct timespec mtime;
};

static inline struct pfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A port inode's port, plugged or unplugged but still open; NULL if
 * none. */
struct hub_port *pfs_port_of_ino(struct pfs *fs, fuse_ino_t ino);
fuse_ino_t pfs_ino_of_port(const struct hub_port *hp);

/* file.c */
void pfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pfs_op_release(fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi);
void pfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
void pfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		  size_t size, off_t off, struct fuse_file_info *fi);
void pfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi);
void pfs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct fuse_pollhandle *ph);
/* Retry what waits on every open file (of .events files only), and
 * update poll waiters. */
void pfs_files_changed(struct pfs *fs, bool events_only);
/* Answer everything parked (EOF, EPIPE, EIO) and close every file. */
void pfs_files_shutdown(struct pfs *fs);

/* dir.c */
void pfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void pfs_op_getattr(fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi);
void pfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		    int to_set, struct fuse_file_info *fi);
void pfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void pfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev);
void pfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, struct fuse_file_info *fi);
void pfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void pfs_op_deny_name(fuse_req_t req, fuse_ino_t parent, const char *name);
void pfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode);
void pfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		   fuse_ino_t newparent, const char *newname,
		   unsigned int flags);
void pfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		 const char *newname);
void pfs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		    const char *name);

/* xattr.c */
void pfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     size_t size);
void pfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void pfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags);
void pfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
