#include <criterion/criterion.h>
#include "hf_oip.h"
Test(oip, stub) { cr_assert(hf_oip_dtype_parse("FP32", NULL)); }
