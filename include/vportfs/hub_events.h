/*
 * The `.events` stream of a mount: one JSON object per line for each thing
 * that happens to the device or its ports, delivered to every reader from
 * the moment it opened the file.
 *
 * Each reader has its own bounded queue: a reader that does not read loses
 * its oldest lines (counted, and reported in the next line it gets as
 * "lost"), never the daemon's memory and never another reader's lines.
 */
#ifndef VPORTFS_HUB_EVENTS_H
#define VPORTFS_HUB_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct hub_events;
struct hub_events_reader;

#define HUB_EVENTS_QUEUE_DEFAULT (256u << 10)

/* NULL on allocation failure. */
struct hub_events *hub_events_new(size_t queue_bytes);
/* Closes any reader still open.  NULL accepted. */
void hub_events_free(struct hub_events *ev);

/*
 * Emit {"event": name, "time": seconds since the epoch, "port": port_name,
 * "nr": nr} (port fields only when port_name is not NULL) to every reader.
 * Returns true if anybody was listening.
 */
bool hub_events_emit(struct hub_events *ev, const char *name,
		     const char *port_name, int nr);
/* The same with one more field, "key": value (key not NULL). */
bool hub_events_emit_count(struct hub_events *ev, const char *name,
			   const char *port_name, int nr, const char *key,
			   uint64_t value);

struct hub_events_reader *hub_events_open(struct hub_events *ev);
void hub_events_close(struct hub_events_reader *r);

size_t hub_events_readable(const struct hub_events_reader *r);
/* Up to two iovecs over the oldest max bytes; valid until the next call. */
int hub_events_peek(const struct hub_events_reader *r, struct iovec iov[2],
		    size_t max);
void hub_events_consume(struct hub_events_reader *r, size_t n);

#endif
