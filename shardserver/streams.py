"""The stream value (Redis's ``stream.h`` and the low half of ``t_stream.c``): entries in
listpack nodes, consumer groups, their pending entries and consumers.

An entry ID is one int, ``ms << 64 | seq``, so IDs compare, sort and bisect as numbers.

Entries live in :class:`Node` objects that mirror Redis's radix tree of listpacks: a node is
started by the first entry that does not fit the last one (``stream-node-max-bytes``, counted
in the node's exact listpack size, and ``stream-node-max-entries``, live and deleted alike),
its first entry's fields are the node's *master fields*, XDEL only flags an entry deleted
(the node goes when its last live entry goes) and trimming drops whole nodes first. So ``~``
trimming removes exactly the entries Redis removes, XINFO STREAM counts the same radix-tree
keys, and the RDB writer emits the same listpacks (master entry, flags, deltas, lp-count).
A lookup is a bisect over the nodes' first IDs, then over the node's own IDs: XRANGE with a
small COUNT costs O(log N) plus what it returns, as in Redis.

Consumer groups keep their pending entries list (the PEL) as a dict of ID to
:class:`Pending` plus a sorted list of the IDs, and so does each consumer for its own; group
and consumer names are listed in byte order, as Redis's radix trees list them.
"""

from __future__ import annotations

import sys
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

from shardserver import values
from shardserver.numbers import parse_int
from shardserver.persistence import listpack

SEQ_BITS = 64
SEQ_MASK = (1 << 64) - 1
MAX_ID = (1 << 128) - 1
#: Redis's SCG_INVALID_ENTRIES_READ: a group whose read counter is unknown.
INVALID_ENTRIES_READ = -1
#: Redis's STREAM_LISTPACK_MAX_SIZE: a node never grows past this whatever the setting.
LISTPACK_MAX_SIZE = 1 << 30

FLAG_DELETED = 1
FLAG_SAMEFIELDS = 2


def format_id(entry_id: int) -> bytes:
    return b"%d-%d" % (entry_id >> SEQ_BITS, entry_id & SEQ_MASK)


def make_id(ms: int, seq: int) -> int:
    return ms << SEQ_BITS | seq


def _int_size(number: int) -> int:
    """Bytes of an integer's listpack entry (encoding, data and backlen)."""
    if 0 <= number <= 127:
        return 2
    if -4096 <= number <= 4095:
        return 3
    if -32768 <= number <= 32767:
        return 4
    if -8388608 <= number <= 8388607:
        return 5
    if -2147483648 <= number <= 2147483647:
        return 6
    return 10


def _string_size(element: bytes) -> int:
    """Bytes of a string's listpack entry, as ``lpAppend`` stores it (integers as ints)."""
    size = len(element)
    if size <= 20:
        number = parse_int(element)
        if number is not None:
            return _int_size(number)
    if size < 64:
        return size + 2
    if size < 4096:
        return size + 2 + listpack._backlen_size(size + 2)
    return size + 5 + listpack._backlen_size(size + 5)


class Node:
    """One listpack of the radix tree: its master entry and its entries (deleted ones too).

    ``ids`` and ``items`` (each entry's flat field/value list) run in parallel; ``dead``
    holds the positions flagged deleted."""

    __slots__ = ("master", "fields", "ids", "items", "same", "dead", "live", "size")

    def __init__(self, master: int, fields: tuple[bytes, ...]) -> None:
        self.master = master
        self.fields = fields
        self.ids: list[int] = []
        self.items: list[list[bytes]] = []
        #: Per entry: whether it has the master fields (SAMEFIELDS: values only).
        self.same: list[bool] = []
        self.dead: set[int] = set()
        self.live = 0
        # header and end, count 0, deleted 0, num-fields, the fields, the 0 terminator
        self.size = listpack.EMPTY_SIZE + 2 + 2 + _int_size(len(fields)) + 2
        self.size += sum(_string_size(field) for field in fields)

    def append(self, entry_id: int, items: list[bytes]) -> None:
        fields = tuple(items[0::2])
        same = fields == self.fields
        ms_delta = (entry_id >> SEQ_BITS) - (self.master >> SEQ_BITS)
        seq_delta = (entry_id & SEQ_MASK) - (self.master & SEQ_MASK)
        size = 2 + _int_size(ms_delta) + _int_size(seq_delta)
        pairs = len(items) // 2
        if same:
            size += sum(_string_size(value) for value in items[1::2])
            size += _int_size(pairs + 3)
        else:
            size += _int_size(pairs) + sum(_string_size(item) for item in items)
            size += _int_size(2 * pairs + 4)
        self.size += size + _int_size(self.live + 1) - _int_size(self.live)
        self.live += 1
        self.ids.append(entry_id)
        self.items.append(items)
        self.same.append(same)

    def mark_deleted(self, position: int) -> None:
        """Flag an entry deleted in place (its flags keep their size; the counts change)."""
        deleted = len(self.dead)
        self.size += _int_size(self.live - 1) - _int_size(self.live)
        self.size += _int_size(deleted + 1) - _int_size(deleted)
        self.dead.add(position)
        self.live -= 1

    def last_id(self) -> int:
        return self.ids[-1]

    def copy(self) -> Node:
        twin = Node.__new__(Node)
        twin.master, twin.fields = self.master, self.fields
        twin.ids, twin.items, twin.same = list(self.ids), list(self.items), list(self.same)
        twin.dead, twin.live, twin.size = set(self.dead), self.live, self.size
        return twin


class Pending:
    """One entry delivered to a consumer and not yet acknowledged (Redis's streamNACK)."""

    __slots__ = ("delivery_time", "delivery_count", "consumer")

    def __init__(self, delivery_time: int, delivery_count: int, consumer: bytes) -> None:
        self.delivery_time = delivery_time
        self.delivery_count = delivery_count
        self.consumer = consumer


class PendingList:
    """Pending entries by ID, with the IDs sorted for ranges."""

    __slots__ = ("by_id", "ids")

    def __init__(self) -> None:
        self.by_id: dict[int, Pending] = {}
        self.ids: list[int] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, entry_id: int, pending: Pending) -> None:
        if entry_id not in self.by_id:
            insort(self.ids, entry_id)
        self.by_id[entry_id] = pending

    def remove(self, entry_id: int) -> Pending | None:
        pending = self.by_id.pop(entry_id, None)
        if pending is not None:
            del self.ids[bisect_left(self.ids, entry_id)]
        return pending

    def between(self, start: int, end: int) -> Iterator[int]:
        """IDs from ``start`` to ``end`` included, in order."""
        ids = self.ids
        for position in range(bisect_left(ids, start), len(ids)):
            entry_id = ids[position]
            if entry_id > end:
                return
            yield entry_id


class Consumer:
    __slots__ = ("name", "seen_time", "pending")

    def __init__(self, name: bytes, seen_time: int) -> None:
        self.name = name
        self.seen_time = seen_time
        self.pending = PendingList()


class Group:
    __slots__ = ("name", "last_id", "entries_read", "pending", "consumers")

    def __init__(self, name: bytes, last_id: int, entries_read: int) -> None:
        self.name = name
        self.last_id = last_id
        self.entries_read = entries_read
        self.pending = PendingList()
        self.consumers: dict[bytes, Consumer] = {}

    def consumer(self, name: bytes, now: int) -> tuple[Consumer, bool]:
        """The named consumer, made if missing; whether it was made."""
        found = self.consumers.get(name)
        if found is not None:
            return found, False
        found = self.consumers[name] = Consumer(name, now)
        return found, True

    def pending_items(self) -> Iterator[tuple[int, Pending]]:
        return iter(self.pending.by_id.items())

    def sorted_consumers(self) -> list[Consumer]:
        return [self.consumers[name] for name in sorted(self.consumers)]


@values.register
class Stream:
    """A Redis stream: nodes of entries, the IDs and counters Redis keeps, and groups."""

    __slots__ = (
        "nodes", "firsts", "length", "last_id", "first_id", "max_deleted_id",
        "entries_added", "groups", "_rax",
    )  # fmt: skip
    redis_type = "stream"

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        #: Each node's master ID, for the bisect.
        self.firsts: list[int] = []
        self.length = 0
        self.last_id = 0
        self.first_id = 0
        self.max_deleted_id = 0
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}
        #: The radix-tree node count while the node list is unchanged (None: to count).
        self._rax: int | None = None

    # -- entries -------------------------------------------------------------------

    def append(self, entry_id: int, items: list[bytes], max_bytes: int, max_entries: int) -> None:
        """Add an entry (its ID above ``last_id``) as ``streamAppendItem`` does: to the last
        node while it fits, else to a new node whose master fields are this entry's."""
        node = self.nodes[-1] if self.nodes else None
        if node is not None:
            limit = max_bytes if 0 < max_bytes <= LISTPACK_MAX_SIZE else LISTPACK_MAX_SIZE
            full = bool(max_entries) and len(node.ids) >= max_entries
            if full or node.size + sum(map(len, items)) >= limit:
                node = None
        if node is None:
            node = Node(entry_id, tuple(items[0::2]))
            self.nodes.append(node)
            self.firsts.append(entry_id)
            self._rax = None
        node.append(entry_id, items)
        if self.length == 0:
            self.first_id = entry_id
        self.length += 1
        self.last_id = entry_id
        self.entries_added += 1

    def _find(self, entry_id: int) -> tuple[int, int] | None:
        """(node index, position) of a live entry, or None."""
        index = bisect_right(self.firsts, entry_id) - 1
        if index < 0:
            return None
        node = self.nodes[index]
        position = bisect_left(node.ids, entry_id)
        if position == len(node.ids) or node.ids[position] != entry_id or position in node.dead:
            return None
        return index, position

    def get(self, entry_id: int) -> list[bytes] | None:
        found = self._find(entry_id)
        if found is None:
            return None
        return self.nodes[found[0]].items[found[1]]

    def delete(self, entry_id: int) -> bool:
        """XDEL of one ID: flag it deleted, drop its node if it was the node's last live one."""
        found = self._find(entry_id)
        if found is None:
            return False
        index, position = found
        node = self.nodes[index]
        if node.live == 1:
            del self.nodes[index]
            del self.firsts[index]
            self._rax = None
        else:
            node.mark_deleted(position)
        self.length -= 1
        if entry_id > self.max_deleted_id:
            self.max_deleted_id = entry_id
        if entry_id == self.first_id:
            self.first_id = self._edge(False)
        return True

    def _edge(self, last: bool) -> int:
        """The first (or last) live entry's ID; 0 if none (Redis's streamGetEdgeID)."""
        nodes = reversed(self.nodes) if last else self.nodes
        for node in nodes:
            if node.live:
                positions = range(len(node.ids) - 1, -1, -1) if last else range(len(node.ids))
                for position in positions:
                    if position not in node.dead:
                        return node.ids[position]
        return 0

    def first_entry(self) -> tuple[int, list[bytes]] | None:
        for entry in self.range(0, MAX_ID):
            return entry
        return None

    def last_entry(self) -> tuple[int, list[bytes]] | None:
        for entry in self.range(0, MAX_ID, reverse=True):
            return entry
        return None

    def range(
        self, start: int, end: int, reverse: bool = False
    ) -> Iterator[tuple[int, list[bytes]]]:
        """Live entries with ``start <= id <= end``, lowest first (or highest first)."""
        if start > end or not self.nodes:
            return
        firsts = self.firsts
        if not reverse:
            nodes = self.nodes
            for node_index in range(max(bisect_right(firsts, start) - 1, 0), len(nodes)):
                node = nodes[node_index]
                if node.master > end:
                    return
                ids, dead = node.ids, node.dead
                for position in range(bisect_left(ids, start), len(ids)):
                    entry_id = ids[position]
                    if entry_id > end:
                        return
                    if position not in dead:
                        yield entry_id, node.items[position]
        else:
            index = bisect_right(firsts, end) - 1
            for node_index in range(index, -1, -1):
                node = self.nodes[node_index]
                ids, dead = node.ids, node.dead
                for position in range(bisect_right(ids, end) - 1, -1, -1):
                    entry_id = ids[position]
                    if entry_id < start:
                        return
                    if position not in dead:
                        yield entry_id, node.items[position]

    # -- trimming ------------------------------------------------------------------

    def trim(self, maxlen: int | None, minid: int | None, approx: bool, limit: int) -> int:
        """Redis's ``streamTrim``: drop whole nodes from the head while they go entirely,
        then (unless ``approx``) flag entries deleted in the next node; ``limit`` (0: none)
        bounds the entries removed, node by node. How many entries went."""
        deleted = 0
        nodes = self.nodes
        dropped = 0  # whole nodes gone from the head, removed in one slice at the end
        while dropped < len(nodes):
            if maxlen is not None and self.length <= maxlen:
                break
            node = nodes[dropped]
            entries = node.live
            if limit and deleted + entries > limit:
                break
            if maxlen is not None:
                remove_node = self.length - entries >= maxlen
            else:
                remove_node = node.last_id() < minid  # type: ignore[operator]
            if remove_node:
                dropped += 1
                self.length -= entries
                deleted += entries
                continue
            if approx:
                break
            for position, entry_id in enumerate(node.ids):
                if maxlen is not None:
                    if self.length <= maxlen:
                        break
                elif entry_id >= minid:  # type: ignore[operator]
                    break
                if position not in node.dead:
                    node.mark_deleted(position)
                    self.length -= 1
                    deleted += 1
            break
        if dropped:
            del nodes[:dropped]
            del self.firsts[:dropped]
            self._rax = None
        self.first_id = self._edge(False) if self.length else 0
        return deleted

    # -- consumer groups: counters (Redis 7.0's lag arithmetic) ------------------------

    def has_tombstones(self, start: int) -> bool:
        """``streamRangeHasTombstones(s, start, NULL)``: whether a deleted entry may lie
        at or after ``start``."""
        if not self.length or not self.max_deleted_id:
            return False
        if self.first_id > self.max_deleted_id:
            return False
        return start <= self.max_deleted_id

    def estimate_entries_read(self, entry_id: int) -> int:
        """``streamEstimateDistanceFromFirstEverEntry``: the entries-read counter that an
        ID stands for, or INVALID_ENTRIES_READ when it cannot be known."""
        if not self.entries_added:
            return 0
        if not self.length and entry_id <= self.last_id:
            return self.entries_added
        if entry_id == self.last_id:
            return self.entries_added
        if entry_id > self.last_id:
            return INVALID_ENTRIES_READ
        if not self.max_deleted_id or self.max_deleted_id < self.first_id:
            if entry_id < self.first_id:
                return self.entries_added - self.length
            if entry_id == self.first_id:
                return self.entries_added - self.length + 1
        return INVALID_ENTRIES_READ

    def lag(self, group: Group) -> int | None:
        """XINFO's ``lag`` of a group (None: unknown, a null reply)."""
        if not self.entries_added:
            return 0
        if group.entries_read != INVALID_ENTRIES_READ and not self.has_tombstones(group.last_id):
            return self.entries_added - group.entries_read
        entries_read = self.estimate_entries_read(group.last_id)
        if entries_read != INVALID_ENTRIES_READ:
            return self.entries_added - entries_read
        return None

    def advance_group(self, group: Group, entry_id: int) -> None:
        """A group is delivered ``entry_id`` beyond its last ID: move it and its counter."""
        if group.entries_read != INVALID_ENTRIES_READ and not self.has_tombstones(entry_id):
            group.entries_read += 1
        elif self.entries_added:
            group.entries_read = self.estimate_entries_read(entry_id)
        group.last_id = entry_id

    # -- radix tree shape (XINFO STREAM) -----------------------------------------------

    def rax_nodes(self) -> int:
        """The nodes Redis's radix tree has for these node keys (128-bit big-endian IDs):
        a compressed node for each run of single-child positions, one per branch, one per
        key end."""
        if self._rax is None:
            keys = [first.to_bytes(16, "big") for first in self.firsts]
            self._rax = _rax_count(keys, 0) if keys else 1
        return self._rax

    # -- the value protocol ----------------------------------------------------------

    def encoding(self) -> str:
        return "stream"

    def copy(self) -> Stream:
        twin = Stream()
        twin.nodes = [node.copy() for node in self.nodes]
        twin.firsts = list(self.firsts)
        for name in self.__slots__[2:-2]:
            setattr(twin, name, getattr(self, name))
        twin.groups = _copy_groups(self.groups)
        return twin

    def to_plain(self) -> tuple:
        nodes = [
            (n.master, n.fields, n.ids, n.items, n.same, sorted(n.dead), n.live, n.size)
            for n in self.nodes
        ]
        groups = [
            (
                g.name,
                g.last_id,
                g.entries_read,
                [(i, n.delivery_time, n.delivery_count, n.consumer) for i, n in g.pending_items()],
                [(c.name, c.seen_time) for c in g.consumers.values()],
            )
            for g in self.groups.values()
        ]
        return (
            nodes,
            self.length,
            self.last_id,
            self.first_id,
            self.max_deleted_id,
            self.entries_added,
            groups,
        )

    @classmethod
    def from_plain(cls, data: tuple) -> Stream:
        nodes, length, last_id, first_id, max_deleted_id, entries_added, groups = data
        stream = cls()
        for master, fields, ids, items, same, dead, live, size in nodes:
            node = Node.__new__(Node)
            node.master, node.fields = master, tuple(fields)
            node.ids, node.items, node.same = list(ids), [list(i) for i in items], list(same)
            node.dead, node.live, node.size = set(dead), live, size
            stream.nodes.append(node)
            stream.firsts.append(master)
        stream.length, stream.last_id, stream.first_id = length, last_id, first_id
        stream.max_deleted_id, stream.entries_added = max_deleted_id, entries_added
        for name, group_last, entries_read, pending, consumers in groups:
            group = stream.groups[name] = Group(name, group_last, entries_read)
            for consumer_name, seen in consumers:
                group.consumers[consumer_name] = Consumer(consumer_name, seen)
            for entry_id, delivered, count, owner in pending:
                nack = Pending(delivered, count, owner)
                group.pending.add(entry_id, nack)
                group.consumers[owner].pending.add(entry_id, nack)
        return stream

    def memory_usage(self) -> int:
        getsizeof = sys.getsizeof
        size = getsizeof(self) + getsizeof(self.nodes) + getsizeof(self.firsts)
        for node in self.nodes:
            size += node.size + getsizeof(node.ids) + getsizeof(node.items)
        for group in self.groups.values():
            size += getsizeof(group) + 64 * len(group.pending) + 64 * len(group.consumers)
        return size

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        """XADDs of the live entries, then XSETID with the counters, then each group, its
        consumers and pending entries (XCLAIM ... FORCE JUSTID keeps their times and
        counts), as Redis's AOF rewrite emits a stream."""
        first = True
        for entry_id, items in self.range(0, MAX_ID):
            yield [b"XADD", key, format_id(entry_id), *items]
            first = False
        if first:
            # an empty stream: made and emptied, as rewriteStreamObject does
            yield [b"XADD", key, b"MAXLEN", b"0", format_id(self.last_id or 1), b"x", b"y"]
        yield [
            b"XSETID", key, format_id(self.last_id),
            b"ENTRIESADDED", b"%d" % self.entries_added,
            b"MAXDELETEDID", format_id(self.max_deleted_id),
        ]  # fmt: skip
        for group in self.groups.values():
            yield [
                b"XGROUP", b"CREATE", key, group.name, format_id(group.last_id),
                b"ENTRIESREAD", b"%d" % group.entries_read,
            ]  # fmt: skip
            for consumer in group.consumers.values():
                yield [b"XGROUP", b"CREATECONSUMER", key, group.name, consumer.name]
            for entry_id in group.pending.ids:
                nack = group.pending.by_id[entry_id]
                yield [
                    b"XCLAIM", key, group.name, nack.consumer, b"0", format_id(entry_id),
                    b"TIME", b"%d" % nack.delivery_time,
                    b"RETRYCOUNT", b"%d" % nack.delivery_count, b"JUSTID", b"FORCE",
                ]  # fmt: skip


def _copy_groups(groups: dict[bytes, Group]) -> dict[bytes, Group]:
    copied: dict[bytes, Group] = {}
    for name, group in groups.items():
        twin = copied[name] = Group(name, group.last_id, group.entries_read)
        for consumer_name, consumer in group.consumers.items():
            twin.consumers[consumer_name] = Consumer(consumer_name, consumer.seen_time)
        for entry_id in group.pending.ids:
            nack = group.pending.by_id[entry_id]
            fresh = Pending(nack.delivery_time, nack.delivery_count, nack.consumer)
            twin.pending.add(entry_id, fresh)
            twin.consumers[nack.consumer].pending.add(entry_id, fresh)
    return copied


def _rax_count(keys: list[bytes], depth: int) -> int:
    """Radix-tree nodes under a node that starts at ``depth`` for these sorted keys of
    equal length: a compressed node for a common run, then a branch or a key end."""
    first, last = keys[0], keys[-1]
    common = depth
    end = len(first)
    while common < end and first[common] == last[common]:
        common += 1
    count = 1 if common > depth else 0
    if common == end:
        return count + 1  # the key's end node
    count += 1  # the branching node
    start = 0
    while start < len(keys):
        byte = keys[start][common]
        stop = start + 1
        while stop < len(keys) and keys[stop][common] == byte:
            stop += 1
        count += _rax_count(keys[start:stop], common + 1)
        start = stop
    return count
