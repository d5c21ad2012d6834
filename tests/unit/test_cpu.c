/* Unit tests for hf_cpu: the decoding of the x86 feature registers on machines this one is not
 * (AVX-512 CPUs whose OS does not save ZMM state, XSAVE off, partial state), and this machine's
 * detection against the kernel's own view in /proc/cpuinfo (which clears a flag whose register
 * state the kernel does not enable).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cpuinfo_testutil.h"
#include "hf_cpu.h"

#define B(n) (1u << (n))
#define SSSE3 B(9)
#define SSE41 B(19)
#define OSXSAVE B(27)
#define AVX B(28)
#define AVX2 B(5)
#define AVX512F B(16)
#define SHA B(29)
#define AVX512BW B(30)
#define AVX512VL B(31)
#define L1_ALL (SSSE3 | SSE41 | OSXSAVE | AVX)
#define L7_ALL (AVX2 | AVX512F | SHA | AVX512BW | AVX512VL)

static hf_cpu_features decode(uint32_t ecx1, uint32_t ebx7, uint64_t xcr0)
{
	hf_cpu_x86_regs r = { ecx1, ebx7, xcr0 };
	hf_cpu_features f;
	memset(&f, 0xff, sizeof f); /* decode must set every field */
	hf_cpu_x86_decode(&r, &f);
	return f;
}

Test(cpu, nothing_reported_nothing_usable)
{
	hf_cpu_features f = decode(0, 0, 0);
	cr_assert(!f.ssse3 && !f.sse41 && !f.sha && !f.avx && !f.avx2);
	cr_assert(!f.avx512f && !f.avx512bw && !f.avx512vl);
}

Test(cpu, zen3_like_avx2_and_sha)
{
	hf_cpu_features f = decode(L1_ALL, AVX2 | SHA, 0x7);
	cr_assert(f.ssse3 && f.sse41 && f.sha && f.avx && f.avx2);
	cr_assert(!f.avx512f && !f.avx512bw && !f.avx512vl);
}

Test(cpu, avx512_with_zmm_state)
{
	hf_cpu_features f = decode(L1_ALL, L7_ALL, 0xe7);
	cr_assert(f.avx2 && f.sha && f.avx512f && f.avx512bw && f.avx512vl);
	f = decode(L1_ALL, AVX2 | AVX512F, 0xe7);
	cr_assert(f.avx512f && !f.avx512bw && !f.avx512vl, "bw and vl have their own cpuid bits");
}

Test(cpu, avx512_cpu_without_os_zmm_state_is_not_usable)
{
	/* the CPU has AVX-512 but the OS (or hypervisor) saves only XMM and YMM */
	hf_cpu_features f = decode(L1_ALL, L7_ALL, 0x7);
	cr_assert(f.avx2, "AVX2 needs only YMM state");
	cr_assert(!f.avx512f && !f.avx512bw && !f.avx512vl);
	/* opmask and upper ZMM0-15 but not ZMM16-31, and the other partial states */
	for (uint64_t zmm = 0; zmm < 7; zmm++) {
		f = decode(L1_ALL, L7_ALL, 0x7 | (zmm << 5));
		cr_assert(!f.avx512f, "XCR0 %#llx", (unsigned long long)(0x7 | (zmm << 5)));
	}
	/* ZMM state without YMM state is not a sane OS, and not usable */
	f = decode(L1_ALL, L7_ALL, 0xe1);
	cr_assert(!f.avx && !f.avx2 && !f.avx512f);
}

Test(cpu, xcr0_ignored_without_osxsave)
{
	/* XGETBV faults when the OS has not enabled XSAVE: no AVX of any width, whatever the
	 * register holds; SHA and SSE work on XMM, which is always saved */
	hf_cpu_features f = decode(L1_ALL & ~OSXSAVE, L7_ALL, 0xe7);
	cr_assert(!f.avx && !f.avx2 && !f.avx512f && !f.avx512bw && !f.avx512vl);
	cr_assert(f.sha && f.sse41 && f.ssse3);
}

Test(cpu, avx2_needs_the_avx_bit)
{
	hf_cpu_features f = decode(L1_ALL & ~AVX, AVX2, 0x7);
	cr_assert(!f.avx && !f.avx2);
	f = decode(L1_ALL, AVX2, 0x3);
	cr_assert(!f.avx && !f.avx2, "XCR0 without upper-YMM state");
}

Test(cpu, detect_agrees_with_the_kernel)
{
	hf_cpu_features f;
	struct { const char *flag; bool have; } want[8];
	hf_cpu_detect(&f);
	want[0].flag = "ssse3", want[0].have = f.ssse3;
	want[1].flag = "sse4_1", want[1].have = f.sse41;
	want[2].flag = "sha_ni", want[2].have = f.sha;
	want[3].flag = "avx", want[3].have = f.avx;
	want[4].flag = "avx2", want[4].have = f.avx2;
	want[5].flag = "avx512f", want[5].have = f.avx512f;
	want[6].flag = "avx512bw", want[6].have = f.avx512bw;
	want[7].flag = "avx512vl", want[7].have = f.avx512vl;
	if (hf_test_cpuinfo_has("ssse3") < 0)
		cr_skip_test("no /proc/cpuinfo to compare with");
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect_eq(hf_test_cpuinfo_has(want[i].flag) == 1, want[i].have,
			     "%s: /proc/cpuinfo says %d, hf_cpu_detect says %d", want[i].flag,
			     hf_test_cpuinfo_has(want[i].flag), want[i].have);
}
