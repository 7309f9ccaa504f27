"""Redis's glob patterns (``KEYS``, ``SCAN MATCH``, ``PSUBSCRIBE``, ``CLIENT``'s filters),
matched without backtracking: a pattern comes from a client and must not be able to hold a
node's event loop."""

from __future__ import annotations

import re
from collections.abc import Callable

_STAR = None
_NOTHING: frozenset[int] = frozenset()  # past the pattern's end: no byte matches
_BYTE_SETS: dict[bytes, frozenset[int]] = {}  # one-byte glob -> the bytes it matches
_BYTE_SETS_MAX = 4096


def _one_byte_globs(pattern: bytes) -> list[bytes | None]:
    """``pattern`` cut into ``*`` (``None``, runs of them as one) and globs that each match
    exactly one byte (a literal, ``\\x``, ``?``, a class), cut as ``kv.keyspace`` reads them."""
    out: list[bytes | None] = []
    position, length = 0, len(pattern)
    while position < length:
        char = pattern[position : position + 1]
        start = position
        if char == b"*":
            if not out or out[-1] is not _STAR:
                out.append(_STAR)
            position += 1
            continue
        if char == b"\\" and position + 1 < length:
            position += 1
        elif char == b"[":
            position += 1
            if pattern[position : position + 1] == b"^":
                position += 1
            while position < length and pattern[position : position + 1] != b"]":
                if pattern[position : position + 1] == b"\\" and position + 1 < length:
                    position += 1
                elif position + 2 < length and pattern[position + 1 : position + 2] == b"-":
                    position += 2
                position += 1
            position = min(position, length - 1)
        out.append(pattern[start : position + 1])
        position += 1
    return out


def _byte_set(glob: bytes) -> frozenset[int]:
    found = _BYTE_SETS.get(glob)
    if found is None:
        if len(glob) == 1 and glob not in (b"?", b"[", b"\\"):
            found = frozenset(glob)
        else:
            match = regex_matcher(glob)
            found = frozenset(b for b in range(256) if match(bytes((b,))))
        if len(_BYTE_SETS) >= _BYTE_SETS_MAX:
            _BYTE_SETS.clear()
        _BYTE_SETS[glob] = found
    return found


def glob_matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """Redis's glob match (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``) of a key or channel
    against ``pattern``, in O(len(text) * len(pattern)) at worst: the pattern comes from a
    client, and a backtracking regex of one such as ``*a*a*a*a*b`` could hold the event loop
    for ever.  The same answers as ``regex_matcher`` (a test compares them)."""
    tokens = [None if g is None else _byte_set(g) for g in _one_byte_globs(pattern)]
    count = len(tokens)

    def match(text: bytes) -> bool:
        token_at, byte_at, star_at, resume_at = 0, 0, -1, 0
        size = len(text)
        while byte_at < size:
            token = tokens[token_at] if token_at < count else _NOTHING
            if token is None:
                star_at, resume_at = token_at, byte_at
                token_at += 1
            elif text[byte_at] in token:
                token_at += 1
                byte_at += 1
            elif star_at >= 0:
                resume_at += 1
                token_at, byte_at = star_at + 1, resume_at
            else:
                return False
        while token_at < count and tokens[token_at] is None:
            token_at += 1
        return token_at == count

    return match


def regex_matcher(pattern: bytes) -> _Matcher:
    """The same test as ``glob_matcher`` by a backtracking regex: only for globs without
    ``*`` (one byte each, where it cannot backtrack) and as the tests' reference."""
    regex = _GLOB_CACHE.get(pattern)
    if regex is None:
        regex = re.compile(_glob_to_regex(pattern), re.DOTALL)
        if len(_GLOB_CACHE) >= 256:
            _GLOB_CACHE.clear()
        _GLOB_CACHE[pattern] = regex
    return _Matcher(regex)


class _Matcher:
    __slots__ = ("regex",)

    def __init__(self, regex: re.Pattern[bytes]) -> None:
        self.regex = regex

    def __call__(self, key: bytes) -> bool:
        return self.regex.fullmatch(key) is not None


_GLOB_CACHE: dict[bytes, re.Pattern[bytes]] = {}


def _glob_to_regex(pattern: bytes) -> bytes:
    out: list[bytes] = []
    position, length = 0, len(pattern)
    while position < length:
        char = pattern[position : position + 1]
        if char == b"*":
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"\\" and position + 1 < length:
            position += 1
            out.append(re.escape(pattern[position : position + 1]))
        elif char == b"[":
            position, part = _glob_class(pattern, position + 1)
            out.append(part)
        else:
            out.append(re.escape(char))
        position += 1
    return b"".join(out)


def _glob_class(pattern: bytes, position: int) -> tuple[int, bytes]:
    """The regex for the class opening at ``position`` (after ``[``) and where it ends.  An
    unclosed class runs to the end of the pattern, as in Redis."""
    negate = pattern[position : position + 1] == b"^"
    if negate:
        position += 1
    members: list[bytes] = []
    length = len(pattern)
    while position < length and pattern[position : position + 1] != b"]":
        char = pattern[position : position + 1]
        if char == b"\\" and position + 1 < length:
            position += 1
            members.append(re.escape(pattern[position : position + 1]))
        elif position + 2 < length and pattern[position + 1 : position + 2] == b"-":
            low, high = sorted((pattern[position], pattern[position + 2]))
            members.append(b"\\x%02x-\\x%02x" % (low, high))
            position += 2
        else:
            members.append(re.escape(char))
        position += 1
    if position >= length:
        position = length - 1
    body = b"".join(members)
    if not body:
        return position, b"[^\\x00-\\xff]" if not negate else b"[\\x00-\\xff]"
    return position, b"[" + (b"^" if negate else b"") + body + b"]"
