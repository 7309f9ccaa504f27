"""The typed values the store keeps: strings as plain ``bytes``, collections as small objects.

A string is the ``bytes`` itself (the hot ``SET``/``GET`` path stores and returns it without a
wrapper).  A collection is one of four slotted classes, each over plain containers chosen so
that every iteration order is the replicated history's, never a hash seed's (Python salts the
hash of ``bytes`` per process, so a ``set`` would iterate differently on each replica):

* ``HashValue``: a ``dict`` field -> value, in the order the fields were first set (as a small
  Redis hash, a listpack, keeps them);
* ``ListValue``: a ``deque`` (pushes and pops at both ends in O(1));
* ``SetValue``: a ``dict`` member -> ``None`` used as an insertion-ordered set;
* ``ZSetValue``: a ``dict`` member -> score, and the ``(score, member)`` pairs kept sorted in a
  list (``bisect``): ranks in O(log n), an insertion or removal moves the tail (``memmove``).

A command of the wrong family raises ``WrongType`` (``Keyspace.get``, ``Keyspace.collection``);
the state machine answers it with Redis's ``WRONGTYPE`` error and changes nothing.  An emptied
collection is removed from the keyspace, as in Redis (a key never holds an empty collection).

Snapshots carry collections as tagged structs (``snapshot_hook`` and ``restore_values``): a
string stays a msgpack binary, so a store of strings snapshots exactly as before.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from math import isnan
from typing import cast

import msgspec

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
"""Redis's error for a command on a key of another type (its code is not ``ERR``)."""


class WrongType(Exception):
    """The key holds a value of another type than the command works on."""


class HashValue:
    """A Redis hash: field -> value, in first-set order."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[bytes, bytes] | None = None) -> None:
        self.fields: dict[bytes, bytes] = {} if fields is None else fields

    def __len__(self) -> int:
        return len(self.fields)


class ListValue:
    """A Redis list of byte strings."""

    __slots__ = ("items",)

    def __init__(self, items: deque[bytes] | None = None) -> None:
        self.items: deque[bytes] = deque() if items is None else items

    def __len__(self) -> int:
        return len(self.items)


class SetValue:
    """A Redis set: members in the order they were added (a ``dict`` with ``None`` values)."""

    __slots__ = ("members",)

    def __init__(self, members: dict[bytes, None] | None = None) -> None:
        self.members: dict[bytes, None] = {} if members is None else members

    def __len__(self) -> int:
        return len(self.members)


class ZSetValue:
    """A Redis sorted set: ``scores`` member -> score and ``order``, the ``(score, member)``
    pairs sorted as Redis sorts them (by score, then by member bytes)."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, member: bytes, score: float) -> None:
        """Insert ``member`` or move it to ``score`` (-0 is kept as 0, as a small Redis sorted
        set, a listpack, keeps it)."""
        score += 0.0  # -0.0 + 0.0 is 0.0
        old = self.scores.get(member)
        if old is not None:
            if old == score:  # Redis keeps the old score then, even 0 for -0
                return
            del self.order[bisect_left(self.order, (old, member))]
        self.scores[member] = score
        insort(self.order, (score, member))

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        del self.order[bisect_left(self.order, (score, member))]
        return True


Collection = HashValue | ListValue | SetValue | ZSetValue
Stored = bytes | HashValue | ListValue | SetValue | ZSetValue
"""What the keyspace maps a key to."""

TYPE_NAMES: dict[type, bytes] = {
    bytes: b"string",
    HashValue: b"hash",
    ListValue: b"list",
    SetValue: b"set",
    ZSetValue: b"zset",
}
"""``TYPE``'s answer for each stored class."""


def type_name(value: Stored) -> bytes:
    return TYPE_NAMES[type(value)]


def copy_value(value: Stored) -> Stored:
    """An independent copy (``COPY``, ``SUNIONSTORE`` of one set...)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, HashValue):
        return HashValue(dict(value.fields))
    if isinstance(value, ListValue):
        return ListValue(deque(value.items))
    if isinstance(value, SetValue):
        return SetValue(dict(value.members))
    copied = ZSetValue()
    copied.scores = dict(value.scores)
    copied.order = list(value.order)
    return copied


# --- snapshot encoding of collections ---------------------------------------------------------


class HashSnapshot(msgspec.Struct, frozen=True, tag="h", array_like=True):
    fields: dict[bytes, bytes]


class ListSnapshot(msgspec.Struct, frozen=True, tag="l", array_like=True):
    items: list[bytes]


class SetSnapshot(msgspec.Struct, frozen=True, tag="s", array_like=True):
    members: list[bytes]


class ZSetSnapshot(msgspec.Struct, frozen=True, tag="z", array_like=True):
    entries: list[tuple[bytes, float]]  # in the set's order (by score, then member)


StoredSnapshot = bytes | HashSnapshot | ListSnapshot | SetSnapshot | ZSetSnapshot
"""How a stored value is written in a snapshot: a string as itself, a collection tagged."""


def snapshot_hook(value: object) -> object:
    """The msgpack encoder's ``enc_hook``: a collection to its tagged snapshot struct (strings
    never reach it: msgspec writes ``bytes`` itself)."""
    if isinstance(value, HashValue):
        return HashSnapshot(value.fields)
    if isinstance(value, ListValue):
        return ListSnapshot(list(value.items))
    if isinstance(value, SetValue):
        return SetSnapshot(list(value.members))
    if isinstance(value, ZSetValue):
        return ZSetSnapshot([(member, score) for score, member in value.order])
    raise NotImplementedError(f"cannot snapshot {type(value).__name__}")


def restore_values(data: dict[bytes, StoredSnapshot]) -> dict[bytes, Stored]:
    """The live values of a decoded snapshot's data, in place (strings are kept as decoded);
    raises ``ValueError`` for a collection no history could produce (empty, a duplicate
    member, a NaN score, a sorted set out of order)."""
    restored = cast("dict[bytes, Stored]", data)
    for key, value in data.items():
        if type(value) is not bytes:
            restored[key] = restore_collection(value)
    return restored


def restore_collection(value: StoredSnapshot) -> Collection:
    """The live value of a collection read from a snapshot; ``ValueError`` for one no history
    could produce (``restore_values``)."""
    collection: Collection
    if isinstance(value, HashSnapshot):
        collection = HashValue(dict(value.fields))
    elif isinstance(value, ListSnapshot):
        collection = ListValue(deque(value.items))
    elif isinstance(value, SetSnapshot):
        collection = SetValue(dict.fromkeys(value.members))
        if len(collection) != len(value.members):
            raise ValueError("malformed snapshot: a set with a duplicate member")
    elif isinstance(value, ZSetSnapshot):
        collection = ZSetValue()
        collection.scores = {member: score for member, score in value.entries}
        collection.order = [(score, member) for member, score in value.entries]
        if (
            len(collection.scores) != len(value.entries)
            or any(isnan(score) for score in collection.scores.values())
            or collection.order != sorted(collection.order)
        ):
            raise ValueError("malformed snapshot: a sorted set out of order")
    else:
        raise ValueError("malformed snapshot: not a value")
    if not len(collection):
        raise ValueError("malformed snapshot: an empty collection")
    return collection
