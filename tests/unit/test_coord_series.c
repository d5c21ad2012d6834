/* Unit tests for hf_coord_series: the strict CSV reader (good files, every error, the caps),
 * index_at, a row as a market, write -> parse round trips, the generator (determinism and its
 * properties: spikes, heights, retargets, schedules, anchors, shapes), the shipped series under
 * packaging/series/, and the series-gen command (the real program). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_coord_series.h"
#include "hf_file.h"

#define HEADER "time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price," \
	"inference_demand\n"

static int parse_str(const char *text, hf_coord_series *s, hf_errbuf *eb)
{
	return hf_coord_series_parse(text, strlen(text), "t.csv", s, eb);
}

Test(coord_series, parses_rfc3339_unix_comments_crlf)
{
	const char *text =
		"# provenance: a test\n"
		"#\n"
		"\n"
		HEADER
		"2024-04-20T00:00:00Z,64000.5,8.6388558925171e13,0.1,840000,0.03,0.00014,1000\n"
		"# a comment between rows\n"
		"1713571500,64001,86388558925171,0.2,840001,0.031,0.00014,1001.25\r\n"
		"2024-04-20t00:10:00.000+00:00,1,2,0,4,0,0,0\n"
		"2024-04-20T00:15:00-00:00,1e3,2.5E1,3.,0,5,6,7";
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_eq(parse_str(text, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.n, 4);
	cr_assert_eq(s.step_ms, 300000);
	cr_assert_eq(s.rows[0].t_ms, UINT64_C(1713571200000));
	cr_assert_eq(s.rows[1].t_ms, UINT64_C(1713571500000));
	cr_assert_eq(s.rows[3].t_ms, UINT64_C(1713572100000));
	cr_assert_eq(s.rows[0].btc_usd, 64000.5);
	cr_assert_eq(s.rows[0].difficulty, 86388558925171.0);
	cr_assert_eq(s.rows[0].height, 840000);
	cr_assert_eq(s.rows[1].inference_demand, 1001.25);
	cr_assert_eq(s.rows[3].btc_usd, 1000.0);
	cr_assert_eq(s.rows[3].difficulty, 25.0);
	cr_assert_eq(s.rows[3].fees_btc, 3.0);
	cr_assert_eq(s.rows[3].height, 0);
	cr_assert_eq(s.rows[3].inference_demand, 7.0);
	hf_coord_series_clear(&s);
	cr_assert_null(s.rows);
	cr_assert_eq(s.n, 0);
	hf_coord_series_clear(NULL);
}

Test(coord_series, one_row_has_no_step)
{
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_eq(parse_str(HEADER "0,1,1,0,0,0,0,0\n", &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.step_ms, 0);
	cr_assert_eq(s.rows[0].t_ms, 0);
	hf_coord_series_clear(&s);
}

typedef struct bad_case {
	const char *body;       /* after the header (NULL: the whole text is `body2`) */
	const char *expect;     /* a substring of the error */
} bad_case;

#define ROW0 "2024-04-20T00:00:00Z,1,1,1,1,1,1,1\n"

static const bad_case bad_rows[] = {
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1\n", "t.csv:2: expected 8 columns, got 7" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1,1,1\n", "t.csv:2: expected 8 columns, got 9" },
	{ "\n", NULL }, /* placeholder, skipped below: an empty body is "no rows" */
	{ "2024-04-20T00:00:00Z,abc,1,1,1,1,1,1\n",
	  "t.csv:2: btc_usd: expected a finite number >= 0, got \"abc\"" },
	{ "2024-04-20T00:00:00Z,-1,1,1,1,1,1,1\n", "btc_usd: expected a finite number >= 0, got \"-1\"" },
	{ "2024-04-20T00:00:00Z,1,1,-0.5,1,1,1,1\n", "fees_btc: expected a finite number >= 0" },
	{ "2024-04-20T00:00:00Z,nan,1,1,1,1,1,1\n", "btc_usd: expected a finite number >= 0, got \"nan\"" },
	{ "2024-04-20T00:00:00Z,1,NaN,1,1,1,1,1\n", "difficulty: expected a finite number" },
	{ "2024-04-20T00:00:00Z,1,1,inf,1,1,1,1\n", "fees_btc: expected a finite number >= 0, got \"inf\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,Infinity,1,1\n", "power_usd_kwh: expected a finite" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1e999,1\n", "inference_price: expected a finite number >= 0, got \"1e999\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1,0x10\n", "inference_demand: expected a finite number >= 0, got \"0x10\"" },
	{ "2024-04-20T00:00:00Z, 1,1,1,1,1,1,1\n", "btc_usd: expected a finite number >= 0, got \" 1\"" },
	{ "2024-04-20T00:00:00Z,,1,1,1,1,1,1\n", "btc_usd: expected a finite number >= 0, got \"\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1,+1\n", "inference_demand: expected a finite" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1,1e\n", "inference_demand: expected a finite" },
	{ "2024-04-20T00:00:00Z,1,1,1,1,1,1,.\n", "inference_demand: expected a finite" },
	{ "2024-04-20T00:00:00Z,1,0,1,1,1,1,1\n", "difficulty: expected a finite number > 0, got \"0\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,1.5,1,1,1\n", "height: expected an integer >= 0, got \"1.5\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,-1,1,1,1\n", "height: expected an integer >= 0, got \"-1\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,1e3,1,1,1\n", "height: expected an integer >= 0, got \"1e3\"" },
	{ "2024-04-20T00:00:00Z,1,1,1,99999999999999999999,1,1,1\n", "height: expected an integer" },
	{ "2024-13-01T00:00:00Z,1,1,1,1,1,1,1\n", "t.csv:2: time: expected RFC 3339 UTC" },
	{ "2023-02-29T00:00:00Z,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "2024-04-20T24:00:00Z,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "2024-04-20T00:00:00+01:00,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "2024-04-20T00:00:00,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "2024-04-20T00:00:00.1234Z,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "2024-04-20 00:00:00Z,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "-5,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "1.5,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ "999999999999,1,1,1,1,1,1,1\n", "time: expected RFC 3339 UTC" },
	{ ROW0 "2024-04-19T23:55:00Z,1,1,1,1,1,1,1\n",
	  "t.csv:3: time: 2024-04-19T23:55:00Z is not after the previous row's 2024-04-20T00:00:00Z" },
	{ ROW0 ROW0, "t.csv:3: time: 2024-04-20T00:00:00Z is not after" },
	{ ROW0 "2024-04-20T00:05:00Z,1,1,1,1,1,1,1\n2024-04-20T00:15:00Z,1,1,1,1,1,1,1\n",
	  "t.csv:4: time: 2024-04-20T00:15:00Z is 600000 ms after the previous row, the series' "
	  "step is 300000 ms" },
	{ ROW0 "x\n", "t.csv:3: expected 8 columns, got 1" },
};

Test(coord_series, every_row_error_is_named)
{
	for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
		const bad_case *c = &bad_rows[i];
		if (!c->expect)
			continue;
		char text[512];
		hf_coord_series s = { .n = 99 };
		hf_errbuf eb;
		snprintf(text, sizeof text, "# c\n%s%s", HEADER, c->body);
		/* the header is on line 2 here: shift the expected line numbers by one */
		int rc = parse_str(text + 4, &s, &eb);
		cr_expect_eq(rc, HF_EPARSE, "case %zu (%s): rc %d", i, c->body, rc);
		cr_expect_not_null(strstr(eb.msg, c->expect), "case %zu: \"%s\" lacks \"%s\"", i,
				   eb.msg, c->expect);
		cr_expect_null(s.rows, "case %zu: rows left behind", i);
		cr_expect_eq(s.n, 0);
		/* the same with the comment line: every line number one more */
		rc = parse_str(text, &s, &eb);
		cr_expect_eq(rc, HF_EPARSE, "case %zu with a comment: rc %d", i, rc);
		cr_expect_not_null(strstr(eb.msg, "t.csv:"), "%s", eb.msg);
	}
}

Test(coord_series, header_errors)
{
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_eq(parse_str("time,btc_usd\n" ROW0, &s, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "t.csv:1: header: expected \"time,btc_usd,difficulty,"),
			   "%s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, "got \"time,btc_usd\""), "%s", eb.msg);
	cr_assert_eq(parse_str("# only\n# comments\n", &s, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "t.csv: no header line"), "%s", eb.msg);
	cr_assert_eq(parse_str("", &s, &eb), HF_EPARSE);
	cr_assert_eq(parse_str(HEADER, &s, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "t.csv: no rows after the header"), "%s", eb.msg);
	/* a header with a trailing space or upper case is not the header */
	cr_assert_eq(parse_str("TIME,btc_usd,difficulty,fees_btc,height,power_usd_kwh,"
			       "inference_price,inference_demand\n" ROW0, &s, &eb), HF_EPARSE);
	cr_assert_eq(parse_str("time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,"
			       "inference_price,inference_demand \n" ROW0, &s, &eb), HF_EPARSE);
	/* an outside string in the error is cleaned (no control characters reach a log) */
	cr_assert_eq(parse_str("time\x1b[31m\n", &s, &eb), HF_EPARSE);
	cr_assert_null(strchr(eb.msg, '\x1b'), "%s", eb.msg);
	/* invalid UTF-8, in a comment too */
	cr_assert_eq(parse_str("# caf\xe9\n" HEADER ROW0, &s, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "t.csv:1: not valid UTF-8"), "%s", eb.msg);
	cr_assert_eq(parse_str("# caf\xc3\xa9 ok\n" HEADER ROW0, &s, &eb), 0, "%s", eb.msg);
	hf_coord_series_clear(&s);
	/* a NUL byte inside the text */
	const char nul[] = HEADER "2024-04-20T00:00:00Z,1,1\0,1,1,1,1,1\n";
	cr_assert_eq(hf_coord_series_parse(nul, sizeof nul - 1, "n.csv", &s, &eb), HF_EPARSE);
	cr_assert_not_null(strstr(eb.msg, "n.csv:2: a NUL byte"), "%s", eb.msg);
}

Test(coord_series, line_cap)
{
	size_t n = HF_COORD_SERIES_LINE_MAX;
	char *text = malloc(strlen(HEADER) + 2 * n + 8);
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_not_null(text);
	/* a comment of exactly the cap is fine ... */
	strcpy(text, "#");
	memset(text + 1, 'x', n - 1);
	strcpy(text + n, "\n" HEADER ROW0);
	cr_assert_eq(parse_str(text, &s, &eb), 0, "%s", eb.msg);
	hf_coord_series_clear(&s);
	/* ... one byte more is refused, before anything else is looked at */
	strcpy(text, "#");
	memset(text + 1, 'x', n);
	strcpy(text + n + 1, "\n" HEADER ROW0);
	cr_assert_eq(parse_str(text, &s, &eb), HF_ETOOBIG);
	cr_assert_not_null(strstr(eb.msg, "t.csv:1: line longer than 4096 bytes"), "%s", eb.msg);
	/* a data row that long: padded with leading zeros in a number */
	strcpy(text, HEADER "2024-04-20T00:00:00Z,");
	size_t at = strlen(text);
	memset(text + at, '0', n);
	strcpy(text + at + n, "1,1,1,1,1,1,1\n");
	cr_assert_eq(parse_str(text, &s, &eb), HF_ETOOBIG);
	cr_assert_not_null(strstr(eb.msg, "t.csv:2: line longer"), "%s", eb.msg);
	free(text);
}

/* n rows "T,1,1,1,1,1,1,1" with T = 0, 1, 2 ... seconds. */
static char *many_rows(size_t n, size_t *len)
{
	size_t cap = strlen(HEADER) + n * 32 + 1, at;
	char *t = malloc(cap);

	cr_assert_not_null(t);
	strcpy(t, HEADER);
	at = strlen(t);
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(t + at, cap - at, "%zu,1,1,1,1,1,1,1\n", i);
	*len = at;
	return t;
}

Test(coord_series, row_cap, .timeout = 120)
{
	size_t len;
	char *t = many_rows(HF_COORD_SERIES_MAX_ROWS + 1, &len);
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_eq(hf_coord_series_parse(t, len, "big.csv", &s, &eb), HF_ETOOBIG);
	cr_assert_not_null(strstr(eb.msg, "big.csv:1000002: more than 1000000 rows"), "%s", eb.msg);
	cr_assert_null(s.rows);
	/* the cap itself is fine: cut the text after row 1,000,000 */
	char *last = t + len - 1;
	*last = '\0';
	last = strrchr(t, '\n');
	cr_assert_eq(hf_coord_series_parse(t, (size_t)(last + 1 - t), "big.csv", &s, &eb), 0,
		     "%s", eb.msg);
	cr_assert_eq(s.n, HF_COORD_SERIES_MAX_ROWS);
	cr_assert_eq(s.step_ms, 1000);
	cr_assert_eq(s.rows[s.n - 1].t_ms, (uint64_t)(HF_COORD_SERIES_MAX_ROWS - 1) * 1000u);
	hf_coord_series_clear(&s);
	free(t);
}

Test(coord_series, byte_cap, .timeout = 60)
{
	size_t len = (size_t)HF_COORD_SERIES_MAX_BYTES + 1;
	char *t = malloc(len);
	hf_coord_series s;
	hf_errbuf eb;

	cr_assert_not_null(t);
	/* comment lines of 63 'x' and a newline, then the header and a row at the very end */
	for (size_t i = 0; i < len; i++)
		t[i] = (i % 64 == 63) ? '\n' : (i % 64 == 0 ? '#' : 'x');
	cr_assert_eq(hf_coord_series_parse(t, len, "huge.csv", &s, &eb), HF_ETOOBIG);
	cr_assert_not_null(strstr(eb.msg, "huge.csv: 67108865 bytes, over the limit of 67108864"),
			   "%s", eb.msg);
	cr_assert_null(s.rows);
	free(t);
	/* and load: a file over the cap is refused by size, not read */
	char path[] = "/tmp/hf_series_big_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	close(fd);
	cr_assert_eq(hf_coord_series_load(path, &s, &eb), HF_ETOOBIG);
	cr_assert_null(s.rows);
	unlink(path);
	cr_assert_eq(hf_coord_series_load("/nonexistent/s.csv", &s, &eb), HF_ENOTFOUND);
}

Test(coord_series, load_names_the_file)
{
	char path[] = "/tmp/hf_series_load_XXXXXX";
	int fd = mkstemp(path);
	hf_coord_series s;
	hf_errbuf eb;
	const char *text = HEADER ROW0 "2024-04-20T00:05:00Z,1,1,1,1,1,1,oops\n";

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(hf_coord_series_load(path, &s, &eb), HF_EPARSE);
	char want[128];
	snprintf(want, sizeof want, "%s:3: inference_demand: expected a finite number >= 0, got "
		 "\"oops\"", path);
	cr_assert_str_eq(eb.msg, want);
	unlink(path);
}

Test(coord_series, index_at)
{
	hf_coord_series_row rows[5];
	hf_coord_series s = { .rows = rows, .n = 5, .step_ms = 300000 };

	for (int i = 0; i < 5; i++)
		rows[i].t_ms = 1000000 + (uint64_t)i * 300000;
	cr_assert_eq(hf_coord_series_index_at(&s, 0), 0);
	cr_assert_eq(hf_coord_series_index_at(&s, 999999), 0);
	cr_assert_eq(hf_coord_series_index_at(&s, 1000000), 0);
	cr_assert_eq(hf_coord_series_index_at(&s, 1299999), 0);
	cr_assert_eq(hf_coord_series_index_at(&s, 1300000), 1);
	cr_assert_eq(hf_coord_series_index_at(&s, 1900000), 3);
	cr_assert_eq(hf_coord_series_index_at(&s, 2199999), 3);
	cr_assert_eq(hf_coord_series_index_at(&s, 2200000), 4);
	cr_assert_eq(hf_coord_series_index_at(&s, UINT64_MAX), 4);
	s.n = 1;
	cr_assert_eq(hf_coord_series_index_at(&s, UINT64_MAX), 0);
	s.n = 0;
	cr_assert_eq(hf_coord_series_index_at(&s, 5), 0);
	/* every instant of a longer series against a linear scan */
	hf_coord_series_row big[97];
	hf_coord_series b = { .rows = big, .n = 97 };
	for (int i = 0; i < 97; i++)
		big[i].t_ms = 500 + (uint64_t)i * 7;
	for (uint64_t t = 0; t < 500 + 97 * 7 + 20; t++) {
		size_t want = 0;
		for (size_t i = 0; i < 97; i++)
			if (big[i].t_ms <= t)
				want = i;
		cr_assert_eq(hf_coord_series_index_at(&b, t), want, "t %llu", (unsigned long long)t);
	}
}

Test(coord_series, market_of_a_row)
{
	hf_coord_series_row r = {
		.t_ms = 1713571200000, .btc_usd = 64000, .difficulty = 8.6e13, .fees_btc = 0.5,
		.height = 839999, .power_usd_kwh = 0.04, .inference_price = 0.00014,
		.inference_demand = 20000,
	};
	hf_coord_market m;

	memset(&m, 0x5a, sizeof m);
	hf_coord_series_market(&r, &m);
	cr_assert_eq(m.at_ms, r.t_ms);
	cr_assert_eq(m.btc_usd, 64000);
	cr_assert_eq(m.difficulty, 8.6e13);
	cr_assert_eq(m.fees_btc, 0.5);
	cr_assert_eq(m.subsidy_btc, 6.25);
	cr_assert_eq(m.power_usd_kwh, 0.04);
	cr_assert_eq(m.infer_price, 0.00014);
	cr_assert_eq(m.infer_demand, 20000);
	cr_assert_not(m.stale);
	cr_assert_str_eq(m.stale_why, "");
	/* the halving schedule in satoshis */
	static const struct { uint64_t h; double btc; } sub[] = {
		{ 0, 50 }, { 209999, 50 }, { 210000, 25 }, { 630000, 6.25 }, { 840000, 3.125 },
		{ 1049999, 3.125 }, { 1050000, 1.5625 }, { 32 * 210000, 1e-8 },
		{ 33 * 210000, 0 }, { 64 * 210000, 0 }, { UINT64_MAX, 0 },
	};
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		r.height = sub[i].h;
		hf_coord_series_market(&r, &m);
		cr_assert_eq(m.subsidy_btc, sub[i].btc, "height %llu: %.10g",
			     (unsigned long long)sub[i].h, m.subsidy_btc);
	}
}

/* ---- write -> parse ---- */

static char *render(const hf_coord_series *s, const char *comments, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	hf_errbuf eb;

	cr_assert_not_null(f);
	cr_assert_eq(hf_coord_series_write(f, s, comments, &eb), 0, "%s", eb.msg);
	cr_assert_eq(fclose(f), 0);
	if (len)
		*len = n;
	return buf;
}

static void assert_same_rows(const hf_coord_series *a, const hf_coord_series *b)
{
	cr_assert_eq(a->n, b->n);
	cr_assert_eq(a->step_ms, b->step_ms);
	for (size_t i = 0; i < a->n; i++) {
		const hf_coord_series_row *x = &a->rows[i], *y = &b->rows[i];
		cr_assert_eq(x->t_ms, y->t_ms, "row %zu", i);
		cr_assert_eq(x->btc_usd, y->btc_usd, "row %zu: %.17g %.17g", i, x->btc_usd, y->btc_usd);
		cr_assert_eq(x->difficulty, y->difficulty, "row %zu", i);
		cr_assert_eq(x->fees_btc, y->fees_btc, "row %zu", i);
		cr_assert_eq(x->height, y->height, "row %zu", i);
		cr_assert_eq(x->power_usd_kwh, y->power_usd_kwh, "row %zu", i);
		cr_assert_eq(x->inference_price, y->inference_price, "row %zu", i);
		cr_assert_eq(x->inference_demand, y->inference_demand, "row %zu", i);
	}
}

Test(coord_series, write_parse_round_trip_is_exact)
{
	hf_coord_series_row rows[6] = {
		{ 1500, 0.1, 5e-324, 0, 0, 0, 0, 0 },
		{ 2500, 1.7976931348623157e308, 1.7976931348623157e308, 123456789.123456789,
		  UINT64_MAX, 1.0 / 3.0, 2.0 / 3.0, 1e-300 },
		{ 3500, 64000.01, 86388558925171.1, 3.12500001, 840000, 0.03125, 0.00014, 20000.5 },
		{ 4500, 1e22, 1, 0.30000000000000004, 1, 5, 1e-9, 3 },
		{ 5500, 2.2250738585072014e-308, 9007199254740993.0, 1, 2, 3, 4, 5 },
		{ 6500, 0x1.fffffffffffffp-1, 0x1.0000000000001p0, 7, 8, 9, 10, 11 },
	};
	hf_coord_series s = { .rows = rows, .n = 6, .step_ms = 1000 }, back;
	hf_errbuf eb;
	size_t len;
	char *text = render(&s, "line one\n\nline three", &len);

	cr_assert(strncmp(text, "# line one\n#\n# line three\n" HEADER
			  "1970-01-01T00:00:01.500Z,0.1,", 60) == 0, "%s", text);
	cr_assert_eq(hf_coord_series_parse(text, len, "rt.csv", &back, &eb), 0, "%s", eb.msg);
	assert_same_rows(&s, &back);
	hf_coord_series_clear(&back);
	free(text);
	/* without comments: the header first */
	text = render(&s, NULL, &len);
	cr_assert(strncmp(text, HEADER, strlen(HEADER)) == 0);
	free(text);
	/* a generated series too, and writing what was read gives the same bytes */
	hf_coord_series_gen g;
	hf_coord_series_gen_defaults(&g);
	g.days = 3;
	g.inference_price_vol = 0.05;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), 0, "%s", eb.msg);
	text = render(&s, "generated", &len);
	cr_assert_eq(hf_coord_series_parse(text, len, "gen.csv", &back, &eb), 0, "%s", eb.msg);
	assert_same_rows(&s, &back);
	size_t len2;
	char *text2 = render(&back, "generated", &len2);
	cr_assert_eq(len, len2);
	cr_assert_eq(memcmp(text, text2, len), 0);
	free(text);
	free(text2);
	hf_coord_series_clear(&s);
	hf_coord_series_clear(&back);
}

Test(coord_series, write_refuses_rows_the_reader_would_refuse)
{
	hf_coord_series_row r[3] = {
		{ .t_ms = 0, .btc_usd = 1, .difficulty = 1 },
		{ .t_ms = 1000, .btc_usd = 1, .difficulty = 1 },
		{ .t_ms = 2000, .btc_usd = 1, .difficulty = 1, .fees_btc = -0.0 },
	};
	hf_coord_series s = { .rows = r, .n = 3, .step_ms = 1000 };
	char *buf = NULL;
	size_t len = 0;
	hf_errbuf eb;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	/* -0 is written as 0 (the reader takes no sign) */
	cr_assert_eq(hf_coord_series_write(f, &s, NULL, &eb), 0, "%s", eb.msg);
	fflush(f);
	cr_assert_not_null(strstr(buf, "1970-01-01T00:00:02Z,1,1,0,0,0,0,0\n"), "%s", buf);
	double saved = r[1].btc_usd;
	r[1].btc_usd = NAN;
	cr_assert_eq(hf_coord_series_write(f, &s, NULL, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "row 1"), "%s", eb.msg);
	r[1].btc_usd = saved;
	r[2].power_usd_kwh = -1;
	cr_assert_eq(hf_coord_series_write(f, &s, NULL, &eb), HF_EINVAL);
	r[2].power_usd_kwh = 0;
	r[0].difficulty = 0;
	cr_assert_eq(hf_coord_series_write(f, &s, NULL, &eb), HF_EINVAL);
	r[0].difficulty = 1;
	r[2].t_ms = 2500;
	cr_assert_eq(hf_coord_series_write(f, &s, NULL, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "evenly spaced"), "%s", eb.msg);
	fclose(f);
	free(buf);
}

Test(coord_series, write_reports_io_errors)
{
	hf_coord_series_row r = { .t_ms = 0, .btc_usd = 1, .difficulty = 1 };
	hf_coord_series s = { .rows = &r, .n = 1 };
	FILE *f = fopen("/dev/full", "w");
	hf_errbuf eb;

	cr_assert_not_null(f);
	cr_assert_eq(hf_coord_series_write(f, &s, "x", &eb), HF_EIO);
	cr_assert_not_null(strstr(eb.msg, "writing the series"), "%s", eb.msg);
	fclose(f);
}

Test(coord_series, time_helpers)
{
	uint64_t t;
	char buf[40];

	cr_assert(hf_coord_series_parse_time("2024-04-20T00:09:27Z", &t));
	cr_assert_eq(t, UINT64_C(1713571767000));
	cr_assert(hf_coord_series_parse_time("1713571767", &t));
	cr_assert_eq(t, UINT64_C(1713571767000));
	cr_assert(hf_coord_series_parse_time("2000-02-29T23:59:59.999Z", &t));
	hf_coord_series_format_time(t, buf, sizeof buf);
	cr_assert_str_eq(buf, "2000-02-29T23:59:59.999Z");
	cr_assert(hf_coord_series_parse_time("9999-12-31T23:59:59Z", &t));
	hf_coord_series_format_time(t, buf, sizeof buf);
	cr_assert_str_eq(buf, "9999-12-31T23:59:59Z");
	cr_assert_not(hf_coord_series_parse_time("1900-02-29T00:00:00Z", &t));
	cr_assert_not(hf_coord_series_parse_time("1969-12-31T23:59:59Z", &t));
	cr_assert_not(hf_coord_series_parse_time("", &t));
	cr_assert_not(hf_coord_series_parse_time("01", &t));
	cr_assert_not(hf_coord_series_parse_time(NULL, &t));
	cr_assert(hf_coord_series_parse_time("0", &t));
	cr_assert_eq(t, 0);
}

/* ---- the generator ---- */

static void gen(const hf_coord_series_gen *g, hf_coord_series *s)
{
	hf_errbuf eb;
	cr_assert_eq(hf_coord_series_generate(g, s, &eb), 0, "%s", eb.msg);
}

Test(coord_series, generator_is_deterministic)
{
	hf_coord_series_gen g;
	hf_coord_series a, b, c;
	size_t la, lb, lc;

	hf_coord_series_gen_defaults(&g);
	g.seed = 42;
	gen(&g, &a);
	gen(&g, &b);
	char *ta = render(&a, NULL, &la), *tb = render(&b, NULL, &lb);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(ta, tb, la), 0, "the same seed gave different series");
	g.seed = 43;
	gen(&g, &c);
	char *tc = render(&c, NULL, &lc);
	cr_assert(la != lc || memcmp(ta, tc, la) != 0, "another seed gave the same series");
	size_t differ = 0;
	for (size_t i = 0; i < a.n; i++)
		differ += a.rows[i].btc_usd != c.rows[i].btc_usd;
	cr_assert_gt(differ, a.n / 2, "only %zu of %zu prices differ", differ, a.n);
	/* the length and the times are the options' */
	cr_assert_eq(a.n, 4032);
	cr_assert_eq(a.step_ms, 300000);
	cr_assert_eq(a.rows[0].t_ms, g.start_ms);
	cr_assert_eq(a.rows[a.n - 1].t_ms, g.start_ms + 4031u * 300000u);
	free(ta);
	free(tb);
	free(tc);
	hf_coord_series_clear(&a);
	hf_coord_series_clear(&b);
	hf_coord_series_clear(&c);
}

/* Spikes: runs of rows with power >= 0.3 USD/kWh (the base price never gets there). */
static size_t count_spikes(const hf_coord_series *s, size_t *min_run, size_t *max_run,
			   double *lo, double *hi)
{
	size_t n = 0, run = 0;

	*min_run = SIZE_MAX;
	*max_run = 0;
	*lo = INFINITY;
	*hi = 0;
	for (size_t i = 0; i <= s->n; i++) {
		bool in = i < s->n && s->rows[i].power_usd_kwh >= 0.3;
		if (in) {
			run++;
			*lo = fmin(*lo, s->rows[i].power_usd_kwh);
			*hi = fmax(*hi, s->rows[i].power_usd_kwh);
		} else if (run) {
			n++;
			*min_run = run < *min_run ? run : *min_run;
			*max_run = run > *max_run ? run : *max_run;
			run = 0;
		}
	}
	return n;
}

Test(coord_series, generator_spikes_at_the_configured_rate)
{
	hf_coord_series_gen g;
	hf_coord_series s;
	size_t mn, mx;
	double lo, hi;

	hf_coord_series_gen_defaults(&g);
	g.days = 100;
	g.spike_per_day = 2;
	g.spike_usd_kwh = 2;
	gen(&g, &s);
	size_t n = count_spikes(&s, &mn, &mx, &lo, &hi);
	/* 200 expected (Poisson s.d. ~14); a wide band */
	cr_assert(n >= 140 && n <= 260, "%zu spikes in 100 days at 2 a day", n);
	/* 15 to 90 minutes at 5-minute rows: 3 to 18 rows */
	cr_assert(mn >= 3 && mx <= 18, "spike lengths %zu..%zu rows", mn, mx);
	/* 1/4 to 2.5 times spike_usd_kwh */
	cr_assert(lo >= 0.5 - 1e-9 && hi <= 5.0 + 1e-9, "spike levels %g..%g", lo, hi);
	/* more in the evening than at night (local time) */
	size_t evening = 0, night = 0;
	for (size_t i = 1; i < s.n; i++) {
		if (!(s.rows[i].power_usd_kwh >= 0.3 && s.rows[i - 1].power_usd_kwh < 0.3))
			continue;
		int64_t loc = (int64_t)(s.rows[i].t_ms / 1000) + g.utc_offset_min * 60;
		int h = (int)((loc % 86400 + 86400) % 86400 / 3600);
		evening += h >= 16 && h < 22;
		night += h >= 0 && h < 6;
	}
	cr_assert_gt(evening, night, "evening %zu night %zu", evening, night);
	hf_coord_series_clear(&s);

	g.spike_per_day = 0.25;
	gen(&g, &s);
	n = count_spikes(&s, &mn, &mx, &lo, &hi);
	cr_assert(n >= 10 && n <= 45, "%zu spikes in 100 days at 0.25 a day", n);
	hf_coord_series_clear(&s);

	g.spike_per_day = 0;
	gen(&g, &s);
	cr_assert_eq(count_spikes(&s, &mn, &mx, &lo, &hi), 0);
	hf_coord_series_clear(&s);
}

Test(coord_series, generator_heights_and_retargets)
{
	hf_coord_series_gen g;
	hf_coord_series s;

	hf_coord_series_gen_defaults(&g);
	g.days = 60;
	g.hashrate_growth_daily = 0;
	g.height = 2016 * 400 - 1; /* the next block starts a period */
	gen(&g, &s);
	size_t retargets = 0;
	for (size_t i = 1; i < s.n; i++) {
		const hf_coord_series_row *p = &s.rows[i - 1], *r = &s.rows[i];
		cr_assert_geq(r->height, p->height, "row %zu: height went down", i);
		bool crossed = (r->height + 1) / 2016 != (p->height + 1) / 2016;
		if (r->difficulty != p->difficulty) {
			cr_assert(crossed, "row %zu: difficulty changed at height %llu", i,
				  (unsigned long long)r->height);
			double ratio = r->difficulty / p->difficulty;
			/* a constant hashrate: 2016 blocks take two weeks give or take ~2.2 % */
			cr_assert(ratio > 0.9 && ratio < 1.1, "row %zu: ratio %g", i, ratio);
			retargets++;
		}
	}
	/* about 8640 blocks in 60 days (s.d. ~93) */
	uint64_t blocks = s.rows[s.n - 1].height - s.rows[0].height;
	cr_assert(blocks > 8200 && blocks < 9100, "%llu blocks in 60 days",
		  (unsigned long long)blocks);
	cr_assert(retargets >= 3 && retargets <= 5, "%zu retargets", retargets);
	hf_coord_series_clear(&s);

	/* the network is faster than the difficulty says: the first retarget raises it by
	 * ~600/500; 10x faster: clamped at 4x as Bitcoin does */
	g.days = 20;
	g.block_interval_s = 500;
	gen(&g, &s);
	double first = s.rows[0].difficulty, after = 0;
	for (size_t i = 1; i < s.n && after == 0; i++)
		if (s.rows[i].difficulty != first)
			after = s.rows[i].difficulty;
	cr_assert(after / first > 1.1 && after / first < 1.3, "ratio %g", after / first);
	hf_coord_series_clear(&s);
	g.block_interval_s = 60;
	g.height = 2016 * 400; /* a whole period ahead: 2016 blocks at 60 s, then clamped */
	gen(&g, &s);
	first = s.rows[0].difficulty;
	after = 0;
	for (size_t i = 1; i < s.n && after == 0; i++)
		if (s.rows[i].difficulty != first)
			after = s.rows[i].difficulty;
	cr_assert_eq(after, round(first * 4), "ratio %g", after / first);
	hf_coord_series_clear(&s);
}

Test(coord_series, generator_follows_public_figures)
{
	static const double closes[] = { 60000, 61000, 59000.5, 65000 };
	static const double fees[] = { 0.1, 5.0 };
	static const hf_coord_series_epoch ep[] = { { 840672, 88.1e12 } };
	static const hf_coord_series_anchor an[] = {
		{ UINT64_C(1713571767000), 840000 }, /* 2024-04-20T00:09:27Z */
	};
	hf_coord_series_gen g;
	hf_coord_series s;
	hf_errbuf eb;

	hf_coord_series_gen_defaults(&g);
	g.start_ms = UINT64_C(1713312000000); /* 2024-04-17T00:00:00Z */
	g.days = 10;
	g.height = 839580;
	g.difficulty = 86.39e12;
	g.btc_daily = closes;
	g.btc_daily_n = 4;
	g.fees_daily = fees;
	g.fees_daily_n = 2;
	g.epochs = ep;
	g.nepochs = 1;
	g.anchors = an;
	g.nanchors = 1;
	gen(&g, &s);
	for (size_t k = 0; k < 4; k++)
		cr_assert_eq(s.rows[k * 288].btc_usd, closes[k], "day %zu: %.2f", k,
			     s.rows[k * 288].btc_usd);
	/* the day's fee level (x the diurnal swing and noise); after the list: fees_btc */
	double d0 = 0, d1 = 0, d5 = 0;
	for (size_t i = 0; i < 288; i++) {
		d0 += s.rows[i].fees_btc / 288;
		d1 += s.rows[288 + i].fees_btc / 288;
		d5 += s.rows[5 * 288 + i].fees_btc / 288;
	}
	cr_assert(d0 > 0.05 && d0 < 0.2 && d1 > 2.5 && d1 < 10 && d5 > 0.0125 && d5 < 0.05,
		  "fees %g %g %g", d0, d1, d5);
	for (size_t i = 0; i < s.n; i++) {
		const hf_coord_series_row *r = &s.rows[i];
		if (r->t_ms < an[0].t_ms)
			cr_assert_lt(r->height, 840000, "row %zu", i);
		else if (r->t_ms < an[0].t_ms + 300000) /* the anchor's row (a block may follow) */
			cr_assert(r->height >= 840000 && r->height <= 840002, "row %zu: %llu", i,
				  (unsigned long long)r->height);
		cr_assert_eq(r->difficulty, r->height + 1 >= 840672 ? 88.1e12 : 86.39e12,
			     "row %zu height %llu", i, (unsigned long long)r->height);
	}
	cr_assert_gt(s.rows[s.n - 1].height, 840672);
	hf_coord_series_clear(&s);

	/* bad figures are refused, naming the field */
	static const double bad_close[] = { 1, NAN };
	g.btc_daily = bad_close;
	g.btc_daily_n = 2;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "btc_daily[1]"), "%s", eb.msg);
	g.btc_daily_n = 0;
	static const hf_coord_series_anchor early[] = { { 0, 840000 } };
	g.anchors = early;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "anchors[0]"), "%s", eb.msg);
	g.nanchors = 0;
	static const hf_coord_series_epoch unsorted[] = { { 5, 1 }, { 5, 2 } };
	g.epochs = unsorted;
	g.nepochs = 2;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "epochs[1].height"), "%s", eb.msg);
}

/* The mean of f over rows whose local hour is in [h0, h1). */
static double mean_at(const hf_coord_series *s, int off_min, int h0, int h1, bool power,
		      int weekend)
{
	double sum = 0;
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		int64_t loc = (int64_t)(s->rows[i].t_ms / 1000) + off_min * 60;
		int h = (int)((loc % 86400 + 86400) % 86400 / 3600);
		int wd = (int)(((loc / 86400 + 4) % 7 + 7) % 7);
		bool we = wd == 0 || wd == 6;
		if (h < h0 || h >= h1 || (weekend >= 0 && we != (weekend == 1)))
			continue;
		double v = power ? s->rows[i].power_usd_kwh : s->rows[i].inference_demand;
		if (power && v >= 0.3)
			continue; /* spikes aside: the shape */
		sum += v;
		n++;
	}
	cr_assert_gt(n, 0);
	return sum / (double)n;
}

Test(coord_series, generator_daily_shapes)
{
	hf_coord_series_gen g;
	hf_coord_series s;

	hf_coord_series_gen_defaults(&g);
	g.days = 28;
	gen(&g, &s);
	double peak = mean_at(&s, g.utc_offset_min, 17, 20, true, -1);
	double trough = mean_at(&s, g.utc_offset_min, 2, 5, true, -1);
	cr_assert_gt(peak, 2 * trough, "power evening %g night %g", peak, trough);
	double day = mean_at(&s, g.utc_offset_min, 12, 16, false, 0);
	double night = mean_at(&s, g.utc_offset_min, 0, 4, false, 0);
	cr_assert_gt(day, 2 * night, "demand day %g night %g", day, night);
	double we = mean_at(&s, g.utc_offset_min, 0, 24, false, 1);
	double wk = mean_at(&s, g.utc_offset_min, 0, 24, false, 0);
	cr_assert(we / wk > 0.65 && we / wk < 0.85, "weekend / weekday %g", we / wk);
	for (size_t i = 0; i < s.n; i++) {
		const hf_coord_series_row *r = &s.rows[i];
		cr_assert(isfinite(r->btc_usd) && r->btc_usd > 0 && r->fees_btc >= 0 &&
			  r->power_usd_kwh >= 0 && r->inference_demand >= 0 && r->difficulty > 0,
			  "row %zu", i);
		cr_assert_eq(r->inference_price, g.inference_price);
	}
	hf_coord_series_clear(&s);
}

Test(coord_series, generator_without_the_extensions)
{
	/* a generator filled field by field with only the original fields (no gen_defaults) */
	hf_coord_series_gen g = {
		.start_ms = UINT64_C(1713312000000), .days = 2, .step_s = 300, .seed = 5,
		.btc_usd = 60000, .btc_vol_daily = 0.03, .difficulty = 8.8e13, .height = 840100,
		.fees_btc = 0.2, .power_usd_kwh = 0.04, .spike_per_day = 1, .spike_usd_kwh = 1,
		.inference_price = 0.0001, .demand_base = 1000, .demand_amplitude = 500,
	};
	hf_coord_series s;

	gen(&g, &s);
	cr_assert_eq(s.n, 576);
	uint64_t blocks = s.rows[s.n - 1].height - s.rows[0].height;
	cr_assert(blocks > 230 && blocks < 350, "%llu blocks in 2 days", (unsigned long long)blocks);
	hf_coord_series_clear(&s);
}

Test(coord_series, generator_refuses_bad_options)
{
	hf_coord_series_gen g;
	hf_coord_series s;
	hf_errbuf eb;

	hf_coord_series_gen_defaults(&g);
	g.days = 0;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "days: expected 1..3650, got 0"), "%s", eb.msg);
	hf_coord_series_gen_defaults(&g);
	g.step_s = 0;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "step_s"), "%s", eb.msg);
	hf_coord_series_gen_defaults(&g);
	g.btc_usd = NAN;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "btc_usd: expected a finite number"), "%s", eb.msg);
	hf_coord_series_gen_defaults(&g);
	g.power_usd_kwh = -1;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "power_usd_kwh"), "%s", eb.msg);
	hf_coord_series_gen_defaults(&g);
	g.days = 3650;
	g.step_s = 1;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_ETOOBIG);
	cr_assert_null(s.rows);
	hf_coord_series_gen_defaults(&g);
	g.utc_offset_min = 2000;
	cr_assert_eq(hf_coord_series_generate(&g, &s, &eb), HF_EINVAL);
	cr_assert_not_null(strstr(eb.msg, "utc_offset_min"), "%s", eb.msg);
}

/* ---- the shipped series ---- */

Test(coord_series, shipped_series_parse_with_14_days_at_5_minutes)
{
	const char *root = getenv("HF_SOURCE_ROOT");
	char dir[4096];
	size_t full = 0, files = 0;

	cr_assert_not_null(root, "HF_SOURCE_ROOT is not set (run through meson test)");
	snprintf(dir, sizeof dir, "%s/packaging/series", root);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "%s", dir);
	for (struct dirent *e; (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".csv") != 0)
			continue;
		char path[8192];
		hf_coord_series s;
		hf_errbuf eb;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		cr_assert_eq(hf_coord_series_load(path, &s, &eb), 0, "%s", eb.msg);
		files++;
		/* the feed server's demo series (demo*.csv) may be shorter; every other is 14 days
		 * at 5 minutes, with its provenance in a comment header */
		if (strncmp(e->d_name, "demo", 4) != 0) {
			cr_assert_eq(s.n, 4032, "%s: %zu rows", e->d_name, s.n);
			cr_assert_eq(s.step_ms, 300000, "%s", e->d_name);
			cr_assert_eq(s.rows[s.n - 1].t_ms + s.step_ms - s.rows[0].t_ms,
				     UINT64_C(14) * 86400000u, "%s", e->d_name);
			char *text = NULL;
			size_t len;
			cr_assert_eq(hf_file_read(path, HF_COORD_SERIES_MAX_BYTES, &text, &len, &eb), 0);
			cr_assert_eq(text[0], '#', "%s: no provenance header", e->d_name);
			free(text);
			full++;
		}
		hf_coord_series_clear(&s);
	}
	closedir(d);
	cr_assert_geq(full, 2, "%zu shipped 14-day series of %zu files", full, files);
}

/* ---- the series-gen command (the real program) ---- */

static int run_cmd(const char *args, const char *out_file)
{
	const char *b = getenv("HF_BUILD_ROOT");
	char cmd[4096];

	cr_assert_not_null(b, "HF_BUILD_ROOT is not set (run through meson test)");
	snprintf(cmd, sizeof cmd, "%s/runtime/coord/hashflop-coord series-gen %s >%s 2>&1", b,
		 args, out_file);
	int st = system(cmd);
	cr_assert(WIFEXITED(st), "%s", cmd);
	return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
	char *d = NULL;
	size_t n;
	cr_assert_eq(hf_file_read(path, HF_COORD_SERIES_MAX_BYTES, &d, &n, NULL), 0, "%s", path);
	return d;
}

Test(coord_series, series_gen_command)
{
	char dir[] = "/tmp/hf_series_cmd_XXXXXX", log[256], out[256], args[1024];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(log, sizeof log, "%s/log", dir);
	snprintf(out, sizeof out, "%s/s.csv", dir);

	cr_assert_eq(run_cmd("--help", log), 0);
	char *t = slurp(log);
	cr_assert_not_null(strstr(t, "--spike-per-day"), "%s", t);
	free(t);

	static const struct { const char *args, *msg; } bad[] = {
		{ "--days 0", "--days \"0\": expected a whole number of days, 1..3650" },
		{ "--days x", "--days \"x\"" },
		{ "--step 90000", "--step \"90000\"" },
		{ "--btc-usd nan", "--btc-usd \"nan\": expected a finite number" },
		{ "--power -1", "power_usd_kwh: expected a finite number in" },
		{ "--start yesterday", "--start \"yesterday\": expected RFC 3339" },
		{ "--epochs 5", "--epochs \"5\": expected HEIGHT:DIFFICULTY" },
		{ "--anchors 2024-04-20T00:09:27Z:5", "--anchors" },
		{ "--bogus", "unknown option \"--bogus\"" },
		{ "--days", "missing value for \"--days\"" },
		{ "extra", "unexpected argument \"extra\"" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(args, sizeof args, "--out %s %s", out, bad[i].args);
		cr_expect_eq(run_cmd(args, log), 2, "%s", bad[i].args);
		t = slurp(log);
		cr_expect_not_null(strstr(t, bad[i].msg), "%s: \"%s\"", bad[i].args, t);
		free(t);
		cr_expect_neq(access(out, F_OK), 0, "%s: a file was written", bad[i].args);
	}

	/* --out writes a series that parses, with its options in the header */
	snprintf(args, sizeof args, "--days 2 --seed 7 --comment 'provenance: test' --btc-daily "
		 "60000,61000,62000 --epochs 921500:1.6e14 --out %s", out);
	cr_assert_eq(run_cmd(args, log), 0);
	hf_coord_series s;
	hf_errbuf eb;
	cr_assert_eq(hf_coord_series_load(out, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(s.n, 576);
	cr_assert_eq(s.rows[288].btc_usd, 61000);
	hf_coord_series_clear(&s);
	char *file = slurp(out);
	cr_assert(strncmp(file, "# provenance: test\n# made by: hashflop-coord series-gen", 55) == 0,
		  "%.200s", file);
	cr_assert_not_null(strstr(file, "--seed 7 "));
	cr_assert_not_null(strstr(file, "--btc-daily 60000,61000,62000"));
	cr_assert_not_null(strstr(file, "--epochs 921500:160000000000000"));
	/* standard output is the same bytes */
	snprintf(args, sizeof args, "--days 2 --seed 7 --comment 'provenance: test' --btc-daily "
		 "60000,61000,62000 --epochs 921500:1.6e14");
	cr_assert_eq(run_cmd(args, log), 0);
	char *again = slurp(log);
	cr_assert_str_eq(file, again);
	free(again);
	free(file);
	/* a directory that does not exist: exit 1, nothing left behind */
	snprintf(args, sizeof args, "--days 1 --out %s/no/such/dir.csv", dir);
	cr_assert_eq(run_cmd(args, log), 1);

	snprintf(args, sizeof args, "rm -rf %s", dir);
	cr_assert_eq(system(args), 0);
}
