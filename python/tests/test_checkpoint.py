"""Checkpoints: the Go tests' golden and corrupt files, zero-copy params,
saving through the Go writer, torch round trips."""

import json
import math
import struct

import numpy as np
import pytest

import gorch
from conftest import REPO, run_gorch

TESTDATA = REPO / "pkg" / "experiment" / "testdata"


def test_golden_small():
    ck = gorch.load_checkpoint(TESTDATA / "checkpoint_v1_small.rtch")
    assert ck.version == "1.0"
    assert list(ck.params) == ["0.weight", "0.bias", "scale", "empty"]
    w = ck.params["0.weight"]
    assert w.shape == (2, 3) and w.dtype == np.float32
    assert w[0, 0] == 1 and w[0, 1] == -2.5 and math.isnan(w[0, 2])
    assert struct.unpack("<I", w[0, 2].tobytes())[0] == 0x7FC00123  # the NaN's payload survives
    assert w[1, 0] == np.inf and w[1, 1] == -np.inf and w[1, 2] == 0 and math.copysign(1, w[1, 2]) == -1
    assert ck.params["0.bias"].tolist() == [0.125, 3]
    assert ck.params["scale"].shape == () and float(ck.params["scale"]) == 7.5
    assert ck.params["empty"].shape == (0, 4)
    o = ck.optimizer
    assert o["type"] == "adam" and o["lr"] == 0.001 and o["hyper"]["beta2"] == 0.999
    assert o["params"]["0.weight"]["step"] == 3
    assert o["params"]["0.weight"]["buffers"]["exp_avg"].tolist() == [1, 2, 3, 4, 5, 6]
    assert o["params"]["0.bias"]["buffers"]["exp_avg"].tolist() == [0.5, 0.25]
    t = ck.train_state
    assert (t["step"], t["epoch"], t["cursor"]) == (120, 3, {"epoch": 3, "position": 64})
    assert t["extra"] == {"best_loss": 0.25}
    assert ck.metadata == {"git_commit": "abc123"}
    assert ck.model_config == {"arch": "mlp", "hidden": [2], "act": "relu"}


def test_golden_minimal():
    ck = gorch.load_checkpoint(str(TESTDATA / "checkpoint_v1_minimal.rtch"))
    assert list(ck.params) == ["w"] and ck.params["w"].tolist() == [1, 2, 3]
    assert ck.optimizer is None and ck.train_state["step"] == 1


def test_params_are_views_of_the_file():
    ck = gorch.load_checkpoint(TESTDATA / "checkpoint_v1_small.rtch")
    w = ck.params["0.weight"]
    assert not w.flags.owndata and not w.flags.writeable
    with pytest.raises(ValueError):
        w[0, 0] = 2
    # The mapping outlives the checkpoint object while a view is alive.
    del ck
    assert w[0, 1] == -2.5


CASES = json.loads((TESTDATA / "corrupt" / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corrupt_files(case):
    with pytest.raises(gorch.CorruptCheckpointError) as e:
        gorch.load_checkpoint(TESTDATA / "corrupt" / case["file"])
    assert e.value.reason == case["reason"]
    assert e.value.kind == "checkpoint"
    assert case["reason"] in str(e.value) and "\n" not in str(e.value)


def test_every_corrupt_case_is_checked():
    assert len(CASES) >= 60 and len({c["reason"] for c in CASES}) == 9


def test_save_and_load_round_trip(tmp_path, gorch_bin):
    rng = np.random.default_rng(1)
    sd = {"0.weight": rng.standard_normal((4, 3)), "0.bias": np.arange(4, dtype=np.float64),
          "scalar": np.float32(2.5), "t": rng.standard_normal((2, 3, 4)).astype(np.float32).transpose(2, 0, 1)}
    opt = {"type": "adam", "lr": 0.01, "hyper": {"beta1": 0.9},
           "params": {"0.weight": {"step": 7, "buffers": {"exp_avg": np.ones(12), "exp_avg_sq": np.zeros(12)}}}}
    path = tmp_path / "out.rtch"
    gorch.save_checkpoint(sd, path, optimizer=opt, train_state={"step": 7, "epoch": 1},
                          model_config={"model": {"name": "mlp"}}, metadata={"from": "python"})
    ck = gorch.load_checkpoint(path)
    assert list(ck.params) == list(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(ck.params[k], np.asarray(v, np.float32))
    assert ck.optimizer["params"]["0.weight"]["buffers"]["exp_avg"].tolist() == [1.0] * 12
    assert ck.optimizer["params"]["0.weight"]["step"] == 7
    assert ck.train_state["step"] == 7 and ck.metadata == {"from": "python"}
    # The Go CLI verifies the file too.
    assert "ok" in run_gorch(gorch_bin, "ckpt", "verify", str(path)).stdout
    # A loaded checkpoint saves back to the same content.
    again = tmp_path / "again.rtch"
    gorch.save_checkpoint(ck.params, again, optimizer=ck.optimizer, train_state=ck.train_state,
                          model_config=ck.model_config, metadata=ck.metadata)
    assert again.read_bytes() == path.read_bytes()


def test_save_leaves_no_file_on_bad_input(tmp_path):
    path = tmp_path / "bad.rtch"
    with pytest.raises(gorch.ArgumentError):
        gorch.save_checkpoint({"w": np.ones(3)}, path, train_state={"step": -1})
    with pytest.raises(gorch.ArgumentError):
        gorch.save_checkpoint({"w": np.ones(3)}, path, train_state={"no_such_field": 1})
    with pytest.raises(gorch.ArgumentError):
        gorch.save_checkpoint({"w": "not numbers"}, path)
    with pytest.raises(gorch.NotFoundError):
        gorch.save_checkpoint({"w": np.ones(3)}, tmp_path / "missing-dir" / "x.rtch")
    assert list(tmp_path.iterdir()) == []


def test_torch_round_trip(tmp_path):
    import torch
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    gorch.save_checkpoint(m.state_dict(), tmp_path / "m.rtch", model_config={"model": {"name": "mlp", "hidden": [7]}})
    ck = gorch.load_checkpoint(tmp_path / "m.rtch")
    m2 = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    m2.load_state_dict(ck.to_torch(), strict=True)
    x = torch.randn(4, 5)
    assert torch.equal(m(x), m2(x))
    assert torch.equal(ck.torch_module()(x), m(x))


def test_torch_module_that_does_not_fit_raises_one_line_shape_error(tmp_path):
    import torch
    m = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    gorch.save_checkpoint(m.state_dict(), tmp_path / "m.rtch", model_config={"model": {"name": "cnn"}})
    with pytest.raises(gorch.ShapeError) as e:
        gorch.load_checkpoint(tmp_path / "m.rtch").torch_module()
    # 0.weight and 0.bias differ, 3/7/9.* are missing, 2.* are extra.
    assert str(e.value) == ("checkpoint does not fit cnn: 0.weight is [7, 5] in the checkpoint, [16, 1, 5, 5] "
                            "in the model (and 9 more)")
