"""Server and connection commands that need no log: the families pypaxos does not serve,
``CONFIG SET`` validation, ``COMMAND``'s table, ``WAIT``.

Kept apart from ``runtime.admin_commands`` (which plans the rest of these families) so that
the planners stay about turning commands into plans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pypaxos.transport.resp import encode_bulk, encode_error, encode_integer, encode_simple

if TYPE_CHECKING:
    from pypaxos.runtime.server import RespConnection

_STREAMS = (
    "XADD XACK XAUTOCLAIM XCLAIM XDEL XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP "
    "XREVRANGE XSETID XTRIM"
)
_GEO = (
    "GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUS_RO GEORADIUSBYMEMBER "
    "GEORADIUSBYMEMBER_RO GEOSEARCH GEOSEARCHSTORE"
)
_HYPERLOGLOG = "PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST"
_BITMAPS = "SETBIT GETBIT BITCOUNT BITOP BITPOS BITFIELD BITFIELD_RO"

UNSUPPORTED_FAMILIES: dict[bytes, str] = {
    name.encode(): family
    for names, family in (
        (_STREAMS, "streams"),
        (_GEO, "geo commands"),
        (_HYPERLOGLOG, "HyperLogLog commands"),
        (_BITMAPS, "bitmap commands"),
    )
    for name in names.split()
}
"""The Redis commands of the data types pypaxos does not implement, by upper-case name: the
family that the unknown-command error names."""


def unknown_command(shown_name: str) -> bytes:
    """Redis's unknown-command error, naming the family when the command is one of the data
    types pypaxos leaves out (so a user learns it is a choice, not a typo)."""
    family = UNSUPPORTED_FAMILIES.get(shown_name.upper().encode())
    if family is None:
        return encode_error(f"ERR unknown command '{shown_name}'")
    return encode_error(
        f"ERR unknown command '{shown_name}': {family} are not supported by pypaxos"
    )


MEMBER_KIND = "PAXOS.MEMBER"
"""``PAXOS.MEMBER``: the membership (``runtime.members_admin`` answers it)."""
MEMBER_SUBCOMMANDS = {b"LIST": 2, b"ADD": 5, b"PROMOTE": 3, b"REMOVE": 3, b"REPLACE": 4}
"""Each ``PAXOS.MEMBER`` subcommand's argument count, the command's name included."""

ADMIN_KINDS = frozenset(
    {"CONFIG SET", "CONFIG RESETSTAT", "CLIENT LIST", "CLIENT KILL", MEMBER_KIND}
)
"""The node commands that change the server or the cluster, or show other clients: an
``admin`` role's."""

OK = encode_simple("OK")
RESET = encode_simple("RESET")


@dataclass(frozen=True, slots=True)
class NodeCommand:
    """A command this node answers from its own server and connection state (not replicated):
    ``kind`` names it (``CONFIG SET``, ``CLIENT LIST``, ``RESET``...), ``args`` are checked."""

    kind: str
    args: tuple[bytes, ...] = ()


def _arity(name: str) -> bytes:
    return encode_error(f"ERR wrong number of arguments for '{name}' command")


# -- planning (no state) ------------------------------------------------------------------------


def plan_config(args: list[bytes]) -> NodeCommand | bytes:
    """``CONFIG SET name value...``, ``CONFIG RESETSTAT`` (``CONFIG GET`` is planned by
    ``runtime.admin_commands``)."""
    sub = args[1].upper()
    if sub == b"SET":
        if len(args) < 4 or len(args) % 2:
            return _arity("config|set")
        return NodeCommand("CONFIG SET", tuple(args[2:]))
    if sub == b"RESETSTAT":
        return NodeCommand("CONFIG RESETSTAT") if len(args) == 2 else _arity("config|resetstat")
    shown = args[1].decode(errors="replace")
    return encode_error(f"ERR unknown subcommand '{shown}'. Try CONFIG HELP.")


_ON_OFF = frozenset({b"ON", b"OFF"})
_KILL_FILTERS = frozenset({b"ID", b"ADDR", b"LADDR", b"USER", b"SKIPME", b"TYPE", b"MAXAGE"})


def plan_client(args: list[bytes]) -> NodeCommand | bytes:
    """``CLIENT LIST|INFO|KILL|NO-EVICT|NO-TOUCH|SETINFO`` (``ID``/``GETNAME``/``SETNAME`` are
    planned by ``runtime.admin_commands``)."""
    sub = args[1].upper()
    name = "client|" + sub.decode(errors="replace").lower()
    if sub in (b"NO-EVICT", b"NO-TOUCH"):
        if len(args) != 3:
            return _arity(name)
        return OK if args[2].upper() in _ON_OFF else encode_error("ERR syntax error")
    if sub == b"SETINFO":
        if len(args) != 4:
            return _arity(name)
        attribute = args[2].upper()
        if attribute not in (b"LIB-NAME", b"LIB-VER"):
            shown = args[2].decode(errors="replace")
            return encode_error(f"ERR Unrecognized option '{shown}'")
        if any(c < 33 or c > 126 for c in args[3]):
            return encode_error(
                f"ERR {attribute.decode().lower()} cannot contain spaces, newlines or special "
                "characters."
            )
        return NodeCommand("CLIENT SETINFO", (attribute, args[3]))
    if sub == b"INFO":
        return NodeCommand("CLIENT INFO") if len(args) == 2 else _arity(name)
    if sub == b"LIST":
        if len(args) == 2:
            return NodeCommand("CLIENT LIST")
        if len(args) >= 4 and args[2].upper() == b"ID":
            ids = tuple(args[3:])
            if not all(_client_id(raw) is not None for raw in ids):
                return encode_error("ERR Invalid client ID")
            return NodeCommand("CLIENT LIST", ids)
        if len(args) == 4 and args[2].upper() == b"TYPE":
            return NodeCommand("CLIENT LIST", (b"TYPE", args[3].lower()))
        return encode_error("ERR syntax error")
    if sub == b"KILL":
        if len(args) == 3:
            return NodeCommand("CLIENT KILL", (b"ADDR", args[2], b"OLD", b""))
        if len(args) % 2:
            return encode_error("ERR syntax error")
        filters = args[2:]
        for index in range(0, len(filters), 2):
            option, value = filters[index].upper(), filters[index + 1]
            if option not in _KILL_FILTERS:
                return encode_error("ERR syntax error")
            if option == b"ID" and _client_id(value) is None:
                return encode_error("ERR client-id should be greater than 0")
            if option == b"SKIPME" and value.upper() not in (b"YES", b"NO"):
                return encode_error("ERR syntax error")
            if option == b"MAXAGE" and not value.isdigit():
                return encode_error("ERR syntax error")
        return NodeCommand("CLIENT KILL", tuple(filters))
    shown = args[1].decode(errors="replace")
    return encode_error(f"ERR unknown subcommand '{shown}'. Try CLIENT HELP.")


def _client_id(raw: bytes) -> int | None:
    if not raw.isdigit() or len(raw) > 19:
        return None
    number = int(raw)
    return number if number >= 1 else None


def plan_member(args: list[bytes]) -> NodeCommand | bytes:
    """``PAXOS.MEMBER`` checked for its shape (the node checks the values)."""
    if len(args) < 2:
        return encode_error("ERR wrong number of arguments for 'paxos.member' command")
    sub = args[1].upper()
    count = MEMBER_SUBCOMMANDS.get(sub)
    if count is None:
        shown = args[1].decode(errors="replace")
        return encode_error(
            f"ERR unknown subcommand '{shown}'. Try LIST, ADD, PROMOTE, REMOVE or REPLACE."
        )
    if len(args) != count:
        name = "paxos.member|" + sub.decode().lower()
        return encode_error(f"ERR wrong number of arguments for '{name}' command")
    return NodeCommand(MEMBER_KIND, (sub, *args[2:]))


def plan_reset(args: list[bytes]) -> NodeCommand | bytes:
    return NodeCommand("RESET") if len(args) == 1 else _arity("reset")


def plan_wait(args: list[bytes]) -> NodeCommand | bytes:
    """``WAIT numreplicas timeout``: see ``node_reply``."""
    if len(args) != 3:
        return _arity("wait")
    for raw in args[1:]:
        if not (raw.isdigit() or (raw[:1] == b"-" and raw[1:].isdigit())) or len(raw) > 19:
            return encode_error("ERR value is not an integer or out of range")
    if int(args[2]) < 0:
        return encode_error("ERR timeout is negative")
    return NodeCommand("WAIT", tuple(args[1:]))


# -- answering (this node's state) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """A ``CONFIG SET`` -able setting: ``apply`` checks the value and makes it take effect
    (per node, not replicated, as Redis's settings are per server); ``None`` means done, else
    the reason it was refused."""

    apply: Callable[[RespConnection, bytes], str | None]


def _set_maxclients(conn: RespConnection, raw: bytes) -> str | None:
    if not raw.isdigit() or len(raw) > 19:
        return "argument couldn't be parsed into an integer"
    number = int(raw)
    if not 1 <= number <= 2**32 - 1:
        return "argument must be between 1 and 4294967295 inclusive"
    conn.server.clients_max = number
    conn.server.settings["maxclients"] = str(number)
    return None


_EVENT_CLASSES = "g$lshzxetd"  # "A" stands for all of these, in this order
_EVENT_OTHERS = "nKEm"  # not in "A"


def keyspace_events_text(raw: bytes) -> str | None:
    """``notify-keyspace-events`` in Redis's canonical spelling (the classes in a fixed order,
    ``A`` for all of them, then ``K``, ``E``, ``m``), or ``None`` for a character Redis does not
    know."""
    chosen: set[str] = set()
    for char in raw.decode(errors="replace"):
        if char == "A":
            chosen.update(_EVENT_CLASSES)
        elif char in _EVENT_CLASSES or char in _EVENT_OTHERS:
            chosen.add(char)
        else:
            return None
    if chosen >= set(_EVENT_CLASSES):
        text = "A" + ("n" if "n" in chosen else "")
    else:
        text = "".join(c for c in _EVENT_CLASSES + "n" if c in chosen)
    return text + "".join(c for c in "KEm" if c in chosen)


def _set_notify_keyspace_events(conn: RespConnection, raw: bytes) -> str | None:
    """Only recorded here: the notifications themselves belong to pub/sub."""
    text = keyspace_events_text(raw)
    if text is None:
        return "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    conn.server.settings["notify-keyspace-events"] = text
    return None


MUTABLE_SETTINGS: dict[str, Setting] = {
    "maxclients": Setting(_set_maxclients),
    "notify-keyspace-events": Setting(_set_notify_keyspace_events),
}
"""What ``CONFIG SET`` may change; the other settings ``CONFIG GET`` shows are fixed at start
(from the cluster file) and refused as immutable."""


def _config_set(conn: RespConnection, pairs: tuple[bytes, ...]) -> bytes:
    names = [raw.decode(errors="replace").lower() for raw in pairs[::2]]
    for name in names:  # check every name before changing anything, as Redis does
        if name not in MUTABLE_SETTINGS:
            if name in conn.server.settings:
                return encode_error(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set "
                    "immutable config"
                )
            return encode_error(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
    repeated = [name for index, name in enumerate(names) if name in names[:index]]
    if repeated:
        return encode_error(
            f"ERR CONFIG SET failed (possibly related to argument '{repeated[0]}') - duplicate "
            "parameter"
        )
    for name, raw in zip(names, pairs[1::2], strict=True):
        refused = MUTABLE_SETTINGS[name].apply(conn, raw)
        if refused is not None:
            return encode_error(
                f"ERR CONFIG SET failed (possibly related to argument '{name}') - {refused}"
            )
    return OK


def client_line(conn: RespConnection, now_s: float) -> str:
    """One ``CLIENT LIST`` line, Redis's field names (the ones with no meaning here omitted)."""
    user = conn.user.name if conn.user is not None else "default"
    flags = ("x" if conn.tx.active else "") + ("b" if conn.blocked_slot is not None else "")
    multi = len(conn.tx.queue) if conn.tx.queue is not None else -1
    fields = [
        f"id={conn.connection_id}",
        f"addr={conn.peer}",
        f"laddr={conn.local_address}",
        f"name={conn.name.decode(errors='replace')}",
        f"age={int(now_s - conn.opened_s)}",
        f"idle={int(now_s - conn.active_s)}",
        f"flags={flags or 'N'}",
        f"db={conn.db}",
        f"multi={multi}",
        f"user={user}",
        f"lib-name={conn.lib_name}",
        f"lib-ver={conn.lib_version}",
        f"resp={conn.protocol}",
    ]
    return " ".join(fields) + "\n"


def _kill_matches(conn: RespConnection, me: RespConnection, filters: tuple[bytes, ...]) -> bool:
    skip_me = True
    for index in range(0, len(filters), 2):
        option, value = filters[index].upper(), filters[index + 1]
        user = conn.user.name if conn.user is not None else "default"
        if option == b"OLD":
            skip_me = False
        elif option == b"SKIPME":
            skip_me = value.upper() == b"YES"
        elif (
            (option == b"ID" and conn.connection_id != int(value))
            or (option == b"ADDR" and conn.peer.encode() != value)
            or (option == b"LADDR" and conn.local_address.encode() != value)
            or (option == b"USER" and user.encode() != value)
            or (option == b"TYPE" and value.lower() != b"normal")
            or (option == b"MAXAGE" and time.monotonic() - conn.opened_s < int(value))
        ):
            return False
    return not (skip_me and conn is me)


def _client_kill(conn: RespConnection, filters: tuple[bytes, ...]) -> bytes:
    victims = [c for c in list(conn.server.connections) if _kill_matches(c, conn, filters)]
    for victim in victims:
        if victim is conn:
            conn.close_after_reply = True
        else:
            victim.abort()
    if filters[2:3] == (b"OLD",):  # CLIENT KILL addr:port answers OK or an error
        return OK if victims else encode_error("ERR No such client")
    return encode_integer(len(victims))


def _wait(conn: RespConnection) -> bytes:
    """In Paxos a write is acknowledged only once a majority has accepted it, so every write
    this connection was answered for is held by at least a majority: the reply is that many
    replicas besides the leader (``members // 2``), at once, whatever the timeout."""
    return encode_integer(conn.server.cluster_size // 2)


def node_reply(conn: RespConnection, command: NodeCommand) -> bytes:
    """The reply to ``command`` from this node and connection, applying its effect."""
    kind, args = command.kind, command.args
    server = conn.server
    if kind == "CONFIG SET":
        return _config_set(conn, args)
    if kind == "CONFIG RESETSTAT":
        server.reset_stats()
        return OK
    if kind == "CLIENT SETINFO":
        if args[0] == b"LIB-NAME":
            conn.lib_name = args[1].decode()
        else:
            conn.lib_version = args[1].decode()
        return OK
    now_s = time.monotonic()
    if kind == "CLIENT INFO":
        return encode_bulk(client_line(conn, now_s).encode())
    if kind == "CLIENT LIST":
        chosen = sorted(server.connections, key=lambda c: c.connection_id)
        if args and args[0] == b"TYPE":
            chosen = chosen if args[1] == b"normal" else []
        elif args:
            wanted = {int(raw) for raw in args}
            chosen = [c for c in chosen if c.connection_id in wanted]
        return encode_bulk("".join(client_line(c, now_s) for c in chosen).encode())
    if kind == "CLIENT KILL":
        return _client_kill(conn, args)
    if kind == "RESET":
        conn.reset()
        return RESET
    if kind == "WAIT":
        return _wait(conn)
    raise AssertionError(kind)
