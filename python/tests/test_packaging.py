"""`python -m build` makes a platform wheel with the library inside (from
an sdist that carries the Go sources), and `pip install ./python` builds
and installs a working package."""

import subprocess
import sys
import sysconfig
from pathlib import Path
import tarfile
import zipfile

from conftest import PY, REPO

CHECK = ("import gorch, sys; ck = gorch.load_checkpoint(sys.argv[1]); "
         "assert gorch._lib.library_path().parent.name == 'gorch'; print(ck.params['w'].tolist())")
GOLDEN = str(REPO / "pkg/experiment/testdata/checkpoint_v1_minimal.rtch")


def venv(path):
    """A fresh venv that sees this one's packages (numpy) but not gorch."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    py = path / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "parent.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return py


def check_installed(py, tmp_path):
    env = {"PATH": "/usr/bin:/bin"}  # no GORCH_LIB: the installed library is used
    p = subprocess.run([str(py), "-c", CHECK, GOLDEN], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "[1.0, 2.0, 3.0]", p.stderr


BACKEND = """
import torch
from importlib.metadata import entry_points
eps = [e.value for e in entry_points(group="torch_dynamo_backends") if e.name == "gorch"]
assert eps == ["gorch.compile:backend"], eps
m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
x = torch.randn(3, 4)
out = torch.compile(m, backend="gorch")(x)
assert torch.allclose(out, m(x), atol=1e-6)
out.sum().backward()
print("ok")
"""


def check_backend(py, tmp_path):
    """torch.compile(m, backend="gorch") finds the installed entry point."""
    env = {"PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(py), "-c", BACKEND], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def test_build_makes_a_platform_wheel(tmp_path):
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(PY)], check=True,
                   capture_output=True)
    wheel, = out.glob("*.whl")
    assert wheel.name.startswith("gorch-0.1.0-py3-none-linux_"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "gorch/libgorch.so" in names and "gorch/py.typed" in names
    sdist, = out.glob("*.tar.gz")
    files = tarfile.open(sdist).getnames()
    assert any(f.endswith("gosrc/go.mod") for f in files) and not any(f.endswith("libgorch.so") for f in files)
    py = venv(tmp_path / "venv")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    check_installed(py, tmp_path)


def test_pip_install_builds_the_library(tmp_path):
    py = venv(tmp_path / "venv")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(PY)], check=True,
                   capture_output=True)
    check_installed(py, tmp_path)
    check_backend(py, tmp_path)
