/*
 * The file backend: guest output appended to (append=on) or written over
 * (append=off, the default, as in QEMU) path=; optionally the guest is fed
 * input-path= once, to its end.  A file is always there, so it keeps the
 * port's host side open.  SIGHUP reopens path= (appending: what was
 * written stays), after logrotate moved it away or after a failure
 * detached the chardev.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chr_int.h"
#include "vportfs/log.h"

struct file {
	char *out_path;
	char *in_path;
	bool append;
};

static int file_parse(struct chr *chr, struct chr_spec *spec, char *err,
		      size_t errlen)
{
	struct file *f = chr_priv(chr);
	const char *path = chr_spec_str(spec, "path");
	const char *in = chr_spec_str(spec, "input-path");
	int rc;

	if (!path || !*path)
		return chr_errf(chr, EINVAL, err, errlen, "path= is required");
	rc = chr_spec_bool(spec, "append", false, &f->append, err, errlen);
	if (rc)
		return rc;
	f->out_path = strdup(path);
	f->in_path = in && *in ? strdup(in) : NULL;
	if (!f->out_path || (in && *in && !f->in_path))
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

static int open_out(const char *path, bool append)
{
	return open(path,
		    O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK |
			    (append ? O_APPEND : O_TRUNC),
		    0666);
}

static int file_start(struct chr *chr, char *err, size_t errlen)
{
	struct file *f = chr_priv(chr);
	int out, in = -1;

	/* Input first: a failure must not have truncated path= already. */
	if (f->in_path) {
		in = open(f->in_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (in < 0)
			return chr_errf(chr, errno, err, errlen, "%s: %s",
					f->in_path, strerror(errno));
	}
	out = open_out(f->out_path, f->append);
	if (out < 0) {
		int e = errno;

		if (in >= 0)
			close(in);
		return chr_errf(chr, e, err, errlen, "%s: %s", f->out_path,
				strerror(e));
	}
	chr_peer_up(chr, in, out, CHR_PEER_OWNS_FDS);
	return 0;
}

static void file_stop(struct chr *chr)
{
	struct file *f = chr_priv(chr);

	free(f->out_path);
	free(f->in_path);
	f->out_path = f->in_path = NULL;
}

static void file_reopen(struct chr *chr)
{
	struct file *f = chr_priv(chr);
	int out = open_out(f->out_path, true);

	if (out < 0) {
		vp_warn("chardev %s: reopening %s: %s", chr_id(chr),
			f->out_path, strerror(errno));
		return;
	}
	chr_peer_set_out(chr, out);
}

static const char *const file_options[] = {"path", "append", "input-path", NULL};

const struct chr_backend chr_file_backend = {
	.name = "file",
	.options = file_options,
	.priv_size = sizeof(struct file),
	.parse = file_parse,
	.start = file_start,
	.stop = file_stop,
	.reopen = file_reopen,
};
