"""The torch model behind the ``self-attention`` scorer: a SASRec-style causal transformer.

Item representation (input and output share it, i.e. the embeddings are tied)::

    e(item) = content_projection(fused vector) + id_embedding(item)

Known items (seen in training) have their own ID row; every other item shares row 0
(zero at start, learnt only with ``id_dropout`` > 0), so a cold item is still placed by its
content. A sequence is left-padded to at most ``max_len`` items; positions count from the
end, so the last item always has the same position embedding whatever the length.

Blocks are pre-norm (LayerNorm -> causal multi-head attention -> residual, LayerNorm ->
GELU feed-forward -> residual). Training uses ``scaled_dot_product_attention``; when the
caller asks for attention weights (explanations) the attention is computed explicitly.

Torch is imported only when a model is built (:func:`build_model`): the classes are
defined inside a cached factory so that importing this module stays light.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ModelShape", "build_model", "left_pad"]


@dataclass(frozen=True)
class ModelShape:
    """Everything that fixes the parameter shapes (saved beside the weights)."""

    known_items: int
    content_dim: int
    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.3
    id_embeddings: bool = True
    content: bool = True
    ff_mult: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(shape: ModelShape) -> Any:
    """A fresh ``SequenceModel`` (a ``torch.nn.Module``) of ``shape``; seed torch first."""
    return _classes()["SequenceModel"](shape)


def left_pad(torch: Any, rows: list[Any], length: int, fill: int = 0) -> tuple[Any, Any]:
    """Stack 1-d integer arrays right-aligned into ``(len(rows), length)``; returns (matrix, pad mask)."""
    matrix = torch.full((len(rows), length), fill, dtype=torch.long)
    pad = torch.ones((len(rows), length), dtype=torch.bool)
    for r, row in enumerate(rows):
        n = min(len(row), length)
        if n:
            matrix[r, length - n :] = torch.as_tensor(row[len(row) - n :], dtype=torch.long)
            pad[r, length - n :] = False
    return matrix, pad


@functools.cache
def _classes() -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        """Pre-norm transformer block; returns head-averaged attention when asked."""

        def __init__(self, dim: int, heads: int, dropout: float, ff_mult: int) -> None:
            super().__init__()
            self.heads = heads
            self.norm_1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.norm_2 = nn.LayerNorm(dim)
            self.feed_forward = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
            self.drop = nn.Dropout(dropout)

        def forward(self, x: Any, allowed: Any, need_weights: bool = False) -> tuple[Any, Any]:
            batch, length, dim = x.shape
            qkv = self.qkv(self.norm_1(x)).view(batch, length, 3, self.heads, dim // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            weights = None
            if need_weights:
                logits = (q @ k.transpose(-1, -2)) / math.sqrt(dim // self.heads)
                attention = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
                mixed, weights = attention @ v, attention.mean(1)
            else:
                # no attention dropout: on CPU its random masks cost more than the whole attention
                mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            x = x + self.drop(self.out(mixed.transpose(1, 2).reshape(batch, length, dim)))
            x = x + self.drop(self.feed_forward(self.norm_2(x)))
            return x, weights

    class SequenceModel(nn.Module):
        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            if shape.dim % shape.heads:
                raise ValueError(f"dim {shape.dim} is not divisible by heads {shape.heads}")
            self.shape = shape
            # row 0: the shared "unknown item" embedding (cold items), rows 1..: known items
            self.ids = nn.Embedding(shape.known_items + 1, shape.dim) if shape.id_embeddings else None
            if self.ids is not None:
                nn.init.normal_(self.ids.weight, std=0.02 if shape.content else 0.1)
                with torch.no_grad():
                    self.ids.weight[0].zero_()
            self.projection = nn.Linear(shape.content_dim, shape.dim) if shape.content else None
            self.positions = nn.Embedding(shape.max_len, shape.dim)
            nn.init.normal_(self.positions.weight, std=0.02)
            self.input_drop = nn.Dropout(shape.dropout)
            self.blocks = nn.ModuleList(
                Block(shape.dim, shape.heads, shape.dropout, shape.ff_mult) for _ in range(shape.layers)
            )
            self.norm = nn.LayerNorm(shape.dim)

        def embed(self, content: Any, id_rows: Any) -> Any:
            """Item embeddings ``(..., dim)`` from content ``(..., D)`` and ID rows ``(...)`` (0: unknown)."""
            out = torch.zeros((*id_rows.shape, self.shape.dim), dtype=torch.float32)
            if self.ids is not None:
                out = out + self.ids(id_rows)
            if self.projection is not None:
                out = out + self.projection(content)
            return out

        def encode(self, items: Any, pad: Any, need_weights: bool = False) -> tuple[Any, Any]:
            """Hidden states ``(B, L, dim)`` of left-padded item embeddings ``(B, L, dim)``;
            with ``need_weights``, also the last block's head-averaged attention ``(B, L, L)``."""
            length = items.shape[1]
            if length > self.shape.max_len:
                raise ValueError(f"sequence of {length} items is longer than max_len {self.shape.max_len}")
            x = items + self.positions.weight[self.shape.max_len - length :].unsqueeze(0)
            x = self.input_drop(x)
            causal = torch.ones(length, length, dtype=torch.bool).tril()
            # every position may attend to itself, so padded rows never see an all-masked row (NaN)
            allowed = (causal & ~pad.unsqueeze(1)) | torch.eye(length, dtype=torch.bool)
            allowed = allowed.unsqueeze(1)
            weights = None
            for block in self.blocks:
                x, weights = block(x, allowed, need_weights)
            return self.norm(x), weights

    return {"Block": Block, "SequenceModel": SequenceModel}
