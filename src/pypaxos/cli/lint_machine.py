"""``pypaxos lint-machine package.module:Class``: flag nondeterminism in a replicated class.

Reads the source of the class's ``@command`` methods, its snapshot hooks and what they call on
``self`` (``testing.lint``), and prints one line per suspicious place.  Exit status: 0 nothing
found, 1 findings, 2 the class cannot be imported or is not a class.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pypaxos.cli.usage import UsageError
from pypaxos.testing.lint import RULES, lint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Flag the usual sources of nondeterminism in the commands of a replicated class: "
        "clock reads, random or unique values, the process environment, I/O, id()/hash(), "
        "threads, module-level state, iteration over sets. Exit 0: nothing found; 1: "
        "findings (one line each); 2: the class cannot be imported."
    )
    parser.add_argument(
        "target",
        metavar="MODULE:CLASS",
        help="the class to check, e.g. myapp.state:Inventory (the current directory is on the "
        "import path)",
    )
    parser.add_argument(
        "--rules", action="store_true", help="list the rules and what each one means, then exit"
    )


def load_attribute(target: str) -> object:
    """What ``MODULE:QUALNAME`` names (the current directory on the import path)."""
    module_name, colon, qualname = target.partition(":")
    if not colon or not module_name or not qualname:
        raise UsageError(f"expected MODULE:NAME, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name}: {error}") from None
    for part in qualname.split("."):
        if not hasattr(found, part):
            raise UsageError(f"{module_name} has no {qualname}")
        found = getattr(found, part)
    return found


def load_class(target: str) -> type:
    found = load_attribute(target)
    if not isinstance(found, type):
        raise UsageError(f"{target} is not a class")
    return found


def run(args: argparse.Namespace) -> int:
    if args.rules:
        for rule, meaning in RULES.items():
            print(f"{rule}: {meaning}")
        return 0
    cls = load_class(args.target)
    findings = lint(cls)
    for finding in findings:
        print(finding)
    noun = "finding" if len(findings) == 1 else "findings"
    print(f"{args.target}: {len(findings)} {noun}", file=sys.stderr)
    return 1 if findings else 0
