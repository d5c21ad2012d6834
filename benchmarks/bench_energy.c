/* bench_energy: the run's options, its one power source, measured phases (warm-up, then a
 * window whose rate and energy come from the same two power readings), the sampler's time
 * series and the run document (see bench_energy.h).
 *
 * Invariants: windows and series are appended under the meter's lock; the series baseline
 * (units, time) moves at every phase change and every sample, so a sample's rate is the work of
 * its own interval only; the estimate's utilisation counts this process and the registered
 * child (PyTorch), never the rest of a shared machine.
 * Threading: the main thread owns the meter; the sampler thread and hf_power's own sampler
 * (the utilisation callback) take only the meter's locks, never the other way round.
 */
#include "bench_energy.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_cl.h"
#include "hf_util.h"
#include "hf_version.h"

const char hf_bench_common_help[] =
	"Energy (every run; rate and energy from the same window):\n"
	"      --warmup S          warm-up before each measured window, excluded from it\n"
	"      --power-source K    auto (default), rapl, hwmon, nvml or estimate\n"
	"      --sysfs-root DIR    where powercap and hwmon are read (default /sys)\n"
	"      --nvml-library P    NVML library to dlopen (default libnvidia-ml.so.1)\n"
	"      --pci-bus-id ID     the GPU NVML measures (default: the OpenCL device's)\n"
	"      --idle-w W --full-w W  the estimate's model (default: runtime/power's figures)\n"
	"      --sample-ms N       time series period (default 250)\n"
	"      --power-limits W1,W2,...  NVML as root: run once per board limit, then restore\n";

void hf_bench_common_init(hf_bench_common *c)
{
	*c = (hf_bench_common){ .warmup = -1, .power_kind = HF_POWER_AUTO, .sample_ms = 250 };
}

bool hf_bench_parse_seconds(const char *cmd, const char *opt, const char *arg, double *out)
{
	char *end;
	double v = strtod(arg, &end);
	if (end == arg || *end || !isfinite(v) || v <= 0 || v > 3600) {
		fprintf(stderr, "hashflop-bench %s: %s: expected seconds in (0, 3600], got \"%s\"\n",
			cmd, opt, arg);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_watts(const char *cmd, const char *opt, const char *arg, double *out)
{
	char *end;
	double v = strtod(arg, &end);
	if (end == arg || *end || !isfinite(v) || v <= 0 || v > 100000) {
		fprintf(stderr, "hashflop-bench %s: %s: expected watts in (0, 100000], got \"%s\"\n",
			cmd, opt, arg);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_limits(const char *cmd, const char *arg, hf_bench_common *c)
{
	char buf[512], *save = NULL;
	if (!hf_strlcpy(buf, arg, sizeof buf))
		goto bad;
	c->nlimits = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (c->nlimits == HF_BENCH_MAX_LIMITS ||
		    !parse_watts(cmd, "--power-limits", t, &c->limits[c->nlimits]))
			goto bad;
		c->nlimits++;
	}
	if (c->nlimits)
		return true;
bad:
	fprintf(stderr, "hashflop-bench %s: --power-limits: expected up to %d watt figures "
			"separated by commas, got \"%s\"\n", cmd, HF_BENCH_MAX_LIMITS, arg);
	return false;
}

bool hf_bench_common_option(const char *cmd, int code, const char *arg, hf_bench_common *c,
			    bool *bad)
{
	uint64_t v;
	bool ok = true;
	switch (code) {
	case HF_BO_WARMUP: {
		char *end;
		double w = strtod(arg, &end);
		ok = end != arg && !*end && isfinite(w) && w >= 0 && w <= 600;
		if (ok)
			c->warmup = w;
		else
			fprintf(stderr, "hashflop-bench %s: --warmup: expected seconds in [0, 600], "
					"got \"%s\"\n", cmd, arg);
		break;
	}
	case HF_BO_JSON: c->json_file = arg; break;
	case HF_BO_POWER_SOURCE:
		ok = hf_power_kind_parse(arg, &c->power_kind);
		if (!ok)
			fprintf(stderr, "hashflop-bench %s: --power-source: expected auto, rapl, "
					"hwmon, nvml or estimate, got \"%s\"\n", cmd, arg);
		break;
	case HF_BO_SYSFS_ROOT: c->sysfs_root = arg; break;
	case HF_BO_NVML_LIBRARY: c->nvml_library = arg; break;
	case HF_BO_PCI_BUS_ID: c->pci_bus_id = arg; break;
	case HF_BO_IDLE_W: ok = parse_watts(cmd, "--idle-w", arg, &c->idle_w); break;
	case HF_BO_FULL_W: ok = parse_watts(cmd, "--full-w", arg, &c->full_w); break;
	case HF_BO_SAMPLE_MS:
		ok = hf_parse_u64(arg, 10, 60000, &v);
		if (ok)
			c->sample_ms = (unsigned)v;
		else
			fprintf(stderr, "hashflop-bench %s: --sample-ms: expected 10-60000, got "
					"\"%s\"\n", cmd, arg);
		break;
	case HF_BO_POWER_LIMITS: ok = parse_limits(cmd, arg, c); break;
	default: return false;
	}
	if (!ok)
		*bad = true;
	return true;
}

void hf_bench_json_option(int argc, char **argv, const char *arg, hf_bench_common *c)
{
	if (!arg && optind < argc && argv[optind][0] != '-')
		arg = argv[optind++];
	if (arg && strcmp(arg, "-") != 0)
		c->json_file = arg;
	else
		c->json_stdout = true;
}

/* ---- the GPU's PCI bus id from OpenCL ---- */

bool hf_bench_cl_pci_bus_id(const char *selector, char *out, size_t size)
{
	hf_cl_device_info info;

	if (hf_cl_find(selector, &info, NULL) != 0 || !info.pci_bus_id[0])
		return false;
	hf_strlcpy(out, info.pci_bus_id, size);
	return true;
}

/* ---- the meter ---- */

struct hf_bench_meter {
	hf_power *power;
	char cmd[32], label[160], pci[32];
	unsigned sample_ms;
	uint64_t open_ns;
	double limit_w;
	pthread_mutex_t lock;      /* phase, series, windows */
	pthread_cond_t wake;
	pthread_t sampler;
	bool sampling, stop;
	/* the phase */
	bool in_phase, warm;
	hf_bench_phase ph;
	char section[32], impl[96], shape[64], rate_unit[24], eff_unit[24];
	hf_power_reading r0;
	uint64_t units0;
	_Atomic uint64_t units;
	/* the series' baseline */
	hf_power_reading last;
	uint64_t base_units, base_ns;
	json_t *series, *windows;
	/* the estimate's utilisation */
	pthread_mutex_t ulock;
	pid_t child;
	double child_cpu, retired_cpu, util_cpu;
	uint64_t util_ns;
	unsigned ncpus;
};

/* CPU seconds of a process from /proc/PID/stat (utime + stime), -1 when gone. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* This process's CPU seconds plus the child's (and of children that were registered before). */
static double run_cpu_s(hf_bench_meter *m)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	double cpu = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + m->retired_cpu;
	if (m->child > 0) {
		double c = proc_cpu_s(m->child);
		if (c >= 0)
			m->child_cpu = c;
		cpu += m->child_cpu;
	}
	return cpu;
}

/* hf_power's estimate: the share of the machine's CPUs this run used since the last call. */
static double utilisation(void *ctx)
{
	hf_bench_meter *m = ctx;
	pthread_mutex_lock(&m->ulock);
	uint64_t now = hf_clock_ns(CLOCK_MONOTONIC);
	double cpu = run_cpu_s(m), u = 0;
	double dt = (double)(now - m->util_ns) / 1e9;
	if (dt > 1e-4) {
		u = (cpu - m->util_cpu) / (dt * m->ncpus);
		m->util_ns = now;
		m->util_cpu = cpu;
	}
	pthread_mutex_unlock(&m->ulock);
	return u < 0 ? 0 : u > 1 ? 1 : u;
}

void hf_bench_meter_set_child(hf_bench_meter *m, pid_t pid)
{
	pthread_mutex_lock(&m->ulock);
	if (m->child > 0)
		m->retired_cpu += m->child_cpu;
	m->child = pid;
	m->child_cpu = 0;
	pthread_mutex_unlock(&m->ulock);
}

static double since_open(const hf_bench_meter *m, uint64_t ns)
{
	return ns > m->open_ns ? (double)(ns - m->open_ns) / 1e9 : 0;
}

/* One sample of the series (lock held). */
static void sample_locked(hf_bench_meter *m)
{
	hf_power_reading r;
	hf_power_read(m->power, &r);
	double dt = (double)(r.mono_ns - m->last.mono_ns) / 1e9;
	if (dt <= 0)
		return;
	double watts = (r.energy_j - m->last.energy_j) / dt;
	json_t *s = json_pack("{s:f, s:f}", "t", since_open(m, r.mono_ns), "watts", watts);
	if (m->in_phase) {
		uint64_t u = atomic_load(&m->units);
		double pdt = (double)(r.mono_ns - m->base_ns) / 1e9;
		json_object_set_new(s, "section", json_string(m->section));
		json_object_set_new(s, "impl", json_string(m->impl));
		json_object_set_new(s, "shape", json_string(m->shape));
		json_object_set_new(s, "warmup", json_boolean(m->warm));
		json_object_set_new(s, "rate", m->ph.no_live_rate ? json_null() :
				    json_real(pdt > 0 ? (double)(u - m->base_units) * m->ph.scale /
							pdt : 0));
		json_object_set_new(s, "rate_unit", json_string(m->rate_unit));
		m->base_units = u;
		m->base_ns = r.mono_ns;
	}
	json_array_append_new(m->series, s);
	m->last = r;
}

static void *sampler_main(void *arg)
{
	hf_bench_meter *m = arg;
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct timespec ts;
		hf_abstime_after_ms(m->sample_ms, &ts);
		while (!m->stop && pthread_cond_timedwait(&m->wake, &m->lock, &ts) != ETIMEDOUT)
			;
		if (!m->stop)
			sample_locked(m);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static void stop_sampler(hf_bench_meter *m)
{
	if (!m->sampling)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->sampler, NULL);
	m->sampling = false;
}

/* --power-limits only where they can be set: NVML, every limit within the board's range, and
 * the permission (setting the limit in force is the probe). */
static int check_limits(const char *cmd, hf_bench_meter *m, const hf_bench_common *c)
{
	hf_errbuf eb;
	double lo, hi, cur;
	if (hf_power_kind_of(m->power) != HF_POWER_NVML) {
		fprintf(stderr, "hashflop-bench %s: --power-limits needs a GPU power limit that can "
				"be set (NVML, as root: --power-source nvml); this run's power source "
				"is %s\n", cmd, m->label);
		return -1;
	}
	if (hf_power_limit_get(m->power, &lo, &hi, &cur, &eb) != 0 ||
	    hf_power_limit_set(m->power, cur, &eb) != 0) {
		fprintf(stderr, "hashflop-bench %s: --power-limits: the GPU's power limit cannot be "
				"set: %s\n", cmd, eb.msg);
		return -1;
	}
	for (size_t i = 0; i < c->nlimits; i++)
		if (c->limits[i] < lo || c->limits[i] > hi) {
			fprintf(stderr, "hashflop-bench %s: --power-limits: %g W is outside the "
					"board's range [%g, %g] W\n", cmd, c->limits[i], lo, hi);
			return -1;
		}
	return 0;
}

hf_bench_meter *hf_bench_meter_open(const char *cmd, const hf_bench_common *c,
				    const char *pci_bus_id, FILE *f)
{
	hf_bench_meter *m = NULL;
	hf_errbuf eb;
	if ((c->idle_w > 0) != (c->full_w > 0) || c->idle_w > c->full_w) {
		fprintf(stderr, "hashflop-bench %s: --idle-w and --full-w go together, idle <= "
				"full (got %g and %g W)\n", cmd, c->idle_w, c->full_w);
		return NULL;
	}
	if (!(m = calloc(1, sizeof *m)))
		return NULL;
	hf_strlcpy(m->cmd, cmd, sizeof m->cmd);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->ulock, NULL);
	pthread_cond_init(&m->wake, NULL);
	m->series = json_array();
	m->windows = json_array();
	m->sample_ms = c->sample_ms ? c->sample_ms : 250;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	m->ncpus = n > 0 ? (unsigned)n : 1;
	m->util_ns = hf_clock_ns(CLOCK_MONOTONIC);
	m->util_cpu = run_cpu_s(m);
	hf_strlcpy(m->pci, c->pci_bus_id && *c->pci_bus_id ? c->pci_bus_id :
			   pci_bus_id ? pci_bus_id : "", sizeof m->pci);
	hf_power_opts po = { .kind = c->power_kind, .sysfs_root = c->sysfs_root,
			     .nvml_library = c->nvml_library, .pci_bus_id = m->pci,
			     .idle_w = c->idle_w, .full_w = c->full_w, .utilisation = utilisation,
			     .utilisation_ctx = m };
	int rc = hf_power_open(&po, &m->power, &eb);
	if (rc) {
		fprintf(stderr, "hashflop-bench %s: power source %s: %s: %s\n", cmd,
			hf_power_kind_name(c->power_kind), hf_strerror(rc), eb.msg);
		goto fail;
	}
	bool est = hf_power_kind_of(m->power) == HF_POWER_ESTIMATE;
	snprintf(m->label, sizeof m->label, "%s (boundary %s, %s)",
		 hf_power_kind_name(hf_power_kind_of(m->power)), hf_power_boundary(m->power),
		 est ? "ESTIMATED: no measured watts" : "measured");
	fprintf(f, "power: %s: %s\n", m->label, hf_power_detail(m->power));
	if (hf_power_problems(m->power)[0])
		fprintf(f, "power: passed over: %s\n", hf_power_problems(m->power));
	if (c->nlimits && check_limits(cmd, m, c) != 0)
		goto fail;
	hf_power_read(m->power, &m->last);
	m->open_ns = m->last.mono_ns;
	if (pthread_create(&m->sampler, NULL, sampler_main, m) != 0) {
		fprintf(stderr, "hashflop-bench %s: cannot start the power sampler\n", cmd);
		goto fail;
	}
	m->sampling = true;
	return m;
fail:
	hf_bench_meter_free(m);
	return NULL;
}

void hf_bench_meter_free(hf_bench_meter *m)
{
	if (!m)
		return;
	stop_sampler(m);
	hf_power_free(m->power);
	json_decref(m->series);
	json_decref(m->windows);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->ulock);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

hf_power *hf_bench_meter_power(hf_bench_meter *m) { return m->power; }
const char *hf_bench_meter_label(const hf_bench_meter *m) { return m->label; }

bool hf_bench_meter_estimated(const hf_bench_meter *m)
{
	return hf_power_kind_of(m->power) == HF_POWER_ESTIMATE;
}

void hf_bench_meter_set_limit(hf_bench_meter *m, double watts) { m->limit_w = watts; }

/* ---- phases ---- */

void hf_bench_phase_warmup(hf_bench_meter *m, const hf_bench_phase *p)
{
	pthread_mutex_lock(&m->lock);
	m->ph = *p;
	hf_strlcpy(m->section, p->section, sizeof m->section);
	hf_strlcpy(m->impl, p->impl, sizeof m->impl);
	hf_strlcpy(m->shape, p->shape ? p->shape : "", sizeof m->shape);
	hf_strlcpy(m->rate_unit, p->rate_unit, sizeof m->rate_unit);
	hf_strlcpy(m->eff_unit, p->eff_unit, sizeof m->eff_unit);
	m->ph.section = m->section; /* the caller's strings need not outlive this call */
	m->ph.impl = m->impl;
	m->ph.shape = m->shape;
	m->ph.rate_unit = m->rate_unit;
	m->ph.eff_unit = m->eff_unit;
	atomic_store(&m->units, 0);
	m->in_phase = true;
	m->warm = true;
	m->base_units = 0;
	m->base_ns = hf_clock_ns(CLOCK_MONOTONIC);
	pthread_mutex_unlock(&m->lock);
}

void hf_bench_phase_measure(hf_bench_meter *m)
{
	hf_power_reading r;
	hf_power_read(m->power, &r);
	pthread_mutex_lock(&m->lock);
	m->r0 = r;
	m->units0 = atomic_load(&m->units);
	m->warm = false;
	m->base_units = m->units0;
	m->base_ns = r.mono_ns;
	pthread_mutex_unlock(&m->lock);
}

void hf_bench_phase_add(hf_bench_meter *m, double units)
{
	if (units > 0)
		atomic_fetch_add_explicit(&m->units, (uint64_t)(units + 0.5), memory_order_relaxed);
}

void hf_bench_phase_abort(hf_bench_meter *m)
{
	pthread_mutex_lock(&m->lock);
	m->in_phase = false;
	pthread_mutex_unlock(&m->lock);
}

static json_t *source_fields(const hf_bench_meter *m, json_t *o)
{
	json_object_set_new(o, "source", json_string(hf_power_kind_name(hf_power_kind_of(m->power))));
	json_object_set_new(o, "boundary", json_string(hf_power_boundary(m->power)));
	json_object_set_new(o, "estimated", json_boolean(hf_bench_meter_estimated(m)));
	json_object_set_new(o, "power_limit_w", m->limit_w > 0 ? json_real(m->limit_w) : json_null());
	return o;
}

json_t *hf_bench_window_json(const hf_bench_meter *m, const hf_bench_window *w)
{
	if (!w->valid)
		return json_null();
	json_t *o = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "seconds", w->seconds,
			      "joules", w->joules, "watts", w->watts, "units", w->units, "rate",
			      w->rate, "per_j", w->per_j, "degraded", w->degraded);
	return source_fields(m, o);
}

void hf_bench_phase_end(hf_bench_meter *m, double units, hf_bench_window *out)
{
	hf_power_reading r;
	hf_power_window pw;
	hf_bench_window w = { .valid = true };
	hf_power_read(m->power, &r);
	pthread_mutex_lock(&m->lock);
	hf_power_window_of(&m->r0, &r, &pw);
	w.units = units >= 0 ? units : (double)(atomic_load(&m->units) - m->units0);
	w.seconds = pw.seconds;
	w.joules = pw.joules;
	w.watts = pw.watts;
	w.rate = pw.seconds > 0 ? w.units * m->ph.scale / pw.seconds : 0;
	w.per_j = pw.joules > 0 ? w.units * m->ph.scale / pw.joules : 0;
	w.estimated = r.estimated;
	w.degraded = r.degraded;
	json_t *o = hf_bench_window_json(m, &w);
	json_object_set_new(o, "section", json_string(m->section));
	json_object_set_new(o, "impl", json_string(m->impl));
	json_object_set_new(o, "shape", json_string(m->shape));
	json_object_set_new(o, "reference", json_boolean(m->ph.reference));
	json_object_set_new(o, "rate_unit", json_string(m->rate_unit));
	json_object_set_new(o, "eff_unit", json_string(m->eff_unit));
	json_object_set_new(o, "t0", json_real(since_open(m, m->r0.mono_ns)));
	json_object_set_new(o, "t1", json_real(since_open(m, r.mono_ns)));
	json_array_append_new(m->windows, o);
	m->in_phase = false;
	pthread_mutex_unlock(&m->lock);
	if (out)
		*out = w;
}

const char *hf_bench_fmt_eff(const hf_bench_window *w, char *buf, size_t size)
{
	if (!w->valid || !(w->per_j > 0))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, w->per_j >= 100 ? "%.0f" : w->per_j >= 1 ? "%.2f" : "%.4f",
			 w->per_j);
	return buf;
}

void hf_bench_print_windows(const hf_bench_meter *m, const char *section, FILE *f)
{
	size_t i;
	json_t *w;
	fprintf(f, "\nenergy, %s: steady-state windows (warm-up excluded); power %s\n", section,
		m->label);
	fprintf(f, "%-22s %-16s %12s %-9s %8s %9s %7s %12s %s\n", "implementation", "shape",
		"rate", "unit", "W", "J", "s", "efficiency", "unit");
	json_array_foreach(m->windows, i, w) {
		if (strcmp(json_string_value(json_object_get(w, "section")), section) != 0)
			continue;
		char eff[32];
		hf_bench_window x = { .valid = true,
				      .per_j = json_number_value(json_object_get(w, "per_j")) };
		fprintf(f, "%-22s %-16s %12.3f %-9s %8.1f %9.1f %7.2f %12s %s%s\n",
			json_string_value(json_object_get(w, "impl")),
			json_string_value(json_object_get(w, "shape")),
			json_number_value(json_object_get(w, "rate")),
			json_string_value(json_object_get(w, "rate_unit")),
			json_number_value(json_object_get(w, "watts")),
			json_number_value(json_object_get(w, "joules")),
			json_number_value(json_object_get(w, "seconds")),
			hf_bench_fmt_eff(&x, eff, sizeof eff),
			json_string_value(json_object_get(w, "eff_unit")),
			json_is_true(json_object_get(w, "estimated")) ? " (estimated)" : "");
	}
}

/* ---- the document ---- */

json_t *hf_bench_meter_power_json(const hf_bench_meter *m)
{
	json_t *o = json_object();
	source_fields(m, o);
	json_object_del(o, "power_limit_w");
	json_object_set_new(o, "detail", json_string(hf_power_detail(m->power)));
	json_object_set_new(o, "problems", json_string(hf_power_problems(m->power)));
	json_object_set_new(o, "domains", json_integer((json_int_t)hf_power_domain_count(m->power)));
	json_object_set_new(o, "read_errors",
			    json_integer((json_int_t)hf_power_read_errors(m->power)));
	json_object_set_new(o, "pci_bus_id", json_string(m->pci));
	json_object_set_new(o, "sample_ms", json_integer(m->sample_ms));
	return o;
}

json_t *hf_bench_meter_document(hf_bench_meter *m, const char *command, json_t *sections)
{
	char host[256] = "";
	stop_sampler(m);
	gethostname(host, sizeof host - 1);
	json_t *d = json_pack("{s:i, s:s, s:s, s:s, s:I}", "hashflop_bench", 1, "version",
			      HF_VERSION, "command", command, "host", host, "started_wall_ms",
			      (json_int_t)(hf_wall_ms() - (uint64_t)(since_open(m, hf_clock_ns(
							  CLOCK_MONOTONIC)) * 1e3)));
	json_object_set_new(d, "power", hf_bench_meter_power_json(m));
	json_object_set_new(d, "windows", json_incref(m->windows));
	json_object_set_new(d, "series", json_incref(m->series));
	json_object_set_new(d, "sections", sections);
	return d;
}

int hf_bench_sweep(const char *cmd, hf_bench_meter *m, const hf_bench_common *c,
		   const char *name, hf_bench_body body, void *ctx, json_t *sections)
{
	hf_errbuf eb;
	if (!c->nlimits) {
		json_t *s = json_object();
		int rc = body(m, ctx, s);
		json_object_set_new(sections, name, s);
		return rc;
	}
	double lo, hi, orig;
	if (hf_power_limit_get(m->power, &lo, &hi, &orig, &eb) != 0) {
		fprintf(stderr, "hashflop-bench %s: power limit: %s\n", cmd, eb.msg);
		return 1;
	}
	json_t *arr = json_array();
	int rc = 0;
	for (size_t i = 0; !rc && i < c->nlimits; i++) {
		if (hf_power_limit_set(m->power, c->limits[i], &eb) != 0) {
			fprintf(stderr, "hashflop-bench %s: power limit %g W: %s\n", cmd,
				c->limits[i], eb.msg);
			rc = 1;
			break;
		}
		fflush(stdout); /* stderr: stdout may be the legacy JSON document */
		fprintf(stderr, "\n== power limit %g W (board range %g-%g W, was %g W)\n",
			c->limits[i], lo, hi, orig);
		hf_bench_meter_set_limit(m, c->limits[i]);
		json_t *s = json_pack("{s:f}", "power_limit_w", c->limits[i]);
		rc = body(m, ctx, s);
		json_array_append_new(arr, s);
	}
	hf_bench_meter_set_limit(m, 0);
	if (hf_power_limit_set(m->power, orig, &eb) != 0) {
		fprintf(stderr, "hashflop-bench %s: could NOT restore the power limit to %g W: %s\n",
			cmd, orig, eb.msg);
		rc = 1;
	} else {
		fprintf(stderr, "power limit restored to %g W\n", orig);
	}
	json_object_set_new(sections, name, arr);
	return rc;
}

int hf_bench_write_document(const char *cmd, const hf_bench_common *c, json_t *doc)
{
	if (!c->json_file)
		return 0;
	if (json_dump_file(doc, c->json_file, JSON_INDENT(1)) != 0) {
		fprintf(stderr, "hashflop-bench %s: cannot write %s: %s\n", cmd, c->json_file,
			strerror(errno));
		return 1;
	}
	return 0;
}
