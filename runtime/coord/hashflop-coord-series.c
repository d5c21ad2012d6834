/* hashflop-coord series-gen: writes a synthetic market series (hf_coord_series_generate) as a
 * series CSV, with a comment header that records every option it was made with, so the file
 * says how to make it again.
 * Invariants: --out FILE is replaced atomically (hf_file_write_atomic): a reader sees the old
 * file or the whole new one. Bad usage or a bad value exits 2 naming the option; nothing is
 * written then.
 * Threading: main's thread.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashflop_coord_cmd.h"
#include "hf_coord_series.h"
#include "hf_file.h"
#include "hf_util.h"
#include "hf_version.h"

#define MAX_LIST 4096  /* entries in --btc-daily, --fees-daily, --epochs, --anchors */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-coord series-gen [OPTIONS] [--out FILE.csv]\n"
		"\n"
		"Writes a synthetic market series (time,btc_usd,difficulty,fees_btc,height,\n"
		"power_usd_kwh,inference_price,inference_demand) for the backtest and the feed\n"
		"server. Deterministic: the same options give the same bytes. Defaults: late 2025.\n"
		"\n"
		"Options (defaults in brackets):\n"
		"  --start TIME              first row, RFC 3339 UTC or Unix seconds [2025-11-01T00:00:00Z]\n"
		"  --days N                  length in days, 1..3650 [14]\n"
		"  --step S                  seconds between rows, 1..86400 [300]\n"
		"  --seed N                  the random stream's seed (uint64) [1]\n"
		"  --btc-usd X               starting BTC price, USD [110000]\n"
		"  --btc-vol X               daily volatility of the price (GBM), 0..1 [0.03]\n"
		"  --difficulty X            starting network difficulty [1.56e14]\n"
		"  --height N                starting block height [921400]\n"
		"  --fees-btc X              mean fees per block, BTC [0.025]\n"
		"  --power X                 base power price, USD/kWh (diurnal shape, noise) [0.035]\n"
		"  --spike-per-day X         curtailment spikes a day on average, 0..100 [0.5]\n"
		"  --spike-usd-kwh X         spike level: 1/4 to 2.5 times this, 15-90 min [2]\n"
		"  --inference-price X       inference price (the fleet's unit) [0.00014]\n"
		"  --inference-price-vol X   relative s.d. of a slow price drift, 0: constant [0]\n"
		"  --demand-base X           mean inference demand (the fleet's unit) [20000]\n"
		"  --demand-amplitude X      its diurnal swing (peak 14:00 local) [12000]\n"
		"  --weekend-factor X        demand on local Saturdays and Sundays, times [0.75]\n"
		"  --utc-offset-min N        the site's local time for the shapes, minutes [-360]\n"
		"  --block-interval S        mean block interval at the start, seconds [600]\n"
		"  --hashrate-growth X       network hashrate drift, log per day [0.001]\n"
		"  --btc-daily P,P,...       follow these prices at start + 0, 1, 2 ... days (daily\n"
		"                            closes; log-linear with a Brownian bridge between)\n"
		"  --fees-daily F,F,...      mean fees per block for day 0, 1, 2 ... (BTC)\n"
		"  --epochs H:D,H:D,...      difficulty D from height H on (instead of retargets)\n"
		"  --anchors TIME=H,...      height H is the tip from TIME (blocks between anchors:\n"
		"                            a Poisson process conditioned on them)\n"
		"  --comment TEXT            a provenance line for the header (repeatable)\n"
		"  --out FILE                write FILE atomically (default: standard output)\n"
		"  -h, --help                show this help and exit\n"
		"\n"
		"Exit status: 0 written, 1 a write failed, 2 a usage or value error.\n");
}

enum {
	O_START = 256, O_DAYS, O_STEP, O_SEED, O_BTC, O_VOL, O_DIFF, O_HEIGHT, O_FEES, O_POWER,
	O_SPIKES, O_SPIKE_USD, O_PRICE, O_PRICE_VOL, O_DBASE, O_DAMP, O_WEEKEND, O_UTC, O_INTERVAL,
	O_GROWTH, O_BTC_DAILY, O_FEES_DAILY, O_EPOCHS, O_ANCHORS, O_COMMENT, O_OUT,
};

typedef struct gen_opts {
	hf_coord_series_gen g;
	double btc_daily[MAX_LIST], fees_daily[MAX_LIST];
	hf_coord_series_epoch epochs[MAX_LIST];
	hf_coord_series_anchor anchors[MAX_LIST];
	char *comments;        /* "\n"-joined --comment lines (malloc'ed) */
	const char *out;
} gen_opts;

static int bad(const char *opt, const char *val, const char *what)
{
	fprintf(stderr, "hashflop-coord series-gen: --%s \"%s\": expected %s\n", opt, val, what);
	return 2;
}

static bool to_double(const char *s, double *v)
{
	char *end;
	if (!*s)
		return false;
	*v = strtod(s, &end);
	return *end == '\0' && isfinite(*v);
}

static bool to_u64(const char *s, uint64_t max, uint64_t *v)
{
	return hf_parse_u64(s, 0, max, v);
}

/* "A,B,C" into v (at most MAX_LIST). */
static bool to_list(const char *s, double *v, size_t *n)
{
	char *copy = strdup(s), *save = NULL, *tok;
	bool ok = copy != NULL;

	*n = 0;
	for (tok = ok ? strtok_r(copy, ",", &save) : NULL; tok && ok;
	     tok = strtok_r(NULL, ",", &save))
		ok = *n < MAX_LIST && to_double(tok, &v[(*n)++]) && v[*n - 1] >= 0;
	free(copy);
	return ok && *n > 0;
}

/* "H:D,..." or "TIME=H,...". */
static bool to_pairs(const char *s, gen_opts *o, bool anchors, size_t *n)
{
	char *copy = strdup(s), *save = NULL, *tok;
	bool ok = copy != NULL;

	*n = 0;
	for (tok = ok ? strtok_r(copy, ",", &save) : NULL; tok && ok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *sep = strchr(tok, anchors ? '=' : ':');
		if (!sep || *n >= MAX_LIST) {
			ok = false;
			break;
		}
		*sep = '\0';
		if (anchors)
			ok = hf_coord_series_parse_time(tok, &o->anchors[*n].t_ms) &&
			     to_u64(sep + 1, UINT64_MAX, &o->anchors[*n].height);
		else
			ok = to_u64(tok, UINT64_MAX, &o->epochs[*n].height) &&
			     to_double(sep + 1, &o->epochs[*n].difficulty);
		(*n)++;
	}
	free(copy);
	return ok && *n > 0;
}

static int add_comment(gen_opts *o, const char *text)
{
	size_t old = o->comments ? strlen(o->comments) : 0;
	char *c = realloc(o->comments, old + strlen(text) + 2);

	if (!c) {
		fprintf(stderr, "hashflop-coord series-gen: out of memory\n");
		return 1;
	}
	if (old)
		c[old++] = '\n';
	strcpy(c + old, text);
	o->comments = c;
	return 0;
}

/* One number option into the generator field it names. */
static int set_number(gen_opts *o, int c, const char *name, const char *v)
{
	static const struct { int opt; size_t off; } nums[] = {
		{ O_BTC, offsetof(hf_coord_series_gen, btc_usd) },
		{ O_VOL, offsetof(hf_coord_series_gen, btc_vol_daily) },
		{ O_DIFF, offsetof(hf_coord_series_gen, difficulty) },
		{ O_FEES, offsetof(hf_coord_series_gen, fees_btc) },
		{ O_POWER, offsetof(hf_coord_series_gen, power_usd_kwh) },
		{ O_SPIKES, offsetof(hf_coord_series_gen, spike_per_day) },
		{ O_SPIKE_USD, offsetof(hf_coord_series_gen, spike_usd_kwh) },
		{ O_PRICE, offsetof(hf_coord_series_gen, inference_price) },
		{ O_PRICE_VOL, offsetof(hf_coord_series_gen, inference_price_vol) },
		{ O_DBASE, offsetof(hf_coord_series_gen, demand_base) },
		{ O_DAMP, offsetof(hf_coord_series_gen, demand_amplitude) },
		{ O_WEEKEND, offsetof(hf_coord_series_gen, weekend_factor) },
		{ O_INTERVAL, offsetof(hf_coord_series_gen, block_interval_s) },
		{ O_GROWTH, offsetof(hf_coord_series_gen, hashrate_growth_daily) },
	};
	double d;

	for (size_t i = 0; i < HF_ARRAY_SIZE(nums); i++) {
		if (nums[i].opt != c)
			continue;
		if (!to_double(v, &d))
			return bad(name, v, "a finite number");
		memcpy((char *)&o->g + nums[i].off, &d, sizeof d);
		return 0;
	}
	return -1;
}

static int set_other(gen_opts *o, int c, const char *name, const char *v)
{
	uint64_t u;
	hf_coord_series_gen *g = &o->g;

	switch (c) {
	case O_START:
		return hf_coord_series_parse_time(v, &g->start_ms) ? 0 :
		       bad(name, v, "RFC 3339 UTC (2024-04-13T00:00:00Z) or Unix seconds");
	case O_DAYS:
		if (!to_u64(v, 3650, &u) || u == 0)
			return bad(name, v, "a whole number of days, 1..3650");
		g->days = (unsigned)u;
		return 0;
	case O_STEP:
		if (!to_u64(v, 86400, &u) || u == 0)
			return bad(name, v, "whole seconds, 1..86400");
		g->step_s = (unsigned)u;
		return 0;
	case O_SEED:
		return to_u64(v, UINT64_MAX, &g->seed) ? 0 : bad(name, v, "an unsigned 64-bit integer");
	case O_HEIGHT:
		return to_u64(v, UINT64_MAX, &g->height) ? 0 : bad(name, v, "a block height");
	case O_UTC: {
		double d;
		if (!to_double(v, &d) || d != floor(d) || d < -840 || d > 840)
			return bad(name, v, "whole minutes, -840..840");
		g->utc_offset_min = (int)d;
		return 0;
	}
	case O_BTC_DAILY:
		g->btc_daily = o->btc_daily;
		return to_list(v, o->btc_daily, &g->btc_daily_n) ? 0 :
		       bad(name, v, "comma-separated prices >= 0 (at most 4096)");
	case O_FEES_DAILY:
		g->fees_daily = o->fees_daily;
		return to_list(v, o->fees_daily, &g->fees_daily_n) ? 0 :
		       bad(name, v, "comma-separated fees >= 0 (at most 4096)");
	case O_EPOCHS:
		g->epochs = o->epochs;
		return to_pairs(v, o, false, &g->nepochs) ? 0 :
		       bad(name, v, "HEIGHT:DIFFICULTY,... (at most 4096)");
	case O_ANCHORS:
		g->anchors = o->anchors;
		return to_pairs(v, o, true, &g->nanchors) ? 0 :
		       bad(name, v, "TIME=HEIGHT,... (at most 4096)");
	case O_COMMENT:
		return add_comment(o, v);
	case O_OUT:
		o->out = v;
		return 0;
	default:
		return -1;
	}
}

static const struct option long_opts[] = {
	{ "start", required_argument, NULL, O_START },
	{ "days", required_argument, NULL, O_DAYS },
	{ "step", required_argument, NULL, O_STEP },
	{ "seed", required_argument, NULL, O_SEED },
	{ "btc-usd", required_argument, NULL, O_BTC },
	{ "btc-vol", required_argument, NULL, O_VOL },
	{ "difficulty", required_argument, NULL, O_DIFF },
	{ "height", required_argument, NULL, O_HEIGHT },
	{ "fees-btc", required_argument, NULL, O_FEES },
	{ "power", required_argument, NULL, O_POWER },
	{ "spike-per-day", required_argument, NULL, O_SPIKES },
	{ "spike-usd-kwh", required_argument, NULL, O_SPIKE_USD },
	{ "inference-price", required_argument, NULL, O_PRICE },
	{ "inference-price-vol", required_argument, NULL, O_PRICE_VOL },
	{ "demand-base", required_argument, NULL, O_DBASE },
	{ "demand-amplitude", required_argument, NULL, O_DAMP },
	{ "weekend-factor", required_argument, NULL, O_WEEKEND },
	{ "utc-offset-min", required_argument, NULL, O_UTC },
	{ "block-interval", required_argument, NULL, O_INTERVAL },
	{ "hashrate-growth", required_argument, NULL, O_GROWTH },
	{ "btc-daily", required_argument, NULL, O_BTC_DAILY },
	{ "fees-daily", required_argument, NULL, O_FEES_DAILY },
	{ "epochs", required_argument, NULL, O_EPOCHS },
	{ "anchors", required_argument, NULL, O_ANCHORS },
	{ "comment", required_argument, NULL, O_COMMENT },
	{ "out", required_argument, NULL, O_OUT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* 0 parsed, 2 bad usage, 1 out of memory, 3 --help shown. */
static int parse(int argc, char **argv, gen_opts *o)
{
	int c, idx, rc;

	optind = 0; /* glibc: a full reinitialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_opts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 3;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "hashflop-coord series-gen: %s \"%s\" (see --help)\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return 2;
		}
		const char *name = long_opts[idx].name;
		if ((rc = set_number(o, c, name, optarg)) < 0)
			rc = set_other(o, c, name, optarg);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-coord series-gen: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

/* The shortest decimal that reads back as v (in one of four rotating buffers). */
static const char *num(double v)
{
	static _Thread_local char buf[4][40];
	static _Thread_local unsigned k;
	char *b = buf[k++ % 4];

	for (int prec = 15; prec <= 17; prec++) {
		snprintf(b, sizeof buf[0], "%.*g", prec, v);
		if (strtod(b, NULL) == v)
			break;
	}
	return b;
}

/* The header's provenance: the tool and every effective option (lists too). */
static void print_list(FILE *f, const char *opt, const double *v, size_t n)
{
	if (!n)
		return;
	fprintf(f, " --%s ", opt);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", num(v[i]));
}

static void print_options(FILE *f, const hf_coord_series_gen *g)
{
	char t[40];

	hf_coord_series_format_time(g->start_ms, t, sizeof t);
	fprintf(f, "made by: hashflop-coord series-gen (hashflop %s)\noptions: --start %s --days %u "
		"--step %u --seed %llu", HF_VERSION, t, g->days, g->step_s,
		(unsigned long long)g->seed);
	fprintf(f, " --btc-usd %s --btc-vol %s", num(g->btc_usd), num(g->btc_vol_daily));
	fprintf(f, " --difficulty %s --height %llu", num(g->difficulty),
		(unsigned long long)g->height);
	fprintf(f, " --fees-btc %s --power %s", num(g->fees_btc), num(g->power_usd_kwh));
	fprintf(f, " --spike-per-day %s --spike-usd-kwh %s", num(g->spike_per_day),
		num(g->spike_usd_kwh));
	fprintf(f, " --inference-price %s --inference-price-vol %s", num(g->inference_price),
		num(g->inference_price_vol));
	fprintf(f, " --demand-base %s --demand-amplitude %s", num(g->demand_base),
		num(g->demand_amplitude));
	fprintf(f, " --weekend-factor %s --utc-offset-min %d", num(g->weekend_factor),
		g->utc_offset_min);
	fprintf(f, " --block-interval %s --hashrate-growth %s", num(g->block_interval_s),
		num(g->hashrate_growth_daily));
	print_list(f, "btc-daily", g->btc_daily, g->btc_daily_n);
	print_list(f, "fees-daily", g->fees_daily, g->fees_daily_n);
	for (size_t i = 0; i < g->nepochs; i++)
		fprintf(f, "%s%llu:%s", i ? "," : " --epochs ",
			(unsigned long long)g->epochs[i].height, num(g->epochs[i].difficulty));
	for (size_t i = 0; i < g->nanchors; i++) {
		hf_coord_series_format_time(g->anchors[i].t_ms, t, sizeof t);
		fprintf(f, "%s%s=%llu", i ? "," : " --anchors ", t,
			(unsigned long long)g->anchors[i].height);
	}
}

/* The whole file in memory (comments, header, rows). */
static int render(const gen_opts *o, const hf_coord_series *s, char **buf, size_t *len)
{
	char *hdr = NULL;
	size_t hlen = 0;
	hf_errbuf eb;
	FILE *f = open_memstream(&hdr, &hlen);
	int rc;

	if (!f)
		return HF_ENOMEM;
	if (o->comments)
		fprintf(f, "%s\n", o->comments);
	print_options(f, &o->g);
	if (fclose(f) != 0) {
		free(hdr);
		return HF_ENOMEM;
	}
	if (!(f = open_memstream(buf, len))) {
		free(hdr);
		return HF_ENOMEM;
	}
	rc = hf_coord_series_write(f, s, hdr, &eb);
	free(hdr);
	if (fclose(f) != 0 && rc == 0)
		rc = HF_ENOMEM;
	return rc;
}

static int emit(const gen_opts *o, const hf_coord_series *s)
{
	char *buf = NULL;
	size_t len = 0;
	hf_errbuf eb;
	int rc = 0;

	if (render(o, s, &buf, &len) < 0) {
		fprintf(stderr, "hashflop-coord series-gen: out of memory\n");
		free(buf);
		return 1;
	}
	if (!o->out || strcmp(o->out, "-") == 0) {
		if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
			fprintf(stderr, "hashflop-coord series-gen: writing standard output failed\n");
			rc = 1;
		}
	} else if (hf_file_write_atomic(o->out, buf, len, 0644, &eb) < 0) {
		fprintf(stderr, "hashflop-coord series-gen: --out %s: %s\n", o->out, eb.msg);
		rc = 1;
	}
	free(buf);
	return rc;
}

int hf_coord_cmd_series_gen(int argc, char **argv)
{
	gen_opts *o = calloc(1, sizeof *o);
	hf_coord_series s = { 0 };
	hf_errbuf eb;
	int rc;

	if (!o) {
		fprintf(stderr, "hashflop-coord series-gen: out of memory\n");
		return 1;
	}
	hf_coord_series_gen_defaults(&o->g);
	rc = parse(argc, argv, o);
	if (rc == 3) {
		rc = 0;
		goto free_opts;
	}
	if (rc)
		goto free_opts;
	if ((rc = hf_coord_series_generate(&o->g, &s, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord series-gen: %s\n", eb.msg);
		rc = rc == HF_ENOMEM ? 1 : 2;
		goto free_opts;
	}
	rc = emit(o, &s);
	hf_coord_series_clear(&s);
free_opts:
	free(o->comments);
	free(o);
	return rc;
}
