/* nn_ops.cl: the generic layer kernels every device runs (the no_fusion path and the ops the
 * chain kernel does not take): elementwise with optional residual, bias and activations;
 * softmax and layernorm over the last dimension.
 *
 * Contract (hf_exec.c keeps it): all buffers are dense row-major FP32, rows of n floats.
 *   hf_nn_eltwise: y[i] = acts(x[i] + (has_x2 ? x2[i] : 0) + (has_bias ? bias[i % n] : 0))
 *     for i < count; x, x2 and y may be the same buffer. Launch: any 1-D global size
 *     (work-items stride by the global size), any local size.
 *   hf_nn_softmax: each of m rows of x (length n) to exp(x - max) / sum into y.
 *   hf_nn_layernorm: each row to (x - mean) / sqrt(var + eps) * w + b (w, b optional: has_w,
 *     has_b), the variance the biased one (as PyTorch). Both: work-item r (of any 1-D global
 *     size) takes rows r, r + global size, ...; y may be x.
 * Buffers a kernel does not read (x2, bias, w, b when their flag is 0) may be any buffer.
 */

__kernel void hf_nn_eltwise(int count, int n, __global const float *x, __global const float *x2,
			    int has_x2, __global const float *bias, int has_bias, int acts,
			    __global float *y)
{
	int step = get_global_size(0);
	for (int i = get_global_id(0); i < count; i += step) {
		float v = x[i];
		if (has_x2)
			v += x2[i];
		if (has_bias)
			v += bias[i % n];
		y[i] = nn_acts(acts, v);
	}
}

__kernel void hf_nn_softmax(int m, int n, __global const float *x, __global float *y)
{
	int step = get_global_size(0);
	for (int r = get_global_id(0); r < m; r += step)
		nn_softmax_row_global(n, x + (size_t)r * n, y + (size_t)r * n);
}

__kernel void hf_nn_layernorm(int m, int n, __global const float *x, __global const float *w,
			      int has_w, __global const float *b, int has_b, float eps,
			      __global float *y)
{
	int step = get_global_size(0);
	for (int r = get_global_id(0); r < m; r += step) {
		__global const float *xr = x + (size_t)r * n;
		__global float *yr = y + (size_t)r * n;
		float mean = 0.0f;
		for (int j = 0; j < n; j++)
			mean += xr[j];
		mean /= (float)n;
		float var = 0.0f;
		for (int j = 0; j < n; j++) {
			float d = xr[j] - mean;
			var += d * d;
		}
		float inv = rsqrt(var / (float)n + eps);
		for (int j = 0; j < n; j++) {
			float v = (xr[j] - mean) * inv;
			if (has_w)
				v *= w[j];
			if (has_b)
				v += b[j];
			yr[j] = v;
		}
	}
}
