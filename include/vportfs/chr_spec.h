/*
 * Chardev option strings, "BACKEND,id=ID[,key=value]...", as QEMU's
 * -chardev takes them (QemuOpts syntax, util/qemu-option.c).  The parser
 * checks the syntax, the backend name and the id only; a backend reads the
 * options it knows through the getters below, and chr_spec_check_unused()
 * then names any option no getter asked for.
 *
 * Errors: actions return 0 or -errno.  On error they write one line (no
 * newline, no prefix: the caller adds "--chardev SPEC: ") into err, which
 * holds errlen bytes; errlen 0 writes nothing.  A message that does not
 * fit is cut and ends in "...", always NUL-terminated.  User text quoted in
 * a message is clipped, control characters shown as '?'.  err is written
 * only on error.
 */
#ifndef VPORTFS_CHR_SPEC_H
#define VPORTFS_CHR_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest accepted spec, in bytes, without the NUL. */
#define CHR_SPEC_MAX_LEN 4096
/* Most key=value elements after the backend name, id included. */
#define CHR_SPEC_MAX_OPTS 32
/* Longest id in bytes (our limit; QEMU has none). */
#define CHR_ID_MAX 127

struct chr_opt {
	char *key;   /* [a-zA-Z0-9_.-]+, unique within the spec */
	char *value; /* unescaped (",," is now ","); "on" for a bare key */
	bool used;   /* set by a getter that read this option */
};

/*
 * Every string and the opts array belong to the spec: valid until
 * chr_spec_free(), read-only for everyone else.
 */
struct chr_spec {
	char *backend; /* [a-z0-9_-]+, e.g. "socket" */
	/* The id= option, taken out of opts: getters never see it. */
	char *id;
	struct chr_opt *opts; /* in the order given; id not among them */
	unsigned nopts;	      /* < CHR_SPEC_MAX_OPTS */
};

/*
 * Parse text (NUL-terminated, not NULL) into *out, which is overwritten
 * without being freed.  Syntax, from QemuOpts:
 *
 * - Elements are separated by ','.  The first is the backend name, a bare
 *   word ("backend=NAME" is not accepted): non-empty, [a-z0-9_-]+.
 * - The others are "key=value" with a key of [a-zA-Z0-9_.-]+.  In a value
 *   (and in the backend name, which makes it invalid) ",," stands for one
 *   literal ','; a key ends at the first '=' or ',' and has no escapes,
 *   so "server,,x" is "server" followed by the malformed element ",x".
 * - A bare key means key=on (QemuOpts' implied boolean; its "noKEY" form,
 *   meaning KEY=off, is not supported: "nowait" is simply the key
 *   "nowait").
 * - id= is required: 1 to CHR_ID_MAX bytes, a letter first, then letters,
 *   digits, '-', '.', '_' (QEMU's id_wellformed()).
 * - Stricter than QEMU: a key given twice (QEMU keeps the last, or the
 *   first id), an empty element (QEMU skips a trailing ','), more than
 *   CHR_SPEC_MAX_LEN bytes or CHR_SPEC_MAX_OPTS options are errors.
 *
 * 0; -EINVAL with a message naming the culprit ("missing id=", "option
 * 'port' given twice", "malformed element ',x'", "'id=9x' is not a valid
 * id"); -ENOMEM ("out of memory").  On error *out is left zeroed.
 */
int chr_spec_parse(const char *text, struct chr_spec *out, char *err,
		   size_t errlen);

/*
 * Free what the spec owns and zero it.  Accepts NULL, a zeroed spec, one
 * already freed, and a half-built one (any string NULL; opts, when not
 * NULL, holds nopts entries whose key and value may be NULL).
 */
void chr_spec_free(struct chr_spec *s);

/*
 * Getters.  Each marks the option it finds used, also when its value
 * turns out to be bad, so that the option is reported once.  A key not
 * given yields the default (dflt is returned as is, not checked against
 * max) and 0.  "id" is never found: read s->id.  On -EINVAL *out is left
 * alone, and the message names key and value ("'server=maybe' is not a
 * boolean ...").
 */

/* The value, owned by the spec; NULL if the key was not given. */
const char *chr_spec_str(struct chr_spec *s, const char *key);

/* on, yes, true, y / off, no, false, n, case-sensitive, as QEMU's
 * parse_option_bool(); anything else -EINVAL. */
int chr_spec_bool(struct chr_spec *s, const char *key, bool dflt, bool *out,
		  char *err, size_t errlen);

/* Decimal digits only (no sign, blank, "0x" or empty value), at most max;
 * else -EINVAL.  Leading zeros are decimal. */
int chr_spec_u64(struct chr_spec *s, const char *key, uint64_t dflt,
		 uint64_t max, uint64_t *out, char *err, size_t errlen);

/*
 * A byte count as QEMU's size options take it (qemu_strtosz()): decimal
 * digits and an optional suffix B (bytes), K, M, G or T (powers of 1024),
 * either case.  Unlike QEMU: no fraction ("1.5M") and no P or E.  More
 * than max (or than UINT64_MAX) is -EINVAL.
 */
int chr_spec_size(struct chr_spec *s, const char *key, uint64_t dflt,
		  uint64_t max, uint64_t *out, char *err, size_t errlen);

/*
 * Call after the backend has read every option it knows: -EINVAL naming
 * the first option (in the order given) that no getter read, "unknown
 * option 'x' for backend 'file'"; 0 if there is none.
 */
int chr_spec_check_unused(const struct chr_spec *s, char *err, size_t errlen);

#endif
