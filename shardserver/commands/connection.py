"""Connection commands, answered by the acceptor from the client's session state.

Each handler takes ``(session, argv)`` and returns the encoded reply. ``session`` is the
client's :class:`shardserver.acceptor.ClientConnection`: ``protocol``, ``enc``, ``db``,
``name``, ``id``, and the acceptor as ``server``.
"""

from __future__ import annotations

from shardserver import REDIS_COMPAT_VERSION
from shardserver.commands.spec import Command, Route
from shardserver.errors import DB_INDEX, NOT_INTEGER, error
from shardserver.numbers import parse_int
from shardserver.resp import encoder_for


def ping(session, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        return error("ERR wrong number of arguments for 'ping' command")
    if len(argv) == 2:
        return session.enc.bulk(argv[1])
    return b"+PONG\r\n"


def echo(session, argv: list[bytes]) -> bytes:
    return session.enc.bulk(argv[1])


def quit(session, argv: list[bytes]) -> bytes:
    session.close_after_reply()
    return b"+OK\r\n"


def select(session, argv: list[bytes]) -> bytes:
    index = parse_int(argv[1])
    if index is None or not -(2**31) <= index < 2**31:
        return NOT_INTEGER
    if not 0 <= index < session.server.config["databases"]:
        return DB_INDEX
    session.select_db(index)
    return b"+OK\r\n"


def _valid_client_name(name: bytes) -> bool:
    return all(0x21 <= byte <= 0x7E for byte in name)


_BAD_NAME = error("ERR Client names cannot contain spaces, newlines or special characters.")


def hello(session, argv: list[bytes]) -> bytes:
    protocol = session.protocol
    i = 1
    if len(argv) > 1:
        version = parse_int(argv[1])
        if version is None:
            return error("ERR Protocol version is not an integer or out of range")
        if version < 2 or version > 3:
            return error("NOPROTO unsupported protocol version")
        protocol = version
        i = 2
    name = None
    while i < len(argv):
        option = argv[i].lower()
        more = len(argv) - i - 1
        if option == b"auth" and more >= 2:
            if argv[i + 1] != b"default" or not session.server.check_password(argv[i + 2]):
                return error("WRONGPASS invalid username-password pair or user is disabled.")
            i += 3
        elif option == b"setname" and more >= 1:
            name = argv[i + 1]
            if not _valid_client_name(name):
                return _BAD_NAME
            i += 2
        else:
            text = argv[i].decode("utf-8", "replace")
            return error(f"ERR Syntax error in HELLO option '{text}'")
    if name is not None:
        session.name = name or None
    session.set_protocol(protocol)
    enc = encoder_for(protocol)
    bulk = enc.bulk
    return enc.map(
        [
            (bulk(b"server"), bulk(b"redis")),
            (bulk(b"version"), bulk(REDIS_COMPAT_VERSION.encode())),
            (bulk(b"proto"), enc.integer(protocol)),
            (bulk(b"id"), enc.integer(session.id)),
            (bulk(b"mode"), bulk(b"standalone")),
            (bulk(b"role"), bulk(b"master")),
            (bulk(b"modules"), enc.EMPTY_ARRAY),
        ]
    )


def client_setname(session, argv: list[bytes]) -> bytes:
    if not _valid_client_name(argv[2]):
        return _BAD_NAME
    session.name = argv[2] or None
    return b"+OK\r\n"


def client_getname(session, argv: list[bytes]) -> bytes:
    return session.enc.bulk_or_null(session.name)


def client_setinfo(session, argv: list[bytes]) -> bytes:
    """CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; client libraries send it)."""
    attribute = argv[2].lower()
    if len(argv) != 4:
        return error("ERR wrong number of arguments for 'client|setinfo' command")
    if attribute not in (b"lib-name", b"lib-ver"):
        text = argv[2].decode("utf-8", "replace")
        return error(f"ERR Unrecognized option '{text}'")
    if not _valid_client_name(argv[3]):
        return error(
            f"ERR {attribute.decode()} cannot contain spaces, newlines or special characters."
        )
    session.library[attribute.decode()] = argv[3]
    return b"+OK\r\n"


def client_id(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(session.id)


L = Route.LOCAL
ROWS = [
    Command("ping", L, ping),
    Command("echo", L, echo),
    Command("quit", L, quit),
    Command("hello", L, hello),
    Command("select", L, select),
    Command("client|setname", L, client_setname),
    Command("client|getname", L, client_getname),
    Command("client|setinfo", L, client_setinfo, notes="Redis 7.2's; redis-py sends it"),
    Command("client|id", L, client_id),
]
