#!/usr/bin/env python3
"""PyTorch side of gorch's benchmark harness (bench/cmd/gorchbench).

    python bench/torch_bench.py --serve   # one JSON request per stdin line, one JSON reply per line
    python bench/torch_bench.py --check   # import torch, run torch.mm, print the version and config

Requests (gorchbench sends them; thread counts via torch.set_num_threads):
    {"fig": "meta"}
    {"fig": "matmul", "n": 1024, "threads": 1, "min_time": 0.5, "min_iters": 3}   -> GFLOP/s
    {"fig": "mlp", "batch": 64, "threads": 1, ...}   -> training steps/s (784-256-10, Adam)
    {"fig": "cnn", "batch": 64, "threads": 1, ...}   -> training steps/s (LeNet-style, Adam)
    {"fig": "mlp", "batch": 64, "backend": "inductor", ...}   -> the same step with the model
        under torch.compile (inductor, CPU); "eager" (the default) is plain PyTorch
Replies: {"value": x} or {"error": "..."}.

Each figure's state (tensors, model, optimizer) is built once and reused across
the warm-up and the repetitions, as on the gorch side.
"""
import json
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def lenet():
    # Same as gorch's nn.LeNet.
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )


_state = {}


def prepare(req):
    fig = req["fig"]
    backend = req.get("backend", "eager")
    key = (fig, req.get("n"), req.get("batch"), backend)
    if key in _state:
        return _state[key]
    g = torch.Generator().manual_seed(1)
    if fig == "matmul":
        n = int(req["n"])
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)

        def step():
            torch.mm(a, b)

        st = (step, 2.0 * n * n * n * 1e-9)
    elif fig in ("mlp", "cnn"):
        batch = int(req["batch"])
        torch.manual_seed(1)
        model = mlp() if fig == "mlp" else lenet()
        shape = (batch, 784) if fig == "mlp" else (batch, 1, 28, 28)
        x = torch.randn(*shape, generator=g)
        y = torch.arange(batch) % 10
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        # torch.compile compiles forward and backward (AOTAutograd) on the
        # first call; the optimizer step stays eager, as in the eager figure.
        fwd = model if backend == "eager" else torch.compile(model, backend=backend)

        def step():
            loss = F.cross_entropy(fwd(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        st = (step, 1.0)
    else:
        raise ValueError(f"unknown figure {fig!r}")
    _state[key] = st
    return st


def measure(req):
    torch.set_num_threads(int(req.get("threads", 1)))
    step, work = prepare(req)
    min_time = float(req.get("min_time", 0.5))
    min_iters = int(req.get("min_iters", 3))
    n = 0
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if n >= min_iters and el >= min_time:
            return n / el * work


def meta():
    cfg = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    cap = re.search(r"CPU capability usage: (\S+)", cfg)
    return {
        "version": torch.__version__,
        "python": sys.version.split()[0],
        "max_threads": torch.get_num_threads(),
        "blas": blas.group(1) if blas else "",
        "cpu_capability": cap.group(1) if cap else "",
        "cuda_available": torch.cuda.is_available(),
    }


def serve():
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            out = meta() if req.get("fig") == "meta" else {"value": measure(req)}
        except Exception as e:  # reported to the harness, which stops
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def check():
    a = torch.randn(64, 64)
    c = torch.mm(a, a)
    assert c.shape == (64, 64)
    m = meta()
    print("torch", m["version"], "ok; BLAS", m["blas"], "; CPU capability", m["cpu_capability"])


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        serve()
    elif "--check" in sys.argv[1:]:
        check()
    else:
        print(__doc__)
        sys.exit(2)
