"""The driver of a distributed ingest: build the Ray Data pipeline, run it, commit, report.

    catalog files --read (one task per file, polyrec's readers)--> blocks of items
        --SlotEncoder per slot (an actor pool each: the model loads once per actor; the first
          slot's actors plan first: hashes, unchanged items, cached field vectors; the last
          slot's actors fuse after)--> --CollectionSink (workers write fragments)--> driver commits

The driver opens (and with ``rebuild`` drops) every collection before the run, so workers
only ever open existing ones; it commits the field collections first and ``items`` last.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyrec.contracts import PolyrecError
from polyrec.contracts.distributed import ActorPoolSettings, DistributedSettings
from polyrec.engine.distributed.catalog import catalog_files, check_catalog_fields, check_chunks
from polyrec.engine.distributed.sink import BlockResult, CollectionSink
from polyrec.engine.distributed.stages import Job, SlotEncoder, read_file, read_rows
from polyrec.engine.ingest import IngestReport
from polyrec.engine.layout import ITEMS

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["catalog_files", "connect", "ray_ingest", "require_ray"]

# Ray Data retries a task lost with its node and restarts a lost actor (its defaults:
# max_retries=-1 for tasks, max_restarts=-1 and max_task_retries=-1 for actor pools)
#: CPUs asked for by a read or write task: they mostly wait on I/O
_TASK_CPUS = 0.25
#: the pool that plans and fuses when no encoder is usable
_NO_ENCODER_POOL = ActorPoolSettings(num_cpus=_TASK_CPUS)


#: Ray 2.60 reads it once, at import: "0" makes every node address of this process's Ray the
#: loopback one (Ray's default on macOS and Windows), where otherwise a Ray started here
#: advertises the host's interface address even when told 127.0.0.1
#: (``ray._private.services.get_node_ip_address``: ``_node_ip_address="127.0.0.1"`` and
#: ``--node-ip-address`` are resolved back to that interface address). It also refuses a
#: ``ray start --address`` worker node, so it is set only for a Ray of our own.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: non-empty once :func:`require_ray` set it (for the Ray Python imported in this process)
_loopback_set_here: list[bool] = []


def require_ray(*, own_cluster: bool = False) -> Any:
    """Import Ray with usage reporting off (nothing leaves the machine unless asked for);
    ``own_cluster``: the Ray is started here, on 127.0.0.1 only (:data:`LOOPBACK_ONLY`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if own_cluster and "ray" not in sys.modules and LOOPBACK_ONLY not in os.environ:
        os.environ[LOOPBACK_ONLY] = "0"
        _loopback_set_here.append(True)
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise PolyrecError(f"distributed ingest needs Ray: pip install 'polyrec[ray]' ({exc})") from None
    return ray


@contextmanager
def connect(settings: DistributedSettings) -> Iterator[Any]:
    """Ray, connected: to ``settings.address``, else a Ray started here on 127.0.0.1 (stopped
    afterwards). A Ray the caller already initialised is used as it is and left running."""
    ray = require_ray(own_cluster=settings.address is None)
    if ray.is_initialized():
        yield ray
        return
    if settings.address is not None and _loopback_set_here:
        raise PolyrecError(
            f"this process imported Ray for a Ray of its own, on 127.0.0.1 only ({LOOPBACK_ONLY}=0): "
            f"connect to the cluster at {settings.address} from a new process"
        )
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if settings.address is not None:
        ray.init(address=settings.address, **options)
    else:
        memory = settings.object_store_mb * 1024 * 1024 if settings.object_store_mb else None
        # "local": a Ray of our own, even when another one runs on this machine
        ray.init(address="local", num_cpus=settings.num_cpus, object_store_memory=memory, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass
class _Catalog:
    """What the pipeline reads: catalog files (local or objects), or blocks read on the driver."""

    files: list[str] | None
    blocks: list[Any]
    id_column: str
    storage_options: dict[str, str] | None

    @classmethod
    def read(cls, engine: Engine, items: Any, block_rows: int, check_fields: bool | None) -> _Catalog:
        """List the files (or read an in-memory source in blocks), and run the in-process ingest's
        config-vs-data check when asked (None: for files, objects and DataFrames, as in-process),
        all before any Ray work: a config written for another schema stops here."""
        from polyrec.engine.readers import read_items

        options = dict(getattr(engine.assembly.store.config, "storage_options", None) or {}) or None
        id_column = engine.settings.columns.item_id
        files = catalog_files(items, options)
        check = check_fields if check_fields is not None else files is not None or hasattr(items, "columns")
        if files is not None:
            if check:
                check_catalog_fields(
                    engine.assembly, files, block_rows=block_rows, id_column=id_column, storage_options=options
                )
            return cls(files, [], id_column, options)
        chunks = list(read_items(items, chunk_size=block_rows, id_column=id_column))
        if check:
            check_chunks(engine.assembly, chunks)
        return cls(None, list(read_rows(iter(chunks), 0, None)), id_column, options)

    def dataset(self, ray: Any, block_rows: int) -> Any:
        if self.files is None:
            return ray.data.from_arrow(self.blocks)
        listing = ray.data.from_items([{"path": path, "index": index} for index, path in enumerate(self.files)])
        blocks = listing.map_batches(
            read_file,
            fn_kwargs={"block_rows": block_rows, "id_column": self.id_column, "storage_options": self.storage_options},
            batch_size=1,
            num_cpus=_TASK_CPUS,
        )
        # a file's rows in blocks of block_rows: left alone, Ray Data coalesces all a read task
        # yields into one block (up to its target_max_block_size, 128 MiB) that one encoder actor
        # gets whole, so a second actor idles and the fuser waits for the last item. Non-strict,
        # it is fused into the read tasks (no stage of its own) when it asks for what they ask
        # for; Ray 2.60's repartition() takes no remote args, and as a stage of its own its task
        # would ask a whole CPU and wait for ever beside the actors on a small node.
        split = blocks.repartition(target_num_rows_per_block=block_rows)
        operator = split._logical_plan.dag  # the (frozen) StreamingRepartition operator
        if "ray_remote_args" not in {field.name for field in dataclasses.fields(operator)}:
            return blocks  # another Ray: coalesced blocks (slower with several actors, never stuck)
        object.__setattr__(operator, "ray_remote_args", {"num_cpus": _TASK_CPUS})
        return split


def _bulk_writer(collection: Any) -> Any:
    make = getattr(collection, "bulk_writer", None)
    if make is None:
        raise PolyrecError(
            f"collection {collection.name!r}: the store cannot take distributed writes "
            "(use the lancedb store, on a directory or object storage every Ray node reaches)"
        )
    return make()


def ray_ingest(
    engine: Engine,
    items: Any,
    settings: DistributedSettings,
    *,
    rebuild: bool = False,
    check_fields: bool | None = None,
) -> IngestReport:
    """Ingest ``items`` as a Ray Data pipeline into the engine's collections; see the module doc.

    ``check_fields`` runs the in-process ingest's config-vs-data check first, on the driver
    (None: for catalogs read from files, object storage or a DataFrame, as in-process)."""
    ray = require_ray(own_cluster=settings.address is None)
    started = time.perf_counter()
    catalog = _Catalog.read(engine, items, settings.block_rows, check_fields)
    engine._re_fuse_if_fusion_changed(rebuild=rebuild)
    assembly = engine.assembly
    layout = assembly.layout
    slots = tuple(slot for slot, encoder in assembly.encoders.items() if encoder.usable)
    collections = {f"field__{slot}": layout.field(assembly.encoders[slot], rebuild=rebuild) for slot in slots}
    collections[ITEMS] = layout.items(rebuild=rebuild)
    writers = {name: _bulk_writer(collection) for name, collection in collections.items()}
    job = Job(assembly.resolved, assembly.manifest.directory, slots, settings.block_rows)
    with connect(settings):
        _check_resources(ray, settings, slots)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        dataset = build_pipeline(ray, catalog, job, settings)
        sink = CollectionSink(slots, writers, ITEMS)
        dataset.write_datasink(sink, ray_remote_args={"num_cpus": _TASK_CPUS})
        results: list[BlockResult] = sink.results
    report = _commit(collections, results)
    report.seconds = time.perf_counter() - started
    return report


def build_pipeline(ray: Any, catalog: _Catalog, job: Job, settings: DistributedSettings) -> Any:
    """The dataset up to the sink: read, then one actor pool per slot that encodes (the first
    one plans before, the last one fuses after)."""
    dataset = catalog.dataset(ray, job.block_rows)
    stage = _Stages(ray, job.block_rows)
    if not job.slots:  # nothing to encode: one small pool plans and fuses (every item fails as in-process)
        return stage(dataset, SlotEncoder, (job, None, True, True), _NO_ENCODER_POOL)
    last = len(job.slots) - 1
    for index, slot in enumerate(job.slots):
        dataset = stage(dataset, SlotEncoder, (job, slot, index == 0, index == last), settings.pool(slot))
    return dataset


class _Stages:
    """Adds one actor-pool stage to a dataset: pool size and resources from its settings."""

    def __init__(self, ray: Any, block_rows: int) -> None:
        self.ray, self.block_rows = ray, block_rows

    def __call__(self, dataset: Any, stage: type, args: tuple, pool: ActorPoolSettings) -> Any:
        return dataset.map_batches(
            stage,
            fn_constructor_args=args,
            batch_format="pyarrow",
            batch_size=pool.batch_size or self.block_rows,
            compute=self.ray.data.ActorPoolStrategy(size=pool.actors),
            num_cpus=pool.num_cpus,
            num_gpus=pool.num_gpus or None,
        )


def _check_resources(ray: Any, settings: DistributedSettings, slots: tuple[str, ...]) -> None:
    """Every actor pool must fit in the cluster at once, else Ray would wait for ever."""
    pools = {f"encoders.{slot}": settings.pool(slot) for slot in slots} or {"planner": _NO_ENCODER_POOL}
    available = ray.cluster_resources()
    for resource, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        wanted = sum(pool.actors * getattr(pool, key) for pool in pools.values()) + (
            _TASK_CPUS if key == "num_cpus" else 0
        )
        have = float(available.get(resource, 0))
        if wanted > have:
            asked = ", ".join(f"{name}: {pool.actors} x {getattr(pool, key)}" for name, pool in pools.items())
            raise PolyrecError(
                f"[distributed] asks for {wanted:g} {resource}s at once ({asked}, and {_TASK_CPUS} for reading "
                f"and writing) but the Ray cluster has {have:g}: lower actors or {key} per pool"
            )


def _commit(collections: dict[str, Any], results: list[BlockResult]) -> IngestReport:
    """Commit every collection's fragments (fields first, ``items`` last) and sum the report."""
    report = IngestReport()
    for result in results:
        report.add(result.report)
    for name in sorted(collections, key=lambda name: name == ITEMS):
        receipts = [receipt for result in results for receipt in result.receipts.get(name, [])]
        replaced = [item_id for result in results for item_id in result.replaced.get(name, [])]
        collections[name].commit_bulk(receipts, replaced)
    return report
