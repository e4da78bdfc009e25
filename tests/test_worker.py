"""The shard worker loop over real pipes: nothing a handler returns stops it, any size crosses.

The loop runs in a thread of this process on a plain :class:`Shard`; the test plays the
acceptor: it writes batch frames and decodes reply frames (chunks included) as the links do.
"""

from __future__ import annotations

import marshal
import os
import threading
from collections.abc import Iterator

import pytest

from shardserver.framing import CHUNK_SIZE, Chunk, FrameDecoder, encode_frame
from shardserver.shard import HANDLERS, Shard
from shardserver.slowlog import SLOW
from shardserver.worker import CHUNKED, serve


class Worker:
    """A shard worker loop on pipes, and the acceptor's end of them."""

    def __init__(self) -> None:
        self.shard = Shard(0)
        command_read, self.command_write = os.pipe()
        self.reply_read, reply_write = os.pipe()
        self.thread = threading.Thread(
            target=serve, args=(self.shard, command_read, reply_write), daemon=True
        )
        self.fds = [command_read, reply_write, self.reply_read]
        self.decoder = FrameDecoder()
        self.thread.start()

    def call(self, batch: list[list]) -> list:
        """Send one batch; its replies, with chunked ones put back together."""
        os.write(self.command_write, encode_frame(marshal.dumps(batch)))
        chunks: dict[int, list[bytes]] = {}
        while True:
            for payload in self.decoder.feed(os.read(self.reply_read, 1 << 20)):
                if isinstance(payload, Chunk):
                    chunks.setdefault(payload.run, []).append(bytes(payload.data))
                    continue
                # a slow run's reply carries notes (slowlog.py), which the links take off
                replies = [
                    reply[1] if reply.__class__ is tuple and reply and reply[0] is SLOW else reply
                    for reply in marshal.loads(payload)
                ]
                return [
                    b"".join(chunks.pop(i)) if reply is CHUNKED else reply
                    for i, reply in enumerate(replies)
                ]

    def close(self) -> None:
        os.close(self.command_write)  # end of file: the loop returns
        self.thread.join(5)
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def worker() -> Iterator[Worker]:
    running = Worker()
    yield running
    running.close()
    assert not running.thread.is_alive()


def test_handler_bugs_become_error_replies_and_the_loop_goes_on(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raises(shard, db, argv):
        raise RuntimeError("a bug")

    def unmarshallable(shard, db, argv):
        return threading.Lock()

    monkeypatch.setitem(HANDLERS, b"@raises", raises)
    monkeypatch.setitem(HANDLERS, b"@odd", unmarshallable)
    replies = worker.call(
        [[0, [b"set", b"k", b"v"]], [0, [b"@raises"]], [0, [b"@odd"]], [0, [b"get", b"k"]]]
    )
    assert replies[0] == b"+OK\r\n" and replies[3] == b"$1\r\nv\r\n"
    assert replies[1] == b"-ERR internal error in shard 0: RuntimeError\r\n"
    assert replies[2].startswith(b"-ERR internal error: reply cannot be sent")
    assert worker.call([[0, [b"get", b"k"]]]) == [b"$1\r\nv\r\n"]


def test_replies_larger_than_a_chunk_arrive_whole(worker: Worker) -> None:
    value = os.urandom(CHUNK_SIZE * 2 + 12345)
    worker.call([[0, [b"set", b"big", value]]])
    expected = b"$%d\r\n%b\r\n" % (len(value), value)
    one, run, small = worker.call(
        [[0, [b"get", b"big"]], [0, *([[b"get", b"big"]] * 3)], [0, [b"strlen", b"big"]]]
    )
    assert one == expected
    assert run == expected * 3
    assert small == b":%d\r\n" % len(value)
