/* hf_node_cl: device names through hf_cl (builds with OpenCL).
 * Threading: see hf_node_cl.h.
 */
#include "hf_node_cl.h"

#include "hf_cl.h"
#include "hf_util.h"

int hf_node_cl_device(const char *selector, char *name, size_t namesz, char *pci, size_t pcisz,
		      hf_errbuf *eb)
{
	hf_cl_device_info info;
	int r = hf_cl_find(selector && selector[0] ? selector : "auto", &info, eb);

	if (r < 0)
		return r;
	hf_strlcpy(name, info.name, namesz);
	hf_strlcpy(pci, info.pci_bus_id, pcisz);
	return 0;
}
