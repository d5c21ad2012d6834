/* seeds_safetensors: starting inputs for fuzz_safetensors (see its selector byte): framed
 * safetensors files ("HEADER\001DATA") with graphs using every op, valid and refused, and
 * raw-file edge cases with NUL bytes in hf_fuzz_extra (a seed is a C string: no NUL past its
 * first byte). The data bytes avoid 0x00 and 0x01; their float values do not matter.
 * Threading: read-only data.
 */
#include <stdint.h>
#include <string.h>

#include "hf_fuzz_replay.h"

const char *const hf_fuzz_seeds[] = {
	/* a 4-3-2 MLP (linear+bias, relu, linear+bias, softmax) with its F32 weights */
	"\001{\"__metadata__\":{\"hashflop.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"nam"
	"e\\\":\\\"input\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,4]}],\\\"outputs\\"
	"\":[{\\\"name\\\":\\\"probs\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,2]}],\\"
	"\"ops\\\":[{\\\"op\\\":\\\"linear\\\",\\\"inputs\\\":[\\\"input\\\"],\\\"outputs\\\":["
	"\\\"h1\\\"],\\\"weight\\\":\\\"fc1.weight\\\",\\\"bias\\\":\\\"fc1.bias\\\"},{\\\"op\\"
	"\":\\\"relu\\\",\\\"inputs\\\":[\\\"h1\\\"],\\\"outputs\\\":[\\\"a1\\\"]},{\\\"op\\\":"
	"\\\"linear\\\",\\\"inputs\\\":[\\\"a1\\\"],\\\"outputs\\\":[\\\"logits\\\"],\\\"weight"
	"\\\":\\\"fc2.weight\\\",\\\"bias\\\":\\\"fc2.bias\\\"},{\\\"op\\\":\\\"softmax\\\",\\\""
	"inputs\\\":[\\\"logits\\\"],\\\"outputs\\\":[\\\"probs\\\"],\\\"axis\\\":-1}]}\",\"hash"
	"flop.source\":\"seed\"},\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offset"
	"s\":[0,48]},\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},\"f"
	"c2.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[60,84]},\"fc2.bias\":{"
	"\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[84,92]}}\001\335<\234\275\265\340\361"
	">C\233\377>\321=\211\277`\324\273\277\212`\300\276\362\207-\277\351Xn?\012`\022?\210"
	"\326\233>\204\3022>\010\312\367>'4\210\277\324&8\276y\260\201\277\305\344\233?Ui\251"
	"\277\226\332t?\223Y\243\277\373\222\017?^^\372\2761\203\222\276\237{\203?",
	/* every other op (flatten, layernorm, gelu tanh, add, linear without bias, sigmoid, tanh,
	 * gelu, reshape), F16 weights, two inputs and two outputs */
	"\005{\"__metadata__\":{\"hashflop.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"nam"
	"e\\\":\\\"x\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,2,3]},{\\\"name\\\":\\"
	"\"r\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,6]}],\\\"outputs\\\":[{\\\"name"
	"\\\":\\\"y\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,3,2]},{\\\"name\\\":\\\""
	"t\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,6]}],\\\"ops\\\":[{\\\"op\\\":\\"
	"\"flatten\\\",\\\"inputs\\\":[\\\"x\\\"],\\\"outputs\\\":[\\\"f\\\"]},{\\\"op\\\":\\\"l"
	"ayernorm\\\",\\\"inputs\\\":[\\\"f\\\"],\\\"outputs\\\":[\\\"n\\\"],\\\"weight\\\":\\\""
	"ln.weight\\\",\\\"bias\\\":\\\"ln.bias\\\",\\\"eps\\\":1e-05},{\\\"op\\\":\\\"gelu\\\","
	"\\\"inputs\\\":[\\\"n\\\"],\\\"outputs\\\":[\\\"g\\\"],\\\"approximate\\\":\\\"tanh\\\""
	"},{\\\"op\\\":\\\"add\\\",\\\"inputs\\\":[\\\"g\\\",\\\"r\\\"],\\\"outputs\\\":[\\\"s\\"
	"\"]},{\\\"op\\\":\\\"linear\\\",\\\"inputs\\\":[\\\"s\\\"],\\\"outputs\\\":[\\\"l\\\"],"
	"\\\"weight\\\":\\\"w16\\\"},{\\\"op\\\":\\\"sigmoid\\\",\\\"inputs\\\":[\\\"l\\\"],\\\""
	"outputs\\\":[\\\"sg\\\"]},{\\\"op\\\":\\\"tanh\\\",\\\"inputs\\\":[\\\"sg\\\"],\\\"outp"
	"uts\\\":[\\\"t\\\"]},{\\\"op\\\":\\\"gelu\\\",\\\"inputs\\\":[\\\"t\\\"],\\\"outputs\\"
	"\":[\\\"ge\\\"]},{\\\"op\\\":\\\"reshape\\\",\\\"inputs\\\":[\\\"ge\\\"],\\\"outputs\\"
	"\":[\\\"y\\\"],\\\"shape\\\":[-1,3,2]}]}\"},\"ln.weight\":{\"dtype\":\"F16\",\"shape\":"
	"[6],\"data_offsets\":[0,12]},\"ln.bias\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offset"
	"s\":[12,24]},\"w16\":{\"dtype\":\"F16\",\"shape\":[6,6],\"data_offsets\":[24,96]}}\001"
	"\002<\002<::f.\376\300\002\270\002<\002B\002B\002<f.\002B\002\270\376\300U5\376\300\376"
	"\300\002\270f.\002<\376\300\002\270\376\300::\002<\002B\376\300\002Bf.\376\300\002B\002"
	"B\376\300\002B\376\300\002<f.f.\002<\002\270::f.U5U5U5::f.\002B",
	/* a scalar, an empty tensor, metadata without a graph, offsets out of order */
	"\001{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data"
	"_offsets\":[4,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"e\":{"
	"\"dtype\":\"F16\",\"shape\":[2,0],\"data_offsets\":[8,8]}}\001\002\003\200?\004\005\006"
	"@",
	/* five tensors: over the small cap of 4 (selector bit 1) */
	"\003{\"t0\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"t1\":{\"dtype\":"
	"\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"t2\":{\"dtype\":\"F32\",\"shape\":[1],"
	"\"data_offsets\":[8,12]},\"t3\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,1"
	"6]},\"t4\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}\001 u\005?\322I"
	"\224\277\212\212K\277\324\357\321\276\227y\013=",
	/* a BF16 tensor (a known dtype the engine refuses) */
	"\001{\"emb.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}\001:::"
	":\376\300\002\270",
	/* a gap before the only tensor */
	"\001{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}\001\002\002\002"
	"\002\003\003\003\003",
	/* raw bytes: a header length far over the cap */
	"\000{\002\002\002\002\002\002\002{}",
	/* a graph refused: a [2, 2] weight for 3 inputs */
	"\011{\"__metadata__\":{\"hashflop.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"nam"
	"e\\\":\\\"x\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,3]}],\\\"outputs\\\":[{"
	"\\\"name\\\":\\\"y\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,2]}],\\\"ops\\\""
	":[{\\\"op\\\":\\\"linear\\\",\\\"inputs\\\":[\\\"x\\\"],\\\"outputs\\\":[\\\"y\\\"],\\"
	"\"weight\\\":\\\"w\\\"}]}\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":"
	"[0,16]}}\001\325\220V\276Zpi=\002`U\277d\202_\276",
};
const size_t hf_fuzz_nseeds = sizeof hf_fuzz_seeds / sizeof hf_fuzz_seeds[0];

/* Runs selector 0 (raw file): an 8-byte header length field len, then text, then n NUL
 * bytes of data. */
static void raw(uint8_t *buf, size_t cap, uint64_t len, const char *text, size_t n)
{
	size_t tl = strlen(text);

	if (1 + 8 + tl + n > cap)
		return;
	buf[0] = 0;
	for (int i = 0; i < 8; i++)
		buf[1 + i] = (uint8_t)(len >> (8 * i));
	memcpy(buf + 9, text, tl);
	memset(buf + 9 + tl, 0, n);
	LLVMFuzzerTestOneInput(buf, 9 + tl + n);
}

void hf_fuzz_extra(uint8_t *buf, size_t cap)
{
	/* A one-linear model: x [-1, 2] -> y [-1, 2] with the weight w [2, 2]. */
	static const char mlp[] =
		"{\"__metadata__\":{\"hashflop.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"nam"
		"e\\\":\\\"x\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,2]}],\\\"outputs\\"
		"\":[{\\\"name\\\":\\\"y\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[-1,2]}],\\"
		"\"ops\\\":[{\\\"op\\\":\\\"linear\\\",\\\"inputs\\\":[\\\"x\\\"],\\\"outputs\\\":["
		"\\\"y\\\"],\\\"weight\\\":\\\"w\\\"}]}\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
		"\"data_offsets\":[0,16]}}";
	const size_t ml = sizeof mlp - 1;

	/* Short files: empty, 7 bytes, a zero header length. */
	buf[0] = 0;
	LLVMFuzzerTestOneInput(buf, 1);
	memset(buf, 0, 8);
	LLVMFuzzerTestOneInput(buf, 8);
	raw(buf, cap, 0, "", 0);
	/* Header lengths: 2^64 - 1, just over the cap, past the end, too short, exact. */
	raw(buf, cap, UINT64_MAX, "{}", 0);
	raw(buf, cap, 100000001u, "{}", 0);
	raw(buf, cap, 3, "{}", 0);
	raw(buf, cap, 1, "{}", 0);
	raw(buf, cap, 2, "{}", 0);
	/* The model with all-zero weights (NUL bytes in the data), then with its data one byte
	 * short and one byte long. */
	raw(buf, cap, ml, mlp, 16);
	raw(buf, cap, ml, mlp, 15);
	raw(buf, cap, ml, mlp, 17);
	/* Framed (selector 1, batch 2) with NUL bytes in the data section. */
	if (cap > ml + 18) {
		buf[0] = 1 | 4;
		memcpy(buf + 1, mlp, ml);
		buf[1 + ml] = 0x01;
		memset(buf + 2 + ml, 0, 16);
		LLVMFuzzerTestOneInput(buf, 2 + ml + 16);
	}
}
