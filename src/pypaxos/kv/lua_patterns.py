"""Lua 5.1's string patterns, matched with a step count and a depth bound (for ``kv.scripts``).

Lua's own matcher (``string.find``, ``match``, ``gmatch``, ``gsub``) is a backtracking C
function: the debug hook that bounds a script never fires inside it, a pattern with a few
quantifiers takes time polynomial of high degree in the subject's length, and a long pattern of
``a?`` items recurses once per item on the C stack until the process crashes.  The sandbox
therefore hands a call to the C matcher only when the pattern is short and a cheap bound on
its work is small (each start position, times every way the quantified items can split the
rest, times the pattern's length: ``fast`` in ``kv.scripts``); any other call is matched here.

The rules are Lua 5.1's (reference manual, section 5.4.1, as its implementation reads them):
``^`` anchors only at the start of the whole pattern, ``%f`` frontiers, ``%b`` balances, back
references, position captures, a pattern ends at its first NUL byte.  Every step counts
against the script's budget, and nesting deeper than ``MATCH_DEPTH_MAX`` is refused with Lua
5.2's ``pattern too complex``.  Character classes are the C locale's (ASCII), as ``lupa``'s
Lua sees them.
"""

from __future__ import annotations

CAPTURES_MAX = 32  # Lua 5.1's LUA_MAXCAPTURES
MATCH_DEPTH_MAX = 200  # recursion of the matcher (Lua 5.2's MAXCCALLS for patterns)
SPECIALS = b"^$*+?.([%-"
_CAP_UNFINISHED = -1
_CAP_POSITION = -2
_PERCENT, _OPEN, _CLOSE, _DOT, _DOLLAR = 37, 40, 41, 46, 36
_BRACKET, _CLOSE_BRACKET, _CARET = 91, 93, 94


class PatternError(Exception):
    """A malformed pattern: the message Lua raises (the sandbox raises it in the script)."""


class StepsExhausted(Exception):
    """The match ran past the steps it was given (the script's budget is spent)."""


def _ctype(test: object) -> frozenset[int]:
    return frozenset(c for c in range(256) if test(c))  # type: ignore[operator]


_CLASSES: dict[int, frozenset[int]] = {
    ord("a"): _ctype(lambda c: 65 <= c <= 90 or 97 <= c <= 122),
    ord("c"): _ctype(lambda c: c < 32 or c == 127),
    ord("d"): _ctype(lambda c: 48 <= c <= 57),
    ord("l"): _ctype(lambda c: 97 <= c <= 122),
    ord("p"): _ctype(lambda c: 33 <= c <= 126 and not bytes([c]).isalnum()),
    ord("s"): _ctype(lambda c: 9 <= c <= 13 or c == 32),
    ord("u"): _ctype(lambda c: 65 <= c <= 90),
    ord("w"): _ctype(lambda c: bytes([c]).isalnum()),
    ord("x"): _ctype(lambda c: bytes([c]) in b"0123456789abcdefABCDEF"),
    ord("z"): frozenset({0}),
}


def _match_class(c: int, cl: int) -> bool:
    members = _CLASSES.get(cl | 0x20 if 65 <= cl <= 90 else cl)
    if members is None:
        return cl == c
    inside = c in members
    return not inside if 65 <= cl <= 90 else inside


class Matcher:
    """One subject and pattern; ``search`` finds the first match from a position."""

    __slots__ = ("captures", "depth", "level", "pattern", "steps_left", "subject")

    def __init__(self, subject: bytes, pattern: bytes, steps_max: int) -> None:
        end = pattern.find(b"\0")
        self.subject = subject
        self.pattern = pattern if end < 0 else pattern[:end]
        self.steps_left = steps_max
        self.level = 0
        self.depth = 0
        self.captures: list[list[int]] = [[0, 0] for _ in range(CAPTURES_MAX)]

    def search(self, start: int, anchored: bool) -> tuple[int, int] | None:
        """The first match at ``start`` or later (only at ``start`` if ``anchored``): its
        start and end (0-based, end exclusive), its captures left in ``captures``."""
        n = len(self.subject)
        position = start
        while True:
            self.level = 0
            end = self._match(position, 0)
            if end is not None:
                return position, end
            position += 1
            if anchored or position > n:
                return None

    def values(self, start: int, end: int, whole_if_none: bool) -> list[bytes | int]:
        """The match's captures as Lua sees them (a position capture is an integer)."""
        if self.level == 0:
            return [self.subject[start:end]] if whole_if_none else []
        return [self.capture(index, start, end) for index in range(self.level)]

    def capture(self, index: int, start: int, end: int) -> bytes | int:
        if index >= self.level:
            if index == 0:
                return self.subject[start:end]
            raise PatternError("invalid capture index")
        init, length = self.captures[index]
        if length == _CAP_UNFINISHED:
            raise PatternError("unfinished capture")
        if length == _CAP_POSITION:
            return init + 1
        return self.subject[init : init + length]

    def _step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise StepsExhausted

    def _class_end(self, p: int) -> int:
        pattern = self.pattern
        c = pattern[p]
        p += 1
        if c == _PERCENT:
            if p >= len(pattern):
                raise PatternError("malformed pattern (ends with '%')")
            return p + 1
        if c == _BRACKET:
            if p < len(pattern) and pattern[p] == _CARET:
                p += 1
            while True:  # the first character is taken as is: "[]]" is a class of "]"
                if p >= len(pattern):
                    raise PatternError("malformed pattern (missing ']')")
                c = pattern[p]
                p += 1
                if c == _PERCENT and p < len(pattern):
                    p += 1
                if p < len(pattern) and pattern[p] == _CLOSE_BRACKET:
                    return p + 1
                if p >= len(pattern):
                    raise PatternError("malformed pattern (missing ']')")
        return p

    def _bracket(self, c: int, p: int, ec: int) -> bool:
        """Does ``c`` match the set from ``[`` at ``p`` to ``]`` at ``ec``?"""
        pattern = self.pattern
        wanted = True
        if pattern[p + 1] == _CARET:
            wanted = False
            p += 1
        p += 1
        while p < ec:
            item = pattern[p]
            if item == _PERCENT:
                p += 1
                if _match_class(c, pattern[p]):
                    return wanted
            elif p + 2 < ec and pattern[p + 1] == 45:  # a range: a-z
                if item <= c <= pattern[p + 2]:
                    return wanted
                p += 2
            elif item == c:
                return wanted
            p += 1
        return not wanted

    def _single(self, s: int, p: int, ep: int) -> bool:
        if s >= len(self.subject):
            return False
        c = self.subject[s]
        item = self.pattern[p]
        if item == _DOT:
            return True
        if item == _PERCENT:
            return _match_class(c, self.pattern[p + 1])
        if item == _BRACKET:
            return self._bracket(c, p, ep - 1)
        return item == c

    def _match(self, s: int, p: int) -> int | None:
        self.depth += 1
        if self.depth > MATCH_DEPTH_MAX:
            raise PatternError("pattern too complex")
        try:
            return self._match_loop(s, p)
        finally:
            self.depth -= 1

    def _match_loop(self, s: int, p: int) -> int | None:
        pattern, subject = self.pattern, self.subject
        while True:
            self._step()
            if p >= len(pattern):
                return s
            item = pattern[p]
            if item == _OPEN:
                if p + 1 < len(pattern) and pattern[p + 1] == _CLOSE:
                    return self._start_capture(s, p + 2, _CAP_POSITION)
                return self._start_capture(s, p + 1, _CAP_UNFINISHED)
            if item == _CLOSE:
                return self._end_capture(s, p + 1)
            if item == _PERCENT and p + 1 < len(pattern):
                kind = pattern[p + 1]
                if kind == ord("b"):
                    end = self._balance(s, p + 2)
                    if end is None:
                        return None
                    s, p = end, p + 4
                    continue
                if kind == ord("f"):
                    p += 2
                    if p >= len(pattern) or pattern[p] != _BRACKET:
                        raise PatternError("missing '[' after '%f' in pattern")
                    ep = self._class_end(p)
                    previous = 0 if s == 0 else subject[s - 1]
                    current = subject[s] if s < len(subject) else 0
                    if self._bracket(previous, p, ep - 1) or not self._bracket(current, p, ep - 1):
                        return None
                    p = ep
                    continue
                if 48 <= kind <= 57:
                    end = self._back_reference(s, kind)
                    if end is None:
                        return None
                    s, p = end, p + 2
                    continue
            if item == _DOLLAR and p + 1 == len(pattern):
                return s if s == len(subject) else None
            ep = self._class_end(p)
            matched = self._single(s, p, ep)
            after = pattern[ep] if ep < len(pattern) else 0
            if after == ord("?"):
                if matched:
                    end = self._match(s + 1, ep + 1)
                    if end is not None:
                        return end
                p = ep + 1
                continue
            if after == ord("*"):
                return self._max_expand(s, p, ep)
            if after == ord("+"):
                return self._max_expand(s + 1, p, ep) if matched else None
            if after == ord("-"):
                return self._min_expand(s, p, ep)
            if not matched:
                return None
            s, p = s + 1, ep

    def _max_expand(self, s: int, p: int, ep: int) -> int | None:
        count = 0
        while self._single(s + count, p, ep):
            self._step()
            count += 1
        while count >= 0:
            end = self._match(s + count, ep + 1)
            if end is not None:
                return end
            count -= 1
        return None

    def _min_expand(self, s: int, p: int, ep: int) -> int | None:
        while True:
            end = self._match(s, ep + 1)
            if end is not None:
                return end
            if not self._single(s, p, ep):
                return None
            s += 1

    def _start_capture(self, s: int, p: int, what: int) -> int | None:
        level = self.level
        if level >= CAPTURES_MAX:
            raise PatternError("too many captures")
        self.captures[level][0], self.captures[level][1] = s, what
        self.level = level + 1
        end = self._match(s, p)
        if end is None:
            self.level -= 1
        return end

    def _end_capture(self, s: int, p: int) -> int | None:
        index = self.level - 1
        while index >= 0 and self.captures[index][1] != _CAP_UNFINISHED:
            index -= 1
        if index < 0:
            raise PatternError("invalid pattern capture")
        self.captures[index][1] = s - self.captures[index][0]
        end = self._match(s, p)
        if end is None:
            self.captures[index][1] = _CAP_UNFINISHED
        return end

    def _back_reference(self, s: int, digit: int) -> int | None:
        index = digit - 49
        if index < 0 or index >= self.level or self.captures[index][1] == _CAP_UNFINISHED:
            raise PatternError("invalid capture index")
        init, length = self.captures[index]
        if length == _CAP_POSITION:  # Lua compares a negative length as unsigned: never equal
            return None
        self.steps_left -= length
        if self.steps_left < 0:
            raise StepsExhausted
        if self.subject[s : s + length] == self.subject[init : init + length]:
            return s + length
        return None

    def _balance(self, s: int, p: int) -> int | None:
        pattern, subject = self.pattern, self.subject
        if p + 1 >= len(pattern):
            raise PatternError("unbalanced pattern")
        if s >= len(subject) or subject[s] != pattern[p]:
            return None
        opening, closing = pattern[p], pattern[p + 1]
        depth = 1
        s += 1
        while s < len(subject):
            self._step()
            c = subject[s]
            if c == closing:
                depth -= 1
                if depth == 0:
                    return s + 1
            elif c == opening:
                depth += 1
            s += 1
        return None


def search(
    subject: bytes, pattern: bytes, start: int, anchored: bool, whole: bool, steps_max: int
) -> tuple[object, ...]:
    """For the sandbox: ``("m", steps, start, end, level, values...)`` (0-based start, end
    exclusive; ``whole``: the whole match is the value when the pattern captures nothing),
    ``("n", steps)`` for no match, ``("e", steps, message)`` or ``("k", steps)`` when the
    steps ran out."""
    matcher = Matcher(subject, pattern, steps_max)
    try:
        found = matcher.search(start, anchored)
        used = steps_max - matcher.steps_left
        if found is None:
            return (b"n", used)
        return (b"m", used, found[0], found[1], matcher.level,
                *matcher.values(found[0], found[1], whole))  # fmt: skip
    except StepsExhausted:
        return (b"k", steps_max)
    except PatternError as error:
        return (b"e", steps_max - max(matcher.steps_left, 0), str(error).encode())
