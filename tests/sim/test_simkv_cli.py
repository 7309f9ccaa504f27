"""``pypaxos sim kv``: settings first, violations with a replay command, summary, exit codes."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest

from pypaxos.cli import sim_kv as cmd_sim_kv
from pypaxos.kv import KvBug
from pypaxos.lincheck.wgl import check_history, parse_history
from pypaxos.multi import LogBug


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pypaxos sim kv")
    cmd_sim_kv.add_arguments(parser)
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    return cmd_sim_kv.run(parse(argv))


def test_clean_seeds_exit_0_and_report_throughput_and_leaders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["--nodes", "3", "--clients", "5", "--ops", "200", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# pypaxos sim kv --nodes 3 --clients 5 --ops 200 --seeds 3 --start 0")
    assert "liveness bound:" in out and "derived from the election timeout" in out
    assert "seeds: 3, violations: 0" in out
    assert "simulated ops/s:" in out
    assert "leader changes seen:" in out
    assert "served again after the heal within" in out


def test_a_violation_exits_1_with_a_replay_command_that_reproduces_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["--seeds", "3", "--start", "4", "--bug", "no-repropose"]) == 1
    out = capsys.readouterr().out
    replays = [line.split("replay: ", 1)[1] for line in out.splitlines() if "replay: " in line]
    assert replays and "VIOLATION (seed" in out
    words = shlex.split(replays[0])
    assert words[:3] == ["pypaxos", "sim", "kv"] and "--bug" in words
    assert run(words[3:]) == 1
    again = capsys.readouterr().out
    assert "seeds: 1, violations: 1" in again


def test_bug_list_names_every_multi_bug(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--bug", "list"]) == 0
    out = capsys.readouterr().out
    for bug in [*LogBug, *KvBug]:
        assert bug.value in out and bug.description in out
    assert "KV bugs" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--bug", "no-such-bug"],
        ["--seeds", "0"],
        ["--nodes", "0"],
        ["--clients", "0"],
        ["--ops", "0"],
        ["--start", "-1"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert "error" in capsys.readouterr().err


def test_history_dir_gets_one_linearizable_jsonl_file_per_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "histories"
    argv = ["--seeds", "2", "--start", "7", "--nodes", "5", "--no-collections"]
    assert run([*argv, "--history", str(target)]) == 0
    files = sorted(p.name for p in target.iterdir())
    assert files == ["seed-7.jsonl", "seed-8.jsonl"]
    for name in files:
        with open(target / name, encoding="utf-8") as stream:
            history = parse_history(stream)
        assert len(history.operations) + history.failed == 203  # fail-ed ops are counted apart
        assert check_history(history).ok
    capsys.readouterr()
