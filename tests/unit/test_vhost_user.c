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
	char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

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

static void test_vring_with_rings_outside_memory_does_not_start(void **state)
{
	struct fx *f = *state;
	struct vu_vring_addr a = {
		.index = 0,
		.desc_user_addr = MEM_GPA, /* a guest address, not a user one */
		.used_user_addr = MEM_UVA + USED_OFF,
		.avail_user_addr = MEM_UVA + AVAIL_OFF,
	};

	prepare_queue(f, 0, 0);
	assert_int_equal(request_ack(f, VU_REQ_SET_VRING_ADDR, &a, sizeof(a),
				     NULL, 0),
			 0);
	assert_int_equal(set_state(f, VU_REQ_SET_VRING_ENABLE, 0, 1), 0);
	assert_false(vu_queue_started(f->vu, 0));
	assert_int_equal(f->rec.kicks[0], 0);
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

static void test_payload_size_exactly_max_is_accepted(void **state)
{
	struct fx *f = *state;
	uint8_t p[VU_MAX_PAYLOAD];

	memset(p, 0, sizeof(p));
	send_msg(f, VU_REQ_SET_OWNER, VU_FLAG_NEED_REPLY, p, sizeof(p));
	pump(f);
	assert_int_equal(expect_u64(f, VU_REQ_SET_OWNER), 0);
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

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

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
		T(test_vring_with_rings_outside_memory_does_not_start),
		T(test_get_vring_base_returns_index_and_stops_ring),
		T(test_get_vring_base_on_stopped_ring_returns_set_base),
		T(test_ring_restarts_after_get_vring_base_from_new_base),
		T(test_set_vring_enable_0_stops_ring),
		T(test_ring_restart_after_set_mem_table_resumes_used_idx_from_ring),
		T(test_ring_reenable_resumes_used_idx_from_ring),
		T(test_set_vring_num_on_started_ring_fails),
		T(test_queue_notify_writes_exactly_8_bytes_to_call_fd),
		T(test_queue_notify_respects_no_interrupt),
		T(test_queue_notify_on_stopped_queue_writes_nothing),
		T(test_set_backend_req_fd_is_accepted),
		T(test_reset_owner_stops_queues_and_restarts_device),
		T(test_unknown_request_gets_failure_ack_and_connection_stays),
		T(test_unknown_request_with_payload_and_fd_is_skipped),
		T(test_bad_version_drops_connection),
		T(test_payload_size_over_max_drops_connection),
		T(test_payload_size_exactly_max_is_accepted),
		T(test_message_split_across_two_writes_is_reassembled),
		T(test_two_messages_in_one_write_are_both_handled),
		T(test_frontend_close_disconnects_and_stops_queues),
		T(test_frontend_close_mid_message_disconnects),
		T(test_second_attach_while_connected_is_refused),
		T(test_vu_disconnect_tells_device),
		T(test_broken_ring_is_reported_once_on_its_error_fd),
	};

	vp_log_set_level(VP_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
