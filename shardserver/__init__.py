"""redis-clone: a Redis-compatible server that shards the keyspace across processes.

The acceptor process (:mod:`shardserver.acceptor`) speaks RESP to clients and routes every
command by Redis Cluster hash slot (:mod:`shardserver.slots`) to one of N shard worker
processes (:mod:`shardserver.worker`), each of which owns a :class:`shardserver.shard.Shard`.
"""

__version__ = "0.1.0"

#: The Redis release whose behaviour (replies, errors, INFO fields) we match. Client libraries
#: gate features on ``redis_version``, so it names Redis, and our own version has its own field.
REDIS_COMPAT_VERSION = "7.0.15"
