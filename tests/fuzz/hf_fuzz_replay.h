/* hf_fuzz_replay: what a fuzz target's seed file gives the shared replay driver (replay_main.c),
 * which runs a libFuzzer target without libFuzzer so gcc builds and CI exercise it: each file
 * argument once, then deterministic mutations of the seeds, then the seed file's extra inputs.
 * A seed's first byte may be NUL (a selector); its length is 1 + strlen(seed + 1).
 * Threading: single-threaded.
 */
#ifndef HF_FUZZ_REPLAY_H
#define HF_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const char *const hf_fuzz_seeds[];
extern const size_t hf_fuzz_nseeds;
/* Runs target-specific edge inputs through LLVMFuzzerTestOneInput (buf holds cap bytes). */
void hf_fuzz_extra(uint8_t *buf, size_t cap);

#endif
