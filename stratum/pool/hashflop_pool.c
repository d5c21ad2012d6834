/* hashflop-pool: the lab Stratum v1 pool for burn-in, demos and tests. Serves Stratum on
 * 127.0.0.1 (TLS optional), an admin HTTP endpoint (GET /stats, POST /fault/KIND) and writes
 * the bound ports to files so tests can use ephemeral ports.
 * Threading: main runs the accept loop; a signal thread takes SIGINT/SIGTERM with sigwait()
 * and stops the pool; admin handlers run on libmicrohttpd's threads.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_httpd.h"
#include "hf_log.h"
#include "hf_pool.h"
#include "hf_pool_config.h"
#include "hf_text.h"
#include "hf_util.h"
#include "hf_version.h"

static void usage(FILE *f)
{
	fputs("Usage: hashflop-pool [--config FILE] [options]\n"
	      "\n"
	      "A lab Stratum v1 pool: jobs from a block template, fractional difficulty, vardiff,\n"
	      "version rolling (BIP 310), real share validation, fault injection for tests.\n"
	      "\n"
	      "Options (override the config file):\n"
	      "  -c, --config FILE          pool.json (strict JSON; see stratum/README.md)\n"
	      "  -l, --listen IP:PORT       Stratum listener (default 127.0.0.1:0, 0 = ephemeral)\n"
	      "      --admin-listen IP:PORT admin HTTP (default 127.0.0.1:0)\n"
	      "      --port-file PATH       write the Stratum port here once listening\n"
	      "      --admin-port-file PATH write the admin port here once listening\n"
	      "      --difficulty D         initial share difficulty (default 0.001)\n"
	      "      --extranonce2-size N   2-8 bytes (default 4)\n"
	      "      --version-mask HEX     rollable version bits (default 1fffe000, 0 = none)\n"
	      "      --vardiff              enable variable difficulty\n"
	      "      --tls-cert PEM         serve stratum+ssl with this certificate chain\n"
	      "      --tls-key PEM          ... and this private key\n"
	      "      --block-interval-ms N  a new block (clean_jobs) every N ms (0 = on request)\n"
	      "      --job-interval-ms N    a refreshed job every N ms (0 = never)\n"
	      "      --refuse-authorize     fault: refuse every mining.authorize\n"
	      "  -v, --verbose              log at debug level\n"
	      "  -h, --help                 show this help and exit\n"
	      "  -V, --version              show the version and exit\n"
	      "\n"
	      "Admin: GET /stats; POST /fault/{drop,garbage,reconnect,new_block,refuse_authorize,\n"
	      "stall,show_message,drop_answer,reject} with ?host=&port=&wait= (reconnect),\n"
	      "?on=0|1 (switches), ?text= (show_message, reject), ?count= (drop_answer, reject:\n"
	      "the next N submits), ?code= (reject); the same keys may come as a JSON object body.\n"
	      "\n"
	      "Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure, 2 on a usage or\n"
	      "configuration error.\n", f);
}

typedef struct args {
	const char *config, *listen, *admin, *port_file, *admin_port_file, *diff, *en2, *mask;
	const char *cert, *key, *block_ms, *job_ms;
	bool vardiff, refuse, verbose;
} args;

static int parse_args(int argc, char **argv, args *a)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "admin-listen", required_argument, NULL, 'A' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "admin-port-file", required_argument, NULL, 'Q' },
		{ "difficulty", required_argument, NULL, 'd' },
		{ "extranonce2-size", required_argument, NULL, 'e' },
		{ "version-mask", required_argument, NULL, 'm' },
		{ "vardiff", no_argument, NULL, 'D' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "block-interval-ms", required_argument, NULL, 'B' },
		{ "job-interval-ms", required_argument, NULL, 'J' },
		{ "refuse-authorize", no_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:vhV", lo, NULL)) != -1) {
		switch (c) {
		case 'c': a->config = optarg; break;
		case 'l': a->listen = optarg; break;
		case 'A': a->admin = optarg; break;
		case 'P': a->port_file = optarg; break;
		case 'Q': a->admin_port_file = optarg; break;
		case 'd': a->diff = optarg; break;
		case 'e': a->en2 = optarg; break;
		case 'm': a->mask = optarg; break;
		case 'D': a->vardiff = true; break;
		case 'C': a->cert = optarg; break;
		case 'K': a->key = optarg; break;
		case 'B': a->block_ms = optarg; break;
		case 'J': a->job_ms = optarg; break;
		case 'R': a->refuse = true; break;
		case 'v': a->verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hashflop-pool %s\n", HF_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hashflop-pool: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		return 2;
	}
	return -1;
}

static int bad(const char *opt, const char *want)
{
	fprintf(stderr, "hashflop-pool: %s: expected %s\n", opt, want);
	return 2;
}

static int apply_args(const args *a, hf_pool_prog_cfg *c)
{
	hf_pool_cfg *p = &c->pool;
	uint64_t v;
	char *end;

	if (a->listen && !hf_parse_hostport(a->listen, p->listen_host, sizeof p->listen_host,
					    &p->port))
		return bad("--listen", "IPV4:PORT");
	if (a->admin && !hf_parse_hostport(a->admin, c->admin_host, sizeof c->admin_host,
					   &c->admin_port))
		return bad("--admin-listen", "IPV4:PORT");
	if (a->diff) {
		p->difficulty = strtod(a->diff, &end);
		if (*end || !(p->difficulty > 0) || p->difficulty > 1e15)
			return bad("--difficulty", "a positive number");
	}
	if (a->en2) {
		if (!hf_parse_u64(a->en2, 2, 8, &v))
			return bad("--extranonce2-size", "2 to 8");
		p->en2_size = (unsigned)v;
	}
	if (a->mask && strcmp(a->mask, "0") != 0 && hf_pool_parse_hex32(a->mask, &p->version_mask))
		return bad("--version-mask", "8 hex digits or 0");
	if (a->mask && strcmp(a->mask, "0") == 0)
		p->version_mask = 0;
	if (a->vardiff)
		p->vardiff = true;
	if (a->cert)
		hf_strlcpy(p->tls_cert, a->cert, sizeof p->tls_cert);
	if (a->key)
		hf_strlcpy(p->tls_key, a->key, sizeof p->tls_key);
	if (!p->tls_cert[0] != !p->tls_key[0])
		return bad("--tls-cert/--tls-key", "both or neither");
	if (a->block_ms) {
		if (!hf_parse_u64(a->block_ms, 0, 86400000, &p->block_interval_ms))
			return bad("--block-interval-ms", "0 to 86400000");
	}
	if (a->job_ms) {
		if (!hf_parse_u64(a->job_ms, 0, 86400000, &p->job_interval_ms))
			return bad("--job-interval-ms", "0 to 86400000");
	}
	if (a->refuse)
		p->refuse_authorize = true;
	if (a->verbose)
		c->log_level = HF_LOG_DEBUG;
	return -1;
}

/* ---- admin HTTP ---- */

static void h_stats(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	hf_http_resp_json(resp, 200, hf_pool_stats_json(ctx));
}

#define FAULT_KEYS 7

/* One fault argument from the JSON body (string or integer) or else the query string. */
static const char *fault_arg(const hf_http_req *req, const json_t *body, const char *key,
			     char *num, size_t numsz)
{
	const json_t *v = json_object_get(body, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(num, numsz, "%lld", (long long)json_integer_value(v));
		return num;
	}
	return hf_http_query(req, key);
}

static void h_fault(void *ctx, const hf_http_req *req, hf_http_resp *resp)
{
	static const char *const keys[FAULT_KEYS] = { "host", "port", "wait", "on", "text", "count",
						      "code" };
	const char *vals[FAULT_KEYS];
	char nums[FAULT_KEYS][24], kind[48];
	hf_errbuf eb;
	json_t *body = NULL, *v;
	const char *k;

	hf_text_clean(kind, sizeof kind, req->params[0], strlen(req->params[0]));
	if (req->body_len) {
		body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			hf_http_resp_error(resp, 400, "body: expected a JSON object of fault arguments");
			return;
		}
		json_object_foreach(body, k, v) {
			size_t i = 0;
			while (i < FAULT_KEYS && strcmp(k, keys[i]) != 0)
				i++;
			if (i == FAULT_KEYS || !(json_is_string(v) || json_is_integer(v))) {
				char name[48];
				hf_text_clean(name, sizeof name, k, strlen(k));
				json_decref(body);
				hf_http_resp_error(resp, 400, "body.%s: expected one of host, port, wait, "
						   "on, text, count, code with a string or integer", name);
				return;
			}
		}
	}
	for (size_t i = 0; i < FAULT_KEYS; i++)
		vals[i] = fault_arg(req, body, keys[i], nums[i], sizeof nums[i]);
	hf_pool_fault_args a = { .host = vals[0], .port = vals[1], .wait = vals[2], .on = vals[3],
				 .text = vals[4], .count = vals[5], .code = vals[6] };
	int rc = hf_pool_fault(ctx, req->params[0], &a, &eb);
	json_decref(body);
	if (rc) {
		hf_http_resp_error(resp, 400, "%s", eb.msg);
		return;
	}
	hf_log_notice("fault injected: %s", kind);
	hf_http_resp_json(resp, 200, json_pack("{s:s}", "fault", kind));
}

static const hf_http_route routes[] = {
	{ "GET", "/stats", h_stats },
	{ "POST", "/fault/*", h_fault },
};

static int write_port(const char *path, uint16_t port)
{
	char tmp[4096], text[16];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	snprintf(text, sizeof text, "%u\n", port);
	f = fopen(tmp, "w");
	if (!f)
		return HF_EIO;
	if (fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		return HF_EIO;
	return 0;
}

typedef struct sigctx {
	sigset_t set;
	hf_pool *pool;
} sigctx;

static void *signal_main(void *arg)
{
	sigctx *s = arg;
	int sig = 0;

	sigwait(&s->set, &sig);
	hf_log_notice("signal %d: stopping", sig);
	hf_pool_stop(s->pool);
	return NULL;
}

int main(int argc, char **argv)
{
	static hf_pool_prog_cfg cfg; /* large (template buffers); main's own state */
	args a = { 0 };
	hf_errbuf eb = { { 0 } };
	hf_pool *pool = NULL;
	hf_httpd *httpd = NULL;
	hf_httpd_opts ho = { 0 };
	sigctx sc;
	pthread_t sth;
	int rc = parse_args(argc, argv, &a);

	if (rc >= 0)
		return rc;
	hf_pool_prog_cfg_defaults(&cfg);
	if (a.config && hf_pool_config_load(a.config, &cfg, &eb)) {
		fprintf(stderr, "hashflop-pool: %s\n", eb.msg);
		return 2;
	}
	rc = apply_args(&a, &cfg);
	if (rc >= 0)
		return rc;
	hf_log_init("hashflop-pool", cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);

	if (hf_pool_new(&cfg.pool, &pool, &eb)) {
		hf_log_err("%s", eb.msg);
		return 1;
	}
	ho.host = cfg.admin_host;
	ho.port = cfg.admin_port;
	if (hf_httpd_new(&ho, routes, HF_ARRAY_SIZE(routes), pool, &httpd, &eb)) {
		hf_log_err("admin: %s", eb.msg);
		rc = 1;
		goto free_pool;
	}
	hf_log_notice("listening on %s:%u (%s), admin on %s:%u, difficulty %g, version mask %08x",
		      cfg.pool.listen_host, hf_pool_port(pool), cfg.pool.tls_cert[0] ? "TLS" : "TCP",
		      cfg.admin_host, hf_httpd_port(httpd), cfg.pool.difficulty,
		      cfg.pool.version_mask);
	if ((a.admin_port_file && write_port(a.admin_port_file, hf_httpd_port(httpd))) ||
	    (a.port_file && write_port(a.port_file, hf_pool_port(pool)))) {
		hf_log_err("cannot write the port file");
		rc = 1;
		goto free_httpd;
	}
	sc.pool = pool;
	if (pthread_create(&sth, NULL, signal_main, &sc)) {
		rc = 1;
		goto free_httpd;
	}
	pthread_detach(sth);
	rc = hf_pool_run(pool) ? 1 : 0;
	hf_log_notice("stopped");
free_httpd:
	hf_httpd_free(httpd);
free_pool:
	hf_pool_free(pool);
	return rc;
}
