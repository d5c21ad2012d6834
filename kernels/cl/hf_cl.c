/* hf_cl: OpenCL discovery, selectors, one context + queue per handle, cached program builds.
 *
 * Invariants: a selector resolves to the same device for the same set of installed platforms
 * (platforms and devices are enumerated in the ICD loader's order). A cache entry is a file
 * "<cache_dir>/<key>.clbin" holding a header (magic, payload length, SHA-256 of the payload)
 * and the device binary; an entry whose header, length or digest does not match, or that the
 * driver refuses, is rebuilt from source and rewritten atomically. A failed cache write never
 * fails a build. A build log is fetched whole (up to BUILD_LOG_FETCH_MAX) and kept up to
 * BUILD_LOG_KEEP bytes, cut on a character boundary with a note saying so.
 * Nothing here reads or writes the environment: what PoCL needs is set by hf_cl_env_init()
 * at the top of main(), before threads (setenv racing getenv is a data race in glibc).
 * Threading: see hf_cl.h.
 */
#include "hf_cl.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hf_file.h"
#include "hf_text.h"
#include "hf_util.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES_PER_PLATFORM 32
#define MAX_CACHE_ENTRY (256u << 20)
#define CACHE_MAGIC "HFCLBIN1"
#define CACHE_HEADER_SIZE (8 + 8 + 32)
#define BUILD_LOG_KEEP (1u << 20)        /* bytes of a build log kept in the handle */
#define BUILD_LOG_FETCH_MAX (64u << 20)  /* a longer log is not fetched at all */

struct hf_cl {
	cl_platform_id platform;
	cl_device_id device;
	cl_context context;
	cl_command_queue queue;
	hf_cl_device_info info;
	char cache_dir[PATH_MAX];
	char *build_log;           /* log of the last compile from source (malloc'ed, may be NULL) */
};

const char *hf_cl_strerror(cl_int status)
{
	switch (status) {
#define S(x) case x: return #x
	S(CL_SUCCESS);
	S(CL_DEVICE_NOT_FOUND);
	S(CL_DEVICE_NOT_AVAILABLE);
	S(CL_COMPILER_NOT_AVAILABLE);
	S(CL_MEM_OBJECT_ALLOCATION_FAILURE);
	S(CL_OUT_OF_RESOURCES);
	S(CL_OUT_OF_HOST_MEMORY);
	S(CL_PROFILING_INFO_NOT_AVAILABLE);
	S(CL_MEM_COPY_OVERLAP);
	S(CL_IMAGE_FORMAT_MISMATCH);
	S(CL_IMAGE_FORMAT_NOT_SUPPORTED);
	S(CL_BUILD_PROGRAM_FAILURE);
	S(CL_MAP_FAILURE);
	S(CL_MISALIGNED_SUB_BUFFER_OFFSET);
	S(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
	S(CL_COMPILE_PROGRAM_FAILURE);
	S(CL_LINKER_NOT_AVAILABLE);
	S(CL_LINK_PROGRAM_FAILURE);
	S(CL_DEVICE_PARTITION_FAILED);
	S(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
	S(CL_INVALID_VALUE);
	S(CL_INVALID_DEVICE_TYPE);
	S(CL_INVALID_PLATFORM);
	S(CL_INVALID_DEVICE);
	S(CL_INVALID_CONTEXT);
	S(CL_INVALID_QUEUE_PROPERTIES);
	S(CL_INVALID_COMMAND_QUEUE);
	S(CL_INVALID_HOST_PTR);
	S(CL_INVALID_MEM_OBJECT);
	S(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
	S(CL_INVALID_IMAGE_SIZE);
	S(CL_INVALID_SAMPLER);
	S(CL_INVALID_BINARY);
	S(CL_INVALID_BUILD_OPTIONS);
	S(CL_INVALID_PROGRAM);
	S(CL_INVALID_PROGRAM_EXECUTABLE);
	S(CL_INVALID_KERNEL_NAME);
	S(CL_INVALID_KERNEL_DEFINITION);
	S(CL_INVALID_KERNEL);
	S(CL_INVALID_ARG_INDEX);
	S(CL_INVALID_ARG_VALUE);
	S(CL_INVALID_ARG_SIZE);
	S(CL_INVALID_KERNEL_ARGS);
	S(CL_INVALID_WORK_DIMENSION);
	S(CL_INVALID_WORK_GROUP_SIZE);
	S(CL_INVALID_WORK_ITEM_SIZE);
	S(CL_INVALID_GLOBAL_OFFSET);
	S(CL_INVALID_EVENT_WAIT_LIST);
	S(CL_INVALID_EVENT);
	S(CL_INVALID_OPERATION);
	S(CL_INVALID_GL_OBJECT);
	S(CL_INVALID_BUFFER_SIZE);
	S(CL_INVALID_MIP_LEVEL);
	S(CL_INVALID_GLOBAL_WORK_SIZE);
	S(CL_INVALID_PROPERTY);
	S(CL_INVALID_IMAGE_DESCRIPTOR);
	S(CL_INVALID_COMPILER_OPTIONS);
	S(CL_INVALID_LINKER_OPTIONS);
	S(CL_INVALID_DEVICE_PARTITION_COUNT);
#undef S
	case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
	}
	return "CL_UNKNOWN_ERROR";
}

/* ---- discovery ---- */

static void get_platform_str(cl_platform_id p, cl_platform_info what, char *out, size_t sz)
{
	out[0] = '\0';
	if (clGetPlatformInfo(p, what, sz, out, NULL) != CL_SUCCESS)
		out[0] = '\0';
	out[sz - 1] = '\0';
}

static void get_device_str(cl_device_id d, cl_device_info what, char *out, size_t sz)
{
	size_t need = 0;
	out[0] = '\0';
	if (clGetDeviceInfo(d, what, 0, NULL, &need) != CL_SUCCESS || need == 0)
		return;
	char *tmp = malloc(need + 1);
	if (!tmp)
		return;
	if (clGetDeviceInfo(d, what, need, tmp, NULL) == CL_SUCCESS) {
		tmp[need] = '\0';
		hf_strlcpy(out, tmp, sz);
	}
	free(tmp);
}

static bool device_has_extension(cl_device_id d, const char *ext)
{
	size_t need = 0, len = strlen(ext);
	bool found = false;
	if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &need) != CL_SUCCESS || need == 0)
		return false;
	char *s = malloc(need + 1);
	if (!s)
		return false;
	if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, need, s, NULL) == CL_SUCCESS) {
		s[need] = '\0';
		for (char *p = strstr(s, ext); p; p = strstr(p + 1, ext)) {
			bool start = p == s || p[-1] == ' ';
			bool end = p[len] == '\0' || p[len] == ' ';
			if (start && end) {
				found = true;
				break;
			}
		}
	}
	free(s);
	return found;
}

#define PCI_BUS_INFO_KHR 0x410F /* cl_khr_pci_bus_info: CL_DEVICE_PCI_BUS_INFO_KHR */
#define PCI_BUS_ID_NV 0x4008    /* cl_nv_device_attribute_query */
#define PCI_SLOT_ID_NV 0x4009
#define PCI_DOMAIN_ID_NV 0x400A

/* The PCI address of a GPU, asked only through the extensions the device announces. */
static void fill_pci_bus_id(cl_device_id d, char *out, size_t size)
{
	struct { cl_uint domain, bus, device, function; } khr;
	cl_uint bus = 0, slot = 0, domain = 0;

	out[0] = '\0';
	if (device_has_extension(d, "cl_khr_pci_bus_info") &&
	    clGetDeviceInfo(d, PCI_BUS_INFO_KHR, sizeof khr, &khr, NULL) == CL_SUCCESS) {
		snprintf(out, size, "%08X:%02X:%02X.%X", khr.domain, khr.bus, khr.device,
			 khr.function);
	} else if (device_has_extension(d, "cl_nv_device_attribute_query") &&
		   clGetDeviceInfo(d, PCI_BUS_ID_NV, sizeof bus, &bus, NULL) == CL_SUCCESS &&
		   clGetDeviceInfo(d, PCI_SLOT_ID_NV, sizeof slot, &slot, NULL) == CL_SUCCESS) {
		if (clGetDeviceInfo(d, PCI_DOMAIN_ID_NV, sizeof domain, &domain, NULL) != CL_SUCCESS)
			domain = 0;
		snprintf(out, size, "%08X:%02X:%02X.%X", domain, bus, slot >> 3, slot & 7);
	}
}

static void fill_info(cl_platform_id p, cl_device_id d, unsigned pi, unsigned di,
		      hf_cl_device_info *o)
{
	cl_device_type type = 0;
	cl_uint u = 0;
	cl_ulong ul = 0;
	size_t sz = 0;

	memset(o, 0, sizeof *o);
	snprintf(o->selector, sizeof o->selector, "%u:%u", pi, di);
	get_platform_str(p, CL_PLATFORM_NAME, o->platform, sizeof o->platform);
	get_platform_str(p, CL_PLATFORM_VENDOR, o->platform_vendor, sizeof o->platform_vendor);
	get_device_str(d, CL_DEVICE_NAME, o->name, sizeof o->name);
	get_device_str(d, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
	get_device_str(d, CL_DRIVER_VERSION, o->driver_version, sizeof o->driver_version);
	get_device_str(d, CL_DEVICE_VERSION, o->version, sizeof o->version);
	if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL) == CL_SUCCESS)
		o->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
	if (clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof u, &u, NULL) == CL_SUCCESS)
		o->compute_units = u;
	u = 0;
	if (clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof u, &u, NULL) == CL_SUCCESS)
		o->clock_mhz = u;
	if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS)
		o->global_mem_bytes = ul;
	ul = 0;
	if (clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS)
		o->local_mem_bytes = ul;
	ul = 0;
	if (clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS)
		o->max_alloc_bytes = ul;
	if (clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof sz, &sz, NULL) == CL_SUCCESS)
		o->max_work_group_size = sz;
	o->fp16 = device_has_extension(d, "cl_khr_fp16");
	o->fp64 = device_has_extension(d, "cl_khr_fp64");
	if (o->is_gpu)
		fill_pci_bus_id(d, o->pci_bus_id, sizeof o->pci_bus_id);
}

/* Calls fn(platform, device, pi, di, info, arg) for each device until it returns true.
 * Returns the number of devices seen, or a negative HF_E* code. */
typedef bool (*visit_fn)(cl_platform_id p, cl_device_id d, const hf_cl_device_info *info,
			 void *arg);

/* A platform whose device query fails with anything but CL_DEVICE_NOT_FOUND (a broken driver)
 * is skipped while other platforms have devices; when no platform has one, that failure is the
 * answer (HF_ECL), so "no device" always means that none exists. */
static int visit_devices(visit_fn fn, void *arg, hf_errbuf *eb)
{
	cl_platform_id plats[MAX_PLATFORMS];
	cl_uint np = 0, bad_pi = 0;
	cl_int st = clGetPlatformIDs(MAX_PLATFORMS, plats, &np), bad = CL_SUCCESS;
	int total = 0;

	if (st == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (st == CL_SUCCESS && np == 0))
		return 0;
	if (st != CL_SUCCESS)
		return hf_fail(eb, HF_ECL, "clGetPlatformIDs: %s", hf_cl_strerror(st));
	if (np > MAX_PLATFORMS)
		np = MAX_PLATFORMS;
	for (cl_uint pi = 0; pi < np; pi++) {
		cl_device_id devs[MAX_DEVICES_PER_PLATFORM];
		cl_uint nd = 0;
		st = clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, MAX_DEVICES_PER_PLATFORM, devs,
				    &nd);
		if (st != CL_SUCCESS && st != CL_DEVICE_NOT_FOUND && bad == CL_SUCCESS) {
			bad = st;
			bad_pi = pi;
		}
		if (st != CL_SUCCESS)
			continue;
		if (nd > MAX_DEVICES_PER_PLATFORM)
			nd = MAX_DEVICES_PER_PLATFORM;
		for (cl_uint di = 0; di < nd; di++) {
			hf_cl_device_info info;
			fill_info(plats[pi], devs[di], pi, di, &info);
			total++;
			if (fn(plats[pi], devs[di], &info, arg))
				return total;
		}
	}
	if (total == 0 && bad != CL_SUCCESS) {
		char name[128];
		get_platform_str(plats[bad_pi], CL_PLATFORM_NAME, name, sizeof name);
		hf_text_clean_inplace(name);
		return hf_fail(eb, HF_ECL, "no OpenCL device: clGetDeviceIDs on platform %u (%s): %s",
			       bad_pi, name, hf_cl_strerror(bad));
	}
	return total;
}

typedef struct list_ctx {
	hf_cl_device_info *out;
	size_t max, n;
} list_ctx;

static bool list_visit(cl_platform_id p, cl_device_id d, const hf_cl_device_info *info,
		       void *arg)
{
	list_ctx *c = arg;
	if (c->n < c->max)
		c->out[c->n] = *info;
	c->n++;
	return false;
}

int hf_cl_list(hf_cl_device_info *out, size_t max, size_t *n, hf_errbuf *eb)
{
	list_ctx c = { out, max, 0 };
	int r = visit_devices(list_visit, &c, eb);
	if (n)
		*n = c.n;
	return r < 0 ? r : 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t nl = strlen(needle);
	if (nl == 0)
		return false;
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < nl && hay[i] &&
		       tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == nl)
			return true;
	}
	return false;
}

enum sel_kind { SEL_AUTO, SEL_INDEX, SEL_VENDOR, SEL_NAME };

typedef struct find_ctx {
	enum sel_kind kind;
	const char *word;
	unsigned pi, di;
	bool found, have_first;
	cl_platform_id platform;
	cl_device_id device;
	hf_cl_device_info info;
	cl_platform_id first_platform; /* SEL_AUTO: fallback when no GPU exists */
	cl_device_id first_device;
	hf_cl_device_info first_info;
	char listing[HF_ERRBUF_SIZE];
} find_ctx;

static bool sel_matches(find_ctx *c, const hf_cl_device_info *info)
{
	switch (c->kind) {
	case SEL_AUTO:
		return info->is_gpu;
	case SEL_INDEX: {
		char want[16];
		snprintf(want, sizeof want, "%u:%u", c->pi, c->di);
		return strcmp(want, info->selector) == 0;
	}
	case SEL_VENDOR:
		return contains_ci(info->platform, c->word) ||
		       contains_ci(info->platform_vendor, c->word);
	case SEL_NAME:
		return contains_ci(info->name, c->word);
	}
	return false;
}

static bool find_visit(cl_platform_id p, cl_device_id d, const hf_cl_device_info *info,
		       void *arg)
{
	find_ctx *c = arg;
	size_t used = strlen(c->listing);
	snprintf(c->listing + used, sizeof c->listing - used, "%s%s %s (%s)", used ? "; " : "",
		 info->selector, info->name, info->platform);
	if (!c->have_first) {
		c->have_first = true;
		c->first_platform = p;
		c->first_device = d;
		c->first_info = *info;
	}
	if (sel_matches(c, info)) {
		c->found = true;
		c->platform = p;
		c->device = d;
		c->info = *info;
		return true;
	}
	return false;
}

static bool parse_index(const char *s, unsigned *pi, unsigned *di)
{
	char a[12], b[12];
	const char *colon = strchr(s, ':');
	uint64_t x, y;
	if (!colon || (size_t)(colon - s) >= sizeof a || strlen(colon + 1) >= sizeof b)
		return false;
	memcpy(a, s, (size_t)(colon - s));
	a[colon - s] = '\0';
	strcpy(b, colon + 1);
	if (!hf_parse_u64(a, 0, 1000, &x) || !hf_parse_u64(b, 0, 1000, &y))
		return false;
	*pi = (unsigned)x;
	*di = (unsigned)y;
	return true;
}

static int resolve(const char *selector, find_ctx *c, hf_errbuf *eb)
{
	static const char *const vendors[] = { "pocl", "nvidia", "amd", "intel" };
	memset(c, 0, sizeof *c);
	if (!selector || !*selector || strcmp(selector, "auto") == 0) {
		c->kind = SEL_AUTO;
	} else if (strchr(selector, ':')) {
		if (!parse_index(selector, &c->pi, &c->di))
			return hf_fail(eb, HF_EINVAL,
				       "device selector \"%s\": expected P:D with two numbers",
				       selector);
		c->kind = SEL_INDEX;
	} else {
		c->kind = SEL_NAME;
		for (size_t i = 0; i < HF_ARRAY_SIZE(vendors); i++)
			if (strcasecmp(selector, vendors[i]) == 0)
				c->kind = SEL_VENDOR;
	}
	c->word = selector;
	int r = visit_devices(find_visit, c, eb);
	if (r < 0)
		return r;
	if (!c->found && c->kind == SEL_AUTO && c->have_first) {
		c->found = true;
		c->platform = c->first_platform;
		c->device = c->first_device;
		c->info = c->first_info;
	}
	if (!c->found)
		return hf_fail(eb, HF_ENOTFOUND, "no OpenCL device matches \"%s\"; devices: %s",
			       selector ? selector : "auto",
			       c->listing[0] ? c->listing : "none (no OpenCL platform or device found)");
	return 0;
}

int hf_cl_find(const char *selector, hf_cl_device_info *out, hf_errbuf *eb)
{
	find_ctx *c = malloc(sizeof *c);
	if (!c)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	int r = resolve(selector, c, eb);
	if (r == 0 && out)
		*out = c->info;
	free(c);
	return r;
}

/* ---- handles ---- */

static int open_cache_dir(hf_cl *cl, const char *dir, hf_errbuf *eb)
{
	if (!hf_strlcpy(cl->cache_dir, dir, sizeof cl->cache_dir))
		return hf_fail(eb, HF_ETOOBIG, "cache dir %s: path too long", dir);
	return hf_mkdir_p(dir, 0755, eb);
}

int hf_cl_open(const char *selector, const hf_cl_opts *opts, hf_cl **out, hf_errbuf *eb)
{
	hf_cl_opts def = { 0 };
	find_ctx *c = NULL;
	hf_cl *cl;
	cl_int st;
	int r;

	*out = NULL;
	if (!opts)
		opts = &def;
	cl = calloc(1, sizeof *cl);
	c = malloc(sizeof *c);
	if (!cl || !c) {
		r = hf_fail(eb, HF_ENOMEM, "out of memory");
		goto free_cl;
	}
	if (opts->cache_dir) {
		r = open_cache_dir(cl, opts->cache_dir, eb);
		if (r)
			goto free_cl;
	}
	r = resolve(selector, c, eb);
	if (r)
		goto free_cl;
	cl->platform = c->platform;
	cl->device = c->device;
	cl->info = c->info;

	cl_context_properties props[] = { CL_CONTEXT_PLATFORM, (cl_context_properties)cl->platform,
					  0 };
	cl->context = clCreateContext(props, 1, &cl->device, NULL, NULL, &st);
	if (!cl->context) {
		r = hf_fail(eb, HF_ECL, "clCreateContext on %s (%s): %s", cl->info.selector,
			    cl->info.name, hf_cl_strerror(st));
		goto free_cl;
	}
	cl->queue = clCreateCommandQueue(cl->context, cl->device,
					 opts->profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &st);
	if (!cl->queue) {
		r = hf_fail(eb, HF_ECL, "clCreateCommandQueue on %s: %s", cl->info.selector,
			    hf_cl_strerror(st));
		goto release_context;
	}
	free(c);
	*out = cl;
	return 0;

release_context:
	clReleaseContext(cl->context);
free_cl:
	free(c);
	free(cl);
	return r;
}

void hf_cl_free(hf_cl *cl)
{
	if (!cl)
		return;
	if (cl->queue) {
		clFinish(cl->queue);
		clReleaseCommandQueue(cl->queue);
	}
	if (cl->context)
		clReleaseContext(cl->context);
	free(cl->build_log);
	free(cl);
}

cl_context hf_cl_context(const hf_cl *cl) { return cl->context; }
cl_command_queue hf_cl_queue(const hf_cl *cl) { return cl->queue; }
cl_device_id hf_cl_device(const hf_cl *cl) { return cl->device; }
const hf_cl_device_info *hf_cl_info(const hf_cl *cl) { return &cl->info; }
const char *hf_cl_cache_dir(const hf_cl *cl) { return cl->cache_dir[0] ? cl->cache_dir : NULL; }
const char *hf_cl_build_log(const hf_cl *cl) { return cl->build_log ? cl->build_log : ""; }

/* ---- program cache ---- */

static void digest_field(EVP_MD_CTX *md, const void *data, size_t len)
{
	uint64_t l = len;
	EVP_DigestUpdate(md, &l, sizeof l);
	EVP_DigestUpdate(md, data, len);
}

static int cache_key(const hf_cl *cl, const char *src, size_t len, const char *options,
		     char hex[65], hf_errbuf *eb)
{
	uint8_t d[32];
	unsigned dl = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return hf_fail(eb, HF_ECRYPTO, "SHA-256 unavailable");
	}
	digest_field(md, "hf_cl-cache-v1", 14);
	digest_field(md, cl->info.platform, strlen(cl->info.platform));
	digest_field(md, cl->info.name, strlen(cl->info.name));
	digest_field(md, cl->info.driver_version, strlen(cl->info.driver_version));
	digest_field(md, cl->info.version, strlen(cl->info.version));
	digest_field(md, src, len);
	digest_field(md, options, strlen(options));
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	hf_hex_encode(d, sizeof d, hex);
	return 0;
}

static bool sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned dl = 0;
	return EVP_Digest(data, len, out, &dl, EVP_sha256(), NULL) == 1 && dl == 32;
}

/* Loads and checks an entry; NULL when absent or corrupt. */
static uint8_t *cache_load(const char *path, size_t *len)
{
	char *data = NULL;
	size_t n = 0;
	uint64_t plen;
	uint8_t d[32];

	if (hf_file_read(path, MAX_CACHE_ENTRY, &data, &n, NULL) != 0)
		return NULL;
	if (n < CACHE_HEADER_SIZE || memcmp(data, CACHE_MAGIC, 8) != 0)
		goto corrupt;
	memcpy(&plen, data + 8, 8);
	if (plen == 0 || plen != n - CACHE_HEADER_SIZE)
		goto corrupt;
	if (!sha256(data + CACHE_HEADER_SIZE, (size_t)plen, d) || memcmp(d, data + 16, 32) != 0)
		goto corrupt;
	memmove(data, data + CACHE_HEADER_SIZE, (size_t)plen);
	*len = (size_t)plen;
	return (uint8_t *)data;
corrupt:
	free(data);
	return NULL;
}

static void cache_store(const char *path, const uint8_t *bin, size_t len)
{
	uint64_t plen = len;
	uint8_t *buf = malloc(CACHE_HEADER_SIZE + len);
	if (!buf)
		return;
	memcpy(buf, CACHE_MAGIC, 8);
	memcpy(buf + 8, &plen, 8);
	if (sha256(bin, len, buf + 16)) {
		memcpy(buf + CACHE_HEADER_SIZE, bin, len);
		hf_file_write_atomic(path, buf, CACHE_HEADER_SIZE + len, 0644, NULL);
	}
	free(buf);
}

/* The whole build log of prog on the handle's device (malloc'ed, NUL-terminated), or NULL when
 * the driver has none. The size is asked first: a buffer smaller than the log is refused by
 * the driver (CL_INVALID_VALUE), so a capped read would lose the whole log. A log that cannot
 * be fetched becomes a one-line note saying why. */
static char *fetch_log(const hf_cl *cl, cl_program prog)
{
	char note[160];
	size_t need = 0;
	cl_int st = clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &need);
	if (st == CL_SUCCESS && need <= 1)
		return NULL; /* only the terminating NUL: an empty log */
	if (st == CL_SUCCESS && need > BUILD_LOG_FETCH_MAX) {
		snprintf(note, sizeof note, "(build log of %zu bytes not fetched: over the %u MiB cap)",
			 need, BUILD_LOG_FETCH_MAX >> 20);
		return strdup(note);
	}
	char *log = st == CL_SUCCESS ? malloc(need + 1) : NULL;
	if (log) {
		st = clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, need, log, NULL);
		if (st == CL_SUCCESS) {
			log[need] = '\0';
			return log;
		}
		free(log);
	}
	snprintf(note, sizeof note, "(build log of %zu bytes unavailable: %s)", need,
		 st == CL_SUCCESS ? "out of memory" : hf_cl_strerror(st));
	return strdup(note);
}

/* Keeps log (taking ownership) as the handle's last build log, cut to BUILD_LOG_KEEP bytes on
 * a character boundary with a note after it. */
static void keep_log(hf_cl *cl, char *log)
{
	free(cl->build_log);
	cl->build_log = log;
	size_t len = log ? strlen(log) : 0;
	if (len <= BUILD_LOG_KEEP)
		return;
	char note[96];
	log[BUILD_LOG_KEEP - sizeof note] = '\0'; /* the note fits in what was cut */
	size_t kept = hf_utf8_trim(log);
	int nl = snprintf(note, sizeof note, "\n[build log truncated: %zu of %zu bytes kept]\n",
			  kept, len);
	memcpy(log + kept, note, (size_t)nl + 1); /* kept + nl < BUILD_LOG_KEEP < len */
	char *shrunk = realloc(log, kept + (size_t)nl + 1);
	cl->build_log = shrunk ? shrunk : log;
}

/* The excerpt of the log for eb: from the line of the first error when there is one (a long
 * log of warnings would otherwise hide it past the buffer's end), else from the start; line
 * breaks and tabs become single spaces, control characters and bad UTF-8 become '?'. */
static void log_excerpt(const char *log, char *out, size_t sz)
{
	const char *from = log, *err = strstr(log, "error:");
	size_t j = 0;
	if (err) {
		while (err > log && err[-1] != '\n')
			err--;
		from = err;
	}
	for (size_t i = 0; from[i] && j + 1 < sz; i++) {
		char ch = from[i];
		if (ch == '\n' || ch == '\r' || ch == '\t')
			ch = ' ';
		if (ch == ' ' && j > 0 && out[j - 1] == ' ')
			continue;
		out[j++] = ch;
	}
	out[j] = '\0';
	hf_text_clean_inplace(out);
}

/* The failure of a compile from source, the compiler's own words in eb. */
static int build_failure(hf_cl *cl, cl_int st, const char *log, hf_errbuf *eb)
{
	char flat[HF_ERRBUF_SIZE];
	log_excerpt(log ? log : "", flat, sizeof flat);
	return hf_fail(eb, HF_ECL, "clBuildProgram on %s: %s: %s", cl->info.name,
		       hf_cl_strerror(st), flat[0] ? flat : "(empty build log)");
}

static cl_program build_from_binary(hf_cl *cl, const uint8_t *bin, size_t len,
				    const char *options)
{
	cl_int st, bst;
	cl_program p = clCreateProgramWithBinary(cl->context, 1, &cl->device, &len, &bin, &bst,
						 &st);
	if (!p)
		return NULL;
	if (st != CL_SUCCESS || bst != CL_SUCCESS ||
	    clBuildProgram(p, 1, &cl->device, options, NULL, NULL) != CL_SUCCESS) {
		clReleaseProgram(p);
		return NULL;
	}
	return p;
}

static void store_binary(hf_cl *cl, cl_program p, const char *path)
{
	size_t len = 0;
	uint8_t *bin;
	if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
	    len == 0 || len > MAX_CACHE_ENTRY)
		return;
	bin = malloc(len);
	if (!bin)
		return;
	if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS)
		cache_store(path, bin, len);
	free(bin);
}

int hf_cl_build(hf_cl *cl, const char *source, size_t len, const char *options,
		cl_program *out, bool *cache_hit, hf_errbuf *eb)
{
	char path[PATH_MAX] = "", key[65];
	cl_program p;
	cl_int st;
	int r;

	*out = NULL;
	if (cache_hit)
		*cache_hit = false;
	if (!source)
		return hf_fail(eb, HF_EINVAL, "hf_cl_build: no source");
	if (!options)
		options = "";
	if (cl->cache_dir[0]) {
		r = cache_key(cl, source, len, options, key, eb);
		if (r)
			return r;
		snprintf(path, sizeof path, "%s/%s.clbin", cl->cache_dir, key);
		size_t blen = 0;
		uint8_t *bin = cache_load(path, &blen);
		if (bin) {
			p = build_from_binary(cl, bin, blen, options);
			free(bin);
			if (p) {
				if (cache_hit)
					*cache_hit = true;
				*out = p;
				return 0;
			}
			/* The driver refused the entry: fall through, rebuild and overwrite it. */
		}
	}
	p = clCreateProgramWithSource(cl->context, 1, &source, &len, &st);
	if (!p)
		return hf_fail(eb, HF_ECL, "clCreateProgramWithSource: %s", hf_cl_strerror(st));
	st = clBuildProgram(p, 1, &cl->device, options, NULL, NULL);
	char *log = fetch_log(cl, p);
	r = st == CL_SUCCESS ? 0 : build_failure(cl, st, log, eb);
	keep_log(cl, log);
	if (r) {
		clReleaseProgram(p);
		return r;
	}
	if (path[0])
		store_binary(cl, p, path);
	*out = p;
	return 0;
}
