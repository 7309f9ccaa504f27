"""CPU time and resident memory of processes, read from Linux's ``/proc``.

``/proc/PID/stat`` fields 14 and 15 are the process's user and system time in clock ticks
(``SC_CLK_TCK``, 100 per second on Linux): the CPU cost of a run is the difference of their sum
before and after it, over all of a cluster's node processes together.  ``VmRSS`` in
``/proc/PID/status`` is the resident set in KiB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_ticks(pid: int, proc: Path = PROC) -> int:
    """User plus system time of ``pid`` in clock ticks (raises ``OSError`` when it is gone)."""
    text = (proc / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = text.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return utime + stime


def cpu_ticks_with_children(pid: int, proc: Path = PROC) -> int:
    """``cpu_ticks`` plus the time of ``pid``'s children it has reaped (fields 16 and 17): a
    node's forked snapshot writers count once they exit."""
    fields = (proc / str(pid) / "stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15])


def cpu_seconds(pids: Iterable[int], proc: Path = PROC) -> float:
    """The CPU time used so far by all of ``pids`` together, in seconds."""
    return sum(cpu_ticks(pid, proc) for pid in pids) / CLOCK_TICKS_PER_S


def cpu_seconds_with_children(pids: Iterable[int], proc: Path = PROC) -> float:
    """``cpu_seconds`` with each process's reaped children counted (``cpu_ticks_with_children``)."""
    return sum(cpu_ticks_with_children(pid, proc) for pid in pids) / CLOCK_TICKS_PER_S


def scheduled_cpu_ns(pid: int, proc: Path = PROC) -> int:
    """Nanoseconds every thread of ``pid`` has spent on a CPU so far, from each thread's
    ``schedstat`` (finer than ``stat``'s clock ticks; a thread that just ended is left out)."""
    total = 0
    for task in (proc / str(pid) / "task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss_kib(pid: int, proc: Path = PROC) -> int:
    """Resident set size of ``pid`` in KiB."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_us_per_op(cpu_s_before: float, cpu_s_after: float, ops: int) -> float:
    """Microseconds of CPU per operation between two ``cpu_seconds`` readings."""
    if ops <= 0:
        return float("nan")
    return (cpu_s_after - cpu_s_before) * 1e6 / ops
