"""Lua scripts in the state machine: the sandbox, the budget, determinism and the cache.

The command table is the server's (``runtime.commands.script_command``) as on a real node, so a
script's ``redis.call`` answers as a client's command does (the differential test compares
the replies with redis-server's).
"""

from __future__ import annotations

import random

import pytest

from pypaxos.kv import KVStateMachine, Request, Result, Set, Value, decode_answer, encode_request
from pypaxos.kv.commands import (
    ErrorReply,
    Eval,
    Integer,
    Replies,
    ScriptExists,
    ScriptFlush,
    ScriptLoad,
)
from pypaxos.kv.script_cache import SCRIPTS_MAX, sha1_hex
from pypaxos.kv.scripts import Rand48
from pypaxos.runtime.commands import script_command

T0 = 1_700_000_000_000


class Store:
    def __init__(self, machine: KVStateMachine | None = None) -> None:
        self.machine = machine or KVStateMachine(script_commands=script_command)
        self.seq = 0

    def run(self, op: object) -> Result:
        self.seq += 1
        request = Request(1, self.seq, op, T0)  # type: ignore[arg-type]
        return decode_answer(self.machine.apply(encode_request(request)))  # type: ignore[return-value]

    def eval(self, body: str, *keys: str, args: tuple[str, ...] = ()) -> Result:
        return self.run(
            Eval(
                body.encode(), b"", tuple(k.encode() for k in keys), tuple(a.encode() for a in args)
            )
        )


def error_text(result: Result) -> bytes:
    assert isinstance(result, ErrorReply), result
    return result.text


@pytest.mark.parametrize(
    "name",
    ["os", "io", "debug", "load", "loadstring", "dofile", "loadfile", "require", "module",
     "collectgarbage", "coroutine", "print", "python", "newproxy", "setfenv", "getfenv", "gcinfo"],
)  # fmt: skip
def test_the_sandbox_has_no_way_out(name: str) -> None:
    text = error_text(Store().eval(f"return {name}"))
    assert b"Script attempted to access nonexistent global variable '%s'" % name.encode() in text


def test_the_sandbox_refuses_globals_bytecode_and_python_attributes() -> None:
    store = Store()
    assert b"Attempt to modify a readonly table" in error_text(store.eval("x = 1"))
    assert store.eval("return string.dump") == Value(None)
    assert b"Error compiling script" in error_text(store.eval("\x1bLua\x51\x00"))
    # redis.call is a Lua value, not a Python object: nothing to reach through it.
    assert store.eval("return type(redis.call)") == Value(b"function")
    assert store.eval("return tostring(redis.call)") == Value(b"function: 0x00000001")


def test_a_script_past_its_budget_is_stopped_even_under_pcall_and_keeps_its_writes() -> None:
    store = Store()
    for body in (
        "redis.call('set', 'before', '1') while true do end",
        "while true do pcall(function() while true do end end) end",
        "while true do redis.call('get', 'x') end",  # each call counts against the budget
    ):
        assert b"Script killed" in error_text(store.eval(body))
    assert store.machine.get(b"before") == b"1"
    assert store.eval("return redis.call('incr', 'after')") == Integer(1)  # still serving


def test_memory_and_reply_nesting_are_bounded() -> None:
    store = Store()
    doubling = "local s = 'x' for i = 1, 40 do s = s .. s end return #s"
    assert b"not enough memory" in error_text(store.eval(doubling))
    # string.rep counts its bytes first: the budget refuses it before it allocates.
    assert b"Script killed" in error_text(store.eval("return string.rep('x', 2^30)"))
    assert b"stack limit" in error_text(store.eval("local t = {} t[1] = t return t"))


def test_math_random_is_redis_rand48_seeded_by_the_log_position() -> None:
    rand = Rand48(0)
    first = [rand.next_fraction() for _ in range(3)]
    assert Rand48(0).next_fraction() == first[0] and min(first) >= 0 and max(first) < 1
    body = "return {math.random(1000000), math.random(1000000)}"
    a, b = Store(), Store()
    assert a.eval(body) == b.eval(body)  # the same log position: the same numbers
    assert a.eval(body) != a.eval(body)  # another position: others


SCRIPT_BODIES = [
    "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])",
    "return redis.call('incr', KEYS[1])",
    "return {math.random(100), tostring({}), tostring(print or 0)}",
    "local t = {} for i = 1, 50 do t[i] = math.random() end table.sort(t) return tostring(t[25])",
    "local n = 0 for k, v in pairs({a = 1, b = 2, c = 3, d = 4}) do n = n * 10 + v end return n",
    "redis.call('del', KEYS[1]) return redis.pcall('incr', ARGV[1])",
]


def test_replicas_agree_and_a_restored_replica_continues_identically() -> None:
    rng = random.Random(5)
    ops = []
    for _ in range(200):
        body = rng.choice(SCRIPT_BODIES)
        if rng.random() < 0.3:
            ops.append(Eval(None, sha1_hex(body.encode()), (b"k",), (b"x",)))
        else:
            ops.append(
                Eval(body.encode(), b"", (rng.choice([b"k", b"n"]),), (rng.choice([b"1", b"x"]),))
            )
    first, second = Store(), Store()
    answers = [first.run(op) for op in ops[:100]]
    assert answers == [second.run(op) for op in ops[:100]]
    restored = Store(KVStateMachine(script_commands=script_command))
    restored.machine.restore(first.machine.snapshot())
    restored.seq = first.seq
    for op in ops[100:]:
        assert first.run(op) == restored.run(op) == second.run(op)
    assert first.machine.snapshot() == restored.machine.snapshot() == second.machine.snapshot()


def test_the_script_cache_is_bounded_replicated_and_flushed() -> None:
    store = Store()
    shas = [store.run(ScriptLoad(b"return %d" % i)) for i in range(SCRIPTS_MAX + 1)]
    assert all(isinstance(sha, Value) for sha in shas)
    first, last = (sha.value for sha in (shas[0], shas[-1]))  # type: ignore[union-attr]
    assert store.run(ScriptExists((first, last))) == Replies((Integer(0), Integer(1)))
    assert store.run(Eval(None, first, (), ())) == ErrorReply(  # type: ignore[arg-type]
        b"NOSCRIPT No matching script. Please use EVAL."
    )
    copy = KVStateMachine(script_commands=script_command)
    copy.restore(store.machine.snapshot())
    twin = Store(copy)
    twin.seq = store.seq
    assert twin.run(Eval(None, last, (), ())) == Integer(SCRIPTS_MAX)  # type: ignore[arg-type]
    store.run(ScriptFlush())
    assert store.run(ScriptExists((last,))) == Replies((Integer(0),))  # type: ignore[arg-type]


def test_without_a_command_table_scripts_are_refused() -> None:
    store = Store(KVStateMachine())
    store.run(Set(b"k", b"v"))
    assert store.eval("return 1") != Integer(1)


def test_a_scripts_lua_state_is_freed_without_waiting_for_the_garbage_collector() -> None:
    import gc

    import lupa.lua51

    def states() -> int:
        return sum(isinstance(o, lupa.lua51.LuaRuntime) for o in gc.get_objects())

    store = Store()
    store.eval("return redis.call('incr', 'warm')")
    gc.collect()
    gc.disable()
    try:
        before = states()
        for _ in range(50):
            store.eval("return redis.call('incr', KEYS[1])", "k")
            store.run(ScriptLoad(b"return 1"))
        assert states() == before  # a cycle would keep 100 of them until a collection
    finally:
        gc.enable()


def test_calls_that_visit_the_whole_keyspace_count_each_key_against_the_budget() -> None:
    store = Store()
    for index in range(500):
        store.run(Set(b"key%d" % index, b"v"))
    # 500 keys per SCAN: the budget runs out after about 6,500 calls, not the 9,600 that the
    # calls and their bytes alone allow.  (Fewer keys would blur that difference; more would
    # only cost the test time: a script's Python work is bounded by the budget either way.)
    body = "local n = 0 while true do redis.call('scan', 0, 'COUNT', 1) n = n + 1 end"
    assert b"Script killed" in error_text(store.eval(body))
    counted = (
        "local n = 0 for i = 1, 8000 do redis.call('scan', 0, 'COUNT', 1) n = n + 1 end return n"
    )
    assert b"Script killed" in error_text(store.eval(counted))
    assert store.eval(counted.replace("8000", "6000")) == Integer(6000)
