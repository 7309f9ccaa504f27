"""The options of every command that talks to a running cluster: ``--data DIR`` (a local
cluster's directory, its addresses and TLS from ``cluster.toml``) or ``--endpoints
HOST:PORT,...`` (nodes anywhere) with ``--tls-ca FILE`` and ``--user NAME`` (the password from
``$PYPAXOS_PASSWORD``, never the command line, where ``ps`` would show it)."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path

from pypaxos.cli.usage import PASSWORD_ENV, UsageError
from pypaxos.cluster.remote import parse_endpoints


def add_cluster_options(parser: argparse.ArgumentParser, endpoints_help: str) -> None:
    """``--data``, ``--endpoints``, ``--tls-ca`` and ``--user``."""
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (./data)")
    parser.add_argument("--endpoints", metavar="HOST:PORT,...", help=endpoints_help)
    parser.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="with --endpoints: TLS, trusting this CA"
    )
    parser.add_argument(
        "--user", help=f"with --endpoints: AUTH as this user (password from ${PASSWORD_ENV})"
    )


def credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(user, password)`` for ``--user``, the password from the environment."""
    if args.user is None:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        raise UsageError(f"--user needs the password in ${PASSWORD_ENV}")
    return args.user, password


def endpoints_and_tls(args: argparse.Namespace) -> tuple[list[str], ssl.SSLContext | None]:
    """``--endpoints`` parsed and ``--tls-ca`` loaded; ``UsageError`` naming the bad one."""
    try:
        endpoints = parse_endpoints(args.endpoints)
    except ValueError as error:
        raise UsageError(f"--endpoints: {error}") from None
    tls = None
    if args.tls_ca is not None:
        try:
            tls = ssl.create_default_context(cafile=str(args.tls_ca))
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"--tls-ca {args.tls_ca}: {error}") from None
    return endpoints, tls
