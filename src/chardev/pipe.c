/*
 * The pipe backend: named pipes the user made (mkfifo).  As in QEMU,
 * path=P uses P.in (host -> guest) and P.out (guest -> host) when both
 * exist, else P itself both ways (then the guest's output comes back to
 * it as input, as in QEMU: use the pair).
 *
 * The design choice that matters: each fifo is opened read-write, so
 * opening never blocks and the pipe never "closes" when the program on
 * the other side goes away.  The fifo is always there: it keeps the port's
 * host side open, and while nobody reads P.out the pipe's buffer fills,
 * then the port's ring, then the guest's, and the guest writer blocks (on
 * this port only).  When a reader comes, everything arrives (seed 000).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chr_int.h"

struct pipe_be {
	char *path;
};

static int pipe_parse(struct chr *chr, struct chr_spec *spec, char *err,
		      size_t errlen)
{
	struct pipe_be *p = chr_priv(chr);
	const char *path = chr_spec_str(spec, "path");

	if (!path || !*path)
		return chr_errf(chr, EINVAL, err, errlen, "path= is required");
	p->path = strdup(path);
	if (!p->path)
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

/* Open a fifo read-write; -errno (-EINVAL: not a fifo). */
static int open_fifo(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISFIFO(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int pipe_start(struct chr *chr, char *err, size_t errlen)
{
	struct pipe_be *p = chr_priv(chr);
	size_t len = strlen(p->path) + 5;
	char *in_path = malloc(len), *out_path = malloc(len);
	const char *culprit;
	int in = -1, out = -1, rc = 0;

	if (!in_path || !out_path) {
		rc = chr_errf(chr, ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	snprintf(in_path, len, "%s.in", p->path);
	snprintf(out_path, len, "%s.out", p->path);
	if (access(in_path, F_OK) == 0 && access(out_path, F_OK) == 0) {
		culprit = in_path;
		in = open_fifo(in_path);
		if (in >= 0) {
			culprit = out_path;
			out = open_fifo(out_path);
		}
	} else {
		culprit = p->path;
		in = out = open_fifo(p->path);
	}
	if (in < 0 || out < 0) {
		int e = in < 0 ? -in : -out;

		if (in >= 0)
			close(in);
		rc = chr_errf(chr, e, err, errlen, "%s: %s", culprit,
			      e == EINVAL ? "not a named pipe (mkfifo)"
					  : strerror(e));
		goto out;
	}
	chr_peer_up(chr, in, out, CHR_PEER_OWNS_FDS);
out:
	free(in_path);
	free(out_path);
	return rc;
}

static void pipe_stop(struct chr *chr)
{
	struct pipe_be *p = chr_priv(chr);

	free(p->path);
	p->path = NULL;
}

static const char *const pipe_options[] = {"path", NULL};

const struct chr_backend chr_pipe_backend = {
	.name = "pipe",
	.options = pipe_options,
	.priv_size = sizeof(struct pipe_be),
	.parse = pipe_parse,
	.start = pipe_start,
	.stop = pipe_stop,
};
