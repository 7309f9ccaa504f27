"""A counterexample over HTTP: the API reports it, each tab has its own session, and the
command lines (``check synod --explore``, ``explore --trace``) serve it."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pypaxos.cli import explore as cmd
from pypaxos.cli.main import main
from pypaxos.explorer.server import Sessions, make_app
from pypaxos.explorer.session import Session
from pypaxos.explorer.trace import parse_check_output, trace_scenario

Json = dict[str, Any]
STORED = Path(__file__).resolve().parent.parent / "modelcheck" / "counterexamples"
REPORT = STORED / "learner-counts-duplicates.txt"
COUNTEREXAMPLE = parse_check_output(REPORT.read_text(encoding="utf-8"))
PROBLEM = "learner L1 decided 'v1', which is not chosen"
CHECK_ARGS = [
    "check",
    "synod",
    "--bug",
    "learner-counts-duplicates",
    "--max-ballot",
    "0",
    "--max-crashes",
    "0",
    "--quiet",
]


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = make_app(Session(trace_scenario(COUNTEREXAMPLE)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def get(client: TestClient[Any, Any], path: str, status: int = 200) -> Json:
    response = await client.get(path)
    body: Json = await response.json()
    assert response.status == status, body
    return body


async def post(client: TestClient[Any, Any], path: str, body: object, status: int = 200) -> Json:
    response = await client.post(path, json=body)
    answer: Json = await response.json()
    assert response.status == status, answer
    return answer


@pytest.mark.asyncio
async def test_a_trace_session_reports_the_violation_and_its_steps(
    client: TestClient[Any, Any],
) -> None:
    state = await get(client, "/api/state")
    assert state["scenario"]["name"] == "counterexample"
    assert state["step"] == state["total"] == 8
    assert state["violations"] == [PROBLEM]
    assert state["notes"] == list(COUNTEREXAMPLE.actions)
    assert state["history"][-1].startswith("deliver ")
    state = await post(client, "/api/command", {"command": "back"})
    assert state["step"] == 7 and state["violations"] == []
    state = await post(client, "/api/command", {"command": "goto 3"})
    assert state["step"] == 3 and state["next_command"] == state["history"][3]
    state = await post(client, "/api/command", {"command": "end"})
    assert state["step"] == 8 and state["violations"] == [PROBLEM]


@pytest.mark.asyncio
async def test_the_counterexample_stays_in_the_scenario_list(client: TestClient[Any, Any]) -> None:
    scenarios = await (await client.get("/api/scenarios")).json()
    assert scenarios[0]["name"] == "counterexample"
    assert scenarios[0]["bugs"] == ["learner-counts-duplicates"]
    assert "normal" in [s["name"] for s in scenarios]
    state = await post(client, "/api/scenario", {"name": "normal"})
    assert state["violations"] == [] and state["notes"] == []
    state = await post(client, "/api/scenario", {"name": "counterexample"})
    assert state["step"] == 8 and state["violations"] == [PROBLEM]


@pytest.mark.asyncio
async def test_each_tab_gets_a_session_of_its_own(client: TestClient[Any, Any]) -> None:
    first = await post(client, "/api/session", {})
    second = await post(client, "/api/session", {})
    assert first["session"] != second["session"]
    # Each starts as the server's first session started: at the failing step.
    assert first["state"]["step"] == second["state"]["step"] == 8
    one, two = (f"?session={s['session']}" for s in (first, second))
    state = await post(client, f"/api/command{one}", {"command": "back"})
    assert state["step"] == 7
    assert (await get(client, f"/api/state{two}"))["step"] == 8
    assert (await get(client, "/api/state"))["step"] == 8  # no id: the first session
    assert (await get(client, f"/api/state{one}"))["step"] == 7
    svg = await client.get(f"/api/diagram.svg{one}")
    assert svg.status == 200 and (await svg.text()).startswith("<svg")
    missing = await get(client, "/api/state?session=nope", status=404)
    assert "no session 'nope'" in missing["error"]
    response = await client.post("/api/command?session=nope", json={"command": "back"})
    assert response.status == 404


def test_sessions_are_bounded_and_the_least_recently_used_goes_first() -> None:
    sessions = Sessions(Session(trace_scenario(COUNTEREXAMPLE)), limit=2)
    a, _ = sessions.create()
    b, _ = sessions.create()
    assert sessions.get(a) is not None  # a is now the most recently used
    c, _ = sessions.create()
    assert len(sessions) == 2
    assert sessions.get(b) is None and sessions.get(a) is not None and sessions.get(c) is not None
    assert sessions.get(None) is sessions.first


def test_check_explore_serves_the_trace_over_real_http() -> None:
    """The real command in a subprocess on a free port; stopped by pid."""
    argv = [*CHECK_ARGS, "--explore", "--port", "0", "--no-browser"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypaxos", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        url = None
        for line in proc.stdout:
            seen.append(line)
            if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
                url = match.group(0)
                break
        assert url is not None, f"no URL in the output: {seen}"
        assert "VIOLATION: " + PROBLEM in "".join(seen)
        assert "failing step (8)" in "".join(seen)
        with urllib.request.urlopen(url + "api/state", timeout=10) as response:
            state = json.loads(response.read())
        assert state["violations"] == [PROBLEM] and state["step"] == state["total"] == 8
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_check_explore_without_a_violation_serves_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> int:
        raise AssertionError("the explorer must not be started")

    monkeypatch.setattr(cmd, "serve_session", refuse)
    argv = ["check", "synod", "--proposers", "1", "--max-ballot", "0", "--quiet", "--explore"]
    assert main(argv) == 0
    assert "no violation, so no counterexample to explore" in capsys.readouterr().out


def test_check_explore_returns_the_checks_status_after_serving(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Session, int, bool]] = []

    def serve(session: Session, port: int, open_browser: bool) -> int:
        served.append((session, port, open_browser))
        return 0

    monkeypatch.setattr(cmd, "serve_session", serve)
    assert main([*CHECK_ARGS, "--explore", "--port", "8999", "--no-browser"]) == 1
    ((session, port, open_browser),) = served
    assert (port, open_browser) == (8999, False)
    assert session.state()["violations"] == [PROBLEM]
    monkeypatch.setattr(cmd, "serve_session", lambda *args: 2)  # the port was taken
    assert main([*CHECK_ARGS, "--explore"]) == 2


def test_check_help_describes_the_explore_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "synod", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--explore" in text and "failing step" in text
    assert "with --explore: port on 127.0.0.1" in text and "--no-browser" in text


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return parser.parse_args(argv)


def test_explore_trace_opens_a_saved_report(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Session] = []
    monkeypatch.setattr(cmd, "serve_session", lambda session, *_: served.append(session) or 0)
    assert cmd.run(parse("--trace", str(REPORT), "--no-browser")) == 0
    assert served[0].state()["violations"] == [PROBLEM]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("--trace", "/nonexistent/report.txt"), "cannot open /nonexistent/report.txt"),
        (("--trace", str(REPORT), "--scenario", "normal"), "leave out --scenario and --bug"),
        (("--trace", __file__), "no '# pypaxos check synod' line"),
    ],
)
def test_explore_trace_refuses_what_it_cannot_open(
    argv: tuple[str, ...], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cmd.run(parse(*argv)) == 2
    assert fragment in capsys.readouterr().err
