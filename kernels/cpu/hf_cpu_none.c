/* hf_cpu_none: hf_cpu_detect() on a CPU family without x86 extensions (meson picks this file
 * off x86): nothing optimised is usable, so the kernels fall back to their portable code.
 * Threading: no state.
 */
#include <string.h>

#include "hf_cpu.h"

void hf_cpu_detect(hf_cpu_features *out)
{
	memset(out, 0, sizeof *out);
}
