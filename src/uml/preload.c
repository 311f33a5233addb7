/*
 * uml-xstate.so: LD_PRELOAD helper for linux.uml (UML 6.1), applied by
 * scripts/uml-run.sh.  It replaces libc's ptrace() so that every
 * PTRACE_GETREGSET / PTRACE_SETREGSET of NT_X86_XSTATE goes through
 * ux_regset() (include/vportfs/uml_xstate.h says why); every other request
 * goes to libc's own ptrace unchanged.
 *
 * Environment (read once, at load):
 *   UML_XSTATE          auto (default), overlay, fxsave or off: enum ux_mode
 *   UML_XSTATE_EMULATE  testing only: behave as a UML whose buffer is this
 *                       many bytes (e.g. 832, the size older builds pass)
 *
 * On the first XSTATE call it writes one line to stderr (UML's console
 * log), "uml-xstate: host XSAVE area N bytes, UML buffer M bytes: ACTION
 * (mode MODE)", so a harness can say what it found and did.
 *
 * The calls come from deep inside UML's kernel, on its small kernel
 * stacks: nothing here allocates on the stack beyond a line of text, and
 * the scratch area is mapped, not malloc'd.
 */
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vportfs/uml_xstate.h"

typedef long (*libc_ptrace_fn)(enum __ptrace_request, ...);

static struct ux ux;
static libc_ptrace_fn libc_ptrace;
static bool reported;

/* Exported: the symbol UML's calls bind to. */
long ptrace(enum __ptrace_request request, ...);

static long raw_ptrace(long request, pid_t pid, void *addr, void *data,
		       void *ctx)
{
	long r = syscall(SYS_ptrace, request, (long)pid, addr, data);

	(void)ctx;
	return r < 0 ? -errno : r;
}

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* Best effort: UML's stderr is its console log. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static void report(void)
{
	if (reported || ux.action == UX_ACTION_NONE)
		return;
	reported = true;
	if (ux.action == UX_ACTION_HIDDEN) {
		say("uml-xstate: NT_X86_XSTATE hidden, UML falls back to "
		    "FXSAVE (mode %s)\n",
		    ux_mode_name(ux.mode));
		return;
	}
	if (ux.mode == UX_MODE_OFF) {
		say("uml-xstate: UML buffer %zu bytes%s: passed through "
		    "unchanged (mode off)\n",
		    ux.uml_len, ux.emulate_len ? " (emulated)" : "");
		return;
	}
	if (!ux.host_len) {
		say("uml-xstate: host XSAVE area at most %zu bytes (CPUID), "
		    "UML buffer %zu bytes%s: %s (mode %s)\n",
		    ux.cpu_len, ux.uml_len, ux.emulate_len ? " (emulated)" : "",
		    ux_action_name(ux.action), ux_mode_name(ux.mode));
		return;
	}
	say("uml-xstate: host XSAVE area %zu bytes, UML buffer %zu bytes%s: "
	    "%s (mode %s)\n",
	    ux.host_len, ux.uml_len, ux.emulate_len ? " (emulated)" : "",
	    ux_action_name(ux.action), ux_mode_name(ux.mode));
}

/* CPUID leaf 0xD sub-leaf 0, ECX: the XSAVE area all the CPU's features
 * would need; 0 without XSAVE. */
static size_t cpu_xsave_max(void)
{
	unsigned a, b, c, d;

	if (__get_cpuid_max(0, NULL) < 0xd)
		return 0;
	__cpuid_count(0xd, 0, a, b, c, d);
	(void)a, (void)b, (void)d;
	return c;
}

__attribute__((constructor)) static void uml_xstate_init(void)
{
	const char *mode = getenv("UML_XSTATE");
	const char *emulate = getenv("UML_XSTATE_EMULATE");

	libc_ptrace = (libc_ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	if (!libc_ptrace) {
		say("uml-xstate: libc has no ptrace: %s\n", dlerror());
		_exit(125);
	}
	ux.ptrace = raw_ptrace;
	ux.mode = UX_MODE_AUTO;
	ux.cpu_len = cpu_xsave_max();
	if (mode && *mode && ux_mode_parse(mode, &ux.mode) < 0) {
		say("uml-xstate: UML_XSTATE=%s: want auto, overlay, fxsave or "
		    "off\n",
		    mode);
		_exit(125);
	}
	if (emulate && *emulate) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(emulate, &end, 10);
		if (errno || *end || v < 512 || v > 1024 * 1024) {
			say("uml-xstate: UML_XSTATE_EMULATE=%s: want a byte "
			    "count from 512 to 1048576\n",
			    emulate);
			_exit(125);
		}
		ux.emulate_len = v;
	}
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	pid_t pid;
	void *addr, *data;
	int r;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);

	if ((request != PTRACE_GETREGSET && request != PTRACE_SETREGSET) ||
	    (long)addr != UX_NT_X86_XSTATE || !data)
		return libc_ptrace(request, pid, addr, data);

	r = ux_regset(&ux, request, pid, data);
	report();
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}
