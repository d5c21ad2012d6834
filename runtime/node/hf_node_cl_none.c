/* hf_node_cl_none: device names and addresses in a build without OpenCL: none.
 * Threading: no state.
 */
#include "hf_node_cl.h"

int hf_node_cl_device(const char *selector, char *name, size_t namesz, char *pci, size_t pcisz,
		      hf_errbuf *eb)
{
	(void)selector;
	if (namesz)
		name[0] = '\0';
	if (pcisz)
		pci[0] = '\0';
	return hf_fail(eb, HF_EUNSUPPORTED, "this build has no OpenCL");
}
