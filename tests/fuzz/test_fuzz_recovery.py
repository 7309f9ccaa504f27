"""Fuzzing a node's recovery from what it persisted (``runtime.wire``, ``runtime.app``, kv).

A record or snapshot that passed its storage checksum can still fail to decode: a bug in the
writer, a build that speaks another version, or damage a CRC happened to miss.  The node must
then refuse to start with ``RecoveryError`` (a ``CorruptStorageError``, which ``pypaxos node``
turns into a clear message and exit code), never crash with another exception.  Checked by
persisting real records (promises, votes, the replica's snapshot holding a real key-value
snapshot) and a chunked storage snapshot (key-value chunks, then a ``wire.SnapshotMeta``),
mutating their bytes at every level
(the msgpack of the record, and the key-value snapshot inside a record that stays valid), and
running the runtime's own recovery path: ``recover_records`` then ``rebuild_node``.  Also, the
key-value state machine's ``restore`` raises only ``ValueError`` on any bytes, and what it
accepts it snapshots again to bytes it accepts the same.  The corpus holds record payloads
(``corpus/record/``) and key-value snapshots (``corpus/kv-snapshot/``).
"""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from fuzz_helpers import corpus_bytes, corpus_files, fuzz_settings, mutated
from hypothesis import event, given
from hypothesis import strategies as st

from pypaxos.core.types import Ballot
from pypaxos.kv import Command, KVStateMachine, Request, Set, encode_request
from pypaxos.kv.collection_ops import HSet, LPush, SAdd, ZAdd
from pypaxos.kv.state_machine import Session
from pypaxos.kv.state_machine import Snapshot as KVSnapshot
from pypaxos.multi import (
    AcceptRecord,
    MultiConfig,
    Node,
    PromiseRecord,
    Record,
    SnapshotRecord,
)
from pypaxos.multi.log import Entry
from pypaxos.runtime.app import RecoveryError, rebuild_node, recover_records
from pypaxos.runtime.wire import SnapshotMeta, encode_record
from pypaxos.storage import CorruptStorageError
from pypaxos.storage.memory import MemoryStorage

RECORD_TYPES = (PromiseRecord, AcceptRecord, SnapshotRecord)


def kv_snapshot(pairs: int, sessions: int) -> bytes:
    return msgspec.msgpack.encode(
        KVSnapshot(
            version=3,
            applied=10 + sessions,
            session_ttl_commands=100,
            data={b"k%d" % i: b"\xff\x00v%d" % i for i in range(pairs)},
            sessions=tuple(Session(7 + i, 3, 10 + i, b"+OK") for i in range(sessions)),
            expires={b"k0": 1_000} if pairs else {},
            now_ms=10,
        )
    )


def collections_snapshot() -> bytes:
    """A version-4 snapshot holding one value of each type (strings and the collections)."""
    machine = KVStateMachine()
    ops: list[Command] = [
        Set(b"s", b"v"),
        HSet(b"h", ((b"f", b"1"), (b"g", b"2"))),
        LPush(b"l", (b"a", b"b")),
        SAdd(b"set", (b"x", b"y")),
        ZAdd(b"z", ((1.5, b"m"), (-2.0, b"n"))),
    ]
    for seq, op in enumerate(ops, start=1):
        machine.apply(encode_request(Request(1, seq, op)))
    return machine.snapshot()


VALID_KV = [
    kv_snapshot(0, 0),
    kv_snapshot(3, 2),
    KVStateMachine().snapshot(),
    collections_snapshot(),
] + [p.read_bytes() for p in corpus_files("kv-snapshot") if not p.name.startswith("bad-")]
"""Key-value snapshots that restore; the corpus's ``bad-*`` ones must not."""
KV_SEEDS = VALID_KV + corpus_bytes("kv-snapshot")
ballots = st.builds(Ballot, st.integers(0, 2**20), st.integers(1, 5))
batches = st.lists(
    st.builds(Entry, st.integers(0, 9), st.integers(0, 99), st.binary(max_size=12)), max_size=3
).map(tuple)
records: st.SearchStrategy[Record] = st.one_of(
    st.builds(PromiseRecord, ballots),
    st.builds(AcceptRecord, st.integers(0, 64), ballots, batches),
    st.builds(SnapshotRecord, st.integers(0, 64), st.tuples(st.sampled_from(VALID_KV))),
)


@st.composite
def persisted(draw: st.DrawFn, record: Record) -> bytes:
    """``record`` as the runtime writes it, maybe damaged at one of two levels."""
    how = draw(st.sampled_from(["intact", "intact", "outer", "inner"]))
    if how == "inner" and isinstance(record, SnapshotRecord):
        record = SnapshotRecord(record.slot, (draw(mutated(list(record.chunks))),))
    data = encode_record(record)
    if how == "outer":
        data = draw(mutated([data])) or b"\x00"  # a log record is never empty
    return data


def recover(storage: MemoryStorage) -> Node | RecoveryError:
    """The runtime's path from storage to a node; what it returns or the error it raises."""
    try:
        machine = KVStateMachine()
        got = recover_records(storage, "fuzz", machine)
        assert all(isinstance(r, RECORD_TYPES) for r in got)
        return rebuild_node(1, MultiConfig(), random.Random(0), machine, got, "fuzz")
    except RecoveryError as error:
        assert isinstance(error, CorruptStorageError)
        assert "fuzz" in str(error), "the error names where the bad data is"
        return error


def meta_of(state: list[Record]) -> bytes:
    """A storage snapshot's last chunk standing for ``state``'s promise and votes."""
    promised = max((r.ballot for r in state if isinstance(r, PromiseRecord)), default=Ballot(0, 1))
    votes = [r for r in state if isinstance(r, AcceptRecord)]
    return msgspec.msgpack.encode(SnapshotMeta(0, promised, votes))


@fuzz_settings(600)
@given(st.lists(records, max_size=6), st.none() | st.lists(records, max_size=4), st.data())
def test_damaged_records_and_snapshots_refuse_with_recovery_error(
    log: list[Record], state: list[Record] | None, data: st.DataObject
) -> None:
    storage = MemoryStorage()
    damaged = False
    if state is not None:
        machine_chunks = data.draw(
            st.sampled_from([list(KVStateMachine().snapshot_chunks(64)), *([v] for v in VALID_KV)])
        )
        chunks = [*machine_chunks, meta_of(state)]
        if data.draw(st.booleans()):
            which = data.draw(st.integers(0, len(chunks) - 1))
            mutant = data.draw(mutated([chunks[which]])) or b"\x00"
            damaged = mutant != chunks[which]
            chunks[which] = mutant
        storage.write_snapshot_chunks(0, chunks)
    for record in log:
        payload = data.draw(persisted(record))
        damaged |= payload != encode_record(record)
        storage.append(payload)
    storage.sync()
    got = recover(storage)
    event(f"{'damaged' if damaged else 'intact'}: {type(got).__name__}")
    if not damaged:
        assert isinstance(got, Node), f"intact records refused: {got}"


@pytest.mark.parametrize("path", corpus_files("record"), ids=lambda p: p.name)
def test_corpus_records(path: Path) -> None:
    storage = MemoryStorage()
    storage.append(encode_record(PromiseRecord(Ballot(1, 1))))
    storage.append(path.read_bytes() or b"\x00")
    storage.sync()
    recover(storage)


@pytest.mark.parametrize("path", corpus_files("kv-snapshot"), ids=lambda p: p.name)
def test_corpus_kv_snapshots_inside_valid_records(path: Path) -> None:
    storage = MemoryStorage()
    storage.append(encode_record(SnapshotRecord(4, (path.read_bytes(),))))
    storage.sync()
    got = recover(storage)
    if path.name.startswith("bad-"):
        assert isinstance(got, RecoveryError)


def test_a_snapshot_the_key_value_machine_refuses_is_a_recovery_error() -> None:
    """Found by this fuzzer: ``KVStateMachine.restore``'s ``ValueError`` escaped recovery, so
    a node crashed with a traceback instead of refusing to start with ``RecoveryError``."""
    storage = MemoryStorage()
    storage.append(encode_record(SnapshotRecord(4, (b"\x95\x5d",))))  # version 93
    storage.sync()
    machine = KVStateMachine()
    with pytest.raises(RecoveryError, match="does not restore"):
        rebuild_node(
            1, MultiConfig(), random.Random(0), machine, recover_records(storage, "x", machine), "x"
        )


@fuzz_settings(600)
@given(mutated(KV_SEEDS))
def test_kv_restore_raises_only_value_error_and_round_trips(data: bytes) -> None:
    machine = KVStateMachine()
    try:
        machine.restore(data)
    except ValueError:
        return
    again = KVStateMachine()
    again.restore(machine.snapshot())
    assert again.snapshot() == machine.snapshot()


def test_deeply_nested_values_are_recovery_errors_not_recursion_errors() -> None:
    """Found by this fuzzer: msgspec skips a field it does not keep by recursing into it, so a
    deeply nested value raised ``RecursionError`` out of ``decode_record`` and out of
    ``KVStateMachine.restore``, past the ``ValueError`` handlers of recovery."""
    nested = b"\x91" * 20_000 + b"\xc0"
    storage = MemoryStorage()
    storage.append(b"\x82\xa4type\xb3multi.PromiseRecord\xa1x" + nested)  # an unknown field
    storage.sync()
    with pytest.raises(RecoveryError, match="log record 1"):
        recover_records(storage, "x", KVStateMachine())
    with pytest.raises(ValueError, match="nesting too deep"):
        KVStateMachine().restore(b"\x95\x02" + nested)
    storage = MemoryStorage()
    storage.append(encode_record(SnapshotRecord(4, (b"\x95\x02" + nested,))))
    storage.sync()
    machine = KVStateMachine()
    with pytest.raises(RecoveryError, match="does not restore"):
        rebuild_node(
            1, MultiConfig(), random.Random(0), machine, recover_records(storage, "x", machine), "x"
        )
