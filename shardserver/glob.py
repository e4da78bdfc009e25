"""Glob patterns as Redis matches them (``KEYS``, ``SCAN MATCH``, ``CONFIG GET``).

Redis's ``stringmatchlen`` semantics: ``*`` and ``?``; ``[...]`` classes with ``^`` negation,
ranges (reversed ranges are swapped) and ``\\`` escapes; an unterminated class runs to the end
of the pattern; ``\\x`` outside a class is a literal ``x``. Patterns are compiled once to a
regular expression over bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache


def _literal(byte: int) -> bytes:
    return re.escape(bytes((byte,)))


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
            low, high = sorted((c, pattern[i + 2]))
            items.append(_literal(low) + b"-" + _literal(high))
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
    if pattern == b"*":
        return lambda _subject: True
    match = compiled.match
    return lambda subject: match(subject) is not None


def glob_match(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    """Whether ``subject`` matches ``pattern`` as Redis would say."""
    return compile_glob(pattern, nocase)(subject)
