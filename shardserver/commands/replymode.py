"""CLIENT REPLY ON|OFF|SKIP: which of a client's replies are dropped, as Redis 7.0 drops them.

Redis keeps three flags per client: OFF (drop every reply), SKIP (drop the replies of the
command being run) and SKIP_NEXT (set by CLIENT REPLY SKIP: the next command is skipped).
Every reply a dropped command would make goes, errors included (``prepareClientToWrite``
refuses them all). ON clears OFF and SKIP before it replies, so its ``+OK`` is seen even
right after a SKIP; SKIP under OFF does nothing.

Here, while any flag is set the client takes its checked path (no fast path), and each
command goes through :func:`quietly`: the replies it made at once are taken back, and the
entries it queued for later replies are marked *silent* (a third item), so the client's
``drain`` drops them in their turn: the order of what is sent is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver.commands.spec import NO_REPLY, local
from shardserver.errors import SYNTAX

OFF = 1
SKIP = 2
SKIP_NEXT = 4
#: The mark that makes a reply entry silent (``[reply, None, SILENT]``).
SILENT = True


def client_reply(session, argv: list[bytes]) -> Any:
    mode = argv[2].lower()
    if mode == b"on":
        session.reply_flags &= ~(SKIP | OFF)
        return b"+OK\r\n"
    if mode == b"off":
        session.reply_flags |= OFF
        return NO_REPLY
    if mode == b"skip":
        if not session.reply_flags & OFF:
            session.reply_flags |= SKIP_NEXT
        return NO_REPLY
    return SYNTAX


def quietly(client: Any, dispatch: Callable[[Any, list], None], spec: Any, argv: list) -> None:
    """Dispatch one command of a client with some reply flag set, dropping its replies if
    OFF or SKIP holds once it has run (CLIENT REPLY ON clears them first)."""
    flags = client.reply_flags
    if flags & SKIP_NEXT:  # what resetClient does after the CLIENT REPLY SKIP itself
        flags = (flags | SKIP) & ~SKIP_NEXT
    client.reply_flags = flags
    out_before = len(client.out)
    pending_before = len(client.pending)
    client.run_shard = -1  # its replies in entries of their own: no run shared with others
    dispatch(spec, argv)
    client.run_shard = -1
    if client.reply_flags & (OFF | SKIP):
        del client.out[out_before:]
        pending = client.pending
        for position in range(pending_before, len(pending)):
            entry = pending[position]
            if len(entry) == 1:  # a reply's entry (a pub/sub message's has two items)
                entry.extend((None, SILENT))
                client.silenced += 1
    client.reply_flags &= ~SKIP


ROWS = [local("client|reply", client_reply)]
