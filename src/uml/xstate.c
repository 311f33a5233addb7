/*
 * Host-sized XSAVE areas for UML 6.1: see include/vportfs/uml_xstate.h for
 * why.  The one design choice: never guess the host's size from CPUID (the
 * kernel's user area can differ from what CPUID reports for XCR0); ask the
 * kernel, by reading a tracee's area into a buffer larger than any CPU's
 * and keeping the length it returns.  CPUID only says when no question is
 * needed: if UML's buffer holds the largest area the CPU's features can
 * need, every call passes through and the helper does nothing at all.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>

#include "vportfs/uml_xstate.h"

/* First probe buffer: well above AMX's 11008 bytes.  Doubled while the
 * kernel fills it completely, up to UX_PROBE_MAX. */
#define UX_PROBE_LEN (64 * 1024)
#define UX_PROBE_MAX (4 * 1024 * 1024)

/* The FXSAVE legacy region: no XSAVE buffer is smaller. */
#define UX_MIN_LEN 512

static const char *const mode_names[] = {
	[UX_MODE_AUTO] = "auto",
	[UX_MODE_OVERLAY] = "overlay",
	[UX_MODE_FXSAVE] = "fxsave",
	[UX_MODE_OFF] = "off",
};

int ux_mode_parse(const char *name, enum ux_mode *mode)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]);
	     i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*mode = (enum ux_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ux_mode_name(enum ux_mode mode)
{
	if ((size_t)mode < sizeof(mode_names) / sizeof(mode_names[0]))
		return mode_names[mode];
	return "?";
}

const char *ux_action_name(enum ux_action action)
{
	switch (action) {
	case UX_ACTION_NONE:
		return "none";
	case UX_ACTION_PASSTHROUGH:
		return "passthrough";
	case UX_ACTION_OVERLAY:
		return "overlay";
	case UX_ACTION_HIDDEN:
		return "hidden";
	}
	return "?";
}

static void *map_area(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static long regset(struct ux *ux, long request, pid_t pid, void *buf,
		   size_t *len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = *len};
	long r = ux->ptrace(request, pid, (void *)(long)UX_NT_X86_XSTATE, &iov,
			    ux->ctx);

	if (r >= 0)
		*len = iov.iov_len;
	return r;
}

/* Learn the host's area size from `pid`, leaving a scratch area of at
 * least that size behind.  0 or -errno. */
static int probe(struct ux *ux, pid_t pid)
{
	for (size_t len = UX_PROBE_LEN; len <= UX_PROBE_MAX; len *= 2) {
		void *buf = map_area(len);
		size_t got = len;
		long r;

		if (!buf)
			return -ENOMEM;
		r = regset(ux, PTRACE_GETREGSET, pid, buf, &got);
		if (r < 0 || got < UX_MIN_LEN || got == len) {
			munmap(buf, len);
			if (r < 0)
				return (int)r;
			if (got < UX_MIN_LEN)
				return -EIO;
			continue; /* filled: the area may be larger */
		}
		ux_release(ux);
		ux->scratch = buf;
		ux->scratch_len = len;
		ux->host_len = got;
		return 0;
	}
	return -E2BIG;
}

/* The whole-area path.  `buf` holds at least host_len bytes. */
static int overlay(struct ux *ux, long request, pid_t pid, struct iovec *iov,
		   size_t uml_len, void *buf)
{
	size_t got = ux->host_len;
	size_t n;
	long r = regset(ux, PTRACE_GETREGSET, pid, buf, &got);

	if (r < 0)
		return (int)r;
	if (got != ux->host_len)
		return -EIO; /* the kernel changed its mind: refuse to guess */
	n = uml_len < got ? uml_len : got;
	if (request == PTRACE_GETREGSET) {
		memcpy(iov->iov_base, buf, n);
		iov->iov_len = n;
		return 0;
	}
	memcpy(buf, iov->iov_base, n);
	r = regset(ux, PTRACE_SETREGSET, pid, buf, &got);
	return r < 0 ? (int)r : 0;
}

static int passthrough(struct ux *ux, long request, pid_t pid,
		       struct iovec *iov, size_t uml_len)
{
	size_t len = uml_len;
	long r = regset(ux, request, pid, iov->iov_base, &len);

	if (r < 0)
		return (int)r;
	if (request == PTRACE_GETREGSET)
		iov->iov_len = len;
	return 0;
}

int ux_regset(struct ux *ux, long request, pid_t pid, struct iovec *iov)
{
	size_t uml_len = iov->iov_len;
	void *buf;
	bool own = false;
	int r;

	if (request != PTRACE_GETREGSET && request != PTRACE_SETREGSET)
		return -EINVAL;
	if (ux->emulate_len >= UX_MIN_LEN && ux->emulate_len < uml_len)
		uml_len = ux->emulate_len;
	ux->uml_len = uml_len;

	switch (ux->mode) {
	case UX_MODE_OFF:
		ux->action = UX_ACTION_PASSTHROUGH;
		return passthrough(ux, request, pid, iov, uml_len);
	case UX_MODE_FXSAVE:
		ux->action = UX_ACTION_HIDDEN;
		return -ENODEV; /* what a host without XSAVE answers */
	case UX_MODE_AUTO:
	case UX_MODE_OVERLAY:
		break;
	}

	/* Where the CPU says no feature set can need more than UML's buffer,
	 * nothing is needed, not even a probe: every call is UML's own. */
	if (ux->mode == UX_MODE_AUTO && ux->cpu_len && uml_len >= ux->cpu_len) {
		ux->action = UX_ACTION_PASSTHROUGH;
		return passthrough(ux, request, pid, iov, uml_len);
	}
	if (ux->host_len == 0 && !ux->scratch_busy) {
		ux->scratch_busy = true;
		r = probe(ux, pid);
		ux->scratch_busy = false;
		if (r < 0)
			return r;
	}
	if (ux->host_len == 0)
		return -EAGAIN; /* only while a probe is interrupted */

	if (ux->mode == UX_MODE_AUTO && uml_len >= ux->host_len) {
		ux->action = UX_ACTION_PASSTHROUGH;
		return passthrough(ux, request, pid, iov, uml_len);
	}
	ux->action = UX_ACTION_OVERLAY;

	if (!ux->scratch_busy) {
		ux->scratch_busy = true;
		buf = ux->scratch;
	} else {
		buf = map_area(ux->host_len);
		if (!buf)
			return -ENOMEM;
		own = true;
	}
	r = overlay(ux, request, pid, iov, uml_len, buf);
	if (own)
		munmap(buf, ux->host_len);
	else
		ux->scratch_busy = false;
	return r;
}

void ux_release(struct ux *ux)
{
	if (ux->scratch)
		munmap(ux->scratch, ux->scratch_len);
	ux->scratch = NULL;
	ux->scratch_len = 0;
}
