"""Redis's numbered databases (``SELECT``): one keyspace per database, made when first written.

A Redis server has ``databases`` (16) independent keyspaces; a connection works in the one it
selected (0 until ``SELECT``).  Here each database is its own pair of tables (values, deadlines),
never key prefixes, so ``FLUSHDB`` and ``SWAPDB`` cost what they cost in Redis (a clear, a swap
of two references) and ``SCAN``/``KEYS``/``DBSIZE`` see one database only.

The database travels in the replicated command (``kv.InDb`` wraps a command run in database
``n``; a script's or a transaction's ``kv.Select`` switches for the rest of it), so every replica
applies each write to the same database at the same log position.  Database 0 is the state
machine's own ``data``/``expires`` (its hot paths use them directly); databases 1 to 15 are made
on their first write and dropped when flushed or emptied by a swap, so an unused database costs
nothing.  Everything that walks the databases (the expiry sweep, snapshots, ``INFO``) walks them
in index order, never in the order they were made, so equal histories still give equal
snapshots.

This module holds the commands that span databases (``MOVE``, ``COPY ... DB``) and the pieces
of ``INFO keyspace``; ``KVStateMachine`` owns the tables.
"""

from __future__ import annotations

import itertools

from pypaxos.kv.collection_ops import Copy
from pypaxos.kv.commands import (
    DATABASES,
    DB_OUT_OF_RANGE,
    SAME_OBJECT,
    Command,
    Error,
    Integer,
    Move,
    Result,
)
from pypaxos.kv.keyspace import Keyspace
from pypaxos.kv.pubsub import GENERIC, KeyEvent
from pypaxos.kv.store import KeyStore
from pypaxos.kv.values import Stored, copy_value

Tables = tuple[KeyStore[Stored], dict[bytes, int]]
"""One database: its values and its keys' deadlines (Unix ms)."""

AVG_TTL_SAMPLE_KEYS = 1024
"""``INFO keyspace``'s ``avg_ttl`` averages this many deadlines at most (Redis samples too)."""


def valid(db: int) -> bool:
    return 0 <= db < DATABASES


def move(ks: Keyspace, op: Move) -> Result:
    """``MOVE key db`` (Redis 7.0): the key and its deadline go to database ``db`` unless it
    is absent here or present there."""
    if not valid(op.db):
        return Error(DB_OUT_OF_RANGE)
    if op.db == ks.db:
        return Error(SAME_OBJECT)
    target = ks.database(op.db)
    value = ks.lookup(op.key)
    if value is None or target.lookup(op.key) is not None:
        return Integer(0)
    deadline = ks.expires.get(op.key)
    ks.delete(op.key)
    target.put(op.key, value)
    if deadline is not None:
        target.expires[op.key] = deadline
    return Integer(1)


def copy(ks: Keyspace, op: Copy) -> Result:
    """``COPY key new DB db [REPLACE]`` (``op.db`` at least 0): the copy, with the deadline,
    lands in database ``db``."""
    if not valid(op.db):
        return Error(DB_OUT_OF_RANGE)
    if op.db == ks.db and op.key == op.new:
        return Error(SAME_OBJECT)
    target = ks.database(op.db)
    value = ks.lookup(op.key)
    if value is None or (not op.replace and target.lookup(op.new) is not None):
        return Integer(0)
    deadline = ks.expires.get(op.key)
    target.put(op.new, copy_value(value))
    if deadline is not None:
        target.expires[op.new] = deadline
    return Integer(1)


def target_events(op: Command, result: Result, db: int) -> list[tuple[int, list[KeyEvent]]]:
    """The keyspace events ``op`` (run in database ``db``, answered ``result``) raises in
    another database: ``MOVE``'s ``move_to``, a ``COPY ... DB``'s ``copy_to``."""
    if type(result) is not Integer or result.value != 1:
        return []
    if isinstance(op, Move):
        return [(op.db, [(GENERIC, b"move_to", op.key)])]
    if isinstance(op, Copy) and op.db >= 0 and op.db != db:
        return [(op.db, [(GENERIC, b"copy_to", op.new)])]
    return []


def keyspace_line(db: int, tables: Tables, now_ms: int) -> str | None:
    """``INFO keyspace``'s line for a database (``None``: empty, not shown).  ``keys`` counts
    keys past their deadline not yet reclaimed, as Redis's does; ``avg_ttl`` is the mean time
    left, in ms, over the first ``AVG_TTL_SAMPLE_KEYS`` deadlines."""
    data, expires = tables
    if not data:
        return None
    sample = itertools.islice(expires.values(), AVG_TTL_SAMPLE_KEYS)
    left = [deadline - now_ms for deadline in sample]
    live = [ms for ms in left if ms > 0]
    avg_ttl_ms = sum(live) // len(live) if live else 0
    return f"db{db}:keys={len(data)},expires={len(expires)},avg_ttl={avg_ttl_ms}"
