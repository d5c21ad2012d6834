/* hf_testnet: raw loopback sockets for tests (see hf_testnet.h).
 * Threading: reentrant; no state.
 */
#include "hf_testnet.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FD_RESERVE 300

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hf_test_raw_connect(const char *src, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (src) {
		struct sockaddr_in b = { .sin_family = AF_INET };
		inet_pton(AF_INET, src, &b.sin_addr);
		if (bind(fd, (struct sockaddr *)&b, sizeof b) != 0) {
			close(fd);
			return -1;
		}
	}
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool hf_test_send_str(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

ssize_t hf_test_read_to_close(int fd, char *buf, size_t cap, uint64_t timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	size_t len = 0;
	for (;;) {
		uint64_t now = mono_ms();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (now >= deadline)
			return -1;
		if (poll(&pf, 1, (int)(deadline - now)) <= 0)
			continue;
		char tmp[4096];
		ssize_t r = recv(fd, tmp, sizeof tmp, 0);
		if (r <= 0)
			break;
		size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
		memcpy(buf + len, tmp, k);
		len += k;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

int hf_test_raw_status(const char *resp)
{
	int st;
	return sscanf(resp, "HTTP/1.%*d %d", &st) == 1 ? st : -1;
}

unsigned hf_test_fds_of(pid_t pid)
{
	char path[64];
	unsigned n = 0;
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	/* ".", "..", and in this process the directory's own descriptor */
	unsigned skip = pid == getpid() ? 3 : 2;
	return n > skip ? n - skip : 0;
}

int hf_test_conns_that_fit(int want, unsigned per_conn)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t used = hf_test_fds_of(getpid()) + FD_RESERVE;
	uint64_t room = rl.rlim_cur > used ? (rl.rlim_cur - used) / (per_conn ? per_conn : 1) : 0;
	if (room < (uint64_t)want) {
		fprintf(stderr, "RLIMIT_NOFILE %llu: %llu connections instead of %d\n",
			(unsigned long long)rl.rlim_cur, (unsigned long long)room, want);
		return (int)room;
	}
	return want;
}
