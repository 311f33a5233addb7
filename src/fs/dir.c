/*
 * The mount's one directory: the root, `.events` and one file per port
 * (see src/fs/pfs_int.h).
 *
 * The design choice that matters: nothing is cached.  Ports come and go
 * with hot-plug, so every lookup asks the hub, entries and attributes
 * have a zero timeout, and a port's inode is made of the hub's port id,
 * never reused: an fd of an unplugged port can never reach a new port of
 * the same name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pfs_int.h"

fuse_ino_t pfs_ino_of_port(const struct hub_port *hp)
{
	return PFS_FIRST_PORT_INO + hub_port_id(hp);
}

struct hub_port *pfs_port_of_ino(struct pfs *fs, fuse_ino_t ino)
{
	if (ino < PFS_FIRST_PORT_INO)
		return NULL;
	return hub_port_by_id(fs->hub, ino - PFS_FIRST_PORT_INO);
}

static void fill_attr(struct pfs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->cfg.uid;
	st->st_gid = fs->cfg.gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mtime;
	st->st_blksize = 4096;
	if (ino == PFS_ROOT_INO) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == PFS_EVENTS_INO) {
		st->st_mode = S_IFREG | (fs->cfg.mode & 0444);
		st->st_nlink = 1;
	} else {
		st->st_mode = S_IFREG | (fs->cfg.mode & 07777);
		st->st_nlink = 1;
	}
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

void pfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp;

	if (parent != PFS_ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strcmp(name, PFS_EVENTS_NAME) == 0) {
		reply_entry(req, fs, PFS_EVENTS_INO);
		return;
	}
	hp = hub_port_by_label(fs->hub, name);
	if (!hp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, fs, pfs_ino_of_port(hp));
}

void pfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	struct stat st;

	(void)fi;
	if (ino != PFS_ROOT_INO && ino != PFS_EVENTS_INO &&
	    !pfs_port_of_ino(fs, ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fs, ino, &st);
	fuse_reply_attr(req, &st, 0);
}

void pfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
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
	pfs_op_getattr(req, ino, fi);
}

void pfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pfs *fs = req_fs(req);
	off_t end = (off_t)hub_max_ports(fs->hub) + 3;
	size_t used = 0;
	struct stat st;
	char *buf;

	(void)fi;
	if (ino != PFS_ROOT_INO) {
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
	for (off_t o = off; o < end; o++) {
		const char *name;
		fuse_ino_t e_ino;
		size_t need;

		if (o == 0) {
			name = ".";
			e_ino = PFS_ROOT_INO;
		} else if (o == 1) {
			name = "..";
			e_ino = PFS_ROOT_INO;
		} else if (o == 2) {
			name = PFS_EVENTS_NAME;
			e_ino = PFS_EVENTS_INO;
		} else {
			struct hub_port *hp =
				hub_port_at(fs->hub, (unsigned)(o - 3));

			if (!hp)
				continue;
			name = hub_port_label(hp);
			e_ino = pfs_ino_of_port(hp);
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
void pfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp;
	int rc;

	(void)rdev;
	if (parent != PFS_ROOT_INO || !S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = hub_port_add(fs->hub, name, &hp);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, fs, pfs_ino_of_port(hp));
}

void pfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
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
void pfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp;

	if (parent != PFS_ROOT_INO || strcmp(name, PFS_EVENTS_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	hp = hub_port_by_label(fs->hub, name);
	if (!hp) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	hub_port_remove(hp);
	fuse_reply_err(req, 0);
}

void pfs_op_deny_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

void pfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode)
{
	(void)mode;
	pfs_op_deny_name(req, parent, name);
}

void pfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		   fuse_ino_t newparent, const char *newname,
		   unsigned int flags)
{
	(void)newparent;
	(void)newname;
	(void)flags;
	pfs_op_deny_name(req, parent, name);
}

void pfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		 const char *newname)
{
	(void)ino;
	pfs_op_deny_name(req, newparent, newname);
}

void pfs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		    const char *name)
{
	(void)link;
	pfs_op_deny_name(req, parent, name);
}
