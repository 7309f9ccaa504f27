"""Storage benchmark: what one fsync costs and how much group commit buys, on a real disk.

Measures ``FileStorage`` with ``fsync="always"``:

* latency of ``append(4 KiB record)`` + ``sync()`` (one write and one fsync each): p50 and p99;
* records per second when ``batch`` 128-byte records share one ``sync()``, for batch 1, 10, 100.

Run from the repository root (the data goes in a temporary directory under ``--dir``, the
current directory by default, so that it lands on the disk a node's data directory would use,
not on a tmpfs)::

    .venv/bin/python bench/storage_bench.py [--dir PATH] [--seconds 2] [--samples 500]

Figures depend on the device and on whatever else is using it; run it a few times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from pypaxos.storage import FileStorage, FsyncMode

LATENCY_RECORD_BYTES = 4096
GROUP_RECORD_BYTES = 128
BATCH_SIZES = (1, 10, 100)


def mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def filesystem(path: Path) -> str:
    mount = str(mount_point(path))
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, point, kind = line.split()[:3]
                if point == mount:
                    return f"{device} on {point} ({kind})"
    except OSError:
        pass
    return mount


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(q * len(sorted_values)))
    return sorted_values[rank - 1]


def fsync_latency_us(data_dir: Path, samples: int) -> tuple[float, float]:
    record = os.urandom(LATENCY_RECORD_BYTES)
    nanos: list[int] = []
    with FileStorage(data_dir) as storage:
        for _ in range(20):  # warm up: create the file, fault in the page cache
            storage.append(record)
            storage.sync()
        for _ in range(samples):
            start = time.perf_counter_ns()
            storage.append(record)
            storage.sync()
            nanos.append(time.perf_counter_ns() - start)
    nanos.sort()
    return percentile(nanos, 0.50) / 1000, percentile(nanos, 0.99) / 1000


def group_commit_rate(
    data_dir: Path, batch: int, seconds: float, fsync: FsyncMode = "always"
) -> tuple[float, float]:
    """Records per second and syncs per second with ``batch`` records per ``sync()``."""
    record = os.urandom(GROUP_RECORD_BYTES)
    records = syncs = 0
    with FileStorage(data_dir, fsync=fsync) as storage:
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(batch):
                storage.append(record)
            storage.sync()
            records += batch
            syncs += 1
    return records / elapsed, syncs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to put the data")
    parser.add_argument("--seconds", type=float, default=2.0, help="per group-commit run")
    parser.add_argument("--samples", type=int, default=500, help="append+fsync latency samples")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix=".storage-bench-", dir=args.dir))
    try:
        print(f"data directory: {root} on {filesystem(root)}")
        p50, p99 = fsync_latency_us(root / "latency", args.samples)
        print(
            f"append {LATENCY_RECORD_BYTES} B + fsync ({args.samples} samples): "
            f"p50 {p50:,.0f} us  p99 {p99:,.0f} us"
        )
        print(f"group commit, {GROUP_RECORD_BYTES}-byte records, fsync=always:")
        for batch in BATCH_SIZES:
            rate, sync_rate = group_commit_rate(root / f"batch-{batch}", batch, args.seconds)
            print(f"  batch {batch:>3}: {rate:>10,.0f} records/s  ({sync_rate:,.0f} fsyncs/s)")
        rate, _ = group_commit_rate(root / "never", 1, args.seconds, fsync="never")
        print(f"  for scale, batch 1 with fsync=never (no fsync): {rate:,.0f} records/s")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
