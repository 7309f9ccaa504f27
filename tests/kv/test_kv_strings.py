"""The Redis string and keyspace commands on the pure state machine (``kv.keyspace``)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pypaxos.kv import (
    SET_NX,
    SET_XX,
    VALUE_BYTES_MAX,
    Append,
    Array,
    Command,
    DbSize,
    Error,
    FlushAll,
    Get,
    GetDel,
    IncrBy,
    IncrByFloat,
    Integer,
    Keys,
    KVStateMachine,
    MSet,
    Ok,
    Page,
    RandomKey,
    Rename,
    Request,
    RequestBatch,
    Result,
    Results,
    Scan,
    Set,
    SetRange,
    SetWith,
    Value,
    decode_answer,
    decode_result,
    encode_request,
)
from pypaxos.kv.glob import glob_matcher, regex_matcher
from pypaxos.kv.keyspace import (
    format_long_double,
    parse_long_double,
    scan_hash,
    to_long_double,
)
from pypaxos.kv.store import shard_of


class Store:
    """A machine fed one request per command, as the log would."""

    def __init__(self) -> None:
        self.machine = KVStateMachine()
        self.seq = 0

    def run(self, op: Command) -> Result:
        self.seq += 1
        return decode_result(self.machine.apply(encode_request(Request(1, self.seq, op))))


def test_set_with_conditions_and_get() -> None:
    store = Store()
    assert store.run(SetWith(b"k", b"1", SET_XX)) == Value(None)  # XX on an absent key
    assert store.machine.get(b"k") is None
    assert store.run(SetWith(b"k", b"1", SET_NX)) == Ok()
    assert store.run(SetWith(b"k", b"2", SET_NX)) == Value(None)
    assert store.run(SetWith(b"k", b"3", SET_XX, get=True)) == Value(b"1")
    assert store.run(SetWith(b"k", b"4", SET_NX, get=True)) == Value(b"3")  # not stored
    assert store.machine.get(b"k") == b"3"
    assert store.run(SetWith(b"new", b"v", get=True)) == Value(None)
    assert store.machine.get(b"new") == b"v"


def test_getdel_mset_msetnx() -> None:
    store = Store()
    assert store.run(MSet(((b"a", b"1"), (b"b", b"2"), (b"a", b"3")))) == Ok()
    assert store.machine.get(b"a") == b"3"  # the last pair for a key wins, as in Redis
    assert store.run(MSet(((b"c", b"1"), (b"b", b"9")), nx=True)) == Integer(0)
    assert store.machine.get(b"c") is None  # all or nothing
    assert store.run(MSet(((b"c", b"1"), (b"d", b"2")), nx=True)) == Integer(1)
    assert store.run(GetDel(b"c")) == Value(b"1")
    assert store.run(GetDel(b"c")) == Value(None)


def test_append_and_setrange() -> None:
    store = Store()
    assert store.run(Append(b"k", b"ab")) == Integer(2)
    assert store.run(Append(b"k", b"cd")) == Integer(4)
    assert store.run(SetRange(b"k", 1, b"XY")) == Integer(4)
    assert store.machine.get(b"k") == b"aXYd"
    assert store.run(SetRange(b"z", 3, b"q")) == Integer(4)
    assert store.machine.get(b"z") == b"\0\0\0q"
    assert store.run(SetRange(b"absent", 5, b"")) == Integer(0)
    assert store.machine.get(b"absent") is None  # an empty write creates nothing
    assert store.run(SetRange(b"k", -1, b"x")) == Error("offset is out of range")
    too_far = SetRange(b"k", VALUE_BYTES_MAX, b"x")
    assert store.run(too_far) == Error("string exceeds maximum allowed size (proto-max-bulk-len)")
    store.run(SetRange(b"big", 0, b"x" * VALUE_BYTES_MAX))
    assert isinstance(store.run(Append(b"big", b"y")), Error)
    assert len(store.machine.get(b"big") or b"") == VALUE_BYTES_MAX


def test_incrby_bounds() -> None:
    store = Store()
    assert store.run(IncrBy(b"n", 5)) == Integer(5)
    assert store.run(IncrBy(b"n", -7)) == Integer(-2)
    assert store.machine.get(b"n") == b"-2"
    assert store.run(IncrBy(b"n", 2**63 - 1)) == Integer(2**63 - 3)
    assert store.run(IncrBy(b"n", 3)) == Error("increment or decrement would overflow")
    store.run(SetWith(b"s", b"007"))
    assert store.run(IncrBy(b"s", 1)) == Error("value is not an integer or out of range")


@pytest.mark.parametrize(
    ("start", "amount", "spelled"),
    [
        (None, b"10.5", b"10.5"),
        (b"10.5", b"0.1", b"10.6"),
        (b"3.0e3", b"200", b"3200"),
        (b"5", b"-5", b"0"),
        (b"-1", b"0.9999999", b"-0.0000001"),
        (b"1000.1", b"0", b"1000.09999999999999998"),  # what redis-server 7.0 answers
        (b"1", b"1e-20", b"1"),
    ],
)
def test_incrbyfloat_spells_as_redis(start: bytes | None, amount: bytes, spelled: bytes) -> None:
    store = Store()
    if start is not None:
        store.run(SetWith(b"f", start))
    assert store.run(IncrByFloat(b"f", amount)) == Value(spelled)
    assert store.machine.get(b"f") == spelled


@pytest.mark.parametrize("amount", [b"abc", b"", b" 1", b"1 ", b"nan", b"0x", b"1e99999"])
def test_incrbyfloat_refuses_what_is_not_a_float(amount: bytes) -> None:
    assert Store().run(IncrByFloat(b"f", amount)) == Error("value is not a valid float")


def test_incrbyfloat_refuses_infinity() -> None:
    assert Store().run(IncrByFloat(b"f", b"inf")) == Error(
        "increment would produce NaN or Infinity"
    )


def test_long_double_rounding() -> None:
    assert to_long_double(Fraction(1, 3)) != Fraction(1, 3)
    assert to_long_double(Fraction(2**64 + 1)) == Fraction(2**64)  # 64 significant bits
    assert to_long_double(Fraction(2**63 + 1)) == Fraction(2**63 + 1)
    assert format_long_double(Fraction(-1, 10**20)) == b"0"  # "-0" reads as 0
    assert parse_long_double(b"+.5") == Fraction(1, 2)


def test_rename_and_renamenx() -> None:
    store = Store()
    assert store.run(Rename(b"a", b"b")) == Error("no such key")
    assert store.run(Rename(b"a", b"b", nx=True)) == Error("no such key")
    store.run(MSet(((b"a", b"1"), (b"c", b"3"))))
    assert store.run(Rename(b"a", b"a")) == Ok()
    assert store.run(Rename(b"a", b"a", nx=True)) == Integer(0)
    assert store.run(Rename(b"a", b"c", nx=True)) == Integer(0)
    assert store.run(Rename(b"a", b"b")) == Ok()
    assert (store.machine.get(b"a"), store.machine.get(b"b")) == (None, b"1")
    assert store.run(Rename(b"b", b"c")) == Ok()  # overwrites
    assert store.machine.get(b"c") == b"1"


def test_keys_dbsize_flush_randomkey() -> None:
    store = Store()
    assert store.run(RandomKey()) == Value(None)
    written = [b"user:2", b"user:1", b"other", b"u[x]"]
    store.run(MSet(tuple((key, b"") for key in written)))
    assert store.run(DbSize()) == Integer(4)
    assert store.run(Keys(b"*")) == Array((b"other", b"u[x]", b"user:1", b"user:2"))
    assert store.run(Keys(b"user:?")) == Array((b"user:1", b"user:2"))
    assert store.run(Keys(b"user:[^2]")) == Array((b"user:1",))
    assert store.run(Keys(b"u\\[x\\]")) == Array((b"u[x]",))
    # Not random: the first key in the store's order (lowest shard, then oldest in it).
    first = min(written, key=lambda key: (shard_of(key), written.index(key)))
    assert store.run(RandomKey()) == Value(first)
    assert store.run(FlushAll()) == Ok()
    assert store.run(DbSize()) == Integer(0)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        (b"h?llo", b"hello", True),
        (b"h*llo", b"heeeello", True),
        (b"h[ae]llo", b"hallo", True),
        (b"h[ae]llo", b"hillo", False),
        (b"h[^e]llo", b"hallo", True),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hbllo", True),  # a reversed range, as Redis reads it
        (b"*", b"", True),
        (b"a*", b"b\na", False),
        (b"*\\*", b"x*", True),
        (b"x.y", b"xzy", False),  # regex characters are literal
    ],
)
def test_glob(pattern: bytes, key: bytes, matches: bool) -> None:
    assert glob_matcher(pattern)(key) is matches
    assert regex_matcher(pattern)(key) is matches  # the reference agrees


def test_keys_with_a_pathological_pattern_answers() -> None:
    """``*a*a*...*b`` against a long run of ``a``: a backtracking matcher would hold the node
    for years; the linear one answers (the test would hang, not fail, if it came back)."""
    machine = KVStateMachine()
    machine.apply(encode_request(Request(1, 1, Set(b"a" * 5000, b"v"), 1)))
    machine.apply(encode_request(Request(1, 2, Set(b"a" * 5000 + b"b", b"v"), 1)))
    answer = decode_result(
        machine.query(encode_request(Request(1, 3, Keys(b"*a" * 12 + b"*b"), 1)))
    )
    assert answer == Array((b"a" * 5000 + b"b",))


def test_scan_returns_every_key_once_and_survives_writes() -> None:
    store = Store()
    keys = [b"k%d" % i for i in range(57)]
    store.run(MSet(tuple((k, b"") for k in keys)))
    seen: list[bytes] = []
    cursor = 0
    rounds = 0
    while True:
        page = store.run(Scan(cursor, None, 5))
        assert isinstance(page, Page)
        seen.extend(page.keys)
        # Churn between pages: a new key and a deleted one never make a present key vanish.
        store.run(SetWith(b"new%d" % rounds, b""))
        rounds += 1
        cursor = page.cursor
        if cursor == 0:
            break
    assert {k for k in seen if k.startswith(b"k")} == set(keys)
    assert len([k for k in seen if k.startswith(b"k")]) == len(keys)
    assert rounds >= 57 // 5
    assert all(1 <= scan_hash(k) <= 2**63 for k in keys)


def test_scan_match_filters_a_page() -> None:
    store = Store()
    store.run(MSet(((b"a1", b""), (b"a2", b""), (b"b1", b""))))
    page = store.run(Scan(0, b"a*", 100))
    assert isinstance(page, Page)
    assert (page.cursor, sorted(page.keys)) == (0, [b"a1", b"a2"])


def test_reads_answer_off_the_log_as_in_it() -> None:
    store = Store()
    store.run(MSet(((b"a", b"1"), (b"b", b"2"))))
    for op in (DbSize(), Keys(b"*"), Scan(0), RandomKey(), Get(b"a")):
        queried = store.machine.query(encode_request(Request(9, 1, op)))
        assert decode_result(queried) == store.run(op)
    batch = RequestBatch(9, 1, (DbSize(), Keys(b"a")))
    assert decode_answer(store.machine.query(encode_request(batch))) == Results(
        (Integer(2), Array((b"a",)))
    )
    refused = store.machine.query(encode_request(Request(9, 1, FlushAll())))
    assert decode_result(refused) == Error("not a read-only command")
    assert store.machine.get(b"a") == b"1"


def test_new_commands_are_deterministic_across_snapshot() -> None:
    ops: list[Command] = [
        MSet(((b"a", b"1"), (b"b", b"x"))),
        Append(b"b", b"yz"),
        IncrByFloat(b"a", b"0.5"),
        Rename(b"b", b"c"),
        SetRange(b"c", 1, b"Q"),
    ]
    first, second = Store(), Store()
    for op in ops[:3]:
        first.run(op)
        second.run(op)
    third = KVStateMachine()
    third.restore(second.machine.snapshot())
    for seq, op in enumerate(ops[3:], start=4):
        first.run(op)
        third.apply(encode_request(Request(1, seq, op)))
    assert first.machine.snapshot() == third.snapshot()
