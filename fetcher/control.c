// SPDX-License-Identifier: MIT
/*
 * The control socket (control.h): a listening Unix socket served by one
 * thread with a poll loop over the listener, an eventfd that control_stop
 * signals, and up to CONTROL_MAX_CONNS connections, each reading its one
 * request line into a fixed CONTROL_MAX_LINE buffer under a deadline. A
 * complete line is answered at once and the connection closed; a client
 * that sends too much gets an error reply, one that sends too little in
 * time is dropped. The client half (control_call) is what `gdroot status`
 * uses.
 */
#include "control.h"

#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/util.h"

#define CONTROL_MAX_CONNS 16
#define CONTROL_REQ_TIMEOUT_NS (5ull * 1000000000ull)
#define CONTROL_SEND_TIMEOUT_S 5
#define CONTROL_CALL_TIMEOUT_S 60
#define CONTROL_MAX_REPLY (16u << 20)

struct control_conn {
	int fd;
	uid_t uid;		/* from SO_PEERCRED */
	uint64_t deadline_ns;
	size_t len;
	char line[CONTROL_MAX_LINE];
};

struct control {
	char *path;
	dev_t dev;		/* the socket file we made: removed only if */
	ino_t ino;		/* it is still this one */
	int lfd, efd;
	pthread_t thread;
	struct control_ops ops;
	/* Touched only by the server thread. */
	struct control_conn *conns[CONTROL_MAX_CONNS];
};

static int sockaddr_for(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* Create the missing folders above path, mode 0700 (existing ones are
 * left as they are). */
static int mkdir_parents(const char *path)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* A socket file left by a daemon that died is replaced; a live one is
 * not, nor is anything that is not a socket. */
static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED && errno != ENOENT)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static json_t *reply_error(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* What the server says to line (without its '\n'). Returns a new ref. */
static json_t *control_dispatch(struct control *c, const char *cmd, uid_t uid)
{
	if (streq(cmd, "status")) {
		json_t *j = c->ops.status ? c->ops.status(c->ops.ud) : NULL;
		return j ? j : reply_error("status unavailable");
	}
	if (streq(cmd, "boot-done")) {
		if (uid != 0)
			return reply_error("permission denied: boot-done needs root");
		if (!c->ops.boot_done)
			return reply_error("boot-done is not supported by this daemon");
		int r = c->ops.boot_done(c->ops.ud);
		if (r < 0)
			return reply_error(strerror(-r));
		return json_pack("{s:b}", "ok", 1);
	}
	/* Echo the command printable and short: it came from anyone. */
	char shown[80];
	size_t n = 0;
	for (const char *p = cmd; *p && n < 64; p++)
		shown[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	shown[n] = 0;
	char msg[128];
	snprintf(msg, sizeof(msg), "unknown command '%s%s'", shown, cmd[n] ? "..." : "");
	return reply_error(msg);
}

static void conn_close(struct control *c, size_t i)
{
	close(c->conns[i]->fd);
	free(c->conns[i]);
	c->conns[i] = NULL;
}

static void conn_reply(struct control *c, size_t i, json_t *j)
{
	struct control_conn *k = c->conns[i];
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s) {
		/* Blocking with a send timeout: replies are small, and a
		 * client that does not read must not stall the server. */
		int fl = fcntl(k->fd, F_GETFL);
		if (fl >= 0)
			fcntl(k->fd, F_SETFL, fl & ~O_NONBLOCK);
		struct timeval tv = { .tv_sec = CONTROL_SEND_TIMEOUT_S };
		setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		size_t n = strlen(s);
		int r = send_all(k->fd, s, n);
		if (r == 0)
			r = send_all(k->fd, "\n", 1);
		if (r < 0)
			log_debug("control: reply: %s", strerror(-r));
		free(s);
	}
	conn_close(c, i);
}

/* The request is the first len bytes of the connection's buffer. */
static void conn_line(struct control *c, size_t i, size_t len)
{
	struct control_conn *k = c->conns[i];
	if (memchr(k->line, 0, len)) {
		conn_reply(c, i, reply_error("NUL byte in the request"));
		return;
	}
	if (len && k->line[len - 1] == '\r')
		len--;
	k->line[len] = 0;
	conn_reply(c, i, control_dispatch(c, k->line, k->uid));
}

static void conn_readable(struct control *c, size_t i)
{
	struct control_conn *k = c->conns[i];
	bool eof = false;
	while (k->len < sizeof(k->line)) {
		ssize_t n = recv(k->fd, k->line + k->len, sizeof(k->line) - k->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			conn_close(c, i);
			return;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		char *nl = memchr(k->line + k->len, '\n', (size_t)n);
		k->len += (size_t)n;
		if (nl) {
			conn_line(c, i, (size_t)(nl - k->line));
			return;
		}
	}
	if (k->len >= sizeof(k->line)) {
		char msg[64];
		snprintf(msg, sizeof(msg), "request line too long (max %d bytes)", CONTROL_MAX_LINE);
		conn_reply(c, i, reply_error(msg));
		return;
	}
	if (eof) {
		if (k->len == 0) {
			conn_close(c, i);
			return;
		}
		/* A last line without '\n' still counts. */
		conn_line(c, i, k->len);
	}
}

static void control_accept(struct control *c)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn_errno(-errno, "control %s: accept: %m", c->path);
		return;
	}
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn_errno(-errno, "control %s: SO_PEERCRED: %m", c->path);
		close(fd);
		return;
	}
	for (size_t i = 0; i < CONTROL_MAX_CONNS; i++) {
		if (c->conns[i])
			continue;
		struct control_conn *k = xmalloc(sizeof(*k));
		k->fd = fd;
		k->uid = cred.uid;
		k->len = 0;
		k->deadline_ns = now_ns() + CONTROL_REQ_TIMEOUT_NS;
		c->conns[i] = k;
		return;
	}
	close(fd); /* not reached: the listener is polled only with a free slot */
}

static void *control_thread(void *p)
{
	struct control *c = p;
	struct pollfd pfd[2 + CONTROL_MAX_CONNS];
	size_t idx[CONTROL_MAX_CONNS];

	for (;;) {
		size_t n = 0, nconn = 0;
		uint64_t now = now_ns(), next = UINT64_MAX;
		pfd[n++] = (struct pollfd){ .fd = c->efd, .events = POLLIN };
		for (size_t i = 0; i < CONTROL_MAX_CONNS; i++) {
			if (!c->conns[i])
				continue;
			if (c->conns[i]->deadline_ns <= now) {
				conn_close(c, i); /* said too little, too slowly */
				continue;
			}
			next = MIN(next, c->conns[i]->deadline_ns);
			idx[nconn++] = i;
		}
		size_t lpos = SIZE_MAX;
		if (nconn < CONTROL_MAX_CONNS) {
			lpos = n;
			pfd[n++] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		}
		size_t first_conn = n;
		for (size_t j = 0; j < nconn; j++)
			pfd[n++] = (struct pollfd){ .fd = c->conns[idx[j]]->fd, .events = POLLIN };
		int timeout = next == UINT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
		int r = poll(pfd, n, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_error_errno(-errno, "control %s: poll: %m", c->path);
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		for (size_t j = 0; j < nconn; j++)
			if (pfd[first_conn + j].revents)
				conn_readable(c, idx[j]);
		if (lpos != SIZE_MAX && (pfd[lpos].revents & POLLIN))
			control_accept(c);
	}
}

struct control *control_start(const char *path, const struct control_ops *ops)
{
	struct sockaddr_un sa;
	struct stat st;
	int r;

	r = sockaddr_for(path, &sa);
	if (r < 0)
		goto fail_log;
	r = mkdir_parents(path);
	if (r < 0)
		goto fail_log;
	r = remove_stale(path, &sa);
	if (r == -EADDRINUSE) {
		log_error("control %s: another daemon is listening there", path);
		errno = EADDRINUSE;
		return NULL;
	}
	if (r == -EEXIST) {
		log_error("control %s: exists and is not a socket; not replacing it", path);
		errno = EEXIST;
		return NULL;
	}
	if (r < 0)
		goto fail_log;

	struct control *c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	c->ops = *ops;
	c->efd = -1;
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0)
		goto fail_errno;
	if (bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail_errno;
	/* Restricted before listen(): until then every connect is refused,
	 * so nobody gets in through the umask's wider mode. */
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0)
		goto fail_unlink;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (listen(c->lfd, 16) < 0)
		goto fail_unlink;
	c->efd = eventfd(0, EFD_CLOEXEC);
	if (c->efd < 0)
		goto fail_unlink;
	r = pthread_create(&c->thread, NULL, control_thread, c);
	if (r != 0) {
		errno = r;
		goto fail_unlink;
	}
	log_debug("control socket at %s", path);
	return c;

fail_unlink:
	r = -errno;
	unlink(path);
	goto fail_free;
fail_errno:
	r = -errno;
fail_free:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->efd >= 0)
		close(c->efd);
	free(c->path);
	free(c);
fail_log:
	log_error_errno(r, "control %s: %m", path);
	errno = -r;
	return NULL;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	uint64_t one = 1;
	ssize_t k = write(c->efd, &one, sizeof(one));
	(void)k;
	pthread_join(c->thread, NULL);
	for (size_t i = 0; i < CONTROL_MAX_CONNS; i++)
		if (c->conns[i])
			conn_close(c, i);
	struct stat st;
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	close(c->lfd);
	close(c->efd);
	free(c->path);
	free(c);
}

int control_call(const char *path, const char *cmd, char **out)
{
	struct sockaddr_un sa;
	int r = sockaddr_for(path, &sa);
	*out = NULL;
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = CONTROL_CALL_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	_cleanup_free_ char *line = xasprintf("%s\n", cmd);
	r = send_all(fd, line, strlen(line));
	if (r < 0)
		return r == -EAGAIN ? -ETIMEDOUT : r;
	struct buf b = BUF_INIT(CONTROL_MAX_REPLY);
	char tmp[4096];
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			buf_free(&b);
			return r;
		}
		if (n == 0)
			break;
		r = buf_append(&b, tmp, (size_t)n);
		if (r < 0) {
			buf_free(&b);
			return r;
		}
	}
	if (b.len == 0) {
		buf_free(&b);
		return -EPROTO; /* closed without an answer */
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = 0;
	*out = b.data;
	return 0;
}
