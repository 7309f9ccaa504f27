"""Golden interaction scripts for the Multi-Paxos log: tests/interaction/log/*.txt.

Each file is a script for ``sim.log_script`` and its expected output.  Run with
PYPAXOS_REWRITE=1 to regenerate the files after an intended behaviour change, then review the
diff like any other code change (the convention of tests/test_interaction.py).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from pathlib import Path

import pytest

from pypaxos.multi import AcceptRecord, LogBug, MultiConfig, Role
from pypaxos.sim.log_script import LogInteraction, run_log_script
from pypaxos.sim.script import ScriptError

INTERACTION = Path(__file__).parent.parent / "interaction"
SCRIPTS = sorted((INTERACTION / "log").glob("*.txt"))
TIMEOUT_15 = "config election_timeout_min_ticks=15 election_timeout_max_ticks=15"


def commands_only(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("  "))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_golden_log_script(path: Path) -> None:
    expected = path.read_text()
    actual = run_log_script(commands_only(expected))
    if os.environ.get("PYPAXOS_REWRITE"):
        path.write_text(actual)
    assert actual == expected


def test_the_scripts_cover_the_log_and_each_opens_with_what_it_shows() -> None:
    stems = {p.stem for p in SCRIPTS}
    assert {
        "recovery",
        "noop-holes",
        "catch-up",
        "snapshot-install",
        "compaction",
        "thrifty",
        "step-down-quorum",
        "step-down-ballot",
        "read-index",
        "pre-vote",
    } <= stems
    for path in SCRIPTS:
        lines = path.read_text().splitlines()
        opening = [line for line in lines[:4] if line.startswith("# ")]
        assert 1 <= len(opening) <= 3 and lines[0].startswith("# "), path.name
        assert lines[len(opening)].startswith("> "), path.name


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_a_script_runs_the_same_twice(path: Path) -> None:
    script = commands_only(path.read_text())
    assert run_log_script(script) == run_log_script(script)


def test_the_single_decree_runner_globs_only_its_own_level() -> None:
    spec = importlib.util.spec_from_file_location(
        "synod_interaction", INTERACTION.parent / "test_interaction.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    synod_scripts = set(module.SCRIPTS)
    assert synod_scripts == set(INTERACTION.glob("*.txt")) and synod_scripts
    assert not synod_scripts & set(SCRIPTS)


def test_a_planted_bug_changes_the_golden_output() -> None:
    """``no-repropose``: the new leader ignores the vote for x that its promise quorum reported."""
    path = INTERACTION / "log" / "recovery.txt"
    golden = path.read_text()
    buggy = run_log_script(commands_only(golden), bugs=frozenset({LogBug.NO_REPROPOSE}))
    assert buggy != golden
    re_proposal = "  N3 writes own vote accept slot=0 [x]@0.3"
    assert re_proposal in golden.splitlines()
    assert re_proposal not in buggy.splitlines()


# -- the driver ---------------------------------------------------------------------------------


def world() -> LogInteraction:
    """The classic election (no pre-vote), as the golden scripts run it."""
    timeouts = MultiConfig(election_timeout_min_ticks=15, election_timeout_max_ticks=15)
    return LogInteraction(replace(timeouts, pre_vote=False))


def elect_n1(w: LogInteraction) -> None:
    w.run("tick N1 until")
    w.run("deliver all")
    assert w.nodes[1].role is Role.LEADER


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("teleport N1", "unknown command"),
        ("crash N9", "no node named 'N9'"),
        ("propose X1 a", "no node named 'X1'"),
        ("deliver N1 N2", "no message in flight from N1 to N2"),
        ("deliver N2", "no message in flight to N2"),
        ("drop N3", "no message in flight to N3"),
        ("deliver next", "no message in flight"),
        ("dup N2 N1", "no message in flight from N2 to N1"),
        ("propose N1", "at least one command"),
        ("tick N1 0", "tick count"),
        ("tick N1 soon", "tick count"),
        ("tick all until", "one node"),
        ("sync N1 sometimes", "manual or auto"),
        ("restart N1", "not down"),
        ("partition N1 / N1", "no node twice"),
        ("partition N1 N2 N3", "two groups"),
        ("heal now", "0 to 0 arguments"),
        ("config nodes=5", "first command"),
    ],
)
def test_a_bad_line_is_a_clear_script_error(line: str, problem: str) -> None:
    with pytest.raises(ScriptError, match=problem):
        world().run(line)


def test_a_crashed_node_takes_no_input_until_restarted() -> None:
    w = world()
    w.run("crash N2")
    for line in ("propose N2 x", "tick N2", "sync N2", "crash N2"):
        with pytest.raises(ScriptError, match="N2 is down"):
            w.run(line)
    assert w.run("restart N2")[0] == "  N2 restarted from 0 records"


def test_tick_until_gives_up_when_nothing_ever_happens() -> None:
    w = LogInteraction(MultiConfig(node_ids=(1,)))
    w.run("tick N1 until")  # alone, it elects itself
    assert w.nodes[1].role is Role.LEADER
    with pytest.raises(ScriptError, match="nothing happened"):
        w.run("tick N1 until")  # a leader with no peers sends no heartbeats


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("config windows=3", "no setting"),
        ("config thrifty=maybe", "no setting"),
        ("config nodes=three", "whole number"),
        ("config election_timeout_min_ticks=10", "leader_stickiness_ticks"),
        ("config bugs=no-such-bug", "no-such-bug"),
        ("config seed", "key=value"),
    ],
)
def test_a_bad_config_is_a_clear_script_error(config: str, problem: str) -> None:
    with pytest.raises(ScriptError, match=problem):
        run_log_script(f"> {config}\n")


def test_config_sets_the_cluster_and_a_late_config_is_refused() -> None:
    out = run_log_script("> config nodes=5 thrifty=on window_slots=2\n> state\n")
    assert [line.split(":")[0] for line in out.splitlines()[2:]] == [f"  N{i}" for i in range(1, 6)]
    with pytest.raises(ScriptError, match="first command"):
        run_log_script("> state\n> config nodes=5\n")


def test_an_unsynced_own_vote_is_lost_by_a_crash_and_a_synced_one_survives() -> None:
    w = world()
    elect_n1(w)
    w.run("sync N1 manual")
    w.run("propose N1 x")
    assert not any(isinstance(r, AcceptRecord) for r in w.disks[1])
    w.run("sync N1")  # an fsync: the vote is durable and the node hears synced
    w.run("propose N1 y")
    assert w.run("crash N1") == ["  N1 crashed", "  N1 lost unsynced accept slot=1 [y]@0.1"]
    w.run("restart N1")
    assert sorted(w.nodes[1].acceptor.accepted) == [0]


def test_a_persist_also_makes_the_earlier_own_votes_durable() -> None:
    """One fsync covers the whole log: a promise written after an own vote carries it along."""
    w = world()
    elect_n1(w)
    w.run("sync N1 manual")
    w.run("partition N1")
    w.run("propose N1 x")
    w.run("tick N1 20")  # no answers: N1 steps down, its own vote still in the page cache
    assert w.nodes[1].role is Role.FOLLOWER
    w.run("heal")
    w.run("tick N2 until")  # N2 campaigns; N1 promises, which persists a PromiseRecord
    assert w.run("deliver N2 N1")[0] == "  N1 persists promise 0.2"
    assert w.run("crash N1") == ["  N1 crashed"]
    assert [r.slot for r in w.disks[1] if isinstance(r, AcceptRecord)] == [0]


def test_a_partition_loses_the_messages_across_it_until_healed() -> None:
    w = world()
    elect_n1(w)
    assert w.run("partition N3") == ["  partition: N3 / N1 N2"]
    w.run("propose N1 x")
    out = w.run("deliver N1 N3")
    assert out == ["  partitioned: N1 -> N3  Accept 0.1 slot=0 [x] commit=0 lost"]
    assert w.nodes[3].acceptor.accepted == {}
    w.run("heal")
    w.run("dup N1 N2")
    w.run("deliver N1 N2")
    assert w.run("deliver N1 N2") == ["  N2 -> N1  Accepted 0.1 slot=0"]  # the duplicate


def test_sends_are_printed_and_queued_in_order_of_destination() -> None:
    w = world()
    out = w.run("tick N1 until")
    sends = [line for line in out if " -> " in line]
    assert sends == ["  N1 -> N2  Prepare 0.1 from_slot=0", "  N1 -> N3  Prepare 0.1 from_slot=0"]
    assert [(m.sender, m.to) for m in w.in_flight] == [(1, 2), (1, 3)]


def test_pending_lists_the_messages_in_flight_and_deliver_next_takes_the_oldest() -> None:
    w = world()
    assert w.run("pending") == ["  (nothing in flight)"]
    w.run("tick N1 until")
    assert w.run("pending") == [
        "  N1 -> N2  Prepare 0.1 from_slot=0",
        "  N1 -> N3  Prepare 0.1 from_slot=0",
    ]
    assert w.run("deliver next") == [
        "  N2 persists promise 0.1",
        "  N2 -> N1  Promise 0.1 log_start=0 commit=0 votes=()",
    ]
    assert [(m.sender, m.to) for m in w.in_flight] == [(1, 3), (2, 1)]
