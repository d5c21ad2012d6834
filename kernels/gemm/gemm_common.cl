/* gemm_common.cl: the prelude every gemm_*.cl family shares; hf_gemm.c prepends it to the
 * family's source before building, so each family is one program.
 *
 * Build options read here: B_HALF (B stored as FP16, read with vload_half); VW (vector width)
 * and NV (vectors per row), defined by the vector families only (packed, gemv).
 * Gives: CAT, UNROLL(n), BTYPE, LOADB(p, i), LOADB8(p) (8 elements as float8); with VW also VEC, VLOAD, VSTORE, VLOADB, NR and
 * store_row(), the row epilogue of a register tile.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define PRAGMA_(x) _Pragma(#x)
#define PRAGMA(x) PRAGMA_(x)
#define UNROLL(n) PRAGMA(unroll n)

#ifdef B_HALF
#define BTYPE half
#define LOADB(p, i) vload_half((i), (p))
#define LOADB8(p) vload_half8(0, (p))
#else
#define BTYPE float
#define LOADB(p, i) ((p)[(i)])
#define LOADB8(p) vload8(0, (p))
#endif

#ifdef VW
#define VEC CAT(float, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)
#define NR (NV * VW)
#ifdef B_HALF
#define VLOADB(i, p) CAT(vload_half, VW)((i), (p))
#else
#define VLOADB(i, p) VLOAD((i), (p))
#endif

/* Writes one row of NR accumulators to c (ncols of them valid): the first k-block applies
 * alpha and beta (never reading c when beta is 0), later blocks add alpha*acc to c. */
static void store_row(__global float *c, int ncols, float alpha, float beta, bool first,
		      VEC *acc)
{
	bool rd = !first || beta != 0.0f;
	float bt = first ? beta : 1.0f;
	if (ncols >= NR) {
		_Pragma("unroll") for (int v = 0; v < NV; v++) {
			VEC x = alpha * acc[v];
			if (rd)
				x = fma((VEC)bt, VLOAD(v, c), x);
			VSTORE(x, v, c);
		}
		return;
	}
	float t[NR];
	for (int v = 0; v < NV; v++)
		VSTORE(acc[v], v, t);
	for (int j = 0; j < ncols; j++) {
		float x = alpha * t[j];
		if (rd)
			x = fma(bt, c[j], x);
		c[j] = x;
	}
}
#endif
