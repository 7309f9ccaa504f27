"""The KV simulator with the in-memory log bounded apart from the snapshot interval
(``MultiConfig.log_memory_bytes_max``): a bound of a few commands and snapshots three times
rarer, so applied values and votes go from memory far above the durable snapshot and nodes
that fall behind are sent snapshots taken for them.  Runs stay clean (linearizable, the
replicas agreeing), the new path really runs, a planted bug of it is caught, and the setting
replays from the command line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pypaxos.cli.main import main
from pypaxos.multi import LogBug, TakeSnapshot
from pypaxos.multi.acceptor import SlotAcceptor
from pypaxos.multi.replica import Replica
from pypaxos.sim.kv import KVSettings, first_violation, run_kv, run_seeds

LOOSE = KVSettings(swarm=True, log_memory_bytes_max=64)
SEEDS = 24
FORGOTTEN_VOTES_SEEDS = 60  # the first catching seed was 4


def test_loose_runs_are_clean_and_really_forget_above_the_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    floors = forced = 0
    forget_chosen = SlotAcceptor.forget_chosen
    answer_catch_up = Replica.answer_catch_up

    def counting_floors(acceptor: SlotAcceptor, slot: int) -> None:
        nonlocal floors
        floors += slot > max(acceptor.log_start, acceptor.chosen_floor)
        forget_chosen(acceptor, slot)

    def counting_forced(replica: Replica, asker: int, from_slot: int) -> list[object]:
        nonlocal forced
        answer = answer_catch_up(replica, asker, from_slot)
        forced += any(isinstance(e, TakeSnapshot) for e in answer)
        return answer

    monkeypatch.setattr(SlotAcceptor, "forget_chosen", counting_floors)
    monkeypatch.setattr(Replica, "answer_catch_up", counting_forced)
    for result in run_seeds(LOOSE, range(SEEDS)):
        assert result.violations == (), (result.seed, result.violations)
    assert floors > 100  # votes went from memory above the snapshot, many times
    assert forced > 0  # and catch-ups asked for snapshots taken for them
    config = LOOSE.for_seed(3).config()
    assert config.log_memory_bytes_max == 64 and config.snapshot_every_slots > 8


def test_with_reconfiguration_and_the_bound_runs_stay_clean() -> None:
    settings = replace(LOOSE, reconfig=True, pinned=frozenset({"reconfig"}))
    for result in run_seeds(settings, range(8)):
        assert result.violations == (), (result.seed, result.violations)


def test_a_promise_hiding_the_forgotten_votes_is_caught() -> None:
    planted = replace(LOOSE, bugs=frozenset({LogBug.FORGOTTEN_VOTES_UNREPORTED}))
    caught = first_violation(planted, range(FORGOTTEN_VOTES_SEEDS))
    assert caught is not None
    assert "--log-memory-bytes-max 64" in caught.settings.replay_command(caught.seed)
    assert run_kv(planted, caught.seed).violations == caught.violations  # replays
    clean = replace(LOOSE, bugs=frozenset())
    assert run_kv(clean, caught.seed).violations == ()  # the same run is safe without it


def test_the_command_line_sets_the_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "kv", "--seeds", "2", "--log-memory-bytes-max", "64"]) == 0
    assert "--log-memory-bytes-max 64" in capsys.readouterr().out
