"""``pypaxos.testing`` on the batteries (they must pass) and on planted nondeterminism and
planted machine bugs (they must be caught), under the simulator's faults."""

from __future__ import annotations

import random

import objects_workloads as workloads
import pytest

from pypaxos.objects import Counter, ObjectMachine, Set, encode_call
from pypaxos.objects.bugs import ObjectBug
from pypaxos.testing import CheckSettings, Invocation, Workload, check, run_check
from pypaxos.testing.replay import compare_in_children, factory_name

NO_REPLAY = CheckSettings(replay_hash_seeds=())
BUSY = CheckSettings(clients=5, calls=120, replay_hash_seeds=())
# Clients that give up after two short tries: most outcomes unknown, many retries in the log.
IMPATIENT = CheckSettings(
    clients=6,
    calls=200,
    drop=0.1,
    dup=0.0,
    attempts_max=2,
    timeout_ticks=15,
    snapshot_every_slots=20,
    replay_hash_seeds=(),
)


@pytest.mark.parametrize("name", sorted(workloads.BATTERIES))
def test_the_batteries_pass_under_faults(name: str) -> None:
    factory, workload = workloads.BATTERIES[name]
    crashes = leader_changes = 0
    for seed in range(8):
        report = run_check(factory, workload, seed, BUSY if seed % 2 else NO_REPLAY)
        assert report.passed, report.summary()
        assert report.linearizability.startswith("linearizable"), report.summary()
        assert report.ok > report.calls // 2
        # the search follows the run's own order first: a correct run costs one configuration
        # per operation (a few more where unknown outcomes or ties make it look around)
        assert report.search_configurations <= 2 * report.calls
        crashes += report.crashes
        leader_changes += report.leader_changes
    assert crashes > 0 and leader_changes > 1  # the faults really happened


@pytest.mark.parametrize("name", ["dict", "group"])
def test_the_batteries_give_the_same_results_under_other_hash_seeds(name: str) -> None:
    factory, workload = workloads.BATTERIES[name]
    report = run_check(factory, workload, 0)
    assert report.passed, report.summary()


@pytest.mark.parametrize(
    ("factory", "workload"),
    [
        (workloads.ClockStamped, workloads.stamp_calls),
        (workloads.DiceRoller, workloads.roll_calls),
        (workloads.TagList, workloads.tag_calls),
    ],
    ids=["clock", "random", "set-order"],
)
def test_planted_nondeterminism_is_caught_with_a_replayable_seed(
    factory: type, workload: Workload
) -> None:
    report = check(factory, workload, seeds=range(3))
    assert not report.passed
    assert f"seed={report.seed}" in report.replay and "seed" in report.summary()
    found = " ".join(report.violations)
    assert any(
        word in found for word in ("replicas disagree", "not linearizable", "nondeterministic")
    )


@pytest.mark.parametrize(
    "bug", [ObjectBug.RETRY_RUNS_AGAIN, ObjectBug.SNAPSHOT_DROPS_SESSIONS], ids=str
)
def test_planted_machine_bugs_are_caught(bug: ObjectBug) -> None:
    settings = CheckSettings(replay_hash_seeds=(), bugs=frozenset({bug}))
    report = check(Counter, workloads.counter, seeds=range(6), settings=settings)
    assert not report.passed
    found = " ".join(report.violations)
    # A retry applied twice shows in the history, or first as replicas that differ.
    assert "not linearizable" in found or "replicas disagree" in found


@pytest.mark.parametrize("name", ["counter", "list", "priority-queue"])
def test_histories_of_mostly_unknown_outcomes_are_decided(name: str) -> None:
    factory, workload = workloads.BATTERIES[name]
    unknown = 0
    for seed in (2010, 2050, 2066):
        report = run_check(factory, workload, seed, IMPATIENT)
        assert report.passed, report.summary()
        assert report.search_configurations <= 2 * report.calls
        unknown += report.unknown
    assert unknown > 100  # the point: many calls whose outcome the search must guess


def test_a_seed_replays_the_same_run() -> None:
    first = run_check(workloads.LockManager, workloads.lock_calls, 7, NO_REPLAY)
    again = run_check(workloads.LockManager, workloads.lock_calls, 7, NO_REPLAY)
    assert first == again
    other = run_check(workloads.LockManager, workloads.lock_calls, 8, NO_REPLAY)
    assert other.history != first.history


def tag_log() -> list[bytes]:
    rng = random.Random(3)
    commands = [encode_call(1, seq, "add", (f"tag-{rng.randint(0, 999)}",)) for seq in range(1, 30)]
    return [*commands, encode_call(1, 30, "listing")]


def test_the_replay_in_other_interpreters_finds_set_order_one_process_cannot() -> None:
    log = tag_log()
    here = [ObjectMachine(workloads.TagList()) for _ in range(2)]
    assert [m.apply(c) for c in log for m in here[:1]] == [here[1].apply(c) for c in log]
    problems = compare_in_children(workloads.TagList, log, (1, 2))
    assert problems and "PYTHONHASHSEED" in problems[0]


def test_the_replay_passes_a_deterministic_class() -> None:
    log = [encode_call(1, seq, "add", (f"m-{seq % 7}",)) for seq in range(1, 30)]
    log.append(encode_call(1, 30, "to_list"))
    assert compare_in_children(Set, log, (1, 2)) == []


def test_a_factory_a_child_cannot_import_skips_the_replay() -> None:
    def local_factory() -> Counter:
        return Counter()

    assert factory_name(local_factory) is None
    assert compare_in_children(local_factory, tag_log(), (1,)) == []
    assert factory_name(Counter) == "pypaxos.objects.batteries:Counter"


def test_a_workload_the_machine_refuses_is_reported() -> None:
    def bad_workload(rng: random.Random) -> Invocation:
        return Invocation("no_such_method")

    report = run_check(Counter, bad_workload, 0, NO_REPLAY)
    assert not report.passed and "fix the workload" in report.violations[0]

    def wrong_target(rng: random.Random) -> Invocation:
        return Invocation("add", (1,), target="nobody")

    report = run_check(Counter, wrong_target, 0, NO_REPLAY)
    assert not report.passed and "fix the workload" in report.violations[0]


def test_a_read_that_changes_state_is_caught() -> None:
    report = run_check(workloads.SneakyCounter, workloads.sneaky_calls, 0, NO_REPLAY)
    assert not report.passed
    found = " ".join(report.violations)
    assert "get_and_bump" in found and "@command" in found


def test_the_lock_manager_with_many_clients_and_refused_retries() -> None:
    """Refused calls (stale, expired sessions) happen here; they must not move the log's
    clock, or a lock lapses in the run but not in any sequential execution."""
    settings = CheckSettings(nodes=3, clients=5, calls=150, replay_hash_seeds=())
    refused = 0
    for seed in (85, 86, 87, 91):  # 91: refused calls with pre-vote (85-87 had them before)
        report = run_check(workloads.LockManager, workloads.lock_calls, seed, settings)
        assert report.passed, report.summary()
        refused += report.failed
    assert refused > 0


REOPEN_SEED = 1140
REOPEN_SETTINGS = CheckSettings(
    clients=2, calls=200, drop=0.0, dup=0.1, snapshot_every_slots=3, replay_hash_seeds=()
)


def test_refused_sessions_under_heavy_duplication_stay_linearizable() -> None:
    """The setting where a soak once found the ``expired-session-reopens`` interleaving (a
    client gives up on seq 1 and sends seq 2, which is decided first and refused; a late seq 1
    and a late copy of seq 2 follow).  Since snapshots are taken out of line the simulator's
    draws changed and no seed of 6,000 searched reaches it again, so the planted bug is shown
    caught at the machine level (``test_objects_machine``), where the interleaving is built by
    hand; here the correct machine must stay clean under that setting."""
    correct = run_check(workloads.small_queue, workloads.queue_calls, REOPEN_SEED, REOPEN_SETTINGS)
    assert correct.passed, correct.summary()
