/* hf_log: leveled stderr logging with journal detection.
 * Invariants: one write(2) per line; lines are capped at 4 KiB (longer ones are cut, marked "...").
 * Threading: the settings below are written by hf_log_init()/hf_log_set_level() (atomic level)
 * and read by any thread.
 */
#include "hf_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char log_prog[64] = "hashflop";
static atomic_int log_level = HF_LOG_INFO;
static bool log_journal;

static const char *const level_names[] = {
	[HF_LOG_ERR] = "err", [HF_LOG_WARN] = "warn", [HF_LOG_NOTICE] = "notice",
	[HF_LOG_INFO] = "info", [HF_LOG_DEBUG] = "debug",
};

static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void hf_log_init(const char *progname, hf_log_level level)
{
	if (progname) {
		const char *slash = strrchr(progname, '/');
		snprintf(log_prog, sizeof log_prog, "%s", slash ? slash + 1 : progname);
	}
	hf_log_set_level(level);
	log_journal = stderr_is_journal();
}

void hf_log_set_level(hf_log_level level)
{
	if (level < HF_LOG_ERR)
		level = HF_LOG_ERR;
	if (level > HF_LOG_DEBUG)
		level = HF_LOG_DEBUG;
	atomic_store(&log_level, (int)level);
}

hf_log_level hf_log_get_level(void)
{
	return (hf_log_level)atomic_load(&log_level);
}

bool hf_log_level_parse(const char *s, hf_log_level *out)
{
	for (int l = HF_LOG_ERR; l <= HF_LOG_DEBUG; l++) {
		if (s && strcmp(s, level_names[l]) == 0) {
			*out = (hf_log_level)l;
			return true;
		}
	}
	return false;
}

const char *hf_log_level_name(hf_log_level level)
{
	if (level < HF_LOG_ERR || level > HF_LOG_DEBUG)
		return "?";
	return level_names[level];
}

void hf_log(hf_log_level level, const char *fmt, ...)
{
	char line[4096];
	size_t n = 0;
	va_list ap;
	int r;

	if ((int)level > atomic_load(&log_level))
		return;
	if (log_journal) {
		r = snprintf(line, sizeof line, "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000000L, log_prog, (long)getpid(),
			     hf_log_level_name(level));
	}
	n = r > 0 ? (size_t)r : 0;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	if ((size_t)r >= sizeof line - n - 1) {
		n = sizeof line - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else {
		n += (size_t)r;
	}
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}
