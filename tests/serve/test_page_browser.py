"""End to end: the served web page in Debian's headless Chromium (Playwright's Python package).

One server (a small model trained on the built-in sample catalogue, ``fusionrec serve`` in a
subprocess, see ``tests/serve/server.py``) and one browser for the module; a fresh browser context
(empty ``localStorage``) per test. The page gets the API key from ``?key=``. Each test collects
console errors, page errors, failed requests and HTTP errors, and asserts there were none, except
the test that checks a missing key is reported on the page.

Screenshots: ``page.png`` under the test's ``tmp_path``; also at ``$FUSIONREC_SCREENSHOT`` when set
(that is how ``docs/serve-page.png`` is made from a real run).
``FUSIONREC_SERVE_URL`` (+ ``FUSIONREC_SERVE_KEY``) points the tests at an already running server
instead of starting one (it then receives the test's likes, dislikes and new items).
"""

from __future__ import annotations

import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 900}
REC = '[data-testid="rec-card"]'
HISTORY = '[data-testid="history-card"]'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's chromium is not installed at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


@dataclass
class Server:
    url: str
    api_key: str


@dataclass
class Problems:
    """What went wrong in the browser while a test ran."""

    origin: str
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    http: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("response", lambda r: self.http.append(f"{r.request.method} {r.url}: {r.status}") if r.status >= 400 else None)
        page.on("request", lambda r: None if r.url.startswith((self.origin, "data:")) else self.foreign.append(r.url))

    def assert_none(self) -> None:
        assert not self.foreign, f"the page fetched from outside the app: {self.foreign}"
        assert not self.console, f"console errors: {self.console}"
        assert not self.failed, f"failed requests: {self.failed}"
        assert not self.http, f"HTTP errors: {self.http}"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Overrides ``tests/serve/conftest.py``'s: this module's own server, since the tests write to it."""
    if os.environ.get("FUSIONREC_SERVE_URL"):
        yield Server(os.environ["FUSIONREC_SERVE_URL"].rstrip("/"), os.environ.get("FUSIONREC_SERVE_KEY", ""))
        return
    from tests.serve.server import start_server

    workspace = request.getfixturevalue("serve_workspace")  # the session's sample workspace, built once
    handle = start_server(tmp_path_factory.mktemp("serve-page"), workspace)
    with ExitStack() as stack:
        if hasattr(handle, "__enter__"):
            handle = stack.enter_context(handle)
        else:
            stack.callback(handle.stop)
        yield Server(handle.url.rstrip("/"), handle.api_key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless=new"])
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def open_page(context: Any, server: Server, *, key: bool = True, query: str = "") -> tuple[Any, Problems]:
    page = context.new_page()
    problems = Problems(origin=server.url)
    problems.watch(page)
    params = "&".join(p for p in ((f"key={server.api_key}" if key else ""), query) if p)
    page.goto(f"{server.url}/" + (f"?{params}" if params else ""))
    wait_for_recs(page)
    return page, problems


def wait_for_recs(page: Any) -> None:
    page.wait_for_selector(REC)
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    page.wait_for_function("() => document.getElementById('recs').getAttribute('aria-busy') === 'false'")


def ids(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "cards => cards.map(c => c.dataset.itemId)")


def wait_for_change(page: Any, before: list[str]) -> list[str]:
    """Wait until the recommendation ids differ from ``before`` and the list is idle again."""
    try:
        page.wait_for_function(
            """(before) => {
                const grid = document.getElementById('recs');
                const now = [...grid.querySelectorAll('[data-testid="rec-card"]')].map(c => c.dataset.itemId);
                return grid.getAttribute('aria-busy') === 'false' && now.length > 0 && now.join() !== before.join();
            }""",
            arg=before,
        )
    except sync_api.TimeoutError:
        pytest.fail(f"the list did not change from {before}; now {ids(page, REC)}; status line: {status(page)}")
    return ids(page, REC)


def status(page: Any) -> tuple[str, str]:
    el = page.get_by_test_id("status")
    return el.get_attribute("data-kind") or "", el.inner_text()


def save_screenshot(page: Any, tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    page.screenshot(path=str(path))
    if os.environ.get("FUSIONREC_SCREENSHOT"):
        target = Path(os.environ["FUSIONREC_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return path


def tiny_png(path: Path) -> Path:
    """A 2x3 red PNG written by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xd0\x30\x30" * 2 for _ in range(3))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 3, 8, 2, 0, 0, 0))
    path.write_bytes(png + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def known_users(page: Any) -> list[str]:
    return page.eval_on_selector_all("#user-list option", "opts => opts.map(o => o.value)")


# ---------------------------------------------------------------------------------------------- tests


def test_page_loads_health_user_history_and_explained_recommendations(context: Any, server: Server) -> None:
    page, problems = open_page(context, server)
    health = page.get_by_test_id("health").inner_text()
    assert "users" in health and "items" in health, health
    users = known_users(page)
    assert users, "the user picker has no known users"
    assert page.get_by_test_id("user-input").input_value() == users[0]  # the default user
    recs = ids(page, REC)
    assert recs and len(recs) == len(set(recs))
    history = ids(page, HISTORY)
    assert history, "the default user's history strip is empty"
    assert not set(recs) & set(history), "a recommendation is already in the history"
    first = page.locator(REC).first
    assert first.locator(".title").inner_text().strip()
    float(first.locator(".score").inner_text())  # a number
    assert first.locator("img, .placeholder").count() == 1  # a poster or the title placeholder
    page.wait_for_function(  # the sample's posters load from the app
        "() => [...document.querySelectorAll('#recs img')].some(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(f"{REC} .explain").count() == len(recs)
    assert page.locator(f"{REC} [data-testid=modality-bars] li, {REC} [data-testid=explanation-headline]").count() > 0
    like = first.get_by_test_id("like-button")
    assert (like.get_attribute("aria-label") or "").startswith("Like ")
    assert page.get_by_test_id("diversity-value").inner_text() == "0.0"
    problems.assert_none()


def test_like_moves_the_item_to_the_history_and_changes_the_list(context: Any, server: Server, tmp_path: Path) -> None:
    page, problems = open_page(context, server)
    before = ids(page, REC)
    liked = before[0]
    with page.expect_request(lambda r: r.url.endswith("/events") and r.method == "POST") as posted:
        page.locator(f'{REC}[data-item-id="{liked}"]').get_by_test_id("like-button").click()
    request = posted.value
    assert request.headers.get("x-api-key") == server.api_key
    body = request.post_data_json
    assert body["events"][0]["type"] == "like" and body["events"][0]["item_id"] == liked
    after = wait_for_change(page, before)
    assert liked not in after, f"the liked item {liked} is still recommended"
    assert len(after) == len(before), "the list lost items instead of taking new ones in"
    page.wait_for_selector(f'{HISTORY}[data-item-id="{liked}"]')
    kind, text = status(page)
    assert kind == "ok" and "Liked" in text, (kind, text)
    page.wait_for_timeout(300)  # let the flash animation start, so the screenshot shows it
    shot = save_screenshot(page, tmp_path)
    assert shot.stat().st_size > 10_000
    problems.assert_none()


def test_dislike_excludes_the_item_for_a_user_typed_in_the_picker(context: Any, server: Server) -> None:
    page, problems = open_page(context, server)
    users = known_users(page)
    assert len(users) > 1
    user_input = page.get_by_test_id("user-input")
    default_recs = ids(page, REC)
    user_input.fill(users[1])
    user_input.press("Enter")
    page.wait_for_function(f"() => document.getElementById('recs').dataset.user === {users[1]!r}")
    wait_for_recs(page)
    before = ids(page, REC)
    assert before != default_recs or ids(page, HISTORY)  # another user's page
    disliked = before[0]
    history_before = ids(page, HISTORY)
    page.locator(f'{REC}[data-item-id="{disliked}"]').get_by_test_id("dislike-button").click()
    after = wait_for_change(page, before)
    assert disliked not in after
    assert disliked not in ids(page, HISTORY) and ids(page, HISTORY) == history_before
    # a reload through the slider still leaves it out
    page.get_by_test_id("diversity").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('recs').dataset.diversity === '0.1'")
    wait_for_recs(page)
    assert disliked not in ids(page, REC)
    problems.assert_none()


def test_a_typed_unknown_user_gets_cold_start_and_a_like_starts_a_history(context: Any, server: Server) -> None:
    page, problems = open_page(context, server)
    user = f"browser-{uuid.uuid4().hex[:8]}"
    user_input = page.get_by_test_id("user-input")
    user_input.fill(user)
    user_input.press("Enter")
    page.wait_for_function(f"() => document.getElementById('recs').dataset.user === {user!r}")
    wait_for_recs(page)
    assert "cold start" in page.locator("#recs-note").inner_text()
    assert ids(page, HISTORY) == []
    before = ids(page, REC)
    assert before
    page.locator(REC).first.get_by_test_id("like-button").click()
    after = wait_for_change(page, before)
    assert before[0] not in after
    assert ids(page, HISTORY) == [before[0]]
    problems.assert_none()


def test_diversity_slider_requests_the_value_and_keeps_a_valid_list(context: Any, server: Server) -> None:
    page, problems = open_page(context, server)
    history = set(ids(page, HISTORY))
    before = ids(page, REC)
    slider = page.get_by_test_id("diversity")
    slider.focus()
    with page.expect_request(lambda r: "/recommendations?" in r.url and "diversity=0.5" in r.url):
        for _ in range(5):
            page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('recs').dataset.diversity === '0.5'")
    wait_for_recs(page)
    assert page.get_by_test_id("diversity-value").inner_text() == "0.5"
    after = ids(page, REC)
    assert len(after) == len(before) and len(set(after)) == len(after)
    assert not set(after) & history
    with page.expect_request(lambda r: "diversity=1.0" in r.url):
        page.keyboard.press("End")
    page.wait_for_function("() => document.getElementById('recs').dataset.diversity === '1.0'")
    wait_for_recs(page)
    assert len(ids(page, REC)) == len(before)
    problems.assert_none()


def test_search_box_and_similar_items_show_results(context: Any, server: Server) -> None:
    page, problems = open_page(context, server)
    title = page.locator(REC).first.locator(".title").inner_text()
    word = max((w.strip("(),.:") for w in title.split()), key=lambda w: (w.isalpha(), len(w)))
    results = page.get_by_test_id("search-results")
    assert results.is_hidden()
    with page.expect_response(lambda r: "/search?" in r.url) as answered:
        page.get_by_test_id("search-input").fill(word)
    assert answered.value.status == 200
    results.wait_for(state="visible")
    page.wait_for_selector('[data-testid="search-results"] [data-testid="search-card"]')
    scores = results.locator('[data-testid="search-card"] .score').all_inner_texts()
    assert scores and all(float(s) == float(s) for s in scores), scores
    page.get_by_test_id("search-input").press("Escape")
    results.wait_for(state="hidden")
    first = page.locator(REC).first
    item_id = first.get_attribute("data-item-id")
    with page.expect_response(lambda r: f"/items/{item_id}/similar" in r.url):
        first.get_by_test_id("similar-button").click()
    results.wait_for(state="visible")
    assert "Similar to" in page.locator("#search-title").inner_text()
    similar = ids(page, '[data-testid="search-results"] [data-testid="search-card"]')
    assert similar and item_id not in similar
    problems.assert_none()


def test_add_item_form_posts_the_item_with_a_poster_and_shows_a_conflict(
    context: Any, server: Server, tmp_path: Path
) -> None:
    page, problems = open_page(context, server)
    item_id = f"browser-{uuid.uuid4().hex[:8]}"
    page.locator("#add-item summary").click()

    def submit() -> Any:
        page.get_by_test_id("add-title").fill("Browser Test Galaxy Starship")
        page.get_by_test_id("add-item-id").fill(item_id)
        page.get_by_test_id("add-description").fill("A starship crew explores a nebula near a distant galaxy.")
        page.get_by_test_id("add-genres").fill("space, adventure")
        page.get_by_test_id("add-image").set_input_files(str(tiny_png(tmp_path / "poster.png")))
        with page.expect_response(lambda r: r.url.endswith("/items") and r.request.method == "POST") as answered:
            page.get_by_test_id("add-submit").click()
        return answered.value

    response = submit()
    assert response.status == 200, response.text()
    assert response.request.headers.get("x-api-key") == server.api_key
    assert response.json()["item_id"] == item_id
    page.wait_for_function("() => document.getElementById('status').dataset.kind === 'ok'")
    assert item_id in status(page)[1]
    assert page.get_by_test_id("add-title").input_value() == ""  # the form was reset
    problems.assert_none()

    again = submit()  # the same id again: the API's 4xx detail is shown on the page
    assert 400 <= again.status < 500
    page.wait_for_function("() => document.getElementById('status').dataset.kind === 'error'")
    text = status(page)[1]
    assert "POST /items" in text and str(again.status) in text and str(again.json()["detail"]) in text, text
    assert page.get_by_test_id("add-title").input_value() != ""  # kept, to fix and resend
    assert problems.http == [f"POST {server.url}/items: {again.status}"]


def test_write_without_a_key_shows_the_api_error(context: Any, server: Server) -> None:
    page, problems = open_page(context, server, key=False)
    assert page.get_by_test_id("api-key").input_value() == ""
    before = ids(page, REC)
    page.locator(REC).first.get_by_test_id("like-button").click()
    page.wait_for_function("() => document.getElementById('status').dataset.kind === 'error'")
    text = status(page)[1]
    assert "POST /events" in text and ("401" in text or "403" in text), text
    assert page.get_by_test_id("status").is_visible()
    assert ids(page, REC) == before  # nothing changed
    assert all(": 401" in h or ": 403" in h for h in problems.http), problems.http
    assert not problems.foreign and not problems.failed
