/* bench_infer_server: the sections of `hashflop-bench infer` that need a running node: the OIP
 * endpoint over loopback and the mining -> inference switch, measured against a real hashflopd
 * (and the lab pool hashflop-pool for the mining side) that this file starts in a temporary
 * state directory with a generated operator key and trust file, and stops before returning.
 *
 * Measured in one run (see benchmarks/hf_bench.h):
 *   - batch-1 latency: one client, one kept-alive connection, one image per request (binary
 *     tensor extension), back to back: p50 / p99 (targets p50 < 1 ms, p99 < 3 ms), on the
 *     model as configured (dynamic batching on, its max_queue_delay_us) and on a copy with
 *     max_batch_size 1 (batching off: nothing waits for company);
 *   - throughput: `clients` concurrent single-image clients (64), each on its own kept-alive
 *     connection, batching on (the model's config.json) vs off (max_batch_size 1): requests/s
 *     and the ratio (target >= 5x), with the client-side p50 / p99;
 *   - the mining -> inference switch with a warm kernel cache: signed instruction POSTed ->
 *     /v2/health/ready answers 200, p50 over `switches` repetitions after a first (warming)
 *     switch that is reported apart (target p50 < 250 ms).
 * The model repository is a copy of o->model_dir's o->model as "<model>" and, with
 * config.json {"max_batch_size": 1}, "<model>-b1". Request inputs are zeros shaped from the
 * model's metadata (GET /v2/models/NAME: the input's name and its non-batch dims).
 *
 * Threading: the caller's thread, plus one thread per concurrent client during a throughput
 * run (each owns its socket); the node and the pool are child processes (SIGKILLed with the
 * bench if it dies: PR_SET_PDEATHSIG).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_bench.h"
#include "hf_error.h"
#include "hf_instr.h"
#include "hf_util.h"

#define START_WAIT_MS 120000   /* the daemon up, a mode started (models loaded, kernels built) */
#define IO_TIMEOUT_MS 30000    /* one HTTP exchange */
#define MAX_SAMPLES 2000000

typedef struct bench {
	const hf_bench_infer_server_opts *o;
	char dir[PATH_MAX], state[PATH_MAX + 16], models[PATH_MAX + 16], log[PATH_MAX + 32];
	char pool_log[PATH_MAX + 32], cfg[PATH_MAX + 32], trust[PATH_MAX + 32];
	char hashflopd[PATH_MAX], pool_bin[PATH_MAX];
	pid_t node, pool;
	int api_port, infer_port, pool_port;
	hf_key *op;
	uint64_t last_issued;
	/* the request body for one item of the model */
	char *req1;
	size_t req1_len;
	char err[512];
} bench;

/* ---- files and processes ---- */

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok = f && fputs(text, f) >= 0;

	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(b, cap);
			if (!nb)
				break;
			b = nb;
		}
		size_t k = fread(b + n, 1, cap - n - 1, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	if (b)
		b[n] = '\0';
	return b;
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	char buf[65536];
	size_t k;
	int rc = in && out ? 0 : -1;

	while (rc == 0 && (k = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, k, out) != k)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static bool executable_at(char *out, size_t sz, const char *dir, const char *const *rel)
{
	for (; *rel; rel++) {
		snprintf(out, sz, "%s/%s", dir, *rel);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

/* Starts argv with stdout and stderr appended to log; the child dies with us. */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	execv(argv[0], argv);
	_exit(127);
}

/* SIGTERM, then SIGKILL after timeout_ms; the wait status (-1 if it had to be killed). */
static int stop_child(pid_t pid, uint64_t timeout_ms)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	int st = 0;

	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	while (hf_mono_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		hf_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static bool child_alive(pid_t pid)
{
	int st;
	return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

/* ---- HTTP/1.1 over a kept-alive loopback socket ---- */

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

typedef struct conn {
	int fd, port;
	char *buf;
	size_t len, cap;
} conn;

static void conn_close(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static bool send_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

/* One exchange; reconnects once when a kept-alive connection was closed by the server before
 * the request. *status and the body (into c->buf at *body, *blen bytes). */
static bool http_do(conn *c, const char *head, const void *body, size_t blen, int *status,
		    const char **rbody, size_t *rblen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0 && (c->fd = tcp_connect(c->port)) < 0)
			return false;
		c->len = 0;
		if (!send_all(c->fd, head, strlen(head)) || (blen && !send_all(c->fd, body, blen))) {
			close(c->fd);
			c->fd = -1;
			continue;
		}
		uint64_t end = hf_mono_ms() + IO_TIMEOUT_MS;
		size_t hdr = 0, want = 0;
		bool closed = false;
		for (;;) {
			if (hdr && c->len >= want)
				break;
			if (c->len + 65536 > c->cap) {
				size_t cap = c->cap ? c->cap * 2 : 1 << 16;
				char *nb = realloc(c->buf, cap + 1);
				if (!nb)
					return false;
				c->buf = nb;
				c->cap = cap;
			}
			struct pollfd pf = { .fd = c->fd, .events = POLLIN };
			uint64_t now = hf_mono_ms();
			if (now >= end)
				return false;
			if (poll(&pf, 1, (int)(end - now)) <= 0)
				continue;
			ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				closed = true;
				break;
			}
			c->len += (size_t)r;
			c->buf[c->len] = '\0';
			if (!hdr) {
				char *e = strstr(c->buf, "\r\n\r\n");
				if (!e)
					continue;
				hdr = (size_t)(e + 4 - c->buf);
				*e = '\0';
				const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
				want = hdr + (cl ? strtoull(cl + 17, NULL, 10) : 0);
				*e = '\r';
			}
		}
		if (closed) {
			close(c->fd);
			c->fd = -1;
			if (!hdr && c->len == 0 && attempt == 0)
				continue;   /* the server had closed the idle connection */
			if (!hdr)
				return false;
		}
		if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
			return false;
		*rbody = c->buf + hdr;
		*rblen = (hdr <= c->len ? (want < c->len ? want : c->len) : hdr) - hdr;
		if (strcasestr(c->buf, "\r\nConnection: close") && c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		return true;
	}
	return false;
}

/* A one-off exchange with a JSON (or empty) body; the status, -1 on failure; the body copied
 * into out (malloc'ed) when out is not NULL. */
static int http_simple(int port, const char *method, const char *path, const char *body, char **out)
{
	conn c = { .fd = -1, .port = port };
	char head[512];
	int st = -1;
	const char *rb;
	size_t rl;

	snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", method, path,
		 body ? strlen(body) : 0);
	if (!http_do(&c, head, body, body ? strlen(body) : 0, &st, &rb, &rl))
		st = -1;
	else if (out)
		*out = strndup(rb, rl);
	conn_close(&c);
	return st;
}

/* ---- the node ---- */

__attribute__((format(printf, 2, 3))) static int fail(bench *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->err, sizeof b->err, fmt, ap);
	va_end(ap);
	return -1;
}

static int make_repo(bench *b)
{
	const char *m = b->o->model;
	char from[PATH_MAX * 2], to[PATH_MAX * 2];
	struct stat st;

	for (int copy = 0; copy < 2; copy++) {
		snprintf(to, sizeof to, "%s/%s%s", b->models, m, copy ? "-b1" : "");
		if (mkdir(to, 0755) != 0)
			return fail(b, "cannot make %s", to);
		snprintf(from, sizeof from, "%s/%s/model.safetensors", b->o->model_dir, m);
		snprintf(to, sizeof to, "%s/%s%s/model.safetensors", b->models, m, copy ? "-b1" : "");
		if (copy_file(from, to) != 0)
			return fail(b, "cannot copy %s", from);
		snprintf(from, sizeof from, "%s/%s/config.json", b->o->model_dir, m);
		snprintf(to, sizeof to, "%s/%s%s/config.json", b->models, m, copy ? "-b1" : "");
		if (copy)
			write_text(to, "{\"max_batch_size\": 1, \"max_queue_delay_us\": 0}\n");
		else if (stat(from, &st) == 0 && copy_file(from, to) != 0)
			return fail(b, "cannot copy %s", from);
	}
	return 0;
}

static int write_trust(bench *b)
{
	char *pem = NULL;
	hf_errbuf eb = { 0 };

	if (hf_key_generate(&b->op, &eb) < 0 || hf_key_public_pem(b->op, &pem, &eb) < 0)
		return fail(b, "operator key: %s", eb.msg);
	json_t *t = json_pack("{s:[{s:s, s:s}], s:i}", "keys", "role", "operator", "public_key_pem", pem,
			      "fleet_threshold", 1);
	int rc = json_dump_file(t, b->trust, 0);
	json_decref(t);
	free(pem);
	return rc == 0 ? 0 : fail(b, "cannot write %s", b->trust);
}

static int start_pool(bench *b)
{
	char port_file[PATH_MAX + 32], admin_file[PATH_MAX + 32];
	snprintf(port_file, sizeof port_file, "%s/pool.port", b->dir);
	snprintf(admin_file, sizeof admin_file, "%s/pool.admin", b->dir);
	char *argv[] = { b->pool_bin, "--listen", "127.0.0.1:0", "--port-file", port_file,
			 "--admin-port-file", admin_file, "--difficulty", "0.01", NULL };
	b->pool = spawn(argv, b->pool_log);
	uint64_t end = hf_mono_ms() + START_WAIT_MS;
	while (hf_mono_ms() < end && child_alive(b->pool)) {
		char *t = read_text(port_file);
		b->pool_port = t ? atoi(t) : 0;
		free(t);
		if (b->pool_port > 0)
			return 0;
		hf_sleep_ms(10);
	}
	return fail(b, "hashflop-pool did not start (see %s)", b->pool_log);
}

static int write_config(bench *b)
{
	char text[8192];

	snprintf(text, sizeof text,
		 "{\"node_id\": \"bench\", \"fleet_id\": \"bench\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"modes\": {\"initial\": \"idle\", \"drain_timeout_ms\": 10000},\n"
		 " \"control\": {\"trust_file\": \"%s\"},\n"
		 " \"mining\": {\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%d\", \"user\": \"bc1qbench.w1\"}],\n"
		 "   \"backend\": \"cpu\", \"cpu\": {\"threads\": 1}},\n"
		 " \"inference\": {\"model_dir\": \"%s\", \"listen\": \"127.0.0.1\", \"port\": 0, \"device\": \"%s\",\n"
		 "   \"models\": [\"%s\", \"%s-b1\"], \"max_connections\": 1024, \"threads\": 4}}\n",
		 b->state, b->trust, b->pool_port, b->models, b->o->device ? b->o->device : "auto",
		 b->o->model, b->o->model);
	return write_text(b->cfg, text) == 0 ? 0 : fail(b, "cannot write %s", b->cfg);
}

static int start_node(bench *b)
{
	char api[PATH_MAX + 32];
	char *argv[] = { b->hashflopd, "--config", b->cfg, NULL };

	snprintf(api, sizeof api, "%s/api.json", b->state);
	b->node = spawn(argv, b->log);
	uint64_t end = hf_mono_ms() + START_WAIT_MS;
	while (hf_mono_ms() < end && child_alive(b->node)) {
		char *t = read_text(api);
		json_t *j = t ? json_loads(t, 0, NULL) : NULL;
		b->api_port = (int)json_integer_value(json_object_get(j, "port"));
		b->infer_port = (int)json_integer_value(json_object_get(j, "inference_port"));
		json_decref(j);
		free(t);
		if (b->api_port > 0 && b->infer_port > 0)
			return 0;
		hf_sleep_ms(10);
	}
	return fail(b, "hashflopd did not start (or wrote no inference_port; see %s)", b->log);
}

/* POSTs an operator-signed instruction for `mode`; 0 when the node accepted it. */
static int instruct(bench *b, const char *mode)
{
	char payload[1024], *env = NULL, *resp = NULL;
	hf_key *keys[1] = { b->op };
	uint64_t now = hf_wall_ms();
	hf_errbuf eb = { 0 };

	if (now <= b->last_issued)
		now = b->last_issued + 1;
	b->last_issued = now;
	snprintf(payload, sizeof payload,
		 "{\"v\":1,\"fleet\":\"bench\",\"node\":\"bench\",\"issued_ms\":%llu,\"expires_ms\":%llu,"
		 "\"mode\":\"%s\"}", (unsigned long long)now, (unsigned long long)(now + 600000), mode);
	if (hf_instr_sign(payload, strlen(payload), keys, 1, &env, &eb) < 0)
		return fail(b, "sign: %s", eb.msg);
	int st = http_simple(b->api_port, "POST", "/v1/instruction", env, &resp);
	free(env);
	if (st != 200) {
		snprintf(b->err, sizeof b->err, "instruction %s: HTTP %d: %.300s", mode, st, resp ? resp : "");
		free(resp);
		return -1;
	}
	free(resp);
	return 0;
}

/* Waits until /v1/status says mode `mode`, phase running. */
static int wait_mode(bench *b, const char *mode)
{
	uint64_t end = hf_mono_ms() + START_WAIT_MS;
	while (hf_mono_ms() < end && child_alive(b->node)) {
		char *t = NULL;
		if (http_simple(b->api_port, "GET", "/v1/status", NULL, &t) == 200) {
			json_t *j = json_loads(t, 0, NULL);
			const char *m = json_string_value(json_object_get(j, "mode"));
			const char *p = json_string_value(json_object_get(j, "phase"));
			bool ok = m && p && strcmp(m, mode) == 0 && strcmp(p, "running") == 0;
			json_decref(j);
			free(t);
			if (ok)
				return 0;
		} else {
			free(t);
		}
		hf_sleep_ms(5);
	}
	return fail(b, "mode %s not reached (see the node's log)", mode);
}

/* Polls /v2/health/ready on one kept-alive connection until 200; ms since t0_us. */
static double wait_ready_ms(bench *b, uint64_t t0_us)
{
	conn c = { .fd = -1, .port = b->infer_port };
	static const char head[] = "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	uint64_t end = hf_mono_ms() + START_WAIT_MS;
	double ms = -1;
	int st;
	const char *rb;
	size_t rl;

	while (hf_mono_ms() < end) {
		if (http_do(&c, head, NULL, 0, &st, &rb, &rl) && st == 200) {
			ms = (double)(hf_mono_us() - t0_us) / 1000.0;
			break;
		}
		if (!child_alive(b->node))
			break;
		usleep(200);
	}
	conn_close(&c);
	return ms;
}

/* The server's own figures of one model (from /metrics): batches, items, compute seconds. */
typedef struct server_figs {
	double batches, items, compute_s;
} server_figs;

static double metric_of(const char *text, const char *name, const char *model)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof key, "\n%s{model=\"%s\"} ", name, model);
	p = text ? strstr(text, key) : NULL;
	return p ? strtod(p + strlen(key), NULL) : 0;
}

static void server_figs_read(bench *b, const char *model, server_figs *f)
{
	char *t = NULL;

	memset(f, 0, sizeof *f);
	if (http_simple(b->api_port, "GET", "/metrics", NULL, &t) == 200) {
		f->batches = metric_of(t, "hashflop_infer_batch_size_count", model);
		f->items = metric_of(t, "hashflop_infer_batch_size_sum", model);
		f->compute_s = metric_of(t, "hashflop_infer_compute_time_seconds_sum", model);
	}
	free(t);
}

/* The binary request body for one item of the model (zeros; input name and dims from its
 * metadata) into b->req1; the length of its JSON header, or -1. */
static int make_request(bench *b)
{
	char path[256], *t = NULL, hj[512], dims[128] = "1";
	size_t elems = 1, i;
	json_t *d;

	snprintf(path, sizeof path, "/v2/models/%s", b->o->model);
	if (http_simple(b->infer_port, "GET", path, NULL, &t) != 200) {
		free(t);
		return fail(b, "GET /v2/models/%s failed", b->o->model);
	}
	json_t *j = json_loads(t, 0, NULL), *in = json_array_get(json_object_get(j, "inputs"), 0);
	json_t *shape = json_object_get(in, "shape");
	const char *name = json_string_value(json_object_get(in, "name"));
	free(t);
	if (!name || json_array_size(shape) < 2) {
		json_decref(j);
		return fail(b, "the metadata of %s has no input shape", b->o->model);
	}
	json_array_foreach(shape, i, d) {
		json_int_t v = json_integer_value(d);
		if (i == 0)
			continue;
		elems *= v > 0 ? (size_t)v : 1;
		snprintf(dims + strlen(dims), sizeof dims - strlen(dims), ",%lld", (long long)(v > 0 ? v : 1));
	}
	int hl = snprintf(hj, sizeof hj, "{\"inputs\":[{\"name\":\"%s\",\"shape\":[%s],\"datatype\":\"FP32\","
				     "\"parameters\":{\"binary_data_size\":%zu}}],\"parameters\":"
				     "{\"binary_data_output\":true}}", name, dims, elems * 4);
	json_decref(j);
	b->req1_len = (size_t)hl + elems * 4;
	b->req1 = calloc(1, b->req1_len);
	if (!b->req1)
		return fail(b, "out of memory");
	memcpy(b->req1, hj, (size_t)hl);
	return hl;
}

/* ---- measurements ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)ceil(p * (double)n) - 1;
	return v[k < n ? k : n - 1];
}

typedef struct load {
	bench *b;
	const char *model;
	int hdr_len;
	double seconds;
	_Atomic uint64_t end_us;
	atomic_ulong done, failed;
	pthread_barrier_t go;
	double *lat;        /* per thread slices */
	size_t lat_per_thread;
	size_t *nlat;
} load;

typedef struct worker {
	load *l;
	unsigned idx;
} worker;

static void infer_head(char *head, size_t sz, const char *model, int hdr_len, size_t body_len)
{
	snprintf(head, sz, "POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		 "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n"
		 "Content-Length: %zu\r\n\r\n", model, hdr_len, body_len);
}

static void *load_worker(void *arg)
{
	worker *w = arg;
	load *l = w->l;
	conn c = { .fd = -1, .port = l->b->infer_port };
	char head[512];
	double *lat = l->lat + (size_t)w->idx * l->lat_per_thread;
	size_t n = 0;
	int st;
	const char *rb;
	size_t rl;

	infer_head(head, sizeof head, l->model, l->hdr_len, l->b->req1_len);
	/* Connect (and warm the connection) before the clock starts. */
	http_do(&c, head, l->b->req1, l->b->req1_len, &st, &rb, &rl);
	pthread_barrier_wait(&l->go);
	while (atomic_load(&l->end_us) == UINT64_MAX)
		sched_yield();
	for (;;) {
		uint64_t t0 = hf_mono_us();
		uint64_t end = atomic_load(&l->end_us);
		if (t0 >= end)
			break;
		bool ok = http_do(&c, head, l->b->req1, l->b->req1_len, &st, &rb, &rl) && st == 200;
		uint64_t t1 = hf_mono_us();
		if (!ok) {
			atomic_fetch_add(&l->failed, 1);
			if (c.fd < 0)
				hf_sleep_ms(1);
			continue;
		}
		if (t1 <= atomic_load(&l->end_us)) {
			atomic_fetch_add(&l->done, 1);
			if (n < l->lat_per_thread)
				lat[n++] = (double)(t1 - t0) / 1000.0;
		}
	}
	l->nlat[w->idx] = n;
	conn_close(&c);
	return NULL;
}

typedef struct load_result {
	double rps, p50_ms, p99_ms, seconds;
	unsigned long requests, failed;
	double avg_batch, compute_share;   /* the server's: items per batch, compute time / wall */
} load_result;

/* `clients` threads, each sending one-item requests to model back to back for seconds. */
static int run_load(bench *b, const char *model, int hdr_len, unsigned clients, double seconds,
		    load_result *res)
{
	load l = { .b = b, .model = model, .hdr_len = hdr_len, .seconds = seconds };
	pthread_t *th = calloc(clients, sizeof *th);
	worker *ws = calloc(clients, sizeof *ws);
	size_t per = MAX_SAMPLES / clients;
	int rc = 0;
	server_figs f0, f1;

	l.lat = malloc(per * clients * sizeof *l.lat);
	l.lat_per_thread = per;
	l.nlat = calloc(clients, sizeof *l.nlat);
	if (!th || !ws || !l.lat || !l.nlat) {
		rc = fail(b, "out of memory");
		goto out;
	}
	server_figs_read(b, model, &f0);
	pthread_barrier_init(&l.go, NULL, clients + 1);
	atomic_store(&l.end_us, UINT64_MAX);
	for (unsigned i = 0; i < clients; i++) {
		ws[i] = (worker){ .l = &l, .idx = i };
		if (pthread_create(&th[i], NULL, load_worker, &ws[i]) != 0) {
			fprintf(stderr, "hashflop-bench infer: cannot start client thread %u\n", i);
			abort();
		}
	}
	/* Every client has connected and sent one request: the clock starts now for all. */
	pthread_barrier_wait(&l.go);
	atomic_store(&l.end_us, hf_mono_us() + (uint64_t)(seconds * 1e6));
	for (unsigned i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&l.go);
	size_t n = 0;
	for (unsigned i = 0; i < clients; i++) {
		memmove(l.lat + n, l.lat + (size_t)i * per, l.nlat[i] * sizeof *l.lat);
		n += l.nlat[i];
	}
	qsort(l.lat, n, sizeof *l.lat, cmp_double);
	res->requests = atomic_load(&l.done);
	res->failed = atomic_load(&l.failed);
	res->seconds = seconds;
	res->rps = (double)res->requests / seconds;
	res->p50_ms = pct(l.lat, n, 0.50);
	res->p99_ms = pct(l.lat, n, 0.99);
	server_figs_read(b, model, &f1);
	res->avg_batch = f1.batches > f0.batches ? (f1.items - f0.items) / (f1.batches - f0.batches) : 0;
	res->compute_share = (f1.compute_s - f0.compute_s) / seconds;
out:
	free(th);
	free(ws);
	free(l.lat);
	free(l.nlat);
	return rc;
}

static json_t *load_json(const load_result *r)
{
	return json_pack("{s:f, s:f, s:f, s:I, s:I, s:f, s:f, s:f}", "requests_per_second", r->rps,
			 "p50_ms", r->p50_ms, "p99_ms", r->p99_ms, "requests", (json_int_t)r->requests,
			 "failed", (json_int_t)r->failed, "seconds", r->seconds, "server_avg_batch",
			 r->avg_batch, "server_compute_share", r->compute_share);
}

static int measure_switches(bench *b, unsigned n, double *samples, double *cold)
{
	for (unsigned i = 0; i <= n; i++) {
		if (instruct(b, "mining") < 0 || wait_mode(b, "mining") < 0)
			return -1;
		uint64_t t0 = hf_mono_us();
		if (instruct(b, "inference") < 0)
			return -1;
		double ms = wait_ready_ms(b, t0);
		if (ms < 0)
			return fail(b, "not ready after a switch to inference (see %s)", b->log);
		if (i == 0)
			*cold = ms;
		else
			samples[i - 1] = ms;
	}
	return 0;
}

static void print_row(const char *what, const load_result *r, const char *target)
{
	printf("  %-44s %10.0f %9.3f %9.3f %8lu %9.1f %7.0f%%  %s\n", what, r->rps, r->p50_ms, r->p99_ms,
	       r->failed, r->avg_batch, r->compute_share * 100, target);
}

static int measure(bench *b, json_t *report)
{
	const hf_bench_infer_server_opts *o = b->o;
	unsigned clients = o->clients ? o->clients : 64, nsw = o->switches ? o->switches : 10;
	double secs = o->seconds > 0 ? o->seconds : 3;
	char b1[160];
	load_result lat_on, lat_off, thr_on, thr_off;
	uint64_t t0 = hf_mono_us();

	if (instruct(b, "inference") < 0)
		return -1;
	double first = wait_ready_ms(b, t0);
	if (first < 0)
		return fail(b, "inference did not become ready (see %s)", b->log);
	int hl = make_request(b);
	if (hl < 0)
		return -1;
	snprintf(b1, sizeof b1, "%s-b1", o->model);
	if (run_load(b, b1, hl, 1, secs, &lat_off) < 0 || run_load(b, o->model, hl, 1, secs, &lat_on) < 0 ||
	    run_load(b, o->model, hl, clients, secs, &thr_on) < 0 ||
	    run_load(b, b1, hl, clients, secs, &thr_off) < 0)
		return -1;
	double ratio = thr_off.rps > 0 ? thr_on.rps / thr_off.rps : 0;
	double *sw = calloc(nsw, sizeof *sw), cold = 0;
	if (!sw || measure_switches(b, nsw, sw, &cold) < 0) {
		free(sw);
		return -1;
	}
	json_t *samples = json_array();
	for (unsigned i = 0; i < nsw; i++)
		json_array_append_new(samples, json_real(sw[i]));
	qsort(sw, nsw, sizeof *sw, cmp_double);
	double p50 = pct(sw, nsw, 0.5);

	printf("\nOIP endpoint over loopback (%s, binary tensor extension, one image a request, %.1f s each)\n",
	       o->model, secs);
	printf("  %-44s %10s %9s %9s %8s %9s %8s  %s\n", "", "req/s", "p50 ms", "p99 ms", "failed",
	       "batch", "compute", "target");
	print_row("batch 1, 1 client, batching off", &lat_off, "p50 < 1 ms, p99 < 3 ms");
	print_row("batch 1, 1 client, batching on (queue delay)", &lat_on, "");
	char w[80];
	snprintf(w, sizeof w, "%u clients, batching on", clients);
	print_row(w, &thr_on, "");
	snprintf(w, sizeof w, "%u clients, batching off (max_batch_size 1)", clients);
	print_row(w, &thr_off, "");
	printf("  (batch: the server's items per executed batch; compute: its executor time / wall time)\n");
	printf("  dynamic batching: %.2fx the throughput of batching off (target >= 5x)%s\n", ratio,
	       ratio >= 5 ? "" : "  << below target");
	printf("  batch-1 latency: p50 %.3f ms%s, p99 %.3f ms%s\n", lat_off.p50_ms,
	       lat_off.p50_ms < 1 ? "" : " << above 1 ms", lat_off.p99_ms, lat_off.p99_ms < 3 ? "" : " << above 3 ms");
	printf("\nmining -> inference switch (warm kernel cache): instruction POSTed -> /v2/health/ready 200\n");
	printf("  first start (idle -> inference, cold) %.1f ms; first mining -> inference %.1f ms (warming)\n",
	       first, cold);
	printf("  %u switches: p50 %.1f ms, min %.1f ms, max %.1f ms (target p50 < 250 ms)%s\n\n", nsw, p50,
	       sw[0], sw[nsw - 1], p50 < 250 ? "" : "  << above target");

	json_t *http = json_pack("{s:s, s:i, s:o, s:o, s:o, s:o, s:f, s:{s:f, s:f, s:f}}", "model", o->model,
				 "clients", clients, "batch1_batching_off", load_json(&lat_off),
				 "batch1_batching_on", load_json(&lat_on), "concurrent_batching_on",
				 load_json(&thr_on), "concurrent_batching_off", load_json(&thr_off),
				 "batching_ratio", ratio, "targets", "batch1_p50_ms", 1.0, "batch1_p99_ms", 3.0,
				 "batching_ratio", 5.0);
	json_t *swj = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:o, s:f}", "switches", nsw, "p50_ms", p50,
				"min_ms", sw[0], "max_ms", sw[nsw - 1], "first_start_ms", first,
				"first_switch_ms", cold, "samples_ms", samples, "target_p50_ms", 250.0);
	json_object_set_new(report, "http", http);
	json_object_set_new(report, "switch", swj);
	free(sw);
	return 0;
}

static int setup(bench *b)
{
	static const char *const node_rel[] = { "hashflopd", "runtime/node/hashflopd", NULL };
	static const char *const pool_rel[] = { "hashflop-pool", "stratum/hashflop-pool", NULL };
	const char *bin = b->o->bin_dir ? b->o->bin_dir : ".";

	if (!executable_at(b->hashflopd, sizeof b->hashflopd, bin, node_rel))
		return fail(b, "no hashflopd in %s", bin);
	if (!executable_at(b->pool_bin, sizeof b->pool_bin, bin, pool_rel))
		return fail(b, "no hashflop-pool in %s", bin);
	snprintf(b->dir, sizeof b->dir, "%s/hashflop-bench-infer-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(b->dir))
		return fail(b, "cannot make a temporary directory: %s", strerror(errno));
	snprintf(b->state, sizeof b->state, "%s/state", b->dir);
	snprintf(b->models, sizeof b->models, "%s/models", b->dir);
	snprintf(b->log, sizeof b->log, "%s/hashflopd.log", b->dir);
	snprintf(b->pool_log, sizeof b->pool_log, "%s/pool.log", b->dir);
	snprintf(b->cfg, sizeof b->cfg, "%s/node.json", b->dir);
	snprintf(b->trust, sizeof b->trust, "%s/trust.json", b->dir);
	if (mkdir(b->state, 0755) != 0 || mkdir(b->models, 0755) != 0)
		return fail(b, "cannot make %s", b->dir);
	if (make_repo(b) < 0 || write_trust(b) < 0 || start_pool(b) < 0 || write_config(b) < 0 ||
	    start_node(b) < 0 || wait_mode(b, "idle") < 0)
		return -1;
	return 0;
}

int hf_bench_infer_server(const hf_bench_infer_server_opts *o, json_t *report)
{
	bench b = { .o = o, .node = -1, .pool = -1 };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (!o->model || !o->model_dir) {
		fprintf(stderr, "hashflop-bench infer: the server sections need a model and a model directory\n");
		return -1;
	}
	rc = setup(&b);
	if (rc == 0)
		rc = measure(&b, report);
	int nst = stop_child(b.node, 30000), pst = stop_child(b.pool, 10000);
	if (rc == 0 && (nst == -1 || (b.node > 0 && !(WIFEXITED(nst) && WEXITSTATUS(nst) == 0)))) {
		snprintf(b.err, sizeof b.err, "hashflopd did not exit cleanly (status %d; see %s)", nst, b.log);
		rc = -1;
	}
	(void)pst;
	if (rc < 0) {
		fprintf(stderr, "hashflop-bench infer: server sections: %s (kept %s)\n", b.err, b.dir);
		char *t = read_text(b.log);
		if (t) {
			size_t n = strlen(t);
			fprintf(stderr, "--- last of %s ---\n%s\n", b.log, t + (n > 4000 ? n - 4000 : 0));
			free(t);
		}
		json_object_set_new(report, "http_error", json_string(b.err));
	} else if (b.dir[0]) {
		nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	hf_key_free(b.op);
	free(b.req1);
	return rc < 0 ? HF_EIO : 0;
}
