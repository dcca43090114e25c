"""The web page against a server that needs API keys (issue 13): it asks for a key once, keeps
it in the browser, and shows the users and their recommendations; a reload asks no more.
Headless Chromium against a real uvicorn server on a loopback port (bag-of-words titles)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("POLYREC_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"chromium is not installed at {CHROMIUM} (`make browser`)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the browser test needs the playwright package (polyrec[dev])")
pytest.importorskip("uvicorn", reason="the server needs polyrec[serve]")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from bow_server import CATALOG, bow_app  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from server_fixtures import free_port  # noqa: E402

from polyrec.engine.server.auth import AccessPolicy, ApiKey, KeyRing, digest_of  # noqa: E402

SECRET = "prk_browser-secret"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys = KeyRing(
        [ApiKey("reader", frozenset({"read"}), digest_of(SECRET)), ApiKey("w", frozenset({"write"}), "0" * 64)]
    )
    app = bow_app(tmp_path_factory.mktemp("db"), access=AccessPolicy(keys=keys, allowed_hosts=("127.0.0.1",)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    # seeding needs the write scope: the test writes through the app's engine instead of a write key
    engine = app.state.polyrec.engine
    engine.ingest([{"id": item["id"], **item["fields"]} for item in CATALOG])
    engine.add_events([{"user": user, "item": f"space-{n}", "timestamp": n} for n, user in enumerate(["ana", "ben"])])
    assert httpx.get(url + "/users").status_code == 401  # keys are on
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_the_page_asks_for_a_key_once_and_then_works(server_url: str) -> None:
    prompts: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        def answer(dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept(SECRET)

        page.on("dialog", answer)
        page.goto(server_url + "/")
        users = page.locator("#user-list li")
        expect(users).to_have_count(2)
        assert len(prompts) == 1 and "API key" in prompts[0]
        users.filter(has_text="ana").click()
        expect(page.locator("#recommendations > *").first).to_be_visible()
        page.reload()
        expect(page.locator("#user-list li")).to_have_count(2)
        assert len(prompts) == 1  # the key was kept
        cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
        assert cookies.get("polyrec_key") == SECRET  # what <img> tags send
        browser.close()
    assert not errors, errors
