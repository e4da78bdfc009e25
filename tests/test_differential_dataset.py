"""Whole datasets compared with redis-server: random writes of every family, then DEBUG DIGEST.

Each sequence mixes deterministic writes of every type over a few keys (some hash-tagged, so
at --shards 4 both one-shard and cross-shard forms run: RENAME, COPY, SMOVE, LMOVE,
SUNIONSTORE, ZUNIONSTORE, BITOP, SORT ... STORE), in two databases, with SWAPDB, MOVE and
expiry. Every reply must match redis-server's, and so must the dataset's digest (Redis's own
algorithm, which covers every key, value, type and whether a deadline is set), before and after
DEBUG RELOAD.
"""

from __future__ import annotations

import pytest
from conftest import (
    DEBUG_ENABLED,
    RawConnection,
    ServerPool,
    ServerProcess,
    require_redis_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = [b"a", b"b", b"{t}c", b"{t}d"]
key = st.sampled_from(KEYS)
small = st.sampled_from([b"1", b"2", b"3", b"x", b"y"])
number = st.sampled_from([b"1", b"2.5", b"-3", b"inf"])
ttl = st.sampled_from([b"100000", b"200000"])

COMMANDS = st.one_of(
    st.tuples(st.just(b"SET"), key, small),
    st.tuples(st.just(b"APPEND"), key, small),
    st.tuples(st.just(b"INCRBY"), key, st.just(b"3")),
    st.tuples(st.just(b"SETBIT"), key, st.sampled_from([b"0", b"7", b"100"]), st.just(b"1")),
    st.tuples(st.just(b"BITOP"), st.just(b"OR"), key, key, key),
    st.tuples(st.just(b"RPUSH"), key, small, small),
    st.tuples(st.just(b"LPOP"), key),
    st.tuples(st.just(b"LMOVE"), key, key, st.just(b"LEFT"), st.just(b"LEFT")),
    st.tuples(st.just(b"HSET"), key, small, small),
    st.tuples(st.just(b"HINCRBY"), key, small, st.just(b"2")),
    st.tuples(st.just(b"HDEL"), key, small),
    st.tuples(st.just(b"SADD"), key, small, small),
    st.tuples(st.just(b"SREM"), key, small),
    st.tuples(st.just(b"SMOVE"), key, key, small),
    st.tuples(st.just(b"SUNIONSTORE"), key, key, key),
    st.tuples(st.just(b"SINTERSTORE"), key, key, key),
    st.tuples(st.just(b"ZADD"), key, number, small),
    st.tuples(st.just(b"ZINCRBY"), key, number, small),
    st.tuples(st.just(b"ZPOPMIN"), key),
    st.tuples(st.just(b"ZUNIONSTORE"), key, st.just(b"2"), key, key),
    st.tuples(st.just(b"SORT"), key, st.just(b"ALPHA"), st.just(b"STORE"), key),
    st.tuples(st.just(b"RENAME"), key, key),
    st.tuples(st.just(b"COPY"), key, key, st.just(b"REPLACE")),
    st.tuples(st.just(b"COPY"), key, key, st.just(b"DB"), st.just(b"1")),
    st.tuples(st.just(b"MOVE"), key, st.just(b"1")),
    st.tuples(st.just(b"DEL"), key, key),
    st.tuples(st.just(b"EXPIRE"), key, ttl),
    st.tuples(st.just(b"PERSIST"), key),
    st.tuples(st.just(b"SWAPDB"), st.just(b"0"), st.just(b"1")),
)
SEQUENCES = st.lists(st.tuples(COMMANDS, st.sampled_from([0, 1])), min_size=1, max_size=25)


class Connection:
    """A raw connection that remembers its database."""

    def __init__(self, server: ServerProcess) -> None:
        self.raw = RawConnection(server.port)
        self.db = 0

    def call(self, argv: tuple[bytes, ...], db: int = 0) -> bytes:
        if db != self.db:
            assert self.raw.command("SELECT", db) == b"+OK\r\n"
            self.db = db
        return self.raw.command(*argv)


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Connection:
    require_redis_server()
    return Connection(module_servers.start_redis(["--enable-debug-command", "yes"]))


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def ours(request: pytest.FixtureRequest, module_servers: ServerPool) -> Connection:
    return Connection(module_servers.clone(request.param, DEBUG_ENABLED))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=SEQUENCES)
def test_datasets_match_redis(oracle: Connection, ours: Connection, sequence: list) -> None:
    for connection in (oracle, ours):
        connection.call((b"FLUSHALL",))
    for argv, db in sequence:
        assert ours.call(argv, db) == oracle.call(argv, db), (argv, db)
    digest = oracle.call((b"DEBUG", b"DIGEST"))
    assert ours.call((b"DEBUG", b"DIGEST")) == digest
    for connection in (oracle, ours):
        assert connection.call((b"DEBUG", b"RELOAD")) == b"+OK\r\n"
    assert ours.call((b"DEBUG", b"DIGEST")) == oracle.call((b"DEBUG", b"DIGEST")) == digest
