"""The set commands against a real redis-server: replies byte for byte, encodings, and
atomicity across shards.

Three layers:

- :class:`Cluster` runs the handlers on four plain :class:`Shard` objects and does what the
  acceptor does for each route (a key's shard; KEYS parts and their merge; COORD checks,
  native runs on one shard, plans read/decide/write), with every value crossing ``marshal`` as
  it crosses a pipe. Fixed scenarios and hypothesis sequences must match redis-server byte for
  byte in RESP2 and RESP3, and every key's OBJECT ENCODING must match, with
  ``set-max-intset-entries`` at its default and at 4 (so conversions happen with small sets).
- Server tests run the real ``redis-clone`` at 1 and 4 shards with keys on different shards.
- The atomicity test: writers SMOVE members between two sets on different shards while readers
  SUNIONSTORE both into a third (and SUNION them), which must always hold every member; the
  same readers must catch a writer that moves with separate SREM and SADD.

Orders: where Redis's reply order is its hash table's, replies are compared as sorted lists of
members; where Redis's order is fixed (an intset iterates in ascending order), bytes must match.
"""

from __future__ import annotations

import marshal
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import redis
from conftest import RawConnection, ServerPool, ServerProcess, parse_reply, require_redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver import values
from shardserver.commands import sets
from shardserver.commands.multikey import Plan
from shardserver.commands.spec import Route, bad_arity, key_positions
from shardserver.commands.table import COMMANDS
from shardserver.errors import wrong_arity
from shardserver.resp import encoder_for
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

SHARDS = 4
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("SETS_EXAMPLES", "60")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: Keys of the scenarios and sequences: a and {a}x share shard 3, b, c and d are on 0, 1, 2.
KEY_POOL = [b"a", b"{a}x", b"b", b"c", b"d"]
#: Replies whose order is Redis's hash table's when the set is a hashtable.
UNORDERED = {b"SMEMBERS", b"SINTER", b"SUNION", b"SDIFF", b"SRANDMEMBER", b"SPOP", b"SSCAN"}


class Cluster:
    """Shards driven as the acceptor drives them, without processes or pipes."""

    def __init__(self, limit: int = 512, shards: int = SHARDS) -> None:
        self.shards = [Shard(i, {"set-max-intset-entries": limit}) for i in range(shards)]
        self.owner = shard_table(shards)
        self.config = {"set-max-intset-entries": limit}

    def shard(self, key: bytes) -> Shard:
        return self.shards[self.owner[slot_for_key(key)]]

    def _step(self, key: bytes, argv: list, ctx: int) -> object:
        [value] = self.shard(key).execute_batch([[ctx, argv]])
        return marshal.loads(marshal.dumps(value))

    def call(self, *argv: bytes, protocol: int = 2) -> bytes:
        spec = COMMANDS[argv[0].lower().decode()]
        if bad_arity(spec.arity, len(argv)):
            return wrong_arity(spec.name)
        ctx = 1 if protocol == 3 else 0
        session = SimpleNamespace(
            enc=encoder_for(protocol), server=SimpleNamespace(config=self.config)
        )
        wire: list = [spec.wire_name, *argv[1:]]
        if spec.route is Route.KEY:
            return self._step(argv[1], wire, ctx)  # type: ignore[return-value]
        if spec.check is not None:
            checked = spec.check(session, wire)
            if isinstance(checked, bytes):
                return checked
            wire = checked or wire
        positions = key_positions(spec, wire)
        by_shard: dict[int, list[int]] = {}
        for position in positions:
            by_shard.setdefault(self.owner[slot_for_key(wire[position])], []).append(position)
        if len(by_shard) == 1:
            return self._step(wire[positions[0]], wire, ctx)  # type: ignore[return-value]
        if spec.route is Route.KEYS:
            parts, layout = [], []
            for shard_positions in by_shard.values():
                part = [b"@" + spec.wire_name, *(wire[p] for p in shard_positions)]
                parts.append(self._step(wire[shard_positions[0]], part, ctx))
                layout.append([p - spec.first_key for p in shard_positions])
            return spec.merge(session, wire, parts, layout)
        assert spec.route is Route.COORD
        plan = spec.plan(session, wire)
        while True:
            results = [self._step(step.key, step.argv, ctx) for step in plan.reads]
            decision = plan.decide(results)
            if not isinstance(decision, Plan):
                break
            plan = decision
        reply, writes = decision
        for step in writes:
            self._step(step.key, step.argv, ctx)
        return reply

    def encoding(self, key: bytes) -> bytes | None:
        shard = self.shard(key)
        value = shard.dbs[0].lookup(key, shard.now)
        return None if value is None else values.encoding(value).encode()


class Oracle:
    """A real redis-server over a RESP2 and a RESP3 connection."""

    def __init__(self, port: int) -> None:
        self.connections = {2: RawConnection(port), 3: RawConnection(port)}
        self.connections[3].command("HELLO", "3")

    def call(self, *argv: bytes, protocol: int = 2) -> bytes:
        return self.connections[protocol].command(*argv)

    def reset(self, limit: int = 512) -> None:
        assert self.call(b"FLUSHALL") == b"+OK\r\n"
        assert self.call(b"CONFIG", b"SET", b"set-max-intset-entries", b"%d" % limit) == b"+OK\r\n"

    def encoding(self, key: bytes) -> bytes | None:
        reply = parse_reply(self.call(b"OBJECT", b"ENCODING", key))
        return reply if isinstance(reply, bytes) else None

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    oracle.close()


def sorted_reply(raw: bytes) -> object:
    """A reply with its members in sorted order (an SSCAN's page too)."""
    reply = parse_reply(raw)
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list):
        return [reply[0], sorted(reply[1])]
    return sorted(reply) if isinstance(reply, list) else reply


def assert_same(argv: tuple[bytes, ...], ours: bytes, theirs: bytes, ordered: bool) -> None:
    """Equal bytes; for an unordered reply from a hashtable, equal type and sorted members."""
    if ours == theirs:
        return
    name = argv[0].upper()
    assert not ordered and name in UNORDERED and ours[:1] == theirs[:1] != b"-", (
        f"{argv!r}: ours {ours!r}, redis {theirs!r}"
    )
    assert sorted_reply(ours) == sorted_reply(theirs), f"{argv!r}: ours {ours!r}, redis {theirs!r}"


def in_fixed_order(oracle: Oracle, argv: tuple[bytes, ...]) -> bool:
    """Whether Redis's reply to ``argv`` (just run) came in a fixed order, asking the oracle
    how the sets involved are encoded: an intset iterates in ascending order. SINTER iterates
    its smallest set; SUNION and SDIFF iterate their result, encoded as the STORE form would
    encode it; SPOP's order is taken as a hash table's."""
    name = argv[0].upper()
    if name not in UNORDERED or name == b"SPOP":
        return name != b"SPOP"
    if name in (b"SMEMBERS", b"SSCAN", b"SRANDMEMBER"):
        return oracle.encoding(argv[1]) == b"intset"
    if name == b"SINTER":
        sizes = [parse_reply(oracle.call(b"SCARD", key)) for key in argv[1:]]
        if not all(isinstance(size, int) for size in sizes) or min(sizes) == 0:
            return True  # an error, or an empty reply
        smallest = {key for key, size in zip(argv[1:], sizes, strict=True) if size == min(sizes)}
        return all(oracle.encoding(key) == b"intset" for key in smallest)
    store = b"SUNIONSTORE" if name == b"SUNION" else b"SDIFFSTORE"
    oracle.call(store, b"probe-key", *argv[1:])
    fixed = oracle.encoding(b"probe-key") in (b"intset", None)
    oracle.call(b"DEL", b"probe-key")
    return fixed


def run_script(
    oracle: Oracle,
    script: list[tuple[bytes, ...]],
    protocol: int,
    limit: int = 512,
    shards: int = SHARDS,
) -> Cluster:
    """Run a script on a fresh Cluster and the flushed oracle, comparing every reply and, at
    the end, every key's encoding."""
    oracle.reset(limit)
    cluster = Cluster(limit, shards)
    for argv in script:
        theirs = oracle.call(*argv, protocol=protocol)
        ordered = in_fixed_order(oracle, argv)
        assert_same(argv, cluster.call(*argv, protocol=protocol), theirs, ordered)
    for key in KEY_POOL:
        assert cluster.encoding(key) == oracle.encoding(key), key
    return cluster


def script(text: str) -> list[tuple[bytes, ...]]:
    r"""Commands one a line, arguments split on spaces; ``\s`` stands for a space."""
    return [
        tuple(arg.replace("\\s", " ").encode() for arg in line.split())
        for line in text.strip().splitlines()
    ]


SCENARIOS = {
    "single-key commands": """
        SADD a 3 1 2 2
        SADD a 4 1
        SCARD a
        SISMEMBER a 1
        SISMEMBER a 9
        SISMEMBER nokey 1
        SMISMEMBER a 1 9 4 1
        SMISMEMBER nokey 1 2
        SMEMBERS a
        SMEMBERS nokey
        SCARD nokey
        SREM a 9 1 1
        SREM nokey 1
        SREM a 2 3 4
        SCARD a
        SMEMBERS a
        SET b x
        SADD b 1
        SREM b 1
        SCARD b
        SISMEMBER b 1
        SMISMEMBER b 1
        SMEMBERS b
        TYPE b
        SADD c x 1 y
        TYPE c
        SREM c x y
        SMEMBERS c
        SADD d -9223372036854775808 9223372036854775807 -1 0 10
        SMEMBERS d
        SADD {a}x 01 -0 +1
    """,
    "SPOP and SRANDMEMBER: errors and the forms that are not random": """
        SADD a 5 3 1
        SET b x
        SPOP a 1 2
        SPOP nokey x
        SPOP nokey -1
        SPOP b -1
        SPOP b 0
        SPOP b
        SPOP a 0
        SPOP nokey 0
        SPOP nokey
        SPOP nokey 3
        SRANDMEMBER a 1 2
        SRANDMEMBER nokey x
        SRANDMEMBER b x
        SRANDMEMBER b 0
        SRANDMEMBER b
        SRANDMEMBER a -9223372036854775808
        SRANDMEMBER b -9223372036854775808
        SRANDMEMBER a 9223372036854775807
        SRANDMEMBER a 3
        SRANDMEMBER a 0
        SRANDMEMBER nokey
        SRANDMEMBER nokey 5
        SRANDMEMBER nokey -5
        SADD c only
        SRANDMEMBER c
        SRANDMEMBER c -3
        SRANDMEMBER c 1
        SPOP c
        EXISTS c
        SPOP a 3
        EXISTS a
        SADD d 7
        SPOP d 1
        EXISTS d
    """,
    "SMOVE on one shard and across shards": """
        SADD a 1 2 3
        SET b str
        SMOVE nokey b 1
        SMOVE b nokey 1
        SMOVE a b 1
        SMOVE a b 9
        SMOVE b b 1
        SMOVE nokey nokey 1
        SMOVE a a 1
        SMOVE a a 9
        SMOVE a {a}x 1
        SMOVE a {a}x 9
        SMEMBERS {a}x
        SMOVE a c 2
        SMOVE a c 2
        SMOVE a c 3
        EXISTS a
        SMEMBERS c
        SADD d x
        SMOVE c d 2
        SMOVE {a}x d 1
        EXISTS {a}x
        SMOVE d c x
        SMEMBERS c
        SET {a}x str
        SMOVE {a}nokey {a}x 1
        SMOVE {a}x {a}nokey 1
        SADD a 5
        SMOVE a {a}x 5
    """,
    "SINTER, SUNION, SDIFF across shards": """
        SADD a 1 2 3 4 5
        SADD b 4 5 6
        SADD c 5 4 10 -3
        SADD {a}x 5 2
        SET d str
        SINTER a b c
        SINTER a {a}x
        SINTER a b nokey
        SINTER nokey d
        SINTER d nokey
        SINTER a b d
        SINTER b nokey d
        SINTER d b
        SINTER a
        SINTER a a
        SUNION a b c {a}x
        SUNION a {a}x
        SUNION nokey
        SUNION a nokey d
        SUNION d a
        SDIFF a b c
        SDIFF a {a}x
        SDIFF nokey a
        SDIFF a nokey
        SDIFF a a
        SDIFF a b d
        SDIFF nokey d
        SADD b x y
        SINTER b c
        SUNION a b
        SDIFF b a
    """,
    "STORE forms: destinations, deadlines, empty results": """
        SADD a 1 2 3
        SADD b 3 4
        SET c str
        EXPIRE c 1000
        SUNIONSTORE c a b
        TTL c
        SMEMBERS c
        SINTERSTORE d a b
        SMEMBERS d
        SDIFFSTORE {a}x a b
        SMEMBERS {a}x
        SINTERSTORE d a nokey
        EXISTS d
        SDIFFSTORE a a a
        EXISTS a
        SUNIONSTORE a nokey
        SADD a 1
        SUNIONSTORE a a b
        SMEMBERS a
        SUNIONSTORE d a c
        SET d str
        SUNIONSTORE c d a
        SINTERSTORE c d nokey
        SDIFFSTORE c nokey d
        TYPE d
        SUNIONSTORE d a
        TYPE d
        SDIFFSTORE b b nokey
        SMEMBERS b
    """,
    "SINTERCARD": """
        SADD a 1 2 3 4
        SADD b 2 3 4 5
        SADD {a}x 3 4
        SET c str
        SINTERCARD 0 a
        SINTERCARD x a
        SINTERCARD -1 a
        SINTERCARD 3 a b
        SINTERCARD 1 a LIMIT -1
        SINTERCARD 1 a LIMIT x
        SINTERCARD 1 a LIMIT
        SINTERCARD 1 a foo
        SINTERCARD 1 c LIMIT x
        SINTERCARD 2 a c
        SINTERCARD 2 nokey c
        SINTERCARD 1 a
        SINTERCARD 2 a b
        SINTERCARD 2 a {a}x
        SINTERCARD 3 a b {a}x LIMIT 1
        SINTERCARD 2 a b LIMIT 0 LIMIT 2
        SINTERCARD 2 a b limit 10
        SINTERCARD 2 a nokey
        SINTERCARD 2 a a
    """,
    "SSCAN": """
        SADD a 3 1 2
        SADD b x y z 1
        SET c str
        SSCAN a x
        SSCAN c x
        SSCAN nokey x
        SSCAN c 0
        SSCAN c 0 COUNT 0
        SSCAN nokey 0 COUNT 0
        SSCAN a 0 COUNT 0
        SSCAN a 0 COUNT x
        SSCAN a 0 MATCH
        SSCAN a 0 foo bar
        SSCAN a 0
        SSCAN a 0 COUNT 1
        SSCAN a 0 MATCH 2*
        SSCAN a 7
        SSCAN a -1
        SSCAN a 18446744073709551615
        SSCAN a 18446744073709551616
        SSCAN b 0 COUNT 100
        SSCAN b 0 MATCH [xy] COUNT 100
        SSCAN b 0 TYPE set
    """,
    "expiry": """
        SADD a 1 2
        EXPIRE a 1000
        SADD a 3
        SREM a 1
        TTL a
        SMOVE a b 2
        TTL a
        SPOP a
        TTL a
        SADD c 1
        EXPIRE c -1
        SMEMBERS c
        SADD c 2
        TTL c
        SADD d 5
        PEXPIREAT d 1
        SCARD d
        SUNIONSTORE e d c
    """,
}


#: The plans' own threshold (the tests below also run them with none).
DEFAULT_INLINE = sets.INLINE_MEMBERS


#: (shards, plans' inline threshold): one shard runs every command natively; four run the
#: plans as they are, and with no set small enough to come back whole from a first read, so
#: that every round of the SINTER and SDIFF plans runs even with small sets.
LAYOUTS = [(1, DEFAULT_INLINE), (SHARDS, DEFAULT_INLINE), (SHARDS, 0)]


@pytest.mark.parametrize(("shards", "inline"), LAYOUTS, ids=["native", "plans", "all-rounds"])
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_match_redis(
    oracle: Oracle,
    name: str,
    protocol: int,
    shards: int,
    inline: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sets, "INLINE_MEMBERS", inline)
    run_script(oracle, script(SCENARIOS[name]), protocol, shards=shards)


ENCODINGS = {
    "SADD converts past the limit or at a string, and stays converted": """
        SADD a 1 2 3 4
        SADD b 1 2 3 4 5
        SADD c 1 x
        SREM c x
        SADD d 1 2 3 4 5
        SREM d 5 4 3
    """,
    "SMOVE creates the destination by the member": """
        SADD a 1 x 2
        SMOVE a b 1
        SMOVE a c x
        SADD d 1 2 3 4
        SMOVE a d 2
    """,
    "STORE results are built from their members": """
        SADD a 1 2 3 x
        SADD b x
        SINTERSTORE c a a
        SREM a x
        SUNIONSTORE d a
        SINTERSTORE {a}x a b
        SADD b 1 2 3 4 5
        SUNIONSTORE c b
    """,
    "SDIFFSTORE by Redis's two algorithms": """
        SADD a 1 2 3 x
        SADD b x
        SADD c 9
        SADD d 8
        SDIFFSTORE {a}x a b
        SDIFFSTORE c a b c d
        SMEMBERS c
        SADD b 10 11 12 13 14 15 16 17 18 19 20 21
        SDIFFSTORE d a b
        SDIFFSTORE b a d d d d
    """,
    "SPOP of the whole set, and SMEMBERS in intset order": """
        SADD a 9 1 5 7
        SMEMBERS a
        SADD b 9 1 5 7 3
        SMEMBERS b
        SPOP a 10
        SPOP b 5
        SADD c 3 2 1 x
        SREM c x
        SPOP c 3
    """,
}


@pytest.mark.parametrize(("shards", "inline"), LAYOUTS, ids=["native", "plans", "all-rounds"])
@pytest.mark.parametrize("name", list(ENCODINGS))
def test_encodings_match_redis(
    oracle: Oracle, name: str, shards: int, inline: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OBJECT ENCODING at every step, with ``set-max-intset-entries`` 4."""
    monkeypatch.setattr(sets, "INLINE_MEMBERS", inline)
    oracle.reset(4)
    cluster = Cluster(4, shards)
    for argv in script(ENCODINGS[name]):
        theirs = oracle.call(*argv)
        assert_same(argv, cluster.call(*argv), theirs, in_fixed_order(oracle, argv))
        for key in KEY_POOL:
            assert cluster.encoding(key) == oracle.encoding(key), (argv, key)


def test_default_limit_is_512(oracle: Oracle) -> None:
    """Sets past INLINE_MEMBERS on different shards: the plans' every round, the limit, and
    the intset orders."""
    numbers = [b"%d" % i for i in range(-300, 213)]  # 513 integers
    oracle.reset(512)
    cluster = Cluster(512)
    for target in (oracle, cluster):
        target.call(b"SADD", b"a", *numbers[:512])
        target.call(b"SADD", b"b", *numbers)
        target.call(b"SUNIONSTORE", b"c", b"a", b"b")
        target.call(b"SINTERSTORE", b"d", b"a", b"b")
    for key in (b"a", b"b", b"c", b"d"):
        assert cluster.encoding(key) == oracle.encoding(key), key
    for argv in [(b"SMEMBERS", b"d"), (b"SINTER", b"b", b"a"), (b"SDIFF", b"a", b"c", b"b")]:
        assert cluster.call(*argv) == oracle.call(*argv), argv  # ascending: intsets
    for argv in [(b"SDIFF", b"b", b"a"), (b"SINTERCARD", b"2", b"b", b"a", b"LIMIT", b"100")]:
        assert cluster.call(*argv) == oracle.call(*argv), argv


@pytest.mark.parametrize("protocol", [2, 3])
def test_whole_set_pops_come_in_intset_order(oracle: Oracle, protocol: int) -> None:
    """SPOP of at least the whole set answers as SUNION of it would: ascending when the
    members make an intset (even from a hashtable set), else in hash-table order."""
    oracle.reset(4)
    cluster = Cluster(4)
    script_ = script("""
        SADD a 9 -3 5 1
        SPOP a 4
        SADD a 9 -3 x 1
        SREM a x
        SPOP a 100
        SADD a 9 -3 5 1 7
        SPOP a 5
    """)
    for argv in script_:
        theirs = oracle.call(*argv, protocol=protocol)
        ordered = argv[0] != b"SPOP" or argv[2] != b"5"  # five members: not an intset
        assert_same(argv, cluster.call(*argv, protocol=protocol), theirs, ordered)


# -- generated sequences against Redis --------------------------------------------------------

MEMBERS = st.sampled_from(
    [b"1", b"2", b"3", b"10", b"-5", b"0", b"a", b"b", b"", b"01", b"\x00", b"x y"]
)


@st.composite
def sequences(draw: st.DrawFn) -> list[tuple[bytes, ...]]:
    """Deterministic set commands (SPOP only of the whole set) with a few others, over keys
    of mixed types on every shard."""

    def key() -> bytes:
        return draw(st.sampled_from([*KEY_POOL, b"nokey"]))

    def keys(minimum: int = 1) -> list[bytes]:
        return draw(st.lists(st.sampled_from(KEY_POOL), min_size=minimum, max_size=4))

    def some_members(minimum: int = 1) -> list[bytes]:
        return draw(st.lists(MEMBERS, min_size=minimum, max_size=6))

    commands: list[tuple[bytes, ...]] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(
            st.sampled_from(
                ["sadd"] * 6
                + ["srem"] * 2
                + ["scard", "sismember", "smismember", "smembers", "smembers"]
                + ["sinter", "sunion", "sdiff", "sintercard", "store", "store", "smove"]
                + ["spop", "srandmember", "sscan", "set", "del", "expire", "type"]
            )
        )
        if kind == "sadd":
            argv = [b"SADD", key(), *some_members()]
        elif kind in ("srem", "smismember"):
            argv = [kind.upper().encode(), key(), *some_members()]
        elif kind in ("scard", "smembers", "type", "del"):
            argv = [kind.upper().encode(), key()]
        elif kind == "sismember":
            argv = [b"SISMEMBER", key(), draw(MEMBERS)]
        elif kind in ("sinter", "sunion", "sdiff"):
            argv = [kind.upper().encode(), *keys()]
        elif kind == "sintercard":
            chosen = keys()
            argv = [b"SINTERCARD", b"%d" % len(chosen), *chosen]
            if draw(st.booleans()):
                argv += [b"LIMIT", draw(st.sampled_from([b"0", b"1", b"2", b"-1", b"x"]))]
        elif kind == "store":
            name = draw(st.sampled_from([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"]))
            argv = [name, key(), *keys()]
        elif kind == "smove":
            argv = [b"SMOVE", key(), key(), draw(MEMBERS)]
        elif kind == "spop":
            argv = [b"SPOP", key(), draw(st.sampled_from([b"100", b"0", b"-1", b"x"]))]
        elif kind == "srandmember":
            argv = [b"SRANDMEMBER", key(), draw(st.sampled_from([b"100", b"0", b"x"]))]
        elif kind == "sscan":
            argv = [b"SSCAN", key(), b"0", b"COUNT", b"100"]
            if draw(st.booleans()):
                argv += [b"MATCH", draw(st.sampled_from([b"*", b"1*", b"[ab]", b"?"]))]
        elif kind == "set":
            argv = [b"SET", key(), draw(MEMBERS)]
        else:
            argv = [b"EXPIRE", key(), draw(st.sampled_from([b"-1", b"1000"]))]
        commands.append(tuple(argv))
    return commands


@HYPOTHESIS
@given(
    commands=sequences(),
    protocol=st.sampled_from([2, 3]),
    limit=st.sampled_from([2, 4, 512]),
    shards=st.sampled_from([1, SHARDS]),
    inline=st.sampled_from([DEFAULT_INLINE, 0, 2]),
)
def test_sequences_match_redis(
    oracle: Oracle,
    commands: list[tuple[bytes, ...]],
    protocol: int,
    limit: int,
    shards: int,
    inline: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Generated sequences; ``inline`` 0 or 2 makes the plans take all their rounds."""
    monkeypatch.setattr(sets, "INLINE_MEMBERS", inline)
    cluster = run_script(oracle, commands, protocol, limit, shards)
    for key in KEY_POOL:
        argv = (b"SMEMBERS", key)
        assert_same(argv, cluster.call(*argv), oracle.call(*argv), ordered=False)


# -- the real server, keys on different shards --------------------------------------------------


def test_commands_across_shards_match_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    """The scenarios over the real server at 1 and 4 shards, in RESP2 and RESP3."""
    commands = [
        argv for name in ("SINTER, SUNION, SDIFF across shards", "SMOVE on one shard and "
        "across shards", "STORE forms: destinations, deadlines, empty results", "SINTERCARD")
        for argv in script(SCENARIOS[name])
    ]  # fmt: skip
    for protocol in (2, 3):
        replies = []
        for server in (redis_server, clone):
            with server.raw() as conn:
                if protocol == 3:
                    conn.command(b"HELLO", b"3")
                conn.command(b"FLUSHALL")
                replies.append([conn.command(*argv) for argv in commands])
        for argv, theirs, ours in zip(commands, *replies, strict=True):
            assert_same(argv, ours, theirs, ordered=False)


def test_big_sets_across_shards(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """Sets past the intset limit, combined across shards, and SSCAN walked to its end."""
    results = []
    for server in (redis_server, clone):
        client = server.client()
        client.flushall()
        client.sadd("b", *range(0, 3000, 2))
        client.sadd("c", *range(0, 3000, 3), "x")
        client.sadd("d", *range(600))
        got = [
            client.sunionstore("a", "b", "c", "d"),
            client.sintercard(3, ["b", "c", "d"], limit=50),
            sorted(client.sinter("b", "c", "d")),
            sorted(client.sdiff("c", "b", "d")),
            client.sdiffstore("{a}x", "c", "b"),
            client.smove("d", "c", "599"),
            client.smove("c", "d", "x"),
            len(client.spop("a", 2500)),
            client.scard("a"),
            sorted(client.smembers("d")) == sorted(set(client.sscan_iter("d", count=50))),
        ]
        results.append(got)
        client.close()
    assert results[0] == results[1]


# -- atomicity ----------------------------------------------------------------------------------


def keys_on_shards(prefix: str, count: int) -> list[bytes]:
    """``count`` keys without hash tags on different shards of a 4-shard server."""
    table = shard_table(SHARDS)
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < count:
        key = f"{prefix}:{i}".encode()
        found.setdefault(table[slot_for_key(key)], key)
        i += 1
    return list(found.values())


LEFT, RIGHT, *DESTINATIONS = keys_on_shards("sets-atom", 4)
MEMBER_COUNT = 40
RUN_S = 2.0
CATCH_DEADLINE_S = 15.0


@dataclass
class Outcome:
    moves: int = 0
    reads: int = 0
    sizes: set[int] = field(default_factory=set)
    #: Torn reads by the command that saw them: SUNIONSTORE (with the SCARD of what it
    #: stored), and SUNION.
    violations: dict[str, list[str]] = field(
        default_factory=lambda: {"SUNIONSTORE": [], "SUNION": []}
    )
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def atomic_move(client: redis.Redis, rng: random.Random) -> bool:
    member = rng.randrange(MEMBER_COUNT)
    source, target = (LEFT, RIGHT) if rng.random() < 0.5 else (RIGHT, LEFT)
    return bool(client.smove(source, target, member))


def torn_move(client: redis.Redis, rng: random.Random) -> bool:
    """SMOVE done as SREM, then SADD: a moment when the member is in neither set."""
    member = rng.randrange(MEMBER_COUNT)
    source, target = (LEFT, RIGHT) if rng.random() < 0.5 else (RIGHT, LEFT)
    if client.srem(source, member):
        client.sadd(target, member)
        return True
    return False


def hammer(server: ServerProcess, move, duration: float, until_caught: bool) -> Outcome:
    """One writer moves members between LEFT and RIGHT; four readers SUNIONSTORE both into a
    destination (two share one), check the count and the SCARD of what was stored, and
    SUNION them; every one must find all MEMBER_COUNT members. With ``until_caught``
    everyone stops once both commands have seen a torn state."""
    outcome = Outcome()
    stop = threading.Event()
    deadline = time.monotonic() + duration

    def write() -> None:
        rng = random.Random(7)
        with server.client() as client:
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    if move(client, rng):
                        with outcome.lock:
                            outcome.moves += 1
            except Exception as exc:  # reported by the test
                outcome.errors.append(f"writer: {exc!r}")

    def read(destination: bytes) -> None:
        with server.client() as client:
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    stored = client.sunionstore(destination, [LEFT, RIGHT])
                    card = client.scard(destination)
                    union = len(client.sunion(LEFT, RIGHT))
                    size = client.scard(LEFT)
                    with outcome.lock:
                        outcome.reads += 1
                        outcome.sizes.add(size)
                        if (stored, card) != (MEMBER_COUNT, MEMBER_COUNT):
                            outcome.violations["SUNIONSTORE"].append(f"{stored}, scard {card}")
                        if union != MEMBER_COUNT:
                            outcome.violations["SUNION"].append(f"{union} members")
                        caught = all(outcome.violations.values())
                    if caught and until_caught:
                        stop.set()
            except Exception as exc:  # reported by the test
                outcome.errors.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=write)]
    threads += [threading.Thread(target=read, args=(key,)) for key in DESTINATIONS]
    threads.append(threading.Thread(target=read, args=(DESTINATIONS[0],)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
        assert not thread.is_alive(), "a client thread is stuck: the server stopped answering"
    return outcome


@pytest.fixture(scope="module")
def four_shards(module_servers: ServerPool) -> ServerProcess:
    server = module_servers.clone(SHARDS)
    with server.client() as client:
        client.delete(LEFT, RIGHT, *DESTINATIONS)
        client.sadd(LEFT, *range(MEMBER_COUNT))
    return server


def test_atomicity_keys_are_on_different_shards() -> None:
    table = shard_table(SHARDS)
    assert len({table[slot_for_key(key)] for key in (LEFT, RIGHT, *DESTINATIONS)}) == 4


def test_sunionstore_never_sees_a_torn_smove(four_shards: ServerProcess) -> None:
    """Cross-shard SMOVE against cross-shard SUNIONSTORE and SUNION: never a member short."""
    outcome = hammer(four_shards, atomic_move, RUN_S, until_caught=False)
    assert not outcome.errors, outcome.errors
    assert not any(outcome.violations.values()), outcome.violations
    assert outcome.moves >= 20 and outcome.reads >= 20, outcome
    assert len(outcome.sizes) >= 3, f"readers saw LEFT at too few sizes: {outcome.sizes}"


def test_checker_catches_a_non_atomic_move(four_shards: ServerProcess) -> None:
    """Both checks (SUNIONSTORE's and SUNION's) catch a move done as SREM then SADD."""
    outcome = hammer(four_shards, torn_move, CATCH_DEADLINE_S, until_caught=True)
    assert not outcome.errors, outcome.errors
    assert all(outcome.violations.values()), (
        f"torn reads {outcome.violations} in {outcome.reads} reads and {outcome.moves} "
        "separate moves: a checker cannot tell atomic from torn"
    )
    with four_shards.client() as client:  # a torn move interrupted mid-way: put it right
        client.sadd(LEFT, *range(MEMBER_COUNT))
        client.srem(RIGHT, *range(MEMBER_COUNT))
