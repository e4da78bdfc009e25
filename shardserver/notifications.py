"""Keyspace notifications (``notify-keyspace-events``): which events each write makes, and
how a shard sends them.

Redis publishes, for every change to a key, its event on ``__keyspace@<db>__:<key>`` (the
payload is the event's name) and the key on ``__keyevent@<db>__:<event>`` (K and E choose the
forms; the class letters of :mod:`shardserver.eventclasses` choose the events). Here the shard
that owns the key derives the events of each write it runs and sends them to *every*
acceptor as :data:`shardserver.events.NOTIFIED` events; each acceptor delivers them to its own
subscribers (:meth:`shardserver.pubsub.PubSub.deliver`).

No command's code knows about notifications. :data:`RULES` says, per wire name, how a
write's events follow from its arguments, its reply and a look at the keyspace before and
after it ran (whether each key of the command existed before, and what the key holds now),
in Redis's order (``t_string.c``, ``t_list.c`` ... call ``notifyKeyspaceEvent`` where they
change the key). Around every rule, as Redis's ``dbAdd`` and container deletions do:

- ``new`` (class n) before the first event of a key that did not exist before and does now
  (a rule that replaces its destination, RENAME, COPY, RESTORE, MOVE, names it itself);
- ``del`` (class g) after the event of a write that left a container empty (:meth:`Write.emptied`);
- ``keymiss`` (class m) for each key a read looked for and did not find, before it ran;
- ``expired`` (class x) for each key removed for its deadline, lazily or by the sweep (the
  keyspace's expiry hook).

Like waiters and watches, this costs nothing while the setting names no class: the shard then
runs its usual handler table; otherwise a table whose writes (the key positions the
append-only log uses, :mod:`shardserver.persistence.journal`) and, with ``m``, reads are
wrapped. The wrapped table is only as slow as its looks at the keyspace: a lookup of each of
the command's keys before it runs (which also expires them lazily, as Redis's lookups do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver import eventclasses, events, values
from shardserver.commands import geo
from shardserver.commands.spec import Route, key_positions
from shardserver.commands.table import COMMANDS
from shardserver.errors import is_error
from shardserver.eventclasses import (
    FORMS,
    GENERIC,
    HASH,
    KEY_MISS,
    LIST,
    NEW,
    SET,
    STREAM,
    STRING,
    ZSET,
)
from shardserver.persistence.journal import CLIENT_RULES, PART_RULES

_NILS = frozenset((b"$-1\r\n", b"*-1\r\n", b"_\r\n"))
_EMPTY = frozenset((b"*0\r\n", b"~0\r\n"))


def _nothing(reply: bytes) -> bool:
    """A reply that says nothing was there (a null, an empty array or set)."""
    return reply in _NILS or reply in _EMPTY


def _integer(reply: bytes) -> int | None:
    return int(reply[1:-2]) if reply[:1] == b":" else None


def _looked(reply: Any) -> bool:
    """Whether a command got as far as looking its keys up: any reply but an error about
    its arguments (Redis checks them first; WRONGTYPE comes from a lookup)."""
    return not is_error(reply) or reply.startswith(b"-WRONGTYPE")


class Write:
    """One write that ran: what its rule looks at, and the events the rule names."""

    __slots__ = ("db", "index", "argv", "reply", "keys", "before", "pre", "out")

    def __init__(
        self, shard: Any, db: Any, argv: list, reply: Any, keys: list, before: list, pre: Any
    ) -> None:
        self.db = db
        self.index = shard.dbs.index(db)
        self.argv = argv
        self.reply = reply
        self.keys = keys
        #: Whether each of ``keys`` held something before the write (after lazy expiry).
        self.before = before
        #: What the rule's ``pre`` looked at before the write (None without one).
        self.pre = pre
        #: ``(class, event, key, db index)`` in the order Redis makes them.
        self.out: list[tuple[int, bytes, bytes, int]] = []

    def event(self, flag: int, name: bytes, key: bytes, index: int | None = None) -> None:
        self.out.append((flag, name, key, self.index if index is None else index))

    def existed(self, key: bytes) -> bool:
        for each, was in zip(self.keys, self.before, strict=False):
            if each == key:
                return was
        return False

    def exists(self, key: bytes) -> bool:
        return key in self.db.data

    def emptied(self, key: bytes) -> None:
        """``del`` when the write removed the key (a container it left empty)."""
        if self.existed(key) and key not in self.db.data:
            self.event(GENERIC, b"del", key)


#: A rule: ``derive(write)`` names the events; ``pre(shard, db, argv)`` (optional) looks at
#: what the derivation needs from before the write beyond whether its keys existed.
Derive = Callable[[Write], None]
Pre = Callable[[Any, Any, list], Any]


class Rule:
    __slots__ = ("derive", "pre")

    def __init__(self, derive: Derive, pre: Pre | None = None) -> None:
        self.derive = derive
        self.pre = pre


# -- the rules, by family ---------------------------------------------------------------


def _always(flag: int, name: bytes) -> Derive:
    """The event on the first key whenever the write succeeded."""
    return lambda w: w.event(flag, name, w.keys[0])


def _unless_zero(flag: int, name: bytes, empties: bool = False) -> Derive:
    """The event on the first key unless the reply is ``:0`` (nothing added, removed, set)."""

    def derive(w: Write) -> None:
        if _integer(w.reply) != 0:
            w.event(flag, name, w.keys[0])
            if empties:
                w.emptied(w.keys[0])

    return derive


def _positive(flag: int, name: bytes) -> Derive:
    """LINSERT: the event when the reply is a length (not 0: no list, -1: no pivot)."""

    def derive(w: Write) -> None:
        if (_integer(w.reply) or 0) > 0:
            w.event(flag, name, w.keys[0])

    return derive


def _popped(flag: int, name: bytes) -> Derive:
    """LPOP, SPOP, ZPOPMIN ...: the event when something was popped, then ``del`` when the
    key is empty."""

    def derive(w: Write) -> None:
        if w.before[0] and not _nothing(w.reply):
            w.event(flag, name, w.keys[0])
            w.emptied(w.keys[0])

    return derive


def _first_popped(flag: int, names: tuple[bytes, bytes], side: Callable[[list], bool]) -> Derive:
    """BLPOP, LMPOP, BZPOPMIN, ZMPOP ...: pops from the first of its keys that holds
    something; ``names[side(argv)]`` is the event."""

    def derive(w: Write) -> None:
        if _nothing(w.reply):
            return
        for key, was in zip(w.keys, w.before, strict=True):
            if was:
                w.event(flag, names[side(w.argv)], key)
                w.emptied(key)
                return

    return derive


def _mpop_side(first: bytes, numkeys_at: int) -> Callable[[list], bool]:
    """LMPOP/ZMPOP (and their blocking forms): whether the word after the keys is not
    ``first`` (LEFT, MIN)."""
    return lambda argv: argv[numkeys_at + 1 + int(argv[numkeys_at])].lower() != first


def _store(flag: int, name: bytes) -> Derive:
    """SINTERSTORE, ZUNIONSTORE, SORT ... STORE, BITOP: the event on the destination when it
    holds the result, ``del`` when an empty result removed it."""

    def derive(w: Write) -> None:
        destination = w.keys[0]
        if w.exists(destination):
            w.event(flag, name, destination)
        elif w.before[0]:
            w.event(GENERIC, b"del", destination)

    return derive


def _sort(w: Write) -> None:
    if len(w.keys) > 1:  # SORT ... STORE: its destination is the last key
        w.keys, w.before = w.keys[::-1], w.before[::-1]
        _store(LIST, b"sortstore")(w)


# strings


_EXPIRY_OPTIONS = frozenset((b"ex", b"px", b"exat", b"pxat"))


def _set(w: Write) -> None:
    words = {arg.lower() for arg in w.argv[3:]}
    if b"nx" in words:
        done = not w.before[0]
    elif b"xx" in words:
        done = w.before[0]
    else:
        done = True
    if done:
        w.event(STRING, b"set", w.keys[0])
        if words & _EXPIRY_OPTIONS:
            w.event(GENERIC, b"expire", w.keys[0])


def _set_with_expiry(w: Write) -> None:
    w.event(STRING, b"set", w.keys[0])
    w.event(GENERIC, b"expire", w.keys[0])


def _pairs(flag: int, name: bytes, only_if_one: bool = False) -> Derive:
    """MSET, MSETNX: the event on each key set, in argument order."""

    def derive(w: Write) -> None:
        if not only_if_one or _integer(w.reply) == 1:
            for key in w.argv[1::2]:
                w.event(flag, name, key)

    return derive


def _getdel(w: Write) -> None:
    if w.before[0]:
        w.event(GENERIC, b"del", w.keys[0])


def _getex(w: Write) -> None:
    key = w.keys[0]
    if not w.before[0]:
        return
    if not w.exists(key):  # EXAT/PXAT in the past
        w.event(GENERIC, b"del", key)
        return
    words = {arg.lower() for arg in w.argv[2:]}
    if words & _EXPIRY_OPTIONS:
        w.event(GENERIC, b"expire", key)
    elif b"persist" in words and w.pre is not None:
        w.event(GENERIC, b"persist", key)


def _deadline(shard: Any, db: Any, argv: list) -> int | None:
    return db.deadline_of(argv[1]) if db.lookup(argv[1], shard.now) is not None else None


def _setrange(w: Write) -> None:
    if w.argv[3]:  # an empty value changes nothing
        w.event(STRING, b"setrange", w.keys[0])


def _length(shard: Any, db: Any, argv: list) -> int | None:
    value = db.lookup(argv[1], shard.now)
    return len(value) if value.__class__ is bytes else None


def _setbit(w: Write) -> None:
    """SETBIT: the event when the string changed (Redis 7.0 leaves an unchanged one be): it
    is new or longer, or the bit was another."""
    value = w.db.data.get(w.keys[0])
    if w.pre is None or len(value) != w.pre or w.reply[1:2] != w.argv[3][:1]:
        w.event(STRING, b"setbit", w.keys[0])


def _value(shard: Any, db: Any, argv: list) -> Any:
    return db.lookup(argv[1], shard.now)


def _bitfield(w: Write) -> None:
    """BITFIELD: ``setbit`` when its SET or INCRBY changed the string."""
    key = w.keys[0]
    if key in w.db.data and w.db.data[key] != w.pre:
        w.event(STRING, b"setbit", key)


# generic


def _del(w: Write) -> None:
    """DEL, UNLINK (and their parts): ``del`` of each key that was there, once."""
    for key in dict.fromkeys(key for key, was in zip(w.keys, w.before, strict=True) if was):
        w.event(GENERIC, b"del", key)


def _expire(w: Write) -> None:
    if _integer(w.reply) == 1:
        key = w.keys[0]
        w.event(GENERIC, b"expire" if w.exists(key) else b"del", key)


def _rename(w: Write) -> None:
    src, dst = w.keys
    if src == dst or _integer(w.reply) == 0:
        return
    w.event(NEW, b"new", dst)
    w.event(GENERIC, b"rename_from", src)
    w.event(GENERIC, b"rename_to", dst)


def _move(w: Write) -> None:
    if _integer(w.reply) == 1:
        target = int(w.argv[2])
        w.event(NEW, b"new", w.keys[0], target)
        w.event(GENERIC, b"move_from", w.keys[0])
        w.event(GENERIC, b"move_to", w.keys[0], target)


def _copy(w: Write) -> None:
    if _integer(w.reply) == 1:  # argv: copy src dst target-db replace
        w.event(NEW, b"new", w.argv[2], w.argv[3])
        w.event(GENERIC, b"copy_to", w.argv[2], w.argv[3])


def _restore(w: Write) -> None:
    key = w.keys[0]
    if w.exists(key):
        w.event(NEW, b"new", key)
        w.event(GENERIC, b"restore", key)
    elif w.before[0]:  # REPLACE with a deadline already past: the old value went
        w.event(GENERIC, b"del", key)


# lists


def _pushx(name: bytes) -> Derive:
    def derive(w: Write) -> None:
        if w.before[0]:
            w.event(LIST, name, w.keys[0])

    return derive


def _ltrim(w: Write) -> None:
    if w.before[0]:
        w.event(LIST, b"ltrim", w.keys[0])
        w.emptied(w.keys[0])


def _move_element(from_left: Callable[[list], bool], to_left: Callable[[list], bool]) -> Derive:
    """LMOVE, RPOPLPUSH and their blocking forms: the push on the destination, then the pop
    on the source (Redis pushes first), then ``del`` of an emptied source."""

    def derive(w: Write) -> None:
        if _nothing(w.reply):
            return
        src, dst = w.keys[0], w.keys[1]
        w.event(LIST, b"lpush" if to_left(w.argv) else b"rpush", dst)
        w.event(LIST, b"lpop" if from_left(w.argv) else b"rpop", src)
        w.emptied(src)

    return derive


def _word_is_left(at: int) -> Callable[[list], bool]:
    return lambda argv: argv[at].lower() == b"left"


# sets


def _smove_pre(shard: Any, db: Any, argv: list) -> bool:
    """Whether the destination already held the member."""
    value = db.lookup(argv[2], shard.now)
    return value is not None and argv[3] in value


def _smove(w: Write) -> None:
    src, dst = w.keys
    if _integer(w.reply) != 1 or src == dst:
        return
    w.event(SET, b"srem", src)
    w.emptied(src)
    if not w.pre:
        w.event(SET, b"sadd", dst)


# sorted sets


_ZADD_OPTIONS = frozenset((b"nx", b"xx", b"gt", b"lt", b"ch", b"incr"))


def _zadd_members(argv: list) -> tuple[bool, list[bytes]]:
    """ZADD's INCR option, and its members."""
    i = 2
    incr = False
    while i < len(argv) and argv[i].lower() in _ZADD_OPTIONS:
        incr = incr or argv[i].lower() == b"incr"
        i += 1
    return incr, argv[i + 1 :: 2]


def _scores(db: Any, key: bytes, members: list[bytes]) -> list | None:
    value = db.data.get(key)
    if value is None or value.__class__ is bytes:
        return None
    try:
        return [value.get(member) for member in members]
    except (AttributeError, TypeError):  # another type: the write answers WRONGTYPE
        return None


def _zadd_pre(shard: Any, db: Any, argv: list) -> list | None:
    db.lookup(argv[1], shard.now)
    return _scores(db, argv[1], _zadd_members(argv)[1])


def _zadd(w: Write) -> None:
    """ZADD, ZINCRBY: the event when some score changed or some member came (what Redis's
    ``zsetAdd`` reports as added or updated)."""
    if w.argv[0] == b"zincrby":
        incr, members = True, [w.argv[3]]
    else:
        incr, members = _zadd_members(w.argv)
    if _scores(w.db, w.keys[0], members) != w.pre:
        w.event(ZSET, b"zincr" if incr else b"zadd", w.keys[0])


def _geoadd_pre(shard: Any, db: Any, argv: list) -> list | None:
    db.lookup(argv[1], shard.now)
    return _scores(db, argv[1], geo.geoadd_members(argv))


def _geoadd(w: Write) -> None:
    """GEOADD is ZADD to Redis (it runs zaddCommand): ``zadd`` when a score changed."""
    if _scores(w.db, w.keys[0], geo.geoadd_members(w.argv)) != w.pre:
        w.event(ZSET, b"zadd", w.keys[0])


def _georadius(w: Write) -> None:
    """GEORADIUS[BYMEMBER] ... STORE: a STORE command's events, on the key after STORE."""
    at = geo.store_key_at(w.argv)
    if at is not None:
        destination = w.argv[at]
        if w.exists(destination):
            w.event(ZSET, b"georadiusstore", destination)
        elif w.existed(destination):
            w.event(GENERIC, b"del", destination)


def _zincrby_pre(shard: Any, db: Any, argv: list) -> list | None:
    db.lookup(argv[1], shard.now)
    return _scores(db, argv[1], [argv[3]])


# internal parts of multi-shard writes


def _put(w: Write) -> None:
    """``@put key value deadline [event]``: a plan's write of a whole key (the event is the
    command's: ``rename_to``, ``sunionstore`` ...; None removes the key: ``rename_from``)."""
    if len(w.argv) < 5:
        return
    name, key = w.argv[4], w.argv[1]
    if name in _REPLACING:
        w.event(NEW, b"new", key)
    w.event(_PUT_CLASSES.get(name, GENERIC), name, key)


_REPLACING = frozenset((b"rename_to", b"copy_to", b"restore"))
_PUT_CLASSES = {
    b"set": STRING,
    b"pfadd": STRING,
    b"sortstore": LIST,
    b"sinterstore": SET,
    b"sunionstore": SET,
    b"sdiffstore": SET,
    b"zunionstore": ZSET,
    b"zinterstore": ZSET,
    b"zdiffstore": ZSET,
    b"zrangestore": ZSET,
    b"geosearchstore": ZSET,
    b"georadiusstore": ZSET,
}


def _set_add(w: Write) -> None:
    if w.reply:
        w.event(SET, b"sadd", w.keys[0])


def _set_rem(w: Write) -> None:
    if w.reply:
        w.event(SET, b"srem", w.keys[0])
        w.emptied(w.keys[0])


def _mset_part(w: Write) -> None:
    for key in w.argv[1::2]:
        w.event(STRING, b"set", key)


_LEFT_FIRST = (b"lpop", b"rpop")
_MIN_FIRST = (b"zpopmin", b"zpopmax")

#: How each write's events follow (wire names; a write missing here makes none: FLUSHDB,
#: SWAPDB and the like, as in Redis).
# -- streams: xadd (then xtrim), xtrim, xdel, the xgroup-* events, xsetid, and the
# xgroup-createconsumer of a consumer that XREADGROUP, XCLAIM or XAUTOCLAIM made on the way


def _stream_length(shard: Any, db: Any, argv: list) -> int:
    found = db.data.get(argv[1])
    return getattr(found, "length", 0)


def _xadd(w: Write) -> None:
    if w.reply[:1] != b"$" or w.reply in _NILS:
        return
    w.event(STREAM, b"xadd", w.keys[0])
    if w.db.data[w.keys[0]].length < w.pre + 1:
        w.event(STREAM, b"xtrim", w.keys[0])


def _consumers(key_at: int, group_at: int, consumer_at: int) -> Pre:
    """Whether the named consumer existed before, for a command naming one key."""

    def pre(shard: Any, db: Any, argv: list) -> list[bool]:
        return [_has_consumer(db, argv[key_at], argv[group_at], argv[consumer_at])]

    return pre


def _has_consumer(db: Any, key: bytes, group: bytes, consumer: bytes) -> bool:
    found = db.data.get(key)
    groups = getattr(found, "groups", None)
    return bool(groups) and group in groups and consumer in groups[group].consumers


def _made_consumer(key_at: int, group_at: int, consumer_at: int) -> Derive:
    def derive(w: Write) -> None:
        argv = w.argv
        if not w.pre[0] and _has_consumer(w.db, argv[key_at], argv[group_at], argv[consumer_at]):
            w.event(STREAM, b"xgroup-createconsumer", argv[key_at])

    return derive


def _group_read_pre(shard: Any, db: Any, argv: list) -> list[bool]:
    group, consumer, keys = _group_read_names(argv)
    return [_has_consumer(db, key, group, consumer) for key in keys]


def _group_read_names(argv: list) -> tuple[bytes, bytes, list[bytes]]:
    words = [word.lower() for word in argv]
    if b"group" not in words or b"streams" not in words:
        return b"", b"", []  # refused before it ran
    group_at = words.index(b"group")
    streams_at = words.index(b"streams") + 1
    keys = argv[streams_at : streams_at + (len(argv) - streams_at) // 2]
    return argv[group_at + 1], argv[group_at + 2], keys


def _xreadgroup(w: Write) -> None:
    group, consumer, keys = _group_read_names(w.argv)
    for key, had in zip(keys, w.pre, strict=False):
        if not had and _has_consumer(w.db, key, group, consumer):
            w.event(STREAM, b"xgroup-createconsumer", key)


def _ok(flag: int, name: bytes) -> Derive:
    """The event when the reply is +OK."""

    def derive(w: Write) -> None:
        if w.reply == b"+OK\r\n":
            w.event(flag, name, w.keys[0])

    return derive


def _delconsumer(w: Write) -> None:
    if w.pre[0] and not is_error(w.reply):
        w.event(STREAM, b"xgroup-delconsumer", w.keys[0])


RULES: dict[bytes, Rule] = {
    name.encode() if isinstance(name, str) else name: rule if isinstance(rule, Rule) else Rule(rule)
    for name, rule in {
        # strings
        "set": _set,
        "setnx": _unless_zero(STRING, b"set"),
        "setex": _set_with_expiry,
        "psetex": _set_with_expiry,
        "getset": _always(STRING, b"set"),
        "mset": _pairs(STRING, b"set"),
        "msetnx": _pairs(STRING, b"set", only_if_one=True),
        "getdel": _getdel,
        "getex": Rule(_getex, _deadline),
        "append": _always(STRING, b"append"),
        "setrange": _setrange,
        "incr": _always(STRING, b"incrby"),
        "decr": _always(STRING, b"incrby"),
        "incrby": _always(STRING, b"incrby"),
        "decrby": _always(STRING, b"incrby"),
        "incrbyfloat": _always(STRING, b"incrbyfloat"),
        "setbit": Rule(_setbit, _length),
        "bitfield": Rule(_bitfield, _value),
        "bitop": _store(STRING, b"set"),
        # HyperLogLog: PFMERGE names its change "pfadd" too, as Redis does
        "pfadd": _unless_zero(STRING, b"pfadd"),
        "pfmerge": _always(STRING, b"pfadd"),
        # generic
        "del": _del,
        "unlink": _del,
        "expire": _expire,
        "pexpire": _expire,
        "expireat": _expire,
        "pexpireat": _expire,
        "persist": _unless_zero(GENERIC, b"persist"),
        "rename": _rename,
        "renamenx": _rename,
        "move": _move,
        "copy": _copy,
        "restore": _restore,
        "sort": _sort,
        # lists
        "lpush": _always(LIST, b"lpush"),
        "rpush": _always(LIST, b"rpush"),
        "lpushx": _pushx(b"lpush"),
        "rpushx": _pushx(b"rpush"),
        "linsert": _positive(LIST, b"linsert"),
        "lset": _always(LIST, b"lset"),
        "lrem": _unless_zero(LIST, b"lrem", empties=True),
        "ltrim": _ltrim,
        "lpop": _popped(LIST, b"lpop"),
        "rpop": _popped(LIST, b"rpop"),
        "blpop": _first_popped(LIST, _LEFT_FIRST, lambda argv: False),
        "brpop": _first_popped(LIST, _LEFT_FIRST, lambda argv: True),
        "lmpop": _first_popped(LIST, _LEFT_FIRST, _mpop_side(b"left", 1)),
        "blmpop": _first_popped(LIST, _LEFT_FIRST, _mpop_side(b"left", 2)),
        "lmove": _move_element(_word_is_left(3), _word_is_left(4)),
        "blmove": _move_element(_word_is_left(3), _word_is_left(4)),
        "rpoplpush": _move_element(lambda argv: False, lambda argv: True),
        "brpoplpush": _move_element(lambda argv: False, lambda argv: True),
        # sets
        "sadd": _unless_zero(SET, b"sadd"),
        "srem": _unless_zero(SET, b"srem", empties=True),
        "spop": _popped(SET, b"spop"),
        "smove": Rule(_smove, _smove_pre),
        "sinterstore": _store(SET, b"sinterstore"),
        "sunionstore": _store(SET, b"sunionstore"),
        "sdiffstore": _store(SET, b"sdiffstore"),
        # hashes
        "hset": _always(HASH, b"hset"),
        "hmset": _always(HASH, b"hset"),
        "hsetnx": _unless_zero(HASH, b"hset"),
        "hdel": _unless_zero(HASH, b"hdel", empties=True),
        "hincrby": _always(HASH, b"hincrby"),
        "hincrbyfloat": _always(HASH, b"hincrbyfloat"),
        # sorted sets
        "zadd": Rule(_zadd, _zadd_pre),
        "zincrby": Rule(_zadd, _zincrby_pre),
        "zrem": _unless_zero(ZSET, b"zrem", empties=True),
        "zremrangebyscore": _unless_zero(ZSET, b"zremrangebyscore", empties=True),
        "zremrangebyrank": _unless_zero(ZSET, b"zremrangebyrank", empties=True),
        "zremrangebylex": _unless_zero(ZSET, b"zremrangebylex", empties=True),
        "zpopmin": _popped(ZSET, b"zpopmin"),
        "zpopmax": _popped(ZSET, b"zpopmax"),
        "bzpopmin": _first_popped(ZSET, _MIN_FIRST, lambda argv: False),
        "bzpopmax": _first_popped(ZSET, _MIN_FIRST, lambda argv: True),
        "zmpop": _first_popped(ZSET, _MIN_FIRST, _mpop_side(b"min", 1)),
        "bzmpop": _first_popped(ZSET, _MIN_FIRST, _mpop_side(b"min", 2)),
        "zunionstore": _store(ZSET, b"zunionstore"),
        "zinterstore": _store(ZSET, b"zinterstore"),
        "zdiffstore": _store(ZSET, b"zdiffstore"),
        "zrangestore": _store(ZSET, b"zrangestore"),
        # geo: sorted sets
        "geoadd": Rule(_geoadd, _geoadd_pre),
        "geosearchstore": _store(ZSET, b"geosearchstore"),
        "georadius": _georadius,
        "georadiusbymember": _georadius,
        # streams
        "xadd": Rule(_xadd, _stream_length),
        "xtrim": _unless_zero(STREAM, b"xtrim"),
        "xdel": _unless_zero(STREAM, b"xdel"),
        "xgroup|create": _ok(STREAM, b"xgroup-create"),
        "xgroup|setid": _ok(STREAM, b"xgroup-setid"),
        "xgroup|destroy": _unless_zero(STREAM, b"xgroup-destroy"),
        "xgroup|createconsumer": _unless_zero(STREAM, b"xgroup-createconsumer"),
        "xgroup|delconsumer": Rule(_delconsumer, _consumers(2, 3, 4)),
        "xsetid": _ok(STREAM, b"xsetid"),
        "xreadgroup": Rule(_xreadgroup, _group_read_pre),
        "xclaim": Rule(_made_consumer(1, 2, 3), _consumers(1, 2, 3)),
        "xautoclaim": Rule(_made_consumer(1, 2, 3), _consumers(1, 2, 3)),
        # the parts of multi-shard writes
        "@mset": _mset_part,
        "@del": _del,
        "@unlink": _del,
        "@put": _put,
        "@set-add": _set_add,
        "@set-rem": _set_rem,
    }.items()
}


#: Keys of parts that write but are no client command (the journal's, and SMOVE's halves).
_PART_KEYS: dict[bytes, Callable[[list], list[bytes]]] = {
    **{name: keys for name, (_rule, keys) in PART_RULES.items()},
    b"@set-add": lambda argv: [argv[1]],
    b"@set-rem": lambda argv: [argv[1]],
}

#: Writes that read keys as Redis's ``lookupKeyRead`` does (a key miss for each one absent):
#: which of their keys (by index among the key positions) they read.
_READING_WRITES: dict[bytes, Callable[[list, int], range]] = {
    **{
        name: lambda argv, count: range(1, count)
        for name in (
            b"sinterstore",
            b"sunionstore",
            b"sdiffstore",
            b"zunionstore",
            b"zinterstore",
            b"zdiffstore",
            b"zrangestore",
            b"bitop",
        )
    },  # fmt: skip
    b"sort": lambda argv, count: range(1),
    b"copy": lambda argv, count: range(1),
    b"getdel": lambda argv, count: range(count),
    b"getex": lambda argv, count: range(count),
    b"getset": lambda argv, count: range(count),
    b"set": lambda argv, count: range(count if b"get" in map(bytes.lower, argv[3:]) else 0),
}
#: Multi-key reads that stop at the first key of another type (WRONGTYPE), as Redis's loops
#: do: the types they read. Key misses are reported up to that key only.
_READ_TYPES: dict[bytes, tuple[bytes, ...]] = {
    **dict.fromkeys(
        (b"sinter", b"sunion", b"sdiff", b"sintercard", b"sinterstore", b"sunionstore",
         b"sdiffstore"),
        (b"set",),
    ),
    **dict.fromkeys(
        (b"zinter", b"zunion", b"zdiff", b"zintercard", b"zunionstore", b"zinterstore",
         b"zdiffstore"),
        (b"zset", b"set"),
    ),
    b"bitop": (b"string",),
    b"lcs": (b"string",),
}  # fmt: skip

#: Reads that look for no key in Redis's sense (no key miss).
_NO_MISS = frozenset((b"object|encoding", b"object|freq", b"object|idletime", b"object|refcount",
                      b"memory|usage"))  # fmt: skip


def _read_keys() -> dict[bytes, Callable[[list], list[bytes]]]:
    """Every read that runs on a shard, by wire name: where its keys are."""
    reads: dict[bytes, Callable[[list], list[bytes]]] = {}
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            name = each.name.encode()
            if (
                "readonly" in each.flags
                and each.run is not None
                and each.route is not Route.LOCAL
                and name not in _NO_MISS
            ):
                reads[name] = lambda argv, each=each: [argv[i] for i in key_positions(each, argv)]
    reads[b"@mget"] = lambda argv: argv[1:]
    return reads


READ_KEYS = _read_keys()


class Notifications:
    """One shard's keyspace notifications: the setting's classes, and the handlers that
    make them."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.flags = 0
        #: Every acceptor's stream: each one's subscribers hear every notification.
        self.streams: range = range(1)
        self._tables: dict[tuple[int, int], dict[bytes, Any]] = {}

    def __bool__(self) -> bool:
        return eventclasses.emitting(self.flags)

    def configure(self) -> None:
        """Follow ``notify-keyspace-events`` (at start and on CONFIG SET)."""
        settings = self.shard.settings
        flags = settings.get("notify-keyspace-events", 0) or 0
        self.streams = range(int(settings.get("acceptors", 1) or 1))
        if flags != self.flags:
            self.flags = flags
            self.shard.refresh_handlers()

    # -- sending ---------------------------------------------------------------------------

    def emit(self, index: int, flag: int, name: bytes, key: bytes) -> None:
        """One event of class ``flag`` on ``key`` of database ``index``, if its class is on."""
        flags = self.flags
        if flags & flag:
            told = (events.NOTIFIED, flags & FORMS, index, name, key)
            if len(self.streams) == 1:
                self.shard.events.append((0, told))
            else:
                self.shard.events.extend([(stream, told) for stream in self.streams])

    def expired(self, db: Any, key: bytes) -> None:
        """A key removed for its deadline (the shard's expiry hook while notifying)."""
        self.emit(self.shard.dbs.index(db), eventclasses.EXPIRED, b"expired", key)

    # -- the wrapped table -----------------------------------------------------------------

    def handlers(self, base: dict[bytes, Any]) -> dict[bytes, Any]:
        """``base`` with every write wrapped to notify its events (and, with class m, every
        read to notify its key misses)."""
        misses = bool(self.flags & KEY_MISS)
        table = self._tables.get((id(base), misses))
        if table is None:
            table = dict(base)
            for name, rule in RULES.items():
                if name not in table:
                    continue
                if name in CLIENT_RULES:
                    keys = CLIENT_RULES[name][1]
                    reading = _READING_WRITES.get(name) if misses else None
                    table[name] = self._client_write(table[name], rule, keys, reading)
                elif name in _PART_KEYS:
                    table[name] = self._part_write(table[name], rule, _PART_KEYS[name])
            if misses:
                for name, keys in READ_KEYS.items():
                    if name in table:
                        table[name] = self._read(table[name], keys, _READ_TYPES.get(name))
            self._tables[(id(base), misses)] = table
        return table

    def _looked_up(self, db: Any, keys: list[bytes]) -> list[Any]:
        """The value of each key (None: missing), looked up as a command would."""
        now = self.shard.now
        return [db.lookup(key, now) for key in keys]

    def _missed(
        self, db: Any, keys: list[bytes], found: list[Any], types: tuple[bytes, ...] | None
    ) -> None:
        """``keymiss`` of each key not found, up to the first of a type the command does
        not read (it stops there with WRONGTYPE)."""
        index = self.shard.dbs.index(db)
        for key, value in zip(keys, found, strict=True):
            if value is None:
                self.emit(index, KEY_MISS, b"keymiss", key)
            elif types is not None and values.type_name(value) not in types:
                return

    def _client_write(
        self, handler: Callable, rule: Rule, keys_of: Callable, reading: Callable | None
    ) -> Callable:
        def notifying(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            keys = keys_of(argv)
            found = self._looked_up(db, keys)
            before = [value is not None for value in found]
            pre = rule.pre(shard, db, argv) if rule.pre is not None else None
            reply = handler(shard, db, argv, enc)
            if reading is not None and _looked(reply):
                read = reading(argv, len(keys))
                read_keys = [keys[i] for i in read]
                types = _READ_TYPES.get(argv[0])
                self._missed(db, read_keys, [found[i] for i in read], types)
            if not is_error(reply):
                self._notify(Write(shard, db, argv, reply, keys, before, pre), rule)
            return reply

        return notifying

    def _part_write(self, handler: Callable, rule: Rule, keys_of: Callable) -> Callable:
        def notifying(shard: Any, db: Any, argv: list) -> Any:
            keys = keys_of(argv)
            before = [value is not None for value in self._looked_up(db, keys)]
            reply = handler(shard, db, argv)
            if not is_error(reply):
                self._notify(Write(shard, db, argv, reply, keys, before, None), rule)
            return reply

        return notifying

    def _read(self, handler: Callable, keys_of: Callable, types: tuple | None) -> Callable:
        def missing(shard: Any, db: Any, argv: list, *enc: Any) -> Any:
            keys = keys_of(argv)
            found = self._looked_up(db, keys)
            reply = handler(shard, db, argv, *enc)
            if _looked(reply):
                self._missed(db, keys, found, types)
            return reply

        return missing

    def _notify(self, write: Write, rule: Rule) -> None:
        """Send what the rule named, with ``new`` before the first event of each key that
        the write created."""
        rule.derive(write)
        if not write.out:
            return
        emit = self.emit
        if self.flags & NEW and not all(write.before):
            dbs = self.shard.dbs
            seen: set[tuple[int, bytes]] = set()
            for flag, name, key, index in write.out:
                where = (index, key)
                if where not in seen:
                    seen.add(where)
                    if (
                        flag != NEW
                        and index == write.index
                        and not write.existed(key)
                        and key in dbs[index].data
                    ):
                        emit(index, NEW, b"new", key)
                emit(index, flag, name, key)
            return
        for flag, name, key, index in write.out:
            emit(index, flag, name, key)
