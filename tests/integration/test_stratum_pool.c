/* Integration tests: the hf_stratum driver (and a raw hf_stratum core client) against real
 * hashflop-pool processes on 127.0.0.1 with ephemeral ports: handshake, accepted and rejected
 * shares with the pool's reasons, stale drops after a new block, reconnect and resume,
 * failover and failback, TLS with a CA made here, and the pool's fault injection. What the
 * lab pool never does (stop reading, send control characters) comes from a scripted pool on
 * a real socket; a name server that never answers is glibc's resolver stuck on a FIFO. Every
 * wait has a deadline. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_stratum.h"
#include "hf_stratum_conn.h"
#include "hf_sha256d.h"
#include "hf_stratum_drv.h"
#include "hf_stratum_target.h"
#include "hf_testpool.h"
#include "hf_teststall.h"
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

/* Shares far faster than the vardiff target (1 a minute, so that a slow, loaded machine
 * still beats it; the 8 shares are mined first and sent together): the pool raises the
 * difficulty; the driver's next work carries it. show_message reaches the client without
 * breaking the session. */
Test(stratum_pool, vardiff_raises_difficulty, .init = setup, .timeout = 60)
{
	pool p = { 0 };
	char url[128], cfg[1100];
	const char *urls[1] = { url };
	const char *extra[3] = { "--config", cfg, NULL };
	hf_stratum_work w;
	hf_stratum_share sh[8];
	hf_stratum_drv *d;
	uint64_t end;

	p.dir = hf_test_tmpdir("stratum-vardiff");
	snprintf(cfg, sizeof cfg, "%s/pool.json", p.dir);
	write_file(cfg, "{\"vardiff\": {\"enabled\": true, \"shares_per_min\": 1}}\n");
	pool_start(&p, "stratum-vardiff", 0, extra);
	url_of(url, sizeof url, "stratum+tcp", p.port);
	d = drv_start(urls, 1, NULL, false);
	get_work(d, &w);
	for (uint32_t i = 0; i < 8; i++)
		mine(&w, 100 + i, 0, &sh[i]);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh[i]), 0);
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

/* ---- a name lookup that never answers (hf_teststall.h): glibc reads the file named
 * by HOSTALIASES for a single-label name before asking a name server; a FIFO there blocks
 * getaddrinfo() inside the real resolver until the test lets it go ---- */

#define DEADLINE_MS 500
#define EARLY_MS 50
#define MARGIN_MS 5000


/* The pool's stats once ok() holds, or at the deadline. */
static hf_stratum_pool_stats stats_when(hf_stratum_drv *d, size_t idx,
					bool (*ok)(const hf_stratum_pool_stats *))
{
	hf_stratum_pool_stats st;
	uint64_t end = hf_mono_ms() + WAIT_MS;

	do {
		hf_stratum_drv_pool_stats(d, idx, &st);
		if (ok(&st))
			break;
		poll(NULL, 0, 5); /* re-check until the deadline */
	} while (hf_mono_ms() < end);
	return st;
}

static bool has_connect_failure(const hf_stratum_pool_stats *st)
{
	return st->connect_failures >= 1;
}

/* The pool's name server never answers: stop returns at once (the lookup is abandoned on its
 * thread), and connect_timeout_ms covers the lookup. */
Test(stratum_pool, stuck_name_lookup_is_bounded_and_abandoned_by_stop, .init = setup,
     .timeout = 60)
{
	hf_stratum_drv_opts o = { .npools = 1, .connect_timeout_ms = 60000, .seed = 5,
				  .backoff_min_ms = 100, .backoff_max_ms = 400 };
	hf_stratum_pool_stats st;
	hf_stratum_drv *d;
	hf_errbuf eb;
	uint64_t t0, el;
	hf_teststall sl;

	hf_teststall_setup(&sl);
	o.pools[0].url = "stratum+tcp://hashflopstall:3333";
	o.pools[0].user = "bc1qlab.w8";
	cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0);
	if (!hf_teststall_caught(&sl, WAIT_MS)) {
		hf_stratum_drv_free(d);
		cr_skip_test("this resolver does not read HOSTALIASES");
	}
	t0 = hf_mono_ms();
	hf_stratum_drv_stop(d);
	el = hf_mono_ms() - t0;
	cr_assert_lt(el, MARGIN_MS, "stop waited %llu ms for the lookup", (unsigned long long)el);
	hf_stratum_drv_free(d);

	o.connect_timeout_ms = DEADLINE_MS;
	cr_assert_eq(hf_stratum_drv_new(&o, &d, &eb), 0, "%s", eb.msg);
	t0 = hf_mono_ms();
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0);
	st = stats_when(d, 0, has_connect_failure);
	el = hf_mono_ms() - t0;
	cr_assert_geq(st.connect_failures, 1, "the stuck lookup never failed the pool");
	cr_assert(strstr(st.last_error, "resolve hashflopstall: timed out"), "%s", st.last_error);
	cr_assert_geq(el, DEADLINE_MS - EARLY_MS, "failed after %llu ms", (unsigned long long)el);
	cr_assert_lt(el, MARGIN_MS, "failed after %llu ms", (unsigned long long)el);
	hf_stratum_drv_free(d);
	hf_teststall_release(&sl);
}

/* ---- a scripted pool on a real socket, for what hashflop-pool never does ---- */

typedef struct script {
	int lfd, quit[2];
	uint16_t port;
	pthread_t th;
	const char *auth_error;   /* JSON error for authorize (NULL: authorized) */
	const char *message;      /* JSON string sent as client.show_message (NULL: none) */
	const char *reject;       /* JSON error for every submit (NULL: accepted) */
	const char *reconnect;    /* JSON params sent as client.reconnect (NULL: none) */
	bool stop_reading;        /* after the first job, never read again */
	atomic_int clients, submits;
} script;

static void script_send(int fd, const char *line)
{
	size_t n = strlen(line), off = 0;

	while (off < n) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* Waits for fd (or the quit pipe); false on quit. */
static bool script_wait(script *sc, int fd)
{
	struct pollfd p[2] = { { .fd = sc->quit[0], .events = POLLIN },
			       { .fd = fd, .events = POLLIN } };

	while (poll(p, fd >= 0 ? 2 : 1, -1) < 0)
		;
	return !p[0].revents;
}

static void script_after_auth(script *sc, int fd)
{
	char line[1024];

	script_send(fd, "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1e-12]}\n");
	if (sc->message) {
		snprintf(line, sizeof line, "{\"id\":null,\"method\":\"client.show_message\","
			 "\"params\":[%s]}\n", sc->message);
		script_send(fd, line);
	}
	if (sc->reconnect) {
		snprintf(line, sizeof line, "{\"id\":null,\"method\":\"client.reconnect\","
			 "\"params\":%s}\n", sc->reconnect);
		script_send(fd, line);
	}
	script_send(fd, "{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j1\","
		    "\"0000000000000000000000000000000000000000000000000000000000000000\","
		    "\"01000000010000000000000000000000000000000000000000000000000000000000000000"
		    "ffffffff\",\"ffffffff0100f2052a01000000015100000000\",[],\"20000000\","
		    "\"1d00ffff\",\"5f5e1000\",true]}\n");
}

static void script_line(script *sc, int fd, const char *text, bool *authorized)
{
	json_t *j = json_loads(text, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "method"));
	long long id = json_integer_value(json_object_get(j, "id"));
	char out[1024];

	if (!m) {
		json_decref(j);
		return;
	}
	if (strcmp(m, "mining.subscribe") == 0) {
		snprintf(out, sizeof out, "{\"id\":%lld,\"result\":[[[\"mining.notify\",\"s1\"]],"
			 "\"01020304\",4],\"error\":null}\n", id);
	} else if (strcmp(m, "mining.authorize") == 0 && sc->auth_error) {
		snprintf(out, sizeof out, "{\"id\":%lld,\"result\":null,\"error\":%s}\n", id,
			 sc->auth_error);
	} else if (strcmp(m, "mining.submit") == 0 && sc->reject) {
		atomic_fetch_add(&sc->submits, 1);
		snprintf(out, sizeof out, "{\"id\":%lld,\"result\":false,\"error\":%s}\n", id,
			 sc->reject);
	} else {
		if (strcmp(m, "mining.submit") == 0)
			atomic_fetch_add(&sc->submits, 1);
		snprintf(out, sizeof out, "{\"id\":%lld,\"result\":true,\"error\":null}\n", id);
	}
	script_send(fd, out);
	if (strcmp(m, "mining.authorize") == 0 && !sc->auth_error) {
		*authorized = true;
		script_after_auth(sc, fd);
	}
	json_decref(j);
}

static void script_serve(script *sc, int fd)
{
	char buf[65536];
	size_t len = 0;
	bool authorized = false;

	while (script_wait(sc, fd)) {
		ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		char *nl;
		if (r <= 0)
			return;
		len += (size_t)r;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			script_line(sc, fd, buf, &authorized);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof buf - 1)
			len = 0;
		if (authorized && sc->stop_reading) {
			script_wait(sc, -1); /* the bytes pile up unread until the test ends */
			return;
		}
	}
}

static void *script_main(void *arg)
{
	script *sc = arg;

	while (script_wait(sc, sc->lfd)) {
		int fd = accept(sc->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&sc->clients, 1);
		script_serve(sc, fd);
		close(fd);
	}
	return NULL;
}

static void script_start(script *sc)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int small = 4096;

	sc->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sc->lfd, 0);
	/* a small receive window: a client that sends and is never read fills up fast */
	setsockopt(sc->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(sc->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(sc->lfd, 8), 0);
	cr_assert_eq(getsockname(sc->lfd, (struct sockaddr *)&sa, &len), 0);
	sc->port = ntohs(sa.sin_port);
	cr_assert_eq(pipe(sc->quit), 0);
	cr_assert_eq(pthread_create(&sc->th, NULL, script_main, sc), 0);
}

static void script_stop(script *sc)
{
	char b = 1;

	cr_assert_eq(write(sc->quit[1], &b, 1), 1);
	pthread_join(sc->th, NULL);
	close(sc->lfd);
	close(sc->quit[0]);
	close(sc->quit[1]);
}

static hf_stratum_drv *script_drv(const script *sc, char *url, size_t n,
				  hf_stratum_drv_opts *o)
{
	hf_stratum_drv *d;
	hf_errbuf eb;

	url_of(url, n, "stratum+tcp", sc->port);
	o->npools = 1;
	o->pools[0].url = url;
	o->pools[0].user = "bc1qlab.script";
	o->seed = 11;
	if (!o->backoff_min_ms)
		o->backoff_min_ms = 100;
	cr_assert_eq(hf_stratum_drv_new(o, &d, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_stratum_drv_start(d, &eb), 0, "%s", eb.msg);
	return d;
}

/* The driver's socket to the scripted pool, found among this process's descriptors (its peer
 * is the script's port); -1 when there is none. */
static int driver_socket(uint16_t port)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	cr_assert(dir);
	while (found < 0 && (e = readdir(dir))) {
		struct sockaddr_in peer;
		socklen_t len = sizeof peer;
		int fd = atoi(e->d_name);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(dir))
			continue;
		if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
		    peer.sin_family == AF_INET && ntohs(peer.sin_port) == port)
			found = fd;
	}
	closedir(dir);
	return found;
}

/* Submits (valid: difficulty 1e-12) shares until the driver's queue stays full while its
 * socket to the pool takes no more bytes and it hands over no more shares for 100 checks in a
 * row: the driver thread is then stuck in a write to the pool that stopped reading (or, when
 * or_dropped, that write already failed). The 100 checks only make sure the driver got the
 * CPU to enter that write, which matters for the code before the fix; they cannot fail.
 * The driver's socket gets a small send buffer (a slow link) so that this takes hundreds of
 * shares, not tens of thousands. */
static void fill_until_blocked(hf_stratum_drv *d, const hf_stratum_work *w, uint16_t port,
			       bool or_dropped)
{
	hf_stratum_share sh = { .en2_len = w->en2_size, .ntime = w->job.ntime,
				.version = w->job.version };
	uint64_t end = hf_mono_ms() + WAIT_MS, last = UINT64_MAX;
	hf_stratum_pool_stats st = { 0 };
	int rc, stable = 0, fd = driver_socket(port), small = 4096;

	cr_assert_geq(fd, 0, "no connection to the scripted pool");
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
	hf_strlcpy(sh.job_id, w->job.id, sizeof sh.job_id);
	while (hf_mono_ms() < end) {
		struct pollfd p = { .fd = -1, .events = POLLOUT };
		sh.nonce++;
		rc = hf_stratum_drv_submit(d, w, &sh);
		cr_assert(rc == 0 || rc == HF_ESTATE, "submit: %d", rc);
		if (rc == 0) {
			stable = 0;
			continue;
		}
		hf_stratum_drv_pool_stats(d, 0, &st); /* the queue is full */
		if (or_dropped && st.disconnects)
			return;
		p.fd = driver_socket(port);
		if (p.fd >= 0 && poll(&p, 1, 0) == 0 && st.submitted == last) {
			if (++stable == 100)
				return;
		} else {
			stable = 0;
		}
		last = st.submitted;
		poll(NULL, 0, 1); /* let the driver take the queue; re-check until the deadline */
	}
	cr_assert_fail("the driver never blocked (%llu submits handed over)",
		       (unsigned long long)st.submitted);
}

/* Drain with a pool that never reads: the driver is stuck in a write (default write timeout,
 * 10 s) when stop comes; stop cancels the write and returns at once. */
Test(stratum_pool, stop_with_a_pool_that_never_reads_returns_at_once, .init = setup,
     .timeout = 60)
{
	script sc = { .stop_reading = true };
	hf_stratum_drv_opts o = { 0 };
	hf_stratum_work w;
	hf_stratum_drv *d;
	char url[128];
	uint64_t t0, el;

	script_start(&sc);
	d = script_drv(&sc, url, sizeof url, &o);
	get_work(d, &w);
	cr_assert(wait_active(d, 0, WAIT_MS));
	fill_until_blocked(d, &w, sc.port, false);
	t0 = hf_mono_ms();
	hf_stratum_drv_stop(d);
	el = hf_mono_ms() - t0;
	cr_assert_lt(el, MARGIN_MS, "stop waited %llu ms for the write", (unsigned long long)el);
	{
		hf_stratum_pool_stats st;
		hf_stratum_drv_pool_stats(d, 0, &st);
		cr_assert_eq(st.disconnects, 1, "one session, ended by stop: %s", st.last_error);
		cr_assert_eq(st.connects, 1);
	}
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	script_stop(&sc);
}

static bool has_disconnect(const hf_stratum_pool_stats *st)
{
	return st->disconnects >= 1;
}

/* A pool that stops reading is dropped at write_timeout_ms with the reason kept. */
Test(stratum_pool, pool_that_never_reads_is_dropped_at_the_write_timeout, .init = setup,
     .timeout = 60)
{
	script sc = { .stop_reading = true };
	hf_stratum_drv_opts o = { .write_timeout_ms = DEADLINE_MS, .backoff_min_ms = 60000,
				  .backoff_max_ms = 60000 };
	hf_stratum_pool_stats st;
	hf_stratum_work w;
	hf_stratum_drv *d;
	char url[128];
	uint64_t t0, el;

	script_start(&sc);
	d = script_drv(&sc, url, sizeof url, &o);
	get_work(d, &w);
	cr_assert(wait_active(d, 0, WAIT_MS));
	fill_until_blocked(d, &w, sc.port, true);
	t0 = hf_mono_ms(); /* the write began before this: the drop comes within the timeout */
	st = stats_when(d, 0, has_disconnect);
	el = hf_mono_ms() - t0;
	cr_assert_eq(st.disconnects, 1, "still connected to a pool that never reads");
	cr_assert(strstr(st.last_error, "send: timed out"), "%s", st.last_error);
	cr_assert_lt(el, MARGIN_MS, "dropped after %llu ms", (unsigned long long)el);
	cr_assert_eq(hf_stratum_drv_active_pool(d), -1);
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	script_stop(&sc);
}

/* No C0/C1 control character or DEL, valid UTF-8 (what hf_text_clean guarantees). */
static bool text_clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u; u++)
		if (*u < 0x20 || *u == 0x7f || (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f))
			return false;
	return true;
}

static bool has_message(const hf_stratum_pool_stats *st)
{
	return st->last_message[0] != '\0';
}

/* The driver counts the refusal, then records why (two steps): wait for both. */
static bool has_auth_failure(const hf_stratum_pool_stats *st)
{
	return st->auth_failures >= 1 && st->last_error[0];
}

/* A pool's show_message, reject reason and refusal carry a forged journal line, ANSI escapes
 * and a C1 control: the stats and the result callback get them cleaned; a reconnect to a
 * "host" with a newline in it is ignored and the session goes on. */
Test(stratum_pool, control_characters_from_the_pool_are_cleaned, .init = setup, .timeout = 60)
{
	script sc = { .message = "\"hello\\n<0>forged \\u001b[2J\\u009b!\"",
		      .reject = "[23,\"Low\\r\\ndifficulty\\u0007\",null]",
		      .reconnect = "[\"evil\\nhost\",3333,0]" };
	script bad = { .auth_error = "[24,\"Unauthorized\\n<0>worker\\u001b[31m\",null]" };
	hf_stratum_drv_opts o = { .allow_reconnect_host = true, .on_result = on_result };
	hf_stratum_pool_stats st;
	hf_stratum_share sh = { .nonce = 1 };
	hf_stratum_work w;
	hf_stratum_drv *d;
	results r = { 0 };
	char url[128];

	script_start(&sc);
	o.ctx = &r;
	d = script_drv(&sc, url, sizeof url, &o);
	get_work(d, &w);
	cr_assert(wait_active(d, 0, WAIT_MS));
	st = stats_when(d, 0, has_message);
	cr_assert_str_eq(st.last_message, "hello?<0>forged ?[2J?!");
	sh.en2_len = w.en2_size;
	sh.ntime = w.job.ntime;
	sh.version = w.job.version;
	hf_strlcpy(sh.job_id, w.job.id, sizeof sh.job_id);
	cr_assert_eq(hf_stratum_drv_submit(d, &w, &sh), 0);
	wait_results(d, 1); /* answered on the first connection: the reconnect was ignored */
	hf_stratum_drv_pool_stats(d, 0, &st);
	cr_assert_eq(st.reconnect_requests, 1);
	cr_assert_eq(st.connects, 1);
	cr_assert_eq(st.disconnects, 0);
	cr_assert_eq(atomic_load(&sc.clients), 1);
	cr_assert_eq(st.rejected, 1);
	cr_assert_str_eq(st.rejects[0].reason, "Low??difficulty?");
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.reason, "Low??difficulty?");
	hf_stratum_work_clear(&w);
	hf_stratum_drv_free(d);
	script_stop(&sc);

	script_start(&bad);
	d = script_drv(&bad, url, sizeof url, &o);
	st = stats_when(d, 0, has_auth_failure);
	cr_assert_geq(st.auth_failures, 1);
	cr_assert_str_eq(st.last_error, "authorize refused: Unauthorized?<0>worker?[31m");
	cr_assert(text_clean(st.last_error) && text_clean(st.url), "%s", st.last_error);
	hf_stratum_drv_free(d);
	script_stop(&bad);
}
