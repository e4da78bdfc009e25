"""Pipe framing: frames survive any split, and real pipes in both write modes."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.framing import FrameDecoder, FrameWriter, encode_frame, write_all


@given(
    st.lists(st.binary(max_size=300), max_size=10),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
@settings(max_examples=300)
def test_any_split_decodes_the_same(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        if cut > start:
            out.extend(decoder.feed(stream[start:cut]))
            start = cut
    assert out == payloads
    assert decoder.buffered() == 0


def test_blocking_write_all_through_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    try:
        payload = os.urandom(50_000)
        write_all(write_fd, [encode_frame(payload)])
        decoder = FrameDecoder()
        got: list[bytes] = []
        while not got:
            got = decoder.feed(os.read(read_fd, 1 << 16))
        assert got == [payload]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_nonblocking_writer_keeps_what_the_pipe_cannot_take() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        writer = FrameWriter(write_fd)
        big = os.urandom(3 << 20)  # larger than any pipe buffer
        assert writer.write(big) is False
        assert writer.waiting
        decoder = FrameDecoder()
        got: list[bytes] = []
        while not got:
            got.extend(decoder.feed(os.read(read_fd, 1 << 20)))
            writer.flush()
        assert got == [big]
        assert not writer.waiting
    finally:
        os.close(read_fd)
        os.close(write_fd)
