"""The key-value store's table: a mapping of bytes keys split over a fixed number of dicts.

A Python ``dict`` grows by rebuilding its whole table in one step when it passes two thirds
full, so one insertion into a store of millions of keys moves every entry and holds the
event loop for as long (no commit, no heartbeat meanwhile).  ``KeyStore`` spreads its keys
over ``SHARDS`` dicts, so a growth step rebuilds one shard: it moves about ``1 / SHARDS`` of
the keys, and a read or a write costs one more index than a plain ``dict``.

Determinism (``kv.state_machine``): the shard of a key is ``zlib.crc32`` of its bytes, never
Python's salted ``hash``, and iteration walks the shards in index order, each in its own
first-write order.  So the order (what ``RANDOMKEY`` answers first, the order of a snapshot's
entries) depends only on the history of writes, the same on every replica and under any
``PYTHONHASHSEED``; a store loaded from a snapshot written in that order has that order again.
CRC-32 spreads ordinary keys evenly but is not keyed: keys chosen to share a shard make that
shard grow like a plain ``dict`` (no worse than one).
"""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from itertools import chain, repeat
from operator import and_
from typing import TypeVar, overload
from zlib import crc32

SHARDS = 1024
"""How many dicts a store spreads its keys over (a power of two: the shard is a mask)."""

SHARD_MASK = SHARDS - 1

V = TypeVar("V")
D = TypeVar("D")

_MISSING = object()


def shard_of(key: bytes) -> int:
    """The index of the shard that holds ``key`` (the same in every process)."""
    return crc32(key) & SHARD_MASK


class KeyStore(MutableMapping[bytes, V]):
    """A ``dict`` of bytes keys in ``SHARDS`` parts; iterates in its deterministic order.

    ``shards`` is public for the hot paths, which address a key's dict themselves:
    ``store.shards[crc32(key) & SHARD_MASK]``."""

    __slots__ = ("shards",)

    def __init__(self, items: Mapping[bytes, V] | Iterable[tuple[bytes, V]] = ()) -> None:
        self.shards: list[dict[bytes, V]] = [{} for _ in range(SHARDS)]
        if items:
            self.add_all(items)

    def __getitem__(self, key: bytes) -> V:
        return self.shards[crc32(key) & SHARD_MASK][key]

    def get_many(self, keys: list[bytes]) -> list[V | None]:
        """``get`` of each key, in order, without Python code per key (a pipeline's reads)."""
        shard_at = map(and_, map(crc32, keys), repeat(SHARD_MASK))
        return list(map(dict.get, map(self.shards.__getitem__, shard_at), keys))

    def __setitem__(self, key: bytes, value: V) -> None:
        self.shards[crc32(key) & SHARD_MASK][key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.shards[crc32(key) & SHARD_MASK][key]

    def __contains__(self, key: object) -> bool:
        if type(key) is not bytes:
            return False
        return key in self.shards[crc32(key) & SHARD_MASK]

    def __iter__(self) -> Iterator[bytes]:
        return chain.from_iterable(self.shards)

    def __len__(self) -> int:
        return sum(map(len, self.shards))

    def __bool__(self) -> bool:
        return any(self.shards)

    def __repr__(self) -> str:
        return f"KeyStore({dict(self.items())!r})"

    @overload
    def get(self, key: bytes, /) -> V | None: ...

    @overload
    def get(self, key: bytes, default: V | D, /) -> V | D: ...

    def get(self, key: bytes, default: object = None, /) -> object:
        return self.shards[crc32(key) & SHARD_MASK].get(key, default)

    @overload
    def pop(self, key: bytes, /) -> V: ...

    @overload
    def pop(self, key: bytes, default: V, /) -> V: ...

    @overload
    def pop(self, key: bytes, default: D, /) -> V | D: ...

    def pop(self, key: bytes, default: object = _MISSING, /) -> object:
        shard = self.shards[crc32(key) & SHARD_MASK]
        if default is _MISSING:
            return shard.pop(key)
        return shard.pop(key, default)

    def clear(self) -> None:
        for shard in self.shards:
            shard.clear()

    def add_all(self, items: Mapping[bytes, V] | Iterable[tuple[bytes, V]]) -> None:
        """Add ``items`` (a mapping or pairs) in their order: ``update`` without its
        per-item method calls."""
        shards = self.shards
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            shards[crc32(key) & SHARD_MASK][key] = value

    def keys(self) -> KeysView[bytes]:
        return _Keys(self)

    def items(self) -> ItemsView[bytes, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)


class _Keys(KeysView[bytes]):
    __slots__ = ()
    _mapping: KeyStore[object]

    def __iter__(self) -> Iterator[bytes]:
        return chain.from_iterable(self._mapping.shards)


class _Items(ItemsView[bytes, V]):
    __slots__ = ()
    _mapping: KeyStore[V]

    def __iter__(self) -> Iterator[tuple[bytes, V]]:
        return chain.from_iterable(shard.items() for shard in self._mapping.shards)


class _Values(ValuesView[V]):
    __slots__ = ()
    _mapping: KeyStore[V]

    def __iter__(self) -> Iterator[V]:
        return chain.from_iterable(shard.values() for shard in self._mapping.shards)
