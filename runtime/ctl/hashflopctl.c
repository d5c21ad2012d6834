/* hashflopctl: the operator CLI for signed instructions: keys, trust files, signing, verifying,
 * inspecting, and pushing envelopes to a node's local API or a coordinator (contract v1,
 * runtime/common/INSTRUCTIONS.md; the CLI: runtime/ctl/README.md); a coordinator's fleet and
 * decision log; and the list of OpenCL devices with the selector each answers to.
 *
 * Exit status: 0 on success (verify: accepted), 1 on a failure or a refusal, 2 on a usage error.
 * Output for people goes to stdout; errors go to stderr prefixed "hashflopctl CMD: ".
 * Threading: single-threaded.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hf_cl_env.h"
#include "hf_config.h"
#include "hf_file.h"
#include "hf_instr.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"
#include "hashflopctl_priv.h"
#ifdef HF_HAVE_OPENCL
#include "hf_cl.h"
#endif

#define MAX_KEYS HF_INSTR_MAX_SIGNATURES
#define MAX_MODELS 16

typedef struct command {
	const char *name, *summary, *usage;
	int (*run)(int argc, char **argv);
} command;

static const command *find_command(const char *name);

int hf_ctl_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hashflopctl %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int hf_ctl_usage_error(const char *cmd, const char *what)
{
	fprintf(stderr, "hashflopctl %s: %s (see hashflopctl %s --help)\n", cmd, what, cmd);
	return 2;
}

/* getopt_long over a subcommand's arguments; 'h' prints its usage. -1: continue, else exit. */
int hf_ctl_help_or_bad(const char *cmd, int c)
{
	const command *cm = find_command(cmd);
	if (c == 'h') {
		printf("Usage: hashflopctl %s %s\n", cmd, cm->usage);
		return 0;
	}
	fprintf(stderr, "Usage: hashflopctl %s %s\n", cmd, cm->usage);
	return 2;
}

/* "90", "500ms", "30s", "10m", "2h", "1d" -> milliseconds (plain numbers are seconds). */
bool hf_ctl_parse_duration(const char *s, uint64_t *ms)
{
	static const struct { const char *suffix; uint64_t mult; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 }, { "", 1000 },
	};
	char num[32];
	size_t digits = strspn(s ? s : "", "0123456789");
	uint64_t v;

	if (!s || digits == 0 || digits >= sizeof num)
		return false;
	memcpy(num, s, digits);
	num[digits] = '\0';
	if (!hf_parse_u64(num, 0, UINT64_MAX / 86400000, &v))
		return false;
	for (size_t i = 0; i < HF_ARRAY_SIZE(units); i++) {
		if (strcmp(s + digits, units[i].suffix) == 0) {
			*ms = v * units[i].mult;
			return true;
		}
	}
	return false;
}

/* Reads a file or stdin ("-") of at most CTL_MAX_INPUT bytes. */
int hf_ctl_read_input(const char *cmd, const char *path, char **data, size_t *len)
{
	hf_errbuf eb;
	size_t cap = 4096, n = 0;
	char *buf;

	if (strcmp(path, "-") != 0) {
		if (hf_file_read(path, CTL_MAX_INPUT, data, len, &eb) < 0)
			return hf_ctl_fail(cmd, "%s", eb.msg);
		return 0;
	}
	buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n - 1, stdin);
		n += got;
		if (got == 0 || n > CTL_MAX_INPUT)
			break;
		if (n + 1 == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				free(buf);
			buf = nb;
			cap *= 2;
		}
	}
	if (!buf)
		return hf_ctl_fail(cmd, "out of memory");
	if (n > CTL_MAX_INPUT) {
		free(buf);
		return hf_ctl_fail(cmd, "standard input: more than %u bytes", CTL_MAX_INPUT);
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
}

static json_t *load_json_any(const char *cmd, const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		hf_ctl_fail(cmd, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	return j;
}

/* ---- keygen, keyid ---- */

static void public_path(const char *priv, char *out, size_t outsz)
{
	size_t n = strlen(priv);
	if (n > 4 && strcmp(priv + n - 4, ".pem") == 0)
		snprintf(out, outsz, "%.*s.pub.pem", (int)(n - 4), priv);
	else
		snprintf(out, outsz, "%s.pub.pem", priv);
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' }, { "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	char pub[4096], id[HF_INSTR_KEYID_LEN + 1], *pem = NULL;
	bool force = false;
	hf_key *k = NULL;
	hf_errbuf eb;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "o:fh", lo, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'f')
			force = true;
		else
			return hf_ctl_help_or_bad("keygen", c);
	}
	if (!out || optind < argc)
		return hf_ctl_usage_error("keygen", "--out KEY.pem is required and nothing else");
	public_path(out, pub, sizeof pub);
	if (!force && (access(out, F_OK) == 0 || access(pub, F_OK) == 0))
		return hf_ctl_fail("keygen", "%s or %s exists; use --force to replace", out, pub);
	if (hf_key_generate(&k, &eb) < 0 || hf_key_write_private_pem(k, out, &eb) < 0 ||
	    hf_key_public_pem(k, &pem, &eb) < 0 ||
	    hf_file_write_atomic(pub, pem, strlen(pem), 0644, &eb) < 0) {
		hf_ctl_fail("keygen", "%s", eb.msg);
		goto cleanup;
	}
	hf_key_id(k, id);
	printf("keyid %s\nprivate key %s (mode 0600: keep it secret)\npublic key %s\n", id, out, pub);
	rc = 0;
cleanup:
	free(pem);
	hf_key_free(k);
	return rc;
}

static int cmd_keyid(int argc, char **argv)
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	char id[HF_INSTR_KEYID_LEN + 1];
	hf_key *k;
	hf_errbuf eb;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1)
		return hf_ctl_help_or_bad("keyid", c);
	if (optind + 1 != argc)
		return hf_ctl_usage_error("keyid", "expected one KEY.pem");
	if (hf_key_load_pem(argv[optind], &k, &eb) < 0)
		return hf_ctl_fail("keyid", "%s", eb.msg);
	hf_key_id(k, id);
	printf("%s\n", id);
	hf_key_free(k);
	return 0;
}

/* ---- sign ---- */

typedef struct sign_opts {
	const char *keys[MAX_KEYS], *models[MAX_MODELS];
	size_t nkeys, nmodels;
	const char *fleet, *node, *mode, *pools, *reason, *out;
	uint64_t ttl, issued, hold_until, hold;
	bool has_issued, has_hold_until, has_hold;
} sign_opts;

static int sign_parse(int argc, char **argv, sign_opts *o)
{
	static const struct option lo[] = {
		{ "key", required_argument, NULL, 'k' }, { "fleet", required_argument, NULL, 'F' },
		{ "node", required_argument, NULL, 'n' }, { "mode", required_argument, NULL, 'm' },
		{ "ttl", required_argument, NULL, 't' }, { "hold-until-ms", required_argument, NULL, 'H' },
		{ "hold", required_argument, NULL, 'D' }, { "pools-json", required_argument, NULL, 'p' },
		{ "model", required_argument, NULL, 'M' }, { "reason-json", required_argument, NULL, 'r' },
		{ "issued-ms", required_argument, NULL, 'i' }, { "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	o->ttl = 600000;
	while ((c = getopt_long(argc, argv, "k:o:h", lo, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'k': ok = o->nkeys < MAX_KEYS; if (ok) o->keys[o->nkeys++] = optarg; break;
		case 'F': o->fleet = optarg; break;
		case 'n': o->node = optarg; break;
		case 'm': o->mode = optarg; break;
		case 't': ok = hf_ctl_parse_duration(optarg, &o->ttl) && o->ttl > 0; break;
		case 'H': ok = o->has_hold_until = hf_parse_u64(optarg, 0, UINT64_MAX, &o->hold_until); break;
		case 'D': ok = o->has_hold = hf_ctl_parse_duration(optarg, &o->hold); break;
		case 'p': o->pools = optarg; break;
		case 'M': ok = o->nmodels < MAX_MODELS; if (ok) o->models[o->nmodels++] = optarg; break;
		case 'r': o->reason = optarg; break;
		case 'i': ok = o->has_issued = hf_parse_u64(optarg, 0, UINT64_MAX, &o->issued); break;
		case 'o': o->out = optarg; break;
		default: return hf_ctl_help_or_bad("sign", c);
		}
		if (!ok)
			return hf_ctl_usage_error("sign", "bad value or too many uses of an option");
	}
	if (optind < argc)
		return hf_ctl_usage_error("sign", "unexpected argument");
	if (!o->nkeys || !o->fleet || !o->node || !o->mode)
		return hf_ctl_usage_error("sign", "--key, --fleet, --node and --mode are required");
	if (o->has_hold && o->has_hold_until)
		return hf_ctl_usage_error("sign", "--hold and --hold-until-ms exclude each other");
	return -1;
}

/* mining = the file's {"pools": [...]} object, or {"pools": FILE} when the file is an array. */
static int add_sections(const sign_opts *o, json_t *p)
{
	if (o->pools) {
		json_t *j = load_json_any("sign", o->pools);
		if (!j)
			return 1;
		if (json_is_array(j))
			j = json_pack("{s:o}", "pools", j);
		json_object_set_new(p, "mining", j);
	}
	if (o->nmodels) {
		json_t *models = json_array();
		for (size_t i = 0; i < o->nmodels; i++)
			json_array_append_new(models, json_string(o->models[i]));
		json_object_set_new(p, "inference", json_pack("{s:o}", "models", models));
	}
	if (o->reason) {
		json_t *j = load_json_any("sign", o->reason);
		if (!j)
			return 1;
		json_object_set_new(p, "reason", j);
	}
	return 0;
}

/* Builds and validates the payload text (malloc'ed). */
static int build_payload(const sign_opts *o, char **text)
{
	uint64_t issued = o->has_issued ? o->issued : hf_wall_ms();
	hf_instr check;
	hf_errbuf eb;
	json_t *p;
	int rc;

	*text = NULL;
	p = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s}", "v", 1, "fleet", o->fleet, "node", o->node,
		      "issued_ms", (json_int_t)issued, "expires_ms", (json_int_t)(issued + o->ttl),
		      "mode", o->mode);
	if (!p)
		return hf_ctl_fail("sign", "cannot build the payload (strings must be UTF-8)");
	if (o->has_hold || o->has_hold_until)
		json_object_set_new(p, "hold_until_ms", json_integer((json_int_t)(
			o->has_hold ? issued + o->hold : o->hold_until)));
	rc = add_sections(o, p);
	if (rc == 0)
		*text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (rc != 0 || !*text)
		return rc ? rc : hf_ctl_fail("sign", "out of memory");
	if (hf_instr_parse_payload(*text, strlen(*text), &check, &eb) < 0) {
		free(*text);
		*text = NULL;
		return hf_ctl_fail("sign", "the payload would be refused: %s", eb.msg);
	}
	hf_instr_clear(&check);
	return 0;
}

static int cmd_sign(int argc, char **argv)
{
	hf_key *keys[MAX_KEYS] = { 0 };
	sign_opts o = { 0 };
	char *payload = NULL, *env = NULL;
	hf_errbuf eb;
	int rc = sign_parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	rc = 1;
	for (size_t i = 0; i < o.nkeys; i++) {
		if (hf_key_load_pem(o.keys[i], &keys[i], &eb) < 0) {
			hf_ctl_fail("sign", "%s", eb.msg);
			goto cleanup;
		}
	}
	if (build_payload(&o, &payload) != 0)
		goto cleanup;
	if (hf_instr_sign(payload, strlen(payload), keys, o.nkeys, &env, &eb) < 0) {
		hf_ctl_fail("sign", "%s", eb.msg);
		goto cleanup;
	}
	if (o.out) {
		size_t n = strlen(env);
		char *line = malloc(n + 2);
		int r;

		if (!line) {
			hf_ctl_fail("sign", "out of memory");
			goto cleanup;
		}
		memcpy(line, env, n);
		line[n] = '\n';
		r = hf_file_write_atomic(o.out, line, n + 1, 0644, &eb);
		free(line);
		if (r < 0) {
			hf_ctl_fail("sign", "%s", eb.msg);
			goto cleanup;
		}
	} else {
		printf("%s\n", env);
	}
	rc = 0;
cleanup:
	free(env);
	free(payload);
	for (size_t i = 0; i < o.nkeys; i++)
		hf_key_free(keys[i]);
	return rc;
}

/* ---- verify, inspect ---- */

typedef struct verify_opts {
	const char *trust, *fleet, *node, *file;
	hf_instr_policy pol;
	bool quiet;
} verify_opts;

static int verify_parse(int argc, char **argv, verify_opts *o)
{
	static const struct option lo[] = {
		{ "trust", required_argument, NULL, 't' }, { "fleet", required_argument, NULL, 'F' },
		{ "node", required_argument, NULL, 'n' }, { "now-ms", required_argument, NULL, 'N' },
		{ "last-issued-ms", required_argument, NULL, 'L' },
		{ "skew", required_argument, NULL, 's' },
		{ "hold-until-ms", required_argument, NULL, 'H' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	o->pol.now_ms = hf_wall_ms();
	o->pol.skew_ms = HF_INSTR_DEFAULT_SKEW_MS;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 't': o->trust = optarg; break;
		case 'F': o->fleet = optarg; break;
		case 'n': o->node = optarg; break;
		case 'N': ok = hf_parse_u64(optarg, 0, UINT64_MAX, &o->pol.now_ms); break;
		case 'L': ok = hf_parse_u64(optarg, 0, UINT64_MAX, &o->pol.last_issued_ms); break;
		case 's': ok = hf_ctl_parse_duration(optarg, &o->pol.skew_ms); break;
		case 'H': ok = hf_parse_u64(optarg, 0, UINT64_MAX, &o->pol.hold_until_ms); break;
		case 'q': o->quiet = true; break;
		default: return hf_ctl_help_or_bad("verify", c);
		}
		if (!ok)
			return hf_ctl_usage_error("verify", "bad number or duration");
	}
	if (optind + 1 != argc || !o->trust || !o->fleet || !o->node)
		return hf_ctl_usage_error("verify", "--trust, --fleet, --node and one ENVELOPE are required");
	o->file = argv[optind];
	o->pol.fleet = o->fleet;
	o->pol.node = o->node;
	return -1;
}

/* Prints each signature's check (the verifier itself decides; this is for people). */
static void print_signatures(const hf_trust *t, const char *env, size_t len)
{
	hf_instr_envelope e;
	uint8_t *msg = NULL;
	size_t mlen = 0;

	if (hf_instr_envelope_decode(env, len, &e, NULL) < 0)
		return;
	if (hf_instr_signed_message(e.payload, e.payload_len, &msg, &mlen, NULL) == 0) {
		for (size_t i = 0; i < e.nsigs; i++) {
			hf_role role = HF_ROLE_OPERATOR;
			const char *name = "";
			const hf_key *k = hf_trust_find(t, e.sigs[i].keyid, &role, &name);
			bool ok = k && hf_key_verify(k, msg, mlen, e.sigs[i].sig);
			printf("signature %zu: keyid %s: %s%s%s%s%s\n", i + 1, e.sigs[i].keyid,
			       k ? hf_role_name(role) : "not in the trust file (ignored)",
			       *name ? " \"" : "", name, *name ? "\"" : "",
			       !k ? "" : ok ? ": valid" : ": INVALID");
		}
	}
	free(msg);
	hf_instr_envelope_clear(&e);
}

static void print_accepted(const hf_instr *in, uint64_t now)
{
	printf("accepted: mode %s for node %s in fleet %s\n", hf_instr_mode_name(in->mode), in->node,
	       in->fleet);
	printf("authority %s (%s)\n", in->automatic ? "automatic" : "manual",
	       in->automatic ? "coordinator" : "operator");
	printf("issued_ms %llu, expires_ms %llu (in %llu s)\n", (unsigned long long)in->issued_ms,
	       (unsigned long long)in->expires_ms,
	       (unsigned long long)((in->expires_ms - now) / 1000));
	if (in->has_hold)
		printf("hold_until_ms %llu (automatic instructions refused until then)\n",
		       (unsigned long long)in->hold_until_ms);
	printf("payload sha256 %s\n", in->payload_sha256);
}

static int cmd_verify(int argc, char **argv)
{
	verify_opts o = { 0 };
	hf_trust *t = NULL;
	hf_instr_refusal why = HF_REFUSE_NONE;
	hf_instr in;
	hf_errbuf eb;
	char *env = NULL;
	size_t len = 0;
	int r, rc = verify_parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (hf_trust_load(o.trust, &t, &eb) < 0)
		return hf_ctl_fail("verify", "%s", eb.msg);
	if (hf_ctl_read_input("verify", o.file, &env, &len) != 0) {
		hf_trust_free(t);
		return 1;
	}
	if (!o.quiet)
		print_signatures(t, env, len);
	r = hf_instr_verify(t, env, len, &o.pol, &in, &why, &eb);
	if (r == 0) {
		print_accepted(&in, o.pol.now_ms);
		hf_instr_clear(&in);
		rc = 0;
	} else if (r == HF_EREFUSED) {
		printf("refused: %s: %s\n", hf_instr_refusal_name(why), eb.msg);
		rc = 1;
	} else {
		rc = hf_ctl_fail("verify", "%s: %s", hf_strerror(r), eb.msg);
	}
	free(env);
	hf_trust_free(t);
	return rc;
}

static int cmd_inspect(int argc, char **argv)
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	hf_instr_envelope e;
	hf_errbuf eb;
	json_t *p;
	char *env = NULL, *pretty = NULL;
	size_t len = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1)
		return hf_ctl_help_or_bad("inspect", c);
	if (optind + 1 != argc)
		return hf_ctl_usage_error("inspect", "expected one ENVELOPE file (or -)");
	if (hf_ctl_read_input("inspect", argv[optind], &env, &len) != 0)
		return 1;
	if (hf_instr_envelope_decode(env, len, &e, &eb) < 0) {
		free(env);
		return hf_ctl_fail("inspect", "%s", eb.msg);
	}
	free(env);
	for (size_t i = 0; i < e.nsigs; i++)
		printf("signature %zu: keyid %s\n", i + 1, e.sigs[i].keyid);
	p = json_loadb((const char *)e.payload, e.payload_len, JSON_DECODE_ANY, NULL);
	pretty = p ? json_dumps(p, JSON_INDENT(2)) : NULL;
	printf("payload (%zu bytes, NOT verified):\n%s\n", e.payload_len,
	       pretty ? pretty : (const char *)e.payload);
	free(pretty);
	json_decref(p);
	hf_instr_envelope_clear(&e);
	return 0;
}

/* ---- trust-add ---- */

typedef struct trust_opts {
	const char *trust, *role, *pub, *name;
	uint64_t threshold;
	bool has_threshold;
} trust_opts;

static int trust_parse(int argc, char **argv, trust_opts *o)
{
	static const struct option lo[] = {
		{ "trust", required_argument, NULL, 't' }, { "role", required_argument, NULL, 'r' },
		{ "pub", required_argument, NULL, 'p' }, { "name", required_argument, NULL, 'n' },
		{ "fleet-threshold", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't': o->trust = optarg; break;
		case 'r': o->role = optarg; break;
		case 'p': o->pub = optarg; break;
		case 'n': o->name = optarg; break;
		case 'T':
			if (!(o->has_threshold = hf_parse_u64(optarg, 1, HF_INSTR_MAX_TRUST_KEYS,
							      &o->threshold)))
				return hf_ctl_usage_error("trust-add", "--fleet-threshold: expected 1-64");
			break;
		default: return hf_ctl_help_or_bad("trust-add", c);
		}
	}
	if (optind < argc || !o->trust || !o->role || !o->pub)
		return hf_ctl_usage_error("trust-add", "--trust, --role and --pub are required");
	if (strcmp(o->role, "coordinator") != 0 && strcmp(o->role, "operator") != 0)
		return hf_ctl_usage_error("trust-add", "--role: expected coordinator or operator");
	return -1;
}

/* Loads the trust file as JSON (validated), or a new empty one when it does not exist. */
static json_t *trust_open(const char *path, hf_trust **t)
{
	hf_errbuf eb;
	json_t *root;
	int r = hf_cfg_load_file(path, CTL_MAX_INPUT, &root, &eb);

	*t = NULL;
	if (r == HF_ENOTFOUND)
		return json_pack("{s:[], s:i}", "keys", "fleet_threshold", 2);
	if (r < 0 || hf_trust_from_json(root, t, &eb) < 0) {
		hf_ctl_fail("trust-add", "%s%s%s (fix or remove it first)", r < 0 ? "" : path,
		     r < 0 ? "" : ": ", eb.msg);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* text plus a final newline, atomically, mode 0644. */
static int write_text(const char *path, const char *text, hf_errbuf *eb)
{
	hf_atomic *a;
	int r = hf_atomic_begin(path, 0644, &a, eb);

	if (r < 0)
		return r;
	if ((r = hf_atomic_write(a, text, strlen(text), eb)) < 0 ||
	    (r = hf_atomic_write(a, "\n", 1, eb)) < 0) {
		hf_atomic_abort(a);
		return r;
	}
	return hf_atomic_commit(a, eb);
}

static int trust_write(const trust_opts *o, json_t *root, const char *id, bool updated)
{
	hf_trust *t = NULL;
	hf_errbuf eb;
	char *text;
	int r;

	if (hf_trust_from_json(root, &t, &eb) < 0)
		return hf_ctl_fail("trust-add", "%s: the result would be invalid: %s", o->trust, eb.msg);
	text = json_dumps(root, JSON_INDENT(2));
	if (!text) {
		hf_trust_free(t);
		return hf_ctl_fail("trust-add", "out of memory");
	}
	r = write_text(o->trust, text, &eb);
	free(text);
	if (r < 0) {
		hf_trust_free(t);
		return hf_ctl_fail("trust-add", "%s", eb.msg);
	}
	printf("%s: %s %s key %s%s%s%s\n", o->trust, updated ? "updated" : "added", o->role, id,
	       o->name ? " (" : "", o->name ? o->name : "", o->name ? ")" : "");
	if (hf_trust_fleet_threshold(t) > hf_trust_count_role(t, HF_ROLE_OPERATOR))
		printf("note: fleet_threshold %u but %zu operator key(s): instructions for node \"*\" "
		       "cannot be accepted yet\n", hf_trust_fleet_threshold(t),
		       hf_trust_count_role(t, HF_ROLE_OPERATOR));
	hf_trust_free(t);
	return 0;
}

static int cmd_trust_add(int argc, char **argv)
{
	trust_opts o = { 0 };
	char id[HF_INSTR_KEYID_LEN + 1], other[HF_INSTR_KEYID_LEN + 1], *pem = NULL;
	hf_trust *t = NULL;
	hf_key *k = NULL;
	json_t *root = NULL, *entry;
	size_t i = 0, n;
	hf_errbuf eb;
	int rc = trust_parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (hf_key_load_pem(o.pub, &k, &eb) < 0 || hf_key_public_pem(k, &pem, &eb) < 0) {
		rc = hf_ctl_fail("trust-add", "%s", eb.msg);
		goto cleanup;
	}
	hf_key_id(k, id);
	rc = 1;
	if (!(root = trust_open(o.trust, &t)))
		goto cleanup;
	n = hf_trust_count(t);
	for (const hf_key *ek; i < n && hf_trust_entry(t, i, &ek, NULL, NULL); i++) {
		hf_key_id(ek, other);
		if (strcmp(other, id) == 0)
			break;
	}
	entry = json_pack("{s:s, s:s, s:s}", "keyid", id, "role", o.role, "public_key_pem", pem);
	if (o.name)
		json_object_set_new(entry, "name", json_string(o.name));
	if (i < n)
		json_array_set_new(json_object_get(root, "keys"), i, entry);
	else
		json_array_append_new(json_object_get(root, "keys"), entry);
	if (o.has_threshold)
		json_object_set_new(root, "fleet_threshold", json_integer((json_int_t)o.threshold));
	rc = trust_write(&o, root, id, i < n);
cleanup:
	json_decref(root);
	hf_trust_free(t);
	hf_key_free(k);
	free(pem);
	return rc;
}

/* ---- push, status ---- */

typedef struct body {
	char *data;
	size_t len;
} body;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	body *b = ud;
	size_t take = sz * n;
	char *nd;

	if (b->len + take > CTL_MAX_INPUT)
		return 0;
	nd = realloc(b->data, b->len + take + 1);
	if (!nd)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, p, take);
	b->len += take;
	b->data[b->len] = '\0';
	return take;
}

/* One request to BASE+path, with `Authorization: Bearer bearer` unless bearer is NULL. The
 * answer is printed, or handed over in *answer (free it) when answer is not NULL. 0 on 2xx. */
int hf_ctl_http_call_auth(const char *cmd, const char *base, const char *path, const char *post,
			  size_t postlen, const char *ca_file, const char *bearer, char **answer)
{
	char url[1024], err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	body b = { 0 };
	long status = 0;
	CURL *c;
	CURLcode cr;
	size_t bl = strlen(base);

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
		return hf_ctl_usage_error(cmd, "expected an http:// or https:// URL");
	snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path);
	c = curl_easy_init();
	if (!c)
		return hf_ctl_fail(cmd, "cannot initialise libcurl");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	if (bearer) {
		char auth[64 + 256];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
		hdr = curl_slist_append(hdr, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	}
	if (post) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)postlen);
	}
	cr = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (cr != CURLE_OK) {
		free(b.data);
		return hf_ctl_fail(cmd, "%s: %s", url, err[0] ? err : curl_easy_strerror(cr));
	}
	if (answer && status >= 200 && status <= 299) {
		*answer = b.data ? b.data : strdup("");
		return 0;
	}
	if (b.len)
		printf("%s%s", b.data, b.data[b.len - 1] == '\n' ? "" : "\n");
	free(b.data);
	if (status < 200 || status > 299)
		return hf_ctl_fail(cmd, "%s answered HTTP %ld", url, status);
	return 0;
}

static int http_call(const char *cmd, const char *base, const char *path, const char *post,
		     size_t postlen, const char *ca_file, char **answer)
{
	return hf_ctl_http_call_auth(cmd, base, path, post, postlen, ca_file, NULL, answer);
}

/* The coordinator's intake path for an envelope: per node, or the fleet for node "*". */
static int coordinator_path(const char *env, size_t len, char *path, size_t pathsz)
{
	hf_instr_envelope e;
	hf_instr in;
	hf_errbuf eb;

	if (hf_instr_envelope_decode(env, len, &e, &eb) < 0)
		return hf_ctl_fail("push", "not an instruction envelope: %s", eb.msg);
	memset(&in, 0, sizeof in);
	int r = hf_instr_parse_payload((const char *)e.payload, e.payload_len, &in, &eb);
	hf_instr_envelope_clear(&e);
	if (r < 0)
		return hf_ctl_fail("push", "payload refused: %s", eb.msg);
	if (strcmp(in.node, "*") == 0)
		snprintf(path, pathsz, "/v1/fleet/instruction");
	else
		snprintf(path, pathsz, "/v1/nodes/%s/instruction", in.node);
	hf_instr_clear(&in);
	return 0;
}

/* A node's answer to an instruction, printed as it came; an accepted instruction whose mode did
 * not start (the node retries it) is a failure of the push, one still switching is not. */
static int push_verdict(const char *answer)
{
	json_t *j = json_loads(answer, 0, NULL);
	const char *result = json_string_value(json_object_get(j, "result"));
	char why[512] = "";
	int rc = 0;

	printf("%s%s", answer, answer[0] && answer[strlen(answer) - 1] == '\n' ? "" : "\n");
	if (result && strcmp(result, "accepted") == 0 && json_is_false(json_object_get(j, "applied"))) {
		const char *e = json_string_value(json_object_get(j, "error"));
		const char *d = json_string_value(json_object_get(j, "detail"));
		hf_text_clean(why, sizeof why, e ? e : d ? d : "", strlen(e ? e : d ? d : ""));
		if (json_is_true(json_object_get(j, "pending")))
			fprintf(stderr, "hashflopctl push: accepted; the switch is still running (see "
				"hashflopctl status)\n");
		else
			rc = hf_ctl_fail("push", "accepted but not applied: %s", why[0] ? why : "no reason given");
	}
	json_decref(j);
	return rc;
}

static int cmd_push(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "node-api", required_argument, NULL, 'a' },
		{ "coordinator", required_argument, NULL, 'c' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *api = NULL, *coord = NULL, *ca = NULL;
	char path[128] = "/v1/instruction";
	char *env = NULL;
	size_t len = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'a')
			api = optarg;
		else if (c == 'c')
			coord = optarg;
		else if (c == 'C')
			ca = optarg;
		else
			return hf_ctl_help_or_bad("push", c);
	}
	if (!api == !coord || optind + 1 != argc)
		return hf_ctl_usage_error("push", "one of --node-api URL or --coordinator URL, and one ENVELOPE, are required");
	if (hf_ctl_read_input("push", argv[optind], &env, &len) != 0)
		return 1;
	rc = coord ? coordinator_path(env, len, path, sizeof path) : 0;
	if (rc == 0 && coord) {
		rc = http_call("push", coord, path, env, len, ca, NULL);
	} else if (rc == 0) {
		char *answer = NULL;
		rc = http_call("push", api, path, env, len, ca, &answer);
		if (rc == 0)
			rc = push_verdict(answer);
		free(answer);
	}
	free(env);
	return rc;
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

/* "converged", or why not: "retrying (attempt 2, next in 4000 ms): <reason>". */
static void print_convergence(const json_t *cv)
{
	const char *state = str_or(cv, "state", NULL);
	const json_t *next = json_object_get(cv, "next_attempt_in_ms");

	if (!state)
		return;
	printf("state        %s", state);
	if (strcmp(state, "converged") != 0) {
		printf(" (attempt %lld", (long long)json_integer_value(json_object_get(cv, "attempts")));
		if (json_is_integer(next))
			printf(", next in %lld ms", (long long)json_integer_value(next));
		printf(")");
		if (str_or(cv, "reason", NULL))
			printf(": %s", str_or(cv, "reason", ""));
	}
	printf("\n");
}

/* "inference    ready on 127.0.0.1:8000: fashion-mnist (ready, queue 0)". */
static void print_inference(const json_t *inf)
{
	const json_t *models = json_object_get(inf, "models");
	size_t i;
	const json_t *m;

	if (!json_is_object(inf))
		return;
	printf("inference    %s on %s:%lld", str_or(inf, "state", "?"), str_or(inf, "listen", "?"),
	       (long long)json_integer_value(json_object_get(inf, "port")));
	if (json_array_size(models) == 0)
		printf(", no model loaded");
	json_array_foreach(models, i, m) {
		printf("%s %s (%s, queue %lld", i ? "," : ":", str_or(m, "name", "?"),
		       str_or(m, "state", "?"),
		       (long long)json_integer_value(json_object_get(m, "queue_depth")));
		if (str_or(m, "reason", NULL) && *str_or(m, "reason", ""))
			printf(": %s", str_or(m, "reason", ""));
		printf(")");
	}
	printf("\n");
}

/* "power        152.3 W from hwmon (boundary chip); mining over 1 min: 3.210 MH/J": the watts,
 * where they came from, and the current mode's efficiency over the 1 min window. */
static void print_power(const json_t *st)
{
	const json_t *p = json_object_get(st, "power"), *e = json_object_get(st, "efficiency");
	const json_t *w1 = json_object_get(json_object_get(p, "windows"), "1m");
	const char *mode = str_or(e, "mode", "?");
	double covered = json_number_value(json_object_get(w1, "covered_s"));

	if (!json_is_object(p))
		return;
	if (!json_object_get(p, "watts")) {
		printf("power        %s: %s\n", str_or(p, "state", "unavailable"), str_or(p, "reason", "?"));
		return;
	}
	printf("power        %.1f W from %s (boundary %s%s%s)", json_number_value(json_object_get(p, "watts")),
	       str_or(p, "source", "?"), str_or(p, "boundary", "?"),
	       json_is_true(json_object_get(p, "estimated")) ? ", estimated" : "",
	       json_is_true(json_object_get(p, "degraded")) ? ", degraded" : "");
	if (covered < 59.5)
		printf("; %s over %.0f s of 1 min", mode, covered);
	else
		printf("; %s over 1 min", mode);
	if (strcmp(mode, "mining") == 0)
		printf(": %.3f MH/J", json_number_value(json_object_get(json_object_get(e, "mh_per_j"), "1m")));
	else if (strcmp(mode, "inference") == 0)
		printf(": %.3f GFLOP/J, %.2f inferences/J",
		       json_number_value(json_object_get(json_object_get(e, "gflop_per_j"), "1m")),
		       json_number_value(json_object_get(json_object_get(e, "inferences_per_j"), "1m")));
	else
		printf(": %.1f W idle", json_number_value(json_object_get(json_object_get(e, "idle_watts"), "1m")));
	printf("\n");
}

/* Prints a node's status document as aligned lines a person reads at a glance. */
static void print_status(const json_t *st)
{
	const json_t *sw = json_object_get(st, "last_switch");
	const json_t *li = json_object_get(st, "last_instruction");
	const json_t *ctl = json_object_get(st, "control");

	printf("node         %s (fleet %s), hashflopd %s, up %.1f s\n", str_or(st, "node", "?"),
	       str_or(st, "fleet", "?"), str_or(st, "version", "?"),
	       json_number_value(json_object_get(st, "uptime_s")));
	printf("mode         %s (%s), desired %s, %lld switch(es)\n", str_or(st, "mode", "?"),
	       str_or(st, "phase", "?"), str_or(st, "desired_mode", "?"),
	       (long long)json_integer_value(json_object_get(st, "switches")));
	print_convergence(json_object_get(st, "convergence"));
	print_inference(json_object_get(st, "inference"));
	print_power(st);
	if (json_is_object(sw)) {
		const json_t *ph = json_object_get(sw, "phases_ms");
		printf("last switch  %s -> %s in %lld ms (queued %lld, drain %lld, release %lld, start %lld)%s%s\n",
		       str_or(sw, "from", "boot"), str_or(sw, "to", "?"),
		       (long long)json_integer_value(json_object_get(ph, "total")),
		       (long long)json_integer_value(json_object_get(ph, "queued")),
		       (long long)json_integer_value(json_object_get(ph, "drain")),
		       (long long)json_integer_value(json_object_get(ph, "release")),
		       (long long)json_integer_value(json_object_get(ph, "start")),
		       json_is_true(json_object_get(sw, "ok")) ? "" : ", FAILED: ",
		       json_is_true(json_object_get(sw, "ok")) ? "" : str_or(sw, "error", "?"));
	}
	if (json_is_object(li))
		printf("instruction  mode %s, issued_ms %lld, %s authority via %s, payload %.16s\n",
		       str_or(li, "mode", "?"), (long long)json_integer_value(json_object_get(li, "issued_ms")),
		       str_or(li, "authority", "?"), str_or(li, "source", "?"),
		       str_or(li, "payload_sha256", "?"));
	else
		printf("instruction  none accepted yet\n");
	if (json_is_object(ctl)) {
		long long hold = (long long)json_integer_value(json_object_get(ctl, "hold_until_ms"));
		printf("control      trust %s, ", json_is_true(json_object_get(ctl, "trusted")) ?
		       "loaded" : str_or(ctl, "problem", "missing"));
		if (hold)
			printf("operator hold until %lld", hold);
		else
			printf("no operator hold");
		if (json_object_get(ctl, "coordinator"))
			printf(", coordinator %s (%s)", str_or(ctl, "coordinator", "?"),
			       json_is_true(json_object_get(ctl, "connected")) ? "connected" : "not connected");
		printf("\n");
	}
}

static int cmd_status(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "node-api", required_argument, NULL, 'a' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *api = NULL;
	bool raw = false;
	char *answer = NULL;
	json_t *st;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'a')
			api = optarg;
		else if (c == 'j')
			raw = true;
		else
			return hf_ctl_help_or_bad("status", c);
	}
	if (!api || optind != argc)
		return hf_ctl_usage_error("status", "--node-api URL is required");
	rc = http_call("status", api, "/v1/status", NULL, 0, NULL, &answer);
	if (rc != 0)
		return rc;
	st = json_loads(answer, 0, NULL);
	if (!st || raw) {
		printf("%s%s", answer, answer[0] && answer[strlen(answer) - 1] == '\n' ? "" : "\n");
		rc = st ? 0 : hf_ctl_fail("status", "the node's answer is not JSON");
	} else {
		print_status(st);
	}
	json_decref(st);
	free(answer);
	return rc;
}

/* ---- main ---- */

/* ---- devices ---- */

#ifdef HF_HAVE_OPENCL
#define MAX_CL_DEVICES 64

static json_t *device_json(const hf_cl_device_info *d)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:i,s:I,s:I,s:I,s:I,s:b,s:b}",
			 "selector", d->selector, "name", d->name, "vendor", d->vendor,
			 "platform", d->platform, "platform_vendor", d->platform_vendor,
			 "driver_version", d->driver_version, "version", d->version, "gpu",
			 d->is_gpu, "compute_units", (int)d->compute_units, "clock_mhz",
			 (int)d->clock_mhz, "global_mem_bytes", (json_int_t)d->global_mem_bytes,
			 "local_mem_bytes", (json_int_t)d->local_mem_bytes, "max_alloc_bytes",
			 (json_int_t)d->max_alloc_bytes, "max_work_group_size",
			 (json_int_t)d->max_work_group_size, "fp16", d->fp16, "fp64", d->fp64);
}

static void device_line(const hf_cl_device_info *d)
{
	printf("%-5s %s %s\n      platform %s, driver %s, %s\n      %u compute units at %u MHz, "
	       "%.1f GiB global, %llu KiB local, work-groups up to %zu, fp16 %s, fp64 %s\n",
	       d->selector, d->is_gpu ? "GPU" : "CPU", d->name, d->platform, d->driver_version,
	       d->version, d->compute_units, d->clock_mhz,
	       (double)d->global_mem_bytes / (1024.0 * 1024 * 1024),
	       (unsigned long long)(d->local_mem_bytes / 1024), d->max_work_group_size,
	       d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no");
}
#endif

static int cmd_devices(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' }, { "select", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *sel = NULL;
	bool js = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': js = true; break;
		case 's': sel = optarg; break;
		default: return hf_ctl_help_or_bad("devices", c);
		}
	}
	if (optind < argc)
		return hf_ctl_usage_error("devices", "unexpected argument");
#ifdef HF_HAVE_OPENCL
	hf_errbuf eb;
	hf_cl_device_info *d = calloc(MAX_CL_DEVICES, sizeof *d);
	size_t n = 0;
	int r;
	if (!d)
		return hf_ctl_fail("devices", "out of memory");
	if (sel) {
		n = 1;
		r = hf_cl_find(sel, d, &eb);
	} else {
		r = hf_cl_list(d, MAX_CL_DEVICES, &n, &eb);
		if (n > MAX_CL_DEVICES)
			n = MAX_CL_DEVICES;
	}
	if (r) {
		free(d);
		return hf_ctl_fail("devices", "%s", eb.msg);
	}
	if (js) {
		json_t *v = sel ? device_json(d) : json_array();
		for (size_t i = 0; !sel && i < n; i++)
			json_array_append_new(v, device_json(&d[i]));
		char *t = json_dumps(v, JSON_INDENT(2));
		if (t)
			printf("%s\n", t);
		free(t);
		json_decref(v);
	} else if (n == 0) {
		printf("no OpenCL devices (no ICD installed, or none reports a device: "
		       "clinfo -l shows what the loader sees)\n");
	} else {
		for (size_t i = 0; i < n; i++)
			device_line(&d[i]);
	}
	free(d);
	return 0;
#else
	(void)sel;
	(void)js;
	return hf_ctl_fail("devices", "this hashflopctl was built without OpenCL");
#endif
}

static const command commands[] = {
	{ "keygen", "generate an Ed25519 key pair (KEY.pem, KEY.pub.pem)",
	  "--out KEY.pem [--force]", cmd_keygen },
	{ "keyid", "print the key id of a private or public key PEM", "KEY.pem", cmd_keyid },
	{ "sign", "build a payload from flags, sign it, print the envelope",
	  "--key K.pem [--key K2.pem ...] --fleet F --node N|'*' --mode idle|mining|inference\n"
	  "       [--ttl 10m] [--hold-until-ms MS | --hold 1h] [--pools-json FILE]\n"
	  "       [--model NAME ...] [--reason-json FILE] [--issued-ms MS] [--out FILE]\n"
	  "Durations: 500ms, 30s, 10m, 2h, 1d (a bare number is seconds). --ttl defaults to 10m;\n"
	  "--issued-ms defaults to now; --hold is relative to issued_ms. --pools-json holds\n"
	  "{\"pools\":[{\"url\":\"stratum+tcp://HOST:PORT\",\"user\":\"U\",\"pass\":\"P\"}]} or the array alone.",
	  cmd_sign },
	{ "verify", "check an envelope against a trust file as a node would",
	  "--trust trust.json --fleet F --node N [--now-ms MS] [--last-issued-ms MS]\n"
	  "       [--skew 120s] [--hold-until-ms MS] [--quiet] ENVELOPE|-\n"
	  "Prints each signature's check and accepted or refused: REASON; exit 0 when accepted.",
	  cmd_verify },
	{ "inspect", "decode an envelope (no verification)", "ENVELOPE|-", cmd_inspect },
	{ "trust-add", "add or update a key in a trust file (created if missing)",
	  "--trust trust.json --role coordinator|operator --pub KEY.pem [--name NAME]\n"
	  "       [--fleet-threshold N]", cmd_trust_add },
	{ "push", "POST an envelope to a node's local API (/v1/instruction) or to a coordinator "
	  "(/v1/nodes/NODE/instruction, /v1/fleet/instruction for node \"*\")",
	  "(--node-api http://127.0.0.1:PORT | --coordinator URL [--ca-file PEM]) ENVELOPE|-", cmd_push },
	{ "status", "GET a node's /v1/status and print it readably (--json: as is)",
	  "--node-api http://127.0.0.1:PORT [--json]", cmd_status },
	{ "fleet", "GET a coordinator's /v1/fleet and print one line per node (--json: as is)",
	  "--coordinator URL [--ca-file PEM] [--token-file FILE] [--json]\n"
	  "--token-file: the coordinator's admin token (needed unless it listens on loopback only).\n"
	  "Columns: node, mode, desired mode, converged (since when, or the convergence state),\n"
	  "age of the last report, offline, watts.", hf_ctl_cmd_fleet },
	{ "decisions", "GET a coordinator's audit log (/v1/decisions) and print it (--json: as is)",
	  "--coordinator URL [--ca-file PEM] [--token-file FILE] [--since MS|DURATION] [--limit N]\n"
	  "       [--json]\n"
	  "--since takes ms since the epoch or a duration ago (10m, 2h); --limit defaults to 50.\n"
	  "Columns: seq, time, node, mode, authority/source, reason (summary), acknowledged by.",
	  hf_ctl_cmd_decisions },
	{ "devices", "list the OpenCL devices and their selectors (P:D, pocl, nvidia, a name part)",
	  "[--select SELECTOR] [--json]\n"
	  "--select shows only the device a selector picks (as hashflopd and hashflop-bench would);\n"
	  "an unmatched selector fails with the list of devices.", cmd_devices },
};

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < HF_ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: hashflopctl COMMAND [options]\n"
		"       hashflopctl COMMAND --help\n"
		"\n"
		"The hashflop operator CLI: Ed25519 keys, trust files and signed instructions\n"
		"(contract v1: see runtime/common/INSTRUCTIONS.md), and the OpenCL devices a node\n"
		"can use.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < HF_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n"
		"Options:\n"
		"  -h, --help      show this help and exit\n"
		"  -V, --version   show the version and exit\n"
		"\n"
		"Exit status: 0 on success (verify: accepted), 1 on a failure or refusal, 2 on a\n"
		"usage error.\n");
}

int main(int argc, char **argv)
{
	const command *cm;
	int rc;

	hf_cl_env_init(NULL, NULL); /* before any thread: what PoCL reads (devices) */
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("hashflopctl %s\n", HF_VERSION);
		return 0;
	}
	cm = find_command(argv[1]);
	if (!cm) {
		fprintf(stderr, "hashflopctl: unknown command or option \"%s\" (see --help)\n", argv[1]);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	optind = 1;
	rc = cm->run(argc - 1, argv + 1);
	curl_global_cleanup();
	return rc;
}
