"""Publications: what applying a command emits for subscribers, derived from the log alone.

``PUBLISH`` is a log command (``kv.pubsub_ops.Publish``).  Applying it, and, when keyspace
notifications are on, applying any write, emits ``Publication`` s: apply-side events that the
state machine hands out (``KVStateMachine.take_publications``) and that the runtime delivers
to its own node's subscribers (``runtime.pubsub``).  Every replica applies the same commands
in the same order, so every replica emits the same publications with the same revisions: a
subscriber on any node gets each message once, in log order.  Nothing here looks at
replica-local state; which notifications are on (``notify-keyspace-events``) is itself
replicated (``NotifyConfig``, kept in the snapshot).

A publication's ``revision`` is the state machine's applied count after the command that
emitted it (a log position every replica agrees on); the publications of one command share it.

Keyspace notifications follow Redis's (``notify-keyspace-events``): a write to ``key`` named
``event`` in class ``c`` publishes ``event`` on ``__keyspace@<db>__:key`` (flag ``K``) and
``key`` on ``__keyevent@<db>__:event`` (flag ``E``), when class ``c`` is on; ``<db>`` is the
database the key is in (``SELECT``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pypaxos.kv.collection_ops import (
    SET_DIFF,
    SET_INTER,
    ZADD_INCR,
    Copy,
    HDel,
    HIncrBy,
    HIncrByFloat,
    HSet,
    LInsert,
    LMove,
    LPop,
    LPopFirst,
    LPush,
    LRem,
    LSet,
    LTrim,
    SAdd,
    SCombineStore,
    SMove,
    SPop,
    SRem,
    ZAdd,
    ZCombineStore,
    ZIncrBy,
    ZPop,
    ZPopFirst,
    ZRangeStore,
    ZRem,
    ZRemRangeByLex,
    ZRemRangeByRank,
    ZRemRangeByScore,
)
from pypaxos.kv.commands import (
    Append,
    Array,
    Cas,
    Command,
    Delete,
    Error,
    Expire,
    GetDel,
    Incr,
    IncrBy,
    IncrByFloat,
    Integer,
    Move,
    MSet,
    Ok,
    Persist,
    Rename,
    Result,
    Score,
    Set,
    SetRange,
    SetWith,
    Value,
)

# --- notify-keyspace-events ---------------------------------------------------------------------

KEYSPACE = 1 << 0  # K
KEYEVENT = 1 << 1  # E
GENERIC = 1 << 2  # g: del, expire, rename...
STRING = 1 << 3  # $
LIST = 1 << 4  # l
SET_CLASS = 1 << 5  # s
HASH = 1 << 6  # h
ZSET = 1 << 7  # z
EXPIRED = 1 << 8  # x
EVICTED = 1 << 9  # e (never emitted: this store does not evict)
STREAM = 1 << 10  # t (no streams here)
KEY_MISS = 1 << 11  # m (accepted, never emitted: a read changes nothing in the log)
MODULE = 1 << 12  # d (no modules)
NEW_KEY = 1 << 13  # n (accepted, never emitted)

_CLASSES_OF_A = GENERIC | STRING | LIST | SET_CLASS | HASH | ZSET | EXPIRED | EVICTED | STREAM
_CLASSES_OF_A |= MODULE
_LETTERS: dict[int, int] = {
    ord("K"): KEYSPACE,
    ord("E"): KEYEVENT,
    ord("g"): GENERIC,
    ord("$"): STRING,
    ord("l"): LIST,
    ord("s"): SET_CLASS,
    ord("h"): HASH,
    ord("z"): ZSET,
    ord("x"): EXPIRED,
    ord("e"): EVICTED,
    ord("t"): STREAM,
    ord("m"): KEY_MISS,
    ord("d"): MODULE,
    ord("n"): NEW_KEY,
    ord("A"): _CLASSES_OF_A,
}
NOTIFY_FLAGS_INVALID = (
    "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - "
    "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
)


def parse_notify_flags(flags: bytes) -> int | None:
    """``notify-keyspace-events``'s letters as a bit set (``None``: a letter Redis lacks)."""
    bits = 0
    for letter in flags:
        bit = _LETTERS.get(letter)
        if bit is None:
            return None
        bits |= bit
    return bits


def format_notify_flags(bits: int) -> bytes:
    """The canonical spelling ``CONFIG GET`` answers (Redis's order; ``A`` when it applies)."""
    out = b"A" if bits & _CLASSES_OF_A == _CLASSES_OF_A else b""
    if not out:
        for letter in b"g$lshzxetd":
            if bits & _LETTERS[letter]:
                out += bytes([letter])
    for letter in b"KEmn":
        if bits & _LETTERS[letter]:
            out += bytes([letter])
    return out


# --- publications -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publication:
    """One message for ``channel``'s subscribers, emitted at log position ``revision``."""

    revision: int
    channel: bytes
    message: bytes


KeyEvent = tuple[int, bytes, bytes]  # (class bit, event name, key)


def keyspace_publications(
    bits: int, revision: int, events: list[KeyEvent], db: int = 0
) -> list[Publication]:
    """The channels Redis notifies for ``events`` in database ``db`` under flags ``bits``, in
    order."""
    out: list[Publication] = []
    for class_bit, event, key in events:
        if not bits & class_bit:
            continue
        if bits & KEYSPACE:
            out.append(Publication(revision, b"__keyspace@%d__:" % db + key, event))
        if bits & KEYEVENT:
            out.append(Publication(revision, b"__keyevent@%d__:" % db + event, key))
    return out


def written_keys(op: Command) -> tuple[bytes, ...]:
    """The keys a write may remove (looked at before and after it, for ``del`` and
    ``expired``); empty for reads and commands without keys."""
    match op:
        case MSet(pairs):
            return tuple(key for key, _ in pairs)
        case Rename() | Copy():
            return (op.key, op.new)
        case Move():
            return (op.key,)
        case LMove() | SMove():
            return (op.source, op.destination)
        case LPopFirst() | ZPopFirst():
            return op.keys
        case SCombineStore() | ZCombineStore() | ZRangeStore():
            return (op.destination,)
    key = getattr(op, "key", None)
    return (key,) if isinstance(key, bytes) else ()


def _count(result: Result) -> int:
    return result.value if type(result) is Integer else 0


def _present(result: Result) -> bool:
    """A reply that is neither an error nor null."""
    if isinstance(result, Error):
        return False
    return not (type(result) is Value and result.value is None)


def _side(left: bool, what: bytes) -> bytes:
    return (b"l" if left else b"r") + what


_SET_STORES = {SET_INTER: b"sinterstore", SET_DIFF: b"sdiffstore"}
_ZSET_STORES = {SET_INTER: b"zinterstore", SET_DIFF: b"zdiffstore"}


def command_events(op: Command, result: Result, db: int = 0) -> list[KeyEvent]:
    """The keyspace events Redis names for ``op`` answered ``result`` in database ``db`` (none
    when it changed nothing or failed).  ``del`` of a key that a write emptied is added by the
    caller."""
    if isinstance(result, Error):
        return []
    match op:
        case Set(key) | Cas(key):
            return [(STRING, b"set", key)] if type(result) is Ok else []
        case SetWith(key):
            stored = type(result) is Ok or (op.get and op.condition == 0)
            if not stored:
                return []
            expiring = op.ttl_ms or op.at_ms
            return [(STRING, b"set", key)] + ([(GENERIC, b"expire", key)] if expiring else [])
        case MSet(pairs):
            if type(result) is Ok or _count(result) == 1:
                return [(STRING, b"set", key) for key, _ in pairs]
            return []
        case Delete(key):
            return [(GENERIC, b"del", key)] if _count(result) else []
        case GetDel(key):
            return [(GENERIC, b"del", key)] if _present(result) else []
        case Incr(key) | IncrBy(key):
            return [(STRING, b"incrby", key)]
        case IncrByFloat():
            return [(STRING, b"incrbyfloat", op.key)]
        case Append():
            return [(STRING, b"append", op.key)]
        case SetRange():
            return [(STRING, b"setrange", op.key)] if op.value else []
        case Expire():
            return [(GENERIC, b"expire", op.key)] if _count(result) else []
        case Persist(key):
            return [(GENERIC, b"persist", key)] if _count(result) else []
        case Rename():
            if type(result) is Ok or _count(result):
                return [(GENERIC, b"rename_from", op.key), (GENERIC, b"rename_to", op.new)]
            return []
        case Copy():  # into another database: kv.databases.target_events
            landed = _count(result) and op.db in (-1, db)
            return [(GENERIC, b"copy_to", op.new)] if landed else []
        case Move():  # move_to: kv.databases.target_events
            return [(GENERIC, b"move_from", op.key)] if _count(result) else []
        case HSet():
            return [(HASH, b"hset", op.key)] if not op.nx or _count(result) else []
        case HDel():
            return [(HASH, b"hdel", op.key)] if _count(result) else []
        case HIncrBy():
            return [(HASH, b"hincrby", op.key)]
        case HIncrByFloat():
            return [(HASH, b"hincrbyfloat", op.key)]
        case SAdd():
            return [(SET_CLASS, b"sadd", op.key)] if _count(result) else []
        case SRem():
            return [(SET_CLASS, b"srem", op.key)] if _count(result) else []
        case SPop():
            popped = _present(result) and not (type(result) is Array and not result.items)
            return [(SET_CLASS, b"spop", op.key)] if popped else []
        case SMove():
            if not _count(result):
                return []
            return [(SET_CLASS, b"srem", op.source), (SET_CLASS, b"sadd", op.destination)]
        case SCombineStore():
            name = _SET_STORES.get(op.how, b"sunionstore")
            return [(SET_CLASS, name, op.destination)] if _count(result) else []
        case LPush():
            return [(LIST, _side(op.left, b"push"), op.key)] if _count(result) else []
        case LPop():
            return [(LIST, _side(op.left, b"pop"), op.key)] if _present(result) else []
        case LPopFirst():
            if type(result) is Array and result.items:
                return [(LIST, _side(op.left, b"pop"), result.items[0])]
            return []
        case LSet():
            return [(LIST, b"lset", op.key)] if type(result) is Ok else []
        case LRem():
            return [(LIST, b"lrem", op.key)] if _count(result) else []
        case LTrim():
            return [(LIST, b"ltrim", op.key)] if type(result) is Ok else []
        case LInsert():
            return [(LIST, b"linsert", op.key)] if _count(result) > 0 else []
        case LMove():
            if not _present(result):
                return []
            return [
                (LIST, _side(op.from_left, b"pop"), op.source),
                (LIST, _side(op.to_left, b"push"), op.destination),
            ]
        case ZAdd():
            if op.flags & ZADD_INCR:
                changed = type(result) is Score and result.value is not None
                return [(ZSET, b"zincr", op.key)] if changed else []
            return [(ZSET, b"zadd", op.key)] if _count(result) or op.pairs else []
        case ZIncrBy():
            return [(ZSET, b"zincr", op.key)]
        case ZRem():
            return [(ZSET, b"zrem", op.key)] if _count(result) else []
        case ZPop():
            popped = _present(result) and not (type(result) is Array and not result.items)
            name = b"zpopmax" if op.highest else b"zpopmin"
            return [(ZSET, name, op.key)] if popped else []
        case ZPopFirst():
            if type(result) is Array and result.items:
                return [(ZSET, b"zpopmax" if op.highest else b"zpopmin", result.items[0])]
            return []
        case ZRemRangeByRank() | ZRemRangeByScore() | ZRemRangeByLex():
            names = {
                ZRemRangeByRank: b"zremrangebyrank",
                ZRemRangeByScore: b"zremrangebyscore",
                ZRemRangeByLex: b"zremrangebylex",
            }
            return [(ZSET, names[type(op)], op.key)] if _count(result) else []
        case ZCombineStore():
            name = _ZSET_STORES.get(op.how, b"zunionstore")
            return [(ZSET, name, op.destination)] if _count(result) else []
        case ZRangeStore():
            return [(ZSET, b"zrangestore", op.destination)] if _count(result) else []
    return []
