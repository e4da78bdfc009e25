"""Listpacks (Redis's ``listpack.c``): the compact encoding of small hashes, sorted sets and
of each quicklist node, as RDB files and DUMP payloads carry them.

A listpack is its total size (uint32 little-endian), its entry count (uint16; 65535 means
"count them"), the entries and an end byte 0xFF. An entry is an encoding byte (with the
string length or the integer), the data, and a *backlen*: the size of encoding plus data in
one to five bytes, so the listpack can be walked from the end.

Strings that read as 64-bit integers (``string2ll``) are stored as integers in the narrowest
of seven forms, as ``lpAppend`` stores them; reading gives them back as decimal strings.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from shardserver.numbers import parse_int

#: Header (total bytes, count) and end byte: the size of an empty listpack.
EMPTY_SIZE = 7
_UNKNOWN_COUNT = 65535
_END = 0xFF

_pack_i16 = struct.Struct("<h").pack
_pack_i32 = struct.Struct("<i").pack
_pack_i64 = struct.Struct("<q").pack
_unpack_from_i16 = struct.Struct("<h").unpack_from
_unpack_from_i32 = struct.Struct("<i").unpack_from
_unpack_from_i64 = struct.Struct("<q").unpack_from
_unpack_from_u32 = struct.Struct("<I").unpack_from
_header = struct.Struct("<IH")


def backlen(size: int) -> bytes:
    """An entry's backlen: ``size`` in 7-bit groups, most significant first, every byte but
    the first with its top bit set (read backwards, the top bit says "more")."""
    if size <= 127:
        return bytes((size,))
    if size < 16383:
        return bytes((size >> 7, (size & 127) | 128))
    if size < 2097151:
        return bytes((size >> 14, ((size >> 7) & 127) | 128, (size & 127) | 128))
    if size < 268435455:
        return bytes(
            (size >> 21, ((size >> 14) & 127) | 128, ((size >> 7) & 127) | 128, (size & 127) | 128)
        )
    return bytes(
        (
            size >> 28,
            ((size >> 21) & 127) | 128,
            ((size >> 14) & 127) | 128,
            ((size >> 7) & 127) | 128,
            (size & 127) | 128,
        )
    )


def _backlen_size(size: int) -> int:
    if size <= 127:
        return 1
    if size < 16383:
        return 2
    if size < 2097151:
        return 3
    if size < 268435455:
        return 4
    return 5


def entry(element: bytes) -> bytes:
    """One element as a listpack entry, backlen included (``lpAppend``'s choice of form)."""
    size = len(element)
    number = parse_int(element) if size <= 20 else None
    if number is not None:
        if 0 <= number <= 127:
            return bytes((number, 1))
        if -4096 <= number <= 4095:
            number &= 0x1FFF
            return bytes((0xC0 | (number >> 8), number & 0xFF, 2))
        if -32768 <= number <= 32767:
            return b"\xf1" + _pack_i16(number) + b"\x03"
        if -8388608 <= number <= 8388607:
            return b"\xf2" + (number & 0xFFFFFF).to_bytes(3, "little") + b"\x04"
        if -2147483648 <= number <= 2147483647:
            return b"\xf3" + _pack_i32(number) + b"\x05"
        return b"\xf4" + _pack_i64(number) + b"\x09"
    if size < 64:
        return bytes((0x80 | size,)) + element + bytes((size + 1,))
    if size < 4096:
        return bytes((0xE0 | (size >> 8), size & 0xFF)) + element + backlen(size + 2)
    return b"\xf0" + struct.pack("<I", size) + element + backlen(size + 5)


def join(entries: list[bytes]) -> bytes:
    """A listpack from entries made by :func:`entry`."""
    body = b"".join(entries)
    count = len(entries)
    head = _header.pack(len(body) + EMPTY_SIZE, count if count < _UNKNOWN_COUNT else _UNKNOWN_COUNT)
    return head + body + b"\xff"


def build(elements: Iterable[bytes]) -> bytes:
    """A listpack holding ``elements`` in order."""
    return join([entry(element) for element in elements])


def parse(blob: bytes) -> list[bytes]:
    """The elements of a listpack, integers as decimal strings; ValueError if malformed
    (sizes that disagree, an entry running past the end, an unknown encoding)."""
    size = len(blob)
    if size < EMPTY_SIZE:
        raise ValueError("listpack shorter than its header")
    total, count = _header.unpack_from(blob)
    if total != size or blob[-1] != _END:
        raise ValueError("listpack size or end byte does not match its header")
    out: list[bytes] = []
    append = out.append
    pos = 6
    end = size - 1
    while pos < end:
        first = blob[pos]
        if first < 0x80:  # 7-bit unsigned integer
            append(b"%d" % first)
            pos += 2
            continue
        if first < 0xC0:  # string up to 63 bytes
            length = first & 0x3F
            start = pos + 1
            append(blob[start : start + length])
            pos = start + length + 1
            continue
        if first < 0xE0:  # 13-bit signed integer
            number = ((first & 0x1F) << 8) | blob[pos + 1]
            append(b"%d" % (number - 0x2000 if number >= 0x1000 else number))
            pos += 3
            continue
        if first < 0xF0:  # string up to 4095 bytes
            length = ((first & 0x0F) << 8) | blob[pos + 1]
            start = pos + 2
            append(blob[start : start + length])
            pos = start + length + _backlen_size(length + 2)
            continue
        if first == 0xF0:  # string with a 32-bit length
            length = _unpack_from_u32(blob, pos + 1)[0]
            start = pos + 5
            append(blob[start : start + length])
            pos = start + length + _backlen_size(length + 5)
            continue
        if first == 0xF1:
            append(b"%d" % _unpack_from_i16(blob, pos + 1)[0])
            pos += 4
        elif first == 0xF2:
            number = int.from_bytes(blob[pos + 1 : pos + 4], "little", signed=True)
            append(b"%d" % number)
            pos += 5
        elif first == 0xF3:
            append(b"%d" % _unpack_from_i32(blob, pos + 1)[0])
            pos += 6
        elif first == 0xF4:
            append(b"%d" % _unpack_from_i64(blob, pos + 1)[0])
            pos += 10
        else:
            raise ValueError(f"unknown listpack encoding 0x{first:02x} at {pos}")
    if pos != end:
        raise ValueError("listpack entry runs past the end")
    if count != _UNKNOWN_COUNT and count != len(out):
        raise ValueError(f"listpack header says {count} entries, it holds {len(out)}")
    return out
