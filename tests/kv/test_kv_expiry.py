"""Keys with deadlines: time comes from the requests (``now_ms``), never from a replica's clock."""

from __future__ import annotations

import msgspec

from pypaxos.kv import (
    Command,
    DbSize,
    Expire,
    Get,
    Incr,
    Integer,
    Keys,
    KVStateMachine,
    Ok,
    Persist,
    Rename,
    Request,
    Result,
    Set,
    SetWith,
    Ttl,
    Value,
    decode_entry,
    decode_result,
    encode_request,
)
from pypaxos.kv.state_machine import _SnapshotV2

T0 = 1_700_000_000_000


class Clocked:
    def __init__(self) -> None:
        self.machine = KVStateMachine()
        self.seq = 0

    def run(self, op: Command, now_ms: int) -> Result:
        self.seq += 1
        request = encode_request(Request(1, self.seq, op, now_ms))
        return decode_result(self.machine.apply(request))

    def query(self, op: Command, now_ms: int) -> Result:
        return decode_result(self.machine.query(encode_request(Request(0, 0, op, now_ms))))


def test_a_key_expires_at_its_deadline() -> None:
    store = Clocked()
    assert store.run(SetWith(b"k", b"v", ttl_ms=1000), T0) == Ok()
    assert store.run(Ttl(b"k"), T0 + 400) == Integer(600)
    assert store.run(Get(b"k"), T0 + 999) == Value(b"v")
    assert store.query(Get(b"k"), T0 + 1000) == Value(None)  # the read path: the request's time
    assert store.machine.get(b"k") == b"v"  # ...which it does not keep: the machine is at +999
    assert store.run(Get(b"k"), T0 + 1000) == Value(None)
    assert store.run(Ttl(b"k"), T0 + 1000) == Integer(-2)
    assert store.machine.snapshot() == _without_key(store.machine.snapshot())


def _without_key(snapshot: bytes) -> bytes:
    """The snapshot has no trace of the expired key: reclaimed on access."""
    assert b"k" not in msgspec.msgpack.decode(snapshot)[3]
    return snapshot


def test_the_clock_never_goes_back() -> None:
    store = Clocked()
    store.run(SetWith(b"k", b"v", ttl_ms=100), T0)
    store.run(Set(b"other", b"x"), T0 + 200)  # the sweep reclaims k here
    assert store.machine.now_ms == T0 + 200
    assert store.run(Get(b"k"), T0) == Value(None)  # a stamp from a slower clock: still gone
    assert store.machine.now_ms == T0 + 200
    assert store.run(DbSize(), T0) == Integer(1)


def test_set_clears_a_deadline_and_keepttl_or_modifications_keep_it() -> None:
    store = Clocked()
    store.run(SetWith(b"k", b"1", ttl_ms=1000), T0)
    assert store.run(Incr(b"k"), T0) == Integer(2)
    assert store.run(Ttl(b"k"), T0) == Integer(1000)
    store.run(SetWith(b"k", b"3", keep_ttl=True), T0)
    assert store.run(Ttl(b"k"), T0) == Integer(1000)
    store.run(Set(b"k", b"4"), T0)
    assert store.run(Ttl(b"k"), T0) == Integer(-1)


def test_expire_persist_rename() -> None:
    store = Clocked()
    assert store.run(Expire(b"k", 1000), T0) == Integer(0)  # absent
    store.run(Set(b"k", b"v"), T0)
    assert store.run(Expire(b"k", T0 + 5000, absolute=True), T0) == Integer(1)
    assert store.run(Rename(b"k", b"m"), T0) == Ok()
    assert store.run(Ttl(b"m"), T0 + 1000) == Integer(4000)  # the deadline moves with the key
    assert store.run(Persist(b"m"), T0) == Integer(1)
    assert store.run(Persist(b"m"), T0) == Integer(0)
    assert store.run(Expire(b"m", -1), T0) == Integer(1)  # a past deadline deletes now
    assert store.run(Get(b"m"), T0) == Value(None)


def test_whole_keyspace_reads_skip_expired_keys() -> None:
    store = Clocked()
    store.run(SetWith(b"a", b"1", ttl_ms=10), T0)
    store.run(Set(b"b", b"2"), T0)
    assert store.query(Keys(b"*"), T0 + 10) == store.run(Keys(b"*"), T0 + 10)
    assert store.run(DbSize(), T0 + 10) == Integer(1)


def test_snapshot_keeps_deadlines_and_clock() -> None:
    store = Clocked()
    store.run(SetWith(b"k", b"v", ttl_ms=1000), T0)
    restored = KVStateMachine()
    restored.restore(store.machine.snapshot())
    assert restored.now_ms == T0
    assert restored.snapshot() == store.machine.snapshot()


def test_a_version_2_snapshot_still_restores() -> None:
    old = _SnapshotV2(2, 5, 100, {b"k": b"v"}, ())
    machine = KVStateMachine()
    machine.restore(msgspec.msgpack.encode(old))
    assert (machine.get(b"k"), machine.applied, machine.now_ms) == (b"v", 5, 0)


def test_an_unstamped_request_still_decodes() -> None:
    """Requests written before the stamp (older logs) decode with no time (0)."""
    old = msgspec.msgpack.encode(["req", 1, 2, ["get", b"k"]])
    assert decode_entry(old) == Request(1, 2, Get(b"k"), 0)
