"""hf_model: the hashflop model format on the Python side: a safetensors writer and a strict
reader, the "hashflop.graph" JSON built from a torch nn.Sequential, a graph checker, and a torch
evaluator of a graph (tests of the tools, the PyTorch benchmark).

Invariants: the writer produces exactly what runtime/infer/hf_safetensors.c accepts (8-byte
little-endian header length N, a JSON object padded with spaces so 8 + N is a multiple of 8 and
every tensor's data is aligned, tensors in the given order with contiguous data_offsets from 0,
a __metadata__ map of strings); the reader refuses what the C reader refuses (same rules, see
runtime/infer/hf_safetensors.h) and raises FormatError naming the tensor or field; the graph
JSON follows runtime/infer/hf_graph.h and check_graph() applies its rules. Files are written
to a temporary name and renamed, so a reader never sees half a file.
Threading: no shared state; functions are safe to call from any thread. numpy is required,
torch only by the functions that build or run torch modules (imported lazily).
"""

import json
import os
import struct
import tempfile

import numpy as np

GRAPH_KEY = "hashflop.graph"
MAX_HEADER = 100 * 1000 * 1000
MAX_TENSORS = 65536
MAX_DIMS = 8
MAX_NAME_TENSOR = 255
MAX_NAME_VALUE = 63
MAX_GRAPH_JSON = 1 << 20
MAX_OPS = 1024
MAX_VALUES = 2048
MAX_IO = 16
MAX_PER_SAMPLE = 1 << 24

# Every dtype the safetensors format knows, with its size in bytes; the engine accepts only
# F32 and F16 (ENGINE_DTYPES).
ST_DTYPE_SIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
ENGINE_DTYPES = ("F32", "F16")
_NP_DTYPE = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8", "U64": "<u8", "F64": "<f8",
}

OPS = ("linear", "relu", "gelu", "tanh", "sigmoid", "softmax", "layernorm", "add", "reshape",
       "flatten")


class FormatError(ValueError):
    """A file or graph that breaks the format; the message names what is wrong."""


class UnsupportedModule(ValueError):
    """A torch module the graph cannot express; the message names the module."""


# ---------------------------------------------------------------- safetensors writer ----

def _as_numpy(name, t):
    if hasattr(t, "detach"):  # a torch tensor
        t = t.detach().cpu().contiguous().numpy()
    a = np.asarray(t)
    if a.dtype not in (np.float32, np.float16):
        raise FormatError(f"tensor {name!r}: dtype {a.dtype} is not F32 or F16")
    return a


def _check_tensor_name(name):
    if not isinstance(name, str):
        raise FormatError(f"tensor name {name!r} is not a string")
    b = name.encode("utf-8")
    if not 1 <= len(b) <= MAX_NAME_TENSOR:
        raise FormatError(f"tensor {name!r}: name must be 1..{MAX_NAME_TENSOR} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise FormatError(f"tensor {name!r}: name has a control character")
    if name == "__metadata__":
        raise FormatError("a tensor may not be named __metadata__")


def encode_safetensors(tensors, metadata=None, dtype=None):
    """The bytes of a safetensors file. tensors: an ordered mapping (dict, state_dict) of name
    -> numpy array or torch tensor (F32/F16); dtype "F32"/"F16" converts them all; metadata: a
    dict of str -> str (or None)."""
    if dtype not in (None, "F32", "F16"):
        raise FormatError(f"dtype {dtype!r}: only F32 and F16 can be written")
    if len(tensors) > MAX_TENSORS:
        raise FormatError(f"{len(tensors)} tensors: at most {MAX_TENSORS}")
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise FormatError(f"__metadata__[{k!r}]: keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, t in tensors.items():
        _check_tensor_name(name)
        a = _as_numpy(name, t)
        if dtype is not None:
            a = a.astype(np.float32 if dtype == "F32" else np.float16)
        if a.ndim > MAX_DIMS:
            raise FormatError(f"tensor {name!r}: {a.ndim} dims, at most {MAX_DIMS}")
        st_dtype = "F32" if a.dtype == np.float32 else "F16"
        data = np.ascontiguousarray(a, dtype=_NP_DTYPE[st_dtype]).tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % 8)
    if len(text) > MAX_HEADER:
        raise FormatError(f"header of {len(text)} bytes: at most {MAX_HEADER}")
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_atomic(path, data):
    """Writes data to path through a temporary file in the same directory and a rename."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_safetensors(path, tensors, metadata=None, dtype=None):
    """Writes a safetensors file (see encode_safetensors) atomically."""
    write_atomic(path, encode_safetensors(tensors, metadata, dtype))


# ---------------------------------------------------------------- safetensors reader ----

class SafeTensors:
    """A parsed file: tensors (dict name -> read-only numpy array, in data-offset order),
    dtypes (name -> "F32"...), metadata (dict str -> str), header_len, data_bytes."""

    def __init__(self, tensors, dtypes, metadata, header_len, data_bytes):
        self.tensors = tensors
        self.dtypes = dtypes
        self.metadata = metadata
        self.header_len = header_len
        self.data_bytes = data_bytes

    def graph(self):
        """The graph JSON object of __metadata__ "hashflop.graph" (FormatError if absent)."""
        if GRAPH_KEY not in self.metadata:
            raise FormatError(f"no {GRAPH_KEY!r} in __metadata__")
        return parse_graph_json(self.metadata[GRAPH_KEY])


def _no_dups(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(c):
    raise FormatError(f"{c} is not JSON")


def _strict_json(text, what):
    try:
        return json.JSONDecoder(object_pairs_hook=_no_dups,
                                parse_constant=_no_constants).raw_decode(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{what}: not JSON: {e}") from None


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_safetensors(buf, engine=True, max_header=MAX_HEADER, max_tensors=MAX_TENSORS):
    """Validates and parses the bytes of a safetensors file. engine=True also applies the
    engine's rules (F32/F16 only). Raises FormatError naming the problem."""
    buf = memoryview(buf)
    if len(buf) < 8:
        raise FormatError(f"file of {len(buf)} bytes: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > max_header:
        raise FormatError(f"header length {n} is over the cap of {max_header}")
    if n > len(buf) - 8:
        raise FormatError(f"header length {n} runs past the end of the file ({len(buf)} bytes)")
    raw = bytes(buf[8:8 + n])
    if n < 2 or raw[:1] != b"{":
        raise FormatError("header does not start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"header is not UTF-8: {e}") from None
    header, end = _strict_json(text, "header")
    if text[end:].strip(" "):
        raise FormatError("header has bytes after the JSON object other than space padding")
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise FormatError("__metadata__ is not an object")
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise FormatError(f"__metadata__[{k!r}] is not a string")
    if len(header) > max_tensors:
        raise FormatError(f"{len(header)} tensors: over the cap of {max_tensors}")
    data = buf[8 + n:]
    entries = []
    for name, e in header.items():
        where = f"tensor {name!r}"
        try:
            _check_tensor_name(name)
        except FormatError as err:
            raise FormatError(str(err)) from None
        if not isinstance(e, dict):
            raise FormatError(f"{where}: entry is not an object")
        extra = set(e) - {"dtype", "shape", "data_offsets"}
        if extra:
            raise FormatError(f"{where}: unknown field {sorted(extra)[0]!r}")
        for f in ("dtype", "shape", "data_offsets"):
            if f not in e:
                raise FormatError(f"{where}: missing {f!r}")
        dt = e["dtype"]
        if not isinstance(dt, str) or dt not in ST_DTYPE_SIZE:
            raise FormatError(f"{where}: unknown dtype {dt!r}")
        if engine and dt not in ENGINE_DTYPES:
            raise FormatError(f"{where}: dtype {dt} is not supported (only F32 and F16)")
        shape = e["shape"]
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise FormatError(f"{where}: shape must be a list of non-negative integers")
        if len(shape) > MAX_DIMS:
            raise FormatError(f"{where}: {len(shape)} dims, at most {MAX_DIMS}")
        offs = e["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_uint(o) for o in offs)
                or offs[0] > offs[1]):
            raise FormatError(f"{where}: data_offsets must be [begin, end] with begin <= end")
        count = 1
        for d in shape:
            count *= d
        need = count * ST_DTYPE_SIZE[dt]
        if offs[1] - offs[0] != need:
            raise FormatError(f"{where}: data_offsets [{offs[0]}, {offs[1]}] span "
                              f"{offs[1] - offs[0]} bytes, shape {shape} of {dt} needs {need}")
        entries.append((offs[0], offs[1], name, dt, shape))
    entries.sort()
    pos = 0
    for b, e, name, _, _ in entries:
        if b != pos:
            what = "a gap" if b > pos else "an overlap"
            raise FormatError(f"tensor {name!r}: data_offsets start at {b}, expected {pos} "
                              f"({what} in the data section)")
        pos = e
    if pos != len(data):
        raise FormatError(f"the tensors cover {pos} bytes, the data section has {len(data)}")
    tensors, dtypes = {}, {}
    for b, e, name, dt, shape in entries:
        if dt in _NP_DTYPE:
            a = np.frombuffer(data[b:e], dtype=_NP_DTYPE[dt]).reshape(shape)
        else:  # FP8: raw bytes
            a = np.frombuffer(data[b:e], dtype="u1").reshape(shape)
        a.flags.writeable = False
        tensors[name] = a
        dtypes[name] = dt
    return SafeTensors(tensors, dtypes, metadata, n, len(data))


def read_safetensors(path, engine=True):
    """Reads and validates path; errors are prefixed with the file name."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise FormatError(f"{path}: {e.strerror}") from None
    try:
        return parse_safetensors(buf, engine=engine)
    except FormatError as e:
        raise FormatError(f"{os.path.basename(path)}: {e}") from None


# ---------------------------------------------------------------- graph from nn.Sequential ----

def _walk(module, prefix):
    """Leaf modules of nested nn.Sequentials in execution order, with state_dict prefixes."""
    import torch.nn as nn
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _walk(child, f"{prefix}{name}.")
    else:
        yield prefix[:-1], module


def graph_from_sequential(model, input_shape, input_name="input", output_name="probs"):
    """The graph JSON object of a torch nn.Sequential (nested Sequentials allowed) of Linear,
    ReLU, GELU, Tanh, Sigmoid, Softmax(dim=-1), LayerNorm (over the last dim), Flatten
    (start_dim=1, end_dim=-1); Dropout and Identity are left out (no-ops at inference).
    input_shape: the per-sample dims ([784]). Weights are named by state_dict keys. Raises
    UnsupportedModule naming the module and why."""
    import torch.nn as nn
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModule(f"the model is a {type(model).__name__}, not an nn.Sequential")
    shape = [-1] + [int(d) for d in input_shape]
    if any(d <= 0 for d in shape[1:]) or not 1 <= len(input_shape) < MAX_DIMS:
        raise UnsupportedModule(f"input shape {list(input_shape)}: per-sample dims must be "
                                f"1..{MAX_DIMS - 1} positive integers")
    ops = []
    cur = input_name
    used = {input_name, output_name}

    def fresh(path):
        base = (path.replace(".", "_") or "v")[:MAX_NAME_VALUE - 6]
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    for path, m in _walk(model, ""):
        where = f"module {path!r} ({type(m).__name__})"
        last = shape[-1]
        op = None
        if isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(m, nn.Linear):
            if last != m.in_features:
                raise UnsupportedModule(f"{where}: in_features {m.in_features} but its input "
                                        f"has {last} features (shape {shape})")
            op = {"op": "linear", "weight": f"{path}.weight"}
            if m.bias is not None:
                op["bias"] = f"{path}.bias"
            shape = shape[:-1] + [m.out_features]
        elif type(m) in (nn.ReLU, nn.Tanh, nn.Sigmoid):
            op = {"op": {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}[type(m)]}
        elif type(m) is nn.GELU:
            approx = getattr(m, "approximate", "none")
            if approx not in ("none", "tanh"):
                raise UnsupportedModule(f"{where}: approximate={approx!r}")
            op = {"op": "gelu", "approximate": approx}
        elif type(m) is nn.Softmax:
            if m.dim is None or m.dim not in (-1, len(shape) - 1):
                raise UnsupportedModule(f"{where}: dim={m.dim}; only the last dim (dim=-1) "
                                        f"is supported")
            op = {"op": "softmax", "axis": -1}
        elif type(m) is nn.LayerNorm:
            ns = list(m.normalized_shape)
            if ns != [last]:
                raise UnsupportedModule(f"{where}: normalized_shape {ns}; only the last dim "
                                        f"([{last}]) is supported")
            op = {"op": "layernorm", "eps": float(m.eps)}
            if m.weight is not None:
                op["weight"] = f"{path}.weight"
            if m.bias is not None:
                op["bias"] = f"{path}.bias"
        elif type(m) is nn.Flatten:
            end = m.end_dim if m.end_dim >= 0 else len(shape) + m.end_dim
            if m.start_dim != 1 or end != len(shape) - 1:
                raise UnsupportedModule(f"{where}: start_dim={m.start_dim}, end_dim="
                                        f"{m.end_dim}; only Flatten(1, -1) is supported")
            n = 1
            for d in shape[1:]:
                n *= d
            shape = [-1, n]
            op = {"op": "flatten"}
        else:
            raise UnsupportedModule(f"{where}: not supported (supported: Linear, ReLU, GELU, "
                                    f"Tanh, Sigmoid, Softmax, LayerNorm, Flatten, Dropout, "
                                    f"Identity, nested Sequential)")
        out = fresh(path)
        ops.append({"op": op.pop("op"), "inputs": [cur], "outputs": [out], **op})
        cur = out
    if not ops:
        raise UnsupportedModule("the model has no layers")
    if len(ops) > MAX_OPS:
        raise UnsupportedModule(f"{len(ops)} ops: at most {MAX_OPS}")
    ops[-1]["outputs"] = [output_name]
    return {
        "version": 1,
        "inputs": [{"name": input_name, "datatype": "FP32",
                    "shape": [-1] + [int(d) for d in input_shape]}],
        "outputs": [{"name": output_name, "datatype": "FP32", "shape": shape}],
        "ops": ops,
    }


def graph_json(graph):
    """The graph as the compact string stored in __metadata__."""
    return json.dumps(graph, separators=(",", ":"))


# ---------------------------------------------------------------- graph checker ----

_OP_KEYS = {
    "linear": ({"weight"}, {"bias"}),
    "relu": (set(), set()), "tanh": (set(), set()), "sigmoid": (set(), set()),
    "gelu": (set(), {"approximate"}),
    "softmax": (set(), {"axis"}),
    "layernorm": (set(), {"weight", "bias", "eps"}),
    "add": (set(), set()),
    "reshape": ({"shape"}, set()),
    "flatten": (set(), set()),
}


def parse_graph_json(text):
    if not isinstance(text, str):
        raise FormatError(f"{GRAPH_KEY} is not a string")
    if len(text.encode("utf-8")) > MAX_GRAPH_JSON:
        raise FormatError(f"{GRAPH_KEY}: over {MAX_GRAPH_JSON} bytes")
    g, end = _strict_json(text, GRAPH_KEY)
    if text[end:].strip():
        raise FormatError(f"{GRAPH_KEY}: text after the JSON object")
    return g


def _value_name(v, where):
    if (not isinstance(v, str) or not 1 <= len(v.encode("utf-8")) <= MAX_NAME_VALUE
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in v)):
        raise FormatError(f"{where}: value name {v!r} must be 1..{MAX_NAME_VALUE} bytes of "
                          f"text without control characters")
    return v


def _shape(s, where):
    if (not isinstance(s, list) or not 2 <= len(s) <= MAX_DIMS or s[0] != -1
            or not all(_is_uint(d) and d > 0 for d in s[1:])):
        raise FormatError(f"{where}: shape {s} must be [-1, d1, ...] with positive dims "
                          f"(2..{MAX_DIMS} of them)")
    return list(s)


def _prod(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def _tensor_shape(tensors, name, where):
    if not isinstance(name, str) or name not in tensors:
        raise FormatError(f"{where}: tensor {name!r} is not in the file")
    return list(tensors[name].shape)


def _infer_op(i, op, ins, tensors):
    """The inferred output shape of op i given its input shapes."""
    kind = op["op"]
    where = f"ops[{i}] ({kind})"
    x = ins[0]
    if kind == "linear":
        w = _tensor_shape(tensors, op["weight"], where)
        if len(w) != 2 or w[1] != x[-1]:
            raise FormatError(f"{where}: weight {op['weight']!r} has shape {w}, expected "
                              f"[out, {x[-1]}] for {x[-1]} inputs")
        if "bias" in op:
            b = _tensor_shape(tensors, op["bias"], where)
            if b != [w[0]]:
                raise FormatError(f"{where}: bias {op['bias']!r} has shape {b}, expected "
                                  f"[{w[0]}]")
        return x[:-1] + [w[0]]
    if kind == "gelu" and op.get("approximate", "none") not in ("none", "tanh"):
        raise FormatError(f"{where}: approximate must be \"none\" or \"tanh\"")
    if kind == "softmax" and op.get("axis", -1) != -1:
        raise FormatError(f"{where}: axis must be -1")
    if kind == "layernorm":
        for f in ("weight", "bias"):
            if f in op and _tensor_shape(tensors, op[f], where) != [x[-1]]:
                raise FormatError(f"{where}: {f} {op[f]!r} has shape "
                                  f"{_tensor_shape(tensors, op[f], where)}, expected [{x[-1]}]")
        eps = op.get("eps", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise FormatError(f"{where}: eps must be a positive number")
    if kind == "add":
        if ins[1] != x:
            raise FormatError(f"{where}: inputs have shapes {x} and {ins[1]}")
    if kind == "reshape":
        s = _shape(op["shape"], f"{where}: shape")
        if _prod(s[1:]) != _prod(x[1:]):
            raise FormatError(f"{where}: shape {s} has {_prod(s[1:])} elements per sample, "
                              f"the input {_prod(x[1:])}")
        return s
    if kind == "flatten":
        return [-1, _prod(x[1:])]
    return list(x)


def check_graph(graph, tensors):
    """Validates a graph object against tensors (name -> array with .shape) with the rules of
    hf_graph.h; returns {value name: shape}. Raises FormatError naming the op and field."""
    if not isinstance(graph, dict):
        raise FormatError("graph: not an object")
    extra = set(graph) - {"version", "inputs", "outputs", "ops"}
    if extra:
        raise FormatError(f"graph: unknown key {sorted(extra)[0]!r}")
    if graph.get("version") != 1 or isinstance(graph.get("version"), bool):
        raise FormatError(f"graph: version {graph.get('version')!r}, expected 1")
    shapes = {}
    for f in ("inputs", "outputs", "ops"):
        if not isinstance(graph.get(f), list) or not graph[f]:
            raise FormatError(f"graph: {f!r} must be a non-empty list")
    for f in ("inputs", "outputs"):
        if len(graph[f]) > MAX_IO:
            raise FormatError(f"graph: {len(graph[f])} {f}, at most {MAX_IO}")
    if len(graph["ops"]) > MAX_OPS:
        raise FormatError(f"graph: {len(graph['ops'])} ops, at most {MAX_OPS}")
    for j, io in enumerate(graph["inputs"]):
        where = f"inputs[{j}]"
        if not isinstance(io, dict) or set(io) != {"name", "datatype", "shape"}:
            raise FormatError(f"{where}: needs exactly name, datatype, shape")
        name = _value_name(io["name"], where)
        if io["datatype"] != "FP32":
            raise FormatError(f"{where}: datatype {io['datatype']!r}, only FP32")
        if name in shapes:
            raise FormatError(f"{where}: {name!r} defined twice")
        shapes[name] = _shape(io["shape"], where)
    for i, op in enumerate(graph["ops"]):
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in _OP_KEYS:
            raise FormatError(f"ops[{i}]: unknown op {kind!r}")
        where = f"ops[{i}] ({kind})"
        need, opt = _OP_KEYS[kind]
        keys = set(op) - {"op", "inputs", "outputs"}
        if keys - need - opt:
            raise FormatError(f"{where}: unknown key {sorted(keys - need - opt)[0]!r}")
        if need - keys:
            raise FormatError(f"{where}: missing {sorted(need - keys)[0]!r}")
        nin = 2 if kind == "add" else 1
        if not isinstance(op.get("inputs"), list) or len(op["inputs"]) != nin:
            raise FormatError(f"{where}: inputs must list {nin} value(s)")
        if not isinstance(op.get("outputs"), list) or len(op["outputs"]) != 1:
            raise FormatError(f"{where}: outputs must list 1 value")
        ins = []
        for v in op["inputs"]:
            _value_name(v, where)
            if v not in shapes:
                raise FormatError(f"{where}: input {v!r} is not defined before this op")
            ins.append(shapes[v])
        out = _value_name(op["outputs"][0], where)
        if out in shapes:
            raise FormatError(f"{where}: output {out!r} is already defined")
        s = _infer_op(i, op, ins, tensors)
        if _prod(s[1:]) > MAX_PER_SAMPLE:
            raise FormatError(f"{where}: {_prod(s[1:])} elements per sample, at most "
                              f"{MAX_PER_SAMPLE}")
        shapes[out] = s
        if len(shapes) > MAX_VALUES:
            raise FormatError(f"graph: over {MAX_VALUES} values")
    for j, io in enumerate(graph["outputs"]):
        where = f"outputs[{j}]"
        if not isinstance(io, dict) or set(io) != {"name", "datatype", "shape"}:
            raise FormatError(f"{where}: needs exactly name, datatype, shape")
        name = _value_name(io["name"], where)
        if name not in shapes:
            raise FormatError(f"{where}: {name!r} is not a value of the graph")
        if io["datatype"] != "FP32":
            raise FormatError(f"{where}: datatype {io['datatype']!r}, only FP32")
        if _shape(io["shape"], where) != shapes[name]:
            raise FormatError(f"{where}: declared shape {io['shape']} but the graph gives "
                              f"{shapes[name]}")
    return shapes


# ---------------------------------------------------------------- torch evaluator ----

def torch_module(st, graph=None):
    """A torch nn.Module running the graph of st (a SafeTensors; graph: its graph object, by
    default the file's). forward(*inputs) takes the model inputs in graph order (FP32,
    [batch, ...]) and returns the output tensor (one output) or a tuple of them. Weights are
    F32 (F16 tensors are widened, like the C reference)."""
    import torch
    import torch.nn.functional as F

    if graph is None:
        graph = st.graph()
    check_graph(graph, st.tensors)

    def compile_op(op, w):
        """(function of the op's input tensors, input names, output name)."""
        k = op["op"]
        if k == "linear":
            weight, bias = w[op["weight"]], w[op["bias"]] if "bias" in op else None
            fn = lambda x: F.linear(x, weight, bias)  # noqa: E731
        elif k == "gelu":
            approx = op.get("approximate", "none")
            fn = lambda x: F.gelu(x, approximate=approx)  # noqa: E731
        elif k == "softmax":
            fn = lambda x: torch.softmax(x, dim=-1)  # noqa: E731
        elif k == "layernorm":
            lw = w[op["weight"]] if "weight" in op else None
            lb = w[op["bias"]] if "bias" in op else None
            eps = float(op.get("eps", 1e-5))
            fn = lambda x: F.layer_norm(x, (x.shape[-1],), lw, lb, eps)  # noqa: E731
        elif k == "reshape":
            dims = list(op["shape"][1:])
            fn = lambda x: x.reshape([x.shape[0]] + dims)  # noqa: E731
        elif k == "flatten":
            fn = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731
        else:
            fn = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                  "add": torch.add}.get(k)
            if fn is None:  # check_graph refused it already
                raise FormatError(f"unknown op {k!r}")
        return fn, tuple(op["inputs"]), op["outputs"][0]

    class GraphModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.graph = graph
            self.w = {name: torch.from_numpy(np.array(a, dtype=np.float32))
                      for name, a in st.tensors.items()}
            self.steps = [compile_op(op, self.w) for op in graph["ops"]]
            self.in_names = [io["name"] for io in graph["inputs"]]
            self.out_names = [io["name"] for io in graph["outputs"]]

        def forward(self, *inputs):
            if len(inputs) != len(self.in_names):
                raise ValueError(f"{len(inputs)} inputs, the graph has {len(self.in_names)}")
            v = dict(zip(self.in_names, inputs))
            for fn, ins, out in self.steps:
                v[out] = fn(*[v[n] for n in ins])
            outs = tuple(v[n] for n in self.out_names)
            return outs[0] if len(outs) == 1 else outs

    return GraphModule().eval()


def load_torch(path):
    """read_safetensors(path) then torch_module(): the model file as a torch module."""
    return torch_module(read_safetensors(path))
