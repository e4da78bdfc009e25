"""Intsets (Redis's ``intset.c``): the compact encoding of small sets of integers.

An intset is its width in bytes (2, 4 or 8, uint32 little-endian), its count (uint32) and
the integers in ascending order, little-endian, all of that width. Redis widens an intset
when a member needs it and never narrows it again; we write the narrowest width that holds
every member, which Redis reads the same.
"""

from __future__ import annotations

import struct

_header = struct.Struct("<II")
_CODES = {2: "h", 4: "i", 8: "q"}


def build(members: list[int]) -> bytes:
    """An intset of ``members`` (distinct 64-bit integers, in any order)."""
    ordered = sorted(members)
    width = 2
    if ordered:
        low, high = ordered[0], ordered[-1]
        if low < -(2**31) or high >= 2**31:
            width = 8
        elif low < -(2**15) or high >= 2**15:
            width = 4
    count = len(ordered)
    return _header.pack(width, count) + struct.pack(f"<{count}{_CODES[width]}", *ordered)


def parse(blob: bytes) -> list[int]:
    """The members of an intset, ascending; ValueError if malformed or not ascending."""
    if len(blob) < 8:
        raise ValueError("intset shorter than its header")
    width, count = _header.unpack_from(blob)
    code = _CODES.get(width)
    if code is None:
        raise ValueError(f"intset width {width} is not 2, 4 or 8")
    if len(blob) != 8 + width * count:
        raise ValueError("intset size does not match its header")
    members = list(struct.unpack_from(f"<{count}{code}", blob, 8))
    if any(a >= b for a, b in zip(members, members[1:], strict=False)):
        raise ValueError("intset members are not strictly ascending")
    return members
