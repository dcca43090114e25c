"""The event log at scale: what GET /users and a cold user's popular items cost after a write,
against the one-column scans they replaced, measured in the same run on one LanceDB log.

    python bench/bench_event_log.py                    # 100k events
    python bench/bench_event_log.py --events 1000000   # the issue's 1M: the 'after' columns stay flat

``users()`` and ``item_counts()`` come from counts kept per fragment (event_counts.py): after an
append only the new fragment is read. Rows: the first call of a process (reads every fragment
once), then the median call after a one-event append of this process and after one of another
process (a second store object on the same directory), beside the scan of the whole column.
Also the p50 of a one-event append (a merge on the event key, so a retried append adds nothing).
With ``--engine`` (needs the plugin template's ``hashing-text`` encoder: ``make install``), the same
through an Engine over 5000 ingested items: its user list and a cold user's recommendation (the
popular items) after each one-event write. CPU seconds (this process) are printed beside wall
seconds: the machine may be shared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc

from polyrec.contracts import Event
from polyrec.plugins.stores.lancedb import LanceDBStore
from polyrec.plugins.stores.lancedb.runtime import run


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def column_scan(log: Any, column: str) -> Any:
    """What users()/item_counts() did before the counts: read one column of every event."""
    return run(log._table.query().select([column]).to_arrow(), "scan").column(column)


def scanned_users(log: Any) -> list[str]:
    return sorted(pc.unique(column_scan(log, "user")).to_pylist())


def scanned_item_counts(log: Any) -> dict[str, int]:
    counts = pc.value_counts(column_scan(log, "item"))
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=15, help="one-event appends per 'after a write' row")
    parser.add_argument("--engine", action="store_true", help="also through an Engine (hashing-text items)")
    args = parser.parse_args(argv)
    if args.engine:
        return engine_rows(args)
    with tempfile.TemporaryDirectory(prefix="polyrec-bench-events-") as directory:
        store = LanceDBStore(uri=directory, read_consistency_s=0)
        other = LanceDBStore(uri=directory, read_consistency_s=0)  # another process's writes
        log, other_log = store.events(), other.events()
        chunk = 100_000
        for start in range(0, args.events, chunk):
            stop = min(args.events, start + chunk)
            log.append(
                [Event(user=f"u{n % args.users}", item=f"i{n % 5000}", timestamp=float(n)) for n in range(start, stop)]
            )
        print(f"{log.count()} events, {args.users} users, 5000 items")
        print(f"{'operation':<44}{'wall s':>9}{'cpu s':>9}{'scan s':>9}{'ratio':>8}")
        for name, new, scan in [
            ("users (GET /users)", log.users, scanned_users),
            ("item counts (cold user)", log.item_counts, scanned_item_counts),
        ]:
            rows: dict[str, list[tuple[float, float]]] = {"first call of the process": []}
            wall, cpu, _ = timed(new)
            rows["first call of the process"].append((wall, cpu))
            for writer, label in (
                (log, "after a one-event append (this process)"),
                (other_log, "after another process's append"),
            ):
                rows[label] = []
                for k in range(args.writes):
                    writer.append([Event(user=f"new{k}", item=f"new{k}", timestamp=1e9 + k)])
                    wall, cpu, got = timed(new)
                    rows[label].append((wall, cpu))
            scan_s, _, expected = timed(lambda: scan(log))  # noqa: B023 (called at once)
            assert got == expected, f"{name}: the counts differ from a scan of the log"
            print(name)
            for label, times in rows.items():
                wall = statistics.median(t[0] for t in times)
                cpu = statistics.median(t[1] for t in times)
                print(f"  {label:<42}{wall:>9.4f}{cpu:>9.4f}{scan_s:>9.3f}{scan_s / max(wall, 1e-9):>8.1f}")
        appends = []
        for k in range(30):
            started = time.perf_counter()
            log.append([Event(user=f"u{k}", item="new", timestamp=2e9 + k)])
            appends.append(time.perf_counter() - started)
        print(f"one-event append p50: {statistics.median(appends) * 1000:.1f} ms")
        store.close()
        other.close()
    return 0


def engine_rows(args: argparse.Namespace) -> int:
    """GET /users and a cold user's recommendation as the server asks the engine, after writes."""
    from polyrec.engine.engine import Engine

    with tempfile.TemporaryDirectory(prefix="polyrec-bench-events-") as directory:
        config = {
            "store": {"plugin": "lancedb", "uri": directory, "read_consistency_s": 0},
            "encoders": {"title": {"plugin": "hashing-text", "dim": 32}},
        }
        with Engine.from_config(config) as engine:
            engine.ingest([{"id": f"i{n}", "title": f"item number {n}"} for n in range(5000)])
            for start in range(0, args.events, 100_000):
                stop = min(args.events, start + 100_000)
                engine.add_events(
                    [
                        {"user": f"u{n % args.users}", "item": f"i{n % 5000}", "timestamp": float(n)}
                        for n in range(start, stop)
                    ]
                )
            print(f"engine: {engine.event_count()} events, 5000 items")
            engine.recommend("cold", k=10)  # the first call of the process reads every fragment once
            for name, call in [
                ("event_users (GET /users)", engine.event_users),
                ("recommend a cold user (popular)", lambda: engine.recommend("cold", k=10)),
            ]:
                times = []
                for k in range(args.writes):
                    engine.add_events([{"user": f"new{k}", "item": f"i{k}", "timestamp": 1e9 + k}])
                    wall, cpu, _ = timed(call)
                    times.append((wall, cpu))
                wall = statistics.median(t[0] for t in times)
                cpu = statistics.median(t[1] for t in times)
                print(f"  {name:<42}{wall:>9.4f}{cpu:>9.4f}  (after a one-event write; median wall, cpu s)")
            log = engine.assembly.layout.events()
            scan_s, _, _ = timed(lambda: scanned_item_counts(log.inner))
            print(f"  {'the item column scan it no longer does':<42}{scan_s:>9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
