"""The driver's batch trace (what it writes for a slow batch, a collection and an event), and
the priority of its forked writers."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from pypaxos.runtime.batch_trace import ENV_DIR, ENV_MS, BatchTrace


def test_off_unless_the_environment_names_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert BatchTrace.from_env(1) is None


def test_a_batch_over_the_threshold_is_written_with_its_phases_and_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    monkeypatch.setenv(ENV_MS, "0")  # every batch is "slow"
    trace = BatchTrace.from_env(7)
    assert trace is not None
    trace.begin(inputs=3)
    trace.phase("step")
    gc.collect()
    trace.phase("persist")
    trace.note("fsync 1.0")
    trace.event("fork 2.0 ms")
    trace.end()
    trace.close()
    lines = (tmp_path / "trace-7.txt").read_text().splitlines()
    batch = next(line for line in lines if " batch " in line)
    assert "step " in batch and "persist " in batch and "in 3" in batch and "fsync 1.0" in batch
    assert " gc " in batch and "ivcsw" in batch
    assert any(line.split()[1:3] == ["fork", "2.0"] for line in lines)
    assert trace._on_gc not in gc.callbacks  # closed: no callback left behind


def test_a_forked_writer_takes_nice_19_even_under_a_raised_priority() -> None:
    # In a child process: raise the priority first (root only), then drop to the writer's.
    script = (
        "import os, sys\n"
        "from pypaxos.runtime.driver import lowest_cpu_priority\n"
        "try:\n"
        "    os.setpriority(os.PRIO_PROCESS, 0, -5)\n"
        "except PermissionError:\n"
        "    sys.exit(3)\n"
        "lowest_cpu_priority()\n"
        "print(os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode == 3:
        pytest.skip("raising a priority needs privileges")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "19"
