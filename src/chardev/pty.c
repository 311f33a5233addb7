/*
 * The pty backend: a pseudo-terminal whose other side (/dev/pts/N) a user
 * opens with screen, minicom or cat; link=PATH makes a symlink to it that
 * stays the same from run to run.  The name is logged, as QEMU does
 * ("char device redirected to /dev/pts/N"), and shown as the port's
 * attribute user.vport.chardev.ID.pty.
 *
 * The design choice that matters: we keep the terminal side open
 * ourselves, in raw mode.  Then the pty is always there, like a serial
 * line: nothing is lost while no program has it open (output waits in the
 * terminal's buffer, then in the port's ring), no hang-up has to be
 * polled for (QEMU polls once a second), and a program that opens it gets
 * the bytes with no echo or line editing in the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "chr_int.h"
#include "vportfs/log.h"

struct pty {
	char *link;
	char name[64];
	int master, slave;
	bool linked;
};

static int pty_parse(struct chr *chr, struct chr_spec *spec, char *err,
		     size_t errlen)
{
	struct pty *p = chr_priv(chr);
	const char *link = chr_spec_str(spec, "link");

	p->master = p->slave = -1;
	if (link && !*link)
		return chr_errf(chr, EINVAL, err, errlen, "link= is empty");
	if (link && !(p->link = strdup(link)))
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

/* Make link point at the pty, replacing an old symlink (a previous run's)
 * but nothing else. */
static int make_link(struct chr *chr, struct pty *p, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(p->link, &st) == 0) {
		if (!S_ISLNK(st.st_mode))
			return chr_errf(chr, EEXIST, err, errlen,
					"link=%s exists and is not a symlink",
					p->link);
		unlink(p->link);
	}
	if (symlink(p->name, p->link))
		return chr_errf(chr, errno, err, errlen, "link=%s: %s", p->link,
				strerror(errno));
	p->linked = true;
	return 0;
}

static int pty_start(struct chr *chr, char *err, size_t errlen)
{
	struct pty *p = chr_priv(chr);
	struct termios tio;
	int rc;

	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->master < 0 || grantpt(p->master) || unlockpt(p->master) ||
	    ptsname_r(p->master, p->name, sizeof(p->name)))
		return chr_errf(chr, errno, err, errlen,
				"cannot make a pty: %s", strerror(errno));
	p->slave = open(p->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->slave < 0)
		return chr_errf(chr, errno, err, errlen, "%s: %s", p->name,
				strerror(errno));
	if (tcgetattr(p->slave, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(p->slave, TCSANOW, &tio);
	}
	if (p->link) {
		rc = make_link(chr, p, err, errlen);
		if (rc)
			return rc;
	}
	vp_info("chardev %s: char device redirected to %s", chr_id(chr),
		p->name);
	chr_peer_up(chr, p->master, p->master, 0);
	return 0;
}

static void pty_stop(struct chr *chr)
{
	struct pty *p = chr_priv(chr);

	if (p->linked)
		unlink(p->link);
	if (p->slave >= 0)
		close(p->slave);
	if (p->master >= 0)
		close(p->master);
	p->master = p->slave = -1;
	free(p->link);
	p->link = NULL;
}

static size_t pty_attr_list(struct chr *chr, char *buf, size_t len)
{
	(void)chr;
	if (len >= sizeof("pty"))
		memcpy(buf, "pty", sizeof("pty"));
	return sizeof("pty");
}

static ssize_t pty_attr_get(struct chr *chr, const char *key, char *buf,
			    size_t len)
{
	struct pty *p = chr_priv(chr);

	if (strcmp(key, "pty"))
		return -ENODATA;
	return chr_attr_printf(buf, len, "%s", p->name);
}

static const char *const pty_options[] = {"link", NULL};

const struct chr_backend chr_pty_backend = {
	.name = "pty",
	.options = pty_options,
	.priv_size = sizeof(struct pty),
	.parse = pty_parse,
	.start = pty_start,
	.stop = pty_stop,
	.attr_list = pty_attr_list,
	.attr_get = pty_attr_get,
};
