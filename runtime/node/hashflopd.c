/* hashflopd: the node daemon: loads node.json, restores the desired mode, serves the local API
 * and runs until SIGTERM/SIGINT, then drains the current mode and exits 0.
 * Threading: main owns the node; signals are blocked in every thread and taken with sigwait()
 * here, so no handler runs asynchronously.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_cl_env.h"
#include "hf_file.h"
#include "hf_httpd.h"
#include "hf_log.h"
#include "hf_node.h"
#include "hf_node_config.h"
#include "hf_notify.h"
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

static int load_config(const opts *o, hf_node_config *cfg)
{
	hf_errbuf eb;
	uint64_t port;

	hf_node_config_defaults(cfg);
	if (getenv("STATE_DIRECTORY") && getenv("STATE_DIRECTORY")[0] == '/')
		hf_strlcpy(cfg->state_dir, getenv("STATE_DIRECTORY"), sizeof cfg->state_dir);
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

/* PoCL reads its settings at its first OpenCL call and setenv races with getenv in other
 * threads, so they are set here, before the node starts any thread: its kernel cache goes
 * next to the node's program cache (<state_dir>/cl-cache/pocl) unless POCL_CACHE_DIR is set. */
static void set_opencl_env(const hf_node_config *cfg)
{
	char cache[PATH_MAX];
	hf_errbuf eb;

	snprintf(cache, sizeof cache, "%s/cl-cache", cfg->state_dir);
	/* The state dir is private (0700): create it as the node would before the cache inside. */
	if (hf_mkdir_p(cfg->state_dir, 0700, &eb) < 0 || hf_cl_env_init(cache, &eb) < 0)
		hf_log_warn("OpenCL environment: %s (PoCL uses its default cache)", eb.msg);
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
	hf_notify("READY=1\nSTATUS=running");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			hf_log_info("SIGHUP ignored: restart the daemon to reload node.json");
			continue;
		}
		break;
	}
	hf_log_notice("%s received: draining and shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	hf_notify("STOPPING=1");
	hf_node_free(node);
	hf_node_config_clear(&cfg);
	curl_global_cleanup();
	hf_log_notice("clean shutdown");
	return 0;
}
