"""Differential tests of HyperLogLog and geo: random command sequences against redis-clone
(at 1 and 4 shards) and a real redis-server, every reply compared byte for byte.

Hypothesis builds sequences over four keys on four different shards of a 4-shard server and
a hash-tagged pair, so PFCOUNT of several keys, PFMERGE and the geo STORE forms take both
their native and their coordinated paths. HLL sequences add elements in batches that keep
HLLs sparse or turn them dense (``hll-sparse-max-bytes`` at 3000 or 200), count, merge, GET
the raw bytes (which must be redis-server's, cached count included) and SET them back, and
sometimes corrupt them. Geo sequences add points scattered at several scales around a few
centres (some at the same spot, so distances tie), then search with every shape and option.
Each sequence runs in RESP2 or RESP3.
"""

from __future__ import annotations

import os

from conftest import RawConnection, ServerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.slots import shard_table, slot_for_key

SETTINGS = settings(
    max_examples=int(os.environ.get("HLL_GEO_EXAMPLES", "30")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = [b"a", b"b", b"c", b"d", b"{t}1", b"{t}2"]
UNITS = [b"m", b"km", b"mi", b"ft", b"KM"]


def test_key_pool_spans_shards() -> None:
    table = shard_table(4)
    shards = [table[slot_for_key(key)] for key in KEYS]
    assert len(set(shards[:4])) == 4 and shards[4] == shards[5]


def _number(value: float) -> bytes:
    return b"%.6f" % value


# -- HyperLogLog ------------------------------------------------------------------------------


@st.composite
def hll_command(draw: st.DrawFn) -> list[bytes]:
    key = st.sampled_from(KEYS)
    kind = draw(
        st.sampled_from(
            ["pfadd"] * 5 + ["bulk"] * 2 + ["pfcount"] * 3 + ["pfmerge"] * 2 + ["get", "set"]
            + ["debug", "corrupt", "del", "string"]
        )
    )  # fmt: skip
    if kind == "pfadd":
        elements = draw(st.lists(st.binary(max_size=20), max_size=6))  # every hash tail
        return [b"PFADD", draw(key), *elements]
    if kind == "bulk":
        start = draw(st.integers(0, 10**6))
        size = draw(st.sampled_from([50, 300, 1200, 3000]))
        return [b"PFADD", draw(key), *(b"%d" % i for i in range(start, start + size))]
    if kind == "pfcount":
        return [b"PFCOUNT", *draw(st.lists(key, min_size=1, max_size=4))]
    if kind == "pfmerge":
        return [b"PFMERGE", draw(key), *draw(st.lists(key, max_size=3))]
    if kind == "get":
        return [b"GET", draw(key)]
    if kind == "set":  # the raw bytes of another key, through the client (see run_sequence)
        return [b"@copy", draw(key), draw(key)]
    if kind == "debug":
        word = draw(st.sampled_from([b"ENCODING", b"DECODE", b"TODENSE", b"getreg", b"x"]))
        return [b"PFDEBUG", word, draw(key)]
    if kind == "corrupt":
        tail = draw(st.binary(min_size=1, max_size=8))
        return [
            b"SET",
            draw(key),
            b"HYLL" + draw(st.sampled_from([b"\x00", b"\x01"])) + bytes(11) + tail,
        ]
    if kind == "del":
        return [b"DEL", draw(key)]
    return [b"SET", draw(key), b"plain"]


# -- geo --------------------------------------------------------------------------------------

CENTRES = [(13.36, 38.11), (-0.12, 51.5), (179.95, 0.0), (0.0, 84.9), (-73.98, 40.75)]


@st.composite
def point(draw: st.DrawFn) -> tuple[bytes, bytes]:
    lon, lat = draw(st.sampled_from(CENTRES))
    scale = draw(st.sampled_from([0.0, 0.001, 0.1, 2.0]))
    lon += draw(st.floats(-1, 1)) * scale
    lat += draw(st.floats(-1, 1)) * scale
    return _number(max(-180, min(180, lon))), _number(max(-85.05, min(85.05, lat)))


@st.composite
def search_options(draw: st.DrawFn, store: bool) -> list[bytes]:
    options: list[bytes] = []
    if not store:
        for word in (b"WITHDIST", b"WITHCOORD", b"WITHHASH"):
            if draw(st.booleans()):
                options.append(word)
    order = draw(st.sampled_from([b"", b"ASC", b"DESC"]))
    if order:
        options.append(order)
    count = draw(st.sampled_from([0, 0, 1, 2, 3, 7, 50]))
    if count:
        options += [b"COUNT", b"%d" % count]
        if draw(st.booleans()):
            options.append(b"ANY")
    return options


@st.composite
def geo_command(draw: st.DrawFn, members: list[bytes]) -> list[bytes]:
    key = st.sampled_from(KEYS[:4])
    member = st.sampled_from(members)
    unit = st.sampled_from(UNITS)
    radius = st.sampled_from([b"0", b"1", b"50", b"400", b"3000", b"9000", b"inf", b"1e308"])
    kind = draw(
        st.sampled_from(
            ["geoadd"] * 3 + ["georadius", "bymember", "search", "searchbox", "store"] * 2
            + ["geopos", "geodist", "geohash", "zrange"]
        )
    )  # fmt: skip
    if kind == "geoadd":
        command = [b"GEOADD", draw(key)]
        command += draw(st.lists(st.sampled_from([b"NX", b"XX", b"CH"]), max_size=1))
        for _ in range(draw(st.integers(1, 8))):
            command += [*draw(point()), draw(member)]
        return command
    if kind == "georadius":
        name = draw(st.sampled_from([b"GEORADIUS", b"GEORADIUS_RO"]))
        return [
            name,
            draw(key),
            *draw(point()),
            draw(radius),
            draw(unit),
            *draw(search_options(False)),
        ]
    if kind == "bymember":
        name = draw(st.sampled_from([b"GEORADIUSBYMEMBER", b"GEORADIUSBYMEMBER_RO"]))
        return [
            name,
            draw(key),
            draw(member),
            draw(radius),
            draw(unit),
            *draw(search_options(False)),
        ]
    if kind in ("search", "searchbox"):
        origin = (
            [b"FROMLONLAT", *draw(point())]
            if draw(st.booleans())
            else [b"FROMMEMBER", draw(member)]
        )
        if kind == "search":
            shape = [b"BYRADIUS", draw(radius), draw(unit)]
        else:
            shape = [b"BYBOX", draw(radius), draw(radius), draw(unit)]
        return [b"GEOSEARCH", draw(key), *origin, *shape, *draw(search_options(False))]
    if kind == "store":
        options = draw(search_options(True))
        if draw(st.booleans()):
            return [
                b"GEOSEARCHSTORE", draw(key), draw(key), b"FROMLONLAT", *draw(point()),
                b"BYRADIUS", draw(radius), draw(unit), *options,
                *draw(st.sampled_from([[], [b"STOREDIST"]])),
            ]  # fmt: skip
        return [
            b"GEORADIUS", draw(key), *draw(point()), draw(radius), draw(unit), *options,
            draw(st.sampled_from([b"STORE", b"STOREDIST"])), draw(key),
        ]  # fmt: skip
    if kind == "geopos":
        return [b"GEOPOS", draw(key), *draw(st.lists(member, max_size=3))]
    if kind == "geodist":
        return [b"GEODIST", draw(key), draw(member), draw(member), draw(unit)]
    if kind == "geohash":
        return [b"GEOHASH", draw(key), *draw(st.lists(member, max_size=3))]
    return [b"ZRANGE", draw(key), b"0", b"-1", b"WITHSCORES"]


MEMBERS = [b"m%d" % i for i in range(12)]


def run_sequence(
    server: ServerProcess, setup: list[list[bytes]], sequence: list[list[bytes]], resp: int
) -> list[bytes]:
    """FLUSHALL, the setup, then each command; ``@copy dst src`` SETs dst to what GET src
    answered on the same server (a missing src copies nothing)."""
    with RawConnection(server.port, timeout=30.0) as conn:
        conn.command("HELLO", resp)
        conn.command("FLUSHALL")
        for command in setup:
            conn.command(*command)
        replies = []
        for command in sequence:
            if command[0] == b"@copy":
                raw = conn.command("GET", command[2])
                if raw.startswith(b"$") and not raw.startswith(b"$-1"):
                    body = raw[raw.index(b"\r\n") + 2 : -2]
                    replies.append(conn.command("SET", command[1], body))
                else:
                    replies.append(raw)
                continue
            replies.append(conn.command(*command))
        return replies


def _compare(
    clone: ServerProcess, oracle: ServerProcess, setup: list, sequence: list, resp: int
) -> None:
    theirs = run_sequence(oracle, setup, sequence, resp)
    ours = run_sequence(clone, setup, sequence, resp)
    for i, (command, want, got) in enumerate(zip(sequence, theirs, ours, strict=True)):
        assert got == want, (i, command)


@SETTINGS
@given(
    sparse_max=st.sampled_from([b"3000", b"200"]),
    resp=st.sampled_from([2, 3]),
    sequence=st.lists(hll_command(), min_size=1, max_size=25),
)
def test_hll_sequences_like_redis(
    clone: ServerProcess, redis_server: ServerProcess, sparse_max: bytes, resp: int, sequence: list
) -> None:
    setup = [[b"CONFIG", b"SET", b"hll-sparse-max-bytes", sparse_max]]
    try:
        _compare(clone, redis_server, setup, sequence, resp)
    finally:  # the servers are shared with other modules: leave Redis's default
        for server in (clone, redis_server):
            with server.client() as client:
                client.config_set("hll-sparse-max-bytes", "3000")


@SETTINGS
@given(
    resp=st.sampled_from([2, 3]),
    sequence=st.lists(geo_command(MEMBERS), min_size=1, max_size=30),
)
def test_geo_sequences_like_redis(
    clone: ServerProcess, redis_server: ServerProcess, resp: int, sequence: list
) -> None:
    _compare(clone, redis_server, [], sequence, resp)


# -- any arguments ------------------------------------------------------------------------

WORDS = [b"m", b"km", b"ft", b"mi", b"x", b"inf", b"nan", b"0", b"1", b"-1", b"180", b"-180"]
WORDS += [b"85.05112878", b"200", b"1e308", b"STORE", b"STOREDIST", b"WITHDIST", b"WITHHASH"]
WORDS += [b"WITHCOORD", b"COUNT", b"ANY", b"ASC", b"DESC", b"FROMMEMBER", b"FROMLONLAT"]
WORDS += [b"BYRADIUS", b"BYBOX", b"NX", b"XX", b"CH", b"GETREG", b"DECODE", b"ENCODING"]
WORDS += [b"TODENSE", b"3.5", b"", b"\x00", *KEYS[:4], b"m1", b"m2"]
NAMES = [b"GEOADD", b"GEODIST", b"GEOHASH", b"GEOPOS", b"GEOSEARCH", b"GEOSEARCHSTORE"]
NAMES += [b"GEORADIUS", b"GEORADIUS_RO", b"GEORADIUSBYMEMBER", b"GEORADIUSBYMEMBER_RO"]
NAMES += [b"PFADD", b"PFCOUNT", b"PFMERGE", b"PFDEBUG"]
#: A geo index, an HLL, a string and a list, on four shards.
TYPED = [
    [b"GEOADD", b"a", b"0", b"0", b"m1", b"10", b"10", b"m2", b"179", b"85", b"m3"],
    [b"PFADD", b"b", b"x"],
    [b"SET", b"c", b"plain"],
    [b"RPUSH", b"d", b"1"],
]


@SETTINGS
@given(
    sequence=st.lists(
        st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(WORDS), max_size=10)).map(
            lambda drawn: [drawn[0], *drawn[1]]
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_arguments_like_redis(
    clone: ServerProcess, redis_server: ServerProcess, sequence: list
) -> None:
    """Commands of both families with arguments drawn from their own words, in any order
    and number: errors in Redis's order, and no shard ever answers an internal error."""
    _compare(clone, redis_server, TYPED, sequence, 2)
