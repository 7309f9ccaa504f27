"""Key-value commands and results: what clients put in the replicated log and get back.

Every client command travels as a ``Request(client_id, seq, op)`` encoded with msgpack.  The log
stores it as opaque bytes; only the state machine (``kv.state_machine``) decodes it.  The leader
may also put a bare ``NoOp`` in the log to fill a gap (``NOOP`` is its encoding).

Keys and values are ``bytes``: Redis clients send byte strings and the store must be binary-safe,
msgpack carries bytes as-is (no UTF-8 validation on every apply), and an integer is simply its
canonical decimal spelling (``b"42"``), exactly as in Redis, so ``Incr`` works on what ``Set``
stored.

All structs are frozen, tagged and ``array_like``: hashable, compact on the wire, and decoded
straight into the right type by the tag.  Encoding is deterministic (msgpack of a struct has one
spelling), which the replicas rely on: the same command bytes give the same result bytes.
"""

from __future__ import annotations

import re

import msgspec

from pypaxos.kv.collection_ops import COLLECTION_READ_OPS, CollectionCommand
from pypaxos.kv.pubsub_ops import PubSubCommand

# --- commands ---------------------------------------------------------------------------------


class Get(msgspec.Struct, frozen=True, tag="get", array_like=True):
    """Read ``key``; answered with ``Value`` (``None`` when absent).  Linearizable either way it
    goes: through the log like any other command, or as a read-index query on the leader
    (``KVStateMachine.query``, ``multi.reads``)."""

    key: bytes


class Set(msgspec.Struct, frozen=True, tag="set", array_like=True):
    """Store ``value`` under ``key``; answered with ``Ok``."""

    key: bytes
    value: bytes


class Delete(msgspec.Struct, frozen=True, tag="del", array_like=True):
    """Remove ``key``; answered with ``Integer(1)`` if it existed, ``Integer(0)`` if not."""

    key: bytes


class Incr(msgspec.Struct, frozen=True, tag="incr", array_like=True):
    """Add one to the integer stored at ``key`` (an absent key counts as 0) and answer
    ``Integer(new value)``; ``Error`` if the value is not a 64-bit decimal integer or would
    overflow (Redis ``INCR``)."""

    key: bytes


class Cas(msgspec.Struct, frozen=True, tag="cas", array_like=True):
    """Compare-and-set: if ``key`` holds ``expected`` (``None``: if it is absent), store ``new``
    and answer ``Ok``; otherwise change nothing and answer ``Mismatch(current)``."""

    key: bytes
    expected: bytes | None
    new: bytes


class NoOp(msgspec.Struct, frozen=True, tag="noop", array_like=True):
    """Does nothing; what a new leader proposes for a slot it must fill but has no command for."""


# --- the Redis string and keyspace commands (semantics of Redis 7.0; see kv.keyspace) --------

SET_ALWAYS = 0
SET_NX = 1  # only if the key is absent
SET_XX = 2  # only if the key exists


class SetWith(msgspec.Struct, frozen=True, tag="setw", array_like=True):
    """``SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]``: ``condition`` is
    ``SET_ALWAYS``, ``SET_NX`` or ``SET_XX``.  Answered ``Value(old)`` when ``get``; otherwise
    ``Ok`` if it stored, ``Value(None)`` if the condition failed."""

    key: bytes
    value: bytes
    condition: int = SET_ALWAYS
    get: bool = False
    ttl_ms: int = 0  # EX/PX: the key expires this long after the request's time (0: never)
    at_ms: int = 0  # EXAT/PXAT: at this Unix time in ms (0: never)
    keep_ttl: bool = False  # KEEPTTL: keep the key's deadline (otherwise a SET clears it)


class GetDel(msgspec.Struct, frozen=True, tag="getdel", array_like=True):
    """Remove ``key``, answering ``Value(what it held)``."""

    key: bytes


class MSet(msgspec.Struct, frozen=True, tag="mset", array_like=True):
    """Store every pair, atomically (one log command).  ``nx``: only if no key exists
    (``MSETNX``), answered ``Integer(1)`` or ``Integer(0)``; otherwise ``Ok``."""

    pairs: tuple[tuple[bytes, bytes], ...]
    nx: bool = False


class Append(msgspec.Struct, frozen=True, tag="append", array_like=True):
    """Append ``value`` to ``key`` (absent: empty); answered ``Integer(new length)``."""

    key: bytes
    value: bytes


class SetRange(msgspec.Struct, frozen=True, tag="setrange", array_like=True):
    """Overwrite ``key`` from byte ``offset`` (padding with zero bytes); ``Integer(length)``."""

    key: bytes
    offset: int
    value: bytes


class IncrBy(msgspec.Struct, frozen=True, tag="incrby", array_like=True):
    """Add ``amount`` (any 64-bit integer) to ``key``; like ``Incr``."""

    key: bytes
    amount: int


class IncrByFloat(msgspec.Struct, frozen=True, tag="incrbyfloat", array_like=True):
    """Add the decimal ``amount`` to ``key``, as Redis does in long double arithmetic;
    answered ``Value(the new spelling)``."""

    key: bytes
    amount: bytes


class Rename(msgspec.Struct, frozen=True, tag="rename", array_like=True):
    """Move ``key``'s value to ``new``.  ``nx``: only if ``new`` is absent (``Integer(1|0)``);
    otherwise ``Ok``.  ``Error(NO_SUCH_KEY)`` if ``key`` is absent."""

    key: bytes
    new: bytes
    nx: bool = False


EXPIRE_NX = 1  # only if the key has no deadline
EXPIRE_XX = 2  # only if it has one
EXPIRE_GT = 4  # only if the new deadline is later (no deadline counts as infinitely late)
EXPIRE_LT = 8  # only if the new deadline is earlier


class Expire(msgspec.Struct, frozen=True, tag="expire", array_like=True):
    """Give ``key`` a deadline: ``ms`` after the request's time, or at Unix time ``ms`` if
    ``absolute``, if the ``conditions`` (``EXPIRE_*`` bits) hold.  ``Integer(1)`` if it was
    set, ``Integer(0)`` if the key is absent or a condition failed."""

    key: bytes
    ms: int
    absolute: bool = False
    conditions: int = 0


class Persist(msgspec.Struct, frozen=True, tag="persist", array_like=True):
    """Remove ``key``'s deadline: ``Integer(1)`` if it had one, else ``Integer(0)``."""

    key: bytes


class Ttl(msgspec.Struct, frozen=True, tag="ttl", array_like=True):
    """Milliseconds ``key`` has left: ``Integer`` (-2: absent, -1: no deadline).  Read-only."""

    key: bytes


class FlushAll(msgspec.Struct, frozen=True, tag="flushall", array_like=True):
    """Remove every key of every database; ``Ok``."""


# --- databases (kv.databases: SELECT's numbered keyspaces) -----------------------------------

DATABASES = 16
"""How many databases the store has, numbered from 0 (Redis's default ``databases``)."""
DB_OUT_OF_RANGE = "DB index is out of range"
SAME_OBJECT = "source and destination objects are the same"


class InDb(msgspec.Struct, frozen=True, tag="indb", array_like=True):
    """Run ``op`` in database ``db``: how a connection that ``SELECT`` ed a database other
    than 0 sends each of its commands.  Answered with ``op``'s result, or
    ``Error(DB_OUT_OF_RANGE)``."""

    db: int
    op: Command


class Select(msgspec.Struct, frozen=True, tag="select", array_like=True):
    """Switch to database ``db`` for the rest of the enclosing script or transaction (a
    script's ``redis.call('SELECT', n)``, a ``SELECT`` queued in ``MULTI``); ``Ok``."""

    db: int


class FlushDb(msgspec.Struct, frozen=True, tag="flushdb", array_like=True):
    """Remove every key of the current database; ``Ok``."""


class Move(msgspec.Struct, frozen=True, tag="move", array_like=True):
    """``MOVE key db``: move ``key`` (with its deadline) to database ``db``:
    ``Integer(1)``, or 0 if it is absent here or present there."""

    key: bytes
    db: int


class SwapDb(msgspec.Struct, frozen=True, tag="swapdb", array_like=True):
    """``SWAPDB first second``: exchange the two databases' contents; ``Ok``."""

    first: int
    second: int


class DbSize(msgspec.Struct, frozen=True, tag="dbsize", array_like=True):
    """How many keys there are: ``Integer``.  Read-only."""


class Keys(msgspec.Struct, frozen=True, tag="keys", array_like=True):
    """The keys matching the glob ``pattern`` (Redis's syntax), sorted: ``Array``.
    Read-only."""

    pattern: bytes


class Scan(msgspec.Struct, frozen=True, tag="scan", array_like=True):
    """One page of keys from ``cursor`` (0: the start): ``Page``.  Read-only; see
    ``kv.keyspace.scan`` for the cursor's guarantee."""

    cursor: int
    pattern: bytes | None = None
    count: int = 10
    type_name: bytes | None = None  # TYPE: only keys of this type (b"string", b"hash"...)


class RandomKey(msgspec.Struct, frozen=True, tag="randomkey", array_like=True):
    """A key, or ``Value(None)`` if there is none.  Deterministic, not random: the first key
    in the store's order (``kv.store``), so that every replica gives the same one."""


# --- transactions and scripts (semantics in kv.transactions and kv.scripts) --------------------


class Watch(msgspec.Struct, frozen=True, tag="watch", array_like=True):
    """``WATCH key...`` for the requesting client: a later ``Exec(watching=True)`` of the same
    client is refused (``Aborted``) if any of ``keys`` is modified meanwhile.  ``reset``: drop
    what the client watched before (its connection had unwatched).  ``Ok``, or ``Error`` past
    the per-client bound."""

    keys: tuple[bytes, ...]
    reset: bool = False


class Exec(msgspec.Struct, frozen=True, tag="exec", array_like=True):
    """``MULTI`` ... ``EXEC``: run ``ops`` in order, atomically, answered ``Replies`` (one
    result per op; a failing op does not stop the others, as in Redis).  ``watching``: the
    client's watch must be intact, else nothing runs and the answer is ``Aborted``."""

    ops: tuple[Command, ...]
    watching: bool = False


class Eval(msgspec.Struct, frozen=True, tag="eval", array_like=True):
    """``EVAL`` (``body`` given; it joins the script cache) or ``EVALSHA`` (``body`` is
    ``None``: ``sha``, 40 lower-case hex digits, names a cached script): run the Lua script with
    ``keys`` and ``args`` (``KEYS``/``ARGV``).  Answered with the script's reply converted to a
    result tree (``Value``, ``Integer``, ``Status``, ``ErrorReply``, ``Replies``)."""

    body: bytes | None
    sha: bytes
    keys: tuple[bytes, ...]
    args: tuple[bytes, ...]
    read_only: bool = False  # EVAL_RO / EVALSHA_RO: a write command inside is refused


class ScriptLoad(msgspec.Struct, frozen=True, tag="scriptload", array_like=True):
    """``SCRIPT LOAD``: compile-check ``body`` and cache it; ``Value(sha1 hex)``."""

    body: bytes


class ScriptExists(msgspec.Struct, frozen=True, tag="scriptexists", array_like=True):
    """``SCRIPT EXISTS sha...``: ``Replies`` of ``Integer(1|0)``.  Read-only."""

    shas: tuple[bytes, ...]


class ScriptFlush(msgspec.Struct, frozen=True, tag="scriptflush", array_like=True):
    """``SCRIPT FLUSH``: empty the script cache; ``Ok``."""


Command = (
    Get
    | Set
    | Delete
    | Incr
    | Cas
    | NoOp
    | SetWith
    | GetDel
    | MSet
    | Append
    | SetRange
    | IncrBy
    | IncrByFloat
    | Rename
    | FlushAll
    | DbSize
    | Keys
    | Scan
    | RandomKey
    | Expire
    | Persist
    | Ttl
    | CollectionCommand
    | Watch
    | Exec
    | Eval
    | ScriptLoad
    | ScriptExists
    | ScriptFlush
    | PubSubCommand
    | InDb
    | Select
    | FlushDb
    | Move
    | SwapDb
)

READ_OPS: tuple[type[Command], ...] = (
    Get,
    DbSize,
    Keys,
    Scan,
    RandomKey,
    Ttl,
    ScriptExists,
    Select,
    *COLLECTION_READ_OPS,
)
"""The commands that change nothing: ``KVStateMachine.query`` answers them off the log.
(``Select`` changes only which database the next commands of its request read.)"""


def is_read(op: Command) -> bool:
    """Is ``op`` one of ``READ_OPS``, possibly run in another database (``InDb``)?"""
    if type(op) is InDb:
        op = op.op
    return isinstance(op, READ_OPS)


class Request(msgspec.Struct, frozen=True, tag="req", array_like=True):
    """One client command with its exactly-once identity.

    ``seq`` starts at 1 for a new ``client_id`` and grows with each new request; a retry reuses
    the ``seq`` of the request it repeats.  A client must have at most one request outstanding:
    it sends ``seq + 1`` only after it has the answer to ``seq``.  That is what lets the state
    machine remember a single cached result per client (see ``kv.state_machine``).
    """

    client_id: int
    seq: int
    op: Command
    now_ms: int = 0  # the server's Unix time in ms when it made the request (0: none); expiry


class RequestBatch(msgspec.Struct, frozen=True, tag="batch", array_like=True):
    """Several commands as *one* exactly-once request, applied in order in one log entry.

    What a server sends for the commands one pipelining connection delivered together: the
    log, the wire and the session table then pay once per batch instead of once per command,
    and the batch's ``Results`` are answered (or replayed to a retry) as one.  Each command is
    still linearizable: they take effect, in order, at the batch's place in the log.
    """

    client_id: int
    seq: int
    ops: tuple[Command, ...]
    now_ms: int = 0  # as in ``Request``


# What a log entry decodes to: a client request (single or batched) or a gap-filling no-op.
LogEntry = Request | RequestBatch | NoOp

# --- results ----------------------------------------------------------------------------------


class Ok(msgspec.Struct, frozen=True, tag="ok", array_like=True):
    """The command took effect (``Set``, a successful ``Cas``, ``NoOp``)."""


class Value(msgspec.Struct, frozen=True, tag="value", array_like=True):
    """The value ``Get`` read; ``None`` when the key is absent."""

    value: bytes | None


class Integer(msgspec.Struct, frozen=True, tag="int", array_like=True):
    """An integer answer: the new value after ``Incr``, the count ``Delete`` removed."""

    value: int


class Mismatch(msgspec.Struct, frozen=True, tag="mismatch", array_like=True):
    """A ``Cas`` whose comparison failed; ``current`` is what the key held (``None``: absent)."""

    current: bytes | None


class Error(msgspec.Struct, frozen=True, tag="error", array_like=True):
    """The command was refused and changed nothing (for example ``Incr`` of a non-integer)."""

    message: str


class Stale(msgspec.Struct, frozen=True, tag="stale", array_like=True):
    """The request's ``seq`` is older than the last one applied for its client (``last_seq``):
    it was not applied, and its own answer is no longer kept."""

    last_seq: int


class SessionExpired(msgspec.Struct, frozen=True, tag="expired", array_like=True):
    """The client's dedup entry is gone (idle too long, or ``seq`` did not start at 1): the
    request was not applied.  The client must start over with a new ``client_id``."""


class Array(msgspec.Struct, frozen=True, tag="array", array_like=True):
    """A list of byte strings (``Keys``)."""

    items: tuple[bytes, ...]


class Page(msgspec.Struct, frozen=True, tag="page", array_like=True):
    """One ``Scan`` page: the ``cursor`` to continue from (0: done) and its ``keys``."""

    cursor: int
    keys: tuple[bytes, ...]


class Values(msgspec.Struct, frozen=True, tag="values", array_like=True):
    """Byte strings or ``None`` (``HMGET``'s absent fields)."""

    items: tuple[bytes | None, ...]


class Integers(msgspec.Struct, frozen=True, tag="ints", array_like=True):
    """A list of integers (``SMISMEMBER``, ``LPOS ... COUNT``)."""

    items: tuple[int, ...]


class Score(msgspec.Struct, frozen=True, tag="score", array_like=True):
    """A sorted set's score (``ZINCRBY``, ``ZADD INCR``); ``None``: no score."""

    value: float | None


class Scores(msgspec.Struct, frozen=True, tag="scores", array_like=True):
    """Scores or ``None`` per member (``ZSCORE``, ``ZMSCORE``)."""

    items: tuple[float | None, ...]


class Scored(msgspec.Struct, frozen=True, tag="scored", array_like=True):
    """Members with their scores, in the order asked (``ZRANGE``, ``ZPOPMIN``...)."""

    items: tuple[tuple[bytes, float], ...]


class Status(msgspec.Struct, frozen=True, tag="status", array_like=True):
    """A status reply (RESP ``+text``) from a script: ``redis.status_reply``, ``{ok=...}``."""

    text: bytes


class ErrorReply(msgspec.Struct, frozen=True, tag="errreply", array_like=True):
    """An error reply spelled in full, its code included (RESP ``-text``): a script's errors,
    ``NOSCRIPT``.  ``Error`` is the store's own refusal, always spelled ``ERR message``."""

    text: bytes


class Replies(msgspec.Struct, frozen=True, tag="replies", array_like=True):
    """An array of results: ``Exec``'s one per op, a script's table."""

    items: tuple[Result, ...]


class Aborted(msgspec.Struct, frozen=True, tag="aborted", array_like=True):
    """An ``Exec`` that did not run because a watched key changed (RESP null array)."""


Result = (
    Ok
    | Value
    | Integer
    | Mismatch
    | Error
    | Stale
    | SessionExpired
    | Array
    | Page
    | Values
    | Integers
    | Score
    | Scores
    | Scored
    | Status
    | ErrorReply
    | Replies
    | Aborted
)


class Results(msgspec.Struct, frozen=True, tag="results", array_like=True):
    """The answer to a ``RequestBatch``: one result per command, in order.  (A refused batch,
    ``Stale`` or ``SessionExpired``, gets that single result instead: nothing was applied.)"""

    results: tuple[Result, ...]


Answer = Result | Results
"""What the state machine returns for a log entry."""

NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
MALFORMED = "malformed command"
NOT_A_READ = "not a read-only command"
NOT_A_FLOAT = "value is not a valid float"
NAN_OR_INFINITY = "increment would produce NaN or Infinity"
DECREMENT_OVERFLOW = "decrement would overflow"
NO_SUCH_KEY = "no such key"
OFFSET_OUT_OF_RANGE = "offset is out of range"
TOO_LARGE = "string exceeds maximum allowed size (proto-max-bulk-len)"
VALUE_BYTES_MAX = 512 * 1024
"""The longest value the store keeps (Redis: 512 MiB); ``Append``/``SetRange`` past it are
refused with ``TOO_LARGE``, and the server refuses longer arguments."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Redis's string2ll: optional minus, no leading zeros, no plus sign, no spaces; "-0" is refused.
_CANONICAL_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def parse_int64(value: bytes) -> int | None:
    """The integer ``value`` spells in canonical decimal, or ``None`` if it spells none.

    Canonical means what Redis ``INCR`` accepts: it is the spelling ``Incr`` itself writes, so a
    value survives any number of increments, and ``b"007"`` or ``b" 7"`` are not integers.
    """
    if _CANONICAL_INT.fullmatch(value) is None:
        return None
    number = int(value)
    return number if INT64_MIN <= number <= INT64_MAX else None


# --- encoding ---------------------------------------------------------------------------------

_ENCODER = msgspec.msgpack.Encoder()
_REQUEST_DECODER = msgspec.msgpack.Decoder(Request)
_ENTRY_DECODER: msgspec.msgpack.Decoder[LogEntry] = msgspec.msgpack.Decoder(LogEntry)
_RESULT_DECODER: msgspec.msgpack.Decoder[Result] = msgspec.msgpack.Decoder(Result)
_ANSWER_DECODER: msgspec.msgpack.Decoder[Answer] = msgspec.msgpack.Decoder(Answer)


def encode_request(request: Request | RequestBatch) -> bytes:
    """The bytes a client hands to the log for ``request``."""
    return _ENCODER.encode(request)


def decode_request(data: bytes) -> Request:
    """Inverse of ``encode_request``; raises ``msgspec.DecodeError`` on malformed bytes."""
    return _REQUEST_DECODER.decode(data)


def decode_entry(data: bytes) -> LogEntry:
    """A log entry: a ``Request`` or a bare ``NoOp``; raises ``msgspec.DecodeError``."""
    return _ENTRY_DECODER.decode(data)


def encode_result(result: Answer) -> bytes:
    return _ENCODER.encode(result)


def decode_result(data: bytes) -> Result:
    """Inverse of ``encode_result``; raises ``msgspec.DecodeError`` on malformed bytes."""
    return _RESULT_DECODER.decode(data)


_ANSWER_CACHE: dict[bytes, Answer] = {}
ANSWER_CACHE_BYTES_MAX = 128
"""Answers this short are kept, decoded, by their bytes (at most ``ANSWER_CACHE_ENTRIES``).

A pipelining client's batch of ``SET`` commands is answered by the same bytes every time (its
length's worth of ``Ok``): decoding them built that many structs per batch again, 2.5 µs for a
batch of 16.  Answers are immutable (frozen structs in tuples), so one copy can serve all."""
ANSWER_CACHE_ENTRIES = 1024


def decode_answer(data: bytes) -> Answer:
    """A ``Result`` or the ``Results`` of a batch; raises ``msgspec.DecodeError``."""
    if len(data) > ANSWER_CACHE_BYTES_MAX:
        return _ANSWER_DECODER.decode(data)
    answer = _ANSWER_CACHE.get(data)
    if answer is None:
        answer = _ANSWER_DECODER.decode(data)
        if len(_ANSWER_CACHE) >= ANSWER_CACHE_ENTRIES:
            _ANSWER_CACHE.clear()  # short answers that vary (small values): start over
        _ANSWER_CACHE[data] = answer
    return answer


NOOP: bytes = _ENCODER.encode(NoOp())
