"""Putting the server on a network: API keys and their scopes, the Host allow-list (DNS
rebinding), CORS closed unless configured, `polyrec serve` refusing an open bind without
keys, and `polyrec keys`. A real app over a LanceDB directory (bag-of-words titles)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")

from bow_server import CATALOG, bow_app
from fastapi.testclient import TestClient

from polyrec.engine.cli import main
from polyrec.engine.server.auth import (
    AccessPolicy,
    ApiKey,
    KeyRing,
    digest_of,
    is_loopback,
    load_keys,
    read_keys_file,
    required_scope,
)

READER, WRITER = "prk_reader-secret", "prk_writer-secret"
KEYS = KeyRing(
    [
        ApiKey("reader", frozenset({"read"}), digest_of(READER)),
        ApiKey("writer", frozenset({"read", "write"}), digest_of(WRITER)),
    ]
)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = bow_app(tmp_path_factory.mktemp("db"), access=AccessPolicy(keys=KEYS))
    with TestClient(app) as client:
        assert client.post("/items", json={"items": CATALOG}, headers=bearer(WRITER)).status_code == 200
        yield client


def test_requests_without_a_valid_key_are_401_json(client: TestClient) -> None:
    for response in (
        client.get("/users"),
        client.get("/users", headers=bearer("prk_wrong")),
        client.get("/users", headers={"X-API-Key": "prk_wrong"}),
        client.post("/events", json={"events": [{"user": "u", "item": "space-0"}]}),
    ):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"
    assert client.get("/users", headers=bearer(READER)).json()["users"] == []  # the 401 posted nothing


def test_read_scope_reads_and_searches_but_cannot_write(client: TestClient) -> None:
    assert client.get("/items/space-1", headers=bearer(READER)).status_code == 200
    assert client.get("/items/space-1", headers={"X-API-Key": READER}).status_code == 200
    assert client.post("/search", json={"query": "rocket"}, headers=bearer(READER)).status_code == 200
    refused = [
        client.post("/events", json={"events": [{"user": "r", "item": "space-0"}]}, headers=bearer(READER)),
        client.post("/items", json={"items": CATALOG[:1]}, headers=bearer(READER)),
        client.delete("/items/space-1", headers=bearer(READER)),
    ]
    for response in refused:
        assert response.status_code == 403, response.text
        assert "'write'" in response.json()["detail"] and "reader" in response.json()["detail"]
    assert client.get("/items/space-1", headers=bearer(READER)).status_code == 200


def test_write_scope_writes(client: TestClient) -> None:
    posted = client.post("/events", json={"events": [{"user": "w", "item": "cats-0"}]}, headers=bearer(WRITER))
    assert posted.status_code == 200
    assert client.get("/users/w/events", headers=bearer(READER)).json()["total"] == 1


def test_page_docs_and_health_need_no_key_and_a_cookie_reads(client: TestClient) -> None:
    for path in ("/", "/static/app.js", "/docs", "/openapi.json", "/health"):
        assert client.get(path).status_code == 200, path
    schema = client.get("/openapi.json").json()
    assert {"ApiKey", "Bearer"} <= set(schema["components"]["securitySchemes"])  # /docs has "Authorize"
    # the web page sets a cookie so that <img> tags (no headers) can load item images: GET only
    client.cookies.set("polyrec_key", READER)
    assert client.get("/users").status_code == 200
    client.cookies.set("polyrec_key", WRITER)
    assert client.post("/events", json={"events": [{"user": "c", "item": "cats-0"}]}).status_code == 401
    client.cookies.clear()


def test_required_scopes() -> None:
    assert required_scope("GET", "/users/a/events") == "read"
    assert required_scope("POST", "/search") == "read"
    assert required_scope("GET", "/users/a/export") == "read"
    for method, path in [("POST", "/items"), ("POST", "/events"), ("DELETE", "/items/x"), ("DELETE", "/users/a")]:
        assert required_scope(method, path) == "write"
    assert required_scope("GET", "/static/app.js") is None and required_scope("GET", "/docs") is None


def test_host_allow_list_refuses_rebound_names(tmp_path: Path) -> None:
    app = bow_app(tmp_path / "db", access=AccessPolicy(allowed_hosts=("localhost", "127.0.0.1", "::1")))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert client.get("/health", headers={"Host": "[::1]:8000"}).status_code == 200
        evil = client.get("/users", headers={"Host": "evil.example:8000"})
        assert evil.status_code == 400 and "evil.example" in evil.json()["detail"]
        assert evil.headers["content-type"] == "application/json"


def test_cors_is_closed_unless_origins_are_configured(tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(bow_app(tmp_path / "closed")) as client:
        response = client.options("/search", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        assert (
            "access-control-allow-origin"
            not in client.get("/health", headers={"Origin": "https://app.example"}).headers
        )
    app = bow_app(tmp_path / "open", access=AccessPolicy(keys=KEYS, cors_origins=("https://app.example",)))
    with TestClient(app) as client:
        response = client.options("/search", headers={**preflight, "Access-Control-Request-Headers": "authorization"})
        assert response.status_code == 200  # a preflight carries no key: answered before the key check
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = client.options("/search", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_loopback_names() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "192.168.1.4", "::", "example.org"))


def test_serve_refuses_an_open_bind_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "polyrec.toml"
    config.write_text('[store]\nplugin = "memory"\n[encoders.title]\nplugin = "sentence-transformers"\n')
    assert main(["serve", "--config", str(config), "--host", "0.0.0.0", "--keys", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--config", str(config), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--insecure" in err and "polyrec keys create" in err and "0.0.0.0" in err


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys_file = tmp_path / "keys.json"
    assert main(["keys", "--file", str(keys_file), "create", "ingest-job", "--scope", "write"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("prk_") and len(secret) > 40
    assert secret not in keys_file.read_text() and digest_of(secret) in keys_file.read_text()
    assert keys_file.stat().st_mode & 0o077 == 0  # the owner's alone
    assert main(["keys", "--file", str(keys_file), "create", "dashboard", "--scope", "read"]) == 0
    capsys.readouterr()
    assert main(["keys", "--file", str(keys_file), "create", "dashboard"]) == 2  # names are unique
    assert main(["keys", "--file", str(keys_file), "list"]) == 0
    listed = capsys.readouterr().out
    assert "ingest-job  write" in listed and "dashboard   read" in listed and secret not in listed
    ring = load_keys(keys_file, environ={})
    assert ring.find(secret) is not None and ring.find(secret).scopes == {"write"}
    assert main(["keys", "--file", str(keys_file), "revoke", "ingest-job"]) == 0
    assert [key.name for key in read_keys_file(keys_file)] == ["dashboard"]


def test_keys_from_the_environment() -> None:
    ring = load_keys(None, environ={"POLYREC_API_KEYS": "read:prk_a, read+write:prk_b"})
    assert ring.find("prk_a").scopes == {"read"} and ring.find("prk_b").scopes == {"read", "write"}
    assert ring.find("prk_c") is None
    with pytest.raises(ValueError, match="POLYREC_API_KEYS"):
        load_keys(None, environ={"POLYREC_API_KEYS": "admin:prk_a"})


def test_worker_processes_get_the_policy_without_secrets() -> None:
    from polyrec.engine.server.auth import ACCESS_ENV, access_environment, access_from_environment

    policy = AccessPolicy(keys=KEYS, allowed_hosts=("localhost", "api.example"), cors_origins=("https://a.example",))
    text = access_environment(policy)
    assert READER not in text and WRITER not in text  # digests only
    again = access_from_environment({ACCESS_ENV: text})
    assert (
        again is not None and again.allowed_hosts == policy.allowed_hosts and again.cors_origins == policy.cors_origins
    )
    assert again.keys.find(WRITER).scopes == {"read", "write"} and again.keys.find("prk_other") is None
    assert access_from_environment({}) is None
