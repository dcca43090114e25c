"""Right to erasure: ``Engine.forget_user``, ``polyrec forget-user`` and ``DELETE /users/{id}``
remove a user's events from a real LanceDB directory, old versions included (no file under
the store holds the id afterwards), change the popularity counts, and leave everyone else's
recommendations working; ``GET /users/{id}/export`` returns what is stored first."""

from __future__ import annotations

from pathlib import Path

import pytest
from bow_server import CATALOG, CATALOG_ROWS, bow_app, bow_engine

from polyrec.contracts import Event

GONE = "zz-erase-me-7f3a"  # unlikely to occur in any file by chance


def files_containing(directory: Path, text: str) -> list[str]:
    needle = text.encode("utf-8")
    return sorted(
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def fill(engine, gone_item: str = "cats-3") -> None:
    engine.ingest(CATALOG_ROWS)
    # several appends: several fragments, and enough rows for the user index (index_threshold 40)
    for batch in range(6):
        events = [Event(user=f"u{n}", item=f"space-{n % 5}", timestamp=batch * 100 + n) for n in range(8)]
        events += [Event(user=GONE, item=gone_item, timestamp=batch * 100 + 50 + n) for n in range(3)]
        engine.add_events(events)


def lancedb_engine(db: Path):
    return bow_engine(db, index_threshold=40)  # the event log gets its B-tree index on user


def test_forget_user_leaves_no_trace_in_the_store_directory(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with lancedb_engine(db) as engine:
        fill(engine)
        assert files_containing(db, GONE), "the test must see the id on disk before erasure"
        popular_before = dict(engine.retriever.popularity())
        assert next(iter(popular_before)) == "cats-3"  # the erased user made it the most popular item
        engine.add_users([{"user": GONE, "occupation": f"{GONE}-job"}, {"user": "u1", "occupation": "kept"}])
        exported = engine.export_user(GONE)
        assert len(exported["events"]) == 18 and exported["user"] == GONE
        assert exported["attributes"] == {"occupation": f"{GONE}-job"}
        report = engine.forget_user(GONE)
        assert report.events == 18 and report.attributes == 1
        assert engine.users([GONE, "u1"]) == {"u1": {"occupation": "kept"}}
        assert engine.events(GONE) == [] and engine.event_count() == 48
        assert files_containing(db, GONE) == []
        popular_after = dict(engine.retriever.popularity())
        assert "cats-3" not in popular_after and popular_after["space-0"] == popular_before["space-0"]
        recommendations = engine.recommend("u1", k=3)
        assert [r.item for r in recommendations] and all(r.item.startswith("space") for r in recommendations)
        cold = engine.recommend("someone-new", k=1)
        assert cold[0].item != "cats-3" and "fallback:popularity" in cold[0].flags
        assert engine.forget_user(GONE).events == 0  # erasing again is not an error
    with lancedb_engine(db) as reopened:  # and the erasure is durable
        assert reopened.events(GONE) == [] and reopened.event_count() == 48


def test_forget_user_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from polyrec.engine.cli import main

    config = tmp_path / "polyrec.toml"
    config.write_text('[store]\nplugin = "lancedb"\nuri = "db"\n\n[encoders.title]\nplugin = "sentence-transformers"\n')
    from polyrec.engine.engine import Engine

    with Engine.from_config(config) as engine:  # events need no encoder: nothing is encoded here
        engine.add_events([Event(user=GONE, item="a", timestamp=1.0), Event(user="kept", item="a", timestamp=2.0)])
    assert main(["forget-user", GONE, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 event" in out and GONE in out
    assert files_containing(tmp_path / "db", GONE) == []
    with Engine.from_config(config) as engine:
        assert [event.user for event in engine.events()] == ["kept"]


def test_delete_and_export_over_http(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    db = tmp_path / "db"
    with TestClient(bow_app(db)) as client:
        assert client.post("/items", json={"items": CATALOG}).status_code == 200
        events = [{"user": GONE, "item": "cats-1", "timestamp": 10 + n} for n in range(3)]
        events += [{"user": "kept", "item": "space-1", "timestamp": 20}]
        assert client.post("/events", json={"events": events}).status_code == 200
        exported = client.get(f"/users/{GONE}/export")
        assert exported.status_code == 200
        body = exported.json()
        assert body["user"] == GONE and [e["item"] for e in body["events"]] == ["cats-1"] * 3
        assert body["history"] == ["cats-1"]
        assert client.get("/users").json()["users"] == ["kept", GONE]
        deleted = client.delete(f"/users/{GONE}")
        assert deleted.status_code == 200 and deleted.json() == {"user": GONE, "events": 3, "attributes": 0}
        assert client.get("/users").json()["users"] == ["kept"]
        assert client.get(f"/users/{GONE}/events").json()["total"] == 0
        assert client.get(f"/users/{GONE}/export").json()["events"] == []
        assert client.get("/users/kept/recommendations", params={"k": 2}).status_code == 200
    assert files_containing(db, GONE) == []
