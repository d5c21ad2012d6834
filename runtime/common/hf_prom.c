/* hf_prom: Prometheus text exposition format writer.
 * Threading: reentrant.
 */
#include "hf_prom.h"

#include <math.h>
#include <string.h>

void hf_prom_family(hf_buf *b, const char *name, const char *type, const char *help)
{
	hf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void escaped(hf_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			hf_buf_append(b, "\\\\", 2);
		else if (*s == '"')
			hf_buf_append(b, "\\\"", 2);
		else if (*s == '\n')
			hf_buf_append(b, "\\n", 2);
		else
			hf_buf_append(b, s, 1);
	}
}

void hf_prom_sample(hf_buf *b, const char *name, const char *const *labels, size_t nlabels,
		    double value)
{
	hf_buf_append(b, name, strlen(name));
	if (nlabels) {
		hf_buf_append(b, "{", 1);
		for (size_t i = 0; i < nlabels; i++) {
			hf_buf_printf(b, "%s%s=\"", i ? "," : "", labels[2 * i]);
			escaped(b, labels[2 * i + 1]);
			hf_buf_append(b, "\"", 1);
		}
		hf_buf_append(b, "}", 1);
	}
	if (isnan(value))
		hf_buf_printf(b, " NaN\n");
	else if (isinf(value))
		hf_buf_printf(b, " %sInf\n", value > 0 ? "+" : "-");
	else if (value == floor(value) && fabs(value) < 9.0e15)
		hf_buf_printf(b, " %.0f\n", value);
	else
		hf_buf_printf(b, " %.9g\n", value);
}
