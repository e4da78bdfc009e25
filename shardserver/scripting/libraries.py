"""The C libraries Redis 7.0 loads into a script's Lua: cjson, bit, cmsgpack and struct.

Redis links lua-cjson 2.1.0, LuaBitOp 1.0.2, lua-cmsgpack 0.4.0 and Roberto Ierusalimschy's
struct library 0.2 (with Redis's fixes) into its Lua 5.1. This module owns our copies of them:
each is Lua 5.1 source, run once per interpreter by :func:`install`, that answers what the C
library answers (values, formatting, and error texts: ``bad argument #1 to 'band' (number
expected, got no value)``, ``Cannot serialise function: type not supported``, ``Expected value
but found T_END at character 1`` ...). Python helps only where Lua 5.1 cannot do the work itself
(packing and unpacking IEEE floats and doubles, for cmsgpack and struct).

struct answers as redis-server 7.0 built for x86-64 does, where the C leaves it to the machine:
sizes (long and size_t are 8 bytes, int 4, the ``!`` alignment 8, little-endian by default),
how a double becomes an integer (truncated; NaN, -inf and below -2^63 the "integer indefinite"
2^63; an unsigned one of 2^64 and more 0), and what ``i9`` to ``i32`` keep (the low 64 bits,
sign-extended by a shift counted modulo 64).

An error such a C function raises carries the position of its Lua caller (what
``luaL_error`` does), and a script's ``return cjson.encode(x)`` keeps the script's frame (its
line is in the error reply). Each public function is therefore a C function in front of the Lua
code: see ``lib.export``.

Known differences: an argument error names the function by its field (Redis's lauxlib names it
as its caller does: ``'?'`` under ``pcall(struct.pack, 'z')``, the local's name through a local);
``table index is nil`` (a cmsgpack map with a nil or NaN key) carries the caller's position,
which Redis's has not; ``cjson.null`` is a userdata of our own, not a NULL lightuserdata.
"""

from __future__ import annotations

import math
import struct as _struct
from typing import Any

#: Helpers shared by the libraries: argument checks that word their errors as ``lauxlib``
#: does, and the wrapper that moves an error's position to the caller.
_COMMON = r"""
local type, error, pcall, select, tostring, tonumber, floor, ceil, unpack = type, error, pcall,
  select, tostring, tonumber, math.floor, math.ceil, unpack
local lib = {}

local function typename(n, ...)
  if select('#', ...) < n then return 'no value' end
  return type((select(n, ...)))
end
lib.typename = typename

function lib.argerror(fname, n, extra)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. extra .. ")", 0)
end

-- luaL_checknumber: numbers and numeric strings.
function lib.checknumber(fname, n, ...)
  local v = select(n, ...)
  local x = tonumber(v)
  if x == nil or (type(v) ~= 'number' and type(v) ~= 'string') then
    lib.argerror(fname, n, 'number expected, got ' .. typename(n, ...))
  end
  return x
end

-- luaL_checklstring: strings and numbers (as their text).
function lib.checkstring(fname, n, ...)
  local v = select(n, ...)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then return tostring(v) end
  lib.argerror(fname, n, 'string expected, got ' .. typename(n, ...))
end

-- luaL_checkinteger's lua_Integer on x86-64: truncated; NaN and what is out of range come out
-- as cvttsd2si's "integer indefinite", -2^63.
function lib.tointeger(x)
  if x ~= x or x >= 9223372036854775808 or x < -9223372036854775808 then
    return -9223372036854775808
  end
  return x < 0 and ceil(x) or floor(x)
end

-- What lua_pushfstring's %d prints of a lua_Integer cast to int: its low 32 bits, signed.
function lib.int32(x)
  local v = x % 4294967296
  if v >= 2147483648 then v = v - 4294967296 end
  return v
end

-- luaL_checkstack: a C function holds at most LUAI_MAXCSTACK (8000) values at a time.
function lib.checkstack(used, space, what)
  if used + space > 8000 then error('stack overflow (' .. what .. ')', 0) end
end

-- t[1] .. t[n] as values, as many as a C function may return: unpack() counts its three
-- arguments against the same limit, so the first two go apart.
function lib.spread(t, n)
  if n <= 2 then return unpack(t, 1, n) end
  return t[1], t[2], unpack(t, 3, n)
end

-- A C function's error carries its Lua caller's position (luaL_error), and a script's
-- ``return cjson.encode(x)`` keeps the script's frame because a tail call into a C function is
-- an ordinary call. A Lua function would lose both, so each public function is the C function
-- coroutine.wrap makes: it serves calls one after another in its coroutine (tail calls keep
-- that coroutine's stack flat); an error ends the coroutine, and leaves the library a fresh one
-- first, and coroutine.wrap's C side adds the caller's position to the message as luaL_error
-- does (none when the caller is C, as for pcall(cjson.decode, s)). Library code never calls
-- back into script code (it reads tables raw), so a public function never runs inside itself.
local wrap, yield, ipairs, pairs = coroutine.wrap, coroutine.yield, ipairs, pairs
function lib.export(t)
  local names = {}
  for name, f in pairs(t) do
    if type(f) == 'function' then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do
    local f, body = t[name], nil
    local function serve(ok, ...)
      if not ok then
        t[name] = wrap(body)
        error((...), 0)
      end
      return serve(pcall(f, yield(...)))
    end
    body = function(...) return serve(pcall(f, ...)) end
    t[name] = wrap(body)
  end
  return t
end

return lib
"""

_CJSON = r"""
local lib = ...
local type, error, pcall, select, tostring, tonumber, pairs, next, floor, format, concat,
  rawget, ipairs = type, error, pcall, select, tostring, tonumber, pairs, next, math.floor,
  string.format, table.concat, rawget, ipairs
local byte, sub, find, char, gsub, lower = string.byte, string.sub, string.find, string.char,
  string.gsub, string.lower
local argerror = lib.argerror
local huge = math.huge

-- lua-cjson's null is a NULL lightuserdata; a userdata of our own stands in for it.
local null = newproxy(false)

local ESCAPES = {['"'] = '\\"', ['\\'] = '\\\\', ['/'] = '\\/', ['\b'] = '\\b',
  ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t', ['\127'] = '\\u007f'}
for i = 0, 31 do
  local c = char(i)
  if not ESCAPES[c] then ESCAPES[c] = format('\\u%04x', i) end
end

local TOKEN_NAMES = {['{'] = 'T_OBJ_BEGIN', ['}'] = 'T_OBJ_END', ['['] = 'T_ARR_BEGIN',
  [']'] = 'T_ARR_END', [':'] = 'T_COLON', [','] = 'T_COMMA'}
local UNESCAPE = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n',
  r = '\r', t = '\t'}

local function make()
  local cjson = {_NAME = 'cjson', _VERSION = '2.1.0', null = null}
  -- The configuration lua-cjson keeps per module: what its setters change.
  local sparse_convert, sparse_ratio, sparse_safe = false, 2, 10
  local encode_depth, decode_depth, precision = 1000, 1000, 14
  local keep_buffer, encode_invalid, decode_invalid = true, false, true
  local number_format = '%.14g'

  local function check_args(fname, max, ...)
    if select('#', ...) > max then argerror(fname, max + 1, 'found too many arguments') end
  end
  -- json_integer_option
  local function integer_option(fname, n, current, min, max, ...)
    local v = select(n, ...)
    if v == nil then return current end
    local x = lib.checknumber(fname, n, ...)
    x = x >= 0 and floor(x) or -floor(-x)
    if x < min or x > max then
      argerror(fname, 1, 'expected integer between ' .. min .. ' and ' .. max)
    end
    return x
  end
  -- json_enum_option: a boolean, or one of the option names (its index, from 0).
  local function enum_option(fname, n, current, options, ...)
    local v = select(n, ...)
    if v == nil then return current end
    if type(v) == 'boolean' then return v and 1 or 0 end
    local name = lib.checkstring(fname, n, ...)
    for i, option in ipairs(options) do
      if option == name then return i - 1 end
    end
    argerror(fname, n, "invalid option '" .. name .. "'")
  end
  local ONOFF = {'off', 'on'}
  local function as_bool(setting) return setting == 1 or setting == true end

  cjson.encode_sparse_array = (function(...)
    check_args('encode_sparse_array', 3, ...)
    sparse_convert = as_bool(enum_option('encode_sparse_array', 1, sparse_convert and 1 or 0,
      ONOFF, ...))
    sparse_ratio = integer_option('encode_sparse_array', 2, sparse_ratio, 0, 2147483647, ...)
    sparse_safe = integer_option('encode_sparse_array', 3, sparse_safe, 0, 2147483647, ...)
    return sparse_convert, sparse_ratio, sparse_safe
  end)
  cjson.encode_max_depth = (function(...)
    check_args('encode_max_depth', 1, ...)
    encode_depth = integer_option('encode_max_depth', 1, encode_depth, 1, 2147483647, ...)
    return encode_depth
  end)
  cjson.decode_max_depth = (function(...)
    check_args('decode_max_depth', 1, ...)
    decode_depth = integer_option('decode_max_depth', 1, decode_depth, 1, 2147483647, ...)
    return decode_depth
  end)
  cjson.encode_number_precision = (function(...)
    check_args('encode_number_precision', 1, ...)
    precision = integer_option('encode_number_precision', 1, precision, 1, 14, ...)
    number_format = '%.' .. precision .. 'g'
    return precision
  end)
  cjson.encode_keep_buffer = (function(...)
    check_args('encode_keep_buffer', 1, ...)
    keep_buffer = as_bool(enum_option('encode_keep_buffer', 1, keep_buffer and 1 or 0, ONOFF,
      ...))
    return keep_buffer
  end)
  -- off, on (NaN, Infinity) or null: a boolean for the first two, as lua-cjson answers.
  cjson.encode_invalid_numbers = (function(...)
    check_args('encode_invalid_numbers', 1, ...)
    local current = encode_invalid == 'null' and 2 or (encode_invalid and 1 or 0)
    local setting = enum_option('encode_invalid_numbers', 1, current, {'off', 'on', 'null'},
      ...)
    encode_invalid = setting == 2 and 'null' or setting == 1
    return encode_invalid
  end)
  cjson.decode_invalid_numbers = (function(...)
    check_args('decode_invalid_numbers', 1, ...)
    decode_invalid = as_bool(enum_option('decode_invalid_numbers', 1, decode_invalid and 1 or 0,
      ONOFF, ...))
    return decode_invalid
  end)

  -- Encoding --------------------------------------------------------------------------

  local function exception(kind, reason)
    error('Cannot serialise ' .. kind .. ': ' .. reason, 0)
  end

  -- json_append_number: when invalid numbers are on, NaN is written "nan" (printf may say
  -- "-nan") and the infinities as printf writes them, "inf" and "-inf".
  local function number(x)
    if x ~= x or x == huge or x == -huge then
      if encode_invalid == false then exception('number', 'must not be NaN or Inf') end
      if encode_invalid == 'null' then return 'null' end
      if x ~= x then return 'nan' end
    end
    return format(number_format, x)
  end

  local function quote(s)
    return '"' .. gsub(s, '[%z\1-\31"\\/\127]', ESCAPES) .. '"'
  end

  -- lua_array_length: the largest index when every key is an integer >= 1, -1 when it is
  -- an object. C keeps that index in an int: indexes past its range wrap it.
  local function array_length(t)
    local max, items = 0, 0
    for k in pairs(t) do
      if type(k) ~= 'number' or k < 1 or floor(k) ~= k then return -1 end
      if k > max then max = k >= 2147483648 and -2147483648 or k end
      items = items + 1
    end
    if sparse_ratio > 0 and max > items * sparse_ratio and max > sparse_safe then
      if not sparse_convert then exception('table', 'excessively sparse array') end
      return -1
    end
    return max
  end

  local append
  append = function(buf, n, value, depth)
    local t = type(value)
    if t == 'string' then
      n = n + 1; buf[n] = quote(value)
    elseif t == 'number' then
      n = n + 1; buf[n] = number(value)
    elseif t == 'boolean' then
      n = n + 1; buf[n] = value and 'true' or 'false'
    elseif t == 'nil' or value == null then
      n = n + 1; buf[n] = 'null'
    elseif t == 'table' then
      depth = depth + 1
      if depth > encode_depth then
        error('Cannot serialise, excessive nesting (' .. depth .. ')', 0)
      end
      local length = array_length(value)
      if length > 0 then
        n = n + 1; buf[n] = '['
        for i = 1, length do
          if i > 1 then n = n + 1; buf[n] = ',' end
          n = append(buf, n, rawget(value, i), depth)
        end
        n = n + 1; buf[n] = ']'
      else
        n = n + 1; buf[n] = '{'
        local first = true
        for k, v in next, value do
          if first then first = false else n = n + 1; buf[n] = ',' end
          local kt = type(k)
          if kt == 'number' then
            n = n + 1; buf[n] = '"' .. number(k) .. '":'
          elseif kt == 'string' then
            n = n + 1; buf[n] = quote(k) .. ':'
          else
            exception(kt, 'table key must be a number or string')
          end
          n = append(buf, n, v, depth)
        end
        n = n + 1; buf[n] = '}'
      end
    else
      exception(t, 'type not supported')
    end
    return n
  end

  cjson.encode = (function(...)
    if select('#', ...) ~= 1 then argerror('encode', 1, 'expected 1 argument') end
    local buf = {}
    append(buf, 0, (...), 0)
    return concat(buf)
  end)

  -- Decoding --------------------------------------------------------------------------

  local s, len, depth

  local function parse_error(expected, kind, value, index)
    local found = kind == 'T_ERROR' and value or kind
    error('Expected ' .. expected .. ' but found ' .. found .. ' at character ' .. index, 0)
  end

  -- json_is_invalid_number: what JSON forbids but strtod reads (+, hex, leading zeros,
  -- inf, nan).
  local function invalid_number(p)
    local c = sub(s, p, p)
    if c == '+' then return true end
    if c == '-' then p = p + 1; c = sub(s, p, p) end
    if c == '0' then
      local c2 = sub(s, p + 1, p + 1)
      return c2 == 'x' or c2 == 'X' or find(c2, '^%d') ~= nil
    elseif c == '' or c <= '9' then
      return false
    end
    local word = lower(sub(s, p, p + 2))
    return word == 'inf' or word == 'nan'
  end

  -- Where strtod stops reading a number that starts at p (p itself when it reads none).
  local function strtod_end(p)
    local q = find(s, '^[+-]', p) and p + 1 or p
    if find(s, '^[iI][nN][fF]', q) then
      if find(s, '^[iI][nN][iI][tT][yY]', q + 3) then return q + 8 end
      return q + 3
    end
    if find(s, '^[nN][aA][nN]', q) then
      local _, e = find(s, '^%([%w_]*%)', q + 3)
      return e and e + 1 or q + 3
    end
    if find(s, '^0[xX]', q) then
      local _, e1 = find(s, '^%x*', q + 2)
      local r, digits = e1 + 1, e1 >= q + 2
      if sub(s, r, r) == '.' then
        local _, e2 = find(s, '^%x*', r + 1)
        if e2 >= r + 1 then digits = true end
        if digits then r = e2 + 1 end
      end
      if not digits then return q + 1 end
      local _, e3 = find(s, '^[pP][+-]?%d+', r)
      return e3 and e3 + 1 or r
    end
    local _, e1 = find(s, '^%d*', q)
    local r, digits = e1 + 1, e1 >= q
    if sub(s, r, r) == '.' then
      local _, e2 = find(s, '^%d*', r + 1)
      if e2 >= r + 1 then digits = true end
      if digits then r = e2 + 1 end
    end
    if not digits then return p end
    local _, e3 = find(s, '^[eE][+-]?%d+', r)
    return e3 and e3 + 1 or r
  end

  local function number_token(p)
    local e = strtod_end(p)
    if e == p then return 'T_ERROR', 'invalid number', p, p end
    return 'T_NUMBER', tonumber(sub(s, p, e - 1)) or 0, p, e
  end

  local function hex4(p)
    local h = sub(s, p, p + 3)
    if not find(h, '^%x%x%x%x$') then return nil end
    return tonumber(h, 16)
  end

  local function utf8(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
      return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
      0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end

  local function string_token(start)
    local parts, n, p = {}, 0, start + 1
    while true do
      local q = find(s, '["\\]', p)
      if not q then return 'T_ERROR', 'unexpected end of string', len + 1, len + 1 end
      if q > p then n = n + 1; parts[n] = sub(s, p, q - 1) end
      if sub(s, q, q) == '"' then return 'T_STRING', concat(parts), start, q + 1 end
      local e = sub(s, q + 1, q + 1)
      if e == 'u' then
        local cp, step = hex4(q + 2), 6
        if cp and cp >= 0xD800 and cp < 0xE000 then
          -- A surrogate: a high one, then \u and a low one.
          local low = cp < 0xDC00 and sub(s, q + 6, q + 7) == '\\u' and hex4(q + 8)
          if low and low >= 0xDC00 and low < 0xE000 then
            cp, step = (cp - 0xD800) * 1024 + (low - 0xDC00) + 0x10000, 12
          else
            cp = nil
          end
        end
        if not cp then return 'T_ERROR', 'invalid unicode escape code', q, q end
        n = n + 1; parts[n] = utf8(cp)
        p = q + step
      else
        local c = UNESCAPE[e]
        if not c then return 'T_ERROR', 'invalid escape code', q, q end
        n = n + 1; parts[n] = c
        p = q + 2
      end
    end
  end

  -- json_next_token: kind, value, where it starts (its 'character'), where the next begins.
  local function next_token(p)
    p = find(s, '[^ \t\n\r]', p) or len + 1
    if p > len then return 'T_END', nil, p, p end
    local c = sub(s, p, p)
    local name = TOKEN_NAMES[c]
    if name then return name, c, p, p + 1 end
    if c == '"' then return string_token(p) end
    if c == '-' or find(c, '^%d') then
      if not decode_invalid and invalid_number(p) then
        return 'T_ERROR', 'invalid number', p, p
      end
      return number_token(p)
    end
    if c == 't' and sub(s, p, p + 3) == 'true' then return 'T_BOOLEAN', true, p, p + 4 end
    if c == 'f' and sub(s, p, p + 4) == 'false' then return 'T_BOOLEAN', false, p, p + 5 end
    if c == 'n' and sub(s, p, p + 3) == 'null' then return 'T_NULL', null, p, p + 4 end
    if decode_invalid and find(c, '^[+iInN]') and invalid_number(p) then
      return number_token(p)
    end
    return 'T_ERROR', 'invalid token', p, p
  end

  local value

  local function descend(p)
    depth = depth + 1
    if depth > decode_depth then
      error('Found too many nested data structures (' .. depth .. ') at character ' .. (p - 1),
        0)
    end
  end

  local function object(p)
    descend(p)
    local t = {}
    local kind, v, at, q = next_token(p)
    if kind == 'T_OBJ_END' then depth = depth - 1; return t, q end
    while true do
      if kind ~= 'T_STRING' then parse_error('object key string', kind, v, at) end
      local key = v
      kind, v, at, q = next_token(q)
      if kind ~= 'T_COLON' then parse_error('colon', kind, v, at) end
      kind, v, at, q = next_token(q)
      t[key], q = value(kind, v, at, q)
      kind, v, at, q = next_token(q)
      if kind == 'T_OBJ_END' then depth = depth - 1; return t, q end
      if kind ~= 'T_COMMA' then parse_error('comma or object end', kind, v, at) end
      kind, v, at, q = next_token(q)
    end
  end

  local function array(p)
    descend(p)
    local t = {}
    local kind, v, at, q = next_token(p)
    if kind == 'T_ARR_END' then depth = depth - 1; return t, q end
    local i = 1
    while true do
      t[i], q = value(kind, v, at, q)
      kind, v, at, q = next_token(q)
      if kind == 'T_ARR_END' then depth = depth - 1; return t, q end
      if kind ~= 'T_COMMA' then parse_error('comma or array end', kind, v, at) end
      kind, v, at, q = next_token(q)
      i = i + 1
    end
  end

  value = function(kind, v, at, q)
    if kind == 'T_STRING' or kind == 'T_NUMBER' or kind == 'T_BOOLEAN' or kind == 'T_NULL' then
      return v, q
    elseif kind == 'T_OBJ_BEGIN' then
      return object(q)
    elseif kind == 'T_ARR_BEGIN' then
      return array(q)
    end
    parse_error('value', kind, v, at)
  end

  cjson.decode = (function(...)
    if select('#', ...) ~= 1 then argerror('decode', 1, 'expected 1 argument') end
    local text = lib.checkstring('decode', 1, ...)
    if #text >= 2 and (byte(text, 1) == 0 or byte(text, 2) == 0) then
      error('JSON parser does not support UTF-16 or UTF-32', 0)
    end
    -- The C parser reads a NUL-terminated buffer: a NUL ends the text.
    local z = find(text, '\0', 1, true)
    if z then text = sub(text, 1, z - 1) end
    s, len, depth = text, #text, 0
    local ok, result, q = pcall(function() return value(next_token(1)) end)
    if ok then
      local kind, v, at = next_token(q)
      if kind ~= 'T_END' then ok, result = pcall(parse_error, 'the end', kind, v, at) end
    end
    s = nil
    if not ok then error(result, 0) end
    return result
  end)

  cjson.new = make
  return lib.export(cjson)
end

return make()
"""

_BIT = r"""
local lib = ...
local select, floor, frexp, format, sub, huge = select, math.floor, math.frexp, string.format,
  string.sub, math.huge
local checknumber = lib.checknumber
local bit = {}

-- LuaBitOp's barg: the number plus 2^52+2^51, whose low 32 mantissa bits are the result
-- (rounding a fraction to even, wrapping modulo 2^32). Unsigned here.
local function barg(fname, n, ...)
  local x = checknumber(fname, n, ...)
  if x == floor(x) and x > -2251799813685248 and x < 2251799813685248 then
    return x % 4294967296
  end
  local y = x + 6755399441055744
  if y ~= y or y == huge or y == -huge then return 0 end
  if y < 0 then y = -y end
  local m = frexp(y)
  return (m * 9007199254740992) % 4294967296
end
local function signed(u)
  if u >= 2147483648 then return u - 4294967296 end
  return u
end

-- Bitwise operations four bits at a time, through 16x16 tables.
local AND, OR, XOR = {}, {}, {}
for a = 0, 15 do
  for b = 0, 15 do
    local r_and, r_or, r_xor, m, x, y = 0, 0, 0, 1, a, b
    for _ = 1, 4 do
      local xa, yb = x % 2, y % 2
      if xa == 1 and yb == 1 then r_and = r_and + m end
      if xa == 1 or yb == 1 then r_or = r_or + m end
      if xa ~= yb then r_xor = r_xor + m end
      x, y, m = (x - xa) / 2, (y - yb) / 2, m * 2
    end
    AND[a * 16 + b], OR[a * 16 + b], XOR[a * 16 + b] = r_and, r_or, r_xor
  end
end
local function combine(op, a, b)
  local r, m = 0, 1
  for _ = 1, 8 do
    local na, nb = a % 16, b % 16
    r = r + op[na * 16 + nb] * m
    a, b, m = (a - na) / 16, (b - nb) / 16, m * 16
  end
  return r
end
local function fold(fname, op)
  return (function(...)
    local r = barg(fname, 1, ...)
    for i = 2, select('#', ...) do r = combine(op, r, barg(fname, i, ...)) end
    return signed(r)
  end)
end
bit.band = fold('band', AND)
bit.bor = fold('bor', OR)
bit.bxor = fold('bxor', XOR)

bit.tobit = (function(...) return signed(barg('tobit', 1, ...)) end)
bit.bnot = (function(...) return signed(4294967295 - barg('bnot', 1, ...)) end)
bit.tohex = (function(...)
  local b = barg('tohex', 1, ...)
  local n = select('#', ...) < 2 and 8 or signed(barg('tohex', 2, ...))
  local digits = '%08x'
  if n < 0 then n, digits = -n, '%08X' end
  if n > 8 then n = 8 end
  if n <= 0 then return '' end
  return sub(format(digits, b), 9 - n)
end)
local function shift(fname, f)
  return (function(...)
    local b = barg(fname, 1, ...)
    local n = barg(fname, 2, ...) % 32
    return signed(f(b, n))
  end)
end
bit.lshift = shift('lshift', function(b, n) return (b * 2 ^ n) % 4294967296 end)
bit.rshift = shift('rshift', function(b, n) return floor(b / 2 ^ n) end)
bit.arshift = shift('arshift', function(b, n) return floor(signed(b) / 2 ^ n) % 4294967296 end)
bit.rol = shift('rol', function(b, n)
  return (b * 2 ^ n) % 4294967296 + floor(b / 2 ^ (32 - n))
end)
bit.ror = shift('ror', function(b, n)
  return floor(b / 2 ^ n) + (b * 2 ^ (32 - n)) % 4294967296
end)
bit.bswap = (function(...)
  local b = barg('bswap', 1, ...)
  local b0, b1, b2 = b % 256, floor(b / 256) % 256, floor(b / 65536) % 256
  local b3 = floor(b / 16777216)
  return signed(((b0 * 256 + b1) * 256 + b2) * 256 + b3)
end)
return lib.export(bit)
"""

_CMSGPACK = r"""
local lib, py = ...
local type, error, select, pairs, next, floor, char, byte, sub, concat, rawget, huge =
  type, error, select, pairs, next, math.floor, string.char, string.byte, string.sub,
  table.concat, rawget, math.huge
local cmsgpack = {_NAME = 'cmsgpack', _VERSION = 'lua-cmsgpack 0.4.0',
  _COPYRIGHT = 'Copyright (C) 2012, Salvatore Sanfilippo',
  _DESCRIPTION = 'MessagePack C implementation for Lua'}

-- Big-endian bytes of a non-negative integer below 2^64.
local function be(n, size)
  local out = {}
  for i = size, 1, -1 do
    local b = n % 256
    out[i] = char(b)
    n = (n - b) / 256
  end
  return concat(out)
end

local function integer(n)
  if n >= 0 then
    if n <= 127 then return char(n) end
    if n <= 0xff then return '\204' .. char(n) end
    if n <= 0xffff then return '\205' .. be(n, 2) end
    if n <= 0xffffffff then return '\206' .. be(n, 4) end
    return '\207' .. be(n, 8)
  end
  if n >= -32 then return char(256 + n) end
  if n >= -128 then return '\208' .. char(256 + n) end
  if n >= -32768 then return '\209' .. be(65536 + n, 2) end
  if n >= -2147483648 then return '\210' .. be(4294967296 + n, 4) end
  return '\211' .. py.int64(n)
end

local function header(n, small, base, c16, c32)
  if n < small then return char(base + n) end
  if n <= 0xffff then return c16 .. be(n, 2) end
  return c32 .. be(n, 4)
end

-- table_is_an_array: number keys 1..n and nothing else (a key "1" makes a map).
local function is_array(t)
  local count, max = 0, 0
  for n in next, t do
    if type(n) ~= 'number' or n < 1 or floor(n) ~= n then return false end
    count = count + 1
    if n > max then max = n end
  end
  return max == count
end

-- used: how many values the C has on its stack, this one on top; each table it walks checks
-- for room first (luaL_checkstack), which a pack of some 4000 values can run out of.
local checkstack = lib.checkstack
local encode
encode = function(out, v, level, used)
  local t = type(v)
  if t == 'table' and level == 16 then t = 'nil' end
  if t == 'boolean' then
    out[#out + 1] = v and '\195' or '\194'
  elseif t == 'number' then
    if v == floor(v) and v ~= huge and v ~= -huge and v >= -2^63 and v < 2^63 then
      out[#out + 1] = integer(v)
    else
      out[#out + 1] = py.float(v)
    end
  elseif t == 'string' then
    local n = #v
    if n < 32 then out[#out + 1] = char(0xa0 + n)
    elseif n <= 0xff then out[#out + 1] = '\217' .. char(n)
    elseif n <= 0xffff then out[#out + 1] = '\218' .. be(n, 2)
    else out[#out + 1] = '\219' .. be(n, 4) end
    out[#out + 1] = v
  elseif t == 'table' then
    checkstack(used, 2, 'in function table_is_an_array')
    local count = 0
    for _ in next, v do count = count + 1 end
    if is_array(v) then
      out[#out + 1] = header(count, 16, 0x90, '\220', '\221')
      checkstack(used, 1, 'in function mp_encode_lua_table_as_array')
      for i = 1, count do encode(out, rawget(v, i), level + 1, used + 1) end
    else
      checkstack(used, 3, 'in function mp_encode_lua_table_as_map')
      out[#out + 1] = header(count, 16, 0x80, '\222', '\223')
      -- The key is encoded from a copy above the key and the value lua_next pushed.
      for k, x in next, v do
        encode(out, k, level + 1, used + 3)
        encode(out, x, level + 1, used + 2)
      end
    end
  else
    out[#out + 1] = '\192'
  end
end

cmsgpack.pack = function(...)
  local n = select('#', ...)
  if n == 0 then lib.argerror('pack', 0, 'MessagePack pack needs input.') end
  if n + n > 8000 then lib.argerror('pack', 0, 'Too many arguments for MessagePack pack.') end
  local out, args = {}, {...}
  -- Below argument i: the arguments and the i - 1 strings packed so far.
  for i = 1, n do encode(out, args[i], 0, n + i) end
  return concat(out)
end

-- Decoding: s and the position; errors as lua-cmsgpack words them.
local s, len
local EOF, BAD = 'Missing bytes in input.', 'Bad data format in input.'
local function need(p, n) if p + n - 1 > len then error(EOF, 0) end end
local function uint(p, n)
  need(p, n)
  local v = 0
  for i = p, p + n - 1 do v = v * 256 + byte(s, i) end
  return v
end
-- used: how many values the C has on its stack below the one decoded (luaL_checkstack).
local decode
local function items(p, n, map, used)
  local t = {}
  if not map then checkstack(used + 1, 1, 'in function mp_decode_to_lua_array') end
  for i = 1, n do
    if map then
      local k, v
      k, p = decode(p, used + 1)
      v, p = decode(p, used + 2)
      -- lua_settable's errors, though without its position (a C function has none).
      if k == nil then error('table index is nil', 0) end
      if k ~= k then error('table index is NaN', 0) end
      t[k] = v
    else
      -- The index is pushed before the element: a nil element leaves its hole.
      t[i], p = decode(p, used + 2)
    end
  end
  return t, p
end
decode = function(p, used)
  need(p, 1)
  checkstack(used, 1, 'too many return values at once; use unpack_one or unpack_limit instead.')
  local c = byte(s, p)
  p = p + 1
  if c < 0x80 then return c, p end
  if c < 0x90 then return items(p, c - 0x80, true, used) end
  if c < 0xa0 then return items(p, c - 0x90, false, used) end
  if c < 0xc0 then
    need(p, c - 0xa0)
    return sub(s, p, p + c - 0xa1), p + c - 0xa0
  end
  if c >= 0xe0 then return c - 256, p end
  if c == 0xc0 then return nil, p end
  if c == 0xc2 then return false, p end
  if c == 0xc3 then return true, p end
  if c == 0xca then need(p, 4) return py.unfloat(sub(s, p, p + 3)), p + 4 end
  if c == 0xcb then need(p, 8) return py.unfloat(sub(s, p, p + 7)), p + 8 end
  -- The C pushes an unsigned 64-bit value as a lua_Integer: 2^63 and above wrap negative.
  if c == 0xcf or c == 0xd3 then need(p, 8) return py.sint64(sub(s, p, p + 7)), p + 8 end
  if c >= 0xcc and c <= 0xce then
    local n = 2 ^ (c - 0xcc)
    return uint(p, n), p + n
  end
  if c >= 0xd0 and c <= 0xd2 then
    local n = 2 ^ (c - 0xd0)
    local v = uint(p, n)
    if v >= 2 ^ (8 * n - 1) then v = v - 2 ^ (8 * n) end
    return v, p + n
  end
  -- 0.4.0 has no bin types: 0xc4-0xc6 are bad data.
  local strings = {[0xd9] = 1, [0xda] = 2, [0xdb] = 4}
  if strings[c] then
    local n = uint(p, strings[c])
    p = p + strings[c]
    need(p, n)
    return sub(s, p, p + n - 1), p + n
  end
  if c == 0xdc then return items(p + 2, uint(p, 2), false, used) end
  if c == 0xdd then return items(p + 4, uint(p, 4), false, used) end
  if c == 0xde then return items(p + 2, uint(p, 2), true, used) end
  if c == 0xdf then return items(p + 4, uint(p, 4), true, used) end
  error(BAD, 0)
end

-- mp_unpack_full: up to limit values from offset (every value when both are 0); the
-- one-at-a-time forms return the next offset first, -1 at the end. base: the arguments left
-- on the stack. The messages print offset and length as ints (and the length as the limit).
local function unpack_full(text, limit, offset, base)
  local all, int32 = limit == 0 and offset == 0, lib.int32
  if offset < 0 or limit < 0 then
    error('Invalid request to unpack with offset of ' .. int32(offset) .. ' and limit of '
      .. int32(#text) .. '.', 0)
  elseif offset > #text then
    error('Start offset ' .. int32(offset) .. ' greater than input length ' .. int32(#text)
      .. '.', 0)
  end
  if all then limit = huge end
  s, len = text, #text
  -- The one-at-a-time forms keep the first slot for the next offset.
  local first, out, n, p = all and 0 or 1, {}, 0, offset + 1
  while p <= len and n < limit do
    n = n + 1
    out[first + n], p = decode(p, base + n - 1)
  end
  s = nil
  if all then return lib.spread(out, n) end
  checkstack(base + n, 1, 'in function mp_unpack_full')
  out[1] = (p > len) and -1 or p - 1
  return lib.spread(out, n + 1)
end

-- luaL_checkinteger, or luaL_optinteger when there is a default.
local function integer_arg(fname, i, default, ...)
  if default ~= nil and select(i, ...) == nil then return default end
  return lib.tointeger(lib.checknumber(fname, i, ...))
end
cmsgpack.unpack = function(...)
  return unpack_full(lib.checkstring('unpack', 1, ...), 0, 0, select('#', ...))
end
-- The numbers are read first; then all but the string leave the stack.
cmsgpack.unpack_one = function(...)
  local offset = integer_arg('unpack_one', 2, 0, ...)
  return unpack_full(lib.checkstring('unpack_one', 1, ...), 1, offset, 1)
end
cmsgpack.unpack_limit = function(...)
  local limit = integer_arg('unpack_limit', 2, nil, ...)
  local offset = integer_arg('unpack_limit', 3, 0, ...)
  return unpack_full(lib.checkstring('unpack_limit', 1, ...), limit, offset, 1)
end
return lib.export(cmsgpack)
"""


_STRUCT = r"""
local lib, py = ...
local error, select, tonumber, floor, ceil, frexp, format, byte, char, sub, find, match, rep,
  reverse, concat, unpack = error, select, tonumber, math.floor, math.ceil, math.frexp,
  string.format, string.byte, string.char, string.sub, string.find, string.match, string.rep,
  string.reverse, table.concat, unpack
local argerror = lib.argerror
local struct = {}

-- Option sizes on x86-64: char, short, long, size_t, float, double; i and I default to int.
local SIZES = {b = 1, B = 1, h = 2, H = 2, l = 8, L = 8, T = 8, f = 4, d = 8, x = 1}
local INTEGERS = {b = true, B = true, h = true, H = true, l = true, L = true, T = true,
  i = true, I = true}
local SIGNED = {b = true, h = true, l = true, i = true}
-- MAXALIGN, what '!' without a number sets: the alignment of a double.
local MAXALIGN = 8
local MAXINTSIZE = 32

-- The format as luaL_checkstring hands it to C: it ends at its first NUL.
local function format_arg(fname, ...)
  return match(lib.checkstring(fname, 1, ...), '^[^%z]*')
end

-- getnum: the digits at i as an int, the default when there are none.
local function getnum(fmt, i, default)
  local digits = match(fmt, '^[0-9]+', i)
  if not digits then return default, i end
  local a = 0
  for j = 1, #digits do
    local d = byte(digits, j) - 48
    if a > 214748364 or a * 10 > 2147483647 - d then error('integral size overflow', 0) end
    a = a * 10 + d
  end
  return a, i + #digits
end

-- optsize: the option's size (0 for the control options), and where the format goes on.
local function optsize(opt, fmt, i)
  if opt == 'c' then return getnum(fmt, i, 1) end
  if opt == 'i' or opt == 'I' then
    local size
    size, i = getnum(fmt, i, 4)
    if size > MAXINTSIZE then
      error(format('integral size %d is larger than limit of %d', size, MAXINTSIZE), 0)
    end
    return size, i
  end
  return SIZES[opt] or 0, i
end

-- a & b for small non-negative integers.
local function band(a, b)
  local r, bit = 0, 1
  while a > 0 and b > 0 do
    local x, y = a % 2, b % 2
    if x == 1 and y == 1 then r = r + bit end
    a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
  end
  return r
end

-- gettoalign: padding before an option of this size at offset len. The size may be no power
-- of 2 (i3 under !4); C's masks then give what they give, and so do these.
local function toalign(len, align, opt, size)
  if size == 0 or opt == 'c' then return 0 end
  if size > align then size = align end
  local mask = size - 1
  return band(size - band(len % 32, mask), mask)
end

-- controloptions: spaces, endianness and alignment; anything else is no option at all.
local function control(fname, opt, fmt, i, big, align)
  if opt == ' ' then return i, big, align end
  if opt == '>' then return i, true, align end
  if opt == '<' then return i, false, align end
  if opt == '!' then
    align, i = getnum(fmt, i, MAXALIGN)
    if align <= 0 or frexp(align) ~= 0.5 then
      error(format('alignment %d is not a power of 2', align), 0)
    end
    return i, big, align
  end
  argerror(fname, 1, "invalid format option '" .. opt .. "'")
end

-- A double as x86-64 converts it to an unsigned long (size_t), given as the integer it is
-- congruent to modulo 2^64: truncated; an infinity or 2^64 and more is 0; NaN, -inf and
-- anything below -2^63 is cvttsd2si's "integer indefinite", 2^63 (here -2^63).
local function wrap64(x)
  if x ~= x or x < -9223372036854775808 then return -9223372036854775808 end
  if x >= 18446744073709551616 then return 0 end
  if x < 0 then return ceil(x) end
  return floor(x)
end

-- putinteger: the low bytes of that unsigned long, least significant first; a size past 8
-- bytes is zeros above them (the C shifts an unsigned long right).
local function integer_bytes(x, size, big)
  local v, out = wrap64(x), {}
  for k = 1, size do
    if k <= 8 then
      local b = v % 256
      out[k] = b
      v = (v - b) / 256
    else
      out[k] = 0
    end
  end
  local s = char(unpack(out, 1, size))
  return big and reverse(s) or s
end

-- getinteger: the value's low 64 bits (what an unsigned long keeps of size bytes) in two
-- halves. A signed one then ORs in the mask ~0 << (size*8 - 1) when it shares a bit with it,
-- the shift count taken modulo 64 as x86 does (so i9 and i16 extend from bits 7 and 63).
-- The halves add up in one rounding, as C's conversion to a double rounds once.
local function integer_value(data, at, size, big, signed)
  local b = {0, 0, 0, 0, 0, 0, 0, 0}
  for k = 1, size < 8 and size or 8 do
    b[k] = byte(data, big and at + size - k or at + k - 1)
  end
  local lo = ((b[4] * 256 + b[3]) * 256 + b[2]) * 256 + b[1]
  local hi = ((b[8] * 256 + b[7]) * 256 + b[6]) * 256 + b[5]
  if signed then
    local shift = (size * 8 - 1) % 64
    if shift >= 32 then
      local low = 2 ^ (shift - 32)
      if hi >= low then hi = hi % low + (4294967296 - low) end
    else
      local low = 2 ^ shift
      if hi > 0 or lo >= low then hi, lo = 4294967295, lo % low + (4294967296 - low) end
    end
    if hi >= 2147483648 then return (hi - 4294967296) * 4294967296 + lo end
  end
  return hi * 4294967296 + lo
end

local function float_bytes(x, size, big)
  if x == 0 then
    -- lupa hands -0.0 to Python as the integer 0: the sign goes here.
    local s = rep('\0', size - 1) .. (1 / x < 0 and '\128' or '\0')
    return big and reverse(s) or s
  end
  return py.pack(x, size, big)
end

-- The arguments after the last are read from b_pack's stack, where the first is a nil.
local function pack_arg(check, what, n, nargs, ...)
  if n > nargs then argerror('pack', n, what .. ' expected, got nil') end
  return check('pack', n, ...)
end

struct.pack = function(...)
  local fmt = format_arg('pack', ...)
  local nargs = select('#', ...)
  local out, count, total, big, align, arg, i = {}, 0, 0, false, 1, 2, 1
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    local pad = toalign(total, align, opt, size)
    if pad > 0 then
      count = count + 1; out[count] = rep('\0', pad)
      total = total + pad
    end
    if INTEGERS[opt] then
      local x = pack_arg(lib.checknumber, 'number', arg, nargs, ...)
      count = count + 1; out[count] = integer_bytes(x, size, big)
      arg = arg + 1
    elseif opt == 'x' then
      count = count + 1; out[count] = '\0'
    elseif opt == 'f' or opt == 'd' then
      local x = pack_arg(lib.checknumber, 'number', arg, nargs, ...)
      count = count + 1; out[count] = float_bytes(x, size, big)
      arg = arg + 1
    elseif opt == 'c' or opt == 's' then
      local s = pack_arg(lib.checkstring, 'string', arg, nargs, ...)
      arg = arg + 1
      if size == 0 then size = #s end
      -- The C checks after moving on to the next argument, and names that one.
      if #s < size then argerror('pack', arg, 'string too short') end
      count = count + 1; out[count] = sub(s, 1, size)
      if opt == 's' then
        count = count + 1; out[count] = '\0'
        size = size + 1
      end
    else
      i, big, align = control('pack', opt, fmt, i, big, align)
    end
    total = total + size
  end
  return concat(out)
end

struct.unpack = function(...)
  local nargs = select('#', ...)
  local fmt = format_arg('unpack', ...)
  local data = lib.checkstring('unpack', 2, ...)
  local start = 1
  if select(3, ...) ~= nil then start = lib.tointeger(lib.checknumber('unpack', 3, ...)) end
  if start == 0 then argerror('unpack', 3, 'offset must be 1 or greater') end
  -- Nothing read: the position comes back as given, however far out (a negative one wraps
  -- round as a size_t and back).
  if fmt == '' then return start end
  -- Offsets count from 0 as in the C; one out of the data fails the first option's check.
  local len, pos, out, n, big, align, i = #data, start - 1, {}, 0, false, 1, 1
  local function check(size)
    if pos < 0 or size > len or pos > len - size then
      argerror('unpack', 2, 'data string too short')
    end
  end
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    pos = pos + toalign(pos, align, opt, size)
    check(size)
    -- On the stack: the arguments and the values so far; two more must fit.
    lib.checkstack(nargs + n, 2, 'too many results')
    if INTEGERS[opt] then
      n = n + 1; out[n] = integer_value(data, pos + 1, size, big, SIGNED[opt])
    elseif opt == 'f' or opt == 'd' then
      n = n + 1; out[n] = py.unpack(sub(data, pos + 1, pos + size), big)
    elseif opt == 'c' then
      if size == 0 then
        -- The length is the previous value, a number or a numeric string (lua_isnumber).
        local previous = n > 0 and tonumber(out[n])
        if not previous then error("format 'c0' needs a previous size", 0) end
        size = wrap64(previous)
        if size < 0 then size = 18446744073709551616 + size end
        n = n - 1
        check(size)
      end
      n = n + 1; out[n] = sub(data, pos + 1, pos + size)
    elseif opt == 's' then
      local e = find(data, '\0', pos + 1, true)
      if not e then error('unfinished string in data', 0) end
      size = e - pos
      n = n + 1; out[n] = sub(data, pos + 1, e - 1)
    elseif opt ~= 'x' then
      i, big, align = control('unpack', opt, fmt, i, big, align)
    end
    pos = pos + size
  end
  n = n + 1; out[n] = pos + 1
  return lib.spread(out, n)
end

struct.size = function(...)
  local fmt = format_arg('size', ...)
  local pos, big, align, i = 0, false, 1, 1
  while i <= #fmt do
    local opt = sub(fmt, i, i)
    local size
    size, i = optsize(opt, fmt, i + 1)
    pos = pos + toalign(pos, align, opt, size)
    if opt == 's' then
      argerror('size', 1, "option 's' has no fixed size")
    elseif opt == 'c' and size == 0 then
      argerror('size', 1, "option 'c0' has no fixed size")
    end
    -- Only what is not a letter or digit goes to controloptions: other letters add nothing.
    if not find(opt, '^[0-9A-Za-z]') then
      i, big, align = control('size', opt, fmt, i, big, align)
    end
    pos = pos + size
  end
  return pos
end
return lib.export(struct)
"""


def _msgpack_float(x: float) -> bytes:
    # lua-cmsgpack writes a float32 when the double survives the round trip (NaN never does),
    # else a double.
    try:
        single = _struct.pack(">f", x)
    except OverflowError:
        single = None
    if single is not None and _struct.unpack(">f", single)[0] == x:
        return b"\xca" + single
    return b"\xcb" + _struct.pack(">d", x)


def _unfloat(data: bytes) -> float:
    return _struct.unpack(">f" if len(data) == 4 else ">d", data)[0]


def _struct_pack_float(x: float, size: int, big: bool) -> bytes:
    layout = (">" if big else "<") + ("f" if size == 4 else "d")
    try:
        return _struct.pack(layout, x)
    except OverflowError:
        # C's (float) cast takes a double beyond the float range to an infinity.
        return _struct.pack(layout, math.copysign(math.inf, x))


def _struct_unpack_float(data: bytes, big: bool) -> float:
    return _struct.unpack((">" if big else "<") + ("f" if len(data) == 4 else "d"), data)[0]


def install(runtime: Any) -> None:
    """Define the globals cjson, bit, cmsgpack and struct in this runtime, as Redis loads them."""
    real = runtime.globals()
    common = runtime.execute(_COMMON)
    real[b"cjson"] = runtime.execute(_CJSON, common)
    real[b"bit"] = runtime.execute(_BIT, common)
    helpers = runtime.table_from(
        {
            b"float": _msgpack_float,
            b"unfloat": _unfloat,
            b"int64": lambda n: _struct.pack(">q", int(n)),
            b"sint64": lambda data: float(_struct.unpack(">q", data)[0]),
        }
    )
    real[b"cmsgpack"] = runtime.execute(_CMSGPACK, common, helpers)
    struct_helpers = runtime.table_from(
        {b"pack": _struct_pack_float, b"unpack": _struct_unpack_float}
    )
    real[b"struct"] = runtime.execute(_STRUCT, common, struct_helpers)
