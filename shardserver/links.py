"""The acceptor's links to its shards: processes, pipes, frames in and out, failure and respawn.

A :class:`ShardLink` is one shard as the acceptor sees it: the worker process, the command
pipe it writes batches to (non-blocking, :class:`shardserver.framing.FrameWriter`), the reply
pipe it reads, and the *targets* of every batch in flight, oldest first. A batch's reply
frame carries one reply per run, in order, so each reply goes to the target at its position:
``(client, entry)`` fills a client's reply entry; any other ``(receiver, index)`` hands the
value to ``receiver.deliver(index, value)`` (a multi-shard gather, an internal collector).

:class:`ShardLinks` drives them all from the event loop. When a shard dies (its reply pipe
closes or fails), what it had in flight is answered with an error, the death is counted for
INFO with its reason, and a fresh process is started for the same slots; it loads its data
(persistence) in the background while commands for it wait, so other shards never notice.

Starting a shard process (fork, pipes, the start-up handshake) is here too, for the launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from shardserver.config import Config
from shardserver.errors import error
from shardserver.framing import Chunk, Event, FrameDecoder, FrameWriter
from shardserver.processes import describe_exit, enlarge_pipe, wait_for_exit
from shardserver.slots import slot_ranges
from shardserver.slowlog import SLOW
from shardserver.worker import CHUNKED, run_worker, wait_ready

log = logging.getLogger("shardserver.links")

#: Bytes asked of one pipe read: below glibc's mmap threshold, so no mmap per read.
READ_SIZE = 1 << 16
#: Reads per wake-up at most: a shard streaming a huge reply must not starve other clients.
READS_PER_WAKEUP = 64


class ShardStartError(RuntimeError):
    """A shard could not load its data; the server must not start."""


class ShardLink:
    """The acceptor's end of one shard: its process, pipes, and the batches in flight."""

    def __init__(self, index: int, process: Any, command_fd: int, reply_fd: int) -> None:
        self.index = index
        self.process = process
        self.command_fd = command_fd
        self.reply_fd = reply_fd
        self.writer = FrameWriter(command_fd)
        self.decoder = FrameDecoder()
        #: Targets of each batch sent and not yet answered, oldest first.
        self.inflight: deque[list] = deque()
        #: Chunks of the replies of the oldest batch in flight, by run.
        self.chunks: dict[int, list[memoryview]] = {}
        #: Whether the start-up handshake has arrived (the shard has loaded its data).
        self.ready = True
        self.alive = True

    def close_fds(self) -> None:
        for fd in (self.command_fd, self.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Elsewhere:
    """A shard process that another acceptor started: known by its pid only."""

    exitcode = None

    def __init__(self, pid: int) -> None:
        self.pid = pid


# -- starting shard processes ------------------------------------------------------------------


def launch_shard(
    context: Any,
    index: int,
    config: Config,
    book: Any = None,
    layout: int | None = None,
    board: Any = None,
) -> list[ShardLink]:
    """Start one shard process (it begins loading its data at once), with a pair of pipes
    per acceptor; the acceptors' ends, one :class:`ShardLink` each. ``layout`` is the shard
    count of the append-only files on disk. See :func:`await_shard`."""
    settings = config.as_plain()
    settings["aof-layout"] = layout if layout is not None else int(config["shards"])
    child_ends, parent_ends = [], []
    for _ in range(int(config["acceptors"])):
        command_read, command_write = context.Pipe(duplex=False)
        reply_read, reply_write = context.Pipe(duplex=False)
        enlarge_pipe(command_write.fileno())
        enlarge_pipe(reply_write.fileno())
        child_ends.append((command_read, reply_write))
        parent_ends.append((command_write, reply_read))
    process = context.Process(
        target=run_worker,
        args=(index, settings, child_ends, book, board),
        name=f"redis-clone-shard-{index}",
        daemon=True,
    )
    process.start()
    links = []
    for (command_read, reply_write), (command_write, reply_read) in zip(
        child_ends, parent_ends, strict=True
    ):
        command_read.close()
        reply_write.close()
        links.append(
            ShardLink(index, process, os.dup(command_write.fileno()), os.dup(reply_read.fileno()))
        )
        command_write.close()
        reply_read.close()
    return links


def await_shard(links: list[ShardLink], config: Config) -> list[ShardLink]:
    """Wait for a launched shard's start-up handshake on every acceptor's pipe; raises
    ShardStartError if it failed."""
    for link in links:
        problem = wait_ready(link.reply_fd)
        if problem is not None:
            for each in links:
                each.close_fds()
            link.process.join(2)
            raise ShardStartError(f"shard {link.index}: {problem}")
    log_started(links[0], config)
    return links


def log_started(link: ShardLink, config: Config) -> None:
    first, last = slot_ranges(int(config["shards"]))[link.index]
    log.info("shard %d pid %d slots %d-%d", link.index, link.process.pid, first, last)


# -- the links at run time ---------------------------------------------------------------------


class ShardLinks:
    """Every shard link, driven from the event loop: sending, receiving, failure, respawn.

    ``respawn(index)`` launches a fresh process for a shard (without waiting for it);
    ``replied(index)`` is called after a shard's replies were handed out (the sequencer may
    have batches waiting for it).
    """

    def __init__(
        self,
        links: list[ShardLink],
        respawn: Callable[[int], ShardLink] | None,
        replied: Callable[[int], None],
        written: Callable[[], None],
        config: Config,
    ) -> None:
        self.links = links
        #: Starts a fresh process for a shard (None: this acceptor does not respawn shards).
        self.respawn = respawn
        self.replied = replied
        #: Called when a pipe that was full has taken everything queued for it.
        self.written = written
        self.config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        #: Per shard: how many times it was restarted, and why the last time.
        self.restarts = [0] * len(links)
        self.last_restart_reason = [""] * len(links)
        #: Hear what a shard says unasked (``(shard, events)``, events in the order sent),
        #: and of a shard's death after what it had in flight was failed.
        self.on_events: Callable[[int, list], None] = lambda _index, _events: None
        self.on_failed: Callable[[int], None] = lambda _index: None
        #: Hear a run's slow calls (``(target's receiver, its entry, notes)``, slowlog.py).
        self.on_slow: Callable[[Any, Any, list], None] = lambda _receiver, _entry, _notes: None

    def __len__(self) -> int:
        return len(self.links)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for link in self.links:
            self._attach(link)

    def all_written(self) -> bool:
        """Whether every frame sent is wholly in the pipes (none waits in a writer)."""
        return not any(link.writer.waiting for link in self.links)

    def can_send(self, index: int, most_inflight: int) -> bool:
        link = self.links[index]
        return link.ready and link.alive and len(link.inflight) < most_inflight

    def send(self, index: int, runs: list, targets: list) -> None:
        """Write one batch to a shard; its reply will go to ``targets``, run by run."""
        link = self.links[index]
        link.inflight.append(targets)
        if not link.alive:
            return
        try:
            if not link.writer.write(marshal.dumps(runs)):
                self.loop.add_writer(link.command_fd, self._on_writable, link)
        except BrokenPipeError:  # the shard is gone: say how it ended, as a read would
            self._failed(link, self._death(link))
        except OSError as problem:
            self._failed(link, f"write failed: {problem}")

    # -- event-loop callbacks ------------------------------------------------------------

    def _attach(self, link: ShardLink) -> None:
        os.set_blocking(link.command_fd, False)
        os.set_blocking(link.reply_fd, False)
        self.loop.add_reader(link.reply_fd, self._on_readable, link)

    def _detach(self, link: ShardLink) -> None:
        if self.loop is not None:
            self.loop.remove_reader(link.reply_fd)
            self.loop.remove_writer(link.command_fd)

    def _on_writable(self, link: ShardLink) -> None:
        try:
            if link.writer.flush():
                self.loop.remove_writer(link.command_fd)
                self.written()
        except BrokenPipeError:
            self._failed(link, self._death(link))
        except OSError as problem:
            self._failed(link, f"write failed: {problem}")

    def _on_readable(self, link: ShardLink) -> None:
        """Drain the reply pipe and hand every reply to its target."""
        fd = link.reply_fd
        drain: list = []
        loads = marshal.loads
        for _ in range(READS_PER_WAKEUP):
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as problem:
                self._failed(link, f"read failed: {problem}")
                return
            if not data:
                self._failed(link, self._death(link))
                return
            for payload in link.decoder.feed(data):
                if payload.__class__ is Chunk:
                    held = link.chunks.setdefault(payload.run, [])
                    client, entry = link.inflight[0][payload.run]
                    # a client's output limit counts a large reply as it arrives
                    if entry.__class__ is not list or client.server.limits.chunk_arrived(
                        client, held, payload.data
                    ):
                        held.append(payload.data)
                    continue
                if payload.__class__ is Event:
                    self.on_events(link.index, loads(payload.data))
                    continue
                if not link.ready:
                    self._handshake(link, loads(payload))
                    continue
                replies = loads(payload)
                if link.chunks:
                    replies = self._assemble(link, replies)
                targets = link.inflight.popleft()
                for (client, entry), reply in zip(targets, replies, strict=True):
                    if reply.__class__ is tuple and reply and reply[0] is SLOW:
                        _slow, reply, notes = reply  # slow calls' notes (slowlog.py)
                        self.on_slow(client, entry, notes)
                    if entry.__class__ is list:
                        entry[0] = reply
                        pending = client.pending
                        if pending and pending[0] is entry and not client.draining:
                            client.draining = True
                            drain.append(client)
                    else:
                        client.deliver(entry, reply)
            if len(data) < READ_SIZE:
                break
        for client in drain:
            client.draining = False
            client.drain()
        self.replied(link.index)

    @staticmethod
    def _assemble(link: ShardLink, replies: list) -> list:
        """Put the chunks that went ahead in the places the reply frame marks."""
        chunks = link.chunks
        link.chunks = {}
        return [
            chunks.pop(run)
            if reply is CHUNKED
            else (SLOW, chunks.pop(run), reply[2])
            if reply.__class__ is tuple and reply and reply[0] is SLOW and reply[1] is CHUNKED
            else reply
            for run, reply in enumerate(replies)
        ]

    def _handshake(self, link: ShardLink, problem: str | None) -> None:
        """A restarted shard has loaded its data (or could not)."""
        if problem is not None:
            self._failed(link, f"could not load its data: {problem}")
            return
        link.ready = True
        if self.respawn is not None:  # the shards' parent logs it, once
            log_started(link, self.config)
        self.replied(link.index)

    def _death(self, link: ShardLink) -> str:
        """How a shard whose pipe closed ended (its parent can tell; others only see it)."""
        if self.respawn is None:
            return "closed its pipe"
        wait_for_exit(link.process, 0.5)
        return describe_exit(link.process.exitcode)

    def _failed(self, link: ShardLink, why: str) -> None:
        """A shard died: fail what it had in flight, count it, start a fresh one (the shards'
        parent does; another acceptor gets its ends of the fresh one's pipes, see
        :meth:`adopt`)."""
        if not link.alive:
            return
        link.alive = False
        self._detach(link)
        link.close_fds()
        link.writer.discard()  # what waited for the dead pipe will never be written
        self.written()
        failure = error(f"ERR shard {link.index} failed while running this command")
        while link.inflight:
            for receiver, entry in link.inflight.popleft():
                if entry.__class__ is list:
                    receiver.fill(entry, failure)
                else:
                    receiver.deliver(entry, failure)
        if self.stopping:
            return
        self.on_failed(link.index)
        self.restarts[link.index] += 1
        self.last_restart_reason[link.index] = why
        if self.respawn is None:
            log.warning("shard %d (pid %s) %s", link.index, link.process.pid, why)
            return
        log.warning("shard %d (pid %s) %s; restarting it", link.index, link.process.pid, why)
        if not wait_for_exit(link.process, 0.5):
            link.process.kill()
            wait_for_exit(link.process, 0.5)
        self._install(self.respawn(link.index))

    def _install(self, fresh: ShardLink) -> None:
        """A fresh shard process's link: commands for it wait until it has loaded its data."""
        fresh.ready = False
        self.links[fresh.index] = fresh
        self._attach(fresh)

    def adopt(self, index: int, pid: int, why: str, command_fd: int, reply_fd: int) -> None:
        """Our ends of the pipes of a shard that the shards' parent started afresh, after
        the old one ended (``why``, as the parent saw it)."""
        old = self.links[index]
        if old.alive:
            self._failed(old, why)
        self.last_restart_reason[index] = why
        self._install(ShardLink(index, _Elsewhere(pid), command_fd, reply_fd))

    # -- shutdown ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pipe: each shard reads end of file and exits."""
        self.stopping = True
        for link in self.links:
            self._detach(link)
            link.close_fds()

    def wait_exit(self, timeout: float) -> None:
        """Wait for every shard to exit, killing those that take longer than ``timeout`` (the
        shards' parent only)."""
        if self.respawn is None:
            return
        deadline = self.loop.time() + timeout if self.loop is not None else None
        for link in self.links:
            left = max(0.0, deadline - self.loop.time()) if deadline is not None else timeout
            if not wait_for_exit(link.process, left):
                link.process.kill()
                wait_for_exit(link.process, 0.2)
