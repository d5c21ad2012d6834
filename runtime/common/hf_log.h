/* hf_log: leveled logging to stderr for the programs (library code never logs).
 *
 * When stderr is connected to the systemd journal (JOURNAL_STREAM matches stderr's device and
 * inode) each line starts with a syslog priority prefix ("<3>") and carries no timestamp (the
 * journal adds one); otherwise lines read "2026-11-27T14:30:00.123Z hashflopd[123] warn: ...".
 * Each line is written with one write(2), so lines from threads never interleave.
 * Threading: hf_log_init() once from main before threads start; hf_log*() from any thread.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

#include <stdbool.h>

typedef enum hf_log_level {
	HF_LOG_ERR = 3,
	HF_LOG_WARN = 4,
	HF_LOG_NOTICE = 5,
	HF_LOG_INFO = 6,
	HF_LOG_DEBUG = 7,
} hf_log_level;

/* Sets the program name and the most verbose level printed; detects the journal. */
void hf_log_init(const char *progname, hf_log_level level);
void hf_log_set_level(hf_log_level level);
hf_log_level hf_log_get_level(void);

/* Parses "err", "warn", "notice", "info", "debug"; false if unknown. */
bool hf_log_level_parse(const char *s, hf_log_level *out);
const char *hf_log_level_name(hf_log_level level);

void hf_log(hf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hf_log_err(...) hf_log(HF_LOG_ERR, __VA_ARGS__)
#define hf_log_warn(...) hf_log(HF_LOG_WARN, __VA_ARGS__)
#define hf_log_notice(...) hf_log(HF_LOG_NOTICE, __VA_ARGS__)
#define hf_log_info(...) hf_log(HF_LOG_INFO, __VA_ARGS__)
#define hf_log_debug(...) hf_log(HF_LOG_DEBUG, __VA_ARGS__)

#endif
