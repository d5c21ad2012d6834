/* fake_nvml: a fake libnvidia-ml.so.1 for the power tests: it exports the NVML functions
 * hf_power uses (same names, same C signatures as nvml.h) over scripted GPUs, values and
 * failures, plus the fake_nvml_* controls of fake_nvml.h. Written here from the NVML API
 * reference; no NVIDIA code or header.
 *
 * Invariants: a device handle is a pointer into the GPU table; NVML calls before a
 * successful nvmlInit_v2 answer NVML_ERROR_UNINITIALIZED (1), as the real library does.
 * Threading: one lock around everything (hf_power's sampler thread calls in while the test
 * scripts new values).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fake_nvml.h"

#define FAKE_EXPORT __attribute__((visibility("default")))

typedef struct fake_gpu {
	char name[96];
	char bus_id[32];
	int energy_rc, read_rc, set_rc;
	unsigned long long mj;
	unsigned int mw, min_mw, max_mw, cur_mw;
} fake_gpu;

typedef struct fake_pci {
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
} fake_pci;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static fake_gpu gpus[FAKE_NVML_MAX_GPUS];
static int ngpus, init_rc, inited;
static long long n_init, n_shutdown, n_reads;

/* ---- controls ---- */

FAKE_EXPORT void fake_nvml_reset(void);
FAKE_EXPORT void fake_nvml_set_init(int rc);
FAKE_EXPORT int fake_nvml_add_gpu(const char *name, const char *bus_id, int energy_rc);
FAKE_EXPORT void fake_nvml_set_energy(int gpu, unsigned long long mj);
FAKE_EXPORT void fake_nvml_set_power(int gpu, unsigned int mw);
FAKE_EXPORT void fake_nvml_set_limits(int gpu, unsigned int min_mw, unsigned int max_mw,
				      unsigned int cur_mw, int set_rc);
FAKE_EXPORT void fake_nvml_fail_reads(int gpu, int rc);
FAKE_EXPORT long long fake_nvml_get(const char *what);

void fake_nvml_reset(void)
{
	pthread_mutex_lock(&mu);
	memset(gpus, 0, sizeof(gpus));
	ngpus = init_rc = inited = 0;
	n_init = n_shutdown = n_reads = 0;
	pthread_mutex_unlock(&mu);
}

void fake_nvml_set_init(int rc)
{
	pthread_mutex_lock(&mu);
	init_rc = rc;
	pthread_mutex_unlock(&mu);
}

int fake_nvml_add_gpu(const char *name, const char *bus_id, int energy_rc)
{
	pthread_mutex_lock(&mu);
	int i = ngpus < FAKE_NVML_MAX_GPUS ? ngpus++ : -1;
	if (i >= 0) {
		memset(&gpus[i], 0, sizeof(gpus[i]));
		snprintf(gpus[i].name, sizeof(gpus[i].name), "%s", name);
		snprintf(gpus[i].bus_id, sizeof(gpus[i].bus_id), "%s", bus_id);
		gpus[i].energy_rc = energy_rc;
		gpus[i].set_rc = FAKE_NVML_ERROR_NOT_SUPPORTED;
	}
	pthread_mutex_unlock(&mu);
	return i;
}

static fake_gpu *gpu_at(int i)
{
	return i >= 0 && i < ngpus ? &gpus[i] : NULL;
}

void fake_nvml_set_energy(int gpu, unsigned long long mj)
{
	pthread_mutex_lock(&mu);
	if (gpu_at(gpu))
		gpu_at(gpu)->mj = mj;
	pthread_mutex_unlock(&mu);
}

void fake_nvml_set_power(int gpu, unsigned int mw)
{
	pthread_mutex_lock(&mu);
	if (gpu_at(gpu))
		gpu_at(gpu)->mw = mw;
	pthread_mutex_unlock(&mu);
}

void fake_nvml_set_limits(int gpu, unsigned int min_mw, unsigned int max_mw, unsigned int cur_mw,
			  int set_rc)
{
	pthread_mutex_lock(&mu);
	fake_gpu *g = gpu_at(gpu);
	if (g) {
		g->min_mw = min_mw;
		g->max_mw = max_mw;
		g->cur_mw = cur_mw;
		g->set_rc = set_rc;
	}
	pthread_mutex_unlock(&mu);
}

void fake_nvml_fail_reads(int gpu, int rc)
{
	pthread_mutex_lock(&mu);
	if (gpu_at(gpu))
		gpu_at(gpu)->read_rc = rc;
	pthread_mutex_unlock(&mu);
}

long long fake_nvml_get(const char *what)
{
	long long v = -1;
	pthread_mutex_lock(&mu);
	if (strcmp(what, "init") == 0)
		v = n_init;
	else if (strcmp(what, "shutdown") == 0)
		v = n_shutdown;
	else if (strcmp(what, "reads") == 0)
		v = n_reads;
	else if (strncmp(what, "limit", 5) == 0 && what[5] >= '0' && what[5] <= '7' && !what[6] &&
		 gpu_at(what[5] - '0'))
		v = gpu_at(what[5] - '0')->cur_mw;
	pthread_mutex_unlock(&mu);
	return v;
}

/* ---- the NVML functions ---- */

typedef int nvmlReturn_t;
typedef fake_gpu *nvmlDevice_t;

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void);
FAKE_EXPORT nvmlReturn_t nvmlShutdown(void);
FAKE_EXPORT const char *nvmlErrorString(nvmlReturn_t r);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, fake_pci *pci);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t dev,
							     unsigned long long *mj);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t dev,
								      unsigned int *lo,
								      unsigned int *hi);
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *mw);
FAKE_EXPORT nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t dev, unsigned int mw);

#define NOT_INITED 1
#define INVALID_ARGUMENT 2

nvmlReturn_t nvmlInit_v2(void)
{
	pthread_mutex_lock(&mu);
	int rc = init_rc;
	n_init++;
	if (rc == 0)
		inited++;
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlShutdown(void)
{
	pthread_mutex_lock(&mu);
	int rc = inited ? 0 : NOT_INITED;
	if (inited) {
		inited--;
		n_shutdown++;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

const char *nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case 0:
		return "Success";
	case NOT_INITED:
		return "Uninitialized";
	case INVALID_ARGUMENT:
		return "Invalid Argument";
	case FAKE_NVML_ERROR_NOT_SUPPORTED:
		return "Not Supported";
	case FAKE_NVML_ERROR_NO_PERMISSION:
		return "Insufficient Permissions";
	case FAKE_NVML_ERROR_DRIVER_NOT_LOADED:
		return "Driver Not Loaded";
	case FAKE_NVML_ERROR_GPU_IS_LOST:
		return "GPU is lost";
	default:
		return "Unknown Error";
	}
}

/* Runs under the lock: 0 when inited and dev is one of ours. */
static int check(nvmlDevice_t dev)
{
	if (!inited)
		return NOT_INITED;
	if (!dev || dev < gpus || dev >= gpus + ngpus)
		return INVALID_ARGUMENT;
	return 0;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	pthread_mutex_lock(&mu);
	int rc = inited ? 0 : NOT_INITED;
	if (rc == 0)
		*count = (unsigned int)ngpus;
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev)
{
	pthread_mutex_lock(&mu);
	int rc = !inited ? NOT_INITED : i >= (unsigned)ngpus ? INVALID_ARGUMENT : 0;
	if (rc == 0)
		*dev = &gpus[i];
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, fake_pci *pci)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0) {
		unsigned d = 0, b = 0, s = 0;
		memset(pci, 0, sizeof(*pci));
		snprintf(pci->bus_id, sizeof(pci->bus_id), "%s", dev->bus_id);
		/* The legacy field holds the 4-digit-domain form, as the real library's does. */
		if (sscanf(dev->bus_id, "%x:%x:%x", &d, &b, &s) == 3) {
			snprintf(pci->bus_id_legacy, sizeof(pci->bus_id_legacy), "%04x:%02x:%02x.0",
				 d & 0xffff, b & 0xff, s & 0x1f);
			pci->domain = d;
			pci->bus = b;
			pci->device = s;
		}
		pci->pci_device_id = 0x233510de;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0 && len > 0)
		snprintf(name, len, "%s", dev->name);
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t dev, unsigned long long *mj)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0)
		rc = dev->read_rc ? dev->read_rc : dev->energy_rc;
	if (rc == 0) {
		*mj = dev->mj;
		n_reads++;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0)
		rc = dev->read_rc;
	if (rc == 0) {
		*mw = dev->mw;
		n_reads++;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t dev, unsigned int *lo,
							  unsigned int *hi)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0 && dev->max_mw == 0)
		rc = FAKE_NVML_ERROR_NOT_SUPPORTED;
	if (rc == 0) {
		*lo = dev->min_mw;
		*hi = dev->max_mw;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *mw)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0 && dev->max_mw == 0)
		rc = FAKE_NVML_ERROR_NOT_SUPPORTED;
	if (rc == 0)
		*mw = dev->cur_mw;
	pthread_mutex_unlock(&mu);
	return rc;
}

nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t dev, unsigned int mw)
{
	pthread_mutex_lock(&mu);
	int rc = check(dev);
	if (rc == 0)
		rc = dev->set_rc;
	if (rc == 0 && (mw < dev->min_mw || mw > dev->max_mw))
		rc = INVALID_ARGUMENT;
	if (rc == 0)
		dev->cur_mw = mw;
	pthread_mutex_unlock(&mu);
	return rc;
}
