/* hf_mining_stats: the mining worker's accounting views: per-second rate sampling, the
 * `mining` object of /v1/status, the hashflop_mining_* metric families and the status line
 * (the power target's part comes from hf_mining_power.c).
 * Invariants: readers take `life` (the run's threads and driver stay allocated) and then
 * `slock`; share counts come from one ledger snapshot per view, so they add up; every string
 * that came from a pool is cleaned before it is put in JSON or a metric label (the ledger's
 * reasons already are); nothing here blocks on the network or on hashing threads.
 * Threading: hf_mining_sample on the supervisor (or the draining switcher) thread; status,
 * metrics and the status line from any thread.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hf_log.h"
#include "hf_mining_priv.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"

static const char *const state_names[] = { "stopped", "connecting", "mining", "no_pool",
					   "draining", "failed" };
static const unsigned windows_s[] = { 10, 60, 900 };
static const char *const window_names[] = { "10s", "1m", "15m" };

const char *hf_mining_state_name(hf_mining_state s)
{
	return (unsigned)s < HF_ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

void hf_mining_fmt_rate(double hps, char *out, size_t outsz)
{
	static const char *const units[] = { "H/s", "kH/s", "MH/s", "GH/s", "TH/s" };
	size_t u = 0;

	while (hps >= 1000.0 && u + 1 < HF_ARRAY_SIZE(units)) {
		hps /= 1000.0;
		u++;
	}
	snprintf(out, outsz, "%.1f %s", hps, units[u]);
}

static uint64_t process_cpu_ns(void)
{
	return hf_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

void hf_mining_sample(hf_mining *m, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000, delta = 0, hashes = 0, cpu_ns = 0;
	bool ocl = m->cfg.backend == HF_MINING_OPENCL;

	pthread_mutex_lock(&m->slock);
	if (ocl && !m->proc_cpu_ns0)
		m->proc_cpu_ns0 = process_cpu_ns();
	for (unsigned i = 0; i < m->nth; i++) {
		hf_mthread *t = &m->th[i];
		uint64_t h = atomic_load(&t->hashes);
		hf_mining_rate_add(&t->rate, now_s, h - t->seen_hashes);
		delta += h - t->seen_hashes;
		t->seen_hashes = h;
		hashes += h;
		cpu_ns += atomic_load(&t->cpu_ns);
	}
	if (ocl)
		cpu_ns = process_cpu_ns() - m->proc_cpu_ns0;
	hf_mining_rate_add(&m->total_rate, now_s, delta);
	m->hashes_at_cpu = (double)hashes;
	m->cpu_s_total = (double)cpu_ns / 1e9;
	pthread_mutex_unlock(&m->slock);
}

static double per_cpu_s(const hf_mining *m)
{
	return m->cpu_s_total > 0.001 ? m->hashes_at_cpu / m->cpu_s_total : 0.0;
}

void hf_mining_status_line(hf_mining *m)
{
	char rate[32];
	uint64_t acc, rej;
	double diff;
	int a;
	hf_share_counts c;

	hf_share_ledger_snapshot(m->ledger, &c);
	acc = c.accepted;
	rej = c.rejected;
	pthread_mutex_lock(&m->slock);
	diff = m->difficulty;
	a = m->active_pool;
	hf_mining_fmt_rate(hf_mining_rate_avg(&m->total_rate, hf_mono_ms() / 1000, 10), rate,
			   sizeof rate);
	pthread_mutex_unlock(&m->slock);
	if (a >= 0)
		hf_log_notice("mining: accepted %llu/%llu (%.0f%%) · %s · diff %g · pool %d/%zu",
			      (unsigned long long)acc, (unsigned long long)(acc + rej),
			      acc + rej ? 100.0 * (double)acc / (double)(acc + rej) : 100.0, rate, diff,
			      a + 1, m->cfg.npools);
	else
		hf_log_notice("mining: accepted %llu/%llu · %s · no pool (0/%zu)",
			      (unsigned long long)acc, (unsigned long long)(acc + rej), rate,
			      m->cfg.npools);
}

static json_t *rates_json(const hf_mining_rate *r, uint64_t now_s)
{
	json_t *o = json_object();

	for (size_t i = 0; i < HF_ARRAY_SIZE(windows_s); i++)
		json_object_set_new(o, window_names[i], json_real(hf_mining_rate_avg(r, now_s, windows_s[i])));
	return o;
}

static json_t *threads_json(hf_mining *m, uint64_t now_ms)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < m->nth; i++) {
		hf_mthread *t = &m->th[i];
		uint64_t beat = atomic_load(&t->beat_ms);
		json_array_append_new(a, json_pack("{s:i, s:i, s:o, s:I, s:f, s:b, s:b, s:b, s:I, s:I, s:I, s:I}",
			"id", (int)i, "cpu", t->cpu, "hashrate", rates_json(&t->rate, now_ms / 1000),
			"hashes", (json_int_t)atomic_load(&t->hashes),
			"cpu_s", (double)atomic_load(&t->cpu_ns) / 1e9,
			"waiting", atomic_load(&t->waiting), "stalled", atomic_load(&t->stalled),
			"failed", atomic_load(&t->failed),
			"last_progress_ms_ago", (json_int_t)(beat && now_ms > beat ? now_ms - beat : 0),
			"range_start", (json_int_t)t->start, "chunk", (json_int_t)atomic_load(&t->chunk),
			"restarts", (json_int_t)atomic_load(&t->restarts)));
		json_object_set_new(json_array_get(a, i), "replaced_running",
				    json_boolean(atomic_load(&t->replaced_running)));
		json_object_set_new(json_array_get(a, i), "active",
				    json_boolean(i < atomic_load(&m->act_threads)));
	}
	return a;
}

static json_t *pools_json(hf_mining *m)
{
	json_t *a = json_array();
	hf_stratum_pool_stats ps;

	for (size_t i = 0; m->drv && i < m->cfg.npools; i++) {
		if (hf_stratum_drv_pool_stats(m->drv, i, &ps) < 0)
			continue;
		hf_text_clean_inplace(ps.last_error);
		json_array_append_new(a, json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
			"url", m->cfg.pools[i].url, "active", ps.active,
			"connects", (json_int_t)ps.connects, "connect_failures", (json_int_t)ps.connect_failures,
			"disconnects", (json_int_t)ps.disconnects, "resumes", (json_int_t)ps.resumes,
			"accepted", (json_int_t)ps.accepted, "rejected", (json_int_t)ps.rejected,
			"last_error", ps.last_error));
	}
	return a;
}

static json_t *shares_json(const hf_share_counts *c)
{
	json_t *by = json_object(), *drops = json_object(), *o;

	for (size_t i = 0; i < c->nrejects; i++)
		json_object_set_new(by, c->rejects[i].reason, json_integer((json_int_t)c->rejects[i].count));
	json_object_set_new(by, "other", json_integer((json_int_t)c->rejects_other));
	for (int i = 0; i < HF_SHARE_DROP_KINDS; i++)
		json_object_set_new(drops, hf_share_drop_name((hf_share_drop)i),
				    json_integer((json_int_t)c->dropped[i]));
	o = json_pack("{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:f}",
		"found", (json_int_t)c->found, "submitted", (json_int_t)c->submitted,
		"accepted", (json_int_t)c->accepted, "rejected", (json_int_t)c->rejected,
		"rejected_by_reason", by, "stale", (json_int_t)c->dropped[HF_SHARE_DROP_STALE],
		"hw_errors", (json_int_t)c->dropped[HF_SHARE_DROP_HW_ERROR],
		"queue_drops", (json_int_t)c->dropped[HF_SHARE_DROP_QUEUE_FULL],
		"known_stale_sent", (json_int_t)c->known_stale_sent, "best_difficulty", c->best_diff);
	json_object_set_new(o, "queued", json_integer((json_int_t)c->queued));
	json_object_set_new(o, "in_flight", json_integer((json_int_t)c->in_flight));
	json_object_set_new(o, "dropped", json_integer((json_int_t)hf_share_counts_dropped(c)));
	json_object_set_new(o, "dropped_by_reason", drops);
	json_object_set_new(o, "accounting_mismatches", json_integer((json_int_t)c->mismatches));
	return o;
}

static json_t *switch_json(hf_mining *m)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:I, s:I}",
		"count", (json_int_t)m->job_switches, "last_ms", (double)m->sw_last_us / 1000.0,
		"max_ms", (double)m->sw_maxall_us / 1000.0,
		"avg_ms", m->job_switches ? (double)m->sw_sum_us / 1000.0 / (double)m->job_switches : 0.0,
		"extranonce2_rolls", (json_int_t)atomic_load(&m->en2_rolls),
		"version_rolls", (json_int_t)atomic_load(&m->version_rolls));
}

static json_t *pool_json(hf_mining *m, uint64_t now_ms)
{
	int a = m->active_pool;
	json_t *p = json_pack("{s:i, s:I, s:b, s:f, s:f, s:s}", "index", a, "configured",
		(json_int_t)m->cfg.npools, "connected", a >= 0,
		"uptime_s", a >= 0 && m->active_since_ms ? (double)(now_ms - m->active_since_ms) / 1000.0 : 0.0,
		"no_pool_s", m->no_pool_since_ms ? (double)(now_ms - m->no_pool_since_ms) / 1000.0 : 0.0,
		"last_error", m->pool_error);
	if (a >= 0 && (size_t)a < m->cfg.npools)
		json_object_set_new(p, "url", json_string(m->cfg.pools[a].url));
	json_object_set_new(p, "pools", pools_json(m));
	return p;
}

void hf_mining_status(void *impl, json_t *obj)
{
	hf_mining *m = impl;
	uint64_t now = hf_mono_ms();
	const hf_mining_drain *d = &m->last_drain;
	hf_share_counts c;
	json_t *o;

	hf_share_ledger_snapshot(m->ledger, &c);
	pthread_mutex_lock(&m->life);
	pthread_mutex_lock(&m->slock);
	o = json_pack("{s:s, s:s, s:s, s:i, s:o, s:f, s:I, s:f, s:o, s:o, s:o, s:I}",
		"state", hf_mining_state_name((hf_mining_state)atomic_load(&m->state)),
		"backend", m->cfg.backend == HF_MINING_OPENCL ? "opencl" : "cpu",
		"device", m->device, "threads", (int)m->nth,
		"hashrate", rates_json(&m->total_rate, now / 1000),
		"hashes_per_cpu_second", per_cpu_s(m), "hashes_total", (json_int_t)m->total_rate.total,
		"difficulty", m->difficulty, "shares", shares_json(&c), "job_switch", switch_json(m),
		"pool", pool_json(m, now), "thread_stalls", (json_int_t)atomic_load(&m->stalls));
	json_object_set_new(o, "thread_restarts", json_integer((json_int_t)atomic_load(&m->restarts)));
	json_object_set_new(o, "last_error", json_string(m->last_error));
	json_object_set_new(o, "latency_ms", json_pack("{s:I, s:I, s:I, s:f}",
		"count", (json_int_t)c.lat_count, "last", (json_int_t)c.lat_last_ms,
		"max", (json_int_t)c.lat_max_ms,
		"avg", c.lat_count ? (double)c.lat_sum_ms / (double)c.lat_count : 0.0));
	json_object_set_new(o, "per_thread", threads_json(m, now));
	json_object_set_new(o, "run", json_pack("{s:f, s:I, s:I, s:I}",
		"uptime_s", m->run_start_ms ? (double)(now - m->run_start_ms) / 1000.0 : 0.0,
		"start_to_first_work_ms", (json_int_t)m->first_work_ms,
		"start_to_first_accepted_ms", (json_int_t)m->first_accepted_ms,
		"runs", (json_int_t)m->runs));
	json_t *pt = hf_mining_power_status(m, hf_mining_rate_avg(&m->total_rate, now / 1000, 10));
	if (pt)
		json_object_set_new(o, "power_target", pt);
	if (d->done)
		json_object_set_new(o, "last_drain", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
			"hash_stop_ms", (json_int_t)d->hash_stop_ms, "flush_ms", (json_int_t)d->flush_ms,
			"close_ms", (json_int_t)d->close_ms, "total_ms", (json_int_t)d->total_ms,
			"flushed", (json_int_t)d->flushed, "unanswered", (json_int_t)d->unanswered,
			"ok", d->result == 0));
	pthread_mutex_unlock(&m->slock);
	pthread_mutex_unlock(&m->life);
	json_object_set_new(obj, "mining", o);
}

static void counter(hf_buf *b, const char *name, const char *help, uint64_t v)
{
	hf_prom_family(b, name, "counter", help);
	hf_prom_sample(b, name, NULL, 0, (double)v);
}

static void gauge(hf_buf *b, const char *name, const char *help, double v)
{
	hf_prom_family(b, name, "gauge", help);
	hf_prom_sample(b, name, NULL, 0, v);
}

static void rate_metrics(hf_mining *m, hf_buf *b, uint64_t now_s)
{
	const char *fam = "hashflop_mining_hashrate_hashes_per_second";
	const char *tfam = "hashflop_mining_thread_hashrate_hashes_per_second";
	char id[16];

	hf_prom_family(b, fam, "gauge", "Hash rate over all hashing threads, by averaging window.");
	for (size_t w = 0; w < HF_ARRAY_SIZE(windows_s); w++) {
		const char *l[] = { "window", window_names[w] };
		hf_prom_sample(b, fam, l, 1, hf_mining_rate_avg(&m->total_rate, now_s, windows_s[w]));
	}
	hf_prom_family(b, tfam, "gauge", "Hash rate of one hashing thread, by averaging window.");
	for (unsigned i = 0; i < m->nth; i++) {
		snprintf(id, sizeof id, "%u", i);
		for (size_t w = 0; w < HF_ARRAY_SIZE(windows_s); w++) {
			const char *l[] = { "thread", id, "window", window_names[w] };
			hf_prom_sample(b, tfam, l, 2, hf_mining_rate_avg(&m->th[i].rate, now_s, windows_s[w]));
		}
	}
}

static void share_metrics(hf_mining *m, const hf_share_counts *c, hf_buf *b)
{
	const char *rej = "hashflop_mining_shares_rejected_total", *drop = "hashflop_mining_shares_dropped_total";

	counter(b, "hashflop_mining_shares_found_total", "Nonces the kernel found under the share target.", c->found);
	counter(b, "hashflop_mining_shares_submitted_total", "Shares that passed the local check and were queued to the pool.", c->submitted);
	counter(b, "hashflop_mining_shares_accepted_total", "Shares the pool accepted.", c->accepted);
	hf_prom_family(b, rej, "counter", "Shares the pool rejected, by its reason (the first 8 distinct reasons; later ones as \"other\").");
	for (size_t i = 0; i < c->nrejects; i++) {
		const char *l[] = { "reason", c->rejects[i].reason };
		hf_prom_sample(b, rej, l, 1, (double)c->rejects[i].count);
	}
	const char *lo[] = { "reason", "other" };
	hf_prom_sample(b, rej, lo, 1, (double)c->rejects_other);
	hf_prom_family(b, drop, "counter", "Shares that ended without a pool answer, by reason.");
	for (int i = 0; i < HF_SHARE_DROP_KINDS; i++) {
		const char *l[] = { "reason", hf_share_drop_name((hf_share_drop)i) };
		hf_prom_sample(b, drop, l, 1, (double)c->dropped[i]);
	}
	gauge(b, "hashflop_mining_shares_queued", "Shares found and waiting in the submit queue.", (double)c->queued);
	gauge(b, "hashflop_mining_shares_in_flight", "Shares handed to the driver and not answered or dropped yet.", (double)c->in_flight);
	counter(b, "hashflop_mining_shares_stale_total", "Shares dropped because their job or session was replaced before they were sent.", c->dropped[HF_SHARE_DROP_STALE]);
	counter(b, "hashflop_mining_shares_known_stale_sent_total", "Shares handed to the pool after the node had seen their job replaced (0 unless broken).", c->known_stale_sent);
	counter(b, "hashflop_mining_hardware_errors_total", "Found nonces that failed the local share check.", c->dropped[HF_SHARE_DROP_HW_ERROR]);
	counter(b, "hashflop_mining_submit_queue_drops_total", "Shares dropped because the submit queue (or the driver's unanswered table) was full.", c->dropped[HF_SHARE_DROP_QUEUE_FULL]);
	gauge(b, "hashflop_mining_best_share_difficulty", "Highest difficulty of a submitted share.", c->best_diff);
	gauge(b, "hashflop_mining_difficulty", "Current pool share difficulty.", m->difficulty);
	hf_prom_family(b, "hashflop_mining_share_latency_seconds", "summary", "Submit to pool result latency.");
	hf_prom_sample(b, "hashflop_mining_share_latency_seconds_sum", NULL, 0, (double)c->lat_sum_ms / 1000.0);
	hf_prom_sample(b, "hashflop_mining_share_latency_seconds_count", NULL, 0, (double)c->lat_count);
	gauge(b, "hashflop_mining_share_latency_max_seconds", "Largest submit to result latency.", (double)c->lat_max_ms / 1000.0);
}

static void work_metrics(hf_mining *m, hf_buf *b)
{
	counter(b, "hashflop_mining_hashes_total", "Nonces hashed.", m->total_rate.total);
	gauge(b, "hashflop_mining_hashes_per_cpu_second", "Nonces per CPU-second of the hashing threads (OpenCL: of the process) in this run.", per_cpu_s(m));
	gauge(b, "hashflop_mining_threads", "Hashing threads in this run.", (double)m->nth);
	counter(b, "hashflop_mining_thread_stalls_total", "Times a hashing thread made no progress for stall_ms.", atomic_load(&m->stalls));
	counter(b, "hashflop_mining_thread_restarts_total", "Hashing threads restarted after a failed scan or replaced after a stall.", atomic_load(&m->restarts));
	gauge(b, "hashflop_mining_failed", "1 once the backend failed beyond its restart budget (until the mode is restarted).", atomic_load(&m->state) == HF_MST_FAILED ? 1 : 0);
	counter(b, "hashflop_mining_job_switches_total", "New works that reached every hashing thread.", m->job_switches);
	hf_prom_family(b, "hashflop_mining_job_switch_latency_seconds", "summary", "Publication of a new work until the last hashing thread uses it.");
	hf_prom_sample(b, "hashflop_mining_job_switch_latency_seconds_sum", NULL, 0, (double)m->sw_sum_us / 1e6);
	hf_prom_sample(b, "hashflop_mining_job_switch_latency_seconds_count", NULL, 0, (double)m->job_switches);
	gauge(b, "hashflop_mining_job_switch_latency_max_seconds", "Slowest job switch so far.", (double)m->sw_maxall_us / 1e6);
	gauge(b, "hashflop_mining_start_to_first_work_seconds", "Restart latency: mode start until the first work reached the threads (0: not yet).", (double)m->first_work_ms / 1000.0);
	gauge(b, "hashflop_mining_start_to_first_accepted_seconds", "Restart latency: mode start until the first accepted share (0: not yet).", (double)m->first_accepted_ms / 1000.0);
	counter(b, "hashflop_mining_extranonce2_rolls_total", "Extranonce2 values taken by hashing threads.", atomic_load(&m->en2_rolls));
	counter(b, "hashflop_mining_version_rolls_total", "Version-bit rolls inside the pool's mask.", atomic_load(&m->version_rolls));
}

static void pool_metrics(hf_mining *m, hf_buf *b, uint64_t now_ms)
{
	hf_stratum_pool_stats ps;
	char idx[16];

	gauge(b, "hashflop_mining_no_pool", "1 while no pool has answered for the grace period.",
	      atomic_load(&m->state) == HF_MST_NO_POOL ? 1 : 0);
	gauge(b, "hashflop_mining_pool_uptime_seconds", "Seconds the active pool has been in session.",
	      m->active_pool >= 0 && m->active_since_ms ? (double)(now_ms - m->active_since_ms) / 1000.0 : 0);
	hf_prom_family(b, "hashflop_mining_pool_up", "gauge", "1 for the pool in session.");
	for (size_t i = 0; m->drv && i < m->cfg.npools; i++) {
		snprintf(idx, sizeof idx, "%zu", i + 1);
		const char *l[] = { "pool", idx, "url", m->cfg.pools[i].url };
		hf_prom_sample(b, "hashflop_mining_pool_up", l, 2, m->active_pool == (int)i ? 1 : 0);
	}
	hf_prom_family(b, "hashflop_mining_pool_connects_total", "counter", "Sessions opened, by pool.");
	for (size_t i = 0; m->drv && i < m->cfg.npools; i++) {
		if (hf_stratum_drv_pool_stats(m->drv, i, &ps) < 0)
			continue;
		snprintf(idx, sizeof idx, "%zu", i + 1);
		const char *l[] = { "pool", idx };
		hf_prom_sample(b, "hashflop_mining_pool_connects_total", l, 1, (double)ps.connects);
	}
}

void hf_mining_metrics(void *impl, hf_buf *b)
{
	hf_mining *m = impl;
	uint64_t now = hf_mono_ms();
	hf_share_counts c;

	hf_share_ledger_snapshot(m->ledger, &c);
	pthread_mutex_lock(&m->life);
	pthread_mutex_lock(&m->slock);
	rate_metrics(m, b, now / 1000);
	work_metrics(m, b);
	share_metrics(m, &c, b);
	pool_metrics(m, b, now);
	hf_mining_power_metrics(m, b);
	pthread_mutex_unlock(&m->slock);
	pthread_mutex_unlock(&m->life);
}
