#!/usr/bin/env python3
"""PyTorch side of gorch's benchmark harness (bench/cmd/gorchbench).

    python bench/torch_bench.py --serve   # one JSON request per stdin line, one JSON reply per line
    python bench/torch_bench.py --check   # import torch, run torch.mm, print the version and config

Requests (gorchbench sends them; thread counts via torch.set_num_threads):
    {"fig": "meta"}
    {"fig": "matmul", "n": 1024, "threads": 1, "min_time": 0.5, "min_iters": 3}   -> GFLOP/s
    {"fig": "mlp", "batch": 64, "threads": 1, ...}   -> training steps/s (784-256-10, Adam)
    {"fig": "cnn", "batch": 64, "threads": 1, ...}   -> training steps/s (LeNet-style, Adam)
    {"fig": "gpt", "batch": 16, "threads": 1, ...}   -> training steps/s (scripts/torch_fixtures.py's
        GPT as gorch's nn.GPT: 2 layers, d_model 64, 4 heads, context 64, vocab 32; Adam)
    {"fig": "mlp", "batch": 64, "backend": "inductor", ...}   -> the same step with the model
        under torch.compile (inductor, CPU); "gorch" is torch.compile(backend="gorch") from
        this checkout's python/ with $GORCH_LIB; "eager" (the default) is plain PyTorch
    {"fig": "crossing", "backend": "gorch", ...}   -> microseconds per call of a compiled
        one-operator graph (relu of one float), for "gorch" and "aot_eager"
Replies: {"value": x, "cpu_value": y} (work per wall-clock second and per CPU
second of this process; for "crossing", microseconds per call and 0) or
{"error": "..."}.

Each figure's state (tensors, model, optimizer) is built once and reused across
the warm-up and the repetitions, as on the gorch side.
"""
import json
import os
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def lenet():
    # Same as gorch's nn.LeNet.
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def gpt():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from torch_fixtures import GPT

    return GPT(32, 64, 2, 64, 4)


def backend_of(name):
    """What torch.compile gets for a variant: the gorch backend from this
    checkout's python/ package, or a backend name."""
    if name != "gorch":
        return name
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import gorch.compile

    return gorch.compile.backend


def compiled(model, backend):
    # Static shapes: each batch size gets its own graph on every backend.
    return model if backend == "eager" else torch.compile(model, backend=backend_of(backend), dynamic=False)


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
    elif fig in ("mlp", "cnn", "gpt"):
        batch = int(req["batch"])
        torch.manual_seed(1)
        model = {"mlp": mlp, "cnn": lenet, "gpt": gpt}[fig]()
        if fig == "gpt":  # token i is i mod 32, its target the next one (as gorchbench's)
            x = (torch.arange(batch * 64) % 32).view(batch, 64)
            y = ((torch.arange(batch * 64) + 1) % 32).view(batch, 64)
        else:
            x = torch.randn(*((batch, 784) if fig == "mlp" else (batch, 1, 28, 28)), generator=g)
            y = torch.arange(batch) % 10
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        # torch.compile compiles forward and backward (AOTAutograd) on the
        # first call; the optimizer step stays eager, as in the eager figure.
        fwd = compiled(model, backend)

        def step():
            out = fwd(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        st = (step, 1.0)
    elif fig == "crossing":
        one = torch.ones(1)
        f = torch.compile(lambda t: torch.relu(t), backend=backend_of(backend), dynamic=False)

        def step():
            f(one)

        st = (step, -1.0)  # reported as microseconds per call
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
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if n >= min_iters and el >= min_time:
            if work < 0:  # microseconds per call
                return el / n * 1e6, 0.0
            cpu = time.process_time() - c0
            return n / el * work, (n / cpu * work if cpu > 0 else 0.0)


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
    # Each figure compiles the same model code again (another backend or
    # batch size); Dynamo's default of 8 entries per code object would
    # silently fall back to eager after that.
    torch._dynamo.config.recompile_limit = 64
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("fig") == "meta":
                out = meta()
            else:
                wall, cpu = measure(req)
                out = {"value": wall, "cpu_value": cpu}
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
