"""Words of state the acceptor processes share: what must be server-wide, not per acceptor.

Client IDs come from one counter, so CLIENT ID is unique across acceptors. A snapshot may run
from whichever acceptor got SAVE or BGSAVE (its own stream to each shard then orders the cut
exactly after that client's earlier commands), so whether one is running, and the last one's
time, outcome and duration, live here too: "Background save already in progress" and
LASTSAVE mean the whole server. So does DEBUG SET-DISABLE-DENY-SCRIPTS: a held script runs in
whichever acceptor got it. So do the client limits (:mod:`shardserver.limits`): ``maxclients``
counts every acceptor's clients, and ``maxmemory-clients`` their memory. SLOWLOG's
entry ids are server-wide too.

One small shared array (``multiprocessing.RawArray``, inherited by the forked acceptors) and
a lock; with one acceptor it costs a lock per connection (and its end) and per save, nothing
per command.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

(
    _CLIENT_ID,
    _SAVING,
    _SAVE_STARTED,
    _LAST_SAVE,
    _LAST_OK,
    _LAST_DURATION,
    _DENY_OFF,
    _SLOWLOG_ID,
) = range(8)
#: The most acceptors there may be (``acceptors``' range). Each has a word of its clients'
#: count and one of their memory: an acceptor that dies takes its own away.
MAX_ACCEPTORS = 64
_CLIENTS = _SLOWLOG_ID + 1
_CLIENT_MEMORY = _CLIENTS + MAX_ACCEPTORS


class ServerWords:
    """Server-wide counters and the state of the snapshot."""

    def __init__(self, context: Any = multiprocessing) -> None:
        self._words = context.RawArray("q", _CLIENT_MEMORY + MAX_ACCEPTORS)
        self._words[_LAST_SAVE] = int(time.time())
        self._words[_LAST_OK] = 1
        self._words[_LAST_DURATION] = -1
        self._lock = context.Lock()

    def admit_client(self, acceptor: int, limit: int) -> int:
        """A new connection's client ID, or 0 when ``limit`` clients (every acceptor's) are
        connected already: Redis refuses the one past ``maxclients``."""
        with self._lock:
            if sum(self._words[_CLIENTS:_CLIENT_MEMORY]) >= limit:
                return 0
            self._words[_CLIENTS + acceptor] += 1
            self._words[_CLIENT_ID] += 1
            return self._words[_CLIENT_ID]

    def next_slowlog_id(self) -> int:
        """SLOWLOG's ids, server-wide (from 0, as Redis's ``slowlog_entry_id``)."""
        with self._lock:
            self._words[_SLOWLOG_ID] += 1
            return self._words[_SLOWLOG_ID] - 1

    def client_gone(self, acceptor: int) -> None:
        """An admitted client of ``acceptor`` disconnected."""
        with self._lock:
            self._words[_CLIENTS + acceptor] -= 1

    def acceptor_gone(self, acceptor: int) -> None:
        """An acceptor died: its clients are gone with it."""
        with self._lock:
            self._words[_CLIENTS + acceptor] = 0
            self._words[_CLIENT_MEMORY + acceptor] = 0

    def set_client_memory(self, acceptor: int, size: int) -> None:
        """What acceptor ``acceptor``'s clients hold now, in bytes (one word: no lock)."""
        self._words[_CLIENT_MEMORY + acceptor] = size

    def client_memory(self) -> int:
        """Every acceptor's clients' memory, as each last published it."""
        return sum(self._words[_CLIENT_MEMORY : _CLIENT_MEMORY + MAX_ACCEPTORS])

    def start_save(self) -> bool:
        """Claim the one snapshot the server may run at a time; False when one runs."""
        with self._lock:
            if self._words[_SAVING]:
                return False
            self._words[_SAVING] = 1
            self._words[_SAVE_STARTED] = int(time.time())
            return True

    def end_save(self, ok: bool) -> None:
        with self._lock:
            now = int(time.time())
            self._words[_SAVING] = 0
            self._words[_LAST_OK] = int(ok)
            self._words[_LAST_DURATION] = now - self._words[_SAVE_STARTED]
            if ok:
                self._words[_LAST_SAVE] = now

    @property
    def saving(self) -> bool:
        return bool(self._words[_SAVING])

    @property
    def save_started(self) -> int:
        return self._words[_SAVE_STARTED]

    @property
    def last_save(self) -> int:
        return self._words[_LAST_SAVE]

    @property
    def last_ok(self) -> bool:
        return bool(self._words[_LAST_OK])

    @property
    def last_duration(self) -> int:
        return self._words[_LAST_DURATION]

    @property
    def deny_scripts_disabled(self) -> bool:
        """DEBUG SET-DISABLE-DENY-SCRIPTS: whether scripts may call DEBUG."""
        return bool(self._words[_DENY_OFF])

    @deny_scripts_disabled.setter
    def deny_scripts_disabled(self, value: bool) -> None:
        self._words[_DENY_OFF] = int(value)
