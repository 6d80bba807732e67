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

# --- the grammar text, as pkg/data/text.go generates it -----------------
# A transcription of gorch's generator and of the generator it draws from
# (pkg/tensor/rng.go over Go's math/rand/v2 PCG-DXSM), so the test scores
# the same held-out windows gorch evaluated; a drift from the Go code
# shows as a different loss, or a vocabulary that does not fit wte.

M64, M128 = (1 << 64) - 1, (1 << 128) - 1
PCG_MUL = (2549297995355413924 << 64) | 4865540595714422341
PCG_INC = (6364136223846793005 << 64) | 1442695040888963407


class GoRNG:
    """pkg/tensor's RNG: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15), Intn
    by Lemire's multiply-shift with rejection."""

    def __init__(self, seed: int) -> None:
        self.state = (seed << 64) | (seed ^ 0x9E3779B97F4A7C15)

    def uint64(self) -> int:
        self.state = (self.state * PCG_MUL + PCG_INC) & M128
        hi, lo = self.state >> 64, self.state & M64
        hi ^= hi >> 32
        hi = (hi * 0xDA942042E4DD58B5) & M64
        hi ^= hi >> 48
        return (hi * (lo | 1)) & M64

    def intn(self, n: int) -> int:
        while True:
            p = self.uint64() * n
            hi, lo = p >> 64, p & M64
            if lo >= n or lo >= ((1 << 64) - n) % n:
                return hi


NOUNS = [("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("child", "children"), ("robot", "robots"),
         ("teacher", "teachers"), ("river", "rivers"), ("fox", "foxes")]
NAMES = ["alice", "bob", "maria", "tom"]
ADJS = ["small", "red", "quiet", "old", "happy", "bright", "lazy"]
TRANS = [("sees", "see"), ("likes", "like"), ("follows", "follow"), ("finds", "find"), ("helps", "help")]
INTRANS = [("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"), ("waits", "wait")]
ADVS = ["quickly", "slowly", "today", "again", "quietly"]
PREPS = ["near", "under", "with", "behind"]
DETS = (["the", "a", "every", "this"], ["the", "some", "many", "these"])


def grammar_vocab() -> dict:
    """data.GrammarVocab: character -> its rank in the sorted alphabet."""
    alphabet = " .,\n" + "".join("".join(ws) for ws in (NAMES, ADJS, ADVS, PREPS, DETS[0], DETS[1]))
    alphabet += "".join(a + b for ps in (NOUNS, TRANS, INTRANS) for a, b in ps)
    return {c: i for i, c in enumerate(sorted(set(alphabet)))}


def grammar_text(n: int, seed: int) -> str:
    """data.GrammarText(n, seed)."""
    r, out = GoRNG(seed), []

    def pick(words):
        return words[r.intn(len(words))]

    def noun_phrase() -> int:
        if r.intn(5) == 0:
            out.append(pick(NAMES))
            return 0
        num = r.intn(2)
        out.append(pick(DETS[num]))
        while r.intn(3) == 0:
            out.append(" " + pick(ADJS))
        out.append(" " + NOUNS[r.intn(len(NOUNS))][num])
        return num

    def sentence() -> None:
        num = noun_phrase()
        out.append(" ")
        kind = r.intn(3)
        if kind == 0:
            out.append(TRANS[r.intn(len(TRANS))][num] + " ")
            noun_phrase()
        elif kind == 1:
            verb = INTRANS[r.intn(len(INTRANS))][num]
            out.append(verb + " " + pick(ADVS))
        else:
            verb = INTRANS[r.intn(len(INTRANS))][num]
            out.append(verb + " " + pick(PREPS) + " ")
            noun_phrase()
        if r.intn(4) == 0:
            out.append(", and ")
            sentence()
            return
        out.append(".")

    length = 0
    while length < n:
        start = len(out)
        sentence()
        out.append("\n" if r.intn(6) == 0 else " ")
        length += sum(len(s) for s in out[start:])
    return "".join(out)[:n]


def heldout_windows(size: int, context: int, seed: int):
    """pkg/train's grammarSplits test split: the text after the training
    windows, cut into [N, context] inputs and next-token targets."""
    n_test = max(size // 4, 1)
    vocab = grammar_vocab()
    ids = np.array([vocab[c] for c in grammar_text((size + n_test) * context + 2, seed)], np.int64)
    ids = ids[size * context + 1:]
    n = (len(ids) - 1) // context
    x = ids[:n * context].reshape(n, context)
    y = ids[1:n * context + 1].reshape(n, context)
    return torch.from_numpy(x), torch.from_numpy(y), len(vocab)


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
    x, y, vocab = heldout_windows(SIZE, MODEL["context"], SEED)
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
    x, _, _ = heldout_windows(SIZE, MODEL["context"], SEED)
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
