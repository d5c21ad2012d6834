/* hf_node_cl_none: device names in a build without OpenCL: none.
 * Threading: no state.
 */
#include "hf_node_cl.h"

int hf_node_cl_device_name(const char *selector, char *name, size_t namesz, hf_errbuf *eb)
{
	(void)selector;
	if (namesz)
		name[0] = '\0';
	return hf_fail(eb, HF_EUNSUPPORTED, "this build has no OpenCL");
}
