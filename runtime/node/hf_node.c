/* hf_node: assembly of a running node (state dir lock, persisted state, modes, API).
 * Invariants: the desired mode is on disk before its switch is queued; the state lock is held
 * for the node's whole life.
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

#include "hf_file.h"
#include "hf_httpd.h"
#include "hf_log.h"
#include "hf_node_api.h"
#include "hf_node_state.h"
#include "hf_prom.h"
#include "hf_util.h"
#include "hf_version.h"

struct hf_node {
	const hf_node_config *cfg;
	pthread_mutex_t lock;
	hf_node_state st;
	hf_modes *modes;
	hf_httpd *api;
	int lock_fd;
	uint64_t start_wall_ms, start_mono_ms;
	atomic_uint_fast64_t state_writes, state_write_failures;
	char api_file[PATH_MAX];
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
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int r;

	json_decref(j);
	if (!text)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	snprintf(n->api_file, sizeof n->api_file, "%s/api.json", n->cfg->state_dir);
	r = hf_file_write_atomic(n->api_file, text, strlen(text), 0644, eb);
	free(text);
	return r;
}

int hf_node_new(const hf_node_config *cfg, hf_node **out, hf_errbuf *eb)
{
	hf_httpd_opts ho = { .host = cfg->api_listen, .port = cfg->api_port,
			     .max_body = cfg->api_max_body };
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
	if ((r = hf_modes_new(cfg->drain_timeout_ms, &n->modes, eb)) < 0)
		goto fail;
	start_mode = n->st.desired_mode;
	if (!hf_modes_available(n->modes, start_mode)) {
		hf_log_warn("desired mode %s is not available in this build; running idle",
			    hf_mode_name(start_mode));
		start_mode = HF_MODE_IDLE;
	}
	if ((r = hf_modes_request(n->modes, start_mode, n->st.mode_params, eb)) < 0)
		goto fail;
	if ((r = hf_httpd_new(&ho, hf_node_api_routes, hf_node_api_nroutes, n, &n->api, eb)) < 0)
		goto fail;
	if ((r = write_api_file(n, eb)) < 0)
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

hf_modes *hf_node_modes(hf_node *n)
{
	return n->modes;
}

int hf_node_set_mode(hf_node *n, hf_mode target, const json_t *params, hf_errbuf *eb)
{
	int r;

	if (!hf_modes_available(n->modes, target))
		return hf_fail(eb, HF_EUNSUPPORTED, "mode %s is not available in this build",
			       hf_mode_name(target));
	pthread_mutex_lock(&n->lock);
	hf_node_state next = n->st;
	next.desired_mode = target;
	next.mode_params = params ? json_deep_copy((json_t *)params) : NULL;
	r = hf_node_state_save(n->cfg->state_dir, &next, eb);
	if (r < 0) {
		atomic_fetch_add(&n->state_write_failures, 1);
		json_decref(next.mode_params);
	} else {
		atomic_fetch_add(&n->state_writes, 1);
		json_decref(n->st.mode_params);
		n->st = next;
		r = hf_modes_request(n->modes, target, params, eb);
	}
	pthread_mutex_unlock(&n->lock);
	return r;
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
	json_object_set_new(j, "last_instruction",
			    n->st.last_instruction ? json_deep_copy(n->st.last_instruction) : json_null());
	pthread_mutex_unlock(&n->lock);
	return j;
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
	hf_modes_metrics(n->modes, b);
}

void hf_node_free(hf_node *n)
{
	if (!n)
		return;
	hf_httpd_free(n->api);
	if (n->api_file[0])
		unlink(n->api_file);
	hf_modes_free(n->modes);
	hf_node_state_clear(&n->st);
	if (n->lock_fd >= 0)
		close(n->lock_fd);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
