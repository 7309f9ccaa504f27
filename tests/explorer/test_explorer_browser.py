"""A real browser drives the explorer page by clicks alone (Playwright + Debian's Chromium).

Skipped, with the reason, when Playwright for Python or /usr/bin/chromium is missing
(``pip install playwright`` and ``apt-get install chromium``; ``playwright install`` is not
needed).  The server runs as a subprocess on a free port on 127.0.0.1 and is stopped by pid.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypaxos.explorer", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL in the server's first line: {line!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server_url)
    page.wait_for_selector(".card[data-actor=P1]")
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def click_and_wait(page: Any, selector: str) -> None:
    """Click, then wait until the step counter shows the server's answer."""
    before = page.inner_text("#step")
    page.click(selector)
    page.wait_for_function(
        "before => document.getElementById('step').textContent !== before", arg=before
    )


def open_scenario(page: Any, name: str) -> None:
    page.select_option("#scenario", name)
    page.wait_for_selector(f"body[data-scenario='{name}']")


def test_dueling_proposers_decided_by_clicks(page: Any, tmp_path: Path) -> None:
    open_scenario(page, "dueling")
    assert page.inner_text("#title") == "Dueling proposers"
    assert "Nothing chosen yet" in page.inner_text("#banner")
    # One message delivered by its own button, then the Step button until L1 has decided.
    click_and_wait(page, "#flight li[data-index='0'] button[data-op='deliver']")
    for _ in range(80):
        if page.query_selector(".card[data-actor=L1] dd.big") is not None:
            break
        click_and_wait(page, "#step-btn")
    decided = page.inner_text(".card[data-actor=L1] dd.big")
    assert page.inner_text("#chosen-value") == decided
    assert decided in ("x", "y")
    assert "Chosen" in page.inner_text("#banner")
    assert page.locator("#diagram svg g.msg").count() > 10
    page.screenshot(path=str(tmp_path / "explorer-dueling.png"), full_page=True)
    assert (tmp_path / "explorer-dueling.png").stat().st_size > 10_000
    # Back undoes the last step, which was the one L1 decided in.
    step = int(page.inner_text("#step"))
    click_and_wait(page, "#back")
    assert int(page.inner_text("#step")) == step - 1
    assert page.query_selector(".card[data-actor=L1] dd.big") is None


def test_bug_scenario_shows_the_violation_banner(page: Any, tmp_path: Path) -> None:
    open_scenario(page, "bug-ignore-promised-values")
    assert "bug: ignore-promised-values" in page.inner_text("#bugs")
    while not page.is_disabled("#forward"):
        click_and_wait(page, "#forward")
    banner = page.inner_text("#banner")
    assert "Safety violation" in banner and "more than one value chosen" in banner
    page.screenshot(path=str(tmp_path / "explorer-bug.png"), full_page=True)
