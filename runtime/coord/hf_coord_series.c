/* hf_coord_series: the market time series' strict CSV reader and writer, lookup by time, and a
 * row as a market (the generator is hf_coord_series_gen.c).
 *
 * Invariants: a parsed series has n >= 1 rows, strictly increasing in time and evenly spaced
 * (step_ms, 0 when n == 1); every number finite and >= 0, difficulty > 0. Input is never
 * trusted: each line is capped (HF_COORD_SERIES_LINE_MAX), the whole text and the row count
 * too, and every error names the file, the line and the column, with the offending text
 * cleaned (hf_text_clean) and cut short. On any error *out is left empty.
 * Threading: reentrant; a series belongs to its caller.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hf_coord_feed.h"
#include "hf_coord_series.h"
#include "hf_file.h"
#include "hf_text.h"
#include "hf_util.h"

#define SERIES_HEADER \
	"time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,inference_demand"
#define SERIES_COLS 8
#define FIELD_MAX 64            /* longest field shown in an error */

static const char *const col_name[SERIES_COLS] = {
	"time", "btc_usd", "difficulty", "fees_btc", "height", "power_usd_kwh",
	"inference_price", "inference_demand",
};

/* The latest time either format may name: 9999-12-31T23:59:59Z. */
#define SERIES_MAX_UNIX_S 253402300799ull

/* ---- calendar (proleptic Gregorian, UTC; no dependence on the process's TZ) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also 't'/'z', "+00:00", "-00:00"; at most 3 fraction digits)
 * to ms since the epoch. */
static bool parse_rfc3339(const char *s, size_t n, uint64_t *ms)
{
	unsigned y, mo, d, h, mi, sec, frac = 0;
	static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t i = 19;

	if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return false;
	if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
	    !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
		return false;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return false;
	if (s[i] == '.') {
		size_t k = 0;
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++) {
			if (k >= 3)
				return false;
			frac = frac * 10 + (unsigned)(s[i] - '0');
		}
		if (k == 0)
			return false;
		for (; k < 3; k++)
			frac *= 10;
	}
	if (!((n - i == 1 && (s[i] == 'Z' || s[i] == 'z')) ||
	      (n - i == 6 && (memcmp(s + i, "+00:00", 6) == 0 || memcmp(s + i, "-00:00", 6) == 0))))
		return false;
	int64_t days = days_from_civil(y, mo, d);
	*ms = ((uint64_t)days * 86400u + h * 3600u + mi * 60u + sec) * 1000u + frac;
	return true;
}

/* A field is shown in an error cleaned and cut to FIELD_MAX bytes. */
static void show(char *dst, size_t dstsz, const char *s, size_t n)
{
	bool cut = n > FIELD_MAX;

	hf_text_clean(dst, dstsz - 4, s, cut ? FIELD_MAX : n);
	if (cut)
		strcat(dst, "...");
}

static bool parse_time(const char *s, size_t n, uint64_t *ms)
{
	unsigned v;
	uint64_t secs = 0;

	if (n > 0 && n <= 12 && s[0] >= '0' && s[0] <= '9') {
		size_t i;
		for (i = 0; i < n && digits(s + i, 1, &v); i++)
			secs = secs * 10 + v;
		if (i == n) {
			if (secs > SERIES_MAX_UNIX_S || (n > 1 && s[0] == '0'))
				return false;
			*ms = secs * 1000u;
			return true;
		}
	}
	return parse_rfc3339(s, n, ms);
}

/* A decimal number: [digits][.digits][e[+-]digits], no sign, no spaces, no inf/nan/hex. */
static bool parse_number(const char *s, size_t n, double *out)
{
	char buf[FIELD_MAX + 1];
	size_t i = 0, mant = 0;
	char *end;

	if (n == 0 || n > FIELD_MAX)
		return false;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		mant++;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			mant++;
	if (mant == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			e++;
		if (e == 0)
			return false;
	}
	if (i != n)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	return end == buf + n && isfinite(*out);
}

typedef struct line_ctx {
	const char *name;
	size_t lineno;
	hf_errbuf *eb;
} line_ctx;

static int field_err(const line_ctx *c, int col, const char *what, const char *s, size_t n)
{
	char got[FIELD_MAX + 8];

	show(got, sizeof got, s, n);
	return hf_fail(c->eb, HF_EPARSE, "%s:%zu: %s: %s, got \"%s\"", c->name, c->lineno,
		       col_name[col], what, got);
}

/* Splits one data line (no newline) into the row. */
static int parse_row(const line_ctx *c, const char *s, size_t n, hf_coord_series_row *r)
{
	const char *f[SERIES_COLS];
	size_t fl[SERIES_COLS], nf = 0, start = 0;
	double v[SERIES_COLS];

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ',')
			continue;
		if (nf < SERIES_COLS) {
			f[nf] = s + start;
			fl[nf] = i - start;
		}
		nf++;
		start = i + 1;
	}
	if (nf != SERIES_COLS)
		return hf_fail(c->eb, HF_EPARSE, "%s:%zu: expected %d columns, got %zu", c->name,
			       c->lineno, SERIES_COLS, nf);
	if (!parse_time(f[0], fl[0], &r->t_ms))
		return field_err(c, 0, "expected RFC 3339 UTC (2024-04-20T00:05:00Z) or Unix "
				 "seconds", f[0], fl[0]);
	for (int k = 1; k < SERIES_COLS; k++) {
		if (k == 4) {
			char buf[24];
			uint64_t h;
			if (fl[k] == 0 || fl[k] >= sizeof buf)
				return field_err(c, k, "expected an integer >= 0", f[k], fl[k]);
			memcpy(buf, f[k], fl[k]);
			buf[fl[k]] = '\0';
			if (!hf_parse_u64(buf, 0, UINT64_MAX, &h) || (fl[k] > 1 && buf[0] == '0'))
				return field_err(c, k, "expected an integer >= 0", f[k], fl[k]);
			r->height = h;
			continue;
		}
		if (!parse_number(f[k], fl[k], &v[k]))
			return field_err(c, k, "expected a finite number >= 0", f[k], fl[k]);
		if (k == 2 && !(v[k] > 0))
			return field_err(c, k, "expected a finite number > 0", f[k], fl[k]);
	}
	r->btc_usd = v[1];
	r->difficulty = v[2];
	r->fees_btc = v[3];
	r->power_usd_kwh = v[5];
	r->inference_price = v[6];
	r->inference_demand = v[7];
	return 0;
}

static void fmt_time(uint64_t t_ms, char *buf, size_t sz)
{
	int y;
	unsigned mo, d;
	uint64_t s = t_ms / 1000u;
	unsigned ms = (unsigned)(t_ms % 1000u), sod = (unsigned)(s % 86400u);

	civil_from_days((int64_t)(s / 86400u), &y, &mo, &d);
	if (ms)
		snprintf(buf, sz, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", y, mo, d, sod / 3600,
			 sod / 60 % 60, sod % 60, ms);
	else
		snprintf(buf, sz, "%04d-%02u-%02uT%02u:%02u:%02uZ", y, mo, d, sod / 3600,
			 sod / 60 % 60, sod % 60);
}

/* Checks the row's time against the previous ones (strictly increasing, evenly spaced). */
static int check_time(const line_ctx *c, hf_coord_series *s, const hf_coord_series_row *r)
{
	char a[40], b[40];

	if (s->n == 0)
		return 0;
	uint64_t prev = s->rows[s->n - 1].t_ms, dt = r->t_ms - prev;
	if (r->t_ms > prev && (s->n == 1 || dt == s->step_ms)) {
		if (s->n == 1)
			s->step_ms = dt;
		return 0;
	}
	fmt_time(r->t_ms, a, sizeof a);
	fmt_time(prev, b, sizeof b);
	if (r->t_ms <= prev)
		return hf_fail(c->eb, HF_EPARSE, "%s:%zu: time: %s is not after the previous row's "
			       "%s (rows must be strictly increasing in time)", c->name, c->lineno,
			       a, b);
	return hf_fail(c->eb, HF_EPARSE, "%s:%zu: time: %s is %" PRIu64 " ms after the previous "
		       "row, the series' step is %" PRIu64 " ms (rows must be evenly spaced)",
		       c->name, c->lineno, a, dt, s->step_ms);
}

static int append(const line_ctx *c, hf_coord_series *s, size_t *cap,
		  const hf_coord_series_row *r)
{
	if (s->n == *cap) {
		if (s->n >= HF_COORD_SERIES_MAX_ROWS)
			return hf_fail(c->eb, HF_ETOOBIG, "%s:%zu: more than %u rows", c->name,
				       c->lineno, HF_COORD_SERIES_MAX_ROWS);
		size_t ncap = *cap ? *cap * 2 : 1024;
		if (ncap > HF_COORD_SERIES_MAX_ROWS)
			ncap = HF_COORD_SERIES_MAX_ROWS;
		hf_coord_series_row *nr = realloc(s->rows, ncap * sizeof *nr);
		if (!nr)
			return hf_fail(c->eb, HF_ENOMEM, "%s: out of memory at %zu rows", c->name,
				       s->n);
		s->rows = nr;
		*cap = ncap;
	}
	s->rows[s->n++] = *r;
	return 0;
}

static int parse_line(line_ctx *c, const char *p, size_t n, bool *have_header,
		      hf_coord_series *s, size_t *cap)
{
	hf_coord_series_row r;
	char got[FIELD_MAX + 8];
	int rc;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (memchr(p, '\0', n))
		return hf_fail(c->eb, HF_EPARSE, "%s:%zu: a NUL byte", c->name, c->lineno);
	if (!hf_utf8_valid(p, n))
		return hf_fail(c->eb, HF_EPARSE, "%s:%zu: not valid UTF-8", c->name, c->lineno);
	if (n == 0 || p[0] == '#')
		return 0;
	if (!*have_header) {
		if (n != strlen(SERIES_HEADER) || memcmp(p, SERIES_HEADER, n) != 0) {
			show(got, sizeof got, p, n);
			return hf_fail(c->eb, HF_EPARSE, "%s:%zu: header: expected \"%s\", got \"%s\"",
				       c->name, c->lineno, SERIES_HEADER, got);
		}
		*have_header = true;
		return 0;
	}
	if ((rc = parse_row(c, p, n, &r)) < 0 || (rc = check_time(c, s, &r)) < 0)
		return rc;
	return append(c, s, cap, &r);
}

int hf_coord_series_parse(const char *text, size_t len, const char *name,
			  hf_coord_series *out, hf_errbuf *eb)
{
	hf_coord_series s = { 0 };
	line_ctx c = { .name = name ? name : "series", .lineno = 0, .eb = eb };
	bool have_header = false;
	size_t cap = 0, pos = 0;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (len > HF_COORD_SERIES_MAX_BYTES)
		return hf_fail(eb, HF_ETOOBIG, "%s: %zu bytes, over the limit of %u", c.name, len,
			       HF_COORD_SERIES_MAX_BYTES);
	while (pos < len) {
		const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - p) : len - pos;
		c.lineno++;
		if (n > HF_COORD_SERIES_LINE_MAX) {
			rc = hf_fail(eb, HF_ETOOBIG, "%s:%zu: line longer than %u bytes", c.name,
				     c.lineno, HF_COORD_SERIES_LINE_MAX);
			goto free_rows;
		}
		if ((rc = parse_line(&c, p, n, &have_header, &s, &cap)) < 0)
			goto free_rows;
		pos += n + (nl ? 1 : 0);
	}
	if (!have_header) {
		rc = hf_fail(eb, HF_EPARSE, "%s: no header line (expected \"%s\")", c.name,
			     SERIES_HEADER);
		goto free_rows;
	}
	if (s.n == 0) {
		rc = hf_fail(eb, HF_EPARSE, "%s: no rows after the header", c.name);
		goto free_rows;
	}
	*out = s;
	return 0;

free_rows:
	free(s.rows);
	return rc;
}

int hf_coord_series_load(const char *path, hf_coord_series *out, hf_errbuf *eb)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = hf_file_read(path, HF_COORD_SERIES_MAX_BYTES, &text, &len, eb)) < 0)
		return rc;
	rc = hf_coord_series_parse(text, len, path, out, eb);
	free(text);
	return rc;
}

void hf_coord_series_clear(hf_coord_series *s)
{
	if (!s)
		return;
	free(s->rows);
	memset(s, 0, sizeof *s);
}

/* The shortest %g form that reads back as exactly v. */
static void fmt_num(double v, char *buf, size_t sz)
{
	if (v == 0) { /* -0 too: the reader takes no sign */
		snprintf(buf, sz, "0");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sz, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

static int write_comments(FILE *f, const char *comments)
{
	const char *p = comments;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n ? fprintf(f, "# %.*s\n", (int)n, p) < 0 : fputs("#\n", f) == EOF)
			return -1;
		p += n + (nl ? 1 : 0);
	}
	return 0;
}

/* What the writer writes, the reader must take back. */
static int check_rows(const hf_coord_series *s, hf_errbuf *eb)
{
	for (size_t i = 0; i < s->n; i++) {
		const hf_coord_series_row *r = &s->rows[i];
		double x[6] = { r->btc_usd, r->difficulty, r->fees_btc, r->power_usd_kwh,
				r->inference_price, r->inference_demand };
		for (int k = 0; k < 6; k++)
			if (!isfinite(x[k]) || x[k] < 0 || (k == 1 && x[k] == 0))
				return hf_fail(eb, HF_EINVAL, "row %zu: a number the reader would refuse "
					       "(not finite, negative, or a zero difficulty)", i);
		if (i && (r->t_ms <= s->rows[i - 1].t_ms ||
			  (i > 1 && r->t_ms - s->rows[i - 1].t_ms != s->rows[1].t_ms - s->rows[0].t_ms)))
			return hf_fail(eb, HF_EINVAL, "row %zu: times not strictly increasing and "
				       "evenly spaced", i);
		if (r->t_ms > SERIES_MAX_UNIX_S * 1000u + 999u)
			return hf_fail(eb, HF_EINVAL, "row %zu: time after 9999-12-31", i);
	}
	return 0;
}

int hf_coord_series_write(FILE *f, const hf_coord_series *s, const char *comments,
			  hf_errbuf *eb)
{
	char t[40], v[6][40];

	if (check_rows(s, eb) < 0)
		return HF_EINVAL;
	if (comments && write_comments(f, comments) < 0)
		goto io;
	if (fputs(SERIES_HEADER "\n", f) == EOF)
		goto io;
	for (size_t i = 0; i < s->n; i++) {
		const hf_coord_series_row *r = &s->rows[i];
		fmt_time(r->t_ms, t, sizeof t);
		fmt_num(r->btc_usd, v[0], sizeof v[0]);
		fmt_num(r->difficulty, v[1], sizeof v[1]);
		fmt_num(r->fees_btc, v[2], sizeof v[2]);
		fmt_num(r->power_usd_kwh, v[3], sizeof v[3]);
		fmt_num(r->inference_price, v[4], sizeof v[4]);
		fmt_num(r->inference_demand, v[5], sizeof v[5]);
		if (fprintf(f, "%s,%s,%s,%s,%" PRIu64 ",%s,%s,%s\n", t, v[0], v[1], v[2], r->height,
			    v[3], v[4], v[5]) < 0)
			goto io;
	}
	if (fflush(f) != 0 || ferror(f))
		goto io;
	return 0;
io:
	return hf_fail(eb, HF_EIO, "writing the series: %s", strerror(errno));
}

bool hf_coord_series_parse_time(const char *s, uint64_t *t_ms)
{
	return s && parse_time(s, strlen(s), t_ms);
}

void hf_coord_series_format_time(uint64_t t_ms, char *buf, size_t sz)
{
	fmt_time(t_ms, buf, sz);
}

size_t hf_coord_series_index_at(const hf_coord_series *s, uint64_t t_ms)
{
	size_t lo = 0, hi;

	if (!s || s->n == 0 || t_ms < s->rows[0].t_ms)
		return 0;
	hi = s->n; /* invariant: rows[lo].t_ms <= t_ms, and every row >= hi is after t_ms */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->rows[mid].t_ms <= t_ms)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

void hf_coord_series_market(const hf_coord_series_row *r, hf_coord_market *m)
{
	memset(m, 0, sizeof *m);
	m->at_ms = r->t_ms;
	m->btc_usd = r->btc_usd;
	m->difficulty = r->difficulty;
	m->fees_btc = r->fees_btc;
	m->subsidy_btc = hf_coord_subsidy_btc(r->height);
	m->power_usd_kwh = r->power_usd_kwh;
	m->infer_price = r->inference_price;
	m->infer_demand = r->inference_demand;
	m->stale = false;
}
