/* seeds_stratum_core: starting inputs for fuzz_stratum_core's replay run (pool messages).
 * Threading: read-only data.
 */
#include <stdint.h>

#include "hf_fuzz_replay.h"

const char *const hf_fuzz_seeds[] = {
	"{\"id\":1,\"result\":[[[\"mining.notify\",\"ab\"]],\"08000002\",4],\"error\":null}\n"
	"{\"id\":2,\"result\":true,\"error\":null}\n",
	"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"bf\",\"000000001111111122222222"
	"33333333444444445555555566666666aabbccdd\",\"01\",\"02\",[],\"20000000\",\"1705ae3a\","
	"\"5e9b3c2a\",true]}\n",
	"{\"id\":3,\"result\":{\"version-rolling\":true,\"version-rolling.mask\":\"1fffe000\"}}\n"
	"{\"id\":5,\"result\":null,\"error\":[21,\"Stale\",null]}\n",
	"{\"method\":\"client.reconnect\",\"params\":[\"h\",\"3333\",5]}\n"
	"{\"method\":\"mining.set_difficulty\",\"params\":[0.0138]}\n"
	"{\"id\":7,\"method\":\"mining.ping\"}\n",
	/* an unknown method quoted in the error detail: C1 controls shrink under cleaning */
	"{\"id\":8,\"method\":\"x\xc2\x80\xc3\xa9\xc2\x9f\xe2\x82\xac\"}\n",
};
const size_t hf_fuzz_nseeds = sizeof hf_fuzz_seeds / sizeof hf_fuzz_seeds[0];

void hf_fuzz_extra(uint8_t *buf, size_t cap)
{
}
