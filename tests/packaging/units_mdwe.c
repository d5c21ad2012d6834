/* units_mdwe: runs a program with write-xor-execute memory enforced, the way
 * MemoryDenyWriteExecute=yes in a systemd unit enforces it, to find out whether that
 * program (PoCL's kernel compiler, the NVIDIA driver, ...) needs W+X memory.
 *
 *   units_mdwe seccomp PROGRAM [ARGS...]   the filter systemd 252 (Debian 12) installs:
 *       mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC, shmat with
 *       SHM_EXEC fail with EPERM
 *   units_mdwe prctl PROGRAM [ARGS...]     the kernel's own PR_SET_MDWE
 *       (PR_MDWE_REFUSE_EXEC_GAIN, Linux 6.3+), which newer systemd uses where it exists
 *
 * Invariants: the restriction is on (proved by a W+X mapping and an mprotect to PROT_EXEC that
 * both fail) before PROGRAM is executed; it is inherited by PROGRAM and every child it forks.
 * Exit status: PROGRAM's; 77 when the kernel lacks the mechanism (the test reports SKIP); 2 on
 * a usage error; 1 when the restriction could not be installed or did not hold.
 * This is a test tool, not a sandbox: the seccomp filter looks at native system calls only.
 * Threading: single-threaded (runs before exec).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

/* <linux/prctl.h> values (Linux 6.3), spelt out: Debian 12's headers (6.1) lack them. */
enum { MDWE_PR_SET = 65, MDWE_REFUSE_EXEC_GAIN = 1 };

#define ARG2 ((unsigned)offsetof(struct seccomp_data, args[2]))

static int install_seccomp(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 5, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmat, 5, 7),
		/* 5: mmap: refuse PROT_WRITE and PROT_EXEC together */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 5, 4),
		/* 8: mprotect, pkey_mprotect: refuse PROT_EXEC */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 3, 2),
		/* 10: shmat: refuse SHM_EXEC */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SHM_EXEC, 1, 0),
		/* 12, 13 */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { .len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "units_mdwe: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
		return 1;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
		fprintf(stderr, "units_mdwe: seccomp filter: %s\n", strerror(errno));
		return errno == EINVAL ? 77 : 1;
	}
	return 0;
}

static int install_prctl(void)
{
	if (prctl(MDWE_PR_SET, MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
		fprintf(stderr, "units_mdwe: PR_SET_MDWE: %s%s\n", strerror(errno),
			errno == EINVAL ? " (kernel older than 6.3 or built without it)" : "");
		return errno == EINVAL ? 77 : 1;
	}
	return 0;
}

/* Both ways of getting W+X memory must now fail, else the test would prove nothing. */
static int prove_refused(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	int rc = 0;

	if (p != MAP_FAILED) {
		fprintf(stderr, "units_mdwe: a W+X mapping still succeeds: the restriction is off\n");
		munmap(p, 4096);
		return 1;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "units_mdwe: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0) {
		fprintf(stderr, "units_mdwe: mprotect to PROT_EXEC still succeeds: the restriction "
				"is off\n");
		rc = 1;
	}
	munmap(p, 4096);
	return rc;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 3 || (strcmp(argv[1], "seccomp") != 0 && strcmp(argv[1], "prctl") != 0)) {
		fprintf(stderr, "Usage: units_mdwe seccomp|prctl PROGRAM [ARGS...]\n");
		return 2;
	}
	rc = strcmp(argv[1], "seccomp") == 0 ? install_seccomp() : install_prctl();
	if (rc)
		return rc;
	if (prove_refused())
		return 1;
	fprintf(stderr, "units_mdwe: %s: W+X memory refused; running %s\n", argv[1], argv[2]);
	execvp(argv[2], argv + 2);
	fprintf(stderr, "units_mdwe: %s: %s\n", argv[2], strerror(errno));
	return 1;
}
