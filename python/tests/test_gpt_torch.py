"""gorch's GPT in torch: a `gorch train` GPT checkpoint, built with
Checkpoint.torch_module(), gives the held-out loss gorch recorded at that
step on the same text, scored as gorch scores it."""

import json

import numpy as np
import pytest
import torch

import gorch
from conftest import run_gorch, run_id

# The run: small enough to train in a few seconds, with dropout so the
# torch model must place (and, in eval mode, skip) it as gorch does.
MODEL = {"name": "gpt", "layers": 2, "d_model": 32, "heads": 4, "context": 32, "dropout": 0.1}
SIZE, SEED, STEPS, EVERY = 256, 5, 300, 150

def heldout_windows(run):
    """The held-out windows gorch evaluated the run on (gorch.Run.dataset:
    pkg/train's own split of the grammar text), as torch tensors, and the
    vocabulary size of the run's model."""
    x, y = run.dataset("test")
    vocab = run.checkpoint().params["wte.weight"].shape[0]
    assert x.shape == y.shape == (SIZE // 4, MODEL["context"]) and x.dtype == y.dtype == np.int64
    assert (x[:, 1:] == y[:, :-1]).all() and 0 <= x.min() and max(x.max(), y.max()) < vocab
    return torch.from_numpy(x), torch.from_numpy(y), vocab


# --- the tests -------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt_run(gorch_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt")
    spec = d / "spec.json"
    spec.write_text(json.dumps({"model": MODEL, "dataset": {"name": "grammar", "size": SIZE},
                                "optimizer": {"name": "adamw", "lr": 3e-3}, "steps": STEPS, "batch_size": 16,
                                "seed": SEED, "eval_every": EVERY, "checkpoint_every": EVERY}))
    p = run_gorch(gorch_bin, "train", "--config", str(spec), "--data-dir", str(d / "records"))
    return gorch.Store(d / "records").run(run_id(p.stdout))


def test_gpt_checkpoint_in_torch_gives_gorch_eval_loss(gpt_run):
    x, y, vocab = heldout_windows(gpt_run)
    hist = gpt_run.metric_history(["eval/loss", "eval/accuracy"])
    recorded = {(r.name, int(r.step)): float(r.value) for r in hist.itertuples()}
    steps = [c["step"] for c in gpt_run.checkpoints()]
    assert steps == [EVERY, 2 * EVERY]
    first = None
    for step in steps:
        ck = gpt_run.checkpoint(step=step)
        assert ck.train_state["step"] == step and ck.params["wte.weight"].shape == (vocab, MODEL["d_model"])
        net = ck.torch_module()
        net.load_state_dict(ck.to_torch(), strict=True)
        net.eval()
        with torch.no_grad():
            logits = net(x)  # one batch: the held-out set is smaller than gorch's eval batch (1000)
            assert logits.shape == (len(x), MODEL["context"], vocab)
            loss = float(torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)))
            loss64 = float(torch.nn.functional.cross_entropy(net.double()(x).reshape(-1, vocab), y.reshape(-1)))
        correct = int((logits.argmax(-1) == y).sum())
        g_loss, g_acc = recorded[("eval/loss", step)], recorded[("eval/accuracy", step)]
        print(f"step {step}: gorch eval loss {g_loss:.7f}, torch {loss:.7f} (rel {abs(loss - g_loss) / g_loss:.1e}), "
              f"torch float64 {loss64:.7f} (rel {abs(loss64 - g_loss) / g_loss:.1e}); "
              f"accuracy gorch {g_acc:.5f}, torch {correct / y.numel():.5f} over {y.numel()} tokens")
        assert abs(loss - g_loss) <= 1e-6 * g_loss
        assert abs(loss64 - g_loss) <= 1e-6 * g_loss
        assert abs(correct - g_acc * y.numel()) <= 1.001  # at most one argmax tie resolved apart
        first = first or loss
    # The model learned (the torch loss fell with gorch's): the comparison is of a trained model.
    assert loss < first < np.log(vocab)


def test_gpt_torch_module_is_causal(gpt_run):
    net = gpt_run.checkpoint().torch_module().eval()
    x, _, _ = heldout_windows(gpt_run)
    with torch.no_grad():
        full = net(x[:4])
        assert torch.allclose(net(x[:4, :10]), full[:, :10], rtol=0, atol=1e-5)
        changed = x[:4].clone()
        changed[:, 20:] = (changed[:, 20:] + 1) % full.shape[-1]
        after = net(changed)
    assert torch.allclose(after[:, :20], full[:, :20], rtol=0, atol=1e-5)
    assert not torch.allclose(after[:, 20:], full[:, 20:], rtol=0, atol=1e-3)
    with pytest.raises(gorch.ShapeError, match=r"0 < T <= 32, got \[1, 33\]"):
        net(torch.zeros(1, 33, dtype=torch.int64))


@pytest.mark.parametrize("change, message", [
    ({"d_model": 64}, r"does not fit gpt \(layers 2, d_model 64, .*\): wte.weight is \[\d+, 32\] in the checkpoint, "
                      r"\[\d+, 64\] in the model \(and \d+ more\)$"),
    ({"layers": 3}, r": the checkpoint has no h\.2\.ln_1\.weight \(and 11 more\)$"),
    ({"layers": 1}, r": the model has no h\.1\.ln_1\.weight \(and 11 more\)$"),
    ({"context": 16}, r": wpe.weight is \[32, 32\] in the checkpoint, \[16, 32\] in the model$"),
    ({"vocab": 64}, r": wte.weight is \[\d+, 32\] in the checkpoint, \[64, 32\] in the model \(and 1 more\)$"),
])
def test_gpt_config_that_does_not_fit_raises_shape_error(gpt_run, tmp_path, change, message):
    ck = gpt_run.checkpoint()
    path = tmp_path / "bad.rtch"
    gorch.save_checkpoint(ck.to_torch(), path, model_config={**ck.model_config, "model": {**MODEL, **change}})
    with pytest.raises(gorch.ShapeError, match=message) as e:
        gorch.load_checkpoint(path).torch_module()
    assert "\n" not in str(e.value) and e.value.op == "torch_module"


def test_gpt_config_no_model_can_have_raises_config_error(tmp_path):
    path = tmp_path / "bad.rtch"
    gorch.save_checkpoint({"wte.weight": np.zeros((4, 6))}, path,
                          model_config={"model": {"name": "gpt", "d_model": 6, "heads": 4}})
    with pytest.raises(gorch.ConfigError, match=r"^model\.heads: 4 heads do not divide d_model 6$"):
        gorch.load_checkpoint(path).torch_module()
