"""Served ``GET /users/{id}/recommendations`` under concurrent clients, against ``Engine.recommend``
called in-process one at a time in the same run.

    python bench/bench_serve.py [--items 20000] [--users 200] [--clients 16] [--seconds 10] [--rounds 3]
                                [--compare-route]

The store is ``bench_recommend``'s (synthetic 384-d embeddings through its ``bench-rows`` encoder,
LanceDB, ``weighted-concat``, ``target-attention``, 200 candidates), built once in a temporary
folder. Then:

- ``in process``: ``Engine.recommend(user, k=10)`` in a loop on one thread: the single-core rate
  a server process could at best reach;
- ``served``: ``polyrec serve``'s app (with an API key, as deployed) in a child process on a free
  127.0.0.1 port, one uvicorn worker; ``--clients`` keep-alive connections from a second child
  process (asyncio, raw HTTP/1.1, so the client costs little CPU) ask for recommendations of
  random users for ``--seconds``.

The rows run in turn, ``--rounds`` times (in process, served, in process, ...), so a drift in the
machine's speed during the run hits both alike; the table gives each row's medians over the rounds,
and the served share of the in-process rate is the median of the shares within each round.

Reported: calls/s, p50, p99 and CPU milliseconds per call of both (the server process's CPU from
/proc: less sensitive to other load on the machine than wall time; split after the table between the
event loop thread and the others, since with one GIL their sum bounds the served rate), and the served throughput as
a share of the in-process rate (the issue's goal: >= 0.8x, p99 < 100 ms with 16 clients on a
quiet machine). ``--compare-route`` adds a third row: the same server with the route's lean path
(``engine/server/fast_recommend.py``) taken out, so FastAPI's route answers (the server's own
cost per request, same run); ``--recommend-threads N`` runs the lean path's engine calls N at once
(a/b runs; it chooses 1 for this local store). Any non-200 answer fails the run. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_recommend
from bench_store import synthetic_embeddings

from polyrec.engine.engine import Engine
from polyrec.engine.plugins import build_plugin_manager

K = 10
#: one key for the run; the children (server, clients) inherit it through the environment
API_KEY = os.environ.setdefault("POLYREC_BENCH_KEY", "prk_bench-" + secrets.token_urlsafe(12))
START_TIMEOUT_S = 120.0
#: set for the server child of the --compare-route row
ROUTE_ONLY_ENV = "POLYREC_BENCH_ROUTE_ONLY"
#: --recommend-threads for the server child
THREADS_ENV = "POLYREC_BENCH_RECOMMEND_THREADS"


def _plugins() -> Any:
    return build_plugin_manager(extra=[("bench-rows", bench_recommend)], load_entry_points=False)


def _engine(workdir: Path) -> Engine:
    return Engine.from_config(bench_recommend.engine_config(workdir, True), plugin_manager=_plugins())


def build_store(workdir: Path, items: int, users: int, dim: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    matrix, _, _ = synthetic_embeddings(items, dim, rng)
    np.save(workdir / "vectors.npy", matrix)
    with _engine(workdir) as engine:
        engine.ingest({"id": f"i{row}", "vector": row} for row in range(items))
        engine.add_events(bench_recommend.synthetic_events(matrix, users, rng))
    return [f"u{user}" for user in range(users)]


def in_process(workdir: Path, users: list[str], seconds: float) -> tuple[list[float], float]:
    """Latencies (ms) of back-to-back ``recommend`` calls on one thread for about ``seconds``,
    and the CPU milliseconds they took per call."""
    latencies: list[float] = []
    with _engine(workdir) as engine:
        for user in users[:5]:  # the in-memory index and caches, as the server warms them
            engine.recommend(user, K)
        rng = random.Random(0)
        cpu = time.process_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            engine.recommend(rng.choice(users), K)
            latencies.append((time.perf_counter() - start) * 1e3)
        cpu = time.process_time() - cpu
    return latencies, cpu * 1e3 / max(1, len(latencies))


def _cpu_seconds(pid: int, task: str | None = None) -> float | None:
    """User + system CPU seconds of a process, or of one of its threads (Linux ``/proc``; None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat")
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (Linux ``/proc``; empty elsewhere)."""
    seconds: dict[int, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for task in tasks:
        value = _cpu_seconds(pid, task)
        if value is not None:
            seconds[int(task)] = value
    return seconds


def _split_ms(pid: int, before: dict[int, float], after: dict[int, float], requests: int) -> tuple[float, float]:
    """CPU ms per request of the main thread (uvicorn's event loop) and of all other threads
    (the engine's, any BLAS or OpenMP pool): where a served request's CPU goes beyond the call."""
    spent = {task: value - before.get(task, 0.0) for task, value in after.items()}
    loop = spent.pop(pid, 0.0)
    return loop * 1e3 / max(1, requests), sum(spent.values()) * 1e3 / max(1, requests)


def serve_child(workdir: Path, port: int) -> None:
    """The server process: the app over the bench store, the bench key required."""
    import uvicorn

    from polyrec.engine.server.app import create_app
    from polyrec.engine.server.auth import AccessPolicy, ApiKey, KeyRing, digest_of

    access = AccessPolicy(keys=KeyRing([ApiKey("bench", frozenset({"read", "write"}), digest_of(API_KEY))]))
    app = create_app(_engine(workdir), access=access)
    if os.environ.get(ROUTE_ONLY_ENV):  # --compare-route: FastAPI's route answers every request
        from polyrec.engine.server.fast_recommend import FastRecommend

        app.user_middleware = [layer for layer in app.user_middleware if layer.cls is not FastRecommend]
    if os.environ.get(THREADS_ENV):  # --recommend-threads: a/b runs of the lean path's thread count
        from polyrec.engine.server import fast_recommend

        fast_recommend.LOCAL_THREADS = int(os.environ[THREADS_ENV])
    # the HTTP parser and event loop `polyrec serve` gets by default; POLYREC_BENCH_HTTP forces one (a/b runs)
    http, loop = os.environ.get("POLYREC_BENCH_HTTP", "auto"), os.environ.get("POLYREC_BENCH_LOOP", "auto")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", workers=1, http=http, loop=loop)


async def _client(port: int, users: list[str], deadline: float, seed: int, out: list[Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(seed)
    try:
        while time.perf_counter() < deadline:
            user = rng.choice(users)
            request = (
                f"GET /users/{user}/recommendations?k={K} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {API_KEY}\r\n\r\n"
            )
            start = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            out.append(((time.perf_counter() - start) * 1e3, status))
    finally:
        writer.close()


def clients_child(port: int, users: list[str], clients: int, seconds: float) -> None:
    """The load: ``clients`` connections for ``seconds``; prints one JSON line of results."""
    out: list[Any] = []

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, users, deadline, seed, out) for seed in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    print(json.dumps({"seconds": time.perf_counter() - started, "results": out}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    request = urllib.request.Request(f"http://127.0.0.1:{port}/users/u0/recommendations?k={K}")
    request.add_header("Authorization", f"Bearer {API_KEY}")
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}) before answering")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer within {START_TIMEOUT_S:.0f} s")


def served(
    workdir: Path, users: list[str], clients: int, seconds: float, route_only: bool = False
) -> tuple[float, list[float], float | None, int, tuple[float, float] | None]:
    """(seconds, latencies in ms, the server's CPU ms per request, non-200 answers, that CPU split
    between the event loop and the other threads) of the served run; ``route_only``: without the
    route's lean path."""
    port = _free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    env = (
        {**os.environ, ROUTE_ONLY_ENV: "1"}
        if route_only
        else {k: v for k, v in os.environ.items() if k != ROUTE_ONLY_ENV}
    )
    server = subprocess.Popen([*me, "--serve", str(workdir), "--port", str(port)], env=env)
    try:
        _wait_ready(port, server)
        for user in users[:5]:  # the same warm-up as in process
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{port}/users/{user}/recommendations?k={K}",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                ),
                timeout=30,
            ).read()
        cpu, threads = _cpu_seconds(server.pid), _thread_cpu_seconds(server.pid)
        load = subprocess.run(
            [*me, "--clients-child", str(port), "--clients", str(clients), "--seconds", str(seconds),
             "--user-list", ",".join(users)],
            capture_output=True, text=True, check=True, timeout=seconds + 120,
        )  # fmt: skip
        after, threads_after = _cpu_seconds(server.pid), _thread_cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    report = json.loads(load.stdout.strip().splitlines()[-1])
    latencies = [latency for latency, _ in report["results"]]
    bad = sum(1 for _, status in report["results"] if status != 200)
    cpu_ms = None if cpu is None or after is None else (after - cpu) * 1e3 / max(1, len(latencies))
    split = _split_ms(server.pid, threads, threads_after, len(latencies)) if threads_after else None
    return float(report["seconds"]), latencies, cpu_ms, bad, split


@dataclass(frozen=True)
class Round:
    """One measurement of a row: calls/s, latencies (ms), CPU ms per call, the served CPU split."""

    rate: float
    latencies: list[float]
    cpu: float | None
    split: tuple[float, float] | None


def measure(
    args: argparse.Namespace, workdir: Path, users: list[str], names: list[str]
) -> tuple[list[list[Round]], int]:
    """``args.rounds`` rounds of every row, in turn, so that a drift in the machine's speed hits
    each row alike; and the number of non-200 answers."""
    rounds: list[list[Round]] = []
    bad = 0
    for _ in range(args.rounds):
        local, local_cpu = in_process(workdir, users, args.seconds)
        measured = [Round(len(local) / (sum(local) / 1e3), local, local_cpu, None)]
        for route_only in [False, True][: len(names) - 1]:
            seconds, latencies, cpu, failed, split = served(workdir, users, args.clients, args.seconds, route_only)
            measured.append(Round(len(latencies) / seconds, latencies, cpu, split))
            bad += failed
        rounds.append(measured)
    return rounds, bad


def run(args: argparse.Namespace, workdir: Path) -> int:
    users = build_store(workdir, args.items, args.users, args.dim, args.seed)
    names = ["in process, one call at a time", f"served, {args.clients} clients, 1 worker"]
    if args.compare_route:
        names.append("served, FastAPI route only")
    rounds, bad = measure(args, workdir, users, names)
    print(f"{args.items:,} items x {args.dim}, {args.users} users, recommend k={K}; medians of {args.rounds} rounds")
    print(f"{'':>34}  {'calls/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'x in-process':>12}  {'CPU ms/call':>11}")
    for column, name in enumerate(names):
        runs = [measured[column] for measured in rounds]
        rate = median([run.rate for run in runs])
        ratio = median([measured[column].rate / measured[0].rate for measured in rounds])  # within each round
        p50, p99 = np.percentile([latency for run in runs for latency in run.latencies], [50, 99])
        cpus = [run.cpu for run in runs if run.cpu is not None]
        cpu_text = f"{median(cpus):.2f}" if cpus else "-"
        print(f"{name:>34}  {rate:8.1f}  {p50:7.2f}  {p99:7.2f}  {ratio:11.2f}x  {cpu_text:>11}")
    for column, name in enumerate(names[1:], start=1):
        per_round = " ".join(f"{measured[column].rate / measured[0].rate:.2f}x" for measured in rounds)
        print(f"{name}: x in process by round {per_round}")
        splits = [split for measured in rounds if (split := measured[column].split) is not None]
        if splits:  # the event loop and the engine share one GIL: their sum bounds the rate
            loop, other = median([part[0] for part in splits]), median([part[1] for part in splits])
            print(f"{name}: server CPU ms/request {loop:.2f} event loop + {other:.2f} other threads (engine)")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"(goal: served >= 0.8x in process, p99 < 100 ms; load average {load} on {os.cpu_count()} CPUs)")
    if bad:
        print(f"{bad} answers were not 200", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each row's run in a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row, in turn; the table gives medians")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-route", action="store_true", help="add a row served by FastAPI's route alone")
    parser.add_argument(
        "--recommend-threads", type=int, help="engine threads of the lean path (default: its own choice, 1 here)"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user-list", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.recommend_threads is not None:
        os.environ[THREADS_ENV] = str(args.recommend_threads)  # the server children inherit it
    if args.serve is not None:
        serve_child(args.serve, args.port)
        return
    if args.clients_child is not None:
        clients_child(args.clients_child, args.user_list.split(","), args.clients, args.seconds)
        return
    workdir = Path(tempfile.mkdtemp(prefix="polyrec-bench-serve-"))
    try:
        raise SystemExit(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
