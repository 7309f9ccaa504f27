"""Golden interaction scripts: each tests/interaction/*.txt is a script and its expected output.

Run with PYPAXOS_REWRITE=1 to regenerate the files after an intended behaviour change, then
review the diff like any other code change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pypaxos.core.bugs import SynodBug
from pypaxos.core.messages import Prepare
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import Ballot
from pypaxos.sim.script import (
    DeliverEach,
    Duplicate,
    Interaction,
    Pending,
    ScriptError,
    ShowState,
    run_script,
)
from pypaxos.sim.steps import (
    Crash,
    Deliver,
    Drop,
    Flush,
    Propose,
    Reboot,
    Restart,
    Timer,
    parse_step,
)

SCRIPTS = sorted((Path(__file__).parent / "interaction").glob("*.txt"))


def commands_only(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("  "))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_golden_script(path: Path) -> None:
    expected = path.read_text()
    actual = run_script(commands_only(expected))
    if os.environ.get("PYPAXOS_REWRITE"):
        path.write_text(actual)
    assert actual == expected


def test_scripts_exist() -> None:
    assert len(SCRIPTS) >= 5


def test_unknown_command_and_actor_are_clear_errors() -> None:
    world = Interaction(SynodConfig())
    with pytest.raises(ScriptError, match="unknown command"):
        world.run("teleport P1")
    with pytest.raises(ScriptError, match="no actor named 'Z9'"):
        world.run("crash Z9")
    with pytest.raises(ScriptError, match="no message in flight"):
        world.run("deliver P1 A1")


def test_each_line_reads_as_a_typed_record() -> None:
    world = Interaction(SynodConfig())
    p1, a1 = world.by_name["P1"], world.by_name["A1"]
    assert world.parse("propose P1 x") == Propose(p1, "x")
    world.run("propose P1 x")
    prepare = Prepare(p1, Ballot(0, p1))
    # A message is named by what it is: the oldest one from P1 to A1.
    assert world.parse("deliver P1 A1") == Deliver(a1, prepare)
    assert world.parse("drop P1 A1") == Drop(a1, prepare)
    assert world.parse("dup P1 A1") == Duplicate(a1, prepare)
    assert world.parse("deliver A1") == DeliverEach(a1)
    assert world.parse("deliver all") == DeliverEach(None)
    assert world.parse("timer P1 phase") == Timer(p1, "phase")
    assert world.parse("crash A1") == Crash(a1)
    assert world.parse("restart A1") == Restart(a1)
    assert world.parse("reboot A1") == Reboot(a1)
    assert world.parse("flush A1") == Flush(a1)
    assert world.parse("pending") == Pending()
    assert world.parse("state") == ShowState()


def test_a_step_in_the_one_text_form_runs_as_its_script_line_does() -> None:
    # The records a checker or a simulator prints drive a script world directly.
    config = SynodConfig()
    by_line, by_step = Interaction(config), Interaction(config)
    pairs = [
        ("propose P1 x", "P1 proposes x"),
        ("deliver P1 A1", "A1 <- Prepare 0.4 from P1"),
        ("drop P1 A2", "A2 <-x Prepare 0.4 from P1"),
        ("deliver A1 P1", "P1 <- Promise 0.4 (nothing accepted) from A1"),
        ("crash A1", "A1 crashes"),
        ("restart A1", "A1 restarts from its disk"),
        ("timer P1 phase", "P1's phase timer fires"),
    ]
    for line, text in pairs:
        assert by_step.execute_command(parse_step(text, config)) == by_line.run(line), line
    assert by_step.run("state") == by_line.run("state")


def test_reboot_and_flush_follow_the_disk() -> None:
    # Only this planted bug leaves a write unsynced (the acceptor replies before it persists).
    world = Interaction(SynodConfig(bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST})))
    world.run("propose P1 x")
    assert world.run("deliver P1 A1")[0] == "  A1 persists (unsynced)"
    assert world.run("reboot A1") == ["  A1 crashed", "  A1 restarted: promised=⊥ accepted=⊥"]
    world.run("deliver P1 A2")
    assert world.run("flush A2") == ["  A2's disk flushes its unsynced write"]
    assert world.run("reboot A2")[-1] == "  A2 restarted: promised=0.4 accepted=⊥"
    with pytest.raises(ScriptError, match="A1 has no unsynced write to flush"):
        world.run("flush A1")


def test_a_known_command_with_the_wrong_words_shows_its_usage() -> None:
    world = Interaction(SynodConfig())
    with pytest.raises(
        ScriptError, match=re.escape("usage: deliver P1 A2 | deliver A2 | deliver all")
    ):
        world.run("deliver P1 A1 A2")
    with pytest.raises(ScriptError, match="usage: propose P1 x"):
        world.run("propose P1")
