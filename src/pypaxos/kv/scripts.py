"""Lua scripts (``EVAL``, ``EVALSHA``, ``SCRIPT``) run inside the state machine, on every replica.

A script runs where Redis runs it: inside the command's execution, atomically.  Here that is
``KVStateMachine.apply``, so every replica runs it at the same log position and must reach the
same result and the same writes.  The script and its arguments go through the log (``Eval``);
its ``redis.call`` s execute in the state machine as the script runs, and only the reply
leaves.  What makes it deterministic:

* **A fresh Lua state per run** (``lupa``'s Lua 5.1, Redis's own Lua version): nothing survives
  from one script to the next (no global leaks, as in Redis 7), and the heap, hence the memory
  limit and the garbage collector's pace, depends on the script alone, never on what a replica
  ran before or whether it was restored from a snapshot.
* **A sandbox**: the script's globals are a fresh read-only table (Redis's errors for reading a
  missing global or writing one) holding the safe base functions, ``string`` (no ``dump``),
  ``table``, ``math``, ``redis`` and Redis's ``cjson``, ``cmsgpack``, ``struct`` and ``bit``
  (``kv.lua_libs``); no ``os``, ``io``, ``debug``, ``load*``, ``require``,
  ``coroutine``, ``collectgarbage``, ``print``.  Binary chunks are refused (Lua 5.1 does not
  verify bytecode).  ``tostring`` of a table or function gives a per-run serial number instead of
  its address.  Python objects are never reachable: the script sees only Lua closures.
* **A seeded random**: ``math.random`` is Redis's own generator (rand48), seeded with the log
  position of the request, so it differs between runs but agrees between replicas.
* **A budget instead of a clock**: ``SCRIPT_INSTRUCTIONS_MAX`` Lua VM instructions, counted by a
  debug hook, with each ``redis.call`` counted as ``CALL_INSTRUCTIONS`` plus one per byte of
  its arguments and reply, one per key of a command that visits the whole keyspace (``KEYS``,
  ``SCAN``...) and one per element of the collections a command combines, lists, scans or
  shifts (``SINTER``, ``HGETALL``, ``LREM``..., ``kv.programs``), so the Python work it causes
  is bounded too.  A script past its
  budget is stopped (no ``pcall`` can catch it: after the first stop every instruction raises
  again) and answered ``ERR Script killed...``; as after any script error in Redis, the writes it
  made before stay.  Redis instead lets a slow script run on, answers every other client
  ``BUSY`` and waits for ``SCRIPT KILL``; a replicated state machine cannot wait on a client,
  and wall time differs by replica, so the bound is on work.  No client ever sees ``BUSY``.
  ``SCRIPT_MEMORY_BYTES_MAX`` bounds the Lua heap the same way.

* **C library calls counted too**: the hook never fires inside a C function, so the string and
  table functions that copy, scan or sort (``string.rep``, ``sub``, ``format``, ``upper``...,
  ``table.concat``, ``insert``, ``remove``, ``sort``) count their bytes or elements first, and
  the pattern functions (``find``, ``match``, ``gmatch``, ``gsub``) run Lua's C matcher only
  when a cheap bound on its work is small; otherwise ``kv.lua_patterns`` matches, step by step
  against the budget, with a depth limit (Lua's own recursion could overflow the C stack).
  The libraries' byte work (``kv.lua_libs``) is counted the same way.  These wrappers are Lua
  functions: an error raised by one called in tail position (``return string.rep()``) names no
  line, where Redis's C functions keep the script's.
* **Iteration in one order**: a table's ``pairs``/``next`` order follows its keys' hashes, and a
  table, function or coroutine key hashes by its address, which differs between replicas (and
  moves the other keys too).  So ``pairs``, ``next`` and ``table.foreach`` refuse a table that
  holds such a key, before the first step (``cannot iterate a table keyed by a table``), and
  the encoders refuse one the same way; strings, numbers and booleans hash by value, so
  ordinary tables iterate as in Redis.  What is left: a table that held such a key and lost it
  may keep an address-dependent layout (``pairs`` cannot see that), and the ``..`` operator
  copies long strings in one instruction (each copy bounded by the heap limit).
* **Loaded on use**: the bounded ``string``/``table`` functions and Redis's libraries are
  compiled once per process and loaded into a run's state when its script first names them,
  so a script that only calls ``redis.call`` pays little for them.

The ``redis.call`` bridge and the reply conversions are ``kv.script_calls``; the sandbox's Lua
code is ``kv.lua_sandbox`` and ``kv.lua_bounded``; the replicated script cache is
``kv.script_cache``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import lupa.lua51 as lua

from pypaxos.kv import lua_libs, lua_patterns
from pypaxos.kv.commands import ErrorReply, Result
from pypaxos.kv.lua_bounded import LIBRARIES_LUA, STRINGS_LUA
from pypaxos.kv.lua_sandbox import SANDBOX_LUA
from pypaxos.kv.script_cache import sha1_hex
from pypaxos.kv.script_calls import CommandRunner, clean_line, invoke_call, script_result

SCRIPT_INSTRUCTIONS_MAX = 10_000_000
"""Lua VM instructions one script may run (about 0.1 s of CPython's embedded Lua 5.1)."""
HOOK_INSTRUCTIONS = 1_000  # the debug hook runs every this many instructions
SCRIPT_MEMORY_BYTES_MAX = 64 * 1024 * 1024
BYTES_PER_INSTRUCTION = 8
"""What a C library call that copies or scans bytes (``string.rep``, ``sub``, ``format``,
``table.concat``...) counts: one instruction per this many bytes."""
PATTERN_STEP_INSTRUCTIONS = 20
"""What one step of the counted pattern matcher (``kv.lua_patterns``, in Python) counts."""
C_MATCH_STEPS_PER_INSTRUCTION = 4
"""A pattern call runs in Lua's C matcher when a bound on its steps, counted at this many per
instruction, fits in what is left of the budget; it counts that much, whatever it finds."""
FAST_PATTERN_BYTES = 64  # and, if it has quantifiers, only so long a pattern (C recurses on them)
LIBRARY_ITEM_INSTRUCTIONS = 20
"""What one item (a value, a table) that ``cjson``/``cmsgpack`` encode or decode counts, on
top of the bytes and of building the tables in Lua (``kv.lua_libs``)."""
REPLY_DEPTH_MAX = 200  # nesting of a script's reply (deeper, or a table holding itself, refused)

_BINARY_CHUNK = b"\x1b"  # LUA_SIGNATURE's first byte


class Rand48:
    """Redis's ``math.random`` generator (the 48-bit linear congruential ``rand48``)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = 0
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.state = ((seed & 0xFFFFFFFF) << 16) | 0x330E

    def next_fraction(self) -> float:
        """The next number in [0, 1), as Redis's ``math.random`` makes it."""
        self.state = (0x5DEECE66D * self.state + 0xB) & ((1 << 48) - 1)
        return ((self.state >> 17) % 0x7FFFFFFF) / 0x7FFFFFFF


def compile_error(body: bytes) -> bytes | None:
    """Why ``body`` does not compile (``SCRIPT LOAD``'s refusal), or ``None``."""
    _, _, check, cell = _new_state(_no_call, 0, _Killed())
    try:
        message = check(body)
    finally:
        cell.clear()
    if message is None:
        return None
    return b"ERR Error compiling script (new function): " + clean_line(message)


def run_script(
    body: bytes,
    sha: bytes,
    keys: tuple[bytes, ...],
    args: tuple[bytes, ...],
    call: CommandRunner,
    seed: int,
) -> tuple[Result, bool]:
    """Run ``body`` (whose sha1 is ``sha``) with ``KEYS``/``ARGV``; ``call`` runs its
    ``redis.call`` s.  The reply as a result tree (errors are ``ErrorReply`` s, never raised)
    and whether the body compiled (only then does ``EVAL`` keep it in the cache, as Redis)."""
    killed = _Killed()
    runtime, run, _, cell = _new_state(call, seed, killed)
    try:
        return _finish(runtime, run, body, sha, keys, args, killed)
    finally:
        cell.clear()  # the one cycle through the Lua state: freed now, not by a GC pass


def _finish(
    runtime: Any,
    run: Any,
    body: bytes,
    sha: bytes,
    keys: tuple[bytes, ...],
    args: tuple[bytes, ...],
    killed: _Killed,
) -> tuple[Result, bool]:
    sethook = runtime.globals()[b"debug"][b"sethook"]
    try:
        outcome = run(body, runtime.table_from(keys), runtime.table_from(args))
    except lua.LuaError as error:  # the stop raised again past the script (or out of memory)
        sethook()
        if not killed.yes:
            text = b"ERR " + clean_line(str(error).encode()) + b" script: " + sha + b"."
            return ErrorReply(text), True
        outcome = None
    if killed.yes:
        return ErrorReply(
            b"ERR Script killed: it ran past its budget of %d Lua instructions script: %s."
            % (SCRIPT_INSTRUCTIONS_MAX, sha)
        ), True
    assert outcome is not None
    kind = outcome[1]
    if kind == b"c":
        text = b"ERR Error compiling script (new function): " + clean_line(outcome[2])
        return ErrorReply(text), False
    if kind == b"x":
        text, source, line = outcome[2], outcome[3], outcome[4]
        where = b"" if source is None or line is None else b", on %s:%d" % (source, line)
        return ErrorReply(clean_line(text) + b" script: " + sha + where + b"."), True
    return script_result(outcome), True


class _Killed:
    __slots__ = ("yes",)

    def __init__(self) -> None:
        self.yes = False

    def __call__(self) -> None:
        self.yes = True


def _no_call(argv: list[bytes]) -> tuple[bytes, int]:
    return b"-ERR no commands here\r\n", 0


def _deny_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Python attributes are not reachable from scripts")


def _new_state(call: CommandRunner, seed: int, killed: _Killed) -> tuple[Any, Any, Any, list[Any]]:
    """A fresh sandboxed Lua state: the runtime, its ``run``, its compile check (``Any``:
    lupa's objects are untyped) and the cell through which ``redis.call`` reaches the runtime:
    clearing it breaks the reference cycle through the Lua state, so the state is freed at once
    (else thousands wait for a garbage collection, which then takes a tenth of a second)."""
    runtime = lua.LuaRuntime(
        encoding=None,
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        attribute_filter=_deny_attributes,
        max_memory=SCRIPT_MEMORY_BYTES_MAX,
    )
    rand = Rand48(seed)

    cell: list[Any] = [runtime]

    def invoke(*args: object) -> tuple[bool, object, int]:
        return invoke_call(cell[0], call, args)

    def sha1hex(text: object) -> bytes:
        if isinstance(text, bytes):
            return sha1_hex(text)
        return sha1_hex(b"%.14g" % text if isinstance(text, (int, float)) else b"")

    def reseed(number: object) -> None:
        rand.seed(int(number) if isinstance(number, (int, float)) and math.isfinite(number) else 0)

    boot = runtime.globals()[b"loadstring"](_boot_bytecode())
    run, check = boot(
        invoke,
        sha1hex,
        rand.next_fraction,
        reseed,
        killed,
        SCRIPT_INSTRUCTIONS_MAX,
        HOOK_INSTRUCTIONS,
        REPLY_DEPTH_MAX,
        runtime.table_from(_helpers(cell)),
    )
    return runtime, run, check, cell


def _helpers(cell: list[Any]) -> dict[bytes, object]:
    """What the sandbox's library needs from Python (held in its locals, never the script's);
    ``cell`` holds the runtime, for the decoders' value tables."""

    def with_table(answer: tuple[object, ...]) -> tuple[object, ...]:
        if answer[0] == b"ok":  # the decoded values as a Lua table (``build`` indexes it)
            return (answer[0], answer[1], cell[0].table_from(answer[2]), *answer[3:])
        return answer

    return {
        b"matcher": _matcher,
        b"plain_find": _plain_find,
        b"bit_op": lua_libs.bit_op,
        b"struct_pack": lua_libs.struct_pack,
        b"struct_unpack": lambda fmt, data, init: lua_libs.struct_unpack(fmt, data, int(init)),
        b"struct_size": lua_libs.struct_size,
        b"json_decode": lambda text, most: with_table(lua_libs.json_decode(text, int(most))),
        b"json_encode": lambda value, most: lua_libs.json_encode(value, int(most)),
        b"msgpack_encode": lambda values, n, most: lua_libs.msgpack_encode(values, n, int(most)),
        b"msgpack_decode": lambda data, offset, limit, most: with_table(
            lua_libs.msgpack_decode(data, int(offset), int(limit), int(most))
        ),
        b"library_item_instructions": LIBRARY_ITEM_INSTRUCTIONS,
        b"libraries_code": _compiled(LIBRARIES_LUA),
        b"strings_code": _compiled(STRINGS_LUA),
        b"bytes_per_instruction": BYTES_PER_INSTRUCTION,
        b"pattern_step_instructions": PATTERN_STEP_INSTRUCTIONS,
        b"c_match_steps_per_instruction": C_MATCH_STEPS_PER_INSTRUCTION,
        b"fast_pattern_bytes": FAST_PATTERN_BYTES,
    }


def _matcher(subject: bytes, pattern: bytes) -> Callable[..., tuple[object, ...]]:
    """One subject and pattern, searched from successive positions (``gsub``, ``gmatch``)."""

    def search(start: int, anchored: bool, whole: bool, steps_max: int) -> tuple[object, ...]:
        return lua_patterns.search(subject, pattern, int(start), anchored, whole, int(steps_max))

    return search


def _plain_find(subject: bytes, pattern: bytes, start: int) -> int:
    return subject.find(pattern, int(start))


@functools.cache
def _boot_bytecode() -> bytes:
    """The sandbox's code compiled once (Lua bytecode of this process's own Lua): loading it
    into each fresh state costs a third of compiling the source again.  Scripts themselves may
    not be bytecode (``compile`` refuses it); this is ours."""
    return _compiled(SANDBOX_LUA)


@functools.cache
def _compiled(source: str) -> bytes:
    """Trusted Lua compiled once, named ``sandbox`` (errors raised in it say so)."""
    compiler = lua.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    wrapped = b"return function(...) " + source.encode() + b" end"
    function = compiler.globals()[b"loadstring"](wrapped, b"=sandbox")()
    code: bytes = compiler.globals()[b"string"][b"dump"](function)
    return code
