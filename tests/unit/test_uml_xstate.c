/*
 * Unit tests for src/uml/xstate.c, the UML XSTATE helper's core.
 *
 * A fake ptrace stands for the host kernel: it keeps one tracee's XSAVE
 * area of a chosen size, answers a GET like the kernel (copies at most the
 * area, shortens iov_len) and refuses a SET whose buffer is shorter than
 * the area with EFAULT, as current kernels do.  So "UML's buffer too
 * small" and "just right" are both played out here, whatever this
 * machine's CPU.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include <cmocka.h>

#include "vportfs/uml_xstate.h"

#define PID 4242

struct kernel {
	size_t area_len;
	uint8_t area[16384];
	unsigned gets, sets;
	int fail_get; /* -errno for every GET, 0 = none */
};

static long fake_ptrace(long request, pid_t pid, void *addr, void *data,
			void *ctx)
{
	struct kernel *k = ctx;
	struct iovec *iov = data;

	assert_int_equal(pid, PID);
	assert_int_equal((long)addr, UX_NT_X86_XSTATE);
	if (request == PTRACE_GETREGSET) {
		size_t n =
			iov->iov_len < k->area_len ? iov->iov_len : k->area_len;

		k->gets++;
		if (k->fail_get)
			return k->fail_get;
		memcpy(iov->iov_base, k->area, n);
		iov->iov_len = n;
		return 0;
	}
	assert_int_equal(request, PTRACE_SETREGSET);
	k->sets++;
	if (iov->iov_len < k->area_len)
		return -EFAULT;
	memcpy(k->area, iov->iov_base, k->area_len);
	return 0;
}

struct fx {
	struct kernel k;
	struct ux ux;
	uint8_t uml[4096]; /* UML's buffer */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (size_t i = 0; i < sizeof(f->k.area); i++)
		f->k.area[i] = (uint8_t)(i * 7 + 1);
	f->ux.ptrace = fake_ptrace;
	f->ux.ctx = &f->k;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ux_release(&f->ux);
	free(f);
	return 0;
}

static int call(struct fx *f, long request, size_t len)
{
	struct iovec iov = {.iov_base = f->uml, .iov_len = len};
	int r = ux_regset(&f->ux, request, PID, &iov);

	if (r == 0 && request == PTRACE_GETREGSET)
		assert_true(iov.iov_len <= len);
	return r;
}

/* A host area larger than UML's buffer (the AMX case, scaled): UML gets
 * its prefix, its SET lands whole, and the bytes past its buffer keep the
 * values the tracee had. */
static void test_small_buffer_overlays(void **state)
{
	struct fx *f = *state;
	uint8_t tail[11008 - 2696];

	f->k.area_len = 11008;
	memcpy(tail, f->k.area + 2696, 11008 - 2696);

	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), 0);
	assert_memory_equal(f->uml, f->k.area, 2696);
	assert_int_equal(f->ux.host_len, 11008);
	assert_int_equal(f->ux.action, UX_ACTION_OVERLAY);

	memset(f->uml, 0xab, 2696);
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	for (size_t i = 0; i < 2696; i++)
		assert_int_equal(f->k.area[i], 0xab);
	assert_memory_equal(f->k.area + 2696, tail, 11008 - 2696);
}

/* Without the helper the same SET fails the way UML reports it. */
static void test_small_buffer_off_fails_like_the_kernel(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 11008;
	f->ux.mode = UX_MODE_OFF;
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), -EFAULT);
	assert_int_equal(f->ux.action, UX_ACTION_PASSTHROUGH);
}

/* A buffer that holds the area: every call is the caller's own, one
 * kernel call each after the probe. */
static void test_large_buffer_passes_through(void **state)
{
	struct fx *f = *state;
	unsigned gets;

	f->k.area_len = 2432;
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), 0);
	assert_int_equal(f->ux.action, UX_ACTION_PASSTHROUGH);
	gets = f->k.gets;
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), 0);
	assert_int_equal(f->k.gets, gets + 1);
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	assert_int_equal(f->k.sets, 1);
}

/* Where CPUID says no area can exceed UML's buffer, the helper does not
 * even ask the kernel: one call of UML's own per call. */
static void test_cpuid_bound_skips_the_probe(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 2432;
	f->ux.cpu_len = 2432;
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), 0);
	assert_int_equal(f->ux.action, UX_ACTION_PASSTHROUGH);
	assert_int_equal(f->ux.host_len, 0);
	assert_int_equal(f->k.gets, 1);
	assert_null(f->ux.scratch);
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	assert_int_equal(f->k.sets, 1);
}

/* A CPUID bound above UML's buffer (AMX) leads to the kernel's answer. */
static void test_cpuid_bound_above_buffer_probes(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 11008;
	f->ux.cpu_len = 11008;
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	assert_int_equal(f->ux.host_len, 11008);
	assert_int_equal(f->ux.action, UX_ACTION_OVERLAY);
}

/* Overlay forced where it is not needed: still exact. */
static void test_overlay_mode_on_large_buffer(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 2432;
	f->ux.mode = UX_MODE_OVERLAY;
	memset(f->uml, 0x5c, sizeof(f->uml));
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	assert_int_equal(f->ux.action, UX_ACTION_OVERLAY);
	for (size_t i = 0; i < 2432; i++)
		assert_int_equal(f->k.area[i], 0x5c);
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), 0);
	assert_memory_equal(f->uml, f->k.area, 2432);
}

/* Emulating an 832-byte UML on a host whose area fits 2696 bytes: the
 * kernel sees 832, so without the helper a SET fails, with it it works. */
static void test_emulated_small_buffer(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 2432;
	f->ux.emulate_len = 832;
	f->ux.mode = UX_MODE_OFF;
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), -EFAULT);
	f->ux.mode = UX_MODE_AUTO;
	assert_int_equal(call(f, PTRACE_SETREGSET, 2696), 0);
	assert_int_equal(f->ux.uml_len, 832);
	assert_int_equal(f->ux.action, UX_ACTION_OVERLAY);
}

static void test_fxsave_mode_hides_xstate(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 2432;
	f->ux.mode = UX_MODE_FXSAVE;
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), -ENODEV);
	assert_int_equal(f->ux.action, UX_ACTION_HIDDEN);
	assert_int_equal(f->k.gets + f->k.sets, 0);
}

/* A kernel that refuses the probe (no XSAVE): its error reaches UML, which
 * then falls back by itself. */
static void test_probe_error_is_returned(void **state)
{
	struct fx *f = *state;

	f->k.area_len = 2432;
	f->k.fail_get = -ENODEV;
	assert_int_equal(call(f, PTRACE_GETREGSET, 2696), -ENODEV);
	assert_int_equal(f->ux.host_len, 0);
}

static void test_mode_names(void **state)
{
	enum ux_mode m;

	(void)state;
	assert_int_equal(ux_mode_parse("overlay", &m), 0);
	assert_int_equal(m, UX_MODE_OVERLAY);
	assert_string_equal(ux_mode_name(m), "overlay");
	assert_int_equal(ux_mode_parse("Auto", &m), -EINVAL);
	assert_int_equal(ux_mode_parse("", &m), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_small_buffer_overlays,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_small_buffer_off_fails_like_the_kernel, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_large_buffer_passes_through, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cpuid_bound_skips_the_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cpuid_bound_above_buffer_probes, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_overlay_mode_on_large_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emulated_small_buffer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fxsave_mode_hides_xstate,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_error_is_returned,
						setup, teardown),
		cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
