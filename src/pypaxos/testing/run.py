"""``run_check`` (one seed) and ``check`` (many): the entry points of ``pypaxos.testing``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from pypaxos.objects import decode_result
from pypaxos.objects.codec import Raised, Rejected
from pypaxos.testing.replay import compare_in_children, factory_name
from pypaxos.testing.world import (
    FINISH_TICKS,
    CheckReport,
    CheckSettings,
    Factory,
    ObjectWorld,
    Workload,
    describe_history,
)


def run_check(
    factory: Factory, workload: Workload, seed: int = 0, settings: CheckSettings | None = None
) -> CheckReport:
    """Run ``factory``'s objects under faults for one ``seed`` and judge the run."""
    settings = settings or CheckSettings()
    world = ObjectWorld(factory, workload, seed, settings)
    lin_summary = "linearizability not checked"
    configurations = 0
    try:
        world.begin()
        finished = world.run_until(lambda: world.healed, 10 * FINISH_TICKS)
        if finished:
            deadline = world.heal_time + FINISH_TICKS
            everyone = len(world.client_ids)
            finished = world.run_until(
                lambda: len(world.done) == everyone and world.converged(), deadline
            )
        if not finished and not world.violations:
            world.violate(
                f"liveness: not every call finished and every node converged by "
                f"t={world.now} (heal at t={world.heal_time})"
            )
    except AssertionError as caught:  # a node's inline invariant
        world.violate(f"invariant at t={world.now}: {caught}")
    if not world.violations:
        world.check_replicas()
        # Judged even when the replicas disagree: its verdict often says why (a read that
        # changed state, a result no order explains).
        lin = world.check_linearizable()
        lin_summary, configurations = lin.summary(), lin.configurations
    if not world.violations:
        for problem in compare_in_children(
            factory, world.decided_commands(), settings.replay_hash_seeds
        ):
            world.violate(problem)
    rejected = _rejections(world)
    if rejected:
        world.violate(rejected)
    ok = sum(1 for op in world.ops if op.result is not None)
    return CheckReport(
        seed=seed,
        violations=tuple(world.violations),
        calls=len(world.ops) + len(world.open) + world.failed,
        ok=ok,
        unknown=len(world.ops) - ok + len(world.open),
        failed=world.failed,
        leader_changes=world.stats.changes,
        crashes=world.nemesis.crashes,
        partitions=world.nemesis.partitions,
        applied_slots=len(world.chosen),
        snapshots_sent=world.snapshots_sent,
        linearizability=lin_summary,
        search_configurations=configurations,
        history=describe_history(world.ops),
        replay=_replay_text(factory, seed, settings),
    )


def check(
    factory: Factory,
    workload: Workload,
    seeds: Iterable[int] = range(5),
    settings: CheckSettings | None = None,
) -> CheckReport:
    """``run_check`` for each seed; the first report with a violation, else the last one.

    Only the first seed's decided log is replayed in other interpreters (``testing.replay``,
    two child processes per replay): it is the slow check, and one log usually exercises every
    command.
    """
    settings = settings or CheckSettings()
    report: CheckReport | None = None
    for index, seed in enumerate(seeds):
        this = settings if index == 0 else replace(settings, replay_hash_seeds=())
        report = run_check(factory, workload, seed, this)
        if not report.passed:
            return report
    if report is None:
        raise ValueError("no seed to run")
    return report


def _rejections(world: ObjectWorld) -> str:
    """A workload whose calls the machine refuses tests nothing: say so."""
    for op in world.ops:
        if op.result is None:
            continue
        result = decode_result(op.result)
        if isinstance(result, Rejected):
            return f"the workload's call {op.describe()} was refused: fix the workload"
        if isinstance(result, Raised) and result.type_name == "UnencodableResult":
            return f"{op.describe()}: the method's return value cannot be encoded"
    return ""


def _replay_text(factory: Factory, seed: int, settings: CheckSettings) -> str:
    name = factory_name(factory) or repr(factory)
    return f"pypaxos.testing.run_check({name}, <workload>, seed={seed}, settings={settings!r})"
