/* gemm_gemv.cl: GEMV-style SGEMM for small M (a few rows times large weights), streaming B once.
 *
 * Contract (the host in hf_gemm.c keeps it):
 *   C[M x N] = alpha * op(A) * op(B) + beta * C, row-major C with row stride ldc; element (i, k)
 *   of op(A) is A[i*ars + k*acs]. B is FP32, or FP16 storage when B_HALF is defined.
 *   hf_gemv_n (B not transposed, op(B)[k][j] = B[k*ldb + j]): work-item (x, s) computes columns
 *   x*JB*NR .. (x+1)*JB*NR-1 (NR = NV*VW, JB slices of NR) for every row of C over the s-th of
 *   KS splits of K, walking
 *   it in blocks of KB rows copied to local memory, MB rows of A per pass over each block (B
 *   comes from memory once).
 *   KS == 1 writes C; KS > 1 writes partial sums to W (rows laid out as WROW below) and hf_gemv_reduce (work-item
 *   (x, m)) adds them into C. Launch: (ceil(N/(JB*NR)), KS) then (ceil(N/NR), M).
 *   hf_gemv_rows (B not transposed, M <= 2): work-item (x, s) streams the rows of k-split s
 *   over column slice x of NX; KS == 1 writes C directly (one launch), KS > 1 writes its rows
 *   of W, then hf_gemv_reduce. Launch: (NX, KS) [then (ceil(N/NR), M)].
 *   hf_gemv_t (B transposed, op(B)[k][j] = B[j*ldb + k], the "weights as rows" layout):
 *   work-item x computes columns x*JB .. x*JB+JB-1 as dot products along k with VW-wide loads;
 *   it needs acs == 1 (rows of op(A) contiguous). Rows of A past M are clamped (read, never
 *   stored). beta == 0 never reads C. Edges: the last work-item takes a scalar path.
 *   hf_gemv_t launch: (ceil(N/JB)). Local size 1 everywhere.
 * Tunables (-D): VW (vector width), NV (vectors per row, hf_gemv_n), KB (k-block rows,
 *   hf_gemv_n; in hf_gemv_rows the rows of B streamed together), JB (columns per work-item,
 *   hf_gemv_t), MB (rows of C per pass). KS (k-splits) and NX (column slices) are kernel
 *   arguments.
 */
/* CAT, VEC, VLOAD, VSTORE, VLOADB, NR, BTYPE, LOADB, store_row: gemm_common.cl. */


/* Partial sums: row (s, m) of W starts at W + 512 + (s*M + m) * WLD(N) floats, WLD a multiple
 * of 1024 floats, so every row sits 2 KiB off a 4 KiB boundary. On CPUs its stores then never
 * share the low 12 address bits with the loads of B rows that start on 4 KiB boundaries (the
 * usual case for weights), which would stall those loads behind the stores (4K aliasing).
 * The host allocates KS * M * WLD(N) + 512 floats. */
#define WLD(N) (((size_t)(N) + 1023) / 1024 * 1024)
#define WROW(W, s, m, M, N) ((W) + 512 + ((size_t)(s) * (M) + (size_t)(m)) * WLD(N))

static float out_value(float acc, float alpha, float beta, __global const float *c)
{
	float x = alpha * acc;
	return beta != 0.0f ? fma(beta, *c, x) : x;
}

/* Work-item (x, s): columns x*NR .. x*NR+NR-1 over k-split s of KS. With KS == 1 it writes C
 * (alpha, beta); otherwise raw partial sums into its rows of W for hf_gemv_reduce. The k range is
 * walked in blocks of KB rows: the B block (KB x NR) stays in cache while every MB-row pass of
 * A goes over it, so B comes from memory once. */
__kernel void hf_gemv_n(int M, int N, int K, float alpha, float beta,
			__global const float *A, int ars, int acs,
			__global const BTYPE *B, int ldb, __global float *C, int ldc,
			__global float *W, int KS)
{
	/* The k-block of B (KB rows of JB*NR columns), copied contiguous and converted to FP32:
	 * whole cache lines per row keep the strided reads few, and rows a multiple of 2 KiB
	 * apart cannot evict each other between the passes. */
	__local float bl[KB * JB * NR];
	const int ns = JB * NR;
	int j0 = get_global_id(0) * ns, s = get_global_id(1);
	if (j0 >= N)
		return;
	int kper = (K + KS - 1) / KS;
	int kbeg = s * kper, kend = min(K, kbeg + kper);
	__global float *out = KS == 1 ? C : WROW(W, s, 0, M, N);
	int ldo = KS == 1 ? ldc : (int)WLD(N);
	float oa = KS == 1 ? alpha : 1.0f, ob = KS == 1 ? beta : 0.0f;
	int ncols = N - j0;
	for (int kb = kbeg; kb < max(kend, kbeg + 1); kb += KB) {
		int kn = min(KB, kend - kb);
		__global const BTYPE *b = B + (size_t)kb * ldb + j0;
		if (ncols >= ns) {
			for (int k = 0; k < kn; k++)
				for (int v = 0; v < JB * NV; v++)
					VSTORE(VLOADB(v, b + (size_t)k * ldb), 0, bl + k * ns + v * VW);
		} else { /* last, partial column slice: zeros past N */
			for (int k = 0; k < kn; k++)
				for (int c = 0; c < ns; c++)
					bl[k * ns + c] = c < ncols ? LOADB(b + (size_t)k * ldb, c) : 0.0f;
		}
		for (int js = 0; js < JB && js * NR < ncols; js++) {
			for (int m0 = 0; m0 < M; m0 += MB) {
				__global const float *arow[MB];
				_Pragma("unroll") for (int r = 0; r < MB; r++)
					arow[r] = A + (size_t)min(m0 + r, M - 1) * ars +
						  (size_t)kb * acs;
				VEC acc[MB][NV];
				_Pragma("unroll") for (int r = 0; r < MB; r++)
					_Pragma("unroll") for (int v = 0; v < NV; v++)
						acc[r][v] = (VEC)0.0f;
				__local const float *bk = bl + js * NR;
				for (int k = 0; k < kn; k++, bk += ns) {
					VEC bv[NV];
					_Pragma("unroll") for (int v = 0; v < NV; v++)
						bv[v] = VLOAD(v, bk);
					_Pragma("unroll") for (int r = 0; r < MB; r++) {
						VEC a = (VEC)arow[r][(size_t)k * acs];
						_Pragma("unroll") for (int v = 0; v < NV; v++)
							acc[r][v] = fma(a, bv[v], acc[r][v]);
					}
				}
				int jj = j0 + js * NR;
				_Pragma("unroll") for (int r = 0; r < MB; r++)
					if (m0 + r < M)
						store_row(out + (size_t)(m0 + r) * ldo + jj, N - jj, oa,
							ob, kb == kbeg, acc[r]);
			}
		}
	}
}

/* Work-item (x, s) streams rows kbeg .. kend-1 of B (k-split s of KS) over column slice x of
 * NX (slices a multiple of 16 floats wide): the sequential pattern that suits M = 1 or 2, B read
 * once, front to back within each slice, while the slice of the output rows stays in L1. With
 * KS == 1 the output is C itself (beta applied first, alpha folded into A: one launch, no
 * reduce); otherwise raw partial sums into its rows of W, and hf_gemv_reduce adds them into C. */
__kernel void hf_gemv_rows(int M, int N, int K, float alpha, float beta,
			   __global const float *A, int ars, int acs, __global const BTYPE *B,
			   int ldb, __global float *C, int ldc, __global float *W, int KS, int NX)
{
	int x = get_global_id(0), s = get_global_id(1);
	if (x >= NX || s >= KS || N <= 0)
		return;
	int sw = ((N + NX - 1) / NX + 15) / 16 * 16;
	int j0 = x * sw, j1 = min(N, j0 + sw);
	if (j0 >= N)
		return;
	int kper = (K + KS - 1) / KS;
	int kbeg = s * kper, kend = min(K, kbeg + kper);
	int jv = j0 + (j1 - j0) / VW * VW; /* end of the vector part */
	bool to_c = KS == 1;
	float sa = to_c ? alpha : 1.0f;
	for (int m = 0; m < M; m++) {
		__global float *o = to_c ? C + (size_t)m * ldc : WROW(W, s, m, M, N);
		for (int j = j0; j < j1; j++)
			o[j] = to_c && beta != 0.0f ? beta * o[j] : 0.0f;
	}
	/* KB rows of B at a time: KB sequential streams in flight, and the output read and
	 * written once per KB rows. */
	int k = kbeg;
	for (; k + KB <= kend; k += KB) {
		__global const BTYPE *b = B + (size_t)k * ldb;
		for (int m = 0; m < M; m++) {
			__global const float *ar = A + (size_t)m * ars + (size_t)k * acs;
			float a[KB];
			_Pragma("unroll") for (int r = 0; r < KB; r++)
				a[r] = sa * ar[r * acs];
			__global float *o = to_c ? C + (size_t)m * ldc : WROW(W, s, m, M, N);
			for (int j = j0; j < jv; j += VW) {
				VEC v = VLOAD(0, o + j);
				_Pragma("unroll") for (int r = 0; r < KB; r++)
					v = fma((VEC)a[r], VLOADB(0, b + (size_t)r * ldb + j), v);
				VSTORE(v, 0, o + j);
			}
			for (int j = jv; j < j1; j++) {
				float v = o[j];
				_Pragma("unroll") for (int r = 0; r < KB; r++)
					v = fma(a[r], LOADB(b + (size_t)r * ldb, j), v);
				o[j] = v;
			}
		}
	}
	for (; k < kend; k++) {
		__global const BTYPE *b = B + (size_t)k * ldb;
		for (int m = 0; m < M; m++) {
			float a = sa * A[(size_t)m * ars + (size_t)k * acs];
			__global float *o = to_c ? C + (size_t)m * ldc : WROW(W, s, m, M, N);
			for (int j = j0; j < jv; j += VW)
				VSTORE(fma((VEC)a, VLOADB(0, b + j), VLOAD(0, o + j)), 0, o + j);
			for (int j = jv; j < j1; j++)
				o[j] = fma(a, LOADB(b, j), o[j]);
		}
	}
}

/* Work-item (x, m): C[m][x*NR .. x*NR+NR-1] = alpha * sum over s of W[s][m][...] + beta * C. */
__kernel void hf_gemv_reduce(int M, int N, int KS, float alpha, float beta,
			     __global const float *W, __global float *C, int ldc)
{
	int j0 = get_global_id(0) * NR, m = get_global_id(1);
	if (j0 >= N || m >= M)
		return;
	int j1 = min(N, j0 + NR);
	__global float *c = C + (size_t)m * ldc;
	for (int j = j0; j < j1; j++) {
		float sum = 0.0f;
		for (int s = 0; s < KS; s++)
			sum += WROW(W, s, m, M, N)[j];
		c[j] = out_value(sum, alpha, beta, c + j);
	}
}

static float hsum(VEC v)
{
	float t[VW];
	VSTORE(v, 0, t);
	float s = 0.0f;
	for (int i = 0; i < VW; i++)
		s += t[i];
	return s;
}

__kernel void hf_gemv_t(int M, int N, int K, float alpha, float beta,
			__global const float *A, int ars, int acs,
			__global const BTYPE *B, int ldb, __global float *C, int ldc)
{
	int j0 = get_global_id(0) * JB;
	if (j0 >= N)
		return;
	int nj = min(JB, N - j0);
	int kv = K - K % VW;
	__global const BTYPE *brow[JB];
	_Pragma("unroll") for (int c = 0; c < JB; c++)
		brow[c] = B + (size_t)(j0 + min(c, nj - 1)) * ldb;
	for (int m0 = 0; m0 < M; m0 += MB) {
		__global const float *arow[MB];
		_Pragma("unroll") for (int r = 0; r < MB; r++)
			arow[r] = A + (size_t)min(m0 + r, M - 1) * ars;
		VEC acc[MB][JB];
		_Pragma("unroll") for (int r = 0; r < MB; r++)
			_Pragma("unroll") for (int c = 0; c < JB; c++)
				acc[r][c] = (VEC)0.0f;
		for (int k = 0; k < kv; k += VW) {
			VEC bv[JB];
			_Pragma("unroll") for (int c = 0; c < JB; c++)
				bv[c] = VLOADB(0, brow[c] + k);
			_Pragma("unroll") for (int r = 0; r < MB; r++) {
				VEC a = VLOAD(0, arow[r] + k);
				_Pragma("unroll") for (int c = 0; c < JB; c++)
					acc[r][c] = fma(a, bv[c], acc[r][c]);
			}
		}
		_Pragma("unroll") for (int r = 0; r < MB; r++) {
			if (m0 + r >= M)
				break;
			_Pragma("unroll") for (int c = 0; c < JB; c++) {
				if (c >= nj)
					break;
				float s = hsum(acc[r][c]);
				for (int k = kv; k < K; k++)
					s = fma(arow[r][k], LOADB(brow[c], k), s);
				__global float *cp = C + (size_t)(m0 + r) * ldc + j0 + c;
				*cp = out_value(s, alpha, beta, cp);
			}
		}
	}
}
