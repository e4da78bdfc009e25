"""The clients waiting on one shard's keys (BLPOP, BZPOPMIN, BLMOVE ...), served in order.

A waiter lives on the shard of the keys it waits on, so it is served the same whichever
acceptor its client and the writer are on. Each key has a queue of waiters, first come first
served. A write that names a key with waiters (a push, a RENAME or MOVE onto it, SORT STORE,
RESTORE, a transaction's last command: the same key positions the append-only log uses)
marks it *ready*; at the end of that run, before any other client's command, the shard
serves the waiters of every ready key while it has something of the type they pop:

- a *direct* waiter (every key of its command on this shard) is served here: the command
  runs against the ready key alone, as Redis serves it (its effect logged and watched as any
  write's), and its reply goes to its acceptor as an event;
- a *remote* waiter (its keys span shards) cannot be served by one shard: the shard tells
  its acceptor that a key is ready and serves nobody behind it on that key until the
  acceptor has tried (a coordination over all its keys, :mod:`shardserver.blocked`) and
  either popped (``@bdone``) or found nothing and waits again (``@brearm``).

Events go to the acceptor after the replies of the batch that made them (see
:mod:`shardserver.worker`), so an acceptor that asks to cancel a waiter (``@bcancel``, its
timeout) and hears "not here" knows the served event is on its way.

While nobody waits, the shard runs its usual handler table and pays nothing; the first
waiter switches it to one whose writes mark ready keys, the last one back.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from shardserver import events
from shardserver.commands.blocking import SHAPES, Shape
from shardserver.errors import error, is_error
from shardserver.persistence.journal import wrapped_writes
from shardserver.resp import Resp2, Resp3

log = logging.getLogger("shardserver.waiters")

_ENCODERS = (Resp2, Resp3)
#: Events a shard sends its acceptors without being asked (the first item of each).


def enc_of(waiter: Waiter) -> Any:
    """The encoder of a waiter's protocol."""
    return _ENCODERS[waiter.ctx & 1]


class Waiter:
    """One client's blocking command, as one shard holds it."""

    __slots__ = ("token", "db", "keys", "argv", "ctx", "shape", "direct", "signaled")

    def __init__(
        self, token: tuple[int, int], db: int, keys: list[bytes], argv: list[bytes] | None, ctx: int
    ) -> None:
        #: (the acceptor's stream, its id for the wait): unique on the shard.
        self.token = token
        self.db = db
        self.keys = keys
        #: The command, for a direct waiter (None for a remote one).
        self.argv = argv
        self.ctx = ctx
        self.shape: Shape | None = SHAPES[argv[0]] if argv is not None else None
        self.direct = argv is not None
        #: A remote waiter told that a key is ready, and not yet answered.
        self.signaled = False


def _extra_keys(name: bytes, argv: list) -> list[tuple[int | None, bytes]]:
    """Keys a write lands on that its key positions do not name: SORT ... STORE's
    destination, MOVE's and COPY ... DB's in another database ((database, key); None: the
    run's)."""
    if name == b"sort":
        return [(None, argv[i + 1]) for i in range(2, len(argv) - 1) if argv[i].lower() == b"store"]
    if name == b"move" and len(argv) == 3 and argv[2].isdigit():
        return [(int(argv[2]), argv[1])]
    if name == b"copy":
        found = [i for i in range(3, len(argv) - 1) if argv[i].lower() == b"db"]
        if found and argv[found[0] + 1].isdigit():
            return [(int(argv[found[0] + 1]), argv[2])]
    return []


class Waiters:
    """The waiting clients of one shard: ``(db index, key)`` to a queue of waiters."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.queues: dict[tuple[int, bytes], deque[Waiter]] = {}
        self.by_token: dict[tuple[int, int], Waiter] = {}
        #: Keys a write named since the last serve, in the order written.
        self.ready: list[tuple[int, bytes]] = []
        #: Inside a transaction's runs (``@txbegin`` .. ``@txend``): serve after them.
        self.deferred = False
        self._tables: dict[int, dict[bytes, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.by_token)

    # -- registering -----------------------------------------------------------------

    def add(self, waiter: Waiter) -> None:
        was_idle = not self.by_token
        self.cancel(waiter.token)
        self.by_token[waiter.token] = waiter
        for key in dict.fromkeys(waiter.keys):
            self.queues.setdefault((waiter.db, key), deque()).append(waiter)
        if was_idle:
            self.shard.refresh_handlers()

    def cancel(self, token: tuple[int, int]) -> bool:
        """Forget a waiter; whether it was here. Its keys are looked at again: a remote
        waiter may have kept others from a key that has something."""
        waiter = self.by_token.pop(token, None)
        if waiter is None:
            return False
        for key in dict.fromkeys(waiter.keys):
            where = (waiter.db, key)
            queue = self.queues.get(where)
            if queue is not None:
                queue.remove(waiter)
                if queue:
                    self.ready.append(where)
                else:
                    del self.queues[where]
        if not self.by_token:
            self.ready.clear()
            self.shard.refresh_handlers()
        return True

    def rearm(self, token: tuple[int, int]) -> None:
        """A remote waiter found nothing and waits again: tell it of the next ready key."""
        waiter = self.by_token.get(token)
        if waiter is not None:
            waiter.signaled = False
            self.ready.extend((waiter.db, key) for key in waiter.keys)

    def drop_stream(self, stream: int) -> None:
        """An acceptor is gone: its clients wait no more."""
        for token in [token for token in self.by_token if token[0] == stream]:
            self.cancel(token)

    # -- serving ---------------------------------------------------------------------

    def serve(self) -> None:
        """Serve the waiters of every ready key (the end of a run that wrote one)."""
        if self.deferred:
            return
        ready = self.ready
        shard = self.shard
        while ready:
            where = ready.pop(0)
            queue = self.queues.get(where)
            if not queue:
                continue
            db = shard.dbs[where[0]]
            key = where[1]
            while queue:
                waiter = queue[0]
                value = db.lookup(key, shard.now)
                if value is None or (waiter.direct and value.__class__ is not waiter.shape.value):
                    if not waiter.direct:
                        # its key is gone: its acceptor looks again (a blocked XREADGROUP
                        # ends then, any other wait goes on)
                        if not waiter.signaled:
                            waiter.signaled = True
                            shard.events.append((waiter.token[0], (events.READY, waiter.token[1])))
                        break
                    gone = waiter.shape.gone(enc_of(waiter))
                    if gone is None:
                        break
                    # XREADGROUP: its stream is gone (deleted, renamed, replaced)
                    self.cancel(waiter.token)
                    shard.events.append((waiter.token[0], (events.SERVED, waiter.token[1], gone)))
                    continue
                if not waiter.direct:
                    if not waiter.signaled:
                        waiter.signaled = True
                        shard.events.append((waiter.token[0], (events.READY, waiter.token[1])))
                    break
                if not self._serve_one(waiter, db, key):
                    break

    def _serve_one(self, waiter: Waiter, db: Any, key: bytes) -> bool:
        shape = waiter.shape
        enc = enc_of(waiter)
        argv = shape.narrowed(waiter.argv, key)
        marked = len(self.ready)
        try:
            reply = shape.serve(self.shard.handlers[argv[0]], self.shard, db, argv, enc)
        except Exception as problem:  # a bug costs this client's reply, never the shard
            log.exception("shard %d: serving a waiter failed", self.shard.index)
            name = type(problem).__name__
            reply = error(f"ERR internal error in shard {self.shard.index}: {name}")
        if reply == shape.nothing(enc):
            # found nothing (a stream read whose key has nothing new): it wrote nothing a
            # waiter needs, so the key is not ready again because of it
            del self.ready[marked:]
            return False
        self.cancel(waiter.token)
        reply = shape.served(reply)
        self.shard.events.append((waiter.token[0], (events.SERVED, waiter.token[1], reply)))
        return True

    # -- what makes keys ready -------------------------------------------------------

    def handlers(self, base: dict[bytes, Any]) -> dict[bytes, Any]:
        """``base`` with every write wrapped to mark the waited keys it names ready."""
        return wrapped_writes(base, self._client_write, self._part, self._tables)

    def _part(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        if name in (b"@swapdb", b"@flushdb", b"@flushall"):
            return self._whole_db(handler, name)
        return self._part_write(handler, keys)

    def _mark(self, db: Any, keys: list[bytes]) -> None:
        queues = self.queues
        if queues:
            index = self.shard.dbs.index(db)
            for key in keys:
                if (index, key) in queues:
                    self.ready.append((index, key))

    def _client_write(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        def marking(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            if self.queues and not is_error(reply):
                self._mark(db, keys(argv))
                for index, key in _extra_keys(name, argv):
                    where = (shard.dbs.index(db) if index is None else index, key)
                    if where in self.queues:
                        self.ready.append(where)
            return reply

        return marking

    def _part_write(self, handler: Callable, keys: Callable) -> Callable:
        def marking(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            if self.queues and not is_error(reply):
                self._mark(db, keys(argv))
            return reply

        return marking

    def _whole_db(self, handler: Callable, name: bytes) -> Callable:
        """SWAPDB (every waited key of the two databases may have something now), FLUSHDB
        and FLUSHALL (their waited keys are gone, which XREADGROUP hears of)."""

        def marking(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            if not is_error(reply):
                if name == b"@swapdb":
                    changed = {int(argv[1]), int(argv[2])}
                elif name == b"@flushdb":
                    changed = {shard.dbs.index(db)}
                else:
                    changed = set(range(len(shard.dbs)))
                self.ready.extend(where for where in self.queues if where[0] in changed)
            return reply

        return marking


# -- the parts -----------------------------------------------------------------------------


def block_part(shard: Any, db: Any, argv: list) -> list[bytes] | None:
    """Internal (``@block stream id ctx command...``): run a blocking command whose keys are
    all here; its reply (in a list), or None when it found nothing and now waits here."""
    stream, wait_id, ctx, command = argv[1], argv[2], argv[3], argv[4:]
    shape = SHAPES[command[0]]
    enc = _ENCODERS[ctx & 1]
    reply = shard.handlers[command[0]](shard, db, command, enc)
    if reply != shape.nothing(enc):
        return [reply]
    index = shard.dbs.index(db)
    command = shape.to_wait(shard, db, command)
    shard.waiters.add(Waiter((stream, wait_id), index, shape.keys(command), command, ctx))
    return None


def wait_part(shard: Any, db: Any, argv: list) -> int:
    """Internal (``@bwait stream id key...``): a remote waiter on these keys (its
    coordination has found them empty, with the shards held)."""
    index = shard.dbs.index(db)
    shard.waiters.add(Waiter((argv[1], argv[2]), index, list(argv[3:]), None, 0))
    return 1


def rearm_part(shard: Any, db: Any, argv: list) -> int:
    """Internal (``@brearm stream id``): a remote waiter found nothing; it waits again."""
    shard.waiters.rearm((argv[1], argv[2]))
    return 1


def cancel_part(shard: Any, db: Any, argv: list) -> list[bool]:
    """Internal (``@bcancel stream id``): the wait ends (served elsewhere, timed out,
    unblocked, gone); whether it was still waiting here."""
    return [shard.waiters.cancel((argv[1], argv[2]))]


def transaction_begins(shard: Any, db: Any, argv: list) -> int:
    """Internal (``@txbegin``): a transaction's runs follow; serve waiters after them."""
    shard.waiters.deferred = True
    return 1


def transaction_ends(shard: Any, db: Any, argv: list) -> int:
    """Internal (``@txend``): the transaction's runs here are done; the keys it readied
    are served at the end of this run."""
    shard.waiters.deferred = False
    return 1


INTERNAL_PARTS = {
    b"@txbegin": transaction_begins,
    b"@txend": transaction_ends,
    b"@block": block_part,
    b"@bwait": wait_part,
    b"@brearm": rearm_part,
    b"@bcancel": cancel_part,
}
