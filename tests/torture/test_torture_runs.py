"""``pypaxos torture`` end to end: real node processes, real TCP, every nemesis, planted bugs.

Each test runs the command as a user would, in a subprocess, and afterwards checks that every
process the run started (``RUN/pids.txt``) is gone and that no network namespace of the run is
left.  Runs are short (tens of seconds of faults): long enough for each nemesis to act at least
once, not a soak test (``make torture`` is that).  The bug tests use bugs and nemeses that
exposed the bug in every run we tried (see ``CAUGHT`` and docs/testing.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pypaxos.torture.hosts import netns_available
from pypaxos.torture.nemesis import NEMESES
from pypaxos.torture.powerfs import fuse_unavailable, is_mounted

pytestmark = pytest.mark.timeout(400)

NETNS_OK, NETNS_WHY = netns_available()
POWER_WHY = fuse_unavailable()  # None where the power nemesis can mount its filesystems
# What `--nemesis all` runs here: the power nemesis only where FUSE works.
ALL_HERE = set(NEMESES) - ({"power"} if POWER_WHY else set())


def command(run: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pypaxos", "torture", "--out", str(run), *args]


def torture(run: Path, *args: str, timeout_s: float = 300) -> tuple[int, list[str]]:
    done = subprocess.run(
        command(run, *args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return done.returncode, lines


def run_pids(run: Path) -> list[tuple[int, str]]:
    text = (run / "pids.txt").read_text()
    return [(int(pid), name) for pid, name in (line.split() for line in text.splitlines())]


def leftover_processes(run: Path) -> list[str]:
    """Processes of the run still alive (a pid counts only while it is still our command)."""
    alive = []
    for pid, name in run_pids(run):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pypaxos" in command:
            alive.append(f"{name} (pid {pid})")
    return alive


def leftover_namespaces(harness_pid: int) -> list[str]:
    if not NETNS_OK:
        return []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(f"pxt-{harness_pid}-")]


def reap(run: Path) -> None:
    """Stop what a killed harness left: its processes by pid, its namespaces by sweep."""
    for pid, _ in run_pids(run) if (run / "pids.txt").exists() else []:
        try:
            if b"pypaxos" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    if NETNS_OK:
        from pypaxos.torture.netns import NetnsHosts

        NetnsHosts.sweep("pxt")  # only namespaces whose owner process is dead


def summary(run: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run / "summary.json").read_text())
    return data


def test_loopback_run_with_every_nemesis_is_clean_and_leaves_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, lines = torture(
        run,
        "--time=26",
        "--nemesis=all",
        "--mode=loopback",
        "--seed=11",
        "--agreement-rounds=2",
    )
    assert code == 0, "\n".join(lines[-20:])
    assert lines[-1].startswith("torture: ") and lines[-1].endswith("verdict: clean")
    result = summary(run)
    faults = result["faults"]
    assert isinstance(faults, dict) and set(faults) == ALL_HERE
    assert result["linearizable"] == "ok" and result["replicas_agree"] is True
    assert (run / "history.jsonl").stat().st_size > 0
    assert sorted(p.name for p in (run / "logs").iterdir()) == sorted(
        [f"node-{i}.log" for i in (1, 2, 3)]
        + [f"proxy-{i}.log" for i in (1, 2, 3)]
        + ([f"powerfs-{i}.log" for i in (1, 2, 3)] if "power" in ALL_HERE else [])
        + ["agent.log", "hostile.log"]
    )
    assert "hostile: " in (run / "nemesis.log").read_text()
    assert leftover_processes(run) == []


@pytest.mark.skipif(POWER_WHY is not None, reason=f"the power nemesis needs FUSE: {POWER_WHY}")
def test_power_cuts_lose_no_acknowledged_write_and_leave_no_mount(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, lines = torture(
        run, "--time=16", "--nemesis=power", "--mode=loopback", "--seed=21", "--agreement-rounds=2"
    )
    assert code == 0, "\n".join(lines[-20:])
    assert lines[-1].endswith("verdict: clean")
    result = summary(run)
    faults = result["faults"]
    assert isinstance(faults, dict) and faults.get("power", 0) >= 2
    assert result["linearizable"] == "ok" and result["lost_writes"] == []
    # The cuts dropped something: the nodes' files had writes or names not yet durable.
    cuts = [line for line in (run / "nemesis.log").read_text().splitlines() if "power cut" in line]
    assert any("(pending: nothing)" not in line for line in cuts), cuts
    assert leftover_processes(run) == []  # the nodes and the powerfs processes
    assert not any(is_mounted(run / "data" / f"node-{i}") for i in (1, 2, 3))
    assert not (run / "power").exists()  # a clean run keeps no data


@pytest.mark.skipif(POWER_WHY is not None, reason=f"the power nemesis needs FUSE: {POWER_WHY}")
def test_power_cuts_catch_a_cluster_that_does_not_fsync(tmp_path: Path) -> None:
    """``--fsync never`` loses nothing to ``kill`` (the page cache survives a process), but a
    power cut wipes what was never synced: acknowledged writes are lost."""
    verdicts = []
    # A node that comes back empty is outvoted by the others: a loss needs a majority wiped,
    # mostly by a cut of every node at once (one in three cuts), so a run of four cuts misses
    # it about one time in five; three runs all missing it is about one in a hundred.
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        code, lines = torture(
            run,
            "--time=12",
            "--nemesis=power",
            "--fsync=never",
            "--mode=loopback",
            f"--seed={42 + attempt}",
            "--agreement-rounds=2",
        )
        assert leftover_processes(run) == []
        assert not any(is_mounted(run / "data" / f"node-{i}") for i in (1, 2, 3))
        verdicts.append(lines[-1])
        if code == 0:
            continue
        assert code == 1 and "verdict: VIOLATION" in lines[-1], "\n".join(lines[-20:])
        assert summary(run)["lost_writes"], lines[-1]
        return
    pytest.fail("no power cut lost a write of a cluster that never fsyncs:\n" + "\n".join(verdicts))


@pytest.mark.skipif(not NETNS_OK, reason=f"network namespaces: {NETNS_WHY}")
def test_netns_run_is_clean_and_removes_every_namespace(tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(
        command(
            run, "--time=14", "--nemesis=all", "--mode=netns", "--seed=12", "--agreement-rounds=1"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = stdout.strip().splitlines()
    assert process.returncode == 0, stdout + stderr
    assert "3 nodes (netns)" in lines[0]
    assert lines[-1].endswith("verdict: clean")
    assert leftover_namespaces(process.pid) == []
    assert leftover_processes(run) == []


def test_an_interrupted_run_stops_everything_it_started(tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(
        command(run, "--time=120", "--nemesis=pause,partition,clock", "--seed=13"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            seen.append(line)
            if "workload and nemesis start" in line or not line:
                break
        assert "workload and nemesis start" in seen[-1], "".join(seen)
        time.sleep(4)  # a fault or two in flight: a paused node, a partition, a skewed clock
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            reap(run)  # the harness failed to clean up: do it here, then fail below
    assert process.returncode == 130, "".join(seen) + rest
    assert rest.strip().splitlines()[-1].startswith("torture: interrupted")
    assert leftover_processes(run) == []
    assert leftover_namespaces(process.pid) == []
    assert {name for _, name in run_pids(run)} >= {"node-1", "proxy-1", "agent"}


# (bug, nemesis, seconds of faults, what the verdict usually shows, the seeds of its runs):
# "safety" is a non-linearizable history, a lost acknowledged write, replicas that answer
# differently or a node's own invariant firing ("slot decided twice"); "liveness" is a cluster
# that takes no writes, or answers no reads, again after the heal.  A bug counts as caught if one
# of its runs catches it; a caught bug ends the test at once.  The seeds fix the nemesis's and the
# workload's draws (the processes' timing still varies), so a miss replays with its seed.
# noop-overwrites-chosen needs a lagging node to win an election.  Under kill,pause that used to
# be a restarted node, which campaigned before its leader's reconnect backoff let a heartbeat
# through and caught up slowly (about four of five 12 s runs caught it); since a starting node
# dials its peers and catch-up is pipelined it no longer happens (0 of 11 runs).  A healed
# minority partition, whose node came back with a higher ballot, did it in 3 of 6 runs until
# pre-vote: a cut-off node no longer raises its ballot, and 8 runs of 12 s with random partitions
# all missed it.  The aimed isolate-leader (a majority elects one of its own while the old leader
# is cut off) catches it in 4 of 7 runs of 12 s (as lost writes and replicas that disagree), so
# eight runs all missing it is about a one in 850 event.  Its first seed is the one that caught it
# most often in 12 s runs on a loaded machine (load average 9 to 19 on 2 cores): seed 2 in 3 of 4
# runs; 4, 5 and 6 in 1 of 3 each; 1, 3 and 7 in 0 of 1 (the seed fixes the partitions' holds and
# calms, the timing decides the rest; 6 of 17 runs in all under that load, fewer than 4 of 7).
# commit-without-quorum needs its leader cut off while its clients still write to it: the aimed
# nemesis isolate-leader does that in every run (4 of 4 tried, 8 s to 20 s); with random
# partitions only about half of short runs catch it.  no-repropose (kill-leader) was caught in 3
# of 3 runs of 20 s but missed in 2 of 2 runs of 8 s, so it has no test here (see docs/testing.md).
CAUGHT = [
    ("noop-overwrites-chosen", "isolate-leader", 12, "safety", (2, 6, 4, 5, 2, 6, 4, 5)),
    ("reply-before-chosen", "kill", 6, "liveness", (1, 2, 3, 4)),
    ("commit-without-quorum", "isolate-leader", 8, "safety", (1, 2, 3, 4)),
    # Only the state digests see it: a node restarted from its own snapshot lacks the sessions.
    ("snapshot-drops-sessions", "kill", 8, "safety", (1, 2, 3)),
]


def safety_violated(result: dict[str, object]) -> bool:
    problems = result["problems"]
    assert isinstance(problems, list)
    return (
        result["linearizable"] == "violation"
        or bool(result["lost_writes"])
        or result["replicas_agree"] is False
        or any("decided twice" in str(p) for p in problems)
    )


def liveness_violated(result: dict[str, object]) -> bool:
    problems = result["problems"]
    assert isinstance(problems, list)
    return (
        result["available_after_s"] is None
        or not result["converged"]
        or any("could not be read back" in str(p) for p in problems)
    )


@pytest.mark.parametrize(("bug", "nemesis", "seconds", "shows", "seeds"), CAUGHT)
def test_a_planted_bug_is_caught(
    tmp_path: Path, bug: str, nemesis: str, seconds: int, shows: str, seeds: tuple[int, ...]
) -> None:
    verdicts = []
    for attempt, seed in enumerate(seeds):
        run = tmp_path / f"run{attempt}"
        code, lines = torture(
            run,
            f"--time={seconds}",
            f"--nemesis={nemesis}",
            f"--bug={bug}",
            "--mode=loopback",
            f"--seed={seed}",
            "--agreement-rounds=2",
        )
        assert leftover_processes(run) == []
        verdicts.append(f"seed {seed}: {lines[-1]}")
        if code == 0:
            assert lines[-1].endswith("verdict: clean")
            continue
        assert code == 1, "\n".join(lines[-20:])
        assert "verdict: VIOLATION" in lines[-1]
        result = summary(run)
        # A bug may show either way in a given run (noop-overwrites-chosen mostly as a safety
        # violation, sometimes as a cluster that stops answering); both are the bug's doing.
        assert safety_violated(result) or liveness_violated(result), lines[-1]
        return
    pytest.fail(f"{bug} not caught in {len(seeds)} runs:\n" + "\n".join(verdicts))
