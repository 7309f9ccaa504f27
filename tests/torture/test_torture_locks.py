"""The lock workload's verdict on hand-made resource logs, and ``pypaxos torture --locks``
end to end: clean under partitions, kills and pauses, each planted ``LockBug`` caught.

The end-to-end runs are short (12 s of faults, fixed seed).  Holders stall past their lease on
purpose (``torture.locks``), so every run has late writes for the fence to refuse: the planted
bugs let one through whatever the nemesis does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pypaxos.torture.locks import LockBug, check_resource_log, entry

pytestmark = pytest.mark.timeout(400)


def test_sequential_holds_with_growing_tokens_are_clean() -> None:
    log = [
        entry(1, "a", "begin"),
        entry(1, "a", "end"),
        entry(2, "b", "begin"),
        entry(3, "c", "begin"),
    ]
    assert check_resource_log(log) == []


def test_a_lower_token_accepted_after_a_higher_one_is_caught() -> None:
    problems = check_resource_log([entry(4, "a", "begin"), entry(3, "b", "begin")])
    assert problems and "token 3 after token 4" in problems[0]


def test_two_holders_with_one_token_acting_at_once_are_caught() -> None:
    log = [entry(1, "a", "begin"), entry(1, "b", "begin"), entry(1, "a", "end")]
    problems = check_resource_log(log)
    assert problems and problems[0].startswith("holds overlap: b")


def test_an_unreadable_entry_is_a_problem() -> None:
    assert check_resource_log(["junk"]) == ["resource log entry 0 unreadable: 'junk'"]


def torture_locks(run: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-m", "pypaxos", "torture", "--out", str(run), "--time", "12",
         "--seed", "7", "--nemesis", "partition,kill,pause", "--mode", "loopback",
         "--clients", "2", "--locks", "3", "--agreement-rounds", "1", *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    return done.returncode, summary, done.stdout


def test_the_lock_recipe_is_clean_under_partition_kill_pause(tmp_path: Path) -> None:
    code, summary, out = torture_locks(tmp_path / "run")
    locks = summary["locks"]
    assert isinstance(locks, dict)
    assert code == 0, out
    assert locks["holds"] > 0 and locks["stalls"] > 0 and locks["accepted"] > 0
    assert locks["refused"] > 0  # stalled holders' late writes were fenced off


@pytest.mark.parametrize("bug", sorted(LockBug), ids=str)
def test_each_planted_lock_bug_is_caught(tmp_path: Path, bug: LockBug) -> None:
    code, summary, out = torture_locks(tmp_path / "run", "--lock-bug", bug.value)
    assert code == 1, out
    problems = summary["problems"]
    assert isinstance(problems, list)
    assert any(str(p).startswith("lock: holds overlap") for p in problems), problems
