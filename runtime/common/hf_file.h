/* hf_file: crash-safe file replacement and capped file reads.
 *
 * Invariants: a reader of PATH sees either the whole old content or the whole new content, never
 * a mix or an empty file, whatever point a crash or power loss interrupts the writer at. The new
 * content goes to a temporary "PATH.tmp-XXXXXX" in the same directory, is fsync'ed, renamed over
 * PATH, and the directory is fsync'ed so the rename itself is durable.
 * Threading: an hf_atomic belongs to one thread; distinct paths may be written concurrently.
 */
#ifndef HF_FILE_H
#define HF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf_error.h"

typedef struct hf_atomic hf_atomic;

/* Starts replacing path: creates the temporary file with permissions mode. */
int hf_atomic_begin(const char *path, mode_t mode, hf_atomic **out, hf_errbuf *eb);
/* Appends len bytes to the temporary file. */
int hf_atomic_write(hf_atomic *a, const void *data, size_t len, hf_errbuf *eb);
/* fsync, rename over the target, fsync the directory; frees a (also on failure). */
int hf_atomic_commit(hf_atomic *a, hf_errbuf *eb);
/* Removes the temporary file and frees a; the target is untouched. NULL accepted. */
void hf_atomic_abort(hf_atomic *a);

/* The whole sequence for one buffer. */
int hf_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 hf_errbuf *eb);

/* Reads a whole regular file of at most max bytes into a malloc'ed, NUL-terminated buffer.
 * HF_ENOTFOUND if it does not exist, HF_ETOOBIG if larger than max. */
int hf_file_read(const char *path, size_t max, char **data, size_t *len, hf_errbuf *eb);

/* Creates dir and its missing parents with mode (like mkdir -p). */
int hf_mkdir_p(const char *dir, mode_t mode, hf_errbuf *eb);

/* Removes temporaries ("NAME.tmp-XXXXXX") that a crashed writer of path left behind;
 * returns how many were removed. */
int hf_atomic_cleanup(const char *path);

#endif
