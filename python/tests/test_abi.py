"""gorch.h, the library's exports and the ctypes signatures agree."""

import os
import re
import subprocess
import sys

from conftest import REPO
from gorch import _lib


def test_header_matches_ctypes_signatures():
    text = re.sub(r"/\*.*?\*/", "", (REPO / "cmd/libgorch/gorch.h").read_text(), flags=re.S)
    protos = {m.group(2): m.group(3) for m in re.finditer(r"\b(int|void)\s+(gorch_\w+)\s*\(([^)]*)\)\s*;", text)}
    assert set(protos) == set(_lib._SIGS)
    for name, args in protos.items():
        n = 0 if args.strip() in ("", "void") else len(args.split(","))
        assert n == len(_lib._SIGS[name][1]), f"{name}: {n} arguments in gorch.h, {len(_lib._SIGS[name][1])} in _lib"
        assert hasattr(_lib.lib(), name)


def test_library_of_another_abi_is_refused_by_version(tmp_path):
    """An older libgorch (here: one exporting nothing but its version) gives
    the ABI error, not a missing-symbol AttributeError."""
    src, lib = tmp_path / "old.c", tmp_path / "libgorch.so"
    src.write_text("int gorch_abi_version(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    code = "import gorch\ntry:\n    gorch.version()\nexcept gorch.InternalError as e:\n    print(e)\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "GORCH_LIB": str(lib), "PYTHONPATH": str(REPO / "python")})
    assert p.returncode == 0, p.stderr
    assert f"has ABI version 1, this package needs {_lib.ABI_VERSION}: rebuild it" in p.stdout, p.stdout
