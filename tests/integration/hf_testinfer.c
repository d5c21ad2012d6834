/* hf_testinfer: inference mode in integration tests (see hf_testinfer.h).
 * Threading: the setup helpers assert (test thread); clients and bodies are reentrant.
 */
#include "hf_testinfer.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include "hf_util.h"

struct hf_ti_client {
	CURL *curl;
};

void hf_ti_reply_clear(hf_ti_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
}

bool hf_ti_header(const hf_ti_reply *r, const char *name, char *out, size_t sz)
{
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);
		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = (size_t)(p + ll - v);
			if (vl >= sz)
				vl = sz - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
		p = eol ? eol + 2 : NULL;
	}
	return false;
}

const char *hf_ti_error_text(const hf_ti_reply *r, char *out, size_t sz)
{
	json_t *j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *s = json_string_value(json_object_get(j, "error"));
	const char *res = NULL;

	if (s && s[0] && json_object_size(j) >= 1) {
		hf_strlcpy(out, s, sz);
		res = out;
	}
	json_decref(j);
	return res;
}

hf_ti_client *hf_ti_client_new(void)
{
	hf_ti_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return NULL;
	}
	return c;
}

void hf_ti_client_free(hf_ti_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	hf_ti_reply *r = ud;
	size_t k = sz * n;

	if (r->len + k + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + k + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return 0;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	hf_ti_reply *r = ud;
	size_t k = sz * n;

	/* A new status line (100 Continue, then the final one) starts the headers afresh. */
	if (k >= 5 && strncmp(p, "HTTP/", 5) == 0)
		r->hlen = 0;
	if (r->hlen + k < sizeof r->headers) {
		memcpy(r->headers + r->hlen, p, k);
		r->hlen += k;
		r->headers[r->hlen] = '\0';
	}
	return k;
}

bool hf_ti_request(hf_ti_client *c, const char *method, const char *url, const char *const *headers,
		   const void *body, size_t len, long timeout_ms, hf_ti_reply *r)
{
	struct curl_slist *hl = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = c->curl;
	CURLcode cc;

	hf_ti_reply_clear(r);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	hl = curl_slist_append(hl, "Expect:");
	for (const char *const *p = headers; p && *p; p++)
		hl = curl_slist_append(hl, *p);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK)
		snprintf(r->error, sizeof r->error, "%s: %s", curl_easy_strerror(cc), errbuf);
	if (!r->body) {
		r->body = calloc(1, 1);
		r->cap = r->body ? 1 : 0;
	}
	return cc == CURLE_OK;
}

bool hf_ti_http(const char *method, const char *url, const char *const *headers, const void *body,
		size_t len, long timeout_ms, hf_ti_reply *r)
{
	hf_ti_client *c = hf_ti_client_new();
	bool ok;

	if (!c) {
		memset(r, 0, sizeof *r);
		snprintf(r->error, sizeof r->error, "no curl handle");
		return false;
	}
	ok = hf_ti_request(c, method, url, headers, body, len, timeout_ms, r);
	hf_ti_client_free(c);
	return ok;
}

/* ---- the node ---- */

static const char *source_root(void)
{
	const char *s = getenv("HF_SOURCE_ROOT");
	return s && s[0] ? s : ".";
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out;
	char buf[65536];
	size_t k;

	cr_assert_not_null(in, "cannot read %s: %s", from, strerror(errno));
	out = fopen(to, "wb");
	cr_assert_not_null(out, "cannot write %s: %s", to, strerror(errno));
	while ((k = fread(buf, 1, sizeof buf, in)) > 0)
		cr_assert_eq(fwrite(buf, 1, k, out), k, "cannot write %s", to);
	cr_assert_eq(ferror(in), 0, "cannot read %s", from);
	fclose(in);
	cr_assert_eq(fclose(out), 0, "cannot write %s", to);
}

/* Copies the regular files of every subdirectory of from (one level: NAME/model.safetensors,
 * NAME/config.json) into to. */
static void copy_repo(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *e;
	unsigned models = 0;

	cr_assert_not_null(d, "no model repository at %s: %s", from, strerror(errno));
	cr_assert(mkdir(to, 0755) == 0 || errno == EEXIST, "mkdir %s", to);
	while ((e = readdir(d))) {
		char sf[2048], df[2048];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(sf, sizeof sf, "%s/%s", from, e->d_name);
		if (stat(sf, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		snprintf(df, sizeof df, "%s/%s", to, e->d_name);
		cr_assert(mkdir(df, 0755) == 0 || errno == EEXIST, "mkdir %s", df);
		DIR *m = opendir(sf);
		cr_assert_not_null(m, "%s", sf);
		for (struct dirent *f; (f = readdir(m));) {
			char a[3072], b[3072];
			snprintf(a, sizeof a, "%s/%s", sf, f->d_name);
			snprintf(b, sizeof b, "%s/%s", df, f->d_name);
			if (f->d_name[0] != '.' && stat(a, &st) == 0 && S_ISREG(st.st_mode))
				copy_file(a, b);
		}
		closedir(m);
		models++;
	}
	closedir(d);
	cr_assert_gt(models, 0, "no model in %s", from);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_geq(fputs(text, f), 0, "cannot write %s", path);
	cr_assert_eq(fclose(f), 0, "cannot write %s", path);
}

void hf_ti_node_init(hf_testnode *n, const char *name, const char *initial, const char *mining,
		     const char *inference_extra, unsigned drain_timeout_ms)
{
	char *text = malloc(16384), src[1024], models[1200];

	cr_assert_not_null(text);
	hf_testnode_init(n, name, initial, mining, drain_timeout_ms);
	snprintf(src, sizeof src, "%s/runtime/infer/models", source_root());
	snprintf(models, sizeof models, "%s/models", n->dir);
	copy_repo(src, models);
	snprintf(text, 16384,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0},\n"
		 " \"modes\": {\"initial\": \"%s\", \"drain_timeout_ms\": %u},\n"
		 " \"control\": {\"trust_file\": \"%s\"},\n"
		 " \"inference\": {\"model_dir\": \"%s\", \"listen\": \"127.0.0.1\", \"port\": 0%s%s}%s%s}\n",
		 n->state, initial, drain_timeout_ms, n->trust, models,
		 inference_extra ? ", " : "", inference_extra ? inference_extra : "",
		 mining ? ",\n \"mining\": " : "", mining ? mining : "");
	write_text(n->cfg, text);
	free(text);
}

void hf_ti_model_config(const hf_testnode *n, const char *model, const char *text)
{
	char path[2048];

	snprintf(path, sizeof path, "%s/models/%s/config.json", n->dir, model);
	write_text(path, text);
}

int hf_ti_port(const hf_testnode *n)
{
	char path[1100];
	uint64_t end = hf_mono_ms() + HF_TESTNODE_WAIT_MS;
	char *last = NULL;

	snprintf(path, sizeof path, "%s/api.json", n->state);
	for (;;) {
		free(last);
		last = hf_test_read_file(path);
		json_t *j = last ? json_loads(last, 0, NULL) : NULL;
		json_int_t p = json_integer_value(json_object_get(j, "inference_port"));
		json_decref(j);
		if (p > 0 && p < 65536) {
			free(last);
			return (int)p;
		}
		cr_assert_lt(hf_mono_ms(), end, "no inference_port in %s: %s; log:\n%s", path,
			     last ? last : "(missing)", hf_test_read_file(n->log));
		hf_sleep_ms(10);
	}
}

void hf_ti_url(char *out, size_t sz, int port, const char *path)
{
	snprintf(out, sz, "http://127.0.0.1:%d%s", port, path);
}

uint64_t hf_ti_seq(const hf_testnode *n)
{
	json_t *j = hf_testnode_get(n, "/v1/status");
	uint64_t s = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "last_switch"), "seq"));

	json_decref(j);
	return s;
}

uint64_t hf_ti_switch(hf_testnode *n, const char *mode, uint64_t after_seq, json_t **status_out)
{
	hf_testnode_instruct(n, mode, NULL);
	json_t *j = hf_testnode_wait_mode(n, mode, after_seq, HF_TI_START_MS);
	uint64_t s = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "last_switch"), "seq"));

	if (status_out)
		*status_out = j;
	else
		json_decref(j);
	return s;
}

/* ---- data ---- */

static uint8_t *gz_read_all(const char *path, size_t *len)
{
	gzFile g = gzopen(path, "rb");
	size_t cap = 1 << 20, n = 0;
	uint8_t *b = malloc(cap);
	int k;

	cr_assert_not_null(g, "cannot open %s (Debian package dataset-fashion-mnist)", path);
	cr_assert_not_null(b);
	while ((k = gzread(g, b + n, (unsigned)(cap - n))) > 0) {
		n += (size_t)k;
		if (n == cap) {
			cap *= 2;
			b = realloc(b, cap);
			cr_assert_not_null(b);
		}
	}
	int err = 0;
	const char *msg = gzerror(g, &err);
	cr_assert(k == 0 && (err == Z_OK || err == Z_STREAM_END), "%s: %s", path, msg);
	gzclose(g);
	*len = n;
	return b;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

float *hf_ti_fmnist_images(size_t *n)
{
	size_t len;
	uint8_t *b = gz_read_all(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", &len);

	cr_assert_geq(len, 16);
	cr_assert_eq(be32(b), 0x00000803u, "not an idx3 ubyte file");
	uint32_t cnt = be32(b + 4), rows = be32(b + 8), cols = be32(b + 12);
	cr_assert(cnt == HF_TI_IMAGES && rows == 28 && cols == 28, "%u images of %ux%u", cnt, rows, cols);
	cr_assert_eq(len, 16 + (size_t)cnt * HF_TI_IN);
	float *x = malloc((size_t)cnt * HF_TI_IN * sizeof *x);
	cr_assert_not_null(x);
	for (size_t i = 0; i < (size_t)cnt * HF_TI_IN; i++)
		x[i] = (float)b[16 + i] / 255.0f;
	free(b);
	*n = cnt;
	return x;
}

uint8_t *hf_ti_fmnist_labels(size_t *n)
{
	size_t len;
	uint8_t *b = gz_read_all(FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", &len);

	cr_assert_geq(len, 8);
	cr_assert_eq(be32(b), 0x00000801u, "not an idx1 ubyte file");
	uint32_t cnt = be32(b + 4);
	cr_assert(cnt == HF_TI_IMAGES && len == 8 + (size_t)cnt, "%u labels", cnt);
	memmove(b, b + 8, cnt);
	*n = cnt;
	return b;
}

/* The parsed header of a safetensors file and its data section. */
typedef struct st_file {
	uint8_t *bytes;
	size_t len;
	json_t *header;
	const uint8_t *data;
	size_t data_len;
} st_file;

static void st_open(const char *path, st_file *f)
{
	FILE *in = fopen(path, "rb");
	long sz;
	json_error_t je;

	memset(f, 0, sizeof *f);
	cr_assert_not_null(in, "cannot open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(in, 0, SEEK_END), 0);
	sz = ftell(in);
	cr_assert_gt(sz, 8, "%s: too short", path);
	rewind(in);
	f->bytes = malloc((size_t)sz);
	cr_assert_not_null(f->bytes);
	cr_assert_eq(fread(f->bytes, 1, (size_t)sz, in), (size_t)sz, "%s: short read", path);
	fclose(in);
	f->len = (size_t)sz;
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | f->bytes[i];
	cr_assert_leq(hl, f->len - 8, "%s: header length %llu past the file", path, (unsigned long long)hl);
	f->header = json_loadb((const char *)f->bytes + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
	cr_assert_not_null(f->header, "%s: header: %s", path, je.text);
	f->data = f->bytes + 8 + hl;
	f->data_len = f->len - 8 - (size_t)hl;
}

static void st_close(st_file *f)
{
	json_decref(f->header);
	free(f->bytes);
	memset(f, 0, sizeof *f);
}

float *hf_ti_st_f32(const char *path, const char *name, int64_t *shape, size_t *ndim, size_t *count)
{
	st_file f;
	st_open(path, &f);
	json_t *t = json_object_get(f.header, name), *sh = json_object_get(t, "shape");
	json_t *off = json_object_get(t, "data_offsets");
	cr_assert_not_null(t, "%s: no tensor %s", path, name);
	cr_assert_str_eq(json_string_value(json_object_get(t, "dtype")), "F32", "%s: %s", path, name);
	cr_assert(json_is_array(sh) && json_array_size(sh) <= 8 && json_array_size(off) == 2);
	uint64_t cnt = 1;
	*ndim = json_array_size(sh);
	for (size_t i = 0; i < *ndim; i++) {
		json_int_t d = json_integer_value(json_array_get(sh, i));
		cr_assert_geq(d, 0);
		shape[i] = d;
		cnt *= (uint64_t)d;
	}
	json_int_t a = json_integer_value(json_array_get(off, 0)), b = json_integer_value(json_array_get(off, 1));
	cr_assert(a >= 0 && b >= a && (uint64_t)b <= f.data_len && (uint64_t)(b - a) == cnt * 4,
		  "%s: %s: offsets %lld..%lld for %llu floats", path, name, (long long)a, (long long)b,
		  (unsigned long long)cnt);
	float *x = malloc(cnt ? cnt * 4 : 1);
	cr_assert_not_null(x);
	memcpy(x, f.data + a, cnt * 4);   /* little-endian host (x86-64, arm64) */
	*count = cnt;
	st_close(&f);
	return x;
}

char *hf_ti_st_meta(const char *path, const char *key)
{
	st_file f;
	st_open(path, &f);
	const char *v = json_string_value(json_object_get(json_object_get(f.header, "__metadata__"), key));
	char *r = v ? strdup(v) : NULL;

	st_close(&f);
	return r;
}

void hf_ti_expected_path(char *out, size_t sz)
{
	snprintf(out, sz, "%s/tests/data/fashion-mnist/expected.safetensors", source_root());
}

/* ---- OIP bodies ---- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_need(sbuf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(sbuf *b, const char *s, size_t n)
{
	sb_need(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void header_json(sbuf *b, size_t rows, size_t cols, const char *id, bool binary_in,
			bool binary_out)
{
	char t[512];

	sb_str(b, "{");
	if (id) {
		snprintf(t, sizeof t, "\"id\":\"%s\",", id);
		sb_str(b, t);
	}
	snprintf(t, sizeof t, "\"inputs\":[{\"name\":\"input\",\"shape\":[%zu,%zu],\"datatype\":\"FP32\"",
		 rows, cols);
	sb_str(b, t);
	if (binary_in) {
		snprintf(t, sizeof t, ",\"parameters\":{\"binary_data_size\":%zu}}]", rows * cols * 4);
		sb_str(b, t);
	}
}

char *hf_ti_json_body(const float *x, size_t rows, size_t cols, const char *id, bool binary_out,
		      size_t *len)
{
	sbuf b = { 0 };
	char t[32];

	header_json(&b, rows, cols, id, false, binary_out);
	sb_str(&b, ",\"data\":[");
	for (size_t i = 0; i < rows * cols; i++) {
		int k = snprintf(t, sizeof t, "%s%.9g", i ? "," : "", (double)x[i]);
		sb_add(&b, t, (size_t)k);
	}
	sb_str(&b, "]}]");
	if (binary_out)
		sb_str(&b, ",\"outputs\":[{\"name\":\"probs\",\"parameters\":{\"binary_data\":true}}]");
	sb_str(&b, "}");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void *hf_ti_binary_body(const float *x, size_t rows, size_t cols, bool binary_out, size_t *len,
			size_t *json_len)
{
	sbuf b = { 0 };

	header_json(&b, rows, cols, NULL, true, binary_out);
	if (binary_out)
		sb_str(&b, ",\"parameters\":{\"binary_data_output\":true}");
	sb_str(&b, "}");
	*json_len = b.len;
	sb_add(&b, (const char *)x, rows * cols * 4);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

bool hf_ti_post_infer(hf_ti_client *c, int port, const char *model, const void *body, size_t len,
		      size_t json_len, long timeout_ms, hf_ti_reply *r)
{
	char url[256], path[160], hdr[96];
	const char *hj[] = { "Content-Type: application/json", NULL };
	const char *hb[] = { "Content-Type: application/octet-stream", hdr, NULL };

	snprintf(path, sizeof path, "/v2/models/%s/infer", model);
	hf_ti_url(url, sizeof url, port, path);
	snprintf(hdr, sizeof hdr, "Inference-Header-Content-Length: %zu", json_len);
	return hf_ti_request(c, "POST", url, json_len ? hb : hj, body, len, timeout_ms, r);
}

static const char *str0(const json_t *s)
{
	const char *v = json_string_value(s);
	return v ? v : "";
}

/* A JSON number, or one of the strings the protocol uses for non-finite values. */
static bool json_float(const json_t *v, float *out)
{
	const char *s = json_string_value(v);

	if (json_is_number(v)) {
		*out = (float)json_number_value(v);
		return true;
	}
	if (!s)
		return false;
	if (strcmp(s, "NaN") == 0)
		*out = NAN;
	else if (strcmp(s, "Inf") == 0 || strcmp(s, "Infinity") == 0)
		*out = INFINITY;
	else if (strcmp(s, "-Inf") == 0 || strcmp(s, "-Infinity") == 0)
		*out = -INFINITY;
	else
		return false;
	return true;
}

/* Flattens nested arrays of data into out (at most cap values). */
static bool flatten(const json_t *d, float *out, size_t cap, size_t *n)
{
	size_t i;
	const json_t *v;

	json_array_foreach(d, i, v) {
		if (json_is_array(v)) {
			if (!flatten(v, out, cap, n))
				return false;
			continue;
		}
		if (*n >= cap || !json_float(v, &out[*n]))
			return false;
		(*n)++;
	}
	return true;
}

bool hf_ti_parse_probs(const hf_ti_reply *r, size_t rows, float *out, char *why, size_t whysz)
{
	char hv[32];
	size_t jl = r->len;
	json_error_t je;
	bool ok = false;

	if (r->status != 200) {
		snprintf(why, whysz, "HTTP %ld: %.300s", r->status, r->body ? r->body : "");
		return false;
	}
	if (hf_ti_header(r, "Inference-Header-Content-Length", hv, sizeof hv)) {
		char *end;
		unsigned long long v = strtoull(hv, &end, 10);
		if (*end || v > r->len) {
			snprintf(why, whysz, "Inference-Header-Content-Length %s of a %zu-byte body", hv, r->len);
			return false;
		}
		jl = (size_t)v;
	}
	json_t *j = json_loadb(r->body, jl, 0, &je);
	if (!j) {
		snprintf(why, whysz, "not JSON (%s): %.200s", je.text, r->body);
		return false;
	}
	json_t *outs = json_object_get(j, "outputs"), *o = NULL;
	size_t i, boff = jl;
	json_t *v;
	json_array_foreach(outs, i, v) {
		size_t bsz = (size_t)json_integer_value(json_object_get(json_object_get(v, "parameters"),
								       "binary_data_size"));
		if (strcmp(str0(json_object_get(v, "name")), "probs") == 0) {
			o = v;
			break;
		}
		boff += bsz;
	}
	if (!o) {
		snprintf(why, whysz, "no output probs: %.300s", r->body);
		goto done;
	}
	json_t *sh = json_object_get(o, "shape");
	if (json_array_size(sh) != 2 || json_integer_value(json_array_get(sh, 0)) != (json_int_t)rows ||
	    json_integer_value(json_array_get(sh, 1)) != HF_TI_OUT ||
	    strcmp(str0(json_object_get(o, "datatype")), "FP32") != 0) {
		snprintf(why, whysz, "probs is not FP32 [%zu, 10]: %.300s", rows, r->body);
		goto done;
	}
	json_t *bs = json_object_get(json_object_get(o, "parameters"), "binary_data_size");
	if (bs) {
		size_t want = rows * HF_TI_OUT * 4;
		if ((size_t)json_integer_value(bs) != want || boff + want > r->len) {
			snprintf(why, whysz, "binary probs: %lld bytes at %zu of %zu", (long long)json_integer_value(bs),
				 boff, r->len);
			goto done;
		}
		memcpy(out, r->body + boff, want);
		ok = true;
		goto done;
	}
	size_t n = 0;
	if (!flatten(json_object_get(o, "data"), out, rows * HF_TI_OUT, &n) || n != rows * HF_TI_OUT) {
		snprintf(why, whysz, "probs data: %zu values, expected %zu", n, rows * HF_TI_OUT);
		goto done;
	}
	ok = true;
done:
	json_decref(j);
	return ok;
}

double hf_ti_metric_sum(const char *text, const char *name, const char *const *labels)
{
	size_t nl = strlen(name);
	double sum = 0;
	bool any = false;

	for (const char *p = text; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);
		if (ll > nl && strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
			char line[1024];
			size_t k = ll < sizeof line - 1 ? ll : sizeof line - 1;
			memcpy(line, p, k);
			line[k] = '\0';
			bool match = true;
			char *close = strrchr(line, '}');
			for (const char *const *l = labels; l && *l && match; l++) {
				const char *at = strstr(line, *l);
				match = at && close && at < close;
			}
			char *sp = strrchr(line, ' ');
			if (match && sp) {
				sum += strtod(sp + 1, NULL);
				any = true;
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	return any ? sum : -1;
}

ssize_t hf_ti_raw_response(int fd, char *buf, size_t cap, uint64_t timeout_ms, size_t *body_off)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	size_t len = 0, want = SIZE_MAX;

	*body_off = 0;
	for (;;) {
		if (want != SIZE_MAX && len >= want)
			break;
		uint64_t now = hf_mono_ms();
		if (now >= end || len + 1 >= cap)
			return -1;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, (int)(end - now)) <= 0)
			continue;
		ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {   /* closed: complete only without a Content-Length */
			buf[len] = '\0';
			return *body_off && want == SIZE_MAX - 1 ? (ssize_t)len : -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
		if (!*body_off) {
			char *eoh = strstr(buf, "\r\n\r\n");
			if (!eoh)
				continue;
			*body_off = (size_t)(eoh + 4 - buf);
			const char *cl = NULL;
			for (const char *p = buf; p < eoh; p = strstr(p, "\r\n") + 2) {
				if (strncasecmp(p, "Content-Length:", 15) == 0) {
					cl = p + 15;
					break;
				}
				if (!strstr(p, "\r\n"))
					break;
			}
			want = cl ? *body_off + (size_t)strtoull(cl, NULL, 10) : SIZE_MAX - 1;
		}
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

char *hf_ti_raw_infer(const float *x, size_t rows, bool binary_out, size_t *len)
{
	size_t blen, jl;
	void *body = hf_ti_binary_body(x, rows, HF_TI_IN, binary_out, &blen, &jl);
	char head[512];
	char *req;
	int hl;

	if (!body)
		return NULL;
	hl = snprintf(head, sizeof head,
		      "POST /v2/models/" HF_TI_MODEL "/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		      "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n"
		      "Content-Length: %zu\r\n\r\n", jl, blen);
	req = malloc((size_t)hl + blen);
	if (req) {
		memcpy(req, head, (size_t)hl);
		memcpy(req + hl, body, blen);
		*len = (size_t)hl + blen;
	}
	free(body);
	return req;
}

bool hf_ti_reply_from_raw(const char *buf, size_t len, size_t body_off, hf_ti_reply *r)
{
	int st = 0;

	hf_ti_reply_clear(r);
	if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1 || st < 100 || body_off > len)
		return false;
	r->status = st;
	size_t hl = body_off < sizeof r->headers ? body_off : sizeof r->headers - 1;
	memcpy(r->headers, buf, hl);
	r->headers[hl] = '\0';
	r->hlen = hl;
	r->body = malloc(len - body_off + 1);
	if (!r->body)
		return false;
	memcpy(r->body, buf + body_off, len - body_off);
	r->len = len - body_off;
	r->cap = r->len + 1;
	r->body[r->len] = '\0';
	return true;
}
