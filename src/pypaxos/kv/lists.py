"""Redis's list commands over a ``ListValue`` (Redis 7.0.15's replies and errors).

The list is a ``deque``: pushes and pops at either end are O(1), an index is O(distance from
the nearer end), as in Redis's quicklist.  Index arithmetic (negative from the end, clamping)
is Redis's ``LRANGE``/``LTRIM`` arithmetic, in ``_clamp``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice

from pypaxos.kv.collection_ops import (
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
)
from pypaxos.kv.commands import (
    NO_SUCH_KEY,
    NOT_AN_INTEGER,
    Array,
    Error,
    Integer,
    Integers,
    Ok,
    Result,
    Value,
)
from pypaxos.kv.keyspace import Keyspace
from pypaxos.kv.values import ListValue

INDEX_OUT_OF_RANGE = "index out of range"
_OK = Ok()

ListOp = (
    LPush | LPop | LPopFirst | LLen | LRange | LIndex | LSet | LRem | LTrim | LInsert | LMove | LPos
)


def execute(ks: Keyspace, op: ListOp) -> Result:
    """Run one list command; ``WrongType`` if a key it touches holds something else."""
    if isinstance(op, LPush):
        return push(ks, op)
    if isinstance(op, LPop):
        return pop(ks, op)
    if isinstance(op, LMove):
        return move(ks, op)
    if isinstance(op, LPopFirst):
        return pop_first(ks, op)
    found = ks.collection(op.key, ListValue)
    if isinstance(op, LSet):
        return lset(ks, op, found)
    if isinstance(op, LRem):
        return lrem(ks, op, found)
    if isinstance(op, LTrim):
        return ltrim(ks, op, found)
    if isinstance(op, LInsert):
        return linsert(ks, op, found)
    items: deque[bytes] = deque() if found is None else found.items
    if isinstance(op, LLen):
        return Integer(len(items))
    if isinstance(op, LRange):
        bounds = _clamp(op.start, op.stop, len(items))
        if bounds is None:
            return Array(())
        return Array(tuple(islice(items, bounds[0], bounds[1] + 1)))
    if isinstance(op, LIndex):
        if op.index is None:
            return Value(None) if found is None else Error(NOT_AN_INTEGER)
        index = op.index + len(items) if op.index < 0 else op.index
        return Value(items[index] if 0 <= index < len(items) else None)
    return lpos(items, op)


def _clamp(start: int, stop: int, length: int) -> tuple[int, int] | None:
    """``start``..``stop`` inclusive as non-negative indexes within ``length``, or ``None``
    for an empty range."""
    if start < 0:
        start = max(start + length, 0)
    if stop < 0:
        stop += length
    if start > stop or start >= length:
        return None
    return start, min(stop, length - 1)


def push(ks: Keyspace, op: LPush) -> Result:
    if op.only_existing:
        found = ks.collection(op.key, ListValue)
        if found is None:
            return Integer(0)
        items = found.items
    else:
        items = ks.create(op.key, ListValue).items
    if op.left:
        items.extendleft(op.values)
    else:
        items.extend(op.values)
    ks.touch(op.key)
    return Integer(len(items))


def pop(ks: Keyspace, op: LPop) -> Result:
    found = ks.collection(op.key, ListValue)
    if found is None:
        return Value(None)
    items = found.items
    take = items.popleft if op.left else items.pop
    if op.count is None:
        value = take()
        ks.drop_if_empty(op.key, found)
        ks.touch(op.key)
        return Value(value)
    popped = tuple(take() for _ in range(min(op.count, len(items))))
    if popped:
        ks.drop_if_empty(op.key, found)
        ks.touch(op.key)
    return Array(popped)


def pop_first(ks: Keyspace, op: LPopFirst) -> Result:
    """As Redis serves ``BLPOP``: the keys in order, a non-list before the first list is
    ``WrongType``."""
    for key in op.keys:
        found = ks.collection(key, ListValue)
        if found is not None:
            take = found.items.popleft if op.left else found.items.pop
            popped = tuple(take() for _ in range(min(op.count, len(found.items))))
            ks.drop_if_empty(key, found)
            ks.touch(key)
            return Array((key, *popped))
    return Value(None)


def move(ks: Keyspace, op: LMove) -> Result:
    source = ks.collection(op.source, ListValue)
    if source is None:
        return Value(None)
    ks.collection(op.destination, ListValue)  # WRONGTYPE before anything moves
    value = source.items.popleft() if op.from_left else source.items.pop()
    destination = ks.create(op.destination, ListValue).items
    if op.to_left:
        destination.appendleft(value)
    else:
        destination.append(value)
    ks.drop_if_empty(op.source, source)
    ks.touch(op.source)
    ks.touch(op.destination)
    return Value(value)


def lset(ks: Keyspace, op: LSet, found: ListValue | None) -> Result:
    if found is None:
        return Error(NO_SUCH_KEY)
    if op.index is None:
        return Error(NOT_AN_INTEGER)
    index = op.index + len(found.items) if op.index < 0 else op.index
    if not 0 <= index < len(found.items):
        return Error(INDEX_OUT_OF_RANGE)
    found.items[index] = op.value
    ks.touch(op.key)
    return _OK


def lrem(ks: Keyspace, op: LRem, found: ListValue | None) -> Result:
    if found is None:
        return Integer(0)
    items = found.items
    limit = abs(op.count) or len(items)
    ordered = list(reversed(items)) if op.count < 0 else list(items)
    kept: list[bytes] = []
    removed = 0
    for item in ordered:
        if removed < limit and item == op.value:
            removed += 1
        else:
            kept.append(item)
    if removed:
        found.items = deque(reversed(kept)) if op.count < 0 else deque(kept)
        ks.drop_if_empty(op.key, found)
        ks.touch(op.key)
    return Integer(removed)


def ltrim(ks: Keyspace, op: LTrim, found: ListValue | None) -> Result:
    if found is None:
        return _OK
    bounds = _clamp(op.start, op.stop, len(found.items))
    if bounds is None:
        found.items.clear()
    else:
        found.items = deque(islice(found.items, bounds[0], bounds[1] + 1))
    ks.drop_if_empty(op.key, found)
    ks.touch(op.key)
    return _OK


def linsert(ks: Keyspace, op: LInsert, found: ListValue | None) -> Result:
    if found is None:
        return Integer(0)
    try:
        index = found.items.index(op.pivot)
    except ValueError:
        return Integer(-1)
    found.items.insert(index if op.before else index + 1, op.value)
    ks.touch(op.key)
    return Integer(len(found.items))


def lpos(items: deque[bytes], op: LPos) -> Result:
    length = len(items)
    limit = op.maxlen or length
    walk: Iterable[tuple[int, bytes]]
    if op.rank > 0:
        walk = enumerate(islice(items, limit))
    else:
        walk = zip(range(length - 1, -1, -1), islice(reversed(items), limit), strict=False)
    skip = abs(op.rank) - 1
    wanted = 1 if op.count is None else op.count
    matches: list[int] = []
    for position, item in walk:
        if item == op.value:
            if skip:
                skip -= 1
                continue
            matches.append(position)
            if wanted and len(matches) >= wanted:
                break
    if op.count is None:
        return Integer(matches[0]) if matches else Value(None)
    return Integers(tuple(matches))
