/* sha256d_table_portable: the dispatch table of a build for a CPU family without optimised
 * scanners (meson picks this file off x86-64): the portable reference alone.
 * Threading: constant data.
 */
#include "sha256d_priv.h"

static bool ref_supported(void) { return true; }

static const hf_sha256d_impl ref = {
	"ref", "portable reference (plain C, full SHA-256d per nonce)", 1,
	ref_supported, hf_sha256d_scan_ref,
};

const hf_sha256d_impl *const hf_sha256d_priv_table[] = { &ref };
const size_t hf_sha256d_priv_table_len = 1;
