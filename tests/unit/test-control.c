// SPDX-License-Identifier: MIT
/*
 * Description: the control socket answers status, boot-done and unknown commands byte for byte, bounds the request line, replaces stale sockets but not live ones, checks peers, serves concurrent and slow clients, and cleans up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../fetcher/control.h"
#include "../../fetcher/util/util.h"
#include "test.h"

static atomic_int boot_calls, status_calls;
static int boot_result;

static json_t *fake_status(void *ud)
{
	atomic_fetch_add(&status_calls, 1);
	return json_pack("{s:I, s:s, s:[{s:s, s:I}], s:{s:I, s:I}}", "generation", (json_int_t)7,
			 "store", (const char *)ud, "layers", "name", "layer-0", "size",
			 (json_int_t)1234567, "cache", "hits", (json_int_t)9, "misses",
			 (json_int_t)1);
}

static int fake_boot_done(void *ud)
{
	(void)ud;
	atomic_fetch_add(&boot_calls, 1);
	return boot_result;
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send raw bytes, read until EOF. Caller frees. */
static char *raw_call(const char *path, const void *req, size_t n, bool shut)
{
	int fd = raw_connect(path);
	if (fd < 0)
		return NULL;
	size_t off = 0;
	while (off < n) {
		ssize_t k = send(fd, (const char *)req + off, n - off, MSG_NOSIGNAL);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	if (shut)
		shutdown(fd, SHUT_WR);
	char *out = xcalloc(1, 65536);
	size_t len = 0;
	for (;;) {
		ssize_t k = recv(fd, out + len, 65535 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	return out;
}

static const char *sock;

static void *client(void *p)
{
	(void)p;
	char *out = NULL;
	int r = control_call(sock, "status", &out);
	bool ok = r == 0 && out && strstr(out, "\"generation\":7");
	free(out);
	return ok ? NULL : (void *)1;
}

int main(void)
{
	char dir[] = "/tmp/gdroot-test-control.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *path = xasprintf("%s/run/gdroot/fetcher.sock", dir);
	sock = path;
	struct control_ops ops = { fake_status, fake_boot_done, "file:///srv/store" };
	struct stat st;
	char *out = NULL;
	int r;

	/* No server yet. */
	CHECK(control_call(path, "status", &out) == -ENOENT && out == NULL);

	struct control *c = control_start(path, &ops);
	CHECK(c != NULL);
	if (!c)
		return test_exit();
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	char *parent = xasprintf("%s/run/gdroot", dir);
	CHECK(stat(parent, &st) == 0 && (st.st_mode & 0777) == 0700);

	/* status: the object, then '\n' (control_call strips it). */
	r = control_call(path, "status", &out);
	CHECK(r == 0);
	CHECK_STR(out ? out : "", "{\"generation\":7,\"store\":\"file:///srv/store\",\"layers\":"
				  "[{\"name\":\"layer-0\",\"size\":1234567}],\"cache\":{\"hits\":9,\"misses\":1}}");
	free(out);
	char *raw = raw_call(path, "status\n", 7, false);
	CHECK(raw && raw[strlen(raw) - 1] == '\n' && raw[0] == '{');
	free(raw);

	/* boot-done, ok and failing. */
	CHECK(control_call(path, "boot-done", &out) == 0);
	CHECK_STR(out ? out : "", "{\"ok\":true}");
	free(out);
	boot_result = -EIO;
	CHECK(control_call(path, "boot-done", &out) == 0);
	CHECK_STR(out ? out : "", "{\"ok\":false,\"error\":\"Input/output error\"}");
	free(out);
	CHECK(atomic_load(&boot_calls) == 2);

	/* Unknown, empty, CRLF, no newline before EOF, control bytes. */
	CHECK(control_call(path, "frobnicate", &out) == 0);
	CHECK_STR(out ? out : "", "{\"ok\":false,\"error\":\"unknown command 'frobnicate'\"}");
	free(out);
	raw = raw_call(path, "\n", 1, false);
	CHECK_STR(raw ? raw : "", "{\"ok\":false,\"error\":\"unknown command ''\"}\n");
	free(raw);
	raw = raw_call(path, "status\r\n", 8, false);
	CHECK(raw && startswith(raw, "{\"generation\":7"));
	free(raw);
	raw = raw_call(path, "status", 6, true);
	CHECK(raw && startswith(raw, "{\"generation\":7"));
	free(raw);
	raw = raw_call(path, "a\x01\xff\"b\n", 6, false);
	CHECK_STR(raw ? raw : "", "{\"ok\":false,\"error\":\"unknown command 'a??\\\"b'\"}\n");
	free(raw);
	raw = raw_call(path, "sta\0tus\n", 8, false);
	CHECK_STR(raw ? raw : "", "{\"ok\":false,\"error\":\"NUL byte in the request\"}\n");
	free(raw);
	/* Nothing at all: closed without a word. */
	raw = raw_call(path, "", 0, true);
	CHECK_STR(raw ? raw : "x", "");
	free(raw);

	/* The line bound: 4095 bytes + '\n' is a (long, unknown) command;
	 * 5000 bytes without '\n' is refused. */
	char *big = xmalloc(5001);
	memset(big, 'a', 5000);
	big[4095] = '\n';
	raw = raw_call(path, big, 4096, false);
	CHECK(raw && startswith(raw, "{\"ok\":false,\"error\":\"unknown command 'aaaa") &&
	      strstr(raw, "...'\"}\n"));
	free(raw);
	big[4095] = 'a';
	raw = raw_call(path, big, 5000, false);
	CHECK_STR(raw ? raw : "", "{\"ok\":false,\"error\":\"request line too long (max 4096 bytes)\"}\n");
	free(raw);
	free(big);

	/* A silent client does not block others. */
	int idle = raw_connect(path);
	CHECK(idle >= 0);
	pthread_t t[40];
	for (int i = 0; i < 40; i++)
		pthread_create(&t[i], NULL, client, NULL);
	for (int i = 0; i < 40; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}

	/* A live socket is not replaced; a second server fails. */
	errno = 0;
	CHECK(control_start(path, &ops) == NULL && errno == EADDRINUSE);

	/* Non-root peers may read status but not send boot-done. */
	if (geteuid() == 0) {
		chmod(dir, 0755);
		chmod(parent, 0755);
		char *rundir = xasprintf("%s/run", dir);
		chmod(rundir, 0755);
		free(rundir);
		chmod(path, 0666);
		pid_t pid = fork();
		if (pid == 0) {
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(3);
			char *o = NULL;
			if (control_call(path, "status", &o) != 0 || !strstr(o, "\"generation\":7"))
				_exit(4);
			free(o);
			if (control_call(path, "boot-done", &o) != 0 ||
			    !streq(o, "{\"ok\":false,\"error\":\"permission denied: boot-done needs root\"}"))
				_exit(5);
			free(o);
			_exit(0);
		}
		int ws = 0;
		waitpid(pid, &ws, 0);
		CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
		CHECK(atomic_load(&boot_calls) == 2);
		chmod(path, 0600);
	} else {
		printf("not root: peer check part skipped\n");
	}

	control_stop(c);
	/* The idle client sees the server close. */
	char ch;
	CHECK(recv(idle, &ch, 1, 0) == 0);
	close(idle);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	CHECK(control_call(path, "status", &out) == -ENOENT);

	/* A stale socket (bound, nobody listening) is replaced. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(sfd);
	CHECK(control_call(path, "status", &out) == -ECONNREFUSED);
	c = control_start(path, &ops);
	CHECK(c != NULL);
	CHECK(control_call(path, "status", &out) == 0);
	free(out);
	control_stop(c);

	/* Anything else at the path is left alone. */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	errno = 0;
	CHECK(control_start(path, &ops) == NULL && errno == EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);

	/* Too long a path. */
	char longp[200];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	errno = 0;
	CHECK(control_start(longp, &ops) == NULL && errno == ENAMETOOLONG);

	/* A server without a status op. */
	struct control_ops none = { 0 };
	c = control_start(path, &none);
	CHECK(control_call(path, "status", &out) == 0);
	CHECK_STR(out ? out : "", "{\"ok\":false,\"error\":\"status unavailable\"}");
	free(out);
	control_stop(c);

	char *cmd = xasprintf("rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
	free(parent);
	free(path);
	return test_exit();
}
