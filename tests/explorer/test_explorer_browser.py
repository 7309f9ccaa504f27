"""A real browser drives the explorer page by clicks alone (Playwright + Debian's Chromium).

Skipped, with the reason, when Playwright for Python or /usr/bin/chromium is missing
(``pip install playwright`` and ``apt-get install chromium``; ``playwright install`` is not
needed).  Each server runs as a subprocess on a free port on 127.0.0.1 and is stopped by pid:
``pypaxos explore``, and ``pypaxos check synod --explore`` for a model-checker counterexample.
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


def serve(argv: list[str]) -> Iterator[str]:
    """Start a server process, yield the URL it prints, then stop it."""
    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        match = None
        for line in proc.stdout:  # ``check --explore`` prints its report first
            seen.append(line)
            if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
                break
        assert match, f"no URL in the server's output: {seen!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    yield from serve(["pypaxos", "explore", "--port", "0", "--no-browser"])


@pytest.fixture(scope="module")
def trace_url() -> Iterator[str]:
    check = ["check", "synod", "--bug", "learner-counts-duplicates", "--max-ballot", "0"]
    yield from serve(
        [
            "pypaxos",
            *check,
            "--max-crashes",
            "0",
            "--quiet",
            "--explore",
            "--port",
            "0",
            "--no-browser",
        ]
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    yield context, errors
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def open_page(context: tuple[Any, list[str]], url: str) -> Any:
    browser_context, errors = context
    page = browser_context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector(".card[data-actor=P1]")
    return page


@pytest.fixture
def page(context: tuple[Any, list[str]], server_url: str) -> Any:
    return open_page(context, server_url)


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


def test_checker_counterexample_opens_at_its_violation_and_steps_back(
    context: tuple[Any, list[str]], trace_url: str, tmp_path: Path
) -> None:
    page = open_page(context, trace_url)
    assert page.inner_text("#step") == "8" and page.inner_text("#total") == "8"
    banner = page.inner_text("#banner")
    assert "Safety violation" in banner and "learner L1 decided 'v1', which is not chosen" in banner
    assert "learner-counts-duplicates" in page.inner_text("#title")
    # The checker's steps are listed, the failing one marked as the current one.
    assert page.locator("#steps li").count() == 8
    assert "L1 <- Accepted 0.4=v1 from A3" in page.inner_text("#steps li.current")
    assert page.get_attribute("#steps li.current", "data-step") == "8"
    page.screenshot(path=str(tmp_path / "explorer-trace.png"), full_page=True)
    click_and_wait(page, "#back")
    assert page.inner_text("#step") == "7"
    assert "Safety violation" not in page.inner_text("#banner")
    assert page.get_attribute("#steps li.current", "data-step") == "7"
    # Clicking a listed step goes there: back to the violation.
    click_and_wait(page, "#steps li[data-step='8'] button")
    assert "Safety violation" in page.inner_text("#banner")


def test_each_tab_explores_on_its_own(context: tuple[Any, list[str]], trace_url: str) -> None:
    first = open_page(context, trace_url)
    second = open_page(context, trace_url)
    ids = [p.evaluate("location.hash") for p in (first, second)]
    assert all(i.startswith("#s=") for i in ids) and ids[0] != ids[1]
    click_and_wait(first, "#back")
    second.reload()
    second.wait_for_selector(".card[data-actor=P1]")
    # The reloaded tab came back to its own session, still at the failing step.
    assert second.evaluate("location.hash") == ids[1]
    assert second.inner_text("#step") == "8" and first.inner_text("#step") == "7"
