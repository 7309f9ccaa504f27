"""``bench/objects_bench.py``: its pypaxos side runs three embedded members and counts answered
calls; its table renders every row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_objects_bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("objects_bench", ROOT / "bench/objects_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["objects_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_a_short_pypaxos_run_answers_calls_and_renders() -> None:
    bench = load_objects_bench()
    for workload in ("counter", "dict"):
        result = bench.pypaxos_run(workload, "never", 8, 0.5)
        assert result["ok"] > 0 and result["failed"] == 0
        assert result["p50_us"] <= result["p99_us"]
        row = {"system": "pypaxos", "workload": workload, "setting": "fsync=never"}
        table = bench.render([{**row, "outstanding": 8, "durability": "x", **result}])
        assert table.count("\n") == 3 and f"| pypaxos | {workload} |" in table
