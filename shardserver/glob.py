"""Glob patterns as Redis matches them (``KEYS``, ``SCAN MATCH``, ``CONFIG GET``), in bounded time.

Semantics are Redis's ``stringmatchlen``: ``*`` and ``?``; ``[...]`` classes with ``^``
negation, ranges (reversed ranges are swapped; ends compare as signed chars) and ``\\``
escapes; an unterminated class runs to the end of the pattern; ``\\x`` outside a class is a
literal ``x``; an empty subject matches only the empty pattern (KEYS and SCAN treat a lone
``*`` as "every key" before matching). With ``nocase`` letters compare through C's ASCII
``tolower``, except escapes inside a class, which Redis compares exactly.

Redis matches by recursion at every ``*``, which took exponential time on patterns such as
``a*a*a*...b`` (CVE-2022-36021) and unbounded stack on long ones (CVE-2024-31228); its fixes
are a "skip longer matches" cut and a limit of 1000 nested ``*``. Here the pattern is
compiled once into its tokens (every token but ``*`` matches exactly one byte) and matched
without backtracking: between two ``*`` lies a fixed-length segment, and placing each
segment at its leftmost occurrence after the previous one is optimal, so a match costs one
``bytes.find`` or regular-expression search per segment (no quantifiers, so no backtracking):
at worst O(len(subject) x len(pattern)), in C. Redis's nesting limit is kept as a rule: a
pattern with more than :data:`MAX_NESTING` ``*`` groups before its last token matches nothing,
as Redis's recursion refuses the deeper calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

#: Redis refuses to recurse deeper than this many ``*`` (``stringmatchlen_impl``'s nesting).
MAX_NESTING = 1000

_STAR, _QUESTION, _OPEN, _CLOSE, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"

#: A token is the set of bytes it matches, as a 256-byte table of 0/1; None is a ``*`` group.
Token = bytes | None
_ANY = b"\x01" * 256


def _signed(byte: int) -> int:
    """C ``char`` is signed where Redis runs: bytes from 0x80 compare as negative numbers."""
    return byte - 256 if byte >= 0x80 else byte


def _lower(value: int) -> int:
    """C's ``tolower`` in the C locale: ASCII letters only (negative chars unchanged)."""
    return value + 32 if 0x41 <= value <= 0x5A else value


def _literal_tables(nocase: bool) -> list[bytes]:
    """For each byte, the table of the bytes a literal of it matches."""
    tables = []
    for byte in range(256):
        folded = _lower(byte) if nocase else byte
        tables.append(bytes(int((_lower(b) if nocase else b) == folded) for b in range(256)))
    return tables


_LITERALS = {False: _literal_tables(False), True: _literal_tables(True)}
_NEGATE = bytes.maketrans(b"\x00\x01", b"\x01\x00")


def _class_end(pattern: bytes, i: int) -> tuple[int, int]:
    """The class whose body starts at ``i`` (just after ``[``), as Redis reads it: where its
    body ends, and where the token ends (past ``]``; an unterminated class runs to the end)."""
    n = len(pattern)
    if i < n and pattern[i] == _CARET:
        i += 1
    while True:
        if i < n and pattern[i] == _BACKSLASH and n - i >= 2:
            i += 2
        elif i < n and pattern[i] == _CLOSE:
            return i, i + 1
        elif i >= n:
            return n, n
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            i += 3
        else:
            i += 1


def _union(first: bytes | bytearray, second: bytes | bytearray) -> bytearray:
    return bytearray((int.from_bytes(first, "big") | int.from_bytes(second, "big")).to_bytes(256))


def _range_table(low: int, high: int, nocase: bool) -> bytearray:
    """The bytes whose value (signed, and lowered with nocase) lies in [low, high]."""
    table = bytearray(256)
    # Signed values 0..127 are bytes 0..127; -128..-1 are bytes 128..255.
    for first, last, shift in ((max(low, 0), min(high, 127), 0), (low, min(high, -1), 256)):
        if first <= last:
            table[first + shift : last + shift + 1] = b"\x01" * (last - first + 1)
    if nocase:  # an upper-case letter is compared by its lower-case value
        for byte in range(0x41, 0x5B):
            table[byte] = int(low <= byte + 32 <= high)
    return table


@lru_cache(maxsize=4096)
def _class_table(body: bytes, nocase: bool) -> bytes:
    """The table of a class from its body (what follows ``[``, without a closing ``]``)."""
    negate = body[:1] == b"^"
    i = 1 if negate else 0
    n = len(body)
    table = bytearray(256)
    while i < n:
        if body[i] == _BACKSLASH and n - i >= 2:
            table[body[i + 1]] = 1  # escapes compare exactly, even with nocase
            i += 2
        elif n - i >= 3 and body[i + 1] == _DASH:
            low, high = _signed(body[i]), _signed(body[i + 2])
            if low > high:
                low, high = high, low
            if nocase:
                low, high = _lower(low), _lower(high)
            table = _union(table, _range_table(low, high, nocase))
            i += 3
        else:
            table = _union(table, _LITERALS[nocase][body[i]])
            i += 1
    result = bytes(table)
    return result.translate(_NEGATE) if negate else result


def tokens(pattern: bytes, nocase: bool = False) -> list[Token]:
    """The pattern as Redis's matcher walks it: one table per one-byte token, None for each
    group of consecutive ``*``."""
    found: list[Token] = []
    literals = _LITERALS[nocase]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            while i < n and pattern[i] == _STAR:
                i += 1
            found.append(None)
            continue
        if c == _QUESTION:
            found.append(_ANY)
            i += 1
        elif c == _OPEN:
            body_end, i_next = _class_end(pattern, i + 1)
            found.append(_class_table(pattern[i + 1 : body_end], nocase))
            i = i_next
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            found.append(literals[pattern[i]])
            i += 1
    return found


def _nesting(pattern: bytes) -> int:
    """How many ``*`` groups come before the pattern's last token (no tables built)."""
    groups = 0
    last_was_star = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            while i < n and pattern[i] == _STAR:
                i += 1
            groups += 1
            last_was_star = True
            continue
        last_was_star = False
        if c == _OPEN:
            i = _class_end(pattern, i + 1)[1]
        else:
            i += 2 if c == _BACKSLASH and n - i >= 2 else 1
    return groups - 1 if last_was_star else groups


@lru_cache(maxsize=4096)
def _regex_item(table: bytes) -> bytes:
    """The regular expression of one token: a character class (or its one byte)."""
    members = bytes(b for b in range(256) if table[b])
    if len(members) == 256:
        return b"[\\x00-\\xff]"
    if len(members) == 1:
        return re.escape(members)
    if not members:
        return b"(?!)"
    return b"[" + b"".join(re.escape(bytes((b,))) for b in members) + b"]"


def _segment_regex(segment: list[bytes]) -> re.Pattern[bytes]:
    """A fixed-length regular expression: one character class per token."""
    return re.compile(b"".join(map(_regex_item, segment)), re.DOTALL)


class _Segment:
    """A run of one-byte tokens between two ``*``: found by ``bytes.find`` when every token
    is a single byte, else by a regular expression of character classes."""

    __slots__ = ("size", "literal", "regex")

    def __init__(self, segment: list[bytes]) -> None:
        self.size = len(segment)
        singles = [table.find(1) if table.count(1) == 1 else -1 for table in segment]
        self.literal = bytes(singles) if -1 not in singles else None
        self.regex = None if self.literal is not None else _segment_regex(segment)

    def at(self, subject: bytes, pos: int) -> bool:
        """Whether the segment matches ``subject`` starting at ``pos`` (room assumed)."""
        if self.literal is not None:
            return subject.startswith(self.literal, pos)
        return self.regex.match(subject, pos) is not None

    def find(self, subject: bytes, start: int, end: int) -> int:
        """The leftmost position in [start, end - size] where the segment matches, or -1."""
        if self.literal is not None:
            return subject.find(self.literal, start, end)
        found = self.regex.search(subject, start, end)
        return -1 if found is None else found.start()


def _matcher(found: list[Token]) -> Callable[[bytes], bool]:
    """A predicate for a non-empty pattern's tokens, within the nesting limit."""
    segments: list[list[bytes]] = [[]]
    for token in found:
        if token is None:
            segments.append([])
        else:
            segments[-1].append(token)
    stars = len(segments) - 1
    head = _Segment(segments[0])
    if not stars:
        size = head.size
        return lambda subject: len(subject) == size and head.at(subject, 0)
    tail = _Segment(segments[-1])
    middle = [_Segment(segment) for segment in segments[1:-1]]
    least = head.size + tail.size + sum(each.size for each in middle)

    def match(subject: bytes) -> bool:
        n = len(subject)
        if n < least or not head.at(subject, 0) or not tail.at(subject, n - tail.size):
            return False
        pos, end = head.size, n - tail.size
        for each in middle:
            found_at = each.find(subject, pos, end)
            if found_at < 0:
                return False
            pos = found_at + each.size
        return True

    return match


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate that tells whether a whole byte string matches ``pattern``."""
    if pattern == b"*":  # KEYS and SCAN treat a lone * as "every key", the empty one too
        return lambda _subject: True
    if not pattern:
        return lambda subject: not subject
    if _nesting(pattern) > MAX_NESTING:
        return lambda _subject: False
    match = _matcher(tokens(pattern, nocase))
    # Redis's matcher never enters its loop for an empty subject: only "" matches it.
    return lambda subject: bool(subject) and match(subject)


def glob_match(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    """Whether ``subject`` matches ``pattern`` as Redis would say."""
    return compile_glob(pattern, nocase)(subject)
