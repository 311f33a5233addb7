/*
 * Guest memory and split virtqueues, device side.
 *
 * Everything here reads memory the guest can change at any moment, so each
 * descriptor is copied once into a local and validated there; an address is
 * only ever turned into a pointer through vq_mem_gpa()/vq_mem_uva(), which
 * check that the whole range lies inside one mapped region.  A malformed
 * chain is returned to the guest unused (len 0) and counted; a ring that
 * cannot be walked any more (index out of range, avail index running away)
 * marks the queue broken.  Nothing the guest writes can make us read outside
 * its memory, loop, or allocate without bound.
 */
#ifndef VPORTFS_VQ_H
#define VPORTFS_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "vportfs/virtio_proto.h"
#include "vportfs/vhost_user_proto.h"

struct vq_mem_region {
	uint64_t gpa;  /* guest physical address of the first byte */
	uint64_t uva;  /* frontend's user address of the first byte */
	uint64_t size;
	void *host;    /* our mapping of the first byte */
	void *map;     /* what to munmap */
	size_t map_len;
};

struct vq_mem {
	unsigned nregions;
	struct vq_mem_region r[VU_MAX_MEM_REGIONS];
};

/* Host pointer for [addr, addr+len) if it lies inside one region, else NULL.
 * len 0 is refused. */
void *vq_mem_gpa(const struct vq_mem *mem, uint64_t gpa, uint64_t len);
void *vq_mem_uva(const struct vq_mem *mem, uint64_t uva, uint64_t len);

/* Most iovecs one element may have (a chain of up to queue-size
 * descriptors, each split at region boundaries). */
#define VQ_MAX_IOV 1024

/* A popped descriptor chain.  iov[0..out_num) are device-readable,
 * iov[out_num..out_num+in_num) device-writable.  Owned by whoever popped
 * it until vq_push() or free(). */
struct vq_elem {
	TAILQ_ENTRY(vq_elem) link; /* free for the holder's use */
	uint16_t head;
	uint16_t out_num;
	uint16_t in_num;
	uint32_t out_len;
	uint32_t in_len;
	struct iovec iov[];
};

TAILQ_HEAD(vq_elem_list, vq_elem);

struct vq {
	unsigned num; /* 0: not set up */
	volatile struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
	uint16_t last_avail; /* next avail entry we will pop */
	uint16_t used_idx;   /* next used entry we will fill */
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool event_idx;
	bool indirect;
	bool broken;
	unsigned inflight; /* popped, not yet pushed */
	/* Ring descriptors the longest chain popped so far took (an indirect
	 * chain takes one): how soon the driver's ring runs out of them. */
	unsigned chain_descs_max;
	uint64_t bad_chains;
};

/* Are the three rings' frontend user addresses aligned as the virtio spec
 * wants them (split rings: descriptors 16, avail 2, used 4)? */
bool vq_rings_aligned(uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva);
/* ... and do rings of `num` entries (a power of two up to VRING_MAX_SIZE)
 * lie there, each whole inside one region of mem?  vq_setup's check, for
 * a caller that must know before it commits to anything. */
bool vq_rings_fit(const struct vq_mem *mem, unsigned num, uint64_t desc_uva,
		  uint64_t avail_uva, uint64_t used_uva);

/* Map the three rings (frontend user addresses) and reset indices to
 * `base`.  0, or -EINVAL if !vq_rings_fit(); then vq is left as it was. */
int vq_setup(struct vq *vq, const struct vq_mem *mem, unsigned num,
	     uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
	     uint16_t base);
void vq_reset(struct vq *vq);

static inline bool vq_ready(const struct vq *vq)
{
	return vq->num != 0 && !vq->broken;
}

/* Is there a chain to pop?  Marks the queue broken (and says false) if the
 * guest's avail index is impossible. */
bool vq_has_avail(struct vq *vq);

/*
 * Pop the next chain.  Returns 1 and sets *out (malloc'd, caller owns),
 * 0 if the ring is empty, -EIO if the queue is (now) broken, -ENOMEM.
 * Malformed chains are pushed back with len 0 and skipped, never returned;
 * after a ring's worth of them in one call it returns -EAGAIN: the caller
 * ends its turn and comes back from the loop (a guest re-posting bad
 * chains as fast as we return them must not hold the loop).
 */
int vq_pop(struct vq *vq, const struct vq_mem *mem, struct vq_elem **out);

/* Give back the chain the last vq_pop returned, untouched, before any other
 * pop or push on the queue: the next pop returns it again.  The caller
 * frees the element.  For a device that finds it has no room for the chain
 * yet and must not keep pointers into guest memory meanwhile. */
void vq_unpop(struct vq *vq);

/* The guest's avail index as it stands: a mark for "every chain posted so
 * far".  vq_popped_past(vq, mark) says whether all of them are gone: popped,
 * or taken back by the guest (which moves its index back, here or behind
 * us, so that nothing is left to pop). */
uint16_t vq_avail_mark(struct vq *vq);
bool vq_popped_past(const struct vq *vq, uint16_t mark);

/* Return a chain to the guest; `len` is the number of bytes written into
 * its device-writable part.  Does not notify. */
void vq_push(struct vq *vq, uint16_t head, uint32_t len);

/* Should the guest be interrupted for what was pushed since the last time
 * this said yes?  Honours EVENT_IDX and VRING_AVAIL_F_NO_INTERRUPT. */
bool vq_should_notify(struct vq *vq);

/*
 * After pushing the chains that moved used->idx from used_before: might
 * the driver be waiting for ring room?  A Linux driver takes its used
 * buffers back itself before each add (virtio_console __send_to_port), so
 * it sleeps only when an add left it no free descriptor and that
 * reclaim found nothing new: when the chains posted beyond used_before
 * held every descriptor of the ring.  Chains of several descriptors are
 * counted as long as the longest one seen.  Reads the avail index after a
 * full fence, which pairs with the driver's barrier between its add and
 * its reclaim: one of the two sides always sees the other.
 */
bool vq_driver_may_wait(struct vq *vq, uint16_t used_before);

/* Ask the guest to kick us for the next chain it adds (EVENT_IDX writes
 * avail_event).  Callers re-check vq_has_avail() afterwards, closing the
 * race with a guest that added a chain just before. */
void vq_want_kick(struct vq *vq);

/* A Linux guest that unplugs a port takes back the buffers it had posted
 * on the port's queues and moves its avail index backwards.  If the index
 * is further from ours than the ring allows (behind us, in practice),
 * adopt it (only with nothing in flight); otherwise do nothing. */
void vq_resync_avail(struct vq *vq);

/* Copy from a flat buffer into the device-writable part of elem, starting
 * at byte `off` of that part; returns bytes copied. */
size_t vq_elem_fill(const struct vq_elem *e, size_t off, const void *src,
		    size_t len);

#endif
