"""The RDB format, as Redis 7.0 writes and reads it: one value (what DUMP and RESTORE carry,
what a dump holds per key) and whole dumps (``dump.rdb``).

**A value** is a type byte and a payload. Each type is written in the encoding Redis 7.0
writes for the value's current encoding (``value.encoding()``): strings as strings (small
integers integer-encoded), lists as ``LIST_QUICKLIST_2`` (listpack nodes cut as
``list-max-listpack-size`` would cut them, plain nodes for elements of 1 GB and more),
hashes as ``HASH_LISTPACK`` or ``HASH``, sets as ``SET_INTSET`` or ``SET``, sorted sets as
``ZSET_LISTPACK`` or ``ZSET_2`` (binary doubles). Reading takes every encoding Redis 7.0
reads, the older ones too (``LIST``, ``LIST_ZIPLIST``, ``LIST_QUICKLIST``, ``HASH_ZIPMAP``,
``HASH_ZIPLIST``, ``ZSET`` with string scores, ``ZSET_ZIPLIST``) and 7.2's ``SET_LISTPACK``,
and decides the compact-or-big encoding from the content and :class:`Limits` exactly as
Redis converts on load, so OBJECT ENCODING answers the same after a load or a RESTORE.
Values are built with ``values.TYPES[name].from_plain`` from the plain forms of
:mod:`shardserver.values`. Streams are ``STREAM_LISTPACKS_2`` both ways (and
``STREAM_LISTPACKS`` read), see :mod:`shardserver.persistence.streamrdb`; 7.2's
``STREAM_LISTPACKS_3`` and module values are refused with a message that names them.
:func:`encode_value` and :func:`decode_value` are the whole API for one value;
:func:`dump_payload`, :func:`payload_intact` and :func:`load_payload` add DUMP's footer (RDB
version, CRC-64).

LZF compression (:mod:`shardserver.persistence.lzf`) is applied where Redis applies it (any
string over 20 bytes that shrinks by 4), but only in DUMP payloads of values up to
:data:`COMPRESS_LIMIT` bytes: in pure Python it runs at 1-5 MB/s, which a DUMP of a small
value affords (and then matches redis-server byte for byte), but which would stall a shard
on a DUMP of a big container and make snapshots of big keyspaces many times slower. Redis
reads compressed and verbatim strings alike.

**A dump** is ``REDIS0010``, auxiliary fields, FUNCTION LOAD's libraries (a FUNCTION2
opcode and the library's code each), then per database a SELECTDB opcode and its keys (an
optional EXPIRETIME_MS opcode, the type byte, the key and the value), the EOF opcode and the
CRC-64 of everything before it, little-endian. Shards write *fragments*: their own keys,
each database introduced by SELECTDB; shard 0's begins with the libraries. Redis's loader
accepts a database selected more than once, so the acceptor's dump is simply the header,
every shard's fragment in turn, and the trailer; the checksum is combined from the fragments' own
(:func:`shardserver.persistence.crc64.combine`).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from shardserver import values
from shardserver.numbers import parse_int
from shardserver.persistence import intset, listpack, lzf, streamrdb, ziplist
from shardserver.persistence.crc64 import combine, crc64
from shardserver.persistence.lzf import decompress as lzf_decompress

VERSION = 10
MAGIC = b"REDIS%04d" % VERSION

OP_FUNCTION2, OP_FUNCTION_PRE_GA, OP_MODULE_AUX = 0xF5, 0xF6, 0xF7
OP_IDLE, OP_FREQ, OP_AUX, OP_RESIZEDB = 0xF8, 0xF9, 0xFA, 0xFB
OP_EXPIRETIME_MS, OP_EXPIRETIME, OP_SELECTDB, OP_EOF = 0xFC, 0xFD, 0xFE, 0xFF

TYPE_STRING, TYPE_LIST, TYPE_SET, TYPE_ZSET, TYPE_HASH, TYPE_ZSET_2 = 0, 1, 2, 3, 4, 5
TYPE_MODULE_PRE_GA, TYPE_MODULE_2 = 6, 7
TYPE_HASH_ZIPMAP, TYPE_LIST_ZIPLIST, TYPE_SET_INTSET, TYPE_ZSET_ZIPLIST = 9, 10, 11, 12
TYPE_HASH_ZIPLIST, TYPE_LIST_QUICKLIST, TYPE_STREAM_LISTPACKS = 13, 14, 15
TYPE_HASH_LISTPACK, TYPE_ZSET_LISTPACK, TYPE_LIST_QUICKLIST_2 = 16, 17, 18
TYPE_STREAM_LISTPACKS_2, TYPE_SET_LISTPACK, TYPE_STREAM_LISTPACKS_3 = 19, 20, 21

#: The family each value type byte loads into.
TYPE_FAMILY = {
    TYPE_STRING: "string",
    TYPE_LIST: "list",
    TYPE_LIST_ZIPLIST: "list",
    TYPE_LIST_QUICKLIST: "list",
    TYPE_LIST_QUICKLIST_2: "list",
    TYPE_SET: "set",
    TYPE_SET_INTSET: "set",
    TYPE_SET_LISTPACK: "set",
    TYPE_ZSET: "zset",
    TYPE_ZSET_2: "zset",
    TYPE_ZSET_ZIPLIST: "zset",
    TYPE_ZSET_LISTPACK: "zset",
    TYPE_HASH: "hash",
    TYPE_HASH_ZIPMAP: "hash",
    TYPE_HASH_ZIPLIST: "hash",
    TYPE_HASH_LISTPACK: "hash",
    TYPE_STREAM_LISTPACKS: "stream",
    TYPE_STREAM_LISTPACKS_2: "stream",
}
#: Redis 7.2's streams (consumers' active time): not read here.
_STREAM_TYPES = frozenset((TYPE_STREAM_LISTPACKS_3,))
_MODULE_TYPES = frozenset((TYPE_MODULE_PRE_GA, TYPE_MODULE_2))

_ENC_INT8, _ENC_INT16, _ENC_INT32, _ENC_LZF = 0, 1, 2, 3
_INT_WIDTH = {_ENC_INT8: 1, _ENC_INT16: 2, _ENC_INT32: 4}

#: DUMP payloads whose value takes more than this verbatim are not LZF-compressed (see the
#: module docstring).
COMPRESS_LIMIT = 64 * 1024

#: quicklist.c: a node's listpack grows while its size stays within the level that a
#: negative ``list-max-listpack-size`` names (-1: 4 KB ... -5: 64 KB); with a positive
#: one, while it has fewer entries than that and stays within 8 KB. Each element is
#: estimated at its length plus 8 bytes, as quicklist estimates it before inserting.
_NODE_SIZE_LEVELS = (4096, 8192, 16384, 32768, 65536)
_NODE_SAFETY_LIMIT = 8192
_NODE_ENTRY_OVERHEAD = 8
_FILL_MAX = 32767
#: Elements this long get a plain node of their own (quicklist's packed_threshold).
PLAIN_NODE_THRESHOLD = 1 << 30
_NODE_PLAIN, _NODE_PACKED = 1, 2

#: ``(double)(LLONG_MAX / 2)``: the bound of ``double2ll``.
_DOUBLE2LL_LIMIT = 4611686018427387904.0

_pack_double = struct.Struct("<d").pack
_unpack_double = struct.Struct("<d").unpack
_pack_version = struct.Struct("<H").pack
_pack_crc = struct.Struct("<Q").pack


class RdbError(ValueError):
    """Data that cannot be loaded; a dump's message names the file and the byte offset."""


class Unsupported(RdbError):
    """A value of a type Redis writes that this server cannot hold (streams, modules)."""


class Limits(NamedTuple):
    """The encoding thresholds that decide, on load, whether a value is compact or big."""

    hash_entries: int = 512
    hash_value: int = 64
    zset_entries: int = 128
    zset_value: int = 64
    intset_entries: int = 512

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Limits:
        """The thresholds in a shard's settings (Redis's built-in defaults where absent)."""
        default = cls()
        return cls(
            settings.get("hash-max-listpack-entries", default.hash_entries),
            settings.get("hash-max-listpack-value", default.hash_value),
            settings.get("zset-max-listpack-entries", default.zset_entries),
            settings.get("zset-max-listpack-value", default.zset_value),
            settings.get("set-max-intset-entries", default.intset_entries),
        )


# -- lengths and strings ------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    if length < 0x40:
        return bytes((length,))
    if length < 0x4000:
        return bytes((0x40 | (length >> 8), length & 0xFF))
    if length <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", length)
    return b"\x81" + struct.pack(">Q", length)


def encode_string(data: bytes, compress: bool = False) -> bytes:
    """A string as ``rdbSaveRawString`` writes it: integer-encoded when it is a decimal
    integer of 32 bits in at most 11 characters, LZF-compressed when asked, over 20 bytes
    and at least 4 bytes shorter so, else verbatim."""
    size = len(data)
    if size <= 11:
        number = parse_int(data)
        if number is not None and -(2**31) <= number < 2**31:
            if -128 <= number <= 127:
                return b"\xc0" + struct.pack("<b", number)
            if -32768 <= number <= 32767:
                return b"\xc1" + struct.pack("<h", number)
            return b"\xc2" + struct.pack("<i", number)
        return bytes((size,)) + data
    if compress and size > 20:
        packed = lzf.compress(data, size - 4)
        if packed is not None:
            return b"\xc3" + encode_length(len(packed)) + encode_length(size) + packed
    return encode_length(size) + data


def listpack_score(score: float) -> bytes:
    """A score as Redis 7.0 puts it in a sorted-set listpack: an integral score within
    ±2^62 as that integer (``double2ll``, so -0 is 0), else ``d2string``'s text: ``inf``,
    ``-inf`` or ``%.17g``."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    if -_DOUBLE2LL_LIMIT <= score <= _DOUBLE2LL_LIMIT and score == int(score):
        return b"%d" % int(score)
    return b"%.17g" % score


# -- one value: writing -------------------------------------------------------------------


def encode_value(value: object, list_fill: int = -2, compress: bool = False) -> tuple[int, bytes]:
    """(type byte, payload) of a stored value, in the encoding Redis 7.0 writes for its
    current encoding; ``list_fill`` is ``list-max-listpack-size``."""
    if value.__class__ is bytes:
        return TYPE_STRING, encode_string(value, compress)  # type: ignore[arg-type]
    kind, plain = values.to_plain(value)
    encoding = value.encoding()  # type: ignore[attr-defined]
    if kind == "list":
        return TYPE_LIST_QUICKLIST_2, _encode_quicklist(plain, list_fill, compress)
    if kind == "hash":
        return _encode_hash(plain[1], encoding == "listpack", compress)
    if kind == "set":
        return _encode_set(plain[1], encoding == "intset", compress)
    if kind == "zset":
        return _encode_zset(plain[1], encoding == "listpack", compress)
    if kind == "stream":
        body = streamrdb.encode(value, encode_length, encode_string, compress)  # type: ignore[arg-type]
        return TYPE_STREAM_LISTPACKS_2, body
    raise RdbError(f"no RDB encoding for {kind} values")


def quicklist_nodes(elements: Iterable[bytes], fill: int) -> list[tuple[int, bytes]]:
    """The nodes (container, listpack or plain element) that pushing ``elements`` to the
    tail one by one gives a quicklist with ``list-max-listpack-size`` ``fill``."""
    fill = max(-5, min(fill, _FILL_MAX))
    level = _NODE_SIZE_LEVELS[-fill - 1] if fill < 0 else 0
    nodes: list[tuple[int, bytes]] = []
    entries: list[bytes] = []
    size = 0
    make = listpack.entry
    for element in elements:
        length = len(element)
        if length >= PLAIN_NODE_THRESHOLD:
            if entries:
                nodes.append((_NODE_PACKED, listpack.join(entries)))
                entries = []
            nodes.append((_NODE_PLAIN, element))
            continue
        if entries:
            estimate = size + length + _NODE_ENTRY_OVERHEAD
            if fill < 0:
                fits = estimate <= level
            else:
                fits = estimate <= _NODE_SAFETY_LIMIT and len(entries) < fill
            if not fits:
                nodes.append((_NODE_PACKED, listpack.join(entries)))
                entries = []
        if not entries:
            size = listpack.EMPTY_SIZE
        item = make(element)
        entries.append(item)
        size += len(item)
    if entries:
        nodes.append((_NODE_PACKED, listpack.join(entries)))
    return nodes


def _encode_quicklist(elements: list[bytes], fill: int, compress: bool) -> bytes:
    nodes = quicklist_nodes(elements, fill)
    out = [encode_length(len(nodes))]
    for container, blob in nodes:
        out.append(bytes((container,)) + encode_string(blob, compress))
    return b"".join(out)


def _encode_hash(fields: dict[bytes, bytes], compact: bool, compress: bool) -> tuple[int, bytes]:
    if compact:
        make = listpack.entry
        entries = []
        for field, value in fields.items():
            entries.append(make(field))
            entries.append(make(value))
        return TYPE_HASH_LISTPACK, encode_string(listpack.join(entries), compress)
    out = [encode_length(len(fields))]
    for field, value in fields.items():
        out.append(encode_string(field, compress))
        out.append(encode_string(value, compress))
    return TYPE_HASH, b"".join(out)


def _encode_set(members: set[bytes], compact: bool, compress: bool) -> tuple[int, bytes]:
    if compact:
        numbers = [parse_int(member) for member in members]
        if None not in numbers:
            return TYPE_SET_INTSET, encode_string(intset.build(numbers), compress)  # type: ignore[arg-type]
    out = [encode_length(len(members))]
    out.extend(encode_string(member, compress) for member in members)
    return TYPE_SET, b"".join(out)


def _encode_zset(
    ranked: list[tuple[bytes, float]], compact: bool, compress: bool
) -> tuple[int, bytes]:
    if compact:
        make = listpack.entry
        entries = []
        for member, score in ranked:
            entries.append(make(member))
            entries.append(make(listpack_score(score)))
        return TYPE_ZSET_LISTPACK, encode_string(listpack.join(entries), compress)
    # Greatest first, as Redis walks its skiplist from the tail (loading then inserts each
    # element at the head).
    out = [encode_length(len(ranked))]
    for member, score in reversed(ranked):
        out.append(encode_string(member, compress) + _pack_double(score))
    return TYPE_ZSET_2, b"".join(out)


# -- one value: reading -------------------------------------------------------------------


class _Reader:
    """Cursor over RDB bytes; every short read is a truncation (EOFError)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise EOFError
        piece = self.data[self.pos : end]
        self.pos = end
        return piece

    def skip(self, count: int) -> None:
        end = self.pos + count
        if end > len(self.data):
            raise EOFError
        self.pos = end

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise EOFError
        value = self.data[self.pos]
        self.pos += 1
        return value

    def length(self) -> tuple[int, bool]:
        """(length, encoded): encoded means a special string encoding number."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return struct.unpack(">I", self.take(4))[0], False
        if first == 0x81:
            return struct.unpack(">Q", self.take(8))[0], False
        raise ValueError(f"unknown length encoding 0x{first:02x}")

    def count(self) -> int:
        """A length that must be a plain one (a count of elements)."""
        length, encoded = self.length()
        if encoded:
            raise ValueError("a string encoding where a count belongs")
        return length

    def string(self) -> bytes:
        length, encoded = self.length()
        if not encoded:
            return self.take(length)
        if length == _ENC_INT8:
            return b"%d" % struct.unpack("<b", self.take(1))[0]
        if length == _ENC_INT16:
            return b"%d" % struct.unpack("<h", self.take(2))[0]
        if length == _ENC_INT32:
            return b"%d" % struct.unpack("<i", self.take(4))[0]
        if length == _ENC_LZF:
            compressed = self.count()
            size = self.count()
            return lzf_decompress(self.take(compressed), size)
        raise ValueError(f"unknown string encoding {length}")

    def skip_string(self) -> None:
        length, encoded = self.length()
        if not encoded:
            self.skip(length)
        elif length in _INT_WIDTH:
            self.skip(_INT_WIDTH[length])
        elif length == _ENC_LZF:
            compressed = self.count()
            self.count()
            self.skip(compressed)
        else:
            raise ValueError(f"unknown string encoding {length}")

    def double_string(self) -> float:
        """A score of the old ZSET type: a length byte (253 NaN, 254 inf, 255 -inf) and
        the number in text."""
        size = self.byte()
        if size == 255:
            return -math.inf
        if size == 254:
            return math.inf
        if size == 253:
            return math.nan
        return float(self.take(size))


def refusal(kind: int) -> str | None:
    """Why a value of a type Redis writes cannot be loaded here (a stream, a module value,
    a family this server lacks); None if it can, or if ``kind`` is no value type at all."""
    if kind in _STREAM_TYPES:
        return "Redis 7.2's stream encoding (type 21) is not read by this server"
    if kind in _MODULE_TYPES:
        return "module values cannot be loaded (this server runs no modules)"
    family = TYPE_FAMILY.get(kind)
    if family is not None and family != "string" and family not in values.TYPES:
        return f"this server has no {family} type"
    return None


def decode_value(kind: int, data: bytes, limits: Limits | None = None) -> object | None:
    """The value that :func:`encode_value` (or Redis) wrote as ``(kind, data)``; None for
    an empty container (Redis skips those on load and refuses them in RESTORE). Raises
    Unsupported for a stream or module value, RdbError for anything else it cannot load.
    Bytes after the value are ignored."""
    reason = refusal(kind)
    if reason is not None:
        raise Unsupported(f"type {kind}: {reason}")
    if kind not in TYPE_FAMILY:
        raise RdbError(f"{kind} is not a value type")
    reader = _Reader(data)
    try:
        return _read_value(reader, kind, limits or Limits())
    except EOFError:
        raise RdbError(f"type {kind}: the data ends inside the value") from None
    except (ValueError, IndexError, struct.error) as problem:
        raise RdbError(f"type {kind}: {problem}") from None


def _read_value(reader: _Reader, kind: int, limits: Limits) -> object | None:
    """Read one value of a ``kind`` that :func:`refusal` allows."""
    if kind == TYPE_STRING:
        return reader.string()
    plain = _READERS[kind](reader, limits)
    if plain is None:
        return None
    return values.TYPES[TYPE_FAMILY[kind]].from_plain(plain)


def _read_list(reader: _Reader, limits: Limits) -> list[bytes] | None:
    elements = [reader.string() for _ in range(reader.count())]
    return elements or None


def _read_list_ziplist(reader: _Reader, limits: Limits) -> list[bytes] | None:
    return ziplist.parse(reader.string()) or None


def _read_quicklist(reader: _Reader, limits: Limits) -> list[bytes] | None:
    elements: list[bytes] = []
    for _ in range(reader.count()):
        blob = reader.string()
        if not blob:
            raise ValueError("empty quicklist node")
        elements.extend(ziplist.parse(blob))
    return elements or None


def _read_quicklist_2(reader: _Reader, limits: Limits) -> list[bytes] | None:
    elements: list[bytes] = []
    for _ in range(reader.count()):
        container = reader.count()
        if container not in (_NODE_PLAIN, _NODE_PACKED):
            raise ValueError(f"quicklist node container {container} is neither plain nor packed")
        blob = reader.string()
        if not blob:
            raise ValueError("empty quicklist node")
        if container == _NODE_PLAIN:
            elements.append(blob)
        else:
            elements.extend(listpack.parse(blob))
    return elements or None


def _set_plain(members: list[bytes], limits: Limits) -> tuple[bool, set[bytes]] | None:
    """RDB_TYPE_SET's rule: an intset while every member is a 64-bit integer and there
    are at most ``set-max-intset-entries``, else a hash table."""
    if not members:
        return None
    unique = set(members)
    if len(unique) != len(members):
        raise ValueError("duplicate set members")
    big = len(unique) > limits.intset_entries or any(parse_int(m) is None for m in unique)
    return big, unique


def _read_set(reader: _Reader, limits: Limits) -> tuple[bool, set[bytes]] | None:
    return _set_plain([reader.string() for _ in range(reader.count())], limits)


def _read_set_listpack(reader: _Reader, limits: Limits) -> tuple[bool, set[bytes]] | None:
    # Redis 7.2's listpack sets: 7.0 has no such encoding, so the RDB_TYPE_SET rule decides.
    return _set_plain(listpack.parse(reader.string()), limits)


def _read_set_intset(reader: _Reader, limits: Limits) -> tuple[bool, set[bytes]] | None:
    members = intset.parse(reader.string())
    if not members:
        return None
    return len(members) > limits.intset_entries, {b"%d" % member for member in members}


def _zset_plain(
    pairs: list[tuple[bytes, float]], big: bool
) -> tuple[bool, list[tuple[bytes, float]]] | None:
    if not pairs:
        return None
    if any(score != score for _, score in pairs):
        raise ValueError("sorted set with a NaN score")
    if len({member for member, _ in pairs}) != len(pairs):
        raise ValueError("duplicate sorted set members")
    # Listpacks hold rank order and ZSET_2 its reverse: both runs sort in linear time.
    pairs.sort(key=_rank)
    return big, pairs


def _rank(pair: tuple[bytes, float]) -> tuple[float, bytes]:
    return pair[1], pair[0]


def _zset_big(pairs: list[tuple[bytes, float]], limits: Limits) -> bool:
    """ZSET and ZSET_2's rule: a listpack when both the count and the longest member are
    within the thresholds (Redis converts after loading)."""
    if len(pairs) > limits.zset_entries:
        return True
    return any(len(member) > limits.zset_value for member, _ in pairs)


def _read_zset(reader: _Reader, limits: Limits) -> tuple[bool, list] | None:
    pairs = []
    for _ in range(reader.count()):
        member = reader.string()
        pairs.append((member, reader.double_string()))
    return _zset_plain(pairs, _zset_big(pairs, limits))


def _read_zset_2(reader: _Reader, limits: Limits) -> tuple[bool, list] | None:
    pairs = []
    for _ in range(reader.count()):
        member = reader.string()
        pairs.append((member, _unpack_double(reader.take(8))[0]))
    return _zset_plain(pairs, _zset_big(pairs, limits))


def _zset_from_flat(flat: list[bytes], limits: Limits) -> tuple[bool, list] | None:
    """ZSET_ZIPLIST and ZSET_LISTPACK: member, score, ...; Redis converts on the count only."""
    if len(flat) % 2:
        raise ValueError("sorted set listpack with an odd number of entries")
    pairs = [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
    return _zset_plain(pairs, len(pairs) > limits.zset_entries)


def _read_zset_ziplist(reader: _Reader, limits: Limits) -> tuple[bool, list] | None:
    return _zset_from_flat(ziplist.parse(reader.string()), limits)


def _read_zset_listpack(reader: _Reader, limits: Limits) -> tuple[bool, list] | None:
    return _zset_from_flat(listpack.parse(reader.string()), limits)


def _hash_plain(flat: list[bytes], big: bool) -> tuple[bool, dict[bytes, bytes]] | None:
    if len(flat) % 2:
        raise ValueError("hash with an odd number of fields and values")
    if not flat:
        return None
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    if len(fields) * 2 != len(flat):
        raise ValueError("duplicate hash fields")
    return big, fields


def _hash_big_by_content(flat: list[bytes], limits: Limits) -> bool:
    """HASH and HASH_ZIPMAP's rule: a hash table beyond the entry count or when a field or
    value is longer than ``hash-max-listpack-value``."""
    if len(flat) // 2 > limits.hash_entries:
        return True
    longest = limits.hash_value
    return any(len(item) > longest for item in flat)


def _read_hash(reader: _Reader, limits: Limits) -> tuple[bool, dict] | None:
    flat = [reader.string() for _ in range(2 * reader.count())]
    return _hash_plain(flat, _hash_big_by_content(flat, limits))


def _read_hash_zipmap(reader: _Reader, limits: Limits) -> tuple[bool, dict] | None:
    flat = ziplist.parse_zipmap(reader.string())
    return _hash_plain(flat, _hash_big_by_content(flat, limits))


def _read_hash_ziplist(reader: _Reader, limits: Limits) -> tuple[bool, dict] | None:
    flat = ziplist.parse(reader.string())
    return _hash_plain(flat, len(flat) // 2 > limits.hash_entries)


def _read_hash_listpack(reader: _Reader, limits: Limits) -> tuple[bool, dict] | None:
    flat = listpack.parse(reader.string())
    return _hash_plain(flat, len(flat) // 2 > limits.hash_entries)


_READERS: dict[int, Callable[[_Reader, Limits], Any]] = {
    TYPE_LIST: _read_list,
    TYPE_LIST_ZIPLIST: _read_list_ziplist,
    TYPE_LIST_QUICKLIST: _read_quicklist,
    TYPE_LIST_QUICKLIST_2: _read_quicklist_2,
    TYPE_SET: _read_set,
    TYPE_SET_INTSET: _read_set_intset,
    TYPE_SET_LISTPACK: _read_set_listpack,
    TYPE_ZSET: _read_zset,
    TYPE_ZSET_2: _read_zset_2,
    TYPE_ZSET_ZIPLIST: _read_zset_ziplist,
    TYPE_ZSET_LISTPACK: _read_zset_listpack,
    TYPE_HASH: _read_hash,
    TYPE_HASH_ZIPMAP: _read_hash_zipmap,
    TYPE_HASH_ZIPLIST: _read_hash_ziplist,
    TYPE_HASH_LISTPACK: _read_hash_listpack,
    TYPE_STREAM_LISTPACKS: lambda reader, limits: _read_stream(reader, TYPE_STREAM_LISTPACKS),
    TYPE_STREAM_LISTPACKS_2: lambda reader, limits: _read_stream(reader, TYPE_STREAM_LISTPACKS_2),
}


def _read_stream(reader: _Reader, kind: int) -> tuple:
    return streamrdb.read(reader, kind).to_plain()


def _skip_value(reader: _Reader, kind: int) -> None:
    """Step over a value without building it (a key another shard keeps)."""
    if kind in (TYPE_LIST, TYPE_SET, TYPE_LIST_QUICKLIST):
        for _ in range(reader.count()):
            reader.skip_string()
    elif kind == TYPE_LIST_QUICKLIST_2:
        for _ in range(reader.count()):
            reader.count()
            reader.skip_string()
    elif kind == TYPE_HASH:
        for _ in range(2 * reader.count()):
            reader.skip_string()
    elif kind == TYPE_ZSET:
        for _ in range(reader.count()):
            reader.skip_string()
            size = reader.byte()
            if size < 253:
                reader.skip(size)
    elif kind == TYPE_ZSET_2:
        for _ in range(reader.count()):
            reader.skip_string()
            reader.skip(8)
    elif kind in (TYPE_STREAM_LISTPACKS, TYPE_STREAM_LISTPACKS_2):
        streamrdb.read(reader, kind)
    else:  # a string, or one of the encodings held in one string
        reader.skip_string()


# -- DUMP payloads ------------------------------------------------------------------------


def dump_payload(value: object, list_fill: int = -2) -> bytes:
    """DUMP's serialization: type byte, value (compressed as Redis compresses it), the RDB
    version as 2 bytes and the CRC-64 of all that as 8 bytes, little-endian."""
    kind, body = encode_value(value, list_fill)
    if len(body) <= COMPRESS_LIMIT:
        kind, body = encode_value(value, list_fill, compress=True)
    data = bytes((kind,)) + body + _pack_version(VERSION)
    return data + _pack_crc(crc64(data))


def payload_intact(payload: bytes) -> bool:
    """RESTORE's first check (``verifyDumpPayload``): a footer with an RDB version this
    server reads and a CRC-64 that matches."""
    if len(payload) < 10:
        return False
    version = payload[-10] | (payload[-9] << 8)
    if version > VERSION:
        return False
    return crc64(memoryview(payload)[:-8]) == int.from_bytes(payload[-8:], "little")


def load_payload(payload: bytes, limits: Limits | None = None) -> object | None:
    """The value of a payload that :func:`payload_intact` accepted; None for an empty
    container. Like Redis, the value is read from everything after the type byte, footer
    included (a value cut short reads into it). Raises as :func:`decode_value` does."""
    if not payload:
        raise RdbError("empty payload")
    return decode_value(payload[0], payload[1:], limits)


def functions_payload(codes: list[bytes]) -> bytes:
    """FUNCTION DUMP's serialization: each library's code behind the FUNCTION2 opcode, then
    the footer of a DUMP payload."""
    data = b"".join(bytes((OP_FUNCTION2,)) + encode_string(code, compress=True) for code in codes)
    data += _pack_version(VERSION)
    return data + _pack_crc(crc64(data))


def load_functions_payload(payload: bytes) -> list[bytes] | None:
    """The libraries' code in a payload that :func:`payload_intact` accepted; None when
    something in it is not a library. Raises EOFError for a payload cut short."""
    reader = _Reader(payload[:-10])
    codes = []
    while reader.pos < len(reader.data):
        if reader.byte() != OP_FUNCTION2:
            return None
        codes.append(reader.string())
    return codes


# -- dumps --------------------------------------------------------------------------------


def header(aux: dict[str, bytes]) -> bytes:
    """Magic and auxiliary fields (what ``redis-server`` prints when it loads the dump)."""
    out = [MAGIC]
    for name, value in aux.items():
        out.append(b"\xfa" + encode_string(name.encode()) + encode_string(value))
    return b"".join(out)


def default_aux() -> dict[str, bytes]:
    return {
        "redis-ver": b"7.0.15",
        "redis-bits": b"64",
        "ctime": b"%d" % int(time.time()),
        "used-mem": b"0",
        "aof-base": b"0",
    }


def write_fragment(
    write: Callable[[bytes], object],
    databases: Iterable[tuple[int, dict, dict]],
    now: int,
    list_fill: int = -2,
    libraries: Iterable[bytes] = (),
) -> tuple[int, int, int]:
    """Write one shard's keys (``(index, data, deadlines)`` per database), after the
    ``libraries``' code as FUNCTION2 records (shard 0's fragment carries them: it comes
    first, so they precede every key, where Redis writes them); returns (bytes, crc64,
    keys). Keys already past their deadline are left out, as Redis does."""
    size = crc = keys = 0
    chunk: list[bytes] = [bytes((OP_FUNCTION2,)) + encode_string(code) for code in libraries]
    pending = 0

    def emit() -> None:
        nonlocal size, crc, pending
        block = b"".join(chunk)
        chunk.clear()
        pending = 0
        write(block)
        size += len(block)
        crc = crc64(block, crc)

    for index, data, deadlines in databases:
        if not data:
            continue
        chunk.append(b"\xfe" + encode_length(index))
        chunk.append(b"\xfb" + encode_length(len(data)) + encode_length(len(deadlines)))
        for key, value in data.items():
            when = deadlines.get(key)
            if when is not None:
                if when <= now:
                    continue
                chunk.append(b"\xfc" + struct.pack("<q", when))
            kind, body = encode_value(value, list_fill)
            record = bytes((kind,)) + encode_string(key) + body
            chunk.append(record)
            keys += 1
            pending += len(record)
            if pending > 1 << 20:
                emit()
    emit()
    return size, crc, keys


def trailer_crc(head: bytes, pieces: list[tuple[int, int]]) -> tuple[bytes, int]:
    """The EOF opcode and the whole dump's CRC, from the header and each fragment's
    (size, crc)."""
    crc = crc64(head)
    for size, piece_crc in pieces:
        crc = combine(crc, piece_crc, size)
    crc = crc64(b"\xff", crc)
    return b"\xff" + struct.pack("<Q", crc), crc


def write_dump(path: str, head: bytes, fragments: list[str], pieces: list[tuple[int, int]]) -> int:
    """Join the header and shard fragments (the first ``size`` bytes of each, per
    ``pieces``) into ``path`` atomically (temporary file, fsync, rename, fsync of the
    directory), so a crash leaves the previous dump whole; returns its size."""
    temp = f"{path}.temp-{os.getpid()}"
    tail, _crc = trailer_crc(head, pieces)
    try:
        with open(temp, "wb") as out:
            out.write(head)
            for fragment, (size, _crc) in zip(fragments, pieces, strict=True):
                with open(fragment, "rb") as piece:
                    left = size
                    while left and (block := piece.read(min(left, 1 << 20))):
                        out.write(block)
                        left -= len(block)
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return size


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_dump(
    path: str,
    data: bytes,
    settings: Mapping[str, Any] | None = None,
    keep: Callable[[bytes, int | None], bool] | None = None,
    library: Callable[[bytes], None] | None = None,
) -> Iterator[tuple[int, bytes, object, int | None]]:
    """Every key of a dump as (db, key, value, deadline ms or None), values built with the
    encoding thresholds in ``settings``. Keys for which ``keep(key, deadline)`` is false
    are stepped over without building their values; empty containers are skipped, as Redis
    skips them. Each FUNCTION2 record's library code goes to ``library`` (skipped without
    one). Raises RdbError naming ``path`` and the offset on anything it cannot load
    (truncation, bad checksum, a stream or module value, an unknown opcode, a corrupt
    encoding, functions in the format of 7.0's release candidates)."""
    reader = _Reader(data)
    if data[:5] != b"REDIS" or not data[5:9].isdigit():
        raise RdbError(f"{path}: not an RDB file (bad magic at offset 0)")
    version = int(data[5:9])
    if version > VERSION:
        raise RdbError(f"{path}: RDB version {version} is newer than this server reads (10)")
    limits = Limits.of(settings or {})
    reader.pos = 9
    db = 0
    deadline: int | None = None
    start = 9
    try:
        while True:
            start = reader.pos
            op = reader.byte()
            if op == OP_EOF:
                _check_crc(path, data, reader.pos, version)
                return
            if op == OP_SELECTDB:
                db = reader.count()
            elif op == OP_RESIZEDB:
                reader.count()
                reader.count()
            elif op == OP_AUX:
                reader.skip_string()
                reader.skip_string()
            elif op == OP_EXPIRETIME_MS:
                deadline = struct.unpack("<q", reader.take(8))[0]
            elif op == OP_EXPIRETIME:
                deadline = struct.unpack("<i", reader.take(4))[0] * 1000
            elif op == OP_IDLE:
                reader.count()
            elif op == OP_FREQ:
                reader.byte()
            elif op == OP_FUNCTION2:
                if library is None:
                    reader.skip_string()
                else:
                    library(reader.string())
            elif op == OP_FUNCTION_PRE_GA:  # redis-server 7.0 refuses it too, in these words
                raise RdbError(
                    f"{path}: Pre-release function format not supported (opcode {op} at "
                    f"offset {start})"
                )
            elif op == OP_MODULE_AUX:
                raise RdbError(
                    f"{path}: opcode {op} at offset {start} is not supported "
                    "(module data needs modules, which this server lacks)"
                )
            else:
                reason = refusal(op)
                if reason is None and op not in TYPE_FAMILY:
                    reason = "not a value type or opcode Redis 7.0 writes"
                if reason is not None:
                    raise RdbError(
                        f"{path}: value type or opcode {op} at offset {start} is not "
                        f"supported: {reason}"
                    )
                key = reader.string()
                if keep is not None and not keep(key, deadline):
                    _skip_value(reader, op)
                else:
                    value = _read_value(reader, op, limits)
                    if value is not None:
                        yield db, key, value, deadline
                deadline = None
    except EOFError:
        raise RdbError(f"{path}: truncated at offset {len(data)} (record at {start})") from None
    except (ValueError, IndexError, struct.error) as problem:
        if isinstance(problem, RdbError):
            raise
        raise RdbError(f"{path}: corrupt record at offset {start}: {problem}") from None


def _check_crc(path: str, data: bytes, end: int, version: int) -> None:
    if version < 5:
        return
    stored = data[end : end + 8]
    if len(stored) < 8:
        raise RdbError(f"{path}: truncated at offset {len(data)} (checksum missing)")
    expected = struct.unpack("<Q", stored)[0]
    if expected and crc64(memoryview(data)[:end]) != expected:
        raise RdbError(f"{path}: wrong RDB checksum (expected at offset {end}); file is corrupt")
