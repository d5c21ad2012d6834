#!/usr/bin/python3
"""train_fashion_mnist: trains the MLP 784-256-128-10 (ReLU) on Fashion-MNIST and exports the
model repository entry runtime/infer/models/fashion-mnist/ plus the expected outputs
tests/data/fashion-mnist/expected.safetensors.

Invariants: deterministic (fixed seeds, a seeded shuffle, torch.set_num_threads(2),
deterministic algorithms): the same torch build on the same CPU gives the same bytes. Input is
pixel / 255 flattened row-major, nothing else. Training uses CrossEntropy on the logits; the
exported graph ends in a softmax ("probs"). The expected probabilities are torch's on the
10,000 test images in file order (float32, inference_mode), and the script checks that the
exported file, read back and run by hf_model's evaluator, reproduces them bit for bit.
Threading: single process; torch uses 2 threads.

Usage: /usr/bin/python3 runtime/infer/tools/train_fashion_mnist.py [--epochs N] [--out-model DIR]
       [--out-expected FILE] [--data DIR]   (run it with `nice -n 10` on a shared machine)
"""

import argparse
import collections
import gzip
import json
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
DATA = "/usr/share/datasets/fashion-mnist"
SEED = 12


def read_idx(path, magic, ndim):
    """An idx file (gzipped) as a uint8 numpy array; checks the magic and the sizes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: too short for an idx header")
    m, = struct.unpack(">I", raw[:4])
    if m != magic:
        raise ValueError(f"{path}: magic {m:#x}, expected {magic:#x}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    n = int(np.prod(dims))
    body = raw[4 + 4 * ndim:]
    if len(body) != n:
        raise ValueError(f"{path}: {len(body)} data bytes, dims {dims} need {n}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load(data, split):
    x = read_idx(os.path.join(data, f"{split}-images-idx3-ubyte.gz"), 0x803, 3)
    y = read_idx(os.path.join(data, f"{split}-labels-idx1-ubyte.gz"), 0x801, 1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{split}: {x.shape[0]} images but {y.shape[0]} labels")
    return (x.reshape(x.shape[0], 784).astype(np.float32) / np.float32(255.0)), y.astype(np.int64)


def build(torch):
    nn = torch.nn
    return nn.Sequential(collections.OrderedDict([
        ("fc1", nn.Linear(784, 256)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(256, 128)), ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(128, 10)),
    ]))


def main():
    ap = argparse.ArgumentParser(description="Train the Fashion-MNIST MLP 784-256-128-10 and "
                                 "export it with its expected outputs.")
    ap.add_argument("--version", action="version", version="train_fashion_mnist.py (hashflop model format: graph version 1)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--data", default=DATA, help=f"idx .gz directory (default {DATA})")
    ap.add_argument("--out-model", default=os.path.join(ROOT, "runtime/infer/models/fashion-mnist"))
    ap.add_argument("--out-expected",
                    default=os.path.join(ROOT, "tests/data/fashion-mnist/expected.safetensors"))
    a = ap.parse_args()

    import torch
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xte_t = torch.from_numpy(xte)

    model = build(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    lossf = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    bs = 128
    t0 = time.monotonic()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(xtr_t.shape[0], generator=gen)
        total = 0.0
        for i in range(0, perm.shape[0], bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xtr_t[idx]), ytr_t[idx])
            loss.backward()
            opt.step()
            total += float(loss) * idx.shape[0]
        sched.step()
        model.eval()
        with torch.inference_mode():
            acc = float((model(xte_t).argmax(1).numpy() == yte).mean())
        print(f"epoch {ep + 1}/{a.epochs}: train loss {total / perm.shape[0]:.4f}, "
              f"test accuracy {acc:.4f} ({time.monotonic() - t0:.1f} s)", flush=True)
    train_s = time.monotonic() - t0

    # The served model: the trained layers and a softmax (no parameters: same state_dict).
    served = torch.nn.Sequential(collections.OrderedDict(
        list(model.named_children()) + [("softmax", torch.nn.Softmax(dim=-1))])).eval()
    with torch.inference_mode():
        probs = served(xte_t).contiguous()
    acc = float((probs.argmax(1).numpy() == yte).mean())
    acc_s = f"{acc:.4f}"

    graph = hf_model.graph_from_sequential(served, [784], "input", "probs")
    meta = {
        hf_model.GRAPH_KEY: hf_model.graph_json(graph),
        "hashflop.source": f"runtime/infer/tools/train_fashion_mnist.py (torch {torch.__version__}, "
                           f"seed {SEED}, {a.epochs} epochs, Adam lr 1e-3 cosine, batch {bs})",
        "hashflop.dataset": "Fashion-MNIST (zalandoresearch), input pixel/255 row-major [-1, 784]; "
                            "labels 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, "
                            "5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot",
        "hashflop.accuracy": acc_s,
    }
    model_path = os.path.join(a.out_model, "model.safetensors")
    hf_model.write_safetensors(model_path, served.state_dict(), meta, dtype="F32")
    cfg = json.dumps({"max_batch_size": 64, "max_queue_delay_us": 500}, indent=2) + "\n"
    hf_model.write_atomic(os.path.join(a.out_model, "config.json"), cfg.encode())
    hf_model.write_safetensors(
        a.out_expected,
        {"probs": probs.numpy(), "labels": yte.astype(np.float32)},
        {"torch_accuracy": acc_s, "torch_version": torch.__version__,
         "model": "runtime/infer/models/fashion-mnist/model.safetensors",
         "images": "t10k-images-idx3-ubyte.gz (10000, file order), input pixel/255"})

    # Read both back strictly and run the file through the evaluator: bit for bit.
    st = hf_model.read_safetensors(model_path)
    ex = hf_model.read_safetensors(a.out_expected)
    for k, v in served.state_dict().items():
        if not np.array_equal(st.tensors[k], v.numpy()):
            raise SystemExit(f"{model_path}: tensor {k} does not round-trip")
    with torch.inference_mode():
        again = hf_model.torch_module(st)(xte_t).numpy()
    if not np.array_equal(again, ex.tensors["probs"]):
        raise SystemExit(f"the evaluator differs from torch: max |diff| "
                         f"{np.abs(again - ex.tensors['probs']).max()}")
    if not np.array_equal(ex.tensors["labels"], yte.astype(np.float32)):
        raise SystemExit("labels do not round-trip")
    print(f"trained in {train_s:.1f} s; test accuracy {acc_s}; wrote {model_path} "
          f"({os.path.getsize(model_path)} bytes) and {a.out_expected} "
          f"({os.path.getsize(a.out_expected)} bytes); the evaluator reproduces the "
          f"probabilities exactly")


if __name__ == "__main__":
    main()
