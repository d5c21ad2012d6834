#!/usr/bin/python3
"""export: converts a PyTorch MLP (an nn.Sequential) into a hashflop model: one safetensors file
with the weights (named by state_dict keys) and the layer graph in __metadata__
"hashflop.graph", optionally with a config.json next to it.

Invariants: the written file is read back with the strict reader, its graph is checked, and
the graph run by hf_model's evaluator is compared with the torch model on random inputs before
the command succeeds (a file that fails is removed). Errors go to stderr with exit status 1
(2 for bad usage) and name what is wrong.
Threading: single process.
"""

import argparse
import collections
import importlib
import importlib.util
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402

ACTS = {"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "sigmoid": "Sigmoid"}
OUT_ACTS = {"softmax", "sigmoid", "none"}

EPILOG = """\
architecture spec (--arch): DIMS[:HIDDEN[:OUTPUT]]
  DIMS    the layer widths, input first: 784-256-128-10 is three Linear layers
  HIDDEN  the activation after each hidden layer: relu (default), gelu, tanh, sigmoid
  OUTPUT  the last layer's activation: softmax (default), sigmoid, none
  The state_dict keys may be fc1.weight, fc1.bias, fc2.weight, ... or those of a plain
  nn.Sequential(Linear, act, Linear, ...): 0.weight, 0.bias, 2.weight, ...

python module (--module): FILE.py:FUNC or package.module:FUNC; FUNC() returns an
  nn.Sequential of Linear, ReLU, GELU, Tanh, Sigmoid, Softmax(dim=-1), LayerNorm, Flatten
  (Dropout and Identity are dropped). The state_dict (--state-dict) is loaded into it strictly;
  without --state-dict the weights the function returns are exported.

--state-dict accepts what torch.save wrote: a state_dict, a whole nn.Sequential, or a
  checkpoint dict holding a state_dict under "state_dict" or "model_state_dict".

examples:
  export.py --state-dict mlp.pt --arch 784-256-128-10:relu:softmax -o models/mlp/model.safetensors
  export.py --module mymodels.py:make_mlp --state-dict mlp.pt --input-shape 1,28,28 \\
            -o models/mlp/model.safetensors --max-batch-size 64
"""


class ExportError(Exception):
    pass


def parse_arch(spec):
    """(dims, hidden activation, output activation) of an --arch spec."""
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3:
        raise ExportError(f"--arch {spec!r}: expected DIMS[:HIDDEN[:OUTPUT]]")
    try:
        dims = [int(d) for d in parts[0].split("-")]
    except ValueError:
        raise ExportError(f"--arch {spec!r}: DIMS must be integers joined by '-' "
                          f"(784-256-10)") from None
    if len(dims) < 2 or any(d <= 0 for d in dims):
        raise ExportError(f"--arch {spec!r}: DIMS needs at least two positive widths")
    hidden = parts[1] if len(parts) > 1 else "relu"
    out = parts[2] if len(parts) > 2 else "softmax"
    if hidden not in ACTS:
        raise ExportError(f"--arch {spec!r}: hidden activation {hidden!r}; one of "
                          f"{', '.join(ACTS)}")
    if out not in OUT_ACTS:
        raise ExportError(f"--arch {spec!r}: output activation {out!r}; one of "
                          f"{', '.join(sorted(OUT_ACTS))}")
    return dims, hidden, out


def arch_models(torch, dims, hidden, out):
    """The spec as two nn.Sequentials: named (fc1, act1, ...) and plain (0, 1, 2, ...)."""
    nn = torch.nn
    layers = []
    n = len(dims) - 1
    for i in range(n):
        layers.append((f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1])))
        if i < n - 1:
            layers.append((f"act{i + 1}", getattr(nn, ACTS[hidden])()))
    if out == "softmax":
        layers.append(("softmax", nn.Softmax(dim=-1)))
    elif out == "sigmoid":
        layers.append(("sigmoid", nn.Sigmoid()))
    named = nn.Sequential(collections.OrderedDict(layers))
    plain = nn.Sequential(*[m for _, m in layers])
    return named, plain


def load_state(torch, path):
    """The tensors torch.save wrote at path: a state_dict, or an nn.Module."""
    if not os.path.isfile(path):
        raise ExportError(f"--state-dict {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds
        raise ExportError(f"--state-dict {path}: torch.load failed: {e}") from None
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, dict):
        for k in ("state_dict", "model_state_dict"):
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
        bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
        if bad:
            raise ExportError(f"--state-dict {path}: entry {bad[0]!r} is not a tensor; "
                              f"expected a state_dict")
        return collections.OrderedDict(obj)
    raise ExportError(f"--state-dict {path}: holds a {type(obj).__name__}, not a state_dict "
                      f"or an nn.Module")


def load_strict(model, sd, what):
    exp = model.state_dict()
    missing = [k for k in exp if k not in sd]
    extra = [k for k in sd if k not in exp]
    if missing or extra:
        raise ExportError(f"{what}: the state_dict does not match the architecture: "
                          + "; ".join(x for x in (
                              f"missing {', '.join(missing)}" if missing else "",
                              f"unexpected {', '.join(extra)}" if extra else "") if x)
                          + f" (the architecture has {', '.join(exp)})")
    for k, v in exp.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ExportError(f"{what}: {k} has shape {list(sd[k].shape)}, the architecture "
                              f"needs {list(v.shape)}")
    model.load_state_dict(sd, strict=True)
    return model


def from_arch(torch, spec, sd_path):
    dims, hidden, out = parse_arch(spec)
    named, plain = arch_models(torch, dims, hidden, out)
    if sd_path is None:
        raise ExportError("--arch needs --state-dict (the trained weights)")
    sd = load_state(torch, sd_path)
    if isinstance(sd, torch.nn.Module):
        sd = sd.state_dict()
    model = plain if set(sd) == set(plain.state_dict()) else named
    return load_strict(model, sd, f"--arch {spec}"), [dims[0]]


def import_function(ref):
    if ":" not in ref:
        raise ExportError(f"--module {ref!r}: expected FILE.py:FUNC or package.module:FUNC")
    mod_ref, func = ref.rsplit(":", 1)
    try:
        if mod_ref.endswith(".py") or os.sep in mod_ref:
            if not os.path.isfile(mod_ref):
                raise ExportError(f"--module {ref!r}: no such file {mod_ref}")
            spec = importlib.util.spec_from_file_location("hf_export_user_module", mod_ref)
            mod = importlib.util.module_from_spec(spec)
            sys.path.insert(0, os.path.dirname(os.path.abspath(mod_ref)))
            spec.loader.exec_module(mod)
        else:
            sys.path.insert(0, os.getcwd())
            mod = importlib.import_module(mod_ref)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"--module {ref!r}: importing {mod_ref} failed: "
                          f"{type(e).__name__}: {e}") from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ExportError(f"--module {ref!r}: {mod_ref} has no function {func!r}")
    return fn


def from_module(torch, ref, sd_path):
    fn = import_function(ref)
    try:
        model = fn()
    except Exception as e:
        raise ExportError(f"--module {ref!r}: {ref}() raised {type(e).__name__}: {e}") from None
    if not isinstance(model, torch.nn.Sequential):
        raise ExportError(f"--module {ref!r}: returned a {type(model).__name__}, not an "
                          f"nn.Sequential")
    if sd_path is not None:
        sd = load_state(torch, sd_path)
        if isinstance(sd, torch.nn.Module):
            sd = sd.state_dict()
        load_strict(model, sd, f"--module {ref}")
    else:
        print(f"export: no --state-dict: exporting the weights {ref}() returned",
              file=sys.stderr)
    return model, None


def first_in_features(torch, model):
    for _, m in hf_model._walk(model, ""):
        if isinstance(m, torch.nn.Linear):
            return m.in_features
        if not isinstance(m, (torch.nn.Dropout, torch.nn.Identity)):
            break
    return None


def parse_shape(s):
    try:
        dims = [int(d) for d in s.split(",")]
    except ValueError:
        raise ExportError(f"--input-shape {s!r}: expected comma-separated dims (784 or "
                          f"1,28,28)") from None
    if not dims or any(d <= 0 for d in dims):
        raise ExportError(f"--input-shape {s!r}: dims must be positive")
    return dims


def verify(torch, model, path, dtype, in_shape):
    """Reads path back, checks the graph and compares the evaluator with the torch model."""
    st = hf_model.read_safetensors(path)
    ev = hf_model.torch_module(st)
    g = torch.Generator().manual_seed(1)
    x = torch.rand([7] + list(in_shape), generator=g)
    with torch.inference_mode():
        want = model(x)
        got = ev(x)
    diff = float((want - got).abs().max())
    tol = 0.0 if dtype == "F32" else 5e-2 * max(1.0, float(want.abs().max()))
    if not diff <= tol:
        raise ExportError(f"{path}: the exported graph differs from the torch model: max "
                          f"|diff| {diff:g} (allowed {tol:g})")
    return st, diff


def run(a):
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if a.arch:
        model, in_shape = from_arch(torch, a.arch, a.state_dict)
    else:
        model, in_shape = from_module(torch, a.module, a.state_dict)
    model = model.eval().float()
    if a.input_shape:
        in_shape = parse_shape(a.input_shape)
    elif in_shape is None:
        n = first_in_features(torch, model)
        if n is None:
            raise ExportError("the model does not start with a Linear layer: give "
                              "--input-shape (the per-sample dims, e.g. 1,28,28)")
        in_shape = [n]
    try:
        graph = hf_model.graph_from_sequential(model, in_shape, a.input_name, a.output_name)
        hf_model.check_graph(graph, model.state_dict())
    except (hf_model.UnsupportedModule, hf_model.FormatError) as e:
        raise ExportError(str(e)) from None
    meta = {hf_model.GRAPH_KEY: hf_model.graph_json(graph),
            "hashflop.source": a.source or (f"exported by runtime/infer/tools/export.py from "
                                            f"{a.arch or a.module} (torch {torch.__version__})")}
    for kv in a.metadata:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise ExportError(f"--metadata {kv!r}: expected KEY=VALUE")
        if k == hf_model.GRAPH_KEY:
            raise ExportError(f"--metadata: {k} is written by the exporter")
        meta[k] = v
    # Only the tensors the graph uses, in state_dict order.
    used = set()
    for op in graph["ops"]:
        used.update(op[f] for f in ("weight", "bias") if f in op)
    tensors = collections.OrderedDict((k, v) for k, v in model.state_dict().items() if k in used)
    out = a.output
    if os.path.isdir(out) or out.endswith(os.sep):
        out = os.path.join(out, "model.safetensors")
    try:
        hf_model.write_safetensors(out, tensors, meta, dtype=a.dtype)
    except (hf_model.FormatError, OSError) as e:
        raise ExportError(f"{out}: {e}") from None
    try:
        st, diff = verify(torch, model, out, a.dtype, in_shape)
    except (ExportError, hf_model.FormatError) as e:
        os.unlink(out)
        raise ExportError(f"{e} (the file was removed)") from None
    if a.max_batch_size is not None or a.max_queue_delay_us is not None:
        cfg = {}
        if a.max_batch_size is not None:
            cfg["max_batch_size"] = a.max_batch_size
        if a.max_queue_delay_us is not None:
            cfg["max_queue_delay_us"] = a.max_queue_delay_us
        hf_model.write_atomic(os.path.join(os.path.dirname(os.path.abspath(out)), "config.json"),
                              (json.dumps(cfg, indent=2) + "\n").encode())
    print(f"wrote {out}: {len(st.tensors)} tensors ({st.data_bytes} bytes {a.dtype}), "
          f"{len(graph['ops'])} ops, input {a.input_name!r} {[-1] + in_shape}, output "
          f"{a.output_name!r} {graph['outputs'][0]['shape']}; verified against torch "
          f"(max |diff| {diff:g})")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="export.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a PyTorch MLP (nn.Sequential) to a hashflop model file "
                    "(safetensors + the hashflop.graph layer graph).", epilog=EPILOG)
    ap.add_argument("--version", action="version", version="export.py (hashflop model format: graph version 1)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", metavar="SPEC", help="architecture spec, e.g. "
                     "784-256-128-10:relu:softmax")
    src.add_argument("--module", metavar="FILE.py:FUNC", help="a function returning the "
                     "nn.Sequential")
    ap.add_argument("--state-dict", metavar="PT", help="the weights (torch.save output)")
    ap.add_argument("-o", "--output", required=True, metavar="PATH",
                    help="the model file (NAME/model.safetensors in a model repository; a "
                         "directory gets model.safetensors inside)")
    ap.add_argument("--input-shape", metavar="D1,D2,...", help="per-sample input dims "
                    "(default: the first Linear's in_features)")
    ap.add_argument("--input-name", default="input", help="the model input (default input)")
    ap.add_argument("--output-name", default="probs", help="the model output (default probs)")
    ap.add_argument("--dtype", choices=("F32", "F16"), default="F32",
                    help="weight storage (default F32)")
    ap.add_argument("--source", help="hashflop.source metadata (default: how it was exported)")
    ap.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                    help="extra __metadata__ entry (repeatable)")
    ap.add_argument("--max-batch-size", type=int, metavar="N",
                    help="also write config.json next to the model with this max_batch_size")
    ap.add_argument("--max-queue-delay-us", type=int, metavar="US",
                    help="also write config.json with this max_queue_delay_us")
    a = ap.parse_args(argv)
    for f in ("max_batch_size", "max_queue_delay_us"):
        v = getattr(a, f)
        if v is not None and v < (1 if f == "max_batch_size" else 0):
            ap.error(f"--{f.replace('_', '-')} {v}: out of range")
    try:
        run(a)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"export: {e} (run it with /usr/bin/python3, which has python3-torch)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
