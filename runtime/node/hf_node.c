/* hf_node: assembly of a running node (state dir lock, persisted state, modes, API, control).
 * Invariants: the desired mode is on disk before it is handed to the mode machine; the state
 * lock is held for the node's whole life; text from outside (refusal details that quote
 * payload fields) is cleaned before it is logged or answered.
 * Threading: see hf_node.h; st is guarded by lock.
 */
#include "hf_node.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hf_control.h"
#include "hf_file.h"
#include "hf_httpd.h"
#include "hf_inference.h"
#include "hf_log.h"
#include "hf_mining.h"
#include "hf_mining_config.h"
#include "hf_node_api.h"
#include "hf_node_cl.h"
#include "hf_node_state.h"
#include "hf_power.h"
#include "hf_prom.h"
#include "hf_report.h"
#include "hf_telemetry.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

static json_t *control_status(hf_node *n);
static void instruction_metrics(hf_node *n, hf_buf *b);
static void load_token(hf_node *n);
static int start_report(hf_node *n, hf_errbuf *eb);
static void report_status(hf_node *n, json_t *c);

struct hf_node {
	const hf_node_config *cfg;
	pthread_mutex_t lock;
	hf_node_state st;
	hf_modes *modes;
	hf_mining *mining;
	hf_inference *inference;      /* NULL: not built in, or its listener could not start */
	hf_power *power;              /* NULL: no source could be opened (power_problem says why) */
	hf_telemetry *telemetry;      /* NULL without a power source */
	char power_problem[HF_ERRBUF_SIZE];
	char inference_problem[HF_ERRBUF_SIZE];
	hf_httpd *api;
	hf_node_api *api_ctx;   /* the routes' context: deferred instruction answers */
	int lock_fd;
	uint64_t start_wall_ms, start_mono_ms;
	atomic_uint_fast64_t state_writes, state_write_failures;
	char api_file[PATH_MAX];
	/* instructions: instr_lock serialises verification against last_issued_ms */
	pthread_mutex_t instr_lock;
	hf_trust *trust;
	char trust_problem[HF_ERRBUF_SIZE];
	hf_control *control;
	/* reports to the coordinator (hf_report): the token from control.token_file */
	hf_report *report;
	char token[HF_REPORT_TOKEN_MAX + 1];
	char token_problem[HF_ERRBUF_SIZE];
	atomic_uint_fast64_t refused[HF_REFUSE_COUNT];
	atomic_uint_fast64_t accepted_local, accepted_coord, instr_noops, instr_failures;
};

static int lock_state_dir(hf_node *n, hf_errbuf *eb)
{
	char path[PATH_MAX];
	int r = hf_mkdir_p(n->cfg->state_dir, 0700, eb);
	if (r < 0)
		return r;
	snprintf(path, sizeof path, "%s/lock", n->cfg->state_dir);
	n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (n->lock_fd < 0)
		return hf_fail(eb, HF_EIO, "%s: %s", path, strerror(errno));
	if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return hf_fail(eb, HF_EBUSY, "state dir %s is in use by another hashflopd (%s is locked)",
			       n->cfg->state_dir, path);
	return 0;
}

/* Loads state.json, or falls back to the configured initial mode. */
static void restore_state(hf_node *n)
{
	hf_errbuf eb;
	int r = hf_node_state_load(n->cfg->state_dir, &n->st, &eb);

	if (r == 0) {
		hf_log_info("restored desired mode %s from %s/%s", hf_mode_name(n->st.desired_mode),
			    n->cfg->state_dir, HF_NODE_STATE_FILE);
		return;
	}
	if (r != HF_ENOTFOUND) {
		char moved[PATH_MAX + 64];
		hf_log_err("state file refused (%s): %s", hf_strerror(r), eb.msg);
		if (hf_node_state_quarantine(n->cfg->state_dir, moved, sizeof moved, &eb) == 0)
			hf_log_warn("moved the refused state file to %s; starting from the initial mode", moved);
		else
			hf_log_err("%s", eb.msg);
	} else {
		hf_log_info("no saved state in %s; starting in the initial mode %s", n->cfg->state_dir,
			    hf_mode_name(n->cfg->initial_mode));
	}
	hf_node_state_clear(&n->st);
	memset(&n->st, 0, sizeof n->st);
	n->st.desired_mode = n->cfg->initial_mode;
	if (hf_node_state_save(n->cfg->state_dir, &n->st, &eb) == 0)
		atomic_fetch_add(&n->state_writes, 1);
	else
		hf_log_err("cannot persist the initial state: %s", eb.msg);
}

static int write_api_file(hf_node *n, hf_errbuf *eb)
{
	json_t *j = json_pack("{s:s, s:i, s:I}", "listen", n->cfg->api_listen,
			      "port", (int)hf_httpd_port(n->api), "pid", (json_int_t)getpid());
	char *text;

	if (j && n->inference) {
		json_object_set_new(j, "inference_listen", json_string(hf_inference_listen(n->inference)));
		json_object_set_new(j, "inference_port", json_integer(hf_inference_port(n->inference)));
	}
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int r;

	json_decref(j);
	if (!text)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	snprintf(n->api_file, sizeof n->api_file, "%s/api.json", n->cfg->state_dir);
	r = hf_file_write_atomic(n->api_file, text, strlen(text), 0644, eb);
	free(text);
	return r;
}

/* Loads the trust file; without a usable one the node runs but refuses every instruction. */
static void load_trust(hf_node *n)
{
	hf_errbuf eb;
	int r = hf_trust_load(n->cfg->trust_file, &n->trust, &eb);

	if (r == 0) {
		hf_log_info("trust file %s: %zu key(s), fleet threshold %u", n->cfg->trust_file,
			    hf_trust_count(n->trust), hf_trust_fleet_threshold(n->trust));
		return;
	}
	n->trust = NULL;
	if (r == HF_ENOTFOUND)
		snprintf(n->trust_problem, sizeof n->trust_problem,
			 "no trust file at %s: every instruction is refused", n->cfg->trust_file);
	else
		snprintf(n->trust_problem, sizeof n->trust_problem,
			 "trust file refused (%s): every instruction is refused", eb.msg);
	hf_text_clean_inplace(n->trust_problem); /* it may quote the file's values */
	if (r == HF_ENOTFOUND)
		hf_log_warn("control: no trust file at %s (control.trust_file): every instruction, local "
			    "or from a coordinator, will be refused until it exists and hashflopd is "
			    "restarted; the node stays in its desired mode (%s)", n->cfg->trust_file,
			    hf_mode_name(n->st.desired_mode));
	else
		hf_log_warn("control: %s (control.trust_file %s) until it is fixed and hashflopd is "
			    "restarted; the node stays in its desired mode (%s)", n->trust_problem,
			    n->cfg->trust_file, hf_mode_name(n->st.desired_mode));
}

/* Says once, at start, what a node without a coordinator does (a standalone node). */
static void log_control_setup(hf_node *n)
{
	if (n->cfg->coordinator_url[0])
		return;
	hf_log_notice("control: no coordinator (control.coordinator_url is \"\"): standalone node; "
		      "nothing is polled and no reports are sent; operator-signed instructions are "
		      "taken on the local API (POST /v1/instruction)%s",
		      n->trust ? "" : ", once a trust file exists");
}

/* The control channel's view of the node: submit an envelope, read last_issued_ms. */
static hf_control_verdict control_submit(void *ctx, const char *envelope, size_t len,
					 char *detail, size_t detailsz)
{
	hf_instr_outcome o;

	hf_node_submit_instruction(ctx, envelope, len, "coordinator", 0, &o);
	hf_strlcpy(detail, o.error[0] ? o.error : o.detail, detailsz);
	switch (o.result) {
	case HF_INSTR_ACCEPTED: return HF_CONTROL_ACCEPTED;
	case HF_INSTR_NOOP: return HF_CONTROL_NOOP;
	case HF_INSTR_REFUSED:
	case HF_INSTR_NO_TRUST: return HF_CONTROL_REFUSED;
	case HF_INSTR_FAILED: break;
	}
	return HF_CONTROL_FAILED;
}

static uint64_t control_last_issued(void *ctx)
{
	return hf_node_last_issued_ms(ctx);
}

static int start_control(hf_node *n, hf_errbuf *eb)
{
	hf_control_opts o = { .coordinator_url = n->cfg->coordinator_url, .node_id = n->cfg->node_id,
			      .ca_file = n->cfg->ca_file, .poll_wait_s = n->cfg->poll_wait_s,
			      .retry_max_ms = n->cfg->retry_max_ms, .bearer_token = n->token };
	hf_control_ops ops = { .ctx = n, .submit = control_submit,
			       .last_issued_ms = control_last_issued };
	return hf_control_start(&o, &ops, &n->control, eb);
}

/* What the mining OpenCL device tells the power source, when the mining section uses one and
 * it resolves: its PCI bus id (unless power.pci_bus_id names a GPU), so that auto measures that
 * GPU with NVML, and with 0/0 watts the estimate's default for it (an H100/H200 has its board
 * figure). Otherwise o is left alone and hf_power picks this machine's CPU figure itself (and
 * labels it a default). pci (size pcisz) holds the bus id o->pci_bus_id may point at. */
static void mining_device_power(hf_node *n, hf_power_opts *o, const char **why, char *pci,
				size_t pcisz)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char name[128] = "";
	hf_mining_config mc;
	hf_errbuf eb;

	hf_mining_config_defaults(&mc);
	if (!n->cfg->mining || hf_mining_config_from_json(&mc, n->cfg->mining, "mining", &eb) < 0 ||
	    mc.backend != HF_MINING_OPENCL)
		return;
	if (hf_node_cl_device(mc.device, name, sizeof name, pci, pcisz, &eb) < 0) {
		hf_log_info("power: the mining OpenCL device did not resolve (%s): no GPU to match, "
			    "the CPU figure for an estimate", eb.msg);
		return;
	}
	hf_text_clean_inplace(name); /* the driver's text */
	if ((!o->pci_bus_id || !o->pci_bus_id[0]) && pci[0]) {
		o->pci_bus_id = pci;
		hf_log_info("power: the mining GPU \"%s\" is at PCI %s", name, pci);
	}
	if ((o->kind == HF_POWER_AUTO || o->kind == HF_POWER_ESTIMATE) && o->idle_w == 0 &&
	    o->full_w == 0) {
		hf_power_estimate_default(name, ncpu > 0 ? (unsigned)ncpu : 1, &o->idle_w,
					  &o->full_w, why);
		hf_log_info("power: estimate defaults from the mining device \"%s\"", name);
	}
}

/* Opens the power source power.* names and logs once where the node's watts come from. An
 * explicit source that cannot be opened stops the start; "auto" falls back to the estimate
 * inside hf_power, and if even that fails the node runs without power telemetry. */
static int open_power(hf_node *n, hf_errbuf *eb)
{
	const hf_node_config *c = n->cfg;
	hf_power_opts o = { .kind = c->power_source, .sysfs_root = c->power_sysfs_root,
			    .nvml_library = c->power_nvml_library, .pci_bus_id = c->power_pci_bus_id,
			    .sample_interval_ms = (unsigned)c->power_sample_interval_ms,
			    .idle_w = c->power_idle_w, .full_w = c->power_full_w };
	const char *why = NULL, *problems;
	char pci[32] = "";
	hf_errbuf e2;
	int r;

	mining_device_power(n, &o, &why, pci, sizeof pci);
	hf_errbuf_clear(&e2);
	r = hf_power_open(&o, &n->power, &e2);
	if (r < 0 && c->power_source != HF_POWER_AUTO)
		return hf_fail(eb, r, "power.source \"%s\": %s", hf_power_kind_name(c->power_source), e2.msg);
	if (r < 0) {
		n->power = NULL;
		hf_text_clean(n->power_problem, sizeof n->power_problem, e2.msg, strlen(e2.msg));
		hf_log_err("power: no source could be opened (%s): the node runs without power telemetry",
			   n->power_problem);
		return 0;
	}
	hf_log_info("power: source %s, boundary %s%s: %s", hf_power_kind_name(hf_power_kind_of(n->power)),
		    hf_power_boundary(n->power),
		    hf_power_kind_of(n->power) == HF_POWER_ESTIMATE ? " (estimated)" : "",
		    hf_power_detail(n->power));
	if (hf_power_kind_of(n->power) == HF_POWER_ESTIMATE && why)
		hf_log_info("power: estimate defaults: %s", why);
	problems = hf_power_problems(n->power);
	if (problems && problems[0])
		hf_log_notice("power: measured sources passed over: %s", problems);
	return 0;
}

static int start_telemetry(hf_node *n, hf_errbuf *eb)
{
	hf_telemetry_opts o = { .power = n->power, .modes = n->modes,
				.interval_ms = (unsigned)n->cfg->telemetry_interval_ms };

	hf_mining_config mc;
	hf_errbuf e2;
	int r;

	if (!n->power)
		return 0;
	if ((r = hf_telemetry_new(&o, &n->telemetry, eb)) < 0)
		return r;
	/* The configured mining target is shown with the power figures (instructions do not
	 * change it). */
	hf_mining_config_defaults(&mc);
	if (n->cfg->mining && hf_mining_config_from_json(&mc, n->cfg->mining, "mining", &e2) == 0 &&
	    mc.power_target_w > 0)
		hf_telemetry_set_target(n->telemetry, mc.power_target_w);
	return 0;
}

/* The mining section hf_mining gets (new reference, NULL for none): as configured, with
 * opencl.cache_dir set to the node's cache dir (cfg->cache_dir, from $CACHE_DIRECTORY) when the
 * config leaves it "" (an explicit value wins). */
static json_t *mining_section(const hf_node_config *cfg)
{
	json_t *sec, *ocl;
	const char *cur;

	if (!cfg->cache_dir[0])
		return json_incref(cfg->mining);
	sec = cfg->mining ? json_deep_copy(cfg->mining) : json_object();
	ocl = json_object_get(sec, "opencl");
	if (sec && !json_is_object(ocl)) {
		ocl = json_object();
		json_object_set_new(sec, "opencl", ocl);
	}
	cur = json_string_value(json_object_get(ocl, "cache_dir"));
	if (ocl && (!cur || !cur[0]))
		json_object_set_new(ocl, "cache_dir", json_string(cfg->cache_dir));
	return sec;
}

/* The mining worker: always built in (the CPU backend needs no device). */
static int register_mining(hf_node *n, hf_errbuf *eb)
{
	hf_mode_worker w;
	json_t *sec = mining_section(n->cfg);
	int r = hf_mining_new(sec, n->cfg->state_dir, n->power, &n->mining, eb);

	json_decref(sec);
	if (r < 0)
		return r;
	hf_mining_worker(n->mining, &w);
	return hf_modes_register(n->modes, &w, eb);
}

/* The inference worker, when built in (OpenCL). Its listener starts now and serves (503 until
 * the mode runs) for the node's life; when it cannot start (the port is taken) the node runs
 * without the mode and says why in /v1/status. */
static int register_inference(hf_node *n, hf_errbuf *eb)
{
	hf_mode_worker w;
	hf_errbuf e2;
	int r = hf_inference_new(n->cfg->inference, n->cfg->state_dir, n->cfg->cache_dir,
				 &n->inference, &e2);

	if (r == HF_EUNSUPPORTED) {
		hf_strlcpy(n->inference_problem, e2.msg, sizeof n->inference_problem);
		hf_log_info("%s", e2.msg);
		return 0;
	}
	if (r < 0) {
		hf_text_clean(n->inference_problem, sizeof n->inference_problem, e2.msg, strlen(e2.msg));
		hf_log_err("inference mode unavailable: %s", n->inference_problem);
		return 0;
	}
	hf_log_info("inference listener on %s port %u", hf_inference_listen(n->inference),
		    (unsigned)hf_inference_port(n->inference));
	hf_inference_worker(n->inference, &w);
	return hf_modes_register(n->modes, &w, eb);
}

int hf_node_new(const hf_node_config *cfg, hf_node **out, hf_errbuf *eb)
{
	hf_httpd_opts ho = { .host = cfg->api_listen, .port = cfg->api_port,
			     .max_body = cfg->api_max_body, .max_conns = (unsigned)cfg->api_max_conns,
			     .max_conns_per_ip = (unsigned)cfg->api_max_conns_per_client,
			     .header_timeout_s = (unsigned)cfg->api_header_timeout_s,
			     .timeout_s = (unsigned)cfg->api_timeout_s, .threads = (unsigned)cfg->api_threads };
	hf_mode start_mode;
	hf_node *n;
	int r;

	*out = NULL;
	n = calloc(1, sizeof *n);
	if (!n)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	n->cfg = cfg;
	n->lock_fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->instr_lock, NULL);
	n->start_wall_ms = hf_wall_ms();
	n->start_mono_ms = hf_mono_ms();
	if ((r = lock_state_dir(n, eb)) < 0)
		goto fail;
	{
		char sp[PATH_MAX];
		snprintf(sp, sizeof sp, "%s/%s", cfg->state_dir, HF_NODE_STATE_FILE);
		int stale = hf_atomic_cleanup(sp);
		if (stale > 0)
			hf_log_warn("removed %d temporary state file(s) left by an interrupted write", stale);
	}
	restore_state(n);
	load_trust(n);
	log_control_setup(n);
	/* The watchdog bounds: a start may build OpenCL programs (a minute on PoCL), the other
	 * callbacks return within a few seconds, the drain within its timeout. */
	hf_modes_opts mo = { .drain_timeout_ms = cfg->drain_timeout_ms,
			     .retry_min_ms = cfg->mode_retry_min_ms, .retry_max_ms = cfg->mode_retry_max_ms,
			     .health_interval_ms = cfg->health_interval_ms,
			     .start_bound_ms = HF_NODE_START_BOUND_MS,
			     .callback_bound_ms = HF_NODE_CALLBACK_BOUND_MS,
			     .watchdog_grace_ms = HF_NODE_WATCHDOG_GRACE_MS,
			     .watchdog_failures = (unsigned)cfg->watchdog_failures };
	if ((r = open_power(n, eb)) < 0)
		goto fail;
	if ((r = hf_modes_new(&mo, &n->modes, eb)) < 0)
		goto fail;
	if ((r = register_mining(n, eb)) < 0)
		goto fail;
	if ((r = register_inference(n, eb)) < 0)
		goto fail;
	if ((r = start_telemetry(n, eb)) < 0)
		goto fail;
	start_mode = n->st.desired_mode;
	if (!hf_modes_available(n->modes, start_mode)) {
		hf_log_warn("desired mode %s is not available in this build; running idle",
			    hf_mode_name(start_mode));
		start_mode = HF_MODE_IDLE;
	}
	if ((r = hf_modes_request(n->modes, start_mode,
				  start_mode == n->st.desired_mode ? n->st.mode_params : NULL, NULL, eb)) < 0)
		goto fail;
	if (cfg->coordinator_url[0]) {
		load_token(n);
		if ((r = start_report(n, eb)) < 0)
			goto fail;
	}
	if ((r = hf_node_api_new(n, &n->api_ctx, eb)) < 0)
		goto fail;
	if ((r = hf_httpd_new(&ho, hf_node_api_routes, hf_node_api_nroutes, n->api_ctx, &n->api, eb)) < 0)
		goto fail;
	if (hf_httpd_max_conns(n->api) < ho.max_conns)
		hf_log_warn("api: the file descriptor limit leaves room for %u connections, not api.max_connections %u",
			    hf_httpd_max_conns(n->api), ho.max_conns);
	if ((r = write_api_file(n, eb)) < 0)
		goto fail;
	if (cfg->coordinator_url[0] && (r = start_control(n, eb)) < 0)
		goto fail;
	*out = n;
	return 0;
fail:
	hf_node_free(n);
	return r;
}

uint16_t hf_node_api_port(const hf_node *n)
{
	return hf_httpd_port(n->api);
}

bool hf_node_wait_settled(hf_node *n, uint64_t timeout_ms)
{
	return hf_modes_wait_settled(n->modes, timeout_ms);
}

bool hf_node_watchdog(hf_node *n, char *why, size_t whysz)
{
	return hf_modes_watchdog(n->modes, why, whysz);
}

void hf_node_status_line(hf_node *n, char *buf, size_t bufsz)
{
	hf_modes_info i;
	hf_mode desired;

	hf_modes_snapshot(n->modes, &i);
	pthread_mutex_lock(&n->lock);
	desired = n->st.desired_mode;
	pthread_mutex_unlock(&n->lock);
	if (!hf_modes_available(n->modes, desired))
		snprintf(buf, bufsz, "running %s: the desired mode %s is not available in this build",
			 hf_mode_name(i.mode), hf_mode_name(desired));
	else if (i.converged)
		snprintf(buf, bufsz, "running %s", hf_mode_name(i.mode));
	else if (i.conv == HF_CONV_RETRYING || i.conv == HF_CONV_FAILED)
		snprintf(buf, bufsz, "%s %s: %s; next attempt in %llu ms",
			 i.conv == HF_CONV_RETRYING ? "retrying" : "restarting", hf_mode_name(i.desired),
			 i.reason, (unsigned long long)i.next_attempt_in_ms);
	else if (i.attempts && i.last.result < 0)
		snprintf(buf, bufsz, "retrying %s (attempt %u): the last attempt failed: %s",
			 hf_mode_name(i.desired), i.attempts + 1, i.last.error);
	else
		snprintf(buf, bufsz, "%s %s (%s)", hf_mode_phase_name(i.phase), hf_mode_name(i.mode),
			 i.reason);
	hf_utf8_trim(buf);
}

/* "power" and "efficiency" (hf_telemetry), in every mode. */
static void power_status(hf_node *n, json_t *j)
{
	hf_telemetry_snapshot s;

	if (!n->telemetry) {
		json_object_set_new(j, "power", json_pack("{s:s, s:s}", "state", "unavailable",
							  "reason", n->power_problem));
		return;
	}
	hf_telemetry_snapshot_get(n->telemetry, &s);
	hf_telemetry_status_json(&s, j);
}

hf_power *hf_node_power(hf_node *n)
{
	return n->power;
}

void hf_node_telemetry(hf_node *n, hf_telemetry_snapshot *out)
{
	if (n->telemetry)
		hf_telemetry_snapshot_get(n->telemetry, out);
	else
		memset(out, 0, sizeof *out);
}

json_t *hf_node_status_json(hf_node *n)
{
	json_t *j = json_object();
	uint64_t up_ms = hf_mono_ms() - n->start_mono_ms;

	json_object_set_new(j, "node", json_string(n->cfg->node_id));
	json_object_set_new(j, "fleet", json_string(n->cfg->fleet_id));
	json_object_set_new(j, "version", json_string(HF_VERSION));
	json_object_set_new(j, "started_ms", json_integer((json_int_t)n->start_wall_ms));
	json_object_set_new(j, "uptime_s", json_real((double)up_ms / 1000.0));
	hf_modes_status_json(n->modes, j);
	pthread_mutex_lock(&n->lock);
	json_t *li = n->st.last_instruction ? json_deep_copy(n->st.last_instruction) : json_null();
	json_object_del(li, "envelope");
	json_object_set_new(j, "last_instruction", li);
	/* The persisted desire wins over the machine's: it includes modes this build lacks. */
	json_object_set_new(j, "desired_mode", json_string(hf_mode_name(n->st.desired_mode)));
	if (!hf_modes_available(n->modes, n->st.desired_mode)) {
		char why[160];
		snprintf(why, sizeof why, "mode %s is not available in this build; the node keeps "
			 "its current mode", hf_mode_name(n->st.desired_mode));
		json_t *cv = json_object_get(j, "convergence");
		json_object_set_new(j, "converged", json_false());
		json_object_set_new(cv, "state", json_string("unavailable"));
		json_object_set_new(cv, "reason", json_string(why));
	}
	json_object_set_new(j, "control", control_status(n));
	pthread_mutex_unlock(&n->lock);
	if (n->inference)
		hf_inference_status(n->inference, j);
	else
		json_object_set_new(j, "inference", json_pack("{s:s, s:s}", "state", "unavailable",
							      "reason", n->inference_problem));
	power_status(n, j);
	return j;
}

/* The local API's own load: what a slowloris or a swarm of long polls would show first. */
static void api_metrics(hf_node *n, hf_buf *b)
{
	hf_httpd_stats st;

	hf_httpd_get_stats(n->api, &st);
	hf_prom_family(b, "hashflop_api_connections", "gauge", "Connections open on the local API.");
	hf_prom_sample(b, "hashflop_api_connections", NULL, 0, (double)st.connections);
	hf_prom_family(b, "hashflop_api_connections_max", "gauge",
		       "The connection cap in force (api.max_connections, lowered to the descriptor limit).");
	hf_prom_sample(b, "hashflop_api_connections_max", NULL, 0, (double)hf_httpd_max_conns(n->api));
	hf_prom_family(b, "hashflop_api_deferred_requests", "gauge", "Requests waiting for a deferred answer.");
	hf_prom_sample(b, "hashflop_api_deferred_requests", NULL, 0, (double)st.deferred);
	hf_prom_family(b, "hashflop_api_connections_refused_total", "counter",
		       "Connections closed at accept because the connection cap was reached.");
	hf_prom_sample(b, "hashflop_api_connections_refused_total", NULL, 0, (double)st.refused_total);
	hf_prom_family(b, "hashflop_api_header_timeouts_total", "counter",
		       "Connections closed because their request headers missed api.header_timeout_s.");
	hf_prom_sample(b, "hashflop_api_header_timeouts_total", NULL, 0, (double)st.header_timeouts_total);
}

void hf_node_metrics(hf_node *n, hf_buf *b)
{
	const char *l[] = { "version", HF_VERSION, "node", n->cfg->node_id, "fleet", n->cfg->fleet_id };

	hf_prom_family(b, "hashflop_build_info", "gauge", "Always 1; labels carry the version and identity.");
	hf_prom_sample(b, "hashflop_build_info", l, 3, 1);
	hf_prom_family(b, "hashflop_start_time_seconds", "gauge", "Unix time the daemon started.");
	hf_prom_sample(b, "hashflop_start_time_seconds", NULL, 0, (double)(n->start_wall_ms / 1000));
	hf_prom_family(b, "hashflop_uptime_seconds", "gauge", "Seconds since the daemon started.");
	hf_prom_sample(b, "hashflop_uptime_seconds", NULL, 0,
		       (double)(hf_mono_ms() - n->start_mono_ms) / 1000.0);
	hf_prom_family(b, "hashflop_state_writes_total", "counter", "Atomic writes of state.json.");
	hf_prom_sample(b, "hashflop_state_writes_total", NULL, 0, (double)atomic_load(&n->state_writes));
	hf_prom_family(b, "hashflop_state_write_failures_total", "counter", "Failed writes of state.json.");
	hf_prom_sample(b, "hashflop_state_write_failures_total", NULL, 0,
		       (double)atomic_load(&n->state_write_failures));
	api_metrics(n, b);
	hf_modes_metrics(n->modes, b);
	instruction_metrics(n, b);
	if (n->inference)
		hf_inference_metrics(n->inference, b);
	if (n->telemetry) {
		hf_telemetry_snapshot s;
		hf_telemetry_snapshot_get(n->telemetry, &s);
		hf_telemetry_metrics(&s, b);
	}
}

void hf_node_free(hf_node *n)
{
	if (!n)
		return;
	hf_control_free(n->control);
	if (n->modes)
		hf_modes_shutdown(n->modes); /* waits for instruction answers end now */
	hf_node_api_close(n->api_ctx);   /* ... and those answers are sent before the API stops */
	hf_httpd_free(n->api);
	hf_report_free(n->report);       /* no instruction can notify it now; it reads the modes */
	hf_node_api_free(n->api_ctx);
	if (n->api_file[0])
		unlink(n->api_file);
	hf_telemetry_free(n->telemetry); /* it reads the mode machine */
	hf_modes_free(n->modes);
	hf_inference_free(n->inference); /* after the mode machine released it */
	hf_mining_free(n->mining);
	hf_power_free(n->power);         /* after the workers that borrow it */
	hf_node_state_clear(&n->st);
	hf_trust_free(n->trust);
	if (n->lock_fd >= 0)
		close(n->lock_fd);
	pthread_mutex_destroy(&n->instr_lock);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

const hf_node_config *hf_node_config_of(const hf_node *n)
{
	return n->cfg;
}

uint64_t hf_node_last_issued_ms(hf_node *n)
{
	pthread_mutex_lock(&n->lock);
	uint64_t v = n->st.last_issued_ms;
	pthread_mutex_unlock(&n->lock);
	return v;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	hf_hex_encode(md, 32, out);
}

static const json_t *params_for(const hf_instr *in)
{
	switch (in->mode) {
	case HF_INSTR_MINING: return in->mining;
	case HF_INSTR_INFERENCE: return in->inference;
	default: return NULL;
	}
}

/* The audit record kept in state.json and shown in /v1/status. */
static json_t *instruction_record(const hf_instr *in, const char *source, const char *env_sha,
				  const char *envelope, size_t len)
{
	json_t *rec = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s%}",
				"issued_ms", (json_int_t)in->issued_ms,
				"expires_ms", (json_int_t)in->expires_ms,
				"mode", hf_mode_name((hf_mode)in->mode), "node", in->node,
				"authority", in->automatic ? "coordinator" : "operator",
				"source", source, "accepted_ms", (json_int_t)hf_wall_ms(),
				"payload_sha256", in->payload_sha256, "envelope_sha256", env_sha,
				"envelope", envelope, len);
	if (rec && in->has_hold)
		json_object_set_new(rec, "hold_until_ms", json_integer((json_int_t)in->hold_until_ms));
	if (rec && in->reason)
		json_object_set(rec, "reason", in->reason);
	return rec;
}

/* Persists an accepted instruction, then makes it the desired state. Called with instr_lock
 * held; *ticket identifies the request for the wait. */
static void apply_instruction(hf_node *n, const hf_instr *in, const char *source,
			      const char *env_sha, const char *envelope, size_t len,
			      hf_instr_outcome *out, hf_modes_ticket *ticket, bool *requested)
{
	hf_errbuf eb;
	hf_node_state next;
	hf_mode mode = (hf_mode)in->mode;
	const json_t *params = params_for(in);

	*requested = false;
	pthread_mutex_lock(&n->lock);
	next = n->st;
	next.desired_mode = mode;
	next.mode_params = params ? json_deep_copy(params) : NULL;
	next.last_instruction = instruction_record(in, source, env_sha, envelope, len);
	next.last_issued_ms = in->issued_ms;
	if (!in->automatic)
		next.hold_until_ms = in->has_hold ? in->hold_until_ms : 0;
	if (hf_node_state_save(n->cfg->state_dir, &next, &eb) < 0) {
		pthread_mutex_unlock(&n->lock);
		json_decref(next.mode_params);
		json_decref(next.last_instruction);
		atomic_fetch_add(&n->state_write_failures, 1);
		atomic_fetch_add(&n->instr_failures, 1);
		out->result = HF_INSTR_FAILED;
		snprintf(out->detail, sizeof out->detail, "cannot persist the instruction: %s", eb.msg);
		hf_text_clean_inplace(out->detail);
		hf_log_err("instruction from %s accepted but not applied: %s", source, out->detail);
		return;
	}
	atomic_fetch_add(&n->state_writes, 1);
	json_decref(n->st.mode_params);
	json_decref(n->st.last_instruction);
	n->st = next;
	pthread_mutex_unlock(&n->lock);

	out->result = HF_INSTR_ACCEPTED;
	out->mode = mode;
	out->issued_ms = in->issued_ms;
	out->automatic = in->automatic;
	out->mode_available = hf_modes_available(n->modes, mode);
	atomic_fetch_add(strcmp(source, "coordinator") == 0 ? &n->accepted_coord : &n->accepted_local, 1);
	hf_log_notice("instruction %.16s from %s accepted (%s authority): mode %s, issued_ms %llu",
		      in->payload_sha256, source, in->automatic ? "coordinator" : "operator",
		      hf_mode_name(mode), (unsigned long long)in->issued_ms);
	if (!out->mode_available) {
		snprintf(out->error, sizeof out->error, "mode %s is not available in this build; "
			 "the node stays in its current mode", hf_mode_name(mode));
		hf_log_warn("instruction %.16s accepted: %s", in->payload_sha256, out->error);
	} else if (hf_modes_request(n->modes, mode, params, ticket, &eb) < 0) {
		hf_text_clean(out->error, sizeof out->error, eb.msg, strlen(eb.msg));
		hf_log_err("instruction %.16s: switch to %s not requested: %s", in->payload_sha256,
			   hf_mode_name(mode), out->error);
	} else {
		*requested = true;
	}
	hf_report_notify(n->report); /* the acknowledgment goes out at once */
}

/* Waits for the switch an accepted instruction asked for; fills applied / pending / error. */
static void wait_applied(hf_node *n, const hf_modes_ticket *t, uint64_t wait_ms,
			 hf_instr_outcome *out)
{
	char err[sizeof out->error];

	switch (hf_modes_wait_applied(n->modes, t, wait_ms, err, sizeof err)) {
	case HF_MODES_APPLIED:
		out->applied = true;
		break;
	case HF_MODES_START_FAILED:
		hf_strlcpy(out->error, err, sizeof out->error);
		snprintf(out->detail, sizeof out->detail, "accepted and persisted, but the mode did "
			 "not start; the node runs idle and retries with backoff (see /v1/status)");
		break;
	case HF_MODES_SUPERSEDED:
		snprintf(out->detail, sizeof out->detail, "accepted, then superseded by a newer "
			 "instruction before its switch finished");
		break;
	case HF_MODES_PENDING:
		out->pending = true;
		if (wait_ms)
			snprintf(out->detail, sizeof out->detail, "accepted; the switch was still running "
				 "after %llu ms (see /v1/status)", (unsigned long long)wait_ms);
		else
			snprintf(out->detail, sizeof out->detail, "accepted; the switch is under way "
				 "(see /v1/status)");
		break;
	case HF_MODES_SHUTDOWN:
		snprintf(out->error, sizeof out->error, "the node is shutting down");
		break;
	}
}

bool hf_node_submit_instruction_nowait(hf_node *n, const char *envelope, size_t len,
				       const char *source, hf_instr_outcome *out, hf_modes_ticket *ticket)
{
	char env_sha[65];
	hf_instr_policy pol;
	hf_modes_info info;
	hf_instr in;
	hf_errbuf eb;
	bool noop, requested = false;

	memset(out, 0, sizeof *out);
	hf_errbuf_clear(&eb);
	pthread_mutex_lock(&n->instr_lock);
	if (!n->trust) {
		out->result = HF_INSTR_NO_TRUST;
		snprintf(out->detail, sizeof out->detail, "%s", n->trust_problem);
		hf_log_warn("instruction from %s refused: %s", source, n->trust_problem);
		goto unlock;
	}
	sha256_hex(envelope, len, env_sha);
	pthread_mutex_lock(&n->lock);
	const char *last_sha = json_string_value(json_object_get(n->st.last_instruction, "envelope_sha256"));
	noop = last_sha && strcmp(last_sha, env_sha) == 0;
	pol = (hf_instr_policy){ .fleet = n->cfg->fleet_id, .node = n->cfg->node_id,
				 .now_ms = hf_wall_ms(), .last_issued_ms = n->st.last_issued_ms,
				 .skew_ms = n->cfg->clock_skew_ms, .hold_until_ms = n->st.hold_until_ms };
	pthread_mutex_unlock(&n->lock);
	if (noop) {
		out->result = HF_INSTR_NOOP;
		atomic_fetch_add(&n->instr_noops, 1);
		hf_modes_snapshot(n->modes, &info);
		out->converged = info.converged;
		if (info.converged)
			snprintf(out->detail, sizeof out->detail, "already applied");
		else
			snprintf(out->detail, sizeof out->detail, "already accepted; not converged yet: %s",
				 info.reason);
		hf_log_debug("instruction from %s: repeat of the current one, nothing to do", source);
		goto unlock;
	}
	memset(&in, 0, sizeof in);
	if (hf_instr_verify(n->trust, envelope, len, &pol, &in, &out->why, &eb) < 0) {
		out->result = HF_INSTR_REFUSED;
		if ((unsigned)out->why < HF_REFUSE_COUNT)
			atomic_fetch_add(&n->refused[out->why], 1);
		/* The detail may quote payload fields (fleet, node): outside text. */
		hf_text_clean(out->detail, sizeof out->detail, eb.msg, strlen(eb.msg));
		hf_log_warn("instruction from %s refused (%s): %s", source,
			    hf_instr_refusal_name(out->why), out->detail);
		goto unlock;
	}
	apply_instruction(n, &in, source, env_sha, envelope, len, out, ticket, &requested);
	hf_instr_clear(&in);
unlock:
	pthread_mutex_unlock(&n->instr_lock);
	if (out->result == HF_INSTR_ACCEPTED && !requested) {
		hf_modes_snapshot(n->modes, &info);
		out->converged = info.converged && out->mode_available;
	}
	return requested;
}

void hf_node_instruction_finish(hf_node *n, const hf_modes_ticket *t, uint64_t wait_ms,
				hf_instr_outcome *out)
{
	hf_modes_info info;

	wait_applied(n, t, wait_ms, out);
	hf_modes_snapshot(n->modes, &info);
	out->converged = info.converged && out->mode_available;
}

void hf_node_submit_instruction(hf_node *n, const char *envelope, size_t len, const char *source,
				uint64_t wait_ms, hf_instr_outcome *out)
{
	hf_modes_ticket ticket;

	if (hf_node_submit_instruction_nowait(n, envelope, len, source, out, &ticket))
		hf_node_instruction_finish(n, &ticket, wait_ms, out);
}

static void instruction_metrics(hf_node *n, hf_buf *b)
{
	hf_prom_family(b, "hashflop_instructions_accepted_total", "counter",
		       "Instructions verified, persisted and applied, by source.");
	const char *l1[] = { "source", "local" }, *l2[] = { "source", "coordinator" };
	hf_prom_sample(b, "hashflop_instructions_accepted_total", l1, 1,
		       (double)atomic_load(&n->accepted_local));
	hf_prom_sample(b, "hashflop_instructions_accepted_total", l2, 1,
		       (double)atomic_load(&n->accepted_coord));
	hf_prom_family(b, "hashflop_instructions_refused_total", "counter",
		       "Instructions refused, by reason; the node kept its mode.");
	for (int i = 1; i < HF_REFUSE_COUNT; i++) {
		const char *l[] = { "reason", hf_instr_refusal_name((hf_instr_refusal)i) };
		hf_prom_sample(b, "hashflop_instructions_refused_total", l, 1,
			       (double)atomic_load(&n->refused[i]));
	}
	hf_prom_family(b, "hashflop_instructions_noop_total", "counter",
		       "Repeats of the current instruction (nothing to do).");
	hf_prom_sample(b, "hashflop_instructions_noop_total", NULL, 0, (double)atomic_load(&n->instr_noops));
	hf_prom_family(b, "hashflop_instructions_failed_total", "counter",
		       "Accepted instructions that could not be persisted (the node kept its mode).");
	hf_prom_sample(b, "hashflop_instructions_failed_total", NULL, 0, (double)atomic_load(&n->instr_failures));
	hf_prom_family(b, "hashflop_trust_keys", "gauge", "Keys in the trust file (0: instructions refused).");
	hf_prom_sample(b, "hashflop_trust_keys", NULL, 0, n->trust ? (double)hf_trust_count(n->trust) : 0);
	if (n->control)
		hf_control_metrics(n->control, b);
	if (n->report)
		hf_report_metrics(n->report, b);
}

static json_t *control_status(hf_node *n)
{
	json_t *c = json_pack("{s:s, s:b, s:I, s:I}", "trust_file", n->cfg->trust_file,
			      "trusted", n->trust != NULL, "hold_until_ms", (json_int_t)n->st.hold_until_ms,
			      "last_issued_ms", (json_int_t)n->st.last_issued_ms);
	if (!n->trust)
		json_object_set_new(c, "problem", json_string(n->trust_problem));
	if (n->control)
		hf_control_status(n->control, c);
	report_status(n, c);
	return c;
}

/* ---- the coordinator report (hf_report): the token, the body, the change key ---- */

/* Reads control.token_file; without a usable token polls go unauthenticated and no reports
 * are sent (the coordinator would refuse them), and status says why. */
static void load_token(hf_node *n)
{
	hf_errbuf eb;
	bool others = false;

	if (!n->cfg->token_file[0]) {
		snprintf(n->token_problem, sizeof n->token_problem, "control.token_file is not set: "
			 "polls go without a token and no reports are sent");
		char url[sizeof n->cfg->coordinator_url];
		hf_control_mask_url(url, sizeof url, n->cfg->coordinator_url);
		hf_log_warn("control: %s (the coordinator %s may refuse them; instructions it serves "
			    "are still verified against the trust file)", n->token_problem, url);
		return;
	}
	if (hf_report_token_load(n->cfg->token_file, n->token, sizeof n->token, &others, &eb) < 0) {
		snprintf(n->token_problem, sizeof n->token_problem, "control.token_file: %s; polls go "
			 "without a token and no reports are sent", eb.msg);
		hf_text_clean_inplace(n->token_problem);
		hf_log_warn("control: %s until the file is readable and hashflopd is restarted "
			    "(instructions the coordinator serves are still verified)", n->token_problem);
		return;
	}
	if (others)
		hf_log_warn("token file %s is readable by every user (chmod 600 it)", n->cfg->token_file);
}

static const char *const report_triggers[] = { "request", "retry", "health", "restart" };

/* last_switch of the report: null before the first switch; the first switch after start
 * comes "from" idle (no worker ran before it). */
static json_t *report_last_switch(const hf_switch_record *r)
{
	if (r->seq == 0)
		return json_null();
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I}",
			 "seq", (json_int_t)r->seq,
			 "from", hf_mode_name(r->from_none ? HF_MODE_IDLE : r->from),
			 "to", hf_mode_name(r->to),
			 "trigger", (unsigned)r->trigger < HF_ARRAY_SIZE(report_triggers) ?
			 report_triggers[r->trigger] : "request",
			 "total_ms", (json_int_t)r->total_ms, "drain_ms", (json_int_t)r->drain_ms,
			 "release_ms", (json_int_t)r->release_ms, "start_ms", (json_int_t)r->start_ms,
			 "result", r->result == 0 ? "ok" : "failed",
			 "requested_wall_ms", (json_int_t)r->requested_wall_ms);
}

/* A finite number >= 0 at a dotted path of obj, else 0. */
static double report_num(const json_t *obj, const char *a, const char *b, const char *c)
{
	const json_t *v = json_object_get(json_object_get(json_object_get(obj, a), b), c);
	double d = json_is_number(v) ? json_number_value(v) : 0;
	return d >= 0 && d < 1e300 ? d : 0;
}

/* hashrate_hs, flops, inferences_per_s from the status documents, for a node without power
 * telemetry: mining's 1 min hash rate, inference's answered items per second (flops 0). */
static void report_rates_status(hf_node *n, hf_mode mode, double *hs, double *ips)
{
	json_t *st = json_object();
	size_t i;
	const json_t *m;

	if (mode == HF_MODE_MINING) {
		hf_modes_status_json(n->modes, st);
		*hs = report_num(st, "mining", "hashrate", "1m");
	} else if (mode == HF_MODE_INFERENCE && n->inference) {
		hf_inference_status(n->inference, st);
		json_array_foreach(json_object_get(json_object_get(st, "inference"), "models"), i, m) {
			const json_t *v = json_object_get(m, "inferences_per_second");
			if (json_is_number(v) && json_number_value(v) > 0)
				*ips += json_number_value(v);
		}
	}
	json_decref(st);
}

/* hashrate_hs, flops, inferences_per_s (the running mode's 60 s rates, 0 for the others) and
 * power: from the telemetry snapshot (one window for work and energy), else null power. */
static void report_rates(hf_node *n, hf_mode mode, json_t *doc)
{
	hf_telemetry_snapshot s;
	double hs = 0, fl = 0, ips = 0;
	json_t *power = NULL;

	hf_node_telemetry(n, &s);
	if (s.samples > 0 && s.mode == mode) {
		const hf_telemetry_window *w = &s.win[1]; /* 60 s */
		hs = mode == HF_MODE_MINING ? w->hashes_per_s : 0;
		fl = mode == HF_MODE_INFERENCE ? w->flops_per_s : 0;
		ips = mode == HF_MODE_INFERENCE ? w->inferences_per_s : 0;
	} else if (s.samples == 0) {
		report_rates_status(n, mode, &hs, &ips);
	}
	if (s.samples > 0)
		power = hf_telemetry_report_json(&s);
	json_object_set_new(doc, "hashrate_hs", json_real(hs >= 0 && hs < 1e300 ? hs : 0));
	json_object_set_new(doc, "flops", json_real(fl >= 0 && fl < 1e300 ? fl : 0));
	json_object_set_new(doc, "inferences_per_s", json_real(ips >= 0 && ips < 1e300 ? ips : 0));
	json_object_set_new(doc, "power", power ? power : json_null());
}

static json_t *report_build(void *ctx, uint64_t seq)
{
	hf_node *n = ctx;
	hf_modes_info info;
	hf_mode desired;
	uint64_t applied;

	hf_modes_snapshot(n->modes, &info);
	pthread_mutex_lock(&n->lock);
	desired = n->st.desired_mode;
	applied = n->st.last_issued_ms;
	pthread_mutex_unlock(&n->lock);
	bool available = hf_modes_available(n->modes, desired);
	/* Converged on what the node persisted: an instruction accepted a moment ago may not have
	 * reached the mode machine yet (it is persisted first), and must not read as applied. */
	bool handed = info.desired == desired;
	const char *conv = !available ? "failed" : !handed ? "switching" : hf_modes_conv_name(info.conv);
	json_t *doc = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s, s:b, s:s}",
				"v", 1, "node", n->cfg->node_id, "fleet", n->cfg->fleet_id,
				"wall_ms", (json_int_t)hf_wall_ms(), "seq", (json_int_t)seq,
				"version", HF_VERSION, "applied_issued_ms", (json_int_t)applied,
				"mode", hf_mode_name(info.mode), "desired_mode", hf_mode_name(desired),
				"phase", hf_mode_phase_name(info.phase),
				"converged", info.converged && available && handed,
				"convergence", conv);
	if (!doc)
		return NULL;
	report_rates(n, info.mode, doc);
	json_object_set_new(doc, "last_switch", report_last_switch(&info.last));
	return doc;
}

static void report_state(void *ctx, hf_report_state *out)
{
	hf_node *n = ctx;
	hf_modes_info info;

	hf_modes_snapshot(n->modes, &info);
	pthread_mutex_lock(&n->lock);
	out->desired_mode = (int)n->st.desired_mode;
	out->applied_issued_ms = n->st.last_issued_ms;
	pthread_mutex_unlock(&n->lock);
	out->mode = (int)info.mode;
	out->phase = (int)info.phase;
	out->converged = info.converged && (int)info.desired == out->desired_mode;
}

/* Starts the reporter when the node has a token (before the API: an instruction accepted
 * there notifies it). */
static int start_report(hf_node *n, hf_errbuf *eb)
{
	hf_report_opts o = { .coordinator_url = n->cfg->coordinator_url, .node_id = n->cfg->node_id,
			     .ca_file = n->cfg->ca_file, .token = n->token,
			     .interval_s = n->cfg->report_interval_s,
			     .retry_max_ms = n->cfg->retry_max_ms };
	hf_report_ops ops = { .ctx = n, .build = report_build, .state = report_state };

	if (!n->token[0])
		return 0;
	return hf_report_start(&o, &ops, &n->report, eb);
}

/* The report's part of the control status. */
static void report_status(hf_node *n, json_t *c)
{
	if (!n->cfg->coordinator_url[0])
		return;
	json_object_set_new(c, "token_file", json_string(n->cfg->token_file));
	json_object_set_new(c, "reporting", json_boolean(n->report != NULL));
	if (n->token_problem[0])
		json_object_set_new(c, "token_problem", json_string(n->token_problem));
	if (n->report) {
		hf_report_status(n->report, c);
	} else {
		json_object_set_new(c, "reports", json_integer(0));
		json_object_set_new(c, "report_errors", json_integer(0));
		json_object_set_new(c, "last_report_ms", json_integer(0));
		json_object_set_new(c, "last_report_error", json_string(n->token_problem));
	}
}
