/* fuzz_stratum_core: libFuzzer target for the sans-I/O Stratum client core. The input is fed
 * in chunks whose sizes come from the first bytes, with requests outstanding so responses
 * take every typed path; every event is drained and cleared. Built with clang as a libFuzzer
 * binary, and with any compiler as a replay/smoke program (replay_main.c in tests/fuzz).
 * Threading: single-threaded.
 */
#include <stddef.h>
#include <stdint.h>

#include "hf_stratum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hf_stratum_opts opts = { .max_line = 4096, .max_events = 64 };
	hf_stratum *s = hf_stratum_new(&opts);
	uint8_t en2[4] = { 0 };
	hf_stratum_submit_args a = { .worker = "w", .job_id = "j", .en2 = en2, .en2_len = 4 };
	hf_stratum_event ev;
	size_t off = 0, step = size ? (size_t)data[0] % 64 + 1 : 1;

	if (!s)
		return 0;
	hf_stratum_subscribe(s, true, NULL);
	hf_stratum_authorize(s, "w", "x", NULL);
	hf_stratum_configure(s, 0x1fffe000, 2, NULL);
	hf_stratum_extranonce_subscribe(s, NULL);
	for (int i = 0; i < 4; i++)
		hf_stratum_submit(s, &a, NULL);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		hf_stratum_feed(s, data + off, n);
		off += n;
		while (hf_stratum_next_event(s, &ev))
			hf_stratum_event_clear(&ev);
		if (hf_stratum_out(s, &n) && n > 65536)
			hf_stratum_out_consume(s, n);
	}
	hf_stratum_free(s);
	return 0;
}
