"""Client-side caching (CLIENT TRACKING) on one shard: who read which key, and who to tell.

A tracking client's commands reach the shard wrapped in ``@track`` (one run of one internal
command: ``@track stream id noloop ctx [remember, argv] ...``): the shard runs the commands
in order and, right after each read (a command Redis flags ``readonly``, its keys by their
key positions) whose ``remember`` is set (1, or the keys of a coordination's read step),
remembers its keys for that client. The read and
the registration run together, with nothing between, so no write can slip in and lose an
invalidation. The same wrapper tells the shard who writes (NOLOOP, and BCAST's writer).

- **Default mode**: ``keys`` maps a key name to the clients that read it (by name alone, as
  Redis keeps one table for every database). A write that names it (the key positions the
  append-only log uses, :mod:`shardserver.persistence.journal`), its expiry (looked up past
  its deadline or swept) tell each of them once (an ``INVALIDATED`` event to the client's
  acceptor stream) and forget the key until it is read again. FLUSHDB and FLUSHALL forget
  every key; the acceptor that ran them sends the null invalidation.
- **BCAST mode**: every shard holds every BCAST prefix of every acceptor (``@tprefix``),
  with how many clients of that acceptor use it; a write to a key under one of an acceptor's
  prefixes sends that acceptor a ``WRITTEN`` event, which groups keys per prefix for its
  clients.

While nobody tracks anything here the shard runs its usual handler table and pays nothing;
the first key or prefix switches it to a table whose writes also invalidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver import events
from shardserver.commands.spec import key_positions
from shardserver.commands.table import COMMANDS
from shardserver.errors import is_error
from shardserver.persistence.journal import wrapped_writes
from shardserver.resp import Resp2, Resp3
from shardserver.watching import _NOTHING_IF_ZERO

_ENCODERS = (Resp2, Resp3)
_ZERO = b":0\r\n"
#: Databases emptied whole (every remembered key is forgotten, as Redis empties its table).
_FLUSHES = frozenset({b"@flushdb", b"@flushall"})


def _read_keys() -> dict[bytes, Callable[[list], list[bytes]]]:
    """The keys each read names, by wire name: Redis's ``readonly`` commands natively, and
    their parts across shards (``@mget k1 k2``: the part's keys one step apart)."""
    found: dict[bytes, Callable[[list], list[bytes]]] = {}
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if "readonly" not in each.flags or each.first_key <= 0 and each.keys is None:
                continue

            def native(argv: list, spec: Any = each) -> list[bytes]:
                return [argv[i] for i in key_positions(spec, argv) if i < len(argv)]

            found[each.wire_name] = native
            if each.part is not None:
                step = each.step or 1
                found[b"@" + each.wire_name] = lambda argv, step=step: argv[1::step]
    return found


READ_KEYS = _read_keys()


class Tracking:
    """One shard's tracked keys and BCAST prefixes."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        #: Key name to the clients that read it, as ``(stream, client id)``.
        self.keys: dict[bytes, dict[tuple[int, int], None]] = {}
        #: Per acceptor stream, its clients' BCAST prefixes with how many clients use each.
        self.prefixes: dict[int, dict[bytes, int]] = {}
        #: The tracking client whose commands run now: (stream, id, noloop), or None.
        self.writer: tuple[int, int, int] | None = None
        self._tables: dict[int, dict[bytes, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.keys or self.prefixes)

    def numbers(self) -> tuple[int, int, int]:
        """INFO's tracked keys, (key, client) pairs, and distinct BCAST prefixes here."""
        prefixes = set().union(*self.prefixes.values())
        return len(self.keys), sum(map(len, self.keys.values())), len(prefixes)

    # -- registering -----------------------------------------------------------------------

    def remember(self, stream: int, client_id: int, keys: list[bytes]) -> None:
        was_idle = not self
        who = (stream, client_id)
        for key in keys:
            self.keys.setdefault(key, {})[who] = None
        if was_idle and self:
            self.shard.refresh_handlers()

    def set_prefixes(self, stream: int, change: int, prefixes: list[bytes]) -> None:
        """One client of ``stream`` more (``change`` 1) or fewer (-1) on each prefix."""
        was_idle = not self
        mine = self.prefixes.setdefault(stream, {})
        for prefix in prefixes:
            count = mine.get(prefix, 0) + change
            if count > 0:
                mine[prefix] = count
            else:
                mine.pop(prefix, None)
        if not mine:
            del self.prefixes[stream]
        if was_idle != (not self):
            self.shard.refresh_handlers()

    # -- what invalidates ------------------------------------------------------------------

    def invalidate(self, keys: list[bytes]) -> None:
        """These keys changed: tell who read them (once) and who watches their prefixes."""
        if not self:
            return
        writer = self.writer
        loop_free = writer if writer is not None and writer[2] else None
        told: dict[tuple[int, int], list[bytes]] = {}
        for key in keys:
            readers = self.keys.pop(key, None)
            if readers:
                for who in readers:
                    if loop_free is None or who != loop_free[:2]:
                        told.setdefault(who, []).append(key)
        out = self.shard.events
        for (stream, client_id), names in told.items():
            out.append((stream, (events.INVALIDATED, client_id, names)))
        if self.prefixes:
            writer_id = writer[1] if writer is not None else 0
            for stream, prefixes in self.prefixes.items():
                matching = [key for key in keys if any(map(key.startswith, prefixes))]
                if matching:
                    out.append((stream, (events.WRITTEN, matching, writer_id)))
        if not self:
            self.shard.refresh_handlers()

    def forget_all(self) -> None:
        """FLUSHDB or FLUSHALL: every remembered key is forgotten (the acceptor sends the
        null invalidation to every tracking client)."""
        self.keys.clear()
        if not self:
            self.shard.refresh_handlers()

    def expire_hook(self, then: Callable | None) -> Callable:
        """The shard's expiry hook with this shard's invalidation first."""

        def hook(db: Any, key: bytes) -> None:
            self.invalidate([key])
            if then is not None:
                then(db, key)

        return hook

    def handlers(self, base: dict[bytes, Any]) -> dict[bytes, Any]:
        """``base`` with every write wrapped to invalidate the keys it names."""
        return wrapped_writes(base, self._client, self._part, self._tables)

    def _client(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        return self._client_write(handler, keys, name in _NOTHING_IF_ZERO)

    def _part(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        return self._flush(handler) if name in _FLUSHES else self._part_write(handler, keys)

    def _client_write(self, handler: Callable, keys: Callable, zero_is_nothing: bool) -> Callable:
        def tracked(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            if not is_error(reply) and not (zero_is_nothing and reply == _ZERO):
                self.invalidate(keys(argv))
            return reply

        return tracked

    def _part_write(self, handler: Callable, keys: Callable) -> Callable:
        def tracked(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            if not is_error(reply):
                self.invalidate(keys(argv))
            return reply

        return tracked

    def _flush(self, handler: Callable) -> Callable:
        def tracked(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            self.forget_all()
            return reply

        return tracked


def track_part(shard: Any, db: Any, argv: list) -> Any:
    """Internal (``@track stream id noloop ctx [remember, argv] ...``): a tracking client's
    commands, each read's keys remembered right after it when ``remember`` is 1. One
    command's own value (a part's plain value), or the commands' replies joined."""
    stream, client_id, noloop, ctx = argv[1], argv[2], argv[3], argv[4]
    tracking = shard.tracking
    enc = _ENCODERS[ctx & 1]
    out = []
    tracking.writer = (stream, client_id, noloop)
    try:
        for remember, command in argv[5:]:
            name = command[0]
            shard.calls[name] += 1
            try:
                if name[0] == 0x40:  # '@': a part of a command across shards
                    value = shard.handlers[name](shard, db, command)
                else:
                    value = shard.handlers[name](shard, db, command, enc)
            except Exception as problem:  # a bug costs one reply, never the shard
                value = shard._internal_error(command, problem)
            if remember.__class__ is list:  # a coordination's read names its key
                tracking.remember(stream, client_id, remember)
            elif remember and name in READ_KEYS:
                try:
                    keys = READ_KEYS[name](command)
                except (IndexError, ValueError):  # arguments its reply already refused
                    keys = []
                tracking.remember(stream, client_id, keys)
            out.append(value)
    finally:
        tracking.writer = None
    shard.commands_processed += len(out) - 1
    if len(out) == 1 and argv[5][1][0][0] == 0x40:
        return out[0]  # a part's plain value, for the acceptor to merge
    problem = TypeError("handler returned no reply")
    return b"".join(
        value if value.__class__ is bytes else shard._internal_error(command, problem)
        for value, (_remember, command) in zip(out, argv[5:], strict=True)
    )


def prefix_part(shard: Any, db: Any, argv: list) -> int:
    """Internal (``@tprefix stream change prefix...``): a BCAST client of that acceptor
    starts (change 1) or stops (-1) using these prefixes."""
    shard.tracking.set_prefixes(argv[1], argv[2], list(argv[3:]))
    return 1


INTERNAL_PARTS = {
    b"@track": track_part,
    b"@tprefix": prefix_part,
}
