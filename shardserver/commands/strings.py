"""String commands, run inside the shard that owns the key (Redis's ``t_string.c``).

Each handler takes ``(shard, db, argv, enc)``: the shard (for its clock), the client's
database in that shard, the arguments (``argv[0]`` is the command name) and the reply
encoder of the client's protocol; it returns the encoded reply.
"""

from __future__ import annotations

from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, invalid_expire
from shardserver.numbers import LLONG_MAX, parse_int

_NX, _XX, _GET, _KEEPTTL = 1, 2, 4, 8
_EX, _PX, _EXAT, _PXAT = 16, 32, 64, 128
_ANY_EXPIRE = _EX | _PX | _EXAT | _PXAT
_EXPIRE_FLAGS = {b"ex": _EX, b"px": _PX, b"exat": _EXAT, b"pxat": _PXAT}


def get(shard, db, argv, enc) -> bytes:
    value = db.data.get(argv[1])
    if value is None:
        return enc.NULL
    if db.expires:
        value = db.lookup(argv[1], shard.now)
        if value is None:
            return enc.NULL
    if value.__class__ is not bytes:
        return WRONGTYPE
    return b"$%d\r\n%b\r\n" % (len(value), value)


def set_(shard, db, argv, enc) -> bytes:
    if len(argv) == 3:  # the common case: no options
        db.data[argv[1]] = argv[2]
        if db.expires:
            db.expires.discard(argv[1])
        return b"+OK\r\n"
    flags, expire_arg = _parse_set_options(argv)
    if flags < 0:
        return SYNTAX
    deadline = None
    if flags & _ANY_EXPIRE:
        amount = parse_int(expire_arg)
        if amount is None:
            return NOT_INTEGER
        if amount <= 0 or (flags & (_EX | _EXAT) and amount > LLONG_MAX // 1000):
            return invalid_expire("set")
        if flags & (_EX | _EXAT):
            amount *= 1000
        if flags & (_EX | _PX):
            amount += shard.now
        if amount > LLONG_MAX:
            return invalid_expire("set")
        deadline = amount
    key = argv[1]
    old = db.lookup(key, shard.now)
    if flags & _GET and old is not None and old.__class__ is not bytes:
        return WRONGTYPE
    if (flags & _NX and old is not None) or (flags & _XX and old is None):
        if flags & _GET:
            return enc.bulk_or_null(old)
        return enc.NULL
    if flags & _KEEPTTL:
        db.store_keep_deadline(key, argv[2])
    else:
        db.store(key, argv[2], deadline)
    if flags & _GET:
        return enc.bulk_or_null(old)
    return b"+OK\r\n"


def _parse_set_options(argv: list[bytes]) -> tuple[int, bytes | None]:
    """SET's options as Redis parses them: (flags, expire argument), flags -1 on error."""
    flags = 0
    expire_arg = None
    i, n = 3, len(argv)
    while i < n:
        option = argv[i].lower()
        if option == b"nx" and not flags & _XX:
            flags |= _NX
        elif option == b"xx" and not flags & _NX:
            flags |= _XX
        elif option == b"get":
            flags |= _GET
        elif option == b"keepttl" and not flags & _ANY_EXPIRE:
            flags |= _KEEPTTL
        elif option in _EXPIRE_FLAGS and i + 1 < n:
            this = _EXPIRE_FLAGS[option]
            if flags & _KEEPTTL or flags & (_ANY_EXPIRE & ~this):
                return -1, None
            flags |= this
            expire_arg = argv[i + 1]
            i += 1
        else:
            return -1, None
        i += 1
    return flags, expire_arg


K = Route.KEY
ROWS = [
    Command("get", K, get),
    Command("set", K, set_),
]
