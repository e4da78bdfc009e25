"""SORT and SORT_RO (Redis's ``sort.c``) over lists, sets and sorted sets.

The family classes of lists, sets, sorted sets and hashes live in their own modules; SORT
reads them only through their fixed plain forms (:func:`shardserver.values.to_plain`), so it
depends on none of them. What it returns or stores is a list built with
:func:`shardserver.values.from_plain`.

How Redis 7.0 sorts, and so how we do:

* Options are parsed first, in order (a syntax error or a bad LIMIT beats WRONGTYPE); the
  last STORE and the last BY win, except that once a BY without ``*`` was seen nothing is
  sorted; GETs accumulate.
* Numeric sorting reads each weight (the element itself, or the value BY names) with C's
  ``strtod`` (see :func:`parse_score`); a weight that is not a double fails the whole
  command. Equal weights fall back to comparing the elements as binary strings, so the
  result is deterministic. A missing BY key weighs 0.
* ALPHA compares as ``strcoll`` in Redis's C.UTF-8 locale does, which is byte order up to
  the first NUL byte, unless STORE is given (then binary order). With BY, missing weights
  come first and equal weights keep their order (glibc's qsort is a stable merge sort here).
* ``BY`` a pattern without ``*`` (``BY nosort``) does not sort: lists and sorted sets keep
  their order (reversed by DESC, LIMIT taken from that order), sets theirs (an intset's is
  ascending; DESC is ignored), except that a set with STORE is sorted ALPHA so that what is
  stored is deterministic.
* A pattern's first ``*`` is replaced by the element; ``key->field`` after it reads a hash
  field; ``#`` is the element itself; a GET pattern without ``*`` reads nothing. Patterns
  are C strings to Redis: only what comes before a NUL byte is searched for ``*`` and
  ``->``.
* Sorting a sorted set converts it to the skiplist encoding, for good (Redis does it
  destructively, even for SORT_RO).

Across shards: the source and the STORE destination are the command's keys (``sort_keys``);
the keys BY and GET patterns name may be anywhere, so such a command line is coordinated
over every shard (``undeclared_keys``): the first round reads the source, the second reads
every key the patterns name for its elements, and the decision sorts and writes the STORE
destination while every shard is held.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from shardserver import values
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error
from shardserver.numbers import parse_int

NOT_A_DOUBLE = error("ERR One or more scores can't be converted into double")

#: Types SORT accepts.
SORTABLE = ("list", "set", "zset")

#: A value that a pattern reads: (key, hash field or None for a string).
Lookup = tuple[bytes, bytes | None]
Fetch = Callable[[bytes, bytes | None], bytes | None]


# -- options ------------------------------------------------------------------------------


@dataclass
class SortOptions:
    """One SORT command line, parsed."""

    desc: bool = False
    alpha: bool = False
    limit_start: int = 0
    limit_count: int = -1
    by: bytes | None = None
    #: BY names a pattern without ``*``: no sorting.
    dont_sort: bool = False
    gets: list[bytes] = field(default_factory=list)
    #: The STORE destination and its position in argv.
    store: bytes | None = None
    store_at: int = 0
    #: Run by a script: an unsorted set's output is sorted too (see :func:`_effective`).
    from_script: bool = False


def _word(arg: bytes) -> bytes:
    """An option as Redis's ``strcasecmp`` sees it: lower-cased, cut at a NUL byte."""
    return arg.partition(b"\0")[0].lower()


def _c_string(arg: bytes) -> bytes:
    """What C's string functions see of an argument: up to its first NUL byte."""
    return arg.partition(b"\0")[0]


def parse_options(argv: list[bytes]) -> SortOptions | bytes:
    """SORT's or SORT_RO's options, or the error reply of the first bad one."""
    options = SortOptions()
    read_only = argv[0].lower() == b"sort_ro"
    i, argc = 2, len(argv)
    while i < argc:
        left = argc - i - 1
        word = _word(argv[i])
        if word == b"asc":
            options.desc = False
        elif word == b"desc":
            options.desc = True
        elif word == b"alpha":
            options.alpha = True
        elif word == b"limit" and left >= 2:
            start, count = parse_int(argv[i + 1]), parse_int(argv[i + 2])
            if start is None or count is None:
                return NOT_INTEGER
            options.limit_start, options.limit_count = start, count
            i += 2
        elif word == b"store" and left >= 1 and not read_only:
            options.store, options.store_at = argv[i + 1], i + 1
            i += 1
        elif word == b"by" and left >= 1:
            options.by = argv[i + 1]
            # Once a BY without ``*`` is seen, nothing is sorted, whatever BY comes later.
            options.dont_sort |= b"*" not in _c_string(argv[i + 1])
            i += 1
        elif word == b"get" and left >= 1:
            options.gets.append(argv[i + 1])
            i += 1
        else:
            return SYNTAX
        i += 1
    return options


def check_sort(session, argv: list[bytes]) -> bytes | None:
    """Refuse a malformed command line in the acceptor, before any key is read (Redis
    parses every option before it looks the key up)."""
    parsed = parse_options(argv)
    return parsed if parsed.__class__ is bytes else None


def sort_keys(argv: list[bytes]) -> list[int]:
    """The command's keys: the source, and the STORE destination if any."""
    parsed = parse_options(argv)
    if parsed.__class__ is bytes or parsed.store is None:
        return [1]
    return [1, parsed.store_at]


def _names_keys(pattern: bytes) -> bool:
    """Whether a pattern reads keys: it has a ``*`` and is not ``#``."""
    return not _is_element(pattern) and b"*" in _c_string(pattern)


def uses_patterns(argv: list[bytes]) -> bool:
    """Whether BY or GET patterns may read keys other than the command's own."""
    parsed = parse_options(argv)
    if parsed.__class__ is bytes:
        return False
    by_reads = parsed.by is not None and not parsed.dont_sort
    return by_reads or any(_names_keys(pattern) for pattern in parsed.gets)


# -- patterns -----------------------------------------------------------------------------


def _is_element(pattern: bytes) -> bool:
    """``#`` (as a C string): the element itself."""
    return pattern[:1] == b"#" and (len(pattern) == 1 or pattern[1] == 0)


def pattern_lookup(pattern: bytes, element: bytes) -> Lookup | None:
    """The key (and hash field) a pattern names for an element, as Redis's
    ``lookupKeyByPattern`` builds it; None when it names nothing (no ``*``).

    The first ``*`` becomes the element; a ``->`` after it, followed by at least one byte,
    starts a hash field that runs to the end of the pattern.
    """
    text = _c_string(pattern)
    star = text.find(b"*")
    if star < 0:
        return None
    arrow = text.find(b"->", star + 1)
    if arrow >= 0 and arrow + 2 < len(text):
        return pattern[:star] + element + pattern[star + 1 : arrow], pattern[arrow + 2 :]
    return pattern[:star] + element + pattern[star + 1 :], None


def resolve(pattern: bytes, element: bytes, fetch: Fetch) -> bytes | None:
    """The value a pattern gives for an element: the element (``#``), a string key's
    value, a hash field's value, or None."""
    if _is_element(pattern):
        return element
    lookup = pattern_lookup(pattern, element)
    if lookup is None:
        return None
    return fetch(*lookup)


def fetch_from(shard, db) -> Fetch:
    """Pattern values read from a shard's database: a string key's value, or a field of a
    hash (read through its plain form, once per key per command)."""
    hashes: dict[bytes, dict | None] = {}

    def fetch(key: bytes, hash_field: bytes | None) -> bytes | None:
        if hash_field is None:
            value = db.lookup(key, shard.now)
            return value if value.__class__ is bytes else None
        if key not in hashes:
            value = db.lookup(key, shard.now)
            if value is None or values.type_name(value) != b"hash":
                hashes[key] = None
            else:
                hashes[key] = values.to_plain(value)[1][1]
        fields = hashes[key]
        return None if fields is None else fields.get(hash_field)

    return fetch


# -- scores -------------------------------------------------------------------------------

_SPACES = b" \t\n\v\f\r"
_INFINITY = re.compile(rb"([+-]?)inf(?:inity)?", re.IGNORECASE)
_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_HEX_PARTS = re.compile(rb"[+-]?0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)(?:[pP]([+-]?[0-9]+))?")
_DBL_MIN = sys.float_info.min


def parse_score(text: bytes) -> float | None:
    """A weight as Redis reads it: C's ``strtod`` of the string up to its first NUL byte,
    which must consume all of it; None when that fails.

    ``strtod`` skips leading white space and takes decimal or hexadecimal numbers and
    ``inf``/``infinity``; an empty string converts to 0 (nothing to consume, nothing left).
    Redis refuses NaN and results glibc flags ERANGE: overflow to infinity, and tiny values
    (below the smallest normal double) that are not exact. Both parsers below round
    correctly, as glibc does.
    """
    text = _c_string(text)
    if not text:
        return 0.0
    body = text.lstrip(_SPACES)
    infinity = _INFINITY.fullmatch(body)
    if infinity is not None:
        return -math.inf if infinity.group(1) == b"-" else math.inf
    if _HEX.fullmatch(body):
        try:
            score = float.fromhex(body.decode())
        except OverflowError:
            return None
        mantissa = body.partition(b"p")[0].partition(b"P")[0]
        tiny = _tiny_hex
    elif _DECIMAL.fullmatch(body):
        score = float(body)
        if math.isinf(score):
            return None
        mantissa = body.partition(b"e")[0].partition(b"E")[0]
        tiny = _tiny_decimal
    else:
        return None
    if score == 0:
        # Rounded to zero: ERANGE unless the literal is a zero.
        return None if mantissa.strip(b"+-.0xX") else score
    if abs(score) <= _DBL_MIN and tiny(body, score):
        return None
    return score


def _tiny_decimal(body: bytes, score: float) -> bool:
    """Whether a decimal literal is below the smallest normal double and ``score`` is not
    its exact value (``Decimal`` compares exactly, with no limit on digits)."""
    exact = Decimal(body.decode())
    return abs(exact) < Decimal(_DBL_MIN) and Decimal(score) != exact


def _tiny_hex(body: bytes, score: float) -> bool:
    """The same for a hexadecimal literal."""
    whole, fraction, exponent = _HEX_PARTS.fullmatch(body).groups()
    power = int(exponent or b"0") - 4 * len(fraction)
    exact = int(whole + fraction, 16) * Fraction(2) ** power
    return exact < Fraction(_DBL_MIN) and Fraction(abs(score)) != exact


# -- the sort itself ----------------------------------------------------------------------


def source_elements(kind: str, data: Any) -> list[bytes]:
    """A sortable value's elements in the order Redis iterates them: a list head to tail,
    an intset ascending, a hashtable set in its own order, a sorted set by rank."""
    if kind == "list":
        return list(data)
    big, contents = data
    if kind == "set":
        return list(contents) if big else sorted(contents, key=int)
    return [member for member, _score in contents]


def _limits(options: SortOptions, size: int) -> tuple[int, int]:
    """LIMIT as Redis clamps it: (start, end) inclusive, empty when end < start."""
    start = min(max(options.limit_start, 0), size)
    count = min(max(options.limit_count, -1), size)
    end = size - 1 if count < 0 else start + count - 1
    if start >= size:
        start, end = size - 1, size - 2
    return start, min(end, size - 1)


def _effective(options: SortOptions, kind: str) -> SortOptions:
    """BY nosort on a set with STORE, or in a script, sorts ALPHA instead (what is stored,
    or what a script goes on with, must not depend on the set's internal order)."""
    if options.dont_sort and kind == "set" and (options.store is not None or options.from_script):
        return replace(options, alpha=True, by=None, dont_sort=False)
    return options


def _vector(options: SortOptions, kind: str, elements: list[bytes]) -> tuple[list, int, int]:
    """The elements to sort or output, and the output range in them.

    Unsorted lists and sorted sets are read in their order (reversed by DESC), only the
    LIMIT range of them, as Redis does.
    """
    start, end = _limits(options, len(elements))
    if options.dont_sort and kind != "set":
        ordered = elements[::-1] if options.desc else elements
        vector = ordered[start : end + 1] if end >= start else []
        return vector, 0, len(vector) - 1
    return elements, start, end


def lookups(options: SortOptions, kind: str, elements: list[bytes]) -> list[Lookup]:
    """Every key (and field) the patterns may read for these elements: BY for each element
    to sort, GET for each one that may be output."""
    options = _effective(options, kind)
    vector, _start, _end = _vector(options, kind, elements)
    patterns = [pattern for pattern in options.gets if _names_keys(pattern)]
    if options.by is not None and not options.dont_sort:
        patterns.append(options.by)
    wanted: dict[Lookup, None] = {}
    for pattern in patterns:
        for element in vector:
            lookup = pattern_lookup(pattern, element)
            if lookup is not None:
                wanted[lookup] = None
    return list(wanted)


def sort_elements(
    options: SortOptions, kind: str, elements: list[bytes], fetch: Fetch
) -> list[bytes | None] | bytes:
    """What SORT outputs (GET values, None where one is missing), or the error reply."""
    options = _effective(options, kind)
    vector, start, end = _vector(options, kind, elements)
    if not options.dont_sort:
        vector = _sorted(options, vector, fetch)
        if vector.__class__ is bytes:
            return vector
    chosen = vector[start : end + 1] if end >= start else []
    if not options.gets:
        return chosen
    return [resolve(pattern, element, fetch) for element in chosen for pattern in options.gets]


def _sorted(options: SortOptions, vector: list[bytes], fetch: Fetch) -> list[bytes] | bytes:
    """The elements in SORT's order (see the module's docstring), or the error reply.

    Python's sort is stable, and stays stable with ``reverse``, as glibc's merge sort is
    with Redis's negated comparison for DESC.
    """
    by = options.by
    weights = [resolve(by, element, fetch) for element in vector] if by is not None else vector
    binary = options.store is not None
    if options.alpha:
        if by is None:
            keys: list[Any] = vector if binary else [_c_string(e) for e in vector]
        else:
            keys = [
                (0, b"") if weight is None else (1, weight if binary else _c_string(weight))
                for weight in weights
            ]
    else:
        keys = []
        for element, weight in zip(vector, weights, strict=True):
            score = 0.0 if weight is None else parse_score(weight)
            if score is None:
                return NOT_A_DOUBLE
            keys.append((score, element))
    order = sorted(range(len(vector)), key=keys.__getitem__, reverse=options.desc)
    return [vector[i] for i in order]


def sort_reply(
    options: SortOptions, kind: str, elements: list[bytes], fetch: Fetch, enc
) -> tuple[bytes, list[bytes] | None]:
    """The reply, and what STORE stores (None: no STORE; an empty list: delete)."""
    output = sort_elements(options, kind, elements, fetch)
    if output.__class__ is bytes:
        return output, None
    if options.store is None:
        return enc.bulk_array(output), None
    stored = [b"" if each is None else each for each in output]
    return enc.integer(len(stored)), stored


# -- where it runs ------------------------------------------------------------------------


def _read_source(shard, db, key: bytes) -> tuple[str, list[bytes]] | bool | None:
    """A key's type and elements in Redis's order; None if missing, False if not sortable.

    A sorted set still in its compact encoding is converted to a skiplist, as Redis's
    SORT converts it (destructively, for good).
    """
    value = db.lookup(key, shard.now)
    if value is None:
        return None
    kind = values.type_name(value).decode()
    if kind not in SORTABLE:
        return False
    data = values.to_plain(value)[1]
    if kind == "zset" and not data[0]:
        data = (True, data[1])
        db.store_keep_deadline(key, values.TYPES["zset"].from_plain(data))
    return kind, source_elements(kind, data)


def sort(shard, db, argv: list[bytes], enc) -> bytes:
    """SORT and SORT_RO in the shard that holds the source and every key it reads."""
    options = parse_options(argv)
    if options.__class__ is bytes:
        return options
    if shard.scripts.running:
        options = replace(options, from_script=True)
    source = _read_source(shard, db, argv[1])
    if source is False:
        return WRONGTYPE
    kind, elements = source or ("list", [])
    reply, stored = sort_reply(options, kind, elements, fetch_from(shard, db), enc)
    if stored:
        db.store(options.store, values.from_plain(("list", stored)))
    elif stored is not None:
        db.delete(options.store)
    return reply


def source_part(shard, db, argv: list[bytes]) -> tuple[str, list[bytes]] | bool | None:
    """Internal: the source of a coordinated SORT (see :func:`_read_source`)."""
    return _read_source(shard, db, argv[1])


def fetch_part(shard, db, argv: list[Any]) -> list[bytes | None]:
    """Internal: the values patterns name (argv: name, then key and field pairs, field
    None for a string key)."""
    fetch = fetch_from(shard, db)
    return [fetch(argv[i], argv[i + 1]) for i in range(1, len(argv), 2)]


def plan_sort(session, argv: list[bytes]) -> Plan:
    """SORT over several shards: read the source (and hold the STORE destination's shard),
    then every key its patterns name, then sort and store, all while the shards are held
    (every shard when patterns may name keys anywhere)."""
    options = parse_options(argv)
    if options.__class__ is not bytes and session.in_script:
        options = replace(options, from_script=True)
    enc = session.enc
    hold_all = uses_patterns(argv)
    reads = [Step(argv[1], [b"@sortsource", argv[1]])]
    if options.store is not None:
        reads.append(Step(options.store, [b"@exists", options.store]))

    def decide_source(results: list[Any]) -> tuple[bytes, list[Step]] | Plan:
        source = results[0]
        if source is False:
            return WRONGTYPE, []
        kind, elements = source or ("list", [])
        wanted = lookups(options, kind, elements)
        if not wanted:
            return finish(kind, elements, {})
        by_shard: dict[int, list] = {}
        for key, hash_field in wanted:
            by_shard.setdefault(session.server.shard_of_key(key), []).append((key, hash_field))
        groups = list(by_shard.values())
        steps = [
            Step(group[0][0], [b"@sortfetch", *[part for pair in group for part in pair]])
            for group in groups
        ]

        def decide_values(found: list[list]) -> tuple[bytes, list[Step]]:
            known = {
                pair: value
                for group, group_values in zip(groups, found, strict=True)
                for pair, value in zip(group, group_values, strict=True)
            }
            return finish(kind, elements, known)

        return Plan(steps, decide_values)

    def finish(kind: str, elements: list[bytes], known: dict) -> tuple[bytes, list[Step]]:
        def fetch(key: bytes, hash_field: bytes | None) -> bytes | None:
            return known.get((key, hash_field))

        reply, stored = sort_reply(options, kind, elements, fetch, enc)
        destination = options.store
        if stored:
            write = [b"@put", destination, ("list", stored), None, b"sortstore"]
            return reply, [Step(destination, write)]
        if stored is not None:
            return reply, [Step(destination, [b"@del", destination])]
        return reply, []

    return Plan(reads, decide_source, hold_all=hold_all)


def propagate_sort(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """What the log records: the STORE destination's final state (its rebuild, or its
    deletion); nothing for a SORT without STORE, which changes no key."""
    options = parse_options(argv)
    if reply[:1] == b"-" or options.__class__ is bytes or options.store is None:
        return []
    commands = [[b"DEL", options.store]]
    value = db.lookup(options.store, shard.now)
    if value is not None:
        commands.extend(values.rebuild(options.store, value))
    return commands


ROWS = [
    Command(
        "sort",
        Route.COORD,
        sort,
        plan=plan_sort,
        check=check_sort,
        keys=sort_keys,
        undeclared_keys=uses_patterns,
        propagate=propagate_sort,
        notes="BY/GET patterns naming other shards' keys: coordinated over every shard; "
        "ALPHA compares bytes (Redis's strcoll in the C.UTF-8 locale)",
    ),
    Command(
        "sort_ro",
        Route.COORD,
        sort,
        plan=plan_sort,
        check=check_sort,
        keys=sort_keys,
        undeclared_keys=uses_patterns,
        notes="as SORT",
    ),
]

#: Internal parts of SORT's plan, by wire name.
INTERNAL_PARTS = {b"@sortsource": source_part, b"@sortfetch": fetch_part}
