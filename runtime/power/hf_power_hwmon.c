/* hf_power_hwmon: the hwmon backend: energyN_input counters (uJ) of every hwmon chip, or, on a
 * chip without one, its powerN_average / powerN_input (uW) integrated by the common part.
 *
 * Invariants: one chip is read either by its energy channels or by its power channels, never
 * both (they measure the same thing). A chip whose energy labels include socket totals
 * ("Esocket*", amd_energy) is read by those only: its per-core counters are inside them.
 * Every channel is read once at open; an unreadable one is skipped and named. hwmon energy is
 * 64-bit: a decrease is a reset (counted), not a wrap.
 * Threading: called under the hf_power lock only (see hf_power_priv.h).
 */
#include "hf_power_priv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hwmon {
	char path[HF_POWER_MAX_DOMAINS][PATH_MAX];
	bool power[HF_POWER_MAX_DOMAINS]; /* uW now, else an energy counter in uJ */
	size_t n;
} hwmon;

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool hwmon_entry(const char *name)
{
	return strncmp(name, "hwmon", 5) == 0 && all_digits(name + 5);
}

/* energyN_input, powerN_average, powerN_input */
static bool channel_file(const char *name)
{
	const char *rest;
	if (strncmp(name, "energy", 6) == 0)
		rest = name + 6;
	else if (strncmp(name, "power", 5) == 0)
		rest = name + 5;
	else
		return false;
	size_t digits = strspn(rest, "0123456789");
	if (digits == 0 || digits > 6)
		return false;
	if (rest[digits] != '_')
		return false;
	if (name[0] == 'e')
		return strcmp(rest + digits, "_input") == 0;
	return strcmp(rest + digits, "_input") == 0 || strcmp(rest + digits, "_average") == 0;
}

static int hwmon_read(void *state, size_t bidx, hf_power_sample *s, hf_errbuf *eb)
{
	hwmon *h = state;
	int err = 0;
	if (bidx >= HF_POWER_MAX_DOMAINS)
		return hf_fail(eb, HF_EINVAL, "no channel %zu", bidx);
	uint64_t v = 0;
	int rc = hf_power_priv_read_u64(h->path[bidx], &v, &err, eb);
	if (rc)
		return rc;
	if (h->power[bidx])
		s->watts = (double)v * 1e-6;
	else
		s->raw = v;
	return 0;
}

static void hwmon_add(hwmon *h, hf_power_found *f, const char *chipdir, const char *chip,
		      const char *chipname, const char *file, const char *label, bool power)
{
	if (f->n >= HF_POWER_MAX_DOMAINS) {
		f->dropped++;
		return;
	}
	snprintf(h->path[h->n], sizeof(h->path[h->n]), "%s/%s", chipdir, file);
	h->power[h->n] = power;
	hf_errbuf eb;
	hf_errbuf_clear(&eb);
	hf_power_sample s;
	if (hwmon_read(h, h->n, &s, &eb) != 0) {
		hf_power_priv_skip(f, "%s", eb.msg);
		return;
	}
	hf_power_dom_desc *d = &f->dom[f->n];
	memset(d, 0, sizeof(*d));
	d->type = power ? HF_POWER_DOM_POWER : HF_POWER_DOM_COUNTER;
	d->unit_j = 1e-6;
	d->bidx = h->n;
	hf_power_priv_label(d, "%s %s %s%s%s (%s)", chip, chipname, file, label[0] ? " " : "",
			    label, power ? "power, integrated" : "energy counter");
	h->n++;
	f->n++;
}

/* The label of channel file ("energy3_input" -> energy3_label), "" when none. */
static void channel_label(const char *chipdir, const char *file, char *out, size_t sz)
{
	char path[PATH_MAX], base[32];
	size_t stem = strcspn(file, "_");
	snprintf(base, sizeof(base), "%.*s", (int)(stem < 24 ? stem : 24), file);
	snprintf(path, sizeof(path), "%s/%s_label", chipdir, base);
	out[0] = '\0';
	if (hf_power_priv_read_text(path, out, sz, NULL) != 0)
		out[0] = '\0';
}

/* Adds one chip's channels: energy (socket totals only, when labelled so), else power. */
static void hwmon_chip(hwmon *h, hf_power_found *f, const char *dir, const char *chip)
{
	char chipdir[PATH_MAX], path[PATH_MAX], name[64];
	snprintf(chipdir, sizeof(chipdir), "%s/%s", dir, chip);
	snprintf(path, sizeof(path), "%s/name", chipdir);
	if (hf_power_priv_read_text(path, name, sizeof(name), NULL) != 0 || !name[0])
		snprintf(name, sizeof(name), "(no name)");
	char **files = NULL;
	size_t nf = 0;
	if (hf_power_priv_list_dir(chipdir, channel_file, &files, &nf, NULL) != 0)
		return;
	bool energy = false, sockets = false;
	for (size_t i = 0; i < nf; i++) {
		if (files[i][0] != 'e')
			continue;
		char label[64];
		energy = true;
		channel_label(chipdir, files[i], label, sizeof(label));
		sockets |= strncmp(label, "Esocket", 7) == 0;
	}
	for (size_t i = 0; i < nf; i++) {
		char label[64];
		const char *file = files[i];
		if (energy != (file[0] == 'e'))
			continue;
		if (!energy && strstr(file, "_input")) {
			/* powerN_input only where the chip has no powerN_average */
			char avg[64];
			size_t stem = strcspn(file, "_");
			snprintf(avg, sizeof(avg), "%.*s_average", (int)(stem < 24 ? stem : 24), file);
			bool has_avg = false;
			for (size_t j = 0; j < nf; j++)
				has_avg |= strcmp(files[j], avg) == 0;
			if (has_avg)
				continue;
		}
		channel_label(chipdir, file, label, sizeof(label));
		if (sockets && strncmp(label, "Esocket", 7) != 0)
			continue;
		hwmon_add(h, f, chipdir, chip, name, file, label, !energy);
	}
	hf_power_priv_names_free(files, nf);
}

static int hwmon_open(const hf_power_opts *o, void **state, hf_power_found *f, hf_errbuf *eb)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/class/hwmon", hf_power_priv_sysfs_root(o));
	char **chips = NULL;
	size_t nc = 0;
	int rc = hf_power_priv_list_dir(dir, hwmon_entry, &chips, &nc, eb);
	if (rc)
		return rc;
	hwmon *h = calloc(1, sizeof(*h));
	if (!h) {
		hf_power_priv_names_free(chips, nc);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nc; i++)
		hwmon_chip(h, f, dir, chips[i]);
	hf_power_priv_names_free(chips, nc);
	if (f->n == 0) {
		char cp[512];
		hf_power_priv_clean_path(cp, sizeof(cp), dir);
		if (f->skipped[0])
			rc = hf_fail(eb, HF_ENOTFOUND, "%s", f->skipped);
		else
			rc = hf_fail(eb, HF_ENOTFOUND,
				     "no energyN_input or powerN_average/powerN_input in %zu chips "
				     "under %s", nc, cp);
		free(h);
		return rc;
	}
	f->boundary = "chip";
	*state = h;
	return 0;
}

static void hwmon_close(void *state)
{
	free(state);
}

const hf_power_backend hf_power_priv_hwmon = {
	.kind = HF_POWER_HWMON,
	.open = hwmon_open,
	.read = hwmon_read,
	.close = hwmon_close,
};
