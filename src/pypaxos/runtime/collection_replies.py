"""RESP replies for the collection commands (``runtime.collection_commands``), in RESP2 or
RESP3 as Redis 7.0 sends them: the combine functions from ``kv`` results to reply bytes.

The connection's protocol is known from how it spells null (``NULL_RESP2``/``NULL_RESP3``),
the second argument of every combine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from pypaxos.kv import Array, Integer, Ok, Page, Result, Value
from pypaxos.kv.commands import Integers, Score, Scored, Scores, Values
from pypaxos.kv.zsets import format_score
from pypaxos.runtime.replies import NULL_RESP3, Combine, result_error, unexpected
from pypaxos.transport.resp import encode_bulk, encode_integer, encode_simple


def is_resp3(null: bytes) -> bool:
    return null == NULL_RESP3


def aggregate_head(kind: bytes, count: int) -> bytes:
    return b"%s%d\r\n" % (kind, count)


def encode_bulks(items: Sequence[bytes | None], null: bytes, kind: bytes = b"*") -> bytes:
    parts = [aggregate_head(kind, len(items))]
    for item in items:
        parts.append(null if item is None else b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(parts)


def encode_double(score: float | None, null: bytes) -> bytes:
    if score is None:
        return null
    text = format_score(score)
    return b",%s\r\n" % text if is_resp3(null) else encode_bulk(text)


def only_result(results: Sequence[Result]) -> Result:
    (result,) = results
    return result


def refused(result: Result) -> bytes:
    return result_error(result) or unexpected(result)


def reply_integer(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    return encode_integer(result.value) if type(result) is Integer else refused(result)


def reply_bulk(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is Value:
        return null if result.value is None else encode_bulk(result.value)
    return refused(result)


def reply_ok(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    return encode_simple("OK") if type(result) is Ok else refused(result)


def reply_array(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    return encode_bulks(result.items, null) if type(result) is Array else refused(result)


def reply_set(results: Sequence[Result], null: bytes) -> bytes:
    """An ``Array`` as a RESP3 set (``~``) or a RESP2 array."""
    result = only_result(results)
    if type(result) is Array:
        return encode_bulks(result.items, null, b"~" if is_resp3(null) else b"*")
    return refused(result)


def reply_map(results: Sequence[Result], null: bytes) -> bytes:
    """A flat field, value... ``Array`` as a RESP3 map or a RESP2 array."""
    result = only_result(results)
    if type(result) is not Array:
        return refused(result)
    if is_resp3(null):
        return (
            aggregate_head(b"%", len(result.items) // 2)
            + encode_bulks(result.items, null)[len(aggregate_head(b"*", len(result.items))) :]
        )
    return encode_bulks(result.items, null)


def every_other(first: int) -> Combine:
    def combine(results: Sequence[Result], null: bytes) -> bytes:
        result = only_result(results)
        return (
            encode_bulks(result.items[first::2], null) if type(result) is Array else refused(result)
        )

    return combine


def reply_values(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    return encode_bulks(result.items, null) if type(result) is Values else refused(result)


def reply_integers(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is not Integers:
        return refused(result)
    return aggregate_head(b"*", len(result.items)) + b"".join(
        encode_integer(n) for n in result.items
    )


def reply_flag(results: Sequence[Result], null: bytes) -> bytes:
    """The first of ``Integers`` as an integer (``SISMEMBER``)."""
    result = only_result(results)
    return encode_integer(result.items[0]) if type(result) is Integers else refused(result)


def reply_exists(results: Sequence[Result], null: bytes) -> bytes:
    """``HEXISTS``: 1 if ``HGet`` found a value."""
    result = only_result(results)
    return (
        encode_integer(int(result.value is not None)) if type(result) is Value else refused(result)
    )


def reply_strlen(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is Value:
        return encode_integer(len(result.value or b""))
    return refused(result)


def reply_score(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is Score:
        return encode_double(result.value, null)
    if type(result) is Scores:
        return encode_double(result.items[0], null)
    return refused(result)


def reply_scores(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is not Scores:
        return refused(result)
    return aggregate_head(b"*", len(result.items)) + b"".join(
        encode_double(s, null) for s in result.items
    )


def reply_scan(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is not Page:
        return refused(result)
    return b"*2\r\n" + encode_bulk(b"%d" % result.cursor) + encode_bulks(result.keys, null)


def reply_pop_list(results: Sequence[Result], null: bytes) -> bytes:
    """``LPOP key count``: an array, or the null array when the key is absent."""
    result = only_result(results)
    if type(result) is Value:
        return NULL_RESP3 if is_resp3(null) else b"*-1\r\n"
    return reply_array(results, null)


@cache  # two combines in all: the server caches replies by combine (``single_reply``)
def reply_scored(with_scores: bool) -> Combine:
    """Members (``with_scores``: and their scores, flat in RESP2, pairs in RESP3)."""

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        result = only_result(results)
        if type(result) is not Scored:
            return refused(result)
        if not with_scores:
            return encode_bulks([member for member, _ in result.items], null)
        resp3 = is_resp3(null)
        parts = [aggregate_head(b"*", len(result.items) * (1 if resp3 else 2))]
        for member, score in result.items:
            pair = encode_bulk(member) + encode_double(score, null)
            parts.append(b"*2\r\n" + pair if resp3 else pair)
        return b"".join(parts)

    return combine


def reply_pop_one(results: Sequence[Result], null: bytes) -> bytes:
    """``ZPOPMIN key`` without a count: ``[member, score]`` flat, in either protocol."""
    result = only_result(results)
    if type(result) is not Scored:
        return refused(result)
    parts = [aggregate_head(b"*", 2 * len(result.items))]
    for member, score in result.items:
        parts.append(encode_bulk(member) + encode_double(score, null))
    return b"".join(parts)


def reply_rank(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is Value:
        return null
    return reply_integer(results, null)


def reply_hmset(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    return encode_simple("OK") if type(result) is Integer else refused(result)


def reply_lpos(results: Sequence[Result], null: bytes) -> bytes:
    result = only_result(results)
    if type(result) is Value:
        return null
    if type(result) is Integers:
        return reply_integers(results, null)
    return reply_integer(results, null)


@cache
def reply_mpop(scored: bool) -> Combine:
    """``LMPOP``/``ZMPOP`` (and their blocking forms): ``[key, [items]]`` (for sorted sets each
    item ``[member, score]``), or the null array when no key had anything."""

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        result = only_result(results)
        if type(result) is Value:
            return null if is_resp3(null) else b"*-1\r\n"
        if type(result) is not Array:
            return refused(result)
        key, items = result.items[0], result.items[1:]
        if not scored:
            return b"*2\r\n" + encode_bulk(key) + encode_bulks(items, null)
        parts = [b"*2\r\n", encode_bulk(key), aggregate_head(b"*", len(items) // 2)]
        for member, score in zip(items[::2], items[1::2], strict=True):
            parts.append(b"*2\r\n" + encode_bulk(member) + _spelled_score(score, null))
        return b"".join(parts)

    return combine


def _spelled_score(score: bytes, null: bytes) -> bytes:
    return b",%s\r\n" % score if is_resp3(null) else encode_bulk(score)


def reply_random(count: int | None, with_values: bool) -> Combine:
    """``HRANDFIELD``/``ZRANDMEMBER`` from the whole hash (``Array`` field, value...) or sorted
    set (``Scored``): the first ``count`` entries, or ``-count`` cycling; one without a count."""

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        result = only_result(results)
        if type(result) is Array:
            pairs = list(zip(result.items[::2], result.items[1::2], strict=True))
            values = [encode_bulk(value) for _, value in pairs]
        elif type(result) is Scored:
            pairs = [(member, format_score(score)) for member, score in result.items]
            values = [_spelled_score(score, null) for _, score in pairs]
        else:
            return refused(result)
        if count is None:
            return encode_bulk(pairs[0][0]) if pairs else null
        chosen = list(range(min(count, len(pairs)))) if count >= 0 else []
        if count < 0 and pairs:
            chosen = [n % len(pairs) for n in range(-count)]
        if not with_values:
            return encode_bulks([pairs[n][0] for n in chosen], null)
        resp3 = is_resp3(null)
        parts = [aggregate_head(b"*", len(chosen) * (1 if resp3 else 2))]
        for n in chosen:
            pair = encode_bulk(pairs[n][0]) + values[n]
            parts.append(b"*2\r\n" + pair if resp3 else pair)
        return b"".join(parts)

    return combine
