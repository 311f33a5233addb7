/*
 * Unit tests for src/chardev/spec.c: QEMU-style chardev option strings.
 *
 * Each error case checks -EINVAL and that the message names the culprit
 * (the key, the value or the element as typed), since the caller prints
 * that line as it is after "--chardev SPEC: ".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vportfs/chr_spec.h"

struct fx {
	struct chr_spec s;
	char err[256];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	chr_spec_free(&f->s);
	free(f);
	return 0;
}

static bool is_zeroed(const struct chr_spec *s)
{
	return !s->backend && !s->id && !s->opts && !s->nopts;
}

/* One line, no newline (the caller adds it), naming `needle`. */
static void assert_message(const char *err, const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error message \"%s\" does not name \"%s\"", err,
			 needle);
	assert_null(strchr(err, '\n'));
}

static int parse(struct fx *f, const char *text)
{
	chr_spec_free(&f->s);
	memset(f->err, 0, sizeof(f->err));
	return chr_spec_parse(text, &f->s, f->err, sizeof(f->err));
}

static void parse_ok(struct fx *f, const char *text)
{
	int rc = parse(f, text);

	if (rc)
		fail_msg("\"%s\": %d, %s", text, rc, f->err);
}

/* -EINVAL, a message naming `needle`, and nothing left to free. */
static void expect_error(struct fx *f, const char *text, const char *needle)
{
	/* Garbage in *out must not be freed: parse overwrites it. */
	chr_spec_free(&f->s);
	memset(&f->s, 0xa5, sizeof(f->s));
	memset(f->err, 0, sizeof(f->err));
	assert_int_equal(chr_spec_parse(text, &f->s, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, needle);
	assert_true(is_zeroed(&f->s));
}

/* ---- good specs -----------------------------------------------------------
 */

static void test_backend_and_id_only(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "socket,id=char0");
	assert_string_equal(f->s.backend, "socket");
	assert_string_equal(f->s.id, "char0");
	assert_int_equal(f->s.nopts, 0);
	assert_int_equal(chr_spec_check_unused(&f->s, f->err, sizeof(f->err)),
			 0);
}

static void test_options_keep_their_order_and_id_is_taken_out(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "socket,path=/run/vm.sock,id=c-1.x_y,server=on,wait=off");
	assert_string_equal(f->s.backend, "socket");
	assert_string_equal(f->s.id, "c-1.x_y");
	assert_int_equal(f->s.nopts, 3);
	assert_string_equal(f->s.opts[0].key, "path");
	assert_string_equal(f->s.opts[0].value, "/run/vm.sock");
	assert_string_equal(f->s.opts[1].key, "server");
	assert_string_equal(f->s.opts[1].value, "on");
	assert_string_equal(f->s.opts[2].key, "wait");
	assert_string_equal(f->s.opts[2].value, "off");
	for (unsigned i = 0; i < f->s.nopts; i++)
		assert_false(f->s.opts[i].used);
	/* id is not an option: getters never find it. */
	assert_null(chr_spec_str(&f->s, "id"));
}

static void test_backend_may_hold_digits_dash_and_underscore(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "qemu-vdagent_2,id=a");
	assert_string_equal(f->s.backend, "qemu-vdagent_2");
}

static void test_double_comma_is_a_literal_comma_in_a_value(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "file,id=f,path=a,,b,,,,c,mux=on");
	assert_string_equal(chr_spec_str(&f->s, "path"), "a,b,,c");
	assert_string_equal(chr_spec_str(&f->s, "mux"), "on");
	/* ",,," is an escaped comma, then the separator. */
	parse_ok(f, "file,id=f,path=x,,,mux=off");
	assert_string_equal(chr_spec_str(&f->s, "path"), "x,");
	assert_string_equal(chr_spec_str(&f->s, "mux"), "off");
	parse_ok(f, "file,id=f,path=trailing,,");
	assert_string_equal(chr_spec_str(&f->s, "path"), "trailing,");
	parse_ok(f, "file,id=f,path=,,");
	assert_string_equal(chr_spec_str(&f->s, "path"), ",");
}

static void test_value_may_be_empty_or_hold_equals(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "file,id=f,path=,logfile=a=b==c");
	assert_string_equal(chr_spec_str(&f->s, "path"), "");
	assert_string_equal(chr_spec_str(&f->s, "logfile"), "a=b==c");
}

static void test_bare_key_means_on(void **state)
{
	struct fx *f = *state;
	bool b = false;

	parse_ok(f, "socket,id=s,server,telnet,wait=off");
	assert_string_equal(chr_spec_str(&f->s, "server"), "on");
	assert_int_equal(chr_spec_bool(&f->s, "telnet", false, &b, f->err,
				       sizeof(f->err)),
			 0);
	assert_true(b);
	/* No "noKEY" form: "nowait" is just a key. */
	parse_ok(f, "socket,id=s,nowait");
	assert_string_equal(chr_spec_str(&f->s, "nowait"), "on");
	assert_null(chr_spec_str(&f->s, "wait"));
	/* A bare id is id=on, as in QEMU. */
	parse_ok(f, "socket,id");
	assert_string_equal(f->s.id, "on");
}

static void test_keys_are_case_sensitive(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "socket,id=s,Path=a,path=b");
	assert_int_equal(f->s.nopts, 2);
	assert_string_equal(chr_spec_str(&f->s, "Path"), "a");
	assert_string_equal(chr_spec_str(&f->s, "path"), "b");
}

static void test_id_well_formed(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "null,id=a");
	assert_string_equal(f->s.id, "a");
	parse_ok(f, "null,id=Z9-._");
	assert_string_equal(f->s.id, "Z9-._");
}

static void test_id_of_127_bytes_is_accepted_128_is_not(void **state)
{
	struct fx *f = *state;
	char text[16 + CHR_ID_MAX + 2];
	int n = snprintf(text, sizeof(text), "null,id=");

	memset(text + n, 'i', CHR_ID_MAX);
	text[n + CHR_ID_MAX] = '\0';
	parse_ok(f, text);
	assert_int_equal(strlen(f->s.id), CHR_ID_MAX);
	text[n + CHR_ID_MAX] = 'i';
	text[n + CHR_ID_MAX + 1] = '\0';
	expect_error(f, text, "longer than 127 bytes");
	expect_error(f, text, "'id=iiii");
}

static void test_input_of_4096_bytes_is_accepted_4097_is_not(void **state)
{
	struct fx *f = *state;
	char *text = malloc(CHR_SPEC_MAX_LEN + 2);
	int n;

	assert_non_null(text);
	n = snprintf(text, CHR_SPEC_MAX_LEN + 2, "file,id=f,path=");
	memset(text + n, 'p', (size_t)(CHR_SPEC_MAX_LEN - n));
	text[CHR_SPEC_MAX_LEN] = '\0';
	parse_ok(f, text);
	assert_int_equal(strlen(chr_spec_str(&f->s, "path")),
			 CHR_SPEC_MAX_LEN - n);
	text[CHR_SPEC_MAX_LEN] = 'p';
	text[CHR_SPEC_MAX_LEN + 1] = '\0';
	expect_error(f, text, "longer than 4096 bytes");
	free(text);
}

/* "null,id=a,k1=v,...": `nkeys` options besides id. */
static char *spec_with_keys(unsigned nkeys)
{
	size_t len = 16 + nkeys * 8;
	char *text = malloc(len);
	size_t n;

	assert_non_null(text);
	n = (size_t)snprintf(text, len, "null,id=a");
	for (unsigned i = 1; i <= nkeys; i++)
		n += (size_t)snprintf(text + n, len - n, ",k%u=v", i);
	assert_true(n < len);
	return text;
}

static void test_32_options_with_id_are_accepted_33_are_not(void **state)
{
	struct fx *f = *state;
	char *text = spec_with_keys(CHR_SPEC_MAX_OPTS - 1);

	parse_ok(f, text);
	assert_int_equal(f->s.nopts, CHR_SPEC_MAX_OPTS - 1);
	assert_string_equal(f->s.opts[CHR_SPEC_MAX_OPTS - 2].key, "k31");
	free(text);
	text = spec_with_keys(CHR_SPEC_MAX_OPTS);
	expect_error(f, text, "'k32'");
	expect_error(f, text, "too many options");
	free(text);
}

/* ---- syntax errors --------------------------------------------------------
 */

static void test_missing_backend(void **state)
{
	struct fx *f = *state;

	expect_error(f, "", "missing backend name");
	expect_error(f, ",id=a", "missing backend name");
}

static void test_key_value_where_the_backend_should_be(void **state)
{
	struct fx *f = *state;

	expect_error(f, "id=a,socket", "missing backend name before 'id=a'");
	expect_error(f, "backend=socket,id=a", "'backend=socket'");
}

static void test_invalid_backend_name(void **state)
{
	struct fx *f = *state;

	expect_error(f, "Socket,id=a", "'Socket' is not a valid backend name");
	expect_error(f, "sock et,id=a", "'sock et'");
	expect_error(f, "sock.et,id=a", "'sock.et'");
}

static void test_double_comma_after_backend_is_malformed(void **state)
{
	struct fx *f = *state;

	/* One element: the backend "socket,id=x", with an escaped comma. */
	expect_error(f, "socket,,id=x",
		     "malformed backend name 'socket,,id=x'");
	expect_error(f, "socket,,,id=x", "'socket,,'");
}

static void test_trailing_empty_element(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=x,", "empty element at the end");
	expect_error(f, "socket,", "empty element at the end");
	expect_error(f, "socket,id=x,path=a,,,", "trailing ','");
}

static void test_element_starting_with_comma_or_equals(void **state)
{
	struct fx *f = *state;

	/* A key has no escapes: "server,,x" is "server" then ",x". */
	expect_error(f, "socket,id=q,server,,x", "malformed element ',x'");
	expect_error(f, "socket,id=q,server,,x=1,y=2",
		     "malformed element ',x=1'");
	expect_error(f, "socket,id=q,=v", "malformed element '=v'");
	expect_error(f, "socket,id=q,=", "malformed element '='");
}

static void test_invalid_option_name(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=q,pa th=1",
		     "'pa th' is not a valid option name");
	expect_error(f, "socket,id=q,a/b", "'a/b'");
	expect_error(f, "socket,id=q,k\xc3\xa9=1",
		     "is not a valid option name");
}

static void test_key_given_twice_is_named(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=q,port=1,host=h,port=2",
		     "option 'port' given twice");
	expect_error(f, "socket,id=q,server,server=off",
		     "option 'server' given twice");
	expect_error(f, "socket,id=q,id=r", "option 'id' given twice");
	expect_error(f, "socket,id=q,id=q", "option 'id' given twice");
}

static void test_missing_id(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket", "missing id=");
	expect_error(f, "socket,path=/x,server=on", "missing id=");
	/* id is case-sensitive, like every key. */
	expect_error(f, "socket,ID=a", "missing id=");
}

static void test_invalid_id_is_named(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=", "'id=' is not a valid id: empty");
	expect_error(f, "socket,id=9x", "'id=9x' is not a valid id");
	expect_error(f, "socket,id=_a", "'id=_a'");
	expect_error(f, "socket,id=-a", "'id=-a'");
	expect_error(f, "socket,id=a/b", "'id=a/b'");
	expect_error(f, "socket,id=a b", "'id=a b'");
	expect_error(f, "socket,id=a:b", "'id=a:b'");
	/* As typed, escape included: the id would be "a,b". */
	expect_error(f, "socket,id=a,,b", "'id=a,,b' is not a valid id");
}

static void test_control_characters_do_not_break_the_line(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=a\nb", "'id=a?b'");
	expect_error(f, "sock\tet,id=a", "'sock?et'");
}

static void test_long_culprit_is_clipped_and_the_line_fits(void **state)
{
	struct fx *f = *state;
	char text[600];
	int n = snprintf(text, sizeof(text), "null,id=a,");

	memset(text + n, 'k', 500);
	text[n + 499] = ' ';
	snprintf(text + n + 500, sizeof(text) - (size_t)n - 500, "=1,k=2,k=3");
	expect_error(f, text, "...' is not a valid option name");
	assert_true(strlen(f->err) < 120);
}

static void test_message_cut_to_errlen_ends_in_dots(void **state)
{
	struct fx *f = *state;
	char small[16];

	memset(small, 'x', sizeof(small));
	assert_int_equal(chr_spec_parse("socket,id=q,port=1,port=2", &f->s,
					small, sizeof(small)),
			 -EINVAL);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_string_equal(small, "option 'port...");
	/* errlen 0: nothing written, still an error. */
	assert_int_equal(chr_spec_parse("socket", &f->s, NULL, 0), -EINVAL);
	assert_true(is_zeroed(&f->s));
}

static void test_err_is_untouched_on_success(void **state)
{
	struct fx *f = *state;

	snprintf(f->err, sizeof(f->err), "before");
	assert_int_equal(
		chr_spec_parse("null,id=a", &f->s, f->err, sizeof(f->err)), 0);
	assert_string_equal(f->err, "before");
}

/* ---- getters --------------------------------------------------------------
 */

static void test_str_returns_value_or_null_and_marks_used(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "file,id=f,path=/tmp/x,append=on");
	assert_string_equal(chr_spec_str(&f->s, "path"), "/tmp/x");
	assert_true(f->s.opts[0].used);
	assert_false(f->s.opts[1].used);
	assert_null(chr_spec_str(&f->s, "nosuch"));
	assert_null(chr_spec_str(&f->s, "pat"));
	assert_null(chr_spec_str(&f->s, "path2"));
}

static void test_getters_on_absent_key_return_default(void **state)
{
	struct fx *f = *state;
	bool b;
	uint64_t v;

	parse_ok(f, "null,id=n");
	assert_int_equal(
		chr_spec_bool(&f->s, "x", true, &b, f->err, sizeof(f->err)), 0);
	assert_true(b);
	assert_int_equal(
		chr_spec_bool(&f->s, "x", false, &b, f->err, sizeof(f->err)),
		0);
	assert_false(b);
	assert_int_equal(
		chr_spec_u64(&f->s, "x", 42, 10, &v, f->err, sizeof(f->err)),
		0);
	assert_int_equal(v, 42); /* not checked against max */
	assert_int_equal(chr_spec_size(&f->s, "x", 1 << 20, UINT64_MAX, &v,
				       f->err, sizeof(f->err)),
			 0);
	assert_int_equal(v, 1 << 20);
	assert_null(chr_spec_str(&f->s, "x"));
}

static void test_getters_on_a_zeroed_spec_return_default(void **state)
{
	struct chr_spec s = {0};
	char err[64];
	uint64_t v = 0;

	(void)state;
	assert_null(chr_spec_str(&s, "a"));
	assert_int_equal(chr_spec_u64(&s, "a", 7, 7, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 7);
	assert_int_equal(chr_spec_check_unused(&s, err, sizeof(err)), 0);
}

static void test_bool_spellings(void **state)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = {
		{"on", true},	{"yes", true}, {"true", true},	 {"y", true},
		{"off", false}, {"no", false}, {"false", false}, {"n", false},
	};
	struct fx *f = *state;
	char text[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool b = !cases[i].value;

		snprintf(text, sizeof(text), "socket,id=s,server=%s",
			 cases[i].text);
		parse_ok(f, text);
		assert_int_equal(chr_spec_bool(&f->s, "server", !cases[i].value,
					       &b, f->err, sizeof(f->err)),
				 0);
		assert_int_equal(b, cases[i].value);
	}
}

static void test_bad_bool_names_key_and_value(void **state)
{
	static const char *const bad[] = {"maybe", "ON",  "Yes", "1", "0",
					  "",	   "onn", "of",	 "t"};
	struct fx *f = *state;
	char text[64], needle[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool b = true;

		snprintf(text, sizeof(text), "socket,id=s,server=%s", bad[i]);
		snprintf(needle, sizeof(needle), "'server=%s' is not a boolean",
			 bad[i]);
		parse_ok(f, text);
		assert_int_equal(chr_spec_bool(&f->s, "server", false, &b,
					       f->err, sizeof(f->err)),
				 -EINVAL);
		assert_message(f->err, needle);
		assert_true(b); /* untouched */
		/* Read, if badly: not reported again as unknown. */
		assert_true(f->s.opts[0].used);
	}
}

static void test_u64_range_and_max(void **state)
{
	struct fx *f = *state;
	uint64_t v = 0;

	parse_ok(f, "socket,id=s,a=0,b=65535,c=007,"
		    "d=18446744073709551615");
	assert_int_equal(
		chr_spec_u64(&f->s, "a", 9, 65535, &v, f->err, sizeof(f->err)),
		0);
	assert_int_equal(v, 0);
	assert_int_equal(
		chr_spec_u64(&f->s, "b", 9, 65535, &v, f->err, sizeof(f->err)),
		0);
	assert_int_equal(v, 65535);
	assert_int_equal(
		chr_spec_u64(&f->s, "c", 9, 65535, &v, f->err, sizeof(f->err)),
		0);
	assert_int_equal(v, 7);
	assert_int_equal(chr_spec_u64(&f->s, "d", 9, UINT64_MAX, &v, f->err,
				      sizeof(f->err)),
			 0);
	assert_true(v == UINT64_MAX);
}

static void test_u64_above_max_names_key_value_and_max(void **state)
{
	struct fx *f = *state;
	uint64_t v = 5;

	parse_ok(f, "socket,id=s,port=65536");
	assert_int_equal(chr_spec_u64(&f->s, "port", 0, 65535, &v, f->err,
				      sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "'port=65536' is above 65535");
	assert_int_equal(v, 5);
}

static void test_u64_overflow(void **state)
{
	struct fx *f = *state;
	uint64_t v = 5;

	parse_ok(f,
		 "socket,id=s,n=18446744073709551616,m=99999999999999999999");
	assert_int_equal(chr_spec_u64(&f->s, "n", 0, UINT64_MAX, &v, f->err,
				      sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "'n=18446744073709551616' is above "
			       "18446744073709551615");
	assert_int_equal(chr_spec_u64(&f->s, "m", 0, UINT64_MAX, &v, f->err,
				      sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "'m=99999999999999999999'");
	assert_int_equal(v, 5);
}

static void test_u64_not_a_number(void **state)
{
	static const char *const bad[] = {"",	 "-1",	"+1", " 1",
					  "1 ",	 "1x",	"x",  "0x10",
					  "1.0", "1e3", "1K", "on"};
	struct fx *f = *state;
	char text[64], needle[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 5;

		snprintf(text, sizeof(text), "socket,id=s,port=%s", bad[i]);
		snprintf(needle, sizeof(needle),
			 "'port=%s' is not a decimal number", bad[i]);
		parse_ok(f, text);
		assert_int_equal(chr_spec_u64(&f->s, "port", 0, UINT64_MAX, &v,
					      f->err, sizeof(f->err)),
				 -EINVAL);
		assert_message(f->err, needle);
		assert_int_equal(v, 5);
	}
}

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *text;
		uint64_t value;
	} cases[] = {
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"512b", 512},
		{"4k", 4096},
		{"4K", 4096},
		{"1M", 1u << 20},
		{"1m", 1u << 20},
		{"2G", 2ull << 30},
		{"3T", 3ull << 40},
		{"0T", 0},
		{"16777215T", 16777215ull << 40},
		{"18446744073709551615", UINT64_MAX},
		{"18446744073709551615B", UINT64_MAX},
	};
	struct fx *f = *state;
	char text[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 1;

		snprintf(text, sizeof(text), "ringbuf,id=r,size=%s",
			 cases[i].text);
		parse_ok(f, text);
		assert_int_equal(chr_spec_size(&f->s, "size", 1, UINT64_MAX, &v,
					       f->err, sizeof(f->err)),
				 0);
		if (v != cases[i].value)
			fail_msg("size=%s: %llu", cases[i].text,
				 (unsigned long long)v);
	}
}

static void test_size_overflow_and_max(void **state)
{
	static const char *const big[] = {
		"16777216T",
		"17179869184G",
		"18446744073709551616",
		"18446744073709551616B",
		"99999999999999999999999K",
	};
	struct fx *f = *state;
	char text[64], needle[64];
	uint64_t v = 1;

	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		snprintf(text, sizeof(text), "ringbuf,id=r,size=%s", big[i]);
		snprintf(needle, sizeof(needle),
			 "'size=%s' is above 18446744073709551615", big[i]);
		parse_ok(f, text);
		assert_int_equal(chr_spec_size(&f->s, "size", 0, UINT64_MAX, &v,
					       f->err, sizeof(f->err)),
				 -EINVAL);
		assert_message(f->err, needle);
	}
	parse_ok(f, "ringbuf,id=r,size=1M,small=1025K");
	assert_int_equal(chr_spec_size(&f->s, "size", 0, 1u << 20, &v, f->err,
				       sizeof(f->err)),
			 0);
	assert_int_equal(v, 1u << 20);
	assert_int_equal(chr_spec_size(&f->s, "small", 0, 1u << 20, &v, f->err,
				       sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "'small=1025K' is above 1048576");
	assert_int_equal(v, 1u << 20);
}

static void test_size_not_a_size(void **state)
{
	static const char *const bad[] = {"",	  "K",	 "B",	 "-1",	 "+1K",
					  "1.5M", "1KB", "1X",	 "1P",	 "1E",
					  " 1K",  "1 K", "0x10", "1KiB", "k1"};
	struct fx *f = *state;
	char text[64], needle[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 5;

		snprintf(text, sizeof(text), "ringbuf,id=r,size=%s", bad[i]);
		snprintf(needle, sizeof(needle), "'size=%s' is not a size",
			 bad[i]);
		parse_ok(f, text);
		assert_int_equal(chr_spec_size(&f->s, "size", 0, UINT64_MAX, &v,
					       f->err, sizeof(f->err)),
				 -EINVAL);
		assert_message(f->err, needle);
		assert_int_equal(v, 5);
	}
}

/* ---- check_unused ---------------------------------------------------------
 */

static void test_check_unused_names_first_unread_option(void **state)
{
	struct fx *f = *state;
	bool b;

	parse_ok(f, "file,id=f,path=/x,bogus=1,mux=on,other");
	assert_non_null(chr_spec_str(&f->s, "path"));
	assert_int_equal(chr_spec_check_unused(&f->s, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "unknown option 'bogus' for backend 'file'");
	assert_int_equal(
		chr_spec_bool(&f->s, "mux", false, &b, f->err, sizeof(f->err)),
		0);
	assert_non_null(chr_spec_str(&f->s, "bogus"));
	assert_int_equal(chr_spec_check_unused(&f->s, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_message(f->err, "unknown option 'other' for backend 'file'");
	assert_non_null(chr_spec_str(&f->s, "other"));
	assert_int_equal(chr_spec_check_unused(&f->s, f->err, sizeof(f->err)),
			 0);
}

static void test_check_unused_counts_a_getter_error_as_read(void **state)
{
	struct fx *f = *state;
	uint64_t v;

	parse_ok(f, "socket,id=s,port=x");
	assert_int_equal(chr_spec_u64(&f->s, "port", 0, 65535, &v, f->err,
				      sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(chr_spec_check_unused(&f->s, f->err, sizeof(f->err)),
			 0);
}

/* ---- free -----------------------------------------------------------------
 */

static void test_free_zeroed_freed_and_null(void **state)
{
	struct chr_spec s = {0};

	(void)state;
	chr_spec_free(NULL);
	chr_spec_free(&s);
	assert_true(is_zeroed(&s));
	chr_spec_free(&s);
	assert_true(is_zeroed(&s));
}

static void test_free_parsed_spec_leaves_it_zeroed(void **state)
{
	struct fx *f = *state;

	parse_ok(f, "socket,id=s,path=/p,server,wait=off");
	chr_spec_free(&f->s);
	assert_true(is_zeroed(&f->s));
	chr_spec_free(&f->s);
	assert_true(is_zeroed(&f->s));
}

static void test_free_half_built_spec(void **state)
{
	struct chr_spec s = {0};

	(void)state;
	/* Backend and id only, as if the first element had failed. */
	s.backend = strdup("socket");
	assert_non_null(s.backend);
	chr_spec_free(&s);
	assert_true(is_zeroed(&s));

	/* An entry without value, one without anything. */
	s.opts = calloc(2, sizeof(*s.opts));
	assert_non_null(s.opts);
	s.nopts = 2;
	s.opts[0].key = strdup("path");
	assert_non_null(s.opts[0].key);
	s.id = strdup("x");
	assert_non_null(s.id);
	chr_spec_free(&s);
	assert_true(is_zeroed(&s));

	/* nopts without an array. */
	s.nopts = 3;
	chr_spec_free(&s);
	assert_true(is_zeroed(&s));
}

static void test_parse_after_error_and_free_starts_fresh(void **state)
{
	struct fx *f = *state;

	expect_error(f, "socket,id=a,port=1,port=2", "'port'");
	parse_ok(f, "socket,id=b,port=3");
	assert_string_equal(f->s.id, "b");
	assert_int_equal(f->s.nopts, 1);
	assert_string_equal(chr_spec_str(&f->s, "port"), "3");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_backend_and_id_only),
		T(test_options_keep_their_order_and_id_is_taken_out),
		T(test_backend_may_hold_digits_dash_and_underscore),
		T(test_double_comma_is_a_literal_comma_in_a_value),
		T(test_value_may_be_empty_or_hold_equals),
		T(test_bare_key_means_on),
		T(test_keys_are_case_sensitive),
		T(test_id_well_formed),
		T(test_id_of_127_bytes_is_accepted_128_is_not),
		T(test_input_of_4096_bytes_is_accepted_4097_is_not),
		T(test_32_options_with_id_are_accepted_33_are_not),
		T(test_missing_backend),
		T(test_key_value_where_the_backend_should_be),
		T(test_invalid_backend_name),
		T(test_double_comma_after_backend_is_malformed),
		T(test_trailing_empty_element),
		T(test_element_starting_with_comma_or_equals),
		T(test_invalid_option_name),
		T(test_key_given_twice_is_named),
		T(test_missing_id),
		T(test_invalid_id_is_named),
		T(test_control_characters_do_not_break_the_line),
		T(test_long_culprit_is_clipped_and_the_line_fits),
		T(test_message_cut_to_errlen_ends_in_dots),
		T(test_err_is_untouched_on_success),
		T(test_str_returns_value_or_null_and_marks_used),
		T(test_getters_on_absent_key_return_default),
		T(test_getters_on_a_zeroed_spec_return_default),
		T(test_bool_spellings),
		T(test_bad_bool_names_key_and_value),
		T(test_u64_range_and_max),
		T(test_u64_above_max_names_key_value_and_max),
		T(test_u64_overflow),
		T(test_u64_not_a_number),
		T(test_size_suffixes),
		T(test_size_overflow_and_max),
		T(test_size_not_a_size),
		T(test_check_unused_names_first_unread_option),
		T(test_check_unused_counts_a_getter_error_as_read),
		T(test_free_zeroed_freed_and_null),
		T(test_free_parsed_spec_leaves_it_zeroed),
		T(test_free_half_built_spec),
		T(test_parse_after_error_and_free_starts_fresh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
