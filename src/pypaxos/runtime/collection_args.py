"""Argument parsing for the collection commands, with Redis 7.0's rules and error replies:
integers, scores (``strtod`` as Redis calls it), score and lexicographic ranges, ``SCAN``
options.  Each parser answers the value or the error reply (bytes) to send instead.
"""

from __future__ import annotations

import re

from pypaxos.kv import parse_int64
from pypaxos.kv.collection_ops import (
    LEX_EXCLUSIVE,
    LEX_INCLUSIVE,
    LEX_MAX,
    LEX_MIN,
    LexBound,
    ScoreBound,
)
from pypaxos.kv.commands import NOT_A_FLOAT, NOT_AN_INTEGER
from pypaxos.transport.resp import encode_error

SYNTAX = encode_error("ERR syntax error")
NOT_POSITIVE = encode_error("ERR value is out of range, must be positive")
SCAN_COUNT_MAX = 10_000
"""A bound on one ``HSCAN``/``SSCAN``/``ZSCAN`` page's work (Redis has none)."""


def int_arg(raw: bytes, refusal: bytes | None = None) -> int | bytes:
    """A 64-bit integer argument or the error reply (Redis's, unless ``refusal`` is given)."""
    number = parse_int64(raw)
    if number is None:
        return refusal or encode_error(f"ERR {NOT_AN_INTEGER}")
    return number


_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INFINITY = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)


def parse_score(raw: bytes, strict: bool = True) -> float | None:
    """What Redis's ``strtod`` reading of a score gives (``None``: not a valid float): decimal
    or infinity, never NaN; ``strict`` (a score to store) also refuses what overflows to
    infinity or underflows to zero, as Redis does."""
    infinity = _INFINITY.fullmatch(raw)
    if infinity is not None:
        return float("-inf") if infinity.group(1) == b"-" else float("inf")
    if _DECIMAL.fullmatch(raw) is None:
        return None
    number = float(raw)
    if strict:
        if number in (float("inf"), float("-inf")):
            return None
        if number == 0 and any(
            digit in b"123456789" for digit in raw.split(b"e")[0].split(b"E")[0]
        ):
            return None
    return number


def score_arg(raw: bytes) -> float | bytes:
    score = parse_score(raw)
    return encode_error(f"ERR {NOT_A_FLOAT}") if score is None else score


def _score_bound(raw: bytes) -> ScoreBound | None:
    """A range end as Redis reads it: ``strtod`` without its error checks, so leading blanks
    are skipped and nothing at all (``(`` alone, an empty argument) reads as 0."""
    is_open = raw[:1] == b"("
    text = (raw[1:] if is_open else raw).lstrip(b" \t\n\v\f\r")
    value = 0.0 if not text else parse_score(text, strict=False)
    return None if value is None else ScoreBound(value, open=is_open)


def _lex_bound(raw: bytes) -> LexBound | None:
    if raw == b"-":
        return LexBound(LEX_MIN)
    if raw == b"+":
        return LexBound(LEX_MAX)
    if raw[:1] == b"[":
        return LexBound(LEX_INCLUSIVE, raw[1:])
    if raw[:1] == b"(":
        return LexBound(LEX_EXCLUSIVE, raw[1:])
    return None


NOT_A_FLOAT_RANGE = encode_error("ERR min or max is not a float")
NOT_A_LEX_RANGE = encode_error("ERR min or max not valid string range item")


def score_range(low: bytes, high: bytes) -> tuple[ScoreBound, ScoreBound] | bytes:
    first, last = _score_bound(low), _score_bound(high)
    if first is None or last is None:
        return NOT_A_FLOAT_RANGE
    return first, last


def lex_range(low: bytes, high: bytes) -> tuple[LexBound, LexBound] | bytes:
    first, last = _lex_bound(low), _lex_bound(high)
    if first is None or last is None:
        return NOT_A_LEX_RANGE
    return first, last


def scan_options(args: list[bytes]) -> tuple[int, bytes | None, int] | bytes:
    """``cursor [MATCH pattern] [COUNT n]`` from ``args[2]`` on."""
    raw = args[2]
    if not raw.isdigit() or int(raw) >= 2**64:
        return encode_error("ERR invalid cursor")
    pattern: bytes | None = None
    count = 10
    position = 3
    while position < len(args):
        option = args[position].upper()
        if position + 1 >= len(args):
            return SYNTAX
        value = args[position + 1]
        if option == b"COUNT":
            number = int_arg(value)
            if isinstance(number, bytes):
                return number
            if number < 1:
                return SYNTAX
            count = min(number, SCAN_COUNT_MAX)
        elif option == b"MATCH":
            pattern = None if value == b"*" else value
        else:
            return SYNTAX
        position += 2
    return int(raw), pattern, count
