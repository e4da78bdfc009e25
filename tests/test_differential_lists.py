"""Differential tests of the list family: random command sequences against redis-clone and a
real redis-server, every reply byte for byte.

Hypothesis draws sequences of every list command (often malformed: an argument dropped,
added or replaced by garbage) mixed with SET, DEL, TYPE, EXISTS and expiries, over six keys:
``a``, ``b``, ``c`` and ``d`` lie on the four shards of a 4-shard server, ``{a}x`` and
``{b}y`` share a shard with ``a`` and ``b``, so LMOVE, RPOPLPUSH and LMPOP run both
coordinated and natively; strings among the lists give WRONGTYPE, pops and trims empty lists
(which must be gone), and expiries remove keys. After the sequence, every key's type,
elements and TTL are read back.

Configurations: 1 and 4 shards one command at a time, where an expiry may be ``PEXPIRE k 1``
followed by a pause of a few milliseconds (so the key expires on its next lookup, on both
servers); and 4 shards pipelined (the whole sequence in one write: coordinated commands must
keep request order), where the expiry is an absolute time already past, which deletes at
once. Equal bytes are required except for TTL, which may differ by the clock's progress.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import RawConnection, ServerPool, ServerProcess, encode_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.slots import shard_table, slot_for_key

Command = tuple[bytes, ...]

EXAMPLES = int(os.environ.get("LIST_DIFFERENTIAL_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY_POOL = [b"a", b"b", b"c", b"d", b"{a}x", b"{b}y"]
LLONG_MAX = b"9223372036854775807"
LLONG_MIN = b"-9223372036854775808"
#: Not sent: the runner pauses long enough for a 1 ms deadline to pass.
PAUSE: Command = (b"#pause",)
PAUSE_S = 0.005

KEYS = st.sampled_from(KEY_POOL)
ELEMENTS = st.sampled_from([b"a", b"b", b"c", b"1", b"", b"\x00", b"xyz", b"-1"])
INDEXES = st.sampled_from(
    [b"0", b"1", b"2", b"-1", b"-2", b"-3", b"5", b"-10", LLONG_MIN, LLONG_MAX, b"x", b""]
)
COUNTS = st.sampled_from([b"0", b"1", b"2", b"3", b"10", b"-1", b"x", LLONG_MAX])
SIDES = st.sampled_from([b"LEFT", b"RIGHT", b"left", b"Right"] * 3 + [b"up"])
RANKS = st.sampled_from([b"1", b"2", b"-1", b"-2", b"3", b"0", LLONG_MIN, b"x"])
GARBAGE = st.sampled_from([b"", b"x", b"-1", b"0", b"9223372036854775808", b"LEFT", b"COUNT"])


@st.composite
def sequences(draw: st.DrawFn, pausing: bool) -> list[Command]:
    """A sequence of list commands and a few others over KEY_POOL, often malformed."""

    def one() -> list[Command]:
        kind = draw(
            st.sampled_from(
                ["push"] * 8
                + ["pop"] * 4
                + ["llen", "lindex", "lindex", "lset", "lset", "lrange", "lrange", "lrange"]
                + ["ltrim", "ltrim", "lrem", "lrem", "linsert", "linsert", "lpos", "lpos"]
                + ["lmove"] * 5
                + ["rpoplpush", "rpoplpush", "lmpop", "lmpop", "lmpop"]
                + ["set", "set", "del", "type", "exists", "expire", "expire"]
            )
        )
        key = draw(KEYS)
        argv: list[bytes]
        if kind == "push":
            name = draw(st.sampled_from([b"LPUSH", b"RPUSH", b"LPUSH", b"RPUSH"]))
            name = draw(st.sampled_from([name, name + b"X"]))
            argv = [name, key, *draw(st.lists(ELEMENTS, min_size=1, max_size=4))]
        elif kind == "pop":
            argv = [draw(st.sampled_from([b"LPOP", b"RPOP"])), key]
            if draw(st.booleans()):
                argv.append(draw(COUNTS))
        elif kind == "llen":
            argv = [b"LLEN", key]
        elif kind == "lindex":
            argv = [b"LINDEX", key, draw(INDEXES)]
        elif kind == "lset":
            argv = [b"LSET", key, draw(INDEXES), draw(ELEMENTS)]
        elif kind in ("lrange", "ltrim"):
            argv = [kind.upper().encode(), key, draw(INDEXES), draw(INDEXES)]
        elif kind == "lrem":
            count = draw(st.sampled_from([b"0", b"1", b"2", b"-1", b"-2", b"x"]))
            argv = [b"LREM", key, count, draw(ELEMENTS)]
        elif kind == "linsert":
            where = draw(st.sampled_from([b"BEFORE", b"AFTER", b"after", b"before", b"x"]))
            argv = [b"LINSERT", key, where, draw(ELEMENTS), draw(ELEMENTS)]
        elif kind == "lpos":
            argv = [b"LPOS", key, draw(ELEMENTS)]
            for _ in range(draw(st.integers(0, 3))):
                option = draw(st.sampled_from(["RANK", "COUNT", "MAXLEN", "junk"]))
                if option == "RANK":
                    argv += [b"RANK", draw(RANKS)]
                elif option == "junk":
                    argv.append(draw(GARBAGE))
                else:
                    argv += [option.encode(), draw(COUNTS)]
        elif kind == "lmove":
            argv = [b"LMOVE", key, draw(KEYS), draw(SIDES), draw(SIDES)]
        elif kind == "rpoplpush":
            argv = [b"RPOPLPUSH", key, draw(KEYS)]
        elif kind == "lmpop":
            keys = draw(st.lists(KEYS, min_size=1, max_size=3))
            numkeys = draw(st.sampled_from([b"%d" % len(keys)] * 6 + [b"0", b"x", b"9"]))
            argv = [b"LMPOP", numkeys, *keys, draw(SIDES)]
            if draw(st.booleans()):
                argv += [b"COUNT", draw(COUNTS)]
        elif kind == "set":
            argv = [b"SET", key, draw(ELEMENTS)]
        elif kind == "del":
            argv = [b"DEL", key, *draw(st.lists(KEYS, max_size=2))]
        elif kind == "type":
            argv = [b"TYPE", key]
        elif kind == "exists":
            argv = [b"EXISTS", key, *draw(st.lists(KEYS, max_size=3))]
        else:
            how = draw(st.sampled_from(["far", "past", "soon"]))
            if how == "far":
                return [(b"EXPIRE", key, b"10000")]
            if how == "soon" and pausing:
                return [(b"PEXPIRE", key, b"1"), PAUSE]
            return [(b"PEXPIREAT", key, b"1")]
        return [mutate(argv)]

    def mutate(argv: list[bytes]) -> Command:
        """Mostly unchanged; else one argument dropped, added or replaced by garbage."""
        how = draw(st.sampled_from(["keep"] * 10 + ["drop", "add", "replace"]))
        if how == "drop" and len(argv) > 1:
            return tuple(argv[:-1])
        if how == "add":
            return (*argv, draw(GARBAGE))
        if how == "replace" and len(argv) > 1:
            index = draw(st.integers(1, len(argv) - 1))
            return (*argv[:index], draw(GARBAGE), *argv[index + 1 :])
        return tuple(argv)

    return [command for _ in range(draw(st.integers(1, 30))) for command in one()]


def readback() -> list[Command]:
    """What a sequence left: every key's type, elements and TTL."""
    return [
        command
        for key in KEY_POOL
        for command in ((b"TYPE", key), (b"LRANGE", key, b"0", b"-1"), (b"TTL", key))
    ]


def run(server: ServerProcess, sequence: list[Command], protocol: int, pipelined: bool) -> list:
    """On a new connection: HELLO 3 when asked, FLUSHALL, the sequence; the replies (None for
    a pause)."""
    with RawConnection(server.port) as conn:
        if protocol == 3:
            assert conn.command("HELLO", "3").startswith(b"%")
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        if pipelined:
            assert PAUSE not in sequence
            conn.send(b"".join(encode_command(*command) for command in sequence))
            return [conn.read_reply() for _ in sequence]
        replies: list[bytes | None] = []
        for command in sequence:
            if command == PAUSE:
                time.sleep(PAUSE_S)
                replies.append(None)
            else:
                replies.append(conn.command(*command))
        return replies


def compare(
    clone: ServerProcess,
    oracle: ServerProcess,
    sequence: list[Command],
    protocol: int,
    pipelined: bool,
) -> None:
    sequence = sequence + readback()
    ours = run(clone, sequence, protocol, pipelined)
    theirs = run(oracle, sequence, protocol, pipelined)
    for index, (argv, got, want) in enumerate(zip(sequence, ours, theirs, strict=True)):
        where = f"command {index} {argv!r}: redis-clone {got!r}, redis {want!r}; {sequence!r}"
        if argv[0] == b"TTL" and want[:1] == b":" and int(want[1:-2]) >= 0:
            assert got[:1] == b":" and abs(int(got[1:-2]) - int(want[1:-2])) <= 2, where
        else:
            assert got == want, where


def test_key_pool_spans_every_shard() -> None:
    owner = shard_table(4)
    shard = {key: owner[slot_for_key(key)] for key in KEY_POOL}
    assert sorted(shard[key] for key in KEY_POOL[:4]) == [0, 1, 2, 3]
    assert shard[b"{a}x"] == shard[b"a"] and shard[b"{b}y"] == shard[b"b"]


@pytest.mark.parametrize("shards", [1, 4], ids=["shards1", "shards4"])
@SETTINGS
@given(sequence=sequences(pausing=True), protocol=st.sampled_from([2, 3]))
def test_list_sequences_match_redis(
    module_servers: ServerPool,
    redis_server: ServerProcess,
    shards: int,
    sequence: list[Command],
    protocol: int,
) -> None:
    """One command at a time, expiries that pass between two commands included."""
    compare(module_servers.clone(shards), redis_server, sequence, protocol, pipelined=False)


@SETTINGS
@given(sequence=sequences(pausing=False), protocol=st.sampled_from([2, 3]))
def test_list_sequences_pipelined_at_4_shards(
    module_servers: ServerPool,
    redis_server: ServerProcess,
    sequence: list[Command],
    protocol: int,
) -> None:
    """The whole sequence in one write: replies and effects keep request order across the
    coordinated commands."""
    compare(module_servers.clone(4), redis_server, sequence, protocol, pipelined=True)
