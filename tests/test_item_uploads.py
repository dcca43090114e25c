"""An item's image sent as bytes through the API (issue 13, defect 4): ``PUT /items/{id}/files/{field}``
stores it under the server's upload directory by content hash, sets the field (the item's other
fields stay) and ingests the item; size-capped (413 naming max_media_bytes), write scope only.
Real app, real LanceDB directory, real skimage pictures and the timm encoder (offline weights)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")
if importlib.util.find_spec("timm") is None:
    pytest.skip("the 'image' extra is not installed", allow_module_level=True)

from bow_server import bow_config
from engine_fakes import BUILTINS_USED, plugin_manager
from fastapi.testclient import TestClient
from PIL import Image

from polyrec.engine.server.app import create_app
from polyrec.engine.server.auth import AccessPolicy, ApiKey, KeyRing, digest_of
from polyrec.engine.server.limits import ServerLimits

READER, WRITER = "prk_reader-upload", "prk_writer-upload"
KEYS = KeyRing(
    [
        ApiKey("reader", frozenset({"read"}), digest_of(READER)),
        ApiKey("writer", frozenset({"read", "write"}), digest_of(WRITER)),
    ]
)


def png(picture: str) -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(getattr(data, picture)()).save(out, format="PNG")
    return out.getvalue()


CAT, COFFEE = png("chelsea"), png("coffee")
LIMIT = len(CAT) + 1000  # the cat fits, the coffee (a larger picture) does not


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    db = tmp_path_factory.mktemp("db")
    config = bow_config(db)
    config["encoders"]["photo"] = {"plugin": "timm", "device": "cpu"}
    media = tmp_path_factory.mktemp("media")  # nothing in it: the pictures come as bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(
            config,
            limits=ServerLimits(media_dirs=(media,), max_media_bytes=LIMIT),
            plugin_manager=plugin_manager((*BUILTINS_USED, "polyrec.plugins.encoders.image_timm")),
            access=AccessPolicy(keys=KEYS),
        )
    with TestClient(app, raise_server_exceptions=False) as client:
        items = [{"id": "cat", "fields": {"title": "a tabby cat", "topic": "cats"}}]
        assert client.post("/items", json={"items": items}, headers=auth(WRITER)).status_code == 200
        yield client, db


def put(client: TestClient, path: str, data: bytes, secret: str = WRITER, name: str = "photo.png") -> object:
    return client.put(path, files={"file": (name, data, "image/png")}, headers=auth(secret))


def test_uploaded_bytes_are_stored_by_hash_ingested_and_served(served: tuple[TestClient, Path]) -> None:
    client, db = served
    response = put(client, "/items/cat/files/photo", CAT)
    assert response.status_code == 200, response.text
    body = response.json()
    digest = hashlib.sha256(CAT).hexdigest()
    assert (body["file"], body["bytes"], body["stored"], body["failures"]) == (f"{digest}.png", len(CAT), 1, [])
    assert (db / "state" / "uploads" / f"{digest}.png").read_bytes() == CAT
    item = client.get("/items/cat", headers=auth(READER)).json()
    assert item["metadata"]["title"] == "a tabby cat" and item["metadata"]["topic"] == "cats"  # kept
    assert {v["field"]: v["has_vector"] for v in item["vectors"].values()}["photo"] is True
    served_bytes = client.get("/items/cat/media/photo", headers=auth(READER))
    assert served_bytes.status_code == 200 and served_bytes.content == CAT
    again = put(client, "/items/cat/files/photo", CAT, name="other-name.png").json()
    assert (again["file"], again["stored"], again["unchanged"]) == (f"{digest}.png", 0, 1)  # one file, no re-encode
    new = put(client, "/items/new-cat/files/photo", CAT).json()  # a new item: this field alone
    assert new["stored"] == 1 and client.get("/items/new-cat", headers=auth(READER)).status_code == 200


def test_uploads_are_capped_need_write_scope_and_a_file_field(served: tuple[TestClient, Path]) -> None:
    client, db = served
    too_big = put(client, "/items/cat/files/photo", COFFEE)
    assert too_big.status_code == 413 and "max_media_bytes" in too_big.json()["detail"]  # cut off unread
    just_over = put(client, "/items/cat/files/photo", CAT + b"\0" * 2000)  # inside the form's slack
    assert just_over.status_code == 413
    assert just_over.json()["detail"] == f"file exceeds the limit of {LIMIT} bytes (server option max_media_bytes)"
    assert put(client, "/items/cat/files/photo", CAT, secret=READER).status_code == 403
    no_files = put(client, "/items/cat/files/title", CAT)
    assert no_files.status_code == 400 and "no configured encoder reads files" in no_files.json()["detail"]
    assert put(client, "/items/cat/files/photo", b"").status_code == 400
    uploads = db / "state" / "uploads"
    assert sorted(path.name for path in uploads.iterdir()) == [f"{hashlib.sha256(CAT).hexdigest()}.png"]


def test_the_upload_route_is_in_the_openapi_schema(served: tuple[TestClient, Path]) -> None:
    client, _ = served
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/items/{item_id}/files/{field}"]["put"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
