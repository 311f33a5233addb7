/*
 * Unit tests for src/device/vhost_user.c.
 *
 * The vu is served one end of a socketpair and the test plays the frontend
 * on the other: it sends struct vu_msg (with SCM_RIGHTS fds where the
 * protocol wants them), runs one iteration of the fake loop and reads the
 * reply.  The device behind the vu is a recorder of vu_device_ops calls.
 * Guest memory is a memfd the test maps too, so it can lay out rings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_loop.h"
#include "vportfs/log.h"
#include "vportfs/vu.h"

#define NQUEUES 4u
#define QNUM 8u

#define MEM_SIZE 0x10000ull
#define MEM_GPA 0x40000000ull
#define MEM_UVA 0x7f1200000000ull
#define DESC_OFF 0x0000ull
#define AVAIL_OFF 0x0200ull
#define USED_OFF 0x0400ull
#define DATA_OFF 0x1000ull

#define OFFERED_FEATURES                                                       \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) |         \
	 (1ull << VIRTIO_F_INDIRECT_DESC) | (1ull << VIRTIO_CONSOLE_F_MULTIPORT))
#define OFFERED_PROTOCOL_FEATURES                                              \
	((1ull << VU_PROTOCOL_F_MQ) | (1ull << VU_PROTOCOL_F_REPLY_ACK) |      \
	 (1ull << VU_PROTOCOL_F_BACKEND_REQ) | (1ull << VU_PROTOCOL_F_CONFIG))

/* ---- the device: records every call ---------------------------------- */

struct rec {
	unsigned get_config, set_config, set_features, connected, disconnected;
	unsigned kicks[NQUEUES], stops[NQUEUES];
	uint32_t last_off, last_len;
	uint64_t features;
	uint8_t set_data[VU_MAX_CONFIG_SIZE];
	int get_config_rc;
};

/* A recognisable 12-byte console config: cols 80, rows 25, 31 ports,
 * emerg_wr 0. */
static const uint8_t dev_config[12] = { 80, 0, 25, 0, 31, 0, 0, 0, 0, 0, 0, 0 };

static int rec_get_config(void *opaque, uint32_t off, uint8_t *buf,
			  uint32_t len)
{
	struct rec *r = opaque;

	r->get_config++;
	r->last_off = off;
	r->last_len = len;
	if (r->get_config_rc)
		return r->get_config_rc;
	for (uint32_t i = 0; i < len; i++)
		buf[i] = off + i < sizeof(dev_config) ? dev_config[off + i] : 0;
	return 0;
}

static int rec_set_config(void *opaque, uint32_t off, const uint8_t *buf,
			  uint32_t len)
{
	struct rec *r = opaque;

	r->set_config++;
	r->last_off = off;
	r->last_len = len;
	memcpy(r->set_data, buf, len);
	return 0;
}

static void rec_set_features(void *opaque, uint64_t features)
{
	struct rec *r = opaque;

	r->set_features++;
	r->features = features;
}

static void rec_queue_kick(void *opaque, unsigned q)
{
	struct rec *r = opaque;

	assert_true(q < NQUEUES);
	r->kicks[q]++;
}

static void rec_queue_stop(void *opaque, unsigned q, bool keep)
{
	(void)keep;
	struct rec *r = opaque;

	assert_true(q < NQUEUES);
	r->stops[q]++;
}

static void rec_connected(void *opaque)
{
	((struct rec *)opaque)->connected++;
}

static void rec_disconnected(void *opaque)
{
	((struct rec *)opaque)->disconnected++;
}

static const struct vu_device_ops rec_ops = {
	.get_config = rec_get_config,
	.set_config = rec_set_config,
	.set_features = rec_set_features,
	.queue_kick = rec_queue_kick,
	.queue_stop = rec_queue_stop,
	.connected = rec_connected,
	.disconnected = rec_disconnected,
};

/* ---- fixture ---------------------------------------------------------- */

struct fx {
	struct fake_loop *fl;
	struct vu *vu;
	struct rec rec;
	int sock;    /* our (the frontend's) end */
	int memfd;
	uint8_t *gm; /* our mapping of guest memory */
	int kick;    /* eventfd whose other copy is the queue's kick fd */
	int call;    /* our end of the call socketpair */
	int fds_at_start;
	const void *row; /* the table row a contract test runs */
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void attach_new_frontend(struct fx *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vu_attach_fd(f->vu, sv[0]), 0);
	f->sock = sv[1];
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vu_config cfg = {
		.features = OFFERED_FEATURES,
		.protocol_features = OFFERED_PROTOCOL_FEATURES,
		.nqueues = NQUEUES,
	};

	assert_non_null(f);
	f->fds_at_start = count_fds();
	f->sock = f->memfd = f->kick = f->call = -1;
	f->fl = fake_loop_new();
	assert_non_null(f->fl);
	f->vu = vu_new(fake_loop_vp(f->fl), &cfg, &rec_ops, &f->rec);
	assert_non_null(f->vu);
	attach_new_frontend(f);
	assert_int_equal(f->rec.connected, 1);
	assert_true(vu_connected(f->vu));
	*state = f;
	return 0;
}

/* For a table row: cmocka hands the row in as the initial state. */
static int setup_row(void **state)
{
	const void *row = *state;

	setup(state);
	((struct fx *)*state)->row = row;
	return 0;
}

/* Watches a vu keeps while it lives, frontend or not: the eventfd its
 * SIGBUS guard wakes it through. */
#define VU_OWN_WATCHES 1

static int teardown(void **state)
{
	struct fx *f = *state;

	vu_free(f->vu);
	/* Nothing the vu asked the loop for may outlive it. */
	assert_int_equal(fake_loop_nwatches(f->fl), 0);
	assert_int_equal(fake_loop_ndeferred(f->fl), 0);
	fake_loop_free(f->fl);
	if (f->gm)
		munmap(f->gm, MEM_SIZE);
	if (f->sock >= 0)
		close(f->sock);
	if (f->memfd >= 0)
		close(f->memfd);
	if (f->kick >= 0)
		close(f->kick);
	if (f->call >= 0)
		close(f->call);
	/* Every fd the vu received was closed. */
	assert_int_equal(count_fds(), f->fds_at_start);
	free(f);
	return 0;
}

/* ---- talking to the backend ---------------------------------------------- */

static void send_bytes(int sock, const void *buf, size_t len, const int *fds,
		       unsigned nfds)
{
	/* Room for more fds than a message may carry (VU_MAX_FDS). */
	char cbuf[CMSG_SPACE(sizeof(int) * 16)] = {0};
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(nfds <= 16);
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_msg_fds(struct fx *f, uint32_t request, uint32_t flags,
			 const void *payload, uint32_t size, const int *fds,
			 unsigned nfds)
{
	struct vu_msg m = { .hdr = { request, VU_VERSION | flags, size } };

	assert_true(size <= sizeof(m.payload));
	if (size)
		memcpy(&m.payload, payload, size);
	send_bytes(f->sock, &m, VU_HDR_SIZE + size, fds, nfds);
}

static void send_msg(struct fx *f, uint32_t request, uint32_t flags,
		     const void *payload, uint32_t size)
{
	send_msg_fds(f, request, flags, payload, size, NULL, 0);
}

/* One loop iteration: the backend reads and answers what we sent. */
static void pump(struct fx *f)
{
	fake_loop_run(f->fl, 0);
}

/* Read one reply; false if none is waiting. */
static bool recv_reply(struct fx *f, struct vu_msg *m)
{
	ssize_t n;

	memset(m, 0, sizeof(*m));
	n = recv(f->sock, &m->hdr, VU_HDR_SIZE, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return false;
	assert_int_equal(n, VU_HDR_SIZE);
	assert_true(m->hdr.size <= sizeof(m->payload));
	if (m->hdr.size)
		assert_int_equal(recv(f->sock, &m->payload, m->hdr.size,
				      MSG_DONTWAIT),
				 (ssize_t)m->hdr.size);
	return true;
}

static void expect_no_reply(struct fx *f)
{
	char c;

	assert_int_equal(recv(f->sock, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

/* A u64 reply (GET_* or REPLY_ACK ack): flags exactly 0x5, size exactly 8. */
static uint64_t expect_u64(struct fx *f, uint32_t request)
{
	struct vu_msg m;

	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, request);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 8);
	return m.payload.u64;
}

/* Send a request with NEED_REPLY and return its ack value. */
static uint64_t request_ack(struct fx *f, uint32_t request, const void *payload,
			    uint32_t size, const int *fds, unsigned nfds)
{
	uint64_t v;

	send_msg_fds(f, request, VU_FLAG_NEED_REPLY, payload, size, fds, nfds);
	pump(f);
	v = expect_u64(f, request);
	expect_no_reply(f);
	return v;
}

static uint64_t get_u64(struct fx *f, uint32_t request)
{
	uint64_t v;

	send_msg(f, request, 0, NULL, 0);
	pump(f);
	v = expect_u64(f, request);
	expect_no_reply(f);
	return v;
}

static uint64_t set_u64(struct fx *f, uint32_t request, uint64_t v)
{
	return request_ack(f, request, &v, sizeof(v), NULL, 0);
}

static uint64_t set_state(struct fx *f, uint32_t request, uint32_t index,
			  uint32_t num)
{
	struct vu_vring_state st = { index, num };

	return request_ack(f, request, &st, sizeof(st), NULL, 0);
}

/* Peer closed the socket: reads give EOF. */
static void expect_dropped(struct fx *f)
{
	char c;

	assert_false(vu_connected(f->vu));
	assert_int_equal(recv(f->sock, &c, 1, MSG_DONTWAIT), 0);
}

/* ---- guest memory and queues --------------------------------------------- */

static int make_memfd(size_t size)
{
	int fd = memfd_create("vportfs-test-guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* The 72-byte SET_MEM_TABLE UML sends: nregions, padding, two slots. */
static uint32_t mem_table_payload(struct vu_mem_table *t, uint64_t gpa,
				  uint64_t size, uint64_t uva, uint64_t offset)
{
	memset(t, 0, sizeof(*t));
	t->nregions = 1;
	t->regions[0] = (struct vu_mem_region){ gpa, size, uva, offset };
	return VU_MEM_TABLE_HDR_SIZE + 2 * sizeof(struct vu_mem_region);
}

static void set_mem_table(struct fx *f)
{
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);

	assert_int_equal(size, 72);
	f->memfd = make_memfd(MEM_SIZE);
	f->gm = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     f->memfd, 0);
	assert_true(f->gm != MAP_FAILED);
	assert_int_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
				     &f->memfd, 1),
			 0);
}

static uint64_t ring_off(unsigned q)
{
	return (uint64_t)q * 0x800;
}

static struct vring_desc *g_desc(struct fx *f, unsigned q)
{
	return (struct vring_desc *)(f->gm + ring_off(q) + DESC_OFF);
}

static struct vring_avail *g_avail(struct fx *f, unsigned q)
{
	return (struct vring_avail *)(f->gm + ring_off(q) + AVAIL_OFF);
}

static struct vring_used *g_used(struct fx *f, unsigned q)
{
	return (struct vring_used *)(f->gm + ring_off(q) + USED_OFF);
}

static void send_vring_addr(struct fx *f, unsigned q)
{
	struct vu_vring_addr a = {
		.index = q,
		.desc_user_addr = MEM_UVA + ring_off(q) + DESC_OFF,
		.used_user_addr = MEM_UVA + ring_off(q) + USED_OFF,
		.avail_user_addr = MEM_UVA + ring_off(q) + AVAIL_OFF,
	};

	assert_int_equal(request_ack(f, VU_REQ_SET_VRING_ADDR, &a, sizeof(a),
				     NULL, 0),
			 0);
}

static void send_vring_fd(struct fx *f, uint32_t request, unsigned q, int fd)
{
	uint64_t v = q;

	assert_int_equal(request_ack(f, request, &v, sizeof(v), &fd, 1), 0);
}

/* Everything a queue needs except SET_VRING_ENABLE, as UML sends it:
 * features with bit 30 (so rings start disabled), REPLY_ACK. */
static void prepare_queue(struct fx *f, unsigned q, uint16_t base)
{
	int sv[2];

	if (!f->gm) {
		assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES,
					 (1ull << VIRTIO_F_VERSION_1) |
						 (1ull << VU_F_PROTOCOL_FEATURES)),
				 0);
		assert_int_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES,
					 OFFERED_PROTOCOL_FEATURES),
				 0);
		set_mem_table(f);
	}
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, q, QNUM), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_BASE, q, base), 0);
	send_vring_addr(f, q);
	/* UML's call fd is a socketpair end. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	send_vring_fd(f, VU_REQ_SET_VRING_CALL, q, sv[0]);
	close(sv[0]);
	if (f->call >= 0)
		close(f->call);
	f->call = sv[1];
	if (f->kick >= 0)
		close(f->kick);
	f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->kick >= 0);
	send_vring_fd(f, VU_REQ_SET_VRING_KICK, q, f->kick);
}

static void start_queue(struct fx *f, unsigned q, uint16_t base)
{
	prepare_queue(f, q, base);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, q, 1), 0);
	assert_true(vu_queue_started(f->vu, q));
}

/* ---- features -------------------------------------------------------------- */

static void test_get_features_reply_flags_are_0x5(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	send_msg(f, VU_REQ_GET_FEATURES, 0, NULL, 0);
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, VU_REQ_GET_FEATURES);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 8);
	expect_no_reply(f);
}

static void test_get_features_offers_config_features_and_bit_30(void **state)
{
	struct fx *f = *state;

	assert_int_equal(get_u64(f, VU_REQ_GET_FEATURES),
			 OFFERED_FEATURES | (1ull << 30));
}

static void test_get_features_with_need_reply_sends_only_the_value(
	void **state)
{
	struct fx *f = *state;

	send_msg(f, VU_REQ_GET_FEATURES, VU_FLAG_NEED_REPLY, NULL, 0);
	pump(f);
	assert_int_equal(expect_u64(f, VU_REQ_GET_FEATURES),
			 OFFERED_FEATURES | (1ull << 30));
	expect_no_reply(f); /* no extra ack */
}

static void test_get_protocol_features_offers_reply_ack_config_backend_req_mq(
	void **state)
{
	struct fx *f = *state;
	uint64_t v = get_u64(f, VU_REQ_GET_PROTOCOL_FEATURES);

	assert_int_equal(v, OFFERED_PROTOCOL_FEATURES);
	assert_true(v & (1ull << VU_PROTOCOL_F_REPLY_ACK));
	assert_true(v & (1ull << VU_PROTOCOL_F_CONFIG));
	assert_true(v & (1ull << VU_PROTOCOL_F_BACKEND_REQ));
	assert_true(v & (1ull << VU_PROTOCOL_F_MQ));
}

static void test_set_features_tells_device_without_bit_30(void **state)
{
	struct fx *f = *state;
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) |
			(1ull << VIRTIO_F_EVENT_IDX);

	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, want | (1ull << 30)),
			 0);
	assert_int_equal(f->rec.set_features, 1);
	assert_int_equal(f->rec.features, want);
	assert_int_equal(vu_features(f->vu), want | (1ull << 30));
}

static void test_set_features_with_unoffered_bit_fails(void **state)
{
	struct fx *f = *state;

	assert_int_not_equal(set_u64(f, VU_REQ_SET_FEATURES,
				     (1ull << VIRTIO_F_VERSION_1) | (1ull << 40)),
			     0);
	assert_int_equal(f->rec.set_features, 0);
	assert_true(vu_connected(f->vu));
}

static void test_set_protocol_features_negotiating_reply_ack_is_acked(
	void **state)
{
	struct fx *f = *state;
	uint64_t v = 1ull << VU_PROTOCOL_F_REPLY_ACK;

	/* UML sets NEED_REPLY on the very message that negotiates it. */
	send_msg(f, VU_REQ_SET_PROTOCOL_FEATURES, VU_FLAG_NEED_REPLY, &v,
		 sizeof(v));
	pump(f);
	assert_int_equal(expect_u64(f, VU_REQ_SET_PROTOCOL_FEATURES), 0);
	expect_no_reply(f);
}

static void test_set_protocol_features_with_unoffered_bit_fails(void **state)
{
	struct fx *f = *state;

	/* INBAND_NOTIFICATIONS (14) is not offered. */
	assert_int_not_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES,
				     1ull << 14),
			     0);
}

static void test_no_reply_without_need_reply(void **state)
{
	struct fx *f = *state;
	uint64_t v = 1ull << VU_PROTOCOL_F_REPLY_ACK;

	send_msg(f, VU_REQ_SET_PROTOCOL_FEATURES, 0, &v, sizeof(v));
	pump(f);
	expect_no_reply(f);
	/* Even after REPLY_ACK was negotiated: the flag is per message. */
	send_msg(f, VU_REQ_SET_OWNER, 0, NULL, 0);
	pump(f);
	expect_no_reply(f);
	/* A failing request without NEED_REPLY is not answered either. */
	v = 1ull << 40;
	send_msg(f, VU_REQ_SET_FEATURES, 0, &v, sizeof(v));
	pump(f);
	expect_no_reply(f);
	assert_true(vu_connected(f->vu));
}

static void test_need_reply_honoured_before_reply_ack_negotiated(void **state)
{
	struct fx *f = *state;

	send_msg(f, VU_REQ_SET_OWNER, VU_FLAG_NEED_REPLY, NULL, 0);
	pump(f);
	assert_int_equal(expect_u64(f, VU_REQ_SET_OWNER), 0);
	expect_no_reply(f);
}

static void test_set_owner_any_number_of_times(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 3; i++)
		assert_int_equal(request_ack(f, VU_REQ_SET_OWNER, NULL, 0, NULL,
					     0),
				 0);
}

static void test_get_queue_num_returns_nqueues(void **state)
{
	struct fx *f = *state;

	assert_int_equal(get_u64(f, VU_REQ_GET_QUEUE_NUM), NQUEUES);
	assert_int_equal(vu_nqueues(f->vu), NQUEUES);
}

/* ---- vring state -------------------------------------------------------- */

static void test_set_vring_num_acks_0_on_success(void **state)
{
	struct fx *f = *state;

	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 256), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, NQUEUES - 1, 1), 0);
}

static void test_set_vring_num_bad_index_or_num_acks_failure(void **state)
{
	struct fx *f = *state;

	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, NQUEUES, 8), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0xffffffff, 8),
			     0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 3), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 0), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 65536), 0);
	assert_true(vu_connected(f->vu));
}

static void test_set_vring_num_with_short_payload_acks_failure(void **state)
{
	struct fx *f = *state;
	uint32_t idx = 0;

	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_NUM, &idx,
					 sizeof(idx), NULL, 0),
			     0);
	assert_true(vu_connected(f->vu));
}

static void test_set_vring_addr_bad_index_acks_failure(void **state)
{
	struct fx *f = *state;
	struct vu_vring_addr a = { .index = NQUEUES };

	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_ADDR, &a,
					 sizeof(a), NULL, 0),
			     0);
}

static void test_set_vring_enable_bad_value_acks_failure(void **state)
{
	struct fx *f = *state;

	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 2), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, NQUEUES, 1),
			     0);
}

static void test_set_vring_kick_without_fd_and_without_nofd_flag_fails(
	void **state)
{
	struct fx *f = *state;
	uint64_t v = 0;

	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_KICK, &v,
					 sizeof(v), NULL, 0),
			     0);
	/* The NOFD flag asks for polling mode, which would need busy
	 * polling: refused, not accepted and left dead. */
	v = VU_VRING_NOFD_MASK;
	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_KICK, &v,
					 sizeof(v), NULL, 0),
			     0);
}

static void test_set_vring_call_bad_index_fails_and_closes_fd(void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t v = NQUEUES;
	int before;

	assert_true(efd >= 0);
	before = count_fds();
	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_CALL, &v,
					 sizeof(v), &efd, 1),
			     0);
	/* The received copy was not kept. */
	assert_int_equal(count_fds(), before);
	close(efd);
}

/* ---- config space ---------------------------------------------------------- */

static void send_get_config(struct fx *f, uint32_t off, uint32_t size,
			    uint32_t payload_size)
{
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} p = { .hdr = { off, size, 0 } };

	send_msg(f, VU_REQ_GET_CONFIG, 0, &p, payload_size);
	pump(f);
}

static void test_get_config_returns_device_bytes(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	/* UML: offset 0, size 12, payload 12 + size. */
	send_get_config(f, 0, 12, 12 + 12);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, VU_REQ_GET_CONFIG);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 12 + 12);
	assert_int_equal(m.payload.config.hdr.offset, 0);
	assert_int_equal(m.payload.config.hdr.size, 12);
	assert_memory_equal(m.payload.config.data, dev_config, 12);
	assert_int_equal(f->rec.get_config, 1);
	assert_int_equal(f->rec.last_off, 0);
	assert_int_equal(f->rec.last_len, 12);
	expect_no_reply(f);
}

static void test_get_config_partial_as_uml_reads_max_nr_ports(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	/* max_nr_ports is at offset 4: UML asks offset 0, size 4 + 4. */
	send_get_config(f, 0, 8, 12 + 8);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 12 + 8);
	assert_int_equal(m.payload.config.hdr.size, 8);
	assert_memory_equal(m.payload.config.data, dev_config, 8);
}

static void test_get_config_size_over_256_fails_with_empty_reply(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	send_get_config(f, 0, VU_MAX_CONFIG_SIZE + 1, 12 + VU_MAX_CONFIG_SIZE);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, VU_REQ_GET_CONFIG);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 0);
	assert_int_equal(f->rec.get_config, 0);
	expect_no_reply(f);
	assert_true(vu_connected(f->vu));
}

static void test_get_config_offset_plus_size_overflow_fails(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	send_get_config(f, 0xfffffff8u, 16, 12 + 16);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 0);
	send_get_config(f, 250, 12, 12 + 12); /* past 256 */
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 0);
	assert_int_equal(f->rec.get_config, 0);
	assert_true(vu_connected(f->vu));
}

static void test_get_config_payload_shorter_than_size_fails(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	send_get_config(f, 0, 12, 12 + 4);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 0);
	assert_int_equal(f->rec.get_config, 0);
}

static void test_get_config_device_error_gives_empty_reply(void **state)
{
	struct fx *f = *state;
	struct vu_msg m;

	f->rec.get_config_rc = -EINVAL;
	send_get_config(f, 0, 12, 12 + 12);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 0);
	expect_no_reply(f);
	assert_true(vu_connected(f->vu));
}

static void test_set_config_passes_range_and_bytes_to_device(void **state)
{
	struct fx *f = *state;
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[4];
	} __attribute__((packed)) p = { { 8, 4, 0 }, { 'x', 0, 0, 0 } };

	assert_int_equal(request_ack(f, VU_REQ_SET_CONFIG, &p, sizeof(p), NULL,
				     0),
			 0);
	assert_int_equal(f->rec.set_config, 1);
	assert_int_equal(f->rec.last_off, 8);
	assert_int_equal(f->rec.last_len, 4);
	assert_int_equal(f->rec.set_data[0], 'x');
}

/* ---- memory table ------------------------------------------------------- */

static void test_set_mem_table_72_byte_payload_with_one_memfd_is_accepted(
	void **state)
{
	struct fx *f = *state;
	const struct vq_mem *mem;

	set_mem_table(f);
	mem = vu_mem(f->vu);
	assert_int_equal(mem->nregions, 1);
	assert_int_equal(mem->r[0].gpa, MEM_GPA);
	assert_int_equal(mem->r[0].uva, MEM_UVA);
	assert_int_equal(mem->r[0].size, MEM_SIZE);
	/* The backend's mapping shows what the guest wrote. */
	memcpy(f->gm + 0x123, "guest", 5);
	assert_memory_equal(vq_mem_gpa(mem, MEM_GPA + 0x123, 5), "guest", 5);
	assert_memory_equal(vq_mem_uva(mem, MEM_UVA + 0x123, 5), "guest", 5);
	assert_null(vq_mem_gpa(mem, MEM_GPA - 1, 1));
}

static void test_set_mem_table_honours_mmap_offset(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE - 0x1000,
					  MEM_UVA, 0x1000);
	int fd = make_memfd(MEM_SIZE);
	uint8_t *p = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			  fd, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size, &fd, 1),
			 0);
	memcpy(p + 0x1000, "first", 5);
	assert_memory_equal(vq_mem_gpa(vu_mem(f->vu), MEM_GPA, 5), "first", 5);
	munmap(p, MEM_SIZE);
	close(fd);
}

static void test_set_mem_table_zero_or_nine_regions_fails(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t = { 0 };
	int fds[VU_MAX_FDS];

	for (unsigned i = 0; i < VU_MAX_FDS; i++)
		fds[i] = make_memfd(0x1000);
	t.nregions = 0;
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t,
					 sizeof(t), NULL, 0),
			     0);
	t.nregions = 9;
	for (unsigned i = 0; i < VU_MAX_MEM_REGIONS; i++)
		t.regions[i] = (struct vu_mem_region){ MEM_GPA + i * 0x1000,
						       0x1000,
						       MEM_UVA + i * 0x1000, 0 };
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t,
					 sizeof(t), fds, VU_MAX_FDS),
			     0);
	assert_int_equal(vu_mem(f->vu)->nregions, 0);
	assert_true(vu_connected(f->vu));
	for (unsigned i = 0; i < VU_MAX_FDS; i++)
		close(fds[i]);
}

static void test_set_mem_table_fd_count_mismatch_fails(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, 0x1000, MEM_UVA, 0);
	int fds[2] = { make_memfd(0x1000), make_memfd(0x1000) };
	int before = count_fds();

	/* One region, no fd. */
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
					 NULL, 0),
			     0);
	/* One region, two fds. */
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
					 fds, 2),
			     0);
	/* Two regions, one fd. */
	t.nregions = 2;
	t.regions[1] = (struct vu_mem_region){ MEM_GPA + 0x1000, 0x1000,
					       MEM_UVA + 0x1000, 0 };
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
					 fds, 1),
			     0);
	assert_int_equal(vu_mem(f->vu)->nregions, 0);
	/* The fds that came with the failed requests were closed. */
	assert_int_equal(count_fds(), before);
	close(fds[0]);
	close(fds[1]);
}

static void test_set_mem_table_payload_too_short_for_nregions_fails(
	void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	int fds[3] = { make_memfd(0x1000), make_memfd(0x1000),
		       make_memfd(0x1000) };

	mem_table_payload(&t, MEM_GPA, 0x1000, MEM_UVA, 0);
	t.nregions = 3; /* but only 72 bytes: room for two */
	assert_int_not_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, 72, fds,
					 3),
			     0);
	for (unsigned i = 0; i < 3; i++)
		close(fds[i]);
}

static void test_set_mem_table_memfd_smaller_than_region_fails(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);
	int fd = make_memfd(0x1000); /* region claims 0x10000 */
	uint64_t ack;

	/* Accepting it would let a ring access past the file's end kill the
	 * daemon with SIGBUS. */
	ack = request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size, &fd, 1);
	close(fd);
	assert_int_not_equal(ack, 0);
	assert_int_equal(vu_mem(f->vu)->nregions, 0);
}

/* ---- queues ------------------------------------------------------------------ */

static void test_vring_starts_on_enable_and_device_is_kicked(void **state)
{
	struct fx *f = *state;

	prepare_queue(f, 0, 0);
	/* With protocol features rings start disabled. */
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 1);
	assert_int_equal(vu_queue(f->vu, 0)->num, QNUM);
	/* The rings are where the frontend's user addresses say (the
	 * backend's own mapping of them). */
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->desc,
			 vq_mem_gpa(vu_mem(f->vu), MEM_GPA + DESC_OFF, 1));
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->avail,
			 vq_mem_gpa(vu_mem(f->vu), MEM_GPA + AVAIL_OFF, 1));
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->used,
			 vq_mem_gpa(vu_mem(f->vu), MEM_GPA + USED_OFF, 1));
	g_avail(f, 0)->idx = 0x1234;
	assert_int_equal(vu_queue(f->vu, 0)->avail->idx, 0x1234);
	assert_null(vu_queue(f->vu, NQUEUES));
	assert_false(vu_queue_started(f->vu, NQUEUES));
}

static void test_vring_starts_on_kick_without_protocol_features(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);
	int efd;
	uint64_t v = 1;

	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES,
				 1ull << VIRTIO_F_VERSION_1),
			 0);
	f->memfd = make_memfd(MEM_SIZE);
	assert_int_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
				     &f->memfd, 1),
			 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 1, QNUM), 0);
	send_vring_addr(f, 1);
	efd = eventfd(0, EFD_CLOEXEC);
	assert_true(efd >= 0);
	assert_int_equal(request_ack(f, VU_REQ_SET_VRING_KICK, &(uint64_t){ 1 },
				     8, &efd, 1),
			 0);
	assert_true(vu_queue_started(f->vu, 1));
	assert_int_equal(f->rec.kicks[1], 1);
	/* The kick fd is watched. */
	assert_int_equal(write(efd, &v, sizeof(v)), 8);
	pump(f);
	assert_int_equal(f->rec.kicks[1], 2);
	close(efd);
}

/* The kick watch is made when the kick fd comes: if that fails, the
 * frontend hears it (REPLY_ACK), and a queue never "starts" without one. */
static void test_kick_watch_allocation_failure_fails_set_vring_kick(
	void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t v = 0;

	prepare_queue(f, 0, 0);
	assert_true(efd >= 0);
	fake_loop_fail_watches(f->fl, 1);
	assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_KICK, &v, 8,
					 &efd, 1),
			     0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_false(vu_queue_started(f->vu, 0));
	/* Sent again, with memory to spare: the queue starts. */
	assert_int_equal(request_ack(f, VU_REQ_SET_VRING_KICK, &v, 8, &efd, 1),
			 0);
	assert_true(vu_queue_started(f->vu, 0));
	close(efd);
}

/* The SIGBUS guard has room for two full tables (a table replacing
 * another): a mapping it cannot guard is refused, never used unguarded. */
static void test_mem_table_the_sigbus_guard_cannot_cover_is_refused(
	void **state)
{
	enum { SLOTS = 2 * VU_MAX_MEM_REGIONS };
	struct fx *f = *state;
	struct vu_config cfg = { .features = OFFERED_FEATURES,
				 .protocol_features = OFFERED_PROTOCOL_FEATURES,
				 .nqueues = NQUEUES };
	struct fx more[SLOTS];
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);

	set_mem_table(f); /* the first slot */
	for (unsigned i = 0; i < SLOTS; i++) {
		more[i] = *f;
		more[i].vu = vu_new(fake_loop_vp(f->fl), &cfg, &rec_ops,
				    &more[i].rec);
		assert_non_null(more[i].vu);
		attach_new_frontend(&more[i]);
		/* Slots 1..SLOTS-1 are free; the last one is not. */
		if (i < SLOTS - 1)
			assert_int_equal(request_ack(&more[i],
						     VU_REQ_SET_MEM_TABLE, &t,
						     size, &f->memfd, 1),
					 0);
		else
			assert_int_not_equal(request_ack(&more[i],
							 VU_REQ_SET_MEM_TABLE,
							 &t, size, &f->memfd,
							 1),
					     0);
	}
	/* A slot freed is a slot for the next table. */
	vu_free(more[0].vu);
	close(more[0].sock);
	assert_int_equal(request_ack(&more[SLOTS - 1], VU_REQ_SET_MEM_TABLE, &t,
				     size, &f->memfd, 1),
			 0);
	for (unsigned i = 1; i < SLOTS; i++) {
		vu_free(more[i].vu);
		close(more[i].sock);
	}
}

static void test_kick_fd_event_calls_queue_kick(void **state)
{
	struct fx *f = *state;
	uint64_t v = 1;

	start_queue(f, 2, 0);
	assert_int_equal(f->rec.kicks[2], 1);
	pump(f); /* nothing pending */
	assert_int_equal(f->rec.kicks[2], 1);
	assert_int_equal(write(f->kick, &v, sizeof(v)), 8);
	pump(f);
	assert_int_equal(f->rec.kicks[2], 2);
	/* The eventfd was drained: no spurious kick next time. */
	pump(f);
	assert_int_equal(f->rec.kicks[2], 2);
	assert_int_equal(f->rec.kicks[0] + f->rec.kicks[1] + f->rec.kicks[3], 0);
}

/* A ring address that is no frontend user address is refused by the
 * request that carries it; the ring keeps the addresses it had. */
static void
test_vring_addr_outside_memory_is_refused_old_addr_kept(void **state)
{
	struct fx *f = *state;
	struct vu_vring_addr a = {
		.index = 0,
		.desc_user_addr = MEM_GPA, /* a guest address, not a user one */
		.used_user_addr = MEM_UVA + USED_OFF,
		.avail_user_addr = MEM_UVA + AVAIL_OFF,
	};

	prepare_queue(f, 0, 0);
	assert_int_not_equal(
		request_ack(f, VU_REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0),
		0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vu_queue_started(f->vu, 0));
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->desc,
			 vq_mem_uva(vu_mem(f->vu), MEM_UVA + DESC_OFF, 1));
}

static void test_get_vring_base_returns_index_and_stops_ring(void **state)
{
	struct fx *f = *state;
	struct vu_vring_state st = { 1, 0 };
	struct vq_elem *e;
	struct vu_msg m;

	start_queue(f, 1, 5);
	/* The guest makes one chain available; the device pops it. */
	g_desc(f, 1)[0] = (struct vring_desc){ MEM_GPA + DATA_OFF, 4, 0, 0 };
	g_avail(f, 1)->ring[5 % QNUM] = 0;
	g_avail(f, 1)->idx = 6;
	assert_int_equal(vq_pop(vu_queue(f->vu, 1), vu_mem(f->vu), &e), 1);
	free(e);

	send_msg(f, VU_REQ_GET_VRING_BASE, VU_FLAG_NEED_REPLY, &st, sizeof(st));
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, VU_REQ_GET_VRING_BASE);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, sizeof(struct vu_vring_state));
	assert_int_equal(m.payload.state.index, 1);
	assert_int_equal(m.payload.state.num, 6);
	expect_no_reply(f);
	assert_false(vu_queue_started(f->vu, 1));
	assert_int_equal(f->rec.stops[1], 1);
	assert_int_equal(f->rec.stops[0] + f->rec.stops[2] + f->rec.stops[3], 0);
	/* The kick fd is no longer watched. */
	/* The socket. */
	assert_int_equal(fake_loop_nwatches(f->fl), VU_OWN_WATCHES + 1);
}

static void test_get_vring_base_on_stopped_ring_returns_set_base(void **state)
{
	struct fx *f = *state;
	struct vu_vring_state st = { 3, 0 };
	struct vu_msg m;

	assert_int_equal(set_state(f, VU_REQ_SET_VRING_BASE, 3, 42), 0);
	send_msg(f, VU_REQ_GET_VRING_BASE, 0, &st, sizeof(st));
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.payload.state.index, 3);
	assert_int_equal(m.payload.state.num, 42);
	assert_int_equal(f->rec.stops[3], 0); /* never started */
}

static void test_ring_restarts_after_get_vring_base_from_new_base(void **state)
{
	struct fx *f = *state;

	struct vu_vring_state st = { 0, 0 };
	struct vu_msg m;

	start_queue(f, 0, 0);
	send_msg(f, VU_REQ_GET_VRING_BASE, 0, &st, sizeof(st));
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.payload.state.num, 0);
	assert_false(vu_queue_started(f->vu, 0));
	/* The frontend sets the ring up again, from another base. */
	start_queue(f, 0, 7);
	assert_int_equal(vu_queue(f->vu, 0)->last_avail, 7);
	assert_int_equal(f->rec.kicks[0], 2);
}

static void test_set_vring_enable_0_stops_ring(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.stops[0], 1);
	/* And enabling again restarts it. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 2);
}

/*
 * Queue 0 running: the guest offered chains 0 and 1, the device popped both
 * and returned only chain 0.  So the guest has seen used idx 1 while the
 * device's last_avail is 2.
 */
static void pop_two_push_one(struct fx *f)
{
	struct vq *vq = vu_queue(f->vu, 0);
	struct vq_elem *e0, *e1;

	g_desc(f, 0)[0] = (struct vring_desc){ MEM_GPA + DATA_OFF, 4, 0, 0 };
	g_desc(f, 0)[1] = (struct vring_desc){ MEM_GPA + DATA_OFF + 4, 4, 0, 0 };
	g_avail(f, 0)->ring[0] = 0;
	g_avail(f, 0)->ring[1] = 1;
	g_avail(f, 0)->idx = 2;
	assert_int_equal(vq_pop(vq, vu_mem(f->vu), &e0), 1);
	assert_int_equal(vq_pop(vq, vu_mem(f->vu), &e1), 1);
	vq_push(vq, e0->head, 0);
	free(e0);
	free(e1); /* what queue_stop will make the device do */
	assert_int_equal(g_used(f, 0)->idx, 1);
}

/* After a restart the next used entry goes where the guest expects it:
 * right after the ones it has seen (used->idx), not at last_avail. */
static void expect_used_idx_resumed(struct fx *f)
{
	struct vq *vq = vu_queue(f->vu, 0);

	assert_true(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.stops[0], 1);
	assert_int_equal(vq->last_avail, 2);
	assert_int_equal(vq->used_idx, 1);
	vq_push(vq, 1, 0);
	assert_int_equal(g_used(f, 0)->idx, 2);
	assert_int_equal(g_used(f, 0)->ring[1].id, 1);
}

static void test_ring_restart_after_set_mem_table_resumes_used_idx_from_ring(
	void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);

	start_queue(f, 0, 0);
	pop_two_push_one(f);
	/* Memory hot-plug: the frontend resends the table while running. */
	assert_int_equal(request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size,
				     &f->memfd, 1),
			 0);
	expect_used_idx_resumed(f);
}

static void test_ring_reenable_resumes_used_idx_from_ring(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	pop_two_push_one(f);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	expect_used_idx_resumed(f);
}

static void test_set_vring_num_on_started_ring_fails(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 16), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_BASE, 0, 3), 0);
	assert_true(vu_queue_started(f->vu, 0));
}

static void test_queue_notify_writes_exactly_8_bytes_to_call_fd(void **state)
{
	struct fx *f = *state;
	uint64_t v = 0;
	char more;

	start_queue(f, 0, 0);
	/* The device returns a buffer and asks for an interrupt, twice. */
	vq_push(vu_queue(f->vu, 0), 0, 0);
	assert_int_equal(g_used(f, 0)->idx, 1);
	vu_queue_notify(f->vu, 0);
	vq_push(vu_queue(f->vu, 0), 1, 0);
	vu_queue_notify(f->vu, 0); /* batched: one interrupt */
	/* Nothing is sent before the loop runs its deferred calls. */
	assert_int_equal(recv(f->call, &v, sizeof(v), MSG_DONTWAIT), -1);
	assert_int_equal(fake_loop_ndeferred(f->fl), 1);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(recv(f->call, &v, sizeof(v), MSG_DONTWAIT), 8);
	assert_int_equal(v, 1);
	assert_int_equal(recv(f->call, &more, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_queue_notify_respects_no_interrupt(void **state)
{
	struct fx *f = *state;
	char c;

	start_queue(f, 0, 0);
	g_avail(f, 0)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	vu_queue_notify(f->vu, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(recv(f->call, &c, 1, MSG_DONTWAIT), -1);
}

static void test_queue_notify_on_stopped_queue_writes_nothing(void **state)
{
	struct fx *f = *state;
	char c;

	prepare_queue(f, 0, 0); /* call fd set, not enabled */
	vu_queue_notify(f->vu, 0);
	vu_queue_notify(f->vu, NQUEUES); /* out of range: ignored */
	fake_loop_run_deferred(f->fl);
	assert_int_equal(recv(f->call, &c, 1, MSG_DONTWAIT), -1);
}

/* The guest posts `chains` chains of `descs` 4-byte descriptors each on
 * queue 0 (head of chain i: descriptor i * descs); the device pops `pop`
 * of them and pushes them back.  The used index before the pushes. */
static uint16_t post_pop_push(struct fx *f, unsigned chains, unsigned descs,
			      unsigned pop)
{
	struct vq *vq = vu_queue(f->vu, 0);
	uint16_t before = vq->used_idx;

	for (unsigned i = 0; i < chains * descs; i++) {
		bool last = i % descs == descs - 1;

		g_desc(f, 0)[i] = (struct vring_desc){
			MEM_GPA + DATA_OFF + 4 * i, 4,
			last ? 0 : VRING_DESC_F_NEXT, (uint16_t)(i + 1)
		};
	}
	for (unsigned c = 0; c < chains; c++)
		g_avail(f, 0)->ring[c] = (uint16_t)(c * descs);
	g_avail(f, 0)->idx = (uint16_t)chains;
	for (unsigned c = 0; c < pop; c++) {
		struct vq_elem *e;

		assert_int_equal(vq_pop(vq, vu_mem(f->vu), &e), 1);
		vq_push(vq, e->head, 0);
		free(e);
	}
	return before;
}

static bool call_sent(struct fx *f)
{
	uint64_t v;

	return recv(f->call, &v, sizeof(v), MSG_DONTWAIT) == sizeof(v);
}

static void test_moderated_notify_waits_while_the_driver_has_room(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	/* Half the ring posted and taken back: a driver that writes on
	 * reclaims these itself, an interrupt now would find nothing to do. */
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	fake_loop_run_deferred(f->fl);
	assert_false(call_sent(f));
	/* A driver that stopped writing still gets its interrupt. */
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_true(call_sent(f));
}

/* The guest posts one more chain on queue 0 (never popped here). */
static void post_one_more(struct fx *f)
{
	g_avail(f, 0)->idx++;
}

/* The guest posts one more chain before the lazy timer fires: the
 * decision is put off, no interrupt goes. */
static void expect_put_off(struct fx *f)
{
	post_one_more(f);
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_false(call_sent(f));
}

/* Queue 0 streams until its decision was put off the most times. */
static void put_off_to_the_bound(struct fx *f)
{
	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	for (unsigned i = 0; i < VU_LAZY_PUT_OFF_MAX; i++)
		expect_put_off(f);
}

static void test_lazy_decision_is_put_off_while_the_driver_posts(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	fake_loop_run_deferred(f->fl);
	/* It wrote again meanwhile: not waiting for what came back. */
	expect_put_off(f);
	expect_put_off(f);
	/* It stopped: the interrupt it asked for goes. */
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_true(call_sent(f));
	assert_int_equal(fake_loop_fire_timers(f->fl), 0);
}

static void test_lazy_decision_is_put_off_a_bounded_number_of_times(
	void **state)
{
	struct fx *f = *state;

	put_off_to_the_bound(f);
	/* Still writing, but it asked long enough ago. */
	post_one_more(f);
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_true(call_sent(f));
}

static void test_lazy_put_offs_start_again_on_a_reset_ring(void **state)
{
	struct fx *f = *state;
	struct vu_vring_state st = { 0, 0 };
	struct vu_msg m;

	put_off_to_the_bound(f);
	send_msg(f, VU_REQ_GET_VRING_BASE, 0, &st, sizeof(st));
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_false(call_sent(f));
	/* Set up again, the ring streams: put off as if never used. */
	memset(g_used(f, 0), 0, sizeof(struct vring_used));
	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	expect_put_off(f);
}

static void test_lazy_decision_on_a_stopped_ring_is_not_put_off(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	/* Stopped, its avail index moving: the decision is taken, and the
	 * interrupt goes when the ring starts again. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	post_one_more(f);
	assert_int_equal(fake_loop_fire_timers(f->fl), 1);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	fake_loop_run_deferred(f->fl);
	assert_true(call_sent(f));
}

static void test_moderated_notify_is_at_once_when_the_ring_was_full(
	void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	/* Every descriptor posted: the driver's writer may sleep until a
	 * buffer comes back, so the first ones back wake it now. */
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM, 1, 2));
	fake_loop_run_deferred(f->fl);
	assert_true(call_sent(f));
}

static void test_moderated_notify_counts_descriptors_not_chains(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	/* Half as many chains as the ring has entries, two descriptors each:
	 * the ring is full all the same. */
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 2, 1));
	fake_loop_run_deferred(f->fl);
	assert_true(call_sent(f));
}

static void test_interrupt_owed_over_a_ring_pause_is_sent_on_restart(
	void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM / 2, 1, 2));
	/* The ring pauses inside the delay: nothing can go while it is
	 * stopped, and nothing is forgotten either. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	fake_loop_fire_timers(f->fl);
	fake_loop_run_deferred(f->fl);
	assert_false(call_sent(f));
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	fake_loop_run_deferred(f->fl);
	assert_true(call_sent(f));
}

static void test_moderated_notify_without_pushes_sends_nothing(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	vu_queue_notify_moderated(f->vu, 0, post_pop_push(f, QNUM, 1, 0));
	fake_loop_run_deferred(f->fl);
	fake_loop_fire_timers(f->fl);
	assert_false(call_sent(f));
}

static void test_set_backend_req_fd_is_accepted(void **state)
{
	struct fx *f = *state;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(request_ack(f, VU_REQ_SET_BACKEND_REQ_FD, NULL, 0,
				     &sv[0], 1),
			 0);
	close(sv[0]);
	close(sv[1]);
	/* Without an fd it fails. */
	assert_int_not_equal(request_ack(f, VU_REQ_SET_BACKEND_REQ_FD, NULL, 0,
					 NULL, 0),
			     0);
}

static void test_reset_owner_stops_queues_and_restarts_device(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	assert_int_equal(request_ack(f, VU_REQ_RESET_OWNER, NULL, 0, NULL, 0),
			 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.stops[0], 1);
	assert_int_equal(f->rec.disconnected, 1);
	assert_int_equal(f->rec.connected, 2);
	assert_true(vu_connected(f->vu));
}

/* ---- unknown and malformed messages ------------------------------------- */

static void test_unknown_request_gets_failure_ack_and_connection_stays(
	void **state)
{
	struct fx *f = *state;

	assert_int_not_equal(request_ack(f, 99, NULL, 0, NULL, 0), 0);
	assert_int_not_equal(request_ack(f, VU_REQ_SET_LOG_BASE, NULL, 0, NULL,
					 0),
			     0);
	assert_true(vu_connected(f->vu));
	assert_int_equal(f->rec.disconnected, 0);
	assert_int_equal(get_u64(f, VU_REQ_GET_QUEUE_NUM), NQUEUES);
	assert_string_equal(vu_request_name(99), "UNKNOWN");
	assert_string_equal(vu_request_name(VU_REQ_GET_CONFIG), "GET_CONFIG");
}

static void test_unknown_request_with_payload_and_fd_is_skipped(void **state)
{
	struct fx *f = *state;
	uint8_t junk[40];
	int efd = eventfd(0, EFD_CLOEXEC);
	int before = count_fds();

	memset(junk, 0xa5, sizeof(junk));
	send_msg_fds(f, 1000, 0, junk, sizeof(junk), &efd, 1);
	pump(f);
	expect_no_reply(f);
	assert_int_equal(count_fds(), before);
	/* The stream is still in step. */
	assert_int_equal(get_u64(f, VU_REQ_GET_QUEUE_NUM), NQUEUES);
	close(efd);
}

static void check_vu_serves_new_frontend(struct fx *f)
{
	close(f->sock);
	attach_new_frontend(f);
	assert_int_equal(f->rec.connected, 2);
	assert_true(vu_connected(f->vu));
	assert_int_equal(get_u64(f, VU_REQ_GET_FEATURES),
			 OFFERED_FEATURES | (1ull << 30));
}

static void test_bad_version_drops_connection(void **state)
{
	struct fx *f = *state;
	struct vu_msg_hdr h = { VU_REQ_GET_FEATURES, 0x2, 0 };

	send_bytes(f->sock, &h, sizeof(h), NULL, 0);
	pump(f);
	assert_int_equal(f->rec.disconnected, 1);
	expect_dropped(f);
	assert_int_equal(fake_loop_nwatches(f->fl), VU_OWN_WATCHES);
	check_vu_serves_new_frontend(f);
}

static void test_payload_size_over_max_drops_connection(void **state)
{
	struct fx *f = *state;
	struct vu_msg_hdr h = { VU_REQ_SET_FEATURES, VU_VERSION,
				VU_MAX_PAYLOAD + 1 };

	send_bytes(f->sock, &h, sizeof(h), NULL, 0);
	pump(f);
	assert_int_equal(f->rec.disconnected, 1);
	expect_dropped(f);
	check_vu_serves_new_frontend(f);
}

/* The largest message any request has: SET_CONFIG of the whole 256-byte
 * config space (VU_MAX_PAYLOAD is the union's size, rounded up). */
static void
test_largest_message_set_config_of_256_bytes_is_accepted(void **state)
{
	struct fx *f = *state;
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} __attribute__((packed)) p = {{0, VU_MAX_CONFIG_SIZE, 0}, {0}};

	assert_true(sizeof(p) <= VU_MAX_PAYLOAD);
	p.data[VU_MAX_CONFIG_SIZE - 1] = 'z';
	assert_int_equal(
		request_ack(f, VU_REQ_SET_CONFIG, &p, sizeof(p), NULL, 0), 0);
	assert_int_equal(f->rec.set_config, 1);
	assert_int_equal(f->rec.last_len, VU_MAX_CONFIG_SIZE);
	assert_int_equal(f->rec.set_data[VU_MAX_CONFIG_SIZE - 1], 'z');
	assert_true(vu_connected(f->vu));
}

static void test_message_split_across_two_writes_is_reassembled(void **state)
{
	struct fx *f = *state;
	struct vu_msg m = { .hdr = { VU_REQ_SET_VRING_NUM,
				     VU_VERSION | VU_FLAG_NEED_REPLY, 8 } };

	m.payload.state = (struct vu_vring_state){ 1, 3 }; /* fails: 3 */
	/* Half a header ... */
	send_bytes(f->sock, &m, 6, NULL, 0);
	pump(f);
	expect_no_reply(f);
	/* ... the rest of it ... */
	send_bytes(f->sock, (uint8_t *)&m + 6, VU_HDR_SIZE - 6, NULL, 0);
	pump(f);
	expect_no_reply(f);
	/* ... then the payload later. */
	send_bytes(f->sock, &m.payload, 8, NULL, 0);
	pump(f);
	assert_int_not_equal(expect_u64(f, VU_REQ_SET_VRING_NUM), 0);
	/* The next message is read from the right place. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 1, 16), 0);
}

static void test_two_messages_in_one_write_are_both_handled(void **state)
{
	struct fx *f = *state;
	struct vu_msg_hdr two[2] = {
		{ VU_REQ_GET_QUEUE_NUM, VU_VERSION, 0 },
		{ VU_REQ_SET_OWNER, VU_VERSION | VU_FLAG_NEED_REPLY, 0 },
	};

	send_bytes(f->sock, two, sizeof(two), NULL, 0);
	pump(f);
	assert_int_equal(expect_u64(f, VU_REQ_GET_QUEUE_NUM), NQUEUES);
	assert_int_equal(expect_u64(f, VU_REQ_SET_OWNER), 0);
	expect_no_reply(f);
}

static void test_frontend_close_disconnects_and_stops_queues(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	start_queue(f, 3, 0);
	close(f->sock);
	f->sock = -1;
	pump(f);
	assert_int_equal(f->rec.disconnected, 1);
	assert_false(vu_connected(f->vu));
	assert_int_equal(f->rec.stops[0], 1);
	assert_int_equal(f->rec.stops[3], 1);
	assert_int_equal(f->rec.stops[1] + f->rec.stops[2], 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_false(vu_queue_started(f->vu, 3));
	assert_int_equal(vu_mem(f->vu)->nregions, 0);
	assert_int_equal(vu_features(f->vu), 0);
	assert_int_equal(fake_loop_nwatches(f->fl), VU_OWN_WATCHES);
	/* A new frontend starts from scratch. */
	attach_new_frontend(f);
	assert_int_equal(f->rec.connected, 2);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(get_u64(f, VU_REQ_GET_QUEUE_NUM), NQUEUES);
}

static void test_frontend_close_mid_message_disconnects(void **state)
{
	struct fx *f = *state;
	struct vu_msg_hdr h = { VU_REQ_SET_FEATURES, VU_VERSION, 8 };
	int efd = eventfd(0, EFD_CLOEXEC);

	send_bytes(f->sock, &h, sizeof(h), &efd, 1);
	close(efd);
	pump(f);
	close(f->sock);
	f->sock = -1;
	pump(f);
	assert_int_equal(f->rec.disconnected, 1);
	assert_false(vu_connected(f->vu));
	/* teardown checks the eventfd copy was closed */
}

static void test_second_attach_while_connected_is_refused(void **state)
{
	struct fx *f = *state;
	int sv[2];
	char c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vu_attach_fd(f->vu, sv[0]), -EBUSY);
	/* It took ownership and closed it. */
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
	close(sv[1]);
	assert_int_equal(f->rec.connected, 1);
}

static void test_broken_ring_is_reported_once_on_its_error_fd(void **state)
{
	struct fx *f = *state;
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vq *vq;
	uint64_t v;

	assert_true(err >= 0);
	start_queue(f, 0, 0);
	send_vring_fd(f, VU_REQ_SET_VRING_ERR, 0, err);
	vq = vu_queue(f->vu, 0);
	g_avail(f, 0)->idx = QNUM + 1; /* more than the ring holds */
	assert_false(vq_has_avail(vq));
	assert_true(vq->broken);
	vu_queue_notify(f->vu, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(read(err, &v, sizeof(v)), sizeof(v));
	/* Once: the ring stays broken until the frontend resets it. */
	vu_queue_notify(f->vu, 0);
	fake_loop_run_deferred(f->fl);
	assert_int_equal(read(err, &v, sizeof(v)), -1);
	close(err);
}

static void test_vu_disconnect_tells_device(void **state)
{
	struct fx *f = *state;

	start_queue(f, 0, 0);
	vu_disconnect(f->vu);
	assert_int_equal(f->rec.disconnected, 1);
	assert_int_equal(f->rec.stops[0], 1);
	expect_dropped(f);
}

/* ==== malformed frontend messages: the contract ==========================
 *
 * One table per kind of malformed input (docs/security.md, "What is
 * validated where").  Each row is a test of its own, on a fresh vu (main()
 * makes them, named "<table>: <row>"): it checks the outcome the contract
 * gives the row and that nothing the message carried was kept (fds are
 * counted, here and in teardown); where the request has a well-formed
 * twin, the twin is sent next and must work: the refusal was for the
 * defect alone, and the connection is still in step.
 */

#define FEAT                                                                   \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) |         \
	 (1ull << VU_F_PROTOCOL_FEATURES))

/* Features with bit 30, protocol features, the memory table. */
static void negotiate(struct fx *f)
{
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES,
				 (1ull << VIRTIO_F_VERSION_1) |
					 (1ull << VU_F_PROTOCOL_FEATURES)),
			 0);
	assert_int_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES,
				 OFFERED_PROTOCOL_FEATURES),
			 0);
	set_mem_table(f);
}

/* What queue 1 may be left without, so that a row's request completes it. */
#define NO_NUM	1u
#define NO_ADDR 2u
#define NO_KICK 4u
#define NO_CALL 8u

/* Queue 1 set up but for `skip` and SET_VRING_ENABLE. */
static void q1_all_but(struct fx *f, unsigned skip)
{
	negotiate(f);
	if (!(skip & NO_NUM))
		assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 1, QNUM),
				 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_BASE, 1, 0), 0);
	if (!(skip & NO_ADDR))
		send_vring_addr(f, 1);
	if (!(skip & NO_CALL)) {
		f->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		send_vring_fd(f, VU_REQ_SET_VRING_CALL, 1, f->call);
	}
	if (!(skip & NO_KICK)) {
		f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		send_vring_fd(f, VU_REQ_SET_VRING_KICK, 1, f->kick);
	}
}

static void prep_nothing(struct fx *f)
{
	(void)f;
}

static void prep_q1_no_num(struct fx *f)
{
	q1_all_but(f, NO_NUM);
}

static void prep_q1_no_addr(struct fx *f)
{
	q1_all_but(f, NO_ADDR);
}

static void prep_q1_no_kick(struct fx *f)
{
	q1_all_but(f, NO_KICK);
}

static void prep_q1_no_call(struct fx *f)
{
	q1_all_but(f, NO_CALL);
}

static void prep_q1_all(struct fx *f)
{
	q1_all_but(f, 0);
}

/* Does queue 1 start when enabled?  (It is disabled again after.) */
static bool q1_starts(struct fx *f)
{
	bool started;

	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 1, 1), 0);
	started = vu_queue_started(f->vu, 1);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 1, 0), 0);
	return started;
}

static bool q1_starts_at_5(struct fx *f)
{
	bool at5;

	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 1, 1), 0);
	at5 = vu_queue_started(f->vu, 1) && vu_queue(f->vu, 1)->last_avail == 5;
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 1, 0), 0);
	return at5;
}

static bool q1_started(struct fx *f)
{
	return vu_queue_started(f->vu, 1);
}

static bool features_set(struct fx *f)
{
	return vu_features(f->vu) == FEAT && f->rec.set_features == 1;
}

static bool device_reset(struct fx *f)
{
	return f->rec.connected == 2 && f->rec.disconnected == 1;
}

static bool mem_mapped(struct fx *f)
{
	return vu_mem(f->vu)->nregions == 1;
}

static bool config_written(struct fx *f)
{
	return f->rec.set_config == 1 && f->rec.set_data[0] == 'x';
}

static void pl_features(union vu_payload *p)
{
	p->u64 = FEAT;
}

static void pl_protocol(union vu_payload *p)
{
	p->u64 = OFFERED_PROTOCOL_FEATURES;
}

static void pl_none(union vu_payload *p)
{
	(void)p;
}

static void pl_mem(union vu_payload *p)
{
	mem_table_payload(&p->mem, MEM_GPA, MEM_SIZE, MEM_UVA, 0);
}

static void pl_num(union vu_payload *p)
{
	p->state = (struct vu_vring_state){1, QNUM};
}

static void pl_base5(union vu_payload *p)
{
	p->state = (struct vu_vring_state){1, 5};
}

static void pl_enable(union vu_payload *p)
{
	p->state = (struct vu_vring_state){1, 1};
}

static void pl_addr(union vu_payload *p)
{
	p->addr = (struct vu_vring_addr){
		.index = 1,
		.desc_user_addr = MEM_UVA + ring_off(1) + DESC_OFF,
		.used_user_addr = MEM_UVA + ring_off(1) + USED_OFF,
		.avail_user_addr = MEM_UVA + ring_off(1) + AVAIL_OFF,
	};
}

static void pl_q1(union vu_payload *p)
{
	p->u64 = 1;
}

static void pl_config(union vu_payload *p)
{
	p->config.hdr = (struct vu_config_hdr){8, 4, 0};
	memcpy(p->config.data, "xyzw", 4);
}

/* A request the backend answers with a failure ack when malformed. */
struct contract {
	const char *name;
	uint32_t request;
	uint32_t size; /* the payload size the spec gives it */
	unsigned nfds; /* ... and the fds */
	bool memfds;   /* they are guest memory (else eventfds) */
	void (*prepare)(struct fx *f);
	void (*payload)(union vu_payload *p); /* the well-formed payload */
	bool (*applied)(struct fx *f);	      /* NULL: nothing to see */
	unsigned kept; /* fds the backend keeps of a well-formed one */
	unsigned nbad;
	uint32_t bad[8]; /* payload sizes it must refuse */
};

#define BAD(...)                                                               \
	.nbad = sizeof((uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t),          \
	.bad = {__VA_ARGS__}

static const struct contract contracts[] = {
	{"SET_FEATURES", VU_REQ_SET_FEATURES, 8, 0, false, prep_nothing,
	 pl_features, features_set, 0, BAD(0, 4, 7, 9, 12, 16)},
	{"SET_PROTOCOL_FEATURES", VU_REQ_SET_PROTOCOL_FEATURES, 8, 0, false,
	 prep_nothing, pl_protocol, NULL, 0, BAD(0, 4, 12, 16)},
	{"SET_OWNER", VU_REQ_SET_OWNER, 0, 0, false, prep_nothing, pl_none,
	 NULL, 0, BAD(1, 4, 8)},
	{"RESET_OWNER", VU_REQ_RESET_OWNER, 0, 0, false, prep_nothing, pl_none,
	 device_reset, 0, BAD(4, 8)},
	/* 8 + whole 32-byte slots, at least nregions (1) of them, at most 8:
	 * 40 (QEMU), 72 (UML), ... 264. */
	{"SET_MEM_TABLE", VU_REQ_SET_MEM_TABLE, 72, 1, true, prep_nothing,
	 pl_mem, mem_mapped, 0, BAD(0, 4, 8, 39, 41, 71, 73, 268)},
	{"SET_VRING_NUM", VU_REQ_SET_VRING_NUM, 8, 0, false, prep_q1_no_num,
	 pl_num, q1_starts, 0, BAD(0, 4, 7, 9, 12, 16)},
	{"SET_VRING_ADDR", VU_REQ_SET_VRING_ADDR, 40, 0, false, prep_q1_no_addr,
	 pl_addr, q1_starts, 0, BAD(0, 8, 32, 39, 41, 48)},
	{"SET_VRING_BASE", VU_REQ_SET_VRING_BASE, 8, 0, false, prep_q1_all,
	 pl_base5, q1_starts_at_5, 0, BAD(0, 4, 12, 16)},
	{"SET_VRING_KICK", VU_REQ_SET_VRING_KICK, 8, 1, false, prep_q1_no_kick,
	 pl_q1, q1_starts, 1, BAD(0, 4, 12, 16)},
	{"SET_VRING_CALL", VU_REQ_SET_VRING_CALL, 8, 1, false, prep_q1_no_call,
	 pl_q1, NULL, 1, BAD(0, 4, 12, 16)},
	{"SET_VRING_ERR", VU_REQ_SET_VRING_ERR, 8, 1, false, prep_q1_all, pl_q1,
	 NULL, 1, BAD(0, 4, 12, 16)},
	{"SET_VRING_ENABLE", VU_REQ_SET_VRING_ENABLE, 8, 0, false, prep_q1_all,
	 pl_enable, q1_started, 0, BAD(0, 4, 12, 16)},
	{"SET_BACKEND_REQ_FD", VU_REQ_SET_BACKEND_REQ_FD, 0, 1, false,
	 prep_nothing, pl_none, NULL, 1, BAD(4, 8)},
	/* The header, then exactly hdr.size (4) bytes. */
	{"SET_CONFIG", VU_REQ_SET_CONFIG, 16, 0, false, prep_nothing, pl_config,
	 config_written, 0, BAD(0, 4, 11, 12, 15, 17, 28)},
};

static void make_fds(const struct contract *c, int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		fds[i] = c->memfds && i == 0
				 ? make_memfd(MEM_SIZE)
				 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(fds[i] >= 0);
	}
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* Send c's request with `size` payload bytes (the well-formed payload, cut
 * short or padded with zeros) and `nfds` fds.  Returns the ack; asserts
 * that the backend kept `kept` of the fds and is still connected. */
static uint64_t send_contract(struct fx *f, const struct contract *c,
			      const union vu_payload *p, uint32_t size,
			      unsigned nfds, unsigned kept)
{
	int fds[12];
	uint64_t ack;
	int before;

	assert_true(nfds <= 12);
	make_fds(c, fds, nfds);
	before = count_fds();
	ack = request_ack(f, c->request, p, size, fds, nfds);
	assert_int_equal(count_fds() - before, (int)kept);
	close_fds(fds, nfds);
	assert_true(vu_connected(f->vu));
	return ack;
}

/* The well-formed twin works, and can be seen to have worked. */
static void send_well_formed(struct fx *f, const struct contract *c,
			     const union vu_payload *p)
{
	assert_int_equal(send_contract(f, c, p, c->size, c->nfds, c->kept), 0);
	if (c->applied)
		assert_true(c->applied(f));
}

/* Wrong sizes: each payload size other than the spec's is refused with a
 * failure ack, changes nothing, keeps no fd; the connection goes on. */
static void row_wrong_size_is_refused(void **state)
{
	struct fx *f = *state;
	const struct contract *c = f->row;
	union vu_payload p;

	memset(&p, 0, sizeof(p));
	c->payload(&p);
	c->prepare(f);
	for (unsigned k = 0; k < c->nbad; k++) {
		assert_int_not_equal(c->bad[k], c->size);
		assert_int_not_equal(
			send_contract(f, c, &p, c->bad[k], c->nfds, 0), 0);
		if (c->applied)
			assert_false(c->applied(f));
	}
	send_well_formed(f, c, &p);
}

/* Fds: one more than the request takes, or one fewer, is refused; every
 * fd that came is closed, none is kept. */
static void row_wrong_fd_count_is_refused(void **state)
{
	struct fx *f = *state;
	const struct contract *c = f->row;
	/* One more, twelve (more than a message may carry: VU_MAX_FDS),
	 * one fewer. */
	unsigned counts[3] = {c->nfds + 1, 12, c->nfds - 1};
	union vu_payload p;

	memset(&p, 0, sizeof(p));
	c->payload(&p);
	c->prepare(f);
	for (unsigned k = 0; k < (c->nfds ? 3u : 2u); k++) {
		assert_int_not_equal(
			send_contract(f, c, &p, c->size, counts[k], 0), 0);
		if (c->applied)
			assert_false(c->applied(f));
	}
	send_well_formed(f, c, &p);
}

/* A request answered with a value the protocol gives no failure form
 * (REPLY_ACK: "no behavioural change" for them): a malformed one cannot be
 * answered truthfully, and a wrong answer would be read as the value.  The
 * backend ends the connection (the spec's "may close the connection");
 * the frontend sees EOF, never a made-up reply, and the next one is a fresh
 * device. */
struct get_case {
	const char *name;
	uint32_t request;
	uint32_t size;
	uint32_t index; /* GET_VRING_BASE: the queue */
	unsigned nfds;
};

static const struct get_case get_cases[] = {
	{"GET_FEATURES with 8 bytes", VU_REQ_GET_FEATURES, 8, 0, 0},
	{"GET_FEATURES with an fd", VU_REQ_GET_FEATURES, 0, 0, 1},
	{"GET_PROTOCOL_FEATURES with 4 bytes", VU_REQ_GET_PROTOCOL_FEATURES, 4,
	 0, 0},
	{"GET_QUEUE_NUM with 8 bytes", VU_REQ_GET_QUEUE_NUM, 8, 0, 0},
	{"GET_VRING_BASE with no payload", VU_REQ_GET_VRING_BASE, 0, 0, 0},
	{"GET_VRING_BASE with 4 bytes", VU_REQ_GET_VRING_BASE, 4, 0, 0},
	{"GET_VRING_BASE with 12 bytes", VU_REQ_GET_VRING_BASE, 12, 0, 0},
	{"GET_VRING_BASE with an fd", VU_REQ_GET_VRING_BASE, 8, 0, 1},
	{"GET_VRING_BASE of queue NQUEUES", VU_REQ_GET_VRING_BASE, 8, NQUEUES,
	 0},
	{"GET_VRING_BASE of queue 2^32-1", VU_REQ_GET_VRING_BASE, 8,
	 0xffffffffu, 0},
};

static void row_malformed_get_ends_the_connection(void **state)
{
	struct fx *f = *state;
	const struct get_case *c = f->row;
	union vu_payload p = {.state = {c->index, 0}};
	int efd = eventfd(0, EFD_CLOEXEC);

	start_queue(f, 0, 0);
	send_msg_fds(f, c->request, VU_FLAG_NEED_REPLY, &p, c->size, &efd,
		     c->nfds);
	close(efd);
	pump(f);
	/* EOF, and no byte of a reply before it. */
	expect_dropped(f);
	assert_int_equal(f->rec.disconnected, 1);
	/* The running ring was stopped on the way out, while its memory was
	 * still there. */
	assert_int_equal(f->rec.stops[0], 1);
	assert_int_equal(fake_loop_nwatches(f->fl), VU_OWN_WATCHES);
	check_vu_serves_new_frontend(f);
	/* teardown counts fds: the one that came along was closed */
}

/* GET_CONFIG has a failure form: a reply with an empty payload.  A
 * malformed one gets that, the device is not asked, the connection goes
 * on. */
struct get_config_case {
	const char *name;
	uint32_t offset, len; /* the header */
	uint32_t size;	      /* payload bytes sent */
	unsigned nfds;
};

static const struct get_config_case get_config_cases[] = {
	{"no payload", 0, 12, 0, 0},
	{"half a header", 0, 12, 4, 0},
	{"one byte short of a header", 0, 12, 11, 0},
	{"header only, 12 bytes announced", 0, 12, 12, 0},
	{"one byte short", 0, 12, 23, 0},
	{"one byte too many", 0, 12, 25, 0},
	{"an fd", 0, 12, 24, 1},
	{"257 bytes", 0, VU_MAX_CONFIG_SIZE + 1, 12, 0},
	{"past 256", 250, 12, 24, 0},
	{"offset + size overflows", 0xfffffff8u, 16, 28, 0},
};

static void row_malformed_get_config_gets_empty_reply(void **state)
{
	struct fx *f = *state;
	const struct get_config_case *c = f->row;
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} p = {.hdr = {c->offset, c->len, 0}};
	int efd = eventfd(0, EFD_CLOEXEC);
	int before = count_fds();
	struct vu_msg m;

	send_msg_fds(f, VU_REQ_GET_CONFIG, 0, &p, c->size, &efd, c->nfds);
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.request, VU_REQ_GET_CONFIG);
	assert_int_equal(m.hdr.flags, 0x5);
	assert_int_equal(m.hdr.size, 0);
	expect_no_reply(f);
	assert_int_equal(count_fds(), before);
	close(efd);
	assert_int_equal(f->rec.get_config, 0);
	assert_true(vu_connected(f->vu));
	/* The well-formed twin. */
	send_get_config(f, 0, 12, 12 + 12);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 24);
	assert_memory_equal(m.payload.config.data, dev_config, 12);
}

/* The guest posts one chain on running queue 0 and it pops with its bytes:
 * the ring and guest memory are as they were. */
static void expect_q0_works(struct fx *f)
{
	struct vq *vq = vu_queue(f->vu, 0);
	uint16_t idx = g_avail(f, 0)->idx;
	struct vq_elem *e;

	assert_true(vu_queue_started(f->vu, 0));
	memcpy(f->gm + DATA_OFF, "ring", 4);
	g_desc(f, 0)[idx % QNUM] =
		(struct vring_desc){MEM_GPA + DATA_OFF, 4, 0, 0};
	g_avail(f, 0)->ring[idx % QNUM] = idx % QNUM;
	g_avail(f, 0)->idx = (uint16_t)(idx + 1);
	assert_int_equal(vq_pop(vq, vu_mem(f->vu), &e), 1);
	assert_int_equal(e->out_num, 1);
	assert_memory_equal(e->iov[0].iov_base, "ring", 4);
	vq_push(vq, e->head, 0);
	free(e);
}

/* Memory regions.  Each row: region 0 and, if two, region 1 (region 0 is
 * the guest memory the running ring lives in), their fds, and whether the
 * table is accepted.  A refused table leaves the old one mapped and queue
 * 0 running on it; an accepted one restarts queue 0 on the new mappings. */
enum region_fd { RFD_MEM, RFD_SMALL, RFD_EVENTFD };

struct region_case {
	const char *name;
	unsigned nregions;
	struct vu_mem_region r[2];
	enum region_fd fd[2];
	bool accepted;
};

#define R0_ALL                                                                 \
	{                                                                      \
		MEM_GPA, MEM_SIZE, MEM_UVA, 0                                  \
	}
#define FAR 0x100000ull /* an address range nothing else uses */

static const struct region_case region_cases[] = {
	{"overlapping guest ranges",
	 2,
	 {{MEM_GPA, 0x8000, MEM_UVA, 0},
	  {MEM_GPA + 0x4000, 0x8000, MEM_UVA + 0x8000, 0x8000}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"the same guest range twice",
	 2,
	 {R0_ALL, {MEM_GPA, MEM_SIZE, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"guest_addr + size past 2^64",
	 2,
	 {R0_ALL, {UINT64_MAX - 0xfff, 0x2000, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"guest range ending at 2^64",
	 2,
	 {R0_ALL, {UINT64_MAX - 0xfff, 0x1000, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"user_addr + size past 2^64",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, 0x2000, UINT64_MAX - 0xfff, 0}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"size 0",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, 0, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"mmap_offset + size beyond the file",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, MEM_SIZE, MEM_UVA + FAR, 0x1000}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"mmap_offset + size past 2^64",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, 0x2000, MEM_UVA + FAR, UINT64_MAX - 0xfff}},
	 {RFD_MEM, RFD_MEM},
	 false},
	{"region larger than its file",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, 0x2000, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_SMALL},
	 false},
	{"an fd that cannot be mapped",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, 0x1000, MEM_UVA + FAR, 0}},
	 {RFD_MEM, RFD_EVENTFD},
	 false},
	{"running ring left outside the new table",
	 1,
	 {{MEM_GPA, MEM_SIZE, MEM_UVA + FAR, 0}},
	 {RFD_MEM},
	 false},
	/* What must still be accepted. */
	{"two adjacent regions",
	 2,
	 {{MEM_GPA, 0x8000, MEM_UVA, 0},
	  {MEM_GPA + 0x8000, 0x8000, MEM_UVA + 0x8000, 0x8000}},
	 {RFD_MEM, RFD_MEM},
	 true},
	{"one frontend range at two guest addresses",
	 2,
	 {R0_ALL, {MEM_GPA + FAR, MEM_SIZE, MEM_UVA, 0}},
	 {RFD_MEM, RFD_MEM},
	 true},
};

static void row_memory_table(void **state)
{
	struct fx *f = *state;
	const struct region_case *c = f->row;

	{
		struct vu_mem_table t = {.nregions = c->nregions};
		const struct vq_mem *mem = vu_mem(f->vu);
		void *host;
		int fds[2];
		int before;
		uint64_t ack;

		start_queue(f, 0, 0);
		host = mem->r[0].host;
		for (unsigned k = 0; k < c->nregions; k++) {
			t.regions[k] = c->r[k];
			fds[k] = c->fd[k] == RFD_MEM ? dup(f->memfd)
				 : c->fd[k] == RFD_SMALL
					 ? make_memfd(0x1000)
					 : eventfd(0, EFD_CLOEXEC);
			assert_true(fds[k] >= 0);
		}
		before = count_fds();
		ack = request_ack(f, VU_REQ_SET_MEM_TABLE, &t,
				  VU_MEM_TABLE_HDR_SIZE +
					  2 * sizeof(struct vu_mem_region),
				  fds, c->nregions);
		assert_int_equal(count_fds(), before);
		close_fds(fds, c->nregions);
		if (c->accepted) {
			assert_int_equal(ack, 0);
			assert_int_equal(mem->nregions, c->nregions);
			assert_int_equal(f->rec.stops[0], 1); /* restarted */
		} else {
			assert_int_not_equal(ack, 0);
			assert_int_equal(mem->nregions, 1);
			assert_ptr_equal(mem->r[0].host, host);
			assert_int_equal(mem->r[0].gpa, MEM_GPA);
			assert_int_equal(f->rec.stops[0], 0);
		}
		expect_q0_works(f);
	}
}

/* Ring addresses.  Queue 0 has everything but its addresses, and is
 * enabled: an address the guest memory cannot hold is refused by the
 * SET_VRING_ADDR that carries it, and the ring does not start. */
struct ring_case {
	const char *name;
	uint64_t desc, avail, used; /* offsets from MEM_UVA */
};

#define END MEM_SIZE

static const struct ring_case ring_cases[] = {
	{"desc past the end", END, AVAIL_OFF, USED_OFF},
	{"avail before the start", DESC_OFF, -0x1000ull, USED_OFF},
	{"used a guest address", DESC_OFF, AVAIL_OFF,
	 MEM_GPA - MEM_UVA + USED_OFF},
	{"desc straddles the end", END - 64, AVAIL_OFF, USED_OFF},
	{"avail straddles the end", DESC_OFF, END - 8, USED_OFF},
	{"used straddles the end", DESC_OFF, AVAIL_OFF, END - 32},
	{"desc 8-aligned", DESC_OFF + 8, AVAIL_OFF, USED_OFF},
	{"avail odd", DESC_OFF, AVAIL_OFF + 1, USED_OFF},
	{"used 2-aligned", DESC_OFF, AVAIL_OFF, USED_OFF + 2},
	{"all at 2^64 - 16", -MEM_UVA - 16, -MEM_UVA - 16, -MEM_UVA - 16},
};

static void row_ring_outside_memory_is_refused(void **state)
{
	struct fx *f = *state;
	const struct ring_case *c = f->row;

	{
		struct vu_vring_addr a = {
			.index = 0,
			.desc_user_addr = MEM_UVA + c->desc,
			.avail_user_addr = MEM_UVA + c->avail,
			.used_user_addr = MEM_UVA + c->used,
		};

		negotiate(f);
		assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, QNUM),
				 0);
		f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		send_vring_fd(f, VU_REQ_SET_VRING_KICK, 0, f->kick);
		assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1),
				 0);
		assert_int_not_equal(request_ack(f, VU_REQ_SET_VRING_ADDR, &a,
						 sizeof(a), NULL, 0),
				     0);
		assert_false(vu_queue_started(f->vu, 0));
		assert_int_equal(f->rec.kicks[0], 0);
		/* The well-formed twin starts the ring. */
		send_vring_addr(f, 0);
		assert_true(vu_queue_started(f->vu, 0));
	}
}

/* Rings that only turn out not to fit when the ring starts (the size or
 * the memory table came after the addresses): the request that would have
 * started the ring fails, and the ring's error fd says it is broken. */
static void expect_start_refused_and_reported(struct fx *f, int err)
{
	uint64_t v = 0;

	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 0);
	assert_int_equal(read(err, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	/* The ring keeps no pointer into guest memory. */
	assert_false(vq_ready(vu_queue(f->vu, 0)));
}

static void test_ring_of_num_entries_that_does_not_fit_is_reported(void **state)
{
	struct fx *f = *state;
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vu_vring_addr a = {
		.index = 0,
		.desc_user_addr = MEM_UVA + END - 0x800,
		.avail_user_addr = MEM_UVA + END - 0x600,
		.used_user_addr = MEM_UVA + END - 0x400,
	};

	negotiate(f);
	send_vring_fd(f, VU_REQ_SET_VRING_ERR, 0, err);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, QNUM), 0);
	/* Fits 8 entries ... */
	assert_int_equal(
		request_ack(f, VU_REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0),
		0);
	/* ... not 256: a 4 KiB descriptor table 2 KiB from the end. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 256), 0);
	f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	send_vring_fd(f, VU_REQ_SET_VRING_KICK, 0, f->kick);
	expect_start_refused_and_reported(f, err);
	/* Set up again, it runs, once enabled: the refused enable left the
	 * ring disabled, as the frontend was told. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, QNUM), 0);
	send_vring_addr(f, 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vu_queue_started(f->vu, 0));
	close(err);
}

static void
test_ring_addr_before_a_table_that_does_not_hold_it_is_reported(void **state)
{
	struct fx *f = *state;
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vu_mem_table t;
	uint32_t size =
		mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA + FAR, 0);

	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	send_vring_fd(f, VU_REQ_SET_VRING_ERR, 0, err);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, QNUM), 0);
	/* No table yet: kept, checked when the ring starts. */
	send_vring_addr(f, 0);
	f->memfd = make_memfd(MEM_SIZE);
	assert_int_equal(
		request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size, &f->memfd, 1),
		0);
	f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	send_vring_fd(f, VU_REQ_SET_VRING_KICK, 0, f->kick);
	expect_start_refused_and_reported(f, err);
	close(err);
}

/* Queue index out of range, for every per-queue request: refused with a
 * failure ack, the fd that came along closed.  The same request for the
 * last queue works.  (GET_VRING_BASE: test_contract_malformed_get_...) */
struct index_case {
	const char *name;
	uint32_t request;
	uint64_t index; /* SET_VRING_KICK/CALL/ERR: the whole u64 */
};

static const struct index_case index_cases[] = {
	{"SET_VRING_NUM NQUEUES", VU_REQ_SET_VRING_NUM, NQUEUES},
	{"SET_VRING_NUM 2^32-1", VU_REQ_SET_VRING_NUM, 0xffffffffu},
	{"SET_VRING_ADDR NQUEUES", VU_REQ_SET_VRING_ADDR, NQUEUES},
	{"SET_VRING_ADDR 2^32-1", VU_REQ_SET_VRING_ADDR, 0xffffffffu},
	{"SET_VRING_BASE NQUEUES", VU_REQ_SET_VRING_BASE, NQUEUES},
	{"SET_VRING_BASE 256", VU_REQ_SET_VRING_BASE, 256},
	{"SET_VRING_ENABLE NQUEUES", VU_REQ_SET_VRING_ENABLE, NQUEUES},
	{"SET_VRING_ENABLE 2^32-1", VU_REQ_SET_VRING_ENABLE, 0xffffffffu},
	{"SET_VRING_KICK NQUEUES", VU_REQ_SET_VRING_KICK, NQUEUES},
	{"SET_VRING_KICK 255", VU_REQ_SET_VRING_KICK, 255},
	{"SET_VRING_KICK bit 9 (above NOFD)", VU_REQ_SET_VRING_KICK, 1u << 9},
	{"SET_VRING_KICK bit 32", VU_REQ_SET_VRING_KICK, 1ull << 32},
	{"SET_VRING_CALL NQUEUES", VU_REQ_SET_VRING_CALL, NQUEUES},
	{"SET_VRING_CALL bit 63", VU_REQ_SET_VRING_CALL, 1ull << 63},
	{"SET_VRING_ERR NQUEUES", VU_REQ_SET_VRING_ERR, NQUEUES},
	{"SET_VRING_ERR 255", VU_REQ_SET_VRING_ERR, 255},
};

static uint32_t index_payload(uint32_t request, uint64_t index,
			      union vu_payload *p)
{
	memset(p, 0, sizeof(*p));
	switch (request) {
	case VU_REQ_SET_VRING_ADDR:
		pl_addr(p);
		p->addr.index = (uint32_t)index;
		return sizeof(p->addr);
	case VU_REQ_SET_VRING_KICK:
	case VU_REQ_SET_VRING_CALL:
	case VU_REQ_SET_VRING_ERR:
		p->u64 = index;
		return sizeof(p->u64);
	default:
		p->state = (struct vu_vring_state){
			(uint32_t)index,
			request == VU_REQ_SET_VRING_NUM ? QNUM : 1};
		return sizeof(p->state);
	}
}

static bool takes_fd(uint32_t request)
{
	return request == VU_REQ_SET_VRING_KICK ||
	       request == VU_REQ_SET_VRING_CALL ||
	       request == VU_REQ_SET_VRING_ERR;
}

static void row_queue_index_out_of_range_is_refused(void **state)
{
	struct fx *f = *state;
	const struct index_case *c = f->row;

	negotiate(f);
	{
		unsigned nfds = takes_fd(c->request) ? 1 : 0;
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		union vu_payload p;
		uint32_t size = index_payload(c->request, c->index, &p);
		int before = count_fds();

		assert_int_not_equal(
			request_ack(f, c->request, &p, size, &efd, nfds), 0);
		assert_int_equal(count_fds(), before);
		/* The last queue is in range. */
		size = index_payload(c->request, NQUEUES - 1, &p);
		assert_int_equal(
			request_ack(f, c->request, &p, size, &efd, nfds), 0);
		close(efd);
	}
	assert_true(vu_connected(f->vu));
	assert_int_equal(f->rec.disconnected, 0);
}

/* The NOFD flag (bit 8) says "no fd in this message": with an fd it is a
 * contradiction, refused, the fd closed.  Without the flag the fd must
 * come.  CALL and ERR accept NOFD (no interrupts, no error reports);
 * KICK does not (polling is not offered). */
static void test_contract_vring_fd_flag_and_fds_must_agree(void **state)
{
	static const uint32_t reqs[] = {VU_REQ_SET_VRING_KICK,
					VU_REQ_SET_VRING_CALL,
					VU_REQ_SET_VRING_ERR};
	struct fx *f = *state;

	for (unsigned i = 0; i < 3; i++) {
		uint64_t nofd = 1 | VU_VRING_NOFD_MASK, plain = 1;
		int efd = eventfd(0, EFD_CLOEXEC);
		int before = count_fds();

		assert_int_not_equal(request_ack(f, reqs[i], &nofd, 8, &efd, 1),
				     0);
		assert_int_not_equal(
			request_ack(f, reqs[i], &plain, 8, NULL, 0), 0);
		assert_int_equal(count_fds(), before);
		if (reqs[i] == VU_REQ_SET_VRING_KICK)
			assert_int_not_equal(
				request_ack(f, reqs[i], &nofd, 8, NULL, 0), 0);
		else
			assert_int_equal(
				request_ack(f, reqs[i], &nofd, 8, NULL, 0), 0);
		close(efd);
	}
}

/* Too many fds for a request that takes one, on a running ring: refused,
 * all closed, and the kick fd the ring had still works. */
static void test_set_vring_kick_with_two_fds_keeps_the_old_kick_fd(void **state)
{
	struct fx *f = *state;
	int two[2] = {eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
		      eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	uint64_t v = 0, one = 1;
	int before;

	start_queue(f, 0, 0);
	before = count_fds();
	assert_int_not_equal(
		request_ack(f, VU_REQ_SET_VRING_KICK, &v, 8, two, 2), 0);
	assert_int_equal(count_fds(), before);
	assert_true(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 1);
	assert_int_equal(write(two[0], &one, 8), 8);
	pump(f);
	assert_int_equal(f->rec.kicks[0], 1);
	assert_int_equal(write(f->kick, &one, 8), 8);
	pump(f);
	assert_int_equal(f->rec.kicks[0], 2);
	close_fds(two, 2);
}

/* ---- requests out of order ----------------------------------------------
 * Each is refused, or handled so that no ring ever runs on memory it was
 * not checked against. */

/* A second mapping of the same guest memory file. */
static uint64_t remap_same_memory(struct fx *f)
{
	struct vu_mem_table t;
	uint32_t size = mem_table_payload(&t, MEM_GPA, MEM_SIZE, MEM_UVA, 0);
	int fd = dup(f->memfd);
	uint64_t ack;

	ack = request_ack(f, VU_REQ_SET_MEM_TABLE, &t, size, &fd, 1);
	close(fd);
	return ack;
}

static void order_addr_and_kick_before_mem_table(struct fx *f)
{
	/* Kept, and checked when the table comes and completes the ring. */
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, QNUM), 0);
	send_vring_addr(f, 0);
	f->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	send_vring_fd(f, VU_REQ_SET_VRING_KICK, 0, f->kick);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_false(vq_ready(vu_queue(f->vu, 0)));
	set_mem_table(f);
	assert_true(vu_queue_started(f->vu, 0));
	expect_q0_works(f);
}

static void order_vring_num_on_started_ring(struct fx *f)
{
	start_queue(f, 0, 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_NUM, 0, 16), 0);
	assert_int_equal(vu_queue(f->vu, 0)->num, QNUM);
	expect_q0_works(f);
}

static void order_vring_base_on_started_ring(struct fx *f)
{
	start_queue(f, 0, 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_BASE, 0, 3), 0);
	assert_int_equal(vu_queue(f->vu, 0)->last_avail, 0);
	expect_q0_works(f);
}

static void order_vring_addr_on_started_ring(struct fx *f)
{
	struct vu_vring_addr a = {
		.index = 0,
		.desc_user_addr = MEM_UVA + ring_off(2) + DESC_OFF,
		.used_user_addr = MEM_UVA + ring_off(2) + USED_OFF,
		.avail_user_addr = MEM_UVA + ring_off(2) + AVAIL_OFF,
	};
	volatile struct vring_desc *desc;

	start_queue(f, 0, 0);
	desc = vu_queue(f->vu, 0)->desc;
	assert_int_not_equal(
		request_ack(f, VU_REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0),
		0);
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->desc, (void *)desc);
	expect_q0_works(f);
}

static void order_vring_enable_before_features(struct fx *f)
{
	/* Only with protocol features (bit 30) negotiated does the request
	 * exist; before that, the features a ring runs with are unknown. */
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	assert_int_equal(
		set_u64(f, VU_REQ_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1), 0);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
}

static void order_get_vring_base_on_never_started_ring(struct fx *f)
{
	union vu_payload p = {.state = {3, 0}};
	struct vu_msg m;

	/* Answered (QEMU stops every ring, started or not): the base it
	 * was given, and nothing is stopped that never ran. */
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_BASE, 3, 42), 0);
	send_msg(f, VU_REQ_GET_VRING_BASE, VU_FLAG_NEED_REPLY, &p, 8);
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(m.hdr.size, 8);
	assert_int_equal(m.payload.state.index, 3);
	assert_int_equal(m.payload.state.num, 42);
	expect_no_reply(f);
	assert_int_equal(f->rec.stops[3], 0);
	assert_true(vu_connected(f->vu));
}

static void order_mem_table_while_rings_run(struct fx *f)
{
	volatile struct vring_desc *old;

	/* Allowed (memory hot-plug): the ring stops, giving back what the
	 * device holds, and restarts on the new mappings. */
	start_queue(f, 0, 0);
	old = vu_queue(f->vu, 0)->desc;
	assert_int_equal(remap_same_memory(f), 0);
	assert_int_equal(f->rec.stops[0], 1);
	assert_true(vu_queue_started(f->vu, 0));
	assert_ptr_not_equal((void *)vu_queue(f->vu, 0)->desc, (void *)old);
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->desc,
			 vq_mem_uva(vu_mem(f->vu), MEM_UVA + DESC_OFF, 1));
	expect_q0_works(f);
}

static void order_mem_table_while_a_ring_is_disabled(struct fx *f)
{
	/* The disabled ring's pointers went with the old mappings: it
	 * holds none until it starts again, on the new table. */
	start_queue(f, 0, 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 0), 0);
	assert_int_equal(remap_same_memory(f), 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_false(vq_ready(vu_queue(f->vu, 0)));
	assert_null((void *)vu_queue(f->vu, 0)->desc);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_ptr_equal((void *)vu_queue(f->vu, 0)->desc,
			 vq_mem_uva(vu_mem(f->vu), MEM_UVA + DESC_OFF, 1));
	expect_q0_works(f);
}

static void order_set_features_while_rings_run(struct fx *f)
{
	union vu_payload p = {.state = {0, 0}};
	struct vu_msg m;
	uint64_t same =
		(1ull << VIRTIO_F_VERSION_1) | (1ull << VU_F_PROTOCOL_FEATURES);

	/* A running ring keeps its features: EVENT_IDX would move where
	 * the guest looks for notifications under it.  The same value
	 * again is fine; a change waits until the rings are stopped. */
	start_queue(f, 0, 0);
	assert_int_not_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	assert_int_equal(vu_features(f->vu), same);
	assert_false(vu_queue(f->vu, 0)->event_idx);
	assert_int_equal(f->rec.set_features, 1);
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, same), 0);
	expect_q0_works(f);
	send_msg(f, VU_REQ_GET_VRING_BASE, 0, &p, 8);
	pump(f);
	assert_true(recv_reply(f, &m));
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	assert_int_equal(vu_features(f->vu), FEAT);
}

static void order_second_set_protocol_features(struct fx *f)
{
	uint64_t ack_only = 1ull << VU_PROTOCOL_F_REPLY_ACK;

	/* Renegotiating before any ring runs is fine; a change under a
	 * running ring is not. */
	prepare_queue(f, 0, 0);
	assert_int_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES, ack_only), 0);
	assert_int_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES,
				 OFFERED_PROTOCOL_FEATURES),
			 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_not_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES, ack_only),
			     0);
	assert_int_equal(set_u64(f, VU_REQ_SET_PROTOCOL_FEATURES,
				 OFFERED_PROTOCOL_FEATURES),
			 0);
	expect_q0_works(f);
}

static void order_kick_before_anything(struct fx *f)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	/* Kept; the ring starts once the rest has come. */
	send_vring_fd(f, VU_REQ_SET_VRING_KICK, 0, efd);
	close(efd);
	assert_false(vu_queue_started(f->vu, 0));
	start_queue(f, 0, 0);
	expect_q0_works(f);
}

static void order_reset_owner_then_enable(struct fx *f)
{
	/* RESET_OWNER forgets the features: rings need them again. */
	start_queue(f, 0, 0);
	assert_int_equal(request_ack(f, VU_REQ_RESET_OWNER, NULL, 0, NULL, 0),
			 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.stops[0], 1);
	assert_int_not_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(set_u64(f, VU_REQ_SET_FEATURES, FEAT), 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
}

struct order_case {
	const char *name;
	void (*run)(struct fx *f);
};

static const struct order_case order_cases[] = {
	{"SET_VRING_ADDR and KICK before SET_MEM_TABLE",
	 order_addr_and_kick_before_mem_table},
	{"SET_VRING_NUM on a started ring", order_vring_num_on_started_ring},
	{"SET_VRING_BASE on a started ring", order_vring_base_on_started_ring},
	{"SET_VRING_ADDR on a started ring", order_vring_addr_on_started_ring},
	{"SET_VRING_ENABLE before SET_FEATURES",
	 order_vring_enable_before_features},
	{"GET_VRING_BASE on a never-started ring",
	 order_get_vring_base_on_never_started_ring},
	{"SET_MEM_TABLE while rings run", order_mem_table_while_rings_run},
	{"SET_MEM_TABLE while a ring is disabled",
	 order_mem_table_while_a_ring_is_disabled},
	{"SET_FEATURES while rings run", order_set_features_while_rings_run},
	{"a second SET_PROTOCOL_FEATURES", order_second_set_protocol_features},
	{"SET_VRING_KICK before anything", order_kick_before_anything},
	{"SET_VRING_ENABLE after RESET_OWNER", order_reset_owner_then_enable},
};

static void row_request_out_of_order(void **state)
{
	struct fx *f = *state;
	const struct order_case *c = f->row;

	c->run(f);
	assert_true(vu_connected(f->vu));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* A contract table: every row struct starts with its name. */
struct table {
	const char *what;
	CMUnitTestFunction fn;
	const void *rows;
	size_t row_size, nrows;
};

#define TABLE(what, fn, rows)                                                  \
	{                                                                      \
		what, fn, rows, sizeof((rows)[0]),                             \
			sizeof(rows) / sizeof((rows)[0])                       \
	}

/* One test per row of t, named "<what>: <row name>", after all[0..n). */
static size_t add_rows(struct CMUnitTest *all, size_t n, const struct table *t)
{
	for (size_t i = 0; i < t->nrows; i++) {
		const void *row = (const char *)t->rows + i * t->row_size;
		const char *row_name = *(const char *const *)row;
		size_t len = strlen(t->what) + strlen(row_name) + 3;
		char *name = malloc(len);

		assert_non_null(name);
		assert_int_equal(
			snprintf(name, len, "%s: %s", t->what, row_name),
			(int)len - 1);
		all[n++] = (struct CMUnitTest){name, t->fn, setup_row, teardown,
					       (void *)row};
	}
	return n;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_get_features_reply_flags_are_0x5),
		T(test_get_features_offers_config_features_and_bit_30),
		T(test_get_features_with_need_reply_sends_only_the_value),
		T(test_get_protocol_features_offers_reply_ack_config_backend_req_mq),
		T(test_set_features_tells_device_without_bit_30),
		T(test_set_features_with_unoffered_bit_fails),
		T(test_set_protocol_features_negotiating_reply_ack_is_acked),
		T(test_set_protocol_features_with_unoffered_bit_fails),
		T(test_no_reply_without_need_reply),
		T(test_need_reply_honoured_before_reply_ack_negotiated),
		T(test_set_owner_any_number_of_times),
		T(test_get_queue_num_returns_nqueues),
		T(test_set_vring_num_acks_0_on_success),
		T(test_set_vring_num_bad_index_or_num_acks_failure),
		T(test_set_vring_num_with_short_payload_acks_failure),
		T(test_set_vring_addr_bad_index_acks_failure),
		T(test_set_vring_enable_bad_value_acks_failure),
		T(test_set_vring_kick_without_fd_and_without_nofd_flag_fails),
		T(test_set_vring_call_bad_index_fails_and_closes_fd),
		T(test_get_config_returns_device_bytes),
		T(test_get_config_partial_as_uml_reads_max_nr_ports),
		T(test_get_config_size_over_256_fails_with_empty_reply),
		T(test_get_config_offset_plus_size_overflow_fails),
		T(test_get_config_payload_shorter_than_size_fails),
		T(test_get_config_device_error_gives_empty_reply),
		T(test_set_config_passes_range_and_bytes_to_device),
		T(test_set_mem_table_72_byte_payload_with_one_memfd_is_accepted),
		T(test_set_mem_table_honours_mmap_offset),
		T(test_set_mem_table_zero_or_nine_regions_fails),
		T(test_set_mem_table_fd_count_mismatch_fails),
		T(test_set_mem_table_payload_too_short_for_nregions_fails),
		T(test_set_mem_table_memfd_smaller_than_region_fails),
		T(test_vring_starts_on_enable_and_device_is_kicked),
		T(test_vring_starts_on_kick_without_protocol_features),
		T(test_kick_watch_allocation_failure_fails_set_vring_kick),
		T(test_mem_table_the_sigbus_guard_cannot_cover_is_refused),
		T(test_kick_fd_event_calls_queue_kick),
		T(test_vring_addr_outside_memory_is_refused_old_addr_kept),
		T(test_get_vring_base_returns_index_and_stops_ring),
		T(test_get_vring_base_on_stopped_ring_returns_set_base),
		T(test_ring_restarts_after_get_vring_base_from_new_base),
		T(test_set_vring_enable_0_stops_ring),
		T(test_ring_restart_after_set_mem_table_resumes_used_idx_from_ring),
		T(test_ring_reenable_resumes_used_idx_from_ring),
		T(test_set_vring_num_on_started_ring_fails),
		T(test_queue_notify_writes_exactly_8_bytes_to_call_fd),
		T(test_moderated_notify_waits_while_the_driver_has_room),
		T(test_lazy_decision_is_put_off_while_the_driver_posts),
		T(test_lazy_decision_is_put_off_a_bounded_number_of_times),
		T(test_lazy_put_offs_start_again_on_a_reset_ring),
		T(test_lazy_decision_on_a_stopped_ring_is_not_put_off),
		T(test_moderated_notify_is_at_once_when_the_ring_was_full),
		T(test_moderated_notify_counts_descriptors_not_chains),
		T(test_moderated_notify_without_pushes_sends_nothing),
		T(test_interrupt_owed_over_a_ring_pause_is_sent_on_restart),
		T(test_queue_notify_respects_no_interrupt),
		T(test_queue_notify_on_stopped_queue_writes_nothing),
		T(test_set_backend_req_fd_is_accepted),
		T(test_reset_owner_stops_queues_and_restarts_device),
		T(test_unknown_request_gets_failure_ack_and_connection_stays),
		T(test_unknown_request_with_payload_and_fd_is_skipped),
		T(test_bad_version_drops_connection),
		T(test_payload_size_over_max_drops_connection),
		T(test_largest_message_set_config_of_256_bytes_is_accepted),
		T(test_message_split_across_two_writes_is_reassembled),
		T(test_two_messages_in_one_write_are_both_handled),
		T(test_frontend_close_disconnects_and_stops_queues),
		T(test_frontend_close_mid_message_disconnects),
		T(test_second_attach_while_connected_is_refused),
		T(test_vu_disconnect_tells_device),
		T(test_broken_ring_is_reported_once_on_its_error_fd),
		T(test_ring_of_num_entries_that_does_not_fit_is_reported),
		T(test_ring_addr_before_a_table_that_does_not_hold_it_is_reported),
		T(test_contract_vring_fd_flag_and_fds_must_agree),
		T(test_set_vring_kick_with_two_fds_keeps_the_old_kick_fd),
	};
	/* The contract tables, one test per row. */
	static const struct table tables[] = {
		TABLE("wrong size is refused", row_wrong_size_is_refused,
		      contracts),
		TABLE("wrong fd count is refused, fds closed",
		      row_wrong_fd_count_is_refused, contracts),
		TABLE("malformed GET ends the connection",
		      row_malformed_get_ends_the_connection, get_cases),
		TABLE("malformed GET_CONFIG gets an empty reply",
		      row_malformed_get_config_gets_empty_reply,
		      get_config_cases),
		TABLE("memory table", row_memory_table, region_cases),
		TABLE("ring address is refused",
		      row_ring_outside_memory_is_refused, ring_cases),
		TABLE("queue index out of range is refused",
		      row_queue_index_out_of_range_is_refused, index_cases),
		TABLE("out of order", row_request_out_of_order, order_cases),
	};
	size_t n = sizeof(tests) / sizeof(tests[0]), max = n;
	struct CMUnitTest *all;
	int rc;

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		max += tables[i].nrows;
	all = calloc(max, sizeof(*all));
	assert_non_null(all);
	memcpy(all, tests, sizeof(tests));
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		n = add_rows(all, n, &tables[i]);
	vp_log_set_level(VP_LOG_ERROR);
	rc = _cmocka_run_group_tests("test_vhost_user", all, n, NULL, NULL);
	for (size_t i = sizeof(tests) / sizeof(tests[0]); i < n; i++)
		free((char *)all[i].name);
	free(all);
	return rc;
}
