/* Unit tests for hf_control: the coordinator long-poll client against a real HTTP coordinator
 * stand-in (hf_httpd on 127.0.0.1, ephemeral port) and a node stand-in that verifies envelopes
 * with the real hf_instr_verify. Refused, repeated and failed envelopes, HTTP and network errors
 * and oversize answers must back off (a few polls per second at most, where a hot loop makes
 * thousands); accepted envelopes and 204s are polled again at once. Bounds are generous: load
 * can only lower the number of polls, and the prompt case is told from the backoff case by
 * minutes against seconds. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_control.h"
#include "hf_httpd.h"
#include "hf_instr.h"
#include "hf_util.h"

/* ---- the node stand-in: real verification against a trust with one coordinator key ---- */
typedef struct node_sim {
	pthread_mutex_t lock;
	hf_trust *trust;
	uint64_t last_issued;
	char *last_env;
	int submits, accepted, refused, noops;
} node_sim;

static hf_control_verdict sim_submit(void *ctx, const char *env, size_t len, char *detail,
				     size_t detailsz)
{
	node_sim *n = ctx;
	hf_instr_policy pol = { .fleet = "lab", .node = "n1", .now_ms = hf_wall_ms(),
				.skew_ms = 120000 };
	hf_instr in;
	hf_instr_refusal why;
	hf_errbuf eb;
	hf_control_verdict v;

	pthread_mutex_lock(&n->lock);
	n->submits++;
	pol.last_issued_ms = n->last_issued;
	if (n->last_env && strlen(n->last_env) == len && memcmp(n->last_env, env, len) == 0) {
		n->noops++;
		snprintf(detail, detailsz, "already applied");
		v = HF_CONTROL_NOOP;
	} else if (hf_instr_verify(n->trust, env, len, &pol, &in, &why, &eb) < 0) {
		n->refused++;
		snprintf(detail, detailsz, "%s: %s", hf_instr_refusal_name(why), eb.msg);
		v = HF_CONTROL_REFUSED;
	} else {
		n->accepted++;
		n->last_issued = in.issued_ms;
		free(n->last_env);
		n->last_env = strndup(env, len);
		hf_instr_clear(&in);
		v = HF_CONTROL_ACCEPTED;
	}
	pthread_mutex_unlock(&n->lock);
	return v;
}

static uint64_t sim_last_issued(void *ctx)
{
	node_sim *n = ctx;
	pthread_mutex_lock(&n->lock);
	uint64_t v = n->last_issued;
	pthread_mutex_unlock(&n->lock);
	return v;
}

/* ---- the coordinator stand-in ---- */
typedef enum serve {
	SERVE_FIXED,  /* 200 with env */
	SERVE_FRESH,  /* 200 with a new envelope newer than ?after= */
	SERVE_204,
	SERVE_500,    /* a 500 whose body carries control characters */
	SERVE_BIG,    /* 200 with 70 KiB */
	SERVE_HOLD,   /* block until released */
	SERVE_401,    /* the token is refused */
} serve;

typedef struct coord {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	serve what, then;   /* then: what to serve after `count` polls of `what` */
	int count;
	int fail_first;     /* 500s before anything else */
	char *env;
	hf_key *key;
	int polls;
	uint64_t last_after, last_fresh;
	char node[64];
	char auth[320];     /* the Authorization header of the last poll ("" without one) */
	bool holding, release;
} coord;

static char *sign(hf_key *k, uint64_t issued, int64_t expires_off)
{
	char payload[512], *env;
	hf_key *keys[1] = { k };
	snprintf(payload, sizeof payload, "{\"v\":1,\"fleet\":\"lab\",\"node\":\"n1\",\"issued_ms\":%llu,"
		 "\"expires_ms\":%lld,\"mode\":\"idle\"}", (unsigned long long)issued,
		 (long long)((int64_t)hf_wall_ms() + expires_off));
	cr_assert_eq(hf_instr_sign(payload, strlen(payload), keys, 1, &env, NULL), 0);
	return env;
}

static void h_poll(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	coord *c = ctx;
	const char *after = hf_http_query(req, "after");
	uint64_t a = 0;

	hf_parse_u64(after ? after : "0", 0, UINT64_MAX, &a);
	pthread_mutex_lock(&c->lock);
	c->polls++;
	c->last_after = a;
	hf_strlcpy(c->node, req->params[0], sizeof c->node);
	const char *auth = hf_http_header(req, "Authorization");
	hf_strlcpy(c->auth, auth ? auth : "", sizeof c->auth);
	serve what = c->what;
	if (c->fail_first > 0) {
		c->fail_first--;
		what = SERVE_500;
	} else if (c->count > 0 && --c->count == 0) {
		c->what = c->then;
	}
	switch (what) {
	case SERVE_FIXED:
		resp->status = 200;
		hf_buf_append(&resp->body, c->env, strlen(c->env));
		break;
	case SERVE_FRESH: {
		uint64_t issued = hf_wall_ms() - 10000;
		if (issued <= a)
			issued = a + 1;
		if (issued <= c->last_fresh)
			issued = c->last_fresh + 1;
		c->last_fresh = issued;
		char *env = sign(c->key, issued, 60000);
		resp->status = 200;
		hf_buf_append(&resp->body, env, strlen(env));
		free(env);
		break;
	}
	case SERVE_204:
		resp->status = 204;
		break;
	case SERVE_500: {
		static const char body[] = "\x1b[31mboom\n<0>forged";
		resp->status = 500;
		resp->content_type = "text/plain";
		hf_buf_append(&resp->body, body, sizeof body - 1);
		break;
	}
	case SERVE_BIG: {
		static char big[70 * 1024];
		memset(big, 'x', sizeof big);
		resp->status = 200;
		hf_buf_append(&resp->body, big, sizeof big);
		break;
	}
	case SERVE_401:
		resp->status = 401;
		hf_buf_append(&resp->body, "{\"error\":\"bad token\"}", 21);
		break;
	case SERVE_HOLD: {
		struct timespec ts;
		hf_abstime_after_ms(60000, &ts);
		c->holding = true;
		pthread_cond_broadcast(&c->cond);
		while (!c->release && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
			;
		c->holding = false;
		resp->status = 204;
		break;
	}
	}
	pthread_mutex_unlock(&c->lock);
}

static const hf_http_route routes[] = {
	{ "GET", "/v1/nodes/*/instruction", h_poll },
};

typedef struct rig {
	coord co;
	node_sim node;
	hf_httpd *httpd;
	hf_control *ctl;
	uint64_t retry_max_ms;
	const char *token;  /* bearer token for the polls (NULL: none) */
} rig;

static void rig_init(rig *r, serve what)
{
	hf_httpd_opts o = { .host = "127.0.0.1", .port = 0 };
	hf_errbuf eb;
	char *pem;

	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->co.lock, NULL);
	pthread_cond_init(&r->co.cond, NULL);
	pthread_mutex_init(&r->node.lock, NULL);
	r->co.what = what;
	cr_assert_eq(hf_key_generate(&r->co.key, NULL), 0);
	cr_assert_eq(hf_key_public_pem(r->co.key, &pem, NULL), 0);
	json_t *t = json_pack("{s:[{s:s, s:s}], s:i}", "keys", "role", "coordinator",
			      "public_key_pem", pem, "fleet_threshold", 1);
	free(pem);
	cr_assert_eq(hf_trust_from_json(t, &r->node.trust, &eb), 0, "%s", eb.msg);
	json_decref(t);
	cr_assert_eq(hf_httpd_new(&o, routes, HF_ARRAY_SIZE(routes), &r->co, &r->httpd, &eb), 0,
		     "%s", eb.msg);
}

static void rig_start_at(rig *r, const char *url, uint64_t retry_max_ms)
{
	hf_control_opts o = { .coordinator_url = url, .node_id = "n1", .poll_wait_s = 1,
			      .retry_max_ms = retry_max_ms, .bearer_token = r->token };
	hf_control_ops ops = { .ctx = &r->node, .submit = sim_submit, .last_issued_ms = sim_last_issued };
	hf_errbuf eb;
	r->retry_max_ms = retry_max_ms;
	cr_assert_eq(hf_control_start(&o, &ops, &r->ctl, &eb), 0, "%s", eb.msg);
}

static void rig_start(rig *r, uint64_t retry_max_ms)
{
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/", hf_httpd_port(r->httpd));
	rig_start_at(r, url, retry_max_ms);
}

static void rig_fini(rig *r)
{
	hf_control_free(r->ctl);
	pthread_mutex_lock(&r->co.lock);
	r->co.release = true;
	pthread_cond_broadcast(&r->co.cond);
	pthread_mutex_unlock(&r->co.lock);
	hf_httpd_free(r->httpd);
	hf_key_free(r->co.key);
	hf_trust_free(r->node.trust);
	free(r->node.last_env);
	free(r->co.env);
}

static json_t *status(rig *r)
{
	json_t *j = json_object();
	hf_control_status(r->ctl, j);
	return j;
}

static uint64_t outcome(rig *r, const char *name)
{
	json_t *j = status(r);
	uint64_t v = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "outcomes"), name));
	json_decref(j);
	return v;
}

/* Polls (20 s deadline) until the control counted at least n polls with outcome name. */
static bool wait_outcome(rig *r, const char *name, uint64_t n)
{
	uint64_t end = hf_mono_ms() + 20000;
	while (outcome(r, name) < n) {
		if (hf_mono_ms() > end)
			return false;
		hf_sleep_ms(5);
	}
	return true;
}

static int coord_polls(rig *r)
{
	pthread_mutex_lock(&r->co.lock);
	int n = r->co.polls;
	pthread_mutex_unlock(&r->co.lock);
	return n;
}

/* Counts the coordinator's polls over a window of about ms and asserts the backoff: with waits
 * of at least 0.75 * min(500, retry_max_ms) each, a window of t ms holds at most
 * t / that + 2 polls; allowed twice that plus 5. */
static void assert_backs_off(rig *r, uint64_t ms)
{
	uint64_t first = r->retry_max_ms < 500 ? r->retry_max_ms : 500;
	int p0 = coord_polls(r);
	uint64_t t0 = hf_mono_ms();
	while (hf_mono_ms() - t0 < ms)
		hf_sleep_ms(20);
	int p1 = coord_polls(r);
	uint64_t t = hf_mono_ms() - t0;
	uint64_t allowed = 2 * (t * 4 / (first * 3) + 2) + 5;
	fprintf(stderr, "# %d polls in %llu ms (backoff allows %llu)\n", p1 - p0,
		(unsigned long long)t, (unsigned long long)allowed);
	cr_assert_leq((uint64_t)(p1 - p0), allowed, "%d polls in %llu ms: not backing off",
		      p1 - p0, (unsigned long long)t);
}

Test(control, expired_envelope_is_refused_and_backed_off)
{
	rig r;
	rig_init(&r, SERVE_FIXED);
	r.co.env = sign(r.co.key, hf_wall_ms() - 5000, -1000);
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "refused", 3), "the envelope was not polled three times");
	assert_backs_off(&r, 1500);
	json_t *j = status(&r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "last_outcome")), "refused");
	cr_assert(strstr(json_string_value(json_object_get(j, "last_error")), "expired"),
		  "%s", json_string_value(json_object_get(j, "last_error")));
	cr_assert(json_is_true(json_object_get(j, "connected")), "the coordinator did answer");
	cr_assert_eq(json_integer_value(json_object_get(j, "poll_errors")), 0);
	cr_assert_gt(json_integer_value(json_object_get(j, "backoff_ms")), 0);
	json_decref(j);
	cr_assert_eq(r.node.accepted, 0);
	hf_buf b;
	hf_buf_init(&b, 0);
	hf_control_metrics(r.ctl, &b);
	cr_assert(strstr(b.data, "hashflop_control_poll_outcomes_total{outcome=\"refused\"} "), "%s", b.data);
	cr_assert(strstr(b.data, "hashflop_control_poll_outcomes_total{outcome=\"accepted\"} 0\n"));
	cr_assert(strstr(b.data, "# TYPE hashflop_control_backoff_seconds gauge\n"));
	hf_buf_free(&b);
	rig_fini(&r);
}

/* A coordinator that ignores ?after= and keeps serving the instruction already applied. */
Test(control, repeat_of_the_applied_envelope_is_backed_off)
{
	rig r;
	rig_init(&r, SERVE_FIXED);
	r.co.env = sign(r.co.key, hf_wall_ms() - 5000, 60000);
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "noop", 3));
	assert_backs_off(&r, 1500);
	cr_assert_eq(outcome(&r, "accepted"), 1);
	cr_assert_eq(r.node.accepted, 1);
	rig_fini(&r);
}

/* Errors first (the backoff grows to seconds), then accepted envelopes and 204s: each is
 * polled again at once, so 15 envelopes and 30 204s take moments; had the backoff gone on,
 * they would take many minutes (waits of 2, 4, 8 ... 60 s). */
Test(control, accepted_envelopes_and_204s_are_polled_again_at_once)
{
	rig r;
	rig_init(&r, SERVE_FRESH);
	r.co.fail_first = 2;
	r.co.count = 15;
	r.co.then = SERVE_204;
	rig_start(&r, 60000);
	cr_assert(wait_outcome(&r, "http_error", 2));
	uint64_t t0 = hf_mono_ms();
	cr_assert(wait_outcome(&r, "accepted", 15), "accepted envelopes were not polled again at once "
		  "(%llu accepted)", (unsigned long long)outcome(&r, "accepted"));
	cr_assert(wait_outcome(&r, "no_content", 30), "204s were not polled again at once");
	fprintf(stderr, "# 15 accepted + 30 no_content in %llu ms\n",
		(unsigned long long)(hf_mono_ms() - t0));
	cr_assert_eq(r.node.accepted, 15);
	cr_assert_eq(r.node.refused, 0);
	pthread_mutex_lock(&r.co.lock);
	cr_assert_eq(r.co.last_after, r.node.last_issued, "?after= carries the last issued_ms");
	cr_assert_str_eq(r.co.node, "n1");
	pthread_mutex_unlock(&r.co.lock);
	json_t *j = status(&r);
	cr_assert(json_is_true(json_object_get(j, "connected")));
	cr_assert_eq(json_integer_value(json_object_get(j, "poll_errors")), 2);
	cr_assert_eq(json_integer_value(json_object_get(j, "backoff_ms")), 0);
	json_decref(j);
	rig_fini(&r);
}

Test(control, http_errors_back_off_and_their_text_is_cleaned)
{
	rig r;
	rig_init(&r, SERVE_500);
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "http_error", 3));
	assert_backs_off(&r, 1500);
	json_t *j = status(&r);
	const char *e = json_string_value(json_object_get(j, "last_error"));
	cr_assert(strstr(e, "coordinator answered HTTP 500: ?[31mboom?<0>forged"), "%s", e);
	cr_assert_null(strchr(e, '\n'));
	cr_assert_null(strchr(e, '\x1b'));
	cr_assert(json_is_false(json_object_get(j, "connected")));
	cr_assert_eq(json_integer_value(json_object_get(j, "poll_errors")),
		     json_integer_value(json_object_get(j, "polls")));
	json_decref(j);
	cr_assert_eq(r.node.submits, 0);
	rig_fini(&r);
}

Test(control, oversize_answer_is_refused_unread_and_backed_off)
{
	rig r;
	rig_init(&r, SERVE_BIG);
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "oversize", 3));
	assert_backs_off(&r, 1500);
	json_t *j = status(&r);
	cr_assert(strstr(json_string_value(json_object_get(j, "last_error")), "over 64 KiB"));
	json_decref(j);
	cr_assert_eq(r.node.submits, 0, "an oversize answer never reaches the verifier");
	rig_fini(&r);
}

Test(control, unreachable_coordinator_backs_off)
{
	rig r;
	char url[128];
	rig_init(&r, SERVE_204);
	/* A port that was just bound and released: connections are refused. */
	snprintf(url, sizeof url, "http://ops:pw@127.0.0.1:%u", hf_httpd_port(r.httpd));
	hf_httpd_free(r.httpd);
	r.httpd = NULL;
	rig_start_at(&r, url, 200);
	cr_assert(wait_outcome(&r, "transport_error", 3));
	json_t *j = status(&r);
	const char *shown = json_string_value(json_object_get(j, "coordinator"));
	cr_assert(strncmp(shown, "http://ops:***@127.0.0.1:", 25) == 0, "%s", shown);
	cr_assert(json_is_false(json_object_get(j, "connected")));
	json_decref(j);
	uint64_t p0 = outcome(&r, "transport_error"), t0 = hf_mono_ms();
	while (hf_mono_ms() - t0 < 1500)
		hf_sleep_ms(20);
	uint64_t n = outcome(&r, "transport_error") - p0, t = hf_mono_ms() - t0;
	fprintf(stderr, "# %llu failed connects in %llu ms\n", (unsigned long long)n, (unsigned long long)t);
	cr_assert_leq(n, 2 * (t * 4 / (200 * 3) + 2) + 5);
	rig_fini(&r);
}

/* hf_control_free returns while the coordinator still holds the long poll open. */
Test(control, shutdown_interrupts_a_long_poll)
{
	rig r;
	rig_init(&r, SERVE_HOLD);
	rig_start(&r, 200);
	pthread_mutex_lock(&r.co.lock);
	struct timespec ts;
	hf_abstime_after_ms(20000, &ts);
	while (!r.co.holding && pthread_cond_timedwait(&r.co.cond, &r.co.lock, &ts) == 0)
		;
	cr_assert(r.co.holding, "the poll never arrived");
	pthread_mutex_unlock(&r.co.lock);
	hf_control_free(r.ctl);
	r.ctl = NULL;
	pthread_mutex_lock(&r.co.lock);
	cr_assert(r.co.holding, "hf_control_free waited for the coordinator's answer");
	pthread_mutex_unlock(&r.co.lock);
	rig_fini(&r);
}

Test(control, start_refuses_missing_callbacks)
{
	hf_control_opts o = { .coordinator_url = "http://127.0.0.1:1", .node_id = "n1",
			      .poll_wait_s = 1, .retry_max_ms = 100 };
	hf_control_ops ops = { 0 };
	hf_control *c = (hf_control *)1;
	hf_errbuf eb;
	cr_assert_eq(hf_control_start(&o, &ops, &c, &eb), HF_EINVAL);
	cr_assert_null(c);
	hf_control_free(NULL);
}

/* With a token every poll carries it as a bearer token; a 401 says the token was refused. */
Test(control, polls_carry_the_bearer_token_and_a_401_names_it)
{
	rig r;
	rig_init(&r, SERVE_204);
	r.token = "0123456789abcdef0123456789abcdef";
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "no_content", 2));
	pthread_mutex_lock(&r.co.lock);
	cr_assert_str_eq(r.co.auth, "Bearer 0123456789abcdef0123456789abcdef");
	pthread_mutex_unlock(&r.co.lock);
	json_t *j = status(&r);
	cr_assert_null(strstr(json_dumps(j, 0), "0123456789abcdef"), "the token is never shown");
	json_decref(j);
	rig_fini(&r);

	rig_init(&r, SERVE_204);
	rig_start(&r, 200);
	cr_assert(wait_outcome(&r, "no_content", 1));
	pthread_mutex_lock(&r.co.lock);
	cr_assert_str_eq(r.co.auth, "", "no token, no Authorization header");
	pthread_mutex_unlock(&r.co.lock);
	rig_fini(&r);
}
