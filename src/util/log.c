/*
 * Logging to stderr or syslog.  The daemon is single-threaded, so the level
 * and sink are plain process-wide settings (the one piece of global state we
 * allow: it is configuration, not device state).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "vportfs/log.h"

#define RL_INTERVAL_MS 5000
#define RL_BURST 10

static enum vp_log_level log_level = VP_LOG_WARN;
static bool log_syslog;

static const char *const level_names[] = {
	[VP_LOG_OFF] = "off",
	[VP_LOG_ERROR] = "error",
	[VP_LOG_WARN] = "warn",
	[VP_LOG_INFO] = "info",
	[VP_LOG_DEBUG] = "debug",
	[VP_LOG_TRACE] = "trace",
};

int vp_log_parse_level(const char *s, enum vp_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum vp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void vp_log_set_level(enum vp_log_level level)
{
	log_level = level;
}

void vp_log_use_syslog(bool on)
{
	if (on && !log_syslog)
		openlog("vportfs", LOG_PID, LOG_DAEMON);
	log_syslog = on;
}

bool vp_log_enabled(enum vp_log_level level)
{
	return level != VP_LOG_OFF && level <= log_level;
}

static void vlog(enum vp_log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {
		[VP_LOG_ERROR] = LOG_ERR,
		[VP_LOG_WARN] = LOG_WARNING,
		[VP_LOG_INFO] = LOG_INFO,
		[VP_LOG_DEBUG] = LOG_DEBUG,
		[VP_LOG_TRACE] = LOG_DEBUG,
	};
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog)
		syslog(prio[level], "%s", line);
	else
		fprintf(stderr, "vportfs: %s: %s\n", level_names[level], line);
}

void vp_log_fatal(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vportfs: %s\n", line);
	if (log_syslog)
		syslog(LOG_ERR, "%s", line);
}

void vp_log(enum vp_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!vp_log_enabled(level))
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void vp_log_ratelimited(struct vp_ratelimit *rl, enum vp_log_level level,
			const char *fmt, ...)
{
	uint64_t now = now_ms();
	va_list ap;

	if (!vp_log_enabled(level))
		return;
	if (now - rl->window_start_ms >= RL_INTERVAL_MS) {
		if (rl->suppressed)
			vp_log(level, "(%u similar messages suppressed)",
			       rl->suppressed);
		rl->window_start_ms = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed >= RL_BURST) {
		rl->suppressed++;
		return;
	}
	rl->printed++;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}
