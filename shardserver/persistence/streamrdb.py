"""Streams in RDB (Redis 7.0's ``rdbSaveObject``/``rdbLoadObject`` for ``OBJ_STREAM``).

``STREAM_LISTPACKS_2`` (type 19), what Redis 7.0 writes: the number of radix-tree nodes,
then per node its key (the master ID as 16 bytes big-endian) and its listpack exactly as
Redis lays it out (the master entry: live count, deleted count, the master fields and a 0;
then per entry its flags, the ID's deltas from the master ID, its fields unless they are
the master's, its values and its element count). Then the length, the last ID, the first
ID, the greatest deleted ID and the entries added; then each group (in name order): its
name, last delivered ID, entries read (-1 as the 64-bit length Redis writes for it), its
pending list (raw 16-byte IDs, delivery time in little-endian milliseconds, delivery count)
and its consumers (name, seen time, the IDs they own).

``STREAM_LISTPACKS`` (type 15, Redis 5 to 6.2) is read too: without the first ID, the
greatest deleted ID, the entries added and the groups' read counters, which are derived as
Redis derives them on load.
"""

from __future__ import annotations

import struct
from typing import Any

from shardserver.persistence import listpack
from shardserver.streams import (
    FLAG_DELETED,
    FLAG_SAMEFIELDS,
    INVALID_ENTRIES_READ,
    SEQ_BITS,
    SEQ_MASK,
    Consumer,
    Group,
    Node,
    Pending,
    Stream,
    make_id,
)

TYPE_STREAM_LISTPACKS = 15
TYPE_STREAM_LISTPACKS_2 = 19

_pack_ms = struct.Struct("<q").pack
_unpack_ms = struct.Struct("<q").unpack


def node_listpack(node: Node) -> bytes:
    """A node's listpack, byte for byte as Redis builds it entry by entry."""
    elements = [b"%d" % node.live, b"%d" % len(node.dead), b"%d" % len(node.fields)]
    elements += node.fields
    elements.append(b"0")
    master_ms, master_seq = node.master >> SEQ_BITS, node.master & SEQ_MASK
    for position, entry_id in enumerate(node.ids):
        items = node.items[position]
        same = node.same[position]
        flags = (FLAG_SAMEFIELDS if same else 0) | (FLAG_DELETED if position in node.dead else 0)
        elements += (
            b"%d" % flags,
            b"%d" % ((entry_id >> SEQ_BITS) - master_ms),
            b"%d" % ((entry_id & SEQ_MASK) - master_seq),
        )
        pairs = len(items) // 2
        if same:
            elements += items[1::2]
            elements.append(b"%d" % (pairs + 3))
        else:
            elements.append(b"%d" % pairs)
            elements += items
            elements.append(b"%d" % (2 * pairs + 4))
    return listpack.build(elements)


def encode(stream: Stream, encode_length: Any, encode_string: Any, compress: bool) -> bytes:
    """The payload of a ``STREAM_LISTPACKS_2`` value (``encode_length`` and
    ``encode_string`` are the RDB module's, so strings compress as Redis's do)."""
    out = [encode_length(len(stream.nodes))]
    for node in stream.nodes:
        out.append(encode_string(node.master.to_bytes(16, "big"), compress))
        out.append(encode_string(node_listpack(node), compress))
    for number in (
        stream.length,
        stream.last_id >> SEQ_BITS,
        stream.last_id & SEQ_MASK,
        stream.first_id >> SEQ_BITS,
        stream.first_id & SEQ_MASK,
        stream.max_deleted_id >> SEQ_BITS,
        stream.max_deleted_id & SEQ_MASK,
        stream.entries_added,
    ):
        out.append(encode_length(number))
    out.append(encode_length(len(stream.groups)))
    for name in sorted(stream.groups):
        group = stream.groups[name]
        out += (
            encode_string(name, compress),
            encode_length(group.last_id >> SEQ_BITS),
            encode_length(group.last_id & SEQ_MASK),
            encode_length(group.entries_read & ((1 << 64) - 1)),
            encode_length(len(group.pending)),
        )
        for entry_id in group.pending.ids:
            nack = group.pending.by_id[entry_id]
            out += (
                entry_id.to_bytes(16, "big"),
                _pack_ms(nack.delivery_time),
                encode_length(nack.delivery_count),
            )
        consumers = group.sorted_consumers()
        out.append(encode_length(len(consumers)))
        for consumer in consumers:
            out += (
                encode_string(consumer.name, compress),
                _pack_ms(consumer.seen_time),
                encode_length(len(consumer.pending)),
            )
            out += [entry_id.to_bytes(16, "big") for entry_id in consumer.pending.ids]
    return b"".join(out)


def _signed(number: int) -> int:
    """A 64-bit length read back as Redis's ``long long`` (the -1 of entries read)."""
    return number - (1 << 64) if number >= 1 << 63 else number


def _node(key: bytes, blob: bytes) -> Node:
    """A node from its radix-tree key and listpack (ValueError if they disagree)."""
    if len(key) != 16:
        raise ValueError("a stream node key is not 16 bytes")
    elements = listpack.parse(blob)
    if not elements:
        raise ValueError("an empty stream listpack")
    master = int.from_bytes(key, "big")
    live, deleted, field_count = int(elements[0]), int(elements[1]), int(elements[2])
    fields = tuple(elements[3 : 3 + field_count])
    if elements[3 + field_count] != b"0":
        raise ValueError("a stream master entry without its terminator")
    node = Node(master, fields)
    node.size = len(blob)
    node.live = live
    at = 4 + field_count
    master_ms, master_seq = master >> SEQ_BITS, master & SEQ_MASK
    while at < len(elements):
        flags = int(elements[at])
        entry_id = make_id(master_ms + int(elements[at + 1]), master_seq + int(elements[at + 2]))
        at += 3
        if flags & FLAG_SAMEFIELDS:
            values_ = elements[at : at + field_count]
            items = [x for pair in zip(fields, values_, strict=True) for x in pair]
            at += field_count
        else:
            pairs = int(elements[at])
            items = list(elements[at + 1 : at + 1 + 2 * pairs])
            at += 1 + 2 * pairs
        at += 1  # lp-count
        if flags & FLAG_DELETED:
            node.dead.add(len(node.ids))
        node.ids.append(entry_id)
        node.items.append(items)
        node.same.append(bool(flags & FLAG_SAMEFIELDS))
    if len(node.dead) != deleted or len(node.ids) - deleted != live:
        raise ValueError("a stream listpack's counts disagree with its entries")
    return node


def read(reader: Any, kind: int) -> Stream:
    """A stream from an RDB reader positioned at its payload (types 15 and 19)."""
    stream = Stream()
    for _ in range(reader.count()):
        key = reader.string()
        node = _node(key, reader.string())
        stream.nodes.append(node)
        stream.firsts.append(node.master)
    stream.length = reader.count()
    stream.last_id = make_id(reader.count(), reader.count())
    if kind >= TYPE_STREAM_LISTPACKS_2:
        stream.first_id = make_id(reader.count(), reader.count())
        stream.max_deleted_id = make_id(reader.count(), reader.count())
        stream.entries_added = reader.count()
    else:
        stream.entries_added = stream.length
        first = stream.first_entry()
        stream.first_id = first[0] if first is not None else 0
    for _ in range(reader.count()):
        name = reader.string()
        last_id = make_id(reader.count(), reader.count())
        if kind >= TYPE_STREAM_LISTPACKS_2:
            entries_read = _signed(reader.count())
        else:
            entries_read = stream.estimate_entries_read(last_id)
        group = stream.groups[name] = Group(name, last_id, entries_read)
        unowned: dict[int, Pending] = {}
        for _ in range(reader.count()):
            entry_id = int.from_bytes(reader.take(16), "big")
            delivered = _unpack_ms(reader.take(8))[0]
            unowned[entry_id] = Pending(delivered, reader.count(), b"")
        for _ in range(reader.count()):
            consumer = Consumer(reader.string(), _unpack_ms(reader.take(8))[0])
            group.consumers[consumer.name] = consumer
            for _ in range(reader.count()):
                entry_id = int.from_bytes(reader.take(16), "big")
                nack = unowned.pop(entry_id, None)
                if nack is None:
                    raise ValueError("a consumer owns an entry its group has not pending")
                nack.consumer = consumer.name
                group.pending.add(entry_id, nack)
                consumer.pending.add(entry_id, nack)
        if unowned:
            raise ValueError("a pending entry without a consumer")
        if entries_read < INVALID_ENTRIES_READ:
            raise ValueError("a group's entries read is out of range")
    return stream
