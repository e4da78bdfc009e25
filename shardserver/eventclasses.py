"""The classes of keyspace notification: the letters of ``notify-keyspace-events``.

Redis 7.0's flags (``server.h``'s ``NOTIFY_*``), its parser (``keyspaceEventsStringToFlags``)
and its canonical form (``keyspaceEventsFlagsToString``), which CONFIG GET answers. Kept apart
from :mod:`shardserver.notifications` (which derives the events of each command) so that the
settings can validate the value without importing the command table.
"""

from __future__ import annotations

KEYSPACE = 1 << 0  # K: __keyspace@<db>__:<key> channels
KEYEVENT = 1 << 1  # E: __keyevent@<db>__:<event> channels
GENERIC = 1 << 2  # g
STRING = 1 << 3  # $
LIST = 1 << 4  # l
SET = 1 << 5  # s
HASH = 1 << 6  # h
ZSET = 1 << 7  # z
EXPIRED = 1 << 8  # x
EVICTED = 1 << 9  # e (no eviction here: accepted, never emitted)
STREAM = 1 << 10  # t
KEY_MISS = 1 << 11  # m
MODULE = 1 << 12  # d (no modules here: accepted, never emitted)
NEW = 1 << 13  # n
#: ``A``: every class but key misses and new keys (Redis's NOTIFY_ALL).
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE
#: Both channel forms.
FORMS = KEYSPACE | KEYEVENT

_LETTERS = {
    "A": ALL,
    "g": GENERIC,
    "$": STRING,
    "l": LIST,
    "s": SET,
    "h": HASH,
    "z": ZSET,
    "x": EXPIRED,
    "e": EVICTED,
    "K": KEYSPACE,
    "E": KEYEVENT,
    "t": STREAM,
    "m": KEY_MISS,
    "d": MODULE,
    "n": NEW,
}
#: The letters of the canonical form when not every class of ``A`` is on, in Redis's order.
_CLASS_ORDER = "g$lshzxetdn"

INVALID = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."


def parse_classes(text: str) -> int:
    """The flags of a ``notify-keyspace-events`` value; ValueError for a letter Redis
    refuses (spaces included)."""
    flags = 0
    for letter in text:
        flag = _LETTERS.get(letter)
        if flag is None:
            raise ValueError(INVALID)
        flags |= flag
    return flags


def classes_text(flags: int) -> str:
    """The value as CONFIG GET shows it. As in Redis 7.0, ``n`` is written only among the
    single letters, so a value with ``A`` shows without it (the flag itself stays on)."""
    if flags & ALL == ALL:
        text = "A"
    else:
        text = "".join(letter for letter in _CLASS_ORDER if flags & _LETTERS[letter])
    for letter in "KEm":
        if flags & _LETTERS[letter]:
            text += letter
    return text


def emitting(flags: int) -> bool:
    """Whether these flags make any notification (a channel form and a class)."""
    return bool(flags & FORMS) and bool(flags & ~FORMS)
