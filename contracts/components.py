"""Base classes of the four component kinds.

Each kind has one small base class; capabilities are class attributes so the engine can
ask what a component can do without calling it. A component is built from its pydantic
``Config`` (``extra="forbid"``, so a misspelt parameter is an error, not ignored).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from polyrec.contracts.media import file_content_bytes
from polyrec.contracts.records import Event, Hit, Item, SearchRows, VectorRecord

__all__ = [
    "ComponentConfig",
    "Component",
    "Encoder",
    "Fusion",
    "History",
    "Scored",
    "TrainingData",
    "Scorer",
    "Collection",
    "EventLog",
    "VectorStore",
    "recency_weights",
]


class ComponentConfig(BaseModel):
    """Base of every component config: unknown parameters are errors."""

    # defer_build (inherited): a config's validator is built when it first validates, so the
    # configs of plugins a command does not use cost nothing (every built-in registers at start)
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, protected_namespaces=())


class Component:
    """Common ground of all components: a registry ``name`` and a validated config."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    trainable: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config object or keyword parameters, not both")
        self.config = config if config is not None else self.Config(**params)

    @property
    def fingerprint(self) -> str:
        """What determines this component's output: name + config. Override to add
        model ids, weight hashes or library versions."""
        return f"{self.name}:{self.config.model_dump_json()}"

    def save(self, directory: Path) -> None:
        """Persist trained state under ``directory`` (trainable components only)."""

    def load(self, directory: Path) -> None:
        """Restore what :meth:`save` wrote."""


class Encoder(Component, ABC):
    """Turns the values of one item field into vectors.

    Required: :meth:`encode` and :attr:`dim`. Optional: :meth:`prepare` (per-item decode
    and validation; raising there fails just that item), :meth:`encode_query` (queries of
    the modalities in ``query_modalities``), :meth:`fit` (trainable encoders),
    :meth:`batch_lengths` (values' lengths, so that batches pad little).

    An all-zero row means "no signal for this item" (e.g. an item the behavior encoder
    never saw); fusion treats it as a missing field.
    """

    kind: ClassVar[str] = "encoder"
    modality: ClassVar[str] = "any"
    query_modalities: ClassVar[tuple[str, ...]] = ()
    #: the encoder reads the item id rather than a field value (behavior encoders)
    reads_item_id: ClassVar[bool] = False
    #: config keys left out of the default fingerprint: they change how fast, not which vectors
    fingerprint_ignores: ClassVar[tuple[str, ...]] = ("batch_size", "device")
    #: whether string values may name files (see :meth:`takes_files`); None: decided by modality
    reads_files: ClassVar[bool | None] = None

    @classmethod
    def takes_files(cls) -> bool:
        """Whether a ``str`` value naming an existing file is a file for this encoder: the engine then
        passes it as a :class:`~pathlib.Path` (a relative one resolved beside the catalog first) and
        the default :meth:`content_bytes` hashes the file's content. :attr:`reads_files` decides when
        set; otherwise every encoder but text ones (``modality == "text"``) and those that read item
        ids takes files, whatever its modality is called."""
        if cls.reads_item_id:
            return False
        return cls.reads_files if cls.reads_files is not None else cls.modality != "text"

    @property
    def fingerprint(self) -> str:
        """Name + config, less :attr:`fingerprint_ignores` (so a new batch size re-encodes nothing).
        Override to add model ids, weight hashes or library versions."""
        settings = self.config.model_dump_json(exclude=set(self.fingerprint_ignores))
        return f"{self.name}:{settings}"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector this encoder returns."""

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Encode prepared values; return float32 ``(len(batch), dim)``."""

    def prepare(self, value: Any) -> Any:
        """Decode/validate one raw value; raise ``ValueError`` (or any error) for bad input."""
        if value is None:
            raise ValueError("value is missing")
        return value

    def batch_lengths(self, batch: Sequence[Any]) -> Sequence[int] | None:
        """How long each prepared value is to the model (a text model: its token count), so the
        engine batches values of like length: a model that pads a batch to its longest value
        wastes the padding. ``None`` (the default): strings go by character count, other values
        keep their order. Only the order of the batches changes, never a vector."""
        return None

    def content_bytes(self, value: Any) -> bytes:
        """Bytes that identify a raw value's content, for the content-hash cache: a file by its
        content (a ``Path``, or a ``str`` naming a file when :meth:`takes_files`), so an edited
        file gets a new vector however its path is spelt; other values by their data."""
        if self.takes_files() and isinstance(value, str):
            file_bytes = file_content_bytes(value)
            if file_bytes is not None:
                return file_bytes
        return default_content_bytes(value)

    def encode_query(self, query: Any) -> np.ndarray:
        """Encode a query into this encoder's space; ``(dim,)`` float32."""
        raise NotImplementedError(f"encoder {self.name!r} does not encode queries")

    def fit(self, events: Sequence[Event], items: Sequence[Item]) -> None:
        """Learn from the event log (trainable encoders only)."""


class Fusion(Component, ABC):
    """Combines per-field vectors into one item vector.

    :meth:`bind` is called once with each field's dimension before anything else.
    ``present[field]`` is a boolean mask; rows where it is False must be ignored.
    """

    kind: ClassVar[str] = "fusion"

    def bind(self, field_dims: Mapping[str, int]) -> None:
        self.field_dims = dict(field_dims)

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the fused vectors (valid after :meth:`bind`)."""

    @abstractmethod
    def fuse(self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return float32 ``(n, dim)`` for n items."""

    def fit(
        self, fields: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray], data: TrainingData | None
    ) -> None:
        """Learn from the catalog's field vectors and, if given, the event log.

        Row i of every ``fields`` array (and ``present`` mask) is item ``data.item_ids[i]``.
        """


@dataclass
class History:
    """A user's history, oldest first: item ids, their fused vectors, timestamps."""

    item_ids: list[str]
    vectors: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass
class Scored:
    """Scores for m candidates and, per candidate, the weight of each of h history items."""

    scores: np.ndarray
    weights: np.ndarray


@dataclass
class TrainingData:
    """Event log turned into per-user sequences of item indices, oldest first.

    ``item_vectors[i]`` is the fused vector of ``item_ids[i]``; ``sequences[u]`` and
    ``timestamps[u]`` belong to ``users[u]``.
    """

    item_ids: list[str]
    item_vectors: np.ndarray
    users: list[str]
    sequences: list[np.ndarray]
    timestamps: list[np.ndarray]
    seed: int = 0
    item_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.item_index = {item: i for i, item in enumerate(self.item_ids)}


def recency_weights(timestamps: np.ndarray, half_life: float | None = None) -> np.ndarray:
    """Weights that favour recent history; by position when no half-life is given."""
    n = len(timestamps)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    if half_life:
        age = float(np.max(timestamps)) - np.asarray(timestamps, dtype=np.float64)
        weights = np.power(0.5, age / half_life)
    else:
        weights = np.power(0.5, (n - 1 - np.arange(n)) / max(n / 2, 1.0))
    return (weights / weights.sum()).astype(np.float32)


class Scorer(Component, ABC):
    """Scores candidates for a user history, with per-history-item weights as explanation."""

    kind: ClassVar[str] = "scorer"

    @abstractmethod
    def score(self, history: History, candidate_ids: Sequence[str], candidates: np.ndarray) -> Scored:
        """Score ``candidates`` (m, D) for ``history``; weights are (m, len(history))."""

    def query_vector(self, history: History) -> np.ndarray:
        """Vector used to retrieve candidates by ANN: recency-weighted mean by default."""
        weights = recency_weights(history.timestamps)
        vector = weights @ history.vectors
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).astype(np.float32)

    def fit(self, data: TrainingData) -> None:
        """Learn from the event log (trainable scorers only)."""

    @property
    def observes_events(self) -> bool:
        """True when :meth:`observe` changes scores, so the engine keeps it current at serving
        time (re-observing after new events) rather than only on ``fit``."""
        return False

    def observe(self, events: Sequence[Event]) -> None:
        """Take statistics of the whole event log: counting, not training (optional).

        The engine calls it on every ``fit`` for *every* scorer, trainable or not (before
        :meth:`fit`), with the full log; each call replaces what an earlier one saw. Events
        of items not (yet) in the store are included, so statistics are kept by item id.
        A scorer must still score without it (no statistics: as if the log were empty).
        When :attr:`observes_events` is True the engine also calls it before scoring whenever
        events were added since the last call, so serving needs no refit. Default: nothing.
        """

    def observe_item_counts(self, counts: Mapping[str, int]) -> bool:
        """Take the log's number of events per item instead of the log (optional): return True
        when that is all :meth:`observe` would have taken from it. At serving time the engine
        offers the counts first (a store keeps them, whatever the log's size) and reads the
        whole log for :meth:`observe` only when this returns False, as the default does."""
        return False


class Collection(ABC):
    """One named set of vectors of one dimension and one provenance inside a store.

    ``upsert`` validates every record before writing any (finite values, right
    dimension) so a bad record never costs what is already stored.
    """

    name: str
    dim: int
    provenance: dict[str, str]

    @abstractmethod
    def upsert(self, records: Sequence[VectorRecord]) -> None: ...

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[VectorRecord]:
        """Records for the ids that exist, in the order asked."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Delete ids; return how many existed."""

    def erase(self, ids: Sequence[str]) -> int:
        """Delete ids so that no file of the store keeps them (a right-to-erasure delete); return
        how many existed. The default is :meth:`delete`: stores that keep old versions override it."""
        return self.delete(ids)

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        """Top-k by inner product (higher is nearer), after the metadata filter."""

    def search_rows(self, vector: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> SearchRows:
        """:meth:`search`'s hits with their vectors, as columns (optional). The default asks
        :meth:`get` for the vectors; a store that has them at hand overrides it and saves
        that second lookup (the engine calls this on every recommendation)."""
        hits = self.search(vector, k, filter)
        records = {record.id: record for record in self.get([hit.id for hit in hits])}
        kept = [hit for hit in hits if hit.id in records]  # a concurrent delete may have removed some
        vectors = (
            np.stack([np.asarray(records[hit.id].vector, np.float32) for hit in kept])
            if kept
            else np.zeros((0, self.dim), np.float32)
        )
        return SearchRows(
            [hit.id for hit in kept],
            np.array([hit.score for hit in kept], dtype=np.float64),
            vectors,
            [records[hit.id].metadata for hit in kept],
        )

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def scan(self, batch_size: int = 10_000) -> Iterator[list[VectorRecord]]:
        """Every record, in batches."""

    def create_index(self) -> bool:
        """Build an ANN index if the store has one and the table is large enough."""
        return False

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Many upserts follow (an ingest): inside the block a store may put off its upkeep
        (index builds, compaction) and do it once when the block ends. Every write is still
        stored and readable when its call returns. The default changes nothing."""
        yield

    # -- distributed writes (optional: ``polyrec ingest --ray`` needs them) --

    def bulk_writer(self) -> Any:
        """A picklable writer that workers call as ``writer.write(records) -> receipt``: it stores
        the records where the store can find them but commits nothing (e.g. Lance fragments)."""
        raise NotImplementedError(f"collection {self.name!r} cannot take distributed writes")

    def commit_bulk(self, receipts: Sequence[Any], replaced: Sequence[str]) -> None:
        """Make the receipts' records visible at once, after deleting the ``replaced`` ids (an
        upsert by id: committing the same receipts' ids again never duplicates a row)."""
        raise NotImplementedError(f"collection {self.name!r} cannot take distributed writes")


class EventLog(ABC):
    """Durable log of events kept beside the vectors: appended to, and erased per user."""

    @abstractmethod
    def append(self, events: Sequence[Event]) -> int | None:
        """Add the events whose key (:func:`polyrec.contracts.event_keys.event_keys`) is not in
        the log yet: appending the same batch again adds nothing. Return how many were new
        (None: the log cannot tell), so a re-run can say it added nothing."""

    @abstractmethod
    def read(self, user: str | None = None) -> list[Event]:
        """Events (of one user, if given) in the order they were appended."""

    @abstractmethod
    def count(self) -> int: ...

    def users(self) -> list[str]:
        """The distinct users of the log, sorted (stores may answer from one column, not every event)."""
        return sorted({event.user for event in self.read()})

    def item_counts(self) -> dict[str, int]:
        """Events per item (stores may count one column instead of reading every event)."""
        counts: dict[str, int] = {}
        for event in self.read():
            counts[event.item] = counts.get(event.item, 0) + 1
        return counts

    def erase_user(self, user: str) -> int:
        """Delete every event of ``user`` so that no trace is left in the store's files (old
        versions included); return how many there were. Stores that cannot keep this default."""
        raise NotImplementedError(f"{type(self).__name__} cannot erase a user's events")


class VectorStore(Component, ABC):
    """Holds collections of vectors with metadata and provenance, and an event log."""

    kind: ClassVar[str] = "store"
    #: search is exact (brute force) rather than approximate
    exact: ClassVar[bool] = True

    @abstractmethod
    def open(self, collection: str, *, dim: int, provenance: Mapping[str, str]) -> Collection:
        """Open or create ``collection``; raise ProvenanceMismatchError if it was made
        with another provenance or dimension."""

    @abstractmethod
    def events(self) -> EventLog:
        """The store's event log (created on first use)."""

    @property
    def state_dir(self) -> Path | None:
        """Where trained component state may be saved beside the store (None: nowhere)."""
        return None

    def drop(self, collection: str) -> bool:
        """Delete ``collection`` with its vectors and provenance; return whether it existed.

        The engine drops a collection to rebuild it after its encoder or fusion changed
        (a changed provenance can never be written into the old collection). Stores that
        cannot drop keep this default, and the engine asks the user for a new store instead.
        """
        raise NotImplementedError(f"store {self.name!r} cannot drop collections")

    def close(self) -> None:
        """Release files and connections."""


def default_content_bytes(value: Any) -> bytes:
    """Stable bytes for a field value: files by content, arrays by data, rest by JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, Path):
        return value.read_bytes() if value.is_file() else str(value).encode()
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes()
    if isinstance(value, BaseModel):
        parts = [f"{k}={default_content_bytes(v).hex()}" for k, v in value.__dict__.items()]
        return "|".join(parts).encode()
    if hasattr(value, "tobytes") and hasattr(value, "size"):  # PIL images
        return repr((getattr(value, "mode", ""), value.size)).encode() + value.tobytes()
    try:
        return json.dumps(value, sort_keys=True, default=str).encode()
    except (TypeError, ValueError):
        return hashlib.sha256(repr(value).encode()).digest()
