/* hashflop-coord feed-server: serves a market series in the feeds' shapes on HTTP, its clock
 * fast-forwarded (hf_coord_feedsrv), for demos and tests; --print-feeds prints the profit.json
 * "feeds" section that points a coordinator at it.
 * Invariants: nothing is served before the whole series loaded and every option checked; usage
 * and input errors exit 2 with one line naming what is wrong.
 * Threading: main's thread waits for SIGINT/SIGTERM (blocked everywhere, taken with
 * sigtimedwait) and logs the clock's progress; hf_httpd's threads serve.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_coord_feedsrv.h"
#include "hf_file.h"
#include "hf_log.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"
#include "hashflop_coord_cmd.h"

#define PROG "hashflop-coord feed-server"
/* The clock's progress is logged at most this often (wall ms). */
#define PROGRESS_MS 10000

static void usage(FILE *f)
{
	fputs("Usage: hashflop-coord feed-server --series FILE.csv [--speed X] [--listen ADDR:PORT]\n"
	      "         [--port-file FILE] [--loop] [--start TIME | --start-row N] [-v]\n"
	      "       hashflop-coord feed-server --print-feeds URL [--refresh-s N]\n"
	      "\n"
	      "Serves a market series (runtime/coord/README.md \"Series\") over HTTP in the shapes the\n"
	      "coordinator's feeds read: mempool.space's /api/v1/prices, /api/v1/mining/hashrate/3d,\n"
	      "/api/blocks/tip/height and /api/v1/mining/reward-stats/144, plus /hashflop/v1/power,\n"
	      "/hashflop/v1/inference and /hashflop/v1/clock (where the replay stands). Series time =\n"
	      "the start + the wall time since the server started * the speed; each path answers from\n"
	      "the last row at or before it. At the end the clock stops and reports done (or wraps,\n"
	      "with --loop).\n"
	      "\n"
	      "Options:\n"
	      "      --series FILE     the series CSV (required to serve)\n"
	      "      --speed X         series seconds per wall second (60; above 0, at most 1e9)\n"
	      "      --listen ADDR:PORT  where to listen (127.0.0.1:0: an ephemeral port)\n"
	      "      --port-file FILE  write the bound port here once listening\n"
	      "      --loop            start over after the last row instead of stopping\n"
	      "      --start TIME      begin at this series time (RFC 3339 UTC, e.g.\n"
	      "                        2024-04-20T06:00:00Z, or Unix seconds; within the series)\n"
	      "      --start-row N     begin at row N (0 is the first)\n"
	      "      --print-feeds URL print the profit.json \"feeds\" object that points every feed\n"
	      "                        at a feed server at URL (http://127.0.0.1:PORT) and exit\n"
	      "      --refresh-s N     --print-feeds: each feed's refresh_s (2)\n"
	      "  -v, --verbose         log at debug level (every row change)\n"
	      "  -h, --help            show this help and exit\n"
	      "  -V, --version         show the version and exit\n"
	      "\n"
	      "Exit status: 0 after SIGINT/SIGTERM (or --print-feeds), 1 on a runtime failure, 2 on\n"
	      "a usage or input error.\n", f);
}

typedef struct args {
	const char *series, *speed, *listen, *port_file, *start, *start_row, *print_feeds;
	const char *refresh;
	bool loop, verbose;
} args;

static int parse_args(int argc, char **argv, args *a)
{
	static const struct option lo[] = {
		{ "series", required_argument, NULL, 's' },
		{ "speed", required_argument, NULL, 'x' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "loop", no_argument, NULL, 'L' },
		{ "start", required_argument, NULL, 'S' },
		{ "start-row", required_argument, NULL, 'R' },
		{ "print-feeds", required_argument, NULL, 'F' },
		{ "refresh-s", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vhV", lo, NULL)) != -1) {
		switch (c) {
		case 's': a->series = optarg; break;
		case 'x': a->speed = optarg; break;
		case 'l': a->listen = optarg; break;
		case 'P': a->port_file = optarg; break;
		case 'L': a->loop = true; break;
		case 'S': a->start = optarg; break;
		case 'R': a->start_row = optarg; break;
		case 'F': a->print_feeds = optarg; break;
		case 'r': a->refresh = optarg; break;
		case 'v': a->verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hashflop-coord %s\n", HF_VERSION); return 0;
		case ':':
			fprintf(stderr, PROG ": %s needs a value (see --help)\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, PROG ": unknown option \"%s\" (see --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 2;
	}
	if (a->print_feeds) {
		if (a->series || a->speed || a->listen || a->port_file || a->loop || a->start ||
		    a->start_row) {
			fprintf(stderr, PROG ": --print-feeds takes only --refresh-s\n");
			return 2;
		}
		return -1;
	}
	if (a->refresh) {
		fprintf(stderr, PROG ": --refresh-s goes with --print-feeds\n");
		return 2;
	}
	if (!a->series) {
		fprintf(stderr, PROG ": --series FILE.csv is required (see --help)\n");
		return 2;
	}
	if (a->start && a->start_row) {
		fprintf(stderr, PROG ": --start and --start-row exclude each other\n");
		return 2;
	}
	return -1;
}

static int bad(const char *opt, const char *val, const char *want)
{
	char clean[128];

	hf_text_clean(clean, sizeof clean, val, strlen(val));
	fprintf(stderr, PROG ": %s \"%s\": expected %s\n", opt, clean, want);
	return 2;
}

/* "YYYY-MM-DDTHH:MM:SSZ" or whole Unix seconds, into ms; false when it is neither. */
static bool parse_time(const char *s, uint64_t *ms)
{
	static const int len[] = { 4, 2, 2, 2, 2, 2 };
	static const char sep[] = { '-', '-', 'T', ':', ':', 'Z' };
	int v[6];
	uint64_t secs;
	const char *p = s;
	struct tm tm = { 0 };
	time_t t;

	if (hf_parse_u64(s, 0, UINT64_MAX / 1000, &secs)) {
		*ms = secs * 1000;
		return true;
	}
	for (int i = 0; i < 6; i++) {
		v[i] = 0;
		for (int k = 0; k < len[i]; k++, p++) {
			if (*p < '0' || *p > '9')
				return false;
			v[i] = v[i] * 10 + (*p - '0');
		}
		if (*p != sep[i] && !(i == 2 && *p == 't') && !(i == 5 && *p == 'z'))
			return false;
		p++;
	}
	if (*p || v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 59)
		return false;
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	t = timegm(&tm);
	if (t < 0 || tm.tm_mday != v[2])  /* timegm normalised an impossible date (Feb 30) */
		return false;
	*ms = (uint64_t)t * 1000;
	return true;
}

static void fmt_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(buf, len, "%llu", (unsigned long long)(ms / 1000));
}

static int print_feeds(const args *a)
{
	uint64_t refresh = 2;
	hf_errbuf eb;
	json_t *j;
	char *text;

	if (a->refresh && !hf_parse_u64(a->refresh, 1, 86400, &refresh))
		return bad("--refresh-s", a->refresh, "whole seconds, 1 to 86400");
	if (!(j = hf_coord_feedsrv_feeds_json(a->print_feeds, (unsigned)refresh, &eb))) {
		fprintf(stderr, PROG ": --print-feeds: %s\n", eb.msg);
		return 2;
	}
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!text) {
		fprintf(stderr, PROG ": --print-feeds: out of memory\n");
		return 1;
	}
	printf("%s\n", text);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The options that need the series: speed, listen address, start. */
static int apply_args(const args *a, const hf_coord_series *s, hf_coord_feedsrv_opts *o,
		      char *host, size_t hostsz)
{
	char *end;
	uint64_t v;

	o->clock.speed = 60;
	if (a->speed) {
		errno = 0;
		o->clock.speed = strtod(a->speed, &end);
		if (end == a->speed || *end || errno || !(o->clock.speed > 0) ||
		    o->clock.speed > HF_COORD_FEEDSRV_SPEED_MAX)
			return bad("--speed", a->speed, "a number above 0, at most 1e9");
	}
	hf_strlcpy(host, "127.0.0.1", hostsz);
	if (a->listen && !hf_parse_hostport(a->listen, host, hostsz, &o->port))
		return bad("--listen", a->listen, "ADDR:PORT (127.0.0.1:0, [::1]:8490)");
	o->host = host;
	o->clock.loop = a->loop;
	if (a->start_row) {
		if (!hf_parse_u64(a->start_row, 0, s->n - 1, &v)) {
			char want[64];
			snprintf(want, sizeof want, "a row number from 0 to %zu", s->n - 1);
			return bad("--start-row", a->start_row, want);
		}
		o->clock.start_ms = s->rows[v].t_ms;
	} else if (a->start) {
		char want[160], t0[32], t1[32];
		fmt_time(s->rows[0].t_ms, t0, sizeof t0);
		fmt_time(s->rows[s->n - 1].t_ms, t1, sizeof t1);
		snprintf(want, sizeof want, "RFC 3339 UTC or Unix seconds from %s to %s", t0, t1);
		if (!parse_time(a->start, &v) || v < s->rows[0].t_ms || v > s->rows[s->n - 1].t_ms)
			return bad("--start", a->start, want);
		o->clock.start_ms = v;
	}
	return 0;
}

static int write_port_file(const char *path, uint16_t port)
{
	char buf[16];
	hf_errbuf eb;
	int n = snprintf(buf, sizeof buf, "%u\n", (unsigned)port);

	if (hf_file_write_atomic(path, buf, (size_t)n, 0644, &eb) < 0) {
		hf_log_err("--port-file: %s", eb.msg);
		return 1;
	}
	return 0;
}

/* Logs the clock now and then (every row change at debug); returns when a signal arrives. */
static int serve_until_signal(const hf_coord_feedsrv *f, const sigset_t *set)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000000L };
	hf_coord_feedsrv_pos pos;
	uint64_t last_log = hf_mono_ms();
	size_t row = (size_t)-1;
	bool done = false;
	char when[32];
	int sig;

	for (;;) {
		if ((sig = sigtimedwait(set, NULL, &ts)) > 0)
			return sig;
		hf_coord_feedsrv_position(f, &pos);
		if (pos.row != row) {
			fmt_time(pos.series_ms, when, sizeof when);
			hf_log_debug("series time %s: row %zu", when, pos.row);
		}
		row = pos.row;
		if (pos.done && !done) {
			fmt_time(pos.series_ms, when, sizeof when);
			hf_log_notice("series done at %s (row %zu, the last); serving it until stopped",
				      when, pos.row);
			done = true;
		}
		if (!done && hf_mono_ms() - last_log >= PROGRESS_MS) {
			fmt_time(pos.series_ms, when, sizeof when);
			hf_log_info("series time %s: row %zu, lap %llu, %llu requests", when, pos.row,
				    (unsigned long long)pos.laps,
				    (unsigned long long)hf_coord_feedsrv_requests(f));
			last_log = hf_mono_ms();
		}
	}
}

int hf_coord_cmd_feed_server(int argc, char **argv)
{
	hf_coord_series s = { 0 };
	hf_coord_feedsrv_opts o = { 0 };
	hf_coord_feedsrv *f = NULL;
	char host[80], t0[32], t1[32], tstart[32];
	args a = { 0 };
	hf_errbuf eb;
	sigset_t set;
	int rc, sig;

	if ((rc = parse_args(argc, argv, &a)) >= 0)
		return rc;
	if (a.print_feeds)
		return print_feeds(&a);
	hf_log_init("hashflop-coord", a.verbose ? HF_LOG_DEBUG : HF_LOG_INFO);
	if (hf_coord_series_load(a.series, &s, &eb) < 0) {
		fprintf(stderr, PROG ": %s\n", eb.msg);
		return 2;
	}
	if (s.n == 0) {
		fprintf(stderr, PROG ": %s: the series has no rows\n", a.series);
		rc = 2;
		goto out_series;
	}
	if ((rc = apply_args(&a, &s, &o, host, sizeof host)) != 0)
		goto out_series;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (hf_coord_feedsrv_new(&s, &o, &f, &eb) < 0) {
		hf_log_err("%s", eb.msg);
		rc = 1;
		goto out_series;
	}
	if (a.port_file && (rc = write_port_file(a.port_file, hf_coord_feedsrv_port(f))) != 0)
		goto out_server;
	fmt_time(s.rows[0].t_ms, t0, sizeof t0);
	fmt_time(s.rows[s.n - 1].t_ms, t1, sizeof t1);
	fmt_time(o.clock.start_ms ? o.clock.start_ms : s.rows[0].t_ms, tstart, sizeof tstart);
	hf_log_notice("feed-server %s: %s, %zu rows every %llu s from %s to %s; serving on %s port "
		      "%u from %s at speed %g%s", HF_VERSION, a.series, s.n,
		      (unsigned long long)(s.step_ms / 1000), t0, t1, host,
		      (unsigned)hf_coord_feedsrv_port(f), tstart, o.clock.speed,
		      o.clock.loop ? ", looping" : "");
	sig = serve_until_signal(f, &set);
	hf_log_notice("signal %d: stopping after %llu requests", sig,
		      (unsigned long long)hf_coord_feedsrv_requests(f));
	rc = 0;
out_server:
	hf_coord_feedsrv_free(f);
out_series:
	hf_coord_series_clear(&s);
	return rc;
}
