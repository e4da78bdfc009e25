"""Redis's CRC-64 (Jones polynomial, reflected, init 0, no final xor) and CRC combination.

The checksum itself is computed by ``crcmod``'s C extension (hundreds of MB/s; a table
look-up per byte in Python would give a few MB/s, which made DUMP of a large value or the
load of a large dump take seconds per MB). A snapshot is checksummed in pieces by the shard
processes that write them, in parallel, and the acceptor joins the pieces' checksums with
:func:`combine` (zlib's ``crc32_combine`` method, for 64 bits), which costs O(log length) and
never re-reads the data.
"""

from __future__ import annotations

import crcmod

#: The Jones polynomial 0xad93d23594c935a9, bit-reversed (the CRC is reflected).
POLY = 0x95AC9329AC4BC9B5
_MASK = (1 << 64) - 1


#: crcmod names the polynomial unreflected, with its x**64 term.
_crc64 = crcmod.mkCrcFun(0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0)


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC of ``data``, continuing from ``crc`` (the CRC of what came before)."""
    return _crc64(bytes(data) if data.__class__ is memoryview else data, crc)


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
