"""The script sandbox, in Lua (``kv.scripts`` compiles it once and boots every run with it).

Trusted code that keeps what it needs in locals (the script cannot reach them: no debug
library), builds the script's environment (the read-only globals, ``redis``, the budget hook,
the ordered iteration) and returns ``run`` and the compile check.
"""

SANDBOX_LUA = r"""
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
