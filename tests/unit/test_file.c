/* Unit tests for hf_file: atomic replace (including a real crash between write and rename),
 * capped reads, mkdir -p, temporary cleanup. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_file.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/hf_file_test_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static char *slurp(const char *path)
{
	char *d = NULL;
	size_t n;
	cr_assert_eq(hf_file_read(path, 1 << 20, &d, &n, NULL), 0, "cannot read %s", path);
	return d;
}

static int count_tmp(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "ls %s | grep -c '^%s\\.tmp-' > %s/count", dir, name, dir);
	(void)system(cmd);
	snprintf(cmd, sizeof cmd, "%s/count", dir);
	char *c = slurp(cmd);
	int n = atoi(c);
	free(c);
	unlink(cmd);
	return n;
}

TestSuite(file, .init = setup, .fini = teardown);

Test(file, write_atomic_creates_and_replaces)
{
	char path[128];
	hf_errbuf eb;
	struct stat st;
	snprintf(path, sizeof path, "%s/state.json", dir);
	cr_assert_eq(hf_file_write_atomic(path, "one", 3, 0600, &eb), 0, "%s", eb.msg);
	char *d = slurp(path);
	cr_assert_str_eq(d, "one");
	free(d);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(hf_file_write_atomic(path, "second", 6, 0644, &eb), 0);
	d = slurp(path);
	cr_assert_str_eq(d, "second");
	free(d);
	cr_assert_eq(count_tmp("state.json"), 0);
}

Test(file, crash_between_write_and_rename_leaves_old_file_intact)
{
	char path[128];
	int status;
	snprintf(path, sizeof path, "%s/state.json", dir);
	cr_assert_eq(hf_file_write_atomic(path, "old content", 11, 0600, NULL), 0);

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		hf_atomic *a;
		if (hf_atomic_begin(path, 0600, &a, NULL) != 0)
			_exit(3);
		if (hf_atomic_write(a, "new content that never lands", 28, NULL) != 0)
			_exit(4);
		/* The process dies here, after the write and before the rename. */
		raise(SIGKILL);
		_exit(5);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);

	char *d = slurp(path);
	cr_assert_str_eq(d, "old content");
	free(d);
	cr_assert_eq(count_tmp("state.json"), 1, "the crashed writer's temporary should be there");
	cr_assert_eq(hf_atomic_cleanup(path), 1);
	cr_assert_eq(count_tmp("state.json"), 0);
	d = slurp(path);
	cr_assert_str_eq(d, "old content");
	free(d);
}

Test(file, abort_keeps_the_target)
{
	char path[128];
	hf_atomic *a;
	snprintf(path, sizeof path, "%s/x", dir);
	cr_assert_eq(hf_file_write_atomic(path, "keep", 4, 0600, NULL), 0);
	cr_assert_eq(hf_atomic_begin(path, 0600, &a, NULL), 0);
	cr_assert_eq(hf_atomic_write(a, "drop", 4, NULL), 0);
	hf_atomic_abort(a);
	hf_atomic_abort(NULL);
	char *d = slurp(path);
	cr_assert_str_eq(d, "keep");
	free(d);
	cr_assert_eq(count_tmp("x"), 0);
}

Test(file, write_into_missing_directory_fails_cleanly)
{
	char path[128];
	hf_errbuf eb;
	snprintf(path, sizeof path, "%s/missing/x", dir);
	cr_assert_eq(hf_file_write_atomic(path, "a", 1, 0600, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "cannot create temporary file"), "%s", eb.msg);
}

Test(file, read_caps_and_errors)
{
	char path[128];
	char *d;
	size_t n;
	hf_errbuf eb;
	snprintf(path, sizeof path, "%s/big", dir);
	cr_assert_eq(hf_file_write_atomic(path, "0123456789", 10, 0600, NULL), 0);
	cr_assert_eq(hf_file_read(path, 9, &d, &n, &eb), HF_ETOOBIG);
	cr_assert_null(d);
	cr_assert(strstr(eb.msg, "10 bytes, over the limit of 9"), "%s", eb.msg);
	cr_assert_eq(hf_file_read(path, 10, &d, &n, &eb), 0);
	cr_assert_eq(n, 10);
	cr_assert_str_eq(d, "0123456789");
	free(d);
	snprintf(path, sizeof path, "%s/none", dir);
	cr_assert_eq(hf_file_read(path, 10, &d, &n, &eb), HF_ENOTFOUND);
	cr_assert_eq(hf_file_read(dir, 10, &d, &n, &eb), HF_EIO);
	cr_assert(strstr(eb.msg, "not a regular file"));
}

Test(file, mkdir_p_creates_parents_and_refuses_files)
{
	char path[128];
	struct stat st;
	hf_errbuf eb;
	snprintf(path, sizeof path, "%s/a/b/c", dir);
	cr_assert_eq(hf_mkdir_p(path, 0700, &eb), 0, "%s", eb.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(hf_mkdir_p(path, 0700, &eb), 0, "existing directories are fine");
	snprintf(path, sizeof path, "%s/f", dir);
	cr_assert_eq(hf_file_write_atomic(path, "x", 1, 0600, NULL), 0);
	cr_assert_eq(hf_mkdir_p(path, 0700, &eb), HF_EIO);
}
