/* hf_stratum: sans-I/O Stratum v1 client core (line splitting, JSON-RPC, typed events).
 *
 * Failure: a malformed line never changes the session state; it becomes one EV_ERROR event
 * with detail and bumps a counter. Allocation failure is the only error feed() returns.
 * Outside text: every event text field (err_msg, text) passes hf_text_clean(); a job id is
 * echoed back to the pool byte for byte, so one with a control character is refused instead.
 * Threading: one owner per core; no globals.
 */
#include "hf_stratum.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_buf.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

typedef enum req_kind {
	REQ_NONE = 0,
	REQ_SUBSCRIBE,
	REQ_AUTHORIZE,
	REQ_CONFIGURE,
	REQ_SUBMIT,
	REQ_OTHER,
} req_kind;

typedef struct pending {
	uint64_t id;
	req_kind kind;
	uint32_t mask; /* configure: the mask we asked for */
} pending;

typedef struct ev_node {
	struct ev_node *next;
	hf_stratum_event ev;
} ev_node;

struct hf_stratum {
	char user_agent[128];
	size_t max_line;
	size_t max_events;
	char *line;          /* max_line + 1 bytes */
	size_t line_len;
	bool discarding;     /* inside an oversize line, skipping to '\n' */
	hf_buf out;
	uint64_t next_id;
	pending pend[HF_STRATUM_MAX_PENDING];
	size_t pend_next;    /* ring slot for the next request */
	ev_node *head, *tail;
	size_t nevents;
	char session_id[HF_STRATUM_SESSION_MAX];
	hf_stratum_counters c;
};

hf_stratum *hf_stratum_new(const hf_stratum_opts *opts)
{
	hf_stratum *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	hf_strlcpy(s->user_agent, opts && opts->user_agent ? opts->user_agent
		   : "hashflop/" HF_VERSION, sizeof s->user_agent);
	s->max_line = opts && opts->max_line ? opts->max_line : HF_STRATUM_MAX_LINE_DEFAULT;
	s->max_events = opts && opts->max_events ? opts->max_events : 4096;
	s->line = malloc(s->max_line + 1);
	if (!s->line) {
		free(s);
		return NULL;
	}
	hf_buf_init(&s->out, 4u << 20);
	s->next_id = 1;
	return s;
}

static void drop_events(hf_stratum *s)
{
	ev_node *n = s->head, *next;

	for (; n; n = next) {
		next = n->next;
		hf_stratum_event_clear(&n->ev);
		free(n);
	}
	s->head = s->tail = NULL;
	s->nevents = 0;
}

void hf_stratum_free(hf_stratum *s)
{
	if (!s)
		return;
	drop_events(s);
	hf_buf_free(&s->out);
	free(s->line);
	free(s);
}

void hf_stratum_reset(hf_stratum *s)
{
	s->line_len = 0;
	s->discarding = false;
	hf_buf_reset(&s->out);
	memset(s->pend, 0, sizeof s->pend);
	drop_events(s);
}

void hf_stratum_event_clear(hf_stratum_event *ev)
{
	if (!ev)
		return;
	hf_stratum_job_clear(&ev->job);
	memset(ev, 0, sizeof *ev);
}

bool hf_stratum_next_event(hf_stratum *s, hf_stratum_event *ev)
{
	ev_node *n = s->head;

	if (!n)
		return false;
	s->head = n->next;
	if (!s->head)
		s->tail = NULL;
	s->nevents--;
	*ev = n->ev;
	free(n);
	return true;
}

/* Allocates a queued event of the given type; NULL when the queue is full or memory ran out
 * (counted as a dropped event). */
static hf_stratum_event *push_event(hf_stratum *s, hf_stratum_ev_type type)
{
	ev_node *n;

	if (s->nevents >= s->max_events || !(n = calloc(1, sizeof *n))) {
		s->c.dropped_events++;
		return NULL;
	}
	n->ev.type = type;
	if (s->tail)
		s->tail->next = n;
	else
		s->head = n;
	s->tail = n;
	s->nevents++;
	return &n->ev;
}

__attribute__((format(printf, 3, 4)))
static void bad_line(hf_stratum *s, int err, const char *fmt, ...)
{
	hf_stratum_event *ev;
	va_list ap;

	if (err == HF_ETOOBIG)
		s->c.oversize_lines++;
	else if (err == HF_EUNSUPPORTED)
		s->c.unknown_methods++;
	else
		s->c.bad_lines++;
	ev = push_event(s, HF_STRATUM_EV_ERROR);
	if (!ev)
		return;
	ev->err = err;
	va_start(ap, fmt);
	vsnprintf(ev->text, sizeof ev->text, fmt, ap);
	va_end(ap);
	hf_utf8_trim(ev->text);        /* vsnprintf may have cut a character */
	hf_text_clean_inplace(ev->text); /* the detail quotes the pool (method names, JSON) */
}

/* Copies pool text into an event field, cleaned (control characters, invalid UTF-8). */
static void copy_text(char *dst, size_t dstsz, const char *src)
{
	hf_text_clean(dst, dstsz, src, SIZE_MAX);
}

/* ---- output ---- */

static int send_json(hf_stratum *s, json_t *msg)
{
	char *text;
	int rc;

	if (!msg)
		return HF_ENOMEM;
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return HF_ENOMEM;
	rc = hf_buf_append(&s->out, text, strlen(text));
	if (rc == 0)
		rc = hf_buf_append(&s->out, "\n", 1);
	free(text);
	return rc;
}

static int request(hf_stratum *s, const char *method, json_t *params, req_kind kind,
		   uint32_t mask, uint64_t *id_out)
{
	uint64_t id = s->next_id++;
	pending *p = &s->pend[s->pend_next];
	json_t *msg;
	int rc;

	if (!params)
		return HF_ENOMEM;
	msg = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method", method,
			"params", params);
	rc = send_json(s, msg);
	if (rc)
		return rc;
	p->id = id;
	p->kind = kind;
	p->mask = mask;
	s->pend_next = (s->pend_next + 1) % HF_STRATUM_MAX_PENDING;
	if (id_out)
		*id_out = id;
	return 0;
}

static int reply(hf_stratum *s, json_t *id, json_t *result, json_t *error)
{
	return send_json(s, json_pack("{s:O, s:o, s:o}", "id", id, "result", result,
				      "error", error ? error : json_null()));
}

int hf_stratum_subscribe(hf_stratum *s, bool resume, uint64_t *id)
{
	json_t *params = json_pack("[s]", s->user_agent);

	if (params && resume && s->session_id[0])
		json_array_append_new(params, json_string(s->session_id));
	return request(s, "mining.subscribe", params, REQ_SUBSCRIBE, 0, id);
}

int hf_stratum_authorize(hf_stratum *s, const char *user, const char *pass, uint64_t *id)
{
	if (!user)
		return HF_EINVAL;
	return request(s, "mining.authorize", json_pack("[s, s]", user, pass ? pass : ""),
		       REQ_AUTHORIZE, 0, id);
}

int hf_stratum_configure(hf_stratum *s, uint32_t mask, unsigned min_bit_count, uint64_t *id)
{
	char hex[9];

	snprintf(hex, sizeof hex, "%08x", mask);
	return request(s, "mining.configure",
		       json_pack("[[s], {s:s, s:i}]", "version-rolling", "version-rolling.mask",
				 hex, "version-rolling.min-bit-count", (int)min_bit_count),
		       REQ_CONFIGURE, mask, id);
}

int hf_stratum_extranonce_subscribe(hf_stratum *s, uint64_t *id)
{
	return request(s, "mining.extranonce.subscribe", json_array(), REQ_OTHER, 0, id);
}

int hf_stratum_suggest_difficulty(hf_stratum *s, double diff, uint64_t *id)
{
	if (!(diff > 0) || !isfinite(diff))
		return HF_EINVAL;
	return request(s, "mining.suggest_difficulty", json_pack("[f]", diff), REQ_OTHER, 0, id);
}

int hf_stratum_submit(hf_stratum *s, const hf_stratum_submit_args *a, uint64_t *id)
{
	char en2[2 * HF_STRATUM_EN2_MAX + 1], ntime[9], nonce[9], vbits[9];
	json_t *params;

	if (!a->worker || !a->job_id || !a->en2 || a->en2_len < 1 ||
	    a->en2_len > HF_STRATUM_EN2_MAX)
		return HF_EINVAL;
	hf_hex_encode(a->en2, a->en2_len, en2);
	snprintf(ntime, sizeof ntime, "%08x", a->ntime);
	snprintf(nonce, sizeof nonce, "%08x", a->nonce);
	params = json_pack("[s, s, s, s, s]", a->worker, a->job_id, en2, ntime, nonce);
	if (params && a->has_version_bits) {
		snprintf(vbits, sizeof vbits, "%08x", a->version_bits);
		json_array_append_new(params, json_string(vbits));
	}
	return request(s, "mining.submit", params, REQ_SUBMIT, 0, id);
}

const char *hf_stratum_out(const hf_stratum *s, size_t *len)
{
	*len = s->out.len;
	return s->out.data ? s->out.data : "";
}

void hf_stratum_out_consume(hf_stratum *s, size_t n)
{
	if (n >= s->out.len) {
		hf_buf_reset(&s->out);
		return;
	}
	memmove(s->out.data, s->out.data + n, s->out.len - n);
	s->out.len -= n;
	s->out.data[s->out.len] = '\0';
}

const char *hf_stratum_session_id(const hf_stratum *s)
{
	return s->session_id;
}

void hf_stratum_set_session_id(hf_stratum *s, const char *id)
{
	hf_strlcpy(s->session_id, id ? id : "", sizeof s->session_id);
}

void hf_stratum_counters_get(const hf_stratum *s, hf_stratum_counters *out)
{
	*out = s->c;
}

/* ---- input: helpers ---- */

static bool hex_u32(const json_t *v, uint32_t *out)
{
	const char *str = json_string_value(v);
	uint8_t b[4];

	if (!str || !hf_hex_decode(str, strlen(str), b, 4))
		return false;
	*out = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

static bool parse_en1(const json_t *v, hf_stratum_event *ev)
{
	const char *str = json_string_value(v);
	size_t n = str ? strlen(str) : 0;

	if (!str || n % 2 || n / 2 > HF_STRATUM_EN1_MAX)
		return false;
	if (!hf_hex_decode(str, n, ev->extranonce1, n / 2))
		return false;
	ev->extranonce1_len = n / 2;
	return true;
}

static bool parse_en2_size(const json_t *v, unsigned *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return false;
	n = json_integer_value(v);
	if (n < HF_STRATUM_EN2_MIN || n > HF_STRATUM_EN2_MAX)
		return false;
	*out = (unsigned)n;
	return true;
}

/* The pool's error (array [code, msg, ...], object {code, message} or {"reject-reason"},
 * string) or, for a false result, a top-level "reject-reason". */
static void parse_pool_error(const json_t *root, const json_t *err, hf_stratum_event *ev)
{
	const json_t *rr = json_object_get(root, "reject-reason");

	if (json_is_array(err)) {
		const json_t *code = json_array_get(err, 0), *msg = json_array_get(err, 1);
		if (json_is_integer(code))
			ev->err_code = json_integer_value(code);
		if (json_is_string(msg))
			copy_text(ev->err_msg, sizeof ev->err_msg, json_string_value(msg));
	} else if (json_is_object(err)) {
		const json_t *code = json_object_get(err, "code");
		const json_t *msg = json_object_get(err, "message");
		if (!json_is_string(msg))
			msg = json_object_get(err, "reject-reason");
		if (json_is_integer(code))
			ev->err_code = json_integer_value(code);
		if (json_is_string(msg))
			copy_text(ev->err_msg, sizeof ev->err_msg, json_string_value(msg));
	} else if (json_is_string(err)) {
		copy_text(ev->err_msg, sizeof ev->err_msg, json_string_value(err));
	}
	if (!ev->err_msg[0] && json_is_string(rr))
		copy_text(ev->err_msg, sizeof ev->err_msg, json_string_value(rr));
	if (!ev->err_msg[0])
		hf_strlcpy(ev->err_msg, json_is_null(err) || !err ? "rejected" : "unknown error",
			   sizeof ev->err_msg);
}

static bool error_is_set(const json_t *err)
{
	return err && !json_is_null(err);
}

/* ---- input: responses ---- */

static bool subscribe_result(const json_t *res, hf_stratum_event *ev)
{
	const json_t *subs, *item;
	size_t i;

	if (!json_is_array(res) || json_array_size(res) < 3)
		return false;
	if (!parse_en1(json_array_get(res, 1), ev) ||
	    !parse_en2_size(json_array_get(res, 2), &ev->en2_size))
		return false;
	subs = json_array_get(res, 0);
	/* Either [["mining.notify", id], ...] or a single ["mining.notify", id]; may be empty. */
	if (json_is_array(subs) && json_is_string(json_array_get(subs, 0)) &&
	    json_is_string(json_array_get(subs, 1))) {
		hf_strlcpy(ev->session_id, json_string_value(json_array_get(subs, 1)),
			   sizeof ev->session_id);
	} else if (json_is_array(subs)) {
		json_array_foreach(subs, i, item) {
			const char *m = json_string_value(json_array_get(item, 0));
			const char *id = json_string_value(json_array_get(item, 1));
			if (!m || !id)
				continue;
			if (!ev->session_id[0] || strcmp(m, "mining.notify") == 0)
				hf_strlcpy(ev->session_id, id, sizeof ev->session_id);
		}
	} else if (!json_is_null(subs)) {
		return false;
	}
	return true;
}

static bool configure_result(const json_t *res, uint32_t asked, hf_stratum_event *ev)
{
	const json_t *vr;
	uint32_t mask;

	if (!json_is_object(res))
		return false;
	vr = json_object_get(res, "version-rolling");
	if (!json_is_true(vr)) {
		ev->ok = false;
		copy_text(ev->err_msg, sizeof ev->err_msg,
			  json_is_string(vr) ? json_string_value(vr) : "version rolling not granted");
		return true;
	}
	if (!hex_u32(json_object_get(res, "version-rolling.mask"), &mask))
		return false;
	ev->ok = true;
	ev->version_mask = mask & asked;
	return true;
}

static pending *take_pending(hf_stratum *s, const json_t *idv)
{
	json_int_t id;

	if (!json_is_integer(idv))
		return NULL;
	id = json_integer_value(idv);
	for (size_t i = 0; i < HF_STRATUM_MAX_PENDING; i++) {
		if (s->pend[i].kind != REQ_NONE && s->pend[i].id == (uint64_t)id)
			return &s->pend[i];
	}
	return NULL;
}

static void handle_response(hf_stratum *s, const json_t *root)
{
	const json_t *idv = json_object_get(root, "id");
	const json_t *res = json_object_get(root, "result");
	const json_t *err = json_object_get(root, "error");
	pending *p = take_pending(s, idv), req;
	hf_stratum_event tmp = { 0 }, *ev;

	if (!p) {
		s->c.unmatched_responses++;
		bad_line(s, HF_EPROTO, "response to an unknown request id");
		return;
	}
	req = *p;
	p->kind = REQ_NONE;
	tmp.id = req.id;
	tmp.ok = !error_is_set(err) && res && !json_is_null(res) && !json_is_false(res);
	switch (req.kind) {
	case REQ_SUBSCRIBE:
		tmp.type = HF_STRATUM_EV_SUBSCRIBED;
		if (tmp.ok && !subscribe_result(res, &tmp)) {
			bad_line(s, HF_EPROTO, "mining.subscribe result: expected "
				 "[subscriptions, extranonce1 hex, extranonce2_size %d-%d]",
				 HF_STRATUM_EN2_MIN, HF_STRATUM_EN2_MAX);
			memset(&tmp, 0, sizeof tmp);
			tmp.type = HF_STRATUM_EV_SUBSCRIBED;
			tmp.id = req.id;
			hf_strlcpy(tmp.err_msg, "malformed subscribe result", sizeof tmp.err_msg);
		}
		if (tmp.ok)
			hf_strlcpy(s->session_id, tmp.session_id, sizeof s->session_id);
		break;
	case REQ_AUTHORIZE:
		tmp.type = HF_STRATUM_EV_AUTHORIZED;
		tmp.ok = tmp.ok && json_is_true(res);
		break;
	case REQ_CONFIGURE:
		tmp.type = HF_STRATUM_EV_CONFIGURED;
		if (tmp.ok && !configure_result(res, req.mask, &tmp)) {
			bad_line(s, HF_EPROTO, "mining.configure result: expected an object with "
				 "version-rolling and an 8-digit hex version-rolling.mask");
			tmp.ok = false;
		}
		break;
	case REQ_SUBMIT:
		tmp.type = HF_STRATUM_EV_SUBMIT_RESULT;
		tmp.ok = tmp.ok && json_is_true(res);
		break;
	default:
		tmp.type = HF_STRATUM_EV_RESULT;
		break;
	}
	if (!tmp.ok && tmp.type != HF_STRATUM_EV_CONFIGURED)
		parse_pool_error(root, err, &tmp);
	else if (!tmp.ok && error_is_set(err))
		parse_pool_error(root, err, &tmp);
	ev = push_event(s, tmp.type);
	if (ev)
		*ev = tmp;
}

/* ---- input: server methods ---- */

static void on_notify(hf_stratum *s, const json_t *params)
{
	const json_t *jid = json_array_get(params, 0), *branch = json_array_get(params, 4);
	const json_t *clean = json_array_get(params, 8);
	const char *br[HF_STRATUM_BRANCH_MAX];
	hf_stratum_event *ev;
	hf_stratum_job job = { 0 };
	hf_errbuf eb;
	size_t i, n;

	if (json_array_size(params) < 9 || !json_is_string(jid) || !json_is_array(branch) ||
	    !json_is_boolean(clean)) {
		bad_line(s, HF_EPROTO, "mining.notify: expected [job_id, prevhash, coinb1, coinb2, "
			 "[branch], version, nbits, ntime, clean_jobs]");
		return;
	}
	if (json_string_length(jid) == 0 || json_string_length(jid) >= HF_STRATUM_JOB_ID_MAX) {
		bad_line(s, HF_EPROTO, "mining.notify: job_id must be 1-%d characters",
			 HF_STRATUM_JOB_ID_MAX - 1);
		return;
	}
	copy_text(job.id, sizeof job.id, json_string_value(jid));
	if (strcmp(job.id, json_string_value(jid)) != 0) {
		bad_line(s, HF_EPROTO, "mining.notify: job_id \"%s\" has control characters",
			 job.id);
		return;
	}
	n = json_array_size(branch);
	if (n > HF_STRATUM_BRANCH_MAX) {
		bad_line(s, HF_EPROTO, "mining.notify: %zu merkle branch entries (cap %d)", n,
			 HF_STRATUM_BRANCH_MAX);
		return;
	}
	for (i = 0; i < n; i++)
		br[i] = json_string_value(json_array_get(branch, i));
	if (!hex_u32(json_array_get(params, 5), &job.version) ||
	    !hex_u32(json_array_get(params, 6), &job.nbits) ||
	    !hex_u32(json_array_get(params, 7), &job.ntime)) {
		bad_line(s, HF_EPROTO, "mining.notify: version, nbits and ntime must be 8 hex digits");
		return;
	}
	if (hf_stratum_job_set_hex(&job, json_string_value(json_array_get(params, 1)),
				   json_string_value(json_array_get(params, 2)),
				   json_string_value(json_array_get(params, 3)), br, n, &eb)) {
		bad_line(s, HF_EPROTO, "mining.notify: %s", eb.msg);
		return;
	}
	hf_strlcpy(job.id, json_string_value(jid), sizeof job.id);
	job.clean = json_is_true(clean);
	ev = push_event(s, HF_STRATUM_EV_NOTIFY);
	if (!ev) {
		hf_stratum_job_clear(&job);
		return;
	}
	ev->job = job;
}

static void on_set_difficulty(hf_stratum *s, const json_t *params)
{
	const json_t *d = json_array_get(params, 0);
	hf_stratum_event *ev;

	if (!json_is_number(d) || !(json_number_value(d) > 0) ||
	    !isfinite(json_number_value(d))) {
		bad_line(s, HF_EPROTO, "mining.set_difficulty: expected [a positive number]");
		return;
	}
	ev = push_event(s, HF_STRATUM_EV_DIFFICULTY);
	if (ev)
		ev->difficulty = json_number_value(d);
}

static void on_set_extranonce(hf_stratum *s, const json_t *params)
{
	hf_stratum_event tmp = { .type = HF_STRATUM_EV_EXTRANONCE }, *ev;

	if (!parse_en1(json_array_get(params, 0), &tmp) ||
	    !parse_en2_size(json_array_get(params, 1), &tmp.en2_size)) {
		bad_line(s, HF_EPROTO, "mining.set_extranonce: expected [extranonce1 hex, "
			 "extranonce2_size %d-%d]", HF_STRATUM_EN2_MIN, HF_STRATUM_EN2_MAX);
		return;
	}
	ev = push_event(s, tmp.type);
	if (ev)
		*ev = tmp;
}

static void on_set_version_mask(hf_stratum *s, const json_t *params)
{
	hf_stratum_event *ev;
	uint32_t mask;

	if (!hex_u32(json_array_get(params, 0), &mask)) {
		bad_line(s, HF_EPROTO, "mining.set_version_mask: expected [8 hex digits]");
		return;
	}
	ev = push_event(s, HF_STRATUM_EV_VERSION_MASK);
	if (ev)
		ev->version_mask = mask;
}

static bool json_port(const json_t *v, uint16_t *port)
{
	uint64_t n;

	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
		*port = (uint16_t)json_integer_value(v);
		return true;
	}
	if (json_is_string(v) && hf_parse_u64(json_string_value(v), 0, 65535, &n)) {
		*port = (uint16_t)n;
		return true;
	}
	return false;
}

static void on_reconnect(hf_stratum *s, const json_t *params)
{
	hf_stratum_event tmp = { .type = HF_STRATUM_EV_RECONNECT }, *ev;
	size_t n = json_array_size(params);
	const json_t *host = json_array_get(params, 0), *wait = json_array_get(params, 2);

	if (n >= 1 && !json_is_string(host) && !json_is_null(host))
		goto bad;
	if (json_is_string(host) &&
	    !hf_strlcpy(tmp.host, json_string_value(host), sizeof tmp.host))
		goto bad;
	if (n >= 2 && !json_is_null(json_array_get(params, 1)) &&
	    !json_port(json_array_get(params, 1), &tmp.port))
		goto bad;
	if (n >= 3) {
		uint64_t w;
		if (json_is_integer(wait) && json_integer_value(wait) >= 0 &&
		    json_integer_value(wait) <= 3600)
			tmp.wait_s = (unsigned)json_integer_value(wait);
		else if (json_is_string(wait) && hf_parse_u64(json_string_value(wait), 0, 3600, &w))
			tmp.wait_s = (unsigned)w;
		else
			goto bad;
	}
	ev = push_event(s, tmp.type);
	if (ev)
		*ev = tmp;
	return;
bad:
	bad_line(s, HF_EPROTO, "client.reconnect: expected [host, port, wait] (each optional)");
}

static void on_show_message(hf_stratum *s, const json_t *params)
{
	const json_t *m = json_array_get(params, 0);
	hf_stratum_event *ev;

	if (!json_is_string(m)) {
		bad_line(s, HF_EPROTO, "client.show_message: expected [string]");
		return;
	}
	ev = push_event(s, HF_STRATUM_EV_MESSAGE);
	if (ev)
		copy_text(ev->text, sizeof ev->text, json_string_value(m));
}

static void handle_method(hf_stratum *s, const json_t *root, const char *method)
{
	const json_t *params = json_object_get(root, "params");
	json_t *idv = json_object_get(root, "id"), *owned = NULL;
	bool has_id = idv && !json_is_null(idv);

	if (!params || json_is_null(params))
		params = owned = json_array();
	if (!params)
		return;
	if (!json_is_array(params)) {
		bad_line(s, HF_EPROTO, "%s: params must be an array", method);
		return;
	}
	if (strcmp(method, "mining.notify") == 0)
		on_notify(s, params);
	else if (strcmp(method, "mining.set_difficulty") == 0)
		on_set_difficulty(s, params);
	else if (strcmp(method, "mining.set_extranonce") == 0)
		on_set_extranonce(s, params);
	else if (strcmp(method, "mining.set_version_mask") == 0)
		on_set_version_mask(s, params);
	else if (strcmp(method, "client.reconnect") == 0)
		on_reconnect(s, params);
	else if (strcmp(method, "client.show_message") == 0)
		on_show_message(s, params);
	else if (strcmp(method, "client.get_version") == 0) {
		if (has_id)
			reply(s, idv, json_string(s->user_agent), NULL);
	} else if (strcmp(method, "mining.ping") == 0) {
		if (has_id)
			reply(s, idv, json_string("pong"), NULL);
	} else {
		if (has_id)
			reply(s, idv, json_null(), json_pack("[i, s, n]", 20, "Method not found"));
		bad_line(s, HF_EUNSUPPORTED, "unknown method \"%.64s\"", method);
	}
	json_decref(owned);
}

static void handle_line(hf_stratum *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *method;

	s->c.lines++;
	if (!root) {
		bad_line(s, HF_EPARSE, "invalid JSON at column %d: %s", jerr.column, jerr.text);
		return;
	}
	if (!json_is_object(root)) {
		bad_line(s, HF_EPROTO, "expected a JSON object");
		goto done;
	}
	method = json_object_get(root, "method");
	if (method && !json_is_null(method)) {
		if (!json_is_string(method))
			bad_line(s, HF_EPROTO, "method must be a string");
		else
			handle_method(s, root, json_string_value(method));
	} else if (json_object_get(root, "id") &&
		   (json_object_get(root, "result") || json_object_get(root, "error"))) {
		handle_response(s, root);
	} else {
		bad_line(s, HF_EPROTO, "neither a request nor a response");
	}
done:
	json_decref(root);
}

int hf_stratum_feed(hf_stratum *s, const void *data, size_t len)
{
	const char *p = data, *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = (size_t)((nl ? nl : end) - p);

		if (!s->discarding) {
			if (s->line_len + chunk > s->max_line) {
				s->discarding = true;
				s->line_len = 0;
				bad_line(s, HF_ETOOBIG, "line over %zu bytes discarded", s->max_line);
			} else {
				memcpy(s->line + s->line_len, p, chunk);
				s->line_len += chunk;
			}
		}
		if (!nl)
			break;
		if (!s->discarding) {
			size_t n = s->line_len;
			if (n && s->line[n - 1] == '\r')
				n--;
			s->line[n] = '\0';
			if (n)
				handle_line(s, s->line, n);
		}
		s->discarding = false;
		s->line_len = 0;
		p = nl + 1;
	}
	return 0;
}
