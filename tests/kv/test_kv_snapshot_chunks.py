"""The store's chunked snapshot: bounded chunks, an exact rebuild, and refusals of bad chunks."""

from __future__ import annotations

import msgspec
import pytest

from pypaxos.kv import KVStateMachine, Request, Set, SetWith, encode_request
from pypaxos.kv.collection_ops import HSet, LPush, SAdd, ZAdd
from pypaxos.kv.state_machine import DATABASES_SNAPSHOT_VERSION

T0 = 1_700_000_000_000


def _filled(keys: int, clients: int = 3) -> KVStateMachine:
    machine = KVStateMachine()
    for i in range(keys):
        op = SetWith(b"k%d" % i, b"v" * 50, ttl_ms=10_000) if i % 3 == 0 else Set(b"k%d" % i, b"x")
        machine.apply(encode_request(Request(1 + i % clients, 1 + i // clients, op, T0 + i)))
    return machine


def test_chunks_are_bounded_and_rebuild_the_same_state() -> None:
    machine = _filled(2000)
    chunks = list(machine.snapshot_chunks(4096))
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < 2 * 4096  # one entry may exceed the bound, no more
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in chunks:
        loader.load(chunk)
    assert copy.applied == 0  # untouched until finish
    loader.finish()
    assert copy.snapshot() == machine.snapshot()  # data, deadlines, sessions, clock, in order
    assert list(copy.snapshot_chunks(4096)) == chunks


def test_a_one_piece_snapshot_loads_as_one_chunk() -> None:
    machine = _filled(50)
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    loader.load(machine.snapshot())  # version 4, one piece, as written before chunks
    loader.finish()
    assert copy.snapshot() == machine.snapshot()


def _parts(chunks: list[bytes]) -> list[list[object]]:
    return [msgspec.msgpack.decode(c) for c in chunks]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda parts: parts[1:], "a part before the head chunk"),
        (lambda parts: [parts[0], *parts], "a second head chunk"),
        (lambda parts: [parts[0], parts[-1], *parts[1:-1]], "deadline"),
        (lambda parts: [*parts, parts[-1]], "sessions out of order"),
    ],
)
def test_damaged_chunk_sequences_are_refused(damage: object, reason: str) -> None:
    machine = _filled(300)
    parts = _parts(list(machine.snapshot_chunks(1024)))
    assert parts[0][0] == DATABASES_SNAPSHOT_VERSION
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    with pytest.raises(ValueError, match=reason):
        for part in damage(parts):  # type: ignore[operator]
            loader.load(msgspec.msgpack.encode(part))
        loader.finish()
    assert copy.applied == 0  # a refused snapshot changes nothing


def test_garbage_is_refused() -> None:
    loader = KVStateMachine().snapshot_loader()
    with pytest.raises(ValueError, match="malformed snapshot"):
        loader.load(b"\xc1 not msgpack")
    with pytest.raises(ValueError, match="no head chunk"):
        KVStateMachine().snapshot_loader().finish()


def test_collections_travel_in_chunks() -> None:
    machine = _filled(100)
    ops = [
        HSet(b"h", ((b"f1", b"a"), (b"f2", b"b" * 300))),
        LPush(b"l", tuple(b"item%d" % i for i in range(200)), left=True),
        SAdd(b"s", (b"m1", b"m2", b"m3")),
        ZAdd(b"z", ((1.5, b"one"), (-2.0, b"two"))),
    ]
    for i, op in enumerate(ops):
        machine.apply(encode_request(Request(9, 1 + i, op, T0)))
    chunks = list(machine.snapshot_chunks(512))
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in chunks:
        loader.load(chunk)
    loader.finish()
    assert copy.snapshot() == machine.snapshot()
    assert list(copy.snapshot_chunks(512)) == chunks


def test_watches_and_the_script_cache_travel_in_the_chunks() -> None:
    """A rebuilt replica keeps who watches what (a later write still aborts their EXEC) and
    every cached script (EVALSHA still finds it)."""
    from pypaxos.kv import decode_result
    from pypaxos.kv.commands import (
        Aborted,
        Exec,
        Integer,
        Replies,
        ScriptExists,
        ScriptLoad,
        Value,
        Watch,
    )

    machine = KVStateMachine()
    machine.apply(encode_request(Request(7, 1, Watch((b"w",)), T0)))
    loaded = decode_result(
        machine.apply(encode_request(Request(8, 1, ScriptLoad(b"return 1"), T0)))
    )
    assert isinstance(loaded, Value) and loaded.value is not None
    sha = loaded.value
    chunks = list(machine.snapshot_chunks(64))
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in chunks:
        loader.load(chunk)
    loader.finish()
    assert copy.snapshot() == machine.snapshot()
    for replica in (machine, copy):
        replica.apply(encode_request(Request(9, 1, Set(b"w", b"changed"), T0)))
        answer = replica.apply(encode_request(Request(7, 2, Exec((Set(b"w", b"mine"),), True), T0)))
        assert decode_result(answer) == Aborted()
        exists = replica.apply(encode_request(Request(8, 2, ScriptExists((sha,)), T0)))
        assert decode_result(exists) == Replies((Integer(1),))


def test_the_notification_setting_travels_in_the_chunks() -> None:
    from pypaxos.kv.pubsub import parse_notify_flags
    from pypaxos.kv.pubsub_ops import NotifyConfig

    bits = parse_notify_flags(b"KEA")
    assert bits
    machine = KVStateMachine()
    machine.apply(encode_request(Request(1, 1, NotifyConfig(b"KEA"), T0)))
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in machine.snapshot_chunks(64):
        loader.load(chunk)
    loader.finish()
    assert copy.notify_bits == machine.notify_bits == bits


def test_a_one_piece_snapshot_after_the_head_is_refused() -> None:
    machine = _filled(20)
    loader = KVStateMachine().snapshot_loader()
    loader.load(next(iter(machine.snapshot_chunks(1024))))
    with pytest.raises(ValueError, match="one-piece snapshot after the head"):
        loader.load(machine.snapshot())


def test_a_collection_no_history_makes_is_refused_in_a_data_part() -> None:
    machine = _filled(30)
    machine.apply(encode_request(Request(9, 1, SAdd(b"s", (b"m1", b"m2")), T0)))
    parts = _parts(list(machine.snapshot_chunks(1 << 20)))
    data = next(p for p in parts if p[0] == DATABASES_SNAPSHOT_VERSION - 1 and p[1])[1]
    assert isinstance(data, dict) and not isinstance(data[b"s"], bytes)
    data[b"s"][1] = [b"m1", b"m1"]  # a set with a duplicate member
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    with pytest.raises(ValueError, match="duplicate member"):
        for part in parts:
            loader.load(msgspec.msgpack.encode(part))
    assert copy.snapshot() == KVStateMachine().snapshot()  # untouched
