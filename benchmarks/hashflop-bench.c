/* hashflop-bench: benchmarks of the kernels a node runs (hash/s, FLOP/s), always side by side
 * with the reference they compete with, in one run, as a ratio. Energy (H/J, FLOP/J) is not
 * measured yet: see benchmarks/README.md, kernels/sha256d/README.md and kernels/gemm/README.md.
 * Subcommands live in bench_<name>.c, one per kernel family.
 * Threading: each subcommand owns its threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_bench.h"
#include "hf_cl_env.h"
#include "hf_util.h"
#include "hf_version.h"

typedef struct subcommand {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
	{ "hash", "SHA-256d scanners (reference, SHA-NI, AVX2, AVX-512, OpenCL): MH/s",
	  hf_bench_hash_main },
	{ "gemm", "OpenCL SGEMM vs OpenBLAS and CLBlast: GFLOP/s", hf_bench_gemm_main },
	{ "infer", "a model on the OpenCL executor vs PyTorch, then the OIP server: samples/s, "
		   "latency", hf_bench_infer_main },
	{ "coord", "N simulated nodes vs a real hashflop-coord: fan-out p50/p99, RSS/node, "
		   "CPU/report", hf_bench_coord_main },
};

const char *hf_bench_default_cache_dir(char *buf, size_t size)
{
	const char *e = getenv("HASHFLOP_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (e && *e)
		snprintf(buf, size, "%s", e);
	else if (x && *x)
		snprintf(buf, size, "%s/hashflop", x);
	else
		snprintf(buf, size, "%s/.cache/hashflop", home && *home ? home : "/tmp");
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: hashflop-bench COMMAND [options]\n\nCommands:\n");
	for (size_t i = 0; i < HF_ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-6s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\n`hashflop-bench COMMAND --help` describes each command's options.\n"
		   "  -h, --help     show this help and exit\n"
		   "  -V, --version  show the version and exit\n");
}

int main(int argc, char **argv)
{
	hf_cl_env_init(NULL, NULL); /* before any thread: what PoCL reads */
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("hashflop-bench %s\n", HF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < HF_ARRAY_SIZE(subcommands); i++)
		if (strcmp(argv[1], subcommands[i].name) == 0)
			return subcommands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "hashflop-bench: unknown command \"%s\" (see --help)\n", argv[1]);
	return 2;
}
