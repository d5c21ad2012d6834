/* hf_teststall: a getaddrinfo() held inside glibc's resolver by a HOSTALIASES FIFO (see
 * hf_teststall.h).
 * Threading: the test's main thread.
 */
#include "hf_teststall.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_stratum_conn.h"
#include "hf_util.h"

void hf_teststall_setup(hf_teststall *st)
{
	strcpy(st->dir, "/tmp/hf-stall-XXXXXX");
	cr_assert(mkdtemp(st->dir));
	snprintf(st->fifo, sizeof st->fifo, "%s/aliases", st->dir);
	cr_assert_eq(mkfifo(st->fifo, 0600), 0);
	st->wfd = -1;
	cr_assert_eq(setenv("HOSTALIASES", st->fifo, 1), 0);
	/* once let go, the name server is asked once, briefly */
	cr_assert_eq(setenv("RES_OPTIONS", "timeout:1 attempts:1", 1), 0);
}

bool hf_teststall_caught(hf_teststall *st, uint64_t wait_ms)
{
	uint64_t end = hf_mono_ms() + wait_ms;

	for (;;) {
		if (st->wfd < 0)
			st->wfd = open(st->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (st->wfd >= 0)
			return true;
		if (errno != ENXIO || hf_mono_ms() >= end)
			return false;
		poll(NULL, 0, 5); /* re-check until the deadline */
	}
}

void hf_teststall_release(hf_teststall *st)
{
	char empty[128];
	uint64_t end = hf_mono_ms() + 20000;
	int fd;

	snprintf(empty, sizeof empty, "%s/empty", st->dir);
	fd = open(empty, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	hf_teststall_caught(st, 0); /* also wakes a lookup still blocked in open() */
	cr_assert_eq(rename(empty, st->fifo), 0);
	if (st->wfd >= 0)
		close(st->wfd);
	st->wfd = -1;
	while (hf_stratum_conn_resolves_running() > 0 && hf_mono_ms() < end)
		poll(NULL, 0, 10); /* re-check until the deadline */
	cr_assert_eq(hf_stratum_conn_resolves_running(), 0, "resolver threads did not finish");
	unlink(st->fifo);
	rmdir(st->dir);
}
