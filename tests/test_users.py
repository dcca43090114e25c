"""User attributes through the engine (memory and LanceDB stores), the CLI and the readers,
and the attribute prior serving users with no or few events."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine_fakes import plugin_manager

from polyrec.engine.cli import main
from polyrec.engine.engine import Engine
from polyrec.engine.users import UserError

WORDS = {"left": ["apple", "pear", "plum", "fig", "kiwi"], "right": ["bolt", "nut", "gear", "axle", "cog"]}


def _catalog() -> list[dict[str, Any]]:
    return [
        {"id": f"{side}{i}", "title": f"{word} thing"} for side, words in WORDS.items() for i, word in enumerate(words)
    ]


def _users(count: int = 60) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    return [
        {"user": f"u{n}", "side": "left" if n % 2 == 0 else "right", "age": int(rng.integers(18, 70))}
        for n in range(count)
    ]


def _events(users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each user picks three of their side's items; everyone picks the shared "left0" too."""
    rng = np.random.default_rng(1)
    events = []
    for user in users:
        for step, i in enumerate(rng.choice(5, size=3, replace=False)):
            events.append({"user": user["user"], "item": f"{user['side']}{i}", "timestamp": 10.0 * step})
    return events


def _engine(tmp_path: Path, store: str) -> Engine:
    config = {
        "store": {"plugin": store, **({"uri": str(tmp_path / "store")} if store == "lancedb" else {})},
        "encoders": {"title": {"plugin": "bag-of-words"}},
        "scorer": {"plugin": "dot"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config, plugin_manager=plugin_manager(), state_dir=tmp_path / "state")


@pytest.mark.parametrize("store", ["memory", "lancedb"])
def test_attributes_give_new_users_a_starting_point(tmp_path: Path, store: str) -> None:
    users = _users()
    with _engine(tmp_path, store) as engine:
        engine.ingest(_catalog())
        engine.add_events(_events(users))
        assert engine.add_users(pd.DataFrame(users)) == len(users)
        assert engine.users(["u1", "nobody"]) == {"u1": {"side": "right", "age": users[1]["age"]}}
        report = engine.fit()
        assert any(note.startswith("user_prior: ") for note in report.notes)
        # two new users, no events: their attributes decide
        engine.add_users([{"user": "new-left", "side": "left"}, {"user": "new-right", "side": "right", "age": 30}])
        left = engine.recommend("new-left", k=5)
        right = engine.recommend("new-right", k=5)
        assert all("prior:attributes" in r.flags for r in left + right)
        assert {r.item[:-1] for r in left} == {"left"} and {r.item[:-1] for r in right} == {"right"}
        # a user without attributes still gets the popularity fallback
        assert all("fallback:popularity" in r.flags for r in engine.recommend("stranger", k=3))
        # with one event of the other side, the history joins in (and the flag says the prior did too)
        engine.add_events([{"user": "new-right", "item": "left1", "timestamp": 1.0}])
        mixed = engine.recommend("new-right", k=9)
        assert "prior:attributes" in mixed[0].flags and "left1" not in {r.item for r in mixed}
    # the prior is saved with the trained state: a fresh engine on the same store serves it
    if store == "lancedb":
        with _engine(tmp_path, store) as engine:
            assert {r.item[:-1] for r in engine.recommend("new-left", k=5)} == {"left"}


def test_deleted_items_and_forgotten_users_leave_the_prior_s_answers(tmp_path: Path) -> None:
    users = _users()
    with _engine(tmp_path, "memory") as engine:
        engine.ingest(_catalog())
        engine.add_events(_events(users))
        engine.add_users(pd.DataFrame(users))
        engine.fit()
        engine.add_users([{"user": "new-left", "side": "left"}])
        first = [r.item for r in engine.recommend("new-left", k=3)]
        assert engine.delete_items(first[:1]) >= 1  # the prior still scores it: the store decides
        after = engine.recommend("new-left", k=5)
        assert first[0] not in {r.item for r in after} and all("prior:attributes" in r.flags for r in after)
        # forgetting the user erases their attributes: they are a stranger again (popularity)
        assert engine.forget_user("new-left").attributes == 1
        assert engine.users(["new-left"]) == {}
        assert all("prior:attributes" not in r.flags for r in engine.recommend("new-left", k=3))


def test_updating_a_user_replaces_their_attributes(tmp_path: Path) -> None:
    with _engine(tmp_path, "memory") as engine:
        engine.add_users([{"id": "a", "side": "left", "tags": ["x", "y"]}])  # "id" when there is no "user" column
        engine.add_users([{"id": "a", "side": "right"}])
        assert engine.users(["a"]) == {"a": {"side": "right"}}
        with pytest.raises(UserError, match=r"users row 1: .*no 'user'"):
            engine.add_users([{"name": "no id here"}])


def test_users_files_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    frame = pd.DataFrame(
        [{"customer": "007", "city": "Oslo", "bio": "likes long walks"}, {"customer": "8", "city": None}]
    )
    (tmp_path / "users.csv").write_text(frame.to_csv(index=False))
    frame.to_parquet(tmp_path / "users.parquet")
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
    config = tmp_path / "polyrec.toml"
    store = (tmp_path / "store").as_posix()
    config.write_text(
        f'[store]\nplugin = "lancedb"\nuri = "{store}"\n[encoders.title]\nplugin = "hashing-text"\n'
        '[columns]\nuser_id = "customer"\n'
    )
    for name in ("users.csv", "users.parquet", "users.jsonl"):
        assert main(["users", str(tmp_path / name), "-c", str(config)]) == 0
        assert "stored 2 users" in capsys.readouterr().out
    with _lancedb_engine(config) as engine:
        assert engine.users(["007", "8"]) == {"007": {"city": "Oslo", "bio": "likes long walks"}, "8": {}}


def _lancedb_engine(config: Path) -> Engine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Engine.from_config(config)


def test_dataset_users_files(tmp_path: Path) -> None:
    """A RecBole ``.user`` and a GroupLens ``u.user`` read into the same attributes."""
    recbole = tmp_path / "toy"
    recbole.mkdir()
    (recbole / "toy.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    (recbole / "toy.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\nu1\t24\tM\ttechnician\t85711\n"
    )
    grouplens = tmp_path / "gl"
    grouplens.mkdir()
    (grouplens / "u.data").write_text("u1\ti1\t5\t1\n")
    (grouplens / "u.user").write_text("u1|24|M|technician|85711\n")
    expected = {"u1": {"age": "24", "gender": "M", "occupation": "technician", "zip_code": "85711"}}
    for directory in (recbole, grouplens):
        with _engine(tmp_path / directory.name, "memory") as engine:
            assert engine.add_users(directory) == 1
            assert engine.users(["u1"]) == expected


def test_users_through_the_http_api(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from polyrec.engine.server.app import create_app

    users = _users()
    engine = _engine(tmp_path, "lancedb")
    engine.ingest(_catalog())
    engine.add_events(_events(users))
    with TestClient(create_app(engine)) as client:
        body = {"users": [{"id": u["user"], "attributes": {"side": u["side"], "age": u["age"]}} for u in users]}
        assert client.post("/users", json=body).json() == {"stored": len(users)}
        assert (
            client.post("/users", json={"users": [{"id": "newbie", "attributes": {"side": "right"}}]}).status_code
            == 200
        )
        assert client.get("/users/newbie/attributes").json() == {"user": "newbie", "attributes": {"side": "right"}}
        assert client.get("/users/nobody/attributes").status_code == 404
        assert client.post("/users", json={"users": [{"attributes": {}}]}).status_code == 422
        engine.fit()
        answer = client.get("/users/newbie/recommendations", params={"k": 5}).json()
        assert {r["item"][:-1] for r in answer["results"]} == {"right"}
