/* hf_safetensors: the strict safetensors reader (mmap'ed file or a caller's buffer).
 *
 * Invariants: every size read from the file is untrusted: the header length is capped before
 * anything is read past it, shape products and byte sizes are computed with overflow checks,
 * and the tensors must tile the data section exactly. Validation runs in three passes so that
 * a file the reference reader (huggingface/safetensors) refuses is HF_EPARSE (or HF_ETOOBIG
 * over a cap) and a valid file this engine cannot use is HF_EUNSUPPORTED: (1) the JSON
 * entries, (2) sizes and tiling, (3) the engine's dtype and rank limits. Names from the file
 * go through hf_text_clean before they reach an error message.
 * The hf_st keeps the parsed JSON tree: tensor names and metadata values point into it.
 * Threading: an hf_st is immutable after hf_st_open/hf_st_parse; any thread may read it.
 */
#include "hf_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_text.h"

#define ST_NAME_MAX 255
#define ST_META_KEY "__metadata__"

/* Every dtype the safetensors format defines, with its size in bits. */
typedef struct st_dtype_def {
	const char *name;
	unsigned bits;
	int engine; /* hf_st_dtype, or -1 when refused by this engine */
} st_dtype_def;

static const st_dtype_def st_dtypes[] = {
	{ "F32", 32, HF_ST_F32 },     { "F16", 16, HF_ST_F16 },      { "BOOL", 8, -1 },
	{ "F4", 4, -1 },              { "F6_E2M3", 6, -1 },          { "F6_E3M2", 6, -1 },
	{ "U8", 8, -1 },              { "I8", 8, -1 },               { "F8_E5M2", 8, -1 },
	{ "F8_E4M3", 8, -1 },         { "F8_E8M0", 8, -1 },          { "F8_E4M3FNUZ", 8, -1 },
	{ "F8_E5M2FNUZ", 8, -1 },     { "I16", 16, -1 },             { "U16", 16, -1 },
	{ "BF16", 16, -1 },           { "I32", 32, -1 },             { "U32", 32, -1 },
	{ "C64", 64, -1 },            { "F64", 64, -1 },             { "I64", 64, -1 },
	{ "U64", 64, -1 },
};
#define ST_NDTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

/* Parse-time state of one tensor (pass 1), kept until the checks of passes 2 and 3. */
typedef struct st_entry {
	const char *name;
	const st_dtype_def *dt;
	size_t ndim;        /* as in the file (may exceed HF_ST_MAX_DIMS: refused in pass 3) */
	uint64_t shape[HF_ST_MAX_DIMS];
	uint64_t begin, end;
	size_t order;       /* position in the JSON object (tie-break of the offset sort) */
} st_entry;

struct hf_st {
	void *map;           /* hf_st_open's mapping, or NULL */
	size_t maplen;
	json_t *root;        /* the header; names and metadata point into it */
	json_t *meta;        /* the "__metadata__" object, or NULL */
	size_t ntensors;
	hf_st_tensor *tensors; /* in offset order */
	size_t *by_name;     /* indices into tensors, sorted by name */
	uint64_t data_bytes;
};

/* A file-provided string made safe for an error message (truncated to fit). */
typedef struct st_clean {
	char s[96];
} st_clean;

static st_clean clean(const char *s)
{
	st_clean c;
	hf_text_clean(c.s, sizeof c.s, s, strlen(s));
	return c;
}

const char *hf_st_dtype_name(hf_st_dtype d)
{
	switch (d) {
	case HF_ST_F32: return "F32";
	case HF_ST_F16: return "F16";
	}
	return "?";
}

static const st_dtype_def *dtype_lookup(const char *s)
{
	for (size_t i = 0; i < ST_NDTYPES; i++)
		if (strcmp(st_dtypes[i].name, s) == 0)
			return &st_dtypes[i];
	return NULL;
}

/* "[2, 3]" into buf (at most n dims of shape; "..." past the buffer). */
static const char *fmt_shape(char *buf, size_t sz, const uint64_t *shape, size_t n)
{
	size_t off = 0;
	int w = snprintf(buf, sz, "[");
	off = w > 0 ? (size_t)w : 0;
	for (size_t i = 0; i < n && off < sz; i++) {
		w = snprintf(buf + off, sz - off, "%s%llu", i ? ", " : "",
			     (unsigned long long)shape[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off < sz)
		snprintf(buf + off, sz - off, "]");
	return buf;
}

static bool json_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	const unsigned char *p = (const unsigned char *)name;

	if (n == 0 || n > ST_NAME_MAX || !hf_utf8_valid(name, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false; /* C1 controls U+0080..U+009F */
	}
	return true;
}

static int parse_metadata(json_t *meta, hf_errbuf *eb)
{
	const char *k;
	json_t *v;

	if (!json_is_object(meta))
		return hf_fail(eb, HF_EPARSE, "\"__metadata__\" is not an object");
	json_object_foreach(meta, k, v) {
		if (!json_is_string(v))
			return hf_fail(eb, HF_EPARSE, "\"__metadata__\" value of \"%s\" is not a string",
				       clean(k).s);
	}
	return 0;
}

/* Pass 1 for one tensor entry: structure, dtype name, shape, offsets. */
static int parse_entry(const char *name, json_t *v, st_entry *e, hf_errbuf *eb)
{
	const char *k;
	json_t *f, *dt, *shape, *offs;
	size_t i;

	if (!name_ok(name))
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": the name must be 1..%d bytes of "
			       "UTF-8 without control characters", clean(name).s, ST_NAME_MAX);
	if (!json_is_object(v))
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": entry is not an object",
			       clean(name).s);
	json_object_foreach(v, k, f) {
		if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": unknown field \"%s\" (expected "
				       "dtype, shape, data_offsets)", clean(name).s, clean(k).s);
	}
	dt = json_object_get(v, "dtype");
	shape = json_object_get(v, "shape");
	offs = json_object_get(v, "data_offsets");
	if (!dt || !shape || !offs)
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": missing \"%s\"", clean(name).s,
			       !dt ? "dtype" : !shape ? "shape" : "data_offsets");
	if (!json_is_string(dt))
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": dtype is not a string",
			       clean(name).s);
	e->dt = dtype_lookup(json_string_value(dt));
	if (!e->dt)
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": unknown dtype \"%s\"", clean(name).s,
			       clean(json_string_value(dt)).s);
	if (!json_is_array(shape))
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": shape is not an array",
			       clean(name).s);
	e->ndim = json_array_size(shape);
	for (i = 0; i < e->ndim; i++) {
		uint64_t d;
		if (!json_u64(json_array_get(shape, i), &d))
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": shape[%zu] is not a "
				       "non-negative integer", clean(name).s, i);
		if (i < HF_ST_MAX_DIMS)
			e->shape[i] = d;
	}
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_u64(json_array_get(offs, 0), &e->begin) ||
	    !json_u64(json_array_get(offs, 1), &e->end))
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": data_offsets is not an array of two "
			       "non-negative integers", clean(name).s);
	e->name = name;
	return 0;
}

/* Elements and bytes of e without overflow (the shape is re-read from the JSON when it has
 * more dims than e keeps). */
static int entry_size(const st_entry *e, json_t *shape, uint64_t *count, uint64_t *nbytes,
		      hf_errbuf *eb)
{
	uint64_t c = 1, bits;

	for (size_t i = 0; i < e->ndim; i++) {
		uint64_t d = i < HF_ST_MAX_DIMS ? e->shape[i]
			: (uint64_t)json_integer_value(json_array_get(shape, i));
		if (d != 0 && c > UINT64_MAX / d)
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": shape overflows 64 bits",
				       clean(e->name).s);
		c *= d;
	}
	if (c > UINT64_MAX / e->dt->bits)
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": byte size of the shape overflows",
			       clean(e->name).s);
	bits = c * e->dt->bits;
	if (bits % 8)
		return hf_fail(eb, HF_EPARSE, "tensor \"%s\": %llu elements of %s do not fill whole "
			       "bytes", clean(e->name).s, (unsigned long long)c, e->dt->name);
	*count = c;
	*nbytes = bits / 8;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const st_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Pass 2: the sorted entries tile [0, data_len) exactly; fills count/nbytes. */
static int check_tiling(st_entry *es, size_t n, json_t *root, uint64_t data_len,
			uint64_t *counts, uint64_t *sizes, hf_errbuf *eb)
{
	uint64_t start = 0;
	char sh[128];

	for (size_t i = 0; i < n; i++) {
		const st_entry *e = &es[i];
		json_t *shape = json_object_get(json_object_get(root, e->name), "shape");
		int rc;
		if (e->end < e->begin)
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": data_offsets [%llu, %llu] end "
				       "before they begin", clean(e->name).s,
				       (unsigned long long)e->begin, (unsigned long long)e->end);
		if (e->begin > start)
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": data_offsets [%llu, %llu] leave "
				       "a gap: the data before it ends at byte %llu", clean(e->name).s,
				       (unsigned long long)e->begin, (unsigned long long)e->end,
				       (unsigned long long)start);
		if (e->begin < start)
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": data_offsets [%llu, %llu] overlap "
				       "tensor \"%s\", which ends at byte %llu", clean(e->name).s,
				       (unsigned long long)e->begin, (unsigned long long)e->end,
				       clean(es[i - 1].name).s, (unsigned long long)start);
		rc = entry_size(e, shape, &counts[i], &sizes[i], eb);
		if (rc)
			return rc;
		if (e->end - e->begin != sizes[i])
			return hf_fail(eb, HF_EPARSE, "tensor \"%s\": data_offsets [%llu, %llu] span "
				       "%llu bytes, shape %s%s of %s needs %llu", clean(e->name).s,
				       (unsigned long long)e->begin, (unsigned long long)e->end,
				       (unsigned long long)(e->end - e->begin),
				       fmt_shape(sh, sizeof sh, e->shape,
						 e->ndim < HF_ST_MAX_DIMS ? e->ndim : HF_ST_MAX_DIMS),
				       e->ndim > HF_ST_MAX_DIMS ? "..." : "", e->dt->name,
				       (unsigned long long)sizes[i]);
		start = e->end;
	}
	if (start != data_len)
		return hf_fail(eb, HF_EPARSE, "the data section is %llu bytes but the tensors "
			       "cover %llu", (unsigned long long)data_len, (unsigned long long)start);
	return 0;
}

/* Pass 3: the engine's own limits on a valid file. */
static int check_engine(const st_entry *es, size_t n, hf_errbuf *eb)
{
	for (size_t i = 0; i < n; i++) {
		if (es[i].dt->engine < 0)
			return hf_fail(eb, HF_EUNSUPPORTED, "tensor \"%s\": dtype %s is not supported "
				       "(only F32 and F16)", clean(es[i].name).s, es[i].dt->name);
		if (es[i].ndim > HF_ST_MAX_DIMS)
			return hf_fail(eb, HF_EUNSUPPORTED, "tensor \"%s\": %zu dims, at most %d are "
				       "supported", clean(es[i].name).s, es[i].ndim, HF_ST_MAX_DIMS);
	}
	return 0;
}

static int name_cmp_st(const hf_st *st, size_t a, size_t b)
{
	return strcmp(st->tensors[a].name, st->tensors[b].name);
}

/* The name index: a heap sort of indices (qsort has no context argument). */
static void sift(const hf_st *st, size_t *ix, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && name_cmp_st(st, ix[c], ix[c + 1]) < 0)
			c++;
		if (name_cmp_st(st, ix[root], ix[c]) >= 0)
			return;
		size_t t = ix[root];
		ix[root] = ix[c];
		ix[c] = t;
		root = c;
	}
}

static void build_name_index(hf_st *st)
{
	size_t n = st->ntensors, *ix = st->by_name;

	for (size_t i = 0; i < n; i++)
		ix[i] = i;
	for (size_t i = n / 2; i-- > 0;)
		sift(st, ix, i, n);
	for (size_t end = n; end-- > 1;) {
		size_t t = ix[0];
		ix[0] = ix[end];
		ix[end] = t;
		sift(st, ix, 0, end);
	}
}

/* Pass 1 over the whole header object. */
static int parse_entries(hf_st *st, st_entry **out, size_t *nout, uint64_t max_tensors,
			 hf_errbuf *eb)
{
	size_t n = json_object_size(st->root), k = 0, order = 0;
	st_entry *es;
	const char *key;
	json_t *v;
	int rc;

	st->meta = json_object_get(st->root, ST_META_KEY);
	if (json_is_null(st->meta)) {
		st->meta = NULL; /* the reference reads null as no metadata */
		n--;
	} else if (st->meta) {
		rc = parse_metadata(st->meta, eb);
		if (rc)
			return rc;
		n--;
	}
	if (n > max_tensors)
		return hf_fail(eb, HF_ETOOBIG, "%zu tensors, at most %llu allowed", n,
			       (unsigned long long)max_tensors);
	es = calloc(n ? n : 1, sizeof *es);
	if (!es)
		return hf_fail(eb, HF_ENOMEM, "out of memory for %zu tensors", n);
	json_object_foreach(st->root, key, v) {
		if (strcmp(key, ST_META_KEY) == 0)
			continue;
		rc = parse_entry(key, v, &es[k], eb);
		if (rc) {
			free(es);
			return rc;
		}
		es[k++].order = order++;
	}
	*out = es;
	*nout = k;
	return 0;
}

/* Passes 2 and 3, then the public tensor table. */
static int build_tensors(hf_st *st, st_entry *es, size_t n, const uint8_t *data,
			 uint64_t data_len, hf_errbuf *eb)
{
	uint64_t *counts = calloc(n ? 2 * n : 1, sizeof *counts);
	int rc;

	if (!counts)
		return hf_fail(eb, HF_ENOMEM, "out of memory for %zu tensors", n);
	qsort(es, n, sizeof *es, entry_cmp);
	rc = check_tiling(es, n, st->root, data_len, counts, counts + n, eb);
	if (!rc)
		rc = check_engine(es, n, eb);
	if (rc)
		goto free_counts;
	st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
	st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
	if (!st->tensors || !st->by_name) {
		rc = hf_fail(eb, HF_ENOMEM, "out of memory for %zu tensors", n);
		goto free_counts;
	}
	for (size_t i = 0; i < n; i++) {
		hf_st_tensor *t = &st->tensors[i];
		t->name = es[i].name;
		t->dtype = (hf_st_dtype)es[i].dt->engine;
		t->ndim = es[i].ndim;
		memcpy(t->shape, es[i].shape, sizeof t->shape);
		t->count = counts[i];
		t->nbytes = counts[n + i];
		t->data = data + es[i].begin;
	}
	st->ntensors = n;
	st->data_bytes = data_len;
	build_name_index(st);
free_counts:
	free(counts);
	return rc;
}

static int parse_header(hf_st *st, const uint8_t *p, size_t len, const hf_st_limits *lim,
			hf_errbuf *eb)
{
	uint64_t max_header = lim && lim->max_header ? lim->max_header : HF_ST_DEFAULT_MAX_HEADER;
	uint64_t max_tensors = lim && lim->max_tensors ? lim->max_tensors
		: HF_ST_DEFAULT_MAX_TENSORS;
	uint64_t n = 0;
	const char *h;
	json_error_t jerr;
	st_entry *es = NULL;
	size_t nes = 0;
	int rc;

	if (lim && lim->max_file && len > lim->max_file)
		return hf_fail(eb, HF_ETOOBIG, "file is %zu bytes, at most %llu allowed", len,
			       (unsigned long long)lim->max_file);
	if (len < 8)
		return hf_fail(eb, HF_EPARSE, "file is %zu bytes, shorter than the 8-byte header "
			       "length", len);
	for (int i = 7; i >= 0; i--)
		n = n << 8 | p[i];
	if (n > max_header)
		return hf_fail(eb, HF_ETOOBIG, "header length %llu is over the cap of %llu bytes",
			       (unsigned long long)n, (unsigned long long)max_header);
	if (n > len - 8)
		return hf_fail(eb, HF_EPARSE, "header length %llu runs past the end of the file "
			       "(%zu bytes)", (unsigned long long)n, len);
	h = (const char *)p + 8;
	if (n == 0 || h[0] != '{')
		return hf_fail(eb, HF_EPARSE, "header does not start with '{'");
	if (!hf_utf8_valid(h, (size_t)n))
		return hf_fail(eb, HF_EPARSE, "header is not valid UTF-8");
	st->root = json_loadb(h, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (!st->root)
		return hf_fail(eb, HF_EPARSE, "header is not valid JSON: %s (byte %d)",
			       clean(jerr.text).s, jerr.position);
	if (!json_is_object(st->root))
		return hf_fail(eb, HF_EPARSE, "header is not a JSON object");
	rc = parse_entries(st, &es, &nes, max_tensors, eb);
	if (rc)
		return rc;
	rc = build_tensors(st, es, nes, p + 8 + n, len - 8 - n, eb);
	free(es);
	return rc;
}

int hf_st_parse(const void *buf, size_t len, const hf_st_limits *lim, hf_st **out,
		hf_errbuf *eb)
{
	hf_st *st;
	int rc;

	if (!out || (!buf && len))
		return hf_fail(eb, HF_EINVAL, "hf_st_parse: no buffer or no result pointer");
	*out = NULL;
	st = calloc(1, sizeof *st);
	if (!st)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	rc = parse_header(st, buf, len, lim, eb);
	if (rc) {
		hf_st_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

int hf_st_open(const char *path, const hf_st_limits *lim, hf_st **out, hf_errbuf *eb)
{
	struct stat sb;
	void *map;
	int fd, rc;

	if (!path || !out)
		return hf_fail(eb, HF_EINVAL, "hf_st_open: no path or no result pointer");
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return hf_fail(eb, HF_EIO, "%s: cannot open: %s",
			       clean(path).s, strerror(e));
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = hf_fail(eb, HF_EIO, "%s: not a regular file", clean(path).s);
		goto close_fd;
	}
	if (lim && lim->max_file && (uint64_t)sb.st_size > lim->max_file) {
		rc = hf_fail(eb, HF_ETOOBIG, "%s: file is %lld bytes, at most %llu allowed",
			     clean(path).s, (long long)sb.st_size,
			     (unsigned long long)lim->max_file);
		goto close_fd;
	}
	if (sb.st_size < 8) {
		rc = hf_fail(eb, HF_EPARSE, "%s: file is %lld bytes, shorter than the 8-byte header "
			     "length", clean(path).s, (long long)sb.st_size);
		goto close_fd;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = hf_fail(eb, HF_EIO, "%s: mmap: %s", clean(path).s, strerror(errno));
		goto close_fd;
	}
	rc = hf_st_parse(map, (size_t)sb.st_size, lim, out, eb);
	if (rc) {
		munmap(map, (size_t)sb.st_size);
		hf_fail_prefix(eb, rc, "%s", clean(path).s);
		goto close_fd;
	}
	(*out)->map = map;
	(*out)->maplen = (size_t)sb.st_size;
close_fd:
	close(fd);
	return rc;
}

void hf_st_free(hf_st *st)
{
	if (!st)
		return;
	if (st->map)
		munmap(st->map, st->maplen);
	json_decref(st->root);
	free(st->tensors);
	free(st->by_name);
	free(st);
}

size_t hf_st_count(const hf_st *st)
{
	return st ? st->ntensors : 0;
}

const hf_st_tensor *hf_st_at(const hf_st *st, size_t i)
{
	return st && i < st->ntensors ? &st->tensors[i] : NULL;
}

const hf_st_tensor *hf_st_find(const hf_st *st, const char *name)
{
	size_t lo = 0, hi;

	if (!st || !name)
		return NULL;
	hi = st->ntensors;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->tensors[st->by_name[mid]].name, name);
		if (c == 0)
			return &st->tensors[st->by_name[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *hf_st_metadata(const hf_st *st, const char *key)
{
	if (!st || !st->meta || !key)
		return NULL;
	return json_string_value(json_object_get(st->meta, key));
}

uint64_t hf_st_data_bytes(const hf_st *st)
{
	return st ? st->data_bytes : 0;
}

/* IEEE 754 binary16 bits to binary32 bits: normals rebias, subnormals renormalise, inf and
 * NaN keep their payload (shifted into the wider mantissa). */
static uint32_t half_to_float_bits(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;

	if (exp == 0x1f)
		return sign | 0x7f800000u | mant << 13;
	if (exp != 0)
		return sign | (exp + 112u) << 23 | mant << 13;
	if (mant == 0)
		return sign;
	/* Subnormal: value mant * 2^-24; shift until the implicit bit (bit 10) is set. */
	exp = 113;
	while (!(mant & 0x400u)) {
		mant <<= 1;
		exp--;
	}
	return sign | exp << 23 | (mant & 0x3ffu) << 13;
}

void hf_st_read_f32(const hf_st_tensor *t, float *dst)
{
	const uint8_t *p = t->data;

	if (t->dtype == HF_ST_F16) {
		for (uint64_t i = 0; i < t->count; i++) {
			uint32_t b = half_to_float_bits((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
			memcpy(&dst[i], &b, sizeof b);
		}
		return;
	}
	for (uint64_t i = 0; i < t->count; i++) {
		const uint8_t *q = p + 4 * i;
		uint32_t b = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
			(uint32_t)q[3] << 24;
		memcpy(&dst[i], &b, sizeof b);
	}
}
