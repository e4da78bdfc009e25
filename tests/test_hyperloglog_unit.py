"""Unit tests of the HLL format and arithmetic (:mod:`shardserver.commands.hyperloglog`),
without a server: the golden values (bytes, counts, digests) were taken from redis-server
7.0.15 fed the same elements, and the register tricks (``translate``, big-integer maximum,
the resumed sparse scan) are checked against plain one-register-at-a-time versions."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.commands import hyperloglog as hll


def _build(elements: list[bytes], max_bytes: int = 3000) -> bytes:
    value = hll.EMPTY_SPARSE
    for start in range(0, len(elements), 1000):
        value, updated = hll.add(value, elements[start : start + 1000], max_bytes)
        assert updated >= 0
    return value


def _plain_raw(value: bytes) -> bytes:
    """Registers one by one: the reference for the sliced conversions."""
    if value[4] == hll.DENSE:
        return bytes(hll.dense_get(value, i) for i in range(hll.REGISTERS))
    raw = []
    for register, run in hll.sparse_opcodes(value):
        raw += [register] * run
    return bytes(raw)


def test_a_small_hll_is_redis_s_bytes_and_count() -> None:
    value, updated = hll.add(hll.EMPTY_SPARSE, [b"a", b"b", b"c"], 3000)
    assert updated == 3
    assert value == (
        b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ"
    )
    assert hll.cached_count(value) is None
    assert hll.count(value) == 3
    assert hll.cached_count(hll.with_cached_count(value, 3)) == 3


@pytest.mark.parametrize(
    ("size", "expected", "digest", "length", "encoding"),
    [
        (1000, 1008, "5b90d5bb9790139af3f5b0b6e8ffc2ab1fcc86da", 1906, hll.SPARSE),
        (100000, 100853, "963e6cee79a81da7857234caac0f76085c89dd79", 12304, hll.DENSE),
    ],
)
def test_sparse_and_dense_hlls_match_redis(
    size: int, expected: int, digest: str, length: int, encoding: int
) -> None:
    value = _build([b"e%d" % i for i in range(size)])
    assert (len(value), value[4]) == (length, encoding)
    assert hll.count(value) == expected
    # redis-server's bytes after PFCOUNT, which caches the count in the header
    assert hashlib.sha1(hll.with_cached_count(value, expected)).hexdigest() == digest


def test_merge_of_sparse_and_dense_matches_redis() -> None:
    small = _build([b"e%d" % i for i in range(1000)])
    big = _build([b"e%d" % i for i in range(100000)])
    merged = hll.merge([None, small, big], None, 3000)
    assert hashlib.sha1(merged).hexdigest() == "ec6400bb60029296060157289491545488e0cdd1"
    union = hll.raw_max(hll.registers(small), hll.registers(big))  # type: ignore[arg-type]
    assert hll.estimate(hll.raw_histogram(union)) == 100853


def test_murmurhash_tail_lengths_and_pattern_bounds() -> None:
    # every tail length takes its own branch; the values differ and stay 64-bit
    hashes = {hll.murmurhash64a(b"x" * n) for n in range(17)}
    assert len(hashes) == 17 and all(0 <= h < 2**64 for h in hashes)
    for n in range(200):
        index, run = hll.pattern(b"%d" % n)
        assert 0 <= index < hll.REGISTERS and 1 <= run <= hll.Q + 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=400), st.integers(0, 3))
def test_conversions_agree_with_one_register_at_a_time(elements: list[bytes], kind: int) -> None:
    value = _build(elements, max_bytes=[3000, 0, 200, 20000][kind])
    raw = hll.registers(value)
    assert raw == _plain_raw(value)
    dense = hll.to_dense(value) if value[4] == hll.SPARSE else bytearray(value)
    assert dense is not None and hll.dense_to_raw(dense) == raw
    assert hll.raw_to_dense_body(raw) == bytes(dense[hll.HEADER :])  # type: ignore[arg-type]
    assert hll.count(value) == hll.count(bytes(dense))


@pytest.mark.parametrize("seed", range(5))
def test_raw_max_is_the_register_wise_maximum(seed: int) -> None:
    rng = random.Random(seed)
    top = rng.choice([1, 33, 64])
    first, second = (bytes(rng.randrange(top) for _ in range(hll.REGISTERS)) for _ in "ab")
    assert hll.raw_max(first, second) == bytes(map(max, first, second))


def test_resumed_sparse_scan_gives_the_bytes_of_a_scan_from_the_start() -> None:
    rng = random.Random(7)
    for _ in range(20):
        base = bytearray(_build([b"%d" % rng.randrange(10**6) for _ in range(rng.randrange(300))]))
        targets = sorted(rng.sample(range(hll.REGISTERS), 200))
        resumed, fresh, walked = bytearray(base), bytearray(base), []
        for index in targets:
            run = rng.randint(1, 32)
            assert hll.sparse_set(resumed, index, run, 10**6, walked) == hll.sparse_set(
                fresh, index, run, 10**6
            )
        assert resumed == fresh


def test_promotion_past_32_and_past_the_byte_limit() -> None:
    value = bytearray(hll.EMPTY_SPARSE)
    assert hll.sparse_set(value, 5, 33, 3000) == hll.PROMOTE
    assert hll.sparse_set(value, 5, 3, 18) == hll.PROMOTE  # XZERO -> XZERO VAL XZERO grows
    assert hll.sparse_set(value, 5, 3, 3000) == 1 and len(value) == 20  # ZERO VAL XZERO
    # PFADD turns it dense where a register needs more than 32
    promoted, updated = hll.add(bytes(value), [b"a"], 0)
    assert promoted[4] == hll.DENSE and len(promoted) == hll.DENSE_SIZE and updated == 1
    assert hll.dense_get(promoted, 5) == 3


def test_corrupt_hlls_are_found() -> None:
    assert not hll.is_hll(b"HYLL\x00" + bytes(11))  # dense of the wrong size
    assert not hll.is_hll(b"HYLX\x01" + bytes(13))
    assert not hll.is_hll(b"HYLL\x02" + bytes(13))
    assert hll.is_hll(hll.EMPTY_SPARSE)
    short = b"HYLL\x01" + bytes(11) + b"\x7f\xfe"  # XZERO of 16383: one register missing
    assert hll.count(short) is None and hll.registers(short) is None
    assert hll.to_dense(short) is None
    value, updated = hll.add(short, [b"x" * n for n in range(50)], 3000)
    assert updated == -1 or hll.registers(value) is None
    overflow = b"HYLL\x01" + bytes(11) + b"\x7f\xff\x80"  # a VAL past the last register
    assert hll.registers(overflow) is None and hll.sparse_histogram(overflow) is None


def test_estimates_of_empty_and_full_histograms() -> None:
    assert hll.count(hll.EMPTY_SPARSE) == 0
    assert hll.estimate(hll.raw_histogram(bytes(hll.REGISTERS))) == 0
    assert hll.estimate(hll.raw_histogram(b"\x01" * hll.REGISTERS)) > 10000


def test_decode_text_and_selftest() -> None:
    value, _ = hll.add(hll.EMPTY_SPARSE, [b"a", b"b", b"c"], 3000)
    assert hll.decode_sparse(value) == b"Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603"
    assert hll.selftest() == b"+OK\r\n"


def _walk(data: bytes, index: int) -> tuple[int, int, int] | None:
    """Redis's opcode-by-opcode walk: the reference for :func:`hll.locate`."""
    p, first, prev = hll.HEADER, 0, -1
    while p < len(data):
        op = data[p]
        if not op & 0xC0:
            span, size = (op & 0x3F) + 1, 1
        elif op & 0x80:
            span, size = (op & 3) + 1, 1
        else:
            low = data[p + 1] if p + 1 < len(data) else 0
            span, size = (((op & 0x3F) << 8) | low) + 1, 2
        if index < first + span:
            return p, first, prev
        prev, p, first = p, p + size, first + span
    return None


def test_locate_agrees_with_the_walk() -> None:
    # XZERO opcodes whose second byte looks like an XZERO (0x40-0x7f) or a VAL, and one
    # cut off at the end (C reads the string's terminating NUL there)
    crafted = b"HYLL\x01" + bytes(11) + b"\x41\x41\x88\x40\x90\x00\x7f\x42\xc4\x40"
    rng = random.Random(2)
    values = [crafted, hll.EMPTY_SPARSE]
    values += [_build([b"%d" % rng.randrange(10**6) for _ in range(n)]) for n in (5, 200, 900)]
    for value in values:
        for index in [
            0,
            1,
            63,
            64,
            65,
            320,
            321,
            16383,
            16384,
            40000,
            *rng.sample(range(16384), 50),
        ]:
            assert hll.locate(value, index) == _walk(value, index), (value[:30], index)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(max_size=10), max_size=60),
    st.lists(st.binary(max_size=10), max_size=300),
    st.sampled_from([3000, 150, 20000]),
)
def test_many_elements_at_once_equal_one_at_a_time(
    first: list[bytes], rest: list[bytes], max_bytes: int
) -> None:
    """One PFADD of many elements keeps its register index up to date across them: the
    bytes must be those of a PFADD per element (each with a fresh index)."""
    start = _build(first, max_bytes)
    together, updated = hll.add(start, rest, max_bytes)
    one_by_one, total = start, 0
    for element in rest:
        one_by_one, changed = hll.add(one_by_one, [element], max_bytes)
        total += changed
    assert together == one_by_one and updated == total


def test_index_survives_splits_merges_and_xzero_ends() -> None:
    rng = random.Random(13)
    for _ in range(30):
        data = bytearray(hll.EMPTY_SPARSE)
        where = hll.SparseIndex(data)
        for _ in range(rng.randrange(1, 400)):
            index, run = rng.randrange(hll.REGISTERS), rng.randint(1, 32)
            result = hll.sparse_set(data, index, run, 10**6, where=where)
            assert result in (0, 1)
            fresh = hll.SparseIndex(data)
            assert (where.spans, where.totals) == (fresh.spans, fresh.totals)
