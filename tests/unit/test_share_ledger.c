/* Unit tests: hf_share_ledger (exact share accounting by stage, reject reasons cleaned and
 * bucketed, waiting on the in-flight count). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "hf_share_ledger.h"
#include "hf_text.h"
#include "hf_util.h"

static hf_share_ledger *make(void)
{
	hf_share_ledger *l = NULL;
	hf_errbuf eb;

	cr_assert_eq(hf_share_ledger_new(&l, &eb), 0);
	cr_assert_not_null(l);
	return l;
}

/* found == queued + in_flight + accepted + rejected + dropped */
static void assert_balanced(const hf_share_counts *c)
{
	cr_assert_eq(c->found, c->queued + c->in_flight + c->accepted + c->rejected +
		     hf_share_counts_dropped(c), "found %llu queued %llu in flight %llu accepted %llu "
		     "rejected %llu dropped %llu", (unsigned long long)c->found,
		     (unsigned long long)c->queued, (unsigned long long)c->in_flight,
		     (unsigned long long)c->accepted, (unsigned long long)c->rejected,
		     (unsigned long long)hf_share_counts_dropped(c));
}

Test(share_ledger, every_stage_and_drop_reason_is_counted)
{
	hf_share_ledger *l = make();
	hf_share_counts c;

	hf_share_ledger_found(l, 10);
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.found, 10);
	cr_assert_eq(c.queued, 10);
	assert_balanced(&c);
	hf_share_ledger_drop(l, HF_SHARE_QUEUED, HF_SHARE_DROP_QUEUE_FULL);
	for (int i = 0; i < 9; i++)
		hf_share_ledger_sending(l);
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.queued, 0);
	cr_assert_eq(c.in_flight, 9);
	cr_assert_eq(c.submitted, 0, "submitted counts successful hand-overs only");
	assert_balanced(&c);
	/* Two hand-overs fail locally. */
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_STALE);
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_HW_ERROR);
	for (int i = 0; i < 7; i++)
		hf_share_ledger_sent(l, i == 0, 0.5 + i);
	/* The driver drops three of the seven, the pool answers the rest. */
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_SESSION_LOST);
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_SUBMIT_FAILED);
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_DRAINED);
	hf_share_ledger_answered(l, true, "", 12);
	hf_share_ledger_answered(l, true, NULL, 30);
	hf_share_ledger_answered(l, false, "Duplicate", 6);
	hf_share_ledger_answered(l, false, "Stale", 3);
	hf_share_ledger_snapshot(l, &c);
	assert_balanced(&c);
	cr_assert_eq(c.in_flight, 0);
	cr_assert_eq(c.submitted, 7);
	cr_assert_eq(c.known_stale_sent, 1);
	cr_assert_float_eq(c.best_diff, 6.5, 1e-12);
	cr_assert_eq(c.accepted, 2);
	cr_assert_eq(c.rejected, 2);
	for (int i = 0; i < HF_SHARE_DROP_KINDS; i++)
		cr_assert_eq(c.dropped[i], 1, "%s", hf_share_drop_name((hf_share_drop)i));
	cr_assert_eq(c.lat_count, 4);
	cr_assert_eq(c.lat_sum_ms, 51);
	cr_assert_eq(c.lat_max_ms, 30);
	cr_assert_eq(c.lat_last_ms, 3);
	cr_assert_eq(c.mismatches, 0);
	hf_share_ledger_free(l);
}

Test(share_ledger, drop_names_are_stable)
{
	static const char *const want[] = { "queue_full", "stale", "hw_error", "submit_failed",
					    "session_lost", "drained" };

	for (int i = 0; i < HF_SHARE_DROP_KINDS; i++)
		cr_assert_str_eq(hf_share_drop_name((hf_share_drop)i), want[i]);
	cr_assert_str_eq(hf_share_drop_name((hf_share_drop)99), "unknown");
}

Test(share_ledger, an_event_for_an_empty_stage_is_a_mismatch_not_a_wrap)
{
	hf_share_ledger *l = make();
	hf_share_counts c;

	hf_share_ledger_answered(l, true, "", 1);
	hf_share_ledger_drop(l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_SESSION_LOST);
	hf_share_ledger_drop(l, HF_SHARE_QUEUED, HF_SHARE_DROP_QUEUE_FULL);
	hf_share_ledger_sending(l);
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.mismatches, 4);
	cr_assert_eq(c.in_flight, 0);
	cr_assert_eq(c.queued, 0);
	cr_assert_eq(c.accepted, 0);
	cr_assert_eq(hf_share_counts_dropped(&c), 0);
	assert_balanced(&c);
	hf_share_ledger_free(l);
}

static void reject(hf_share_ledger *l, const char *reason)
{
	hf_share_ledger_found(l, 1);
	hf_share_ledger_sending(l);
	hf_share_ledger_sent(l, false, 1);
	hf_share_ledger_answered(l, false, reason, 1);
}

static uint64_t bucket(const hf_share_counts *c, const char *reason)
{
	for (size_t i = 0; i < c->nrejects; i++)
		if (strcmp(c->rejects[i].reason, reason) == 0)
			return c->rejects[i].count;
	return 0;
}

Test(share_ledger, reasons_beyond_the_table_count_as_other)
{
	hf_share_ledger *l = make();
	hf_share_counts c;
	char r[16];

	for (int i = 0; i < 11; i++) {
		snprintf(r, sizeof r, "reason %d", i);
		reject(l, r);
	}
	reject(l, "reason 3");    /* a known one still finds its bucket */
	reject(l, "reason 10");   /* an extra one stays extra */
	reject(l, "other");       /* the bucket's own name is not a ninth bucket */
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.nrejects, HF_SHARE_LEDGER_REASONS);
	for (int i = 0; i < 8; i++) {
		snprintf(r, sizeof r, "reason %d", i);
		cr_assert_eq(bucket(&c, r), i == 3 ? 2 : 1, "%s", r);
	}
	cr_assert_eq(bucket(&c, "reason 8"), 0, "no slot absorbs an extra reason under its name");
	cr_assert_eq(c.rejects_other, 5, "reasons 8, 9, 10 (twice) and \"other\"");
	cr_assert_eq(c.rejected, 14);
	assert_balanced(&c);
	hf_share_ledger_free(l);
}

Test(share_ledger, reasons_are_cleaned_and_cut_on_a_character_boundary)
{
	hf_share_ledger *l = make();
	hf_share_counts c;
	char raw[256];

	/* Control characters (a forged log line, an ANSI escape), then padding so that a
	 * three-byte character straddles the end of the 48-byte bucket. */
	snprintf(raw, sizeof raw, "Bad\nshare\x1b[31m\x01%s\xe2\x82\xac tail",
		 "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");   /* 15 + 31 = 46 bytes before the euro sign */
	reject(l, raw);
	reject(l, "");
	reject(l, "\xff\xfe half \xe2\x82");   /* invalid bytes and a truncated character */
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.nrejects, 3);
	cr_assert_str_eq(c.rejects[0].reason, "Bad?share?[31m?yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	cr_assert_str_eq(c.rejects[1].reason, "unknown");
	for (size_t i = 0; i < c.nrejects; i++) {
		const char *s = c.rejects[i].reason;
		cr_assert(hf_utf8_valid(s, strlen(s)), "bucket %zu is valid UTF-8", i);
		for (const char *p = s; *p; p++)
			cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "bucket %zu: control byte", i);
	}
	cr_assert_eq(strncmp(c.rejects[2].reason, "?? half ", 8), 0, "%s", c.rejects[2].reason);
	hf_share_ledger_free(l);
}

typedef struct answerer {
	hf_share_ledger *l;
	int n;
} answerer;

static void *answer_later(void *arg)
{
	answerer *a = arg;

	for (int i = 0; i < a->n; i++) {
		hf_sleep_ms(20);
		if (i % 2)
			hf_share_ledger_answered(a->l, true, "", 20);
		else
			hf_share_ledger_drop(a->l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_SESSION_LOST);
	}
	return NULL;
}

/* The wait ends when the last share is answered or dropped, not at the deadline: a deadline
 * far beyond the answers shows which one ended it. */
Test(share_ledger, wait_ends_when_nothing_is_in_flight)
{
	hf_share_ledger *l = make();
	answerer a = { .l = l, .n = 4 };
	pthread_t th;

	cr_assert_eq(hf_share_ledger_wait_in_flight(l, hf_mono_ms() + 60000), 0, "empty: at once");
	hf_share_ledger_found(l, 4);
	for (int i = 0; i < 4; i++)
		hf_share_ledger_sending(l);
	cr_assert_eq(hf_share_ledger_wait_in_flight(l, hf_mono_ms()), 4, "a deadline now: the count");
	cr_assert_eq(pthread_create(&th, NULL, answer_later, &a), 0);
	uint64_t t0 = hf_mono_ms();
	cr_assert_eq(hf_share_ledger_wait_in_flight(l, t0 + 60000), 0);
	uint64_t waited = hf_mono_ms() - t0;
	pthread_join(th, NULL);
	cr_assert_lt(waited, 60000, "woken by the last drop, not by the deadline");
	cr_log_info("waited %llu ms for 4 answers 20 ms apart", (unsigned long long)waited);
	hf_share_ledger_free(l);
}

Test(share_ledger, abandon_drops_what_is_left)
{
	hf_share_ledger *l = make();
	hf_share_counts c;

	hf_share_ledger_found(l, 5);
	hf_share_ledger_sending(l);
	hf_share_ledger_sending(l);
	cr_assert_eq(hf_share_ledger_abandon(l, HF_SHARE_DROP_DRAINED), 5);
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.dropped[HF_SHARE_DROP_DRAINED], 5);
	cr_assert_eq(c.queued + c.in_flight, 0);
	assert_balanced(&c);
	cr_assert_eq(hf_share_ledger_abandon(l, HF_SHARE_DROP_DRAINED), 0);
	hf_share_ledger_free(l);
}

typedef struct worker {
	hf_share_ledger *l;
	int seed;
} worker;

static void *churn(void *arg)
{
	worker *w = arg;
	uint32_t x = (uint32_t)w->seed * 2654435761u | 1;

	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		hf_share_ledger_found(w->l, 1);
		if (x % 7 == 0) {
			hf_share_ledger_drop(w->l, HF_SHARE_QUEUED, HF_SHARE_DROP_QUEUE_FULL);
			continue;
		}
		hf_share_ledger_sending(w->l);
		hf_share_ledger_sent(w->l, false, 1);
		if (x % 5 == 0)
			hf_share_ledger_drop(w->l, HF_SHARE_IN_FLIGHT, HF_SHARE_DROP_SESSION_LOST);
		else
			hf_share_ledger_answered(w->l, x % 3 != 0, "Stale", 1);
	}
	return NULL;
}

Test(share_ledger, concurrent_writers_keep_it_balanced)
{
	hf_share_ledger *l = make();
	pthread_t th[4];
	worker w[4];
	hf_share_counts c;

	for (int i = 0; i < 4; i++) {
		w[i] = (worker){ .l = l, .seed = i + 1 };
		cr_assert_eq(pthread_create(&th[i], NULL, churn, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	hf_share_ledger_snapshot(l, &c);
	cr_assert_eq(c.found, 80000);
	cr_assert_eq(c.queued + c.in_flight, 0);
	cr_assert_eq(c.mismatches, 0);
	assert_balanced(&c);
	hf_share_ledger_free(l);
}
