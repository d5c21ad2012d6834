/* hf_power_priv: what the common part of hf_power (hf_power.c) and its backends
 * (hf_power_rapl.c, hf_power_hwmon.c, hf_power_nvml.c, hf_power_estimate.c) share: the
 * backend ops table, the domain description a backend hands over at open, and the bounded,
 * cleaned sysfs readers. Not installed; nothing outside runtime/power includes it.
 *
 * Invariants: a backend only finds and reads its domains; the common part owns the accounting
 * (wrap and reset correction, integration of power-only domains, errors, detail). A backend
 * reports a reading as a raw counter in its own unit or as watts now, never as joules.
 * Threading: the common part calls a backend's functions under the hf_power lock, one at a
 * time; a backend's state needs no lock of its own.
 */
#ifndef HF_POWER_PRIV_H
#define HF_POWER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_power.h"

/* Caps: domains per source, one domain's label, the detail and problems lines. */
#define HF_POWER_MAX_DOMAINS 64
#define HF_POWER_LABEL_MAX 160
#define HF_POWER_LINE_MAX 2048

typedef enum hf_power_dom_type {
	HF_POWER_DOM_COUNTER, /* an energy counter: raw * unit_j joules, monotonic between wraps */
	HF_POWER_DOM_POWER,   /* watts now: integrated with trapezoids */
	HF_POWER_DOM_MEAN,    /* watts averaged since the previous read: integrated as rectangles */
} hf_power_dom_type;

/* One domain as a backend found it. */
typedef struct hf_power_dom_desc {
	char label[HF_POWER_LABEL_MAX]; /* cleaned: "intel-rapl:0 package-0 (energy_uj)" */
	hf_power_dom_type type;
	double unit_j;                   /* COUNTER: joules per raw unit (1e-6 for uJ) */
	uint64_t wrap;                   /* COUNTER: the counter's maximum (it wraps to 0 after it);
					  * 0: no wrap expected, a decrease is a reset */
	size_t bidx;                     /* the backend's own index for read() */
} hf_power_dom_desc;

typedef struct hf_power_found {
	hf_power_dom_desc dom[HF_POWER_MAX_DOMAINS];
	size_t n;
	size_t dropped;                  /* found but over HF_POWER_MAX_DOMAINS */
	const char *boundary;            /* static: "package", "package+dram", "chip", ... */
	bool estimated;
	char skipped[HF_POWER_LINE_MAX]; /* domains passed over and why ("; " between) */
} hf_power_found;

/* One reading of one domain. */
typedef struct hf_power_sample {
	uint64_t raw;                    /* COUNTER */
	double watts;                    /* POWER, MEAN */
} hf_power_sample;

typedef struct hf_power_backend {
	hf_power_kind kind;
	/* Finds the domains and fills *found (state: the backend's, freed by close). Returns 0,
	 * or HF_ENOTFOUND (HF_EUNSUPPORTED, HF_EINVAL ...) with eb saying what was tried and why
	 * it failed; on failure *state is freed already. */
	int (*open)(const hf_power_opts *o, void **state, hf_power_found *found, hf_errbuf *eb);
	/* Reads domain bidx now. Failure: a negative HF_E* with eb naming the file or call. */
	int (*read)(void *state, size_t bidx, hf_power_sample *s, hf_errbuf *eb);
	/* Power limits; NULL: HF_EUNSUPPORTED. */
	int (*limit_get)(void *state, double *min_w, double *max_w, double *cur_w, hf_errbuf *eb);
	int (*limit_set)(void *state, double watts, hf_errbuf *eb);
	void (*close)(void *state);
} hf_power_backend;

extern const hf_power_backend hf_power_priv_rapl;
extern const hf_power_backend hf_power_priv_hwmon;
extern const hf_power_backend hf_power_priv_nvml;
extern const hf_power_backend hf_power_priv_estimate;

/* Reads at most sz - 1 bytes of a small file (sysfs attribute) into buf, NUL-terminated,
 * without cleaning (numbers). Returns 0, or a negative HF_E* with *err the errno (0 when the
 * content was the problem) and eb naming the file. O_NONBLOCK: a fifo never blocks. */
int hf_power_priv_read_raw(const char *path, char *buf, size_t sz, int *err, hf_errbuf *eb);
/* The same for text shown to people: one line, trailing whitespace cut, hf_text_clean'ed. */
int hf_power_priv_read_text(const char *path, char *buf, size_t sz, hf_errbuf *eb);
/* A decimal unsigned integer file (trailing whitespace allowed). HF_EPARSE when it is not one. */
int hf_power_priv_read_u64(const char *path, uint64_t *v, int *err, hf_errbuf *eb);
/* A path cleaned for a message (paths contain readdir names, which are outside strings). */
void hf_power_priv_clean_path(char *dst, size_t dstsz, const char *path);
/* opts->sysfs_root or "/sys". */
const char *hf_power_priv_sysfs_root(const hf_power_opts *o);
/* Sorted names in dir for which keep(name) is true; *names malloc'ed (free with
 * hf_power_priv_names_free). HF_ENOTFOUND when dir does not exist. */
int hf_power_priv_list_dir(const char *dir, bool (*keep)(const char *name), char ***names,
			   size_t *n, hf_errbuf *eb);
void hf_power_priv_names_free(char **names, size_t n);
/* Appends "why" (formatted, cleaned, bounded) to found->skipped. */
void hf_power_priv_skip(hf_power_found *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Sets a found domain's label (formatted, cleaned, bounded). */
void hf_power_priv_label(hf_power_dom_desc *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
