"""gorch's GPT (pkg/nn: nn.GPT) as a ``torch.nn.Module``, with gorch's
parameter names, so a gorch checkpoint loads into it strictly.
:meth:`gorch.Checkpoint.torch_module` builds it from a checkpoint; this
module imports torch, so ``import gorch`` does not."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import errors


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position attends to itself
    and the ones before it: one Linear ``c_attn`` gives q, k and v side by
    side ([B, T, 3·D], split in that order), heads are [B, H, T, D/H] views,
    scores are scaled by 1/sqrt(D/H), no attention dropout; ``c_proj``
    mixes the heads."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (h.view(b, t, self.heads, d // self.heads).transpose(1, 2) for h in self.c_attn(x).split(d, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    """The position-wise MLP: ``c_fc`` (D -> 4·D), exact (erf) GELU,
    ``c_proj`` (4·D -> D)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    """A pre-norm block: ``x + Drop(Attn(LN1(x)))``, then ``x +
    Drop(MLP(LN2(x)))``; LayerNorm eps 1e-5."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=1e-5)
        self.attn = CausalSelfAttention(d_model, heads)
        self.ln_2 = nn.LayerNorm(d_model, eps=1e-5)
        self.mlp = FeedForward(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.drop(self.mlp(self.ln_2(x)))


class GPT(nn.Module):
    """gorch's decoder-only transformer (GPT-2's layout): token ``wte`` and
    learned position ``wpe`` embeddings, dropout, ``layers`` pre-norm
    :class:`Block` s ``h.0`` ..., a final LayerNorm ``ln_f`` and an untied
    ``lm_head`` without bias. Maps token ids (int64) [B, T], 0 < T <=
    context, to logits [B, T, vocab]."""

    def __init__(self, layers: int, d_model: int, heads: int, context: int, vocab: int, dropout: float = 0.0) -> None:
        super().__init__()
        if min(layers, d_model, heads, context, vocab) <= 0 or d_model % heads:
            raise errors.ConfigError(f"GPT: layers {layers}, d_model {d_model}, heads {heads}, context {context} and "
                                     f"vocab {vocab} must be positive, heads dividing d_model", op="torch_gpt.GPT")
        self.context = context
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(d_model, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or not 0 < idx.shape[1] <= self.context:
            raise errors.ShapeError(f"tokens must be [B, T] with 0 < T <= {self.context}, got {list(idx.shape)}",
                                    op="torch_gpt.GPT")
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))
