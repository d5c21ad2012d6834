/* hf_coord_series_gen: the generator of synthetic market series (placeholder: being written).
 * Threading: reentrant.
 */
#include <string.h>

#include "hf_coord_series.h"

void hf_coord_series_gen_defaults(hf_coord_series_gen *g)
{
	memset(g, 0, sizeof *g);
}

int hf_coord_series_generate(const hf_coord_series_gen *g, hf_coord_series *out,
			     hf_errbuf *eb)
{
	(void)g;
	memset(out, 0, sizeof *out);
	return hf_fail(eb, HF_EUNSUPPORTED, "the series generator is not written yet");
}
