"""List commands on the pure state machine (``kv.lists``)."""

from __future__ import annotations

from collection_store import Store

from pypaxos.kv import Array, Error, Integer, Ok, Set, Value
from pypaxos.kv.collection_ops import (
    KeyType,
    LIndex,
    LInsert,
    LLen,
    LMove,
    LPop,
    LPopFirst,
    LPos,
    LPush,
    LRange,
    LRem,
    LSet,
    LTrim,
)
from pypaxos.kv.commands import Integers
from pypaxos.kv.lists import INDEX_OUT_OF_RANGE
from pypaxos.kv.values import WRONGTYPE


def items(store: Store, key: bytes = b"l") -> Array:
    result = store.run(LRange(key, 0, -1))
    assert isinstance(result, Array)
    return result


def test_push_pop_and_ranges() -> None:
    store = Store()
    assert store.run(LPush(b"l", (b"a", b"b"))) == Integer(2)  # b a
    assert store.run(LPush(b"l", (b"c", b"d"), left=False)) == Integer(4)  # b a c d
    assert items(store) == Array((b"b", b"a", b"c", b"d"))
    assert store.run(LRange(b"l", -3, 1)) == Array((b"a",))
    assert store.run(LRange(b"l", 2, 100)) == Array((b"c", b"d"))
    assert store.run(LRange(b"l", 5, 10)) == Array(())
    assert store.run(LIndex(b"l", -1)) == Value(b"d")
    assert store.run(LIndex(b"l", 4)) == Value(None)
    assert store.run(LPop(b"l")) == Value(b"b")
    assert store.run(LPop(b"l", left=False, count=2)) == Array((b"d", b"c"))
    assert store.run(LPop(b"l", count=0)) == Array(())
    assert store.run(LPop(b"l", count=5)) == Array((b"a",))
    assert store.run(KeyType(b"l")) == Value(None)
    assert store.run(LPop(b"l", count=5)) == Value(None)  # Redis's null array
    assert store.run(LPush(b"l", (b"x",), only_existing=True)) == Integer(0)
    assert store.run(LLen(b"l")) == Integer(0)


def test_lset_lrem_ltrim_linsert() -> None:
    store = Store()
    assert store.run(LSet(b"l", 0, b"x")) == Error("no such key")
    store.run(LPush(b"l", (b"a", b"b", b"a", b"c", b"a"), left=False))
    assert store.run(LSet(b"l", 9, b"x")) == Error(INDEX_OUT_OF_RANGE)
    assert store.run(LSet(b"l", None, b"x")) == Error("value is not an integer or out of range")
    assert store.run(LSet(b"l", -1, b"z")) == Ok()
    assert store.run(LRem(b"l", -1, b"a")) == Integer(1)  # from the tail: a b a c z -> a b c z
    assert items(store) == Array((b"a", b"b", b"c", b"z"))
    assert store.run(LInsert(b"l", True, b"c", b"new")) == Integer(5)
    assert store.run(LInsert(b"l", False, b"nope", b"x")) == Integer(-1)
    assert store.run(LTrim(b"l", 1, -2)) == Ok()
    assert items(store) == Array((b"b", b"new", b"c"))
    assert store.run(LTrim(b"l", 5, 1)) == Ok()
    assert store.run(KeyType(b"l")) == Value(None)


def test_lmove_rotates_and_refuses_a_wrong_destination() -> None:
    store = Store()
    store.run(LPush(b"l", (b"1", b"2", b"3"), left=False))
    assert store.run(LMove(b"l", b"l", True, False)) == Value(b"1")
    assert items(store) == Array((b"2", b"3", b"1"))
    store.run(Set(b"s", b"v"))
    assert store.run(LMove(b"l", b"s", True, True)) == Error(WRONGTYPE)
    assert items(store) == Array((b"2", b"3", b"1"))  # nothing moved
    store.run(LPush(b"one", (b"x",)))
    assert store.run(LMove(b"one", b"other", False, True)) == Value(b"x")
    assert store.run(KeyType(b"one")) == Value(None)
    assert items(store, b"other") == Array((b"x",))


def test_lpos() -> None:
    store = Store()
    store.run(LPush(b"l", (b"a", b"b", b"a", b"c", b"a"), left=False))
    assert store.run(LPos(b"l", b"a")) == Integer(0)
    assert store.run(LPos(b"l", b"a", rank=2)) == Integer(2)
    assert store.run(LPos(b"l", b"a", rank=-1)) == Integer(4)
    assert store.run(LPos(b"l", b"a", count=0)) == Integers((0, 2, 4))
    assert store.run(LPos(b"l", b"a", rank=-2, count=5)) == Integers((2, 0))
    assert store.run(LPos(b"l", b"a", count=5, maxlen=3)) == Integers((0, 2))
    assert store.run(LPos(b"l", b"zz")) == Value(None)


def test_pop_first_takes_from_the_first_list_only() -> None:
    store = Store()
    store.run(LPush(b"b", (b"1", b"2", b"3"), left=False))
    store.run(LPush(b"c", (b"x",)))
    assert store.run(LPopFirst((b"a", b"b", b"c"), left=False, count=2)) == Array(
        (b"b", b"3", b"2")
    )
    assert store.run(LPopFirst((b"b", b"c"), count=9)) == Array((b"b", b"1"))
    assert store.run(KeyType(b"b")) == Value(None)
    assert store.run(LPopFirst((b"a",))) == Value(None)
    store.run(Set(b"s", b"v"))
    assert store.run(LPopFirst((b"s", b"c"))) == Error(WRONGTYPE)  # checked in key order
