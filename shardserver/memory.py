"""One shard's memory: what its keys take, their access words, eviction and the OOM state.

**Accounting.** While the layer is on (``maxmemory`` set, or a policy other than
``noeviction``, so OBJECT FREQ and IDLETIME have something to read) every key has one int
in a parallel dict, ``meta[key] = size << 56 | position << 24 | access``: the bytes this
process holds for the key (its key and value objects as ``sys.getsizeof`` counts them, the
dict entries that hold it, its deadline's entries, and this int itself), its position in a
list of the keys (random samples cost no scan, as the expiry index does it), and its 24-bit
LRU clock or LFU word (:mod:`shardserver.eviction`). The sizes are kept up to date by every
write, from the key positions the append-only log uses: a string's size is exact, a
container's is measured again when it is small, now and then when it is large (with
probability 64 / length, so a write costs O(64) elements on average), and in between
scaled by its length. The shard's ``used_memory`` is the sum of the sizes plus the tables of
its dicts: an estimate that a delete gives back exactly, which RSS (that rarely shrinks)
cannot be.

**Access.** Every command that names keys touches them after it ran, as Redis's
``lookupKey`` does, except those Redis looks up with ``LOOKUP_NOTOUCH`` (TYPE, EXISTS, TTL
and its kin, OBJECT, MEMORY USAGE). A new key starts with the LRU clock now or the LFU
counter 5; a key written again keeps its LFU counter, as ``dbOverwrite`` keeps it.

**Eviction** (``performEvictions``): before a command flagged ``denyoom`` (and before a
script) runs on a shard over its budget (``maxmemory`` / shards), keys are evicted by the
policy until the shard is under it, the time spent bounded by ``maxmemory-eviction-tenacity``
(the rest is done at the next command or the next sweep tick). An eviction is a delete
like any other: the log gets a DEL, WATCH versions move, tracking clients are invalidated
and the ``evicted`` notification (class ``e``) goes out.

**OOM.** A shard that is over its budget with nothing it may evict says so in a shared
word (:class:`MemoryBoard`); the acceptors refuse denyoom commands while any shard says it
(:func:`server_full`), so a multi-shard write is refused as a whole or not at all.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from shardserver import eviction
from shardserver.commands.spec import key_positions
from shardserver.commands.table import COMMANDS
from shardserver.errors import is_error
from shardserver.eventclasses import EVICTED
from shardserver.persistence.journal import CLIENT_RULES, PART_RULES

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"

#: Bytes a key costs beyond its key and value objects: its entry in the keyspace dict (hash,
#: key, value, and its share of the index at two-thirds load), its entry in ``meta`` and the
#: int there, and its slot in the key list.
KEY_OVERHEAD = 48 + 48 + 36 + 9
#: A deadline: an entry in the deadline dict, one in the slot dict, its int and a list slot.
DEADLINE_OVERHEAD = 48 + 48 + 32 + 9
#: Containers up to this length are measured exactly on every write.
EXACT_LENGTH = 64

_ACCESS = (1 << 24) - 1
_POSITION = ((1 << 32) - 1) << 24
_SIZE_SHIFT = 56

#: Commands whose lookups do not touch (Redis's LOOKUP_NOTOUCH, or no lookup at all).
NO_TOUCH = frozenset(
    name.encode()
    for name in (
        "type", "exists", "ttl", "pttl", "expiretime", "pexpiretime", "object|encoding",
        "object|refcount", "object|idletime", "object|freq", "memory|usage", "del", "unlink",
    )
)  # fmt: skip
#: Internal parts that read keys a client named (a multi-shard MGET's share): they touch.
_READ_PARTS = {b"@mget": lambda argv: argv[1:]}
#: Internal parts that empty whole databases: the databases they empty.
_FLUSHES: dict[bytes, Callable[[Any, Any, list], list[Any]]] = {
    b"@flushdb": lambda shard, db, argv: [db],
    b"@flushall": lambda shard, db, argv: list(shard.dbs),
}


class MemoryBoard:
    """Shared words, one per shard: whether it is out of memory (over its budget with
    nothing it may evict). Each shard writes only its own; the acceptors read them all."""

    def __init__(self, shards: int, context: Any = multiprocessing) -> None:
        self._words = context.RawArray("b", shards)

    def set(self, index: int, full: bool) -> None:
        if index < len(self._words):
            self._words[index] = 1 if full else 0

    def any_full(self) -> bool:
        return any(self._words[:])


#: The server's board, made by the launcher before it forks anything (every acceptor and
#: shard inherits it); None in a process made without the launcher (unit tests).
BOARD: MemoryBoard | None = None


def share(shards: int, context: Any = multiprocessing) -> None:
    """Make the server's board (the launcher, before the first fork)."""
    global BOARD
    BOARD = MemoryBoard(shards, context)


def server_full() -> bool:
    """Whether some shard is out of memory: denyoom commands are refused (acceptor side)."""
    return BOARD is not None and BOARD.any_full()


def _write_keys() -> dict[bytes, Callable[[list], list[bytes]]]:
    keys = {name: rule[1] for name, rule in CLIENT_RULES.items()}
    keys.update({name: rule[1] for name, rule in PART_RULES.items() if name not in _FLUSHES})
    return keys


def _read_keys() -> dict[bytes, Callable[[list], list[bytes]]]:
    """Every command that names keys and does not write, by wire name: where its keys are."""
    found: dict[bytes, Callable[[list], list[bytes]]] = {}
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            name = each.name.encode()
            if each.run is None or "write" in each.flags or name in NO_TOUCH:
                continue
            if each.keys is None and each.first_key <= 0:
                continue
            found[name] = lambda argv, each=each: [argv[i] for i in key_positions(each, argv)]
    found.update(_READ_PARTS)
    return found


def _denyoom() -> frozenset[bytes]:
    names = set()
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if "denyoom" in each.flags:
                names.add(each.name.encode())
    return frozenset(names)


WRITE_KEYS = _write_keys()
READ_KEYS = _read_keys()
DENYOOM = _denyoom()
#: Parts that make memory grow (the halves of multi-shard writes): they evict first too.
_GROWING_PARTS = frozenset({b"@mset", b"@put", b"@set-add"})


def value_size(value: object) -> int:
    """Bytes this process holds for a value, measured (O(length) for a container)."""
    if value.__class__ is bytes:
        return sys.getsizeof(value)
    return value.memory_usage()  # type: ignore[attr-defined]


class Tracked:
    """One database's sizes and access words (see the module docstring), and their sum."""

    __slots__ = ("db", "meta", "keys", "total")

    def __init__(self, db: Any) -> None:
        self.db = db
        self.meta: dict[bytes, int] = {}
        self.keys: list[bytes] = []
        self.total = 0

    def put(self, key: bytes, size: int, access: int) -> None:
        """Set a key's size and access word (adding it if it is new)."""
        word = self.meta.get(key)
        if word is None:
            position = len(self.keys)
            self.keys.append(key)
        else:
            position = (word & _POSITION) >> 24
            self.total -= word >> _SIZE_SHIFT
        self.meta[key] = size << _SIZE_SHIFT | position << 24 | access
        self.total += size

    def access(self, key: bytes, access: int) -> None:
        word = self.meta.get(key)
        if word is not None:
            self.meta[key] = word & ~_ACCESS | access

    def remove(self, key: bytes) -> int:
        """Forget a key; the bytes it took (0 if it was not here)."""
        word = self.meta.pop(key, None)
        if word is None:
            return 0
        size = word >> _SIZE_SHIFT
        self.total -= size
        position = (word & _POSITION) >> 24
        last = self.keys.pop()
        if position < len(self.keys):
            self.keys[position] = last
            moved = self.meta[last]
            self.meta[last] = moved & ~_POSITION | position << 24
        return size

    def clear(self) -> None:
        self.meta.clear()
        self.keys.clear()
        self.total = 0

    def sample(self, count: int, rand: Callable[[], float]) -> list[bytes]:
        keys = self.keys
        size = len(keys)
        if size <= count:
            return list(keys)
        return [keys[int(rand() * size)] for _ in range(count)]


def size_of(word: int) -> int:
    return word >> _SIZE_SHIFT


def access_of(word: int) -> int:
    return word & _ACCESS


class ShardMemory:
    """One shard's accounting, access words, eviction and OOM state."""

    def __init__(self, shard: Any, rng: random.Random | None = None) -> None:
        self.shard = shard
        self.rng = rng or random.Random()
        self.active = False
        self.budget = 0
        self.policy = "noeviction"
        self.lfu = False
        self.samples = 5
        self.tenacity = 10
        self.log_factor = 10
        self.decay_time = 1
        self.evicted_keys = 0
        self.full = False
        self.pool = eviction.EvictionPool()
        #: Per database (by the Database object's id: SWAPDB swaps the objects, and their
        #: accounting goes with them).
        self.tracked: dict[int, Tracked] = {}
        self._tables: dict[int, dict[bytes, Any]] = {}

    def __bool__(self) -> bool:
        return self.active

    # -- settings --------------------------------------------------------------------------

    def configure(self) -> None:
        """Follow maxmemory and its kin (at start and on CONFIG SET)."""
        settings = self.shard.settings
        shards = max(1, int(settings.get("shards", 1) or 1))
        maxmemory = int(settings.get("maxmemory", 0) or 0)
        # The budget is split evenly: slots spread keys evenly over shards.
        self.budget = maxmemory // shards if maxmemory else 0
        if maxmemory and not self.budget:
            self.budget = 1
        self.policy = str(settings.get("maxmemory-policy", "noeviction"))
        self.lfu = self.policy in eviction.LFU_POLICIES
        self.samples = int(settings.get("maxmemory-samples", 5))
        self.tenacity = int(settings.get("maxmemory-eviction-tenacity", 10))
        self.log_factor = int(settings.get("lfu-log-factor", 10))
        self.decay_time = int(settings.get("lfu-decay-time", 1))
        self.pool.clear()
        active = bool(maxmemory) or self.policy != "noeviction"
        if active != self.active:
            self.active = active
            if active:
                self.rebuild()
            else:
                self.tracked.clear()
            self.shard.refresh_handlers()
        self.check()

    # -- accounting ------------------------------------------------------------------------

    def state(self, db: Any) -> Tracked:
        tracked = self.tracked.get(id(db))
        if tracked is None:
            tracked = self.tracked[id(db)] = Tracked(db)
        return tracked

    def rebuild(self) -> None:
        """Measure every key again (when the layer turns on, or after a load); the access
        words of the keys it knew stay."""
        old = self.tracked
        self.tracked = {}
        fresh = self.new_access(self.shard.now)
        for db in self.shard.dbs:
            known = old[id(db)].meta if id(db) in old else {}
            tracked = self.state(db)
            deadlines = db.expires.deadline
            for key, value in db.data.items():
                word = known.get(key)
                access = fresh if word is None else word & _ACCESS
                size = self.entry_size(key, value_size(value), key in deadlines)
                tracked.put(key, size, access)

    @staticmethod
    def entry_size(key: bytes, value_bytes: int, has_deadline: bool) -> int:
        size = sys.getsizeof(key) + value_bytes + KEY_OVERHEAD
        return size + DEADLINE_OVERHEAD if has_deadline else size

    def used(self) -> int:
        """This shard's used memory: every key's bytes plus the tables of its dicts."""
        total = 0
        getsizeof = sys.getsizeof
        for tracked in self.tracked.values():
            db = tracked.db
            if db.data:
                total += tracked.total + getsizeof(db.data)
                total += getsizeof(tracked.meta) + getsizeof(tracked.keys)
                if db.expires:
                    total += getsizeof(db.expires.deadline) + getsizeof(db.expires._slot)
        return total

    def _dataset(self) -> int:
        return sum(tracked.total for tracked in self.tracked.values())

    def update(self, db: Any, key: bytes, before: tuple | None) -> None:
        """After a write that names ``key``: its size and access word now. ``before`` is
        ``(value, length)`` of a container it held before the write, else None."""
        tracked = self.state(db)
        value = db.data.get(key)
        if value is None:
            tracked.remove(key)
            return
        word = tracked.meta.get(key)
        now = self.shard.now
        if value.__class__ is bytes:
            value_bytes = sys.getsizeof(value)
        else:
            value_bytes = self._container_size(value, word, before, key)
        has_deadline = bool(db.expires) and key in db.expires.deadline
        size = self.entry_size(key, value_bytes, has_deadline)
        access = self.new_access(now) if word is None else self.touched(word & _ACCESS, now)
        tracked.put(key, size, access)

    def _container_size(
        self, value: Any, word: int | None, before: tuple | None, key: bytes
    ) -> int:
        length = len(value)
        if word is None or length <= EXACT_LENGTH or before is None or before[0] is not value:
            return value_size(value)
        old_length = before[1]
        if old_length <= 0 or self.rng.random() * length < EXACT_LENGTH:
            return value_size(value)
        had_deadline = before[2]
        old_value = (word >> _SIZE_SHIFT) - self.entry_size(key, 0, had_deadline)
        return max(0, old_value) * length // old_length

    def forget(self, db: Any, key: bytes) -> None:
        tracked = self.tracked.get(id(db))
        if tracked is not None:
            tracked.remove(key)

    def expired(self, db: Any, key: bytes) -> None:
        """A key removed for its deadline (the shard's expiry hook while this is on)."""
        self.forget(db, key)

    # -- access ------------------------------------------------------------------------------

    def new_access(self, now: int) -> int:
        return eviction.lfu_new(now) if self.lfu else eviction.lru_clock(now)

    def touched(self, access: int, now: int) -> int:
        if self.lfu:
            return eviction.lfu_touch(
                access, now, self.log_factor, self.decay_time, self.rng.random
            )
        return eviction.lru_clock(now)

    def touch(self, db: Any, keys: list[bytes]) -> None:
        tracked = self.state(db)
        meta = tracked.meta
        now = self.shard.now
        for key in keys:
            word = meta.get(key)
            if word is not None:
                meta[key] = word & ~_ACCESS | self.touched(word & _ACCESS, now)
            elif key in db.data:  # a key some path added without a write we saw
                self.update(db, key, None)

    def access_word(self, db: Any, key: bytes) -> int | None:
        tracked = self.tracked.get(id(db))
        word = tracked.meta.get(key) if tracked is not None else None
        return None if word is None else word & _ACCESS

    def idle_seconds(self, db: Any, key: bytes) -> int:
        """OBJECT IDLETIME: seconds since the key's last access (0 while nothing tracks)."""
        word = self.access_word(db, key)
        return 0 if word is None else eviction.idle_ms(word, self.shard.now) // 1000

    def frequency(self, db: Any, key: bytes) -> int:
        """OBJECT FREQ: the key's LFU counter after its decay."""
        word = self.access_word(db, key)
        if word is None:
            return eviction.LFU_INIT_VAL
        return eviction.lfu_counter(word, self.shard.now, self.decay_time)

    # -- eviction ----------------------------------------------------------------------------

    def over(self) -> bool:
        return bool(self.budget) and self.used() > self.budget

    def evict(self) -> bool:
        """Redis's performEvictions: evict by the policy until under the budget or out of
        time; False when the shard stays over it with nothing it may evict."""
        if not self.budget:
            return True
        used = self.used()
        if used <= self.budget:
            self._set_full(False)
            return True
        if self.policy == "noeviction":
            self._set_full(True)
            return False
        limit_s = eviction.time_limit_us(self.tenacity) / 1e6
        start = time.perf_counter()
        count = 0
        while used > self.budget:
            victim = self._victim()
            if victim is None:
                self._set_full(True)
                return False
            db, key = victim
            used -= self._evict(db, key)
            count += 1
            if count % 16 == 0:
                used = self.used()
                if time.perf_counter() - start > limit_s:
                    break  # the rest at the next command or sweep tick (EVICT_RUNNING)
        self._set_full(False)
        return True

    def _victim(self) -> tuple[Any, bytes] | None:
        dbs = self.shard.dbs
        volatile = self.policy in eviction.VOLATILE_POLICIES
        if self.policy in eviction.RANDOM_POLICIES:
            candidates = [db for db in dbs if (db.expires if volatile else db.data)]
            if not candidates:
                return None
            db = candidates[int(self.rng.random() * len(candidates))]
            if volatile:
                keys = db.expires.sample(1, self.rng)
            else:
                keys = self.state(db).sample(1, self.rng.random)
            return (db, keys[0]) if keys else None
        for _round in range(16):  # a pool that finds only ghosts gives up after a while
            samples = []
            for index, db in enumerate(dbs):
                if volatile:
                    if db.expires:
                        samples.append((index, db.expires.sample(self.samples, self.rng)))
                elif db.data:
                    samples.append((index, self.state(db).sample(self.samples, self.rng.random)))
            if not samples:
                return None
            eviction.populate(self.pool, samples, self._score)
            found = self.pool.best(self._exists)
            if found is not None:
                return dbs[found[0]], found[1]
            if not any(keys for _, keys in samples):
                return None
        return None

    def _exists(self, index: int, key: bytes) -> bool:
        db = self.shard.dbs[index]
        if self.policy in eviction.VOLATILE_POLICIES:
            return key in db.expires.deadline
        return key in db.data

    def _score(self, index: int, key: bytes) -> int | None:
        db = self.shard.dbs[index]
        now = self.shard.now
        if self.policy == "volatile-ttl":
            deadline = db.expires.deadline.get(key)
            return None if deadline is None else -deadline
        word = self.access_word(db, key)
        if word is None:
            return None if key not in db.data else 1 << 62  # never seen: the best candidate
        if self.lfu:
            return 255 - eviction.lfu_counter(word, now, self.decay_time)
        return eviction.idle_ms(word, now)

    def _evict(self, db: Any, key: bytes) -> int:
        """Delete one key as Redis's eviction does: the log's DEL, WATCH, tracking and the
        ``evicted`` notification; the bytes it freed."""
        shard = self.shard
        freed = self.state(db).remove(key)
        db.delete(key)
        self.evicted_keys += 1
        index = shard.dbs.index(db)
        if shard.expire_hook is not None:
            shard.expire_hook(db, key)  # the append-only log's DEL
        if shard.watches:
            shard.watches.touch(index, key)
        if shard.tracking:
            shard.tracking.invalidate([key])
        if shard.notifications:
            shard.notifications.emit(index, EVICTED, b"evicted", key)
        return freed

    def tick(self) -> None:
        """The sweep's tick: measure again any database whose keys changed by a path that
        names no key (a load, DEBUG RELOAD), and go on with an unfinished eviction."""
        for db in self.shard.dbs:
            tracked = self.tracked.get(id(db))
            if len(db.data) != (len(tracked.meta) if tracked is not None else 0):
                self.rebuild()
                break
        self.check()

    def check(self) -> None:
        """After a write or a tick: evict if over the budget, and publish the OOM state."""
        if self.budget:
            self.evict()
        else:
            self._set_full(False)

    def _set_full(self, full: bool) -> None:
        if full != self.full:
            self.full = full
            if BOARD is not None:
                BOARD.set(self.shard.index, full)

    # -- the wrapped table -------------------------------------------------------------------

    def handlers(self, base: dict[bytes, Any]) -> dict[bytes, Any]:
        """``base`` with every command that names keys wrapped: writes evict first (denyoom
        ones) and account for their keys after, reads touch theirs."""
        table = self._tables.get(id(base))
        if table is not None:
            return table
        table = self._tables[id(base)] = dict(base)
        for name, keys in WRITE_KEYS.items():
            if name in table:
                if name[:1] == b"@":
                    table[name] = self._part_write(table[name], keys, name in _GROWING_PARTS)
                else:
                    table[name] = self._client_write(table[name], keys, name in DENYOOM)
        for name, keys in READ_KEYS.items():
            if name in table:
                if name[:1] == b"@":
                    table[name] = self._part_read(table[name], keys)
                else:
                    table[name] = self._client_read(table[name], keys)
        for name, databases in _FLUSHES.items():
            if name in table:
                table[name] = self._flush(table[name], databases)
        return table

    def _before(self, db: Any, keys: list[bytes]) -> list[tuple]:
        data = db.data
        found = []
        for key in keys:
            value = data.get(key)
            if value is None or value.__class__ is bytes:
                found.append((key, None))
            else:
                has_deadline = bool(db.expires) and key in db.expires.deadline
                found.append((key, (value, len(value), has_deadline)))
        return found

    def _after(self, db: Any, before: list[tuple]) -> None:
        for key, was in before:
            self.update(db, key, was)
        if self.budget:
            self.check()

    def _client_write(self, handler: Callable, keys: Callable, denyoom: bool) -> Callable:
        def accounted(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            if denyoom and self.budget:
                self.evict()
            before = self._before(db, keys(argv))
            reply = handler(shard, db, argv, enc)
            self._after(db, before)
            return reply

        return accounted

    def _part_write(self, handler: Callable, keys: Callable, growing: bool) -> Callable:
        def accounted(shard: Any, db: Any, argv: list) -> Any:
            if growing and self.budget:
                self.evict()
            before = self._before(db, keys(argv))
            reply = handler(shard, db, argv)
            if not is_error(reply):
                self._after(db, before)
            return reply

        return accounted

    def _client_read(self, handler: Callable, keys: Callable) -> Callable:
        def touched(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            self.touch(db, keys(argv))
            return reply

        return touched

    def _part_read(self, handler: Callable, keys: Callable) -> Callable:
        def touched(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            self.touch(db, keys(argv))
            return reply

        return touched

    def _flush(self, handler: Callable, databases: Callable) -> Callable:
        def flushed(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            for each in databases(shard, db, argv):
                self.state(each).clear()
            self.pool.clear()
            self.check()
            return reply

        return flushed

    # -- INFO ----------------------------------------------------------------------------------

    def numbers(self) -> dict[str, int]:
        """This shard's figures for INFO and MEMORY STATS (summed over shards)."""
        used = self.used() if self.active else self._estimate()
        return {
            "used_memory": used,
            "used_memory_dataset": self._dataset() if self.active else used,
            "evicted_keys": self.evicted_keys,
            "keys": self.shard.key_count(),
        }

    def _estimate(self) -> int:
        """used_memory while nothing is accounted: measured over a sample of each database's
        keys (bounded work), scaled to its size."""
        total = 0
        for db in self.shard.dbs:
            count = len(db.data)
            if not count:
                continue
            measured = 0
            seen = 0
            for key, value in db.data.items():
                measured += self.entry_size(key, value_size(value), False)
                seen += 1
                if seen >= 64:
                    break
            total += measured * count // seen + sys.getsizeof(db.data)
        return total
