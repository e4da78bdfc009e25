"""Hashes (Redis's ``t_hash.c``): the hash value class and its commands.

A hash is a :class:`Hash`, a ``dict`` of field to value (both bytes) in insertion order,
which is a listpack's order: Redis keeps small hashes as a listpack, where an update stays
in place, a new field goes to the end and a deleted one leaves a gap that closes. Its
``big`` flag is what OBJECT ENCODING reports: ``listpack`` until a write makes the hash
longer than ``hash-max-listpack-entries`` or brings a field or value longer than
``hash-max-listpack-value``, then ``hashtable`` for good (Redis never converts back).

Each handler takes ``(shard, db, argv, enc)`` and checks its arguments, the key's type and
the field's contents in Redis's order. A hash emptied by HDEL is deleted, as Redis deletes
it. HINCRBYFLOAT computes in C ``long double`` as INCRBYFLOAT does and is logged as the HSET
of its result, so a replay never depends on float formatting.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

from shardserver import values
from shardserver.commands import floats
from shardserver.commands.scanning import (
    EMPTY_SCAN,
    INVALID_CURSOR,
    cursor_reply,
    parse_cursor,
    scan_container,
)
from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error, wrong_arity
from shardserver.numbers import LLONG_MAX, parse_int

NOT_INTEGER_FIELD = error("ERR hash value is not an integer")
NOT_FLOAT_FIELD = error("ERR hash value is not a float")
NOT_FLOAT = error("ERR value is not a valid float")
NAN_OR_INFINITY_ARGUMENT = error("ERR value is NaN or Infinity")
NAN_OR_INFINITY = error("ERR increment would produce NaN or Infinity")
OVERFLOW = error("ERR increment or decrement would overflow")
#: getRangeLongFromObjectOrReply's text for HRANDFIELD's count, which must be in
#: -LONG_MAX..LONG_MAX (so LLONG_MIN is refused).
COUNT_RANGE = error(
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
)
OUT_OF_RANGE = error("ERR value is out of range")
EMPTY_ARRAY = b"*0\r\n"

#: Field-value pairs per HSET of a rebuild (Redis's AOF_REWRITE_ITEMS_PER_CMD).
REBUILD_PAIRS = 64
#: The most fields HRANDFIELD returns for a negative COUNT. Redis tries any count up to
#: LONG_MAX and dies of it (out of memory, or a reply that never ends); a shard must
#: outlive every command, so beyond this the count is refused as out of range.
MAX_REPEATED_FIELDS = 10_000_000


class _Sampler:
    """The fields of a big hash in a list, so HRANDFIELD picks one in O(1).

    A dict cannot be indexed, and listing it for every pick would be O(N) where Redis is
    O(1). ``fields`` holds every live field once plus, once each, the fields deleted since
    the list was made (``stale``); a pick is a uniform draw from ``fields``, drawn again
    while it is stale. The hash drops its sampler once more than half of ``fields`` is
    stale, so a draw takes fewer than two tries on average and rebuilding the list costs
    O(1) per deletion.
    """

    __slots__ = ("fields", "stale")

    def __init__(self, fields: Iterable[bytes]) -> None:
        self.fields = list(fields)
        self.stale: set[bytes] = set()

    def pick(self) -> bytes:
        fields, stale, rand = self.fields, self.stale, random.random
        while True:
            field = fields[int(rand() * len(fields))]
            if field not in stale:
                return field

    def picks(self, count: int) -> list[bytes]:
        """``count`` fields drawn independently (with repeats)."""
        if not self.stale:
            return random.choices(self.fields, k=count)
        pick = self.pick
        return [pick() for _ in range(count)]


@values.register
class Hash(dict):
    """A Redis hash: field to value, in the order a listpack keeps them.

    Commands change fields through :meth:`put`, :meth:`put_pairs` and :meth:`remove`, which
    keep the random-field sampler (made only for big hashes, at their first HRANDFIELD) in
    step; plain dict reads are free to use.
    """

    __slots__ = ("big", "_sampler")
    redis_type = "hash"

    def __init__(self, fields: Any = (), big: bool = False) -> None:
        super().__init__(fields)
        #: Converted to Redis's ``hashtable`` encoding (for ever).
        self.big = big
        self._sampler: _Sampler | None = None

    # The value protocol (shardserver.values.StoredValue).

    def encoding(self) -> str:
        return "hashtable" if self.big else "listpack"

    def copy(self) -> Hash:
        """A copy in the same encoding, as Redis's COPY makes it."""
        return Hash(self, self.big)

    def to_plain(self) -> tuple[bool, dict[bytes, bytes]]:
        return self.big, dict(self)

    @classmethod
    def from_plain(cls, data: tuple[bool, dict[bytes, bytes]]) -> Hash:
        big, fields = data
        return cls(fields, big)

    def memory_usage(self) -> int:
        """The dict, every field and value object, and the sampler's list if there is one."""
        getsizeof = sys.getsizeof
        size = getsizeof(self) + sum(getsizeof(f) + getsizeof(v) for f, v in self.items())
        if self._sampler is not None:
            size += getsizeof(self._sampler.fields) + getsizeof(self._sampler.stale)
        return size

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        """HSETs of at most :data:`REBUILD_PAIRS` pairs each (read before the hash changes).

        The encoding is not carried: replayed, the hash is a listpack if it fits one, as
        Redis's own rewritten AOF or RDB gives after a restart."""
        items = iter(self.items())
        while True:
            chunk = list(islice(items, REBUILD_PAIRS))
            if not chunk:
                return
            command = [b"HSET", key]
            for field, value in chunk:
                command += (field, value)
            yield command

    # Changes.

    def put(self, field: bytes, value: bytes) -> None:
        sampler = self._sampler
        if sampler is not None and field not in self:
            if field in sampler.stale:
                sampler.stale.discard(field)
            else:
                sampler.fields.append(field)
        self[field] = value

    def put_pairs(self, args: list[bytes], start: int) -> int:
        """Set the pairs ``args[start:]`` (field, value, field, value ...); how many fields
        are new (a field given twice is new once, as in Redis)."""
        before = len(self)
        if self._sampler is None:
            for i in range(start, len(args), 2):
                self[args[i]] = args[i + 1]
        else:
            for i in range(start, len(args), 2):
                self.put(args[i], args[i + 1])
        return len(self) - before

    def remove(self, field: bytes) -> bool:
        """Delete a field; whether it was there."""
        if self.pop(field, None) is None:
            return False
        sampler = self._sampler
        if sampler is not None:
            sampler.stale.add(field)
            if len(sampler.stale) > len(self):
                self._sampler = None
        return True

    # Random fields (HRANDFIELD).

    def sampler(self) -> _Sampler:
        """The big hash's sampler, made the first time (O(N) once, then kept up to date)."""
        if self._sampler is None:
            self._sampler = _Sampler(self)
        return self._sampler

    def random_field(self) -> bytes:
        if not self.big:
            return random.choice(list(self))  # a listpack is walked in Redis too
        return self.sampler().pick()

    def random_fields(self, count: int) -> list[bytes]:
        """``count`` fields drawn with repeats, in random order."""
        if not self.big:
            return random.choices(list(self), k=count)
        return self.sampler().picks(count)

    def distinct_fields(self, count: int) -> list[bytes]:
        """``count`` different fields (fewer than the hash has), as Redis chooses them: a
        listpack's in its order; a hash table's in random order, by listing and sampling
        when ``count`` is over a third of the hash (so O(count) still), else by drawing
        and dropping repeats."""
        if not self.big:
            fields = list(self)
            return [fields[i] for i in sorted(random.sample(range(len(fields)), count))]
        if count * 3 > len(self):
            return random.sample(list(self), count)
        chosen: dict[bytes, None] = {}
        pick = self.sampler().pick
        while len(chosen) < count:
            chosen[pick()] = None
        return list(chosen)


def _limits(shard) -> tuple[int, int]:
    """(hash-max-listpack-entries, hash-max-listpack-value)."""
    settings = shard.settings
    return (
        settings.get("hash-max-listpack-entries", 512),
        settings.get("hash-max-listpack-value", 64),
    )


def _for_write(shard, db, key: bytes) -> Hash | None:
    """The hash at ``key``, made empty and stored if the key is missing (Redis's
    ``hashTypeLookupWriteOrCreate``: callers always set a field next); None if the key holds
    another type."""
    found = db.lookup(key, shard.now)
    if found is None:
        found = Hash()
        db.store(key, found)
    elif found.__class__ is not Hash:
        return None
    return found


def _for_read(shard, db, key: bytes) -> Hash | bytes | None:
    """The hash at ``key``, None if missing, or the WRONGTYPE reply."""
    found = db.lookup(key, shard.now)
    if found is not None and found.__class__ is not Hash:
        return WRONGTYPE
    return found


def _set_one(shard, h: Hash, field: bytes, value: bytes) -> None:
    """Redis's ``hashTypeSet``: a field or value too long for a listpack converts the hash
    first, and any set that leaves it with too many fields converts it after."""
    entries, value_limit = _limits(shard)
    if not h.big and (len(field) > value_limit or len(value) > value_limit):
        h.big = True
    h.put(field, value)
    if not h.big and len(h) > entries:
        h.big = True


def hset(shard, db, argv: list[bytes], enc) -> bytes:
    """HSET (the number of new fields) and HMSET (OK): every argument, even a field already
    there with the same value, counts toward the listpack's value limit (Redis's
    ``hashTypeTryConversion``)."""
    if len(argv) & 1:
        return wrong_arity(argv[0].decode())
    h = _for_write(shard, db, argv[1])
    if h is None:
        return WRONGTYPE
    entries, value_limit = _limits(shard)
    if not h.big and max(map(len, islice(argv, 2, None))) > value_limit:
        h.big = True
    created = h.put_pairs(argv, 2)
    if not h.big and len(h) > entries:
        h.big = True
    if argv[0] == b"hmset":
        return b"+OK\r\n"
    return b":%d\r\n" % created


def hsetnx(shard, db, argv: list[bytes], enc) -> bytes:
    """A field already there changes nothing, not even the encoding."""
    h = _for_write(shard, db, argv[1])
    if h is None:
        return WRONGTYPE
    if argv[2] in h:
        return enc.ZERO
    _set_one(shard, h, argv[2], argv[3])
    return enc.ONE


def hget(shard, db, argv: list[bytes], enc) -> bytes:
    h = _for_read(shard, db, argv[1])
    if h is None:
        return enc.NULL
    if h.__class__ is bytes:
        return h
    return enc.bulk_or_null(h.get(argv[2]))


def hmget(shard, db, argv: list[bytes], enc) -> bytes:
    """One reply per field, nil for those missing (all nil for a missing key)."""
    h = _for_read(shard, db, argv[1])
    if h.__class__ is bytes:
        return h
    if h is None:
        return enc.bulk_array([None] * (len(argv) - 2))
    get = h.get
    return enc.bulk_array([get(field) for field in islice(argv, 2, None)])


def hdel(shard, db, argv: list[bytes], enc) -> bytes:
    """How many of the fields were there; the key goes with its last field."""
    key = argv[1]
    h = _for_read(shard, db, key)
    if h is None:
        return enc.ZERO
    if h.__class__ is bytes:
        return h
    deleted = 0
    for field in islice(argv, 2, None):
        if h.remove(field):
            deleted += 1
            if not h:
                db.delete(key)
                break
    return enc.integer(deleted)


def hlen(shard, db, argv: list[bytes], enc) -> bytes:
    h = _for_read(shard, db, argv[1])
    if h is None:
        return enc.ZERO
    if h.__class__ is bytes:
        return h
    return enc.integer(len(h))


def hstrlen(shard, db, argv: list[bytes], enc) -> bytes:
    """The value's length; 0 for a missing field or key."""
    h = _for_read(shard, db, argv[1])
    if h is None:
        return enc.ZERO
    if h.__class__ is bytes:
        return h
    return enc.integer(len(h.get(argv[2], b"")))


def hexists(shard, db, argv: list[bytes], enc) -> bytes:
    h = _for_read(shard, db, argv[1])
    if h is None:
        return enc.ZERO
    if h.__class__ is bytes:
        return h
    return enc.ONE if argv[2] in h else enc.ZERO


def hkeys(shard, db, argv: list[bytes], enc) -> bytes:
    """An array in RESP3 too (Redis sends a map only for HGETALL)."""
    h = _for_read(shard, db, argv[1])
    if h is None:
        return EMPTY_ARRAY
    if h.__class__ is bytes:
        return h
    return enc.bulk_array(list(h))


def hvals(shard, db, argv: list[bytes], enc) -> bytes:
    h = _for_read(shard, db, argv[1])
    if h is None:
        return EMPTY_ARRAY
    if h.__class__ is bytes:
        return h
    return enc.bulk_array(list(h.values()))


def hgetall(shard, db, argv: list[bytes], enc) -> bytes:
    """A map in RESP3 (an empty one for a missing key), a flat array in RESP2."""
    h = _for_read(shard, db, argv[1])
    if h is None:
        return enc.map([])
    if h.__class__ is bytes:
        return h
    return enc.bulk_map(list(chain.from_iterable(h.items())))


def hincrby(shard, db, argv: list[bytes], enc) -> bytes:
    """Add to a field holding a 64-bit integer (missing: 0), as Redis's ``string2ll`` reads
    it: no spaces, no ``+``, no leading zeros. The increment is checked before the key."""
    increment = parse_int(argv[3])
    if increment is None:
        return NOT_INTEGER
    h = _for_write(shard, db, argv[1])
    if h is None:
        return WRONGTYPE
    field = argv[2]
    current = h.get(field)
    if current is None:
        total = increment
    else:
        number = parse_int(current)
        if number is None:
            return NOT_INTEGER_FIELD
        total = number + increment
        if not -LLONG_MAX - 1 <= total <= LLONG_MAX:
            return OVERFLOW
    _set_one(shard, h, field, b"%d" % total)
    return b":%d\r\n" % total


def hincrbyfloat(shard, db, argv: list[bytes], enc) -> bytes:
    """Add as C ``long double`` and store the sum as INCRBYFLOAT writes it (see
    :mod:`shardserver.commands.floats`); the reply is a bulk string in RESP3 too.

    Redis refuses an infinite increment before it looks at the key, and a field that
    ``strtold`` would not read whole (leading or trailing spaces, text) after."""
    increment = floats.parse(argv[3])
    if increment is None:
        return NOT_FLOAT
    if increment.__class__ is float:  # only the infinities are floats
        return NAN_OR_INFINITY_ARGUMENT
    h = _for_write(shard, db, argv[1])
    if h is None:
        return WRONGTYPE
    field = argv[2]
    current = h.get(field)
    if current is None:
        number: floats.LongDouble | None = floats.ZERO
    else:
        number = floats.parse(current)
        if number is None:
            return NOT_FLOAT_FIELD
    total = floats.add(number, increment)
    if total is None:
        return NAN_OR_INFINITY
    text = floats.format_human(total)
    _set_one(shard, h, field, text)
    return enc.bulk(text)


def propagate_hincrbyfloat(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """HINCRBYFLOAT is logged as the HSET of the value it stored (Redis does the same, so
    that no replay depends on float parsing or formatting)."""
    if reply[:1] == b"-":
        return []
    h = db.lookup(argv[1], shard.now)
    return [[b"HSET", argv[1], argv[2], h[argv[2]]]]


def hrandfield(shard, db, argv: list[bytes], enc) -> bytes:
    """HRANDFIELD key [count [WITHVALUES]].

    Without a count: one field, or nil. A positive count: that many different fields (the
    whole hash, in its order, when it has no more); a negative one: that many drawn with
    repeats. WITHVALUES pairs each field with its value: flat in RESP2, a two-element array
    per pair in RESP3. Redis checks the count, then the options (WITHVALUES halves the
    count's range, since its RESP2 reply is twice as long), then the key and its type; a
    zero count answers an empty array only after that.
    """
    if len(argv) < 3:
        h = _for_read(shard, db, argv[1])
        if h is None:
            return enc.NULL
        if h.__class__ is bytes:
            return h
        return enc.bulk(h.random_field())
    count = parse_int(argv[2])
    if count is None:
        return NOT_INTEGER
    if count < -LLONG_MAX:
        return COUNT_RANGE
    # strcasecmp sees a C string: "withvalues\0junk" is WITHVALUES to Redis.
    if len(argv) > 4 or (len(argv) == 4 and argv[3].partition(b"\0")[0].lower() != b"withvalues"):
        return SYNTAX
    with_values = len(argv) == 4
    if with_values and not -(LLONG_MAX // 2) <= count <= LLONG_MAX // 2:
        return OUT_OF_RANGE
    h = _for_read(shard, db, argv[1])
    if h is None:
        return EMPTY_ARRAY
    if h.__class__ is bytes:
        return h
    if count == 0:
        return EMPTY_ARRAY
    if count < 0 or count == 1:
        if -count > MAX_REPEATED_FIELDS:
            return OUT_OF_RANGE
        fields = h.random_fields(abs(count))
    elif count >= len(h):
        fields = list(h)
    else:
        fields = h.distinct_fields(count)
    return _fields_reply(enc, h, fields, with_values)


def _fields_reply(enc, h: Hash, fields: list[bytes], with_values: bool) -> bytes:
    """The fields (with their values) as HRANDFIELD replies: each distinct field is encoded
    once, however often it was drawn."""
    bulk = enc.bulk
    if not with_values:
        encoded = {field: bulk(field) for field in set(fields)}
        header = b"*%d\r\n" % len(fields)
    elif enc.version == 3:
        encoded = {field: b"*2\r\n" + bulk(field) + bulk(h[field]) for field in set(fields)}
        header = b"*%d\r\n" % len(fields)
    else:
        encoded = {field: bulk(field) + bulk(h[field]) for field in set(fields)}
        header = b"*%d\r\n" % (2 * len(fields))
    return header + b"".join([encoded[field] for field in fields])


def hscan(shard, db, argv: list[bytes], enc) -> bytes:
    """HSCAN key cursor [MATCH pattern] [COUNT count]: field, value, field, value ...

    Redis checks the cursor, then the key (a missing one answers an empty scan whatever the
    options), its type, then the options. A listpack comes back whole with cursor 0; MATCH
    looks at fields only."""
    if parse_cursor(argv[2]) is None:
        return INVALID_CURSOR
    h = _for_read(shard, db, argv[1])
    if h is None:
        return EMPTY_SCAN
    if h.__class__ is bytes:
        return h
    page = scan_container(shard, argv, not h.big, lambda: list(h), h.__contains__)
    if page.__class__ is bytes:
        return page  # type: ignore[return-value]
    cursor, fields = page  # type: ignore[misc]
    items = []
    for field in fields:
        items += (field, h[field])
    return cursor_reply(enc, cursor, items)


K = Route.KEY
ROWS = [
    Command("hdel", K, hdel),
    Command("hexists", K, hexists),
    Command("hget", K, hget),
    Command("hgetall", K, hgetall),
    Command("hincrby", K, hincrby),
    Command(
        "hincrbyfloat",
        K,
        hincrbyfloat,
        propagate=propagate_hincrbyfloat,
        notes="logged as the HSET of its result, as Redis propagates it",
    ),
    Command("hkeys", K, hkeys),
    Command("hlen", K, hlen),
    Command("hmget", K, hmget),
    Command("hmset", K, hset),
    Command(
        "hrandfield",
        K,
        hrandfield,
        notes=f"a negative COUNT beyond {MAX_REPEATED_FIELDS:,} is refused as out of range "
        "(Redis would try to build the reply and run out of memory)",
    ),
    Command(
        "hscan",
        K,
        hscan,
        notes="a listpack whole with cursor 0, as Redis; a hashtable's cursor is a position in "
        "a snapshot of its fields (see scanning.py), not a bucket index",
    ),
    Command("hset", K, hset),
    Command("hsetnx", K, hsetnx),
    Command("hstrlen", K, hstrlen),
    Command("hvals", K, hvals),
]
