/*
 * libFuzzer harness for split virtqueues, device side
 * (src/device/virtqueue.c).
 *
 * A fake guest memory of eight regions (VU_MAX_MEM_REGIONS), each its own
 * malloc so that ASan puts a red zone after every region (a read or write
 * one byte past a region is caught, not absorbed by a neighbour):
 *
 *   region  gpa      size    holds
 *   R0      0x10000  0x4000  the descriptor table, ending at the region's end
 *   R1      0x14000  0x4000  the avail ring, ending at the region's end
 *   R2      0x40000  0x4000  the used ring, ending (2 bytes short) at its end
 *   R3      0x80000  S       indirect tables and data: the rest of the
 *                            input, S its length rounded up to 16 bytes
 *                            (16 to 0x1000), so that a table the input
 *                            ends with ends at the region's red zone
 *   R4-R7   0x80000 + S, 4 x 0x100, zeroed
 *
 * R0-R1 and R3-R7 are contiguous in guest addresses but not in host
 * memory: a buffer crossing them comes out as one iovec per region (one
 * descriptor over R3-R7 is five, so a chain can reach VQ_MAX_IOV).
 * Frontend user addresses are gpa + 0x7f0000000000.
 *
 * Input:
 *   byte 0    bits 0-3: log2 of the queue size (capped at 8: 1..256);
 *             bit 4: EVENT_IDX; bit 5: INDIRECT_DESC; bit 6: hold some
 *             elements and push them late, out of order; bit 7: the three
 *             ring addresses come from the input (they may overlap each
 *             other, R3's data, or miss guest memory: then the fixed
 *             layout is used)
 *   bytes 1-2 the base (initial last_avail / used_idx), little-endian
 *   byte 3    policy: bit 0 sometimes vq_unpop; bit 1 vq_want_kick after
 *             each pop; bits 2-3 how many elements to hold (with byte 0
 *             bit 6: one in four .. all); bit 4 hold them over the guest's
 *             move (pushed only at the end); bits 5-7 vary which
 *             iterations do what
 *   bytes 4-5 the avail index the guest moves to between two rounds
 *   bytes 6-7 the used_event the guest writes then
 *   [bit 7: bytes 8-19: desc, avail, used offsets (le32) from the UVA
 *   base; bytes 20-21: a queue size (le16) tried first, as is, on a
 *   scratch queue]
 *   then: the descriptor table (16 * num bytes), the avail ring (flags,
 *   idx, num entries, used_event), and the rest (at most 0x1000 bytes
 *   used) into R3.
 *
 * Every element popped is checked (each iovec inside one region, lengths
 * adding up), read, written, then pushed (or un-popped, or held and
 * pushed later) and freed.  Work is bounded: a round stops after
 * num + 16 pops or once 2 * num chains were dropped as malformed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/log.h"
#include "vportfs/vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define UVA_BASE  0x7f0000000000ull
#define NREGIONS  8
#define HDR_SIZE  8
#define ADDR_SIZE 14
#define R3_MAX	  0x1000u

/* R3's size is the input's; R4-R7 follow it. */
static const struct {
	uint64_t gpa;
	uint64_t size;
} layout[NREGIONS] = {
	{0x10000, 0x4000}, {0x14000, 0x4000}, {0x40000, 0x4000}, {0x80000, 0},
	{0, 0x100},	   {0, 0x100},	      {0, 0x100},	 {0, 0x100},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VPORTFS_FUZZ_LOG");
	enum vp_log_level l;

	(void)argc;
	(void)argv;
	/* Warnings are rate-limited (10 per 5 s per site): leave them on,
	 * so that their formatting runs too. */
	if (lvl && vp_log_parse_level(lvl, &l) == 0)
		vp_log_set_level(l);
	return 0;
}

/* Bytes of the input not yet consumed. */
struct in {
	const uint8_t *p;
	size_t left;
};

static void take(struct in *in, void *dst, size_t n)
{
	size_t k = n < in->left ? n : in->left;

	memcpy(dst, in->p, k);
	in->p += k;
	in->left -= k;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Our own lookup (not the code under test's): host pointer of
 * [uva, uva+len) if it lies inside one region. */
static void *host_of(const struct vq_mem *mem, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct vq_mem_region *r = &mem->r[i];

		if (uva >= r->uva && uva - r->uva <= r->size &&
		    len <= r->size - (uva - r->uva))
			return (uint8_t *)r->host + (uva - r->uva);
	}
	return NULL;
}

static bool in_one_region(const struct vq_mem *mem, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < mem->nregions; i++) {
		const uint8_t *h = mem->r[i].host;

		if (b >= h && b <= h + mem->r[i].size &&
		    len <= (size_t)(h + mem->r[i].size - b))
			return true;
	}
	return false;
}

/* The element as vq.h promises it.  Each iovec's first and last bytes
 * are read or written (the red zones catch one past a region); the fill
 * is checked at both ends of the writable part.  Not every byte: one
 * chain may name the same 16 KiB up to 1024 times. */
static uint32_t use_elem(const struct vq_mem *mem, const struct vq_elem *e,
			 unsigned num)
{
	static const uint8_t pattern[256] = {'v', 'p', 'f', 's'};
	uint64_t out = 0, in = 0;
	volatile uint8_t sum = 0;
	size_t want, off;

	if (e->head >= num || e->out_num + e->in_num > VQ_MAX_IOV)
		goto bad;
	for (unsigned i = 0; i < (unsigned)e->out_num + e->in_num; i++) {
		const struct iovec *v = &e->iov[i];
		uint8_t *b = v->iov_base;

		if (v->iov_len == 0 || !in_one_region(mem, b, v->iov_len))
			goto bad;
		if (i < e->out_num) {
			out += v->iov_len;
			sum += b[0];
			sum += b[v->iov_len - 1];
		} else {
			in += v->iov_len;
		}
	}
	if (out != e->out_len || in != e->in_len)
		goto bad;
	(void)sum;
	want = e->in_len < sizeof(pattern) ? e->in_len : sizeof(pattern);
	if (vq_elem_fill(e, 0, pattern, sizeof(pattern)) != want)
		goto bad;
	off = e->in_len > 100 ? e->in_len - 100 : 0;
	want = e->in_len - off < sizeof(pattern) ? e->in_len - off
						 : sizeof(pattern);
	if (vq_elem_fill(e, off, pattern, sizeof(pattern)) != want)
		goto bad;
	if (vq_elem_fill(e, e->in_len, pattern, sizeof(pattern)) != 0)
		goto bad;
	return e->in_len;
bad:
	fprintf(stderr, "bad element: head %u out %u/%u in %u/%u (num %u)\n",
		e->head, e->out_num, e->out_len, e->in_num, e->in_len, num);
	abort();
}

struct run {
	struct vq vq;
	struct vq_mem mem;
	uint8_t cfg, policy;
	struct vq_elem_list held;
	unsigned nheld;
};

static void round_of_pops(struct run *r)
{
	struct vq *vq = &r->vq;
	uint64_t bad_start = vq->bad_chains;
	unsigned unpops = 0;

	for (unsigned it = 0; it < vq->num + 16; it++) {
		unsigned sel = (r->policy >> 5) + it;
		uint16_t mark = vq_avail_mark(vq);
		struct vq_elem *e;
		int rc;

		if (vq->bad_chains - bad_start > 2ull * vq->num)
			break;
		if (it % 3 == 0)
			(void)vq_has_avail(vq);
		rc = vq_pop(vq, &r->mem, &e);
		if (rc == -EAGAIN)
			continue;
		if (rc <= 0) {
			if (e)
				abort(); /* *out is NULL unless 1 */
			if (rc == 0) {
				/* As a device does before it sleeps. */
				vq_want_kick(vq);
				if (vq_has_avail(vq))
					continue;
			}
			break;
		}
		if (!e)
			abort();
		if (vq->inflight == 0)
			abort();
		if ((r->policy & 1) && unpops < 4 && (sel & 1)) {
			/* No room for it yet: give it back untouched. */
			vq_unpop(vq);
			free(e);
			unpops++;
		} else if ((r->cfg & 0x40) &&
			   (sel & 3) <= ((r->policy >> 2) & 3u) &&
			   r->nheld < vq->num) {
			(void)use_elem(&r->mem, e, vq->num);
			TAILQ_INSERT_HEAD(&r->held, e, link);
			r->nheld++;
		} else {
			vq_push(vq, e->head, use_elem(&r->mem, e, vq->num));
			free(e);
		}
		(void)vq_should_notify(vq);
		if (r->policy & 2)
			vq_want_kick(vq);
		(void)vq_popped_past(vq, mark);
	}
}

static void push_held(struct run *r)
{
	struct vq_elem *e;

	/* Newest first: the used ring need not follow the avail order. */
	while ((e = TAILQ_FIRST(&r->held))) {
		TAILQ_REMOVE(&r->held, e, link);
		vq_push(&r->vq, e->head, e->in_len);
		free(e);
	}
	r->nheld = 0;
	(void)vq_should_notify(&r->vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r = {.mem.nregions = NREGIONS};
	uint8_t hdr[HDR_SIZE] = {0}, addr[ADDR_SIZE] = {0};
	struct in in = {data, size};
	uint64_t desc_uva, avail_uva, used_uva;
	unsigned num;
	uint16_t base;
	size_t rest, r3_size;
	void *p;

	TAILQ_INIT(&r.held);
	take(&in, hdr, sizeof(hdr));
	r.cfg = hdr[0];
	r.policy = hdr[3];
	num = 1u << ((r.cfg & 15) > 8 ? 8 : (r.cfg & 15));
	base = (uint16_t)(hdr[1] | hdr[2] << 8);

	/* What R3 gets: the input after the header, the addresses and the
	 * two rings. */
	rest = HDR_SIZE + (r.cfg & 0x80 ? ADDR_SIZE : 0) +
	       vring_desc_size(num) + vring_avail_size(num);
	rest = size > rest ? size - rest : 0;
	rest = rest > R3_MAX ? R3_MAX : rest;
	r3_size = rest ? (rest + 15) & ~(size_t)15 : 16;
	for (unsigned i = 0; i < NREGIONS; i++) {
		struct vq_mem_region *m = &r.mem.r[i];

		m->gpa = i > 3 ? r.mem.r[i - 1].gpa + r.mem.r[i - 1].size
			       : layout[i].gpa;
		m->uva = UVA_BASE + m->gpa;
		m->size = i == 3 ? r3_size : layout[i].size;
		m->host = calloc(1, m->size);
		if (!m->host)
			goto out;
	}

	/* Flags first: vq_setup leaves them alone (vhost_user.c sets them
	 * from the negotiated features). */
	r.vq.event_idx = r.cfg & 0x10;
	r.vq.indirect = r.cfg & 0x20;
	if (r.cfg & 0x80) {
		struct vq scratch = {0};

		take(&in, addr, sizeof(addr));
		desc_uva = UVA_BASE + le32(addr);
		avail_uva = UVA_BASE + le32(addr + 4);
		used_uva = UVA_BASE + le32(addr + 8);
		(void)vq_setup(&scratch, &r.mem, addr[12] | addr[13] << 8,
			       desc_uva, avail_uva, used_uva, base);
		if (vq_setup(&r.vq, &r.mem, num, desc_uva, avail_uva, used_uva,
			     base) == 0)
			goto set_up;
	}
	desc_uva = r.mem.r[0].uva + layout[0].size - vring_desc_size(num);
	avail_uva = r.mem.r[1].uva + layout[1].size - vring_avail_size(num);
	used_uva = (r.mem.r[2].uva + layout[2].size - vring_used_size(num)) &
		   ~3ull;
	if (vq_setup(&r.vq, &r.mem, num, desc_uva, avail_uva, used_uva, base) !=
	    0)
		abort(); /* the fixed layout is valid for every num */
set_up:
	if (r.vq.num != num || r.vq.last_avail != base ||
	    r.vq.used_idx != base || r.vq.broken)
		abort();
	/* Guest writes: descriptors, avail ring, then R3. */
	p = host_of(&r.mem, desc_uva, vring_desc_size(num));
	if (!p)
		abort();
	take(&in, p, vring_desc_size(num));
	p = host_of(&r.mem, avail_uva, vring_avail_size(num));
	if (!p)
		abort();
	take(&in, p, vring_avail_size(num));
	take(&in, r.mem.r[3].host, r3_size);

	round_of_pops(&r);
	if (!(r.policy & 0x10))
		push_held(&r);

	/* The guest moves its avail index (a Linux guest unplugging a port
	 * rewinds it) and asks for an interrupt at some used index. */
	__atomic_store_n(&r.vq.avail->idx, (uint16_t)(hdr[4] | hdr[5] << 8),
			 __ATOMIC_RELEASE);
	r.vq.avail->ring[num] = (uint16_t)(hdr[6] | hdr[7] << 8);
	vq_resync_avail(&r.vq);
	round_of_pops(&r);
	push_held(&r);
	(void)vq_should_notify(&r.vq);

	vq_reset(&r.vq);
	if (r.vq.num || vq_ready(&r.vq) || vq_has_avail(&r.vq))
		abort();
	/* A queue that is not set up ignores everything. */
	vq_push(&r.vq, 0, 0);
	vq_unpop(&r.vq);
	vq_want_kick(&r.vq);
	(void)vq_should_notify(&r.vq);
out:
	for (unsigned i = 0; i < NREGIONS; i++)
		free(r.mem.r[i].host);
	return 0;
}
