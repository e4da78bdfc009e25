"""The script board: shared memory that says which scripts run now, so that any acceptor can
answer ``-BUSY`` and SCRIPT KILL can stop one; and the state of the server's one math.random
sequence, which every interpreter draws from.

A script in a shard leaves that shard unable to read its pipes until the script ends, so
nothing can be asked of it; an acceptor reads the board instead. One row per place a script
runs: each shard (the fast path), then each acceptor (scripts over every shard held, in its
script thread). A row holds when its script started (Unix ms; 0: none runs), whether it
wrote (then it cannot be killed, as in Redis), whether a kill was asked, and whether it is
a function (FCALL: FUNCTION KILL stops it, SCRIPT KILL an EVAL), with the function's name
and command line for FUNCTION STATS. The runner writes its row; an acceptor writes only the
kill word. Word-sized stores need no lock; the function's description is written before
the start word and read only after it, while the row cannot change.
"""

from __future__ import annotations

import marshal
import multiprocessing
from typing import Any

from shardserver.scripting.environment import LRAND48_START, Random48

_STARTED, _WROTE, _KILL, _FUNCTION = 0, 1, 2, 3
_ROW = 4
#: Bytes a row keeps of a function's name and command line (a longer line keeps its
#: first arguments).
DESCRIPTION_SIZE = 2048


class ScriptBoard:
    """Rows for ``places`` runners (shards first, then acceptors)."""

    def __init__(self, places: int, context: Any = multiprocessing) -> None:
        self.places = places
        self._words = context.RawArray("q", _ROW * places)
        self._descriptions = context.RawArray("c", DESCRIPTION_SIZE * places)
        #: math.random's sequence, one for the whole server (as Redis has one).
        word = context.RawArray("q", 1)
        word[0] = LRAND48_START
        self.random = Random48(word)

    def started(
        self, place: int, now_ms: int, function: tuple[bytes, list[bytes]] | None = None
    ) -> None:
        """A script starts at ``place``; ``function``: FCALL's function name and command."""
        row = place * _ROW
        self._words[row + _KILL] = 0
        self._words[row + _WROTE] = 0
        self._words[row + _FUNCTION] = 0
        if function is not None:
            self._describe(place, *function)
            self._words[row + _FUNCTION] = 1
        self._words[row + _STARTED] = now_ms

    def _describe(self, place: int, name: bytes, command: list[bytes]) -> None:
        command = list(command)
        while True:
            data = marshal.dumps((name, command))
            if len(data) + 4 <= DESCRIPTION_SIZE or not command:
                break
            command.pop()
        data = data if len(data) + 4 <= DESCRIPTION_SIZE else marshal.dumps((name[:1024], []))
        start = place * DESCRIPTION_SIZE
        self._descriptions[start : start + 4 + len(data)] = len(data).to_bytes(4, "little") + data

    def function(self, place: int) -> tuple[bytes, list[bytes]]:
        """The name and command line of the function running at ``place``."""
        start = place * DESCRIPTION_SIZE
        size = int.from_bytes(self._descriptions[start : start + 4], "little")
        return marshal.loads(self._descriptions[start + 4 : start + 4 + size])

    def wrote(self, place: int) -> None:
        self._words[place * _ROW + _WROTE] = 1

    def ended(self, place: int) -> None:
        self._words[place * _ROW + _STARTED] = 0

    def kill_asked(self, place: int) -> bool:
        return bool(self._words[place * _ROW + _KILL])

    def running(self) -> list[tuple[int, int, bool, bool]]:
        """``(place, started ms, wrote, is a function)`` of every script running now."""
        words = self._words
        found = []
        for place in range(self.places):
            row = place * _ROW
            started = words[row + _STARTED]
            if started:
                found.append(
                    (place, started, bool(words[row + _WROTE]), bool(words[row + _FUNCTION]))
                )
        return found

    def ask_kill(self, place: int) -> None:
        self._words[place * _ROW + _KILL] = 1
