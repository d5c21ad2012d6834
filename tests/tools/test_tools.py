#!/usr/bin/python3
"""test_tools: checks of runtime/infer/tools (hf_model.py, export.py), the committed
Fashion-MNIST model and benchmarks/bench_infer_torch.py, reported as TAP.

Invariants: real files in a temporary directory (removed at the end), the real scripts run as
child processes of /usr/bin/python3; nothing asserts a timing. The committed model's
probabilities are compared with the expected ones within 1e-5 (bit-exact on the machine that
trained it; other CPUs may round GEMMs differently); the image check is skipped only when the
Fashion-MNIST test images are not installed.
Threading: single process; torch runs with 2 threads.
"""

import collections
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

ROOT = os.environ.get("HF_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLS = os.path.join(ROOT, "runtime", "infer", "tools")
sys.dont_write_bytecode = True
sys.path.insert(0, TOOLS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hf_model  # noqa: E402

PY = sys.executable
EXPORT = os.path.join(TOOLS, "export.py")
BENCH = os.path.join(ROOT, "benchmarks", "bench_infer_torch.py")
MODEL = os.path.join(ROOT, "runtime", "infer", "models", "fashion-mnist", "model.safetensors")
EXPECTED = os.path.join(ROOT, "tests", "data", "fashion-mnist", "expected.safetensors")
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TMP = tempfile.mkdtemp(prefix="hf-test-tools-")
TESTS = []


class Skip(Exception):
    pass


def test(fn):
    TESTS.append(fn)
    return fn


def run(*args):
    return subprocess.run([PY, "-B"] + list(args), capture_output=True, text=True, timeout=120,
                          cwd=TMP)


def raises(fn, substring, exc=hf_model.FormatError):
    try:
        fn()
    except exc as e:
        assert substring in str(e), f"error {str(e)!r} does not mention {substring!r}"
        return
    raise AssertionError(f"no {exc.__name__} (expected one mentioning {substring!r})")


def raw_file(header, data=b"", pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        h += b" " * ((-(8 + len(h))) % 8)
    return struct.pack("<Q", len(h)) + h + data


def tiny_sequential():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4))


@test
def writer_layout_is_the_format():
    a = np.array([1.0, 2.0], dtype=np.float32)
    got = hf_model.encode_safetensors({"a": a})
    h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    assert len(h) == 54  # 8 + 54 + 2 spaces = 64: the data starts aligned
    want = struct.pack("<Q", 56) + h + b"  " + struct.pack("<2f", 1.0, 2.0)
    assert got == want, f"{got!r} != {want!r}"
    b = hf_model.encode_safetensors(
        collections.OrderedDict([("z.w", np.ones((3, 2), np.float32)),
                                 ("a.b", np.zeros(3, np.float16))]), {"k": "v"})
    (n,) = struct.unpack("<Q", b[:8])
    assert (8 + n) % 8 == 0, "data section not aligned"
    hdr = json.loads(b[8:8 + n])
    assert list(hdr) == ["__metadata__", "z.w", "a.b"], list(hdr)
    assert hdr["z.w"]["data_offsets"] == [0, 24] and hdr["a.b"]["data_offsets"] == [24, 30]
    assert hdr["a.b"]["dtype"] == "F16" and hdr["__metadata__"] == {"k": "v"}
    for length in range(1, 17):  # every header length mod 8: the padding always aligns
        b = hf_model.encode_safetensors({"x" * length: a})
        (n,) = struct.unpack("<Q", b[:8])
        assert (8 + n) % 8 == 0 and len(b) == 8 + n + 8, (length, n)
        assert b[8:8 + n].rstrip(b" ").endswith(b"}") and n - len(b[8:8 + n].rstrip(b" ")) < 8
    raises(lambda: hf_model.encode_safetensors({"i": np.zeros(2, np.int32)}), "not F32 or F16")
    raises(lambda: hf_model.encode_safetensors({"a": a}, {"k": 1}), "must be strings")
    raises(lambda: hf_model.encode_safetensors({"": a}), "1..255 bytes")


@test
def reader_round_trips_and_refuses_bad_files():
    t = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "h": np.array([0.5], np.float16)}
    st = hf_model.parse_safetensors(hf_model.encode_safetensors(t, {"m": "x"}))
    assert np.array_equal(st.tensors["w"], t["w"]) and st.tensors["h"].dtype == np.float16
    assert st.metadata == {"m": "x"} and st.data_bytes == 26
    e = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    d8 = b"\0" * 8
    cases = [
        (b"\1\0\0", "shorter than the 8-byte"),
        (struct.pack("<Q", 1000) + b"{}", "runs past the end"),
        (struct.pack("<Q", 200 * 1000 * 1000), "over the cap"),
        (raw_file(b'["a"]'), "does not start with '{'"),
        (raw_file(b'{"a":' + json.dumps(e).encode() + b',"a":' + json.dumps(e).encode() + b"}",
                  d8), "duplicate key 'a'"),
        (raw_file({"a": dict(e, extra=1)}, d8), "unknown field 'extra'"),
        (raw_file({"a": {"dtype": "F32", "shape": [2]}}, d8), "missing 'data_offsets'"),
        (raw_file({"a": dict(e, dtype="Q8")}, d8), "unknown dtype"),
        (raw_file({"a": dict(e, dtype="I32")}, d8), "dtype I32 is not supported"),
        (raw_file({"a": dict(e, shape=[-2])}, d8), "non-negative integers"),
        (raw_file({"a": dict(e, shape=[2.0])}, d8), "non-negative integers"),
        (raw_file({"a": dict(e, shape=[3])}, d8), "span 8 bytes, shape [3] of F32 needs 12"),
        (raw_file({"a": dict(e, data_offsets=[8, 0])}, d8), "begin <= end"),
        (raw_file({"a": e, "b": dict(e, data_offsets=[4, 12])}, d8 + d8), "an overlap"),
        (raw_file({"a": dict(e, data_offsets=[4, 12])}, d8 + b"\0" * 4), "a gap"),
        (raw_file({"a": e}, d8 + b"\0"), "data section has 9"),
        (raw_file({"__metadata__": {"k": 1}}), "is not a string"),
        (raw_file(b'{"a":' + json.dumps(e).encode() + b"}\n", d8, pad=False), "padding"),
        (raw_file({"a": dict(e, shape=[1] * 9, data_offsets=[0, 4])}, b"\0" * 4), "at most 8"),
        (raw_file({"a\n": e}, d8), "control character"),
        (raw_file(b'{"__metadata__":{"k":NaN}}'), "NaN is not JSON"),
    ]
    for i, (buf, msg) in enumerate(cases):
        try:
            raises(lambda: hf_model.parse_safetensors(buf), msg)
        except AssertionError as err:
            raise AssertionError(f"case {i}: {err}") from None
    i32 = raw_file({"a": dict(e, dtype="I32")}, d8)
    assert hf_model.parse_safetensors(i32, engine=False).dtypes["a"] == "I32"
    p = os.path.join(TMP, "bad.safetensors")
    with open(p, "wb") as f:
        f.write(raw_file({"a": dict(e, shape=[3])}, d8))
    raises(lambda: hf_model.read_safetensors(p), 'bad.safetensors: tensor \'a\'')


@test
def graph_of_a_sequential_and_its_checks():
    nn = torch.nn
    m = nn.Sequential(collections.OrderedDict([
        ("flat", nn.Flatten()), ("fc1", nn.Linear(12, 8)), ("ln", nn.LayerNorm(8, eps=1e-6)),
        ("g", nn.GELU(approximate="tanh")), ("drop", nn.Dropout(0.2)),
        ("head", nn.Sequential(nn.Linear(8, 3, bias=False), nn.Softmax(dim=-1)))]))
    g = hf_model.graph_from_sequential(m, [3, 4])
    assert [o["op"] for o in g["ops"]] == ["flatten", "linear", "layernorm", "gelu", "linear",
                                           "softmax"], g["ops"]
    assert g["ops"][2] == {"op": "layernorm", "inputs": ["fc1"], "outputs": ["ln"], "eps": 1e-6,
                           "weight": "ln.weight", "bias": "ln.bias"}, g["ops"][2]
    assert g["ops"][3]["approximate"] == "tanh"
    assert g["ops"][4] == {"op": "linear", "inputs": ["g"], "outputs": ["head_0"],
                           "weight": "head.0.weight"}, g["ops"][4]
    assert g["inputs"][0]["shape"] == [-1, 3, 4] and g["outputs"][0]["shape"] == [-1, 3]
    shapes = hf_model.check_graph(g, m.state_dict())
    assert shapes["flat"] == [-1, 12] and shapes["probs"] == [-1, 3]
    raises(lambda: hf_model.graph_from_sequential(nn.Sequential(nn.Conv2d(1, 1, 3)), [1, 4, 4]),
           "module '0' (Conv2d): not supported", hf_model.UnsupportedModule)
    raises(lambda: hf_model.graph_from_sequential(nn.Sequential(nn.Linear(5, 2)), [4]),
           "in_features 5 but its input has 4", hf_model.UnsupportedModule)
    raises(lambda: hf_model.graph_from_sequential(nn.Sequential(nn.Softmax(dim=0)), [4]),
           "dim=0", hf_model.UnsupportedModule)
    raises(lambda: hf_model.graph_from_sequential(nn.Linear(4, 2), [4]), "not an nn.Sequential",
           hf_model.UnsupportedModule)
    t = tiny_sequential().state_dict()
    good = hf_model.graph_from_sequential(tiny_sequential(), [6])

    def broken(**kw):
        b = json.loads(json.dumps(good))
        for k, v in kw.items():
            i, f = k.split("_", 1)
            b["ops"][int(i[1:])][f] = v
        return lambda: hf_model.check_graph(b, t)
    raises(broken(o2_weight="0.weight"),
           "ops[2] (linear): weight '0.weight' has shape [5, 6], expected [out, 5] for 5 inputs")
    raises(broken(o0_weight="nope"), "ops[0] (linear): tensor 'nope' is not in the file")
    raises(broken(o1_op="swish"), "ops[1]: unknown op 'swish'")
    raises(broken(o1_inputs=["later"]), "ops[1] (relu): input 'later' is not defined")
    raises(broken(o1_outputs=["input"]), "ops[1] (relu): output 'input' is already defined")
    raises(broken(o1_axis=-1), "ops[1] (relu): unknown key 'axis'")
    bad = json.loads(json.dumps(good))
    bad["outputs"][0]["shape"] = [-1, 5]
    raises(lambda: hf_model.check_graph(bad, t), "declared shape [-1, 5] but the graph gives")


@test
def export_arch_round_trips():
    m = tiny_sequential()
    pt = os.path.join(TMP, "tiny.pt")
    torch.save(m.state_dict(), pt)
    out = os.path.join(TMP, "repo", "tiny", "model.safetensors")
    r = run(EXPORT, "--arch", "6-5-4:relu:softmax", "--state-dict", pt, "-o", out,
            "--max-batch-size", "16", "--metadata", "owner=tests")
    assert r.returncode == 0, r.stderr
    assert "verified against torch (max |diff| 0)" in r.stdout, r.stdout
    st = hf_model.read_safetensors(out)
    assert list(st.tensors) == ["0.weight", "0.bias", "2.weight", "2.bias"], list(st.tensors)
    for k, v in m.state_dict().items():
        assert st.dtypes[k] == "F32" and np.array_equal(st.tensors[k], v.numpy()), k
    assert st.metadata["owner"] == "tests" and "hashflop.source" in st.metadata
    g = st.graph()
    assert [o["op"] for o in g["ops"]] == ["linear", "relu", "linear", "softmax"]
    assert g["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 4]}]
    with open(os.path.join(os.path.dirname(out), "config.json")) as f:
        assert json.load(f) == {"max_batch_size": 16}
    x = torch.rand(9, 6)
    with torch.inference_mode():
        want = torch.softmax(m(x), dim=-1)
        got = hf_model.torch_module(st)(x)
    assert torch.equal(want, got), float((want - got).abs().max())


@test
def export_module_f16_and_errors():
    mod = os.path.join(TMP, "usermodels.py")
    with open(mod, "w") as f:
        f.write("import torch.nn as nn\n"
                "def mlp():\n"
                "    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.LayerNorm(8),\n"
                "                         nn.Tanh(), nn.Linear(8, 3), nn.Sigmoid())\n"
                "def conv():\n"
                "    return nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 1))\n")
    out = os.path.join(TMP, "m16", "model.safetensors")
    r = run(EXPORT, "--module", mod + ":mlp", "--input-shape", "3,4", "--dtype", "F16",
            "-o", out)
    assert r.returncode == 0, r.stderr
    st = hf_model.read_safetensors(out)
    assert set(st.dtypes.values()) == {"F16"} and st.tensors["1.weight"].shape == (8, 12)
    assert st.graph()["inputs"][0]["shape"] == [-1, 3, 4]
    r = run(EXPORT, "--module", mod + ":conv", "-o", os.path.join(TMP, "c", "m.safetensors"))
    assert r.returncode == 1 and "module '1' (Conv1d): not supported" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(TMP, "c", "m.safetensors"))
    pt = os.path.join(TMP, "tiny.pt")
    r = run(EXPORT, "--arch", "6-7-4", "--state-dict", pt, "-o", os.path.join(TMP, "x.st"))
    assert r.returncode == 1 and "0.weight has shape [5, 6], the architecture needs [7, 6]" \
        in r.stderr, r.stderr
    r = run(EXPORT, "--arch", "6-5-4:swish", "--state-dict", pt, "-o", os.path.join(TMP, "x.st"))
    assert r.returncode == 1 and "hidden activation 'swish'" in r.stderr, r.stderr
    r = run(EXPORT, "--arch", "6-5-4", "--state-dict", mod, "-o", os.path.join(TMP, "x.st"))
    assert r.returncode == 1 and "torch.load failed" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(TMP, "x.st"))
    r = run(EXPORT, "--help")
    assert r.returncode == 0 and "--arch SPEC" in r.stdout and "examples:" in r.stdout


@test
def committed_model_and_expected_outputs():
    st = hf_model.read_safetensors(MODEL)
    shapes = {k: list(v.shape) for k, v in st.tensors.items()}
    assert shapes == {"fc1.weight": [256, 784], "fc1.bias": [256], "fc2.weight": [128, 256],
                      "fc2.bias": [128], "fc3.weight": [10, 128], "fc3.bias": [10]}, shapes
    assert set(st.dtypes.values()) == {"F32"}
    g = st.graph()
    assert g["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
    assert g["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}]
    assert [o["op"] for o in g["ops"]] == ["linear", "relu", "linear", "relu", "linear",
                                           "softmax"]
    for k in ("hashflop.source", "hashflop.dataset", "hashflop.accuracy"):
        assert k in st.metadata, k
    with open(os.path.join(os.path.dirname(MODEL), "config.json")) as f:
        assert json.load(f) == {"max_batch_size": 64, "max_queue_delay_us": 500}
    ex = hf_model.read_safetensors(EXPECTED)
    probs, labels = ex.tensors["probs"], ex.tensors["labels"]
    assert probs.shape == (10000, 10) and labels.shape == (10000,)
    assert ex.dtypes == {"probs": "F32", "labels": "F32"}
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    acc = float((probs.argmax(1) == labels).mean())
    assert ex.metadata["torch_accuracy"] == f"{acc:.4f}" == st.metadata["hashflop.accuracy"]
    assert 0.86 <= acc <= 0.92, acc
    if not os.path.exists(IMAGES):
        raise Skip(f"{IMAGES} not installed (dataset-fashion-mnist)")
    with gzip.open(IMAGES, "rb") as f:
        raw = f.read()
    x = np.frombuffer(raw[16:], np.uint8).reshape(10000, 784).astype(np.float32) / np.float32(255)
    with torch.inference_mode():
        got = hf_model.torch_module(st)(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - probs).max())
    assert diff <= 1e-5, f"max |diff| {diff} against the expected probabilities"
    print(f"# committed model: accuracy {acc:.4f}, evaluator max |diff| {diff:g}")


@test
def bench_infer_torch_prints_its_lines():
    out = os.path.join(TMP, "repo", "tiny", "model.safetensors")
    if not os.path.exists(out):
        raise AssertionError("export_arch_round_trips did not leave its model")
    r = run(BENCH, "--model", out, "--threads", "1", "--batches", "1,3", "--seconds", "0.05",
            "--warmup-seconds", "0")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(s) for s in r.stdout.splitlines()]
    assert [ln.get("batch") for ln in lines[:2]] == [1, 3], lines
    for ln in lines[:2]:
        assert set(ln) == {"batch", "runs", "samples_per_s", "p50_us", "p99_us", "mean_us"}, ln
        assert ln["runs"] >= 1 and ln["samples_per_s"] > 0 and ln["p50_us"] <= ln["p99_us"]
    assert {k: lines[2][k] for k in ("torch", "threads", "done")} == \
        {"torch": torch.__version__, "threads": 1, "done": True}, lines[2]
    assert isinstance(lines[2].get("blas"), str), lines[2]
    assert len(lines) == 3
    for args, msg in ((["--model", out, "--threads", "0"], "--threads 0"),
                      (["--model", out, "--threads", "1", "--batches", "0"], "--batches"),
                      (["--model", EXPECTED, "--threads", "1"], "no 'hashflop.graph'"),
                      (["--threads", "1"], "--model")):
        r = run(BENCH, *args)
        assert r.returncode == 1 and msg in r.stderr and r.stdout == "", (args, r.stderr)


def main():
    torch.set_num_threads(2)
    print(f"1..{len(TESTS)}", flush=True)
    failed = 0
    try:
        for i, fn in enumerate(TESTS, 1):
            try:
                fn()
                print(f"ok {i} - {fn.__name__}", flush=True)
            except Skip as s:
                print(f"ok {i} - {fn.__name__} # SKIP {s}", flush=True)
            except Exception:
                failed += 1
                print(f"not ok {i} - {fn.__name__}", flush=True)
                for line in traceback.format_exc().splitlines():
                    print(f"# {line}", flush=True)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
