"""RESP planners for Redis's string and key commands (Redis 7.0.15's replies), without I/O.

Each command is one log command (``MSET``, ``MSETNX`` and ``RENAME`` are atomic), except the
multi-key reads and deletes (``DEL``/``UNLINK``/``EXISTS``/``MGET`` with several keys): one log
command per key, each key's part linearizable, the whole *not* atomic (another client's write
may land between two keys, and an error or timeout may leave some keys deleted).  The state
machine's side is ``kv.keyspace``.  ``STRING_COMMANDS`` maps each name to its ``KvSpec``;
``runtime.command_table`` gathers it with the other families.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pypaxos.kv import (
    SET_ALWAYS,
    SET_NX,
    SET_XX,
    Append,
    Array,
    Cas,
    Command,
    DbSize,
    Delete,
    Error,
    Expire,
    Get,
    GetDel,
    Incr,
    IncrBy,
    IncrByFloat,
    Integer,
    Keys,
    Mismatch,
    MSet,
    Ok,
    Page,
    Persist,
    RandomKey,
    Rename,
    Result,
    Scan,
    Set,
    SetRange,
    SetWith,
    Ttl,
    Value,
    parse_int64,
)
from pypaxos.kv.collection_ops import KeyType
from pypaxos.kv.commands import (
    DECREMENT_OVERFLOW,
    EXPIRE_GT,
    EXPIRE_LT,
    EXPIRE_NX,
    EXPIRE_XX,
    INT64_MIN,
    NOT_AN_INTEGER,
    Exec,
    Replies,
)
from pypaxos.kv.values import WRONGTYPE
from pypaxos.runtime.plans import OK, Immediate, KvSpec, Ops, error, wrong_arity
from pypaxos.runtime.replies import Combine, result_error, unexpected
from pypaxos.transport.resp import (
    encode_array,
    encode_bulk,
    encode_integer,
    encode_simple,
)


def _unexpected(result: Result) -> bytes:
    return unexpected(result)


_WRONGTYPE = Error(WRONGTYPE)


def _first_error(results: Iterable[Result]) -> bytes | None:
    for result in results:
        refused = result_error(result)
        if refused is not None:
            return refused
    return None


def reply_get(result: Result, null: bytes) -> bytes:
    if type(result) is Value:
        return null if result.value is None else encode_bulk(result.value)
    return result_error(result) or _unexpected(result)


def reply_ok(result: Result, null: bytes) -> bytes:
    if type(result) is Ok:
        return OK
    return result_error(result) or _unexpected(result)


def reply_integer(result: Result, null: bytes) -> bytes:
    if type(result) is Integer:
        return encode_integer(result.value)
    return result_error(result) or _unexpected(result)


def combine_get(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return reply_get(result, null)


def combine_ok(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return reply_ok(result, null)


def combine_integer(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return reply_integer(result, null)


def _combine_cas(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if isinstance(result, Ok):
        return encode_integer(1)
    if isinstance(result, Mismatch):
        return encode_integer(0)
    return result_error(result) or _unexpected(result)


def _combine_del(results: Sequence[Result], null: bytes) -> bytes:
    refused = _first_error(results)
    if refused is not None:
        return refused
    total = 0
    for result in results:
        if not isinstance(result, Integer):
            return _unexpected(result)
        total += result.value
    return encode_integer(total)


def _combine_exists(results: Sequence[Result], null: bytes) -> bytes:
    refused = _first_error(results)
    if refused is not None:
        return refused
    count = 0
    for result in results:
        if not isinstance(result, Value):
            return _unexpected(result)
        count += result.value is not None
    return encode_integer(count)


def _combine_mget(results: Sequence[Result], null: bytes) -> bytes:
    refused = _first_error(r for r in results if r != _WRONGTYPE)  # Redis: nil for those
    if refused is not None:
        return refused
    parts = [b"*%d\r\n" % len(results)]
    for result in results:
        if not isinstance(result, Value):
            if result == _WRONGTYPE:
                parts.append(null)
                continue
            return _unexpected(result)
        parts.append(null if result.value is None else encode_bulk(result.value))
    return b"".join(parts)


STRING_COMMANDS: dict[bytes, KvSpec] = {
    b"GET": KvSpec(2, 2, lambda a: Ops((Get(a[1]),), combine_get)),
    b"SET": KvSpec(3, 3, lambda a: Ops((Set(a[1], a[2]),), combine_ok)),
    b"INCR": KvSpec(2, 2, lambda a: Ops((Incr(a[1]),), combine_integer)),
    b"INCRBY": KvSpec(3, 3, lambda a: _incr_by(a[1], a[2], negate=False)),
    b"DECR": KvSpec(2, 2, lambda a: Ops((IncrBy(a[1], -1),), combine_integer)),
    b"DECRBY": KvSpec(3, 3, lambda a: _incr_by(a[1], a[2], negate=True)),
    b"INCRBYFLOAT": KvSpec(3, 3, lambda a: Ops((IncrByFloat(a[1], a[2]),), combine_get)),
    b"CAS": KvSpec(4, 4, lambda a: Ops((Cas(a[1], a[2], a[3]),), _combine_cas)),
    b"DEL": KvSpec(2, None, lambda a: Ops(tuple(Delete(k) for k in a[1:]), _combine_del), True),
    b"UNLINK": KvSpec(2, None, lambda a: Ops(tuple(Delete(k) for k in a[1:]), _combine_del), True),
    b"EXISTS": KvSpec(
        2, None, lambda a: Ops(tuple(KeyType(k) for k in a[1:]), _combine_exists), True
    ),
    b"MGET": KvSpec(2, None, lambda a: Ops(tuple(Get(k) for k in a[1:]), _combine_mget), True),
}


# -- strings and keys (Redis 7.0's replies; the state machine's side is kv.keyspace) ----------


def _set(args: list[bytes]) -> Ops | Immediate:
    """``SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]``: plain ``SET`` stays
    ``Set``; the option rules and errors are Redis 7.0's."""
    if len(args) == 3:
        return Ops((Set(args[1], args[2]),), combine_ok)
    condition, get, keep_ttl = SET_ALWAYS, False, False
    expiry: tuple[int, int] | None = None
    position = 3
    while position < len(args):
        upper = args[position].upper()
        if upper == b"NX" and condition != SET_XX:
            condition = SET_NX
        elif upper == b"XX" and condition != SET_NX:
            condition = SET_XX
        elif upper == b"GET":
            get = True
        elif upper == b"KEEPTTL" and expiry is None:
            keep_ttl = True
        elif (
            upper in _EXPIRY_UNITS and not keep_ttl and expiry is None and position + 1 < len(args)
        ):
            position += 1
            parsed = _expiry(upper, args[position], b"set")
            if isinstance(parsed, Immediate):
                return parsed
            expiry = parsed
        else:
            return error("ERR syntax error")
        position += 1
    ttl_ms, at_ms = expiry or (0, 0)
    op = SetWith(args[1], args[2], condition, get, ttl_ms, at_ms, keep_ttl)
    return Ops((op,), combine_get if get else _combine_set)


# name -> (milliseconds per unit, absolute)
_EXPIRY_UNITS = {b"EX": (1000, False), b"PX": (1, False), b"EXAT": (1000, True), b"PXAT": (1, True)}
EXPIRE_MS_MAX = 2**62
"""The longest time to live and latest deadline accepted (146 million years): a deadline must
fit the snapshot's 64-bit integers after the store's clock is added."""


def _expiry(unit: bytes, raw: bytes, command: bytes) -> tuple[int, int] | Immediate:
    """``(ttl_ms, at_ms)`` for ``SET``'s EX/PX/EXAT/PXAT option (or ``SETEX``/``PSETEX``)."""
    number = integer_arg(raw)
    if isinstance(number, Immediate):
        return number
    scale, absolute = _EXPIRY_UNITS[unit]
    if number <= 0 or number * scale > EXPIRE_MS_MAX:
        return error(f"ERR invalid expire time in '{command.decode()}' command")
    return (0, number * scale) if absolute else (number * scale, 0)


def _setex(args: list[bytes]) -> Ops | Immediate:
    name = args[0].upper()
    expiry = _expiry(b"EX" if name == b"SETEX" else b"PX", args[2], name.lower())
    if isinstance(expiry, Immediate):
        return expiry
    return Ops((SetWith(args[1], args[3], ttl_ms=expiry[0]),), combine_ok)


_EXPIRE_OPTIONS = {b"NX": EXPIRE_NX, b"XX": EXPIRE_XX, b"GT": EXPIRE_GT, b"LT": EXPIRE_LT}


def _expire(args: list[bytes]) -> Ops | Immediate:
    """``EXPIRE``/``PEXPIRE``/``EXPIREAT``/``PEXPIREAT key n [NX|XX|GT|LT]``: a past deadline
    deletes the key, as in Redis."""
    name = args[0].upper()
    number = integer_arg(args[2])
    if isinstance(number, Immediate):
        return number
    conditions = 0
    for option in args[3:]:
        bit = _EXPIRE_OPTIONS.get(option.upper())
        if bit is None:
            return error(f"ERR Unsupported option {option.decode(errors='replace')}")
        conditions |= bit
    if conditions & EXPIRE_NX and conditions & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT):
        return error("ERR NX and XX, GT or LT options at the same time are not compatible")
    if conditions & EXPIRE_GT and conditions & EXPIRE_LT:
        return error("ERR GT and LT options at the same time are not compatible")
    scale = 1 if name.startswith(b"P") else 1000
    if abs(number) * scale > EXPIRE_MS_MAX:
        return error(f"ERR invalid expire time in '{name.decode().lower()}' command")
    absolute = name.endswith(b"AT")
    return Ops((Expire(args[1], number * scale, absolute, conditions),), combine_integer)


def _getex(args: list[bytes]) -> Ops | Immediate:
    """``GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]``: the read and the new deadline are one
    ``Exec`` (atomic).  Unlike Redis, a deadline given for a key of another type is set even
    though the reply is ``WRONGTYPE``."""
    key, options = args[1], args[2:]
    if not options:
        return Ops((Get(key),), combine_get)
    unit = options[0].upper()
    if len(options) == 1 and unit == b"PERSIST":
        change: Command = Persist(key)
    elif len(options) == 2 and unit in _EXPIRY_UNITS:
        expiry = _expiry(unit, options[1], b"getex")
        if isinstance(expiry, Immediate):  # as Redis: a missing key answers nil all the same
            return Ops((Get(key),), _error_if_present(expiry.reply))
        ttl_ms, at_ms = expiry
        change = Expire(key, at_ms, True) if at_ms else Expire(key, ttl_ms)
    else:
        return error("ERR syntax error")
    return Ops((Exec((Get(key), change)),), _combine_getex)


def _error_if_present(reply: bytes) -> Combine:
    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        present = type(result) is Value and result.value is not None
        return reply if present else reply_get(result, null)

    return combine


def _combine_getex(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is not Replies or not result.items:
        return _unexpected(result)
    return reply_get(result.items[0], null)


def _ttl_reply(scale: int) -> Combine:
    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        if type(result) is Integer and result.value > 0 and scale > 1:
            return encode_integer((result.value + scale // 2) // scale)  # Redis rounds
        return reply_integer(result, null)

    return combine


_TTL_SECONDS, _TTL_MS = _ttl_reply(1000), _ttl_reply(1)


def _combine_set(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value:
        return null  # the NX/XX condition failed
    return reply_ok(result, null)


def _combine_flag(results: Sequence[Result], null: bytes) -> bytes:
    """``Ok``/``Integer(1)`` as 1, a failed condition (``Value``/``Integer(0)``) as 0."""
    (result,) = results
    if type(result) is Ok:
        return encode_integer(1)
    if type(result) is Value:
        return encode_integer(0)
    return reply_integer(result, null)


def _mset(args: list[bytes], nx: bool) -> Ops | Immediate:
    if len(args) % 2 == 0:
        return wrong_arity(args[0])
    pairs = tuple(zip(args[1::2], args[2::2], strict=True))
    return Ops((MSet(pairs, nx),), combine_integer if nx else combine_ok)


def integer_arg(raw: bytes) -> int | Immediate:
    number = parse_int64(raw)
    return error(f"ERR {NOT_AN_INTEGER}") if number is None else number


def _incr_by(key: bytes, raw: bytes, negate: bool) -> Ops | Immediate:
    amount = integer_arg(raw)
    if isinstance(amount, Immediate):
        return amount
    if negate:
        if amount == INT64_MIN:
            return error(f"ERR {DECREMENT_OVERFLOW}")
        amount = -amount
    op: Command = Incr(key) if amount == 1 else IncrBy(key, amount)
    return Ops((op,), combine_integer)


def _set_range(args: list[bytes]) -> Ops | Immediate:
    offset = integer_arg(args[2])
    if isinstance(offset, Immediate):
        return offset
    return Ops((SetRange(args[1], offset, args[3]),), combine_integer)


def _get_range(args: list[bytes]) -> Ops | Immediate:
    start, end = integer_arg(args[2]), integer_arg(args[3])
    if isinstance(start, Immediate):
        return start
    if isinstance(end, Immediate):
        return end

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        if type(result) is not Value:
            return result_error(result) or _unexpected(result)
        return encode_bulk(redis_substring(result.value or b"", start, end))

    return Ops((Get(args[1]),), combine)


def redis_substring(value: bytes, start: int, end: int) -> bytes:
    """``GETRANGE``'s slice: both ends inclusive, negative from the end, clamped (Redis 7.0)."""
    length = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    start = max(start + length if start < 0 else start, 0)
    end = max(end + length if end < 0 else end, 0)
    end = min(end, length - 1)
    if start > end or length == 0:
        return b""
    return value[start : end + 1]


def _combine_strlen(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value:
        return encode_integer(len(result.value or b""))
    return result_error(result) or _unexpected(result)


def _combine_type(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value:
        return encode_simple("none" if result.value is None else result.value.decode())
    return result_error(result) or _unexpected(result)


def _combine_keys(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Array:
        return encode_array(result.items)
    return result_error(result) or _unexpected(result)


SCAN_COUNT_MAX = 10_000  # a bound on one page's work (Redis has none)


def _scan(args: list[bytes]) -> Ops | Immediate:
    """``SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]``."""
    raw = args[1]
    if not raw.isdigit() or int(raw) >= 2**64:
        return error("ERR invalid cursor")
    pattern: bytes | None = None
    count, type_name = 10, None
    position = 2
    while position < len(args):
        option = args[position].upper()
        if position + 1 >= len(args):
            return error("ERR syntax error")
        value = args[position + 1]
        if option == b"COUNT":
            number = integer_arg(value)
            if isinstance(number, Immediate):
                return number
            if number < 1:
                return error("ERR syntax error")
            count = min(number, SCAN_COUNT_MAX)
        elif option == b"MATCH":
            pattern = None if value == b"*" else value
        elif option == b"TYPE":
            type_name = value
        else:
            return error("ERR syntax error")
        position += 2

    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        if type(result) is not Page:
            return result_error(result) or _unexpected(result)
        keys = encode_array(result.keys)
        return b"*2\r\n" + encode_bulk(b"%d" % result.cursor) + keys

    return Ops((Scan(int(raw), pattern, count, type_name),), combine)


STRING_COMMANDS.update(
    {
        b"SET": KvSpec(3, None, _set),
        b"SETNX": KvSpec(3, 3, lambda a: Ops((SetWith(a[1], a[2], SET_NX),), _combine_flag)),
        b"GETSET": KvSpec(3, 3, lambda a: Ops((SetWith(a[1], a[2], get=True),), combine_get)),
        b"GETDEL": KvSpec(2, 2, lambda a: Ops((GetDel(a[1]),), combine_get)),
        b"GETEX": KvSpec(2, None, _getex),
        b"MSET": KvSpec(3, None, lambda a: _mset(a, nx=False)),
        b"MSETNX": KvSpec(3, None, lambda a: _mset(a, nx=True)),
        b"APPEND": KvSpec(3, 3, lambda a: Ops((Append(a[1], a[2]),), combine_integer)),
        b"STRLEN": KvSpec(2, 2, lambda a: Ops((Get(a[1]),), _combine_strlen)),
        b"GETRANGE": KvSpec(4, 4, _get_range),
        b"SUBSTR": KvSpec(4, 4, _get_range),
        b"SETRANGE": KvSpec(4, 4, _set_range),
        b"TYPE": KvSpec(2, 2, lambda a: Ops((KeyType(a[1]),), _combine_type)),
        b"RENAME": KvSpec(3, 3, lambda a: Ops((Rename(a[1], a[2]),), combine_ok)),
        b"RENAMENX": KvSpec(3, 3, lambda a: Ops((Rename(a[1], a[2], nx=True),), combine_integer)),
        b"DBSIZE": KvSpec(1, 1, lambda a: Ops((DbSize(),), combine_integer)),
        b"KEYS": KvSpec(2, 2, lambda a: Ops((Keys(a[1]),), _combine_keys)),
        b"SCAN": KvSpec(2, None, _scan),
        b"RANDOMKEY": KvSpec(1, 1, lambda a: Ops((RandomKey(),), combine_get)),
        b"SETEX": KvSpec(4, 4, _setex),
        b"PSETEX": KvSpec(4, 4, _setex),
        b"EXPIRE": KvSpec(3, None, _expire),
        b"PEXPIRE": KvSpec(3, None, _expire),
        b"EXPIREAT": KvSpec(3, None, _expire),
        b"PEXPIREAT": KvSpec(3, None, _expire),
        b"TTL": KvSpec(2, 2, lambda a: Ops((Ttl(a[1]),), _TTL_SECONDS)),
        b"PTTL": KvSpec(2, 2, lambda a: Ops((Ttl(a[1]),), _TTL_MS)),
        b"PERSIST": KvSpec(2, 2, lambda a: Ops((Persist(a[1]),), combine_integer)),
    }
)
