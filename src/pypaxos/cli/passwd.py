"""``pypaxos passwd``: a ``[[users]]`` entry for ``cluster.toml``, with the password hashed.

The password is read from the terminal without echo, or from the first line of standard input
when it is not a terminal (for scripts); it is never taken from the command line, where other
users could see it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from pypaxos.cli.usage import UsageError
from pypaxos.runtime.auth import Role, hash_password


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="default", help="user name (default: default)")
    parser.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.READ_WRITE.value,
        help="what the user may run (default: read-write)",
    )


def run(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("an empty password protects nothing")
    print("[[users]]")
    print(f"name = {json.dumps(args.name)}")
    print(f'role = "{args.role}"')
    print(f'password_hash = "{hash_password(password)}"')
    return 0
