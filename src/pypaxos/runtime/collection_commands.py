"""RESP planners for Redis's hashes, lists, sets and sorted sets (Redis 7.0.15's replies).

Each command here parses and checks its arguments as Redis does (arity, integers, scores,
ranges, option words and their errors, in Redis's order: mostly before the key is looked at, so
before ``WRONGTYPE``; where Redis looks first, as ``LSET``'s index or ``ZUNION``'s options, the
op carries the refusal to the state machine) and becomes one ``kv`` log command
(``kv.collection_ops``), so it is atomic and exactly-once like a string command; its
``combine`` spells the result in the connection's protocol (RESP3 maps, sets and doubles where
Redis 7.0 sends them).  The parsers are in ``collection_args``, the replies in
``collection_replies``.

``COLLECTION_COMMANDS`` maps each name to ``(arity_min, arity_max, build)``; ``build`` answers
``(ops, combine)`` or an error reply (bytes), and ``runtime.command_table`` registers them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pypaxos.kv import Array, Command, Result, parse_int64
from pypaxos.kv.collection_ops import (
    AGGREGATE_MAX,
    AGGREGATE_MIN,
    AGGREGATE_SUM,
    SET_DIFF,
    SET_INTER,
    SET_UNION,
    ZADD_CH,
    ZADD_GT,
    ZADD_INCR,
    ZADD_LT,
    ZADD_NX,
    ZADD_XX,
    Copy,
    HDel,
    HGet,
    HGetAll,
    HIncrBy,
    HIncrByFloat,
    HLen,
    HMGet,
    HScan,
    HSet,
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
    SScan,
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
from pypaxos.kv.commands import DATABASES, NOT_A_FLOAT, NOT_AN_INTEGER, Scored
from pypaxos.kv.keyspace import parse_long_double
from pypaxos.runtime.collection_args import (
    NOT_POSITIVE,
    SYNTAX,
    int_arg,
    lex_range,
    parse_score,
    scan_options,
    score_arg,
    score_range,
)
from pypaxos.runtime.collection_replies import (
    every_other,
    only_result,
    refused,
    reply_array,
    reply_bulk,
    reply_exists,
    reply_flag,
    reply_hmset,
    reply_integer,
    reply_integers,
    reply_lpos,
    reply_map,
    reply_mpop,
    reply_ok,
    reply_pop_list,
    reply_pop_one,
    reply_random,
    reply_rank,
    reply_scan,
    reply_score,
    reply_scored,
    reply_scores,
    reply_set,
    reply_strlen,
    reply_values,
)
from pypaxos.runtime.databases import db_index
from pypaxos.runtime.replies import Combine
from pypaxos.transport.resp import encode_error, encode_integer

Planned = tuple[tuple[Command, ...], Combine] | bytes
"""A command's log commands and how to combine their results, or an error reply."""

Build = Callable[[list[bytes]], Planned]

COUNT_ABS_MAX = 1_000_000
"""The largest ``SRANDMEMBER`` negative count (a reply of that many items; Redis has none)."""


def _one(op: Command, combine: Combine) -> Planned:
    return (op,), combine


# --- keys -------------------------------------------------------------------------------------


def _copy(args: list[bytes]) -> Planned:
    replace = False
    db = -1  # the connection's
    position = 3
    while position < len(args):
        option = args[position].upper()
        if option == b"REPLACE":
            replace = True
        elif option == b"DB" and position + 1 < len(args):
            position += 1
            index = db_index(args[position])
            if isinstance(index, bytes):
                return index
            if not 0 <= index < DATABASES:
                return encode_error("ERR DB index is out of range")
            db = index
        else:
            return SYNTAX
        position += 1
    if db < 0 and args[1] == args[2]:  # with DB, the log knows whether it is the same one
        return encode_error("ERR source and destination objects are the same")
    return _one(Copy(args[1], args[2], replace, db), reply_integer)


# --- hashes -----------------------------------------------------------------------------------


def _hset(args: list[bytes], combine: Combine) -> Planned:
    if len(args) % 2 == 1:
        return encode_error(
            f"ERR wrong number of arguments for '{args[0].decode().lower()}' command"
        )
    pairs = tuple(zip(args[2::2], args[3::2], strict=True))
    return _one(HSet(args[1], pairs), combine)


def _hincrby(args: list[bytes]) -> Planned:
    amount = int_arg(args[3])
    return (
        amount
        if isinstance(amount, bytes)
        else _one(HIncrBy(args[1], args[2], amount), reply_integer)
    )


def _hincrbyfloat(args: list[bytes]) -> Planned:
    amount = parse_long_double(args[3])
    if amount is None:
        return encode_error(f"ERR {NOT_A_FLOAT}")
    if abs(amount) >= 2**16384:
        return encode_error("ERR value is NaN or Infinity")
    return _one(HIncrByFloat(args[1], args[2], args[3]), reply_bulk)


def _hscan(args: list[bytes]) -> Planned:
    options = scan_options(args)
    if isinstance(options, bytes):
        return options
    return _one(HScan(args[1], *options), reply_scan)


# --- sets -------------------------------------------------------------------------------------


def _spop(args: list[bytes]) -> Planned:
    if len(args) > 3:
        return SYNTAX
    if len(args) == 2:
        return _one(SPop(args[1]), reply_bulk)
    count = int_arg(args[2], NOT_POSITIVE)
    if isinstance(count, bytes) or count < 0:
        return NOT_POSITIVE
    return _one(SPop(args[1], count), reply_set)


def _srandmember(args: list[bytes]) -> Planned:
    if len(args) > 3:
        return SYNTAX
    if len(args) == 2:
        return _one(SRandMember(args[1]), reply_bulk)
    count = int_arg(args[2])
    if isinstance(count, bytes):
        return count
    if -count > COUNT_ABS_MAX:
        return encode_error(f"ERR count too large (limit {COUNT_ABS_MAX})")
    return _one(SRandMember(args[1], count), reply_array)


def _scombine(how: int) -> Build:
    return lambda args: _one(SCombine(how, tuple(args[1:])), reply_set)


def _scombine_store(how: int) -> Build:
    return lambda args: _one(SCombineStore(how, args[1], tuple(args[2:])), reply_integer)


def _sscan(args: list[bytes]) -> Planned:
    options = scan_options(args)
    if isinstance(options, bytes):
        return options
    return _one(SScan(args[1], *options), reply_scan)


# --- lists ------------------------------------------------------------------------------------


def _push(left: bool, only_existing: bool) -> Build:
    return lambda args: _one(LPush(args[1], tuple(args[2:]), left, only_existing), reply_integer)


def _pop(left: bool) -> Build:
    def build(args: list[bytes]) -> Planned:
        if len(args) > 3:
            return encode_error(
                f"ERR wrong number of arguments for '{args[0].decode().lower()}' command"
            )
        if len(args) == 2:
            return _one(LPop(args[1], left), reply_bulk)
        count = int_arg(args[2], NOT_POSITIVE)
        if isinstance(count, bytes) or count < 0:
            return NOT_POSITIVE
        return _one(LPop(args[1], left, count), reply_pop_list)

    return build


def _ints(raws: Sequence[bytes]) -> list[int] | bytes:
    numbers: list[int] = []
    for raw in raws:
        number = int_arg(raw)
        if isinstance(number, bytes):
            return number
        numbers.append(number)
    return numbers


def _lrange(args: list[bytes]) -> Planned:
    bounds = _ints(args[2:4])
    return bounds if isinstance(bounds, bytes) else _one(LRange(args[1], *bounds), reply_array)


def _ltrim(args: list[bytes]) -> Planned:
    bounds = _ints(args[2:4])
    return bounds if isinstance(bounds, bytes) else _one(LTrim(args[1], *bounds), reply_ok)


def _lindex(args: list[bytes]) -> Planned:
    return _one(LIndex(args[1], parse_int64(args[2])), reply_bulk)  # the key is checked first


def _lset(args: list[bytes]) -> Planned:
    return _one(LSet(args[1], parse_int64(args[2]), args[3]), reply_ok)


def _lrem(args: list[bytes]) -> Planned:
    count = int_arg(args[2])
    return count if isinstance(count, bytes) else _one(LRem(args[1], count, args[3]), reply_integer)


def _linsert(args: list[bytes]) -> Planned:
    where = args[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        return SYNTAX
    return _one(LInsert(args[1], where == b"BEFORE", args[3], args[4]), reply_integer)


_SIDES = {b"LEFT": True, b"RIGHT": False}


def _lmove(args: list[bytes]) -> Planned:
    source_side, destination_side = _SIDES.get(args[3].upper()), _SIDES.get(args[4].upper())
    if source_side is None or destination_side is None:
        return SYNTAX
    return _one(LMove(args[1], args[2], source_side, destination_side), reply_bulk)


def _lpos(args: list[bytes]) -> Planned:
    rank, count, maxlen = 1, None, 0
    position = 3
    while position < len(args):
        option = args[position].upper()
        if position + 1 >= len(args) or option not in (b"RANK", b"COUNT", b"MAXLEN"):
            return SYNTAX
        number = parse_int64(args[position + 1])
        if option == b"RANK":
            if number is None:
                return encode_error(f"ERR {NOT_AN_INTEGER}")
            if number == 0:
                return encode_error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                    "second ... or use negative to start from the end of the list"
                )
            rank = number
        elif number is None or number < 0:  # Redis's message for a non-integer too
            return encode_error(f"ERR {option.decode()} can't be negative")
        elif option == b"COUNT":
            count = number
        else:
            maxlen = number
        position += 2
    return _one(LPos(args[1], args[2], rank, count, maxlen), reply_lpos)


# --- sorted sets ------------------------------------------------------------------------------

_ZADD_FLAGS = {
    b"NX": ZADD_NX,
    b"XX": ZADD_XX,
    b"GT": ZADD_GT,
    b"LT": ZADD_LT,
    b"CH": ZADD_CH,
    b"INCR": ZADD_INCR,
}


def _zadd(args: list[bytes]) -> Planned:
    flags = 0
    position = 2
    while position < len(args):
        flag = _ZADD_FLAGS.get(args[position].upper())
        if flag is None:
            break
        flags |= flag
        position += 1
    rest = args[position:]
    if not rest or len(rest) % 2:
        return SYNTAX
    if flags & ZADD_NX and flags & ZADD_XX:
        return encode_error("ERR XX and NX options at the same time are not compatible")
    if (flags & ZADD_GT and flags & (ZADD_NX | ZADD_LT)) or (flags & ZADD_LT and flags & ZADD_NX):
        return encode_error("ERR GT, LT, and/or NX options at the same time are not compatible")
    if flags & ZADD_INCR and len(rest) > 2:
        return encode_error("ERR INCR option supports a single increment-element pair")
    pairs: list[tuple[float, bytes]] = []
    for raw, member in zip(rest[::2], rest[1::2], strict=True):
        score = score_arg(raw)
        if isinstance(score, bytes):
            return score
        pairs.append((score, member))
    combine = reply_score if flags & ZADD_INCR else reply_integer
    return _one(ZAdd(args[1], tuple(pairs), flags), combine)


def _zincrby(args: list[bytes]) -> Planned:
    amount = score_arg(args[2])
    return (
        amount
        if isinstance(amount, bytes)
        else _one(ZIncrBy(args[1], amount, args[3]), reply_score)
    )


def _zcount(args: list[bytes]) -> Planned:
    bounds = score_range(args[2], args[3])
    return bounds if isinstance(bounds, bytes) else _one(ZCount(args[1], *bounds), reply_integer)


def _zlexcount(args: list[bytes]) -> Planned:
    bounds = lex_range(args[2], args[3])
    return bounds if isinstance(bounds, bytes) else _one(ZLexCount(args[1], *bounds), reply_integer)


RANK, BY_SCORE, BY_LEX = 0, 1, 2


def _zrange_generic(
    args: list[bytes], by: int, rev: bool, modern: bool, destination: bytes | None = None
) -> Planned:
    """``ZRANGE`` (``modern``: takes ``BYSCORE``, ``BYLEX``, ``REV``) and its older forms:
    ``args[2:4]`` are the range (max first when ``rev`` by score or lex)."""
    with_scores = False
    limit: tuple[int, int] | None = None
    position = 4
    while position < len(args):
        option = args[position].upper()
        if option == b"WITHSCORES":
            with_scores = True
        elif option == b"LIMIT" and position + 2 < len(args):
            numbers = _ints(args[position + 1 : position + 3])
            if isinstance(numbers, bytes):
                return numbers
            limit = (numbers[0], numbers[1])
            position += 2
        elif option == b"BYSCORE" and modern and by == RANK:
            by = BY_SCORE
        elif option == b"BYLEX" and modern and by == RANK:
            by = BY_LEX
        elif option == b"REV" and modern and not rev:
            rev = True
        else:
            return SYNTAX
        position += 1
    if with_scores and by == BY_LEX:
        return encode_error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    if limit is not None and limit[1] != -1 and by == RANK:  # Redis: a -1 count is no LIMIT
        return encode_error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    low, high = (args[3], args[2]) if rev and by != RANK else (args[2], args[3])
    offset, count = limit if limit is not None else (0, -1)
    op: Command
    if by == RANK:
        bounds = _ints(args[2:4])
        if isinstance(bounds, bytes):
            return bounds
        op = ZRangeByRank(args[1], bounds[0], bounds[1], rev)
    elif by == BY_SCORE:
        scores = score_range(low, high)
        if isinstance(scores, bytes):
            return scores
        op = ZRangeByScore(args[1], scores[0], scores[1], rev, offset, count)
    else:
        lex = lex_range(low, high)
        if isinstance(lex, bytes):
            return lex
        op = ZRangeByLex(args[1], lex[0], lex[1], rev, offset, count)
    if destination is not None:
        if with_scores:
            return SYNTAX
        return _one(ZRangeStore(destination, op), reply_integer)
    return _one(op, reply_scored(with_scores))


def _zrangestore(args: list[bytes]) -> Planned:
    """``ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT o n]``: as ``ZRANGE``."""
    return _zrange_generic([b"ZRANGE", *args[2:]], RANK, False, True, destination=args[1])


_MPOP_SIDES = {b"LEFT": True, b"RIGHT": False, b"MIN": False, b"MAX": True}


def mpop_args(
    args: list[bytes], at: int, sides: tuple[bytes, bytes]
) -> tuple[tuple[bytes, ...], bool, int] | bytes:
    """``numkeys key... LEFT|RIGHT [COUNT n]`` (``MIN|MAX`` for sorted sets) from
    ``args[at]``: the keys, the side (``True``: LEFT or MAX) and the count, as Redis checks."""
    numkeys = parse_int64(args[at])
    if numkeys is None or numkeys < 1:
        return encode_error("ERR numkeys should be greater than 0")
    if numkeys > len(args) - at - 2:
        return SYNTAX
    keys = tuple(args[at + 1 : at + 1 + numkeys])
    rest = args[at + 1 + numkeys :]
    side = rest[0].upper()
    if side not in sides:
        return SYNTAX
    count = 1
    if len(rest) > 1:
        if len(rest) != 3 or rest[1].upper() != b"COUNT":
            return SYNTAX
        number = parse_int64(rest[2])
        if number is None or number < 1:
            return encode_error("ERR count should be greater than 0")
        count = number
    return keys, _MPOP_SIDES[side], count


def _lmpop(args: list[bytes]) -> Planned:
    parsed = mpop_args(args, 1, (b"LEFT", b"RIGHT"))
    if isinstance(parsed, bytes):
        return parsed
    keys, left, count = parsed
    return _one(LPopFirst(keys, left, count), reply_mpop(scored=False))


def _zmpop(args: list[bytes]) -> Planned:
    parsed = mpop_args(args, 1, (b"MIN", b"MAX"))
    if isinstance(parsed, bytes):
        return parsed
    keys, highest, count = parsed
    return _one(ZPopFirst(keys, highest, count), reply_mpop(scored=True))


def _random_members(with_word: bytes) -> Build:
    """``HRANDFIELD key [count [WITHVALUES]]``, ``ZRANDMEMBER key [count [WITHSCORES]]``:
    deterministic (``kv.sets``'s rule): the first ``count`` in the collection's order, or
    ``-count`` of them cycling; read from the whole hash or sorted set."""

    def build(args: list[bytes]) -> Planned:
        if len(args) > 4 or (len(args) == 4 and args[3].upper() != with_word):
            return SYNTAX
        count: int | None = None
        if len(args) >= 3:
            number = int_arg(args[2])
            if isinstance(number, bytes):
                return number
            if -number > COUNT_ABS_MAX:
                return encode_error(f"ERR count too large (limit {COUNT_ABS_MAX})")
            count = number
        op: Command = (
            HGetAll(args[1]) if with_word == b"WITHVALUES" else ZRangeByRank(args[1], 0, -1)
        )
        return _one(op, reply_random(count, with_values=len(args) == 4))

    return build


_AGGREGATES = {b"SUM": AGGREGATE_SUM, b"MIN": AGGREGATE_MIN, b"MAX": AGGREGATE_MAX}


def _numkeys(args: list[bytes], at: int) -> int | bytes:
    """``ZUNION``'s ``numkeys`` at ``args[at]``, checked against the arguments left."""
    count = int_arg(args[at])
    if isinstance(count, bytes):
        return count
    if count < 1:
        name = args[0].decode(errors="replace").lower()
        return encode_error(f"ERR at least 1 input key is needed for '{name}' command")
    if count > len(args) - at - 1:
        return SYNTAX
    return count


def _zcombine(how: int, store: bool) -> Build:
    """``ZUNION``, ``ZINTER``, ``ZDIFF`` and their ``STORE`` forms."""

    def build(args: list[bytes]) -> Planned:
        at = 2 if store else 1
        count = _numkeys(args, at)
        if isinstance(count, bytes):
            return count
        keys = tuple(args[at + 1 : at + 1 + count])
        weights: tuple[float, ...] = ()
        aggregate, with_scores, refusal = AGGREGATE_SUM, False, ""
        position = at + 1 + count
        while position < len(args) and not refusal:
            option = args[position].upper()
            if option == b"WEIGHTS" and how != SET_DIFF and position + count < len(args):
                parsed = [parse_score(raw) for raw in args[position + 1 :][:count]]
                if any(weight is None for weight in parsed):
                    refusal = "weight value is not a float"
                weights = tuple(w for w in parsed if w is not None)
                position += count
            elif option == b"AGGREGATE" and how != SET_DIFF and position + 1 < len(args):
                found = _AGGREGATES.get(args[position + 1].upper())
                if found is None:
                    refusal = "syntax error"
                aggregate = found or AGGREGATE_SUM
                position += 1
            elif option == b"WITHSCORES" and not store:
                with_scores = True
            else:
                refusal = "syntax error"
            position += 1
        if store:
            return _one(
                ZCombineStore(how, args[1], keys, weights, aggregate, refusal), reply_integer
            )
        return _one(ZCombine(how, keys, weights, aggregate, refusal), reply_scored(with_scores))

    return build


def _intercard(zsets: bool) -> Build:
    """``SINTERCARD``/``ZINTERCARD numkeys key... [LIMIT n]``: the intersection's size."""

    def build(args: list[bytes]) -> Planned:
        count = parse_int64(args[1])
        if count is None or count < 1:
            return encode_error("ERR numkeys should be greater than 0")
        if count > len(args) - 2:
            return encode_error("ERR Number of keys can't be greater than number of args")
        keys = tuple(args[2 : 2 + count])
        limit = 0
        rest = args[2 + count :]
        while rest:
            if len(rest) < 2 or rest[0].upper() != b"LIMIT":
                return SYNTAX
            number = parse_int64(rest[1])
            if number is None or number < 0:
                return encode_error("ERR LIMIT can't be negative")
            limit, rest = number, rest[2:]

        def combine(results: Sequence[Result], null: bytes) -> bytes:
            result = only_result(results)
            if type(result) is not Array and type(result) is not Scored:
                return refused(result)
            size = len(result.items)
            return encode_integer(min(size, limit) if limit else size)

        op: Command = ZCombine(SET_INTER, keys) if zsets else SCombine(SET_INTER, keys)
        return _one(op, combine)

    return build


def _zrank(rev: bool) -> Build:
    return lambda args: _one(ZRank(args[1], args[2], rev), reply_rank)


def _zpop(highest: bool) -> Build:
    def build(args: list[bytes]) -> Planned:
        if len(args) > 3:
            return SYNTAX
        if len(args) == 2:
            return _one(ZPop(args[1], highest), reply_pop_one)
        count = int_arg(args[2], NOT_POSITIVE)
        if isinstance(count, bytes) or count < 0:
            return NOT_POSITIVE
        return _one(ZPop(args[1], highest, count), reply_scored(True))

    return build


def _zremrangebyrank(args: list[bytes]) -> Planned:
    bounds = _ints(args[2:4])
    return (
        bounds
        if isinstance(bounds, bytes)
        else _one(ZRemRangeByRank(args[1], *bounds), reply_integer)
    )


def _zremrangebyscore(args: list[bytes]) -> Planned:
    bounds = score_range(args[2], args[3])
    if isinstance(bounds, bytes):
        return bounds
    return _one(ZRemRangeByScore(args[1], *bounds), reply_integer)


def _zremrangebylex(args: list[bytes]) -> Planned:
    bounds = lex_range(args[2], args[3])
    return (
        bounds
        if isinstance(bounds, bytes)
        else _one(ZRemRangeByLex(args[1], *bounds), reply_integer)
    )


def _zscan(args: list[bytes]) -> Planned:
    options = scan_options(args)
    if isinstance(options, bytes):
        return options
    return _one(ZScan(args[1], *options), reply_scan)


COLLECTION_COMMANDS: dict[bytes, tuple[int, int | None, Build]] = {
    b"COPY": (3, None, _copy),
    # hashes
    b"HSET": (4, None, lambda a: _hset(a, reply_integer)),
    b"HMSET": (4, None, lambda a: _hset(a, reply_hmset)),
    b"HSETNX": (4, 4, lambda a: _one(HSet(a[1], ((a[2], a[3]),), nx=True), reply_integer)),
    b"HGET": (3, 3, lambda a: _one(HGet(a[1], a[2]), reply_bulk)),
    b"HEXISTS": (3, 3, lambda a: _one(HGet(a[1], a[2]), reply_exists)),
    b"HSTRLEN": (3, 3, lambda a: _one(HGet(a[1], a[2]), reply_strlen)),
    b"HMGET": (3, None, lambda a: _one(HMGet(a[1], tuple(a[2:])), reply_values)),
    b"HDEL": (3, None, lambda a: _one(HDel(a[1], tuple(a[2:])), reply_integer)),
    b"HGETALL": (2, 2, lambda a: _one(HGetAll(a[1]), reply_map)),
    b"HKEYS": (2, 2, lambda a: _one(HGetAll(a[1]), every_other(0))),
    b"HVALS": (2, 2, lambda a: _one(HGetAll(a[1]), every_other(1))),
    b"HLEN": (2, 2, lambda a: _one(HLen(a[1]), reply_integer)),
    b"HINCRBY": (4, 4, _hincrby),
    b"HINCRBYFLOAT": (4, 4, _hincrbyfloat),
    b"HSCAN": (3, None, _hscan),
    # sets
    b"SADD": (3, None, lambda a: _one(SAdd(a[1], tuple(a[2:])), reply_integer)),
    b"SREM": (3, None, lambda a: _one(SRem(a[1], tuple(a[2:])), reply_integer)),
    b"SMEMBERS": (2, 2, lambda a: _one(SMembers(a[1]), reply_set)),
    b"SISMEMBER": (3, 3, lambda a: _one(SIsMember(a[1], (a[2],)), reply_flag)),
    b"SMISMEMBER": (3, None, lambda a: _one(SIsMember(a[1], tuple(a[2:])), reply_integers)),
    b"SCARD": (2, 2, lambda a: _one(SCard(a[1]), reply_integer)),
    b"SPOP": (2, None, _spop),
    b"SRANDMEMBER": (2, None, _srandmember),
    b"SINTER": (2, None, _scombine(SET_INTER)),
    b"SUNION": (2, None, _scombine(SET_UNION)),
    b"SDIFF": (2, None, _scombine(SET_DIFF)),
    b"SINTERSTORE": (3, None, _scombine_store(SET_INTER)),
    b"SUNIONSTORE": (3, None, _scombine_store(SET_UNION)),
    b"SDIFFSTORE": (3, None, _scombine_store(SET_DIFF)),
    b"SMOVE": (4, 4, lambda a: _one(SMove(a[1], a[2], a[3]), reply_integer)),
    b"SSCAN": (3, None, _sscan),
    # lists
    b"LPUSH": (3, None, _push(left=True, only_existing=False)),
    b"RPUSH": (3, None, _push(left=False, only_existing=False)),
    b"LPUSHX": (3, None, _push(left=True, only_existing=True)),
    b"RPUSHX": (3, None, _push(left=False, only_existing=True)),
    b"LPOP": (2, None, _pop(left=True)),
    b"RPOP": (2, None, _pop(left=False)),
    b"LLEN": (2, 2, lambda a: _one(LLen(a[1]), reply_integer)),
    b"LRANGE": (4, 4, _lrange),
    b"LINDEX": (3, 3, _lindex),
    b"LSET": (4, 4, _lset),
    b"LREM": (4, 4, _lrem),
    b"LTRIM": (4, 4, _ltrim),
    b"LINSERT": (5, 5, _linsert),
    b"LMOVE": (5, 5, _lmove),
    b"RPOPLPUSH": (3, 3, lambda a: _one(LMove(a[1], a[2], False, True), reply_bulk)),
    b"LPOS": (3, None, _lpos),
    # sorted sets
    b"ZADD": (4, None, _zadd),
    b"ZREM": (3, None, lambda a: _one(ZRem(a[1], tuple(a[2:])), reply_integer)),
    b"ZSCORE": (3, 3, lambda a: _one(ZScore(a[1], (a[2],)), reply_score)),
    b"ZMSCORE": (3, None, lambda a: _one(ZScore(a[1], tuple(a[2:])), reply_scores)),
    b"ZINCRBY": (4, 4, _zincrby),
    b"ZCARD": (2, 2, lambda a: _one(ZCard(a[1]), reply_integer)),
    b"ZCOUNT": (4, 4, _zcount),
    b"ZLEXCOUNT": (4, 4, _zlexcount),
    b"ZRANGE": (4, None, lambda a: _zrange_generic(a, RANK, False, modern=True)),
    b"ZREVRANGE": (4, None, lambda a: _zrange_generic(a, RANK, True, modern=False)),
    b"ZRANGEBYSCORE": (4, None, lambda a: _zrange_generic(a, BY_SCORE, False, modern=False)),
    b"ZREVRANGEBYSCORE": (4, None, lambda a: _zrange_generic(a, BY_SCORE, True, modern=False)),
    b"ZRANGEBYLEX": (4, None, lambda a: _zrange_generic(a, BY_LEX, False, modern=False)),
    b"ZREVRANGEBYLEX": (4, None, lambda a: _zrange_generic(a, BY_LEX, True, modern=False)),
    b"ZRANK": (3, 3, _zrank(rev=False)),
    b"ZREVRANK": (3, 3, _zrank(rev=True)),
    b"ZPOPMIN": (2, None, _zpop(highest=False)),
    b"ZPOPMAX": (2, None, _zpop(highest=True)),
    b"ZREMRANGEBYRANK": (4, 4, _zremrangebyrank),
    b"ZREMRANGEBYSCORE": (4, 4, _zremrangebyscore),
    b"ZREMRANGEBYLEX": (4, 4, _zremrangebylex),
    b"ZSCAN": (3, None, _zscan),
    b"ZUNION": (3, None, _zcombine(SET_UNION, store=False)),
    b"ZINTER": (3, None, _zcombine(SET_INTER, store=False)),
    b"ZDIFF": (3, None, _zcombine(SET_DIFF, store=False)),
    b"ZUNIONSTORE": (4, None, _zcombine(SET_UNION, store=True)),
    b"ZINTERSTORE": (4, None, _zcombine(SET_INTER, store=True)),
    b"ZDIFFSTORE": (4, None, _zcombine(SET_DIFF, store=True)),
    b"ZINTERCARD": (3, None, _intercard(zsets=True)),
    b"ZRANGESTORE": (5, None, _zrangestore),
    b"LMPOP": (4, None, _lmpop),
    b"ZMPOP": (4, None, _zmpop),
    b"HRANDFIELD": (2, None, _random_members(b"WITHVALUES")),
    b"ZRANDMEMBER": (2, None, _random_members(b"WITHSCORES")),
    b"SINTERCARD": (3, None, _intercard(zsets=False)),
}
"""Name -> (arity_min, arity_max or None, build), arities counting the name, as Redis's."""

BLOCKING_COMMANDS = frozenset(
    {b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH", b"BZPOPMIN", b"BZPOPMAX", b"BLMPOP", b"BZMPOP"}
)
"""Redis's blocking commands (``runtime.blocking``)."""
