/* cpuinfo_testutil: what the kernel says about this CPU, the oracle for hf_cpu and the
 * scanners' supported() checks. Threading: reentrant. */
#ifndef CPUINFO_TESTUTIL_H
#define CPUINFO_TESTUTIL_H

/* Whether /proc/cpuinfo's first "flags" line lists flag (1 or 0); -1 when there is no such
 * file. The kernel clears a flag whose register state it does not save. */
int hf_test_cpuinfo_has(const char *flag);

#endif
