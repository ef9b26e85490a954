// SPDX-License-Identifier: MIT
/*
 * `gdroot clock SERVER[:PORT]`: set the system clock from an NTP server
 * (SNTP, one exchange, three tries). The appliance's init runs it when
 * boot_ntp is configured, since TLS needs a sane clock and busybox there
 * has no ntpd. --dry-run only prints the offset.
 */
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "cli.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/sntp.h"
#include "../fetcher/util/util.h"

int cmd_clock(struct cli *c, int argc, char **argv)
{
	(void)c;
	const char *server = NULL;
	bool dry = false;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			printf("Usage: gdroot clock [--dry-run] SERVER[:PORT]\n\n"
			       "Set the clock from an NTP server (SNTP). --dry-run prints the offset only.\n");
			return 0;
		}
		if (streq(argv[i], "--dry-run"))
			dry = true;
		else if (!server)
			server = argv[i];
		else {
			log_error("clock: one SERVER only");
			return 2;
		}
	}
	if (!server) {
		log_error("clock: which NTP server? (e.g. gdroot clock pool.ntp.org)");
		return 2;
	}
	_cleanup_free_ char *host = xstrdup(server);
	const char *port = "123";
	char *colon = strrchr(host, ':');
	if (colon && !strchr(colon + 1, ']') && strchr(host, ':') == colon) {
		*colon = 0;
		port = colon + 1;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e) {
		log_error("clock: %s: %s", server, gai_strerror(e));
		return 1;
	}
	_cleanup_close_ int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		log_error_errno(-errno, "clock: %s: %m", server);
		freeaddrinfo(ai);
		return 1;
	}
	freeaddrinfo(ai);
	for (int attempt = 0; attempt < 3; attempt++) {
		uint8_t req[SNTP_PACKET], rep[256];
		struct timespec t0, t3;
		clock_gettime(CLOCK_REALTIME, &t0);
		sntp_request(req, &t0);
		if (send(fd, req, sizeof(req), 0) < 0) {
			log_warn("clock: send to %s: %m", server);
			continue;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 2000) <= 0) {
			log_warn("clock: no answer from %s (try %d of 3)", server, attempt + 1);
			continue;
		}
		ssize_t n = recv(fd, rep, sizeof(rep), 0);
		clock_gettime(CLOCK_REALTIME, &t3);
		if (n < 0) {
			log_warn("clock: %s: %m", server);
			continue;
		}
		int64_t off;
		char err[128];
		if (sntp_parse(rep, (size_t)n, &t0, &t3, &off, err, sizeof(err)) < 0) {
			log_warn("clock: %s: %s", server, err);
			continue;
		}
		printf("clock: offset %+.3f s from %s\n", (double)off / 1e9, server);
		if (dry)
			return 0;
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t t = (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec + off;
		struct timespec set = { .tv_sec = (time_t)(t / 1000000000ll), .tv_nsec = (long)(t % 1000000000ll) };
		if (clock_settime(CLOCK_REALTIME, &set) < 0) {
			log_error_errno(-errno, "clock: setting the time: %m");
			return 1;
		}
		return 0;
	}
	log_error("clock: no valid answer from %s", server);
	return 1;
}
