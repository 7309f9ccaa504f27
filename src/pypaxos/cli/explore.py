"""``pypaxos explore``: serve the explorer on 127.0.0.1 and open it in a browser.

    pypaxos explore                          the normal case, on port 8321
    pypaxos explore --scenario dueling       start from a built-in scenario
    pypaxos explore --scenario list          list the scenarios with their explanations
    pypaxos explore --bug accept-below-promise --port 0 --no-browser
    pypaxos explore --trace report.txt       a saved ``pypaxos check synod`` counterexample

``--port 0`` picks a free port; the URL is always printed first (tests read it from there).
``pypaxos check synod --explore`` and ``pypaxos sim synod --explore`` serve a counterexample
straight away through ``serve_session``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import webbrowser

from aiohttp import web

from pypaxos.core.bugs import SynodBug, parse_bugs
from pypaxos.explorer.options import HOST, add_serve_arguments
from pypaxos.explorer.scenarios import SCENARIO_FOR_BUG, SCENARIOS
from pypaxos.explorer.server import make_app
from pypaxos.explorer.session import Session
from pypaxos.explorer.trace import TraceError, parse_check_output, trace_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        metavar="NAME",
        help=f"scenario to open ({', '.join(SCENARIOS)}); 'list' describes them",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="open the counterexample in a saved 'pypaxos check synod' report, at its failing "
        "step ('-' reads standard input)",
    )
    add_serve_arguments(parser)
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        choices=sorted(bug.value for bug in SynodBug),
        help="switch on a planted bug in the actors (repeatable)",
    )


def print_scenarios() -> None:
    for scenario in SCENARIOS.values():
        bugs = (
            f"  [bugs: {', '.join(b.value for b in sorted(scenario.config.bugs))}]"
            if scenario.config.bugs
            else ""
        )
        print(f"{scenario.name}: {scenario.title}{bugs}")
        print(textwrap.indent(textwrap.fill(scenario.explanation, 88), "    "))
        print()


def run(args: argparse.Namespace) -> int:
    if args.scenario == "list":
        print_scenarios()
        return 0
    if args.trace is not None:
        return _run_trace(args)
    bugs = parse_bugs(args.bug, SynodBug)  # argparse's choices let only known names in
    name = args.scenario
    if name is None:
        name = next((SCENARIO_FOR_BUG[b] for b in sorted(bugs) if b in SCENARIO_FOR_BUG), "normal")
    if name not in SCENARIOS:
        print(
            f"pypaxos explore: no scenario {name!r}; choose from {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    return serve_session(Session(SCENARIOS[name], bugs), args.port, not args.no_browser)


def _run_trace(args: argparse.Namespace) -> int:
    if args.scenario is not None or args.bug:
        print(
            "pypaxos explore: --trace takes its deployment and bugs from the report; "
            "leave out --scenario and --bug",
            file=sys.stderr,
        )
        return 2
    try:
        if args.trace == "-":
            text = sys.stdin.read()
        else:
            with open(args.trace, encoding="utf-8") as report:
                text = report.read()
        scenario = trace_scenario(parse_check_output(text))
    except (OSError, TraceError) as error:
        print(f"pypaxos explore: cannot open {args.trace}: {error}", file=sys.stderr)
        return 2
    return serve_session(Session(scenario), args.port, not args.no_browser)


def serve_session(session: Session, port: int, open_browser: bool) -> int:
    """Serve the explorer around ``session`` until Ctrl-C: 0, or 2 if the port is taken."""
    try:
        asyncio.run(serve(make_app(session), port, open_browser=open_browser))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(f"pypaxos explore: cannot listen on {HOST}:{port}: {error}", file=sys.stderr)
        return 2
    return 0


async def serve(app: web.Application, port: int, *, open_browser: bool) -> None:
    """Serve ``app`` on 127.0.0.1 until cancelled; print the URL once listening."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://{HOST}:{bound}/"
        print(f"pypaxos explorer: {url}  (Ctrl-C to stop)", flush=True)
        if open_browser:
            await asyncio.get_running_loop().run_in_executor(None, webbrowser.open, url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(prog="pypaxos explore", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args())
