"""gorch.h, the library's exports and the ctypes signatures agree."""

import re

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
