/*
 * Split virtqueues, device side: pop chains from the avail ring, push them
 * to the used ring, decide when to interrupt the guest.
 *
 * The design choice that matters: the guest is untrusted and shares the
 * memory we read, so every descriptor is read exactly once into a local
 * copy and validated there (no double fetch), every walk is bounded by the
 * number of descriptors that can exist, and a bad chain is handed back to
 * the guest unused instead of taking the daemon down.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/log.h"
#include "vportfs/vq.h"

/* Host pointer for `addr`, and in *span how many of the next `len` bytes
 * lie in the same region; NULL if `addr` is in no region. */
static void *mem_span(const struct vq_mem *mem, uint64_t addr, uint64_t len,
		      bool by_uva, uint64_t *span)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct vq_mem_region *r = &mem->r[i];
		uint64_t start = by_uva ? r->uva : r->gpa;

		/* Written so that nothing overflows: addr - start is only
		 * computed once addr >= start. */
		if (addr < start || addr - start >= r->size)
			continue;
		*span = len < r->size - (addr - start) ? len
						       : r->size - (addr - start);
		return (char *)r->host + (addr - start);
	}
	return NULL;
}

/* The whole range inside one region, or NULL. */
static void *mem_lookup(const struct vq_mem *mem, uint64_t addr, uint64_t len,
			bool by_uva)
{
	uint64_t span = 0;
	void *p;

	if (len == 0)
		return NULL;
	p = mem_span(mem, addr, len, by_uva, &span);
	return p && span == len ? p : NULL;
}

void *vq_mem_gpa(const struct vq_mem *mem, uint64_t gpa, uint64_t len)
{
	return mem_lookup(mem, gpa, len, false);
}

void *vq_mem_uva(const struct vq_mem *mem, uint64_t uva, uint64_t len)
{
	return mem_lookup(mem, uva, len, true);
}

bool vq_rings_aligned(uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva)
{
	/* Alignment the virtio spec requires; unaligned rings would also
	 * make our 16/32-bit accesses non-atomic. */
	return !(desc_uva & 15) && !(avail_uva & 1) && !(used_uva & 3);
}

bool vq_rings_fit(const struct vq_mem *mem, unsigned num, uint64_t desc_uva,
		  uint64_t avail_uva, uint64_t used_uva)
{
	if (num == 0 || num > VRING_MAX_SIZE || (num & (num - 1)))
		return false;
	return vq_rings_aligned(desc_uva, avail_uva, used_uva) &&
	       vq_mem_uva(mem, desc_uva, vring_desc_size(num)) &&
	       vq_mem_uva(mem, avail_uva, vring_avail_size(num)) &&
	       vq_mem_uva(mem, used_uva, vring_used_size(num));
}

int vq_setup(struct vq *vq, const struct vq_mem *mem, unsigned num,
	     uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva,
	     uint16_t base)
{
	if (!vq_rings_fit(mem, num, desc_uva, avail_uva, used_uva))
		return -EINVAL;
	vq->num = num;
	vq->desc = vq_mem_uva(mem, desc_uva, vring_desc_size(num));
	vq->avail = vq_mem_uva(mem, avail_uva, vring_avail_size(num));
	vq->used = vq_mem_uva(mem, used_uva, vring_used_size(num));
	vq->last_avail = base;
	vq->used_idx = base;
	vq->signalled_used_valid = false;
	vq->broken = false;
	vq->inflight = 0;
	vq->chain_descs_max = 1;
	return 0;
}

void vq_reset(struct vq *vq)
{
	bool event_idx = vq->event_idx, indirect = vq->indirect;

	memset(vq, 0, sizeof(*vq));
	vq->event_idx = event_idx;
	vq->indirect = indirect;
}

static void mark_broken(struct vq *vq, const char *why)
{
	if (!vq->broken)
		vp_warn_rl("virtqueue broken: %s", why);
	vq->broken = true;
}

static uint16_t avail_idx(struct vq *vq)
{
	return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

bool vq_has_avail(struct vq *vq)
{
	uint16_t idx, pending;

	if (!vq_ready(vq))
		return false;
	idx = avail_idx(vq);
	pending = (uint16_t)(idx - vq->last_avail);
	if (pending <= vq->num)
		return pending != 0;
	/* Behind us: a Linux guest taking back buffers it had posted (port
	 * unplug, device teardown) rewinds its index.  Nothing to pop; see
	 * vq_resync_avail.  Ahead by more than the ring: nonsense. */
	if ((uint16_t)(vq->last_avail - idx) <= vq->num)
		return false;
	mark_broken(vq, "avail index moved by more than the ring size");
	return false;
}

void vq_resync_avail(struct vq *vq)
{
	uint16_t idx;

	if (!vq->num || vq->inflight)
		return;
	idx = avail_idx(vq);
	if ((uint16_t)(idx - vq->last_avail) > vq->num) {
		vq->last_avail = idx;
	}
}

/* Scratch space for a walk: the chain is collected here, then copied into an
 * element of exactly the right size. */
struct walk {
	unsigned niov;
	unsigned out_num, in_num;
	uint64_t out_len, in_len;
	struct iovec iov[VQ_MAX_IOV]; /* last: only the counters are reset */
};

/* Append one descriptor's buffer, split at region boundaries. */
static int walk_add(struct walk *w, const struct vq_mem *mem,
		    const struct vring_desc *d)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;
	uint64_t addr = d->addr, left = d->len;

	/* Readable buffers must precede writable ones (virtio 2.7.4.2). */
	if (!writable && w->in_num)
		return -EINVAL;
	while (left) {
		uint64_t chunk;
		/* The largest prefix inside one region. */
		void *p = mem_span(mem, addr, left, false, &chunk);

		if (!p || w->niov == VQ_MAX_IOV)
			return -EINVAL;
		w->iov[w->niov].iov_base = p;
		w->iov[w->niov].iov_len = chunk;
		w->niov++;
		if (writable) {
			w->in_num++;
			w->in_len += chunk;
		} else {
			w->out_num++;
			w->out_len += chunk;
		}
		addr += chunk;
		left -= chunk;
	}
	if (w->out_len > UINT32_MAX || w->in_len > UINT32_MAX)
		return -EINVAL;
	return 0;
}

static void read_desc(struct vring_desc *dst, const volatile struct vring_desc *src)
{
	dst->addr = src->addr;
	dst->len = src->len;
	dst->flags = src->flags;
	dst->next = src->next;
}

/* Walk an indirect table: at most len/16 entries, no nesting. */
static int walk_indirect(struct walk *w, const struct vq_mem *mem,
			 const struct vring_desc *ind)
{
	const volatile struct vring_desc *table;
	unsigned n, i = 0, count = 0;

	if (ind->len == 0 || ind->len % sizeof(struct vring_desc))
		return -EINVAL;
	if (ind->flags & VRING_DESC_F_NEXT)
		return -EINVAL; /* INDIRECT|NEXT is forbidden */
	n = ind->len / sizeof(struct vring_desc);
	if (n > VRING_MAX_SIZE)
		return -EINVAL;
	table = vq_mem_gpa(mem, ind->addr, ind->len);
	if (!table)
		return -EINVAL;
	for (;;) {
		struct vring_desc d;
		int rc;

		if (++count > n)
			return -EINVAL; /* a loop inside the table */
		read_desc(&d, &table[i]);
		if (d.flags & VRING_DESC_F_INDIRECT)
			return -EINVAL;
		rc = walk_add(w, mem, &d);
		if (rc)
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return -EINVAL;
		i = d.next;
	}
}

static int walk_chain(struct vq *vq, const struct vq_mem *mem, uint16_t head,
		      struct walk *w)
{
	unsigned i = head, count = 0;

	for (;;) {
		struct vring_desc d;
		int rc;

		if (++count > vq->num)
			return -EINVAL; /* longer than the ring: a loop */
		read_desc(&d, &vq->desc[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect || count != 1)
				return -EINVAL;
			return walk_indirect(w, mem, &d);
		}
		rc = walk_add(w, mem, &d);
		if (rc)
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->num)
			return -EINVAL;
		i = d.next;
	}
	if (count > vq->chain_descs_max)
		vq->chain_descs_max = count;
	return 0;
}

int vq_pop(struct vq *vq, const struct vq_mem *mem, struct vq_elem **out)
{
	/* Static: the daemon is single-threaded and a walk is 16 KiB. */
	static struct walk w;
	unsigned skipped = 0;

	*out = NULL;
	/* A guest that offers the same head again and again would have us
	 * hold more chains than its ring has entries. */
	if (vq_has_avail(vq) && vq->inflight >= vq->num) {
		mark_broken(vq, "more chains in flight than the ring has entries");
		return -EIO;
	}
	while (vq_has_avail(vq)) {
		uint16_t slot = vq->last_avail & (vq->num - 1);
		uint16_t head = vq->avail->ring[slot];
		struct vq_elem *e;

		if (head >= vq->num) {
			mark_broken(vq, "avail ring names a descriptor out of range");
			return -EIO;
		}
		vq->last_avail++;
		vq->inflight++;
		memset(&w, 0, offsetof(struct walk, iov));
		if (walk_chain(vq, mem, head, &w) != 0) {
			vq->bad_chains++;
			vp_warn_rl("dropping malformed descriptor chain %u (desc addr 0x%llx len %u flags 0x%x, ring of %u)", head, (unsigned long long)vq->desc[head].addr, vq->desc[head].len, vq->desc[head].flags, vq->num);
			vq_push(vq, head, 0);
			if (++skipped >= vq->num)
				return -EAGAIN;
			continue;
		}
		e = malloc(sizeof(*e) + w.niov * sizeof(struct iovec));
		if (!e) {
			/* Un-pop: the chain is still there for a later try. */
			vq->last_avail--;
			vq->inflight--;
			return -ENOMEM;
		}
		e->head = head;
		e->out_num = (uint16_t)w.out_num;
		e->in_num = (uint16_t)w.in_num;
		e->out_len = (uint32_t)w.out_len;
		e->in_len = (uint32_t)w.in_len;
		memcpy(e->iov, w.iov, w.niov * sizeof(struct iovec));
		*out = e;
		return 1;
	}
	return vq->broken ? -EIO : 0;
}

void vq_unpop(struct vq *vq)
{
	if (!vq->num || !vq->inflight)
		return;
	vq->last_avail--;
	vq->inflight--;
}

uint16_t vq_avail_mark(struct vq *vq)
{
	return vq->num ? avail_idx(vq) : vq->last_avail;
}

bool vq_popped_past(const struct vq *vq, uint16_t mark)
{
	uint16_t pending = (uint16_t)(mark - vq->last_avail);
	uint16_t avail;

	if (pending == 0 || pending > vq->num)
		return true;
	/* Nothing left to pop: the guest took back what the mark named. */
	avail = vq->num ? __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE)
			: vq->last_avail;
	pending = (uint16_t)(avail - vq->last_avail);
	return pending == 0 || pending > vq->num;
}

void vq_push(struct vq *vq, uint16_t head, uint32_t len)
{
	volatile struct vring_used_elem *ue;

	if (!vq->num)
		return;
	ue = &vq->used->ring[vq->used_idx & (vq->num - 1)];
	ue->id = head;
	ue->len = len;
	vq->used_idx++;
	if (vq->inflight)
		vq->inflight--;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

bool vq_should_notify(struct vq *vq)
{
	uint16_t old, new, event;
	bool valid;

	if (!vq->num)
		return false;
	/* Our used->idx store must be visible before we read the guest's
	 * wishes, or we may miss a request for an interrupt. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(vq->avail->flags & VRING_AVAIL_F_NO_INTERRUPT);

	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = vq->avail->ring[vq->num]; /* used_event */
	/* vring_need_event(): did new pass event since old? */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

bool vq_driver_may_wait(struct vq *vq, uint16_t used_before)
{
	uint16_t posted;

	if (!vq->num)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	posted = (uint16_t)(avail_idx(vq) - used_before);
	return (unsigned long)posted * vq->chain_descs_max >= vq->num;
}

void vq_want_kick(struct vq *vq)
{
	if (!vq->num)
		return;
	if (vq->event_idx) {
		volatile uint16_t *avail_event =
			(volatile uint16_t *)&vq->used->ring[vq->num];
		*avail_event = vq->last_avail;
	} else {
		vq->used->flags &= (uint16_t)~VRING_USED_F_NO_NOTIFY;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

size_t vq_elem_fill(const struct vq_elem *e, size_t off, const void *src,
		    size_t len)
{
	const char *p = src;
	size_t done = 0;

	for (unsigned i = e->out_num; i < e->out_num + e->in_num && done < len;
	     i++) {
		size_t n = e->iov[i].iov_len;

		if (off >= n) {
			off -= n;
			continue;
		}
		n -= off;
		if (n > len - done)
			n = len - done;
		memcpy((char *)e->iov[i].iov_base + off, p + done, n);
		done += n;
		off = 0;
	}
	return done;
}
