/* Unit tests for hf_log: levels, line format, journal priority prefixes, one write per line. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_log.h"

/* Runs fn in a child whose stderr is a temporary file; returns what it wrote. */
static char *capture(void (*fn)(void), bool journal)
{
	char path[] = "/tmp/hf_log_test_XXXXXX";
	int fd = mkstemp(path), st;
	static char out[8192];
	pid_t pid;

	cr_assert_geq(fd, 0);
	pid = fork();
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		if (journal) {
			struct stat s;
			char v[64];
			fstat(STDERR_FILENO, &s);
			snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)s.st_dev,
				 (unsigned long long)s.st_ino);
			setenv("JOURNAL_STREAM", v, 1);
		} else {
			unsetenv("JOURNAL_STREAM");
		}
		fn();
		_exit(0);
	}
	waitpid(pid, &st, 0);
	ssize_t n = pread(fd, out, sizeof out - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return out;
}

static void emit(void)
{
	hf_log_init("/usr/bin/hashflopd", HF_LOG_INFO);
	hf_log_err("disk %s", "full");
	hf_log_warn("warned");
	hf_log_info("informed");
	hf_log_debug("hidden at info");
}

Test(log, plain_lines_carry_time_program_and_level)
{
	char *out = capture(emit, false);
	cr_assert(strstr(out, "Z hashflopd["), "%s", out);
	cr_assert(strstr(out, "] err: disk full\n"), "%s", out);
	cr_assert(strstr(out, "] warn: warned\n"));
	cr_assert(strstr(out, "] info: informed\n"));
	cr_assert_null(strstr(out, "hidden"));
	cr_assert_null(strstr(out, "<3>"));
}

Test(log, journal_lines_carry_syslog_priorities)
{
	char *out = capture(emit, true);
	cr_assert_str_eq(out, "<3>disk full\n<4>warned\n<6>informed\n");
}

static void emit_long(void)
{
	char big[10000];
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	hf_log_init("t", HF_LOG_DEBUG);
	hf_log_debug("%s", big);
	hf_log_debug("after");
}

Test(log, long_lines_are_cut_and_marked)
{
	char *out = capture(emit_long, true);
	char *nl = strchr(out, '\n');
	cr_assert_not_null(nl);
	cr_assert_eq(nl - out, 4094); /* 4 KiB with the newline and the NUL room */
	cr_assert_eq(strncmp(nl - 3, "...", 3), 0);
	cr_assert_str_eq(nl + 1, "<7>after\n");
}

Test(log, levels_parse)
{
	hf_log_level l;
	cr_assert(hf_log_level_parse("notice", &l));
	cr_assert_eq(l, HF_LOG_NOTICE);
	cr_assert_not(hf_log_level_parse("verbose", &l));
	cr_assert_str_eq(hf_log_level_name(HF_LOG_DEBUG), "debug");
	hf_log_set_level((hf_log_level)99);
	cr_assert_eq(hf_log_get_level(), HF_LOG_DEBUG);
}
