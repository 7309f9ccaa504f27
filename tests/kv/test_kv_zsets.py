"""Sorted-set commands on the pure state machine (``kv.zsets``)."""

from __future__ import annotations

import math

import pytest
from collection_store import Store

from pypaxos.kv import Array, Error, Integer, Set, Value
from pypaxos.kv.collection_ops import (
    AGGREGATE_MAX,
    LEX_EXCLUSIVE,
    LEX_INCLUSIVE,
    LEX_MAX,
    LEX_MIN,
    SET_DIFF,
    SET_INTER,
    SET_UNION,
    ZADD_CH,
    ZADD_GT,
    ZADD_INCR,
    ZADD_LT,
    ZADD_NX,
    ZADD_XX,
    KeyType,
    LexBound,
    SAdd,
    ScoreBound,
    ZAdd,
    ZCard,
    ZCombine,
    ZCombineStore,
    ZCount,
    ZIncrBy,
    ZLexCount,
    ZPop,
    ZPopFirst,
    ZRangeByLex,
    ZRangeByRank,
    ZRangeByScore,
    ZRangeStore,
    ZRank,
    ZRem,
    ZRemRangeByLex,
    ZRemRangeByRank,
    ZRemRangeByScore,
    ZScore,
)
from pypaxos.kv.commands import Score, Scored, Scores
from pypaxos.kv.values import WRONGTYPE
from pypaxos.kv.zsets import SCORE_IS_NAN, format_score

INF = math.inf


def members(store: Store, key: bytes = b"z") -> tuple[bytes, ...]:
    result = store.run(ZRangeByRank(key, 0, -1))
    assert isinstance(result, Scored)
    return tuple(member for member, _ in result.items)


def test_zadd_orders_by_score_then_member_and_its_flags() -> None:
    store = Store()
    assert store.run(ZAdd(b"z", ((2.0, b"b"), (1.0, b"c"), (2.0, b"a")))) == Integer(3)
    assert members(store) == (b"c", b"a", b"b")
    assert store.run(ZAdd(b"z", ((5.0, b"c"), (1.0, b"new")), ZADD_XX)) == Integer(0)
    assert store.run(ZScore(b"z", (b"c", b"new"))) == Scores((5.0, None))
    assert store.run(ZAdd(b"z", ((9.0, b"c"), (1.0, b"d")), ZADD_NX | ZADD_CH)) == Integer(1)
    assert store.run(ZAdd(b"z", ((4.0, b"c"), (3.0, b"a")), ZADD_GT | ZADD_CH)) == Integer(1)
    assert store.run(ZScore(b"z", (b"c", b"a"))) == Scores((5.0, 3.0))
    assert store.run(ZAdd(b"z", ((1.0, b"c"),), ZADD_LT | ZADD_INCR)) == Score(None)
    assert store.run(ZAdd(b"z", ((-1.0, b"c"),), ZADD_LT | ZADD_INCR)) == Score(4.0)
    assert store.run(ZAdd(b"none", ((1.0, b"x"),), ZADD_XX)) == Integer(0)
    assert store.run(KeyType(b"none")) == Value(None)


def test_zincrby_and_nan() -> None:
    store = Store()
    assert store.run(ZIncrBy(b"z", 1.5, b"m")) == Score(1.5)
    assert store.run(ZIncrBy(b"z", INF, b"m")) == Score(INF)
    assert store.run(ZIncrBy(b"z", -INF, b"m")) == Error(SCORE_IS_NAN)
    assert store.run(ZScore(b"z", (b"m",))) == Scores((INF,))


def test_negative_zero_is_stored_as_zero() -> None:
    store = Store()
    store.run(ZAdd(b"z", ((-0.0, b"m"),)))
    result = store.run(ZScore(b"z", (b"m",)))
    assert result == Scores((0.0,))
    assert isinstance(result, Scores) and math.copysign(1.0, result.items[0] or 0.0) == 1.0


def test_ranges_by_rank_score_and_lex() -> None:
    store = Store()
    store.run(ZAdd(b"z", tuple((float(n), b"m%d" % n) for n in range(6))))
    assert store.run(ZRangeByRank(b"z", 1, 2, rev=True)) == Scored(((b"m4", 4.0), (b"m3", 3.0)))
    by_score = ZRangeByScore(b"z", ScoreBound(1.0, open=True), ScoreBound(4.0), offset=1, limit=2)
    assert store.run(by_score) == Scored(((b"m3", 3.0), (b"m4", 4.0)))
    assert store.run(ZCount(b"z", ScoreBound(-INF), ScoreBound(2.0, open=True))) == Integer(2)
    assert store.run(ZRank(b"z", b"m2")) == Integer(2)
    assert store.run(ZRank(b"z", b"m2", rev=True)) == Integer(3)
    assert store.run(ZRank(b"z", b"zz")) == Value(None)
    store.run(ZAdd(b"lex", tuple((0.0, m) for m in (b"a", b"b", b"c", b"d"))))
    low, high = LexBound(LEX_INCLUSIVE, b"b"), LexBound(LEX_EXCLUSIVE, b"d")
    assert store.run(ZRangeByLex(b"lex", low, high)) == Scored(((b"b", 0.0), (b"c", 0.0)))
    everything = (LexBound(LEX_MIN), LexBound(LEX_MAX))
    assert store.run(ZLexCount(b"lex", *everything)) == Integer(4)
    reverse = ZRangeByLex(b"lex", *everything, rev=True, limit=2)
    assert store.run(reverse) == Scored(((b"d", 0.0), (b"c", 0.0)))


@pytest.mark.parametrize("size", [10, 300])  # a small set walks, a large one bisects
def test_lex_ranges_agree_for_small_and_large_sets(size: int) -> None:
    store = Store()
    names = [b"k%03d" % n for n in range(size)]
    store.run(ZAdd(b"z", tuple((0.0, name) for name in names)))
    low, high = LexBound(LEX_EXCLUSIVE, names[2]), LexBound(LEX_INCLUSIVE, names[7])
    assert store.run(ZLexCount(b"z", low, high)) == Integer(5)
    result = store.run(ZRangeByLex(b"z", low, high, offset=1, limit=2))
    assert result == Scored(((names[4], 0.0), (names[5], 0.0)))
    assert store.run(ZRemRangeByLex(b"z", low, high)) == Integer(5)
    assert store.run(ZCard(b"z")) == Integer(size - 5)


def test_pops_and_removals_delete_an_emptied_set() -> None:
    store = Store()
    store.run(ZAdd(b"z", ((1.0, b"a"), (2.0, b"b"), (3.0, b"c"), (4.0, b"d"))))
    assert store.run(ZPop(b"z")) == Scored(((b"a", 1.0),))
    assert store.run(ZPop(b"z", highest=True, count=2)) == Scored(((b"d", 4.0), (b"c", 3.0)))
    assert store.run(ZRem(b"z", (b"x",))) == Integer(0)
    store.run(ZAdd(b"z", ((5.0, b"e"), (6.0, b"f"))))
    assert store.run(ZRemRangeByRank(b"z", 0, 0)) == Integer(1)
    assert store.run(ZRemRangeByScore(b"z", ScoreBound(5.0), ScoreBound(INF))) == Integer(2)
    assert store.run(KeyType(b"z")) == Value(None)
    assert store.run(ZPop(b"z", count=3)) == Scored(())


@pytest.mark.parametrize(
    ("score", "spelled"),
    [
        (1.1, b"1.1000000000000001"),
        (2.0, b"2"),
        (1e20, b"1e+20"),
        (-INF, b"-inf"),
        (0.1, b"0.10000000000000001"),
    ],
)
def test_scores_print_as_redis_7_0(score: float, spelled: bytes) -> None:
    assert format_score(score) == spelled


def test_union_inter_diff_weights_and_aggregates() -> None:
    store = Store()
    store.run(ZAdd(b"a", ((1.0, b"x"), (2.0, b"y"))))
    store.run(ZAdd(b"b", ((10.0, b"y"), (20.0, b"z"))))
    store.run(SAdd(b"set", (b"x",)))  # a set's members score 1
    union = ZCombine(SET_UNION, (b"a", b"b", b"set"), (1.0, 0.5, 3.0))
    assert store.run(union) == Scored(((b"x", 4.0), (b"y", 7.0), (b"z", 10.0)))
    highest = ZCombine(SET_INTER, (b"a", b"b"), aggregate=AGGREGATE_MAX)
    assert store.run(highest) == Scored(((b"y", 10.0),))
    assert store.run(ZCombine(SET_DIFF, (b"a", b"b"))) == Scored(((b"x", 1.0),))
    infinite = ZCombine(SET_UNION, (b"a",), (INF,)), ZCombine(SET_UNION, (b"a", b"a"), (INF, -INF))
    assert store.run(infinite[0]) == Scored(((b"x", INF), (b"y", INF)))
    assert store.run(infinite[1]) == Scored(((b"x", 0.0), (b"y", 0.0)))  # inf - inf: 0
    assert store.run(ZCombineStore(SET_INTER, b"out", (b"a", b"b"))) == Integer(1)
    assert store.run(ZScore(b"out", (b"y",))) == Scores((12.0,))
    assert store.run(ZCombineStore(SET_INTER, b"out", (b"a", b"none"))) == Integer(0)
    assert store.run(KeyType(b"out")) == Value(None)  # an empty result deletes it


def test_a_refused_option_comes_after_the_type_check() -> None:
    store = Store()
    store.run(Set(b"str", b"v"))
    store.run(ZAdd(b"a", ((1.0, b"x"),)))
    refused = ZCombine(SET_UNION, (b"a", b"str"), refusal="syntax error")
    assert store.run(refused) == Error(WRONGTYPE)
    assert store.run(ZCombine(SET_UNION, (b"a",), refusal="syntax error")) == Error("syntax error")


def test_pop_first_and_range_store() -> None:
    store = Store()
    store.run(Set(b"str", b"v"))
    assert store.run(ZPopFirst((b"none", b"str"))) == Error(WRONGTYPE)
    store.run(ZAdd(b"z", ((1.0, b"a"), (2.5, b"b"), (3.0, b"c"))))
    assert store.run(ZPopFirst((b"none", b"z"), highest=True, count=2)) == Array(
        (b"z", b"c", b"3", b"b", b"2.5")
    )
    assert store.run(ZPopFirst((b"none",))) == Value(None)
    store.run(ZAdd(b"z", ((5.0, b"e"), (4.0, b"d"))))
    by_score = ZRangeByScore(b"z", ScoreBound(2.0), ScoreBound(INF), rev=True, limit=1)
    assert store.run(ZRangeStore(b"top", by_score)) == Integer(1)
    assert store.run(ZScore(b"top", (b"e",))) == Scores((5.0,))
    assert store.run(ZRangeStore(b"top", ZRangeByRank(b"none", 0, -1))) == Integer(0)
    assert store.run(KeyType(b"top")) == Value(None)
