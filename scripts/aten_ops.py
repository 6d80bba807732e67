#!/usr/bin/env python3
"""Lists the ATen operators in the forward and backward graphs that
torch.compile's AOTAutograd produces for the models gorch's torch.compile
backend must run without fallback: an MLP, a LeNet CNN, the GPT of
scripts/torch_fixtures.py (fused attention) and an unfused attention variant
(matmul + masked softmax, tanh GELU, dropout), each with a cross-entropy loss.

    ~/.cache/gorch/torch-venv-2.15.0/bin/python scripts/aten_ops.py

pkg/tensor's package doc maps each operator to its gorch function.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fixtures import GPT  # noqa: E402


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 5), nn.Conv2d(16, 32, 5)
        self.f1, self.f2 = nn.Linear(512, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


class Unfused(nn.Module):
    """Attention spelled as matmul + masked softmax, tanh GELU and dropout."""

    def __init__(self, d=16, heads=2, t=8, vocab=11):
        super().__init__()
        self.heads = heads
        self.emb, self.ln = nn.Embedding(vocab, d), nn.LayerNorm(d)
        self.qkv, self.head = nn.Linear(d, 3 * d), nn.Linear(d, vocab)
        self.register_buffer("mask", torch.tril(torch.ones(t, t)).view(1, 1, t, t))

    def forward(self, idx):
        x = self.ln(self.emb(idx))
        b, t, d = x.shape
        q, k, v = (h.view(b, t, self.heads, d // self.heads).transpose(1, 2) for h in self.qkv(x).split(d, 2))
        att = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        att = F.dropout(F.softmax(att, dim=-1), 0.1, self.training)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
        return self.head(F.gelu(y, approximate="tanh"))


class WithLoss(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x, y):
        out = self.m(x)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def main():
    ops = {"forward": {}, "backward": {}}

    def recorder(kind, model):
        def compiler(gm, _inputs):
            for n in gm.graph.nodes:
                if n.op == "call_function":
                    ops[kind].setdefault(str(n.target), set()).add(model)
            return make_boxed_func(gm.forward)
        return compiler

    tokens = lambda: torch.randint(0, 11, (4, 8))  # noqa: E731
    models = {
        "mlp": (nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)), torch.randn(64, 784), torch.randint(0, 10, (64,))),
        "lenet": (LeNet(), torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))),
        "gpt": (GPT(11, 8, 2, 16, 2), tokens(), tokens()),
        "unfused": (Unfused(), tokens(), tokens()),
    }
    for name, (m, x, y) in models.items():
        backend = aot_autograd(fw_compiler=recorder("forward", name), bw_compiler=recorder("backward", name))
        torch.compile(WithLoss(m), backend=backend)(x, y).backward()
    for kind, found in ops.items():
        print("==", kind)
        for op, users in sorted(found.items()):
            print(f"{op:66s} {','.join(sorted(users))}")


if __name__ == "__main__":
    main()
