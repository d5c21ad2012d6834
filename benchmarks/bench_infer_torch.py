#!/usr/bin/python3
"""bench_infer_torch: the PyTorch side of `hashflop-bench infer`: runs a hashflop model file
(safetensors + hashflop.graph, built into a torch module by runtime/infer/tools/hf_model.py)
back to back on random inputs for each batch size and prints the figures as JSON lines.

Output (stdout, one JSON object per line, flushed per line; hashflop-bench parses it):
  {"warmup": B} then {"start": B}  with --markers: when batch B's warm-up, then its timed
                                   calls begin (hashflop-bench reads its power source there)
  {"batch": B, "runs": R, "samples_per_s": X, "p50_us": P, "p99_us": Q, "mean_us": M}  per batch
  {"torch": "1.13.0", "threads": N, "done": true, "blas": "OpenBLAS 0.3.21 ... Zen ..."} last
Invariants: inputs are uniform [0, 1) from a fixed seed; every timed call is one forward of
the whole batch under torch.inference_mode() with torch.set_num_threads(N) and OpenBLAS's
own pool (which Debian's torch uses for linear) also set to N threads; a warm-up of W
seconds (at least one call) per batch size is not counted; samples_per_s = R * B / the wall
time of the R timed calls. Errors go to stderr and exit with status 1, nothing more on stdout.
Threading: the process runs torch with N intra-op threads and OpenBLAS with N, nothing else.
"""

import argparse
import ctypes
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "runtime", "infer", "tools"))


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def positive_ints(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: expected comma-separated integers") from None
    if not v or any(b < 1 or b > 1 << 20 for b in v):
        raise argparse.ArgumentTypeError(f"{s!r}: batch sizes must be 1..{1 << 20}")
    return v


def percentile(sorted_v, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_v) - 1, int(-(-q * len(sorted_v) // 100)) - 1))
    return sorted_v[k]


def openblas(threads):
    """Sets OpenBLAS's own thread pool to threads (torch.set_num_threads does not: Debian's
    torch calls the system BLAS, OpenBLAS, for linear) and returns "OpenBLAS 0.3.21 ... Zen"
    or None when the process has no OpenBLAS."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_set_num_threads(ctypes.c_int(threads))
        return lib.openblas_get_config().decode("utf-8", "replace")
    except (OSError, AttributeError):
        return None


def bench_one(torch, model, shapes, batch, seconds, warmup, gen, markers=False):
    xs = [torch.rand([batch] + s, generator=gen) for s in shapes]
    # hashflop-bench reads the power source at these two lines: the energy window is the
    # timed loop only.
    if markers:
        print(json.dumps({"warmup": batch}), flush=True)
    t_end = time.perf_counter() + warmup
    model(*xs)
    while time.perf_counter() < t_end:
        model(*xs)
    if markers:
        print(json.dumps({"start": batch}), flush=True)
    lat = []
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline or not lat:
        t0 = time.perf_counter_ns()
        model(*xs)
        now = time.perf_counter_ns()
        lat.append(now - t0)
    wall = (now - start) / 1e9
    lat.sort()
    return {"batch": batch, "runs": len(lat),
            "samples_per_s": round(len(lat) * batch / wall, 3),
            "p50_us": round(percentile(lat, 50) / 1e3, 3),
            "p99_us": round(percentile(lat, 99) / 1e3, 3),
            "mean_us": round(sum(lat) / len(lat) / 1e3, 3)}


def main(argv=None):
    ap = Parser(prog="bench_infer_torch.py",
                description="Benchmark a hashflop model file (safetensors + hashflop.graph) in "
                            "PyTorch; prints one JSON object per batch size, then "
                            '{"torch": ..., "threads": N, "done": true}.')
    ap.add_argument("--version", action="version", version="bench_infer_torch.py (hashflop model format: graph version 1)")
    ap.add_argument("--model", required=True, metavar="PATH", help="model.safetensors")
    ap.add_argument("--threads", type=int, required=True, metavar="N",
                    help="torch.set_num_threads(N)")
    ap.add_argument("--batches", type=positive_ints, default=[1, 8, 32, 128], metavar="B,B,...",
                    help="batch sizes (default 1,8,32,128)")
    ap.add_argument("--seconds", type=float, default=2.0, metavar="S",
                    help="timed seconds per batch size (default 2)")
    ap.add_argument("--warmup-seconds", type=float, default=0.5, metavar="W",
                    help="untimed seconds per batch size first (default 0.5)")
    ap.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    ap.add_argument("--markers", action="store_true",
                    help='also print {"warmup": B} and {"start": B} lines (hashflop-bench)')
    try:
        a = ap.parse_args(argv)
        if a.threads < 1 or a.threads > 1024:
            raise UsageError(f"--threads {a.threads}: must be 1..1024")
        if not 0 < a.seconds <= 3600:
            raise UsageError(f"--seconds {a.seconds}: must be in (0, 3600]")
        if not 0 <= a.warmup_seconds <= 3600:
            raise UsageError(f"--warmup-seconds {a.warmup_seconds}: must be in [0, 3600]")
    except UsageError as e:
        print(f"bench_infer_torch: {e} (see --help)", file=sys.stderr)
        return 1
    try:
        import torch
        import hf_model
    except ImportError as e:
        print(f"bench_infer_torch: {e} (needs Debian's python3-torch and python3-numpy: run "
              f"/usr/bin/python3)", file=sys.stderr)
        return 1
    try:
        st = hf_model.read_safetensors(a.model)  # its errors name the file
    except hf_model.FormatError as e:
        print(f"bench_infer_torch: {e}", file=sys.stderr)
        return 1
    try:
        model = hf_model.torch_module(st)
    except hf_model.FormatError as e:
        print(f"bench_infer_torch: {a.model}: {e}", file=sys.stderr)
        return 1
    torch.set_num_threads(a.threads)
    blas = openblas(a.threads)
    shapes = [io["shape"][1:] for io in st.graph()["inputs"]]
    gen = torch.Generator().manual_seed(a.seed)
    try:
        with torch.inference_mode():
            for b in a.batches:
                r = bench_one(torch, model, shapes, b, a.seconds, a.warmup_seconds, gen,
                              a.markers)
                print(json.dumps(r), flush=True)
    except RuntimeError as e:  # e.g. out of memory
        print(f"bench_infer_torch: batch {b}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "done": True, "blas": blas or "not OpenBLAS"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
