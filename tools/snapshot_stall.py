"""How long taking a snapshot holds the event loop, before and after snapshots moved out of line.

Fills a ``KVStateMachine`` with ``--keys`` keys of ``--value-bytes`` bytes, then measures:

* before: ``snapshot()`` (the whole store encoded in one piece, on the loop, as the driver did)
  and writing those bytes;
* after: the ``fork()`` that starts a snapshot (the only loop-side cost), the longest gap
  between 1 ms timer ticks of a running asyncio loop while the child writes the chunked file,
  and the child's total time;
* install: the longest single chunk load on a receiver (``SnapshotLoader.load``) and the swap.

Run: ``.venv/bin/python tools/snapshot_stall.py --keys 1000000``.  Numbers on a shared machine
are noisy: run it a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

from pypaxos.kv import KVStateMachine
from pypaxos.kv.store import KeyStore
from pypaxos.storage import SnapshotFileReader, write_snapshot_file

CHUNK_BYTES = 1024 * 1024


def filled(keys: int, value_bytes: int) -> KVStateMachine:
    machine = KVStateMachine()
    pad = b"v" * max(0, value_bytes - 12)
    # The store, filled directly (no commands): distinct keys and values, as a load leaves them.
    machine._data = KeyStore((b"key:%012d" % i, pad + b"%012d" % i) for i in range(keys))
    return machine


def before(machine: KVStateMachine, directory: Path) -> tuple[float, float, int]:
    started = time.perf_counter()
    blob = machine.snapshot()
    encoded = time.perf_counter()
    write_snapshot_file(directory, 1, [blob], fsync=True)
    return encoded - started, time.perf_counter() - encoded, len(blob)


async def after(machine: KVStateMachine, directory: Path) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        last = loop.time()
        while not stop:
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    task = loop.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            write_snapshot_file(directory, 2, machine.snapshot_chunks(CHUNK_BYTES), fsync=True)
            code = 0
        finally:
            os._exit(code)
    fork_s = time.perf_counter() - started
    exited = asyncio.Event()
    pidfd = os.pidfd_open(pid)
    loop.add_reader(pidfd, exited.set)
    gaps.clear()
    await exited.wait()
    child_s = time.perf_counter() - started
    loop.remove_reader(pidfd)
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    stop = True
    await task
    return fork_s, max(gaps, default=0.0), child_s


def install(directory: Path) -> tuple[float, float, int, float]:
    reader = SnapshotFileReader(directory / "snapshot.bin")
    loader = KVStateMachine().snapshot_loader()
    longest = 0.0
    began = time.perf_counter()
    for chunk in reader.chunks():
        started = time.perf_counter()
        loader.load(chunk)
        longest = max(longest, time.perf_counter() - started)
    started = time.perf_counter()
    loader.finish()
    swap_s = time.perf_counter() - started
    total_s = time.perf_counter() - began
    count = reader.chunk_count
    reader.close()
    return longest, swap_s, count, total_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=128)
    args = parser.parse_args()
    machine = filled(args.keys, args.value_bytes)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        encode_s, write_s, size = before(machine, directory)
        fork_s, gap_s, child_s = asyncio.run(after(machine, directory))
        chunk_s, swap_s, chunks, load_s = install(directory)
    print(
        f"keys {args.keys}, values {args.value_bytes} B, snapshot {size / 2**20:.0f} MiB, "
        f"process max RSS {rss_mib:.0f} MiB"
    )
    print(f"before: on the loop: encode {encode_s * 1000:.0f} ms + write {write_s * 1000:.0f} ms")
    print(
        f"after:  on the loop: fork {fork_s * 1000:.1f} ms; longest loop gap while the child "
        f"wrote {gap_s * 1000:.1f} ms; child done in {child_s * 1000:.0f} ms"
    )
    print(
        f"install: {chunks} chunks, longest chunk load {chunk_s * 1000:.1f} ms, "
        f"swap {swap_s * 1000:.2f} ms; the whole file read and loaded in {load_s:.2f} s "
        f"({size / 2**20 / load_s:.0f} MiB/s: what a restart spends on the snapshot)"
    )


if __name__ == "__main__":
    main()
