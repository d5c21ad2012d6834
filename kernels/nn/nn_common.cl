/* nn_common.cl: the prelude of the kernels/nn programs (hf_nn.c prepends it to each family's
 * source): activation codes and their functions, shared by the elementwise, row and chain
 * kernels.
 *
 * Activation lists: an int holding up to HF_NN_MAX_ACTS codes, 4 bits each, applied from the
 * low nibble up; a 0 nibble ends the list. Codes (hf_nn.h has the same values):
 *   1 relu, 2 gelu (erf), 3 gelu (tanh approximation), 4 tanh, 5 sigmoid.
 */
#define NN_ACT_RELU 1
#define NN_ACT_GELU 2
#define NN_ACT_GELU_TANH 3
#define NN_ACT_TANH 4
#define NN_ACT_SIGMOID 5
#define NN_MAX_ACTS 4

static float nn_act1(int code, float x)
{
	switch (code) {
	case NN_ACT_RELU: return x < 0.0f ? 0.0f : x; /* NaN stays NaN (fmax would drop it) */
	case NN_ACT_GELU: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
	case NN_ACT_GELU_TANH: {
		float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
		return 0.5f * x * (1.0f + tanh(u));
	}
	case NN_ACT_TANH: return tanh(x);
	case NN_ACT_SIGMOID: return 1.0f / (1.0f + exp(-x));
	default: return x;
	}
}

/* Softmax of one row of n (max subtracted first) from x into y; one copy per address space of
 * x (OpenCL 1.2 has no generic pointers): nn_softmax_row_global, nn_softmax_row_local. */
#define NN_SOFTMAX_ROW(AS)                                                               \
	static void nn_softmax_row_##AS(int n, __##AS const float *x, __global float *y) \
	{                                                                                \
		float mx = -INFINITY;                                                    \
		for (int j = 0; j < n; j++)                                              \
			mx = fmax(mx, x[j]);                                             \
		float s = 0.0f;                                                          \
		for (int j = 0; j < n; j++) {                                            \
			float e = exp(x[j] - mx);                                        \
			y[j] = e;                                                        \
			s += e;                                                          \
		}                                                                        \
		float inv = 1.0f / s;                                                    \
		for (int j = 0; j < n; j++)                                              \
			y[j] *= inv;                                                     \
	}
NN_SOFTMAX_ROW(global)
NN_SOFTMAX_ROW(local)

static float nn_acts(int acts, float x)
{
	for (int i = 0; i < NN_MAX_ACTS && (acts & 15); i++, acts >>= 4)
		x = nn_act1(acts & 15, x);
	return x;
}
