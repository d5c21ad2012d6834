/* hf_error: strings for the error enum and the error-buffer helpers.
 * Threading: reentrant; no state.
 */
#include "hf_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hf_text.h"

const char *hf_strerror(int code)
{
	switch (code) {
	case HF_OK: return "success";
	case HF_EINVAL: return "invalid argument";
	case HF_ENOMEM: return "out of memory";
	case HF_EIO: return "input/output error";
	case HF_ECONFIG: return "configuration error";
	case HF_ETOOBIG: return "size over its limit";
	case HF_EPARSE: return "malformed input";
	case HF_ENOTFOUND: return "not found";
	case HF_ESTATE: return "not allowed in the current state";
	case HF_EUNSUPPORTED: return "not supported";
	case HF_ETIMEOUT: return "timed out";
	case HF_ENET: return "network error";
	case HF_EPROTO: return "protocol error";
	case HF_ECRYPTO: return "cryptographic failure";
	case HF_EREFUSED: return "refused by policy";
	case HF_EBUSY: return "busy";
	case HF_ECL: return "OpenCL error";
	case HF_ECANCELED: return "canceled";
	case HF_ERANGE: return "value out of range";
	}
	return "unknown error";
}

void hf_errbuf_clear(hf_errbuf *eb)
{
	if (eb)
		eb->msg[0] = '\0';
}

int hf_fail(hf_errbuf *eb, int code, const char *fmt, ...)
{
	if (eb) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
		va_end(ap);
		hf_utf8_trim(eb->msg);   /* a cut mid-character would make the detail invalid JSON */
	}
	return code;
}

int hf_fail_prefix(hf_errbuf *eb, int code, const char *fmt, ...)
{
	if (eb) {
		char prefix[HF_ERRBUF_SIZE];
		char old[HF_ERRBUF_SIZE];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(prefix, sizeof prefix, fmt, ap);
		va_end(ap);
		memcpy(old, eb->msg, sizeof old);
		if (old[0])
			snprintf(eb->msg, sizeof eb->msg, "%s: %s", prefix, old);
		else
			snprintf(eb->msg, sizeof eb->msg, "%s", prefix);
		hf_utf8_trim(eb->msg);
	}
	return code;
}
