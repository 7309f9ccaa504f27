"""Databases in the state machine (``kv.databases``): each command runs in the database its
request names (``InDb``), or a script's or transaction's ``Select`` switched to, and nowhere
else; ``MOVE``/``COPY DB``/``SWAPDB``/``FLUSHDB``/``FLUSHALL``; watches on ``(db, key)``; expiry
and notifications per database; snapshots (version 7) that keep them, version 5 still read."""

from __future__ import annotations

import random

import msgspec
import pytest

from pypaxos.kv import (
    DbSize,
    Get,
    Incr,
    Integer,
    Keys,
    KVStateMachine,
    Ok,
    Request,
    RequestBatch,
    Result,
    Results,
    Set,
    SetWith,
    Ttl,
    Value,
    decode_answer,
    decode_result,
    encode_request,
)
from pypaxos.kv.collection_ops import Copy, LPush
from pypaxos.kv.commands import (
    DB_OUT_OF_RANGE,
    SAME_OBJECT,
    Aborted,
    Array,
    Command,
    Error,
    Eval,
    Exec,
    FlushAll,
    FlushDb,
    InDb,
    Move,
    Replies,
    Select,
    SwapDb,
    Watch,
)
from pypaxos.kv.pubsub_ops import NotifyConfig
from pypaxos.kv.state_machine import _ChunkHeadV5
from pypaxos.kv.transactions import Watcher, WatchTable
from pypaxos.runtime.commands import script_command

T0 = 1_700_000_000_000


class Client:
    """One client's session over a machine."""

    def __init__(self, machine: KVStateMachine, client_id: int = 1) -> None:
        self.machine, self.client_id, self.seq = machine, client_id, 0

    def run(self, op: Command, db: int = 0, now_ms: int = T0) -> Result:
        self.seq += 1
        wrapped = InDb(db, op) if db else op
        request = Request(self.client_id, self.seq, wrapped, now_ms)
        return decode_result(self.machine.apply(encode_request(request)))

    def batch(self, *ops: Command) -> tuple[Result, ...]:
        self.seq += 1
        answer = decode_answer(
            self.machine.apply(encode_request(RequestBatch(self.client_id, self.seq, ops, T0)))
        )
        assert isinstance(answer, Results)
        return answer.results


def query(machine: KVStateMachine, op: Command, db: int) -> Result:
    request = Request(0, 0, InDb(db, op) if db else op, T0)
    return decode_result(machine.query(encode_request(request)))


def test_each_database_is_its_own_keyspace() -> None:
    machine = KVStateMachine()
    c = Client(machine)
    assert c.run(Set(b"k", b"zero")) == Ok()
    assert c.run(Set(b"k", b"three"), db=3) == Ok()
    assert c.run(Incr(b"n"), db=3) == Integer(1)
    assert c.run(Get(b"k")) == Value(b"zero")
    assert c.run(Get(b"k"), db=3) == Value(b"three")
    assert c.run(DbSize()) == Integer(1) and c.run(DbSize(), db=3) == Integer(2)
    assert c.run(Keys(b"*"), db=3) == Array((b"k", b"n"))
    assert query(machine, Get(b"n"), 3) == Value(b"1") and query(machine, Get(b"n"), 0) == Value(
        None
    )
    assert c.run(Get(b"k"), db=16) == Error(DB_OUT_OF_RANGE)
    assert c.run(Get(b"k"), db=-1) == Error(DB_OUT_OF_RANGE)
    assert query(machine, Get(b"k"), 16) == Error(DB_OUT_OF_RANGE)
    assert machine.keyspace_lines() == [
        "db0:keys=1,expires=0,avg_ttl=0",
        "db3:keys=2,expires=0,avg_ttl=0",
    ]


def test_unused_databases_cost_nothing() -> None:
    machine = KVStateMachine()
    c = Client(machine)
    for db in range(16):
        assert query(machine, Get(b"k"), db) == Value(None)
    assert machine._dbs == {}  # reads off the log make nothing
    c.run(Set(b"k", b"v"), db=7)
    c.run(FlushDb(), db=7)
    assert machine._dbs == {} and machine.keyspace_lines() == []


def test_move_copy_and_swap() -> None:
    c = Client(KVStateMachine())
    c.run(SetWith(b"k", b"v", ttl_ms=5000))
    assert c.run(Move(b"k", 0)) == Error(SAME_OBJECT)
    assert c.run(Move(b"k", 16)) == Error(DB_OUT_OF_RANGE)
    assert c.run(Move(b"k", 2)) == Integer(1)
    assert c.run(Get(b"k")) == Value(None)
    assert c.run(Get(b"k"), db=2) == Value(b"v")
    c.run(Set(b"k", b"w"))
    assert c.run(Move(b"k", 2)) == Integer(0)  # there already: nothing moves
    assert c.machine.get(b"k", 2) == b"v" and c.machine.get(b"k") == b"w"
    assert c.run(Copy(b"k", b"k", db=0)) == Error(SAME_OBJECT)
    assert c.run(Copy(b"k", b"k", db=2)) == Integer(0)
    assert c.run(Copy(b"k", b"k", True, db=2)) == Integer(1)
    assert c.machine.get(b"k", 2) == b"w"
    assert c.run(SwapDb(0, 2)) == Ok()
    assert c.run(Get(b"k")) == Value(b"w") and c.run(Get(b"k"), db=2) == Value(b"w")
    c.run(Set(b"only", b"x"), db=5)
    assert c.run(SwapDb(5, 0)) == Ok()
    assert c.run(Keys(b"*")) == Array((b"only",))
    assert c.run(SwapDb(0, 16)) == Error(DB_OUT_OF_RANGE)
    assert c.run(FlushAll(), db=4) == Ok()
    assert all(c.run(DbSize(), db=db) == Integer(0) for db in range(16))


def test_a_batch_after_a_swap_writes_to_the_new_database_zero() -> None:
    c = Client(KVStateMachine())
    c.run(Set(b"x", b"1"), db=1)
    assert c.batch(Set(b"a", b"1"), SwapDb(0, 1), Set(b"b", b"2"), Get(b"x")) == (
        Ok(),
        Ok(),
        Ok(),
        Value(b"1"),
    )
    assert sorted(c.machine._data) == [b"b", b"x"]
    assert c.run(Keys(b"*"), db=1) == Array((b"a",))


def test_select_lasts_until_its_transaction_or_script_ends() -> None:
    machine = KVStateMachine(script_commands=script_command)
    c = Client(machine)
    assert c.run(Exec((Set(b"a", b"0"), Select(2), Set(b"a", b"2"), Select(16)))) == Replies(
        (Ok(), Ok(), Ok(), Error(DB_OUT_OF_RANGE))
    )
    assert machine.get(b"a") == b"0" and machine.get(b"a", 2) == b"2"
    body = b"redis.call('select', ARGV[1]) return redis.call('incr', KEYS[1])"
    assert c.run(Eval(body, b"", (b"n",), (b"6",)), db=1) == Integer(1)
    assert c.run(Get(b"n"), db=6) == Value(b"1")
    assert c.batch(Eval(body, b"", (b"n",), (b"6",)), Incr(b"n")) == (Integer(2), Integer(1))
    assert machine.get(b"n") == b"1"  # the batch's next command was back in database 0


def test_a_watch_is_on_a_key_of_one_database() -> None:
    machine = KVStateMachine()
    watcher, writer = Client(machine, 1), Client(machine, 2)
    watcher.run(Watch((b"k",)), db=1)
    writer.run(Set(b"k", b"zero"))  # another database's k
    assert watcher.run(Exec((Set(b"done", b"1"),), watching=True)) == Replies((Ok(),))
    watcher.run(Watch((b"k",), reset=True), db=1)
    writer.run(Set(b"k", b"one"), db=1)
    assert watcher.run(Exec((Set(b"done", b"2"),), watching=True)) == Aborted()


@pytest.mark.parametrize(
    ("write", "touched"),
    [
        (FlushDb(), False),  # database 0 emptied: the watch is in 1
        (InDb(1, FlushDb()), True),
        (FlushAll(), True),
        (SwapDb(1, 2), True),  # k is in 1
        (SwapDb(0, 2), False),
        (InDb(1, Move(b"k", 3)), True),
        (Copy(b"k", b"k", True, db=1), True),  # database 0 has a k to copy over
        (Copy(b"k", b"k", db=1), False),  # no REPLACE: nothing copied
    ],
)
def test_flush_swap_move_and_copy_touch_watches(write: Command, touched: bool) -> None:
    machine = KVStateMachine()
    watcher, writer = Client(machine, 1), Client(machine, 2)
    writer.run(Set(b"k", b"v"), db=1)
    writer.run(Set(b"k", b"z"))
    watcher.run(Watch((b"k",)), db=1)
    writer.run(write)
    outcome = watcher.run(Exec((Set(b"done", b"1"),), watching=True))
    assert outcome == (Aborted() if touched else Replies((Ok(),)))


def test_expiry_is_swept_in_every_database() -> None:
    machine = KVStateMachine()
    c = Client(machine)
    for i in range(6):
        c.run(SetWith(b"k%d" % i, b"v", ttl_ms=10), db=4)
    assert machine.expiring_keys == 6
    for _ in range(4):  # no reads of them: the sweep alone reclaims them
        c.run(Set(b"other", b"x"), now_ms=T0 + 1000)
    assert machine.expiring_keys == 0 and 4 not in machine._dbs


def test_notifications_name_the_database() -> None:
    machine = KVStateMachine()
    machine.record_publications()
    c = Client(machine)
    c.run(NotifyConfig(b"KEA"))
    c.run(LPush(b"q", (b"x",), True), db=3)
    c.run(Move(b"q", 5), db=3)
    channels = [(p.channel, p.message) for p in machine.take_publications()]
    assert channels == [
        (b"__keyspace@3__:q", b"lpush"),
        (b"__keyevent@3__:lpush", b"q"),
        (b"__keyspace@3__:q", b"move_from"),
        (b"__keyevent@3__:move_from", b"q"),
        (b"__keyspace@5__:q", b"move_to"),
        (b"__keyevent@5__:move_to", b"q"),
    ]


def _with_databases() -> KVStateMachine:
    machine = KVStateMachine()
    watcher, c = Client(machine, 1), Client(machine, 2)
    for db in (0, 2, 9):
        for i in range(50):
            c.run(SetWith(b"k%d" % i, b"v%d" % db, ttl_ms=10**6 if i % 2 else 0), db=db)
    watcher.run(Watch((b"k1", b"w")), db=9)
    watcher.run(Watch((b"k2",)))
    c.run(Set(b"gone", b"x"), db=12)
    c.run(FlushDb(), db=12)  # made and emptied: not in the snapshot
    return machine


def test_snapshots_keep_every_database() -> None:
    machine = _with_databases()
    for restore in ("whole", "chunks"):
        again = KVStateMachine()
        if restore == "whole":
            again.restore(machine.snapshot())
        else:
            loader = again.snapshot_loader()
            for chunk in machine.snapshot_chunks(512):
                loader.load(chunk)
            loader.finish()
        assert again.snapshot() == machine.snapshot()
        assert list(again.snapshot_chunks(512)) == list(machine.snapshot_chunks(512))
        assert again.keyspace_lines() == machine.keyspace_lines()
        assert again.get(b"k3", 9) == b"v9"
        writer, watcher = Client(again, 3), Client(again, 1)
        watcher.seq = 2
        writer.run(Set(b"w", b"1"), db=9)  # the restored watch in database 9 sees it
        assert watcher.run(Exec((), watching=True)) == Aborted()


def test_version_5_snapshots_are_still_read() -> None:
    machine = KVStateMachine()
    c = Client(machine)
    c.run(SetWith(b"k", b"v", ttl_ms=1000))
    chunks = list(machine.snapshot_chunks(1024))
    head = msgspec.msgpack.decode(chunks[0])
    assert head[0] == 7
    old = msgspec.msgpack.encode(_ChunkHeadV5(*head[1:]))
    again = KVStateMachine()
    loader = again.snapshot_loader()
    for chunk in [old, *chunks[1:]]:
        loader.load(chunk)
    loader.finish()
    assert again.snapshot() == machine.snapshot()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda parts: [*parts[:1], [8, 16], *parts[1:]], "out of range"),
        (lambda parts: [*parts[:1], [8, 0], *parts[1:]], "out of order"),
        (lambda parts: [*parts[:-1], [8, 15], parts[-1]], "after the sessions"),
        (lambda parts: [p for p in parts if p[:2] != [8, 2]], "deadline"),
    ],
)
def test_damaged_database_chunks_are_refused(damage: object, reason: str) -> None:
    machine = _with_databases()
    parts = [msgspec.msgpack.decode(c) for c in machine.snapshot_chunks(100_000)]
    assert [8, 2] in parts and [8, 9] in parts
    loader = KVStateMachine().snapshot_loader()
    with pytest.raises(ValueError, match=reason):
        for part in damage(parts):  # type: ignore[operator]
            loader.load(msgspec.msgpack.encode(part))
        loader.finish()


@pytest.mark.parametrize("depth", [2, 900, 5000])
def test_nested_databases_are_malformed_not_a_crash(depth: int) -> None:
    """A log entry is never nested ``InDb`` (a server wraps once); one from a hostile peer is
    answered ``malformed`` on every replica, however deep, rather than exhausting the stack."""
    data = msgspec.msgpack.encode(Get(b"k"))
    for _ in range(depth):
        data = b"\x93\xa4indb\x01" + data  # [tag, database 1, op]
    entry = b"\x95\xa3req\x01\x01" + data + b"\x00"  # Request(1, 1, op, 0)
    machine = KVStateMachine()
    assert decode_result(machine.apply(entry)) == Error("malformed command")
    assert isinstance(decode_result(machine.query(entry)), Error)


def test_a_batch_leaves_its_shortcut_once_a_command_needs_the_general_path() -> None:
    """The batch loop's inlined ``SET`` neither clears a deadline nor notifies: once an earlier
    command of the same batch set a deadline or turned notifications on, the rest of the batch
    must take the general path (a plain ``SET`` after ``SETEX`` kept the deadline before)."""
    machine = KVStateMachine()
    machine.record_publications()
    c = Client(machine)
    c.batch(SetWith(b"k", b"v", ttl_ms=5000), Set(b"k", b"w"))
    assert query(machine, Ttl(b"k"), 0) == Integer(-1)
    c.batch(NotifyConfig(b"KEA"), Set(b"n", b"1"))
    assert [p.channel for p in machine.take_publications()] == [
        b"__keyspace@0__:n",
        b"__keyevent@0__:set",
    ]


def _random_op(rng: random.Random) -> Command:
    key, db = rng.choice([b"a", b"b", b"c"]), rng.choice([0, 1, 2, 15])
    ops: list[Command] = [
        Set(key, b"%d" % rng.randrange(100)),
        SetWith(key, b"t", ttl_ms=rng.choice([5, 50_000])),
        Incr(key),
        LPush(key, (b"x",), True),
        Move(key, db),
        SwapDb(db, rng.choice([0, 1, 2])),
        FlushDb(),
        Copy(key, rng.choice([b"a", b"b"]), True, db),
        Exec((Select(db), Set(key, b"tx"), Get(key))),
        Watch((key,)),
    ]
    op = rng.choice(ops)
    return InDb(rng.choice([1, 2]), op) if rng.random() < 0.5 else op


@pytest.mark.parametrize("seed", range(5))
def test_replicas_and_restored_snapshots_agree(seed: int) -> None:
    """Two replicas apply the same random log across databases; a third is restored from the
    first's chunks halfway and applies the rest: all three end with the same snapshot."""
    rng = random.Random(seed)
    entries = [
        encode_request(Request(1 + i % 3, 1 + i // 3, _random_op(rng), T0 + 10 * i))
        for i in range(600)
    ]
    first, second = KVStateMachine(), KVStateMachine()
    for entry in entries[:300]:
        assert first.apply(entry) == second.apply(entry)
    third = KVStateMachine()
    loader = third.snapshot_loader()
    for chunk in first.snapshot_chunks(256):
        loader.load(chunk)
    loader.finish()
    for entry in entries[300:]:
        assert first.apply(entry) == second.apply(entry) == third.apply(entry)
    assert first.snapshot() == second.snapshot() == third.snapshot()
    assert list(first.snapshot_chunks(256)) == list(third.snapshot_chunks(256))
    assert first._dbs.keys() - {0} and first.keyspace_lines() == third.keyspace_lines()


@pytest.mark.parametrize(
    ("watcher", "reason"),
    [
        (Watcher(1, False, {}, {0: {b"k": True}}), "in no database"),
        (Watcher(1, False, {}, {16: {b"k": True}}), "in no database"),
        (Watcher(1, False, {}, {3: {}}), "in no database"),
        (Watcher(1, True, {}, {3: {b"k": True}}), "dirty watcher with keys"),
        (Watcher(1, False, {}, {3: dict.fromkeys(b"%d" % i for i in range(1025))}), "too many"),
    ],
)
def test_damaged_watches_in_databases_are_refused(watcher: Watcher, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        WatchTable.from_state((watcher,))
    restored = WatchTable.from_state((Watcher(1, False, {b"k": True}, {3: {b"k": False}}),))
    assert set(restored.by_key) == {(0, b"k"), (3, b"k")} and restored.keys_total == 2
