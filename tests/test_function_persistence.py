"""FUNCTION LOAD's libraries across restarts: in dump.rdb (as redis-server 7.0 writes and reads
them, FUNCTION2 records), in the append-only log, on every acceptor and shard afterwards.

The first tests run a shard object alone (its library parts, its log, its loader); the
others get their own ``dir`` (tmp_path) and fresh servers from ``clone_factory``; a restart
is a new process on the same directory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from conftest import (
    ServerPool,
    ServerProcess,
    ServerStartError,
    free_port,
    proc_children,
    start_redis_in,
    wait_redis,
    wait_until,
)

from shardserver.persistence import rdb
from shardserver.persistence.loader import load
from shardserver.shard import Shard

AOF = ["--appendonly", "yes", "--appendfsync", "always"]
NO_SAVE = ["--save", ""]

WRITER = (
    "#!lua name=writer\n"
    "redis.register_function('put', function(keys, args) "
    "return redis.call('SET', keys[1], args[1]) end)\n"
    "redis.register_function{function_name='peek', description='reads a key', "
    "callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}"
)
COUNTER = (
    "#!lua name=counter\n"
    "redis.register_function('bump', function(keys) return redis.call('INCR', keys[1]) end)"
)
#: Keys that land on every shard of a 4-shard server (slots 0-4095 ... 12288-16383).
KEYS = ["{a}", "{b}", "{c}", "{d}", "k1", "k2", "k3", "k4"]


def _library(name: str, function: str, value: int) -> str:
    return (
        f"#!lua name={name}\nredis.register_function('{function}', function() return {value} end)"
    )


def _shard(directory: Path, index: int = 0, shards: int = 1) -> Shard:
    settings = {
        "appendonly": "yes",
        "appendfsync": "no",
        "dir": str(directory),
        "appendfilename": "appendonly.aof",
        "shards": shards,
        "aof-layout": shards,
    }
    shard = Shard(index, settings)
    load(shard, shards)
    return shard


def _run(shard: Shard, *parts: list[bytes]) -> list:
    replies = shard.execute_batch([[0, part] for part in parts])
    shard.persistence.flush()
    return replies


def test_shard_zero_logs_each_change_it_is_sent_to_log(tmp_path: Path) -> None:
    shard = _shard(tmp_path)
    replies = _run(
        shard,
        [b"@function-load", b"log", _library("one", "f1", 1).encode()],
        [b"@function-load", b"copy", _library("two", "f2", 2).encode()],  # not logged
        [b"@function-load", b"log", WRITER.encode()],
        [b"@function-delete", b"log", b"one"],
        [b"@function-load", b"log", b"#!lua name=bad\nnot lua"],  # refused: not logged
        [b"@function-codes"],
    )
    assert replies[4][0].startswith(b"-ERR Error compiling function")
    assert replies[5] == [_library("two", "f2", 2).encode(), WRITER.encode()]
    assert shard.persistence.dirty == 3
    shard.persistence.close()
    again = _shard(tmp_path)
    # The copy was never logged: what a restart loads is what the log holds.
    assert list(again.scripts.library_code) == [b"writer"]
    assert b"put" in again.scripts.engine.library_functions
    again.persistence.close()


def test_other_shards_keep_no_library_history(tmp_path: Path) -> None:
    shard = _shard(tmp_path, index=1, shards=2)
    _run(shard, [b"@function-load", b"log", WRITER.encode()], [b"set", b"k", b"v"])
    assert list(shard.scripts.library_code) == [b"writer"]  # it has it, to run FCALL
    shard.persistence.close()
    (log,) = tmp_path.glob("*.2.1.*.incr")
    assert b"FUNCTION" not in log.read_bytes()


def test_a_fragment_starts_with_its_libraries_and_a_dump_reads_them(tmp_path: Path) -> None:
    chunks: list[bytes] = []
    codes = [WRITER.encode(), COUNTER.encode()]
    size, crc, keys = rdb.write_fragment(chunks.append, [(0, {b"k": b"v"}, {})], 0, libraries=codes)
    fragment = b"".join(chunks)
    assert fragment.startswith(bytes((rdb.OP_FUNCTION2,)))
    head = rdb.header(rdb.default_aux())
    tail, _crc = rdb.trailer_crc(head, [(size, crc)])
    path = tmp_path / "dump.rdb"
    path.write_bytes(head + fragment + tail)
    found: list[bytes] = []
    read = list(rdb.read_dump(str(path), path.read_bytes(), library=found.append))
    assert found == codes
    assert [(db, key) for db, key, _value, _deadline in read] == [(0, b"k")]
    assert keys == 1


def _dir(tmp_path: Path) -> list[str]:
    return ["--dir", str(tmp_path)]


def _libraries(client: redis.Redis) -> tuple[list, bytes]:
    """FUNCTION LIST WITHCODE and FUNCTION DUMP: what must be the same after a restart."""
    return client.execute_command("FUNCTION", "LIST", "WITHCODE"), client.function_dump()


def _by_name(listing: list) -> dict[bytes, dict]:
    """A FUNCTION LIST reply as {library name: its fields}, function lists in name order (Redis
    lists a library's functions in its hash table's order)."""
    out = {}
    for entry in listing:
        fields = dict(entry)
        fields[b"functions"] = sorted(
            (dict(f, flags=sorted(f[b"flags"])) for f in fields[b"functions"]),
            key=lambda f: f[b"name"],
        )
        out[fields[b"library_name"]] = fields
    return out


def _check_calls(client: redis.Redis, tag: str) -> None:
    """Every shard's interpreter has the writer library: FCALL on a key of each shard."""
    for key in KEYS:
        assert client.fcall("put", 1, key, f"{tag}-{key}") == b"OK"
        assert client.fcall_ro("peek", 1, key) == f"{tag}-{key}".encode()


def _restart(pool: ServerPool, server: ServerProcess, shards: int, args: list[str]):
    server.stop()  # SIGTERM
    return pool.start_clone(shards, args)


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("how", ["SAVE", "BGSAVE", "SIGTERM"])
def test_libraries_in_the_dump_survive_a_restart(
    clone_factory: ServerPool, tmp_path: Path, shards: int, how: str
) -> None:
    args = [*_dir(tmp_path), "--save", "3600 1" if how == "SIGTERM" else ""]
    server = clone_factory.start_clone(shards, args)
    client = server.client()
    client.function_load(WRITER)
    client.function_load(COUNTER)
    _check_calls(client, "before")
    before = _libraries(client)
    if how == "SAVE":
        assert client.save()
    elif how == "BGSAVE":
        client.bgsave()
        assert wait_until(lambda: not client.info("persistence")["rdb_bgsave_in_progress"], 10)
        assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"
    server = _restart(clone_factory, server, shards, args)
    client = server.client()
    assert _libraries(client) == before
    assert [client.get(key) for key in KEYS] == [f"before-{key}".encode() for key in KEYS]
    _check_calls(client, "after")
    assert client.fcall("bump", 1, "n") == 1
    with pytest.raises(redis.ResponseError, match="already exists"):
        client.function_load(WRITER)


def test_a_dump_holds_the_libraries_of_its_cut(clone_factory: ServerPool, tmp_path: Path) -> None:
    """What changed after SAVE is not in the dump; what was deleted before it is gone."""
    args = [*_dir(tmp_path), *NO_SAVE]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    client.function_load(_library("gone", "g", 1))
    client.function_load(WRITER)
    client.function_delete("gone")
    client.function_load(_library("kept", "k", 1))
    client.function_load(_library("kept", "k", 2), replace=True)
    before = _libraries(client)
    assert client.save()
    client.function_load(_library("late", "l", 1))
    server = _restart(clone_factory, server, 4, args)
    client = server.client()
    assert _libraries(client) == before
    assert client.fcall("k", 0) == 2
    assert len(client.function_list()) == 2


@pytest.mark.parametrize("shards", [1, 4])
def test_library_changes_in_the_log_survive_a_restart(
    clone_factory: ServerPool, tmp_path: Path, shards: int
) -> None:
    args = [*AOF, *_dir(tmp_path), *NO_SAVE]
    server = clone_factory.start_clone(shards, args)
    client = server.client()
    client.function_load(_library("one", "f1", 1))
    client.function_load(_library("two", "f2", 2))
    client.function_delete("one")
    client.function_load(_library("two", "f2", 22), replace=True)
    client.function_flush()
    client.function_load(WRITER)
    client.function_load(_library("three", "f3", 3))
    payload = client.function_dump()
    client.function_restore(payload, "FLUSH")
    _check_calls(client, "before")
    client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "by-eval", "x")
    # Keys of two shards: the script runs over every shard held; its writes are logged too.
    two = "redis.call('SET', KEYS[1], 'y') return redis.call('SET', KEYS[2], 'z')"
    client.eval(two, 2, "{a}:e", "{b}:e")
    before = _libraries(client)
    # SIGKILL: nothing is written at exit; with appendfsync always it was all on disk.
    os.killpg(server.pid, signal.SIGKILL)
    server.stop()
    server = clone_factory.start_clone(shards, args)
    client = server.client()
    assert _libraries(client) == before
    assert client.mget("by-eval", "{a}:e", "{b}:e") == [b"x", b"y", b"z"]
    assert [client.get(key) for key in KEYS] == [f"before-{key}".encode() for key in KEYS]
    _check_calls(client, "after")
    assert client.fcall("f3", 0) == 3
    # Shard 0's log holds each change once (not once per shard or acceptor).
    logged = b"".join(path.read_bytes() for path in tmp_path.glob(f"*.{shards}.0.*"))
    assert logged.count(b"FUNCTION") == 10  # 7 changes, and RESTORE FLUSH as FLUSH + 2 loads
    others = b"".join(
        path.read_bytes() for path in tmp_path.glob("*.incr") if ".0." not in path.name
    )
    assert b"FUNCTION" not in others


def test_a_log_rewrite_starts_with_the_libraries(clone_factory: ServerPool, tmp_path: Path) -> None:
    args = [*AOF, *_dir(tmp_path), *NO_SAVE]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    client.function_load(_library("old", "o", 1))
    client.function_load(WRITER)
    client.function_delete("old")
    client.bgrewriteaof()

    def rewritten() -> bool:
        # The new base is in place once the old generation's files are gone.
        return any(tmp_path.glob("*.4.0.*.base")) and not any(tmp_path.glob("*.4.0.1.*"))

    assert wait_until(rewritten, 10)
    (base,) = tmp_path.glob("*.4.0.*.base")
    assert base.read_bytes().count(b"FUNCTION") == 1  # the writer library, loaded
    client.function_load(COUNTER)
    before = _libraries(client)
    server = _restart(clone_factory, server, 4, args)
    assert _libraries(server.client()) == before
    # Another shard count reads every old shard's files; the libraries come with shard 0's.
    server = _restart(clone_factory, server, 2, args)
    client = server.client()
    assert _libraries(client) == before
    _check_calls(client, "two-shards")


def test_libraries_reach_every_acceptor_after_a_restart(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*AOF, *_dir(tmp_path), *NO_SAVE, "--acceptors", "2"]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    client.function_load(WRITER)
    client.function_load(_library("x", "fx", 1))
    client.function_delete("x")
    # The other acceptor hears of each change; its copy is not logged again.
    assert wait_until(
        lambda: all(len(redis.Redis(port=server.port).function_list()) == 1 for _ in range(8)), 5
    )
    before = _libraries(client)
    server = _restart(clone_factory, server, 4, args)
    # New connections spread over both acceptors (SO_REUSEPORT): each must know the library.
    for round_ in range(12):
        each = redis.Redis(port=server.port)
        assert _libraries(each) == before
        _check_calls(each, f"round{round_}")
        each.close()
    (log,) = tmp_path.glob("*.4.0.*.incr")
    assert log.read_bytes().count(b"FUNCTION") == 3


def _shard_pid(server: ServerProcess, index: int) -> int | None:
    """The pid of shard ``index``'s process (a child of the main process), if it runs."""
    for pid in proc_children(server.pid):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == f"redis-clone-s{index}":
                    return pid
        except FileNotFoundError:
            continue
    return None


@pytest.mark.parametrize("persistence", ["rdb", "aof"])
def test_a_restarted_shard_gets_the_libraries_again(
    clone_factory: ServerPool, tmp_path: Path, persistence: str
) -> None:
    args = [*_dir(tmp_path), *NO_SAVE, *(AOF if persistence == "aof" else [])]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    client.function_load(_library("stale", "s", 1))
    client.function_load(WRITER)
    assert client.save()
    client.function_delete("stale")  # shard 0's dump still has it
    client.function_load(COUNTER)
    before = _libraries(client)
    for index in (0, 2):
        victim = _shard_pid(server, index)
        os.kill(victim, signal.SIGKILL)
        reborn = lambda: _shard_pid(server, index) not in (None, victim)  # noqa: B023, E731
        assert wait_until(reborn, 10)
        assert wait_until(lambda: _serves(client), 10)
        _check_calls(client, f"after-kill-{index}")
        assert client.fcall("bump", 1, "{a}:count") >= 1
        assert _libraries(client) == before
    assert client.save()
    server = _restart(clone_factory, server, 4, args)
    assert _libraries(server.client()) == before


def _serves(client: redis.Redis) -> bool:
    """Whether an FCALL on shard 0 answers (not the error of the shard that died under it)."""
    try:
        return bool(client.fcall("bump", 1, "{a}:count"))
    except redis.ResponseError:
        return False


def test_we_load_a_dump_of_redis_server_with_functions(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    port = free_port()
    proc = start_redis_in(tmp_path, ["--port", str(port), *NO_SAVE])
    try:
        client = wait_redis(port)
        client.function_load(WRITER)
        client.function_load(COUNTER)
        client.set("plain", "v")
        expected = _by_name(client.execute_command("FUNCTION", "LIST", "WITHCODE"))
        client.save()
    finally:
        proc.kill()
        proc.wait()
    server = clone_factory.start_clone(4, _dir(tmp_path))
    client = server.client()
    assert _by_name(client.execute_command("FUNCTION", "LIST", "WITHCODE")) == expected
    assert client.get("plain") == b"v"
    _check_calls(client, "ours")
    assert client.fcall("bump", 1, "n") == 1


def test_redis_server_loads_our_dump_with_functions(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    server = clone_factory.start_clone(4, _dir(tmp_path))
    client = server.client()
    client.function_load(WRITER)
    client.function_load(COUNTER)
    _check_calls(client, "ours")
    expected = _by_name(client.execute_command("FUNCTION", "LIST", "WITHCODE"))
    assert client.save()
    server.stop()
    port = free_port()
    proc = start_redis_in(tmp_path, ["--port", str(port), *NO_SAVE])
    try:
        theirs = wait_redis(port)
        assert _by_name(theirs.execute_command("FUNCTION", "LIST", "WITHCODE")) == expected
        assert theirs.fcall_ro("peek", 1, "k1") == b"ours-k1"
        assert theirs.fcall("bump", 1, "n") == 1
    finally:
        proc.kill()
        proc.wait()


def _dump_with(path: Path, records: bytes) -> None:
    """A dump whose only content is ``records`` (function records) and one key."""
    head = rdb.header(rdb.default_aux())
    body = records + b"\xfe\x00\x00\x03key\x05value"
    path.write_bytes(head + body + rdb.trailer_crc(head + body, [])[0])


def _function2(code: str) -> bytes:
    return bytes((rdb.OP_FUNCTION2,)) + rdb.encode_string(code.encode())


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            _function2("#!lua name=bad\nthis is not lua"),
            "Failed loading library, Error compiling function",
        ),
        (_function2("no metadata"), "Failed loading library, Missing library metadata"),
        (
            _function2(WRITER) + _function2(WRITER),
            "Failed loading library, Library 'writer' already exists",
        ),
        (
            _function2(_library("one", "same", 1)) + _function2(_library("two", "same", 2)),
            "Failed loading library, Function same already exists",
        ),
        (
            bytes((rdb.OP_FUNCTION_PRE_GA,)) + rdb.encode_string(b"lib"),
            "Pre-release function format not supported",
        ),
    ],
    ids=["compile", "metadata", "duplicate", "collision", "pre-ga"],
)
def test_a_library_that_does_not_load_stops_the_start(
    clone_factory: ServerPool, tmp_path: Path, records: bytes, message: str
) -> None:
    _dump_with(tmp_path / "dump.rdb", records)
    with pytest.raises(ServerStartError, match="exited with status [1-9]") as refused:
        clone_factory.start_clone(2, _dir(tmp_path))
    assert message in str(refused.value)


def test_a_library_that_does_not_load_from_the_log_stops_the_start(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*AOF, *_dir(tmp_path), *NO_SAVE]
    server = clone_factory.start_clone(1, args)
    server.client().function_load(WRITER)
    server.stop()
    (log,) = tmp_path.glob("*.1.0.*.incr")
    # Same length, so the record still parses: only the library's Lua is broken.
    log.write_bytes(log.read_bytes().replace(b"redis.call('SET'", b"redis.call(@SET'"))
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="Failed loading library, Error compiling function"):
        clone_factory.start_clone(1, args)
    assert time.monotonic() - started < 20
