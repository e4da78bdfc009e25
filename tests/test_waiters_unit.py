"""The shard's waiters as a plain object: @block, pushes, serving order, events, cancels.

No process or pipe: batches go straight into :meth:`Shard.execute_batch`, and what the
shard would send unasked is read from ``shard.events``.
"""

from __future__ import annotations

from shardserver import events
from shardserver.framing import Event, FrameDecoder, encode_frame, event_frame
from shardserver.shard import Shard

CTX = 0  # database 0, RESP2


def _block(stream: int, wait_id: int, *argv: bytes) -> list:
    return [CTX, [b"@block", stream, wait_id, CTX, *argv]]


def test_a_waiter_is_served_right_after_the_push_in_arrival_order() -> None:
    shard = Shard(0)
    replies = shard.execute_batch(
        [_block(0, 1, b"blpop", b"q", b"0"), _block(1, 2, b"brpop", b"q", b"0")]
    )
    assert replies == [None, None]
    assert shard.events == []
    replies = shard.execute_batch(
        [[CTX, [b"rpush", b"q", b"x", b"y", b"z"]], [CTX, [b"llen", b"q"]]]
    )
    assert replies == [b":3\r\n", b":1\r\n"]  # both served before LLEN ran
    assert shard.events == [
        (0, (events.SERVED, 1, b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n")),
        (1, (events.SERVED, 2, b"*2\r\n$1\r\nq\r\n$1\r\nz\r\n")),
    ]
    assert not shard.waiters
    assert shard.handlers is shard.base_handlers  # the last waiter gone: the plain table


def test_data_at_once_and_wrong_type() -> None:
    shard = Shard(0)
    shard.execute_batch([[CTX, [b"rpush", b"q", b"v"]], [CTX, [b"set", b"s", b"x"]]])
    assert shard.execute_batch([_block(0, 1, b"blpop", b"q", b"0")]) == [
        [b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n"]
    ]
    assert shard.execute_batch([_block(0, 2, b"blpop", b"s", b"0")])[0][0].startswith(b"-WRONGTYPE")
    assert not shard.waiters


def test_a_cancelled_waiter_is_not_served_and_a_wrong_type_serves_nobody() -> None:
    shard = Shard(0)
    shard.execute_batch([_block(0, 1, b"blpop", b"q", b"0"), _block(0, 2, b"blpop", b"q", b"0")])
    assert shard.execute_batch([[CTX, [b"@bcancel", 0, 1]]]) == [[True]]
    assert shard.execute_batch([[CTX, [b"@bcancel", 0, 1]]]) == [[False]]
    shard.execute_batch([[CTX, [b"zadd", b"q", b"1", b"m"]]])
    assert shard.events == []
    shard.execute_batch([[CTX, [b"del", b"q"]], [CTX, [b"lpush", b"q", b"x"]]])
    assert shard.events == [(0, (events.SERVED, 2, b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"))]


def test_a_remote_waiter_is_told_once_and_keeps_the_key() -> None:
    shard = Shard(0)
    shard.execute_batch([[CTX, [b"@bwait", 0, 7, b"q"]], _block(0, 8, b"blpop", b"q", b"0")])
    shard.execute_batch([[CTX, [b"rpush", b"q", b"x"]], [CTX, [b"rpush", b"q", b"y"]]])
    assert shard.events == [(0, (events.READY, 7))]  # the direct waiter behind it waits
    shard.events.clear()
    shard.execute_batch([[CTX, [b"@bcancel", 0, 7]]])  # its coordination popped elsewhere
    assert shard.events == [(0, (events.SERVED, 8, b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"))]


def test_a_transaction_serves_after_its_last_run() -> None:
    shard = Shard(0)
    shard.execute_batch([_block(0, 1, b"blpop", b"q", b"0")])
    replies = shard.execute_batch(
        [
            [CTX, [b"@txbegin"]],
            [CTX, [b"rpush", b"q", b"x", b"y"]],
            [CTX, [b"lpop", b"q"]],
            [CTX, [b"@txend"]],
        ]
    )
    assert replies[1:3] == [b":2\r\n", b"$1\r\nx\r\n"]
    assert shard.events == [(0, (events.SERVED, 1, b"*2\r\n$1\r\nq\r\n$1\r\ny\r\n"))]


def test_event_frames_are_told_apart_from_replies() -> None:
    decoder = FrameDecoder()
    data = encode_frame(b"reply") + b"".join(event_frame(b"told")) + encode_frame(b"next")
    frames = decoder.feed(data[:5]) + decoder.feed(data[5:])
    assert frames[0] == b"reply" and frames[2] == b"next"
    assert isinstance(frames[1], Event) and frames[1].data == b"told"
