"""PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST on the real server (1 and 4 shards),
every reply compared byte for byte with redis-server's for the same commands.

The keys ``a``, ``b``, ``c``, ``d`` fall on four different shards of a 4-shard server (checked
with CLUSTER KEYSLOT), so PFCOUNT of several keys runs as one multi-shard read and PFMERGE as
a coordination there. HLLs are strings: GET must give redis-server's bytes (the cached count
included), and redis-server's bytes SET here must count as there. Also: the TTL a PFADD or
PFMERGE keeps, MULTI/EXEC, scripts, ``hll-sparse-max-bytes``, an RDB file that redis-server
saved loaded here (and the reverse), and a shard that survives corrupt HLLs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import redis
from conftest import (
    ServerPool,
    ServerProcess,
    assert_like_redis,
)

from shardserver.commands import hyperloglog as hll
from shardserver.slots import shard_table, slot_for_key

KEYS = [b"a", b"b", b"c", b"d"]


def test_keys_are_on_four_shards(clone: ServerProcess) -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in KEYS}) == 4
    with clone.client() as client:
        assert [client.cluster("keyslot", key) for key in KEYS] == [slot_for_key(k) for k in KEYS]


def _elements(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_basic_commands_like_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    commands: list[list] = [
        ["PFADD", "a"],
        ["PFADD", "a"],
        ["PFADD", "a", "x", "y", "z"],
        ["PFADD", "a", "x"],
        ["GET", "a"],
        ["PFCOUNT", "a"],
        ["GET", "a"],
        ["PFCOUNT", "a"],
        ["PFCOUNT", "nokey"],
        ["PFADD", "b", *_elements("b", 300)],
        ["PFCOUNT", "a", "b"],
        ["PFCOUNT", "a", "b", "c", "nokey"],
        ["PFMERGE", "c", "a", "b"],
        ["GET", "c"],
        ["PFCOUNT", "c"],
        ["PFMERGE", "d"],
        ["GET", "d"],
        ["PFMERGE", "a", "b"],
        ["GET", "a"],
        ["PFDEBUG", "ENCODING", "a"],
        ["PFDEBUG", "DECODE", "a"],
        ["PFDEBUG", "TODENSE", "a"],
        ["PFDEBUG", "todense", "a"],
        ["PFDEBUG", "ENCODING", "a"],
        ["PFDEBUG", "DECODE", "a"],
        ["PFCOUNT", "a"],
        ["GET", "a"],
        ["PFDEBUG", "GETREG", "c"],
        ["PFDEBUG", "FOO", "c"],
        ["PFDEBUG", "GETREG", "nokey"],
        ["PFDEBUG", "GETREG"],
        ["PFSELFTEST"],
        ["PFSELFTEST", "x"],
        ["PFADD"],
        ["PFCOUNT"],
        ["PFMERGE"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_dense_hlls_and_unions_like_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    commands: list[list] = []
    for key, size in zip(KEYS, (5000, 2000, 40, 20000), strict=True):
        elements = _elements(key.decode(), size)
        commands += [["PFADD", key, *elements[i : i + 500]] for i in range(0, size, 500)]
    commands += [
        ["PFCOUNT", "a"],
        ["PFCOUNT", "b"],
        ["PFCOUNT", "a", "b", "c", "d"],
        ["PFMERGE", "c", "a", "b"],  # a sparse destination takes dense sources
        ["GET", "c"],
        ["PFMERGE", "b", "c", "d"],
        ["PFCOUNT", "b"],
        ["GET", "b"],
        ["PFDEBUG", "ENCODING", "d"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_wrong_types_and_corrupt_hlls_like_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    short_sparse = b"HYLL\x01" + bytes(11) + b"\x7f\xfe"  # one register short
    past_end = b"HYLL\x01" + bytes(11) + b"\x7f\xff\x80"
    bad_dense = b"HYLL\x00" + bytes(100)
    commands: list[list] = [
        ["PFADD", "a", "x"],
        ["SET", "b", "not an hll"],
        ["LPUSH", "c", "x"],
        ["SET", "d", short_sparse],
        ["PFADD", "b", "x"],
        ["PFADD", "c", "x"],
        ["PFCOUNT", "b"],
        ["PFCOUNT", "c"],
        ["PFCOUNT", "a", "b"],
        ["PFCOUNT", "a", "c", "b"],
        ["PFCOUNT", "a", "b", "c"],
        ["PFCOUNT", "d"],
        ["PFCOUNT", "a", "d"],
        ["PFADD", "d", *_elements("x", 100)],
        ["GET", "d"],
        ["PFMERGE", "a", "d"],
        ["PFMERGE", "a", "c"],
        ["PFMERGE", "c", "a"],
        ["PFDEBUG", "GETREG", "d"],
        ["PFDEBUG", "DECODE", "b"],
        ["SET", "d", past_end],
        ["PFCOUNT", "d"],
        ["PFADD", "d", "x"],
        ["SET", "d", bad_dense],
        ["PFADD", "d", "x"],
        ["PFCOUNT", "d"],
        ["SET", "d", b"HYLL"],
        ["PFCOUNT", "d"],
        # every register 63, the cache stale: C divides by zero and answers -2**63
        ["SET", "c", b"HYLL\x00" + bytes(10) + b"\x80" + b"\xff" * 12288],
        ["PFCOUNT", "c", "a"],
        ["PFCOUNT", "c"],
        ["GET", "c"],
        ["PFCOUNT", "c"],
        ["PFMERGE", "b", "c"],
        ["PING"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_redis_bytes_count_here(clone: ServerProcess, redis_server: ServerProcess) -> None:
    rng = random.Random(5)
    with redis_server.client() as theirs, clone.client() as ours:
        for size in (1, 10, 300, 1500, 3000, 30000):
            theirs.delete("h")
            elements = [rng.getrandbits(40) for _ in range(size)]
            for i in range(0, size, 1000):
                theirs.pfadd("h", *elements[i : i + 1000])
            raw = theirs.get("h")
            ours.set("h", raw)
            assert ours.pfcount("h") == theirs.pfcount("h")
            assert ours.get("h") == theirs.get("h")  # the count cached the same way
            theirs.pfadd("h", "one more")
            ours.pfadd("h", "one more")
            assert ours.get("h") == theirs.get("h")


def test_sparse_max_bytes_setting(clone: ServerProcess, redis_server: ServerProcess) -> None:
    commands: list[list] = [
        ["CONFIG", "SET", "hll-sparse-max-bytes", "100"],
        ["CONFIG", "GET", "hll-sparse-max-bytes"],
        ["PFADD", "a", *_elements("a", 60)],
        ["PFDEBUG", "ENCODING", "a"],
        ["GET", "a"],
        ["PFADD", "b", *_elements("b", 10)],
        ["PFADD", "c", *_elements("c", 50)],
        ["PFMERGE", "b", "c"],
        ["PFDEBUG", "ENCODING", "b"],
        ["GET", "b"],
        ["CONFIG", "SET", "hll-sparse-max-bytes", "3000"],
    ]
    try:
        assert_like_redis(clone, redis_server, commands)
    finally:
        for server in (clone, redis_server):
            with server.client() as client:
                client.config_set("hll-sparse-max-bytes", "3000")


def test_ttl_is_kept_by_pfadd_pfmerge_and_pfcount(clone: ServerProcess) -> None:
    with clone.client() as client:
        client.flushall()
        client.pfadd("a", "x")
        client.expire("a", 1000)
        client.pfadd("b", "y")
        client.pfadd("a", "z")
        assert client.pfcount("a") == 2
        client.pfmerge("a", "b")
        assert 0 < client.ttl("a") <= 1000
        client.pfadd("c", "w")
        client.expire("c", 500)
        client.pfmerge("c", "a")  # across shards at 4
        assert 0 < client.ttl("c") <= 500
        assert client.pfcount("c") == 4


def test_transactions_and_scripts(clone: ServerProcess) -> None:
    with clone.client() as client:
        client.flushall()
        pipe = client.pipeline(transaction=True)
        pipe.pfadd("{t}a", "x", "y")
        pipe.pfadd("{t}b", "y", "z")
        pipe.pfcount("{t}a", "{t}b")
        pipe.pfmerge("{t}c", "{t}a", "{t}b")
        pipe.pfcount("{t}c")
        assert pipe.execute() == [1, 1, 3, True, 3]
        script = "redis.call('pfadd', KEYS[1], 'p', 'q'); return redis.call('pfcount', KEYS[1])"
        assert client.eval(script, 1, "s") == 2
        assert client.eval("return redis.call('pfcount', KEYS[1], KEYS[2])", 2, "s", "{t}a") == 4
        # a multi-key transaction across shards
        pipe = client.pipeline(transaction=True)
        pipe.pfadd("a", "1")
        pipe.pfmerge("b", "a", "s")
        pipe.pfcount("a", "b", "c")
        assert pipe.execute() == [1, True, 3]


def test_rdb_round_trip(clone_factory: ServerPool, tmp_path: Path) -> None:
    """An HLL redis-server saved loads here and answers the same; ours loads there."""
    oracle_dir = tmp_path / "oracle"
    oracle_dir.mkdir()
    oracle = clone_factory.start_redis(["--dir", str(oracle_dir)])
    with oracle.client() as theirs:
        theirs.pfadd("sparse", *_elements("s", 200))
        theirs.pfadd("dense", *_elements("d", 20000))
        counts = {key: theirs.pfcount(key) for key in ("sparse", "dense")}
        theirs.pfadd("stale", "x")  # its cached count stale in the file
        expected = {key: theirs.get(key) for key in ("sparse", "dense", "stale")}
        assert theirs.save()
    oracle.stop()
    clone = clone_factory.start_clone(4, ["--dir", str(oracle_dir)])
    with clone.client() as ours:
        assert {key: ours.get(key) for key in expected} == expected
        assert {key: ours.pfcount(key) for key in counts} == counts
        assert ours.pfcount("stale") == 1
        ours.pfadd("sparse", "new")
        mine = {key: ours.get(key) for key in expected}
        assert ours.save()
    clone.stop()
    back = clone_factory.start_redis(["--dir", str(oracle_dir)])
    with back.client() as theirs:
        assert {key: theirs.get(key) for key in expected} == mine
        assert theirs.pfcount("sparse", "dense") == clone_union(mine)


def clone_union(values: dict[str, bytes]) -> int:
    """The union's count, computed here from the bytes."""
    sparse, dense = hll.registers(values["sparse"]), hll.registers(values["dense"])
    return hll.estimate(hll.raw_histogram(hll.raw_max(sparse, dense)))  # type: ignore[arg-type]


def test_a_shard_survives_random_bytes_as_hlls(clone: ServerProcess) -> None:
    rng = random.Random(9)
    with clone.client() as client:
        client.flushall()
        for _ in range(200):
            body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
            client.set("junk", b"HYLL" + bytes([rng.randrange(3)]) + bytes(11) + body)
            for command in (["PFADD", "junk", "e"], ["PFCOUNT", "junk"], ["PFCOUNT", "junk", "a"]):
                try:
                    client.execute_command(*command)
                except redis.ResponseError as problem:
                    assert "internal error" not in str(problem)
        assert client.ping()


@pytest.mark.parametrize("name", ["pfadd", "pfcount", "pfmerge", "pfdebug", "pfselftest"])
def test_command_info_like_redis(
    name: str, clone: ServerProcess, redis_server: ServerProcess
) -> None:
    assert_like_redis(clone, redis_server, [["COMMAND", "INFO", name]])


def test_append_only_log_replays_every_write(clone_factory: ServerPool, tmp_path: Path) -> None:
    """PFADD, PFMERGE across shards and PFDEBUG's conversion replay to the same bytes."""
    args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    server = clone_factory.start_clone(4, args)
    with server.client() as client:
        client.pfadd("a", *_elements("a", 100))
        client.pfadd("b", *_elements("b", 5000))
        client.pfadd("c", "x")
        client.expire("c", 1000)
        client.pfmerge("c", "a", "b")
        client.pfmerge("d", "a")
        client.execute_command("PFDEBUG", "TODENSE", "a")
        written = {key: client.get(key) for key in KEYS}
    server.stop()
    server = clone_factory.start_clone(4, args)
    with server.client() as client:
        assert {key: client.get(key) for key in KEYS} == written
        assert 0 < client.ttl("c") <= 1000
