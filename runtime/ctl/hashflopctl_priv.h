/* hashflopctl_priv: what the parts of hashflopctl share (hashflopctl.c: keys, trust, signing,
 * pushing, node status, devices; hashflopctl_coord.c: a coordinator's fleet and decisions).
 * Not a library: the program's own helpers, with its exit-status conventions (0 success, 1
 * failure or refusal, 2 usage error).
 * Threading: single-threaded.
 */
#ifndef HASHFLOPCTL_PRIV_H
#define HASHFLOPCTL_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAX_INPUT (1u << 20) /* envelope and JSON files read (the verifier caps envelopes) */

/* "hashflopctl CMD: message" on stderr; returns 1. */
int hf_ctl_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "hashflopctl CMD: what (see hashflopctl CMD --help)" on stderr; returns 2. */
int hf_ctl_usage_error(const char *cmd, const char *what);
/* After getopt_long returned c ('h' or a bad option): prints the usage; 0 for 'h', else 2. */
int hf_ctl_help_or_bad(const char *cmd, int c);
/* "90", "500ms", "30s", "10m", "2h", "1d" -> milliseconds (plain numbers are seconds). */
bool hf_ctl_parse_duration(const char *s, uint64_t *ms);
/* Reads a file ("-": stdin) of at most CTL_MAX_INPUT bytes into *data (NUL-terminated). */
int hf_ctl_read_input(const char *cmd, const char *path, char **data, size_t *len);
/* One request to BASE+path, with `Authorization: Bearer bearer` unless bearer is NULL. The
 * answer is printed, or handed over in *answer (free it) when answer is not NULL. 0 on 2xx. */
int hf_ctl_http_call_auth(const char *cmd, const char *base, const char *path, const char *post,
			  size_t postlen, const char *ca_file, const char *bearer, char **answer);

/* hashflopctl_coord.c */
int hf_ctl_cmd_fleet(int argc, char **argv);
int hf_ctl_cmd_decisions(int argc, char **argv);

#endif
