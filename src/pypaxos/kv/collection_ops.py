"""The commands on Redis's collections (hashes, lists, sets, sorted sets) as log commands.

Like the string commands (``kv.commands``) each is a frozen, tagged, ``array_like`` struct, one
member of the ``Command`` union; the semantics live in ``kv.hashes``, ``kv.lists``,
``kv.sets`` and ``kv.zsets``.  Arguments arrive parsed and validated by the server's planner
(``runtime.collection_commands``): a count is an ``int``, a score a ``float`` (never NaN).
Tags start with the family's letter, as Redis's command names do.
"""

from __future__ import annotations

import msgspec


class KeyType(msgspec.Struct, frozen=True, tag="type", array_like=True):
    """``TYPE``/``EXISTS``: ``Value(b"string"|b"hash"|b"list"|b"set"|b"zset")`` or
    ``Value(None)`` when absent.  Read-only."""

    key: bytes


class Copy(msgspec.Struct, frozen=True, tag="copy", array_like=True):
    """``COPY key new [DB db] [REPLACE]``: ``Integer(1)`` if copied (with the deadline), else
    0.  ``db`` -1: the current database."""

    key: bytes
    new: bytes
    replace: bool = False
    db: int = -1


# --- hashes -----------------------------------------------------------------------------------


class HSet(msgspec.Struct, frozen=True, tag="hset", array_like=True):
    """Set the fields; ``Integer(how many were new)``.  ``nx`` (``HSETNX``, one pair): only if
    the field is absent, ``Integer(1|0)``."""

    key: bytes
    pairs: tuple[tuple[bytes, bytes], ...]
    nx: bool = False


class HGet(msgspec.Struct, frozen=True, tag="hget", array_like=True):
    """``Value(the field's value)`` (``None``: no such key or field).  Read-only."""

    key: bytes
    field: bytes


class HMGet(msgspec.Struct, frozen=True, tag="hmget", array_like=True):
    """``Values`` of the fields, ``None`` for each absent one.  Read-only."""

    key: bytes
    fields: tuple[bytes, ...]


class HDel(msgspec.Struct, frozen=True, tag="hdel", array_like=True):
    """Remove the fields; ``Integer(how many were there)``."""

    key: bytes
    fields: tuple[bytes, ...]


class HGetAll(msgspec.Struct, frozen=True, tag="hgetall", array_like=True):
    """``Array`` field, value, field, value... in first-set order (``HKEYS``/``HVALS`` take
    every other one).  Read-only."""

    key: bytes


class HLen(msgspec.Struct, frozen=True, tag="hlen", array_like=True):
    """``Integer(number of fields)``.  Read-only."""

    key: bytes


class HIncrBy(msgspec.Struct, frozen=True, tag="hincrby", array_like=True):
    """Add ``amount`` to the field's integer; ``Integer(new)``."""

    key: bytes
    field: bytes
    amount: int


class HIncrByFloat(msgspec.Struct, frozen=True, tag="hincrbyfloat", array_like=True):
    """Add the decimal ``amount`` to the field, as ``INCRBYFLOAT``; ``Value(new spelling)``."""

    key: bytes
    field: bytes
    amount: bytes


class HScan(msgspec.Struct, frozen=True, tag="hscan", array_like=True):
    """One page of fields: ``Page`` whose items are field, value, field, value...  Read-only."""

    key: bytes
    cursor: int
    pattern: bytes | None = None
    count: int = 10


# --- sets -------------------------------------------------------------------------------------


class SAdd(msgspec.Struct, frozen=True, tag="sadd", array_like=True):
    """Add the members; ``Integer(how many were new)``."""

    key: bytes
    members: tuple[bytes, ...]


class SRem(msgspec.Struct, frozen=True, tag="srem", array_like=True):
    """Remove the members; ``Integer(how many were there)``."""

    key: bytes
    members: tuple[bytes, ...]


class SMembers(msgspec.Struct, frozen=True, tag="smembers", array_like=True):
    """``Array`` of the members, in the order they were added.  Read-only."""

    key: bytes


class SIsMember(msgspec.Struct, frozen=True, tag="sismember", array_like=True):
    """``Integers``: 1 or 0 per member (``SISMEMBER`` asks one).  Read-only."""

    key: bytes
    members: tuple[bytes, ...]


class SCard(msgspec.Struct, frozen=True, tag="scard", array_like=True):
    """``Integer(number of members)``.  Read-only."""

    key: bytes


class SPop(msgspec.Struct, frozen=True, tag="spop", array_like=True):
    """Remove and answer members: without ``count`` ``Value(member or None)``, with it an
    ``Array``.  Deterministic, not random: the members added longest ago."""

    key: bytes
    count: int | None = None


class SRandMember(msgspec.Struct, frozen=True, tag="srandmember", array_like=True):
    """Members without removing them: ``Value`` without ``count``; ``Array`` of up to
    ``count`` distinct ones, or exactly ``-count`` that may repeat.  Deterministic: the
    members in the order they were added (cycling for a negative count).  Read-only."""

    key: bytes
    count: int | None = None


SET_INTER = 0
SET_UNION = 1
SET_DIFF = 2


class SCombine(msgspec.Struct, frozen=True, tag="scombine", array_like=True):
    """``SINTER``/``SUNION``/``SDIFF`` (``how``: ``SET_INTER``...): ``Array``.  Read-only."""

    how: int
    keys: tuple[bytes, ...]


class SCombineStore(msgspec.Struct, frozen=True, tag="sstore", array_like=True):
    """The ``STORE`` forms: the result replaces ``destination``; ``Integer(its size)``."""

    how: int
    destination: bytes
    keys: tuple[bytes, ...]


class SMove(msgspec.Struct, frozen=True, tag="smove", array_like=True):
    """Move ``member`` from ``source`` to ``destination``: ``Integer(1)``, or 0 if absent."""

    source: bytes
    destination: bytes
    member: bytes


class SScan(msgspec.Struct, frozen=True, tag="sscan", array_like=True):
    """One page of members: ``Page``.  Read-only."""

    key: bytes
    cursor: int
    pattern: bytes | None = None
    count: int = 10


# --- lists ------------------------------------------------------------------------------------


class LPush(msgspec.Struct, frozen=True, tag="lpush", array_like=True):
    """Push ``values`` one by one at the head (``left``) or tail; ``only_existing``: the ``X``
    forms (nothing if the key is absent).  ``Integer(new length)``."""

    key: bytes
    values: tuple[bytes, ...]
    left: bool = True
    only_existing: bool = False


class LPop(msgspec.Struct, frozen=True, tag="lpop", array_like=True):
    """Pop from the head (``left``) or tail: ``Value`` without ``count``; with it an
    ``Array``, or ``Value(None)`` when the key is absent (Redis's null array)."""

    key: bytes
    left: bool = True
    count: int | None = None


class LPopFirst(msgspec.Struct, frozen=True, tag="lpopfirst", array_like=True):
    """Pop from the first of ``keys`` holding a list (what ``BLPOP``/``BRPOP``/``LMPOP`` try):
    one item, or up to ``count``: ``Array((key, item...))``, or ``Value(None)`` if no key
    holds a list (a blocking command then waits)."""

    keys: tuple[bytes, ...]
    left: bool = True
    count: int = 1


class LLen(msgspec.Struct, frozen=True, tag="llen", array_like=True):
    """``Integer(length)``.  Read-only."""

    key: bytes


class LRange(msgspec.Struct, frozen=True, tag="lrange", array_like=True):
    """``Array`` of the items from ``start`` to ``stop`` inclusive (negative: from the end).
    Read-only."""

    key: bytes
    start: int
    stop: int


class LIndex(msgspec.Struct, frozen=True, tag="lindex", array_like=True):
    """``Value(the item at index)`` (``None``: out of range).  Read-only.  ``index`` ``None``:
    the argument was not an integer, refused after the key is looked at (Redis's order)."""

    key: bytes
    index: int | None


class LSet(msgspec.Struct, frozen=True, tag="lset", array_like=True):
    """Replace the item at ``index``: ``Ok``, or ``Error`` (no such key, out of range, not an
    integer: ``None``, refused after the key is looked at, as in Redis)."""

    key: bytes
    index: int | None
    value: bytes


class LRem(msgspec.Struct, frozen=True, tag="lrem", array_like=True):
    """Remove up to ``|count|`` items equal to ``value`` (from the head if ``count`` > 0,
    the tail if < 0, all if 0); ``Integer(how many)``."""

    key: bytes
    count: int
    value: bytes


class LTrim(msgspec.Struct, frozen=True, tag="ltrim", array_like=True):
    """Keep only ``start``..``stop`` (as ``LRange``); ``Ok``."""

    key: bytes
    start: int
    stop: int


class LInsert(msgspec.Struct, frozen=True, tag="linsert", array_like=True):
    """Insert ``value`` before (or after) the first ``pivot``: ``Integer(new length)``, -1
    if there is no pivot, 0 if no key."""

    key: bytes
    before: bool
    pivot: bytes
    value: bytes


class LMove(msgspec.Struct, frozen=True, tag="lmove", array_like=True):
    """Pop from ``source``'s head (``from_left``) or tail and push onto ``destination``'s
    head (``to_left``) or tail, atomically: ``Value(the item or None)``."""

    source: bytes
    destination: bytes
    from_left: bool
    to_left: bool


class LPos(msgspec.Struct, frozen=True, tag="lpos", array_like=True):
    """Where ``value`` is: ``rank`` (the rank-th match, negative from the tail), ``maxlen``
    (items to look at, 0: all).  Without ``count``: ``Integer`` or ``Value(None)``; with it
    ``Integers`` (``count`` 0: every match).  Read-only."""

    key: bytes
    value: bytes
    rank: int = 1
    count: int | None = None
    maxlen: int = 0


# --- sorted sets ------------------------------------------------------------------------------

ZADD_NX = 1  # only add new members
ZADD_XX = 2  # only update existing members
ZADD_GT = 4  # only update when the new score is greater
ZADD_LT = 8  # only update when the new score is less
ZADD_CH = 16  # count changed members, not only added ones
ZADD_INCR = 32  # add to the score (one pair); answer the new score


class ZAdd(msgspec.Struct, frozen=True, tag="zadd", array_like=True):
    """Add or update members (``flags``: ``ZADD_*`` bits): ``Integer(added, or changed with
    CH)``; with ``ZADD_INCR``: ``Score(new score, or None if a flag refused it)``."""

    key: bytes
    pairs: tuple[tuple[float, bytes], ...]
    flags: int = 0


class ZRem(msgspec.Struct, frozen=True, tag="zrem", array_like=True):
    """Remove the members; ``Integer(how many were there)``."""

    key: bytes
    members: tuple[bytes, ...]


class ZScore(msgspec.Struct, frozen=True, tag="zscore", array_like=True):
    """``Scores``, one per member (``None``: absent).  Read-only."""

    key: bytes
    members: tuple[bytes, ...]


class ZIncrBy(msgspec.Struct, frozen=True, tag="zincrby", array_like=True):
    """Add ``amount`` to ``member``'s score (absent: 0); ``Score(new)``."""

    key: bytes
    amount: float
    member: bytes


class ZCard(msgspec.Struct, frozen=True, tag="zcard", array_like=True):
    """``Integer(number of members)``.  Read-only."""

    key: bytes


class ScoreBound(msgspec.Struct, frozen=True, array_like=True):
    """One end of a score range: ``(1.5`` is ``ScoreBound(1.5, open=True)``."""

    value: float
    open: bool = False


LEX_MIN = 0  # "-": below every member
LEX_MAX = 1  # "+": above every member
LEX_INCLUSIVE = 2  # "[value"
LEX_EXCLUSIVE = 3  # "(value"


class LexBound(msgspec.Struct, frozen=True, array_like=True):
    """One end of a lexicographic range (``kind``: ``LEX_*``)."""

    kind: int
    value: bytes = b""


class ZRangeByRank(msgspec.Struct, frozen=True, tag="zrank_range", array_like=True):
    """Members ranked ``start``..``stop`` (inclusive, negative from the end; ``rev``: from
    the highest): ``Scored``.  Read-only."""

    key: bytes
    start: int
    stop: int
    rev: bool = False


class ZRangeByScore(msgspec.Struct, frozen=True, tag="zscore_range", array_like=True):
    """Members with ``low`` <= score <= ``high`` (``rev``: highest first), skipping
    ``offset`` and at most ``limit`` (negative: all): ``Scored``.  Read-only."""

    key: bytes
    low: ScoreBound
    high: ScoreBound
    rev: bool = False
    offset: int = 0
    limit: int = -1


class ZRangeByLex(msgspec.Struct, frozen=True, tag="zlex_range", array_like=True):
    """As ``ZRangeByScore`` by member bytes (meaningful when the scores are equal)."""

    key: bytes
    low: LexBound
    high: LexBound
    rev: bool = False
    offset: int = 0
    limit: int = -1


class ZRangeStore(msgspec.Struct, frozen=True, tag="zrangestore", array_like=True):
    """``ZRANGESTORE``: the members ``source_range`` selects (with their scores) replace
    ``destination``; ``Integer(how many)``."""

    destination: bytes
    source_range: ZRangeByRank | ZRangeByScore | ZRangeByLex


class ZCount(msgspec.Struct, frozen=True, tag="zcount", array_like=True):
    """``Integer(members with a score in the range)``.  Read-only."""

    key: bytes
    low: ScoreBound
    high: ScoreBound


class ZLexCount(msgspec.Struct, frozen=True, tag="zlexcount", array_like=True):
    """``Integer(members in the lexicographic range)``.  Read-only."""

    key: bytes
    low: LexBound
    high: LexBound


class ZRank(msgspec.Struct, frozen=True, tag="zrank", array_like=True):
    """``Integer(member's rank, from the highest if rev)`` or ``Value(None)``.  Read-only."""

    key: bytes
    member: bytes
    rev: bool = False


class ZPop(msgspec.Struct, frozen=True, tag="zpop", array_like=True):
    """Remove and answer the ``count`` lowest (``highest``: highest) members: ``Scored``."""

    key: bytes
    highest: bool = False
    count: int = 1


class ZPopFirst(msgspec.Struct, frozen=True, tag="zpopfirst", array_like=True):
    """Pop the ``count`` lowest (``highest``: highest) members of the first of ``keys``
    holding a sorted set (what ``BZPOPMIN``/``ZMPOP`` try): ``Array((key, member, score
    spelled, member, score...))``, or ``Value(None)`` if none has one."""

    keys: tuple[bytes, ...]
    highest: bool = False
    count: int = 1


class ZRemRangeByRank(msgspec.Struct, frozen=True, tag="zremrank", array_like=True):
    """Remove the members ranked ``start``..``stop``; ``Integer(how many)``."""

    key: bytes
    start: int
    stop: int


class ZRemRangeByScore(msgspec.Struct, frozen=True, tag="zremscore", array_like=True):
    """Remove the members with a score in the range; ``Integer(how many)``."""

    key: bytes
    low: ScoreBound
    high: ScoreBound


class ZRemRangeByLex(msgspec.Struct, frozen=True, tag="zremlex", array_like=True):
    """Remove the members in the lexicographic range; ``Integer(how many)``."""

    key: bytes
    low: LexBound
    high: LexBound


AGGREGATE_SUM = 0
AGGREGATE_MIN = 1
AGGREGATE_MAX = 2


class ZCombine(msgspec.Struct, frozen=True, tag="zcombine", array_like=True):
    """``ZUNION``/``ZINTER``/``ZDIFF`` (``how``: ``SET_UNION``...) of sorted sets or sets (a
    set's members score 1), each source's scores times its weight (``weights``: one per key,
    or empty for all 1), combined by ``aggregate``: ``Scored``, by score.  Read-only."""

    how: int
    keys: tuple[bytes, ...]
    weights: tuple[float, ...] = ()
    aggregate: int = AGGREGATE_SUM
    refusal: str = ""  # options the planner refused: answered after the keys' types are checked


class ZCombineStore(msgspec.Struct, frozen=True, tag="zstore", array_like=True):
    """The ``STORE`` forms: the result replaces ``destination``; ``Integer(its size)``."""

    how: int
    destination: bytes
    keys: tuple[bytes, ...]
    weights: tuple[float, ...] = ()
    aggregate: int = AGGREGATE_SUM
    refusal: str = ""  # as in ``ZCombine``


class ZScan(msgspec.Struct, frozen=True, tag="zscan", array_like=True):
    """One page: ``Scored`` pairs in a ``ScoredPage``.  Read-only."""

    key: bytes
    cursor: int
    pattern: bytes | None = None
    count: int = 10


CollectionCommand = (
    KeyType
    | Copy
    | HSet
    | HGet
    | HMGet
    | HDel
    | HGetAll
    | HLen
    | HIncrBy
    | HIncrByFloat
    | HScan
    | SAdd
    | SRem
    | SMembers
    | SIsMember
    | SCard
    | SPop
    | SRandMember
    | SCombine
    | SCombineStore
    | SMove
    | SScan
    | LPush
    | LPop
    | LPopFirst
    | LLen
    | LRange
    | LIndex
    | LSet
    | LRem
    | LTrim
    | LInsert
    | LMove
    | LPos
    | ZAdd
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

COLLECTION_READ_OPS: tuple[type, ...] = (
    KeyType,
    HGet,
    HMGet,
    HGetAll,
    HLen,
    HScan,
    SMembers,
    SIsMember,
    SCard,
    SRandMember,
    SCombine,
    SScan,
    LLen,
    LRange,
    LIndex,
    LPos,
    ZScore,
    ZCard,
    ZRangeByRank,
    ZRangeByScore,
    ZRangeByLex,
    ZCount,
    ZLexCount,
    ZRank,
    ZCombine,
    ZScan,
)
"""The collection commands that change nothing (part of ``kv.READ_OPS``)."""
