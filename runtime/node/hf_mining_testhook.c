/* hf_mining_testhook: parsing and applying the test-only scan faults.
 * Threading: see hf_mining_testhook.h.
 */
#include "hf_mining_testhook.h"

#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

#define CALL_MAX UINT64_C(1000000000000)
#define STALL_MAX_MS UINT64_C(600000)

static int parse_fail(hf_mining_testhook *h, const char *s, hf_errbuf *eb)
{
	char num[24];
	size_t n = strlen(s);
	bool after = n > 0 && s[n - 1] == '+';

	if (after)
		n--;
	if (n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, s, n);
	num[n] = '\0';
	if (!hf_parse_u64(num, 1, CALL_MAX, &h->fail_at))
		goto bad;
	h->fail_after = after;
	return 0;
bad:
	return hf_fail(eb, HF_ECONFIG, "%s: expected N or N+ (N >= 1: the N-th scan call fails; "
		       "+: and every later one), got \"%.32s\"", HF_MINING_TESTHOOK_FAIL_ENV, s);
}

static int parse_stall(hf_mining_testhook *h, const char *s, hf_errbuf *eb)
{
	const char *colon = strchr(s, ':');
	char num[24];
	size_t n = colon ? (size_t)(colon - s) : 0;

	if (!colon || n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, s, n);
	num[n] = '\0';
	if (!hf_parse_u64(num, 1, CALL_MAX, &h->stall_at) ||
	    !hf_parse_u64(colon + 1, 1, STALL_MAX_MS, &h->stall_ms))
		goto bad;
	return 0;
bad:
	return hf_fail(eb, HF_ECONFIG, "%s: expected N:MS (the N-th scan call blocks MS ms, "
		       "N >= 1, MS 1-600000), got \"%.32s\"", HF_MINING_TESTHOOK_STALL_ENV, s);
}

int hf_mining_testhook_parse(hf_mining_testhook *h, const char *fail, const char *stall,
			     hf_errbuf *eb)
{
	int r;

	h->active = false;
	h->fail_at = h->stall_at = h->stall_ms = 0;
	h->fail_after = false;
	atomic_store(&h->calls, 0);
	if (fail && (r = parse_fail(h, fail, eb)) < 0)
		return r;
	if (stall && (r = parse_stall(h, stall, eb)) < 0) {
		h->fail_at = 0;
		return r;
	}
	h->active = h->fail_at || h->stall_at;
	return 0;
}

int hf_mining_testhook_from_env(hf_mining_testhook *h, hf_errbuf *eb)
{
	return hf_mining_testhook_parse(h, getenv(HF_MINING_TESTHOOK_FAIL_ENV),
					getenv(HF_MINING_TESTHOOK_STALL_ENV), eb);
}

int hf_mining_testhook_scan(hf_mining_testhook *h, hf_errbuf *eb)
{
	uint64_t k = atomic_fetch_add(&h->calls, 1) + 1;

	if (h->stall_at && k == h->stall_at)
		hf_sleep_ms(h->stall_ms);
	if (h->fail_at && (k == h->fail_at || (h->fail_after && k > h->fail_at)))
		return hf_fail(eb, HF_EIO, "test hook %s: scan call %llu fails",
			       HF_MINING_TESTHOOK_FAIL_ENV, (unsigned long long)k);
	return 0;
}
