"""The ``behavior`` encoder: item vectors learnt from who interacted with what, in which order.

Method (PPMI + truncated SVD, the count-based counterpart of item2vec; Levy, Goldberg and
Dagan 2015, "Improving distributional similarity with lessons learned from word
embeddings"):

1. Events (optionally only some ``kinds``) are grouped by user and ordered by timestamp
   (ties keep the log order). Items with fewer than ``min_count`` events are dropped.
2. Co-occurrence: two items co-occur when one user interacted with both, at most
   ``window`` positions apart, weighted ``1 / distance`` (``window = 0``: the whole
   history, unweighted by distance). Very long histories are damped: each of user u's
   pairs weighs ``n_u ** -history_damping`` (0: every event counts alike, 1: every user
   counts alike; the default 0.5 makes a user's total weight grow like ``sqrt(n_u)``), so
   a few heavy users or bots do not define the space. With ``weight_by_value`` a pair also
   weighs ``sqrt(value_i * value_j)`` (negative values count as 0).
3. Positive pointwise mutual information with context-distribution smoothing ``alpha``
   (item marginals raised to ``alpha`` so rare items do not get inflated PMI):
   ``max(0, log(p(i, j) / (p_a(i) p_a(j))) - log(shift))``.
4. Truncated eigendecomposition of that sparse symmetric matrix by a seeded randomized
   range finder with power iterations (Halko, Martinsson and Tropp 2011); item vectors
   are ``U * sqrt(lambda)`` over the ``dim`` largest eigenvalues (negative ones give
   zero columns: unlike an SVD, this never turns "rarely together" into "similar"),
   L2-normalised, with every component's sign fixed, so a seed gives the same vectors
   on every run.

Why this method: it is deterministic, needs no training loop or GPU, scales with the
number of co-occurring pairs (100k events: well under a second of maths), and has no
parameters tied to a particular data set.

Items never seen (or below ``min_count``, or with no positive PMI) get an all-zero row,
the "no signal" convention of :class:`~polyrec.contracts.Encoder`; :meth:`known` says
which ids those are. Before :meth:`fit` (or :meth:`load`), :meth:`encode` raises
:class:`~polyrec.contracts.NotFittedError`. scipy is imported inside :meth:`fit`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from polyrec.contracts import (
    ComponentConfig,
    Encoder,
    Event,
    Item,
    NotFittedError,
    ProvenanceMismatchError,
    hookimpl,
)

__all__ = ["BehaviorConfig", "BehaviorEncoder", "METHOD", "register_encoders"]

#: method id, part of the fingerprint; bump it whenever the maths changes
METHOD = "ppmi-eig-v1"
_STATE_FILE = "behavior.npz"
_OVERSAMPLE = 10
_POWER_ITERATIONS = 4


class BehaviorConfig(ComponentConfig):
    dim: int = Field(default=64, gt=0, description="vector length")
    window: int = Field(default=10, ge=0, description="co-occurrence window in positions; 0 = whole history")
    min_count: int = Field(default=2, ge=1, description="events an item needs to get a vector")
    history_damping: float = Field(default=0.5, ge=0, le=1, description="pair weight n_u ** -damping")
    alpha: float = Field(default=0.75, gt=0, le=1, description="context-distribution smoothing of PMI")
    shift: float = Field(default=1.0, ge=1, description="PMI shift k: keep log(p/pp) > log(k)")
    weight_by_value: bool = Field(default=False, description="weigh pairs by sqrt(value_i * value_j)")
    kinds: tuple[str, ...] = Field(default=(), description="event kinds to learn from; empty = all")
    seed: int = Field(default=0, description="seed of the randomized eigendecomposition")


@dataclass(frozen=True)
class _EventArrays:
    """The event log as parallel arrays, sorted by user then time (stable)."""

    users: np.ndarray  # int codes
    items: np.ndarray  # int codes into item_ids
    values: np.ndarray
    item_ids: np.ndarray  # str


class BehaviorEncoder(Encoder):
    """Item id -> vector learnt from co-occurrence in user histories (see module docs)."""

    name: ClassVar[str] = "behavior"
    modality: ClassVar[str] = "behavior"
    reads_item_id: ClassVar[bool] = True
    trainable: ClassVar[bool] = True
    Config: ClassVar[type[ComponentConfig]] = BehaviorConfig
    config: BehaviorConfig

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._item_ids: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._index: dict[str, int] = {}

    # ---- state ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def item_ids(self) -> list[str]:
        """Ids that have a (non-zero) vector."""
        self._require_fitted()
        assert self._item_ids is not None
        return self._item_ids.tolist()

    @property
    def fingerprint(self) -> str:
        if self._vectors is None or self._item_ids is None:
            return f"{super().fingerprint}:{METHOD}:unfitted"
        digest = hashlib.sha256("\x1f".join(self._item_ids.tolist()).encode())
        # rounded, so last-bit BLAS differences between machines do not change the fingerprint
        digest.update(np.round(self._vectors, 5).astype(np.float32).tobytes())
        return f"{super().fingerprint}:{METHOD}:vectors={digest.hexdigest()[:16]}"

    # ---- encoding -------------------------------------------------------------------
    def prepare(self, value: Any) -> str:
        """An item id (str, or int) as a string."""
        if value is None:
            raise ValueError("item id is missing")
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise ValueError(f"item id must be a string, got {type(value).__name__}")
        text = str(value)
        if not text:
            raise ValueError("item id is empty")
        return text

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Vectors of ``batch`` item ids; all-zero rows for ids without a vector."""
        rows = self._rows(batch)
        assert self._vectors is not None
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        found = rows >= 0
        out[found] = self._vectors[rows[found]]
        return out

    def known(self, item_ids: Sequence[Any]) -> np.ndarray:
        """Boolean mask: which ids have a vector (False means their row is all zeros)."""
        return self._rows(item_ids) >= 0

    def _rows(self, item_ids: Sequence[Any]) -> np.ndarray:
        self._require_fitted()
        return np.fromiter((self._index.get(str(item), -1) for item in item_ids), dtype=np.int64, count=len(item_ids))

    def _require_fitted(self) -> None:
        if self._vectors is None:
            raise NotFittedError(
                f"encoder {self.name!r} has no item vectors yet: it learns them from events; "
                "add events, then call engine.fit() (CLI: `polyrec fit`)"
            )

    # ---- training -------------------------------------------------------------------
    def fit(self, events: Sequence[Event | Mapping[str, Any]], items: Sequence[Item] = ()) -> None:
        """Learn item vectors from ``events``; ``items`` is not needed (ids come from events)."""
        arrays = _event_arrays(events, self.config.kinds)
        arrays = _drop_rare(arrays, self.config.min_count)
        vectors = np.zeros((0, self.dim), dtype=np.float32)
        if arrays.items.size:
            cooccurrence = _cooccurrence(arrays, self.config)
            ppmi = _ppmi(cooccurrence, self.config.alpha, self.config.shift)
            vectors = _embed(ppmi, self.dim, self.config.seed)
        keep = np.flatnonzero(np.any(vectors != 0, axis=1))
        self._set_state(arrays.item_ids[keep], vectors[keep])

    def _set_state(self, item_ids: np.ndarray, vectors: np.ndarray) -> None:
        self._item_ids = np.asarray(item_ids, dtype=str)
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._index = {item: row for row, item in enumerate(self._item_ids.tolist())}

    # ---- persistence ----------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the learnt vectors to ``directory/behavior.npz``."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / _STATE_FILE,
            item_ids=self._item_ids,
            vectors=self._vectors,
            config=np.array(self.config.model_dump_json()),
            method=np.array(METHOD),
        )

    def load(self, directory: Path) -> None:
        """Restore what :meth:`save` wrote; the saved config must equal this one."""
        path = Path(directory) / _STATE_FILE
        if not path.is_file():
            raise NotFittedError(f"no saved vectors of encoder {self.name!r} at {path}; call engine.fit() first")
        with np.load(path, allow_pickle=False) as state:
            saved_config, method = str(state["config"]), str(state["method"])
            item_ids, vectors = state["item_ids"], state["vectors"]
        current = self.config.model_dump_json()
        if method != METHOD or json.loads(saved_config) != json.loads(current):
            raise ProvenanceMismatchError(
                f"behavior vectors at {path} were fitted by {method} with {saved_config}, but this encoder is "
                f"{METHOD} with {current}; re-fit (engine.fit()) to rebuild them"
            )
        self._set_state(item_ids, vectors)


# ---- the method, step by step --------------------------------------------------------


def _as_event(event: Event | Mapping[str, Any]) -> Event:
    return event if isinstance(event, Event) else Event.model_validate(event)


def _event_arrays(events: Sequence[Event | Mapping[str, Any]], kinds: tuple[str, ...]) -> _EventArrays:
    records = [_as_event(event) for event in events]
    if kinds:
        wanted = set(kinds)
        records = [event for event in records if event.kind in wanted]
    if not records:
        empty = np.zeros(0, dtype=np.int64)
        return _EventArrays(empty, empty, np.zeros(0), np.zeros(0, dtype=str))
    _, user_codes = np.unique(np.array([event.user for event in records]), return_inverse=True)
    item_ids, item_codes = np.unique(np.array([event.item for event in records]), return_inverse=True)
    values = np.fromiter((event.value for event in records), dtype=np.float64, count=len(records))
    timestamps = np.fromiter((event.timestamp for event in records), dtype=np.float64, count=len(records))
    order = np.lexsort((timestamps, user_codes))  # stable: ties keep log order
    return _EventArrays(user_codes[order], item_codes[order], values[order], item_ids)


def _drop_rare(arrays: _EventArrays, min_count: int) -> _EventArrays:
    counts = np.bincount(arrays.items, minlength=len(arrays.item_ids))
    kept_items = np.flatnonzero(counts >= min_count)
    recode = np.full(len(arrays.item_ids), -1, dtype=np.int64)
    recode[kept_items] = np.arange(len(kept_items))
    mask = recode[arrays.items] >= 0
    return _EventArrays(
        arrays.users[mask], recode[arrays.items[mask]], arrays.values[mask], arrays.item_ids[kept_items]
    )


def _event_weights(arrays: _EventArrays, config: BehaviorConfig) -> np.ndarray:
    """Per event: sqrt(user damping) [* sqrt(value)], so a pair weighs their product."""
    history = np.bincount(arrays.users)[arrays.users].astype(np.float64)
    weights = history ** (-config.history_damping / 2)
    if config.weight_by_value:
        weights = weights * np.sqrt(np.maximum(arrays.values, 0.0))
    return weights


def _cooccurrence(arrays: _EventArrays, config: BehaviorConfig):
    """Symmetric sparse item x item co-occurrence weights, zero diagonal."""
    from scipy import sparse

    n_items = len(arrays.item_ids)
    weights = _event_weights(arrays, config)
    if config.window == 0:
        n_users = int(arrays.users.max()) + 1
        histories = sparse.csr_matrix((weights, (arrays.users, arrays.items)), shape=(n_users, n_items))
        matrix = (histories.T @ histories).tocsr()
    else:
        rows, cols, data = [], [], []
        for distance in range(1, config.window + 1):
            same_user = np.flatnonzero(arrays.users[:-distance] == arrays.users[distance:])
            rows.append(arrays.items[same_user])
            cols.append(arrays.items[same_user + distance])
            data.append(weights[same_user] * weights[same_user + distance] / distance)
        upper = sparse.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
        )
        matrix = (upper + upper.T).tocsr()
    matrix.setdiag(0.0)
    matrix.eliminate_zeros()
    return matrix


def _ppmi(matrix, alpha: float, shift: float):
    """Positive (shifted) PMI of a symmetric co-occurrence matrix, smoothed marginals."""
    coo = matrix.tocoo()
    total = float(coo.data.sum())
    if total <= 0:
        return matrix
    marginals = np.asarray(matrix.sum(axis=1)).ravel()
    smoothed = np.power(marginals, alpha)
    smoothed /= smoothed.sum()
    pmi = np.log(coo.data / total) - np.log(smoothed[coo.row]) - np.log(smoothed[coo.col]) - np.log(shift)
    positive = pmi > 0
    from scipy import sparse

    return sparse.csr_matrix((pmi[positive], (coo.row[positive], coo.col[positive])), shape=matrix.shape)


def _embed(matrix, dim: int, seed: int) -> np.ndarray:
    """Rows of ``U * sqrt(lambda)`` over the top positive eigenpairs, L2-normalised; zero rows stay zero."""
    n = matrix.shape[0]
    rank = min(dim, n)
    eigenvalues, eigenvectors = _top_eigenpairs(matrix, rank, seed)
    vectors = np.zeros((n, dim), dtype=np.float64)
    vectors[:, :rank] = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 1e-12)
    vectors[norms[:, 0] <= 1e-12] = 0.0
    return vectors.astype(np.float32)


def _top_eigenpairs(matrix, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``rank`` eigenvalues (descending) and eigenvectors of a symmetric sparse matrix.

    Randomized range finder with power iterations, then the exact eigenproblem of the
    small projected matrix (Halko et al. 2011, algorithm 5.3). Signs are fixed so that
    each eigenvector's largest-magnitude entry is positive.
    """
    n = matrix.shape[0]
    width = min(n, rank + _OVERSAMPLE)
    if width == n:  # small matrix: exact
        values, vectors = np.linalg.eigh(matrix.toarray())
    else:
        basis = _orthonormal(matrix @ np.random.default_rng(seed).standard_normal((n, width)))
        for _ in range(_POWER_ITERATIONS):
            basis = _orthonormal(matrix @ basis)
        values, small = np.linalg.eigh(basis.T @ (matrix @ basis))
        vectors = basis @ small
    top = np.argsort(-values, kind="stable")[:rank]
    values, vectors = values[top], vectors[:, top]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return values, vectors * signs


def _orthonormal(block: np.ndarray) -> np.ndarray:
    """Orthonormal basis of a tall block's columns, via the eigenvectors of its small Gram
    matrix (twice, for accuracy). Cheaper than LAPACK QR, whose threaded panels stall on
    busy shared machines; directions below 1e-10 of the largest are dropped."""
    for _ in range(2):
        values, vectors = np.linalg.eigh(block.T @ block)
        keep = values > values.max() * 1e-10
        block = block @ (vectors[:, keep] / np.sqrt(values[keep]))
    return block


@hookimpl
def register_encoders(register) -> None:
    register(BehaviorEncoder)
