/* hf_share_ledger: exact share accounting by stage, with reject reasons cleaned and bucketed.
 * Failure: only hf_share_ledger_new can fail (out of memory); an event for an empty stage is
 * counted as a mismatch and otherwise ignored.
 * Threading: see hf_share_ledger.h; `mu` guards `c`, `cv` is signalled on every change of
 * in_flight (waits use CLOCK_MONOTONIC).
 */
#include "hf_share_ledger.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_text.h"
#include "hf_util.h"

static const char *const drop_names[HF_SHARE_DROP_KINDS] = {
	"queue_full", "stale", "hw_error", "submit_failed", "session_lost", "drained",
};

struct hf_share_ledger {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	hf_share_counts c;
};

const char *hf_share_drop_name(hf_share_drop why)
{
	return (unsigned)why < HF_SHARE_DROP_KINDS ? drop_names[why] : "unknown";
}

int hf_share_ledger_new(hf_share_ledger **out, hf_errbuf *eb)
{
	hf_share_ledger *l = calloc(1, sizeof *l);
	pthread_condattr_t ca;

	*out = NULL;
	if (!l)
		return hf_fail(eb, HF_ENOMEM, "share ledger: out of memory");
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = l;
	return 0;
}

void hf_share_ledger_free(hf_share_ledger *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

/* Takes one share out of a stage; false (and a mismatch) when the stage is empty. */
static bool take_locked(hf_share_ledger *l, hf_share_stage from)
{
	uint64_t *n = from == HF_SHARE_QUEUED ? &l->c.queued : &l->c.in_flight;

	if (*n == 0) {
		l->c.mismatches++;
		return false;
	}
	(*n)--;
	if (from == HF_SHARE_IN_FLIGHT)
		pthread_cond_broadcast(&l->cv);
	return true;
}

void hf_share_ledger_found(hf_share_ledger *l, uint64_t n)
{
	pthread_mutex_lock(&l->mu);
	l->c.found += n;
	l->c.queued += n;
	pthread_mutex_unlock(&l->mu);
}

void hf_share_ledger_sending(hf_share_ledger *l)
{
	pthread_mutex_lock(&l->mu);
	if (take_locked(l, HF_SHARE_QUEUED))
		l->c.in_flight++;
	pthread_mutex_unlock(&l->mu);
}

void hf_share_ledger_sent(hf_share_ledger *l, bool known_stale, double diff)
{
	pthread_mutex_lock(&l->mu);
	l->c.submitted++;
	if (known_stale)
		l->c.known_stale_sent++;
	if (diff > l->c.best_diff)
		l->c.best_diff = diff;
	pthread_mutex_unlock(&l->mu);
}

void hf_share_ledger_drop(hf_share_ledger *l, hf_share_stage from, hf_share_drop why)
{
	if ((unsigned)why >= HF_SHARE_DROP_KINDS)
		why = HF_SHARE_DROP_SUBMIT_FAILED;
	pthread_mutex_lock(&l->mu);
	if (take_locked(l, from))
		l->c.dropped[why]++;
	pthread_mutex_unlock(&l->mu);
}

/* Counts one reject under its cleaned reason, or under "other" once the buckets are full. */
static void count_reject_locked(hf_share_ledger *l, const char *raw)
{
	char reason[HF_SHARE_LEDGER_REASON_MAX];
	size_t i;

	hf_text_clean(reason, sizeof reason, raw ? raw : "", raw ? strlen(raw) : 0);
	if (!reason[0])
		hf_strlcpy(reason, "unknown", sizeof reason);
	if (strcmp(reason, "other") == 0) {   /* the bucket's own name cannot be a bucket */
		l->c.rejects_other++;
		return;
	}
	for (i = 0; i < l->c.nrejects; i++)
		if (strcmp(l->c.rejects[i].reason, reason) == 0)
			break;
	if (i == l->c.nrejects) {
		if (i == HF_SHARE_LEDGER_REASONS) {
			l->c.rejects_other++;
			return;
		}
		memcpy(l->c.rejects[i].reason, reason, sizeof reason);
		l->c.nrejects++;
	}
	l->c.rejects[i].count++;
}

void hf_share_ledger_answered(hf_share_ledger *l, bool accepted, const char *reason,
			      uint64_t latency_ms)
{
	pthread_mutex_lock(&l->mu);
	if (!take_locked(l, HF_SHARE_IN_FLIGHT)) {
		pthread_mutex_unlock(&l->mu);
		return;
	}
	l->c.lat_count++;
	l->c.lat_sum_ms += latency_ms;
	l->c.lat_last_ms = latency_ms;
	if (latency_ms > l->c.lat_max_ms)
		l->c.lat_max_ms = latency_ms;
	if (accepted) {
		l->c.accepted++;
	} else {
		l->c.rejected++;
		count_reject_locked(l, reason);
	}
	pthread_mutex_unlock(&l->mu);
}

uint64_t hf_share_ledger_abandon(hf_share_ledger *l, hf_share_drop why)
{
	uint64_t n;

	if ((unsigned)why >= HF_SHARE_DROP_KINDS)
		why = HF_SHARE_DROP_DRAINED;
	pthread_mutex_lock(&l->mu);
	n = l->c.queued + l->c.in_flight;
	l->c.dropped[why] += n;
	l->c.queued = l->c.in_flight = 0;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	return n;
}

uint64_t hf_share_ledger_wait_in_flight(hf_share_ledger *l, uint64_t deadline_ms)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ms / 1000),
			       .tv_nsec = (long)(deadline_ms % 1000) * 1000000L };
	uint64_t n;

	pthread_mutex_lock(&l->mu);
	while (l->c.in_flight > 0 && hf_mono_ms() < deadline_ms)
		if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
			break;
	n = l->c.in_flight;
	pthread_mutex_unlock(&l->mu);
	return n;
}

void hf_share_ledger_snapshot(hf_share_ledger *l, hf_share_counts *out)
{
	pthread_mutex_lock(&l->mu);
	*out = l->c;
	pthread_mutex_unlock(&l->mu);
}

uint64_t hf_share_counts_dropped(const hf_share_counts *c)
{
	uint64_t n = 0;

	for (size_t i = 0; i < HF_SHARE_DROP_KINDS; i++)
		n += c->dropped[i];
	return n;
}
