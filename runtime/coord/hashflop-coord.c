/* hashflop-coord: the fleet coordinator program: serves signed desired state to every node over
 * long polls, relays operator instructions, takes node reports; `node add|list|remove` manage
 * the node set in the record directly.
 * Threading: main owns the coordinator; signals are blocked in every thread and taken with
 * sigwait()/sigtimedwait() here, so no handler runs asynchronously.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "hf_coord.h"
#include "hf_coord_config.h"
#include "hf_coord_profit.h"
#include "hf_coord_store.h"
#include "hf_file.h"
#include "hf_httpd.h"
#include "hf_log.h"
#include "hf_notify.h"
#include "hf_util.h"
#include "hf_version.h"
#include "hashflop_coord_cmd.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hashflop-coord --config FILE [--check-config]\n"
		"       hashflop-coord --config FILE node add ID [--token-file FILE]\n"
		"       hashflop-coord --config FILE node list\n"
		"       hashflop-coord --config FILE node remove ID\n"
		"       hashflop-coord backtest --series FILE.csv --fleet FLEET.json [--json]\n"
		"       hashflop-coord series-gen [OPTIONS] --out FILE.csv\n"
		"       hashflop-coord feed-server --series FILE.csv [--speed X] [--listen ADDR:PORT]\n"
		"                                  [--port-file FILE] [--loop] [--start TIME]\n"
		"       hashflop-coord feed-server --print-feeds URL\n"
		"\n"
		"The hashflop fleet coordinator: serves each node its signed desired state over long\n"
		"polls (GET /v1/nodes/ID/instruction), relays operator-signed instructions, takes node\n"
		"reports and records every decision (see runtime/coord/README.md).\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE     coord.json to load (required)\n"
		"      --check-config    validate the configuration (and the profit_file it names),\n"
		"                        print the effective config as coord.json (every default\n"
		"                        filled in) and exit\n"
		"      --token-file FILE node add: write the new token to FILE (mode 0600) instead of\n"
		"                        printing it\n"
		"  -v, --verbose         log at debug level\n"
		"  -h, --help            show this help and exit\n"
		"  -V, --version         show the version and exit\n"
		"\n"
		"backtest, series-gen and feed-server need no --config; each has its own --help.\n"
		"Node commands open the database directly; a running coordinator picks the change up\n"
		"within 5 s (at once for a node that polls or reports with a new token).\n"
		"Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on a usage or\n"
		"configuration error.\n");
}

typedef struct opts {
	const char *config, *token_file;
	bool check, verbose;
	int argc;
	char **argv; /* the command words */
} opts;

static int parse_args(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "token-file", required_argument, NULL, 't' },
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
		case 't': o->token_file = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hashflop-coord %s\n", HF_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
	if (!o->config) {
		fprintf(stderr, "hashflop-coord: --config FILE is required (see --help)\n");
		return 2;
	}
	if (o->argc && strcmp(o->argv[0], "node") != 0) {
		fprintf(stderr, "hashflop-coord: unknown command \"%s\" (see --help)\n", o->argv[0]);
		return 2;
	}
	if (o->token_file && (o->argc < 2 || strcmp(o->argv[1], "add") != 0)) {
		fprintf(stderr, "hashflop-coord: --token-file goes with node add\n");
		return 2;
	}
	return -1;
}

static int print_config(const hf_coord_config *cfg)
{
	json_t *j = hf_coord_config_to_json(cfg);
	char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;

	json_decref(j);
	if (!text) {
		fprintf(stderr, "hashflop-coord: --check-config: out of memory\n");
		return 2;
	}
	printf("%s\n", text);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- node commands ---- */

static int open_store(const hf_coord_config *cfg, hf_coord_store **s)
{
	hf_coord_store_opts so = { .path = cfg->database };
	hf_errbuf eb;

	if (hf_coord_store_open_sqlite(&so, s, &eb) < 0) {
		fprintf(stderr, "hashflop-coord: database %s: %s\n", cfg->database, eb.msg);
		return 1;
	}
	return 0;
}

static int node_add(hf_coord_store *s, const char *id, const char *token_file)
{
	char token[2 * HF_COORD_TOKEN_BYTES + 2];
	hf_coord_node_rec n = { 0 };
	hf_errbuf eb;
	int r;

	if (!hf_id_valid(id)) {
		fprintf(stderr, "hashflop-coord: node add: \"%s\": expected 1-63 characters of A-Z a-z "
			"0-9 . _ - starting with a letter or digit\n", id);
		return 2;
	}
	if (hf_coord_token_new(token, &eb) < 0) {
		fprintf(stderr, "hashflop-coord: node add: %s\n", eb.msg);
		return 1;
	}
	hf_strlcpy(n.id, id, sizeof n.id);
	hf_coord_token_hash(token, strlen(token), n.token_hash);
	n.added_ms = hf_wall_ms();
	if (token_file) {
		strcat(token, "\n");
		r = hf_file_write_atomic(token_file, token, strlen(token), 0600, &eb);
		token[strlen(token) - 1] = '\0';
		if (r < 0) {
			fprintf(stderr, "hashflop-coord: node add: --token-file: %s\n", eb.msg);
			OPENSSL_cleanse(token, sizeof token);
			return 1;
		}
	}
	if ((r = hf_coord_store_node_add(s, &n, &eb)) < 0) {
		fprintf(stderr, "hashflop-coord: node add %s: %s\n", id,
			r == HF_ESTATE ? "the node exists (node remove it first for a new token)" : eb.msg);
		OPENSSL_cleanse(token, sizeof token);
		return 1;
	}
	if (token_file)
		printf("node %s added; its token is in %s (point the node's control.token_file at a "
		       "copy of it)\n", id, token_file);
	else
		printf("%s\n", token);
	OPENSSL_cleanse(token, sizeof token);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int node_list(hf_coord_store *s)
{
	hf_coord_node_rec *v = NULL;
	uint64_t now = hf_wall_ms();
	size_t n = 0;
	hf_errbuf eb;

	if (hf_coord_store_node_list(s, &v, &n, &eb) < 0) {
		fprintf(stderr, "hashflop-coord: node list: %s\n", eb.msg);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)(v[i].added_ms / 1000);
		char when[32];
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf("%s\tadded %s", v[i].id, when);
		if (v[i].hold_until_ms > now)
			printf("\theld %llu s more by %s",
			       (unsigned long long)((v[i].hold_until_ms - now) / 1000), v[i].hold_by);
		printf("\n");
	}
	free(v);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int node_command(const hf_coord_config *cfg, const opts *o)
{
	hf_coord_store *s = NULL;
	hf_errbuf eb;
	int rc;

	if (o->argc < 2 || (strcmp(o->argv[1], "list") == 0 ? o->argc != 2 : o->argc != 3) ||
	    (strcmp(o->argv[1], "add") != 0 && strcmp(o->argv[1], "list") != 0 &&
	     strcmp(o->argv[1], "remove") != 0)) {
		fprintf(stderr, "hashflop-coord: expected node add ID | node list | node remove ID\n");
		return 2;
	}
	if ((rc = open_store(cfg, &s)) != 0)
		return rc;
	if (strcmp(o->argv[1], "add") == 0) {
		rc = node_add(s, o->argv[2], o->token_file);
	} else if (strcmp(o->argv[1], "list") == 0) {
		rc = node_list(s);
	} else {
		int r = hf_coord_store_node_remove(s, o->argv[2], &eb);
		if (r < 0)
			fprintf(stderr, "hashflop-coord: node remove %s: %s\n", o->argv[2],
				r == HF_ENOTFOUND ? "no such node" : eb.msg);
		else
			printf("node %s removed (its decisions stay in the audit log)\n", o->argv[2]);
		rc = r < 0 ? 1 : 0;
	}
	hf_coord_store_free(s);
	return rc;
}

/* ---- the daemon ---- */

static void raise_fd_limit(void)
{
	uint64_t before, after;

	if (hf_httpd_raise_fd_limit(&before, &after) < 0)
		hf_log_warn("cannot raise the file descriptor limit (RLIMIT_NOFILE): %s", strerror(errno));
	else if (after != before)
		hf_log_info("file descriptor limit raised from %llu to %llu", (unsigned long long)before,
			    (unsigned long long)after);
}

/* Waits for SIGTERM/SIGINT, pinging the systemd watchdog when one is set. SIGHUP does not
 * reload: it is logged and ignored. */
static int wait_signal(const sigset_t *set)
{
	uint64_t wd = hf_notify_watchdog_usec();
	struct timespec ts = { .tv_sec = (time_t)(wd / 2000000), .tv_nsec = (long)(wd / 2 % 1000000) * 1000 };
	int sig;

	for (;;) {
		if (!wd)
			sig = sigwait(set, &sig) == 0 ? sig : -1;
		else
			sig = sigtimedwait(set, NULL, &ts);
		if (sig == SIGHUP)
			hf_log_info("SIGHUP ignored: restart hashflop-coord to reload coord.json and "
				    "its profit file");
		else if (sig > 0)
			return sig;
		else if (wd)
			hf_notify("WATCHDOG=1");
	}
}

static int run(const hf_coord_config *cfg)
{
	hf_coord *c = NULL;
	hf_errbuf eb;
	sigset_t set;
	char status[128];
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (hf_coord_new(cfg, &c, &eb) < 0 || hf_coord_add_source(c, &hf_coord_source_api, &eb) < 0 ||
	    (cfg->profit_file[0] && hf_coord_add_source(c, &hf_coord_source_policy, &eb) < 0) ||
	    hf_coord_serve(c, &eb) < 0) {
		hf_log_err("%s", eb.msg);
		hf_coord_free(c);
		return 1;
	}
	hf_log_notice("hashflop-coord %s: fleet %s, listening on %s port %u (%s), at most %u "
		      "connections, database %s", HF_VERSION, cfg->fleet_id, cfg->listen_address,
		      (unsigned)hf_coord_port(c), cfg->tls_cert[0] ? "HTTPS" : "plain HTTP",
		      hf_coord_max_conns(c), cfg->database);
	if (hf_coord_max_conns(c) < cfg->max_connections)
		hf_log_warn("connection cap lowered from limits.max_connections %u to %u by "
			    "RLIMIT_NOFILE (raise LimitNOFILE=)", cfg->max_connections,
			    hf_coord_max_conns(c));
	snprintf(status, sizeof status, "READY=1\nSTATUS=serving fleet %s on port %u", cfg->fleet_id,
		 (unsigned)hf_coord_port(c));
	hf_notify(status);
	sig = wait_signal(&set);
	hf_log_notice("signal %d: shutting down", sig);
	hf_notify("STOPPING=1");
	hf_coord_free(c);
	return 0;
}

int main(int argc, char **argv)
{
	hf_coord_config cfg;
	hf_errbuf eb;
	opts o = { 0 };
	int rc;

	if (argc > 1 && strcmp(argv[1], "backtest") == 0)
		return hf_coord_cmd_backtest(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "series-gen") == 0)
		return hf_coord_cmd_series_gen(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "feed-server") == 0)
		return hf_coord_cmd_feed_server(argc - 1, argv + 1);
	rc = parse_args(argc, argv, &o);

	if (rc >= 0)
		return rc;
	hf_coord_config_defaults(&cfg);
	if (hf_coord_config_load(&cfg, o.config, &eb) < 0) {
		fprintf(stderr, "hashflop-coord: %s\n", eb.msg);
		return 2;
	}
	if (o.verbose)
		cfg.log_level = HF_LOG_DEBUG;
	if (o.check && o.argc)
		return fprintf(stderr, "hashflop-coord: --check-config takes no command\n"), 2;
	if (o.check && cfg.profit_file[0] && hf_coord_profit_check(cfg.profit_file, &eb) < 0) {
		fprintf(stderr, "hashflop-coord: %s: %s\n", o.config, eb.msg);
		return 2;
	}
	if (o.check)
		return print_config(&cfg);
	if (o.argc)
		return node_command(&cfg, &o);
	hf_log_init(argv[0], cfg.log_level);
	return run(&cfg);
}
