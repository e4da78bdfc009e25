"""Lists (Redis's ``t_list.c``): the list value class and its commands.

A list is a :class:`ListValue`, built as Redis's quicklist is: most elements packed into
nodes of a few hundred, a ``bytes`` of the elements back to back with their lengths beside
(a list of 1,000,000 elements of 13 bytes holds 14 MB where a ``bytes`` object apiece held
54), and both ends plain, so that pushes and pops at either end stay O(1). Indexing walks the
nodes from the nearer end by their counts, so LINDEX and LSET cost O(min(i, N - i)) as
Redis's do, with the node size as the step. Redis 7.0 keeps every list as a quicklist (7.2
brought back a plain listpack for small lists), so OBJECT ENCODING always answers
``quicklist``.

Elements enter a list only through :func:`add_elements`, the place where the blocking pops of
a later issue (BLPOP, BLMOVE, BLMPOP) will serve the clients waiting on a key. Elements leave
through the pops, LREM and LTRIM, and a list left empty is deleted: Redis never keeps one.

Each command checks its arguments, the key and its type in the order ``t_list.c`` does, so a
command wrong in several ways gets Redis's error. Option words (LEFT, BEFORE, RANK ...) are
compared as Redis compares them: case-insensitively, as C strings that end at a NUL byte.

LMOVE, RPOPLPUSH and LMPOP run natively when their keys share a shard. Across shards they are
coordinated (:mod:`shardserver.commands.multikey`): the reads (``@lpeek``: type, length and
the elements at one end) decide the reply, and the writes are plain LPOP/RPOP and LPUSH/RPUSH
commands on the shards involved, which are held meanwhile, so the move is atomic and each
shard logs a command that replays to the same effect.
"""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain, compress, filterfalse, islice
from typing import Any

from shardserver import values
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error, wrong_arity
from shardserver.numbers import LLONG_MIN, parse_int

NO_SUCH_KEY = error("ERR no such key")
INDEX_OUT_OF_RANGE = error("ERR index out of range")
MUST_BE_POSITIVE = error("ERR value is out of range, must be positive")
RANK_ZERO = error(
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)
COUNT_NEGATIVE = error("ERR COUNT can't be negative")
MAXLEN_NEGATIVE = error("ERR MAXLEN can't be negative")
NUMKEYS_POSITIVE = error("ERR numkeys should be greater than 0")
COUNT_POSITIVE = error("ERR count should be greater than 0")
EMPTY_ARRAY = b"*0\r\n"
OK = b"+OK\r\n"

#: Elements per RPUSH when a list is rebuilt from nothing (the append-only log's rewrite).
REBUILD_CHUNK = 64

#: A packed node holds at most this many elements, and this many bytes of them (Redis's
#: default node size, ``list-max-listpack-size -2``) unless one element is larger alone.
NODE_ELEMENTS = 512
NODE_BYTES = 8192
#: Plain elements each end keeps: pushes and pops, and the pages LRANGE usually reads
#: (redis-benchmark's LRANGE_600 included), never touch a packed node.
HOT = 1024

#: A packed node: the elements' bytes back to back, and their lengths (a ``bytes`` when
#: each is under 256, else an array of 64-bit counts).
Node = tuple[bytes, bytes | array]

#: struct's format of an element of each length a ``bytes`` of lengths can hold.
_FORMATS = [f"{length}s" for length in range(256)]


def _unpack(node: Node, start: int = 0, stop: int | None = None) -> list[bytes]:
    """A node's elements (those from ``start`` to ``stop``), cut by ``struct`` in one C call:
    40 ns an element, against 120 for slicing each one out."""
    blob, lengths = node
    wanted = lengths[start:stop]
    if wanted.__class__ is bytes:
        layout = "".join(map(_FORMATS.__getitem__, wanted))
    else:
        layout = "".join([f"{length}s" for length in wanted])
    return list(struct.unpack_from(layout, blob, sum(lengths[:start])))


def _unpack_reversed(node: Node) -> Iterator[bytes]:
    return reversed(_unpack(node))


def _lengths_of(counts: list[int]) -> bytes | array:
    """Lengths as a node keeps them: a ``bytes`` if each is under 256, else an array."""
    try:
        return bytes(counts)
    except ValueError:  # an element of 256 bytes or more
        return array("Q", counts)


def _nodes(elements: list[bytes]) -> list[Node]:
    """Consecutive elements packed into nodes within NODE_ELEMENTS and NODE_BYTES: about
    45 ns an element, their lengths, the join and freeing the ``bytes`` objects."""
    counts = list(map(len, elements))
    nodes = []
    start = 0
    while start < len(elements):
        chunk = counts[start : start + NODE_ELEMENTS]
        blob = b"".join(elements[start : start + len(chunk)])
        if len(blob) > NODE_BYTES and len(chunk) > 1:
            chunk = chunk[: max(bisect_right(list(itertools.accumulate(chunk)), NODE_BYTES), 1)]
            blob = b"".join(elements[start : start + len(chunk)])
        nodes.append((blob, _lengths_of(chunk)))
        start += len(chunk)
    return nodes


def _strip(
    elements: list[bytes], element: bytes, limit: int, from_head: bool
) -> tuple[list[bytes], int]:
    """``elements`` without the first ``limit`` occurrences of ``element`` met from the head
    (or the tail), and how many went: a count, then C iterators (filter up to the last
    occurrence to remove, keep the rest)."""
    matches = elements.count(element)
    if matches <= limit:
        return (list(filterfalse(element.__eq__, elements)) if matches else elements), matches
    walk = elements if from_head else elements[::-1]
    last = next(islice(compress(itertools.count(), map(element.__eq__, walk)), limit - 1, None))
    kept = list(filterfalse(element.__eq__, islice(walk, last + 1)))
    kept += walk[last + 1 :]
    if not from_head:
        kept.reverse()
    return kept, limit


@values.register
class ListValue:
    """A Redis list: its elements (``bytes``) from head (left) to tail (right).

    Like Redis's quicklist, most elements live packed in ``nodes``, each a ``bytes`` of up
    to NODE_ELEMENTS elements back to back with their lengths beside: 14.5 bytes for an
    element of 13, where a ``bytes`` object and a slot for it took 56. The ends stay plain:
    ``left`` and ``right`` are stacks of ``bytes`` objects whose last item is the list's
    first (``left``) or last (``right``) element, so a push or a pop at either end is a
    Python list's append or pop. The list is ``reversed(left)``, then the nodes in order,
    then ``right``.

    An end that grows past HOT + NODE_ELEMENTS elements packs all but HOT of them into
    nodes; an end popped empty unpacks the node next to it (or, with no node left, takes
    half of the other end), so pushes and pops stay O(1) amortized. Reaching an element
    inside walks the nodes from the nearer end by their counts, as Redis walks its
    quicklist: LINDEX and LSET cost O(min(i, N - i) / NODE_ELEMENTS + NODE_ELEMENTS).
    """

    __slots__ = ("left", "nodes", "right", "packed")
    redis_type = "list"

    def __init__(self, elements: Iterable[bytes] = ()) -> None:
        self.left: list[bytes] = []
        self.nodes: deque[Node] = deque()
        self.right: list[bytes] = []
        #: Elements in the nodes.
        self.packed = 0
        self.extend(elements)

    def __len__(self) -> int:
        return len(self.left) + self.packed + len(self.right)

    def __iter__(self) -> Iterator[bytes]:
        inner = chain.from_iterable(map(_unpack, self.nodes))
        return chain(reversed(self.left), inner, self.right)

    def __reversed__(self) -> Iterator[bytes]:
        inner = chain.from_iterable(map(_unpack_reversed, reversed(self.nodes)))
        return chain(reversed(self.right), inner, self.left)

    # -- the ends ------------------------------------------------------------------------

    def extend(self, elements: Iterable[bytes]) -> None:
        """Push each element at the tail in turn (RPUSH)."""
        right = self.right
        right.extend(elements)
        if len(right) > HOT + NODE_ELEMENTS:
            self._settle(False)

    def extendleft(self, elements: Iterable[bytes]) -> None:
        """Push each element at the head in turn (LPUSH a b c leaves c b a at the head)."""
        left = self.left
        left.extend(elements)
        if len(left) > HOT + NODE_ELEMENTS:
            self._settle(True)

    def _settle(self, left: bool) -> None:
        """Pack all but HOT elements of an end grown past HOT + NODE_ELEMENTS: the inner
        ones, next to the nodes."""
        stack = self.left if left else self.right
        inner = stack[: len(stack) - HOT]
        del stack[: len(inner)]
        if left:
            inner.reverse()  # the left stack runs from the inside out
            nodes = _nodes(inner)
            nodes.reverse()
            self.nodes.extendleft(nodes)
        else:
            self.nodes.extend(_nodes(inner))
        self.packed += len(inner)

    def pop(self) -> bytes:
        """Remove and return the last element (the list must not be empty)."""
        right = self.right
        if not right:
            self._refill(False)
        return right.pop()

    def popleft(self) -> bytes:
        """Remove and return the first element (the list must not be empty)."""
        left = self.left
        if not left:
            self._refill(True)
        return left.pop()

    def _refill(self, left: bool) -> None:
        """Give an empty end elements: the node next to it, unpacked, or with no node left
        the half of the other end nearer to it."""
        if self.nodes:
            elements = _unpack(self.nodes.popleft() if left else self.nodes.pop())
            self.packed -= len(elements)
            if left:
                elements.reverse()  # the left stack runs from the inside out
        else:
            other = self.right if left else self.left
            if not other:
                raise IndexError("pop from an empty list")
            # The other stack holds the whole list, its bottom next to this end: its bottom
            # half, turned over, is this end's stack.
            elements = other[: (len(other) + 1) // 2]
            del other[: len(elements)]
            elements.reverse()
        (self.left if left else self.right).extend(elements)

    def take(self, count: int, left: bool) -> list[bytes]:
        """Pop up to ``count`` elements from one end, in the order they come off: O(count)."""
        stack = self.left if left else self.right
        count = min(count, len(self))
        taken: list[bytes] = []
        while len(taken) < count:
            if not stack:
                self._refill(left)
            part = stack[len(stack) - min(count - len(taken), len(stack)) :]
            del stack[len(stack) - len(part) :]
            part.reverse()
            taken += part
        return taken

    def clear(self) -> None:
        self.left.clear()
        self.nodes.clear()
        self.right.clear()
        self.packed = 0

    # -- inside --------------------------------------------------------------------------

    def _locate(self, index: int) -> tuple[int, Node, int]:
        """Where packed element ``index`` (0 <= index < packed) is: the node's position,
        the node and the offset in it, found by walking the counts from the nearer end."""
        nodes = self.nodes
        if index < self.packed // 2:
            for position, node in enumerate(nodes):
                count = len(node[1])
                if index < count:
                    return position, node, index
                index -= count
        else:
            beyond = self.packed - index  # counted from the end: 1 is the last
            position = len(nodes)
            for node in reversed(nodes):
                position -= 1
                count = len(node[1])
                if beyond <= count:
                    return position, node, count - beyond
                beyond -= count
        raise IndexError("list index out of range")

    def _splice(self, index: int, element: bytes, insert: bool) -> None:
        """Put ``element`` at packed position ``index``, in place of the element there or
        before it: the node's bytes and lengths are cut and joined (no unpacking), and a
        node grown past NODE_ELEMENTS or NODE_BYTES is packed again as two or more."""
        position, (blob, lengths), offset = self._locate(index)
        start = sum(lengths[:offset])
        end = start if insert else start + lengths[offset]
        counts = list(lengths)
        counts[offset : offset if insert else offset + 1] = [len(element)]
        node = b"".join((blob[:start], element, blob[end:])), _lengths_of(counts)
        if len(counts) > NODE_ELEMENTS or len(node[0]) > NODE_BYTES and len(counts) > 1:
            nodes = self.nodes
            del nodes[position]
            for step, part in enumerate(_nodes(_unpack(node))):
                nodes.insert(position + step, part)
        else:
            self.nodes[position] = node
        self.packed += insert

    def __getitem__(self, index: int) -> bytes:
        """The element at ``index``, 0 <= index < len (the commands turn an index counted
        from the tail into one of these)."""
        left = self.left
        if index < len(left):
            return left[-1 - index]
        index -= len(left)
        if index >= self.packed:
            return self.right[index - self.packed]
        _, (blob, lengths), offset = self._locate(index)
        start = sum(lengths[:offset])
        return blob[start : start + lengths[offset]]

    def __setitem__(self, index: int, element: bytes) -> None:
        left = self.left
        if index < len(left):
            left[-1 - index] = element
            return
        index -= len(left)
        if index >= self.packed:
            self.right[index - self.packed] = element
            return
        self._splice(index, element, False)

    def insert(self, index: int, element: bytes) -> None:
        """Put ``element`` at ``index`` (0 <= index <= len), the rest moving up."""
        left = self.left
        if index <= len(left):
            left.insert(len(left) - index, element)
            if len(left) > HOT + NODE_ELEMENTS:
                self._settle(True)
        elif index - len(left) >= self.packed:
            self.right.insert(index - len(left) - self.packed, element)
            if len(self.right) > HOT + NODE_ELEMENTS:
                self._settle(False)
        else:
            self._splice(index - len(left), element, True)

    def range(self, start: int, stop: int) -> list[bytes]:
        """Elements ``start`` to ``stop - 1`` (0 <= start < stop <= len): O(S / NODE_ELEMENTS
        + M), S the distance from the nearer end, only the nodes that overlap unpacked."""
        left, packed = self.left, self.packed
        taken: list[bytes] = []
        if start < len(left):
            taken = left[len(left) - min(stop, len(left)) : len(left) - start]
            taken.reverse()
        low, high = max(start - len(left), 0), min(stop - len(left), packed)
        if low < high:
            position, _, offset = self._locate(low)
            wanted = len(taken) + high - low
            for node in islice(self.nodes, position, None):
                taken += _unpack(node, offset, offset + wanted - len(taken))
                if len(taken) == wanted:
                    break
                offset = 0
        first_right = len(left) + packed
        if stop > first_right:
            taken += self.right[max(start - first_right, 0) : stop - first_right]
        return taken

    def index(self, element: bytes) -> int:
        """Where ``element`` first is; ValueError if nowhere. A node whose bytes do not
        contain it is skipped without unpacking."""
        left = self.left
        if element in left:
            return left[::-1].index(element)
        before = len(left)
        for node in self.nodes:
            if element in node[0]:
                elements = _unpack(node)
                if element in elements:
                    return before + elements.index(element)
            before += len(node[1])
        return before + self.right.index(element)

    def positions(self, element: bytes, from_head: bool, within: int) -> Iterator[int]:
        """Where ``element`` is among the first ``within`` elements of a walk from the head
        (or the tail), each position counted from where the walk started. A node whose
        bytes do not contain it is skipped without unpacking."""
        equal = element.__eq__
        first, last = (self.left[::-1], self.right) if from_head else (self.right[::-1], self.left)
        yield from compress(itertools.count(), map(equal, first[:within]))
        walked = len(first)
        for node in self.nodes if from_head else reversed(self.nodes):
            if walked >= within:
                return
            if element in node[0]:
                elements = _unpack(node) if from_head else _unpack(node)[::-1]
                yield from compress(
                    itertools.count(walked), map(equal, elements[: within - walked])
                )
            walked += len(node[1])
        yield from compress(itertools.count(walked), map(equal, last[: max(within - walked, 0)]))

    def remove(self, element: bytes, limit: int, from_head: bool) -> int:
        """Remove the first ``limit`` occurrences of ``element`` met walking from the head
        (or the tail); how many went. Only the ends and nodes that hold it change, and a
        node whose bytes do not contain it is not unpacked: O(N) in C, as Redis's walk."""
        removed = self._strip_end(from_head, element, limit, from_head)
        nodes = self.nodes
        changed: dict[int, Node | None] = {}
        order = range(len(nodes)) if from_head else range(len(nodes) - 1, -1, -1)
        for position, node in zip(order, nodes if from_head else reversed(nodes), strict=True):
            if removed == limit:
                break
            if element in node[0]:
                kept, gone = _strip(_unpack(node), element, limit - removed, from_head)
                if gone:
                    changed[position] = _nodes(kept)[0] if kept else None
                    removed += gone
                    self.packed -= gone
        for position, node in changed.items():
            nodes[position] = node
        if None in changed.values():
            self.nodes = deque(node for node in nodes if node is not None)
        return removed + self._strip_end(not from_head, element, limit - removed, from_head)

    def _strip_end(self, left: bool, element: bytes, limit: int, from_head: bool) -> int:
        """:meth:`remove` on one end's stack; how many went."""
        stack = self.left if left else self.right
        if not limit or element not in stack:
            return 0
        kept, gone = _strip(stack[::-1] if left else stack, element, limit, from_head)
        stack[:] = kept[::-1] if left else kept
        return gone

    # -- the value protocol (shardserver.values.StoredValue) ----------------------------

    def encoding(self) -> str:
        return "quicklist"

    def copy(self) -> ListValue:
        twin = ListValue()
        twin.left, twin.nodes, twin.right = self.left[:], self.nodes.copy(), self.right[:]
        twin.packed = self.packed
        return twin

    def to_plain(self) -> list[bytes]:
        return list(self)

    @classmethod
    def from_plain(cls, data: Iterable[bytes]) -> ListValue:
        return cls(data)

    def memory_usage(self) -> int:
        """The object, its two stacks and their elements, the deque of nodes and each node
        (its tuple, bytes and lengths): O(HOT + N / NODE_ELEMENTS), in C."""
        getsizeof = sys.getsizeof
        stacks = getsizeof(self.left) + getsizeof(self.right)
        plain = sum(map(getsizeof, self.left)) + sum(map(getsizeof, self.right))
        nodes = getsizeof(self.nodes) + len(self.nodes) * getsizeof((b"", b""))
        nodes += sum(map(getsizeof, chain.from_iterable(self.nodes)))
        return getsizeof(self) + stacks + plain + nodes

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        elements = iter(self)
        while chunk := list(islice(elements, REBUILD_CHUNK)):
            yield [b"RPUSH", key, *chunk]


# -- the ways in and out ------------------------------------------------------------------


def add_elements(
    shard,
    db,
    key: bytes,
    found: ListValue | None,
    elements: Iterable[bytes],
    left: bool,
    at: int | None = None,
) -> ListValue:
    """The one way elements enter a list: push ``elements`` at the head (``left``) or the tail
    of the list under ``key``, creating it when ``found`` is None; LINSERT gives ``at``, the
    index its one element goes to. Returns the list.

    LPUSH, RPUSH, LPUSHX, RPUSHX, LINSERT and the destination side of LMOVE and RPOPLPUSH all
    come here. The blocking pops of a later issue (BLPOP, BRPOP, BLMOVE, BLMPOP) will wake the
    clients waiting on ``key`` here: elements arriving at a key is exactly what they wait for,
    and a shard holds the waiters of its own keys (``shard`` is passed for that).
    """
    if found is None:
        found = ListValue()
        db.store(key, found)
    if at is not None:
        found.insert(at, next(iter(elements)))
    elif left:
        found.extendleft(elements)  # LPUSH a b c leaves c b a at the head, as extendleft does
    else:
        found.extend(elements)
    return found


def _drop_if_empty(db, key: bytes, found: ListValue) -> None:
    if not found:
        db.delete(key)


def _lookup(shard, db, key: bytes) -> ListValue | bytes | None:
    """The list under ``key``, None if there is none, or the WRONGTYPE error reply."""
    found = db.lookup(key, shard.now)
    if found is None or found.__class__ is ListValue:
        return found
    return WRONGTYPE


def _word(arg: bytes) -> bytes:
    """An option word as Redis's ``strcasecmp`` sees it: lower-cased, cut at a NUL byte."""
    return arg.partition(b"\0")[0].lower()


def _side(arg: bytes) -> bool | None:
    """LEFT (True) or RIGHT (False), as LMOVE and LMPOP take them; None if neither."""
    word = _word(arg)
    if word == b"left":
        return True
    if word == b"right":
        return False
    return None


def _range(found: ListValue, start: int, end: int) -> list[bytes]:
    """Elements ``start`` to ``end`` inclusive, negative indexes from the tail, clamped as
    Redis's ``addListRangeReply`` clamps them. The walk starts from whichever end is nearer
    and skips whole nodes, so LRANGE costs O(S / NODE_ELEMENTS + M) with S the distance
    from that end, as Redis's does."""
    size = len(found)
    if start < 0:
        start = max(start + size, 0)
    if end < 0:
        end += size
    if start > end or start >= size:
        return []
    return found.range(start, min(end, size - 1) + 1)


# -- push and pop -------------------------------------------------------------------------


def _push(shard, db, argv: list[bytes], enc, left: bool, only_existing: bool) -> bytes:
    found = _lookup(shard, db, argv[1])
    if found is None and only_existing:
        return enc.ZERO
    if found.__class__ is bytes:
        return found
    return b":%d\r\n" % len(add_elements(shard, db, argv[1], found, argv[2:], left))


def lpush(shard, db, argv: list[bytes], enc) -> bytes:
    return _push(shard, db, argv, enc, True, False)


def rpush(shard, db, argv: list[bytes], enc) -> bytes:
    return _push(shard, db, argv, enc, False, False)


def lpushx(shard, db, argv: list[bytes], enc) -> bytes:
    return _push(shard, db, argv, enc, True, True)


def rpushx(shard, db, argv: list[bytes], enc) -> bytes:
    return _push(shard, db, argv, enc, False, True)


def _pop(shard, db, argv: list[bytes], enc, left: bool) -> bytes:
    """LPOP/RPOP key [count]: one element as a bulk string; with a count, an array.

    The count is parsed before the key is looked up. A missing key answers nil, or with a
    count the null array (RESP2 ``*-1``); a count of 0 on a list answers an empty array.
    """
    if len(argv) > 3:
        return wrong_arity(argv[0].decode())
    count = None
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < 0:
            return MUST_BE_POSITIVE
    key = argv[1]
    found = _lookup(shard, db, key)
    if found is None:
        return enc.NULL if count is None else enc.NULL_ARRAY
    if found.__class__ is bytes:
        return found
    if count is None:
        element = found.popleft() if left else found.pop()
        _drop_if_empty(db, key, found)
        return b"$%d\r\n%b\r\n" % (len(element), element)
    if count == 0:
        return EMPTY_ARRAY
    taken = found.take(count, left)
    _drop_if_empty(db, key, found)
    return enc.bulk_array(taken)


def lpop(shard, db, argv: list[bytes], enc) -> bytes:
    return _pop(shard, db, argv, enc, True)


def rpop(shard, db, argv: list[bytes], enc) -> bytes:
    return _pop(shard, db, argv, enc, False)


# -- reading and changing by index ---------------------------------------------------------


def llen(shard, db, argv: list[bytes], enc) -> bytes:
    found = _lookup(shard, db, argv[1])
    if found is None:
        return enc.ZERO
    if found.__class__ is bytes:
        return found
    return b":%d\r\n" % len(found)


def lindex(shard, db, argv: list[bytes], enc) -> bytes:
    """The key is looked up before the index is parsed: a missing key answers nil even for a
    malformed index. ``deque[i]`` walks from the nearer end."""
    found = _lookup(shard, db, argv[1])
    if found is None:
        return enc.NULL
    if found.__class__ is bytes:
        return found
    index = parse_int(argv[2])
    if index is None:
        return NOT_INTEGER
    if index < 0:
        index += len(found)
    if not 0 <= index < len(found):
        return enc.NULL
    element = found[index]
    return b"$%d\r\n%b\r\n" % (len(element), element)


def lset(shard, db, argv: list[bytes], enc) -> bytes:
    """Replace one element in place (no element enters the list: its length stays). The key
    comes first (no such key), then its type, then the index."""
    found = _lookup(shard, db, argv[1])
    if found is None:
        return NO_SUCH_KEY
    if found.__class__ is bytes:
        return found
    index = parse_int(argv[2])
    if index is None:
        return NOT_INTEGER
    if index < 0:
        index += len(found)
    if not 0 <= index < len(found):
        return INDEX_OUT_OF_RANGE
    found[index] = argv[3]
    return OK


def lrange(shard, db, argv: list[bytes], enc) -> bytes:
    start, end = parse_int(argv[2]), parse_int(argv[3])
    if start is None or end is None:
        return NOT_INTEGER
    found = _lookup(shard, db, argv[1])
    if found is None:
        return EMPTY_ARRAY
    if found.__class__ is bytes:
        return found
    return enc.bulk_array(_range(found, start, end))


def ltrim(shard, db, argv: list[bytes], enc) -> bytes:
    """Keep elements ``start`` to ``end``: O(removed) taken from the ends, or a rebuild from
    the kept part when that is shorter."""
    start, end = parse_int(argv[2]), parse_int(argv[3])
    if start is None or end is None:
        return NOT_INTEGER
    key = argv[1]
    found = _lookup(shard, db, key)
    if found is None:
        return OK
    if found.__class__ is bytes:
        return found
    size = len(found)
    if start < 0:
        start = max(start + size, 0)
    if end < 0:
        end += size
    if start > end or start >= size:
        db.delete(key)
        return OK
    end = min(end, size - 1)
    kept = end - start + 1
    if kept < size - kept:
        part = _range(found, start, end)
        found.clear()
        found.extend(part)
        return OK
    found.take(start, True)
    found.take(size - 1 - end, False)
    return OK


def lrem(shard, db, argv: list[bytes], enc) -> bytes:
    """Remove ``count`` occurrences from the head (positive), the tail (negative) or all (0):
    O(N) as in Redis (:meth:`ListValue.remove`)."""
    count = parse_int(argv[2])
    if count is None:
        return NOT_INTEGER
    key = argv[1]
    found = _lookup(shard, db, key)
    if found is None:
        return enc.ZERO
    if found.__class__ is bytes:
        return found
    removed = found.remove(argv[3], abs(count) or len(found), count >= 0)
    _drop_if_empty(db, key, found)
    return b":%d\r\n" % removed


def linsert(shard, db, argv: list[bytes], enc) -> bytes:
    """Insert before or after the first occurrence of the pivot: -1 if there is none, 0 if
    there is no list. BEFORE/AFTER is checked before the key."""
    where = _word(argv[2])
    if where != b"before" and where != b"after":
        return SYNTAX
    key = argv[1]
    found = _lookup(shard, db, key)
    if found is None:
        return enc.ZERO
    if found.__class__ is bytes:
        return found
    try:
        index = found.index(argv[3])
    except ValueError:
        return b":-1\r\n"
    if where == b"after":
        index += 1
    add_elements(shard, db, key, found, (argv[4],), True, index)
    return b":%d\r\n" % len(found)


def lpos(shard, db, argv: list[bytes], enc) -> bytes:
    """LPOS key element [RANK rank] [COUNT num] [MAXLEN len]: positions of matches.

    Options are read left to right (a repeated one keeps the last value) and checked before
    the key. RANK -r counts matches from the tail; the positions are always from the head.
    COUNT 0 means every match; MAXLEN bounds how many elements are compared.

    Redis negates a negative rank, and the most negative one stays negative: then every
    match qualifies, and COUNT's stop test overflows and never ends the walk, so RANK
    LLONG_MIN is the first match from the tail, and with COUNT every match from the tail.
    """
    rank, count, maxlen = 1, None, 0
    i, n = 3, len(argv)
    while i < n:
        option = _word(argv[i])
        if i + 1 >= n:
            return SYNTAX
        number = parse_int(argv[i + 1])
        if option == b"rank":
            if number is None:
                return NOT_INTEGER
            if number == 0:
                return RANK_ZERO
            rank = number
        elif option == b"count":
            if number is None or number < 0:
                return COUNT_NEGATIVE
            count = number
        elif option == b"maxlen":
            if number is None or number < 0:
                return MAXLEN_NEGATIVE
            maxlen = number
        else:
            return SYNTAX
        i += 2
    found = _lookup(shard, db, argv[1])
    if found is None:
        return enc.NULL if count is None else EMPTY_ARRAY
    if found.__class__ is bytes:
        return found
    from_head = rank > 0
    skip = 0 if rank == LLONG_MIN else abs(rank) - 1
    # Lazy iterators: the walk stops at the last match wanted, as Redis's loop does.
    positions = found.positions(argv[2], from_head, maxlen or len(found))
    if not from_head:
        positions = map((len(found) - 1).__sub__, positions)
    if count is None:
        hit = next(islice(positions, skip, None), None)
        return enc.NULL if hit is None else b":%d\r\n" % hit
    stop = None if count == 0 or rank == LLONG_MIN else min(skip + count, sys.maxsize)
    hits = [b":%d\r\n" % position for position in islice(positions, skip, stop)]
    return b"*%d\r\n" % len(hits) + b"".join(hits)


# -- LMOVE, RPOPLPUSH, LMPOP ---------------------------------------------------------------


def _move(shard, db, argv: list[bytes], enc, from_left: bool, to_left: bool) -> bytes:
    """Pop from the source, push to the destination; the same key rotates the list.

    A missing source answers nil whatever the destination; then the source's type, then
    the destination's, are checked before anything changes.
    """
    source_key, target_key = argv[1], argv[2]
    source = _lookup(shard, db, source_key)
    if source is None:
        return enc.NULL
    if source.__class__ is bytes:
        return source
    target = _lookup(shard, db, target_key)
    if target.__class__ is bytes:
        return target
    element = source.popleft() if from_left else source.pop()
    add_elements(shard, db, target_key, target, (element,), to_left)
    _drop_if_empty(db, source_key, source)
    return b"$%d\r\n%b\r\n" % (len(element), element)


def lmove(shard, db, argv: list[bytes], enc) -> bytes:
    from_left, to_left = _side(argv[3]), _side(argv[4])
    if from_left is None or to_left is None:
        return SYNTAX
    return _move(shard, db, argv, enc, from_left, to_left)


def rpoplpush(shard, db, argv: list[bytes], enc) -> bytes:
    return _move(shard, db, argv, enc, False, True)


def check_lmove(session, argv: list[bytes]) -> bytes | None:
    """LMOVE's LEFT/RIGHT words, refused in the acceptor before any key is read."""
    if _side(argv[3]) is None or _side(argv[4]) is None:
        return SYNTAX
    return None


def parse_lmpop(argv: list[bytes]) -> tuple[list[bytes], bool, int] | bytes:
    """LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: (keys, left, count), or the
    error reply. Every argument is checked before any key is read, in Redis's order."""
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        return NUMKEYS_POSITIVE
    where = 2 + numkeys
    if where >= len(argv):
        return SYNTAX
    left = _side(argv[where])
    if left is None:
        return SYNTAX
    count = None
    i = where + 1
    while i < len(argv):
        if count is not None or _word(argv[i]) != b"count" or i + 1 >= len(argv):
            return SYNTAX
        count = parse_int(argv[i + 1])
        if count is None or count < 1:
            return COUNT_POSITIVE
        i += 2
    return argv[2:where], left, count or 1


def lmpop(shard, db, argv: list[bytes], enc) -> bytes:
    """Pop from the first key, in argument order, that holds a list; a key of another type
    met before one is WRONGTYPE. Nothing to pop: the null array."""
    parsed = parse_lmpop(argv)
    if parsed.__class__ is bytes:
        return parsed
    keys, left, count = parsed
    for key in keys:
        found = _lookup(shard, db, key)
        if found is None:
            continue
        if found.__class__ is bytes:
            return found
        taken = found.take(count, left)
        _drop_if_empty(db, key, found)
        return b"*2\r\n" + enc.bulk(key) + enc.bulk_array(taken)
    return enc.NULL_ARRAY


def check_lmpop(session, argv: list[bytes]) -> bytes | None:
    parsed = parse_lmpop(argv)
    return parsed if parsed.__class__ is bytes else None


def lmpop_keys(argv: list[bytes]) -> list[int]:
    """Where LMPOP's keys are: after numkeys, as many as it says; none when numkeys is not
    a count of the arguments there are (COMMAND GETKEYS asks without running the check)."""
    numkeys = parse_int(argv[1])
    if numkeys is None or not 1 <= numkeys <= len(argv) - 2:
        return []
    return list(range(2, 2 + numkeys))


def peek_part(shard, db, argv: list[Any]) -> tuple[bool, int, list[bytes]] | None:
    """Internal (``@lpeek key left count``): None for no key; else whether it is a list, its
    length and up to ``count`` elements from one end, in the order a pop takes them."""
    found = db.lookup(argv[1], shard.now)
    if found is None:
        return None
    if found.__class__ is not ListValue:
        return False, 0, []
    ends = found if argv[2] else reversed(found)
    return True, len(found), list(islice(ends, argv[3]))


def _pop_step(key: bytes, left: bool, count: int | None = None) -> Step:
    argv = [b"lpop" if left else b"rpop", key]
    if count is not None:
        argv.append(b"%d" % count)
    return Step(key, argv)


def _plan_move(session, argv: list[bytes], from_left: bool, to_left: bool) -> Plan:
    source_key, target_key = argv[1], argv[2]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        source, target = results
        if source is None:
            return session.enc.NULL, []
        if not source[0] or (target is not None and not target[0]):
            return WRONGTYPE, []
        element = source[2][0]
        push = [b"lpush" if to_left else b"rpush", target_key, element]
        writes = [_pop_step(source_key, from_left), Step(target_key, push)]
        return session.enc.bulk(element), writes

    reads = [
        Step(source_key, [b"@lpeek", source_key, from_left, 1]),
        Step(target_key, [b"@lpeek", target_key, to_left, 0]),
    ]
    return Plan(reads, decide)


def plan_lmove(session, argv: list[bytes]) -> Plan:
    """LMOVE across shards (the check has validated LEFT/RIGHT)."""
    return _plan_move(session, argv, bool(_side(argv[3])), bool(_side(argv[4])))


def plan_rpoplpush(session, argv: list[bytes]) -> Plan:
    return _plan_move(session, argv, False, True)


def plan_lmpop(session, argv: list[bytes]) -> Plan:
    """LMPOP across shards (the check has validated the arguments).

    The first round reads every key's type and length, and the elements of the first key,
    the one most often popped. The decision takes the first key holding a list; when that is
    a later key, a second round reads its elements while the shards stay held. The write is
    an LPOP/RPOP with the count popped (what Redis itself propagates for LMPOP).
    """
    keys, left, count = parse_lmpop(argv)  # type: ignore[misc]
    enc = session.enc

    def popped(key: bytes, taken: list[bytes]) -> tuple[bytes, list[Step]]:
        reply = b"*2\r\n" + enc.bulk(key) + enc.bulk_array(taken)
        return reply, [_pop_step(key, left, len(taken))]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]] | Plan:
        for key, found in zip(keys, results, strict=True):
            if found is None:
                continue
            is_list, size, taken = found
            if not is_list:
                return WRONGTYPE, []
            if len(taken) == min(count, size):
                return popped(key, taken)
            again = [Step(key, [b"@lpeek", key, left, count])]
            return Plan(again, lambda results, key=key: popped(key, results[0][2]))
        return enc.NULL_ARRAY, []

    reads = [
        Step(key, [b"@lpeek", key, left, count if i == 0 else 0]) for i, key in enumerate(keys)
    ]
    return Plan(reads, decide)


K, C = Route.KEY, Route.COORD
ROWS = [
    Command("lindex", K, lindex),
    Command("linsert", K, linsert),
    Command("llen", K, llen),
    Command("lmove", C, lmove, plan=plan_lmove, check=check_lmove),
    Command("lmpop", C, lmpop, plan=plan_lmpop, check=check_lmpop, keys=lmpop_keys),
    Command("lpop", K, lpop),
    Command("lpos", K, lpos),
    Command("lpush", K, lpush),
    Command("lpushx", K, lpushx),
    Command("lrange", K, lrange),
    Command("lrem", K, lrem),
    Command("lset", K, lset),
    Command("ltrim", K, ltrim),
    Command("rpop", K, rpop),
    Command("rpoplpush", C, rpoplpush, plan=plan_rpoplpush),
    Command("rpush", K, rpush),
    Command("rpushx", K, rpushx),
]

#: Internal parts of the coordinated list commands, by wire name.
INTERNAL_PARTS = {b"@lpeek": peek_part}
