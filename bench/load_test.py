"""Load test of ``polyrec serve``: concurrent clients post events and ask for recommendations
(and search) against a real server on loopback, then the server is restarted and every
acknowledged event must still be there.

    python bench/load_test.py                       # 30 s, 16 clients, 1 then 2 workers (`make load`)
    python bench/load_test.py --seconds 5 --clients 4 --workers 1

Steps: start ``polyrec serve`` in a subprocess on a free 127.0.0.1 port over a fresh LanceDB
directory (MiniLM titles, ``dot`` scorer); seed a small catalog; run the clients until the
time or the request budget is spent; stop the server (SIGTERM) and start it again on the same
directory; read every user's events back. Prints throughput and p50/p99 latency per
operation; exits 1 on any 5xx, transport error or lost event. With ``--workers 1,2`` (the
default) the whole test runs once per worker count (``polyrec serve --workers N``: N processes
over one store) and a last table compares them. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LoadReport", "run_load_test", "main"]

TOPICS = {
    "space": ["rocket", "orbit", "planet", "astronaut", "galaxy", "moon"],
    "cooking": ["pasta", "sauce", "kitchen", "oven", "recipe", "spices"],
    "music": ["jazz", "saxophone", "guitar", "drums", "piano", "swing"],
    "sport": ["football", "goal", "league", "stadium", "match", "coach"],
}
QUERIES = ["a rocket to the moon", "italian pasta recipe", "jazz piano trio", "football match highlights"]
BASE_TIME = 1_700_000_000.0
START_TIMEOUT_S = 300.0
#: every request carries this key: the load test runs with authentication on, as a deployment would
API_KEY = "prk_load-test-" + secrets.token_urlsafe(16)
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class LoadReport:
    """What a run did; ``ok`` when nothing failed and nothing acknowledged was lost."""

    seconds: float = 0.0
    clients: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: list[str] = field(default_factory=list)
    acked_events: int = 0
    lost_events: int = 0
    stored_events: int = 0
    #: with several workers: seconds until an event posted through one replica was read back by every
    #: replica (measured as 12 fresh connections in a row returning it), worst of a few probes
    visible_after_s: float | None = None
    fallback_answers: int = 0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def ok(self) -> bool:
        refused = self.statuses[401] + self.statuses[403]  # the key must work for every request
        ok = self.server_errors == 0 and not self.transport_errors and self.lost_events == 0 and refused == 0
        return ok and self.requests > 0

    def summary(self) -> str:
        lines = [
            f"{self.requests} requests from {self.clients} clients in {self.seconds:.1f}s: "
            f"{self.requests / max(self.seconds, 1e-9):.1f} req/s",
            f"{'operation':<16}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}",
        ]
        for name, values in sorted(self.latencies.items()):
            p50, p99 = np.percentile(np.array(values) * 1000, [50, 99]) if values else (0.0, 0.0)
            rate = len(values) / max(self.seconds, 1e-9)
            lines.append(f"{name:<16}{len(values):>8}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}")
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        lines.append(f"statuses: {statuses}; 5xx: {self.server_errors}; transport errors: {len(self.transport_errors)}")
        lines.append(f"cold-user answers flagged as fallback: {self.fallback_answers}")
        lines.append(
            f"events acknowledged: {self.acked_events}; after a restart: {self.stored_events} stored, "
            f"{self.lost_events} acknowledged events lost"
        )
        if self.visible_after_s is not None:
            lines.append(f"an event posted through one replica was read by all within {self.visible_after_s:.2f}s")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)

    def row(self, workers: int) -> str:
        """One line of the workers table: throughput and latency over every request."""
        values = [value for latencies in self.latencies.values() for value in latencies]
        p50, p99 = np.percentile(np.array(values) * 1000, [50, 99]) if values else (0.0, 0.0)
        rate = self.requests / max(self.seconds, 1e-9)
        return (
            f"{workers:>7}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}{self.server_errors:>6}"
            f"{len(self.transport_errors):>11}{self.lost_events:>6}  {'OK' if self.ok else 'FAILED'}"
        )


# -- the server process ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, scorer: str) -> Path:
    config = directory / "polyrec.toml"
    config.write_text(
        f'[store]\nplugin = "lancedb"\nuri = "db"\n\n'
        f'[encoders.title]\nplugin = "sentence-transformers"\n\n'
        f'[scorer]\nplugin = "{scorer}"\n',
        encoding="utf-8",
    )
    return config


@contextmanager
def serve(config: Path, port: int, log: Path, workers: int = 1) -> Iterator[str]:
    """``polyrec serve`` in a subprocess; yields its URL once /health answers; SIGTERM on exit."""
    import httpx

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "POLYREC_API_KEYS": f"read+write:{API_KEY}"}
    command = [sys.executable, "-m", "polyrec.engine.cli", "serve", "--config", str(config), "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--workers", str(workers)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log}")
            try:
                if httpx.get(url + "/health", timeout=120).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health within {START_TIMEOUT_S:.0f}s; see {log}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # graceful: uvicorn finishes requests, the app closes the store
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- workload ------------------------------------------------------------------------------------


def catalog(size: int, rng: random.Random) -> list[dict[str, Any]]:
    topics = list(TOPICS)
    items = []
    for n in range(size):
        topic = topics[n % len(topics)]
        words = rng.sample(TOPICS[topic], 3)
        items.append({"id": f"item-{n}", "fields": {"title": " ".join(words) + f" {n}", "topic": topic}})
    return items


def seed(url: str, items: list[dict[str, Any]]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=600, headers=AUTH) as client:
        for start in range(0, len(items), 100):
            response = client.post("/items", json={"items": items[start : start + 100]})
            response.raise_for_status()
            if response.json()["failures"]:
                raise RuntimeError(f"seeding failed: {response.json()['failures'][:3]}")


@dataclass
class Workload:
    """Shared state of the client threads: the deadline, the request budget, what was acknowledged."""

    url: str
    users: int
    item_ids: list[str]
    deadline: float
    max_requests: int
    report: LoadReport
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0
    sequence: int = 0
    acked: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))

    def take(self) -> bool:
        with self.lock:
            if self.issued >= self.max_requests or time.monotonic() >= self.deadline:
                return False
            self.issued += 1
            return True

    def timestamps(self, n: int) -> list[float]:
        with self.lock:
            self.sequence += n
            return [BASE_TIME + self.sequence - n + i for i in range(n)]

    def record(self, operation: str, seconds: float, status: int) -> None:
        with self.lock:
            self.report.latencies[operation].append(seconds)
            self.report.statuses[status] += 1


def client_loop(work: Workload, seed_value: int) -> None:
    import httpx

    rng = random.Random(seed_value)
    with httpx.Client(base_url=work.url, timeout=60, headers=AUTH) as client:
        while work.take():
            roll = rng.random()
            operation, call = _pick(work, rng, client, roll)
            started = time.perf_counter()
            try:
                response = call()
            except httpx.TransportError as exc:
                with work.lock:
                    work.report.transport_errors.append(f"{operation}: {type(exc).__name__}: {exc}")
                continue
            work.record(operation, time.perf_counter() - started, response.status_code)
            _after(work, operation, response)


def _pick(work: Workload, rng: random.Random, client: Any, roll: float) -> tuple[str, Callable[[], Any]]:
    if roll < 0.45:
        user = f"user-{rng.randrange(work.users)}"
        stamps = work.timestamps(rng.randint(1, 3))
        events = [{"user": user, "item": rng.choice(work.item_ids), "timestamp": stamp} for stamp in stamps]
        return "post_events", lambda: _post_events(client, events)
    if roll < 0.9:
        known = rng.random() < 0.9
        user = f"user-{rng.randrange(work.users)}" if known else f"stranger-{rng.randrange(10**6)}"
        return "recommend", lambda: client.get(f"/users/{user}/recommendations", params={"k": 10})
    return "search", lambda: client.post("/search", json={"query": rng.choice(QUERIES), "k": 10})


class _Posted:
    """A response and the events it carried (to remember them once acknowledged)."""

    def __init__(self, response: Any, events: list[dict[str, Any]]) -> None:
        self.response, self.events = response, events
        self.status_code = response.status_code


def _post_events(client: Any, events: list[dict[str, Any]]) -> _Posted:
    return _Posted(client.post("/events", json={"events": events}), events)


def _after(work: Workload, operation: str, response: Any) -> None:
    if operation == "post_events" and 200 <= response.status_code < 300:
        with work.lock:
            for event in response.events:
                work.acked[event["user"]].append((event["item"], event["timestamp"]))
            work.report.acked_events += len(response.events)
    elif operation == "recommend" and response.status_code == 200 and response.json().get("fallback"):
        with work.lock:
            work.report.fallback_answers += 1


def probe_visibility(url: str, item: str, probes: int = 3, reads: int = 12, timeout_s: float = 60.0) -> float:
    """Post one event per probe user, then read it on fresh connections (each may land on any
    worker) until ``reads`` in a row return it; the worst time of the probes."""
    import httpx

    worst = 0.0
    for probe in range(probes):
        user = f"visibility-probe-{probe}"
        with httpx.Client(base_url=url, timeout=120, headers=AUTH) as client:
            client.post("/events", json={"events": [{"user": user, "item": item, "timestamp": 1.0}]}).raise_for_status()
        posted, in_a_row = time.monotonic(), 0
        while in_a_row < reads:
            with httpx.Client(base_url=url, timeout=120, headers=AUTH) as fresh:  # a new connection: any worker
                events = fresh.get(f"/users/{user}/events").json().get("events", [])
            in_a_row = in_a_row + 1 if events else 0
            if time.monotonic() - posted > timeout_s:
                raise RuntimeError(f"{user}'s event was not visible on every replica after {timeout_s:.0f}s")
        worst = max(worst, time.monotonic() - posted)
    return worst


def verify(url: str, acked: dict[str, list[tuple[str, float]]], report: LoadReport) -> None:
    """Count acknowledged events that a restarted server does not return."""
    import httpx

    with httpx.Client(base_url=url, timeout=120, headers=AUTH) as client:
        report.stored_events = int(client.get("/health").json()["events"])
        for user, events in acked.items():
            response = client.get(f"/users/{user}/events")
            response.raise_for_status()
            stored = Counter((e["item"], e["timestamp"]) for e in response.json()["events"])
            missing = Counter(events) - stored
            report.lost_events += sum(missing.values())


# -- the run --------------------------------------------------------------------------------------


def run_load_test(
    seconds: float = 30.0,
    clients: int = 16,
    users: int = 50,
    items: int = 120,
    max_requests: int = 200_000,
    scorer: str = "dot",
    workdir: Path | None = None,
    log: Callable[[str], Any] = print,
    workers: int = 1,
) -> LoadReport:
    """Run the whole test (start, seed, load, restart, verify) and return its report."""
    with tempfile.TemporaryDirectory(prefix="polyrec-load-") as temporary:
        directory = Path(workdir) if workdir is not None else Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        config, server_log = write_config(directory, scorer), directory / "server.log"
        rng = random.Random(0)
        item_list = catalog(items, rng)
        report = LoadReport(clients=clients)
        with serve(config, free_port(), server_log, workers) as url:
            log(f"server up at {url} ({workers} worker(s)); seeding {items} items")
            seed(url, item_list)
            log(f"{clients} clients for {seconds:.0f}s (at most {max_requests} requests)")
            work = Workload(url, users, [item["id"] for item in item_list], 0.0, max_requests, report)
            started = time.monotonic()
            work.deadline = started + seconds
            threads = [threading.Thread(target=client_loop, args=(work, n)) for n in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            report.seconds = time.monotonic() - started
            if workers > 1:
                report.visible_after_s = probe_visibility(url, item_list[0]["id"])
        log("server stopped; restarting it on the same store to check the events")
        with serve(config, free_port(), server_log) as url:
            verify(url, work.acked, report)
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients run (default: 30)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--users", type=int, default=50, help="distinct users (default: 50)")
    parser.add_argument("--items", type=int, default=120, help="catalog size (default: 120)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget (default: 200000)")
    parser.add_argument("--scorer", default="dot", help="scorer plugin (default: dot)")
    parser.add_argument("--workdir", type=Path, help="keep the store and server log here (default: a temp dir)")
    parser.add_argument("--workers", default="1,2", help="server processes, one run per count (default: 1,2)")
    args = parser.parse_args(argv)
    rows = []
    for workers in [int(count) for count in args.workers.split(",")]:
        workdir = args.workdir / f"workers-{workers}" if args.workdir is not None else None
        report = run_load_test(
            seconds=args.seconds,
            clients=args.clients,
            users=args.users,
            items=args.items,
            max_requests=args.max_requests,
            scorer=args.scorer,
            workdir=workdir,
            workers=workers,
        )
        print(f"== {workers} worker(s)\n{report.summary()}")
        rows.append((workers, report))
    print(f"\n{'workers':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'5xx':>6}{'transport':>11}{'lost':>6}")
    for workers, report in rows:
        print(report.row(workers))
    return 0 if all(report.ok for _workers, report in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
