#!/usr/bin/env bash
# gpu-check.sh: the device checks for a machine with a GPU, in one run: the OpenCL platforms it
# sees, the GEMM and SHA-256d correctness tests on the GPU, `hashflop-bench gemm` (untuned and
# tuned, with the share of the FP32 peak), `hashflop-bench hash` on the GPU, and the inference
# executor's tests and `hashflop-bench infer --no-torch`, then `hashflop-bench all` with the
# GPU's power measured by NVML (OUT/all.json) and `hashflop-bench report` on it (OUT/report/).
# Every step has its own time limit, so one hang costs that step only; results go under OUT.
#
# Usage: benchmarks/gpu-check.sh [--build DIR] [--device SEL] [--out DIR] [--quick]
#                                [--power-limits W1,W2,...]
#        benchmarks/gpu-check.sh --collect-libs [--build DIR]
#   --build DIR   a meson build of this tree (default: build); it is not rebuilt here
#   --device SEL  the OpenCL device (hf_cl selector, default: nvidia)
#   --out DIR     where results go (default: $OUT, else gpu-check-out)
#   --quick       small shapes and no tuning (to try the script on PoCL: --device pocl --quick)
#   --power-limits LIST  also sweep these GPU board limits (NVML, as root; the limit in force is
#                 restored after): OUT/limits.json, in the report. Off by default: it changes
#                 the GPU's settings while it runs
#   --collect-libs  (on the build machine) copy the shared libraries the programs use, except
#                 the C library's own, into DIR/carry/lib (about 64 MB, OpenBLAS 36 of it), for a
#                 GPU machine that has no package registry. NVML (libnvidia-ml.so.1) comes with
#                 the driver and is never carried; gnuplot is not carried either (its libraries
#                 are ~57 MB): without it the report is written with its plots skipped, and
#                 `hashflop-bench report OUT/all.json --out DIR` on the build machine draws them
#
# The machine needs the NVIDIA driver with its OpenCL library (libnvidia-opencl.so.1); when no
# ICD file names it, one is written under OUT and OCL_ICD_VENDORS points there. Libraries the
# machine lacks (the OpenCL loader, jansson, OpenBLAS, CLBlast...) can be carried in DIR/carry/lib:
# it goes first on LD_LIBRARY_PATH. Exit status: 0 when every test and check passed.
set -u

build=build device=nvidia out=${OUT:-gpu-check-out} quick=0 collect=0 limits=
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--device) device=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	--power-limits) limits=$2; shift 2 ;;
	--collect-libs) collect=1; shift ;;
	-h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "gpu-check.sh: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
	esac
done
for f in runtime/ctl/hashflopctl benchmarks/hashflop-bench tests/unit/test_gemm; do
	if [ ! -x "$build/$f" ]; then
		echo "gpu-check.sh: $build/$f is missing: build the tree first (meson setup $build && ninja -C $build)" >&2
		exit 2
	fi
done
if [ $collect -eq 1 ]; then
	mkdir -p "$build/carry/lib" || exit 2
	for f in runtime/ctl/hashflopctl benchmarks/hashflop-bench tests/unit/test_gemm \
		 tests/unit/test_sha256d_cl tests/unit/test_cl tests/unit/test_exec /usr/lib/x86_64-linux-gnu/libclblast.so.1; do
		[ -e "$f" ] || f=$build/$f
		[ -e "$f" ] || continue
		[ "${f#/usr/lib}" != "$f" ] && cp -L "$f" "$build/carry/lib/"
		ldd "$f" | awk '$3 ~ /^\// { print $3 }'
	done | sort -u | grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
		while read -r lib; do cp -L "$lib" "$build/carry/lib/"; done
	du -sh "$build/carry/lib"
	exit 0
fi
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
summary=$out/summary.txt
: >"$summary"
failed=0

note() { echo "$*" | tee -a "$summary"; }

# step NAME SECONDS CMD...: runs CMD with a time limit, output in OUT/NAME.txt.
step() {
	local name=$1 limit=$2 rc
	shift 2
	echo "== $name: $*" >"$out/$name.txt"
	timeout --kill-after=10 "$limit" "$@" >>"$out/$name.txt" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		note "ok    $name"
	else
		[ $rc -eq 124 ] && note "FAIL  $name (timed out after ${limit}s)" || note "FAIL  $name (exit $rc)"
		failed=1
	fi
	return $rc
}

if [ -d "$build/carry/lib" ]; then
	export LD_LIBRARY_PATH="$(cd "$build/carry/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ! grep -qs nvidia /etc/OpenCL/vendors/*.icd 2>/dev/null && [ -z "${OCL_ICD_VENDORS:-}" ]; then
	lib=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/ { print $NF; exit }')
	if [ -n "$lib" ]; then
		mkdir -p "$out/icd"
		echo "$lib" >"$out/icd/nvidia.icd"
		export OCL_ICD_VENDORS="$out/icd"
		note "note  no NVIDIA ICD file: using $lib through $out/icd"
	fi
fi
export HF_BUILD_ROOT="$out" HF_TEST_CL_DEVICE="$device" HASHFLOP_CACHE_DIR="$out/cache"
# The published block headers the SHA-256d tests check (meson test sets this from ../shared).
for v in "${HF_VECTORS_DIR:-}" ../shared/vectors shared/vectors; do
	if [ -n "$v" ] && [ -d "$v" ]; then
		export HF_VECTORS_DIR=$(cd "$v" && pwd)
		break
	fi
done

if command -v nvidia-smi >/dev/null; then
	nvidia-smi -q -d CLOCK,POWER,MEMORY >"$out/nvidia-smi.txt" 2>&1
	nvidia-smi -L >>"$out/nvidia-smi.txt" 2>&1
fi
command -v clinfo >/dev/null && clinfo -l >"$out/clinfo.txt" 2>&1
step devices 60 "$build/runtime/ctl/hashflopctl" devices
if ! "$build/runtime/ctl/hashflopctl" devices --select "$device" --json >"$out/device.json" 2>>"$out/devices.txt"; then
	note "FAIL  no OpenCL device matches \"$device\" (see devices.txt): nothing else can run"
	exit 1
fi

# The FP32 peak: compute units x clock x 2 (FMA) x FP32 lanes per compute unit (NVIDIA: 128 per
# SM from Turing on, except 64 on the A100/A30's GA100; other vendors: unknown, no percentage).
peak=$(python3 - "$out/device.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
name = d["name"].upper()
lanes = 0
if "NVIDIA" in d["vendor"].upper() or "NVIDIA" in d["platform"].upper():
    lanes = 64 if ("A100" in name or "A30" in name) else 128
print(int(d["compute_units"] * d["clock_mhz"] * 2 * lanes / 1000) if lanes else "")
EOF
)
peak_arg=()
[ -n "$peak" ] && peak_arg=(--peak "$peak") && note "note  FP32 peak estimate $peak GFLOP/s ($(python3 -c "import json,sys; d=json.load(open('$out/device.json')); print(d['name'], d['compute_units'], 'CUs at', d['clock_mhz'], 'MHz')"))"

# Device info against the driver's own answers, selectors, build logs over 64 KiB.
[ -x "$build/tests/unit/test_cl" ] && step test-cl 300 "$build/tests/unit/test_cl" --tap=-
step test-gemm 600 "$build/tests/unit/test_gemm" --tap=-
[ -x "$build/tests/unit/test_sha256d_cl" ] && step test-sha256d-cl 300 "$build/tests/unit/test_sha256d_cl" --tap=-

if [ $quick -eq 1 ]; then
	shapes=256x256x256,1x1024x1024
	step bench-gemm 300 "$build/benchmarks/hashflop-bench" gemm -d "$device" -s "$shapes" -r 3 --budget 1 "${peak_arg[@]}"
else
	step bench-gemm 600 "$build/benchmarks/hashflop-bench" gemm -d "$device" --full -r 5 --budget 2 "${peak_arg[@]}"
	step tune 600 "$build/benchmarks/hashflop-bench" gemm -d "$device" --tune -r 3 --budget 1 \
		-s 4096x4096x4096,32x4096x4096
	step bench-gemm-tuned 600 "$build/benchmarks/hashflop-bench" gemm -d "$device" --full -r 5 \
		--budget 2 --no-first-call "${peak_arg[@]}"
	step bench-gemm-json 600 "$build/benchmarks/hashflop-bench" gemm -d "$device" -r 5 --budget 2 \
		--no-first-call --no-clblast -s 4096x4096x4096,8192x8192x8192 --json "${peak_arg[@]}"
fi
step bench-hash 120 "$build/benchmarks/hashflop-bench" hash --device "$device" --seconds 5
# Inference: the executor against the reference on the GPU, then `hashflop-bench infer` on the
# Fashion-MNIST model (no PyTorch on GPU machines; the server sections start a node on it too).
[ -x "$build/tests/unit/test_exec" ] && step test-exec 300 "$build/tests/unit/test_exec" --tap=-
model=$(dirname "$0")/../runtime/infer/models/fashion-mnist
step bench-infer 600 "$build/benchmarks/hashflop-bench" infer --device "$device" --model "$model" \
	--no-torch --seconds $([ $quick -eq 1 ] && echo 1 || echo 3) --json "$out/infer.json"

# Energy: everything in one run with the GPU's board power from NVML (the GPU matched by the
# OpenCL device's PCI bus id), then the report (tables, and PNGs where gnuplot is installed).
secs=$([ $quick -eq 1 ] && echo 0.5 || echo 2)
all_shapes=()
[ $quick -eq 1 ] && all_shapes=(--shapes 256x256x256,1x1024x1024)
if ! step bench-all 600 "$build/benchmarks/hashflop-bench" all --device "$device" --hash-device "$device" --power-source nvml \
	--no-torch --seconds "$secs" "${all_shapes[@]}" --model "$model" --json "$out/all.json"; then
	# no NVML (or no GPU it can match): the same run with whatever power source there is
	step bench-all-auto 600 "$build/benchmarks/hashflop-bench" all --device "$device" --hash-device "$device" \
		--no-torch --seconds "$secs" "${all_shapes[@]}" --model "$model" --json "$out/all.json"
fi
runs=("$out/all.json")
if [ -n "$limits" ]; then
	step bench-power-limits 600 "$build/benchmarks/hashflop-bench" gemm -d "$device" \
		--power-source nvml --power-limits "$limits" --no-first-call --no-openblas --no-clblast \
		-s 4096x4096x4096 --seconds "$secs" --json "$out/limits.json" && runs+=("$out/limits.json")
fi
[ -s "$out/all.json" ] && step report 120 "$build/benchmarks/hashflop-bench" report "${runs[@]}" \
	--out "$out/report"

note "results in $out"
exit $failed
