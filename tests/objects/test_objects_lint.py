"""The nondeterminism linter and its command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from objects_lint_bait import Bait

from pypaxos.cli.main import main
from pypaxos.objects import Counter
from pypaxos.testing import RULES, lint

EXPECTED = {
    ("clock", "clock"),
    ("clock_alias", "clock"),
    ("today", "clock"),
    ("dice", "random"),
    ("unique", "random"),
    ("pid", "environment"),
    ("identity", "identity"),
    ("hashed", "identity"),
    ("loop_over_set", "set-order"),
    ("joined", "set-order"),
    ("listed", "set-order"),
    ("popped", "set-order"),
    ("local_set", "set-order"),
    ("_helper", "random"),
    ("global_state", "global-state"),
    ("thread", "threads"),
    ("io", "io"),
    ("imports_inside", "clock"),
}


def test_every_planted_source_of_nondeterminism_is_flagged() -> None:
    found = {(f.method, f.rule) for f in lint(Bait)}
    assert found >= EXPECTED
    assert {method for method, _ in found} == {method for method, _ in EXPECTED}


def test_findings_point_at_the_line_and_name_the_rule() -> None:
    source = Path(sys.modules[Bait.__module__].__file__ or "").read_text().splitlines()
    for finding in lint(Bait):
        assert finding.rule in RULES
        assert finding.path.endswith("objects_lint_bait.py")
        assert finding.cls == "Bait"
        line = source[finding.line - 1]
        assert line.strip(), finding
        assert f"[{finding.rule}]" in str(finding)


def test_a_clean_method_and_a_read_are_not_flagged() -> None:
    methods = {f.method for f in lint(Bait)}
    assert "fine" not in methods and "read_only" not in methods


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint-machine", "objects_lint_bait:Bait"]) == 1
    out = capsys.readouterr().out
    assert "Bait.clock: [clock]" in out and "Bait.popped: [set-order]" in out
    assert main(["lint-machine", f"{Counter.__module__}:Counter"]) == 0
    assert main(["lint-machine", "no_such_module_here:Thing"]) == 2
    assert main(["lint-machine", "objects_lint_bait"]) == 2
    assert main(["lint-machine", "objects_lint_bait:COUNTER"]) == 2
    assert main(["lint-machine", "--rules", "x:y"]) == 0
    assert "set-order" in capsys.readouterr().out


def test_cli_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pypaxos", "lint-machine", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "MODULE:CLASS" in done.stdout


def test_os_urandom_is_a_random_value_not_the_environment() -> None:
    from objects_lint_bait import Entropy

    assert [(f.method, f.rule) for f in lint(Entropy)] == [("reseed", "random")]
