/* hf_coord_feeds: the feed fetcher: one thread running a libcurl multi handle, fetching due URL
 * feeds concurrently in rounds and applying each result with hf_coord_feed_observe.
 *
 * Invariants: every URL feed has one easy handle, made in hf_coord_feeds_new and configured
 * once (https and http only, no redirects, TLS peer and host verified, timeouts, a body cap
 * enforced by the write callback, which aborts the transfer one byte past max_body); a handle
 * is in the multi handle only while its transfer runs. A round is the batch of feeds due when
 * it starts; the next round starts only when the last transfer of this one has finished, and
 * each finished transfer schedules its feed's next fetch (refresh_s after a success,
 * min(refresh_s, 10 s) after a failure). The state is only changed under mu, by the thread.
 * Failure: a transfer that cannot be started counts as a failed fetch of its feed (why says
 * so); nothing here stops the thread except hf_coord_feeds_free.
 * Threading: the fetcher thread owns the multi and easy handles and the bodies; the other
 * functions take mu briefly (copies) and may be called from any thread; curl_multi_wakeup is
 * the only curl call made from another thread (libcurl allows it).
 */
#include "hf_coord_feeds.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_prom.h"
#include "hf_util.h"
#include "hf_version.h"

#define RETRY_MAX_S 10u
#define IDLE_WAIT_MS 60000
#define ROUND_WAIT_MS 1000

typedef struct xfer {
	CURL *easy;
	hf_coord_feed_id id;
	bool active;          /* in the multi handle */
	char *body;           /* len bytes (+ NUL), at most cap */
	size_t len, alloc, cap;
	bool over;            /* aborted past max_body */
	char err[CURL_ERROR_SIZE];
} xfer;

struct hf_coord_feeds {
	hf_coord_feeds_spec spec;
	CURLM *multi;
	xfer x[HF_FEED_COUNT];
	uint64_t due_mono[HF_FEED_COUNT]; /* thread only */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;                /* rounds changed */
	hf_coord_feed_state st[HF_FEED_COUNT];
	uint64_t rounds;
	bool in_round, refresh, stop;
};

/* ---- one transfer ---- */

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	xfer *x = arg;
	size_t n = sz * nm, room = x->cap - x->len, take = n < room ? n : room;

	if (x->len + take + 1 > x->alloc) {
		size_t want = x->alloc ? x->alloc : 4096;
		while (want < x->len + take + 1)
			want *= 2;
		if (want > x->cap + 1)
			want = x->cap + 1;
		char *nb = realloc(x->body, want);
		if (!nb)
			return 0;
		x->body = nb;
		x->alloc = want;
	}
	memcpy(x->body + x->len, p, take);
	x->len += take;
	x->body[x->len] = '\0';
	if (take < n) {
		x->over = true;
		return 0;
	}
	return n;
}

static int easy_setup(xfer *x, const hf_coord_feed_spec *s, const char *ca_file)
{
	CURL *e = curl_easy_init();
	long t_ms = (long)s->timeout_s * 1000;
	int bad = 0;

	if (!e)
		return HF_EIO;
	x->easy = e;
	x->cap = s->max_body + 1;
	bad |= curl_easy_setopt(e, CURLOPT_URL, s->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (ca_file[0])
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, ca_file) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "hashflop-coord/" HF_VERSION) != CURLE_OK;
	return bad ? HF_EIO : 0;
}

static void schedule_next(hf_coord_feeds *f, hf_coord_feed_id id, bool ok, uint64_t wall)
{
	unsigned refresh = f->spec.feed[id].refresh_s;
	unsigned delay_s = ok || refresh < RETRY_MAX_S ? refresh : RETRY_MAX_S;

	f->due_mono[id] = hf_mono_ms() + (uint64_t)delay_s * 1000;
	f->st[id].next_fetch_ms = wall + (uint64_t)delay_s * 1000;
}

/* Applies the outcome of x's transfer (cc; terr overrides it when non-NULL). */
static void finish(hf_coord_feeds *f, xfer *x, CURLcode cc, const char *terr)
{
	const hf_coord_feed_spec *s = &f->spec.feed[x->id];
	char tbuf[CURL_ERROR_SIZE + 160];
	long status = 0;
	uint64_t wall;
	int r;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (!terr && !x->over && cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(tbuf, sizeof tbuf, "timeout after %u s%s%s", s->timeout_s,
			 x->err[0] ? ": " : "", x->err);
		terr = tbuf;
	} else if (!terr && !x->over && cc != CURLE_OK) {
		/* libcurl's detail when it has one ("SSL certificate problem: ..."), else its
		 * text for the code */
		snprintf(tbuf, sizeof tbuf, "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
		terr = tbuf;
	}
	wall = hf_wall_ms();
	pthread_mutex_lock(&f->mu);
	r = hf_coord_feed_observe(s, &f->st[x->id], wall, terr, status, x->body, x->len);
	schedule_next(f, x->id, r == 0, wall);
	pthread_mutex_unlock(&f->mu);
	x->len = 0;
	x->over = false;
	x->err[0] = '\0';
}

static void start(hf_coord_feeds *f, xfer *x)
{
	x->len = 0;
	x->over = false;
	x->err[0] = '\0';
	if (curl_multi_add_handle(f->multi, x->easy) != CURLM_OK) {
		finish(f, x, CURLE_FAILED_INIT, "cannot start the transfer");
		return;
	}
	x->active = true;
}

/* Applies every finished transfer. */
static void drain(hf_coord_feeds *f)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left))) {
		char *priv = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode cc = m->data.result;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
		curl_multi_remove_handle(f->multi, e);
		xfer *x = (xfer *)(void *)priv;
		if (!x)
			continue;
		x->active = false;
		finish(f, x, cc, NULL);
	}
}

/* ---- rounds ---- */

static bool any_active(const hf_coord_feeds *f)
{
	for (int i = 0; i < HF_FEED_COUNT; i++)
		if (f->x[i].active)
			return true;
	return false;
}

/* Under mu: marks the feeds due now in due[] and starts a round when there is one. */
static void pick_due(hf_coord_feeds *f, bool due[HF_FEED_COUNT])
{
	uint64_t now = hf_mono_ms();
	bool any = false;

	for (int i = 0; i < HF_FEED_COUNT; i++) {
		due[i] = f->x[i].easy && (f->refresh || now >= f->due_mono[i]);
		any |= due[i];
	}
	if (any) {
		f->in_round = true;
	} else if (f->refresh) {
		f->rounds++; /* no URL feed: an empty round */
		pthread_cond_broadcast(&f->cv);
	}
	f->refresh = false;
}

static void end_round(hf_coord_feeds *f)
{
	pthread_mutex_lock(&f->mu);
	f->in_round = false;
	f->rounds++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static int wait_ms(const hf_coord_feeds *f)
{
	uint64_t now = hf_mono_ms(), next = now + IDLE_WAIT_MS;

	if (f->in_round)
		return ROUND_WAIT_MS; /* curl_multi_poll also honours curl's own timeouts */
	for (int i = 0; i < HF_FEED_COUNT; i++)
		if (f->x[i].easy && f->due_mono[i] < next)
			next = f->due_mono[i];
	return next > now ? (int)(next - now) : 0;
}

static void abort_all(hf_coord_feeds *f)
{
	for (int i = 0; i < HF_FEED_COUNT; i++)
		if (f->x[i].active) {
			curl_multi_remove_handle(f->multi, f->x[i].easy);
			f->x[i].active = false;
		}
}

static void *fetcher_main(void *arg)
{
	hf_coord_feeds *f = arg;

	for (;;) {
		bool due[HF_FEED_COUNT] = { false };
		int running = 0;

		pthread_mutex_lock(&f->mu);
		if (f->stop) {
			pthread_mutex_unlock(&f->mu);
			break;
		}
		if (!f->in_round)
			pick_due(f, due);
		pthread_mutex_unlock(&f->mu);
		for (int i = 0; i < HF_FEED_COUNT; i++)
			if (due[i])
				start(f, &f->x[i]);
		curl_multi_perform(f->multi, &running);
		drain(f);
		if (f->in_round && !any_active(f)) {
			end_round(f);
			continue; /* a refresh asked for during the round starts the next one now */
		}
		curl_multi_poll(f->multi, NULL, 0, wait_ms(f), NULL);
	}
	abort_all(f);
	return NULL;
}

/* ---- lifetime ---- */

static int feeds_setup(hf_coord_feeds *f, hf_errbuf *eb)
{
	f->multi = curl_multi_init();
	if (!f->multi)
		return hf_fail(eb, HF_EIO, "curl_multi_init failed");
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		const hf_coord_feed_spec *s = &f->spec.feed[i];
		f->x[i].id = (hf_coord_feed_id)i;
		if (s->kind != HF_FEED_URL)
			continue;
		if (easy_setup(&f->x[i], s, f->spec.ca_file) != 0)
			return hf_fail(eb, HF_EIO, "feeds.%s: libcurl refused an option (needs "
				       "libcurl >= 7.85 with https)", hf_coord_feed_name(f->x[i].id));
	}
	return 0;
}

int hf_coord_feeds_new(const hf_coord_feeds_spec *spec, hf_coord_feeds **out, hf_errbuf *eb)
{
	hf_coord_feeds *f;
	int r;

	*out = NULL;
	hf_errbuf_clear(eb);
	if ((r = hf_coord_feeds_spec_check(spec, eb)) != 0)
		return r;
	if (spec->ca_file[0] && access(spec->ca_file, R_OK) != 0)
		return hf_fail(eb, HF_ECONFIG, "feeds.ca_file: %s: %s", spec->ca_file,
			       strerror(errno));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return hf_fail(eb, HF_EIO, "curl_global_init failed");
	f = calloc(1, sizeof *f);
	if (!f) {
		curl_global_cleanup();
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	f->spec = *spec;
	f->refresh = true; /* the first round at once */
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if ((r = feeds_setup(f, eb)) != 0)
		goto fail;
	if (pthread_create(&f->thread, NULL, fetcher_main, f) != 0) {
		r = hf_fail(eb, HF_EIO, "cannot start the feed fetcher thread");
		goto fail;
	}
	f->thread_started = true;
	*out = f;
	return 0;
fail:
	hf_coord_feeds_free(f);
	return r;
}

void hf_coord_feeds_free(hf_coord_feeds *f)
{
	if (!f)
		return;
	if (f->thread_started) {
		pthread_mutex_lock(&f->mu);
		f->stop = true;
		pthread_mutex_unlock(&f->mu);
		curl_multi_wakeup(f->multi);
		pthread_join(f->thread, NULL);
	}
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		if (f->x[i].active)
			curl_multi_remove_handle(f->multi, f->x[i].easy);
		curl_easy_cleanup(f->x[i].easy);
		free(f->x[i].body);
	}
	curl_multi_cleanup(f->multi);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
	curl_global_cleanup();
}

/* ---- readers ---- */

static void copy_state(hf_coord_feeds *f, hf_coord_feed_state st[HF_FEED_COUNT])
{
	pthread_mutex_lock(&f->mu);
	memcpy(st, f->st, sizeof f->st);
	pthread_mutex_unlock(&f->mu);
}

void hf_coord_feeds_market(hf_coord_feeds *f, uint64_t now_ms, hf_coord_market *m)
{
	hf_coord_feed_state st[HF_FEED_COUNT];

	copy_state(f, st);
	hf_coord_feeds_market_of(&f->spec, st, now_ms, m);
}

void hf_coord_feeds_state(hf_coord_feeds *f, hf_coord_feed_id id, hf_coord_feed_state *out)
{
	memset(out, 0, sizeof *out);
	if ((unsigned)id >= HF_FEED_COUNT)
		return;
	pthread_mutex_lock(&f->mu);
	*out = f->st[id];
	pthread_mutex_unlock(&f->mu);
}

uint64_t hf_coord_feeds_rounds(hf_coord_feeds *f)
{
	uint64_t r;

	pthread_mutex_lock(&f->mu);
	r = f->rounds;
	pthread_mutex_unlock(&f->mu);
	return r;
}

uint64_t hf_coord_feeds_refresh(hf_coord_feeds *f)
{
	uint64_t target;

	pthread_mutex_lock(&f->mu);
	f->refresh = true;
	target = f->rounds + (f->in_round ? 2 : 1);
	pthread_mutex_unlock(&f->mu);
	curl_multi_wakeup(f->multi);
	return target;
}

void hf_coord_feeds_refresh_now(hf_coord_feeds *f)
{
	(void)hf_coord_feeds_refresh(f);
}

bool hf_coord_feeds_wait_round(hf_coord_feeds *f, uint64_t round, uint64_t timeout_ms)
{
	struct timespec ts;
	bool ok;

	hf_abstime_after_ms(timeout_ms, &ts);
	pthread_mutex_lock(&f->mu);
	while (f->rounds < round)
		if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
			break;
	ok = f->rounds >= round;
	pthread_mutex_unlock(&f->mu);
	return ok;
}

/* ---- GET /v1/feeds and /metrics ---- */

static const char *kind_name(hf_coord_feed_kind k)
{
	switch (k) {
	case HF_FEED_URL: return "url";
	case HF_FEED_CONST: return "value";
	case HF_FEED_SCHEDULE: return "schedule";
	case HF_FEED_NONE: break;
	}
	return "none";
}

static json_t *num_or_null(bool have, double v)
{
	return have ? json_real(v) : json_null();
}

static json_t *feed_json(const hf_coord_feed_spec *s, const hf_coord_feed_state *st,
			 uint64_t now_ms)
{
	char why[HF_FEED_WHY_MAX + 64];
	double v = 0;
	bool fresh = hf_coord_feed_value(s, st, now_ms, &v, why, sizeof why);
	bool url = s->kind == HF_FEED_URL;
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (!url)
		st = NULL;
	json_object_set_new(o, "kind", json_string(kind_name(s->kind)));
	if (url) {
		json_object_set_new(o, "url", json_string(s->url));
		json_object_set_new(o, "pointer", json_string(s->pointer));
		v = st->value;
	}
	json_object_set_new(o, "value", num_or_null(!url || st->have, v));
	json_object_set_new(o, "fresh", json_boolean(fresh));
	json_object_set_new(o, "age_s", url && st->have ?
			    json_integer((json_int_t)((now_ms > st->value_ms ?
						       now_ms - st->value_ms : 0) / 1000)) :
			    json_null());
	json_object_set_new(o, "stale_why", fresh ? json_null() : json_string(why));
	json_object_set_new(o, "last_error", url && st->fail_total ? json_string(st->why) :
			    json_null());
	json_object_set_new(o, "ok_total", json_integer(url ? (json_int_t)st->ok_total : 0));
	json_object_set_new(o, "fail_total", json_integer(url ? (json_int_t)st->fail_total : 0));
	if (url)
		json_object_set_new(o, "next_fetch_ms", st->next_fetch_ms ?
				    json_integer((json_int_t)st->next_fetch_ms) : json_null());
	return o;
}

static json_t *market_json(const hf_coord_market *m)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:o}", "at_ms",
			 (json_int_t)m->at_ms, "btc_usd", m->btc_usd, "difficulty", m->difficulty,
			 "fees_btc", m->fees_btc, "subsidy_btc", m->subsidy_btc, "power_usd_kwh",
			 m->power_usd_kwh, "inference_price", m->infer_price, "inference_demand",
			 m->infer_demand, "stale", m->stale, "stale_why",
			 m->stale ? json_string(m->stale_why) : json_null());
}

json_t *hf_coord_feeds_json(hf_coord_feeds *f, uint64_t now_ms)
{
	hf_coord_feed_state st[HF_FEED_COUNT];
	hf_coord_market m;
	json_t *feeds = json_object(), *out;

	copy_state(f, st);
	hf_coord_feeds_market_of(&f->spec, st, now_ms, &m);
	for (int i = 0; feeds && i < HF_FEED_COUNT; i++) {
		if (f->spec.feed[i].kind == HF_FEED_NONE)
			continue;
		json_t *o = feed_json(&f->spec.feed[i], &st[i], now_ms);
		if (!o || json_object_set_new(feeds, hf_coord_feed_name((hf_coord_feed_id)i), o)) {
			json_decref(feeds);
			return NULL;
		}
	}
	out = json_pack("{s:o, s:o}", "feeds", feeds, "market", market_json(&m));
	return out;
}

void hf_coord_feeds_metrics(hf_coord_feeds *f, uint64_t now_ms, hf_buf *b)
{
	hf_coord_feed_state st[HF_FEED_COUNT];
	bool fresh[HF_FEED_COUNT];
	double val[HF_FEED_COUNT];
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "hashflop_coord_feed_value", "gauge", "The feed's last good value (scaled)." },
		{ "hashflop_coord_feed_fresh", "gauge", "1 when the feed's value is usable now." },
		{ "hashflop_coord_feed_age_seconds", "gauge", "Age of a URL feed's last good value." },
		{ "hashflop_coord_feed_fetch_total", "counter", "Fetches of a URL feed by result." },
	};

	copy_state(f, st);
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		val[i] = 0;
		fresh[i] = hf_coord_feed_value(&f->spec.feed[i], &st[i], now_ms, &val[i], NULL, 0);
		if (f->spec.feed[i].kind == HF_FEED_URL)
			val[i] = st[i].value;
	}
	for (size_t k = 0; k < HF_ARRAY_SIZE(fam); k++) {
		hf_prom_family(b, fam[k].name, fam[k].type, fam[k].help);
		for (int i = 0; i < HF_FEED_COUNT; i++) {
			const hf_coord_feed_spec *s = &f->spec.feed[i];
			const char *lab[4] = { "feed", hf_coord_feed_name((hf_coord_feed_id)i),
					       "result", "ok" };
			bool url = s->kind == HF_FEED_URL;
			if (s->kind == HF_FEED_NONE)
				continue;
			if (k == 0 && (!url || st[i].have))
				hf_prom_sample(b, fam[k].name, lab, 1, val[i]);
			else if (k == 1)
				hf_prom_sample(b, fam[k].name, lab, 1, fresh[i] ? 1 : 0);
			else if (k == 2 && url && st[i].have)
				hf_prom_sample(b, fam[k].name, lab, 1,
					       now_ms > st[i].value_ms ?
					       (double)(now_ms - st[i].value_ms) / 1000.0 : 0);
			else if (k == 3 && url) {
				hf_prom_sample(b, fam[k].name, lab, 2, (double)st[i].ok_total);
				lab[3] = "error";
				hf_prom_sample(b, fam[k].name, lab, 2, (double)st[i].fail_total);
			}
		}
	}
}
