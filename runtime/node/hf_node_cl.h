/* hf_node_cl: the one OpenCL question the node asks outside a mode worker: the name and PCI
 * address of the device a selector picks (for the power source: NVML matched to the mining
 * GPU, and the estimate's defaults). A build without OpenCL answers
 * HF_EUNSUPPORTED (hf_node_cl_none.c; meson picks the file).
 * Threading: reentrant (hf_cl_find is).
 */
#ifndef HF_NODE_CL_H
#define HF_NODE_CL_H

#include <stddef.h>

#include "hf_error.h"

/* The device name (CL_DEVICE_NAME) and PCI bus id ("" when the device does not say) of the
 * device selector picks ("" or NULL: auto). */
int hf_node_cl_device(const char *selector, char *name, size_t namesz, char *pci, size_t pcisz,
		      hf_errbuf *eb);

#endif
