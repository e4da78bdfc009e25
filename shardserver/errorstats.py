"""Error statistics as Redis 7.0 keeps them: per error code, in total, and per command.

Redis counts an error where the reply is made (``afterErrorReply``): the reply's first word
is its code (``errorstat_<CODE>``), found as Redis finds it, a space within the text's first
32 bytes, else ``ERR``; every such reply also counts in ``total_error_replies``. A command
refused before it runs (unknown, wrong arity, NOAUTH, -BUSY, refused in subscribed mode or
inside MULTI) counts as that command's ``rejected_calls`` (an unknown command has none to
count); one that ran and replied an error, as its ``failed_calls``. Redis 7.0 keeps every
code it sees (the cap of 128 codes came in 7.2).

Each process keeps its own :class:`ErrorStats`: a shard counts the replies of the commands
it runs (``Shard.errors``), an acceptor those it makes itself (:data:`ACCEPTOR`: refusals,
the commands it answers, merges of multi-shard commands, scripts' final replies); INFO sums
them all (:meth:`ErrorStats.numbers`), and CONFIG RESETSTAT clears each.
"""

from __future__ import annotations

from collections import Counter

#: Redis looks for the end of the code in an error's first 32 bytes.
_CODE_SEARCH = 32


def error_code(reply: bytes) -> bytes:
    """The code of an error reply (``-CODE text\\r\\n``) as Redis's ``afterErrorReply``
    reads it: up to the first space in the first 32 bytes, else ``ERR``."""
    space = reply.find(b" ", 1, min(len(reply) - 2, _CODE_SEARCH))
    return reply[1:space] if space > 0 else b"ERR"


class ErrorStats:
    """One process's error counters: replies per code, and failed and refused calls per
    command (by full name, ``config|get``; shards count by the wire name, the same text)."""

    __slots__ = ("codes", "failed", "rejected")

    def __init__(self) -> None:
        self.codes: Counter[bytes] = Counter()
        self.failed: Counter[str | bytes] = Counter()
        self.rejected: Counter[str | bytes] = Counter()

    def replied(self, reply: bytes) -> None:
        """An error reply left: its code counts (and so the total)."""
        self.codes[error_code(reply)] += 1

    def failed_call(self, name: str | bytes, reply: bytes) -> None:
        """``name`` ran and replied the error ``reply``."""
        self.codes[error_code(reply)] += 1
        self.failed[name] += 1

    def rejected_call(self, name: str | bytes | None, reply: bytes) -> None:
        """``name`` (None: an unknown command) was refused with ``reply`` before it ran."""
        self.codes[error_code(reply)] += 1
        if name is not None:
            self.rejected[name] += 1

    def counted(self, name: str | bytes, reply: bytes, already: bool) -> None:
        """A reply of ``name`` that may be an error; ``already``: it is the error of a
        command that a script ran, counted when that command replied (Redis's
        ``ignore_error_stats_update``), so only ``name``'s failed_calls counts it."""
        if reply[:1] != b"-":
            return
        if already:
            self.failed[name] += 1
        else:
            self.failed_call(name, reply)

    def script_replied(
        self, name: str, reply: bytes, errors: list[tuple[bytes, bool]] | None
    ) -> None:
        """A script's reply (EVAL, EVALSHA, FCALL ... by ``name``): ``errors`` are the
        error replies in it, each with whether a command's reply counted it already (only
        ``name``'s failed_calls counts those, once each, as Redis's ``afterErrorReply``);
        the others count as any error, and ``name`` failed once for them. None: the reply
        was made before any script ran (NOSCRIPT, numkeys ...), counted as any reply."""
        if errors is None:
            self.counted(name, reply, False)
            return
        fresh = False
        for each, counted in errors:
            if counted:
                self.failed[name] += 1
            else:
                self.codes[error_code(each)] += 1
                fresh = True
        if fresh:
            self.failed[name] += 1

    def clear(self) -> None:
        self.codes.clear()
        self.failed.clear()
        self.rejected.clear()

    def numbers(self) -> dict[str, dict[str, int]]:
        """The counters as plain data with text keys (what crosses a pipe for INFO)."""
        return {
            "codes": _by_text(self.codes),
            "failed": _by_text(self.failed),
            "rejected": _by_text(self.rejected),
        }


def _by_text(counter: Counter) -> dict[str, int]:
    """Counts by name as text (a shard counts by wire name, and by name for the few
    commands a script's shard answers like the acceptor)."""
    out: Counter[str] = Counter()
    for name, count in counter.items():
        out[name if name.__class__ is str else name.decode("utf-8", "replace")] += count
    return dict(out)


#: This acceptor's counters (each acceptor process has its own, as it has LOCAL_CALLS).
ACCEPTOR = ErrorStats()
