/* SPDX-License-Identifier: MIT */
/*
 * The fetcher's control socket: a Unix stream socket (mode 0600, in a
 * directory created 0700; the daemon uses /run/gdroot/fetcher.sock, which
 * survives switch_root because /run is moved into the new root) through
 * which `gdroot status` and `gdroot boot-done` talk to the running daemon.
 *
 * Protocol, one exchange per connection: the client sends one command
 * line (at most CONTROL_MAX_LINE bytes with its '\n'), the server answers
 * with one JSON object and '\n', then closes.
 *	"status"	the daemon's status object (control_ops.status)
 *	"boot-done"	{"ok":true} or {"ok":false,"error":"..."}
 *	anything else	{"ok":false,"error":"unknown command 'x'"}
 * Peers are checked with SO_PEERCRED: only uid 0 may send commands other
 * than "status" (the 0600 mode already keeps other users out; the check
 * holds if an admin opens the socket up to a group so it can read status).
 */
#ifndef GDROOT_CONTROL_H
#define GDROOT_CONTROL_H

#include <jansson.h>

#define CONTROL_MAX_LINE 4096
#define CONTROL_DEFAULT_SOCKET "/run/gdroot/fetcher.sock"

struct control_ops {
	/* A new JSON object for "status"; the server takes the reference
	 * (json_decref). NULL answers {"ok":false,"error":...}. */
	json_t *(*status)(void *ud);
	/* "boot-done": save the boot profile now. Returns 0 or -errno. */
	int (*boot_done)(void *ud);
	void *ud;
};

struct control;

/* Listen at path, replacing a stale socket file (one nobody answers on);
 * refuses a live one (-EADDRINUSE) and anything that is not a socket
 * (-EEXIST). Serves from its own thread, one connection at a time per
 * poll round; the ops are called on that thread, never concurrently. ops
 * is copied. Returns the server, or NULL with errno set (logged). */
struct control *control_start(const char *path, const struct control_ops *ops);
/* Stop the thread, close every connection, remove the socket file (if it
 * is still ours) and free. c may be NULL. */
void control_stop(struct control *c);

/* Client side: connect to path, send cmd (a '\n' is added), and read the
 * whole reply into *out (NUL-terminated, without the final '\n'; caller
 * frees). Returns 0, -ENOENT or -ECONNREFUSED when no server listens
 * there, -ETIMEDOUT after 60 s, or another -errno. Logs nothing. */
int control_call(const char *path, const char *cmd, char **out);

#endif
