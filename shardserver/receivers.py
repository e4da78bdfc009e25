"""What the replies to parts go to: the receivers a batch's targets name.

A target is ``(receiver, index)``: the shard's value for that run is handed to
``receiver.deliver(index, value)`` (a client's own reply entry is the one other kind of
target, filled directly by :mod:`shardserver.links`). :class:`Gather` merges the parts of a
client's multi-shard command into its reply; :class:`Collector` serves the acceptor's own
internal steps (INFO's parts, snapshots); :data:`DISCARD` takes parts whose values nobody
needs (pushed settings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from shardserver.errors import error, first_error

log = logging.getLogger("shardserver.receivers")


class Gather:
    """Collects the parts of a multi-shard command; the merge fills the client's entry.

    ``merge(parts)`` gets the parts' values in order and returns the encoded reply, or None
    when something else fills the entry later (a coordination's writes). An error reply
    from any part (a shard that failed) becomes the reply instead; so does a merge that
    raises (a bug costs one reply, never the client's whole queue). Parts therefore never
    return bare bytes: values travel inside lists or tuples.
    """

    __slots__ = ("client", "entry", "merge", "parts", "remaining")

    def __init__(
        self, client: Any, entry: list, merge: Callable[[list], bytes], parts: int
    ) -> None:
        self.client = client
        self.entry = entry
        self.merge = merge
        self.parts: list[Any] = [None] * parts
        self.remaining = parts

    def deliver(self, index: int, value: Any) -> None:
        self.parts[index] = value
        self.remaining -= 1
        if self.remaining:
            return
        reply = merged(self.parts, self.merge)
        if reply is not None:
            self.client.fill(self.entry, reply)


def merged(parts: list[Any], merge: Callable[[list], bytes | None]) -> bytes | None:
    """The reply a multi-shard command's parts make: the first error reply among them (a
    shard that failed), else ``merge(parts)``, else (a merge that raised) an error reply."""
    failed = first_error(parts)
    if failed is not None:
        return failed
    try:
        return merge(parts)
    except Exception as problem:
        log.exception("merging a multi-shard reply failed")
        return error(f"ERR internal error merging replies: {type(problem).__name__}")


class Relay:
    """Hands a run's value to a callback (runs a plan queues at a hold point)."""

    __slots__ = ("deliver",)

    def __init__(self, deliver: Callable[[int, Any], None]) -> None:
        self.deliver = deliver


class Collector:
    """Receives internal parts sent to shards; resolves a future with their values."""

    __slots__ = ("future", "values", "remaining")

    def __init__(self, future: asyncio.Future, parts: int) -> None:
        self.future = future
        self.values: list[Any] = [None] * parts
        self.remaining = parts

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(self.values)


class _Discard:
    """Receives parts whose replies nobody waits for."""

    def deliver(self, index: int, value: Any) -> None:
        pass


DISCARD = _Discard()
