/* Integration tests: the hf_stratum driver (and a raw hf_stratum core client) against real
 * hashflop-pool processes on 127.0.0.1 with ephemeral ports: handshake, accepted and rejected
 * shares with the pool's reasons, stale drops after a new block, reconnect and resume,
 * failover and failback, TLS with a CA made here, and the pool's fault injection. Every wait
 * has a deadline. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_stratum.h"
#include "hf_stratum_conn.h"
#include "hf_sha256d.h"
#include "hf_stratum_drv.h"
#include "hf_stratum_target.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define DIFF "0.00002"   /* about 86k hashes a share: fast even under sanitizers */
#define WAIT_MS 15000

typedef hf_testpool pool;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* Starts hashflop-pool; port 0 = ephemeral; extra is a NULL-terminated list of options. */
static void pool_start(pool *p, const char *name, uint16_t port, const char *const *extra)
{
	hf_testpool_start(p, name, port, DIFF, extra, WAIT_MS);
}

static void pool_free(pool *p)
{
	hf_testpool_free(p, WAIT_MS, true);
}

/* Finds a share for the work with the kernels' reference scanner. */
static void mine(const hf_stratum_work *w, uint32_t en2_seed, uint32_t vbits,
		 hf_stratum_share *sh)
{
	uint8_t root[32], hdr[80];
	hf_sha256d_job job;
	hf_sha256d_result res;
	uint32_t hit;

	memset(sh, 0, sizeof *sh);
	hf_strlcpy(sh->job_id, w->job.id, sizeof sh->job_id);
	sh->en2_len = w->en2_size;
	memcpy(sh->en2, &en2_seed, sh->en2_len < 4 ? sh->en2_len : 4);
	sh->ntime = w->job.ntime;
	sh->version = hf_stratum_version_roll(w->job.version, w->version_mask, vbits);
	cr_assert_eq(hf_stratum_job_merkle_root(&w->job, w->en1, w->en1_len, sh->en2,
						sh->en2_len, root), 0);
	hf_stratum_header_build(sh->version, w->job.prevhash, root, sh->ntime, w->job.nbits, 0, hdr);
	hf_sha256d_job_from_header(&job, hdr, w->share_target);
	cr_assert_eq(hf_sha256d_scan_ref(&job, 0, 50000000, &hit, 1, &res), 0);
	cr_assert_eq(res.n_hits, 1, "no share found in 50M nonces");
	sh->nonce = hit;
}

static hf_stratum_drv *drv_start(const char *const *urls, size_t n, const char *ca,
				 bool insecure)
{
	hf_stratum_drv_opts o = { .npools = n, .version_mask = 0x1fffe000,
				  .backoff_min_ms = 100, .backoff_max_ms = 400, .failback_ms = 300,
				  .connect_timeout_ms = 3000, .handshake_timeout_ms = 3000,
				  .ca_file = ca, .insecure = insecure, .seed = 7,
				  .extranonce_subscribe = true };
	hf_stratum_drv *d;
	hf_errbuf eb;

	for (size_t i = 0; i < n; i++) {
		o.pools[i].url = urls[i];
		o.pools[i].user = "bc1qlabaddress.rig1";
		o.pools[i].pass = "x";
	}
	cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0, "%s", eb.msg);
	return d;
}

static bool wait_active(hf_stratum_drv *d, int want, uint64_t ms)
{
	uint64_t end = hf_mono_ms() + ms;

	while (hf_mono_ms() < end) {
		if (hf_stratum_drv_active_pool(d) == want)
			return true;
		poll(NULL, 0, 10); /* re-check every 10 ms until the deadline */
	}
	return false;
}

static void wait_results(hf_stratum_drv *d, uint64_t n)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;

	while (hf_stratum_drv_results(d) < n && hf_mono_ms() < end)
		poll(NULL, 0, 10);
	cr_assert_geq(hf_stratum_drv_results(d), n, "share results did not arrive");
}

static void get_work(hf_stratum_drv *d, hf_stratum_work *w)
{
	cr_assert(hf_stratum_drv_wait_work(d, 0, WAIT_MS), "no work");
	cr_assert_eq(hf_stratum_drv_work(d, w), 0);
}

static void url_of(char *out, size_t n, const char *scheme, uint16_t port)
{
	snprintf(out, n, "%s://127.0.0.1:%u", scheme, port);
}

Test(stratum_pool, handshake_accepted_share_hw_error_and_duplicate, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128];
	const char *urls[1] = { url };
	hf_stratum_work w;
	hf_stratum_share sh, bad;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;

	pool_start(&p, "stratum-basic", 0, NULL);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	d = drv_start(urls, 1, NULL, false);
	get_work(d, &w);
	cr_assert(wait_active(d, 0, WAIT_MS));
	cr_assert_eq(w.en1_len, 4);
	cr_assert_eq(w.en2_size, 4);
	cr_assert_eq(w.version_mask, 0x1fffe000, "pool's mask granted");
	cr_assert_float_eq(w.difficulty, 0.00002, 1e-12);
	cr_assert(w.job.clean);

	mine(&w, 1, 0x00006000, &sh); /* rolled version bits inside the mask */
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.accepted, 1);
	cr_assert_eq(st.submitted, 1);
	cr_assert_eq(st.latency_count, 1);
	cr_assert(hf_test_wait_log(p.log, "accepted share worker=bc1qlabaddress.rig1", WAIT_MS));

	/* Tampered nonce: caught locally, never sent, counted as a hardware error. */
	bad = sh;
	do {
		uint8_t root[32], hdr[80], h[32];
		bad.nonce++;
		hf_stratum_job_merkle_root(&w.job, w.en1, w.en1_len, bad.en2, bad.en2_len, root);
		hf_stratum_header_build(bad.version, w.job.prevhash, root, bad.ntime, w.job.nbits,
					bad.nonce, hdr);
		hf_stratum_sha256d(hdr, 80, h);
		if (!hf_stratum_hash_meets(h, w.share_target))
			break;
	} while (1);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &bad), HF_ERANGE);

	/* The same share again: the pool answers 22 Duplicate, kept as the reason. */
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 2);
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.hw_errors, 1);
	cr_assert_eq(st.rejected, 1);
	cr_assert_str_eq(st.rejects[0].reason, "Duplicate");
	cr_assert_eq(st.rejects[0].count, 1);
	cr_assert_eq(hf_testpool_stat(&p, "accepted", NULL), 1);
	cr_assert_eq(hf_testpool_stat(&p, "rejects", "Duplicate"), 1);

	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

/* ---- a raw client (the sans-I/O core on a connection) to send what the driver won't ---- */

typedef struct raw {
	hf_stratum_conn *c;
	hf_stratum *s;
	hf_stratum_work w;
	double diff;
} raw;

static void raw_flush(raw *r)
{
	size_t n;
	const char *o = hf_stratum_out(r->s, &n);

	cr_assert_eq(hf_stratum_conn_write_all(r->c, o, n, 5000, NULL), 0);
	hf_stratum_out_consume(r->s, n);
}

/* Waits for the next event of type t (other events update r->w). */
static void raw_wait(raw *r, hf_stratum_ev_type t, hf_stratum_event *out)
{
	uint64_t end = hf_mono_ms() + WAIT_MS;
	hf_stratum_event ev;
	char buf[8192];
	size_t n;

	while (hf_mono_ms() < end) {
		while (hf_stratum_next_event(r->s, &ev)) {
			if (ev.type == HF_STRATUM_EV_SUBSCRIBED) {
				memcpy(r->w.en1, ev.extranonce1, ev.extranonce1_len);
				r->w.en1_len = ev.extranonce1_len;
				r->w.en2_size = ev.en2_size;
			} else if (ev.type == HF_STRATUM_EV_DIFFICULTY) {
				r->diff = ev.difficulty;
			} else if (ev.type == HF_STRATUM_EV_CONFIGURED) {
				r->w.version_mask = ev.version_mask;
			} else if (ev.type == HF_STRATUM_EV_NOTIFY) {
				hf_stratum_job_clear(&r->w.job);
				hf_stratum_job_copy(&r->w.job, &ev.job);
				hf_stratum_target_from_diff(r->diff, r->w.share_target);
			}
			if (ev.type == t) {
				*out = ev;
				return;
			}
			hf_stratum_event_clear(&ev);
		}
		struct pollfd pfd = { .fd = hf_stratum_conn_fd(r->c), .events = POLLIN };
		poll(&pfd, 1, 50);
		int rc = hf_stratum_conn_read(r->c, buf, sizeof buf, &n, NULL);
		if (rc == 0)
			hf_stratum_feed(r->s, buf, n);
		else
			cr_assert_eq(rc, HF_EBUSY, "raw client read failed");
	}
	cr_assert_fail("event %d did not arrive", t);
}

static void raw_open(raw *r, uint16_t port, const char *user)
{
	hf_stratum_url u = { .port = port };
	hf_stratum_event ev;

	memset(r, 0, sizeof *r);
	hf_strlcpy(u.host, "127.0.0.1", sizeof u.host);
	cr_assert_eq(hf_stratum_conn_connect(&u, NULL, 5000, &r->c, NULL), 0);
	r->s = hf_stratum_new(NULL);
	hf_stratum_configure(r->s, 0x1fffe000, 2, NULL);
	hf_stratum_subscribe(r->s, false, NULL);
	hf_stratum_authorize(r->s, user, "x", NULL);
	raw_flush(r);
	raw_wait(r, HF_STRATUM_EV_AUTHORIZED, &ev);
	cr_assert(ev.ok);
	hf_stratum_event_clear(&ev);
	raw_wait(r, HF_STRATUM_EV_NOTIFY, &ev);
	hf_stratum_event_clear(&ev);
}

static void raw_close(raw *r)
{
	hf_stratum_work_clear(&r->w);
	hf_stratum_free(r->s);
	hf_stratum_conn_free(r->c);
}

/* Submits and returns the pool's reason ("" when accepted). */
static void raw_submit(raw *r, const char *worker, const hf_stratum_share *sh, bool vbits,
		       uint32_t bits, char *reason, size_t rsz, int64_t *code)
{
	hf_stratum_submit_args a = { .worker = worker, .job_id = sh->job_id, .en2 = sh->en2,
				     .en2_len = sh->en2_len, .ntime = sh->ntime, .nonce = sh->nonce,
				     .has_version_bits = vbits, .version_bits = bits };
	hf_stratum_event ev;

	cr_assert_eq(hf_stratum_submit(r->s, &a, NULL), 0);
	raw_flush(r);
	raw_wait(r, HF_STRATUM_EV_SUBMIT_RESULT, &ev);
	hf_strlcpy(reason, ev.ok ? "" : ev.err_msg, rsz);
	*code = ev.err_code;
	hf_stratum_event_clear(&ev);
}

Test(stratum_pool, pool_rejects_each_bad_share_for_its_reason, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	raw r;
	hf_stratum_share sh, t;
	char reason[128];
	int64_t code;
	hf_stratum_event ev;

	pool_start(&p, "stratum-rejects", 0, NULL);
	raw_open(&r, p.port, "bc1qlab.w2");
	cr_assert_eq(r.w.version_mask, 0x1fffe000);
	mine(&r.w, 5, 0x00002000, &sh);

	t = sh;
	t.nonce ^= 0x5a5a5a5a; /* almost surely above the target now */
	raw_submit(&r, "bc1qlab.w2", &t, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Above target");
	cr_assert_eq(code, 23);
	raw_submit(&r, "bc1qlab.w2", &sh, true, 0x80000000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Bad version bits");
	raw_submit(&r, "someone.else", &sh, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Unauthorized worker");
	cr_assert_eq(code, 24);
	t = sh;
	t.ntime = sh.ntime - 1;
	raw_submit(&r, "bc1qlab.w2", &t, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Bad ntime");
	t = sh;
	hf_strlcpy(t.job_id, "nosuchjob", sizeof t.job_id);
	raw_submit(&r, "bc1qlab.w2", &t, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Unknown job");
	t = sh;
	t.en2_len = 3;
	raw_submit(&r, "bc1qlab.w2", &t, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Invalid extranonce2 size");
	raw_submit(&r, "bc1qlab.w2", &sh, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "", "the good share is accepted");
	raw_submit(&r, "bc1qlab.w2", &sh, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Duplicate");
	cr_assert_eq(code, 22);

	/* A new block makes the old job stale at the pool too. */
	hf_testpool_fault(&p, "new_block");
	raw_wait(&r, HF_STRATUM_EV_NOTIFY, &ev);
	cr_assert(ev.job.clean);
	hf_stratum_event_clear(&ev);
	t = sh;
	t.nonce++;
	raw_submit(&r, "bc1qlab.w2", &t, true, 0x00002000, reason, sizeof reason, &code);
	cr_assert_str_eq(reason, "Stale");
	cr_assert_eq(code, 21);

	json_t *j = hf_testpool_stats(&p);
	json_t *wk = json_object_get(json_object_get(j, "workers"), "bc1qlab.w2");
	cr_assert_eq(json_integer_value(json_object_get(wk, "accepted")), 1);
	cr_assert_eq(json_integer_value(json_object_get(wk, "stale")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "rejected")), 8);
	json_decref(j);
	raw_close(&r);
	pool_free(&p);
}

Test(stratum_pool, clean_jobs_make_found_shares_stale_locally, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128];
	const char *urls[1] = { url };
	hf_stratum_work w, w2;
	hf_stratum_share sh;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;

	pool_start(&p, "stratum-stale", 0, NULL);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	d = drv_start(urls, 1, NULL, false);
	get_work(d, &w);
	mine(&w, 9, 0, &sh);
	hf_testpool_fault(&p, "new_block");
	cr_assert(hf_stratum_drv_wait_work(d, w.seq, WAIT_MS));
	cr_assert_eq(hf_stratum_drv_work(d, &w2), 0);
	cr_assert(w2.job.clean);
	cr_assert_str_neq(w2.job.id, w.job.id);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), HF_ESTATE, "dropped, not sent");
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.stale, 1);
	cr_assert_eq(st.submitted, 0);
	/* Work on the new job is accepted. */
	mine(&w2, 10, 0, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w2, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.accepted, 1);
	hf_stratum_work_clear(&w);
	hf_stratum_work_clear(&w2);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

Test(stratum_pool, drop_resumes_session_and_reconnect_garbage_silence, .init = setup,
     .timeout = 90)
{
	pool p = { 0 };
	char url[128];
	hf_stratum_work w, w2;
	hf_stratum_share sh;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;
	uint64_t end;

	pool_start(&p, "stratum-resume", 0, NULL);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	{
		hf_stratum_drv_opts o = { .npools = 1, .version_mask = 0x1fffe000,
					  .backoff_min_ms = 100, .backoff_max_ms = 400,
					  .silence_ms = 1500, .seed = 3 };
		hf_errbuf eb;
		o.pools[0].url = url;
		o.pools[0].user = "bc1qlab.w3";
		cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
		cr_assert_eq(hf_stratum_drv_start(d, &eb), 0);
	}
	get_work(d, &w);
	cr_assert(wait_active(d, 0, WAIT_MS));

	/* The pool drops us: we come back with the same session and extranonce1. */
	hf_testpool_fault(&p, "drop");
	end = hf_mono_ms() + WAIT_MS;
	do {
		poll(NULL, 0, 10);
		hf_stratum_drv_pool_stats(d, 0, &st);
	} while (st.resumes < 1 && hf_mono_ms() < end);
	cr_assert_eq(st.resumes, 1, "session resumed (%s)", st.last_error);
	cr_assert(wait_active(d, 0, WAIT_MS));
	cr_assert(hf_stratum_drv_wait_work(d, w.seq, WAIT_MS));
	cr_assert_eq(hf_stratum_drv_work(d, &w2), 0);
	cr_assert_eq(memcmp(w2.en1, w.en1, 4), 0);
	cr_assert_eq(w2.session, w.session, "resumed work stays valid");
	mine(&w2, 11, 0, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w2, &sh), 0);
	wait_results(d, 1);

	/* Garbage lines are counted and survived. */
	hf_testpool_fault(&p, "garbage");
	end = hf_mono_ms() + WAIT_MS;
	do {
		poll(NULL, 0, 10);
		hf_stratum_drv_pool_stats(d, 0, &st);
	} while (st.bad_lines < 1 && hf_mono_ms() < end);
	cr_assert_geq(st.bad_lines, 1);
	cr_assert_eq(hf_stratum_drv_active_pool(d), 0);

	/* client.reconnect (same host and port) is followed. */
	hf_testpool_fault(&p, "reconnect");
	end = hf_mono_ms() + WAIT_MS;
	do {
		poll(NULL, 0, 10);
		hf_stratum_drv_pool_stats(d, 0, &st);
	} while ((st.reconnect_requests < 1 || st.connects < 3) && hf_mono_ms() < end);
	cr_assert_eq(st.reconnect_requests, 1);
	cr_assert_geq(st.connects, 3);
	cr_assert(wait_active(d, 0, WAIT_MS));

	/* client.reconnect to another port on the same host (with a wait) moves the session. */
	{
		pool q = { 0 };
		char path[128];
		pool_start(&q, "stratum-resume-2", 0, NULL);
		snprintf(path, sizeof path, "reconnect?host=127.0.0.1&port=%u&wait=0", q.port);
		hf_testpool_fault(&p, path);
		end = hf_mono_ms() + WAIT_MS;
		while (hf_testpool_stat(&q, "clients", NULL) < 1 && hf_mono_ms() < end)
			poll(NULL, 0, 10);
		cr_assert_eq(hf_testpool_stat(&q, "clients", NULL), 1, "followed client.reconnect to the new port");
		cr_assert(wait_active(d, 0, WAIT_MS));
		/* When that pool goes away the driver returns to its configured address. */
		pool_free(&q);
		end = hf_mono_ms() + WAIT_MS;
		while (hf_testpool_stat(&p, "clients", NULL) < 1 && hf_mono_ms() < end)
			poll(NULL, 0, 10);
		cr_assert_eq(hf_testpool_stat(&p, "clients", NULL), 1);
		cr_assert(wait_active(d, 0, WAIT_MS));
	}

	/* A stalled pool is detected by silence and reconnected once it recovers. */
	hf_testpool_fault(&p, "stall?on=1");
	end = hf_mono_ms() + WAIT_MS;
	do {
		poll(NULL, 0, 10);
		hf_stratum_drv_pool_stats(d, 0, &st);
	} while (st.silence_timeouts < 1 && hf_mono_ms() < end);
	cr_assert_geq(st.silence_timeouts, 1);
	hf_testpool_fault(&p, "stall?on=0");
	cr_assert(wait_active(d, 0, WAIT_MS));

	hf_stratum_work_clear(&w);
	hf_stratum_work_clear(&w2);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

Test(stratum_pool, failover_and_failback, .init = setup, .timeout = 90)
{
	pool a = { 0 }, b = { 0 };
	char ua[128], ub[128], port[16];
	const char *urls[2] = { ua, ub };
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;
	uint16_t aport;

	pool_start(&a, "stratum-fo-a", 0, NULL);
	pool_start(&b, "stratum-fo-b", 0, NULL);
	aport = a.port;
	url_of(ua, sizeof ua, "stratum+tcp", a.port);
	url_of(ub, sizeof ub, "stratum+tcp", b.port);
	d = drv_start(urls, 2, NULL, false);
	cr_assert(wait_active(d, 0, WAIT_MS), "preferred pool first");

	hf_testpool_kill(&a);
	cr_assert(wait_active(d, 1, WAIT_MS), "failover to the second pool");
	cr_assert(hf_stratum_drv_wait_work(d, 0, WAIT_MS));
	cr_assert_eq(hf_stratum_drv_work(d, &w), 0);
	cr_assert_eq(w.pool, 1);
	mine(&w, 12, 0, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_pool_stats(d, 1, &st);
	cr_assert_eq(st.accepted, 1);
	cr_assert_eq(hf_testpool_stat(&b, "accepted", NULL), 1);

	/* The preferred pool returns on the same port: fail back. */
	snprintf(port, sizeof port, "%u", aport);
	pool_start(&a, "stratum-fo-a", aport, NULL);
	cr_assert(wait_active(d, 0, WAIT_MS), "failback to the preferred pool");
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_geq(st.connects, 2);
	hf_stratum_drv_pool_stats(d, 1, &st);
	cr_assert_eq(st.disconnects, 1);
	/* Work from pool 1 is stale now. */
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), HF_ESTATE);

	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	pool_free(&a);
	pool_free(&b);
}

Test(stratum_pool, refused_authorize_fails_over, .init = setup, .timeout = 60)
{
	pool a = { 0 }, b = { 0 };
	char ua[128], ub[128];
	const char *urls[2] = { ua, ub };
	static const char *const refuse[] = { "--refuse-authorize", NULL };
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;

	pool_start(&a, "stratum-auth-a", 0, refuse);
	pool_start(&b, "stratum-auth-b", 0, NULL);
	url_of(ua, sizeof ua, "stratum+tcp", a.port);
	url_of(ub, sizeof ub, "stratum+tcp", b.port);
	d = drv_start(urls, 2, NULL, false);
	cr_assert(wait_active(d, 1, WAIT_MS));
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_geq(st.auth_failures, 1);
	cr_assert(strstr(st.last_error, "Unauthorized worker"), "%s", st.last_error);
	hf_stratum_drv_free(d);
	pool_free(&a);
	pool_free(&b);
}

static void make_certs(const char *dir)
{
	char cmd[4096];

	snprintf(cmd, sizeof cmd,
		 "cd '%s' && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout ca.key -out ca.pem -subj /CN=hashflop-test-ca -days 2 "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign "
		 ">/dev/null 2>&1 && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 >/dev/null 2>&1 && "
		 "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout other.key -out other.pem -subj /CN=other-ca -days 2 >/dev/null 2>&1",
		 dir);
	cr_assert_eq(system(cmd), 0, "openssl CLI could not make the test certificates");
}

Test(stratum_pool, tls_verified_with_test_ca, .init = setup, .timeout = 90)
{
	pool p = { 0 };
	char url[128], cert[1100], key[1100], ca[1100], other[1100];
	const char *urls[1] = { url };
	const char *extra[5];
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;
	uint64_t end;

	p.dir = hf_test_tmpdir("stratum-tls");
	make_certs(p.dir);
	snprintf(cert, sizeof cert, "%s/srv.pem", p.dir);
	snprintf(key, sizeof key, "%s/srv.key", p.dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", p.dir);
	snprintf(other, sizeof other, "%s/other.pem", p.dir);
	extra[0] = "--tls-cert";
	extra[1] = cert;
	extra[2] = "--tls-key";
	extra[3] = key;
	extra[4] = NULL;
	pool_start(&p, "stratum-tls", 0, extra);

	url_of(url, sizeof url, "stratum+ssl", p.port);
	d = drv_start(urls, 1, ca, false);
	get_work(d, &w);
	mine(&w, 13, 0, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.accepted, 1);
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);

	/* A CA that did not sign the pool's certificate: refused, never authorized. */
	url_of(url, sizeof url, "stratum+tls", p.port);
	d = drv_start(urls, 1, other, false);
	end = hf_mono_ms() + WAIT_MS;
	do {
		poll(NULL, 0, 10);
		hf_stratum_drv_pool_stats(d, 0, &st);
	} while (st.connect_failures < 1 && hf_mono_ms() < end);
	cr_assert_geq(st.connect_failures, 1);
	cr_assert(strstr(st.last_error, "verif"), "%s", st.last_error);
	cr_assert_eq(hf_stratum_drv_active_pool(d), -1);
	hf_stratum_drv_free(d);

	/* --insecure, only when asked, connects anyway. */
	d = drv_start(urls, 1, other, true);
	cr_assert(wait_active(d, 0, WAIT_MS));
	hf_stratum_drv_free(d);
	pool_free(&p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* A configured template (genesis coinbase cut around the extranonces, a two-entry merkle
 * branch, block 100000's prevhash): the pool and the driver agree on every share. */
Test(stratum_pool, config_template_with_merkle_branch, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128], cfg[1100], arg_cfg[1200];
	const char *urls[1] = { url };
	const char *extra[3];
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;

	p.dir = hf_test_tmpdir("stratum-template");
	snprintf(cfg, sizeof cfg, "%s/pool.json", p.dir);
	write_file(cfg,
		"{\n"
		"  \"extranonce2_size\": 4,\n"
		"  \"version_mask\": \"1fffe000\",\n"
		"  \"template\": {\n"
		"    \"prevhash\": \"000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250\",\n"
		"    \"coinb1\": \"01000000010000000000000000000000000000000000000000000000000000000000"
		"000000ffffffff4d04ffff001d0104455468652054696d6573\",\n"
		"    \"coinb2\": \"6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b"
		"73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a6796"
		"2e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000\",\n"
		"    \"merkle_branch\": [\n"
		"      \"f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766\",\n"
		"      \"4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b\"],\n"
		"    \"version\": \"20000000\",\n"
		"    \"nbits\": \"1b04864c\"\n"
		"  }\n"
		"}\n");
	snprintf(arg_cfg, sizeof arg_cfg, "%s", cfg);
	extra[0] = "--config";
	extra[1] = arg_cfg;
	extra[2] = NULL;
	pool_start(&p, "stratum-template", 0, extra);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	d = drv_start(urls, 1, NULL, false);
	get_work(d, &w);
	cr_assert_eq(w.job.nbranch, 2);
	cr_assert_eq(w.job.nbits, 0x1b04864c);
	cr_assert_eq(w.job.prevhash[31], 0x00, "header byte order: display hex reversed");
	cr_assert_eq(w.job.prevhash[0], 0x50);
	mine(&w, 21, 0x00004000, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.accepted, 1, "rejected: %s", st.nrejects ? st.rejects[0].reason : "");
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

Test(stratum_pool, bad_config_names_the_field_and_exits_2, .init = setup, .timeout = 30)
{
	char *dir = hf_test_tmpdir("stratum-badcfg"), cfg[1100], log[1100], exe[1024];
	const char *argv[4];
	hf_testproc *proc;
	int st = 0;

	snprintf(cfg, sizeof cfg, "%s/pool.json", dir);
	snprintf(log, sizeof log, "%s/pool.log", dir);
	snprintf(exe, sizeof exe, "%s/stratum/hashflop-pool", hf_test_build_root());
	write_file(cfg, "{\"template\": {\"nbits\": \"1d00ffff\", \"merkle_branch\": [\"zz\"]}}");
	argv[0] = exe;
	argv[1] = "--config";
	argv[2] = cfg;
	argv[3] = NULL;
	proc = hf_testproc_start(argv, log);
	cr_assert(hf_testproc_wait_exit(proc, WAIT_MS, &st));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	cr_assert(hf_test_wait_log(log, "template.merkle_branch[0]", WAIT_MS));
	hf_testproc_free(proc);

	write_file(cfg, "{\"difficulty\": 0.001, \"dificulty\": 2}");
	proc = hf_testproc_start(argv, log);
	cr_assert(hf_testproc_wait_exit(proc, WAIT_MS, &st));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	cr_assert(hf_test_wait_log(log, "dificulty: unknown key", WAIT_MS));
	hf_testproc_free(proc);
	free(dir);
}

/* Shares far faster than the vardiff target: the pool raises the difficulty; the driver's
 * next work carries it. show_message reaches the client without breaking the session. */
Test(stratum_pool, vardiff_raises_difficulty, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128];
	const char *urls[1] = { url };
	static const char *const extra[] = { "--vardiff", NULL };
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_stratum_drv *d;
	uint64_t end;

	pool_start(&p, "stratum-vardiff", 0, extra);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	d = drv_start(urls, 1, NULL, false);
	get_work(d, &w);
	for (uint32_t i = 0; i < 8; i++) {
		mine(&w, 100 + i, 0, &sh);
		cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	}
	wait_results(d, 8);
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		hf_stratum_work cur;
		cr_assert(hf_mono_ms() < end, "difficulty never rose");
		if (hf_stratum_drv_work(d, &cur) == 0) {
			double diff = cur.difficulty;
			hf_stratum_work_clear(&cur);
			if (diff > 0.00002 * 1.5)
				break;
		}
		poll(NULL, 0, 10);
	}
	hf_testpool_fault(&p, "show_message?host=maintenance");
	end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		hf_stratum_pool_stats st;
		hf_stratum_drv_pool_stats(d, 0, &st);
		if (strcmp(st.last_message, "maintenance") == 0)
			break;
		cr_assert(hf_mono_ms() < end, "show_message never arrived");
		poll(NULL, 0, 10);
	}
	cr_assert_eq(hf_stratum_drv_active_pool(d), 0);
	cr_assert_eq(hf_testpool_stat(&p, "accepted", NULL), 8);
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

typedef struct results {
	int n, accepted;
	uint32_t nonce;
	char reason[64];
} results;

static void on_result(void *ctx, int pool_idx, const hf_stratum_share *sh, bool ok,
		      const char *reason, uint64_t latency_ms)
{
	results *r = ctx;

	r->n++;
	r->accepted += ok;
	r->nonce = sh->nonce;
	hf_strlcpy(r->reason, reason, sizeof r->reason);
}

/* mining.suggest_difficulty is honoured by a vardiff pool; every share result reaches the
 * callback with the share it belongs to. */
Test(stratum_pool, suggest_difficulty_and_result_callback, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128];
	static const char *const extra[] = { "--vardiff", NULL };
	hf_stratum_drv_opts o = { .npools = 1, .suggest_difficulty = 0.00005, .seed = 9,
				  .backoff_min_ms = 100 };
	results r = { 0 };
	hf_stratum_work w;
	hf_stratum_share sh;
	hf_stratum_drv *d;
	hf_errbuf eb;

	pool_start(&p, "stratum-suggest", 0, extra);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	o.pools[0].url = url;
	o.pools[0].user = "bc1qlab.w9";
	o.on_result = on_result;
	o.ctx = &r;
	cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0);
	get_work(d, &w);
	while (w.difficulty != 0.00005) {
		uint64_t seq = w.seq;
		hf_stratum_work_clear(&w);
		cr_assert(hf_stratum_drv_wait_work(d, seq, WAIT_MS), "suggested difficulty not used");
		cr_assert_eq(hf_stratum_drv_work(d, &w), 0);
	}
	cr_assert_eq(w.version_mask, 0, "no rolling unless asked");
	mine(&w, 31, 0, &sh);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1);
	hf_stratum_drv_stop(d);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.accepted, 1);
	cr_assert_eq(r.nonce, sh.nonce);
	cr_assert_str_eq(r.reason, "");
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	pool_free(&p);
}

/* A TLS peer that never answers the handshake: stopping the driver abandons the connect at
 * once instead of waiting out connect_timeout_ms. */
Test(stratum_pool, stop_abandons_a_hanging_tls_connect, .init = setup, .timeout = 30)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	hf_stratum_drv_opts o = { .npools = 1, .connect_timeout_ms = 20000, .seed = 5 };
	char url[128];
	hf_stratum_drv *d;
	hf_errbuf eb;
	uint64_t t0;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	url_of(url, sizeof url, "stratum+ssl", ntohs(sa.sin_port));
	o.pools[0].url = url;
	o.pools[0].user = "bc1qlab.w7";
	cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0);
	cr_assert_eq(poll(&pfd, 1, WAIT_MS), 1, "the driver never connected");
	t0 = hf_mono_ms();
	hf_stratum_drv_stop(d);
	cr_assert_lt(hf_mono_ms() - t0, 3000, "stop waited for the connect timeout");
	hf_stratum_drv_free(d);
	close(lfd);
}
