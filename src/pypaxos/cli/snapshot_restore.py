"""``pypaxos snapshot restore FILE [--data DIR | --config cluster.toml] [--node ID ...]``: seed
a new cluster's data directories from a backup (``runtime.restore``).

The configuration (``--config``, or ``DIR/cluster.toml``) must be a new cluster's: another
``cluster_id`` than the backup's, and each member's directory absent or empty.  With
``--node`` only those members are seeded (one machine per member: each restores its own).
The file is checked whole before anything is written, and each directory is either seeded
whole or not at all.  Exit 0 when seeded, 1 when refused (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pypaxos.cli.usage import UsageError
from pypaxos.runtime.backup_file import BackupFileError
from pypaxos.runtime.config import CONFIG_NAME, ConfigError, load_config
from pypaxos.runtime.restore import RestoreError, restore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the backup file to restore")
    parser.add_argument(
        "--data", type=Path, default=Path("data"), help="data directory with cluster.toml"
    )
    parser.add_argument("--config", type=Path, help="the new cluster's configuration file")
    parser.add_argument(
        "--node", type=int, action="append", metavar="ID", help="seed only this member"
    )


def run(args: argparse.Namespace) -> int:
    path = args.config if args.config is not None else args.data / CONFIG_NAME
    try:
        config = load_config(path)
    except (ConfigError, OSError) as error:
        raise UsageError(str(error)) from None
    try:
        restored = restore(args.file, config, args.node)
    except (BackupFileError, RestoreError, OSError) as error:
        print(f"pypaxos: error: snapshot restore: {error}", file=sys.stderr)
        return 1
    header = restored.header
    for node_dir in restored.node_dirs:
        print(f"seeded {node_dir}")
    print(
        f"restored {args.file} (cluster {header.cluster_id}, slot {header.slot}, "
        f"{header.keys} keys, digest {header.state_digest}) into cluster {config.cluster_id}"
    )
    return 0
