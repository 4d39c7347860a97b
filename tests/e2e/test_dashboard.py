"""The dashboard in headless Chromium (Debian's, driven by Playwright; never a downloaded
browser) against the real linkage service: denied without a token, signs in, runs a query, and
shows exactly the API's published figures; saves a screenshot for people to look at.

Under CI=true a missing Chromium or Playwright fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from linkage.server import RunningService
from tests.conftest import require
from tests.hotspot_world import POLICY_ID, analyst_token, start_linked_service
from tests.oauth_clients import TEST_SECRETS

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT_DIR = Path(os.environ.get("PLACELINK_SCREENSHOTS", "test-artifacts"))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_linked_service(tmp_path_factory.mktemp("dashboard"), 4000)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "Playwright (pip install playwright)")
    require(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def api_answer(service: RunningService, query: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{service.url}/v1/policies/{POLICY_ID}/hotspots",
        json=query,
        headers={"Authorization": f"Bearer {analyst_token(service.url)}"},
        timeout=30,
    )
    assert response.ok, response.text
    body: dict[str, Any] = response.json()
    return body


def test_signs_in_queries_and_shows_the_apis_numbers(service: RunningService, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    outside: list[str] = []
    page.on(
        "request", lambda r: outside.append(r.url) if not r.url.startswith(service.url) else None
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{service.url}/dashboard")
    # deny by default: a wrong secret is refused and shows nothing
    page.fill("#client-id", "analyst")
    page.fill("#client-secret", "not-the-secret")
    page.click("#signin-form button")
    page.wait_for_selector("#signin-error:has-text('refused')")
    assert page.is_hidden("#query") and page.is_hidden("#results")
    # a client without the hot-spot scope gets a token but no figures
    page.fill("#client-id", "admin")
    page.fill("#client-secret", TEST_SECRETS["admin"])
    page.click("#signin-form button")
    page.wait_for_selector("#signin-error:has-text('scope')")
    assert page.is_hidden("#query")
    # sign in with the analyst's client credentials and ask: known to 3+ agencies, police among
    # them, from 2025
    page.fill("#client-id", "analyst")
    page.fill("#client-secret", TEST_SECRETS["analyst"])
    page.click("#signin-form button")
    page.wait_for_selector("#query:not([hidden])")
    page.select_option("#min-agencies", "3")
    page.check("#all-police")
    page.select_option("#since", "2025-01")
    page.click("#run")
    page.wait_for_selector("body[data-ready='yes']")
    query = {"min_agencies": 3, "all_of": ["police"], "none_of": [], "flags": [],
             "since": "2025-01", "until": None}  # fmt: skip
    table = api_answer(
        service, {"kind": "table", "filter": query, "measures": [{"name": "people"}]}
    )
    shown = {
        row.get_attribute("data-area"): row.query_selector(
            "[data-testid=ranked-value]"
        ).inner_text()
        for row in page.query_selector_all("#ranked tbody tr[data-area]:not([data-area=total])")
    }
    assert shown == {row["area"]: str(row["people"]) for row in table["rows"]}
    assert page.inner_text("[data-testid=ranked-total]") == str(table["total"]["people"])
    grid = {g.get_attribute("data-area"): g.get_attribute("data-value")
            for g in page.query_selector_all("#fig-grid g[data-area]")}  # fmt: skip
    assert grid == {row["area"]: str(row["people"]) for row in table["rows"]}
    matrix = api_answer(service, {"kind": "cooccurrence", "filter": query})
    for row in matrix["rows"]:
        for agency in matrix["columns"]:
            cell = page.query_selector(f"td[data-pair='{row['agency']}|{agency}']")
            assert cell is not None and cell.inner_text() == str(row[agency])
    for figure in ("#fig-grid", "#fig-ranked", "#fig-trend", "#fig-matrix"):
        caption = page.inner_text(f"{figure} .treatment")
        assert "1 to 7 shown as *" in caption and "Query #" in caption
    assert page.query_selector("#fig-trend svg path[data-area]") is not None
    assert not errors and not outside, (errors, outside)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "dashboard.png"), full_page=True)
    # sign out forgets the token
    page.click("#signout")
    assert page.evaluate("sessionStorage.length") == 0 and page.is_visible("#signin")
    page.close()
