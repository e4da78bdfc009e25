"""Persistence without processes: CRC-64, the RDB codec, AOF replay and damage, the journal.

A shard is a plain object, so these tests run batches through one with the log on, replay
its files into a fresh shard and compare the keyspaces: whatever the commands were, the log
must rebuild the same keys, values and deadlines.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from shardserver.keyspace import now_ms
from shardserver.persistence import aof, rdb
from shardserver.persistence.crc64 import combine, crc64
from shardserver.persistence.loader import LoadError, load
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key


def test_crc64_matches_redis_check_value() -> None:
    # Redis's crc64.c test: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA


def test_crc64_combine_equals_crc_of_concatenation() -> None:
    a, b = b"x" * 1000 + b"abc", bytes(range(256)) * 7
    assert combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert combine(crc64(a), crc64(b""), 0) == crc64(a)


def _dump(databases: list[tuple[int, dict, dict]], now: int) -> bytes:
    chunks: list[bytes] = []
    size, crc, _ = rdb.write_fragment(chunks.append, databases, now)
    head = rdb.header(rdb.default_aux())
    tail, _ = rdb.trailer_crc(head, [(size, crc)])
    return head + b"".join(chunks) + tail


def test_rdb_round_trip_keeps_values_and_deadlines() -> None:
    now = now_ms()
    long_value = b"v" * 70000
    data = _dump(
        [(0, {b"a": b"1", b"big": long_value}, {b"a": now + 5000}), (5, {b"k": b""}, {})], now
    )
    assert data.startswith(b"REDIS0010")
    got = list(rdb.read_dump("x.rdb", data))
    assert got == [(0, b"a", b"1", now + 5000), (0, b"big", long_value, None), (5, b"k", b"", None)]


def test_rdb_leaves_out_expired_keys() -> None:
    now = now_ms()
    data = _dump([(0, {b"gone": b"1", b"kept": b"2"}, {b"gone": now - 1})], now)
    assert [key for _, key, _, _ in rdb.read_dump("x", data)] == [b"kept"]


def test_rdb_damage_names_the_offset() -> None:
    data = bytearray(_dump([(0, {b"a": b"1"}, {})], now_ms()))
    with pytest.raises(rdb.RdbError, match="truncated at offset"):
        list(rdb.read_dump("x.rdb", bytes(data[:-12])))
    data[-12] ^= 0xFF  # the last value byte: the checksum no longer matches
    with pytest.raises(rdb.RdbError, match="checksum"):
        list(rdb.read_dump("x.rdb", bytes(data)))
    unsupported = _dump([], now_ms())[:-9] + b"\x15\x01k\x00"  # a Redis 7.2 stream
    with pytest.raises(rdb.RdbError, match="type or opcode 21 at offset"):
        list(rdb.read_dump("x.rdb", unsupported))


def test_lzf_decompress_back_references() -> None:
    # literal "abc" (ctrl 2), then a back reference of length 7+2 at distance 3
    assert rdb.lzf_decompress(b"\x02abc\xe0\x00\x02", 12) == b"abc" * 4


def _replay_all(path: Path, allow: bool = True) -> tuple[list, int | None]:
    seen: list = []
    count, cut = aof.replay(str(path), seen.append, allow)
    assert count == len(seen)
    return seen, cut


def test_aof_truncated_tail_loads_up_to_last_complete_command(tmp_path: Path) -> None:
    path = tmp_path / "log"
    whole = aof.command(b"SET", b"a", b"1") + aof.command(b"SET", b"b", b"2")
    path.write_bytes(whole + b"*3\r\n$3\r\nSET\r\n$1\r\nc")
    seen, cut = _replay_all(path)
    assert seen == [[b"SET", b"a", b"1"], [b"SET", b"b", b"2"]]
    assert cut == len(whole)
    with pytest.raises(aof.AofError, match="truncated at offset"):
        _replay_all(path, allow=False)


def test_aof_corruption_in_the_middle_names_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "log"
    first = aof.command(b"SET", b"a", b"1")
    path.write_bytes(first + b"garbage\r\n" + aof.command(b"SET", b"b", b"2"))
    with pytest.raises(aof.AofError, match=f"offset {len(first)}"):
        _replay_all(path)


def _settings(tmp_path: Path, shards: int = 1, **extra: str) -> dict:
    return {
        "appendonly": "yes",
        "appendfsync": "always",
        "dir": str(tmp_path),
        "appendfilename": "appendonly.aof",
        "dbfilename": "dump.rdb",
        "shards": shards,
        "aof-layout": shards,
        **extra,
    }


def _run(shard: Shard, *commands: list[bytes], db: int = 0) -> list:
    batch = [[db * 2, list(argv)] for argv in commands]
    replies = shard.execute_batch(batch)
    shard.persistence.flush()
    return replies


def _state(shard: Shard) -> list:
    return [
        (index, sorted(db.data.items()), sorted(db.expires.deadline.items()))
        for index, db in enumerate(shard.dbs)
    ]


def test_journal_replay_rebuilds_the_keyspace(tmp_path: Path) -> None:
    shard = Shard(0, _settings(tmp_path))
    load(shard, 1)
    _run(
        shard,
        [b"set", b"a", b"1", b"EX", b"100"],
        [b"incrbyfloat", b"f", b"1.5"],
        [b"setex", b"s", b"50", b"v"],
        [b"set", b"gone", b"x"],
        [b"getex", b"s", b"PERSIST"],
        [b"append", b"a", b"23"],
        [b"del", b"gone"],
        [b"mset", b"m1", b"1", b"m2", b"2"],
        [b"move", b"m1", b"3"],
        [b"copy", b"m2", b"c2", 4, False],
    )
    _run(shard, [b"@swapdb", b"3", b"5"])
    _run(shard, [b"set", b"x", b"1"], [b"@flushdb"], db=7)
    shard.persistence.close()
    again = Shard(0, _settings(tmp_path))
    load(again, 1)
    assert _state(again) == _state(shard)
    assert again.dbs[5].data == {b"m1": b"1"}
    assert again.dbs[0].expires.deadline[b"a"] > now_ms()


def test_load_refuses_a_corrupt_log_and_leaves_it_alone(tmp_path: Path) -> None:
    shard = Shard(0, _settings(tmp_path))
    load(shard, 1)
    _run(shard, [b"set", b"a", b"1"], [b"set", b"b", b"2"])
    shard.persistence.close()
    (path,) = tmp_path.glob("*.incr")
    damaged = path.read_bytes().replace(b"$1\r\na", b"$9\r\na")
    path.write_bytes(damaged)
    with pytest.raises(LoadError, match=f"{path.name}: .*offset"):
        load(Shard(0, _settings(tmp_path)), 1)
    assert path.read_bytes() == damaged


def test_four_shard_log_reloads_into_two_shards(tmp_path: Path) -> None:
    shards = [Shard(i, _settings(tmp_path, 4)) for i in range(4)]
    table = shard_table(4)
    keys = [b"key:%d" % i for i in range(200)]
    for shard in shards:
        load(shard, 4)
    for key in keys:
        _run(shards[table[slot_for_key(key)]], [b"set", key, key + b"!"])
    _run(shards[0], [b"@flushall"])  # only shard 0's keys go
    for shard in shards:
        shard.persistence.close()
    survivors = {k for k in keys if table[slot_for_key(k)] != 0}
    loaded: set[bytes] = set()
    for index in range(2):
        shard = Shard(index, _settings(tmp_path, 2, **{"aof-layout": 4}))
        load(shard, 4)
        loaded |= set(shard.dbs[0].data)
        shard.persistence.close()
    assert loaded == survivors


def test_fragment_trailer_layout(tmp_path: Path) -> None:
    shard = Shard(0, {"save": "1 1"})
    shard.dbs[0].store(b"a", b"1")
    path = tmp_path / "frag"
    pid = shard.persistence.start_snapshot(str(path))
    assert pid > 0
    while shard.persistence.snapshot_status() is None:
        pass
    data = path.read_bytes()
    size, crc = struct.unpack("<QQ", data[-16:])
    assert size == len(data) - 16 and crc == crc64(data[:-16])
