"""The growth schedule (``MultiConfig.snapshot_growth_percent``): a snapshot copies the whole
state, so it is asked for once the commands applied since the last one reach a share of that
snapshot's size; the bytes copied per byte applied then stay the same however large the state,
where a fixed interval copies more per write the larger the state."""

from __future__ import annotations

import pytest
from multi_harness import Cluster, LogMachine

from pypaxos.multi import Entry, MultiConfig, TakeSnapshot
from pypaxos.multi.replica import Replica

COMMAND_BYTES = 100
RETAINED_BYTES_MAX = 8_000  # the fixed interval (and the growth schedule's floor): 4,000 bytes


def _replica(growth_percent: int, every_slots: int = 1_000_000) -> Replica:
    return Replica(
        1,
        LogMachine(),
        every_slots,
        64,
        1_000,
        log_retained_bytes_max=RETAINED_BYTES_MAX,
        snapshot_growth_percent=growth_percent,
        snapshot_lag_bytes_max=50_000,
    )


def _copied_per_applied_byte(replica: Replica, state_bytes: int, applied_bytes: int) -> float:
    """Apply ``applied_bytes`` of commands, one per slot, to a state that stays
    ``state_bytes`` large (writes overwriting keys); each snapshot asked for is saved at once
    at that size.  The bytes the snapshots copied per byte applied."""
    replica.snapshot_size_known(state_bytes)  # as after a restart from a snapshot that large
    copied = 0
    for slot in range(applied_bytes // COMMAND_BYTES):
        effects = replica.learn(slot, (Entry(2, slot, b"c" * COMMAND_BYTES),))
        for effect in effects:
            if isinstance(effect, TakeSnapshot):
                replica.snapshot_saved(effect.slot, state_bytes)
                copied += state_bytes
    assert replica.applied_index == applied_bytes // COMMAND_BYTES
    return copied / applied_bytes


@pytest.mark.parametrize("state_bytes", [20_000, 200_000, 2_000_000])
def test_the_copy_per_write_does_not_grow_with_the_state(state_bytes: int) -> None:
    replica = _replica(growth_percent=25)
    ratio = _copied_per_applied_byte(replica, state_bytes, 4_000_000)
    # One snapshot per a quarter of the state applied: four bytes copied per byte, and less
    # while the floor is the larger interval (the smallest state).
    assert ratio <= 100 / 25
    if state_bytes * 25 // 100 > RETAINED_BYTES_MAX // 2:
        assert ratio >= 0.9 * 100 / 25  # the schedule is not just rarer: it is that share


def test_with_a_fixed_interval_the_copy_per_write_grows_with_the_state() -> None:
    """The same runs without the growth schedule: the check above can fail."""
    small = _copied_per_applied_byte(_replica(growth_percent=0), 20_000, 400_000)
    large = _copied_per_applied_byte(_replica(growth_percent=0), 2_000_000, 400_000)
    assert small == pytest.approx(20_000 / (RETAINED_BYTES_MAX // 2))
    assert large >= 90 * small  # a hundred times the state, about a hundred times the copy


def test_the_slot_interval_stretches_with_the_byte_interval() -> None:
    """Few bytes per slot: ``snapshot_every_slots`` is the trigger; under the growth schedule
    it stretches as the byte interval does, so the copy per write stays flat there too."""
    copies = [
        _copied_per_applied_byte(_replica(25, every_slots=16), state_bytes, 2_000_000)
        for state_bytes in (200_000, 2_000_000)
    ]
    fixed_interval = 16 * COMMAND_BYTES  # below the byte floor: the slots decide
    assert copies[0] < 200_000 / fixed_interval / 2  # stretched: far fewer snapshots
    assert copies[1] == pytest.approx(copies[0], rel=0.1)


def test_the_interval_has_the_floor_and_an_unknown_size_keeps_the_last() -> None:
    replica = _replica(growth_percent=50)
    assert replica.snapshot_interval_bytes() == RETAINED_BYTES_MAX // 2  # nothing known yet
    replica.snapshot_size_known(1_000)  # a tiny state: the floor still holds
    assert replica.snapshot_interval_bytes() == RETAINED_BYTES_MAX // 2
    replica.snapshot_size_known(100_000)
    assert replica.snapshot_interval_bytes() == 50_000
    replica.snapshot_size_known(0)  # a shell that does not know the size: the last stays
    assert replica.snapshot_interval_bytes() == 50_000
    off = _replica(growth_percent=0)
    off.snapshot_size_known(100_000)
    assert off.snapshot_interval_bytes() == RETAINED_BYTES_MAX // 2


def test_the_backstop_is_at_least_twice_the_interval() -> None:
    replica = _replica(growth_percent=50)
    assert replica.snapshot_lag_bound_bytes() == 50_000  # the configured bound
    replica.snapshot_size_known(400_000)  # interval 200,000
    assert replica.snapshot_lag_bound_bytes() == 400_000
    off = _replica(growth_percent=0)
    off.snapshot_size_known(400_000)
    assert off.snapshot_lag_bound_bytes() == 50_000


@pytest.mark.parametrize("percent", [-1, 101])
def test_the_percentage_is_checked(percent: int) -> None:
    with pytest.raises(ValueError, match="snapshot_growth_percent"):
        MultiConfig(snapshot_growth_percent=percent)


def _stalled_at(growth_percent: int, state_bytes: int) -> int:
    """One command per slot, snapshots asked for and never saved; the leader's applied index
    once writes stop at the backstop (40 commands' bytes as configured)."""
    c = Cluster(
        3,
        seed=5,
        window_slots=4,
        snapshot_every_slots=8,
        log_window_slots=16,
        batch_max_commands=1,
        log_retained_bytes_max=8 * COMMAND_BYTES,
        snapshot_lag_bytes_max=40 * COMMAND_BYTES,
        snapshot_growth_percent=growth_percent,
    )
    c.snapshot_save_ticks = 10**9
    for node in c.nodes.values():
        node.snapshot_size_known(state_bytes)
    leader = c.elect()
    for request_id in range(300):
        c.propose(leader, request_id, b"%06d" % request_id + b"x" * (COMMAND_BYTES - 6))
    for _ in range(800):
        c.tick()
    assert (leader, 299) not in c.replies
    assert not c.safety_problems()
    return c.nodes[leader].applied_index


def test_the_window_is_held_at_the_scaled_backstop() -> None:
    # A state of 100 commands' bytes at 50 %: interval 50 commands, backstop 100 (not 40).
    fixed = _stalled_at(growth_percent=0, state_bytes=100 * COMMAND_BYTES)
    grown = _stalled_at(growth_percent=50, state_bytes=100 * COMMAND_BYTES)
    assert 40 <= fixed <= 40 + 16 + 4
    assert 100 <= grown <= 100 + 16 + 4
