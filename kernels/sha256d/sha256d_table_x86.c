/* sha256d_table_x86: the dispatch table of an x86-64 build, best first (meson picks this file
 * on x86-64; other CPU families get sha256d_table_portable.c). The order is by measured
 * per-core speed on the reference machine: AVX-512 16-way, then SHA-NI, then AVX2 8-way.
 *
 * The supported() checks live here, not beside the scanners: this file is built without ISA
 * flags, so a check cannot itself execute an AVX2 or AVX-512 instruction the compiler chose
 * (the scanners' files are built with -mavx2, -mavx512f, -msha). What the CPU and OS allow is
 * read in one place, kernels/cpu (cpuid and XGETBV).
 * Threading: constant data; the checks have no state.
 */
#include "hf_cpu.h"
#include "sha256d_priv.h"

static bool ref_supported(void) { return true; }

static bool avx512_supported(void)
{
	hf_cpu_features f;
	hf_cpu_detect(&f);
	return f.avx512f;
}

static bool shani_supported(void)
{
	hf_cpu_features f;
	hf_cpu_detect(&f);
	return f.sha && f.sse41;
}

static bool avx2_supported(void)
{
	hf_cpu_features f;
	hf_cpu_detect(&f);
	return f.avx2;
}

static const hf_sha256d_impl avx512 = {
	"avx512", "AVX-512F, 16 nonces per register, rotates and ternary logic", 16,
	avx512_supported, hf_sha256d_priv_scan_avx512,
};
static const hf_sha256d_impl shani = {
	"shani", "x86 SHA extensions, 2 nonces interleaved", 2,
	shani_supported, hf_sha256d_priv_scan_shani,
};
static const hf_sha256d_impl avx2 = {
	"avx2", "AVX2, 8 nonces per register", 8,
	avx2_supported, hf_sha256d_priv_scan_avx2,
};
static const hf_sha256d_impl ref = {
	"ref", "portable reference (plain C, full SHA-256d per nonce)", 1,
	ref_supported, hf_sha256d_scan_ref,
};

const hf_sha256d_impl *const hf_sha256d_priv_table[] = { &avx512, &shani, &avx2, &ref };
const size_t hf_sha256d_priv_table_len = sizeof(hf_sha256d_priv_table) /
					 sizeof(hf_sha256d_priv_table[0]);
