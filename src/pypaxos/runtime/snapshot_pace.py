"""The pace of a forked snapshot writer: a duty cycle the node sets and the child follows.

A snapshot child used to run at nice 19, so that the node loops always came first.  That is
right while nobody waits for the snapshot, and wrong once the node's writes do: past
``MultiConfig.snapshot_lag_bytes_max`` of commands applied beyond the last durable snapshot the
acceptor's window stops moving (``multi.node``) until the snapshot is adopted, and a nice-19
process on a CPU saturated by the node loops gets almost none of it, so a large state's
snapshot then took minutes while every write timed out.  An unprivileged process cannot lower
its nice value again, so the priority cannot follow the need.

Instead the child runs at its parent's priority and paces itself: after each chunk it sleeps
long enough that its share of wall time spent working is the *duty* (``duty_for_lag``), which
it reads from one anonymous shared page (``SnapshotPace``, mapped before the fork, so parent
and child see the same bytes).  The node raises the duty as the lag nears the bound: a
snapshot nobody waits for works a fifth of the time and leaves the rest to the loops; one the
writes are about to wait for runs at full speed.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Callable, Iterable, Iterator

DUTY_IDLE = 0.2  # the share of its time a snapshot works while the lag is far from the bound
# Below this share of the bound the idle duty holds (low: every byte of lag is log kept in
# memory until the snapshot is adopted, so a slow snapshot costs resident memory); from there
# it rises linearly to full speed at ``FULL_FRACTION`` and stays there (and whenever the
# window is held).
IDLE_FRACTION = 0.1
FULL_FRACTION = 0.35
# One sleep is at most this long, so that a raised duty takes effect within it.
PAUSE_MAX_S = 0.1
_PER_MILLE = struct.Struct("=I")  # the duty in thousandths, at offset 0 of the page


def duty_for_lag(lag_bytes: int, bound_bytes: int) -> float:
    """The duty a snapshot child should run at when ``lag_bytes`` of commands were applied
    beyond the last durable snapshot and writes wait past ``bound_bytes``."""
    if bound_bytes <= 0 or lag_bytes >= bound_bytes:
        return 1.0
    fraction = lag_bytes / bound_bytes
    if fraction <= IDLE_FRACTION:
        return DUTY_IDLE
    if fraction >= FULL_FRACTION:
        return 1.0
    rise = (fraction - IDLE_FRACTION) / (FULL_FRACTION - IDLE_FRACTION)
    return DUTY_IDLE + (1.0 - DUTY_IDLE) * rise


class SnapshotPace:
    """A duty cycle in one anonymous shared page: the parent ``set`` s it, a forked child
    ``read`` s it (create it before the fork).  Stored in thousandths: one aligned 4-byte
    word, so a read never sees half of a write."""

    __slots__ = ("_page",)

    def __init__(self, duty: float = 1.0) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.set(duty)

    def set(self, duty: float) -> None:
        _PER_MILLE.pack_into(self._page, 0, round(min(max(duty, 0.0), 1.0) * 1000))

    def read(self) -> float:
        """The duty, in (0, 1]: never zero, so a child always makes progress."""
        per_mille: int = _PER_MILLE.unpack_from(self._page, 0)[0]
        return min(max(per_mille, 1), 1000) / 1000

    def close(self) -> None:
        self._page.close()


def pause_s(worked_s: float, duty: float) -> float:
    """How long to sleep after ``worked_s`` of work so that work is ``duty`` of the time
    (bounded by ``PAUSE_MAX_S``)."""
    if duty >= 1.0 or worked_s <= 0.0:
        return 0.0
    return min(worked_s * (1.0 - duty) / duty, PAUSE_MAX_S)


def paced(
    chunks: Iterable[bytes],
    pace: SnapshotPace,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """``chunks``, with a pause after each one as ``pace`` says.  The work timed is making the
    chunk and whatever the consumer did with it before asking for the next (the writing)."""
    began = clock()
    for chunk in chunks:
        yield chunk
        pause = pause_s(clock() - began, pace.read())
        if pause > 0.0:
            sleep(pause)
        began = clock()
