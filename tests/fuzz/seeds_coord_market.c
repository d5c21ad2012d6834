/* seeds_coord_market: starting inputs for fuzz_coord_market (see its selector byte), and the
 * feed body and series caps' edges.
 * Threading: read-only data.
 */
#include <stdint.h>
#include <string.h>

#include "hf_fuzz_replay.h"

#define HDR "time,btc_usd,difficulty,fees_btc,height,power_usd_kwh,inference_price,inference_demand\n"

const char *const hf_fuzz_seeds[] = {
	"\x00{\"time\":1713571200,\"USD\":63512.5,\"EUR\":59000}",
	"\x20{\"USD\":\"63512.5\"}",
	"\x61{\"error\":\"down\"}",
	"\x01" "840000",
	"\x02{\"currentHashrate\":6.2e20,\"currentDifficulty\":88104191118793.2}",
	"\x13{\"a/b\":[{\"~c\":\"12\"}]}",
	"\x00{\"USD\":NaN}",
	"\x00{\"USD\":-1}",
	"\x04# provenance\n" HDR "2024-04-20T00:00:00Z,63512.5,8.6e13,0.5,840000,0.05,0.0001,100\n"
	"2024-04-20T00:05:00Z,63600,8.6e13,0.6,840001,3.5,0.0001,120\n"
	"1713572400,63700,8.6e13,0.4,840002,0.05,0.0001,90\n",
	"\x04" HDR "2024-04-20T00:00:00Z,1,1,0,0,0,0,0\n2024-04-20T00:00:00Z,1,1,0,0,0,0,0\n",
	"\x05{\"feeds\":{\"btc_usd\":{\"url\":\"http://127.0.0.1:1/api/v1/prices\",\"pointer\":\"/USD\","
	"\"refresh_s\":2},\"power_usd_kwh\":{\"schedule\":[{\"from\":\"00:00\",\"value\":0.04},"
	"{\"from\":\"17:00\",\"value\":0.3}]},\"inference_price\":{\"value\":0.002}},"
	"\"policy\":{\"min_dwell_s\":60},\"classes\":{\"c\":{\"hashrate_hs\":1e9,\"mining_watts\":100,"
	"\"idle_watts\":10}},\"nodes\":[{\"id\":\"n\",\"class\":\"c\",\"count\":3},"
	"{\"match\":\"gpu-*\",\"class\":\"c\"}],\"default_class\":\"c\"}",
};
const size_t hf_fuzz_nseeds = sizeof hf_fuzz_seeds / sizeof hf_fuzz_seeds[0];

void hf_fuzz_extra(uint8_t *buf, size_t cap)
{
	/* a feed body of exactly max_body (4096) digits and one over, a NUL inside a body and
	 * inside a series */
	for (size_t n = 4096; n <= 4097 && n + 1 <= cap; n++) {
		buf[0] = 0x01;
		memset(buf + 1, '7', n);
		LLVMFuzzerTestOneInput(buf, n + 1);
	}
	memcpy(buf, "\x00{\"USD\":1\0}", 11);
	LLVMFuzzerTestOneInput(buf, 11);
	size_t n = 1 + strlen(HDR);
	if (n + 1 <= cap) {
		memcpy(buf, "\x04" HDR, n);
		buf[n] = 0;
		LLVMFuzzerTestOneInput(buf, n + 1);
	}
}
