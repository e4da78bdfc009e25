"""The keyspace: values, deadlines, lazy expiry and the adaptive active sweep."""

from __future__ import annotations

import random

from shardserver.keyspace import Database, ExpiryIndex, active_expire_cycle


def test_expiry_index_sample_set_discard() -> None:
    index = ExpiryIndex()
    for i in range(100):
        index.set(b"k%d" % i, i)
    for i in range(0, 100, 2):
        index.discard(b"k%d" % i)
    index.discard(b"missing")
    assert len(index) == 50
    sample = index.sample(20, random.Random(1))
    assert len(sample) == 20
    assert all(int(k[1:]) % 2 == 1 for k in sample)
    assert set(index.sample(100, random.Random(1))) == set(index.deadline)


def test_lazy_expiry_on_lookup() -> None:
    db = Database()
    db.store(b"a", b"1", deadline=1000)
    db.store(b"b", b"2")
    assert db.lookup(b"a", 999) == b"1"
    assert db.lookup(b"a", 1000) is None
    assert b"a" not in db.data and len(db.expires) == 0
    assert db.expired_keys == 1
    assert db.lookup(b"b", 10**15) == b"2"


def test_store_without_deadline_clears_it_and_keep_keeps_it() -> None:
    db = Database()
    db.store(b"a", b"1", deadline=5000)
    db.store_keep_deadline(b"a", b"2")
    assert db.deadline_of(b"a") == 5000
    db.store(b"a", b"3")
    assert db.deadline_of(b"a") is None


def test_live_keys_skips_expired() -> None:
    db = Database()
    db.store(b"a", b"1", deadline=10)
    db.store(b"b", b"1", deadline=100)
    db.store(b"c", b"1")
    assert sorted(db.live_keys(50)) == [b"b", b"c"]


def test_sweep_removes_keys_nobody_reads() -> None:
    db = Database()
    for i in range(5000):
        db.store(b"k%d" % i, b"v", deadline=100)
    for i in range(100):
        db.store(b"keep%d" % i, b"v", deadline=10**15)
    removed = 0
    rng = random.Random(7)
    for _ in range(2000):
        removed += active_expire_cycle([db], 1.0, wall_ms=lambda: 200, rng=rng)
        if len(db) == 100:
            break
    assert removed == 5000
    assert len(db) == 100 and len(db.expires) == 100


def test_sweep_stops_at_its_time_budget() -> None:
    db = Database()
    for i in range(50_000):
        db.store(b"k%d" % i, b"v", deadline=1)
    ticks = iter(range(10**9))
    removed = active_expire_cycle(
        [db], budget_s=5, clock=lambda: next(ticks), wall_ms=lambda: 10, rng=random.Random(3)
    )
    assert 0 < removed < 50_000


def test_sweep_leaves_live_keys_alone() -> None:
    db = Database()
    for i in range(1000):
        db.store(b"k%d" % i, b"v", deadline=10**15)
    assert active_expire_cycle([db], 1.0, wall_ms=lambda: 0, rng=random.Random(0)) == 0
    assert len(db) == 1000
