"""The event log at scale: what GET /users and a cold user's popular items cost, against the
full-log reads they replaced, measured in the same run on one LanceDB log.

    python bench/bench_event_log.py                    # 200k events
    python bench/bench_event_log.py --events 1000000   # the issue's 1M

Prints seconds per call and the ratio baseline / new (higher is better), and the p50 of a
one-event append (a merge on the event key, so a retried append adds nothing).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from polyrec.contracts import Event
from polyrec.plugins.stores.lancedb import LanceDBStore


def timed(call: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="polyrec-bench-events-") as directory:
        store = LanceDBStore(uri=directory)
        log = store.events()
        chunk = 100_000
        for start in range(0, args.events, chunk):
            stop = min(args.events, start + chunk)
            log.append(
                [Event(user=f"u{n % args.users}", item=f"i{n % 5000}", timestamp=float(n)) for n in range(start, stop)]
            )
        print(f"{log.count()} events, {args.users} users, 5000 items")
        rows = [
            ("users (GET /users)", lambda: sorted({e.user for e in log.read()}), log.users),
            ("item counts (cold users)", lambda: dict(Counter(e.item for e in log.read())), log.item_counts),
        ]
        print(f"{'operation':<28}{'read() s':>10}{'new s':>9}{'ratio':>8}")
        for name, baseline, new in rows:
            old_s, expected = timed(baseline, repeat=1)
            new_s, got = timed(new)
            assert got == expected, f"{name}: the new answer differs"
            print(f"{name:<28}{old_s:>10.3f}{new_s:>9.3f}{old_s / new_s:>8.1f}")
        appends = []
        for k in range(30):
            started = time.perf_counter()
            log.append([Event(user=f"u{k}", item="new", timestamp=1e9 + k)])
            appends.append(time.perf_counter() - started)
        print(f"one-event append p50: {np.percentile(appends, 50) * 1000:.1f} ms")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
