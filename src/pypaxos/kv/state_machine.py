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
retry is refused rather than applied twice.

Refused means refused for good.  The refusal leaves a tombstone (a ``Session`` marked
``closed``) under the client id, and every later request under that id, ``seq == 1`` included,
is answered ``SessionExpired`` too.  Without it: a client gives up on ``seq`` 1 and sends
``seq`` 2; 2 is decided first and refused, so the client moves to a new id; a late copy of 1
then opens the old session again, and a late copy of 2 runs although the client was told it
had not.  The tombstone expires like a session (by applied count), so the table stays bounded.
The one hole left, as in any expiring scheme: a copy delayed past a whole TTL (a retry of a
client's first request arriving after its session, or its tombstone, expired is applied).
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

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, assert_never, cast
from zlib import crc32

import msgspec

from pypaxos.core.bugs import require_family
from pypaxos.kv import databases, hashes, keyspace, lists, sets, zsets
from pypaxos.kv.bugs import KvBug, plant_restore_bugs
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
    DATABASES,
    DB_OUT_OF_RANGE,
    MALFORMED,
    NOT_A_READ,
    Answer,
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
    FlushDb,
    Get,
    GetDel,
    Incr,
    IncrBy,
    IncrByFloat,
    InDb,
    Integer,
    Keys,
    LogEntry,
    Mismatch,
    Move,
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
    Select,
    SessionExpired,
    Set,
    SetRange,
    SetWith,
    Stale,
    SwapDb,
    Ttl,
    Value,
    Watch,
    decode_entry,
    encode_result,
    is_read,
)
from pypaxos.kv.databases import Tables
from pypaxos.kv.digest import FOLD_DIRTY_MAX, StateDigest, digest_of
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
from pypaxos.kv.script_cache import ScriptCache
from pypaxos.kv.script_calls import CommandTable
from pypaxos.kv.store import SHARD_MASK, KeyStore
from pypaxos.kv.transactions import Watcher, WatchTable
from pypaxos.kv.values import (
    WRONGTYPE,
    HashValue,
    ListValue,
    SetValue,
    Stored,
    StoredSnapshot,
    WrongType,
    ZSetValue,
    restore_collection,
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
    session expires once ``applied - last_active >= session_ttl_commands``.  ``last_seq == 0``
    marks a tombstone (``closed``): the client was told ``SessionExpired`` and every later
    request under its id is refused too.  An open session has always applied a ``seq`` of at
    least 1, so the mark needs no field of its own and the snapshot format is unchanged.
    """

    client_id: int
    last_seq: int
    last_active: int
    result: bytes

    @property
    def closed(self) -> bool:
        """Is this a tombstone (the client id was refused as expired)?"""
        return self.last_seq == 0


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """The encoded state: ``data`` in the store's order, ``sessions`` least recently active
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
    # The databases other than 0 that hold keys (kv.databases); older snapshots have none.
    databases: dict[int, tuple[dict[bytes, Stored], dict[bytes, int]]] = {}


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
    databases: dict[int, tuple[dict[bytes, StoredSnapshot], dict[bytes, int]]] = {}


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


CHUNKED_SNAPSHOT_VERSION = 5
"""Version 5 is the chunked form (``snapshot_chunks``): a head chunk, then parts of the data,
then of the deadlines, then of the sessions, each in its own order and of bounded size, so a
snapshot is written, sent and loaded one bounded piece at a time.  Values are carried as in
version 4 (a string as a msgpack binary, a collection tagged).  ``snapshot()`` (one piece,
version 4) stays for comparisons and tests; a version 1-4 snapshot loads as a single chunk."""

CHUNK_ENTRY_OVERHEAD_BYTES = 16
"""What one entry adds to a chunk besides its bytes (msgpack headers), for cutting chunks."""
SHARD_WHOLE_MAX = 4
"""A shard of the store encoding to more than ``snapshot_chunk_bytes_max`` is still written
as one part up to this many times the bound (a very large store), else cut key by key."""


DATABASES_SNAPSHOT_VERSION = 7
"""Version 7 is version 5 with databases (``kv.databases``): its head chunk is tagged 7, and
each database other than 0 that holds keys follows database 0's data and deadlines as a
``_ChunkDb`` chunk (tagged 8) and then its own data and deadline parts; a watcher's keys in
other databases are ``Watcher.dbs``.  Version 5 snapshots (database 0 only) are still read.
(Tag 6 is every version's part chunk, so the version after 5 is 7.)"""


class _ChunkHeadV5(msgspec.Struct, frozen=True, array_like=True, tag=CHUNKED_SNAPSHOT_VERSION):
    applied: int
    session_ttl_commands: int
    now_ms: int
    notify_bits: int = 0  # the replicated notify-keyspace-events (kv.pubsub)


class _ChunkHead(msgspec.Struct, frozen=True, array_like=True, tag=DATABASES_SNAPSHOT_VERSION):
    applied: int
    session_ttl_commands: int
    now_ms: int
    notify_bits: int = 0  # the replicated notify-keyspace-events (kv.pubsub)


class _ChunkDb(msgspec.Struct, frozen=True, array_like=True, tag=DATABASES_SNAPSHOT_VERSION + 1):
    """The data and deadline parts after this chunk are database ``db`` 's."""

    db: int


class _ChunkPart(msgspec.Struct, frozen=True, array_like=True, tag=CHUNKED_SNAPSHOT_VERSION + 1):
    data: dict[bytes, StoredSnapshot] = {}
    expires: dict[bytes, int] = {}
    sessions: tuple[Session, ...] = ()
    watchers: tuple[Watcher, ...] = ()  # kv.transactions' table, after the sessions
    scripts: tuple[bytes, ...] = ()  # kv.scripts' cache, last


class _ChunkPartOut(msgspec.Struct, frozen=True, array_like=True, tag=CHUNKED_SNAPSHOT_VERSION + 1):
    """``_ChunkPart`` as written: the live values (``snapshot_hook`` tags the collections)."""

    data: dict[bytes, Stored] = {}
    expires: dict[bytes, int] = {}
    sessions: tuple[Session, ...] = ()
    watchers: tuple[Watcher, ...] = ()
    scripts: tuple[bytes, ...] = ()


_CHUNK_DECODER = msgspec.msgpack.Decoder(_ChunkHead | _ChunkHeadV5 | _ChunkPart | _ChunkDb)
_SNAPSHOT_ENCODER = msgspec.msgpack.Encoder(enc_hook=snapshot_hook)
_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(_SnapshotDecoded)
_EMPTY_PART = _SNAPSHOT_ENCODER.encode(_ChunkPartOut())
_DATA_AT = 2  # [fixarray, tag, data, ...]: where the empty part's data map (0x80) is
assert _EMPTY_PART[_DATA_AT] == 0x80, "the chunk part's layout changed"
_SNAPSHOT_V3_DECODER = msgspec.msgpack.Decoder(_SnapshotV3)
_SNAPSHOT_V1_DECODER = msgspec.msgpack.Decoder(_SnapshotV1)
_SNAPSHOT_V2_DECODER = msgspec.msgpack.Decoder(_SnapshotV2)
_SNAPSHOT_VERSION_DECODER = msgspec.msgpack.Decoder(_SnapshotVersion)
_OK_RESULT = Ok()  # results are frozen: one instance serves every successful write
_OK = encode_result(_OK_RESULT)
_ALL_OK_ENCODED: dict[int, bytes] = {}
ALL_OK_CACHE_MAX = 4096
"""Batches of up to this many commands have their all-``Ok`` answer kept, encoded, by length."""


def encode_results(results: tuple[Result, ...]) -> bytes:
    """``encode_result(Results(results))``; a batch whose every result is ``Ok`` (plain writes,
    the commonest batch) takes its bytes from a cache by length, since they depend on nothing
    else: every replica encodes every batch's answer, so this is on each node's write path."""
    count = len(results)
    if results.count(_OK_RESULT) != count:
        return encode_result(Results(results))
    encoded = _ALL_OK_ENCODED.get(count)
    if encoded is None:
        encoded = encode_result(Results(results))
        if count <= ALL_OK_CACHE_MAX:
            _ALL_OK_ENCODED[count] = encoded
    return encoded


_MALFORMED_RESULT = Error(MALFORMED)
_MALFORMED = encode_result(_MALFORMED_RESULT)
_EXPIRED = encode_result(SessionExpired())
_WRONGTYPE = Error(WRONGTYPE)
_REMOVING_EVENTS = (b"del", b"rename_from", b"move_from")


def _strings(data: dict[bytes, bytes]) -> dict[bytes, StoredSnapshot]:
    """An older snapshot's data (strings only) as version 4's (no copy)."""
    return cast("dict[bytes, StoredSnapshot]", data)


_GET_TYPES = {Get}
_KEY_OF = operator.attrgetter("key")
_STRING_OR_ABSENT = {bytes, type(None)}


class KVStateMachine:
    """A byte-string key-value store behind ``multi.StateMachine``.

    Structurally: ``kv`` and ``multi`` share a layer, so neither imports the other; mypy checks
    the fit where a shell hands one to a ``multi.Node`` (``runtime.app``, ``sim.kv_node``).
    """

    __slots__ = (
        "_applied",
        "_data",
        "_db",
        "_dbs",
        "_digest",
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
        state_digest: bool = True,
    ) -> None:
        if session_ttl_commands < 1:
            raise ValueError("session_ttl_commands must be at least 1")
        require_family(bugs, KvBug)
        self.bugs = bugs
        self.session_ttl_commands = session_ttl_commands
        self._data: KeyStore[Stored] = KeyStore()
        # Keys with a deadline (Unix ms), in the order the sweep visits them (``_sweep``).
        self._expires: dict[bytes, int] = {}
        # ``_data`` and ``_expires`` are database 0's; the others that hold keys are here
        # (kv.databases).  ``_db`` is the database the command being applied works in.
        self._dbs: dict[int, Tables] = {}
        self._db = 0
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
        # The state digest (kv.digest), settled lazily: writes only mark keys and sessions;
        # ``state_digest=False`` keeps none (no memory per key, no hashing on the write path).
        self._digest = StateDigest(tracking=state_digest)

    @property
    def applied(self) -> int:
        """How many commands (including no-ops and malformed ones) have been applied."""
        return self._applied

    def get(self, key: bytes, db: int = 0) -> Stored | None:
        """Local peek at ``key`` of database ``db`` (an expired key reads as absent): not
        linearizable, for tests and debugging only."""
        data, expires = self._tables(db, create=False)
        return Keyspace(data, expires, self._now_ms, reclaim=False).lookup(key)

    @property
    def stored_keys(self) -> int:
        """How many keys are stored, in every database (some may be past their deadline)."""
        return len(self._data) + sum(len(data) for data, _ in self._dbs.values())

    @property
    def expiring_keys(self) -> int:
        """How many keys have a deadline (some may have passed, not yet reclaimed)."""
        return len(self._expires) + sum(len(expires) for _, expires in self._dbs.values())

    def keyspace_lines(self) -> list[str]:
        """``INFO keyspace``: a ``dbN:keys=..,expires=..,avg_ttl=..`` line per database that
        holds keys, in database order (this node's state: a follower's may lag)."""
        lines = [databases.keyspace_line(0, (self._data, self._expires), self._now_ms)]
        for db in sorted(self._dbs):
            lines.append(databases.keyspace_line(db, self._dbs[db], self._now_ms))
        return [line for line in lines if line is not None]

    def _tables(self, db: int, create: bool) -> Tables:
        """Database ``db`` 's tables; made (and kept) if absent only when ``create``."""
        if db == 0:
            return self._data, self._expires
        tables = self._dbs.get(db)
        if tables is None:
            tables = (KeyStore(), {})
            if create:
                self._dbs[db] = tables
        return tables

    def _put_tables(self, db: int, tables: Tables) -> None:
        if db == 0:
            self._data, self._expires = tables
        elif tables[0]:
            self._dbs[db] = tables
        else:
            self._dbs.pop(db, None)

    def _keyspace(self, db: int) -> Keyspace:
        """Database ``db`` as the apply path sees it (made if absent)."""
        data, expires = self._tables(db, create=True)
        watches = None if KvBug.WATCH_MISSES_WRITES in self.bugs else self._programs.watches
        dirty = self._digest.marks(db)
        return Keyspace(data, expires, self._now_ms, True, watches, db, self._keyspace, dirty)

    @property
    def now_ms(self) -> int:
        """The machine's clock: the latest request time applied."""
        return self._now_ms

    @property
    def session_count(self) -> int:
        """Open exactly-once sessions (bounded by ``session_ttl_commands``)."""
        return len(self._sessions)

    def last_seq(self, client_id: int) -> int | None:
        """The last ``seq`` applied for ``client_id`` here (``None``: no session, never opened
        or expired): lets a server tell a new read of a session from one the log must judge."""
        session = self._sessions.get(client_id)
        return None if session is None or session.closed else session.last_seq

    def sessions(self) -> tuple[Session, ...]:
        """A copy of the dedup table (tombstones included), least recently active first."""
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
        except (msgspec.DecodeError, RecursionError):  # nested past msgspec's depth bound
            result = _MALFORMED
        else:
            if isinstance(entry, NoOp):
                result = _OK
            else:
                if entry.now_ms > self._now_ms:
                    self._now_ms = entry.now_ms
                result = self._apply_request(entry)
                self._digest.dirty_sessions.add(entry.client_id)
        self._expire_sessions()
        if self._expires:
            self._sweep(0, self._expires)
        if self._dbs:
            self._sweep_databases()
        if len(self._digest.dbs[0].dirty) > FOLD_DIRTY_MAX or (
            self._dbs and self._digest.dirty_count() > FOLD_DIRTY_MAX
        ):
            self._fold_digest()
        return result

    def state_digest(self) -> bytes | None:
        """The digest of the replicated state now (``kv.digest``): equal on every replica at
        the same applied index.  Costs the keys and sessions written since the last call;
        ``None`` when the machine keeps no digest (``full_digest`` computes one)."""
        if not self._digest.tracking:
            return None
        self._fold_digest()
        return self._digest.value(self._digest_scalars())

    def full_digest(self) -> bytes:
        """The same digest computed from the whole state: O(state), for a forked child or a
        tool, never the apply path."""
        tables = [(0, (self._data, self._expires)), *self._dbs.items()]
        return digest_of(tables, self._sessions.values(), self._digest_scalars())

    def _digest_scalars(self) -> tuple[int, ...]:
        return (self._now_ms, self._notify_bits, self.session_ttl_commands)

    def _fold_digest(self) -> None:
        self._digest.fold(lambda db: self._tables(db, create=False), self._sessions)

    def query(self, command: bytes) -> bytes:
        """Answer a read-only ``Request`` (or ``RequestBatch``) of ``READ_OPS`` (``Get`` s,
        ``Keys``...) from the current state, as ``apply`` would, but without applying it: no
        session, no ``applied`` count.

        Its ``(client_id, seq)`` is not looked at (a read changes nothing, so a repeated read
        is harmless).  Anything else is answered ``Error`` and changes nothing.
        """
        try:
            entry = decode_entry(command)
        except (msgspec.DecodeError, RecursionError):
            return _MALFORMED
        return encode_result(self.query_entry(entry))

    def query_entry(self, entry: LogEntry) -> Answer:
        """``query`` of a decoded request, answered as the object itself: for a reader in
        this process (``multi.reads.LocalQuery``), which then encodes neither way."""
        if isinstance(entry, NoOp):
            return Error(NOT_A_READ)
        if not self._expires and isinstance(entry, Request) and isinstance(entry.op, Get):
            key = entry.op.key
            value = self._data.shards[crc32(key) & SHARD_MASK].get(key)
            if value is None or type(value) is bytes:
                return Value(value)
        elif type(entry) is RequestBatch:
            values = self._plain_gets(entry.ops)
            if values is not None:
                return Results(values)
        # The request's own time counts (a read sees what expired by then), but is not kept.
        ks = Keyspace(self._data, self._expires, max(self._now_ms, entry.now_ms), reclaim=False)
        if isinstance(entry, Request) and is_read(entry.op):
            return self._read(ks, entry.op)
        if isinstance(entry, RequestBatch) and all(is_read(op) for op in entry.ops):
            return Results(tuple(self._read(ks, op) for op in entry.ops))
        return Error(NOT_A_READ)

    def _plain_gets(self, ops: tuple[Command, ...]) -> tuple[Value, ...] | None:
        """A pipeline's ``GET`` s of strings without a deadline, answered straight from the
        store (what ``_read`` answers them, without its dispatch or Python code per key);
        ``None``: any other op, or a key that is a collection or has a deadline (the general
        path then)."""
        if set(map(type, ops)) != _GET_TYPES:
            return None
        values = self.plain_values(list(map(_KEY_OF, ops)))
        if values is None:
            return None
        return tuple(map(Value, values))

    def plain_values(self, keys: list[bytes]) -> list[bytes | None] | None:
        """The values ``Get`` of each of ``keys`` (database 0) would answer, bare (``None``
        for an absent key), read now without a ``Value`` per key: for a reader in this process
        that formats them itself (``query_entry``'s rules: a read changes nothing).  ``None``
        when a key has a deadline or holds a collection (the general query answers those)."""
        expires = self._expires
        if expires and not expires.keys().isdisjoint(keys):
            return None
        values = self._data.get_many(keys)
        if not set(map(type, values)) <= _STRING_OR_ABSENT:
            return None
        return cast(list[bytes | None], values)

    def snapshot(self) -> bytes:
        return _SNAPSHOT_ENCODER.encode(
            Snapshot(
                version=SNAPSHOT_VERSION,
                applied=self._applied,
                session_ttl_commands=self.session_ttl_commands,
                data=dict(self._data.items()),
                sessions=()
                if KvBug.SNAPSHOT_DROPS_SESSIONS in self.bugs
                else tuple(self._sessions.values()),
                expires={} if KvBug.SNAPSHOT_DROPS_DEADLINES in self.bugs else self._expires,
                now_ms=self._now_ms,
                watchers=self._programs.watches.state(),
                scripts=self._programs.scripts.state(),
                notify_bits=self._notify_bits,
                databases={
                    db: (dict(self._dbs[db][0].items()), self._dbs[db][1])
                    for db in sorted(self._dbs)
                    if self._dbs[db][0]
                },
            )
        )

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        """The state in version-7 chunks of about ``chunk_bytes_max`` bytes (one shard of the
        store or one entry may exceed it: ``_data_chunks``).  Walks the store in place: the
        caller must not apply meanwhile (the runtime calls it in a forked copy of the
        process)."""
        encode = _SNAPSHOT_ENCODER.encode
        yield encode(
            _ChunkHead(self._applied, self.session_ttl_commands, self._now_ms, self._notify_bits)
        )
        every = [(0, (self._data, self._expires)), *sorted(self._dbs.items())]
        for db, (data_db, expires_db) in [(db, t) for db, t in every if db == 0 or t[0]]:
            if db:
                yield encode(_ChunkDb(db))
            yield from _data_chunks(data_db, chunk_bytes_max, encode)
            if KvBug.SNAPSHOT_DROPS_DEADLINES in self.bugs:
                expires_db = {}
            for expires in _runs(expires_db.items(), chunk_bytes_max, lambda k, _: len(k) + 8):
                yield encode(_ChunkPartOut(expires=dict(expires)))
        kept = () if KvBug.SNAPSHOT_DROPS_SESSIONS in self.bugs else self._sessions.items()
        for sessions in _runs(kept, chunk_bytes_max, lambda _, s: len(s.result) + 32):
            yield encode(_ChunkPartOut(sessions=tuple(session for _, session in sessions)))
        watchers = self._programs.watches.state()
        if watchers:  # bounded by the watch limits: one part
            yield encode(_ChunkPartOut(watchers=watchers))
        scripts = enumerate(self._programs.scripts.state())
        for run in _runs(scripts, chunk_bytes_max, lambda _, body: len(body)):
            yield encode(_ChunkPartOut(scripts=tuple(body for _, body in run)))

    def snapshot_loader(self) -> KVSnapshotLoader:
        return KVSnapshotLoader(self)

    def restore(self, data: bytes) -> None:
        """Replace the state with a one-piece snapshot (versions 1-4)."""
        loader = KVSnapshotLoader(self)
        loader.load(data)
        loader.finish()

    def _restore_whole(self, data: bytes) -> _SnapshotDecoded:
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
        return snap

    # --- internals ----------------------------------------------------------------------------

    def _apply_request(self, request: Request | RequestBatch) -> bytes:
        session = self._sessions.get(request.client_id)
        if session is None:
            if request.seq != 1:
                if KvBug.EXPIRED_SESSION_REOPENS not in self.bugs:
                    self._close(request.client_id)
                return _EXPIRED
            session = Session(request.client_id, 0, self._applied, b"")
            self._sessions[request.client_id] = session
        elif session.closed:  # a tombstone: refused for good (until it expires)
            session.last_active = self._applied
            self._sessions.move_to_end(request.client_id)
            return _EXPIRED
        session.last_active = self._applied
        self._sessions.move_to_end(request.client_id)
        self._requester = request.client_id
        self._db = 0  # a request starts in database 0 (``InDb`` names another)
        if request.seq == session.last_seq:
            if KvBug.PUBLISH_TWICE_ON_RETRY in self.bugs and isinstance(request, Request):
                op = request.op
                if isinstance(op, Publish):
                    self._emit([Publication(self._applied, op.channel, op.message)])
            return session.result
        if request.seq < session.last_seq:
            return encode_result(Stale(session.last_seq))
        if isinstance(request, RequestBatch):
            result = encode_results(self._execute_all(request.ops))
            self.commands_executed += len(request.ops)
        else:
            result = encode_result(self._execute(request.op))
            self.commands_executed += 1
        session.last_seq = request.seq
        session.result = result
        return result

    def _close(self, client_id: int) -> None:
        """Leave a tombstone for ``client_id``, just refused as expired: the client moves to a
        new id, and a late copy of its first request must not open this one again (after which
        a late copy of the refused request would run although it was answered "not applied").
        The tombstone expires like a session."""
        self._sessions[client_id] = Session(client_id, 0, self._applied, _EXPIRED)

    def _execute_all(self, ops: tuple[Command, ...]) -> tuple[Result, ...]:
        """``_execute`` of each op in order, with the commonest two inlined (the hot loop of a
        pipelined batch: a type test and a dict operation per command)."""
        data = self._data
        shards, shard_hash, mask = data.shards, crc32, SHARD_MASK  # locals: the hot loop's
        results: list[Result] = []
        append = results.append
        if self._expires or self._programs.watches or self._notify_bits:  # no shortcut
            return tuple(self._execute(op) for op in ops)
        # Without a digest nothing is marked: the loop then skips the per-write mark (a call).
        dirty = self._digest.dbs[0].dirty if self._digest.tracking else None
        set_type, get_type, ok = Set, Get, _OK_RESULT
        for op in ops:
            if type(op) is set_type:
                key = op.key
                shards[shard_hash(key) & mask][key] = op.value
                if dirty is not None:
                    dirty.add(key)
                append(ok)
            elif type(op) is get_type:
                key = op.key
                value = shards[shard_hash(key) & mask].get(key)
                append(Value(value) if value is None or type(value) is bytes else _WRONGTYPE)
            else:
                append(self._execute(op))
                if self._slow_path_needed(data):
                    done = len(results)  # one result per op so far: the rest start here
                    return (*results, *(self._execute(rest) for rest in ops[done:]))
        return tuple(results)

    def _slow_path_needed(self, data: KeyStore[Stored]) -> bool:
        """After an op of a batch other than ``Set``/``Get``: must the rest of the batch leave
        ``_execute_all`` 's shortcut (another database selected or swapped in, a deadline set,
        a key watched, notifications turned on)?"""
        return bool(
            self._db
            or self._data is not data
            or self._expires
            or self._programs.watches
            or self._notify_bits
        )

    def _execute(self, op: Command) -> Result:
        if type(op) is InDb:
            return self._execute_in(op)
        db = self._db
        if db:
            ks = self._keyspace(db)
        else:
            watches = None if KvBug.WATCH_MISSES_WRITES in self.bugs else self._programs.watches
            ks = Keyspace(
                self._data,
                self._expires,
                self._now_ms,
                True,
                watches,
                0,
                self._keyspace,
                self._digest.marks(0),
            )
        if self._notify_bits and self._publications is not None:
            return self._execute_notifying(ks, op)
        try:
            return self._run(ks, op)
        except WrongType:
            return _WRONGTYPE

    def _execute_in(self, op: InDb) -> Result:
        """``op.op`` run in database ``op.db``, then back to the current one."""
        if not databases.valid(op.db):
            return Error(DB_OUT_OF_RANGE)
        if type(op.op) is InDb:  # never sent; nested deep it would exhaust the stack
            return _MALFORMED_RESULT
        saved, self._db = self._db, op.db
        try:
            return self._execute(op.op)
        finally:
            self._db = saved

    def _execute_notifying(self, ks: Keyspace, op: Command) -> Result:
        """``_execute`` that also publishes the keyspace events of ``op`` (``kv.pubsub``):
        Redis's named event, ``expired`` for a key found past its deadline, ``del`` for a key
        the write emptied."""
        data = ks.data
        keys = written_keys(op)
        expired = [k for k in keys if k in data and ks.expired(k)]
        existed = [k for k in keys if k in data and k not in expired]
        try:
            result = self._run(ks, op)
        except WrongType:
            result = _WRONGTYPE
        events = [(EXPIRED, b"expired", k) for k in expired] + command_events(op, result, ks.db)
        removed = {key for _, name, key in events if name in _REMOVING_EVENTS}
        emptied = [k for k in existed if k not in data and k not in removed]
        events += [(GENERIC, b"del", k) for k in emptied]
        self._emit(keyspace_publications(self._notify_bits, self._applied, events, ks.db))
        for db, elsewhere in databases.target_events(op, result, ks.db):
            self._emit(keyspace_publications(self._notify_bits, self._applied, elsewhere, db))
        return result

    def _emit(self, publications: list[Publication]) -> None:
        if self._publications is not None and publications:
            self._publications.extend(publications)

    def _read(self, ks: Keyspace, op: Command) -> Result:
        if isinstance(op, ScriptExists):
            return self._programs.exists(op)
        if type(op) is Select:  # switches nothing off the log (only scripts' and EXEC's do)
            return _OK_RESULT if databases.valid(op.db) else Error(DB_OUT_OF_RANGE)
        if type(op) is InDb:  # a read in another database: its own read-only view
            if not databases.valid(op.db):
                return Error(DB_OUT_OF_RANGE)
            if type(op.op) is InDb:
                return _MALFORMED_RESULT
            data, expires = self._tables(op.db, create=False)
            return self._read(Keyspace(data, expires, ks.now_ms, False, db=op.db), op.op)
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
                for db in [0, *sorted(self._dbs)]:
                    self._flush(db)
                return _OK_RESULT
            case FlushDb():
                self._flush(ks.db)
                return _OK_RESULT
            case DbSize() | Keys() | Scan() | RandomKey() | Ttl():
                return keyspace.read(ks, op)
            case Copy() if op.db >= 0:
                return databases.copy(ks, op)
            case KeyType() | Copy():
                return keyspace.key_command(ks, op)
            case Move():
                return databases.move(ks, op)
            case SwapDb():
                return self._swap(op)
            case Select(db):
                if not databases.valid(db):
                    return Error(DB_OUT_OF_RANGE)
                self._db = db
                return _OK_RESULT
            case InDb():
                return self._execute_in(op)
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
                saved = self._db  # a script's or a transaction's SELECT ends with it
                try:
                    return self._programs.execute(
                        op, ks, self._requester, self._applied, self._execute
                    )
                finally:
                    self._db = saved
            case _:
                assert_never(op)

    def _flush(self, db: int) -> None:
        """Empty database ``db`` (``FLUSHDB``; ``FLUSHALL`` is every database's)."""
        data, expires = self._tables(db, create=False)
        self._programs.watches.touch_all(data, db)
        self._digest.keys(db).clear()
        if db:
            self._dbs.pop(db, None)
        else:
            data.clear()
            expires.clear()

    def _swap(self, op: SwapDb) -> Result:
        """``SWAPDB``: the two databases exchange tables; their watched keys stay where they
        are, so a watch on a key present in either is touched (Redis 7.0)."""
        first, second = op.first, op.second
        if not (databases.valid(first) and databases.valid(second)):
            return Error(DB_OUT_OF_RANGE)
        if first != second:
            first_tables = self._tables(first, create=False)
            second_tables = self._tables(second, create=False)
            self._programs.watches.touch_swapped(first, first_tables[0], second, second_tables[0])
            self._put_tables(first, second_tables)
            self._put_tables(second, first_tables)
            self._digest.swap(first, second)
        return _OK_RESULT

    def _sweep(self, db: int, expires: dict[bytes, int]) -> None:
        """Reclaim a few expired keys of a database per applied entry (Redis's active expiry,
        made deterministic): visit the first ``SWEEP_KEYS`` deadlines in order, drop the
        expired ones and move the others to the back, so the whole table is visited in turn."""
        data = self._tables(db, create=False)[0]
        for _ in range(min(SWEEP_KEYS, len(expires))):
            key, deadline = next(iter(expires.items()))
            del expires[key]
            if deadline <= self._now_ms:
                del data[key]
                self._digest.keys(db).dirty.add(key)
                if self._notify_bits & EXPIRED and self._publications is not None:
                    self._emit(
                        keyspace_publications(
                            self._notify_bits, self._applied, [(EXPIRED, b"expired", key)], db
                        )
                    )
            else:
                expires[key] = deadline

    def _sweep_databases(self) -> None:
        """``_sweep`` of every other database with deadlines, in database order; a database
        the sweep empties is dropped."""
        for db in sorted(self._dbs):
            data, expires = self._dbs[db]
            if expires:
                self._sweep(db, expires)
                if not data:
                    del self._dbs[db]

    def _expire_sessions(self) -> None:
        horizon = self._applied - self.session_ttl_commands
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_active > horizon:
                break
            self._sessions.popitem(last=False)
            self._digest.dirty_sessions.add(oldest.client_id)
            self._programs.watches.forget(oldest.client_id)
        assert len(self._sessions) <= self.session_ttl_commands


def _size(value: Stored) -> int:
    """About how many bytes ``value`` takes in a snapshot chunk (for cutting chunks)."""
    if type(value) is bytes:
        return len(value)
    if isinstance(value, HashValue):
        return sum(len(field) + len(item) for field, item in value.fields.items())
    if isinstance(value, ListValue):
        return sum(map(len, value.items))
    if isinstance(value, SetValue):
        return sum(map(len, value.members))
    assert isinstance(value, ZSetValue)
    return sum(len(member) + 9 for member in value.scores)


_K = TypeVar("_K")
_V = TypeVar("_V")


def _runs(
    items: Iterable[tuple[_K, _V]], bytes_max: int, size: Callable[[_K, _V], int]
) -> Iterator[list[tuple[_K, _V]]]:
    """``items`` cut into consecutive runs of about ``bytes_max`` bytes each."""
    run: list[tuple[_K, _V]] = []
    run_bytes = 0
    for key, value in items:
        run.append((key, value))
        run_bytes += size(key, value) + CHUNK_ENTRY_OVERHEAD_BYTES
        if run_bytes >= bytes_max:
            yield run
            run, run_bytes = [], 0
    if run:
        yield run


def _data_chunks(
    data: KeyStore[Stored], bytes_max: int, encode: Callable[[object], bytes]
) -> Iterator[bytes]:
    """The keys of ``data`` as encoded parts of at most ``bytes_max`` bytes each, but for a
    shard of the store that alone encodes to more (kept whole up to ``SHARD_WHOLE_MAX`` times
    the bound, else cut key by key, where one large entry may still exceed it).

    Each shard's dictionary is encoded as it stands and consecutive shards' encodings are
    joined under one map header: the bytes are those of encoding the merged dictionary, but
    no key or value is copied or even referenced from Python, which in a forked writer would
    copy the page of every object it touched (``_joined_part``)."""
    bodies: list[memoryview] = []
    count = body_bytes = 0
    for shard in data.shards:
        if not shard:
            continue
        encoded = encode(shard)
        entries, header_bytes = _map_header_of(encoded)
        if len(encoded) > bytes_max * SHARD_WHOLE_MAX and entries > 1:
            if bodies:
                yield _joined_part(bodies, count)
                bodies, count, body_bytes = [], 0, 0
            for exact in _runs(shard.items(), bytes_max, lambda k, v: len(k) + _size(v)):
                yield encode(_ChunkPartOut(data=dict(exact)))
            continue
        if bodies and body_bytes + len(encoded) > bytes_max:
            yield _joined_part(bodies, count)
            bodies, count, body_bytes = [], 0, 0
        bodies.append(memoryview(encoded)[header_bytes:])
        count += entries
        body_bytes += len(encoded) - header_bytes
    if bodies:
        yield _joined_part(bodies, count)


def _map_header_of(encoded: bytes) -> tuple[int, int]:
    """The entry count and header length of the MessagePack map ``encoded`` starts with."""
    first = encoded[0]
    if first & 0xF0 == 0x80:  # fixmap
        return first & 0x0F, 1
    if first == 0xDE:  # map 16
        return int.from_bytes(encoded[1:3], "big"), 3
    if first == 0xDF:  # map 32
        return int.from_bytes(encoded[1:5], "big"), 5
    raise ValueError(f"not a MessagePack map: first byte {first:#x}")


def _map_header(entries: int) -> bytes:
    """The MessagePack header of a map of ``entries`` entries (its shortest form, as
    msgspec writes it)."""
    if entries < 16:
        return bytes((0x80 | entries,))
    if entries < 1 << 16:
        return b"\xde" + entries.to_bytes(2, "big")
    return b"\xdf" + entries.to_bytes(4, "big")


def _joined_part(bodies: list[memoryview], entries: int) -> bytes:
    """``_ChunkPartOut(data=...)`` encoded from the bodies (entries without their map header)
    of maps encoded one by one: the empty part's bytes with its empty data map replaced."""
    return b"".join(
        (_EMPTY_PART[:_DATA_AT], _map_header(entries), *bodies, _EMPTY_PART[_DATA_AT + 1 :])
    )


def _one_piece(data: bytes) -> bool:
    """Is ``data`` a version 1-4 snapshot (the whole state in one piece)?  (A value nested
    too deep raises ``RecursionError``: the caller names it.)"""
    try:
        return _SNAPSHOT_VERSION_DECODER.decode(data).version < CHUNKED_SNAPSHOT_VERSION
    except msgspec.DecodeError:
        return False


class KVSnapshotLoader:
    """Rebuilds a ``KVStateMachine`` from its chunks (``multi.snapshots.SnapshotLoader``):
    each chunk is decoded and checked on its own, into new tables; ``finish`` swaps them in."""

    __slots__ = (
        "_data",
        "_db",
        "_dbs",
        "_expires",
        "_head",
        "_last_active",
        "_machine",
        "_scripts",
        "_sessions",
        "_watchers",
    )

    def __init__(self, machine: KVStateMachine) -> None:
        self._machine = machine
        self._head: _ChunkHead | None = None
        # The database being loaded (``_ChunkDb``): its tables are ``_data``/``_expires``;
        # database 0's and the finished ones are in ``_dbs``.
        self._db = 0
        self._dbs: dict[int, Tables] = {}
        self._data: KeyStore[Stored] = KeyStore()
        self._expires: dict[bytes, int] = {}
        self._sessions: OrderedDict[int, Session] = OrderedDict()
        self._last_active = -1
        self._watchers: list[Watcher] = []
        self._scripts: list[bytes] = []

    def load(self, chunk: bytes) -> None:
        # A chunk first (the common case, decoded once); what is not one may be a version 1-4
        # snapshot, whose version (its first field) is below every chunk's tag.
        try:
            decoded = _CHUNK_DECODER.decode(chunk)
        except msgspec.DecodeError as error:
            try:
                one_piece = _one_piece(chunk)
            except RecursionError:
                raise ValueError("malformed snapshot chunk: nesting too deep") from None
            if not one_piece:
                raise ValueError(f"malformed snapshot chunk: {error}") from None
            decoded = None
        except RecursionError:
            raise ValueError("malformed snapshot chunk: nesting too deep") from None
        if decoded is None:
            if self._head is not None:
                raise ValueError("malformed snapshot: a one-piece snapshot after the head")
            self._load_whole(chunk)  # versions 1-4: the whole state in one piece
            return
        if isinstance(decoded, _ChunkHeadV5):  # database 0 only: read as version 7
            decoded = _ChunkHead(*msgspec.structs.astuple(decoded))
        if isinstance(decoded, _ChunkHead):
            self._load_head(decoded)
            return
        if self._head is None:
            raise ValueError("malformed snapshot: a part before the head chunk")
        if isinstance(decoded, _ChunkDb):
            self._load_db(decoded.db)
            return
        self._load_part(decoded)

    def _load_head(self, head: _ChunkHead) -> None:
        if self._head is not None:
            raise ValueError("malformed snapshot: a second head chunk")
        if head.session_ttl_commands < 1:
            raise ValueError("malformed snapshot: session_ttl_commands must be at least 1")
        self._head = head

    def _load_db(self, db: int) -> None:
        """The parts from here on are database ``db`` 's: after the previous database's, in
        increasing order, before the sessions."""
        if not self._db < db < DATABASES:
            raise ValueError("malformed snapshot: databases out of order or out of range")
        if self._sessions or self._watchers or self._scripts:
            raise ValueError("malformed snapshot: a database after the sessions")
        self._dbs[self._db] = (self._data, self._expires)
        self._db, self._data, self._expires = db, KeyStore(), {}

    def _load_part(self, part: _ChunkPart) -> None:
        if part.data:
            if self._expires or self._sessions:
                raise ValueError("malformed snapshot: data after deadlines or sessions")
            self._add_data(part.data)
        if part.expires:
            if self._sessions:
                raise ValueError("malformed snapshot: deadlines after sessions")
            data = self._data
            if any(key not in data for key in part.expires):
                raise ValueError("malformed snapshot: a deadline for a key that is not there")
            self._expires.update(part.expires)
        assert self._head is not None
        for session in part.sessions:
            if not self._last_active < session.last_active <= self._head.applied:
                raise ValueError("malformed snapshot: sessions out of order")
            if session.client_id in self._sessions:
                raise ValueError("malformed snapshot: duplicate client id")
            self._last_active = session.last_active
            self._sessions[session.client_id] = session
        if part.watchers:
            if self._scripts:
                raise ValueError("malformed snapshot: watchers after scripts")
            self._watchers += part.watchers
        self._scripts += part.scripts

    def _add_data(self, data: dict[bytes, StoredSnapshot]) -> None:
        """A data part's live values added to the store in one pass (the hot loop of an
        install: a string is taken as decoded, a collection rebuilt and checked, in place in
        ``data`` too, which the planted restore bugs then see); the store's own ``add_all``
        with ``restore_values`` fused in, one walk of the part instead of two."""
        restored = cast("dict[bytes, Stored]", data)
        shards, mask = self._data.shards, SHARD_MASK
        for key, value in restored.items():
            if type(value) is not bytes:
                value = restored[key] = restore_collection(cast("StoredSnapshot", value))
            shards[crc32(key) & mask][key] = value
        if self._machine.bugs:
            plant_restore_bugs(self._machine.bugs, restored)

    def _load_whole(self, chunk: bytes) -> None:
        """A version 1-4 snapshot: the whole state in one piece, checked as before."""
        snap = self._machine._restore_whole(chunk)
        self._load_head(
            _ChunkHead(snap.applied, snap.session_ttl_commands, snap.now_ms, snap.notify_bits)
        )
        self._load_part(_ChunkPart(data=snap.data))
        self._load_part(_ChunkPart(expires=dict(snap.expires)))
        for db, (data, expires) in snap.databases.items():
            self._load_db(db)
            self._load_part(_ChunkPart(data=data))
            self._load_part(_ChunkPart(expires=dict(expires)))
        self._load_part(_ChunkPart(sessions=snap.sessions))
        self._load_part(_ChunkPart(watchers=snap.watchers, scripts=snap.scripts))

    def finish(self) -> None:
        head = self._head
        if head is None:
            raise ValueError("malformed snapshot: no head chunk")
        watches = WatchTable.from_state(tuple(self._watchers))
        if not set(watches.watchers) <= set(self._sessions):
            raise ValueError("malformed snapshot: a watcher without a session")
        scripts = ScriptCache.from_state(tuple(self._scripts))
        machine = self._machine
        machine._programs.watches = watches
        machine._programs.scripts = scripts
        machine.session_ttl_commands = head.session_ttl_commands
        machine._applied = head.applied
        machine._now_ms = head.now_ms
        machine._notify_bits = head.notify_bits
        if machine._publications is not None:  # the publications in between were skipped
            machine._publications = []
            machine.publications_floor = head.applied
        self._dbs[self._db] = (self._data, self._expires)
        machine._data, machine._expires = self._dbs.pop(0)
        machine._dbs = {db: tables for db, tables in self._dbs.items() if tables[0]}
        machine._sessions = self._sessions
        every = [(0, (machine._data, machine._expires)), *machine._dbs.items()]
        machine._digest.recompute(every, self._sessions.values())
        self._head = None  # one use: the tables now belong to the machine
