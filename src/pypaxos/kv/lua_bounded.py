"""Lua code loaded into a run's state on use (``kv.scripts`` compiles it once): the bounded
``string`` and ``table`` functions, and Redis's libraries (``cjson``, ``cmsgpack``, ``struct``,
``bit``, over ``kv.lua_libs``), each counting its work against the script's budget."""

# The bounded string and table libraries, loaded into a run's state when its script first
# uses a string or table function (a script that only calls redis.call never pays for them).
STRINGS_LUA = r"""
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
LIBRARIES_LUA = r"""
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
