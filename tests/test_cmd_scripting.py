"""EVAL, EVALSHA, SCRIPT: replies byte for byte against redis-server, atomicity across
shards, and redis-py's Lock (which releases and extends with scripts).

The sequences run on redis-server and on redis-clone at 1 and 4 shards (keys a, b, c, d
are on three shards of four), in RESP2 and RESP3: the Lua environment, the conversions both
ways, Redis's error texts, scripts over keys of several shards and keys they never declared,
the script cache.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis
from conftest import RawConnection, ServerProcess, encode_command
from redis.exceptions import LockNotOwnedError

# -- replies, against redis-server ----------------------------------------------------------

ENVIRONMENT = [
    "return 1",
    "return 3.9",
    "return -3.7",
    "return 1e20",
    "return true",
    "return false",
    "return nil",
    "return 'hello'",
    "return {1, 2, 3.5, 'x', nil, 4}",
    "return {1, {2, {3, 'four'}}}",
    "return {ok = 'fine'}",
    "return {ok = 1}",
    "return {err = 'My Error'}",
    "return {err = 'x\\nboom'}",
    "return {err = 1}",
    "return {double = 1.5}",
    "return {map = {a = 1}}",
    "return {set = {a = true}}",
    "return {big_number = '123'}",
    "return redis.error_reply('noprefix')",
    "return redis.error_reply('E1 x')",
    "return redis.status_reply('S')",
    "return redis.sha1hex('')",
    "return redis.sha1hex('abc')",
    "return redis.REDIS_VERSION",
    "return tostring(redis.REDIS_VERSION_NUM)",
    "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, "
    "redis.REPL_ALL}",
    "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "return _VERSION",
    "return tostring(1/3)",
    "return string.format('%q', 'a\\0b')",
    "return string.rep('x', 3)",
    "return unpack({1, 2})",
    "return coroutine.wrap(function() return 1 end)()",
    "return loadstring('return 7')()",
    "return type(loadstring)",
    "return {type(pcall), type(xpcall), type(rawget), type(setmetatable)}",
    "error('boom')",
    "error({err = 'X boom'})",
    "error('x', 0)",
    "error()",
    "error(12)",
    "x = 1",
    "return y",
    "return os",
    "return type(print)",
    "string.foo = 1",
    "redis.foo = 1",
    "_G.x = 1",
    "local x = nil; return x.y",
    "return 1 + {}",
    "retur 1",
    "\n\nreturn redis.call('incr', 'str')",
    "return redis.call()",
    "return redis.call({})",
    "return redis.call('echo', true)",
    "return redis.call('nosuch')",
    "return redis.call('get')",
    "return redis.call('get', 'k', 'x')",
    "return redis.call('object', 'nosuch')",
    "return redis.call('multi')",
    "return redis.call('blpop', 'q', 0)",
    "return redis.call('subscribe', 'a')",
    "return redis.call('eval', 'return 1', 0)",
    "return redis.call('client', 'list')",
    "return redis.call('config', 'get', 'maxmemory')",
    "return redis.call('ping')",
    "return redis.call('ping', 'hi')",
    "return redis.call('echo', 3.99)",
    "return redis.call('echo', 12345678901234)",
    "return redis.call('echo', 1e20)",
    "return redis.call('select', 100)",
    "return redis.call('select', 'x')",
    "return redis.call('incr', 'str')",
    "return redis.pcall('incr', 'str')",
    "local r = redis.pcall('nosuch') return r.err",
    "local ok, e = pcall(redis.call, 'incr', 'str') return {tostring(ok), e}",
    "local ok, e = pcall(redis.call, 'nosuch') return {type(e), e}",
    "local ok, e = pcall(error, {err = 'E1 mine'}) return e",
    "local ok, e = pcall(error, 'plain') return e",
    "local ok, e = xpcall(function() error('inner') end, function(m) return 'handled ' .. m end) "
    "return {tostring(ok), e}",
    "return redis.setresp(4)",
    "redis.setresp(3) return redis.call('hgetall', 'h')",
    "redis.setresp(3) local r = redis.call('hgetall', 'h') return {r.map.a, r.map.b}",
    "redis.setresp(3) return type(redis.call('get', 'nokey'))",
    "return type(redis.call('get', 'nokey'))",
    "redis.setresp(3) local r = redis.call('smembers', 'one') return r.set.m and 1 or 0",
    "redis.setresp(3) return redis.call('zscore', 'z', 'm')",
    "redis.setresp(3) local r = redis.call('zscore', 'z', 'm') return r.double",
    "redis.setresp(3) return redis.call('exists', 'h')",
    "return redis.call('zrange', 'z', 0, -1, 'withscores')",
    "return redis.call('hgetall', 'h')",
    "return redis.call('lrange', 'l', 0, -1)",
    "return redis.call('type', 'l')",
    "return redis.call('object', 'encoding', 'l')",
    "redis.log(redis.LOG_WARNING, 'from a test') return 1",
    "return redis.log(9, 'x')",
    "return redis.set_repl(redis.REPL_ALL)",
    "return redis.replicate_commands()",
    "return redis.call('time')[1] ~= nil",
]

SETUP = [
    ["SET", "str", "abc"],
    ["HSET", "h", "a", "1", "b", "2"],
    ["RPUSH", "l", "x", "y", "z"],
    ["ZADD", "z", "1.5", "m", "2", "n"],
    ["SADD", "one", "m"],
]

SEQUENCES: dict[str, list[list[str]]] = {
    "keys on several shards": [
        ["EVAL", "return redis.call('mset', KEYS[1], ARGV[1], KEYS[2], ARGV[2])", "2", "a", "b"]
        + ["1", "2"],
        ["EVAL", "return redis.call('mget', KEYS[1], KEYS[2], KEYS[3])", "3", "a", "b", "c"],
        [
            "EVAL",
            "redis.call('incr', KEYS[1]) redis.call('incr', KEYS[2]) "
            "return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}",
            "2",
            "a",
            "c",
        ],
        ["MGET", "a", "b", "c"],
    ],
    "keys never declared": [
        [
            "EVAL",
            "redis.call('set', 'a', 'A') redis.call('set', 'b', 'B') "
            "redis.call('rpush', 'c', 'C') return redis.call('mget', 'a', 'b')",
            "0",
        ],
        ["EVAL", "return {redis.call('get', 'a'), redis.call('lrange', 'c', 0, -1)}", "1", "d"],
        [
            "EVAL",
            "local v = redis.call('get', KEYS[1]) redis.call('set', 'b', v .. '!') "
            "return redis.call('get', 'b')",
            "1",
            "a",
        ],
        ["MGET", "a", "b", "d"],
    ],
    "commands over every shard": [
        ["MSET", "a", "1", "b", "2", "c", "3"],
        ["EVAL", "return redis.call('dbsize')", "0"],
        ["EVAL", "local k = redis.call('keys', '*') table.sort(k) return k", "0"],
        ["EVAL", "return redis.call('exists', 'a', 'b', 'c', 'd')", "0"],
        ["EVAL", "return redis.call('del', 'a', 'b')", "0"],
        ["EVAL", "redis.call('flushdb') return redis.call('dbsize')", "0"],
    ],
    "conditional commands across shards": [
        ["SET", "a", "1"],
        ["EVAL", "return {redis.call('rename', 'a', 'b'), redis.call('get', 'b')}", "0"],
        ["EVAL", "return redis.call('msetnx', 'c', '1', 'd', '2')", "0"],
        ["EVAL", "return redis.call('msetnx', 'c', '1', 'a', '2')", "0"],
        [
            "EVAL",
            "redis.call('sadd', 's1', 'x', 'y') "
            "return {redis.call('smove', 's1', 's2', 'x'), redis.call('scard', 's2')}",
            "0",
        ],
        [
            "EVAL",
            "redis.call('rpush', 'l1', 1, 2) redis.call('lmove', 'l1', 'l2', 'left', 'left') "
            "return redis.call('lrange', 'l2', 0, -1)",
            "0",
        ],
        ["MGET", "a", "b", "c", "d"],
    ],
    "select inside a script": [
        ["SET", "a", "db0"],
        [
            "EVAL",
            "redis.call('select', 1) redis.call('set', KEYS[1], 'db1') "
            "return redis.call('get', KEYS[1])",
            "1",
            "a",
        ],
        ["GET", "a"],
        ["SELECT", "1"],
        ["GET", "a"],
        ["FLUSHDB"],
        ["SELECT", "0"],
    ],
    "the script cache": [
        ["SCRIPT", "FLUSH"],
        ["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        ["SCRIPT", "LOAD", "return 1"],
        ["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "nope"],
        ["SCRIPT", "EXISTS", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB"],
        ["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        ["EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"],
        ["EVAL", "return 2", "0"],
        ["EVALSHA", "7f923f79fe76194c868d7e1d0820de36700eb649", "0"],
        ["EVALSHA_RO", "7f923f79fe76194c868d7e1d0820de36700eb649", "0"],
        ["SCRIPT", "LOAD", "retur 1"],
        ["SCRIPT", "FLUSH", "ASYNC"],
        ["SCRIPT", "FLUSH", "x"],
        ["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"],
        ["SCRIPT", "KILL"],
        ["SCRIPT", "HELP"],
        ["SCRIPT", "NOSUCH"],
        ["SCRIPT"],
        ["SCRIPT", "EXISTS"],
        ["EVALSHA", "abc"],
    ],
    "arguments": [
        ["EVAL", "return 1", "-1"],
        ["EVAL", "return 1", "2", "a"],
        ["EVAL", "return 1", "x"],
        ["EVAL", "return {KEYS[1], KEYS[2], ARGV[1], #KEYS, #ARGV}", "2", "k1", "k2", "a1"],
        ["EVAL", "KEYS[1] = 'x' return KEYS[1]", "1", "k"],
        ["EVAL", "return ARGV[1]", "0", "bin\r\nary\x00"],
        ["EVALSHA", "nope", "0"],
        ["EVAL"],
    ],
    "read-only scripts": [
        ["EVAL_RO", "return redis.call('set', 'x', 1)", "0"],
        ["EVAL_RO", "return redis.call('get', 'x')", "0"],
        ["EVAL", "#!lua flags=no-writes\nreturn redis.call('set', 'x', 1)", "0"],
        ["EVAL", "#!lua flags=no-writes,allow-oom\nreturn redis.call('get', 'x')", "0"],
        ["EVAL", "#!lua\nreturn 1", "0"],
        ["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        ["EVAL", "#!lua name=x\nreturn 1", "0"],
        ["EVAL", "#!nope\nreturn 1", "0"],
        ["EVAL", "#!lua", "0"],
        ["EVAL", "#!lua\nretur 1", "0"],
        ["EVAL", "#!lua flags=\nreturn 3", "0"],
    ],
    "inside a transaction": [
        ["MULTI"],
        ["EVAL", "return redis.call('incr', KEYS[1])", "1", "a"],
        ["EVAL", "return redis.call('incr', 'b')", "0"],
        ["GET", "a"],
        ["EXEC"],
    ],
    "data types": [
        [
            "EVAL",
            "redis.call('hset', KEYS[1], 'f', 'v', 'g', 'w') return redis.call('hgetall', KEYS[1])",
            "1",
            "h",
        ],
        [
            "EVAL",
            "redis.call('zadd', KEYS[1], 1, 'a', 2.5, 'b') "
            "return redis.call('zrange', KEYS[1], 0, -1, 'withscores')",
            "1",
            "z",
        ],
        [
            "EVAL",
            "redis.call('rpush', KEYS[1], 1, 2, 3) return redis.call('lpop', KEYS[1], 2)",
            "1",
            "l",
        ],
        [
            "EVAL",
            "redis.call('sadd', KEYS[1], 'x', 'y', 'z') "
            "local m = redis.call('smembers', KEYS[1]) table.sort(m) return m",
            "1",
            "s",
        ],
        ["EVAL", "return redis.call('hset', KEYS[1], 'f', 'v')", "1", "l"],
        ["EVAL", "return redis.pcall('lpush', KEYS[1], 'v')", "1", "h"],
        ["EVAL", "return redis.call('expire', KEYS[1], 100)", "1", "h"],
        ["EVAL", "return redis.call('ttl', KEYS[1])", "1", "h"],
    ],
}


LIBRARY = (
    "#!lua name=lib1\n"
    "redis.register_function('f1', function(keys, args) "
    "return redis.call('set', keys[1], args[1]) end)\n"
    "redis.register_function{function_name='f2', callback=function(keys, args) "
    "return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}\n"
    "local function helper(keys) return redis.call('mget', unpack(keys)) end\n"
    "redis.register_function('f3', function(keys, args) return helper(keys) end)"
)
SEQUENCES["functions"] = [
    ["FUNCTION", "LOAD", LIBRARY],
    ["FUNCTION", "LOAD", LIBRARY],
    ["FUNCTION", "LOAD", "REPLACE", LIBRARY],
    ["FCALL", "f1", "1", "a", "v"],
    ["FCALL", "f1", "1", "b", "w"],
    ["FCALL", "f2", "1", "a"],
    ["FCALL", "f3", "3", "a", "b", "c"],
    ["FCALL", "f3", "3", "a", "b", "c"],
    ["FCALL_RO", "f1", "1", "a", "v"],
    ["FCALL_RO", "f2", "1", "a"],
    ["FCALL", "nosuch", "0"],
    ["FCALL", "f1", "x"],
    ["FCALL", "f1", "3", "a"],
    ["FCALL", "f1", "-1"],
    # Redis lists a library's functions in its hash table's order (seeded at random):
    # listings compare libraries of one function.
    [
        "FUNCTION",
        "LOAD",
        "#!lua name=one\nredis.register_function('only', function() return 1 end)",
    ],
    ["FUNCTION", "LIST", "LIBRARYNAME", "one"],
    ["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "on*"],
    ["FUNCTION", "LIST", "LIBRARYNAME", "z*"],
    ["FUNCTION", "LIST", "LIBRARYNAME"],
    ["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
    ["FUNCTION", "STATS"],
    ["FUNCTION", "LOAD", "return 1"],
    ["FUNCTION", "LOAD", "#!lua\nreturn 1"],
    ["FUNCTION", "LOAD", "#!lua name=bad-name\nreturn 1"],
    ["FUNCTION", "LOAD", "#!lua name=lib2 foo=bar\nreturn 1"],
    ["FUNCTION", "LOAD", "#!lua name=lib2\nreturn 1"],
    ["FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function('f1', function() end)"],
    ["FUNCTION", "LOAD", "#!lua name=lib2\nredis.call('ping')"],
    ["FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function('f4', 5)"],
    [
        "FUNCTION",
        "LOAD",
        "#!lua name=lib2\nredis.register_function('f4', function() error('boom') end)",
    ],
    ["FCALL", "f4", "0"],
    ["FUNCTION", "LOAD", "X", "#!lua name=lib3\nreturn 1"],
    ["FUNCTION", "DELETE", "lib2"],
    ["FUNCTION", "DELETE", "lib2"],
    ["FCALL", "f4", "0"],
    ["FUNCTION", "FLUSH", "x"],
    ["FUNCTION", "FLUSH", "SYNC", "x"],
    ["FUNCTION", "KILL"],
    ["FUNCTION", "HELP"],
    ["FUNCTION", "RESTORE", "x"],
    ["FUNCTION", "RESTORE", "x", "bogus"],
    ["FUNCTION", "DELETE", "lib1"],
    ["FUNCTION", "LIST"],
    ["FUNCTION", "FLUSH"],
    ["FCALL", "f1", "1", "a", "v"],
    ["FUNCTION", "LIST"],
]


def _library(first_line: str, body: str = "redis.register_function('f', function() return 1 end)"):
    return ["FUNCTION", "LOAD", first_line + "\n" + body]


# The first line of a library or script as Redis reads it (sdssplitargs, a C string); function
# names found whatever their case, library names only as spelt (Redis's own tests load
# libraries as ``#!LUA``).
SEQUENCES["metadata and names"] = [
    _library("#!LUA name=test", "redis.register_function('test', function() return 'hello' end)"),
    ["FCALL", "TEST", "0"],
    ["FCALL_RO", "Test", "0"],
    _library("#!Lua NAME=Test2", "redis.register_function('F1', function() return 2 end)"),
    ["FCALL", "f1", "0"],
    _library("#!lua name=test2", "redis.register_function('f1', function() return 3 end)"),
    _library("#!lua name=TEST"),
    ["FUNCTION", "DELETE", "TEST"],
    ["FUNCTION", "DELETE", "Test"],
    _library('#!lua name="q1"'),
    _library("#!lua name='q2'", "redis.register_function('g', function() return 1 end)"),
    _library('#!lua "name=q3"'),
    _library('#!lua name="q4'),
    _library("#!lua name=a\0b"),
    _library("#!lua\0 name=ab"),
    _library("#!lua name=z name=w"),
    _library("#!bad name=z name=w"),
    _library("#!lua name="),
    _library("#!lua name=z", "redis.register_function('a-b', function() return 1 end)"),
    ["FUNCTION", "LOAD", "#!lua name=nonewline"],
    ["FUNCTION", "LIST", "LIBRARYNAME", "q2*"],  # one: Redis lists many in dict order
    ["FUNCTION", "LIST", "LIBRARYNAME", "Q2*"],
    ["FUNCTION", "STATS"],
    ["FUNCTION", "RESTORE", "arg1", "args2", "arg3"],
    ["FUNCTION", "FLUSH", "sync", "extra_arg"],
    ["COMMAND", "GETKEYS", "FCALL", "test", "1", "x", "foo"],
    ["COMMAND", "GETKEYS", "FCALL_RO", "test", "2", "x", "y"],
    ["COMMAND", "GETKEYS", "EVAL", "return 1", "0"],
    ["COMMAND", "GETKEYS", "EVALSHA", "abc", "-1"],
    ["COMMAND", "GETKEYS", "EVAL_RO", "return 1", "5", "a"],
    ["EVAL", '#!lua flags="no-writes"\nreturn 1', "0"],
    ["EVAL", "#!lua flags='no-writes,allow-oom'\nreturn 1", "0"],
    ["EVAL", '#!lua flags="no-writes\nreturn 1', "0"],
    ["EVAL", "#!lua flags=no-writes,,allow-oom\nreturn 1", "0"],
    ["EVAL", "#!lua flags=\nreturn 1", "0"],
    ["EVAL", "#! lua\nreturn 1", "0"],
    ["EVAL", "#!LUAX flags=no-writes\nreturn 1", "0"],
    ["EVAL", "#!lua\0x\nreturn 1", "0"],
    ["EVAL", "#!lua", "0"],
    ["FUNCTION", "FLUSH"],
]


#: Globals a library's top level cannot see (Redis: "Script attempted to access nonexistent
#: global variable"), and the redis fields it can and cannot.
LOAD_TIME_NAMES = [
    "math", "type", "pairs", "string", "table", "cjson", "bit", "struct", "cmsgpack", "_G",
    "tostring", "pcall", "loadstring", "KEYS", "redis.call", "redis.pcall", "redis.setresp",
    "redis.REPL_ALL", "redis.sha1hex", "redis.LOG_WARNING", "redis.REDIS_VERSION",
    "redis.REDIS_VERSION_NUM", "redis.log",
]  # fmt: skip
_REGISTER = "redis.register_function('f', function() return 1 end)"


def _loading(body: str) -> list[str]:
    return ["FUNCTION", "LOAD", "REPLACE", "#!lua name=t\n" + body]


# What a library's code sees while it loads: only redis.register_function, redis.log and its
# levels and the version (no builtins, no other library); register_function's argument
# checks in Redis's order; a load that runs past 500 ms stops, whatever it pcalls.
SEQUENCES["loading a library"] = [
    _loading(f"local x = {name}\n{_REGISTER}") for name in LOAD_TIME_NAMES
] + [
    _loading("redis.register_function()"),
    _loading("redis.register_function('a')"),
    _loading("redis.register_function('a', function() end, 3)"),
    _loading("redis.register_function(1, function() return 1 end)"),
    _loading("redis.register_function({}, function() return 1 end)"),
    _loading("redis.register_function('x', nil)"),
    _loading("redis.register_function({})"),
    _loading("redis.register_function({function_name='a'})"),
    _loading("redis.register_function({callback=function() end})"),
    _loading("redis.register_function{function_name='a', callback=function() end, foo=1}"),
    _loading("redis.register_function{function_name='a', callback=function() end, [1]=2}"),
    _loading("redis.register_function{function_name='a', callback=function() end, [true]=2}"),
    _loading("redis.register_function{function_name='a', callback=5}"),
    _loading("redis.register_function{function_name={}, callback=function() end}"),
    _loading("redis.register_function{function_name='a', callback=function() end, flags='x'}"),
    _loading("redis.register_function{function_name='a', callback=function() end, flags={1}}"),
    _loading(
        "redis.register_function{function_name='a', callback=function() end, "
        "flags={'allow-oom', 'NO-WRITES', 'no-writes'}, description=5}"
    ),
    ["FUNCTION", "LIST"],
    _loading("redis.register_function{FUNCTION_NAME=7, CallBack=function() end}"),
    ["FUNCTION", "LIST"],
    _loading(f"x = 5\n{_REGISTER}"),
    _loading(f"redis.foo = 1\n{_REGISTER}"),
    _loading(f"redis.log(redis.LOG_WARNING, 'loading')\n{_REGISTER}"),
    _loading(f"local i = 0 while i < 1000 do i = i + 1 end\n{_REGISTER}"),
    _loading(f"while true do end\n{_REGISTER}"),
    ["PING"],
    _loading("redis.register_function('g', function() return type(math) .. type(redis.call) end)"),
    ["FCALL", "g", "0"],
    _loading("redis.register_function('g', function() redis.register_function('z', g) end)"),
    ["FCALL", "g", "0"],
    _loading(
        "local lib = redis\n"
        "redis.register_function('g', function() lib.register_function('z', 1) end)"
    ),
    ["FCALL", "g", "0"],
    ["EVAL", "return tostring(math.random()) ~= tostring(math.random())", "0"],
    ["EVAL", "return type(redis.register_function)", "0"],
    ["FUNCTION", "FLUSH"],
]


# Commands the acceptor answers, from a script (a write first: at one shard too the script
# must not be stuck on its shard), and Redis's refusals of commands scripts may not run,
# served here or not.
SEQUENCES["acceptor commands in scripts"] = [
    ["EVAL", "redis.call('set', KEYS[1], 'v') return redis.call('publish', 'ch', 'm')", "1", "k"],
    ["EVAL", "redis.call('set', KEYS[1], 1) return redis.call('spublish', KEYS[1], 1)", "1", "k"],
    ["EVAL", "return redis.call('pubsub', 'numsub', 'ch', 'other')", "0"],
    ["EVAL", "return redis.call('pubsub', 'channels')", "0"],
    ["EVAL", "return redis.call('pubsub', 'numpat')", "0"],
    ["EVAL", "return type(redis.call('info', 'keyspace'))", "0"],
    ["EVAL", "return type(redis.call('lastsave'))", "0"],
    ["EVAL", "return redis.call('command', 'getkeys', 'set', 'a', 'b')", "0"],
    ["EVAL", "return redis.call('command', 'info', 'get')", "0"],
    ["EVAL", "return redis.call('ping', 'a', 'b')", "0"],
    ["EVAL", "return redis.pcall('ping', 'a', 'b')", "0"],
    ["EVAL", "return redis.pcall('echo')", "0"],
] + [
    ["EVAL", f"return redis.pcall({args})", "0"]
    for args in [
        "'wait', 0, 0", "'role'", "'acl', 'whoami'", "'latency', 'latest'", "'replicaof', 'no', 1",
        "'failover'", "'sync'", "'psync', '?', '-1'", "'cluster', 'reset'", "'client', 'list'",
        "'config', 'get', 'x'", "'debug', 'sleep', 0", "'save'", "'monitor'", "'hello'",
        "'module', 'list'", "'acl'", "'nosuchcommand'", "'latency', 'nosuch'",
    ]
]  # fmt: skip


# Redis's own PRNG behind math.random (the same numbers after the same seed), no bytecode,
# and read-only tables that rawset, setmetatable and the strings' metatable cannot get
# around: nothing a script does is left for the next one.
SEQUENCES["sandbox and random numbers"] = [
    ["EVAL", body, "0"]
    for body in [
        "math.randomseed(10) return tostring(math.random())",
        "math.randomseed(10) return {math.random(1, 1000), math.random(7), math.random(3)}",
        "math.randomseed(-3) return tostring(math.random())",
        "math.randomseed(1.5) return tostring(math.random())",
        "math.randomseed(2^40) return tostring(math.random())",
        "math.randomseed('12') local t = {} for i = 1, 50 do t[i] = math.random(100) end return t",
        "return {pcall(math.random, 1, 2, 3)}",
        "local x = math.random(5, 1) return x",
        "local x = math.random(0) return x",
        "local x = math.random('x') return x",
        "math.randomseed() return 1",
        "return {pcall(loadstring, string.dump(function() return 1 end))}",
        "local f, e = loadstring(string.dump(function() return 1 end)) return {type(f), e}",
        "local f = load('return 1') return 1",
        "return {pcall(setmetatable, _G, {})}",
        "return {type(getmetatable(_G)), type(getmetatable(math)), type(getmetatable(string))}",
        "return {pcall(rawset, _G, 'leak', 1)}",
        "return {pcall(rawset, string, 'leak', 1)}",
        "return {pcall(function() getmetatable('').__index = nil end)}",
        "return {pcall(function() getmetatable('').__index.leak = 1 end)}",
        "return {pcall(function() math.leak = 1 end)}",
        "return {('abc'):upper(), rawget(_G, 'leak') == nil}",
        "setmetatable(_G, {})",
        "rawset(_G, 'x', 1)",
        "setmetatable(string, {})",
    ]
]


# The redis lib's argument checks, and a reply that holds itself: Redis's levels, then its
# error where its Lua stack runs out.
SEQUENCES["redis lib arguments and deep replies"] = [
    ["EVAL", body, "0"]
    for body in [
        "return redis.acl_check_cmd('nosuch')",
        "return redis.acl_check_cmd('get', {})",
        "return redis.acl_check_cmd()",
        "return redis.acl_check_cmd('GET', 1)",
        "return redis.acl_check_cmd('set')",
        "return redis.acl_check_cmd('config', 'get')",
        "return redis.acl_check_cmd('config', 'nosuch')",
        "return redis.sha1hex()",
        "return redis.sha1hex(1, 2)",
        "return redis.sha1hex({})",
        "return redis.sha1hex(nil)",
        "return redis.sha1hex(12)",
        "return redis.sha1hex(0.5)",
        "return redis.setresp()",
        "return redis.setresp(4)",
        "return redis.set_repl()",
        "return redis.set_repl(7)",
        "return {type(redis.sha1hex), type(redis.acl_check_cmd), type(redis.setresp)}",
        "local t = {1} local c = t for i = 1, 300 do local n = {i} c[2] = n c = n end return t",
    ]
]


# SORT BY a constant leaves a set unsorted, except in a script (Redis sorts its output so a
# script cannot depend on the set's order), held or on its shard (each script twice: the
# first run is held, the next on the shard); lists keep their order.
_SORTS = [
    "return redis.call('sort', KEYS[1], 'by', '_')",
    "return redis.call('sort', KEYS[1], 'by', '_', 'get', '#', 'get', '_:*')",
    "return redis.call('sort_ro', KEYS[1], 'by', 'nosort', 'desc', 'limit', 1, 3)",
    "redis.call('echo', 'held') return redis.call('sort', KEYS[1], 'by', 'nosort')",
]
SEQUENCES["sort in scripts"] = (
    [["SADD", "myset", *"abcdefghilmnopqrstuvz", "aa", "aaa", "azz"]]
    + [["EVAL", body, "1", "myset"] for body in _SORTS for _twice in range(2)]
    + [["RPUSH", "list", "c", "a", "b"]]
    + [["EVAL", _SORTS[0], "1", "list"] for _twice in range(2)]
)


# min-replicas-to-write with no replica ever here: clients' writes, queued writes, writes
# from scripts, and scripts or functions that may write (a shebang without no-writes) get
# -NOREPLICAS; reads and read-only scripts run.
_MAY_WRITE = "redis.register_function('w', function() return redis.call('set', 'x', 1) end)"
_READS = (
    "redis.register_function{function_name='r', callback=function() "
    "return redis.call('get', 'x') end, flags={'no-writes'}}"
)
SEQUENCES["min-replicas-to-write"] = [
    ["SET", "x", "some value"],
    ["FUNCTION", "LOAD", f"#!lua name=norepl\n{_MAY_WRITE}\n{_READS}"],
    ["CONFIG", "SET", "min-replicas-to-write", "1"],
    ["EVAL", "return redis.call('info', 'replication'):match('min_slaves_good_slaves:%d')", "0"],
    ["EVAL", "#!lua flags=no-writes\nreturn redis.call('get', 'x')", "1", "x"],
    ["EVAL", "return redis.call('get', 'x')", "1", "x"],
    ["EVAL", "#!lua\nreturn redis.call('get', 'x')", "1", "x"],
    ["EVAL", "return redis.call('set', 'x', 1)", "1", "x"],
    ["EVAL", "return redis.pcall('set', 'x', 1)", "1", "x"],
    ["SET", "x", "2"],
    ["MSET", "a", "1", "b", "2"],
    ["GET", "x"],
    ["MULTI"],
    ["SET", "x", "3"],
    ["GET", "x"],
    ["EXEC"],
    ["FCALL", "w", "1", "x"],
    ["FCALL", "r", "1", "x"],
    ["CONFIG", "SET", "min-replicas-max-lag", "0"],
    ["SET", "x", "4"],
    ["CONFIG", "SET", "min-replicas-max-lag", "10"],
    ["CONFIG", "SET", "min-replicas-to-write", "0"],
    ["SET", "x", "5"],
    ["FUNCTION", "DELETE", "norepl"],
]


def _environment_sequence() -> list[list[str]]:
    return SETUP + [["EVAL", body, "0"] for body in ENVIRONMENT]


SEQUENCES["the environment"] = _environment_sequence()


def replies(server: ServerProcess, commands: list[list[str]], resp3: bool = False) -> list[bytes]:
    with RawConnection(server.port) as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        assert conn.command("SCRIPT", "FLUSH") == b"+OK\r\n"
        assert conn.command("FUNCTION", "FLUSH") == b"+OK\r\n"
        if resp3:
            assert conn.command("HELLO", "3").startswith(b"%")
        out = []
        for command in commands:  # one at a time: a reply that differs is easy to find
            conn.send(encode_command(*command))
            out.append(conn.read_reply())
        return out


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_replies_match_redis(redis_server: ServerProcess, clone: ServerProcess, name: str) -> None:
    commands = SEQUENCES[name]
    expected = replies(redis_server, commands)
    got = replies(clone, commands)
    for command, want, have in zip(commands, expected, got, strict=True):
        assert (command, have) == (command, want)


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_resp3_replies_match_redis(
    redis_server: ServerProcess, clone: ServerProcess, name: str
) -> None:
    commands = SEQUENCES[name]
    expected = replies(redis_server, commands, resp3=True)
    got = replies(clone, commands, resp3=True)
    for command, want, have in zip(commands, expected, got, strict=True):
        assert (command, have) == (command, want)


def test_function_dump_and_restore_between_servers(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    """A payload FUNCTION DUMP made on either server restores on the other."""
    ours, theirs = redis.Redis(port=clone.port), redis.Redis(port=redis_server.port)
    for source, target in ((theirs, ours), (ours, theirs)):
        source.function_flush()
        target.function_flush()
        source.function_load(LIBRARY)
        payload = source.function_dump()
        with pytest.raises(redis.ResponseError, match="already exists"):
            source.function_restore(payload)
        assert target.function_restore(payload)
        assert target.fcall("f1", 1, "k", "restored") == b"OK"
        assert target.fcall("f2", 1, "k") == b"restored"
        assert target.function_restore(payload, "REPLACE")
        assert target.function_restore(payload, "FLUSH")
        assert [lib[1] for lib in target.function_list()] == [b"lib1"]
    ours.function_flush()
    theirs.function_flush()


def test_pipelined_scripts_answer_in_order(clone: ServerProcess) -> None:
    """Scripts on one shard, over every shard, and plain commands, pipelined: each reply in
    its place, each script seeing what the commands before it did."""
    with RawConnection(clone.port) as conn:
        conn.command("FLUSHALL")
        commands = []
        for i in range(200):
            commands.append(["SET", "a", str(i)])
            commands.append(["EVAL", "return redis.call('get', KEYS[1])", "1", "a"])
            commands.append(["EVAL", "return redis.call('mget', 'a', 'b', 'c')", "0"])
            commands.append(["INCR", "b"])
        conn.send(b"".join(encode_command(*command) for command in commands))
        got = [conn.read_reply() for _ in commands]
    for i in range(200):
        value = str(i).encode()
        assert got[4 * i + 1] == b"$%d\r\n%b\r\n" % (len(value), value)
        count = str(i).encode() if i else None
        b_reply = b"$-1\r\n" if count is None else b"$%d\r\n%b\r\n" % (len(count), count)
        assert (
            got[4 * i + 2] == (b"*3\r\n$%d\r\n%b\r\n" % (len(value), value)) + b_reply + b"$-1\r\n"
        )
        assert got[4 * i + 3] == b":%d\r\n" % (i + 1)


def _pipelined_evalsha(server: ServerProcess) -> tuple[list[bytes], list[bytes]]:
    """A pipeline of EVALSHA, good and refused (the client's dispatch takes scripts straight
    to their route): the replies, then the script's commandstats and the error counts."""
    body = "return redis.call('get', KEYS[1])"
    with RawConnection(server.port) as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        assert conn.command("SCRIPT", "FLUSH") == b"+OK\r\n"
        assert conn.command("CONFIG", "RESETSTAT") == b"+OK\r\n"
        sha = conn.command("SCRIPT", "LOAD", body).split(b"\r\n")[1].decode()
        commands = [
            ["SET", "k", "v"],
            ["EVALSHA", sha, "1", "k"],
            ["evalsha", sha.upper(), "1", "k"],
            ["EVALSHA", "f" * 40, "0"],
            ["EVALSHA", sha, "2", "k"],
            ["EVALSHA", sha, "-1"],
            ["EVALSHA", sha, "x", "k"],
            ["EVALSHA", sha],
            ["EVALSHA_RO", sha, "1", "k"],
            ["GET", "k"],
        ]
        conn.send(b"".join(encode_command(*command) for command in commands))
        got = [conn.read_reply() for _ in commands]
        info = conn.command("INFO", "ALL").split(b"\r\n")
    counts = []
    for line in info:
        if line.startswith((b"cmdstat_evalsha", b"errorstat_")):
            name, _, fields = line.partition(b":")
            # the times differ; the counts must not
            kept = [field for field in fields.split(b",") if not field.startswith(b"usec")]
            counts.append(name + b":" + b",".join(kept))
    return got, sorted(counts)


def test_pipelined_evalsha_errors_match_redis(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    """EVALSHA's replies and errors in a pipeline, and how INFO counts them, as Redis's."""
    assert _pipelined_evalsha(clone) == _pipelined_evalsha(redis_server)


def test_a_script_that_reaches_another_shard_runs_again_over_all(clone: ServerProcess) -> None:
    """A script learned on one shard that then reads a key of another shard before it
    writes: it runs again with every shard held, and its reply is the one Redis gives."""
    client = redis.Redis(port=clone.port)
    client.flushall()
    script = client.register_script(
        "local other = redis.call('get', KEYS[1]) "
        "if other then return redis.call('get', other) end return 'none'"
    )
    for _ in range(3):
        assert script(keys=["pointer"]) == b"none"
    client.set("pointer", "target:elsewhere")
    client.set("target:elsewhere", "found")
    for _ in range(3):
        assert script(keys=["pointer"]) == b"found"


# -- atomic across shards -------------------------------------------------------------------

KEYS = ["a", "b", "c", "d"]
ATOMIC = "for i = 1, #KEYS do redis.call('set', KEYS[i], ARGV[1]) end return 1"
TORN = "return redis.call('set', KEYS[1], ARGV[1])"


SET_ALL = (
    "#!lua name=setall\n"
    "redis.register_function('set_all', function(keys, args) "
    "for i = 1, #keys do redis.call('set', keys[i], args[1]) end return 1 end)"
)


#: A script that never takes the fast path (ECHO is answered by the acceptor): it always
#: runs over every shard held, however few.
HELD = "redis.call('echo', 'held') " + ATOMIC


def torn_reads(
    server: ServerProcess,
    atomic: bool,
    rounds: int = 300,
    function: bool = False,
    script: str = ATOMIC,
) -> int:
    """Writers set a, b, c, d (on three shards) to one value per script (or, the control,
    one script per key); readers MGET them: how many reads saw different values."""
    stop = threading.Event()
    torn = [0]
    writer = redis.Redis(port=server.port)
    writer.mset(dict.fromkeys(KEYS, "0"))
    if function:
        writer.function_load(SET_ALL, replace=True)

    def read() -> None:
        reader = redis.Redis(port=server.port)
        while not stop.is_set():
            if len(set(reader.mget(KEYS))) > 1:
                torn[0] += 1

    readers = [threading.Thread(target=read) for _ in range(3)]
    for each in readers:
        each.start()
    try:
        for value in range(1, rounds + 1):
            if function:
                writer.fcall("set_all", len(KEYS), *KEYS, value)
            elif atomic:
                writer.eval(script, len(KEYS), *KEYS, value)
            else:
                for key in KEYS:
                    writer.eval(TORN, 1, key, value)
            if not atomic and torn[0]:
                break
    finally:
        stop.set()
        for each in readers:
            each.join()
    return torn[0]


def test_a_script_over_several_shards_is_atomic(clone: ServerProcess) -> None:
    assert torn_reads(clone, atomic=True) == 0


@pytest.mark.parametrize("shards", [1, 4])
def test_a_held_script_is_atomic_with_two_acceptors(clone_factory, shards: int) -> None:
    """Held on one shard too: its calls come in batches of their own, and readers on the
    other acceptor must not run between them (a one-shard hold was once not ticketed)."""
    server = clone_factory.start_clone(shards, ["--acceptors", "2"])
    assert torn_reads(server, atomic=True, rounds=400, script=HELD) == 0


def test_a_function_over_several_shards_is_atomic(clone: ServerProcess) -> None:
    assert torn_reads(clone, atomic=True, function=True) == 0


def test_the_torn_control_is_caught(clone: ServerProcess) -> None:
    if clone.name.endswith("shards1"):
        pytest.skip("one shard: every script is one step")
    assert torn_reads(clone, atomic=False, rounds=3000) > 0


@pytest.mark.parametrize(
    "body", ["local t = {} t[1] = t return t", "local t = {} t[1] = {t} return t"]
)
def test_a_reply_that_holds_itself_ends_where_redis_ends_it(
    redis_server: ServerProcess, clone: ServerProcess, body: str
) -> None:
    """Redis descends until its Lua stack is full, then writes its error in place."""
    end = b"-ERR reached lua stack limit\r\n"
    replies = []
    for server in (redis_server, clone):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(encode_command("EVAL", body, "0"))
            data = b""
            while not data.endswith(end):
                chunk = conn.recv(1 << 16)
                assert chunk, data[-100:]
                data += chunk
            replies.append(data)
    assert replies[1] == replies[0]


def test_long_replies_and_many_arguments_reach_the_script_as_in_redis(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    """Replies of any length become Lua tables (LRANGE of 20,000 items, HGETALL and
    SMEMBERS of 10,000, in RESP2 and RESP3), and KEYS/ARGV of any length arrive: one call
    into Lua once took at most about 8000 values."""
    body = (
        "redis.setresp(tonumber(ARGV[1])) "
        "local l = redis.call('LRANGE', KEYS[1], 0, -1) "
        "local h = redis.call('HGETALL', KEYS[2]) "
        "local s = redis.call('SMEMBERS', KEYS[3]) "
        "local hn = 0 if h.map then for _ in pairs(h.map) do hn = hn + 1 end else hn = #h end "
        "local sn = 0 if s.set then for _ in pairs(s.set) do sn = sn + 1 end else sn = #s end "
        "return {#l, l[1], l[8001], l[20000], hn, sn, #KEYS, #ARGV, ARGV[#ARGV]}"
    )
    keys = ["big{s}", "hash{s}", "set{s}"]
    replies = []
    for server in (redis_server, clone):
        client = redis.Redis(port=server.port)
        client.delete(*keys)
        client.rpush(keys[0], *range(20_000))
        client.hset(keys[1], mapping={f"f{i}": i for i in range(10_000)})
        client.sadd(keys[2], *range(10_000))
        for protocol in ("2", "3"):
            args = [protocol, *(f"a{i}" for i in range(12_000))]
            replies.append(client.eval(body, len(keys), *keys, *args))
        many_keys = [f"k{i}{{s}}" for i in range(9_000)]
        replies.append(client.eval("return {#KEYS, KEYS[9000]}", len(many_keys), *many_keys))
        client.delete(*keys)
        client.close()
    half = len(replies) // 2
    assert replies[half:] == replies[:half]
    assert replies[0][0] == 20_000 and replies[0][6:8] == [3, 12_001]


def test_math_random_is_one_sequence_for_the_server(clone: ServerProcess) -> None:
    """As Redis 7: one sequence that lives on between scripts, wherever they run (the
    first run of a script is held, later ones run in a shard); a seed restarts it."""
    client = redis.Redis(port=clone.port)
    script = "return tostring(math.random())"
    drawn = [client.eval(script, 0) for _ in range(4)] + [client.eval(script, 1, "k")]
    assert len(set(drawn)) == len(drawn)
    seeded = "math.randomseed(10) return tostring(math.random())"
    assert client.eval(seeded, 0) == client.eval(seeded, 1, "k") == b"0.87885112309775"


def test_a_script_publishes_to_subscribers(clone: ServerProcess) -> None:
    """A script that writes, then PUBLISHes (a job queue's notification): every run's
    message reaches the subscriber, in order, and the writes are there."""
    client = redis.Redis(port=clone.port)
    subscriber = client.pubsub()
    subscriber.subscribe("jobs")
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    script = client.register_script(
        "redis.call('rpush', KEYS[1], ARGV[1]) return redis.call('publish', 'jobs', ARGV[1])"
    )
    assert [script(keys=["queue"], args=[i]) for i in range(5)] == [1] * 5
    received = []
    end = time.monotonic() + 10
    while len(received) < 5 and time.monotonic() < end:
        message = subscriber.get_message(timeout=1)
        if message is not None and message["type"] == "message":
            received.append(message["data"])
    assert received == [b"0", b"1", b"2", b"3", b"4"]
    assert client.lrange("queue", 0, -1) == received
    subscriber.close()
    client.delete("queue")


def test_info_memory_counts_scripts_and_functions(clone: ServerProcess) -> None:
    client = redis.Redis(port=clone.port)
    client.script_flush()
    client.function_flush()
    fields = client.info("memory")
    for name in (
        "used_memory_lua", "used_memory_vm_eval", "used_memory_scripts_eval",
        "used_memory_vm_functions", "used_memory_vm_total", "used_memory_functions",
        "used_memory_scripts",
    ):  # fmt: skip
        assert isinstance(fields[name], int) and fields[name] >= 0, name
    assert (fields["number_of_cached_scripts"], fields["number_of_libraries"]) == (0, 0)
    client.script_load("return 1")
    client.eval("return 2", 0)
    client.function_load(LIBRARY)
    fields = client.info("memory")
    assert fields["number_of_cached_scripts"] == 2
    assert (fields["number_of_libraries"], fields["number_of_functions"]) == (1, 3)
    assert fields["used_memory_scripts"] > 0
    assert fields["used_memory_vm_total"] == (
        fields["used_memory_vm_eval"] + fields["used_memory_vm_functions"]
    )
    client.script_flush()
    client.function_flush()
    fields = client.info("memory")
    assert (fields["number_of_cached_scripts"], fields["number_of_functions"]) == (0, 0)


# -- redis-py's Lock -----------------------------------------------------------------------


def test_redis_py_lock(clone: ServerProcess) -> None:
    client = redis.Redis(port=clone.port)
    client.flushall()
    lock = client.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    assert not client.lock("resource", timeout=5).acquire(blocking=False)
    assert lock.extend(10)
    assert 5 < client.ttl("resource") <= 15
    assert lock.reacquire()
    assert lock.owned()
    other = client.lock("resource", timeout=5)
    other.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        other.release()  # the release script compares tokens on the server
    other.local.token = b"not-the-owner"  # release forgot it
    with pytest.raises(LockNotOwnedError):
        other.extend(5)
    lock.release()
    assert not lock.owned()
    assert client.get("resource") is None


def test_redis_py_lock_under_contention(clone: ServerProcess) -> None:
    """20 clients take turns on one lock: no two are ever inside together."""
    client = redis.Redis(port=clone.port)
    client.flushall()
    inside = [0]
    overlaps = [0]
    done = [0]
    guard = threading.Lock()

    def work() -> None:
        mine = redis.Redis(port=clone.port)
        for _ in range(5):
            with mine.lock("contended", timeout=10, blocking_timeout=30, sleep=0.005):
                with guard:
                    inside[0] += 1
                    if inside[0] > 1:
                        overlaps[0] += 1
                mine.incr("counter")
                with guard:
                    inside[0] -= 1
            with guard:
                done[0] += 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    assert overlaps[0] == 0
    assert done[0] == 100
    assert client.get("counter") == b"100"


# -- long scripts: -BUSY, SCRIPT KILL, SHUTDOWN NOSAVE ----------------------------------------

FOREVER = "local i = 0 while true do i = i + 1 end"
BUSY = (
    b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
)


def wait_busy(conn: RawConnection, deadline_s: float = 10.0) -> None:
    """PING until it says BUSY (the script has passed the threshold). A command for the
    script's shard sent before then would wait there until the script ends: the acceptor
    answers PING itself."""
    end = time.monotonic() + deadline_s
    while True:
        reply = conn.command("PING")
        if reply == BUSY or time.monotonic() > end:
            assert reply == BUSY
            return
        time.sleep(0.01)


@pytest.mark.parametrize("keys", [["k"], ["a", "b", "c"]], ids=["one-shard", "all-shards"])
def test_a_long_script_makes_others_busy_until_killed(clone: ServerProcess, keys: list) -> None:
    with RawConnection(clone.port) as runner, RawConnection(clone.port) as other:
        assert other.command("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        try:
            runner.send(encode_command("EVAL", FOREVER, str(len(keys)), *keys))
            wait_busy(other)
            assert other.command("GET", "a") == BUSY
            assert other.command("SHUTDOWN") == BUSY
            assert other.command("HELLO").startswith(b"*14\r\n")  # allowed while busy
            assert other.command("SCRIPT", "KILL") == b"+OK\r\n"
            killed = runner.read_reply()
            assert killed.startswith(b"-ERR Script killed by user with SCRIPT KILL... script: ")
            assert killed.endswith(b", on @user_script:1.\r\n")
            assert other.command("GET", "a") == b"$-1\r\n"
            assert (
                other.command("SCRIPT", "KILL")
                == b"-NOTBUSY No scripts in execution right now.\r\n"
            )
        finally:
            other.command("CONFIG", "SET", "busy-reply-threshold", "5000")


BUSY_FUNCTION = (
    b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
)


@pytest.mark.parametrize("keys", [["k"], ["a", "b", "c"]], ids=["one-shard", "all-shards"])
def test_a_long_function_is_stopped_by_function_kill_only(clone: ServerProcess, keys: list) -> None:
    """As Redis: -BUSY names FUNCTION KILL, FUNCTION STATS shows what runs, SCRIPT KILL is
    refused, and an EXEC refused while busy discards its transaction."""
    library = f"#!lua name=spinning\nredis.register_function('spin', function() {FOREVER} end)"
    with RawConnection(clone.port) as runner, RawConnection(clone.port) as other:
        assert other.command("FUNCTION", "LOAD", "REPLACE", library) == b"$8\r\nspinning\r\n"
        assert other.command("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        try:
            runner.send(encode_command("fcall", "SPIN", str(len(keys)), *keys, "arg"))
            end = time.monotonic() + 10
            while other.command("PING") != BUSY_FUNCTION and time.monotonic() < end:
                time.sleep(0.01)
            assert other.command("PING") == BUSY_FUNCTION
            stats = other.command("FUNCTION", "STATS")
            line = b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in [b"fcall", b"SPIN"])
            line += b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in [b"%d" % len(keys)])
            assert stats.startswith(
                b"*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n"
                b"$7\r\ncommand\r\n*%d\r\n%b" % (len(keys) + 4, line)
            )
            assert b"$11\r\nduration_ms\r\n:" in stats
            assert other.command("SCRIPT", "KILL") == BUSY_FUNCTION
            assert other.command("MULTI") == b"+OK\r\n"
            assert other.command("GET", "a") == BUSY_FUNCTION
            assert other.command("EXEC") == (
                b"-EXECABORT Transaction discarded because of: " + BUSY_FUNCTION[1:]
            )
            assert other.command("EXEC") == BUSY_FUNCTION  # no transaction left to abort
            assert other.command("FUNCTION", "KILL") == b"+OK\r\n"
            killed = runner.read_reply()
            assert killed.startswith(b"-ERR Script killed by user with SCRIPT KILL... script: spin")
            assert other.command("EXEC") == b"-ERR EXEC without MULTI\r\n"
            assert b"running_script\r\n$-1\r\n" in other.command("FUNCTION", "STATS")
            runner.send(encode_command("EVAL", FOREVER, str(len(keys)), *keys))
            wait_busy(other)
            assert other.command("FUNCTION", "STATS") == BUSY
            assert other.command("FUNCTION", "KILL") == BUSY
            assert other.command("SCRIPT", "KILL") == b"+OK\r\n"
            assert runner.read_reply().startswith(b"-ERR Script killed by user")
        finally:
            other.command("CONFIG", "SET", "busy-reply-threshold", "5000")
            other.command("FUNCTION", "DELETE", "spinning")


def test_a_script_that_wrote_cannot_be_killed(clone_factory) -> None:
    server = clone_factory.start_clone(shards=2)
    with RawConnection(server.port) as runner, RawConnection(server.port) as other:
        assert other.command("CONFIG", "SET", "lua-time-limit", "100") == b"+OK\r\n"
        runner.send(encode_command("EVAL", "redis.call('set', 'x', 1) " + FOREVER, "0"))
        wait_busy(other)
        assert other.command("GET", "x") == BUSY
        assert other.command("SCRIPT", "KILL").startswith(b"-UNKILLABLE Sorry the script already")
        other.send(encode_command("SHUTDOWN", "NOSAVE"))
        assert server.proc.wait(timeout=10) == 0


# -- persistence --------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 4])
def test_what_scripts_wrote_survives_a_restart(clone_factory, tmp_path, shards: int) -> None:
    """Scripts' writes reach the append-only log as their effects (a random value, a
    relative expiry, a script over every shard): after a restart the keys are as they were."""
    args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    server = clone_factory.start_clone(shards, args)
    client = redis.Redis(port=server.port)
    client.eval("redis.call('set', KEYS[1], tostring(math.random())) return 1", 1, "rand")
    client.eval("return redis.call('set', KEYS[1], 'v', 'EX', 1000)", 1, "ttl")
    client.eval(
        "for i = 1, 20 do redis.call('rpush', 'list' .. i % 5, i) end "
        "redis.call('hset', 'h', 'f', ARGV[1]) return redis.call('incrbyfloat', 'f', 1.5)",
        0,
        "value",
    )
    client.function_load(SET_ALL)
    client.fcall("set_all", 3, "a", "b", "c", "by-function")
    before = {key: client.dump(key) for key in client.keys("*")}
    deadline = client.pexpiretime("ttl")
    server.stop()
    server = clone_factory.start_clone(shards, args)
    client = redis.Redis(port=server.port)
    assert {key: client.dump(key) for key in client.keys("*")} == before
    assert client.pexpiretime("ttl") == deadline
