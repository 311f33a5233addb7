/*
 * The port filesystem: a FUSE mount with one regular file per port, whose
 * read/write/poll behave like the guest's /dev/virtio-ports/<name>.
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

struct pfs;
struct vser;

struct pfs_config {
	const char *mountpoint;
	bool allow_other;
	bool default_permissions;
	uid_t uid;   /* owner of every file */
	gid_t gid;
	mode_t mode; /* permission bits of port files */
	bool session;   /* -o session: an fd belongs to one guest session */
	bool exclusive; /* -o exclusive: one open of any kind per port */
	/* Called when the mount goes away under us (fusermount -u). */
	void (*on_unmounted)(void *opaque);
	void *opaque;
};

/* Mounts; NULL on failure (logged).  The device must outlive the pfs; the
 * pfs becomes the device's listener. */
struct pfs *pfs_new(struct vp_loop *loop, struct vser *dev,
		    const struct pfs_config *cfg);
/* Answers every parked request (EOF / EPIPE), unmounts.  NULL accepted. */
void pfs_free(struct pfs *fs);

/* The file name of a port: its name if usable as one, else "port<nr>". */
void pfs_port_filename(unsigned nr, const char *name, char *buf, size_t len);

#endif
