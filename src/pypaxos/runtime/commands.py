"""RESP commands to key-value operations and results back to RESP replies, without I/O.

``plan(args)`` turns one client command (a list of byte strings from ``RespParser``) into a plan
(``runtime.plans``): an ``Immediate`` reply (errors, ``PING``, the connection-setup commands
stock clients send), an ``Ops`` plan (the ``kv`` commands to run through the log and a
``combine`` function that turns their results into the one RESP reply), or a request the
connection or the server answers.  The server owns the sessions and the I/O.  The planners live
by family: ``runtime.string_commands`` (strings and keys, Redis 7.0.15: ``REDIS_VERSION``),
``collection_commands``, ``databases``, ``script_commands``, gathered in ``command_table``;
``admin_commands`` for the rest.  Here: the dispatch, ``PAXOS.REQ``, the hot path, the access
each plan needs, and what a script's ``redis.call`` may run.

Under ``PAXOS.REQ`` a command must be a single log command (one ``(client_id, seq)`` names one
request), so the multi-key forms are refused there.

Reads (plans of ``kv.READ_OPS`` only: ``GET``, ``MGET``, ``EXISTS``, ``STRLEN``, ``GETRANGE``
and ``TYPE`` as ``Get`` s; ``TTL``, ``DBSIZE``, ``KEYS``, ``SCAN``...) are linearizable whichever
way the server sends them: through the log like writes, or on the leader's read-index path
(``reads = "read-index"``).  ``READONLY`` / ``READWRITE`` (``ReadMode``) switch a connection's
stale mode on and off: reads answered from the local node's state at once, as Redis Cluster
replicas do after ``READONLY``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pypaxos.kv import Command, Get, Incr, Result, Set
from pypaxos.kv.pubsub_ops import Publish
from pypaxos.runtime.admin_commands import ADMIN, BACKUP_COMMAND
from pypaxos.runtime.auth import Access
from pypaxos.runtime.blocking import Blocking
from pypaxos.runtime.command_table import KV_COMMANDS, plan_kv, reads_only
from pypaxos.runtime.databases import select_in_script
from pypaxos.runtime.plans import (
    KEY_BYTES_MAX,
    OK,
    Custom,
    Immediate,
    Ops,
    Plan,
    error,
    wrong_arity,
)
from pypaxos.runtime.pubsub import PubSubCommand
from pypaxos.runtime.replies import NULL_RESP2, Combine, result_error
from pypaxos.runtime.server_commands import ADMIN_KINDS, NodeCommand, unknown_command
from pypaxos.runtime.string_commands import (
    combine_get,
    combine_integer,
    combine_ok,
    reply_get,
    reply_integer,
    reply_ok,
)
from pypaxos.transport.resp import (
    encode_error,
    encode_integer,
)

REDIS_VERSION = "7.0.15"
"""The Redis whose command semantics the server follows (replies, errors; see ``kv.keyspace``):
what ``INFO`` and ``HELLO`` report, so that clients that check versions see a Redis 7."""

ID_MAX = 2**63 - 1


def plan(args: list[bytes]) -> Plan:
    """The plan for one command; ``args`` is non-empty (the parser drops empty commands)."""
    name = args[0].upper()
    if name == b"PAXOS.REQ":
        return _paxos_req(args)
    spec = KV_COMMANDS.get(name)
    if spec is not None:
        return plan_kv(name, args, spec, None)
    admin = ADMIN.get(name)
    if admin is not None:
        return admin(args)
    return Immediate(unknown_command(args[0].decode(errors="replace")))


CONNECTION_COMMANDS = frozenset({b"AUTH", b"HELLO", b"QUIT"})
"""What a connection may send before it authenticates."""


def required_access(name: bytes, planned: Plan) -> Access:
    """What running ``planned`` (the plan of command ``name``, upper case) needs a role to allow."""
    if name in CONNECTION_COMMANDS:
        return Access.CONNECTION
    if isinstance(planned, Ops) and not all(reads_only(op) for op in planned.ops):
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
    reply, or the reply itself (``kv.script_calls.CommandTable``).  Every key-value command is
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
    spec = KV_COMMANDS.get(name)
    if spec is None or name in _NOT_FROM_SCRIPTS:
        admin = ADMIN.get(name)
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
    planned = plan_kv(name, argv, spec, None)
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
    spec = KV_COMMANDS.get(args[0].upper())
    if spec is None or b"|" in reply.split(b"'")[1]:
        return True  # a server command's, or a subcommand's (SCRIPT LOAD)
    count = len(args)
    return count < spec.arity_min or (spec.arity_max is not None and count > spec.arity_max)


FAST_COMMANDS: dict[bytes, tuple[int, Callable[..., Command], Reply1, int]] = {}
"""``plain_single``'s table: name -> (arity, op class taking the arguments, reply, the most
bytes the arguments after the name may total: ``KEY_BYTES_MAX`` less the name's length)."""
for _name, _arity, _build, _reply, _combine in (
    (b"GET", 2, Get, reply_get, combine_get),
    (b"SET", 3, Set, reply_ok, combine_ok),
    (b"INCR", 2, Incr, reply_integer, combine_integer),
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
    spec = KV_COMMANDS.get(name)
    if spec is None:
        shown = inner[0].decode(errors="replace")
        return error(f"ERR PAXOS.REQ cannot run '{shown}' (only key-value commands)")
    return plan_kv(name, inner, spec, (client_id, seq))


def _positive_id(raw: bytes) -> int | None:
    if not raw.isdigit() or len(raw) > 19:
        return None
    number = int(raw)
    return number if 1 <= number <= ID_MAX else None
