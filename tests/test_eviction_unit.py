"""Unit tests of Redis's LRU/LFU arithmetic and eviction pool (shardserver/eviction.py) and of
a shard's accounting and eviction (shardserver/memory.py), with the clock and the random
numbers injected."""

from __future__ import annotations

import random
import sys

from shardserver import eviction
from shardserver.memory import KEY_OVERHEAD, OOM, Tracked
from shardserver.resp import Resp2
from shardserver.shard import Shard

MINUTE = 60_000


def test_lru_clock_has_24_bits_of_seconds():
    assert eviction.lru_clock(5_999) == 5
    assert eviction.lru_clock((1 << 24) * 1000 + 3_000) == 3


def test_idle_time_wraps_like_redis():
    word = eviction.lru_clock(10_000)
    assert eviction.idle_ms(word, 15_500) == 5_000
    late = eviction.LRU_CLOCK_MAX - 1
    # the clock wrapped past its maximum since the access
    assert eviction.idle_ms(late, 2_000) == (2 + 1) * 1000


def test_lfu_new_key_starts_at_init_value():
    word = eviction.lfu_new(10 * MINUTE)
    assert word & 0xFF == eviction.LFU_INIT_VAL
    assert word >> 8 == 10


def test_lfu_increment_is_logarithmic():
    word = eviction.lfu_new(0)
    # below the init value plus one, every access counts (probability 1)
    word = eviction.lfu_touch(word, 0, 10, 1, lambda: 0.99)
    assert word & 0xFF == 6
    # at 6: probability 1 / (1 * 10 + 1)
    assert eviction.lfu_touch(word, 0, 10, 1, lambda: 0.2) & 0xFF == 6
    assert eviction.lfu_touch(word, 0, 10, 1, lambda: 0.05) & 0xFF == 7
    saturated = 255
    assert eviction.lfu_touch(saturated, 0, 10, 0, lambda: 0.0) & 0xFF == 255


def test_lfu_decays_by_minutes():
    word = 3 << 8 | 20
    assert eviction.lfu_counter(word, 3 * MINUTE, 1) == 20
    assert eviction.lfu_counter(word, 8 * MINUTE, 1) == 15
    assert eviction.lfu_counter(word, 8 * MINUTE, 2) == 18
    assert eviction.lfu_counter(word, 100 * MINUTE, 1) == 0
    assert eviction.lfu_counter(word, 100 * MINUTE, 0) == 20  # decay off


def test_pool_keeps_the_best_sixteen_and_skips_ghosts():
    pool = eviction.EvictionPool()
    for score in range(40):
        pool.offer(score, 0, b"k%d" % score)
    assert len(pool) == eviction.POOL_SIZE
    assert pool.entries[0][0] == 40 - eviction.POOL_SIZE
    pool.offer(39, 0, b"k39")  # already there: not twice
    assert len(pool) == eviction.POOL_SIZE
    gone = {b"k39", b"k38"}
    assert pool.best(lambda db, key: key not in gone) == (0, b"k37")


def test_time_limit_follows_tenacity():
    assert eviction.time_limit_us(10) == 500
    assert eviction.time_limit_us(0) == 0
    assert 500 < eviction.time_limit_us(11) < 600
    assert eviction.time_limit_us(100) == float("inf")


def test_tracked_keeps_positions_and_total():
    tracked = Tracked(None)
    assert sum(tracked.put(b"k%d" % i, 100 + i, i) for i in range(5)) == 510
    assert tracked.total() == 510
    assert tracked.remove(b"k1") == 101
    assert tracked.remove(b"missing") == 0
    assert sorted(tracked.keys) == [b"k0", b"k2", b"k3", b"k4"]
    for key in tracked.keys:  # every key's position is where it is in the list
        assert tracked.keys[(tracked.meta[key] >> 24) & 0xFFFFFFFF] == key
    assert tracked.put(b"k2", 10, 7) == 10 - 102
    assert tracked.total() == 100 + 10 + 103 + 104


def _shard(policy: str, maxmemory: int) -> Shard:
    shard = Shard(0, {"maxmemory": maxmemory, "maxmemory-policy": policy})
    shard.memory.rng = random.Random(7)
    return shard


def _run(shard: Shard, *argv: bytes) -> bytes:
    return shard.execute_batch([[0, [*argv]]])[0]


def test_noeviction_refuses_nothing_on_the_shard_but_says_it_is_full():
    shard = _shard("noeviction", 20_000)
    i = 0
    while not shard.memory.full:
        assert _run(shard, b"set", b"key:%d" % i, b"x" * 100) == b"+OK\r\n"
        i += 1
    assert shard.memory.used() > 20_000
    assert shard.memory.evicted_keys == 0
    assert _run(shard, b"flushall") is not None
    _run(shard, b"@flushall")
    assert not shard.memory.full
    assert OOM.startswith(b"-OOM command not allowed")


def test_allkeys_lru_evicts_the_idle_keys_first():
    shard = _shard("allkeys-lru", 60_000)
    shard.memory.samples = 10
    clock = [1_000_000]
    shard.freeze_clock(clock[0])
    for i in range(60):
        _run(shard, b"set", b"cold:%d" % i, b"x" * 100)
    for i in range(30):
        _run(shard, b"set", b"hot:%d" % i, b"x" * 100)
    shard.freeze_clock(clock[0] + 10_000)  # ten seconds later the hot keys are read
    for i in range(30):
        _run(shard, b"get", b"hot:%d" % i)
    i = 0
    while shard.memory.evicted_keys < 30:
        _run(shard, b"set", b"new:%d" % i, b"x" * 100)
        i += 1
    data = shard.dbs[0].data
    assert all(b"hot:%d" % i in data for i in range(30))
    while shard.memory.over:  # an eviction cut short by its time limit goes on at ticks
        shard.memory.check()
    assert shard.memory.used() <= 60_000


def test_volatile_ttl_evicts_the_nearest_deadline_and_only_volatile_keys():
    shard = _shard("volatile-ttl", 40_000)
    shard.freeze_clock(1_000_000)
    for i in range(40):
        _run(shard, b"set", b"ttl:%d" % i, b"x" * 100, b"px", b"%d" % (100_000 + i * 1000))
    i = 0
    while shard.memory.evicted_keys < 10:
        _run(shard, b"set", b"plain:%d" % i, b"x" * 100)
        i += 1
    data = shard.dbs[0].data
    assert all(b"plain:%d" % j in data for j in range(i))
    gone = [j for j in range(40) if b"ttl:%d" % j not in data]
    # sampled, so nearly the nearest ones (more than ten go when a dict's table doubles)
    assert len(gone) >= 10 and max(gone) < len(gone) + 10
    for j in range(i, i + 400):
        _run(shard, b"set", b"plain:%d" % j, b"x" * 100)
        if shard.memory.full:
            break
    assert shard.memory.full  # over the budget with no key it may evict
    assert not shard.dbs[0].expires


def test_eviction_is_a_delete_for_watch_log_and_notifications():
    shard = _shard("volatile-ttl", 30_000)
    shard.settings["notify-keyspace-events"] = 0b1111111111111
    shard.notifications.configure()
    shard.execute_batch([[0, [b"set", b"first", b"v", b"px", b"1000000"]]])
    versions = shard.watches.watch(shard.dbs[0], [b"first"])
    i = 0
    while b"first" in shard.dbs[0].data:
        _run(shard, b"set", b"fill:%d" % i, b"x" * 100)
        i += 1
    assert shard.watches.versions(shard.dbs[0], [b"first"]) != versions
    events = [event for _stream, event in shard.events]
    assert any(event[3] == b"evicted" and event[4] == b"first" for event in events)


def test_lfu_counter_answers_object_freq():
    shard = _shard("allkeys-lfu", 0)
    _run(shard, b"set", b"k", b"v")
    assert _run(shard, b"object|freq", b"freq", b"k") == b":5\r\n"
    _run(shard, b"get", b"k")
    assert _run(shard, b"object|freq", b"freq", b"k") == b":6\r\n"
    # TYPE and EXISTS do not touch (LOOKUP_NOTOUCH)
    _run(shard, b"type", b"k")
    _run(shard, b"exists", b"k")
    assert _run(shard, b"object|freq", b"freq", b"k") == b":6\r\n"
    assert Resp2.integer(6) == b":6\r\n"


def test_container_sizes_follow_their_writes():
    shard = _shard("allkeys-lru", 0)
    for i in range(500):
        _run(shard, b"hset", b"h", b"field:%d" % i, b"value:%d" % i)
    tracked = shard.memory.state(shard.dbs[0])
    estimated = tracked.meta[b"h"] >> 56
    exact = shard.dbs[0].data[b"h"].memory_usage()
    assert 0.8 * exact < estimated < 1.3 * exact
    _run(shard, b"del", b"h")
    assert tracked.total() == 0 and not tracked.meta and shard.memory.dataset == 0


def test_move_and_copy_account_for_the_other_database():
    shard = _shard("allkeys-lru", 0)
    _run(shard, b"set", b"k", b"v" * 100)
    before = shard.memory.dataset
    assert _run(shard, b"move", b"k", b"3") == b":1\r\n"
    assert shard.memory.dataset == before
    assert b"k" in shard.memory.state(shard.dbs[3]).meta
    assert not shard.memory.state(shard.dbs[0]).meta
    # from database 3; the acceptor's check parsed COPY's options into its argv
    shard.execute_batch([[6, [b"copy", b"k", b"k2", 5, False]]])
    assert b"k2" in shard.memory.state(shard.dbs[5]).meta
    assert shard.memory.dataset > before


def test_tick_accounts_for_keys_no_write_named():
    shard = _shard("allkeys-lru", 0)
    shard.dbs[0].store(b"loaded", b"v" * 100)  # as a load stores it
    shard.memory.tick()
    assert b"loaded" in shard.memory.state(shard.dbs[0]).meta
    shard.dbs[0].delete(b"loaded")
    shard.memory.tick()
    assert shard.memory.dataset == 0


def test_a_failing_eviction_tick_leaves_the_shard_running(monkeypatch):
    shard = _shard("allkeys-lru", 1000)

    def broken() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(shard.memory, "tick", broken)
    shard.expire_cycle()  # logged, not raised: the worker's loop goes on
    assert _run(shard, b"set", b"k", b"v") == b"+OK\r\n"


class _Opaque:
    """A value type without a length (as a family's class may be): measured each write."""

    redis_type = "opaque"

    def memory_usage(self) -> int:
        return 1000


def test_a_value_without_a_length_is_measured_each_write():
    shard = _shard("allkeys-lru", 0)
    db = shard.dbs[0]
    db.store(b"o", _Opaque())
    shard.memory.update(db, b"o", shard.memory._was(db, b"o"))
    expected = 1000 + sys.getsizeof(b"o") + KEY_OVERHEAD
    assert shard.memory.state(db).meta[b"o"] >> 56 == expected
