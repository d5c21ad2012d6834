/* hf_file: atomic replace (temp + fsync + rename + directory fsync) and capped reads.
 * On any failure before the rename the temporary is removed and the old file stays as it was.
 * Threading: see hf_file.h.
 */
#include "hf_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_util.h"

struct hf_atomic {
	int fd;
	char path[PATH_MAX];
	char tmp[PATH_MAX];
};

static void dir_of(const char *path, char *dir, size_t dirsz)
{
	char copy[PATH_MAX];
	hf_strlcpy(copy, path, sizeof copy);
	hf_strlcpy(dir, dirname(copy), dirsz);
}

int hf_atomic_begin(const char *path, mode_t mode, hf_atomic **out, hf_errbuf *eb)
{
	hf_atomic *a;

	*out = NULL;
	if (!path || !*path)
		return hf_fail(eb, HF_EINVAL, "empty path");
	if (strlen(path) + 12 >= PATH_MAX)
		return hf_fail(eb, HF_ETOOBIG, "%s: path too long", path);
	a = calloc(1, sizeof *a);
	if (!a)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	hf_strlcpy(a->path, path, sizeof a->path);
	snprintf(a->tmp, sizeof a->tmp, "%s.tmp-XXXXXX", path);
	a->fd = mkostemp(a->tmp, O_CLOEXEC);
	if (a->fd < 0) {
		int e = errno;
		free(a);
		return hf_fail(eb, HF_EIO, "%s: cannot create temporary file: %s", path, strerror(e));
	}
	if (fchmod(a->fd, mode) != 0) {
		int e = errno;
		hf_atomic_abort(a);
		return hf_fail(eb, HF_EIO, "%s: chmod: %s", path, strerror(e));
	}
	*out = a;
	return 0;
}

int hf_atomic_write(hf_atomic *a, const void *data, size_t len, hf_errbuf *eb)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(a->fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return hf_fail(eb, HF_EIO, "%s: write: %s", a->tmp, strerror(errno));
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *path, hf_errbuf *eb)
{
	char dir[PATH_MAX];
	int fd, r = 0;

	dir_of(path, dir, sizeof dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return hf_fail(eb, HF_EIO, "%s: open directory: %s", dir, strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL)
		r = hf_fail(eb, HF_EIO, "%s: fsync directory: %s", dir, strerror(errno));
	close(fd);
	return r;
}

int hf_atomic_commit(hf_atomic *a, hf_errbuf *eb)
{
	int r;

	if (fsync(a->fd) != 0) {
		r = hf_fail(eb, HF_EIO, "%s: fsync: %s", a->tmp, strerror(errno));
		goto abort;
	}
	if (close(a->fd) != 0) {
		a->fd = -1;
		r = hf_fail(eb, HF_EIO, "%s: close: %s", a->tmp, strerror(errno));
		goto abort;
	}
	a->fd = -1;
	if (rename(a->tmp, a->path) != 0) {
		r = hf_fail(eb, HF_EIO, "%s: rename: %s", a->path, strerror(errno));
		goto abort;
	}
	r = fsync_dir(a->path, eb);
	free(a);
	return r;
abort:
	hf_atomic_abort(a);
	return r;
}

void hf_atomic_abort(hf_atomic *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	unlink(a->tmp);
	free(a);
}

int hf_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 hf_errbuf *eb)
{
	hf_atomic *a;
	int r = hf_atomic_begin(path, mode, &a, eb);
	if (r < 0)
		return r;
	r = hf_atomic_write(a, data, len, eb);
	if (r < 0) {
		hf_atomic_abort(a);
		return r;
	}
	return hf_atomic_commit(a, eb);
}

int hf_file_read(const char *path, size_t max, char **data, size_t *len, hf_errbuf *eb)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, r;

	*data = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return hf_fail(eb, HF_ENOTFOUND, "%s: no such file", path);
		return hf_fail(eb, HF_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = hf_fail(eb, HF_EIO, "%s: not a regular file", path);
		goto close_fd;
	}
	if ((uint64_t)st.st_size > max) {
		r = hf_fail(eb, HF_ETOOBIG, "%s: %lld bytes, over the limit of %zu", path,
			    (long long)st.st_size, max);
		goto close_fd;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto close_fd;
	}
	/* The file may grow between fstat and read: read at most its stat size, then check EOF. */
	while (n < (size_t)st.st_size) {
		ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = hf_fail(eb, HF_EIO, "%s: read: %s", path, strerror(errno));
			goto free_buf;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	*data = buf;
	if (len)
		*len = n;
	close(fd);
	return 0;
free_buf:
	free(buf);
close_fd:
	close(fd);
	return r;
}

int hf_mkdir_p(const char *dir, mode_t mode, hf_errbuf *eb)
{
	char buf[PATH_MAX];
	if (!hf_strlcpy(buf, dir, sizeof buf))
		return hf_fail(eb, HF_ETOOBIG, "%s: path too long", dir);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) != 0 && errno != EEXIST)
				return hf_fail(eb, HF_EIO, "%s: mkdir: %s", buf, strerror(errno));
			*p = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return hf_fail(eb, HF_EIO, "%s: not a directory", dir);
	return 0;
}

int hf_atomic_cleanup(const char *path)
{
	char dir[PATH_MAX], copy[PATH_MAX], prefix[NAME_MAX + 8];
	struct dirent *de;
	DIR *d;
	int removed = 0;

	dir_of(path, dir, sizeof dir);
	hf_strlcpy(copy, path, sizeof copy);
	snprintf(prefix, sizeof prefix, "%.*s.tmp-", NAME_MAX, basename(copy));
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strlen(de->d_name) == strlen(prefix) + 6) {
			char full[PATH_MAX];
			snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
			if (unlink(full) == 0)
				removed++;
		}
	}
	closedir(d);
	return removed;
}
