"""Hash slots: Redis Cluster's CRC16 with hash tags, and the slot-to-shard map."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardserver.slots import SLOT_COUNT, hash_tag, shard_table, slot_for_key, slot_ranges


def crc16_xmodem(data: bytes) -> int:
    """Bit-by-bit reference CRC16-XMODEM (polynomial 0x1021, initial 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"somekey", 11058),
        (b"foo{hash_tag}", 2515),
        (b"hash_tag", 2515),
        (b"foo", 12182),
        (b"", 0),
        (b"{}", 15257),
        (b"{}foo", 9500),
        (b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", 4015),
        (b"foo{bar}{zap}", 5061),
    ],
)
def test_known_slots(key: bytes, slot: int) -> None:
    assert slot_for_key(key) == slot


@given(st.binary(max_size=64))
def test_slot_is_crc16_of_the_tag(key: bytes) -> None:
    assert slot_for_key(key) == crc16_xmodem(hash_tag(key)) % SLOT_COUNT


def test_tagged_keys_share_a_slot() -> None:
    assert slot_for_key(b"user:{42}:name") == slot_for_key(b"user:{42}:email")


def test_hash_tag_rules() -> None:
    assert hash_tag(b"a{b}c") == b"b"
    assert hash_tag(b"a{}c") == b"a{}c"
    assert hash_tag(b"a{b") == b"a{b"
    assert hash_tag(b"a}b{c}") == b"c"


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7, 16])
def test_ranges_cover_every_slot_once(shards: int) -> None:
    ranges = slot_ranges(shards)
    assert len(ranges) == shards
    assert ranges[0][0] == 0 and ranges[-1][1] == SLOT_COUNT - 1
    for (_, last), (first, _) in zip(ranges, ranges[1:], strict=False):
        assert first == last + 1
    table = shard_table(shards)
    assert sorted(set(table)) == list(range(shards))


def test_zero_shards_is_refused() -> None:
    with pytest.raises(ValueError):
        slot_ranges(0)
