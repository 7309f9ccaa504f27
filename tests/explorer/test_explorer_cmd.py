"""The ``pypaxos explore`` command line: scenario listing, bad input, serving on loopback."""

from __future__ import annotations

import argparse
import asyncio
import urllib.request

import pytest

from pypaxos.cli import explore as cmd
from pypaxos.explorer.scenarios import SCENARIOS
from pypaxos.explorer.server import make_app
from pypaxos.explorer.session import Session


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return parser.parse_args(argv)


def test_scenario_list_prints_every_scenario_with_its_explanation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cmd.run(parse("--scenario", "list")) == 0
    out = capsys.readouterr().out
    for scenario in SCENARIOS.values():
        assert f"{scenario.name}: {scenario.title}" in out
    assert "[bugs: accept-below-promise]" in out
    assert "Paxos Made Simple" in " ".join(out.split())  # explanations are wrapped


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd.run(parse("--scenario", "nope", "--no-browser")) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err


def test_unknown_bug_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        parse("--bug", "no-such-bug")


def test_serve_prints_its_url_and_answers_over_real_http(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> str:
        task = asyncio.create_task(
            cmd.serve(make_app(Session(SCENARIOS["normal"])), 0, open_browser=False)
        )
        url = ""
        for _ in range(200):
            await asyncio.sleep(0.02)
            out = capsys.readouterr().out
            if "http://" in out:
                url = out.split()[2]
                break
        assert url.startswith("http://127.0.0.1:")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url + "api/state").read())
        task.cancel()
        return body.decode()

    assert '"scenario": {"name": "normal"' in asyncio.run(main())
