/*
 * The `.events` stream (see include/vportfs/hub_events.h).  Lines are
 * built with json-c so that any port name (quotes, control characters,
 * non-ASCII) comes out as valid JSON.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "vportfs/buf.h"
#include "vportfs/log.h"
#include "vportfs/hub_events.h"

struct hub_events_reader {
	LIST_ENTRY(hub_events_reader) link;
	struct hub_events *ev;
	struct vp_buf q;
	uint64_t lost;  /* lines dropped since the last one delivered */
	bool mid_line;  /* the reader has read part of the first line */
};

struct hub_events {
	LIST_HEAD(, hub_events_reader) readers;
	size_t queue_bytes;
};

struct hub_events *hub_events_new(size_t queue_bytes)
{
	struct hub_events *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	LIST_INIT(&ev->readers);
	ev->queue_bytes = queue_bytes ? queue_bytes : HUB_EVENTS_QUEUE_DEFAULT;
	return ev;
}

void hub_events_free(struct hub_events *ev)
{
	if (!ev)
		return;
	while (!LIST_EMPTY(&ev->readers))
		hub_events_close(LIST_FIRST(&ev->readers));
	free(ev);
}

/* Drop the oldest whole line; false if there is none to drop (the queue
 * is empty, or its first line is half read: dropping the rest of it would
 * hand the reader a broken line). */
static bool drop_oldest_line(struct hub_events_reader *r)
{
	struct iovec two[2];
	int k = vp_buf_peek(&r->q, two, vp_buf_len(&r->q));
	size_t n = 0;

	if (r->mid_line)
		return false;
	for (int i = 0; i < k; i++) {
		const char *nl = memchr(two[i].iov_base, '\n', two[i].iov_len);

		if (nl) {
			vp_buf_consume(&r->q, n + (size_t)(nl - (char *)two[i].iov_base) + 1);
			return true;
		}
		n += two[i].iov_len;
	}
	return false;
}

/* Room for the line plus the ',"lost":N' that may have to go into it. */
#define LOST_FIELD_MAX 32

static void deliver(struct hub_events_reader *r, json_object *obj,
		    size_t plain_len)
{
	const char *line;
	size_t len;

	/* Make room first, counting what goes, so that the line can say. */
	while (vp_buf_room(&r->q) < plain_len + LOST_FIELD_MAX + 1 &&
	       drop_oldest_line(r))
		r->lost++;
	if (vp_buf_room(&r->q) < plain_len + LOST_FIELD_MAX + 1) {
		r->lost++; /* this one, then */
		return;
	}
	if (r->lost)
		json_object_object_add(obj, "lost",
				       json_object_new_int64((int64_t)r->lost));
	line = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	len = strlen(line);
	vp_buf_put(&r->q, line, len);
	vp_buf_put(&r->q, "\n", 1);
	if (r->lost)
		json_object_object_del(obj, "lost");
	r->lost = 0;
}

bool hub_events_emit(struct hub_events *ev, const char *name,
		     const char *port_name, int nr)
{
	return hub_events_emit_count(ev, name, port_name, nr, NULL, 0);
}

bool hub_events_emit_count(struct hub_events *ev, const char *name,
			   const char *port_name, int nr, const char *key,
			   uint64_t value)
{
	struct hub_events_reader *r;
	struct timespec ts;
	json_object *obj;
	size_t plain_len;

	if (LIST_EMPTY(&ev->readers))
		return false;
	obj = json_object_new_object();
	if (!obj) {
		vp_warn_rl("out of memory building an event");
		return false;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_object_add(obj, "event", json_object_new_string(name));
	json_object_object_add(obj, "time",
			       json_object_new_double((double)ts.tv_sec +
						      ts.tv_nsec / 1e9));
	if (port_name) {
		json_object_object_add(obj, "port",
				       json_object_new_string(port_name));
		json_object_object_add(obj, "nr", json_object_new_int(nr));
	}
	if (key)
		json_object_object_add(obj, key,
				       json_object_new_uint64(value));
	plain_len = strlen(json_object_to_json_string_ext(obj,
							    JSON_C_TO_STRING_PLAIN));
	LIST_FOREACH(r, &ev->readers, link)
		deliver(r, obj, plain_len);
	json_object_put(obj);
	return true;
}

struct hub_events_reader *hub_events_open(struct hub_events *ev)
{
	struct hub_events_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (vp_buf_init(&r->q, ev->queue_bytes)) {
		free(r);
		return NULL;
	}
	r->ev = ev;
	LIST_INSERT_HEAD(&ev->readers, r, link);
	return r;
}

void hub_events_close(struct hub_events_reader *r)
{
	if (!r)
		return;
	LIST_REMOVE(r, link);
	vp_buf_destroy(&r->q);
	free(r);
}

size_t hub_events_readable(const struct hub_events_reader *r)
{
	return vp_buf_len(&r->q);
}

int hub_events_peek(const struct hub_events_reader *r, struct iovec iov[2],
		    size_t max)
{
	return vp_buf_peek(&r->q, iov, max);
}

void hub_events_consume(struct hub_events_reader *r, size_t n)
{
	struct iovec two[2];
	int k;

	if (n == 0)
		return;
	/* Does the read end inside a line?  Look at its last byte. */
	k = vp_buf_peek_at(&r->q, n - 1, two, 1);
	r->mid_line = k && *(const char *)two[0].iov_base != '\n';
	vp_buf_consume(&r->q, n);
}
