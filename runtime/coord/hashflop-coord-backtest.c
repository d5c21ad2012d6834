/* hashflop-coord backtest: replays a market series against a described fleet (the profit.json
 * format) and prints the policy, every static mode and the hindsight optimum side by side.
 *
 * Invariants: nothing is printed on stdout unless both files were read and the backtest ran;
 * every input error names the file and the field and exits 2.
 * Threading: main's thread.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hashflop_coord_cmd.h"
#include "hf_config.h"
#include "hf_coord_backtest.h"
#include "hf_coord_policy.h"
#include "hf_coord_series.h"
#include "hf_error.h"

#define FLEET_MAX_BYTES (16u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-coord backtest --series FILE.csv --fleet FLEET.json [--json]\n"
		"\n"
		"Replays a market series against a described fleet and prints, side by side, the\n"
		"policy (hf_coord_policy evaluated at every row, as the coordinator runs it), every\n"
		"static mode and the hindsight optimum (a dynamic programme over the whole series\n"
		"with the same margins, switching costs and dwell rule): margin captured, share of\n"
		"the optimum, switches per node-hour, time lost switching, node-hours per mode, and\n"
		"where the policy loses (by rule, the largest stretches).\n"
		"\n"
		"Options:\n"
		"  -s, --series FILE   the series CSV (time,btc_usd,difficulty,fees_btc,height,\n"
		"                      power_usd_kwh,inference_price,inference_demand), evenly spaced\n"
		"  -f, --fleet FILE    the fleet: the profit.json format; its \"policy\", \"classes\",\n"
		"                      \"nodes\" (each an \"id\" with an optional \"count\": ID-1..ID-N;\n"
		"                      globs are refused), \"default_class\" and \"initial_mode\"\n"
		"                      (\"mining\" if absent) are read, other keys ignored\n"
		"      --json          print the result as one JSON object\n"
		"  -h, --help          show this help and exit\n"
		"\n"
		"Exit status: 0 when the backtest ran (whether or not the policy meets the bar),\n"
		"1 on a runtime failure, 2 on a usage error or a file that is refused.\n");
}

/* The fleet file: the spec and initial_mode. 0, or 2 with the error printed. */
static int load_fleet(const char *path, hf_coord_fleet_spec *fleet, hf_coord_bt_opts *o)
{
	hf_errbuf eb;
	json_t *root = NULL, *im;
	int rc;

	hf_errbuf_clear(&eb);
	if ((rc = hf_cfg_load_file(path, FLEET_MAX_BYTES, &root, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord backtest: %s: %s\n", path,
			eb.msg[0] ? eb.msg : hf_strerror(rc));
		return 2;
	}
	if ((rc = hf_coord_fleet_spec_parse(root, fleet, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord backtest: %s: %s\n", path,
			eb.msg[0] ? eb.msg : hf_strerror(rc));
		json_decref(root);
		return 2;
	}
	o->initial_mode = HF_COORD_MINING;
	im = json_object_get(root, "initial_mode");
	if (im && (!json_is_string(im) ||
		   hf_coord_mode_parse(json_string_value(im), &o->initial_mode) < 0)) {
		fprintf(stderr, "hashflop-coord backtest: %s: initial_mode: expected \"idle\", "
			"\"mining\" or \"inference\"\n", path);
		hf_coord_fleet_spec_clear(fleet);
		json_decref(root);
		return 2;
	}
	json_decref(root);
	return 0;
}

static int print_json(const hf_coord_bt_result *r)
{
	json_t *j = hf_coord_backtest_json(r);
	int rc = 1;

	if (j && json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) == 0) {
		fputc('\n', stdout);
		rc = 0;
	}
	json_decref(j);
	if (rc)
		fprintf(stderr, "hashflop-coord backtest: cannot write the JSON result\n");
	return rc;
}

int hf_coord_cmd_backtest(int argc, char **argv)
{
	static const struct option opts[] = {
		{"series", required_argument, NULL, 's'},
		{"fleet", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *series_path = NULL, *fleet_path = NULL;
	bool as_json = false;
	hf_coord_fleet_spec fleet;
	hf_coord_series s = {0};
	hf_coord_bt_opts o = {.initial_mode = HF_COORD_MINING};
	hf_coord_bt_result *res = NULL;
	hf_errbuf eb;
	int c, rc;

	memset(&fleet, 0, sizeof(fleet));
	optind = 0;
	while ((c = getopt_long(argc, argv, "+s:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': series_path = optarg; break;
		case 'f': fleet_path = optarg; break;
		case 'j': as_json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-coord backtest: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (!series_path || !fleet_path) {
		fprintf(stderr, "hashflop-coord backtest: --series and --fleet are required (see "
			"--help)\n");
		return 2;
	}
	hf_errbuf_clear(&eb);
	if ((rc = hf_coord_series_load(series_path, &s, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord backtest: %s\n", eb.msg[0] ? eb.msg : hf_strerror(rc));
		return 2;
	}
	if ((rc = load_fleet(fleet_path, &fleet, &o)) != 0)
		goto out_series;
	res = calloc(1, sizeof(*res));
	if (!res) {
		fprintf(stderr, "hashflop-coord backtest: out of memory\n");
		rc = 1;
		goto out_fleet;
	}
	if ((rc = hf_coord_backtest_run(&fleet, &o, &s, res, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord backtest: %s (series %s, fleet %s)\n",
			eb.msg[0] ? eb.msg : hf_strerror(rc), series_path, fleet_path);
		rc = rc == HF_EINVAL || rc == HF_ETOOBIG ? 2 : 1;
		goto out_res;
	}
	if (as_json) {
		rc = print_json(res);
	} else {
		hf_coord_backtest_print(stdout, res);
		rc = fflush(stdout) == 0 ? 0 : 1;
	}
out_res:
	free(res);
out_fleet:
	hf_coord_fleet_spec_clear(&fleet);
out_series:
	hf_coord_series_clear(&s);
	return rc;
}
