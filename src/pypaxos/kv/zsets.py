"""Redis's sorted-set commands over a ``ZSetValue`` (Redis 7.0.15's replies and errors).

Members are ordered by score, then by member bytes, as in Redis's skiplist; ranks and score
ranges are binary searches over that order.  A lexicographic range (``BYLEX``) is a binary
search by member, meaningful, as in Redis, only when all scores are equal.  Scores are IEEE
doubles and are printed as Redis 7.0 prints them (``format_score``: ``%.17g``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from math import isnan

from pypaxos.kv.collection_ops import (
    AGGREGATE_MAX,
    AGGREGATE_MIN,
    LEX_EXCLUSIVE,
    LEX_INCLUSIVE,
    LEX_MAX,
    LEX_MIN,
    SET_DIFF,
    SET_INTER,
    ZADD_CH,
    ZADD_GT,
    ZADD_INCR,
    ZADD_LT,
    ZADD_NX,
    ZADD_XX,
    LexBound,
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
    ZScan,
    ZScore,
)
from pypaxos.kv.commands import Array, Error, Integer, Page, Result, Score, Scored, Scores, Value
from pypaxos.kv.keyspace import SMALL_COLLECTION_MAX, Keyspace, scan_collection
from pypaxos.kv.values import SetValue, WrongType, ZSetValue

SCORE_IS_NAN = "resulting score is not a number (NaN)"

ZSetOp = (
    ZAdd
    | ZRem
    | ZScore
    | ZIncrBy
    | ZCard
    | ZRangeByRank
    | ZRangeByScore
    | ZRangeByLex
    | ZCount
    | ZLexCount
    | ZRank
    | ZPop
    | ZPopFirst
    | ZRangeStore
    | ZRemRangeByRank
    | ZRemRangeByScore
    | ZRemRangeByLex
    | ZCombine
    | ZCombineStore
    | ZScan
)


def format_score(score: float) -> bytes:
    """A score as Redis 7.0 prints it: ``%.17g`` (``inf``, ``-inf``, ``-0`` included)."""
    return b"%.17g" % score


def execute(ks: Keyspace, op: ZSetOp) -> Result:
    """Run one sorted-set command; ``WrongType`` if its key holds something else."""
    if isinstance(op, ZAdd):
        return zadd(ks, op)
    if isinstance(op, ZIncrBy):
        return zadd(ks, ZAdd(op.key, ((op.amount, op.member),), ZADD_INCR))
    if isinstance(op, ZRem | ZPop | ZRemRangeByRank | ZRemRangeByScore | ZRemRangeByLex):
        return _remove(ks, op)
    if isinstance(op, ZPopFirst):
        return pop_first(ks, op)
    if isinstance(op, ZRangeStore):
        return range_store(ks, op)
    if isinstance(op, ZCombine | ZCombineStore) and op.refusal:
        for key in op.keys:
            _scores_of(ks, key)  # WRONGTYPE first, as Redis checks the keys before the options
        return Error(op.refusal)
    if isinstance(op, ZCombine):
        combined = combine(ks, op.how, op.keys, op.weights, op.aggregate)
        return Scored(_swap(sorted((score, m) for m, score in combined.items())))
    if isinstance(op, ZCombineStore):
        return combine_store(ks, op)
    found = ks.collection(op.key, ZSetValue)
    zset = ZSetValue() if found is None else found
    if isinstance(op, ZScore):
        return Scores(tuple(zset.scores.get(member) for member in op.members))
    if isinstance(op, ZCard):
        return Integer(len(zset))
    if isinstance(op, ZLexCount) and len(zset) <= SMALL_COLLECTION_MAX:
        return Integer(len(_lex_walk(zset, op.low, op.high, False, 0, -1)))
    if isinstance(op, ZCount | ZLexCount):
        low, high = _span(zset, op.low, op.high)
        return Integer(max(high - low, 0))
    if isinstance(op, ZRank):
        score = zset.scores.get(op.member)
        if score is None:
            return Value(None)
        rank = bisect_left(zset.order, (score, op.member))
        return Integer(len(zset) - 1 - rank if op.rev else rank)
    if isinstance(op, ZRangeByRank):
        return Scored(_swap(_by_rank(zset, op.start, op.stop, op.rev)))
    if isinstance(op, ZRangeByScore | ZRangeByLex):
        return Scored(_swap(_by_range(zset, op)))
    page = scan_collection([member for _, member in zset.order], op.cursor, op.pattern, op.count)
    scores = zset.scores
    return Page(
        page.cursor,
        tuple(part for m in page.keys for part in (m, format_score(scores[m]))),
    )


def pop_first(ks: Keyspace, op: ZPopFirst) -> Result:
    """As Redis serves ``BZPOPMIN``: the keys in order, a non-zset before the first sorted set
    is ``WrongType``."""
    for key in op.keys:
        zset = ks.collection(key, ZSetValue)
        if zset is not None:
            taken = zset.order[::-1][: op.count] if op.highest else zset.order[: op.count]
            for _, member in taken:
                zset.remove(member)
            ks.drop_if_empty(key, zset)
            ks.touch(key)
            spelled = (part for score, m in taken for part in (m, format_score(score)))
            return Array((key, *spelled))
    return Value(None)


def range_store(ks: Keyspace, op: ZRangeStore) -> Result:
    source = op.source_range
    zset = ks.collection(source.key, ZSetValue)
    found = ZSetValue() if zset is None else zset
    if isinstance(source, ZRangeByRank):
        entries = _by_rank(found, source.start, source.stop, source.rev)
    else:
        entries = _by_range(found, source)
    ks.delete(op.destination)
    if entries:
        stored = ZSetValue()
        for score, member in entries:
            stored.add(member, score)
        ks.put(op.destination, stored)
    ks.touch(op.destination)
    return Integer(len(entries))


def _scores_of(ks: Keyspace, key: bytes) -> dict[bytes, float]:
    """A source of ``ZUNION``...: a sorted set's scores, a set's members scored 1."""
    value = ks.lookup(key)
    if value is None:
        return {}
    if isinstance(value, ZSetValue):
        return value.scores
    if isinstance(value, SetValue):
        return dict.fromkeys(value.members, 1.0)
    raise WrongType(key)


def _weighted(score: float, weight: float) -> float:
    product = score * weight
    return 0.0 if isnan(product) else product  # inf * 0, as Redis: 0


def _aggregate(current: float, value: float, how: int) -> float:
    if how == AGGREGATE_MIN:
        return value if value < current else current
    if how == AGGREGATE_MAX:
        return value if value > current else current
    total = current + value
    return 0.0 if isnan(total) else total  # inf + -inf, as Redis: 0


def combine(
    ks: Keyspace, how: int, keys: tuple[bytes, ...], weights: tuple[float, ...], aggregate: int
) -> dict[bytes, float]:
    """Member -> score of ``ZUNION``/``ZINTER``/``ZDIFF``, in Redis's order of operations
    (the sources by size, smallest first, for union and intersection), which fixes the
    rounding of the sums."""
    sources = [(_scores_of(ks, key), weights[i] if weights else 1.0) for i, key in enumerate(keys)]
    if how == SET_DIFF:
        first, rest = sources[0][0], [scores for scores, _ in sources[1:]]
        return {m: s for m, s in first.items() if not any(m in other for other in rest)}
    sources.sort(key=lambda source: len(source[0]))
    if how == SET_INTER:
        (smallest, weight), others = sources[0], sources[1:]
        result: dict[bytes, float] = {}
        for member, score in smallest.items():
            total = _weighted(score, weight)
            for scores, other_weight in others:
                other = scores.get(member)
                if other is None:
                    break
                total = _aggregate(total, _weighted(other, other_weight), aggregate)
            else:
                result[member] = total
        return result
    union: dict[bytes, float] = {}
    for scores, weight in sources:
        for member, score in scores.items():
            value = _weighted(score, weight)
            current = union.get(member)
            union[member] = value if current is None else _aggregate(current, value, aggregate)
    return union


def combine_store(ks: Keyspace, op: ZCombineStore) -> Result:
    combined = combine(ks, op.how, op.keys, op.weights, op.aggregate)
    ks.delete(op.destination)
    if combined:
        zset = ZSetValue()
        for member, score in combined.items():
            zset.add(member, score)
        ks.put(op.destination, zset)
    ks.touch(op.destination)
    return Integer(len(combined))


def _swap(entries: list[tuple[float, bytes]]) -> tuple[tuple[bytes, float], ...]:
    return tuple((member, score) for score, member in entries)


def zadd(ks: Keyspace, op: ZAdd) -> Result:
    incr = bool(op.flags & ZADD_INCR)
    found = ks.collection(op.key, ZSetValue)
    if found is None and op.flags & ZADD_XX:
        return Score(None) if incr else Integer(0)
    zset = ks.create(op.key, ZSetValue)
    added = changed = 0
    new_score: float | None = None
    for score, member in op.pairs:
        current = zset.scores.get(member)
        if current is None:
            if op.flags & ZADD_XX:
                continue
            zset.add(member, score)
            added += 1
            new_score = score
            continue
        if op.flags & ZADD_NX:
            continue
        wanted = current + score if incr else score
        if isnan(wanted):
            ks.drop_if_empty(op.key, zset)
            return Error(SCORE_IS_NAN)
        if (op.flags & ZADD_LT and wanted >= current) or (op.flags & ZADD_GT and wanted <= current):
            continue
        new_score = wanted
        if wanted != current:
            zset.add(member, wanted)
            changed += 1
    ks.drop_if_empty(op.key, zset)
    if added or changed:
        ks.touch(op.key)
    if incr:
        return Score(new_score)
    return Integer(added + changed if op.flags & ZADD_CH else added)


def _remove(
    ks: Keyspace, op: ZRem | ZPop | ZRemRangeByRank | ZRemRangeByScore | ZRemRangeByLex
) -> Result:
    zset = ks.collection(op.key, ZSetValue)
    if zset is None:
        return Scored(()) if isinstance(op, ZPop) else Integer(0)
    if isinstance(op, ZRem):
        removed = sum(zset.remove(member) for member in op.members)
        result: Result = Integer(removed)
    else:
        if isinstance(op, ZPop):
            doomed = zset.order[-op.count :][::-1] if op.highest else zset.order[: op.count]
            if op.count == 0:
                doomed = []
            result = Scored(_swap(doomed))
        elif isinstance(op, ZRemRangeByRank):
            doomed = _by_rank(zset, op.start, op.stop, rev=False)
            result = Integer(len(doomed))
        elif isinstance(op, ZRemRangeByLex) and len(zset) <= SMALL_COLLECTION_MAX:
            doomed = _lex_walk(zset, op.low, op.high, False, 0, -1)
            result = Integer(len(doomed))
        else:
            low, high = _span(zset, op.low, op.high)
            doomed = zset.order[low:high]
            result = Integer(len(doomed))
        for _, member in doomed:
            zset.remove(member)
        removed = len(doomed)
    if removed:
        ks.drop_if_empty(op.key, zset)
        ks.touch(op.key)
    return result


def _by_rank(zset: ZSetValue, start: int, stop: int, rev: bool) -> list[tuple[float, bytes]]:
    length = len(zset)
    if start < 0:
        start = max(start + length, 0)
    if stop < 0:
        stop += length
    if start > stop or start >= length:
        return []
    stop = min(stop, length - 1)
    if rev:
        return zset.order[length - 1 - stop : length - start][::-1]
    return zset.order[start : stop + 1]


def _span(
    zset: ZSetValue, low: ScoreBound | LexBound, high: ScoreBound | LexBound
) -> tuple[int, int]:
    """The slice ``order[first:end]`` of the members within ``low``..``high``."""
    if isinstance(low, ScoreBound) and isinstance(high, ScoreBound):
        first = (bisect_right if low.open else bisect_left)(zset.order, low.value, key=_score_of)
        end = (bisect_left if high.open else bisect_right)(zset.order, high.value, key=_score_of)
        return first, end
    assert isinstance(low, LexBound) and isinstance(high, LexBound)
    return _lex_first(zset, low), _lex_end(zset, high)


def _score_of(entry: tuple[float, bytes]) -> float:
    return entry[0]


def _member_of(entry: tuple[float, bytes]) -> bytes:
    return entry[1]


def _lex_first(zset: ZSetValue, bound: LexBound) -> int:
    if bound.kind == LEX_MIN:
        return 0
    if bound.kind == LEX_MAX:
        return len(zset)
    search = bisect_left if bound.kind == LEX_INCLUSIVE else bisect_right
    return search(zset.order, bound.value, key=_member_of)


def _lex_end(zset: ZSetValue, bound: LexBound) -> int:
    if bound.kind == LEX_MIN:
        return 0
    if bound.kind == LEX_MAX:
        return len(zset)
    search = bisect_left if bound.kind == LEX_EXCLUSIVE else bisect_right
    return search(zset.order, bound.value, key=_member_of)


def _by_range(zset: ZSetValue, op: ZRangeByScore | ZRangeByLex) -> list[tuple[float, bytes]]:
    if isinstance(op, ZRangeByLex) and len(zset) <= SMALL_COLLECTION_MAX:
        return _lex_walk(zset, op.low, op.high, op.rev, op.offset, op.limit)
    first, end = _span(zset, op.low, op.high)
    if first >= end or op.offset < 0:
        return []
    entries = zset.order[first:end]
    if op.rev:
        entries.reverse()
    stop = None if op.limit < 0 else op.offset + op.limit
    return entries[op.offset : stop]


# --- lexicographic ranges over small sorted sets, as Redis walks them -------------------------
#
# Over a sorted set whose scores differ, a lexicographic range has no meaning, and Redis's answer
# is whatever its walk gives.  For a small set (a listpack in Redis) that walk is linear, and it
# is reproduced here, so that small sets answer as Redis does whatever their scores: the range
# must be non-empty, the last member >= min and the first <= max; the walk starts at the first
# member >= min (the last <= max in reverse), must find it <= max (>= min), skips ``offset``
# members unchecked and then takes members while they stay <= max (>= min).  Over equal scores
# (the documented use) this is the binary search ``_span`` does for larger sets.


def _above_min(member: bytes, low: LexBound) -> bool:
    if low.kind == LEX_MIN:
        return True
    if low.kind == LEX_MAX:
        return False
    return member >= low.value if low.kind == LEX_INCLUSIVE else member > low.value


def _below_max(member: bytes, high: LexBound) -> bool:
    if high.kind == LEX_MAX:
        return True
    if high.kind == LEX_MIN:
        return False
    return member <= high.value if high.kind == LEX_INCLUSIVE else member < high.value


def _lex_order(bound: LexBound) -> tuple[int, bytes]:
    """Where a bound sorts among bounds: ``-`` first, ``+`` last, values by their bytes."""
    if bound.kind == LEX_MIN:
        return (0, b"")
    if bound.kind == LEX_MAX:
        return (2, b"")
    return (1, bound.value)


def _lex_empty(low: LexBound, high: LexBound) -> bool:
    first, last = _lex_order(low), _lex_order(high)
    exclusive = low.kind == LEX_EXCLUSIVE or high.kind == LEX_EXCLUSIVE
    return first > last or (first == last and exclusive)


def _lex_walk(
    zset: ZSetValue, low: LexBound, high: LexBound, rev: bool, offset: int, limit: int
) -> list[tuple[float, bytes]]:
    order = zset.order
    if (
        not order
        or _lex_empty(low, high)
        or not _above_min(order[-1][1], low)
        or not _below_max(order[0][1], high)
    ):
        return []
    inside: Callable[[bytes, LexBound], bool]
    if rev:
        order = order[::-1]
        start = next((i for i, (_, m) in enumerate(order) if _below_max(m, high)), None)
        inside = _above_min
        bound = low
    else:
        start = next((i for i, (_, m) in enumerate(order) if _above_min(m, low)), None)
        inside = _below_max
        bound = high
    if start is None or not inside(order[start][1], bound) or offset < 0:
        return []
    taken: list[tuple[float, bytes]] = []
    for entry in order[start + offset :]:
        if limit >= 0 and len(taken) >= limit:
            break
        if not inside(entry[1], bound):
            break
        taken.append(entry)
    return taken
