/* Integration tests: hashflopd under a stand-in for systemd's notify socket (a datagram socket
 * this test binds, NOTIFY_SOCKET pointing at it, WATCHDOG_USEC and WATCHDOG_PID = the daemon's
 * pid): READY=1 only once the restored mode's first start finished (mining against the lab pool;
 * a start that fails: READY with STATUS naming the retry), WATCHDOG=1 pings while healthy that
 * stop while a worker is wedged (a drain held by a scan the test hook stalls) with STATUS naming
 * why and resume once it returns, STOPPING=1 on SIGTERM; and first boot: an empty state dir and
 * no trust file, coordinator or token: the daemon runs idle, names each missing item once and
 * writes no key; $CACHE_DIRECTORY holding the OpenCL program cache (an explicit
 * mining.opencl.cache_dir wins). WATCHDOG_PID is set by a /bin/sh wrapper that execs the daemon (same pid).
 * Every wait has a deadline; durations are reported, never asserted. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_testnode.h"
#include "hf_testpool.h"
#include "hf_testproc.h"
#include "hf_util.h"

#define WAIT_MS 30000
#define MSG_MAX 4096

/* ---- the notify socket: a thread collects every datagram with its arrival time ---- */

typedef struct notify_rx {
	int fd;
	char path[256];
	pthread_t th;
	atomic_bool stop;
	pthread_mutex_t lock;
	int n;
	char *text[MSG_MAX];
	uint64_t ms[MSG_MAX];
} notify_rx;

static void *rx_main(void *arg)
{
	notify_rx *rx = arg;
	char buf[4096];

	while (!atomic_load(&rx->stop)) {
		struct pollfd p = { .fd = rx->fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t len = recv(rx->fd, buf, sizeof buf - 1, 0);
		if (len < 0)
			continue;
		buf[len] = '\0';
		pthread_mutex_lock(&rx->lock);
		if (rx->n < MSG_MAX) {
			rx->text[rx->n] = strdup(buf);
			rx->ms[rx->n] = hf_mono_ms();
			rx->n++;
		}
		pthread_mutex_unlock(&rx->lock);
	}
	return NULL;
}

static void rx_start(notify_rx *rx, const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(rx, 0, sizeof *rx);
	pthread_mutex_init(&rx->lock, NULL);
	snprintf(rx->path, sizeof rx->path, "%s/notify.sock", dir);
	cr_assert_lt(strlen(rx->path), sizeof sa.sun_path, "socket path too long: %s", rx->path);
	memcpy(sa.sun_path, rx->path, strlen(rx->path) + 1);
	unlink(rx->path);
	rx->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(rx->fd, 0);
	cr_assert_eq(bind(rx->fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind %s: %s", rx->path,
		     strerror(errno));
	cr_assert_eq(pthread_create(&rx->th, NULL, rx_main, rx), 0);
}

static void rx_free(notify_rx *rx)
{
	atomic_store(&rx->stop, true);
	pthread_join(rx->th, NULL);
	close(rx->fd);
	unlink(rx->path);
	for (int i = 0; i < rx->n; i++)
		free(rx->text[i]);
	pthread_mutex_destroy(&rx->lock);
}

static int rx_count_all(notify_rx *rx)
{
	pthread_mutex_lock(&rx->lock);
	int n = rx->n;
	pthread_mutex_unlock(&rx->lock);
	return n;
}

/* The index of the first datagram at index >= from containing needle, waiting up to
 * timeout_ms; -1 on timeout. *text (may be NULL) gets a copy (free it). */
static int rx_wait(notify_rx *rx, int from, const char *needle, uint64_t timeout_ms, char **text)
{
	uint64_t end = hf_mono_ms() + timeout_ms;
	for (;;) {
		int found = -1;
		pthread_mutex_lock(&rx->lock);
		for (int i = from; i < rx->n && found < 0; i++)
			if (strstr(rx->text[i], needle))
				found = i;
		if (found >= 0 && text)
			*text = strdup(rx->text[found]);
		pthread_mutex_unlock(&rx->lock);
		if (found >= 0 || hf_mono_ms() > end)
			return found;
		hf_sleep_ms(5);
	}
}

/* Datagrams in [from, to) that contain needle. */
static int rx_count(notify_rx *rx, int from, int to, const char *needle)
{
	int c = 0;
	pthread_mutex_lock(&rx->lock);
	for (int i = from; i < to && i < rx->n; i++)
		if (strstr(rx->text[i], needle))
			c++;
	pthread_mutex_unlock(&rx->lock);
	return c;
}

/* Every datagram (for failure messages; free it). */
static char *rx_dump(notify_rx *rx)
{
	size_t cap = 1 << 16, len = 0;
	char *s = calloc(1, cap);
	pthread_mutex_lock(&rx->lock);
	for (int i = 0; i < rx->n && len + 512 < cap; i++)
		len += (size_t)snprintf(s + len, cap - len, "[%d] %.400s\n", i, rx->text[i]);
	pthread_mutex_unlock(&rx->lock);
	return s;
}

/* ---- hashflopd with the notify environment ---- */

/* Starts hashflopd with n's config under /bin/sh, which exports WATCHDOG_PID=$$ and execs the
 * daemon (so the pid is the daemon's); NOTIFY_SOCKET, WATCHDOG_USEC (NULL: unset) and env
 * (name, value pairs, NULL-terminated) for the daemon only. Waits for api.json with the child's
 * pid and sets n->proc and n->port. */
static void start_notify(hf_testnode *n, const char *sock, const char *wd_usec,
			 const char *const *env)
{
	char exe[1024], apifile[1100];
	const char *argv[] = { "/bin/sh", "-c",
			       "WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" --config \"$1\"",
			       exe, n->cfg, NULL };

	snprintf(exe, sizeof exe, "%s/runtime/node/hashflopd", hf_test_build_root());
	snprintf(apifile, sizeof apifile, "%s/api.json", n->state);
	unlink(apifile);
	setenv("NOTIFY_SOCKET", sock, 1);
	if (wd_usec)
		setenv("WATCHDOG_USEC", wd_usec, 1);
	for (const char *const *e = env; e && e[0]; e += 2)
		setenv(e[0], e[1], 1);
	n->proc = hf_testproc_start(argv, n->log);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	for (const char *const *e = env; e && e[0]; e += 2)
		unsetenv(e[0]);
	cr_assert_not_null(n->proc);
	uint64_t end = hf_mono_ms() + WAIT_MS;
	for (;;) {
		json_t *j = json_load_file(apifile, 0, NULL);
		json_int_t pid = json_integer_value(json_object_get(j, "pid"));
		n->port = (int)json_integer_value(json_object_get(j, "port"));
		json_decref(j);
		if (pid == hf_testproc_pid(n->proc) && n->port > 0)
			break;
		int st;
		cr_assert_not(hf_testproc_wait_exit(n->proc, 0, &st), "hashflopd exited (%d); log:\n%s",
			      st, hf_test_read_file(n->log));
		cr_assert_lt(hf_mono_ms(), end, "no api.json with the daemon's pid; log:\n%s",
			     hf_test_read_file(n->log));
		hf_sleep_ms(10);
	}
}

static void patch_config(hf_testnode *n, const char *from, const char *to)
{
	char *text = hf_test_read_file(n->cfg), *at = text ? strstr(text, from) : NULL;
	cr_assert_not_null(at, "%s has no %s", n->cfg, from);
	size_t head = (size_t)(at - text), len = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(len);
	snprintf(out, len, "%.*s%s%s", (int)head, text, to, at + strlen(from));
	FILE *f = fopen(n->cfg, "w");
	cr_assert_not_null(f);
	fputs(out, f);
	fclose(f);
	free(out);
	free(text);
}

static const char *jstr(const json_t *j, const char *a, const char *b)
{
	const json_t *v = json_object_get(j, a);
	if (b)
		v = json_object_get(v, b);
	const char *s = json_string_value(v);
	return s ? s : "";
}

/* Occurrences of needle in the file at path. */
static int log_count(const char *path, const char *needle)
{
	char *text = hf_test_read_file(path);
	int c = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		c++;
	free(text);
	return c;
}

static bool metric_is(const hf_testnode *n, const char *line)
{
	char url[256];
	hf_test_reply *r = malloc(sizeof *r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->port);
	cr_assert(hf_test_http("GET", url, NULL, 0, r));
	bool ok = strstr(r->body, line) != NULL;
	free(r);
	return ok;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* Restored mining: READY=1 (STATUS "running mining") only once /v1/status shows it running;
 * WATCHDOG=1 every 100 ms while healthy; a drain held by a stalled scan stops the pings (STATUS
 * and /v1/status name the drain past its bound) until it returns; STOPPING=1 on SIGTERM. */
Test(notify, ready_after_restored_mining_and_watchdog_follows_a_wedged_drain, .init = setup,
     .timeout = 240)
{
	hf_testpool p = { 0 };
	hf_testnode n;
	notify_rx rx;
	char extra[512], *text = NULL;
	/* The 60th scan call blocks 14 s: the drain waits for it (drain_timeout_ms 500 + the
	 * node's 5 s grace is its bound). */
	static const char *const env[] = { "HASHFLOP_TEST_STALL_SCAN", "60:14000", NULL };

	hf_testpool_start(&p, "notify-pool", 0, "0.001", NULL, WAIT_MS);
	hf_testnode_init(&n, "notify-mining", "idle", "{\"cpu\": {\"threads\": 1}}", 500);
	patch_config(&n, "\"drain_timeout_ms\": 500}", "\"drain_timeout_ms\": 500, \"apply_wait_ms\": 0}");
	hf_testnode_trust(&n);
	/* First life: an instruction makes mining the persisted desired mode. */
	hf_testnode_start(&n, NULL);
	snprintf(extra, sizeof extra, ",\"mining\":{\"pools\":[{\"url\":\"stratum+tcp://127.0.0.1:%u\","
		 "\"user\":\"bc1qtest.notify\",\"pass\":\"x\"}]}", p.port);
	hf_testnode_instruct(&n, "mining", extra);
	json_decref(hf_testnode_wait_mode(&n, "mining", 1, WAIT_MS));
	hf_testnode_stop(&n);

	/* Second life: restored from state.json, under the notify socket. */
	rx_start(&rx, n.dir);
	uint64_t t0 = hf_mono_ms();
	start_notify(&n, rx.path, "400000", env);
	int ready = rx_wait(&rx, 0, "READY=1", WAIT_MS, &text);
	cr_assert_geq(ready, 0, "no READY=1; datagrams:\n%s\nlog:\n%s", rx_dump(&rx),
		      hf_test_read_file(n.log));
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(jstr(st, "mode", NULL), "mining", "READY before mining ran: %s", json_dumps(st, 0));
	cr_assert_str_eq(jstr(st, "phase", NULL), "running");
	cr_assert(json_is_true(json_object_get(st, "converged")), "%s", json_dumps(st, 0));
	cr_assert(strstr(text, "STATUS=running mining"), "READY datagram: %s", text);
	cr_assert(json_is_true(json_object_get(json_object_get(st, "watchdog"), "healthy")), "%s",
		  json_dumps(st, 0));
	json_decref(st);
	free(text);
	/* In the log, the switch to mining finished before READY. */
	char *log = hf_test_read_file(n.log);
	char *second = strstr(log, "restored desired mode mining from ");
	cr_assert_not_null(second);
	char *sw = strstr(second, "mode: none -> mining in "), *rd = strstr(second, "; READY");
	cr_assert(sw && rd && sw < rd, "the switch did not finish before READY:\n%s", second);
	free(log);
	cr_log_info("READY %llu ms after the start", (unsigned long long)(hf_mono_ms() - t0));
	/* Pings while healthy. */
	int pings_from = ready;
	for (int i = 0; i < 3; i++) {
		pings_from = rx_wait(&rx, pings_from + 1, "WATCHDOG=1", WAIT_MS, NULL);
		cr_assert_geq(pings_from, 0, "ping %d missing; datagrams:\n%s", i, rx_dump(&rx));
	}
	cr_assert(metric_is(&n, "\nhashflop_watchdog_healthy 1\n"));

	/* Wedge: wait until the stalled scan holds the hashing thread, then ask for idle: the drain
	 * cannot finish until the scan returns. */
	uint64_t end = hf_mono_ms() + 60000;
	for (;;) {
		st = hf_testnode_get(&n, "/v1/status");
		const json_t *t = json_array_get(json_object_get(json_object_get(st, "mining"), "per_thread"), 0);
		bool held = json_integer_value(json_object_get(t, "last_progress_ms_ago")) >= 300;
		json_decref(st);
		if (held)
			break;
		cr_assert_lt(hf_mono_ms(), end, "the scan was never held");
		hf_sleep_ms(20);
	}
	hf_testnode_instruct(&n, "idle", NULL);
	int bad = rx_wait(&rx, pings_from, "STATUS=watchdog: unhealthy: the mining worker's drain "
			  "callback has run for ", WAIT_MS, &text);
	cr_assert_geq(bad, 0, "no unhealthy STATUS; datagrams:\n%s\nlog:\n%s", rx_dump(&rx),
		      hf_test_read_file(n.log));
	cr_assert(strstr(text, "past its bound of 5500 ms (500 ms + 5000 ms grace)"), "%s", text);
	free(text);
	st = hf_testnode_get(&n, "/v1/status");
	json_t *wd = json_object_get(st, "watchdog");
	cr_assert(json_is_false(json_object_get(wd, "healthy")), "%s", json_dumps(wd, 0));
	cr_assert(strstr(jstr(wd, "reason", NULL), "drain callback"), "%s", json_dumps(wd, 0));
	json_decref(st);
	cr_assert(metric_is(&n, "\nhashflop_watchdog_healthy 0\n"));
	cr_assert(hf_test_wait_log(n.log, "err: watchdog: unhealthy: the mining worker's drain "
				   "callback has run for ", WAIT_MS));
	/* Healthy again once the scan returns and the drain finishes: pings resume. */
	cr_assert(hf_test_wait_log(n.log, "watchdog: healthy again; WATCHDOG=1 pings resumed", 60000),
		  "log:\n%s", hf_test_read_file(n.log));
	int resumed = rx_wait(&rx, bad + 1, "WATCHDOG=1", WAIT_MS, NULL);
	cr_assert_geq(resumed, 0, "pings did not resume");
	int bad_end = rx_wait(&rx, bad + 1, "STATUS=running idle", WAIT_MS, NULL);
	cr_assert_geq(bad_end, 0, "no STATUS after the recovery; datagrams:\n%s", rx_dump(&rx));
	/* No ping while unhealthy: none between the unhealthy STATUS and the first one after it. */
	cr_assert_eq(rx_count(&rx, bad, resumed, "WATCHDOG=1"), 0);
	pthread_mutex_lock(&rx.lock);
	uint64_t gap = rx.ms[resumed] - rx.ms[bad];
	pthread_mutex_unlock(&rx.lock);
	cr_log_info("pings stopped for %llu ms while the drain was wedged", (unsigned long long)gap);
	cr_assert_eq(log_count(n.log, "err: watchdog: unhealthy"), 1, "logged once");
	cr_assert(metric_is(&n, "\nhashflop_watchdog_healthy 1\n"));

	int before_stop = rx_count_all(&rx);
	hf_testnode_stop(&n);
	cr_assert_geq(rx_wait(&rx, before_stop, "STOPPING=1", WAIT_MS, NULL), 0,
		      "no STOPPING=1; datagrams:\n%s", rx_dump(&rx));
	rx_free(&rx);
	hf_testnode_fini(&n);
	hf_testpool_free(&p, WAIT_MS, false);
}

/* A restored mode whose start fails: READY anyway once the first attempt finished, STATUS
 * naming the failure and the retry; the watchdog stays healthy (a failed start is retried, not
 * a wedge), and WATCHDOG_PID naming another process means no pings at all. */
Test(notify, ready_with_a_failed_first_start_says_it_retries, .init = setup, .timeout = 120)
{
	hf_testnode n;
	notify_rx rx;
	char *text = NULL;

	hf_testnode_init(&n, "notify-fail", "mining",
			 "{\"backend\": \"opencl\", \"opencl\": {\"device\": \"no-such-device-xyz\"}}", 500);
	patch_config(&n, "\"drain_timeout_ms\": 500}", "\"drain_timeout_ms\": 500, \"retry_min_ms\": 60000, "
		     "\"retry_max_ms\": 60000}");
	rx_start(&rx, n.dir);
	start_notify(&n, rx.path, "400000", NULL);
	int ready = rx_wait(&rx, 0, "READY=1", WAIT_MS, &text);
	cr_assert_geq(ready, 0, "no READY=1; log:\n%s", hf_test_read_file(n.log));
	cr_assert(strstr(text, "STATUS=retrying mining: start of mining: "), "%s", text);
	cr_assert(strstr(text, "next attempt in "), "%s", text);
	free(text);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(jstr(st, "convergence", "state"), "retrying", "%s", json_dumps(st, 0));
	cr_assert_str_eq(jstr(st, "mode", NULL), "idle");
	cr_assert(json_is_true(json_object_get(json_object_get(st, "watchdog"), "healthy")));
	json_decref(st);
	cr_assert_geq(rx_wait(&rx, ready + 1, "WATCHDOG=1", WAIT_MS, NULL), 0, "healthy: pings");
	hf_testnode_stop(&n);
	rx_free(&rx);

	/* WATCHDOG_PID of another process: the watchdog is not this daemon's. */
	rx_start(&rx, n.dir);
	setenv("WATCHDOG_PID", "1", 1);
	char exe[1024];
	snprintf(exe, sizeof exe, "%s/runtime/node/hashflopd", hf_test_build_root());
	const char *argv[] = { exe, "--config", n.cfg, NULL };
	setenv("NOTIFY_SOCKET", rx.path, 1);
	setenv("WATCHDOG_USEC", "400000", 1);
	n.proc = hf_testproc_start(argv, n.log);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ready = rx_wait(&rx, 0, "READY=1", WAIT_MS, NULL);
	cr_assert_geq(ready, 0);
	/* A ping would follow READY at once (the first watchdog tick comes right after it), so
	 * by STOPPING=1 it would have arrived. */
	int stop_at = rx_count_all(&rx);
	hf_testnode_stop(&n);
	cr_assert_geq(rx_wait(&rx, stop_at, "STOPPING=1", WAIT_MS, NULL), 0);
	cr_assert_eq(rx_count(&rx, 0, rx_count_all(&rx), "WATCHDOG=1"), 0, "pinged for another pid");
	cr_assert_eq(log_count(n.log, "watchdog: WATCHDOG_USEC="), 1, "only the first life had a watchdog");
	rx_free(&rx);
	hf_testnode_fini(&n);
}

/* Writes n's first-boot node.json: state dir <dir>/state/node (not there yet), the trust file
 * <dir>/trust.json (absent unless the test writes it), and `control` (continues the control
 * object). */
static void write_first_boot_config(hf_testnode *n, const char *control)
{
	char text[4096];

	snprintf(text, sizeof text,
		 "{\"node_id\": \"n1\", \"fleet_id\": \"lab\", \"state_dir\": \"%s\",\n"
		 " \"api\": {\"listen\": \"127.0.0.1\", \"port\": 0}, \"inference\": {\"port\": 0},\n"
		 " \"control\": {\"trust_file\": \"%s\"%s}}\n", n->state, n->trust, control);
	FILE *f = fopen(n->cfg, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* A new directory for name and its first-boot node.json (write_first_boot_config). */
static void first_boot_config(hf_testnode *n, const char *name, const char *control)
{
	memset(n, 0, sizeof *n);
	n->dir = hf_test_tmpdir(name);
	cr_assert_not_null(n->dir);
	snprintf(n->cfg, sizeof n->cfg, "%s/node.json", n->dir);
	snprintf(n->log, sizeof n->log, "%s/hashflopd.log", n->dir);
	snprintf(n->state, sizeof n->state, "%s/state/node", n->dir);
	snprintf(n->trust, sizeof n->trust, "%s/trust.json", n->dir);
	write_first_boot_config(n, control);
}

/* The state dir's entries (space-separated, sorted by readdir order) into buf. */
static void list_dir(const char *dir, char *buf, size_t sz)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t len = 0;

	buf[0] = '\0';
	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			len += (size_t)snprintf(buf + len, sz - len, "%s ", de->d_name);
	closedir(d);
}

/* First boot: no state dir, no trust file, coordinator_url "", no token: the daemon runs idle
 * (READY), names each missing item once with its config key and path, creates the state dir
 * 0700 and writes no key or secret into it. */
Test(notify, first_boot_without_trust_coordinator_or_token, .init = setup, .timeout = 120)
{
	hf_testnode n;
	notify_rx rx;
	char *text = NULL, files[2048], want[1200];
	struct stat sb;

	first_boot_config(&n, "notify-firstboot", ", \"coordinator_url\": \"\", \"token_file\": \"\"");
	cr_assert_neq(stat(n.state, &sb), 0, "the state dir exists before the first boot");
	rx_start(&rx, n.dir);
	start_notify(&n, rx.path, NULL, NULL);
	cr_assert_geq(rx_wait(&rx, 0, "READY=1", WAIT_MS, &text), 0, "log:\n%s", hf_test_read_file(n.log));
	cr_assert(strstr(text, "STATUS=running idle"), "%s", text);
	free(text);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert_str_eq(jstr(st, "mode", NULL), "idle");
	cr_assert_str_eq(jstr(st, "desired_mode", NULL), "idle");
	cr_assert(json_is_true(json_object_get(st, "converged")));
	cr_assert(json_is_false(json_object_get(json_object_get(st, "control"), "trusted")));
	json_decref(st);
	snprintf(want, sizeof want, "warn: control: no trust file at %s (control.trust_file): every "
		 "instruction, local or from a coordinator, will be refused", n.trust);
	cr_assert_eq(log_count(n.log, want), 1, "%s\nlog:\n%s", want, hf_test_read_file(n.log));
	cr_assert_eq(log_count(n.log, "notice: control: no coordinator (control.coordinator_url is "
			       "\"\"): standalone node"), 1, "log:\n%s", hf_test_read_file(n.log));
	snprintf(want, sizeof want, "notice: state dir %s (state_dir) did not exist: created it (mode 0700)",
		 n.state);
	cr_assert_eq(log_count(n.log, want), 1, "log:\n%s", hf_test_read_file(n.log));
	cr_assert_eq(log_count(n.log, "token_file"), 0, "no coordinator: the token is not missing");
	cr_assert_eq(stat(n.state, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0700, "state dir mode %o", sb.st_mode & 0777);
	list_dir(n.state, files, sizeof files);
	cr_log_info("first boot state dir: %s", files);
	/* Only these: the lock, the desired state, the API address, the OpenCL cache dir. */
	for (char *tok = strtok(files, " "); tok; tok = strtok(NULL, " "))
		cr_assert(strcmp(tok, "lock") == 0 || strcmp(tok, "state.json") == 0 ||
			  strcmp(tok, "api.json") == 0 || strcmp(tok, "cl-cache") == 0,
			  "unexpected file in the state dir on first boot: %s", tok);
	char sp[1100];
	snprintf(sp, sizeof sp, "%s/state.json", n.state);
	char *state = hf_test_read_file(sp);
	cr_assert_not_null(state);
	cr_assert_null(strstr(state, "PRIVATE"), "%s", state);
	free(state);
	hf_testnode_stop(&n);
	rx_free(&rx);
	hf_testnode_fini(&n);
}

/* A coordinator URL with the token file missing, then unreadable (a directory): the daemon
 * runs, says so once at warning level naming control.token_file and the path, and /v1/status
 * shows the problem; a trust file present and coordinator_url "": no trust warning. */
Test(notify, first_boot_token_missing_or_unreadable_and_standalone_with_trust, .init = setup,
     .timeout = 120)
{
	hf_testnode n;
	char control[2048], tok[1100], want[1500];

	for (int pass = 0; pass < 2; pass++) {
		char name[64];
		snprintf(name, sizeof name, "notify-token%d", pass);
		first_boot_config(&n, name, "");
		snprintf(tok, sizeof tok, "%s/coord-token", n.dir);
		if (pass == 1)
			cr_assert_eq(mkdir(tok, 0700), 0);
		snprintf(control, sizeof control, ", \"coordinator_url\": \"http://127.0.0.1:1\", "
			 "\"token_file\": \"%s\", \"retry_max_ms\": 60000", tok);
		write_first_boot_config(&n, control);
		hf_testnode_start(&n, NULL);
		json_t *st = hf_testnode_get(&n, "/v1/status");
		cr_assert_str_eq(jstr(st, "mode", NULL), "idle");
		const char *problem = jstr(st, "control", "token_problem");
		cr_assert(strstr(problem, tok), "%s", json_dumps(st, 0));
		json_decref(st);
		snprintf(want, sizeof want, "warn: control: control.token_file: token file %s: %s", tok,
			 pass == 0 ? "does not exist" : "not a regular file");
		cr_assert_eq(log_count(n.log, want), 1, "%s\nlog:\n%s", want, hf_test_read_file(n.log));
		cr_assert_eq(log_count(n.log, "control: no trust file "), 1);
		cr_assert_eq(log_count(n.log, "no coordinator"), 0);
		hf_testnode_stop(&n);
		hf_testnode_fini(&n);
	}
	/* Trust file present, no coordinator: only the standalone notice. */
	first_boot_config(&n, "notify-standalone", ", \"coordinator_url\": \"\"");
	hf_testnode_trust(&n);
	hf_testnode_start(&n, NULL);
	json_t *st = hf_testnode_get(&n, "/v1/status");
	cr_assert(json_is_true(json_object_get(json_object_get(st, "control"), "trusted")));
	json_decref(st);
	cr_assert_eq(log_count(n.log, "control: no trust file"), 0);
	cr_assert_eq(log_count(n.log, "notice: control: no coordinator (control.coordinator_url is "
			       "\"\"): standalone node; nothing is polled and no reports are sent; "
			       "operator-signed instructions are taken on the local API (POST "
			       "/v1/instruction)\n"), 1, "log:\n%s", hf_test_read_file(n.log));
	hf_testnode_instruct(&n, "idle", NULL);
	hf_testnode_stop(&n);
	hf_testnode_fini(&n);
}

/* ---- $CACHE_DIRECTORY: the OpenCL program cache (and PoCL's, unless POCL_CACHE_DIR) ---- */

/* Program cache files (*.clbin) in dir (0 when it does not exist). */
static int clbins(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len > 6 && strcmp(de->d_name + len - 6, ".clbin") == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Mining on OpenCL started with CACHE_DIRECTORY (a list, as systemd writes it for several
 * CacheDirectory= entries: the first is used): its program cache lands there, not in
 * <state_dir>/cl-cache; an explicit mining.opencl.cache_dir wins over it. */
Test(notify, cache_directory_holds_the_opencl_program_cache, .init = setup, .timeout = 300)
{
	hf_testpool p = { 0 };
	hf_testnode n;
	char mining[2048], cache[1100], env_val[2300], statecache[1100], want[1300], why[512];
	char *explicit_dir = hf_test_tmpdir("notify-cache-explicit");

	cr_assert(explicit_dir);
	if (hf_testnode_opencl_devices(why, sizeof why) == 0)
		cr_skip_test("no OpenCL device on this machine (%s)", why);
	hf_testpool_start(&p, "notify-cache-pool", 0, "0.001", NULL, WAIT_MS);
	for (int pass = 0; pass < 2; pass++) {
		char name[64];
		snprintf(name, sizeof name, "notify-cache%d", pass);
		snprintf(mining, sizeof mining, "{\"pools\": [{\"url\": \"stratum+tcp://127.0.0.1:%u\", "
			 "\"user\": \"bc1qtest.cache\"}], \"backend\": \"opencl\", \"opencl\": {\"batch\": "
			 "16384, \"cache_dir\": \"%s\"}}", p.port, pass == 1 ? explicit_dir : "");
		hf_testnode_init(&n, name, "mining", mining, 2000);
		snprintf(cache, sizeof cache, "%s/cache", n.dir);
		cr_assert_eq(mkdir(cache, 0700), 0);
		snprintf(env_val, sizeof env_val, "%s:%s/second", cache, n.dir);
		const char *env[] = { "CACHE_DIRECTORY", env_val, NULL };
		hf_testnode_start(&n, env);
		json_decref(hf_testnode_wait_mode(&n, "mining", 0, 120000));
		snprintf(want, sizeof want, "info: OpenCL caches: programs in %s ($CACHE_DIRECTORY;", cache);
		cr_assert_eq(log_count(n.log, want), 1, "%s\nlog:\n%s", want, hf_test_read_file(n.log));
		snprintf(statecache, sizeof statecache, "%s/cl-cache", n.state);
		if (pass == 0) {
			cr_assert_geq(clbins(cache), 1, "no program cached in $CACHE_DIRECTORY %s; log:\n%s",
				      cache, hf_test_read_file(n.log));
		} else {
			cr_assert_geq(clbins(explicit_dir), 1, "mining.opencl.cache_dir did not win");
			cr_assert_eq(clbins(cache), 0);
		}
		cr_assert_eq(clbins(statecache), 0, "programs cached in the state dir");
		hf_testnode_stop(&n);
		hf_testnode_fini(&n);
	}
	hf_testpool_free(&p, WAIT_MS, false);
	free(explicit_dir);
}
