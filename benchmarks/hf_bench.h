/* hf_bench: the subcommands of hashflop-bench (argv[0] is the subcommand name). */
#ifndef HF_BENCH_H
#define HF_BENCH_H

#include <stddef.h>

/* The program cache directory when --cache-dir is not given: $HASHFLOP_CACHE_DIR, else
 * $XDG_CACHE_HOME/hashflop, else ~/.cache/hashflop (/tmp/.cache/hashflop without a home).
 * Written into buf; returns buf. */
const char *hf_bench_default_cache_dir(char *buf, size_t size);

int hf_bench_hash_main(int argc, char **argv);
int hf_bench_gemm_main(int argc, char **argv);
/* bench_infer.c: `hashflop-bench infer` (executor vs PyTorch, then the server sections). */
int hf_bench_infer_main(int argc, char **argv);

/* bench_coord.c: `hashflop-bench coord`, the coordinator's scale benchmark (bench_coord_none.c
 * in a build without the coordinator's store). */
int hf_bench_coord_main(int argc, char **argv);

/* bench_infer_server.c: the sections of `hashflop-bench infer` that need a running node: the
 * OIP endpoint over loopback (N concurrent clients, batching on and off) and the mining ->
 * inference switch. It starts its own hashflopd (and hashflop-pool for mining) from bin_dir
 * in a temporary state directory and stops them before returning. */
#include <jansson.h>
typedef struct hf_bench_infer_server_opts {
	const char *bin_dir;     /* where hashflopd and hashflop-pool are */
	const char *model_dir;   /* a model repository */
	const char *model;       /* the model to load and query */
	const char *device;      /* OpenCL selector for the node */
	unsigned clients;        /* concurrent clients of the throughput run (64) */
	double seconds;          /* per measurement */
	unsigned switches;       /* mining -> inference switches measured */
} hf_bench_infer_server_opts;
/* Adds "http" and "switch" objects to report and prints its tables to stdout. */
int hf_bench_infer_server(const hf_bench_infer_server_opts *o, json_t *report);

#endif
