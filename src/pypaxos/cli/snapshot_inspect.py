"""``pypaxos snapshot inspect FILE [--json]``: check a backup whole and say what it holds (its
cluster, slot, keys, state digest).  Exit 0 when intact, 1 when damaged or not a backup."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pypaxos.runtime.backup_file import BackupFileError
from pypaxos.runtime.restore import load_backup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the backup file")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    try:
        header, machine = load_backup(args.file)
    except (BackupFileError, OSError) as error:
        print(f"pypaxos: error: snapshot inspect: {error}", file=sys.stderr)
        return 1
    fields: dict[str, object] = {
        "file": str(args.file),
        "format": header.format,
        "cluster_id": header.cluster_id,
        "node_id": header.node_id,
        "slot": header.slot,
        "keys": header.keys,
        "state_digest": header.state_digest,
        "chunks": header.chunk_count,
        "created_unix_ms": header.created_unix_ms,
        "sessions": machine.session_count,
        "bytes": args.file.stat().st_size,
    }
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            print(f"{name}: {value}")
    return 0
