"""``pypaxos certs --config FILE``: a development CA and a certificate for every member.

The files go to ``--dir`` (default: the folder of the file's ``[tls] ca_file``, else ``tls/``
next to the file): ``ca.crt``/``ca.key`` (made once, reused after), ``node-N.crt``/``.key``
per member naming ``pypaxos:node:N`` and the member's hosts, and ``client.crt``/``.key`` for
tools.  Keys are owner-only.  ``--renew`` replaces existing node and client certificates (same
CA); ``kill -HUP`` each node to use them.  ``--write-config`` adds the ``[tls]`` table to the
file (TLS on the peer and client ports); without it, a file with no table is shown the table.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pypaxos.cli.usage import UsageError
from pypaxos.cluster.config import create_certs, tls_settings
from pypaxos.runtime.config import ConfigError, load_config, render_config, write_config
from pypaxos.transport.certs import CERT_DAYS, CertError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="cluster.toml")
    parser.add_argument(
        "--dir", type=Path, help="where the files go (default: [tls] ca_file's folder, else tls/)"
    )
    parser.add_argument(
        "--days", type=int, default=CERT_DAYS, help=f"node certificates' lifetime ({CERT_DAYS})"
    )
    parser.add_argument(
        "--renew", action="store_true", help="replace existing node and client certificates"
    )
    parser.add_argument(
        "--write-config", action="store_true", help="add the [tls] table to the file"
    )


def run(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise UsageError(f"--days must be positive, not {args.days}")
    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from error
    if args.dir is not None:
        directory = args.dir.resolve()
    elif config.tls is not None:
        directory = config.tls.ca_file.parent
    else:
        directory = config.path.resolve().parent / "tls"
    try:
        made = create_certs(config, directory, days=args.days, renew=args.renew)
    except CertError as error:
        raise UsageError(str(error)) from error
    print(f"certificates in {directory}: ca.crt, client.crt and, for each member:")
    for cert in made:
        print(f"  node {cert.node_id}  {cert.cert_file.name}  {cert.key_file.name} (0600)")
    settings = tls_settings(directory)
    if config.tls is not None:
        if config.tls.files(made[0].node_id).cert_file != made[0].cert_file:
            print(f"note: {config.path} [tls] names other files; these are not the ones it uses")
        elif args.renew:
            print("send each running node SIGHUP to use the new certificates")
        return 0
    if args.write_config:
        write_config(dataclasses.replace(config, tls=settings))
        print(f"{config.path}: [tls] added; restart the nodes to turn TLS on")
        return 0
    text = render_config(dataclasses.replace(config, tls=settings))
    table = text[text.index("[tls]") : text.index("[[members]]")].strip()
    print(f"add this to {config.path} (or run again with --write-config):\n\n{table}")
    return 0
