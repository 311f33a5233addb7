/*
 * The port filesystem: a FUSE mount with one regular file per port, whose
 * read/write/poll behave like the guest's /dev/virtio-ports/<name>.  One
 * endpoint provider of the port hub: every open port file is one hub
 * endpoint; sessions, sharing and the connected rule are the hub's.
 *
 * Driven from the daemon's own loop: the /dev/fuse fd is non-blocking and
 * watched through struct vp_loop; calls that must wait (read with no data,
 * write with no room, fsync) are parked and answered later, exactly once,
 * by this module: when the port changes, on a signal (EINTR), or at
 * unmount.
 */
#ifndef VPORTFS_PFS_H
#define VPORTFS_PFS_H

#include <stdbool.h>
#include <sys/types.h>

#include "vportfs/loop.h"

struct hub;
struct pfs;

struct pfs_config {
	const char *mountpoint;
	bool allow_other;
	bool default_permissions;
	uid_t uid;   /* owner of every file */
	gid_t gid;
	mode_t mode; /* permission bits of port files */
	/* Called when the mount goes away under us (fusermount -u). */
	void (*on_unmounted)(void *opaque);
	void *opaque;
};

/* Mounts; NULL on failure (logged, naming what failed).  The hub and the
 * loop must outlive the pfs.  A port's file is named by its hub label. */
struct pfs *pfs_new(struct vp_loop *loop, struct hub *hub,
		    const struct pfs_config *cfg);
/* Answers every parked request (EOF / EPIPE / EIO), closes every file
 * (detaching its endpoint), unmounts.  NULL accepted. */
void pfs_free(struct pfs *fs);

#endif
