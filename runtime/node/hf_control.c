/* hf_control: coordinator long-poll client (libcurl) feeding hf_node_submit_instruction.
 * Invariants: at most one request in flight; a response body is capped at 64 KiB; the thread
 * never holds the lock across network I/O.
 * Threading: see hf_control.h.
 */
#include "hf_control.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_log.h"
#include "hf_node.h"
#include "hf_prom.h"
#include "hf_util.h"
#include "hf_version.h"

#define RESPONSE_MAX (64u << 10)

struct hf_control {
	struct hf_node *node;
	const hf_node_config *cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
	bool connected;
	uint64_t last_poll_ms, polls, errors, envelopes;
	char last_error[256];
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

static void set_result(hf_control *c, bool ok, const char *err)
{
	pthread_mutex_lock(&c->lock);
	c->connected = ok;
	c->last_poll_ms = hf_wall_ms();
	c->polls++;
	if (!ok) {
		c->errors++;
		hf_strlcpy(c->last_error, err, sizeof c->last_error);
	}
	pthread_mutex_unlock(&c->lock);
}

/* One long poll. Returns true when the coordinator answered as the protocol says. */
static bool poll_once(hf_control *c, CURL *curl)
{
	char url[1024], err[CURL_ERROR_SIZE] = "", msg[300];
	long status = 0;
	hf_buf body;
	CURLcode cc;

	snprintf(url, sizeof url, "%s/v1/nodes/%s/instruction?after=%llu&wait=%llu",
		 c->cfg->coordinator_url, c->cfg->node_id,
		 (unsigned long long)hf_node_last_issued_ms(c->node),
		 (unsigned long long)c->cfg->poll_wait_s);
	hf_buf_init(&body, RESPONSE_MAX);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)(c->cfg->poll_wait_s + 15));
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->cfg->ca_file[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->cfg->ca_file);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "hashflopd/" HF_VERSION);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
	cc = curl_easy_perform(curl);
	if (atomic_load(&c->stop)) {
		hf_buf_free(&body);
		return true;
	}
	if (cc != CURLE_OK) {
		snprintf(msg, sizeof msg, "%s", cc == CURLE_WRITE_ERROR ? "response over 64 KiB"
					  : err[0] ? err : curl_easy_strerror(cc));
		set_result(c, false, msg);
		hf_buf_free(&body);
		return false;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status == 204) {
		set_result(c, true, NULL);
	} else if (status == 200) {
		hf_instr_outcome out;
		set_result(c, true, NULL);
		pthread_mutex_lock(&c->lock);
		c->envelopes++;
		pthread_mutex_unlock(&c->lock);
		hf_node_submit_instruction(c->node, body.data ? body.data : "", body.len, "coordinator", &out);
	} else {
		snprintf(msg, sizeof msg, "coordinator answered HTTP %ld", status);
		set_result(c, false, msg);
		hf_buf_free(&body);
		return false;
	}
	hf_buf_free(&body);
	return true;
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
	uint64_t backoff = 500;
	CURL *curl = curl_easy_init();

	if (!curl) {
		set_result(c, false, "cannot initialise libcurl");
		return NULL;
	}
	while (!atomic_load(&c->stop)) {
		if (poll_once(c, curl)) {
			backoff = 500;
			continue;
		}
		/* Exponential backoff with +-25% jitter, capped. */
		uint64_t jitter = backoff / 2 ? (uint64_t)rand_r(&c->seed) % (backoff / 2) : 0;
		uint64_t wait = backoff - backoff / 4 + jitter;
		hf_log_warn("coordinator poll failed (%s); retrying in %llu ms", c->last_error,
			    (unsigned long long)wait);
		nap(c, wait);
		backoff = backoff * 2 > c->cfg->retry_max_ms ? c->cfg->retry_max_ms : backoff * 2;
	}
	curl_easy_cleanup(curl);
	return NULL;
}

int hf_control_start(struct hf_node *node, hf_control **out, hf_errbuf *eb)
{
	hf_control *c = calloc(1, sizeof *c);

	*out = NULL;
	if (!c)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	c->node = node;
	c->cfg = hf_node_config_of(node);
	c->seed = (unsigned)hf_mono_us();
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pthread_create(&c->thread, NULL, poller_main, c) != 0) {
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return hf_fail(eb, HF_ENOMEM, "cannot start the control thread");
	}
	hf_log_info("polling %s for instructions (wait %llu s)", c->cfg->coordinator_url,
		    (unsigned long long)c->cfg->poll_wait_s);
	*out = c;
	return 0;
}

void hf_control_status(hf_control *c, json_t *obj)
{
	pthread_mutex_lock(&c->lock);
	json_object_set_new(obj, "coordinator", json_string(c->cfg->coordinator_url));
	json_object_set_new(obj, "connected", json_boolean(c->connected));
	json_object_set_new(obj, "last_poll_ms", json_integer((json_int_t)c->last_poll_ms));
	json_object_set_new(obj, "poll_errors", json_integer((json_int_t)c->errors));
	json_object_set_new(obj, "last_error", c->last_error[0] ? json_string(c->last_error) : json_null());
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
	hf_prom_family(b, "hashflop_control_connected", "gauge", "1 when the last poll succeeded.");
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
	free(c);
}
