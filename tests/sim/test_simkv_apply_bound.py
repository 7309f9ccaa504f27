"""The KV simulator with the runtime's apply bound (``MultiConfig.apply_max_commands``): every
node applies a run of decided slots over several inputs.  Runs stay clean (linearizable, the
replicas agreeing), a planted bug is still caught, and the setting replays from the command
line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.cli.main import main
from pypaxos.kv import KvBug
from pypaxos.multi import Effect, LogBug
from pypaxos.multi.replica import Replica
from pypaxos.sim.kv import KVSettings, first_violation, run_kv, run_seeds

BOUNDED = KVSettings(swarm=True, apply_max_commands=2)
SEEDS = 24


def test_bounded_runs_are_clean_and_really_cut_runs_of_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuts = 0
    apply_ready = Replica._apply_ready

    def counting(replica: Replica) -> list[Effect]:
        nonlocal cuts
        effects = apply_ready(replica)
        cuts += replica.apply_pending  # the bound left ready slots for a later input
        return effects

    monkeypatch.setattr(Replica, "_apply_ready", counting)
    for result in run_seeds(BOUNDED, range(SEEDS)):
        assert result.violations == (), (result.seed, result.violations)
    assert cuts > 50
    assert BOUNDED.for_seed(3).config().apply_max_commands == 2


def test_with_collections_and_the_bound_runs_stay_clean() -> None:
    settings = replace(BOUNDED, collections=True, pinned=frozenset({"collections"}))
    for result in run_seeds(settings, range(8)):
        assert result.violations == (), (result.seed, result.violations)


def test_a_planted_log_bug_is_still_caught_with_the_bound() -> None:
    planted = replace(BOUNDED, bugs=frozenset({LogBug.COMPACT_BEFORE_SNAPSHOT_SAVED}))
    caught = first_violation(planted, range(40))
    assert caught is not None
    assert "--apply-max-commands 2" in caught.settings.replay_command(caught.seed)
    assert run_kv(planted, caught.seed).violations == caught.violations  # replays


def test_a_planted_kv_bug_is_still_caught_with_the_bound() -> None:
    planted = replace(
        BOUNDED,
        collections=True,
        pinned=frozenset({"collections"}),
        bugs=frozenset({KvBug.LIST_RESTORED_REVERSED}),
    )
    assert first_violation(planted, range(40)) is not None


def test_the_command_line_sets_the_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "kv", "--seeds", "2", "--apply-max-commands", "2"]) == 0
    assert "--apply-max-commands 2" in capsys.readouterr().out
