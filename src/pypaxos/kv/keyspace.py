"""Redis's string, keyspace and expiry commands over the store's data, deterministically.

The semantics (replies, errors, edge cases) are those of Redis 7.0.15, the version the server
names in ``INFO``; a differential test (``tests/runtime/test_runtime_redis_diff.py``) runs the
same random commands against a real ``redis-server`` and compares the replies.

Determinism is the state machine's contract (``kv.state_machine``): every function here depends
only on the data, the command and the machine's clock (``Keyspace.now_ms``: the latest request
time in the log), never on hash seeds, a replica's own clock or randomness.

* ``Scan`` orders the keys by a fixed 63-bit hash (BLAKE2b of the key, not Python's salted
  ``hash``) and its cursor is the hash to continue from.  As in Redis, a key present for the
  whole iteration is returned (at least once: keys sharing a hash are never split across
  pages); keys added or removed meanwhile may or may not be.  Each call sorts the whole
  keyspace: O(n log n), fine for the stores this serves.
* ``RandomKey`` is not random: the first key in the store's order (``kv.store``: by a fixed
  hash of the key, then first-write order), which every replica shares and the snapshot keeps.
* ``IncrByFloat`` follows Redis's arithmetic: both numbers parsed to the nearest x87 long
  double (64-bit significand), added and rounded to it, printed as ``%.17Lf`` with the trailing
  zeros trimmed, all with exact ``Fraction`` arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from hashlib import blake2b
from typing import TYPE_CHECKING, TypeVar

from pypaxos.kv.collection_ops import Copy, KeyType
from pypaxos.kv.commands import (
    EXPIRE_GT,
    EXPIRE_LT,
    EXPIRE_NX,
    EXPIRE_XX,
    INT64_MAX,
    INT64_MIN,
    NAN_OR_INFINITY,
    NO_SUCH_KEY,
    NOT_A_FLOAT,
    NOT_AN_INTEGER,
    OFFSET_OUT_OF_RANGE,
    OVERFLOW,
    SET_NX,
    SET_XX,
    TOO_LARGE,
    VALUE_BYTES_MAX,
    Append,
    Array,
    DbSize,
    Error,
    Expire,
    GetDel,
    IncrByFloat,
    Integer,
    Keys,
    MSet,
    Ok,
    Page,
    Persist,
    RandomKey,
    Rename,
    Result,
    Scan,
    SetRange,
    SetWith,
    Ttl,
    Value,
    parse_int64,
)
from pypaxos.kv.glob import glob_matcher
from pypaxos.kv.store import KeyStore
from pypaxos.kv.values import (
    Collection,
    HashValue,
    ListValue,
    SetValue,
    Stored,
    WrongType,
    ZSetValue,
    copy_value,
    type_name,
)

if TYPE_CHECKING:
    from pypaxos.kv.transactions import WatchTable

_OK = Ok()


C = TypeVar("C", HashValue, ListValue, SetValue, ZSetValue)


class Keyspace:
    """The data and the keys' deadlines, as one command sees them at ``now_ms``.

    A key whose deadline is at or before ``now_ms`` reads as absent; with ``reclaim`` (the
    apply path) it is also removed then, so memory is reclaimed lazily on access (and by
    deletions, ``KVStateMachine``'s sweep, ``FlushAll``).  The read path (``query``) passes
    ``reclaim=False``: it changes nothing.

    ``get`` is the string commands' view (a collection raises ``WrongType``); ``lookup`` sees
    any type; ``collection``/``create`` are the collection commands' (``kv.values``).
    """

    __slots__ = ("data", "databases", "db", "dirty", "expires", "now_ms", "reclaim", "watches")

    def __init__(
        self,
        data: KeyStore[Stored],
        expires: dict[bytes, int],
        now_ms: int,
        reclaim: bool,
        watches: WatchTable | None = None,
        db: int = 0,
        databases: Callable[[int], Keyspace] | None = None,
        dirty: set[bytes] | None = None,
    ) -> None:
        self.data = data
        self.expires = expires
        self.now_ms = now_ms
        self.reclaim = reclaim
        self.watches = watches  # WATCH's table (kv.transactions): told of every modification
        self.db = db  # which database (SELECT's number) these tables are
        self.databases = databases  # another database's view, for MOVE, COPY ... DB, EXEC
        # The state digest's dirty keys (kv.digest): every key written or reclaimed lands here.
        self.dirty = dirty

    def database(self, db: int) -> Keyspace:
        """Database ``db`` as this command sees it (this one, or the state machine's other)."""
        if db == self.db:
            return self
        assert self.databases is not None, "a command across databases needs their views"
        return self.databases(db)

    def touch(self, key: bytes) -> None:
        """``key`` is being modified (its value or its deadline): Redis's ``signalModifiedKey``.

        Every write goes through here (``put``, ``update``, ``delete`` call it; a command that
        changes a deadline or a value in place calls it itself), so that ``WATCH`` sees it.
        Reclaiming an expired key is not a modification (``kv.transactions``)."""
        watches = self.watches
        if watches:
            watches.touch(key, self.db)
        dirty = self.dirty
        if dirty is not None:
            dirty.add(key)

    def expired(self, key: bytes) -> bool:
        deadline = self.expires.get(key)
        return deadline is not None and deadline <= self.now_ms

    def lookup(self, key: bytes) -> Stored | None:
        """The live value of any type, or ``None``."""
        value = self.data.get(key)
        if value is not None and self.expires and self.expired(key):
            if self.reclaim:
                del self.data[key]
                del self.expires[key]
                if self.dirty is not None:
                    self.dirty.add(key)
            return None
        return value

    def get(self, key: bytes) -> bytes | None:
        """The string at ``key`` (``None``: absent); ``WrongType`` if it holds a collection."""
        value = self.lookup(key)
        if value is None or type(value) is bytes:
            return value
        raise WrongType(key)

    def collection(self, key: bytes, kind: type[C]) -> C | None:
        """The collection of class ``kind`` at ``key`` (``None``: absent); ``WrongType`` if
        the key holds anything else."""
        value = self.lookup(key)
        if value is None:
            return None
        if isinstance(value, kind):
            return value
        raise WrongType(key)

    def create(self, key: bytes, kind: type[C]) -> C:
        """The collection at ``key``, a new empty one if absent (the caller fills it before
        the command ends: a key never holds an empty collection)."""
        value = self.collection(key, kind)
        if value is None:
            value = kind()
            self.data[key] = value
        return value

    def drop_if_empty(self, key: bytes, value: Collection) -> None:
        """Remove ``key`` once its collection is empty, as Redis does."""
        if not len(value):
            del self.data[key]
            if self.expires:
                self.expires.pop(key, None)
            if self.dirty is not None:
                self.dirty.add(key)

    def put(self, key: bytes, value: Stored, keep_ttl: bool = False) -> None:
        """Store ``value``; a new value has no deadline unless ``keep_ttl`` (``SET KEEPTTL``)."""
        self.touch(key)
        if self.expires and not keep_ttl:
            self.expires.pop(key, None)
        self.data[key] = value

    def update(self, key: bytes, value: bytes) -> None:
        """Change the value and keep the deadline (``APPEND``, ``INCR``...; as in Redis)."""
        self.touch(key)
        self.data[key] = value

    def delete(self, key: bytes) -> Stored | None:
        value = self.lookup(key)
        if value is not None:
            self.touch(key)
            del self.data[key]
            if self.expires:
                self.expires.pop(key, None)
        return value

    def live_keys(self) -> list[bytes]:
        """The live keys, in the store's order."""
        if not self.expires:
            return list(self.data)
        return [key for key in list(self.data) if self.lookup(key) is not None]


def set_with(ks: Keyspace, op: SetWith) -> Result:
    current = ks.get(op.key) if op.get else ks.lookup(op.key)  # GET: strings only
    if (op.condition == SET_NX and current is not None) or (
        op.condition == SET_XX and current is None
    ):
        return Value(_string(current)) if op.get else Value(None)
    old = _string(current) if op.get else None
    ks.put(op.key, op.value, keep_ttl=op.keep_ttl)
    if op.ttl_ms:
        ks.expires[op.key] = ks.now_ms + op.ttl_ms
    elif op.at_ms:
        ks.expires[op.key] = op.at_ms
    ks.lookup(op.key)  # a deadline already past: gone at once, as in Redis
    return Value(old) if op.get else _OK


def _string(value: Stored | None) -> bytes | None:
    """``value`` known to be a string or absent (what ``Keyspace.get`` gave)."""
    assert value is None or type(value) is bytes
    return value


def get_del(ks: Keyspace, op: GetDel) -> Result:
    value = ks.get(op.key)
    if value is not None:
        ks.delete(op.key)
    return Value(value)


def mset(ks: Keyspace, op: MSet) -> Result:
    if op.nx and any(ks.lookup(key) is not None for key, _ in op.pairs):
        return Integer(0)
    for key, value in op.pairs:
        ks.put(key, value)
    return Integer(1) if op.nx else _OK


def append(ks: Keyspace, op: Append) -> Result:
    new = (ks.get(op.key) or b"") + op.value
    if len(new) > VALUE_BYTES_MAX:
        return Error(TOO_LARGE)
    ks.update(op.key, new)
    return Integer(len(new))


def set_range(ks: Keyspace, op: SetRange) -> Result:
    if op.offset < 0:
        return Error(OFFSET_OUT_OF_RANGE)
    old = ks.get(op.key)
    if not op.value:  # Redis: nothing to write, nothing created
        return Integer(0 if old is None else len(old))
    if op.offset + len(op.value) > VALUE_BYTES_MAX:
        return Error(TOO_LARGE)
    padded = (old or b"").ljust(op.offset, b"\0")
    new = padded[: op.offset] + op.value + padded[op.offset + len(op.value) :]
    ks.update(op.key, new)
    return Integer(len(new))


def incr_by(ks: Keyspace, key: bytes, amount: int) -> Result:
    current = ks.get(key)
    number = 0 if current is None else parse_int64(current)
    if number is None:
        return Error(NOT_AN_INTEGER)
    total = number + amount
    if not INT64_MIN <= total <= INT64_MAX:
        return Error(OVERFLOW)
    ks.update(key, b"%d" % total)
    return Integer(total)


def rename(ks: Keyspace, op: Rename) -> Result:
    value = ks.lookup(op.key)
    if value is None:
        return Error(NO_SUCH_KEY)
    if op.nx and ks.lookup(op.new) is not None:
        return Integer(0)
    if op.key != op.new:
        deadline = ks.expires.get(op.key)
        ks.delete(op.key)
        ks.put(op.new, value)
        if deadline is not None:
            ks.expires[op.new] = deadline
    return Integer(1) if op.nx else _OK


def expire(ks: Keyspace, op: Expire) -> Result:
    """``EXPIRE``/``PEXPIRE``/``EXPIREAT``/``PEXPIREAT``: 1 if the key exists (a deadline
    already past deletes it, as in Redis), 0 if not."""
    if ks.lookup(op.key) is None:
        return Integer(0)
    deadline = op.ms if op.absolute else ks.now_ms + op.ms
    current = ks.expires.get(op.key)
    refused = (
        (op.conditions & EXPIRE_NX and current is not None)
        or (op.conditions & EXPIRE_XX and current is None)
        or (op.conditions & EXPIRE_GT and (current is None or deadline <= current))
        or (op.conditions & EXPIRE_LT and current is not None and deadline >= current)
    )
    if refused:
        return Integer(0)
    ks.touch(op.key)
    ks.expires[op.key] = deadline
    ks.lookup(op.key)
    return Integer(1)


def persist(ks: Keyspace, op: Persist) -> Result:
    if ks.lookup(op.key) is None or op.key not in ks.expires:
        return Integer(0)
    ks.touch(op.key)
    del ks.expires[op.key]
    return Integer(1)


def ttl(ks: Keyspace, op: Ttl) -> Result:
    """Milliseconds left: -2 if the key is absent, -1 if it has no deadline."""
    if ks.lookup(op.key) is None:
        return Integer(-2)
    deadline = ks.expires.get(op.key)
    return Integer(-1 if deadline is None else deadline - ks.now_ms)


def key_command(ks: Keyspace, op: KeyType | Copy) -> Result:
    """``TYPE``/``EXISTS`` (``KeyType``) and ``COPY``, for a key of any type."""
    if isinstance(op, KeyType):
        value = ks.lookup(op.key)
        return Value(None if value is None else type_name(value))
    value = ks.lookup(op.key)
    if value is None or (not op.replace and ks.lookup(op.new) is not None):
        return Integer(0)
    deadline = ks.expires.get(op.key)
    ks.put(op.new, copy_value(value))
    if deadline is not None:
        ks.expires[op.new] = deadline
    return Integer(1)


def read(ks: Keyspace, op: DbSize | Keys | Scan | RandomKey | Ttl) -> Result:
    """The read-only keyspace commands (``Get`` is the state machine's own)."""
    if isinstance(op, Ttl):
        return ttl(ks, op)
    if isinstance(op, DbSize):
        return Integer(len(ks.live_keys()) if ks.expires else len(ks.data))
    if isinstance(op, Keys):
        match = glob_matcher(op.pattern)
        return Array(tuple(sorted(key for key in ks.live_keys() if match(key))))
    if isinstance(op, Scan):
        page = scan(ks.live_keys(), op.cursor, op.pattern, op.count)
        if op.type_name is None:
            return page
        wanted = op.type_name.lower()
        kept = tuple(key for key in page.keys if type_name(ks.data[key]) == wanted)
        return Page(page.cursor, kept)
    if ks.expires:
        return Value(next(iter(ks.live_keys()), None))
    return Value(next(iter(ks.data), None))


# --- SCAN -------------------------------------------------------------------------------------


def scan_hash(key: bytes) -> int:
    """A key's place in the scan order: in [1, 2**63], never 0 (the cursor that means done)."""
    return (int.from_bytes(blake2b(key, digest_size=8).digest(), "big") >> 1) + 1


def scan(keys_now: list[bytes], cursor: int, pattern: bytes | None, count: int) -> Page:
    """One page of ``keys_now`` (keys, a hash's fields or a set's members) from ``cursor``."""
    ordered = sorted((scan_hash(key), key) for key in keys_now)
    start = _bisect_hash(ordered, cursor)
    match = None if pattern is None else glob_matcher(pattern)
    keys: list[bytes] = []
    position = start
    while position < len(ordered):
        if position - start >= max(count, 1) and ordered[position][0] != ordered[position - 1][0]:
            return Page(ordered[position][0], tuple(keys))
        key = ordered[position][1]
        if match is None or match(key):
            keys.append(key)
        position += 1
    return Page(0, tuple(keys))


SMALL_COLLECTION_MAX = 128
"""A collection this small is scanned in one page, in its own order, whatever the cursor and
count: what Redis does for its compact encodings (listpack, intset), so small collections
answer ``HSCAN``/``SSCAN``/``ZSCAN`` exactly as Redis does."""


def scan_collection(members: list[bytes], cursor: int, pattern: bytes | None, count: int) -> Page:
    """``scan`` over a collection's fields or members (``members`` in the collection's order)."""
    if len(members) > SMALL_COLLECTION_MAX:
        return scan(members, cursor, pattern, count)
    if pattern is None:
        return Page(0, tuple(members))
    match = glob_matcher(pattern)
    return Page(0, tuple(member for member in members if match(member)))


def _bisect_hash(ordered: list[tuple[int, bytes]], cursor: int) -> int:
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if ordered[middle][0] < cursor:
            low = middle + 1
        else:
            high = middle
    return low


# --- glob patterns (Redis's stringmatchlen) ----------------------------------------------------


# --- INCRBYFLOAT ------------------------------------------------------------------------------

_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_SIGNIFICAND_BITS = 64  # the x87 long double Redis computes in on x86-64
_LONG_DOUBLE_CHARS_MAX = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS
_INF = Fraction(10) ** 5000  # beyond any long double: stands for infinity


def incr_by_float(ks: Keyspace, op: IncrByFloat) -> Result:
    current = ks.get(op.key)
    value = Fraction(0) if current is None else parse_long_double(current)
    amount = parse_long_double(op.amount)
    if value is None or amount is None:
        return Error(NOT_A_FLOAT)
    if abs(value) >= _INF or abs(amount) >= _INF:
        return Error(NAN_OR_INFINITY)
    spelled = format_long_double(to_long_double(value + amount))
    ks.update(op.key, spelled)
    return Value(spelled)


def parse_long_double(text: bytes) -> Fraction | None:
    """What ``strtold`` makes of ``text`` (decimal or infinity; ``None``: not a float)."""
    if not text or len(text) >= _LONG_DOUBLE_CHARS_MAX:
        return None
    if _INFINITY.fullmatch(text):
        return -_INF if text.startswith(b"-") else _INF
    if _DECIMAL.fullmatch(text) is None:
        return None
    try:
        exact = Fraction(Decimal(text.decode()))
    except (InvalidOperation, ValueError):
        return None
    rounded = to_long_double(exact)
    if abs(rounded) >= Fraction(2) ** 16384:  # ERANGE: out of the long double's range
        return None
    return rounded


def to_long_double(value: Fraction) -> Fraction:
    """``value`` rounded to the nearest 64-bit significand, ties to even (normal numbers)."""
    if value == 0:
        return value
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    scale = Fraction(2) ** (_SIGNIFICAND_BITS - 1 - exponent)
    rounded = Fraction(round(magnitude * scale)) / scale
    return rounded if value > 0 else -rounded


def format_long_double(value: Fraction) -> bytes:
    """``%.17Lf`` with trailing zeros (and a bare point) trimmed, ``-0`` as ``0``."""
    scaled = round(abs(value) * 10**17)
    whole, fraction = divmod(scaled, 10**17)
    text = b"%d.%017d" % (whole, fraction)
    text = text.rstrip(b"0").rstrip(b".")
    if value < 0 and text != b"0":
        return b"-" + text
    return text
