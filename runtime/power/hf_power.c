/* hf_power: the common part of the power sources: the auto choice, per-domain accounting
 * (counter wraps and resets, trapezoid integration of power-only domains), the sampler
 * thread, readings and windows, detail and problems; the backends sit behind
 * hf_power_backend tables (hf_power_rapl.c, hf_power_hwmon.c, hf_power_nvml.c,
 * hf_power_estimate.c).
 *
 * Invariants: a domain's energy never decreases: a counter that went backwards either wrapped
 * (it has a known maximum) or was reset (counted), a failed read adds nothing (the domain
 * keeps its last energy), a power-only domain is not integrated across a failed read. The
 * detail string only ever grows (a new copy per domain that starts failing, at most one per
 * domain, all freed at hf_power_free), so a pointer from hf_power_detail() stays valid.
 * Threading: one mutex guards everything mutable; the sampler thread and every caller of
 * hf_power_read/limit take it; backends run under it. kind, boundary and problems are fixed
 * at open; detail is published through an atomic pointer.
 */
#include "hf_power.h"
#include "hf_power_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_text.h"
#include "hf_util.h"

#define DOM_WHY_MAX 256

typedef struct dom {
	hf_power_dom_desc d;
	uint64_t acc_raw;   /* COUNTER: raw units since open */
	double energy_j;    /* POWER, MEAN: joules since open */
	uint64_t prev_raw;
	double prev_w;
	uint64_t prev_ns;
	uint64_t errors, wraps, resets;
	bool failing, ever_failed;
} dom;

struct hf_power {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool thread_started, stop;
	unsigned interval_ms;

	const hf_power_backend *be;
	void *st;
	hf_power_kind kind;
	const char *boundary;
	bool estimated;

	dom *doms;
	size_t n;
	uint64_t open_ns, tick_ns;
	double tick_j, watts;
	bool have_watts;
	uint64_t read_errors;

	_Atomic(const char *) detail;
	char *detail_versions[HF_POWER_MAX_DOMAINS + 1];
	size_t nversions;
	char problems[HF_POWER_LINE_MAX];
};

/* ---- names ---- */

static const char *const kind_names[] = {
	[HF_POWER_AUTO] = "auto", [HF_POWER_RAPL] = "rapl", [HF_POWER_HWMON] = "hwmon",
	[HF_POWER_NVML] = "nvml", [HF_POWER_ESTIMATE] = "estimate",
};

const char *hf_power_kind_name(hf_power_kind k)
{
	if ((unsigned)k >= HF_ARRAY_SIZE(kind_names))
		return "unknown";
	return kind_names[k];
}

bool hf_power_kind_parse(const char *s, hf_power_kind *out)
{
	if (!s)
		return false;
	for (size_t i = 0; i < HF_ARRAY_SIZE(kind_names); i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			if (out)
				*out = (hf_power_kind)i;
			return true;
		}
	}
	return false;
}

/* ---- shared helpers for the backends ---- */

const char *hf_power_priv_sysfs_root(const hf_power_opts *o)
{
	return (o && o->sysfs_root && o->sysfs_root[0]) ? o->sysfs_root : "/sys";
}

void hf_power_priv_clean_path(char *dst, size_t dstsz, const char *path)
{
	hf_text_clean(dst, dstsz, path, strlen(path));
}

int hf_power_priv_read_raw(const char *path, char *buf, size_t sz, int *err, hf_errbuf *eb)
{
	char cp[512];
	*err = 0;
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*err = errno;
		hf_power_priv_clean_path(cp, sizeof(cp), path);
		return hf_fail(eb, *err == ENOENT ? HF_ENOTFOUND : HF_EIO, "cannot open %s: %s", cp,
			       strerror(*err));
	}
	size_t len = 0;
	while (len + 1 < sz) {
		ssize_t r = read(fd, buf + len, sz - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = errno;
			close(fd);
			buf[0] = '\0';
			hf_power_priv_clean_path(cp, sizeof(cp), path);
			return hf_fail(eb, HF_EIO, "cannot read %s: %s", cp, strerror(*err));
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return 0;
}

int hf_power_priv_read_text(const char *path, char *buf, size_t sz, hf_errbuf *eb)
{
	char raw[256];
	int err;
	int rc = hf_power_priv_read_raw(path, raw, sizeof(raw), &err, eb);
	if (rc)
		return rc;
	size_t len = strcspn(raw, "\n");
	while (len > 0 && (raw[len - 1] == ' ' || raw[len - 1] == '\t' || raw[len - 1] == '\r'))
		len--;
	hf_text_clean(buf, sz, raw, len);
	return 0;
}

int hf_power_priv_read_u64(const char *path, uint64_t *v, int *err, hf_errbuf *eb)
{
	char raw[64];
	int rc = hf_power_priv_read_raw(path, raw, sizeof(raw), err, eb);
	if (rc)
		return rc;
	size_t len = strlen(raw);
	while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == ' ' || raw[len - 1] == '\r' ||
			   raw[len - 1] == '\t'))
		raw[--len] = '\0';
	if (!hf_parse_u64(raw, 0, UINT64_MAX, v)) {
		char cp[512], shown[32];
		hf_power_priv_clean_path(cp, sizeof(cp), path);
		hf_text_clean(shown, sizeof(shown), raw, len);
		return hf_fail(eb, HF_EPARSE, "%s: expected a decimal counter, read \"%s\"", cp,
			       shown);
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	/* Natural order: "hwmon2" before "hwmon10". */
	while (*x && *y) {
		if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
			char *ex, *ey;
			unsigned long long nx = strtoull(x, &ex, 10), ny = strtoull(y, &ey, 10);
			if (nx != ny)
				return nx < ny ? -1 : 1;
			x = ex;
			y = ey;
			continue;
		}
		if (*x != *y)
			return (unsigned char)*x < (unsigned char)*y ? -1 : 1;
		x++;
		y++;
	}
	return (unsigned char)*x - (unsigned char)*y;
}

void hf_power_priv_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

int hf_power_priv_list_dir(const char *dir, bool (*keep)(const char *name), char ***names,
			   size_t *n, hf_errbuf *eb)
{
	*names = NULL;
	*n = 0;
	char cp[512];
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		hf_power_priv_clean_path(cp, sizeof(cp), dir);
		return hf_fail(eb, e == ENOENT ? HF_ENOTFOUND : HF_EIO, "cannot list %s: %s", cp,
			       strerror(e));
	}
	size_t cap = 0;
	char **v = NULL;
	struct dirent *de;
	int rc = 0;
	/* A real sysfs class directory holds tens of entries; 4096 is far beyond any machine. */
	while ((de = readdir(d)) != NULL && *n < 4096) {
		if (!keep(de->d_name))
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				rc = hf_fail(eb, HF_ENOMEM, "out of memory listing a directory");
				goto fail_list;
			}
			v = nv;
			cap = nc;
		}
		v[*n] = strdup(de->d_name);
		if (!v[*n]) {
			rc = hf_fail(eb, HF_ENOMEM, "out of memory listing a directory");
			goto fail_list;
		}
		(*n)++;
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), name_cmp);
	*names = v;
	return 0;
fail_list:
	closedir(d);
	hf_power_priv_names_free(v, *n);
	*n = 0;
	return rc;
}

/* ---- lines (detail, problems): bounded appends ---- */

static void line_add(char *line, size_t sz, const char *sep, const char *piece)
{
	size_t len = strlen(line);
	if (len + 1 >= sz)
		return;
	snprintf(line + len, sz - len, "%s%s", len ? sep : "", piece);
	hf_utf8_trim(line);
}

void hf_power_priv_skip(hf_power_found *f, const char *fmt, ...)
{
	char tmp[HF_POWER_LINE_MAX / 2], clean[HF_POWER_LINE_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	hf_utf8_trim(tmp);
	hf_text_clean(clean, sizeof(clean), tmp, strlen(tmp));
	line_add(f->skipped, sizeof(f->skipped), "; ", clean);
}

void hf_power_priv_label(hf_power_dom_desc *d, const char *fmt, ...)
{
	char tmp[HF_POWER_LABEL_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	hf_utf8_trim(tmp);
	hf_text_clean(d->label, sizeof(d->label), tmp, strlen(tmp));
}


/* ---- accounting ---- */

static double dom_energy(const dom *d)
{
	if (d->d.type == HF_POWER_DOM_COUNTER)
		return (double)d->acc_raw * d->d.unit_j;
	return d->energy_j;
}

static double total_energy(const hf_power *p)
{
	double e = 0;
	for (size_t i = 0; i < p->n; i++)
		e += dom_energy(&p->doms[i]);
	return e;
}

/* A new copy of the detail naming a domain that started failing (under the lock). */
static void detail_note_failure(hf_power *p, const dom *d, const char *why)
{
	if (p->nversions >= HF_ARRAY_SIZE(p->detail_versions))
		return;
	char *nv = malloc(HF_POWER_LINE_MAX);
	if (!nv)
		return;
	hf_strlcpy(nv, atomic_load(&p->detail), HF_POWER_LINE_MAX);
	char piece[HF_POWER_LABEL_MAX + DOM_WHY_MAX + 40];
	snprintf(piece, sizeof(piece), "read failing since open: %s: %s", d->d.label, why);
	hf_utf8_trim(piece);
	line_add(nv, HF_POWER_LINE_MAX, "; ", piece);
	p->detail_versions[p->nversions++] = nv;
	atomic_store(&p->detail, nv);
}

static uint64_t counter_delta(dom *d, uint64_t cur)
{
	uint64_t prev = d->prev_raw;
	if (cur >= prev)
		return cur - prev;
	if (d->d.wrap && prev <= d->d.wrap && cur <= d->d.wrap) {
		d->wraps++;
		return (d->d.wrap - prev) + 1 + cur;
	}
	d->resets++; /* counted from zero again (driver reload, hwmon reset) */
	return cur;
}

/* Reads one domain at now and accounts it; first: the baseline read at open (no energy). */
static int dom_sample(hf_power *p, dom *d, uint64_t now, bool first, hf_errbuf *eb)
{
	hf_power_sample s = { 0 };
	int rc = p->be->read(p->st, d->d.bidx, &s, eb);
	if (rc == 0 && d->d.type != HF_POWER_DOM_COUNTER && !isfinite(s.watts)) {
		rc = hf_fail(eb, HF_EPARSE, "%s: not a finite power", d->d.label);
	}
	if (rc) {
		if (first)
			return rc;
		d->errors++;
		p->read_errors++;
		if (!d->ever_failed) {
			d->ever_failed = true;
			detail_note_failure(p, d, eb ? eb->msg : "read failed");
		}
		d->failing = true;
		return rc;
	}
	double w = s.watts < 0 ? 0 : s.watts;
	double dt = now > d->prev_ns ? (double)(now - d->prev_ns) * 1e-9 : 0;
	switch (d->d.type) {
	case HF_POWER_DOM_COUNTER:
		if (!first)
			d->acc_raw += counter_delta(d, s.raw);
		d->prev_raw = s.raw;
		break;
	case HF_POWER_DOM_POWER:
		if (!first && !d->failing)
			d->energy_j += (d->prev_w + w) * 0.5 * dt;
		d->prev_w = w;
		break;
	case HF_POWER_DOM_MEAN:
		if (!first && !d->failing)
			d->energy_j += w * dt;
		d->prev_w = w;
		break;
	}
	d->prev_ns = now;
	d->failing = false;
	return 0;
}

static void sample_all(hf_power *p, uint64_t now)
{
	for (size_t i = 0; i < p->n; i++) {
		hf_errbuf eb;
		hf_errbuf_clear(&eb);
		(void)dom_sample(p, &p->doms[i], now, false, &eb);
	}
}

static void *sampler_main(void *arg)
{
	hf_power *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec ts;
		uint64_t due = hf_clock_ns(CLOCK_MONOTONIC) + (uint64_t)p->interval_ms * 1000000ull;
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
			;
		if (p->stop)
			break;
		uint64_t now = hf_clock_ns(CLOCK_MONOTONIC);
		sample_all(p, now);
		double e = total_energy(p);
		if (now > p->tick_ns) {
			p->watts = (e - p->tick_j) / ((double)(now - p->tick_ns) * 1e-9);
			p->have_watts = true;
		}
		p->tick_ns = now;
		p->tick_j = e;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- open ---- */

static int validate_opts(const hf_power_opts *o, hf_errbuf *eb)
{
	if ((unsigned)o->kind > HF_POWER_ESTIMATE)
		return hf_fail(eb, HF_EINVAL, "power: unknown source kind %d", (int)o->kind);
	if (!isfinite(o->idle_w) || !isfinite(o->full_w) || o->idle_w < 0 || o->full_w < 0)
		return hf_fail(eb, HF_EINVAL,
			       "power: idle_w and full_w must be finite numbers >= 0 (got %g, %g)",
			       o->idle_w, o->full_w);
	if (o->full_w < o->idle_w)
		return hf_fail(eb, HF_EINVAL, "power: full_w (%g) is below idle_w (%g)", o->full_w,
			       o->idle_w);
	if (o->sample_interval_ms > 3600000u)
		return hf_fail(eb, HF_EINVAL, "power: sample_interval_ms %u over 3600000",
			       o->sample_interval_ms);
	return 0;
}

static const hf_power_backend *backend_of(hf_power_kind k)
{
	switch (k) {
	case HF_POWER_RAPL:
		return &hf_power_priv_rapl;
	case HF_POWER_HWMON:
		return &hf_power_priv_hwmon;
	case HF_POWER_NVML:
		return &hf_power_priv_nvml;
	case HF_POWER_ESTIMATE:
		return &hf_power_priv_estimate;
	case HF_POWER_AUTO:
		break;
	}
	return NULL;
}

/* Builds the detail from the domains kept and those whose first read failed. */
static int set_detail(hf_power *p, const hf_power_found *f, const char *skipped)
{
	char *line = calloc(1, HF_POWER_LINE_MAX);
	if (!line)
		return HF_ENOMEM;
	for (size_t i = 0; i < p->n; i++)
		line_add(line, HF_POWER_LINE_MAX, ", ", p->doms[i].d.label);
	if (f->dropped) {
		char more[96];
		snprintf(more, sizeof(more), "and %zu more domains not read (cap %d)", f->dropped,
			 HF_POWER_MAX_DOMAINS);
		line_add(line, HF_POWER_LINE_MAX, ", ", more);
	}
	if (skipped[0]) {
		char *piece = malloc(HF_POWER_LINE_MAX);
		if (piece) {
			snprintf(piece, HF_POWER_LINE_MAX, "skipped: %s", skipped);
			hf_utf8_trim(piece);
			line_add(line, HF_POWER_LINE_MAX, "; ", piece);
			free(piece);
		}
	}
	p->detail_versions[p->nversions++] = line;
	atomic_store(&p->detail, line);
	return 0;
}

/* Opens one backend into p: its domains, each read once for a baseline; a domain whose first
 * read fails is skipped (named in the detail); none left: HF_ENOTFOUND naming why. */
static int open_kind(hf_power *p, hf_power_kind k, const hf_power_opts *o, hf_errbuf *eb)
{
	const hf_power_backend *be = backend_of(k);
	hf_power_found *f = calloc(1, sizeof(*f));
	char *skipped = calloc(1, HF_POWER_LINE_MAX);
	int rc = HF_ENOMEM;
	void *st = NULL;
	if (!f || !skipped) {
		hf_fail(eb, rc, "out of memory");
		goto out_free;
	}
	rc = be->open(o, &st, f, eb);
	if (rc)
		goto out_free;
	hf_strlcpy(skipped, f->skipped, HF_POWER_LINE_MAX);
	p->doms = calloc(f->n ? f->n : 1, sizeof(*p->doms));
	if (!p->doms) {
		rc = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto out_close;
	}
	p->be = be;
	p->st = st;
	p->n = 0;
	uint64_t now = hf_clock_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < f->n; i++) {
		dom *d = &p->doms[p->n];
		memset(d, 0, sizeof(*d));
		d->d = f->dom[i];
		hf_errbuf deb;
		hf_errbuf_clear(&deb);
		if (dom_sample(p, d, now, true, &deb) != 0) {
			line_add(skipped, HF_POWER_LINE_MAX, "; ", deb.msg);
			continue;
		}
		p->n++;
	}
	if (p->n == 0) {
		rc = hf_fail(eb, HF_ENOTFOUND, "%s", skipped[0] ? skipped : "no domain found");
		goto out_doms;
	}
	rc = set_detail(p, f, skipped);
	if (rc) {
		hf_fail(eb, rc, "out of memory");
		goto out_doms;
	}
	p->kind = k;
	p->boundary = f->boundary;
	p->estimated = f->estimated;
	p->open_ns = p->tick_ns = now;
	rc = 0;
	goto out_free;
out_doms:
	free(p->doms);
	p->doms = NULL;
	p->n = 0;
	p->be = NULL;
	p->st = NULL;
out_close:
	be->close(st);
out_free:
	free(skipped);
	free(f);
	return rc;
}

/* AUTO: nvml (when a GPU is named), rapl, hwmon, else the estimate. */
static int open_auto(hf_power *p, const hf_power_opts *o, hf_errbuf *eb)
{
	static const hf_power_kind order[] = { HF_POWER_NVML, HF_POWER_RAPL, HF_POWER_HWMON };
	for (size_t i = 0; i < HF_ARRAY_SIZE(order); i++) {
		if (order[i] == HF_POWER_NVML && !(o->pci_bus_id && o->pci_bus_id[0]))
			continue;
		hf_errbuf keb;
		hf_errbuf_clear(&keb);
		int rc = open_kind(p, order[i], o, &keb);
		if (rc == 0)
			return 0;
		if (rc == HF_ENOMEM)
			return hf_fail(eb, rc, "%s: %s", hf_power_kind_name(order[i]), keb.msg);
		char piece[HF_ERRBUF_SIZE + 16];
		snprintf(piece, sizeof(piece), "%s: %s", hf_power_kind_name(order[i]), keb.msg);
		hf_utf8_trim(piece);
		line_add(p->problems, sizeof(p->problems), "; ", piece);
	}
	int rc = open_kind(p, HF_POWER_ESTIMATE, o, eb);
	if (rc)
		return hf_fail_prefix(eb, rc, "estimate");
	return 0;
}

int hf_power_open(const hf_power_opts *opts, hf_power **out, hf_errbuf *eb)
{
	hf_power_opts dflt = { 0 };
	const hf_power_opts *o = opts ? opts : &dflt;
	*out = NULL;
	int rc = validate_opts(o, eb);
	if (rc)
		return rc;
	hf_power *p = calloc(1, sizeof(*p));
	if (!p)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	p->interval_ms = o->sample_interval_ms ? o->sample_interval_ms : 100;
	atomic_init(&p->detail, "");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	if (o->kind == HF_POWER_AUTO) {
		rc = open_auto(p, o, eb);
	} else {
		rc = open_kind(p, o->kind, o, eb);
		if (rc)
			hf_fail_prefix(eb, rc, "%s", hf_power_kind_name(o->kind));
	}
	if (rc)
		goto fail;
	if (pthread_create(&p->thread, NULL, sampler_main, p) != 0) {
		rc = hf_fail(eb, HF_ENOMEM, "power: cannot start the sampler thread");
		goto fail;
	}
	p->thread_started = true;
	*out = p;
	return 0;
fail:
	hf_power_free(p);
	return rc;
}

/* ---- readings ---- */

void hf_power_read(hf_power *p, hf_power_reading *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	uint64_t now = hf_clock_ns(CLOCK_MONOTONIC);
	sample_all(p, now);
	out->mono_ns = now;
	out->energy_j = total_energy(p);
	if (p->have_watts) {
		out->watts = p->watts;
	} else {
		/* Before the first sampler tick: since open, or the power-only domains' watts now. */
		double w = 0;
		bool counters = false;
		for (size_t i = 0; i < p->n; i++) {
			counters |= p->doms[i].d.type == HF_POWER_DOM_COUNTER;
			w += p->doms[i].prev_w;
		}
		if (counters)
			w = now > p->open_ns + 1000000ull
				    ? out->energy_j / ((double)(now - p->open_ns) * 1e-9)
				    : 0;
		out->watts = w;
	}
	out->estimated = p->estimated;
	out->degraded = p->read_errors > 0;
	pthread_mutex_unlock(&p->mu);
}

hf_power_kind hf_power_kind_of(const hf_power *p)
{
	return p ? p->kind : HF_POWER_AUTO;
}

const char *hf_power_boundary(const hf_power *p)
{
	return p && p->boundary ? p->boundary : "";
}

const char *hf_power_detail(const hf_power *p)
{
	return p ? atomic_load(&((hf_power *)p)->detail) : "";
}

const char *hf_power_problems(const hf_power *p)
{
	return p ? p->problems : "";
}

size_t hf_power_domain_count(const hf_power *p)
{
	return p ? p->n : 0;
}

uint64_t hf_power_read_errors(const hf_power *p)
{
	if (!p)
		return 0;
	hf_power *mp = (hf_power *)p;
	pthread_mutex_lock(&mp->mu);
	uint64_t v = mp->read_errors;
	pthread_mutex_unlock(&mp->mu);
	return v;
}

void hf_power_free(hf_power *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	if (p->be)
		p->be->close(p->st);
	free(p->doms);
	for (size_t i = 0; i < p->nversions; i++)
		free(p->detail_versions[i]);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void hf_power_window_of(const hf_power_reading *a, const hf_power_reading *b, hf_power_window *w)
{
	memset(w, 0, sizeof(*w));
	if (!a || !b)
		return;
	double j = b->energy_j - a->energy_j;
	w->joules = j > 0 ? j : 0;
	if (b->mono_ns > a->mono_ns) {
		w->seconds = (double)(b->mono_ns - a->mono_ns) * 1e-9;
		w->watts = w->joules / w->seconds;
	}
}

/* ---- limits ---- */

int hf_power_limit_get(hf_power *p, double *min_w, double *max_w, double *cur_w, hf_errbuf *eb)
{
	if (!p)
		return hf_fail(eb, HF_EINVAL, "power: no source");
	if (!p->be->limit_get)
		return hf_fail(eb, HF_EUNSUPPORTED, "power: %s has no settable power limit",
			       hf_power_kind_name(p->kind));
	double a = 0, b = 0, c = 0;
	pthread_mutex_lock(&p->mu);
	int rc = p->be->limit_get(p->st, &a, &b, &c, eb);
	pthread_mutex_unlock(&p->mu);
	if (rc == 0) {
		if (min_w)
			*min_w = a;
		if (max_w)
			*max_w = b;
		if (cur_w)
			*cur_w = c;
	}
	return rc;
}

int hf_power_limit_set(hf_power *p, double watts, hf_errbuf *eb)
{
	if (!p)
		return hf_fail(eb, HF_EINVAL, "power: no source");
	if (!p->be->limit_set)
		return hf_fail(eb, HF_EUNSUPPORTED, "power: %s has no settable power limit",
			       hf_power_kind_name(p->kind));
	if (!isfinite(watts) || watts <= 0)
		return hf_fail(eb, HF_ERANGE, "power: limit %g W is not a positive number", watts);
	pthread_mutex_lock(&p->mu);
	int rc = p->be->limit_set(p->st, watts, eb);
	pthread_mutex_unlock(&p->mu);
	return rc;
}
