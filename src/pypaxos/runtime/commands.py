"""RESP commands to key-value operations and results back to RESP replies, without I/O.

``plan(args)`` turns one client command (a list of byte strings from ``RespParser``) into either
an ``Immediate`` reply (errors, ``PING``, the connection-setup commands stock clients send) or
an ``Ops`` plan: the ``kv`` commands to run through the log and a ``combine`` function that
turns their results into the one RESP reply.  The server owns the sessions and the I/O.

The string and key commands follow Redis 7.0.15 (``REDIS_VERSION``; the state machine's side
is ``kv.keyspace``), each one log command (``MSET``, ``MSETNX`` and ``RENAME`` are atomic), except
the multi-key reads and deletes (``DEL``/``UNLINK``/``EXISTS``/``MGET`` with several keys): one
log command per key, each key's part linearizable, the whole *not* atomic (another client's
write may land between two keys, and an error or timeout may leave some keys deleted).  Under
``PAXOS.REQ`` a command must be a single log command (one ``(client_id, seq)`` names one
request), so the multi-key forms are refused there.

Reads (plans of ``kv.READ_OPS`` only: ``GET``, ``MGET``, ``EXISTS``, ``STRLEN``, ``GETRANGE``
and ``TYPE`` as ``Get`` s; ``TTL``, ``DBSIZE``, ``KEYS``, ``SCAN``...) are linearizable whichever
way the server sends them: through the log like writes, or on the leader's read-index path
(``reads = "read-index"``).  ``READONLY`` / ``READWRITE`` (``ReadMode``) switch a connection's
stale mode on and off: reads answered from the local node's state at once, as Redis Cluster
replicas do after ``READONLY``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pypaxos.kv import (
    READ_OPS,
    SET_ALWAYS,
    SET_NX,
    SET_XX,
    VALUE_BYTES_MAX,
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
    Aborted,
    ErrorReply,
    Eval,
    Exec,
    Replies,
    ScriptExists,
    ScriptFlush,
    ScriptLoad,
    Status,
)
from pypaxos.kv.pubsub_ops import Publish
from pypaxos.kv.values import WRONGTYPE
from pypaxos.runtime.auth import Access
from pypaxos.runtime.blocking import BLOCKING_PLANNERS, Blocking
from pypaxos.runtime.collection_commands import (
    BLOCKING_COMMANDS,
    COLLECTION_COMMANDS,
    Planned,
)
from pypaxos.runtime.databases import (
    DATABASE_COMMANDS,
    SelectDb,
    plan_select,
    select_in_script,
)
from pypaxos.runtime.pubsub import (
    PUBSUB_COMMANDS,
    PubSubCommand,
    config_set_notify,
    plan_pubsub,
)
from pypaxos.runtime.replies import NULL_RESP2 as NULL_RESP2
from pypaxos.runtime.replies import NULL_RESP3 as NULL_RESP3
from pypaxos.runtime.replies import Combine as Combine
from pypaxos.runtime.replies import result_error as result_error
from pypaxos.runtime.replies import unexpected
from pypaxos.runtime.server_commands import (
    ADMIN_KINDS,
    NodeCommand,
    plan_client,
    plan_config,
    plan_member,
    plan_reset,
    plan_wait,
    unknown_command,
)
from pypaxos.transport.resp import (
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
    encode_simple,
)

REDIS_VERSION = "7.0.15"
"""The Redis whose command semantics the server follows (replies, errors; see ``kv.keyspace``):
what ``INFO`` and ``HELLO`` report, so that clients that check versions see a Redis 7."""

KEY_BYTES_MAX = 64 * 1024
ID_MAX = 2**63 - 1

OK = encode_simple("OK")
PONG = encode_simple("PONG")
EMPTY_ARRAY = b"*0\r\n"


@dataclass(frozen=True, slots=True)
class Immediate:
    reply: bytes
    close: bool = False  # QUIT: close the connection after this reply


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is slow, and this is per command
class Ops:
    ops: tuple[Command, ...]
    combine: Combine
    session: tuple[int, int] | None = None  # PAXOS.REQ's (client_id, seq); None: plain


@dataclass(frozen=True, slots=True)
class Info:
    """``INFO [section]``: the server fills it in from the node's status."""

    section: str | None


@dataclass(frozen=True, slots=True)
class Hello:
    """``HELLO [protover [AUTH user pass] [SETNAME name]]``: the connection switches protocol
    (2 or 3), authenticates if asked, and answers a map."""

    protocol: int | None
    auth: Auth | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    """``AUTH [user] password``: ``user`` is ``None`` for the one-argument (default user) form."""

    user: str | None
    password: bytes


@dataclass(frozen=True, slots=True)
class ReadMode:
    """``READONLY`` (``stale``) / ``READWRITE``: this connection's reads are answered from the
    local node's state at once (possibly stale), or linearizably again."""

    stale: bool


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """``CLIENT ID`` / ``CLIENT SETNAME name`` / ``CLIENT GETNAME``: about this connection, so
    the server answers (``subcommand`` upper case)."""

    subcommand: bytes
    name: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfigGet:
    """``CONFIG GET pattern...``: the server answers from its settings (glob patterns)."""

    patterns: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ServerTime:
    """``TIME``: this node's wall clock (not replicated, as in Redis each server has its own)."""


@dataclass(frozen=True, slots=True)
class TxCommand:
    """``MULTI``, ``EXEC``, ``DISCARD``, ``WATCH key...``, ``UNWATCH``: the connection's
    transaction state (``runtime.transactions``); ``name`` upper case."""

    name: bytes
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Custom:
    """A command of a machine other than the key-value store (``runtime.objects_port``):
    ``PAXOS.CALL`` (``write``: through the log) or ``PAXOS.QUERY`` with its one argument; or
    ``PAXOS.BACKUP`` with its words, for the node's backup handler (``runtime.backup``)."""

    name: bytes
    payload: bytes
    write: bool


Plan = (
    Immediate
    | Ops
    | Info
    | Hello
    | Auth
    | ReadMode
    | ClientCommand
    | ConfigGet
    | ServerTime
    | NodeCommand
    | Blocking
    | TxCommand
    | Custom
    | PubSubCommand
    | SelectDb
)


def error(text: str) -> Immediate:
    return Immediate(encode_error(text))


def wrong_arity(name: bytes) -> Immediate:
    return error(
        f"ERR wrong number of arguments for '{name.decode(errors='replace').lower()}' command"
    )


def plan(args: list[bytes]) -> Plan:
    """The plan for one command; ``args`` is non-empty (the parser drops empty commands)."""
    name = args[0].upper()
    if name == b"PAXOS.REQ":
        return _paxos_req(args)
    spec = _KV_COMMANDS.get(name)
    if spec is not None:
        return _kv_plan(name, args, spec, None)
    admin = _ADMIN.get(name)
    if admin is not None:
        return admin(args)
    return Immediate(unknown_command(args[0].decode(errors="replace")))


CONNECTION_COMMANDS = frozenset({b"AUTH", b"HELLO", b"QUIT"})
"""What a connection may send before it authenticates."""


def required_access(name: bytes, planned: Plan) -> Access:
    """What running ``planned`` (the plan of command ``name``, upper case) needs a role to allow."""
    if name in CONNECTION_COMMANDS:
        return Access.CONNECTION
    if isinstance(planned, Ops) and not all(_reads_only(op) for op in planned.ops):
        return Access.WRITE
    if isinstance(planned, Blocking):  # pops
        return Access.WRITE
    if (isinstance(planned, Custom) and planned.write) or (
        isinstance(planned, PubSubCommand) and planned.name == b"PUBLISH"
    ):
        return Access.WRITE
    if isinstance(planned, NodeCommand) and planned.kind in ADMIN_KINDS:
        return Access.ADMIN
    if isinstance(planned, Custom) and planned.name == BACKUP_COMMAND:  # the whole state
        return Access.ADMIN
    return Access.READ


def _reads_only(op: Command) -> bool:
    """Does ``op`` change no data (a read, or a read-only script: ``EVAL_RO``)?"""
    return isinstance(op, READ_OPS) or (isinstance(op, Eval) and op.read_only)


Reply1 = Callable[[Result, bytes], bytes]
"""One result to its reply (the single-op form of ``Combine``): the batched hot path's."""


def plain_single(args: list[bytes]) -> tuple[Command, Reply1] | None:
    """The fast path of ``plan`` for the commonest commands: ``(op, reply)`` or ``None``.

    ``GET k``, ``SET k v`` and ``INCR k`` spelled in upper or lower case, with the right number
    of arguments and sizes that cannot be over a limit, are one log command each: this skips
    building an ``Ops`` plan.  Anything else (``None``) goes through ``plan``, which gives the
    same answer for these commands too (a test says so).
    """
    # Unrolled for the two arities (no slice, no star-call): the server calls this once per
    # pipelined command.
    fast = FAST_COMMANDS.get(args[0])
    if fast is None:
        return None
    if len(args) == 3 == fast[0]:
        if len(args[1]) + len(args[2]) <= fast[3]:
            return fast[1](args[1], args[2]), fast[2]
    elif len(args) == 2 == fast[0] and len(args[1]) <= fast[3]:
        return fast[1](args[1]), fast[2]
    return None


def single_reply(combine: Combine) -> Reply1:
    """The single-op form of a plan's ``combine`` (cached: one per combine function, for the
    module-level ones; a combine made per command, closing over its arguments as
    ``GETRANGE``'s does, is wrapped afresh once the cache is full, so it cannot grow without
    bound)."""
    reply = _SINGLE.get(combine)
    if reply is None:

        def reply(result: Result, null: bytes) -> bytes:
            return combine((result,), null)

        if len(_SINGLE) < SINGLE_CACHE_MAX:
            _SINGLE[combine] = reply
    return reply


_SINGLE: dict[Combine, Reply1] = {}
SINGLE_CACHE_MAX = 512


# -- key-value commands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    arity_min: int  # counting the command name
    arity_max: int | None  # None: any number above the minimum
    build: Callable[[list[bytes]], Ops | Immediate]
    multi_key: bool = False


def _kv_plan(name: bytes, args: list[bytes], spec: _Spec, session: tuple[int, int] | None) -> Plan:
    count = len(args)
    if count < spec.arity_min or (spec.arity_max is not None and count > spec.arity_max):
        return wrong_arity(name)
    if session is not None and spec.multi_key and count > 2:
        return error("ERR PAXOS.REQ takes one key per request (multi-key commands are not atomic)")
    too_big = _size_error(name, args)
    if too_big is not None:
        return too_big
    ops = spec.build(args)
    if session is None or isinstance(ops, Immediate):
        return ops
    return Ops(ops.ops, ops.combine, session)


_VALUE_POSITIONS: dict[bytes, tuple[int, ...]] = {
    b"SET": (2,),
    b"CAS": (2, 3),
    b"SETNX": (2,),
    b"GETSET": (2,),
    b"APPEND": (2,),
    b"SETRANGE": (3,),
    b"SETEX": (3,),
    b"PSETEX": (3,),
}
_PAIRS = frozenset({b"MSET", b"MSETNX"})  # key value key value...: the even positions


# Scripts and their arguments: every argument may be as long as a value.
_ALL_VALUES = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"SCRIPT"})


def _size_error(name: bytes, args: list[bytes]) -> Immediate | None:
    if sum(map(len, args)) <= KEY_BYTES_MAX:  # the usual case: nothing can be over a limit
        return None
    values = _VALUE_POSITIONS.get(name, ())
    pairs = name in _PAIRS
    collection = name in COLLECTION_COMMANDS  # after the key: members, fields, values
    every = name in _ALL_VALUES
    for position, arg in enumerate(args[1:], start=1):
        if (
            every
            or position in values
            or (pairs and position % 2 == 0)
            or (collection and position > 1)
        ):
            if len(arg) > VALUE_BYTES_MAX:
                return error(f"ERR value too large ({len(arg)} bytes, limit {VALUE_BYTES_MAX})")
        elif len(arg) > KEY_BYTES_MAX:
            return error(f"ERR key too large ({len(arg)} bytes, limit {KEY_BYTES_MAX})")
    return None


def _unexpected(result: Result) -> bytes:
    return unexpected(result)


_WRONGTYPE = Error(WRONGTYPE)


def _first_error(results: Iterable[Result]) -> bytes | None:
    for result in results:
        refused = result_error(result)
        if refused is not None:
            return refused
    return None


def _reply_get(result: Result, null: bytes) -> bytes:
    if type(result) is Value:
        return null if result.value is None else encode_bulk(result.value)
    return result_error(result) or _unexpected(result)


def _reply_ok(result: Result, null: bytes) -> bytes:
    if type(result) is Ok:
        return OK
    return result_error(result) or _unexpected(result)


def _reply_integer(result: Result, null: bytes) -> bytes:
    if type(result) is Integer:
        return encode_integer(result.value)
    return result_error(result) or _unexpected(result)


def _combine_get(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return _reply_get(result, null)


def _combine_ok(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return _reply_ok(result, null)


def _combine_integer(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return _reply_integer(result, null)


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


_KV_COMMANDS: dict[bytes, _Spec] = {
    b"GET": _Spec(2, 2, lambda a: Ops((Get(a[1]),), _combine_get)),
    b"SET": _Spec(3, 3, lambda a: Ops((Set(a[1], a[2]),), _combine_ok)),
    b"INCR": _Spec(2, 2, lambda a: Ops((Incr(a[1]),), _combine_integer)),
    b"INCRBY": _Spec(3, 3, lambda a: _incr_by(a[1], a[2], negate=False)),
    b"DECR": _Spec(2, 2, lambda a: Ops((IncrBy(a[1], -1),), _combine_integer)),
    b"DECRBY": _Spec(3, 3, lambda a: _incr_by(a[1], a[2], negate=True)),
    b"INCRBYFLOAT": _Spec(3, 3, lambda a: Ops((IncrByFloat(a[1], a[2]),), _combine_get)),
    b"CAS": _Spec(4, 4, lambda a: Ops((Cas(a[1], a[2], a[3]),), _combine_cas)),
    b"DEL": _Spec(2, None, lambda a: Ops(tuple(Delete(k) for k in a[1:]), _combine_del), True),
    b"UNLINK": _Spec(2, None, lambda a: Ops(tuple(Delete(k) for k in a[1:]), _combine_del), True),
    b"EXISTS": _Spec(
        2, None, lambda a: Ops(tuple(KeyType(k) for k in a[1:]), _combine_exists), True
    ),
    b"MGET": _Spec(2, None, lambda a: Ops(tuple(Get(k) for k in a[1:]), _combine_mget), True),
}


# -- strings and keys (Redis 7.0's replies; the state machine's side is kv.keyspace) ----------


def _set(args: list[bytes]) -> Ops | Immediate:
    """``SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]``: plain ``SET`` stays
    ``Set``; the option rules and errors are Redis 7.0's."""
    if len(args) == 3:
        return Ops((Set(args[1], args[2]),), _combine_ok)
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
    return Ops((op,), _combine_get if get else _combine_set)


# name -> (milliseconds per unit, absolute)
_EXPIRY_UNITS = {b"EX": (1000, False), b"PX": (1, False), b"EXAT": (1000, True), b"PXAT": (1, True)}
EXPIRE_MS_MAX = 2**62
"""The longest time to live and latest deadline accepted (146 million years): a deadline must
fit the snapshot's 64-bit integers after the store's clock is added."""


def _expiry(unit: bytes, raw: bytes, command: bytes) -> tuple[int, int] | Immediate:
    """``(ttl_ms, at_ms)`` for ``SET``'s EX/PX/EXAT/PXAT option (or ``SETEX``/``PSETEX``)."""
    number = _integer_arg(raw)
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
    return Ops((SetWith(args[1], args[3], ttl_ms=expiry[0]),), _combine_ok)


_EXPIRE_OPTIONS = {b"NX": EXPIRE_NX, b"XX": EXPIRE_XX, b"GT": EXPIRE_GT, b"LT": EXPIRE_LT}


def _expire(args: list[bytes]) -> Ops | Immediate:
    """``EXPIRE``/``PEXPIRE``/``EXPIREAT``/``PEXPIREAT key n [NX|XX|GT|LT]``: a past deadline
    deletes the key, as in Redis."""
    name = args[0].upper()
    number = _integer_arg(args[2])
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
    return Ops((Expire(args[1], number * scale, absolute, conditions),), _combine_integer)


def _getex(args: list[bytes]) -> Ops | Immediate:
    """``GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]``: the read and the new deadline are one
    ``Exec`` (atomic).  Unlike Redis, a deadline given for a key of another type is set even
    though the reply is ``WRONGTYPE``."""
    key, options = args[1], args[2:]
    if not options:
        return Ops((Get(key),), _combine_get)
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
        return reply if present else _reply_get(result, null)

    return combine


def _combine_getex(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is not Replies or not result.items:
        return _unexpected(result)
    return _reply_get(result.items[0], null)


def _ttl_reply(scale: int) -> Combine:
    def combine(results: Sequence[Result], null: bytes) -> bytes:
        (result,) = results
        if type(result) is Integer and result.value > 0 and scale > 1:
            return encode_integer((result.value + scale // 2) // scale)  # Redis rounds
        return _reply_integer(result, null)

    return combine


_TTL_SECONDS, _TTL_MS = _ttl_reply(1000), _ttl_reply(1)


def _combine_set(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    if type(result) is Value:
        return null  # the NX/XX condition failed
    return _reply_ok(result, null)


def _combine_flag(results: Sequence[Result], null: bytes) -> bytes:
    """``Ok``/``Integer(1)`` as 1, a failed condition (``Value``/``Integer(0)``) as 0."""
    (result,) = results
    if type(result) is Ok:
        return encode_integer(1)
    if type(result) is Value:
        return encode_integer(0)
    return _reply_integer(result, null)


def _mset(args: list[bytes], nx: bool) -> Ops | Immediate:
    if len(args) % 2 == 0:
        return wrong_arity(args[0])
    pairs = tuple(zip(args[1::2], args[2::2], strict=True))
    return Ops((MSet(pairs, nx),), _combine_integer if nx else _combine_ok)


def _integer_arg(raw: bytes) -> int | Immediate:
    number = parse_int64(raw)
    return error(f"ERR {NOT_AN_INTEGER}") if number is None else number


def _incr_by(key: bytes, raw: bytes, negate: bool) -> Ops | Immediate:
    amount = _integer_arg(raw)
    if isinstance(amount, Immediate):
        return amount
    if negate:
        if amount == INT64_MIN:
            return error(f"ERR {DECREMENT_OVERFLOW}")
        amount = -amount
    op: Command = Incr(key) if amount == 1 else IncrBy(key, amount)
    return Ops((op,), _combine_integer)


def _set_range(args: list[bytes]) -> Ops | Immediate:
    offset = _integer_arg(args[2])
    if isinstance(offset, Immediate):
        return offset
    return Ops((SetRange(args[1], offset, args[3]),), _combine_integer)


def _get_range(args: list[bytes]) -> Ops | Immediate:
    start, end = _integer_arg(args[2]), _integer_arg(args[3])
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
            number = _integer_arg(value)
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


_KV_COMMANDS.update(
    {
        b"SET": _Spec(3, None, _set),
        b"SETNX": _Spec(3, 3, lambda a: Ops((SetWith(a[1], a[2], SET_NX),), _combine_flag)),
        b"GETSET": _Spec(3, 3, lambda a: Ops((SetWith(a[1], a[2], get=True),), _combine_get)),
        b"GETDEL": _Spec(2, 2, lambda a: Ops((GetDel(a[1]),), _combine_get)),
        b"GETEX": _Spec(2, None, _getex),
        b"MSET": _Spec(3, None, lambda a: _mset(a, nx=False)),
        b"MSETNX": _Spec(3, None, lambda a: _mset(a, nx=True)),
        b"APPEND": _Spec(3, 3, lambda a: Ops((Append(a[1], a[2]),), _combine_integer)),
        b"STRLEN": _Spec(2, 2, lambda a: Ops((Get(a[1]),), _combine_strlen)),
        b"GETRANGE": _Spec(4, 4, _get_range),
        b"SUBSTR": _Spec(4, 4, _get_range),
        b"SETRANGE": _Spec(4, 4, _set_range),
        b"TYPE": _Spec(2, 2, lambda a: Ops((KeyType(a[1]),), _combine_type)),
        b"RENAME": _Spec(3, 3, lambda a: Ops((Rename(a[1], a[2]),), _combine_ok)),
        b"RENAMENX": _Spec(3, 3, lambda a: Ops((Rename(a[1], a[2], nx=True),), _combine_integer)),
        b"DBSIZE": _Spec(1, 1, lambda a: Ops((DbSize(),), _combine_integer)),
        b"KEYS": _Spec(2, 2, lambda a: Ops((Keys(a[1]),), _combine_keys)),
        b"SCAN": _Spec(2, None, _scan),
        b"RANDOMKEY": _Spec(1, 1, lambda a: Ops((RandomKey(),), _combine_get)),
        b"SETEX": _Spec(4, 4, _setex),
        b"PSETEX": _Spec(4, 4, _setex),
        b"EXPIRE": _Spec(3, None, _expire),
        b"PEXPIRE": _Spec(3, None, _expire),
        b"EXPIREAT": _Spec(3, None, _expire),
        b"PEXPIREAT": _Spec(3, None, _expire),
        b"TTL": _Spec(2, 2, lambda a: Ops((Ttl(a[1]),), _TTL_SECONDS)),
        b"PTTL": _Spec(2, 2, lambda a: Ops((Ttl(a[1]),), _TTL_MS)),
        b"PERSIST": _Spec(2, 2, lambda a: Ops((Persist(a[1]),), _combine_integer)),
    }
)


def _collection_spec(
    arity_min: int, arity_max: int | None, build: Callable[[list[bytes]], Planned]
) -> _Spec:
    def plan_one(args: list[bytes]) -> Ops | Immediate:
        planned = build(args)
        if isinstance(planned, bytes):
            return Immediate(planned)
        return Ops(*planned)

    return _Spec(arity_min, arity_max, plan_one)


for _name, (_low, _high, _collection_build) in COLLECTION_COMMANDS.items():
    _KV_COMMANDS[_name] = _collection_spec(_low, _high, _collection_build)
for _name, (_low, _high, _database_build) in DATABASE_COMMANDS.items():
    _KV_COMMANDS[_name] = _collection_spec(_low, _high, _database_build)


def _blocking(args: list[bytes]) -> Plan:
    name = args[0].upper()
    planner = BLOCKING_PLANNERS.get(name)
    if planner is None:
        shown = args[0].decode(errors="replace").lower()
        return error(f"ERR '{shown}' (a blocking command) is not supported by this server yet")
    planned = planner(args)
    return Immediate(planned) if isinstance(planned, bytes) else planned


# -- scripts (the state machine's side is kv.scripts) -----------------------------------------


def render(result: Result, null: bytes) -> bytes:
    """Any result as its RESP reply: what a script answers (nested arrays, statuses, errors)."""
    match result:
        case Value(value):
            return null if value is None else encode_bulk(value)
        case Integer(value):
            return encode_integer(value)
        case Ok():
            return OK
        case Status(text):
            return b"+" + text + b"\r\n"
        case ErrorReply(text):
            return b"-" + text + b"\r\n"
        case Replies(items):
            return b"*%d\r\n" % len(items) + b"".join(render(item, null) for item in items)
        case Aborted():
            return null if null == NULL_RESP3 else NULL_ARRAY_RESP2
        case Array(items):
            return encode_array(items)
        case _:
            return result_error(result) or _unexpected(result)


NULL_ARRAY_RESP2 = b"*-1\r\n"


def _combine_render(results: Sequence[Result], null: bytes) -> bytes:
    (result,) = results
    return render(result, null)


def _script_args(args: list[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | Immediate:
    """``EVAL``/``EVALSHA``'s ``numkeys key... arg...``: the keys and the arguments."""
    count = _integer_arg(args[2])
    if isinstance(count, Immediate):
        return count
    if count < 0:
        return error("ERR Number of keys can't be negative")
    if count > len(args) - 3:
        return error("ERR Number of keys can't be greater than number of args")
    return tuple(args[3 : 3 + count]), tuple(args[3 + count :])


def _eval(args: list[bytes]) -> Ops | Immediate:
    parsed = _script_args(args)
    if isinstance(parsed, Immediate):
        return parsed
    read_only = args[0].upper() == b"EVAL_RO"
    return Ops((Eval(args[1], b"", *parsed, read_only=read_only),), _combine_render)


NOSCRIPT_REPLY = encode_error("NOSCRIPT No matching script. Please use EVAL.")


def _evalsha(args: list[bytes]) -> Ops | Immediate:
    parsed = _script_args(args)
    if isinstance(parsed, Immediate):
        return parsed
    sha = args[1].lower()
    if len(sha) != 40:
        return Immediate(NOSCRIPT_REPLY)
    read_only = args[0].upper() == b"EVALSHA_RO"
    return Ops((Eval(None, sha, *parsed, read_only=read_only),), _combine_render)


def _script(args: list[bytes]) -> Ops | Immediate:
    """``SCRIPT LOAD body`` / ``EXISTS sha...`` / ``FLUSH [ASYNC|SYNC]`` / ``KILL``."""
    sub = args[1].upper()
    if sub == b"LOAD":
        if len(args) != 3:
            return wrong_arity(b"script|load")
        return Ops((ScriptLoad(args[2]),), _combine_render)
    if sub == b"EXISTS":
        if len(args) < 3:
            return wrong_arity(b"script|exists")
        return Ops((ScriptExists(tuple(sha.lower() for sha in args[2:])),), _combine_render)
    if sub == b"FLUSH":
        if len(args) > 3:
            return wrong_arity(b"script|flush")
        if len(args) == 3 and args[2].upper() not in (b"ASYNC", b"SYNC"):
            return error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        return Ops((ScriptFlush(),), _combine_ok)
    if sub == b"KILL":  # a script never outlives its log entry (kv.scripts): nothing to kill
        return error("NOTBUSY No scripts in execution right now.")
    shown = args[1].decode(errors="replace")
    return error(f"ERR unknown subcommand '{shown}'. Try SCRIPT HELP.")


_KV_COMMANDS.update(
    {
        b"EVAL": _Spec(3, None, _eval),
        b"EVALSHA": _Spec(3, None, _evalsha),
        b"EVAL_RO": _Spec(3, None, _eval),
        b"EVALSHA_RO": _Spec(3, None, _evalsha),
        b"SCRIPT": _Spec(2, None, _script),
    }
)

_NOT_FROM_SCRIPTS = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"SCRIPT"})
_FROM_SCRIPTS_ADMIN = frozenset({b"PING", b"ECHO"})
NOT_FROM_SCRIPT = encode_error("ERR This Redis command is not allowed from script")
UNKNOWN_FROM_SCRIPT = encode_error("ERR Unknown Redis command called from script")
ARITY_FROM_SCRIPT = encode_error("ERR Wrong number of args calling Redis command from script")


def _publish_from_script(results: Sequence[Result]) -> bytes:
    return result_error(results[0]) or encode_integer(0)


def _script_ok(results: Sequence[Result]) -> bytes:
    return result_error(results[0]) or OK


def script_command(
    argv: list[bytes],
) -> tuple[tuple[Command, ...], Callable[[Sequence[Result]], bytes]] | bytes:
    """A script's ``redis.call(argv...)``: the ops and how their results make the RESP2
    reply, or the reply itself (``kv.scripts.CommandTable``).  Every key-value command is
    allowed, planned exactly as for a client; ``PING`` and ``ECHO`` too; transactions,
    scripts and the connection and server commands are not, as in Redis."""
    name = argv[0].upper()
    if name == b"PUBLISH":  # inside the state machine no node's subscribers are known: 0
        if len(argv) != 3:
            return ARITY_FROM_SCRIPT
        return (Publish(argv[1], argv[2]),), _publish_from_script
    if name == b"SELECT":  # the script's own database, until it ends (Redis 7)
        if len(argv) != 2:
            return ARITY_FROM_SCRIPT
        select = select_in_script(argv)
        return select if isinstance(select, bytes) else ((select,), _script_ok)
    spec = _KV_COMMANDS.get(name)
    if spec is None or name in _NOT_FROM_SCRIPTS:
        admin = _ADMIN.get(name)
        if admin is not None and name in _FROM_SCRIPTS_ADMIN:
            planned = admin(argv)
            if isinstance(planned, Immediate):
                return planned.reply
        if admin is not None or spec is not None:
            return NOT_FROM_SCRIPT
        return UNKNOWN_FROM_SCRIPT
    count = len(argv)
    if count < spec.arity_min or (spec.arity_max is not None and count > spec.arity_max):
        return ARITY_FROM_SCRIPT
    planned = _kv_plan(name, argv, spec, None)
    if isinstance(planned, Immediate):
        return planned.reply
    assert isinstance(planned, Ops)
    combine = planned.combine

    def reply(results: Sequence[Result]) -> bytes:
        return combine(results, NULL_RESP2)

    return planned.ops, reply


# -- transactions (the connection's side is runtime.transactions) ----------------------------


def refused_before_running(args: list[bytes], reply: bytes) -> bool:
    """Is ``reply``, an error ``plan(args)`` gave, one Redis gives before running the command
    (an unknown command, a wrong number of arguments for the command or its subcommand), rather
    than when it runs (a syntax error, ``MSET`` with an odd count)?  Inside ``MULTI`` the first
    kind aborts the transaction, the second is that command's reply in ``EXEC``'s array."""
    if reply.startswith(b"-ERR unknown command"):
        return True
    if not reply.startswith(b"-ERR wrong number of arguments for '"):
        return False
    spec = _KV_COMMANDS.get(args[0].upper())
    if spec is None or b"|" in reply.split(b"'")[1]:
        return True  # a server command's, or a subcommand's (SCRIPT LOAD)
    count = len(args)
    return count < spec.arity_min or (spec.arity_max is not None and count > spec.arity_max)


def _tx(arity_min: int, arity_max: int | None) -> Callable[[list[bytes]], Plan]:
    def planner(args: list[bytes]) -> Plan:
        if len(args) < arity_min or (arity_max is not None and len(args) > arity_max):
            return wrong_arity(args[0])
        return TxCommand(args[0].upper(), tuple(args[1:]))

    return planner


FAST_COMMANDS: dict[bytes, tuple[int, Callable[..., Command], Reply1, int]] = {}
"""``plain_single``'s table: name -> (arity, op class taking the arguments, reply, the most
bytes the arguments after the name may total: ``KEY_BYTES_MAX`` less the name's length)."""
for _name, _arity, _build, _reply, _combine in (
    (b"GET", 2, Get, _reply_get, _combine_get),
    (b"SET", 3, Set, _reply_ok, _combine_ok),
    (b"INCR", 2, Incr, _reply_integer, _combine_integer),
):
    _entry = (_arity, _build, _reply, KEY_BYTES_MAX - len(_name))
    FAST_COMMANDS[_name] = FAST_COMMANDS[_name.lower()] = _entry
    _SINGLE[_combine] = _reply


def _paxos_req(args: list[bytes]) -> Plan:
    if len(args) < 4:
        return wrong_arity(args[0])
    client_id, seq = _positive_id(args[1]), _positive_id(args[2])
    if client_id is None or seq is None:
        return error("ERR PAXOS.REQ client_id and seq must be integers in [1, 2^63-1]")
    inner = args[3:]
    name = inner[0].upper()
    spec = _KV_COMMANDS.get(name)
    if spec is None:
        shown = inner[0].decode(errors="replace")
        return error(f"ERR PAXOS.REQ cannot run '{shown}' (only key-value commands)")
    return _kv_plan(name, inner, spec, (client_id, seq))


def _positive_id(raw: bytes) -> int | None:
    if not raw.isdigit() or len(raw) > 19:
        return None
    number = int(raw)
    return number if 1 <= number <= ID_MAX else None


# -- admin commands ----------------------------------------------------------------------------


def _ping(args: list[bytes]) -> Plan:
    if len(args) == 1:
        return Immediate(PONG)
    if len(args) == 2:
        return Immediate(encode_bulk(args[1]))
    return wrong_arity(args[0])


def _info(args: list[bytes]) -> Plan:
    """``INFO [section...]``: several sections travel space-separated in ``Info.section``."""
    if len(args) == 1:
        return Info(None)
    return Info(" ".join(a.decode(errors="replace").lower() for a in args[1:]))


_ALL_KEYS = (1, -1, 1)
_KEY_POSITIONS: dict[bytes, tuple[int, int, int]] = {
    **dict.fromkeys((b"MSET", b"MSETNX"), (1, -1, 2)),
    **dict.fromkeys(
        (b"DEL", b"UNLINK", b"EXISTS", b"MGET", b"TOUCH", b"WATCH", b"SINTER", b"SUNION"),
        _ALL_KEYS,
    ),
    **dict.fromkeys((b"SDIFF", b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"), _ALL_KEYS),
    **dict.fromkeys((b"RENAME", b"RENAMENX", b"COPY", b"SMOVE", b"LMOVE"), (1, 2, 1)),
    **dict.fromkeys((b"RPOPLPUSH", b"BLMOVE", b"BRPOPLPUSH", b"ZRANGESTORE"), (1, 2, 1)),
    **dict.fromkeys((b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE"), (1, 1, 1)),  # + movable
    **dict.fromkeys((b"BLPOP", b"BRPOP", b"BZPOPMIN", b"BZPOPMAX"), (1, -2, 1)),
}
"""``COMMAND``'s first key, last key (negative: from the end) and step where they are not the
one key at position 1.  Commands whose keys follow a count (``EVAL``, ``ZUNIONSTORE``,
``LMPOP``...) are ``movablekeys`` with (0, 0, 0), as in Redis."""

_MOVABLE_KEYS = frozenset(
    {
        *(b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"ZUNION", b"ZINTER", b"ZDIFF"),
        *(b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE", b"ZINTERCARD", b"SINTERCARD"),
        *(b"LMPOP", b"ZMPOP", b"BLMPOP", b"BZMPOP"),
    }
)
_NO_KEYS = frozenset(
    {
        *(b"KEYS", b"SCAN", b"DBSIZE", b"FLUSHDB", b"FLUSHALL", b"RANDOMKEY", b"SCRIPT"),
        *(b"CAS", b"SWAPDB"),
    }
)


def _arity_of(name: bytes) -> int:
    """Redis's arity (negative: at least that many) from the planner tables."""
    spec = _KV_COMMANDS.get(name)
    if spec is None:
        return _ADMIN_ARITY.get(name, -1)
    return spec.arity_min if spec.arity_max == spec.arity_min else -spec.arity_min


_FLAGS: dict[bytes, tuple[bytes, ...]] = {
    **dict.fromkeys((b"EVAL", b"EVALSHA", b"SCRIPT"), ()),  # as the script's commands
    **dict.fromkeys((b"EVAL_RO", b"EVALSHA_RO"), (b"readonly",)),
    b"GETEX": (b"write",),  # a read unless an option is given
}
_SAMPLE_FILLS = ((b"1",), (b"k", b"-", b"+"))  # numbers, then a key and lexicographic bounds


def _flags_of(name: bytes) -> list[bytes]:
    """``write`` or ``readonly`` for a key-value command, found by planning samples of it (so
    the answer follows the planners; ``write`` when no sample plans); blocking commands are
    writes that may block."""
    if name in BLOCKING_COMMANDS:
        return [b"write", b"blocking"]
    if name in _FLAGS:
        return list(_FLAGS[name])
    spec = _KV_COMMANDS.get(name)
    if spec is None:
        return []
    for fill in _SAMPLE_FILLS:
        planned = spec.build([name, *fill * spec.arity_min][: spec.arity_min])
        if isinstance(planned, Ops):
            return [b"readonly"] if all(_reads_only(op) for op in planned.ops) else [b"write"]
    return [b"write"]


def _keys_of(name: bytes) -> tuple[int, int, int]:
    if name in _KEY_POSITIONS:
        return _KEY_POSITIONS[name]
    if name in _MOVABLE_KEYS or name in _NO_KEYS or name not in _KV_COMMANDS:
        return (0, 0, 0)
    return (1, 1, 1) if _KV_COMMANDS[name].arity_min >= 2 else (0, 0, 0)


def command_names() -> list[bytes]:
    """Every command this server answers, lower case, sorted."""
    return sorted(n.lower() for n in {*_KV_COMMANDS, *_ADMIN, b"PAXOS.REQ"})


def _command_info(name: bytes) -> bytes:
    upper = name.upper()
    first, last, step = _keys_of(upper)
    flags = _flags_of(upper) + ([b"movablekeys"] if upper in _MOVABLE_KEYS else [])
    return b"".join(
        (
            b"*10\r\n",
            encode_bulk(name.lower()),
            encode_integer(_arity_of(upper)),
            b"*%d\r\n" % len(flags) + b"".join(encode_simple(f.decode()) for f in flags),
            encode_integer(first),
            encode_integer(last),
            encode_integer(step),
            EMPTY_ARRAY * 4,  # ACL categories, tips, key specs, subcommands
        )
    )


def _command(args: list[bytes]) -> Plan:
    """``COMMAND [COUNT|LIST|INFO name...|DOCS [name...]|GETKEYS cmd args...]``, described from
    the planner tables: names, arities, ``write``/``readonly``, key positions."""
    names = command_names()
    if len(args) == 1:
        return Immediate(b"*%d\r\n" % len(names) + b"".join(map(_command_info, names)))
    sub = args[1].upper()
    if sub == b"COUNT":
        return Immediate(encode_integer(len(names)))
    if sub == b"LIST":
        return Immediate(encode_array(names))
    if sub == b"INFO":
        known = set(names)
        wanted = [a.lower() for a in args[2:]] if len(args) > 2 else names
        parts = [_command_info(n) if n in known else NULL_RESP2 for n in wanted]
        return Immediate(b"*%d\r\n" % len(parts) + b"".join(parts))
    if sub == b"DOCS":
        known = set(names)
        wanted = [a.lower() for a in args[2:] if a.lower() in known] if len(args) > 2 else names
        docs = [part for n in wanted for part in (encode_bulk(n), EMPTY_ARRAY)]
        return Immediate(b"*%d\r\n" % len(docs) + b"".join(docs))
    if sub == b"GETKEYS":
        return _getkeys(args[2:])
    shown = args[1].decode(errors="replace")
    return error(f"ERR unknown subcommand '{shown}'. Try COMMAND HELP.")


def _getkeys(command: list[bytes]) -> Plan:
    if len(command) < 2:  # Redis 7.0 asks for a command and at least one argument
        return wrong_arity(b"command|getkeys")
    upper = command[0].upper()
    if upper not in _KV_COMMANDS and upper not in _ADMIN:
        return error("ERR Invalid command specified")
    arity = _arity_of(upper)
    if (arity >= 0 and len(command) != arity) or len(command) < -arity:
        return error("ERR Invalid number of arguments specified for command")
    if upper in (b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO") and command[2].isdigit():
        keys = command[3 : 3 + int(command[2])]
    else:
        first, last, step = _keys_of(upper)
        if first == 0:
            return error("ERR The command has no key arguments")
        end = len(command) + last if last < 0 else last
        keys = command[first : end + 1 : step]
    return Immediate(encode_array(keys))


def _node(planned: NodeCommand | bytes) -> Plan:
    return Immediate(planned) if isinstance(planned, bytes) else planned


def _config(args: list[bytes]) -> Plan:
    """``CONFIG GET`` here; ``SET notify-keyspace-events`` through the log (``kv.pubsub``);
    the other ``SET`` s and ``RESETSTAT`` in ``runtime.server_commands``."""
    if len(args) >= 2 and args[1].upper() == b"SET":
        notify = config_set_notify(args)
        if isinstance(notify, bytes):
            return Immediate(notify)
        if notify is not None:
            return Ops((notify,), _combine_ok)
    if len(args) >= 2 and args[1].upper() == b"GET":
        if len(args) < 3:
            return wrong_arity(b"config|get")
        return ConfigGet(tuple(args[2:]))
    if len(args) < 2:
        return wrong_arity(args[0])
    return _node(plan_config(args))


_CLIENT_ARITY = {b"ID": 2, b"GETNAME": 2, b"SETNAME": 3}


def _client(args: list[bytes]) -> Plan:
    """``CLIENT ID|SETNAME|GETNAME`` here; the others in ``runtime.server_commands``."""
    if len(args) < 2:
        return wrong_arity(args[0])
    sub = args[1].upper()
    arity = _CLIENT_ARITY.get(sub)
    if arity is None:
        return _node(plan_client(args))
    if len(args) != arity:
        return wrong_arity(b"client|" + sub.lower())
    if sub == b"SETNAME" and any(c <= 32 or c > 126 for c in args[2]):
        return error("ERR Client names cannot contain spaces, newlines or special characters.")
    return ClientCommand(sub, args[2] if sub == b"SETNAME" else b"")


def _echo(args: list[bytes]) -> Plan:
    return Immediate(encode_bulk(args[1])) if len(args) == 2 else wrong_arity(args[0])


def _time(args: list[bytes]) -> Plan:
    return ServerTime() if len(args) == 1 else wrong_arity(args[0])


def _select(args: list[bytes]) -> Plan:
    if len(args) != 2:
        return wrong_arity(args[0])
    planned = plan_select(args)
    return Immediate(planned) if isinstance(planned, bytes) else planned


def _hello(args: list[bytes]) -> Plan:
    if len(args) == 1:
        return Hello(None)
    version = args[1]
    if version not in (b"2", b"3"):
        if not version.isdigit():
            return error("ERR Protocol version is not an integer or out of range")
        return error("NOPROTO unsupported protocol version")
    auth: Auth | None = None
    position = 2
    while position < len(args):
        option = args[position].upper()
        if option == b"AUTH" and position + 2 < len(args):
            user = args[position + 1].decode(errors="replace")
            auth = Auth(user, args[position + 2])
            position += 3
        elif option == b"SETNAME" and position + 1 < len(args):
            position += 2  # accepted and ignored (CLIENT SETNAME names a connection)
        else:
            shown = args[position].decode(errors="replace")
            return error(f"ERR Syntax error in HELLO option '{shown}'")
    return Hello(int(version), auth)


def _auth(args: list[bytes]) -> Plan:
    if len(args) == 2:
        return Auth(None, args[1])
    if len(args) == 3:
        return Auth(args[1].decode(errors="replace"), args[2])
    return wrong_arity(args[0])


def _pubsub(args: list[bytes]) -> Plan:
    planned = plan_pubsub(args)
    return Immediate(planned) if isinstance(planned, bytes) else planned


def _quit(args: list[bytes]) -> Plan:
    return Immediate(OK, close=True)


def _readonly(args: list[bytes]) -> Plan:
    return ReadMode(stale=True) if len(args) == 1 else wrong_arity(args[0])


def _readwrite(args: list[bytes]) -> Plan:
    return ReadMode(stale=False) if len(args) == 1 else wrong_arity(args[0])


BACKUP_COMMAND = b"PAXOS.BACKUP"


def _backup(args: list[bytes]) -> Plan:
    """``PAXOS.BACKUP BEGIN | CHUNK token seq | END token`` (``runtime.backup``): carried to
    the node's backup handler as one ``Custom`` payload of its words."""
    words = args[1:]
    if not words or len(words) > 3 or any(not w.isalnum() for w in words):
        return error("ERR usage: PAXOS.BACKUP BEGIN | CHUNK token seq | END token")
    return Custom(BACKUP_COMMAND, b" ".join(words), write=False)


_ADMIN_ARITY: dict[bytes, int] = {
    **dict.fromkeys((b"PING", b"INFO", b"COMMAND", b"HELLO", b"QUIT"), -1),
    **dict.fromkeys((b"CONFIG", b"CLIENT", b"AUTH", b"WATCH"), -2),
    **dict.fromkeys((b"READONLY", b"READWRITE", b"TIME", b"RESET"), 1),
    **dict.fromkeys((b"MULTI", b"EXEC", b"DISCARD", b"UNWATCH"), 1),
    **dict.fromkeys((b"ECHO", b"SELECT"), 2),
    b"WAIT": 3,
    b"PAXOS.REQ": -5,
    b"PAXOS.MEMBER": -2,
    **dict.fromkeys((b"BLPOP", b"BRPOP", b"BZPOPMIN", b"BZPOPMAX"), -3),
    **dict.fromkeys((b"BLMOVE",), 6),
    **dict.fromkeys((b"BRPOPLPUSH",), 4),
    **dict.fromkeys((b"BLMPOP", b"BZMPOP"), -5),
    **dict.fromkeys((b"SUBSCRIBE", b"PSUBSCRIBE", b"PUBSUB"), -2),
    **dict.fromkeys((b"PAXOS.SUBSCRIBE", b"PAXOS.PSUBSCRIBE"), -2),
    **dict.fromkeys((b"UNSUBSCRIBE", b"PUNSUBSCRIBE"), -1),
    b"PUBLISH": 3,
    BACKUP_COMMAND: -2,
}
"""Arities of the commands planned outside the key-value table (a test checks that every one
has an entry)."""

_ADMIN: dict[bytes, Callable[[list[bytes]], Plan]] = {
    b"PING": _ping,
    b"INFO": _info,
    b"COMMAND": _command,
    b"CONFIG": _config,
    b"CLIENT": _client,
    b"SELECT": _select,
    b"QUIT": _quit,
    b"READONLY": _readonly,
    b"READWRITE": _readwrite,
    b"HELLO": _hello,
    b"AUTH": _auth,
    b"ECHO": _echo,
    b"TIME": _time,
    b"RESET": lambda args: _node(plan_reset(args)),
    b"WAIT": lambda args: _node(plan_wait(args)),
    b"PAXOS.MEMBER": lambda args: _node(plan_member(args)),
    **dict.fromkeys(BLOCKING_COMMANDS, _blocking),
    b"MULTI": _tx(1, 1),
    b"EXEC": _tx(1, 1),
    b"DISCARD": _tx(1, 1),
    b"WATCH": _tx(2, None),
    b"UNWATCH": _tx(1, 1),
    **dict.fromkeys(PUBSUB_COMMANDS, _pubsub),
    BACKUP_COMMAND: _backup,
}
