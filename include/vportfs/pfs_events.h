/*
 * The `.events` stream of a mount: one JSON object per line for each thing
 * that happens to the device or its ports, delivered to every reader from
 * the moment it opened the file.
 *
 * Each reader has its own bounded queue: a reader that does not read loses
 * its oldest lines (counted, and reported in the next line it gets as
 * "lost"), never the daemon's memory and never another reader's lines.
 */
#ifndef VPORTFS_PFS_EVENTS_H
#define VPORTFS_PFS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct pfs_events;
struct pfs_events_reader;

#define PFS_EVENTS_QUEUE_DEFAULT (256u << 10)

/* NULL on allocation failure. */
struct pfs_events *pfs_events_new(size_t queue_bytes);
/* Closes any reader still open.  NULL accepted. */
void pfs_events_free(struct pfs_events *ev);

/*
 * Emit {"event": name, "time": seconds since the epoch, "port": port_name,
 * "nr": nr} (port fields only when port_name is not NULL) to every reader.
 * Returns true if anybody was listening.
 */
bool pfs_events_emit(struct pfs_events *ev, const char *name,
		     const char *port_name, int nr);
/* The same with one more field, "key": value (key not NULL). */
bool pfs_events_emit_count(struct pfs_events *ev, const char *name,
			   const char *port_name, int nr, const char *key,
			   uint64_t value);

struct pfs_events_reader *pfs_events_open(struct pfs_events *ev);
void pfs_events_close(struct pfs_events_reader *r);

size_t pfs_events_readable(const struct pfs_events_reader *r);
/* Up to two iovecs over the oldest max bytes; valid until the next call. */
int pfs_events_peek(const struct pfs_events_reader *r, struct iovec iov[2],
		    size_t max);
void pfs_events_consume(struct pfs_events_reader *r, size_t n);

#endif
