"""Two properties of this VM that bound the one-client latency, measured on their own.

1. **fsync contention.**  Three local nodes fsync the same disk at once on every write.  This
   times ``pwrite`` + ``fdatasync`` of small records into a preallocated file, first in one
   process, then in three processes at once (each its own file, as three nodes have).
2. **Wake-up cost.**  A process that sleeps a few milliseconds runs slower when it wakes (the
   core was idle or ran something else).  This times the same small piece of Python right after
   sleeps of 0, 0.2, 2 and 10 ms, and the CPU each ``time.sleep`` wake-up itself costs.

    .venv/bin/python bench/profile/machine_quirks.py [--syncs 1000] [--dir /tmp]

Everything it writes goes to a temporary directory under ``--dir``, removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

RECORD = b"r" * 300  # about one small log record
FILE_BYTES = 16 * 1024 * 1024


def sync_loop(path: str, syncs: int) -> tuple[float, float]:
    """(median µs per append + fdatasync, CPU µs per sync) for one file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, b"\0" * FILE_BYTES, 0)  # written zeros, as FileStorage preallocates
        os.fsync(fd)
        times = []
        cpu0 = time.process_time()
        for i in range(syncs):
            started = time.perf_counter()
            os.pwrite(fd, RECORD, i * len(RECORD))
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
        cpu_us = (time.process_time() - cpu0) / syncs * 1e6
    finally:
        os.close(fd)
    return statistics.median(times) * 1e6, cpu_us


def _work() -> int:
    total = 0
    for i in range(300):
        total += i * i
    return total


def wake_up_costs() -> None:
    for sleep_s in (0.0, 0.0002, 0.002, 0.01):
        times = []
        for _ in range(300):
            if sleep_s:
                time.sleep(sleep_s)
            started = time.perf_counter()
            _work()
            times.append(time.perf_counter() - started)
        print(f"  after a {sleep_s * 1e3:4.1f} ms sleep: the same loop takes "
              f"{statistics.median(times) * 1e6:6.1f} µs (median of 300)")  # fmt: skip
    for sleep_s in (0.0001, 0.001, 0.01):
        count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - wall0 < 1.0:
            time.sleep(sleep_s)
            count += 1
        cpu_us = (time.process_time() - cpu0) / count * 1e6
        print(f"  a {sleep_s * 1e3:4.1f} ms sleep costs {cpu_us:5.0f} µs of CPU per wake-up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syncs", type=int, default=1000, help="syncs per process (1000)")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (system tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="pypaxos-quirks-") as tmp:
        alone = sync_loop(str(Path(tmp) / "alone"), args.syncs)
        print(f"fsync, one process: {alone[0]:.0f} µs per append+fdatasync, "
              f"{alone[1]:.0f} µs CPU")  # fmt: skip
        paths = [(str(Path(tmp) / f"node-{i}"), args.syncs) for i in range(3)]
        with multiprocessing.Pool(3) as pool:
            together = pool.starmap(sync_loop, paths)
        medians = ", ".join(f"{t[0]:.0f}" for t in together)
        print(f"fsync, three processes at once: {medians} µs per append+fdatasync")
    print("wake-up cost:")
    wake_up_costs()


if __name__ == "__main__":
    main()
