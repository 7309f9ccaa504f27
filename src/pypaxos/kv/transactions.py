"""``WATCH`` made exact and replicated: the table of watched keys inside the state machine.

Redis's ``WATCH`` is optimistic locking: ``EXEC`` runs the queued commands only if no watched
key was modified since the ``WATCH``.  Redis keeps, per database, the clients watching each key
and marks them dirty whenever a command modifies the key (``signalModifiedKey``).  This module is
that design, run by the state machine on every replica at the same log positions:

* ``Watch(keys)`` goes through the log in the client's session: its keys are registered under
  the session's ``client_id``, each with whether it was live then.
* Every modification of a key goes through ``Keyspace.touch`` (``kv.keyspace``): a watched key
  touched marks all its watchers dirty, and their registrations are dropped at once (a dirty
  watcher fails whatever else happens, so the keys need not be kept).
* ``Exec(watching=True)`` runs only if the client's watcher exists and is clean, and no key it
  watched while live has expired since (Redis 7.0 refuses that case too).  Either way the
  client's watch ends there, as in Redis.

Exact, not approximate: a watcher is marked by the very modification, so no ABA (a key set
back to its old value still aborts), and nothing about unwatched keys is stored (no revision
per key).  Expiry: a key live at ``WATCH`` that expires before ``EXEC`` aborts it; removing a key
that had already expired at ``WATCH`` (lazily or by the sweep) does not, as in Redis 7.0.

Bounded: at most ``WATCH_KEYS_PER_CLIENT_MAX`` keys per client (beyond: ``Error``) and
``WATCH_KEYS_MAX`` in all; past the total, the watchers registered longest ago are evicted, and
an evicted watcher's ``EXEC`` is refused (``Aborted``: safe, the client retries its optimistic
transaction).  A watcher also goes when its session expires (``KVStateMachine``), so a client
that disconnects while watching leaves nothing behind for long.

Databases: a watch is on a key of one database (``SELECT``), as in Redis; ``FLUSHDB`` touches
that database's watched keys, ``FLUSHALL`` every database's, ``SWAPDB`` those of the two
databases present in either.

Deterministic: watchers are kept in registration order (the eviction order), their keys in the
order watched (per database, in database order); the snapshot stores exactly that, and the
per-key index is rebuilt from it.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING

import msgspec

from pypaxos.kv.commands import DATABASES, Error

if TYPE_CHECKING:
    from pypaxos.kv.keyspace import Keyspace

WATCH_KEYS_PER_CLIENT_MAX = 1024
WATCH_KEYS_MAX = 65_536
TOO_MANY_WATCHED = f"too many watched keys (at most {WATCH_KEYS_PER_CLIENT_MAX} per client)"


class Watcher(msgspec.Struct, array_like=True):
    """One client's watch: the keys (each with whether it was live when watched), or ``dirty``
    once one of them was modified (its keys are then dropped).  ``keys`` are database 0's;
    ``dbs`` the other databases' (snapshots before databases have none)."""

    client_id: int
    dirty: bool
    keys: dict[bytes, bool]
    dbs: dict[int, dict[bytes, bool]] = {}

    def watched(self) -> list[tuple[int, dict[bytes, bool]]]:
        """The watched keys of each database, database 0 first."""
        return [(0, self.keys), *sorted(self.dbs.items())]

    def keys_in(self, db: int) -> dict[bytes, bool]:
        """The keys watched in database ``db`` (made empty when first asked)."""
        if db == 0:
            return self.keys
        keys = self.dbs.get(db)
        if keys is None:
            keys = self.dbs[db] = {}
        return keys

    @property
    def key_count(self) -> int:
        return len(self.keys) + sum(map(len, self.dbs.values()))


WatchedKey = tuple[int, bytes]  # (database, key)


class WatchTable:
    """The watchers (client id -> ``Watcher``, oldest registration first) and, per watched
    ``(database, key)``, the clients watching it."""

    __slots__ = ("by_key", "keys_total", "watchers")

    def __init__(self) -> None:
        self.watchers: dict[int, Watcher] = {}
        self.by_key: dict[WatchedKey, dict[int, None]] = {}
        self.keys_total = 0

    def __bool__(self) -> bool:
        return bool(self.by_key)

    def touch(self, key: bytes, db: int = 0) -> None:
        """``key`` of database ``db`` was modified: every client watching it is dirty."""
        clients = self.by_key.pop((db, key), None)
        if clients is None:
            return
        for client_id in clients:
            watcher = self.watchers[client_id]
            watcher.dirty = True
            self._release(watcher, skip=(db, key))

    def touch_all(self, present: Container[bytes], db: int = 0) -> None:
        """A flush of database ``db``: every watched key of it that exists (``present``) was
        modified."""
        for watched in [w for w in self.by_key if w[0] == db and w[1] in present]:
            self.touch(watched[1], db)

    def touch_swapped(
        self, first: int, first_keys: Container[bytes], second: int, second_keys: Container[bytes]
    ) -> None:
        """``SWAPDB first second``: a key watched in either that exists in either changed."""
        for db, key in [w for w in self.by_key if w[0] in (first, second)]:
            if key in first_keys or key in second_keys:
                self.touch(key, db)

    def watch(
        self, client_id: int, keys: tuple[bytes, ...], reset: bool, ks: Keyspace
    ) -> Error | None:
        """Register ``keys`` (of ``ks``'s database) for ``client_id``; an ``Error`` (nothing
        changed) past the bound."""
        if reset:
            self.forget(client_id)
        watcher = self.watchers.pop(client_id, None)
        if watcher is None:
            watcher = Watcher(client_id, False, {})
        self.watchers[client_id] = watcher  # most recent registration last
        if watcher.dirty:
            return None  # already failed: nothing more to remember
        db = ks.db
        watched = watcher.keys_in(db)
        new = [key for key in dict.fromkeys(keys) if key not in watched]
        if watcher.key_count + len(new) > WATCH_KEYS_PER_CLIENT_MAX:
            if not watched:
                watcher.dbs.pop(db, None)
            return Error(TOO_MANY_WATCHED)
        for key in new:
            watched[key] = ks.lookup(key) is not None
            self.by_key.setdefault((db, key), {})[client_id] = None
        if not watched:
            watcher.dbs.pop(db, None)
        self.keys_total += len(new)
        while self.keys_total > WATCH_KEYS_MAX:
            self.forget(next(iter(self.watchers)))
        return None

    def check(self, client_id: int, watching: bool, ks: Keyspace) -> bool:
        """May the client's ``Exec`` run?  Its watch ends here either way."""
        watcher = self.watchers.get(client_id)
        if watcher is None:
            return not watching
        watched, dirty = watcher.watched(), watcher.dirty
        self.forget(client_id)
        if not watching:
            return True
        if dirty:
            return False
        for db, keys in watched:
            space = ks.database(db)
            if not all(not live or space.lookup(key) is not None for key, live in keys.items()):
                return False
        return True

    def forget(self, client_id: int) -> None:
        """Drop the client's watch (its ``Exec``, a new ``Watch`` after unwatching, its session
        expired, or eviction)."""
        watcher = self.watchers.pop(client_id, None)
        if watcher is not None:
            self._release(watcher, skip=None)

    def _release(self, watcher: Watcher, skip: WatchedKey | None) -> None:
        for db, keys in watcher.watched():
            for key in keys:
                if (db, key) == skip:
                    continue
                clients = self.by_key[(db, key)]
                del clients[watcher.client_id]
                if not clients:
                    del self.by_key[(db, key)]
        self.keys_total -= watcher.key_count
        watcher.keys = {}
        watcher.dbs = {}

    # --- snapshot -----------------------------------------------------------------------------

    def state(self) -> tuple[Watcher, ...]:
        return tuple(self.watchers.values())

    @classmethod
    def from_state(cls, watchers: tuple[Watcher, ...]) -> WatchTable:
        """Rebuild from ``state()``; ``ValueError`` if it breaks the table's rules."""
        table = cls()
        for watcher in watchers:
            if watcher.client_id in table.watchers:
                raise ValueError("malformed snapshot: a client watches twice")
            if watcher.dirty and watcher.keys:
                raise ValueError("malformed snapshot: a dirty watcher with keys")
            if watcher.dirty and watcher.dbs:
                raise ValueError("malformed snapshot: a dirty watcher with keys")
            if not all(0 < db < DATABASES and keys for db, keys in watcher.dbs.items()):
                raise ValueError("malformed snapshot: a watch in no database")
            if watcher.key_count > WATCH_KEYS_PER_CLIENT_MAX:
                raise ValueError("malformed snapshot: too many watched keys")
            table.watchers[watcher.client_id] = watcher
            for db, keys in watcher.watched():
                for key in keys:
                    table.by_key.setdefault((db, key), {})[watcher.client_id] = None
            table.keys_total += watcher.key_count
        if table.keys_total > WATCH_KEYS_MAX:
            raise ValueError("malformed snapshot: too many watched keys")
        return table
