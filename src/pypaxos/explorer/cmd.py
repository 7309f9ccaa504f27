"""``pypaxos explore``: serve the explorer on 127.0.0.1 and open it in a browser.

    pypaxos explore                          the normal case, on port 8321
    pypaxos explore --scenario dueling       start from a built-in scenario
    pypaxos explore --scenario list          list the scenarios with their explanations
    pypaxos explore --bug accept-below-promise --port 0 --no-browser

``--port 0`` picks a free port; the URL is always printed first (tests read it from there).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import webbrowser

from aiohttp import web

from pypaxos.core.bugs import SYNOD_BUGS
from pypaxos.explorer.scenarios import SCENARIO_FOR_BUG, SCENARIOS
from pypaxos.explorer.server import make_app
from pypaxos.explorer.session import Session

DEFAULT_PORT = 8321
HOST = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        metavar="NAME",
        help=f"scenario to open ({', '.join(SCENARIOS)}); 'list' describes them",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the URL, do not open a browser"
    )
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        choices=sorted(SYNOD_BUGS),
        help="switch on a planted bug in the actors (repeatable)",
    )


def print_scenarios() -> None:
    for scenario in SCENARIOS.values():
        bugs = (
            f"  [bugs: {', '.join(sorted(scenario.config.bugs))}]" if scenario.config.bugs else ""
        )
        print(f"{scenario.name}: {scenario.title}{bugs}")
        print(textwrap.indent(textwrap.fill(scenario.explanation, 88), "    "))
        print()


def run(args: argparse.Namespace) -> int:
    if args.scenario == "list":
        print_scenarios()
        return 0
    bugs = frozenset(args.bug)
    name = args.scenario
    if name is None:
        name = next((SCENARIO_FOR_BUG[b] for b in sorted(bugs) if b in SCENARIO_FOR_BUG), "normal")
    if name not in SCENARIOS:
        print(
            f"pypaxos explore: no scenario {name!r}; choose from {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    session = Session(SCENARIOS[name], bugs)
    try:
        asyncio.run(serve(make_app(session), args.port, open_browser=not args.no_browser))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(f"pypaxos explore: cannot listen on {HOST}:{args.port}: {error}", file=sys.stderr)
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
