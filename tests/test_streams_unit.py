"""Unit tests of the stream value (shardserver.streams) and its RDB form (persistence.streamrdb).

The node sizes must be the exact listpack sizes Redis computes (they decide where nodes are
cut, so what ``~`` trims), the radix-tree node count what Redis's rax has, and a stream
must survive its RDB encoding and its plain form unchanged.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.persistence import rdb, streamrdb
from shardserver.streams import (
    INVALID_ENTRIES_READ,
    MAX_ID,
    Group,
    Pending,
    Stream,
    _rax_count,
    make_id,
)

ITEMS = st.lists(
    st.tuples(
        st.sampled_from([b"f", b"g", b"field", b"0", b"-5", b"x" * 70]),
        st.sampled_from([b"v", b"", b"1", b"4096", b"-123456", b"9" * 19, b"y" * 5000]),
    ),
    min_size=1,
    max_size=4,
).map(lambda pairs: [x for pair in pairs for x in pair])


def _filled(batches: list[list[bytes]], max_bytes: int = 4096, max_entries: int = 100) -> Stream:
    stream = Stream()
    for i, items in enumerate(batches, 1):
        stream.append(make_id(i, i % 3), items, max_bytes, max_entries)
    return stream


@settings(max_examples=60, deadline=None)
@given(st.lists(ITEMS, min_size=1, max_size=60), st.data())
def test_node_sizes_are_the_listpack_sizes(batches: list[list[bytes]], data: st.DataObject) -> None:
    stream = _filled(batches, max_bytes=600, max_entries=7)
    ids = [entry_id for entry_id, _items in stream.range(0, MAX_ID)]
    for entry_id in data.draw(st.lists(st.sampled_from(ids), max_size=10)):
        stream.delete(entry_id)
    for node in stream.nodes:
        assert node.size == len(streamrdb.node_listpack(node))


def test_new_node_by_entries_and_by_bytes() -> None:
    by_count = _filled([[b"f", b"v"]] * 25, max_entries=10)
    assert [len(node.ids) for node in by_count.nodes] == [10, 10, 5]
    by_bytes = _filled([[b"f", b"x" * 100]] * 10, max_bytes=400, max_entries=0)
    assert all(node.size < 400 + 110 for node in by_bytes.nodes)
    assert len(by_bytes.nodes) > 1


def test_trim_by_whole_nodes_when_approximate() -> None:
    stream = _filled([[b"f", b"v"]] * 250)
    assert stream.trim(100, None, True, 0) == 100  # two nodes of 100 go, not 150 entries
    assert stream.length == 150
    assert stream.trim(100, None, False, 0) == 50
    assert stream.length == 100
    assert stream.first_id == make_id(151, 151 % 3)


def test_trim_limit_counts_whole_nodes() -> None:
    stream = _filled([[b"f", b"v"]] * 350)
    assert stream.trim(0, None, True, 150) == 100
    assert stream.trim(None, make_id(300, 0), True, 0) == 100


def test_delete_drops_an_emptied_node_and_keeps_counters() -> None:
    stream = _filled([[b"f", b"v"]] * 3, max_entries=2)
    assert len(stream.nodes) == 2
    assert stream.delete(make_id(3, 0))
    assert len(stream.nodes) == 1
    assert stream.max_deleted_id == make_id(3, 0)
    assert not stream.delete(make_id(3, 0))
    assert stream.delete(make_id(1, 1))
    assert stream.first_id == make_id(2, 2)
    assert stream.entries_added == 3


def test_rax_node_counts() -> None:
    assert Stream().rax_nodes() == 1
    assert _rax_count([bytes(16)], 0) == 2
    two = [bytes(15) + b"\x01", bytes(15) + b"\x02"]
    assert _rax_count(two, 0) == 4  # the common run, a branch, two key ends
    apart = [bytes(8) + b"\x01" + bytes(7), bytes(8) + b"\x02" + bytes(7)]
    assert _rax_count(apart, 0) == 6


def test_entries_read_estimates() -> None:
    stream = _filled([[b"f", b"v"]] * 5)
    group = Group(b"g", 0, INVALID_ENTRIES_READ)
    assert stream.lag(group) == 5
    stream.advance_group(group, make_id(1, 1))
    assert group.entries_read == 1
    stream.delete(make_id(3, 0))
    assert stream.lag(group) is None  # a tombstone ahead: unknown
    assert stream.estimate_entries_read(stream.last_id) == 5
    assert stream.estimate_entries_read(stream.last_id + 1) == INVALID_ENTRIES_READ


def _roundtrip(stream: Stream) -> Stream:
    kind, body = rdb.encode_value(stream, compress=True)
    assert kind == rdb.TYPE_STREAM_LISTPACKS_2
    return rdb.decode_value(kind, body)  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(5))
def test_rdb_and_plain_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    stream = _filled([[b"f", b"%d" % rng.randrange(10**6)] for _ in range(rng.randrange(1, 400))])
    for _ in range(rng.randrange(50)):
        stream.delete(make_id(rng.randrange(1, 400), 0))
    group = stream.groups[b"g"] = Group(b"g", stream.last_id, 7)
    consumer = group.consumer(b"alice", 1234)[0]
    for entry_id, _items in list(stream.range(0, MAX_ID))[:5]:
        nack = Pending(99, 2, b"alice")
        group.pending.add(entry_id, nack)
        consumer.pending.add(entry_id, nack)
    stream.groups[b"h"] = Group(b"h", 0, INVALID_ENTRIES_READ)
    for twin in (_roundtrip(stream), Stream.from_plain(stream.to_plain()), stream.copy()):
        assert twin.to_plain() == stream.to_plain()
        assert [n.size for n in twin.nodes] == [n.size for n in stream.nodes]


def test_redis_6_streams_are_read() -> None:
    """STREAM_LISTPACKS (type 15) lacks the first ID, the greatest deleted ID, the entries
    added and the groups' read counters: they are derived as Redis derives them on load."""
    stream = _filled([[b"f", b"v"]] * 5)
    stream.delete(make_id(1, 1))
    stream.groups[b"g"] = Group(b"g", make_id(2, 2), 1)
    node_parts = [rdb.encode_length(len(stream.nodes))]
    for node in stream.nodes:
        node_parts.append(rdb.encode_string(node.master.to_bytes(16, "big")))
        node_parts.append(rdb.encode_string(streamrdb.node_listpack(node)))
    last = stream.last_id
    body = b"".join(
        [
            *node_parts,
            rdb.encode_length(stream.length),
            rdb.encode_length(last >> 64),
            rdb.encode_length(last & (2**64 - 1)),
            rdb.encode_length(1),  # one group: name, last ID, no PEL, no consumers
            rdb.encode_string(b"g"),
            rdb.encode_length(2),
            rdb.encode_length(2),
            rdb.encode_length(0),
            rdb.encode_length(0),
        ]
    )
    loaded = rdb.decode_value(rdb.TYPE_STREAM_LISTPACKS, body)
    assert loaded.length == 4 and loaded.entries_added == 4  # type: ignore[union-attr]
    assert loaded.first_id == make_id(2, 2) and loaded.max_deleted_id == 0  # type: ignore[union-attr]
    assert loaded.groups[b"g"].entries_read == 1  # type: ignore[union-attr]
