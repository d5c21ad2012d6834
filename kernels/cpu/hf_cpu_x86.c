/* hf_cpu_x86: reads the x86 feature registers (cpuid, XGETBV) for hf_cpu_detect(). Meson
 * builds this file on x86 only and without ISA flags; hf_cpu.c decodes what it reads.
 * Threading: no state.
 */
#include <cpuid.h>
#include <stddef.h>

#include "hf_cpu.h"

#define OSXSAVE (1u << 27)

/* XGETBV(0) as raw bytes (0f 01 d0), so no -mxsave is needed; only run when OSXSAVE is set. */
static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

void hf_cpu_detect(hf_cpu_features *out)
{
	hf_cpu_x86_regs r = { 0, 0, 0 };
	unsigned a, b, c, d;
	unsigned max = __get_cpuid_max(0, NULL);

	if (max >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
		r.leaf1_ecx = c;
		if (c & OSXSAVE)
			r.xcr0 = xgetbv0();
	}
	if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d))
		r.leaf7_ebx = b;
	hf_cpu_x86_decode(&r, out);
}
