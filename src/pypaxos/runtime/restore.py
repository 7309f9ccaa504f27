"""Seeding a new cluster's data directories from a backup (``pypaxos snapshot restore``).

The backup file is read whole first (``runtime.backup_file``: CRCs, the file digest) into a
key-value machine, and the machine's state digest is recomputed and compared with the one the
file names: a damaged or foreign file is refused before anything is written.  Then, for each
member to seed, its directory is built next to where it belongs (``<node dir>.restoring``):
``identity.json`` for the new cluster (``runtime.identity``) and a storage snapshot at the
backup's slot (``storage.write_snapshot_file``: the machine's chunks as the node itself
would write them, via ``Replica.snapshot_chunks``, and the node's ``SnapshotMeta`` with
nothing promised).  The directory is then recovered as a starting node would
(``runtime.app.recover_records``) and its digest compared once more; only then is it renamed
into place (and the parent fsynced).  So each member's directory is either whole or absent,
and on any failure the directories this run made are removed.

The cluster must be new: a configuration with the backup's own ``cluster_id`` is refused (old
nodes of that cluster would take the restored ones for peers with a different log), and a
member's directory must be absent or empty.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from pypaxos.core.types import NULL_BALLOT
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Node
from pypaxos.multi.effects import PromiseRecord, Record, SnapshotRecord
from pypaxos.runtime.app import recover_records
from pypaxos.runtime.backup_file import BackupFileError, BackupHeader, read_backup
from pypaxos.runtime.config import ClusterConfig
from pypaxos.runtime.identity import Identity, claim
from pypaxos.runtime.wire import snapshot_meta
from pypaxos.storage import FileStorage, write_snapshot_file
from pypaxos.storage.durable import fsync_dir, make_dirs_durably

RESTORING_SUFFIX = ".restoring"


class RestoreError(Exception):
    """The restore was refused or failed; nothing it made is left behind."""


@dataclass(frozen=True)
class Restored:
    header: BackupHeader
    node_dirs: list[Path]


def load_backup(path: Path) -> tuple[BackupHeader, KVStateMachine]:
    """The backup's header and its state in a machine, every check passed: the frames' CRCs,
    the file digest and the state digest the header names.  ``BackupFileError`` otherwise."""
    with read_backup(path) as reader:
        machine = KVStateMachine()
        loader = machine.snapshot_loader()
        try:
            for chunk in reader.chunks():
                loader.load(chunk)
            loader.finish()
        except ValueError as error:  # the machine refuses a chunk (msgspec.DecodeError too)
            raise BackupFileError(path, f"the state does not load: {error}") from None
        header = reader.header
    digest = machine.full_digest().hex()
    if digest != header.state_digest:
        raise BackupFileError(
            path, f"the state's digest is {digest}, the header says {header.state_digest}"
        )
    return header, machine


def restore(backup: Path, config: ClusterConfig, node_ids: list[int] | None = None) -> Restored:
    """Seed ``node_ids`` (every member by default) of ``config`` from ``backup``."""
    header, machine = load_backup(backup)
    if header.cluster_id == config.cluster_id:
        raise RestoreError(
            f"the backup is of cluster {header.cluster_id!r}, the configuration's own: "
            "restore into a new cluster (a new cluster_id)"
        )
    targets = sorted(config.member_ids) if node_ids is None else sorted(set(node_ids))
    unknown = [i for i in targets if i not in config.member_ids]
    if unknown:
        raise RestoreError(f"node(s) {unknown} are not members of {config.path}")
    for node_id in targets:
        node_dir = config.node_dir(node_id)
        if node_dir.exists() and any(node_dir.iterdir()):
            raise RestoreError(f"{node_dir} is not empty: a restore seeds new directories only")
    made: list[Path] = []
    try:
        for node_id in targets:
            made.append(_seed(config, node_id, header, machine))
    except BaseException:
        for node_dir in made:
            shutil.rmtree(node_dir, ignore_errors=True)
        for node_id in targets:
            shutil.rmtree(_restoring(config.node_dir(node_id)), ignore_errors=True)
        raise
    return Restored(header, made)


def _restoring(node_dir: Path) -> Path:
    return node_dir.with_name(node_dir.name + RESTORING_SUFFIX)


def _seed(
    config: ClusterConfig, node_id: int, header: BackupHeader, machine: KVStateMachine
) -> Path:
    node_dir = config.node_dir(node_id)
    temp = _restoring(node_dir)
    shutil.rmtree(temp, ignore_errors=True)
    make_dirs_durably(temp)
    members = tuple(sorted(config.member_ids))
    claim(temp, Identity(config.cluster_id, node_id, members))
    multi = config.multi_config()
    records: list[Record] = [PromiseRecord(NULL_BALLOT), SnapshotRecord(header.slot)]
    node = Node.recover(node_id, multi, random.Random(0), machine, records)
    chunks = [*node.replica.snapshot_chunks(multi.snapshot_chunk_bytes_max), snapshot_meta(node)]
    write_snapshot_file(temp, 0, chunks, fsync=True)
    _verify(temp, header)
    if node_dir.exists():
        node_dir.rmdir()  # empty (checked): replaced by the seeded one
    temp.rename(node_dir)
    fsync_dir(node_dir.parent)
    return node_dir


def _verify(directory: Path, header: BackupHeader) -> None:
    """Recover ``directory`` as a starting node would and compare the state's digest."""
    storage = FileStorage(directory, fsync="always")
    try:
        fresh = KVStateMachine()
        records = recover_records(storage, str(directory), fresh)
    finally:
        storage.close()
    slots = [r.slot for r in records if isinstance(r, SnapshotRecord)]
    if slots != [header.slot] or fresh.full_digest().hex() != header.state_digest:
        raise RestoreError(f"{directory} does not recover to the backup's state")
