/* nn_chain.cl: a chain of linear layers (each with its bias and activations, the last
 * optionally followed by softmax) in one launch: a work-group owns a block of rows and runs
 * every layer over it, the activations between layers kept in local memory.
 *
 * Contract (hf_exec.c and hf_nn.c keep it):
 *   desc holds 8 ints per layer: K, N, w_off, b_off, acts, pw, 0, 0. Layer l reads rows of K
 *   floats (layer 0: from x, row stride ldx; later: the previous layer's output in local
 *   memory, stride K) and writes rows of N floats: y = acts(x W^T + b).
 *   Weights are prepacked by hf_nn_pack_weights: element (k, j) of W^T (k < K, j < Np, Np = N
 *   rounded up to NR, zero past N) sits at w[w_off + ((j / pw) * K + k) * pw + j % pw], pw a
 *   multiple of NR: pw = NR gives contiguous panels of NR columns (CPUs: every k step of a
 *   work-item is one VW-wide load per vector), pw = Np gives rows of W^T (GPUs: neighbouring
 *   work-items read neighbouring addresses). b_off < 0: no bias; else bias[b_off + j] for
 *   j < Np (zero past N). acts: activation list (nn_common.cl).
 *   The last layer writes y (row stride ldy) directly, or, with softmax_last, its local rows
 *   and then their softmax to y.
 *   Work-group (g, c): rows g*rb .. min(M, g*rb + rb) - 1; c of col_groups splits the column
 *   panels (col_groups > 1 only for one layer without softmax). Work-items of a group split the
 *   panels of each layer; a barrier separates the layers. buf: 2 * bufsz floats of local
 *   memory, bufsz >= rb * N for every layer that writes to local memory.
 * Tunables (-D): VW (4, 8, 16), NV (vectors per row of a tile), MR (rows per register tile),
 *   KC (k-block: the panel's KC x NR block is reused from L1 by every row tile; 0 = all of K),
 *   W_HALF (weights stored as FP16, read with vload_half).
 */
#define VEC CAT(float, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)
#define NR (NV * VW)
#ifdef W_HALF
#define WTYPE half
#define VLOADW(i, p) CAT(vload_half, VW)((i), (p))
#else
#define WTYPE float
#define VLOADW(i, p) VLOAD((i), (p))
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

static VEC act_v(int code, VEC x)
{
	switch (code) {
	case NN_ACT_RELU: return select(x, (VEC)0.0f, x < (VEC)0.0f); /* NaN stays NaN */
	case NN_ACT_GELU: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
	case NN_ACT_GELU_TANH: {
		VEC u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
		return 0.5f * x * (1.0f + tanh(u));
	}
	case NN_ACT_TANH: return tanh(x);
	case NN_ACT_SIGMOID: return 1.0f / (1.0f + exp(-x));
	default: return x;
	}
}

static VEC acts_v(int acts, VEC x)
{
	for (int i = 0; i < NN_MAX_ACTS && (acts & 15); i++, acts >>= 4)
		x = act_v(acts & 15, x);
	return x;
}

/* One register tile over k in [k0, k1): R rows of a (row stride lda, already at k0) times
 * the NR columns of the panel at wp (at k0, step pw per k). first: start from zero, else from
 * the partial sums in c; last: add the bias and apply acts. Stored to c (row stride ldc;
 * ncols valid). */
#define DEF_TILE(NAME, R, INSP, OUTSP)                                                      \
	static void NAME(int kn, int ncols, INSP const float *a, int lda,                    \
			 __global const WTYPE *wp, int pw, __global const float *bias,        \
			 int has_bias, int acts, OUTSP float *c, int ldc, bool first,         \
			 bool last)                                                           \
	{                                                                                    \
		VEC acc[R][NV];                                                              \
		bool full = ncols >= NR;                                                     \
		_Pragma("unroll") for (int r = 0; r < R; r++)                                \
			_Pragma("unroll") for (int v = 0; v < NV; v++) {                     \
				if (first) {                                                 \
					acc[r][v] = (VEC)0.0f;                               \
				} else if (full) {                                           \
					acc[r][v] = VLOAD(v, c + r * ldc);                   \
				} else {                                                     \
					float t[VW];                                         \
					for (int j = 0; j < VW; j++)                         \
						t[j] = v * VW + j < ncols ?                  \
							c[r * ldc + v * VW + j] : 0.0f;      \
					acc[r][v] = VLOAD(0, t);                             \
				}                                                            \
			}                                                                    \
		for (int k = 0; k < kn; k++, wp += pw) {                                     \
			VEC bv[NV];                                                          \
			_Pragma("unroll") for (int v = 0; v < NV; v++)                       \
				bv[v] = VLOADW(v, wp);                                       \
			_Pragma("unroll") for (int r = 0; r < R; r++) {                      \
				VEC av = (VEC)a[r * lda + k];                                \
				_Pragma("unroll") for (int v = 0; v < NV; v++)               \
					acc[r][v] = fma(av, bv[v], acc[r][v]);               \
			}                                                                    \
		}                                                                            \
		_Pragma("unroll") for (int r = 0; r < R; r++) {                              \
			OUTSP float *cr = c + r * ldc;                                       \
			_Pragma("unroll") for (int v = 0; v < NV; v++) {                     \
				VEC x = acc[r][v];                                           \
				if (last) {                                                  \
					if (has_bias)                                        \
						x += VLOAD(v, bias);                         \
					x = acts_v(acts, x);                                 \
				}                                                            \
				if (full) {                                                  \
					VSTORE(x, v, cr);                                    \
				} else {                                                     \
					float t[VW];                                         \
					VSTORE(x, 0, t);                                     \
					for (int j = 0; j < VW && v * VW + j < ncols; j++)   \
						cr[v * VW + j] = t[j];                       \
				}                                                            \
			}                                                                    \
		}                                                                            \
	}

/* One layer over rows rows of a: k-blocks of KC, in each the work-item's panels (the block of
 * the panel stays in L1 while every row tile passes over it), MR-row tiles, then tiles of 4,
 * 2 and 1 rows for the rest. */
#define DEF_LAYER(NAME, SFX, INSP, OUTSP)                                                   \
	static void NAME(int rows, int K, int N, INSP const float *a, int lda,               \
			 __global const WTYPE *w, int pw, __global const float *bias,         \
			 int has_bias, int acts, OUTSP float *c, int ldc, int p0, int pstep)  \
	{                                                                                    \
		int npan = (N + NR - 1) / NR;                                                \
		int kc = KC > 0 ? KC : max(K, 1);                                            \
		for (int k0 = 0; k0 < max(K, 1); k0 += kc) {                                 \
			int kn = min(kc, K - k0);                                            \
			bool first = k0 == 0, last = k0 + kc >= K;                           \
			for (int p = p0; p < npan; p += pstep) {                             \
				int j0 = p * NR;                                             \
				__global const WTYPE *wp = w + (size_t)(j0 / pw) * K * pw +  \
							   j0 % pw + (size_t)k0 * pw;        \
				__global const float *bp = bias + j0;                        \
				INSP const float *ak = a + k0;                               \
				OUTSP float *cj = c + j0;                                    \
				int nc = N - j0, r = 0;                                      \
				for (; r + MR <= rows; r += MR)                              \
					CAT(tile_mr_, SFX)(kn, nc, ak + r * lda, lda, wp, pw,  \
						bp, has_bias, acts, cj + r * ldc, ldc, first, \
						last);                                       \
				if (MR > 4 && r + 4 <= rows) {                               \
					CAT(tile_4_, SFX)(kn, nc, ak + r * lda, lda, wp, pw,   \
						bp, has_bias, acts, cj + r * ldc, ldc, first, \
						last);                                       \
					r += 4;                                              \
				}                                                            \
				if (MR > 2 && r + 2 <= rows) {                               \
					CAT(tile_2_, SFX)(kn, nc, ak + r * lda, lda, wp, pw,   \
						bp, has_bias, acts, cj + r * ldc, ldc, first, \
						last);                                       \
					r += 2;                                              \
				}                                                            \
				for (; r < rows; r++)                                        \
					CAT(tile_1_, SFX)(kn, nc, ak + r * lda, lda, wp, pw,   \
						bp, has_bias, acts, cj + r * ldc, ldc, first, \
						last);                                       \
			}                                                                    \
		}                                                                            \
	}

#define DEF_TILES(SFX, INSP, OUTSP)                                                         \
	DEF_TILE(tile_mr_##SFX, MR, INSP, OUTSP)                                             \
	DEF_TILE(tile_4_##SFX, 4, INSP, OUTSP)                                               \
	DEF_TILE(tile_2_##SFX, 2, INSP, OUTSP)                                               \
	DEF_TILE(tile_1_##SFX, 1, INSP, OUTSP)                                               \
	DEF_LAYER(layer_##SFX, SFX, INSP, OUTSP)

DEF_TILES(gg, __global, __global)
DEF_TILES(gl, __global, __local)
DEF_TILES(lg, __local, __global)
DEF_TILES(ll, __local, __local)

__kernel void hf_nn_chain(int M, int nlayers, __global const int *desc, __global const float *x,
			  int ldx, __global const WTYPE *w, __global const float *bias,
			  __global float *y, int ldy, int rb, int bufsz, int softmax_last,
			  int col_groups, __local float *buf)
{
	int lid = get_local_id(0), ls = get_local_size(0);
	int row0 = get_group_id(0) * rb;
	if (row0 >= M)
		return; /* the whole work-group: no barrier is reached by only some */
	int rows = min(rb, M - row0);
	int p0 = get_group_id(1) * ls + lid, pstep = ls * col_groups;
	__global const float *xg = x + (size_t)row0 * ldx;
	__global float *yg = y + (size_t)row0 * ldy;
	__local float *prev = buf;
	int lastn = 0;
	for (int l = 0; l < nlayers; l++) {
		__global const int *d = desc + 8 * l;
		int K = d[0], N = d[1], acts = d[4], pw = d[5];
		__global const WTYPE *wl = w + d[2];
		int hb = d[3] >= 0;
		__global const float *bl = bias + (hb ? d[3] : 0);
		__local float *out = buf + (l % 2) * bufsz;
		bool to_global = l == nlayers - 1 && !softmax_last;
		if (l == 0 && to_global)
			layer_gg(rows, K, N, xg, ldx, wl, pw, bl, hb, acts, yg, ldy, p0, pstep);
		else if (l == 0)
			layer_gl(rows, K, N, xg, ldx, wl, pw, bl, hb, acts, out, N, p0, pstep);
		else if (to_global)
			layer_lg(rows, K, N, prev, K, wl, pw, bl, hb, acts, yg, ldy, p0, pstep);
		else
			layer_ll(rows, K, N, prev, K, wl, pw, bl, hb, acts, out, N, p0, pstep);
		barrier(CLK_LOCAL_MEM_FENCE);
		prev = out;
		lastn = N;
	}
	if (!softmax_last)
		return;
	for (int r = lid; r < rows; r += ls)
		nn_softmax_row_local(lastn, prev + r * lastn, yg + (size_t)r * ldy);
}
