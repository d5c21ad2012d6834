/* hf_power_estimate: the estimate backend: idle_w + (full_w - idle_w) * utilisation, always
 * labelled estimated, and the shipped defaults (sources in runtime/power/README.md).
 *
 * Invariants: utilisation is clamped to [0, 1] (NaN counts as 0). The caller's utilisation
 * callback gives the utilisation now (integrated as trapezoids); the default, this process's
 * CPU time over wall time and online CPUs, is a mean since the previous read (integrated as
 * rectangles), so no CPU second is counted twice or lost between reads.
 * Threading: called under the hf_power lock only (see hf_power_priv.h); the defaults are
 * reentrant.
 */
#include "hf_power_priv.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_util.h"

/* NVIDIA H100/H200 SXM: 700 W maximum board power (datasheets); idle as nvidia-smi reports
 * it on idle SXM boards (about 70 W; see the README for how sure that is). */
#define GPU_SXM_FULL_W 700.0
#define GPU_SXM_IDLE_W 70.0
/* Server CPUs, per logical CPU: AMD EPYC 7763, 280 W default TDP over 128 threads; idle a
 * share of that (the README gives the source and the share). */
#define CPU_FULL_W_PER_THREAD (280.0 / 128.0)
#define CPU_IDLE_SHARE 0.30

typedef struct estimate {
	double idle_w, full_w;
	double (*util)(void *ctx);
	void *ctx;
	unsigned ncpus;
	uint64_t cpu_ns, wall_ns; /* the default utilisation's previous read */
} estimate;

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; hay && *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		       tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

void hf_power_estimate_default(const char *device_name, unsigned ncpus, double *idle_w,
			       double *full_w, const char **why)
{
	if (device_name && (contains_ci(device_name, "H100") || contains_ci(device_name, "H200"))) {
		*idle_w = GPU_SXM_IDLE_W;
		*full_w = GPU_SXM_FULL_W;
		if (why)
			*why = "default for an H100/H200 SXM GPU: 700 W board limit, 70 W idle "
			       "(see runtime/power/README.md)";
		return;
	}
	if (ncpus == 0)
		ncpus = 1;
	*full_w = CPU_FULL_W_PER_THREAD * ncpus;
	*idle_w = *full_w * CPU_IDLE_SHARE;
	if (why)
		*why = "default for server CPUs: 2.19 W per logical CPU at full load (AMD EPYC "
		       "7763: 280 W over 128 threads), 30% of it idle (see runtime/power/README.md)";
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1u;
}

static double clamp01(double u)
{
	if (!(u > 0)) /* NaN too */
		return 0;
	return u > 1 ? 1 : u;
}

static int est_read(void *state, size_t bidx, hf_power_sample *s, hf_errbuf *eb)
{
	estimate *e = state;
	(void)bidx;
	(void)eb;
	double u;
	if (e->util) {
		u = e->util(e->ctx);
	} else {
		uint64_t cpu = hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		uint64_t wall = hf_clock_ns(CLOCK_MONOTONIC);
		u = 0;
		if (e->wall_ns && wall > e->wall_ns && cpu >= e->cpu_ns)
			u = (double)(cpu - e->cpu_ns) / ((double)(wall - e->wall_ns) * e->ncpus);
		e->cpu_ns = cpu;
		e->wall_ns = wall;
	}
	s->watts = e->idle_w + (e->full_w - e->idle_w) * clamp01(u);
	return 0;
}

static int est_open(const hf_power_opts *o, void **state, hf_power_found *f, hf_errbuf *eb)
{
	estimate *e = calloc(1, sizeof(*e));
	if (!e)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	e->ncpus = online_cpus();
	e->util = o->utilisation;
	e->ctx = o->utilisation_ctx;
	const char *why = "configured";
	char whybuf[96];
	if (o->idle_w == 0 && o->full_w == 0) {
		hf_power_estimate_default(NULL, e->ncpus, &e->idle_w, &e->full_w, &why);
		snprintf(whybuf, sizeof(whybuf), "default for %u CPUs: see runtime/power/README.md",
			 e->ncpus);
		why = whybuf;
	} else {
		e->idle_w = o->idle_w;
		e->full_w = o->full_w;
	}
	hf_power_dom_desc *d = &f->dom[0];
	memset(d, 0, sizeof(*d));
	d->type = e->util ? HF_POWER_DOM_POWER : HF_POWER_DOM_MEAN;
	d->bidx = 0;
	hf_power_priv_label(d, "estimate %.5g W idle, %.5g W full (%s), utilisation %s", e->idle_w,
			    e->full_w, why,
			    e->util ? "from the caller" : "= this process's CPU time share");
	f->n = 1;
	f->boundary = "estimate";
	f->estimated = true;
	*state = e;
	return 0;
}

static void est_close(void *state)
{
	free(state);
}

const hf_power_backend hf_power_priv_estimate = {
	.kind = HF_POWER_ESTIMATE,
	.open = est_open,
	.read = est_read,
	.close = est_close,
};
