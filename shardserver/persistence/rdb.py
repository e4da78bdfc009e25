"""The RDB snapshot format, as Redis 7.0 writes and reads it (strings, with deadlines).

A dump is ``REDIS0010``, auxiliary fields, then per database a SELECTDB opcode and its keys
(an optional EXPIRETIME_MS opcode, the type byte, the key and the value as length-prefixed
strings), the EOF opcode and the CRC-64 of everything before it, little-endian.

Shards write *fragments*: their own keys, each database introduced by SELECTDB. Redis's
loader accepts a database selected more than once, so the acceptor's dump is simply the
header, every shard's fragment in turn, and the trailer; the checksum is combined from the
fragments' own (:func:`shardserver.persistence.crc64.combine`).

Reading accepts what redis-server 7.0 writes for strings: integer-encoded and LZF-compressed
strings, second and millisecond deadlines, RESIZEDB, IDLE/FREQ and function opcodes; a value
of another type is refused with its offset (this server stores strings only), rather than
dropped, so that no later save silently loses it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator

from shardserver.persistence.crc64 import combine, crc64

VERSION = 10
MAGIC = b"REDIS%04d" % VERSION

OP_FUNCTION2, OP_MODULE_AUX, OP_IDLE, OP_FREQ = 0xF5, 0xF7, 0xF8, 0xF9
OP_AUX, OP_RESIZEDB, OP_EXPIRETIME_MS, OP_EXPIRETIME = 0xFA, 0xFB, 0xFC, 0xFD
OP_SELECTDB, OP_EOF = 0xFE, 0xFF
TYPE_STRING = 0
_ENC_INT8, _ENC_INT16, _ENC_INT32, _ENC_LZF = 0, 1, 2, 3


class RdbError(ValueError):
    """A dump that cannot be loaded; the message names the file and the byte offset."""


def encode_length(length: int) -> bytes:
    if length < 0x40:
        return bytes((length,))
    if length < 0x4000:
        return bytes((0x40 | (length >> 8), length & 0xFF))
    if length <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", length)
    return b"\x81" + struct.pack(">Q", length)


def encode_string(data: bytes) -> bytes:
    return encode_length(len(data)) + data


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
    write: Callable[[bytes], object], databases: Iterable[tuple[int, dict, dict]], now: int
) -> tuple[int, int, int]:
    """Write one shard's keys (``(index, data, deadlines)`` per database); returns
    (bytes, crc64, keys). Keys already past their deadline are left out, as Redis does."""
    size = crc = keys = 0
    chunk: list[bytes] = []
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
            record = b"\x00" + encode_string(key) + encode_string(value)
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


# -- reading ------------------------------------------------------------------------------


def lzf_decompress(data: bytes, expected: int) -> bytes:
    """LZF (liblzf) decompression, as Redis compresses strings longer than 20 bytes."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise ValueError("LZF back reference before the start")
        for _ in range(length + 2):
            out.append(out[ref])
            ref += 1
    if len(out) != expected:
        raise ValueError(f"LZF output is {len(out)} bytes, expected {expected}")
    return bytes(out)


class _Reader:
    """Cursor over the dump's bytes; every short read is a truncated file."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise EOFError
        piece = self.data[self.pos : end]
        self.pos = end
        return piece

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
            compressed, _ = self.length()
            size, _ = self.length()
            return lzf_decompress(self.take(compressed), size)
        raise ValueError(f"unknown string encoding {length}")


def read_dump(path: str, data: bytes) -> Iterator[tuple[int, bytes, bytes, int | None]]:
    """Every key of a dump as (db, key, value, deadline ms or None); raises RdbError naming
    ``path`` and the offset on anything it cannot load (truncation, bad checksum, a type
    other than string, an unknown opcode)."""
    reader = _Reader(data)
    if data[:5] != b"REDIS" or not data[5:9].isdigit():
        raise RdbError(f"{path}: not an RDB file (bad magic at offset 0)")
    version = int(data[5:9])
    if version > 10:
        raise RdbError(f"{path}: RDB version {version} is newer than this server reads (10)")
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
                db = reader.length()[0]
            elif op == OP_RESIZEDB:
                reader.length()
                reader.length()
            elif op == OP_AUX:
                reader.string()
                reader.string()
            elif op == OP_EXPIRETIME_MS:
                deadline = struct.unpack("<q", reader.take(8))[0]
            elif op == OP_EXPIRETIME:
                deadline = struct.unpack("<i", reader.take(4))[0] * 1000
            elif op == OP_IDLE:
                reader.length()
            elif op == OP_FREQ:
                reader.byte()
            elif op == OP_FUNCTION2:
                reader.string()
            elif op == TYPE_STRING:
                key = reader.string()
                value = reader.string()
                yield db, key, value, deadline
                deadline = None
            else:
                raise RdbError(
                    f"{path}: value type or opcode {op} at offset {start} is not supported "
                    "(this server stores strings only)"
                )
    except EOFError:
        raise RdbError(f"{path}: truncated at offset {len(data)} (record at {start})") from None
    except (ValueError, struct.error) as problem:
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
