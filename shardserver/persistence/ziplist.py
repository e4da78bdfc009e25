"""The older compact encodings that Redis 7.0 still reads from RDB files, read only:
ziplists (lists, hashes and sorted sets before 7.0, and quicklist nodes before 7.0) and
zipmaps (hashes before 2.6). Redis converts both to listpacks on load; so do we, to plain
elements.

A ziplist is its total size and tail offset (uint32 little-endian each), its entry count
(uint16; 65535 means "count them"), the entries and an end byte 0xFF. An entry is the
previous entry's size (one byte, or 0xFE and a uint32), an encoding (string lengths of 6,
14 or 32 bits, the latter two big-endian; or one of six integer widths, 4-bit immediates
0..12 included) and the data.

A zipmap is a count byte (254 or more: "count them"), then per pair the field's length,
the field, the value's length, a byte of free space after the value, the value and that
free space, and an end byte 0xFF. Lengths are one byte below 254, else 254 and a uint32.
"""

from __future__ import annotations

import struct

_header = struct.Struct("<IIH")
_unpack_from_u32 = struct.Struct("<I").unpack_from
_unpack_from_be_u32 = struct.Struct(">I").unpack_from
_INTEGERS = {
    0xC0: struct.Struct("<h"),
    0xD0: struct.Struct("<i"),
    0xE0: struct.Struct("<q"),
    0xFE: struct.Struct("<b"),
}
_UNKNOWN_COUNT = 65535


def parse(blob: bytes) -> list[bytes]:
    """The elements of a ziplist, integers as decimal strings; ValueError if malformed."""
    size = len(blob)
    if size < 11:
        raise ValueError("ziplist shorter than its header")
    total, _tail, count = _header.unpack_from(blob)
    if total != size or blob[-1] != 0xFF:
        raise ValueError("ziplist size or end byte does not match its header")
    out: list[bytes] = []
    pos = 10
    end = size - 1
    while pos < end:
        pos += 1 if blob[pos] < 0xFE else 5  # the previous entry's size
        first = blob[pos]
        kind = first >> 6
        if kind < 3:
            if kind == 0:
                length = first & 0x3F
                pos += 1
            elif kind == 1:
                length = ((first & 0x3F) << 8) | blob[pos + 1]
                pos += 2
            else:
                length = _unpack_from_be_u32(blob, pos + 1)[0]
                pos += 5
            out.append(blob[pos : pos + length])
            pos += length
            continue
        pos += 1
        layout = _INTEGERS.get(first)
        if layout is not None:
            out.append(b"%d" % layout.unpack_from(blob, pos)[0])
            pos += layout.size
        elif first == 0xF0:
            out.append(b"%d" % int.from_bytes(blob[pos : pos + 3], "little", signed=True))
            pos += 3
        elif 0xF1 <= first <= 0xFD:
            out.append(b"%d" % ((first & 0x0F) - 1))
        else:
            raise ValueError(f"unknown ziplist encoding 0x{first:02x} at {pos - 1}")
    if pos != end:
        raise ValueError("ziplist entry runs past the end")
    if count != _UNKNOWN_COUNT and count != len(out):
        raise ValueError(f"ziplist header says {count} entries, it holds {len(out)}")
    return out


def parse_zipmap(blob: bytes) -> list[bytes]:
    """A zipmap's fields and values, alternating; ValueError if malformed."""
    if not blob:
        raise ValueError("empty zipmap")
    out: list[bytes] = []
    pos = 1
    end = len(blob) - 1
    while pos < end:
        length, pos = _zipmap_length(blob, pos)
        out.append(blob[pos : pos + length])
        pos += length
        length, pos = _zipmap_length(blob, pos)
        free = blob[pos]
        pos += 1
        out.append(blob[pos : pos + length])
        pos += length + free
    if pos != end or blob[end] != 0xFF:
        raise ValueError("zipmap entry runs past the end")
    return out


def _zipmap_length(blob: bytes, pos: int) -> tuple[int, int]:
    first = blob[pos]
    if first < 0xFE:
        return first, pos + 1
    if first == 0xFE:
        return _unpack_from_u32(blob, pos + 1)[0], pos + 5
    raise ValueError(f"zipmap ends inside a pair at {pos}")
