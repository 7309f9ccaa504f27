"""The backup file (``runtime.backup_file``): written whole or not at all; every truncation and
every flipped bit refused with the reason; and ``PAXOS.BACKUP``'s plan and access."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypaxos.kv import KVStateMachine, Request, Set, SetWith, encode_request
from pypaxos.kv.collection_ops import HSet
from pypaxos.runtime.auth import Access
from pypaxos.runtime.backup_file import (
    FORMAT_VERSION,
    BackupFileError,
    BackupHeader,
    BackupWriter,
    read_backup,
    write_backup,
)
from pypaxos.runtime.commands import plan, required_access
from pypaxos.runtime.plans import Custom, Immediate
from pypaxos.runtime.restore import load_backup

T0 = 1_700_000_000_000


def _machine(keys: int) -> KVStateMachine:
    machine = KVStateMachine()
    for i in range(keys):
        op = SetWith(b"k%d" % i, b"v", ttl_ms=60_000) if i % 5 == 0 else Set(b"k%d" % i, b"x" * i)
        machine.apply(encode_request(Request(1, i + 1, op, T0 + i)))
    machine.apply(encode_request(Request(2, 1, HSet(b"h", ((b"f", b"v"),)), T0 + keys)))
    return machine


def _header(machine: KVStateMachine, chunks: int, cluster_id: str = "old") -> BackupHeader:
    return BackupHeader(
        format=FORMAT_VERSION,
        cluster_id=cluster_id,
        node_id=1,
        slot=machine.applied,
        chunk_count=chunks,
        state_digest=machine.state_digest().hex(),
        keys=machine.stored_keys,
        created_unix_ms=T0,
    )


def _saved(tmp_path: Path, keys: int = 60) -> tuple[Path, KVStateMachine]:
    machine = _machine(keys)
    chunks = list(machine.snapshot_chunks(512))
    path = tmp_path / "b.pxb"
    write_backup(path, _header(machine, len(chunks)), chunks)
    return path, machine


def test_a_backup_loads_back_to_the_same_state(tmp_path: Path) -> None:
    path, machine = _saved(tmp_path)
    header, loaded = load_backup(path)
    assert header.keys == machine.stored_keys and header.slot == machine.applied
    assert loaded.snapshot() == machine.snapshot()
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_every_truncation_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path, keys=10)
    data = path.read_bytes()
    for length in range(len(data)):
        cut = tmp_path / "cut.pxb"
        cut.write_bytes(data[:length])
        with pytest.raises(BackupFileError) as refused:
            load_backup(cut)
        assert refused.value.path == cut


def test_every_flipped_byte_is_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path, keys=10)
    data = path.read_bytes()
    reasons: set[str] = set()
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        bad = tmp_path / "bad.pxb"
        bad.write_bytes(bytes(flipped))
        with pytest.raises(BackupFileError) as refused:
            load_backup(bad)
        reasons.add(refused.value.reason.split(" ")[0])
    assert len(reasons) > 2  # named by where it hit: magic, header, a chunk, the trailer


def test_bytes_after_the_trailer_are_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(BackupFileError, match="after the trailer"):
        load_backup(path)


def test_a_state_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    machine = _machine(20)
    chunks = list(machine.snapshot_chunks(512))
    header = _header(machine, len(chunks))
    lying = BackupHeader(**{**{f: getattr(header, f) for f in header.__struct_fields__},
                            "state_digest": "00" * 16})  # fmt: skip
    path = tmp_path / "lying.pxb"
    write_backup(path, lying, chunks)
    with pytest.raises(BackupFileError, match="digest"):
        load_backup(path)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    machine = _machine(20)
    chunks = list(machine.snapshot_chunks(512))
    path = tmp_path / "b.pxb"
    with pytest.raises(ValueError, match="promised"):
        write_backup(path, _header(machine, len(chunks) + 1), chunks)
    with pytest.raises(RuntimeError), BackupWriter(path, _header(machine, len(chunks))) as writer:
        writer.add(chunks[0])
        raise RuntimeError("the connection dropped")
    assert list(tmp_path.iterdir()) == []


def test_not_a_backup_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dump.rdb"
    path.write_bytes(b"REDIS0011" + bytes(64))
    with pytest.raises(BackupFileError, match="not a pypaxos backup"):
        read_backup(path)


def test_backup_command_plans_and_needs_admin() -> None:
    begin = plan([b"PAXOS.BACKUP", b"BEGIN"])
    assert begin == Custom(b"PAXOS.BACKUP", b"BEGIN", write=False)
    assert required_access(b"PAXOS.BACKUP", begin) is Access.ADMIN
    chunk = plan([b"paxos.backup", b"CHUNK", b"ab12", b"7"])
    assert chunk == Custom(b"PAXOS.BACKUP", b"CHUNK ab12 7", write=False)
    for bad in ([b"PAXOS.BACKUP"], [b"PAXOS.BACKUP", b"CHUNK", b"a b", b"1"]):
        assert isinstance(plan(bad), Immediate)
