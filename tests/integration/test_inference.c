/* Integration tests: hashflopd in inference mode, end to end with real processes: the committed
 * Fashion-MNIST model served over HTTP (OIP v2) after a signed instruction switched the node
 * there; all 10,000 test images through the endpoint (JSON and binary requests, several
 * concurrent clients so the dynamic batcher merges requests) compared with torch's
 * probabilities; readiness that tells the truth before, during and after switches (idle and
 * mining, with clients sending while the node drains: each request answered 200 with the right
 * outputs or 503 with Retry-After, none lost or hung); /v1/status's inference section and the
 * hashflop_infer_* metrics after known traffic.
 * Every wait has a deadline; figures are printed ("# " lines), never asserted against a
 * number a loaded machine could miss. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_testinfer.h"
#include "hf_testnode.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 60000
#define REQ_TIMEOUT_MS 60000

typedef hf_testnode node;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* GET path on the inference port: the status (0 when the transfer failed); body in r. */
static long get(int port, const char *path, hf_ti_reply *r)
{
	char url[256];

	hf_ti_url(url, sizeof url, port, path);
	return hf_ti_http("GET", url, NULL, NULL, 0, 10000, r) ? r->status : 0;
}

/* /v2/health/ready (or a model's ready) answers `ready`: 200 and {"ready": true}, or 503 and
 * {"ready": false} when the body is JSON. */
static void expect_ready(int port, const char *path, bool ready)
{
	hf_ti_reply r = { 0 };
	long st = get(port, path, &r);

	cr_assert_eq(st, ready ? 200 : 503, "GET %s: %ld (%s) %s", path, st, r.error, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	if (j && json_object_get(j, "ready"))
		cr_assert_eq(json_is_true(json_object_get(j, "ready")), ready, "GET %s: %s", path, r.body);
	json_decref(j);
	hf_ti_reply_clear(&r);
}

static void expect_live(int port)
{
	hf_ti_reply r = { 0 };
	long st = get(port, "/v2/health/live", &r);

	cr_assert_eq(st, 200, "GET /v2/health/live: %ld (%s) %s", st, r.error, r.body);
	hf_ti_reply_clear(&r);
}

/* An infer request that must be refused 503 with Retry-After and {"error"} (not ready). */
static void expect_infer_503(int port, const float *x)
{
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	size_t len, jl;
	void *b = hf_ti_binary_body(x, 1, HF_TI_IN, false, &len, &jl);
	char ra[32], err[512];

	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, REQ_TIMEOUT_MS, &r), "%s", r.error);
	cr_assert_eq(r.status, 503, "infer while not ready: %ld %s", r.status, r.body);
	cr_assert(hf_ti_header(&r, "Retry-After", ra, sizeof ra), "503 without Retry-After: %s", r.headers);
	cr_assert_gt(atoi(ra), 0, "Retry-After: %s", ra);
	cr_assert_not_null(hf_ti_error_text(&r, err, sizeof err), "503 body: %s", r.body);
	free(b);
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
}

/* The expected outputs and the images, loaded once per test. */
typedef struct dataset {
	float *x;          /* [n, 784] */
	float *probs;      /* torch's [n, 10] */
	float *labels;     /* [n] */
	uint8_t *truth;    /* the dataset's own labels */
	size_t n;
	double torch_accuracy;
} dataset;

static void dataset_load(dataset *d)
{
	char path[1024];
	int64_t shape[8];
	size_t nd, cnt, nl;

	memset(d, 0, sizeof *d);
	d->x = hf_ti_fmnist_images(&d->n);
	d->truth = hf_ti_fmnist_labels(&nl);
	cr_assert_eq(nl, d->n);
	hf_ti_expected_path(path, sizeof path);
	d->probs = hf_ti_st_f32(path, "probs", shape, &nd, &cnt);
	cr_assert(nd == 2 && shape[0] == (int64_t)d->n && shape[1] == HF_TI_OUT, "probs shape");
	d->labels = hf_ti_st_f32(path, "labels", shape, &nd, &cnt);
	cr_assert(nd == 1 && shape[0] == (int64_t)d->n, "labels shape");
	for (size_t i = 0; i < d->n; i++)
		cr_assert_eq((unsigned)d->labels[i], d->truth[i], "label %zu: expected file %g, dataset %u", i,
			     (double)d->labels[i], d->truth[i]);
	char *acc = hf_ti_st_meta(path, "torch_accuracy");
	cr_assert_not_null(acc, "%s: no torch_accuracy in __metadata__", path);
	d->torch_accuracy = strtod(acc, NULL);
	cr_assert(d->torch_accuracy > 0.5 && d->torch_accuracy <= 1, "torch_accuracy %s", acc);
	free(acc);
}

static void dataset_free(dataset *d)
{
	free(d->x);
	free(d->probs);
	free(d->labels);
	free(d->truth);
}

static size_t argmax(const float *p)
{
	size_t b = 0;
	for (size_t i = 1; i < HF_TI_OUT; i++)
		if (p[i] > p[b])
			b = i;
	return b;
}

/* Starts n idle with an inference section, checks the not-ready answers, switches it to
 * inference by a signed instruction and checks it is ready at once; the inference port. */
static int serve(node *n, const char *name, const char *extra, const char *model_config,
		 const float *one_image)
{
	hf_ti_node_init(n, name, "idle", NULL, extra, 30000);
	if (model_config)
		hf_ti_model_config(n, HF_TI_MODEL, model_config);
	hf_testnode_trust(n);
	hf_testnode_start(n, NULL);
	int port = hf_ti_port(n);
	json_decref(hf_testnode_wait_mode(n, "idle", 0, WAIT_MS));
	expect_live(port);
	expect_ready(port, "/v2/health/ready", false);
	expect_infer_503(port, one_image);
	hf_ti_switch(n, "inference", hf_ti_seq(n), NULL);
	expect_ready(port, "/v2/health/ready", true);
	expect_ready(port, "/v2/models/" HF_TI_MODEL "/ready", true);
	expect_live(port);
	return port;
}

/* ---- the data the HTTP tests compare against ---- */

/* y[rows, out] = relu?(x[rows, in] W^T + b) in double, W in PyTorch's [out, in] layout. */
static void ref_linear(const double *x, size_t rows, size_t in, const float *w, const float *b,
		       size_t out, bool relu, double *y)
{
	for (size_t r = 0; r < rows; r++)
		for (size_t o = 0; o < out; o++) {
			double acc = b[o];
			for (size_t i = 0; i < in; i++)
				acc += x[r * in + i] * (double)w[o * in + i];
			y[r * out + o] = relu && acc < 0 ? 0 : acc;
		}
}

/* The committed model, the committed expected outputs and the dataset agree with each other,
 * independently of the server: a double-precision forward pass of the model's weights (read
 * here from model.safetensors) over every test image matches torch's probabilities, and
 * torch's accuracy recomputed from them and the dataset's labels is the recorded one. So the
 * HTTP tests below compare against outputs that are right. */
Test(inference, committed_model_expected_outputs_and_dataset_agree, .timeout = 900)
{
	static const char *const names[] = { "fc1", "fc2", "fc3" };
	static const size_t dims[] = { HF_TI_IN, 256, 128, HF_TI_OUT };
	char path[1024];
	float *w[3], *b[3];
	int64_t shape[8];
	size_t nd, cnt;
	dataset d;

	dataset_load(&d);
	snprintf(path, sizeof path, "%s/runtime/infer/models/%s/model.safetensors",
		 getenv("HF_SOURCE_ROOT") ? getenv("HF_SOURCE_ROOT") : ".", HF_TI_MODEL);
	for (int l = 0; l < 3; l++) {
		char name[32];
		snprintf(name, sizeof name, "%s.weight", names[l]);
		w[l] = hf_ti_st_f32(path, name, shape, &nd, &cnt);
		cr_assert(nd == 2 && shape[0] == (int64_t)dims[l + 1] && shape[1] == (int64_t)dims[l], "%s", name);
		snprintf(name, sizeof name, "%s.bias", names[l]);
		b[l] = hf_ti_st_f32(path, name, shape, &nd, &cnt);
		cr_assert(nd == 1 && shape[0] == (int64_t)dims[l + 1], "%s", name);
	}
	char *graph = hf_ti_st_meta(path, "hashflop.graph");
	cr_assert_not_null(graph, "no hashflop.graph in %s", path);
	free(graph);
	double *x = malloc(HF_TI_IN * sizeof *x), h1[256], h2[128], z[HF_TI_OUT], maxdiff = 0;
	size_t torch_correct = 0, agree = 0;
	for (size_t i = 0; i < d.n; i++) {
		for (size_t k = 0; k < HF_TI_IN; k++)
			x[k] = d.x[i * HF_TI_IN + k];
		ref_linear(x, 1, HF_TI_IN, w[0], b[0], 256, true, h1);
		ref_linear(h1, 1, 256, w[1], b[1], 128, true, h2);
		ref_linear(h2, 1, 128, w[2], b[2], HF_TI_OUT, false, z);
		double m = z[0], sum = 0, esum = 0;
		for (size_t k = 1; k < HF_TI_OUT; k++)
			m = z[k] > m ? z[k] : m;
		for (size_t k = 0; k < HF_TI_OUT; k++)
			sum += (z[k] = exp(z[k] - m));
		float p[HF_TI_OUT];
		for (size_t k = 0; k < HF_TI_OUT; k++) {
			p[k] = (float)(z[k] / sum);
			const double e = d.probs[i * HF_TI_OUT + k];
			esum += e;
			maxdiff = fmax(maxdiff, fabs(z[k] / sum - e));
		}
		cr_assert_leq(fabs(esum - 1), 1e-4, "torch's probabilities of image %zu sum to %g", i, esum);
		agree += argmax(p) == argmax(d.probs + i * HF_TI_OUT);
		torch_correct += argmax(d.probs + i * HF_TI_OUT) == d.truth[i];
	}
	double acc = (double)torch_correct / (double)d.n;
	fprintf(stderr, "# reference (double, CPU) vs torch: max |p - p_torch| %.3g, top-1 agreement %zu/%zu; "
		"torch accuracy recomputed %.4f, recorded %.4f\n", maxdiff, agree, d.n, acc, d.torch_accuracy);
	cr_assert_leq(maxdiff, 1e-5, "the committed model does not give torch's probabilities");
	cr_assert_geq(agree, d.n - 2);
	cr_assert_leq(fabs(acc - d.torch_accuracy), 0.00005 + 1e-12, "recorded torch_accuracy %.4f, recomputed %.4f",
		      d.torch_accuracy, acc);
	free(x);
	for (int l = 0; l < 3; l++) {
		free(w[l]);
		free(b[l]);
	}
	dataset_free(&d);
}

/* ---- all 10,000 test images through HTTP ---- */

/* Work items: images [first, first + rows) in one request of the given kind. */
typedef struct chunk {
	size_t first, rows;
	int kind;          /* 0 JSON/JSON, 1 binary/binary, 2 JSON/binary out, 3 binary/JSON out */
} chunk;

typedef struct run {
	const dataset *d;
	int port;
	chunk *chunks;
	size_t nchunks;
	atomic_size_t next;
	float *got;        /* [n, 10] */
	atomic_uint failures;
	atomic_uint requests;
	char why[1024];
	pthread_mutex_t lock;
} run;

static void run_fail(run *r, const char *what, const char *detail, long at)
{
	pthread_mutex_lock(&r->lock);
	if (!r->why[0])
		snprintf(r->why, sizeof r->why, "chunk %ld: %s%s", at, what, detail);
	pthread_mutex_unlock(&r->lock);
	atomic_fetch_add(&r->failures, 1);
}

static void *client_main(void *arg)
{
	run *r = arg;
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply rep = { 0 };
	char why[512];

	for (size_t k; c && (k = atomic_fetch_add(&r->next, 1)) < r->nchunks;) {
		const chunk *ch = &r->chunks[k];
		const float *x = r->d->x + ch->first * HF_TI_IN;
		size_t len, jl = 0;
		bool bin_in = ch->kind == 1 || ch->kind == 3, bin_out = ch->kind == 1 || ch->kind == 2;
		char id[32];
		snprintf(id, sizeof id, "chunk-%zu", k);
		void *body = bin_in ? hf_ti_binary_body(x, ch->rows, HF_TI_IN, bin_out, &len, &jl)
				    : hf_ti_json_body(x, ch->rows, HF_TI_IN, id, bin_out, &len);
		if (!body) {
			run_fail(r, "out of memory", "", (long)k);
			break;
		}
		bool ok = hf_ti_post_infer(c, r->port, HF_TI_MODEL, body, len, jl, REQ_TIMEOUT_MS, &rep);
		free(body);
		atomic_fetch_add(&r->requests, 1);
		if (!ok) {
			run_fail(r, "transfer failed: ", rep.error, (long)k);
			continue;
		}
		if (!hf_ti_parse_probs(&rep, ch->rows, r->got + ch->first * HF_TI_OUT, why, sizeof why)) {
			run_fail(r, why, "", (long)k);
			continue;
		}
		if (!bin_in) {   /* the id is echoed */
			json_t *j = json_loadb(rep.body, rep.len, JSON_DISABLE_EOF_CHECK, NULL);
			const char *eid = json_string_value(json_object_get(j, "id"));
			if (!eid || strcmp(eid, id) != 0)
				run_fail(r, "id not echoed: ", rep.body, (long)k);
			json_decref(j);
		}
	}
	hf_ti_reply_clear(&rep);
	hf_ti_client_free(c);
	return NULL;
}

/* 2,000 single-image requests (the batcher's work), then chunks of 40 images; the kinds
 * rotate so JSON and binary bodies and outputs are all used. */
static size_t make_chunks(size_t n, chunk **out)
{
	chunk *c = calloc(n, sizeof *c);
	size_t k = 0;

	cr_assert_not_null(c);
	for (size_t i = 0; i < n;) {
		size_t rows = i < 2000 ? 1 : 40;
		if (rows > n - i)
			rows = n - i;
		c[k] = (chunk){ .first = i, .rows = rows, .kind = (int)(k % 4) };
		i += rows;
		k++;
	}
	*out = c;
	return k;
}

static json_t *model_status(const json_t *status, const char *model)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(json_object_get(status, "inference"), "models"), i, m)
		if (strcmp(json_string_value(json_object_get(m, "name")) ? json_string_value(json_object_get(m, "name")) : "", model) == 0)
			return m;
	return NULL;
}

static char *metrics_text(const node *n)
{
	char url[256];
	hf_ti_reply r = { 0 };

	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->port);
	cr_assert(hf_ti_http("GET", url, NULL, NULL, 0, 10000, &r), "GET /metrics: %s", r.error);
	cr_assert_eq(r.status, 200);
	char *t = r.body;
	r.body = NULL;
	hf_ti_reply_clear(&r);
	return t;
}

/* The figures of one model that the test checks, from /v1/status and /metrics. */
typedef struct counts {
	double ok, bad, unavail, bad_request, unknown, batches, items, queued, computed, st_requests, st_items;
} counts;

/* started: the server is started, so the run's families (batch size, times) must be there. */
static void counts_read_run(const node *n, counts *c, bool started)
{
	char *t = metrics_text(n);
	const char *m[] = { "model=\"" HF_TI_MODEL "\"", NULL };
	const char *ok[] = { m[0], "code=\"200\"", NULL }, *bad[] = { m[0], "code=\"400\"", NULL };
	const char *br[] = { m[0], "reason=\"bad_request\"", NULL };
	const char *un[] = { m[0], "code=\"503\"", NULL };

	c->ok = hf_ti_metric_sum(t, "hashflop_infer_requests_total", ok);
	c->bad = hf_ti_metric_sum(t, "hashflop_infer_requests_total", bad);
	c->unavail = hf_ti_metric_sum(t, "hashflop_infer_requests_total", un);
	c->bad_request = hf_ti_metric_sum(t, "hashflop_infer_failures_total", br);
	c->unknown = hf_ti_metric_sum(t, "hashflop_infer_unknown_model_requests_total", NULL);
	c->batches = hf_ti_metric_sum(t, "hashflop_infer_batch_size_count", m);
	c->items = hf_ti_metric_sum(t, "hashflop_infer_batch_size_sum", m);
	c->queued = hf_ti_metric_sum(t, "hashflop_infer_queue_time_seconds_count", m);
	c->computed = hf_ti_metric_sum(t, "hashflop_infer_compute_time_seconds_count", m);
	const char *tail = strstr(t, "hashflop_infer_") ? strstr(t, "hashflop_infer_") : t;
	cr_assert(strstr(t, "# TYPE hashflop_infer_requests_total counter\n"), "%.4000s", tail);
	cr_assert(!started || strstr(t, "# TYPE hashflop_infer_batch_size histogram\n"), "%.4000s", tail);
	cr_assert(c->ok >= 0 && c->bad >= 0 && c->bad_request >= 0 && c->unknown >= 0, "a hashflop_infer_* "
		  "family is missing:\n%.4000s", tail);
	cr_assert(!started || (c->batches >= 0 && c->items >= 0 && c->queued >= 0 && c->computed >= 0),
		  "a hashflop_infer_* family of the run is missing:\n%.4000s", tail);
	free(t);
	if (!started)
		return;
	json_t *st = hf_testnode_get(n, "/v1/status"), *ms = model_status(st, HF_TI_MODEL);
	cr_assert_not_null(ms, "no model %s in /v1/status", HF_TI_MODEL);
	c->st_requests = (double)json_integer_value(json_object_get(ms, "requests_total"));
	c->st_items = (double)json_integer_value(json_object_get(ms, "inferences_total"));
	json_decref(st);
}

static void counts_read(const node *n, counts *c)
{
	counts_read_run(n, c, true);
}

Test(inference, fashion_mnist_10000_images_through_http_agree_with_torch, .init = setup, .timeout = 900)
{
	enum { CLIENTS = 8 };
	dataset d;
	node n;
	run r = { 0 };
	pthread_t th[CLIENTS];

	dataset_load(&d);
	/* A queue delay long enough that concurrent single-image requests meet in one batch. */
	int port = serve(&n, "infer-fmnist", NULL, "{\"max_batch_size\": 64, \"max_queue_delay_us\": 2000}",
			 d.x);
	counts before;
	counts_read(&n, &before);
	r.d = &d;
	r.port = port;
	r.nchunks = make_chunks(d.n, &r.chunks);
	r.got = calloc(d.n * HF_TI_OUT, sizeof *r.got);
	cr_assert_not_null(r.got);
	for (size_t i = 0; i < d.n * HF_TI_OUT; i++)
		r.got[i] = NAN;
	pthread_mutex_init(&r.lock, NULL);
	uint64_t t0 = hf_mono_ms();
	for (int i = 0; i < CLIENTS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, client_main, &r), 0);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	uint64_t ms = hf_mono_ms() - t0;
	cr_assert_eq(atomic_load(&r.failures), 0, "%u failed request(s), first: %s", atomic_load(&r.failures),
		     r.why);
	cr_assert_eq(atomic_load(&r.requests), r.nchunks);

	size_t agree = 0, correct = 0, torch_correct = 0, worst = 0;
	double maxdiff = 0;
	for (size_t i = 0; i < d.n; i++) {
		const float *g = r.got + i * HF_TI_OUT, *e = d.probs + i * HF_TI_OUT;
		for (size_t k = 0; k < HF_TI_OUT; k++) {
			double df = fabs((double)g[k] - (double)e[k]);
			cr_assert(isfinite(g[k]), "image %zu: probs[%zu] = %g", i, k, (double)g[k]);
			if (df > maxdiff) {
				maxdiff = df;
				worst = i;
			}
		}
		agree += argmax(g) == argmax(e);
		correct += argmax(g) == d.truth[i];
		torch_correct += argmax(e) == d.truth[i];
	}
	double acc = (double)correct / (double)d.n, agreement = (double)agree / (double)d.n;
	fprintf(stderr, "# fashion-mnist over HTTP: %zu images in %zu requests by %d clients in %llu ms; "
		"top-1 agreement with torch %.4f (%zu/%zu), accuracy %.4f (torch %.4f, recomputed %.4f), "
		"max |p - p_torch| %.3g (image %zu)\n", d.n, r.nchunks, CLIENTS, (unsigned long long)ms,
		agreement, agree, d.n, acc, d.torch_accuracy, (double)torch_correct / (double)d.n, maxdiff,
		worst);
	cr_assert_geq(agreement, 0.999, "top-1 agreement %.4f", agreement);
	cr_assert_leq(fabs(acc - d.torch_accuracy), 0.001 + 1e-9, "accuracy %.4f vs torch %.4f", acc,
		      d.torch_accuracy);
	cr_assert_leq(maxdiff, 1e-4, "max probability difference %g (image %zu)", maxdiff, worst);

	/* The batcher merged concurrent requests: fewer batches than requests. */
	counts after;
	counts_read(&n, &after);
	double batches = after.batches - before.batches, items = after.items - before.items;
	fprintf(stderr, "# batches: %.0f for %zu requests (%.0f items, %.2f per batch)\n", batches,
		r.nchunks, items, batches > 0 ? items / batches : 0);
	cr_assert_eq(items, (double)d.n, "items batched");
	cr_assert_eq(after.ok - before.ok, (double)r.nchunks, "requests answered 200");
	cr_assert_lt(batches, (double)r.nchunks, "every request ran alone: no dynamic batching");

	pthread_mutex_destroy(&r.lock);
	free(r.chunks);
	free(r.got);
	hf_ti_switch(&n, "idle", hf_ti_seq(&n), NULL);
	expect_ready(port, "/v2/health/ready", false);
	expect_live(port);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	dataset_free(&d);
}

/* ---- readiness during switches ---- */

typedef struct drain_run {
	const dataset *d;
	int port;
	atomic_bool stop;
	atomic_uint ok, refused, bad, after_refusal_ok;
	atomic_uint clients_refused;   /* clients that have seen a 503 */
	char why[1024];
	pthread_mutex_t lock;
} drain_run;

static void drain_fail(drain_run *r, const char *what, const hf_ti_reply *rep)
{
	pthread_mutex_lock(&r->lock);
	if (!r->why[0])
		snprintf(r->why, sizeof r->why, "%s: HTTP %ld (%s) %.300s", what, rep->status, rep->error,
			 rep->body ? rep->body : "");
	pthread_mutex_unlock(&r->lock);
	atomic_fetch_add(&r->bad, 1);
}

/* Sends 64-image binary requests back to back until told to stop; every answer must be a
 * correct 200 or a 503 with Retry-After and {"error"}. */
static void *drain_client(void *arg)
{
	drain_run *r = arg;
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply rep = { 0 };
	float *got = malloc(64 * HF_TI_OUT * sizeof *got);
	bool refused = false;
	char why[512], ra[32], err[256];

	for (size_t k = (size_t)(uintptr_t)&rep % 97; c && got && !atomic_load(&r->stop); k++) {
		size_t first = (k * 64) % (r->d->n - 64), len, jl;
		void *b = hf_ti_binary_body(r->d->x + first * HF_TI_IN, 64, HF_TI_IN, true, &len, &jl);
		bool sent = b && hf_ti_post_infer(c, r->port, HF_TI_MODEL, b, len, jl, REQ_TIMEOUT_MS, &rep);
		free(b);
		if (!sent) {
			drain_fail(r, "transfer failed (lost or hung)", &rep);
			continue;
		}
		if (rep.status == 503) {
			if (!hf_ti_header(&rep, "Retry-After", ra, sizeof ra) || atoi(ra) <= 0 ||
			    !hf_ti_error_text(&rep, err, sizeof err))
				drain_fail(r, "503 without Retry-After or {\"error\"}", &rep);
			else
				atomic_fetch_add(&r->refused, 1);
			if (!refused)
				atomic_fetch_add(&r->clients_refused, 1);
			refused = true;
			continue;
		}
		if (!hf_ti_parse_probs(&rep, 64, got, why, sizeof why)) {
			drain_fail(r, why, &rep);
			continue;
		}
		double maxdiff = 0;
		for (size_t i = 0; i < 64 * HF_TI_OUT; i++) {
			double df = fabs((double)got[i] - (double)r->d->probs[first * HF_TI_OUT + i]);
			maxdiff = df > maxdiff || isnan(df) ? (isnan(df) ? INFINITY : df) : maxdiff;
		}
		if (maxdiff > 1e-4)
			drain_fail(r, "wrong outputs during the drain", &rep);
		atomic_fetch_add(&r->ok, 1);
		if (refused)   /* admitted again after a refusal: the drain reopened */
			atomic_fetch_add(&r->after_refusal_ok, 1);
	}
	free(got);
	hf_ti_reply_clear(&rep);
	hf_ti_client_free(c);
	return NULL;
}

/* Probes /v1/status, then readiness and liveness, in turn until told to stop. */
typedef struct prober {
	const node *n;
	int port;
	atomic_bool stop;
	atomic_uint probes, live_bad, ready_true_after_drain, saw_draining, ready_false, ready_false_draining;
	char why[512];
} prober;

static void *probe_main(void *arg)
{
	prober *p = arg;
	char url[256];
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply r = { 0 };
	bool drained = false, draining = false;

	while (c && !atomic_load(&p->stop)) {
		draining = false;
		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/status", p->n->port);
		if (hf_ti_request(c, "GET", url, NULL, NULL, 0, 10000, &r) && r.status == 200) {
			json_t *j = json_loads(r.body, 0, NULL);
			const char *mode = json_string_value(json_object_get(j, "mode"));
			const char *phase = json_string_value(json_object_get(j, "phase"));
			/* Past the drain (releasing, or another mode): readiness must be false from
			 * here on. While the machine says "draining" the server is told a moment later,
			 * so those probes are counted, not judged. */
			if (mode && phase && (strcmp(mode, "inference") != 0 || strcmp(phase, "releasing") == 0))
				drained = true;
			draining = mode && phase && strcmp(mode, "inference") == 0 && strcmp(phase, "draining") == 0;
			if (draining)
				atomic_fetch_add(&p->saw_draining, 1);
			json_decref(j);
		}
		hf_ti_url(url, sizeof url, p->port, "/v2/health/ready");
		bool got = hf_ti_request(c, "GET", url, NULL, NULL, 0, 10000, &r);
		if (got && r.status == 503)
			atomic_fetch_add(&p->ready_false, 1);
		if (draining && got && r.status == 503)
			atomic_fetch_add(&p->ready_false_draining, 1);
		if (drained && (!got || r.status != 503)) {
			atomic_fetch_add(&p->ready_true_after_drain, 1);
			snprintf(p->why, sizeof p->why, "ready %ld (%s) while not serving: %.200s", r.status,
				 r.error, r.body);
		}
		hf_ti_url(url, sizeof url, p->port, "/v2/health/live");
		if (!hf_ti_request(c, "GET", url, NULL, NULL, 0, 10000, &r) || r.status != 200) {
			atomic_fetch_add(&p->live_bad, 1);
			snprintf(p->why, sizeof p->why, "live %ld (%s)", r.status, r.error);
		}
		atomic_fetch_add(&p->probes, 1);
	}
	hf_ti_reply_clear(&r);
	hf_ti_client_free(c);
	return NULL;
}

/* Clients keep sending while the node is switched away from inference: in-flight requests
 * finish with the right outputs, new ones are refused 503 with Retry-After, none is lost or
 * hangs; readiness is false as soon as the node is not serving, liveness always true; a switch
 * back serves again. */
Test(inference, readiness_and_requests_while_draining_to_idle, .init = setup, .timeout = 900)
{
	enum { CLIENTS = 6 };
	dataset d;
	node n;
	drain_run r = { 0 };
	prober p = { 0 };
	pthread_t th[CLIENTS], pt;

	dataset_load(&d);
	int port = serve(&n, "infer-drain", NULL, NULL, d.x);
	r.d = &d;
	r.port = port;
	pthread_mutex_init(&r.lock, NULL);
	p.n = &n;
	p.port = port;
	counts c0, c1;
	counts_read(&n, &c0);
	for (int i = 0; i < CLIENTS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, drain_client, &r), 0);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (atomic_load(&r.ok) < 20 && atomic_load(&r.bad) == 0 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	cr_assert_geq(atomic_load(&r.ok), 20, "requests before the switch: %s", r.why);
	cr_assert_eq(pthread_create(&pt, NULL, probe_main, &p), 0);
	while (atomic_load(&p.probes) < 3 && hf_mono_ms() < end)
		hf_sleep_ms(5);
	unsigned before = atomic_load(&r.ok);

	uint64_t seq = hf_ti_seq(&n);
	json_t *st;
	hf_ti_switch(&n, "idle", seq, &st);
	/* Applied: not ready, right now. */
	expect_ready(port, "/v2/health/ready", false);
	expect_ready(port, "/v2/models/" HF_TI_MODEL "/ready", false);
	expect_live(port);
	/* Every client sees the refusal (each is mid-loop, so this comes promptly). */
	while (atomic_load(&r.clients_refused) < CLIENTS && hf_mono_ms() < end)
		hf_sleep_ms(5);
	atomic_store(&r.stop, true);
	atomic_store(&p.stop, true);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	pthread_join(pt, NULL);
	json_t *ls = json_object_get(st, "last_switch");
	fprintf(stderr, "# drain to idle: %u answered 200 (%u before the switch), %u refused 503, %u probes "
		"(%u saw draining, %u of them then ready false; %u ready false in all); switch: %s\n",
		atomic_load(&r.ok), before, atomic_load(&r.refused), atomic_load(&p.probes),
		atomic_load(&p.saw_draining), atomic_load(&p.ready_false_draining), atomic_load(&p.ready_false), json_dumps(ls, JSON_COMPACT));
	json_decref(st);
	cr_assert_eq(atomic_load(&r.bad), 0, "%u bad answer(s), first: %s", atomic_load(&r.bad), r.why);
	cr_assert_eq(atomic_load(&r.clients_refused), CLIENTS, "clients refused: %u",
		     atomic_load(&r.clients_refused));
	cr_assert_gt(atomic_load(&r.refused), 0);
	cr_assert_eq(atomic_load(&r.after_refusal_ok), 0, "a request was served after a refusal");
	cr_assert_eq(atomic_load(&p.live_bad), 0, "%s", p.why);
	cr_assert_eq(atomic_load(&p.ready_true_after_drain), 0, "%s", p.why);
	cr_assert_gt(atomic_load(&p.ready_false), 0, "readiness never went false");
	/* The node answered 200 exactly as often as the clients saw one: nothing lost. */
	counts_read_run(&n, &c1, false);
	fprintf(stderr, "# node's counts: %g answered 200, %g refused 503 while draining (the rest came "
		"once stopped)\n", c1.ok - c0.ok, c1.unavail - c0.unavail);
	cr_assert_eq(c1.ok - c0.ok, atomic_load(&r.ok), "200s: node %g, clients %u", c1.ok - c0.ok,
		     atomic_load(&r.ok));
	cr_assert_leq(c1.unavail - c0.unavail, atomic_load(&r.refused), "503s: node %g, clients %u",
		      c1.unavail - c0.unavail, atomic_load(&r.refused));

	/* Back to inference: ready again and serving. */
	hf_ti_switch(&n, "inference", hf_ti_seq(&n), NULL);
	expect_ready(port, "/v2/health/ready", true);
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply rep = { 0 };
	float got[HF_TI_OUT];
	char why[512];
	size_t len, jl;
	void *b = hf_ti_binary_body(d.x + 5 * HF_TI_IN, 1, HF_TI_IN, false, &len, &jl);
	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, jl, REQ_TIMEOUT_MS, &rep), "%s", rep.error);
	cr_assert(hf_ti_parse_probs(&rep, 1, got, why, sizeof why), "%s", why);
	for (int k = 0; k < HF_TI_OUT; k++)
		cr_assert_leq(fabs((double)got[k] - (double)d.probs[5 * HF_TI_OUT + k]), 1e-4);
	free(b);
	hf_ti_reply_clear(&rep);
	hf_ti_client_free(c);
	pthread_mutex_destroy(&r.lock);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	dataset_free(&d);
}

/* Mining -> inference -> mining with the lab pool: not ready while mining, ready once the
 * instruction is applied, answering with the right outputs, not ready again once back to
 * mining (which mines again). */
Test(inference, mining_to_inference_and_back, .init = setup, .timeout = 900)
{
	hf_testpool pool = { 0 };
	dataset d;
	node n;
	char mining[512];

	dataset_load(&d);
	hf_testpool_start(&pool, "infer-mining-pool", 0, "0.001", NULL, WAIT_MS);
	snprintf(mining, sizeof mining,
		 "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%u\", \"user\": \"bc1qtest.w1\"}], "
		 "\"backend\": \"cpu\", \"cpu\": {\"threads\": 1}, \"status_interval_s\": 1}", pool.port);
	hf_ti_node_init(&n, "infer-mining", "mining", mining, NULL, 30000);
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	int port = hf_ti_port(&n);
	json_decref(hf_testnode_wait_mode(&n, "mining", 0, WAIT_MS));
	json_decref(hf_testnode_wait_mining(&n, "shares.accepted", 1, WAIT_MS));
	expect_live(port);
	expect_ready(port, "/v2/health/ready", false);
	expect_infer_503(port, d.x);

	json_t *st;
	uint64_t seq = hf_ti_switch(&n, "inference", hf_ti_seq(&n), &st);
	expect_ready(port, "/v2/health/ready", true);
	fprintf(stderr, "# mining -> inference: %s\n",
		json_dumps(json_object_get(st, "last_switch"), JSON_COMPACT));
	json_decref(st);
	hf_ti_client *c = hf_ti_client_new();
	hf_ti_reply rep = { 0 };
	float got[3 * HF_TI_OUT];
	char why[512];
	size_t len;
	char *b = hf_ti_json_body(d.x + 100 * HF_TI_IN, 3, HF_TI_IN, "mine", false, &len);
	cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, b, len, 0, REQ_TIMEOUT_MS, &rep), "%s", rep.error);
	cr_assert(hf_ti_parse_probs(&rep, 3, got, why, sizeof why), "%s", why);
	for (int k = 0; k < 3 * HF_TI_OUT; k++)
		cr_assert_leq(fabs((double)got[k] - (double)d.probs[100 * HF_TI_OUT + k]), 1e-4);
	free(b);
	hf_ti_reply_clear(&rep);
	hf_ti_client_free(c);

	hf_ti_switch(&n, "mining", seq, NULL);
	expect_ready(port, "/v2/health/ready", false);
	expect_infer_503(port, d.x);
	expect_live(port);
	long long before = hf_testpool_stat(&pool, "accepted", NULL);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	while (hf_testpool_stat(&pool, "accepted", NULL) <= before && hf_mono_ms() < end)
		hf_sleep_ms(50);
	cr_assert_gt(hf_testpool_stat(&pool, "accepted", NULL), before, "no share after the switch back");
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	hf_testpool_free(&pool, WAIT_MS, false);
	dataset_free(&d);
}

/* ---- /v1/status and /metrics after known traffic ---- */

Test(inference, status_section_and_metrics_count_known_traffic, .init = setup, .timeout = 900)
{
	dataset d;
	node n;
	hf_ti_client *c;
	hf_ti_reply rep = { 0 };
	float got[5 * HF_TI_OUT];
	char why[512];
	counts a, b;

	dataset_load(&d);
	int port = serve(&n, "infer-metrics", NULL, "{\"max_batch_size\": 16}", d.x);
	counts_read(&n, &a);   /* after the start (warm-up included), before the traffic */
	c = hf_ti_client_new();
	/* 3 JSON requests of 1 image, 4 binary ones of 5: 7 requests, 23 inferences. */
	for (int i = 0; i < 7; i++) {
		size_t rows = i < 3 ? 1 : 5, len, jl = 0;
		const float *x = d.x + (size_t)i * 5 * HF_TI_IN;
		void *body = i < 3 ? (void *)hf_ti_json_body(x, rows, HF_TI_IN, NULL, false, &len)
				   : hf_ti_binary_body(x, rows, HF_TI_IN, true, &len, &jl);
		cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, body, len, jl, REQ_TIMEOUT_MS, &rep), "%s", rep.error);
		cr_assert(hf_ti_parse_probs(&rep, rows, got, why, sizeof why), "%s", why);
		free(body);
	}
	/* 2 bad requests (a wrong shape) and 1 for a model that does not exist. */
	static const char bad[] = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\","
				  "\"data\":[1,2,3]}]}";
	for (int i = 0; i < 2; i++) {
		cr_assert(hf_ti_post_infer(c, port, HF_TI_MODEL, bad, strlen(bad), 0, REQ_TIMEOUT_MS, &rep));
		cr_assert_eq(rep.status, 400, "%s", rep.body);
	}
	cr_assert(hf_ti_post_infer(c, port, "no-such-model", bad, strlen(bad), 0, REQ_TIMEOUT_MS, &rep));
	cr_assert_eq(rep.status, 404, "%s", rep.body);
	hf_ti_reply_clear(&rep);
	hf_ti_client_free(c);

	json_t *st = hf_testnode_get(&n, "/v1/status");
	json_t *inf = json_object_get(st, "inference"), *m = model_status(st, HF_TI_MODEL);
	char *dump = json_dumps(inf, JSON_COMPACT);
	fprintf(stderr, "# /v1/status inference: %s\n", dump);
	cr_assert_not_null(inf, "no inference section in /v1/status");
	cr_assert_str_eq(json_string_value(json_object_get(inf, "state")), "ready", "%s", dump);
	cr_assert_eq(json_integer_value(json_object_get(inf, "port")), port, "%s", dump);
	cr_assert_not_null(m, "no model %s in %s", HF_TI_MODEL, dump);
	cr_assert_str_eq(json_string_value(json_object_get(m, "state")), "ready", "%s", dump);
	cr_assert_eq(json_integer_value(json_object_get(m, "max_batch_size")), 16, "%s", dump);
	cr_assert_eq(json_integer_value(json_object_get(m, "queue_depth")), 0, "%s", dump);
	cr_assert(json_is_number(json_object_get(m, "inferences_per_second")), "%s", dump);
	free(dump);
	json_decref(st);

	counts_read(&n, &b);
	char *t = metrics_text(&n);
	fprintf(stderr, "# metrics:\n");
	for (const char *p = t; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t ll = e ? (size_t)(e - p) : strlen(p);
		if (strncmp(p, "hashflop_infer_", 15) == 0 && !memmem(p, ll, "_bucket", 7))
			fprintf(stderr, "#   %.*s\n", (int)ll, p);
		p = e ? e + 1 : NULL;
	}
	free(t);
	cr_assert_eq(b.ok - a.ok, 7, "requests answered 200: %g", b.ok - a.ok);
	cr_assert_eq(b.bad - a.bad, 2, "requests answered 400: %g", b.bad - a.bad);
	cr_assert_eq(b.bad_request - a.bad_request, 2);
	cr_assert_eq(b.unknown - a.unknown, 1);
	cr_assert_eq(b.items - a.items, 23, "items batched: %g", b.items - a.items);
	cr_assert(b.batches - a.batches >= 1 && b.batches - a.batches <= 7, "batches: %g", b.batches - a.batches);
	cr_assert_eq(b.computed - a.computed, b.batches - a.batches, "a compute time per batch");
	cr_assert_eq(b.queued - a.queued, 7, "a queue time per request");
	cr_assert_eq(b.st_requests - a.st_requests, 9, "status requests_total: the 7 and the 2 bad ones");
	cr_assert_eq(b.st_items - a.st_items, 23);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
	dataset_free(&d);
}
