"""Streams (XADD ... XINFO) against a real redis-server, byte for byte, at 1 and 4 shards.

- Scripted sequences of every stream command (errors, options, edge IDs, consumer groups)
  run on both servers in RESP2 and RESP3; every reply must be identical. Replies that carry
  a time (idle times, delivery and seen times) are left to the structural checks.
- Blocking XREAD/XREADGROUP scenarios over several connections (the harness of
  ``test_cmd_blocking``): woken by XADD, ``$``, keys on several shards (``a b c d`` lie on
  four shards), timeouts, CLIENT UNBLOCK, MULTI, a destroyed group, a deleted key.
- The generic commands on a stream (TYPE, OBJECT ENCODING, SCAN TYPE, COPY, RENAME across
  shards, MOVE, DUMP/RESTORE both ways with redis-server, MEMORY USAGE, WATCH, EVAL).
- Persistence: a dump.rdb with streams moves both ways between redis-server and us, and the
  append-only log brings consumer groups back after a restart.
- Two acceptors: a reader blocked through one is woken by an XADD through the other.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import redis
from conftest import RawConnection, ServerPool, ServerProcess, wait_until
from test_cmd_blocking import Step, _b, run_scenario

#: Commands whose replies hold no clock: compared byte for byte.
SCRIPT: list[list[str]] = [
    ["XADD", "s", "1-1", "a", "1"],
    ["XADD", "s", "1-2", "b", "2", "c", "3"],
    ["XADD", "s", "1-*", "a", "5"],
    ["XADD", "s", "2", "a", "6"],
    ["XADD", "s", "0-0", "a", "1"],
    ["XADD", "s", "1-1", "a", "1"],
    ["XADD", "s", "a"],
    ["XADD", "s", "3-1", "a"],
    ["XADD", "s", "bad", "a", "b"],
    ["XADD", "s", "MAXLEN", "1", "MINID", "1", "9-2", "a", "b"],
    ["XADD", "s", "LIMIT", "10", "9-2", "a", "b"],
    ["XADD", "s", "MAXLEN", "5", "LIMIT", "10", "9-2", "a", "b"],
    ["XADD", "s", "MAXLEN", "-1", "9-2", "a", "b"],
    ["XADD", "s", "MAXLEN", "~", "5", "LIMIT", "-1", "9-2", "a", "b"],
    ["XADD", "nokey", "NOMKSTREAM", "1-1", "a", "b"],
    ["XADD", "m", "18446744073709551615-18446744073709551615", "a", "b"],
    ["XADD", "m", "*", "a", "b"],
    ["XADD", "m2", "18446744073709551615-18446744073709551614", "a", "b"],
    ["XADD", "m2", "18446744073709551615-*", "a", "b"],
    ["XADD", "m2", "18446744073709551615-*", "a", "b"],
    ["XADD", "m3", "18446744073709551616-1", "a", "b"],
    # string2ull falls back to strtoull: spaces, a sign, leading zeros (a minus wraps)
    ["XADD", "w", "+5-1", "a", "b"],
    ["XADD", "w", " 6-01", "a", "b"],
    ["XADD", "w", "8-+1", "a", "b"],
    ["XADD", "w", "9- -3", "a", "b"],
    ["XADD", "w", "-5", "a", "b"],
    ["XADD", "w", "10-", "a", "b"],
    ["XRANGE", "w", "(+5", "+"],
    ["XLEN", "s"],
    ["XLEN", "nokey"],
    ["XRANGE", "s", "-", "+"],
    ["XRANGE", "s", "-", "+", "COUNT", "2"],
    ["XRANGE", "s", "-", "+", "COUNT", "0"],
    ["XRANGE", "s", "-", "+", "COUNT", "-3"],
    ["XRANGE", "s", "-", "+", "COUNT"],
    ["XRANGE", "s", "(1-1", "+"],
    ["XRANGE", "s", "1", "1"],
    ["XRANGE", "s", "(", "+"],
    ["XRANGE", "s", "(-", "+"],
    ["XRANGE", "m", "(18446744073709551615-18446744073709551615", "+"],
    ["XRANGE", "m", "-", "(0-0"],
    ["XREVRANGE", "s", "+", "-", "COUNT", "2"],
    ["XREVRANGE", "s", "(2-0", "(1-1"],
    ["XRANGE", "nokey", "-", "+"],
    ["XDEL", "s", "1-2", "9-9"],
    ["XDEL", "s", "bad"],
    ["XDEL", "nokey", "1-1"],
    ["XINFO", "STREAM", "s"],
    ["XINFO", "STREAM", "nokey"],
    ["XINFO", "STREAM", "s", "FOO"],
    ["XINFO", "STREAM", "s", "FULL", "x"],
    ["XINFO", "HELP"],
    ["XGROUP", "HELP"],
    ["XGROUP", "CREATE", "s", "g", "0"],
    ["XGROUP", "CREATE", "s", "g", "0"],
    ["XGROUP", "CREATE", "nokey", "g", "0"],
    ["XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM"],
    ["XGROUP", "CREATE", "s", "g3", "1-1", "ENTRIESREAD", "1"],
    ["XGROUP", "CREATE", "s", "g4", "0", "ENTRIESREAD", "-2"],
    ["XGROUP", "CREATE", "s", "g4", "0", "FOO"],
    ["XGROUP", "CREATE", "s", "g4", "bad"],
    ["XGROUP", "FOO", "s", "g"],
    ["XGROUP", "SETID", "s", "nog", "0"],
    ["XGROUP", "SETID", "s", "g3", "0", "FOO", "1"],
    ["XINFO", "GROUPS", "s"],
    ["XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", "s", "0"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "$"],
    ["XREADGROUP", "GROUP", "nog", "bob", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "nokey", ">"],
    ["XREADGROUP", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s"],
    ["XREAD", "GROUP", "g", "c", "STREAMS", "s", "0"],
    ["XREAD", "NOACK", "STREAMS", "s", "0"],
    ["XREAD", "STREAMS", "s", ">"],
    ["XREAD", "BLOCK", "x", "STREAMS", "s", "0"],
    ["XREAD", "BLOCK", "-1", "STREAMS", "s", "0"],
    ["XINFO", "GROUPS", "s"],
    ["XPENDING", "s", "g"],
    ["XPENDING", "s", "g", "-", "+", "5", "nobody"],
    ["XPENDING", "s", "nog"],
    ["XPENDING", "s", "g", "-", "+", "x"],
    ["XPENDING", "s", "g", "IDLE", "0", "-", "+"],
    ["XPENDING", "s", "g", "-"],
    ["XACK", "s", "g", "1-1", "9-9"],
    ["XACK", "s", "nog", "bad"],
    ["XACK", "s", "g", "bad"],
    ["XPENDING", "s", "g"],
    ["XCLAIM", "s", "g", "carol", "0", "1-3", "JUSTID"],
    ["XCLAIM", "s", "g", "carol", "0", "1-3", "IDLE", "abc"],
    ["XCLAIM", "s", "g", "carol", "0", "1-3", "BOGUS"],
    ["XCLAIM", "s", "g", "carol", "x", "1-3"],
    ["XCLAIM", "s", "nog", "carol", "0", "1-3"],
    ["XCLAIM", "s", "g", "dan", "0", "1-1", "FORCE", "JUSTID", "RETRYCOUNT", "5"],
    ["XAUTOCLAIM", "s", "g", "dave", "0", "0", "COUNT", "10", "JUSTID"],
    ["XAUTOCLAIM", "s", "g", "dave", "0", "0", "COUNT", "0"],
    ["XAUTOCLAIM", "s", "g", "dave", "x", "0"],
    ["XAUTOCLAIM", "s", "nog", "dave", "0", "0"],
    ["XPENDING", "s", "g"],
    ["XINFO", "GROUPS", "s"],
    ["XDEL", "s", "1-3"],
    ["XAUTOCLAIM", "s", "g", "erin", "0", "0", "COUNT", "1"],
    ["XINFO", "GROUPS", "s"],
    ["XGROUP", "CREATECONSUMER", "s", "g", "frank"],
    ["XGROUP", "CREATECONSUMER", "s", "g", "frank"],
    ["XGROUP", "DELCONSUMER", "s", "g", "dave"],
    ["XGROUP", "DELCONSUMER", "s", "g", "nobody"],
    ["XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "0"],
    ["XINFO", "GROUPS", "s"],
    ["XGROUP", "DESTROY", "s", "g3"],
    ["XGROUP", "DESTROY", "s", "g3"],
    ["XTRIM", "s"],
    ["XTRIM", "s", "MAXLEN"],
    ["XTRIM", "s", "MAXLEN", "1", "junk"],
    ["XTRIM", "nokey", "MAXLEN", "1"],
    ["XTRIM", "s", "MAXLEN", "1"],
    ["XADD", "s", "MINID", "~", "0", "LIMIT", "0", "9-3", "a", "b"],
    ["XTRIM", "s", "MINID", "9-3"],
    ["XINFO", "STREAM", "s"],
    ["XSETID", "s", "1-1"],
    ["XSETID", "s", "99-0", "ENTRIESADDED", "1"],
    ["XSETID", "s", "99-0", "ENTRIESADDED", "100", "MAXDELETEDID", "100-0"],
    ["XSETID", "s", "99-0", "ENTRIESADDED", "100"],
    ["XSETID", "nokey", "1-1"],
    ["XINFO", "STREAM", "s"],
    ["XREAD", "STREAMS", "s", "mk", "nokey", "0", "0", "0"],
    ["XREAD", "COUNT", "1", "STREAMS", "s", "m", "m2", "0", "0", "0"],
    ["XREAD", "STREAMS", "s", "m", "$", "$"],
    ["SET", "str", "x"],
    ["XADD", "str", "1-1", "a", "b"],
    ["XRANGE", "str", "-", "+"],
    ["XREAD", "STREAMS", "s", "str", "0", "0"],
    ["XGROUP", "CREATE", "str", "g", "0"],
    ["XINFO", "STREAM", "str"],
    ["TYPE", "s"],
    ["OBJECT", "ENCODING", "s"],
    ["EVAL", "return redis.call('XREAD', 'BLOCK', '0', 'STREAMS', KEYS[1], '$')", "1", "s"],
    [
        "EVAL",
        "return redis.pcall('xreadgroup', 'GROUP', 'g', 'c', 'BLOCK', '5', 'STREAMS', KEYS[1],"
        " '>')",
        "1",
        "s",
    ],
    ["EVAL", "return redis.call('XREAD', 'COUNT', '1', 'STREAMS', KEYS[1], '0')", "1", "s"],
    ["EVAL", "return redis.call('XADD', KEYS[1], '100-1', 'f', 'v')", "1", "s"],
]


def _replies(server: ServerProcess, protocol: int) -> list[bytes]:
    with RawConnection(server.port) as conn:
        conn.command("FLUSHALL")
        if protocol == 3:
            conn.command("HELLO", "3")
        return [conn.command(*command) for command in SCRIPT]


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_match_redis(
    protocol: int, clone: ServerProcess, redis_server: ServerProcess
) -> None:
    expected = _replies(redis_server, protocol)
    got = _replies(clone, protocol)
    for command, ours, theirs in zip(SCRIPT, got, expected, strict=True):
        assert ours == theirs, command


def test_times_in_replies(clone: ServerProcess) -> None:
    """Idle times grow from 0, delivery and seen times are the server's clock."""
    client = clone.client()
    client.flushall()
    client.xadd("t", {"a": 1}, id="1-1")
    client.xgroup_create("t", "g", "0")
    client.xreadgroup("g", "c", {"t": ">"})
    pending = client.xpending_range("t", "g", "-", "+", 10)
    assert pending[0]["consumer"] == b"c" and 0 <= pending[0]["time_since_delivered"] < 5000
    consumers = client.xinfo_consumers("t", "g")
    assert consumers[0]["name"] == b"c" and consumers[0]["pending"] == 1
    full = client.xinfo_stream("t", full=True)
    seen = full["groups"][0]["consumers"][0][b"seen-time"]
    assert abs(seen - int(client.time()[0]) * 1000) < 10_000
    claimed = client.xclaim("t", "g", "d", 0, ["1-1"], idle=5000, justid=True)
    assert claimed == [b"1-1"]
    assert client.xpending_range("t", "g", "-", "+", 10, idle=4000)[0]["consumer"] == b"d"


# -- blocking -----------------------------------------------------------------------------

#: XREAD's ``$`` (as bytes: the harness reads a "$n" string as connection n's id).
D = b"$"

SCENARIOS: dict[str, list[Step]] = {
    "XREAD $ is woken by XADD": [
        (1, "call", ["XADD", "a", "1-1", "f", "v"]),
        (0, "send", ["XREAD", "BLOCK", "0", "STREAMS", "a", D]),
        _b(1),
        (1, "call", ["XADD", "a", "2-1", "f", "w"]),
        (0, "read", []),
    ],
    "XREAD over keys on several shards": [
        (0, "send", ["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "c", D, D, "0"]),
        _b(1),
        (1, "call", ["XADD", "c", "5-1", "f", "v"]),
        (0, "read", []),
        (0, "send", ["XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "b", "d", D, D]),
        _b(1),
        (1, "call", ["XADD", "d", "1-1", "f", "v"]),
        (0, "read", []),
    ],
    "XREAD timeouts, MULTI and CLIENT UNBLOCK": [
        (0, "call", ["XREAD", "BLOCK", "50", "STREAMS", "a", "b", D, D]),
        (0, "call", ["XREAD", "BLOCK", "10", "STREAMS", "a", D]),
        (0, "call", ["MULTI"]),
        (0, "call", ["XREAD", "BLOCK", "0", "STREAMS", "a", D]),
        (0, "call", ["EXEC"]),
        (0, "send", ["XREAD", "BLOCK", "0", "STREAMS", "a", D]),
        _b(1),
        (1, "call", ["CLIENT", "UNBLOCK", "$0"]),
        (0, "read", []),
        (0, "send", ["XREAD", "BLOCK", "0", "STREAMS", "a", "c", D, D]),
        _b(1),
        (1, "call", ["CLIENT", "UNBLOCK", "$0", "ERROR"]),
        (0, "read", []),
    ],
    "XREADGROUP is woken, in arrival order": [
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c0", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(1),
        (2, "send", ["XREADGROUP", "GROUP", "g", "c2", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(2),
        (1, "call", ["XADD", "a", "1-1", "f", "v"]),
        (0, "read", []),
        (1, "call", ["XADD", "a", "2-1", "f", "v"]),
        (2, "read", []),
        (1, "call", ["XPENDING", "a", "g"]),
    ],
    "XREADGROUP across shards, NOACK": [
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (1, "call", ["XGROUP", "CREATE", "b", "g", D, "MKSTREAM"]),
        (
            0,
            "send",
            ["XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "a", "b", ">", ">"],
        ),  # fmt: skip
        _b(1),
        (1, "call", ["XADD", "b", "1-1", "f", "v"]),
        (0, "read", []),
        (1, "call", ["XPENDING", "b", "g"]),
        (1, "call", ["XINFO", "GROUPS", "b"]),
    ],
    "XREADGROUP: its group destroyed, its key deleted or replaced": [
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(1),
        (1, "call", ["XGROUP", "DESTROY", "a", "g"]),
        (0, "read", []),
        (1, "call", ["XGROUP", "CREATE", "a", "g", D]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(1),
        (1, "call", ["DEL", "a"]),
        (0, "read", []),
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(1),
        (1, "call", ["SET", "a", "x"]),
        (0, "read", []),
        (0, "send", ["XREAD", "BLOCK", "30", "STREAMS", "b", D]),
        _b(1),
        (1, "call", ["XADD", "b", "1-1", "f", "v"]),
        (1, "call", ["DEL", "b"]),
        (0, "read", []),
    ],
    "an entry trimmed by its own XADD still wakes readers": [
        (1, "call", ["XADD", "a", "1-1", "f", "v"]),
        (0, "send", ["XREAD", "BLOCK", "0", "STREAMS", "a", D]),
        _b(1),
        (1, "call", ["XADD", "a", "MAXLEN", "0", "2-1", "f", "v"]),
        (0, "read", []),
        (1, "call", ["XGROUP", "CREATE", "a", "g", D]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", ">"]),
        _b(1),
        (1, "call", ["XADD", "a", "MAXLEN", "0", "3-1", "f", "v"]),
        (0, "read", []),
        (1, "call", ["XINFO", "GROUPS", "a"]),
    ],
    "XREADGROUP across shards: a key deleted, a group destroyed": [
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (1, "call", ["XGROUP", "CREATE", "b", "g", D, "MKSTREAM"]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", "b", ">", ">"]),
        _b(1),
        (1, "call", ["DEL", "b"]),
        (0, "read", []),
        (1, "call", ["XGROUP", "CREATE", "b", "g", D, "MKSTREAM"]),
        (0, "send", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", "b", ">", ">"]),
        _b(1),
        (1, "call", ["XGROUP", "DESTROY", "a", "g"]),
        (0, "read", []),
        (0, "send", ["BLPOP", "c", "d", "0"]),  # a pop over several shards waits on
        _b(1),
        (1, "call", ["DEL", "d"]),
        (1, "call", ["RPUSH", "c", "x"]),
        (0, "read", []),
    ],
    "XREADGROUP with history does not block": [
        (1, "call", ["XGROUP", "CREATE", "a", "g", D, "MKSTREAM"]),
        (0, "call", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", "0"]),
        (1, "call", ["XADD", "a", "1-1", "f", "v"]),
        (0, "call", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "a", ">"]),
        (0, "call", ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", "a", ">"]),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_blocking_scenario_matches_redis(
    name: str, clone: ServerProcess, redis_server: ServerProcess
) -> None:
    expected = run_scenario(redis_server, SCENARIOS[name])
    assert run_scenario(clone, SCENARIOS[name]) == expected


def _blocked(client: redis.Redis, count: int) -> bool:
    return bool(wait_until(lambda: client.info("clients")["blocked_clients"] == count, 5.0))


def test_blocked_reader_woken_through_another_acceptor(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(4, ["--acceptors", "2"])
    reader, writer = server.client_on(0), server.client_on(1)
    got: list = []
    keys = ["a", "b", "{a}x"]  # a wait on one shard, and one over several

    def read(ids: list[str]) -> None:
        got.append(reader.execute_command("XREAD", "BLOCK", "0", "STREAMS", *keys[:2], *ids))

    for ids, key in ((["$", "$"], "b"), (["$", "$"], "a")):
        thread = threading.Thread(target=read, args=(ids,))
        thread.start()
        assert _blocked(writer, 1)
        writer.xadd(key, {"f": "v"}, id=f"{len(got) + 1}-1")
        thread.join(5)
        assert got[-1][0][0] == key.encode()
    group_reader = server.client_on(0)
    writer.xgroup_create("{a}x", "g", "$", mkstream=True)
    thread = threading.Thread(
        target=lambda: got.append(group_reader.xreadgroup("g", "c", {"{a}x": ">"}, block=0))
    )
    thread.start()
    assert _blocked(writer, 1)
    writer.xadd("{a}x", {"f": "v"}, id="9-1")
    thread.join(5)
    assert got[-1] == [[b"{a}x", [(b"9-1", {b"f": b"v"})]]]


# -- the generic commands on a stream -------------------------------------------------------


def test_stream_in_generic_commands(clone: ServerProcess, redis_server: ServerProcess) -> None:
    ours, theirs = clone.client(), redis_server.client()
    for client in (ours, theirs):
        client.flushall()
        for i in range(1, 150):
            client.xadd("a", {"f": i}, id=f"{i}-1")
        client.xgroup_create("a", "g", "0")
        client.xreadgroup("g", "c", {"a": ">"}, count=3)
    assert ours.type("a") == b"stream"
    assert ours.object("encoding", "a") == b"stream"
    assert list(ours.scan_iter(_type="stream")) == [b"a"]
    assert ours.memory_usage("a") > 0
    for client in (ours, theirs):  # without groups (whose times differ), the same bytes
        for i in range(1, 300):
            client.xadd("plain", {"f": i, "other" if i % 9 else "f": "x" * (i % 70)}, id=f"{i}-0")
        client.xdel("plain", "5-0", "120-0")
    assert ours.dump("plain") == theirs.dump("plain")
    payload = theirs.dump("a")
    ours.restore("r", 0, payload)
    theirs.restore("r2", 0, ours.dump("a"))
    assert ours.xinfo_stream("r", full=True) == theirs.xinfo_stream("a", full=True)
    assert theirs.xinfo_stream("r2", full=True) == ours.xinfo_stream("a", full=True)
    assert ours.copy("a", "b") and ours.xrange("b") == ours.xrange("a")
    ours.xadd("b", {"x": 1}, id="999-1")
    assert ours.xlen("a") == 149 and ours.xlen("b") == 150
    assert ours.rename("b", "c") and ours.xinfo_groups("c")[0]["pending"] == 3
    assert ours.move("c", 1) and clone.client(db=1).xlen("c") == 150
    script = "return redis.call('XADD', KEYS[1], '5-5', 'k', ARGV[1])"
    assert ours.eval(script, 1, "e", "v") == b"5-5"
    assert ours.xrange("e") == [(b"5-5", {b"k": b"v"})]
    watcher = ours.pipeline()
    watcher.watch("a")
    ours.xadd("a", {"f": "late"}, id="1000-1")
    watcher.multi()
    watcher.xlen("a")
    with pytest.raises(redis.WatchError):
        watcher.execute()


def test_keyspace_notifications(clone: ServerProcess, redis_server: ServerProcess) -> None:
    commands = [
        ["XADD", "n", "1-1", "a", "1"],
        ["XADD", "n", "MAXLEN", "1", "3-1", "a", "1"],
        ["XTRIM", "n", "MAXLEN", "0"],
        ["XADD", "n", "4-1", "a", "1"],
        ["XDEL", "n", "4-1"],
        ["XGROUP", "CREATE", "n", "g", "0"],
        ["XGROUP", "CREATE", "m", "g", "0", "MKSTREAM"],
        ["XGROUP", "CREATECONSUMER", "n", "g", "c"],
        ["XADD", "n", "5-1", "a", "1"],
        ["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "n", ">"],
        ["XCLAIM", "n", "g", "c3", "0", "5-1"],
        ["XAUTOCLAIM", "n", "g", "c4", "0", "0"],
        ["XGROUP", "SETID", "n", "g", "0"],
        ["XGROUP", "DELCONSUMER", "n", "g", "c"],
        ["XGROUP", "DESTROY", "n", "g"],
        ["XSETID", "n", "9-9"],
    ]

    def heard(server: ServerProcess) -> list:
        client = server.client()
        client.flushall()
        client.config_set("notify-keyspace-events", "KEA")
        listener = client.pubsub()
        listener.psubscribe("__key*@0__:*")
        assert listener.get_message(timeout=2)["type"] == "psubscribe"
        for command in commands:
            client.execute_command(*command)
        client.config_set("notify-keyspace-events", "")
        out = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            out.append((message["channel"], message["data"]))
        listener.close()
        return out

    assert heard(clone) == heard(redis_server)


# -- persistence ------------------------------------------------------------------------------


def _fill(client: redis.Redis) -> None:
    for i in range(1, 500):
        client.xadd("s", {"f": i, "g": "x" * (i % 40)}, id=f"{i}-{i % 5}")
    client.xdel("s", *[f"{i}-{i % 5}" for i in range(3, 500, 7)])
    client.xgroup_create("s", "g", "0")
    client.xgroup_create("s", "h", "$", entries_read=5)
    client.xreadgroup("g", "alice", {"s": ">"}, count=4)
    client.xclaim("s", "g", "bob", 0, ["2-2"], idle=1000)
    client.xgroup_create("empty", "g", "$", mkstream=True)


def _state(server: ServerProcess, seen_times: bool = True) -> list[bytes]:
    """XINFO STREAM FULL of the keys, raw; seen times zeroed unless asked for."""
    with RawConnection(server.port) as conn:
        out = [conn.command("XINFO", "STREAM", key, "FULL", "COUNT", "0") for key in KEYS]
    if not seen_times:
        out = [re.sub(rb"seen-time\r\n:\d+", b"seen-time\r\n:0", reply) for reply in out]
    return out


KEYS = ("s", "empty")


def test_dump_rdb_moves_both_ways(clone_factory: ServerPool, tmp_path: Path) -> None:
    source = clone_factory.start_redis(["--dir", str(tmp_path)])
    _fill(source.client())
    expected = _state(source)
    source.client().save()
    source.stop()
    ours = clone_factory.start_clone(4, ["--dir", str(tmp_path)])
    assert _state(ours) == expected
    ours.client().save()
    ours.stop()
    back = clone_factory.start_redis(["--dir", str(tmp_path)])
    assert _state(back) == expected


def test_append_only_log_restores_groups(clone_factory: ServerPool, tmp_path: Path) -> None:
    args = ["--dir", str(tmp_path), "--appendonly", "yes"]
    server = clone_factory.start_clone(2, args)
    _fill(server.client())
    client = server.client()
    client.xtrim("s", maxlen=300, approximate=True)
    client.xack("s", "g", "1-1")
    got: list = []  # a blocked read, served by an XADD: its delivery is logged too
    reader = threading.Thread(
        target=lambda: got.append(server.client().xreadgroup("g", "dan", {"empty": ">"}, block=0))
    )
    reader.start()
    assert _blocked(client, 1)
    client.xadd("empty", {"f": "v"}, id="7-7")
    reader.join(5)
    assert got == [[[b"empty", [(b"7-7", {b"f": b"v"})]]]]
    before = _state(server, seen_times=False)
    server.stop()
    again = clone_factory.start_clone(2, args)
    # seen times are the replay's, as those of Redis's XGROUP CREATECONSUMER are
    assert _state(again, seen_times=False) == before
