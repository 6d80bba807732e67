"""gorch and PyTorch exchange models: a gorch-trained checkpoint evaluates
the same in torch (Done-when 2), and torch weights start a gorch run
(Done-when 5)."""

import gzip
import re

import numpy as np
import pytest
import torch

import gorch
from conftest import run_gorch, run_id

MEAN, STD = np.float32(0.2860), np.float32(0.3530)  # pkg/train's Fashion-MNIST normalisation


def load_fmnist(dirname, split):
    """Fashion-MNIST images (N, 1, 28, 28) normalised as gorch does, and labels."""
    prefix = "t10k" if split == "test" else "train"
    with gzip.open(dirname / f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(dirname / f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (x.astype(np.float32) / np.float32(255) - MEAN) / STD
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


def torch_accuracy(model, x, y, flatten):
    model.eval()
    with torch.no_grad():
        logits = model(x.reshape(len(x), -1) if flatten else x)
    return float((logits.argmax(1) == y).double().mean())


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_gorch_checkpoint_in_torch_gives_gorch_accuracy(trained, fmnist, model):
    store = gorch.Store(trained["data"])
    run = store.run(trained[model])
    gorch_acc = run.summary["metrics"]["eval/accuracy"]["last"]
    ck = run.checkpoint()  # the newest: taken after the last step, where gorch evaluated
    assert ck.train_state["step"] == run.summary["metrics"]["eval/accuracy"]["last_step"]
    net = ck.torch_module()
    net.load_state_dict(ck.to_torch(), strict=True)
    x, y = load_fmnist(fmnist, "test")
    acc = torch_accuracy(net, x, y, flatten=(model == "mlp"))
    print(f"{model}: gorch {100 * gorch_acc:.2f} %, torch {100 * acc:.2f} %")
    assert gorch_acc > 0.5
    assert abs(100 * acc - 100 * gorch_acc) <= 0.01 + 1e-9


def test_torch_weights_start_a_gorch_run(gorch_bin, fmnist, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    x, y = load_fmnist(fmnist, "train")
    x = x.reshape(len(x), -1)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for i in range(300):  # train in torch first, so the weights are recognisably not fresh
        b = slice(64 * i, 64 * (i + 1))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[b]), y[b]).backward()
        opt.step()
    with torch.no_grad():
        torch_loss = float(torch.nn.functional.cross_entropy(net(x[:2048]), y[:2048]))
    path = tmp_path / "from-torch.rtch"
    gorch.save_checkpoint(net.state_dict(), path, metadata={"source": "torch"})
    data = tmp_path / "records"
    p = run_gorch(gorch_bin, "train", "--data-dir", str(data), "--model", "mlp", "--init", str(path),
                  "--steps", "50", "--log-every", "1")
    run = gorch.Store(data).run(run_id(p.stdout))
    assert run.status == "succeeded"
    hist = run.metric_history(["train/loss"])
    first = float(hist["value"].iloc[0])
    print(f"torch loss {torch_loss:.4f}; gorch's first step from those weights {first:.4f}")
    assert first < 0.5 * np.log(10) and abs(first - torch_loss) < 0.5
    acc = float(re.search(r"test accuracy ([0-9.]+)%", p.stdout).group(1))
    assert acc > 70
