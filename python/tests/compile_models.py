"""The models the torch.compile backend must run without fallback (issue
13): the bench's MLP and LeNet (gorch's nn.MLP and nn.LeNet, from
bench/torch_bench.py) and the GPT of scripts/torch_fixtures.py (gorch's
nn.GPT: learned positions, pre-norm blocks, fused causal attention, GELU,
untied head); a variant with attention spelled out and tanh GELU; and a model
that needs eager PyTorch for one operator."""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import REPO

sys.path[:0] = [str(REPO / "bench"), str(REPO / "scripts")]
from torch_bench import lenet, mlp  # noqa: E402,F401
from torch_fixtures import GPT, MLP, Attention  # noqa: E402


def gpt(vocab=32, context=16, layers=2, d=32, heads=2):
    return GPT(vocab, context, layers, d, heads)


class UnfusedAttention(Attention):
    """Causal attention as matmul, masked_fill and softmax."""

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (h.view(b, t, self.heads, d // self.heads).transpose(1, 2) for h in self.c_attn(x).split(d, dim=2))
        att = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class TanhMLP(MLP):
    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


def unfused_gpt(context=16):
    m = gpt(context=context)
    for blk in m.h:
        blk.attn.__class__ = UnfusedAttention
        blk.attn.register_buffer("mask", torch.tril(torch.ones(context, context)).view(1, 1, context, context))
        blk.mlp.__class__ = TanhMLP
    return m


class WithLoss(nn.Module):
    """model plus its cross-entropy loss, so that the loss and its backward
    are in the compiled graphs too. Returns (logits, loss)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        out = self.model(x)
        return out, F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


class WithCumsum(nn.Module):
    """An MLP with torch.cumsum (no gorch kernel) between its layers."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 5)

    def forward(self, x):
        return self.fc2(torch.cumsum(torch.relu(self.fc1(x)), dim=1) * 0.1)


def tokens(batch, context, vocab, seed):
    """A batch of next-token windows over a repeating, slowly varying
    sequence (learnable, so a loss curve goes down)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 1000, (batch, 1), generator=g)
    seq = (start + torch.arange(context + 1)) * 7 % vocab
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
