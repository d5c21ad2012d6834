/* bench_all: `hashflop-bench all`: hash, gemm and infer in one run with one power source, each
 * as its subcommand would measure it (references side by side: the portable SHA-256d
 * reference; OpenBLAS and CLBlast; PyTorch), into one run document with a section each.
 *
 * Invariants: the power source is opened once, before the first section, and every window of
 * every section is a difference of its readings; gemm's first-call latency is left out (it
 * needs forked children of a process that has not touched OpenCL yet, and the meter's PCI
 * look-up has); infer's server sections are left out (they start a node: `infer` does them).
 * Threading: the sections run one after another on the caller's thread.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_energy.h"
#include "hf_bench.h"
#include "hf_util.h"

#ifndef HF_BENCH_SOURCE_ROOT
#define HF_BENCH_SOURCE_ROOT "."
#endif

typedef struct aopts {
	hf_bench_common c;
	const char *device, *hash_device, *model, *shapes, *batches, *threads, *cache_dir;
	char seconds[32], warmup[32], model_buf[PATH_MAX];
	bool hash, gemm, infer, torch, clblast, unfused;
} aopts;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench all [options]\n"
		"Runs hash, gemm and infer in one run, with one power source and its references\n"
		"side by side (SHA-256d reference; OpenBLAS and CLBlast; PyTorch), into one run\n"
		"document (--json FILE) that `hashflop-bench report` turns into tables and plots.\n"
		"About 70 s on a shared 2-core machine with the defaults.\n\n"
		"Options:\n"
		"  -s, --seconds S      each measured window (default 1), after --warmup S\n"
		"                       (default 0.25) not counted\n"
		"      --json FILE      the run document\n"
		"  -d, --device SEL     OpenCL device of gemm and infer (default auto)\n"
		"      --hash-device SEL  hash also runs its OpenCL kernel on SEL\n"
		"      --threads N      hash worker threads (default 1)\n"
		"      --shapes LIST    gemm shapes MxKxN,... (default gemm's quick shapes)\n"
		"      --batches LIST   infer batch sizes (default 1,32)\n"
		"      --model PATH     infer model (default runtime/infer/models/fashion-mnist of the\n"
		"                       source tree, $HF_SOURCE_ROOT when set)\n"
		"      --no-hash, --no-gemm, --no-infer   leave a section out\n"
		"      --no-torch       infer without PyTorch;  --no-clblast  gemm without CLBlast\n"
		"      --no-unfused     infer without its one-kernel-per-op comparison\n"
		"      --cache-dir DIR  gemm's and infer's program cache (default theirs)\n"
		"  -h, --help           show this help and exit\n%s\n"
		"Not run: cpuminer-opt (not ours to run: compare with its own benchmark), gemm's\n"
		"first-call latency and infer's server sections (run those subcommands for them).\n",
		hf_bench_common_help);
}

static int parse(int argc, char **argv, aopts *o)
{
	enum { O_JSON = 256, O_SECONDS, O_THREADS, O_SHAPES, O_BATCHES, O_MODEL, O_NOHASH,
	       O_NOGEMM, O_NOINFER, O_NOTORCH, O_NOCLB, O_CACHE, O_HASHDEV, O_NOUNFUSED };
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' }, { "json", required_argument, NULL, O_JSON },
		{ "device", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "shapes", required_argument, NULL, O_SHAPES },
		{ "batches", required_argument, NULL, O_BATCHES },
		{ "model", required_argument, NULL, O_MODEL },
		{ "no-hash", no_argument, NULL, O_NOHASH }, { "no-gemm", no_argument, NULL, O_NOGEMM },
		{ "no-infer", no_argument, NULL, O_NOINFER },
		{ "no-torch", no_argument, NULL, O_NOTORCH },
		{ "no-clblast", no_argument, NULL, O_NOCLB },
		{ "cache-dir", required_argument, NULL, O_CACHE },
		{ "hash-device", required_argument, NULL, O_HASHDEV },
		{ "no-unfused", no_argument, NULL, O_NOUNFUSED },
		{ "help", no_argument, NULL, 'h' }, HF_BENCH_COMMON_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	bool bad = false;
	int ch;
	*o = (aopts){ .hash = true, .gemm = true, .infer = true, .torch = true, .clblast = true,
		      .unfused = true, .batches = "1,32" };
	hf_bench_common_init(&o->c);
	o->c.seconds = 1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:h", lo, NULL)) != -1) {
		if (ch != O_JSON && hf_bench_common_option("all", ch, optarg, &o->c, &bad)) {
			if (bad)
				return 2;
			continue;
		}
		switch (ch) {
		case 's':
			if (!hf_bench_parse_seconds("all", "--seconds", optarg, &o->c.seconds))
				return 2;
			break;
		case O_JSON: o->c.json_file = optarg; break;
		case 'd': o->device = optarg; break;
		case O_THREADS: o->threads = optarg; break;
		case O_SHAPES: o->shapes = optarg; break;
		case O_BATCHES: o->batches = optarg; break;
		case O_MODEL: o->model = optarg; break;
		case O_NOHASH: o->hash = false; break;
		case O_NOGEMM: o->gemm = false; break;
		case O_NOINFER: o->infer = false; break;
		case O_NOTORCH: o->torch = false; break;
		case O_NOCLB: o->clblast = false; break;
		case O_CACHE: o->cache_dir = optarg; break;
		case O_HASHDEV: o->hash_device = optarg; break;
		case O_NOUNFUSED: o->unfused = false; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-bench all: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (o->c.warmup < 0)
		o->c.warmup = 0.25;
	snprintf(o->seconds, sizeof o->seconds, "%g", o->c.seconds);
	snprintf(o->warmup, sizeof o->warmup, "%g", o->c.warmup);
	if (!o->model) {
		const char *root = getenv("HF_SOURCE_ROOT");
		snprintf(o->model_buf, sizeof o->model_buf, "%s/runtime/infer/models/fashion-mnist",
			 root && *root ? root : HF_BENCH_SOURCE_ROOT);
		o->model = o->model_buf;
	}
	return 0;
}

/* Appends to a subcommand's argv (up to 31 entries). */
static void arg(char **v, int *n, const char *a)
{
	if (*n < 31)
		v[(*n)++] = (char *)a;
	v[*n] = NULL;
}

/* Runs one section: its subcommand's own options, the run's meter and power limits. */
static int section(const aopts *o, const char *name, hf_bench_meter *m, json_t *sections)
{
	char *v[32];
	int n = 0;
	arg(v, &n, name);
	arg(v, &n, "--seconds");
	arg(v, &n, o->seconds);
	arg(v, &n, "--warmup");
	arg(v, &n, o->warmup);
	bool hash = strcmp(name, "hash") == 0;
	if (hash ? o->hash_device != NULL : o->device != NULL) {
		arg(v, &n, hash ? "--device" : "-d");
		arg(v, &n, hash ? o->hash_device : o->device);
	}
	if (o->cache_dir && strcmp(name, "hash") != 0) {
		arg(v, &n, "--cache-dir");
		arg(v, &n, o->cache_dir);
	}
	fputs("\n===== ", stdout); /* (printf: a false format-overflow under -fsanitize) */
	fputs(name, stdout);
	fputs(" =====\n", stdout);
	fflush(stdout);
	if (strcmp(name, "hash") == 0) {
		if (o->threads) {
			arg(v, &n, "--threads");
			arg(v, &n, o->threads);
		}
		return hf_bench_hash_run(n, v, m, &o->c, sections);
	}
	if (strcmp(name, "gemm") == 0) {
		arg(v, &n, "--no-first-call");
		arg(v, &n, "--reps");
		arg(v, &n, "3");
		arg(v, &n, "--budget");
		arg(v, &n, "1");
		if (o->shapes) {
			arg(v, &n, "--shapes");
			arg(v, &n, o->shapes);
		}
		if (!o->clblast)
			arg(v, &n, "--no-clblast");
		return hf_bench_gemm_run(n, v, m, &o->c, sections);
	}
	arg(v, &n, "--model");
	arg(v, &n, o->model);
	arg(v, &n, "--batches");
	arg(v, &n, o->batches);
	arg(v, &n, "--no-server");
	if (!o->torch)
		arg(v, &n, "--no-torch");
	if (!o->unfused)
		arg(v, &n, "--no-unfused");
	return hf_bench_infer_run(n, v, m, &o->c, sections);
}

int hf_bench_all_main(int argc, char **argv)
{
	aopts o;
	int r = parse(argc, argv, &o);
	if (r)
		return r == 1 ? 0 : r;
	if (o.gemm)
		hf_bench_gemm_pick_openblas(argv - 1); /* argv[-1]: the program name */
	char pci[32] = "";
	if ((o.gemm || o.infer || o.hash_device) &&
	    (o.c.power_kind == HF_POWER_AUTO || o.c.power_kind == HF_POWER_NVML))
		hf_bench_cl_pci_bus_id(o.device ? o.device : o.hash_device, pci, sizeof pci);
	hf_bench_meter *m = hf_bench_meter_open("all", &o.c, pci, stdout);
	if (!m)
		return o.c.nlimits ? 2 : 1;
	printf("all: %s s windows after %s s of warm-up; power %s%s\n", o.seconds, o.warmup,
	       hf_bench_meter_label(m), hf_bench_meter_estimated(m) ?
	       " (every W, J and per-joule figure below is an estimate)" : "");
	printf("cpuminer-opt is not run (not ours to run): compare with its own benchmark.\n");
	json_t *sections = json_object();
	int failed = 0;
	const char *names[] = { "hash", "gemm", "infer" };
	bool want[] = { o.hash, o.gemm, o.infer };
	for (size_t i = 0; i < HF_ARRAY_SIZE(names); i++) {
		if (!want[i])
			continue;
		int rc = section(&o, names[i], m, sections);
		if (rc) {
			fprintf(stderr, "hashflop-bench all: section %s failed (status %d)\n",
				names[i], rc);
			failed = 1;
		}
	}
	json_t *doc = hf_bench_meter_document(m, "all", sections);
	json_object_set_new(doc, "not_run", json_string("cpuminer-opt (not ours to run); gemm "
						       "first-call latency; infer server sections"));
	if (hf_bench_write_document("all", &o.c, doc))
		failed = 1;
	json_decref(doc);
	hf_bench_meter_free(m);
	return failed;
}
