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
 * prefixed "# "). Numbers in the shortest form that reads back exactly, so write -> parse is
 * the identity. HF_EIO; HF_EINVAL (nothing written) for rows the reader would refuse. */
int hf_coord_series_write(FILE *f, const hf_coord_series *s, const char *comments,
			  hf_errbuf *eb);
/* The index of the last row with t_ms <= t (0 when t is before the first row). */
size_t hf_coord_series_index_at(const hf_coord_series *s, uint64_t t_ms);
/* Row i as a market (subsidy from the height; never stale). */
void hf_coord_series_market(const hf_coord_series_row *r, hf_coord_market *m);
/* A time as the series reads it (RFC 3339 UTC or Unix seconds, the whole string) to ms since
 * the epoch; false when it is neither (extension: series helper). */
bool hf_coord_series_parse_time(const char *s, uint64_t *t_ms);
/* t_ms as the writer writes it ("2024-04-20T00:05:00Z", ".123" when there are ms) into buf
 * (at least 32 bytes) (extension: series helper). */
void hf_coord_series_format_time(uint64_t t_ms, char *buf, size_t sz);

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
	/* ---- compatible extensions (series helper, issue 15); hf_coord_series_gen_defaults
	 * fills them; left zero (a struct filled without it) each means what the fields above
	 * meant before: UTC, 600 s, no drift, 0.75, constant price, no public figures ---- */
	int utc_offset_min;      /* the site's local time for the power and demand shapes (-360) */
	double block_interval_s; /* mean block interval at the start (600; 0: 600) */
	double hashrate_growth_daily; /* network hashrate drift, log per day (0.001) */
	double weekend_factor;   /* demand on local Saturdays and Sundays, times (0.75; 0: 0.75) */
	double inference_price_vol; /* relative s.d. of a slow drift of the price (0: constant) */
	/* Optional public figures the series follows (NULL/0: simulated; the arrays are the
	 * caller's and must outlive the call): */
	const double *btc_daily; /* the price at start + k days, k = 0..btc_daily_n - 1 (daily
				    closes); between two the log-price is interpolated linearly
				    plus a Brownian bridge of btc_vol_daily; after the last, GBM */
	size_t btc_daily_n;
	const double *fees_daily; /* mean fees per block during day k (instead of fees_btc) */
	size_t fees_daily_n;
	const struct hf_coord_series_epoch {
		uint64_t height;     /* the first block mined at this difficulty */
		double difficulty;
	} *epochs;               /* sorted by height: difficulty by height instead of retargets */
	size_t nepochs;
	const struct hf_coord_series_anchor {
		uint64_t t_ms;       /* this height is the tip from this instant */
		uint64_t height;
	} *anchors;              /* sorted: between anchors the blocks are a Poisson process
				    conditioned on the anchors (uniform order statistics) */
	size_t nanchors;
} hf_coord_series_gen;

typedef struct hf_coord_series_epoch hf_coord_series_epoch;
typedef struct hf_coord_series_anchor hf_coord_series_anchor;

/* The defaults (every field; start 2025-11-01T00:00:00Z, 14 days at 300 s, seed 1, figures of
 * late 2025). */
void hf_coord_series_gen_defaults(hf_coord_series_gen *g);
/* A series from g (deterministic: the same g gives the same rows, bit for bit, on the same
 * platform). HF_EINVAL with eb naming the field for a bad generator; HF_ETOOBIG over the row
 * cap; HF_ENOMEM. */
int hf_coord_series_generate(const hf_coord_series_gen *g, hf_coord_series *out,
			     hf_errbuf *eb);

#endif
