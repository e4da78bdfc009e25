"""What a shard tells its acceptors unasked: the kinds of event, each the first item of a tuple.

Events travel in event frames (:mod:`shardserver.framing`), after the replies of the batch
that made them (:mod:`shardserver.worker`); the acceptor hands each kind to the part of it
that listens (:meth:`shardserver.acceptor.Acceptor._heard`).
"""

#: ``(SERVED, wait id, reply)``: a client waiting on keys of this shard was served.
SERVED = 0
#: ``(READY, wait id)``: a key that a client waiting across shards waits on has something.
READY = 1
#: ``(INVALIDATED, client id, keys)``: keys a tracking client read were written, expired or
#: flushed (:mod:`shardserver.tracking`); told once, until the client reads them again.
INVALIDATED = 2
#: ``(WRITTEN, keys, writer's client id or 0)``: keys under some BCAST prefix of this
#: acceptor's tracking clients were written.
WRITTEN = 3
#: ``(NOTIFIED, forms, db index, event, key)``: a keyspace notification
#: (:mod:`shardserver.notifications`); ``forms`` says which channels carry it (the K and E
#: flags of :mod:`shardserver.eventclasses`). Sent to every acceptor.
NOTIFIED = 4
#: ``(MONITORED, lines)``: MONITOR's lines of commands this shard ran, in the order it ran
#: them (:mod:`shardserver.monitoring`; only with several acceptors). Sent to every acceptor.
MONITORED = 5
#: ``(LATENCY, event, unix time, ms)``: a latency monitor sample of this shard's own work
#: (the expiry sweep's ``expire-cycle``, the log's ``aof-fsync-always``;
#: :mod:`shardserver.latency`). Sent to acceptor 0.
LATENCY = 6
