"""A job queue as RQ and Celery use Redis: producers LPUSH, consumers BRPOP over three queues,
results recorded with WATCH/MULTI retries, 100,000 items, none lost and none duplicated.

Consumers run in their own processes (real concurrency against the server's processes),
each with a redis-py connection. Every 100 items a consumer records its batch optimistically:
WATCH the shared counter, read it, then MULTI: SADD the items to the done set and SET the
counter to the old value plus the batch, EXEC; a WatchError (another consumer committed in
between) retries. Lost pushes or pops would leave SCARD short; an item popped twice would
make the counter pass SCARD; a transaction that lost an update would leave the counter short.
The queues ``queue:high``, ``queue:default`` and ``queue:low`` lie on three different shards
of a 4-shard server, so every BRPOP is a wait across shards.
"""

from __future__ import annotations

import multiprocessing

import redis
from conftest import ServerPool

from shardserver.slots import shard_table, slot_for_key

ITEMS = 100_000
PRODUCERS = 3
CONSUMERS = 4
QUEUES = ["queue:high", "queue:default", "queue:low"]
BATCH = 100


def _produce(port: int, first: int, last: int) -> None:
    client = redis.Redis(port=port)
    pipe = client.pipeline(transaction=False)
    for start in range(first, last, 50):
        values = [f"job{i}" for i in range(start, min(start + 50, last))]
        pipe.lpush(QUEUES[start // 50 % 3], *values)
        if start // 50 % 20 == 19:
            pipe.execute()
    pipe.execute()


def _record(client: redis.Redis, batch: list[bytes], retries: list[int]) -> None:
    while True:
        with client.pipeline() as pipe:
            try:
                pipe.watch("jobs:count")
                count = int(pipe.get("jobs:count") or 0)
                pipe.multi()
                pipe.sadd("jobs:done", *batch)
                pipe.set("jobs:count", count + len(batch))
                pipe.execute()
                return
            except redis.WatchError:
                retries[0] += 1


def _consume(port: int, results: multiprocessing.Queue) -> None:
    client = redis.Redis(port=port)
    batch: list[bytes] = []
    retries = [0]
    popped = 0
    while True:
        item = client.brpop(QUEUES, 0)  # for ever: a lost wake-up hangs the test
        if item[1] == b"stop":
            break
        popped += 1
        batch.append(item[1])
        if len(batch) == BATCH:
            _record(client, batch, retries)
            batch = []
    if batch:
        _record(client, batch, retries)
    results.put((popped, retries[0]))


def test_queue_moves_every_item_once(module_servers: ServerPool) -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(queue.encode())] for queue in QUEUES}) == 3
    server = module_servers.clone(4)
    client = redis.Redis(port=server.port)
    client.delete(*QUEUES, "jobs:done", "jobs:count")
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    consumers = [
        context.Process(target=_consume, args=(server.port, results)) for _ in range(CONSUMERS)
    ]
    for process in consumers:
        process.start()
    share = ITEMS // PRODUCERS
    producers = [
        context.Process(
            target=_produce,
            args=(server.port, i * share, ITEMS if i == PRODUCERS - 1 else (i + 1) * share),
        )
        for i in range(PRODUCERS)
    ]
    for process in producers:
        process.start()
    for process in producers:
        process.join(120)
        assert process.exitcode == 0
    for _ in range(CONSUMERS):
        client.lpush("queue:low", "stop")
    outcomes = [results.get(timeout=120) for _ in range(CONSUMERS)]
    for process in consumers:
        process.join(10)
        assert process.exitcode == 0
    popped = sum(count for count, _retries in outcomes)
    assert popped == ITEMS
    assert client.scard("jobs:done") == ITEMS
    assert int(client.get("jobs:count")) == ITEMS
    assert all(client.llen(queue) == 0 for queue in QUEUES)
    assert client.sismember("jobs:done", "job0") and client.sismember(
        "jobs:done", f"job{ITEMS - 1}"
    )
