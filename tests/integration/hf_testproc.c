/* hf_testproc: process control and deadline waits for integration tests.
 * Threading: test code only.
 */
#include "hf_testproc.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct hf_testproc {
	pid_t pid;
	bool reaped;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };
	nanosleep(&ts, NULL);
}

hf_testproc *hf_testproc_start(const char *const argv[], const char *log_path)
{
	hf_testproc *p = calloc(1, sizeof *p);
	pid_t parent = getpid();

	if (!p)
		return NULL;
	p->pid = fork();
	if (p->pid < 0) {
		free(p);
		return NULL;
	}
	if (p->pid == 0) {
		int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "hf_testproc: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return p;
}

pid_t hf_testproc_pid(const hf_testproc *p)
{
	return p->pid;
}

int hf_testproc_signal(hf_testproc *p, int sig)
{
	if (p->reaped)
		return -1;
	return kill(p->pid, sig);
}

bool hf_testproc_wait_exit(hf_testproc *p, uint64_t timeout_ms, int *status)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int st;

	if (p->reaped)
		return false;
	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			if (status)
				*status = st;
			return true;
		}
		if (r < 0 && errno != EINTR)
			return false;
		if (now_ms() >= deadline)
			return false;
		nap_ms(5);
	}
}

void hf_testproc_free(hf_testproc *p)
{
	if (!p)
		return;
	if (!p->reaped) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	free(p);
}

int hf_testproc_stop(hf_testproc *p, int sig, uint64_t timeout_ms)
{
	int st = -1;

	if (hf_testproc_signal(p, sig) != 0 || !hf_testproc_wait_exit(p, timeout_ms, &st))
		st = -1;
	hf_testproc_free(p);
	return st;
}

hf_testproc *hf_test_start_hashflopd(const char *config, const char *log, const char *state_dir,
				     uint64_t timeout_ms, int *port, char *err, size_t err_len)
{
	char exe[1024], apifile[1024];
	const char *argv[] = { exe, "--config", config, NULL };
	hf_testproc *p;
	json_t *j = NULL;
	char *text = NULL;

	snprintf(exe, sizeof exe, "%s/runtime/node/hashflopd", hf_test_build_root());
	snprintf(apifile, sizeof apifile, "%s/api.json", state_dir);
	unlink(apifile);
	p = hf_testproc_start(argv, log);
	if (!p) {
		snprintf(err, err_len, "cannot start %s", exe);
		return NULL;
	}
	if (!hf_test_wait_file(apifile, timeout_ms)) {
		snprintf(err, err_len, "hashflopd wrote no %s in %llu ms", apifile,
			 (unsigned long long)timeout_ms);
		goto kill_child;
	}
	text = hf_test_read_file(apifile);
	j = text ? json_loads(text, 0, NULL) : NULL;
	if (!j) {
		snprintf(err, err_len, "%s is not JSON: %s", apifile, text ? text : "(unreadable)");
		goto kill_child;
	}
	*port = (int)json_integer_value(json_object_get(j, "port"));
	if (*port <= 0) {
		snprintf(err, err_len, "%s: port %d", apifile, *port);
		goto kill_child;
	}
	if (json_integer_value(json_object_get(j, "pid")) != hf_testproc_pid(p)) {
		snprintf(err, err_len, "%s: pid %lld, started %d", apifile,
			 (long long)json_integer_value(json_object_get(j, "pid")), (int)hf_testproc_pid(p));
		goto kill_child;
	}
	json_decref(j);
	free(text);
	return p;
kill_child:
	json_decref(j);
	free(text);
	hf_testproc_free(p);
	return NULL;
}

bool hf_test_wait_file(const char *path, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct stat st;
	while (stat(path, &st) != 0) {
		if (now_ms() >= deadline)
			return false;
		nap_ms(10);
	}
	return true;
}

bool hf_test_self_signed_cert(const char *cert, const char *key)
{
	char cmd[4096];
	int n = snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt "
			 "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 -addext "
			 "subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' 2>/dev/null", key, cert);

	return n > 0 && (size_t)n < sizeof cmd && system(cmd) == 0;
}

bool hf_test_tls_make(hf_test_tls *t, const char *name)
{
	memset(t, 0, sizeof *t);
	if (!(t->dir = hf_test_tmpdir(name)))
		return false;
	snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
	snprintf(t->key, sizeof t->key, "%s/key.pem", t->dir);
	if (!hf_test_self_signed_cert(t->cert, t->key))
		return false;
	t->cert_pem = hf_test_read_file(t->cert);
	t->key_pem = hf_test_read_file(t->key);
	return t->cert_pem && t->key_pem;
}

void hf_test_tls_free(hf_test_tls *t)
{
	free(t->cert_pem);
	free(t->key_pem);
	free(t->dir);
	memset(t, 0, sizeof *t);
}

char *hf_test_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, 4096, f);
		len += got;
		if (got < 4096)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

bool hf_test_wait_log(const char *path, const char *needle, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		char *text = hf_test_read_file(path);
		bool found = text && strstr(text, needle);
		free(text);
		if (found)
			return true;
		if (now_ms() >= deadline)
			return false;
		nap_ms(10);
	}
}

const char *hf_test_build_root(void)
{
	const char *r = getenv("HF_BUILD_ROOT");
	return r && *r ? r : ".";
}

char *hf_test_tmpdir(const char *name)
{
	char base[4096], *path;
	snprintf(base, sizeof base, "%s/test-tmp", hf_test_build_root());
	mkdir(base, 0755);
	path = malloc(strlen(base) + strlen(name) + 16);
	if (!path)
		return NULL;
	sprintf(path, "%s/%s-XXXXXX", base, name);
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static size_t keep(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
	size_t take = n < cap - 1 - *len ? n : cap - 1 - *len;
	memcpy(dst + *len, p, take);
	*len += take;
	dst[*len] = '\0';
	return n;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	hf_test_reply *r = ud;
	return keep(r->body, sizeof r->body, &r->len, p, sz * n);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	hf_test_reply *r = ud;
	return keep(r->headers, sizeof r->headers, &r->hlen, p, sz * n);
}

bool hf_test_http(const char *method, const char *url, const void *body, size_t body_len,
		  hf_test_reply *r)
{
	CURL *c = curl_easy_init();
	CURLcode cc;

	memset(r, 0, sizeof *r);
	if (!c)
		return false;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	return cc == CURLE_OK;
}
