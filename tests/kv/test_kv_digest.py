"""The state digest (``kv.digest``): the incremental bookkeeping equals a recomputation from
scratch after any history, equal states give equal digests, and a divergent replica is caught."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.kv import (
    Append,
    Cas,
    Command,
    Delete,
    Expire,
    FlushAll,
    GetDel,
    Incr,
    IncrBy,
    IncrByFloat,
    KvBug,
    KVStateMachine,
    MSet,
    Persist,
    Rename,
    Request,
    RequestBatch,
    Set,
    SetRange,
    SetWith,
    encode_request,
)
from pypaxos.kv.collection_ops import (
    Copy,
    HDel,
    HIncrBy,
    HIncrByFloat,
    HSet,
    LInsert,
    LMove,
    LPop,
    LPopFirst,
    LPush,
    LRem,
    LSet,
    LTrim,
    SAdd,
    SCombineStore,
    SMove,
    SPop,
    SRem,
    ZAdd,
    ZCombineStore,
    ZIncrBy,
    ZPop,
    ZPopFirst,
    ZRangeByRank,
    ZRangeStore,
    ZRem,
    ZRemRangeByRank,
)
from pypaxos.kv.commands import Exec, FlushDb, InDb, Move, Select, SwapDb
from pypaxos.kv.digest import digest_of

T0 = 1_700_000_000_000
KEYS = [b"a", b"b", b"c", b"d"]
MEMBERS = [b"x", b"y", b"z"]

key = st.sampled_from(KEYS)
member = st.sampled_from(MEMBERS)
small = st.binary(max_size=3)

string_ops = st.one_of(
    st.builds(Set, key, small),
    st.builds(SetWith, key, small, ttl_ms=st.sampled_from([0, 5, 50])),
    st.builds(Delete, key),
    st.builds(GetDel, key),
    st.builds(Append, key, small),
    st.builds(IncrBy, key, st.integers(-3, 3)),
    st.builds(Rename, key, key),
    st.builds(Expire, key, st.sampled_from([1, 20, 100])),
    st.builds(Persist, key),
    st.builds(Copy, key, key, st.booleans()),
    st.builds(SetRange, key, st.integers(0, 4), small),
    st.builds(IncrByFloat, key, st.sampled_from([b"1.5", b"-0.25"])),
    st.builds(Cas, key, st.one_of(st.none(), small), small),
    st.builds(Incr, key),
    st.builds(MSet, st.lists(st.tuples(key, small), min_size=1, max_size=2).map(tuple)),
)
collection_ops = st.one_of(
    st.builds(HSet, key, st.lists(st.tuples(member, small), min_size=1, max_size=2).map(tuple)),
    st.builds(HDel, key, st.lists(member, min_size=1, max_size=2).map(tuple)),
    st.builds(HIncrBy, key, member, st.integers(-2, 2)),
    st.builds(LPush, key, st.lists(small, min_size=1, max_size=2).map(tuple), st.booleans()),
    st.builds(LPop, key, st.booleans()),
    st.builds(LSet, key, st.integers(-2, 2), small),
    st.builds(LTrim, key, st.integers(-2, 2), st.integers(-2, 2)),
    st.builds(LMove, key, key, st.booleans(), st.booleans()),
    st.builds(SAdd, key, st.lists(member, min_size=1, max_size=2).map(tuple)),
    st.builds(SRem, key, st.lists(member, min_size=1, max_size=2).map(tuple)),
    st.builds(SMove, key, key, member),
    st.builds(SPop, key),
    st.builds(
        ZAdd,
        key,
        st.lists(st.tuples(st.sampled_from([0.0, 1.5, -2.0]), member), min_size=1, max_size=2).map(
            tuple
        ),
    ),
    st.builds(ZRem, key, st.lists(member, min_size=1, max_size=2).map(tuple)),
    st.builds(ZIncrBy, key, st.sampled_from([1.0, -1.0]), member),
    st.builds(ZPop, key, st.booleans()),
    st.builds(HIncrByFloat, key, member, st.sampled_from([b"0.5", b"-1"])),
    st.builds(LInsert, key, st.booleans(), small, small),
    st.builds(LRem, key, st.integers(-1, 1), small),
    st.builds(LPopFirst, st.lists(key, min_size=1, max_size=2).map(tuple), st.booleans()),
    st.builds(
        SCombineStore, st.integers(0, 2), key, st.lists(key, min_size=1, max_size=2).map(tuple)
    ),
    st.builds(
        ZCombineStore, st.integers(0, 2), key, st.lists(key, min_size=1, max_size=2).map(tuple)
    ),
    st.builds(
        ZRangeStore, key, st.builds(ZRangeByRank, key, st.integers(-2, 1), st.integers(-1, 2))
    ),
    st.builds(ZRemRangeByRank, key, st.integers(-2, 1), st.integers(-1, 2)),
    st.builds(ZPopFirst, st.lists(key, min_size=1, max_size=2).map(tuple)),
)
db = st.integers(0, 2)
plain_op = st.one_of(string_ops, collection_ops)
database_ops = st.one_of(
    st.builds(InDb, db, plain_op),  # a command of a connection that selected another database
    st.builds(Move, key, db),
    st.builds(SwapDb, db, db),
    st.builds(Copy, key, key, st.booleans(), db),
    st.builds(InDb, db, st.just(FlushDb())),
)
single_op = st.one_of(plain_op, database_ops)
any_op: st.SearchStrategy[Command] = st.one_of(
    single_op,
    st.just(FlushAll()),
    st.builds(
        Exec,
        st.lists(st.one_of(single_op, st.builds(Select, db)), min_size=1, max_size=3).map(tuple),
    ),
)
# (client, op or batch, milliseconds since the last request)
step = st.tuples(
    st.integers(1, 3),
    st.one_of(any_op, st.lists(single_op, min_size=1, max_size=3)),
    st.sampled_from([0, 0, 1, 10, 60]),
)


class _Feeder:
    """Numbers each client's requests and keeps the clock across calls (a later call goes on
    where the last one stopped, so nothing is mistaken for a retry)."""

    def __init__(self, machine: KVStateMachine) -> None:
        self.machine = machine
        self.seqs: dict[int, int] = {}
        self.now_ms = T0

    def feed(self, steps: list[tuple[int, object, int]]) -> None:
        for client, op, elapsed_ms in steps:
            self.seqs[client] = self.seqs.get(client, 0) + 1
            self.now_ms += elapsed_ms
            seq = self.seqs[client]
            if isinstance(op, list):
                request: Request | RequestBatch = RequestBatch(client, seq, tuple(op), self.now_ms)
            else:
                request = Request(client, seq, op, self.now_ms)  # type: ignore[arg-type]
            self.machine.apply(encode_request(request))


def _apply_all(machine: KVStateMachine, steps: list[tuple[int, object, int]]) -> None:
    _Feeder(machine).feed(steps)


def _from_scratch(machine: KVStateMachine) -> bytes:
    scalars = (machine.now_ms, machine.notify_bits, machine.session_ttl_commands)
    tables = [(0, (machine._data, machine._expires)), *machine._dbs.items()]
    return digest_of(tables, machine._sessions.values(), scalars)


@settings(max_examples=500, deadline=None)
@given(st.lists(step, max_size=40), st.booleans() | st.lists(st.integers(0, 40), max_size=3))
def test_incremental_digest_equals_recomputation(
    steps: list[tuple[int, object, int]], asks: bool | list[int]
) -> None:
    """Asked after every step (each write settled at once) or only now and then (writes to one
    key between two asks coalesced): always the digest of the state from scratch."""
    machine = KVStateMachine(session_ttl_commands=10)  # sessions expire within the run
    feeder = _Feeder(machine)
    if isinstance(asks, bool):
        asks = list(range(len(steps))) if asks else []
    done = 0
    for ask in sorted(asks):
        feeder.feed(steps[done:ask])
        done = max(done, ask)
        assert machine.state_digest() == _from_scratch(machine)
    feeder.feed(steps[done:])
    assert machine.state_digest() == _from_scratch(machine)


few_ops = st.one_of(
    st.builds(Set, key, small),
    st.builds(SetWith, key, small, ttl_ms=st.sampled_from([5, 50])),
    st.builds(Delete, key),
    st.builds(SAdd, key, st.lists(member, min_size=1, max_size=2).map(tuple)),
)
database_step = st.tuples(
    st.integers(1, 2),
    st.one_of(few_ops, st.builds(InDb, db, few_ops), database_ops, st.just(FlushAll())),
    st.sampled_from([0, 10]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(database_step, max_size=30), st.booleans())
def test_incremental_digest_across_databases(
    steps: list[tuple[int, object, int]], each_step: bool
) -> None:
    """Writes, moves, copies, swaps and flushes across databases: each database's sum follows
    its tables, asked after every step or only at the end."""
    machine = KVStateMachine()
    feeder = _Feeder(machine)
    for index, one in enumerate(steps):
        feeder.feed([one])
        if each_step or index == len(steps) - 1:
            assert machine.state_digest() == _from_scratch(machine)


@settings(max_examples=100, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_a_machine_without_a_digest_marks_nothing_and_computes_the_same_one(
    steps: list[tuple[int, object, int]],
) -> None:
    """``state_digest=False``: no running digest, no marks kept, no per-key hashes; the
    from-scratch ``full_digest`` (what a backup's child computes) equals a tracking replica's."""
    tracking, plain = KVStateMachine(), KVStateMachine(state_digest=False)
    _apply_all(tracking, steps)
    _apply_all(plain, steps)
    assert plain.state_digest() is None
    assert plain.full_digest() == tracking.state_digest() == tracking.full_digest()
    parts = plain._digest.dbs.values()
    assert not plain._digest.dirty_sessions and all(not p.dirty and not p.hashes for p in parts)
    copy = KVStateMachine(state_digest=False)
    loader = copy.snapshot_loader()
    for chunk in tracking.snapshot_chunks(256):
        loader.load(chunk)
    loader.finish()
    assert copy.state_digest() is None and copy.full_digest() == tracking.state_digest()


@settings(max_examples=100, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_a_restored_replica_has_the_same_digest(steps: list[tuple[int, object, int]]) -> None:
    machine = KVStateMachine()
    _apply_all(machine, steps)
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in machine.snapshot_chunks(256):
        loader.load(chunk)
    loader.finish()
    assert copy.state_digest() == machine.state_digest()


def test_the_digest_changes_with_any_part_of_the_state() -> None:
    base = KVStateMachine()
    _apply_all(base, [(1, Set(b"k", b"v"), 0)])
    seen = {base.state_digest()}
    variants: list[list[tuple[int, object, int]]] = [
        [(1, Set(b"k", b"w"), 0)],  # another value
        [(1, Set(b"j", b"v"), 0)],  # another key
        [(1, SetWith(b"k", b"v", ttl_ms=1000), 0)],  # a deadline
        [(1, HSet(b"k", ((b"v", b""),)), 0)],  # another type
        [(2, Set(b"k", b"v"), 0)],  # another client's session
        [(1, Set(b"k", b"v"), 1)],  # another clock
    ]
    for history in variants:
        machine = KVStateMachine()
        _apply_all(machine, history)
        seen.add(machine.state_digest())
    assert len(seen) == len(variants) + 1


def test_field_order_of_a_hash_is_part_of_the_state() -> None:
    """HGETALL answers in first-set order, so two orders are two states."""
    one, two = KVStateMachine(), KVStateMachine()
    _apply_all(one, [(1, HSet(b"h", ((b"x", b"1"), (b"y", b"2"))), 0)])
    _apply_all(two, [(1, HSet(b"h", ((b"y", b"2"), (b"x", b"1"))), 0)])
    assert one.state_digest() != two.state_digest()


def _restored(machine: KVStateMachine) -> KVStateMachine:
    copy = KVStateMachine()
    loader = copy.snapshot_loader()
    for chunk in machine.snapshot_chunks(4096):
        loader.load(chunk)
    loader.finish()
    return copy


def _diverges_through_a_snapshot(bug: KvBug) -> bool:
    """A replica restored from the buggy machine's snapshot, then both fed one more entry:
    do the digests tell them apart?"""
    history: list[tuple[int, object, int]] = [
        (1, Set(b"plain", b"1"), 0),
        (1, SetWith(b"ttl", b"2", ttl_ms=60_000), 5),
        (2, HSet(b"h", ((b"f", b"v"),)), 5),
    ]
    leader = KVStateMachine(bugs=frozenset({bug}))
    _apply_all(leader, history)
    follower = _restored(leader)
    entry = encode_request(Request(3, 1, Set(b"late", b"3"), T0 + 100))
    leader.apply(entry)
    follower.apply(entry)
    return leader.state_digest() != follower.state_digest()


def test_a_snapshot_that_drops_deadlines_is_caught_by_the_digest() -> None:
    assert _diverges_through_a_snapshot(KvBug.SNAPSHOT_DROPS_DEADLINES)


def test_a_snapshot_that_drops_sessions_is_caught_by_the_digest() -> None:
    assert _diverges_through_a_snapshot(KvBug.SNAPSHOT_DROPS_SESSIONS)


def test_without_a_bug_the_restored_replica_agrees() -> None:
    leader = KVStateMachine()
    _apply_all(leader, [(1, SetWith(b"ttl", b"2", ttl_ms=60_000), 0)])
    follower = _restored(leader)
    entry = encode_request(Request(3, 1, Set(b"late", b"3"), T0 + 100))
    leader.apply(entry)
    follower.apply(entry)
    assert leader.state_digest() == follower.state_digest()


def test_many_writes_between_reads_are_folded_in_bounded_batches() -> None:
    machine = KVStateMachine()
    batch = [Set(b"k%d" % i, b"v") for i in range(10_000)]
    machine.apply(encode_request(RequestBatch(1, 1, tuple(batch), T0)))
    machine.apply(encode_request(Request(1, 2, Set(b"one", b"more"), T0)))
    assert len(machine._digest.dbs[0].dirty) <= 1  # folded by the machine itself
    assert machine.state_digest() == _from_scratch(machine)
