"""The Engine: one object that ingests a catalog, records events, fits and answers queries.

    engine = Engine.from_config("polyrec.toml")
    report = engine.ingest("items.jsonl")       # IngestReport(stored, cached, failures, ...)
    engine.add_events("events.csv")
    engine.fit()
    engine.recommend("alice", k=10)

The work happens in small modules, in the order the data flows: :mod:`.readers` (files
and frames -> items and events), :mod:`.encoding` (one encoder slot, its cache and error
isolation), :mod:`.fusing` (fusing and re-fusing), :mod:`.layout` (the store's collections
and event log), :mod:`.ingest` (chunks -> field vectors -> fused vectors), :mod:`.training`
(fit), :mod:`.retrieval` (history -> queries -> scorer); beside them :mod:`.assembly`
(building the components) and :mod:`.manifest` (what was fitted, collection dims).

Every write (ingest, events, fit, re-fuse, delete) goes through this class, and every
write to the store goes through the layout, which versions it (see :mod:`.layout`).
Events of items that are not (yet) in the store are accepted: the item may arrive later,
and until then its events count for popularity but not in histories.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from polyrec.contracts import (
    DistributedSettings,
    Event,
    History,
    PolyrecConfig,
    PolyrecError,
    ProvenanceMismatchError,
    Recommendation,
    Scorer,
    VectorRecord,
    is_object_uri,
)
from polyrec.engine._deprecated import warn_moved
from polyrec.engine.assembly import Assembly, assemble
from polyrec.engine.config import load_config, resolve_config
from polyrec.engine.describe import ItemDescription, configured_components, delete_items, describe_item, warm_up
from polyrec.engine.erasure import UserErasure, export_user, forget_user
from polyrec.engine.fusing import re_fuse
from polyrec.engine.ingest import IngestPipeline, IngestReport
from polyrec.engine.layout import public_metadata
from polyrec.engine.plugins import PolyrecPluginManager, build_plugin_manager
from polyrec.engine.readers import (
    EventError,
    EventsAppended,
    read_events,
    read_items,
    read_users,
    source_dir,
)
from polyrec.engine.registry import Registry
from polyrec.engine.retrieval import DEFAULT_USER_WEIGHT, Retriever
from polyrec.engine.threads import one_blas_thread
from polyrec.engine.training import FitReport, run_fit

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Engine",
    "EventsAppended",
    "FitReport",
    "IngestReport",
    "ItemDescription",
    "UserErasure",
]

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
        ray: bool | str | DistributedSettings | None = None,
        check_fields: bool | None = None,
    ) -> IngestReport:
        """Encode, fuse and store items (a path, DataFrame or iterable of Item/dict).

        ``check_fields`` checks the config against the items before encoding anything: an
        encoder slot whose field no item has stops the ingest with a :class:`ConfigError`
        naming the slot (see :mod:`.data_check`). None (the default) checks catalogs read from
        a file or DataFrame and skips in-memory lists of items, which are usually a batch of
        updates where a slot none of them fills (items without a sound) is normal.

        ``progress`` is called with the number of rows done after each chunk (e.g. a tqdm
        bar's ``update``). ``rebuild`` drops collections whose encoder changed and encodes
        again; without it a changed encoder raises :class:`ProvenanceMismatchError`. A
        changed fusion alone is handled by re-fusing the stored field vectors first.

        ``ray`` runs the ingest on Ray (see :mod:`polyrec.engine.distributed`): True for the
        config's ``[distributed]`` table, a cluster address (``"auto"``, ``"host:port"``), or
        settings of its own; None follows ``[distributed] enabled``. The result is the same.
        """
        distributed = self._distributed_settings(ray)
        if distributed is not None:
            from polyrec.engine.distributed import ray_ingest

            return ray_ingest(self, items, distributed, rebuild=rebuild, check_fields=check_fields)
        if isinstance(items, str) and is_object_uri(items):
            raise PolyrecError(f"{items}: a catalog on object storage is read by a Ray ingest (ray=True, --ray)")
        self._re_fuse_if_fusion_changed(rebuild=rebuild)
        pipeline = IngestPipeline(self.assembly, rebuild=rebuild, base_dir=source_dir(items))
        chunks = read_items(items, chunk_size=chunk_size, id_column=self.settings.columns.item_id)
        if check_fields is None:
            check_fields = isinstance(items, str | os.PathLike) or hasattr(items, "columns")
        return pipeline.run(chunks, progress, check_fields=check_fields)

    def _distributed_settings(self, ray: bool | str | DistributedSettings | None) -> DistributedSettings | None:
        configured = self.settings.distributed
        if isinstance(ray, DistributedSettings):
            return ray
        if isinstance(ray, str):
            return configured.model_copy(update={"address": ray})
        if ray is None:
            ray = configured.enabled
        return configured if ray else None

    def _re_fuse_if_fusion_changed(self, *, rebuild: bool = False) -> None:
        try:
            self.assembly.layout.items()
        except ProvenanceMismatchError:
            # the field collections must still match (or be rebuilt): then it is the fusion
            # or the set of slots that changed, and the stored field vectors are all we need
            for encoder in self.assembly.encoders.values():
                if encoder.usable:
                    self.assembly.layout.field(encoder, rebuild=rebuild)
            re_fuse(self.assembly, drop=True)

    def re_fuse(self) -> int:
        """Fuse every stored item again from its field vectors (no encoding); return the count.

        Needed after the fusion's config changed (``ingest`` and ``fit`` do it then by
        themselves); ``fit`` also does it after training.
        """
        try:
            self.assembly.layout.items()
            drop = False
        except ProvenanceMismatchError:
            drop = True
        return re_fuse(self.assembly, drop=drop)

    def refuse(self) -> int:
        """Deprecated name of :meth:`re_fuse` ("re-fuse", not "refuse")."""
        warn_moved("Engine.refuse()", "Engine.re_fuse()")
        return self.re_fuse()

    def delete_items(self, ids: Sequence[str]) -> int:
        """Remove the items from the fused and every per-field collection; return how many
        records went (0: none was stored). Their events stay in the log."""
        return delete_items(self.assembly, [str(item_id) for item_id in ids])

    def add_events(self, events: Any, *, chunk_size: int = 10_000) -> int:
        """Append events (a path, DataFrame or iterable of Event/dict) to the store's log.

        Rows are validated per chunk before the chunk is written; an invalid row raises
        :class:`EventError` with its row number (``appended`` says how many went in before).
        Events of unknown items are accepted: the item may be ingested later.
        """
        done = EventsAppended(read=0, new=0)
        try:
            self._append_events(events, chunk_size, done, skip_invalid=False)
        except EventError as exc:
            reason = f"{exc.reason} ({done.read} events appended before it)"
            raise EventError(exc.row, reason, done.read, where=exc.where) from None
        return done.read

    def append_events(self, events: Any, *, chunk_size: int = 10_000) -> EventsAppended:
        """Append the valid events of ``events`` (as :meth:`add_events` reads them) and report
        what happened: rows read, how many were new (events already in the log - the same file
        appended again - add nothing) and each invalid row, which is left out while the rest go in."""
        done = EventsAppended(read=0, new=0)
        self._append_events(events, chunk_size, done, skip_invalid=True)
        return done

    def _append_events(self, events: Any, chunk_size: int, done: EventsAppended, skip_invalid: bool) -> None:
        """Read and append chunk by chunk, counting into ``done`` as they go in (so a raise
        midway still says how many went before it)."""
        log = self.assembly.layout.events()
        failures = done.failures if skip_invalid else None
        for chunk in read_events(events, self.settings.columns, chunk_size=chunk_size, failures=failures):
            added = log.append(chunk)
            done.read += len(chunk)
            done.new = None if done.new is None or added is None else done.new + added

    def add_users(self, users: Any, *, chunk_size: int = 10_000) -> int:
        """Store user attributes (a path - CSV/TSV/JSONL/Parquet, or a RecBole/GroupLens dataset
        with a users file - a DataFrame or an iterable of dicts); return how many were written.

        The id is in ``[columns] user_id`` (default: the events' ``user`` column, else ``id``);
        every other column is an attribute. Writing a user again replaces their attributes.
        They count at once for users with little history once ``fit`` has learnt the prior.
        """
        cold_start = self.retriever.cold_start
        return sum(
            cold_start.users.upsert(chunk) for chunk in read_users(users, self.settings.columns, chunk_size=chunk_size)
        )

    def users(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored attributes of ``ids`` (users without attributes are left out)."""
        return self.retriever.cold_start.users.get([str(user) for user in ids])

    def prior_scores(self, users: Sequence[str], item_ids: Sequence[str]) -> np.ndarray | None:
        """The attribute prior's ``(users, items)`` scores (see :mod:`.cold_start`); None before it is fitted."""
        return self.retriever.cold_start.scores([str(user) for user in users], list(item_ids))

    def fit(self) -> FitReport:
        """Fit every trainable component on the event log and persist it (see :mod:`.training`),
        then the user-attribute prior when users are stored (see :mod:`.cold_start`)."""
        self._re_fuse_if_fusion_changed()
        report = run_fit(self.assembly)
        cold_start = self.retriever.cold_start
        if cold_start.users.count():
            note = cold_start.fit(self.assembly.layout.events().read())
            report.notes += [note] if note else []
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
        with one_blas_thread():  # small products: see engine/threads.py
            return self.retriever.recommend(user, k, filter, exclude_seen, diversity)

    def similar(
        self, item_id: str, k: int = 10, filter: Mapping[str, Any] | None = None, diversity: float = 0.0
    ) -> list[Recommendation]:
        """The k items nearest ``item_id`` in the fused space (itself excluded)."""
        with one_blas_thread():
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
        exclude_seen: bool = True,
    ) -> list[Recommendation]:
        """Items matching a text/image/audio query in one encoder's space, optionally personalised.

        ``field`` picks the encoder slot; ``modality`` says what the query is when that cannot
        be told from the value (bytes). With a ``user``, the items they have seen are left out
        unless ``exclude_seen`` is False; ``user_weight`` 0 ranks by the query alone.
        """
        return self.retriever.search(query, k, user, field, filter, user_weight, modality, exclude_seen)

    def item_ids(self, batch_size: int = 10_000) -> list[str]:
        """The ids of every item with a fused vector, sorted (a catalog listing; reads the collection)."""
        return sorted(
            record.id for batch in self.assembly.layout.items().scan(batch_size=batch_size) for record in batch
        )

    def metadata_fields(self, sample: int = 1000) -> list[str]:
        """The public metadata keys of up to ``sample`` stored items, sorted: what a filter can name."""
        keys: set[str] = set()
        for batch in self.assembly.layout.items().scan(batch_size=sample):
            for record in batch:
                keys.update(public_metadata(record.metadata))
            break  # one batch is the sample
        return sorted(keys)

    def check_filter_fields(self, filter: Mapping[str, Any] | None) -> None:
        """Raise :class:`ConfigError` (key ``filter.<name>``) for filter keys that no stored item
        has: a misspelled key would otherwise match nothing, silently. Call it when a filtered
        query found nothing (it reads a sample of the catalog)."""
        from polyrec.contracts import ConfigError
        from polyrec.engine.config import _suggest

        if not filter:
            return
        known = self.metadata_fields()
        if not known:
            return  # an empty catalog: nothing to compare with
        problems = [
            (
                f"filter.{name}",
                f"no stored item has the field {name!r}; {_suggest(name, known)}known: {', '.join(known)}",
            )
            for name in filter
            if name not in known
        ]
        if problems:
            raise ConfigError(problems)

    def item_matrix(self) -> tuple[list[str], np.ndarray]:
        """All fused vectors: ids (sorted) and a float32 ``(n, dim)`` matrix."""
        return self.assembly.layout.item_matrix()

    def count(self) -> int:
        """Items with a fused vector."""
        return self.assembly.layout.items().count()

    def get_items(self, ids: Sequence[str]) -> list[VectorRecord]:
        """Fused records (vector and metadata) of the stored ``ids``; unknown ids are left out."""
        return self.assembly.layout.items().get(list(ids))

    def item_metadata(self, ids: Sequence[str], batch_size: int = 1000) -> dict[str, dict[str, Any]]:
        """Public metadata (the engine's ``_`` keys left out) of the stored ``ids`` that have a fused vector."""
        wanted = list(dict.fromkeys(str(item_id) for item_id in ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), batch_size):
            for record in self.get_items(wanted[start : start + batch_size]):
                found[record.id] = public_metadata(record.metadata)
        return found

    def describe_item(self, item_id: str) -> ItemDescription | None:
        """What the store holds of one item: its metadata, whether it is fused, and per encoder
        slot whether it has a vector; None when no collection holds it."""
        return describe_item(self.assembly, str(item_id))

    def events(self, user: str | None = None) -> list[Event]:
        """Logged events (of one user, if given) in the order they were appended."""
        return self.assembly.layout.events().read(user)

    def event_users(self) -> list[str]:
        """The distinct users of the event log, sorted."""
        return self.assembly.layout.events().users()

    def event_count(self) -> int:
        return self.assembly.layout.events().count()

    def history(self, user: str) -> History:
        """The user's history as the scorer sees it: stored items, oldest first, at most
        ``retrieval.history_length``."""
        return self.retriever.history(user)[0]

    # -- a user's data -------------------------------------------------------------------

    def forget_user(self, user: str) -> UserErasure:
        """Erase ``user``'s events and attributes from the store, its files included, and with
        them their history and their weight in popularity; trained state keeps what it learnt
        until the next ``fit`` (see :mod:`.erasure`)."""
        return forget_user(self.assembly, self.retriever.cold_start.users, user)

    def export_user(self, user: str) -> dict[str, Any]:
        """Everything stored about ``user`` (attributes, events and the history derived from them)."""
        return export_user(self.assembly, self.retriever, user)

    # -- components ----------------------------------------------------------------------

    @property
    def scorer(self) -> Scorer:
        return self.assembly.scorer

    @property
    def registry(self) -> Registry:
        """Every registered component (of the plugins this engine was built with)."""
        return self.assembly.registry

    def components(self) -> dict[str, Any]:
        """The configured plugin of every slot, with each encoder's field and modalities."""
        return configured_components(self.assembly)

    # -- lifetime ------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Open the event log and every collection, and search ``items`` once, so the first
        query does not pay for it (a server does this at startup). A collection that cannot
        be opened as configured raises its error (e.g. :class:`ProvenanceMismatchError`)."""
        warm_up(self.assembly)

    def close(self) -> None:
        self.assembly.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
