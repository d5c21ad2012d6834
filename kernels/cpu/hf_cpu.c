/* hf_cpu: decoding of the x86 feature registers (portable C, built on every CPU family; the
 * reading of the registers is hf_cpu_x86.c, or hf_cpu_none.c off x86).
 * Bit positions: Intel SDM vol. 2A (CPUID) and vol. 1 section 13.3 (XCR0).
 * Threading: pure functions.
 */
#include "hf_cpu.h"

#include <string.h>

#define BIT(n) (UINT64_C(1) << (n))

/* cpuid leaf 1, ECX */
#define L1C_SSSE3   BIT(9)
#define L1C_SSE41   BIT(19)
#define L1C_OSXSAVE BIT(27)
#define L1C_AVX     BIT(28)
/* cpuid leaf 7 subleaf 0, EBX */
#define L7B_AVX2     BIT(5)
#define L7B_AVX512F  BIT(16)
#define L7B_SHA      BIT(29)
#define L7B_AVX512BW BIT(30)
#define L7B_AVX512VL BIT(31)
/* XCR0: SSE (XMM) and AVX (upper YMM) state; AVX-512 opmask, upper ZMM0-15 and ZMM16-31 */
#define XCR0_YMM (BIT(1) | BIT(2))
#define XCR0_ZMM (BIT(5) | BIT(6) | BIT(7))

void hf_cpu_x86_decode(const hf_cpu_x86_regs *regs, hf_cpu_features *out)
{
	uint64_t c1 = regs->leaf1_ecx, b7 = regs->leaf7_ebx;
	/* XCR0 means something only when the OS turned XSAVE on (OSXSAVE); otherwise no AVX. */
	uint64_t xcr0 = (c1 & L1C_OSXSAVE) ? regs->xcr0 : 0;
	bool ymm = (xcr0 & XCR0_YMM) == XCR0_YMM;
	bool zmm = ymm && (xcr0 & XCR0_ZMM) == XCR0_ZMM;

	memset(out, 0, sizeof *out);
	out->ssse3 = (c1 & L1C_SSSE3) != 0;
	out->sse41 = (c1 & L1C_SSE41) != 0;
	/* SHA works on XMM registers, which every x86-64 OS saves (no XCR0 condition). */
	out->sha = (b7 & L7B_SHA) != 0;
	out->avx = ymm && (c1 & L1C_AVX);
	out->avx2 = out->avx && (b7 & L7B_AVX2);
	out->avx512f = zmm && (b7 & L7B_AVX512F);
	out->avx512bw = out->avx512f && (b7 & L7B_AVX512BW);
	out->avx512vl = out->avx512f && (b7 & L7B_AVX512VL);
}
