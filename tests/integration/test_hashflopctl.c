/* Integration tests: the real hashflopctl (keygen, trust-add, sign, verify, inspect, push) and
 * interop with the openssl command line both ways (the recipe in runtime/common/INSTRUCTIONS.md,
 * run verbatim). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>

#include "hf_httpd.h"
#include "hf_instr.h"
#include "hf_testproc.h"
#include "hf_util.h"

static char ctl[1024];
static char *dir;

static void setup(void)
{
	snprintf(ctl, sizeof ctl, "%s/runtime/ctl/hashflopctl", hf_test_build_root());
	dir = hf_test_tmpdir("hashflopctl");
	cr_assert_not_null(dir);
}

static void teardown(void)
{
	free(dir);
}

TestSuite(hashflopctl, .init = setup, .fini = teardown);

/* Runs a shell command in dir with $CTL set; returns its exit status, output in *out. */
__attribute__((format(printf, 2, 3)))
static int sh(char **out, const char *fmt, ...)
{
	static char body[65536];
	char cmd[8192];
	size_t n = 0, got;
	va_list ap;
	FILE *p;
	int st;

	n = (size_t)snprintf(cmd, sizeof cmd, "cd '%s' && CTL='%s' && { ", dir, ctl);
	va_start(ap, fmt);
	n += (size_t)vsnprintf(cmd + n, sizeof cmd - n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof cmd - n, "\n} 2>&1");
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = 0;
	while ((got = fread(body + n, 1, sizeof body - 1 - n, p)) > 0)
		n += got;
	body[n] = '\0';
	st = pclose(p);
	if (out)
		*out = strdup(body);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Asserts the exit status and that the output contains needle. */
#define SH_EXPECT(rc, needle, ...) do { \
		char *o_ = NULL; \
		int r_ = sh(&o_, __VA_ARGS__); \
		cr_assert_eq(r_, (rc), "exit %d, expected %d: %s", r_, (rc), o_); \
		cr_assert_not_null(strstr(o_, (needle)), "no \"%s\" in: %s", (needle), o_); \
		free(o_); \
	} while (0)

static void make_keys_and_trust(void)
{
	SH_EXPECT(0, "keyid ", "$CTL keygen --out op1.pem");
	SH_EXPECT(0, "op2.pub.pem", "$CTL keygen --out op2.pem");
	SH_EXPECT(0, "keyid ", "$CTL keygen --out coord.pem");
	SH_EXPECT(0, "added operator key", "$CTL trust-add --trust trust.json --role operator "
		  "--pub op1.pub.pem --name alice");
	SH_EXPECT(0, "added operator key", "$CTL trust-add --trust trust.json --role operator "
		  "--pub op2.pem --name bob");
	SH_EXPECT(0, "added coordinator key", "$CTL trust-add --trust trust.json --role coordinator "
		  "--pub coord.pub.pem --fleet-threshold 2");
}

Test(hashflopctl, keygen_trust_add_sign_verify)
{
	char *out = NULL, key_path[1100];
	struct stat st;

	make_keys_and_trust();
	snprintf(key_path, sizeof key_path, "%s/op1.pem", dir);
	cr_assert_eq(stat(key_path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	SH_EXPECT(1, "exists", "$CTL keygen --out op1.pem");
	/* keyid agrees with keygen's output and with the trust file */
	cr_assert_eq(sh(&out, "$CTL keyid op1.pem"), 0);
	out[strcspn(out, "\n")] = '\0';
	cr_assert(hf_keyid_valid(out), "%s", out);
	SH_EXPECT(0, out, "cat trust.json");
	SH_EXPECT(0, out, "$CTL keyid op1.pub.pem");
	free(out);

	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle > e1.json");
	SH_EXPECT(0, "accepted: mode idle for node n1", "$CTL verify --trust trust.json --fleet f1 "
		  "--node n1 e1.json");
	SH_EXPECT(0, "authority manual", "$CTL verify --trust trust.json --fleet f1 --node n1 - < e1.json");
	SH_EXPECT(1, "refused: wrong_node", "$CTL verify --trust trust.json --fleet f1 --node n2 e1.json");
	SH_EXPECT(1, "refused: wrong_fleet", "$CTL verify --trust trust.json --fleet f2 --node n1 e1.json");
	SH_EXPECT(1, "refused: replay", "$CTL verify --trust trust.json --fleet f1 --node n1 "
		  "--last-issued-ms 99999999999999 e1.json");
	SH_EXPECT(1, "refused: expired", "$CTL verify --trust trust.json --fleet f1 --node n1 "
		  "--now-ms 99999999999999 e1.json");
	SH_EXPECT(1, "refused: future", "$CTL verify --trust trust.json --fleet f1 --node n1 "
		  "--now-ms 1000 e1.json");
	SH_EXPECT(0, "\"mode\": \"idle\"", "$CTL inspect e1.json");

	/* coordinator: automatic, held by a pin, and refused when it tries to pin */
	SH_EXPECT(0, "", "$CTL sign --key coord.pem --fleet f1 --node n1 --mode idle --ttl 1h > e2.json");
	SH_EXPECT(0, "authority automatic", "$CTL verify --trust trust.json --fleet f1 --node n1 e2.json");
	SH_EXPECT(1, "refused: held", "$CTL verify --trust trust.json --fleet f1 --node n1 "
		  "--hold-until-ms 99999999999999 e2.json");
	SH_EXPECT(0, "", "$CTL sign --key coord.pem --fleet f1 --node n1 --mode idle --hold 1h > e3.json");
	SH_EXPECT(1, "refused: role", "$CTL verify --trust trust.json --fleet f1 --node n1 e3.json");

	/* fleet-wide: two operators needed */
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node '*' --mode idle > e4.json");
	SH_EXPECT(1, "refused: threshold", "$CTL verify --trust trust.json --fleet f1 --node n7 e4.json");
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --key op2.pem --fleet f1 --node '*' --mode idle > e5.json");
	SH_EXPECT(0, "accepted", "$CTL verify --trust trust.json --fleet f1 --node n7 e5.json");

	/* an untrusted key and a tampered envelope */
	SH_EXPECT(0, "", "$CTL keygen --out stranger.pem && $CTL sign --key stranger.pem --fleet f1 "
		  "--node n1 --mode idle > e6.json");
	SH_EXPECT(1, "refused: unknown_key", "$CTL verify --trust trust.json --fleet f1 --node n1 e6.json");
	SH_EXPECT(0, "", "sed 's/\"sig\":\"A/\"sig\":\"B/; t; s/\"sig\":\"./\"sig\":\"A/' e1.json > e7.json");
	SH_EXPECT(1, "refused: bad_signature", "$CTL verify --trust trust.json --fleet f1 --node n1 e7.json");
}

Test(hashflopctl, sign_sections_and_usage_errors)
{
	make_keys_and_trust();
	SH_EXPECT(0, "", "printf '%%s' '{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:3333\","
		  "\"user\":\"w.1\",\"pass\":\"x\"}]}' > pools.json && printf '%%s' "
		  "'{\"hashprice\":0.051,\"power_usd_mwh\":41}' > reason.json");
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode mining "
		  "--pools-json pools.json --reason-json reason.json --ttl 30s --out e.json");
	SH_EXPECT(0, "accepted: mode mining", "$CTL verify --trust trust.json --fleet f1 --node n1 e.json");
	SH_EXPECT(0, "stratum+tcp://127.0.0.1:3333", "$CTL inspect e.json");
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode inference "
		  "--model tiny-mlp --model other > m.json");
	SH_EXPECT(0, "tiny-mlp", "$CTL inspect m.json");
	SH_EXPECT(1, "would be refused", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle "
		  "--pools-json pools.json");
	SH_EXPECT(1, "would be refused", "$CTL sign --key op1.pem --fleet 'bad fleet' --node n1 --mode idle");
	SH_EXPECT(2, "required", "$CTL sign --key op1.pem --fleet f1 --mode idle");
	SH_EXPECT(2, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle --ttl 10x");
	SH_EXPECT(2, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle --hold 1h "
		  "--hold-until-ms 5");
	SH_EXPECT(0, "Usage: hashflopctl sign", "$CTL sign --help");
	SH_EXPECT(0, "Usage: hashflopctl verify", "$CTL verify --help");
	SH_EXPECT(2, "unknown command", "$CTL frobnicate");
	/* trust-add refuses to edit a broken file and names the bad entry */
	SH_EXPECT(0, "", "printf '%%s' '{\"keys\":[{\"role\":\"admin\",\"public_key_pem\":\"x\"}]}' > bad.json");
	SH_EXPECT(1, "keys[0].role", "$CTL trust-add --trust bad.json --role operator --pub op1.pem");
	SH_EXPECT(1, "keys[0].role", "$CTL verify --trust bad.json --fleet f1 --node n1 e.json");
}

/* The recipe of runtime/common/INSTRUCTIONS.md, verbatim: a third party with only openssl,
 * basenc and tr. */
static const char *openssl_recipe =
	"openssl genpkey -algorithm ed25519 -out third.pem\n"
	"openssl pkey -in third.pem -pubout -out third.pub.pem\n"
	"KEYID=$(openssl pkey -in third.pem -pubout -outform DER | tail -c 32 \\\n"
	"        | openssl dgst -sha256 -r | cut -c1-16)\n"
	"NOW=$(( $(date +%s) * 1000 ))\n"
	"printf '{\"v\":1,\"fleet\":\"f1\",\"node\":\"n1\",\"issued_ms\":%s,\"expires_ms\":%s,"
	"\"mode\":\"idle\"}' \\\n"
	"  \"$NOW\" \"$((NOW + 600000))\" > payload.json\n"
	"{ printf 'hashflop-instruction-v1\\n'; cat payload.json; } > signed.bin\n"
	"openssl pkeyutl -sign -rawin -inkey third.pem -in signed.bin -out sig.bin\n"
	"b64url() { basenc --base64url -w0 \"$1\" | tr -d '='; }\n"
	"printf '{\"payload\":\"%s\",\"signatures\":[{\"keyid\":\"%s\",\"sig\":\"%s\"}]}\\n' \\\n"
	"  \"$(b64url payload.json)\" \"$KEYID\" \"$(b64url sig.bin)\" > envelope.json\n";

Test(hashflopctl, openssl_cli_envelope_is_accepted)
{
	char *out = NULL, *kid = NULL;

	SH_EXPECT(0, "", "set -e\n%s", openssl_recipe);
	SH_EXPECT(0, "added operator key", "$CTL trust-add --trust trust.json --role operator "
		  "--pub third.pub.pem --name third-party");
	SH_EXPECT(0, "accepted: mode idle for node n1", "$CTL verify --trust trust.json --fleet f1 "
		  "--node n1 envelope.json");
	/* the shell's key id is hashflopctl's */
	cr_assert_eq(sh(&kid, "$CTL keyid third.pub.pem"), 0);
	kid[strcspn(kid, "\n")] = '\0';
	SH_EXPECT(0, kid, "cat envelope.json");
	/* a byte changed after signing is caught */
	SH_EXPECT(0, "", "sed 's/n1/n2/' payload.json > p2.json && printf "
		  "'{\"payload\":\"%%s\",\"signatures\":[{\"keyid\":\"%s\",\"sig\":\"%%s\"}]}' "
		  "\"$(basenc --base64url -w0 p2.json | tr -d =)\" "
		  "\"$(basenc --base64url -w0 sig.bin | tr -d =)\" > forged.json", kid);
	SH_EXPECT(1, "refused: bad_signature", "$CTL verify --trust trust.json --fleet f1 --node n2 "
		  "forged.json");
	free(kid);
	free(out);
}

Test(hashflopctl, hashflopctl_envelope_verifies_with_openssl)
{
	make_keys_and_trust();
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle > e.json");
	/* undo base64url with tr and padding, rebuild the signed bytes, verify with openssl alone */
	SH_EXPECT(0, "Signature Verified Successfully",
		  "unb64url() { s=$(printf '%%s' \"$1\" | tr -- '-_' '+/'); "
		  "case $(( ${#s} %% 4 )) in 2) s=\"$s==\";; 3) s=\"$s=\";; esac; "
		  "printf '%%s' \"$s\" | base64 -d; }\n"
		  "P=$(sed 's/.*\"payload\":\"\\([^\"]*\\)\".*/\\1/' e.json)\n"
		  "S=$(sed 's/.*\"sig\":\"\\([^\"]*\\)\".*/\\1/' e.json)\n"
		  "{ printf 'hashflop-instruction-v1\\n'; unb64url \"$P\"; } > signed.bin\n"
		  "unb64url \"$S\" > sig.bin\n"
		  "openssl pkeyutl -verify -rawin -pubin -inkey op1.pub.pem -in signed.bin -sigfile sig.bin");
	SH_EXPECT(1, "", "printf x >> signed.bin; openssl pkeyutl -verify -rawin -pubin -inkey "
		  "op1.pub.pem -in signed.bin -sigfile sig.bin");
}

/* Starts the real hashflopd with the test's trust file; returns its API port. */
static hf_testproc *start_node(int *port)
{
	char cfg[1200], log[1100], state[1100], text[3000], err[2048];
	snprintf(cfg, sizeof cfg, "%s/node.json", dir);
	snprintf(log, sizeof log, "%s/hashflopd.log", dir);
	snprintf(state, sizeof state, "%s/state", dir);
	snprintf(text, sizeof text,
		 "{\"node_id\":\"n1\",\"fleet_id\":\"f1\",\"state_dir\":\"%s\","
		 "\"api\":{\"listen\":\"127.0.0.1\",\"port\":0},\"inference\":{\"port\":0},"
		 "\"control\":{\"trust_file\":\"%s/trust.json\"}}", state, dir);
	FILE *f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	hf_testproc *p = hf_test_start_hashflopd(cfg, log, state, 20000, port, err, sizeof err);
	cr_assert(p, "hashflopd did not start: %s; log:\n%s", err, hf_test_read_file(log));
	return p;
}

Test(hashflopctl, push_to_a_real_node_and_read_its_status)
{
	int port, st;
	make_keys_and_trust();
	hf_testproc *node = start_node(&port);
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --fleet f1 --node n1 --mode idle > e.json");
	SH_EXPECT(0, "\"result\":\"accepted\"", "$CTL push --node-api http://127.0.0.1:%d e.json", port);
	SH_EXPECT(0, "\"result\":\"noop\"", "$CTL push --node-api http://127.0.0.1:%d/ - < e.json", port);
	SH_EXPECT(1, "\"reason\":\"wrong_node\"", "$CTL sign --key op1.pem --fleet f1 --node n9 "
		  "--mode idle | $CTL push --node-api http://127.0.0.1:%d -", port);
	SH_EXPECT(1, "HTTP 403", "$CTL sign --key op1.pem --fleet f1 --node n9 "
		  "--mode idle | $CTL push --node-api http://127.0.0.1:%d -", port);
	SH_EXPECT(2, "URL", "$CTL push --node-api 127.0.0.1:%d e.json", port);
	SH_EXPECT(2, "one of --node-api", "$CTL push e.json");
	SH_EXPECT(0, "mode         idle (running), desired idle",
		  "$CTL status --node-api http://127.0.0.1:%d", port);
	SH_EXPECT(0, "instruction  mode idle, issued_ms ", "$CTL status --node-api http://127.0.0.1:%d", port);
	SH_EXPECT(0, "operator authority via local", "$CTL status --node-api http://127.0.0.1:%d", port);
	SH_EXPECT(0, "state        converged\n", "$CTL status --node-api http://127.0.0.1:%d", port);
	SH_EXPECT(0, "\"fleet\":\"f1\"", "$CTL status --json --node-api http://127.0.0.1:%d", port);
	st = hf_testproc_stop(node, SIGTERM, 15000);
	cr_assert_neq(st, -1);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* nothing listening any more */
	SH_EXPECT(1, "hashflopctl push:", "$CTL push --node-api http://127.0.0.1:%d e.json", port);
	SH_EXPECT(1, "hashflopctl status:", "$CTL status --node-api http://127.0.0.1:%d", port);
}

/* No coordinator program exists yet: this stand-in records what its intake endpoints receive,
 * so the test checks the paths and bodies hashflopctl sends. */
typedef struct intake {
	char path[128];
	char body[HF_INSTR_MAX_ENVELOPE + 1];
} intake;

static void post_intake(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	intake *in = ctx;
	hf_strlcpy(in->path, req->path, sizeof in->path);
	hf_strlcpy(in->body, req->body, sizeof in->body);
	hf_http_resp_json(resp, 202, json_pack("{s:s}", "result", "queued"));
}

Test(hashflopctl, push_to_a_coordinator_intake)
{
	static const hf_http_route routes[] = {
		{ "POST", "/v1/nodes/*/instruction", post_intake },
		{ "POST", "/v1/fleet/instruction", post_intake },
	};
	hf_httpd_opts opts = { .host = "127.0.0.1" };
	static intake got;
	hf_httpd *h = NULL;
	hf_errbuf eb;
	int port;

	make_keys_and_trust();
	cr_assert_eq(hf_httpd_new(&opts, routes, 2, &got, &h, &eb), 0, "%s", eb.msg);
	port = hf_httpd_port(h);
	SH_EXPECT(0, "", "$CTL sign --key coord.pem --fleet f1 --node n7 --mode idle > c.json");
	SH_EXPECT(0, "\"result\":\"queued\"", "$CTL push --coordinator http://127.0.0.1:%d c.json", port);
	cr_assert_str_eq(got.path, "/v1/nodes/n7/instruction");
	char path[1200];
	snprintf(path, sizeof path, "%s/c.json", dir);
	char *sent = hf_test_read_file(path);
	cr_assert_not_null(sent);
	cr_assert_eq(strncmp(got.body, sent, strlen(got.body)), 0, "the envelope was not sent as is");
	free(sent);
	SH_EXPECT(0, "", "$CTL sign --key op1.pem --key op2.pem --fleet f1 --node '*' --mode idle > f.json");
	SH_EXPECT(0, "queued", "$CTL push --coordinator http://127.0.0.1:%d/ f.json", port);
	cr_assert_str_eq(got.path, "/v1/fleet/instruction");
	SH_EXPECT(1, "not an instruction envelope", "echo '{}' | $CTL push --coordinator http://127.0.0.1:%d -", port);
	SH_EXPECT(2, "one of --node-api", "$CTL push --coordinator http://x --node-api http://y c.json");
	hf_httpd_free(h);
}

/* Runs a command that prints one JSON value; returns it (the test fails otherwise). */
__attribute__((format(printf, 2, 3)))
static json_t *sh_json(int want_rc, const char *fmt, ...)
{
	char cmd[1024], *out = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = sh(&out, "%s", cmd);
	cr_assert_eq(rc, want_rc, "%s: exit %d: %s", cmd, rc, out);
	json_error_t e;
	json_t *j = json_loads(out, 0, &e);
	cr_assert_not_null(j, "%s: not JSON (%s): %s", cmd, e.text, out);
	free(out);
	return j;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	cr_assert_not_null(v, "no string \"%s\"", key);
	return v;
}

/* The first listed device whose platform name or vendor contains word, or NULL. */
static const json_t *first_of_vendor(const json_t *all, const char *word)
{
	for (size_t i = 0; i < json_array_size(all); i++) {
		const json_t *d = json_array_get(all, i);
		if (strcasestr(jstr(d, "platform"), word) || strcasestr(jstr(d, "platform_vendor"), word))
			return d;
	}
	return NULL;
}

/* devices: the real OpenCL loader and whatever devices this machine has (PoCL in CI, GPUs on
 * GPU nodes): every expectation comes from the JSON listing, none from this machine. Without
 * any OpenCL platform or device, the empty answers are checked and the rest is reported
 * skipped. */
Test(hashflopctl, devices_lists_and_resolves_selectors)
{
	char *out = NULL, line[512];
	SH_EXPECT(2, "unexpected argument", "$CTL devices extra");
	int rc = sh(&out, "$CTL devices --json");
	if (rc == 1 && strstr(out, "built without OpenCL"))
		cr_skip_test("hashflopctl was built without OpenCL: devices NOT tested");
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	json_t *all = sh_json(0, "$CTL devices --json");
	cr_assert(json_is_array(all));
	size_t n = json_array_size(all);
	if (n == 0) {
		SH_EXPECT(0, "no OpenCL devices", "$CTL devices");
		SH_EXPECT(1, "no OpenCL device matches \"no-such-gpu\"; devices: none",
			  "$CTL devices --select no-such-gpu");
		json_decref(all);
		cr_skip_test("no OpenCL platform or device on this machine: listing and selectors "
			     "of real devices NOT tested");
	}
	const json_t *first = json_array_get(all, 0), *gpu = NULL;
	for (size_t i = 0; i < n; i++) {
		const json_t *d = json_array_get(all, i);
		const char *sel = jstr(d, "selector");
		cr_assert(json_is_boolean(json_object_get(d, "gpu")), "%s", sel);
		cr_assert_geq(json_integer_value(json_object_get(d, "compute_units")), 1, "%s", sel);
		cr_assert_gt(json_integer_value(json_object_get(d, "local_mem_bytes")), 0, "%s", sel);
		cr_assert_gt(json_integer_value(json_object_get(d, "max_work_group_size")), 0, "%s",
			     sel);
		if (!gpu && json_is_true(json_object_get(d, "gpu")))
			gpu = d;
		/* The table shows each device with its selector, type, name and platform. */
		snprintf(line, sizeof line, "%-5s %s %s", sel,
			 json_is_true(json_object_get(d, "gpu")) ? "GPU" : "CPU", jstr(d, "name"));
		SH_EXPECT(0, line, "$CTL devices");
		snprintf(line, sizeof line, "platform %s, driver %s", jstr(d, "platform"),
			 jstr(d, "driver_version"));
		SH_EXPECT(0, line, "$CTL devices");
		/* Its index selector finds it. */
		json_t *one = sh_json(0, "$CTL devices --select '%s' --json", sel);
		cr_assert_str_eq(jstr(one, "selector"), sel);
		cr_assert_str_eq(jstr(one, "name"), jstr(d, "name"));
		json_decref(one);
	}
	/* "auto": the first GPU, else the first device. */
	json_t *a = sh_json(0, "$CTL devices --select auto --json");
	cr_assert_str_eq(jstr(a, "selector"), jstr(gpu ? gpu : first, "selector"));
	json_decref(a);
	/* Vendor words: the first device of a matching platform, or a refusal. */
	static const char *const vendors[] = { "pocl", "nvidia", "amd", "intel" };
	for (size_t v = 0; v < 4; v++) {
		const json_t *want = first_of_vendor(all, vendors[v]);
		if (!want) {
			SH_EXPECT(1, "no OpenCL device matches", "$CTL devices --select %s", vendors[v]);
			continue;
		}
		json_t *d = sh_json(0, "$CTL devices --select %s --json", vendors[v]);
		cr_assert_str_eq(jstr(d, "selector"), jstr(want, "selector"), "%s", vendors[v]);
		json_decref(d);
	}
	/* An unmatched selector is refused with the list, which starts with the first device. */
	snprintf(line, sizeof line, "no OpenCL device matches \"no-such-gpu\"; devices: %s %s (%s)",
		 jstr(first, "selector"), jstr(first, "name"), jstr(first, "platform"));
	SH_EXPECT(1, line, "$CTL devices --select no-such-gpu");
	SH_EXPECT(1, "expected P:D", "$CTL devices --select 0:x");
	json_decref(all);
}
