/*
 * Host-sized XSAVE areas for User-Mode Linux 6.1, the guest of our tests.
 *
 * Why this exists: UML saves and restores each guest process's FPU state
 * with PTRACE_GETREGSET / PTRACE_SETREGSET on NT_X86_XSTATE, always with a
 * buffer of its compile-time size (Debian's 6.1.176 build passes 2696
 * bytes, the standard XSAVE layout up to PKRU; older builds 832).  A current
 * host kernel takes a SETREGSET only if the buffer holds the host's whole user
 * XSAVE area (EFAULT otherwise; linux arch/x86/kernel/fpu/regset.c,
 * xstateregs_set). On hosts whose area is larger than UML's buffer (AMX: 11008
 * bytes, CPUID leaf 0xD sub-leaf 0) UML panics at init with "ptrace set fp regs
 * failed, errno = 14".  Hiding XSTATE from UML (its FXSAVE fallback) boots, but
 * then the upper halves of the vector registers are lost across guest
 * thread switches and glibc's AVX memcpy corrupts memory.
 *
 * The fix here: give the kernel the full area and UML its prefix.  A GET
 * reads the whole area and hands UML the bytes it asked for; a SET reads
 * the current whole area, lays UML's bytes over its start and writes it
 * back whole, so the components UML does not know about keep their values.
 *
 * When it can go: once the guest kernel sizes its buffer from the host at
 * boot (upstream UML does since after 6.1) and Debian ships such a UML for
 * the release we test on.  On hosts whose area fits UML's buffer every call
 * already passes straight through.
 *
 * The core below knows no process-wide state: the preload (src/uml/preload.c)
 * owns one struct ux and a ptrace that reaches the kernel.
 */
#ifndef VPORTFS_UML_XSTATE_H
#define VPORTFS_UML_XSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* NT_X86_XSTATE from <elf.h>, the regset UML uses for the XSAVE area. */
#define UX_NT_X86_XSTATE 0x202

/* The raw ptrace system call: returns >= 0 or -errno.  Never the libc
 * wrapper's convention (PEEK results in the return value). */
typedef long (*ux_ptrace_fn)(long request, pid_t pid, void *addr, void *data,
			     void *ctx);

enum ux_mode {
	/* Full area only where UML's buffer is smaller than the host's. */
	UX_MODE_AUTO,
	/* Full area on every call, even where UML's buffer would do: runs
	 * the overlay path on any host (harness self-test). */
	UX_MODE_OVERLAY,
	/* Hide NT_X86_XSTATE (ENODEV, as on a host without XSAVE): UML falls
	 * back to FXSAVE.  Known to corrupt guest programs; exists only so
	 * that the guest test can show it catches that. */
	UX_MODE_FXSAVE,
	/* Pass everything through: UML as if no helper were loaded. */
	UX_MODE_OFF,
};

/* What the helper did, for its one report line. */
enum ux_action {
	UX_ACTION_NONE,	       /* no XSTATE call seen yet */
	UX_ACTION_PASSTHROUGH, /* UML's buffer holds the host's area */
	UX_ACTION_OVERLAY,     /* full area read and written for UML */
	UX_ACTION_HIDDEN,      /* UX_MODE_FXSAVE: XSTATE refused */
};

/* The body is public, unlike other modules' (STYLE rule 1): the preload
 * owns one in static storage, and the unit tests fill in a fake kernel. */
struct ux {
	enum ux_mode mode;
	/* Testing only, 0 = off: behave as a UML whose buffer is this many
	 * bytes (at least 512), whatever it really passes. */
	size_t emulate_len;
	/* CPUID leaf 0xD sub-leaf 0 ECX: the largest XSAVE area the CPU's
	 * features can need, bytes; 0 if unknown.  UX_MODE_AUTO passes every
	 * call through, without asking the kernel, when UML's buffer holds
	 * it. */
	size_t cpu_len;
	ux_ptrace_fn ptrace;
	void *ctx;

	/* Learnt on the first XSTATE call. */
	size_t host_len; /* the host's user XSAVE area, bytes; 0 if the
			    kernel was not asked (see cpu_len) */
	size_t uml_len;	 /* UML's buffer as passed (after emulate_len) */
	enum ux_action action;

	/* Scratch for one full area, owned; scratch_len >= host_len. */
	void *scratch;
	size_t scratch_len;
	bool scratch_busy;
};

/* Parse a mode name: "auto", "overlay", "fxsave", "off".  0, or -EINVAL. */
int ux_mode_parse(const char *name, enum ux_mode *mode);
const char *ux_mode_name(enum ux_mode mode);
const char *ux_action_name(enum ux_action action);

/*
 * Serve one PTRACE_GETREGSET / PTRACE_SETREGSET of NT_X86_XSTATE for
 * tracee `pid` with UML's iovec `iov`, the way the kernel would if UML's
 * buffer were host-sized.  Returns 0 or -errno, the kernel's own where one
 * of its calls failed.  On a GET, iov->iov_len is set to the bytes stored,
 * as the kernel does.  -ENOMEM if no scratch area could be mapped.
 *
 * The first call learns the host's size by reading `pid`'s area into a
 * buffer large enough for any current CPU (the kernel shortens iov_len to
 * the area's size); the size is the same for every tracee.
 *
 * Re-entrant: a call made while another is inside (a signal handler) maps
 * a scratch area of its own.
 */
int ux_regset(struct ux *ux, long request, pid_t pid, struct iovec *iov);

/* Release the scratch area.  The struct may be used again afterwards. */
void ux_release(struct ux *ux);

#endif
