"""Builds libgorch.so (cmd/libgorch, -buildmode=c-shared) with the Go
toolchain into the package, and marks the wheel as platform-specific (one
library for every Python version: it is loaded with ctypes).

The Go sources come from the gorch checkout around this directory, or, in
an sdist, from the copy under gosrc/ that `sdist` adds."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
MODULE = "module github.com/gorch/gorch"


def go_root() -> Path:
    """The gorch Go module to build from."""
    for cand in (os.environ.get("GORCH_GO_SRC"), HERE / "gosrc", HERE.parent):
        if cand and (Path(cand) / "go.mod").is_file() and MODULE in (Path(cand) / "go.mod").read_text():
            return Path(cand)
    sys.exit("gorch: cannot find the gorch Go sources (go.mod) next to python/; set GORCH_GO_SRC")


def build_library(dest: Path) -> None:
    dest = dest.resolve()
    go = shutil.which("go")
    if go is None:
        sys.exit("gorch: building libgorch.so needs the Go toolchain (go 1.26+) on PATH")
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [go, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(dest), "./cmd/libgorch"]
    print("gorch:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=go_root(), check=True, env={**os.environ, "CGO_ENABLED": "1"})
    dest.with_suffix(".h").unlink(missing_ok=True)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        build_library(Path(self.build_lib) / "gorch" / "libgorch.so")


class SDist(sdist):
    """Adds the Go module's sources (gosrc/) so the sdist builds alone."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = go_root()
        listed = subprocess.run(["git", "ls-files", "go.mod", "go.sum", "cmd", "pkg", "internal", "services"],
                                cwd=root, capture_output=True, text=True)
        names = listed.stdout.split() if listed.returncode == 0 else []
        for name in names:
            if "/testdata/" in name or name.endswith("_test.go"):
                continue
            dst = Path(base_dir) / "gosrc" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dst)


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


class BdistWheel(bdist_wheel):
    """py3-none-<platform>: the library does not use Python's C API."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPy, "sdist": SDist, "bdist_wheel": BdistWheel}, distclass=BinaryDistribution)
