"""Redis's approximated LRU and LFU, and its eviction pool: which key goes when memory is short.

Pure arithmetic and a small sorted list, as ``evict.c`` has them, with the clock and the random
numbers injected so that unit tests decide both:

- **LRU**: a key's access word is the 24-bit LRU clock (Unix milliseconds / 1000, so one tick
  a second, as Redis's ``LRU_CLOCK_RESOLUTION``) at its last access; its idle time is the
  clock's distance from it, modulo 2**24 (``estimateObjectIdleTime``).
- **LFU**: the word is ``minutes << 8 | counter``: the last decrement time in minutes (16
  bits) and a logarithmic counter (8 bits). A new key starts at :data:`LFU_INIT_VAL`; each
  access first decays the counter by one per ``lfu-decay-time`` minutes elapsed
  (``LFUDecrAndReturn``), then increments it with probability ``1 / ((counter - 5) *
  lfu-log-factor + 1)`` (``LFULogIncr``).
- **The pool**: :class:`EvictionPool` keeps the :data:`POOL_SIZE` best candidates seen so
  far, sorted by score (higher goes first: idle time for LRU, ``255 - counter`` for LFU, a
  nearer deadline for volatile-ttl), refilled by sampling ``maxmemory-samples`` keys of every
  database (``evictionPoolPopulate``); the best one still present is evicted.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

#: Redis's LRU_BITS and LRU_CLOCK_MAX: the access word has 24 bits.
LRU_CLOCK_MAX = (1 << 24) - 1
#: Milliseconds per LRU clock tick (LRU_CLOCK_RESOLUTION).
LRU_CLOCK_RESOLUTION = 1000
#: A new key's LFU counter, so that it is not evicted before it had a chance to be used.
LFU_INIT_VAL = 5
#: Candidates the eviction pool keeps (EVPOOL_SIZE).
POOL_SIZE = 16

LFU_POLICIES = frozenset({"allkeys-lfu", "volatile-lfu"})
#: Policies that sample only keys with a deadline.
VOLATILE_POLICIES = frozenset({"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"})
#: Policies that pick at random instead of from the pool.
RANDOM_POLICIES = frozenset({"allkeys-random", "volatile-random"})


def lru_clock(now_ms: int) -> int:
    """The LRU clock at ``now_ms`` (Unix milliseconds): seconds, modulo 2**24."""
    return (now_ms // LRU_CLOCK_RESOLUTION) & LRU_CLOCK_MAX


def idle_ms(word: int, now_ms: int) -> int:
    """Milliseconds since the access that stamped ``word`` (the clock wraps every 194 days,
    as Redis's does)."""
    clock = lru_clock(now_ms)
    if clock >= word:
        return (clock - word) * LRU_CLOCK_RESOLUTION
    return (clock + (LRU_CLOCK_MAX - word)) * LRU_CLOCK_RESOLUTION


def lfu_minutes(now_ms: int) -> int:
    """Redis's LFUGetTimeInMinutes: Unix minutes, modulo 2**16."""
    return (now_ms // 60_000) & 0xFFFF


def lfu_new(now_ms: int) -> int:
    """The LFU word of a key just created."""
    return lfu_minutes(now_ms) << 8 | LFU_INIT_VAL


def lfu_counter(word: int, now_ms: int, decay_time: int) -> int:
    """The counter after its decay (LFUDecrAndReturn): what OBJECT FREQ answers."""
    counter = word & 0xFF
    if not decay_time:
        return counter
    then = word >> 8
    now = lfu_minutes(now_ms)
    elapsed = now - then if now >= then else 0xFFFF - then + now
    periods = elapsed // decay_time
    if periods:
        counter = 0 if periods > counter else counter - periods
    return counter


def lfu_touch(
    word: int, now_ms: int, log_factor: int, decay_time: int, rand: Callable[[], float]
) -> int:
    """The word after one access (updateLFU): decay, then the logarithmic increment."""
    counter = lfu_counter(word, now_ms, decay_time)
    if counter < 255:
        base = counter - LFU_INIT_VAL
        if base < 0:
            base = 0
        if rand() < 1.0 / (base * log_factor + 1):
            counter += 1
    return lfu_minutes(now_ms) << 8 | counter


class EvictionPool:
    """The best eviction candidates seen so far: ``(score, db index, key)`` kept sorted by
    score, at most :data:`POOL_SIZE` of them (the worst drops out when a better one comes)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, bytes]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def offer(self, score: int, db_index: int, key: bytes) -> None:
        """Consider one sampled key (a key already in the pool is not added twice)."""
        entries = self.entries
        if len(entries) >= POOL_SIZE and score <= entries[0][0]:
            return  # worse than every candidate of a full pool, as Redis skips it
        for each in entries:
            if each[2] == key and each[1] == db_index:
                return
        bisect.insort(entries, (score, db_index, key))
        if len(entries) > POOL_SIZE:
            del entries[0]

    def best(self, exists: Callable[[int, bytes], bool]) -> tuple[int, bytes] | None:
        """Take out the best candidate that still ``exists(db index, key)`` (the others,
        deleted or changed since they were sampled, are dropped on the way), or None."""
        entries = self.entries
        while entries:
            _score, db_index, key = entries.pop()
            if exists(db_index, key):
                return db_index, key
        return None

    def clear(self) -> None:
        self.entries.clear()


def time_limit_us(tenacity: int) -> float:
    """How long one eviction run may take (evictionTimeLimitUs): 50 us per step of
    ``maxmemory-eviction-tenacity`` up to 10, then 15% more per step; 100 means no limit."""
    if tenacity <= 10:
        return 50.0 * tenacity
    if tenacity < 100:
        return 500.0 * 1.15 ** (tenacity - 10)
    return float("inf")
