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

import contextlib
import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "ModelShape",
    "TrainSettings",
    "TrainLog",
    "Catalog",
    "ValidationCases",
    "build_model",
    "left_pad",
    "torch_threads",
    "hold_out_last",
    "training_windows",
    "seen_before",
    "train_model",
    "validation_ndcg",
    "embed_histories",
]


def _by_name(cls: type, config: Any, skip: int = 0) -> dict[str, Any]:
    """The dataclass's fields (after the first ``skip``) read from ``config`` by name, so the
    scorer's ``Config`` is the one place settings and their defaults are spelled."""
    return {field.name: getattr(config, field.name) for field in fields(cls)[skip:]}


@dataclass(frozen=True)
class ModelShape:
    """Everything that fixes the parameter shapes (saved beside the weights)."""

    known_items: int
    content_dim: int
    dim: int
    layers: int
    heads: int
    max_len: int
    dropout: float
    id_embeddings: bool
    content: bool
    ff_mult: int

    @classmethod
    def from_config(cls, config: Any, *, known_items: int, content_dim: int) -> ModelShape:
        """The shape the scorer's config asks for; every other field is read from it by name."""
        return cls(known_items=known_items, content_dim=content_dim, **_by_name(cls, config, skip=2))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(shape: ModelShape) -> Any:
    """A fresh ``SequenceModel`` (a ``torch.nn.Module``) of ``shape``; seed torch first."""
    return _classes()["SequenceModel"](shape)


def left_pad(torch: Any, rows: list[Any], length: int, fill: int = 0) -> tuple[Any, Any]:
    """Stack 1-d integer arrays right-aligned into ``(len(rows), length)``; returns (matrix, pad mask)."""
    matrix = np.full((len(rows), length), fill, dtype=np.int64)
    pad = np.ones((len(rows), length), dtype=bool)
    for r, row in enumerate(rows):  # numpy row copies: a per-row torch copy costs ~50x more
        n = min(len(row), length)
        if n:
            matrix[r, length - n :] = row[len(row) - n :]
            pad[r, length - n :] = False
    return torch.from_numpy(matrix), torch.from_numpy(pad)


@contextlib.contextmanager
def torch_threads(torch: Any, threads: int | None) -> Iterator[None]:
    """Run torch on ``threads`` intra-op threads for the block (None: leave as is), then restore.

    The model is small: on a busy machine, threads spinning against each other cost more
    than they save, so the scorer defaults to one.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSettings:
    """How :func:`train_model` trains. No defaults: the values come from the scorer's config only."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    label_smoothing: float
    id_dropout: float
    full_softmax_items: int
    negatives: int
    negative_power: float
    mask_seen: bool
    average_epochs: float
    seed: int

    @classmethod
    def from_config(cls, config: Any) -> TrainSettings:
        return cls(**_by_name(cls, config))


@dataclass
class TrainLog:
    """What happened during training: per-epoch loss and validation NDCG@10, the chosen epoch."""

    losses: list[float]
    validation: list[float]
    best_epoch: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Catalog:
    """The items as the model sees them: L2-normalised content rows and ID rows (0: unknown)."""

    content: np.ndarray
    id_rows: np.ndarray


@dataclass(frozen=True)
class ValidationCases:
    """Held-out next items: ``histories[i]`` (item indices, oldest first) then ``targets[i]``."""

    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def hold_out_last(
    sequences: list[np.ndarray], max_cases: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], ValidationCases]:
    """Take the last item of (up to ``max_cases``, seeded sample of) users with 3+ items as
    validation targets; those users train on the rest of their sequence."""
    eligible = [u for u, sequence in enumerate(sequences) if len(sequence) >= 3]
    if len(eligible) > max_cases:
        eligible = sorted(rng.choice(eligible, max_cases, replace=False).tolist())
    chosen = set(eligible)
    train = [sequence[:-1] if u in chosen else sequence for u, sequence in enumerate(sequences)]
    cases = ValidationCases([sequences[u][:-1] for u in eligible], np.array([sequences[u][-1] for u in eligible]))
    return train, cases


def training_windows(
    sequences: list[np.ndarray], max_len: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut every sequence into windows of at most ``max_len + 1`` items (inputs + next items);
    each comes with its prefix (the user's items before the window).

    The windows tile the sequence from its end, overlapping by one item, with a random
    shift per call so that across epochs each item is seen with different contexts.
    """
    windows: list[tuple[np.ndarray, np.ndarray]] = []
    for sequence in sequences:
        end = len(sequence)
        if end > max_len + 1:
            shift = int(rng.integers(0, max_len))
            if shift:
                windows.append((sequence[end - shift - 1 :], sequence[: end - shift - 1]))
                end -= shift
        while end > 1:
            start = max(0, end - max_len - 1)
            windows.append((sequence[start:end], sequence[:start]))
            end = start + 1 if start > 0 else 0
    return [window for window in windows if len(window[0]) > 1]


def train_model(
    model: Any, catalog: Catalog, sequences: list[np.ndarray], validation: ValidationCases, settings: TrainSettings
) -> TrainLog:
    """AdamW on next-item cross-entropy at every position of every window; keep the epoch
    with the best validation NDCG@10 and stop after ``patience`` epochs without gain.
    Without validation cases every epoch runs and the last one is kept. With
    ``average_epochs`` > 0 the weights validated and kept are an exponential moving
    average of the trained ones over about that many epochs."""
    import time

    import torch

    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(training_windows(sequences, model.shape.max_len, rng)) / settings.batch_size)
    average = _Average(model, settings.average_epochs * steps_per_epoch)
    content = torch.from_numpy(catalog.content)
    id_rows = torch.from_numpy(catalog.id_rows)
    full = len(id_rows) <= settings.full_softmax_items
    sampler = None if full else NegativeSampler(sequences, len(id_rows), settings.negatives, settings.negative_power)
    losses: list[float] = []
    scores: list[float] = []
    best: tuple[float, int, dict[str, Any] | None] = (-1.0, -1, None)
    for epoch in range(settings.epochs):
        model.train()
        windows = training_windows(sequences, model.shape.max_len, rng)
        order = rng.permutation(len(windows))
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            batch = [windows[i] for i in order[start : start + settings.batch_size]]
            loss = _batch_loss(torch, model, content, id_rows, batch, sampler, settings, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average.update()
            total += float(loss.detach()) * len(batch)
        losses.append(total / max(len(windows), 1))
        if not len(validation):  # nothing held out: train every epoch, keep the last
            log.info("epoch %d: loss %.4f (%.0f s)", epoch, losses[-1], time.perf_counter() - started)
            with average.swapped_in():
                best = (0.0, epoch, average.state())
            continue
        with average.swapped_in():
            scores.append(validation_ndcg(model, catalog, validation))
            improved = scores[-1] > best[0]
            if improved:
                best = (scores[-1], epoch, average.state())
        log.info(
            "epoch %d: loss %.4f, validation NDCG@10 %.4f (%.0f s)",
            epoch, losses[-1], scores[-1], time.perf_counter() - started,
        )  # fmt: skip
        if not improved and epoch - best[1] >= settings.patience:
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return TrainLog(losses, scores, best[1], time.perf_counter() - started)


class _Average:
    """Exponential moving average of a model's parameters over about ``horizon`` optimizer steps,
    bias-corrected (as Adam's moments) so that the initial weights carry no weight.
    ``horizon`` 0: the parameters themselves."""

    def __init__(self, model: Any, horizon: float) -> None:
        self.model = model
        self.decay = 1.0 - 1.0 / horizon if horizon > 1 else 0.0
        self.steps = 0
        self.shadow = [p.detach().clone().zero_() for p in model.parameters()] if self.decay > 0 else None

    def update(self) -> None:
        if self.shadow is None:
            return
        self.steps += 1
        for shadow, param in zip(self.shadow, self.model.parameters()):
            shadow.mul_(self.decay).add_(param.detach(), alpha=1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the block; the trained ones back afterwards."""
        if self.shadow is None or self.steps == 0:
            yield
            return
        params = list(self.model.parameters())
        saved = [p.detach().clone() for p in params]
        correction = 1.0 - self.decay**self.steps
        for param, shadow in zip(params, self.shadow):
            param.data.copy_(shadow / correction)
        try:
            yield
        finally:
            for param, value in zip(params, saved):
                param.data.copy_(value)

    def state(self) -> dict[str, Any]:
        """A copy of the model's state dict (with the averaged weights when swapped in)."""
        return {name: value.clone() for name, value in self.model.state_dict().items()}


class NegativeSampler:
    """Shared negatives for a sampled softmax, drawn with replacement from a proposal
    ``q(item)`` proportional to ``(training count + 1) ** power`` (0: uniform).

    Sampled-softmax logits are corrected by ``-log(n * q(item))`` (the log of the item's
    expected count among the ``n`` draws), for the positive as for the negatives, so the
    loss estimates the full softmax's whatever the proposal (Bengio & Senecal 2008; the
    "logQ correction" of Yi et al. 2019). Popular items are drawn more often: they are the
    negatives a full softmax pushes down hardest, so fewer draws estimate it well.
    The cost of a step depends on ``n``, not on the catalog size.
    """

    def __init__(self, sequences: list[np.ndarray], items: int, n: int, power: float) -> None:
        counts = np.bincount(np.concatenate(sequences), minlength=items) if sequences else np.zeros(items)
        weights = (counts.astype(np.float64) + 1.0) ** power
        self.q = weights / weights.sum()
        self.cumulative = np.cumsum(self.q)
        self.n = n
        self.log_expected = np.log(n * self.q).astype(np.float32)  # log of the expected count per item

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """``n`` item indices (with replacement) from the proposal."""
        drawn = np.searchsorted(self.cumulative, rng.random(self.n) * self.cumulative[-1], side="right")
        return np.minimum(drawn, len(self.q) - 1)


def _batch_loss(
    torch: Any,
    model: Any,
    content: Any,
    id_rows: Any,
    batch: list[tuple[np.ndarray, np.ndarray]],
    sampler: NegativeSampler | None,
    settings: TrainSettings,
    rng: np.random.Generator,
) -> Any:
    length = max(len(window) for window, _ in batch) - 1
    inputs, pad = left_pad(torch, [window[:-1] for window, _ in batch], length)
    targets, _ = left_pad(torch, [window[1:] for window, _ in batch], length, fill=-1)
    keep = ~pad
    prefixes = [prefix for _, prefix in batch]
    if sampler is None:  # full softmax: every item is a candidate, rows are catalog indices
        rows = torch.arange(len(id_rows))
        batch_content, batch_ids, local_inputs, local_targets = content, id_rows, inputs.clamp(min=0), targets
    else:  # only the items this batch touches: its own plus the shared negatives
        negatives = torch.from_numpy(sampler.draw(rng))
        rows = torch.unique(torch.cat([inputs[keep], targets[keep], negatives]))
        batch_content, batch_ids = content[rows], id_rows[rows]
        local_inputs = torch.searchsorted(rows, inputs.clamp(min=0))
        local_targets = torch.searchsorted(rows, targets.clamp(min=0))
    if settings.id_dropout > 0:  # teach the model to place items by content alone (cold items)
        dropped = torch.from_numpy(rng.random(len(rows)) < settings.id_dropout)
        batch_ids = batch_ids.masked_fill(dropped, 0)
    table = model.embed(batch_content, batch_ids)
    hidden, _ = model.encode(table[local_inputs], pad)
    hidden = hidden[keep]
    target = local_targets[keep]
    if sampler is None:
        logits = hidden @ table.T
        excluded = None
        if settings.mask_seen:
            excluded = seen_before(torch, rows, inputs, pad, prefixes)[keep]
            excluded[torch.arange(len(target)), target] = False  # a repeated item stays a valid answer
            logits.masked_fill_(excluded, float("-inf"))  # in place: the product's backward does not need it
        return _cross_entropy(torch, logits, target, excluded, settings.label_smoothing)
    return _sampled_cross_entropy(
        torch, hidden, table, rows, target, negatives, sampler, inputs, pad, prefixes, settings
    )


def _sampled_cross_entropy(
    torch: Any,
    hidden: Any,
    table: Any,
    rows: Any,
    target: Any,
    negatives: Any,
    sampler: NegativeSampler,
    inputs: Any,
    pad: Any,
    prefixes: list[np.ndarray],
    settings: TrainSettings,
) -> Any:
    """Cross-entropy of each position's target against the shared negatives, logQ-corrected;
    a draw of the target itself (or, with ``mask_seen``, of an item the user already had
    at that position) is left out of that position's softmax."""
    log_expected = torch.from_numpy(sampler.log_expected)
    local_negatives = torch.searchsorted(rows, negatives)
    positive = (hidden * table[target]).sum(-1) - log_expected[rows[target]]
    negative = hidden @ table[local_negatives].T - log_expected[negatives]
    excluded = local_negatives.unsqueeze(0) == target.unsqueeze(1)  # accidental hits
    if settings.mask_seen:
        drawn, inverse = torch.unique(negatives, return_inverse=True)
        seen = seen_before(torch, drawn, inputs, pad, prefixes)[~pad]  # (positions, distinct draws)
        excluded |= seen[:, inverse]
    logits = torch.cat([positive.unsqueeze(1), negative.masked_fill(excluded, float("-inf"))], dim=1)
    excluded = torch.cat([torch.zeros_like(excluded[:, :1]), excluded], dim=1)
    return _cross_entropy(torch, logits, torch.zeros(len(target), dtype=torch.long), excluded, settings.label_smoothing)


def seen_before(torch: Any, rows: Any, inputs: Any, pad: Any, prefixes: list[np.ndarray]) -> Any:
    """``(B, L, R)``: whether candidate row r was already in the user's sequence at input position t
    (in the window up to t, or anywhere before the window)."""
    batch, length = inputs.shape
    local = torch.searchsorted(rows, inputs.clamp(min=0)).clamp(max=len(rows) - 1)
    present = ~pad & (rows[local] == inputs)
    positions = torch.arange(length).expand(batch, length)
    first = torch.full((batch, len(rows)), length, dtype=torch.long)
    first.scatter_reduce_(1, local, torch.where(present, positions, length), reduce="amin")
    owners = np.repeat(np.arange(batch), [len(prefix) for prefix in prefixes])
    if len(owners):
        items = np.concatenate(prefixes).astype(np.int64)
        row_ids = rows.numpy()
        found = np.searchsorted(row_ids, items).clip(max=len(row_ids) - 1)
        hit = row_ids[found] == items
        first[torch.from_numpy(owners[hit]), torch.from_numpy(found[hit])] = -1
    return first.unsqueeze(1) <= torch.arange(length).view(1, length, 1)


def _cross_entropy(torch: Any, logits: Any, target: Any, excluded: Any, smoothing: float) -> Any:
    """Softmax cross-entropy; label smoothing spreads over the allowed (not excluded) items only."""
    log_p = logits.log_softmax(-1)
    nll = -log_p[torch.arange(len(target)), target]
    if smoothing <= 0:
        return nll.mean()
    allowed = torch.ones_like(log_p, dtype=torch.bool) if excluded is None else ~excluded
    uniform = -log_p.masked_fill(~allowed, 0.0).sum(-1) / allowed.sum(-1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def validation_ndcg(model: Any, catalog: Catalog, cases: ValidationCases, batch_size: int = 256) -> float:
    """NDCG@10 of the held-out next items, ranked over the whole catalog, history items masked."""
    import torch

    if not len(cases):
        return 0.0
    model.eval()
    total = 0.0
    with torch.no_grad():
        table = model.embed(torch.from_numpy(catalog.content), torch.from_numpy(catalog.id_rows))
        for start in range(0, len(cases), batch_size):
            histories = [h[-model.shape.max_len :] for h in cases.histories[start : start + batch_size]]
            hidden = model.encode(*embed_histories(torch, table, histories, model.shape.max_len))[0][:, -1]
            scores = hidden @ table.T
            targets = torch.from_numpy(cases.targets[start : start + batch_size])
            target_scores = scores[torch.arange(len(targets)), targets]
            for row, history in enumerate(cases.histories[start : start + batch_size]):
                scores[row, torch.from_numpy(np.asarray(history))] = float("-inf")
            ranks = (scores > target_scores[:, None]).sum(1)
            total += float(torch.where(ranks < 10, 1.0 / torch.log2(ranks + 2.0), 0.0).sum())
    model.train()
    return total / len(cases)


def embed_histories(torch: Any, table: Any, histories: list[np.ndarray], max_len: int) -> tuple[Any, Any]:
    """Left-padded ``(B, L, dim)`` rows of ``table`` for the last ``max_len`` indices of each history."""
    length = max(1, max(len(h) for h in histories))
    indices, pad = left_pad(torch, histories, min(length, max_len))
    return table[indices] * (~pad).unsqueeze(-1), pad
