/*
 * vportfs-nullfs: the ceiling of a port file, for scripts/bench.sh.  A
 * FUSE mount with one file, "null", served exactly as vportfs serves a
 * port (src/fs/portfs.c, src/fs/file.c) but doing nothing else: a read
 * returns the bench pattern (byte[i] = i % 251 of this open file's
 * stream), a write is accepted and discarded.
 *
 *   vportfs-nullfs MOUNTPOINT     (foreground; SIGTERM/SIGINT unmount)
 *
 * The one design choice that matters: everything that shapes the
 * daemon's FUSE traffic is copied, so that the difference between the two
 * is the daemon's own work.  Same init (max_read/max_write 1 MiB, no
 * splice, atomic O_TRUNC), same mount options, the same open reply sent by
 * hand (STREAM | DIRECT_IO | NONSEEKABLE | NOFLUSH), the same
 * single-threaded, non-blocking /dev/fuse fd read one request per
 * wakeup.  Not part of the product: a bench tool.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NULL_MAX_IO (1u << 20) /* PFS_MAX_IO */
#define PATTERN_MOD 251u
#define FILE_INO    2
#define FILE_NAME   "null"

/* src/fs/file.c's open flags, answered by hand: libfuse has no STREAM. */
#define OPEN_DIRECT_IO	 (1u << 0)
#define OPEN_NONSEEKABLE (1u << 2)
#define OPEN_STREAM	 (1u << 4)
#define OPEN_NOFLUSH	 (1u << 5)

struct open_out {
	uint64_t fh;
	uint32_t open_flags;
	uint32_t padding;
};

/* One open file: where its read stream is. */
struct null_file {
	uint64_t read_off;
};

/* NULL_MAX_IO bytes of the pattern from any offset below PATTERN_MOD. */
static uint8_t pattern[NULL_MAX_IO + PATTERN_MOD];

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* As src/fs/portfs.c's op_init, flag for flag. */
	conn->max_write = NULL_MAX_IO;
	conn->max_read = NULL_MAX_IO;
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {0};

	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = FILE_INO;
	e.generation = 1;
	fill_attr(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

/* Truncation (a shell's `>`) and timestamps change nothing. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	op_getattr(req, ino, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct null_file *f;
	struct open_out out = {
		.open_flags = OPEN_DIRECT_IO | OPEN_NONSEEKABLE | OPEN_STREAM |
			      OPEN_NOFLUSH,
	};

	(void)fi;
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	out.fh = (uint64_t)(uintptr_t)f;
	if (fuse_reply_buf(req, (const char *)&out, sizeof(out)) != 0)
		free(f);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	free((struct null_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct null_file *f = (struct null_file *)(uintptr_t)fi->fh;

	(void)ino;
	(void)off; /* a stream: the kernel's offset means nothing */
	if (size > NULL_MAX_IO)
		size = NULL_MAX_IO;
	fuse_reply_buf(req, (const char *)pattern + f->read_off % PATTERN_MOD,
		       size);
	f->read_off += size;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops null_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
};

/* src/fs/portfs.c's fuse_cb on a poll loop: one request per wakeup (the
 * poll is level-triggered).  Returns false once the session is over. */
static bool serve(struct fuse_session *se, struct fuse_buf *buf)
{
	int rc;

	do
		rc = fuse_session_receive_buf(se, buf);
	while (rc == -EINTR);
	if (rc == -EAGAIN)
		return true;
	if (rc <= 0 || fuse_session_exited(se))
		return false;
	fuse_session_process_buf(se, buf);
	return true;
}

int main(int argc, char **argv)
{
	char opts[128];
	char *fargv[] = {argv[0], "-o", opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_buf buf = {0};
	struct fuse_session *se;
	int status = 1, fd;

	if (argc != 2) {
		fputs("usage: vportfs-nullfs MOUNTPOINT\n", stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i % PATTERN_MOD);
	/* The daemon's options without allow_other: no default_permissions
	 * either (the daemon adds it only with allow_other or when asked). */
	snprintf(opts, sizeof(opts),
		 "fsname=vportfs-nullfs,subtype=vportfs-nullfs,max_read=%u",
		 NULL_MAX_IO);
	se = fuse_session_new(&args, &null_ops, sizeof(null_ops), NULL);
	fuse_opt_free_args(&args);
	if (!se) {
		fputs("vportfs-nullfs: cannot create the FUSE session\n",
		      stderr);
		return 1;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, argv[1]) != 0)
		goto out_signals;
	fd = fuse_session_fd(se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (fuse_session_exited(se))
			break;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("vportfs-nullfs: poll");
			goto out_unmount;
		}
		if (!serve(se, &buf))
			break;
	}
	status = 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	free(buf.mem);
	return status;
}
