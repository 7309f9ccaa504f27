"""The forked snapshot writer's pace: the duty the node sets from its snapshot lag, the shared
page a forked child reads it from, the pauses it takes, and its priority (its parent's, not
nice 19: the node's writes may come to wait for it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_runtime_driver_snapshots import CONFIG, TICK_S, Outbox, follow, until

from pypaxos.kv import KVStateMachine
from pypaxos.multi import Node
from pypaxos.runtime import driver as driver_module
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.snapshot_pace import (
    DUTY_IDLE,
    FULL_FRACTION,
    IDLE_FRACTION,
    PAUSE_MAX_S,
    SnapshotPace,
    duty_for_lag,
    paced,
    pause_s,
)
from pypaxos.storage import FileStorage

BOUND = 1 << 20


def test_the_duty_is_idle_far_from_the_bound_and_full_near_it() -> None:
    idle, full = int(BOUND * IDLE_FRACTION), int(BOUND * FULL_FRACTION) + 1
    assert 0 < idle < full < BOUND
    assert duty_for_lag(0, BOUND) == duty_for_lag(idle, BOUND) == DUTY_IDLE
    rising = [duty_for_lag(idle + (full - idle) * step // 20, BOUND) for step in range(21)]
    assert rising == sorted(rising) and DUTY_IDLE < rising[10] < 1.0
    assert duty_for_lag(full, BOUND) == duty_for_lag(BOUND * 3, BOUND) == 1.0
    assert duty_for_lag(1, 0) == 1.0  # no bound: nothing to yield for


def test_a_forked_child_reads_what_the_parent_sets_after_the_fork() -> None:
    pace = SnapshotPace(DUTY_IDLE)
    go_read, go_write = os.pipe()
    seen_read, seen_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait for the parent's word, report the duty it sees
        code = 1
        try:
            os.read(go_read, 1)
            os.write(seen_write, b"%d" % round(pace.read() * 1000))
            code = 0
        finally:
            os._exit(code)
    try:
        pace.set(0.75)
        os.write(go_write, b"!")
        seen = os.read(seen_read, 16)
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (go_read, go_write, seen_read, seen_write):
            os.close(fd)
        pace.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen == b"750"


def test_the_shared_duty_is_clamped_and_never_zero() -> None:
    pace = SnapshotPace()
    assert pace.read() == 1.0
    pace.set(0.0)
    assert 0.0 < pace.read() < DUTY_IDLE
    pace.set(7.0)
    assert pace.read() == 1.0
    pace.close()


def test_paced_chunks_pause_as_the_duty_says_and_stop_pausing_when_it_rises() -> None:
    now = [0.0]
    slept: list[float] = []
    pace = SnapshotPace(0.25)

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def chunks() -> Iterator[bytes]:
        for seq in range(4):
            now[0] += 0.01  # each chunk takes 10 ms of work to make
            yield b"chunk %d" % seq

    out = []
    for chunk in paced(chunks(), pace, clock, sleep):
        out.append(chunk)
        now[0] += 0.01  # and 10 ms to write
        if len(out) == 2:
            pace.set(1.0)  # the node's writes are about to wait: full speed
    pace.close()
    assert out == [b"chunk %d" % seq for seq in range(4)]
    assert slept == [pytest.approx(0.06)]  # 20 ms of work at a quarter duty, then none
    assert pause_s(10.0, DUTY_IDLE) == PAUSE_MAX_S


@pytest.mark.asyncio
async def test_the_snapshot_child_keeps_the_parents_priority_and_speeds_up_with_the_lag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getpriority(os.PRIO_PROCESS, 0) >= 19:
        pytest.skip("the test already runs at the lowest priority")
    report = tmp_path / "child.txt"

    def spying(chunks: Iterable[bytes], pace: SnapshotPace) -> Iterable[bytes]:
        # In the child: the duty at the start, then whether the parent raises it to full.
        first = pace.read()
        for _ in range(4000):  # a bound on the wait, not a timing: the parent raises it
            if pace.read() == 1.0:
                break
            time.sleep(0.005)
        priority = os.getpriority(os.PRIO_PROCESS, 0)
        with contextlib.suppress(FileExistsError), report.open("x") as out:  # the first child's
            out.write(f"{priority} {first} {pace.read()}")
        return chunks

    monkeypatch.setattr(driver_module, "paced", spying)  # the child inherits it
    config = dataclasses.replace(CONFIG, snapshot_lag_bytes_max=10_000)
    storage = FileStorage(tmp_path / "node")
    node = Node(1, config, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, storage, Outbox(), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        await follow(driver, range(0, 6))
        await until(lambda: driver._snapshot_child is not None)
        assert driver.snapshot_duty == DUTY_IDLE  # nobody waits for it yet
        await follow(driver, range(6, 80))  # the lag grows to the bound
        await until(lambda: driver.snapshots_saved >= 1, timeout_s=60)
        await until(lambda: not driver._dropped)  # the compacted values, let go by slices
        driver.stop()
        await task
    storage.close()
    priority, first, last = report.read_text().split()
    assert int(priority) == os.getpriority(os.PRIO_PROCESS, 0)  # not nice 19
    assert float(first) == DUTY_IDLE
    assert float(last) == 1.0


def test_a_snapshot_a_peer_waits_for_is_written_at_full_speed() -> None:
    """A peer that needs values let go from memory waits for the next snapshot
    (``Node.snapshot_awaited``): no pacing then, however small the lag."""

    @dataclasses.dataclass
    class LagOnly:
        snapshot_awaited: bool
        snapshot_lag_bytes: int = 0
        snapshot_lag_bound_bytes: int = BOUND
        snapshot_asked_lag_bytes: int = 0

    def duty(node: LagOnly) -> float:
        fake = type("FakeDriver", (), {"node": node})()
        return Driver._duty(fake)  # type: ignore[arg-type]

    assert duty(LagOnly(snapshot_awaited=False)) == DUTY_IDLE
    assert duty(LagOnly(snapshot_awaited=True)) == 1.0
