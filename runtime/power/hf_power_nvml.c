/* hf_power_nvml: the NVML backend: libnvidia-ml.so.1 (or opts.nvml_library) loaded with dlopen
 * at run time, never a build dependency; per GPU the total energy counter (mJ) where the
 * board has one, else the power now (mW) integrated by the common part; power limits.
 *
 * Invariants: the few NVML types used are declared here with nvml.h's layout (nvmlPciInfo_t:
 * busIdLegacy[16], five unsigned ints, busId[32]; checked by static asserts); every string
 * NVML returns (names, bus ids, error strings) is cleaned before it is kept. A GPU is matched
 * to opts.pci_bus_id by value (domain, bus, device, function), so "00000000:19:00.0",
 * "0000:19:00.0" and "19:00.0" name the same GPU, in either case. nvmlInit_v2 succeeded
 * exactly when nvmlShutdown is owed.
 * Threading: called under the hf_power lock only (see hf_power_priv.h). NVML itself is
 * thread-safe; the lock only keeps one call at a time per source.
 */
#include "hf_power_priv.h"

#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_text.h"

typedef int nvml_ret; /* nvmlReturn_t */
typedef struct nvml_device_opaque *nvml_dev; /* nvmlDevice_t */

enum {
	NVML_OK = 0,
	NVML_NOT_SUPPORTED = 3,
	NVML_NO_PERMISSION = 4,
};

/* nvmlPciInfo_t, as in nvml.h (the v2 and v3 calls fill the same struct). */
typedef struct nvml_pci {
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
} nvml_pci;
_Static_assert(offsetof(nvml_pci, domain) == 16, "nvmlPciInfo_t.domain at 16");
_Static_assert(offsetof(nvml_pci, bus_id) == 36, "nvmlPciInfo_t.busId at 36");
_Static_assert(sizeof(nvml_pci) == 68, "nvmlPciInfo_t is 68 bytes");

#define NVML_NAME_MAX 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */

typedef struct nvml_api {
	nvml_ret (*init)(void);
	nvml_ret (*shutdown)(void);
	nvml_ret (*count)(unsigned int *);
	nvml_ret (*handle)(unsigned int, nvml_dev *);
	nvml_ret (*pci)(nvml_dev, nvml_pci *);
	nvml_ret (*name)(nvml_dev, char *, unsigned int);
	nvml_ret (*energy)(nvml_dev, unsigned long long *);
	nvml_ret (*power)(nvml_dev, unsigned int *);
	nvml_ret (*lim_range)(nvml_dev, unsigned int *, unsigned int *);
	nvml_ret (*lim_get)(nvml_dev, unsigned int *);
	nvml_ret (*lim_set)(nvml_dev, unsigned int);
	const char *(*errstr)(nvml_ret);
} nvml_api;

typedef struct nvml_gpu {
	nvml_dev dev;
	unsigned index;
	bool energy; /* total energy counter, else power */
} nvml_gpu;

typedef struct nvml {
	void *lib;
	nvml_api api;
	bool inited;
	nvml_gpu gpu[HF_POWER_MAX_DOMAINS];
	size_t n;
} nvml;

typedef struct pci_addr {
	unsigned long domain;
	unsigned bus, dev, fn;
} pci_addr;

/* ---- helpers ---- */

static const char *err_text(const nvml *v, nvml_ret r, char *buf, size_t sz)
{
	const char *s = v->api.errstr ? v->api.errstr(r) : NULL;
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s (NVML error %d)", s ? s : "unknown error", r);
	hf_text_clean(buf, sz, tmp, strlen(tmp));
	return buf;
}

static bool hex_field(const char **s, size_t maxdigits, unsigned long max, char end,
		      unsigned long *out)
{
	unsigned long v = 0;
	size_t n = 0;
	const char *p = *s;
	for (; *p && *p != end; p++, n++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			return false;
		if (n >= maxdigits)
			return false;
		v = v * 16 + (unsigned long)d;
	}
	if (n == 0 || v > max || *p != end)
		return false;
	*s = end ? p + 1 : p;
	*out = v;
	return true;
}

/* "DDDDDDDD:BB:DD.F", "DDDD:BB:DD.F" or "BB:DD.F" (hex, either case). */
static bool pci_parse(const char *s, pci_addr *a)
{
	unsigned long d = 0, b, dv, f;
	int colons = 0;
	for (const char *p = s; *p; p++)
		colons += *p == ':';
	if (colons == 2 && !hex_field(&s, 8, 0xfffffffful, ':', &d))
		return false;
	if (colons != 1 && colons != 2)
		return false;
	if (!hex_field(&s, 2, 0xff, ':', &b) || !hex_field(&s, 2, 0x1f, '.', &dv) ||
	    !hex_field(&s, 1, 7, '\0', &f))
		return false;
	a->domain = d;
	a->bus = (unsigned)b;
	a->dev = (unsigned)dv;
	a->fn = (unsigned)f;
	return true;
}

static bool pci_eq(const pci_addr *x, const pci_addr *y)
{
	return x->domain == y->domain && x->bus == y->bus && x->dev == y->dev && x->fn == y->fn;
}

/* ---- loading ---- */

static void *sym(void *lib, const char *name)
{
	dlerror();
	return dlsym(lib, name);
}

/* Stores dlsym's object pointer into a function pointer without the ISO C cast. */
#define NVML_SYM(lib, field, name) \
	do { \
		void *p_ = sym((lib), (name)); \
		memcpy(&(field), &p_, sizeof(field)); \
	} while (0)

static int nvml_load(nvml *v, const char *path, hf_errbuf *eb)
{
	char cp[512], msg[256];
	hf_power_priv_clean_path(cp, sizeof(cp), path);
	dlerror();
	v->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!v->lib) {
		const char *e = dlerror();
		hf_text_clean(msg, sizeof(msg), e ? e : "unknown", e ? strlen(e) : 7);
		return hf_fail(eb, HF_EUNSUPPORTED, "cannot load %s: %s", cp, msg);
	}
	nvml_api *a = &v->api;
	NVML_SYM(v->lib, a->init, "nvmlInit_v2");
	NVML_SYM(v->lib, a->shutdown, "nvmlShutdown");
	NVML_SYM(v->lib, a->count, "nvmlDeviceGetCount_v2");
	NVML_SYM(v->lib, a->handle, "nvmlDeviceGetHandleByIndex_v2");
	NVML_SYM(v->lib, a->pci, "nvmlDeviceGetPciInfo_v3");
	if (!a->pci)
		NVML_SYM(v->lib, a->pci, "nvmlDeviceGetPciInfo_v2");
	NVML_SYM(v->lib, a->name, "nvmlDeviceGetName");
	NVML_SYM(v->lib, a->energy, "nvmlDeviceGetTotalEnergyConsumption");
	NVML_SYM(v->lib, a->power, "nvmlDeviceGetPowerUsage");
	NVML_SYM(v->lib, a->lim_range, "nvmlDeviceGetPowerManagementLimitConstraints");
	NVML_SYM(v->lib, a->lim_get, "nvmlDeviceGetPowerManagementLimit");
	NVML_SYM(v->lib, a->lim_set, "nvmlDeviceSetPowerManagementLimit");
	NVML_SYM(v->lib, a->errstr, "nvmlErrorString");
	const char *missing = !a->init       ? "nvmlInit_v2"
			      : !a->shutdown ? "nvmlShutdown"
			      : !a->count    ? "nvmlDeviceGetCount_v2"
			      : !a->handle   ? "nvmlDeviceGetHandleByIndex_v2"
			      : !a->pci      ? "nvmlDeviceGetPciInfo_v3 (or _v2)"
			      : !a->name     ? "nvmlDeviceGetName"
			      : !a->power    ? "nvmlDeviceGetPowerUsage"
			      : !a->errstr   ? "nvmlErrorString"
					     : NULL;
	if (missing)
		return hf_fail(eb, HF_EUNSUPPORTED, "%s has no %s", cp, missing);
	return 0;
}

static void nvml_close(void *state)
{
	nvml *v = state;
	if (!v)
		return;
	if (v->inited)
		v->api.shutdown();
	if (v->lib)
		dlclose(v->lib);
	free(v);
}

/* ---- open ---- */

/* Adds GPU i when it matches want (NULL: every GPU); seen collects the bus ids passed over. */
static void nvml_gpu_add(nvml *v, hf_power_found *f, unsigned i, const pci_addr *want,
			 char *seen, size_t seensz)
{
	char why[160], name[NVML_NAME_MAX], raw[NVML_NAME_MAX], busid[40];
	nvml_dev dev = NULL;
	nvml_ret r = v->api.handle(i, &dev);
	if (r != NVML_OK) {
		hf_power_priv_skip(f, "GPU %u: nvmlDeviceGetHandleByIndex_v2: %s", i,
				   err_text(v, r, why, sizeof(why)));
		return;
	}
	nvml_pci pci;
	memset(&pci, 0, sizeof(pci));
	r = v->api.pci(dev, &pci);
	if (r != NVML_OK) {
		hf_power_priv_skip(f, "GPU %u: nvmlDeviceGetPciInfo: %s", i,
				   err_text(v, r, why, sizeof(why)));
		return;
	}
	pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
	pci.bus_id_legacy[sizeof(pci.bus_id_legacy) - 1] = '\0';
	const char *bid = pci.bus_id[0] ? pci.bus_id : pci.bus_id_legacy;
	hf_text_clean(busid, sizeof(busid), bid, strlen(bid));
	if (want) {
		pci_addr have;
		if (!pci_parse(bid, &have)) {
			have = (pci_addr){ .domain = pci.domain, .bus = pci.bus, .dev = pci.device };
		}
		if (!pci_eq(&have, want)) {
			size_t len = strlen(seen);
			snprintf(seen + len, seensz - len, "%s%s", len ? ", " : "", busid);
			return;
		}
	}
	memset(raw, 0, sizeof(raw));
	if (v->api.name(dev, raw, sizeof(raw)) != NVML_OK)
		snprintf(raw, sizeof(raw), "(no name)");
	raw[sizeof(raw) - 1] = '\0';
	hf_text_clean(name, sizeof(name), raw, strlen(raw));
	unsigned long long mj = 0;
	unsigned int mw = 0;
	bool energy = false;
	if (v->api.energy) {
		r = v->api.energy(dev, &mj);
		energy = r == NVML_OK;
		if (r != NVML_OK && r != NVML_NOT_SUPPORTED) {
			hf_power_priv_skip(f, "GPU %u %s: nvmlDeviceGetTotalEnergyConsumption: %s", i,
					   busid, err_text(v, r, why, sizeof(why)));
			return;
		}
	}
	if (!energy && (r = v->api.power(dev, &mw)) != NVML_OK) {
		hf_power_priv_skip(f, "GPU %u %s: nvmlDeviceGetPowerUsage: %s", i, busid,
				   err_text(v, r, why, sizeof(why)));
		return;
	}
	if (f->n >= HF_POWER_MAX_DOMAINS) {
		f->dropped++;
		return;
	}
	hf_power_dom_desc *d = &f->dom[f->n];
	memset(d, 0, sizeof(*d));
	d->type = energy ? HF_POWER_DOM_COUNTER : HF_POWER_DOM_POWER;
	d->unit_j = 1e-3;
	d->bidx = v->n;
	hf_power_priv_label(d, "nvml GPU %u %s %s (%s)", i, name, busid,
			    energy ? "total energy" : "power, integrated");
	v->gpu[v->n] = (nvml_gpu){ .dev = dev, .index = i, .energy = energy };
	v->n++;
	f->n++;
}

static int nvml_open(const hf_power_opts *o, void **state, hf_power_found *f, hf_errbuf *eb)
{
	pci_addr want;
	const char *bus = o->pci_bus_id && o->pci_bus_id[0] ? o->pci_bus_id : NULL;
	char shown[64], why[160];
	if (bus) {
		hf_text_clean(shown, sizeof(shown), bus, strlen(bus));
		if (!pci_parse(bus, &want))
			return hf_fail(eb, HF_EINVAL,
				       "pci_bus_id \"%s\" is not a PCI bus id (DOMAIN:BUS:DEVICE.FUNCTION "
				       "in hex, e.g. 0000:19:00.0)", shown);
	}
	nvml *v = calloc(1, sizeof(*v));
	if (!v)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	int rc = nvml_load(v, o->nvml_library && o->nvml_library[0] ? o->nvml_library
								    : "libnvidia-ml.so.1", eb);
	if (rc)
		goto fail;
	nvml_ret r = v->api.init();
	if (r != NVML_OK) {
		rc = hf_fail(eb, HF_ENOTFOUND, "nvmlInit_v2: %s", err_text(v, r, why, sizeof(why)));
		goto fail;
	}
	v->inited = true;
	unsigned count = 0;
	r = v->api.count(&count);
	if (r != NVML_OK) {
		rc = hf_fail(eb, HF_ENOTFOUND, "nvmlDeviceGetCount_v2: %s",
			     err_text(v, r, why, sizeof(why)));
		goto fail;
	}
	char seen[256] = "";
	for (unsigned i = 0; i < count && i < 1024; i++)
		nvml_gpu_add(v, f, i, bus ? &want : NULL, seen, sizeof(seen));
	if (f->n == 0) {
		if (f->skipped[0])
			rc = hf_fail(eb, HF_ENOTFOUND, "%s", f->skipped);
		else if (bus)
			rc = hf_fail(eb, HF_ENOTFOUND, "no GPU with PCI bus id %s (found: %s)", shown,
				     seen[0] ? seen : "none");
		else
			rc = hf_fail(eb, HF_ENOTFOUND, "no GPU (nvmlDeviceGetCount_v2 says %u)",
				     count);
		goto fail;
	}
	f->boundary = "board";
	*state = v;
	return 0;
fail:
	nvml_close(v);
	return rc;
}

static int nvml_read(void *state, size_t bidx, hf_power_sample *s, hf_errbuf *eb)
{
	nvml *v = state;
	char why[160];
	if (bidx >= v->n)
		return hf_fail(eb, HF_EINVAL, "no GPU %zu", bidx);
	nvml_gpu *g = &v->gpu[bidx];
	if (g->energy) {
		unsigned long long mj = 0;
		nvml_ret r = v->api.energy(g->dev, &mj);
		if (r != NVML_OK)
			return hf_fail(eb, HF_EIO, "GPU %u: nvmlDeviceGetTotalEnergyConsumption: %s",
				       g->index, err_text(v, r, why, sizeof(why)));
		s->raw = mj;
		return 0;
	}
	unsigned int mw = 0;
	nvml_ret r = v->api.power(g->dev, &mw);
	if (r != NVML_OK)
		return hf_fail(eb, HF_EIO, "GPU %u: nvmlDeviceGetPowerUsage: %s", g->index,
			       err_text(v, r, why, sizeof(why)));
	s->watts = (double)mw * 1e-3;
	return 0;
}

/* ---- limits ---- */

static int limit_fail(const nvml *v, nvml_ret r, const char *call, unsigned gpu, hf_errbuf *eb)
{
	char why[160];
	err_text(v, r, why, sizeof(why));
	if (r == NVML_NO_PERMISSION)
		return hf_fail(eb, HF_EREFUSED, "nvml GPU %u: %s: %s (power limits need root)", gpu,
			       call, why);
	if (r == NVML_NOT_SUPPORTED)
		return hf_fail(eb, HF_EUNSUPPORTED, "nvml GPU %u: %s: %s", gpu, call, why);
	return hf_fail(eb, HF_EIO, "nvml GPU %u: %s: %s", gpu, call, why);
}

static int gpu_range(const nvml *v, const nvml_gpu *g, unsigned *lo, unsigned *hi,
		     hf_errbuf *eb)
{
	nvml_ret r = v->api.lim_range(g->dev, lo, hi);
	if (r != NVML_OK)
		return limit_fail(v, r, "nvmlDeviceGetPowerManagementLimitConstraints", g->index, eb);
	return 0;
}

/* Per GPU: with several, the range every one accepts and the highest limit in force. */
static int nvml_limit_get(void *state, double *min_w, double *max_w, double *cur_w,
			  hf_errbuf *eb)
{
	nvml *v = state;
	if (!v->api.lim_range || !v->api.lim_get)
		return hf_fail(eb, HF_EUNSUPPORTED, "nvml: the library has no power limit calls");
	unsigned lo_all = 0, hi_all = ~0u, cur_all = 0;
	for (size_t i = 0; i < v->n; i++) {
		unsigned lo = 0, hi = 0, cur = 0;
		int rc = gpu_range(v, &v->gpu[i], &lo, &hi, eb);
		if (rc)
			return rc;
		nvml_ret r = v->api.lim_get(v->gpu[i].dev, &cur);
		if (r != NVML_OK)
			return limit_fail(v, r, "nvmlDeviceGetPowerManagementLimit",
					  v->gpu[i].index, eb);
		lo_all = lo > lo_all ? lo : lo_all;
		hi_all = hi < hi_all ? hi : hi_all;
		cur_all = cur > cur_all ? cur : cur_all;
	}
	*min_w = lo_all * 1e-3;
	*max_w = hi_all * 1e-3;
	*cur_w = cur_all * 1e-3;
	return 0;
}

static int nvml_limit_set(void *state, double watts, hf_errbuf *eb)
{
	nvml *v = state;
	if (!v->api.lim_range || !v->api.lim_set)
		return hf_fail(eb, HF_EUNSUPPORTED, "nvml: the library has no power limit calls");
	unsigned mw = (unsigned)llround(watts * 1000.0);
	if (watts * 1000.0 > 4e9)
		return hf_fail(eb, HF_ERANGE, "nvml: limit %g W is out of range", watts);
	for (size_t i = 0; i < v->n; i++) {
		unsigned lo = 0, hi = 0;
		int rc = gpu_range(v, &v->gpu[i], &lo, &hi, eb);
		if (rc)
			return rc;
		if (mw < lo || mw > hi)
			return hf_fail(eb, HF_ERANGE, "nvml GPU %u: limit %g W outside [%g, %g] W",
				       v->gpu[i].index, watts, lo * 1e-3, hi * 1e-3);
	}
	for (size_t i = 0; i < v->n; i++) {
		nvml_ret r = v->api.lim_set(v->gpu[i].dev, mw);
		if (r != NVML_OK)
			return limit_fail(v, r, "nvmlDeviceSetPowerManagementLimit", v->gpu[i].index,
					  eb);
	}
	return 0;
}

const hf_power_backend hf_power_priv_nvml = {
	.kind = HF_POWER_NVML,
	.open = nvml_open,
	.read = nvml_read,
	.limit_get = nvml_limit_get,
	.limit_set = nvml_limit_set,
	.close = nvml_close,
};
