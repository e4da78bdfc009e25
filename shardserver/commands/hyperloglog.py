"""HyperLogLog (Redis's ``hyperloglog.c``): the HLL string format and PFADD, PFCOUNT, PFMERGE,
PFDEBUG and PFSELFTEST.

An HLL is a plain string value (``bytes`` in the keyspace), byte for byte what redis-server
7.0 stores, so GET, SET, DUMP/RESTORE and RDB files carry it unchanged between the two:

- a 16-byte header: ``HYLL``, the encoding (0 dense, 1 sparse), three unused bytes, and the
  cached cardinality, 64 bits little endian, whose top bit set means "stale";
- 16384 registers of 6 bits: *dense*, packed from the least significant bit of each byte
  (12288 bytes), or *sparse*, a run-length code of ZERO (``00xxxxxx``, 1-64 zeros), XZERO
  (``01xxxxxx yyyyyyyy``, up to 16384 zeros) and VAL (``1vvvvvxx``, 1-4 registers of value
  1-32) opcodes. A new HLL is sparse; it turns dense when a register needs a value above 32
  or the sparse string would grow past ``hll-sparse-max-bytes`` (3000), never back.

Elements are hashed with MurmurHash64A (seed ``0xadc83b19``): the low 14 bits pick the
register, the run of zeros above them (plus one) is the candidate value. PFCOUNT estimates
with Otmar Ertl's improved estimator over the register histogram, as Redis 7.0 does, with the
same floating-point steps (``math.pow`` and ``sqrt`` are the C library's), so the numbers are
Redis's exactly.

Nothing here walks 16384 registers in a Python loop on the common paths: PFADD of a dense HLL
reads and writes single registers (a ``bytearray`` copy of the string only when a register
grows); the histogram, dense <-> one-byte-per-register conversions and the register-wise
maximum of PFCOUNT/PFMERGE over several keys use ``bytes.translate``, slicing and big-integer
arithmetic. Sparse updates follow Redis's ``hllSparseSet`` step for step (the split of an
opcode, the merge of up to five neighbours), because the bytes that result depend on it;
only the search for a register's opcode differs: a bisection over the opcodes' running
register counts (:class:`SparseIndex`), kept up to date across one PFADD's elements.

PFCOUNT over several keys and PFMERGE may name keys on several shards: PFCOUNT is a KEYS
command (each shard reduces its keys to one register array, or its first error, in one step
of the acceptor, and the acceptor takes the maximum and counts), PFMERGE a COORD command
whose plan reads every source, holds the destination's shard, and writes the result.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from itertools import accumulate
from typing import Any

from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route, local
from shardserver.errors import WRONGTYPE, error

HEADER = 16
REGISTERS = 1 << 14
#: Bits of the hash left after the register index, and the largest run a hash can give + 1.
Q = 64 - 14
DENSE_SIZE = HEADER + REGISTERS * 6 // 8
DENSE, SPARSE = 0, 1
SPARSE_VAL_MAX = 32
DEFAULT_SPARSE_MAX_BYTES = 3000
SEED = 0xADC83B19
ALPHA_INF = 0.721347520444481703680  # 0.5 / ln(2)

NOT_HLL = error("WRONGTYPE Key is not a valid HyperLogLog string value.")
INVALID = error("INVALIDOBJ Corrupted HLL object detected")
NO_SUCH_KEY = error("ERR The specified key does not exist")
NOT_SPARSE = error("ERR HLL encoding is not sparse")

_MASK64 = (1 << 64) - 1
_MURMUR_M = 0xC6A4A7935BD1E995

#: An empty HLL as PFADD creates it: sparse, one XZERO opcode for every register.
EMPTY_SPARSE = b"HYLL\x01" + bytes(11) + bytes((0x40 | 0x3F, 0xFF))

# -- hashing --------------------------------------------------------------------------------


def murmurhash64a(data: bytes, seed: int = SEED) -> int:
    """Redis's endian-neutral MurmurHash2, 64-bit version, over ``data``."""
    m = _MURMUR_M
    length = len(data)
    h = (seed ^ (length * m)) & _MASK64
    whole = length - (length & 7)
    for offset in range(0, whole, 8):
        k = int.from_bytes(data[offset : offset + 8], "little")
        k = (k * m) & _MASK64
        k ^= k >> 47
        k = (k * m) & _MASK64
        h ^= k
        h = (h * m) & _MASK64
    if length & 7:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * m) & _MASK64
    h ^= h >> 47
    h = (h * m) & _MASK64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """``(register index, value)`` for an element: Redis's ``hllPatLen``."""
    hashed = murmurhash64a(element)
    rest = (hashed >> 14) | (1 << Q)  # the sentinel bounds the run at Q + 1
    return hashed & (REGISTERS - 1), (rest & -rest).bit_length()


# -- the header -------------------------------------------------------------------------------


def is_hll(value: bytes) -> bool:
    """Redis's ``isHLLObjectOrReply`` test of a string: header, magic, encoding, and the
    exact size of a dense one (a sparse one is only found corrupt when read)."""
    if len(value) < HEADER or value[:4] != b"HYLL" or value[4] > SPARSE:
        return False
    return value[4] == SPARSE or len(value) == DENSE_SIZE


def cached_count(value: bytes) -> int | None:
    """The cached cardinality, or None when it is stale (top bit of byte 15)."""
    if value[15] & 0x80:
        return None
    return int.from_bytes(value[8:16], "little")


def _stale(value: bytes) -> bytes:
    """The value with its cached count marked stale."""
    return value[:15] + bytes((value[15] | 0x80,)) + value[16:]


def with_cached_count(value: bytes, count: int) -> bytes:
    return value[:8] + count.to_bytes(8, "little") + value[16:]


# -- dense registers ------------------------------------------------------------------------


def dense_get(data: bytes | bytearray, index: int) -> int:
    """Register ``index`` of a dense HLL (header included in ``data``)."""
    bit = index * 6
    at = HEADER + (bit >> 3)
    shift = bit & 7
    word = data[at] | (data[at + 1] << 8) if at + 1 < len(data) else data[at]
    return (word >> shift) & 63


def dense_set(data: bytearray, index: int, value: int) -> None:
    """Set register ``index`` of a dense HLL (Redis's ``HLL_DENSE_SET_REGISTER``; the last
    register's second byte is the C string's terminator there, and absent here)."""
    bit = index * 6
    at = HEADER + (bit >> 3)
    shift = bit & 7
    data[at] = (data[at] & ~(63 << shift) & 0xFF) | ((value << shift) & 0xFF)
    if at + 1 < len(data):
        data[at + 1] = (data[at + 1] & ~(63 >> (8 - shift)) & 0xFF) | (value >> (8 - shift))


def _table(function: Any) -> bytes:
    return bytes(function(byte) & 0xFF for byte in range(256))


_LOW6 = _table(lambda b: b & 63)
_HIGH2 = _table(lambda b: b >> 6)
_LOW4_UP2 = _table(lambda b: (b & 15) << 2)
_HIGH4 = _table(lambda b: b >> 4)
_LOW2_UP4 = _table(lambda b: (b & 3) << 4)
_HIGH6 = _table(lambda b: b >> 2)
_LOW2_UP6 = _table(lambda b: (b & 3) << 6)
_LOW4_UP4 = _table(lambda b: (b & 15) << 4)
_UP2 = _table(lambda b: b << 2)


def _or(first: bytes, second: bytes) -> bytes:
    """Byte-wise OR of two strings of one length whose set bits never meet (so no carry)."""
    total = int.from_bytes(first, "little") | int.from_bytes(second, "little")
    return total.to_bytes(len(first), "little")


def dense_to_raw(data: bytes | bytearray) -> bytes:
    """The 16384 registers of a dense HLL, one byte each (Redis's internal ``HLL_RAW``)."""
    body = bytes(data[HEADER:DENSE_SIZE])
    b0, b1, b2 = body[0::3], body[1::3], body[2::3]
    raw = bytearray(REGISTERS)
    raw[0::4] = b0.translate(_LOW6)
    raw[1::4] = _or(b0.translate(_HIGH2), b1.translate(_LOW4_UP2))
    raw[2::4] = _or(b1.translate(_HIGH4), b2.translate(_LOW2_UP4))
    raw[3::4] = b2.translate(_HIGH6)
    return bytes(raw)


def raw_to_dense_body(raw: bytes) -> bytes:
    """The 12288 bytes of dense registers holding ``raw`` (values below 64)."""
    r0, r1, r2, r3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    body = bytearray(REGISTERS * 6 // 8)
    body[0::3] = _or(r0, r1.translate(_LOW2_UP6))
    body[1::3] = _or(r1.translate(_HIGH6), r2.translate(_LOW4_UP4))
    body[2::3] = _or(r2.translate(_HIGH4), r3.translate(_UP2))
    return bytes(body)


_HIGH_BITS = int.from_bytes(b"\x80" * REGISTERS, "little")
_ALL_BITS = (1 << (8 * REGISTERS)) - 1


def raw_max(first: bytes, second: bytes) -> bytes:
    """Register-wise maximum of two raw register arrays (values below 128): per byte,
    ``(a | 0x80) - b`` keeps its top bit exactly when a >= b, with no borrow across bytes."""
    a = int.from_bytes(first, "little")
    b = int.from_bytes(second, "little")
    keep_a = ((((a | _HIGH_BITS) - b) & _HIGH_BITS) >> 7) * 0xFF
    return ((a & keep_a) | (b & ~keep_a & _ALL_BITS)).to_bytes(REGISTERS, "little")


# -- sparse registers -----------------------------------------------------------------------

_XZERO_BIT = 0x40
_VAL_BIT = 0x80


def _val(value: int, run: int) -> int:
    return ((value - 1) << 2) | (run - 1) | _VAL_BIT


def _zeros(run: int) -> bytes:
    """The opcode for ``run`` zero registers: ZERO up to 64, else XZERO."""
    if run > 64:
        run -= 1
        return bytes(((run >> 8) | _XZERO_BIT, run & 0xFF))
    return bytes((run - 1,))


def sparse_opcodes(data: bytes | bytearray) -> list[tuple[int, int]]:
    """The opcodes of a sparse HLL as ``(value, run)`` (value 0 for ZERO/XZERO)."""
    ops = []
    p, end = HEADER, len(data)
    while p < end:
        op = data[p]
        if not op & 0xC0:
            ops.append((0, (op & 0x3F) + 1))
            p += 1
        elif op & _VAL_BIT:
            ops.append((((op >> 2) & 0x1F) + 1, (op & 3) + 1))
            p += 1
        else:
            low = data[p + 1] if p + 1 < end else 0
            ops.append((0, (((op & 0x3F) << 8) | low) + 1))
            p += 2
    return ops


def sparse_to_raw(data: bytes | bytearray) -> bytes | None:
    """The registers of a sparse HLL, one byte each, or None if it is corrupt (Redis's
    ``hllMerge``/``hllSparseToDense``: a VAL run past the end stops the walk, and the runs
    must cover exactly 16384 registers)."""
    raw = bytearray(REGISTERS)
    index = 0
    for value, run in sparse_opcodes(data):
        if value:
            if index + run > REGISTERS:
                return None
            raw[index : index + run] = bytes((value,)) * run
        index += run
    return bytes(raw) if index == REGISTERS else None


def sparse_histogram(data: bytes | bytearray) -> list[int] | None:
    """Redis's ``hllSparseRegHisto``: the histogram of register values, None if corrupt."""
    histogram = [0] * 64
    index = 0
    for value, run in sparse_opcodes(data):
        histogram[value] += run
        index += run
    return histogram if index == REGISTERS else None


def to_dense(data: bytes | bytearray) -> bytearray | None:
    """Redis's ``hllSparseToDense``: the dense form (the header copied, cache included),
    or None if the sparse form is corrupt."""
    raw = sparse_to_raw(data)
    if raw is None:
        return None
    return bytearray(data[:4] + b"\x00" + data[5:HEADER] + raw_to_dense_body(raw))


#: :func:`sparse_set` could not keep the HLL sparse: it must turn dense first.
PROMOTE = 2


_SPANS = bytes(
    ((b & 0x3F) + 1) if not b & 0xC0 else ((b & 3) + 1) if b & _VAL_BIT else 0 for b in range(256)
)
_XZERO_FIRST = re.compile(rb"[\x40-\x7f]")


def _op_size(data: bytes | bytearray, p: int) -> tuple[int, int]:
    """(registers, bytes) of the opcode at ``p`` (an XZERO cut off at the end reads C's
    terminating NUL as its second byte)."""
    op = data[p]
    if not op & 0xC0:
        return (op & 0x3F) + 1, 1
    if op & _VAL_BIT:
        return (op & 3) + 1, 1
    low = data[p + 1] if p + 1 < len(data) else 0
    return (((op & 0x3F) << 8) | low) + 1, 2


class SparseIndex:
    """Which opcode of a sparse HLL covers each register: per byte of the opcodes, the
    registers it opens (0 for an XZERO's second byte) and their running total, so that
    finding a register's opcode is a bisection, not Redis's opcode-by-opcode walk.

    Built with one ``translate`` (XZERO's two bytes fixed up: XZERO's first bytes are among
    the bytes 0x40-0x7f, a byte right after one being its second) and kept up to date by
    :func:`sparse_set` through PFADD's elements: a change rewrites a few opcodes after the
    one before the register's and keeps the registers they cover, so only those bytes'
    entries are recomputed and the totals after them stay as they are."""

    __slots__ = ("spans", "totals")

    def __init__(self, data: bytes | bytearray) -> None:
        body = bytes(data[HEADER:])
        size = len(body)
        spans = list(body.translate(_SPANS))
        second = -1
        for match in _XZERO_FIRST.finditer(body):
            at = match.start()
            if at == second:
                continue
            second = at + 1
            low = body[second] if second < size else 0
            spans[at] = (((body[at] & 0x3F) << 8) | low) + 1
            if second < size:
                spans[second] = 0
        self.spans = spans
        self.totals = list(accumulate(spans))

    def locate(self, index: int) -> tuple[int, int, int] | None:
        """``(offset of the opcode covering register index, the first register it covers,
        offset of the opcode before it or -1)``, or None if no opcode covers it."""
        spans = self.spans
        at = bisect_right(self.totals, index)
        if at >= len(spans):
            return None
        before = -1 if at == 0 else (at - 2 if spans[at - 1] == 0 else at - 1)
        return HEADER + at, self.totals[at] - spans[at], -1 if before < 0 else HEADER + before

    def changed(self, data: bytearray, start: int, old_stop: int) -> None:
        """The opcodes from offset ``start`` up to what was ``old_stop`` before the change
        (both opcode boundaries) were rewritten: recompute their entries."""
        stop = old_stop - (HEADER + len(self.spans) - len(data))
        region: list[int] = []
        p = start
        while p < stop:
            span, size = _op_size(data, p)
            region.append(span)
            if size == 2:
                region.append(0)
            p += size
        del region[stop - start :]  # an XZERO cut off at the end has no second byte
        first, last = start - HEADER, old_stop - HEADER
        base = self.totals[first - 1] if first else 0
        self.spans[first:last] = region
        self.totals[first:last] = list(accumulate(region, initial=base))[1:]


def locate(data: bytes | bytearray, index: int) -> tuple[int, int, int] | None:
    """The opcode of a sparse HLL that covers register ``index`` (see :class:`SparseIndex`):
    the same answer as Redis's walk."""
    return SparseIndex(data).locate(index)


def sparse_set(
    data: bytearray,
    index: int,
    value: int,
    max_bytes: int,
    walked: list | None = None,
    where: SparseIndex | None = None,
) -> int:
    """Redis's ``hllSparseSet``: raise register ``index`` to ``value`` in place.

    Returns 1 (changed, the cached count marked stale), 0 (it was already as high), -1 (the
    HLL is corrupt) or :data:`PROMOTE`. Without ``walked`` the opcode is found by ``where``
    (a :class:`SparseIndex` of ``data``, kept up to date here; a fresh one if None).
    PFMERGE, which sets registers in ascending order, passes ``walked`` instead, the
    ``(offset, first register)`` of the opcodes its scans passed: a change never moves bytes
    before the opcode just before the one it changes (the last entry), so each scan resumes
    there instead of at the start, with the same result."""
    if value > SPARSE_VAL_MAX:
        return PROMOTE
    end = len(data)
    if walked is None:
        if where is None:
            where = SparseIndex(data)
        found = where.locate(index)
        if found is None:
            return -1
        p, first, prev = found
        op = data[p]
        span, oplen = _op_size(data, p)
    else:
        p, first = walked.pop() if walked else (HEADER, 0)
        span = oplen = op = 0
        while p < end:
            op = data[p]
            oplen = 1
            if not op & 0xC0:
                span = (op & 0x3F) + 1
            elif op & _VAL_BIT:
                span = (op & 3) + 1
            else:
                span = (((op & 0x3F) << 8) | (data[p + 1] if p + 1 < end else 0)) + 1
                oplen = 2
            if index <= first + span - 1:
                break
            walked.append((p, first))
            p += oplen
            first += span
        if span == 0 or p >= end:
            return -1
        prev = walked[-1][0] if walked else -1
    is_val = op & _VAL_BIT
    is_xzero = not is_val and op & _XZERO_BIT
    current = ((op >> 2) & 0x1F) + 1
    if is_val and current >= value:
        return 0
    if where is not None:
        # the change and its merges stay within the opcode before, this one and five after
        old_stop = p
        for _ in range(6):
            if old_stop >= end:
                break
            old_stop += _op_size(data, old_stop)[1]
        old_stop = min(old_stop, end)
    if span == 1 and not is_xzero:
        # a VAL or ZERO of one register: rewrite the opcode
        data[p] = _val(value, 1)
    else:
        last = first + span - 1
        if is_val:
            seq = bytearray()
            if index != first:
                seq.append(_val(current, index - first))
            seq.append(_val(value, 1))
            if index != last:
                seq.append(_val(current, last - index))
        else:
            seq = bytearray(_zeros(index - first) if index != first else b"")
            seq.append(_val(value, 1))
            if index != last:
                seq += _zeros(last - index)
        delta = len(seq) - oplen
        if delta > 0 and end + delta > max_bytes:
            return PROMOTE
        data[p : p + oplen] = seq
        end += delta
    # Merge adjacent VAL opcodes of one value, scanning up to five opcodes from the one
    # before the change.
    q = prev if prev >= 0 else HEADER
    scan = 5
    while q < end and scan:
        scan -= 1
        op = data[q]
        if not op & _VAL_BIT:
            q += 2 if op & _XZERO_BIT else 1
            continue
        if q + 1 < end and data[q + 1] & _VAL_BIT:
            right = data[q + 1]
            if (op >> 2) & 0x1F == (right >> 2) & 0x1F:
                run = (op & 3) + (right & 3) + 2
                if run <= 4:
                    data[q + 1] = _val(((op >> 2) & 0x1F) + 1, run)
                    del data[q]
                    end -= 1
                    continue
        q += 1
    data[15] |= 0x80
    if where is not None:
        where.changed(data, prev if prev >= 0 else HEADER, old_stop)
    return 1


# -- counting -------------------------------------------------------------------------------


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        z_prime = z
        z += x * y
        y += y
        if z_prime == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        z_prime = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if z_prime == z:
            return z / 3


def estimate(histogram: list[int]) -> int:
    """Redis 7.0's ``hllCount`` from a register histogram (Ertl, arXiv:1702.01284)."""
    m = float(REGISTERS)
    z = m * _tau((m - histogram[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    if z == 0:
        # only registers above Q + 1 (a crafted dense string): C divides by zero, and its
        # llroundl(inf) through a double to uint64_t gives 2**63
        return 1 << 63
    estimate = ALPHA_INF * m * m / z
    whole = math.floor(estimate)  # llroundl: half away from zero (the value is >= 0)
    return int(whole) + (1 if estimate - whole >= 0.5 else 0)


def count_reply(enc: Any, count: int) -> bytes:
    """A count as Redis replies it: the uint64_t as a long long."""
    return enc.integer(count - (1 << 64) if count >> 63 else count)


def raw_histogram(raw: bytes) -> list[int]:
    """The histogram of register values (below 64) of a raw register array: one C scan
    per value up to the largest present (rarely above 20)."""
    top = max(raw)
    return [raw.count(value) for value in range(top + 1)] + [0] * (63 - top)


def count(value: bytes | bytearray) -> int | None:
    """The estimate for one valid HLL, or None if its sparse form is corrupt."""
    if value[4] == DENSE:
        return estimate(raw_histogram(dense_to_raw(value)))
    histogram = sparse_histogram(value)
    return None if histogram is None else estimate(histogram)


def registers(value: bytes) -> bytes | None:
    """The raw registers of a valid HLL, or None if it is corrupt."""
    return dense_to_raw(value) if value[4] == DENSE else sparse_to_raw(value)


# -- updating a whole value -------------------------------------------------------------------


def sparse_max_bytes(settings: Any) -> int:
    """``hll-sparse-max-bytes`` from a shard's settings or the acceptor's config."""
    return settings.get("hll-sparse-max-bytes", DEFAULT_SPARSE_MAX_BYTES)


def add(value: bytes, elements: list[bytes], max_bytes: int) -> tuple[bytes, int]:
    """PFADD's work on a valid HLL: the new value and how many elements changed a
    register, or -1 (the value as far as it got: Redis changes its string in place) when
    the sparse form is found corrupt. A dense HLL is copied only when a register grows."""
    data: bytes | bytearray = value
    updated = 0
    where: SparseIndex | None = None
    for element in elements:
        index, run = pattern(element)
        if data[4] == DENSE:
            if dense_get(data, index) >= run:
                continue
            if data.__class__ is bytes:
                data = bytearray(data)
            dense_set(data, index, run)  # type: ignore[arg-type]
            updated += 1
            continue
        if data.__class__ is bytes:
            data = bytearray(data)
        if where is None:
            where = SparseIndex(data)
        result = sparse_set(data, index, run, max_bytes, where=where)  # type: ignore[arg-type]
        if result == PROMOTE:
            dense = to_dense(data)
            if dense is None:
                return bytes(data), -1
            data = dense
            dense_set(data, index, run)
            result = 1
        if result < 0:
            return bytes(data), -1
        updated += result
    if updated:
        data = data if data.__class__ is bytearray else bytearray(data)
        data[15] |= 0x80
    return bytes(data), updated


def merge(values: list[Any], destination: bytes | None, max_bytes: int) -> bytes:
    """PFMERGE's result from its keys' values in argument order (the destination first;
    None for a missing key, any other non-bytes for another type) and the destination's
    current value, or the error reply Redis gives."""
    raw: bytes | None = None
    dense = False
    for value in values:
        if value is None:
            continue
        if value.__class__ is not bytes:
            return WRONGTYPE
        if not is_hll(value):
            return NOT_HLL
        dense = dense or value[4] == DENSE
        registers_of = registers(value)
        if registers_of is None:
            return INVALID
        raw = registers_of if raw is None else raw_max(raw, registers_of)
    target = bytearray(EMPTY_SPARSE if destination is None else destination)
    if raw is None:
        raw = bytes(REGISTERS)
    if dense and target[4] == SPARSE:
        converted = to_dense(target)
        if converted is None:
            return INVALID
        target = converted
    if target[4] == SPARSE:
        walked: list = []
        for index in range(REGISTERS):
            run = raw[index]
            if run and sparse_set(target, index, run, max_bytes, walked) == PROMOTE:
                target = to_dense(target)  # type: ignore[assignment]  # valid: it was read
                break
    if target[4] == DENSE:
        # every register ends as the maximum, which includes the destination's own
        target[HEADER:] = raw_to_dense_body(raw)
    target[15] |= 0x80
    return bytes(target)


def _hll_or_error(value: object) -> bytes | None:
    """None if ``value`` (found, so not None) is a valid HLL, else the error reply."""
    if value.__class__ is not bytes:
        return WRONGTYPE
    return None if is_hll(value) else NOT_HLL  # type: ignore[arg-type]


# -- PFADD, PFCOUNT, PFMERGE --------------------------------------------------------------


def pfadd(shard, db, argv: list[bytes], enc) -> bytes:
    key = argv[1]
    value = db.lookup(key, shard.now)
    created = value is None
    if created:
        value = EMPTY_SPARSE
    else:
        refused = _hll_or_error(value)
        if refused is not None:
            return refused
    result, updated = add(value, argv[2:], sparse_max_bytes(shard.settings))
    if created:
        # a new key counts as an update: its cache is marked stale, and the reply is 1
        db.store(key, result if updated else _stale(result))
    elif result is not value:
        db.store_keep_deadline(key, result)
    if updated < 0:
        return INVALID
    return enc.ONE if updated or created else enc.ZERO


def _count_one(shard, db, key: bytes, enc) -> bytes:
    """PFCOUNT of one key: the cached count, or a fresh one written back into the header
    (Redis updates the string in place, though PFCOUNT is a read)."""
    value = db.lookup(key, shard.now)
    if value is None:
        return enc.ZERO
    refused = _hll_or_error(value)
    if refused is not None:
        return refused
    cached = cached_count(value)
    if cached is not None:
        return enc.integer(cached)
    fresh = count(value)
    if fresh is None:
        return INVALID
    db.store_keep_deadline(key, with_cached_count(value, fresh))
    return count_reply(enc, fresh)


def union_part(shard, db, argv: list[bytes]) -> tuple[int, bytes | None, bytes | None]:
    """PFCOUNT's part for the keys on one shard: ``(position of the first key in error
    among them or -1, that error, the maximum of the registers of the keys before it)``.
    Registers travel in a tuple: a bare bytes value is a failed part's error."""
    raw: bytes | None = None
    now = shard.now
    for position, key in enumerate(argv[1:]):
        value = db.lookup(key, now)
        if value is None:
            continue
        refused = _hll_or_error(value)
        found = registers(value) if refused is None else None
        if found is None:
            return position, refused or INVALID, raw
        raw = found if raw is None else raw_max(raw, found)
    return -1, None, raw


def _union_count(raws: list[bytes | None]) -> int:
    raw = bytes(REGISTERS)
    for each in raws:
        if each is not None:
            raw = raw_max(raw, each)
    return estimate(raw_histogram(raw))


def pfcount(shard, db, argv: list[bytes], enc) -> bytes:
    if len(argv) == 2:
        return _count_one(shard, db, argv[1], enc)
    position, refused, raw = union_part(shard, db, argv)
    if refused is not None:
        return refused
    return count_reply(enc, _union_count([raw]))


def merge_pfcount(session, argv: list[bytes], parts: list, layout: list[list[int]]) -> bytes:
    """The union's count, or the error of the first key (in argument order) that has one:
    Redis checks the keys in order and stops at the first bad one."""
    errors = [
        (positions[position], refused)
        for (position, refused, _), positions in zip(parts, layout, strict=True)
        if refused is not None
    ]
    if errors:
        return min(errors)[1]
    return count_reply(session.enc, _union_count([raw for _, _, raw in parts]))


def pfmerge(shard, db, argv: list[bytes], enc) -> bytes:
    now = shard.now
    found = [db.lookup(key, now) for key in argv[1:]]
    result = merge(found, found[0], sparse_max_bytes(shard.settings))
    if result[:1] == b"-":
        return result
    if found[0] is None:
        db.store(argv[1], result)
    else:
        db.store_keep_deadline(argv[1], result)
    return b"+OK\r\n"


def read_part(shard, db, argv: list[bytes]) -> tuple[Any, int | None] | None:
    """Internal (``@hll-read key``): None if missing, else ``(the string, or False for
    another type, its deadline)``."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return None
    return (value if value.__class__ is bytes else False), db.deadline_of(argv[1])


def plan_pfmerge(session, argv: list[bytes]) -> Plan:
    keys = argv[1:]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        found = [None if result is None else result[0] for result in results]
        destination = results[0]
        max_bytes = sparse_max_bytes(session.server.config.values)
        result = merge(found, found[0], max_bytes)
        if result[:1] == b"-":
            return result, []
        deadline = None if destination is None else destination[1]
        write = [b"@put", argv[1], ("string", result), deadline, b"pfadd"]
        return b"+OK\r\n", [Step(argv[1], write)]

    return Plan([Step(key, [b"@hll-read", key]) for key in keys], decide)


# -- PFDEBUG, PFSELFTEST ------------------------------------------------------------------


def _c_word(arg: bytes) -> bytes:
    """An argument as C's ``%s`` and ``strcasecmp`` see it: up to its first NUL."""
    return arg.partition(b"\0")[0]


def decode_sparse(value: bytes) -> bytes:
    """PFDEBUG DECODE's text: ``z:N`` (ZERO), ``Z:N`` (XZERO), ``v:value,run`` (VAL)."""
    words = []
    p, end = HEADER, len(value)
    while p < end:
        op = value[p]
        if not op & 0xC0:
            words.append(b"z:%d" % ((op & 0x3F) + 1))
            p += 1
        elif op & _VAL_BIT:
            words.append(b"v:%d,%d" % (((op >> 2) & 0x1F) + 1, (op & 3) + 1))
            p += 1
        else:
            low = value[p + 1] if p + 1 < end else 0
            words.append(b"Z:%d" % ((((op & 0x3F) << 8) | low) + 1))
            p += 2
    return b" ".join(words)


def pfdebug(shard, db, argv: list[bytes], enc) -> bytes:
    """PFDEBUG GETREG|DECODE|ENCODING|TODENSE key: the key is looked up and checked before
    the subcommand is (Redis's order); GETREG and TODENSE turn a sparse HLL dense."""
    key = argv[2]
    value = db.lookup(key, shard.now)
    if value is None:
        return NO_SUCH_KEY
    refused = _hll_or_error(value)
    if refused is not None:
        return refused
    word = _c_word(argv[1])
    sub = word.lower()
    if sub in (b"getreg", b"todense"):
        converted = value[4] == SPARSE
        if converted:
            dense = to_dense(value)
            if dense is None:
                return INVALID
            value = bytes(dense)
            db.store_keep_deadline(key, value)
        if sub == b"todense":
            return enc.ONE if converted else enc.ZERO
        raw = dense_to_raw(value)
        return b"*%d\r\n" % REGISTERS + b"".join([b":%d\r\n" % each for each in raw])
    if sub == b"decode":
        if value[4] != SPARSE:
            return NOT_SPARSE
        return enc.bulk(decode_sparse(value))
    if sub == b"encoding":
        return b"+sparse\r\n" if value[4] == SPARSE else b"+dense\r\n"
    return error(f"ERR Unknown PFDEBUG subcommand '{word.decode('utf-8', 'replace')}'")


#: PFSELFTEST's sizes: Redis goes to 10 million elements in C; the acceptor answers this
#: one itself, so it checks fewer, in a few milliseconds of Python.
SELFTEST_CYCLES = 2
SELFTEST_ELEMENTS = 1000


def selftest(max_bytes: int = DEFAULT_SPARSE_MAX_BYTES) -> bytes:
    """Redis's PFSELFTEST checks, smaller: registers keep what is set and leave their
    neighbours alone; sparse and dense HLLs fed the same elements agree, stay sparse while
    small, and count within six standard errors."""
    rng = random.Random()
    dense = bytearray(DENSE_SIZE)
    for _ in range(SELFTEST_CYCLES):
        expected = [rng.randrange(64) for _ in range(REGISTERS)]
        for index, value in enumerate(expected):
            dense_set(dense, index, value)
        for index, value in enumerate(expected):
            got = dense_get(dense, index)
            if got != value:
                return error(f"TESTFAILED Register {index} should be {value} but is {got}")
    dense = bytearray(b"HYLL" + bytes(DENSE_SIZE - 4))
    sparse = EMPTY_SPARSE
    relative = 1.04 / math.sqrt(REGISTERS)
    seed = rng.getrandbits(64)
    checkpoint = 1
    for j in range(1, SELFTEST_ELEMENTS + 1):
        element = (j ^ seed).to_bytes(8, "little")
        index, run = pattern(element)
        if dense_get(dense, index) < run:
            dense_set(dense, index, run)
        sparse, _ = add(sparse, [element], max_bytes)
        if j != checkpoint:
            continue
        if j < max_bytes // 2 and sparse[4] != SPARSE:
            return error("TESTFAILED sparse encoding not used")
        dense_count = count(dense)
        if dense_count != count(sparse):
            return error("TESTFAILED dense/sparse disagree")
        allowed = 1 if j == 10 else math.ceil(relative * 6 * checkpoint)
        wrong = abs(checkpoint - (dense_count or 0))
        if wrong > allowed:
            return error(f"TESTFAILED Too big error. card:{checkpoint} abserr:{wrong}")
        checkpoint *= 10
    return b"+OK\r\n"


def pfselftest(session, argv: list[bytes]) -> bytes:
    return selftest(sparse_max_bytes(session.server.config.values))


K, KS, C = Route.KEY, Route.KEYS, Route.COORD
ROWS = [
    Command("pfadd", K, pfadd),
    Command(
        "pfcount",
        KS,
        pfcount,
        part=union_part,
        merge=merge_pfcount,
        notes="the count it caches in an HLL is not logged in the AOF, nor seen by WATCH",
    ),
    Command("pfmerge", C, pfmerge, plan=plan_pfmerge),
    Command(
        "pfdebug",
        K,
        pfdebug,
        notes="GETREG, DECODE, ENCODING, TODENSE as Redis 7.0",
    ),
    local(
        "pfselftest",
        pfselftest,
        notes=f"checks up to {SELFTEST_ELEMENTS} elements (Redis: 10 million)",
    ),
]

#: Internal parts of PFMERGE's plan, by wire name.
INTERNAL_PARTS = {b"@hll-read": read_part}
