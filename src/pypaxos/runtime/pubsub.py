"""Publish/subscribe on a node: its subscribers, its publication history, and delivery.

``PUBLISH`` is one log command (``kv.pubsub_ops.Publish``).  Every node delivers from its own
applied log: after each batch the node applies, ``PubSubHub.on_applied`` takes the
publications the state machine emitted (``KVStateMachine.take_publications``: ``PUBLISH`` s
and keyspace notifications, in log order) and writes each to this node's subscribers.  Since
every node applies the same log, a subscriber on any node gets every message once, in log
order, however the publisher's node and the leader change.

``PUBLISH`` answers how many subscribers on the publisher's node (channel and matching
patterns) were subscribed when its answer arrived: the count the node can know.  Other nodes'
subscribers receive it too but are not counted; ``PUBSUB CHANNELS|NUMSUB|NUMPAT`` are per node
likewise.

Resuming.  Each message carries its revision (the log position that emitted it) to a
connection that subscribed with ``PAXOS.SUBSCRIBE``/``PAXOS.PSUBSCRIBE``; ``FROM rev`` replays
the kept publications after ``rev`` before the live ones.  A node keeps the recent
publications it applied (``history_messages_max``, ``history_bytes_max``); a revision older
than what it kept is refused with an error saying so, never answered with a gap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pypaxos.kv import Command, Result
from pypaxos.kv.glob import glob_matcher
from pypaxos.kv.pubsub import NOTIFY_FLAGS_INVALID, Publication, parse_notify_flags
from pypaxos.kv.pubsub_ops import NotifyConfig, Publish
from pypaxos.runtime.replies import Combine, result_error
from pypaxos.transport.resp import encode_bulk, encode_error, encode_integer

HISTORY_MESSAGES_MAX = 10_000
HISTORY_BYTES_MAX = 16 * 1024 * 1024

SUBSCRIBE_MODE_COMMANDS = frozenset(
    {
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"UNSUBSCRIBE",
        b"PUNSUBSCRIBE",
        b"PAXOS.SUBSCRIBE",
        b"PAXOS.PSUBSCRIBE",
        b"PING",
        b"QUIT",
        b"RESET",
    }
)
"""What a RESP2 connection with subscriptions may run (Redis's subscribe mode)."""


def subscribe_mode_error(name: bytes) -> bytes:
    """Redis's refusal of another command in RESP2 subscribe mode."""
    shown = name.decode(errors="replace").lower()
    return encode_error(
        f"ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT"
        " / RESET are allowed in this context"
    )


@dataclass(frozen=True, slots=True)
class PubSubCommand:
    """A pub/sub command the connection and its node's hub answer (``name`` upper case)."""

    name: bytes
    args: tuple[bytes, ...]
    revision_from: int | None = None  # PAXOS.(P)SUBSCRIBE FROM rev


def _arity(name: bytes) -> bytes:
    shown = name.decode(errors="replace").lower()
    return encode_error(f"ERR wrong number of arguments for '{shown}' command")


def plan_pubsub(args: list[bytes]) -> PubSubCommand | bytes:
    """The plan of a pub/sub command, or its error reply."""
    name = args[0].upper()
    rest = tuple(args[1:])
    if name in (b"SUBSCRIBE", b"PSUBSCRIBE") and not rest:
        return _arity(name)
    if name == b"PUBLISH" and len(rest) != 2:
        return _arity(name)
    if name == b"RESET" and rest:
        return _arity(name)
    if name == b"PUBSUB":
        if not rest:
            return _arity(name)
        sub = rest[0].upper()
        if sub not in (b"CHANNELS", b"NUMSUB", b"NUMPAT"):
            shown = rest[0].decode(errors="replace")
            return encode_error(f"ERR unknown subcommand '{shown}'. Try PUBSUB HELP.")
        if (sub == b"CHANNELS" and len(rest) > 2) or (sub == b"NUMPAT" and len(rest) != 1):
            return _arity(b"pubsub|" + sub.lower())
        return PubSubCommand(name, (sub, *rest[1:]))
    if name in (b"PAXOS.SUBSCRIBE", b"PAXOS.PSUBSCRIBE"):
        revision: int | None = None
        if len(rest) >= 2 and rest[0].upper() == b"FROM":
            if not rest[1].isdigit() or len(rest[1]) > 18:
                return encode_error("ERR revision is not a non-negative integer")
            revision = int(rest[1])
            rest = rest[2:]
        if not rest:
            return _arity(name)
        return PubSubCommand(name, rest, revision)
    return PubSubCommand(name, rest)


def config_set_notify(args: list[bytes]) -> NotifyConfig | bytes | None:
    """``CONFIG SET notify-keyspace-events flags``: a replicated setting (one log command, so
    every node notifies the same); ``None`` for another parameter."""
    if len(args) != 4 or args[2].lower() != b"notify-keyspace-events":
        return None
    if parse_notify_flags(args[3]) is None:
        return encode_error(NOTIFY_FLAGS_INVALID)
    return NotifyConfig(args[3])


PUBSUB_COMMANDS = (
    b"SUBSCRIBE",
    b"PSUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PUNSUBSCRIBE",
    b"PUBLISH",
    b"PUBSUB",
    b"PAXOS.SUBSCRIBE",
    b"PAXOS.PSUBSCRIBE",
)


# --- the node's side ----------------------------------------------------------------------------


class PublicationSource(Protocol):
    """What the hub needs of the state machine (``kv.KVStateMachine``)."""

    @property
    def applied(self) -> int: ...

    @property
    def publications_floor(self) -> int: ...

    def record_publications(self) -> None: ...

    def take_publications(self) -> list[Publication]: ...


class Subscriber(Protocol):
    """What the hub needs of a connection (``server.RespConnection``)."""

    @property
    def protocol(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def push(self, data: bytes) -> None: ...

    def send_ops(self, ops: tuple[Command, ...], combine: Combine) -> None: ...


class Subscriptions:
    """One connection's channels and patterns (insertion ordered)."""

    __slots__ = ("channels", "patterns", "revisions")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.revisions = False  # PAXOS.(P)SUBSCRIBE: messages carry their revision

    @property
    def count(self) -> int:
        return len(self.channels) + len(self.patterns)


def _head(protocol: int, size: int) -> bytes:
    return b"%s%d\r\n" % (b">" if protocol == 3 else b"*", size)


def _frame(protocol: int, parts: Sequence[bytes | int | None]) -> bytes:
    out = [_head(protocol, len(parts))]
    for part in parts:
        if part is None:
            out.append(b"_\r\n" if protocol == 3 else b"$-1\r\n")
        elif isinstance(part, int):
            out.append(encode_integer(part))
        else:
            out.append(encode_bulk(part))
    return b"".join(out)


class PubSubHub:
    """The subscribers connected to this node, and this node's recent publications."""

    def __init__(
        self,
        source: PublicationSource,
        *,
        history_messages_max: int = HISTORY_MESSAGES_MAX,
        history_bytes_max: int = HISTORY_BYTES_MAX,
    ) -> None:
        source.record_publications()
        self.source = source
        self.history_messages_max = history_messages_max
        self.history_bytes_max = history_bytes_max
        self.history: deque[Publication] = deque()
        self.history_bytes = 0
        # A resume from revision r needs every publication after r: kept iff r >= floor.
        self.floor = source.publications_floor
        self.channels: dict[bytes, dict[Subscriber, None]] = {}
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], dict[Subscriber, None]]] = {}
        self.subscriptions: dict[Subscriber, Subscriptions] = {}
        self.delivered = 0  # messages written to subscribers, for tests and metrics

    # -- delivery --------------------------------------------------------------------------

    def on_applied(self) -> None:
        """After a batch this node applied: deliver what it published."""
        if self.source.publications_floor > self.floor:  # a snapshot skipped revisions
            self.history.clear()
            self.history_bytes = 0
            self.floor = self.source.publications_floor
        publications = self.source.take_publications()
        if not publications:
            return
        out: dict[Subscriber, list[bytes]] = {}
        for publication in publications:
            self._keep(publication)
            for conn, frame in self._frames(publication):
                out.setdefault(conn, []).append(frame)
        for conn, frames in out.items():
            if not conn.closed:
                self.delivered += len(frames)
                conn.push(b"".join(frames))

    def _keep(self, publication: Publication) -> None:
        history = self.history
        history.append(publication)
        self.history_bytes += len(publication.channel) + len(publication.message)
        while history and (
            len(history) > self.history_messages_max or self.history_bytes > self.history_bytes_max
        ):
            dropped = history.popleft()
            self.history_bytes -= len(dropped.channel) + len(dropped.message)
            self.floor = max(self.floor, dropped.revision)

    def _frames(self, publication: Publication) -> list[tuple[Subscriber, bytes]]:
        channel = publication.channel
        found: list[tuple[Subscriber, bytes]] = []
        for conn in self.channels.get(channel, ()):
            found.append((conn, self._message(conn, [b"message", channel], publication)))
        for pattern, (match, conns) in self.patterns.items():
            if match(channel):
                for conn in conns:
                    parts = [b"pmessage", pattern, channel]
                    found.append((conn, self._message(conn, parts, publication)))
        return found

    def _message(self, conn: Subscriber, parts: list[bytes], publication: Publication) -> bytes:
        items: list[bytes | int | None] = [*parts, publication.message]
        subs = self.subscriptions.get(conn)
        if subs is not None and subs.revisions:
            items.append(publication.revision)
        return _frame(conn.protocol, items)

    def receivers(self, channel: bytes) -> int:
        """How many subscriptions on this node a message on ``channel`` reaches."""
        count = len(self.channels.get(channel, ()))
        for match, conns in self.patterns.values():
            if match(channel):
                count += len(conns)
        return count

    # -- commands --------------------------------------------------------------------------

    def publish_ops(self, command: PubSubCommand) -> tuple[tuple[Command, ...], Combine]:
        """``PUBLISH``'s log command, and its reply: this node's receivers, counted when the
        answer arrives."""
        channel, message = command.args

        def combine(results: Sequence[Result], null: bytes) -> bytes:
            (result,) = results
            return result_error(result) or encode_integer(self.receivers(channel))

        return (Publish(channel, message),), combine

    def run(self, conn: Subscriber, command: PubSubCommand) -> bytes | None:
        """Run ``command`` for ``conn``: its reply, or ``None`` when it went to the log."""
        name = command.name
        if name == b"PUBLISH":
            conn.send_ops(*self.publish_ops(command))
            return None
        if name == b"PUBSUB":
            return self._pubsub(conn, command.args)
        if name in (b"SUBSCRIBE", b"PAXOS.SUBSCRIBE"):
            return self.subscribe(conn, command, pattern=False)
        if name in (b"PSUBSCRIBE", b"PAXOS.PSUBSCRIBE"):
            return self.subscribe(conn, command, pattern=True)
        if name == b"UNSUBSCRIBE":
            return self.unsubscribe(conn, command.args, pattern=False)
        if name == b"PUNSUBSCRIBE":
            return self.unsubscribe(conn, command.args, pattern=True)
        return encode_error("ERR internal error: unknown pub/sub command")

    def subscribe(self, conn: Subscriber, command: PubSubCommand, *, pattern: bool) -> bytes:
        revision = command.revision_from
        extended = command.name.startswith(b"PAXOS.")
        self.on_applied()  # everything applied so far is delivered before the reply
        if revision is not None and revision < self.floor:
            return encode_error(
                f"ERR revision {revision} is no longer kept: this node's publication history"
                f" holds the revisions after {self.floor}; resubscribe without FROM"
            )
        subs = self.subscriptions.get(conn)
        if subs is None:
            subs = self.subscriptions[conn] = Subscriptions()
        if extended:
            subs.revisions = True
        kind = b"psubscribe" if pattern else b"subscribe"
        frames: list[bytes] = []
        for name in command.args:
            if pattern:
                if name not in subs.patterns:
                    subs.patterns[name] = None
                    entry = self.patterns.get(name)
                    if entry is None:
                        entry = self.patterns[name] = (glob_matcher(name), {})
                    entry[1][conn] = None
            elif name not in subs.channels:
                subs.channels[name] = None
                self.channels.setdefault(name, {})[conn] = None
            parts: list[bytes | int | None] = [kind, name, subs.count]
            if extended:
                parts.append(self.source.applied)
            frames.append(_frame(conn.protocol, parts))
        if revision is not None:
            frames += self._replay(conn, command.args, revision, pattern)
        return b"".join(frames)

    def _replay(
        self, conn: Subscriber, names: tuple[bytes, ...], revision: int, pattern: bool
    ) -> list[bytes]:
        """The kept publications after ``revision`` for the ``names`` just subscribed."""
        frames: list[bytes] = []
        wanted = set(names)
        matchers = [(name, glob_matcher(name)) for name in dict.fromkeys(names)]
        for publication in self.history:
            if publication.revision <= revision:
                continue
            channel = publication.channel
            if not pattern:
                if channel in wanted:
                    frames.append(self._message(conn, [b"message", channel], publication))
                continue
            for name, match in matchers:
                if match(channel):
                    parts = [b"pmessage", name, channel]
                    frames.append(self._message(conn, parts, publication))
        return frames

    def unsubscribe(self, conn: Subscriber, names: tuple[bytes, ...], *, pattern: bool) -> bytes:
        subs = self.subscriptions.get(conn)
        current = (subs.patterns if pattern else subs.channels) if subs is not None else {}
        kind = b"punsubscribe" if pattern else b"unsubscribe"
        targets = list(names) if names else list(current)
        if not targets:
            return _frame(conn.protocol, [kind, None, subs.count if subs is not None else 0])
        frames: list[bytes] = []
        for name in targets:
            if subs is not None and name in current:
                del current[name]
                self._forget(conn, name, pattern)
            count = subs.count if subs is not None else 0
            frames.append(_frame(conn.protocol, [kind, name, count]))
        if subs is not None and subs.count == 0:
            del self.subscriptions[conn]
        return b"".join(frames)

    def _forget(self, conn: Subscriber, name: bytes, pattern: bool) -> None:
        if pattern:
            entry = self.patterns.get(name)
            if entry is not None:
                entry[1].pop(conn, None)
                if not entry[1]:
                    del self.patterns[name]
        else:
            conns = self.channels.get(name)
            if conns is not None:
                conns.pop(conn, None)
                if not conns:
                    del self.channels[name]

    def drop(self, conn: Subscriber) -> None:
        """``conn`` closed or was reset: forget its subscriptions."""
        subs = self.subscriptions.pop(conn, None)
        if subs is None:
            return
        for name in subs.channels:
            self._forget(conn, name, pattern=False)
        for name in subs.patterns:
            self._forget(conn, name, pattern=True)

    def count(self, conn: Subscriber) -> int:
        subs = self.subscriptions.get(conn)
        return 0 if subs is None else subs.count

    def _pubsub(self, conn: Subscriber, args: tuple[bytes, ...]) -> bytes:
        sub = args[0]
        if sub == b"NUMPAT":
            return encode_integer(len(self.patterns))
        if sub == b"CHANNELS":
            match = glob_matcher(args[1]) if len(args) == 2 else None
            names = [c for c in self.channels if match is None or match(c)]
            return b"*%d\r\n" % len(names) + b"".join(encode_bulk(n) for n in names)
        pairs = [(c, len(self.channels.get(c, ()))) for c in args[1:]]
        head = b"%%%d\r\n" % len(pairs) if conn.protocol == 3 else b"*%d\r\n" % (2 * len(pairs))
        return head + b"".join(encode_bulk(c) + encode_integer(n) for c, n in pairs)


def ping_reply(args: list[bytes], protocol: int) -> bytes:
    """``PING [message]`` in RESP2 subscribe mode: Redis's ``["pong", message]``."""
    return _frame(protocol, [b"pong", args[1] if len(args) > 1 else b""])
