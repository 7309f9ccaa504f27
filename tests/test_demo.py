"""`pypaxos demo` (what `make demo` runs) walks through every section and its expected verdicts."""

from __future__ import annotations

import pytest

from pypaxos.cli.main import main


@pytest.mark.timeout(300)
def test_demo_runs_every_section_with_the_expected_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "L1 decides x" in out  # the scripted normal case
    assert "P2 -> A1  Accept 0.5 x" in out  # P2 adopted x, not its own y
    assert "chosen: v" in out  # the simulated run ends with its chosen value
    assert "violation" in out.lower()  # the planted bugs were caught
    assert "unexpected exit status" not in out
