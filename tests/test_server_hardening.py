"""Regression tests for issue 13's defects seen through the HTTP API: a request that crashed
the server (a 40,000-value filter), errors that were plain text or leaked internals, lone
surrogates and control characters, unbounded metadata, and API ingest opening any path.
Real app, real LanceDB directory; bag-of-words titles and librosa clips (no model to load)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")

from bow_server import CATALOG, bow_config
from engine_fakes import BUILTINS_USED, plugin_manager
from fastapi.testclient import TestClient

from polyrec.contracts.limits import MAX_FIELDS, MAX_IN_VALUES, MAX_KEY_CHARS, MAX_STRING_CHARS
from polyrec.engine.server.app import create_app
from polyrec.engine.server.limits import ServerLimits

MEDIA_LIMIT = 200_000
WITH_AUDIO = (*BUILTINS_USED, "polyrec.plugins.encoders.audio_librosa")


def raw_post(client: TestClient, path: str, text: str) -> Any:
    """Post JSON text as is: lone surrogates written as ``\\ud800`` escapes are valid JSON."""
    return client.post(path, content=text.encode("utf-8"), headers={"content-type": "application/json"})


def make_app(db: Path, media_dir: Path, audio: bool = False) -> Any:
    config = bow_config(db)
    if audio:
        config["encoders"]["sound"] = {"plugin": "librosa"}
    limits = ServerLimits(media_dirs=(media_dir,), max_media_bytes=MEDIA_LIMIT)
    return create_app(config, limits=limits, plugin_manager=plugin_manager(WITH_AUDIO))


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile

    directory = tmp_path_factory.mktemp("media")
    (directory / "clips").mkdir()
    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 16_000)).astype(np.float32)
    soundfile.write(directory / "clips" / "tone.wav", tone, 16_000)
    soundfile.write(directory / "clips" / "long.wav", np.tile(tone, 8), 16_000)  # 256 KB: over the limit
    outside = directory.parent / "outside.wav"
    soundfile.write(outside, tone, 16_000)
    (directory / "clips" / "link.wav").symlink_to(outside)
    return directory


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[TestClient]:
    app = make_app(tmp_path_factory.mktemp("db"), media_dir)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/items", json={"items": CATALOG}).status_code == 200
        yield client


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= {"error", "detail"}
    return body


# -- defect 1: one request killed the server ------------------------------------------------


def test_a_huge_in_filter_is_a_400_naming_the_limit_not_a_crash(client: TestClient) -> None:
    body = {"query": "rocket", "filter": {"year": {"$in": list(range(40_000))}}}
    error = assert_json_error(client.post("/search", json=body), 400)
    assert str(MAX_IN_VALUES) in error["detail"] and error["errors"][0]["field"] == "filter"
    deep = "[" * 10_000 + "]" * 10_000  # a query-string filter json cannot parse
    response = client.get("/users/x/recommendations", params={"filter": deep})
    assert assert_json_error(response, 400)["errors"][0]["field"] == "filter"
    at_limit = {"query": "rocket", "filter": {"year": {"$in": list(range(MAX_IN_VALUES))}}}
    found = client.post("/search", json=at_limit)
    assert found.status_code == 200 and found.json()["results"]
    assert client.get("/health").status_code == 200  # still up


# -- defect 6: errors are JSON and keep internals to the log ------------------------------


def test_deeply_nested_json_is_a_json_4xx(client: TestClient) -> None:
    depth = 100_000
    nested = '{"query": "x", "filter": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    error = assert_json_error(raw_post(client, "/search", nested), 400)
    assert error["errors"][0]["field"] == "body" and "deep" in error["detail"]
    assert_json_error(raw_post(client, "/items", '{"items": ' + "[" * depth + "]" * depth + "}"), 400)
    assert_json_error(raw_post(client, "/events", '{"events": ' + "[" * depth + "]" * depth + "}"), 400)


def test_unexpected_errors_are_json_500_without_internals(
    tmp_path: Path, media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path / "db", media_dir)

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError(f"secret internals at {tmp_path}/x.rs:12")

    with TestClient(app, raise_server_exceptions=False) as client:
        error = assert_json_error(client.get("/boom"), 500)
        assert error["error"] == "internal_error"
        assert str(tmp_path) not in error["detail"] and "RuntimeError" not in error["detail"]
    assert "secret internals" in caplog.text  # the log has it


def test_store_errors_name_no_paths_or_rust_sources(tmp_path: Path, media_dir: Path) -> None:
    db = tmp_path / "db"
    with TestClient(make_app(db, media_dir), raise_server_exceptions=False) as client:
        assert client.post("/items", json={"items": CATALOG[:3]}).status_code == 200
        for data_file in db.glob("*.lance/data/*"):  # the store breaks under the server
            data_file.unlink()
        error = assert_json_error(client.post("/search", json={"query": "rocket", "filter": {"topic": "space"}}), 503)
        assert str(tmp_path) not in json.dumps(error) and ".rs" not in json.dumps(error)
        assert "lance error" not in json.dumps(error).lower()
        health = client.get("/health").json()
        assert str(tmp_path) not in json.dumps(health)


# -- defects 5 and 8: bad strings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            '{"items": [{"id": "ok-a", "fields": {"title": "fine"}}, {"id": "bad\\ud800", "fields": {"title": "x"}}]}',
            "items[1].id",
            "surrogate",
        ),
        (
            '{"items": [{"id": "ok-a", "fields": {"title": "fine"}}, {"id": "a\\nb", "fields": {"title": "x"}}]}',
            "items[1].id",
            "control character",
        ),
        (
            '{"items": [{"id": "ok-a", "fields": {"title": "fine"}}, {"id": "\\u001bred", "fields": {}}]}',
            "items[1].id",
            "control character",
        ),
    ],
)
def test_bad_ids_are_a_422_naming_the_field_and_write_nothing(
    client: TestClient, text: str, field: str, reason: str
) -> None:
    error = assert_json_error(raw_post(client, "/items", text), 422)
    assert field in [e["field"] for e in error["errors"]] and reason in error["detail"]
    assert client.get("/items/ok-a").status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ('{"title": "x\\udc00y"}', "title", "surrogate"),
        ('{"title": "fine", "tag": "x\\ud800"}', "tag", "surrogate"),
        ('{"title": "fine", "t\\ud800g": 1}', "t\\ud800g", "surrogate"),
    ],
)
def test_bad_strings_fail_their_item_alone_and_leave_nothing(
    client: TestClient, fields: str, field: str, reason: str
) -> None:
    text = '{"items": [{"id": "good-b", "fields": {"title": "fine cats"}}, {"id": "bad-b", "fields": ' + fields + "}]}"
    response = raw_post(client, "/items", text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] + body["unchanged"] == 1 and [f["item_id"] for f in body["failures"]] == ["bad-b"]
    failure = body["failures"][0]
    assert failure["field"].encode("utf-8", "backslashreplace").decode() == field and reason in failure["reason"]
    assert client.get("/items/bad-b").status_code == 404
    good = client.get("/items/good-b").json()
    assert good["fused"] and good["vectors"]["title"]["has_vector"]


def test_an_item_failed_for_no_encodable_field_leaves_nothing(client: TestClient) -> None:
    # "silence" encodes to an all-zero vector: no signal in any field
    body = client.post("/items", json={"items": [{"id": "quiet", "fields": {"title": "silence"}}]}).json()
    assert [f["item_id"] for f in body["failures"]] == ["quiet"] and "no encodable field" in body["failures"][0][
        "reason"
    ]
    assert client.get("/items/quiet").status_code == 404


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"events": [{"user": "fine", "item": "cats-0"}, {"user": "u\\ud800", "item": "cats-0"}]}', "events[1].user"),
        (
            '{"events": [{"user": "fine", "item": "cats-0"}, {"user": "u\\u001b[2J", "item": "cats-0"}]}',
            "events[1].user",
        ),
        ('{"events": [{"user": "fine", "item": "cats\\n0"}]}', "events[0].item"),
        ('{"events": [{"user": "fine", "item": "cats-0", "kind": "k\\udfff"}]}', "events[0].kind"),
    ],
)
def test_bad_event_strings_are_a_422_and_append_nothing(client: TestClient, text: str, field: str) -> None:
    before = client.get("/health").json()["events"]
    error = assert_json_error(raw_post(client, "/events", text), 422)
    assert field in [e["field"] for e in error["errors"]]
    assert client.get("/health").json()["events"] == before


def test_a_surrogate_in_a_filter_key_is_blamed_on_the_filter(client: TestClient) -> None:
    error = assert_json_error(raw_post(client, "/search", '{"query": "moon", "filter": {"a\\ud800": 1}}'), 400)
    assert error["errors"][0]["field"] == "filter"


# -- defect 7: bounded metadata ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"title": "many", **{f"k{n}": n for n in range(MAX_FIELDS)}}, None, MAX_FIELDS),
        ({"title": "long key", "k" * (MAX_KEY_CHARS + 1): 1}, "k" * (MAX_KEY_CHARS + 1), MAX_KEY_CHARS),
        ({"title": "x " * MAX_STRING_CHARS}, "title", MAX_STRING_CHARS),
        ({"title": "big note", "note": "y" * (MAX_STRING_CHARS + 1)}, "note", MAX_STRING_CHARS),
    ],
    ids=["fields", "key", "title", "value"],
)
def test_metadata_is_bounded_per_item(
    client: TestClient, fields: dict[str, Any], field: str | None, limit: int
) -> None:
    body = client.post("/items", json={"items": [{"id": "huge", "fields": fields}]}).json()
    assert body["stored"] == 0 and len(body["failures"]) == 1
    failure = body["failures"][0]
    assert failure["item_id"] == "huge" and failure["field"] == field and str(limit) in failure["reason"]
    assert client.get("/items/huge").status_code == 404


def test_a_filter_on_a_key_kept_out_of_the_columns_is_a_400_naming_the_setting(tmp_path: Path) -> None:
    # only two keys get filter columns: title and topic; year stays in each item's metadata JSON
    config = bow_config(tmp_path / "db", max_filter_keys=2, read_snapshot=False)
    with TestClient(create_app(config, plugin_manager=plugin_manager()), raise_server_exceptions=False) as client:
        assert client.post("/items", json={"items": CATALOG}).json()["stored"] == len(CATALOG)
        assert client.get("/items/space-1").json()["metadata"]["year"] == 2001
        found = client.post("/search", json={"query": "rocket", "filter": {"topic": "space"}})
        assert found.status_code == 200 and found.json()["results"]
        error = assert_json_error(client.post("/search", json={"query": "rocket", "filter": {"year": 2001}}), 400)
        assert error["errors"][0]["field"] == "filter.year" and "store.max_filter_keys" in error["detail"]
        refused = client.get("/users/nobody/recommendations", params={"filter": '{"year": 2001}'})
        assert assert_json_error(refused, 400)["errors"][0]["field"] == "filter.year"


# -- defect 4: API ingest opens only media files ------------------------------------------


def test_api_ingest_opens_only_regular_files_inside_the_media_dirs(tmp_path: Path, media_dir: Path) -> None:
    refused = {
        "shadow": "/etc/shadow",
        "hostname": "/etc/hostname",
        "missing": "/nonexistent/clip.wav",
        "zero": "/dev/zero",
        "escape": "../outside.wav",
        "link": "clips/link.wav",
        "directory": "clips",
    }
    items = [{"id": name, "fields": {"title": f"clip {name}", "sound": path}} for name, path in refused.items()]
    items += [
        {"id": "inside", "fields": {"title": "a tone", "sound": "clips/tone.wav"}},
        {"id": "absolute", "fields": {"title": "a tone", "sound": str(media_dir / "clips" / "tone.wav")}},
        {"id": "large", "fields": {"title": "a long tone", "sound": "clips/long.wav"}},
    ]
    with TestClient(make_app(tmp_path / "db", media_dir, audio=True), raise_server_exceptions=False) as client:
        body = client.post("/items", json={"items": items}).json()
        failures = {failure["item_id"]: failure for failure in body["failures"]}
        assert set(failures) == {*refused, "large"}
        reasons = {failures[name]["reason"] for name in refused}
        assert len(reasons) == 1, reasons  # one message: nothing tells whether a path exists
        assert all(failures[name]["field"] == "sound" for name in failures)
        assert str(MEDIA_LIMIT) in failures["large"]["reason"]
        for name in ("inside", "absolute"):
            assert client.get(f"/items/{name}").json()["vectors"]["sound"]["has_vector"]
        for name in refused:
            assert client.get(f"/items/{name}").status_code == 404  # a failed file fails its item


def test_the_python_api_still_reads_the_operators_own_files(tmp_path: Path, media_dir: Path) -> None:
    from polyrec.engine.engine import Engine

    outside = media_dir.parent / "outside.wav"
    assert outside.is_file() and not outside.resolve().is_relative_to(media_dir.resolve())
    config = bow_config(tmp_path / "db")
    config["encoders"]["sound"] = {"plugin": "librosa"}
    with Engine.from_config(config, plugin_manager=plugin_manager(WITH_AUDIO)) as engine:
        report = engine.ingest([{"id": "own", "title": "a tone", "sound": str(outside)}])
        assert report.failures == [] and report.stored == 1


def test_serve_takes_an_upload_dir_for_item_files(tmp_path: Path) -> None:
    from polyrec.engine.cli import build_parser
    from polyrec.engine.cli.serve_cmd import _limits
    from polyrec.engine.server.item_uploads import with_upload_dir

    limits = _limits(build_parser().parse_args(["serve", "--upload-dir", str(tmp_path / "up")]))
    assert limits.upload_dir == tmp_path / "up"
    served = with_upload_dir(limits, tmp_path / "state")  # a named folder wins over the state folder's
    assert served.upload_dir == (tmp_path / "up").resolve() and served.upload_dir in served.media_dirs
    assert with_upload_dir(ServerLimits(), tmp_path / "state").upload_dir == (tmp_path / "state" / "uploads").resolve()
