/*
 * The log backend: guest output appended to path=, which is rotated when
 * it would grow past max-size= (path -> path.1 -> ... -> path.N, keeping
 * max-backups= old files), and reopened on SIGHUP after logrotate moved it.
 * A log never makes the guest wait: it is always there (the port's host
 * side stays open), a regular file takes what it is given, and a log that
 * fails (disk full) is reported once, counted and detached, until the next
 * SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chr_int.h"
#include "vportfs/log.h"

#define LOG_BACKUPS_DEFAULT 5
#define LOG_BACKUPS_MAX	    99

struct logfile {
	char *path;
	uint64_t max_size; /* 0: never rotate */
	unsigned backups;
	int fd;	       /* the peer's out fd, ours to rotate */
	uint64_t size; /* of the file at fd */
};

static int log_parse(struct chr *chr, struct chr_spec *spec, char *err,
		     size_t errlen)
{
	struct logfile *lg = chr_priv(chr);
	const char *path = chr_spec_str(spec, "path");
	uint64_t backups;
	int rc;

	lg->fd = -1;
	if (!path || !*path)
		return chr_errf(chr, EINVAL, err, errlen, "path= is required");
	rc = chr_spec_size(spec, "max-size", 0, UINT64_MAX / 2, &lg->max_size,
			   err, errlen);
	if (!rc)
		rc = chr_spec_u64(spec, "max-backups", LOG_BACKUPS_DEFAULT,
				  LOG_BACKUPS_MAX, &backups, err, errlen);
	if (rc)
		return rc;
	lg->backups = (unsigned)backups;
	lg->path = strdup(path);
	if (!lg->path)
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

/* Open path for appending, non-blocking: a fifo or a terminal there must
 * not block the loop (at start, or at SIGHUP); -errno. */
static int log_open(struct logfile *lg)
{
	struct stat st;
	int fd = open(lg->path,
		      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK,
		      0666);

	if (fd < 0)
		return -errno;
	lg->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	lg->fd = fd;
	return 0;
}

static int log_start(struct chr *chr, char *err, size_t errlen)
{
	struct logfile *lg = chr_priv(chr);
	int rc = log_open(lg);

	if (rc)
		return chr_errf(chr, -rc, err, errlen, "%s: %s", lg->path,
				strerror(-rc));
	chr_peer_up(chr, -1, lg->fd, CHR_PEER_OWNS_FDS);
	return 0;
}

static void log_stop(struct chr *chr)
{
	struct logfile *lg = chr_priv(chr);

	free(lg->path);
	lg->path = NULL;
}

/* path.k -> path.k+1 for the oldest first, path -> path.1, and a new
 * path.  -errno if the new file cannot be opened. */
static int rotate(struct chr *chr, struct logfile *lg)
{
	size_t len = strlen(lg->path) + 8;
	char *from = malloc(len), *to = malloc(len);
	int rc = -ENOMEM;

	if (!from || !to)
		goto out;
	if (lg->backups == 0) {
		unlink(lg->path);
	} else {
		snprintf(from, len, "%s.%u", lg->path, lg->backups);
		unlink(from);
		for (unsigned k = lg->backups; k > 1; k--) {
			snprintf(from, len, "%s.%u", lg->path, k - 1);
			snprintf(to, len, "%s.%u", lg->path, k);
			rename(from, to); /* a missing one is fine */
		}
		snprintf(to, len, "%s.1", lg->path);
		if (rename(lg->path, to) && errno != ENOENT)
			vp_warn_rl("chardev %s: rotating %s: %s", chr_id(chr),
				   lg->path, strerror(errno));
	}
	rc = log_open(lg);
	if (!rc)
		chr_peer_set_out(chr, lg->fd);
out:
	free(from);
	free(to);
	return rc;
}

static ssize_t log_sink(struct chr *chr, const struct iovec *iov, int niov)
{
	struct logfile *lg = chr_priv(chr);
	struct iovec part[2];
	uint64_t room;
	size_t left;
	int n = 0;
	ssize_t w;

	if (niov == 0) /* nothing of its own to flush */
		return 0;
	if (lg->max_size && lg->size >= lg->max_size) {
		int rc = rotate(chr, lg);

		if (rc)
			return rc;
	}
	/* Never past max-size: the rest goes into the next file. */
	room = lg->max_size ? lg->max_size - lg->size : UINT64_MAX;
	left = room > SIZE_MAX ? SIZE_MAX : (size_t)room;
	for (int i = 0; i < niov && i < 2 && left; i++, n++) {
		part[i] = iov[i];
		if (part[i].iov_len > left)
			part[i].iov_len = left;
		left -= part[i].iov_len;
	}
	w = writev(lg->fd, part, n);
	if (w < 0)
		return -errno;
	lg->size += (uint64_t)w;
	return w;
}

static void log_reopen(struct chr *chr)
{
	struct logfile *lg = chr_priv(chr);
	int rc = log_open(lg);

	if (rc) {
		vp_warn("chardev %s: reopening %s: %s", chr_id(chr), lg->path,
			strerror(-rc));
		return;
	}
	chr_peer_set_out(chr, lg->fd);
}

static const char *const log_options[] = {"path", "max-size", "max-backups", NULL};

const struct chr_backend chr_log_backend = {
	.name = "log",
	.options = log_options,
	.priv_size = sizeof(struct logfile),
	.parse = log_parse,
	.start = log_start,
	.stop = log_stop,
	.reopen = log_reopen,
	.sink = log_sink,
};
