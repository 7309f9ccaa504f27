"""Swarm testing in ``pypaxos sim kv``: each seed draws its own cluster size and fault mix.

The draw depends on the seed alone, pins what the command line gives, and switches fault
kinds off in some seeds; ``--no-swarm`` gives the fixed mix; correct code stays clean.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from pypaxos.cli import sim_kv as cmd_sim_kv
from pypaxos.sim.kv import KVSettings, run_kv, run_seeds


def settings_of(argv: list[str]) -> KVSettings:
    parser = argparse.ArgumentParser(prog="pypaxos sim kv")
    cmd_sim_kv.add_arguments(parser)
    return cmd_sim_kv.settings_from(parser.parse_args(argv))


def test_the_mix_depends_on_the_seed_alone() -> None:
    swarm = KVSettings(swarm=True)
    assert swarm.for_seed(3) == swarm.for_seed(3)
    assert len({swarm.for_seed(seed) for seed in range(20)}) == 20
    assert not swarm.for_seed(3).swarm
    assert KVSettings().for_seed(3) == KVSettings()


def test_each_fault_kind_is_off_in_some_seeds_and_on_in_others() -> None:
    mixes = [KVSettings(swarm=True).for_seed(seed) for seed in range(150)]
    kinds = {
        "drop": [m.drop for m in mixes],
        "dup": [m.dup for m in mixes],
        "crash": [m.nemesis.crash_prob for m in mixes],
        "leader crash": [m.nemesis.leader_crash_prob for m in mixes],
        "promise crash": [m.nemesis.promise_crash_prob for m in mixes],
        "partition": [m.nemesis.partition_prob for m in mixes],
        "isolate": [m.nemesis.isolate_leader_prob for m in mixes],
        "blip": [m.nemesis.blip_leader_prob for m in mixes],
        "stragglers": [m.nemesis.straggle_prob for m in mixes],
    }
    for kind, values in kinds.items():
        assert 0.0 in values and any(value > 0.0 for value in values), kind
    assert {m.nodes for m in mixes} == {3, 5}
    assert {m.thrifty for m in mixes} == {True, False}
    assert len({m.delay_max_ticks for m in mixes}) > 4


def test_command_line_options_pin_their_dimension_for_every_seed() -> None:
    settings = settings_of(["--drop", "0.2", "--nodes", "5", "--no-thrifty"])
    free = KVSettings(swarm=True)
    for seed in range(30):
        mix = settings.for_seed(seed)
        assert (mix.drop, mix.nodes, mix.thrifty) == (0.2, 5, False)
        drawn = free.for_seed(seed)
        assert replace(mix, drop=drawn.drop, nodes=drawn.nodes, thrifty=drawn.thrifty) == drawn
    replay = settings.replay_command(4)
    assert "--drop 0.2" in replay and "--nodes 5" in replay and "--no-thrifty" in replay


def test_no_swarm_gives_the_fixed_mix() -> None:
    settings = settings_of(["--no-swarm"])
    assert all(settings.for_seed(seed) == KVSettings() for seed in range(5))
    assert settings.replay_command(2).endswith("--start 2 --no-swarm")


def test_the_same_seed_gives_the_same_trace_and_history() -> None:
    settings = KVSettings(swarm=True)
    first, second = run_kv(settings, 9, trace=True), run_kv(settings, 9, trace=True)
    assert "\n".join(first.trace).encode() == "\n".join(second.trace).encode()
    assert first.history == second.history and first.invoked >= 200
    assert first.mix == settings.for_seed(9) and first.settings == settings


def test_correct_code_is_clean_on_default_seeds() -> None:
    results = list(run_seeds(KVSettings(swarm=True), range(12)))
    assert [r.violations for r in results] == [()] * 12
    assert all(r.served_after_ticks is not None for r in results)
