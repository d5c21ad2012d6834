/* hf_coord_report: the node report v1 (POST /v1/nodes/{id}/report) validated field by field:
 * unknown keys refused, numbers finite and >= 0, enumerations checked, strings capped (64
 * bytes for ids and names, 256 for detail) and cleaned (hf_text_clean). Sans-I/O: bytes in,
 * a validated JSON object and a summary out.
 *
 * Invariants: on success the returned object holds only the contract's keys with values of
 * the contract's types, every string valid UTF-8 without control characters; on failure eb
 * names the field path ("power.watts: expected a finite number >= 0, got string \"x\"").
 * Threading: reentrant; no state.
 */
#ifndef HF_COORD_REPORT_H
#define HF_COORD_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_COORD_REPORT_ID_MAX 64
#define HF_COORD_REPORT_DETAIL_MAX 256

typedef struct hf_coord_report_sum {
	uint64_t wall_ms, seq, applied_issued_ms;
	char mode[16], desired_mode[16], phase[16], convergence[16];
	bool converged;
	double hashrate_hs, flops, inferences_per_s;
	bool has_power;
	double watts;
	char power_source[HF_COORD_REPORT_ID_MAX + 1];
	char version[HF_COORD_REPORT_ID_MAX + 1];
	/* issue 15 (profit, additive): the report's last_switch, for the policy's switch_s */
	bool has_switch;
	uint64_t switch_seq;
	double switch_total_ms;  /* -1 when last_switch.total_ms is null or absent */
} hf_coord_report_sum;

/* Parses and validates a report body for node (the id in the path) of fleet. 0 with *out (new
 * reference) and *sum; HF_EPARSE (not JSON, not an object), HF_ECONFIG (a field: eb starts with
 * its path) or HF_EREFUSED (node or fleet does not match: eb says which) otherwise. */
int hf_coord_report_parse(const char *body, size_t len, const char *node, const char *fleet,
			  json_t **out, hf_coord_report_sum *sum, hf_errbuf *eb);

#endif
