/* hf_cpu: which instruction-set extensions the optimised kernels may use on this machine: the
 * CPU must report them (cpuid) and, for AVX and AVX-512, the OS must have enabled their
 * register state (XCR0 through XGETBV); a CPU with AVX-512 under a kernel or hypervisor that
 * does not save ZMM registers reports avx512f = false.
 *
 * The one place the project asks the CPU what it can do: every kernel's supported() check
 * reads hf_cpu_detect(). This module is built without ISA flags (-mavx2 and the like), so the
 * check never executes an instruction it is checking for.
 * Threading: no state; any thread may call anything at any time.
 */
#ifndef HF_CPU_H
#define HF_CPU_H

#include <stdbool.h>
#include <stdint.h>

/* Usable extensions (all false on a CPU family other than x86). */
typedef struct hf_cpu_features {
	bool ssse3;
	bool sse41;
	bool sha;       /* SHA extensions: sha256rnds2, sha256msg1, sha256msg2 (XMM state) */
	bool avx;       /* AVX, with YMM state enabled by the OS */
	bool avx2;      /* AVX2, with YMM state enabled by the OS */
	bool avx512f;   /* AVX-512 Foundation, with opmask and ZMM state enabled by the OS */
	bool avx512bw;  /* AVX-512 byte and word instructions (same state as avx512f) */
	bool avx512vl;  /* AVX-512 on 128- and 256-bit registers (same state as avx512f) */
} hf_cpu_features;

/* Fills *out with what this machine's CPU and OS allow (cpuid and XGETBV on x86; all false
 * elsewhere). Cheap (a handful of cpuid instructions) but not free: call it when choosing a
 * kernel, not per call of a kernel. */
void hf_cpu_detect(hf_cpu_features *out);

/* The x86 registers hf_cpu_detect() reads. */
typedef struct hf_cpu_x86_regs {
	uint32_t leaf1_ecx;   /* cpuid leaf 1, ECX (0 if absent) */
	uint32_t leaf7_ebx;   /* cpuid leaf 7 subleaf 0, EBX (0 if the CPU has no leaf 7) */
	uint64_t xcr0;        /* XGETBV(0): state the OS saves (0 if leaf 1 lacks OSXSAVE) */
} hf_cpu_x86_regs;

/* Decodes raw x86 registers into usable features (pure; what hf_cpu_detect() uses on x86,
 * exposed so tests can feed it machines this one is not). */
void hf_cpu_x86_decode(const hf_cpu_x86_regs *regs, hf_cpu_features *out);

#endif
