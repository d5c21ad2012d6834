/* hf_coord_profit: the "policy" decision source: the coordinator's live profitability loop.
 * It reads profit.json (coord.json "profit_file": feeds, policy, classes, nodes, the mining and
 * inference payloads), runs the feed fetcher (hf_coord_feeds), and every policy.evaluate_s
 * evaluates every registered node with hf_coord_policy_eval over the live market and the
 * node's own reported figures (learnt per mode from its reports: hashrate and watts while
 * converged in mining, inference capacity and watts in inference, watts in idle, switch
 * duration from last_switch; its class's figures until it has reported them). A verdict that
 * changes a node's mode becomes a decision through hf_coord_decide(source "policy") with the
 * verdict's JSON as the instruction's reason; holds are the coordinator's (an operator-held
 * node is evaluated as held). The latest verdict of every node (hold, stale, streak ...) is
 * kept for GET /v1/policy, the feeds for GET /v1/feeds, and both in /metrics.
 * Threading: one thread of its own (the evaluation loop) besides the fetcher's; the views may
 * be called from any thread.
 */
#ifndef HF_COORD_PROFIT_H
#define HF_COORD_PROFIT_H

#include "hf_coord.h"

/* The source (hf_coord_add_source): started when coord.json names a profit_file. */
extern const hf_coord_source_ops hf_coord_source_policy;

/* (profit, additive) Reads and validates profit.json at path the way the source does at start
 * (every section: feeds, policy, classes, nodes, default_class, the mining and inference
 * payloads as a node would check them, initial_mode); errors start with the path and name the
 * field ("/etc/hashflop/profit.json: mining.pools[0].url: ..."). For --check-config. */
int hf_coord_profit_check(const char *path, hf_errbuf *eb);

#endif
