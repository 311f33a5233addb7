/*
 * The ringbuf backend: keeps the latest size= bytes the guest sent, in
 * memory, readable at any time as the port's attribute
 * user.vport.chardev.ID.data (QEMU reads its ringbuf with the monitor's
 * ringbuf-read; a mount has attributes).  Reading does not consume.  Like
 * QEMU's, the size is a power of two; it is at most 64 KiB, the most an
 * attribute can hold.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chr_int.h"

#define RINGBUF_DEFAULT (64u << 10)
#define RINGBUF_MAX	(64u << 10)

struct ringbuf {
	char *data;
	size_t size;
	uint64_t written; /* bytes ever taken: the ring's end */
};

static int ringbuf_parse(struct chr *chr, struct chr_spec *spec, char *err,
			 size_t errlen)
{
	struct ringbuf *rb = chr_priv(chr);
	uint64_t size;
	int rc;

	rc = chr_spec_size(spec, "size", RINGBUF_DEFAULT, RINGBUF_MAX, &size,
			   err, errlen);
	if (rc)
		return rc;
	if (size == 0 || (size & (size - 1)))
		return chr_errf(chr, EINVAL, err, errlen,
				"size=%llu is not a power of two",
				(unsigned long long)size);
	rb->size = size;
	return 0;
}

static int ringbuf_start(struct chr *chr, char *err, size_t errlen)
{
	struct ringbuf *rb = chr_priv(chr);

	rb->data = malloc(rb->size);
	if (!rb->data)
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	chr_peer_up(chr, -1, -1, 0);
	return 0;
}

static void ringbuf_stop(struct chr *chr)
{
	struct ringbuf *rb = chr_priv(chr);

	free(rb->data);
	rb->data = NULL;
}

static void put(struct ringbuf *rb, const char *p, size_t n)
{
	/* Only the last size bytes of a long write can stay. */
	if (n > rb->size) {
		rb->written += n - rb->size;
		p += n - rb->size;
		n = rb->size;
	}
	while (n) {
		size_t at = rb->written & (rb->size - 1);
		size_t k = rb->size - at < n ? rb->size - at : n;

		memcpy(rb->data + at, p, k);
		rb->written += k;
		p += k;
		n -= k;
	}
}

static ssize_t ringbuf_sink(struct chr *chr, const struct iovec *iov, int niov)
{
	struct ringbuf *rb = chr_priv(chr);
	size_t n = 0;

	for (int i = 0; i < niov; i++) {
		put(rb, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	return (ssize_t)n;
}

static size_t ringbuf_attr_list(struct chr *chr, char *buf, size_t len)
{
	static const char keys[] = "data\0size";

	(void)chr;
	if (len >= sizeof(keys))
		memcpy(buf, keys, sizeof(keys));
	return sizeof(keys);
}

static ssize_t ringbuf_attr_get(struct chr *chr, const char *key, char *buf,
				size_t len)
{
	struct ringbuf *rb = chr_priv(chr);
	size_t have, start;

	if (!strcmp(key, "size"))
		return chr_attr_printf(buf, len, "%zu", rb->size);
	if (strcmp(key, "data") || !rb->data)
		return -ENODATA;
	have = rb->written < rb->size ? (size_t)rb->written : rb->size;
	if (have > len)
		return -ERANGE;
	/* Oldest first. */
	start = (size_t)((rb->written - have) & (rb->size - 1));
	for (size_t i = 0; i < have; i++)
		buf[i] = rb->data[(start + i) & (rb->size - 1)];
	return (ssize_t)have;
}

static const char *const ringbuf_options[] = {"size", NULL};

const struct chr_backend chr_ringbuf_backend = {
	.name = "ringbuf",
	.options = ringbuf_options,
	.priv_size = sizeof(struct ringbuf),
	.parse = ringbuf_parse,
	.start = ringbuf_start,
	.stop = ringbuf_stop,
	.sink = ringbuf_sink,
	.attr_list = ringbuf_attr_list,
	.attr_get = ringbuf_attr_get,
};
