/*
 * Unit tests for src/device/virtqueue.c: split rings laid out by hand in a
 * fake guest memory.
 *
 * The guest memory is one malloc'd buffer described as three regions whose
 * guest addresses differ from their frontend user addresses:
 *
 *   region  gpa       size    uva              host
 *   R0      0x10000   0x1000  0x7f0000010000   buf + 0x2000
 *   R1      0x11000   0x1000  0x7f0000011000   buf + 0x0000
 *   R2      0x20000   0x1000  0x7f0000020000   buf + 0x1000
 *
 * R0 and R1 are contiguous in guest addresses (a buffer may cross from one
 * to the other) but not in our buffer; below 0x10000 and between 0x12000
 * and 0x20000 nothing is mapped.  The rings (size 8) live in R0.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vportfs/log.h"
#include "vportfs/vq.h"

#define NUM 8u
#define BUF_SIZE 0x3000u

#define R0_GPA 0x10000ull
#define R1_GPA 0x11000ull
#define R2_GPA 0x20000ull
#define R_SIZE 0x1000ull
#define UVA_BASE 0x7f0000000000ull

/* Ring placement (offsets in R0). */
#define DESC_OFF 0x000u
#define AVAIL_OFF 0x100u
#define USED_OFF 0x200u

/* Guest addresses of data buffers. */
#define DATA_A (R0_GPA + 0x800)   /* R0, 0x100 bytes free */
#define DATA_B (R0_GPA + 0x900)
#define DATA_C (R2_GPA + 0x100)   /* R2 */
#define TABLE (R2_GPA + 0x800)    /* an indirect table */
#define GAP_GPA 0x15000ull        /* between R1 and R2 */
#define BELOW_GPA 0x8000ull       /* below R0 */

struct fx {
	uint8_t *buf;
	struct vq_mem mem;
	struct vq vq;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx; /* the driver's shadow */
};

static uint64_t uva_of(uint64_t gpa)
{
	return UVA_BASE + gpa;
}

static void *host_of(struct fx *f, uint64_t gpa)
{
	for (unsigned i = 0; i < f->mem.nregions; i++) {
		const struct vq_mem_region *r = &f->mem.r[i];

		if (gpa >= r->gpa && gpa < r->gpa + r->size)
			return (uint8_t *)r->host + (gpa - r->gpa);
	}
	fail_msg("test bug: gpa 0x%llx not mapped", (unsigned long long)gpa);
	return NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	static const struct {
		uint64_t gpa;
		size_t host_off;
	} layout[] = {
		{ R0_GPA, 0x2000 },
		{ R1_GPA, 0x0000 },
		{ R2_GPA, 0x1000 },
	};

	assert_non_null(f);
	f->buf = aligned_alloc(4096, BUF_SIZE);
	assert_non_null(f->buf);
	memset(f->buf, 0, BUF_SIZE);
	f->mem.nregions = 3;
	for (unsigned i = 0; i < 3; i++) {
		f->mem.r[i].gpa = layout[i].gpa;
		f->mem.r[i].uva = uva_of(layout[i].gpa);
		f->mem.r[i].size = R_SIZE;
		f->mem.r[i].host = f->buf + layout[i].host_off;
	}
	f->desc = host_of(f, R0_GPA + DESC_OFF);
	f->avail = host_of(f, R0_GPA + AVAIL_OFF);
	f->used = host_of(f, R0_GPA + USED_OFF);
	assert_int_equal(vq_setup(&f->vq, &f->mem, NUM,
				  uva_of(R0_GPA + DESC_OFF),
				  uva_of(R0_GPA + AVAIL_OFF),
				  uva_of(R0_GPA + USED_OFF), 0),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->buf);
	free(f);
	return 0;
}

static void set_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	f->desc[i] = (struct vring_desc){ addr, len, flags, next };
}

/* An entry in an indirect table at guest address `table`. */
static void set_ind(struct fx *f, uint64_t table, unsigned i, uint64_t addr,
		    uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *t = host_of(f, table);

	t[i] = (struct vring_desc){ addr, len, flags, next };
}

static void make_avail(struct fx *f, uint16_t head)
{
	f->avail->ring[f->avail_idx % NUM] = head;
	f->avail_idx++;
	f->avail->idx = f->avail_idx;
}

static uint16_t *used_event(struct fx *f)
{
	return &f->avail->ring[NUM];
}

static uint16_t *avail_event(struct fx *f)
{
	return (uint16_t *)&f->used->ring[NUM];
}

/* ---- vq_setup ----------------------------------------------------------- */

static int try_setup(struct fx *f, unsigned num, uint64_t desc, uint64_t avail,
		     uint64_t used)
{
	struct vq vq = { 0 };

	return vq_setup(&vq, &f->mem, num, desc, avail, used, 0);
}

static void test_setup_accepts_good_rings_and_sets_base(void **state)
{
	struct fx *f = *state;
	struct vq vq = { 0 };

	/* A consistent guest: the used ring is where the base says. */
	f->used->idx = 1234;
	assert_int_equal(vq_setup(&vq, &f->mem, 16, uva_of(R0_GPA + DESC_OFF),
				  uva_of(R0_GPA + AVAIL_OFF),
				  uva_of(R0_GPA + USED_OFF), 1234),
			 0);
	assert_int_equal(vq.num, 16);
	assert_int_equal(vq.last_avail, 1234);
	assert_int_equal(vq.used_idx, 1234);
	assert_ptr_equal((void *)vq.desc, f->desc);
	assert_ptr_equal((void *)vq.avail, f->avail);
	assert_ptr_equal((void *)vq.used, f->used);
	assert_false(vq.broken);
	assert_true(vq_ready(&vq));
}

static void test_setup_rejects_num_zero_non_power_of_two_and_too_big(
	void **state)
{
	struct fx *f = *state;
	uint64_t d = uva_of(R0_GPA + DESC_OFF), a = uva_of(R0_GPA + AVAIL_OFF),
		 u = uva_of(R0_GPA + USED_OFF);

	assert_int_equal(try_setup(f, 0, d, a, u), -EINVAL);
	assert_int_equal(try_setup(f, 3, d, a, u), -EINVAL);
	assert_int_equal(try_setup(f, 12, d, a, u), -EINVAL);
	assert_int_equal(try_setup(f, 65536, d, a, u), -EINVAL);
}

static void test_setup_rejects_misaligned_rings(void **state)
{
	struct fx *f = *state;
	uint64_t d = uva_of(R0_GPA + DESC_OFF), a = uva_of(R0_GPA + AVAIL_OFF),
		 u = uva_of(R0_GPA + USED_OFF);

	assert_int_equal(try_setup(f, NUM, d + 8, a, u), -EINVAL);
	assert_int_equal(try_setup(f, NUM, d, a + 1, u), -EINVAL);
	assert_int_equal(try_setup(f, NUM, d, a, u + 2), -EINVAL);
	/* The minimum alignments themselves are fine. */
	assert_int_equal(try_setup(f, NUM, d + 16 * 0x40, a + 2, u + 4), 0);
}

static void test_setup_rejects_rings_outside_memory(void **state)
{
	struct fx *f = *state;
	uint64_t d = uva_of(R0_GPA + DESC_OFF), a = uva_of(R0_GPA + AVAIL_OFF),
		 u = uva_of(R0_GPA + USED_OFF);

	/* Guest addresses are not user addresses. */
	assert_int_equal(try_setup(f, NUM, R0_GPA, a, u), -EINVAL);
	assert_int_equal(try_setup(f, NUM, d, R0_GPA + AVAIL_OFF, u), -EINVAL);
	assert_int_equal(try_setup(f, NUM, d, a, R0_GPA + USED_OFF), -EINVAL);
	/* In the gap between regions. */
	assert_int_equal(try_setup(f, NUM, uva_of(GAP_GPA), a, u), -EINVAL);
	/* Starting inside R1 but running past its end (R1 -> gap). */
	assert_int_equal(try_setup(f, NUM, d, a,
				   uva_of(R1_GPA + R_SIZE - 0x20)),
			 -EINVAL);
	/* Starting inside R2 but running past its end. */
	assert_int_equal(try_setup(f, NUM, uva_of(R2_GPA + R_SIZE - 64), a, u),
			 -EINVAL);
	/* Crossing from R0 into R1 (not one region, even if contiguous). */
	assert_int_equal(try_setup(f, NUM, uva_of(R1_GPA - 64), a, u), -EINVAL);
}

/* ---- vq_pop: good chains ------------------------------------------------ */

static void test_pop_empty_ring_returns_0(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e = (void *)1;

	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
	assert_null(e);
	assert_false(vq_has_avail(&f->vq));
}

static void test_pop_simple_readable_chain(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 2, DATA_A, 100, 0, 0);
	make_avail(f, 2);
	assert_true(vq_has_avail(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_non_null(e);
	assert_int_equal(e->head, 2);
	assert_int_equal(e->out_num, 1);
	assert_int_equal(e->in_num, 0);
	assert_int_equal(e->out_len, 100);
	assert_int_equal(e->in_len, 0);
	assert_ptr_equal(e->iov[0].iov_base, host_of(f, DATA_A));
	assert_int_equal(e->iov[0].iov_len, 100);
	assert_int_equal(f->vq.last_avail, 1);
	assert_int_equal(f->vq.inflight, 1);
	free(e);
	/* Nothing more. */
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
	assert_int_equal(f->used->idx, 0);
}

/* A chain given back with vq_unpop is popped again, whole; nothing went to
 * the used ring and nothing is in flight meanwhile. */
static void test_unpop_gives_the_chain_back_for_the_next_pop(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;
	uint16_t mark;

	set_desc(f, 2, DATA_A, 100, 0, 0);
	make_avail(f, 2);
	mark = vq_avail_mark(&f->vq);
	assert_false(vq_popped_past(&f->vq, mark));
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_true(vq_popped_past(&f->vq, mark));
	free(e);
	vq_unpop(&f->vq);
	assert_int_equal(f->vq.last_avail, 0);
	assert_int_equal(f->vq.inflight, 0);
	assert_false(vq_popped_past(&f->vq, mark));
	assert_true(vq_has_avail(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 2);
	assert_int_equal(e->out_len, 100);
	free(e);
	assert_int_equal(f->used->idx, 0);
}

/* A mark the guest moved back behind (it took its buffers back) counts as
 * passed: nothing it named is left to pop. */
static void test_popped_past_a_mark_the_guest_rewound(void **state)
{
	struct fx *f = *state;

	assert_true(vq_popped_past(&f->vq, vq_avail_mark(&f->vq)));
	assert_true(vq_popped_past(&f->vq, (uint16_t)(f->vq.last_avail - 1)));
}

/* The guest takes back a chain the mark named (port unplug, reset): it
 * rewinds its avail index to ours, and the mark counts as passed. */
static void test_popped_past_a_mark_whose_chain_was_taken_back(void **state)
{
	struct fx *f = *state;
	uint16_t mark;

	set_desc(f, 2, DATA_A, 100, 0, 0);
	make_avail(f, 2);
	mark = vq_avail_mark(&f->vq);
	assert_false(vq_popped_past(&f->vq, mark));
	f->avail->idx = f->vq.last_avail;
	assert_true(vq_popped_past(&f->vq, mark));
}

static void test_pop_readable_then_writable_chain(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 0, DATA_A, 16, VRING_DESC_F_NEXT, 5);
	set_desc(f, 5, DATA_B, 32, VRING_DESC_F_NEXT, 3);
	set_desc(f, 3, DATA_C, 200, VRING_DESC_F_WRITE, 0);
	make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 0);
	assert_int_equal(e->out_num, 2);
	assert_int_equal(e->in_num, 1);
	assert_int_equal(e->out_len, 48);
	assert_int_equal(e->in_len, 200);
	assert_ptr_equal(e->iov[0].iov_base, host_of(f, DATA_A));
	assert_int_equal(e->iov[0].iov_len, 16);
	assert_ptr_equal(e->iov[1].iov_base, host_of(f, DATA_B));
	assert_int_equal(e->iov[1].iov_len, 32);
	assert_ptr_equal(e->iov[2].iov_base, host_of(f, DATA_C));
	assert_int_equal(e->iov[2].iov_len, 200);
	free(e);
}

static void test_pop_buffer_crossing_contiguous_regions_splits_in_two_iovecs(
	void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	/* 0x10 bytes at the end of R0, 0x30 at the start of R1. */
	set_desc(f, 1, R1_GPA - 0x10, 0x40, VRING_DESC_F_WRITE, 0);
	make_avail(f, 1);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->out_num, 0);
	assert_int_equal(e->in_num, 2);
	assert_int_equal(e->in_len, 0x40);
	assert_ptr_equal(e->iov[0].iov_base, host_of(f, R1_GPA - 0x10));
	assert_int_equal(e->iov[0].iov_len, 0x10);
	assert_ptr_equal(e->iov[1].iov_base, host_of(f, R1_GPA));
	assert_int_equal(e->iov[1].iov_len, 0x30);
	/* The two pieces are not adjacent in our memory. */
	assert_ptr_not_equal((uint8_t *)e->iov[0].iov_base + 0x10,
			     e->iov[1].iov_base);
	free(e);
}

static void test_pop_chain_using_every_descriptor_is_accepted(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	for (unsigned i = 0; i < NUM; i++)
		set_desc(f, i, DATA_A + 8 * i, 8,
			 i + 1 < NUM ? VRING_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->out_num, NUM);
	assert_int_equal(e->out_len, 8 * NUM);
	free(e);
	assert_int_equal(f->vq.bad_chains, 0);
}

static void test_pop_valid_indirect_table(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	f->vq.indirect = true;
	/* Entries in table order 0 -> 2 -> 1: next is an index in the table. */
	set_ind(f, TABLE, 0, DATA_A, 10, VRING_DESC_F_NEXT, 2);
	set_ind(f, TABLE, 2, DATA_B, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
		1);
	set_ind(f, TABLE, 1, DATA_C, 30, VRING_DESC_F_WRITE, 0);
	set_desc(f, 4, TABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	make_avail(f, 4);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 4);
	assert_int_equal(e->out_num, 1);
	assert_int_equal(e->in_num, 2);
	assert_int_equal(e->out_len, 10);
	assert_int_equal(e->in_len, 50);
	assert_ptr_equal(e->iov[0].iov_base, host_of(f, DATA_A));
	assert_ptr_equal(e->iov[1].iov_base, host_of(f, DATA_B));
	assert_int_equal(e->iov[1].iov_len, 20);
	assert_ptr_equal(e->iov[2].iov_base, host_of(f, DATA_C));
	assert_int_equal(e->iov[2].iov_len, 30);
	free(e);
	assert_int_equal(f->vq.bad_chains, 0);
}

/* ---- vq_pop: malformed chains ------------------------------------------ */

/*
 * The chain at head 0 has been made malformed by the caller.  Queue it, then
 * a good chain at head 6, and check that vq_pop returns the good one, the
 * bad one went back to the used ring with len 0, and was counted.
 */
static void expect_bad_chain_skipped(struct fx *f)
{
	struct vq_elem *e = NULL;

	set_desc(f, 6, DATA_B, 4, 0, 0);
	make_avail(f, 0);
	make_avail(f, 6);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_non_null(e);
	assert_int_equal(e->head, 6);
	assert_int_equal(e->out_len, 4);
	free(e);
	assert_int_equal(f->vq.bad_chains, 1);
	assert_int_equal(f->used->idx, 1);
	assert_int_equal(f->used->ring[0].id, 0);
	assert_int_equal(f->used->ring[0].len, 0);
	assert_int_equal(f->vq.used_idx, 1);
	assert_int_equal(f->vq.last_avail, 2);
	assert_int_equal(f->vq.inflight, 1); /* only the good one */
	assert_false(f->vq.broken);
	/* Nothing left. */
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
}

static void test_pop_skips_descriptor_loop(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, DATA_A, 4, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_A, 4, VRING_DESC_F_NEXT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_descriptor_pointing_to_itself(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, DATA_A, 4, VRING_DESC_F_NEXT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_chain_longer_than_ring(void **state)
{
	struct fx *f = *state;

	/* 0 -> 1 -> 2 -> 3 -> 4 -> 5 -> 7 -> 0 -> ...: no descriptor points
	 * to itself or to its predecessor, but the walk never ends.
	 * (Descriptor 6 is the good chain.) */
	for (unsigned i = 0; i < 5; i++)
		set_desc(f, i, DATA_A, 4, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc(f, 5, DATA_A, 4, VRING_DESC_F_NEXT, 7);
	set_desc(f, 7, DATA_A, 4, VRING_DESC_F_NEXT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_loop_of_zero_length_descriptors(void **state)
{
	struct fx *f = *state;

	/* Empty buffers add no iovecs: only the walk's own bound stops it. */
	set_desc(f, 0, DATA_A, 0, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_A, 0, VRING_DESC_F_NEXT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_next_index_out_of_range(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, DATA_A, 4, VRING_DESC_F_NEXT, NUM);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_address_outside_memory(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, 0x500000, 4, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_address_below_region_start(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, BELOW_GPA, 4, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_address_in_gap_between_regions(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, GAP_GPA, 4, VRING_DESC_F_WRITE, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_buffer_ending_just_before_region(void **state)
{
	struct fx *f = *state;

	/* Starts below R0 and runs into it. */
	set_desc(f, 0, R0_GPA - 4, 8, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_address_plus_len_overflowing_2_64(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, UINT64_MAX - 0xf, 0x20, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_len_crossing_end_of_region(void **state)
{
	struct fx *f = *state;

	/* R2 is followed by nothing. */
	set_desc(f, 0, R2_GPA + R_SIZE - 0x10, 0x20, VRING_DESC_F_WRITE, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_len_crossing_from_r1_into_gap(void **state)
{
	struct fx *f = *state;

	/* R0 -> R1 is fine, but this one runs on past R1's end. */
	set_desc(f, 0, R1_GPA - 0x10, R_SIZE + 0x20, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_readable_after_writable(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, DATA_A, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_B, 4, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_with_next_flag(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, 0, 0);
	set_desc(f, 0, TABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_B, 4, 0, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_nested_indirect(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, VRING_DESC_F_NEXT, 1);
	set_ind(f, TABLE, 1, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_ind(f, TABLE + 0x100, 0, DATA_B, 4, 0, 0);
	set_desc(f, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_len_not_multiple_of_16(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, 0, 0);
	set_desc(f, 0, TABLE, 24, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_len_zero(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, 0, 0);
	set_desc(f, 0, TABLE, 0, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_table_outside_memory(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_desc(f, 0, GAP_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_table_crossing_region_end(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, 0, 0);
	set_desc(f, 0, R2_GPA + R_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_when_feature_off(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = false;
	set_ind(f, TABLE, 0, DATA_A, 4, 0, 0);
	set_desc(f, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_loop_inside_indirect_table(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, VRING_DESC_F_NEXT, 1);
	set_ind(f, TABLE, 1, DATA_A, 4, VRING_DESC_F_NEXT, 0);
	set_desc(f, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_next_out_of_table(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, DATA_A, 4, VRING_DESC_F_NEXT, 2);
	set_ind(f, TABLE, 1, DATA_A, 4, 0, 0);
	set_desc(f, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_skips_indirect_entry_outside_memory(void **state)
{
	struct fx *f = *state;

	f->vq.indirect = true;
	set_ind(f, TABLE, 0, BELOW_GPA, 4, 0, 0);
	set_desc(f, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain_skipped(f);
}

static void test_pop_returns_0_after_pushing_back_only_bad_chains(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 0, BELOW_GPA, 4, 0, 0);
	set_desc(f, 1, GAP_GPA, 4, 0, 0);
	make_avail(f, 0);
	make_avail(f, 1);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
	assert_null(e);
	assert_int_equal(f->vq.bad_chains, 2);
	assert_int_equal(f->used->idx, 2);
	assert_int_equal(f->used->ring[0].id, 0);
	assert_int_equal(f->used->ring[0].len, 0);
	assert_int_equal(f->used->ring[1].id, 1);
	assert_int_equal(f->used->ring[1].len, 0);
	assert_int_equal(f->vq.inflight, 0);
	assert_false(f->vq.broken);
}

/* A guest re-posting bad chains as fast as they come back: one call skips
 * at most a ring's worth, then hands the loop back (-EAGAIN), and the next
 * call goes on where it stopped. */
static void test_pop_gives_the_loop_back_after_a_ring_of_bad_chains(
	void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 0, BELOW_GPA, 4, 0, 0);
	set_desc(f, 1, R1_GPA, 4, 0, 0);
	for (unsigned i = 0; i < NUM; i++)
		make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), -EAGAIN);
	assert_null(e);
	assert_int_equal(f->vq.bad_chains, NUM);
	assert_int_equal(f->used->idx, NUM);
	/* The guest posts them again, and a good one after them. */
	for (unsigned i = 0; i < NUM - 1; i++)
		make_avail(f, 0);
	make_avail(f, 1);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 1);
	free(e);
	assert_int_equal(f->vq.bad_chains, 2 * NUM - 1);
	assert_false(f->vq.broken);
}

/* ---- broken rings ------------------------------------------------------- */

static void test_avail_idx_jumping_more_than_num_breaks_queue(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	for (unsigned i = 0; i < NUM; i++)
		set_desc(f, i, DATA_A, 4, 0, 0);
	f->avail->idx = NUM + 1;
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), -EIO);
	assert_null(e);
	assert_true(f->vq.broken);
	assert_false(vq_ready(&f->vq));
	assert_false(vq_has_avail(&f->vq));
	/* Nothing was consumed or pushed. */
	assert_int_equal(f->vq.last_avail, 0);
	assert_int_equal(f->used->idx, 0);
	/* And it stays broken. */
	f->avail->idx = 1;
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), -EIO);
}

static void test_avail_idx_exactly_num_ahead_is_fine(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	for (unsigned i = 0; i < NUM; i++) {
		set_desc(f, i, DATA_A, 4, 0, 0);
		make_avail(f, (uint16_t)i);
	}
	for (unsigned i = 0; i < NUM; i++) {
		assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
		assert_int_equal(e->head, i);
		free(e);
	}
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
	assert_false(f->vq.broken);
}

static void test_avail_idx_moving_back_is_quiet_and_resync_adopts_it(
	void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	for (unsigned i = 0; i < 3; i++) {
		set_desc(f, i, DATA_A, 4, 0, 0);
		make_avail(f, (uint16_t)i);
	}
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
		vq_push(&f->vq, e->head, 0);
		free(e);
	}
	/* A Linux guest taking back buffers (port unplug, teardown) rewinds
	 * its avail index behind ours: nothing to pop, and not broken. */
	f->avail_idx = 1;
	f->avail->idx = 1;
	assert_false(vq_has_avail(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 0);
	assert_false(f->vq.broken);
	/* Re-adding the port adopts the guest's index, and buffers it posts
	 * from there are popped. */
	vq_resync_avail(&f->vq);
	assert_int_equal(f->vq.last_avail, 1);
	set_desc(f, 5, DATA_B, 4, 0, 0);
	make_avail(f, 5);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 5);
	free(e);
}

static void test_reoffered_head_cannot_grow_chains_in_flight(void **state)
{
	struct fx *f = *state;
	struct vq_elem *held[NUM];
	struct vq_elem *e;

	/* A guest that offers head 0 over and over while we hold it would
	 * have us allocate without end: at one ring's worth we stop. */
	set_desc(f, 0, DATA_A, 4, 0, 0);
	for (unsigned i = 0; i < NUM; i++) {
		make_avail(f, 0);
		assert_int_equal(vq_pop(&f->vq, &f->mem, &held[i]), 1);
	}
	assert_int_equal(f->vq.inflight, NUM);
	make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), -EIO);
	assert_null(e);
	assert_true(f->vq.broken);
	for (unsigned i = 0; i < NUM; i++)
		free(held[i]);
}

static void test_resync_leaves_an_index_that_is_not_behind(void **state)
{
	struct fx *f = *state;

	set_desc(f, 0, DATA_A, 4, 0, 0);
	make_avail(f, 0);
	make_avail(f, 0);
	vq_resync_avail(&f->vq);
	assert_int_equal(f->vq.last_avail, 0); /* two chains still to pop */
	assert_true(vq_has_avail(&f->vq));
}

static void test_avail_idx_wrapping_past_65535_is_fine(void **state)
{
	struct fx *f = *state;
	struct vq vq = { 0 };
	struct vq_elem *e;

	f->used->idx = 0xffff;
	assert_int_equal(vq_setup(&vq, &f->mem, NUM, uva_of(R0_GPA + DESC_OFF),
				  uva_of(R0_GPA + AVAIL_OFF),
				  uva_of(R0_GPA + USED_OFF), 0xffff),
			 0);
	set_desc(f, 3, DATA_A, 4, 0, 0);
	set_desc(f, 4, DATA_B, 4, 0, 0);
	f->avail->ring[0xffff % NUM] = 3;
	f->avail->ring[0] = 4;
	f->avail->idx = 1; /* 0xffff + 2 */
	assert_int_equal(vq_pop(&vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 3);
	vq_push(&vq, e->head, 0);
	free(e);
	assert_int_equal(vq_pop(&vq, &f->mem, &e), 1);
	assert_int_equal(e->head, 4);
	vq_push(&vq, e->head, 0);
	free(e);
	assert_int_equal(f->used->idx, 1);
	assert_int_equal(f->used->ring[7].id, 3);
	assert_int_equal(f->used->ring[0].id, 4);
}

static void test_head_index_out_of_range_breaks_queue(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	make_avail(f, NUM);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), -EIO);
	assert_null(e);
	assert_true(f->vq.broken);
	assert_int_equal(f->used->idx, 0);
}

static void test_pop_on_unset_queue_returns_0(void **state)
{
	struct fx *f = *state;
	struct vq vq = { 0 };
	struct vq_elem *e;

	assert_int_equal(vq_pop(&vq, &f->mem, &e), 0);
	assert_false(vq_has_avail(&vq));
}

/* ---- vq_push -------------------------------------------------------------- */

static void test_push_fills_used_ring_and_bumps_idx(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 5, DATA_C, 64, VRING_DESC_F_WRITE, 0);
	make_avail(f, 5);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(f->vq.inflight, 1);
	vq_push(&f->vq, e->head, 77);
	free(e);
	assert_int_equal(f->used->idx, 1);
	assert_int_equal(f->used->ring[0].id, 5);
	assert_int_equal(f->used->ring[0].len, 77);
	assert_int_equal(f->vq.used_idx, 1);
	assert_int_equal(f->vq.inflight, 0);

	vq_push(&f->vq, 2, 3);
	assert_int_equal(f->used->idx, 2);
	assert_int_equal(f->used->ring[1].id, 2);
	assert_int_equal(f->used->ring[1].len, 3);
}

static void test_push_wraps_used_ring(void **state)
{
	struct fx *f = *state;
	struct vq vq = { 0 };

	f->used->idx = 0xfffe;
	assert_int_equal(vq_setup(&vq, &f->mem, NUM, uva_of(R0_GPA + DESC_OFF),
				  uva_of(R0_GPA + AVAIL_OFF),
				  uva_of(R0_GPA + USED_OFF), 0xfffe),
			 0);
	vq_push(&vq, 1, 10);
	vq_push(&vq, 2, 20);
	vq_push(&vq, 3, 30);
	assert_int_equal(f->used->idx, 1);
	assert_int_equal(f->used->ring[6].id, 1);
	assert_int_equal(f->used->ring[7].id, 2);
	assert_int_equal(f->used->ring[0].id, 3);
	assert_int_equal(f->used->ring[0].len, 30);
}

/* ---- notifications ------------------------------------------------------- */

static void test_should_notify_without_event_idx_follows_no_interrupt(
	void **state)
{
	struct fx *f = *state;

	f->vq.event_idx = false;
	vq_push(&f->vq, 0, 0);
	f->avail->flags = 0;
	assert_true(vq_should_notify(&f->vq));
	f->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(vq_should_notify(&f->vq));
	/* used_event is ignored without EVENT_IDX. */
	*used_event(f) = 0x1234;
	f->avail->flags = 0;
	assert_true(vq_should_notify(&f->vq));
}

static void test_should_notify_with_event_idx_uses_used_event(void **state)
{
	struct fx *f = *state;

	f->vq.event_idx = true;
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	f->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;

	/* The first time, nothing is known about what was signalled. */
	vq_push(&f->vq, 0, 0); /* used idx 1 */
	*used_event(f) = 0x7000;
	assert_true(vq_should_notify(&f->vq));

	/* The driver wants an interrupt once entry 1 is used (idx 1 -> 2). */
	*used_event(f) = 1;
	vq_push(&f->vq, 1, 0); /* used idx 2 */
	assert_true(vq_should_notify(&f->vq));

	/* Nothing pushed since: no interrupt even if the event matches. */
	assert_false(vq_should_notify(&f->vq));

	/* Event 5 is not passed by idx 2 -> 3 ... */
	*used_event(f) = 5;
	vq_push(&f->vq, 2, 0); /* used idx 3 */
	assert_false(vq_should_notify(&f->vq));
	/* ... but by 3 -> 6 (several pushes, one decision). */
	vq_push(&f->vq, 3, 0);
	vq_push(&f->vq, 4, 0);
	vq_push(&f->vq, 5, 0); /* used idx 6 */
	assert_true(vq_should_notify(&f->vq));

	/* An event the driver left behind (already passed) asks for nothing. */
	*used_event(f) = 2;
	vq_push(&f->vq, 6, 0); /* used idx 7 */
	assert_false(vq_should_notify(&f->vq));
}

static void test_should_notify_with_event_idx_across_wrap(void **state)
{
	struct fx *f = *state;
	struct vq vq = { 0 };

	f->used->idx = 0xfffd;
	assert_int_equal(vq_setup(&vq, &f->mem, NUM, uva_of(R0_GPA + DESC_OFF),
				  uva_of(R0_GPA + AVAIL_OFF),
				  uva_of(R0_GPA + USED_OFF), 0xfffd),
			 0);
	vq.event_idx = true;
	vq_push(&vq, 0, 0); /* used idx 0xfffe */
	assert_true(vq_should_notify(&vq));
	*used_event(f) = 0xffff; /* interrupt when idx goes 0xffff -> 0 */
	vq_push(&vq, 1, 0);
	vq_push(&vq, 2, 0);
	vq_push(&vq, 3, 0); /* used idx 1 */
	assert_true(vq_should_notify(&vq));
}

static void test_set_call_style_reset_makes_next_notify_true(void **state)
{
	struct fx *f = *state;

	f->vq.event_idx = true;
	vq_push(&f->vq, 0, 0);
	assert_true(vq_should_notify(&f->vq));
	*used_event(f) = 100;
	vq_push(&f->vq, 1, 0);
	assert_false(vq_should_notify(&f->vq));
	f->vq.signalled_used_valid = false;
	assert_true(vq_should_notify(&f->vq));
}

static void test_want_kick_with_event_idx_writes_avail_event(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	f->vq.event_idx = true;
	for (unsigned i = 0; i < 3; i++) {
		set_desc(f, i, DATA_A, 4, 0, 0);
		make_avail(f, (uint16_t)i);
		assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
		free(e);
	}
	*avail_event(f) = 0xbeef;
	f->used->flags = VRING_USED_F_NO_NOTIFY;
	vq_want_kick(&f->vq);
	assert_int_equal(*avail_event(f), 3);
	/* EVENT_IDX does not use the flag. */
	assert_int_equal(f->used->flags, VRING_USED_F_NO_NOTIFY);
}

static void test_want_kick_without_event_idx_clears_no_notify(void **state)
{
	struct fx *f = *state;

	f->vq.event_idx = false;
	*avail_event(f) = 0xbeef;
	f->used->flags = VRING_USED_F_NO_NOTIFY;
	vq_want_kick(&f->vq);
	assert_int_equal(f->used->flags, 0);
	assert_int_equal(*avail_event(f), 0xbeef);
}

/* ---- vq_elem_fill ------------------------------------------------------- */

static void test_elem_fill_across_iovecs_with_offset(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;
	uint8_t *a = host_of(f, DATA_A), *b = host_of(f, DATA_B),
		*c = host_of(f, DATA_C), *r = host_of(f, DATA_A + 0x80);
	static const char src[] = "0123456789";

	memset(a, '.', 8);
	memset(b, '.', 8);
	memset(c, '.', 8);
	memset(r, 'r', 8);
	/* One readable iovec, then writable ones of 4, 3 and 5 bytes. */
	set_desc(f, 0, DATA_A + 0x80, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_A, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(f, 2, DATA_B, 3, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	set_desc(f, 3, DATA_C, 5, VRING_DESC_F_WRITE, 0);
	make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(e->in_len, 12);

	/* Offset 2: 2 bytes into a, 3 into b, 1 into c. */
	assert_int_equal(vq_elem_fill(e, 2, src, 6), 6);
	assert_memory_equal(a, "..01....", 8);
	assert_memory_equal(b, "234.....", 8);
	assert_memory_equal(c, "5.......", 8);
	/* The readable part is never written. */
	assert_memory_equal(r, "rrrrrrrr", 8);

	/* Offset 7 (start of c), more than fits: 5 bytes. */
	assert_int_equal(vq_elem_fill(e, 7, src, 10), 5);
	assert_memory_equal(c, "01234...", 8);

	/* Offset at or past the end: nothing. */
	assert_int_equal(vq_elem_fill(e, 12, src, 1), 0);
	assert_int_equal(vq_elem_fill(e, 100, src, 1), 0);
	free(e);
}

static void test_elem_fill_with_no_writable_part_copies_nothing(void **state)
{
	struct fx *f = *state;
	struct vq_elem *e;

	set_desc(f, 0, DATA_A, 8, 0, 0);
	make_avail(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->mem, &e), 1);
	assert_int_equal(vq_elem_fill(e, 0, "abc", 3), 0);
	free(e);
}

/* ---- vq_mem ---------------------------------------------------------------- */

static void test_mem_lookup_refuses_zero_len_and_partial_ranges(void **state)
{
	struct fx *f = *state;

	assert_ptr_equal(vq_mem_gpa(&f->mem, R2_GPA, R_SIZE),
			 host_of(f, R2_GPA));
	assert_null(vq_mem_gpa(&f->mem, R2_GPA, 0));
	assert_null(vq_mem_gpa(&f->mem, R2_GPA, R_SIZE + 1));
	assert_null(vq_mem_gpa(&f->mem, R2_GPA - 1, 2));
	assert_null(vq_mem_gpa(&f->mem, UINT64_MAX, 2));
	assert_null(vq_mem_gpa(&f->mem, R2_GPA + 1, UINT64_MAX));
	assert_ptr_equal(vq_mem_uva(&f->mem, uva_of(R1_GPA) + 5, 1),
			 host_of(f, R1_GPA + 5));
	assert_null(vq_mem_uva(&f->mem, R1_GPA + 5, 1));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_setup_accepts_good_rings_and_sets_base),
		T(test_setup_rejects_num_zero_non_power_of_two_and_too_big),
		T(test_setup_rejects_misaligned_rings),
		T(test_setup_rejects_rings_outside_memory),
		T(test_pop_empty_ring_returns_0),
		T(test_pop_simple_readable_chain),
		T(test_unpop_gives_the_chain_back_for_the_next_pop),
		T(test_popped_past_a_mark_the_guest_rewound),
		T(test_popped_past_a_mark_whose_chain_was_taken_back),
		T(test_pop_readable_then_writable_chain),
		T(test_pop_buffer_crossing_contiguous_regions_splits_in_two_iovecs),
		T(test_pop_chain_using_every_descriptor_is_accepted),
		T(test_pop_valid_indirect_table),
		T(test_pop_skips_descriptor_loop),
		T(test_pop_skips_descriptor_pointing_to_itself),
		T(test_pop_skips_chain_longer_than_ring),
		T(test_pop_skips_loop_of_zero_length_descriptors),
		T(test_pop_skips_next_index_out_of_range),
		T(test_pop_skips_address_outside_memory),
		T(test_pop_skips_address_below_region_start),
		T(test_pop_skips_address_in_gap_between_regions),
		T(test_pop_skips_buffer_ending_just_before_region),
		T(test_pop_skips_address_plus_len_overflowing_2_64),
		T(test_pop_skips_len_crossing_end_of_region),
		T(test_pop_skips_len_crossing_from_r1_into_gap),
		T(test_pop_skips_readable_after_writable),
		T(test_pop_skips_indirect_with_next_flag),
		T(test_pop_skips_nested_indirect),
		T(test_pop_skips_indirect_len_not_multiple_of_16),
		T(test_pop_skips_indirect_len_zero),
		T(test_pop_skips_indirect_table_outside_memory),
		T(test_pop_skips_indirect_table_crossing_region_end),
		T(test_pop_skips_indirect_when_feature_off),
		T(test_pop_skips_loop_inside_indirect_table),
		T(test_pop_skips_indirect_next_out_of_table),
		T(test_pop_skips_indirect_entry_outside_memory),
		T(test_pop_returns_0_after_pushing_back_only_bad_chains),
		T(test_pop_gives_the_loop_back_after_a_ring_of_bad_chains),
		T(test_avail_idx_jumping_more_than_num_breaks_queue),
		T(test_avail_idx_exactly_num_ahead_is_fine),
		T(test_avail_idx_moving_back_is_quiet_and_resync_adopts_it),
		T(test_resync_leaves_an_index_that_is_not_behind),
		T(test_reoffered_head_cannot_grow_chains_in_flight),
		T(test_avail_idx_wrapping_past_65535_is_fine),
		T(test_head_index_out_of_range_breaks_queue),
		T(test_pop_on_unset_queue_returns_0),
		T(test_push_fills_used_ring_and_bumps_idx),
		T(test_push_wraps_used_ring),
		T(test_should_notify_without_event_idx_follows_no_interrupt),
		T(test_should_notify_with_event_idx_uses_used_event),
		T(test_should_notify_with_event_idx_across_wrap),
		T(test_set_call_style_reset_makes_next_notify_true),
		T(test_want_kick_with_event_idx_writes_avail_event),
		T(test_want_kick_without_event_idx_clears_no_notify),
		T(test_elem_fill_across_iovecs_with_offset),
		T(test_elem_fill_with_no_writable_part_copies_nothing),
		T(test_mem_lookup_refuses_zero_len_and_partial_ranges),
	};

	/* Malformed chains are logged by design; keep the output readable. */
	vp_log_set_level(VP_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
