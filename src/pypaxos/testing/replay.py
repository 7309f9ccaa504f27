"""Apply a decided log again in fresh interpreters with other hash seeds, and compare.

Inside one process every replica shares one hash seed, so a command that iterates a set of
strings, or calls ``hash()`` on one, behaves the same on all of them and the simulation alone
cannot see it; nor a clock read that happened to round the same.  Here the decided commands are
applied to a fresh machine in this process and in child interpreters started with
``PYTHONHASHSEED`` set to each of ``hash_seeds``; every result and the final snapshot must be
byte-identical.  The factory must be importable by name (``module:qualname``) for a child to
build it; otherwise the replay is skipped and says so.

Run as ``python -m pypaxos.testing.replay FILE``: FILE holds the factory's name and the
commands; the child writes the results and the snapshot to stdout, all MessagePack.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence

import msgspec

from pypaxos.objects import ObjectMachine

REPLAY_TIMEOUT_S = 120.0


class ReplayJob(msgspec.Struct, frozen=True):
    factory: str
    commands: list[bytes]


class ReplayOutcome(msgspec.Struct, frozen=True):
    results: list[bytes]
    snapshot: bytes


def factory_name(factory: Callable[[], object]) -> str | None:
    """``module:qualname`` of a factory a child interpreter can import, else ``None``."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def load_factory(name: str) -> Callable[[], object]:
    module_name, _, qualname = name.partition(":")
    target: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{name} is not callable")
    return target


def apply_all(factory: Callable[[], object], commands: Sequence[bytes]) -> ReplayOutcome:
    built = factory()
    machine = built if isinstance(built, ObjectMachine) else ObjectMachine(built)
    results = [machine.apply(command) for command in commands]
    return ReplayOutcome(results, machine.snapshot())


def compare_in_children(
    factory: Callable[[], object], commands: Sequence[bytes], hash_seeds: Sequence[int]
) -> list[str]:
    """What differs between this process's replay and each child's (empty: nothing)."""
    name = factory_name(factory)
    if name is None or not hash_seeds:
        return []
    here = apply_all(factory, commands)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pypaxos-replay-") as directory:
        path = os.path.join(directory, "job.msgpack")
        with open(path, "wb") as job_file:
            job_file.write(msgspec.msgpack.encode(ReplayJob(name, list(commands))))
        for hash_seed in hash_seeds:
            env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            done = subprocess.run(
                [sys.executable, "-m", "pypaxos.testing.replay", path],
                capture_output=True,
                env=env,
                timeout=REPLAY_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
                problems.append(f"replay with PYTHONHASHSEED={hash_seed} failed: {tail}")
                continue
            there = msgspec.msgpack.decode(done.stdout, type=ReplayOutcome)
            problems += _differences(here, there, hash_seed)
    return problems


def _differences(here: ReplayOutcome, there: ReplayOutcome, hash_seed: int) -> list[str]:
    for index, (mine, theirs) in enumerate(zip(here.results, there.results, strict=True)):
        if mine != theirs:
            return [
                f"nondeterministic: command {index} of the decided log returned differently "
                f"in a process with PYTHONHASHSEED={hash_seed} (here {_show(mine)}, there "
                f"{_show(theirs)})"
            ]
    if here.snapshot != there.snapshot:
        return [
            "nondeterministic: the same decided log left a different state in a process "
            f"with PYTHONHASHSEED={hash_seed}"
        ]
    return []


def _show(result: bytes) -> str:
    text = repr(msgspec.msgpack.decode(result))
    return text if len(text) <= 80 else text[:77] + "..."


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pypaxos.testing.replay JOB_FILE", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as job_file:
        job = msgspec.msgpack.decode(job_file.read(), type=ReplayJob)
    outcome = apply_all(load_factory(job.factory), job.commands)
    sys.stdout.buffer.write(msgspec.msgpack.encode(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
