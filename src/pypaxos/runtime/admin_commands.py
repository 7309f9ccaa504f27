"""RESP planners for the commands outside the key-value table: the connection's (``HELLO``,
``AUTH``, ``CLIENT``...), the server's (``INFO``, ``CONFIG``, ``COMMAND``, ``WAIT``...),
transactions, blocking commands, pub/sub and ``PAXOS.BACKUP``.  ``ADMIN`` maps each name to its
planner, ``ADMIN_ARITY`` to its Redis arity; ``COMMAND`` describes every command from these
tables and the key-value one (``runtime.command_table``)."""

from __future__ import annotations

from collections.abc import Callable

from pypaxos.runtime.blocking import BLOCKING_PLANNERS
from pypaxos.runtime.collection_commands import BLOCKING_COMMANDS
from pypaxos.runtime.command_table import KV_COMMANDS, reads_only
from pypaxos.runtime.databases import plan_select
from pypaxos.runtime.plans import (
    EMPTY_ARRAY,
    OK,
    PONG,
    Auth,
    ClientCommand,
    ConfigGet,
    Custom,
    Hello,
    Immediate,
    Info,
    Ops,
    Plan,
    ReadMode,
    ServerTime,
    TxCommand,
    error,
    wrong_arity,
)
from pypaxos.runtime.pubsub import PUBSUB_COMMANDS, config_set_notify, plan_pubsub
from pypaxos.runtime.replies import NULL_RESP2
from pypaxos.runtime.server_commands import (
    NodeCommand,
    plan_client,
    plan_config,
    plan_member,
    plan_reset,
    plan_wait,
)
from pypaxos.runtime.string_commands import combine_ok
from pypaxos.transport.resp import (
    encode_array,
    encode_bulk,
    encode_integer,
    encode_simple,
)


def _blocking(args: list[bytes]) -> Plan:
    name = args[0].upper()
    planner = BLOCKING_PLANNERS.get(name)
    if planner is None:
        shown = args[0].decode(errors="replace").lower()
        return error(f"ERR '{shown}' (a blocking command) is not supported by this server yet")
    planned = planner(args)
    return Immediate(planned) if isinstance(planned, bytes) else planned


def _tx(arity_min: int, arity_max: int | None) -> Callable[[list[bytes]], Plan]:
    def planner(args: list[bytes]) -> Plan:
        if len(args) < arity_min or (arity_max is not None and len(args) > arity_max):
            return wrong_arity(args[0])
        return TxCommand(args[0].upper(), tuple(args[1:]))

    return planner


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
    spec = KV_COMMANDS.get(name)
    if spec is None:
        return ADMIN_ARITY.get(name, -1)
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
    spec = KV_COMMANDS.get(name)
    if spec is None:
        return []
    for fill in _SAMPLE_FILLS:
        planned = spec.build([name, *fill * spec.arity_min][: spec.arity_min])
        if isinstance(planned, Ops):
            return [b"readonly"] if all(reads_only(op) for op in planned.ops) else [b"write"]
    return [b"write"]


def _keys_of(name: bytes) -> tuple[int, int, int]:
    if name in _KEY_POSITIONS:
        return _KEY_POSITIONS[name]
    if name in _MOVABLE_KEYS or name in _NO_KEYS or name not in KV_COMMANDS:
        return (0, 0, 0)
    return (1, 1, 1) if KV_COMMANDS[name].arity_min >= 2 else (0, 0, 0)


def command_names() -> list[bytes]:
    """Every command this server answers, lower case, sorted."""
    return sorted(n.lower() for n in {*KV_COMMANDS, *ADMIN, b"PAXOS.REQ"})


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
    if upper not in KV_COMMANDS and upper not in ADMIN:
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
            return Ops((notify,), combine_ok)
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


ADMIN_ARITY: dict[bytes, int] = {
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

ADMIN: dict[bytes, Callable[[list[bytes]], Plan]] = {
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
