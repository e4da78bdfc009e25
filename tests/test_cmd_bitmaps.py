"""The bit commands through a running redis-clone at 1 and 4 shards, against a real
redis-server, byte for byte, in RESP2 and RESP3.

``test_bitmaps_unit`` covers each command's cases on shard objects; here the same scenarios
go through the acceptor: arity errors, routing (BITOP's keys on several shards take the
coordinated path, with values of a megabyte crossing the pipes) and the reply shapes of
both protocols. Both servers run with ``proto-max-bulk-len`` at 1 MiB. The scenarios that
touch a list (the WRONGTYPE cases) need the list family on the server.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import pytest
from conftest import RawConnection, ServerPool, ServerProcess, encode_command, require_redis_server
from test_bitmaps_unit import LIST, MAX_BULK, SCENARIOS, SPREAD, c

from shardserver.slots import shard_table, slot_for_key

ARITY = [
    c("setbit", "k", 1),
    c("setbit", "k", 1, 1, 1),
    c("getbit", "k"),
    c("bitcount"),
    c("bitpos", "k"),
    c("bitop", "and", "d"),
    c("bitfield"),
    c("bitfield_ro"),
]


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[ServerProcess]:
    """A redis-server of this module's own, with the same bulk limit as the clones."""
    require_redis_server()
    server = module_servers.start_redis(["--proto-max-bulk-len", str(MAX_BULK)])
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def clone(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(request.param, ["--proto-max-bulk-len", str(MAX_BULK)])


def run(server: ServerProcess, commands: list[list[bytes]], protocol: int) -> list[bytes]:
    """FLUSHALL, then the commands pipelined in one write; their raw replies."""
    with RawConnection(server.port) as conn:
        if protocol == 3:
            assert conn.command(b"HELLO", b"3").startswith(b"%")
        conn.send(b"".join(encode_command(*argv) for argv in [[b"FLUSHALL"], *commands]))
        assert conn.read_reply() == b"+OK\r\n"
        return [conn.read_reply() for _ in commands]


def compare(
    oracle: ServerProcess, clone: ServerProcess, commands: list[list[bytes]], protocol: int = 2
) -> list[bytes]:
    expected = run(oracle, commands, protocol)
    got = run(clone, commands, protocol)
    wrong = [
        f"{argv!r:.200}: redis {want!r:.200} != ours {have!r:.200}"
        for argv, want, have in zip(commands, expected, got, strict=True)
        if want != have
    ]
    assert not wrong, "\n".join(wrong)
    return got


def without_lists(commands: list[list[bytes]]) -> list[list[bytes]]:
    return [argv for argv in commands if LIST not in argv]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(oracle: ServerProcess, clone: ServerProcess, name: str, protocol: int) -> None:
    compare(oracle, clone, without_lists(SCENARIOS[name]), protocol)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_with_wrong_types(oracle: ServerProcess, clone: ServerProcess, name: str) -> None:
    """The scenarios whole, with a list at LIST (needs the list family)."""
    compare(oracle, clone, [c("rpush", LIST, "x"), *SCENARIOS[name]])


def test_arity(oracle: ServerProcess, clone: ServerProcess) -> None:
    compare(oracle, clone, ARITY)


def test_bitop_keys_on_every_shard() -> None:
    table = shard_table(4)
    assert {table[slot_for_key(key)] for key in SPREAD} == {0, 1, 2, 3}


def test_bitop_big_values_across_shards(oracle: ServerProcess, clone: ServerProcess) -> None:
    """Sources of up to a megabyte on four shards; the results compared by digest."""
    rng = random.Random(9)
    values = [rng.randbytes(size) for size in (MAX_BULK, MAX_BULK // 2, 1000, MAX_BULK - 3)]
    setup = [c("set", key, value) for key, value in zip(SPREAD, values, strict=False)]
    ops = [
        c("bitop", "and", "d", *SPREAD[:4]),
        c("bitop", "or", "{a}x", "a", "b", "c"),
        c("bitop", "xor", "b", "a", "c", "d", "{a}x"),
        c("bitop", "not", "c", "a"),
    ]
    reads = [c("bitcount", key) for key in SPREAD] + [c("bitpos", key, 0) for key in SPREAD]
    digests = [c("get", key) for key in SPREAD]
    script = setup + ops + reads

    expected = run(oracle, script + digests, 2)
    got = run(clone, script + digests, 2)
    assert got[: len(script)] == expected[: len(script)]
    assert [hashlib.sha256(r).digest() for r in got[len(script) :]] == [
        hashlib.sha256(r).digest() for r in expected[len(script) :]
    ]


def test_setbit_at_the_limit_crosses_the_pipe(oracle: ServerProcess, clone: ServerProcess) -> None:
    """The longest string SETBIT may make, read back whole."""
    script = [
        c("setbit", "k", MAX_BULK * 8 - 1, 1),
        c("bitcount", "k"),
        c("bitpos", "k", 1),
        c("bitfield_ro", "k", "get", "u8", MAX_BULK * 8 - 8),
        c("strlen", "k"),
    ]
    compare(oracle, clone, script)
    assert (
        run(clone, [*script, c("get", "k")], 2)[-1] == run(oracle, [*script, c("get", "k")], 2)[-1]
    )
