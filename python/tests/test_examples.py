"""The notebook-style examples run, cell by cell, against real records."""

import os
import re

import pytest

from conftest import PY

EXAMPLES = sorted((PY / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, trained, monkeypatch, capsys):
    monkeypatch.setenv("GORCH_DATA", str(trained["data"]))
    cells = re.split(r"^# %%.*$", path.read_text(), flags=re.M)
    assert len(cells) >= 4
    ns = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        exec(compile(cell, f"{path.name} cell {i}", "exec"), ns)
    out = capsys.readouterr().out
    m = re.search(r"PyTorch: ([0-9.]+) %; gorch reported ([0-9.]+) %", out)
    assert m and abs(float(m.group(1)) - float(m.group(2))) <= 0.01, out
