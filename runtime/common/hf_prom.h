/* hf_prom: writing the Prometheus text exposition format (version 0.0.4) into an hf_buf.
 * Names carry the hashflop_ prefix and their unit ("_seconds", "_bytes"); counters end in
 * "_total". Label values are escaped (backslash, quote, newline).
 * Threading: reentrant; the hf_buf belongs to the caller.
 */
#ifndef HF_PROM_H
#define HF_PROM_H

#include "hf_buf.h"

#define HF_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help\n# TYPE name type\n"; type is "counter", "gauge", "histogram"... */
void hf_prom_family(hf_buf *b, const char *name, const char *type, const char *help);
/* One sample. labels is NULL or an array of 2*nlabels strings: name, value, name, value... */
void hf_prom_sample(hf_buf *b, const char *name, const char *const *labels, size_t nlabels,
		    double value);

#endif
