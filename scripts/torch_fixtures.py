#!/usr/bin/env python3
"""Writes the PyTorch reference numbers that gorch's Go tests compare against.

    ~/.cache/gorch/torch-venv-2.15.0/bin/python scripts/torch_fixtures.py

(bench/run.sh installs that venv.) It writes

  pkg/tensor/testdata/torch_ops.json: one case per ATen op that a
  transformer's forward and backward graphs use, with float32 inputs drawn
  from a fixed seed and the outputs of the ATen op computed by PyTorch in
  float64 from those inputs. An input marked "t" is handed to the Go op as a
  transposed (non-contiguous) view.
  pkg/nn/testdata/torch_gpt.json: a small GPT (the layout of nn.GPT, with the
  same parameter names) with random float32 weights, a batch of tokens, and
  the logits, cross-entropy loss and every parameter's gradient.
  pkg/optim/testdata/torch_optim.json: torch.optim's SGD, Adam and AdamW
  (single-tensor implementations, foreach=False) under several settings,
  each stepping one float32 parameter through a fixed sequence of
  gradients, and the parameter and the optimizer's buffers after every step.
"""
import json
import os
import sys

import torch

aten = torch.ops.aten
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def enc(t, transposed=False):
    """A tensor as its logical shape and its elements; transposed ones are
    stored as the contiguous transpose of their last two dims."""
    t = t.detach()
    flat = (t.transpose(-1, -2).contiguous() if transposed else t).double().flatten()
    d = {"shape": list(t.shape), "data": [float("%.9g" % v) for v in flat.tolist()]}
    if transposed:
        d["t"] = True
    return d


class Case:
    def __init__(self, name, op, **args):
        self.d = {"name": name, "op": op, "args": args, "inputs": {}, "outputs": {}}

    def inp(self, key, t, transposed=False):
        """Stores a float32 input and returns it as float64 for the reference."""
        t = t.float()
        self.d["inputs"][key] = enc(t, transposed)
        return t.double()

    def out(self, **outs):
        for k, v in outs.items():
            self.d["outputs"][k] = enc(v)
        return self.d


def cases():
    g = torch.Generator().manual_seed(20261207)
    rn = lambda *s: torch.randn(s, generator=g)
    out = []

    c = Case("layer_norm affine transposed", "layer_norm", normalized=[8], eps=1e-5)
    x, w, b = c.inp("x", rn(2, 3, 8), True), c.inp("w", rn(8)), c.inp("b", rn(8))
    gy = c.inp("g", rn(2, 3, 8))
    y, mean, rstd = aten.native_layer_norm(x, [8], w, b, 1e-5)
    gx, gw, gb = aten.native_layer_norm_backward(gy, x, [8], mean, rstd, w, b, [True, True, True])
    out.append(c.out(out=y, mean=mean, rstd=rstd, gx=gx, gw=gw, gb=gb))

    c = Case("layer_norm two dims no affine", "layer_norm", normalized=[3, 4], eps=1e-2)
    x, gy = c.inp("x", rn(2, 3, 4) * 3 + 1), c.inp("g", rn(2, 3, 4))
    y, mean, rstd = aten.native_layer_norm(x, [3, 4], None, None, 1e-2)
    gx, _, _ = aten.native_layer_norm_backward(gy, x, [3, 4], mean, rstd, None, None, [True, False, False])
    out.append(c.out(out=y, mean=mean, rstd=rstd, gx=gx))

    for approx in ("none", "tanh"):
        c = Case("gelu " + approx, "gelu", approximate=approx)
        x, gy = c.inp("x", rn(4, 5) * 2, True), c.inp("g", rn(4, 5))
        out.append(c.out(out=aten.gelu(x, approximate=approx), gx=aten.gelu_backward(gy, x, approximate=approx)))

    c = Case("embedding padding", "embedding", num_weights=7, padding_idx=3)
    w = c.inp("w", rn(7, 4), True)
    idx = torch.tensor([[3, 1, 1, 6, 0], [2, 3, 1, 6, 6]])
    c.inp("idx", idx)
    gy = c.inp("g", rn(2, 5, 4))
    out.append(c.out(out=aten.embedding(w, idx, 3), gw=aten.embedding_dense_backward(gy, idx, 7, 3, False)))

    for op, fwd, bwd in (("softmax", aten._softmax, aten._softmax_backward_data),
                         ("log_softmax", aten._log_softmax, aten._log_softmax_backward_data)):
        c = Case(op + " dim 1", op, dim=1)
        x, gy = c.inp("x", rn(2, 3, 4) * 2), c.inp("g", rn(2, 3, 4))
        y = fwd(x, 1, False)
        out.append(c.out(out=y, gx=bwd(gy, y, 1, torch.float64)))

    for name, causal, scale, shapes in (("causal", True, None, [(2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4)]),
                                        ("cross scaled", False, 0.5, [(1, 2, 3, 4), (1, 2, 6, 4), (1, 2, 6, 4)])):
        c = Case("attention " + name, "attention", causal=causal, scale=scale or 0)
        q, k, v = (c.inp(n, rn(*s)) for n, s in zip("qkv", shapes))
        y, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)
        gy = c.inp("g", rn(*y.shape))
        gq, gk, gv = aten._scaled_dot_product_flash_attention_for_cpu_backward(gy, q, k, v, y, lse, 0.0, causal, scale=scale)
        out.append(c.out(out=y, lse=lse, gq=gq, gk=gk, gv=gv))

    for red, rname in ((0, "none"), (1, "mean"), (2, "sum")):
        c = Case("nll_loss " + rname, "nll_loss", reduction=red, ignore_index=-100)
        x = c.inp("x", torch.log_softmax(rn(5, 4), 1))
        tgt = torch.tensor([1, -100, 3, 0, 3])
        c.inp("target", tgt)
        w = c.inp("w", torch.rand(4, generator=g) + 0.5)
        y, tw = aten.nll_loss_forward(x, tgt, w, red, -100)
        gy = c.inp("g", rn(*y.shape))
        out.append(c.out(out=y, total_weight=tw, gx=aten.nll_loss_backward(gy, x, tgt, w, red, -100, tw)))

    c = Case("addmm broadcast", "addmm", beta=0.5, alpha=2.0)
    i, m1, m2 = c.inp("input", rn(4)), c.inp("m1", rn(3, 2), True), c.inp("m2", rn(2, 4))
    out.append(c.out(out=aten.addmm(i, m1, m2, beta=0.5, alpha=2.0)))

    c = Case("masked_fill broadcast", "masked_fill", value=-3.5)
    x = c.inp("x", rn(2, 3, 3))
    m = torch.ones(3, 3).triu(1)
    c.inp("mask", m)
    out.append(c.out(out=aten.masked_fill(x, m.bool(), -3.5)))

    for op, diag in (("tril", 0), ("triu", -1)):
        c = Case(op, op, diagonal=diag)
        x = c.inp("x", rn(2, 3, 4), True)
        out.append(c.out(out=getattr(aten, op)(x, diag)))

    c = Case("rsqrt", "rsqrt")
    x = c.inp("x", torch.rand(3, 4, generator=g) + 0.1)
    out.append(c.out(out=aten.rsqrt(x)))

    c = Case("matmul 4-D broadcast", "matmul")
    a, b = c.inp("a", rn(2, 1, 3, 4)), c.inp("b", rn(1, 3, 4, 5), True)
    out.append(c.out(out=torch.matmul(a, b)))
    return out


class Attention(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = torch.nn.Linear(d, 3 * d)
        self.c_proj = torch.nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (h.view(b, t, self.heads, d // self.heads).transpose(1, 2) for h in self.c_attn(x).split(d, dim=2))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = torch.nn.Linear(d, 4 * d)
        self.c_proj = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(torch.nn.functional.gelu(self.c_fc(x)))


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln_2 = torch.nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(torch.nn.Module):
    def __init__(self, vocab, context, layers, d, heads):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Embedding(context, d)
        self.h = torch.nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def gpt_case():
    cfg = {"vocab": 11, "context": 8, "layers": 2, "dim": 8, "heads": 2}
    torch.manual_seed(7)
    m = GPT(cfg["vocab"], cfg["context"], cfg["layers"], cfg["dim"], cfg["heads"])
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for name, p in m.named_parameters():
            base = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0
            p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))
    weights = {k: enc(v.float()) for k, v in m.state_dict().items()}
    m = m.double()
    idx = torch.randint(0, cfg["vocab"], (2, 6), generator=g)
    tgt = torch.randint(0, cfg["vocab"], (2, 6), generator=g)
    logits = m(idx)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg["vocab"]), tgt.view(-1))
    loss.backward()
    return {"generator": "scripts/torch_fixtures.py", "torch": torch.__version__.split("+")[0], "config": cfg,
            "names": list(weights), "weights": weights, "tokens": enc(idx), "targets": enc(tgt),
            "logits": enc(logits), "loss": loss.item(),
            "grads": {k: enc(p.grad) for k, p in m.named_parameters()}}


def optim_cases():
    g = torch.Generator().manual_seed(11)
    # 37 elements: every vector kernel's full lanes and a tail.
    p0 = torch.randn(37, generator=g)
    grads = [torch.randn(37, generator=g) * 0.1 for _ in range(6)]
    configs = [
        ("sgd", "sgd", dict(lr=0.1)),
        ("sgd momentum", "sgd", dict(lr=0.1, momentum=0.9)),
        ("sgd dampening", "sgd", dict(lr=0.1, momentum=0.9, dampening=0.5)),
        ("sgd nesterov", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
        ("sgd momentum weight decay", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        ("adam", "adam", dict(lr=1e-3)),
        ("adam betas eps", "adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6)),
        ("adam weight decay", "adam", dict(lr=1e-3, weight_decay=0.1)),
        ("adamw", "adamw", dict(lr=1e-3)),
        ("adamw weight decay", "adamw", dict(lr=3e-3, weight_decay=0.1)),
    ]
    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    out = []
    for name, kind, kw in configs:
        p = p0.clone().requires_grad_()
        opt = classes[kind]([p], foreach=False, **kw)
        after, state = [], []
        for gr in grads:
            p.grad = gr.clone()
            opt.step()
            after.append(enc(p))
            st = opt.state[p]
            d = {k: enc(st[k]) for k in ("momentum_buffer", "exp_avg", "exp_avg_sq") if k in st}
            if "exp_avg_sq" in st:
                # ATen's sqrt (MKL's vsSqrt here) is not always correctly
                # rounded; the Go test needs to know where it is not.
                d["exp_avg_sq_sqrt"] = enc(st["exp_avg_sq"].sqrt())
            state.append(d)
        cfg = dict(kw)
        if "betas" in cfg:
            cfg["beta1"], cfg["beta2"] = cfg.pop("betas")
        out.append({"name": name, "optimizer": kind, "config": cfg, "after": after, "state": state})
    return {"param": enc(p0), "grads": [enc(x) for x in grads], "cases": out}


def write(rel, doc):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", rel, file=sys.stderr)


def main():
    torch.set_num_threads(1)
    write("pkg/tensor/testdata/torch_ops.json",
          {"generator": "scripts/torch_fixtures.py", "torch": torch.__version__.split("+")[0], "cases": cases()})
    write("pkg/nn/testdata/torch_gpt.json", gpt_case())
    write("pkg/optim/testdata/torch_optim.json",
          {"generator": "scripts/torch_fixtures.py", "torch": torch.__version__.split("+")[0], **optim_cases()})


if __name__ == "__main__":
    main()
