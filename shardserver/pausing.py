"""CLIENT PAUSE and CLIENT UNPAUSE: commands held back, server-wide, for a while.

``CLIENT PAUSE ms [WRITE|ALL]`` holds back, on every acceptor, every command (ALL, the
default) or only those that may change data or reach replicas (WRITE: commands flagged
``write`` or ``may_replicate`` such as PUBLISH, and an EXEC with such a command queued), until
the time passes or CLIENT UNPAUSE. As in Redis 7.0, a second pause keeps the later end and
the stricter mode, and under ALL every command waits, CLIENT UNPAUSE included.

A held-back command and everything its client sent after it wait in the client's inbox,
parsed (as behind a blocking command); when the pause ends each such client goes on where it
stopped. The acceptor that got the command tells the others (their own clocks count the time
left) and answers once they all have, so from its +OK on the pause holds whichever acceptor
a client is on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

WRITE, ALL = 1, 2
_MODES = {b"write": WRITE, b"all": ALL}
_HELD_BACK_WHEN_WRITE = frozenset({"write", "may_replicate"})


def mode_of(arg: bytes) -> int | None:
    return _MODES.get(arg.lower())


class Pause:
    """This acceptor's pause: its mode, its end, and the clients it holds back."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.mode = 0
        self.ends_at = 0.0
        self.held: set[Any] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return self.mode != 0

    def start(self, mode: int, milliseconds: int) -> None:
        ends_at = time.monotonic() + milliseconds / 1000.0
        self.mode = max(self.mode, mode)
        if ends_at > self.ends_at:
            self.ends_at = ends_at
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.server.loop.call_at(
                self.server.loop.time() + (ends_at - time.monotonic()), self.end
            )

    def end(self) -> None:
        """The pause is over (its time passed, or CLIENT UNPAUSE): the clients go on."""
        self.mode = 0
        self.ends_at = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self.held = self.held, set()
        for client in held:
            client.resume_after_pause()

    def holds_back(self, spec: Any, argv: list[bytes], queued: list | None) -> bool:
        """Whether this command must wait for the pause's end."""
        if self.mode == ALL:
            return True
        if _HELD_BACK_WHEN_WRITE.intersection(spec.flags):
            return True
        if spec.name == "exec" and queued:
            return any(_HELD_BACK_WHEN_WRITE.intersection(each.flags) for each, _ in queued)
        return False
