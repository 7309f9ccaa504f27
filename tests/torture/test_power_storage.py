"""The file storage, identity.json and cluster.toml under power cuts between every two calls.

A deterministic workload (appends, group-commit syncs, segment rollover, preallocation,
snapshots with compaction, a snapshot beyond the log as a follower installs one) runs on a
powerfs mount.  A first run counts the filesystem changes it makes; then for every N the
workload runs again on an empty directory with the power cut just before change N+1, and the
storage is opened on what is left.  It must open, and hold everything it acknowledged: every
record up to the last ``synced_index`` it reported (or a snapshot covering it), the last
snapshot ``write_snapshot`` returned from (or a newer one), and no record or snapshot that was
never written at its index.  A planted missing directory fsync shows the check bites.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from pypaxos.runtime.config import Member, load_config, new_config, write_config
from pypaxos.runtime.identity import IDENTITY_NAME, Identity, claim
from pypaxos.storage import FileStorage, Snapshot
from pypaxos.storage.base import StorageError
from pypaxos.torture.powerfs import PowerMount

pytestmark = pytest.mark.timeout(300)

STEPS = 20


@dataclass
class Acked:
    """What the storage reported durable before the cut, and everything it was given."""

    synced: int = 0
    snapshot: int | None = None
    records: dict[int, bytes] = field(default_factory=dict)  # index -> record appended there
    snapshots: dict[int, bytes] = field(default_factory=dict)  # index -> snapshot data


class NoDirectorySync(FileStorage):
    """A planted bug: the storage never fsyncs a directory."""

    def _fsync_dir(self, path: Path) -> None:
        return None


def open_storage(directory: Path, preallocate_bytes: int, kind: type[FileStorage]) -> FileStorage:
    return kind(directory, segment_bytes_max=160, preallocate_bytes=preallocate_bytes)


def workload(
    directory: Path, acked: Acked, preallocate_bytes: int, kind: type[FileStorage], seed: int
) -> None:
    rng = random.Random(seed)
    storage = open_storage(directory, preallocate_bytes, kind)
    try:
        for step in range(STEPS):
            for _ in range(rng.randint(1, 3)):
                index = storage.last_index + 1
                record = f"{index}:".encode() + rng.randbytes(rng.randint(1, 40))
                acked.records[index] = record
                assert storage.append(record) == index
            storage.sync()
            acked.synced = storage.synced_index
            if step % 4 == 3:  # a snapshot a little behind the log, then compaction
                index = storage.last_index - 1
                acked.snapshots[index] = f"snapshot {index}".encode() * 3
                storage.write_snapshot(Snapshot(index, acked.snapshots[index]))
                acked.snapshot = index
            if step == 9:  # a snapshot ahead of the whole log, as a follower installs one
                index = storage.last_index + 3
                acked.snapshots[index] = f"installed {index}".encode()
                storage.write_snapshot(Snapshot(index, acked.snapshots[index]))
                acked.snapshot = acked.synced = index
        storage.close()
    finally:
        storage.abandon()


def check_recovered(directory: Path, acked: Acked, preallocate_bytes: int) -> list[str]:
    """What the storage opened on ``directory`` breaks of its promises (empty: nothing)."""
    try:
        storage = open_storage(directory, preallocate_bytes, FileStorage)
    except (StorageError, OSError) as error:
        return [f"does not open: {error}"]
    problems = []
    try:
        snapshot = storage.read_snapshot()
        covered = 0 if snapshot is None else snapshot.index
        if acked.snapshot is not None and covered < acked.snapshot:
            problems.append(f"snapshot {acked.snapshot} acknowledged, {covered} found")
        if snapshot is not None and acked.snapshots.get(snapshot.index) != snapshot.data:
            problems.append(f"snapshot {snapshot.index} holds what was never written there")
        if storage.first_index > covered + 1:
            problems.append(f"records {covered + 1}..{storage.first_index - 1} are missing")
        if storage.last_index < acked.synced:
            problems.append(f"synced up to {acked.synced}, recovered up to {storage.last_index}")
        for record in storage.records(max(covered, storage.first_index - 1)):
            if acked.records.get(record.index) != bytes(record.data):
                problems.append(f"record {record.index} was never appended as found")
        storage.close()
    finally:
        storage.abandon()
    return problems


def run_with_cut(mount: PowerMount, changes: int | None, body: Callable[[], None]) -> bool:
    """Empty the mount, run ``body`` with a cut planned after ``changes`` (None: no cut),
    then cut (if it has not happened) and restart on what is durable.  True if the planned cut
    stopped ``body``."""
    mount.cut()
    for entry in mount.backing.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    mount.restart()
    if changes is not None:
        mount.cut_after(changes)
    stopped = False
    try:
        body()
    except (StorageError, OSError):
        assert changes is not None and mount.ask("status")["cut"], "failed without a cut"
        stopped = True
    mount.cut()
    mount.restart()
    return stopped


def changes_made(mount: PowerMount, body: Callable[[], None]) -> int:
    """How many changes ``body`` makes on an empty mount (run without a cut)."""
    before = int(mount.ask("status")["changes"])
    run_with_cut(mount, None, body)
    return int(mount.ask("status")["changes"]) - before


def sweep_storage(
    mount: PowerMount, preallocate_bytes: int, kind: type[FileStorage], seed: int = 1
) -> list[str]:
    """Problems found after a cut at every point of the workload (and after a run to the end)."""
    directory = mount.mountpoint / "node"
    acked = Acked()

    def body() -> None:
        workload(directory, acked, preallocate_bytes, kind, seed)

    total = changes_made(mount, body)
    assert total > 50  # rollover, snapshots and compaction happened
    found = [f"no cut: {p}" for p in check_recovered(directory, acked, preallocate_bytes)]
    stopped = 0
    recovered: set[tuple[int, int | None]] = set()
    for changes in range(total + 1):
        acked = Acked()
        stopped += run_with_cut(mount, changes, body)
        problems = check_recovered(directory, acked, preallocate_bytes)
        found += [f"cut after {changes}: {problem}" for problem in problems]
        recovered.add((acked.synced, acked.snapshot))
    assert stopped == total  # every cut but the one after the last change stopped the workload
    assert len(recovered) > 10  # the cuts fell at many different points of progress
    return found


@pytest.mark.parametrize(("preallocate_bytes", "seed"), [(0, 1), (0, 2), (96, 3), (96, 4)])
def test_storage_keeps_what_it_acknowledged_at_every_cut(
    power_mount: PowerMount, preallocate_bytes: int, seed: int
) -> None:
    assert sweep_storage(power_mount, preallocate_bytes, FileStorage, seed) == []


def test_a_missing_directory_fsync_is_caught(power_mount: PowerMount) -> None:
    found = sweep_storage(power_mount, 0, NoDirectorySync)
    assert any("synced up to" in problem for problem in found), found[:5]
    assert any(problem.startswith("cut after") for problem in found), found[:5]


def test_identity_and_config_survive_every_cut(power_mount: PowerMount) -> None:
    node_dir = power_mount.mountpoint
    identity = Identity("c1", 2, (1, 2, 3))
    members = tuple(Member(i, f"127.0.0.1:{7100 + i}", f"127.0.0.1:{7000 + i}") for i in (1, 2, 3))
    path = node_dir / "cluster.toml"
    config = new_config(path, "c1", members, data_dir=node_dir)
    done: dict[str, bool] = {}

    def body() -> None:
        done.clear()
        claim(node_dir, identity)
        done["identity"] = True
        write_config(config)
        done["config"] = True

    total = changes_made(power_mount, body)
    assert total >= 10
    for changes in range(total + 1):
        assert run_with_cut(power_mount, changes, body) == (changes < total)
        if done.get("identity") or (node_dir / IDENTITY_NAME).exists():
            assert (
                msgspec.json.decode((node_dir / IDENTITY_NAME).read_bytes(), type=Identity)
                == identity
            )
            assert claim(node_dir, identity) is False
        if done.get("config") or path.exists():
            assert load_config(path).cluster_id == "c1"


def test_a_new_data_directory_deep_in_new_folders_survives_a_cut(power_mount: PowerMount) -> None:
    """Every folder the storage creates on the way to its directory is durable once it has
    acknowledged a record (a node's ``data_dir/node-N`` where ``data_dir`` is new too)."""
    directory = power_mount.mountpoint / "data" / "more" / "node-1"
    storage = FileStorage(directory)
    try:
        storage.append(b"acknowledged")
        storage.sync()
    finally:
        storage.abandon()
    power_mount.cut()
    power_mount.restart()
    with FileStorage(directory) as reopened:
        assert [bytes(r.data) for r in reopened.records()] == [b"acknowledged"]


def test_a_config_written_into_new_folders_survives_a_cut(power_mount: PowerMount) -> None:
    """``write_config`` into folders it creates: once it returns, the file and every folder on
    the way to it are durable (``cluster up`` writes ``DATA/cluster.toml`` into a new DATA)."""
    path = power_mount.mountpoint / "new" / "data" / "cluster.toml"
    members = (Member(1, "127.0.0.1:7101", "127.0.0.1:7001"),)
    write_config(new_config(path, "c2", members, data_dir=path.parent))
    power_mount.cut()
    power_mount.restart()
    assert load_config(path).cluster_id == "c2"
