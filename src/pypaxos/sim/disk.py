"""The simulated disk: durable state per actor, plus a page cache that a crash empties.

Actors persist their *whole* durable state in one ``Persist`` effect, so the disk keeps one
value per actor, not a log.  ``write(sync=True)`` is an fsync'd write: durable at once (and it
supersedes whatever the page cache held).  ``write(sync=False)`` only dirties the page cache;
the write becomes durable when the background writeback runs, which the simulator schedules as
a flush event a random number of ticks later (``flush`` below).  A crash throws the page cache
away, so an actor that replied before its state was synced comes back without it: this is how
the planted bug ``reply-before-persist`` becomes a visible safety violation.

A restarted actor is rebuilt from ``read(node)`` alone: exactly what was durable.
"""

from __future__ import annotations


class Disk:
    """Durable state and at most one dirty (unsynced) state per actor id."""

    __slots__ = ("_durable", "_next_generation", "_pending")

    def __init__(self) -> None:
        self._durable: dict[int, object] = {}
        # node -> (generation of the dirty period, newest unsynced state)
        self._pending: dict[int, tuple[int, object]] = {}
        self._next_generation = 0

    def read(self, node: int) -> object | None:
        """What survives a crash of ``node`` (``None``: it never synced anything)."""
        return self._durable.get(node)

    def write(self, node: int, state: object, sync: bool) -> int | None:
        """Store ``state``; returns a flush generation when the caller must schedule a flush.

        Writes to an already dirty page only replace its content: the flush already scheduled
        for that dirty period will write the newest content back (as a page cache would).
        """
        if sync:
            self._durable[node] = state
            self._pending.pop(node, None)
            return None
        pending = self._pending.get(node)
        if pending is not None:
            self._pending[node] = (pending[0], state)
            return None
        self._next_generation += 1
        self._pending[node] = (self._next_generation, state)
        return self._next_generation

    def flush(self, node: int, generation: int) -> bool:
        """Write back the dirty state of ``generation``; False if a sync or crash overtook it."""
        pending = self._pending.get(node)
        if pending is None or pending[0] != generation:
            return False
        self._durable[node] = pending[1]
        del self._pending[node]
        return True

    def crash(self, node: int) -> bool:
        """Lose the page cache of ``node``; True if an unsynced write was lost."""
        return self._pending.pop(node, None) is not None

    def unsynced(self, node: int) -> bool:
        return node in self._pending
