/*
 * Chardev option strings: "BACKEND,id=ID[,key=value]...", split the way
 * QemuOpts splits a -chardev argument.
 *
 * The parser knows no backend's options.  QEMU checks each key against a
 * table per backend while parsing; here the backend reads what it knows
 * through getters that mark options used, and chr_spec_check_unused()
 * names the rest.  So this module needs nothing from the backends, and a
 * misspelt key still never passes silently.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vportfs/chr_spec.h"

/* User text quoted in a message is clipped, so that what the message says
 * about it still fits in err. */
#define QUOTE_MAX 48

struct quoted {
	char s[QUOTE_MAX + sizeof("...")];
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!errlen)
		return -EINVAL;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	else if ((size_t)n >= errlen && errlen > 3)
		/* Cut, and say so rather than end mid-word. */
		memcpy(err + errlen - 4, "...", 3);
	return -EINVAL;
}

static int nomem(char *err, size_t errlen)
{
	fail(err, errlen, "out of memory");
	return -ENOMEM;
}

/* n bytes of user text (no NUL among them) fit for a one-line message. */
static const char *quote(struct quoted *q, const char *p, size_t n)
{
	size_t i, len = n < QUOTE_MAX ? n : QUOTE_MAX;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		q->s[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (len < n) {
		memcpy(q->s + len, "...", 3);
		len += 3;
	}
	q->s[len] = '\0';
	return q->s;
}

/* ASCII only, whatever the locale. */
static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(char c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_backend_char(char c)
{
	return is_lower(c) || is_digit(c) || c == '-' || c == '_';
}

/* Keys and ids share QEMU's id_wellformed() alphabet. */
static bool is_name_char(char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
}

static bool all(const char *p, size_t n, bool (*ok)(char))
{
	for (size_t i = 0; i < n; i++)
		if (!ok(p[i]))
			return false;
	return true;
}

/*
 * Raw length of the value at p: up to a single ',' or the end, ",," being
 * an escaped comma (QEMU's get_opt_value()).  *len gets its length once
 * unescaped.
 */
static size_t scan_value(const char *p, size_t *len)
{
	size_t raw = 0, n = 0;

	while (p[raw] && !(p[raw] == ',' && p[raw + 1] != ',')) {
		raw += p[raw] == ',' ? 2 : 1;
		n++;
	}
	if (len)
		*len = n;
	return raw;
}

/* Raw length of the element at p, as typed: a key has no escapes and ends
 * at the first '=' or ','; a leading ',' is kept, to show it. */
static size_t raw_elem_len(const char *p)
{
	size_t n;

	if (*p == ',')
		return 1 + raw_elem_len(p + 1);
	n = strcspn(p, "=,");
	if (p[n] == '=')
		n += 1 + scan_value(p + n + 1, NULL);
	return n;
}

static char *dup_span(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* The value scanned by scan_value(p) -> raw, len: unescaped, NUL-ended. */
static char *dup_value(const char *p, size_t raw, size_t len)
{
	char *s = malloc(len + 1), *w = s;

	if (!s)
		return NULL;
	for (size_t i = 0; i < raw; i++) {
		*w++ = p[i];
		if (p[i] == ',')
			i++;
	}
	*w = '\0';
	return s;
}

static int parse_backend(const char **pp, struct chr_spec *s, char *err,
			 size_t errlen)
{
	const char *p = *pp;
	struct quoted q;
	size_t raw, n = strcspn(p, "=,");

	if (p[n] == '=')
		return fail(err, errlen, "missing backend name before '%s'",
			    quote(&q, p, raw_elem_len(p)));
	/* QEMU reads the implied first element as a value, escapes and all:
	 * "socket,,id=x" is one element, the backend "socket,id=x". */
	raw = scan_value(p, NULL);
	if (!raw)
		return fail(err, errlen, "missing backend name");
	if (memchr(p, ',', raw))
		return fail(err, errlen,
			    "malformed backend name '%s' (',,' is an escaped "
			    "comma)",
			    quote(&q, p, raw));
	if (!all(p, raw, is_backend_char))
		return fail(err, errlen,
			    "'%s' is not a valid backend name (a-z, 0-9, '-', "
			    "'_')",
			    quote(&q, p, raw));
	s->backend = dup_span(p, raw);
	if (!s->backend)
		return nomem(err, errlen);
	*pp = p + raw;
	return 0;
}

/* The raw value of "id=VALUE" at p: 0 or -EINVAL naming the element. */
static int check_id(const char *p, size_t raw, char *err, size_t errlen)
{
	const char *v = p + 3;
	size_t n = 3 + raw;
	struct quoted q;

	if (!raw)
		return fail(err, errlen, "'%s' is not a valid id: empty",
			    quote(&q, p, n));
	if (raw > CHR_ID_MAX)
		return fail(err, errlen,
			    "'%s' is not a valid id: longer than %d bytes",
			    quote(&q, p, n), CHR_ID_MAX);
	if (!is_alpha(v[0]) || !all(v, raw, is_name_char))
		return fail(err, errlen,
			    "'%s' is not a valid id: use letters, digits, '-', "
			    "'.', '_', starting with a letter",
			    quote(&q, p, n));
	return 0;
}

/* *pp is past a separating ','; on success it is at the next one or at
 * the end. */
static int parse_element(const char **pp, struct chr_spec *s, char *err,
			 size_t errlen)
{
	const char *p = *pp, *v = "on";
	size_t klen = strcspn(p, "=,"), raw = 2, len = 2;
	struct chr_opt *opts;
	struct quoted q;
	char *key, *value;
	int rc;

	if (!*p)
		return fail(err, errlen,
			    "empty element at the end (trailing ',')");
	if (!klen)
		return fail(err, errlen, "malformed element '%s'",
			    quote(&q, p, raw_elem_len(p)));
	if (!all(p, klen, is_name_char))
		return fail(err, errlen, "'%s' is not a valid option name",
			    quote(&q, p, klen));
	if (s->nopts + (s->id ? 1 : 0) == CHR_SPEC_MAX_OPTS)
		return fail(err, errlen,
			    "too many options at '%s' (at most %d, id "
			    "included)",
			    quote(&q, p, klen), CHR_SPEC_MAX_OPTS);
	/* Else a bare key, and v is QemuOpts' implied "on". */
	if (p[klen] == '=') {
		v = p + klen + 1;
		raw = scan_value(v, &len);
	}
	*pp = p[klen] == '=' ? v + raw : p + klen;

	if (klen == 2 && !memcmp(p, "id", 2)) {
		if (s->id)
			return fail(err, errlen, "option 'id' given twice");
		/* A bare "id" is "id=on", well-formed. */
		rc = p[klen] == '=' ? check_id(p, raw, err, errlen) : 0;
		if (rc)
			return rc;
		/* Well-formed: no ',' in it, so raw is unescaped. */
		s->id = dup_span(v, raw);
		return s->id ? 0 : nomem(err, errlen);
	}
	for (unsigned i = 0; i < s->nopts; i++)
		if (strlen(s->opts[i].key) == klen &&
		    !memcmp(s->opts[i].key, p, klen))
			return fail(err, errlen, "option '%s' given twice",
				    quote(&q, p, klen));

	key = dup_span(p, klen);
	if (!key)
		return nomem(err, errlen);
	value = dup_value(v, raw, len);
	if (!value)
		goto free_key;
	opts = realloc(s->opts, (s->nopts + 1) * sizeof(*opts));
	if (!opts)
		goto free_value;
	s->opts = opts;
	opts[s->nopts++] = (struct chr_opt){.key = key, .value = value};
	return 0;

free_value:
	free(value);
free_key:
	free(key);
	return nomem(err, errlen);
}

int chr_spec_parse(const char *text, struct chr_spec *out, char *err,
		   size_t errlen)
{
	const char *p = text;
	int rc;

	memset(out, 0, sizeof(*out));
	if (strnlen(text, CHR_SPEC_MAX_LEN + 1) > CHR_SPEC_MAX_LEN)
		return fail(err, errlen, "spec longer than %d bytes",
			    CHR_SPEC_MAX_LEN);
	rc = parse_backend(&p, out, err, errlen);
	if (rc)
		goto free_spec;
	while (*p) {
		p++; /* the ',' that ended the previous element */
		rc = parse_element(&p, out, err, errlen);
		if (rc)
			goto free_spec;
	}
	if (!out->id) {
		rc = fail(err, errlen, "missing id=");
		goto free_spec;
	}
	return 0;

free_spec:
	chr_spec_free(out);
	return rc;
}

void chr_spec_free(struct chr_spec *s)
{
	if (!s)
		return;
	for (unsigned i = 0; s->opts && i < s->nopts; i++) {
		free(s->opts[i].key);
		free(s->opts[i].value);
	}
	free(s->opts);
	free(s->id);
	free(s->backend);
	memset(s, 0, sizeof(*s));
}

static struct chr_opt *find(struct chr_spec *s, const char *key)
{
	for (unsigned i = 0; i < s->nopts; i++) {
		if (!strcmp(s->opts[i].key, key)) {
			s->opts[i].used = true;
			return &s->opts[i];
		}
	}
	return NULL;
}

const char *chr_spec_str(struct chr_spec *s, const char *key)
{
	struct chr_opt *o = find(s, key);

	return o ? o->value : NULL;
}

int chr_spec_bool(struct chr_spec *s, const char *key, bool dflt, bool *out,
		  char *err, size_t errlen)
{
	static const char *const yes[] = {"on", "yes", "true", "y"};
	static const char *const no[] = {"off", "no", "false", "n"};
	struct chr_opt *o = find(s, key);
	struct quoted qk, qv;

	if (!o) {
		*out = dflt;
		return 0;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(o->value, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(o->value, no[i])) {
			*out = false;
			return 0;
		}
	}
	return fail(err, errlen,
		    "'%s=%s' is not a boolean (on/off, yes/no, true/false, "
		    "y/n)",
		    quote(&qk, o->key, strlen(o->key)),
		    quote(&qv, o->value, strlen(o->value)));
}

/* n bytes of decimal digits, nothing else: -EINVAL, or -ERANGE past
 * UINT64_MAX (only once all n bytes are known to be digits). */
static int parse_dec(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (!n || !all(p, n, is_digit))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int above_max(const struct chr_opt *o, uint64_t max, char *err,
		     size_t errlen)
{
	struct quoted qk, qv;

	return fail(err, errlen, "'%s=%s' is above %" PRIu64,
		    quote(&qk, o->key, strlen(o->key)),
		    quote(&qv, o->value, strlen(o->value)), max);
}

int chr_spec_u64(struct chr_spec *s, const char *key, uint64_t dflt,
		 uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	struct chr_opt *o = find(s, key);
	struct quoted qk, qv;
	uint64_t v;
	int rc;

	if (!o) {
		*out = dflt;
		return 0;
	}
	rc = parse_dec(o->value, strlen(o->value), &v);
	if (rc == -EINVAL)
		return fail(err, errlen, "'%s=%s' is not a decimal number",
			    quote(&qk, o->key, strlen(o->key)),
			    quote(&qv, o->value, strlen(o->value)));
	if (rc || v > max)
		return above_max(o, max, err, errlen);
	*out = v;
	return 0;
}

int chr_spec_size(struct chr_spec *s, const char *key, uint64_t dflt,
		  uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	struct chr_opt *o = find(s, key);
	struct quoted qk, qv;
	unsigned shift = 0;
	size_t n;
	uint64_t v;
	int rc;

	if (!o) {
		*out = dflt;
		return 0;
	}
	n = strlen(o->value);
	if (n) {
		/* qemu_strtosz() upper-cases the suffix: "4k" is 4K. */
		switch (o->value[n - 1]) {
		case 'B':
		case 'b':
			n--;
			break;
		case 'K':
		case 'k':
			shift = 10;
			n--;
			break;
		case 'M':
		case 'm':
			shift = 20;
			n--;
			break;
		case 'G':
		case 'g':
			shift = 30;
			n--;
			break;
		case 'T':
		case 't':
			shift = 40;
			n--;
			break;
		default:
			break;
		}
	}
	rc = parse_dec(o->value, n, &v);
	if (rc == -EINVAL)
		return fail(err, errlen,
			    "'%s=%s' is not a size (digits, then B, K, M, G or "
			    "T)",
			    quote(&qk, o->key, strlen(o->key)),
			    quote(&qv, o->value, strlen(o->value)));
	if (rc || v > UINT64_MAX >> shift || v << shift > max)
		return above_max(o, max, err, errlen);
	*out = v << shift;
	return 0;
}

int chr_spec_check_unused(const struct chr_spec *s, char *err, size_t errlen)
{
	struct quoted qk, qb;

	for (unsigned i = 0; i < s->nopts; i++) {
		const struct chr_opt *o = &s->opts[i];

		if (!o->used)
			return fail(err, errlen,
				    "unknown option '%s' for backend '%s'",
				    quote(&qk, o->key, strlen(o->key)),
				    s->backend ? quote(&qb, s->backend,
						       strlen(s->backend))
					       : "");
	}
	return 0;
}
