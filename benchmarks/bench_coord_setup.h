/* bench_coord_setup: the state directory, keys, trust file, coord.json and registered nodes of
 * `hashflop-bench coord`, the coordinator process it starts, and /proc samples of it.
 * Threading: the caller's thread only.
 */
#ifndef BENCH_COORD_SETUP_H
#define BENCH_COORD_SETUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf_instr.h"

#define BC_PATH_MAX 3072

typedef struct bc_setup_opts {
	const char *dir;           /* NULL: a new temporary directory */
	bool keep;                 /* keep the temporary directory */
	const char *fleet_id;
	unsigned nodes;
	unsigned report_interval_s;
	unsigned max_connections;  /* limits.max_connections */
	unsigned threads;          /* limits.threads */
} bc_setup_opts;

typedef struct bc_setup {
	char dir[BC_PATH_MAX], config[BC_PATH_MAX + 32], port_file[BC_PATH_MAX + 32];
	char log[BC_PATH_MAX + 32];
	bool keep;
	hf_key *coord_key, *ops[2];
	char admin_token[65];
	unsigned nodes;
	char (*ids)[16];
	char (*tokens)[65];
	double register_s, start_s;
	pid_t pid;
	uint16_t port;
} bc_setup;

typedef struct bc_proc {
	double cpu_s, user_s;      /* utime + stime, utime (all threads) */
	uint64_t rss_kib;
	unsigned threads;
} bc_proc;

/* Makes the directory (o->dir or a temporary one) with coordinator.pem, operator-1.pem,
 * operator-2.pem, trust.json (fleet threshold 2), admin.token, coord.json, db/coord.db with
 * o->nodes registered nodes, and nodes.tsv (id TAB token per line). */
int bc_setup_prepare(bc_setup *s, const bc_setup_opts *o, char *err, size_t esz);
/* Reads a directory bc_setup_prepare made (its first `nodes` nodes, the admin token, the
 * operator keys), for a coordinator already running on it. */
int bc_setup_load(bc_setup *s, const char *dir, unsigned nodes, char *err, size_t esz);
/* Starts bin --config coord.json (on CPU cpu when >= 0) and waits for its port file. */
int bc_setup_start(bc_setup *s, const char *bin, int cpu, uint64_t timeout_ms, char *err,
		   size_t esz);
/* SIGTERM, SIGKILL after timeout_ms; 0 when it exited with status 0 (or none was running). */
int bc_setup_stop(bc_setup *s, uint64_t timeout_ms);
/* Stops the coordinator, removes the temporary directory (when remove_dir and not kept). */
void bc_setup_free(bc_setup *s, bool remove_dir);

/* CPU time and VmRSS of a process; false when it is gone. */
bool bc_proc_sample(pid_t pid, bc_proc *out);

#endif
