"""maxmemory and eviction against the real server at 1 and 4 shards: each policy under a fill
loop, noeviction's refusals, INFO's figures, CONFIG SET at run time, WATCH, notifications,
scripts and MULTI when out of memory (byte for byte against redis-server), and the shards'
RSS under a fill loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.conftest import proc_descendants, wait_until

OOM = "OOM command not allowed when used memory > 'maxmemory'."
VALUE = b"x" * 100


@pytest.fixture
def r(clone):
    client = clone.client()
    client.flushall()
    client.config_resetstat()
    yield client
    client.config_set("maxmemory", "0")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("notify-keyspace-events", "")
    client.flushall()
    client.close()


def fill(client: redis.Redis, prefix: str, count: int, **options: object) -> int:
    """SET count keys in pipelines; how many were refused with OOM."""
    refused = 0
    for start in range(0, count, 200):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + 200)):
            pipe.set(f"{prefix}:{i}", VALUE, **options)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, redis.ResponseError):
                # redis-py takes the OOM code off the message
                assert isinstance(reply, redis.exceptions.OutOfMemoryError), reply
                assert "OOM " + str(reply) == OOM
                refused += 1
    return refused


def test_config_maxmemory_units_and_policies(r):
    r.config_set("maxmemory", "100mb")
    assert r.config_get("maxmemory") == {"maxmemory": str(100 * 1024 * 1024)}
    r.config_set("maxmemory", "1gb")
    assert r.config_get("maxmemory") == {"maxmemory": str(1024**3)}
    assert r.config_get("maxmemory-samples") == {"maxmemory-samples": "5"}
    assert r.config_get("maxmemory-eviction-tenacity") == {"maxmemory-eviction-tenacity": "10"}
    assert r.config_get("lfu-log-factor") == {"lfu-log-factor": "10"}
    assert r.config_get("lfu-decay-time") == {"lfu-decay-time": "1"}
    with pytest.raises(redis.ResponseError) as refused:
        r.config_set("maxmemory-policy", "bogus")
    assert str(refused.value) == (
        "CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) "
        "must be one of the following: volatile-lru, volatile-lfu, volatile-random, "
        "volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
    )
    info = r.info("memory")
    assert info["maxmemory"] == 1024**3 and info["maxmemory_policy"] == "noeviction"


def test_noeviction_refuses_writes_and_serves_reads(r):
    r.set("kept", "v")
    r.config_set("maxmemory", "400kb")
    refused = fill(r, "fill", 6000)
    assert refused > 0
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("more", "v")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.mset({"a{1}": "1", "b{2}": "2", "c{3}": "3"})  # across shards: refused as a whole
    assert r.get("kept") == b"v"
    assert r.mget(["a{1}", "b{2}", "c{3}"]) == [None, None, None]
    assert r.delete("kept") == 1  # DEL is not denyoom
    info = r.info()
    assert info["evicted_keys"] == 0
    # the refusal is the acceptor's, from the state the shards publish: the writes of the
    # pipeline dispatched when a shard crossed its budget still ran (200 here, ~50 KB)
    assert info["used_memory"] <= 400 * 1024 + 200 * 300
    used = info["used_memory"]
    fill(r, "again", 1000)
    assert r.info()["used_memory"] <= used
    assert r.dbsize() == 6000 - refused
    r.flushall()
    assert r.set("more", "v")


def test_volatile_policy_without_volatile_keys_is_out_of_memory(r):
    r.config_set("maxmemory-policy", "volatile-lru")
    r.config_set("maxmemory", "300kb")
    assert fill(r, "plain", 5000) > 0
    assert r.info()["evicted_keys"] == 0


@pytest.mark.parametrize("policy", ["allkeys-random", "allkeys-lru", "allkeys-lfu"])
def test_allkeys_policies_evict_and_stay_under_the_budget(r, policy):
    r.config_set("maxmemory-policy", policy)
    r.config_set("maxmemory", "300kb")
    assert fill(r, "fill", 5000) == 0
    # an eviction run cut short by its time limit (tenacity) is finished by the ticks
    assert wait_until(lambda: r.info("memory")["used_memory"] <= 300 * 1024, 10)
    info = r.info()
    assert info["evicted_keys"] > 0
    assert r.dbsize() + info["evicted_keys"] == 5000
    assert info["maxmemory_policy"] == policy


@pytest.mark.parametrize("policy", ["volatile-random", "volatile-lru", "volatile-lfu"])
def test_volatile_policies_evict_only_keys_with_a_deadline(r, policy):
    r.config_set("maxmemory-policy", policy)
    r.config_set("maxmemory", "400kb")
    fill(r, "plain", 1000)
    fill(r, "ttl", 3000, ex=1000)
    assert r.info()["evicted_keys"] > 0
    assert all(r.exists(f"plain:{i}") for i in range(0, 1000, 7))


def test_volatile_ttl_evicts_the_nearest_deadlines_first(r):
    r.config_set("maxmemory-policy", "volatile-ttl")
    r.config_set("maxmemory-samples", "10")
    r.config_set("maxmemory", "400kb")
    pipe = r.pipeline(transaction=False)
    for i in range(400):
        pipe.set(f"ttl:{i}", VALUE, ex=10_000 + i * 10)
    pipe.execute()
    fill(r, "plain", 700)
    gone = [i for i in range(400) if not r.exists(f"ttl:{i}")]
    assert 0 < len(gone) < 400
    assert all(r.exists(f"plain:{i}") for i in range(0, 700, 7))
    # sampled, so nearly (not exactly) the nearest deadlines: the first len(gone) keys
    assert sum(i < 1.2 * len(gone) for i in gone) >= 0.9 * len(gone)


def test_lru_keeps_the_hot_set(r):
    r.config_set("maxmemory-policy", "allkeys-lru")
    r.config_set("maxmemory-samples", "10")
    r.config_set("maxmemory", "600kb")
    fill(r, "cold", 900)
    fill(r, "hot", 300)
    # LRU's clock ticks once a second (Redis's LRU_CLOCK_RESOLUTION): let two ticks pass
    time.sleep(2.1)
    pipe = r.pipeline(transaction=False)
    for i in range(300):
        pipe.get(f"hot:{i}")
    pipe.execute()
    fill(r, "new", 600)
    assert r.info()["evicted_keys"] > 0
    kept = sum(r.exists(f"hot:{i}") for i in range(300))
    assert kept >= 0.95 * 300


def test_lfu_keeps_the_frequent_set(r):
    r.config_set("maxmemory-policy", "allkeys-lfu")
    r.config_set("maxmemory", "600kb")
    fill(r, "hot", 300)
    for _ in range(20):
        pipe = r.pipeline(transaction=False)
        for i in range(300):
            pipe.get(f"hot:{i}")
        pipe.execute()
    fill(r, "cold", 3000)
    assert r.info()["evicted_keys"] > 0
    kept = sum(r.exists(f"hot:{i}") for i in range(300))
    assert kept >= 0.95 * 300


def test_object_freq_and_idletime_follow_the_policy(r):
    r.set("k", "v")
    with pytest.raises(redis.ResponseError, match="^An LFU maxmemory policy is not selected"):
        r.object("freq", "k")
    r.config_set("maxmemory-policy", "allkeys-lfu")
    r.set("f", "v")
    assert r.object("freq", "f") == 5
    r.get("f")
    assert r.object("freq", "f") == 6
    r.type("f")
    r.exists("f")
    assert r.object("freq", "f") == 6
    with pytest.raises(redis.ResponseError, match="^An LFU maxmemory policy is selected"):
        r.object("idletime", "f")
    r.config_set("maxmemory-policy", "allkeys-lru")
    r.set("i", "v")
    assert r.object("idletime", "i") == 0


def test_config_set_maxmemory_at_run_time_evicts_at_the_next_write(r):
    r.config_set("maxmemory-policy", "allkeys-random")
    fill(r, "fill", 3000)
    before = r.info("memory")["used_memory"]
    assert r.dbsize() == 3000
    r.config_set("maxmemory", str(before // 2))
    r.set("one", "more")
    # each run of eviction is bounded (maxmemory-eviction-tenacity): the sweep's ticks
    # finish what the write started
    assert wait_until(lambda: r.info("memory")["used_memory"] <= before // 2, 10)
    assert r.dbsize() < 3000 * 0.6
    assert r.info()["evicted_keys"] > 0


def test_watched_key_evicted_fails_exec(r):
    r.config_set("maxmemory-policy", "volatile-ttl")
    r.config_set("maxmemory", "300kb")
    r.set("watched", "v", px=1_000_000)
    with r.pipeline() as pipe:
        pipe.watch("watched")
        fill(r, "other", 4000, ex=100_000)  # later deadlines: the watched key goes first
        assert not r.exists("watched")
        pipe.multi()
        pipe.set("after", "x")
        with pytest.raises(redis.WatchError):
            pipe.execute()


def test_eviction_notifies_evicted(r):
    r.config_set("notify-keyspace-events", "Ee")
    sub = r.pubsub()
    sub.subscribe("__keyevent@0__:evicted")
    assert wait_until(lambda: sub.get_message(timeout=0.1), 5)  # the confirmation
    r.config_set("maxmemory-policy", "volatile-ttl")
    r.config_set("maxmemory", "300kb")
    r.set("doomed", "v", px=1_000_000)
    fill(r, "other", 4000, ex=100_000)
    assert not r.exists("doomed")
    seen = set()

    def heard() -> bool:
        message = sub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            seen.add(message["data"])
        return b"doomed" in seen

    assert wait_until(heard, 10)
    sub.close()


def _oom_session(server, full: bool) -> list[bytes]:
    """Scripts, MULTI and EXEC while the server is out of memory (the oracle's maxmemory is
    1 byte; ours is filled), as raw replies."""
    replies = []
    with server.raw() as conn:
        for command in [
            ("EVAL", "return redis.call('set','x','y')", "0"),
            ("EVAL", "return redis.pcall('set','x','y')", "0"),
            ("EVAL", "return redis.call('get','x')", "0"),
            ("EVAL", "#!lua\nreturn redis.call('get','x')", "0"),
            ("EVAL", "#!lua flags=no-writes\nreturn redis.call('get','x')", "0"),
            ("EVAL", "#!lua flags=allow-oom\nreturn redis.call('set','x','y')", "0"),
            ("DEL", "x"),
            ("MULTI",),
            ("GET", "k"),
            ("EXEC",),
            ("MULTI",),
            ("EXEC",),
            ("SET", "a", "b"),
            ("INCR", "n"),
            ("GET", "a"),
        ]:
            replies.append(conn.command(*command))
    return replies


def _oom_exec(server) -> bytes:
    """An EXEC of a queued write, with the server out of memory only after the queueing."""
    with server.raw() as conn, server.raw() as other:
        conn.command("MULTI")
        conn.command("SET", "a", "b")
        full(other, server)
        return conn.command("EXEC")


def full(conn, server) -> None:
    if server.name == "redis-server":
        conn.command("CONFIG", "SET", "maxmemory", "1")
        return
    conn.command("CONFIG", "SET", "maxmemory", "200kb")
    for i in range(3000):
        if conn.command("SET", f"fill:{i}", VALUE).startswith(b"-OOM"):
            return
    raise AssertionError("never out of memory")


def test_scripts_and_transactions_when_out_of_memory_match_redis(r, clone, redis_server):
    oracle = redis_server.client()
    try:
        oracle.flushall()
        expected_exec = _oom_exec(redis_server)
        expected = _oom_session(redis_server, True)
    finally:
        oracle.config_set("maxmemory", "0")
        oracle.flushall()
    got_exec = _oom_exec(clone)
    got = _oom_session(clone, True)
    assert got_exec == expected_exec
    # the script's error names its SHA and line, as Redis's does
    assert got == expected


def test_shard_rss_stays_near_the_budget(clone_factory):
    server = clone_factory.start_clone(
        2, ["--maxmemory", "8mb", "--maxmemory-policy", "allkeys-random"]
    )
    client = server.client()
    shards = [pid for pid in proc_descendants(server.pid) if _is_shard(pid)]
    assert len(shards) == 2
    start = sum(_rss(pid) for pid in shards)
    value = b"v" * 1000
    for start_key in range(0, 80_000, 500):  # 80 MB written: ten times the budget
        pipe = client.pipeline(transaction=False)
        for i in range(start_key, start_key + 500):
            pipe.set(f"key:{i}", value)
        pipe.execute()
    grown = sum(_rss(pid) for pid in shards) - start
    info = client.info()
    assert info["evicted_keys"] > 60_000
    assert info["used_memory"] <= 8 * 1024 * 1024
    # the budget, plus what the allocator keeps around it (measured: about 10%)
    assert grown < 8 * 1024 * 1024 * 1.5, grown
    client.close()


def _is_shard(pid: int) -> bool:
    try:
        return "redis-clone-s" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_eviction_invalidates_tracking_clients(r, clone):
    r.config_set("maxmemory-policy", "volatile-ttl")
    r.set("cached", "v", px=1_000_000)
    with clone.raw() as conn:
        conn.command("HELLO", "3")
        assert conn.command("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
        assert conn.command("GET", "cached") == b"$1\r\nv\r\n"
        r.config_set("maxmemory", "300kb")
        fill(r, "other", 4000, ex=100_000)
        assert not r.exists("cached")
        pushes = []
        while b"cached" not in b"".join(pushes):
            pushes.append(conn.read_reply(timeout=10))
        assert b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ncached\r\n" in pushes


def test_blocked_clients_are_served_across_eviction(r, clone):
    r.config_set("maxmemory-policy", "allkeys-random")
    r.config_set("maxmemory", "300kb")
    with clone.raw() as conn:
        conn.send(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nqueue\r\n$2\r\n30\r\n")
        assert wait_until(lambda: r.info("clients")["blocked_clients"] == 1, 10)
        fill(r, "fill", 4000)
        assert r.info()["evicted_keys"] > 0
        assert r.info("clients")["blocked_clients"] == 1
        r.lpush("queue", "job")
        assert conn.read_reply(timeout=10) == b"*2\r\n$5\r\nqueue\r\n$3\r\njob\r\n"


def test_the_append_only_log_gets_the_eviction_as_a_del(clone_factory, server_log_dir):
    data = server_log_dir / f"aof-evict-{time.monotonic_ns()}"
    data.mkdir()
    server = clone_factory.start_clone(
        1,
        ["--dir", str(data), "--appendonly", "yes", "--appendfsync", "always"]
        + ["--maxmemory", "300kb", "--maxmemory-policy", "volatile-ttl"],
    )
    client = server.client()
    client.set("doomed", "v", px=1_000_000)
    fill(client, "other", 4000, ex=100_000)
    assert not client.exists("doomed")
    record = b"*2\r\n$3\r\nDEL\r\n$6\r\ndoomed\r\n"

    def logged() -> bool:
        return any(record in path.read_bytes() for path in data.rglob("*") if path.is_file())

    assert wait_until(logged, 10)
    client.close()


def test_memory_stats_has_redis_fields_in_redis_order(r, clone, redis_server):
    def fields(server) -> tuple[list, dict]:
        client = server.client()
        client.flushall()
        client.set("a", "b")
        client.set("c", "d", ex=100)
        with server.raw() as conn:  # redis-py would make a dict of it
            flat = conn.call("MEMORY", "STATS")
        client.flushall()
        return flat[::2], dict(zip(flat[::2], flat[1::2], strict=True))

    expected, _ = fields(redis_server)
    got, stats = fields(clone)
    assert got == expected
    assert stats[b"keys.count"] == 2
    assert stats[b"total.allocated"] == stats[b"dataset.bytes"] + stats[b"overhead.total"]
    assert stats[b"db.0"][::2] == [
        b"overhead.hashtable.main",
        b"overhead.hashtable.expires",
        b"overhead.hashtable.slot-to-keys",
    ]
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("MEMORY", "STATS", "x")


LIBRARY = (
    "#!lua name=oomlib\n"
    "redis.register_function('writes', function() return redis.call('set','x','y') end)\n"
    "redis.register_function{function_name='reads', callback=function() "
    "return redis.call('get','x') end, flags={'no-writes'}}\n"
    "redis.register_function{function_name='anyway', callback=function() "
    "return redis.call('set','x','z') end, flags={'allow-oom'}}\n"
)


def _oom_functions(server) -> list[bytes]:
    with server.raw() as conn, server.raw() as other:
        conn.command("FUNCTION", "LOAD", "REPLACE", LIBRARY)
        full(other, server)
        replies = [
            conn.command("FCALL", "writes", "0"),
            conn.command("FCALL", "reads", "0"),
            conn.command("FCALL_RO", "reads", "0"),
            conn.command("FCALL", "anyway", "0"),
            conn.command("FUNCTION", "DELETE", "oomlib"),  # not denyoom
        ]
    return replies


def test_functions_when_out_of_memory_match_redis(r, clone, redis_server):
    oracle = redis_server.client()
    try:
        oracle.flushall()
        expected = _oom_functions(redis_server)
    finally:
        oracle.config_set("maxmemory", "0")
        oracle.function_flush()
        oracle.flushall()
    try:
        assert _oom_functions(clone) == expected
    finally:
        r.config_set("maxmemory", "0")
        r.function_flush()


NOTOUCH_PROBES = [
    ("TYPE", "k"),
    ("EXISTS", "k"),
    ("TTL", "k"),
    ("PTTL", "k"),
    ("EXPIRETIME", "k"),
    ("TOUCH", "k"),
    ("STRLEN", "k"),
    ("DUMP", "k"),
    ("MEMORY", "USAGE", "k"),
    ("OBJECT", "ENCODING", "k"),
    ("GET", "k"),
    ("PERSIST", "k"),
    ("EXPIRE", "k", "100"),
    ("APPEND", "k", "x"),
]


def _frequencies(server) -> list[bytes]:
    """OBJECT FREQ after each probe on a fresh key: a new key's counter is 5 and its first
    access makes it 6 for sure, so the answer says whether the probe touched it."""
    found = []
    with server.raw() as conn:
        conn.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
        try:
            for probe in NOTOUCH_PROBES:
                conn.command("DEL", "k")
                conn.command("SET", "k", "v")
                conn.command(*probe)
                found.append(conn.command("OBJECT", "FREQ", "k"))
        finally:
            conn.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            conn.command("DEL", "k")
    return found


def test_which_commands_touch_a_key_as_redis(r, clone, redis_server):
    expected = _frequencies(redis_server)
    assert b":5\r\n" in expected and b":6\r\n" in expected
    assert _frequencies(clone) == expected


def test_two_acceptors_share_the_budget_and_the_refusal(clone_factory):
    server = clone_factory.start_clone(4, ["--acceptors", "2"])
    first, second = server.client_on(0), server.client_on(1)
    first.config_set("maxmemory", "400kb")  # told to both acceptors and every shard
    assert second.config_get("maxmemory") == {"maxmemory": str(400 * 1024)}
    assert fill(second, "fill", 6000) > 0
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        first.set("more", "v")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        first.mset({"a{1}": "1", "b{2}": "2"})
    assert first.mget(["a{1}", "b{2}"]) == [None, None]
    second.config_set("maxmemory", "0")
    assert first.set("more", "v")
    first.close()
    second.close()
