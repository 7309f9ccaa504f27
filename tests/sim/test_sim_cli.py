"""The two simulator commands: `pypaxos synod` and `pypaxos sim synod`."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pypaxos.cli.main import main
from pypaxos.core.bugs import SynodBug


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(argv)
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("command", [["synod"], ["sim", "synod"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ["--proposers", "--acceptors", "--drop", "--crash", "--partition", "--bug"]:
        assert option in out


def test_synod_prints_a_trace_ending_with_the_chosen_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines = run_cli(
        ["synod", "--proposers", "2", "--acceptors", "3", "--seed", "7"], capsys
    )
    assert status == 0
    assert lines[0].startswith("# pypaxos synod --proposers 2 --acceptors 3 --learners 2 ")
    assert lines[0].endswith("--seed 7")
    assert "liveness bound" in lines[1]
    assert any(" <- Prepare " in line for line in lines)
    assert lines[-1].startswith("chosen: v")
    assert "(learned by L1, L2 at t=" in lines[-1]


def test_synod_with_a_planted_bug_reports_the_violation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["synod", "--bug", "ignore-promised-values", "--drop", "0.1", "--seed", "0"]
    status, lines = run_cli(argv, capsys)
    assert status == 1
    assert lines[-1].startswith("VIOLATION: safety violation at step ")
    assert "seed 0: more than one value chosen" in lines[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["synod", "--drop", "2"],
        ["synod", "--bug", "no-such-bug"],
        ["synod", "--partition", "A1,Z9"],
        ["synod", "--max-delay", "30"],
        ["synod", "--proposers", "0"],
        ["synod", "--min-downtime", "0"],
        ["sim", "synod", "--seeds", "0"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "pypaxos: error:" in capsys.readouterr().err


def test_unparsable_option_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synod", "--seed", "seven"])
    assert exit_info.value.code == 2


def test_bug_list(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli(["sim", "synod", "--bug", "list"], capsys)
    assert status == 0
    assert len(lines) == len(SynodBug)
    for line, bug in zip(lines, SynodBug, strict=True):
        assert line.split()[0] == bug.value
        assert line.endswith(bug.description)


def test_sim_runs_seeds_and_reports_speed(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli(["sim", "synod", "--seeds", "50", "--start", "100"], capsys)
    assert status == 0
    assert lines[0] == "# seeds 100..149, swarm: each seed draws its own fault mix"
    assert lines[1].startswith("# pinned: nothing ")
    assert lines[-1].startswith("50 seed(s) run, 0 violation(s), ")
    assert lines[-1].endswith(" seeds/s")
    progress = [line for line in lines if line.startswith("  ")]
    assert 1 <= len(progress) <= 10


def test_sim_stops_at_the_first_violation_and_its_replay_command_reproduces_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines = run_cli(["sim", "synod", "--seeds", "200", "--bug", "small-quorum"], capsys)
    assert status == 1
    reports = [line for line in lines if line.startswith("seed ")]
    assert len(reports) == 1
    replay = next(line for line in lines if line.startswith("  replay: "))
    argv = shlex.split(replay.removeprefix("  replay: "))
    assert argv[0] == "pypaxos"
    replay_status, replay_lines = run_cli(argv[1:], capsys)
    assert replay_status == 1
    violation = reports[0].split(": ", 1)[1]
    assert replay_lines[-1] == f"VIOLATION: {violation}"


def test_sim_keep_going_reports_every_violating_seed(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sim", "synod", "--seeds", "30", "--keep-going", "--bug", "ignore-promised-values"]
    status, lines = run_cli(argv, capsys)
    assert status == 1
    reports = [line for line in lines if line.startswith("seed ")]
    assert len(reports) > 1
    assert lines[-1].startswith(f"30 seed(s) run, {len(reports)} violation(s), ")


def test_synod_svg_draws_one_arrow_per_message_of_the_trace(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from pypaxos.cli.main import main

    svg = tmp_path / "run.svg"
    assert main(["synod", "--seed", "7", "--drop", "0.2", "--svg", str(svg)]) == 0
    root = ET.fromstring(svg.read_text())
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for actor in ("P1", "P2", "A1", "A2", "A3", "L1", "L2"):
        assert actor in text
    assert "Prepare 0.4" in text and "Accepted" in text
    assert "✗" in text  # a message lost with --drop 0.2 is drawn as lost


def test_sim_no_swarm_runs_every_seed_with_the_fixed_faulty_mix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pypaxos.cli.sim_synod import FAULTY

    status, lines = run_cli(["sim", "synod", "--seeds", "20", "--no-swarm"], capsys)
    assert status == 0
    assert lines[0] == "# seeds 0..19 of: " + shlex.join(["pypaxos", "synod", *FAULTY.cli_args()])


def test_sim_prints_what_a_given_option_pins(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli(
        ["sim", "synod", "--seeds", "5", "--drop", "0.2", "--learners", "1"], capsys
    )
    assert status == 0
    assert lines[1].startswith("# pinned: --learners 1 --drop 0.2 ")
