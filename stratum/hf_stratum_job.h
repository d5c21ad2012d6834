/* hf_stratum_job: a Stratum v1 job and the share maths built on it: coinbase, merkle root,
 * the 80-byte block header and its SHA-256d hash.
 *
 * Invariants: prevhash and merkle-branch entries are held in header byte order (Stratum's
 * notify carries prevhash as eight 32-bit words each byte-swapped; hf_stratum_job_prevhash_*
 * converts). version, nbits, ntime and nonce are numbers (Stratum writes them as big-endian
 * hex); the header serialises them little-endian. Coinbase = coinb1 | extranonce1 | extranonce2
 * | coinb2; the merkle root starts at SHA-256d(coinbase) and folds in each branch entry on the
 * right. A job owns its coinbase parts and branch (heap); copy with hf_stratum_job_copy() and
 * release with hf_stratum_job_clear().
 * Threading: a job belongs to one owner; the functions are reentrant.
 */
#ifndef HF_STRATUM_JOB_H
#define HF_STRATUM_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

#define HF_STRATUM_JOB_ID_MAX 64      /* job id length cap, NUL included */
#define HF_STRATUM_BRANCH_MAX 32      /* merkle branch entries (2^32 transactions) */
#define HF_STRATUM_COINB_MAX 16384    /* bytes per coinbase part */
#define HF_STRATUM_EN1_MAX 32         /* extranonce1 bytes */
#define HF_STRATUM_EN2_MIN 2
#define HF_STRATUM_EN2_MAX 8

typedef struct hf_stratum_job {
	char id[HF_STRATUM_JOB_ID_MAX];
	uint8_t prevhash[32];         /* header byte order */
	uint8_t *coinb1;
	size_t coinb1_len;
	uint8_t *coinb2;
	size_t coinb2_len;
	uint8_t (*branch)[32];
	size_t nbranch;
	uint32_t version;
	uint32_t nbits;
	uint32_t ntime;
	bool clean;
} hf_stratum_job;

/* One candidate share: which job, the miner's extranonce2, and the header fields it chose.
 * version is the full header version (job version with rolled bits applied). */
typedef struct hf_stratum_share {
	char job_id[HF_STRATUM_JOB_ID_MAX];
	uint8_t en2[HF_STRATUM_EN2_MAX];
	size_t en2_len;
	uint32_t ntime;
	uint32_t nonce;
	uint32_t version;
} hf_stratum_share;

/* Deep copy (dst is overwritten, not freed first). */
int hf_stratum_job_copy(hf_stratum_job *dst, const hf_stratum_job *src);
/* Frees what the job owns and zeroes it (NULL accepted). */
void hf_stratum_job_clear(hf_stratum_job *job);

/* Sets job fields from Stratum notify hex: prevhash (64 digits, word-swapped), coinb1, coinb2,
 * branch entries (64 digits each). Caps: HF_STRATUM_COINB_MAX, HF_STRATUM_BRANCH_MAX. */
int hf_stratum_job_set_hex(hf_stratum_job *job, const char *prevhash, const char *coinb1,
			   const char *coinb2, const char *const *branch, size_t nbranch,
			   hf_errbuf *eb);

/* Stratum word-swapped prevhash hex <-> header byte order. */
bool hf_stratum_job_prevhash_decode(const char *hex, uint8_t out[32]);
void hf_stratum_job_prevhash_encode(const uint8_t in[32], char out[65]);

/* SHA-256d of len bytes (the kernels' portable reference, hf_sha256d_hash): what the lab
 * pool validates shares with. */
void hf_stratum_sha256d(const void *data, size_t len, uint8_t out[32]);

/* Builds the coinbase into out (cap outsz); its length in *outlen. HF_ETOOBIG if it does not
 * fit. */
int hf_stratum_job_coinbase(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			    const uint8_t *en2, size_t en2_len, uint8_t *out, size_t outsz,
			    size_t *outlen);

/* Merkle root (header byte order) for this job and extranonces. */
int hf_stratum_job_merkle_root(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			       const uint8_t *en2, size_t en2_len, uint8_t root[32]);

/* Serialises an 80-byte header. */
void hf_stratum_header_build(uint32_t version, const uint8_t prevhash[32],
			     const uint8_t merkle_root[32], uint32_t ntime, uint32_t nbits,
			     uint32_t nonce, uint8_t out[80]);

/* Header and its SHA-256d for a share of this job; header may be NULL. */
int hf_stratum_job_share_hash(const hf_stratum_job *job, const uint8_t *en1, size_t en1_len,
			      const hf_stratum_share *share, uint8_t header[80],
			      uint8_t hash[32]);

/* Applies rolled version bits under mask: (base & ~mask) | (bits & mask). */
uint32_t hf_stratum_version_roll(uint32_t base, uint32_t mask, uint32_t bits);

#endif
