"""The lean path for ``GET /users/{id}/recommendations`` (engine/server/fast_recommend.py) answers
exactly as the FastAPI route does: same status, headers and bytes, for good requests, bad
parameters, auth and host failures, CORS, body limits and engine errors.

Two apps share one real engine (bag-of-words titles, a LanceDB directory): the app as built, and
the same app with the lean layer taken out of its middleware (the FastAPI route alone). Each
request goes to both. The thread each answer was made on shows which requests the lean path
answered (on its own ``polyrec-recommend`` thread) and which it left to FastAPI."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server needs polyrec[serve]")

from bow_server import CATALOG_ROWS, bow_engine
from fastapi.testclient import TestClient

from polyrec.contracts import Slot, StoreError
from polyrec.engine.server import fast_recommend, routes_users
from polyrec.engine.server.app import create_app
from polyrec.engine.server.auth import AccessPolicy, ApiKey, KeyRing, digest_of
from polyrec.engine.server.fast_recommend import FastRecommend, plain_params, recommend_threads
from polyrec.engine.server.limits import ServerLimits

READER = "prk_fast-reader"
KEYS = KeyRing([ApiKey("reader", frozenset({"read"}), digest_of(READER))])
AUTH = {"Authorization": f"Bearer {READER}"}
ORIGIN = "http://app.example"
#: headers whose values differ between two answers only by chance (none today; the date is not sent)
_ERROR_ID = re.compile(rb"error id [0-9a-f]{12}")


class Engines:
    """The shared engine, which can be made to fail, and a record of the thread each answer
    (the route's ``recommendations``, called by either path) was made on."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.threads: list[str] = []
        self.fail: BaseException | None = None
        self._recommend = engine.recommend
        engine.recommend = self.recommend

    def recommend(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        return self._recommend(*args, **kwargs)

    def recorded(self, answer: Any) -> Any:
        def recommendations(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            return answer(*args, **kwargs)

        return recommendations


def _apps(engine: Any) -> tuple[Any, Any]:
    access = AccessPolicy(keys=KEYS, allowed_hosts=("testserver", "127.0.0.1"), cors_origins=(ORIGIN,))
    limits = ServerLimits(max_k=50, max_body_bytes=1000)
    lean = create_app(engine, access=access, limits=limits)
    reference = create_app(engine, access=access, limits=limits)
    reference.user_middleware = [m for m in reference.user_middleware if m.cls is not FastRecommend]
    return lean, reference


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient, Engines]]:
    db: Path = tmp_path_factory.mktemp("db")
    with bow_engine(db) as engine:
        engine.ingest(CATALOG_ROWS)
        engine.add_events([{"user": "ana", "item": f"space-{n}", "timestamp": n} for n in range(3)])
        engine.add_events([{"user": "a/b", "item": "cats-1", "timestamp": 1}])
        engines = Engines(engine)
        lean, reference = _apps(engine)
        with (
            pytest.MonkeyPatch.context() as patch,
            TestClient(lean, raise_server_exceptions=False) as lean_client,
            TestClient(reference, raise_server_exceptions=False) as reference_client,
        ):
            for module in (fast_recommend, routes_users):
                patch.setattr(module, "recommendations", engines.recorded(routes_users.recommendations))
            yield lean_client, reference_client, engines


def _answer(client: TestClient, method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    response = client.request(method, url, headers=headers)
    return response.status_code, dict(response.headers), _ERROR_ID.sub(b"error id X", response.content)


def both(
    setup: tuple[TestClient, TestClient, Engines], url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[tuple[int, dict[str, str], bytes], str | None]:
    """The lean app's answer (asserted equal to the reference's) and the thread its engine call ran on."""
    lean, reference, engines = setup
    headers = AUTH if headers is None else headers
    engines.threads.clear()
    got = _answer(lean, method, url, headers)
    lean_thread = engines.threads[0] if engines.threads else None
    expected = _answer(reference, method, url, headers)
    assert got == expected, url
    return got, lean_thread


def _lean(thread: str | None) -> bool:
    return thread is not None and thread.startswith("polyrec-recommend")


GOOD = [
    "/users/ana/recommendations",
    "/users/ana/recommendations?k=3",
    "/users/ana/recommendations?k=3&explain=true&exclude_seen=false",
    "/users/ana/recommendations?k=2&k=4&explain=1&exclude_seen=0",  # the last value wins, as in FastAPI
    "/users/ana/recommendations?diversity=0.5&k=5",
    "/users/ana/recommendations?diversity=1&unknown=ignored",
    "/users/ana/recommendations?filter=%7B%22topic%22%3A%20%22cats%22%7D",
    "/users/ana/recommendations?filter=",
    "/users/a/b/recommendations?k=3",  # a user id with a slash
    "/users/caf%C3%A9/recommendations",  # unknown user (popularity fallback), percent-encoded
    "/users/nobody/recommendations?explain=false",
]
#: answered by the lean path with the route's own error bodies
LEAN_ERRORS = [
    ("/users/ana/recommendations?k=51", 422),  # over max_k
    ("/users/ana/recommendations?filter=%7Bnot%20json", 400),
    ("/users/ana/recommendations?filter=%5B1%2C2%5D", 400),  # a list, not an object
    ("/users/ana/recommendations?filter=%7B%22topic%22%3A%20%7B%22%24bad%22%3A%201%7D%7D", 400),
    ("/users/ana/recommendations?filter=%7B%22toppic%22%3A%20%22cats%22%7D", 400),  # unknown field: ConfigError
]
#: left to FastAPI (its 422 shapes, 404s and HEAD)
PASSED_ON = [
    ("/users/ana/recommendations?k=abc", 422),
    ("/users/ana/recommendations?k=0", 422),
    ("/users/ana/recommendations?k=", 422),
    ("/users/ana/recommendations?k=1.0", None),
    ("/users/ana/recommendations?k=+3", None),
    ("/users/ana/recommendations?diversity=1.5", 422),
    ("/users/ana/recommendations?diversity=-0.1", 422),
    ("/users/ana/recommendations?diversity=.5", None),
    ("/users/ana/recommendations?explain=maybe", 422),
    ("/users/ana/recommendations?explain=True&exclude_seen=no", 200),
    ("/users//recommendations", None),
    ("/users/ana/recommendations/", None),
]


def test_good_requests_are_answered_by_the_lean_path_with_the_same_bytes(setup: Any) -> None:
    for url in GOOD:
        (status, headers, body), thread = both(setup, url)
        assert status == 200, (url, body)
        assert headers["content-type"] == "application/json"
        assert body.startswith(b'{"user":')
        assert _lean(thread), (url, thread)


def test_errors_of_the_route_are_the_same_bodies(setup: Any) -> None:
    for url, expected in LEAN_ERRORS:
        (status, _, body), thread = both(setup, url)
        assert status == expected, (url, body)
        assert b'"error":' in body and b'"detail":' in body
        assert _lean(thread), url


def test_other_parameter_forms_are_left_to_fastapi(setup: Any) -> None:
    for url, expected in PASSED_ON:
        (status, _, body), thread = both(setup, url)
        if expected is not None:
            assert status == expected, (url, body)
        assert not _lean(thread), url
    (status, _, _), thread = both(setup, "/users/ana/recommendations?k=2", method="HEAD")
    assert status == 405 and thread is None  # FastAPI's GET routes do not take HEAD


def test_keys_hosts_cors_and_body_limits_come_first(setup: Any) -> None:
    url = "/users/ana/recommendations?k=2"
    cases: list[tuple[dict[str, str], int]] = [
        ({}, 401),
        ({"Authorization": "Bearer prk_wrong"}, 401),
        ({**AUTH, "Host": "evil.example"}, 400),
        ({**AUTH, "Content-Length": "5000"}, 413),
        ({**AUTH, "Origin": ORIGIN}, 200),
        ({"Origin": ORIGIN}, 401),
    ]
    for headers, expected in cases:
        (status, answered, _), thread = both(setup, url, headers)
        assert status == expected, headers
        assert (thread is not None) == (expected == 200)
        if "Origin" in headers:
            assert answered["access-control-allow-origin"] == ORIGIN
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    (status, _, _), thread = both(setup, url, preflight, method="OPTIONS")
    assert status == 200 and thread is None


def test_engine_failures_become_the_same_error_answers(setup: Any) -> None:
    engines = setup[2]
    try:
        engines.fail = StoreError("the table at /var/secret/db is gone")
        (status, _, body), thread = both(setup, "/users/ana/recommendations")
        assert status == 503 and b"/var/secret" not in body and _lean(thread)
        engines.fail = RuntimeError("a bug in /opt/plugin.py")
        (status, _, body), thread = both(setup, "/users/ana/recommendations")
        assert status == 500 and b"internal_error" in body and b"/opt" not in body and _lean(thread)
    finally:
        engines.fail = None
    assert both(setup, "/users/ana/recommendations")[0][0] == 200  # the server carries on


def test_random_query_strings_answer_alike(setup: Any) -> None:
    rng = random.Random(0)
    names = ["k", "explain", "exclude_seen", "diversity", "filter", "K", "x"]
    values = ["1", "2", "10", "51", "0", "-1", "1.0", "0.5", "1", "true", "false", "", "%20", "%FF", "%7B%7D", "a"]
    for _ in range(60):
        pairs = [f"{rng.choice(names)}={rng.choice(values)}" for _ in range(rng.randint(0, 4))]
        query = "&".join(pairs + ([rng.choice(names)] if rng.random() < 0.2 else []))
        both(setup, f"/users/ana/recommendations?{query}")


def test_plain_params_reads_only_forms_it_is_sure_of() -> None:
    assert plain_params(b"") == {"k": 10, "filter": None, "explain": False, "diversity": 0.0, "exclude_seen": True}
    assert plain_params(b"k=7&explain=1&diversity=0.25&filter=%7B%7D")["k"] == 7
    assert plain_params(b"diversity=0.25")["diversity"] == 0.25
    for query in (b"k=07", b"k=1e3", b"k=%EF%BC%91", b"explain=yes", b"diversity=1.01", b"diversity=nan", b"k"):
        assert plain_params(query) is None, query


def test_recommend_calls_overlap_only_for_a_store_behind_a_url(setup: Any) -> None:
    assert recommend_threads(setup[2].engine.settings.store) == 1  # the LanceDB folder of this test
    assert recommend_threads(Slot(plugin="lancedb", uri="file:///data/db")) == 1
    assert recommend_threads(Slot(plugin="in-memory")) == 1
    assert recommend_threads(Slot(plugin="lancedb", uri="s3://bucket/polyrec")) > 1
    assert recommend_threads(Slot(plugin="some-db", uri="postgresql://db.internal/polyrec")) > 1
