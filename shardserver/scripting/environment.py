"""The Lua world Redis gives a script, and the conversions between its values and replies.

One :class:`Engine` is one Lua 5.1 interpreter (``lupa.lua51``: the Lua version Redis embeds,
so arithmetic, string formatting and error texts are 5.1's) set up as Redis 7.0's
``scriptingInit`` sets it up:

- the globals a script sees are Redis's list (no ``os``, ``io``, ``print``, ``require``,
  ``loadfile``, ``dofile``, ``debug`` ...), read-only: creating or changing a global, or
  changing ``string``, ``redis`` or any library table, fails with Redis's ``Attempt to modify
  a readonly table``, and reading a missing one with ``Script attempted to access nonexistent
  global variable``;
- ``redis.call``/``redis.pcall`` (commands run by the ``call`` function the owner gives: in a
  shard, at once on its keyspace; in the acceptor, at the hold point of every shard),
  ``redis.error_reply``, ``status_reply``, ``sha1hex``, ``log``, ``setresp``, ``set_repl``
  and the ``REPL_*``/``LOG_*`` constants, ``REDIS_VERSION``; ``pcall`` turning an error table
  into its message, as Redis's own ``pcall`` does; the libraries ``cjson``, ``cmsgpack``,
  ``struct`` and ``bit`` (:mod:`shardserver.scripting.libraries`);
- Redis's error handler: an uncaught error becomes ``-<code> <message> script: <sha>, on
  @user_script:<line>.``, the line being the script's, not our glue's.

Conversions follow Redis's ``script_lua.c``: a reply to Lua (integers to numbers, bulk strings
to strings, nulls to ``false``, arrays to tables, a status to ``{ok=...}``, an error to
``{err=...}``, and after ``redis.setresp(3)`` maps, sets, doubles, booleans, big numbers and
verbatim strings as Redis hands them), and Lua to a reply (numbers truncated to integers,
``true`` to 1, ``false`` and ``nil`` to null, tables with ``ok``/``err``/``map``/``set``/
``double``/``big_number``, arrays up to their first nil).

A command's owner may stop a script where it stands (:class:`Abort`): its shard cannot run a
command over another shard's keys, or a client killed it. ``pcall``, ``xpcall`` and
``coroutine.resume`` in the script cannot catch that.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import lupa.lua51 as lua

from shardserver import REDIS_COMPAT_VERSION
from shardserver.scripting import calls, libraries
from shardserver.scripting.replies import BigNumber, ErrorReply, Map, Set, Status, Verbatim, parse

log = logging.getLogger("shardserver.scripting")

#: What ``call`` gets: the command line and the RESP version to reply in (the script's
#: ``redis.setresp``); what it returns: the encoded reply. It raises :class:`Abort` to stop
#: the script.
CallFunction = Callable[[list[bytes], int], Any]

_MAX_INT = 2**63
#: Integers below this are exact as Lua numbers and formatted as digits; others as %.17g.
_EXACT = 2**53
#: How deep a script's reply may nest before Redis's Lua stack (LUAI_MAXCSTACK, 8000 slots,
#: less what the call itself holds) runs out: measured on redis-server 7.0.
_LUA_STACK_SLOTS = 7995
#: The most values one call from Python into Lua passes (lupa puts them all on the C stack,
#: which holds 8000): longer arrays, and KEYS with ARGV past it, go in pieces or as tables.
_ARGS_PER_CALL = 4000
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.INFO, 3: logging.WARNING}


def _version_number(version: str) -> int:
    major, minor, patch = (int(part) for part in version.split("."))
    return major << 16 | minor << 8 | patch


class Abort(Exception):
    """Stop the running script at once: ``reason`` says why to whoever ran it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallError(Exception):
    """A command's error reply inside a script, ``text`` without its dash; ``counted``: the
    error was a command's reply (or its refusal), already in the error statistics, so its
    table carries Redis's ``ignore_error_stats_update``."""

    def __init__(self, text: bytes, counted: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.counted = counted


def _nothing() -> None:
    pass


def _anything(argv: list[bytes]) -> bool:
    return True


def _log(*args: Any) -> None:
    """``redis.log(level, message ...)``."""
    if len(args) < 2:
        raise CallError(b"ERR redis.log() requires two arguments or more.")
    level = args[0]
    if level.__class__ is not int or level not in _LOG_LEVELS:
        raise CallError(b"ERR Invalid debug level.")
    text = b" ".join(_text(arg) for arg in args[1:])
    log.log(_LOG_LEVELS[level], "%s", text.decode("utf-8", "replace"))


def _set_repl(*args: Any) -> None:
    """``redis.set_repl(flags)``: checked, and nothing else (effects are always logged)."""
    if len(args) != 1:
        raise CallError(b"ERR redis.set_repl() requires two arguments.")  # sic, Redis 7.0
    if args[0].__class__ is not int or not 0 <= args[0] <= 3:
        raise CallError(
            b"ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
        )


def _lua_string(value: Any) -> bytes:
    """``lua_tolstring``: a string, a number as Lua writes it, nothing for the rest."""
    kind = value.__class__
    if kind is bytes:
        return value
    if kind is int or kind is float:
        return b"%.14g" % value
    return b""


def _sha1hex(*args: Any) -> bytes:
    if len(args) != 1:
        raise CallError(b"ERR wrong number of arguments")
    return hashlib.sha1(_lua_string(args[0])).hexdigest().encode()


def command_line(args: tuple) -> list[bytes] | CallError:
    """A script's arguments to a redis lib call as a command line, or Redis's error."""
    if not args:
        return CallError(b"ERR Please specify at least one argument for this redis lib call")
    argv = []
    for arg in args:
        kind = arg.__class__
        if kind is bytes:
            argv.append(arg)
        elif kind is int and -_EXACT < arg < _EXACT:
            argv.append(b"%d" % arg)
        elif kind is int or kind is float:
            argv.append(b"%.17g" % arg)
        else:
            return CallError(b"ERR Lua redis lib command arguments must be strings or integers")
    return argv


#: drand48's generator: X <- (a X + c) mod 2**48; lrand48 is X's top 31 bits.
LRAND48_A, LRAND48_C, LRAND48_MASK = 0x5DEECE66D, 0xB, (1 << 48) - 1
#: Its state before any seed (Redis's redisLrand48 starts there).
LRAND48_START = 0x1234ABCD330E


class Random48:
    """An lrand48 sequence kept in ``word`` (one interpreter's own list, or the script
    board's shared word, so that every process draws from one sequence). Two processes
    that draw at the same instant may get the same number: a draw takes no lock."""

    def __init__(self, word: Any = None) -> None:
        self.word = word if word is not None else [LRAND48_START]

    def lrand48(self) -> int:
        state = (self.word[0] * LRAND48_A + LRAND48_C) & LRAND48_MASK
        self.word[0] = state
        return state >> 17

    def srand48(self, seed: int) -> None:
        """``redisSrand48``: the seed's 32 bits above drand48's fixed low word."""
        self.word[0] = (int(seed) & 0xFFFFFFFF) << 16 | 0x330E


#: The error of a script SCRIPT KILL stopped.
KILLED = b"ERR Script killed by user with SCRIPT KILL..."


class Killed(Exception):
    """SCRIPT KILL stopped the script: an error no ``pcall`` catches, with the script's line."""

    def __init__(self, text: bytes) -> None:
        super().__init__(text)
        self.text = text


def _caught(problem: Any) -> tuple[int, bytes] | tuple[int, bytes, bool] | int | None:
    """What an error raised in Python is, for the Lua side: 1, the text of a command's
    error and whether it is counted already, 2 for an abort, 3 and its text for a kill,
    None for anything else."""
    kind = problem.__class__
    if kind is CallError:
        return 1, problem.text, problem.counted
    if kind is Abort:
        return 2
    if kind is Killed:
        return 3, problem.text
    return None


#: The sandbox, in Lua. ``py`` holds what Python provides; the chunk returns the functions
#: the engine drives. Names follow Redis's ``script_lua.c`` where it has them.
_SETUP = r"""
local py = ...
local real = _G
local type, error, select, unpack, tostring, setmetatable, rawget, rawset =
      type, error, select, unpack, tostring, setmetatable, rawget, rawset
local format, pairs, next, setfenv, rawpcall, rawxpcall = string.format, pairs, next, setfenv,
      pcall, xpcall
local resume, getinfo, rawloadstring, rawload = coroutine.resume, debug.getinfo, loadstring, load

local READONLY = 'Attempt to modify a readonly table'
local function refuse() error(READONLY, 2) end
-- Redis marks its library tables and globals read-only in the C core; here they are
-- proxies, known by this table: rawset and setmetatable refuse them too, and getmetatable
-- answers what Redis's would (nil for a library, a table for _G), so no script leaves
-- anything behind for the next one.
local protected = setmetatable({}, {__mode = 'k'})
local function readonly(t, shown)
  local proxy = setmetatable({}, {__index = t, __newindex = refuse, __metatable = false})
  protected[proxy] = shown or true
  return proxy
end

-- The globals a script sees: a table behind a proxy, so that writes fail and reads of
-- missing names fail the way Redis's globals protection makes them fail.
local globals = {}
local function missing(_, name)
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end
-- While a library loads, its globals are another table (see load_library): Redis swaps its
-- globals' metatable __index the same way, so a loading chunk and the functions it makes
-- share one environment, and a global lookup costs the same at run time.
local env_meta = {__index = globals, __newindex = refuse, __metatable = false}
local env = setmetatable({}, env_meta)
protected[env] = readonly({})
setmetatable(globals, {__index = missing})

for _, name in ipairs({'assert', 'collectgarbage', 'error', 'gcinfo', 'getmetatable', 'ipairs',
    'next', 'pairs', 'rawequal', 'rawget', 'rawset', 'select', 'setmetatable', 'tonumber',
    'tostring', 'type', 'unpack', '_VERSION'}) do
  globals[name] = real[name]
end
for _, name in ipairs({'string', 'table', 'cjson', 'cmsgpack', 'struct', 'bit'}) do
  if real[name] ~= nil then globals[name] = readonly(real[name]) end
end
globals._G = env
local rawgetmetatable, string_meta = getmetatable, getmetatable('')
-- The strings' metatable as scripts see it: its __index (the string library) read-only.
local shown_string_meta = readonly({__index = globals.string})
globals.getmetatable = function(...)
  local value = ...
  local shown = protected[value]
  if shown ~= nil then
    if shown == true then return nil end
    return shown
  end
  local meta = rawgetmetatable(...)
  if meta == string_meta then return shown_string_meta end
  return meta
end
-- (Redis raises these from C, with no position in the text)
globals.setmetatable = function(t, ...)
  if protected[t] then error(READONLY, 0) end
  return setmetatable(t, ...)
end
globals.rawset = function(t, ...)
  if protected[t] then error(READONLY, 0) end
  return rawset(t, ...)
end

-- math.random and math.randomseed as Redis's (redis_math_random over redisLrand48, the
-- 48-bit generator of drand48): the same numbers for the same seed as redis-server. Its
-- state is the server's, not this interpreter's (py.lrand48: the script board's), so
-- scripts anywhere draw one sequence, as in Redis 7, where it lives on between scripts.
local floor = math.floor
local lrand48, srand48 = py.lrand48, py.srand48
-- luaL_checkint: a number (or a numeric string), cut to a C int as x86-64 does.
local function checkint(n, fname, count, v)
  local x = tonumber(v)
  if x == nil then
    local got = count < n and 'no value' or type(v)
    error(format("bad argument #%d to '%s' (number expected, got %s)", n, fname, got), 3)
  end
  if x ~= x or x >= 2^63 or x < -2^63 then return 0 end
  x = (x >= 0 and floor(x) or -floor(-x)) % 4294967296
  return x >= 2147483648 and x - 4294967296 or x
end
local maths = {}
for name, value in pairs(math) do maths[name] = value end
maths.random = function(...)
  local count, l, u = select('#', ...), ...
  local r = (lrand48() % 2147483647) / 2147483647
  if count == 0 then return r end
  if count == 1 then
    u = checkint(1, 'random', count, l)
    if u < 1 then error("bad argument #1 to 'random' (interval is empty)", 2) end
    return floor(r * u) + 1
  end
  if count == 2 then
    l, u = checkint(1, 'random', count, l), checkint(2, 'random', count, u)
    if l > u then error("bad argument #2 to 'random' (interval is empty)", 2) end
    return floor(r * (u - l + 1)) + l
  end
  error('wrong number of arguments', 2)
end
maths.randomseed = function(...)
  srand48(checkint(1, 'randomseed', select('#', ...), (...)) % 4294967296)
end
globals.math = readonly(maths)

-- Chunks a script compiles see the script's globals, not the interpreter's. Redis's Lua
-- reads no bytecode: its parser takes such a chunk for text, and fails on its first byte.
local function chunk_id(source)
  local first = source:match('^[^%z\n\r]*')
  if #first > 43 then return '[string "' .. first:sub(1, 43) .. '..."]' end
  if #first < #source and source:byte(#first + 1) ~= 0 then
    return '[string "' .. first .. '..."]'
  end
  return '[string "' .. first .. '"]'
end
globals.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    local id = name == nil and chunk_id(s) or chunk_id(tostring(name))
    return nil, id .. ":1: unexpected symbol near 'char(27)'"
  end
  local f, e = rawloadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
globals.load = function(reader, name)
  if type(reader) ~= 'function' then
    local got = reader == nil and 'no value' or type(reader)
    error("bad argument #1 to 'load' (function expected, got " .. got .. ')', 2)
  end
  local f, e = rawload(reader, name)
  if f then setfenv(f, env) end
  return f, e
end

-- Errors that Python raised (redis.call's, an abort) arrive as userdata: ``caught`` says
-- which: 1 and the error's text for a command's error, 2 for an abort.
local caught = py.caught
local function is_abort(e)
  if type(e) ~= 'userdata' then return false end
  local kind = caught(e)
  return kind == 2 or kind == 3
end

-- Redis's pcall: an error table's message is what the caller gets. Nothing catches an abort.
local function settle(ok, ...)
  if not ok then
    local e = ...
    if type(e) == 'userdata' then
      local kind, text = caught(e)
      if kind == 2 or kind == 3 then error(e, 0) end
      if kind == 1 then return false, text end
    elseif type(e) == 'table' and type(rawget(e, 'err')) == 'string' then
      return false, rawget(e, 'err')
    end
  end
  return ok, ...
end
globals.pcall = function(f, ...)
  return settle(rawpcall(f, ...))
end
local function after(ok, ...)
  if not ok and is_abort((...)) then error((...), 0) end
  return ok, ...
end
globals.xpcall = function(f, handler)
  return after(rawxpcall(f, function(e)
    if is_abort(e) then return e end
    return handler(e)
  end))
end
local co = {}
for name, value in pairs(coroutine) do co[name] = value end
co.resume = function(thread, ...)
  return after(resume(thread, ...))
end
globals.coroutine = readonly(co)

-- An error as Redis keeps it: a table with err = '<CODE> <message>'.
local function error_table(text)
  if text:sub(1, 1) == '-' then
    text = text:find(' ', 1, true) and text:sub(2) or 'ERR ' .. text:sub(2)
  else
    text = 'ERR ' .. text
  end
  return {err = (text:gsub('[\r\n]+$', ''))}
end

local redis = {}
-- Python functions, so that a script's ``return redis.call(...)`` is no tail call: the
-- error handler finds the script's line, as it does behind Redis's C functions.
redis.call = py.call
redis.pcall = py.pcall
redis.error_reply = function(text)
  if type(text) ~= 'string' then error(error_table('wrong number or type of arguments'), 0) end
  if text:sub(1, 1) ~= '-' then text = '-' .. text end
  return error_table(text)
end
redis.status_reply = function(text)
  if type(text) ~= 'string' then error(error_table('wrong number or type of arguments'), 0) end
  return {ok = text}
end
-- Python functions, like call: their errors carry the script's line.
redis.sha1hex = py.sha1hex
-- Python functions, like call: their errors carry the script's line.
redis.log = py.log
redis.setresp = py.setresp
redis.set_repl = py.set_repl
-- To Lua those are userdata; in Redis they are C functions, and scripts test for them with
-- type(): type says 'function' for them, as Redis's would.
local builtins = {[py.call] = true, [py.pcall] = true, [py.log] = true, [py.setresp] = true,
  [py.set_repl] = true, [py.sha1hex] = true, [py.acl_check_cmd] = true}
globals.type = function(...)
  if select('#', ...) == 0 then error("bad argument #1 to 'type' (value expected)", 2) end
  local kind = type(...)
  if kind == 'userdata' and builtins[(...)] then return 'function' end
  return kind
end
redis.replicate_commands = function() return true end
-- Outside a debugging session (SCRIPT DEBUG) these do nothing, as in Redis; a session puts
-- its own in ``debugging`` while it runs (shardserver/scripting/ldb.py).
local debugging = {}
redis.breakpoint = function()
  local f = debugging.breakpoint
  if f then return f() end
  return false
end
redis.debug = function(...)
  local f = debugging.debug
  if f then f(...) end
end
redis.acl_check_cmd = py.acl_check_cmd
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_ALL = 0, 1, 3
redis.REPL_SLAVE, redis.REPL_REPLICA = 2, 2
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REDIS_VERSION = py.version
redis.REDIS_VERSION_NUM = py.version_num
globals.redis = readonly(redis)

-- What a library sees while it loads (FUNCTION LOAD), as Redis 7.0's function_lua.c has it:
-- one global, a redis table with register_function, log and its levels, and the version;
-- no other library or builtin. Its functions then run with the scripts' globals.
local registering, registering_order
local FLAGS = {'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}
local function fail(text) error(error_table(text), 0) end
-- lua_isstring: a number is a string to the C API (and lua_tostring formats it as tostring).
local function stringy(v) local t = type(v) return t == 'string' or t == 'number' end
local function valid_name(name)
  return #name > 0 and not name:find('[^%w_]')
end
-- A flags table's items (1, 2, ... up to the first nil), matched without case; the flags
-- as FUNCTION LIST shows them (each once, in Redis's order), or nil for an unknown one.
local function read_flags(t)
  local given, j = {}, 1
  while true do
    local v = t[j]
    if v == nil then break end
    if not stringy(v) then return nil end
    local flag = tostring(v):lower()
    local known = false
    for _, name in ipairs(FLAGS) do
      if name == flag then known = true end
    end
    if not known then return nil end
    given[flag] = true
    j = j + 1
  end
  local list = {}
  for _, name in ipairs(FLAGS) do
    if given[name] then list[#list + 1] = name end
  end
  return list
end
local function register(name, callback, flags, description)
  if not valid_name(name) then
    -- Redis 7.0 gives the library's text for a function's name
    fail('Library names can only contain letters, numbers, or underscores(_) and must be at '
      .. 'least one character long')
  end
  if registering[name] then fail('Function already exists in the library') end
  registering[name] = {callback = callback, flags = flags, description = description}
  registering_order[#registering_order + 1] = name
end
-- register_function{function_name=..., callback=..., flags=..., description=...}: keys
-- without case, checked in the table's order, as luaRegisterFunctionReadNamedArgs does.
local function register_named(t)
  if type(t) ~= 'table' then
    fail('calling redis.register_function with a single argument is only applicable to Lua '
      .. 'table (representing named arguments).')
  end
  local name, callback, flags, description
  for key, value in next, t do
    if not stringy(key) then
      fail('named argument key given to redis.register_function is not a string')
    end
    key = tostring(key):lower()
    if key == 'function_name' then
      if not stringy(value) then
        fail('function_name argument given to redis.register_function must be a string')
      end
      name = tostring(value)
    elseif key == 'description' then
      if not stringy(value) then
        fail('description argument given to redis.register_function must be a string')
      end
      description = tostring(value)
    elseif key == 'callback' then
      if type(value) ~= 'function' then
        fail('callback argument given to redis.register_function must be a function')
      end
      callback = value
    elseif key == 'flags' then
      if type(value) ~= 'table' then
        fail('flags argument to redis.register_function must be a table representing '
          .. 'function flags')
      end
      flags = read_flags(value)
      if flags == nil then fail('unknown flag given') end
    else
      fail('unknown argument given to redis.register_function')
    end
  end
  if name == nil then fail('redis.register_function must get a function name argument') end
  if callback == nil then fail('redis.register_function must get a callback argument') end
  return register(name, callback, flags or {}, description)
end
local loading = {}
loading.register_function = function(...)
  -- a library may keep redis.register_function and call it later, from a function
  if registering == nil then
    fail('redis.register_function can only be called on FUNCTION LOAD command')
  end
  local count, first, second = select('#', ...), ...
  if count < 1 or count > 2 then fail('wrong number of arguments to redis.register_function') end
  if count == 1 then return register_named(first) end
  if not stringy(first) then fail('first argument to redis.register_function must be a string') end
  if type(second) ~= 'function' then
    fail('second argument to redis.register_function must be a function')
  end
  return register(tostring(first), second, {}, nil)
end
for _, name in ipairs({'log', 'LOG_DEBUG', 'LOG_VERBOSE', 'LOG_NOTICE', 'LOG_WARNING',
    'REDIS_VERSION', 'REDIS_VERSION_NUM'}) do
  loading[name] = redis[name]
end
setmetatable(loading, {__index = missing})
local load_globals = setmetatable({redis = readonly(loading)}, {__index = missing})

-- Redis's error handler: every error becomes a table, with the script's line.
local function handler(e)
  if type(e) == 'userdata' then
    local kind, text, counted = caught(e)
    if kind == 2 then return e end
    if kind == 1 or kind == 3 then e = {err = text} end
    if counted then e.ignore_error_stats_update = true end
  end
  if type(e) ~= 'table' then e = {err = 'ERR ' .. tostring(e)} end
  local level = 2
  while true do
    local info = getinfo(level, 'Sl')
    if not info then break end
    if info.source:sub(1, 6) == '@user_' then
      rawset(e, 'source', info.source)
      rawset(e, 'line', info.currentline)
      break
    end
    level = level + 1
  end
  return e
end
globals.__redis__err__handler = handler

-- Every so many instructions, the owner may stop a script that runs too long (SCRIPT KILL).
local tick = py.tick
debug.sethook(function() tick() end, '', 100000)

local function compile(body, chunk)
  local f, e = rawloadstring(body, chunk)
  if not f then return nil, e end
  setfenv(f, env)
  return f, false
end

-- A library's code: its functions by name (each {callback, flags, description}) and their
-- names in the order registered, or nil and the error (a string: it did not compile; a
-- table: it failed while loading).
local function load_library(code)
  local f, e = rawloadstring(code, '@user_function')
  if not f then return nil, e end
  setfenv(f, env)
  registering, registering_order = {}, {}
  env_meta.__index = load_globals
  local ok, problem = rawxpcall(f, handler)
  env_meta.__index = globals
  local found, order = registering, registering_order
  registering, registering_order = nil, nil
  if not ok then return nil, problem end
  return found, order
end

-- A function of a library, called as FCALL calls it: f(keys, args).
-- KEYS and ARGV come as the arguments after numkeys, or, when there are too many for the C
-- stack (about 8000), as two tables (numkeys then false).
local function split(numkeys, ...)
  if numkeys == false then return ... end
  local all, keys, args = {...}, {}, {}
  for i = 1, numkeys do keys[i] = all[i] end
  for i = numkeys + 1, select('#', ...) do args[i - numkeys] = all[i] end
  return keys, args
end

local function call_function(f, numkeys, ...)
  local keys, args = split(numkeys, ...)
  local ok, value = rawxpcall(function() return f(keys, args) end, handler)
  return ok, value
end

local function run(f, numkeys, ...)
  local keys, args = split(numkeys, ...)
  rawset(globals, 'KEYS', keys)
  rawset(globals, 'ARGV', args)
  local ok, value = rawxpcall(f, handler)
  return ok, value
end

-- Lua values as the engine converts them: a table's fields Redis looks at, in one call.
local function shape(t)
  local err, ok = rawget(t, 'err'), rawget(t, 'ok')
  if type(err) == 'string' then return 'err', err, rawget(t, 'source'), rawget(t, 'line') end
  if type(ok) == 'string' then return 'ok', ok end
  local double = rawget(t, 'double')
  if type(double) == 'number' then return 'double', double end
  local big = rawget(t, 'big_number')
  if type(big) == 'string' then return 'big_number', big end
  local map = rawget(t, 'map')
  if type(map) == 'table' then
    local flat = {}
    for k, v in next, map do flat[#flat + 1] = k; flat[#flat + 1] = v end
    return 'map', flat
  end
  local set = rawget(t, 'set')
  if type(set) == 'table' then
    local members = {}
    for k in next, set do members[#members + 1] = k end
    return 'set', members
  end
  local verbatim = rawget(t, 'verbatim_string')
  if type(verbatim) == 'table' then
    return 'verbatim', rawget(verbatim, 'string'), rawget(verbatim, 'format')
  end
  local items, i = {}, 1
  while true do
    local v = rawget(t, i)
    if v == nil then break end
    items[i] = v
    i = i + 1
  end
  return 'array', items, i - 1
end

local function status(text) return {ok = text} end
local function failure(text) return {err = text} end
local function wrap(kind, value) return {[kind] = value} end
local function verbatim(text, fmt) return {verbatim_string = {string = text, format = fmt}} end
local function as_set(members)
  local t = {}
  for i = 1, #members do t[members[i]] = true end
  return {set = t}
end
local function as_map(flat, count)
  local t = {}
  for i = 1, count, 2 do t[flat[i]] = flat[i + 1] end
  return {map = t}
end
local function array(...) return {...} end
-- t with the arguments after offset: a long array comes in pieces, as many values as one
-- call can take on Lua's C stack (Redis builds its tables one item at a time).
local function extend(t, offset, ...)
  local items = {...}
  for i = 1, select('#', ...) do t[offset + i] = items[i] end
  return t
end

return compile, run, shape, status, failure, wrap, verbatim, as_set, as_map, array,
  load_library, call_function, debugging, extend
"""


class Engine:
    """One Lua interpreter with Redis's environment, and the scripts compiled in it."""

    def __init__(self, call: CallFunction) -> None:
        runtime = lua.LuaRuntime(
            encoding=None, unpack_returned_tuples=True, register_eval=False, register_builtins=False
        )
        libraries.install(runtime)
        self.runtime = runtime
        self.call = call
        #: The RESP version ``redis.call`` replies in: 2 unless the script said otherwise.
        self.resp = 2
        self.aborted: Abort | None = None
        #: The error replies in the last script's reply, each with whether a command's
        #: reply counted it already (error statistics are kept where the reply is sent).
        self.reply_errors: list[tuple[bytes, bool]] = []
        #: Where math.random draws from: the server's one sequence once the owner gives
        #: the board (:class:`~shardserver.scripting.board.ScriptBoard`), else this one's.
        self.random: Random48 = Random48()
        #: Called every 100,000 Lua instructions: raises :class:`Killed` to stop the script.
        self.tick: Callable[[], None] = _nothing
        #: Whether the script's user may run a command line (``redis.acl_check_cmd``):
        #: everything, unless the owner says otherwise (a held script of a user with ACL
        #: rules; other users' scripts run anywhere).
        self.permits: Callable[[list[bytes]], bool] = _anything
        self.functions: dict[bytes, Any] = {}
        py = runtime.table_from(
            {
                b"call": self._raising_call,
                b"pcall": self._call,
                b"caught": _caught,
                b"tick": lambda *_event: self.tick(),
                b"sha1hex": _sha1hex,
                b"acl_check_cmd": self._acl_check_cmd,
                b"lrand48": lambda: self.random.lrand48(),
                b"srand48": lambda seed: self.random.srand48(seed),
                b"log": _log,
                b"setresp": self._setresp,
                b"set_repl": _set_repl,
                b"version": REDIS_COMPAT_VERSION.encode(),
                b"version_num": _version_number(REDIS_COMPAT_VERSION),
            }
        )
        setup = runtime.execute(_SETUP, py)
        (
            self._compile,
            self._run,
            self._shape,
            self._status,
            self._failure,
            self._wrap,
            self._verbatim,
            self._as_set,
            self._as_map,
            self._array,
            self._load_library,
            self._call_function,
            self.debugging,
            self._extend,
        ) = setup
        #: FUNCTION's functions, by name: their Lua callbacks.
        self.library_functions: dict[bytes, Any] = {}
        #: Each library's function names.
        self.libraries: dict[bytes, list[bytes]] = {}
        self.lua_type = lua.lua_type

    def _acl_check_cmd(self, *args: Any) -> bool:
        """``redis.acl_check_cmd(command, ...)``: whether the script's user may run it; an
        error for a command Redis does not know."""
        argv = command_line(args)
        if argv.__class__ is CallError:
            raise argv
        if not calls.command_exists(argv):
            raise CallError(b"ERR Invalid command passed to redis.acl_check_cmd()")
        return self.permits(argv)

    # -- scripts -------------------------------------------------------------------------

    def compile(self, sha: bytes, body: bytes, chunk: bytes = b"@user_script") -> bytes | None:
        """Compile a script under its SHA; Redis's error reply if it does not compile."""
        if sha in self.functions:
            return None
        function, problem = self._compile(body, chunk)
        if function is None:
            text = problem.decode("utf-8", "replace") if isinstance(problem, bytes) else problem
            return b"-ERR Error compiling script (new function): %s\r\n" % text.encode()
        self.functions[sha] = function
        return None

    def forget(self) -> None:
        """SCRIPT FLUSH: every compiled script goes."""
        self.functions.clear()

    # -- function libraries ----------------------------------------------------------------

    def load_library(
        self, name: bytes, code: bytes, time_limit: float | None = None
    ) -> dict[bytes, tuple] | bytes:
        """Load a library's code (replacing one of the same name): its functions as
        ``{name: (flags, description)}``, or Redis's error reply.

        With ``time_limit`` (seconds), a load that runs longer stops with Redis's
        ``FUNCTION LOAD timeout``: an error no ``pcall`` in the library catches."""
        if time_limit is None:
            found, problem = self._load_library(code)  # problem: the order, when it loaded
        else:
            deadline = time.monotonic() + time_limit

            def tick() -> None:
                if time.monotonic() > deadline:
                    raise Killed(b"ERR FUNCTION LOAD timeout")

            saved, self.tick = self.tick, tick
            try:
                found, problem = self._load_library(code)
            finally:
                self.tick = saved
        if found is None:
            if self.lua_type(problem) == "table":
                text = _sanitized(self._shape(problem)[1])
                return b"-ERR Error registering functions: %b\r\n" % text
            return b"-ERR Error compiling function: %b\r\n" % _text(problem)
        functions = {}
        callbacks = {}
        for index in range(1, len(problem) + 1):  # in the order the library registered them
            function_name = problem[index]
            entry = found[function_name]
            flags = tuple(entry[b"flags"][i] for i in range(1, len(entry[b"flags"]) + 1))
            functions[function_name] = (flags, entry[b"description"])
            callbacks[function_name] = entry[b"callback"]
        if not functions:
            return b"-ERR No functions registered\r\n"
        self.delete_library(name)
        self.library_functions.update(callbacks)
        self.libraries[name] = list(callbacks)
        return functions

    def delete_library(self, name: bytes) -> None:
        for function_name in self.libraries.pop(name, ()):
            self.library_functions.pop(function_name, None)

    def flush_libraries(self) -> None:
        self.libraries.clear()
        self.library_functions.clear()

    def call_function(
        self, name: bytes, keys: list[bytes], args: list[bytes], protocol: int
    ) -> bytes:
        """FCALL: a loaded function's reply for a client of ``protocol``."""
        self.resp = 2
        self.aborted = None
        self.reply_errors = []
        callback = self.library_functions[name]
        if len(keys) + len(args) <= _ARGS_PER_CALL:
            ok, value = self._call_function(callback, len(keys), *keys, *args)
        else:
            ok, value = self._call_function(callback, False, self.table(keys), self.table(args))
        if self.aborted is not None:
            raise self.aborted
        if not ok:
            return self._error_reply(value, name)
        return self.reply(value, protocol)

    def run(self, sha: bytes, keys: list[bytes], args: list[bytes], protocol: int) -> bytes:
        """Run a compiled script; its reply encoded for a client of ``protocol`` (2 or 3).

        Raises :class:`Abort` when the owner stopped it."""
        self.resp = 2
        self.aborted = None
        self.reply_errors = []
        if len(keys) + len(args) <= _ARGS_PER_CALL:
            ok, value = self._run(self.functions[sha], len(keys), *keys, *args)
        else:
            ok, value = self._run(self.functions[sha], False, self.table(keys), self.table(args))
        if self.aborted is not None:
            raise self.aborted
        if not ok:
            return self._error_reply(value, sha)
        return self.reply(value, protocol)

    def _error_reply(self, value: Any, sha: bytes) -> bytes:
        if self.lua_type(value) != "table":
            reply = b"-ERR Error running script %b, %b\r\n" % (sha, _text(value)[:100])
            self.reply_errors.append((reply, False))
            return reply
        kind, text, source, line = self._shape(value)
        if kind != b"err":
            reply = b"-ERR Error running script %b, execution failure\r\n" % sha
            self.reply_errors.append((reply, False))
            return reply
        reply = b"-" + _sanitized(text)
        if source is not None and line is not None:
            reply += b" script: %b, on %b:%d." % (sha, source, int(line))
        reply += b"\r\n"
        self.reply_errors.append((reply, bool(value[b"ignore_error_stats_update"])))
        return reply

    # -- redis.call ----------------------------------------------------------------------

    def _raising_call(self, *args: Any) -> Any:
        """``redis.call``: a command's error is raised (a :class:`CallError`)."""
        reply = self._command(args)
        if reply.__class__ is CallError:
            raise reply
        return reply

    def _call(self, *args: Any) -> Any:
        """``redis.pcall``: a command's error is returned, as an error table."""
        reply = self._command(args)
        if reply.__class__ is CallError:
            table = self._failure(reply.text)
            if reply.counted:
                table[b"ignore_error_stats_update"] = True
            return table
        return reply

    def _command(self, args: tuple) -> Any:
        """Run a command line from the script: its reply as a Lua value, or a CallError."""
        argv = command_line(args)
        if argv.__class__ is CallError:
            return argv
        try:
            reply = self.call(argv, self.resp)
        except Abort as abort:
            self.aborted = abort
            raise
        first = reply[0]
        if first == 0x24:  # '$': a bulk string (GET's), or nil, without the parser
            if reply[1] == 0x2D:
                return None if self.resp == 3 else False
            return reply[reply.index(b"\r\n") + 2 : -2]
        if first == 0x2D:  # '-': an error; its first line without the dash
            return CallError(_sanitized(reply[1 : reply.index(b"\r\n")]), counted=True)
        return self.to_lua(parse(reply))

    def _setresp(self, *args: Any) -> None:
        if len(args) != 1:
            raise CallError(b"ERR redis.setresp() requires one argument.")
        if args[0] not in (2, 3) or args[0].__class__ is bool:
            raise CallError(b"ERR RESP version must be 2 or 3.")
        self.resp = int(args[0])

    def to_lua(self, value: Any) -> Any:
        """A parsed reply as Redis hands it to Lua."""
        kind = value.__class__
        if kind is bytes or kind is int:
            return value
        if value is None:
            return None if self.resp == 3 else False
        if kind is Status:
            return self._status(bytes(value))
        if kind is list:
            return self.table([self.to_lua(item) for item in value])
        if kind is ErrorReply:
            return self._failure(bytes(value))
        if kind is bool:
            return value
        if kind is float:
            return self._wrap(b"double", value)
        if kind is Map:
            flat = []
            for key, item in value:
                flat.append(self.to_lua(key))
                flat.append(self.to_lua(item))
            return self._as_map(self.table(flat), len(flat))
        if kind is Set:
            return self._as_set(self.table([self.to_lua(item) for item in value]))
        if kind is BigNumber:
            return self._wrap(b"big_number", bytes(value))
        if kind is Verbatim:
            return self._verbatim(bytes(value), value.format)
        raise TypeError(f"no Lua form for {kind.__name__}")

    def table(self, items: list) -> Any:
        """A Lua array of ``items``: built in pieces past what one call takes on Lua's C
        stack (lupa passes a call's arguments there: about 8000)."""
        if len(items) <= _ARGS_PER_CALL:
            return self._array(*items)
        table = self._array(*items[:_ARGS_PER_CALL])
        extend = self._extend
        for start in range(_ARGS_PER_CALL, len(items), _ARGS_PER_CALL):
            extend(table, start, *items[start : start + _ARGS_PER_CALL])
        return table

    # -- the script's value as a reply ----------------------------------------------------

    def reply(self, value: Any, protocol: int) -> bytes:
        """A Lua value as Redis replies with it to a client of ``protocol``.

        Without recursion, so a table that holds itself cannot exhaust the stack: as in
        Redis, whose Lua stack grows with each level it descends (one slot for an array's
        item, more for a map's), a value past the stack's limit is the error Redis gives
        there, after the levels above it."""
        kind = value.__class__
        if kind is bytes:  # the common replies, at once
            return b"$%d\r\n%b\r\n" % (len(value), value)
        if kind is int and -_MAX_INT <= value < _MAX_INT:
            return b":%d\r\n" % value
        out: list[bytes] = []
        children = self._reply_one(value, protocol, out)
        if not children:  # anything but a table with items: one piece
            return out[0]
        pending: list[tuple[Any, int]] = [(child, cost) for child, cost in reversed(children)]
        while pending:
            item, depth = pending.pop()
            if depth >= _LUA_STACK_SLOTS:
                out.append(b"-ERR reached lua stack limit\r\n")
                self.reply_errors.append((out[-1], False))
                continue
            children = self._reply_one(item, protocol, out)
            if children:
                pending.extend((child, depth + cost) for child, cost in reversed(children))
        return b"".join(out)

    def _reply_one(self, value: Any, protocol: int, out: list[bytes]) -> list | None:
        """Append ``value``'s reply, or a container's header; its items and their stack
        cost, when it has some."""
        if value is None:
            out.append(b"_\r\n" if protocol == 3 else b"$-1\r\n")
            return None
        kind = value.__class__
        if kind is bytes:
            out.append(b"$%d\r\n%b\r\n" % (len(value), value))
            return None
        if kind is int:
            out.append(b":%d\r\n" % (value if -_MAX_INT <= value < _MAX_INT else -_MAX_INT))
            return None
        if kind is float:
            out.append(b":%d\r\n" % _truncated(value))
            return None
        if kind is bool:  # as the script's protocol has them; a null as the client's
            if self.resp == 3:  # Redis's addReplyBool: 1 or 0 to a RESP2 client
                if protocol == 3:
                    out.append(b"#t\r\n" if value else b"#f\r\n")
                else:
                    out.append(b":1\r\n" if value else b":0\r\n")
            elif value:
                out.append(b":1\r\n")
            else:
                out.append(b"_\r\n" if protocol == 3 else b"$-1\r\n")
            return None
        if self.lua_type(value) != "table":
            out.append(b"_\r\n" if protocol == 3 else b"$-1\r\n")  # functions, threads ...
            return None
        shape = self._shape(value)
        form = shape[0]
        if form == b"array":
            items = shape[1]
            count = int(shape[2])
            out.append(b"*%d\r\n" % count)
            return [(items[i], 1) for i in range(1, count + 1)]
        if form == b"err":
            out.append(b"-" + _sanitized(shape[1]) + b"\r\n")
            self.reply_errors.append((out[-1], bool(value[b"ignore_error_stats_update"])))
        elif form == b"ok":
            out.append(b"+" + _sanitized(shape[1]) + b"\r\n")
        elif form == b"double":
            text = _double(shape[1])
            out.append(b",%b\r\n" % text if protocol == 3 else b"$%d\r\n%b\r\n" % (len(text), text))
        elif form == b"big_number":
            text = _sanitized(shape[1])
            out.append(b"(%b\r\n" % text if protocol == 3 else b"$%d\r\n%b\r\n" % (len(text), text))
        elif form == b"map":
            flat = shape[1]
            count = len(flat)
            out.append(b"%%%d\r\n" % (count // 2) if protocol == 3 else b"*%d\r\n" % count)
            return [(flat[i], 3 if i % 2 else 2) for i in range(1, count + 1)]
        elif form == b"set":
            members = shape[1]
            count = len(members)
            out.append(b"~%d\r\n" % count if protocol == 3 else b"*%d\r\n" % count)
            return [(members[i], 2) for i in range(1, count + 1)]
        else:
            text, fmt = shape[1], shape[2]  # verbatim
            if protocol == 3:
                out.append(b"=%d\r\n%b:%b\r\n" % (len(text) + 4, fmt or b"txt", text))
            else:
                out.append(b"$%d\r\n%b\r\n" % (len(text), text))
        return None


def _text(value: Any) -> bytes:
    if value.__class__ is bytes:
        return value
    return str(value).encode()


def _sanitized(text: Any) -> bytes:
    """An error's or status's text on one line, as Redis writes them."""
    text = _text(text)
    return text.replace(b"\r\n", b"  ").replace(b"\r", b" ").replace(b"\n", b" ")


def _truncated(number: float) -> int:
    """``(long long)`` of a Lua number, as C on x86 gives it (out of range: the minimum)."""
    if math.isnan(number) or not -_MAX_INT <= number < _MAX_INT:
        return -_MAX_INT
    return int(number)


def _double(number: Any) -> bytes:
    """A double as Redis's RESP3 writes it (``%.17g``, inf and nan spelled out)."""
    number = float(number)
    if math.isinf(number):
        return b"inf" if number > 0 else b"-inf"
    if math.isnan(number):
        return b"nan"
    return b"%.17g" % number
