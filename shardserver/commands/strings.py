"""String commands, run inside the shard that owns the key (Redis's ``t_string.c``).

Each handler takes ``(shard, db, argv, enc)``: the shard (for its clock and settings), the
client's database in that shard, the arguments (``argv[0]`` is the command name) and the reply
encoder of the client's protocol; it returns the encoded reply.

A string is a ``bytes`` value in ``db.data``; any other class there is another Redis type and
gets the WRONGTYPE error. Each command checks its arguments, the key's type and its limits in
the order Redis does, so that a command wrong in several ways gets Redis's error. Commands that
change a string in place (APPEND, SETRANGE, INCR and friends) keep its deadline, as Redis's
``dbOverwrite`` does; those that set a new value (GETSET, SETEX) replace it.
"""

from __future__ import annotations

from shardserver import values
from shardserver.commands import floats
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Propagate, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error, invalid_expire
from shardserver.numbers import LLONG_MAX, LLONG_MIN, parse_int

OVERFLOW = error("ERR increment or decrement would overflow")
DECREMENT_OVERFLOW = error("ERR decrement would overflow")
NOT_FLOAT = error("ERR value is not a valid float")
NAN_OR_INFINITY = error("ERR increment would produce NaN or Infinity")
TOO_LONG = error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
OFFSET_RANGE = error("ERR offset is out of range")
LCS_WRONGTYPE = error("ERR The specified keys must contain string values")
LCS_LEN_AND_IDX = error("ERR If you want both the length and indexes, please just use IDX.")
LCS_TOO_BIG = error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
EMPTY_BULK = b"$0\r\n\r\n"

_NX, _XX, _GET, _KEEPTTL = 1, 2, 4, 8
_EX, _PX, _EXAT, _PXAT = 16, 32, 64, 128
_PERSIST = 256
_ANY_EXPIRE = _EX | _PX | _EXAT | _PXAT
_EXPIRE_FLAGS = {b"ex": _EX, b"px": _PX, b"exat": _EXAT, b"pxat": _PXAT}


def _option(arg: bytes) -> bytes:
    """An option word as Redis compares it: lower-cased, and cut at a NUL byte, because
    Redis compares options as C strings (``EX\\0junk`` is EX to Redis)."""
    return arg.partition(b"\0")[0].lower()


def get(shard, db, argv: list[bytes], enc) -> bytes:
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


def set_(shard, db, argv: list[bytes], enc) -> bytes:
    if len(argv) == 3:  # the common case: no options
        db.data[argv[1]] = argv[2]
        if db.expires:
            db.expires.discard(argv[1])
        return b"+OK\r\n"
    flags, expire_arg = _parse_options(argv, 3, for_set=True)
    if flags < 0:
        return SYNTAX
    deadline = None
    if expire_arg is not None:
        deadline = _deadline(flags, expire_arg, shard.clock(), "set")
        if deadline.__class__ is bytes:
            return deadline
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


def _parse_options(argv: list[bytes], start: int, for_set: bool) -> tuple[int, bytes | None]:
    """SET's or GETEX's options as Redis's ``parseExtendedStringArgumentsOrReply`` reads
    them: (flags, expire argument), flags -1 on a syntax error.

    An option may repeat, and EX 1 EX 2 keeps the last value; conflicting ones (NX with XX,
    two kinds of expiry, KEEPTTL or PERSIST with an expiry) are syntax errors.
    """
    flags = 0
    expire_arg = None
    i, n = start, len(argv)
    while i < n:
        option = _option(argv[i])
        if for_set and option == b"nx" and not flags & _XX:
            flags |= _NX
        elif for_set and option == b"xx" and not flags & _NX:
            flags |= _XX
        elif for_set and option == b"get":
            flags |= _GET
        elif for_set and option == b"keepttl" and not flags & _ANY_EXPIRE:
            flags |= _KEEPTTL
        elif not for_set and option == b"persist" and not flags & _ANY_EXPIRE:
            flags |= _PERSIST
        elif option in _EXPIRE_FLAGS and i + 1 < n:
            this = _EXPIRE_FLAGS[option]
            if flags & (_KEEPTTL | _PERSIST | (_ANY_EXPIRE & ~this)):
                return -1, None
            flags |= this
            expire_arg = argv[i + 1]
            i += 1
        else:
            return -1, None
        i += 1
    return flags, expire_arg


def _deadline(flags: int, expire_arg: bytes, now: int, command: str) -> int | bytes:
    """The absolute deadline (Unix ms) an EX/PX/EXAT/PXAT argument names, or the error
    reply: Redis refuses values <= 0 and any that would overflow a signed 64-bit ms time."""
    amount = parse_int(expire_arg)
    if amount is None:
        return NOT_INTEGER
    if amount <= 0 or (flags & (_EX | _EXAT) and amount > LLONG_MAX // 1000):
        return invalid_expire(command)
    if flags & (_EX | _EXAT):
        amount *= 1000
    if flags & (_EX | _PX):
        amount += now
    if amount > LLONG_MAX:
        return invalid_expire(command)
    return amount


def setnx(shard, db, argv: list[bytes], enc) -> bytes:
    """SETNX answers 1 or 0 rather than SET NX's OK or nil; any type counts as present."""
    if db.lookup(argv[1], shard.now) is not None:
        return enc.ZERO
    db.store(argv[1], argv[2])
    return enc.ONE


def setex(shard, db, argv: list[bytes], enc) -> bytes:
    return _set_expiring(shard, db, argv, _EX)


def psetex(shard, db, argv: list[bytes], enc) -> bytes:
    return _set_expiring(shard, db, argv, _PX)


def _set_expiring(shard, db, argv: list[bytes], flags: int) -> bytes:
    """SETEX and PSETEX: SET with EX or PX, the time before the value (any type replaced)."""
    deadline = _deadline(flags, argv[2], shard.clock(), argv[0].decode())
    if deadline.__class__ is bytes:
        return deadline
    db.store(argv[1], argv[3], deadline)
    return b"+OK\r\n"


def getset(shard, db, argv: list[bytes], enc) -> bytes:
    """The old value, then a plain SET: the key's deadline goes."""
    old = db.lookup(argv[1], shard.now)
    if old is not None and old.__class__ is not bytes:
        return WRONGTYPE
    db.store(argv[1], argv[2])
    return enc.bulk_or_null(old)


def getdel(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.NULL
    if value.__class__ is not bytes:
        return WRONGTYPE
    db.delete(argv[1])
    return enc.bulk(value)


def getex(shard, db, argv: list[bytes], enc) -> bytes:
    """GET that also sets or clears the deadline.

    Redis checks the option syntax first, then the key (a missing key answers nil even with
    an invalid time), then its type, and only then the time value. An EXAT/PXAT already past
    deletes the key, after its value is read for the reply.
    """
    flags, expire_arg = _parse_options(argv, 2, for_set=False)
    if flags < 0:
        return SYNTAX
    key = argv[1]
    value = db.lookup(key, shard.now)
    if value is None:
        return enc.NULL
    if value.__class__ is not bytes:
        return WRONGTYPE
    if expire_arg is not None:
        deadline = _deadline(flags, expire_arg, shard.clock(), "getex")
        if deadline.__class__ is bytes:
            return deadline
        if flags & (_EXAT | _PXAT) and deadline <= shard.clock():
            db.delete(key)
        else:
            db.set_deadline(key, deadline)
    elif flags & _PERSIST:
        db.set_deadline(key, None)
    return enc.bulk(value)


def strlen(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not bytes:
        return WRONGTYPE
    return enc.integer(len(value))


def getrange(shard, db, argv: list[bytes], enc) -> bytes:
    """GETRANGE (and SUBSTR): both ends inclusive, negative ones count from the end.

    Redis answers an empty string when both ends are negative and start is past end, before
    clamping them; otherwise the ends are clamped into the string.
    """
    start = parse_int(argv[2])
    end = parse_int(argv[3])
    if start is None or end is None:
        return NOT_INTEGER
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return EMPTY_BULK
    if value.__class__ is not bytes:
        return WRONGTYPE
    if start < 0 and end < 0 and start > end:
        return EMPTY_BULK
    size = len(value)
    if start < 0:
        start = max(start + size, 0)
    if end < 0:
        end = max(end + size, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return EMPTY_BULK
    return enc.bulk(value[start : end + 1])


def setrange(shard, db, argv: list[bytes], enc) -> bytes:
    """Overwrite part of a string, padding with zero bytes past its end.

    An empty patch changes nothing and is never refused for its offset; a patch that would
    make the string longer than ``proto-max-bulk-len`` is.
    """
    offset = parse_int(argv[2])
    if offset is None:
        return NOT_INTEGER
    if offset < 0:
        return OFFSET_RANGE
    key, patch = argv[1], argv[3]
    value = db.lookup(key, shard.now)
    if value is not None and value.__class__ is not bytes:
        return WRONGTYPE
    if not patch:
        return enc.integer(len(value)) if value is not None else enc.ZERO
    end = offset + len(patch)
    if end > shard.settings["proto-max-bulk-len"]:
        return TOO_LONG
    if value is None:
        db.store(key, bytes(offset) + patch)
        return enc.integer(end)
    if offset > len(value):
        value = value + bytes(offset - len(value)) + patch
    else:
        value = value[:offset] + patch + value[end:]
    db.store_keep_deadline(key, value)
    return enc.integer(len(value))


def append(shard, db, argv: list[bytes], enc) -> bytes:
    """Append to a string (creating it); only an existing string is checked against
    ``proto-max-bulk-len``, as in Redis."""
    key, tail = argv[1], argv[2]
    value = db.lookup(key, shard.now)
    if value is None:
        db.store(key, tail)
        return enc.integer(len(tail))
    if value.__class__ is not bytes:
        return WRONGTYPE
    size = len(value) + len(tail)
    if size > shard.settings["proto-max-bulk-len"]:
        return TOO_LONG
    db.store_keep_deadline(key, value + tail)
    return enc.integer(size)


def incr(shard, db, argv: list[bytes], enc) -> bytes:
    return _add_integer(shard, db, argv[1], 1, enc)


def decr(shard, db, argv: list[bytes], enc) -> bytes:
    return _add_integer(shard, db, argv[1], -1, enc)


def incrby(shard, db, argv: list[bytes], enc) -> bytes:
    increment = parse_int(argv[2])
    if increment is None:
        return NOT_INTEGER
    return _add_integer(shard, db, argv[1], increment, enc)


def decrby(shard, db, argv: list[bytes], enc) -> bytes:
    """DECRBY negates its argument first, so Redis refuses the one it cannot negate."""
    decrement = parse_int(argv[2])
    if decrement is None:
        return NOT_INTEGER
    if decrement == LLONG_MIN:
        return DECREMENT_OVERFLOW
    return _add_integer(shard, db, argv[1], -decrement, enc)


def _add_integer(shard, db, key: bytes, delta: int, enc) -> bytes:
    """Add to a string holding a 64-bit integer (missing: 0), refusing to wrap around."""
    value = db.lookup(key, shard.now)
    if value is None:
        current = 0
    elif value.__class__ is not bytes:
        return WRONGTYPE
    else:
        current = parse_int(value)
        if current is None:
            return NOT_INTEGER
    result = current + delta
    if result > LLONG_MAX or result < LLONG_MIN:
        return OVERFLOW
    if value is None:
        db.store(key, b"%d" % result)
    else:
        db.store_keep_deadline(key, b"%d" % result)
    return b":%d\r\n" % result


def incrbyfloat(shard, db, argv: list[bytes], enc) -> bytes:
    """Add as C ``long double`` and store the sum as Redis writes it (see
    :mod:`shardserver.commands.floats`); a bulk string reply in RESP3 too, as in Redis 7.0."""
    key = argv[1]
    value = db.lookup(key, shard.now)
    if value is None:
        current: floats.LongDouble | None = floats.ZERO
    elif value.__class__ is not bytes:
        return WRONGTYPE
    else:
        current = floats.parse(value)
    increment = floats.parse(argv[2])
    if current is None or increment is None:
        return NOT_FLOAT
    total = floats.add(current, increment)
    if total is None:
        return NAN_OR_INFINITY
    text = floats.format_human(total)
    if value is None:
        db.store(key, text)
    else:
        db.store_keep_deadline(key, text)
    return enc.bulk(text)


def lcs(shard, db, argv: list[bytes], enc) -> bytes:
    """LCS where both keys live (the acceptor sends it here only then)."""
    a = db.lookup(argv[1], shard.now)
    b = db.lookup(argv[2], shard.now)
    return lcs_reply(a, b, argv, enc, shard.settings["proto-max-bulk-len"])


def plan_lcs(session, argv: list[bytes]) -> Plan:
    """LCS with its keys on two shards: read both values, compute in the acceptor."""

    def decide(results: list) -> tuple[bytes, list]:
        a, b = (values.from_plain(found[0]) if found is not None else None for found in results)
        limit = session.server.config["proto-max-bulk-len"]
        return lcs_reply(a, b, argv, session.enc, limit), []

    return Plan([Step(argv[1], [b"@peek", argv[1]]), Step(argv[2], [b"@peek", argv[2]])], decide)


def lcs_reply(a: object, b: object, argv: list[bytes], enc, max_bulk_len: int) -> bytes:
    """The longest common subsequence of two values (a missing key is an empty string).

    Options: LEN (its length), IDX (the matching ranges, from the ends back to the starts as
    Redis's walk finds them; MINMATCHLEN drops shorter ones, WITHMATCHLEN adds their
    lengths). Options are checked only after the key types, and the table-size limit after
    the options.
    """
    if (a is not None and a.__class__ is not bytes) or (b is not None and b.__class__ is not bytes):
        return LCS_WRONGTYPE
    a = a or b""
    b = b or b""
    get_len = get_idx = with_match_len = False
    min_match_len = 0
    i, n = 3, len(argv)
    while i < n:
        option = _option(argv[i])
        if option == b"idx":
            get_idx = True
        elif option == b"len":
            get_len = True
        elif option == b"withmatchlen":
            with_match_len = True
        elif option == b"minmatchlen" and i + 1 < n:
            min_match_len = parse_int(argv[i + 1])
            if min_match_len is None:
                return NOT_INTEGER
            min_match_len = max(min_match_len, 0)
            i += 1
        else:
            return SYNTAX
        i += 1
    if get_len and get_idx:
        return LCS_LEN_AND_IDX
    # Redis allocates a table of uint32 for every pair of prefixes, and refuses beyond this.
    if (len(a) + 1) * (len(b) + 1) * 4 > max_bulk_len:
        return LCS_TOO_BIG
    table = _LcsTable(a, b)
    if get_len:
        return enc.integer(table.total())
    common, ranges = _lcs_walk(a, b, table, min_match_len)
    if not get_idx:
        return enc.bulk(common)
    integer, array = enc.integer, enc.array
    matches = []
    for a_start, a_end, b_start, b_end in ranges:
        match = [
            array([integer(a_start), integer(a_end)]),
            array([integer(b_start), integer(b_end)]),
        ]
        if with_match_len:
            match.append(integer(a_end - a_start + 1))
        matches.append(array(match))
    return enc.map(
        [
            (enc.bulk(b"matches"), array(matches)),
            (enc.bulk(b"len"), integer(table.total())),
        ]
    )


class _LcsTable:
    """LCS lengths of all pairs of prefixes (Redis's table), computed bit-parallel.

    Redis fills a table of (len(a)+1) * (len(b)+1) cells; in Python that would take minutes
    at sizes Redis accepts. Here a Python loop runs over the shorter string (the *outer*
    one, index p) and big-integer operations across the longer (*inner*, index q), with the
    Allison-Dix / Hyyrö bit-vector algorithm: ``rows[p]`` has bit k clear exactly when the LCS
    of the outer prefix of length p grows by one from inner prefix length k to k+1, so
    ``L(p, q) = q - popcount(rows[p] & (2**q - 1))``.
    """

    __slots__ = ("rows", "swapped", "inner_len")

    def __init__(self, a: bytes, b: bytes) -> None:
        #: False: p indexes a and q indexes b; True: the other way round.
        self.swapped = len(a) > len(b)
        outer, inner = (b, a) if self.swapped else (a, b)
        self.inner_len = len(inner)
        full = (1 << len(inner)) - 1
        # For each byte, the inner positions holding it, as bits: written as a binary numeral
        # (highest position first) and read by int() in one C pass.
        backwards = inner[::-1]
        masks = {}
        for byte in set(inner):
            ones = bytes(0x31 if each == byte else 0x30 for each in range(256))
            masks[byte] = int(backwards.translate(ones), 2)
        vector = full
        rows = [vector]
        for byte in outer:
            matched = vector & masks.get(byte, 0)
            vector = ((vector + matched) | (vector - matched)) & full
            rows.append(vector)
        self.rows = rows

    def total(self) -> int:
        """The LCS length of the whole strings."""
        return self.inner_len - self.rows[-1].bit_count()


def _lcs_walk(
    a: bytes, b: bytes, table: _LcsTable, min_match_len: int
) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """The LCS string and its matching ranges, walking back from the ends exactly as Redis
    does, so that ties between equally long subsequences resolve the same way.

    Where the last bytes differ, Redis steps back in a if ``L(i-1, j) > L(i, j-1)``. Both
    differ from ``L(i, j)`` by 0 or 1: the difference along q is one bit of ``rows[p]``, and
    the one along p is kept up to date bit by bit while q falls, and recounted only when p
    changes (at most once per byte of the shorter string). So the walk costs a few
    operations per step, not a popcount across the longer string.
    """
    rows, swapped = table.rows, table.swapped
    size = (table.inner_len + 8) // 8
    common = bytearray()
    ranges = []
    i, j = len(a), len(b)
    alen = len(a)
    a_start = alen  # alen: no range open
    a_end = b_start = b_end = 0
    at_p = at_q = step_p = -1  # the p whose bits are unpacked; step_p = L(p,q) - L(p-1,q)
    here = below = b""  # rows[at_p] and rows[at_p - 1] as little-endian bytes
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            common.append(a[i - 1])
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            i -= 1
            j -= 1
        else:
            p, q = (j, i) if swapped else (i, j)
            if p != at_p:
                prefix = (1 << q) - 1
                step_p = (rows[p - 1] & prefix).bit_count() - (rows[p] & prefix).bit_count()
                here = rows[p].to_bytes(size, "little")
                below = rows[p - 1].to_bytes(size, "little")
                at_p, at_q = p, q
            while at_q > q:
                at_q -= 1
                byte, bit = at_q >> 3, at_q & 7
                step_p += ((here[byte] >> bit) & 1) - ((below[byte] >> bit) & 1)
            step_q = 1 - ((here[(q - 1) >> 3] >> ((q - 1) & 7)) & 1)  # L(p,q) - L(p,q-1)
            # L(i-1, j) > L(i, j-1): the step along i is 0 and the one along j is 1.
            if (step_q < step_p) if swapped else (step_p < step_q):
                i -= 1
            else:
                j -= 1
            if a_start != alen:
                emit = True
        if emit:
            if min_match_len == 0 or a_end - a_start + 1 >= min_match_len:
                ranges.append((a_start, a_end, b_start, b_end))
            a_start = alen
    common.reverse()
    return bytes(common), ranges


K = Route.KEY
ROWS = [
    Command("append", K, append),
    Command("decr", K, decr),
    Command("decrby", K, decrby),
    Command("get", K, get),
    Command("getdel", K, getdel),
    Command("getex", K, getex, propagate=Propagate.KEY_STATE),
    Command("getrange", K, getrange),
    Command("getset", K, getset),
    Command("incr", K, incr),
    Command("incrby", K, incrby),
    Command("incrbyfloat", K, incrbyfloat, propagate=Propagate.KEY_STATE),
    Command(
        "lcs",
        Route.COORD,
        lcs,
        plan=plan_lcs,
        notes="keys on two shards: computed in the acceptor, which waits meanwhile, as Redis does",
    ),
    Command("psetex", K, psetex, propagate=Propagate.KEY_STATE),
    Command("set", K, set_, propagate=Propagate.KEY_STATE),
    Command("setex", K, setex, propagate=Propagate.KEY_STATE),
    Command("setnx", K, setnx),
    Command("setrange", K, setrange),
    Command("strlen", K, strlen),
    Command("substr", K, getrange),
]
