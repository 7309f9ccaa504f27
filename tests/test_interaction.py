"""Golden interaction scripts: each tests/interaction/*.txt is a script and its expected output.

Run with PYPAXOS_REWRITE=1 to regenerate the files after an intended behaviour change, then
review the diff like any other code change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pypaxos.core.synod import SynodConfig
from pypaxos.sim.script import Interaction, ScriptError, run_script

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
