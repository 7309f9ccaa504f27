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

Conversions follow Redis 7.0's RESP2 rules.  A command's reply to Lua: bulk -> string, null ->
``false``, integer -> number, status -> ``{ok=...}``, error -> ``{err=...}`` (``redis.pcall``)
or raised (``redis.call``), array -> table.  The script's value to a reply: string -> bulk,
number -> integer (truncated), ``true`` -> 1, ``false``/``nil`` -> null, ``{err=...}`` ->
error, ``{ok=...}`` -> status, other tables -> array up to the first ``nil``.

The script cache (``ScriptCache``) is replicated: ``EVAL`` and ``SCRIPT LOAD`` add to it
through the log, ``EVALSHA`` is resolved in the state machine, so every node knows every script
and the cache survives a leader change; it is bounded and in the snapshot.  A body that does
not compile is not added (by ``EVAL`` inside ``MULTI`` or not), as in Redis.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from hashlib import sha1
from typing import Any, Protocol

import lupa.lua51 as lua

from pypaxos.kv import lua_libs, lua_patterns
from pypaxos.kv.commands import (
    INT64_MAX,
    INT64_MIN,
    Command,
    ErrorReply,
    Integer,
    Replies,
    Result,
    Status,
    Value,
)

SCRIPT_INSTRUCTIONS_MAX = 10_000_000
"""Lua VM instructions one script may run (about 0.1 s of CPython's embedded Lua 5.1)."""
CALL_INSTRUCTIONS = 1_000
"""What one ``redis.call`` counts against the budget at least (its Python work is not Lua
instructions); its bytes and the keys it visits count on top (``CommandRunner``)."""
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
SCRIPTS_MAX = 1_000
SCRIPT_CACHE_BYTES_MAX = 16 * 1024 * 1024

NOSCRIPT = b"NOSCRIPT No matching script. Please use EVAL."
_BINARY_CHUNK = b"\x1b"  # LUA_SIGNATURE's first byte


def sha1_hex(body: bytes) -> bytes:
    return sha1(body).hexdigest().encode()


class CommandRunner(Protocol):
    """Runs one ``redis.call`` for a script: the command's arguments in, its RESP2 reply and
    the keys it visited out (beyond the ones it names: a whole-keyspace command's count).

    The state machine implements it over a ``CommandTable`` (the server's own command
    planning), so a command answers a script exactly as it answers a client."""

    def __call__(self, argv: list[bytes]) -> tuple[bytes, int]: ...


ScriptCall = tuple[tuple[Command, ...], Callable[[Sequence[Result]], bytes]]


class CommandTable(Protocol):
    """What a ``redis.call`` means: the ops to execute and how their results make the RESP2
    reply, or the reply itself (an error, a constant).  Deterministic: every replica must be
    given the same table (``runtime.commands.script_command``)."""

    def __call__(self, argv: list[bytes]) -> ScriptCall | bytes: ...


class ScriptCache:
    """sha1 (hex) -> script body, least recently used first, bounded by ``SCRIPTS_MAX`` and
    ``SCRIPT_CACHE_BYTES_MAX`` (past them the least recently used go: their ``EVALSHA`` then
    answers ``NOSCRIPT``, and clients such as redis-py load them again)."""

    __slots__ = ("bodies", "total_bytes")

    def __init__(self) -> None:
        self.bodies: OrderedDict[bytes, bytes] = OrderedDict()
        self.total_bytes = 0

    def add(self, body: bytes) -> bytes:
        sha = sha1_hex(body)
        if sha in self.bodies:
            self.bodies.move_to_end(sha)
            return sha
        self.bodies[sha] = body
        self.total_bytes += len(body)
        while len(self.bodies) > SCRIPTS_MAX or (
            self.total_bytes > SCRIPT_CACHE_BYTES_MAX and len(self.bodies) > 1
        ):
            _, dropped = self.bodies.popitem(last=False)
            self.total_bytes -= len(dropped)
        return sha

    def get(self, sha: bytes) -> bytes | None:
        body = self.bodies.get(sha)
        if body is not None:
            self.bodies.move_to_end(sha)
        return body

    def exists(self, sha: bytes) -> bool:
        return sha.lower() in self.bodies

    def flush(self) -> None:
        self.bodies.clear()
        self.total_bytes = 0

    def state(self) -> tuple[bytes, ...]:
        return tuple(self.bodies.values())

    @classmethod
    def from_state(cls, bodies: tuple[bytes, ...]) -> ScriptCache:
        cache = cls()
        for body in bodies:
            cache.add(body)
        if len(cache.bodies) != len(bodies):
            raise ValueError("malformed snapshot: script cache over its bounds or repeated")
        return cache


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


# The sandbox, in Lua: trusted code that keeps what it needs in locals (the script cannot
# reach them: no debug library), builds the script's environment and returns ``run``.
_BOOT = r"""
local invoke, sha1hex, next_fraction, reseed, on_killed, budget, step, depth_max, helpers = ...
local sethook, getinfo, getmetatable_raw = debug.sethook, debug.getinfo, debug.getmetatable
local error, type, pairs, ipairs, select, rawget, rawset, setmetatable, setfenv, loadstring =
      error, type, pairs, ipairs, select, rawget, rawset, setmetatable, setfenv, loadstring
local xpcall, pcall, raw_tostring, floor, ceil, format, sub, find, gsub, tonumber =
      xpcall, pcall, tostring, math.floor, math.ceil, string.format, string.sub, string.find,
      string.gsub, tonumber
local raw_next, huge = next, math.huge
local null = newproxy(false)  -- cjson.null: a userdata, as Redis's (a NULL light userdata)
local used = 0

local function stop()
  error("Script killed: it ran past its budget of " .. budget .. " Lua instructions", 0)
end
local function over()
  on_killed()
  sethook(stop, "", 1)  -- from now on every instruction raises: no pcall can swallow it
  stop()
end
local function count()
  used = used + step
  if used > budget then over() end
end
-- Work done outside the Lua VM (a C library call, a helper in Python) counts too.
local function charge(instructions)
  used = used + instructions
  if used > budget then over() end
end
local function left() return budget - used end

-- An error as Lua raises it from a C function: prefixed with the line of whoever called the
-- library function, when that is the script (not pcall; not when the script called it in tail
-- position, which drops the script's frame).  The sandbox's own frames, and those its tail
-- calls dropped, are skipped.
local function fail(message)
  local level, info, dropped = 2, getinfo(2, "Sl"), false
  while info ~= nil and (info.source == "=sandbox" or info.what == "tail") do
    dropped = dropped or info.what == "tail"
    level = level + 1
    info = getinfo(level, "Sl")
  end
  if type(message) ~= "string" then error(message, 0) end
  if info ~= nil and info.source == "@user_script" and info.currentline > 0 then
    message = "user_script:" .. info.currentline .. ": " .. message
  elseif info ~= nil and info.what == "C" and not dropped then  -- called by pcall: no name
    message = gsub(message, "^(bad argument #%d+ to ')[^']*'", "%1?'")
  end
  error(message, 0)
end
local function arg_error(n, name, expected, value, given)
  local got = "no value"
  if given then got = type(value) end
  fail(format("bad argument #%d to '%s' (%s expected, got %s)", n, name, expected, got))
end
local function check_string(value, n, name, given)
  local kind = type(value)
  if kind == "string" then return value end
  if kind == "number" then return format("%.14g", value) end
  arg_error(n, name, "string", value, given)
end
local function to_integer(x)  -- lua_tointeger: truncation toward zero
  if x ~= x or x == huge or x == -huge then return 0 end
  if x >= 0 then return floor(x) end
  return ceil(x)
end
local function check_integer(value, n, name, given)
  local x = tonumber(value)
  if x == nil then arg_error(n, name, "number", value, given) end
  return to_integer(x)
end
local function opt_integer(value, n, name, default, given)
  if value == nil then return default end
  return check_integer(value, n, name, given)
end

local serials = setmetatable({}, {__mode = "k"})
local serial = 0
local function safe_tostring(v)
  if v == null then return "userdata: (nil)" end
  local kind = type(v)
  if kind == "table" or kind == "function" or kind == "thread" or kind == "userdata" then
    local mt = getmetatable_raw(v)
    if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then return raw_tostring(v) end
    local id = serials[v]
    if id == nil then serial = serial + 1; id = serial; serials[v] = id end
    return format("%s: 0x%08x", kind, id)
  end
  return raw_tostring(v)
end

-- redis.call and redis.pcall are C functions, as in Redis (coroutine.wrap makes one of a Lua
-- loop): a Lua closure called in tail position (``return redis.call(...)``) would drop the
-- script's frame, and with it the line an error reply names.  A raised error ends its
-- coroutine, so redis.call is then replaced by a fresh one.
local wrap, yield, unpack_args = coroutine.wrap, coroutine.yield, unpack
local redis = {}
local function make_call(raise)
  return wrap(function(...)
    local args = {n = select("#", ...), ...}
    while true do
      local ok, value, cost = invoke(unpack_args(args, 1, args.n))
      used = used + cost
      if not ok then
        value = {err = value}
        if raise then
          redis.call = make_call(true)
          error(value, 0)
        end
      end
      args = {n = 0}
      local function pack(...) args = {n = select("#", ...), ...} end
      pack(yield(value))
    end
  end)
end

local function trim(s)
  return (gsub(gsub(s, "^[\r\n]+", ""), "[\r\n]+$", ""))
end

local library = {
  call = make_call(true),
  pcall = make_call(false),
  sha1hex = function(s)
    if type(s) ~= "string" and type(s) ~= "number" then
      error("wrong number of arguments", 2)
    end
    if type(s) == "string" then charge(floor(#s / helpers.bytes_per_instruction) + 1) end
    return sha1hex(s)
  end,
  error_reply = function(msg)
    if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
    if sub(msg, 1, 1) ~= "-" then msg = "-" .. msg end
    local space = find(msg, " ", 1, true)
    if space == nil then return {err = "ERR " .. trim(sub(msg, 2))} end
    return {err = sub(msg, 2, space - 1) .. " " .. trim(sub(msg, space + 1))}
  end,
  status_reply = function(msg)
    if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
    return {ok = msg}
  end,
  log = function() end,
  setresp = function(version)
    if version ~= 2 then error("RESP3 replies in scripts are not supported", 2) end
  end,
  set_repl = function() end,
  replicate_commands = function() return true end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
for name, value in pairs(library) do redis[name] = value end

local function copy(library, skip)
  local out = {}
  for name, value in pairs(library) do
    if name ~= skip then out[name] = value end
  end
  return out
end

local env = {}
for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
                       "rawget", "rawset", "select", "tonumber", "type", "unpack", "xpcall",
                       "setmetatable", "getmetatable", "_VERSION"}) do
  env[name] = _G[name]
end
env.tostring = safe_tostring
-- Redis's pcall: an error raised as {err=...} (redis.call's) is caught as its text.
local function caught(ok, ...)
  if ok then return true, ... end
  local err = ...
  if type(err) == "table" then
    local text = rawget(err, "err")
    if type(text) == "string" then return false, text end
  end
  return false, err
end
env.pcall = function(...) return caught(pcall(...)) end

-- pairs and next in an order every replica shares.  A table's order follows its keys' hashes,
-- and a table, function or coroutine hashes by its address: such a key makes the order (of
-- every key, as it moves the others) differ between replicas.  Iterating a table holding one
-- is refused, before any step, so the refusal itself is the same everywhere.
local function plain_key(k)
  local kind = type(k)
  return kind == "string" or kind == "number" or kind == "boolean"
end
local function unordered(k)
  fail("cannot iterate a table keyed by a " .. type(k) ..
       ": its order differs between replicas (use string or number keys)")
end
local function check_keys(t)
  local k = raw_next(t)
  while k ~= nil do
    if not plain_key(k) then unordered(k) end
    k = raw_next(t, k)
  end
end
env.next = function(...)
  local t, k = ...
  if type(t) ~= "table" then arg_error(1, "next", "table", t, select("#", ...) >= 1) end
  check_keys(t)
  return raw_next(t, k)
end
env.pairs = function(...)
  local t = ...
  if type(t) ~= "table" then arg_error(1, "pairs", "table", t, select("#", ...) >= 1) end
  check_keys(t)
  return function(current, k)
    if current ~= t then return env.next(current, k) end
    local key, value = raw_next(current, k)
    if key ~= nil and not plain_key(key) then unordered(key) end  -- added while iterating
    return key, value
  end, t, nil
end
-- The string and table libraries, bounded: loaded on first use (below).
local per_byte = helpers.bytes_per_instruction
local function charge_bytes(n) charge(floor(n / per_byte) + 1) end
env.math = copy(math)
env.math.random = function(...)
  local r = next_fraction()
  local n = select("#", ...)
  if n == 0 then return r end
  local low, high = 1, ...
  if n == 2 then low, high = ... end
  if n > 2 then error("wrong number of arguments", 2) end
  if type(low) ~= "number" or type(high) ~= "number" then
    error("bad argument to 'random' (number expected)", 2)
  end
  low, high = floor(low), floor(high)
  if low > high then error("bad argument to 'random' (interval is empty)", 2) end
  return floor(r * (high - low + 1)) + low
end
env.math.randomseed = function(seed)
  if type(seed) ~= "number" then error("bad argument to 'randomseed' (number expected)", 2) end
  reseed(seed)
end
env.redis = redis
env._G = env
-- The bounded string and table libraries: loaded on first use, by name or by a string's
-- method (the string metatable's __index first points at a loader).
local strings_loaded = false
local function load_strings()
  if strings_loaded then return end
  strings_loaded = true
  loadstring(helpers.strings_code)(charge, charge_bytes, left, over, fail, arg_error,
                                   check_string, check_integer, opt_integer, helpers, env,
                                   copy, raw_next, getmetatable_raw)
end
getmetatable_raw("").__index = setmetatable({}, {__index = function(_, name)
  load_strings()
  return rawget(env, "string")[name]
end})
env.getmetatable = function(...)
  if type((...)) == "string" then load_strings() end
  return getmetatable(...)
end

-- Redis's libraries (cjson, cmsgpack, struct, bit): loaded on first use.
local libraries = {cjson = true, cmsgpack = true, struct = true, bit = true}
local function load_libraries()
  libraries = nil
  local chunk = loadstring(helpers.libraries_code)
  local cjson, cmsgpack, struct, bit = chunk(charge, charge_bytes, left, over, fail, arg_error,
                                             check_string, opt_integer, helpers, null)
  rawset(env, "cjson", cjson)
  rawset(env, "cmsgpack", cmsgpack)
  rawset(env, "struct", struct)
  rawset(env, "bit", bit)
end
setmetatable(env, {
  __index = function(_, name)
    if libraries ~= nil and libraries[name] then
      load_libraries()
      return rawget(env, name)
    end
    if not strings_loaded and (name == "string" or name == "table") then
      load_strings()
      return rawget(env, name)
    end
    local shown = safe_tostring(name)
    error("Script attempted to access nonexistent global variable '" .. shown .. "'", 2)
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
})

local function handler(err)
  local level, info = 2, getinfo(2, "Sl")
  while info ~= nil and info.source ~= "@user_script" do
    level = level + 1
    info = getinfo(level, "Sl")
  end
  if type(err) ~= "table" then err = {err = "ERR " .. safe_tostring(err)} end
  if info ~= nil then
    rawset(err, "source", info.source)
    rawset(err, "line", info.currentline)
  end
  return err
end

local function shape(value, depth)
  local kind = type(value)
  if kind == "string" then return {"b", value} end
  if kind == "number" then return {"n", value} end
  if kind == "boolean" then
    if value then return {"n", 1} end
    return {"z"}
  end
  if kind ~= "table" then return {"z"} end
  if depth > depth_max then error("reached lua stack limit", 0) end
  local e = rawget(value, "err")
  if type(e) == "string" then return {"e", e} end
  local s = rawget(value, "ok")
  if type(s) == "string" then return {"s", s} end
  local out = {"a"}
  local i = 1
  while true do
    local item = rawget(value, i)
    if item == nil then break end
    out[i + 1] = shape(item, depth + 1)
    i = i + 1
  end
  return out
end

local function compile(body)
  if sub(body, 1, 1) == "\27" then return nil, "user_script: binary chunks are not accepted" end
  local fn, message = loadstring(body, "@user_script")
  if fn == nil then return nil, message end
  setfenv(fn, env)
  return fn
end

local function run(body, keys, argv)
  local fn, message = compile(body)
  if fn == nil then return {"c", message} end
  rawset(env, "KEYS", keys)
  rawset(env, "ARGV", argv)
  sethook(count, "", step)
  local ok, value = xpcall(fn, handler)
  local shaped_ok, shaped = false, nil
  if ok then shaped_ok, shaped = pcall(shape, value, 0) end
  sethook()
  if not ok then
    if type(value) ~= "table" then value = {err = "ERR " .. safe_tostring(value)} end
    local text = rawget(value, "err")
    if type(text) ~= "string" then text = "ERR unknown error" end
    return {"x", text, rawget(value, "source"), rawget(value, "line")}
  end
  if not shaped_ok then return {"e", "ERR " .. safe_tostring(shaped)} end
  return shaped
end

return run, function(body) local fn, message = compile(body); return message end
"""


# The bounded string and table libraries, loaded into a run's state when its script first
# uses a string or table function (a script that only calls redis.call never pays for them).
_STRINGS = r"""
local charge, charge_bytes, left, over, fail, arg_error, check_string, check_integer,
      opt_integer, helpers, env, copy, raw_next, getmetatable_raw = ...
local floor, ceil, format, sub, find, gsub, select, type, pcall, ipairs, tonumber, rawset =
      math.floor, math.ceil, string.format, string.sub, string.find, string.gsub, select, type,
      pcall, ipairs, tonumber, rawset
local per_byte = helpers.bytes_per_instruction
local strings, tables = copy(string, "dump"), copy(table)
rawset(env, "string", strings)
rawset(env, "table", tables)

-- C library calls, which the debug hook cannot see into: each counts its work (bytes,
-- elements, matcher steps) before or right after it runs, so no single call outruns the
-- budget by more than the heap limit allows (kv.lua_patterns has the matcher's side).
local c_string, c_table, unpack = string, table, unpack

-- A C function's own error, raised as if the script had called it directly.
local function relay(name, ok, ...)
  if ok then return ... end
  local message = ...
  if type(message) == "string" then
    message = gsub(gsub(message, "^sandbox:%d+: ", ""), "to '%?'", "to '" .. name .. "'", 1)
    -- The script's own error (a comparator's), or the VM's (comparing a number with a
    -- string), carries its position already or none, as it would in Redis.
    if find(message, "^user_script:") or find(message, "^attempt to ") then error(message, 0) end
  end
  fail(message)
end

strings.rep = function(...)
  local given = select("#", ...)
  local s, n = ...
  s = check_string(s, 1, "rep", given >= 1)
  n = check_integer(n, 2, "rep", given >= 2)
  if n > 0 and n < 2147483648 then charge_bytes(#s * n) end
  return c_string.rep(s, n)
end
local function sized(name, integers)
  local original = c_string[name]
  strings[name] = function(...)
    local given = select("#", ...)
    local s, i, j = ...
    s = check_string(s, 1, name, given >= 1)
    if integers > 0 then opt_integer(i, 2, name, 1, given >= 2) end
    if integers > 1 then opt_integer(j, 3, name, 1, given >= 3) end
    charge_bytes(#s)
    return original(s, i, j)
  end
end
sized("upper", 0) sized("lower", 0) sized("reverse", 0) sized("byte", 2)
strings.sub = function(...)
  local given = select("#", ...)
  local s, i, j = ...
  s = check_string(s, 1, "sub", given >= 1)
  i = check_integer(i, 2, "sub", given >= 2)
  j = opt_integer(j, 3, "sub", -1, given >= 3)
  local result = c_string.sub(s, i, j)
  charge_bytes(#result)
  return result
end
strings.format = function(...)
  local total = 0
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" then total = total + #v end
  end
  charge_bytes(total)
  return relay("format", pcall(c_string.format, ...))
end

local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"
local new_matcher, plain_find = helpers.matcher, helpers.plain_find
local c_steps, fast_pattern_bytes = helpers.c_match_steps_per_instruction,
                                    helpers.fast_pattern_bytes
local step_cost = helpers.pattern_step_instructions

local function is_plain(p)
  local nul = find(p, "\0", 1, true)
  if nul ~= nil then p = sub(p, 1, nul - 1) end
  return find(p, SPECIALS) == nil
end
-- Can Lua's C matcher run this within the budget left?  A bound on its steps: each start
-- position, times every way the quantified items (and %b) can split the rest, times the
-- pattern's length; without quantifiers that is linear, and its recursion is only per capture
-- (at most 32).  Then it runs, counted by its bound; otherwise kv.lua_patterns matches,
-- counted step by step, with a depth limit.
local function fast(n, p)
  charge_bytes(#p)
  local quantifiers = select(2, gsub(p, "[%*%+%-%?]", "")) + select(2, gsub(p, "%%b", ""))
  if quantifiers > 0 and #p > fast_pattern_bytes then return false end
  local cost = ceil((n + 1) ^ (quantifiers + 1) * (#p + 1) / c_steps)
  if cost > left() then return false end
  charge(cost)
  return true
end
local function matcher_for(s, p)
  charge_bytes(#s + #p)
  return new_matcher(s, p)
end
-- The next match at or after start: {status, steps, first, last, level, values...} (first
-- 0-based, last exclusive), or nil.
local function next_match(m, start, anchored, whole)
  local r = {m(start, anchored, whole, floor(left() / step_cost) + 1)}
  charge(r[2] * step_cost)
  if r[1] == "k" then over() end
  if r[1] == "e" then fail(r[3]) end
  if r[1] == "n" then return nil end
  return r
end
local function start_of(init, n)
  if init < 0 then init = n + init + 1 end
  init = init - 1
  if init < 0 then return 0 end
  if init > n then return n end
  return init
end

local function find_or_match(name, is_find)
  local original = c_string[name]
  strings[name] = function(...)
    local given = select("#", ...)
    local s, p, init, plain = ...
    s = check_string(s, 1, name, given >= 1)
    p = check_string(p, 2, name, given >= 2)
    local n = #s
    local start = start_of(opt_integer(init, 3, name, 1, given >= 3), n)
    if is_find and (plain or is_plain(p)) then
      charge_bytes(n - start + #p)
      local at = plain_find(s, p, start)
      if at < 0 then return nil end
      return at + 1, at + #p
    end
    if fast(n - start, p) then return relay(name, pcall(original, s, p, start + 1)) end
    local anchored = sub(p, 1, 1) == "^"
    if anchored then p = sub(p, 2) end
    local r = next_match(matcher_for(s, p), start, anchored, not is_find)
    if r == nil then return nil end
    if is_find then return r[3] + 1, r[4], unpack(r, 6) end
    return unpack(r, 6)
  end
end
find_or_match("find", true)
find_or_match("match", false)

strings.gmatch = function(...)
  local given = select("#", ...)
  local s, p = ...
  s = check_string(s, 1, "gmatch", given >= 1)
  p = check_string(p, 2, "gmatch", given >= 2)
  if fast(#s, p) then return relay("gmatch", pcall(c_string.gmatch, s, p)) end
  local m, position, n = matcher_for(s, p), 0, #s
  return function()
    if position > n then return nil end
    local r = next_match(m, position, false, true)
    if r == nil then position = n + 1 return nil end
    position = r[4]
    if r[4] == r[3] then position = position + 1 end
    return unpack(r, 6)
  end
end

local function as_text(value)
  if type(value) == "number" then return format("%.14g", value) end
  return value
end
local function expand(repl, r, whole)
  local out, i = {}, 1
  while true do
    local j = find(repl, "%", i, true)
    if j == nil then out[#out + 1] = sub(repl, i) break end
    out[#out + 1] = sub(repl, i, j - 1)
    local d = sub(repl, j + 1, j + 1)
    if d == "" then
      out[#out + 1] = "\0"  -- Lua 5.1 reads the string's terminating NUL
    elseif d == "0" then
      out[#out + 1] = whole
    elseif find(d, "^%d") then
      local index, level = d + 0, r[5]
      if (level == 0 and index ~= 1) or index > level and level > 0 then
        fail("invalid capture index")
      end
      out[#out + 1] = as_text(r[5 + index])
    else
      out[#out + 1] = d
    end
    i = j + 2
  end
  return c_table.concat(out)
end
local function replacement(s, r, kind, repl)
  local whole = sub(s, r[3] + 1, r[4])
  local value
  if kind == "string" then return expand(repl, r, whole) end
  if kind == "table" then value = repl[r[6]] else value = repl(unpack(r, 6)) end
  if not value then return whole end
  local shown = type(value)
  if shown ~= "string" and shown ~= "number" then
    fail("invalid replacement value (a " .. shown .. ")")
  end
  return as_text(value)
end
strings.gsub = function(...)
  local given = select("#", ...)
  local s, p, repl, max_n = ...
  s = check_string(s, 1, "gsub", given >= 1)
  p = check_string(p, 2, "gsub", given >= 2)
  local kind = type(repl)
  if kind == "number" then repl, kind = format("%.14g", repl), "string" end
  if kind ~= "string" and kind ~= "table" and kind ~= "function" then
    fail("bad argument #3 to 'gsub' (string/function/table expected)")
  end
  local n = #s
  local limit = opt_integer(max_n, 4, "gsub", n + 1, given >= 4)
  if fast(n, p) then
    local result, count = relay("gsub", pcall(c_string.gsub, s, p, repl, limit))
    charge_bytes(#result)
    return result, count
  end
  local anchored = sub(p, 1, 1) == "^"
  if anchored then p = sub(p, 2) end
  local m = matcher_for(s, p)
  local parts, src, count = {}, 0, 0
  while count < limit do
    local r = next_match(m, src, anchored, true)
    if r == nil then break end
    local first, last = r[3], r[4]
    parts[#parts + 1] = sub(s, src + 1, first)
    count = count + 1
    parts[#parts + 1] = replacement(s, r, kind, repl)
    if last > first then
      src = last
    elseif first < n then
      parts[#parts + 1] = sub(s, first + 1, first + 1)
      src = first + 1
    else
      src = n + 1
      break
    end
    if anchored then break end
  end
  parts[#parts + 1] = sub(s, src + 1)
  local result = c_table.concat(parts)
  charge_bytes(#result)
  return result, count
end

-- table: the functions that copy, shift or compare every element.
local function length(t) if type(t) == "table" then return #t end return 0 end
tables.concat = function(...)
  local t = ...
  charge(length(t) + 1)
  local result = relay("concat", pcall(c_table.concat, ...))
  charge_bytes(#result)
  return result
end
tables.insert = function(...)
  local t = ...
  charge(length(t) + 1)
  relay("insert", pcall(c_table.insert, ...))
end
tables.remove = function(...)
  local t = ...
  charge(length(t) + 1)
  return relay("remove", pcall(c_table.remove, ...))
end
tables.sort = function(...)
  local n = length((...))
  if n > 1 then charge(ceil(n * (1 + math.log(n) / math.log(2)))) end
  relay("sort", pcall(c_table.sort, ...))
end
tables.maxn = function(...)
  local t = ...
  if type(t) == "table" then for _ in raw_next, t do end end  -- counts its keys
  return relay("maxn", pcall(c_table.maxn, ...))
end
tables.foreach = function(t, f)
  if type(t) ~= "table" then arg_error(1, "foreach", "table", t, true) end
  for k, v in env.pairs(t) do
    local result = f(k, v)
    if result ~= nil then return result end
  end
end
tables.foreachi = function(...)
  local t = ...
  charge(length(t) + 1)
  return relay("foreachi", pcall(c_table.foreachi, ...))
end


-- Strings' methods ("x"):rep(n) are these, not the C library's.
getmetatable_raw("").__index = strings
"""


# Redis's libraries, loaded into a run's state only when its script first names one of them
# (most scripts do not: a fresh state stays cheap).  Trusted code, given the sandbox's locals.
_LIBRARIES = r"""
local charge, charge_bytes, left, over, fail, arg_error, check_string, opt_integer, helpers,
      null = ...
local floor, format, sub, select, type, tonumber, rawset, ipairs, unpack =
      math.floor, string.format, string.sub, select, type, tonumber, rawset, ipairs, unpack
local item_cost = helpers.library_item_instructions
local function items_left() return floor(left() / item_cost) + 1 end
local function check_number(value, n, name, given)
  local x = tonumber(value)
  if x == nil then arg_error(n, name, "number", value, given) end
  return x
end
-- A helper's answer: ("ok", values...), ("e", message), ("k") past the budget, or a bad
-- argument: ("a", index, expected) / ("r", index, reason).
local function answer(name, args, given, status, ...)
  if status == "ok" then return ... end
  if status == "k" then over() end
  if status == "a" then
    local index, expected = ...
    arg_error(index, name, expected, args[index], index <= given)
  end
  if status == "r" then
    local index, reason = ...
    fail(format("bad argument #%d to '%s' (%s)", index, name, reason))
  end
  fail((...))
end

-- Tables from a decoder's stream, made here (counted) in document order, as Redis's
-- decoders make them, so that pairs visits their keys in Redis's order.
local function build(kinds, values)
  local roots, open, is_map, key, has_key, counts, depth, vi = {}, {}, {}, {}, {}, {}, 0, 0
  for i = 1, #kinds do
    local kind = sub(kinds, i, i)
    local value, complete = nil, true
    if kind == "a" or kind == "o" then
      depth = depth + 1
      open[depth], is_map[depth], has_key[depth], counts[depth] = {}, kind == "o", false, 0
      complete = false
    elseif kind == "e" then
      value = open[depth]
      open[depth] = nil
      depth = depth - 1
    elseif kind == "v" then
      vi = vi + 1
      value = values[vi]
    elseif kind == "z" then value = null
    elseif kind == "t" then value = true
    elseif kind == "f" then value = false
    end
    if complete then
      if depth == 0 then
        roots[#roots + 1] = value
      elseif not is_map[depth] then
        local n = counts[depth] + 1
        counts[depth] = n
        rawset(open[depth], n, value)
      elseif has_key[depth] then
        local k = key[depth]
        if k == nil then fail("table index is nil") end
        if k ~= k then fail("table index is NaN") end
        rawset(open[depth], k, value)
        has_key[depth] = false
      else
        key[depth], has_key[depth] = value, true
      end
    end
  end
  return roots
end

local decode_json, encode_json = helpers.json_decode, helpers.json_encode
local cjson = {null = null}
cjson.decode = function(...)
  local given = select("#", ...)
  if given ~= 1 then fail("bad argument #1 to 'decode' (expected 1 argument)") end
  local text = check_string((...), 1, "decode", true)
  charge_bytes(#text)
  local kinds, values = answer("decode", {}, given, decode_json(text, items_left()))
  charge(#kinds * item_cost)
  return build(kinds, values)[1]
end
cjson.encode = function(...)
  local given = select("#", ...)
  if given ~= 1 then fail("bad argument #1 to 'encode' (expected 1 argument)") end
  local text, items = answer("encode", {}, given, encode_json((...), items_left()))
  charge(items * item_cost)
  charge_bytes(#text)
  return text
end
for _, name in ipairs({"encode_keep_buffer", "encode_max_depth", "decode_max_depth",
                       "encode_number_precision", "encode_invalid_numbers",
                       "decode_invalid_numbers", "encode_sparse_array"}) do
  cjson[name] = function() fail("cjson." .. name .. " is not available (fixed settings)") end
end

local pack_msgpack, unpack_msgpack = helpers.msgpack_encode, helpers.msgpack_decode
local cmsgpack = {}
cmsgpack.pack = function(...)
  local given = select("#", ...)
  if given == 0 then fail("MessagePack pack needs input.") end
  local text, items = answer("pack", {}, given, pack_msgpack({...}, given, items_left()))
  charge(items * item_cost)
  charge_bytes(#text)
  return text
end
local function unpack_full(name, s, limit, offset, decode_all)
  charge_bytes(#s)
  if offset < 0 or limit < 0 then
    fail(format("Invalid request to unpack with offset of %d and limit of %d.", offset, #s))
  end
  if offset > #s then
    fail(format("Start offset %d greater than input length %d.", offset, #s))
  end
  local kinds, values, count, after = answer(name, {}, 0,
                                            unpack_msgpack(s, offset, decode_all and -1 or limit,
                                                           items_left()))
  charge(#kinds * item_cost)
  local roots = build(kinds, values)
  if count > 7000 then fail("too many results to unpack") end
  if decode_all then return unpack(roots, 1, count) end
  if after >= #s then after = -1 end
  return after, unpack(roots, 1, count)
end
cmsgpack.unpack = function(...)
  local given = select("#", ...)
  return unpack_full("unpack", check_string((...), 1, "unpack", given >= 1), 0, 0, true)
end
cmsgpack.unpack_one = function(...)
  local given = select("#", ...)
  local s, offset = ...
  s = check_string(s, 1, "unpack_one", given >= 1)
  return unpack_full("unpack_one", s, 1, opt_integer(offset, 2, "unpack_one", 0, given >= 2))
end
cmsgpack.unpack_limit = function(...)
  local given = select("#", ...)
  local s, limit, offset = ...
  s = check_string(s, 1, "unpack_limit", given >= 1)
  limit = opt_integer(limit, 2, "unpack_limit", 0, given >= 2)
  offset = opt_integer(offset, 3, "unpack_limit", 0, given >= 3)
  return unpack_full("unpack_limit", s, limit, offset, limit == 0 and offset == 0)
end

local struct_pack, struct_unpack, struct_size =
      helpers.struct_pack, helpers.struct_unpack, helpers.struct_size
local struct = {}
struct.pack = function(...)
  local given = select("#", ...)
  local args = {...}
  local fmt = check_string(args[1], 1, "pack", given >= 1)
  local total = #fmt * 32
  for i = 2, given do
    if type(args[i]) == "string" then total = total + #args[i] end
  end
  charge_bytes(total)
  return answer("pack", args, given, struct_pack(fmt, unpack(args, 2, given)))
end
struct.unpack = function(...)
  local given = select("#", ...)
  local fmt, data, init = ...
  fmt = check_string(fmt, 1, "unpack", given >= 1)
  data = check_string(data, 2, "unpack", given >= 2)
  init = opt_integer(init, 3, "unpack", 1, given >= 3)
  if init <= 0 then fail("bad argument #3 to 'unpack' (offset must be 1 or greater)") end
  charge_bytes(#fmt * 8 + #data)
  return answer("unpack", {fmt, data, init}, given, struct_unpack(fmt, data, init))
end
struct.size = function(...)
  local given = select("#", ...)
  local fmt = check_string((...), 1, "size", given >= 1)
  charge_bytes(#fmt)
  return answer("size", {fmt}, given, struct_size(fmt))
end

local bit_op = helpers.bit_op
local bit = {}
local function bit_function(name, arity)
  bit[name] = function(...)
    local given = select("#", ...)
    local args = {...}
    local count = arity
    if arity == 0 then count = given end  -- band, bor, bxor: all of them
    if count < 1 then count = 1 end
    if name == "tohex" and given >= 2 then count = 2 end
    for i = 1, count do args[i] = check_number(args[i], i, name, i <= given) end
    return bit_op(name, unpack(args, 1, count))
  end
end
for _, name in ipairs({"tobit", "bnot", "bswap", "tohex"}) do bit_function(name, 1) end
for _, name in ipairs({"band", "bor", "bxor"}) do bit_function(name, 0) end
for _, name in ipairs({"lshift", "rshift", "arshift", "rol", "ror"}) do bit_function(name, 2) end

return cjson, cmsgpack, struct, bit
"""


def compile_error(body: bytes) -> bytes | None:
    """Why ``body`` does not compile (``SCRIPT LOAD``'s refusal), or ``None``."""
    _, _, check, cell = _new_state(_no_call, 0, _Killed())
    try:
        message = check(body)
    finally:
        cell.clear()
    if message is None:
        return None
    return b"ERR Error compiling script (new function): " + _clean(message)


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
            text = b"ERR " + _clean(str(error).encode()) + b" script: " + sha + b"."
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
        text = b"ERR Error compiling script (new function): " + _clean(outcome[2])
        return ErrorReply(text), False
    if kind == b"x":
        text, source, line = outcome[2], outcome[3], outcome[4]
        where = b"" if source is None or line is None else b", on %s:%d" % (source, line)
        return ErrorReply(_clean(text) + b" script: " + sha + where + b"."), True
    return _result(outcome), True


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
        return _invoke(cell[0], call, args)

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
        b"libraries_code": _compiled(_LIBRARIES),
        b"strings_code": _compiled(_STRINGS),
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
    return _compiled(_BOOT)


@functools.cache
def _compiled(source: str) -> bytes:
    """Trusted Lua compiled once, named ``sandbox`` (errors raised in it say so)."""
    compiler = lua.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    wrapped = b"return function(...) " + source.encode() + b" end"
    function = compiler.globals()[b"loadstring"](wrapped, b"=sandbox")()
    code: bytes = compiler.globals()[b"string"][b"dump"](function)
    return code


def _invoke(
    runtime: lua.LuaRuntime, call: CommandRunner, args: tuple[object, ...]
) -> tuple[bool, object, int]:
    """One ``redis.call``/``redis.pcall``: ``(True, value for Lua, cost)`` or ``(False, error
    text, cost)``; the cost (in instructions) is what the call counts against the budget."""
    if not args:
        return False, b"ERR Please specify at least one argument for this redis lib call", 0
    argv: list[bytes] = []
    for arg in args:
        if isinstance(arg, bytes):
            argv.append(arg)
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            argv.append(b"%.17g" % arg)
        else:
            return False, b"ERR Lua redis lib command arguments must be strings or integers", 0
    reply, visited = call(argv)
    cost = CALL_INSTRUCTIONS + sum(map(len, argv)) + len(reply) + visited
    value, _ = _parse_reply(reply, 0)
    if isinstance(value, _ErrorText):
        return False, value.text, cost
    return True, _to_lua(runtime, value), cost


class _ErrorText:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


class _StatusText:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


_Parsed = bytes | int | bool | _ErrorText | _StatusText | list["_Parsed"]


def _parse_reply(data: bytes, position: int) -> tuple[_Parsed, int]:
    """One RESP2 reply from ``data`` at ``position`` (our own server's, so well formed)."""
    end = data.index(b"\r\n", position)
    kind, line = data[position : position + 1], data[position + 1 : end]
    after = end + 2
    if kind == b"+":
        return _StatusText(line), after
    if kind == b"-":
        return _ErrorText(line), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return False, after
        return data[after : after + length], after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return False, after
        items: list[_Parsed] = []
        for _ in range(count):
            item, after = _parse_reply(data, after)
            items.append(item)
        return items, after
    if kind == b"_":  # RESP3 null, should a planner answer one
        return False, after
    raise ValueError(f"unexpected reply {data[position : position + 16]!r}")


def _to_lua(runtime: Any, value: _Parsed) -> object:
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    if isinstance(value, _StatusText):
        return runtime.table_from({b"ok": value.text})
    if isinstance(value, _ErrorText):
        return runtime.table_from({b"err": value.text})
    return value


def _result(table: Any) -> Result:
    """A shaped Lua value (``shape`` in the sandbox: a plain table ``{kind, payload...}``) as a
    result.  ``Any``: a Lua table, typed by its contents only."""
    kind = table[1]
    if kind == b"b":
        return Value(table[2])
    if kind == b"n":
        return Integer(_to_integer(table[2]))
    if kind == b"e":
        return ErrorReply(_clean(table[2]))
    if kind == b"s":
        return Status(_clean(table[2]))
    if kind == b"a":
        items: list[Result] = []
        index = 2
        while (item := table[index]) is not None:
            items.append(_result(item))
            index += 1
        return Replies(tuple(items))
    return Value(None)


def _to_integer(number: int | float) -> int:
    """A Lua number as Redis replies it: truncated to a 64-bit integer (C's cast on x86-64:
    out of range and NaN give the lowest integer)."""
    if isinstance(number, int):
        return number if INT64_MIN <= number <= INT64_MAX else INT64_MIN
    if not math.isfinite(number) or not INT64_MIN <= number < 2.0**63:
        return INT64_MIN
    return int(number)


def _clean(text: bytes) -> bytes:
    """An error or status line: Redis replaces its CR and LF with spaces."""
    return text.replace(b"\r", b" ").replace(b"\n", b" ")
