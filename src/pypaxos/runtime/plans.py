"""What a client command becomes before it runs: a plan, without I/O.

``runtime.commands.plan`` turns a command into one of these: an ``Immediate`` reply (errors,
``PING``, constants), an ``Ops`` plan (the ``kv`` commands to run through the log and the
``combine`` that turns their results into the one RESP reply), or a request the connection or
the server answers itself (``Hello``, ``Info``, ``TxCommand``...).  The server, the request
batching and the transactions consume these types; the planner modules
(``runtime.string_commands``, ``script_commands``, ``admin_commands``...) produce them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pypaxos.kv import Command
from pypaxos.runtime.blocking import Blocking
from pypaxos.runtime.databases import SelectDb
from pypaxos.runtime.pubsub import PubSubCommand
from pypaxos.runtime.replies import Combine
from pypaxos.runtime.server_commands import NodeCommand
from pypaxos.transport.resp import encode_error, encode_simple

KEY_BYTES_MAX = 64 * 1024

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


@dataclass(frozen=True, slots=True)
class KvSpec:
    """One key-value command's entry in the planner table: its arity and its planner."""

    arity_min: int  # counting the command name
    arity_max: int | None  # None: any number above the minimum
    build: Callable[[list[bytes]], Ops | Immediate]
    multi_key: bool = False
