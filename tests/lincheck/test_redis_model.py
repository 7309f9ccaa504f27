"""The reference model of a Redis key (``lincheck.redis_model``) against the store itself.

The simulator trusts the model to judge ``kv``; the model is written apart from ``kv``, so the
two are compared here on the very commands the simulator draws (``sim.kv_collections``): the
same random sequence runs through a ``KVStateMachine`` and through the model, and every reply
must agree.  A few Redis rules are also stated directly, so that a mistake made the same way in
both would still show.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.kv import KVStateMachine, Request, decode_answer, encode_request
from pypaxos.lincheck.redis_model import (
    ERR_REPLY,
    WRONGTYPE_REPLY,
    KeyState,
    State,
    freeze,
    step,
)
from pypaxos.sim.kv_collections import (
    FAMILIES,
    decode_reply,
    draw_command,
    draw_operation,
    dump_operation,
    home_families,
)

KEYS = ("c0", "c1")


def _run(f: str, args: object, state: State) -> tuple[object, State]:
    return step(f, freeze(args), state)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from((*FAMILIES, "keyspace", "drawn")), max_size=60),
    st.randoms(use_true_random=False),
)
def test_the_model_answers_as_the_store_does(draws: list[str], rng: random.Random) -> None:
    machine = KVStateMachine()
    states: dict[str, State] = dict.fromkeys(KEYS)
    fresh = iter(range(1_000_000))
    homes = home_families(random.Random(0))

    def next_value() -> str:
        return str(next(fresh))

    seqs = iter(range(1, 1_000))

    def check(f: str, key: str, args: object, command: object) -> None:
        seq = next(seqs)
        answer = decode_answer(machine.apply(encode_request(Request(1, seq, command))))  # type: ignore[arg-type]
        expected, states[key] = _run(f, args, states[key])
        got = freeze(decode_reply(f, args, answer))
        assert got == expected, f"{f} {key} {args!r}: store {got!r}, model {expected!r}"

    for family in draws:
        if family == "drawn":  # what the simulator draws: MULTI and stray families included
            f, key, args, command, _ = draw_operation(rng, homes, next_value)
            if key not in KEYS:
                continue
        else:
            key = rng.choice(KEYS)
            f, args, command, _ = draw_command(rng, family, key, next_value)
        check(f, key, args, command)
    for key in KEYS:
        f, args, command = dump_operation(key)
        check(f, key, args, command)


def test_lpush_pushes_one_by_one_and_pops_from_either_end() -> None:
    reply, state = _run("lpush", ["a", "b", "c"], None)
    assert reply == 3 and state == KeyState("list", ("c", "b", "a"))
    assert _run("rpop", [], state)[0] == "a"
    assert _run("lrange", [-2, -1], state)[0] == ("b", "a")
    assert _run("lrange", [5, 9], state)[0] == ()


def test_an_emptied_collection_is_gone_with_its_deadline() -> None:
    _, state = _run("sadd", ["m"], None)
    _, state = _run("expire", [50], state)
    assert _run("ttl", [], state)[0] == 50
    _, state = _run("sadd", ["n"], state)  # a change in place keeps the deadline
    assert _run("ttl", [], state)[0] == 50
    _, state = _run("srem", ["m"], state)
    _, state = _run("srem", ["n"], state)
    assert state is None
    assert _run("ttl", [], state)[0] == -2


def test_set_clears_the_deadline_and_incr_keeps_it() -> None:
    _, state = _run("set", ["7"], None)
    _, state = _run("expire", [50], state)
    reply, state = _run("incr", [], state)
    assert reply == 8 and _run("ttl", [], state)[0] == 50
    _, state = _run("set", ["x"], state)
    assert _run("ttl", [], state)[0] == -1
    assert _run("incr", [], state)[0] == ERR_REPLY
    assert _run("expire", [0], state) == (1, None)  # a deadline already past deletes the key


def test_a_command_of_another_type_answers_wrongtype_and_changes_nothing() -> None:
    _, state = _run("hset", [["f", "1"]], None)
    for f, args in (("lpush", ["x"]), ("sadd", ["m"]), ("zincrby", [1.0, "z"]), ("get", [])):
        assert _run(f, args, state) == (WRONGTYPE_REPLY, state)
    reply, after = _run("multi", [["hincrby", ["f", 2]], ["llen", []], ["hget", ["f"]]], state)
    assert reply == (3, WRONGTYPE_REPLY, "3") and after == KeyState("hash", (("f", "3"),))


def test_zadd_flags_follow_redis() -> None:
    _, state = _run("zadd", [[], [[2.0, "a"]]], None)
    assert _run("zadd", [["GT"], [[1.0, "a"]]], state) == (0, state)  # not greater: kept
    assert _run("zadd", [["GT", "CH"], [[3.0, "a"]]], state)[0] == 1  # changed counts
    assert _run("zadd", [["XX"], [[1.0, "b"]]], state) == (0, state)  # XX adds nothing
    assert _run("zadd", [["NX", "INCR"], [[1.0, "a"]]], state) == (None, state)
    assert _run("zadd", [["LT", "INCR"], [[-0.5, "a"]]], state)[0] == 1.5
    reply, after = _run("zadd", [["GT"], [[1.0, "b"]]], state)  # GT still adds new members
    assert reply == 1 and _run("zrange", [0, -1], after)[0] == (("b", 1.0), ("a", 2.0))
