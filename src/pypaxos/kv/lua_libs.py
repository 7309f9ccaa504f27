"""The Lua libraries Redis gives scripts beyond Lua's own: ``cjson``, ``cmsgpack``, ``struct``
and ``bit``, with the semantics a script observes in Redis 7.0 (``kv.scripts`` wires them).

Their byte work is done here, in Python, and counted by the sandbox before it starts (bytes in,
tokens at most): a single call cannot outrun the script's budget.  Decoding never builds Lua
tables here: a decoder returns a flat stream (one kind byte per item, and the values), and the
sandbox's ``build`` makes the tables in Lua, counted by the debug hook, inserting keys in
document order into fresh tables as Redis's C decoders do, so that ``pairs`` then visits them
in Redis's order.  Nesting is bounded (``NESTING_MAX``) without recursion here, so hostile input
costs neither the Python stack nor more memory than its counted size.

Encoding reads Lua tables through ``lupa`` (``lua_next`` order, as Redis's encoders), refusing a
table keyed by a table or function (its order differs between replicas, see ``kv.scripts``).

Errors are returned, never raised: ``(b"e", message)``; the sandbox raises them in the script.
"""

from __future__ import annotations

import math
import re
import struct as pystruct
from typing import Any

import lupa.lua51 as lua

NESTING_MAX = 1000  # cjson's decode and encode depth (cjson's default), cmsgpack's decode depth
MSGPACK_ENCODE_NESTING_MAX = 16  # deeper tables encode as nil, as lua_cmsgpack does
MAGIC_ROUNDING = 6755399441055744.0  # 2^52 + 2^51: LuaBitOp's double -> int32 normalisation

RESULTS_MAX = 7_000  # values one call may return (Lua's C stack holds about 8,000)

Result = tuple[object, ...]
UNORDERED = (
    b"cannot iterate a table keyed by a %s: its order differs between replicas"
    b" (use string or number keys)"
)


def _error(message: str | bytes) -> Result:
    return (b"e", message.encode() if isinstance(message, str) else message)


# -- bit (LuaBitOp 1.0.2) ----------------------------------------------------------------------


def tobit(x: float) -> int:
    """A Lua number as LuaBitOp sees it: rounded into a signed 32-bit integer, modulo 2^32."""
    bits = pystruct.unpack("<Q", pystruct.pack("<d", float(x) + MAGIC_ROUNDING))[0]
    low: int = bits & 0xFFFFFFFF
    return low - (1 << 32) if low & 0x80000000 else low


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def bit_op(name: bytes, *numbers: float) -> int | bytes:
    """One ``bit.*`` call on numbers the sandbox has checked."""
    first = tobit(numbers[0])
    if name == b"tobit":
        return first
    if name == b"bnot":
        return _signed(~first)
    if name in (b"band", b"bor", b"bxor"):
        result = first
        for number in numbers[1:]:
            other = tobit(number)
            if name == b"band":
                result &= other
            elif name == b"bor":
                result |= other
            else:
                result ^= other
        return _signed(result)
    if name == b"bswap":
        return _signed(int.from_bytes((first & 0xFFFFFFFF).to_bytes(4, "little"), "big"))
    if name == b"tohex":
        return _tohex(first, tobit(numbers[1]) if len(numbers) > 1 else 8)
    shift = tobit(numbers[1]) & 31
    unsigned = first & 0xFFFFFFFF
    if name == b"lshift":
        return _signed(unsigned << shift)
    if name == b"rshift":
        return _signed(unsigned >> shift)
    if name == b"arshift":
        return _signed(first >> shift)
    if name == b"rol":
        return _signed((unsigned << shift) | (unsigned >> (32 - shift)))
    return _signed((unsigned >> shift) | (unsigned << (32 - shift)))  # ror


def _tohex(value: int, digits: int) -> bytes:
    upper = digits < 0
    digits = min(abs(digits), 8)
    text = b"%08x" % (value & 0xFFFFFFFF)
    if upper:
        text = text.upper()
    return text[8 - digits :] if digits > 0 else b""


# -- struct (Roberto Ierusalimschy's struct library, as Redis builds it) -----------------------

_NATIVE_SIZES = {b"b": 1, b"B": 1, b"h": 2, b"H": 2, b"l": 8, b"L": 8, b"T": 8, b"f": 4,
                 b"d": 8, b"x": 1}  # fmt: skip
_INT_SIZE_MAX = 32
_ALIGN_MAX = 8


class _StructError(Exception):
    pass


class _Format:
    """A struct format string read item by item with its endianness and alignment."""

    def __init__(self, fmt: bytes) -> None:
        self.fmt = fmt
        self.at = 0
        self.little = True
        self.align = 1

    def number(self, default: int) -> int:
        if self.at >= len(self.fmt) or not self.fmt[self.at : self.at + 1].isdigit():
            return default
        value = 0
        while self.at < len(self.fmt) and self.fmt[self.at : self.at + 1].isdigit():
            value = value * 10 + self.fmt[self.at] - 48
            if value > 2**31 - 1:
                raise _StructError("integral size overflow")
            self.at += 1
        return value

    def next(self) -> tuple[bytes, int] | None:
        """The next option and its size, or ``None`` at the end."""
        if self.at >= len(self.fmt):
            return None
        option = self.fmt[self.at : self.at + 1]
        self.at += 1
        if option in (b"i", b"I"):
            size = self.number(4)
            if size > _INT_SIZE_MAX:
                raise _StructError(f"integral size {size} is larger than limit of {_INT_SIZE_MAX}")
            return option, size
        if option == b"c":
            return option, self.number(1)
        return option, _NATIVE_SIZES.get(option, 0)

    def padding(self, position: int, option: bytes, size: int) -> int:
        if size == 0 or option == b"c":
            return 0
        size = min(size, self.align)
        return (size - (position & (size - 1))) & (size - 1)

    def control(self, option: bytes) -> None:
        if option == b" ":
            return
        if option == b">":
            self.little = False
        elif option == b"<":
            self.little = True
        elif option == b"!":
            align = self.number(_ALIGN_MAX)
            if align == 0 or align & (align - 1):
                raise _StructError(f"alignment {align} is not a power of 2")
            self.align = align
        else:
            raise _StructError(f"invalid format option '{option.decode('latin-1')}'")


def _to_uint64(number: float) -> int:
    if not math.isfinite(number):
        return 0 if math.isnan(number) else (1 << 63)
    return int(number) & 0xFFFFFFFFFFFFFFFF


def struct_pack(fmt: bytes, *args: object) -> Result:
    """``struct.pack(fmt, ...)``: ``(b"ok", packed)`` or an error (``(b"a", index, text)`` for a
    bad argument)."""
    parsed = _Format(fmt)
    out = bytearray()
    index = 0
    try:
        while (item := parsed.next()) is not None:
            option, size = item
            out += b"\0" * parsed.padding(len(out), option, size)
            if option in b"bBhHlLTiI" and option != b"":
                value = _arg_number(args, index)
                if value is None:
                    return (b"a", index + 2, b"number")
                index += 1
                raw = _to_uint64(value).to_bytes(8, "little")
                packed = (raw + b"\0" * size)[:size] if size > 8 else raw[:size]
                out += packed if parsed.little else packed[::-1]
            elif option == b"x":
                out += b"\0"
            elif option in (b"f", b"d"):
                value = _arg_number(args, index)
                if value is None:
                    return (b"a", index + 2, b"number")
                index += 1
                code = ("<" if parsed.little else ">") + ("f" if option == b"f" else "d")
                out += _pack_float(code, value)
            elif option in (b"c", b"s"):
                text = _arg_string(args, index)
                if text is None:
                    return (b"a", index + 2, b"string")
                if size == 0 or option == b"s":
                    size = len(text) if option == b"c" or size == 0 else size
                if option == b"s":
                    size = len(text)
                if len(text) < size:
                    return (b"r", index + 2, b"string too short")
                index += 1
                out += text[:size]
                if option == b"s":
                    out += b"\0"
                    size += 1
            else:
                parsed.control(option)
    except _StructError as error:
        return _error(str(error))
    return (b"ok", bytes(out))


def _pack_float(code: str, value: float) -> bytes:
    try:
        return pystruct.pack(code, value)
    except OverflowError:  # C's double -> float conversion: out of range is infinity
        return pystruct.pack(code, math.copysign(math.inf, value))


def _arg_number(args: tuple[object, ...], index: int) -> float | None:
    """A number argument (a numeric string too, as ``luaL_checknumber``; the sandbox has made
    such strings numbers already)."""
    if index >= len(args):
        return None
    value = args[index]
    if isinstance(value, bytes):
        return lua_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def lua_number(text: bytes) -> float | None:
    """A string as Lua 5.1 reads a number from it (``strtod``, or hexadecimal), or ``None``."""
    if b"_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    stripped = text.strip()
    if stripped[:2].lower() == b"0x":
        try:
            return float(int(stripped[2:], 16))
        except ValueError:
            return None
    return None


def _arg_string(args: tuple[object, ...], index: int) -> bytes | None:
    """A string argument (a number too, formatted as Lua does)."""
    if index >= len(args):
        return None
    value = args[index]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return b"%.14g" % value
    return value if isinstance(value, bytes) else None


def struct_unpack(fmt: bytes, data: bytes, start: int) -> Result:
    """``struct.unpack(fmt, data, init)``: ``(b"ok", values..., next position)`` or an error."""
    parsed = _Format(fmt)
    position = start - 1
    values: list[object] = []
    try:
        while (item := parsed.next()) is not None:
            option, size = item
            position += parsed.padding(position, option, size)
            if size > len(data) or position > len(data) - size:
                return (b"r", 2, b"data string too short")
            if option in b"bBhHlLTiI":
                values.append(_unpack_integer(data[position : position + size], option, parsed))
            elif option in (b"f", b"d"):
                code = ("<" if parsed.little else ">") + ("f" if option == b"f" else "d")
                values.append(pystruct.unpack(code, data[position : position + size])[0])
            elif option == b"c":
                if size == 0:
                    if not values or not isinstance(values[-1], float):
                        return _error("format 'c0' needs a previous size")
                    size = int(values.pop())  # type: ignore[call-overload]
                    if size > len(data) or position > len(data) - size:
                        return (b"r", 2, b"data string too short")
                values.append(data[position : position + size])
            elif option == b"s":
                end = data.find(b"\0", position)
                if end < 0:
                    return _error("unfinished string in data")
                size = end - position + 1
                values.append(data[position:end])
            elif option != b"x":
                parsed.control(option)
            position += size
    except _StructError as error:
        return _error(str(error))
    if len(values) > RESULTS_MAX:
        return _error("too many results")
    return (b"ok", *values, float(position + 1))


def _unpack_integer(raw: bytes, option: bytes, parsed: _Format) -> float:
    if parsed.little:
        raw = raw[::-1]
    value = 0
    for byte in raw:  # only the low 64 bits survive, as in the C library's 64-bit integer
        value = ((value << 8) | byte) & 0xFFFFFFFFFFFFFFFF
    if option.islower():
        shift = (len(raw) * 8 - 1) % 64
        mask = (0xFFFFFFFFFFFFFFFF << shift) & 0xFFFFFFFFFFFFFFFF
        if value & mask:
            value |= mask
        if value & (1 << 63):
            value -= 1 << 64
    return float(value)


def struct_size(fmt: bytes) -> Result:
    parsed = _Format(fmt)
    position = 0
    try:
        while (item := parsed.next()) is not None:
            option, size = item
            position += parsed.padding(position, option, size)
            if option == b"s":
                return (b"r", 1, b"option 's' has no fixed size")
            if option == b"c" and size == 0:
                return (b"r", 1, b"option 'c0' has no fixed size")
            if not option.isalnum():
                parsed.control(option)
            position += size
    except _StructError as error:
        return _error(str(error))
    return (b"ok", float(position))


# -- decoders' output: a flat stream the sandbox builds tables from ----------------------------
# kinds: "a" begins an array, "o" an object (keys and values alternate), "e" ends one; "v" a
# value from the values list; "z" the null sentinel; "l" nil; "t"/"f" booleans.


class _ItemsExhausted(Exception):
    pass


class _Stream:
    __slots__ = ("items_max", "kinds", "values")

    def __init__(self, items_max: int) -> None:
        self.kinds = bytearray()
        self.values: list[object] = []
        self.items_max = items_max

    def add(self, kind: bytes) -> None:
        self.kinds += kind
        if len(self.kinds) > self.items_max:
            raise _ItemsExhausted

    def value(self, value: object) -> None:
        self.add(b"v")
        self.values.append(value)

    def result(self) -> Result:
        return (b"ok", bytes(self.kinds), self.values)


# -- cjson ------------------------------------------------------------------------------------

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_NUMBER_STARTS = frozenset(b"-+0123456789iInN")
_STRTOD = re.compile(
    rb"[+-]?(?:"
    rb"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rb"|(?i:infinity|inf|nan))"
)
_STRING = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(rb"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f",
                   b"n": b"\n", b"r": b"\r", b"t": b"\t"}  # fmt: skip
_TOKEN_NAMES = {ord("{"): "T_OBJ_BEGIN", ord("}"): "T_OBJ_END", ord("["): "T_ARR_BEGIN",
                ord("]"): "T_ARR_END", ord('"'): "T_STRING", ord(":"): "T_COLON",
                ord(","): "T_COMMA", ord("t"): "T_BOOLEAN", ord("f"): "T_BOOLEAN",
                ord("n"): "T_NULL"}  # fmt: skip


class _JsonError(Exception):
    pass


def json_token_bound(data: bytes) -> int:
    """An upper bound on the items ``json_decode`` can make of ``data`` (what it is charged)."""
    return sum(data.count(c) for c in (b",", b"[", b"{", b":")) + 1


def json_decode(data: bytes, items_max: int) -> Result:
    """``cjson.decode``: the stream of the document, an error as cjson words it, or
    ``(b"k",)`` past ``items_max`` items (the budget is spent)."""
    stream = _Stream(items_max)
    try:
        _json_document(data, stream)
    except _JsonError as error:
        return _error(str(error))
    except _ItemsExhausted:
        return (b"k",)
    return stream.result()


def _token_name(data: bytes, at: int) -> str:
    if at >= len(data):
        return "T_END"
    c = data[at]
    if c in _TOKEN_NAMES:
        return _TOKEN_NAMES[c]
    if c == ord("-") or 48 <= c <= 57:
        return "T_NUMBER"
    return "invalid token"


def _expected(what: str, data: bytes, at: int) -> _JsonError:
    return _JsonError(f"Expected {what} but found {_token_name(data, at)} at character {at + 1}")


def _json_document(data: bytes, stream: _Stream) -> None:
    """The document's items into ``stream``; a stack of open containers (``True``: an
    object) instead of recursion."""
    open_objects: list[bool] = []
    at = _skip(data, 0)
    state = "value"
    while True:
        if state == "value":
            at, opened = _json_value(data, at, stream)
            at = _skip(data, at)
            state = "after"
            if opened is not None:
                if len(open_objects) >= NESTING_MAX:
                    raise _JsonError(
                        f"Found too many nested data structures ({NESTING_MAX + 1}) "
                        f"at character {at}"
                    )
                open_objects.append(opened)
                closing = ord("}") if opened else ord("]")
                if at < len(data) and data[at] == closing:
                    at = _close(data, stream, open_objects, at)
                else:
                    state = "key" if opened else "value"
        elif state == "key":
            if at >= len(data) or data[at] != ord('"'):
                raise _expected("object key string", data, at)
            at = _skip(data, _json_value(data, at, stream)[0])
            if at >= len(data) or data[at] != ord(":"):
                raise _expected("colon", data, at)
            at = _skip(data, at + 1)
            state = "value"
        elif not open_objects:
            if at < len(data):
                raise _expected("the end", data, at)
            return
        else:
            is_object = open_objects[-1]
            closing = ord("}") if is_object else ord("]")
            if at < len(data) and data[at] == closing:
                at = _close(data, stream, open_objects, at)
            elif at < len(data) and data[at] == ord(","):
                at = _skip(data, at + 1)
                state = "key" if is_object else "value"
            else:
                raise _expected("comma or object end" if is_object else "comma or array end",
                                data, at)  # fmt: skip


def _skip(data: bytes, at: int) -> int:
    match = _WHITESPACE.match(data, at)
    assert match is not None
    return match.end()


def _close(data: bytes, stream: _Stream, open_objects: list[bool], at: int) -> int:
    stream.add(b"e")
    open_objects.pop()
    return _skip(data, at + 1)


def _json_value(data: bytes, at: int, stream: _Stream) -> tuple[int, bool | None]:
    """One value at ``at``: its end, and whether it opened an object (True), an array (False)
    or nothing (None)."""
    if at >= len(data):
        raise _expected("value", data, at)
    c = data[at]
    if c == ord("{"):
        stream.add(b"o")
        return at + 1, True
    if c == ord("["):
        stream.add(b"a")
        return at + 1, False
    if c == ord('"'):
        match = _STRING.match(data, at)
        if match is None:
            raise _JsonError(f"Expected value but found invalid token at character {at + 1}")
        stream.value(_unescape(match.group(1), match.start(1)))
        return match.end(), None
    for word, kind in ((b"true", b"t"), (b"false", b"f"), (b"null", b"z")):
        if data.startswith(word, at):
            stream.add(kind)
            return at + len(word), None
    if c in _NUMBER_STARTS:
        return _json_number(data, at, stream), None
    if c in b"tf":  # a literal misspelt
        raise _JsonError(f"Expected value but found invalid token at character {at + 1}")
    raise _expected("value", data, at)


def _json_number(data: bytes, at: int, stream: _Stream) -> int:
    """A number as cjson reads one: whatever C's ``strtod`` takes from ``at`` (hexadecimal,
    ``inf``, ``nan``, a leading ``+`` or zeros included: Redis's cjson accepts them)."""
    match = _STRTOD.match(data, at)
    if match is None or not match.group():
        kind = "invalid token" if data[at] in b"iInN" else "invalid number"
        raise _JsonError(f"Expected value but found {kind} at character {at + 1}")
    text = match.group()
    hexadecimal = text.lstrip(b"+-")[:2].lower() == b"0x"
    stream.value(float.fromhex(text.decode()) if hexadecimal else float(text))
    return match.end()


def _unescape(raw: bytes, offset: int) -> bytes:
    """A JSON string's bytes (between the quotes, at ``offset`` in the document), its escapes
    replaced; a surrogate pair's two escapes make one UTF-8 character, as in cjson."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    position = 0
    escapes = list(_ESCAPE.finditer(raw))
    index = 0
    while index < len(escapes):
        match = escapes[index]
        out += raw[position : match.start()]
        where = offset + match.start() + 1
        escape = match.group(1)
        if len(escape) == 1:
            if escape not in _SIMPLE_ESCAPES:
                raise _JsonError(
                    f"Expected value but found invalid escape code at character {where}"
                )
            out += _SIMPLE_ESCAPES[escape]
        else:
            code = int(escape[1:], 16)
            if 0xDC00 <= code <= 0xDFFF:
                raise _bad_unicode(where)
            if 0xD800 <= code <= 0xDBFF:
                following = escapes[index + 1] if index + 1 < len(escapes) else None
                if following is None or following.start() != match.end():
                    raise _bad_unicode(where)
                low_escape = following.group(1)
                low = int(low_escape[1:], 16) if len(low_escape) == 5 else -1
                if not 0xDC00 <= low <= 0xDFFF:
                    raise _bad_unicode(where)
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                index += 1
                match = following
            out += chr(code).encode()
        position = match.end()
        index += 1
    out += raw[position:]
    return bytes(out)


def _bad_unicode(where: int) -> _JsonError:
    return _JsonError(f"Expected value but found invalid unicode escape code at character {where}")


_JSON_ESCAPES = {i: b"\\u%04x" % i for i in range(32)} | {
    8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r", 34: b'\\"', 92: b"\\\\",
    47: b"\\/", 127: b"\\u007f",
}  # fmt: skip
_JSON_SPECIAL = re.compile(rb'[\x00-\x1f"\\/\x7f]')


def json_string(text: bytes) -> bytes:
    return b'"' + _JSON_SPECIAL.sub(lambda m: _JSON_ESCAPES[m.group()[0]], text) + b'"'


def json_number(number: float) -> bytes | None:
    if not math.isfinite(number):
        return None
    return b"%.14g" % number


def json_encode(value: object, budget: int) -> Result:
    """``cjson.encode``: the text, an error as cjson words it, or ``(b"k",)`` past ``budget``
    items (the budget is spent)."""
    out: list[bytes] = []
    # A stack of work: a value to encode at a depth, or a literal to append.
    work: list[tuple[object, int] | bytes] = [(value, 0)]
    items = 0
    while work:
        item = work.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        current, depth = item
        items += 1
        if items > budget:
            return (b"k",)
        if isinstance(current, bytes):
            out.append(json_string(current))
        elif isinstance(current, bool):
            out.append(b"true" if current else b"false")
        elif isinstance(current, (int, float)):
            text = json_number(float(current))
            if text is None:
                return _error("Cannot serialise number: must not be NaN or Inf")
            out.append(text)
        elif current is None or _lua_type(current) == "userdata":  # cjson.null
            out.append(b"null")
        elif _lua_type(current) == "table":
            if depth >= NESTING_MAX:
                return _error(f"Cannot serialise, excessive nesting ({NESTING_MAX + 1})")
            refused = _json_table(current, depth, work, out)
            if refused is not None:
                return refused
        else:
            return _error(f"Cannot serialise {_lua_type(current)}: type not supported")
    return (b"ok", b"".join(out), items)


def _json_table(
    table: Any, depth: int, work: list[tuple[object, int] | bytes], out: list[bytes]
) -> Result | None:
    entries = list(table.items())
    for key, _ in entries:
        if not isinstance(key, (bytes, int, float)):  # bool is an int
            return _error(UNORDERED % _lua_type(key).encode())
    length = _array_length(entries)
    if length == -2:
        return _error("Cannot serialise table: excessively sparse array")
    pending: list[tuple[object, int] | bytes] = []
    if length > 0:
        out.append(b"[")
        for index in range(1, length + 1):
            if index > 1:
                pending.append(b",")
            pending.append((table[index], depth + 1))
        pending.append(b"]")
    else:
        out.append(b"{")
        for position, (key, item) in enumerate(entries):
            if isinstance(key, bytes):
                shown = json_string(key)
            elif isinstance(key, (int, float)) and not isinstance(key, bool):
                text = json_number(float(key))
                if text is None:
                    return _error("Cannot serialise number: must not be NaN or Inf")
                shown = b'"' + text + b'"'
            else:
                kind = "boolean" if isinstance(key, bool) else _lua_type(key)
                return _error(f"Cannot serialise {kind}: table key must be a number or string")
            pending.append((b"," if position else b"") + shown + b":")
            pending.append((item, depth + 1))
        pending.append(b"}")
    work.extend(reversed(pending))
    return None


def _array_length(entries: list[tuple[object, object]]) -> int:
    """cjson's array test: the largest key if every key is a positive integer (-1: not an
    array; -2: an excessively sparse one, past twice its items and over 10)."""
    largest = 0
    for key, _ in entries:
        if isinstance(key, bool) or not isinstance(key, (int, float)):
            return -1
        if key < 1 or key != math.floor(key):
            return -1
        largest = max(largest, int(key))
    if largest > len(entries) * 2 and largest > 10:
        return -2
    return largest


def _lua_type(value: object) -> str:
    kind: str = lua.lua_type(value) or "userdata"
    return kind


# -- cmsgpack ----------------------------------------------------------------------------------


def msgpack_encode(values: Any, count: int, budget: int) -> Result:
    """``cmsgpack.pack(...)``: each of the ``count`` values (a Lua table of the arguments) in
    turn, concatenated."""
    out = bytearray()
    work: list[tuple[Any, int]] = [(values[index], 0) for index in range(int(count), 0, -1)]
    items = 0
    while work:
        current, depth = work.pop()
        items += 1
        if items > budget:
            return (b"k",)
        if isinstance(current, bool):
            out += b"\xc3" if current else b"\xc2"
        elif isinstance(current, (int, float)):
            out += _msgpack_number(float(current))
        elif isinstance(current, bytes):
            out += _msgpack_length(len(current), 0xA0, 31, b"\xd9", b"\xda", b"\xdb") + current
        elif (
            current is not None
            and _lua_type(current) == "table"
            and depth < MSGPACK_ENCODE_NESTING_MAX
        ):
            entries = list(current.items())
            for key, _ in entries:
                if not isinstance(key, (bytes, int, float)):
                    return _error(UNORDERED % _lua_type(key).encode())
            length = _msgpack_array_length(entries)
            nested: list[tuple[Any, int]] = []
            if length >= 0:
                out += _msgpack_length(length, 0x90, 15, None, b"\xdc", b"\xdd")
                nested = [(current[index], depth + 1) for index in range(1, length + 1)]
            else:
                out += _msgpack_length(len(entries), 0x80, 15, None, b"\xde", b"\xdf")
                for key, item in entries:
                    nested += [(key, depth + 1), (item, depth + 1)]
            work.extend(reversed(nested))
        else:  # nil, functions, and tables nested past the limit
            out += b"\xc0"
    return (b"ok", bytes(out), items)


def _msgpack_array_length(entries: list[tuple[object, object]]) -> int:
    largest = 0
    for key, _ in entries:
        if isinstance(key, bool) or not isinstance(key, (int, float)):
            return -1
        if key <= 0 or key != math.floor(key):
            return -1
        largest = max(largest, int(key))
    return largest if largest == len(entries) else -1


def _msgpack_length(
    n: int, fix: int, fix_max: int, one: bytes | None, two: bytes, four: bytes
) -> bytes:
    if n <= fix_max:
        return bytes([fix | n])
    if one is not None and n <= 0xFF:
        return one + bytes([n])
    if n <= 0xFFFF:
        return two + n.to_bytes(2, "big")
    return four + n.to_bytes(4, "big")


def _msgpack_number(x: float) -> bytes:
    if math.isfinite(x) and x == math.floor(x) and -(2.0**63) <= x < 2.0**63:
        n = int(x)
        if n >= 0:
            if n <= 127:
                return bytes([n])
            for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
                if n < 1 << (8 * size):
                    return bytes([code]) + n.to_bytes(size, "big")
        if n >= -32:
            return bytes([n & 0xFF])
        for code, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if n >= -(1 << (8 * size - 1)):
                return bytes([code]) + n.to_bytes(size, "big", signed=True)
    single = pystruct.unpack(">f", _pack_float(">f", x))[0]
    if single == x:  # NaN never equals itself: a double, as lua_cmsgpack writes it
        return b"\xca" + _pack_float(">f", x)
    return b"\xcb" + pystruct.pack(">d", x)


_MSGPACK_FIXED = {0xCC: (1, ">B"), 0xCD: (2, ">H"), 0xCE: (4, ">I"), 0xCF: (8, ">Q"),
                  0xD0: (1, ">b"), 0xD1: (2, ">h"), 0xD2: (4, ">i"), 0xD3: (8, ">q"),
                  0xCA: (4, ">f"), 0xCB: (8, ">d")}  # fmt: skip
MSGPACK_MISSING = b"Missing bytes in input."
MSGPACK_BAD = b"Bad data format in input."


def msgpack_decode(data: bytes, offset: int, limit: int, items_max: int) -> Result:
    """Up to ``limit`` objects (negative: all) from ``data[offset:]``: ``(b"ok", kinds, values,
    objects, next offset)``, an error, or ``(b"k",)`` past ``items_max`` items."""
    try:
        return _msgpack_decode(data, offset, limit, _Stream(items_max))
    except _ItemsExhausted:
        return (b"k",)


def _msgpack_decode(data: bytes, offset: int, limit: int, stream: _Stream) -> Result:
    at, objects = offset, 0
    # Per open container: how many items it still needs.
    remaining: list[int] = []
    while at < len(data) and (limit < 0 or objects < limit or remaining):
        code = data[at]
        at += 1
        opened = -1
        if code <= 0x7F:
            stream.value(float(code))
        elif code >= 0xE0:
            stream.value(float(code - 0x100))
        elif 0xA0 <= code <= 0xBF or code in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
            if code <= 0xBF:
                size = code & 0x1F
            else:
                width = {0xD9: 1, 0xC4: 1, 0xDA: 2, 0xC5: 2, 0xDB: 4, 0xC6: 4}[code]
                if at + width > len(data):
                    return _error(MSGPACK_MISSING)
                size = int.from_bytes(data[at : at + width], "big")
                at += width
            if at + size > len(data):
                return _error(MSGPACK_MISSING)
            stream.value(data[at : at + size])
            at += size
        elif code in _MSGPACK_FIXED:
            width, fmt = _MSGPACK_FIXED[code]
            if at + width > len(data):
                return _error(MSGPACK_MISSING)
            stream.value(float(pystruct.unpack(fmt, data[at : at + width])[0]))
            at += width
        elif code == 0xC0:
            stream.add(b"l")
        elif code in (0xC2, 0xC3):
            stream.add(b"t" if code == 0xC3 else b"f")
        elif 0x90 <= code <= 0x9F or code in (0xDC, 0xDD):
            opened = _msgpack_count(code, 0x90, data, at)
            stream.add(b"a")
        elif 0x80 <= code <= 0x8F or code in (0xDE, 0xDF):
            opened = _msgpack_count(code, 0x80, data, at) * 2
            stream.add(b"o")
        else:
            return _error(MSGPACK_BAD)
        if opened >= 0:
            if code in (0xDC, 0xDE):
                at += 2
            elif code in (0xDD, 0xDF):
                at += 4
            if at > len(data):
                return _error(MSGPACK_MISSING)
            if len(remaining) >= NESTING_MAX:
                return _error(MSGPACK_BAD)
            remaining.append(opened)
        elif remaining:
            remaining[-1] -= 1
        while remaining and remaining[-1] == 0:
            remaining.pop()
            stream.add(b"e")
            if remaining:
                remaining[-1] -= 1
        if not remaining:
            objects += 1
    if remaining:
        return _error(MSGPACK_MISSING)
    return (b"ok", bytes(stream.kinds), stream.values, objects, at)


def _msgpack_count(code: int, fix: int, data: bytes, at: int) -> int:
    if code < fix + 16:
        return code & 0x0F
    width = 2 if code in (0xDC, 0xDE) else 4
    if at + width > len(data):
        return 0
    return int.from_bytes(data[at : at + width], "big")
