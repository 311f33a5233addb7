/*
 * The socket backend: a unix (path=) or TCP (host=, port=) stream socket,
 * as a server (server=on: listen, one client at a time) or a client
 * (server=off, the default: connect, and with reconnect-ms=N try again
 * every N ms while the server is away).  telnet=on speaks just enough
 * telnet for an interactive console (character mode, no local echo).
 *
 * The design choice that matters: a server accepts every client at once
 * but serves them one at a time.  While one is connected the next ones
 * wait their turn in the accept order: they get nothing and feed nothing
 * until the one before them leaves (a second `nc` does not steal a
 * console, nor see half of it).  A client that connects while nobody
 * else is there is the peer at once, so the guest sees the port opened
 * the moment somebody is on the other end, and closed when nobody is.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chr_int.h"
#include "vportfs/log.h"

/* Clients waiting their turn; more are turned away. */
#define SOCKET_MAX_WAITING 16
#define RECONNECT_MS_MAX   (24u * 3600 * 1000)
/* telnet=on: guest output is escaped (0xff doubled) through this. */
#define TELNET_TX 32768

enum telnet_state { TN_DATA, TN_IAC, TN_OPT, TN_SB, TN_SB_IAC, TN_CR };

struct sock {
	/* Options. */
	char *path; /* unix */
	char *host; /* tcp */
	char *port;
	bool server, wait, telnet, nodelay;
	unsigned reconnect_ms;
	/* State. */
	int listen_fd;
	struct vp_watch *listen_w;
	int waiting[SOCKET_MAX_WAITING]; /* accepted, in turn */
	unsigned nwaiting;
	struct addrinfo *ai; /* tcp: resolved once, at start (a lookup on
				the loop could block it for seconds) */
	int connecting_fd; /* client: a connect in progress */
	struct vp_watch *connect_w;
	struct vp_timer *retry;
	bool bound; /* unix server: our socket file to remove */
	bool first_pending; /* wait=on: no client yet */
	/* telnet=on */
	enum telnet_state tn;
	char *tx;
	size_t tx_off, tx_len;
};

static const char *sock_where(const struct sock *s, char *buf, size_t len)
{
	if (s->path)
		snprintf(buf, len, "unix:%s", s->path);
	else
		snprintf(buf, len, "tcp:%s:%s", s->host ? s->host : "*",
			 s->port);
	return buf;
}

/* ---- options ------------------------------------------------------------- */

static int dup_opt(struct chr *chr, struct chr_spec *spec, const char *key,
		   char **out, char *err, size_t errlen)
{
	const char *v = chr_spec_str(spec, key);

	if (!v)
		return 0;
	if (!*v)
		return chr_errf(chr, EINVAL, err, errlen, "%s= is empty", key);
	*out = strdup(v);
	return *out ? 0 : chr_errf(chr, ENOMEM, err, errlen, "out of memory");
}

static int socket_parse(struct chr *chr, struct chr_spec *spec, char *err,
			size_t errlen)
{
	struct sock *s = chr_priv(chr);
	bool wait_given = chr_spec_str(spec, "wait") != NULL;
	bool reconnect_given = chr_spec_str(spec, "reconnect-ms") != NULL;
	uint64_t ms;
	int rc;

	s->listen_fd = s->connecting_fd = -1;
	rc = dup_opt(chr, spec, "path", &s->path, err, errlen);
	if (!rc)
		rc = dup_opt(chr, spec, "host", &s->host, err, errlen);
	if (!rc)
		rc = dup_opt(chr, spec, "port", &s->port, err, errlen);
	if (!rc)
		rc = chr_spec_bool(spec, "server", false, &s->server, err,
				   errlen);
	if (!rc)
		rc = chr_spec_bool(spec, "wait", true, &s->wait, err, errlen);
	if (!rc)
		rc = chr_spec_bool(spec, "telnet", false, &s->telnet, err,
				   errlen);
	if (!rc)
		rc = chr_spec_bool(spec, "nodelay", false, &s->nodelay, err,
				   errlen);
	if (!rc)
		rc = chr_spec_u64(spec, "reconnect-ms", 0, RECONNECT_MS_MAX,
				  &ms, err, errlen);
	if (rc)
		return rc;
	s->reconnect_ms = (unsigned)ms;
	if (s->path && (s->host || s->port))
		return chr_errf(chr, EINVAL, err, errlen,
				"path= (unix) and host=/port= (tcp) cannot "
				"both be given");
	if (!s->path && !s->port)
		return chr_errf(chr, EINVAL, err, errlen,
				"give path= (unix) or port= (tcp)");
	if (s->port && strspn(s->port, "0123456789") == strlen(s->port) &&
	    (strlen(s->port) > 5 || atoi(s->port) > 65535))
		return chr_errf(chr, EINVAL, err, errlen,
				"port=%s is not a TCP port (0 to 65535)",
				s->port);
	if (s->path &&
	    strlen(s->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return chr_errf(chr, EINVAL, err, errlen,
				"path= is longer than a unix socket path can "
				"be (%zu bytes)",
				sizeof(((struct sockaddr_un *)0)->sun_path) -
					1);
	if (s->server && reconnect_given)
		return chr_errf(chr, EINVAL, err, errlen,
				"reconnect-ms= is for clients (server=off)");
	if (!s->server && wait_given)
		return chr_errf(chr, EINVAL, err, errlen,
				"wait= is for servers (server=on)");
	if (s->telnet && !(s->tx = malloc(TELNET_TX)))
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

/* ---- telnet=on ----------------------------------------------------------- */

#define IAC 255
#define SB  250
#define SE  240

/* Character mode, no local echo, 8-bit clean: what an interactive
 * console needs from a telnet client (RFC 857, 858, 856). */
static const unsigned char telnet_hello[] = {
	IAC, 251, 1, /* WILL ECHO */
	IAC, 251, 3, /* WILL SUPPRESS-GO-AHEAD */
	IAC, 251, 0, /* WILL BINARY */
	IAC, 253, 0, /* DO BINARY */
};

/* Drop telnet commands from what the client sent; IAC IAC is a 0xff byte,
 * CR NUL a CR (RFC 854).  Kept across reads. */
static size_t telnet_filter(struct chr *chr, char *buf, size_t len)
{
	struct sock *s = chr_priv(chr);
	size_t out = 0;

	if (!s->telnet)
		return len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		switch (s->tn) {
		case TN_CR:
			s->tn = TN_DATA;
			if (c == 0)
				break;
			/* fall through */
		case TN_DATA:
			if (c == IAC) {
				s->tn = TN_IAC;
			} else {
				buf[out++] = (char)c;
				if (c == '\r')
					s->tn = TN_CR;
			}
			break;
		case TN_IAC:
			if (c == IAC) {
				buf[out++] = (char)c;
				s->tn = TN_DATA;
			} else if (c == SB) {
				s->tn = TN_SB;
			} else if (c >= 251) { /* WILL WONT DO DONT */
				s->tn = TN_OPT;
			} else {
				s->tn = TN_DATA;
			}
			break;
		case TN_OPT:
			s->tn = TN_DATA;
			break;
		case TN_SB:
			if (c == IAC)
				s->tn = TN_SB_IAC;
			break;
		case TN_SB_IAC:
			s->tn = c == SE ? TN_DATA : TN_SB;
			break;
		}
	}
	return out;
}

static ssize_t send_tx(struct sock *s, int fd)
{
	while (s->tx_len) {
		ssize_t w =
			send(fd, s->tx + s->tx_off, s->tx_len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s->tx_off += (size_t)w;
		s->tx_len -= (size_t)w;
	}
	return 0;
}

/*
 * Guest output: sent as is, but with telnet=on every 0xff doubled, through
 * a small buffer of our own (a byte the client must see twice cannot be
 * sent from the port's ring).  MSG_NOSIGNAL: a client gone is EPIPE, not
 * a signal.
 */
static ssize_t socket_sink(struct chr *chr, const struct iovec *iov, int niov)
{
	struct sock *s = chr_priv(chr);
	int peer_fd = chr_peer_out_fd(chr);
	struct msghdr mh = {.msg_iov = (struct iovec *)iov,
			    .msg_iovlen = (size_t)niov};
	size_t took = 0;
	ssize_t rc;

	if (!s->telnet) {
		if (niov == 0)
			return 0;
		rc = sendmsg(peer_fd, &mh, MSG_NOSIGNAL);
		return rc < 0 ? -errno : rc;
	}
	rc = send_tx(s, peer_fd);
	if (rc)
		return rc;
	s->tx_off = 0;
	for (int i = 0; i < niov; i++) {
		const unsigned char *p = iov[i].iov_base;

		for (size_t k = 0; k < iov[i].iov_len; k++) {
			if (s->tx_len + 2 > TELNET_TX)
				goto full;
			if (p[k] == IAC)
				s->tx[s->tx_len++] = (char)IAC;
			s->tx[s->tx_len++] = (char)p[k];
			took++;
		}
	}
full:
	/* What is in tx is taken: it goes out now or at the next call. */
	rc = send_tx(s, peer_fd);
	if (rc && rc != -EAGAIN)
		return rc;
	return (ssize_t)took;
}

/* ---- connections --------------------------------------------------------- */

static void set_nodelay(const struct sock *s, int fd)
{
	int one = 1;

	if (!s->path && s->nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* fd is the peer now. */
static void serve(struct chr *chr, int fd)
{
	struct sock *s = chr_priv(chr);

	set_nodelay(s, fd);
	s->first_pending = false;
	s->tn = TN_DATA;
	s->tx_off = s->tx_len = 0;
	/* A fresh socket has room for these few bytes. */
	if (s->telnet && send(fd, telnet_hello, sizeof(telnet_hello),
			      MSG_NOSIGNAL) != (ssize_t)sizeof(telnet_hello))
		vp_warn_rl("chardev %s: telnet negotiation not sent",
			   chr_id(chr));
	vp_debug("chardev %s: connected", chr_id(chr));
	chr_peer_up(chr, fd, fd, CHR_PEER_OWNS_FDS);
}

static void accept_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct chr *chr = opaque;
	struct sock *s = chr_priv(chr);

	(void)w;
	(void)revents;
	/* Bounded: a connect flood cannot hold the loop. */
	for (int budget = 16; budget; budget--) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				vp_warn_rl("chardev %s: accept: %s",
					   chr_id(chr), strerror(errno));
			return;
		}
		if (!chr_peer_is_up(chr)) {
			serve(chr, fd);
		} else if (s->nwaiting < SOCKET_MAX_WAITING) {
			s->waiting[s->nwaiting++] = fd;
			vp_debug("chardev %s: a client waits its turn",
				 chr_id(chr));
		} else {
			vp_warn_rl("chardev %s: %d clients wait already; "
				   "turned one away",
				   chr_id(chr), SOCKET_MAX_WAITING);
			close(fd);
		}
	}
}

static void try_connect(struct chr *chr);

static void retry_cb(struct vp_timer *t, void *opaque)
{
	(void)t;
	try_connect(opaque);
}

static void schedule_retry(struct chr *chr)
{
	struct sock *s = chr_priv(chr);

	if (!s->reconnect_ms)
		return;
	if (!s->retry)
		s->retry = vp_timer_new(chr_loop(chr), retry_cb, chr);
	if (s->retry)
		vp_timer_start(chr_loop(chr), s->retry, s->reconnect_ms);
}

static void connect_done(struct chr *chr, int fd, int err)
{
	struct sock *s = chr_priv(chr);
	char where[128];

	vp_watch_free(chr_loop(chr), s->connect_w);
	s->connect_w = NULL;
	s->connecting_fd = -1;
	if (!err) {
		serve(chr, fd);
		return;
	}
	close(fd);
	vp_debug("chardev %s: connecting to %s: %s", chr_id(chr),
		 sock_where(s, where, sizeof(where)), strerror(err));
	schedule_retry(chr);
}

static void connect_cb(struct vp_watch *w, int revents, void *opaque)
{
	struct chr *chr = opaque;
	struct sock *s = chr_priv(chr);
	int err = 0;
	socklen_t len = sizeof(err);

	(void)w;
	(void)revents;
	if (getsockopt(s->connecting_fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	connect_done(chr, s->connecting_fd, err);
}

/* tcp: look host and port up, once; 0, or -EADDRNOTAVAIL with the
 * resolver's reason in err. */
static int resolve(struct chr *chr, struct sock *s, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = s->server ? AI_PASSIVE : 0};
	char where[128];
	int rc;

	if (s->path || s->ai)
		return 0;
	rc = getaddrinfo(s->host, s->port, &hints, &s->ai);
	if (!rc)
		return 0;
	s->ai = NULL;
	return chr_errf(chr, EADDRNOTAVAIL, err, errlen,
			"cannot resolve %s: %s",
			sock_where(s, where, sizeof(where)),
			rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
}

/* Call fn with a new socket and the address (tcp: each resolved one until
 * one works); fn returns 0 to keep that socket, -errno to try the next.
 * The socket kept, or -errno. */
static int with_address(struct sock *s, bool nonblock,
			int (*fn)(int fd, const struct sockaddr *sa,
				  socklen_t len))
{
	int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
	struct addrinfo *ai;
	int fd, rc;

	if (s->path) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
		fd = socket(AF_UNIX, type, 0);
		if (fd < 0)
			return -errno;
		rc = fn(fd, (struct sockaddr *)&sa, sizeof(sa));
		if (rc) {
			close(fd);
			return rc;
		}
		return fd;
	}
	rc = -EADDRNOTAVAIL;
	for (ai = s->ai; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, type, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		rc = fn(fd, ai->ai_addr, ai->ai_addrlen);
		if (!rc) {
			rc = fd;
			break;
		}
		close(fd);
	}
	return rc;
}

static int do_listen(int fd, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, len) || listen(fd, SOCKET_MAX_WAITING))
		return -errno;
	return 0;
}

static int do_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	return errno == EINPROGRESS ? 0 : -errno;
}

/* Client: connect, or start connecting.  The result comes through
 * connect_done. */
static void try_connect(struct chr *chr)
{
	struct sock *s = chr_priv(chr);
	int fd = with_address(s, true, do_connect);
	int err = 0;
	socklen_t len = sizeof(err);
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};

	if (fd < 0) {
		char where[128];

		vp_debug("chardev %s: connecting to %s: %s", chr_id(chr),
			 sock_where(s, where, sizeof(where)), strerror(-fd));
		schedule_retry(chr);
		return;
	}
	/* Done already (unix sockets, or a local TCP server)? */
	if (poll(&pfd, 1, 0) == 1) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
		connect_done(chr, fd, err);
		return;
	}
	s->connecting_fd = fd;
	s->connect_w =
		vp_watch_new(chr_loop(chr), fd, VP_EV_WRITE, connect_cb, chr);
	if (!s->connect_w)
		connect_done(chr, fd, ENOMEM);
}

/* The peer left: the next client in turn, or wait (server); connect
 * again later, or stay away (client). */
static void socket_peer_gone(struct chr *chr)
{
	struct sock *s = chr_priv(chr);

	if (s->server) {
		if (s->nwaiting) {
			int fd = s->waiting[0];

			memmove(&s->waiting[0], &s->waiting[1],
				--s->nwaiting * sizeof(s->waiting[0]));
			serve(chr, fd);
		}
		return;
	}
	if (s->reconnect_ms)
		schedule_retry(chr);
	else
		vp_warn("chardev %s: disconnected; not reconnecting "
			"(reconnect-ms=0)",
			chr_id(chr));
}

static int start_server(struct chr *chr, struct sock *s, char *err,
			size_t errlen)
{
	char where[128];
	struct stat st;
	int fd;

	/* A socket file left by an earlier run is ours to replace; one
	 * somebody listens on, or anything else, is not. */
	if (s->path && lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		fd = with_address(s, true, do_connect);
		if (fd >= 0 || fd == -EAGAIN) {
			if (fd >= 0)
				close(fd);
			return chr_errf(chr, EADDRINUSE, err, errlen,
					"%s: another process listens there",
					s->path);
		}
		unlink(s->path);
	} else if (s->path && lstat(s->path, &st) == 0) {
		return chr_errf(chr, EEXIST, err, errlen,
				"%s exists and is not a socket", s->path);
	}
	s->listen_fd = with_address(s, true, do_listen);
	if (s->listen_fd < 0)
		return chr_errf(chr, -s->listen_fd, err, errlen,
				"cannot listen on %s: %s",
				sock_where(s, where, sizeof(where)),
				strerror(-s->listen_fd));
	s->bound = s->path != NULL;
	if (s->wait) {
		/* The loop waits for it (chr_set_waiting), signals and all. */
		vp_warn("chardev %s: waiting for a connection on %s (wait=on)",
			chr_id(chr), sock_where(s, where, sizeof(where)));
		s->first_pending = true;
	}
	s->listen_w = vp_watch_new(chr_loop(chr), s->listen_fd, VP_EV_READ,
				   accept_cb, chr);
	if (!s->listen_w)
		return chr_errf(chr, ENOMEM, err, errlen, "out of memory");
	return 0;
}

static int socket_start(struct chr *chr, char *err, size_t errlen)
{
	struct sock *s = chr_priv(chr);
	char where[128];
	int fd = resolve(chr, s, err, errlen);

	if (fd)
		return fd;
	if (s->server)
		return start_server(chr, s, err, errlen);
	if (s->reconnect_ms) {
		try_connect(chr);
		return 0;
	}
	/* No second chance: the server must be there now, as in QEMU. */
	fd = with_address(s, false, do_connect);
	if (fd < 0)
		return chr_errf(
			chr, -fd, err, errlen, "cannot connect to %s: %s",
			sock_where(s, where, sizeof(where)), strerror(-fd));
	serve(chr, fd);
	return 0;
}

static bool socket_waiting(struct chr *chr)
{
	struct sock *s = chr_priv(chr);

	return s->first_pending;
}

static void socket_stop(struct chr *chr)
{
	struct sock *s = chr_priv(chr);
	struct vp_loop *loop = chr_loop(chr);

	vp_watch_free(loop, s->listen_w);
	vp_watch_free(loop, s->connect_w);
	vp_timer_free(loop, s->retry);
	s->listen_w = s->connect_w = NULL;
	s->retry = NULL;
	for (unsigned i = 0; i < s->nwaiting; i++)
		close(s->waiting[i]);
	s->nwaiting = 0;
	if (s->connecting_fd >= 0)
		close(s->connecting_fd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->connecting_fd = s->listen_fd = -1;
	if (s->bound)
		unlink(s->path);
	s->bound = false;
	free(s->path);
	free(s->host);
	free(s->port);
	free(s->tx);
	s->path = s->host = s->port = s->tx = NULL;
	if (s->ai)
		freeaddrinfo(s->ai);
	s->ai = NULL;
}

static const char *const socket_options[] = {"path", "host", "port", "server", "wait", "reconnect-ms", "telnet", "nodelay", NULL};

const struct chr_backend chr_socket_backend = {
	.name = "socket",
	.options = socket_options,
	.priv_size = sizeof(struct sock),
	.parse = socket_parse,
	.start = socket_start,
	.stop = socket_stop,
	.peer_gone = socket_peer_gone,
	.waiting = socket_waiting,
	.sink = socket_sink,
	.filter_in = telnet_filter,
};
