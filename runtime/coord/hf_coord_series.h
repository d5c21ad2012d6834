/* hf_coord_series: a market time series (the backtest's input, the feed server's data): strict
 * CSV reading and writing, lookup by time, and the generator of synthetic series.
 *
 * Format (runtime/coord/README.md "Series"): UTF-8 text; lines starting with '#' are comments
 * (provenance); the first other line is the header, exactly
 *   time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,inference_demand
 * then one row per line: time as RFC 3339 UTC ("2024-04-20T00:05:00Z") or integer Unix
 * seconds; the others decimal numbers, finite and >= 0 (difficulty > 0, height an integer).
 * Rows strictly increasing in time, evenly spaced (the first interval is the step; every other
 * must equal it). Caps: 64 MiB, 1,000,000 rows, 4,096 bytes a line. Errors name the file, the
 * line and the column ("s.csv:17: btc_usd: expected a finite number >= 0, got \"abc\"").
 * A row's subsidy is hf_coord_subsidy_btc(height); its units for the inference columns are
 * the fleet's (params.unit), the series does not say.
 * Threading: reentrant; a series belongs to its caller.
 */
#ifndef HF_COORD_SERIES_H
#define HF_COORD_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hf_coord_policy.h"
#include "hf_error.h"

#define HF_COORD_SERIES_MAX_BYTES (64u << 20)
#define HF_COORD_SERIES_MAX_ROWS 1000000u
#define HF_COORD_SERIES_LINE_MAX 4096u   /* bytes a line, without its newline */

typedef struct hf_coord_series_row {
	uint64_t t_ms;
	double btc_usd, difficulty, fees_btc;
	uint64_t height;
	double power_usd_kwh, inference_price, inference_demand;
} hf_coord_series_row;

typedef struct hf_coord_series {
	hf_coord_series_row *rows;
	size_t n;
	uint64_t step_ms;        /* the spacing (0 when n < 2) */
} hf_coord_series;

/* Parses text (len bytes); name is used in errors. HF_EPARSE / HF_ETOOBIG / HF_ENOMEM. */
int hf_coord_series_parse(const char *text, size_t len, const char *name,
			  hf_coord_series *out, hf_errbuf *eb);
/* Reads and parses a file (hf_file_read, capped). */
int hf_coord_series_load(const char *path, hf_coord_series *out, hf_errbuf *eb);
void hf_coord_series_clear(hf_coord_series *s);
/* Writes the header and rows (times RFC 3339), comments first (NULL: none; each line of it
 * prefixed "# "). HF_EIO. */
int hf_coord_series_write(FILE *f, const hf_coord_series *s, const char *comments,
			  hf_errbuf *eb);
/* The index of the last row with t_ms <= t (0 when t is before the first row). */
size_t hf_coord_series_index_at(const hf_coord_series *s, uint64_t t_ms);
/* Row i as a market (subsidy from the height; never stale). */
void hf_coord_series_market(const hf_coord_series_row *r, hf_coord_market *m);

/* ---- the generator ---- */
typedef struct hf_coord_series_gen {
	uint64_t start_ms;       /* the first row's time */
	unsigned days;           /* length */
	unsigned step_s;         /* 300 */
	uint64_t seed;           /* every draw from one xoshiro256** stream seeded with this */
	double btc_usd;          /* starting price; geometric Brownian motion with */
	double btc_vol_daily;    /*   this daily volatility (0.03) */
	double difficulty;       /* starting difficulty, retargeted every 2016 blocks */
	uint64_t height;         /* starting height; blocks arrive as a Poisson process, 600 s */
	double fees_btc;         /* mean fees per block, with a diurnal swing and noise */
	double power_usd_kwh;    /* base price: a diurnal shape (peak late afternoon), noise and */
	double spike_per_day;    /*   curtailment spikes (ERCOT-like: this many a day on average,
				    spike_usd_kwh for 15 to 90 minutes) */
	double spike_usd_kwh;
	double inference_price;  /* constant price (unit as the fleet's) */
	double demand_base;      /* diurnal demand: base + amplitude * shape(hour of day), */
	double demand_amplitude; /*   weekday/weekend factor, noise */
} hf_coord_series_gen;

void hf_coord_series_gen_defaults(hf_coord_series_gen *g);
int hf_coord_series_generate(const hf_coord_series_gen *g, hf_coord_series *out,
			     hf_errbuf *eb);

#endif
