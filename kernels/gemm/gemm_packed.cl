/* gemm_packed.cl: register-blocked SGEMM on packed panels (the large-shape family).
 *
 * Contract (the host in hf_gemm.c keeps it):
 *   C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C, all row-major, C with row stride ldc.
 *   hf_pack_a copies op(A) into Ap = [ceil(M/MR)][K][MR] (rows past M are zero);
 *   hf_pack_b copies rows kofs .. kofs+K-1 of op(B) into Bp = [ceil(N/NR)][K][NR] (columns
 *   past N are zero), converting FP16 storage (B_HALF) to FP32: all of op(B) (kofs = 0), or
 *   one k-range at a time into a workspace that stays in the last-level cache. op() is expressed by element strides (rs, cs): element (i, k)
 *   of op(A) is A[i*rs + k*cs], so a transpose is only a swap of strides.
 *   hf_gemm_packed: work-item (x, y) computes TM micro-tiles of MR x NR, tiles y*TM .. y*TM+TM-1
 *   of column panel x, in registers (MR*NV accumulators of VW floats), over k in [kbeg, kend)
 *   one k-chunk of KC at a time; the chunk at k = 0 writes alpha*acc + beta*C, later chunks
 *   add alpha*acc to C. The host launches it once per k-range of KL (so every work-item's A
 *   strip and B panel for that range stay in L2 while the next work-items reuse them).
 *   Panel x of B starts at Bp + x*bps with rows brs apart, row k of op(B) at row k - bk0 (the
 *   first k the buffer holds): packed whole, bps = K*NR, brs = NR, bk0 = 0; packed per k-range,
 *   bps = KL*NR, brs = NR, bk0 = kbeg;
 *   the host may instead pass op(B) itself (bps = NR, brs = ldb) when B is FP32, not
 *   transposed, N is a multiple of NR and the row stride does not alias in the caches.
 *   beta == 0 never reads C (NaN in C does not propagate). Edges are masked on the store only.
 *   Launch: local size 1 in every dimension (each work-item is one work-group, so PoCL compiles
 *   one machine-code variant and the explicit vectors map onto SIMD registers).
 * Tunables (-D): MR (rows per micro-tile), NV (vectors per row), VW (vector width 4, 8, 16),
 *   TM (micro-tiles per work-item), KC (k-chunk: the B panel chunk copied to local memory),
 *   KU (k unroll), PK (k rows per pack work-item).
 */
/* CAT, UNROLL, VEC, VLOAD, VSTORE, NR, BTYPE, LOADB, store_row: gemm_common.cl. */

__kernel void hf_pack_a(int M, int K, __global const float *A, int rs, int cs,
			__global float *Ap)
{
	int p = get_global_id(0), k0 = get_global_id(1) * PK;
	int k1 = min(k0 + PK, K);
	__global float *dst = Ap + (size_t)p * K * MR;
	for (int r = 0; r < MR; r++) {
		int i = p * MR + r;
		if (i < M) {
			__global const float *src = A + (size_t)i * rs;
			for (int k = k0; k < k1; k++)
				dst[(size_t)k * MR + r] = src[(size_t)k * cs];
		} else {
			for (int k = k0; k < k1; k++)
				dst[(size_t)k * MR + r] = 0.0f;
		}
	}
}

__kernel void hf_pack_b(int N, int K, __global const BTYPE *B, int rs, int cs,
			__global float *Bp, int kofs)
{
	int q = get_global_id(0), k0 = get_global_id(1) * PK;
	int k1 = min(k0 + PK, K);
	int j0 = q * NR;
	__global float *dst = Bp + (size_t)q * K * NR;
	if (cs == 1 && j0 + NR <= N) {
		/* Rows of op(B) are contiguous: copy NR floats per k. */
		for (int k = k0; k < k1; k++) {
			__global const BTYPE *src = B + (size_t)(k + kofs) * rs + j0;
			for (int c = 0; c < NR; c++)
				dst[(size_t)k * NR + c] = LOADB(src, c);
		}
		return;
	}
	if (rs == 1 && j0 + NR <= N) {
		/* Transposed B (the weights layout, N x K): column j of op(B) is row j of B,
		 * contiguous along k. k outside, so each row of the panel is written whole (one
		 * cache line for NR = 16) while the NR rows of B stream side by side. */
		__global const BTYPE *src = B + (size_t)j0 * cs + kofs;
		int k = k0;
		/* 8 k at a time: one 8-wide load per row of B, the NR x 8 block turned in
		 * registers. */
		for (; k + 8 <= k1; k += 8) {
			float t[NR][8];
			_Pragma("unroll") for (int c = 0; c < NR; c++)
				vstore8(LOADB8(src + (size_t)c * cs + k), 0, t[c]);
			_Pragma("unroll") for (int kk = 0; kk < 8; kk++) {
				float row[NR];
				_Pragma("unroll") for (int c = 0; c < NR; c++)
					row[c] = t[c][kk];
				_Pragma("unroll") for (int v = 0; v < NV; v++)
					VSTORE(VLOAD(v, row), 0, dst + (size_t)(k + kk) * NR + v * VW);
			}
		}
		for (; k < k1; k++) {
			float row[NR];
			_Pragma("unroll") for (int c = 0; c < NR; c++)
				row[c] = LOADB(src, (size_t)c * cs + k);
			_Pragma("unroll") for (int v = 0; v < NV; v++)
				VSTORE(VLOAD(v, row), 0, dst + (size_t)k * NR + v * VW);
		}
		return;
	}
	/* Edge panel: walk each column along k. */
	for (int c = 0; c < NR; c++) {
		int j = j0 + c;
		if (j < N) {
			for (int k = k0; k < k1; k++)
				dst[(size_t)k * NR + c] = LOADB(B, (size_t)(k + kofs) * rs +
								  (size_t)j * cs);
		} else {
			for (int k = k0; k < k1; k++)
				dst[(size_t)k * NR + c] = 0.0f;
		}
	}
}

__kernel void hf_gemm_packed(int M, int N, int K, float alpha, float beta,
			     __global const float *restrict Ap, __global const float *restrict Bp,
			     __global float *restrict C, int ldc, int kbeg, int kend, int bps,
			     int brs, int bk0)
{
	int q = get_global_id(0);
	int npan = (M + MR - 1) / MR;
	int j0 = q * NR;
	int p0 = get_global_id(1) * TM;
	if (p0 >= npan || j0 >= N)
		return;
	/* k-chunks outside the tiles: the chunk of the B panel is copied contiguous into local
	 * memory (a cache-resident scratch on CPUs; 1/(TM*MR) of the work) so rows of B read in
	 * place cannot alias in the caches, and stays there while the TM tiles of A stream past
	 * it; C takes the partial sums. K == 0 still applies beta. */
	__local float bl[KC * NR];
	for (int k0 = kbeg; k0 < max(kend, 1); k0 += KC) {
		int kn = min(KC, kend - k0);
		__global const float *bp = Bp + (size_t)q * bps + (size_t)(k0 - bk0) * brs;
		for (int k = 0; k < kn; k++)
			_Pragma("unroll") for (int v = 0; v < NV; v++)
				VSTORE(VLOAD(v, bp + (size_t)k * brs), 0, bl + k * NR + v * VW);
		for (int t = 0; t < TM; t++) {
			int p = p0 + t;
			if (p >= npan)
				break;
			__global const float *a = Ap + ((size_t)p * K + k0) * MR;
			__local const float *b = bl;
			VEC acc[MR][NV];
			_Pragma("unroll") for (int r = 0; r < MR; r++)
				_Pragma("unroll") for (int v = 0; v < NV; v++)
					acc[r][v] = (VEC)0.0f;
			UNROLL(KU)
			for (int k = 0; k < kn; k++) {
				VEC bv[NV];
				_Pragma("unroll") for (int v = 0; v < NV; v++)
					bv[v] = VLOAD(v, b);
				_Pragma("unroll") for (int r = 0; r < MR; r++) {
					VEC av = (VEC)a[r];
					_Pragma("unroll") for (int v = 0; v < NV; v++)
						acc[r][v] = fma(av, bv[v], acc[r][v]);
				}
				a += MR;
				b += NR;
			}
			int i0 = p * MR;
			_Pragma("unroll") for (int r = 0; r < MR; r++)
				if (i0 + r < M)
					store_row(C + (size_t)(i0 + r) * ldc + j0, N - j0, alpha, beta,
						  k0 == 0, acc[r]);
		}
	}
}
