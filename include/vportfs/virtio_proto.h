/*
 * Virtio wire formats that both sides of a queue see: split-ring layout,
 * feature bits, and the virtio-console config space and control messages.
 *
 * Shared by the device (src/device) and the simulated driver (src/sim).
 * Fields are little-endian in guest memory; we build on little-endian hosts
 * only, so they are read as native integers.
 */
#ifndef VPORTFS_VIRTIO_PROTO_H
#define VPORTFS_VIRTIO_PROTO_H

#include <stdint.h>

/* Virtio device id of a console. */
#define VIRTIO_ID_CONSOLE 3

/* Device-independent feature bits. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* virtio-console feature bits. */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Split ring. */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* num entries, then avail_event */
};

static inline uint64_t vring_desc_size(unsigned num)
{
	return 16ull * num;
}

static inline uint64_t vring_avail_size(unsigned num)
{
	return 6ull + 2ull * num; /* flags, idx, ring[num], used_event */
}

static inline uint64_t vring_used_size(unsigned num)
{
	return 6ull + 8ull * num; /* flags, idx, ring[num], avail_event */
}

/* Largest queue size the virtio spec allows for split rings. */
#define VRING_MAX_SIZE 32768

/* Config space: 12 bytes. */
struct virtio_console_config {
	uint16_t cols;
	uint16_t rows;
	uint32_t max_nr_ports;
	uint32_t emerg_wr;
} __attribute__((packed));

/* Control messages on the control queues (queues 2 and 3). */
struct virtio_console_control {
	uint32_t id; /* port number */
	uint16_t event;
	uint16_t value;
} __attribute__((packed));

enum virtio_console_event {
	VIRTIO_CONSOLE_DEVICE_READY = 0,
	VIRTIO_CONSOLE_PORT_ADD = 1,
	VIRTIO_CONSOLE_PORT_REMOVE = 2,
	VIRTIO_CONSOLE_PORT_READY = 3,
	VIRTIO_CONSOLE_CONSOLE_PORT = 4,
	VIRTIO_CONSOLE_RESIZE = 5,
	VIRTIO_CONSOLE_PORT_OPEN = 6,
	VIRTIO_CONSOLE_PORT_NAME = 7,
};

/* RESIZE payload after the control header: cols, then rows, as the virtio
 * spec says (Linux had them swapped until a 2025 fix, backported to the
 * stable kernels). */
struct virtio_console_resize {
	uint16_t cols;
	uint16_t rows;
} __attribute__((packed));

/* Queue index helpers: rx0 tx0 c_ivq c_ovq rx1 tx1 ... */
#define VSER_CTRL_RXQ 2u /* device -> driver control */
#define VSER_CTRL_TXQ 3u /* driver -> device control */

static inline unsigned vser_port_rxq(unsigned nr) /* device -> driver data */
{
	return nr == 0 ? 0u : 2u * (nr + 1);
}

static inline unsigned vser_port_txq(unsigned nr) /* driver -> device data */
{
	return vser_port_rxq(nr) + 1;
}

#endif
