"""LZF (liblzf 3.6), as Redis compresses strings in RDB files and DUMP payloads.

Compression follows liblzf's ``lzf_compress`` as Redis builds it (``HLOG`` 16, ``VERY_FAST``,
not ``ULTRA_FAST``), step for step, so that a value we DUMP is byte for byte what
redis-server would send: the format allows many encodings of the same data, and only the
same match search gives the same bytes. The one thing not reproduced is Redis's
uninitialised hash table, whose stale entries from an earlier call can, rarely, offer a match
that a fresh table does not; both outputs decompress to the same data.

The format: a control byte below 32 starts a run of ``ctrl + 1`` literal bytes; otherwise
its top three bits are a match length minus 2 (7: one more length byte follows) and its low
five bits with the next byte are the distance back minus 1.
"""

from __future__ import annotations

_HSIZE_MASK = (1 << 16) - 1
_MAX_LIT = 1 << 5
_MAX_OFF = 1 << 13
_MAX_REF = (1 << 8) + (1 << 3)
_MASK32 = 0xFFFFFFFF


def compress(data: bytes, limit: int) -> bytes | None:
    """``data`` compressed into at most ``limit`` bytes, or None where liblzf gives up
    (the output would not fit: Redis then stores the string as it is)."""
    size = len(data)
    if not size or limit <= 0:
        return None
    out = bytearray(limit + 8)
    table: dict[int, int] = {}
    ip = 0
    op = 1  # byte 0 is the control byte of the first literal run
    lit = 0
    last = size - 2
    hval = (data[0] << 8) | data[1] if size > 1 else data[0] << 8
    while ip < last:
        hval = ((hval << 8) | data[ip + 2]) & _MASK32
        slot = ((hval >> 8) - hval * 5) & _HSIZE_MASK
        ref = table.get(slot, 0)
        table[slot] = ip
        off = ip - ref - 1
        if (
            ref > 0
            and off < _MAX_OFF
            and data[ref + 2] == data[ip + 2]
            and data[ref] == data[ip]
            and data[ref + 1] == data[ip + 1]
        ):
            maxlen = min(size - ip - 2, _MAX_REF)
            if op - (lit == 0) + 4 >= limit:
                return None
            out[op - lit - 1] = (lit - 1) & 0xFF  # close the literal run
            if not lit:
                op -= 1  # an empty run takes no byte
            length = _match_length(data, ref, ip, maxlen)
            length -= 2
            ip += 1
            if length < 7:
                out[op] = (off >> 8) + (length << 5)
                op += 1
            else:
                out[op] = (off >> 8) + (7 << 5)
                out[op + 1] = length - 7
                op += 2
            out[op] = off & 0xFF
            op += 2  # and a new literal run's control byte
            lit = 0
            ip += length + 1
            if ip >= last:
                break
            # VERY_FAST: hash the last two positions of the match, then go on after it.
            ip -= 2
            hval = (data[ip] << 8) | data[ip + 1]
            hval = ((hval << 8) | data[ip + 2]) & _MASK32
            table[((hval >> 8) - hval * 5) & _HSIZE_MASK] = ip
            ip += 1
            hval = ((hval << 8) | data[ip + 2]) & _MASK32
            table[((hval >> 8) - hval * 5) & _HSIZE_MASK] = ip
            ip += 1
        else:
            if op >= limit:
                return None
            out[op] = data[ip]
            op += 1
            ip += 1
            lit += 1
            if lit == _MAX_LIT:
                out[op - lit - 1] = lit - 1
                lit = 0
                op += 1
    if op + 3 > limit:
        return None
    while ip < size:
        out[op] = data[ip]
        op += 1
        ip += 1
        lit += 1
        if lit == _MAX_LIT:
            out[op - lit - 1] = lit - 1
            lit = 0
            op += 1
    out[op - lit - 1] = (lit - 1) & 0xFF
    if not lit:
        op -= 1
    return bytes(out[:op])


def _match_length(data: bytes, ref: int, ip: int, maxlen: int) -> int:
    """liblzf's match extension: the first index past 2 where the bytes differ, found as its
    unrolled loop finds it (16 unchecked steps when more than 16 bytes may match), so the
    length is the one liblzf writes even where the step overshoots ``maxlen``."""
    length = 2
    if maxlen > 16:
        for _ in range(16):
            length += 1
            if data[ref + length] != data[ip + length]:
                return length
    length += 1
    while length < maxlen and data[ref + length] == data[ip + length]:
        length += 1
    return length


def decompress(data: bytes, expected: int) -> bytes:
    """The ``expected`` bytes that ``data`` decompresses to; ValueError if it does not."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            end = i + ctrl + 1
            if end > n:
                raise ValueError("LZF literal run past the end of the input")
            out += data[i:end]
            i = end
            continue
        length = (ctrl >> 5) + 2
        if length == 9:
            if i >= n:
                raise ValueError("LZF match cut short")
            length += data[i]
            i += 1
        if i >= n:
            raise ValueError("LZF match cut short")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise ValueError("LZF back reference before the start")
        if ref + length <= len(out):
            out += out[ref : ref + length]
        else:  # the match overlaps what it produces: a repeated pattern
            for _ in range(length):
                out.append(out[ref])
                ref += 1
        if len(out) > expected:
            break
    if len(out) != expected:
        raise ValueError(f"LZF output is {len(out)} bytes, expected {expected}")
    return bytes(out)
