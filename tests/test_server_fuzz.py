"""Schemathesis (property-based, from the server's own OpenAPI schema) against the real app:
no request it makes may get a 5xx, and every answer must match the schema. Bounded: a few
examples per operation and no deadline per example, so the whole run takes seconds.

The app runs over a real LanceDB directory with bag-of-words titles (no model to load) and
an API key, seeded with a catalog and events, so generated ids sometimes hit real data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")
pytest.importorskip("schemathesis", reason="the fuzz test needs schemathesis (polyrec[dev])")

import schemathesis
from bow_server import CATALOG, bow_app
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from polyrec.engine.server.auth import AccessPolicy, ApiKey, KeyRing, digest_of

SECRET = "prk_fuzz-secret"
KEYS = KeyRing([ApiKey("fuzz", frozenset({"read", "write"}), digest_of(SECRET))])
HEADERS = {"Authorization": f"Bearer {SECRET}"}
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db: Path = tmp_path_factory.mktemp("fuzz-db")
    application = bow_app(db, access=AccessPolicy(keys=KEYS))
    with TestClient(application) as client:  # runs the app's startup, then seeds it
        assert client.post("/items", json={"items": CATALOG}, headers=HEADERS).status_code == 200
        events = [{"user": f"user-{n % 3}", "item": item["id"], "timestamp": n} for n, item in enumerate(CATALOG)]
        assert client.post("/events", json={"events": events}, headers=HEADERS).status_code == 200
    return application


def operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_no_5xx_and_answers_match_the_schema(app: Any) -> None:
    failed: dict[str, str] = {}
    checked = 0
    for operation in operations(app):

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,  # the same examples in every run: CI failures reproduce
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=HEADERS, checks=[not_a_server_error, response_schema_conformance])

        try:
            check()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failed[operation.label] = str(exc)[:2000]
        checked += 1
    assert checked >= 10, "the schema lists every route"
    assert not failed, "\n\n".join(f"{label}:\n{message}" for label, message in failed.items())
