/* hf_power_rapl: the RAPL backend: powercap sysfs energy counters (Intel, and AMD's under the
 * same intel-rapl names), per package and, unless excluded, per dram subdomain.
 *
 * Invariants: only domains whose "name" says package-N (top level) or dram (subdomain) are
 * read: core and uncore subdomains are inside their package, psys covers the whole platform
 * and intel-rapl-mmio repeats the package, so reading them too would count twice. Each
 * domain's energy_uj is tried once at open; one readable by root only is skipped with a
 * message that says so. A counter wraps at max_energy_range_uj (the common part corrects it).
 * Threading: called under the hf_power lock only (see hf_power_priv.h).
 */
#include "hf_power_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

typedef struct rapl {
	char path[HF_POWER_MAX_DOMAINS][PATH_MAX]; /* energy_uj per backend index */
	size_t n;
} rapl;

static bool rapl_entry(const char *name)
{
	/* "intel-rapl:N" or "intel-rapl:N:M" (not "intel-rapl" itself, not intel-rapl-mmio) */
	if (strncmp(name, "intel-rapl:", 11) != 0)
		return false;
	const char *s = name + 11;
	int colons = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s == ':') {
			if (s[1] == '\0' || s[1] == ':' || ++colons > 1)
				return false;
		} else if (*s < '0' || *s > '9') {
			return false;
		}
	}
	return true;
}

static int rapl_read(void *state, size_t bidx, hf_power_sample *s, hf_errbuf *eb)
{
	rapl *r = state;
	int err = 0;
	if (bidx >= HF_POWER_MAX_DOMAINS)
		return hf_fail(eb, HF_EINVAL, "no domain %zu", bidx);
	int rc = hf_power_priv_read_u64(r->path[bidx], &s->raw, &err, eb);
	if (rc && (err == EACCES || err == EPERM)) {
		char cp[512];
		hf_power_priv_clean_path(cp, sizeof(cp), r->path[bidx]);
		return hf_fail(eb, HF_EIO,
			       "%s is readable by root only (kernels >= 5.10 restrict energy_uj: run "
			       "as root, or grant read access with a udev rule or chmod)",
			       cp);
	}
	return rc;
}

/* Adds domain dir (its energy_uj and max_energy_range_uj) if its first read works. */
static void rapl_add(rapl *r, hf_power_found *f, const char *dir, const char *entry,
		     const char *name)
{
	if (f->n >= HF_POWER_MAX_DOMAINS) {
		f->dropped++;
		return;
	}
	char path[PATH_MAX];
	snprintf(r->path[r->n], sizeof(r->path[r->n]), "%s/%s/energy_uj", dir, entry);
	hf_errbuf eb;
	hf_errbuf_clear(&eb);
	hf_power_sample s;
	if (rapl_read(r, r->n, &s, &eb) != 0) {
		hf_power_priv_skip(f, "%s", eb.msg);
		return;
	}
	hf_power_dom_desc *d = &f->dom[f->n];
	memset(d, 0, sizeof(*d));
	d->type = HF_POWER_DOM_COUNTER;
	d->unit_j = 1e-6;
	d->bidx = r->n;
	snprintf(path, sizeof(path), "%s/%s/max_energy_range_uj", dir, entry);
	int err;
	uint64_t range = 0;
	if (hf_power_priv_read_u64(path, &range, &err, &eb) == 0 && range > 0) {
		d->wrap = range;
		hf_power_priv_label(d, "%s %s (energy_uj)", entry, name);
	} else {
		hf_power_priv_label(d, "%s %s (energy_uj; no max_energy_range_uj: a decrease "
				       "counts as a reset)", entry, name);
	}
	r->n++;
	f->n++;
}

static int rapl_open(const hf_power_opts *o, void **state, hf_power_found *f, hf_errbuf *eb)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/class/powercap", hf_power_priv_sysfs_root(o));
	char **names = NULL;
	size_t nn = 0;
	int rc = hf_power_priv_list_dir(dir, rapl_entry, &names, &nn, eb);
	if (rc)
		return rc == HF_ENOTFOUND ? hf_fail_prefix(eb, rc, "no powercap (RAPL) driver") : rc;
	rapl *r = calloc(1, sizeof(*r));
	if (!r) {
		hf_power_priv_names_free(names, nn);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	bool dram = false;
	for (size_t i = 0; i < nn; i++) {
		char path[PATH_MAX], name[64];
		bool sub = strchr(names[i] + 11, ':') != NULL;
		snprintf(path, sizeof(path), "%s/%s/name", dir, names[i]);
		hf_errbuf neb;
		hf_errbuf_clear(&neb);
		if (hf_power_priv_read_text(path, name, sizeof(name), &neb) != 0) {
			hf_power_priv_skip(f, "%s", neb.msg);
			continue;
		}
		bool pkg = !sub && strncmp(name, "package", 7) == 0;
		bool is_dram = sub && strcmp(name, "dram") == 0 && !o->exclude_dram;
		if (!pkg && !is_dram)
			continue; /* core, uncore, psys, or dram excluded: see the top comment */
		size_t before = f->n;
		rapl_add(r, f, dir, names[i], name);
		dram |= is_dram && f->n > before;
	}
	hf_power_priv_names_free(names, nn);
	if (f->n == 0) {
		char cp[512];
		hf_power_priv_clean_path(cp, sizeof(cp), dir);
		rc = f->skipped[0]
			     ? hf_fail(eb, HF_ENOTFOUND, "%s", f->skipped)
			     : hf_fail(eb, HF_ENOTFOUND, "no package domain under %s", cp);
		free(r);
		return rc;
	}
	f->boundary = dram ? "package+dram" : "package";
	*state = r;
	return 0;
}

static void rapl_close(void *state)
{
	free(state);
}

const hf_power_backend hf_power_priv_rapl = {
	.kind = HF_POWER_RAPL,
	.open = rapl_open,
	.read = rapl_read,
	.close = rapl_close,
};
