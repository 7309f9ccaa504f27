"""The simulated network: loss, duplication, bounded delays, partitions."""

from __future__ import annotations

import random

import pytest

from pypaxos.sim.network import DELIVERED, DROPPED, PARTITIONED, Network, NetworkSettings
from pypaxos.sim.steps import Deliver, Drop
from pypaxos.sim.synod import SynodSettings, run_synod


def test_reliable_network_delivers_one_copy_within_the_delay_range() -> None:
    net = Network(random.Random(1), NetworkSettings(delay_min_ticks=3, delay_max_ticks=7))
    seen = set()
    for _ in range(2000):
        lost, delays = net.route(1, 2)
        assert lost == DELIVERED
        assert len(delays) == 1
        seen.add(delays[0])
    assert seen == set(range(3, 8))  # every delay in range happens, nothing outside it


def test_drop_and_dup_probabilities_are_roughly_honoured() -> None:
    net = Network(random.Random(2), NetworkSettings(drop_prob=0.3, dup_prob=0.5))
    routes = [net.route(1, 2) for _ in range(10_000)]
    dropped = sum(1 for lost, _ in routes if lost == DROPPED)
    doubled = sum(1 for _, delays in routes if len(delays) == 2)
    assert 2700 < dropped < 3300
    assert 3200 < doubled < 3800  # half of the 70% that got through


def test_certain_loss_and_certain_duplication() -> None:
    assert Network(random.Random(3), NetworkSettings(drop_prob=1.0)).route(1, 2) == (DROPPED, ())
    lost, delays = Network(random.Random(3), NetworkSettings(dup_prob=1.0)).route(1, 2)
    assert lost == DELIVERED and len(delays) == 2


def test_partition_blocks_only_messages_between_groups() -> None:
    net = Network(random.Random(4))
    net.split([{1, 2}, {3}])
    assert net.route(1, 2)[0] == DELIVERED
    assert net.route(2, 1)[0] == DELIVERED
    assert net.route(1, 3) == (PARTITIONED, ())
    assert net.route(3, 2) == (PARTITIONED, ())
    # Unlisted actors form one more group together.
    assert net.route(4, 5)[0] == DELIVERED
    assert net.route(4, 3) == (PARTITIONED, ())
    net.split(None)
    assert net.route(1, 3)[0] == DELIVERED


def test_an_actor_cannot_be_in_two_groups() -> None:
    with pytest.raises(ValueError, match="two partition groups"):
        Network(random.Random(5)).split([{1, 2}, {2, 3}])


@pytest.mark.parametrize(
    "settings",
    [
        {"drop_prob": -0.1},
        {"dup_prob": 1.5},
        {"delay_min_ticks": 0},
        {"delay_min_ticks": 5, "delay_max_ticks": 4},
    ],
)
def test_bad_network_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        NetworkSettings(**settings)  # type: ignore[arg-type]


def test_a_partitioned_learner_learns_nothing_until_the_heal() -> None:
    # P2 and L2 are cut off from everyone else for the whole fault phase.
    settings = SynodSettings(partition="P2,L2", fault_ticks=200)
    config = settings.config()
    cut_off = {config.proposer_ids[1], config.learner_ids[1]}
    for seed in range(5):
        result = run_synod(settings, seed, trace=True)
        assert result.violation is None
        crossing: list[tuple[int, Deliver | Drop]] = []
        for event in result.events:
            match event.entry:
                case Deliver(to=to, message=msg) | Drop(to=to, message=msg):
                    if (msg.sender in cut_off) != (to in cut_off):
                        crossing.append((event.time, event.entry))
        before_heal = [step for time, step in crossing if time < 200]
        after_heal = [step for time, step in crossing if time >= 200]
        assert before_heal, "P2 and L2 should have tried to talk"
        # Lost as they were sent (there is no random loss here): the partition.
        assert all(isinstance(step, Drop) for step in before_heal)
        assert any(isinstance(step, Deliver) for step in after_heal)
        learned = {name: time for name, _, time in result.learned}
        assert learned["L1"] < 200 <= learned["L2"]
