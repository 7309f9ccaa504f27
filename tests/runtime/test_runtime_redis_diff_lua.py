"""Differential test of the Lua libraries and the bounded string functions: the same scripts to
a real redis-server and to the server's planning over one state machine; every reply must be
equal, byte for byte.

Covered: ``cjson`` (arrays 1-based, ``cjson.null``, escapes, number formatting, object key order
as ``pairs`` and ``encode`` see it), ``cmsgpack``, ``struct``, ``bit``; patterns on subjects long
enough that the counted matcher (``kv.lua_patterns``) runs instead of Lua's; ``pairs`` over
string-keyed tables; an ``EVAL`` that fails to compile, inside ``MULTI`` or not, is not cached.

Left out on purpose: an error raised by one of these library functions called in tail position
(``return bit.band()``): Redis's C functions keep the script's line, the sandbox's Lua ones lose
it (``kv.scripts``); errors are compared where the call is not the script's last act.
"""

from __future__ import annotations

from hashlib import sha1

import pytest
from planned_store import PlannedStore
from test_runtime_redis_diff import REDIS_SERVER, RawRedis, redis_port

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
__all__ = ["redis_port"]  # the fixture, imported for this module's tests

DOCUMENT = (
    '{"name": "caf\\u00e9", "tags": ["a", "b", null, 1.5e3, -0.25, true, false], '
    '"nested": {"zz": 1, "b": [[], {}], "x/y": "q\\"u\\\\o\\n"}, "n": 12345678901234567890, '
    '"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9}'
)
SCRIPTS = [
    # cjson
    "return cjson.encode(cjson.decode(ARGV[1]))",
    "local t = cjson.decode(ARGV[1]) return {t.name, #t.tags, t.tags[3] == cjson.null and 1 or 0,"
    " tostring(t.tags[4]), tostring(t.n), type(t.tags[3])}",
    "local out = {} for k, v in pairs(cjson.decode(ARGV[1])) do out[#out + 1] = k end return out",
    "return cjson.encode({1, 'two', {three = 3, four = {4}}, true, false, 0.1, 1e300, -7})",
    "return cjson.encode({['\\1\\31\\127/\"\\\\'] = 'x\\0y\\t\\r\\n\\8\\12'})",
    "return cjson.encode({[1] = 'a', [2] = 'b', [4] = 'd'})",
    "return cjson.encode({[1.5] = 1, [2] = 2})",
    "return cjson.encode(string.rep('\\200', 3))",
    "return cjson.encode(cjson.null)",
    "return tostring(cjson.null)",
    "local ok, e = pcall(cjson.decode, '[1,2') return e",
    "local ok, e = pcall(cjson.decode, '{\"a\" 1}') return e",
    "local ok, e = pcall(cjson.decode, '[1],') return e",
    "local ok, e = pcall(cjson.decode, '') return e",
    "local ok, e = pcall(cjson.decode, 'nul') return e",
    "local r = cjson.encode({[1] = 1, [30] = 3}) return r",
    "local r = cjson.encode({[true] = 1}) return r",
    "return cjson.decode('\"\\\\ud83d\\\\ude00\"')",
    # cmsgpack
    "return cmsgpack.pack({1, 2, 'a'}, {k = 'v'}, 300, -5, -200, 70000, 2^40, 1.5, 0.1, true, nil)",
    "return {cmsgpack.unpack(cmsgpack.pack(1, 'x', {1, 2, {3}}, -1.25, false))}",
    "local t = cmsgpack.unpack(cmsgpack.pack(cjson.decode(ARGV[1]))) return cjson.encode(t)",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 0)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 0)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}",
    "return cmsgpack.pack(string.rep('s', 40), string.rep('t', 300), {})",
    "local ok, e = pcall(cmsgpack.unpack, '\\220\\255') return e",
    "return cmsgpack.pack({[1]=1,[3]=3}, {[0]=1}, {[1.5]=2})",
    "return cmsgpack.pack(0.5, -0.5, 1e300, 2^53, -2^63, 2^64, -33, -129, 65536, 0/0)",
    "return #cmsgpack.pack(string.rep('x', 70000), {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17})",
    "local t = {} for i = 1, 20 do t['k'..i] = i end return cmsgpack.pack(t)",
    "return {cmsgpack.unpack(cmsgpack.pack({1, nil, 3}))}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 0, 1)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 3)}",
    # struct
    "return struct.pack('>i2<I4bBhHc3sxd', -2, 7, -3, 250, -300, 65000, 'xyz', 'zero', 1.5)",
    "return {struct.unpack('>i2<I4bBhHc3sxd', struct.pack('>i2<I4bBhHc3sxd', -2, 7, -3, 250,"
    " -300, 65000, 'xyz', 'zero', 1.5))}",
    "return {struct.size('>iid'), struct.size('!4bi'), struct.size('bxxi8'), struct.size('c10')}",
    "return struct.pack('!4bi!8bd', 1, 2, 3, 4.25)",
    "return {struct.unpack('b', '\\255\\1', 2)}",
    "return struct.pack('>l', -1)",
    "return {struct.unpack('<f', struct.pack('<f', 0.1))}",
    "return struct.pack('i3', 1e10)",
    # bit
    "return {bit.band(7, 3), bit.bnot(0), bit.tohex(255), bit.tohex(-1, -4), bit.tobit(2^32 + 5),"
    " bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.bor(1, 2, 4),"
    " bit.bxor(5, 3), bit.rol(0x12345678, 8), bit.ror(1, 1), bit.bswap(0x12345678),"
    " bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-2^31 - 1), bit.tohex(1, 2), bit.band('12', 5)}",
    "local r = bit.band() return r",
    "local r = bit.band('x') return r",
    # patterns, long enough for the counted matcher
    "return {string.find(string.rep('ab', 200) .. 'hello', '(l+)(o)')}",
    "return {string.match(string.rep('k', 300) .. '=v', '(%w+)=(%w+)')}",
    "return {string.gsub(string.rep('ab ', 2000), '(%w+)', '<%1>', 5)}",
    "return {string.gsub(string.rep('ab ', 2000), '%w+', {ab = 'X'})}",
    "return {string.gsub(string.rep('a', 5000), 'a+', function(m) return #m end)}",
    "return {string.gsub(string.rep('x', 5000), '()x*', '%1')}",
    "return {string.gsub(string.rep('hello world ', 500), '%f[%w]%w+', string.upper)}",
    "return {string.gsub(string.rep('(a(b)c) ', 1000), '%b()', '#')}",
    "return {string.gsub(string.rep('abc', 100), '', '-')}",
    "return {string.gsub(string.rep('abc', 100), '^abc', 'X')}",
    "return {string.gsub(string.rep('abcabc ', 50), '(a)(b)(c)%1%2%3', '%3%%%0')}",
    "local n = 0 for k, v in string.gmatch(string.rep('k=v, ', 100), '(%w+)=(%w+)') do"
    " n = n + #k + #v end return n",
    "local out = {} for w in string.gmatch(string.rep('one two ', 1000), '%a*') do"
    " out[#out + 1] = #w end return #out",
    "return {string.find(string.rep('a.b', 100), '.b', 1, true)}",
    "return {string.find(string.rep('xy', 100), 'y', -5)}",
    "return string.format('%s|%5.2f|%d|%q', string.rep('s', 10), 3.14159, 42, 'a\\nb')",
    "return getmetatable('').__index == string",
    "return ('abc'):rep(3) .. ('X'):lower()",
    "return {string.byte(string.rep('a', 100), 1, 3)}",
    "local t = {} for i = 1, 200 do t[i] = i end table.sort(t, function(a, b) return a > b end)"
    " return {t[1], t[200], table.concat(t, ',', 1, 5)}",
    "local t = {} for i = 1, 100 do table.insert(t, 1, i) end table.remove(t, 1) return {#t, t[1]}",
    # errors of the bounded functions, where the call is not the script's last act
    "local t = {1, 'x'} table.sort(t) return 1",
    "local t = {1, 2} table.sort(t, function(a, b) error('mine') end) return 1",
    "local t = {} table.insert(t, 1, 2, 3) return 1",
    "local s = table.concat({1, {}}) return s",
    "local s = string.format('%d', 'x') return s",
    "local s = string.rep() return s",
    "local s = string.gsub('abc', '(b)', '%2') return s",
    "local s = string.gsub(string.rep('abc', 100), '(b)', '%2') return s",
    "local s = string.find(string.rep('abc', 100), '[a') return s",
    "local s = string.gsub(string.rep('ab ', 2000), '(%w+)', '%2') return s",
    "local s = string.find(string.rep('a', 5000), 'a+[a') return s",
    "local s = string.find(string.rep('a', 5000), 'a+(') return s",
    "local ok, e = pcall(string.rep) return e",
    # pairs over tables keyed by strings, numbers and booleans: Redis's order
    "local t = {10, 20, 30, a = 1, b = 2, c = 3, [2.5] = 4, [true] = 5, [-1] = 6}"
    " local out = {} for k, v in pairs(t) do out[#out + 1] = v end return out",
    "local t = {} for i = 1, 40 do t['key' .. i] = i end local out = {}"
    " for k, v in pairs(t) do out[#out + 1] = v end return out",
    "local t = {x = 1, y = 2} local k, v = next(t) return {k, v}",
]


@pytest.mark.parametrize("body", SCRIPTS)
def test_scripts_answer_as_redis(redis_port: int, body: str) -> None:
    redis = RawRedis(redis_port)
    try:
        expected = redis.call("EVAL", body, "0", DOCUMENT)
        assert PlannedStore().call("EVAL", body, "0", DOCUMENT) == expected
    finally:
        redis.close()


def test_an_eval_that_does_not_compile_is_not_cached_in_multi_or_not(redis_port: int) -> None:
    redis = RawRedis(redis_port)
    ours = PlannedStore()
    bad, good = "return (", "return 1"
    steps = [
        ["SCRIPT", "FLUSH"],
        ["EVAL", bad, "0"],
        ["SCRIPT", "EXISTS", sha1(bad.encode()).hexdigest()],
        ["MULTI"],
        ["EVAL", bad, "0"],
        ["EVAL", good, "0"],
        ["EXEC"],
        ["SCRIPT", "EXISTS", sha1(bad.encode()).hexdigest(), sha1(good.encode()).hexdigest()],
        ["EVALSHA", sha1(bad.encode()).hexdigest(), "0"],
    ]
    try:
        for command in steps:
            assert ours.call(*command) == redis.call(*command), command
    finally:
        redis.close()


DOCUMENTS = ['[Infinity]', '[NaN]', '[0x10, -0x1p4]', '[+1]', '[01]', '[1.]', '[.5]',
             '["a\\x01b"]', '[1,]', '{"a":1,}', '"\\u0000"', ' [1] ', '[-]', '["\\ud800"]',
             '"\\x"', 'nul', '["\\ud83d\\ude00"]', '[1e5, -1E-2, 123456789012345678]', '{}',
             '[[], {}, [[]]]', '{"a": {"b": {"c": null}}}', '"\xc3\xa9 raw"', '[true, false]',
             'tru', '[1 2]', '{"a" 1}', '{1: 2}', '', '   ', '["tab\\tnew\\nline\\/"]']  # fmt: skip
DECODE = (
    "local ok, value = pcall(cjson.decode, ARGV[1]) if not ok then return value end "
    "local ok2, text = pcall(cjson.encode, value) if not ok2 then return 'enc: ' .. text end "
    "return text"
)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_decode_as_redis(redis_port: int, document: str) -> None:
    """cjson's number reading is C's strtod (hexadecimal, inf, nan, leading + and zeros), and
    its refusals name the token and the character."""
    redis = RawRedis(redis_port)
    try:
        expected = redis.call("EVAL", DECODE, "0", document)
        assert PlannedStore().call("EVAL", DECODE, "0", document) == expected
    finally:
        redis.close()
