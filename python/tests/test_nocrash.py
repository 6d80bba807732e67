"""Every public function with bad input raises a GorchError subclass and
never crashes the interpreter; a forked child gets ForkError, not a hang.
Each walk runs in a fresh interpreter so that a crash (an abort from Go)
fails the test instead of killing pytest."""

import os
import subprocess
import sys
import textwrap

from conftest import PY

WALK = r'''
import math, os, sys, numpy as np, gorch
from gorch import _lib

bad = [None, 0, -1, 1.5, math.nan, b"x", "", "\x00", "no such thing", [], {}, {"a": 1}, object(), 2**70,
       "/", "s3://", "s3://bucket/../x", "gorch://", "../no/such/dir"]
calls = {
    "load_checkpoint": lambda a: gorch.load_checkpoint(a),
    "load_checkpoint_store": lambda a: gorch.load_checkpoint("gorch://x", store=a),
    "save_checkpoint_sd": lambda a: gorch.save_checkpoint(a, "gorch-nocrash/x.rtch"),
    "save_checkpoint_path": lambda a: gorch.save_checkpoint({"w": np.ones(2)}, a),
    "save_checkpoint_value": lambda a: gorch.save_checkpoint({"w": a}, "gorch-nocrash/x.rtch"),
    "save_checkpoint_opt": lambda a: gorch.save_checkpoint({"w": np.ones(2)}, "gorch-nocrash/x.rtch", optimizer=a),
    "save_checkpoint_train": lambda a: gorch.save_checkpoint({"w": np.ones(2)}, "gorch-nocrash/x.rtch", train_state=a),
    "save_checkpoint_config": lambda a: gorch.save_checkpoint({"w": np.ones(2)}, "gorch-nocrash/x.rtch", model_config=a),
    "Store": lambda a: gorch.Store(a),
    "Store_s3": lambda a: gorch.Store("s3://b", endpoint=a, access_key="k", secret_key="s"),
    "Store_run": lambda a: STORE.run(a),
    "Run_metrics": lambda a: RUN.metrics(a),
    "Run_checkpoint": lambda a: RUN.checkpoint(a),
    "Client": lambda a: gorch.Client(a, timeout=0.5),
    "Client_creds": lambda a: gorch.Client("nats://127.0.0.1:1", creds=a),
    "Client_timeout": lambda a: gorch.Client("nats://127.0.0.1:1", timeout=a),
}
number = lambda a: isinstance(a, (int, float)) and not isinstance(a, bool)
# Inputs that are valid for a call (it must not raise on them).
VALID = {
    "Run_metrics": lambda a: a is None or a == [],
    "Run_checkpoint": lambda a: a is None,
    "Store": lambda a: a == "/",
    "save_checkpoint_sd": lambda a: a in ({}, {"a": 1}),
    "save_checkpoint_path": lambda a: a == "no such thing",  # a new file in the working directory
    "save_checkpoint_value": lambda a: number(a) or a == [],
    "save_checkpoint_opt": lambda a: a is None,
    "save_checkpoint_train": lambda a: a in (None, {}),
    "save_checkpoint_config": lambda a: a in (None, {}, {"a": 1}),
}
os.makedirs("gorch-nocrash/runs/r1", exist_ok=True)
with open("gorch-nocrash/runs/r1/run.json", "w") as f:
    f.write('{"id": "r1", "status": "failed", "created": "2026-01-01T00:00:00Z", "seed": 0, "attempt": 1}')
STORE = gorch.Store("gorch-nocrash")
RUN = STORE.run("r1")
n = 0
for name, f in calls.items():
    for a in bad:
        try:
            f(a)
        except gorch.GorchError as e:
            assert str(e) and "\n" not in str(e), (name, a, e)
            n += 1
            continue
        except Exception as e:
            print(f"FAIL {name}({a!r}) raised {type(e).__name__}: {e}")
            sys.exit(1)
        if VALID.get(name, lambda a: False)(a):
            continue
        print(f"FAIL {name}({a!r}) did not raise")
        sys.exit(1)
# Raw ABI: stale and wrong handles, NULL outputs.
import ctypes
stale = gorch.Store("gorch-nocrash")
stale_h = stale._h
stale.close()
for h in (0, 2**63, 10**12, stale_h):
    for fn in ("gorch_store_runs", "gorch_client_status"):
        try:
            _lib.call_json(fn, ctypes.c_uint64(h), *([None] if fn == "gorch_client_status" else []))
        except gorch.ArgumentError:
            n += 1
        else:
            print(f"FAIL {fn}({h}) did not raise"); sys.exit(1)
try:  # a store handle where a client is expected
    _lib.call_json("gorch_client_status", ctypes.c_uint64(STORE._h), None)
except gorch.ArgumentError:
    n += 1
try:
    _lib.call("gorch_store_runs", ctypes.c_uint64(STORE._h), None)
except gorch.ArgumentError:
    n += 1
try:
    _lib.call("gorch_close", ctypes.c_uint64(2**40))
except gorch.ArgumentError:
    n += 1
print("ok", n)
'''


def test_no_crash_walk(tmp_path):
    p = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(PY)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("ok"), p.stdout


FORK = r'''
import os, sys, gorch
from conftest import REPO
path = str(REPO / "pkg/experiment/testdata/checkpoint_v1_small.rtch")
ck = gorch.load_checkpoint(path)            # loads the library and starts the Go runtime
pid = os.fork()
if pid == 0:
    try:
        gorch.load_checkpoint(path)
    except gorch.ForkError as e:
        os._exit(0 if "spawn" in str(e) else 2)
    os._exit(3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
# The parent still works, and spawn-started children do.
import multiprocessing as mp
with mp.get_context("spawn").Pool(1) as pool:
    assert pool.apply(gorch.version)["abi"] == 2
assert gorch.load_checkpoint(path).params["0.bias"].tolist() == [0.125, 3.0]
print("ok")
'''


def test_fork_child_gets_fork_error():
    p = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120,
                       cwd=PY / "tests", env={**os.environ, "PYTHONPATH": str(PY)})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr


def test_no_handles_leak():
    code = textwrap.dedent(r'''
        import gc, gorch
        from gorch import _lib
        from conftest import REPO
        for _ in range(50):
            ck = gorch.load_checkpoint(REPO / "pkg/experiment/testdata/checkpoint_v1_small.rtch")
            w = ck.params["0.weight"]
            del ck, w
        gc.collect()
        assert _lib.live_handles() == 0, _lib.live_handles()
        print("ok")
    ''')
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=PY / "tests", env={**os.environ, "PYTHONPATH": str(PY)})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr
