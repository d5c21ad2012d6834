/* gemm_tiled.cl: work-group SGEMM with local-memory tiles and register blocking (the GPU family).
 *
 * Contract (the host in hf_gemm.c keeps it):
 *   C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C, all row-major, read in place (no
 *   workspace): element (i, k) of op(A) is A[i*lda + k], or A[k*lda + i] with TA defined;
 *   element (k, j) of op(B) is B[k*ldb + j], or B[j*ldb + k] with TB defined; B is FP32, or FP16
 *   with B_HALF (read with vload_half, computed in FP32).
 *   Work-group (gx, gy) computes the TILE_M x TILE_N block of C at rows gy*TILE_M and columns
 *   gx*TILE_N, TILE_M = LY*WM and TILE_N = LX*WN. Work-item (tx, ty) owns rows ty + r*LY
 *   (r < WM) and columns tx + c*LX (c < WN): neighbouring work-items store neighbouring columns
 *   of C (coalesced) and read neighbouring words of the local B tile (no bank conflicts), while
 *   the A word they read is the same (a broadcast).
 *   For each k-tile of KC the work-group copies the op(A) block [TILE_M x KC] and the op(B)
 *   block [KC x TILE_N] into local memory, k-major, zero past M, N and K; consecutive work-items
 *   read consecutive global addresses in whichever direction the layout is contiguous (along k
 *   for A unless TA, along n for B unless TB). Then WM x WN FMAs per k from registers.
 *   The epilogue writes alpha*acc + beta*C; beta == 0 never reads C. K == 0 applies beta only.
 *   Launch: global (ceil(N/TILE_N)*LX, ceil(M/TILE_M)*LY), local (LX, LY) exactly.
 * Tunables (-D): LX, LY (work-group shape), WM, WN (rows and columns per work-item), KC (k-tile).
 *   Local memory: KC*(TILE_M+1) + KC*(TILE_N+1) floats; the host checks it against the device.
 */
/* CAT, UNROLL, BTYPE, LOADB: gemm_common.cl. */

#define TILE_M (LY * WM)
#define TILE_N (LX * WN)
#define NT (LX * LY)
#define ALOADS ((TILE_M * KC + NT - 1) / NT)
#define BLOADS ((KC * TILE_N + NT - 1) / NT)

__kernel __attribute__((reqd_work_group_size(LX, LY, 1)))
void hf_gemm_tiled(int M, int N, int K, float alpha, float beta,
		   __global const float *restrict A, int lda, __global const BTYPE *restrict B,
		   int ldb, __global float *restrict C, int ldc)
{
	/* One padding word per row: the stores of a transposed copy do not all hit one bank. */
	__local float as[KC][TILE_M + 1];
	__local float bs[KC][TILE_N + 1];
	const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * LX + tx;
	const int i0 = get_group_id(1) * TILE_M, j0 = get_group_id(0) * TILE_N;
	float acc[WM][WN];
	_Pragma("unroll") for (int r = 0; r < WM; r++)
		_Pragma("unroll") for (int c = 0; c < WN; c++)
			acc[r][c] = 0.0f;

	for (int k0 = 0; k0 < K; k0 += KC) {
		_Pragma("unroll") for (int l = 0; l < ALOADS; l++) {
			int e = tid + l * NT;
			if ((TILE_M * KC) % NT == 0 || e < TILE_M * KC) {
#ifdef TA
				int r = e % TILE_M, kk = e / TILE_M;
#else
				int kk = e % KC, r = e / KC;
#endif
				int gi = i0 + r, gk = k0 + kk;
				float x = 0.0f;
				if (gi < M && gk < K)
#ifdef TA
					x = A[(size_t)gk * lda + gi];
#else
					x = A[(size_t)gi * lda + gk];
#endif
				as[kk][r] = x;
			}
		}
		_Pragma("unroll") for (int l = 0; l < BLOADS; l++) {
			int e = tid + l * NT;
			if ((KC * TILE_N) % NT == 0 || e < KC * TILE_N) {
#ifdef TB
				int kk = e % KC, c = e / KC;
#else
				int c = e % TILE_N, kk = e / TILE_N;
#endif
				int gj = j0 + c, gk = k0 + kk;
				float x = 0.0f;
				if (gj < N && gk < K)
#ifdef TB
					x = LOADB(B, (size_t)gj * ldb + gk);
#else
					x = LOADB(B, (size_t)gk * ldb + gj);
#endif
				bs[kk][c] = x;
			}
		}
		barrier(CLK_LOCAL_MEM_FENCE);
		UNROLL(KC)
		for (int kk = 0; kk < KC; kk++) {
			float a[WM], b[WN];
			_Pragma("unroll") for (int r = 0; r < WM; r++)
				a[r] = as[kk][ty + r * LY];
			_Pragma("unroll") for (int c = 0; c < WN; c++)
				b[c] = bs[kk][tx + c * LX];
			_Pragma("unroll") for (int r = 0; r < WM; r++)
				_Pragma("unroll") for (int c = 0; c < WN; c++)
					acc[r][c] = fma(a[r], b[c], acc[r][c]);
		}
		barrier(CLK_LOCAL_MEM_FENCE);
	}

	_Pragma("unroll") for (int r = 0; r < WM; r++) {
		int gi = i0 + ty + r * LY;
		if (gi >= M)
			break;
		__global float *crow = C + (size_t)gi * ldc;
		_Pragma("unroll") for (int c = 0; c < WN; c++) {
			int gj = j0 + tx + c * LX;
			if (gj < N) {
				float x = alpha * acc[r][c];
				if (beta != 0.0f)
					x = fma(beta, crow[gj], x);
				crow[gj] = x;
			}
		}
	}
}
