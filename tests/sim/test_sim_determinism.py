"""A seed fully determines a run: the same seed gives the same trace byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pypaxos.cli.main import main
from pypaxos.core.messages import Accept, Accepted, Prepare, Promise
from pypaxos.sim.steps import Crash, Deliver, Drop, Note, Propose, Restart, Timer
from pypaxos.sim.synod import SynodSettings, run_synod

FAULTY = SynodSettings(
    proposers=3,
    drop=0.2,
    dup=0.2,
    crash=0.2,
    crash_after_handle=0.02,
    partition="random",
)


def report(settings: SynodSettings, seed: int) -> str:
    return "\n".join(run_synod(settings, seed, trace=True).report_lines())


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_same_seed_gives_the_same_trace_byte_for_byte(seed: int) -> None:
    first = report(FAULTY, seed)
    second = report(FAULTY, seed)
    assert first.encode() == second.encode()
    assert len(first.splitlines()) > 20  # a real run, not an empty trace


def test_different_seeds_give_different_traces() -> None:
    traces = {report(FAULTY, seed) for seed in range(20)}
    assert len(traces) == 20


def test_tracing_does_not_change_the_run() -> None:
    # Traces are optional (seed sweeps run without them): they must only observe.
    for seed in range(30):
        quiet = run_synod(FAULTY, seed)
        loud = run_synod(FAULTY, seed, trace=True)
        assert quiet.trace == ()
        assert (quiet.steps, quiet.end_time, quiet.chosen, quiet.learned, quiet.violation) == (
            loud.steps,
            loud.end_time,
            loud.chosen,
            loud.learned,
            loud.violation,
        )


def test_cli_prints_the_same_output_twice(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["synod", "--proposers", "3", "--drop", "0.2", "--dup", "0.1", "--crash", "0.1"]
    argv += ["--partition", "random", "--seed", "42"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert first == second
    assert first.startswith("# pypaxos synod --proposers 3 ")
    assert first.rstrip().splitlines()[-1].startswith("chosen: ")


def test_faulty_traces_show_every_kind_of_event() -> None:
    results = [run_synod(FAULTY, seed, trace=True) for seed in range(10)]
    events = [event.entry for result in results for event in result.events]
    # Every kind of step the simulator takes (``Reboot`` is the model checker's alone) ...
    assert {type(entry) for entry in events} == {
        Propose,
        Deliver,
        Drop,
        Crash,
        Restart,
        Timer,
        Note,
    }
    delivered = {type(e.message) for e in events if isinstance(e, Deliver)}
    assert {Prepare, Promise, Accept, Accepted} <= delivered
    # ... a copy delivered twice (the network duplicated it) ...
    deliveries = [e for e in events if isinstance(e, Deliver)]
    assert len(set(deliveries)) < len(deliveries)
    # ... and the notes, each printed as one.
    text = "\n".join("\n".join(result.report_lines()) for result in results)
    for marker in ["-- PARTITION ", "-- HEAL", " decides ", " found on its disk: ", "chosen: "]:
        assert marker in text, marker


def test_output_does_not_depend_on_string_hashing() -> None:
    # Set and dict order of strings varies with PYTHONHASHSEED; the trace must not.
    argv = [sys.executable, "-m", "pypaxos", "synod", "--proposers", "3", "--drop", "0.2"]
    argv += ["--dup", "0.2", "--crash", "0.2", "--partition", "random", "--seed", "11"]
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count("\n") > 20
