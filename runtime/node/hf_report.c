/* hf_report: node report v1 sender (libcurl) on one thread: periodic, on change, with backoff.
 * Invariants: at most one report in flight; the thread never holds the lock across network
 * I/O or a callback; a report body is at most max_body bytes and an answer at most 16 KiB;
 * the backoff only resets after a 2xx; every stored or logged outside string is cleaned; the
 * token lives only in the Authorization header kept here.
 * Threading: see hf_report.h.
 */
#include "hf_report.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_control.h"
#include "hf_log.h"
#include "hf_prom.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

#define ANSWER_MAX (16u << 10)
#define BACKOFF_START_MS 500u
#define ERROR_BODY_MAX 200
#define TOKEN_FILE_MAX 1024

struct hf_report {
	hf_report_ops ops;
	char url[1024], shown_url[1024], ca_file[PATH_MAX];
	char auth[32 + HF_REPORT_TOKEN_MAX];
	size_t max_body;
	uint64_t retry_max_ms;
	unsigned check_ms, coalesce_ms, min_gap_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
	/* guarded by lock */
	bool notified;
	uint64_t interval_s, reports, errors, last_ok_ms, backoff_ms;
	char last_error[320];
	unsigned seed;
};

/* ---- the token file ---- */

int hf_report_token_load(const char *path, char *out, size_t outsz, bool *world_readable,
			 hf_errbuf *eb)
{
	char buf[TOKEN_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, e;

	out[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		e = errno;
		return hf_fail(eb, e == ENOENT ? HF_ENOTFOUND : HF_EIO, "token file %s: %s", path,
			       e == ENOENT ? "does not exist" : strerror(e));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return hf_fail(eb, HF_EIO, "token file %s: not a regular file", path);
	}
	if (world_readable)
		*world_readable = (st.st_mode & S_IROTH) != 0;
	n = read(fd, buf, sizeof buf);
	e = errno;
	close(fd);
	if (n < 0)
		return hf_fail(eb, HF_EIO, "token file %s: %s", path, strerror(e));
	if ((size_t)n > TOKEN_FILE_MAX)
		return hf_fail(eb, HF_EPARSE, "token file %s: over %u bytes; expected one line holding "
			       "the token", path, TOKEN_FILE_MAX);
	len = (size_t)n;
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len == 0)
		return hf_fail(eb, HF_EPARSE, "token file %s: empty; expected the token that "
			       "`hashflop-coord node add` printed", path);
	for (size_t i = 0; i < len; i++)
		if (buf[i] < '!' || buf[i] > '~')
			return hf_fail(eb, HF_EPARSE, "token file %s: byte %zu is %s; expected one line of "
				       "printable characters without spaces", path, i + 1,
				       buf[i] == '\n' ? "a second line" : "not a printable character");
	if (len < HF_REPORT_TOKEN_MIN || len > HF_REPORT_TOKEN_MAX)
		return hf_fail(eb, HF_EPARSE, "token file %s: %zu characters; expected %d to %d", path,
			       len, HF_REPORT_TOKEN_MIN, HF_REPORT_TOKEN_MAX);
	if (len >= outsz)
		return hf_fail(eb, HF_ETOOBIG, "token file %s: token longer than the buffer", path);
	memcpy(out, buf, len);
	out[len] = '\0';
	memset(buf, 0, sizeof buf);
	return 0;
}

/* ---- one report ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	hf_buf *b = ud;
	return hf_buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	hf_report *r = ud;
	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return atomic_load(&r->stop) ? 1 : 0;
}

typedef enum outcome {
	REP_OK = 0,
	REP_UNAUTHORIZED, /* 401 */
	REP_ERROR,        /* anything else that failed */
	REP_STOPPED,      /* interrupted by shutdown: not counted */
} outcome;

/* Counts one finished report; err (outside text, cleaned here) describes a failure. */
static void note(hf_report *r, outcome o, const char *err, uint64_t next_s)
{
	pthread_mutex_lock(&r->lock);
	if (o == REP_OK) {
		r->reports++;
		r->last_ok_ms = hf_wall_ms();
		r->last_error[0] = '\0';
		if (next_s)
			r->interval_s = next_s;
	} else {
		r->errors++;
		hf_text_clean(r->last_error, sizeof r->last_error, err, strlen(err));
	}
	pthread_mutex_unlock(&r->lock);
}

/* next_report_s of a 2xx answer, 0 when absent or out of 1..3600. */
static uint64_t next_report_s(const hf_buf *answer)
{
	json_t *j = answer->len ? json_loadb(answer->data, answer->len, 0, NULL) : NULL;
	json_t *v = json_object_get(j, "next_report_s");
	json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;

	json_decref(j);
	return s >= 1 && s <= 3600 ? (uint64_t)s : 0;
}

static void setup_request(hf_report *r, CURL *curl, struct curl_slist *hdr, const char *body,
			  size_t len, char *err, hf_buf *answer)
{
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, r->url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "hashflopd/" HF_VERSION);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, r);
}

/* The body of report seq, or NULL with the reason in msg. */
static char *build_body(hf_report *r, uint64_t seq, size_t *len, char *msg, size_t msgsz)
{
	json_t *doc = r->ops.build(r->ops.ctx, seq);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (!text) {
		snprintf(msg, msgsz, "the node could not build its report");
		return NULL;
	}
	*len = strlen(text);
	if (*len > r->max_body) {
		snprintf(msg, msgsz, "report of %zu bytes is over the %zu-byte cap; not sent", *len,
			 r->max_body);
		free(text);
		return NULL;
	}
	return text;
}

/* Classifies a finished transfer; fills msg for a failure and *next_s for a success. */
static outcome classify(CURL *curl, CURLcode cc, const char *err, const hf_buf *answer, char *msg,
			size_t msgsz, uint64_t *next_s)
{
	long status = 0;
	int n;

	if (cc == CURLE_WRITE_ERROR) {
		snprintf(msg, msgsz, "coordinator answer over %u KiB", ANSWER_MAX >> 10);
		return REP_ERROR;
	}
	if (cc != CURLE_OK) {
		snprintf(msg, msgsz, "%s", err[0] ? err : curl_easy_strerror(cc));
		return REP_ERROR;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status <= 299) {
		*next_s = next_report_s(answer);
		return REP_OK;
	}
	n = answer->len > ERROR_BODY_MAX ? ERROR_BODY_MAX : (int)answer->len;
	while (n > 0 && (answer->data[n - 1] == '\n' || answer->data[n - 1] == '\r' ||
			 answer->data[n - 1] == ' '))
		n--;
	snprintf(msg, msgsz, "%s (HTTP %ld)%s%.*s", status == 401 ?
		 "coordinator refused the node's token" : status == 413 ?
		 "coordinator refused the report as too large" : "coordinator refused the report",
		 status, n ? ": " : "", n, answer->data ? answer->data : "");
	return status == 401 ? REP_UNAUTHORIZED : REP_ERROR;
}

/* Builds and sends report seq. */
static outcome send_report(hf_report *r, CURL *curl, struct curl_slist *hdr, uint64_t seq)
{
	char err[CURL_ERROR_SIZE] = "", msg[CURL_ERROR_SIZE + ERROR_BODY_MAX + 96] = "";
	uint64_t next_s = 0;
	size_t len = 0;
	char *body = build_body(r, seq, &len, msg, sizeof msg);
	hf_buf answer;
	outcome o;

	if (!body) {
		note(r, REP_ERROR, msg, 0);
		return REP_ERROR;
	}
	hf_buf_init(&answer, ANSWER_MAX);
	setup_request(r, curl, hdr, body, len, err, &answer);
	CURLcode cc = curl_easy_perform(curl);
	if (atomic_load(&r->stop))
		o = REP_STOPPED;
	else
		o = classify(curl, cc, err, &answer, msg, sizeof msg, &next_s);
	if (o != REP_STOPPED)
		note(r, o, msg, next_s);
	hf_buf_free(&answer);
	free(body);
	return o;
}

/* ---- the thread ---- */

static bool state_eq(const hf_report_state *a, const hf_report_state *b)
{
	return a->mode == b->mode && a->desired_mode == b->desired_mode && a->phase == b->phase &&
	       a->converged == b->converged && a->applied_issued_ms == b->applied_issued_ms;
}

/* The loop's clocks (hf_mono_ms). */
typedef struct sched {
	uint64_t due_ms;       /* the next periodic report */
	uint64_t change_ms;    /* when the first unreported change was seen; 0: none */
	uint64_t last_sent_ms; /* when the last report went out; 0: none yet */
	uint64_t retry_ms;     /* backing off until then; 0: not */
	uint64_t backoff;      /* the next backoff */
	hf_report_state seen;
} sched;

/* When the next report may go out (hf_mono_ms). */
static uint64_t next_send(const hf_report *r, const sched *s)
{
	uint64_t t = s->due_ms;

	if (s->change_ms) {
		uint64_t c = s->change_ms + r->coalesce_ms;
		if (s->last_sent_ms && c < s->last_sent_ms + r->min_gap_ms)
			c = s->last_sent_ms + r->min_gap_ms;
		if (c < t)
			t = c;
	}
	return s->retry_ms > t ? s->retry_ms : t;
}

/* Waits until the next send time, a notify or the next state check, then looks for changes. */
static void wait_for_work(hf_report *r, sched *s)
{
	uint64_t now = hf_mono_ms(), at = next_send(r, s);
	hf_report_state cur;

	if (at > now) {
		struct timespec ts;
		uint64_t ms = at - now < r->check_ms ? at - now : r->check_ms;
		hf_abstime_after_ms(ms, &ts);
		pthread_mutex_lock(&r->lock);
		if (!r->notified && !atomic_load(&r->stop))
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_lock(&r->lock);
	bool notified = r->notified;
	r->notified = false;
	pthread_mutex_unlock(&r->lock);
	r->ops.state(r->ops.ctx, &cur);
	if ((notified || !state_eq(&cur, &s->seen)) && !s->change_ms)
		s->change_ms = hf_mono_ms();
	s->seen = cur;
}

/* After a report: the next periodic one, or the backoff after an error. */
static void after_report(hf_report *r, sched *s, outcome o, bool *logged_401)
{
	uint64_t first = r->retry_max_ms < BACKOFF_START_MS ? r->retry_max_ms : BACKOFF_START_MS;
	uint64_t now = hf_mono_ms();
	char why[sizeof r->last_error];

	pthread_mutex_lock(&r->lock);
	uint64_t interval = r->interval_s;
	hf_strlcpy(why, r->last_error, sizeof why);
	pthread_mutex_unlock(&r->lock);
	if (o == REP_OK) {
		if (*logged_401)
			hf_log_notice("report: the coordinator accepts the node's token again");
		*logged_401 = false;
		s->backoff = first;
		s->retry_ms = 0;
		s->due_ms = now + interval * 1000;
		pthread_mutex_lock(&r->lock);
		r->backoff_ms = 0;
		pthread_mutex_unlock(&r->lock);
		return;
	}
	/* Exponential backoff with +-25% jitter, capped; the retry carries every change. */
	uint64_t jitter = s->backoff / 2 ? (uint64_t)rand_r(&r->seed) % (s->backoff / 2) : 0;
	uint64_t wait = s->backoff - s->backoff / 4 + jitter;
	s->retry_ms = now + wait;
	s->due_ms = s->retry_ms;
	s->backoff = s->backoff * 2 > r->retry_max_ms ? r->retry_max_ms : s->backoff * 2;
	pthread_mutex_lock(&r->lock);
	r->backoff_ms = wait;
	pthread_mutex_unlock(&r->lock);
	if (o == REP_UNAUTHORIZED && !*logged_401) {
		*logged_401 = true;
		hf_log_err("report to %s: %s; check control.token_file against the token "
			   "`hashflop-coord node add` printed (retrying with backoff, logged once)",
			   r->shown_url, why);
	} else if (o == REP_UNAUTHORIZED) {
		hf_log_debug("report: %s; next attempt in %llu ms", why, (unsigned long long)wait);
	} else {
		hf_log_warn("report to %s: %s; next attempt in %llu ms", r->shown_url, why,
			    (unsigned long long)wait);
	}
}

static void *reporter_main(void *arg)
{
	hf_report *r = arg;
	struct curl_slist *hdr = NULL;
	bool logged_401 = false;
	uint64_t seq = 0;
	sched s = { .due_ms = hf_mono_ms() };
	CURL *curl = curl_easy_init();

	s.backoff = r->retry_max_ms < BACKOFF_START_MS ? r->retry_max_ms : BACKOFF_START_MS;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = hdr ? curl_slist_append(hdr, r->auth) : NULL;
	if (!curl || !hdr) {
		note(r, REP_ERROR, "cannot initialise libcurl", 0);
		hf_log_err("report: cannot initialise libcurl; no reports are sent");
		goto out;
	}
	r->ops.state(r->ops.ctx, &s.seen);
	while (!atomic_load(&r->stop)) {
		wait_for_work(r, &s);
		if (atomic_load(&r->stop))
			break;
		if (hf_mono_ms() < next_send(r, &s))
			continue;
		s.change_ms = 0;
		r->ops.state(r->ops.ctx, &s.seen); /* what this report carries */
		outcome o = send_report(r, curl, hdr, ++seq);
		if (o == REP_STOPPED)
			break;
		s.last_sent_ms = hf_mono_ms();
		after_report(r, &s, o, &logged_401);
	}
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(curl);
	return NULL;
}

/* ---- the object ---- */

int hf_report_start(const hf_report_opts *opts, const hf_report_ops *ops, hf_report **out,
		    hf_errbuf *eb)
{
	hf_report *r;

	*out = NULL;
	if (!opts->coordinator_url || !opts->node_id || !opts->token || !ops->build || !ops->state)
		return hf_fail(eb, HF_EINVAL, "report: coordinator URL, node id, token and callbacks "
			       "are required");
	if (opts->interval_s < 1 || opts->interval_s > 3600)
		return hf_fail(eb, HF_EINVAL, "report: interval %llu s is outside 1..3600",
			       (unsigned long long)opts->interval_s);
	if (strlen(opts->token) < HF_REPORT_TOKEN_MIN || strlen(opts->token) > HF_REPORT_TOKEN_MAX)
		return hf_fail(eb, HF_EINVAL, "report: the token must hold %d to %d characters",
			       HF_REPORT_TOKEN_MIN, HF_REPORT_TOKEN_MAX);
	r = calloc(1, sizeof *r);
	if (!r)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	r->ops = *ops;
	size_t ul = strlen(opts->coordinator_url);
	while (ul > 0 && opts->coordinator_url[ul - 1] == '/')
		ul--;
	int w = snprintf(r->url, sizeof r->url, "%.*s/v1/nodes/%s/report", (int)ul,
			 opts->coordinator_url, opts->node_id);
	if (w < 0 || (size_t)w >= sizeof r->url ||
	    !hf_strlcpy(r->ca_file, opts->ca_file ? opts->ca_file : "", sizeof r->ca_file)) {
		free(r);
		return hf_fail(eb, HF_ETOOBIG, "report: coordinator URL, node id or CA file too long");
	}
	snprintf(r->auth, sizeof r->auth, "Authorization: Bearer %s", opts->token);
	hf_control_mask_url(r->shown_url, sizeof r->shown_url, r->url);
	r->max_body = opts->max_body ? opts->max_body : HF_REPORT_DEFAULT_MAX_BODY;
	r->retry_max_ms = opts->retry_max_ms ? opts->retry_max_ms : 1;
	r->interval_s = opts->interval_s;
	r->check_ms = opts->check_ms ? opts->check_ms : 50;
	r->coalesce_ms = opts->coalesce_ms ? opts->coalesce_ms : 20;
	r->min_gap_ms = opts->min_gap_ms ? opts->min_gap_ms : 100;
	r->seed = (unsigned)hf_mono_us() ^ 0x5eedu;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, reporter_main, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		memset(r->auth, 0, sizeof r->auth);
		free(r);
		return hf_fail(eb, HF_ENOMEM, "cannot start the report thread");
	}
	hf_log_info("reporting to %s every %llu s and on change", r->shown_url,
		    (unsigned long long)r->interval_s);
	*out = r;
	return 0;
}

void hf_report_notify(hf_report *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->notified = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void hf_report_status(hf_report *r, json_t *obj)
{
	pthread_mutex_lock(&r->lock);
	json_object_set_new(obj, "reports", json_integer((json_int_t)r->reports));
	json_object_set_new(obj, "report_errors", json_integer((json_int_t)r->errors));
	json_object_set_new(obj, "last_report_ms", json_integer((json_int_t)r->last_ok_ms));
	json_object_set_new(obj, "last_report_error",
			    r->last_error[0] ? json_string(r->last_error) : json_null());
	json_object_set_new(obj, "report_interval_s", json_integer((json_int_t)r->interval_s));
	json_object_set_new(obj, "report_backoff_ms", json_integer((json_int_t)r->backoff_ms));
	pthread_mutex_unlock(&r->lock);
}

void hf_report_metrics(hf_report *r, hf_buf *b)
{
	pthread_mutex_lock(&r->lock);
	hf_prom_family(b, "hashflop_control_reports_total", "counter",
		       "Reports the coordinator answered with 2xx.");
	hf_prom_sample(b, "hashflop_control_reports_total", NULL, 0, (double)r->reports);
	hf_prom_family(b, "hashflop_control_report_errors_total", "counter",
		       "Reports that failed (network, TLS, HTTP status incl. 401, size).");
	hf_prom_sample(b, "hashflop_control_report_errors_total", NULL, 0, (double)r->errors);
	hf_prom_family(b, "hashflop_control_report_last_success_seconds", "gauge",
		       "Unix time of the last report the coordinator accepted (0: none).");
	hf_prom_sample(b, "hashflop_control_report_last_success_seconds", NULL, 0,
		       (double)r->last_ok_ms / 1000.0);
	pthread_mutex_unlock(&r->lock);
}

void hf_report_free(hf_report *r)
{
	if (!r)
		return;
	atomic_store(&r->stop, true);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	memset(r->auth, 0, sizeof r->auth);
	free(r);
}
