"""Glob patterns as Redis matches them (``KEYS``, ``SCAN MATCH``, ``CONFIG GET``).

Redis's ``stringmatchlen`` semantics: ``*`` and ``?``; ``[...]`` classes with ``^`` negation,
ranges (reversed ranges are swapped; ends compare as signed chars) and ``\\`` escapes; an
unterminated class runs to the end of the pattern; ``\\x`` outside a class is a literal ``x``;
an empty subject matches only the empty pattern (and KEYS/SCAN's lone ``*``). Patterns are
compiled once to a regular expression over bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache


def _literal(byte: int) -> bytes:
    return re.escape(bytes((byte,)))


def _signed(byte: int) -> int:
    """Redis compares class range ends as C ``char``: signed on the platforms it runs on."""
    return byte - 256 if byte >= 0x80 else byte


def _range(low: int, high: int) -> bytes:
    """Regex items for the bytes whose signed value lies between two range ends."""
    low, high = sorted((_signed(low), _signed(high)))
    pieces = []
    for first, last in ((low, high),) if low >= 0 or high < 0 else ((0, high), (low, -1)):
        a, b = first & 0xFF, last & 0xFF
        pieces.append(_literal(a) + b"-" + _literal(b) if a != b else _literal(a))
    return b"".join(pieces)


def _translate_class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """Translate the class starting after ``[`` at ``i``; returns (regex, next index)."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # '^'
    if negate:
        i += 1
    items: list[bytes] = []
    while i < n:
        c = pattern[i]
        if c == 0x5C and i + 1 < n:  # '\\'
            items.append(_literal(pattern[i + 1]))
            i += 2
        elif c == 0x5D:  # ']'
            i += 1
            break
        elif i + 2 < n and pattern[i + 1] == 0x2D:  # 'a-z'
            items.append(_range(c, pattern[i + 2]))
            i += 3
        else:
            items.append(_literal(c))
            i += 1
    body = b"".join(items)
    if not body:
        return (b"[\\s\\S]" if negate else b"(?!)"), i
    return b"[" + (b"^" if negate else b"") + body + b"]", i


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate that tells whether a whole byte string matches ``pattern``."""
    parts: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            while i < n and pattern[i] == 0x2A:
                i += 1
            parts.append(b"[\\s\\S]*")
            continue
        if c == 0x3F:  # '?'
            parts.append(b"[\\s\\S]")
        elif c == 0x5B:  # '['
            regex, i = _translate_class(pattern, i + 1)
            parts.append(regex)
            continue
        elif c == 0x5C and i + 1 < n:
            i += 1
            parts.append(_literal(pattern[i]))
        else:
            parts.append(_literal(c))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if nocase else 0)
    compiled = re.compile(b"".join(parts) + b"\\Z", flags)
    if pattern == b"*":  # KEYS and SCAN treat a lone * as "every key", the empty one too
        return lambda _subject: True
    if not pattern:
        return lambda subject: not subject
    match = compiled.match
    # Redis's matcher never enters its loop for an empty subject: only "" matches it.
    return lambda subject: bool(subject) and match(subject) is not None


def glob_match(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    """Whether ``subject`` matches ``pattern`` as Redis would say."""
    return compile_glob(pattern, nocase)(subject)
