/* gemm_direct.cl: the direct SGEMM kernel for small and odd shapes (no packing, no workspace).
 *
 * Contract (the host in hf_gemm.c keeps it):
 *   C[M x N] = alpha * op(A) * op(B) + beta * C, row-major C with row stride ldc; element (i, k)
 *   of op(A) is A[i*ars + k*acs] and element (k, j) of op(B) is B[k*brs + j*bcs], so transposes
 *   and leading dimensions are strides. B is FP32, or FP16 storage when B_HALF is defined.
 *   Work-item (x, y) computes C[y*WM .. y*WM+WM-1][x] (one column, WM rows), so work-items never
 *   overlap and any M, N, K >= 1 is covered with a guard on the store. beta == 0 never reads C.
 *   Launch: global (N, ceil(M/WM)), local size 1.
 * Tunables (-D): WM (rows per work-item), KU (k unroll).
 */
/* BTYPE, LOADB, UNROLL: gemm_common.cl. */

__kernel void hf_gemm_direct(int M, int N, int K, float alpha, float beta,
			     __global const float *A, int ars, int acs,
			     __global const BTYPE *B, int brs, int bcs,
			     __global float *C, int ldc)
{
	int j = get_global_id(0), i0 = get_global_id(1) * WM;
	float acc[WM];
	int rows[WM];
	for (int r = 0; r < WM; r++) {
		acc[r] = 0.0f;
		rows[r] = min(i0 + r, M - 1); /* clamped: rows past M compute garbage never stored */
	}
	UNROLL(KU)
	for (int k = 0; k < K; k++) {
		float b = LOADB(B, (size_t)k * brs + (size_t)j * bcs);
		for (int r = 0; r < WM; r++)
			acc[r] = fma(A[(size_t)rows[r] * ars + (size_t)k * acs], b, acc[r]);
	}
	for (int r = 0; r < WM; r++) {
		int i = i0 + r;
		if (i >= M)
			break;
		__global float *c = C + (size_t)i * ldc + j;
		float x = alpha * acc[r];
		if (beta != 0.0f)
			x = fma(beta, *c, x);
		*c = x;
	}
}
