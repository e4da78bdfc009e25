"""One shard's keyspace: databases of keys, their deadlines, lazy and active expiry.

Deadlines are absolute Unix milliseconds, so they mean the same after a restart. A key past
its deadline is gone for every reader: each access checks it (lazy expiry), and
:func:`active_expire_cycle` removes keys nobody reads again, with Redis's adaptive sampling.

Pure Python and no I/O: tests drive it with an explicit clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

#: Keys sampled per round of the active sweep (Redis's ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
SAMPLE_SIZE = 20
#: Keep sweeping while more than this share of a sample was expired (Redis 7: 10% stale).
ACCEPTABLE_STALE = 0.10


def now_ms() -> int:
    """Wall-clock time in Unix milliseconds."""
    return time.time_ns() // 1_000_000


class ExpiryIndex:
    """Deadlines of the keys that have one, with O(1) set, discard and random sampling.

    ``deadline`` maps key to its deadline; ``_keys`` holds the same keys in a list (a key's
    position kept in ``_slot``) so that random samples cost no scan.
    """

    __slots__ = ("deadline", "_keys", "_slot")

    def __init__(self) -> None:
        self.deadline: dict[bytes, int] = {}
        self._keys: list[bytes] = []
        self._slot: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def set(self, key: bytes, deadline: int) -> None:
        if key not in self._slot:
            self._slot[key] = len(self._keys)
            self._keys.append(key)
        self.deadline[key] = deadline

    def discard(self, key: bytes) -> None:
        slot = self._slot.pop(key, None)
        if slot is None:
            return
        del self.deadline[key]
        last = self._keys.pop()
        if last is not key and slot < len(self._keys):
            self._keys[slot] = last
            self._slot[last] = slot

    def clear(self) -> None:
        self.deadline.clear()
        self._keys.clear()
        self._slot.clear()

    def sample(self, count: int, rng: random.Random) -> list[bytes]:
        """Up to ``count`` keys picked at random (with repeats, as Redis's sampling allows)."""
        keys = self._keys
        size = len(keys)
        if size <= count:
            return list(keys)
        rand = rng.random
        return [keys[int(rand() * size)] for _ in range(count)]


class Database:
    """One logical database (``SELECT n``) of one shard.

    ``on_expire(db, key)``, when set, hears of every key removed for its deadline (the
    append-only log records the removal where it happened).
    """

    __slots__ = ("data", "expires", "expired_keys", "on_expire")

    def __init__(self) -> None:
        self.data: dict[bytes, object] = {}
        self.expires = ExpiryIndex()
        self.expired_keys = 0
        self.on_expire: Callable[[Database, bytes], None] | None = None

    def __len__(self) -> int:
        return len(self.data)

    def lookup(self, key: bytes, now: int) -> object | None:
        """The live value of ``key``, or None; removes the key if its deadline has passed."""
        value = self.data.get(key)
        if value is not None and self.expires:
            deadline = self.expires.deadline.get(key)
            if deadline is not None and deadline <= now:
                self._expire(key)
                return None
        return value

    def deadline_of(self, key: bytes) -> int | None:
        """The key's deadline, or None if it has none (callers check it is live first)."""
        return self.expires.deadline.get(key) if self.expires else None

    def store(self, key: bytes, value: object, deadline: int | None = None) -> None:
        """Set a key's value and deadline (None: no deadline)."""
        self.data[key] = value
        if deadline is None:
            if self.expires:
                self.expires.discard(key)
        else:
            self.expires.set(key, deadline)

    def store_keep_deadline(self, key: bytes, value: object) -> None:
        """Set a key's value, keeping whatever deadline it has (SET ... KEEPTTL)."""
        self.data[key] = value

    def set_deadline(self, key: bytes, deadline: int | None) -> None:
        if deadline is None:
            self.expires.discard(key)
        else:
            self.expires.set(key, deadline)

    def delete(self, key: bytes) -> bool:
        """Remove a key; whether it existed (expired keys count as absent to callers)."""
        if self.data.pop(key, None) is None:
            return False
        if self.expires:
            self.expires.discard(key)
        return True

    def clear(self) -> int:
        """Remove every key; how many there were."""
        count = len(self.data)
        self.data.clear()
        self.expires.clear()
        return count

    def _expire(self, key: bytes) -> None:
        del self.data[key]
        self.expires.discard(key)
        self.expired_keys += 1
        if self.on_expire is not None:
            self.on_expire(self, key)

    def expire_sample(self, now: int, rng: random.Random) -> tuple[int, int]:
        """One sweep round: sample keys with deadlines and remove the expired ones.

        Returns (sampled, expired).
        """
        sample = self.expires.sample(SAMPLE_SIZE, rng)
        deadline = self.expires.deadline
        expired = 0
        for key in sample:
            when = deadline.get(key)
            if when is not None and when <= now:
                self._expire(key)
                expired += 1
        return len(sample), expired

    def live_keys(self, now: int) -> Iterator[bytes]:
        """Every key not past its deadline (does not remove expired ones)."""
        deadline = self.expires.deadline
        if not deadline:
            yield from self.data
            return
        for key in self.data:
            when = deadline.get(key)
            if when is None or when > now:
                yield key


def active_expire_cycle(
    databases: list[Database],
    budget_s: float,
    clock: Callable[[], float] = time.perf_counter,
    wall_ms: Callable[[], int] = now_ms,
    rng: random.Random | None = None,
) -> int:
    """Redis's adaptive active expiry, for one shard's databases; returns keys removed.

    For each database with deadlines: sample :data:`SAMPLE_SIZE` keys, remove the expired, and
    go again while more than :data:`ACCEPTABLE_STALE` of the sample was expired, until the time
    budget (about a quarter of the sweep interval) is spent.
    """
    rng = rng or random.Random()
    start = clock()
    removed = 0
    rounds = 0
    for db in databases:
        if not db.expires:
            continue
        while db.expires:
            rounds += 1
            sampled, expired = db.expire_sample(wall_ms(), rng)
            removed += expired
            if sampled == 0 or expired <= sampled * ACCEPTABLE_STALE:
                break
            if rounds % 16 == 0 and clock() - start > budget_s:
                return removed
    return removed
