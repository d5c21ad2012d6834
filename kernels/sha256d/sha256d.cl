/* sha256d.cl: SHA-256d nonce scan on an OpenCL device, one nonce per work-item: the same
 * nonce-free precomputation as the CPU scanners (hf_sha256d_job_init), plain 32-bit integer
 * code with rotate() and bitselect(), the second hash stopped at round 60 (the last one that
 * feeds H7) and an early reject on H7. Work-items whose H7 passes append their nonce through
 * an atomic counter into a small buffer; the host checks each candidate in full.
 *
 * job[] layout (packed by hf_sha256d_cl.c): midstate[8], s3[8], r3_e, r3_a, w16, w17, w18c,
 * w19c, c30, c31, c32, target_hi.
 */
#define J_MID 0
#define J_S3 8
#define J_R3E 16
#define J_R3A 17
#define J_W16 18
#define J_W17 19
#define J_W18C 20
#define J_W19C 21
#define J_C30 22
#define J_C31 23
#define J_C32 24
#define J_THI 25

__constant uint K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define IV0 0x6a09e667u
#define IV1 0xbb67ae85u
#define IV2 0x3c6ef372u
#define IV3 0xa54ff53au
#define IV4 0x510e527fu
#define IV5 0x9b05688cu
#define IV6 0x1f83d9abu
#define IV7 0x5be0cd19u

#define ROTR(x, n) rotate((x), (uint)(32 - (n)))
#define BSIG0(x) (ROTR((x), 2) ^ ROTR((x), 13) ^ ROTR((x), 22))
#define BSIG1(x) (ROTR((x), 6) ^ ROTR((x), 11) ^ ROTR((x), 25))
#define SSIG0(x) (ROTR((x), 7) ^ ROTR((x), 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR((x), 17) ^ ROTR((x), 19) ^ ((x) >> 10))
/* bitselect(a, b, c): c ? b : a, bit by bit */
#define CH(e, f, g) bitselect((g), (f), (e))
#define MAJ(a, b, c) bitselect((a), (b), (a) ^ (c))

#define RND(a, b, c, d, e, f, g, h, kw) {                                   \
	uint t1_ = (h) + BSIG1(e) + CH((e), (f), (g)) + (kw);                \
	d += t1_;                                                            \
	h = t1_ + BSIG0(a) + MAJ((a), (b), (c));                             \
}
#define RND_E(a, b, c, d, e, f, g, h, kw) {                                 \
	d += (h) + BSIG1(e) + CH((e), (f), (g)) + (kw);                      \
}
#define R0(X, kw) X(a, b, c, d, e, f, g, h, kw)
#define R1(X, kw) X(h, a, b, c, d, e, f, g, kw)
#define R2(X, kw) X(g, h, a, b, c, d, e, f, kw)
#define R3(X, kw) X(f, g, h, a, b, c, d, e, kw)
#define R4(X, kw) X(e, f, g, h, a, b, c, d, kw)
#define R5(X, kw) X(d, e, f, g, h, a, b, c, kw)
#define R6(X, kw) X(c, d, e, f, g, h, a, b, kw)
#define R7(X, kw) X(b, c, d, e, f, g, h, a, kw)

#define GEN(w, i) (SSIG1(w[(i) - 2]) + w[(i) - 7] + SSIG0(w[(i) - 15]) + w[(i) - 16])

inline uint bswap32(uint x)
{
	return (rotate(x, 8u) & 0x00ff00ffu) | (rotate(x, 24u) & 0xff00ff00u);
}

/* First hash, K+W of round i >= 4 (W4 = 0x80000000, W5..14 = 0, W15 = 640). */
inline uint kw1(uint *w, int i, uint n, __constant uint *job)
{
	switch (i) {
	case 4: return K[4] + 0x80000000u;
	case 5: case 6: case 7: case 8: case 9: case 10: case 11: case 12: case 13: case 14:
		return K[i];
	case 15: return K[15] + 640u;
	case 16: return K[16] + job[J_W16];
	case 17: return K[17] + job[J_W17];
	case 18: w[18] = job[J_W18C] + SSIG0(n); break;
	case 19: w[19] = job[J_W19C] + n; break;
	case 20: w[20] = SSIG1(w[18]) + 0x80000000u; break;
	case 21: w[21] = SSIG1(w[19]); break;
	case 22: w[22] = SSIG1(w[20]) + 640u; break;
	case 23: w[23] = SSIG1(w[21]) + job[J_W16]; break;
	case 24: w[24] = SSIG1(w[22]) + job[J_W17]; break;
	case 25: case 26: case 27: case 28: case 29: w[i] = SSIG1(w[i - 2]) + w[i - 7]; break;
	case 30: w[30] = SSIG1(w[28]) + w[23] + job[J_C30]; break;
	case 31: w[31] = SSIG1(w[29]) + w[24] + job[J_C31]; break;
	case 32: w[32] = SSIG1(w[30]) + w[25] + job[J_C32]; break;
	case 33: w[33] = SSIG1(w[31]) + w[26] + SSIG0(w[18]) + job[J_W17]; break;
	default: w[i] = GEN(w, i); break;
	}
	return K[i] + w[i];
}

/* Second hash, K+W of round i >= 1 (W8 = 0x80000000, W9..14 = 0, W15 = 256). */
inline uint kw2(uint *w, int i)
{
	switch (i) {
	case 8: return K[8] + 0x80000000u;
	case 9: case 10: case 11: case 12: case 13: case 14: return K[i];
	case 15: return K[15] + 256u;
	case 16: w[16] = SSIG0(w[1]) + w[0]; break;
	case 17: w[17] = SSIG0(w[2]) + w[1] + 0x00a00000u; break;
	case 18: case 19: case 20: case 21:
		w[i] = SSIG1(w[i - 2]) + SSIG0(w[i - 15]) + w[i - 16]; break;
	case 22: w[22] = SSIG1(w[20]) + SSIG0(w[7]) + w[6] + 256u; break;
	case 23: w[23] = SSIG1(w[21]) + w[16] + w[7] + 0x11002000u; break;
	case 24: w[24] = SSIG1(w[22]) + w[17] + 0x80000000u; break;
	case 25: case 26: case 27: case 28: case 29: w[i] = SSIG1(w[i - 2]) + w[i - 7]; break;
	case 30: w[30] = SSIG1(w[28]) + w[23] + 0x00400022u; break;
	case 31: w[31] = SSIG1(w[29]) + w[24] + SSIG0(w[16]) + 256u; break;
	default:
		if (i >= 32)
			w[i] = GEN(w, i);
		break;
	}
	return K[i] + w[i];
}

__kernel void hf_sha256d_scan(__constant uint *job, uint base, uint limit,
			      __global uint *count, __global uint *out, uint cap)
{
	uint gid = (uint)get_global_id(0);
	if (gid >= limit)
		return;
	uint nonce = base + gid;
	uint n = bswap32(nonce);
	uint w[64];
	uint a, b, c, d, e, f, g, h;

	/* first hash from round 4: slots as round 4 (R4) reads them */
	e = job[J_R3A] + n;
	f = job[J_S3 + 0];
	g = job[J_S3 + 1];
	h = job[J_S3 + 2];
	a = job[J_R3E] + n;
	b = job[J_S3 + 4];
	c = job[J_S3 + 5];
	d = job[J_S3 + 6];
	R4(RND, kw1(w, 4, n, job)); R5(RND, kw1(w, 5, n, job));
	R6(RND, kw1(w, 6, n, job)); R7(RND, kw1(w, 7, n, job));
#pragma unroll
	for (int i = 8; i < 64; i += 8) {
		R0(RND, kw1(w, i + 0, n, job)); R1(RND, kw1(w, i + 1, n, job));
		R2(RND, kw1(w, i + 2, n, job)); R3(RND, kw1(w, i + 3, n, job));
		R4(RND, kw1(w, i + 4, n, job)); R5(RND, kw1(w, i + 5, n, job));
		R6(RND, kw1(w, i + 6, n, job)); R7(RND, kw1(w, i + 7, n, job));
	}
	w[0] = a + job[J_MID + 0];
	w[1] = b + job[J_MID + 1];
	w[2] = c + job[J_MID + 2];
	w[3] = d + job[J_MID + 3];
	w[4] = e + job[J_MID + 4];
	w[5] = f + job[J_MID + 5];
	w[6] = g + job[J_MID + 6];
	w[7] = h + job[J_MID + 7];

	/* second hash: round 0 from the IV folded into constants; slots as R1 reads them */
	{
		uint t1 = IV7 + BSIG1(IV4) + CH(IV4, IV5, IV6) + K[0] + w[0];
		h = t1 + BSIG0(IV0) + MAJ(IV0, IV1, IV2);
		d = IV3 + t1;
	}
	a = IV0; b = IV1; c = IV2; e = IV4; f = IV5; g = IV6;
	R1(RND, K[1] + w[1]); R2(RND, K[2] + w[2]); R3(RND, K[3] + w[3]);
	R4(RND, K[4] + w[4]); R5(RND, K[5] + w[5]); R6(RND, K[6] + w[6]);
	R7(RND, K[7] + w[7]);
#pragma unroll
	for (int i = 8; i < 56; i += 8) {
		R0(RND, kw2(w, i + 0)); R1(RND, kw2(w, i + 1));
		R2(RND, kw2(w, i + 2)); R3(RND, kw2(w, i + 3));
		R4(RND, kw2(w, i + 4)); R5(RND, kw2(w, i + 5));
		R6(RND, kw2(w, i + 6)); R7(RND, kw2(w, i + 7));
	}
	R0(RND, kw2(w, 56));
	R1(RND_E, kw2(w, 57)); R2(RND_E, kw2(w, 58)); R3(RND_E, kw2(w, 59));
	R4(RND_E, kw2(w, 60));
	/* round 60 ran as R4, whose d slot is h: H7 = IV7 + h */
	if (bswap32(h + IV7) <= job[J_THI]) {
		uint slot = atomic_inc(count);
		if (slot < cap)
			out[slot] = nonce;
	}
}
