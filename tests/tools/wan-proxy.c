// SPDX-License-Identifier: MIT
/*
 * wan-proxy --listen HOST:PORT --connect HOST:PORT --delay-ms D
 *           --rate-mbit R [--queue-ms Q] [--ready-file F]
 *
 * A userspace TCP proxy that puts a WAN link between its clients and one
 * server, for benchmarks on a kernel without sch_netem. The link has one
 * bottleneck per direction, shared by every connection: bytes read from a
 * side are serialised at R Mbit/s in the order they arrived (a "next free"
 * time per direction), then held for the one-way delay D ms, then written
 * to the other side. A new connection's first bytes from the client go out
 * no earlier than 2D after the accept, as if a handshake had crossed the
 * link, so a first request costs about two round trips, as over TCP.
 *
 * Buffers are bounded: a direction stops reading from every connection
 * while its serialisation backlog exceeds the bottleneck queue (Q ms,
 * default max(2D, 1 ms), i.e. one bandwidth-delay product), and one
 * connection stops reading a side while more than 8 MiB from it wait to be
 * written (a slow reader). So memory is about R*(D + Q) per direction plus
 * 8 MiB per stalled connection, and the senders see TCP backpressure.
 *
 * A side's EOF is passed on as shutdown(SHUT_WR) once its bytes have been
 * delivered; a connection closes when both directions are done; a reset or
 * error on one side resets the other (SO_LINGER 0). One thread, epoll with
 * nanosecond timeouts (epoll_pwait2). SIGTERM or SIGINT exit 0, printing
 * counters to stderr. A test tool for tests/bench (see tests/bench/wan.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../fetcher/util/util.h"

#define CONN_QUEUE_CAP (8u << 20) /* bytes one direction of one connection may hold */
#define READ_MIN 4096u
#define READ_MAX 65536u
#define MAX_EVENTS 64

/* One direction of the bottleneck, shared by all connections. */
struct link {
	double ns_per_byte;   /* 0: no rate limit */
	uint64_t delay_ns;    /* one way, after serialisation */
	uint64_t queue_ns;    /* serialisation backlog that stops reading */
	uint64_t next_free_ns; /* when the bottleneck is idle again */
	size_t read_size;     /* bytes read at once: about 1 ms of the link */
	uint64_t bytes;
};

struct chunk {
	struct chunk *next;
	uint64_t release_ns;
	size_t len, off;
	char data[];
};

struct conn;

/* One direction of one connection: bytes from fd src to fd dst. */
struct half {
	struct conn *c;
	int src, dst;		/* indexes into c->fd */
	struct link *link;
	struct chunk *head, *tail;
	size_t queued;
	bool eof;		/* src said EOF */
	bool shut;		/* dst got shutdown(SHUT_WR) */
	bool dst_blocked;	/* the last write to dst hit EAGAIN */
};

struct conn {
	struct conn *prev, *next;
	int fd[2];		/* 0: the client, 1: the server */
	uint32_t mask[2];	/* epoll events registered for fd[i] */
	bool reg[2];		/* fd[i] is in the epoll set */
	bool connecting;	/* fd[1]'s connect is in progress */
	uint64_t open_ns;	/* client bytes leave no earlier than this */
	struct half h[2];	/* 0: client -> server, 1: server -> client */
	uint64_t id;
};

static struct {
	struct link up, down;	/* client -> server, server -> client */
	struct sockaddr_storage dst;
	socklen_t dstlen;
	int ep, lfd, sfd;
	struct conn *conns;
	uint64_t nconns, nactive, nresets;
	bool verbose;
} P;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("wan-proxy: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* HOST:PORT or [V6]:PORT into ss and len; exits with a message if it is not one. */
static void parse_addr(const char *what, const char *s, bool passive, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	_cleanup_free_ char *h = xstrdup(s);
	char *port = strrchr(h, ':'), *host = h;
	if (!port || port == h)
		die("%s: '%s' is not HOST:PORT", what, s);
	*port++ = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host++;
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *ai;
	int r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		die("%s: %s: %s", what, s, gai_strerror(r));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void link_init(struct link *l, double mbit, double delay_ms, double queue_ms)
{
	l->ns_per_byte = mbit > 0 ? 8e3 / mbit : 0;
	l->delay_ns = (uint64_t)(delay_ms * 1e6);
	double q = queue_ms >= 0 ? queue_ms : 2 * delay_ms;
	if (q < 1)
		q = 1;
	l->queue_ns = (uint64_t)(q * 1e6);
	double per_ms = mbit > 0 ? mbit * 1e3 / 8 : READ_MAX;
	l->read_size = per_ms < READ_MIN ? READ_MIN : per_ms > READ_MAX ? READ_MAX : (size_t)per_ms;
}

/* May the link take another read now? */
static bool link_open(const struct link *l, uint64_t now)
{
	return l->ns_per_byte == 0 || l->next_free_ns <= now + l->queue_ns;
}

/* Register the events fd i waits for. An fd that waits for nothing is
 * taken out of the epoll set, so a hung-up socket cannot spin the loop. */
static void set_mask(struct conn *c, int i, uint32_t want)
{
	if (c->fd[i] < 0 || (c->reg[i] && c->mask[i] == want))
		return;
	struct epoll_event ev = { .events = want };
	/* The low bit of the pointer says which fd: struct conn is aligned. */
	ev.data.u64 = (uint64_t)(uintptr_t)c | (uint64_t)i;
	int op = !want ? EPOLL_CTL_DEL : c->reg[i] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (!want && !c->reg[i])
		return;
	if (epoll_ctl(P.ep, op, c->fd[i], &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->mask[i] = want;
	c->reg[i] = want != 0;
}

static void conn_free(struct conn *c, bool reset)
{
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0)
			continue;
		if (reset) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd[i]);
	}
	for (int i = 0; i < 2; i++) {
		struct chunk *k = c->h[i].head;
		while (k) {
			struct chunk *n = k->next;
			free(k);
			k = n;
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		P.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (reset)
		P.nresets++;
	if (P.verbose)
		fprintf(stderr, "wan-proxy: connection %" PRIu64 " %s\n", c->id, reset ? "reset" : "closed");
	P.nactive--;
	free(c);
}

static void conn_accept(void)
{
	for (;;) {
		int fd = accept4(P.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			fprintf(stderr, "wan-proxy: accept: %s\n", strerror(errno));
			return;
		}
		int s = socket(P.dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s < 0) {
			fprintf(stderr, "wan-proxy: socket: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bool connecting = false;
		if (connect(s, (struct sockaddr *)&P.dst, P.dstlen) < 0) {
			if (errno != EINPROGRESS) {
				fprintf(stderr, "wan-proxy: connect: %s\n", strerror(errno));
				close(s);
				close(fd);
				continue;
			}
			connecting = true;
		}
		struct conn *c = xcalloc(1, sizeof(*c));
		c->fd[0] = fd;
		c->fd[1] = s;
		c->connecting = connecting;
		c->id = ++P.nconns;
		c->open_ns = mono_ns() + 2 * P.up.delay_ns;
		c->h[0] = (struct half){ .c = c, .src = 0, .dst = 1, .link = &P.up };
		c->h[1] = (struct half){ .c = c, .src = 1, .dst = 0, .link = &P.down };
		c->next = P.conns;
		if (P.conns)
			P.conns->prev = c;
		P.conns = c;
		P.nactive++;
		set_mask(c, 1, connecting ? EPOLLOUT : 0);
		if (P.verbose)
			fprintf(stderr, "wan-proxy: connection %" PRIu64 " accepted\n", c->id);
	}
}

/* Read once from h's source into a new chunk stamped with its release
 * time. Returns 0, or -1 if the connection must be reset. */
static int half_read(struct half *h, uint64_t now)
{
	struct conn *c = h->c;
	struct link *l = h->link;
	struct chunk *k = xmalloc(sizeof(*k) + l->read_size);
	ssize_t n = read(c->fd[h->src], k->data, l->read_size);
	if (n < 0) {
		free(k);
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return -1;
	}
	if (n == 0) {
		free(k);
		h->eof = true;
		if (P.verbose)
			fprintf(stderr, "wan-proxy: connection %" PRIu64 ": EOF from the %s\n", c->id,
				h->src == 0 ? "client" : "server");
		return 0;
	}
	uint64_t start = now;
	if (h->src == 0 && start < c->open_ns)
		start = c->open_ns;
	if (start < l->next_free_ns)
		start = l->next_free_ns;
	if (l->ns_per_byte > 0)
		l->next_free_ns = start + (uint64_t)((double)n * l->ns_per_byte);
	else
		l->next_free_ns = start;
	k->release_ns = l->next_free_ns + l->delay_ns;
	k->len = (size_t)n;
	k->off = 0;
	k->next = NULL;
	if (h->tail)
		h->tail->next = k;
	else
		h->head = k;
	h->tail = k;
	h->queued += (size_t)n;
	l->bytes += (uint64_t)n;
	return 0;
}

/* Write what is due. Returns 0, or -1 if the connection must be reset. */
static int half_flush(struct half *h, uint64_t now)
{
	struct conn *c = h->c;
	h->dst_blocked = false;
	if (h->dst == 1 && c->connecting)
		return 0;
	while (h->head && h->head->release_ns <= now) {
		struct chunk *k = h->head;
		ssize_t n = send(c->fd[h->dst], k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				h->dst_blocked = true;
				return 0;
			}
			return -1;
		}
		k->off += (size_t)n;
		h->queued -= (size_t)n;
		if (k->off < k->len) {
			h->dst_blocked = true;
			return 0;
		}
		h->head = k->next;
		if (!h->head)
			h->tail = NULL;
		free(k);
	}
	if (h->eof && !h->head && !h->shut) {
		shutdown(c->fd[h->dst], SHUT_WR);
		h->shut = true;
	}
	return 0;
}

static bool half_wants_read(const struct half *h, uint64_t now)
{
	return !h->eof && h->queued < CONN_QUEUE_CAP && link_open(h->link, now);
}

/* Bring a connection up to date: flush, close when both directions are
 * done, and register the events it waits for. Returns false if freed. */
static bool conn_update(struct conn *c, uint64_t now)
{
	for (int i = 0; i < 2; i++)
		if (half_flush(&c->h[i], now) < 0) {
			conn_free(c, true);
			return false;
		}
	if (c->h[0].shut && c->h[1].shut) {
		conn_free(c, false);
		return false;
	}
	uint32_t want[2] = { 0, 0 };
	for (int i = 0; i < 2; i++) {
		struct half *h = &c->h[i];
		if (half_wants_read(h, now))
			want[h->src] |= EPOLLIN | EPOLLRDHUP;
		if (h->dst_blocked)
			want[h->dst] |= EPOLLOUT;
	}
	if (c->connecting) {
		want[1] = EPOLLOUT;	/* nothing else until it is up */
	}
	set_mask(c, 0, want[0]);
	set_mask(c, 1, want[1]);
	return true;
}

static void conn_event(struct conn *c, int i, uint32_t ev, uint64_t now)
{
	if (i == 1 && c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			fprintf(stderr, "wan-proxy: connect: %s\n", strerror(err));
			conn_free(c, true);
			return;
		}
		c->connecting = false;
		ev &= ~(uint32_t)EPOLLOUT;
	}
	/* Half i reads from fd i (h[0]: fd 0 -> 1, h[1]: fd 1 -> 0). */
	struct half *h = &c->h[i];
	if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && half_wants_read(h, now))
		if (half_read(h, now) < 0) {
			conn_free(c, true);
			return;
		}
	/* EPOLLOUT: the flush in conn_update writes what is due. */
}

static void on_exit_print(void)
{
	fprintf(stderr,
		"wan-proxy: %" PRIu64 " connections (%" PRIu64 " reset), %" PRIu64 " bytes client->server, %" PRIu64
		" bytes server->client\n",
		P.nconns, P.nresets, P.up.bytes, P.down.bytes);
}

static void usage(FILE *f)
{
	fputs("Usage: wan-proxy --listen HOST:PORT --connect HOST:PORT --delay-ms D --rate-mbit R\n"
	      "                 [--queue-ms Q] [--ready-file F] [-v]\n"
	      "\n"
	      "A TCP proxy emulating a WAN link: each direction is serialised at R Mbit/s\n"
	      "(0: unlimited; shared by all connections), then delayed D ms. A direction\n"
	      "stops reading while its backlog exceeds Q ms (default 2D, at least 1 ms).\n"
	      "--ready-file gets the listening HOST:PORT (port 0 picks a free one).\n",
	      f);
}

int main(int argc, char **argv)
{
	const char *listen_s = NULL, *connect_s = NULL, *ready = NULL;
	double delay = -1, rate = -1, queue = -1;
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },  { "connect", required_argument, NULL, 'c' },
		{ "delay-ms", required_argument, NULL, 'd' }, { "rate-mbit", required_argument, NULL, 'r' },
		{ "queue-ms", required_argument, NULL, 'q' }, { "ready-file", required_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },	      { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;
	char *end;
	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case 'l': listen_s = optarg; break;
		case 'c': connect_s = optarg; break;
		case 'f': ready = optarg; break;
		case 'v': P.verbose = true; break;
		case 'd':
		case 'r':
		case 'q': {
			double v = strtod(optarg, &end);
			if (end == optarg || *end || v < 0 || v > 1e6)
				die("--%s: '%s' is not a number >= 0", o == 'd' ? "delay-ms" : o == 'r' ? "rate-mbit" : "queue-ms",
				    optarg);
			*(o == 'd' ? &delay : o == 'r' ? &rate : &queue) = v;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_s || !connect_s || delay < 0 || rate < 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	link_init(&P.up, rate, delay, queue);
	link_init(&P.down, rate, delay, queue);

	struct sockaddr_storage la;
	socklen_t llen;
	parse_addr("--listen", listen_s, true, &la, &llen);
	parse_addr("--connect", connect_s, false, &P.dst, &P.dstlen);
	P.lfd = socket(la.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (P.lfd < 0)
		die("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(P.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(P.lfd, (struct sockaddr *)&la, llen) < 0)
		die("bind %s: %s", listen_s, strerror(errno));
	if (listen(P.lfd, 128) < 0)
		die("listen: %s", strerror(errno));

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	P.sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	P.ep = epoll_create1(EPOLL_CLOEXEC);
	if (P.sfd < 0 || P.ep < 0)
		die("signalfd/epoll: %s", strerror(errno));
	/* data.u64 values 1 and 2 mark the listener and the signalfd: a
	 * struct conn pointer is never that small. */
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 2 };
	epoll_ctl(P.ep, EPOLL_CTL_ADD, P.lfd, &ev);
	ev.data.u64 = 4;
	epoll_ctl(P.ep, EPOLL_CTL_ADD, P.sfd, &ev);

	if (ready) {
		struct sockaddr_storage a;
		socklen_t alen = sizeof(a);
		char host[NI_MAXHOST], serv[NI_MAXSERV];
		getsockname(P.lfd, (struct sockaddr *)&a, &alen);
		if (getnameinfo((struct sockaddr *)&a, alen, host, sizeof(host), serv, sizeof(serv),
				NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			die("getnameinfo failed");
		_cleanup_free_ char *line = xasprintf(a.ss_family == AF_INET6 ? "[%s]:%s\n" : "%s:%s\n", host, serv);
		int r = write_file_atomic(ready, line, strlen(line), 0644);
		if (r < 0)
			die("ready file %s: %s", ready, strerror(-r));
	}

	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		/* Update every connection and find the next time something is due. */
		uint64_t now = mono_ns(), wake = UINT64_MAX;
		for (struct conn *c = P.conns, *n; c; c = n) {
			n = c->next;
			if (!conn_update(c, now))
				continue;
			for (int i = 0; i < 2; i++) {
				struct half *h = &c->h[i];
				if (h->head && !h->dst_blocked && !(h->dst == 1 && c->connecting) &&
				    h->head->release_ns < wake)
					wake = h->head->release_ns;
				if (!h->eof && h->queued < CONN_QUEUE_CAP && !link_open(h->link, now)) {
					uint64_t t = h->link->next_free_ns - h->link->queue_ns;
					if (t < wake)
						wake = t;
				}
			}
		}
		struct timespec ts, *tsp = NULL;
		if (wake != UINT64_MAX) {
			uint64_t d = wake > now ? wake - now : 0;
			ts.tv_sec = (time_t)(d / 1000000000ull);
			ts.tv_nsec = (long)(d % 1000000000ull);
			tsp = &ts;
		}
		int n = epoll_pwait2(P.ep, evs, MAX_EVENTS, tsp, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_pwait2: %s", strerror(errno));
		}
		now = mono_ns();
		for (int e = 0; e < n; e++) {
			uint64_t tag = evs[e].data.u64;
			if (tag == 2) {
				conn_accept();
				continue;
			}
			if (tag == 4) {
				struct signalfd_siginfo si;
				if (read(P.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					on_exit_print();
					while (P.conns)
						conn_free(P.conns, false);
					return 0;
				}
				continue;
			}
			struct conn *c = (struct conn *)(uintptr_t)(tag & ~(uint64_t)1);
			/* A connection freed earlier in this batch: skip its events. */
			bool alive = false;
			for (struct conn *x = P.conns; x; x = x->next)
				if (x == c) {
					alive = true;
					break;
				}
			if (alive)
				conn_event(c, (int)(tag & 1), evs[e].events, now);
		}
	}
}
