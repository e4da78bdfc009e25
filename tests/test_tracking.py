"""Client-side caching (CLIENT TRACKING) against a real redis-server, at 1 and 4 shards.

A scenario is a list of steps over a few raw connections, each opened with its protocol
(HELLO 3 for RESP3). ``call`` sends a command and reads its reply; after every step the
harness collects the pushes (invalidations, ``message`` frames of ``__redis__:invalidate``)
each connection got, by a PING round trip on each: redis-server has written them before it
answers that PING. redis-clone's invalidations come from the shards, so on it the harness
polls (PING again, under a deadline) until each connection has as many as redis-server sent
for that step; more, fewer or other ones fail the test. Pushes are compared per step as a
multiset: invalidations from several shards for one command arrive in shard order, not
argument order (docs/architecture.md, "Client-side caching"). ``await`` waits for pushes
that come in their own time (a key's expiry). Client ids differ between the servers: they
are masked in replies (``{id2}`` in a command is connection 2's id).

The keys ``a`` ``b`` ``c`` ``d`` lie on four different shards of a 4-shard server.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import redis
from conftest import RawConnection, ServerProcess, encode_command, wait_until
from redis.cache import CacheConfig

from shardserver import events
from shardserver.keyspace import now_ms
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

Step = tuple[int, str, list]
DEADLINE_S = 5.0
_PONGS = (b"+PONG\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")


SCENARIOS: dict[str, tuple[list[int], list[Step]]] = {
    "RESP3: a read, another client's write, one invalidation, a read again": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "1"]),
            (1, "call", ["SET", "a", "2"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["APPEND", "a", "x"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["SET", "a", "own"]),
            (0, "call", ["STRLEN", "a"]),
            (1, "call", ["DEL", "a"]),
            (0, "call", ["MGET", "a", "b", "c", "d"]),
            (1, "call", ["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]),
            (1, "call", ["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]),
            (0, "call", ["EXISTS", "a", "b"]),
            (0, "call", ["HGETALL", "h"]),
            (1, "call", ["HSET", "h", "f", "v"]),
            (1, "call", ["DEL", "a", "b"]),
            (0, "call", ["SELECT", "1"]),
            (0, "call", ["GET", "c"]),
            (1, "call", ["SET", "c", "other db"]),
            (0, "call", ["SELECT", "0"]),
            (0, "call", ["GET", "d"]),
            (0, "call", ["CLIENT", "TRACKING", "OFF"]),
            (1, "call", ["SET", "d", "after off"]),
            (0, "call", ["GET", "d"]),
            (1, "call", ["SET", "d", "untracked"]),
        ],
    ),
    "RESP2: REDIRECT to a client subscribed to __redis__:invalidate": (
        [2, 2, 2],
        [
            (2, "call", ["SUBSCRIBE", "__redis__:invalidate"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id2}"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["GET", "b"]),
            (1, "call", ["SET", "a", "x"]),
            (1, "call", ["MSET", "a", "y", "b", "z"]),
            (0, "call", ["CLIENT", "GETREDIR"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "info", []),
            (0, "call", ["GET", "c"]),
            (1, "call", ["FLUSHALL"]),
            (0, "call", ["GET", "c"]),
            (1, "call", ["SET", "c", "1"]),
        ],
    ),
    "a redirect to a client that went away": (
        [3, 2, 3],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id2}"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "1"]),
            (2, "close", []),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "2"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "3"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "info", []),
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
        ],
    ),
    "BCAST with prefixes": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:", "PREFIX", "b:"]),
            (1, "call", ["SET", "a:1", "x"]),
            (1, "call", ["SET", "b:1", "y"]),
            (1, "call", ["SET", "c:1", "z"]),
            (1, "call", ["MSET", "a:{t}2", "1", "a:{t}1", "2", "b:{t}", "3", "c:{t}", "4"]),
            (0, "call", ["SET", "a:own", "1"]),
            (0, "call", ["GET", "c:1"]),
            (1, "call", ["SET", "c:1", "not tracked"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c:"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "info", []),
            (1, "call", ["SET", "c:1", "now"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:x"]),
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["CLIENT", "TRACKING", "OFF"]),
            (1, "call", ["SET", "a:1", "off"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST"]),
            (1, "call", ["SET", "anything", "1"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
        ],
    ),
    "NOLOOP": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON", "NOLOOP"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["SET", "a", "mine"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "theirs"]),
            (0, "call", ["MGET", "a", "b", "c"]),
            (0, "call", ["MSET", "a", "1", "b", "2", "c", "3"]),
            (1, "call", ["MSET", "a", "1", "b", "2", "c", "3"]),
            (0, "call", ["GET", "b"]),
            (0, "call", ["SET", "a", "v"]),
            (0, "call", ["RENAME", "a", "b"]),
            (0, "call", ["GET", "b"]),
            (1, "call", ["SET", "b", "theirs"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "call", ["CLIENT", "TRACKING", "OFF"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP", "PREFIX", "{t}"]),
            (0, "call", ["MSET", "{t}1", "mine", "{t}2", "mine"]),
            (1, "call", ["SET", "{t}1", "theirs"]),
            (0, "call", ["SET", "{t}2", "mine"]),
            (1, "call", ["MSET", "{t}2", "theirs", "{t}3", "theirs"]),
        ],
    ),
    "OPTIN with CLIENT CACHING YES": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTIN"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "1"]),
            (0, "call", ["CLIENT", "CACHING", "YES"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["GET", "b"]),
            (1, "call", ["MSET", "a", "2", "b", "2"]),
            (0, "call", ["CLIENT", "CACHING", "YES"]),
            (0, "call", ["PING"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["SET", "a", "3"]),
            (0, "call", ["CLIENT", "CACHING", "YES"]),
            (0, "call", ["MULTI"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["GET", "b"]),
            (0, "call", ["EXEC"]),
            (1, "call", ["MSET", "a", "4", "b", "4"]),
            (0, "call", ["CLIENT", "CACHING", "NO"]),
            (0, "call", ["CLIENT", "CACHING", "MAYBE"]),
        ],
    ),
    "OPTOUT with CLIENT CACHING NO": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTOUT"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["CLIENT", "CACHING", "NO"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "call", ["GET", "b"]),
            (0, "call", ["GET", "c"]),
            (1, "call", ["MSET", "a", "1", "b", "1", "c", "1"]),
            (0, "call", ["CLIENT", "CACHING", "YES"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTIN"]),
            (0, "call", ["CLIENT", "TRACKING", "OFF"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTIN"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTOUT"]),
        ],
    ),
    "transactions: the reads inside are tracked": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["MULTI"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["MGET", "b", "c"]),
            (0, "call", ["SET", "d", "1"]),
            (0, "call", ["EXEC"]),
            (1, "call", ["MSET", "a", "1", "b", "1", "c", "1", "d", "1"]),
        ],
    ),
    "reads across shards: SINTER, SUNION": (
        [3, 2],
        [
            (1, "call", ["SADD", "a", "1", "2"]),
            (1, "call", ["SADD", "b", "2", "3"]),
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["SINTER", "a", "b"]),
            (1, "call", ["SADD", "a", "3"]),
            (1, "call", ["SADD", "b", "4"]),
            (0, "call", ["SUNION", "c", "d"]),
            (1, "call", ["SADD", "d", "1"]),
            (1, "call", ["SADD", "c", "1"]),
        ],
    ),
    "FLUSHALL and FLUSHDB: the null invalidation to every tracking client": (
        [3, 3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (1, "call", ["CLIENT", "TRACKING", "ON", "BCAST"]),
            (0, "call", ["GET", "a"]),
            (2, "call", ["FLUSHALL"]),
            (2, "call", ["SET", "a", "1"]),
            (0, "call", ["GET", "a"]),
            (2, "call", ["SELECT", "3"]),
            (2, "call", ["FLUSHDB"]),
            (2, "call", ["SELECT", "0"]),
            (2, "call", ["SET", "a", "2"]),
            (0, "call", ["FLUSHDB"]),
        ],
    ),
    "expiry: a key read expires": (
        [3, 2],
        [
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (1, "call", ["SET", "a", "1"]),
            (0, "call", ["GET", "a"]),
            (1, "call", ["PEXPIRE", "a", "50"]),
            (0, "call", ["GET", "a"]),
            (0, "await", [1]),
            (1, "call", ["SET", "b", "1", "PX", "30"]),
            (0, "call", ["GET", "b"]),
            (0, "await", [1]),
        ],
    ),
    "other writes: RENAME, COPY, MOVE, SORT STORE, SWAPDB, blocking pops, EXPIRE": (
        [3, 2],
        [
            (1, "call", ["RPUSH", "{x}list", "3", "1", "2"]),
            (1, "call", ["SET", "{x}src", "v"]),
            (0, "call", ["CLIENT", "TRACKING", "ON"]),
            (0, "call", ["MGET", "{x}src", "{x}dst", "{x}sorted", "{x}copy"]),
            (1, "call", ["RENAME", "{x}src", "{x}dst"]),
            (1, "call", ["SORT", "{x}list", "STORE", "{x}sorted"]),
            (1, "call", ["COPY", "{x}dst", "{x}copy"]),
            (0, "call", ["MGET", "{x}dst", "{x}copy"]),
            (1, "call", ["MOVE", "{x}dst", "2"]),
            (1, "call", ["EXPIRE", "{x}copy", "100"]),
            (1, "call", ["EXPIRE", "{x}nothing", "100"]),
            (0, "call", ["GET", "{x}copy"]),
            (1, "call", ["PERSIST", "{x}copy"]),
            (0, "call", ["GET", "{x}copy"]),
            (1, "call", ["SWAPDB", "0", "2"]),
            (1, "call", ["SWAPDB", "0", "2"]),
            (0, "call", ["LRANGE", "{x}list", "0", "-1"]),
            (1, "call", ["BLPOP", "{x}list", "0"]),
            (0, "call", ["LRANGE", "{x}list", "0", "-1"]),
            (1, "call", ["LMOVE", "{x}list", "{x}list", "LEFT", "RIGHT"]),
            (0, "call", ["GET", "a"]),
            (0, "call", ["GET", "b"]),
            (1, "call", ["RENAME", "a", "b"]),
            (1, "call", ["SET", "a", "1"]),
            (1, "call", ["RENAME", "a", "b"]),
        ],
    ),
    "argument errors and replies without tracking": (
        [3],
        [
            (0, "call", ["CLIENT", "TRACKING", "MAYBE"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "FOO"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "x"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "123456789"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id0}", "REDIRECT", "{id0}"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "PREFIX", "x"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "ab"]),
            (0, "call", ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "a"]),
            (0, "call", ["CLIENT", "TRACKING", "OFF", "PREFIX", "a"]),
            (0, "call", ["CLIENT", "TRACKING"]),
            (0, "call", ["CLIENT", "CACHING"]),
            (0, "call", ["CLIENT", "CACHING", "YES"]),
            (0, "call", ["CLIENT", "CACHING", "YES", "NO"]),
            (0, "call", ["CLIENT", "GETREDIR"]),
            (0, "call", ["CLIENT", "GETREDIR", "x"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "call", ["CLIENT", "TRACKINGINFO", "x"]),
            (0, "info", []),
            (0, "call", ["CLIENT", "TRACKING", "ON", "REDIRECT", "{id0}"]),
            (0, "call", ["CLIENT", "GETREDIR"]),
            (0, "info", []),
            (0, "call", ["RESET"]),
            (0, "call", ["CLIENT", "TRACKINGINFO"]),
            (0, "call", ["CLIENT", "GETREDIR"]),
        ],
    ),
}


class Harness:
    """The connections of one scenario on one server, and what each received."""

    def __init__(self, server: ServerProcess, protocols: list[int]) -> None:
        self.conns: list[RawConnection | None] = []
        self.ids: list[int] = []
        with server.client() as admin:
            admin.flushall()
        for protocol in protocols:
            conn = server.raw()
            self.ids.append(int(conn.call("CLIENT", "ID")))
            if protocol == 3:
                conn.command("HELLO", "3")
            self.conns.append(conn)
        self.server = server
        #: Connections inside MULTI: a PING there is queued, so no round trip.
        self.in_multi: set[int] = set()

    def close(self) -> None:
        for conn in self.conns:
            if conn is not None:
                conn.close()

    def mask(self, raw: bytes) -> bytes:
        for n, client_id in enumerate(self.ids):
            raw = raw.replace(b":%d\r\n" % client_id, b":<id%d>\r\n" % n)
            raw = raw.replace(b"redir=%d " % client_id, b"redir=<id%d> " % n)
        return raw

    def listens(self, index: int) -> bool:
        """Whether a PING round trip can collect this connection's pushes now."""
        return self.conns[index] is not None and index not in self.in_multi

    def pushes(self, index: int) -> list[bytes]:
        """What connection ``index`` got unasked, up to a PING's reply."""
        conn = self.conns[index]
        conn.send(encode_command("PING"))
        found = []
        while True:
            frame = conn.read_reply(DEADLINE_S)
            if frame in _PONGS:
                return found
            found.append(self.mask(frame) if b"tracking-redir-broken" in frame else frame)

    def step(self, index: int, verb: str, args: list) -> bytes | None:
        conn = self.conns[index]
        if verb == "close":
            gone = self.ids[index]
            conn.close()
            self.conns[index] = None
            with self.server.client() as admin:
                assert wait_until(lambda: not admin.client_list(client_id=[gone]), DEADLINE_S)
            return None
        if verb == "info":
            line = conn.call("CLIENT", "INFO")
            line = line.decode() if isinstance(line, bytes) else str(line)
            fields = dict(re.findall(r"(flags|redir)=(\S+)", line))
            return self.mask(f"flags={fields['flags']} redir={fields['redir']} ".encode())
        command = [
            re.sub(r"\{id(\d)\}", lambda m: str(self.ids[int(m.group(1))]), str(arg))
            for arg in args
        ]
        reply = conn.command(*command)
        if command[0] == "MULTI":
            self.in_multi.add(index)
        elif command[0] in ("EXEC", "DISCARD"):
            self.in_multi.discard(index)
        return self.mask(reply) if command[0] == "CLIENT" else reply


def _record(server: ServerProcess, protocols: list[int], steps: list[Step]) -> list:
    """The oracle's replies and, after each step, each connection's pushes."""
    harness = Harness(server, protocols)
    try:
        out = []
        for index, verb, args in steps:
            if verb == "await":
                got: list[bytes] = []
                deadline = time.monotonic() + DEADLINE_S
                while len(got) < args[0] and time.monotonic() < deadline:
                    got += harness.pushes(index)
                out.append(("await", sorted(got)))
                continue
            reply = harness.step(index, verb, args)
            pushes = [
                sorted(harness.pushes(n)) if harness.listens(n) else []
                for n in range(len(harness.conns))
            ]
            out.append((reply, pushes))
        return out
    finally:
        harness.close()


def _replay(server: ServerProcess, protocols: list[int], steps: list[Step], expected: list):
    """The same steps on redis-clone, each step's pushes polled for until as many came."""
    harness = Harness(server, protocols)
    try:
        out = []
        for (index, verb, args), (_reply, wanted) in zip(steps, expected, strict=True):
            if verb == "await":
                got: list[bytes] = []
                deadline = time.monotonic() + DEADLINE_S
                while len(got) < args[0] and time.monotonic() < deadline:
                    got += harness.pushes(index)
                out.append(("await", sorted(got)))
                continue
            reply = harness.step(index, verb, args)
            pushes = []
            for n in range(len(harness.conns)):
                got = []
                if harness.listens(n):
                    deadline = time.monotonic() + DEADLINE_S
                    got = harness.pushes(n)
                    while len(got) < len(wanted[n]) and time.monotonic() < deadline:
                        got += harness.pushes(n)
                pushes.append(sorted(got))
            out.append((reply, pushes))
        return out
    finally:
        harness.close()


@pytest.fixture(scope="module")
def keys_on_four_shards() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in (b"a", b"b", b"c", b"d")}) == 4


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_matches_redis(
    name: str, clone: ServerProcess, redis_server: ServerProcess, keys_on_four_shards: None
) -> None:
    protocols, steps = SCENARIOS[name]
    expected = _record(redis_server, protocols, steps)
    got = _replay(clone, protocols, steps, expected)
    for step, want, have in zip(steps, expected, got, strict=True):
        assert have == want, f"step {step}"


def test_redis_py_client_side_caching_wants_7_4(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    """redis-py's own cache (``cache_config``) refuses servers older than 7.4: as for
    redis-server 7.0, so for us (we answer HELLO as 7.0)."""
    for server in (redis_server, clone):
        client = server.client(protocol=3, cache_config=CacheConfig())
        with pytest.raises(redis.ConnectionError, match="7.4"):
            client.get("a")
        client.close()


# -- two acceptors -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_acceptors(module_servers) -> ServerProcess:
    return module_servers.clone(4, ["--acceptors", "2"])


def _raw_on(server: ServerProcess, acceptor: int, protocol: int) -> RawConnection:
    """A raw connection served by acceptor ``acceptor``, in ``protocol``."""
    for _ in range(64):
        conn = server.raw()
        info = conn.call("INFO", "shards").decode()
        if f"connection_acceptor:{acceptor}\r\n" in info:
            if protocol == 3:
                conn.command("HELLO", "3")
            return conn
        conn.close()
    raise AssertionError(f"no connection landed on acceptor {acceptor}")


def _pushes(conn: RawConnection, count: int) -> list[bytes]:
    """Poll (PING round trips) until ``count`` frames came unasked; the frames."""
    found: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(found) < count and time.monotonic() < deadline:
        conn.send(encode_command("PING"))
        while (frame := conn.read_reply(DEADLINE_S)) not in _PONGS:
            found.append(frame)
    return found


def _pushes_within(conn: RawConnection, seconds: float) -> list[bytes]:
    """The frames that came unasked within ``seconds`` (one PING round trip at least)."""
    found: list[bytes] = []
    deadline = time.monotonic() + seconds
    while not found and time.monotonic() < deadline:
        conn.send(encode_command("PING"))
        while (frame := conn.read_reply(DEADLINE_S)) not in _PONGS:
            found.append(frame)
    return found


def _invalidate(*keys: bytes) -> bytes:
    return b">2\r\n$10\r\ninvalidate\r\n*%d\r\n" % len(keys) + b"".join(
        b"$%d\r\n%b\r\n" % (len(key), key) for key in keys
    )


def test_a_write_on_one_acceptor_invalidates_a_reader_on_the_other(
    two_acceptors: ServerProcess,
) -> None:
    reader = _raw_on(two_acceptors, 0, 3)
    writer = _raw_on(two_acceptors, 1, 2)
    bcast = _raw_on(two_acceptors, 1, 3)
    try:
        assert reader.command("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
        assert bcast.command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x") == b"+OK\r\n"
        reader.command("MGET", "a", "b", "c", "d")
        writer.command("MSET", "a", "1", "b", "2", "c", "3", "d", "4")
        assert sorted(_pushes(reader, 4)) == [_invalidate(key) for key in (b"a", b"b", b"c", b"d")]
        reader.command("GET", "a")
        stats = two_acceptors.client().info("stats")
        assert (stats["tracking_total_keys"], stats["tracking_total_prefixes"]) == (1, 1)
        assert stats["tracking_total_items"] == 1
        reader.command("SET", "x1", "1")  # a reader on acceptor 0 writes, BCAST on 1 hears
        assert _pushes(bcast, 1) == [_invalidate(b"x1")]
        writer.command("FLUSHALL")
        assert _pushes(reader, 1) == [b">2\r\n$10\r\ninvalidate\r\n_\r\n"]
        assert _pushes(bcast, 1) == [b">2\r\n$10\r\ninvalidate\r\n_\r\n"]
        assert two_acceptors.client().info("clients")["tracking_clients"] == 2
    finally:
        for conn in (reader, writer, bcast):
            conn.close()


def test_redirect_to_a_client_on_the_other_acceptor(two_acceptors: ServerProcess) -> None:
    tracker = _raw_on(two_acceptors, 0, 3)
    target = _raw_on(two_acceptors, 1, 2)
    writer = _raw_on(two_acceptors, 1, 2)
    try:
        target_id = int(target.call("CLIENT", "ID"))
        target.command("SUBSCRIBE", "__redis__:invalidate")
        assert tracker.command("CLIENT", "TRACKING", "ON", "REDIRECT", target_id) == b"+OK\r\n"
        assert tracker.call("CLIENT", "GETREDIR") == target_id
        tracker.command("GET", "b")
        writer.command("SET", "b", "1")
        message = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nb\r\n"
        assert _pushes(target, 1) == [message]
        target.close()
        with two_acceptors.client() as admin:
            assert wait_until(lambda: not admin.client_list(client_id=[target_id]), DEADLINE_S)
        tracker.command("GET", "b")
        writer.command("SET", "b", "2")
        broken = b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % target_id
        assert _pushes(tracker, 1) == [broken]
        assert b"flags=tR" in tracker.command("CLIENT", "INFO")
    finally:
        for conn in (tracker, target, writer):
            conn.close()


# -- the shard's side, as a plain object ---------------------------------------------------


def _track(client_id: int, *commands: list, remember: int = 1, noloop: int = 0) -> list:
    """A run of one ``@track`` for client ``client_id`` of stream 0 (RESP3, database 0)."""
    return [1, [b"@track", 0, client_id, noloop, 1, *[[remember, argv] for argv in commands]]]


def test_shard_remembers_reads_and_tells_each_reader_once() -> None:
    shard = Shard(0)
    assert shard.handlers is shard.plain_handlers
    replies = shard.execute_batch(
        [_track(7, [b"set", b"k", b"v"], [b"get", b"k"], [b"mget", b"j", b"k"])]
    )
    assert replies == [b"+OK\r\n$1\r\nv\r\n*2\r\n_\r\n$1\r\nv\r\n"]
    assert shard.tracking.keys == {b"k": {(0, 7): None}, b"j": {(0, 7): None}}
    assert shard.handlers is not shard.plain_handlers
    shard.execute_batch([[0, [b"set", b"k", b"w"]], [0, [b"set", b"k", b"x"]]])
    assert shard.events == [(0, (events.INVALIDATED, 7, [b"k"]))]
    shard.events.clear()
    shard.execute_batch([[0, [b"del", b"j"]]])  # :0, nothing removed: nobody is told
    assert shard.events == [] and b"j" in shard.tracking.keys
    shard.execute_batch([[0, [b"set", b"j", b"1"]]])
    assert shard.events == [(0, (events.INVALIDATED, 7, [b"j"]))]
    assert shard.handlers is shard.plain_handlers  # nothing tracked: the plain table again


def test_shard_optin_noloop_expiry_and_flush() -> None:
    shard = Shard(0)
    shard.execute_batch([_track(1, [b"get", b"a"], remember=0)])
    assert not shard.tracking
    shard.execute_batch([_track(1, [b"get", b"a"], noloop=1), _track(2, [b"get", b"a"])])
    shard.execute_batch([_track(1, [b"set", b"a", b"1"], noloop=1)])
    assert shard.events == [(0, (events.INVALIDATED, 2, [b"a"]))]  # not to the writer
    shard.events.clear()
    shard.execute_batch([_track(2, [b"set", b"e", b"1", b"PX", b"1"], [b"get", b"e"])])
    wait_until(lambda: shard.dbs[0].lookup(b"e", now_ms() + 5) is None, 1.0)
    assert shard.events == [(0, (events.INVALIDATED, 2, [b"e"]))]
    shard.events.clear()
    shard.execute_batch([_track(2, [b"get", b"z"]), [0, [b"@flushall"]]])
    assert not shard.tracking and shard.events == []


def test_shard_bcast_prefixes_report_writes_with_their_writer() -> None:
    shard = Shard(0)
    shard.execute_batch([[0, [b"@tprefix", 1, 1, b"user:", b"s"]]])
    assert shard.tracking.numbers() == (0, 0, 2)
    shard.execute_batch([_track(9, [b"mset", b"user:1", b"a", b"other", b"b", b"s", b"c"])])
    assert shard.events == [(1, (events.WRITTEN, [b"user:1", b"s"], 9))]
    shard.events.clear()
    shard.execute_batch([[0, [b"@tprefix", 1, -1, b"user:", b"s"]], [0, [b"set", b"s", b"1"]]])
    assert shard.events == [] and not shard.tracking


def test_a_shard_that_dies_makes_tracking_clients_drop_everything(clone_factory) -> None:
    """The new shard process knows nothing of what was read there: every tracking client
    gets the null invalidation, and BCAST prefixes reach the new process again."""
    server = clone_factory.start_clone(2)
    reader = server.raw()
    bcast = server.raw()
    try:
        for conn in (reader, bcast):
            conn.command("HELLO", "3")
        assert reader.command("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
        assert bcast.command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x") == b"+OK\r\n"
        reader.command("GET", "a")
        with server.client() as admin:
            shards = admin.info("shards")
            shard = shard_table(2)[slot_for_key(b"x1")]
            os.kill(shards[f"shard{shard}"]["pid"], signal.SIGKILL)
            null = b">2\r\n$10\r\ninvalidate\r\n_\r\n"
            assert _pushes(reader, 1) == [null]
            assert _pushes(bcast, 1) == [null]

            def invalidated() -> bool:
                # With several acceptors, one that learns of the new process later gives it
                # its prefixes later: a write in between tells nobody (README). Write until
                # the prefix is back.
                try:
                    admin.set("x1", "after")
                except redis.ResponseError:  # the shard's death, while it restarts
                    return False
                return _pushes_within(bcast, 0.2) == [_invalidate(b"x1")]

            assert wait_until(invalidated, DEADLINE_S)
    finally:
        reader.close()
        bcast.close()
