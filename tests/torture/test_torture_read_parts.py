"""The read-aimed parts of the torture harness, without a run: the nodes' read settings, the
``clock-drift`` nemesis's bound, the agent's pinned readers and the command-line checks."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pypaxos.runtime.config import Member, load_config, new_config, write_config
from pypaxos.torture.agent import Agent
from pypaxos.torture.nemesis import Nemesis
from pypaxos.torture.reads import READ_MODES, ReadSetup, drift_bound


def _config(tmp_path: Path, setup: ReadSetup) -> Any:
    path = tmp_path / "node.toml"
    members = (Member(id=1, peer="127.0.0.1:1", client="127.0.0.1:2"),)
    write_config(setup.apply(new_config(path, "t", members)))
    return load_config(path)  # what the node reads back from the file


@pytest.mark.parametrize("mode", READ_MODES)
def test_each_read_mode_reaches_the_node_config(tmp_path: Path, mode: str) -> None:
    config = _config(tmp_path, ReadSetup(mode))
    assert config.follower_reads is (mode == "follower")
    assert config.reads == ("read-index" if mode == "follower" else mode)
    multi = config.multi_config()
    assert multi.follower_reads is (mode == "follower")
    assert multi.leases is (mode == "lease")


def test_a_longer_lease_reaches_the_protocol(tmp_path: Path) -> None:
    multi = _config(tmp_path, ReadSetup("lease", lease_ticks=150)).multi_config()
    assert multi.leases and multi.lease_ticks == 150
    assert multi.lease_ticks > multi.election_timeout_max_ticks  # elections wait for the lease


@pytest.mark.parametrize(("mode", "lease_ticks"), [("quorum", None), ("lease", 1)])
def test_impossible_read_setups_are_refused(mode: str, lease_ticks: int | None) -> None:
    with pytest.raises(ValueError):
        ReadSetup(mode, lease_ticks)


class _Clocks:
    """What the nemesis sees of a cluster: three nodes, every clock settable."""

    ids = [1, 2, 3]

    def __init__(self) -> None:
        self.set: list[tuple[int, float, float]] = []

    def node_ready(self, node: int) -> bool:
        return True

    def set_clock(self, node: int, jump_s: float, rate: float) -> bool:
        self.set.append((node, jump_s, rate))
        return True


def test_clock_drift_keeps_every_rate_within_the_bound_and_never_jumps(tmp_path: Path) -> None:
    async def no_status() -> list[dict[str, Any]]:
        return []

    async def drift_many() -> _Clocks:
        clocks = _Clocks()
        nemesis = Nemesis(clocks, ["clock-drift"], random.Random(5), tmp_path / "n.log", no_status)  # type: ignore[arg-type]
        for _ in range(40):
            await nemesis.do_clock_drift(0.0)
        nemesis.close()
        return clocks

    clocks = asyncio.run(drift_many())
    skewed = clocks.set[0::2]
    restored = clocks.set[1::2]
    assert len(skewed) == len(restored) == 40
    pairs = zip(restored, skewed, strict=True)
    assert all(back == (node, 0.0, 1.0) for back, (node, _, _) in pairs)  # back to real speed
    bound = drift_bound()
    assert bound == pytest.approx(0.01)
    rates = [rate for _, jump, rate in skewed if jump == 0.0]
    assert len(rates) == 40
    assert all(1 / (1 + bound) <= rate <= 1 + bound and rate != 1.0 for rate in rates)
    assert min(rates) < 1.0 < max(rates)  # slow and fast both


def test_a_reader_stays_on_its_node_and_records_only_reads(tmp_path: Path) -> None:
    """A reader bound to the second address, where nothing listens: every read fails, it keeps
    reading as one process, and it never writes."""

    async def read_briefly() -> list[dict[str, Any]]:
        history = tmp_path / "history.jsonl"
        agent = Agent(["127.0.0.1:1", "127.0.0.1:9"], history, seed=3)
        agent.keys = ["k0"]
        task = asyncio.get_running_loop().create_task(agent.reader(7, 1))
        await asyncio.sleep(0.3)
        agent.stop.set()
        await task
        agent.rec.close()
        return [json.loads(line) for line in history.read_text().splitlines()]

    events = asyncio.run(read_briefly())
    assert events and {e["f"] for e in events} == {"read"}
    assert {e["type"] for e in events} <= {"invoke", "fail"}
    assert {e["process"] for e in events} == {7000}
