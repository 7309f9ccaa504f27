"""The checks are not vacuous: broken state machines and a cluster that never heals are caught.

The planted bugs (``pypaxos.multi.bugs``, ``pypaxos.kv.bugs``) are in test_simkv_bugs.py.
This mutant answers reads from a stale copy of the store (deterministically, so every replica
agrees and only linearizability can tell).
"""

from __future__ import annotations

import json

from pypaxos.kv import Get, KVStateMachine, Request, Value, decode_entry, encode_result
from pypaxos.kv.commands import RequestBatch, Watch
from pypaxos.lincheck.wgl import parse_history
from pypaxos.sim.kv import KVResult, KVSettings, KVWorld, run_kv


class StaleReads(KVStateMachine):
    """Answers ``Get`` from the state as it was a few commands ago."""

    LAG_COMMANDS = 5

    def __init__(self) -> None:
        super().__init__()
        self.past: list[dict[bytes, bytes | None]] = []

    def apply(self, command: bytes) -> bytes:
        result = super().apply(command)
        self.past.append({key: self.get(key) for key in (b"k0", b"k1", b"k2")})
        entry = decode_entry(command) if command else None
        if isinstance(entry, Request) and isinstance(entry.op, Get):
            old = self.past[max(0, len(self.past) - 1 - self.LAG_COMMANDS)]
            return encode_result(Value(old.get(entry.op.key)))
        return result


def first_violation(settings: KVSettings, factory: type[KVStateMachine]) -> KVResult | None:
    for seed in range(30):
        result = run_kv(settings, seed, machine_factory=factory)
        if result.violations:
            return result
    return None


def test_stale_reads_are_not_linearizable() -> None:
    caught = first_violation(KVSettings(faults=False, drop=0.0, dup=0.0), StaleReads)
    assert caught is not None
    assert caught.violations[0].startswith("not linearizable")


class NeverHeals(KVWorld):
    """Faults stop, but every node stays cut off from every other: no quorum, ever."""

    def _heal(self) -> None:
        super()._heal()
        self.network.split([{node} for node in self.node_list])


def test_a_cluster_that_cannot_serve_after_the_heal_violates_the_liveness_bound() -> None:
    result = NeverHeals(KVSettings(), 0).run()
    assert result.violations
    assert result.violations[0].startswith("liveness: no operation invoked after the heal")


def test_a_clean_run_reports_its_numbers() -> None:
    result = run_kv(KVSettings(), 0)
    assert result.violations == () and not result.undecided
    assert result.invoked == 200 + 3  # the clients' operations and the final read of each key
    assert result.ok + result.failed + result.info == result.invoked
    assert result.served_after_ticks is not None
    assert 0 <= result.served_after_ticks <= result.bound_ticks
    assert result.lincheck.startswith("linearizable")


class FailsOnWatch(KVStateMachine):
    """Raises as it applies the first step of an optimistic cas (``WATCH`` and a read): the run
    ends in an exception while that client's operation is not yet in the history."""

    def apply(self, command: bytes) -> bytes:
        entry = decode_entry(command) if command else None
        if isinstance(entry, RequestBatch) and any(isinstance(op, Watch) for op in entry.ops):
            raise RuntimeError("planted: a replica cannot apply a WATCH")
        return super().apply(command)


def test_a_run_ending_in_an_exception_closes_only_operations_it_invoked() -> None:
    """Outstanding operations become ``info`` at the end, but a client still at the unrecorded
    first step of an optimistic cas has nothing outstanding: no completion without an invoke
    (the history would not parse, and the run would report it malformed, not the exception)."""
    settings = KVSettings(faults=False, drop=0.0, dup=0.0)
    result = run_kv(settings, 0, machine_factory=FailsOnWatch)
    assert result.violations[0].startswith("RuntimeError raised at t=")
    assert "planted: a replica cannot apply a WATCH" in result.violations[0]
    assert not any("malformed history" in v for v in result.violations), result.violations
    history = parse_history(result.history)  # every completion follows its own invoke
    outstanding: dict[object, str] = {}
    for line in result.history:
        event = json.loads(line)
        if event["type"] == "invoke":
            outstanding[event["process"]] = event["f"]
        else:
            assert outstanding.pop(event["process"], None) == event["f"], line
    assert result.info == sum(1 for op in history.operations if op.status == "info")
