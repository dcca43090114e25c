"""Running replicas follow the store (issue 14): a ``polyrec fit`` run as another process is
served without a restart, and other processes' events move what a replica derived from the log
(popularity for cold users), within the documented bound; no request fails meanwhile.

Real parts: ``polyrec serve --workers 2`` (bench/load_test.py's ``serve``), ``polyrec fit`` and
``polyrec events`` as separate processes on the same LanceDB directory, the ``mlp`` scorer (trained
state: unfitted it refuses to score), the plugin template's hashing-text encoder (no model to load).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("uvicorn", reason="the server needs polyrec[serve]")
pytest.importorskip("torch", reason="the mlp scorer trains with torch")
pytest.importorskip("polyrec_plugin_template", reason="the plugin template is not installed (make install)")

import httpx

from polyrec.engine.engine import Engine

LOAD_TEST = Path(__file__).resolve().parents[1] / "bench" / "load_test.py"
READ_CONSISTENCY_S = 0.5
#: the documented bound is two intervals plus loading the state; generous for a loaded machine
FOLLOW_TIMEOUT_S = 90.0
#: answers in a row, each on a new connection (either worker), that must agree
IN_A_ROW = 8

CONFIG = f"""
[store]
plugin = "lancedb"
uri = "db"
read_consistency_s = {READ_CONSISTENCY_S}

[encoders.title]
plugin = "hashing-text"
dim = 32

[scorer]
plugin = "mlp"
epochs = 2
projection = 8
hidden = 8
"""


def load_test_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polyrec_load_test_for_reload", LOAD_TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def polyrec(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polyrec.engine.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


class Watch:
    """Asks for a cold user's and an item's recommendations in a loop; keeps every failure."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.failures: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            while not self._stop.is_set():
                for path in ("/users/nobody/recommendations?k=3", "/items/i001/similar?k=3"):
                    try:
                        status = client.get(path).status_code
                    except httpx.TransportError as exc:
                        self.failures.append(f"{path}: {exc!r}")
                        continue
                    self.requests += 1
                    if status != 200:
                        self.failures.append(f"{path}: {status}")
                time.sleep(0.05)


def answers_agree(url: str, headers: dict[str, str], path: str, expected: object, read: object) -> bool:
    """``IN_A_ROW`` answers in a row, each on a fresh connection, read as ``expected``."""
    for _ in range(IN_A_ROW):
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            response = client.get(path)
        if response.status_code != 200 or read(response.json()) != expected:  # type: ignore[operator]
            return False
    return True


def wait_until(check: object, what: str) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > FOLLOW_TIMEOUT_S:
            pytest.fail(f"the server did not follow {what} within {FOLLOW_TIMEOUT_S:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


def ranked(body: dict) -> list[tuple[str, float]]:
    return [(result["item"], round(result["score"], 4)) for result in body["results"]]


def test_replicas_follow_a_fit_and_other_processes_events(tmp_path: Path) -> None:
    load_test = load_test_module()
    config = tmp_path / "polyrec.toml"
    config.write_text(CONFIG, encoding="utf-8")
    topics = ["rocket moon orbit", "cat kitten whiskers", "espresso coffee crema", "jazz saxophone swing"]
    items = [{"id": f"i{n:03d}", "title": f"{topics[n % 4]} number {n}"} for n in range(24)]
    events = [
        {"user": f"u{user}", "item": f"i{(user % 4) + 4 * step:03d}", "timestamp": float(step)}
        for user in range(12)
        for step in range(5)
    ]
    with Engine.from_config(config) as engine:
        assert engine.ingest(items).stored == 24
        engine.add_events(events)
    counts = Counter(event["item"] for event in events)
    popular = min(counts, key=lambda item: (-counts[item], item))

    with load_test.serve(config, load_test.free_port(), tmp_path / "server.log", workers=2) as url:
        headers = load_test.AUTH
        unfitted = httpx.get(f"{url}/users/u0/recommendations?k=5", headers=headers, timeout=60)
        assert unfitted.status_code == 409, unfitted.text  # the mlp scorer has no trained state yet
        cold = httpx.get(f"{url}/users/nobody/recommendations?k=3", headers=headers, timeout=60).json()
        assert cold["fallback"] == "popularity" and cold["results"][0]["item"] == popular

        with Watch(url, headers) as watch:
            polyrec("fit", "--config", str(config), cwd=tmp_path)  # another process trains the scorer
            with Engine.from_config(config) as fitted:
                expected = [(rec.item, round(rec.score, 4)) for rec in fitted.recommend("u0", k=5)]
            assert expected
            fit_seen = wait_until(
                lambda: answers_agree(url, headers, "/users/u0/recommendations?k=5", expected, ranked),
                "the new fit",
            )

            time.sleep(10 * READ_CONSISTENCY_S)  # every worker has swapped by now: what follows is not a reload
            assert answers_agree(
                url, headers, "/users/nobody/recommendations?k=3", popular, lambda body: body["results"][0]["item"]
            )
            # another process makes i023 the most popular item: the cold user's fallback follows
            more = tmp_path / "more.jsonl"
            lines = [json.dumps({"user": f"v{n}", "item": "i023", "timestamp": 99.0}) for n in range(40)]
            more.write_text("\n".join(lines) + "\n", encoding="utf-8")
            polyrec("events", str(more), "--config", str(config), cwd=tmp_path)

            events_seen = wait_until(
                lambda: answers_agree(
                    url,
                    headers,
                    "/users/nobody/recommendations?k=3",
                    "i023",
                    lambda body: body["results"][0]["item"],
                ),
                "other processes' events",
            )
        assert watch.requests > 0
        assert watch.failures == [], watch.failures[:10]
    print(f"fit followed in {fit_seen:.1f}s, events in {events_seen:.1f}s, {watch.requests} requests watched")


def test_a_state_still_being_written_keeps_the_old_engine_and_nothing_else_reloads(tmp_path: Path) -> None:
    """The follower's looks, one by one (in process): its own writes and an unchanged state
    load nothing; a scorer state file half written by a running fit keeps the engine serving,
    and the finished file is loaded at the next look."""
    from fastapi.testclient import TestClient

    from polyrec.engine.server.app import create_app

    config = tmp_path / "polyrec.toml"
    config.write_text(CONFIG, encoding="utf-8")
    items = [{"id": f"i{n:03d}", "title": f"topic {n % 3} title {n}"} for n in range(12)]
    events = [{"user": f"u{n % 4}", "item": f"i{n:03d}", "timestamp": float(n)} for n in range(12)]
    with Engine.from_config(config) as engine:
        engine.ingest(items)
        engine.add_events(events)
        engine.fit()
        state = engine.assembly.manifest.component_dir("scorer")
    assert state is not None
    with TestClient(create_app(config)) as client:
        ctx = client.app.state.polyrec  # type: ignore[attr-defined]
        follower, first = ctx.follower, ctx.engine
        assert follower is not None and follower.interval == READ_CONSISTENCY_S
        follower.stop()  # its thread stops looking: the looks below are the only ones
        before = client.get("/users/u0/recommendations?k=3").json()["results"]
        assert client.post("/events", json={"events": [{"user": "u9", "item": "i001"}]}).status_code == 200
        uploads = state.parent / "uploads"  # item files posted as bytes are kept in the state folder
        uploads.mkdir(exist_ok=True)
        (uploads / "i001.png").write_bytes(b"an uploaded picture")
        follower.look()
        assert ctx.engine is first and follower.reloads == 0  # events and uploads are no new trained state

        saved = next(state.iterdir())
        whole = saved.read_bytes()
        saved.write_bytes(whole[: len(whole) // 2])  # a fit caught writing the scorer's state
        follower.look()
        assert ctx.engine is first and follower.reloads == 0
        assert client.get("/users/u0/recommendations?k=3").json()["results"] == before

        saved.write_bytes(whole)  # the fit is done
        follower.look()
        assert ctx.engine is not first and follower.reloads == 1
        assert client.get("/users/u0/recommendations?k=3").status_code == 200
        follower.look()
        assert follower.reloads == 1
