"""Random command sequences, with retries, against a plain-dict model of the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.kv import (
    NOOP,
    Cas,
    Command,
    Delete,
    Error,
    Get,
    Incr,
    Integer,
    KVStateMachine,
    Mismatch,
    Ok,
    Request,
    Result,
    SessionExpired,
    Set,
    Stale,
    Value,
    decode_result,
    encode_request,
)

KEYS = st.sampled_from([b"a", b"b", b"c"])
VALUES = st.sampled_from([b"x", b"y", b"0", b"41", b"-7", b"007", b"9223372036854775806"])
OPTIONAL_VALUES = st.one_of(st.none(), VALUES)
OPS: st.SearchStrategy[Command] = st.one_of(
    st.builds(Get, KEYS),
    st.builds(Set, KEYS, VALUES),
    st.builds(Delete, KEYS),
    st.builds(Incr, KEYS),
    st.builds(Cas, KEYS, OPTIONAL_VALUES, VALUES),
)

# One step: ("new", client, op) sends the client's next seq; ("retry", client, back) resends an
# earlier seq (back=0: the last one); ("noop",) and ("junk",) are other log entries.
STEPS = st.one_of(
    st.tuples(st.just("new"), st.integers(1, 3), OPS),
    st.tuples(st.just("retry"), st.integers(1, 3), st.integers(0, 2)),
    st.tuples(st.just("noop")),
    st.tuples(st.just("junk")),
)


def model_execute(data: dict[bytes, bytes], op: Command) -> Result:
    """The store's semantics written as plainly as possible."""
    if isinstance(op, Get):
        return Value(data.get(op.key))
    if isinstance(op, Set):
        data[op.key] = op.value
        return Ok()
    if isinstance(op, Delete):
        existed = op.key in data
        data.pop(op.key, None)
        return Integer(int(existed))
    if isinstance(op, Incr):
        text = data.get(op.key, b"0")
        try:
            number = int(text)
        except ValueError:
            return Error("value is not an integer or out of range")
        if b"%d" % number != text or not -(2**63) <= number < 2**63:
            return Error("value is not an integer or out of range")
        if number + 1 >= 2**63:
            return Error("increment or decrement would overflow")
        data[op.key] = str(number + 1).encode()
        return Integer(number + 1)
    if isinstance(op, Cas):
        if data.get(op.key) != op.expected:
            return Mismatch(data.get(op.key))
        data[op.key] = op.new
        return Ok()
    raise AssertionError(op)


@dataclass
class Model:
    ttl: int
    data: dict[bytes, bytes] = field(default_factory=dict)
    index: int = 0
    # client -> (last seq applied, its result, index of its last activity)
    sessions: dict[int, tuple[int, Result, int]] = field(default_factory=dict)

    def request(self, client: int, seq: int, op: Command) -> Result:
        self.index += 1
        session = self.sessions.get(client)
        if session is not None and self.index - session[2] > self.ttl:
            session = None  # expired
        if session is None:
            if seq != 1:  # refused, and the id stays refused: a tombstone (last seq 0)
                self.sessions[client] = (0, SessionExpired(), self.index)
                return SessionExpired()
            session = (0, Ok(), self.index)
        elif session[0] == 0:
            self.sessions[client] = (0, SessionExpired(), self.index)
            return SessionExpired()
        last_seq, last_result, _ = session
        if seq == last_seq:
            result = last_result
        elif seq < last_seq:
            result = Stale(last_seq)
        else:
            result = model_execute(self.data, op)
            last_seq, last_result = seq, result
        self.sessions[client] = (last_seq, last_result, self.index)
        return result


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEPS, max_size=60), ttl=st.sampled_from([2, 5, 1000]))
def test_machine_matches_the_dict_model(steps: list[tuple[object, ...]], ttl: int) -> None:
    machine = KVStateMachine(session_ttl_commands=ttl)
    model = Model(ttl)
    sent: dict[int, list[Request]] = {1: [], 2: [], 3: []}
    for step in steps:
        if step[0] == "noop":
            assert decode_result(machine.apply(NOOP)) == Ok()
            model.index += 1
            continue
        if step[0] == "junk":
            assert isinstance(decode_result(machine.apply(b"\xc1junk")), Error)
            model.index += 1
            continue
        kind, client, arg = step
        assert isinstance(client, int)
        history = sent[client]
        if kind == "new":
            assert isinstance(arg, Get | Set | Delete | Incr | Cas)
            request = Request(client, len(history) + 1, arg)
            history.append(request)
        else:
            assert isinstance(arg, int)
            if not history:
                continue
            request = history[max(0, len(history) - 1 - arg)]
        got = decode_result(machine.apply(encode_request(request)))
        assert got == model.request(request.client_id, request.seq, request.op)
    assert {k: machine.get(k) for k in (b"a", b"b", b"c")} == {
        k: model.data.get(k) for k in (b"a", b"b", b"c")
    }
    restored = KVStateMachine()
    restored.restore(machine.snapshot())
    assert restored.snapshot() == machine.snapshot()
