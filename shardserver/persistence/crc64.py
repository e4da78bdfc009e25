"""Redis's CRC-64 (Jones polynomial, reflected, init 0, no final xor) and CRC combination.

Pure Python costs a table look-up per byte (a few MB/s), so a snapshot is checksummed in
pieces by the shard processes that write them, in parallel, and the acceptor joins the
pieces' checksums with :func:`combine` (zlib's ``crc32_combine`` method, for 64 bits), which
costs O(log length) and never re-reads the data.
"""

from __future__ import annotations

#: The Jones polynomial 0xad93d23594c935a9, bit-reversed (the CRC is reflected).
POLY = 0x95AC9329AC4BC9B5
_MASK = (1 << 64) - 1


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC of ``data``, continuing from ``crc`` (the CRC of what came before)."""
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _times(matrix: list[int], vector: int) -> int:
    total = 0
    index = 0
    while vector:
        if vector & 1:
            total ^= matrix[index]
        vector >>= 1
        index += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, row) for row in matrix]


def combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC of A followed by B, from crc(A), crc(B) and len(B) (a linear CRC, init 0)."""
    if length_b <= 0:
        return crc_a
    odd = [POLY] + [1 << (i - 1) for i in range(1, 64)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)  # first pass: one zero byte
        if length_b & 1:
            crc_a = _times(even, crc_a)
        length_b >>= 1
        if not length_b:
            break
        odd = _square(even)
        if length_b & 1:
            crc_a = _times(odd, crc_a)
        length_b >>= 1
        if not length_b:
            break
    return (crc_a ^ crc_b) & _MASK
