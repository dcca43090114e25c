"""Ray ingest vs in-process ingest on one machine, and the speed-up of a second encoder actor.

Same catalog (N short MiniLM texts), a fresh LanceDB directory per run, everything on the
clock (engine build, model loads, Ray's actor start-up, the commit):

1. ``Engine.ingest`` in process (the baseline; torch uses every core);
2. ``Engine.ingest(ray=...)`` with one encoder actor, then with two (``num_cpus=1`` each:
   Ray gives an actor as many torch threads as CPUs, so two actors are two parallel encoders);
3. one encoder actor with ``num_cpus=2`` (two torch threads, one model load): the other way to
   use two cores.

Prints items/s per run, this process's CPU seconds (all of the in-process run, the driver's
share of a Ray run), the Ray/in-process ratios (the issue's target: >= 0.9 with two actors on
>= 10,000 items), the 2-vs-1 actor speed-up, and the measured per-item cost that the README's
10M-item estimate uses. On a quiet 2-core machine the 10,000-item run takes about 6 minutes
(four ingests of 10,000 MiniLM texts plus Ray's start-up); on a loaded one, far longer.

Ray runs on this machine with 3 logical CPUs (2 encoder actors + the small planner, fuser,
read and write tasks) and a 300 MB object store.

    python bench/bench_ray_ingest.py              # N = 10,000
    python bench/bench_ray_ingest.py --n 500      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

WORDS = [
    "space",
    "rocket",
    "orbit",
    "pasta",
    "sauce",
    "oven",
    "jazz",
    "piano",
    "drums",
    "goal",
    "league",
    "match",
    "river",
    "forest",
    "snow",
]


def write_catalog(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            words = " ".join(WORDS[(i * k + k) % len(WORDS)] for k in range(1, 9))
            out.write(json.dumps({"id": f"i{i:06d}", "title": f"{words} {i}", "year": 1950 + i % 70}) + "\n")
    return path


def config(store: Path) -> dict:
    return {
        "store": {"plugin": "lancedb", "uri": str(store)},
        "encoders": {"title": {"plugin": "sentence-transformers"}},
    }


def timed_ingest(store: Path, catalog: Path, ray_settings: object | None = None) -> tuple[float, float, object]:
    """Wall seconds, this process's CPU seconds (all of an in-process ingest; only the driver's
    share of a Ray one) and the report."""
    from polyrec.engine.engine import Engine

    started, cpu = time.perf_counter(), time.process_time()
    with Engine.from_config(config(store)) as engine:
        report = engine.ingest(catalog, ray=ray_settings)
    return time.perf_counter() - started, time.process_time() - cpu, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="catalog size (default: 10,000)")
    args = parser.parse_args(argv)

    from polyrec.contracts import DistributedSettings
    from polyrec.engine.distributed import connect

    rows: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="polyrec-bench-ray-") as temporary:
        root = Path(temporary)
        catalog = write_catalog(root / "items.jsonl", args.n)
        seconds, cpu, report = timed_ingest(root / "in-process", catalog)
        rows.append(("in process", seconds, cpu, report.stored))  # type: ignore[attr-defined]
        with connect(DistributedSettings(num_cpus=3, object_store_mb=300)):  # a Ray of our own
            for actors, cpus in ((1, 1), (2, 1), (1, 2)):
                pool = {"actors": actors, "num_cpus": cpus}
                settings = DistributedSettings(block_rows=512, encoders={"title": pool})
                seconds, cpu, report = timed_ingest(root / f"ray-{actors}x{cpus}", catalog, settings)
                name = f"Ray, {actors} actor{'s' * (actors > 1)} x {cpus} CPU{'s' * (cpus > 1)}"
                rows.append((name, seconds, cpu, report.stored))  # type: ignore[attr-defined]
    title = f"ingest of {args.n:,} texts (MiniLM)"
    print(f"{title:<34}{'seconds':>9}{'items/s':>9}{'stored':>8}{'driver CPU s':>14}")
    for name, seconds, cpu, stored in rows:
        print(f"{name:<34}{seconds:>9.1f}{stored / seconds:>9.1f}{stored:>8}{cpu:>14.1f}")
    baseline, one, two, threads = (stored / seconds for _name, seconds, _cpu, stored in rows)
    print(f"Ray (1 actor) / in process:  {one / baseline:.2f}x")
    print(f"Ray (2 actors) / in process: {two / baseline:.2f}x   (target >= 0.9x on >= 10,000 items)")
    print(f"Ray 2 actors / 1 actor:      {two / one:.2f}x speed-up")
    print(f"Ray (1 actor, 2 CPUs) / in process: {threads / baseline:.2f}x   (2 actors / this: {two / threads:.2f}x)")
    print(f"per-item cost in process:    {1000 / baseline:.2f} ms (all included: read, encode, fuse, write)")
    print(f"CPU per item in process:     {1000 * rows[0][2] / max(rows[0][3], 1):.2f} ms (model load included)")
    if any(stored != args.n for _name, _seconds, _cpu, stored in rows):
        print("FAILED: a run did not store every item", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
