/* bench_report: `hashflop-bench report RUN.json... --out DIR`: report.md from one or more run
 * documents (bench_energy.h), side by side: per section, rate and efficiency per
 * implementation and shape with the references' ratios, the windows' watts, joules and power
 * source, a banner when power is estimated, and PNG plots (bar charts of rate and efficiency,
 * time series of rate and power, efficiency against power for --power-limits sweeps) drawn by
 * gnuplot, run as a program.
 *
 * Invariants: run documents are outside input: every field is type-checked before use, and
 * every string is cleaned (hf_text_clean) and escaped for Markdown tables; labels reach
 * gnuplot only through a fixed safe character set, in data files and a script this program
 * writes in DIR, and gnuplot is exec'd (no shell) with DIR as its working directory, so no
 * path or label is ever parsed as gnuplot or shell syntax. Without gnuplot (or when it fails)
 * report.md is still written and says that the plots were skipped and why.
 * Threading: the caller's thread; gnuplot is a child process waited for.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_bench.h"
#include "hf_file.h"
#include "hf_text.h"
#include "hf_util.h"

#define MAX_RUNS 8
#define MAX_ROWS 256
#define MAX_PLOTS 64

typedef struct run {
	const char *file;
	json_t *doc, *windows, *series;
	char label[16], host[128], command[32], version[32];
	char source[32], boundary[32], detail[512], problems[512];
	bool estimated;
} run;

/* A table row: one implementation at one shape (and power limit) across the runs. */
typedef struct row {
	char section[32], impl[96], shape[64];
	double limit_w;            /* 0: none */
	bool reference;
	const json_t *w[MAX_RUNS]; /* the window in each run, or NULL */
} row;

typedef struct report {
	const char *out, *gnuplot;
	run runs[MAX_RUNS];
	size_t nruns;
	row rows[MAX_ROWS];
	size_t nrows;
	char sections[8][32];
	size_t nsections;
	char plots[MAX_PLOTS][96]; /* PNGs the script draws, with their captions */
	char captions[MAX_PLOTS][160];
	size_t nplots;
	char plot_note[512];       /* why the plots were skipped, "" when drawn */
} report;

/* The references of the known sections (ratios are ours / these, same run and shape). */
static const struct {
	const char *section, *title, *refs[2];
} known[] = {
	{ "hash", "SHA-256d scanners (`hash`)", { "ref", NULL } },
	{ "gemm", "SGEMM (`gemm`)", { "openblas", "clblast" } },
	{ "infer", "Inference (`infer`)", { "torch", NULL } },
};

static size_t known_index(const char *section)
{
	for (size_t i = 0; i < HF_ARRAY_SIZE(known); i++)
		if (strcmp(known[i].section, section) == 0)
			return i;
	return HF_ARRAY_SIZE(known);
}

/* ---- strings from the documents ---- */

static void jstr(const json_t *o, const char *key, char *out, size_t size)
{
	const char *s = json_string_value(json_object_get(o, key));
	hf_text_clean(out, size, s ? s : "", s ? strlen(s) : 0);
}

static double jnum(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	double d = json_is_number(v) ? json_number_value(v) : NAN;
	return isfinite(d) ? d : NAN;
}

/* A Markdown table cell: the cleaned string with '|' escaped. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|' || *s == '\\' || *s == '`' || *s == '*' || *s == '_' || *s == '<')
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* A label for gnuplot: letters, digits and " .:/x+-=@,()" only; anything else becomes '_'. */
static void plot_label(const char *s, char *out, size_t size)
{
	size_t n = 0;
	for (; *s && n + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || strchr(" .:/x+-=@,()", c);
		out[n++] = ok ? (char)c : '_';
	}
	out[n] = '\0';
}

static void fmt_num(double v, char *buf, size_t size)
{
	if (!isfinite(v))
		snprintf(buf, size, "-");
	else if (fabs(v) >= 100)
		snprintf(buf, size, "%.0f", v);
	else if (fabs(v) >= 1)
		snprintf(buf, size, "%.2f", v);
	else
		snprintf(buf, size, "%.3g", v);
}

/* ---- loading ---- */

static int load_run(report *r, const char *file)
{
	json_error_t je;
	run *x = &r->runs[r->nruns];
	memset(x, 0, sizeof *x);
	x->file = file;
	x->doc = json_load_file(file, 0, &je);
	if (!x->doc) {
		fprintf(stderr, "hashflop-bench report: %s: not JSON (line %d: %s)\n", file, je.line,
			je.text);
		return -1;
	}
	const json_t *v = json_object_get(x->doc, "hashflop_bench");
	x->windows = json_object_get(x->doc, "windows");
	x->series = json_object_get(x->doc, "series");
	const json_t *p = json_object_get(x->doc, "power");
	if (!json_is_integer(v) || json_integer_value(v) != 1 || !json_is_array(x->windows) ||
	    !json_is_object(p)) {
		fprintf(stderr, "hashflop-bench report: %s: not a hashflop-bench run document "
				"(expected \"hashflop_bench\": 1, \"power\" and \"windows\"; write one "
				"with --json FILE)\n", file);
		json_decref(x->doc);
		return -1;
	}
	if (!json_is_array(x->series))
		x->series = NULL;
	snprintf(x->label, sizeof x->label, "run%zu", r->nruns + 1);
	jstr(x->doc, "host", x->host, sizeof x->host);
	jstr(x->doc, "command", x->command, sizeof x->command);
	jstr(x->doc, "version", x->version, sizeof x->version);
	jstr(p, "source", x->source, sizeof x->source);
	jstr(p, "boundary", x->boundary, sizeof x->boundary);
	jstr(p, "detail", x->detail, sizeof x->detail);
	jstr(p, "problems", x->problems, sizeof x->problems);
	x->estimated = !json_is_false(json_object_get(p, "estimated")); /* unknown: estimated */
	r->nruns++;
	return 0;
}

/* Section names become file names and plot titles: [A-Za-z0-9_-] only. */
static bool section_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static void add_section(report *r, const char *s)
{
	for (size_t i = 0; i < r->nsections; i++)
		if (strcmp(r->sections[i], s) == 0)
			return;
	if (r->nsections < HF_ARRAY_SIZE(r->sections))
		hf_strlcpy(r->sections[r->nsections++], s, sizeof r->sections[0]);
}

/* Rows in the order of first appearance; the known sections first, in their order. */
static void collect_rows(report *r)
{
	for (size_t k = 0; k < HF_ARRAY_SIZE(known); k++)
		for (size_t i = 0; i < r->nruns; i++) {
			size_t j;
			json_t *w;
			json_array_foreach(r->runs[i].windows, j, w) {
				char s[32];
				jstr(w, "section", s, sizeof s);
				if (strcmp(s, known[k].section) == 0)
					add_section(r, s);
			}
		}
	for (size_t i = 0; i < r->nruns; i++) {
		size_t j;
		json_t *w;
		json_array_foreach(r->runs[i].windows, j, w) {
			row key = { 0 };
			if (!json_is_object(w))
				continue;
			jstr(w, "section", key.section, sizeof key.section);
			jstr(w, "impl", key.impl, sizeof key.impl);
			jstr(w, "shape", key.shape, sizeof key.shape);
			if (!section_name_ok(key.section) || !key.impl[0]) {
				fprintf(stderr, "hashflop-bench report: %s: window %zu left out: its "
						"section must be [A-Za-z0-9_-]+ and its impl set\n",
					r->runs[i].file, j);
				continue;
			}
			add_section(r, key.section);
			key.limit_w = isfinite(jnum(w, "power_limit_w")) ? jnum(w, "power_limit_w") : 0;
			key.reference = json_is_true(json_object_get(w, "reference"));
			size_t n;
			for (n = 0; n < r->nrows; n++)
				if (strcmp(r->rows[n].section, key.section) == 0 &&
				    strcmp(r->rows[n].impl, key.impl) == 0 &&
				    strcmp(r->rows[n].shape, key.shape) == 0 &&
				    r->rows[n].limit_w == key.limit_w)
					break;
			if (n == r->nrows) {
				if (r->nrows == MAX_ROWS)
					continue;
				r->rows[r->nrows++] = key;
			}
			r->rows[n].w[i] = w;
		}
	}
}

/* The window of impl at row's shape and limit in run i. */
static const json_t *find(const report *r, const row *like, const char *impl, size_t i)
{
	for (size_t n = 0; n < r->nrows; n++) {
		const row *x = &r->rows[n];
		if (strcmp(x->section, like->section) == 0 && strcmp(x->impl, impl) == 0 &&
		    strcmp(x->shape, like->shape) == 0 && x->limit_w == like->limit_w)
			return x->w[i];
	}
	return NULL;
}

static void units_of(const report *r, const char *section, char *rate, char *eff, size_t size)
{
	snprintf(rate, size, "rate");
	snprintf(eff, size, "per J");
	for (size_t n = 0; n < r->nrows; n++)
		for (size_t i = 0; i < r->nruns; i++)
			if (strcmp(r->rows[n].section, section) == 0 && r->rows[n].w[i]) {
				jstr(r->rows[n].w[i], "rate_unit", rate, size);
				jstr(r->rows[n].w[i], "eff_unit", eff, size);
				return;
			}
}

/* ---- report.md ---- */

static void write_banner(FILE *f, const report *r)
{
	for (size_t i = 0; i < r->nruns; i++) {
		const run *x = &r->runs[i];
		fprintf(f, "> ");
		if (x->estimated)
			fprintf(f, "**POWER IS ESTIMATED in %s** (", x->label);
		else
			fprintf(f, "**Power measured in %s** (", x->label);
		md_cell(f, x->host);
		fprintf(f, "): source ");
		md_cell(f, x->source);
		fprintf(f, ", boundary ");
		md_cell(f, x->boundary);
		fprintf(f, ": ");
		md_cell(f, x->detail);
		if (x->estimated)
			fprintf(f, ". No watts were measured: every W, J and per-joule figure of this "
				   "run is a model (idle and full-load watts scaled by CPU utilisation), "
				   "not a measurement");
		if (x->problems[0]) {
			fprintf(f, ". Passed over: ");
			md_cell(f, x->problems);
		}
		fprintf(f, ".\n>\n");
	}
	fprintf(f, "\n");
}

static void write_runs(FILE *f, const report *r)
{
	fprintf(f, "## Runs\n\n| run | file | host | command | version | power source | boundary "
		   "| estimated |\n|---|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < r->nruns; i++) {
		const run *x = &r->runs[i];
		char file[256];
		hf_text_clean(file, sizeof file, x->file, strlen(x->file));
		fprintf(f, "| %s | ", x->label);
		md_cell(f, file);
		fprintf(f, " | ");
		md_cell(f, x->host);
		fprintf(f, " | ");
		md_cell(f, x->command);
		fprintf(f, " | ");
		md_cell(f, x->version);
		fprintf(f, " | ");
		md_cell(f, x->source);
		fprintf(f, " | ");
		md_cell(f, x->boundary);
		fprintf(f, " | %s |\n", x->estimated ? "**yes**" : "no");
	}
	fprintf(f, "\n");
}

static void impl_label(const row *w, char *out, size_t size)
{
	if (w->limit_w > 0)
		snprintf(out, size, "%s @ %g W", w->impl, w->limit_w);
	else
		snprintf(out, size, "%s", w->impl);
}

/* "1.23 / 0.98": rate and efficiency ratios of a row to a reference in run i. */
static void ratio_cell(FILE *f, const report *r, const row *w, const char *ref, size_t i)
{
	const json_t *a = w->w[i], *b = find(r, w, ref, i);
	char x[32], y[32];
	if (!a || !b || w->reference) { /* ratios of ours only */
		fprintf(f, " - |");
		return;
	}
	fmt_num(jnum(a, "rate") / jnum(b, "rate"), x, sizeof x);
	fmt_num(jnum(a, "per_j") / jnum(b, "per_j"), y, sizeof y);
	fprintf(f, " %s / %s |", x, y);
}

static void write_section(FILE *f, const report *r, const char *s)
{
	size_t k = known_index(s);
	char ru[24], eu[24];
	units_of(r, s, ru, eu, sizeof ru);
	fprintf(f, "## %s\n\n", k < HF_ARRAY_SIZE(known) ? known[k].title : s);
	fprintf(f, "Rate (%s) and efficiency (%s) from the same steady-state window (warm-up "
		   "excluded); W = mean power over that window.", ru, eu);
	if (k < HF_ARRAY_SIZE(known) && known[k].refs[0])
		fprintf(f, " `x REF` = rate ratio / efficiency ratio of ours against the reference "
			   "%s%s%s in the same run and shape.", known[k].refs[0],
			known[k].refs[1] ? " and " : "", known[k].refs[1] ? known[k].refs[1] : "");
	fprintf(f, "\n\n| shape | implementation |");
	for (size_t i = 0; i < r->nruns; i++) {
		fprintf(f, " %s %s | %s %s | %s W |", r->runs[i].label, ru, r->runs[i].label, eu,
			r->runs[i].label);
		for (int q = 0; k < HF_ARRAY_SIZE(known) && q < 2 && known[k].refs[q]; q++)
			fprintf(f, " %s x %s |", r->runs[i].label, known[k].refs[q]);
	}
	fprintf(f, "\n|---|---|");
	for (size_t i = 0; i < r->nruns; i++) {
		fprintf(f, "---:|---:|---:|");
		for (int q = 0; k < HF_ARRAY_SIZE(known) && q < 2 && known[k].refs[q]; q++)
			fprintf(f, "---:|");
	}
	fprintf(f, "\n");
	for (size_t n = 0; n < r->nrows; n++) {
		const row *w = &r->rows[n];
		char il[128], a[32], b[32], c[32];
		if (strcmp(w->section, s) != 0)
			continue;
		impl_label(w, il, sizeof il);
		fprintf(f, "| ");
		md_cell(f, w->shape[0] ? w->shape : "-");
		fprintf(f, " | ");
		md_cell(f, il);
		fprintf(f, "%s |", w->reference ? " (reference)" : "");
		for (size_t i = 0; i < r->nruns; i++) {
			const json_t *x = w->w[i];
			fmt_num(x ? jnum(x, "rate") : NAN, a, sizeof a);
			fmt_num(x ? jnum(x, "per_j") : NAN, b, sizeof b);
			fmt_num(x ? jnum(x, "watts") : NAN, c, sizeof c);
			fprintf(f, " %s | %s%s | %s |", a, b,
				x && json_is_true(json_object_get(x, "estimated")) ? " (est.)" : "", c);
			for (int q = 0; k < HF_ARRAY_SIZE(known) && q < 2 && known[k].refs[q]; q++)
				ratio_cell(f, r, w, known[k].refs[q], i);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\n");
}

/* Every window with its energy figures and source. */
static void write_windows(FILE *f, const report *r)
{
	fprintf(f, "## Windows\n\n| run | section | implementation | shape | s | J | W | "
		   "source | boundary | estimated | degraded |\n"
		   "|---|---|---|---|---:|---:|---:|---|---|---|---|\n");
	for (size_t n = 0; n < r->nrows; n++)
		for (size_t i = 0; i < r->nruns; i++) {
			const json_t *x = r->rows[n].w[i];
			char a[32], b[32], c[32], src[32], bd[32], il[128];
			if (!x)
				continue;
			fmt_num(jnum(x, "seconds"), a, sizeof a);
			fmt_num(jnum(x, "joules"), b, sizeof b);
			fmt_num(jnum(x, "watts"), c, sizeof c);
			jstr(x, "source", src, sizeof src);
			jstr(x, "boundary", bd, sizeof bd);
			impl_label(&r->rows[n], il, sizeof il);
			fprintf(f, "| %s | ", r->runs[i].label);
			md_cell(f, r->rows[n].section);
			fprintf(f, " | ");
			md_cell(f, il);
			fprintf(f, " | ");
			md_cell(f, r->rows[n].shape);
			fprintf(f, " | %s | %s | %s | ", a, b, c);
			md_cell(f, src);
			fprintf(f, " | ");
			md_cell(f, bd);
			fprintf(f, " | %s | %s |\n",
				json_is_true(json_object_get(x, "estimated")) ? "yes" : "no",
				json_is_true(json_object_get(x, "degraded")) ? "**yes**" : "no");
		}
	fprintf(f, "\n");
}

static void write_plots(FILE *f, const report *r)
{
	fprintf(f, "## Plots\n\n");
	if (r->plot_note[0]) {
		fprintf(f, "**Plots skipped:** %s. The tables above hold every figure.\n\n",
			r->plot_note);
		return;
	}
	for (size_t i = 0; i < r->nplots; i++) {
		char path[PATH_MAX];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", r->out, r->plots[i]);
		if (stat(path, &sb) != 0 || sb.st_size == 0) {
			fprintf(f, "- %s: not drawn (see gnuplot.log)\n", r->captions[i]);
			continue;
		}
		fprintf(f, "### %s\n\n![%s](%s)\n\n", r->captions[i], r->captions[i], r->plots[i]);
	}
}

static int write_md(const report *r)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/report.md", r->out);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "hashflop-bench report: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# hashflop-bench report\n\n");
	write_banner(f, r);
	write_runs(f, r);
	for (size_t i = 0; i < r->nsections; i++)
		write_section(f, r, r->sections[i]);
	write_windows(f, r);
	write_plots(f, r);
	fprintf(f, "Made by `hashflop-bench report` from %zu run document%s. Energy = the "
		   "difference of two readings of the run's power source around each window "
		   "(benchmarks/README.md).\n", r->nruns, r->nruns == 1 ? "" : "s");
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "hashflop-bench report: cannot write %s\n", path);
		return -1;
	}
	printf("wrote %s\n", path);
	return 0;
}

/* ---- plots: data files and one gnuplot script in DIR ---- */

static FILE *open_in(const report *r, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", r->out, name);
	return fopen(path, "w");
}

static void add_plot(report *r, const char *png, const char *caption)
{
	if (r->nplots == MAX_PLOTS)
		return;
	hf_strlcpy(r->plots[r->nplots], png, sizeof r->plots[0]);
	hf_strlcpy(r->captions[r->nplots], caption, sizeof r->captions[0]);
	r->nplots++;
}

/* Clustered bars: one cluster per row of the section, one bar per run. */
static void bars(report *r, FILE *gp, const char *s, const char *key, const char *unit)
{
	char dat[96], png[96], cap[160], l[160], il[128];
	snprintf(dat, sizeof dat, "data/%s-%s.dat", s, key);
	snprintf(png, sizeof png, "%s-%s.png", s, strcmp(key, "rate") == 0 ? "rate" : "efficiency");
	FILE *d = open_in(r, dat);
	if (!d)
		return;
	size_t rows = 0;
	for (size_t n = 0; n < r->nrows; n++) {
		const row *w = &r->rows[n];
		if (strcmp(w->section, s) != 0)
			continue;
		impl_label(w, il, sizeof il);
		snprintf(cap, sizeof cap, "%s%s%s", il, w->shape[0] ? " " : "", w->shape);
		plot_label(cap, l, sizeof l);
		fprintf(d, "\"%s\"", l);
		for (size_t i = 0; i < r->nruns; i++) {
			double v = w->w[i] ? jnum(w->w[i], key) : NAN;
			fprintf(d, isfinite(v) ? " %.6g" : " NaN", v);
		}
		fprintf(d, "\n");
		rows++;
	}
	fclose(d);
	if (!rows)
		return;
	plot_label(unit, l, sizeof l);
	fprintf(gp, "set output '%s'\nset ylabel '%s'\nset title '%s: %s%s'\n", png, l, s, l,
		r->runs[0].estimated ? " (ESTIMATED power)" : "");
	fprintf(gp, "set style data histograms\nset style histogram clustered gap 1\n"
		    "set style fill solid 0.8 border -1\nset boxwidth 0.9\n"
		    "set xtics rotate by -40 scale 0 font ',8'\nset yrange [0:*]\nset key top right\n"
		    "plot ");
	for (size_t i = 0; i < r->nruns; i++)
		fprintf(gp, "%s'%s' using %zu%s title '%s'", i ? ", " : "", dat, i + 2,
			i ? "" : ":xtic(1)", r->runs[i].label);
	fprintf(gp, "\nunset xtics\nset xtics\nunset yrange\n");
	snprintf(cap, sizeof cap, "%s: %s per implementation", s,
		 strcmp(key, "rate") == 0 ? "rate" : "efficiency");
	add_plot(r, png, cap);
}

/* One run's series: watts over the run, and each section's rate with watts on y2. */
static void series(report *r, FILE *gp, size_t i)
{
	const run *x = &r->runs[i];
	char dat[96], png[96], cap[160], unit[24] = "", l[64], src[32];
	size_t j;
	json_t *p;
	if (!x->series || !json_array_size(x->series))
		return;
	snprintf(dat, sizeof dat, "data/%s-series.dat", x->label);
	FILE *d = open_in(r, dat);
	if (!d)
		return;
	/* columns: t watts, then one rate column per section of the report */
	fprintf(d, "# t watts");
	for (size_t s = 0; s < r->nsections; s++)
		fprintf(d, " rate_%s", r->sections[s]);
	fprintf(d, "\n");
	double t0[8], t1[8];
	for (size_t s = 0; s < 8; s++)
		t0[s] = INFINITY, t1[s] = -INFINITY;
	json_array_foreach(x->series, j, p) {
		double t = jnum(p, "t"), w = jnum(p, "watts"), rate = jnum(p, "rate");
		char sec[32];
		if (!isfinite(t) || !isfinite(w))
			continue;
		jstr(p, "section", sec, sizeof sec);
		for (size_t s = 0; s < r->nsections; s++)
			if (strcmp(sec, r->sections[s]) == 0) {
				t0[s] = t < t0[s] ? t : t0[s];
				t1[s] = t > t1[s] ? t : t1[s];
			}
		fprintf(d, "%.3f %.4g", t, w);
		for (size_t s = 0; s < r->nsections; s++)
			fprintf(d, strcmp(sec, r->sections[s]) == 0 && isfinite(rate) ? " %.6g" : " NaN",
				rate);
		fprintf(d, "\n");
	}
	fclose(d);
	snprintf(png, sizeof png, "%s-power.png", x->label);
	plot_label(x->source, src, sizeof src);
	fprintf(gp, "set output '%s'\nset title '%s: power over the run (%s%s)'\n"
		    "set xlabel 't (s)'\nset ylabel 'W'\nset yrange [0:*]\n"
		    "plot '%s' using 1:2 with lines lw 2 title 'W'\nunset yrange\n", png, x->label,
		src, x->estimated ? ", ESTIMATED" : "", dat);
	snprintf(cap, sizeof cap, "%s: power over the run", x->label);
	add_plot(r, png, cap);
	for (size_t s = 0; s < r->nsections; s++) {
		if (!(t1[s] > t0[s]))
			continue; /* no samples of this section in this run */
		units_of(r, r->sections[s], unit, l, sizeof unit);
		fprintf(gp, "set xrange [%.3f:%.3f]\n", t0[s], t1[s]);
		plot_label(unit, l, sizeof l);
		snprintf(png, sizeof png, "%s-%s-series.png", x->label, r->sections[s]);
		fprintf(gp, "set output '%s'\nset title '%s %s: rate and power over the run'\n"
			    "set ylabel '%s'\nset y2label 'W'\nset y2tics\nset ytics nomirror\n"
			    "plot '%s' using 1:%zu with points pt 7 ps 0.5 title '%s', "
			    "'%s' using 1:2 axes x1y2 with lines title 'W%s'\n"
			    "unset y2tics\nunset y2label\nset ytics mirror\nunset xrange\n", png,
			x->label,
			r->sections[s], l, dat, s + 3, l, dat, x->estimated ? " (estimated)" : "");
		snprintf(cap, sizeof cap, "%s, %s: rate and power over the run", x->label,
			 r->sections[s]);
		add_plot(r, png, cap);
	}
	fprintf(gp, "unset xlabel\n");
}

/* --power-limits: efficiency against the window's watts, one line per implementation. */
static void sweep(report *r, FILE *gp, const char *s)
{
	char dat[96], png[96], cap[160], il[128], l[160], ru[24], eu[24];
	size_t blocks = 0;
	snprintf(dat, sizeof dat, "data/%s-limits.dat", s);
	FILE *d = NULL;
	char titles[32][64];
	/* one block per (run, impl, shape): the rows with a limit, ordered by limit */
	for (size_t i = 0; i < r->nruns; i++)
		for (size_t n = 0; n < r->nrows && blocks < 32; n++) {
			const row *w = &r->rows[n];
			bool first = true;
			if (strcmp(w->section, s) != 0 || w->limit_w <= 0 || !w->w[i])
				continue;
			for (size_t m = 0; m < n; m++) /* the block was written at its first row */
				if (strcmp(r->rows[m].section, s) == 0 && r->rows[m].limit_w > 0 &&
				    r->rows[m].w[i] && strcmp(r->rows[m].impl, w->impl) == 0 &&
				    strcmp(r->rows[m].shape, w->shape) == 0)
					first = false;
			if (!first)
				continue;
			if (!d && !(d = open_in(r, dat)))
				return;
			if (blocks)
				fprintf(d, "\n\n");
			for (size_t m = n; m < r->nrows; m++) {
				const row *v = &r->rows[m];
				if (strcmp(v->section, s) == 0 && v->limit_w > 0 && v->w[i] &&
				    strcmp(v->impl, w->impl) == 0 && strcmp(v->shape, w->shape) == 0)
					fprintf(d, "%g %.6g %.6g\n", v->limit_w, jnum(v->w[i], "watts"),
						jnum(v->w[i], "per_j"));
			}
			snprintf(il, sizeof il, "%s %s %s", r->runs[i].label, w->impl, w->shape);
			plot_label(il, titles[blocks], sizeof titles[0]);
			blocks++;
		}
	if (!d)
		return;
	fclose(d);
	units_of(r, s, ru, eu, sizeof ru);
	plot_label(eu, l, sizeof l);
	snprintf(png, sizeof png, "%s-power-limits.png", s);
	fprintf(gp, "set output '%s'\nset title '%s: efficiency against power (--power-limits)'\n"
		    "set xlabel 'W (measured in the window)'\nset ylabel '%s'\nplot ", png, s, l);
	for (size_t b = 0; b < blocks; b++)
		fprintf(gp, "%s'%s' index %zu using 2:3 with linespoints title '%s'", b ? ", " : "",
			dat, b, titles[b]);
	fprintf(gp, "\nunset xlabel\n");
	snprintf(cap, sizeof cap, "%s: efficiency against power (power limit sweep)", s);
	add_plot(r, png, cap);
}

/* Runs gnuplot on the script in DIR (cwd DIR, no shell); fills plot_note on failure. */
static void run_gnuplot(report *r)
{
	char log[PATH_MAX];
	snprintf(log, sizeof log, "%s/gnuplot.log", r->out);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (chdir(r->out) != 0)
			_exit(126);
		char *const argv[] = { (char *)r->gnuplot, "plots.gp", NULL };
		execvp(r->gnuplot, argv);
		_exit(errno == ENOENT ? 127 : 126);
	}
	if (pid < 0) {
		snprintf(r->plot_note, sizeof r->plot_note, "could not start gnuplot (fork: %s)",
			 strerror(errno));
		return;
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char prog[256];
	hf_text_clean(prog, sizeof prog, r->gnuplot, strlen(r->gnuplot));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		snprintf(r->plot_note, sizeof r->plot_note, "gnuplot (`%s`) was not found: install "
			 "Debian's gnuplot-nox (the quick start does) and run the report again",
			 prog);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		snprintf(r->plot_note, sizeof r->plot_note, "gnuplot (`%s`) failed (status %d): "
			 "see gnuplot.log and plots.gp in this folder", prog, st);
}

static void plots(report *r)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/data", r->out);
	if (hf_mkdir_p(dir, 0755, NULL) != 0) {
		snprintf(r->plot_note, sizeof r->plot_note, "cannot create the data folder");
		return;
	}
	FILE *gp = open_in(r, "plots.gp");
	if (!gp) {
		snprintf(r->plot_note, sizeof r->plot_note, "cannot write plots.gp");
		return;
	}
	fprintf(gp, "# plots.gp: written by hashflop-bench report; run as `gnuplot plots.gp` in "
		    "this folder.\nset datafile missing 'NaN'\n"
		    "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		    "  set terminal pngcairo noenhanced size 1000,560 font ',10'\n"
		    "} else {\n  set terminal png noenhanced size 1000,560\n}\n"
		    "set grid ytics\nset bmargin 9\nset rmargin 8\n");
	for (size_t s = 0; s < r->nsections; s++) {
		char ru[24], eu[24];
		units_of(r, r->sections[s], ru, eu, sizeof ru);
		bars(r, gp, r->sections[s], "rate", ru);
		bars(r, gp, r->sections[s], "per_j", eu);
		sweep(r, gp, r->sections[s]);
	}
	fprintf(gp, "set style data lines\nset xtics auto\n");
	for (size_t i = 0; i < r->nruns; i++)
		series(r, gp, i);
	fprintf(gp, "unset output\n");
	if (fclose(gp) != 0) {
		snprintf(r->plot_note, sizeof r->plot_note, "cannot write plots.gp");
		return;
	}
	run_gnuplot(r);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-bench report RUN.json... --out DIR [--gnuplot PROGRAM]\n"
		"Writes DIR/report.md from run documents (hashflop-bench all|hash|gemm|infer --json\n"
		"FILE), side by side (up to %d): rate and efficiency per implementation and shape,\n"
		"the references' ratios, every window's watts, joules and power source (a banner\n"
		"when power is estimated), and PNG plots drawn by gnuplot (Debian's gnuplot-nox):\n"
		"bar charts of rate and efficiency, rate and power over each run, efficiency\n"
		"against power for --power-limits runs. Without gnuplot the report is still\n"
		"written and says the plots were skipped.\n\n"
		"Options:\n"
		"  -o, --out DIR        output folder (created)\n"
		"      --gnuplot PROG   the gnuplot program (default: gnuplot on PATH)\n"
		"  -h, --help           show this help and exit\n", MAX_RUNS);
}

int hf_bench_report_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' }, { "gnuplot", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	report *r = calloc(1, sizeof *r);
	int ch, rc = 1;
	hf_errbuf eb;
	if (!r)
		return 1;
	r->gnuplot = "gnuplot";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'o': r->out = optarg; break;
		case 'g': r->gnuplot = optarg; break;
		case 'h': usage(stdout); rc = 0; goto out;
		default: usage(stderr); rc = 2; goto out;
		}
	}
	if (!r->out || optind == argc || argc - optind > MAX_RUNS || !r->gnuplot[0]) {
		fprintf(stderr, "hashflop-bench report: expected RUN.json... (1 to %d) and --out "
				"DIR (see --help)\n", MAX_RUNS);
		rc = 2;
		goto out;
	}
	for (int i = optind; i < argc; i++)
		if (load_run(r, argv[i]) != 0)
			goto out;
	if (hf_mkdir_p(r->out, 0755, &eb) != 0) {
		fprintf(stderr, "hashflop-bench report: --out %s: %s\n", r->out, eb.msg);
		goto out;
	}
	collect_rows(r);
	plots(r);
	if (r->plot_note[0])
		fprintf(stderr, "hashflop-bench report: plots skipped: %s\n", r->plot_note);
	rc = write_md(r) ? 1 : 0;
out:
	for (size_t i = 0; i < r->nruns; i++)
		json_decref(r->runs[i].doc);
	free(r);
	return rc;
}
