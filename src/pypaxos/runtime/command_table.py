"""The key-value planner table: every key-value command's ``KvSpec``, gathered from the
families' modules (strings and keys, collections, databases, scripts), and planning through it
with the checks every key-value command shares (arity, sizes, ``PAXOS.REQ``'s one key)."""

from __future__ import annotations

from collections.abc import Callable

from pypaxos.kv import READ_OPS, VALUE_BYTES_MAX, Command
from pypaxos.kv.commands import Eval
from pypaxos.runtime.collection_commands import COLLECTION_COMMANDS, Planned
from pypaxos.runtime.databases import DATABASE_COMMANDS
from pypaxos.runtime.plans import KEY_BYTES_MAX, Immediate, KvSpec, Ops, Plan, error, wrong_arity
from pypaxos.runtime.script_commands import SCRIPT_COMMANDS
from pypaxos.runtime.string_commands import STRING_COMMANDS

KV_COMMANDS: dict[bytes, KvSpec] = dict(STRING_COMMANDS)


def plan_kv(name: bytes, args: list[bytes], spec: KvSpec, session: tuple[int, int] | None) -> Plan:
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


def _collection_spec(
    arity_min: int, arity_max: int | None, build: Callable[[list[bytes]], Planned]
) -> KvSpec:
    def plan_one(args: list[bytes]) -> Ops | Immediate:
        planned = build(args)
        if isinstance(planned, bytes):
            return Immediate(planned)
        return Ops(*planned)

    return KvSpec(arity_min, arity_max, plan_one)


for _name, (_low, _high, _collection_build) in COLLECTION_COMMANDS.items():
    KV_COMMANDS[_name] = _collection_spec(_low, _high, _collection_build)
for _name, (_low, _high, _database_build) in DATABASE_COMMANDS.items():
    KV_COMMANDS[_name] = _collection_spec(_low, _high, _database_build)

KV_COMMANDS.update(SCRIPT_COMMANDS)


def reads_only(op: Command) -> bool:
    """Does ``op`` change no data (a read, or a read-only script: ``EVAL_RO``)?"""
    return isinstance(op, READ_OPS) or (isinstance(op, Eval) and op.read_only)
