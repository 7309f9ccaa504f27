"""The replicated key-value state machine, with exactly-once client requests.

The Multi-Paxos log decides a sequence of opaque command bytes; every replica feeds the same
sequence to ``apply`` and so reaches the same state and returns the same result bytes (state
machine replication, Schneider 1990; Paxos Made Simple, section 3).  ``apply`` is therefore
strictly deterministic: no clock, no randomness, no iteration over unordered containers, and
even a malformed command yields a fixed ``Error`` rather than an exception that one replica
might handle differently from another.

Exactly-once.  A client that hears no answer retries, so one request may be decided in several
slots.  Each ``Request`` carries ``(client_id, seq)``; the machine keeps, per client, the last
``seq`` it applied and that request's result bytes (the "session" of the Raft dissertation,
section 6.3):

* ``seq`` greater than the last: apply it, remember ``(seq, result)``;
* ``seq`` equal to the last: a retry; answer the remembered result, apply nothing;
* ``seq`` smaller: answer ``Stale``; apply nothing.

One remembered result per client suffices because a client has at most one request outstanding
(``Request`` documents the rule): once it sends ``seq + 1`` it no longer needs the answer to
``seq``.

Bounded memory.  Sessions expire by applied index, which every replica agrees on: a client
whose last request was applied ``session_ttl_commands`` or more commands ago is forgotten, so
the table never holds more than ``session_ttl_commands`` clients.  A forgotten client's next
request (any ``seq`` other than 1) is answered ``SessionExpired`` and not applied, so a late
retry is refused rather than applied twice.  The one hole, as in any expiring scheme: a retry of
a client's *first* request (``seq == 1``) arriving after its session expired is applied again.
Choose the TTL far above the number of commands applied during a client's retry timeout.

Time.  Keys may have deadlines (``SetWith``'s TTL, ``Expire``).  The machine has no clock of
its own: each request carries the time its server stamped on it (``Request.now_ms``), and the
machine's ``now_ms`` is the largest stamp applied so far, so it never goes back and every
replica decides at the same log position that a key has expired.  An expired key reads as
absent at once; it is removed when next touched, or by ``_sweep`` (a few deadlines visited per
applied entry, in the replicated order of ``_expires``).

Reads (``Get``) are ordinary commands in the log, hence linearizable; ``get`` below is only a
local peek for tests and debugging.

The dedup table and the TTL are part of the snapshot, so a replica restored from a snapshot
answers retries exactly as the replica that took it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import assert_never, cast

import msgspec

from pypaxos.core.bugs import require_family
from pypaxos.kv import hashes, keyspace, lists, sets, zsets
from pypaxos.kv.bugs import KvBug
from pypaxos.kv.collection_ops import (
    Copy,
    HDel,
    HGet,
    HGetAll,
    HIncrBy,
    HIncrByFloat,
    HLen,
    HMGet,
    HScan,
    HSet,
    KeyType,
    LIndex,
    LInsert,
    LLen,
    LMove,
    LPop,
    LPopFirst,
    LPos,
    LPush,
    LRange,
    LRem,
    LSet,
    LTrim,
    SAdd,
    SCard,
    SCombine,
    SCombineStore,
    SIsMember,
    SMembers,
    SMove,
    SPop,
    SRandMember,
    SRem,
    SScan,
    ZAdd,
    ZCard,
    ZCombine,
    ZCombineStore,
    ZCount,
    ZIncrBy,
    ZLexCount,
    ZPop,
    ZPopFirst,
    ZRangeByLex,
    ZRangeByRank,
    ZRangeByScore,
    ZRangeStore,
    ZRank,
    ZRem,
    ZRemRangeByLex,
    ZRemRangeByRank,
    ZRemRangeByScore,
    ZScan,
    ZScore,
)
from pypaxos.kv.commands import (
    MALFORMED,
    NOT_A_READ,
    READ_OPS,
    Append,
    Cas,
    Command,
    DbSize,
    Delete,
    Error,
    Eval,
    Exec,
    Expire,
    FlushAll,
    Get,
    GetDel,
    Incr,
    IncrBy,
    IncrByFloat,
    Integer,
    Keys,
    Mismatch,
    MSet,
    NoOp,
    Ok,
    Persist,
    RandomKey,
    Rename,
    Request,
    RequestBatch,
    Result,
    Results,
    Scan,
    ScriptExists,
    ScriptFlush,
    ScriptLoad,
    SessionExpired,
    Set,
    SetRange,
    SetWith,
    Stale,
    Ttl,
    Value,
    Watch,
    decode_entry,
    encode_result,
)
from pypaxos.kv.keyspace import Keyspace
from pypaxos.kv.programs import Programs
from pypaxos.kv.pubsub import (
    EXPIRED,
    GENERIC,
    NOTIFY_FLAGS_INVALID,
    Publication,
    command_events,
    keyspace_publications,
    parse_notify_flags,
    written_keys,
)
from pypaxos.kv.pubsub_ops import NotifyConfig, Publish
from pypaxos.kv.scripts import CommandTable, ScriptCache
from pypaxos.kv.transactions import Watcher, WatchTable
from pypaxos.kv.values import (
    WRONGTYPE,
    Stored,
    StoredSnapshot,
    WrongType,
    restore_values,
    snapshot_hook,
)

DEFAULT_SESSION_TTL_COMMANDS = 100_000
SWEEP_KEYS = 4  # deadlines the sweep visits per applied entry
SNAPSHOT_VERSION = 4
"""Version 4 adds collections: a value is a string (msgpack binary) or a tagged collection
(``kv.values.StoredSnapshot``); versions 1 to 3 (strings only) are still read.

Version 3 adds the keys' deadlines and the machine's clock (``expires``, ``now_ms``);
versions 1 and 2 are still read (no deadlines, clock 0).

Version 2 keeps the data as a map in the order the keys were first written (version 1: pairs
sorted by key, still read).  Sorting 100,000 keys on every snapshot blocked a busy node's event
loop for 0.2-0.6 s, every 1,024 slots, long enough for a follower to time out its leader; the
map encodes 3-8x faster.  Replicas apply the same commands in the same order, and a restored
machine keeps its snapshot's order, so equal histories still give equal snapshots."""


class Session(msgspec.Struct, array_like=True):
    """One client's dedup entry: its last applied ``seq`` and the result it got.

    ``last_active`` is the applied index of the client's latest request (new or retry); the
    session expires once ``applied - last_active >= session_ttl_commands``.
    """

    client_id: int
    last_seq: int
    last_active: int
    result: bytes


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """The encoded state: ``data`` in first-write order, ``sessions`` least recently active
    first, ``expires`` (key -> Unix ms deadline) in the sweep's order.  (Encoded with
    ``kv.values.snapshot_hook`` for the collections; decoded as ``_SnapshotDecoded``.)"""

    version: int
    applied: int
    session_ttl_commands: int
    data: dict[bytes, Stored]
    sessions: tuple[Session, ...]
    expires: dict[bytes, int]
    now_ms: int
    # Transactions and scripts (kv.programs); older snapshots have neither.
    watchers: tuple[Watcher, ...] = ()
    scripts: tuple[bytes, ...] = ()
    # Keyspace notifications (kv.pubsub); older snapshots have none.
    notify_bits: int = 0


class _SnapshotDecoded(msgspec.Struct, frozen=True, array_like=True):
    """``Snapshot`` as read back: the collections still in their snapshot form."""

    version: int
    applied: int
    session_ttl_commands: int
    data: dict[bytes, StoredSnapshot]
    sessions: tuple[Session, ...]
    expires: dict[bytes, int]
    now_ms: int
    # Transactions and scripts (kv.programs); older snapshots have neither.
    watchers: tuple[Watcher, ...] = ()
    scripts: tuple[bytes, ...] = ()
    # Keyspace notifications (kv.pubsub); older snapshots have none.
    notify_bits: int = 0


class _SnapshotV3(msgspec.Struct, frozen=True, array_like=True):
    """Version 3, read for snapshots written before collections existed."""

    version: int
    applied: int
    session_ttl_commands: int
    data: dict[bytes, bytes]
    sessions: tuple[Session, ...]
    expires: dict[bytes, int]
    now_ms: int


class _SnapshotV2(msgspec.Struct, frozen=True, array_like=True):
    """Version 2, read for snapshots written before deadlines existed."""

    version: int
    applied: int
    session_ttl_commands: int
    data: dict[bytes, bytes]
    sessions: tuple[Session, ...]


class _SnapshotV1(msgspec.Struct, frozen=True, array_like=True):
    """Version 1, read for snapshots written before version 2: ``data`` as pairs by key."""

    version: int
    applied: int
    session_ttl_commands: int
    data: tuple[tuple[bytes, bytes], ...]
    sessions: tuple[Session, ...]


class _SnapshotVersion(msgspec.Struct, frozen=True, array_like=True):
    version: int  # the first field of every version (the rest is skipped)


_SNAPSHOT_ENCODER = msgspec.msgpack.Encoder(enc_hook=snapshot_hook)
_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(_SnapshotDecoded)
_SNAPSHOT_V3_DECODER = msgspec.msgpack.Decoder(_SnapshotV3)
_SNAPSHOT_V1_DECODER = msgspec.msgpack.Decoder(_SnapshotV1)
_SNAPSHOT_V2_DECODER = msgspec.msgpack.Decoder(_SnapshotV2)
_SNAPSHOT_VERSION_DECODER = msgspec.msgpack.Decoder(_SnapshotVersion)
_OK_RESULT = Ok()  # results are frozen: one instance serves every successful write
_OK = encode_result(_OK_RESULT)
_MALFORMED = encode_result(Error(MALFORMED))
_EXPIRED = encode_result(SessionExpired())
_WRONGTYPE = Error(WRONGTYPE)


def _strings(data: dict[bytes, bytes]) -> dict[bytes, StoredSnapshot]:
    """An older snapshot's data (strings only) as version 4's (no copy)."""
    return cast("dict[bytes, StoredSnapshot]", data)


class KVStateMachine:
    """A byte-string key-value store behind ``multi.StateMachine``.

    Structurally: ``kv`` and ``multi`` share a layer, so neither imports the other; mypy checks
    the fit where a shell hands one to a ``multi.Node`` (``runtime.app``, ``sim.kv_node``).
    """

    __slots__ = (
        "_applied",
        "_data",
        "_expires",
        "_notify_bits",
        "_now_ms",
        "_programs",
        "_publications",
        "_requester",
        "_sessions",
        "bugs",
        "commands_executed",
        "publications_floor",
        "session_ttl_commands",
    )

    def __init__(
        self,
        session_ttl_commands: int = DEFAULT_SESSION_TTL_COMMANDS,
        bugs: frozenset[KvBug] = frozenset(),
        script_commands: CommandTable | None = None,
    ) -> None:
        if session_ttl_commands < 1:
            raise ValueError("session_ttl_commands must be at least 1")
        require_family(bugs, KvBug)
        self.bugs = bugs
        self.session_ttl_commands = session_ttl_commands
        self._data: dict[bytes, Stored] = {}
        # Keys with a deadline (Unix ms), in the order the sweep visits them (``_sweep``).
        self._expires: dict[bytes, int] = {}
        # The machine's clock: the latest request time seen (``Request.now_ms``), so it
        # never goes back and every replica has the same one at the same log position.
        self._now_ms = 0
        # Least recently active first: expiry pops from the front.
        self._sessions: OrderedDict[int, Session] = OrderedDict()
        self._applied = 0
        # WATCH's table and the script cache; ``script_commands`` is what a script's
        # ``redis.call`` may run (the server's command table; without it scripts are refused).
        self._programs = Programs(script_commands)
        self._requester = 0  # the client whose request is being applied (WATCH and EXEC's)
        # Client commands executed here (each command of a batch counts), for metrics only:
        # not part of the replicated state, so not in the snapshot.
        self.commands_executed = 0
        # notify-keyspace-events (kv.pubsub), replicated; and the publications emitted since
        # the runtime last took them (``None``: not recorded, nobody delivers them).  The
        # outbox is apply-side output, never read by ``apply``, so not in the snapshot.
        self._notify_bits = 0
        self._publications: list[Publication] | None = None
        self.publications_floor = 0

    @property
    def applied(self) -> int:
        """How many commands (including no-ops and malformed ones) have been applied."""
        return self._applied

    def get(self, key: bytes) -> Stored | None:
        """Local peek at ``key`` (an expired key reads as absent): not linearizable, for tests
        and debugging only."""
        return Keyspace(self._data, self._expires, self._now_ms, reclaim=False).lookup(key)

    @property
    def expiring_keys(self) -> int:
        """How many keys have a deadline (some may have passed, not yet reclaimed)."""
        return len(self._expires)

    @property
    def now_ms(self) -> int:
        """The machine's clock: the latest request time applied."""
        return self._now_ms

    def last_seq(self, client_id: int) -> int | None:
        """The last ``seq`` applied for ``client_id`` here (``None``: no session, never opened
        or expired): lets a server tell a new read of a session from one the log must judge."""
        session = self._sessions.get(client_id)
        return None if session is None else session.last_seq

    def sessions(self) -> tuple[Session, ...]:
        """A copy of the dedup table, least recently active first."""
        return tuple(msgspec.structs.replace(s) for s in self._sessions.values())

    # --- publications (kv.pubsub) ------------------------------------------------------------

    def record_publications(self) -> None:
        """Keep the publications applied commands emit, for ``take_publications``, from the
        current applied count on (``publications_floor``)."""
        if self._publications is None:
            self._publications = []
            self.publications_floor = self._applied

    def take_publications(self) -> list[Publication]:
        """The publications emitted since the last call, in log order."""
        taken = self._publications
        if not taken:
            return []
        self._publications = []
        return taken

    @property
    def notify_bits(self) -> int:
        """The replicated ``notify-keyspace-events`` setting (``kv.pubsub`` bits)."""
        return self._notify_bits

    # --- StateMachine -------------------------------------------------------------------------

    def apply(self, command: bytes) -> bytes:
        self._applied += 1
        if not command:  # an empty entry is a no-op too: the cheapest gap filler
            return _OK
        try:
            entry = decode_entry(command)
        except msgspec.DecodeError:
            result = _MALFORMED
        else:
            if isinstance(entry, NoOp):
                result = _OK
            else:
                if entry.now_ms > self._now_ms:
                    self._now_ms = entry.now_ms
                result = self._apply_request(entry)
        self._expire_sessions()
        if self._expires:
            self._sweep()
        return result

    def query(self, command: bytes) -> bytes:
        """Answer a read-only ``Request`` (or ``RequestBatch``) of ``READ_OPS`` (``Get`` s,
        ``Keys``...) from the current state, as ``apply`` would, but without applying it: no
        session, no ``applied`` count.

        Its ``(client_id, seq)`` is not looked at (a read changes nothing, so a repeated read
        is harmless).  Anything else is answered ``Error`` and changes nothing.
        """
        try:
            entry = decode_entry(command)
        except msgspec.DecodeError:
            return _MALFORMED
        if isinstance(entry, NoOp):
            return encode_result(Error(NOT_A_READ))
        if not self._expires and isinstance(entry, Request) and isinstance(entry.op, Get):
            value = self._data.get(entry.op.key)
            if value is None or type(value) is bytes:
                return encode_result(Value(value))
        # The request's own time counts (a read sees what expired by then), but is not kept.
        ks = Keyspace(self._data, self._expires, max(self._now_ms, entry.now_ms), reclaim=False)
        if isinstance(entry, Request) and isinstance(entry.op, READ_OPS):
            return encode_result(self._read(ks, entry.op))
        if isinstance(entry, RequestBatch) and all(isinstance(op, READ_OPS) for op in entry.ops):
            return encode_result(Results(tuple(self._read(ks, op) for op in entry.ops)))
        return encode_result(Error(NOT_A_READ))

    def snapshot(self) -> bytes:
        return _SNAPSHOT_ENCODER.encode(
            Snapshot(
                version=SNAPSHOT_VERSION,
                applied=self._applied,
                session_ttl_commands=self.session_ttl_commands,
                data=self._data,
                sessions=()
                if KvBug.SNAPSHOT_DROPS_SESSIONS in self.bugs
                else tuple(self._sessions.values()),
                expires=self._expires,
                now_ms=self._now_ms,
                watchers=self._programs.watches.state(),
                scripts=self._programs.scripts.state(),
                notify_bits=self._notify_bits,
            )
        )

    def restore(self, data: bytes) -> None:
        try:
            version = _SNAPSHOT_VERSION_DECODER.decode(data).version
            if version == 1:
                old = _SNAPSHOT_V1_DECODER.decode(data)
                snap = _SnapshotDecoded(
                    old.version,
                    old.applied,
                    old.session_ttl_commands,
                    _strings(dict(old.data)),
                    old.sessions,
                    {},
                    0,
                )
            elif version == 2:
                v2 = _SNAPSHOT_V2_DECODER.decode(data)
                snap = _SnapshotDecoded(
                    v2.version,
                    v2.applied,
                    v2.session_ttl_commands,
                    _strings(v2.data),
                    v2.sessions,
                    {},
                    0,
                )
            elif version == 3:
                v3 = _SNAPSHOT_V3_DECODER.decode(data)
                snap = _SnapshotDecoded(
                    v3.version,
                    v3.applied,
                    v3.session_ttl_commands,
                    _strings(v3.data),
                    v3.sessions,
                    v3.expires,
                    v3.now_ms,
                )
            elif version == SNAPSHOT_VERSION:
                snap = _SNAPSHOT_DECODER.decode(data)
            else:
                raise ValueError(f"unsupported snapshot version {version}")
        except msgspec.DecodeError as error:
            raise ValueError(f"malformed snapshot: {error}") from None
        except RecursionError:  # msgspec skipping a deeply nested value it does not keep
            raise ValueError("malformed snapshot: nesting too deep") from None
        if not set(snap.expires) <= set(snap.data):
            raise ValueError("malformed snapshot: a deadline for a key that is not there")
        if snap.session_ttl_commands < 1:
            raise ValueError("malformed snapshot: session_ttl_commands must be at least 1")
        actives = [s.last_active for s in snap.sessions]
        if actives != sorted(set(actives)) or (actives and actives[-1] > snap.applied):
            raise ValueError("malformed snapshot: sessions out of order")
        sessions = OrderedDict((s.client_id, s) for s in snap.sessions)
        if len(sessions) != len(snap.sessions):
            raise ValueError("malformed snapshot: duplicate client id")
        restored = restore_values(snap.data)  # in place: no copy of 100,000 entries
        watches = WatchTable.from_state(snap.watchers)
        if not set(watches.watchers) <= set(sessions):
            raise ValueError("malformed snapshot: a watcher without a session")
        script_cache = ScriptCache.from_state(snap.scripts)
        self.session_ttl_commands = snap.session_ttl_commands
        self._applied = snap.applied
        self._programs.watches = watches
        self._programs.scripts = script_cache
        self._data = restored
        self._expires = dict(snap.expires)
        self._now_ms = snap.now_ms
        self._sessions = sessions
        self._notify_bits = snap.notify_bits
        if self._publications is not None:  # the publications in between were skipped
            self._publications = []
            self.publications_floor = snap.applied

    # --- internals ----------------------------------------------------------------------------

    def _apply_request(self, request: Request | RequestBatch) -> bytes:
        session = self._sessions.get(request.client_id)
        if session is None:
            if request.seq != 1:
                return _EXPIRED
            session = Session(request.client_id, 0, self._applied, b"")
            self._sessions[request.client_id] = session
        session.last_active = self._applied
        self._sessions.move_to_end(request.client_id)
        self._requester = request.client_id
        if request.seq == session.last_seq:
            return session.result
        if request.seq < session.last_seq:
            return encode_result(Stale(session.last_seq))
        if isinstance(request, RequestBatch):
            result = encode_result(Results(self._execute_all(request.ops)))
            self.commands_executed += len(request.ops)
        else:
            result = encode_result(self._execute(request.op))
            self.commands_executed += 1
        session.last_seq = request.seq
        session.result = result
        return result

    def _execute_all(self, ops: tuple[Command, ...]) -> tuple[Result, ...]:
        """``_execute`` of each op in order, with the commonest two inlined (the hot loop of a
        pipelined batch: a type test and a dict operation per command)."""
        data = self._data
        results: list[Result] = []
        append = results.append
        if self._expires or self._programs.watches or self._notify_bits:  # no shortcut
            return tuple(self._execute(op) for op in ops)
        for op in ops:
            if isinstance(op, Set):
                data[op.key] = op.value
                append(_OK_RESULT)
            elif isinstance(op, Get):
                value = data.get(op.key)
                append(Value(value) if value is None or type(value) is bytes else _WRONGTYPE)
            else:
                append(self._execute(op))
        return tuple(results)

    def _execute(self, op: Command) -> Result:
        watches = None if KvBug.WATCH_MISSES_WRITES in self.bugs else self._programs.watches
        ks = Keyspace(self._data, self._expires, self._now_ms, reclaim=True, watches=watches)
        if self._notify_bits and self._publications is not None:
            return self._execute_notifying(ks, op)
        try:
            return self._run(ks, op)
        except WrongType:
            return _WRONGTYPE

    def _execute_notifying(self, ks: Keyspace, op: Command) -> Result:
        """``_execute`` that also publishes the keyspace events of ``op`` (``kv.pubsub``):
        Redis's named event, ``expired`` for a key found past its deadline, ``del`` for a key
        the write emptied."""
        keys = written_keys(op)
        expired = [k for k in keys if k in self._data and ks.expired(k)]
        existed = [k for k in keys if k in self._data and k not in expired]
        try:
            result = self._run(ks, op)
        except WrongType:
            result = _WRONGTYPE
        events = [(EXPIRED, b"expired", k) for k in expired] + command_events(op, result)
        removed = {key for _, name, key in events if name in (b"del", b"rename_from")}
        emptied = [k for k in existed if k not in self._data and k not in removed]
        events += [(GENERIC, b"del", k) for k in emptied]
        self._emit(keyspace_publications(self._notify_bits, self._applied, events))
        return result

    def _emit(self, publications: list[Publication]) -> None:
        if self._publications is not None and publications:
            self._publications.extend(publications)

    def _read(self, ks: Keyspace, op: Command) -> Result:
        if isinstance(op, ScriptExists):
            return self._programs.exists(op)
        try:
            return self._run(ks, op)
        except WrongType:
            return _WRONGTYPE

    def _run(self, ks: Keyspace, op: Command) -> Result:
        """``op``'s result over ``ks``; raises ``WrongType`` (before changing anything) for
        a key of the wrong type."""
        match op:
            case Get(key):
                return Value(ks.get(key))
            case Set(key, value):
                ks.put(key, value)
                return _OK_RESULT
            case Delete(key):
                return Integer(0 if ks.delete(key) is None else 1)
            case Incr(key):
                return keyspace.incr_by(ks, key, 1)
            case Cas(key, expected, new):
                current = ks.get(key)
                if current != expected:
                    return Mismatch(current)
                ks.put(key, new)
                return _OK_RESULT
            case NoOp():
                return _OK_RESULT
            case SetWith():
                return keyspace.set_with(ks, op)
            case GetDel():
                return keyspace.get_del(ks, op)
            case MSet():
                return keyspace.mset(ks, op)
            case Append():
                return keyspace.append(ks, op)
            case SetRange():
                return keyspace.set_range(ks, op)
            case IncrBy(key, amount):
                return keyspace.incr_by(ks, key, amount)
            case IncrByFloat():
                return keyspace.incr_by_float(ks, op)
            case Rename():
                return keyspace.rename(ks, op)
            case Expire():
                return keyspace.expire(ks, op)
            case Persist():
                return keyspace.persist(ks, op)
            case FlushAll():
                self._programs.watches.touch_all(self._data)
                self._data.clear()
                self._expires.clear()
                return _OK_RESULT
            case DbSize() | Keys() | Scan() | RandomKey() | Ttl():
                return keyspace.read(ks, op)
            case KeyType() | Copy():
                return keyspace.key_command(ks, op)
            case (
                HSet() | HGet() | HMGet() | HDel() | HGetAll() | HLen() | HIncrBy()
                | HIncrByFloat() | HScan()
            ):  # fmt: skip
                return hashes.execute(ks, op)
            case (
                SAdd() | SRem() | SMembers() | SIsMember() | SCard() | SPop() | SRandMember()
                | SCombine() | SCombineStore() | SMove() | SScan()
            ):  # fmt: skip
                return sets.execute(ks, op)
            case (
                LPush() | LPop() | LPopFirst() | LLen() | LRange() | LIndex() | LSet() | LRem()
                | LTrim() | LInsert() | LMove() | LPos()
            ):  # fmt: skip
                return lists.execute(ks, op)
            case (
                ZAdd() | ZRem() | ZScore() | ZIncrBy() | ZCard() | ZRangeByRank()
                | ZRangeByScore() | ZRangeByLex() | ZCount() | ZLexCount() | ZRank() | ZPop()
                | ZPopFirst() | ZRangeStore() | ZRemRangeByRank() | ZRemRangeByScore()
                | ZRemRangeByLex() | ZCombine() | ZCombineStore() | ZScan()
            ):  # fmt: skip
                return zsets.execute(ks, op)
            case Publish(channel, message):
                self._emit([Publication(self._applied, channel, message)])
                return Integer(0)
            case NotifyConfig(flags):
                bits = parse_notify_flags(flags)
                if bits is None:
                    return Error(NOTIFY_FLAGS_INVALID)
                self._notify_bits = bits
                return _OK_RESULT
            case Watch() | Exec() | Eval() | ScriptLoad() | ScriptExists() | ScriptFlush():
                return self._programs.execute(op, ks, self._requester, self._applied, self._execute)
            case _:
                assert_never(op)

    def _sweep(self) -> None:
        """Reclaim a few expired keys per applied entry (Redis's active expiry, made
        deterministic): visit the first ``SWEEP_KEYS`` deadlines in order, drop the expired
        ones and move the others to the back, so the whole table is visited in turn."""
        expires = self._expires
        for _ in range(min(SWEEP_KEYS, len(expires))):
            key, deadline = next(iter(expires.items()))
            del expires[key]
            if deadline <= self._now_ms:
                del self._data[key]
                if self._notify_bits & EXPIRED and self._publications is not None:
                    self._emit(
                        keyspace_publications(
                            self._notify_bits, self._applied, [(EXPIRED, b"expired", key)]
                        )
                    )
            else:
                expires[key] = deadline

    def _expire_sessions(self) -> None:
        horizon = self._applied - self.session_ttl_commands
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_active > horizon:
                break
            self._sessions.popitem(last=False)
            self._programs.watches.forget(oldest.client_id)
        assert len(self._sessions) <= self.session_ttl_commands
