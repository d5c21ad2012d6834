#!/bin/bash
# units_mdwe.sh: MemoryDenyWriteExecute=yes is safe for hashflopd's OpenCL path: the SHA-256d and
# GEMM kernels are compiled by the OpenCL runtime (PoCL here: LLVM, a shared object, dlopen) and
# run, with a cold kernel cache, under units_mdwe's W^X enforcement: the seccomp filter systemd
# 252 installs, and the kernel's PR_SET_MDWE (Linux 6.3+) that newer systemd uses.
#
# Usage: units_mdwe.sh UNITS_MDWE HASHFLOP_BENCH HASHFLOPCTL (meson passes them). TAP.
# SKIP (with the reason) where the kernel lacks a mechanism or no OpenCL device exists.
# Threading: one shell process.
set -u
# shellcheck source=tests/packaging/units_lib.sh
. "$(dirname "$0")/units_lib.sh"

MDWE=$1 BENCH=$2 CTL=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hf-mdwe.XXXXXX") || { echo "Bail out! mktemp"; exit 1; }
trap 'rm -rf "$WORK"' EXIT

have_opencl=1
if ! "$CTL" devices >"$WORK/devices" 2>&1 || ! grep -q . "$WORK/devices"; then
	have_opencl=0
fi
tap_diag <"$WORK/devices"

wx_python() { # a W+X mapping from a program units_mdwe executes: must be refused
	"$MDWE" "$1" /usr/bin/python3 -c 'import mmap
mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)' \
		>"$WORK/wx.out" 2>&1
	local rc=$?
	tap_diag <"$WORK/wx.out"
	[ $rc -ne 0 ] && grep -q "PermissionError" "$WORK/wx.out"
}

# run_bench MODE NAME ARGS...: the bench under MODE with an empty PoCL cache; ok when it ran
# the OpenCL kernel and PoCL loaded a freshly compiled kernel object.
run_bench() {
	local mode=$1 cache="$WORK/cache-$1-$2" rc
	shift 2
	mkdir -p "$cache"
	POCL_CACHE_DIR=$cache/pocl HASHFLOP_CACHE_DIR=$cache CUDA_CACHE_PATH=$cache/cuda \
		timeout 600 "$MDWE" "$mode" "$BENCH" "$@" >"$WORK/bench.out" 2>&1
	rc=$?
	grep -E "units_mdwe|error|refused|not permitted" "$WORK/bench.out" | tap_diag
	if [ $rc -ne 0 ]; then
		tail -20 "$WORK/bench.out" | tap_diag
		return 1
	fi
	if [ -n "$(find "$cache" -name '*.so' 2>/dev/null | head -1)" ]; then
		echo "kernel objects compiled and loaded: $(find "$cache" -name '*.so' | wc -l)" | tap_diag
	elif ! grep -qiE "pocl|Portable Computing Language" "$WORK/bench.out"; then
		echo "not PoCL: the run is the check" | tap_diag
	else
		echo "PoCL ran but left no kernel object in $cache" | tap_diag
		return 1
	fi
}

for mode in seccomp prctl; do
	"$MDWE" "$mode" true 2>"$WORK/probe"
	rc=$?
	if [ $rc -eq 77 ]; then
		tap_skip "$mode: $(cat "$WORK/probe")"
		continue
	fi
	if [ $rc -ne 0 ]; then
		tap_diag <"$WORK/probe"
		tap_not_ok "$mode: W^X enforcement installs and holds"
		continue
	fi
	tap_ok "$mode: W^X enforcement installs and holds"
	if [ -x /usr/bin/python3 ]; then
		tap_check "$mode: control: a W+X mapping in the executed program is refused" wx_python "$mode"
	else
		tap_skip "$mode: /usr/bin/python3 is not installed for the control"
	fi
	if [ $have_opencl -eq 0 ]; then
		tap_skip "$mode: no OpenCL device (hashflopctl devices lists none)"
		tap_skip "$mode: no OpenCL device (hashflopctl devices lists none)"
		continue
	fi
	tap_check "$mode: SHA-256d OpenCL kernel, cold cache (hashflop-bench hash --impl opencl)" \
		run_bench "$mode" hash hash --impl opencl --seconds 0.3 --warmup 0.1
	tap_check "$mode: GEMM OpenCL kernels, cold cache (hashflop-bench gemm 64x64x64)" \
		run_bench "$mode" gemm gemm --shapes 64x64x64 --reps 1 --budget 1 --seconds 0.2 \
		--no-clblast --no-openblas --no-first-call --cache-dir "$WORK/cache-$mode-gemm"
done

tap_done
