/* hf_power: placeholder so the tree builds while the power sources are written (issue 13);
 * replaced by the real sources before the issue lands.
 * Threading: none.
 */
#include "hf_power.h"

#include <string.h>

int hf_power_open(const hf_power_opts *opts, hf_power **out, hf_errbuf *eb)
{
	*out = NULL;
	return hf_fail(eb, HF_EUNSUPPORTED, "power sources are not built yet");
}

void hf_power_free(hf_power *p)
{
}
