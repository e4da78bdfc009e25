"""Differential test of the hash family: random sequences against redis-clone and redis-server.

Hypothesis builds sequences of hash commands (often malformed: odd pairs, bad numbers, unknown
options, wrong arities) mixed with SET, DEL, EXPIRE, PEXPIREAT, PERSIST, TYPE and EXISTS over
keys on every shard of a 4-shard server (two share a hash tag), so WRONGTYPE, hashes emptied
and deleted, and keys expired at once all occur. Each example picks the encoding thresholds
(Redis's defaults, or small ones so hashes convert to hashtables mid-sequence), sets them on
both servers with CONFIG SET, and pipelines the sequence in one write, RESP2 or RESP3.

Every reply must be byte-identical, except:

- HKEYS, HVALS, HGETALL and HSCAN of a hash that redis-server reports as ``hashtable`` (its
  order is its hash table's): compared as multisets;
- HRANDFIELD, random by nature: each is followed by an HGETALL of its key (on both servers),
  and the reply is checked against it (its length, distinct fields for a positive count,
  values that match), and equal to Redis's where Redis's is not random (errors, nil, empty,
  the whole listpack for a count at least its size);
- TTL: compared as missing, no deadline, or a deadline.

Future deadlines are 100 s away or more, so nothing expires while an example runs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import (
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    parse_reply,
    require_redis_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.slots import shard_table, slot_for_key

Command = tuple[bytes, ...]

EXAMPLES = int(os.environ.get("HASH_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY_POOL = [b"b", b"{b}y", b"c", b"d", b"a", b"{a}x"]
#: Most commands go to two keys, so their hashes grow past a few fields.
KEYS = st.sampled_from([b"b"] * 4 + [b"{b}y"] * 3 + KEY_POOL)
FIELDS = st.sampled_from([b"f", b"g", b"h", b"i", b"", b"\x00\r\n", b"a-rather-long-field"])
VALUES = st.sampled_from(
    [b"v", b"", b"0", b"1", b"-7", b"10", b"1.5", b"-0.25", b"1e3", b" 1", b"1 ", b"abc"]
    + [b"9223372036854775807", b"-9223372036854775808", b"inf", b"0x10", b"a value too long"]
)
INTEGERS = st.sampled_from(
    [b"1", b"-1", b"0", b"5", b"100", b"9223372036854775807", b"-9223372036854775808"]
    + [b"x", b"", b"1.5", b"+1", b"01", b" 1", b"9223372036854775808"]
)
FLOATS = st.sampled_from(
    [b"1", b"-1", b"0.1", b"1.5", b"-0.25", b"1e3", b"3.0e-2", b"1e400", b"-1e400", b"5.0e-4951"]
    + [b"inf", b"-inf", b"nan", b"abc", b"", b" 1", b"0x10", b".5", b"5.", b"1e"]
)
COUNTS = st.sampled_from(
    [b"0", b"1", b"2", b"3", b"5", b"100", b"-1", b"-3", b"-10", b"9223372036854775807"]
    + [b"-9223372036854775808", b"x", b"", b"1.0"]
)
# Never a huge negative count that Redis accepts (-4611686018427387904 without WITHVALUES ...):
# redis-server tries to build that reply and takes the machine's memory with it.
CURSORS = st.sampled_from([b"0", b"0", b"0", b"1", b"-1", b"x", b"", b"18446744073709551616"])
PATTERNS = st.sampled_from([b"*", b"f", b"[fg]", b"?", b"*o*", b"\\*", b""])
#: (hash-max-listpack-entries, hash-max-listpack-value) for an example.
THRESHOLDS = st.sampled_from([(512, 64), (512, 64), (3, 8), (2, 3), (1, 64), (0, 0)])

ORDERED = {b"HKEYS", b"HVALS", b"HGETALL", b"HSCAN"}


def test_key_pool_spans_every_shard() -> None:
    owners = {shard_table(4)[slot_for_key(key)] for key in KEY_POOL}
    assert owners == {0, 1, 2, 3}


@st.composite
def cased(draw: st.DrawFn, name: bytes) -> bytes:
    return draw(st.sampled_from([name.upper(), name.lower(), name.capitalize()]))


@st.composite
def commands(draw: st.DrawFn) -> Command:
    """One command of the family or a few others, sometimes malformed."""
    kind = draw(
        st.sampled_from(
            [b"hset"] * 6
            + [b"hmset", b"hsetnx", b"hsetnx", b"hget", b"hget", b"hmget", b"hdel", b"hdel"]
            + [b"hlen", b"hstrlen", b"hexists", b"hkeys", b"hvals", b"hgetall", b"hgetall"]
            + [b"hincrby", b"hincrby", b"hincrbyfloat", b"hincrbyfloat", b"hrandfield"] * 2
            + [b"hscan", b"hscan", b"set", b"del", b"expire", b"pexpireat", b"persist"]
            + [b"type", b"exists", b"ttl", b"arity"]
        )
    )
    key = draw(KEYS)
    name = draw(cased(kind))
    if kind in (b"hset", b"hmset"):
        pairs = draw(st.lists(st.tuples(FIELDS, VALUES), min_size=1, max_size=4))
        args = [part for pair in pairs for part in pair]
        if draw(st.integers(0, 6)) == 0:
            args.append(draw(FIELDS))  # an odd count
        return (name, key, *args)
    if kind == b"hsetnx":
        return (name, key, draw(FIELDS), draw(VALUES))
    if kind in (b"hget", b"hstrlen", b"hexists"):
        return (name, key, draw(FIELDS))
    if kind in (b"hmget", b"hdel"):
        return (name, key, *draw(st.lists(FIELDS, min_size=1, max_size=4)))
    if kind in (b"hlen", b"hkeys", b"hvals", b"hgetall", b"type", b"persist", b"ttl"):
        return (name, key)
    if kind == b"hincrby":
        return (name, key, draw(FIELDS), draw(INTEGERS))
    if kind == b"hincrbyfloat":
        return (name, key, draw(FIELDS), draw(FLOATS))
    if kind == b"hrandfield":
        args = []
        if draw(st.integers(0, 4)):
            args.append(draw(COUNTS))
            option = draw(st.sampled_from([None, None, b"WITHVALUES", b"withvalues", b"x"]))
            if option is not None:
                args.append(option)
        return (name, key, *args)
    if kind == b"hscan":
        args = [draw(CURSORS)]
        for _ in range(draw(st.integers(0, 2))):
            option = draw(st.sampled_from([b"MATCH", b"COUNT", b"count", b"TYPE", b"bad"]))
            args.append(option)
            if option != b"bad":
                args.append(draw(PATTERNS if option == b"MATCH" else COUNTS))
        return (name, key, *args)
    if kind == b"set":
        return (name, key, draw(VALUES))
    if kind in (b"del", b"exists"):
        return (name, *draw(st.lists(st.sampled_from(KEY_POOL), min_size=1, max_size=3)))
    if kind == b"expire":  # far ahead, or at once (a time not in the future deletes the key)
        return (name, key, draw(st.sampled_from([b"100000", b"200000", b"0", b"-5"])))
    if kind == b"pexpireat":
        return (name, key, draw(st.sampled_from([b"1", b"99999999999999"])))
    other = draw(st.sampled_from([b"hget", b"hlen", b"hsetnx", b"hincrby", b"hstrlen", b"hkeys"]))
    return (other, *draw(st.lists(FIELDS, max_size=5)))  # arities, right or wrong


def final_reads() -> list[Command]:
    """The end state of every key: its type, its fields, whether it has a deadline."""
    reads: list[Command] = []
    for key in KEY_POOL:
        reads += [(b"TYPE", key), (b"HLEN", key), (b"HGETALL", key), (b"TTL", key)]
    return reads


def expand(sequence: list[Command]) -> list[Command]:
    """The sequence as sent to both servers: an HGETALL of its key after each HRANDFIELD
    and HSCAN, to check their replies against."""
    sent: list[Command] = []
    for command in sequence:
        sent.append(command)
        if command[0].upper() in (b"HRANDFIELD", b"HSCAN") and len(command) > 1:
            sent.append((b"HGETALL", command[1]))
    return sent + final_reads()


def run(
    server: ServerProcess,
    thresholds: tuple[int, int],
    sent: list[Command],
    resp3: bool,
    oracle: bool,
) -> tuple[list[bytes], list[bytes | None]]:
    """Replies of ``sent`` on one server (and, on the oracle, the OBJECT ENCODING of the key
    of each order-sensitive read right after it; None elsewhere)."""
    entries, value = thresholds
    setup = [
        (b"HELLO", b"3" if resp3 else b"2"),
        (b"FLUSHALL",),
        (b"CONFIG", b"SET", b"hash-max-listpack-entries", b"%d" % entries),
        (b"CONFIG", b"SET", b"hash-max-listpack-value", b"%d" % value),
    ]
    wire: list[Command] = list(setup)
    for command in sent:
        wire.append(command)
        if oracle and command[0].upper() in ORDERED and len(command) > 1:
            wire.append((b"OBJECT", b"ENCODING", command[1]))
    with RawConnection(server.port, timeout=20.0) as conn:
        conn.send(b"".join(encode_command(*command) for command in wire))
        for _ in setup:
            assert not conn.read_reply().startswith(b"-")
        replies, encodings = [], []
        for command in sent:
            replies.append(conn.read_reply())
            if oracle and command[0].upper() in ORDERED and len(command) > 1:
                encodings.append(conn.read_reply())
            else:
                encodings.append(None)
    return replies, encodings


def as_multiset(name: bytes, reply: object) -> object:
    """An order-free view of an HKEYS/HVALS/HGETALL/HSCAN reply."""
    if name == b"HSCAN":
        cursor, items = reply
        return cursor, Counter(zip(items[::2], items[1::2], strict=True))
    if isinstance(reply, dict):
        return Counter(reply.items())
    if name == b"HGETALL":
        return Counter(zip(reply[::2], reply[1::2], strict=True))
    return Counter(reply)


def ttl_class(reply: bytes) -> bytes:
    """A TTL reply without its clock reading: -2 (missing), -1 (no deadline), or 0 (one)."""
    if reply[:1] != b":":
        return reply
    return b"%d" % min(int(reply[1:-2]), 0)


def check_hrandfield(command: Command, ours: bytes, theirs: bytes, content: object) -> None:
    """Our HRANDFIELD reply is one Redis could have given, for a hash holding ``content``."""
    if theirs[:1] in b"-_" or theirs in (b"$-1\r\n", b"*0\r\n"):
        assert ours == theirs
        return
    if not isinstance(content, dict):
        content = dict(zip(content[::2], content[1::2], strict=True))
    fields = content
    got, want = parse_reply(ours), parse_reply(theirs)
    if len(command) == 2:
        assert got in fields
        return
    count = int(command[2])
    with_values = len(command) == 4
    if with_values and got and isinstance(got[0], list):  # RESP3: a pair per field
        drawn = [tuple(pair) for pair in got]
    elif with_values:
        drawn = list(zip(got[::2], got[1::2], strict=True))
    else:
        drawn = [(field, fields.get(field)) for field in got]
    assert len(got) == len(want)
    assert all(field in fields and fields[field] == value for field, value in drawn)
    if count > 0:
        assert len({field for field, _ in drawn}) == len(drawn) == min(count, len(fields))


def compare(
    clone: ServerProcess,
    oracle: ServerProcess,
    sequence: list[Command],
    thresholds: tuple[int, int],
    resp3: bool,
) -> None:
    sent = expand(sequence)
    ours, _ = run(clone, thresholds, sent, resp3, oracle=False)
    theirs, encodings = run(oracle, thresholds, sent, resp3, oracle=True)
    for i, command in enumerate(sent):
        name = command[0].upper()
        got, want = ours[i], theirs[i]
        where = f"command {i} {command!r}: ours {got!r:.300}, redis {want!r:.300}; {sent!r:.2000}"
        if name == b"HRANDFIELD" and len(command) > 1:
            check_hrandfield(command, got, want, parse_reply(theirs[i + 1]))
        elif name == b"TTL":
            assert ttl_class(got) == ttl_class(want), where
        elif want[:1] != b"-" and encodings[i] and parse_reply(encodings[i]) == b"hashtable":
            assert got[:1] == want[:1], where  # the same reply type (a map, an array)
            got_items, want_items = (
                as_multiset(name, parse_reply(got)),
                as_multiset(name, parse_reply(want)),
            )
            if name == b"HSCAN":  # cursors and pages are each server's own: check ours alone
                content = as_multiset(b"HGETALL", parse_reply(theirs[i + 1]))
                assert not got_items[1] - content, where
                if got_items[0] == want_items[0] == b"0" and command[2] == b"0":
                    assert got_items == want_items, where
            else:
                assert got_items == want_items, where
        else:
            assert got == want, where


@pytest.fixture(scope="module")
def own_redis(module_servers: ServerPool) -> Iterator[ServerProcess]:
    """A redis-server of this module's own, since each example changes its thresholds."""
    require_redis_server()
    server = module_servers.start_redis()
    yield server
    server.stop()


@SETTINGS
@given(
    sequence=st.lists(commands(), min_size=1, max_size=40),
    thresholds=THRESHOLDS,
    resp3=st.booleans(),
)
def test_same_replies_as_redis(
    clone: ServerProcess,
    own_redis: ServerProcess,
    sequence: list[Command],
    thresholds: tuple[int, int],
    resp3: bool,
) -> None:
    compare(clone, own_redis, sequence, thresholds, resp3)
