"""What a command's encoded reply means, for a script: RESP2 or RESP3 bytes to typed values.

Handlers end in encoded replies (bytes), wherever they run; a script's ``redis.call`` needs
the reply as values to hand Lua (a status is not a bulk string there, an error is a table).
So the reply is parsed back, here, into the values below, with Python's types where they are
unambiguous: ``int`` (integer), ``bytes`` (bulk string), ``None`` (a null of either kind),
``list`` (array, and a RESP3 push), ``bool`` and ``float`` (RESP3 boolean and double).

The parse is pure and total over what our encoders write; anything else raises ValueError.
"""

from __future__ import annotations


class Status(bytes):
    """A simple string reply (``+OK``)."""


class ErrorReply(bytes):
    """An error reply, without its ``-``: ``ERR value is not an integer ...``."""


class Map(list):
    """A RESP3 map, as its ``(key, value)`` pairs in order."""


class Set(list):
    """A RESP3 set, as its members in order."""


class BigNumber(bytes):
    """A RESP3 big number, as its digits."""


class Verbatim(bytes):
    """A RESP3 verbatim string, without its format (``txt``); ``format`` keeps that."""

    format: bytes = b"txt"


_NULL = {b"$-1", b"*-1", b"_"}


def parse(data: bytes) -> object:
    """The one reply ``data`` holds."""
    head = data[0]
    if head == 0x2B and data.endswith(b"\r\n") and data.count(b"\r\n") == 1:  # +OK
        return Status(data[1:-2])
    if head == 0x3A and data.count(b"\r\n") == 1:  # :n
        return int(data[1:-2])
    value, end = _parse(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after a reply")
    return value


def _parse(data: bytes, pos: int) -> tuple[object, int]:
    eol = data.index(b"\r\n", pos)
    line = data[pos:eol]
    kind = line[:1]
    rest = eol + 2
    if line in _NULL:
        return None, rest
    if kind == b"$" or kind == b"=":
        length = int(line[1:])
        body = data[rest : rest + length]
        if data[rest + length : rest + length + 2] != b"\r\n":
            raise ValueError("a bulk string without its CRLF")
        if kind == b"=":
            verbatim = Verbatim(body[4:])
            verbatim.format = body[:3]
            return verbatim, rest + length + 2
        return body, rest + length + 2
    if kind == b"+":
        return Status(line[1:]), rest
    if kind == b"-":
        return ErrorReply(line[1:]), rest
    if kind == b":":
        return int(line[1:]), rest
    if kind == b"*" or kind == b"~" or kind == b">" or kind == b"%":
        count = int(line[1:])
        if kind == b"%":
            pairs = Map()
            for _ in range(count):
                key, rest = _parse(data, rest)
                value, rest = _parse(data, rest)
                pairs.append((key, value))
            return pairs, rest
        items = Set() if kind == b"~" else []
        for _ in range(count):
            item, rest = _parse(data, rest)
            items.append(item)
        return items, rest
    if kind == b"#":
        return line == b"#t", rest
    if kind == b",":
        return float(line[1:]), rest
    if kind == b"(":
        return BigNumber(line[1:]), rest
    if kind == b"|":  # attributes: skipped, as Redis's Lua conversion ignores them
        count = int(line[1:])
        for _ in range(2 * count):
            _ignored, rest = _parse(data, rest)
        return _parse(data, rest)
    raise ValueError(f"not a reply: {line[:20]!r}")
