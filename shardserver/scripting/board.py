"""The script board: shared memory that says which scripts run now, so that any acceptor can
answer ``-BUSY`` and SCRIPT KILL can stop one.

A script in a shard leaves that shard unable to read its pipes until the script ends, so
nothing can be asked of it; an acceptor reads the board instead. One row per place a script
runs: each shard (the fast path), then each acceptor (scripts over every shard held, in its
script thread). A row holds when its script started (Unix ms; 0: none runs), whether it
wrote (then it cannot be killed, as in Redis), and whether a kill was asked. The runner
writes its row; an acceptor writes only the kill word. Word-sized stores need no lock.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

_STARTED, _WROTE, _KILL = 0, 1, 2
_ROW = 3


class ScriptBoard:
    """Rows for ``places`` runners (shards first, then acceptors)."""

    def __init__(self, places: int, context: Any = multiprocessing) -> None:
        self.places = places
        self._words = context.RawArray("q", _ROW * places)

    def started(self, place: int, now_ms: int) -> None:
        row = place * _ROW
        self._words[row + _KILL] = 0
        self._words[row + _WROTE] = 0
        self._words[row + _STARTED] = now_ms

    def wrote(self, place: int) -> None:
        self._words[place * _ROW + _WROTE] = 1

    def ended(self, place: int) -> None:
        self._words[place * _ROW + _STARTED] = 0

    def kill_asked(self, place: int) -> bool:
        return bool(self._words[place * _ROW + _KILL])

    def running(self) -> list[tuple[int, int, bool]]:
        """``(place, started ms, wrote)`` of every script running now."""
        words = self._words
        found = []
        for place in range(self.places):
            row = place * _ROW
            started = words[row + _STARTED]
            if started:
                found.append((place, started, bool(words[row + _WROTE])))
        return found

    def ask_kill(self, place: int) -> None:
        self._words[place * _ROW + _KILL] = 1
