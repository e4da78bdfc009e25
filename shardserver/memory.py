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

**Eviction** (``performEvictions``): after a write leaves a shard over its budget
(``maxmemory`` / shards), and before a command flagged ``denyoom`` (or a script) runs on a
shard still over it, keys are evicted by the policy until the shard is under it, the time
spent bounded by ``maxmemory-eviction-tenacity`` (the rest is done at the next command or
the next sweep tick). An eviction is a delete
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


def _first_key_only() -> frozenset[bytes]:
    """Commands whose one key is ``argv[1]`` (GET, SET, HSET ...): their wrappers skip the
    general key lookup."""
    names = set()
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if each.keys is None and each.first_key == 1 and each.last_key == 1:
                names.add(each.name.encode())
    return frozenset(names)


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
FIRST_KEY_ONLY = _first_key_only()
#: Parts that make memory grow (the halves of multi-shard writes): they evict first too.
_GROWING_PARTS = frozenset({b"@mset", b"@put", b"@set-add"})


#: Writes of a key in a database other than the client's: (database index, key).
_OTHER_DATABASE: dict[bytes, Callable[[list], tuple[int, bytes]]] = {
    b"move": lambda argv: (int(argv[2]), argv[1]),
    # on a shard, COPY's argv carries its parsed options: src dst db replace
    b"copy": lambda argv: (argv[-2], argv[2]),
}
#: Writes between two measures of the dicts' tables (they grow by doubling, now and then).
_TABLES_EVERY = 256


def value_size(value: object) -> int:
    """Bytes this process holds for a value, measured (O(length) for a container)."""
    if value.__class__ is bytes:
        return sys.getsizeof(value)
    return value.memory_usage()  # type: ignore[attr-defined]


def _length(value: object) -> int | None:
    """A container's length, or None for a type without one (it is measured each time)."""
    try:
        return len(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def entry_size(key: bytes, value_bytes: int, has_deadline: bool) -> int:
    """What a key costs: its key and value objects, and the entries that hold them."""
    size = sys.getsizeof(key) + value_bytes + KEY_OVERHEAD
    return size + DEADLINE_OVERHEAD if has_deadline else size


class Tracked:
    """One database's sizes and access words (see the module docstring)."""

    __slots__ = ("db", "meta", "keys")

    def __init__(self, db: Any) -> None:
        self.db = db
        self.meta: dict[bytes, int] = {}
        self.keys: list[bytes] = []

    def put(self, key: bytes, size: int, access: int) -> int:
        """Set a key's size and access word (adding it if it is new); the change in bytes."""
        word = self.meta.get(key)
        if word is None:
            self.meta[key] = size << _SIZE_SHIFT | len(self.keys) << 24 | access
            self.keys.append(key)
            return size
        self.meta[key] = size << _SIZE_SHIFT | word & _POSITION | access
        return size - (word >> _SIZE_SHIFT)

    def remove(self, key: bytes) -> int:
        """Forget a key; the bytes it took (0 if it was not here)."""
        word = self.meta.pop(key, None)
        if word is None:
            return 0
        position = (word & _POSITION) >> 24
        last = self.keys.pop()
        if position < len(self.keys):
            self.keys[position] = last
            moved = self.meta[last]
            self.meta[last] = moved & ~_POSITION | position << 24
        return word >> _SIZE_SHIFT

    def total(self) -> int:
        """The bytes of every key here (O(keys): for a flush)."""
        return sum(word >> _SIZE_SHIFT for word in self.meta.values())

    def clear(self) -> None:
        self.meta.clear()
        self.keys.clear()

    def sample(self, count: int, rand: Callable[[], float]) -> list[bytes]:
        keys = self.keys
        size = len(keys)
        if size <= count:
            return list(keys)
        return [keys[int(rand() * size)] for _ in range(count)]


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
        #: Over the budget with nothing to evict (published on the board).
        self.full = False
        #: Over the budget (the next denyoom command evicts first).
        self.over = False
        #: Every key's bytes, and the tables of the dicts that hold them (measured every
        #: :data:`_TABLES_EVERY` writes and by each eviction run).
        self.dataset = 0
        self.tables = 0
        self.writes = 0
        self.pool = eviction.EvictionPool()
        #: Per database (by the Database object's id: SWAPDB swaps the objects, and their
        #: accounting goes with them).
        self.tracked: dict[int, Tracked] = {}
        self._tables: dict[int, dict[bytes, Any]] = {}
        if BOARD is not None:  # a restarted shard: its dead predecessor may have been full
            BOARD.set(shard.index, False)

    def __bool__(self) -> bool:
        return self.active

    # -- settings --------------------------------------------------------------------------

    def configure(self) -> None:
        """Follow maxmemory and its kin (at start and on CONFIG SET)."""
        settings = self.shard.settings
        shards = max(1, int(settings.get("shards", 1) or 1))
        maxmemory = int(settings.get("maxmemory", 0) or 0)
        # The budget is split evenly: slots spread keys evenly over shards.
        self.budget = max(1, maxmemory // shards) if maxmemory else 0
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
                self.dataset = self.tables = 0
            self.shard.refresh_handlers()
        self.check()

    # -- accounting ------------------------------------------------------------------------

    def state(self, db: Any) -> Tracked:
        tracked = self.tracked.get(id(db))
        if tracked is None:
            tracked = self.tracked[id(db)] = Tracked(db)
        return tracked

    def rebuild(self) -> None:
        """Measure every key (when the layer turns on): each starts as if just written."""
        self.tracked = {}
        self.dataset = 0
        fresh = self.new_access(self.shard.now)
        for db in self.shard.dbs:
            tracked = self.state(db)
            deadlines = db.expires.deadline
            for key, value in db.data.items():
                size = entry_size(key, value_size(value), key in deadlines)
                self.dataset += tracked.put(key, size, fresh)
        self.measure_tables()

    def measure_tables(self) -> None:
        """The bytes of the dicts' and lists' own tables (not their entries)."""
        total = 0
        getsizeof = sys.getsizeof
        for tracked in self.tracked.values():
            db = tracked.db
            if db.data:
                total += getsizeof(db.data) + getsizeof(tracked.meta) + getsizeof(tracked.keys)
                if db.expires:
                    total += getsizeof(db.expires.deadline) + getsizeof(db.expires._slot)
        self.tables = total

    def used(self) -> int:
        """This shard's used memory: every key's bytes plus the tables of its dicts."""
        return self.dataset + self.tables

    def update(self, db: Any, key: bytes, before: tuple | None) -> None:
        """After a write that names ``key``: its size and access word now. ``before`` is
        ``(value, length, had a deadline)`` of a container it held before, else None."""
        tracked = self.tracked.get(id(db)) or self.state(db)
        value = db.data.get(key)
        if value is None:
            self.dataset -= tracked.remove(key)
            return
        word = tracked.meta.get(key)
        if value.__class__ is bytes:
            size = sys.getsizeof(key) + sys.getsizeof(value) + KEY_OVERHEAD
        else:
            size = entry_size(key, self._container_size(value, word, before, key), False)
        if db.expires and key in db.expires.deadline:
            size += DEADLINE_OVERHEAD
        now = self.shard.now
        # (now // 1000) & _ACCESS is eviction.lru_clock, inlined: this runs on every write
        if word is None:
            access = eviction.lfu_new(now) if self.lfu else (now // 1000) & _ACCESS
            tracked.meta[key] = size << _SIZE_SHIFT | len(tracked.keys) << 24 | access
            tracked.keys.append(key)
            self.dataset += size
            return
        access = self._lfu_touch(word & _ACCESS, now) if self.lfu else (now // 1000) & _ACCESS
        tracked.meta[key] = size << _SIZE_SHIFT | word & _POSITION | access
        self.dataset += size - (word >> _SIZE_SHIFT)

    def _container_size(
        self, value: Any, word: int | None, before: tuple | None, key: bytes
    ) -> int:
        length = _length(value)
        if (
            word is None
            or length is None
            or length <= EXACT_LENGTH
            or before is None
            or before[0] is not value
        ):
            return value_size(value)
        old_length = before[1]
        if not old_length or self.rng.random() * length < EXACT_LENGTH:
            return value_size(value)
        old_value = (word >> _SIZE_SHIFT) - entry_size(key, 0, before[2])
        return max(0, old_value) * length // old_length

    def forget(self, db: Any, key: bytes) -> None:
        tracked = self.tracked.get(id(db))
        if tracked is not None:
            self.dataset -= tracked.remove(key)

    def expired(self, db: Any, key: bytes) -> None:
        """A key removed for its deadline (the shard's expiry hook while this is on)."""
        self.forget(db, key)

    # -- access ------------------------------------------------------------------------------

    def new_access(self, now: int) -> int:
        return eviction.lfu_new(now) if self.lfu else eviction.lru_clock(now)

    def _lfu_touch(self, access: int, now: int) -> int:
        return eviction.lfu_touch(access, now, self.log_factor, self.decay_time, self.rng.random)

    def touch(self, db: Any, keys: list[bytes]) -> None:
        """Keys a command looked up (Redis's lookupKey without LOOKUP_NOTOUCH)."""
        tracked = self.tracked.get(id(db)) or self.state(db)
        meta = tracked.meta
        now = self.shard.now
        for key in keys:
            word = meta.get(key)
            if word is None:
                if key in db.data:  # a key some path added without a write we saw
                    self.update(db, key, None)
            elif self.lfu:
                meta[key] = word & ~_ACCESS | self._lfu_touch(word & _ACCESS, now)
            else:
                clock = (now // 1000) & _ACCESS
                if word & _ACCESS != clock:
                    meta[key] = word & ~_ACCESS | clock

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

    def evict(self) -> bool:
        """Redis's performEvictions: evict by the policy until under the budget or out of
        time; False when the shard stays over it with nothing it may evict."""
        if not self.budget:
            return True
        self.measure_tables()
        if self.used() <= self.budget:
            self._set_state(False, False)
            return True
        if self.policy == "noeviction":
            self._set_state(True, True)
            return False
        limit_s = eviction.time_limit_us(self.tenacity) / 1e6
        start = time.perf_counter()
        count = 0
        while self.used() > self.budget:
            victim = self._victim()
            if victim is None:
                self._set_state(True, True)
                return False
            self._evict(*victim)
            count += 1
            if count % 16 == 0 and time.perf_counter() - start > limit_s:
                # the rest at the next command or sweep tick (Redis's EVICT_RUNNING)
                self._set_state(True, False)
                return True
        self._set_state(False, False)
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
            sampled = 0
            for index, db in enumerate(dbs):
                if volatile:
                    if db.expires:
                        keys = db.expires.sample(self.samples, self.rng)
                        sampled += len(keys)
                        self._populate(index, db, keys)
                elif db.data:
                    keys = self.state(db).sample(self.samples, self.rng.random)
                    sampled += len(keys)
                    self._populate(index, db, keys)
            if not sampled:
                return None
            found = self.pool.best(self._exists)
            if found is not None:
                return dbs[found[0]], found[1]
        return None

    def _exists(self, index: int, key: bytes) -> bool:
        db = self.shard.dbs[index]
        if self.policy in eviction.VOLATILE_POLICIES:
            return key in db.expires.deadline
        return key in db.data

    def _populate(self, index: int, db: Any, keys: list[bytes]) -> None:
        """Offer sampled keys to the pool with their score (evictionPoolPopulate): the idle
        time, 255 - the LFU counter, or for volatile-ttl the nearer deadline the higher."""
        offer = self.pool.offer
        now = self.shard.now
        if self.policy == "volatile-ttl":
            deadlines = db.expires.deadline
            for key in keys:
                deadline = deadlines.get(key)
                if deadline is not None:
                    offer(-deadline, index, key)
            return
        meta = self.state(db).meta
        lfu, decay = self.lfu, self.decay_time
        for key in keys:
            word = meta.get(key)
            if word is None:
                if key in db.data:  # never seen since it was written: the best candidate
                    offer(1 << 62, index, key)
                continue
            access = word & _ACCESS
            if lfu:
                offer(255 - eviction.lfu_counter(access, now, decay), index, key)
            else:
                offer(eviction.idle_ms(access, now), index, key)

    def _evict(self, db: Any, key: bytes) -> None:
        """Delete one key as Redis's eviction does: the log's DEL, WATCH, tracking and the
        ``evicted`` notification."""
        shard = self.shard
        self.forget(db, key)
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

    def tick(self) -> None:
        """The sweep's tick: measure again any database whose keys changed by a path that
        names no key (a load, DEBUG RELOAD), and go on with an unfinished eviction."""
        for db in self.shard.dbs:
            tracked = self.tracked.get(id(db))
            if len(db.data) != (len(tracked.meta) if tracked is not None else 0):
                self.reconcile(db)
        self.check()

    def reconcile(self, db: Any) -> None:
        """Account for the keys of ``db`` that no write we saw named, and forget those gone
        without one (set differences, in C; the others keep their words)."""
        tracked = self.state(db)
        for key in tracked.meta.keys() - db.data.keys():
            self.dataset -= tracked.remove(key)
        for key in db.data.keys() - tracked.meta.keys():
            self.update(db, key, None)
        self.measure_tables()

    def check(self) -> None:
        """Evict if over the budget, and publish the OOM state."""
        if self.budget:
            self.evict()
        else:
            self._set_state(False, False)

    def wrote(self) -> None:
        """After a write: over the budget now? (The tables are measured now and then.)"""
        self.writes += 1
        if not self.writes % _TABLES_EVERY:
            self.measure_tables()
        if self.dataset + self.tables > self.budget:
            self.evict()
        elif self.over:
            self._set_state(False, False)

    def _set_state(self, over: bool, full: bool) -> None:
        self.over = over
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
            if name not in table:
                continue
            if name[:1] == b"@":
                table[name] = self._part_write(table[name], keys, name in _GROWING_PARTS)
            elif name in FIRST_KEY_ONLY:
                table[name] = self._key_write(table[name], name in DENYOOM)
            else:
                table[name] = self._client_write(table[name], keys, name in DENYOOM)
        for name, keys in READ_KEYS.items():
            if name not in table:
                continue
            if name[:1] == b"@":
                table[name] = self._part_read(table[name], keys)
            elif name in FIRST_KEY_ONLY:
                table[name] = self._key_read(table[name])
            else:
                table[name] = self._client_read(table[name], keys)
        for name, databases in _FLUSHES.items():
            if name in table:
                table[name] = self._flush(table[name], databases)
        for name, where in _OTHER_DATABASE.items():
            if name in table:
                table[name] = self._other_database(table[name], where)
        return table

    @staticmethod
    def _was(db: Any, key: bytes) -> tuple | None:
        """What a write's key held before it, when it was a container (its size is then
        scaled by its length, see the module docstring)."""
        value = db.data.get(key)
        if value is None or value.__class__ is bytes:
            return None
        return value, _length(value), bool(db.expires) and key in db.expires.deadline

    def _key_write(self, handler: Callable, denyoom: bool) -> Callable:
        """A write of ``argv[1]`` alone (SET, HSET, LPUSH ...)."""
        was = self._was

        def accounted(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            if denyoom and self.over:
                self.evict()
            before = was(db, argv[1])
            reply = handler(shard, db, argv, enc)
            self.update(db, argv[1], before)
            if self.budget:
                self.wrote()
            return reply

        return accounted

    def _client_write(self, handler: Callable, keys: Callable, denyoom: bool) -> Callable:
        was = self._was

        def accounted(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            if denyoom and self.over:
                self.evict()
            before = [(key, was(db, key)) for key in keys(argv)]
            reply = handler(shard, db, argv, enc)
            for key, held in before:
                self.update(db, key, held)
            if self.budget:
                self.wrote()
            return reply

        return accounted

    def _part_write(self, handler: Callable, keys: Callable, growing: bool) -> Callable:
        was = self._was

        def accounted(shard: Any, db: Any, argv: list) -> Any:
            if growing and self.over:
                self.evict()
            before = [(key, was(db, key)) for key in keys(argv)]
            reply = handler(shard, db, argv)
            for key, held in before:
                self.update(db, key, held)
            if self.budget:
                self.wrote()
            return reply

        return accounted

    def _other_database(self, handler: Callable, where: Callable) -> Callable:
        """MOVE, COPY ... DB: the key they write in another database."""

        def accounted(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            try:
                index, key = where(argv)
                target = shard.dbs[index] if 0 <= index < len(shard.dbs) else None
            except (ValueError, IndexError, TypeError):
                target = None
            if target is not None and target is not db:
                self.update(target, key, None)
            return reply

        return accounted

    def _key_read(self, handler: Callable) -> Callable:
        """A read of ``argv[1]`` alone (GET, HGET, LRANGE ...): it touches the key."""

        def touched(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            self.touch(db, (argv[1],))
            return reply

        return touched

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
            for each in databases(shard, db, argv):
                tracked = self.state(each)
                self.dataset -= tracked.total()
                tracked.clear()
            reply = handler(shard, db, argv)
            self.pool.clear()
            self.measure_tables()
            self.check()
            return reply

        return flushed

    # -- INFO ----------------------------------------------------------------------------------

    def numbers(self) -> dict[str, int]:
        """This shard's figures for INFO (summed over shards)."""
        if self.active:
            self.measure_tables()
            used, dataset = self.used(), self.dataset
        else:
            used = dataset = self._estimate()
        return {
            "used_memory": used,
            "used_memory_dataset": dataset,
            "evicted_keys": self.evicted_keys,
        }

    def _estimate(self) -> int:
        """used_memory while nothing is accounted: measured over the first keys of each
        database (bounded work), scaled to its size."""
        total = 0
        for db in self.shard.dbs:
            count = len(db.data)
            if not count:
                continue
            measured = seen = 0
            for key, value in db.data.items():
                measured += entry_size(key, value_size(value), False)
                seen += 1
                if seen >= 64:
                    break
            total += measured * count // seen + sys.getsizeof(db.data)
        return total
