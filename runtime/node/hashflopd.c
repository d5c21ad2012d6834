/* hashflopd: the node daemon: loads node.json, restores the desired mode, serves the local API
 * and runs until SIGTERM/SIGINT, then drains the current mode and exits 0.
 * Under systemd (Type=notify): READY=1 once the API listens and the restored mode's first start
 * attempt has finished (or modes.ready_timeout_ms passed), STATUS= with what runs, WATCHDOG=1
 * every WATCHDOG_USEC/4 only while the mode machine's watchdog verdict is healthy (a wedged
 * worker stops the pings, so systemd restarts the daemon), STOPPING=1 on the way out.
 * Threading: main owns the node; signals are blocked in every thread and taken with
 * sigtimedwait() here, between READY checks and watchdog ticks, so no handler runs
 * asynchronously.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "hf_cl_env.h"
#include "hf_file.h"
#include "hf_httpd.h"
#include "hf_log.h"
#include "hf_node.h"
#include "hf_node_config.h"
#include "hf_notify.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflopd [--config FILE] [options]\n"
		"\n"
		"The hashflop node daemon: runs one mode at a time (idle, mining, inference) and\n"
		"serves its local API (GET /v1/status, GET /metrics) on 127.0.0.1 by default.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE        node.json to load (default: the embedded defaults:\n"
		"                           node id = host name, fleet \"default\", state dir\n"
		"                           " HF_NODE_DEFAULT_STATE_DIR ", API 127.0.0.1:%d)\n"
		"      --check-config       validate the configuration, print the effective config\n"
		"                           as node.json (every default filled in, secrets shown\n"
		"                           as \"***\") on stdout, and exit\n"
		"      --state-dir DIR      override state_dir\n"
		"      --port N             override api.port (0 = an ephemeral port)\n"
		"  -v, --verbose            log at debug level\n"
		"  -h, --help               show this help and exit\n"
		"  -V, --version            show the version and exit\n"
		"\n"
		"Environment (systemd sets these):\n"
		"  STATE_DIRECTORY          the state dir, unless node.json or --state-dir names one\n"
		"  CACHE_DIRECTORY          the OpenCL program cache and PoCL's kernel cache\n"
		"                           (default: <state_dir>/cl-cache)\n"
		"  NOTIFY_SOCKET            sd_notify: READY=1 once the API listens and the restored\n"
		"                           mode's first start finished (modes.ready_timeout_ms)\n"
		"  WATCHDOG_USEC            WATCHDOG=1 every WATCHDOG_USEC/4 while the node is healthy\n"
		"\n"
		"Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on a usage or\n"
		"configuration error.\n",
		HF_NODE_DEFAULT_PORT);
}

typedef struct opts {
	const char *config, *state_dir, *port;
	bool check, verbose;
} opts;

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:vhV", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'k': o->check = true; break;
		case 's': o->state_dir = optarg; break;
		case 'p': o->port = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hashflopd %s\n", HF_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflopd: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 2;
	}
	return -1;
}

/* The first directory of $name (systemd's StateDirectory= / CacheDirectory= set a
 * colon-separated list of absolute paths) into dst, when it is absolute and fits. */
static void env_dir(const char *name, char *dst, size_t dstsz)
{
	const char *v = getenv(name);
	size_t len;

	if (!v || v[0] != '/')
		return;
	len = strcspn(v, ":");
	if (len < dstsz) {
		memcpy(dst, v, len);
		dst[len] = '\0';
	}
}

static int load_config(const opts *o, hf_node_config *cfg)
{
	hf_errbuf eb;
	uint64_t port;

	hf_node_config_defaults(cfg);
	env_dir("STATE_DIRECTORY", cfg->state_dir, sizeof cfg->state_dir);
	env_dir("CACHE_DIRECTORY", cfg->cache_dir, sizeof cfg->cache_dir);
	if (o->config && hf_node_config_load(cfg, o->config, &eb) < 0) {
		fprintf(stderr, "hashflopd: %s\n", eb.msg);
		return 2;
	}
	if (o->state_dir) {
		if (o->state_dir[0] != '/') {
			fprintf(stderr, "hashflopd: --state-dir: expected an absolute path\n");
			return 2;
		}
		hf_strlcpy(cfg->state_dir, o->state_dir, sizeof cfg->state_dir);
	}
	if (o->port) {
		if (!hf_parse_u64(o->port, 0, 65535, &port)) {
			fprintf(stderr, "hashflopd: --port: expected 0-65535, got \"%s\"\n", o->port);
			return 2;
		}
		cfg->api_port = (uint16_t)port;
	}
	if (o->verbose)
		cfg->log_level = HF_LOG_DEBUG;
	return -1;
}

/* The effective config as node.json on stdout (secrets masked); 0, or 2 when it cannot be
 * written as JSON. */
static int print_config(const hf_node_config *cfg)
{
	hf_errbuf eb;
	json_t *j;
	char *text;

	if (hf_node_config_to_json(cfg, true, &j, &eb) < 0) {
		fprintf(stderr, "hashflopd: --check-config: %s\n", eb.msg);
		return 2;
	}
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!text) {
		fprintf(stderr, "hashflopd: --check-config: out of memory\n");
		return 2;
	}
	printf("%s\n", text);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The API holds a descriptor per connection: the soft limit (often 1024) goes up to the hard one. */
static void raise_fd_limit(void)
{
	uint64_t before, after;

	if (hf_httpd_raise_fd_limit(&before, &after) < 0)
		hf_log_warn("cannot raise the file descriptor limit (RLIMIT_NOFILE): %s", strerror(errno));
	else if (after != before)
		hf_log_info("file descriptor limit raised from %llu to %llu", (unsigned long long)before,
			    (unsigned long long)after);
}

/* The state dir is private (0700); on first boot it does not exist yet and is made here (the
 * node fails its start later, with the reason, when it cannot be). */
static void prepare_state_dir(const hf_node_config *cfg)
{
	struct stat st;
	hf_errbuf eb;

	if (stat(cfg->state_dir, &st) == 0 || errno != ENOENT)
		return;
	if (hf_mkdir_p(cfg->state_dir, 0700, &eb) < 0)
		hf_log_err("state dir: %s", eb.msg);
	else
		hf_log_notice("state dir %s (state_dir) did not exist: created it (mode 0700)",
			      cfg->state_dir);
}

/* PoCL reads its settings at its first OpenCL call and setenv races with getenv in other
 * threads, so they are set here, before the node starts any thread: its kernel cache goes
 * next to the node's program cache (<cache dir>/pocl) unless POCL_CACHE_DIR is set. The cache
 * dir is $CACHE_DIRECTORY when systemd sets it (CacheDirectory=), else <state_dir>/cl-cache. */
static void set_opencl_env(const hf_node_config *cfg)
{
	char cache[PATH_MAX];
	hf_errbuf eb;

	if (cfg->cache_dir[0])
		hf_strlcpy(cache, cfg->cache_dir, sizeof cache);
	else
		snprintf(cache, sizeof cache, "%s/cl-cache", cfg->state_dir);
	if (hf_cl_env_init(cache, &eb) < 0)
		hf_log_warn("OpenCL environment: %s (PoCL uses its default cache)", eb.msg);
	hf_log_info("OpenCL caches: programs in %s%s; PoCL kernels in %s", cache,
		    cfg->cache_dir[0] ? " ($CACHE_DIRECTORY; mining.opencl.cache_dir wins when set)" : "",
		    getenv("POCL_CACHE_DIR") ? getenv("POCL_CACHE_DIR") : "PoCL's default cache");
}

/* The notify state of the main loop. */
typedef struct daemon_loop {
	hf_node *node;
	const hf_node_config *cfg;
	bool ready;
	uint64_t start_ms;            /* mono: the API is up */
	uint64_t wd_interval_ms;      /* WATCHDOG=1 every this many ms (0: no systemd watchdog) */
	uint64_t next_tick_ms;        /* mono: the next verdict check (and ping) */
	bool wd_bad;
	char status[512];             /* the last STATUS= sent */
} daemon_loop;

/* Sends STATUS=line (with extra fields before it, e.g. "READY=1\n") when it changed or extra
 * is given. */
static void send_status(daemon_loop *d, const char *extra, const char *line)
{
	char msg[640];

	if (!extra && strcmp(d->status, line) == 0)
		return;
	hf_strlcpy(d->status, line, sizeof d->status);
	snprintf(msg, sizeof msg, "%sSTATUS=%s", extra ? extra : "", line);
	if (hf_notify(msg) < 0)
		hf_log_debug("sd_notify failed (NOTIFY_SOCKET)");
}

/* READY=1 once the first start attempt finished or the ready timeout passed. */
static void check_ready(daemon_loop *d)
{
	uint64_t now = hf_mono_ms(), end = d->start_ms + d->cfg->ready_timeout_ms;
	uint64_t left = end > now ? end - now : 0;
	char line[512], msg[600];
	bool settled = hf_node_wait_settled(d->node, left < 100 ? left : 100);

	if (!settled && hf_mono_ms() < end)
		return;
	hf_node_status_line(d->node, line, sizeof line);
	if (settled) {
		hf_log_notice("startup: first start finished after %llu ms: %s; READY",
			      (unsigned long long)(hf_mono_ms() - d->start_ms), line);
		hf_strlcpy(msg, line, sizeof msg);
	} else {
		snprintf(msg, sizeof msg, "still starting after %llu ms (modes.ready_timeout_ms): %s",
			 (unsigned long long)d->cfg->ready_timeout_ms, line);
		hf_utf8_trim(msg);
		hf_log_warn("startup: %s; READY anyway", msg);
	}
	d->ready = true;
	send_status(d, "READY=1\n", msg);
}

/* Checks the watchdog verdict: pings while healthy, logs each change once. */
static void watchdog_tick(daemon_loop *d)
{
	char why[512], line[600];
	bool ok = hf_node_watchdog(d->node, why, sizeof why);

	if (!ok && !d->wd_bad) {
		hf_log_err("watchdog: unhealthy: %s; %s", why, d->wd_interval_ms ?
			   "WATCHDOG=1 pings stopped: systemd restarts the daemon when WatchdogSec passes" :
			   "no systemd watchdog (WATCHDOG_USEC unset) to act on it");
	} else if (ok && d->wd_bad) {
		hf_log_notice("watchdog: healthy again%s", d->wd_interval_ms ? "; WATCHDOG=1 pings resumed" : "");
	}
	d->wd_bad = !ok;
	if (ok) {
		if (d->wd_interval_ms && hf_notify("WATCHDOG=1") < 0)
			hf_log_debug("sd_notify WATCHDOG=1 failed");
		if (d->ready) {
			hf_node_status_line(d->node, line, sizeof line);
			send_status(d, NULL, line);
		}
	} else {
		snprintf(line, sizeof line, "watchdog: unhealthy: %s", why);
		hf_utf8_trim(line);
		send_status(d, NULL, line);
	}
}

/* Waits for SIGTERM/SIGINT (SIGHUP is logged and ignored) while sending READY and feeding the
 * watchdog; returns the signal. */
static int run_loop(daemon_loop *d, const sigset_t *set)
{
	for (;;) {
		uint64_t now, wait_ms;
		struct timespec ts;
		int sig;

		if (!d->ready)
			check_ready(d);  /* blocks up to 100 ms */
		now = hf_mono_ms();
		if (now >= d->next_tick_ms) {
			watchdog_tick(d);
			d->next_tick_ms = now + (d->wd_interval_ms ? d->wd_interval_ms : 1000);
		}
		wait_ms = d->ready ? (d->next_tick_ms > now ? d->next_tick_ms - now : 0) : 0;
		ts.tv_sec = (time_t)(wait_ms / 1000);
		ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
		sig = sigtimedwait(set, NULL, &ts);
		if (sig < 0)
			continue;  /* EAGAIN (the timeout) or EINTR */
		if (sig == SIGHUP) {
			hf_log_info("SIGHUP ignored: restart the daemon to reload node.json");
			continue;
		}
		return sig;
	}
}

int main(int argc, char **argv)
{
	hf_node_config cfg;
	hf_node *node = NULL;
	hf_errbuf eb;
	sigset_t set;
	opts o = { 0 };
	int rc, sig = 0;

	/* Before any thread exists: libcurl's global state (TLS backends) is not thread-safe to
	 * set up lazily from the control thread and the mining driver at once. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "hashflopd: cannot initialise libcurl\n");
		return 1;
	}
	rc = parse_args(argc, argv, &o);
	if (rc < 0)
		rc = load_config(&o, &cfg);
	if (rc >= 0) {
		curl_global_cleanup();
		return rc;
	}
	if (o.check) {
		rc = print_config(&cfg);
		hf_node_config_clear(&cfg);
		curl_global_cleanup();
		return rc;
	}
	hf_log_init(argv[0], cfg.log_level);
	raise_fd_limit();
	prepare_state_dir(&cfg);
	set_opencl_env(&cfg);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (hf_node_new(&cfg, &node, &eb) < 0) {
		hf_log_err("cannot start: %s", eb.msg);
		hf_node_config_clear(&cfg);
		curl_global_cleanup();
		return 1;
	}
	hf_log_notice("hashflopd %s node %s fleet %s: API on http://%s%s%s:%u/v1/status and /metrics",
		      HF_VERSION, cfg.node_id, cfg.fleet_id, strchr(cfg.api_listen, ':') ? "[" : "",
		      cfg.api_listen, strchr(cfg.api_listen, ':') ? "]" : "", hf_node_api_port(node));
	daemon_loop d = { .node = node, .cfg = &cfg, .start_ms = hf_mono_ms() };
	d.wd_interval_ms = hf_notify_watchdog_usec() / 4000;
	if (hf_notify_watchdog_usec() && !d.wd_interval_ms)
		d.wd_interval_ms = 1;
	if (d.wd_interval_ms)
		hf_log_info("watchdog: WATCHDOG_USEC=%llu: WATCHDOG=1 every %llu ms while the node is "
			    "healthy", (unsigned long long)hf_notify_watchdog_usec(),
			    (unsigned long long)d.wd_interval_ms);
	hf_log_info("startup: API listening; waiting up to %llu ms (modes.ready_timeout_ms) for the "
		    "first start of the restored mode before READY",
		    (unsigned long long)cfg.ready_timeout_ms);
	sig = run_loop(&d, &set);
	hf_log_notice("%s received: draining and shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	hf_notify("STOPPING=1\nSTATUS=stopping: draining the current mode");
	hf_node_free(node);
	hf_node_config_clear(&cfg);
	curl_global_cleanup();
	hf_log_notice("clean shutdown");
	return 0;
}
