"""Fixtures: the library and gorch binary built from this checkout, real
Fashion-MNIST runs, a real versitygw and a real `gorch up` cluster."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TypeVar

import pytest

PY = Path(__file__).resolve().parents[1]
REPO = PY.parent
FMNIST = Path("/usr/share/datasets/fashion-mnist")
T = TypeVar("T")


def _build(out: Path, pkg: str, *extra: str) -> None:
    subprocess.run(["go", "build", *extra, "-o", str(out), pkg], cwd=REPO, check=True)


# The library: $GORCH_LIB (scripts/test.sh builds it), else built here.
if not os.environ.get("GORCH_LIB"):
    lib = PY / "gorch" / "libgorch.so"
    _build(lib, "./cmd/libgorch", "-buildmode=c-shared")
    os.environ["GORCH_LIB"] = str(lib)
sys.path.insert(0, str(PY))


def eventually(f: Callable[[], Optional[T]], what: str, timeout: float = 120.0, every: float = 0.1) -> T:
    """Returns f()'s first truthy value; fails the test (naming what) if
    none comes within timeout. The one polling helper of these tests."""
    deadline = time.monotonic() + timeout
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def gorch_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gorch CLI: $GORCH_BIN, else built from this checkout."""
    if os.environ.get("GORCH_BIN"):
        return Path(os.environ["GORCH_BIN"])
    out = tmp_path_factory.mktemp("bin") / "gorch"
    _build(out, "./cmd/gorch")
    return out


def run_gorch(gorch_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(gorch_bin), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        pytest.fail(f"gorch {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def run_id(stdout: str) -> str:
    """The run id from gorch train's last line ("run ID: test accuracy ...")."""
    m = re.search(r"^run (\S+): test accuracy ([0-9.]+)%", stdout, re.M)
    assert m, f"no result line in {stdout!r}"
    return m.group(1)


@pytest.fixture(scope="session")
def fmnist() -> Path:
    if not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST is missing in {FMNIST}: apt-get install dataset-fashion-mnist (scripts/setup.sh does)")
    return FMNIST


@pytest.fixture(scope="session")
def trained(gorch_bin: Path, fmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two real Fashion-MNIST runs in one local store: an MLP (one epoch)
    and the LeNet CNN (200 steps)."""
    data = tmp_path_factory.mktemp("records")
    runs = {}
    for model, extra in (("mlp", ["--epochs", "1"]), ("cnn", ["--steps", "200", "--batch-size", "32"])):
        p = run_gorch(gorch_bin, "train", "--data-dir", str(data), "--model", model, "--seed", "3",
                      "--checkpoint-every", "100", *extra)
        runs[model] = run_id(p.stdout)
    return {"data": data, **runs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A background process whose output is collected line by line."""

    def __init__(self, args: List[str], env: Optional[dict] = None) -> None:
        self.lines: List[str] = []
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env={**os.environ, **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real versitygw over a temp directory (scripts/setup.sh builds it)."""
    exe = shutil.which("versitygw") or str(Path.home() / ".cache/gorch/versitygw-v1.8.0/versitygw")
    if not os.path.exists(exe):
        pytest.fail("versitygw not found: GORCH_SETUP_TEST_TOOLS=1 . scripts/setup.sh builds it")
    cfg = {"endpoint": f"127.0.0.1:{free_port()}", "access_key": "gorchtest", "secret_key": "gorchtestsecret"}
    proc = Proc([exe, "--port", cfg["endpoint"], "--quiet", "posix", str(tmp_path_factory.mktemp("s3"))],
                env={"ROOT_ACCESS_KEY": cfg["access_key"], "ROOT_SECRET_KEY": cfg["secret_key"]})

    def listening() -> bool:
        if proc.p.poll() is not None:
            pytest.fail(f"versitygw exited: {proc.output()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", int(cfg["endpoint"].split(":")[1]))) == 0

    eventually(listening, "versitygw to listen")
    yield cfg
    proc.stop()


@pytest.fixture(scope="session")
def cluster(gorch_bin: Path, s3: dict, fmnist: Path) -> Iterator[dict]:
    """A real `gorch up` (embedded NATS, coordinator, one worker, collector)
    keeping its records in the versitygw bucket "records" under "team-a/"."""
    args = [str(gorch_bin), "up", "--nats-port", "0", "--workers", "1",
            "--data-dir", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"gorch-up-{os.getpid()}"),
            "--s3-endpoint", s3["endpoint"], "--s3-bucket", "records", "--s3-prefix", "team-a", "--s3-access-key", s3["access_key"],
            "--s3-insecure", "--s3-create-bucket"]
    proc = Proc(args, env={"AWS_SECRET_ACCESS_KEY": s3["secret_key"]})  # never in argv

    def ready() -> Optional[str]:
        if proc.p.poll() is not None:
            pytest.fail(f"gorch up exited: {proc.output()}")
        for line in proc.lines:
            m = re.search(r"msg=ready nats=(\S+)", line)
            if m:
                return m.group(1)
        return None

    url = eventually(ready, "gorch up to be ready")
    yield {"url": url, "s3": s3, "proc": proc}
    proc.stop()
    shutil.rmtree(args[args.index("--data-dir") + 1], ignore_errors=True)
