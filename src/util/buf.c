/* Byte ring; see include/vportfs/buf.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/buf.h"

int vp_buf_init(struct vp_buf *b, size_t cap)
{
	b->data = malloc(cap);
	if (!b->data)
		return -ENOMEM;
	b->cap = cap;
	b->head = 0;
	b->len = 0;
	return 0;
}

void vp_buf_destroy(struct vp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->head = b->len = 0;
}

size_t vp_buf_put(struct vp_buf *b, const void *src, size_t len)
{
	size_t n = len < vp_buf_room(b) ? len : vp_buf_room(b);
	size_t tail = (b->head + b->len) % (b->cap ? b->cap : 1);
	size_t first = n < b->cap - tail ? n : b->cap - tail;

	memcpy(b->data + tail, src, first);
	memcpy(b->data, (const char *)src + first, n - first);
	b->len += n;
	return n;
}

int vp_buf_peek_at(const struct vp_buf *b, size_t off, struct iovec iov[2],
		   size_t max)
{
	size_t start, n, first;

	if (off >= b->len)
		return 0;
	n = b->len - off < max ? b->len - off : max;
	if (n == 0)
		return 0;
	start = (b->head + off) % b->cap;
	first = n < b->cap - start ? n : b->cap - start;
	iov[0].iov_base = b->data + start;
	iov[0].iov_len = first;
	if (first == n)
		return 1;
	iov[1].iov_base = b->data;
	iov[1].iov_len = n - first;
	return 2;
}

int vp_buf_peek(const struct vp_buf *b, struct iovec iov[2], size_t max)
{
	return vp_buf_peek_at(b, 0, iov, max);
}

void vp_buf_consume(struct vp_buf *b, size_t n)
{
	if (n > b->len)
		n = b->len;
	b->len -= n;
	b->head = b->len ? (b->head + n) % b->cap : 0;
}

void vp_buf_clear(struct vp_buf *b)
{
	b->head = 0;
	b->len = 0;
}
