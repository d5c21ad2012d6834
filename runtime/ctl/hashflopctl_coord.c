/* hashflopctl_coord: `hashflopctl fleet` and `hashflopctl decisions`, a coordinator's view
 * (GET /v1/fleet, GET /v1/decisions; runtime/coord/README.md), printed as tables or as JSON;
 * a decision of the profitability policy gets a second line (from -> to, rule, each mode's
 * margin, why). Text from the coordinator is cleaned before it is printed.
 * Threading: single-threaded.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashflopctl_priv.h"
#include "hf_text.h"
#include "hf_util.h"

/* Human duration of ms: "850 ms", "42 s", "7 m", "3 h", "2 d". */
static void fmt_age(char *dst, size_t dstsz, double ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(dst, dstsz, "%.0f ms", ms);
	else if (ms < 120000)
		snprintf(dst, dstsz, "%.1f s", ms / 1000);
	else if (ms < 7200000)
		snprintf(dst, dstsz, "%.0f m", ms / 60000);
	else if (ms < 172800000)
		snprintf(dst, dstsz, "%.0f h", ms / 3600000);
	else
		snprintf(dst, dstsz, "%.0f d", ms / 86400000);
}

/* A string field of a coordinator's document for a table cell: cleaned, "-" when absent. */
static const char *cell(const json_t *obj, const char *key, char *buf, size_t bufsz)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s || !s[0])
		return "-";
	hf_text_clean(buf, bufsz, s, strlen(s));
	return buf;
}

/* GETs path from the coordinator (with the admin token when not NULL) and parses the answer
 * as a JSON object (*out); 0 or the exit status. raw: print the answer as it came instead. */
static int coord_get(const char *cmd, const char *coord, const char *path, const char *ca,
		     const char *token, bool raw, json_t **out)
{
	char *answer = NULL;
	int rc = hf_ctl_http_call_auth(cmd, coord, path, NULL, 0, ca, token, &answer);

	*out = NULL;
	if (rc != 0)
		return rc;
	*out = json_loads(answer, 0, NULL);
	if (raw || !json_is_object(*out)) {
		printf("%s%s", answer, answer[0] && answer[strlen(answer) - 1] == '\n' ? "" : "\n");
		if (!json_is_object(*out))
			rc = hf_ctl_fail(cmd, "the coordinator's answer is not a JSON object");
		json_decref(*out);
		*out = NULL;
	}
	free(answer);
	return rc;
}

/* The options fleet and decisions share: --coordinator URL [--ca-file PEM]
 * [--token-file FILE] [--json]. */
typedef struct coord_opts {
	const char *coord, *ca, *token_file;
	char token[257];
	bool raw;
} coord_opts;

/* Reads the admin token file (one line) into o->token when --token-file was given. */
static int coord_token(const char *cmd, coord_opts *o)
{
	char *data = NULL;
	size_t len = 0;

	if (!o->token_file)
		return 0;
	if (hf_ctl_read_input(cmd, o->token_file, &data, &len) != 0)
		return 1;
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	bool ok = len >= 16 && len < sizeof o->token;
	for (size_t i = 0; ok && i < len; i++)
		ok = data[i] >= '!' && data[i] <= '~';
	if (ok) {
		memcpy(o->token, data, len);
		o->token[len] = '\0';
	}
	free(data);
	return ok ? 0 : hf_ctl_fail(cmd, "%s: expected one line of 16 to 256 printable characters (the "
			     "coordinator's admin token)", o->token_file);
}

static void print_fleet_node(const json_t *n, uint64_t now)
{
	char id[72], mode[24], desired[24], conv[48], age[24], watts[24], b[64];
	const json_t *rep = json_object_get(n, "report");
	const json_t *since = json_object_get(n, "converged_since_ms");
	const json_t *w = json_object_get(json_object_get(rep, "power"), "watts");
	const json_t *ra = json_object_get(n, "last_report_age_s");

	snprintf(id, sizeof id, "%s", cell(n, "id", b, sizeof b));
	snprintf(mode, sizeof mode, "%s", cell(n, "mode", b, sizeof b));
	snprintf(desired, sizeof desired, "%s", cell(n, "desired_mode", b, sizeof b));
	if (!rep)
		snprintf(conv, sizeof conv, "no report yet");
	else if (json_is_true(json_object_get(n, "converged")) && json_is_integer(since)) {
		fmt_age(b, sizeof b, (double)now - (double)json_integer_value(since));
		snprintf(conv, sizeof conv, "yes, %s", b);
	} else
		snprintf(conv, sizeof conv, "no (%s)", cell(rep, "convergence", b, sizeof b));
	if (json_is_number(ra))
		fmt_age(age, sizeof age, json_number_value(ra) * 1000);
	else
		snprintf(age, sizeof age, "never");
	if (json_is_number(w))
		snprintf(watts, sizeof watts, "%.1f", json_number_value(w));
	else
		snprintf(watts, sizeof watts, "-");
	printf("%-20s %-10s %-10s %-22s %-11s %-7s %8s\n", id, mode, desired, conv, age,
	       json_is_true(json_object_get(n, "offline")) ? "yes" : "no", watts);
}

int hf_ctl_cmd_fleet(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "coordinator", required_argument, NULL, 'c' }, { "ca-file", required_argument, NULL, 'C' },
		{ "token-file", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	coord_opts o = { 0 };
	json_t *f, *n;
	size_t i;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'c')
			o.coord = optarg;
		else if (c == 'C')
			o.ca = optarg;
		else if (c == 't')
			o.token_file = optarg;
		else if (c == 'j')
			o.raw = true;
		else
			return hf_ctl_help_or_bad("fleet", c);
	}
	if (!o.coord || optind != argc)
		return hf_ctl_usage_error("fleet", "--coordinator URL is required, and nothing else");
	if ((rc = coord_token("fleet", &o)) != 0)
		return rc;
	if ((rc = coord_get("fleet", o.coord, "/v1/fleet", o.ca, o.token_file ? o.token : NULL, o.raw,
			    &f)) != 0 || !f)
		return rc;
	uint64_t now = (uint64_t)json_integer_value(json_object_get(f, "now_ms"));
	const json_t *nodes = json_object_get(f, "nodes");
	if (!json_is_array(nodes)) {
		json_decref(f);
		return hf_ctl_fail("fleet", "the coordinator's answer has no \"nodes\" array");
	}
	printf("%-20s %-10s %-10s %-22s %-11s %-7s %8s\n", "NODE", "MODE", "DESIRED", "CONVERGED",
	       "LAST REPORT", "OFFLINE", "WATTS");
	json_array_foreach(nodes, i, n)
		print_fleet_node(n, now ? now : hf_wall_ms());
	printf("%zu node(s): %lld converged, %lld offline\n", json_array_size(nodes),
	       (long long)json_integer_value(json_object_get(f, "converged")),
	       (long long)json_integer_value(json_object_get(f, "offline")));
	json_decref(f);
	return 0;
}

/* "2026-12-01 15:30:02" (UTC) of ms since the epoch. */
static void fmt_time(char *dst, size_t dstsz, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!ms || !gmtime_r(&t, &tm) || strftime(dst, dstsz, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(dst, dstsz, "-");
}

/* The reason of a decision in at most 40 characters: its JSON, compact and cleaned. */
static void reason_summary(const json_t *reason, char *dst, size_t dstsz)
{
	char *text = reason && !json_is_null(reason) ?
		     json_dumps(reason, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	char clean[256];

	if (!text) {
		snprintf(dst, dstsz, "-");
		return;
	}
	hf_text_clean(clean, sizeof clean, text, strlen(text));
	free(text);
	if (strlen(clean) > 40)
		snprintf(dst, dstsz, "%.37s...", clean);
	else
		snprintf(dst, dstsz, "%s", clean);
}

/* "n1,n2" (the nodes that acknowledged), "-" for none. */
static void acks_summary(const json_t *acks, char *dst, size_t dstsz)
{
	const json_t *a;
	size_t i, used = 0;
	char b[72];

	dst[0] = '\0';
	json_array_foreach(acks, i, a) {
		const char *node = json_is_string(a) ? json_string_value(a) :
				   json_string_value(json_object_get(a, "node"));
		hf_text_clean(b, sizeof b, node ? node : "?", strlen(node ? node : "?"));
		int w = snprintf(dst + used, dstsz - used, "%s%s", used ? "," : "", b);
		if (w < 0 || (size_t)w >= dstsz - used) {
			snprintf(dst, dstsz, "%zu node(s)", json_array_size(acks));
			return;
		}
		used += (size_t)w;
	}
	if (!used)
		snprintf(dst, dstsz, "-");
}

/* A policy decision's reason (hf_coord_verdict_json: "policy", "rule", "from", "margins",
 * "why") as the line printed under its row: "from -> to (rule): idle -0.003, mining +0.412,
 * inference +3.941 USD/h; why". false when the reason is not the policy's. */
static bool policy_line(const json_t *reason, const char *to, char *dst, size_t dstsz)
{
	static const char *const modes[] = { "idle", "mining", "inference" };
	const json_t *margins = json_object_get(reason, "margins");
	char from[24], rule[24], why[300], m[160];
	size_t used = 0;

	if (!json_is_object(reason) || !json_object_get(reason, "policy"))
		return false;
	m[0] = '\0';
	for (size_t i = 0; i < HF_ARRAY_SIZE(modes); i++) {
		const json_t *v = json_object_get(margins, modes[i]);
		int w;
		if (!json_is_number(v))
			continue;
		w = snprintf(m + used, sizeof m - used, "%s%s %+.3f", used ? ", " : "", modes[i],
			     json_number_value(v));
		if (w < 0 || (size_t)w >= sizeof m - used)
			break;
		used += (size_t)w;
	}
	snprintf(dst, dstsz, "%s -> %s (%s): %s%s; %s", cell(reason, "from", from, sizeof from), to,
		 cell(reason, "rule", rule, sizeof rule), used ? m : "no margins",
		 used ? " USD/h" : "", cell(reason, "why", why, sizeof why));
	return true;
}

static void print_decision(const json_t *d)
{
	char when[32], node[72], mode[24], by[96], reason[64], acks[128], a[64], s[64], line[600];
	const json_t *acked = json_object_get(d, "acks");

	fmt_time(when, sizeof when, (uint64_t)json_integer_value(json_object_get(d, "wall_ms")));
	snprintf(node, sizeof node, "%s", cell(d, "node", a, sizeof a));
	snprintf(mode, sizeof mode, "%s", cell(d, "mode", a, sizeof a));
	snprintf(by, sizeof by, "%s/%s", cell(d, "authority", a, sizeof a), cell(d, "source", s, sizeof s));
	reason_summary(json_object_get(d, "reason"), reason, sizeof reason);
	acks_summary(acked, acks, sizeof acks);
	printf("%6lld  %-19s  %-16s %-10s %-22s %-40s %s\n",
	       (long long)json_integer_value(json_object_get(d, "seq")), when, node, mode, by, reason,
	       acks);
	if (policy_line(json_object_get(d, "reason"), mode, line, sizeof line))
		printf("        %s\n", line);
}

int hf_ctl_cmd_decisions(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "coordinator", required_argument, NULL, 'c' }, { "ca-file", required_argument, NULL, 'C' },
		{ "since", required_argument, NULL, 's' }, { "limit", required_argument, NULL, 'l' },
		{ "token-file", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	coord_opts o = { 0 };
	uint64_t since = 0, limit = 50;
	char path[128];
	json_t *doc, *d;
	size_t i;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'c') {
			o.coord = optarg;
		} else if (c == 'C') {
			o.ca = optarg;
		} else if (c == 't') {
			o.token_file = optarg;
		} else if (c == 'j') {
			o.raw = true;
		} else if (c == 's') {
			uint64_t ago;
			if (hf_parse_u64(optarg, 0, UINT64_MAX / 2, &since))
				continue;
			if (!hf_ctl_parse_duration(optarg, &ago))
				return hf_ctl_usage_error("decisions", "--since: expected ms since the epoch or a "
						   "duration ago (10m, 2h)");
			since = hf_wall_ms() > ago ? hf_wall_ms() - ago : 0;
		} else if (c == 'l') {
			if (!hf_parse_u64(optarg, 1, 10000, &limit))
				return hf_ctl_usage_error("decisions", "--limit: expected 1 to 10000");
		} else {
			return hf_ctl_help_or_bad("decisions", c);
		}
	}
	if (!o.coord || optind != argc)
		return hf_ctl_usage_error("decisions", "--coordinator URL is required, and nothing else");
	if ((rc = coord_token("decisions", &o)) != 0)
		return rc;
	snprintf(path, sizeof path, "/v1/decisions?since=%llu&limit=%llu", (unsigned long long)since,
		 (unsigned long long)limit);
	if ((rc = coord_get("decisions", o.coord, path, o.ca, o.token_file ? o.token : NULL, o.raw,
			    &doc)) != 0 || !doc)
		return rc;
	const json_t *list = json_object_get(doc, "decisions");
	if (!json_is_array(list)) {
		json_decref(doc);
		return hf_ctl_fail("decisions", "the coordinator's answer has no \"decisions\" array");
	}
	printf("%6s  %-19s  %-16s %-10s %-22s %-40s %s\n", "SEQ", "TIME (UTC)", "NODE", "MODE",
	       "AUTHORITY/SOURCE", "REASON", "ACKS");
	json_array_foreach(list, i, d)
		print_decision(d);
	printf("%zu decision(s)\n", json_array_size(list));
	json_decref(doc);
	return 0;
}
