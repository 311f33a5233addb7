/*
 * The user.vport.* attributes: the device's state on the mount's root, a
 * port's on its file (see src/fs/pfs_int.h).
 *
 * The design choice that matters: every value is computed when asked,
 * from the hub, so `getfattr` never shows a stale count; all are
 * read-only but a console's winsize, which the guest is told at once.
 * Other providers (chardevs) add attributes of a port through the hub;
 * they appear here under the same prefix, without this file knowing
 * them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfs_int.h"

/* The largest value the kernel takes (XATTR_SIZE_MAX). */
#define XATTR_VALUE_MAX 65536

/* The value of attribute `name` of inode `ino` into buf; its length, or
 * -ENODATA. */
static int xattr_get(struct pfs *fs, fuse_ino_t ino, const char *name,
		     char *buf, size_t len)
{
	const char *key;
	struct hub_port *hp;
	struct hub_port_info pi;
	int n = -ENODATA;

	if (strncmp(name, PFS_XATTR_PREFIX, strlen(PFS_XATTR_PREFIX)) != 0)
		return -ENODATA;
	key = name + strlen(PFS_XATTR_PREFIX);
	if (ino == PFS_ROOT_INO) {
		struct hub_device_info di;

		hub_device_info(fs->hub, &di);
		if (!strcmp(key, "frontend"))
			n = snprintf(buf, len, "%d", di.frontend);
		else if (!strcmp(key, "driver_ready"))
			n = snprintf(buf, len, "%d", di.driver_ready);
		else if (!strcmp(key, "max_ports"))
			n = snprintf(buf, len, "%u", di.max_ports);
		else if (!strcmp(key, "features"))
			n = snprintf(buf, len, "0x%" PRIx64, di.features);
		else if (!strcmp(key, "orphan_bytes"))
			n = snprintf(buf, len, "%" PRIu64, di.orphan_bytes);
		return n;
	}
	hp = pfs_port_of_ino(fs, ino);
	if (!hp || hub_port_info(hp, &pi))
		return -ENODATA;
	if (!strcmp(key, "nr"))
		n = snprintf(buf, len, "%u", hub_port_nr(hp));
	else if (!strcmp(key, "name"))
		n = snprintf(buf, len, "%s", pi.name);
	else if (!strcmp(key, "console"))
		n = snprintf(buf, len, "%d", pi.console);
	else if (!strcmp(key, "guest_connected"))
		n = snprintf(buf, len, "%d", pi.guest_connected);
	else if (!strcmp(key, "host_connected"))
		n = snprintf(buf, len, "%d", pi.host_connected);
	else if (!strcmp(key, "rx_bytes"))
		n = snprintf(buf, len, "%" PRIu64, pi.rx_bytes);
	else if (!strcmp(key, "tx_bytes"))
		n = snprintf(buf, len, "%" PRIu64, pi.tx_bytes);
	else if (!strcmp(key, "dropped_bytes"))
		n = snprintf(buf, len, "%" PRIu64, pi.dropped_bytes);
	else if (!strcmp(key, "winsize") && pi.console)
		n = snprintf(buf, len, "%ux%u", pi.cols, pi.rows);
	else
		n = (int)hub_port_attr_get(hp, key, buf, len);
	return n;
}

/* Does the attribute exist (whatever its size)? */
static bool xattr_exists(struct pfs *fs, fuse_ino_t ino, const char *name)
{
	char probe[HUB_NAME_MAX + 64];
	int n = xattr_get(fs, ino, name, probe, sizeof(probe));

	return n >= 0 || n == -ERANGE;
}

#define X PFS_XATTR_PREFIX
static const char root_xattrs[] = X "frontend\0" X "driver_ready\0" X
	"max_ports\0" X "features\0" X "orphan_bytes\0";
static const char port_xattrs[] = X "nr\0" X "name\0" X "console\0" X
	"guest_connected\0" X "host_connected\0" X "rx_bytes\0" X
	"tx_bytes\0" X "dropped_bytes\0";
static const char console_xattrs[] = X "winsize\0";
#undef X

void pfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     size_t size)
{
	char *buf = malloc(XATTR_VALUE_MAX);
	int n = buf ? xattr_get(req_fs(req), ino, name, buf, XATTR_VALUE_MAX)
		    : -ENOMEM;

	/* Never ENOSYS: the kernel would turn xattrs off mount-wide. */
	if (n < 0)
		fuse_reply_err(req, -n);
	else if (n > XATTR_VALUE_MAX)
		fuse_reply_err(req, E2BIG);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Append the hub's extra attribute names of hp to buf (at most len
 * bytes), each with our prefix; the bytes needed. */
static size_t list_hub_attrs(struct hub_port *hp, char *buf, size_t len)
{
	size_t klen = hub_port_attr_list(hp, NULL, 0), used = 0;
	char *keys = klen ? malloc(klen) : NULL;

	if (!keys || hub_port_attr_list(hp, keys, klen) != klen) {
		free(keys);
		return 0;
	}
	for (size_t k = 0; k < klen; k += strlen(keys + k) + 1) {
		int n = snprintf(used < len ? buf + used : NULL,
				 used < len ? len - used : 0, "%s%s",
				 PFS_XATTR_PREFIX, keys + k);

		used += (size_t)n + 1; /* with the NUL */
	}
	free(keys);
	return used;
}

void pfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp = pfs_port_of_ino(fs, ino);
	size_t n = 0, extra = 0, cap;
	struct hub_port_info pi;
	char *buf;

	if (hp && hub_port_info(hp, &pi) == 0)
		extra = list_hub_attrs(hp, NULL, 0);
	cap = sizeof(root_xattrs) + sizeof(port_xattrs) +
	      sizeof(console_xattrs) + extra;
	buf = malloc(cap);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == PFS_ROOT_INO) {
		memcpy(buf, root_xattrs, sizeof(root_xattrs) - 1);
		n = sizeof(root_xattrs) - 1;
	} else if (hp && hub_port_info(hp, &pi) == 0) {
		memcpy(buf, port_xattrs, sizeof(port_xattrs) - 1);
		n = sizeof(port_xattrs) - 1;
		if (pi.console) {
			memcpy(buf + n, console_xattrs,
			       sizeof(console_xattrs) - 1);
			n += sizeof(console_xattrs) - 1;
		}
		if (list_hub_attrs(hp, buf + n, extra) == extra)
			n += extra;
	}
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

/* "COLSxROWS", each 1..65535. */
static int parse_winsize(const char *value, size_t size, uint16_t *cols,
			 uint16_t *rows)
{
	char s[32], *x, *end;
	unsigned long c, r;

	if (size == 0 || size >= sizeof(s))
		return -EINVAL;
	memcpy(s, value, size);
	s[size] = '\0';
	if (s[size - 1] == '\n')
		s[size - 1] = '\0';
	x = strchr(s, 'x');
	if (!x || x == s || s[0] == '-' || x[1] == '-')
		return -EINVAL;
	*x = '\0';
	c = strtoul(s, &end, 10);
	if (*end || c == 0 || c > UINT16_MAX)
		return -EINVAL;
	r = strtoul(x + 1, &end, 10);
	if (*end || r == 0 || r > UINT16_MAX || !x[1])
		return -EINVAL;
	*cols = (uint16_t)c;
	*rows = (uint16_t)r;
	return 0;
}

void pfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags)
{
	struct pfs *fs = req_fs(req);
	struct hub_port *hp = pfs_port_of_ino(fs, ino);
	struct hub_port_info pi;
	uint16_t cols, rows;

	(void)flags;
	if (hp && hub_port_info(hp, &pi) == 0 && pi.console &&
	    !strcmp(name, PFS_XATTR_PREFIX "winsize")) {
		if (parse_winsize(value, size, &cols, &rows)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		hub_port_resize(hp, cols, rows);
		fuse_reply_err(req, 0);
		return;
	}
	/* Known attributes are read-only; others do not exist. */
	if (xattr_exists(fs, ino, name))
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENOTSUP);
}

void pfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (xattr_exists(req_fs(req), ino, name))
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENODATA);
}
