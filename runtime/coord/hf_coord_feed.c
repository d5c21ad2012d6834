/* hf_coord_feed: the market feeds' sans-I/O core: specs and their strict parser, RFC 6901
 * pointers, one fetch result applied to a feed's state, staleness, schedules, the halving, the
 * market snapshot.
 *
 * Failure: a fetch result that is not a usable number never changes a feed's value; it marks
 * the feed failing with a reason built here and passed through hf_text_clean (the reason may
 * quote the peer: an HTTP body snippet, jansson's error text, a string value), capped at
 * HF_FEED_WHY_MAX. A spec the parser refuses leaves *out unspecified and names the field.
 * Threading: reentrant; no state.
 */
#include "hf_coord_feed.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf_text.h"
#include "hf_util.h"

#define DEF_REFRESH_S 60u
#define DEF_TIMEOUT_S 10u
#define DEF_MAX_BODY ((size_t)1 << 20)
#define MAX_REFRESH_S 86400u
#define MAX_MAX_AGE_S 864000u
#define MAX_TIMEOUT_S 300u
#define MAX_MAX_BODY ((size_t)64 << 20)
#define POINTER_EVAL_MAX 1024
#define SATS_PER_BTC 100000000.0

static const char *const feed_names[HF_FEED_COUNT] = {
	[HF_FEED_BTC_USD] = "btc_usd",
	[HF_FEED_DIFFICULTY] = "difficulty",
	[HF_FEED_FEES_BTC] = "fees_btc",
	[HF_FEED_HEIGHT] = "height",
	[HF_FEED_SUBSIDY_BTC] = "subsidy_btc",
	[HF_FEED_POWER] = "power_usd_kwh",
	[HF_FEED_INFER_PRICE] = "inference_price",
	[HF_FEED_INFER_DEMAND] = "inference_demand",
};

const char *hf_coord_feed_name(hf_coord_feed_id id)
{
	if ((unsigned)id >= HF_FEED_COUNT)
		return NULL;
	return feed_names[id];
}

/* ---- defaults ---- */

static void url_defaults(hf_coord_feed_spec *f)
{
	memset(f, 0, sizeof *f);
	f->kind = HF_FEED_URL;
	f->scale = 1;
	f->refresh_s = DEF_REFRESH_S;
	f->max_age_s = 10 * DEF_REFRESH_S;
	f->timeout_s = DEF_TIMEOUT_S;
	f->max_body = DEF_MAX_BODY;
}

static void url_default(hf_coord_feed_spec *f, const char *url, const char *pointer,
			double scale)
{
	url_defaults(f);
	hf_strlcpy(f->url, url, sizeof f->url);
	hf_strlcpy(f->pointer, pointer, sizeof f->pointer);
	f->scale = scale;
}

static void const_default(hf_coord_feed_spec *f, double v)
{
	memset(f, 0, sizeof *f);
	f->kind = HF_FEED_CONST;
	f->value = v;
}

void hf_coord_feeds_spec_defaults(hf_coord_feeds_spec *s)
{
	memset(s, 0, sizeof *s);
	url_default(&s->feed[HF_FEED_BTC_USD], "https://mempool.space/api/v1/prices", "/USD", 1);
	url_default(&s->feed[HF_FEED_DIFFICULTY], "https://mempool.space/api/v1/mining/hashrate/3d",
		    "/currentDifficulty", 1);
	url_default(&s->feed[HF_FEED_FEES_BTC],
		    "https://mempool.space/api/v1/mining/reward-stats/144", "/totalFee",
		    1e-8 / 144);
	url_default(&s->feed[HF_FEED_HEIGHT], "https://mempool.space/api/blocks/tip/height", "", 1);
	memset(&s->feed[HF_FEED_SUBSIDY_BTC], 0, sizeof s->feed[HF_FEED_SUBSIDY_BTC]);
	const_default(&s->feed[HF_FEED_POWER], 0.05);
	const_default(&s->feed[HF_FEED_INFER_PRICE], 0);
	const_default(&s->feed[HF_FEED_INFER_DEMAND], 0);
}

/* ---- URL and pointer checks ---- */

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* Splits the authority of url (after the scheme, sl bytes) into host (brackets removed);
 * 0 or a message in why. */
static int url_host(const char *url, size_t sl, char *host, size_t hostsz, char *why, size_t n)
{
	const char *a = url + sl;
	size_t alen = strcspn(a, "/?#");
	const char *end = a + alen, *hs = a, *he;

	if (memchr(a, '@', alen))
		return snprintf(why, n, "must not hold credentials (user@host)"), -1;
	if (*a == '[') {
		hs = a + 1;
		he = memchr(hs, ']', (size_t)(end - hs));
		if (!he)
			return snprintf(why, n, "unclosed [ in the host"), -1;
		if (he + 1 < end && he[1] != ':')
			return snprintf(why, n, "junk after ] in the host"), -1;
	} else {
		he = memchr(a, ':', alen);
		if (!he)
			he = end;
	}
	if (he == hs)
		return snprintf(why, n, "has no host"), -1;
	if ((size_t)(he - hs) >= hostsz)
		return snprintf(why, n, "host too long"), -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	const char *port = (*he == ']') ? he + 1 : he;
	if (port < end && *port == ':') {
		char digits[8] = "";
		size_t plen = (size_t)(end - port - 1);
		uint64_t p;
		if (plen >= sizeof digits)
			return snprintf(why, n, "bad port"), -1;
		memcpy(digits, port + 1, plen);
		digits[plen] = '\0';
		if (!hf_parse_u64(digits, 1, 65535, &p))
			return snprintf(why, n, "bad port"), -1;
	}
	return 0;
}

/* 0 when url is acceptable for a feed; otherwise a message (no path) in why. */
static int url_check(const char *url, bool allow_plain, char *why, size_t n)
{
	char host[256];
	size_t sl;
	bool plain = false;

	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return snprintf(why, n, "must be printable ASCII without spaces "
				       "(percent-encode the rest)"), -1;
	if (strncasecmp(url, "https://", 8) == 0) {
		sl = 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		sl = 7;
		plain = true;
	} else {
		return snprintf(why, n, "expected an https:// URL (or http:// to a loopback host)"),
		       -1;
	}
	if (url_host(url, sl, host, sizeof host, why, n) != 0)
		return -1;
	if (plain && !allow_plain && !host_is_loopback(host))
		return snprintf(why, n, "http:// only to a loopback host (127.0.0.0/8, ::1, "
				       "localhost) unless feeds.allow_plain_http is true"), -1;
	return 0;
}

/* Syntax of an RFC 6901 pointer: 0 or a message in why. */
static int pointer_check(const char *ptr, char *why, size_t n)
{
	size_t len = strlen(ptr);

	if (len && ptr[0] != '/')
		return snprintf(why, n, "must be empty or start with /"), -1;
	if (!hf_utf8_valid(ptr, len))
		return snprintf(why, n, "not valid UTF-8"), -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)ptr[i];
		if (c < 0x20 || c == 0x7f)
			return snprintf(why, n, "holds a control character"), -1;
		if (c == '~' && ptr[i + 1] != '0' && ptr[i + 1] != '1')
			return snprintf(why, n, "~ at byte %zu is not ~0 or ~1", i), -1;
	}
	return 0;
}

static bool feed_needed(const hf_coord_feeds_spec *s, hf_coord_feed_id id)
{
	if (id == HF_FEED_SUBSIDY_BTC)
		return s->feed[id].kind != HF_FEED_NONE;
	if (id == HF_FEED_HEIGHT)
		return s->feed[HF_FEED_SUBSIDY_BTC].kind == HF_FEED_NONE;
	return true;
}

static int feed_check(const hf_coord_feeds_spec *s, hf_coord_feed_id id, hf_errbuf *eb)
{
	const hf_coord_feed_spec *f = &s->feed[id];
	const char *name = feed_names[id];
	char why[200];

	switch (f->kind) {
	case HF_FEED_NONE:
		if (feed_needed(s, id))
			return hf_fail(eb, HF_ECONFIG, "feeds.%s: not configured%s", name,
				       id == HF_FEED_HEIGHT ? " (needed unless subsidy_btc is)" : "");
		return 0;
	case HF_FEED_URL:
		if (url_check(f->url, s->allow_plain_http, why, sizeof why) != 0)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.url: %s", name, why);
		if (pointer_check(f->pointer, why, sizeof why) != 0)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.pointer: %s", name, why);
		if (!isfinite(f->scale) || f->scale <= 0)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.scale: expected a finite number > 0",
				       name);
		if (f->refresh_s < 1 || f->refresh_s > MAX_REFRESH_S || f->max_age_s < 1 ||
		    f->max_age_s > MAX_MAX_AGE_S || f->timeout_s < 1 ||
		    f->timeout_s > MAX_TIMEOUT_S || f->max_body < 1 || f->max_body > MAX_MAX_BODY)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s: refresh_s, max_age_s, timeout_s or "
				       "max_body out of range", name);
		return 0;
	case HF_FEED_CONST:
		if (!isfinite(f->value) || f->value < 0)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.value: expected a finite number >= 0",
				       name);
		return 0;
	case HF_FEED_SCHEDULE:
		if (f->nschedule < 1 || f->nschedule > HF_FEED_SCHEDULE_MAX ||
		    f->schedule[0].from_s != 0)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.schedule: 1 to %d slots, the first "
				       "from 00:00", name, HF_FEED_SCHEDULE_MAX);
		for (size_t i = 0; i < f->nschedule; i++)
			if ((i && f->schedule[i].from_s <= f->schedule[i - 1].from_s) ||
			    f->schedule[i].from_s >= 86400 || !isfinite(f->schedule[i].value) ||
			    f->schedule[i].value < 0)
				return hf_fail(eb, HF_ECONFIG, "feeds.%s.schedule[%zu]: bad slot",
					       name, i);
		if (f->utc_offset_min < -720 || f->utc_offset_min > 840)
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.utc_offset_min: expected -720..840",
				       name);
		return 0;
	}
	return hf_fail(eb, HF_ECONFIG, "feeds.%s: unknown kind", name);
}

int hf_coord_feeds_spec_check(const hf_coord_feeds_spec *s, hf_errbuf *eb)
{
	if (!s)
		return hf_fail(eb, HF_EINVAL, "no spec");
	for (int id = 0; id < HF_FEED_COUNT; id++) {
		int r = feed_check(s, (hf_coord_feed_id)id, eb);
		if (r)
			return r;
	}
	if (memchr(s->ca_file, '\0', sizeof s->ca_file) == NULL)
		return hf_fail(eb, HF_ECONFIG, "feeds.ca_file: too long");
	if (s->ca_file[0] && s->ca_file[0] != '/')
		return hf_fail(eb, HF_ECONFIG, "feeds.ca_file: expected an absolute path");
	return 0;
}

/* ---- parsing the "feeds" section ---- */

static int get_uint(const json_t *v, const char *name, const char *key, uint64_t min,
		    uint64_t max, uint64_t *out, hf_errbuf *eb)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max)
		return hf_fail(eb, HF_ECONFIG, "feeds.%s.%s: expected an integer %" PRIu64
			       "..%" PRIu64, name, key, min, max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_number(const json_t *v, const char *path, bool positive, double *out,
		      hf_errbuf *eb)
{
	double d;

	if (!json_is_number(v))
		return hf_fail(eb, HF_ECONFIG, "%s: expected a number", path);
	d = json_number_value(v);
	if (!isfinite(d) || d < 0 || (positive && d == 0))
		return hf_fail(eb, HF_ECONFIG, "%s: expected a finite number %s", path,
			       positive ? "> 0" : ">= 0");
	*out = d;
	return 0;
}

static int get_string(const json_t *v, const char *path, char *dst, size_t dstsz,
		      hf_errbuf *eb)
{
	if (!json_is_string(v))
		return hf_fail(eb, HF_ECONFIG, "%s: expected a string", path);
	if (json_string_length(v) >= dstsz || strlen(json_string_value(v)) != json_string_length(v))
		return hf_fail(eb, HF_ECONFIG, "%s: over %zu bytes or holds a NUL", path,
			       dstsz - 1);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int url_key(const char *name, const char *key, const json_t *v, hf_coord_feed_spec *f,
		   bool *age_given, hf_errbuf *eb)
{
	char path[96];
	uint64_t u = 0; /* -O3: gcc cannot see that hf_fail() is < 0 */
	int r;

	snprintf(path, sizeof path, "feeds.%s.%s", name, key);
	if (strcmp(key, "url") == 0)
		return get_string(v, path, f->url, sizeof f->url, eb);
	if (strcmp(key, "pointer") == 0)
		return get_string(v, path, f->pointer, sizeof f->pointer, eb);
	if (strcmp(key, "scale") == 0)
		return get_number(v, path, true, &f->scale, eb);
	if (strcmp(key, "refresh_s") == 0) {
		if ((r = get_uint(v, name, key, 1, MAX_REFRESH_S, &u, eb)) < 0)
			return r;
		f->refresh_s = (unsigned)u;
		return r;
	}
	if (strcmp(key, "max_age_s") == 0) {
		if ((r = get_uint(v, name, key, 1, MAX_MAX_AGE_S, &u, eb)) < 0)
			return r;
		f->max_age_s = (unsigned)u;
		*age_given = true;
		return r;
	}
	if (strcmp(key, "timeout_s") == 0) {
		if ((r = get_uint(v, name, key, 1, MAX_TIMEOUT_S, &u, eb)) < 0)
			return r;
		f->timeout_s = (unsigned)u;
		return r;
	}
	if (strcmp(key, "max_body") == 0) {
		if ((r = get_uint(v, name, key, 1, MAX_MAX_BODY, &u, eb)) < 0)
			return r;
		f->max_body = (size_t)u;
		return r;
	}
	return hf_fail(eb, HF_ECONFIG, "%s: unknown key (a URL feed has url, pointer, scale, "
		       "refresh_s, max_age_s, timeout_s, max_body)", path);
}

static int parse_url_feed(const char *name, const json_t *j, hf_coord_feed_spec *f,
			  hf_errbuf *eb)
{
	const char *key;
	json_t *v;
	bool age_given = false;

	url_defaults(f);
	json_object_foreach((json_t *)j, key, v) {
		int r = url_key(name, key, v, f, &age_given, eb);
		if (r)
			return r;
	}
	if (!age_given)
		f->max_age_s = 10 * f->refresh_s > MAX_MAX_AGE_S ? MAX_MAX_AGE_S : 10 * f->refresh_s;
	return 0;
}

/* "HH:MM" (two digits each) into seconds after midnight. */
static bool parse_hhmm(const char *s, uint32_t *out)
{
	if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return false;
	unsigned h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
	unsigned m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
	if (h > 23 || m > 59)
		return false;
	*out = h * 3600 + m * 60;
	return true;
}

static int parse_slot(const char *name, size_t i, const json_t *slot, hf_coord_feed_spec *f,
		      hf_errbuf *eb)
{
	char path[96];
	const json_t *from = json_object_get(slot, "from");
	const json_t *value = json_object_get(slot, "value");
	uint32_t s;

	snprintf(path, sizeof path, "feeds.%s.schedule[%zu]", name, i);
	if (!json_is_object(slot) || json_object_size(slot) != 2 || !from || !value)
		return hf_fail(eb, HF_ECONFIG, "%s: expected {\"from\": \"HH:MM\", \"value\": N}",
			       path);
	if (!json_is_string(from) || !parse_hhmm(json_string_value(from), &s))
		return hf_fail(eb, HF_ECONFIG, "%s.from: expected \"HH:MM\" (00:00 to 23:59)", path);
	if (i == 0 && s != 0)
		return hf_fail(eb, HF_ECONFIG, "%s.from: the first slot must start at \"00:00\"",
			       path);
	if (i > 0 && s <= f->schedule[i - 1].from_s)
		return hf_fail(eb, HF_ECONFIG, "%s.from: must be later than the slot before", path);
	f->schedule[i].from_s = s;
	snprintf(path + strlen(path), sizeof path - strlen(path), ".value");
	return get_number(value, path, false, &f->schedule[i].value, eb);
}

static int parse_schedule_feed(const char *name, const json_t *j, hf_coord_feed_spec *f,
			       hf_errbuf *eb)
{
	const json_t *arr = json_object_get(j, "schedule");
	const char *key;
	json_t *v;

	memset(f, 0, sizeof *f);
	f->kind = HF_FEED_SCHEDULE;
	json_object_foreach((json_t *)j, key, v) {
		if (strcmp(key, "utc_offset_min") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < -720 ||
			    json_integer_value(v) > 840)
				return hf_fail(eb, HF_ECONFIG, "feeds.%s.utc_offset_min: expected an "
					       "integer -720..840", name);
			f->utc_offset_min = (int)json_integer_value(v);
		} else if (strcmp(key, "schedule") != 0) {
			return hf_fail(eb, HF_ECONFIG, "feeds.%s.%s: unknown key (a schedule feed "
				       "has schedule, utc_offset_min)", name, key);
		}
	}
	if (!json_is_array(arr) || json_array_size(arr) < 1 ||
	    json_array_size(arr) > HF_FEED_SCHEDULE_MAX)
		return hf_fail(eb, HF_ECONFIG, "feeds.%s.schedule: expected an array of 1 to %d "
			       "slots", name, HF_FEED_SCHEDULE_MAX);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		int r = parse_slot(name, i, json_array_get(arr, i), f, eb);
		if (r)
			return r;
	}
	f->nschedule = json_array_size(arr);
	return 0;
}

static int parse_const_feed(const char *name, const json_t *j, hf_coord_feed_spec *f,
			    hf_errbuf *eb)
{
	char path[96];

	if (json_object_size(j) != 1)
		return hf_fail(eb, HF_ECONFIG, "feeds.%s: a constant feed has only \"value\"", name);
	memset(f, 0, sizeof *f);
	f->kind = HF_FEED_CONST;
	snprintf(path, sizeof path, "feeds.%s.value", name);
	return get_number(json_object_get(j, "value"), path, false, &f->value, eb);
}

static int parse_feed(hf_coord_feed_id id, const json_t *j, hf_coord_feed_spec *f,
		      hf_errbuf *eb)
{
	const char *name = feed_names[id];
	int forms;

	if (json_is_null(j) && (id == HF_FEED_SUBSIDY_BTC || id == HF_FEED_HEIGHT)) {
		memset(f, 0, sizeof *f);
		return 0;
	}
	if (!json_is_object(j))
		return hf_fail(eb, HF_ECONFIG, "feeds.%s: expected an object ({\"url\": ...}, "
			       "{\"value\": N} or {\"schedule\": [...]})%s", name,
			       id == HF_FEED_SUBSIDY_BTC || id == HF_FEED_HEIGHT ? " or null" : "");
	forms = !!json_object_get(j, "url") + !!json_object_get(j, "value") +
		!!json_object_get(j, "schedule");
	if (forms != 1)
		return hf_fail(eb, HF_ECONFIG, "feeds.%s: expected exactly one of \"url\", "
			       "\"value\", \"schedule\"", name);
	if (json_object_get(j, "url"))
		return parse_url_feed(name, j, f, eb);
	if (json_object_get(j, "value"))
		return parse_const_feed(name, j, f, eb);
	return parse_schedule_feed(name, j, f, eb);
}

static int parse_top_key(const char *key, const json_t *v, hf_coord_feeds_spec *out,
			 hf_errbuf *eb)
{
	for (int id = 0; id < HF_FEED_COUNT; id++)
		if (strcmp(key, feed_names[id]) == 0)
			return parse_feed((hf_coord_feed_id)id, v, &out->feed[id], eb);
	if (strcmp(key, "ca_file") == 0)
		return get_string(v, "feeds.ca_file", out->ca_file, sizeof out->ca_file, eb);
	if (strcmp(key, "allow_plain_http") == 0) {
		if (!json_is_boolean(v))
			return hf_fail(eb, HF_ECONFIG, "feeds.allow_plain_http: expected true or false");
		out->allow_plain_http = json_is_true(v);
		return 0;
	}
	return hf_fail(eb, HF_ECONFIG, "feeds.%s: unknown key (expected btc_usd, difficulty, "
		       "fees_btc, height, subsidy_btc, power_usd_kwh, inference_price, "
		       "inference_demand, ca_file, allow_plain_http)", key);
}

int hf_coord_feeds_spec_parse(const json_t *feeds, hf_coord_feeds_spec *out, hf_errbuf *eb)
{
	const char *key;
	json_t *v;

	hf_errbuf_clear(eb);
	hf_coord_feeds_spec_defaults(out);
	if (!feeds)
		return 0;
	if (!json_is_object(feeds))
		return hf_fail(eb, HF_ECONFIG, "feeds: expected an object");
	json_object_foreach((json_t *)feeds, key, v) {
		int r = parse_top_key(key, v, out, eb);
		if (r)
			return r;
	}
	return hf_coord_feeds_spec_check(out, eb);
}

/* ---- the spec as JSON ---- */

static json_t *schedule_json(const hf_coord_feed_spec *f)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < f->nschedule; i++) {
		char hhmm[8];
		snprintf(hhmm, sizeof hhmm, "%02u:%02u", (unsigned)(f->schedule[i].from_s / 3600) % 100,
			 (unsigned)(f->schedule[i].from_s % 3600) / 60);
		json_array_append_new(arr, json_pack("{s:s, s:f}", "from", hhmm, "value",
						     f->schedule[i].value));
	}
	return arr;
}

static json_t *feed_spec_json(const hf_coord_feed_spec *f)
{
	switch (f->kind) {
	case HF_FEED_URL:
		return json_pack("{s:s, s:s, s:f, s:I, s:I, s:I, s:I}", "url", f->url, "pointer",
				 f->pointer, "scale", f->scale, "refresh_s", (json_int_t)f->refresh_s,
				 "max_age_s", (json_int_t)f->max_age_s, "timeout_s",
				 (json_int_t)f->timeout_s, "max_body", (json_int_t)f->max_body);
	case HF_FEED_CONST:
		return json_pack("{s:f}", "value", f->value);
	case HF_FEED_SCHEDULE:
		return json_pack("{s:o, s:i}", "schedule", schedule_json(f), "utc_offset_min",
				 f->utc_offset_min);
	case HF_FEED_NONE:
		break;
	}
	return json_null();
}

json_t *hf_coord_feeds_spec_json(const hf_coord_feeds_spec *s)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (int id = 0; id < HF_FEED_COUNT; id++) {
		json_t *f = feed_spec_json(&s->feed[id]);
		if (!f || json_object_set_new(o, feed_names[id], f) != 0)
			goto fail;
	}
	if (json_object_set_new(o, "ca_file", json_string(s->ca_file)) != 0 ||
	    json_object_set_new(o, "allow_plain_http", json_boolean(s->allow_plain_http)) != 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* ---- RFC 6901 ---- */

/* A token quoted for a message: cleaned, at most 64 bytes. */
static void quote_token(char *dst, size_t dstsz, const char *tok)
{
	hf_text_clean(dst, dstsz < 65 ? dstsz : 65, tok, strlen(tok));
}

static const char *type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

/* An array index token: "0" or [1-9][0-9]* within size_t. */
static bool array_index(const char *tok, size_t *out)
{
	size_t v = 0;

	if (!*tok || (tok[0] == '0' && tok[1]))
		return false;
	for (const char *p = tok; *p; p++) {
		if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*p - '0');
	}
	*out = v;
	return true;
}

static int pointer_step(const json_t *cur, const char *tok, const json_t **next, hf_errbuf *eb)
{
	char q[68];
	size_t idx;

	quote_token(q, sizeof q, tok);
	if (json_is_object(cur)) {
		*next = json_object_get(cur, tok);
		if (!*next)
			return hf_fail(eb, HF_ENOTFOUND, "no member \"%s\"", q);
		return 0;
	}
	if (json_is_array(cur)) {
		if (strcmp(tok, "-") == 0)
			return hf_fail(eb, HF_ENOTFOUND, "\"-\" designates no element (past the end "
				       "of an array)");
		if (!array_index(tok, &idx))
			return hf_fail(eb, HF_ENOTFOUND, "\"%s\" is not an array index", q);
		if (idx >= json_array_size(cur))
			return hf_fail(eb, HF_ENOTFOUND, "index %zu out of range (%zu elements)", idx,
				       json_array_size(cur));
		*next = json_array_get(cur, idx);
		return 0;
	}
	return hf_fail(eb, HF_ENOTFOUND, "\"%s\": %s holds no members", q, type_name(cur));
}

/* Copies the token at *p (after its '/') unescaped into tok, advancing *p to the next '/'. */
static int pointer_token(const char **p, char *tok, hf_errbuf *eb, const char *ptr)
{
	size_t n = 0;
	const char *s = *p;

	for (; *s && *s != '/'; s++) {
		char c = *s;
		if (c == '~') {
			if (s[1] != '0' && s[1] != '1')
				return hf_fail(eb, HF_EINVAL, "~ at byte %zu is not ~0 or ~1",
					       (size_t)(s - ptr));
			c = s[1] == '0' ? '~' : '/';
			s++;
		}
		tok[n++] = c;
	}
	tok[n] = '\0';
	*p = s;
	return 0;
}

int hf_coord_json_pointer(const json_t *root, const char *ptr, const json_t **out,
			  hf_errbuf *eb)
{
	char tok[POINTER_EVAL_MAX + 1];
	const json_t *cur = root;
	const char *p = ptr;

	*out = NULL;
	if (!root || !ptr)
		return hf_fail(eb, HF_EINVAL, "no document or pointer");
	if (strlen(ptr) > POINTER_EVAL_MAX)
		return hf_fail(eb, HF_EINVAL, "pointer over %d bytes", POINTER_EVAL_MAX);
	if (*ptr && *ptr != '/')
		return hf_fail(eb, HF_EINVAL, "must be empty or start with /");
	while (*p == '/') {
		p++;
		int r = pointer_token(&p, tok, eb, ptr);
		if (r == 0)
			r = pointer_step(cur, tok, &cur, eb);
		if (r)
			return r;
	}
	*out = cur;
	return 0;
}

/* ---- one fetch result ---- */

/* JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool decimal_syntax(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (isdigit((unsigned char)*s))
			s++;
	else
		return false;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* The number j holds (a JSON number or a decimal string); false with a message in why. */
static bool number_of(const json_t *j, double *out, char *why, size_t n)
{
	if (json_is_integer(j)) {
		*out = (double)json_integer_value(j);
		return true;
	}
	if (json_is_real(j)) {
		*out = json_real_value(j);
		return true;
	}
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		char *end;
		if (json_string_length(j) <= 64 && strlen(s) == json_string_length(j) &&
		    decimal_syntax(s)) {
			*out = strtod(s, &end);
			if (*end == '\0')
				return true;
		}
		snprintf(why, n, "value \"%.64s\" is not a decimal number", s);
		return false;
	}
	snprintf(why, n, "value is %s, not a number", type_name(j));
	return false;
}

static int feed_fail(hf_coord_feed_state *st, uint64_t now_ms, int code, const char *why)
{
	hf_text_clean(st->why, sizeof st->why, why, strlen(why));
	st->why_ms = now_ms;
	st->failing = true;
	st->fail_total++;
	st->last_fetch_ms = now_ms;
	return code;
}

/* The number in body at the feed's pointer, scaled; 0 or an error code with why. */
static int read_value(const hf_coord_feed_spec *spec, const char *body, size_t len, double *v,
		      char *why, size_t n)
{
	json_error_t je;
	hf_errbuf eb;
	const json_t *at;
	double raw;
	json_t *doc = json_loadb(body ? body : "", body ? len : 0, JSON_DECODE_ANY, &je);
	int r = 0;

	if (!doc) {
		snprintf(why, n, "bad JSON at byte %d: %s", je.position, je.text);
		return HF_EPARSE;
	}
	if ((r = hf_coord_json_pointer(doc, spec->pointer, &at, &eb)) != 0) {
		snprintf(why, n, "pointer %s: %s", spec->pointer[0] ? spec->pointer : "\"\"", eb.msg);
	} else if (!number_of(at, &raw, why, n)) {
		r = HF_ERANGE;
	} else {
		*v = raw * spec->scale;
		if (isnan(*v))
			r = HF_ERANGE, snprintf(why, n, "value is NaN");
		else if (isinf(*v))
			r = HF_ERANGE, snprintf(why, n, "value is infinite (%g * scale %g)", raw,
						spec->scale);
		else if (*v < 0)
			r = HF_ERANGE, snprintf(why, n, "value is negative (%g)", raw);
	}
	json_decref(doc);
	return r;
}

int hf_coord_feed_observe(const hf_coord_feed_spec *spec, hf_coord_feed_state *st,
			  uint64_t now_ms, const char *transport_err, long http_status,
			  const char *body, size_t len)
{
	char why[HF_FEED_WHY_MAX + 160];
	double v = 0;
	int r;

	if (transport_err)
		return feed_fail(st, now_ms, HF_EIO, transport_err);
	if (http_status < 200 || http_status > 299) {
		char snip[64] = "";
		if (body && len)
			hf_text_clean(snip, sizeof snip, body, len);
		snprintf(why, sizeof why, "HTTP %ld%s%s", http_status, snip[0] ? ": " : "", snip);
		return feed_fail(st, now_ms, HF_EREFUSED, why);
	}
	if (len > spec->max_body) {
		snprintf(why, sizeof why, "body over max_body (%zu bytes)", spec->max_body);
		return feed_fail(st, now_ms, HF_ETOOBIG, why);
	}
	if ((r = read_value(spec, body, len, &v, why, sizeof why)) != 0)
		return feed_fail(st, now_ms, r, why);
	st->have = true;
	st->value = v;
	st->value_ms = now_ms;
	st->failing = false;
	st->ok_total++;
	st->last_fetch_ms = now_ms;
	return 0;
}

/* ---- values, schedules, the halving, the market ---- */

bool hf_coord_feed_value(const hf_coord_feed_spec *spec, const hf_coord_feed_state *st,
			 uint64_t now_ms, double *v, char *why, size_t whylen)
{
	uint64_t age_s;

	if (why && whylen)
		why[0] = '\0';
	switch (spec->kind) {
	case HF_FEED_NONE:
		if (why)
			snprintf(why, whylen, "not configured");
		return false;
	case HF_FEED_CONST:
		*v = spec->value;
		return true;
	case HF_FEED_SCHEDULE:
		*v = hf_coord_feed_schedule_at(spec, now_ms);
		return true;
	case HF_FEED_URL:
		break;
	}
	if (st->failing) {
		uint64_t since = now_ms > st->why_ms ? (now_ms - st->why_ms) / 1000 : 0;
		if (why && whylen) {
			snprintf(why, whylen, "%s (since %" PRIu64 " s)", st->why, since);
			hf_utf8_trim(why);
		}
		return false;
	}
	if (!st->have) {
		if (why)
			snprintf(why, whylen, "never fetched");
		return false;
	}
	age_s = now_ms > st->value_ms ? (now_ms - st->value_ms) / 1000 : 0;
	if (now_ms > st->value_ms && now_ms - st->value_ms > (uint64_t)spec->max_age_s * 1000) {
		if (why)
			snprintf(why, whylen, "%" PRIu64 " s old (max_age_s %u)", age_s,
				 spec->max_age_s);
		return false;
	}
	*v = st->value;
	return true;
}

double hf_coord_feed_schedule_at(const hf_coord_feed_spec *spec, uint64_t now_ms)
{
	int64_t local = (int64_t)(now_ms / 1000) + (int64_t)spec->utc_offset_min * 60;
	int64_t sod = local % 86400;
	double v = spec->nschedule ? spec->schedule[0].value : 0;

	if (sod < 0)
		sod += 86400;
	for (size_t i = 0; i < spec->nschedule && spec->schedule[i].from_s <= sod; i++)
		v = spec->schedule[i].value;
	return v;
}

double hf_coord_subsidy_btc(uint64_t height)
{
	uint64_t halvings = height / 210000;

	if (halvings >= 64)
		return 0;
	return (double)((uint64_t)5000000000 >> halvings) / SATS_PER_BTC;
}

/* "name: why; name: why" into dst, every stale feed named: each why is cut (on a character
 * boundary) to an equal share of the room. */
static void stale_join(char *dst, size_t dstsz, const char *names[],
		       char whys[][HF_FEED_WHY_MAX + 64], size_t n)
{
	size_t used = 0, share;

	dst[0] = '\0';
	if (!n)
		return;
	share = dstsz / n;
	for (size_t i = 0; i < n && used + 1 < dstsz; i++) {
		char part[HF_FEED_WHY_MAX + 96], cut[HF_FEED_WHY_MAX + 96];
		size_t room = share < sizeof cut ? share : sizeof cut;
		snprintf(part, sizeof part, "%s%s: %s", i ? "; " : "", names[i], whys[i]);
		if (i + 1 == n)
			room = sizeof cut; /* the last one takes what is left */
		hf_strlcpy(cut, part, room);
		hf_strlcpy(dst + used, cut, dstsz - used);
		used = strlen(dst);
	}
}

static double *market_field(hf_coord_market *m, hf_coord_feed_id id)
{
	switch (id) {
	case HF_FEED_BTC_USD: return &m->btc_usd;
	case HF_FEED_DIFFICULTY: return &m->difficulty;
	case HF_FEED_FEES_BTC: return &m->fees_btc;
	case HF_FEED_SUBSIDY_BTC: return &m->subsidy_btc;
	case HF_FEED_POWER: return &m->power_usd_kwh;
	case HF_FEED_INFER_PRICE: return &m->infer_price;
	case HF_FEED_INFER_DEMAND: return &m->infer_demand;
	default: return NULL;
	}
}

void hf_coord_feeds_market_of(const hf_coord_feeds_spec *spec,
			      const hf_coord_feed_state st[HF_FEED_COUNT], uint64_t now_ms,
			      hf_coord_market *m)
{
	const char *names[HF_FEED_COUNT];
	char whys[HF_FEED_COUNT][HF_FEED_WHY_MAX + 64];
	size_t nstale = 0;

	memset(m, 0, sizeof *m);
	m->at_ms = now_ms;
	for (int i = 0; i < HF_FEED_COUNT; i++) {
		hf_coord_feed_id id = (hf_coord_feed_id)i;
		double v = 0;
		if (!feed_needed(spec, id))
			continue;
		if (!hf_coord_feed_value(&spec->feed[id], &st[id], now_ms, &v, whys[nstale],
					 sizeof whys[nstale])) {
			names[nstale++] = feed_names[id];
			v = st[id].have ? st[id].value : 0;
		}
		if (id == HF_FEED_HEIGHT)
			m->subsidy_btc = v >= 64.0 * 210000 ? 0 : hf_coord_subsidy_btc((uint64_t)v);
		else
			*market_field(m, id) = v;
	}
	m->stale = nstale > 0;
	stale_join(m->stale_why, sizeof m->stale_why, names, whys, nstale);
}
