"""Redis's error replies, word for word, as encoded RESP errors."""

from typing import Any

WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
SYNTAX = b"-ERR syntax error\r\n"
NOT_INTEGER = b"-ERR value is not an integer or out of range\r\n"
DB_INDEX = b"-ERR DB index is out of range\r\n"
BUSY = (
    b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
)
NOREPLICAS = b"-NOREPLICAS Not enough good replicas to write.\r\n"
BUSY_FUNCTION = (
    b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
)


def error(text: str) -> bytes:
    """An error reply from its text (which starts with the error code)."""
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


def wrong_arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name}' command")


def invalid_expire(name: str) -> bytes:
    return error(f"ERR invalid expire time in '{name}' command")


def is_error(value: object) -> bool:
    """Whether a reply or part value is an error reply (a part's plain values never are
    bare bytes, so a failed shard's reply stands out among them)."""
    return value.__class__ is bytes and value[:1] == b"-"


def first_error(values: list) -> bytes | None:
    """The first error reply among a command's part values, or None."""
    return next((value for value in values if is_error(value)), None)


def error_bytes(text: bytes) -> bytes:
    """An error reply from raw bytes (arguments echoed back keep their exact bytes)."""
    return b"-" + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def unknown_command(argv: list[bytes]) -> bytes:
    """Redis's text: the name, then the first arguments quoted, up to 128 bytes of them."""
    shown = b""
    for arg in argv[1:]:
        if len(shown) >= 128:
            break
        shown += b"'" + _c_string(arg)[: 128 - len(shown)] + b"' "
    name = _c_string(argv[0])[:128]
    return error_bytes(b"ERR unknown command '" + name + b"', with args beginning with: " + shown)


def _c_string(arg: bytes) -> bytes:
    """What C's %s prints of an argument: up to its first NUL byte."""
    nul = arg.find(b"\0")
    return arg if nul < 0 else arg[:nul]


def subcommand_syntax(argv: list[bytes]) -> bytes:
    """Redis's ``addReplySubcommandSyntaxError``: a subcommand with arguments it cannot take."""
    return error_bytes(
        b"ERR unknown subcommand or wrong number of arguments for '"
        + argv[1][:128]
        + b"'. Try "
        + argv[0].upper()
        + b" HELP."
    )


def unknown_subcommand(argv: list[bytes]) -> bytes:
    return error_bytes(
        b"ERR unknown subcommand '" + argv[1][:128] + b"'. Try " + argv[0].upper() + b" HELP."
    )


def writes_refused(settings: Any) -> bool:
    """Whether ``min-replicas-to-write`` refuses writes: it asks for replicas and none ever
    connects here (Redis counts only replicas within ``min-replicas-max-lag``; 0 turns the
    rule off). ``settings``: a shard's dict or an acceptor's Config."""
    return bool(settings["min-replicas-to-write"] and settings["min-replicas-max-lag"])
