"""Give the C heap's free pages back to the kernel after the node frees a lot at once.

Python keeps small objects in its own arenas (returned to the kernel when empty), but anything
larger than 512 bytes (a log entry's command batch, a socket's read buffer, a dict's table) comes
from the C library's ``malloc``.  glibc returns freed memory to the kernel only from the top of
its heap (``M_TRIM_THRESHOLD``); a hole in the middle stays resident until ``malloc`` reuses it.
So after the log is compacted (the decided values of a snapshot interval freed), or after a
burst that held more in flight than the node holds at rest, the process keeps its high-water
mark: tens of MB per node under the large-data load.  ``malloc_trim(0)`` (glibc 2.8 and later)
walks every arena's free chunks and gives their whole pages back (``madvise(MADV_DONTNEED)``).

It costs about a millisecond per MB released plus a walk over the free chunks, holding each
arena's lock while it works on it, so it runs in a thread of its own (``ctypes`` releases the
GIL): the event loop only waits if it needs that arena's lock meanwhile for an allocation of more
than 512 bytes.  At most one trim runs at a time; a request while one runs is dropped (the running
one releases what the new request would).  Without glibc (musl, macOS) it does nothing.

A compaction *owes* a trim (``owe``); the driver pays it (``pay``) once the values the
compaction dropped are all let go (a slice per turn of the loop, so a trim started at the
compaction itself found most of them still alive) and no snapshot ``fork`` is due (glibc's
``fork`` takes every arena's lock first, so it would wait for the trim).  A debt outlives a fork:
the trim runs while the child writes, not never.  Through ``idle`` the driver also trims when the
node has applied nothing for a moment after it applied commands (heartbeats go on; the applied
index stands still): what a burst held in flight (clients' pipelines, the peers' frames) is then
given back at once, not at the next compaction, which an idle node may never reach.  ``idle``
trims at most once per ``idle_interval_s``.

``malloc_stats`` reads glibc's own counters (``mallinfo2``, glibc 2.33 and later): what the C
heap holds in use, what it holds free, and what it mapped apart.  It walks every free chunk
under the arena's lock (tens of ms for ten thousand holes), so the trimmer reads them in its
thread right after each trim (``last_stats``, what ``INFO memory`` shows), never the loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

IDLE_INTERVAL_S = 1.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none."""
    with contextlib.suppress(OSError, AttributeError):
        function = ctypes.CDLL(None).malloc_trim
        function.argtypes = [ctypes.c_size_t]
        function.restype = ctypes.c_int
        return function
    return None


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a ``size_t``, in this order)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class MallocStats(NamedTuple):
    """The C heap as glibc counts it, summed over its arenas, in bytes."""

    heap_bytes: int  # obtained from the kernel with ``brk``/``mmap`` for the arenas
    in_use_bytes: int  # in live allocations (arenas and mapped chunks)
    free_bytes: int  # free chunks inside the arenas (resident unless trimmed)
    mapped_bytes: int  # chunks mapped apart (large allocations), in use


def _find_mallinfo2() -> Callable[[], _MallInfo2] | None:
    with contextlib.suppress(OSError, AttributeError):
        function = ctypes.CDLL(None).mallinfo2
        function.argtypes = []
        function.restype = _MallInfo2
        return function
    return None


_MALLINFO2 = _find_mallinfo2()


def malloc_stats(read: Callable[[], _MallInfo2] | None = _MALLINFO2) -> MallocStats | None:
    """glibc's counters now, or ``None`` without ``mallinfo2``.  It walks every free chunk
    holding the arena's lock: call it off the event loop."""
    if read is None:
        return None
    info = read()
    return MallocStats(
        heap_bytes=info.arena,
        in_use_bytes=info.uordblks + info.hblkhd,
        free_bytes=info.fordblks,
        mapped_bytes=info.hblkhd,
    )


class HeapTrimmer:
    """Trims the C heap in a background thread when asked (``request``), one trim at a time."""

    def __init__(
        self,
        trim: Callable[[int], int] | None = None,
        enabled: bool = True,
        idle_interval_s: float = IDLE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        stats: Callable[[], MallocStats | None] = malloc_stats,
    ) -> None:
        self._trim = (trim or _find_malloc_trim()) if enabled else None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.idle_interval_s = idle_interval_s
        self._clock = clock
        self._requested_s = -float("inf")  # when the last trim started (clock's seconds)
        self._progress_at_request: int | None = None  # ``idle``'s progress then
        self.owed = False  # something large was let go since the last trim started (``owe``)
        self.trims = 0  # trims finished
        self.last_trim_s = 0.0  # how long the last one took (in its thread, not on the loop)
        self._stats = stats
        self.last_stats: MallocStats | None = None  # glibc's counters right after the last trim

    @property
    def available(self) -> bool:
        return self._trim is not None

    def request(self) -> bool:
        """Start a trim unless one is running (or there is no ``malloc_trim``): true if started."""
        trim = self._trim
        if trim is None:
            return False
        with self._lock:
            if self._thread is not None:
                return False
            thread = self._thread = threading.Thread(
                target=self._run, args=(trim,), name="pypaxos-heap-trim", daemon=True
            )
        self._requested_s = self._clock()
        thread.start()
        return True

    def owe(self) -> None:
        """Much was (or is being) let go: trim at the next ``pay``."""
        self.owed = True

    def pay(self) -> bool:
        """Start the owed trim, if any: true if started.  While a trim runs the debt stays (that
        trim began before what is owed was let go)."""
        if not self.owed or not self.request():
            return False
        self.owed = False
        return True

    def idle(self, progress: int) -> bool:
        """The node found nothing to do: trim if ``progress`` (its applied index) moved since
        the last idle trim and none started in the last ``idle_interval_s``."""
        if progress == self._progress_at_request:
            return False
        if self._clock() - self._requested_s < self.idle_interval_s:
            return False
        if not self.request():
            return False
        self._progress_at_request = progress
        return True

    def _run(self, trim: Callable[[int], int]) -> None:
        began = time.perf_counter()
        stats = None
        try:
            trim(0)
            self.last_trim_s = time.perf_counter() - began
            stats = self._stats()  # here, off the loop (it walks the free chunks)
        finally:
            with self._lock:
                if stats is not None:
                    self.last_stats = stats
                self.trims += 1
                self._thread = None

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the running trim (if any) is done (tests, and a clean stop)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
