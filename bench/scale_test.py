"""Two-node Ray on loopback, the worker node killed part way through a distributed ingest.

    python bench/scale_test.py                  # what `make scale` runs
    python bench/scale_test.py --items 2000

Steps: ``ray start --head --node-ip-address=127.0.0.1`` (1 CPU) and a second ``ray start
--address=...`` (2 CPUs, its own process group) in a private temp dir; a catalog of
``--items`` texts (plugin template's ``hashing-text`` encoder, with a few bad rows); the
driver runs ``Engine.ingest(..., ray=address)`` while a watcher kills the worker node's whole
process group (SIGKILL) once an encoder actor has been at work on it for 3 s. Ray reschedules the lost
tasks and actors on the head; the run must finish with exactly the ids, vectors and failures
of an in-process ingest of the same catalog, and no id stored twice. Exits 1 otherwise.
Ray's usage reporting is off; everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

RAY = Path(sys.executable).with_name("ray")
NODE_START_TIMEOUT_S = 120.0
KILL_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(temp: Path) -> dict[str, str]:
    # token auth off: a throwaway cluster on this machine, whose driver would need the token file
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(temp)}


def _start_node(arguments: list[str], temp: Path, log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group: the node's processes die with it."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", "--object-store-memory=200000000", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_env(temp),
            start_new_session=True,
        )


def _kill(node: subprocess.Popen) -> None:
    if node.poll() is None:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=60)


@contextmanager
def two_nodes(temp: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A head (1 CPU) and a worker node (2 CPUs) on this machine; yields the address and the worker.
    (Ray 2.60 advertises the host's own address even when told 127.0.0.1; nothing leaves the machine.)"""
    port = free_port()
    head = _start_node(
        ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp}"], temp, log
    )
    worker = None
    try:
        address = _wait_for_head(port, head)
        worker = _start_node([f"--address={address}", "--num-cpus=2"], temp, log)
        yield address, worker
    finally:
        if worker is not None:
            _kill(worker)
        _kill(head)


def _wait_for_head(port: int, head: subprocess.Popen) -> str:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    host = socket.gethostbyname(socket.gethostname())
    while True:
        if head.poll() is not None:
            raise RuntimeError("the Ray head exited; see the log")
        for candidate in (host, "127.0.0.1"):
            try:
                socket.create_connection((candidate, port), timeout=0.5).close()
                return f"{candidate}:{port}"
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray head did not listen on port {port}")
        time.sleep(0.5)


def wait_for_nodes(ray: object, count: int) -> None:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while sum(node["Alive"] for node in ray.nodes()) < count:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} Ray nodes came up")
        time.sleep(0.5)


def write_catalog(path: Path, n: int) -> Path:
    words = ["space", "rocket", "pasta", "sauce", "jazz", "piano", "goal", "league", "river", "forest"]
    lines = []
    for i in range(n):
        row = {"id": f"i{i:05d}", "title": " ".join(words[(i * k) % 10] for k in range(1, 6)) + f" {i}"}
        if i % 500 == 7:
            row["title"] = i  # not text: a failure naming the item, the field and the plugin
        lines.append(json.dumps(row))
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def config(store: Path) -> dict:
    return {
        "store": {"plugin": "lancedb", "uri": str(store)},
        "encoders": {"title": {"plugin": "hashing-text", "dim": 64}},
        "fusion": {"plugin": "weighted-concat"},
    }


def worker_node_id(ray: object) -> str:
    """The node that is not the head (the head carries Ray's ``node:__internal_head__`` resource)."""
    for node in ray.nodes():  # type: ignore[attr-defined]
        if node["Alive"] and "node:__internal_head__" not in node["Resources"]:
            return str(node["NodeID"])
    raise RuntimeError("no worker node")


def kill_when_encoding_there(
    ray: object, worker: subprocess.Popen, node_id: str, done: threading.Event, out: dict
) -> None:
    """SIGKILL the worker node's process group once an encoder actor has worked there for a moment."""
    from ray._private.state import actors  # the GCS's actor table (the state API needs a dashboard)

    deadline, seen = time.monotonic() + KILL_TIMEOUT_S, None
    while not done.is_set() and time.monotonic() < deadline:
        there = [
            actor
            for actor in actors().values()
            if actor.get("State") == "ALIVE"
            and "SlotEncoder" in str(actor.get("ActorClassName", ""))
            and actor.get("Address", {}).get("NodeID") == node_id
        ]
        if there and seen is None:
            seen = time.monotonic()
        if seen is not None and time.monotonic() - seen > 3.0:  # blocks are in flight on it now
            os.killpg(worker.pid, signal.SIGKILL)
            out["killed_at"] = time.monotonic()
            out["actors_there"] = len(there)
            return
        time.sleep(0.2)


def _alive_after_kill(ray: object, killed: bool) -> int:
    """Alive nodes, once Ray has noticed the kill (its health checks take a few seconds)."""
    deadline = time.monotonic() + 120
    while True:
        alive = sum(node["Alive"] for node in ray.nodes())  # type: ignore[attr-defined]
        if not killed or alive == 1 or time.monotonic() > deadline:
            return alive
        time.sleep(1)


def stored(engine: object, name: str) -> dict[str, np.ndarray]:
    layout = engine.assembly.layout  # type: ignore[attr-defined]
    collection = layout.items() if name == "items" else layout.field(engine.assembly.encoders["title"])  # type: ignore[attr-defined]
    records = [record for batch in collection.scan() for record in batch]
    ids = [record.id for record in records]
    if len(ids) != len(set(ids)):
        raise AssertionError(f"{name}: {len(ids) - len(set(ids))} ids stored twice")
    return {record.id: np.asarray(record.vector) for record in records}


def run(items: int, workdir: Path) -> bool:
    import ray

    from polyrec.contracts import DistributedSettings
    from polyrec.engine.engine import Engine

    catalog = write_catalog(workdir / "items.jsonl", items)
    local_store, ray_store, temp = workdir / "local", workdir / "ray", Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    started = time.monotonic()
    with Engine.from_config(config(local_store)) as local:
        expected = local.ingest(catalog)
    print(f"in-process ingest: {expected.summary().splitlines()[0]}")
    # small blocks and small actors: work spreads over both nodes and fits on the head alone after the kill
    settings = DistributedSettings(
        block_rows=50,
        encoders={"title": {"actors": 2, "num_cpus": 0.2}},
    )
    log = workdir / "ray.log"
    try:
        with two_nodes(temp, log) as (address, worker):
            os.environ["RAY_AUTH_MODE"] = "disabled"
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            wait_for_nodes(ray, 2)
            print(f"cluster: {len(ray.nodes())} nodes at {address}, {ray.cluster_resources().get('CPU')} CPUs")
            done, killed = threading.Event(), {}
            watcher = threading.Thread(
                target=kill_when_encoding_there, args=(ray, worker, worker_node_id(ray), done, killed), daemon=True
            )
            with Engine.from_config(config(ray_store)) as engine:
                watcher.start()
                ingest_started = time.monotonic()
                report = engine.ingest(catalog, ray=settings)
                done.set()
                alive = _alive_after_kill(ray, "killed_at" in killed)
                print(f"ray ingest: {report.summary().splitlines()[0]}")
                if "killed_at" in killed:
                    after = killed["killed_at"] - ingest_started
                    print(
                        f"worker node killed {after:.1f}s into the ingest, with {killed['actors_there']} encoder "
                        f"actor(s) on it; the ingest took {report.seconds:.1f}s"
                    )
                print(f"nodes alive at the end: {alive}")
                checks = {
                    "worker node was killed part way": "killed_at" in killed
                    and killed["killed_at"] < ingest_started + report.seconds
                    and alive == 1,
                    "same report counts": (report.stored, report.encoded) == (expected.stored, expected.encoded),
                    "same failures": sorted(map(str, report.failures)) == sorted(map(str, expected.failures)),
                }
                with Engine.from_config(config(local_store)) as local:
                    for name in ("items", "field__title"):
                        want, got = stored(local, name), stored(engine, name)
                        checks[f"{name}: exact count ({len(got)}), no duplicates, same ids"] = sorted(got) == sorted(
                            want
                        )
                        checks[f"{name}: same vectors"] = sorted(got) == sorted(want) and all(
                            np.allclose(got[item_id], want[item_id], atol=1e-6) for item_id in want
                        )
            ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"total {time.monotonic() - started:.0f}s; Ray's log: {log}")
    return all(checks.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000, help="catalog size (default: 3000)")
    parser.add_argument("--workdir", type=Path, help="keep the stores and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="polyrec-scale-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        return 0 if run(args.items, workdir) else 1


if __name__ == "__main__":
    sys.exit(main())
