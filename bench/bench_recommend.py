"""Benchmark ``Engine.recommend`` end to end, against exact retrieval measured in the same run.

    python bench/bench_recommend.py [--items 100000,1000000] [--users 200] [--dim 384] [--no-lance-index]

By default two catalogs, 100k and 1M items (issue 12's rows), one after the other, each in
a fresh temporary store that is removed after it. The LanceDB-index row is left out above
``--lance-index-max`` items (at 1M it alone takes minutes).

The catalog is ``bench_store``'s synthetic embeddings, handed to a real engine (LanceDB
store, ``weighted-concat`` fusion, ``target-attention`` scorer, 200 candidates) through a
``bench-rows`` encoder registered here the way a third-party plugin registers: an item's
field is a row number of a saved matrix, so the bench times the engine, not a model. Each
user has 5-50 events on items of two or three clusters.

Per ``recommend(user, k=10)`` call, three ways, in alternating blocks so all see the same
machine load:

- ``engine``: the default store (unfiltered searches from its in-memory index);
- ``engine, LanceDB index``: the same directory opened with ``memory_index = false``;
- ``exact (numpy)``: the baseline. The same history, the scorer's query vector, exact top-200
  by ``matrix @ q`` and the same scorer re-ranking: what recommend returns with perfect
  retrieval and no store, minus the store's reads.

Reported: p50/p99 latency and recall@10 of each engine's top 10 against the exact one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import synthetic_embeddings

from polyrec.contracts import ComponentConfig, Encoder, hookimpl
from polyrec.engine.engine import Engine
from polyrec.engine.plugins import build_plugin_manager
from polyrec.engine.threads import one_blas_thread

K, CANDIDATES = 10, 200


class RowsConfig(ComponentConfig):
    path: Path = Field(description="a .npy matrix (rows x dim) of unit vectors")


class RowsEncoder(Encoder):
    """The item's field is a row number of ``path``; its vector is that row."""

    name: ClassVar[str] = "bench-rows"
    modality: ClassVar[str] = "vector"
    Config = RowsConfig
    config: RowsConfig

    def __init__(self, config: RowsConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.matrix = np.load(self.config.path, mmap_mode="r")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def prepare(self, value: Any) -> int:
        return int(value)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return np.asarray(self.matrix[list(batch)], dtype=np.float32)


@hookimpl
def register_encoders(register: Any) -> None:
    register(RowsEncoder)


def synthetic_events(matrix: np.ndarray, users: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Each user: 5-50 events over the items nearest two or three random items (their tastes)."""
    events = []
    for user in range(users):
        seeds = matrix[rng.choice(len(matrix), rng.integers(2, 4), replace=False)]
        pool = np.argpartition(-(matrix @ seeds.T).max(axis=1), 500)[:500]
        items = rng.choice(pool, rng.integers(5, 51), replace=False)
        events += [{"user": f"u{user}", "item": f"i{item}", "timestamp": float(t)} for t, item in enumerate(items)]
    return events


def exact_recommend(engine: Engine, matrix: np.ndarray, user: str) -> list[str]:
    """recommend() with exact top-200 retrieval by numpy over the in-memory matrix, no store reads
    for candidates (the history is read as the engine reads it)."""
    with one_blas_thread():  # the request-time BLAS setting Engine.recommend runs under
        return _exact_recommend(engine, matrix, user)


def _exact_recommend(engine: Engine, matrix: np.ndarray, user: str) -> list[str]:
    history, seen = engine.retriever.history(user)
    scorer = engine.assembly.scorer
    query = np.asarray(scorer.query_vector(history), np.float32)
    scores = matrix @ query
    pool = CANDIDATES + len(seen)
    top = np.argpartition(-scores, pool)[:pool]
    rows = [row for row in top[np.argsort(-scores[top])] if f"i{row}" not in seen][:CANDIDATES]
    ids = [f"i{row}" for row in rows]
    scored = scorer.score(history, ids, matrix[rows])
    order = np.argsort(-np.asarray(scored.scores), kind="stable")[:K]
    return [ids[i] for i in order]


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1e3, result


def engine_config(workdir: Path, memory_index: bool) -> dict[str, Any]:
    return {
        "store": {"plugin": "lancedb", "uri": str(workdir / "db"), "memory_index": memory_index},
        "encoders": {"vector": {"plugin": "bench-rows", "path": str(workdir / "vectors.npy")}},
        "fusion": {"plugin": "weighted-concat"},
        "scorer": {"plugin": "target-attention"},
        "retrieval": {"candidates": CANDIDATES},
    }


def run(args: argparse.Namespace, items: int, workdir: Path) -> None:
    rng = np.random.default_rng(args.seed)
    matrix, _, _ = synthetic_embeddings(items, args.dim, rng)
    np.save(workdir / "vectors.npy", matrix)
    plugins = build_plugin_manager(extra=[("bench-rows", sys.modules[__name__])], load_entry_points=False)
    engine = Engine.from_config(engine_config(workdir, True), plugin_manager=plugins)
    with_lance = args.lance_index and items <= args.lance_index_max
    lance_only = Engine.from_config(engine_config(workdir, False), plugin_manager=plugins) if with_lance else None
    cpu_started = time.process_time()
    ingest_s, _ = timed(lambda: engine.ingest({"id": f"i{row}", "vector": row} for row in range(items)))
    ingest_cpu = time.process_time() - cpu_started
    store_mb = sum(path.stat().st_size for path in (workdir / "db").rglob("*") if path.is_file()) / 2**20
    engine.add_events(synthetic_events(matrix, args.users, rng))
    users = [f"u{user}" for user in range(args.users)]
    first_ms, _ = timed(lambda: engine.recommend(users[0], K))  # builds the in-memory index
    print(
        f"{items:,} items x {args.dim}: engine ingest {ingest_s / 1e3:.1f} s ({ingest_cpu:.0f} CPU s), "
        f"store {store_mb:,.0f} MiB ({store_mb * 2**20 / matrix.nbytes:.2f}x the vectors); "
        f"first recommend {first_ms:.0f} ms"
    )
    calls: dict[str, Any] = {"engine": lambda u: [r.item for r in engine.recommend(u, K)]}
    if lance_only is not None:
        calls["engine, LanceDB index"] = lambda u: [r.item for r in lance_only.recommend(u, K)]
    calls["exact (numpy)"] = lambda u: exact_recommend(engine, matrix, u)
    for user in users[:5]:  # warm caches
        for call in calls.values():
            call(user)
    runs: dict[str, list[float]] = {name: [] for name in calls}
    recalls: dict[str, list[float]] = {name: [] for name in runs}
    cpu_ms: dict[str, list[float]] = {name: [] for name in runs}  # per block: steadier than wall when loaded
    for block in np.array_split(np.arange(len(users)), 4):
        answers: dict[str, dict[str, list[str]]] = {name: {} for name in runs}
        for name, call in calls.items():
            cpu_started = time.process_time()
            for index in block:
                elapsed, answers[name][users[index]] = timed(lambda u=users[index], c=call: c(u))
                runs[name].append(elapsed)
            cpu_ms[name].append((time.process_time() - cpu_started) * 1e3 / max(1, len(block)))
        for name in runs:
            for user, exact in answers["exact (numpy)"].items():
                recalls[name].append(len(set(answers[name][user]) & set(exact)) / max(1, len(exact)))
    engine.close()
    if lance_only is not None:
        lance_only.close()
    baseline = float(np.percentile(runs["exact (numpy)"], 50))
    print(f"{'recommend(k=10)':>24}  {'p50 ms':>7}  {'p99 ms':>7}  {'vs exact':>8}  CPU ms/call  recall@10")
    for name, latencies in runs.items():
        p50, p99 = np.percentile(latencies, [50, 99])
        print(
            f"{name:>24}  {p50:7.2f}  {p99:7.2f}  {p50 / baseline:7.2f}x  {np.mean(cpu_ms[name]):11.2f}"
            f"  {np.mean(recalls[name]):9.3f}"
        )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"(in-process, one call at a time; load average {load} on {os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--items", type=_sizes, default=[100_000, 1_000_000], help="catalog sizes, comma-separated (100000,1000000)"
    )
    parser.add_argument("--lance-index-max", type=int, default=200_000, help="largest catalog with the LanceDB row")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-lance-index",
        dest="lance_index",
        action="store_false",
        help="leave out the LanceDB-index row (at 1M items it alone takes minutes)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for items in args.items:
        workdir = Path(tempfile.mkdtemp(prefix="polyrec-bench-recommend-"))
        try:
            # the store takes ~1.4x the vectors, the .npy and the process ~2x more: room for 4x
            needed, free = 4 * items * args.dim * 4, shutil.disk_usage(workdir).free
            if free < needed:
                print(
                    f"{items:,} items x {args.dim}: SKIPPED, {free / 2**30:.1f} GiB free disk, "
                    f"needs {needed / 2**30:.1f}"
                )
                continue
            run(args, items, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",")]


if __name__ == "__main__":
    main()
