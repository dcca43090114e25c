"""The Engine: one object that ingests a catalog, records events, fits and answers queries.

    engine = Engine.from_config("polyrec.toml")
    report = engine.ingest("items.jsonl")       # IngestReport(stored, cached, failures, ...)
    engine.add_events("events.csv")
    engine.fit()
    engine.recommend("alice", k=10)

The work happens in small modules: :mod:`.ingest` (readers), :mod:`.encoding` (one
encoder slot, its cache and error isolation), :mod:`.pipeline` (chunks -> field vectors
-> fused vectors), :mod:`.fusing` (fusing and re-fusing), :mod:`.training` (fit),
:mod:`.retrieval` (queries), :mod:`.assembly` (building the components), :mod:`.layout`
(collections) and :mod:`.state` (trained state). Events of items that are not (yet) in
the store are accepted: the item may arrive later, and until then its events count for
popularity but not in histories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from polyrec.contracts import (
    Event,
    History,
    PolyrecConfig,
    ProvenanceMismatchError,
    Recommendation,
    VectorRecord,
)
from polyrec.engine.assembly import Assembly, assemble
from polyrec.engine.config import load_config, resolve_config
from polyrec.engine.fusing import refuse
from polyrec.engine.ingest import EventError, read_events, read_items, source_dir
from polyrec.engine.pipeline import IngestPipeline, IngestReport
from polyrec.engine.plugins import PolyrecPluginManager, build_plugin_manager
from polyrec.engine.registry import Registry
from polyrec.engine.retrieval import DEFAULT_USER_WEIGHT, Retriever
from polyrec.engine.training import FitReport, item_matrix, run_fit

__all__ = ["DEFAULT_CHUNK_SIZE", "Engine", "FitReport", "IngestReport"]

DEFAULT_CHUNK_SIZE = 256


class Engine:
    """Facade over the components of one config. Use as a context manager to close the store."""

    def __init__(self, assembly: Assembly) -> None:
        self.assembly = assembly
        self.retriever = Retriever(assembly)

    @classmethod
    def from_config(
        cls,
        config: str | Path | Mapping[str, Any] | PolyrecConfig,
        *,
        base_dir: str | Path | None = None,
        plugin_manager: PolyrecPluginManager | None = None,
        state_dir: str | Path | None = None,
    ) -> Engine:
        """Build an engine from a config file (TOML/YAML) or mapping.

        ``base_dir`` anchors relative paths of a mapping (a file's own folder otherwise);
        ``state_dir`` is where trained state goes (default: the store's ``state_dir``).
        Nothing heavy happens here: models load on first use.
        """
        registry = Registry.from_plugin_manager(plugin_manager or build_plugin_manager())
        if isinstance(config, str | Path):
            resolved = load_config(config, registry)
        else:
            raw = config if isinstance(config, PolyrecConfig) else dict(config)
            resolved = resolve_config(raw, registry, base_dir=base_dir)
        return cls(assemble(resolved, registry, Path(state_dir) if state_dir is not None else None))

    @property
    def settings(self) -> PolyrecConfig:
        return self.assembly.settings

    # -- writing -------------------------------------------------------------------------

    def ingest(
        self,
        items: Any,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], Any] | None = None,
        rebuild: bool = False,
    ) -> IngestReport:
        """Encode, fuse and store items (a path, DataFrame or iterable of Item/dict).

        ``progress`` is called with the number of rows done after each chunk (e.g. a tqdm
        bar's ``update``). ``rebuild`` drops collections whose encoder changed and encodes
        again; without it a changed encoder raises :class:`ProvenanceMismatchError`. A
        changed fusion alone is handled by re-fusing the stored field vectors first.
        """
        self._refuse_if_fusion_changed(rebuild=rebuild)
        pipeline = IngestPipeline(self.assembly, rebuild=rebuild, base_dir=source_dir(items))
        chunks = read_items(items, chunk_size=chunk_size, id_column=self.settings.columns.item_id)
        try:
            return pipeline.run(chunks, progress)
        finally:
            self.retriever.forget_items()

    def _refuse_if_fusion_changed(self, *, rebuild: bool = False) -> None:
        try:
            self.assembly.layout.items()
        except ProvenanceMismatchError:
            # the field collections must still match (or be rebuilt): then it is the fusion
            # or the set of slots that changed, and the stored field vectors are all we need
            for encoder in self.assembly.encoders.values():
                if encoder.usable:
                    self.assembly.layout.field(encoder, rebuild=rebuild)
            refuse(self.assembly, drop=True)

    def refuse(self) -> int:
        """Fuse every stored item again from its field vectors (no encoding); return the count.

        Needed after the fusion's config changed; ``fit`` does it after training.
        """
        try:
            self.assembly.layout.items()
            drop = False
        except ProvenanceMismatchError:
            drop = True
        written = refuse(self.assembly, drop=drop)
        self.retriever.forget_items()
        return written

    def add_events(self, events: Any, *, chunk_size: int = 10_000) -> int:
        """Append events (a path, DataFrame or iterable of Event/dict) to the store's log.

        Rows are validated per chunk before the chunk is written; an invalid row raises
        :class:`EventError` with its row number (``appended`` says how many went in before).
        Events of unknown items are accepted: the item may be ingested later.
        """
        log = self.assembly.store.events()
        appended = 0
        try:
            for chunk in read_events(events, self.settings.columns, chunk_size=chunk_size):
                log.append(chunk)
                appended += len(chunk)
        except EventError as exc:
            raise EventError(exc.row, f"{exc.reason} ({appended} events appended before it)", appended) from None
        finally:
            self.retriever.forget_events()
        return appended

    def fit(self) -> FitReport:
        """Fit every trainable component on the event log and persist it (see :mod:`.training`)."""
        self._refuse_if_fusion_changed()
        report = run_fit(self.assembly)
        self.retriever.forget_items()
        return report

    # -- reading -------------------------------------------------------------------------

    def recommend(
        self,
        user: str,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        exclude_seen: bool = True,
        diversity: float = 0.0,
    ) -> list[Recommendation]:
        """Top-k items for ``user``, explained by the history items that weighed most."""
        return self.retriever.recommend(user, k, filter, exclude_seen, diversity)

    def similar(
        self, item_id: str, k: int = 10, filter: Mapping[str, Any] | None = None, diversity: float = 0.0
    ) -> list[Recommendation]:
        """The k items nearest ``item_id`` in the fused space (itself excluded)."""
        return self.retriever.similar(item_id, k, filter, diversity)

    def search(
        self,
        query: Any,
        k: int = 10,
        user: str | None = None,
        field: str | None = None,
        filter: Mapping[str, Any] | None = None,
        user_weight: float = DEFAULT_USER_WEIGHT,
        modality: str | None = None,
    ) -> list[Recommendation]:
        """Items matching a text/image/audio query in one encoder's space, optionally personalised.

        ``field`` picks the encoder slot; ``modality`` says what the query is when that cannot
        be told from the value (bytes).
        """
        return self.retriever.search(query, k, user, field, filter, user_weight, modality)

    def item_matrix(self) -> tuple[list[str], np.ndarray]:
        """All fused vectors: ids (sorted) and a float32 ``(n, dim)`` matrix."""
        return item_matrix(self.assembly)

    def count(self) -> int:
        """Items with a fused vector."""
        return self.assembly.layout.items().count()

    def get_items(self, ids: Sequence[str]) -> list[VectorRecord]:
        """Fused records (vector and metadata) of the stored ``ids``; unknown ids are left out."""
        return self.assembly.layout.items().get(list(ids))

    def events(self, user: str | None = None) -> list[Event]:
        """Logged events (of one user, if given) in the order they were appended."""
        return self.assembly.store.events().read(user)

    def event_count(self) -> int:
        return self.assembly.store.events().count()

    def history(self, user: str) -> History:
        """The user's history as the scorer sees it: stored items, oldest first, at most
        ``retrieval.history_length``."""
        return self.retriever.history(user)[0]

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self.assembly.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
