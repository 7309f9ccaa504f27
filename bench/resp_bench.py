"""Our RESP command parser against hiredis's C parser, on the server's own workloads.

``pypaxos.transport.resp.RespParser`` is pure Python and bounds every length before it buffers
(``bulk_bytes_max``, ``array_items_max``, ``command_bytes_max``); hiredis (PyPI ``hiredis``, the
C reply parser Redis clients use) parses arrays of bulk strings too, so it can read commands.
Each workload is a byte stream cut into the chunks a socket read would give, fed to a fresh
parser, every command taken out; the figure is the best of ``--repeat`` passes, in nanoseconds
per command and MB/s:

* ``set-128``: pipelined ``SET key:N <128 bytes>``, 64 KiB reads (redis-benchmark -P 32);
* ``set-128-small-reads``: the same stream in 1,500-byte reads (one Ethernet frame each);
* ``set-128-split-7``: the same in 7-byte pieces: every command resumes from a partial one;
* ``mset-1000``: ``MSET`` of 1,000 keys of 128 bytes (a large multi-bulk), 64 KiB reads;
* ``set-4mib``: one ``SET`` of a 4 MiB value, 64 KiB reads.

``hiredis+bounds`` is hiredis behind the cheapest check that keeps our bounds: the stream is
scanned for every ``*``/``$`` header before hiredis sees it (what an integration would have to
do, since hiredis accepts any length a header announces and buffers it).  Run::

    .venv/bin/python bench/resp_bench.py [--repeat 5] [--json out.json]

hiredis is not a dependency: install it in the venv to run its columns
(``.venv/bin/pip install hiredis``); without it only our parser is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypaxos.transport.resp import RespParser, RespProtocolError, encode_command

try:
    import hiredis
except ImportError:  # measured only when installed
    hiredis = None

Parse = Callable[[list[bytes]], int]


def chunks(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def workloads() -> dict[str, tuple[list[bytes], int]]:
    """name -> (the reads, the number of commands in them)."""
    value = b"v" * 128
    sets = b"".join(encode_command(b"SET", b"key:%012d" % i, value) for i in range(20_000))
    mset_args: list[bytes] = [b"MSET"]
    for i in range(1000):
        mset_args += [b"key:%012d" % i, value]
    mset = encode_command(*mset_args) * 20
    big = encode_command(b"SET", b"big", b"x" * (4 * 2**20))
    return {
        "set-128": (chunks(sets, 65536), 20_000),
        "set-128-small-reads": (chunks(sets, 1500), 20_000),
        "set-128-split-7": (chunks(sets[: len(sets) // 10], 7), 2_000),
        "mset-1000": (chunks(mset, 65536), 20),
        "set-4mib": (chunks(big * 4, 65536), 4),
    }


def ours(reads: list[bytes]) -> int:
    parser = RespParser()
    count = 0
    for data in reads:
        count += len(parser.feed(data))
    return count


def with_hiredis(reads: list[bytes]) -> int:
    assert hiredis is not None
    reader = hiredis.Reader()
    count = 0
    for data in reads:
        reader.feed(data)
        while (command := reader.gets()) is not False:
            count += 1
            del command
    return count


class HeaderScan:
    """The bounds ``RespParser`` keeps, checked on the raw stream before hiredis buffers it:
    every array and bulk header is found and its length checked (a stand-in for what an
    integration would need; it raises ``RespProtocolError`` past a bound)."""

    def __init__(self, bulk_bytes_max: int = 16 * 2**20, items_max: int = 2**20) -> None:
        self.bulk_bytes_max = bulk_bytes_max
        self.items_max = items_max
        self.skip = 0  # bytes of a bulk body still to pass over
        self.partial = b""

    def check(self, data: bytes) -> None:
        buffer = self.partial + data
        position = min(self.skip, len(buffer))
        self.skip -= position
        while position < len(buffer):
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            kind, number = buffer[position], int(buffer[position + 1 : end])
            if kind == 36:  # '$'
                if number > self.bulk_bytes_max:
                    raise RespProtocolError("bulk too long")
                body_end = end + 2 + number + 2
                if body_end > len(buffer):
                    self.skip = body_end - len(buffer)
                    position = len(buffer)
                    break
                position = body_end
            else:
                if number > self.items_max:
                    raise RespProtocolError("too many items")
                position = end + 2
        self.partial = buffer[position:]


def with_hiredis_bounded(reads: list[bytes]) -> int:
    assert hiredis is not None
    reader = hiredis.Reader()
    scan = HeaderScan()
    count = 0
    for data in reads:
        scan.check(data)
        reader.feed(data)
        while (command := reader.gets()) is not False:
            count += 1
            del command
    return count


def best_ns(parse: Parse, reads: list[bytes], commands: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter_ns()
        got = parse(reads)
        best = min(best, time.perf_counter_ns() - began)
        if got != commands:
            raise AssertionError(f"{parse.__name__}: {got} commands, expected {commands}")
    return best


def measure(repeat: int) -> list[dict[str, Any]]:
    parsers: list[tuple[str, Parse]] = [("ours", ours)]
    if hiredis is not None:
        parsers += [("hiredis", with_hiredis), ("hiredis+bounds", with_hiredis_bounded)]
    rows = []
    for name, (reads, commands) in workloads().items():
        size = sum(len(r) for r in reads)
        row: dict[str, Any] = {"workload": name, "commands": commands, "bytes": size}
        for label, parse in parsers:
            total = best_ns(parse, reads, commands, repeat)
            row[label] = {"ns_per_command": total / commands, "mb_per_s": size / total * 1e3}
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    labels = [k for k in ("ours", "hiredis", "hiredis+bounds") if k in rows[0]]
    head = " | ".join(f"{label} ns/cmd (MB/s)" for label in labels)
    lines = [f"| workload | {head} | hiredis speed-up |", "|" + " --- |" * (len(labels) + 2)]
    for row in rows:
        cells = " | ".join(
            f"{row[label]['ns_per_command']:,.0f} ({row[label]['mb_per_s']:,.0f})"
            for label in labels
        )
        speedup = (
            f"{row['ours']['ns_per_command'] / row['hiredis']['ns_per_command']:.1f}x raw, "
            f"{row['ours']['ns_per_command'] / row['hiredis+bounds']['ns_per_command']:.1f}x "
            "bounded"
            if "hiredis" in row
            else "-"
        )
        lines.append(f"| {row['workload']} | {cells} | {speedup} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="passes per parser; the best is reported"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = measure(args.repeat)
    version = getattr(hiredis, "__version__", None)
    print(f"Python {sys.version.split()[0]}, hiredis {version or 'not installed'}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"hiredis": version, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
