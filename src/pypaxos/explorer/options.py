"""Serving options shared by ``pypaxos explore`` and the commands that open it (``check synod
--explore``), kept apart from ``cmd`` so that parsing them does not import aiohttp."""

from __future__ import annotations

import argparse

DEFAULT_PORT = 8321
HOST = "127.0.0.1"


def add_serve_arguments(parser: argparse._ActionsContainer, *, what: str = "") -> None:
    """``--port`` and ``--no-browser``; ``what`` prefixes their help (e.g. "with --explore: ")."""
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"{what}port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help=f"{what}only print the URL, do not open a browser",
    )
