"""Redis Cluster hash slots, and the map from slots to shards.

A key lives in slot ``CRC16-XMODEM(key) mod 16384``; when the key contains a non-empty
``{tag}``, only the tag is hashed, so keys that share a tag share a slot (and a shard).
``binascii.crc_hqx`` is CRC16-CCITT with a caller-given seed; seeded with 0 it is exactly the
XMODEM variant Redis uses, computed in C.
"""

from binascii import crc_hqx

SLOT_COUNT = 16384


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: the first non-empty ``{...}`` section, else all."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def slot_for_key(key: bytes) -> int:
    """The Redis Cluster hash slot of ``key`` (what ``CLUSTER KEYSLOT`` answers)."""
    if b"{" in key:
        key = hash_tag(key)
    return crc_hqx(key, 0) & 0x3FFF


def slot_ranges(shard_count: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal slot ranges ``(first, last)`` inclusive, one per shard.

    Contiguous ranges are what Redis Cluster assigns by default (``redis-cli --cluster create``)
    and make each shard's ownership printable in one line.
    """
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    base, extra = divmod(SLOT_COUNT, shard_count)
    ranges = []
    first = 0
    for index in range(shard_count):
        size = base + (1 if index < extra else 0)
        ranges.append((first, first + size - 1))
        first += size
    return ranges


def shard_table(shard_count: int) -> list[int]:
    """A list indexed by slot, giving the shard that owns the slot."""
    table = [0] * SLOT_COUNT
    for shard, (first, last) in enumerate(slot_ranges(shard_count)):
        for slot in range(first, last + 1):
            table[slot] = shard
    return table
