/* gemm_tiled.cl: work-group SGEMM with local-memory tiles and register blocking (the GPU family).
 *
 * Contract (the host in hf_gemm.c keeps it):
 *   C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C, all row-major, read in place (no
 *   workspace): element (i, k) of op(A) is A[i*lda + k], or A[k*lda + i] with TA defined;
 *   element (k, j) of op(B) is B[k*ldb + j], or B[j*ldb + k] with TB defined; B is FP32, or FP16
 *   with B_HALF (read with vload_half, computed in FP32).
 *   Work-group (gx, gy) computes the TILE_M x TILE_N block of C at rows gy*TILE_M and columns
 *   gx*TILE_N, TILE_M = LY*WM and TILE_N = LX*WN. Work-item (tx, ty) owns WM rows and WN
 *   columns of it, interleaved so that neighbouring work-items store neighbouring columns of C
 *   (coalesced) and read neighbouring words of the local B tile (no bank conflicts), while the
 *   A words they read are the same (a broadcast): with VL = 1, rows ty + r*LY and columns
 *   tx + c*LX; with VL = 4, blocks of 4 (rows ty*4 + (r%4) + (r/4)*LY*4, columns likewise), so
 *   each work-item reads its fragments of the local tiles as float4 (one 128-bit local load for
 *   four FMAs' operands).
 *   The k loop walks k-tiles of KC: the work-group copies the op(A) block [TILE_M x KC] and the
 *   op(B) block [KC x TILE_N] into local memory, k-major, zero past M, N and K; consecutive
 *   work-items read consecutive global addresses in whichever direction the layout is
 *   contiguous (along k for A unless TA, along n for B unless TB). The next k-tile's global
 *   loads are issued into registers before the current tile's FMAs (latency hidden by the
 *   arithmetic), then stored to local memory after it.
 *   The epilogue writes alpha*acc + beta*C; beta == 0 never reads C. K == 0 applies beta only.
 *   Launch: global (ceil(N/TILE_N)*LX, ceil(M/TILE_M)*LY), local (LX, LY) exactly.
 * Tunables (-D): LX, LY (work-group shape), WM, WN (rows and columns per work-item), KC (k-tile),
 *   VL (1 or 4: local reads per fragment; 4 needs WM and WN multiples of 4).
 *   Local memory: KC*(TILE_M+PAD) + KC*(TILE_N+PAD) floats (PAD 1, or 4 with VL = 4 to keep
 *   rows 16-byte aligned); the host checks it against the device.
 */
/* CAT, UNROLL, BTYPE, LOADB: gemm_common.cl. */

#ifndef VL
#define VL 1
#endif
#define TILE_M (LY * WM)
#define TILE_N (LX * WN)
#define NT (LX * LY)
#define ALOADS ((TILE_M * KC + NT - 1) / NT)
#define BLOADS ((KC * TILE_N + NT - 1) / NT)
/* One padding word per row (four with VL = 4): the stores of a transposed copy do not all hit
 * one bank. */
#define PAD (VL == 4 ? 4 : 1)

#if VL == 4
#define ROW(ty, r) ((ty) * 4 + ((r) & 3) + ((r) >> 2) * LY * 4)
#define COL(tx, c) ((tx) * 4 + ((c) & 3) + ((c) >> 2) * LX * 4)
#else
#define ROW(ty, r) ((ty) + (r) * LY)
#define COL(tx, c) ((tx) + (c) * LX)
#endif

/* Element e of the work-group's A block (e = tid + l*NT) as (row r, k kk), in the order that
 * makes consecutive e consecutive in memory. */
static void a_index(int e, int *r, int *kk)
{
#ifdef TA
	*r = e % TILE_M;
	*kk = e / TILE_M;
#else
	*kk = e % KC;
	*r = e / KC;
#endif
}

static void b_index(int e, int *kk, int *c)
{
#ifdef TB
	*kk = e % KC;
	*c = e / KC;
#else
	*c = e % TILE_N;
	*kk = e / TILE_N;
#endif
}

/* Loads this work-item's share of the k-tile at k0 from global memory into registers. */
static void load_tiles(int tid, int i0, int j0, int k0, int M, int N, int K,
		       __global const float *restrict A, int lda,
		       __global const BTYPE *restrict B, int ldb, float *ra, float *rb)
{
	_Pragma("unroll") for (int l = 0; l < ALOADS; l++) {
		int e = tid + l * NT, r, kk;
		a_index(e, &r, &kk);
		int gi = i0 + r, gk = k0 + kk;
		float x = 0.0f;
		if (((TILE_M * KC) % NT == 0 || e < TILE_M * KC) && gi < M && gk < K)
#ifdef TA
			x = A[(size_t)gk * lda + gi];
#else
			x = A[(size_t)gi * lda + gk];
#endif
		ra[l] = x;
	}
	_Pragma("unroll") for (int l = 0; l < BLOADS; l++) {
		int e = tid + l * NT, kk, c;
		b_index(e, &kk, &c);
		int gj = j0 + c, gk = k0 + kk;
		float x = 0.0f;
		if (((KC * TILE_N) % NT == 0 || e < KC * TILE_N) && gj < N && gk < K)
#ifdef TB
			x = LOADB(B, (size_t)gj * ldb + gk);
#else
			x = LOADB(B, (size_t)gk * ldb + gj);
#endif
		rb[l] = x;
	}
}

static void store_tiles(int tid, __local float (*as)[TILE_M + PAD],
			__local float (*bs)[TILE_N + PAD], const float *ra, const float *rb)
{
	_Pragma("unroll") for (int l = 0; l < ALOADS; l++) {
		int e = tid + l * NT, r, kk;
		a_index(e, &r, &kk);
		if ((TILE_M * KC) % NT == 0 || e < TILE_M * KC)
			as[kk][r] = ra[l];
	}
	_Pragma("unroll") for (int l = 0; l < BLOADS; l++) {
		int e = tid + l * NT, kk, c;
		b_index(e, &kk, &c);
		if ((KC * TILE_N) % NT == 0 || e < KC * TILE_N)
			bs[kk][c] = rb[l];
	}
}

__kernel __attribute__((reqd_work_group_size(LX, LY, 1)))
void hf_gemm_tiled(int M, int N, int K, float alpha, float beta,
		   __global const float *restrict A, int lda, __global const BTYPE *restrict B,
		   int ldb, __global float *restrict C, int ldc)
{
	__local float as[KC][TILE_M + PAD] __attribute__((aligned(16)));
	__local float bs[KC][TILE_N + PAD] __attribute__((aligned(16)));
	const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * LX + tx;
	const int i0 = get_group_id(1) * TILE_M, j0 = get_group_id(0) * TILE_N;
	float acc[WM][WN], ra[ALOADS], rb[BLOADS];
	_Pragma("unroll") for (int r = 0; r < WM; r++)
		_Pragma("unroll") for (int c = 0; c < WN; c++)
			acc[r][c] = 0.0f;

	if (K > 0)
		load_tiles(tid, i0, j0, 0, M, N, K, A, lda, B, ldb, ra, rb);
	for (int k0 = 0; k0 < K; k0 += KC) {
		store_tiles(tid, as, bs, ra, rb);
		barrier(CLK_LOCAL_MEM_FENCE);
		if (k0 + KC < K) /* the next tile's loads fly while this one is multiplied */
			load_tiles(tid, i0, j0, k0 + KC, M, N, K, A, lda, B, ldb, ra, rb);
		UNROLL(KC)
		for (int kk = 0; kk < KC; kk++) {
			float a[WM], b[WN];
#if VL == 4
			_Pragma("unroll") for (int r = 0; r < WM; r += 4)
				vstore4(*(__local const float4 *)&as[kk][ROW(ty, r)], 0, a + r);
			_Pragma("unroll") for (int c = 0; c < WN; c += 4)
				vstore4(*(__local const float4 *)&bs[kk][COL(tx, c)], 0, b + c);
#else
			_Pragma("unroll") for (int r = 0; r < WM; r++)
				a[r] = as[kk][ROW(ty, r)];
			_Pragma("unroll") for (int c = 0; c < WN; c++)
				b[c] = bs[kk][COL(tx, c)];
#endif
			_Pragma("unroll") for (int r = 0; r < WM; r++)
				_Pragma("unroll") for (int c = 0; c < WN; c++)
					acc[r][c] = fma(a[r], b[c], acc[r][c]);
		}
		barrier(CLK_LOCAL_MEM_FENCE);
	}

	_Pragma("unroll") for (int r = 0; r < WM; r++) {
		int gi = i0 + ROW(ty, r);
		if (gi >= M)
			continue;
		__global float *crow = C + (size_t)gi * ldc;
		_Pragma("unroll") for (int c = 0; c < WN; c++) {
			int gj = j0 + COL(tx, c);
			if (gj < N) {
				float x = alpha * acc[r][c];
				if (beta != 0.0f)
					x = fma(beta, crow[gj], x);
				crow[gj] = x;
			}
		}
	}
}
