"""DEBUG PROTOCOL, DEBUG SET-DISABLE-DENY-SCRIPTS and scripts' RESP2/RESP3 conversions against a
redis-server that allows DEBUG, and our server at 1 and 4 shards (Redis 7.0's scripting.tcl,
its ``needs:debug`` part).

Every DEBUG PROTOCOL type, asked by a RESP2 and a RESP3 client, directly and from a script
after ``redis.setresp(2)`` or ``(3)``: returned as it is (Lua's conversion there and back) and
looked at in Lua (its type, ``.double``, ``.big_number``, ``.map``, ``.set``,
``.verbatim_string``). A script that calls DEBUG always runs over every shard held, so the
time tests (expiry decided at the script's start) test that path at 1 shard as well.
"""

from __future__ import annotations

import time

import pytest
from conftest import (
    DEBUG_ENABLED,
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    parse_reply,
)

from shardserver.keyspace import now_ms
from shardserver.shard import Shard

TYPES = [
    "string",
    "integer",
    "double",
    "bignum",
    "null",
    "array",
    "set",
    "map",
    "attrib",
    "push",
    "verbatim",
    "true",
    "false",
]
#: What a script sees of a reply: its Lua type and, for a table, its fields' names and types.
LOOK = (
    "if type(r) == 'table' then local ks = {} for k, v in pairs(r) do "
    "ks[#ks + 1] = tostring(k) .. '=' .. type(v) end table.sort(ks) "
    "return {type(r), table.concat(ks, ',')} end return {type(r), tostring(r)}"
)


def _script_sequence() -> list[list[str]]:
    commands = [["DEBUG", "PROTOCOL", name] for name in TYPES]
    commands += [["DEBUG", "PROTOCOL", "nope"], ["DEBUG", "PROTOCOL"]]
    commands += [["DEBUG", "SET-DISABLE-DENY-SCRIPTS"]]
    commands += [["EVAL", "return redis.pcall('debug', 'protocol', 'string')", "0"]]
    commands += [["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1"]]
    for resp in (2, 3):
        for name in TYPES:
            call = f"redis.setresp({resp}) local r = redis.pcall('debug', 'protocol', '{name}') "
            commands.append(["EVAL", call + "return r", "0"])
            if name != "push":  # Redis leaves a stray value on the Lua stack for r (a bug)
                commands.append(["EVAL", call + LOOK, "0"])
    fields = [
        ("double", "return tostring(r.double)"),
        ("bignum", "return r.big_number"),
        ("verbatim", "return {r.verbatim_string.format, r.verbatim_string.string}"),
        ("map", "return {tostring(r.map[0]), tostring(r.map[1]), tostring(r.map[2])}"),
        ("set", "return {tostring(r.set[0]), tostring(r.set[1]), tostring(r.set[2])}"),
        ("null", "return r == nil"),
    ]
    for name, body in fields:
        call = f"redis.setresp(3) local r = redis.call('debug', 'protocol', '{name}') "
        commands.append(["EVAL", call + body, "0"])
    returned = [
        "return {big_number = '123\\r\\n123'}",
        "return {double = 3.5}",
        "return {map = {a = 1}}",
        "return {set = {a = true}}",
        "return {verbatim_string = {format = 'txt', string = 'hi'}}",
        "return false",
        "redis.setresp(3) return true",
        "redis.setresp(3) return false",
        "redis.setresp(3) return nil",
        "redis.setresp(2) local r = redis.call('debug', 'protocol', 'null') return r == false",
        "return redis.pcall('debug', 'protocol')",
        "return redis.pcall('debug', 'sleep', 0)",
    ]
    commands += [["EVAL", body, "0"] for body in returned]
    commands += [["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0"]]
    commands += [["EVAL", "return redis.pcall('debug', 'protocol', 'true')", "0"]]
    return commands


SEQUENCE = _script_sequence()

#: Redis's "Script block the time during execution" and "Script delete the expired key".
TIME_SEQUENCE = [
    ["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1"],
    [
        "EVAL",
        "redis.call('SET', KEYS[1], 'value', 'PX', 1) redis.call('DEBUG', 'SLEEP', 0.01) "
        "return redis.call('EXISTS', KEYS[1])",
        "1",
        "key",
    ],
    ["EXISTS", "key"],
    [
        "EVAL",
        "redis.call('SET', 'k{t}', 'v', 'PX', 1) redis.call('DEBUG', 'SLEEP', 0.01) "
        "return {redis.call('EXISTS', 'k{t}'), redis.call('GET', 'k{t}'), "
        "redis.call('EXISTS', 'a', 'b', 'c')}",
        "0",
    ],
    ["EXISTS", "k{t}"],
    ["DEBUG", "SET-ACTIVE-EXPIRE", "0"],
    ["SET", "gone", "v", "PX", "1"],
    ["DEBUG", "SLEEP", "0.01"],
    ["EVAL", "return redis.call('EXISTS', KEYS[1])", "1", "gone"],
    ["EXISTS", "gone"],
    ["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
    ["DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0"],
]


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def server(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(request.param, DEBUG_ENABLED)


def _replies(server: ServerProcess, commands: list[list[str]], protocol: int) -> list[bytes]:
    with RawConnection(server.port) as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        conn.command("HELLO", str(protocol))
        out = []
        for command in commands:
            conn.send(encode_command(*command))
            reply = conn.read_reply()
            if command[:3] == ["DEBUG", "PROTOCOL", "push"] and reply[:1] == b">":
                reply += conn.read_reply()  # the reply that follows the push
            out.append(reply)
        return out


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("sequence", ["types", "time"])
def test_replies_are_redis_s(
    debug_oracle: ServerProcess, server: ServerProcess, protocol: int, sequence: str
) -> None:
    commands = SEQUENCE if sequence == "types" else TIME_SEQUENCE
    expected = _replies(debug_oracle, commands, protocol)
    got = _replies(server, commands, protocol)
    for command, want, have in zip(commands, expected, got, strict=True):
        assert (command, have) == (command, want)


def test_time_moves_in_a_script_as_in_redis_7_0(server: ServerProcess) -> None:
    """TIME reads the clock again inside a script (Redis 7.0.15; 7.2 answers the script's
    start), while expiry decisions stand still (the differential tests above)."""
    with RawConnection(server.port) as conn:
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1") == b"+OK\r\n"
        body = (
            "local a = redis.call('TIME') redis.call('DEBUG', 'SLEEP', 0.01) "
            "local b = redis.call('TIME') return (b[1] - a[1]) * 1000000 + b[2] - a[2] >= 10000"
        )
        assert conn.command("EVAL", body, "0") == b":1\r\n"
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0") == b"+OK\r\n"


def test_deadlines_and_ttls_read_the_real_clock_in_a_script(server: ServerProcess) -> None:
    """Redis 7.0.15 stops only expiry decisions during a script: SET PX, PTTL and RESTORE's
    TTL read the clock again after a DEBUG SLEEP (7.2 would answer the start's time)."""
    with RawConnection(server.port) as conn:
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1") == b"+OK\r\n"
        body = (
            "redis.call('SET', KEYS[1], 'v', 'PX', 1000) redis.call('DEBUG', 'SLEEP', 0.02) "
            "redis.call('SET', KEYS[2], 'v', 'PX', 1000) "
            "local dump = redis.call('DUMP', KEYS[1]) "
            "redis.call('RESTORE', KEYS[3], 1000, dump, 'REPLACE') "
            "return {redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2]), "
            "redis.call('PEXPIRETIME', KEYS[2]) - redis.call('PEXPIRETIME', KEYS[1]), "
            "redis.call('PEXPIRETIME', KEYS[3]) - redis.call('PEXPIRETIME', KEYS[1])}"
        )
        for _run in range(2):  # the first run is held, the second may take the fast path
            reply = parse_reply(conn.command("EVAL", body, "3", "a{t}", "b{t}", "c{t}"))
            first, second, set_apart, restore_apart = reply
            assert first <= 985 and second > first
            assert set_apart >= 15 and restore_apart >= 15
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0") == b"+OK\r\n"
        # no DEBUG or TIME (which the acceptor answers, so the script is held): after its
        # first run, the script takes the fast path, one part on one shard; its loop takes
        # milliseconds (about 30 here), so the second deadline is later
        body = (
            "redis.call('SET', KEYS[1], 'v', 'PX', 1000) "
            "local x = 0 for i = 1, 3000000 do x = x + i end "
            "redis.call('SET', KEYS[2], 'v', 'PX', 1000) "
            "return redis.call('PEXPIRETIME', KEYS[2]) - redis.call('PEXPIRETIME', KEYS[1])"
        )
        for _run in range(3):
            assert int(conn.command("EVAL", body, "2", "a{t}", "b{t}")[1:-2]) > 0


@pytest.mark.parametrize("command", ["client id", "subscribe x", "shutdown", "monitor", "multi"])
def test_client_state_commands_stay_refused(server: ServerProcess, command: str) -> None:
    """With the deny lifted, a script still cannot reach a client's state: a clear error,
    and the server goes on."""
    words = ", ".join(f"'{word}'" for word in command.split())
    with RawConnection(server.port) as conn:
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1") == b"+OK\r\n"
        reply = conn.command("EVAL", f"return redis.pcall({words})", "0")
        assert reply.startswith(b"-ERR This Redis command is not allowed from script (redis-clone")
        assert conn.command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0") == b"+OK\r\n"
        assert conn.command("PING") == b"+PONG\r\n"


def test_a_stopped_clock_decides_expiry_and_stops_the_sweep() -> None:
    """``@clock ms``: what a held script sends first; every batch after it sees ``ms``, and
    the sweep waits, until ``@clock``."""
    shard = Shard(0)
    start = now_ms()
    assert shard.execute_batch([[0, [b"@clock", b"%d" % start]]]) == [None]
    assert shard.execute_batch([[0, [b"set", b"k", b"v", b"PX", b"1"]]]) == [b"+OK\r\n"]
    time.sleep(0.01)
    assert shard.execute_batch([[0, [b"exists", b"k"]]]) == [b":1\r\n"]
    assert shard.expire_cycle() == 0
    shard.execute_batch([[0, [b"@clock"]]])
    assert shard.execute_batch([[0, [b"exists", b"k"]]]) == [b":0\r\n"]
