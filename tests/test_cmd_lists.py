"""The list commands on real servers: redis-clone at 1 and 4 shards against redis-server 7.0.

- Reply shapes (nil, null array, empty array; RESP2 and RESP3) as fixed bytes, checked on all
  three endpoints, so the table itself is proven against Redis.
- Scripts of list commands, each command's error cases in Redis's order included, pipelined
  after a FLUSHALL, byte for byte against the oracle in both protocols. Keys ``a``, ``b``,
  ``c`` and ``d`` lie on four different shards of a 4-shard server and ``{a}x`` on ``a``'s,
  so LMOVE, RPOPLPUSH and LMPOP take both their coordinated and their native paths.
- Atomicity of the cross-shard LMOVE at 4 shards: movers shuffle elements between lists on
  every shard and none is ever lost or duplicated; readers never see a move half done (one
  element moves back and forth between two lists on different shards, and ``EXISTS a b``,
  one command over both shards, which is LLEN a + LLEN b while the total is one element,
  must always be 1), and the same readers do catch a mover that pops and pushes as two
  commands, so the check is shown to work.

Every loop is bounded by a deadline; nothing sleeps to wait for a state that can be polled.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis
from conftest import RawConnection, ServerPool, ServerProcess, encode_command

from shardserver.slots import shard_table, slot_for_key

LLONG_MAX = b"9223372036854775807"
LLONG_MIN = b"-9223372036854775808"
Argv = tuple[bytes, ...]


def run_script(server: ServerProcess, script: list[Argv], protocol: int) -> list[bytes]:
    """FLUSHALL, then the script pipelined in one write; each command's raw reply."""
    with RawConnection(server.port) as conn:
        if protocol == 3:
            assert conn.command("HELLO", "3").startswith(b"%")
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        conn.send(b"".join(encode_command(*argv) for argv in script))
        return [conn.read_reply() for _ in script]


# -- reply shapes, proven on every endpoint ---------------------------------------------------

#: (command, RESP2 reply, RESP3 reply) after ``RPUSH l a b``.
SHAPES: list[tuple[Argv, bytes, bytes]] = [
    ((b"LPOP", b"none"), b"$-1\r\n", b"_\r\n"),
    ((b"RPOP", b"none", b"1"), b"*-1\r\n", b"_\r\n"),
    ((b"LPOP", b"none", b"0"), b"*-1\r\n", b"_\r\n"),
    ((b"LPOP", b"l", b"0"), b"*0\r\n", b"*0\r\n"),
    ((b"LINDEX", b"none", b"0"), b"$-1\r\n", b"_\r\n"),
    ((b"LINDEX", b"l", b"7"), b"$-1\r\n", b"_\r\n"),
    ((b"LPOS", b"none", b"a"), b"$-1\r\n", b"_\r\n"),
    ((b"LPOS", b"l", b"z"), b"$-1\r\n", b"_\r\n"),
    ((b"LPOS", b"none", b"a", b"COUNT", b"0"), b"*0\r\n", b"*0\r\n"),
    ((b"LPOS", b"l", b"b", b"COUNT", b"0"), b"*1\r\n:1\r\n", b"*1\r\n:1\r\n"),
    ((b"LRANGE", b"none", b"0", b"-1"), b"*0\r\n", b"*0\r\n"),
    ((b"LMOVE", b"none", b"l", b"LEFT", b"LEFT"), b"$-1\r\n", b"_\r\n"),
    ((b"RPOPLPUSH", b"none", b"l"), b"$-1\r\n", b"_\r\n"),
    ((b"LMPOP", b"2", b"none", b"other", b"LEFT"), b"*-1\r\n", b"_\r\n"),
    ((b"LMPOP", b"1", b"none", b"RIGHT", b"COUNT", b"3"), b"*-1\r\n", b"_\r\n"),
    ((b"LINSERT", b"none", b"BEFORE", b"a", b"b"), b":0\r\n", b":0\r\n"),
    ((b"LINSERT", b"l", b"BEFORE", b"z", b"b"), b":-1\r\n", b":-1\r\n"),
    ((b"LTRIM", b"none", b"0", b"1"), b"+OK\r\n", b"+OK\r\n"),
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_reply_shapes(endpoint: ServerProcess, protocol: int) -> None:
    script = [(b"RPUSH", b"l", b"a", b"b")] + [argv for argv, _, _ in SHAPES]
    replies = run_script(endpoint, script, protocol)
    assert replies[0] == b":2\r\n"
    for (argv, resp2, resp3), got in zip(SHAPES, replies[1:], strict=True):
        assert got == (resp3 if protocol == 3 else resp2), argv


def test_lmpop_reply_is_an_array_of_key_and_elements(endpoint: ServerProcess) -> None:
    for protocol in (2, 3):
        script = [(b"RPUSH", b"{t}2", b"a", b"b"), (b"LMPOP", b"2", b"{t}1", b"{t}2", b"RIGHT")]
        replies = run_script(endpoint, script, protocol)
        assert replies[1] == b"*2\r\n$4\r\n{t}2\r\n*1\r\n$1\r\nb\r\n"


# -- scripts against the oracle ---------------------------------------------------------------

A, B, C, D, AX = b"a", b"b", b"c", b"d", b"{a}x"
KEYS = [A, B, C, D, AX]


def readback() -> list[Argv]:
    """What a script left: each key's type and elements."""
    return [argv for key in KEYS for argv in ((b"TYPE", key), (b"LRANGE", key, b"0", b"-1"))]


SCRIPTS: dict[str, list[Argv]] = {
    "push-pop": [
        (b"RPUSH", A, b"1", b"2", b"3"),
        (b"LPUSH", A, b"0", b"-1"),
        (b"LPUSHX", B, b"x"),
        (b"RPUSHX", B, b"x", b"y"),
        (b"RPUSHX", A, b"4", b"5"),
        (b"lpushx", A, b""),
        (b"LLEN", A),
        (b"LLEN", B),
        (b"LPOP", A),
        (b"RPOP", A),
        (b"LPOP", A, b"2"),
        (b"RPOP", A, b"0"),
        (b"rpop", A, b"-1"),
        (b"LPOP", A, b"x"),
        (b"LPOP", A, b"1.5"),
        (b"LPOP", A, LLONG_MAX),
        (b"EXISTS", A),
        (b"LPOP", A),
        (b"LPOP", A, b"1"),
        (b"RPOP", A, b"0"),
        (b"LPOP", A, b"1", b"2"),
        (b"RPUSH", A, b"\x00", b"\r\n", b"x" * 100),
        (b"RPOP", A, b"2"),
    ],
    "index": [
        (b"RPUSH", A, b"a", b"b", b"c", b"d", b"e"),
        *[(b"LINDEX", A, i) for i in (b"0", b"-1", b"5", b"-6", b"x", b"", LLONG_MIN, b"01")],
        (b"LINDEX", B, b"x"),
        (b"LSET", A, b"0", b"A"),
        (b"LSET", A, b"-1", b"E"),
        (b"LSET", A, b"5", b"x"),
        (b"LSET", A, b"-6", b"x"),
        (b"LSET", A, b"x", b"y"),
        (b"LSET", B, b"0", b"x"),
        (b"LSET", B, b"x", b"y"),
        (b"LRANGE", A, b"-100", b"100"),
        (b"LRANGE", A, b"3", b"1"),
        (b"LRANGE", A, b"-2", b"-1"),
        (b"LRANGE", A, LLONG_MIN, LLONG_MAX),
        (b"LRANGE", A, b"x", b"1"),
        (b"LRANGE", A, b"1", b"1.0"),
        (b"LRANGE", B, b"x", b"y"),
        (b"LRANGE", B, b"0", b"-1"),
    ],
    "trim": [
        (b"RPUSH", A, *[b"%d" % i for i in range(10)]),
        (b"LTRIM", A, b"2", b"-3"),
        (b"LRANGE", A, b"0", b"-1"),
        (b"LTRIM", A, b"-100", b"100"),
        (b"LTRIM", A, b"1", b"1"),
        (b"LRANGE", A, b"0", b"-1"),
        (b"LTRIM", A, b"x", b"1"),
        (b"LTRIM", A, b"5", b"1"),
        (b"EXISTS", A),
        (b"LTRIM", B, b"0", b"1"),
        (b"LTRIM", B, b"0", b"y"),
        (b"RPUSH", C, b"1", b"2"),
        (b"LTRIM", C, b"-1", b"0"),
        (b"EXISTS", C),
    ],
    "rem-insert": [
        (b"RPUSH", A, b"a", b"b", b"a", b"c", b"a", b"b"),
        (b"LREM", A, b"1", b"a"),
        (b"LREM", A, b"-1", b"a"),
        (b"LREM", A, b"0", b"z"),
        (b"LREM", A, b"x", b"a"),
        (b"LREM", B, b"1", b"a"),
        (b"LREM", B, b"x", b"a"),
        (b"LINSERT", A, b"BEFORE", b"c", b"X"),
        (b"LINSERT", A, b"after", b"b", b"Y"),
        (b"LINSERT", A, b"before", b"zz", b"q"),
        (b"LINSERT", A, b"middle", b"a", b"b"),
        (b"LINSERT", B, b"BEFORE", b"a", b"b"),
        (b"LINSERT", B, b"middle", b"a", b"b"),
        (b"LRANGE", A, b"0", b"-1"),
        (b"LREM", A, b"-2", b"b"),
        (b"LREM", A, b"0", b"a"),
        (b"LREM", A, LLONG_MIN, b"X"),
        (b"LREM", A, b"0", b"c"),
        (b"LREM", A, b"0", b"Y"),
        (b"EXISTS", A),
    ],
    "lpos": [
        (b"RPUSH", A, b"a", b"b", b"a", b"c", b"a", b"b", b"a"),
        (b"LPOS", A, b"a"),
        (b"LPOS", A, b"b", b"RANK", b"2"),
        (b"LPOS", A, b"a", b"RANK", b"-1"),
        (b"LPOS", A, b"a", b"RANK", b"-3", b"COUNT", b"2"),
        (b"LPOS", A, b"a", b"RANK", LLONG_MIN),
        (b"LPOS", A, b"a", b"RANK", LLONG_MIN, b"COUNT", b"1"),
        (b"LPOS", A, b"a", b"RANK", LLONG_MIN, b"COUNT", b"0", b"MAXLEN", b"3"),
        (b"LPOS", A, b"a", b"RANK", LLONG_MAX),
        (b"LPOS", A, b"a", b"RANK", LLONG_MAX, b"COUNT", b"5"),
        (b"LPOS", A, b"a", b"COUNT", b"0"),
        (b"LPOS", A, b"a", b"COUNT", LLONG_MAX),
        (b"LPOS", A, b"a", b"COUNT", b"0", b"MAXLEN", b"3"),
        (b"LPOS", A, b"a", b"MAXLEN", b"1", b"RANK", b"2"),
        (b"LPOS", A, b"a", b"RANK", b"2", b"RANK", b"1"),
        (b"LPOS", A, b"c", b"rank", b"1", b"count", b"2", b"maxlen", b"0"),
        (b"LPOS", A, b"a", b"RANK", b"0"),
        (b"LPOS", A, b"a", b"RANK", b"x"),
        (b"LPOS", A, b"a", b"RANK", b"9223372036854775808"),
        (b"LPOS", A, b"a", b"COUNT", b"-1"),
        (b"LPOS", A, b"a", b"COUNT", b"x"),
        (b"LPOS", A, b"a", b"MAXLEN", b"-1"),
        (b"LPOS", A, b"a", b"MAXLEN", b""),
        (b"LPOS", A, b"a", b"RANK"),
        (b"LPOS", A, b"a", b"FOO", b"1"),
        (b"LPOS", A, b"a", b"COUNT", b"-1", b"RANK", b"0"),
        (b"LPOS", B, b"a"),
        (b"LPOS", B, b"a", b"COUNT", b"2"),
        (b"LPOS", B, b"a", b"RANK", b"0"),
    ],
    "moves across shards": [
        (b"RPUSH", A, b"1", b"2", b"3", b"4"),
        (b"LMOVE", A, B, b"LEFT", b"RIGHT"),
        (b"LMOVE", A, C, b"right", b"left"),
        (b"LMOVE", B, A, b"Left", b"Left"),
        (b"LMOVE", A, D, b"RIGHT", b"RIGHT"),
        (b"RPOPLPUSH", A, D),
        (b"RPOPLPUSH", B, D),
        (b"RPOPLPUSH", B, D),
        (b"LMOVE", B, D, b"LEFT", b"LEFT"),
        (b"LMOVE", D, A, b"LEFT", b"UP"),
        (b"LMOVE", D, A, b"DOWN", b"LEFT"),
        (b"LMOVE", D, A, b"LEFT\x00x", b"right"),
        (b"LMOVE", D, D, b"LEFT", b"RIGHT"),
        (b"RPOPLPUSH", D, D),
        (b"LMOVE", D, AX, b"RIGHT", b"LEFT"),
        (b"LMOVE", A, AX, b"LEFT", b"LEFT"),
        (b"LMOVE", AX, A, b"LEFT", b"LEFT"),
    ],
    "moves and types": [
        (b"SET", B, b"string"),
        (b"RPUSH", A, b"1"),
        (b"LMOVE", A, B, b"LEFT", b"LEFT"),
        (b"RPOPLPUSH", A, B),
        (b"LMOVE", B, A, b"LEFT", b"LEFT"),
        (b"RPOPLPUSH", B, C),
        (b"LMOVE", C, B, b"LEFT", b"LEFT"),
        (b"RPOPLPUSH", C, B),
        (b"LMOVE", C, B, b"UP", b"LEFT"),
        (b"SET", AX, b"string"),
        (b"LMOVE", A, AX, b"LEFT", b"LEFT"),
        (b"LMOVE", AX, A, b"LEFT", b"LEFT"),
        (b"LMOVE", A, A, b"LEFT", b"RIGHT"),
        (b"GET", B),
    ],
    "lmpop": [
        (b"RPUSH", C, b"1", b"2", b"3"),
        (b"LMPOP", b"3", A, B, C, b"LEFT"),
        (b"LMPOP", b"3", A, B, C, b"right", b"COUNT", b"10"),
        (b"LMPOP", b"3", A, B, C, b"LEFT"),
        (b"RPUSH", D, b"x", b"y"),
        (b"RPUSH", A, b"p"),
        (b"SET", B, b"s"),
        (b"LMPOP", b"3", C, B, D, b"LEFT"),
        (b"LMPOP", b"3", A, B, D, b"LEFT", b"COUNT", b"2"),
        (b"LMPOP", b"2", D, B, b"left", b"count", LLONG_MAX),
        (b"LMPOP", b"1", B, b"LEFT"),
        (b"RPUSH", AX, b"t1", b"t2"),
        (b"LMPOP", b"2", A, AX, b"RIGHT", b"COUNT", b"1"),
        (b"LMPOP", b"3", C, D, AX, b"LEFT"),
        (b"LMPOP", b"2", AX, AX, b"LEFT"),
        (b"LMPOP", b"0", A, b"LEFT"),
        (b"LMPOP", b"-1", A, b"LEFT"),
        (b"LMPOP", b"x", A, b"LEFT"),
        (b"LMPOP", b"", A, b"LEFT"),
        (b"LMPOP", b"2", A, b"LEFT"),
        (b"LMPOP", LLONG_MAX, A, b"LEFT"),
        (b"LMPOP", b"1", A, b"MIDDLE"),
        (b"LMPOP", b"1", B, b"MIDDLE"),
        (b"LMPOP", b"1", A, b"LEFT", b"COUNT", b"0"),
        (b"LMPOP", b"1", A, b"LEFT", b"COUNT", b"-1"),
        (b"LMPOP", b"1", A, b"LEFT", b"COUNT", b"x"),
        (b"LMPOP", b"1", A, b"LEFT", b"COUNT"),
        (b"LMPOP", b"1", A, b"LEFT", b"COUNT", b"1", b"COUNT", b"1"),
        (b"LMPOP", b"1", A, b"LEFT", b"FOO"),
        (b"LMPOP", b"2", A, C, b"LEFT", b"COUNT", b"0"),
        (b"LMPOP", b"2", B, D, b"RIGHT", b"bad"),
    ],
    "expiry and types": [
        (b"RPUSH", A, b"1", b"2"),
        (b"PEXPIREAT", A, b"1"),
        (b"EXISTS", A),
        (b"LPUSH", A, b"x"),
        (b"EXPIRE", A, b"1000"),
        (b"TTL", A),
        (b"LPUSH", A, b"y"),
        (b"TTL", A),
        (b"LMOVE", A, B, b"LEFT", b"LEFT"),
        (b"TTL", B),
        (b"RPOP", A),
        (b"TTL", A),
        (b"SET", C, b"v"),
        *[(name, C, b"x") for name in (b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX", b"LPOS")],
        (b"LPOP", C),
        (b"RPOP", C, b"1"),
        (b"LLEN", C),
        (b"LINDEX", C, b"x"),
        (b"LSET", C, b"x", b"y"),
        (b"LRANGE", C, b"0", b"x"),
        (b"LRANGE", C, b"0", b"1"),
        (b"LTRIM", C, b"0", b"1"),
        (b"LREM", C, b"0", b"a"),
        (b"LINSERT", C, b"BEFORE", b"a", b"b"),
        (b"LINSERT", C, b"MIDDLE", b"a", b"b"),
        (b"LPOS", C, b"a", b"RANK", b"0"),
        (b"LPUSH", D, b"d"),
        (b"TYPE", D),
        (b"SET", D, b"v"),
        (b"TYPE", D),
        (b"DEL", D),
        (b"RPUSH", D, b"again"),
    ],
    "arity": [
        (b"LPUSH", A),
        (b"RPUSHX", A),
        (b"LPOP",),
        (b"LLEN", A, B),
        (b"LINDEX", A),
        (b"LSET", A, b"0"),
        (b"LRANGE", A, b"0"),
        (b"LTRIM", A, b"0", b"1", b"2"),
        (b"LREM", A, b"0"),
        (b"LINSERT", A, b"BEFORE", b"x"),
        (b"LPOS", A),
        (b"LMOVE", A, B, b"LEFT"),
        (b"RPOPLPUSH", A),
        (b"LMPOP", b"1", A),
        (b"LMPOP", b"2", A),
    ],
}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_scripts_match_redis(
    clone: ServerProcess, redis_server: ServerProcess, name: str, protocol: int
) -> None:
    script = SCRIPTS[name] + readback()
    ours = run_script(clone, script, protocol)
    theirs = run_script(redis_server, script, protocol)
    for argv, got, want in zip(script, ours, theirs, strict=True):
        assert got == want, f"{argv!r}: redis-clone {got!r}, redis {want!r}"


def test_script_keys_span_every_shard() -> None:
    """The premise of the scripts: a, b, c, d on four shards, {a}x with a."""
    owner = shard_table(4)
    shards = [owner[slot_for_key(key)] for key in KEYS]
    assert sorted(shards[:4]) == [0, 1, 2, 3]
    assert shards[4] == shards[0]


def test_command_getkeys_for_lmpop(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as conn:
        reply = conn.command("COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT", "COUNT", "1")
        assert reply == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"


# -- atomicity of the cross-shard LMOVE -------------------------------------------------------

SHARDS = 4


def keys_on_every_shard(prefix: str) -> list[bytes]:
    """One key per shard of a 4-shard server, no hash tags."""
    owner = shard_table(SHARDS)
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < SHARDS:
        key = f"{prefix}:{i}".encode()
        found.setdefault(owner[slot_for_key(key)], key)
        i += 1
    return [found[shard] for shard in range(SHARDS)]


LISTS = keys_on_every_shard("list")
SOURCE, TARGET = LISTS[0], LISTS[1]


@pytest.fixture(scope="module")
def server4(module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(SHARDS)


@dataclass
class Outcome:
    moved: int = 0
    reads: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_threads(
    server: ServerProcess,
    mover: Callable[[redis.Redis, random.Random], bool],
    movers: int,
    reader: Callable[[redis.Redis], str | None] | None,
    duration: float,
    stop_at_first_violation: bool = False,
) -> Outcome:
    """Movers (each call: one move, True if something moved) and three readers (a reason
    the state is wrong, or None), for ``duration`` seconds; exceptions are recorded."""
    outcome = Outcome()
    stop = threading.Event()
    deadline = time.monotonic() + duration

    def move_loop(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with server.client() as client:
                while not stop.is_set() and time.monotonic() < deadline:
                    if mover(client, rng):
                        with outcome.lock:
                            outcome.moved += 1
        except Exception as exc:
            outcome.errors.append(f"mover {seed}: {exc!r}")

    def read_loop(index: int) -> None:
        assert reader is not None
        try:
            with server.client() as client:
                while not stop.is_set() and time.monotonic() < deadline:
                    problem = reader(client)
                    with outcome.lock:
                        outcome.reads += 1
                        if problem is not None:
                            outcome.violations.append(problem)
                    if problem is not None and stop_at_first_violation:
                        stop.set()
        except Exception as exc:
            outcome.errors.append(f"reader {index}: {exc!r}")

    threads = [threading.Thread(target=move_loop, args=(i,)) for i in range(movers)]
    if reader is not None:
        threads += [threading.Thread(target=read_loop, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
        assert not thread.is_alive(), "a client thread is stuck: the server stopped answering"
    return outcome


def shuffle_move(client: redis.Redis, rng: random.Random) -> bool:
    """One LMOVE or RPOPLPUSH between two of the lists, mostly on different shards."""
    source, target = rng.choice(LISTS), rng.choice(LISTS)
    if rng.random() < 0.2:
        return client.rpoplpush(source, target) is not None
    ends = ("LEFT", "RIGHT")
    return client.lmove(source, target, rng.choice(ends), rng.choice(ends)) is not None


def test_cross_shard_moves_lose_and_duplicate_nothing(server4: ServerProcess) -> None:
    """Four clients move elements at random between lists on all four shards; afterwards
    every element is in exactly one place, once."""
    assert len({shard_table(SHARDS)[slot_for_key(key)] for key in LISTS}) == SHARDS
    elements = [b"e%03d" % i for i in range(200)]
    with server4.client() as client:
        client.delete(*LISTS)
        for i, key in enumerate(LISTS):
            client.rpush(key, *elements[i * 50 : (i + 1) * 50])
    outcome = run_threads(server4, shuffle_move, 4, None, 1.5)
    assert not outcome.errors, outcome.errors
    assert outcome.moved >= 100, outcome
    with server4.client() as client:
        found = [element for key in LISTS for element in client.lrange(key, 0, -1)]
        client.delete(*LISTS)
    assert sorted(found) == elements


def bounce(client: redis.Redis, rng: random.Random) -> bool:
    """Move the one element to the other list, whichever holds it (one of the two fails)."""
    source, target = (SOURCE, TARGET) if rng.random() < 0.5 else (TARGET, SOURCE)
    return client.lmove(source, target, "RIGHT", "LEFT") is not None


def torn_bounce(client: redis.Redis, rng: random.Random) -> bool:
    """The same move as two commands, as a client without LMOVE would do it: not atomic."""
    source, target = (SOURCE, TARGET) if rng.random() < 0.5 else (TARGET, SOURCE)
    element = client.rpop(source)
    if element is None:
        return False
    client.lpush(target, element)
    return True


def total_is_one(client: redis.Redis) -> str | None:
    """EXISTS over both lists (one command, two shards): LLEN a + LLEN b while the total is
    one element, which must always be where it is, once."""
    seen = client.exists(SOURCE, TARGET)
    return None if seen == 1 else f"the element is in {seen} lists"


def start_bouncing(server: ServerProcess) -> None:
    with server.client() as client:
        client.delete(SOURCE, TARGET)
        client.rpush(SOURCE, "token")


def test_readers_never_see_a_cross_shard_lmove_half_done(server4: ServerProcess) -> None:
    assert shard_table(SHARDS)[slot_for_key(SOURCE)] != shard_table(SHARDS)[slot_for_key(TARGET)]
    start_bouncing(server4)
    outcome = run_threads(server4, bounce, 2, total_is_one, 2.0)
    assert not outcome.errors, outcome.errors
    assert not outcome.violations, (
        f"{len(outcome.violations)} torn reads of {outcome.reads}: {outcome.violations[:3]}"
    )
    assert outcome.moved >= 20 and outcome.reads >= 50, outcome
    with server4.client() as client:
        assert client.lrange(SOURCE, 0, -1) + client.lrange(TARGET, 0, -1) == [b"token"]


def test_the_readers_catch_a_move_made_of_two_commands(server4: ServerProcess) -> None:
    """What keeps the test above honest: its readers see the torn state of a non-atomic move
    within the deadline."""
    start_bouncing(server4)
    outcome = run_threads(server4, torn_bounce, 1, total_is_one, 15.0, True)
    assert not outcome.errors, outcome.errors
    assert outcome.violations, (
        f"no torn read in {outcome.reads} reads of {outcome.moved} two-command moves"
    )
