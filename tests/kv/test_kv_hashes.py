"""Hash commands on the pure state machine (``kv.hashes``)."""

from __future__ import annotations

from collection_store import Store

from pypaxos.kv import Append, Array, Error, Get, Incr, Integer, Page, Set, Value
from pypaxos.kv.collection_ops import (
    HDel,
    HGet,
    HGetAll,
    HIncrBy,
    HIncrByFloat,
    HLen,
    HMGet,
    HScan,
    HSet,
    KeyType,
)
from pypaxos.kv.commands import Values
from pypaxos.kv.hashes import HASH_NOT_A_FLOAT, HASH_NOT_AN_INTEGER
from pypaxos.kv.values import WRONGTYPE, HashValue


def test_hset_counts_new_fields_and_keeps_first_set_order() -> None:
    store = Store()
    assert store.run(HSet(b"h", ((b"b", b"1"), (b"a", b"2")))) == Integer(2)
    assert store.run(HSet(b"h", ((b"b", b"3"), (b"c", b"4")))) == Integer(1)
    assert store.run(HGetAll(b"h")) == Array((b"b", b"3", b"a", b"2", b"c", b"4"))
    assert store.run(HLen(b"h")) == Integer(3)
    assert store.run(HGet(b"h", b"a")) == Value(b"2")
    assert store.run(HGet(b"h", b"zz")) == Value(None)
    assert store.run(HMGet(b"h", (b"c", b"zz", b"b"))) == Values((b"4", None, b"3"))
    assert store.run(KeyType(b"h")) == Value(b"hash")


def test_hsetnx_sets_only_an_absent_field() -> None:
    store = Store()
    assert store.run(HSet(b"h", ((b"f", b"1"),), nx=True)) == Integer(1)
    assert store.run(HSet(b"h", ((b"f", b"2"),), nx=True)) == Integer(0)
    assert store.run(HGet(b"h", b"f")) == Value(b"1")


def test_hdel_of_the_last_field_deletes_the_key() -> None:
    store = Store()
    store.run(HSet(b"h", ((b"a", b"1"), (b"b", b"2"))))
    assert store.run(HDel(b"h", (b"a", b"x", b"a"))) == Integer(1)
    assert store.run(HDel(b"h", (b"b",))) == Integer(1)
    assert store.machine.get(b"h") is None
    assert store.run(KeyType(b"h")) == Value(None)
    assert store.run(HDel(b"h", (b"b",))) == Integer(0)


def test_hincrby_and_its_errors() -> None:
    store = Store()
    assert store.run(HIncrBy(b"h", b"n", 5)) == Integer(5)
    assert store.run(HIncrBy(b"h", b"n", -7)) == Integer(-2)
    store.run(HSet(b"h", ((b"s", b"abc"),)))
    assert store.run(HIncrBy(b"h", b"s", 1)) == Error(HASH_NOT_AN_INTEGER)
    store.run(HSet(b"h", ((b"big", b"%d" % (2**63 - 1)),)))
    assert store.run(HIncrBy(b"h", b"big", 1)) == Error("increment or decrement would overflow")
    assert store.run(HIncrBy(b"fresh", b"big", 2**63 - 1)) == Integer(2**63 - 1)


def test_hincrbyfloat_spells_as_incrbyfloat_and_leaves_no_empty_hash() -> None:
    store = Store()
    assert store.run(HIncrByFloat(b"h", b"f", b"10.5")) == Value(b"10.5")
    assert store.run(HIncrByFloat(b"h", b"f", b"0.1")) == Value(b"10.6")
    store.run(HSet(b"h", ((b"s", b"x"),)))
    assert store.run(HIncrByFloat(b"h", b"s", b"1")) == Error(HASH_NOT_A_FLOAT)
    assert store.run(HIncrByFloat(b"other", b"f", b"nope")) == Error("value is not a valid float")
    assert store.machine.get(b"other") is None  # the refused command created nothing


def test_hash_commands_on_a_string_and_string_commands_on_a_hash() -> None:
    store = Store()
    store.run(Set(b"s", b"v"))
    store.run(HSet(b"h", ((b"f", b"v"),)))
    for op in (
        HSet(b"s", ((b"f", b"v"),)),
        HGet(b"s", b"f"),
        HGetAll(b"s"),
        HIncrBy(b"s", b"f", 1),
    ):
        assert store.run(op) == Error(WRONGTYPE)
    for string_op in (Get(b"h"), Incr(b"h"), Append(b"h", b"x")):
        assert store.run(string_op) == Error(WRONGTYPE)
    assert isinstance(store.machine.get(b"h"), HashValue)  # unchanged by the refusals
    assert store.run(Set(b"h", b"now a string")) is not None  # SET replaces any type
    assert store.run(KeyType(b"h")) == Value(b"string")


def test_hscan_returns_a_small_hash_in_one_page_and_a_large_one_in_pages() -> None:
    store = Store()
    store.run(HSet(b"small", ((b"b", b"1"), (b"a", b"2"))))
    assert store.run(HScan(b"small", 0)) == Page(0, (b"b", b"1", b"a", b"2"))
    assert store.run(HScan(b"small", 0, b"a*")) == Page(0, (b"a", b"2"))
    fields = tuple((b"f%d" % n, b"v%d" % n) for n in range(300))
    store.run(HSet(b"large", fields))
    seen: dict[bytes, bytes] = {}
    cursor, pages = 0, 0
    while True:
        page = store.run(HScan(b"large", cursor, count=50))
        assert isinstance(page, Page)
        seen.update(zip(page.keys[::2], page.keys[1::2], strict=True))
        pages += 1
        cursor = page.cursor
        if cursor == 0:
            break
    assert seen == dict(fields) and pages > 1
