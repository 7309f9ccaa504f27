"""Ready-made replicated objects: ``Counter``, ``Dict``, ``List``, ``Set``, ``Queue``,
``PriorityQueue`` and ``LockManager``, each an ordinary class of ``@command`` s and reads.

They follow the rules of ``objects.api`` and show them: every command checks before it changes
anything (so one that raises changed nothing), iteration is in insertion order (``Set`` keeps
its members in a dict for that reason), and the one that needs time, ``LockManager``, reads the
log's clock (``log_time_ms``), never the replica's.

Keys of ``Dict`` and members of ``Set`` are strings or integers (msgspec decodes a union of
one string-like and one number type); values are anything msgspec encodes, and come back as
msgspec decodes them (tuples as lists).  Several batteries share one machine with
``objects.Group``.
"""

from __future__ import annotations

import heapq
from typing import Any

import msgspec

from pypaxos.objects.api import command, log_time_ms

Key = str | int


class Counter:
    """A replicated integer."""

    value: int

    def __init__(self, value: int = 0) -> None:
        self.value = value

    @command
    def add(self, amount: int = 1) -> int:
        """Add ``amount`` (may be negative); the new value."""
        self.value += amount
        return self.value

    @command
    def set(self, value: int) -> int:
        self.value = value
        return value

    def get(self) -> int:
        return self.value


class Dict:
    """A replicated map, iterated in insertion order."""

    items: dict[Key, Any]

    def __init__(self) -> None:
        self.items = {}

    @command
    def set(self, key: Key, value: Any) -> None:
        self.items[key] = value

    @command
    def set_default(self, key: Key, value: Any) -> Any:
        """The value at ``key``, after storing ``value`` there if it had none."""
        return self.items.setdefault(key, value)

    @command
    def update(self, other: dict[Key, Any]) -> None:
        self.items.update(other)

    @command
    def pop(self, key: Key, default: Any = None) -> Any:
        return self.items.pop(key, default)

    @command
    def clear(self) -> None:
        self.items.clear()

    def get(self, key: Key, default: Any = None) -> Any:
        return self.items.get(key, default)

    def keys(self) -> list[Key]:
        return list(self.items)

    def to_dict(self) -> dict[Key, Any]:
        return dict(self.items)

    def size(self) -> int:
        return len(self.items)


class List:
    """A replicated list."""

    items: list[Any]

    def __init__(self) -> None:
        self.items = []

    @command
    def append(self, value: Any) -> int:
        """Append ``value``; the new length."""
        self.items.append(value)
        return len(self.items)

    @command
    def extend(self, values: list[Any]) -> int:
        self.items.extend(values)
        return len(self.items)

    @command
    def insert(self, index: int, value: Any) -> None:
        self.items.insert(index, value)

    @command
    def set(self, index: int, value: Any) -> None:
        self.items[index] = value  # IndexError (nothing changed) when out of range

    @command
    def pop(self, index: int = -1) -> Any:
        return self.items.pop(index)

    @command
    def clear(self) -> None:
        self.items.clear()

    def get(self, index: int) -> Any:
        return self.items[index]

    def to_list(self) -> list[Any]:
        return list(self.items)

    def size(self) -> int:
        return len(self.items)


class Set:
    """A replicated set whose members iterate in the order they were first added.

    Kept in a dict, not a ``set``: a set of strings iterates in an order that changes with the
    process's hash seed, so two replicas would list the same members differently.
    """

    members: dict[Key, None]

    def __init__(self) -> None:
        self.members = {}

    @command
    def add(self, member: Key) -> bool:
        """Add ``member``; whether it was new."""
        if member in self.members:
            return False
        self.members[member] = None
        return True

    @command
    def discard(self, member: Key) -> bool:
        """Remove ``member``; whether it was there."""
        return self.members.pop(member, False) is None

    @command
    def pop(self) -> Key:
        """Remove and return the oldest member (``KeyError`` when empty)."""
        if not self.members:
            raise KeyError("pop from an empty set")
        member = next(iter(self.members))
        del self.members[member]
        return member

    @command
    def clear(self) -> None:
        self.members.clear()

    def contains(self, member: Key) -> bool:
        return member in self.members

    def to_list(self) -> list[Key]:
        return list(self.members)

    def size(self) -> int:
        return len(self.members)


class Queue:
    """A replicated FIFO queue, at most ``max_size`` items long (0: unbounded)."""

    items: list[Any]
    max_size: int

    def __init__(self, max_size: int = 0) -> None:
        self.items = []
        self.max_size = max_size

    @command
    def put(self, item: Any) -> bool:
        """Enqueue ``item``; ``False`` (nothing done) when the queue is full."""
        if self.max_size and len(self.items) >= self.max_size:
            return False
        self.items.append(item)
        return True

    @command
    def get(self, default: Any = None) -> Any:
        """Dequeue the oldest item, or ``default`` when the queue is empty."""
        return self.items.pop(0) if self.items else default

    def peek(self, default: Any = None) -> Any:
        return self.items[0] if self.items else default

    def size(self) -> int:
        return len(self.items)


class PriorityQueue:
    """A replicated priority queue: lowest priority first, first in first out among equals."""

    heap: list[tuple[int | float, int, Any]]
    counter: int
    max_size: int

    def __init__(self, max_size: int = 0) -> None:
        self.heap = []
        self.counter = 0  # ties break by insertion order, not by comparing the items
        self.max_size = max_size

    @command
    def put(self, item: Any, priority: int | float = 0) -> bool:
        if self.max_size and len(self.heap) >= self.max_size:
            return False
        self.counter += 1
        heapq.heappush(self.heap, (priority, self.counter, item))
        return True

    @command
    def get(self, default: Any = None) -> Any:
        return heapq.heappop(self.heap)[2] if self.heap else default

    def peek(self, default: Any = None) -> Any:
        return self.heap[0][2] if self.heap else default

    def size(self) -> int:
        return len(self.heap)


class Lock(msgspec.Struct, array_like=True):
    """One held lock: its holder, its fencing token, and when it lapses (log time, ms)."""

    owner: str
    token: int
    expires_ms: int


class LockManager:
    """Named locks with timeouts and fencing tokens, on the log's clock.

    ``acquire(name, owner, ttl_ms)`` returns a fencing token, larger than every token handed out
    before (Kleppmann, "How to do distributed locking", 2016): a resource that remembers the
    largest token it saw refuses a holder whose lock lapsed while it paused.  It returns 0 when
    another owner holds the lock.  The holder acquiring again extends its lease and keeps its
    token.  A lock lapses ``ttl_ms`` after its last acquisition, by the clock the calls carry
    (``log_time_ms``), so every replica agrees on when.  Expired locks are dropped when touched,
    and a few per command otherwise (``SWEEP_LOCKS``), so the table stays bounded by the live
    locks plus the recently expired.
    """

    SWEEP_LOCKS = 2

    locks: dict[str, Lock]
    last_token: int

    def __init__(self) -> None:
        self.locks = {}
        self.last_token = 0

    @command
    def acquire(self, name: str, owner: str, ttl_ms: int) -> int:
        if ttl_ms < 1:
            raise ValueError("ttl_ms must be at least 1")
        now_ms = log_time_ms()
        self._sweep(now_ms)
        held = self._live(name, now_ms)
        if held is not None and held.owner != owner:
            return 0
        if held is not None:
            held.expires_ms = now_ms + ttl_ms
            return held.token
        self.last_token += 1
        self.locks[name] = Lock(owner, self.last_token, now_ms + ttl_ms)
        return self.last_token

    @command
    def release(self, name: str, owner: str, token: int) -> bool:
        """Release the lock if ``owner`` holds it under ``token``; whether it did."""
        now_ms = log_time_ms()
        self._sweep(now_ms)
        held = self._live(name, now_ms)
        if held is None or held.owner != owner or held.token != token:
            return False
        del self.locks[name]
        return True

    def holder(self, name: str) -> str | None:
        held = self._live(name, log_time_ms())
        return None if held is None else held.owner

    def is_locked(self, name: str) -> bool:
        return self._live(name, log_time_ms()) is not None

    def _live(self, name: str, now_ms: int) -> Lock | None:
        held = self.locks.get(name)
        return held if held is not None and held.expires_ms > now_ms else None

    def _sweep(self, now_ms: int) -> None:
        """Visit the first few locks in table order: drop the lapsed, move the rest back."""
        for _ in range(min(self.SWEEP_LOCKS, len(self.locks))):
            name, held = next(iter(self.locks.items()))
            del self.locks[name]
            if held.expires_ms > now_ms:
                self.locks[name] = held
