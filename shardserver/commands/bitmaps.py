"""Bit operations on strings (Redis's ``bitops.c``): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
BITFIELD and BITFIELD_RO.

A string is a ``bytes`` value in the keyspace, and stays one: a command that changes bits
builds the new value (in C: slicing, ``bytearray``, ``bytes.translate``) and stores it,
keeping the key's deadline, as Redis changes its string in place. Bit 0 is the most
significant bit of the first byte, as in Redis.

Nothing here loops over a string bit by bit or byte by byte in Python: BITCOUNT counts with
``int.from_bytes(...).bit_count()`` over chunks, BITPOS skips uninteresting blocks with
``bytes.startswith`` and finds the first interesting byte with a regular expression, BITOP
combines chunks as big integers (NOT is one ``translate``), and BITFIELD reads and writes
each field as one integer of at most 9 bytes. Changing bits costs a copy of the string
(Redis changes it in place, in O(1)): the price of keeping strings ``bytes``.

Arguments are checked in Redis 7.0's order, which differs between commands: BITCOUNT and
BITPOS look the key up *before* they parse their range (a missing key answers 0, or -1, even
with a malformed range), while SETBIT, GETBIT and BITFIELD check their arguments first.

BITOP's keys may live on several shards: it is a COORD command whose plan reads each source
(and holds the destination's shard) and writes the result, or deletes the destination when
the result is empty, atomically. Every command here replays the same from its arguments, so
they are logged as executed.
"""

from __future__ import annotations

import re
from typing import Any

from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error
from shardserver.numbers import parse_int

BIT_OFFSET = error("ERR bit offset is not an integer or out of range")
BIT_VALUE = error("ERR bit is not an integer or out of range")
BIT_ARGUMENT = error("ERR The bit argument must be 1 or 0.")
BITFIELD_TYPE = error(
    "ERR Invalid bitfield type. Use something like i16 u8. "
    "Note that u64 is not supported but i64 is."
)
OVERFLOW_TYPE = error("ERR Invalid OVERFLOW type specified")
BITFIELD_RO_GET_ONLY = error("ERR BITFIELD_RO only supports the GET subcommand")
BITOP_NOT_ONE_KEY = error("ERR BITOP NOT must be called with a single source key.")

#: Bytes handled at once when counting or combining big strings: bounded memory per step,
#: few enough steps that the Python loop around the C work costs nothing.
_CHUNK = 1 << 20
#: For BITPOS of a set bit (1) or a clear bit (0): a byte holding one, and a block of bytes
#: holding none, which ``bytes.startswith`` skips at ``memcmp`` speed.
_HOLDING = {1: re.compile(rb"[^\x00]"), 0: re.compile(rb"[^\xff]")}
_SKIP_BLOCK = 1 << 16
_NOT_HOLDING = {1: bytes(_SKIP_BLOCK), 0: b"\xff" * _SKIP_BLOCK}
#: BITOP NOT, one byte at a time, in C.
_INVERT = bytes(255 - i for i in range(256))


def _word(arg: bytes) -> bytes:
    """An option word as Redis's ``strcasecmp`` sees it: lower-cased, cut at a NUL byte."""
    return arg.partition(b"\0")[0].lower()


def _wrap64(value: int) -> int:
    """``value`` as a C ``int64_t`` computation leaves it: modulo 2**64, signed."""
    return ((value + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def parse_bit_offset(arg: bytes, max_bulk_len: int, bits: int = 0) -> int | None:
    """A bit offset as Redis's ``getBitOffsetFromArgument`` reads it, or None.

    With ``bits`` (BITFIELD), ``#N`` means the N-th field of that width: N times ``bits``,
    multiplied as C multiplies 64-bit integers. The offset must fall within a string of
    ``proto-max-bulk-len`` bytes.
    """
    by_field = bits > 0 and arg[:1] == b"#"
    offset = parse_int(arg[1:] if by_field else arg)
    if offset is None:
        return None
    if by_field:
        offset = _wrap64(offset * bits)
    if offset < 0 or offset >> 3 >= max_bulk_len:
        return None
    return offset


# -- SETBIT, GETBIT -----------------------------------------------------------------------


def setbit(shard, db, argv: list[bytes], enc) -> bytes:
    """Set or clear one bit, growing the string with zero bytes; the reply is the old bit.

    Redis writes only when the bit changes or the string grows, and so do we.
    """
    offset = parse_bit_offset(argv[2], shard.settings["proto-max-bulk-len"])
    if offset is None:
        return BIT_OFFSET
    on = parse_int(argv[3])
    if on is None or on & ~1:
        return BIT_VALUE
    key = argv[1]
    value = db.lookup(key, shard.now)
    if value is not None and value.__class__ is not bytes:
        return WRONGTYPE
    byte, mask = offset >> 3, 0x80 >> (offset & 7)
    last = bytes((mask,)) if on else b"\0"
    if value is None:
        db.store(key, b"".join((bytes(byte), last)))
        return enc.ZERO
    if byte < len(value):
        old = value[byte]
        if bool(old & mask) == bool(on):
            return enc.ONE if on else enc.ZERO
        new = old | mask if on else old & ~mask
        view = memoryview(value)  # one copy of the string, not three
        db.store_keep_deadline(key, b"".join((view[:byte], bytes((new,)), view[byte + 1 :])))
        return enc.ONE if old & mask else enc.ZERO
    db.store_keep_deadline(key, b"".join((value, bytes(byte - len(value)), last)))
    return enc.ZERO


def getbit(shard, db, argv: list[bytes], enc) -> bytes:
    offset = parse_bit_offset(argv[2], shard.settings["proto-max-bulk-len"])
    if offset is None:
        return BIT_OFFSET
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not bytes:
        return WRONGTYPE
    byte = offset >> 3
    if byte < len(value) and value[byte] & (0x80 >> (offset & 7)):
        return enc.ONE
    return enc.ZERO


# -- BITCOUNT, BITPOS ---------------------------------------------------------------------


def popcount(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Set bits in ``data[start:end]``, counted in C a chunk at a time."""
    end = len(data) if end is None else end
    view = memoryview(data)
    count = 0
    for at in range(start, end, _CHUNK):
        count += int.from_bytes(view[at : min(at + _CHUNK, end)], "big").bit_count()
    return count


def _range_unit(arg: bytes) -> bool | None:
    """BIT (True) or BYTE (False), or None for anything else."""
    word = _word(arg)
    if word == b"bit":
        return True
    if word == b"byte":
        return False
    return None


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    """Redis's range normalisation: negative ends count from ``total``, then both are
    clamped into [0, total - 1] (end may become -1 for an empty string)."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = max(end, 0)
    return start, min(end, total - 1)


def bitcount(shard, db, argv: list[bytes], enc) -> bytes:
    """Set bits of the string, or of a byte or bit range of it.

    Redis 7.0 looks the key up first (a missing key answers 0 whatever the arguments), then
    takes no range, or start and end with an optional BIT|BYTE; anything else is a syntax
    error. Two negative ends in the wrong order answer 0 before they are normalised, and
    before BIT|BYTE is read.
    """
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not bytes:
        return WRONGTYPE
    argc = len(argv)
    if argc == 2:
        return enc.integer(popcount(value))
    if argc not in (4, 5):
        return SYNTAX
    start, end = parse_int(argv[2]), parse_int(argv[3])
    if start is None or end is None:
        return NOT_INTEGER
    if start < 0 and end < 0 and start > end:
        return enc.ZERO
    in_bits = False
    if argc == 5:
        in_bits = _range_unit(argv[4])
        if in_bits is None:
            return SYNTAX
    size = len(value)
    start, end = _clamp(start, end, size * 8 if in_bits else size)
    if start > end:
        return enc.ZERO
    if not in_bits:
        return enc.integer(popcount(value, start, end + 1))
    first, last = start >> 3, end >> 3
    count = popcount(value, first, last + 1)
    count -= (value[first] >> (8 - (start & 7))).bit_count()  # bits before start
    count -= (value[last] & ((1 << (7 - (end & 7))) - 1)).bit_count()  # bits after end
    return enc.integer(count)


def _bit_in_byte(byte: int, bit: int, low: int, high: int) -> int:
    """Position (0 = most significant) of the first bit equal to ``bit`` among positions
    ``low..high`` of a byte, or -1."""
    if not bit:
        byte ^= 0xFF
    byte &= (0xFF >> low) & (0xFF << (7 - high))
    return 8 - byte.bit_length() if byte else -1


def first_bit(data: bytes, bit: int, start: int, end: int) -> int:
    """Absolute position of the first bit equal to ``bit`` in bits ``start..end`` of
    ``data`` (inclusive, both within it), or -1."""
    first, last = start >> 3, end >> 3
    if first == last:
        found = _bit_in_byte(data[first], bit, start & 7, end & 7)
        return first * 8 + found if found >= 0 else -1
    found = _bit_in_byte(data[first], bit, start & 7, 7)
    if found >= 0:
        return first * 8 + found
    at, block = first + 1, _NOT_HOLDING[bit]
    while last - at >= _SKIP_BLOCK and data.startswith(block, at):
        at += _SKIP_BLOCK
    match = _HOLDING[bit].search(data, at, last)
    if match is not None:
        at = match.start()
        return at * 8 + _bit_in_byte(data[at], bit, 0, 7)
    found = _bit_in_byte(data[last], bit, 0, end & 7)
    return last * 8 + found if found >= 0 else -1


def bitpos(shard, db, argv: list[bytes], enc) -> bytes:
    """The first set or clear bit, in the whole string or a byte or bit range of it.

    Redis 7.0 parses the bit, then looks the key up (a missing key is all clear bits: 0 for
    a clear bit, -1 for a set one), then the range: start, BIT|BYTE, end. When no end is
    given, a string of set bits is taken as followed by clear ones, so BITPOS of 0 answers
    the first bit past the string; with an end given, -1.
    """
    bit = parse_int(argv[2])
    if bit is None:
        return NOT_INTEGER
    if bit not in (0, 1):
        return BIT_ARGUMENT
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.integer(-1 if bit else 0)
    if value.__class__ is not bytes:
        return WRONGTYPE
    argc = len(argv)
    size = len(value)
    in_bits = end_given = False
    if argc == 3:
        start, end = 0, size - 1
    elif argc <= 6:
        start = parse_int(argv[3])
        if start is None:
            return NOT_INTEGER
        if argc == 6:
            in_bits = _range_unit(argv[5])
            if in_bits is None:
                return SYNTAX
        if argc >= 5:
            end = parse_int(argv[4])
            if end is None:
                return NOT_INTEGER
            end_given = True
        else:
            end = size - 1
        start, end = _clamp(start, end, size * 8 if in_bits else size)
    else:
        return SYNTAX
    if start > end:
        return enc.integer(-1)
    if not in_bits:
        start, end = start * 8, end * 8 + 7
    found = first_bit(value, bit, start, end)
    if found < 0 and not bit and not end_given:
        found = end + 1
    return enc.integer(found)


# -- BITOP --------------------------------------------------------------------------------

_BITOPS = (b"and", b"or", b"xor", b"not")


def check_bitop(session, argv: list[bytes]) -> bytes | None:
    """The operation's name, and NOT's single source, before any key is read."""
    op = _word(argv[1])
    if op not in _BITOPS:
        return SYNTAX
    if op == b"not" and len(argv) != 4:
        return BITOP_NOT_ONE_KEY
    return None


def bitop_result(op: bytes, sources: list[bytes]) -> bytes:
    """AND, OR, XOR of the sources (the shorter ones padded with zero bytes), or NOT of the
    one source; as long as the longest source."""
    if op == b"not":
        return sources[0].translate(_INVERT)
    size = max(map(len, sources))
    parts = []
    for at in range(0, size, _CHUNK):
        width = min(_CHUNK, size - at)
        numbers = [int.from_bytes(s[at : at + width].ljust(width, b"\0"), "big") for s in sources]
        combined = numbers[0]
        if op == b"and":
            for number in numbers[1:]:
                combined &= number
        elif op == b"or":
            for number in numbers[1:]:
                combined |= number
        else:
            for number in numbers[1:]:
                combined ^= number
        parts.append(combined.to_bytes(width, "big"))
    return b"".join(parts)


def bitop(shard, db, argv: list[bytes], enc) -> bytes:
    """BITOP where every key lives (the acceptor sends it here only then)."""
    problem = check_bitop(None, argv)
    if problem is not None:
        return problem
    sources = []
    for key in argv[3:]:
        value = db.lookup(key, shard.now)
        if value is not None and value.__class__ is not bytes:
            return WRONGTYPE
        sources.append(value or b"")
    result = bitop_result(_word(argv[1]), sources)
    if result:
        db.store(argv[2], result)
    else:
        db.delete(argv[2])
    return enc.integer(len(result))


def string_part(shard, db, argv: list[bytes]) -> tuple[bytes] | bool | None:
    """Internal: a key's string value as ``(value,)``, None if missing, False if it holds
    another type (parts never return bare bytes, which would read as an error reply)."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return None
    if value.__class__ is not bytes:
        return False
    return (value,)


def plan_bitop(session, argv: list[bytes]) -> Plan:
    """BITOP over several shards: read every source, and hold the destination's shard."""
    op, destination, keys = _word(argv[1]), argv[2], argv[3:]
    reads = [Step(key, [b"@bitsource", key]) for key in keys]
    reads.append(Step(destination, [b"@exists", destination]))

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        found = results[:-1]
        if any(each is False for each in found):
            return WRONGTYPE, []
        result = bitop_result(op, [each[0] if each else b"" for each in found])
        if result:
            write = Step(destination, [b"@put", destination, ("string", result), None, b"set"])
        else:
            write = Step(destination, [b"@del", destination])
        return session.enc.integer(len(result)), [write]

    return Plan(reads, decide)


# -- BITFIELD -----------------------------------------------------------------------------

_GET, _SET, _INCRBY = 0, 1, 2
_WRAP, _SAT, _FAIL = 0, 1, 2
_OPCODES = {b"get": (_GET, 2), b"set": (_SET, 3), b"incrby": (_INCRBY, 3)}
_OVERFLOWS = {b"wrap": _WRAP, b"sat": _SAT, b"fail": _FAIL}


def _field_type(arg: bytes) -> tuple[bool, int] | None:
    """(signed, bits) of ``i1``..``i64`` or ``u1``..``u63``, or None. The sign letter is
    case-sensitive, and the width is read as a C string (up to a NUL byte)."""
    sign = arg[:1]
    if sign not in (b"i", b"u"):
        return None
    bits = parse_int(arg[1:].partition(b"\0")[0])
    signed = sign == b"i"
    if bits is None or bits < 1 or bits > (64 if signed else 63):
        return None
    return signed, bits


def parse_bitfield(argv: list[bytes], max_bulk_len: int) -> list[tuple] | bytes:
    """BITFIELD's operations as (opcode, signed, bits, offset, value, overflow), or the
    error reply of the first bad one. OVERFLOW applies to the operations after it."""
    ops = []
    overflow = _WRAP
    i, argc = 2, len(argv)
    while i < argc:
        remaining = argc - i - 1
        word = _word(argv[i])
        if word == b"overflow" and remaining >= 1:
            overflow = _OVERFLOWS.get(_word(argv[i + 1]), -1)
            if overflow < 0:
                return OVERFLOW_TYPE
            i += 2
            continue
        opcode, needs = _OPCODES.get(word, (-1, 0))
        if opcode < 0 or remaining < needs:
            return SYNTAX
        field = _field_type(argv[i + 1])
        if field is None:
            return BITFIELD_TYPE
        signed, bits = field
        offset = parse_bit_offset(argv[i + 2], max_bulk_len, bits)
        if offset is None:
            return BIT_OFFSET
        number = 0
        if opcode != _GET:
            number = parse_int(argv[i + 3])
            if number is None:
                return NOT_INTEGER
        ops.append((opcode, signed, bits, offset, number, overflow))
        i += needs + 1
    return ops


def _read_field(data: bytes | bytearray, offset: int, bits: int, signed: bool) -> int:
    """The integer of ``bits`` bits at bit ``offset``; bytes past the end read as zero."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    width = last - first + 1
    chunk = int.from_bytes(bytes(data[first : last + 1]).ljust(width, b"\0"), "big")
    value = (chunk >> (width * 8 - (offset & 7) - bits)) & ((1 << bits) - 1)
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _write_field(data: bytearray, offset: int, bits: int, value: int) -> None:
    """Store the low ``bits`` bits of ``value`` at bit ``offset`` (``data`` is long enough)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    width = last - first + 1
    shift = width * 8 - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    chunk = int.from_bytes(data[first : last + 1], "big")
    chunk = (chunk & ~mask) | ((value << shift) & mask)
    data[first : last + 1] = chunk.to_bytes(width, "big")


def _overflowed(total: int, signed: bool, bits: int, overflow: int) -> int | None:
    """What a field of this type holds for ``total``: itself when it fits, else wrapped or
    saturated; None when OVERFLOW FAIL refuses it.

    Redis checks an unsigned SET value after casting it to ``uint64_t``, so a negative one
    overflows upwards (SAT stores the maximum); callers pass it cast.
    """
    if signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    if low <= total <= high:
        return total
    if overflow == _FAIL:
        return None
    if overflow == _SAT:
        return high if total > high else low
    return (total - low) % (1 << bits) + low


def _bitfield(shard, db, argv: list[bytes], enc, read_only: bool) -> bytes:
    """BITFIELD and BITFIELD_RO: every operation parsed first, then the key looked up (and,
    for writes, created or grown with zero bytes to the farthest field written, even when
    every write then fails), then the operations run in order on the same string."""
    ops = parse_bitfield(argv, shard.settings["proto-max-bulk-len"])
    if ops.__class__ is bytes:
        return ops
    key = argv[1]
    writes = [op for op in ops if op[0] != _GET]
    if writes and read_only:
        return BITFIELD_RO_GET_ONLY
    value = db.lookup(key, shard.now)
    if value is not None and value.__class__ is not bytes:
        return WRONGTYPE
    if not writes:
        data = value or b""
        return enc.array([enc.integer(_read_field(data, op[3], op[2], op[1])) for op in ops])
    size = (max(op[3] + op[2] - 1 for op in writes) >> 3) + 1
    data = bytearray(value or b"")
    grew = len(data) < size
    if grew:
        data.extend(bytes(size - len(data)))
    changed = False
    replies = []
    for opcode, signed, bits, offset, number, overflow in ops:
        old = _read_field(data, offset, bits, signed)
        if opcode == _GET:
            replies.append(enc.integer(old))
            continue
        if opcode == _INCRBY:
            new = _overflowed(old + number, signed, bits, overflow)
            shown = new
        elif signed and bits < 64 and number <= (1 << (bits - 1)) - 1 - (1 << 63):
            # Redis computes ``max - value`` in 64 bits for a signed SET: for a value this
            # low it wraps negative, and Redis takes the value as overflowing upwards (SAT
            # stores the maximum; WRAP keeps the low bits, as always).
            new = _overflowed(1 << 63, signed, bits, overflow)
            if overflow != _SAT and new is not None:
                new = _overflowed(number, signed, bits, overflow)
            shown = old
        else:
            new = _overflowed(number if signed else number % (1 << 64), signed, bits, overflow)
            shown = old
        if new is None:
            replies.append(enc.NULL)
            continue
        replies.append(enc.integer(shown))
        if new != old:
            _write_field(data, offset, bits, new)
            changed = True
    if value is None:
        db.store(key, bytes(data))
    elif grew or changed:
        db.store_keep_deadline(key, bytes(data))
    return enc.array(replies)


def bitfield(shard, db, argv: list[bytes], enc) -> bytes:
    return _bitfield(shard, db, argv, enc, read_only=False)


def bitfield_ro(shard, db, argv: list[bytes], enc) -> bytes:
    return _bitfield(shard, db, argv, enc, read_only=True)


K = Route.KEY
ROWS = [
    Command("bitcount", K, bitcount),
    Command("bitfield", K, bitfield),
    Command("bitfield_ro", K, bitfield_ro),
    Command(
        "bitop",
        Route.COORD,
        bitop,
        plan=plan_bitop,
        check=check_bitop,
        notes="keys on several shards: sources read and destination written atomically",
    ),
    Command("bitpos", K, bitpos),
    Command("getbit", K, getbit),
    Command("setbit", K, setbit),
]

#: Internal part of BITOP's plan, by wire name.
INTERNAL_PARTS = {b"@bitsource": string_part}
