/* hf_control: coordinator long-poll client (libcurl) feeding a submit callback.
 * Invariants: at most one request in flight; a response body is capped at 64 KiB; the thread
 * never holds the lock across network I/O or a callback; the backoff only resets after an
 * accepted envelope or a 204; every stored or logged outside string is cleaned.
 * Threading: see hf_control.h.
 */
#include "hf_control.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_log.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

#define RESPONSE_MAX (64u << 10)
#define BACKOFF_START_MS 500u
#define ERROR_BODY_MAX 200

typedef enum outcome {
	O_ACCEPTED = 0,
	O_NO_CONTENT,
	O_NOOP,
	O_REFUSED,
	O_FAILED,
	O_HTTP_ERROR,
	O_TRANSPORT,
	O_OVERSIZE,
	O_COUNT,
	O_STOPPED = O_COUNT, /* interrupted by shutdown: not counted */
} outcome;

static const char *const outcome_names[O_COUNT] = {
	"accepted", "no_content", "noop", "refused", "failed", "http_error", "transport_error",
	"oversize",
};

struct hf_control {
	hf_control_ops ops;
	char url[512], shown_url[512], node_id[64], ca_file[PATH_MAX];
	struct curl_slist *headers;  /* "Authorization: Bearer TOKEN"; NULL without a token */
	uint64_t poll_wait_s, retry_max_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
	/* guarded by lock */
	bool connected;
	int last_outcome; /* -1: none yet */
	uint64_t last_poll_ms, polls, errors, envelopes, backoff_ms;
	uint64_t outcomes[O_COUNT];
	char last_error[320];
	unsigned seed;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	hf_buf *b = ud;
	return hf_buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	hf_control *ctl = ud;
	return atomic_load(&ctl->stop) ? 1 : 0;
}

void hf_control_mask_url(char *dst, size_t dstsz, const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *auth = scheme ? scheme + 3 : NULL;
	const char *end = auth ? auth + strcspn(auth, "/?#") : NULL;
	const char *at = NULL;

	for (const char *p = auth; p && p < end; p++)
		if (*p == '@')
			at = p;
	if (!at) {
		hf_strlcpy(dst, url, dstsz);
		return;
	}
	const char *colon = memchr(auth, ':', (size_t)(at - auth));
	const char *keep_end = colon ? colon + 1 : auth;
	snprintf(dst, dstsz, "%.*s***%s", (int)(keep_end - url), url, at);
}

/* Counts one finished poll; err (outside text, cleaned here) describes a problem. */
static void note(hf_control *c, outcome o, const char *err)
{
	pthread_mutex_lock(&c->lock);
	c->last_poll_ms = hf_wall_ms();
	c->polls++;
	c->outcomes[o]++;
	c->last_outcome = (int)o;
	c->connected = o != O_HTTP_ERROR && o != O_TRANSPORT && o != O_OVERSIZE;
	if (!c->connected)
		c->errors++;
	if (o == O_ACCEPTED || o == O_NOOP || o == O_REFUSED || o == O_FAILED)
		c->envelopes++;
	if (err)
		hf_text_clean(c->last_error, sizeof c->last_error, err, strlen(err));
	pthread_mutex_unlock(&c->lock);
}

static void setup_request(hf_control *c, CURL *curl, const char *url, char *err, hf_buf *body)
{
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)(c->poll_wait_s + 15));
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "hashflopd/" HF_VERSION);
	if (c->headers)
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
}

/* Hands a 200's envelope to the submit callback. */
static outcome submit(hf_control *c, const hf_buf *body)
{
	char detail[HF_ERRBUF_SIZE] = "", msg[HF_ERRBUF_SIZE + 64];
	hf_control_verdict v = c->ops.submit(c->ops.ctx, body->data ? body->data : "", body->len,
					     detail, sizeof detail);
	static const char *const what[] = { "accepted", "a repeat of the current instruction",
					    "envelope refused", "envelope not applied" };
	outcome o = v == HF_CONTROL_ACCEPTED ? O_ACCEPTED : v == HF_CONTROL_NOOP ? O_NOOP :
		    v == HF_CONTROL_REFUSED ? O_REFUSED : O_FAILED;

	if (o == O_ACCEPTED) {
		note(c, o, NULL);
		return o;
	}
	snprintf(msg, sizeof msg, "%s%s%s", what[v], detail[0] ? ": " : "", detail);
	note(c, o, msg);
	return o;
}

/* One long poll. */
static outcome poll_once(hf_control *c, CURL *curl)
{
	char url[1024], err[CURL_ERROR_SIZE] = "", msg[CURL_ERROR_SIZE + ERROR_BODY_MAX + 64];
	long status = 0;
	hf_buf body;
	CURLcode cc;
	outcome o;

	snprintf(url, sizeof url, "%s/v1/nodes/%s/instruction?after=%llu&wait=%llu", c->url,
		 c->node_id, (unsigned long long)c->ops.last_issued_ms(c->ops.ctx),
		 (unsigned long long)c->poll_wait_s);
	hf_buf_init(&body, RESPONSE_MAX);
	setup_request(c, curl, url, err, &body);
	cc = curl_easy_perform(curl);
	if (atomic_load(&c->stop)) {
		o = O_STOPPED;
	} else if (cc == CURLE_WRITE_ERROR) {
		o = O_OVERSIZE;
		note(c, o, "coordinator response over 64 KiB");
	} else if (cc != CURLE_OK) {
		o = O_TRANSPORT;
		snprintf(msg, sizeof msg, "%s", err[0] ? err : curl_easy_strerror(cc));
		note(c, o, msg);
	} else if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
		   (status != 200 && status != 204)) {
		o = O_HTTP_ERROR;
		int n = body.len > ERROR_BODY_MAX ? ERROR_BODY_MAX : (int)body.len;
		while (n > 0 && (body.data[n - 1] == '\n' || body.data[n - 1] == '\r'))
			n--; /* a JSON error body's final newline */
		snprintf(msg, sizeof msg, "%s HTTP %ld%s%.*s", status == 401 ?
			 "coordinator refused the node's token:" : "coordinator answered", status,
			 n ? ": " : "", n, body.data ? body.data : "");
		note(c, o, msg);
	} else if (status == 204) {
		o = O_NO_CONTENT;
		note(c, o, NULL);
	} else {
		o = submit(c, &body);
	}
	hf_buf_free(&body);
	return o;
}

/* Waits ms unless stopped. */
static void nap(hf_control *c, uint64_t ms)
{
	struct timespec ts;
	hf_abstime_after_ms(ms, &ts);
	pthread_mutex_lock(&c->lock);
	if (!atomic_load(&c->stop))
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	pthread_mutex_unlock(&c->lock);
}

static void *poller_main(void *arg)
{
	hf_control *c = arg;
	uint64_t first = c->retry_max_ms < BACKOFF_START_MS ? c->retry_max_ms : BACKOFF_START_MS;
	uint64_t backoff = first;
	CURL *curl = curl_easy_init();

	if (!curl) {
		note(c, O_TRANSPORT, "cannot initialise libcurl");
		return NULL;
	}
	while (!atomic_load(&c->stop)) {
		outcome o = poll_once(c, curl);
		if (o == O_STOPPED)
			break;
		if (o == O_ACCEPTED || o == O_NO_CONTENT) {
			backoff = first;
			pthread_mutex_lock(&c->lock);
			c->backoff_ms = 0;
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		/* Exponential backoff with +-25% jitter, capped. */
		uint64_t jitter = backoff / 2 ? (uint64_t)rand_r(&c->seed) % (backoff / 2) : 0;
		uint64_t wait = backoff - backoff / 4 + jitter;
		char why[sizeof c->last_error];
		pthread_mutex_lock(&c->lock);
		c->backoff_ms = wait;
		hf_strlcpy(why, c->last_error, sizeof why);
		pthread_mutex_unlock(&c->lock);
		hf_log_warn("coordinator poll: %s (%s); next poll in %llu ms", why, outcome_names[o],
			    (unsigned long long)wait);
		nap(c, wait);
		backoff = backoff * 2 > c->retry_max_ms ? c->retry_max_ms : backoff * 2;
	}
	curl_easy_cleanup(curl);
	return NULL;
}

int hf_control_start(const hf_control_opts *opts, const hf_control_ops *ops, hf_control **out,
		     hf_errbuf *eb)
{
	hf_control *c;

	*out = NULL;
	if (!opts->coordinator_url || !opts->node_id || !ops->submit || !ops->last_issued_ms)
		return hf_fail(eb, HF_EINVAL, "control: coordinator URL, node id and callbacks are required");
	c = calloc(1, sizeof *c);
	if (!c)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	c->ops = *ops;
	if (!hf_strlcpy(c->url, opts->coordinator_url, sizeof c->url) ||
	    !hf_strlcpy(c->node_id, opts->node_id, sizeof c->node_id) ||
	    !hf_strlcpy(c->ca_file, opts->ca_file ? opts->ca_file : "", sizeof c->ca_file)) {
		free(c);
		return hf_fail(eb, HF_ETOOBIG, "control: coordinator URL, node id or CA file too long");
	}
	if (opts->bearer_token && opts->bearer_token[0]) {
		char auth[32 + 256];
		int w = snprintf(auth, sizeof auth, "Authorization: Bearer %s", opts->bearer_token);
		if (w > 0 && (size_t)w < sizeof auth)
			c->headers = curl_slist_append(NULL, auth);
		memset(auth, 0, sizeof auth);
		if (!c->headers) {
			free(c);
			return hf_fail(eb, HF_EINVAL, "control: bearer token too long or out of memory");
		}
	}
	for (size_t n = strlen(c->url); n > 0 && c->url[n - 1] == '/'; n--)
		c->url[n - 1] = '\0';
	hf_control_mask_url(c->shown_url, sizeof c->shown_url, c->url);
	c->poll_wait_s = opts->poll_wait_s;
	c->retry_max_ms = opts->retry_max_ms ? opts->retry_max_ms : 1;
	c->last_outcome = -1;
	c->seed = (unsigned)hf_mono_us();
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pthread_create(&c->thread, NULL, poller_main, c) != 0) {
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		curl_slist_free_all(c->headers);
		free(c);
		return hf_fail(eb, HF_ENOMEM, "cannot start the control thread");
	}
	hf_log_info("polling %s for instructions (wait %llu s%s)", c->shown_url,
		    (unsigned long long)c->poll_wait_s, c->headers ? ", with the node's token" : "");
	*out = c;
	return 0;
}

void hf_control_status(hf_control *c, json_t *obj)
{
	json_t *oc = json_object();

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < O_COUNT; i++)
		json_object_set_new(oc, outcome_names[i], json_integer((json_int_t)c->outcomes[i]));
	json_object_set_new(obj, "coordinator", json_string(c->shown_url));
	json_object_set_new(obj, "connected", json_boolean(c->connected));
	json_object_set_new(obj, "polls", json_integer((json_int_t)c->polls));
	json_object_set_new(obj, "last_poll_ms", json_integer((json_int_t)c->last_poll_ms));
	json_object_set_new(obj, "poll_errors", json_integer((json_int_t)c->errors));
	json_object_set_new(obj, "last_error", c->last_error[0] ? json_string(c->last_error) : json_null());
	json_object_set_new(obj, "last_outcome", c->last_outcome >= 0 ?
			    json_string(outcome_names[c->last_outcome]) : json_null());
	json_object_set_new(obj, "outcomes", oc);
	json_object_set_new(obj, "backoff_ms", json_integer((json_int_t)c->backoff_ms));
	pthread_mutex_unlock(&c->lock);
}

void hf_control_metrics(hf_control *c, hf_buf *b)
{
	pthread_mutex_lock(&c->lock);
	hf_prom_family(b, "hashflop_control_polls_total", "counter", "Long polls of the coordinator.");
	hf_prom_sample(b, "hashflop_control_polls_total", NULL, 0, (double)c->polls);
	hf_prom_family(b, "hashflop_control_poll_errors_total", "counter",
		       "Coordinator polls that failed (network, TLS, HTTP status, size).");
	hf_prom_sample(b, "hashflop_control_poll_errors_total", NULL, 0, (double)c->errors);
	hf_prom_family(b, "hashflop_control_envelopes_total", "counter",
		       "Envelopes received from the coordinator.");
	hf_prom_sample(b, "hashflop_control_envelopes_total", NULL, 0, (double)c->envelopes);
	hf_prom_family(b, "hashflop_control_poll_outcomes_total", "counter",
		       "Coordinator polls by outcome; all but accepted and no_content back off.");
	for (int i = 0; i < O_COUNT; i++) {
		const char *l[] = { "outcome", outcome_names[i] };
		hf_prom_sample(b, "hashflop_control_poll_outcomes_total", l, 1, (double)c->outcomes[i]);
	}
	hf_prom_family(b, "hashflop_control_backoff_seconds", "gauge",
		       "Wait before the next poll (0: polling again at once).");
	hf_prom_sample(b, "hashflop_control_backoff_seconds", NULL, 0, (double)c->backoff_ms / 1000.0);
	hf_prom_family(b, "hashflop_control_connected", "gauge", "1 when the last poll got an answer.");
	hf_prom_sample(b, "hashflop_control_connected", NULL, 0, c->connected);
	pthread_mutex_unlock(&c->lock);
}

void hf_control_free(hf_control *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, true);
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	curl_slist_free_all(c->headers);
	free(c);
}
