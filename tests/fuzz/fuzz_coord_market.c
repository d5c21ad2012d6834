/* fuzz_coord_market: libFuzzer target for the coordinator's readers of market input from
 * outside: a feed's HTTP body (hf_coord_feed_observe through a JSON pointer), a series CSV
 * (hf_coord_series_parse), and profit.json's "feeds" and fleet sections
 * (hf_coord_feeds_spec_parse, hf_coord_fleet_spec_parse).
 *
 * The first input byte picks what the rest is: 0-3 a feed body read through one of four
 * pointers (the mempool.space defaults and an escaped one) with the byte's high bits as the
 * HTTP status class; 4 a series; 5 a JSON text given to both section parsers. Any crash, leak,
 * sanitizer report, a value read that is not finite and >= 0, or a series that parses out of
 * order is a bug.
 * Threading: libFuzzer calls the target from one thread.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hf_coord_feed.h"
#include "hf_coord_policy.h"
#include "hf_coord_series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pointers[] = { "/USD", "", "/currentDifficulty", "/a~1b/0/~0c" };

static void feed_body(uint8_t sel, const char *body, size_t len)
{
	static const long statuses[] = { 200, 204, 301, 503 };
	hf_coord_feed_spec spec;
	hf_coord_feed_state st;
	double v;
	char why[HF_FEED_WHY_MAX];

	memset(&spec, 0, sizeof spec);
	spec.kind = HF_FEED_URL;
	strcpy(spec.pointer, pointers[sel & 3]);
	spec.scale = (sel & 0x10) ? 6.944444444444444e-11 : 1;
	spec.refresh_s = 60;
	spec.max_age_s = 600;
	spec.timeout_s = 10;
	spec.max_body = 4096;
	memset(&st, 0, sizeof st);
	if (hf_coord_feed_observe(&spec, &st, 1000, NULL, statuses[(sel >> 5) & 3], body, len) == 0) {
		if (!st.have || !isfinite(st.value) || st.value < 0)
			abort();
		if (!hf_coord_feed_value(&spec, &st, 2000, &v, why, sizeof why) || v != st.value)
			abort();
	} else if (st.have || !st.failing || !st.why[0] ||
		   hf_coord_feed_value(&spec, &st, 2000, &v, why, sizeof why)) {
		abort();
	}
}

static void series(const char *text, size_t len)
{
	hf_coord_series s;
	hf_errbuf eb;

	if (hf_coord_series_parse(text, len, "fuzz.csv", &s, &eb) == 0) {
		for (size_t i = 1; i < s.n; i++)
			if (s.rows[i].t_ms <= s.rows[i - 1].t_ms ||
			    s.rows[i].t_ms - s.rows[i - 1].t_ms != s.step_ms)
				abort();
		for (size_t i = 0; i < s.n; i++)
			if (!(s.rows[i].difficulty > 0) || !isfinite(s.rows[i].btc_usd) ||
			    s.rows[i].btc_usd < 0)
				abort();
		hf_coord_series_clear(&s);
	}
}

static void sections(const char *text, size_t len)
{
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	hf_coord_feeds_spec fs;
	hf_coord_fleet_spec fl;
	hf_errbuf eb;

	if (!root)
		return;
	if (hf_coord_feeds_spec_parse(json_object_get(root, "feeds"), &fs, &eb) == 0)
		json_decref(hf_coord_feeds_spec_json(&fs));
	if (hf_coord_fleet_spec_parse(root, &fl, &eb) == 0) {
		if (fl.nnodes && fl.nodes[0].id[0])
			(void)hf_coord_fleet_spec_class_of(&fl, fl.nodes[0].id);
		hf_coord_fleet_spec_clear(&fl);
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1 || size > (1u << 20))
		return 0;
	text = malloc(size); /* the rest, not NUL-terminated: the readers take a length */
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	switch (data[0] & 0x0f) {
	case 0: case 1: case 2: case 3:
		feed_body(data[0], text, size - 1);
		break;
	case 4:
		series(text, size - 1);
		break;
	case 5:
		sections(text, size - 1);
		break;
	default:
		break;
	}
	free(text);
	return 0;
}
