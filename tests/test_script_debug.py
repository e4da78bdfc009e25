"""SCRIPT DEBUG and the Lua debugger against redis-server 7.0, byte for byte, at 1 and 4 shards.

Each session is a list of steps, (bytes sent, replies expected), over a raw socket; what
every step got back, and whether the server closed the connection at the end, must be what
redis-server sends. The sessions are those of Redis's scripting.tcl ("SCRIPT DEBUG sync +
eval", "Test scripting debug protocol parsing", "Test scripting debug lua stack overflow"),
every debugger command, the logging of a script's commands while it steps, the errors around
a session, RESP3, YES (its writes rolled back) and SYNC (other clients wait, its writes stay),
and ``redis-cli --ldb`` / ``--ldb-sync-mode`` driven through stdin. The debugger's parser and
formatting have unit tests of their own at the end.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ServerProcess, encode_command

from shardserver.scripting.ldb import parse_command, reply_to_human, repr_bytes

Step = tuple[bytes, int]


def cmd(*args: bytes | str) -> bytes:
    return encode_command(*args)


def converse(server: ServerProcess, steps: list[Step]) -> tuple[list[list[bytes]], bool]:
    """Send each step's bytes and read its replies; then whether the server closed."""
    got = []
    with server.raw(timeout=10.0) as conn:
        for data, replies in steps:
            conn.send(data)
            got.append([conn.read_reply() for _ in range(replies)])
        closed = False
        if got and got[-1] and b"<endsession>" in b"".join(got[-1]):
            conn.sock.settimeout(5.0)
            closed = conn.sock.recv(1) == b""
    return got, closed


def same_session(clone: ServerProcess, oracle: ServerProcess, steps: list[Step]) -> list:
    for server in (oracle, clone):
        with server.client() as client:
            client.flushall()
    expected = converse(oracle, steps)
    assert converse(clone, steps) == expected
    return expected[0]


SYNC = (cmd("script", "debug", "sync"), 1)
YES = (cmd("script", "debug", "yes"), 1)
SCRIPT = b"""local t = {1,2,{a=1}}
local function f(x)
  local y = x * 2
  return y
end
local s = 'a\\nb'
local z = f(3)
redis.call('set', KEYS[1], ARGV[1])
return z"""


def test_sync_eval_first_stop_and_end(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """scripting.tcl's "SCRIPT DEBUG sync + eval": the second EVAL is the debugger's eval."""
    hello = (cmd("eval", "return 'hello'", "0"), 1)
    got = same_session(clone, redis_server, [SYNC, hello, hello, (cmd("c"), 2)])
    first = b"*2\r\n+* Stopped at 1, stop reason = step over\r\n+-> 1   return 'hello'\r\n"
    assert got[1] == [first]
    assert got[2][0].startswith(b"*1\r\n+<error> ldb_eval:1: ")
    assert got[3] == [b"*1\r\n+<endsession>\r\n", b"$5\r\nhello\r\n"]


def test_every_command(clone: ServerProcess, redis_server: ServerProcess) -> None:
    c = cmd
    commands = [
        c("p"), c("p", "KEYS"), c("p", "ARGV"), c("p", "nope"), c("n"), c("p"), c("l"),
        c("l", "8"), c("l", "8", "1"), c("l", "0", "2"), c("l", "-3", "1"), c("l", "x"),
        c("b"), c("b", "3"), c("b", "3"), c("b", "100"), c("b", "x"),
        c("b", "8", "-3", "-4", "0"), c("b"), c("b", "3"), c("b", "8"), c("b"), c("c"),
        c("t"), c("p"), c("p", "x"), c("p", "t"), c("e", "1+1"), c("e", "x"),
        c("e", "local", "a", "=", "1"), c("e", "error('boom')"),
        c("e", "redis.call('get','kk')"), c("e", "+"), c("e", "{1,'a',nil,true}"),
        c("e", "KEYS"), c("e"), c("r", "get", "kk"), c("r", "nosuch"), c("r", "incr", "kk"),
        c("r", "set", "kk", "vv"), c("r", "hset", "h", "a", "1"), c("r", "hgetall", "h"),
        c("r", "del", "h"), c("r"), c("m"), c("m", "10"), c("r", "set", "kk", "x" * 100),
        c("r", "get", "kk"), c("m", "0"), c("m", "abc"), c("m", "100"), c("m", "x", "y"),
        c("h"), c("HELP", "x"), c("w"), c("nosuch"), c("c"), c("S"),
    ]  # fmt: skip
    steps = [SYNC, (cmd("eval", SCRIPT, "1", "kk", "vv"), 1)]
    steps += [(command, 1) for command in commands]
    steps.append((cmd("s"), 2))
    got = same_session(clone, redis_server, steps)
    assert got[-1][1] == b":6\r\n"


def test_trimmed_reply_hints_once(clone: ServerProcess, redis_server: ServerProcess) -> None:
    steps = [SYNC, (cmd("eval", "return 1", "0"), 1)]
    steps += [(cmd("r", "set", "big", "y" * 400), 1), (cmd("r", "get", "big"), 1)]
    steps += [(cmd("r", "get", "big"), 1), (cmd("a"), 2)]
    got = same_session(clone, redis_server, steps)
    assert b"<hint>" in got[3][0] and b"<hint>" not in got[4][0]


def test_commands_logged_while_stepping(clone: ServerProcess, redis_server: ServerProcess) -> None:
    body = (
        "redis.call('set','s','abc')\nlocal a = redis.pcall('incr','s')\n"
        "local b = redis.pcall('get')\nredis.pcall('nosuch')\nredis.call('incr','s')"
    )
    steps = [SYNC, (cmd("eval", body, "0"), 1)] + [(cmd("s"), 1)] * 4 + [(cmd("s"), 2)]
    got = same_session(clone, redis_server, steps)
    assert got[-1][1].startswith(b"-ERR value is not an integer")


def test_continue_logs_nothing_but_debug(clone: ServerProcess, redis_server: ServerProcess) -> None:
    body = "redis.debug('a', 1, {2})\nredis.call('set','x','1')\nredis.breakpoint()\nlocal y = 1\nredis.debug()\nreturn y"  # noqa: E501
    steps = [SYNC, (cmd("eval", body, "0"), 1), (cmd("c"), 1), (cmd("c"), 2)]
    got = same_session(clone, redis_server, steps)
    assert b"redis.breakpoint() called" in got[2][0]


def test_script_end_lines(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """A script without a return ends where Redis's does (it compiles a chunk)."""
    for body in ("redis.call('set','s','abc')", "local x = 1\nlocal y = 2", "local x = 1\n\n\n"):
        steps = [SYNC, (cmd("eval", body, "0"), 1)]
        steps += [(cmd("s"), 1)] * body.count("local y") + [(cmd("s"), 2)]
        same_session(clone, redis_server, steps)


def test_breakpoints_and_values(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """Breakpoint bookkeeping as Redis's (its removal moves bytes where it means ints, which
    leaves a duplicate behind), the 64 limit, strict numbers; values of every Lua kind."""
    body = "\n".join(f"local x{i} = {i}" for i in range(1, 70)) + "\nreturn 1"
    c = cmd
    commands = [
        c("b", "2", "3", "4", "5"), c("b", "-2"), c("b"), c("b", "0"),
        c("b", *[str(i) for i in range(1, 67)]), c("b", "-10"), c("b", "68"), c("b"),
        c("b", "+3", "03", "3x", " 3"), c("c"), c("p"),
        c("e", "{a={b={c={d={e={f={g={h={i={j={k={}}}}}}}}}}}"), c("e", "{1,2,3,x=1}"),
        c("e", "1/0"), c("e", "0.1"), c("e", "'\\0\\255\\t'"), c("e", "2^53"),
        c("e", "{[1.5]=1}"), c("e", "redis.error_reply('x')"), c("e", "error(5)"),
    ]  # fmt: skip
    steps = [SYNC, (cmd("eval", body, "0"), 1)] + [(each, 1) for each in commands]
    same_session(clone, redis_server, [*steps, (cmd("a"), 2)])


def test_resp3_replies_and_trace(clone: ServerProcess, redis_server: ServerProcess) -> None:
    body = (
        "redis.setresp(3)\nlocal a = redis.call('hgetall','h')\n"
        "local b = redis.call('smembers','s')\nlocal c = redis.call('get','nope')\nreturn 1"
    )
    steps = [SYNC, (cmd("eval", body, "0"), 1), (cmd("r", "hset", "h", "a", "1"), 1)]
    steps += [(cmd("r", "sadd", "s", "m"), 1)] + [(cmd("s"), 1)] * 4 + [(cmd("s"), 2)]
    same_session(clone, redis_server, steps)
    body = (
        "local function g() return redis.call('ping') end\n"
        "local function f() return g() end\nreturn f()"
    )
    steps = [SYNC, (cmd("eval", body, "0"), 1)]
    steps += [(cmd(word), 1) for word in ("s", "s", "s", "t", "s", "t")] + [(cmd("s"), 2)]
    same_session(clone, redis_server, steps)


def test_eval_of_failing_commands(clone: ServerProcess) -> None:
    """``eval`` of code whose error is no string: Redis 7.0 crashes there (NULL in its log
    line); here the error's text is shown and the session goes on."""
    steps = [SYNC, (cmd("eval", "local c = redis.call\nreturn 1", "0"), 1)]
    steps += [(cmd("e", "redis.call('nosuch')"), 1), (cmd("e", "error({err='boom'})"), 1)]
    steps += [(cmd("s"), 1), (cmd("p"), 1), (cmd("c"), 2)]
    got, closed = converse(clone, steps)
    assert got[2] == [b"*1\r\n+<error> ERR Unknown Redis command called from script\r\n"]
    assert got[3] == [b"*1\r\n+<error> boom\r\n"]
    assert got[5][0].startswith(b'*1\r\n+<value> c = "function@0x')
    assert closed and got[-1][1] == b":1\r\n"


def test_protocol_parsing(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """scripting.tcl's "Test scripting debug protocol parsing", and input split anyhow."""
    start = [SYNC, (cmd("eval", "return 'hello'", "0"), 1)]
    unknown = [(cmd(word), 1) for word in (b"hello\0world", b"hello\0", b"\0hello", b"\0hello\0")]
    same_session(clone, redis_server, start + unknown + [(cmd("c"), 2)])
    split = [(b"*1\r\n", 0), (b"$1\r\n", 0), (b"c", 0), (b"\r\n", 2)]
    same_session(clone, redis_server, start + split)
    same_session(clone, redis_server, start + [(b"*2\r\n$1\r\nc\r\n$1\r\nd\r\n", 2)])
    refused = (
        b"hello\r\n",
        b"*0\r\n",
        b"*1\r\n$0\r\n\r\n",
        b"xx*1\r\n$1\r\ncyy",
        b"*1\r\n$1\r\ncXY",
    )
    for bad in refused:
        got = same_session(clone, redis_server, [*start, (bad, 2)])
        assert got[-1][1].startswith(b"-ERR protocol error script: ")
    # past 1 MB of input that is no command yet, the script stops
    got = same_session(clone, redis_server, [*start, (b"*1" + b" " * (1 << 20) + b"  ", 2)])
    assert got[-1][1].startswith(b"-ERR max client buffer reached script: ")


def test_lua_stack_overflow(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """scripting.tcl's "Test scripting debug lua stack overflow": the server stays up."""
    many = b"*101\r\n$5\r\nredis\r\n" + b"$4\r\ntest\r\n" * 100
    steps = [SYNC, (cmd("eval", "return 'hello'", "0"), 1), (many, 1), (cmd("c"), 2)]
    got = same_session(clone, redis_server, steps)
    assert b"Unknown Redis command called from script" in got[2][0]
    with clone.client() as client:
        assert client.ping()


def test_errors_around_a_session(clone: ServerProcess, redis_server: ServerProcess) -> None:
    sha = "1b936e3fe509bcbc9cd0664897bbe8fd0cac101b"
    steps = [
        (cmd("script", "debug", "maybe"), 1),
        (cmd("script", "debug"), 1),
        (cmd("ping") + cmd("script", "debug", "sync"), 2),
        SYNC,
        (cmd("evalsha", sha, "0"), 1),
        (cmd("evalsha", "abc", "0"), 1),
        (cmd("fcall", "nosuch", "0"), 1),
        (cmd("script", "debug", "no"), 1),
        (cmd("eval", "return 'plain'", "0"), 1),
        YES,
        (cmd("eval", "return 1", "x"), 2),
    ]
    got = same_session(clone, redis_server, steps)
    assert got[4] == [b"-ERR Please use EVAL instead of EVALSHA for debugging\r\n"]
    compile_error = [SYNC, (cmd("eval", "return +", "0"), 2)]
    same_session(clone, redis_server, compile_error)
    behind = cmd("eval", "return 'a'", "0") + cmd("ping")
    got = same_session(clone, redis_server, [SYNC, (behind, 1), (cmd("c"), 2)])
    assert got[2][1] == b"$1\r\na\r\n"  # and no PONG: the connection closed


def test_resp3_and_eval_ro(clone: ServerProcess, redis_server: ServerProcess) -> None:
    steps = [(cmd("hello", "3"), 1), SYNC, (cmd("eval_ro", "return {1,2}", "0"), 1)]
    steps += [(cmd("r", "hgetall", "nope"), 1), (cmd("c"), 2)]
    for server in (clone, redis_server):  # HELLO's reply has the client's id: compare the rest
        with server.client() as client:
            client.flushall()
    expected, closed = converse(redis_server, steps)
    got, clone_closed = converse(clone, steps)
    assert got[1:] == expected[1:] and clone_closed == closed
    assert got[-1][1] == b"*2\r\n:1\r\n:2\r\n"


def test_eval_inside_exec(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """An EVAL that EXEC runs is a session too: its reply is the EXEC's item."""
    steps = [SYNC, (cmd("multi"), 1), (cmd("set", "a", "1"), 1)]
    steps += [(cmd("eval", "return redis.call('get','a')", "0"), 1), (cmd("exec"), 1)]
    got = same_session(clone, redis_server, [*steps, (cmd("s"), 2)])
    assert got[-1][1] == b"*2\r\n+OK\r\n$1\r\n1\r\n"
    sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # return 1
    steps = [YES, (cmd("script", "load", "return 1"), 1), (cmd("multi"), 1)]
    steps += [(cmd("evalsha", sha, "0"), 1), (cmd("eval", "redis.call('set','a','2')", "0"), 1)]
    got = same_session(clone, redis_server, [*steps, (cmd("exec"), 1), (cmd("c"), 2)])
    assert b"Please use EVAL instead of EVALSHA" in got[-1][1]
    with clone.client() as client:
        assert client.get("a") is None  # the YES session's write is undone


def test_debug_functions_do_nothing_outside(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    body = "return {tostring(redis.breakpoint()), type(redis.debug), redis.debug('x')}"
    steps = [(cmd("eval", body, "0"), 1)]
    got = same_session(clone, redis_server, steps)
    assert got == [[b"*2\r\n$5\r\nfalse\r\n$8\r\nfunction\r\n"]]


def test_yes_rolls_back_sync_keeps(clone: ServerProcess, redis_server: ServerProcess) -> None:
    body = (
        "redis.call('set', KEYS[1], 'changed')\nredis.call('del', KEYS[2])\n"
        "redis.call('hset', KEYS[3], 'f', 'v')\nredis.call('set', KEYS[4], 'new')\n"
        "redis.call('pexpire', KEYS[1], 100000)\nreturn redis.call('get', KEYS[1])"
    )
    keys = ["user:1", "user:2", "user:3", "user:4"]  # on several shards at 4
    eval_line = cmd("eval", body, "4", *keys)
    for server in (clone, redis_server):
        with server.client() as client:
            client.flushall()
            client.set("user:1", "one", ex=1000)
            client.rpush("user:2", "a", "b")
            client.hset("user:3", "g", "w")
            before = [client.dump(key) for key in keys] + [client.ttl("user:1")]
        got, closed = converse(server, [YES, (eval_line, 1), (cmd("c"), 2)])
        assert closed and got[-1][1] == b"$7\r\nchanged\r\n"
        with server.client() as client:
            assert [client.dump(key) for key in keys] + [client.ttl("user:1")] == before
        converse(server, [YES, (eval_line, 1), (cmd("s"), 1), (cmd("a"), 2)])
        with server.client() as client:  # aborted after a write: undone too
            assert [client.dump(key) for key in keys] + [client.ttl("user:1")] == before
        converse(server, [SYNC, (eval_line, 1), (cmd("c"), 2)])
        with server.client() as client:
            assert client.get("user:1") == b"changed" and client.exists("user:2") == 0
            assert client.hgetall("user:3") == {b"g": b"w", b"f": b"v"}
            assert client.pttl("user:1") > 90000


def test_yes_refuses_writes_it_cannot_undo(clone: ServerProcess) -> None:
    with clone.client() as client:
        client.set("kept", "1")
    body = "local ok, e = pcall(redis.call, 'flushall')\nreturn e"
    got, _closed = converse(clone, [YES, (cmd("eval", body, "0"), 1), (cmd("c"), 2)])
    assert got[-1][1].startswith(b"$") and b"cannot roll back FLUSHALL" in got[-1][1]
    with clone.client() as client:
        assert client.get("kept") == b"1"


def test_sync_session_holds_other_clients(clone: ServerProcess) -> None:
    """Other clients' commands for a shard wait for a SYNC session, as Redis blocks."""
    with clone.client() as client:
        client.set("held", "before")
    with clone.raw() as session, clone.raw() as other:
        session.send(cmd("script", "debug", "sync"))
        assert session.read_reply() == b"+OK\r\n"
        session.send(cmd("eval", "redis.call('set','held','during')\nreturn 1", "0"))
        assert b"Stopped at 1" in session.read_reply()
        other.send(cmd("get", "held"))
        with pytest.raises(TimeoutError):
            other.read_reply(timeout=0.3)
        session.send(cmd("c"))
        assert session.read_reply() == b"*1\r\n+<endsession>\r\n"
        assert session.read_reply() == b":1\r\n"
        assert other.read_reply() == b"$6\r\nduring\r\n"


def test_client_gone_mid_session(clone: ServerProcess) -> None:
    """A client that leaves a stopped session lets the script run to its end."""
    with clone.raw() as session:
        session.send(cmd("script", "debug", "sync"))
        session.read_reply()
        session.send(cmd("eval", "redis.call('set','left','1')\nreturn 1", "0"))
        assert b"Stopped at 1" in session.read_reply()
    with clone.client() as client:
        assert client.blpop(["never"], timeout=0.01) is None  # the hold is released
        assert client.get("left") == b"1"


LDB_SCRIPT = (
    'redis.debug("a")\nlocal x = redis.call("set",KEYS[1],ARGV[1])\nredis.breakpoint()\n'
    'local y = 5\nreturn {x, y, "hello"}\n'
)


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
@pytest.mark.parametrize(
    ("mode", "typed"),
    [("--ldb-sync-mode", "step\nstep\nprint\ncontinue\n"), ("--ldb", "step\nwhole\nb 4\nc\nc\n")],
)
def test_redis_cli_ldb(
    clone: ServerProcess, redis_server: ServerProcess, tmp_path, mode: str, typed: str
) -> None:
    path = tmp_path / "x.lua"
    path.write_text(LDB_SCRIPT)
    outputs = []
    for server in (redis_server, clone):
        with server.client() as client:
            client.flushall()
        argv = ["redis-cli", "-p", str(server.port), mode, "--eval", str(path), "k1", ",", "v1"]
        done = subprocess.run(argv, input=typed.encode(), capture_output=True, timeout=30)
        with server.client() as client:
            outputs.append((done.returncode, done.stdout, client.get("k1")))
    assert outputs[1] == outputs[0]
    assert b"Lua debugging session ended" in outputs[0][1] or mode == "--ldb-sync-mode"


def test_timeout_stop(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """A script running past busy-reply-threshold since the last stop stops there."""
    steps = [SYNC, (cmd("eval", "local i = 0 while true do i = i + 1 end", "0"), 1)]
    steps += [(cmd("c"), 1), (cmd("a"), 2)]
    olds = []
    for server in (clone, redis_server):
        with server.client() as client:
            olds.append(client.config_get("busy-reply-threshold")["busy-reply-threshold"])
            client.config_set("busy-reply-threshold", 100)
    try:
        got = same_session(clone, redis_server, steps)
    finally:
        for server, old in zip((clone, redis_server), olds, strict=True):
            with server.client() as client:
                client.config_set("busy-reply-threshold", old)
    assert b"timeout reached, infinite loop?" in got[2][0]


# -- the parser and the formatting, alone ------------------------------------------------


def test_parse_command_as_redis() -> None:
    assert parse_command(b"") is None
    assert parse_command(b"*1\r\n$1\r\nc\r\n") == [b"c"]
    assert parse_command(b"*1\r\n$1\r\nc") is None
    assert parse_command(b"*2\r\n$1\r\nc\r\n") is None
    assert parse_command(b"  *1\r\n$5\r\nhe\0lo\r\n") == [b"he\0lo"]
    assert parse_command(b"\0*1\r\n$1\r\nc\r\n") == b"protocol error"
    assert parse_command(b"*1\0\r\n$1\r\nc\r\n") is None  # C stops at the NUL: waits
    assert parse_command(b"*1025\r\n") == b"protocol error"
    assert parse_command(b"*1\r\n$1025\r\n") == b"protocol error"
    assert parse_command(b"*1\r\n+1\r\n") == b"protocol error"


def test_reply_to_human() -> None:
    assert reply_to_human(b"*3\r\n:1\r\n$-1\r\n*-1\r\n")[0] == b"[1,NULL,NULL]"
    assert reply_to_human(b"%1\r\n+a\r\n,1.5\r\n")[0] == b'{"+a" => (double) 1.5}'
    assert reply_to_human(b"~2\r\n#t\r\n_\r\n")[0] == b"~(#true,(null))"
    assert repr_bytes(b'a"\\\n\x01') == b'"a\\"\\\\\\n\\x01"'
