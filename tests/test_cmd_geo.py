"""The geo commands on the real server (1 and 4 shards), every reply compared byte for byte
with redis-server's for the same commands, in RESP2 and RESP3.

The keys ``a``, ``b``, ``c``, ``d`` fall on four different shards of a 4-shard server, so
GEORADIUS ... STORE and GEOSEARCHSTORE with the source on one and the destination on another
run as coordinations there. Also: argument errors in Redis's order, MULTI/EXEC and scripts,
the STORE forms' TTL and encoding, and an RDB round trip of a geo index.
"""

from __future__ import annotations

from pathlib import Path

from conftest import (
    ServerPool,
    ServerProcess,
    assert_like_redis,
)

from shardserver.slots import shard_table, slot_for_key

SICILY = ["GEOADD", "a", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"]
PLACES = [
    *SICILY,
    "12.496366",
    "41.902782",
    "Rome",
    "2.352222",
    "48.856613",
    "Paris",
    "-0.127758",
    "51.507351",
    "London",
    "139.691706",
    "35.689487",
    "Tokyo",
    "-179.9",
    "0.1",
    "DateLine",
    "179.9",
    "-0.1",
    "Other side",
    "0",
    "85.05",
    "North",
    "15.087269",
    "37.502669",
    "Twin",
]


def test_keys_are_on_four_shards() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in (b"a", b"b", b"c", b"d")}) == 4


def test_add_pos_dist_hash_like_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    commands: list[list] = [
        SICILY,
        SICILY,
        ["GEOADD", "a", "CH", "13.361389", "38.115556", "Palermo", "13", "38", "New"],
        ["GEOADD", "a", "XX", "CH", "13.5", "38.1", "Palermo", "1", "1", "Nope"],
        ["GEOADD", "a", "NX", "CH", "1", "1", "Palermo", "1", "1", "Yes"],
        ["GEOADD", "a", "NX", "XX", "1", "1", "x"],
        ["GEOADD", "a", "1", "1"],
        ["GEOADD", "a", "CH", "CH", "CH"],
        ["GEOADD", "a", "181", "1", "x"],
        ["GEOADD", "a", "1", "-85.06", "x"],
        ["GEOADD", "a", "x", "1", "m"],
        ["GEOADD", "a", "1", "nan", "m"],
        ["GEOADD", "a", "inf", "1", "m"],
        ["GEOADD", "a", "180", "85.05112878", "corner", "-180", "-85.05112878", "other"],
        ["ZRANGE", "a", "0", "-1", "WITHSCORES"],
        ["GEOPOS", "a", "Palermo", "Catania", "nonexistent", "corner", "other"],
        ["GEOPOS", "nokey", "x", "y"],
        ["GEOHASH", "a", "Palermo", "Catania", "nonexistent", "corner", "other"],
        ["GEOHASH", "nokey", "x"],
        ["GEOHASH", "a"],
        ["GEODIST", "a", "Palermo", "Catania"],
        ["GEODIST", "a", "Palermo", "Catania", "km"],
        ["GEODIST", "a", "Palermo", "Catania", "MI"],
        ["GEODIST", "a", "Palermo", "Catania", "Ft"],
        ["GEODIST", "a", "Palermo", "Catania", "yd"],
        ["GEODIST", "a", "Palermo", "Catania", "m", "x"],
        ["GEODIST", "a", "Palermo", "nonexistent"],
        ["GEODIST", "nokey", "Palermo", "Catania"],
        ["GEODIST", "a", "corner", "other"],
        ["SET", "s", "x"],
        ["GEOADD", "s", "1", "1", "m"],
        ["GEOADD", "s", "1", "100", "m"],
        ["GEOPOS", "s", "m"],
        ["GEOHASH", "s", "m"],
        ["GEODIST", "s", "m", "n"],
        ["GEODIST", "s", "m", "n", "yd"],
        ["ZADD", "z", "-5", "neg", "1e300", "huge", "0", "zero"],
        ["GEOPOS", "z", "neg", "huge", "zero"],
        ["GEOHASH", "z", "neg", "huge", "zero"],
        ["TYPE", "a"],
        ["OBJECT", "ENCODING", "a"],
    ]
    assert_like_redis(clone, redis_server, commands)


def _searches(key: str) -> list[list]:
    """Radius and box searches of every form and option over the PLACES."""
    commands: list[list] = []
    options = [
        [],
        ["WITHDIST"],
        ["WITHCOORD"],
        ["WITHHASH"],
        ["WITHDIST", "WITHHASH", "WITHCOORD"],
        ["ASC"],
        ["DESC", "WITHDIST"],
        ["COUNT", "2"],
        ["COUNT", "2", "DESC"],
        ["COUNT", "3", "ANY"],
        ["COUNT", "1", "ANY", "ASC", "WITHDIST"],
    ]
    for option in options:
        commands += [
            ["GEORADIUS", key, "15", "37", "200", "km", *option],
            ["GEORADIUS_RO", key, "15", "37", "2000", "mi", *option],
            ["GEORADIUSBYMEMBER", key, "Palermo", "1500", "km", *option],
            ["GEORADIUSBYMEMBER_RO", key, "Rome", "5000000", "ft", *option],
            ["GEOSEARCH", key, "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", *option],
            ["GEOSEARCH", key, "FROMMEMBER", "Paris", "BYBOX", "3000", "1000", "km", *option],
            ["GEOSEARCH", key, "FROMLONLAT", "180", "0", "BYBOX", "100", "100", "km", *option],
            ["GEOSEARCH", key, "FROMLONLAT", "0", "0", "BYRADIUS", "20000", "km", *option],
            ["GEOSEARCH", key, "FROMMEMBER", "North", "BYRADIUS", "800", "km", *option],
        ]
    return commands


def test_searches_like_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    assert_like_redis(clone, redis_server, [PLACES, *_searches("a"), *_searches("nokey")])


def test_search_errors_like_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    radius = ["GEORADIUS", "a", "15", "37"]
    commands: list[list] = [
        PLACES,
        [*radius, "x", "km"],
        [*radius, "-1", "km"],
        [*radius, "1", "yd"],
        [*radius, "1", "km", "COUNT", "0"],
        [*radius, "1", "km", "COUNT", "-3"],
        [*radius, "1", "km", "COUNT", "x"],
        [*radius, "1", "km", "COUNT"],
        [*radius, "1", "km", "ANY"],
        [*radius, "1", "km", "STORE"],
        [*radius, "1", "km", "STORE", "b", "WITHDIST"],
        [*radius, "1", "km", "BOGUS"],
        ["GEORADIUS", "a", "200", "37", "1", "km"],
        ["GEORADIUS_RO", "a", "15", "37", "1", "km", "STORE", "b"],
        ["GEORADIUSBYMEMBER", "a", "nobody", "1", "km"],
        ["GEORADIUSBYMEMBER", "nokey", "nobody", "x", "km"],
        ["GEOSEARCH", "a", "BYRADIUS", "1", "km", "ASC", "ASC"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "ASC", "ASC"],
        ["GEOSEARCH", "a", "FROMMEMBER", "nobody", "BYRADIUS", "1", "km"],
        ["GEOSEARCH", "nokey", "FROMMEMBER", "nobody", "BYRADIUS", "1", "km"],
        ["GEOSEARCH", "a", "FROMMEMBER", "Rome", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "FROMMEMBER", "Rome", "BYRADIUS", "1", "km"],
        ["GEOSEARCH", "a", "FROMMEMBER", "Rome", "FROMMEMBER", "Paris", "BYRADIUS", "1", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "BYBOX", "1", "1", "m"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYBOX", "x", "1", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYBOX", "1", "x", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYBOX", "1", "-1", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYBOX", "1", "1", "yd"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "STOREDIST"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "STORE", "b"],
        ["GEOSEARCH", "a", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "ANY"],
        ["GEOSEARCHSTORE", "b", "a", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km", "WITHDIST"],
        ["SET", "s", "x"],
        ["GEORADIUS", "s", "x", "37", "1", "km"],
        ["GEOSEARCH", "s", "BYRADIUS", "1", "km", "ASC", "ASC"],
        ["GEOSEARCHSTORE", "b", "s", "BYRADIUS", "1", "km", "ASC", "ASC"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_store_forms_across_shards_like_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    commands: list[list] = [
        PLACES,
        ["SET", "b", "old"],
        ["EXPIRE", "b", "1000"],
        ["GEORADIUS", "a", "15", "37", "2000", "km", "STORE", "b"],
        ["TTL", "b"],
        ["ZRANGE", "b", "0", "-1", "WITHSCORES"],
        ["OBJECT", "ENCODING", "b"],
        ["GEORADIUS", "a", "15", "37", "2000", "km", "STOREDIST", "c", "COUNT", "2"],
        ["ZRANGE", "c", "0", "-1", "WITHSCORES"],
        ["GEORADIUS", "a", "15", "37", "2000", "km", "STORE", "c", "STOREDIST", "d"],
        ["EXISTS", "c"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["GEORADIUSBYMEMBER", "a", "Paris", "500", "mi", "STORE", "c"],
        ["ZRANGE", "c", "0", "-1", "WITHSCORES"],
        ["GEOSEARCHSTORE", "d", "a", "FROMLONLAT", "15", "37", "BYBOX", "4000", "4000", "km"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["GEOSEARCHSTORE", "d", "a", "FROMMEMBER", "Rome", "BYRADIUS", "2", "km", "STOREDIST"],
        ["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        ["GEOSEARCHSTORE", "d", "a", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m"],
        ["EXISTS", "d"],
        ["GEOSEARCHSTORE", "c", "nokey", "FROMMEMBER", "x", "BYRADIUS", "1", "m"],
        ["EXISTS", "c"],
        ["GEORADIUS", "nokey", "0", "0", "1", "km", "STORE", "b"],
        ["EXISTS", "b"],
        ["GEOSEARCHSTORE", "a", "a", "FROMLONLAT", "15", "37", "BYRADIUS", "300", "km"],
        ["ZRANGE", "a", "0", "-1", "WITHSCORES"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_big_results_are_skiplists_like_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    points: list = []
    for i in range(300):
        points += [str(10 + (i % 20) * 0.01), str(20 + (i // 20) * 0.01), f"p{i}"]
    commands: list[list] = [
        ["GEOADD", "a", *points],
        ["GEOSEARCHSTORE", "b", "a", "FROMLONLAT", "10.1", "20.1", "BYRADIUS", "100", "km"],
        ["OBJECT", "ENCODING", "b"],
        ["ZRANGE", "b", "0", "-1", "WITHSCORES"],
        ["GEOSEARCH", "a", "FROMLONLAT", "10.1", "20.1", "BYRADIUS", "5", "km", "COUNT", "50"],
        ["GEOSEARCH", "a", "FROMLONLAT", "10.1", "20.1", "BYRADIUS", "5", "km", "DESC"],
        ["GEORADIUS", "a", "10.1", "20.1", "3", "km", "COUNT", "40", "DESC", "STORE", "c"],
        ["ZRANGE", "c", "0", "-1", "WITHSCORES"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_transactions_and_scripts(clone: ServerProcess) -> None:
    with clone.client() as client:
        client.flushall()
        pipe = client.pipeline(transaction=True)
        pipe.geoadd("a", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"])
        pipe.geodist("a", "Palermo", "Catania", "km")
        pipe.geosearchstore("b", "a", longitude=15, latitude=37, radius=200, unit="km")
        pipe.zcard("b")
        assert pipe.execute() == [2, 166.2742, 2, 2]
        script = (
            "redis.call('geoadd', KEYS[1], 2.35, 48.85, 'Paris');"
            " return redis.call('geohash', KEYS[1], 'Paris')"
        )
        assert client.eval(script, 1, "{x}p") == [b"u09tvkz5yg0"]  # redis-server's answer
        found = client.eval(
            "return redis.call('georadius', KEYS[1], 15, 37, 200, 'km', 'STORE', KEYS[2])",
            2,
            "{x}a",
            "{x}b",
        )
        assert found == 0


def test_rdb_round_trip(clone_factory: ServerPool, tmp_path: Path) -> None:
    """A geo index redis-server saved loads here and answers the same; ours loads there."""
    oracle = clone_factory.start_redis(["--dir", str(tmp_path)])
    with oracle.client() as theirs:
        theirs.execute_command(*PLACES)
        big = []
        for i in range(200):
            big += [i * 0.5 - 50, i * 0.2 - 20, f"m{i}"]
        theirs.geoadd("big", big)
        query = ["GEOSEARCH", "big", "FROMLONLAT", "0", "0", "BYRADIUS", "3000", "km", "WITHDIST"]
        expected = (
            theirs.geopos("a", "Palermo", "Tokyo"),
            theirs.execute_command(*query),
            theirs.geohash("big", "m1", "m199"),
        )
        assert theirs.save()
    oracle.stop()
    clone = clone_factory.start_clone(4, ["--dir", str(tmp_path)])
    with clone.client() as ours:
        got = (
            ours.geopos("a", "Palermo", "Tokyo"),
            ours.execute_command(*query),
            ours.geohash("big", "m1", "m199"),
        )
        assert got == expected
        ours.geoadd("a", [1, 2, "added"])
        added = ours.geopos("a", "added")
        assert ours.save()
    clone.stop()
    back = clone_factory.start_redis(["--dir", str(tmp_path)])
    with back.client() as theirs:
        assert theirs.execute_command(*query) == expected[1]
        assert theirs.geopos("a", "added") == added


def test_append_only_log_replays_every_write(clone_factory: ServerPool, tmp_path: Path) -> None:
    """GEOADD and the STORE forms across shards replay to the same sorted sets."""
    args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    server = clone_factory.start_clone(4, args)
    with server.client() as client:
        client.execute_command(*PLACES)
        client.execute_command("GEORADIUS", "a", "15", "37", "3000", "km", "STORE", "b")
        client.execute_command("GEORADIUS", "a", "15", "37", "3000", "km")
        client.execute_command("GEORADIUSBYMEMBER", "a", "Rome", "900", "km", "STOREDIST", "c")
        client.execute_command(
            "GEOSEARCHSTORE", "d", "a", "FROMLONLAT", "0", "50", "BYBOX", "900", "900", "km"
        )
        written = {key: client.zrange(key, 0, -1, withscores=True) for key in "abcd"}
    server.stop()
    server = clone_factory.start_clone(4, args)
    with server.client() as client:
        assert {key: client.zrange(key, 0, -1, withscores=True) for key in "abcd"} == written


def test_command_getkeys_like_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """The key specs' answers (Redis 7.0 lists the key after the first STORE and the first
    STOREDIST, from the sixth argument on, the fifth for GEORADIUSBYMEMBER)."""
    getkeys = ["COMMAND", "GETKEYS"]
    commands: list[list] = [
        [*getkeys, "GEORADIUS", "k", "1", "2", "3", "km", "STORE", "x", "STOREDIST", "y"],
        [*getkeys, "GEORADIUS", "k", "1", "2", "3", "km", "storedist", "y", "store", "x"],
        [*getkeys, "GEORADIUS", "k", "1", "2", "3", "km"],
        [*getkeys, "GEORADIUSBYMEMBER", "k", "m", "3", "km", "STORE", "x"],
        [*getkeys, "GEORADIUSBYMEMBER", "k", "m", "3", "STORE", "km", "x"],
        [*getkeys, "GEOSEARCHSTORE", "d", "s", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km"],
        [*getkeys, "GEORADIUS_RO", "k", "1", "2", "3", "km"],
        [*getkeys, "PFCOUNT", "a", "b", "c"],
        [*getkeys, "PFMERGE", "a", "b", "c"],
        [*getkeys, "PFDEBUG", "GETREG", "a"],
    ]
    assert_like_redis(clone, redis_server, commands)


def test_infinite_and_huge_shapes_like_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    """Where C's math gives NaN (an infinite radius, a box of 1e308 miles) Python's raises:
    the answers must still be Redis's, antipodes included."""
    antipodes = ["0", "0", "a", "180", "0", "b", "-180", "0", "c", "90", "45", "d"]
    antipodes += ["-90", "-45", "e", "0", "85", "n", "180", "-85", "s"]
    commands: list[list] = [
        ["GEOADD", "a", *antipodes],
        ["GEORADIUS", "a", "15", "37", "inf", "km", "WITHDIST"],
        ["GEOSEARCH", "a", "FROMLONLAT", "0", "0", "BYBOX", "inf", "inf", "km"],
        ["GEOSEARCH", "a", "FROMLONLAT", "0", "0", "BYRADIUS", "1e308", "mi", "COUNT", "2"],
        ["GEOSEARCH", "a", "FROMLONLAT", "0", "0", "BYBOX", "1e308", "0", "mi", "WITHDIST"],
        ["GEOSEARCH", "a", "FROMLONLAT", "0", "0", "BYBOX", "0", "1e308", "mi", "WITHDIST"],
        ["GEOSEARCH", "a", "FROMLONLAT", "0", "0", "BYRADIUS", "1e300", "km", "WITHDIST"],
        ["GEOSEARCH", "a", "FROMMEMBER", "d", "BYRADIUS", "0", "m", "WITHDIST", "WITHCOORD"],
        ["GEODIST", "a", "a", "b"],
        ["GEODIST", "a", "d", "e"],
        ["GEODIST", "a", "n", "s", "mi"],
    ]
    assert_like_redis(clone, redis_server, commands)
