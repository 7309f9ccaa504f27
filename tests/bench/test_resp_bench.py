"""bench/resp_bench.py: its workloads parse to the commands they hold, and the bounds scan it
puts in front of hiredis refuses what our parser refuses (so its column measures a parser that
keeps the same bounds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from pypaxos.transport.resp import RespParser, RespProtocolError, encode_command


def _resp_bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "resp_bench.py"
    spec = importlib.util.spec_from_file_location("resp_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


resp_bench = _resp_bench()


def test_every_workload_holds_the_commands_it_says_and_ours_finds_them() -> None:
    for name, (reads, commands) in resp_bench.workloads().items():
        assert resp_bench.ours(reads) == commands, name


def test_the_bounds_scan_passes_commands_in_pieces_and_refuses_what_our_parser_refuses() -> None:
    stream = encode_command(b"SET", b"k", b"v" * 1000) * 3
    scan = resp_bench.HeaderScan(bulk_bytes_max=1000, items_max=3)
    for piece in resp_bench.chunks(stream, 7):
        scan.check(piece)  # split anywhere, nothing refused
    for hostile in (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n", b"*4\r\n"):
        with pytest.raises(RespProtocolError):
            resp_bench.HeaderScan(bulk_bytes_max=1000, items_max=3).check(hostile)
        with pytest.raises(RespProtocolError):
            RespParser(bulk_bytes_max=1000, array_items_max=3).feed(hostile)
