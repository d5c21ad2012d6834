/* hf_coord_feeds: the feed fetcher: one thread that fetches every due URL feed concurrently
 * with libcurl multi (TLS verified: peer and host, the system's CA store or feeds.ca_file;
 * connect and total timeouts; redirects refused; bodies capped at max_body), applies each
 * result with hf_coord_feed_observe, and serves snapshots: the market for the policy, the
 * feeds' state for GET /v1/feeds, and Prometheus lines for /metrics.
 *
 * Invariants: a fetch never blocks a reader (snapshots copy the state under a short lock);
 * every feed is fetched at most once per refresh_s (a failed one is retried after
 * min(refresh_s, 10 s)), except when a refresh is asked for; fetches run in rounds (the feeds
 * due when a round starts, fetched concurrently; the next round starts when the last transfer
 * of this one has finished, so a hanging server delays the others' next fetch by at most its
 * timeout_s); hf_coord_feeds_free aborts the transfers in flight and returns at once (a name
 * lookup in progress in libcurl's resolver thread is waited for), within the largest
 * timeout_s in any case. http:// and https:// only; a redirect is not followed (a 3xx is a
 * failure, "HTTP 302"); hf_coord_feeds_new refuses a spec hf_coord_feeds_spec_check refuses
 * and a ca_file it cannot read (HF_ECONFIG).
 * Threading: the fetcher thread owns the curl handles; every other function may be called
 * from any thread.
 */
#ifndef HF_COORD_FEEDS_H
#define HF_COORD_FEEDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_buf.h"
#include "hf_coord_feed.h"
#include "hf_coord_policy.h"
#include "hf_error.h"

typedef struct hf_coord_feeds hf_coord_feeds;

/* Starts the fetcher (the first round at once). HF_ENOMEM, HF_EIO (curl could not start). */
int hf_coord_feeds_new(const hf_coord_feeds_spec *spec, hf_coord_feeds **out, hf_errbuf *eb);
/* Stops the thread (in-flight transfers aborted) and frees. NULL accepted. */
void hf_coord_feeds_free(hf_coord_feeds *f);

/* The market at now_ms (hf_coord_feeds_market_of over the current state). */
void hf_coord_feeds_market(hf_coord_feeds *f, uint64_t now_ms, hf_coord_market *m);
/* The state of feed id (a copy). */
void hf_coord_feeds_state(hf_coord_feeds *f, hf_coord_feed_id id, hf_coord_feed_state *out);
/* Fetch rounds completed so far (tests wait on it). */
uint64_t hf_coord_feeds_rounds(hf_coord_feeds *f);
/* Makes every URL feed due now (tests; SIGHUP). */
void hf_coord_feeds_refresh_now(hf_coord_feeds *f);
/* hf_coord_feeds_refresh_now, returning the number of the first round that fetches every URL
 * feed after this call (rounds are batches: the feeds due when one starts are fetched together
 * and it completes when the last of them has; a request during a round is served by the next
 * one). With no URL feed configured a round completes at once. */
uint64_t hf_coord_feeds_refresh(hf_coord_feeds *f);
/* Waits until hf_coord_feeds_rounds(f) >= round or timeout_ms passes; true when it got there. */
bool hf_coord_feeds_wait_round(hf_coord_feeds *f, uint64_t round, uint64_t timeout_ms);

/* GET /v1/feeds: {"feeds": {NAME: {"kind": "url"|"value"|"schedule", "url"?, "pointer"?,
 * "value": N|null, "fresh": bool, "age_s": N|null, "stale_why": "..."|null, "last_error":
 * "..."|null, "ok_total", "fail_total", "next_fetch_ms"?}}, "market": {the snapshot's figures,
 * "stale", "stale_why"}} (new reference; NULL when out of memory). A feed not configured
 * (subsidy_btc by default) is not listed. A URL feed's "value" is its last good value (null
 * before the first), shown also while stale; "age_s" is that value's age; "last_error" the
 * last failure, kept after a recovery; "next_fetch_ms" null before the first fetch. The
 * market's keys: "at_ms", "btc_usd", "difficulty", "fees_btc", "subsidy_btc", "power_usd_kwh",
 * "inference_price", "inference_demand" (hf_coord_verdict_json's names), "stale",
 * "stale_why" (null when fresh). */
json_t *hf_coord_feeds_json(hf_coord_feeds *f, uint64_t now_ms);
/* hashflop_coord_feed_value{feed}, _feed_fresh{feed}, _feed_age_seconds{feed},
 * _feed_fetch_total{feed,result="ok"|"error"} in the Prometheus text format (each family's
 * HELP and TYPE lines, then one sample per configured feed: _value only once a URL feed has a
 * value, _age_seconds and _fetch_total only for URL feeds). */
void hf_coord_feeds_metrics(hf_coord_feeds *f, uint64_t now_ms, hf_buf *b);

#endif
