"""Set commands on the pure state machine (``kv.sets``): Redis's answers, made deterministic."""

from __future__ import annotations

from collection_store import Store

from pypaxos.kv import Array, Error, Integer, Set, Value
from pypaxos.kv.collection_ops import (
    SET_DIFF,
    SET_INTER,
    SET_UNION,
    KeyType,
    SAdd,
    SCard,
    SCombine,
    SCombineStore,
    SIsMember,
    SMembers,
    SMove,
    SPop,
    SRandMember,
    SRem,
)
from pypaxos.kv.commands import Integers
from pypaxos.kv.values import WRONGTYPE


def test_sadd_srem_and_membership() -> None:
    store = Store()
    assert store.run(SAdd(b"s", (b"b", b"a", b"b"))) == Integer(2)
    assert store.run(SAdd(b"s", (b"a", b"c"))) == Integer(1)
    assert store.run(SMembers(b"s")) == Array((b"b", b"a", b"c"))  # the order they were added
    assert store.run(SCard(b"s")) == Integer(3)
    assert store.run(SIsMember(b"s", (b"a", b"z"))) == Integers((1, 0))
    assert store.run(SRem(b"s", (b"a", b"z"))) == Integer(1)
    assert store.run(SRem(b"s", (b"b", b"c"))) == Integer(2)
    assert store.run(KeyType(b"s")) == Value(None)  # emptied: gone


def test_spop_and_srandmember_are_deterministic() -> None:
    store = Store()
    store.run(SAdd(b"s", (b"x", b"y", b"z")))
    assert store.run(SRandMember(b"s")) == Value(b"x")
    assert store.run(SRandMember(b"s", 2)) == Array((b"x", b"y"))
    assert store.run(SRandMember(b"s", -5)) == Array((b"x", b"y", b"z", b"x", b"y"))
    assert store.run(SPop(b"s")) == Value(b"x")  # the member added longest ago
    assert store.run(SPop(b"s", 5)) == Array((b"y", b"z"))
    assert store.run(SPop(b"s")) == Value(None)
    assert store.run(SPop(b"s", 2)) == Array(())
    assert store.run(SRandMember(b"s", -2)) == Array(())


def test_inter_union_diff_and_their_store_forms() -> None:
    store = Store()
    store.run(SAdd(b"a", (b"1", b"2", b"3", b"4")))
    store.run(SAdd(b"b", (b"4", b"3", b"5")))
    assert store.run(SCombine(SET_INTER, (b"a", b"b"))) == Array((b"4", b"3"))  # smallest's order
    assert store.run(SCombine(SET_UNION, (b"a", b"b"))) == Array((b"1", b"2", b"3", b"4", b"5"))
    assert store.run(SCombine(SET_DIFF, (b"a", b"b", b"none"))) == Array((b"1", b"2"))
    assert store.run(SCombine(SET_INTER, (b"a", b"none"))) == Array(())
    store.run(Set(b"dest", b"a string"))
    assert store.run(SCombineStore(SET_DIFF, b"dest", (b"a", b"b"))) == Integer(2)
    assert store.run(SMembers(b"dest")) == Array((b"1", b"2"))
    assert store.run(SCombineStore(SET_INTER, b"dest", (b"a", b"none"))) == Integer(0)
    assert store.run(KeyType(b"dest")) == Value(None)  # an empty result deletes it


def test_smove_and_wrongtype() -> None:
    store = Store()
    store.run(SAdd(b"src", (b"m",)))
    store.run(Set(b"str", b"v"))
    assert store.run(SMove(b"nosrc", b"str", b"m")) == Integer(0)  # absent source: 0 first
    assert store.run(SMove(b"src", b"str", b"m")) == Error(WRONGTYPE)
    assert store.run(SMove(b"src", b"dst", b"x")) == Integer(0)
    assert store.run(SMove(b"src", b"dst", b"m")) == Integer(1)
    assert store.run(KeyType(b"src")) == Value(None)
    assert store.run(SMembers(b"dst")) == Array((b"m",))
    assert store.run(SCombine(SET_UNION, (b"dst", b"str"))) == Error(WRONGTYPE)
