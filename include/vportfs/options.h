/*
 * Command-line options of the vportfs daemon.  Parsing never exits and
 * never prints: it returns -EINVAL with one line in `err` naming the bad
 * option, and main() prints it and exits 2 before anything is mounted.
 */
#ifndef VPORTFS_OPTIONS_H
#define VPORTFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "vportfs/chr_spec.h"
#include "vportfs/log.h"
#include "vportfs/vser.h"

#define VP_OPTS_MAX_PORTS_SPECS VSER_MAX_PORTS_LIMIT
/* chardev= ids one --port may name. */
#define VP_PORT_MAX_CHARDEVS 8
#define VP_OPTS_MAX_CHARDEVS 256

struct vp_port_spec {
	char name[VSER_NAME_MAX + 1];
	int nr; /* -1: lowest free */
	bool console;
	size_t ring_size; /* console ring bytes; 0: default */
	/* chardev=ID, repeatable: the chardevs serving this port. */
	char chardevs[VP_PORT_MAX_CHARDEVS][CHR_ID_MAX + 1];
	unsigned nchardevs;
};

struct vp_opts {
	/* --socket-path (or --socket), --fd: at most one.  Neither: main
	 * takes a socket-activated one (LISTEN_FDS). */
	const char *socket_path;
	int fd; /* -1 unless --fd: listening or connected (SO_ACCEPTCONN) */
	/* For the socket --socket-path creates (only with it). */
	bool socket_group_set;
	gid_t socket_group;
	bool socket_mode_set;
	mode_t socket_mode; /* default 0600 */
	const char *mountpoint;
	unsigned max_ports;
	struct vp_port_spec *ports;
	unsigned nports;
	/* --chardev SPEC, in order: pointers into argv, checked by the
	 * chardev layer (chr_set_add). */
	const char **chardevs;
	unsigned nchardevs;
	enum vp_log_level log_level;
	bool syslog;
	bool allow_other;
	bool default_permissions;
	bool session;
	bool exclusive;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	bool help;
	bool version;
	bool print_capabilities;
	/* Owned: the --config file's text, split in place; string options
	 * from it point here. */
	char *config_text;
};

/*
 * 0, or -EINVAL with one line in err.  Fills defaults first, then applies
 * the --config FILE's lines (errors say FILE:LINE), then the rest of the
 * command line, so that it overrides the file (repeatable options add).
 * --print-capabilities anywhere in argv wins over everything else, even
 * bad options (QEMU's backend conventions).  On success with
 * opts->help/version/print_capabilities set, other fields may be
 * incomplete.  Strings in opts point into argv or opts->config_text:
 * argv must outlive opts; vp_opts_free() releases the rest (also after a
 * failure).
 */
int vp_opts_parse(struct vp_opts *opts, int argc, char **argv, char *err,
		  size_t errlen);
void vp_opts_free(struct vp_opts *opts);
void vp_opts_usage(FILE *out);

/* Parse one --port SPEC (exposed for tests). */
int vp_opts_parse_port(const char *spec, struct vp_port_spec *out, char *err,
		       size_t errlen);

#endif
