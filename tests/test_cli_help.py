"""Every ``pypaxos`` command, and every option and argument of each, says what it is for."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from pypaxos.cli.main import build_parser


def undocumented(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    """Each option or positional argument under ``parser`` that has no help text."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from undocumented(sub, f"{path} {name}")
        elif isinstance(action, argparse._HelpAction):
            continue
        elif not action.help:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_every_option_of_every_command_has_help() -> None:
    assert list(undocumented(build_parser(None), "pypaxos")) == []


def test_the_check_finds_an_option_without_help() -> None:
    parser = argparse.ArgumentParser(prog="demo")
    sub = parser.add_subparsers().add_parser("run")
    sub.add_argument("--with-help", help="said")
    sub.add_argument("--bare")
    assert list(undocumented(parser, "demo")) == ["demo run --bare"]


def test_help_wraps_at_the_terminal_width_in_every_subcommand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The formatter finds the width itself (argparse's own would import ``shutil``): COLUMNS
    # is honoured as before, down to the nested subcommands' parsers.
    parser = build_parser(["member", "add"])
    member = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "member"
    ]
    for columns in (40, 100):
        monkeypatch.setenv("COLUMNS", str(columns))
        for text in (parser.format_help(), member.format_help()):
            widths = [len(line) for line in text.splitlines()]
            assert max(widths) <= columns - 2
            assert max(widths) > (columns - 2) // 2  # wrapped at that width, not narrower
