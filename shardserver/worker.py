"""The shard worker process: moves batches between its pipes and its :class:`Shard`.

It blocks on the command pipe with a timeout that wakes it for the active-expiry sweep
(``hz`` times a second), executes every batch that has arrived, and writes all their replies
in one system call. End of file on the command pipe means the acceptor is gone (stopped, or
killed): the worker exits, so no process is left behind.

A batch's replies normally travel as one marshal frame. Anything larger than a chunk (a run's
replies in :class:`shardserver.shard.Pieces`, one huge reply) goes first as chunk frames, its
place in the reply frame marked with ``...``; a value that marshal cannot encode (a handler's
bug) becomes that run's error reply. So no reply, of any size or kind, can stop the shard.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import select
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from shardserver import events
from shardserver.errors import error
from shardserver.framing import (
    CHUNK_SIZE,
    FrameDecoder,
    chunk_frames,
    event_frame,
    frame_header,
    write_all,
)
from shardserver.logs import setup_logging
from shardserver.persistence.loader import LoadError, load
from shardserver.processes import close_inherited_fds, name_process
from shardserver.scheduler import Scheduler
from shardserver.shard import Pieces, Shard
from shardserver.slowlog import SLOW

log = logging.getLogger("shardserver.worker")

#: Bytes asked of one pipe read. CPython allocates the whole size first; above glibc's mmap
#: threshold (128 KiB) every read would cost an mmap, an mremap and a munmap.
READ_CHUNK = 1 << 16
#: The mark, in a reply frame, of a run whose reply went ahead as chunks.
CHUNKED = ...
#: While a ticket waits for the watermark, how often a shard looks at it again: poll's
#: timeout is in whole milliseconds (a fraction rounds up to one).
TICKET_WAIT_MS = 1
#: Set to 1 in a shard's environment, its scheduler ignores tickets and holds: the broken
#: control that tests/test_atomicity.py must catch tearing multi-shard commands. Never set
#: it otherwise.
BREAK_ORDER_ENV = "REDIS_CLONE_BREAK_TICKET_ORDER"


def run_worker(
    index: int,
    settings: dict,
    pipes: list[tuple[Connection, Connection]],
    book: Any,
    board: Any = None,
) -> None:
    """Entry point of a shard process (forked from an acceptor): ``pipes`` holds, for each
    acceptor, the (commands, replies) ends of its two pipes; ``book`` orders multi-shard
    steps when there are several acceptors (:mod:`shardserver.ordering`); ``board`` says
    to the acceptors which scripts run (:mod:`shardserver.scripting.board`)."""
    fds = [(commands.fileno(), replies.fileno()) for commands, replies in pipes]
    close_inherited_fds({fd for pair in fds for fd in pair})
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the acceptor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup_logging(settings["loglevel"], settings.get("logfile", ""), role="S")
    name_process(f"redis-clone-s{index}")
    shard = Shard(index, settings)
    shard.scripts.attach(board)
    try:
        load(shard, settings.get("aof-layout"))
    except (LoadError, OSError) as problem:
        log.warning("shard %d cannot load its data: %s", index, problem)
        for _read_fd, write_fd in fds:
            report_ready(write_fd, str(problem))
        os._exit(1)
    # Loading may expire keys: nobody could be subscribed yet to hear of it.
    shard.events.clear()
    for _read_fd, write_fd in fds:
        report_ready(write_fd, None)
    with contextlib.suppress(BrokenPipeError):
        if len(fds) == 1:
            serve(shard, *fds[0])
        else:
            serve_streams(shard, fds, book)
    shard.persistence.close()
    log.debug("shard %d exiting", index)


def report_ready(write_fd: int, problem: str | None) -> None:
    """The start-up handshake: one frame, None once the data is loaded, else why not.

    The launcher waits for it before it listens, so no client meets a shard still loading
    and a damaged file stops the server with its reason rather than a dead shard."""
    message = marshal.dumps(problem)
    write_all(write_fd, [frame_header(len(message)), message])


def wait_ready(reply_fd: int) -> str | None:
    """Read a shard's start-up handshake (blocking); None when it is ready."""
    decoder = FrameDecoder()
    while True:
        data = os.read(reply_fd, READ_CHUNK)
        if not data:
            return "the shard exited while loading"
        for payload in decoder.feed(data):
            return marshal.loads(payload)


def serve(shard: Shard, read_fd: int, write_fd: int) -> None:
    """Execute batches until the command pipe closes, sweeping expired keys between them."""
    decoder = FrameDecoder()
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    next_sweep = time.monotonic() + 1.0 / shard.hz
    loads = marshal.loads
    persistence = shard.persistence
    while True:
        timeout_ms = max(0.0, (next_sweep - time.monotonic()) * 1000.0)
        if poller.poll(timeout_ms):
            data = os.read(read_fd, READ_CHUNK)
            if not data:
                return
            out: list[bytes | memoryview] = []
            for payload in decoder.feed(data):
                out.extend(encode_replies(execute(shard, loads(payload))))
            if shard.events:
                out.extend(event_frame(marshal.dumps([event for _, event in shard.events])))
                shard.events.clear()
            if out:
                if persistence.active:
                    persistence.flush()  # with appendfsync always: on disk before the reply
                write_all(write_fd, out)
        next_sweep = _sweep_when_due(shard, next_sweep)
        if shard.events:  # the sweep's expired keys: notifications, invalidations
            if persistence.active:
                persistence.flush()
            write_all(write_fd, event_frame(marshal.dumps([event for _, event in shard.events])))
            shard.events.clear()


def serve_streams(shard: Shard, fds: list[tuple[int, int]], book: Any) -> None:
    """:func:`serve` for several acceptors: one stream each, run in the order of
    :mod:`shardserver.scheduler`. Each wake-up reads the watermarks, then everything every
    pipe holds (so every ticket below its stream's watermark that concerns this shard is in), runs
    what may run and writes each stream's finished replies. While a ticket waits for the
    watermark, the shard looks again every :data:`TICKET_WAIT_MS`."""
    ordered = os.environ.get(BREAK_ORDER_ENV) != "1"
    if not ordered:
        log.warning("shard %d: ticket order switched off (%s)", shard.index, BREAK_ORDER_ENV)
    scheduler = Scheduler(lambda runs: execute(shard, runs), len(fds), ordered)
    decoders = [FrameDecoder() for _ in fds]
    poller = select.poll()
    for read_fd, _write_fd in fds:
        os.set_blocking(read_fd, False)
        poller.register(read_fd, select.POLLIN)
    live = set(range(len(fds)))

    def drop(stream: int) -> None:
        """That acceptor is gone: forget its stream (and its held script's clock)."""
        if scheduler.holder == stream:
            shard.freeze_clock(None)
        live.discard(stream)
        poller.unregister(fds[stream][0])
        scheduler.close(stream)
        shard.waiters.drop_stream(stream)

    next_sweep = time.monotonic() + 1.0 / shard.hz
    persistence = shard.persistence
    while live:
        if scheduler.waiting:
            timeout_ms = TICKET_WAIT_MS
        else:
            timeout_ms = max(0.0, (next_sweep - time.monotonic()) * 1000.0)
        poller.poll(timeout_ms)
        watermarks = book.watermarks()
        for stream in list(live):
            if not _drain(fds[stream][0], decoders[stream], scheduler, stream):
                drop(stream)
        out: dict[int, list] = {}
        for stream, replies in scheduler.run(watermarks):
            out.setdefault(stream, []).extend(encode_replies(replies))
        ahead: dict[int, list] = {}
        if shard.events:
            _add_events(out, ahead, shard.events)
        if out or ahead:
            if persistence.active:
                persistence.flush()  # with appendfsync always: on disk before the replies
            for each in (ahead, out):
                for stream, frames in each.items():
                    try:
                        if stream in live:
                            write_all(fds[stream][1], frames)
                    except BrokenPipeError:  # that acceptor is gone; the others go on
                        drop(stream)
        next_sweep = _sweep_when_due(shard, next_sweep)
        if shard.events:  # the sweep's notifications of expired keys
            swept: dict[int, list] = {}
            _add_events(swept, swept, shard.events)
            if persistence.active:
                persistence.flush()
            for stream, frames in swept.items():
                try:
                    if stream in live:
                        write_all(fds[stream][1], frames)
                except BrokenPipeError:
                    drop(stream)


def _add_events(out: dict[int, list], ahead: dict[int, list], told: list[tuple[int, Any]]) -> None:
    """Each stream's events as one frame after its replies (see :mod:`shardserver.waiters`);
    MONITOR's lines in ``ahead``, written to every stream before any reply leaves: once a
    client has its reply, every acceptor's pipe holds the line, so the line of a command the
    client sends next (an acceptor's own, which crosses between acceptors) comes after it."""
    by_stream: dict[int, list] = {}
    lines: dict[int, list] = {}
    for stream, event in told:
        (lines if event[0] == events.MONITORED else by_stream).setdefault(stream, []).append(event)
    told.clear()
    for stream, each in lines.items():
        ahead.setdefault(stream, []).extend(event_frame(marshal.dumps(each)))
    for stream, each in by_stream.items():
        out.setdefault(stream, []).extend(event_frame(marshal.dumps(each)))


def _sweep_when_due(shard: Shard, next_sweep: float) -> float:
    """Run the active-expiry sweep (and the persistence's periodic work) when its time has
    come; when the next one is due."""
    now = time.monotonic()
    if now < next_sweep:
        return next_sweep
    shard.expire_cycle()
    shard.persistence.tick()
    interval = 1.0 / shard.hz
    return max(next_sweep + interval, now + interval / 2)


def _drain(fd: int, decoder: FrameDecoder, scheduler: Scheduler, stream: int) -> bool:
    """Hand every batch a stream's pipe holds to the scheduler; False at end of file.

    A read shorter than asked for took everything the pipe held at that moment (a pipe
    read returns all it has, up to the size asked), so it ends the drain without a second
    read to meet EAGAIN: whatever was published before the watermark was read is in."""
    while True:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        for payload in decoder.feed(data):
            scheduler.add(stream, marshal.loads(payload))
        if len(data) < READ_CHUNK:
            return True


def execute(shard: Shard, batch: list[list]) -> list:
    """The batch's replies; a failure outside any one command (a bug) fails the batch's runs
    with an error reply instead of the shard."""
    try:
        return shard.execute_batch(batch)
    except Exception as problem:
        log.exception("shard %d: a batch failed", shard.index)
        failure = error(f"ERR internal error in shard {shard.index}: {type(problem).__name__}")
        return [failure] * len(batch)


def encode_replies(replies: list) -> list[bytes | memoryview]:
    """The frames (as pieces for ``writev``) that carry a batch's replies."""
    try:
        payload = marshal.dumps(replies)
    except ValueError:  # a reply marshal cannot encode, or one too large for it
        payload = None
    if payload is not None and len(payload) <= CHUNK_SIZE:
        return [frame_header(len(payload)), payload]
    frames: list[bytes | memoryview] = []
    marked = list(replies)
    for run, reply in enumerate(replies):
        notes = None
        if reply.__class__ is tuple and reply and reply[0] is SLOW:  # slowlog.py's wrapper
            _slow, reply, notes = reply
        if reply.__class__ is Pieces:
            frames.extend(_chunks(run, reply))
            marked[run] = CHUNKED if notes is None else (SLOW, CHUNKED, notes)
        elif reply.__class__ is bytes and len(reply) > CHUNK_SIZE and notes is not None:
            frames.extend(chunk_frames(run, reply))
            marked[run] = (SLOW, CHUNKED, notes)
        elif reply.__class__ is bytes and len(reply) > CHUNK_SIZE:
            frames.extend(chunk_frames(run, reply))
            marked[run] = CHUNKED
        elif payload is None:
            try:
                marshal.dumps(reply)
            except ValueError as problem:
                log.error("shard reply %d cannot cross the pipe: %s", run, problem)
                marked[run] = error(f"ERR internal error: reply cannot be sent ({problem})")
    payload = marshal.dumps(marked)
    frames.append(frame_header(len(payload)))
    frames.append(payload)
    return frames


def _chunks(run: int, pieces: list[bytes]) -> list[bytes | memoryview]:
    """Chunk frames for a run's replies: small ones joined into chunks of about
    :data:`CHUNK_SIZE`, large ones sliced."""
    frames: list[bytes | memoryview] = []
    group: list[bytes] = []
    size = 0
    for piece in pieces:
        if len(piece) >= CHUNK_SIZE // 2:
            if group:
                frames.extend(chunk_frames(run, b"".join(group)))
                group, size = [], 0
            frames.extend(chunk_frames(run, piece))
            continue
        group.append(piece)
        size += len(piece)
        if size >= CHUNK_SIZE // 2:
            frames.extend(chunk_frames(run, b"".join(group)))
            group, size = [], 0
    if group:
        frames.extend(chunk_frames(run, b"".join(group)))
    return frames
