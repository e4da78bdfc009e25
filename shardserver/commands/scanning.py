"""Cursors over snapshots: what SCAN and HSCAN/SSCAN/ZSCAN share.

Redis walks a hash table's buckets with a reverse-binary cursor. A Python dict offers no
such walk, so a scan here lists the keys (or a container's elements) when it begins, and the
cursor is a position in that list plus the list's id. Each page is the next ``count`` items
of the list that still exist: every item present for the whole scan is returned exactly
once; items added meanwhile may or may not be (as Redis allows). A shard keeps its few most
recent lists; a cursor whose list was dropped starts again from the beginning (repeats are
allowed, misses are not).

Small containers (Redis's listpack and intset encodings) are returned whole, with cursor 0,
as Redis returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from shardserver.errors import NOT_INTEGER, SYNTAX, error
from shardserver.glob import compile_glob
from shardserver.numbers import parse_int

#: Bits of a cursor that name the snapshot; the rest is the position in it.
SNAPSHOT_BITS = 20
_SNAPSHOT_MASK = (1 << SNAPSHOT_BITS) - 1
#: Snapshots a shard keeps per kind of scan.
SNAPSHOTS_KEPT = 8

INVALID_CURSOR = error("ERR invalid cursor")
#: The reply to a scan of a missing key: cursor 0, nothing.
EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"


class Snapshots:
    """One shard's recent snapshot lists for one kind of scan, by id."""

    def __init__(self) -> None:
        self.lists: dict[int, list[Any]] = {}
        self.next_id = 1

    def start(self, items: list[Any]) -> int:
        """Keep ``items`` as a new snapshot; its id (never 0)."""
        snapshot_id = self.next_id
        self.next_id = self.next_id % _SNAPSHOT_MASK + 1
        self.lists[snapshot_id] = items
        while len(self.lists) > SNAPSHOTS_KEPT:
            del self.lists[next(iter(self.lists))]
        return snapshot_id


def walk(
    snapshots: Snapshots,
    cursor: int,
    count: int,
    listing: Callable[[], list[Any]],
    alive: Callable[[Any], bool],
) -> tuple[int, list[Any]]:
    """One page: ``(next cursor, items)``, the items still ``alive`` among the next
    ``count`` of the snapshot (``listing()`` makes one when the cursor names none)."""
    snapshot_id, position = cursor & _SNAPSHOT_MASK, cursor >> SNAPSHOT_BITS
    items = snapshots.lists.get(snapshot_id) if cursor else None
    if items is None:
        snapshot_id = snapshots.start(listing())
        items = snapshots.lists[snapshot_id]
        position = 0
    end = min(position + count, len(items))
    page = [item for item in items[position:end] if alive(item)]
    if end >= len(items):
        del snapshots.lists[snapshot_id]
        return 0, page
    return (end << SNAPSHOT_BITS) | snapshot_id, page


def parse_cursor(text: bytes) -> int | None:
    """A scan cursor as Redis reads it, with C's ``strtoul``: an optional sign (a negative
    number wraps around 2**64), digits, nothing else; no leading space; empty means 0."""
    if not text:
        return 0
    if text[:1] in b" \t\n\v\f\r":
        return None
    digits = text[1:] if text[:1] in b"+-" else text
    if not digits.isdigit() or not digits.isascii():
        return None
    value = int(digits)
    if value >= 2**64:
        return None
    return (-value) % 2**64 if text[:1] == b"-" else value


def parse_options(
    argv: list[bytes], start: int, allow_type: bool = False
) -> tuple[int, bytes | None, bytes | None] | bytes:
    """COUNT, MATCH (and TYPE, for SCAN) from ``argv[start:]``, in Redis's order of checks:
    ``(count, pattern or None, type or None)``, or the error reply. A lone ``*`` pattern
    means no pattern."""
    count, pattern, type_filter = 10, None, None
    i = start
    while i < len(argv):
        option = argv[i].partition(b"\0")[0].lower()  # Redis compares C strings
        if i + 1 >= len(argv):
            return SYNTAX
        if option == b"count":
            count = parse_int(argv[i + 1])
            if count is None:
                return NOT_INTEGER
            if count < 1:
                return SYNTAX
        elif option == b"match":
            pattern = argv[i + 1]
        elif option == b"type" and allow_type:
            type_filter = argv[i + 1].partition(b"\0")[0].lower()
        else:
            return SYNTAX
        i += 2
    if pattern == b"*":
        pattern = None
    return count, pattern, type_filter


def scan_container(
    shard: Any,
    argv: list[bytes],
    small: bool,
    elements: Callable[[], list[Hashable]],
    alive: Callable[[Hashable], bool],
) -> tuple[int, list[Any]] | bytes:
    """HSCAN, SSCAN, ZSCAN ``key cursor [MATCH pattern] [COUNT count]`` over one container:
    ``(next cursor, elements)`` for the family to render, or the error reply.

    The caller has already refused a bad cursor (Redis checks it before the key) and a
    value of the wrong type; ``small`` says the container is in a compact encoding, which
    Redis returns whole. ``elements()`` lists the container's elements (fields, members);
    ``alive(element)`` says whether one is still there.
    """
    options = parse_options(argv, 3)
    if options.__class__ is bytes:
        return options  # type: ignore[return-value]
    count, pattern, _ = options  # type: ignore[misc]
    cursor = parse_cursor(argv[2]) or 0
    if small:
        next_cursor, page = 0, elements()
    else:
        snapshots = shard.scratch.setdefault("container-scan", Snapshots())
        next_cursor, page = walk(snapshots, cursor, count, elements, alive)
    if pattern is not None:
        matches = compile_glob(pattern)
        page = [element for element in page if matches(element)]
    return next_cursor, page


def cursor_reply(enc: Any, cursor: int, items: list[bytes]) -> bytes:
    """A scan reply: the next cursor, then the items as bulk strings."""
    return b"*2\r\n" + enc.bulk(b"%d" % cursor) + enc.bulk_array(items)
