/* Unit tests for the live policy source's parts that need no feeds or nodes: the figures learnt
 * from reports (hf_coord_learn_*: which reports count, EWMA, capacities of 0, the inference
 * capacity over the last hour, switch durations), profit.json validation
 * (hf_coord_profit_check: the shipped example, refusals naming the file and the field), and
 * hf_coord_decide_many (a batch over two chunks with per-node reasons; held, unknown and bad
 * requests answered per request). The live loop itself: tests/integration/test_coord_profit.c.
 * Threading: the test thread only. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_coord.h"
#include "hf_coord_profit.h"
#include "hf_coord_store.h"
#include "hf_instr.h"
#include "hf_util.h"

#define T0 1800000000000ull /* a wall time, ms */

static hf_coord_report_sum rep(const char *mode, bool converged, const char *phase, double hs,
			       double ips, double watts)
{
	hf_coord_report_sum r;
	memset(&r, 0, sizeof r);
	hf_strlcpy(r.mode, mode, sizeof r.mode);
	hf_strlcpy(r.desired_mode, mode, sizeof r.desired_mode);
	hf_strlcpy(r.phase, phase, sizeof r.phase);
	r.converged = converged;
	r.hashrate_hs = hs;
	r.inferences_per_s = ips;
	r.has_power = watts >= 0;
	r.watts = watts >= 0 ? watts : 0;
	r.switch_total_ms = -1;
	return r;
}

static const hf_coord_class cls = { .name = "c", .fig = { .hashrate_hs = 1e9, .mining_watts = 100,
	.inferences_per_s = 50, .inference_watts = 90, .idle_watts = 10, .switch_s = 5 },
	.price_factor = 1 };

#define TS (T0 + HF_COORD_LEARN_SETTLE_MS) /* settled: the first learning report's time */

Test(coord_learn, mining_figures_only_from_converged_running_reports)
{
	hf_coord_learnt l = { 0 };
	hf_coord_figures own;
	unsigned mask;
	hf_coord_report_sum r = rep("mining", false, "running", 2e9, 0, 200);

	cr_assert(hf_coord_learn_report(&l, &r, T0 - 3000));
	r = rep("mining", true, "starting", 2e9, 0, 200);
	cr_assert(hf_coord_learn_report(&l, &r, T0 - 2000));
	r = rep("mining", true, "running", 2e9, 0, 200);
	hf_strlcpy(r.desired_mode, "idle", sizeof r.desired_mode); /* on its way to idle */
	cr_assert(hf_coord_learn_report(&l, &r, T0 - 1500));
	hf_coord_learn_figures(&l, &cls, T0 - 1000, &own, &mask);
	cr_assert_eq(mask, 0, "not converged / not running: nothing learnt (mask %x)", mask);
	/* the first converged report in the mode starts the settling: its power may still be the
	 * last mode's (nothing learnt until HF_COORD_LEARN_SETTLE_MS later) */
	r = rep("mining", true, "running", 5e9, 0, 999);
	cr_assert(hf_coord_learn_report(&l, &r, T0));
	r = rep("mining", true, "running", 5e9, 0, 999);
	cr_assert(hf_coord_learn_report(&l, &r, TS - 1));
	hf_coord_learn_figures(&l, &cls, TS - 1, &own, &mask);
	cr_assert_eq(mask, 0, "settling: nothing learnt (mask %x)", mask);
	r = rep("mining", true, "running", 2e9, 0, 200);
	cr_assert(hf_coord_learn_report(&l, &r, TS + 2000));
	cr_assert_not(hf_coord_learn_report(&l, &r, TS + 2000), "a report is used once");
	hf_coord_learn_figures(&l, &cls, TS + 3000, &own, &mask);
	cr_assert_eq(mask, HF_COORD_FIG_HASHRATE | HF_COORD_FIG_MINING_W);
	cr_assert_float_eq(own.hashrate_hs, 2e9, 1);
	cr_assert_float_eq(own.mining_watts, 200, 1e-9);
	/* EWMA: 0.3 of the new sample */
	r = rep("mining", true, "running", 1e9, 0, 100);
	cr_assert(hf_coord_learn_report(&l, &r, TS + 4000));
	hf_coord_learn_figures(&l, &cls, TS + 5000, &own, &mask);
	cr_assert_float_eq(own.hashrate_hs, 0.7 * 2e9 + 0.3 * 1e9, 1);
	cr_assert_float_eq(own.mining_watts, 0.7 * 200 + 0.3 * 100, 1e-9);
	/* a hashrate of 0 (a pool down) and a power of 0 are no measurement */
	r = rep("mining", true, "running", 0, 0, 0);
	cr_assert(hf_coord_learn_report(&l, &r, TS + 6000));
	hf_coord_learn_figures(&l, &cls, TS + 7000, &own, &mask);
	cr_assert_float_eq(own.hashrate_hs, 0.7 * 2e9 + 0.3 * 1e9, 1);
	/* a report without power leaves the watts */
	r = rep("mining", true, "running", 1e9, 0, -1);
	cr_assert(hf_coord_learn_report(&l, &r, TS + 8000));
	hf_coord_learn_figures(&l, &cls, TS + 9000, &own, &mask);
	cr_assert_float_eq(own.mining_watts, 0.7 * 200 + 0.3 * 100, 1e-9);
	/* a new switch (last_switch.seq) settles again, even in the same mode */
	r = rep("mining", true, "running", 1e9, 0, 500);
	r.has_switch = true;
	r.switch_seq = 9;
	cr_assert(hf_coord_learn_report(&l, &r, TS + 10000));
	hf_coord_learn_figures(&l, &cls, TS + 10000, &own, &mask);
	cr_assert_float_eq(own.mining_watts, 0.7 * 200 + 0.3 * 100, 1e-9);
}

/* Each mode's watts, each after its own settling: the first idle report right after a switch
 * from mining carries mining's power and is not learnt as idle's. */
Test(coord_learn, idle_and_inference_watts_per_mode)
{
	hf_coord_learnt l = { 0 };
	hf_coord_figures own;
	unsigned mask;
	hf_coord_report_sum r = rep("idle", true, "running", 0, 0, 300);

	hf_coord_learn_report(&l, &r, T0);
	r = rep("idle", true, "running", 0, 0, 35);
	hf_coord_learn_report(&l, &r, TS);
	r = rep("inference", true, "running", 0, 0, 35);
	hf_coord_learn_report(&l, &r, TS + 1000);
	r = rep("inference", true, "running", 0, 0, 180);
	hf_coord_learn_report(&l, &r, TS + 1000 + HF_COORD_LEARN_SETTLE_MS);
	hf_coord_learn_figures(&l, &cls, TS + 2000 + HF_COORD_LEARN_SETTLE_MS, &own, &mask);
	cr_assert_eq(mask, HF_COORD_FIG_IDLE_W | HF_COORD_FIG_INFER_W, "mask %x", mask);
	cr_assert_float_eq(own.idle_watts, 35, 1e-9);
	cr_assert_float_eq(own.inference_watts, 180, 1e-9);
}

Test(coord_learn, inference_capacity_is_the_class_or_the_last_hours_highest)
{
	hf_coord_learnt l = { 0 };
	hf_coord_figures own;
	unsigned mask;
	hf_coord_report_sum r = rep("inference", true, "running", 0, 20, 100);

	/* below the class's 50/s: the class's capacity (a node serves what it is sent) */
	hf_coord_learn_report(&l, &r, T0);
	hf_coord_learn_figures(&l, &cls, T0 + 1000, &own, &mask);
	cr_assert(mask & HF_COORD_FIG_INFER);
	cr_assert_float_eq(own.inferences_per_s, 50, 1e-9);
	/* 80/s seen: the capacity is 80 for an hour, even after lower rates */
	r = rep("inference", true, "running", 0, 80, 100);
	hf_coord_learn_report(&l, &r, T0 + 60000);
	r = rep("inference", true, "running", 0, 30, 100);
	hf_coord_learn_report(&l, &r, T0 + 20 * 60000);
	hf_coord_learn_figures(&l, &cls, T0 + 30 * 60000, &own, &mask);
	cr_assert_float_eq(own.inferences_per_s, 80, 1e-9);
	/* past the hour only the later, lower rate is left: the class's 50 */
	hf_coord_learn_figures(&l, &cls, T0 + 70 * 60000, &own, &mask);
	cr_assert_float_eq(own.inferences_per_s, 50, 1e-9);
	cr_assert(mask & HF_COORD_FIG_INFER);
	/* two hours on: nothing reported in the last hour */
	hf_coord_learn_figures(&l, &cls, T0 + 130 * 60000, &own, &mask);
	cr_assert_not(mask & HF_COORD_FIG_INFER);
}

Test(coord_learn, switch_duration_from_each_new_last_switch)
{
	hf_coord_learnt l = { 0 };
	hf_coord_figures own;
	unsigned mask;
	hf_coord_report_sum r = rep("mining", false, "starting", 0, 0, -1);

	r.has_switch = true;
	r.switch_seq = 3;
	r.switch_total_ms = 4000;
	hf_coord_learn_report(&l, &r, T0);
	hf_coord_learn_report(&l, &r, T0 + 1000); /* the same switch again: once */
	hf_coord_learn_figures(&l, &cls, T0 + 2000, &own, &mask);
	cr_assert_eq(mask, HF_COORD_FIG_SWITCH);
	cr_assert_float_eq(own.switch_s, 4, 1e-9);
	r.switch_seq = 4;
	r.switch_total_ms = 14000;
	hf_coord_learn_report(&l, &r, T0 + 3000);
	hf_coord_learn_figures(&l, &cls, T0 + 4000, &own, &mask);
	cr_assert_float_eq(own.switch_s, 0.7 * 4 + 0.3 * 14, 1e-9);
	r.switch_seq = 5;
	r.switch_total_ms = -1; /* total_ms null: a switch still in progress */
	hf_coord_learn_report(&l, &r, T0 + 5000);
	hf_coord_learn_figures(&l, &cls, T0 + 6000, &own, &mask);
	cr_assert_float_eq(own.switch_s, 0.7 * 4 + 0.3 * 14, 1e-9);
}

/* ---- profit.json ---- */

static char tmpdir[] = "/tmp/hf-coord-profit-XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	return path;
}

static void refused(const char *text, const char *want)
{
	hf_errbuf eb;
	const char *path = write_tmp("profit.json", text);
	hf_errbuf_clear(&eb);
	cr_assert_lt(hf_coord_profit_check(path, &eb), 0, "accepted: %s", text);
	cr_assert_not_null(strstr(eb.msg, path), "the file is named: %s", eb.msg);
	cr_assert_not_null(strstr(eb.msg, want), "\"%s\" not in: %s", want, eb.msg);
}

#define CLASSES "\"classes\": {\"c\": {\"hashrate_hs\": 1e9, \"mining_watts\": 10, " \
	"\"inferences_per_s\": 5, \"inference_watts\": 9, \"idle_watts\": 1, \"switch_s\": 1}}, " \
	"\"default_class\": \"c\""

Test(coord_profit_file, the_example_and_refusals)
{
	char example[1024];
	const char *root = getenv("HF_SOURCE_ROOT");
	hf_errbuf eb;

	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(example, sizeof example, "%s/packaging/examples/profit.json", root ? root : ".");
	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_profit_check(example, &eb), 0, "%s", eb.msg);
	refused("[]", "expected a JSON object");
	refused("{\"feedz\": {}}", "feedz: unknown key");
	refused("{" CLASSES ", \"initial_mode\": \"busy\"}", "initial_mode");
	refused("{" CLASSES ", \"mining\": {\"pools\": []}}", "mining.pools");
	refused("{" CLASSES ", \"mining\": {\"pools\": [{\"url\": \"tcp://x:1\", \"user\": \"u\"}]}}",
		"mining.pools[0].url");
	refused("{" CLASSES ", \"inference\": {\"models\": [\"\"]}}", "inference.models[0]");
	refused("{" CLASSES ", \"inference\": {\"modls\": []}}", "inference");
	refused("{" CLASSES ", \"feeds\": {\"btc_usd\": {\"url\": \"ftp://x\"}}}", "feeds.btc_usd");
	refused("{" CLASSES ", \"policy\": {\"evaluate_s\": 0}}", "policy.evaluate_s");
	refused("{\"classes\": {\"c\": {\"hashrate_hs\": -1}}}", "classes.c");
	refused("{" CLASSES ", \"nodes\": [{\"id\": \"n1\", \"class\": \"nope\"}]}", "nodes[0]");
	unlink(write_tmp("profit.json", "{}"));
	refused("{", "profit_file");
	unlink(write_tmp("profit.json", "{}"));
	hf_errbuf_clear(&eb);
	cr_assert_lt(hf_coord_profit_check("/nonexistent/profit.json", &eb), 0);
	cr_assert_not_null(strstr(eb.msg, "profit_file"), "%s", eb.msg);
	rmdir(tmpdir);
}

/* ---- hf_coord_decide_many ---- */

#define NODES 600 /* over one chunk of 512 */

static char ddir[] = "/tmp/hf-coord-many-XXXXXX";

static const char *dpath(const char *name)
{
	static char p[8][512];
	static int k;
	char *out = p[k++ & 7];
	snprintf(out, sizeof p[0], "%s/%s", ddir, name);
	return out;
}

Test(coord_decide_many, per_node_reasons_holds_and_refusals)
{
	hf_key *ck;
	hf_coord_store *s;
	hf_coord_store_opts so = { 0 };
	hf_errbuf eb;
	char *pem = NULL;
	hf_coord *c = NULL;
	hf_coord_config cfg;

	cr_assert_not_null(mkdtemp(ddir));
	cr_assert_eq(hf_key_generate(&ck, NULL), 0);
	cr_assert_eq(hf_key_write_private_pem(ck, dpath("coord.pem"), NULL), 0);
	cr_assert_eq(hf_key_public_pem(ck, &pem, NULL), 0);
	json_t *trust = json_pack("{s:[{s:s, s:s}], s:i}", "keys", "role", "coordinator",
				  "public_key_pem", pem, "fleet_threshold", 1);
	free(pem);
	cr_assert_eq(json_dump_file(trust, dpath("trust.json"), 0), 0);
	so.path = dpath("coord.db");
	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_store_open_sqlite(&so, &s, &eb), 0, "%s", eb.msg);
	for (int i = 0; i < NODES; i++) {
		hf_coord_node_rec n;
		memset(&n, 0, sizeof n);
		snprintf(n.id, sizeof n.id, "n%04d", i);
		hf_coord_token_hash(n.id, strlen(n.id), n.token_hash);
		n.added_ms = 1;
		cr_assert_eq(hf_coord_store_node_add(s, &n, &eb), 0, "%s", eb.msg);
	}
	cr_assert_eq(hf_coord_store_node_set_hold(s, "n0007", hf_wall_ms() + 3600000, "op", &eb), 0);
	hf_coord_store_free(s);

	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "fleet_id", "f", "signing_key",
			      dpath("coord.pem"), "trust_file", dpath("trust.json"), "database",
			      dpath("coord.db"));
	hf_coord_config_defaults(&cfg);
	cr_assert_eq(hf_coord_config_from_json(&cfg, j, &eb), 0, "%s", eb.msg);
	json_decref(j);
	cr_assert_eq(hf_coord_new(&cfg, &c, &eb), 0, "%s", eb.msg);

	size_t n = NODES + 2;
	hf_coord_decision_req *q = calloc(n, sizeof *q);
	json_t **reason = calloc(n, sizeof *reason);
	char (*ids)[16] = calloc(n, sizeof *ids);
	int *rc = calloc(n, sizeof *rc);
	uint64_t *seq = calloc(n, sizeof *seq), issued = 0;
	json_t *mining = json_loads("{\"pools\":[{\"url\":\"stratum+tcp://p:1\",\"user\":\"u\"}]}", 0, NULL);
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], sizeof ids[i], "n%04zu", i);
		reason[i] = json_pack("{s:s, s:I}", "rule", "switch", "i", (json_int_t)i);
		q[i] = (hf_coord_decision_req){ .node = ids[i], .mode = i % 2 ? "idle" : "mining",
						.mining = i % 2 ? NULL : mining, .reason = reason[i],
						.source = "policy" };
	}
	hf_strlcpy(ids[NODES], "nobody", sizeof ids[0]);  /* unknown */
	q[NODES + 1].mode = "sleep";                      /* invalid */
	hf_errbuf_clear(&eb);
	cr_assert_eq(hf_coord_decide_many(c, q, n, rc, seq, &issued, &eb), 0, "%s", eb.msg);
	cr_assert_gt(issued, 0);
	for (size_t i = 0; i < NODES; i++) {
		if (i == 7) {
			cr_assert_eq(rc[i], HF_ESTATE, "the held node: %d", rc[i]);
			continue;
		}
		cr_assert_eq(rc[i], 0, "%s: %d", ids[i], rc[i]);
		cr_assert_gt(seq[i], 0);
	}
	cr_assert_eq(rc[NODES], HF_ENOTFOUND);
	cr_assert_eq(rc[NODES + 1], HF_EINVAL);
	/* every node's current envelope is its own decision, with its own reason */
	for (size_t i = 0; i < NODES; i += 97) {
		hf_coord_node_view *v = NULL;
		size_t nv = 0;
		cr_assert_eq(hf_coord_node_views(c, hf_wall_ms(), &v, &nv), 0);
		cr_assert_eq(nv, NODES);
		cr_assert_str_eq(v[i].id, ids[i]);
		if (i == 7) {
			cr_assert_not(v[i].has_env);
			cr_assert_gt(v[i].hold_until_ms, hf_wall_ms());
		} else {
			cr_assert(v[i].has_env);
			cr_assert_str_eq(v[i].mode, i % 2 ? "idle" : "mining");
			cr_assert_eq(v[i].issued_ms, issued);
			cr_assert_eq(v[i].seq, seq[i]);
			cr_assert_str_eq(v[i].source, "policy");
		}
		free(v);
	}
	hf_coord_free(c);

	hf_coord_decision_rec *recs = NULL;
	size_t nrec = 0;
	hf_trust *tr;
	cr_assert_eq(hf_trust_load(dpath("trust.json"), &tr, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_open_sqlite(&so, &s, &eb), 0, "%s", eb.msg);
	cr_assert_eq(hf_coord_store_decision_list(s, 0, 0, 0, &recs, &nrec, &eb), 0, "%s", eb.msg);
	cr_assert_eq(nrec, NODES - 1);
	for (size_t k = 0; k < nrec; k++) {
		hf_instr_policy pol = { .fleet = "f", .node = recs[k].node, .now_ms = issued,
					.skew_ms = 1000 };
		hf_instr in;
		hf_instr_refusal why;
		size_t i = (size_t)atoi(recs[k].node + 1);
		cr_assert_eq(hf_instr_verify(tr, recs[k].envelope, strlen(recs[k].envelope), &pol, &in,
					     &why, &eb), 0, "%s: %s", recs[k].node, eb.msg);
		cr_assert(json_equal(in.reason, reason[i]), "%s carries its own reason", recs[k].node);
		cr_assert_eq(recs[k].seq, seq[i]);
		cr_assert_str_eq(recs[k].source, "policy");
		cr_assert_eq(in.mining != NULL, i % 2 == 0);
		hf_instr_clear(&in);
		hf_coord_decision_rec_clear(&recs[k]);
	}
	free(recs);
	hf_coord_store_free(s);
	hf_trust_free(tr);
	for (size_t i = 0; i < n; i++)
		json_decref(reason[i]);
	json_decref(mining);
	json_decref(trust);
	free(q);
	free(reason);
	free(ids);
	free(rc);
	free(seq);
	hf_key_free(ck);
	const char *names[] = { "coord.pem", "trust.json", "coord.db", "coord.db-wal", "coord.db-shm" };
	for (size_t i = 0; i < HF_ARRAY_SIZE(names); i++)
		unlink(dpath(names[i]));
	rmdir(ddir);
}
