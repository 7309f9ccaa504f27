"""``bench/reads_bench.py``'s own arithmetic: its closed-loop driver against a fake server whose
delay and errors are known (every reply counted once, none faster than the delay, the
``READONLY`` preamble not counted), and the table it renders from a run's figures."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from test_bench_smoke import ERROR_EVERY, SERVER_DELAY_S, FakeRedis

ROOT = Path(__file__).resolve().parent.parent.parent


def _module() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))  # reads_bench imports its sibling peers lazily
    spec = importlib.util.spec_from_file_location("reads_bench", ROOT / "bench/reads_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reads_bench"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reads_bench = _module()


def _drive(reads: float, readonly: bool) -> tuple[dict[str, float], int]:
    async def scenario() -> tuple[dict[str, float], int]:
        fake = FakeRedis()
        port = await fake.start()
        result = await reads_bench.drive([("127.0.0.1", port)], 3, 0.5, reads, readonly)
        await fake.stop()
        return result, fake.received

    return asyncio.run(scenario())


def test_the_driver_counts_every_answer_once_and_none_faster_than_the_server() -> None:
    result, received = _drive(0.9, readonly=False)
    answered = result["throughput"] * 0.5
    assert answered > 0 and result["errors"] == received // ERROR_EVERY
    assert answered + result["errors"] <= received  # the last answers may come after the end
    assert result["get_p50_us"] >= SERVER_DELAY_S * 1e6
    assert result["set_p50_us"] >= SERVER_DELAY_S * 1e6  # some of the 10% writes were sent


def test_the_readonly_preamble_is_sent_once_per_connection_and_not_counted() -> None:
    result, received = _drive(1.0, readonly=True)
    assert "set_p50_us" not in result  # reads only
    answered = result["throughput"] * 0.5
    # Three READONLY answers are among what the server saw, and in no count.
    assert answered + result["errors"] <= received - 3


def test_the_table_has_a_row_per_system_and_the_durable_set_line() -> None:
    one = {"get_p50_us": 50.0, "throughput": 4000.0}
    mixed = {"throughput": 3000.0, "get_p50_us": 900.0}
    data = {
        "pypaxos": [
            {"nodes": 3, "mode": "lease", "one": one, "mixed": mixed, "tput": 1e5,
             "set_tput": 5e4},
            {"nodes": 3, "mode": "stale", "one": one, "mixed": mixed, "spread": 3e4},
        ],
        "redis": {"one": one, "mixed": mixed, "tput": 5e5, "set_tput": 1e5},
    }  # fmt: skip
    table = reads_bench.render(data).splitlines()
    assert table[2].startswith("| 3 | lease | 50 | 4,000 | 100,000 | - | 3,000 (900) |")
    assert table[3].startswith("| 3 | stale | 50 | 4,000 | - | 30,000 |")
    assert table[4].startswith("| 1 | redis-server GET |")
    assert table[-1].endswith("3 nodes 50,000/s; redis-server always 100,000/s.")
