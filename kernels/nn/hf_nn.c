/* hf_nn: builds the kernels/nn programs (nn_common.cl prepended to the family's source),
 * chooses the chain kernel's defaults per device, packs weights for it.
 *
 * Invariants: parameters are checked before a program is built; the packed layout written
 * here is the one nn_chain.cl's contract states (element (k, j) of W^T at
 * ((j / pw) * K + k) * pw + j % pw, zero past N).
 * Threading: see hf_nn.h.
 */
#include "hf_nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_nn_cl.h"

static bool is_avx512_cpu(const hf_cl_device_info *dev)
{
	static const char *const tags[] = { "avx512", "skylake-avx", "cascadelake", "cooperlake",
					    "icelake", "tigerlake", "rocketlake", "sapphirerapids",
					    "emeraldrapids", "graniterapids", "znver4", "znver5" };
	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
		if (strstr(dev->name, tags[i]))
			return true;
	return false;
}

void hf_nn_chain_default_params(const hf_cl_device_info *dev, hf_nn_chain_params *out)
{
	memset(out, 0, sizeof *out);
	if (dev && dev->is_gpu) {
		size_t ls = dev->max_work_group_size ? dev->max_work_group_size : 128;
		out->vw = 4;
		out->nv = 1;
		out->mr = 4;
		out->ls = (unsigned)(ls < 128 ? ls : 128);
		out->kc = 0;
		out->rows_layout = true;
		return;
	}
	bool wide = dev && is_avx512_cpu(dev);
	out->vw = wide ? 16 : 8;
	out->nv = 2;
	out->mr = wide ? 8 : 6;
	out->ls = 1;
	out->kc = 0; /* k-blocking measured slower here (0.6-0.75x at batch 32-128) */
	out->rows_layout = false;
}

char *hf_nn_chain_describe(const hf_nn_chain_params *p, bool w_half, char *out, size_t sz)
{
	snprintf(out, sz, "chain vw=%u nv=%u mr=%u kc=%u ls=%u %s%s", p->vw, p->nv, p->mr, p->kc,
		 p->ls,
		 p->rows_layout ? "rows" : "panels", w_half ? " f16" : "");
	return out;
}

int hf_nn_chain_params_parse(const char *spec, hf_nn_chain_params *p, hf_errbuf *eb)
{
	char buf[256];
	if (strlen(spec) >= sizeof buf)
		return hf_fail(eb, HF_EINVAL, "chain parameters: too long");
	strcpy(buf, spec);
	for (char *save = NULL, *w = strtok_r(buf, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
		unsigned v;
		char name[8], extra;
		if (strcmp(w, "chain") == 0)
			continue;
		if (strcmp(w, "rows") == 0 || strcmp(w, "panels") == 0) {
			p->rows_layout = w[0] == 'r';
			continue;
		}
		if (sscanf(w, "%7[a-z]=%u%c", name, &v, &extra) != 2)
			return hf_fail(eb, HF_EINVAL, "chain parameters: bad word \"%s\"", w);
		unsigned *f = strcmp(name, "vw") == 0 ? &p->vw : strcmp(name, "nv") == 0 ? &p->nv :
			      strcmp(name, "mr") == 0 ? &p->mr : strcmp(name, "kc") == 0 ? &p->kc :
			      strcmp(name, "ls") == 0 ? &p->ls : NULL;
		if (!f)
			return hf_fail(eb, HF_EINVAL, "chain parameters: unknown field \"%s\"", name);
		*f = v;
	}
	return 0;
}

static int check_params(const hf_nn_chain_params *p, hf_errbuf *eb)
{
	if ((p->vw != 4 && p->vw != 8 && p->vw != 16) || p->nv < 1 || p->nv > 4 || p->mr < 1 ||
	    p->mr > 8 || p->ls < 1 || p->ls > 1024 || p->kc > 65536)
		return hf_fail(eb, HF_EINVAL, "chain parameters out of range (vw 4|8|16, nv 1-4, "
			       "mr 1-8, ls 1-1024, kc 0-65536)");
	return 0;
}

int hf_nn_build(hf_cl *cl, hf_nn_program which, const hf_nn_chain_params *p, bool w_half,
		cl_program *out, hf_errbuf *eb)
{
	const char *src = nn_ops_cl_src;
	size_t lf = nn_ops_cl_src_len;
	char opts[160] = "";
	hf_nn_chain_params d;
	if (which == HF_NN_CHAIN) {
		if (!p) {
			hf_nn_chain_default_params(hf_cl_info(cl), &d);
			p = &d;
		}
		int r = check_params(p, eb);
		if (r)
			return r;
		src = nn_chain_cl_src;
		lf = nn_chain_cl_src_len;
		snprintf(opts, sizeof opts, "-DVW=%u -DNV=%u -DMR=%u -DKC=%u%s", p->vw, p->nv,
			 p->mr, p->kc, w_half ? " -DW_HALF" : "");
	} else if (which != HF_NN_OPS) {
		return hf_fail(eb, HF_EINVAL, "hf_nn_build: unknown program %d", (int)which);
	}
	size_t lc = nn_common_cl_src_len;
	char *full = malloc(lc + 1 + lf + 1);
	if (!full)
		return hf_fail(eb, HF_ENOMEM, "nn program source");
	memcpy(full, nn_common_cl_src, lc);
	full[lc] = '\n';
	memcpy(full + lc + 1, src, lf + 1);
	int r = hf_cl_build(cl, full, lc + 1 + lf, opts, out, NULL, eb);
	free(full);
	if (r)
		return hf_fail_prefix(eb, r, "nn %s %s", which == HF_NN_CHAIN ? "chain" : "ops",
				      opts);
	return 0;
}

size_t hf_nn_padded_cols(const hf_nn_chain_params *p, size_t n)
{
	size_t nr = (size_t)p->vw * p->nv;
	return (n + nr - 1) / nr * nr;
}

size_t hf_nn_panel_width(const hf_nn_chain_params *p, size_t n)
{
	return p->rows_layout ? hf_nn_padded_cols(p, n) : (size_t)p->vw * p->nv;
}

size_t hf_nn_packed_count(const hf_nn_chain_params *p, size_t n, size_t k)
{
	return hf_nn_padded_cols(p, n) * (k ? k : 1);
}

static uint16_t load_u16(const unsigned char *b, size_t i)
{
	uint16_t v;
	memcpy(&v, b + 2 * i, sizeof v);
	return v;
}

/* IEEE binary16 to binary32, exactly (subnormals, infinities and NaNs included). */
static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, bits;
	if (e == 0x1f) {
		bits = sign | 0x7f800000u | (m << 13);
	} else if (e) {
		bits = sign | ((e + 112u) << 23) | (m << 13);
	} else if (m) { /* subnormal: normalise */
		e = 113;
		while (!(m & 0x400u)) {
			m <<= 1;
			e--;
		}
		bits = sign | (e << 23) | ((m & 0x3ffu) << 13);
	} else {
		bits = sign;
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

void hf_nn_pack_weights(const hf_nn_chain_params *p, const void *src, bool src_half, size_t n,
			size_t k, void *dst, bool dst_half)
{
	const unsigned char *s = src;
	size_t np = hf_nn_padded_cols(p, n), pw = hf_nn_panel_width(p, n);
	float *df = dst;
	uint16_t *dh = dst;
	for (size_t j = 0; j < np; j++) {
		for (size_t kk = 0; kk < k; kk++) {
			size_t at = ((j / pw) * k + kk) * pw + j % pw, from = j * k + kk;
			if (dst_half) {
				dh[at] = j < n ? load_u16(s, from) : 0;
			} else if (j >= n) {
				df[at] = 0.0f;
			} else if (src_half) {
				df[at] = half_to_float(load_u16(s, from));
			} else {
				memcpy(&df[at], s + 4 * from, sizeof(float));
			}
		}
	}
}
