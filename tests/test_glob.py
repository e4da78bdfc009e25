"""The glob matcher: Redis's semantics, in bounded time, checked against a direct reference.

The reference below walks the pattern as Redis's ``stringmatchlen_impl`` does (recursion at
every ``*``, the "skip longer matches" cut, the nesting limit): exponential at worst, so it
only sees small inputs. The matcher under test must agree with it on any pattern and subject,
and answer the pathological families quickly (their expected answers are known without the
reference).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.glob import MAX_NESTING, compile_glob, glob_match


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 0x80 else byte


def _lower(value: int) -> int:
    return value + 32 if 0x41 <= value <= 0x5A else value


def reference(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    """Redis's recursive matcher, step by step (C's NUL past the end is ``at(...) == 0``)."""
    skip = [False]

    def at(data: bytes, i: int) -> int:
        return data[i] if i < len(data) else 0

    def same(a: int, b: int) -> bool:
        return _lower(a) == _lower(b) if nocase else a == b

    def walk(p: int, s: int, nesting: int) -> bool:
        if nesting > MAX_NESTING:
            return False
        plen, slen = len(pattern) - p, len(subject) - s
        while plen and slen:
            c = pattern[p]
            if c == ord("*"):
                while plen and at(pattern, p + 1) == ord("*"):
                    p += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if walk(p + 1, s, nesting + 1):
                        return True
                    if skip[0]:
                        return False
                    s += 1
                    slen -= 1
                skip[0] = True
                return False
            if c == ord("?"):
                s += 1
                slen -= 1
            elif c == ord("["):
                p += 1
                plen -= 1
                negate = at(pattern, p) == ord("^")
                if negate:
                    p += 1
                    plen -= 1
                matched = False
                while True:
                    if at(pattern, p) == ord("\\") and plen >= 2:
                        p += 1
                        plen -= 1
                        matched |= pattern[p] == subject[s]
                    elif at(pattern, p) == ord("]"):
                        break
                    elif plen == 0:
                        p -= 1
                        plen += 1
                        break
                    elif plen >= 3 and pattern[p + 1] == ord("-"):
                        low, high = _signed(pattern[p]), _signed(pattern[p + 2])
                        value = _signed(subject[s])
                        if low > high:
                            low, high = high, low
                        if nocase:
                            low, high, value = _lower(low), _lower(high), _lower(value)
                        p += 2
                        plen -= 2
                        matched |= low <= value <= high
                    else:
                        matched |= same(pattern[p], subject[s])
                    p += 1
                    plen -= 1
                if negate:
                    matched = not matched
                if not matched:
                    return False
                s += 1
                slen -= 1
            else:
                if c == ord("\\") and plen >= 2:
                    p += 1
                    plen -= 1
                if not same(pattern[p], subject[s]):
                    return False
                s += 1
                slen -= 1
            p += 1
            plen -= 1
            if slen == 0:
                while at(pattern, p) == ord("*"):
                    p += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return walk(0, 0, 0)


ALPHABET = b"ab-^][\\*?A\x80\xff"
patterns = st.lists(st.sampled_from(list(ALPHABET)), max_size=10).map(bytes)
subjects = st.lists(st.sampled_from(list(b"abAB-^][\\*?\x80\xff\x00")), max_size=8).map(bytes)


@settings(max_examples=3000, deadline=None)
@given(pattern=patterns, subject=subjects, nocase=st.booleans())
def test_agrees_with_the_reference(pattern: bytes, subject: bytes, nocase: bool) -> None:
    if pattern == b"*":
        return  # KEYS/SCAN's "every key" shortcut, outside the matcher
    assert glob_match(pattern, subject, nocase) == reference(pattern, subject, nocase)


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.lists(st.sampled_from([b"*", b"?", b"a", b"b", b"[ab]", b"[^a]"]), max_size=12),
    subject=st.binary(max_size=40).map(lambda b: bytes(x % 3 + 97 for x in b)),
)
def test_agrees_on_star_heavy_patterns(pattern: list[bytes], subject: bytes) -> None:
    joined = b"".join(pattern)
    if joined == b"*":
        return
    assert glob_match(joined, subject) == reference(joined, subject)


def answers_quickly(pattern: bytes, subject: bytes, expected: bool) -> None:
    started = time.perf_counter()
    assert glob_match(pattern, subject) is expected
    # Generous: the old regex backtracked for hours on these; the matcher needs milliseconds.
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("stars", [5, 20, 40, 200])
def test_many_stars_before_a_missing_byte(stars: int) -> None:
    """``a*a*...*b`` against a run of ``a``: exponential for a backtracking matcher."""
    answers_quickly(b"a*" * stars + b"b", b"a" * 40, False)
    answers_quickly(b"a*" * stars + b"b", b"a" * 40 + b"b", stars <= 40)


def test_star_question_repeated_50000_times() -> None:
    """Beyond Redis's nesting limit nothing matches; below it the answer is the length test."""
    answers_quickly(b"*?" * 50_000, b"x" * 50_000, False)
    answers_quickly(b"*?" * 900, b"x" * 50_000, True)
    answers_quickly(b"*?" * 900, b"x" * 899, False)


def test_nesting_limit_counts_star_groups_before_the_last_token() -> None:
    subject = b"a" * 3000
    assert glob_match(b"*a" * MAX_NESTING, subject)
    assert not glob_match(b"*a" * (MAX_NESTING + 1), subject)
    # A trailing group needs no recursion in Redis, so it does not count.
    assert glob_match(b"*a" * MAX_NESTING + b"*", subject)
    # Consecutive stars are one group, escaped stars and stars in a class are bytes.
    assert glob_match(b"**a" * MAX_NESTING, subject)
    assert glob_match(b"\\*" * 2000, b"*" * 2000)
    assert glob_match(b"[*]" * 2000, b"*" * 2000)


def test_long_literal_segments_use_a_linear_search() -> None:
    answers_quickly(b"*" + b"a" * 5_000 + b"b*", b"a" * 50_000, False)
    answers_quickly(b"*" + b"a" * 5_000 + b"?*", b"a" * 50_000, True)
    answers_quickly(b"*[ab]" * 500 + b"c", b"ab" * 25_000, False)


def test_redis_edge_cases() -> None:
    assert compile_glob(b"*")(b"")  # KEYS/SCAN's lone "*" takes every key, the empty one too
    assert not glob_match(b"**", b"") and not glob_match(b"?", b"")
    assert glob_match(b"", b"") and not glob_match(b"", b"a")
    assert glob_match(b"[abc", b"c") and not glob_match(b"[abc", b"[")  # runs to the end
    assert glob_match(b"[a-]", b"]")  # a range from 'a' to ']', then unterminated
    assert glob_match(b"[^", b"x")  # an empty negated class matches any byte
    assert glob_match(b"a\\", b"a\\")  # a trailing backslash is itself
    assert glob_match(b"[z-a]", b"m")  # reversed ranges are swapped
    assert glob_match(b"[a-\xff]", b"\x00") and not glob_match(b"[a-\xff]", b"b")  # signed
    assert glob_match(b"H*LLO", b"hello", nocase=True)
    assert not glob_match(b"[\\H]", b"h", nocase=True)  # class escapes compare exactly
