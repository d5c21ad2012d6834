/* bench_coord_setup: the fleet `hashflop-bench coord` measures: a state directory with a
 * generated coordinator key, two operator keys, a trust file (fleet threshold 2), an admin token,
 * coord.json, and N nodes registered straight into the coordinator's store (hf_coord_store:
 * `hashflop-coord node add` once per node is far too slow for 100,000); then the coordinator
 * process itself (pinned to a CPU on request) and what /proc says about it.
 *
 * Invariants: tokens are 64 random hex digits; the store holds their hex SHA-256 (the contract);
 * the coordinator is our child and dies with us (PR_SET_PDEATHSIG).
 * Threading: the caller's thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_coord_setup.h"
#include "hf_coord_store.h"
#include "hf_file.h"
#include "hf_instr.h"
#include "hf_util.h"

static int failf(char *err, size_t sz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int failf(char *err, size_t sz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, sz, fmt, ap);
	va_end(ap);
	return -1;
}

static int random_hex(char out[65])
{
	uint8_t r[32];
	if (RAND_bytes(r, sizeof r) != 1)
		return -1;
	hf_hex_encode(r, sizeof r, out);
	out[64] = '\0';
	return 0;
}

static void token_hash(const char *token, char out[65])
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)token, strlen(token), d);
	hf_hex_encode(d, sizeof d, out);
	out[64] = '\0';
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	bool ok = write(fd, text, n) == (ssize_t)n;
	return close(fd) == 0 && ok ? 0 : -1;
}

static json_t *trust_entry(hf_key *k, const char *role, const char *name)
{
	char *pem = NULL;
	if (hf_key_public_pem(k, &pem, NULL) < 0)
		return NULL;
	json_t *e = json_pack("{s:s, s:s, s:s}", "role", role, "name", name, "public_key_pem", pem);
	free(pem);
	return e;
}

static int write_keys(bc_setup *s, char *err, size_t esz)
{
	char path[BC_PATH_MAX + 32];
	hf_errbuf eb;
	json_t *keys = json_array();

	if (hf_key_generate(&s->coord_key, &eb) < 0 || hf_key_generate(&s->ops[0], &eb) < 0 ||
	    hf_key_generate(&s->ops[1], &eb) < 0)
		return failf(err, esz, "key generation failed: %s", eb.msg);
	snprintf(path, sizeof path, "%s/coordinator.pem", s->dir);
	if (hf_key_write_private_pem(s->coord_key, path, &eb) < 0)
		return failf(err, esz, "%s: %s", path, eb.msg);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/operator-%d.pem", s->dir, i + 1);
		if (hf_key_write_private_pem(s->ops[i], path, &eb) < 0)
			return failf(err, esz, "%s: %s", path, eb.msg);
	}
	json_array_append_new(keys, trust_entry(s->coord_key, "coordinator", "bench-coordinator"));
	json_array_append_new(keys, trust_entry(s->ops[0], "operator", "bench-operator-1"));
	json_array_append_new(keys, trust_entry(s->ops[1], "operator", "bench-operator-2"));
	json_t *trust = json_pack("{s:o, s:i}", "keys", keys, "fleet_threshold", 2);
	snprintf(path, sizeof path, "%s/trust.json", s->dir);
	int rc = json_dump_file(trust, path, JSON_INDENT(1));
	json_decref(trust);
	if (rc != 0)
		return failf(err, esz, "cannot write %s", path);
	if (random_hex(s->admin_token) < 0)
		return failf(err, esz, "no random bytes");
	char line[80];
	snprintf(line, sizeof line, "%s\n", s->admin_token);
	snprintf(path, sizeof path, "%s/admin.token", s->dir);
	if (write_text(path, line, 0600) < 0)
		return failf(err, esz, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

static int write_config(bc_setup *s, const bc_setup_opts *o, char *err, size_t esz)
{
	char p[6][BC_PATH_MAX + 32];
	snprintf(p[0], sizeof p[0], "%s/port", s->dir);
	snprintf(p[1], sizeof p[1], "%s/coordinator.pem", s->dir);
	snprintf(p[2], sizeof p[2], "%s/trust.json", s->dir);
	snprintf(p[3], sizeof p[3], "%s/admin.token", s->dir);
	snprintf(p[4], sizeof p[4], "%s/db/coord.db", s->dir);
	snprintf(p[5], sizeof p[5], "%s/coord.json", s->dir);
	json_t *cfg = json_pack(
		"{s:s, s:{s:s, s:i, s:s}, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:s,"
		" s:{s:i, s:i, s:i, s:I, s:i, s:I}}",
		"fleet_id", o->fleet_id, "listen", "address", "127.0.0.1", "port", 0, "port_file", p[0],
		"signing_key", p[1], "trust_file", p[2], "admin_token_file", p[3], "database", p[4],
		"report_interval_s", (int)o->report_interval_s, "offline_after_s",
		(int)(o->report_interval_s * 3 + 30), "instruction_ttl_s", 600, "clock_skew_ms", 30000,
		"log_level", "info", "limits", "max_body", 16384, "max_report_body", 65536,
		"max_wait_s", 300, "max_connections", (json_int_t)o->max_connections, "threads",
		(int)o->threads, "max_nodes", (json_int_t)(o->nodes > 100000 ? o->nodes : 100000));
	int rc = cfg ? json_dump_file(cfg, p[5], JSON_INDENT(1)) : -1;
	json_decref(cfg);
	if (rc != 0)
		return failf(err, esz, "cannot write %s", p[5]);
	snprintf(s->config, sizeof s->config, "%s", p[5]);
	snprintf(s->port_file, sizeof s->port_file, "%s", p[0]);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		goto close_in;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0 || write(out, buf, (size_t)n) != n)
			goto close_out;
	}
	rc = fsync(out);
close_out:
	if (close(out) != 0)
		rc = -1;
close_in:
	close(in);
	return rc;
}

/* Adds the nodes n0000001... with fresh tokens to the store at db. */
static int add_nodes(bc_setup *s, unsigned nodes, const char *db, char *err, size_t esz)
{
	hf_errbuf eb;
	hf_coord_store *st = NULL;
	hf_coord_store_opts so = { .path = db };
	if (hf_coord_store_open_sqlite(&so, &st, &eb) < 0)
		return failf(err, esz, "the store %s: %s", db, eb.msg);
	uint64_t now = hf_wall_ms();
	for (unsigned i = 0; i < nodes; i++) {
		hf_coord_node_rec n = { .added_ms = now };
		snprintf(s->ids[i], sizeof s->ids[i], "n%07u", i + 1);
		if (random_hex(s->tokens[i]) < 0) {
			hf_coord_store_free(st);
			return failf(err, esz, "no random bytes");
		}
		hf_strlcpy(n.id, s->ids[i], sizeof n.id);
		token_hash(s->tokens[i], n.token_hash);
		if (hf_coord_store_node_add(st, &n, &eb) < 0) {
			hf_coord_store_free(st);
			return failf(err, esz, "registering %s: %s", s->ids[i], eb.msg);
		}
	}
	hf_coord_store_free(st); /* closes the database: the WAL is checkpointed into it */
	return 0;
}

/* Registers the nodes straight into the store. Each node_add is its own durable transaction
 * (about 1 ms on this disk), so a large fleet is registered into a scratch copy on tmpfs
 * (/dev/shm) and the closed database file is then copied into place. */
static int register_nodes(bc_setup *s, const bc_setup_opts *o, char *err, size_t esz)
{
	char db[BC_PATH_MAX + 32], shm[64] = "", tmpdb[128];
	uint64_t t0 = hf_mono_us();
	int rc;

	snprintf(db, sizeof db, "%s/db", s->dir);
	if (mkdir(db, 0700) != 0 && errno != EEXIST)
		return failf(err, esz, "cannot make %s: %s", db, strerror(errno));
	snprintf(db, sizeof db, "%s/db/coord.db", s->dir);
	if (o->nodes > 1000 && access("/dev/shm", W_OK) == 0) {
		snprintf(shm, sizeof shm, "/dev/shm/hashflop-bench-coord-XXXXXX");
		if (!mkdtemp(shm))
			shm[0] = '\0';
	}
	if (!shm[0]) {
		rc = add_nodes(s, o->nodes, db, err, esz);
	} else {
		snprintf(tmpdb, sizeof tmpdb, "%s/coord.db", shm);
		rc = add_nodes(s, o->nodes, tmpdb, err, esz);
		char wal[160];
		snprintf(wal, sizeof wal, "%s-wal", tmpdb);
		if (rc == 0 && access(wal, F_OK) == 0)
			rc = failf(err, esz, "%s is left after closing the store", wal);
		if (rc == 0 && copy_file(tmpdb, db) != 0)
			rc = failf(err, esz, "cannot copy %s to %s: %s", tmpdb, db, strerror(errno));
		nftw(shm, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	}
	s->register_s = (double)(hf_mono_us() - t0) / 1e6;
	return rc;
}

static int make_dir(bc_setup *s, const bc_setup_opts *o, char *err, size_t esz)
{
	if (o->dir) {
		snprintf(s->dir, sizeof s->dir, "%s", o->dir);
		if (mkdir(s->dir, 0700) != 0 && errno != EEXIST)
			return failf(err, esz, "cannot make %s: %s", s->dir, strerror(errno));
		s->keep = true;
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(s->dir, sizeof s->dir, "%s/hashflop-bench-coord-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->dir))
		return failf(err, esz, "cannot make a temporary directory in %s: %s",
			     tmp && *tmp ? tmp : "/tmp", strerror(errno));
	s->keep = o->keep;
	return 0;
}

int bc_setup_prepare(bc_setup *s, const bc_setup_opts *o, char *err, size_t esz)
{
	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->ids = calloc(o->nodes ? o->nodes : 1, sizeof *s->ids);
	s->tokens = calloc(o->nodes ? o->nodes : 1, sizeof *s->tokens);
	if (!s->ids || !s->tokens)
		return failf(err, esz, "out of memory for %u nodes", o->nodes);
	if (make_dir(s, o, err, esz) < 0 || write_keys(s, err, esz) < 0 ||
	    write_config(s, o, err, esz) < 0 || register_nodes(s, o, err, esz) < 0)
		return -1;
	/* the tokens, for a coordinator started by hand (--prepare / --url) */
	char path[BC_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/nodes.tsv", s->dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return failf(err, esz, "cannot write %s: %s", path, strerror(errno));
	for (unsigned i = 0; i < o->nodes; i++)
		fprintf(f, "%s\t%s\n", s->ids[i], s->tokens[i]);
	if (fclose(f) != 0)
		return failf(err, esz, "cannot write %s: %s", path, strerror(errno));
	s->nodes = o->nodes;
	return 0;
}

int bc_setup_load(bc_setup *s, const char *dir, unsigned nodes, char *err, size_t esz)
{
	char path[BC_PATH_MAX + 32], line[160];
	hf_errbuf eb;

	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->keep = true;
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	s->ids = calloc(nodes ? nodes : 1, sizeof *s->ids);
	s->tokens = calloc(nodes ? nodes : 1, sizeof *s->tokens);
	if (!s->ids || !s->tokens)
		return failf(err, esz, "out of memory for %u nodes", nodes);
	snprintf(path, sizeof path, "%s/nodes.tsv", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return failf(err, esz, "%s: %s (make it with --prepare)", path, strerror(errno));
	unsigned n = 0;
	while (n < nodes && fgets(line, sizeof line, f)) {
		char *tab = strchr(line, '\t');
		if (!tab || strlen(tab + 1) < 64)
			break;
		*tab = '\0';
		hf_strlcpy(s->ids[n], line, sizeof s->ids[n]);
		memcpy(s->tokens[n], tab + 1, 64);
		s->tokens[n][64] = '\0';
		n++;
	}
	fclose(f);
	if (n < nodes) {
		snprintf(err, esz, "%s holds %u nodes, fewer than --nodes %u", path, n, nodes);
		return -1;
	}
	s->nodes = nodes;
	snprintf(path, sizeof path, "%s/admin.token", dir);
	f = fopen(path, "r");
	if (!f || !fgets(line, sizeof line, f) || strlen(line) < 64) {
		if (f)
			fclose(f);
		return failf(err, esz, "%s: no admin token", path);
	}
	fclose(f);
	memcpy(s->admin_token, line, 64);
	s->admin_token[64] = '\0';
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/operator-%d.pem", dir, i + 1);
		if (hf_key_load_pem(path, &s->ops[i], &eb) < 0)
			return failf(err, esz, "%s: %s", path, eb.msg);
	}
	return 0;
}

/* ---- the coordinator process ---- */

int bc_setup_start(bc_setup *s, const char *bin, int cpu, uint64_t timeout_ms, char *err,
		   size_t esz)
{
	char log[BC_PATH_MAX + 32];
	snprintf(log, sizeof log, "%s/coord.log", s->dir);
	snprintf(s->log, sizeof s->log, "%s", log);
	unlink(s->port_file);
	uint64_t t0 = hf_mono_us();
	pid_t parent = getpid(), pid = fork();
	if (pid < 0)
		return failf(err, esz, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (cpu >= 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			sched_setaffinity(0, sizeof set, &set);
		}
		execl(bin, bin, "--config", s->config, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	uint64_t end = hf_mono_ms() + timeout_ms;
	for (;;) {
		FILE *f = fopen(s->port_file, "r");
		unsigned port = 0;
		if (f) {
			int got = fscanf(f, "%u", &port);
			fclose(f);
			if (got == 1 && port > 0 && port < 65536) {
				s->port = (uint16_t)port;
				break;
			}
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			s->pid = -1;
			return failf(err, esz, "hashflop-coord exited at start (see %s)", log);
		}
		if (hf_mono_ms() > end)
			return failf(err, esz, "hashflop-coord wrote no port file in time (see %s)", log);
		hf_sleep_ms(10);
	}
	s->start_s = (double)(hf_mono_us() - t0) / 1e6;
	return 0;
}

int bc_setup_stop(bc_setup *s, uint64_t timeout_ms)
{
	int st = 0;
	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	uint64_t end = hf_mono_ms() + timeout_ms;
	while (hf_mono_ms() < end) {
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = -1;
			return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
		}
		hf_sleep_ms(10);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &st, 0);
	s->pid = -1;
	return -1;
}

bool bc_proc_sample(pid_t pid, bc_proc *out)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, stt = 0;
	long threads = 0;
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice num_threads */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
			 "%*d %*d %ld", &ut, &stt, &threads) != 3)
		return false;
	long hz = sysconf(_SC_CLK_TCK);
	out->cpu_s = (double)(ut + stt) / (double)(hz > 0 ? hz : 100);
	out->user_s = (double)ut / (double)(hz > 0 ? hz : 100);
	out->threads = (unsigned)threads;
	out->rss_kib = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(buf, sizeof buf, f))
		if (strncmp(buf, "VmRSS:", 6) == 0)
			out->rss_kib = strtoull(buf + 6, NULL, 10);
	fclose(f);
	return true;
}


void bc_setup_free(bc_setup *s, bool remove_dir)
{
	bc_setup_stop(s, 5000);
	if (remove_dir && !s->keep && s->dir[0])
		nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	hf_key_free(s->coord_key);
	hf_key_free(s->ops[0]);
	hf_key_free(s->ops[1]);
	free(s->ids);
	free(s->tokens);
	memset(s, 0, sizeof *s);
	s->pid = -1;
}
