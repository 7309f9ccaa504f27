"""Redis's Lua libraries in the sandbox (``cjson``, ``cmsgpack``, ``struct``, ``bit``): their
values, their refusals, and their bounds on hostile input (the differential test against
redis-server, ``tests/runtime/test_runtime_redis_diff_lua.py``, checks the bytes)."""

from __future__ import annotations

import pytest
from test_kv_scripts import Store, error_text

from pypaxos.kv.commands import Integer, Replies, Value
from pypaxos.kv.lua_libs import NESTING_MAX, bit_op, json_decode, msgpack_decode, tobit

KILLED = b"Script killed: it ran past its budget"


def ints(*values: int) -> Replies:
    return Replies(tuple(Integer(v) for v in values))


def test_cjson_round_trips_with_one_based_arrays_and_a_null_sentinel() -> None:
    body = (
        "local t = cjson.decode(ARGV[1]) "
        "return {#t, t[1], t[3] == cjson.null and 1 or 0, type(t[3]), t[2].k, cjson.encode(t)}"
    )
    result = Store().eval(body, args=('[7, {"k": "v"}, null]',))
    assert result == Replies(
        (Integer(1 + 2), Integer(7), Integer(1), Value(b"userdata"), Value(b"v"),
         Value(b'[7,{"k":"v"},null]'))
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ("return cjson.encode({[1] = 1, [30] = 3})", b"excessively sparse array"),
        ("return cjson.encode(0/0)", b"must not be NaN or Inf"),
        ("return cjson.encode({f = function() end})", b"Cannot serialise function"),
        ("local t = {} t[{}] = 1 return cjson.encode(t)", b"cannot iterate a table keyed by"),
        ("local t = {} t[{}] = 1 return cmsgpack.pack(t)", b"cannot iterate a table keyed by"),
        ("return cjson.decode('[1,2')", b"Expected comma or array end but found T_END"),
        ("return cmsgpack.unpack('\\220\\255\\255')", b"Missing bytes in input."),
        ("return cmsgpack.unpack('\\193')", b"Bad data format in input."),
        ("return struct.unpack('>i4', 'ab')", b"data string too short"),
        ("return struct.size('s')", b"option 's' has no fixed size"),
        ("return bit.band()", b"bad argument #1 to 'band' (number expected, got no value)"),
    ],
)
def test_library_refusals(body: str, refusal: bytes) -> None:
    assert refusal in error_text(Store().eval(body))


def test_hostile_input_is_bounded_by_depth_and_by_the_budget() -> None:
    deep_json = "[" * (NESTING_MAX + 5) + "]" * (NESTING_MAX + 5)
    assert json_decode(deep_json.encode(), 10**6)[0] == b"e"
    text = error_text(Store().eval("return cjson.decode(ARGV[1])", args=(deep_json,)))
    assert b"Found too many nested data structures" in text
    deep_msgpack = b"\x91" * (NESTING_MAX + 5) + b"\x00"
    assert msgpack_decode(deep_msgpack, 0, -1, 10**6)[0] == b"e"
    # An array that claims four billion items is missing bytes, not a memory blow-up.
    assert msgpack_decode(b"\xdd\xff\xff\xff\xff", 0, -1, 10**6) == (
        b"e",
        b"Missing bytes in input.",
    )
    many = "[" + "0," * 600_000 + "0]"
    assert KILLED in error_text(Store().eval("return #cjson.decode(ARGV[1])", args=(many,)))
    assert json_decode(many.encode(), 1000) == (b"k",)  # stops at its item budget
    encode_loop = (
        "local t = {} for i = 1, 1000 do t[i] = i end for i = 1, 1000 do cjson.encode(t) end"
    )
    assert KILLED in error_text(Store().eval(encode_loop))


def test_struct_packs_and_unpacks_as_the_c_library() -> None:
    body = (
        "local s = struct.pack('>i2<I4bc3s', -2, 7, 65, 'xyz', 'z') "
        "local a, b, c, d, e, nxt = struct.unpack('>i2<I4bc3s', s) "
        "return {#s, a, b, c, d, e, nxt, struct.size('!4bi')}"
    )
    result = Store().eval(body)
    assert result == Replies(
        (Integer(2 + 4 + 1 + 3 + 2), Integer(-2), Integer(7), Integer(65), Value(b"xyz"),
         Value(b"z"), Integer(13), Integer(8))
    )  # fmt: skip


def test_bit_matches_luabitop_on_edge_values() -> None:
    assert tobit(2**32 + 5) == 5 and tobit(2**31) == -(2**31) and tobit(-1) == -1
    assert tobit(1.5) == 2 and tobit(2.5) == 2  # round half to even, as the FPU does
    assert bit_op(b"tohex", -1, -4) == b"FFFF" and bit_op(b"tohex", 255) == b"000000ff"
    assert (
        bit_op(b"rol", 0x12345678, 8) == 0x34567812 and bit_op(b"bswap", 0x12345678) == 0x78563412
    )
    body = "return {bit.bor(1, 2, 4), bit.bxor(5, 3), bit.lshift(1, 33), bit.arshift(-8, 1)}"
    assert Store().eval(body) == ints(7, 6, 2, -4)


def test_cmsgpack_round_trips_and_limits_nesting_on_encode() -> None:
    body = (
        "local a, b, c = cmsgpack.unpack(cmsgpack.pack(1.5, {1, 2, 'x'}, {k = true})) "
        "local deep = {} local t = deep for i = 1, 20 do t.n = {} t = t.n end "
        "local d = cmsgpack.unpack(cmsgpack.pack(deep)) local depth = 0 "
        "while type(d) == 'table' do d = d.n depth = depth + 1 end "
        "return {tostring(a), b[3], c.k and 1 or 0, depth, "
        "select('#', cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2))}"
    )
    assert Store().eval(body) == Replies(
        (Value(b"1.5"), Value(b"x"), Integer(1), Integer(16), Integer(3))
    )


def test_decoded_objects_iterate_in_the_same_order_on_every_replica() -> None:
    body = (
        "local out = {} for k in pairs(cjson.decode(ARGV[1])) do out[#out + 1] = k end "
        "return table.concat(out, ',')"
    )
    document = "{" + ",".join(f'"key{i}": {i}' for i in range(50)) + "}"
    first, second = Store().eval(body, args=(document,)), Store().eval(body, args=(document,))
    assert first == second and isinstance(first, Value) and first.value.count(b",") == 49
