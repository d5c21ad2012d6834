/* fake_nvml: the controls of the fake libnvidia-ml.so.1 the power tests build (fake_nvml.c).
 * A test dlopens the library by its full path (FAKE_NVML_PATH), finds these with dlsym on that
 * handle and scripts GPUs, values and failures; hf_power then dlopens the same path and gets
 * the same instance.
 * Threading: every control and every NVML function takes the fake's one lock.
 */
#ifndef FAKE_NVML_H
#define FAKE_NVML_H

#define FAKE_NVML_MAX_GPUS 8

/* Codes as nvml.h numbers them. */
#define FAKE_NVML_SUCCESS 0
#define FAKE_NVML_ERROR_NOT_SUPPORTED 3
#define FAKE_NVML_ERROR_NO_PERMISSION 4
#define FAKE_NVML_ERROR_DRIVER_NOT_LOADED 9
#define FAKE_NVML_ERROR_GPU_IS_LOST 15

typedef void (*fake_nvml_reset_fn)(void);
/* What nvmlInit_v2 answers. */
typedef void (*fake_nvml_set_init_fn)(int rc);
/* Adds a GPU; energy_rc: what nvmlDeviceGetTotalEnergyConsumption answers (0 or NOT_SUPPORTED).
 * Returns its index or -1. */
typedef int (*fake_nvml_add_gpu_fn)(const char *name, const char *bus_id, int energy_rc);
typedef void (*fake_nvml_set_energy_fn)(int gpu, unsigned long long mj);
typedef void (*fake_nvml_set_power_fn)(int gpu, unsigned int mw);
/* Power limit constraints and limit in mW; set_rc: what nvmlDeviceSetPowerManagementLimit
 * answers. */
typedef void (*fake_nvml_set_limits_fn)(int gpu, unsigned int min_mw, unsigned int max_mw,
					unsigned int cur_mw, int set_rc);
/* From now on the energy and power calls of gpu answer rc (0: work again). */
typedef void (*fake_nvml_fail_reads_fn)(int gpu, int rc);
/* Counters: "init", "shutdown", "reads"; "limit0".."limit7": the limit in force (mW). */
typedef long long (*fake_nvml_get_fn)(const char *what);

#endif
