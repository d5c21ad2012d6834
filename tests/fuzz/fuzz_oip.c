/* fuzz_oip: libFuzzer target for the OIP request parser (hf_oip_parse_request) and, on every
 * accepted request, the response writer fed the parsed inputs, whose JSON must parse back.
 * Input: byte 0's top two bits choose the Inference-Header-Content-Length header:
 *   00: decimal of ((b0 & 0x3f) << 8 | b1)   01: absent (the whole body is JSON)
 *   10: the raw bytes 2..2+(b1 % 8) as the header text (the body follows them)
 *   11: body length - b1 (b1 bytes of binary data after the JSON; survives mutation)
 * then the body from byte 2. The caps are small (4 tensors, 64 elements each, 128 per request,
 * 2 KiB of JSON) so both sides of each are reached within run-fuzz's default -max_len.
 * Built with clang as a libFuzzer binary, and with any compiler as a replay/smoke program.
 * Threading: single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hf_buf.h"
#include "hf_oip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the accepted request's inputs back as a response (binary as the request asked for
 * its outputs, else alternating) and checks the JSON part parses and the sizes add up. */
static void respond(const hf_oip_request *req)
{
	hf_oip_out_tensor outs[HF_OIP_DEFAULT_MAX_TENSORS];
	size_t n = 0, json_len = 0, bin = 0;
	hf_buf b;
	hf_errbuf eb;

	for (size_t i = 0; i < req->ninputs && n < HF_OIP_DEFAULT_MAX_TENSORS; i++) {
		const hf_oip_tensor *t = &req->inputs[i];
		if (!t->data)
			continue;
		outs[n] = (hf_oip_out_tensor){ .name = t->name, .ndim = t->ndim, .shape = t->shape,
			.data = t->data,
			.binary = req->noutputs ? req->outputs[n % req->noutputs].binary : i % 2 };
		if (outs[n].binary)
			bin += (size_t)t->count * 4;
		n++;
	}
	hf_buf_init(&b, 0);
	if (hf_oip_build_response("m\"\\\x01", "1", req->has_id ? req->id : NULL, outs, n, &b,
				  &json_len, &eb) == 0) {
		json_error_t jerr;
		json_t *j = json_loadb(b.data, json_len, JSON_REJECT_DUPLICATES, &jerr);
		if (!j || json_len + bin != b.len) {
			fprintf(stderr, "fuzz_oip: response JSON does not parse: %s\n", jerr.text);
			abort();
		}
		json_decref(j);
	}
	hf_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const hf_oip_limits lim = { .max_tensors = 4, .max_elements = 64, .max_total = 128,
		.max_json = 2048 };
	char header[24];
	const char *hdr = header;
	const uint8_t *body;
	size_t len;
	hf_oip_request req;
	hf_errbuf eb;

	if (size < 2)
		return 0;
	body = data + 2;
	len = size - 2;
	switch (data[0] >> 6) {
	case 0:
		snprintf(header, sizeof header, "%u", (unsigned)((data[0] & 0x3f) << 8 | data[1]));
		break;
	case 1:
		hdr = NULL;
		break;
	case 2: {
		size_t k = data[1] % 8u < len ? data[1] % 8u : len;
		memcpy(header, body, k);
		header[k] = '\0';
		body += k;
		len -= k;
		break;
	}
	default:
		snprintf(header, sizeof header, "%zu", len >= data[1] ? len - data[1] : len + 1);
		break;
	}
	if (hf_oip_parse_request(body, len, hdr, &lim, &req, &eb) == 0)
		respond(&req);
	hf_oip_request_clear(&req);
	return 0;
}
