"""What the sandbox bounds beyond counting Lua instructions: C library calls (patterns,
``string.rep``, ``table.sort``/``concat``...), iteration order, and the script cache's refusal
of bodies that do not compile."""

from __future__ import annotations

import pytest
from test_kv_scripts import Store, error_text

from pypaxos.kv.collection_ops import SAdd
from pypaxos.kv.commands import ErrorReply, Eval, Integer, Replies, ScriptExists, Value
from pypaxos.kv.script_cache import sha1_hex

KILLED = b"Script killed: it ran past its budget"


@pytest.mark.parametrize(
    "body",
    [
        "return string.find(string.rep('a', 3000), 'a*a*a*a*b')",
        "return string.match(string.rep('a', 3000), '(a*)(a*)(a*)b')",
        "return string.gsub(string.rep('a', 3000), 'a-a-a-b', 'x')",
        "for w in string.gmatch(string.rep('a', 3000), 'a*a*a*b') do end",
        "return (string.rep('a', 3000)):find('a*a*a*b')",  # a string's method is the same
        "return string.rep('x', 2^30)",
        "return ('x'):rep(2^30)",
        "local t = {} for i = 1, 100000 do t[i] = i end for i = 1, 100 do table.sort(t) end",
        "local t = {} for i = 1, 1000 do t[i] = 'xxxxxxxx' end "
        "for i = 1, 10000 do table.concat(t) end",
        "local t = {} for i = 1, 20000 do t[i] = i end "
        "for i = 1, 20000 do table.insert(t, 1, i) end",
        "local s = string.rep('x', 100000) for i = 1, 10000 do s:upper() end",
        "local s = string.rep('x', 100000) for i = 1, 10000 do redis.sha1hex(s) end",
    ],
)
def test_a_single_c_call_counts_its_work_and_the_budget_stops_it(body: str) -> None:
    assert KILLED in error_text(Store().eval(body))


def test_a_pattern_too_deep_for_the_c_stack_is_refused_not_crashed() -> None:
    body = "return string.find(string.rep('a', 300000), string.rep('a?', 300000))"
    assert b"pattern too complex" in error_text(Store().eval(body))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return {string.find('hello world', 'o w')}", [5, 7]),
        ("return {string.find('hello', 'l+')}", [3, 4]),
        ("return {string.find(string.rep('x', 500) .. 'hello', '(l+)(o)')}",
         [503, 505, b"ll", b"o"]),
        ("return {string.match(string.rep('k', 300) .. '=v', '(%w+)=(%w+)')}",
         [b"k" * 300, b"v"]),
        ("return {string.gsub(string.rep('ab', 300), '(a)(b)', '%2%1', 2)}",
         [b"baba" + b"ab" * 298, 2]),
        ("return {string.gsub(string.rep('ab ', 2000), '%w+', {ab = 'X'})}",
         [b"X " * 2000, 2000]),
        ("return {string.gsub(string.rep('a', 5000), 'a+', function(m) return #m end)}",
         [b"5000", 1]),
        ("local n = 0 for a, b in string.gmatch(string.rep('k=v,', 300), '(%w+)=(%w+)') do"
         " n = n + #a + #b end return n", 600),
        ("return {string.gsub(string.rep('x', 5000), '()x*', '%1')}", [b"15001", 2]),
    ],
)  # fmt: skip
def test_long_subjects_match_as_lua_matches_them(body: str, expected: object) -> None:
    """Subjects long enough that the counted matcher runs instead of Lua's C one (the C one's
    bound would not fit the budget)."""
    result = Store().eval(body)
    if isinstance(expected, list):
        assert result == Replies(
            tuple(Value(v) if isinstance(v, bytes) else Integer(v) for v in expected)
        )
    else:
        assert result == Integer(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        "local t = {} t[{}] = 1 for k in pairs(t) do redis.call('incr', 'n') end",
        "local t = {a = 1} t[function() end] = 2 return next(t)",
        "local t = {} t[{}] = 1 t.b = 2 table.foreach(t, function() end)",
        "local t = {x = 1} local step = pairs({}) t[{}] = 1 return step(t, nil)",
    ],
)
def test_iterating_a_table_keyed_by_tables_or_functions_is_refused_before_any_step(
    body: str,
) -> None:
    store = Store()
    assert b"cannot iterate a table keyed by a" in error_text(store.eval(body))
    assert store.machine.get(b"n") is None  # refused before the loop's first write


def test_tables_keyed_by_strings_and_numbers_iterate_as_before() -> None:
    body = (
        "local t = {10, 20, a = 1, b = 2, [2.5] = 3, [true] = 4} local n = 0 "
        "for k, v in pairs(t) do n = n + v end local m = 0 "
        "for k, v in next, t do m = m + v end return {n, m}"
    )
    assert Store().eval(body) == Replies((Integer(40), Integer(40)))


def test_an_eval_that_does_not_compile_is_not_cached() -> None:
    store = Store()
    body = b"return ("
    assert b"Error compiling script" in error_text(store.run(Eval(body, b"", (), ())))
    assert store.run(ScriptExists((sha1_hex(body),))) == Replies((Integer(0),))
    assert store.run(Eval(b"return 7", b"", (), ())) == Integer(7)
    assert store.run(ScriptExists((sha1_hex(b"return 7"),))) == Replies((Integer(1),))
    failing = b"error('at run time')"  # compiles: cached even though it fails, as in Redis
    store.run(Eval(failing, b"", (), ()))
    assert store.run(ScriptExists((sha1_hex(failing),))) == Replies((Integer(1),))


def test_commands_whose_work_grows_with_their_collections_count_each_element() -> None:
    store = Store()
    members = tuple(b"m%d" % i for i in range(50_000))
    store.run(SAdd(b"big1", members))
    store.run(SAdd(b"big2", tuple(b"n%d" % i for i in range(50_000))))
    store.run(SAdd(b"small1", members[:10]))
    store.run(SAdd(b"small2", members[5:15]))
    # An empty intersection replies in a few bytes, but visits 100,000 members each time: the
    # budget runs out after about 100 calls, not 5,000.
    body = "for i = 1, 5000 do redis.call('sinter', KEYS[1], KEYS[2]) end return 1"
    assert KILLED in error_text(store.eval(body, "big1", "big2"))
    stored = "for i = 1, 5000 do redis.call('sinterstore', 'out', KEYS[1], KEYS[2]) end return 1"
    assert KILLED in error_text(store.eval(stored, "big1", "big2"))
    assert store.eval(body, "small1", "small2") == Integer(1)  # small sets: well within
    ranged = "for i = 1, 5000 do redis.call('lrange', KEYS[1], 0, 0) end return 1"
    fill = (
        "local t = {} for i = 1, 5000 do t[i] = i end "
        "return redis.call('rpush', KEYS[1], unpack(t))"
    )
    assert store.eval(fill, "list") == Integer(5000)
    assert KILLED in error_text(store.eval(ranged, "list"))


OBSERVABLE = [
    "return {tostring({}), tostring(function() end), tostring(cjson.null), tostring(redis.call)}",
    "local ok, e = pcall(error, {}) return tostring(e)",
    "local t = {} for i = 1, 30 do t['k' .. i * 7] = i end local out = {} "
    "for k, v in pairs(t) do out[#out + 1] = k end return out",
    "local out = {} for k in pairs(cjson.decode(ARGV[1])) do out[#out + 1] = k end return out",
    "local t = {1, 2, nil, 4, [6] = 6, [10] = 10} return #t",
    "return {math.random(1000), math.random(1000)}",
    "local t = setmetatable({}, {__mode = 'v'}) for i = 1, 1000 do t[i] = {} end "
    "local s = {} for i = 1, 20000 do s[i] = {i} end local n = 0 "
    "for k in pairs(t) do n = n + 1 end return n",
]


def test_what_a_script_observes_does_not_depend_on_the_replicas_heap() -> None:
    """Two replicas run the same scripts at the same log positions, the second after its
    process allocated and freed other Lua states (so addresses differ): the same replies."""
    import lupa.lua51 as lua

    document = '{"zeta": 1, "alpha": 2, "mid": 3, "beta": 4, "omega": 5}'
    first = [Store().eval(body, args=(document,)) for body in OBSERVABLE]
    ballast = [lua.LuaRuntime().eval("{}") for _ in range(50)]
    second = [Store().eval(body, args=(document,)) for body in OBSERVABLE]
    del ballast
    assert first == second
    assert all(not isinstance(result, ErrorReply) for result in first), first
