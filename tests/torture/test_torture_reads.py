"""``pypaxos torture`` aimed at the read paths: a clean run in each read mode, the read bugs caught.

Each run has read-only clients bound to one node each (``--readers``), so a node cut off from
the others keeps being read while the rest of the cluster writes: a deposed leader that still
answers, or a follower that answers before it applied a finished write, shows as a history the
linearizability checker rejects.  Lease runs keep to the lease's clock assumption (the
``clock-drift`` nemesis skews a clock within the stated bound; the ``clock`` nemesis would break
it on purpose).

``lease-ignores-drift`` has no test here: within the drift bound its lease is one tick longer
than it should be, and with the runtime's timings (an election only after 0.5 s of silence,
longer than the 0.4 s lease) no leader can be elected inside that tick; runs of 20 s with
``isolate-leader,clock-drift`` were clean (docs/testing.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_torture_runs import leftover_processes, summary, torture

pytestmark = pytest.mark.timeout(400)

READERS = "--readers=3"

# (read mode, nemeses, extra flags): every run must be clean.
CLEAN = [
    ("log", "isolate-leader,pause", ()),
    ("read-index", "isolate-leader,pause", ()),
    ("follower", "isolate-leader,pause", ()),
    ("lease", "isolate-leader,pause,clock-drift", ()),
    ("lease", "isolate-leader", ("--lease-ticks=150",)),
]

# (bug, read mode, nemesis, extra flags, runs): caught if one of ``runs`` runs (seeds 1, 2, ...)
# is not linearizable; each was caught in every run tried (docs/testing.md).
CAUGHT = [
    ("read-index-without-confirmation", "read-index", "isolate-leader", (), 2),
    ("read-before-applied", "follower", "none", (), 2),
    ("new-leader-inside-lease", "lease", "isolate-leader", ("--lease-ticks=150",), 2),
]


@pytest.mark.parametrize(("mode", "nemesis", "extra"), CLEAN)
def test_a_read_mode_stays_linearizable_under_its_nemeses(
    tmp_path: Path, mode: str, nemesis: str, extra: tuple[str, ...]
) -> None:
    run = tmp_path / "run"
    code, lines = torture(
        run,
        "--time=12",
        f"--nemesis={nemesis}",
        f"--reads={mode}",
        READERS,
        "--mode=loopback",
        "--seed=21",
        "--agreement-rounds=1",
        *extra,
    )
    assert leftover_processes(run) == []
    assert code == 0, "\n".join(lines[-20:])
    assert lines[-1].endswith("verdict: clean")
    assert f"reads {mode}" in lines[0]
    result = summary(run)
    assert result["linearizable"] == "ok"
    faults = result["faults"]
    assert isinstance(faults, dict) and faults.get("partition", 0) >= 1


@pytest.mark.parametrize(("bug", "mode", "nemesis", "extra", "runs"), CAUGHT)
def test_a_planted_read_bug_is_caught(
    tmp_path: Path, bug: str, mode: str, nemesis: str, extra: tuple[str, ...], runs: int
) -> None:
    verdicts = []
    for attempt in range(runs):
        run = tmp_path / f"run{attempt}"
        code, lines = torture(
            run,
            "--time=12",
            f"--nemesis={nemesis}",
            f"--bug={bug}",
            f"--reads={mode}",
            READERS,
            "--mode=loopback",
            f"--seed={attempt + 1}",
            "--agreement-rounds=1",
            *extra,
        )
        assert leftover_processes(run) == []
        verdicts.append(lines[-1])
        if code == 0:
            continue
        assert code == 1, "\n".join(lines[-20:])
        result = summary(run)
        assert result["linearizable"] == "violation", lines[-1]
        explanation = str(result["explanation"]).splitlines()
        unplaced = [line for line in explanation if "cannot be placed" in line]
        assert unplaced and " read " in unplaced[0], explanation  # a read saw the past
        return
    pytest.fail(f"{bug} not caught in {runs} runs:\n" + "\n".join(verdicts))
