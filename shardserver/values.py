"""What every stored value can do, whatever its type: the generic half of each data type.

Strings are stored as ``bytes``. Every other type is a class of its family module (the hash
class in :mod:`shardserver.commands.hashes`, the list class in ``lists`` ...) that follows
:class:`StoredValue` and registers here with :func:`register`, so that the commands over
every type (TYPE, OBJECT ENCODING, COPY, RENAME across shards, SCAN TYPE, MEMORY USAGE, the
append-only log's rewrite) need no change when a family is added.

Values never cross a pipe as themselves: ``marshal`` knows only plain containers, and a
shard's value must not be shared with another shard. :func:`to_plain` turns a value into
``(type name, plain data)`` and :func:`from_plain` builds a fresh value from it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

from shardserver.numbers import parse_int


class StoredValue(Protocol):
    """A value of a type other than string, as its family class implements it."""

    #: TYPE's answer: ``hash``, ``list``, ``set``, ``zset``.
    redis_type: ClassVar[str]

    def encoding(self) -> str:
        """OBJECT ENCODING's answer, as Redis would report it for the same history."""

    def copy(self) -> StoredValue:
        """An independent copy (COPY): elements are immutable, the container is not shared."""

    def to_plain(self) -> Any:
        """Plain data (dicts, lists, sets, tuples, bytes, numbers) that ``marshal`` encodes
        and :meth:`from_plain` turns back into an equal value, encoding state included."""

    @classmethod
    def from_plain(cls, data: Any) -> StoredValue:
        """The value that :meth:`to_plain` described."""

    def memory_usage(self) -> int:
        """Bytes this process holds for the value (MEMORY USAGE, without the key)."""

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        """Commands that recreate the value under ``key`` from nothing (the append-only
        log's rewrite), each with a bounded number of elements."""


#: Family classes by their type name.
TYPES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a family's value class known to the generic commands."""
    TYPES[cls.redis_type] = cls
    return cls


def type_name(value: object) -> bytes:
    """Redis's name of a stored value's type (TYPE, SCAN TYPE)."""
    if value.__class__ is bytes:
        return b"string"
    return value.redis_type.encode()  # type: ignore[attr-defined]


#: Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT: strings up to this length are ``embstr``.
EMBSTR_LIMIT = 44


def encoding(value: object) -> str:
    """OBJECT ENCODING: for strings, ``int`` when Redis would store a 64-bit integer, else
    ``embstr`` up to 44 bytes, ``raw`` beyond."""
    if value.__class__ is bytes:
        if len(value) <= 20 and parse_int(value) is not None:  # type: ignore[arg-type]
            return "int"
        return "embstr" if len(value) <= EMBSTR_LIMIT else "raw"  # type: ignore[arg-type]
    return value.encoding()  # type: ignore[attr-defined]


def to_plain(value: object) -> tuple[str, Any]:
    """``(type name, plain data)``, for a value about to cross a pipe."""
    if value.__class__ is bytes:
        return "string", value
    return value.redis_type, value.to_plain()  # type: ignore[attr-defined]


def from_plain(tagged: tuple[str, Any]) -> object:
    """A fresh value from what :func:`to_plain` returned."""
    kind, data = tagged
    if kind == "string":
        return data
    return TYPES[kind].from_plain(data)


def copy(value: object) -> object:
    """An independent copy of a value (bytes are immutable and shared)."""
    if value.__class__ is bytes:
        return value
    return value.copy()  # type: ignore[attr-defined]


def memory_usage(value: object) -> int:
    """Bytes this process holds for a value (without its key)."""
    if value.__class__ is bytes:
        return sys.getsizeof(value)
    return value.memory_usage()  # type: ignore[attr-defined]


def rebuild(key: bytes, value: object) -> Iterator[list[bytes]]:
    """Commands that recreate ``key`` holding ``value``, from nothing (no deadline)."""
    if value.__class__ is bytes:
        yield [b"SET", key, value]  # type: ignore[list-item]
        return
    yield from value.rebuild(key)  # type: ignore[attr-defined]


def state_commands(key: bytes, value: object | None, deadline: int | None) -> Iterator[list[bytes]]:
    """Commands that make ``key`` hold ``value`` until ``deadline`` whatever it held before
    (None: make it absent). Deadlines are absolute Unix milliseconds."""
    if value is None:
        yield [b"DEL", key]
    elif value.__class__ is bytes:
        yield (
            [b"SET", key, value]
            if deadline is None
            else [b"SET", key, value, b"PXAT", b"%d" % deadline]
        )  # type: ignore[list-item]
    else:
        yield [b"DEL", key]
        yield from rebuild(key, value)
        if deadline is not None:
            yield [b"PEXPIREAT", key, b"%d" % deadline]
