/*
 * vportfs: serve a VM's virtio-serial device over vhost-user and mount its
 * ports as files.  main() wires the modules together on one libev loop:
 *
 *   vhost-user socket -> vu -> vser (device, ports) -> hub (host side of
 *   every port) -> pfs (FUSE mount)
 */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vportfs/chr.h"
#include "vportfs/ev_loop.h"
#include "vportfs/hub.h"
#include "vportfs/log.h"
#include "vportfs/options.h"
#include "vportfs/pfs.h"
#include "vportfs/service.h"
#include "vportfs/vser.h"
#include "vportfs/vu.h"

#define EXIT_USAGE 2

/* w->data: a bool, "stop", for the start-up wait (wait=on). */
static void stop_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
	(void)revents;
	vp_info("signal %d: shutting down", w->signum);
	*(bool *)w->data = true;
	ev_break(ev, EVBREAK_ALL);
}

/* SIGHUP: logrotate moved the logs away (it does not stop us: a daemon
 * under systemd has no terminal to lose). */
static void reopen_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
	(void)ev;
	(void)revents;
	vp_info("SIGHUP: reopening log and file chardevs");
	chr_set_reopen(w->data);
}

static void unmounted_cb(void *opaque)
{
	ev_break(opaque, EVBREAK_ALL);
}

/* Add the --port ports; ports[i] is the port of o->ports[i]. */
static int add_ports(struct vser *dev, const struct vp_opts *o,
		     struct vser_port **ports)
{
	/* Fixed numbers first, so "lowest free" cannot take them. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < o->nports; i++) {
			const struct vp_port_spec *p = &o->ports[i];
			struct vser_port_config pc = {
				.nr = p->nr,
				.name = p->name,
				.console = p->console,
				.ring_size = p->ring_size,
			};
			int rc;

			if ((pass == 0) != (p->nr >= 0))
				continue;
			rc = vser_port_add(dev, &pc, &ports[i]);
			if (rc) {
				vp_log_fatal("--port name=%s: %s", p->name,
					     strerror(-rc));
				return rc;
			}
		}
	}
	return 0;
}

/* --chardev specs, and the --port chardev= that bind them to ports: any
 * error is the user's (exit 2). */
static int add_chardevs(struct chr_set *chrs, const struct vp_opts *o,
			struct vser_port **ports)
{
	char err[512], label[VSER_NAME_MAX + 1];

	for (unsigned i = 0; i < o->nchardevs; i++) {
		if (chr_set_add(chrs, o->chardevs[i], err, sizeof(err))) {
			vp_log_fatal("--chardev %s: %s", o->chardevs[i], err);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < o->nports; i++) {
		const struct vp_port_spec *p = &o->ports[i];

		hub_label(vser_port_nr(ports[i]), vser_port_name(ports[i]),
			  label, sizeof(label));
		for (unsigned k = 0; k < p->nchardevs; k++) {
			if (chr_set_bind(chrs, p->chardevs[k], label, err,
					 sizeof(err))) {
				vp_log_fatal("--port name=%s: %s", p->name,
					     err);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Two ports must not become the same file ("port2" named so, and port 2
 * whose name is unusable as a file name). */
static int check_file_names(struct vser *dev)
{
	char a[VSER_NAME_MAX + 1], b[VSER_NAME_MAX + 1];
	struct vser_port *p, *q;

	for (p = vser_port_next(dev, 0); p;
	     p = vser_port_next(dev, vser_port_nr(p) + 1)) {
		hub_label(vser_port_nr(p), vser_port_name(p), a, sizeof(a));
		for (q = vser_port_next(dev, vser_port_nr(p) + 1); q;
		     q = vser_port_next(dev, vser_port_nr(q) + 1)) {
			hub_label(vser_port_nr(q), vser_port_name(q), b,
				  sizeof(b));
			if (strcmp(a, b) == 0) {
				vp_log_fatal("--port: ports %u and %u would "
					     "both be the file '%s'",
					     vser_port_nr(p), vser_port_nr(q),
					     a);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A VM given to us on a connected socket (--fd, QEMU's backend
 * conventions) is all we serve: when it goes, we go. */
struct one_vm {
	struct hub *hub;
	struct ev_loop *ev;
};

static void one_vm_changed(void *opaque)
{
	struct one_vm *vm = opaque;
	struct hub_device_info di;

	hub_device_info(vm->hub, &di);
	if (di.frontend)
		return;
	vp_info("the VM on the connected socket went away: nobody else can "
		"connect, stopping");
	ev_break(vm->ev, EVBREAK_ALL);
}

static const struct hub_observer_ops one_vm_ops = {
	.changed = one_vm_changed,
};

/* The inherited socket (--fd, socket activation), checked before the
 * daemon opens a descriptor of its own (which could take its number):
 * 1 listening, 0 connected, or -1 after saying what is wrong. */
static int check_inherited_socket(int fd, bool activated)
{
	int rc = vp_service_fd_listening(fd);

	if (rc >= 0)
		return rc;
	vp_log_fatal("%s%d: %s",
		     activated ? "the activated socket, fd " : "--fd ", fd,
		     rc == -EBADF	   ? "not an open descriptor"
		     : rc == -ENOTSOCK	   ? "not a stream socket"
		     : rc == -EAFNOSUPPORT ? "not a unix socket (vhost-user "
					     "passes descriptors)"
					   : strerror(-rc));
	return -1;
}

/* Host bytes a write() accepted that no guest took: they die with us
 * (docs/semantics.md).  Say so, per port. */
static void report_undelivered(struct vser *dev)
{
	for (struct vser_port *p = vser_port_next(dev, 0); p;
	     p = vser_port_next(dev, vser_port_nr(p) + 1)) {
		size_t n = vser_port_write_pending(p);

		if (n)
			vp_warn("port %u (%s): %zu bytes written on the host "
				"never reached the guest; lost as vportfs "
				"stops",
				vser_port_nr(p), vser_port_name(p), n);
	}
}

int main(int argc, char **argv)
{
	struct vser_config dcfg = {0};
	struct hub_config hcfg = {0};
	struct pfs_config fcfg = {0};
	struct ev_loop *ev;
	ev_signal sigint, sigterm, sighup;
	struct vp_loop *loop = NULL;
	struct vser *dev = NULL;
	struct hub *hub = NULL;
	struct chr_set *chrs = NULL;
	struct vser_port **ports = NULL;
	struct pfs *fs = NULL;
	struct vp_service_status *st = NULL;
	struct one_vm one_vm = {0};
	const char *where = "--fd";
	bool stop = false, connected = false, activated = false;
	struct vp_opts o;
	char err[512];
	int rc, status = EXIT_FAILURE;

	if (vp_opts_parse(&o, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "vportfs: %s\n", err);
		vp_opts_free(&o);
		return EXIT_USAGE;
	}
	if (o.help) {
		vp_opts_usage(stdout);
		goto out_opts;
	}
	if (o.version) {
		printf("vportfs %s\n", VPORTFS_VERSION);
		goto out_opts;
	}
	if (o.print_capabilities) {
		/* QEMU's docs/interop/vhost-user.json: a console backend
		 * has no features to list. */
		printf("{\"type\": \"console\"}\n");
		goto out_opts;
	}
	/* From here on every failure is logged, to syslog too with --syslog
	 * (openlog opens nothing yet). */
	vp_log_set_level(o.log_level);
	vp_log_use_syslog(o.syslog);
	/* Before we open anything (libev's epoll fd is the first). */
	for (unsigned i = 0; i < o.nchardevs; i++) {
		if (chr_check_inherited(o.chardevs[i], err, sizeof(err))) {
			vp_log_fatal("%s", err);
			goto out_opts;
		}
	}
	/* Neither --socket-path nor --fd: systemd's socket activation. */
	if (!o.socket_path && o.fd < 0) {
		rc = vp_service_activated_fd(&where, err, sizeof(err));
		if (rc == -ENOENT) {
			vp_log_fatal("give --socket-path or --fd, or start "
				     "vportfs by socket activation");
			status = EXIT_USAGE;
			goto out_opts;
		}
		if (rc < 0) {
			vp_log_fatal("%s", err);
			status = EXIT_USAGE;
			goto out_opts;
		}
		o.fd = rc;
		activated = true;
	} else if (getenv("LISTEN_FDS")) {
		vp_warn("not using the socket systemd passed (LISTEN_FDS): "
			"--socket-path or --fd given");
	}
	if (o.fd >= 0) {
		rc = check_inherited_socket(o.fd, activated);
		if (rc < 0) {
			status = EXIT_USAGE;
			goto out_opts;
		}
		connected = rc == 0;
	}
	ev = EV_DEFAULT;
	if (!ev) {
		vp_log_fatal("cannot create the event loop (libev)");
		goto out_opts;
	}
	/* A guest or reader going away mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	loop = vp_ev_loop_new(ev);
	if (!loop) {
		vp_log_fatal("cannot create the event loop: out of memory");
		goto out_opts;
	}
	dcfg.max_ports = o.max_ports;
	dcfg.out_per_session = o.session;
	dev = vser_new(loop, &dcfg);
	if (!dev) {
		vp_log_fatal("cannot create the device: out of memory");
		goto out_loop;
	}
	ports = calloc(o.nports ? o.nports : 1, sizeof(*ports));
	if (!ports) {
		vp_log_fatal("cannot add the ports: out of memory");
		goto out_dev;
	}
	if (add_ports(dev, &o, ports) || check_file_names(dev)) {
		status = EXIT_USAGE;
		goto out_dev;
	}
	hcfg.session = o.session;
	hcfg.exclusive = o.exclusive;
	hub = hub_new(loop, dev, &hcfg);
	chrs = hub ? chr_set_new(loop, hub) : NULL;
	if (!chrs) {
		vp_log_fatal("cannot create the port hub: out of memory");
		goto out_hub;
	}
	if (add_chardevs(chrs, &o, ports)) {
		status = EXIT_USAGE;
		goto out_hub;
	}
	/* Signals from here on: also while a chardev waits for its first
	 * client, a SIGTERM leaves nothing behind. */
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_init(&sighup, reopen_cb, SIGHUP);
	sigint.data = sigterm.data = &stop;
	sighup.data = chrs;
	ev_signal_start(ev, &sigint);
	ev_signal_start(ev, &sigterm);
	ev_signal_start(ev, &sighup);
	if (chr_set_start(chrs, err, sizeof(err))) {
		vp_log_fatal("%s", err);
		goto out_signals;
	}
	/* Before the VMM can connect: a socket server with wait=on holds
	 * the VM back until its client is there, as in QEMU. */
	while (chr_set_waiting(chrs) && !stop)
		ev_run(ev, EVRUN_ONCE);
	if (stop) {
		status = EXIT_SUCCESS;
		goto out_signals;
	}
	if (o.socket_path) {
		where = o.socket_path;
		rc = vu_listen_path(vser_vu(dev), o.socket_path, o.socket_mode,
				    o.socket_group_set ? o.socket_group
						       : (gid_t)-1);
	} else if (connected) {
		rc = vu_attach_fd(vser_vu(dev), o.fd);
	} else {
		rc = vu_listen_fd(vser_vu(dev), o.fd);
	}
	if (rc) {
		vp_log_fatal("cannot %s %s: %s",
			     o.socket_path ? "listen on" : "serve the VM on",
			     where,
			     o.socket_path && rc == -EEXIST
				     ? "something that is not a socket is there"
				     : strerror(-rc));
		goto out_signals;
	}
	one_vm = (struct one_vm){.hub = hub, .ev = ev};
	if (connected && hub_observer_add(hub, &one_vm_ops, &one_vm)) {
		vp_log_fatal("cannot watch the connected VM: no observer left");
		goto out_signals;
	}
	st = vp_service_status_new(hub, where);

	fcfg.mountpoint = o.mountpoint;
	fcfg.allow_other = o.allow_other;
	fcfg.default_permissions = o.default_permissions;
	fcfg.uid = o.uid;
	fcfg.gid = o.gid;
	fcfg.mode = o.mode;
	fcfg.on_unmounted = unmounted_cb;
	fcfg.opaque = ev;
	fs = pfs_new(loop, hub, &fcfg);
	if (!fs)
		goto out_signals;

	vp_info("serving %s, mounted on %s", where, o.mountpoint);
	vp_service_ready(st);
	ev_run(ev, 0);
	vp_service_stopping();
	report_undelivered(dev);
	status = EXIT_SUCCESS;

	pfs_free(fs);
out_signals:
	vp_service_status_free(st);
	if (connected)
		hub_observer_remove(hub, &one_vm_ops, &one_vm);
	ev_signal_stop(ev, &sigint);
	ev_signal_stop(ev, &sigterm);
	ev_signal_stop(ev, &sighup);
out_hub:
	chr_set_free(chrs);
	hub_free(hub);
out_dev:
	vser_free(dev);
out_loop:
	free(ports);
	vp_ev_loop_free(loop);
out_opts:
	if (o.help || o.version || o.print_capabilities)
		status = EXIT_SUCCESS;
	vp_opts_free(&o);
	return status;
}
