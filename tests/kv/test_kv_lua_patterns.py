"""The counted pattern matcher (``kv.lua_patterns``) against Lua's own C matcher: random small
subjects and patterns must give the same match, the same captures and the same errors; and
what the C matcher cannot bound (deep recursion, exponential backtracking) ends with a step or
depth refusal instead."""

from __future__ import annotations

import random

import lupa.lua51 as lua
import pytest

from pypaxos.kv.lua_patterns import MATCH_DEPTH_MAX, search

ATOMS = ["a", "b", ".", "%a", "%d", "%s", "%W", "[ab]", "[^a]", "[a-c]", "[%d_]", "x", "%%",
         "(", ")", "()", "%b()", "%f[%w]", "%1", "^", "$", "-", "[]]", "%", "[a"]  # fmt: skip
SUFFIXES = ["", "", "", "*", "+", "-", "?"]


def lua_find() -> object:
    """Lua's own ``string.find`` as one line: ``e|message`` or ``m|value|value...``."""
    runtime = lua.LuaRuntime(encoding=None)
    return runtime.eval(
        "function(s, p, init) local r = {pcall(string.find, s, p, init)}"
        " if not r[1] then return 'e|' .. r[2] end"
        " local out = {} for i = 2, table.maxn(r) do out[#out + 1] = tostring(r[i]) end"
        " return 'm|' .. table.concat(out, '|') end"
    )


def ours(subject: bytes, pattern: bytes, init: int) -> bytes:
    anchored = pattern.startswith(b"^")
    found = search(subject, pattern[1:] if anchored else pattern, init, anchored, False, 10**7)
    if found[0] == b"e":
        return b"e|" + found[2]  # type: ignore[operator]
    if found[0] == b"n":
        return b"m|"
    values = [found[2] + 1, found[3], *found[5:]]  # type: ignore[operator]
    return b"m|" + b"|".join(v if isinstance(v, bytes) else b"%d" % v for v in values)


@pytest.mark.parametrize("seed", range(3))
def test_the_counted_matcher_agrees_with_lua(seed: int) -> None:
    rng = random.Random(seed)
    find = lua_find()
    compared = 0
    for _ in range(3000):
        subject = "".join(rng.choice("ab1 _()x%") for _ in range(rng.randrange(8))).encode()
        pattern = "".join(
            rng.choice(ATOMS) + rng.choice(SUFFIXES) for _ in range(rng.randrange(1, 4))
        ).encode()
        if not any(c in pattern for c in b"^$*+?.([%-"):
            continue  # a plain find, not a pattern
        init = rng.randrange(len(subject) + 1)
        expected: bytes = find(subject, pattern, init + 1)  # type: ignore[operator]
        got = ours(subject, pattern, init)
        if expected.startswith(b"e|"):
            assert got.startswith(b"e|"), (subject, pattern, expected, got)
            assert expected.split(b"\n")[0].endswith(got[2:]), (subject, pattern, expected, got)
        else:
            assert got == expected, (subject, pattern, init)
        compared += 1
    assert compared > 2000


def test_backtracking_runs_out_of_steps_and_recursion_is_refused() -> None:
    subject = b"a" * 2000
    assert search(subject, b"a*a*a*a*b", 0, False, False, 100_000)[0] == b"k"
    deep = search(b"a" * 300, b"a?" * (MATCH_DEPTH_MAX + 5), 0, False, False, 10**6)
    assert deep[0] == b"e" and deep[2] == b"pattern too complex"
