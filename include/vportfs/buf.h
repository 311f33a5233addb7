/*
 * A bounded byte ring: the per-port buffer that decouples a host writer from
 * the guest's receive buffers.  Capacity is fixed at creation, so memory per
 * port is bounded no matter how fast anybody writes.
 */
#ifndef VPORTFS_BUF_H
#define VPORTFS_BUF_H

#include <stddef.h>
#include <sys/uio.h>

struct vp_buf {
	char *data;
	size_t cap;
	size_t head; /* index of the first byte */
	size_t len;  /* bytes stored */
};

/* 0 or -ENOMEM. */
int vp_buf_init(struct vp_buf *b, size_t cap);
void vp_buf_destroy(struct vp_buf *b);

static inline size_t vp_buf_len(const struct vp_buf *b)
{
	return b->len;
}

static inline size_t vp_buf_room(const struct vp_buf *b)
{
	return b->cap - b->len;
}

/* Append up to len bytes; returns how many fit. */
size_t vp_buf_put(struct vp_buf *b, const void *src, size_t len);

/* Describe up to max bytes from the front as at most two iovecs; returns
 * the number of iovecs filled.  The memory stays valid until the next put
 * or consume. */
int vp_buf_peek(const struct vp_buf *b, struct iovec iov[2], size_t max);
/* The same, starting `off` bytes after the front (off <= length). */
int vp_buf_peek_at(const struct vp_buf *b, size_t off, struct iovec iov[2],
		   size_t max);

void vp_buf_consume(struct vp_buf *b, size_t n);
void vp_buf_clear(struct vp_buf *b);

#endif
