"""Disruptive elections in the KV simulator: a follower cut off and back (``sim.kv_rejoin``).

With pre-vote the leader keeps its office and its ballot through the cut and after it; the same
seeds without pre-vote show the disruption (the returning node raised its ballot, a new
leadership began), so the check is able to fail.  Either way the run's ordinary checks pass.
"""

from __future__ import annotations

import argparse

import pytest

from pypaxos.cli import sim_rejoin as cmd_sim_rejoin
from pypaxos.sim.kv import KVSettings
from pypaxos.sim.kv_rejoin import rejoin_settings, run_rejoin

SEEDS = range(4)
SMALL = KVSettings()  # 200 operations: the run goes on well after the cut is lifted


@pytest.mark.parametrize("seed", SEEDS)
def test_with_pre_vote_a_rejoining_follower_causes_no_election(seed: int) -> None:
    result = run_rejoin(rejoin_settings(True, SMALL), seed)
    assert result.leader is not None and result.follower is not None
    assert result.ticks_after_lift > 100  # long enough after the cut for a disruption to show
    assert result.disruptions == 0, result.line()
    assert not result.follower_ballot_raised
    assert result.run.violations == ()


@pytest.mark.parametrize("seed", SEEDS)
def test_without_pre_vote_the_same_runs_show_the_disruption(seed: int) -> None:
    result = run_rejoin(rejoin_settings(False, SMALL), seed)
    assert result.leader is not None
    assert result.disruptions >= 1, result.line()
    assert result.follower_ballot_raised
    assert result.run.violations == ()  # disruptive, never unsafe


def test_five_nodes_too() -> None:
    settings = rejoin_settings(True, KVSettings(nodes=5))
    result = run_rejoin(settings, 7)
    assert result.disruptions == 0 and result.run.violations == ()
    control = run_rejoin(rejoin_settings(False, KVSettings(nodes=5)), 7)
    assert control.disruptions >= 1


def rejoin_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pypaxos sim rejoin")
    cmd_sim_rejoin.add_arguments(parser)
    return cmd_sim_rejoin.run(parser.parse_args(argv))


def test_the_command_compares_both_elections(capsys: pytest.CaptureFixture[str]) -> None:
    assert rejoin_cli(["--seeds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pre-vote: 2 seeds, 3 nodes")
    assert "disruptive elections: 0 (in 0 seeds)" in lines[0]
    assert lines[1].startswith("no pre-vote: 2 seeds")
    assert "disruptive elections: 0 " not in lines[1]
    assert rejoin_cli(["--seeds", "0"]) == 2
