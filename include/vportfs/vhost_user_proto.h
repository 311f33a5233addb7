/*
 * vhost-user wire format: the messages a frontend (VMM, UML, our simulated
 * frontend) and the backend exchange over the unix socket.
 *
 * Shared by the backend (src/device/vhost_user.c) and the simulated frontend
 * (src/sim/), so both sides agree on one layout.  Every multi-byte field is
 * little-endian on the wire; like every vhost-user implementation we only
 * build on little-endian hosts (checked in CMakeLists.txt).
 */
#ifndef VPORTFS_VHOST_USER_PROTO_H
#define VPORTFS_VHOST_USER_PROTO_H

#include <stdint.h>

enum vu_request {
	VU_REQ_NONE = 0,
	VU_REQ_GET_FEATURES = 1,
	VU_REQ_SET_FEATURES = 2,
	VU_REQ_SET_OWNER = 3,
	VU_REQ_RESET_OWNER = 4,
	VU_REQ_SET_MEM_TABLE = 5,
	VU_REQ_SET_LOG_BASE = 6,
	VU_REQ_SET_LOG_FD = 7,
	VU_REQ_SET_VRING_NUM = 8,
	VU_REQ_SET_VRING_ADDR = 9,
	VU_REQ_SET_VRING_BASE = 10,
	VU_REQ_GET_VRING_BASE = 11,
	VU_REQ_SET_VRING_KICK = 12,
	VU_REQ_SET_VRING_CALL = 13,
	VU_REQ_SET_VRING_ERR = 14,
	VU_REQ_GET_PROTOCOL_FEATURES = 15,
	VU_REQ_SET_PROTOCOL_FEATURES = 16,
	VU_REQ_GET_QUEUE_NUM = 17,
	VU_REQ_SET_VRING_ENABLE = 18,
	VU_REQ_SEND_RARP = 19,
	VU_REQ_NET_SET_MTU = 20,
	VU_REQ_SET_BACKEND_REQ_FD = 21,
	VU_REQ_IOTLB_MSG = 22,
	VU_REQ_SET_VRING_ENDIAN = 23,
	VU_REQ_GET_CONFIG = 24,
	VU_REQ_SET_CONFIG = 25,
	VU_REQ_MAX
};

/* Requests the backend sends on the backend channel (SET_BACKEND_REQ_FD). */
enum vu_backend_request {
	VU_BACKEND_REQ_CONFIG_CHANGE_MSG = 2,
};

/* Header flags. */
#define VU_VERSION 0x1u
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)
#define VU_VERSION_MASK 0x3u

/* Feature bit the backend offers in GET_FEATURES to say it speaks
 * GET/SET_PROTOCOL_FEATURES (bit 30, shared with the virtio feature space). */
#define VU_F_PROTOCOL_FEATURES 30

/* Protocol feature bits. */
#define VU_PROTOCOL_F_MQ 0
#define VU_PROTOCOL_F_REPLY_ACK 3
#define VU_PROTOCOL_F_BACKEND_REQ 5
#define VU_PROTOCOL_F_CONFIG 9

/* SET_VRING_KICK/CALL/ERR payload: queue index, plus "no fd" flag. */
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD_MASK (1u << 8)

#define VU_MAX_MEM_REGIONS 8
#define VU_MAX_FDS 8
/* The largest config space anybody may ask for (VHOST_USER_MAX_CONFIG_SIZE). */
#define VU_MAX_CONFIG_SIZE 256

struct vu_msg_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes following the header */
} __attribute__((packed));

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));

struct vu_mem_region {
	uint64_t guest_addr;
	uint64_t size;
	uint64_t user_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

/* SET_MEM_TABLE: the payload is always this whole struct, all 8 slots, so its
 * size is 8 + 8 * 32 = 264 bytes ... except that UML sends only
 * 8 + 2 * 32 = 72 bytes (its own struct has two slots).  The backend accepts
 * any size that covers nregions. */
struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[VU_MAX_MEM_REGIONS];
} __attribute__((packed));

#define VU_MEM_TABLE_HDR_SIZE 8u

struct vu_config_hdr {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
} __attribute__((packed));

union vu_payload {
	uint64_t u64;
	struct vu_vring_state state;
	struct vu_vring_addr addr;
	struct vu_mem_table mem;
	struct {
		struct vu_config_hdr hdr;
		uint8_t data[VU_MAX_CONFIG_SIZE];
	} config;
};

struct vu_msg {
	struct vu_msg_hdr hdr;
	union vu_payload payload;
} __attribute__((packed));

#define VU_HDR_SIZE ((uint32_t)sizeof(struct vu_msg_hdr))
#define VU_MAX_PAYLOAD ((uint32_t)sizeof(union vu_payload))

#endif
