/*
 * Logging: one line per event on stderr (or syslog), filtered by level.
 *
 * Peers (guest, frontend, FUSE callers) can trigger some messages at will;
 * those go through vp_log_ratelimited() so a hostile peer cannot flood the
 * log.
 */
#ifndef VPORTFS_LOG_H
#define VPORTFS_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* The level names users know from virtiofsd's --log-level.  A message is
 * printed when its level is at most the configured one; `off` prints none
 * (vp_log_fatal still does). */
enum vp_log_level {
	VP_LOG_OFF = 0,
	VP_LOG_ERROR,
	VP_LOG_WARN,
	VP_LOG_INFO,
	VP_LOG_DEBUG,
	VP_LOG_TRACE, /* every vhost-user message, every control message */
};

/* Parse "off|error|warn|info|debug|trace"; returns 0 or -EINVAL. */
int vp_log_parse_level(const char *s, enum vp_log_level *out);
void vp_log_set_level(enum vp_log_level level);
void vp_log_use_syslog(bool on);
bool vp_log_enabled(enum vp_log_level level);

void vp_log(enum vp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A start-up failure, the daemon's last words: always one line on stderr
 * ("vportfs: " and the message), and with --syslog in syslog too (LOG_ERR),
 * where a service manager's user looks for it. */
void vp_log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A per-call-site budget: at most a burst of messages per interval. */
struct vp_ratelimit {
	uint64_t window_start_ms;
	unsigned printed;
	unsigned suppressed;
};

void vp_log_ratelimited(struct vp_ratelimit *rl, enum vp_log_level level,
			const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define vp_err(...) vp_log(VP_LOG_ERROR, __VA_ARGS__)
#define vp_warn(...) vp_log(VP_LOG_WARN, __VA_ARGS__)
#define vp_info(...) vp_log(VP_LOG_INFO, __VA_ARGS__)
#define vp_debug(...)                                                          \
	do {                                                                   \
		if (vp_log_enabled(VP_LOG_DEBUG))                              \
			vp_log(VP_LOG_DEBUG, __VA_ARGS__);                     \
	} while (0)
#define vp_trace(...)                                                          \
	do {                                                                   \
		if (vp_log_enabled(VP_LOG_TRACE))                              \
			vp_log(VP_LOG_TRACE, __VA_ARGS__);                     \
	} while (0)

/* Rate-limited warning for peer-triggered conditions: one budget per site. */
#define vp_warn_rl(...)                                                        \
	do {                                                                   \
		static struct vp_ratelimit rl_;                                \
		vp_log_ratelimited(&rl_, VP_LOG_WARN, __VA_ARGS__);            \
	} while (0)

#endif
