/*
 * The fd and stdio backends: descriptors the daemon inherited.  fd=N is
 * one descriptor both ways (one end of a socketpair a parent process made,
 * seed 004); in=N,out=M are two.  stdio is in=0,out=1.  They are there
 * from the start, so they keep the port's host side open; when the input
 * ends, output goes on (on one socket both ways, the peer left and the
 * chardev is done).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chr_int.h"

struct fds {
	int in, out;
	bool owned; /* fd: ours to close; stdio: not */
	bool started;
	int saved_fl[2]; /* stdio: the flags to give back */
};

static int parse_fd(struct chr_spec *spec, const char *key, int *out, char *err,
		    size_t errlen)
{
	uint64_t v;
	int rc;

	*out = -1;
	if (!chr_spec_str(spec, key))
		return 0;
	rc = chr_spec_u64(spec, key, 0, INT_MAX, &v, err, errlen);
	if (rc)
		return rc;
	*out = (int)v;
	return 0;
}

static int fd_parse(struct chr *chr, struct chr_spec *spec, char *err,
		    size_t errlen)
{
	struct fds *f = chr_priv(chr);
	int both, rc;

	f->owned = true;
	rc = parse_fd(spec, "fd", &both, err, errlen);
	if (!rc)
		rc = parse_fd(spec, "in", &f->in, err, errlen);
	if (!rc)
		rc = parse_fd(spec, "out", &f->out, err, errlen);
	if (rc)
		return rc;
	if (both >= 0 && (f->in >= 0 || f->out >= 0))
		return chr_errf(chr, EINVAL, err, errlen,
				"fd= cannot be given with in= or out=");
	if (both >= 0) {
		f->in = f->out = both;
		return 0;
	}
	if (f->in < 0 || f->out < 0)
		return chr_errf(chr, EINVAL, err, errlen,
				"give fd=N, or both in=N and out=M");
	return 0;
}

static int check_fd(struct chr *chr, int fd, char *err, size_t errlen)
{
	if (fcntl(fd, F_GETFD) < 0)
		return chr_errf(chr, EBADF, err, errlen,
				"descriptor %d is not open", fd);
	return 0;
}

static int fd_start(struct chr *chr, char *err, size_t errlen)
{
	struct fds *f = chr_priv(chr);
	int rc = check_fd(chr, f->in, err, errlen);

	if (!rc)
		rc = check_fd(chr, f->out, err, errlen);
	if (rc)
		return rc;
	f->saved_fl[0] = fcntl(f->in, F_GETFL);
	f->saved_fl[1] = fcntl(f->out, F_GETFL);
	f->started = true;
	if (f->owned) {
		/* Not to be inherited by anything we run. */
		fcntl(f->in, F_SETFD, FD_CLOEXEC);
		fcntl(f->out, F_SETFD, FD_CLOEXEC);
	}
	chr_peer_up(chr, f->in, f->out, f->owned ? CHR_PEER_OWNS_FDS : 0);
	return 0;
}

static void fd_stop(struct chr *chr)
{
	struct fds *f = chr_priv(chr);

	/* stdio is shared with whoever started us: leave it blocking. */
	if (!f->owned && f->started) {
		fcntl(f->in, F_SETFL, f->saved_fl[0]);
		fcntl(f->out, F_SETFL, f->saved_fl[1]);
	}
}

static const char *const fd_options[] = {"fd", "in", "out", NULL};

const struct chr_backend chr_fd_backend = {
	.name = "fd",
	.options = fd_options,
	.priv_size = sizeof(struct fds),
	.parse = fd_parse,
	.start = fd_start,
	.stop = fd_stop,
};

static int stdio_parse(struct chr *chr, struct chr_spec *spec, char *err,
		       size_t errlen)
{
	struct fds *f = chr_priv(chr);

	(void)spec;
	(void)err;
	(void)errlen;
	f->in = STDIN_FILENO;
	f->out = STDOUT_FILENO;
	f->owned = false;
	return 0;
}

static const char *const stdio_options[] = {NULL};

const struct chr_backend chr_stdio_backend = {
	.name = "stdio",
	.options = stdio_options,
	.priv_size = sizeof(struct fds),
	.parse = stdio_parse,
	.start = fd_start,
	.stop = fd_stop,
};

int chr_check_inherited(const char *text, char *err, size_t errlen)
{
	static const char *const keys[] = { "fd", "in", "out" };
	struct chr_spec spec;
	char ignored[128];
	int rc = 0;

	if (chr_spec_parse(text, &spec, ignored, sizeof(ignored)))
		return 0;
	/* stdio: standard input and output, which a daemon may be started
	 * without. */
	for (int fd = 0; fd < 2 && !strcmp(spec.backend, "stdio"); fd++) {
		if (!rc && fcntl(fd, F_GETFD) < 0) {
			snprintf(err, errlen,
				 "chardev %s: standard %s is not open",
				 spec.id, fd ? "output" : "input");
			rc = -EBADF;
		}
	}
	for (size_t i = 0; !rc && !strcmp(spec.backend, "fd") &&
			   i < sizeof(keys) / sizeof(keys[0]);
	     i++) {
		uint64_t v;

		if (!chr_spec_str(&spec, keys[i]) ||
		    chr_spec_u64(&spec, keys[i], 0, INT_MAX, &v, ignored,
				 sizeof(ignored)))
			continue;
		if (fcntl((int)v, F_GETFD) < 0) {
			snprintf(err, errlen,
				 "chardev %s: %s=%llu: descriptor %llu is not "
				 "open (not inherited)",
				 spec.id, keys[i], (unsigned long long)v,
				 (unsigned long long)v);
			rc = -EBADF;
		}
	}
	chr_spec_free(&spec);
	return rc;
}
