/*
 * The null backend: takes every byte the guest sends and drops it, feeds
 * nothing.  Like any sink that is always there, it keeps the port's host
 * side open, so a guest writer never blocks on the port.
 */
#include "chr_int.h"

static int null_parse(struct chr *chr, struct chr_spec *spec, char *err,
		      size_t errlen)
{
	(void)chr;
	(void)spec;
	(void)err;
	(void)errlen;
	return 0;
}

static int null_start(struct chr *chr, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	chr_peer_up(chr, -1, -1, 0);
	return 0;
}

static ssize_t null_sink(struct chr *chr, const struct iovec *iov, int niov)
{
	size_t n = 0;

	(void)chr;
	for (int i = 0; i < niov; i++)
		n += iov[i].iov_len;
	return (ssize_t)n;
}

static const char *const null_options[] = {NULL};

const struct chr_backend chr_null_backend = {
	.name = "null",
	.options = null_options,
	.parse = null_parse,
	.start = null_start,
	.sink = null_sink,
};
