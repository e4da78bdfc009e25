"""Geo commands (Redis's ``geo.c``): GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH,
GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and the _RO forms.

A geo index is a sorted set (:class:`shardserver.commands.zsets.SortedSet`) whose scores are
52-bit geohashes (:mod:`shardserver.geohash` holds the arithmetic). GEOADD is ZADD of the
encoded positions, run by the ZADD handler itself, as Redis rewrites GEOADD into ZADD; the
searches walk the score ranges of the nine cells that cover the shape, in Redis's order, and
keep the members inside it, so results (and their order without ASC/DESC) are Redis's.

Replies are written as Redis writes them: distances ``%.4f`` in the query's unit, positions
``%.17Lf`` without trailing zeros (``addReplyHumanLongDouble``, a double in RESP3), hashes as
integers, GEOHASH's 11 characters. Arguments are checked in Redis 7.0's order, which the
parser follows as ``georadiusGeneric`` does, one option after another: a source of the
wrong type is refused first, a FROMMEMBER's member is looked up where it appears.

The STORE forms (GEORADIUS ... STORE/STOREDIST, GEOSEARCHSTORE) with the destination on
another shard than the source are coordinated: the source's shard runs the search as a part
(``@geo-store``) while the destination's shard is held, and the acceptor writes the result,
or deletes the destination when it is empty, before the shards are released.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver import geohash, values
from shardserver.commands import zsets
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.commands.strings import NOT_FLOAT
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error
from shardserver.numbers import parse_int

UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
BAD_UNIT = error("ERR unsupported unit provided. please use M, KM, FT, MI")
NOT_RADIUS = error("ERR need numeric radius")
NEGATIVE_RADIUS = error("ERR radius cannot be negative")
NOT_WIDTH = error("ERR need numeric width")
NOT_HEIGHT = error("ERR need numeric height")
NEGATIVE_BOX = error("ERR height or width cannot be negative")
NO_MEMBER = error("ERR could not decode requested zset member")
COUNT_POSITIVE = error("ERR COUNT must be > 0")
ANY_WITHOUT_COUNT = error("ERR the ANY argument requires COUNT argument")
EMPTY_ARRAY = b"*0\r\n"

# georadiusGeneric's flags
RADIUS_COORDS, RADIUS_MEMBER, NOSTORE, SEARCH, SEARCHSTORE = 1, 2, 4, 8, 16


def _word(arg: bytes) -> bytes:
    """An option as ``strcasecmp`` compares it: lower case, cut at a NUL byte."""
    return arg.partition(b"\0")[0].lower()


def _position(longitude: bytes, latitude: bytes) -> tuple[float, float] | bytes:
    """``extractLongLatOrReply``: a valid (longitude, latitude), or the error."""
    lon = zsets.parse_score(longitude)
    if lon is None:
        return NOT_FLOAT
    lat = zsets.parse_score(latitude)
    if lat is None:
        return NOT_FLOAT
    if not (
        geohash.LONG_MIN <= lon <= geohash.LONG_MAX and geohash.LAT_MIN <= lat <= geohash.LAT_MAX
    ):
        return error(f"ERR invalid longitude,latitude pair {lon:f},{lat:f}")
    return lon, lat


def _unit(arg: bytes) -> float | None:
    return UNITS.get(_word(arg))


def _zset_or_error(shard, db, key: bytes) -> Any:
    value = db.lookup(key, shard.now)
    if value is None or value.__class__ is zsets.SortedSet:
        return value
    return WRONGTYPE


def _coordinates(enc, longitude: float, latitude: float) -> bytes:
    return b"*2\r\n" + enc.double(geohash.human(longitude)) + enc.double(geohash.human(latitude))


def _distance_reply(enc, meters: float) -> bytes:
    """``addReplyDoubleDistance``: ``%.4f``, a bulk string in both protocols."""
    return enc.bulk(b"%.4f" % meters)


# -- GEOADD, GEODIST, GEOHASH, GEOPOS -------------------------------------------------------

_GEOADD_OPTIONS = frozenset((b"nx", b"xx", b"ch"))


def _first_triple(argv: list[bytes]) -> int:
    index = 2
    while index < len(argv) and _word(argv[index]) in _GEOADD_OPTIONS:
        index += 1
    return index


def geoadd_members(argv: list[bytes]) -> list[bytes]:
    """The members a GEOADD names (keyspace notifications compare their scores)."""
    return argv[_first_triple(argv) + 2 :: 3]


def geoadd(shard, db, argv: list[bytes], enc) -> bytes:
    """Check the options and every position, then run ZADD of the encoded scores (Redis
    rewrites the command into ZADD, whose own checks, the key's type among them, follow)."""
    first = _first_triple(argv)
    options = {_word(arg) for arg in argv[2:first]}
    if (len(argv) - first) % 3 or {b"nx", b"xx"} <= options:
        return SYNTAX
    command = [b"zadd", *argv[1:first]]
    for index in range(first, len(argv), 3):
        found = _position(argv[index], argv[index + 1])
        if found.__class__ is bytes:
            return found  # type: ignore[return-value]
        command += (b"%d" % geohash.score_of(*found), argv[index + 2])  # type: ignore[misc]
    return zsets.zadd(shard, db, command, enc)


def geodist(shard, db, argv: list[bytes], enc) -> bytes:
    to_meter = 1.0
    if len(argv) == 5:
        unit = _unit(argv[4])
        if unit is None:
            return BAD_UNIT
        to_meter = unit
    elif len(argv) > 5:
        return SYNTAX
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.NULL
    if zset.__class__ is bytes:
        return zset
    first, second = zset.get(argv[2]), zset.get(argv[3])
    if first is None or second is None:
        return enc.NULL
    meters = geohash.distance(*geohash.position(first), *geohash.position(second))
    return _distance_reply(enc, meters / to_meter)


def geohash_(shard, db, argv: list[bytes], enc) -> bytes:
    zset = _zset_or_error(shard, db, argv[1])
    if zset.__class__ is bytes:
        return zset
    found = [None if zset is None else zset.get(member) for member in argv[2:]]
    return enc.bulk_array([None if s is None else geohash.hash_string(s) for s in found])


def geopos(shard, db, argv: list[bytes], enc) -> bytes:
    zset = _zset_or_error(shard, db, argv[1])
    if zset.__class__ is bytes:
        return zset
    items = []
    for member in argv[2:]:
        score = None if zset is None else zset.get(member)
        if score is None:
            items.append(enc.NULL_ARRAY)
        else:
            items.append(_coordinates(enc, *geohash.position(score)))
    return b"*%d\r\n" % len(items) + b"".join(items)


# -- searching ------------------------------------------------------------------------------

#: One member found: (member, distance in meters, score, longitude, latitude).
Point = tuple[bytes, float, float, float, float]


def points_in_cells(zset: zsets.SortedSet, shape: geohash.Shape, limit: int) -> list[Point]:
    """``membersOfAllNeighbors``: the members inside the shape, cell by cell in Redis's
    order, each cell in score order, stopping once ``limit`` (0: none) were found. A cell
    equal to the one visited just before is skipped (Redis compares with the previous
    visited cell only, and never with the centre)."""
    found: list[Point] = []
    ranked = zset.ranked
    previous: tuple[int, int] | None = None
    for number, cell in enumerate(geohash.covering_cells(shape)):
        if cell is None:
            continue
        if previous is not None and cell == previous:
            continue
        if found and limit and len(found) >= limit:
            break
        low, high = geohash.score_range(cell)
        for score, member in ranked.islice(ranked.bisect_left((low,))):
            if score >= high:
                break
            longitude, latitude = geohash.position(score)
            meters = shape.distance_if_within(longitude, latitude)
            if meters is not None:
                found.append((member, meters, score, longitude, latitude))
                if limit and len(found) >= limit:
                    break
        if number:
            previous = cell
    return found


class Search:
    """A parsed search: the shape, the reply's options, and where to store."""

    __slots__ = (
        "shape",
        "withdist",
        "withhash",
        "withcoord",
        "sort",
        "any",
        "count",
        "store",
        "storedist",
    )

    def __init__(self) -> None:
        self.shape: geohash.Shape | None = None
        self.withdist = self.withhash = self.withcoord = False
        self.sort = 0  # 1 ascending, -1 descending
        self.any = False
        self.count = 0
        self.store: bytes | None = None
        self.storedist = False


def parse_search(zset: zsets.SortedSet | None, argv: list[bytes], flags: int) -> Search | bytes:
    """``georadiusGeneric``'s parsing, in its order, against the source's sorted set (None
    when missing): a Search, or the error reply."""
    search = Search()
    if flags & RADIUS_COORDS:
        base = 6
        origin = _position(argv[2], argv[3])
        if origin.__class__ is bytes:
            return origin  # type: ignore[return-value]
        radius = _radius(argv[4], argv[5])
        if radius.__class__ is bytes:
            return radius  # type: ignore[return-value]
        search.shape = geohash.Shape(*origin, radius[1], radius=radius[0])  # type: ignore[misc]
    elif flags & RADIUS_MEMBER:
        base = 5
        # with no source Redis parses on, only to choose its reply (0 or an empty array)
        if zset is not None:
            score = zset.get(argv[2])
            if score is None:
                return NO_MEMBER
            radius = _radius(argv[3], argv[4])
            if radius.__class__ is bytes:
                return radius  # type: ignore[return-value]
            origin = geohash.position(score)
            search.shape = geohash.Shape(*origin, radius[1], radius=radius[0])  # type: ignore[misc]
    else:
        base = 3 if flags & SEARCHSTORE else 2
        if flags & SEARCHSTORE:
            search.store = argv[1]
    center: Any = None  # GEOSEARCH's FROMMEMBER or FROMLONLAT position
    by: Any = None  # (radius, conversion) or (width, height, conversion)
    frommember = fromlonlat = False
    remaining = len(argv) - base
    i = 0
    while i < remaining:
        at = base + i
        word = _word(argv[at])
        more = remaining - i - 1  # arguments after this one
        if word == b"withdist":
            search.withdist = True
        elif word == b"withhash":
            search.withhash = True
        elif word == b"withcoord":
            search.withcoord = True
        elif word == b"any":
            search.any = True
        elif word == b"asc":
            search.sort = 1
        elif word == b"desc":
            search.sort = -1
        elif word == b"count" and more >= 1:
            count = parse_int(argv[at + 1])
            if count is None:
                return NOT_INTEGER
            if count <= 0:
                return COUNT_POSITIVE
            search.count = count
            i += 1
        elif word in (b"store", b"storedist") and more >= 1 and not flags & (NOSTORE | SEARCH):
            search.store = argv[at + 1]
            search.storedist = word == b"storedist"
            i += 1
        elif word == b"storedist" and flags & SEARCH and flags & SEARCHSTORE:
            search.storedist = True
        elif word == b"frommember" and more >= 1 and flags & SEARCH and not fromlonlat:
            frommember = True
            if zset is not None:
                score = zset.get(argv[at + 1])
                if score is None:
                    return NO_MEMBER
                center = geohash.position(score)
            i += 1
        elif word == b"fromlonlat" and more >= 2 and flags & SEARCH and not frommember:
            center = _position(argv[at + 1], argv[at + 2])
            if center.__class__ is bytes:
                return center  # type: ignore[no-any-return]
            fromlonlat = True
            i += 2
        elif word == b"byradius" and more >= 2 and flags & SEARCH and (by is None or len(by) == 2):
            by = _radius(argv[at + 1], argv[at + 2])
            if by.__class__ is bytes:
                return by  # type: ignore[no-any-return]
            i += 2
        elif word == b"bybox" and more >= 3 and flags & SEARCH and (by is None or len(by) == 3):
            by = _box(argv[at + 1], argv[at + 2], argv[at + 3])
            if by.__class__ is bytes:
                return by  # type: ignore[no-any-return]
            i += 3
        else:
            return SYNTAX
        i += 1
    if search.store is not None and (search.withdist or search.withhash or search.withcoord):
        name = "GEOSEARCHSTORE" if flags & SEARCHSTORE else "STORE option in GEORADIUS"
        return error(f"ERR {name} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
    if flags & SEARCH:
        # Redis names the command as the client spelled it; it reaches shards in lower case
        name = "GEOSEARCHSTORE" if flags & SEARCHSTORE else "GEOSEARCH"
        if center is None and not frommember:
            return error(f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
        if by is None:
            return error(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
        if center is not None:
            if len(by) == 2:
                search.shape = geohash.Shape(*center, by[1], radius=by[0])
            else:
                search.shape = geohash.Shape(*center, by[2], width=by[0], height=by[1], box=True)
    if search.any and not search.count:
        return ANY_WITHOUT_COUNT
    return search


def _radius(amount: bytes, unit: bytes) -> tuple[float, float] | bytes:
    """``extractDistanceOrReply``: (radius in the unit, meters per unit), or the error."""
    radius = zsets.parse_score(amount)
    if radius is None:
        return NOT_RADIUS
    if radius < 0:
        return NEGATIVE_RADIUS
    conversion = _unit(unit)
    if conversion is None:
        return BAD_UNIT
    return radius, conversion


def _box(width: bytes, height: bytes, unit: bytes) -> tuple[float, float, float] | bytes:
    """``extractBoxOrReply``: (width, height, meters per unit), or the error."""
    w = zsets.parse_score(width)
    if w is None:
        return NOT_WIDTH
    h = zsets.parse_score(height)
    if h is None:
        return NOT_HEIGHT
    if h < 0 or w < 0:
        return NEGATIVE_BOX
    conversion = _unit(unit)
    if conversion is None:
        return BAD_UNIT
    return w, h, conversion


def run_search(zset: zsets.SortedSet | None, search: Search) -> list[Point]:
    """The members found, in the reply's order, cut to COUNT."""
    if zset is None or search.shape is None:
        return []
    if search.count and not search.sort and not search.any:
        search.sort = 1  # COUNT without an order means the nearest ones
    found = points_in_cells(zset, search.shape, search.count if search.any else 0)
    returned = min(search.count, len(found)) if search.count else len(found)
    if search.sort and returned == len(found):
        # Redis sorts with glibc's qsort (a stable merge sort) on the distance only
        found.sort(key=_distance_key, reverse=search.sort < 0)
    elif search.sort:
        # and its own partial quicksort when COUNT cuts the result: members at the same
        # distance then come in that algorithm's order, which only it reproduces
        partial_sort(found, returned - 1, _ascending if search.sort > 0 else _descending)
    return found[:returned]


def _distance_key(point: Point) -> float:
    return point[1]


def _ascending(a: Point, b: Point) -> int:
    """``sort_gp_asc``."""
    return 0 if a[1] == b[1] else (1 if a[1] > b[1] else -1)


def _descending(a: Point, b: Point) -> int:
    return -_ascending(a, b)


def partial_sort(items: list, last: int, cmp: Callable[[Any, Any], int]) -> None:
    """Redis's ``pqsort(items, n, size, cmp, 0, last)`` (``pqsort.c``, NetBSD's qsort that
    skips the partitions outside ``[0, last]``), step for step: the first ``last + 1``
    items end in order, ties as Redis leaves them."""
    _pqsort(items, 0, len(items), cmp, 0, last)


def _pqsort(x: list, a: int, n: int, cmp: Callable[[Any, Any], int], low: int, high: int) -> None:
    def med3(i: int, j: int, k: int) -> int:
        if cmp(x[i], x[j]) < 0:
            return j if cmp(x[j], x[k]) < 0 else (k if cmp(x[i], x[k]) < 0 else i)
        return j if cmp(x[j], x[k]) > 0 else (i if cmp(x[i], x[k]) < 0 else k)

    while True:
        if n < 7:  # insertion sort
            for m in range(a + 1, a + n):
                i = m
                while i > a and cmp(x[i - 1], x[i]) > 0:
                    x[i], x[i - 1] = x[i - 1], x[i]
                    i -= 1
            return
        m = a + n // 2
        if n > 7:
            first, end = a, a + n - 1
            if n > 40:
                d = n // 8
                first = med3(first, first + d, first + 2 * d)
                m = med3(m - d, m, m + d)
                end = med3(end - 2 * d, end - d, end)
            m = med3(first, m, end)
        x[a], x[m] = x[m], x[a]
        pa = pb = a + 1
        pc = pd = a + n - 1
        while True:
            while pb <= pc:
                order = cmp(x[pb], x[a])
                if order > 0:
                    break
                if order == 0:
                    x[pa], x[pb] = x[pb], x[pa]
                    pa += 1
                pb += 1
            while pb <= pc:
                order = cmp(x[pc], x[a])
                if order < 0:
                    break
                if order == 0:
                    x[pc], x[pd] = x[pd], x[pc]
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            x[pb], x[pc] = x[pc], x[pb]
            pb += 1
            pc -= 1
        pn = a + n
        r = min(pa - a, pb - pa)
        for i in range(r):
            x[a + i], x[pb - r + i] = x[pb - r + i], x[a + i]
        r = min(pd - pc, pn - pd - 1)
        for i in range(r):
            x[pb + i], x[pn - r + i] = x[pn - r + i], x[pb + i]
        r = pb - pa
        if r > 1 and not (low < a and high < a or low > a + r - 1 and high > a + r - 1):
            _pqsort(x, a, r, cmp, low, high)
        r = pd - pc
        if r <= 1:
            return
        a, n = pn - r, r
        if low < a and high < a or low > a + r - 1 and high > a + r - 1:
            return


def search_reply(enc, search: Search, found: list[Point]) -> bytes:
    """The array of members, each with WITHDIST, WITHHASH, WITHCOORD in that order."""
    if not found:
        return EMPTY_ARRAY
    options = search.withdist + search.withhash + search.withcoord
    conversion = search.shape.conversion  # type: ignore[union-attr]
    bulk = enc.bulk
    if not options:
        return b"*%d\r\n" % len(found) + b"".join([bulk(point[0]) for point in found])
    items = []
    for member, meters, score, longitude, latitude in found:
        item = b"*%d\r\n" % (options + 1) + bulk(member)
        if search.withdist:
            item += _distance_reply(enc, meters / conversion)
        if search.withhash:
            item += b":%d\r\n" % int(score)
        if search.withcoord:
            item += _coordinates(enc, longitude, latitude)
        items.append(item)
    return b"*%d\r\n" % len(items) + b"".join(items)


def stored_pairs(search: Search, found: list[Point]) -> list[tuple[bytes, float]]:
    """The destination's (member, score) pairs: the geohash, or with STOREDIST the
    distance in the query's unit."""
    if not search.storedist:
        return [(point[0], point[2]) for point in found]
    conversion = search.shape.conversion  # type: ignore[union-attr]
    return [(point[0], point[1] / conversion) for point in found]


def _stored_value(pairs: list[tuple[bytes, float]], limits: tuple[int, int]) -> zsets.SortedSet:
    """The result as Redis builds it: a skiplist, turned listpack when small enough."""
    unique = dict(pairs)
    ordered = list(unique.items())
    return zsets.SortedSet.build(ordered, not zsets._fits_small(ordered, limits))


def _searcher(source_at: int, flags: int) -> Callable[..., bytes]:
    """The native handler of one search command (every key on this shard)."""

    def handler(shard, db, argv: list[bytes], enc) -> bytes:
        zset = _zset_or_error(shard, db, argv[source_at])
        if zset.__class__ is bytes:
            return zset
        search = parse_search(zset, argv, flags)
        if search.__class__ is bytes:
            return search  # type: ignore[return-value]
        found = run_search(zset, search)  # type: ignore[arg-type]
        if search.store is None:  # type: ignore[union-attr]
            return search_reply(enc, search, found)  # type: ignore[arg-type]
        pairs = stored_pairs(search, found)  # type: ignore[arg-type]
        destination = search.store  # type: ignore[union-attr]
        if not pairs:
            db.delete(destination)
            return enc.ZERO
        db.store(destination, _stored_value(pairs, zsets._limits(shard.settings)))
        return enc.integer(len(pairs))

    return handler


# -- the STORE forms across shards ---------------------------------------------------------

#: The search commands: (index of the source key, flags).
SEARCHES = {
    b"georadius": (1, RADIUS_COORDS),
    b"georadius_ro": (1, RADIUS_COORDS | NOSTORE),
    b"georadiusbymember": (1, RADIUS_MEMBER),
    b"georadiusbymember_ro": (1, RADIUS_MEMBER | NOSTORE),
    b"geosearch": (1, SEARCH),
    b"geosearchstore": (2, SEARCH | SEARCHSTORE),
}


def store_part(shard, db, argv: list[bytes]) -> tuple[bytes | None, Any]:
    """Internal (``@geo-store command args...``): the search of a STORE form on the
    source's shard, as ``(None, error reply)`` or ``(destination, pairs to store)``."""
    command = [argv[1], *argv[2:]]
    source_at, flags = SEARCHES[argv[1]]
    zset = _zset_or_error(shard, db, command[source_at])
    if zset.__class__ is bytes:
        return None, zset
    search = parse_search(zset, command, flags)
    if search.__class__ is bytes:
        return None, search
    found = run_search(zset, search)  # type: ignore[arg-type]
    return search.store, stored_pairs(search, found)  # type: ignore[union-attr,arg-type]


def store_key_at(argv: list[bytes]) -> int | None:
    """Where GEORADIUS[BYMEMBER]'s destination is (``georadiusGetKeys``: the argument after
    the last STORE or STOREDIST from the sixth on), or None."""
    found = None
    i = 5
    while i < len(argv):
        if _word(argv[i]) in (b"store", b"storedist") and i + 1 < len(argv):
            found = i + 1
            i += 1
        i += 1
    return found


def _radius_keys(search_from: int) -> Callable[[list[bytes]], list[int]]:
    """GEORADIUS[BYMEMBER]'s keys as Redis 7.0's key specs give them (COMMAND GETKEYS):
    the source, then the key after the first STORE and after the first STOREDIST from
    ``search_from`` on; and the destination itself (the last of those), for routing."""

    def keys(argv: list[bytes]) -> list[int]:
        found = [1]
        for keyword in (b"store", b"storedist"):
            at = next(
                (i + 1 for i in range(search_from, len(argv) - 1) if _word(argv[i]) == keyword),
                None,
            )
            if at is not None and at not in found:
                found.append(at)
        destination = store_key_at(argv)
        if destination is not None and destination not in found:
            found.append(destination)
        return found

    return keys


def propagate_radius(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """GEORADIUS without STORE writes nothing: log it only when it stores."""
    return [argv] if store_key_at(argv) is not None else []


def _plan_store(source_at: int, destination_at: Callable[[list[bytes]], int | None]) -> Callable:
    def plan(session, argv: list[bytes]) -> Plan:
        name = argv[0].lower()  # as the client spelled it
        destination = argv[destination_at(argv)]  # type: ignore[index]
        event = b"geosearchstore" if name == b"geosearchstore" else b"georadiusstore"

        def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
            parsed, found = results[0]
            if parsed is None:
                return found, []
            if parsed != destination:  # the parse and georadiusGetKeys disagree
                return SYNTAX, []
            if not found:
                return session.enc.ZERO, [Step(destination, [b"@del", destination])]
            zset = _stored_value(found, zsets._acceptor_limits(session))
            write = [b"@put", destination, values.to_plain(zset), None, event]
            return session.enc.integer(len(found)), [Step(destination, write)]

        reads = [
            Step(argv[source_at], [b"@geo-store", name, *argv[1:]]),
            Step(destination, [b"@exists", destination]),
        ]
        return Plan(reads, decide)

    return plan


K, C = Route.KEY, Route.COORD
_NAMED = "an error that names the command spells it in capitals (Redis: as the client did)"
ROWS = [
    Command("geoadd", K, geoadd),
    Command("geodist", K, geodist),
    Command("geohash", K, geohash_),
    Command("geopos", K, geopos),
    Command("geosearch", K, _searcher(1, SEARCH), notes=_NAMED),
    Command(
        "geosearchstore",
        C,
        _searcher(2, SEARCH | SEARCHSTORE),
        plan=_plan_store(2, lambda argv: 1),
        notes=_NAMED,
    ),
    Command(
        "georadius",
        C,
        _searcher(1, RADIUS_COORDS),
        plan=_plan_store(1, store_key_at),
        keys=_radius_keys(6),
        propagate=propagate_radius,
    ),
    Command("georadius_ro", K, _searcher(1, RADIUS_COORDS | NOSTORE)),
    Command(
        "georadiusbymember",
        C,
        _searcher(1, RADIUS_MEMBER),
        plan=_plan_store(1, store_key_at),
        keys=_radius_keys(5),
        propagate=propagate_radius,
    ),
    Command("georadiusbymember_ro", K, _searcher(1, RADIUS_MEMBER | NOSTORE)),
]

#: The part of the coordinated STORE forms, by wire name.
INTERNAL_PARTS = {b"@geo-store": store_part}
