"""Server commands answered by the acceptor (COMMAND, CONFIG, CLUSTER ...).

Each handler takes ``(session, argv)`` and returns the encoded reply.
"""

from __future__ import annotations

from shardserver.config import ConfigError
from shardserver.commands.spec import Command, Route
from shardserver.errors import SYNTAX, error, error_bytes
from shardserver.glob import compile_glob
from shardserver.slots import slot_for_key

# -- CLUSTER --------------------------------------------------------------------------------


def cluster_keyslot(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(slot_for_key(argv[2]))


# -- COMMAND --------------------------------------------------------------------------------


def _table():
    from shardserver.commands import table  # the table imports this module

    return table


def command(session, argv: list[bytes]) -> bytes:
    table = _table()
    entries = [table.raw_info(name, session.protocol) for name in table.COMMANDS]
    return b"*%d\r\n" % len(entries) + b"".join(entries)


def command_count(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(len(_table().COMMANDS))


def _known(name: str) -> bool:
    table = _table()
    parent, _, sub = name.partition("|")
    spec = table.COMMANDS.get(parent)
    if spec is None:
        return False
    return not sub or name in {s.name for s in spec.subcommands.values()}


def command_info(session, argv: list[bytes]) -> bytes:
    table = _table()
    names = [a.decode("utf-8", "replace").lower() for a in argv[2:]]
    if not names:
        return command(session, argv)
    entries = []
    for name in names:
        if not _known(name):
            entries.append(session.enc.NULL)
        elif "|" in name:
            entries.append(table.raw_sub_info(name, session.protocol))
        else:
            entries.append(table.raw_info(name, session.protocol))
    return b"*%d\r\n" % len(entries) + b"".join(entries)


def command_docs(session, argv: list[bytes]) -> bytes:
    table = _table()
    names = [a.decode("utf-8", "replace").lower() for a in argv[2:]] or list(table.COMMANDS)
    docs = []
    for name in dict.fromkeys(names):
        if not _known(name):
            continue
        if "|" in name:
            docs.append(table.raw_sub_docs(name, session.protocol))
        else:
            docs.append(table.raw_docs(name, session.protocol))
    if session.protocol == 3:
        return b"%%%d\r\n" % len(docs) + b"".join(docs)
    return b"*%d\r\n" % (2 * len(docs)) + b"".join(docs)


def command_list(session, argv: list[bytes]) -> bytes:
    table = _table()
    if len(argv) > 2:
        return SYNTAX
    names = []
    for spec in table.COMMANDS.values():
        names.append(spec.name.encode())
        names.extend(sub.name.encode() for sub in spec.subcommands.values())
    return session.enc.bulk_array(names)


# -- CONFIG ---------------------------------------------------------------------------------


def config_get(session, argv: list[bytes]) -> bytes:
    settings = session.server.config.get_all()
    found: dict[str, str] = {}
    for raw in argv[2:]:
        pattern = raw.decode("utf-8", "replace")
        if not any(c in pattern for c in "*?["):
            value = settings.get(pattern.lower())
            if value is not None:
                found.setdefault(pattern, value)
            continue
        matches = compile_glob(raw.lower(), True)
        for name, value in settings.items():
            if matches(name.encode()):
                found.setdefault(name, value)
    enc = session.enc
    return enc.map([(enc.bulk(k.encode()), enc.bulk(v.encode())) for k, v in found.items()])


def config_set(session, argv: list[bytes]) -> bytes:
    if len(argv) % 2:
        return error("ERR wrong number of arguments for 'config|set' command")
    pairs = [
        (argv[i].decode("utf-8", "replace").lower(), argv[i + 1]) for i in range(2, len(argv), 2)
    ]
    names = [name for name, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            return error(
                f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                "duplicate parameter"
            )
    try:
        for name, value in pairs:
            session.server.set_config(name, value.decode("utf-8", "replace"))
    except ConfigError as problem:
        text = str(problem)
        if text.startswith("Unknown option") or text.startswith("CONFIG SET failed"):
            return error_bytes(b"ERR " + text.encode())
        return error_bytes(
            f"ERR CONFIG SET failed (possibly related to argument '{name}') - {text}".encode()
        )
    return b"+OK\r\n"


L = Route.LOCAL
ROWS = [
    Command("command", L, command, notes="lists only the commands served here"),
    Command("command|count", L, command_count),
    Command("command|info", L, command_info),
    Command("command|docs", L, command_docs),
    Command("command|list", L, command_list, notes="FILTERBY is not supported"),
    Command("config|get", L, config_get),
    Command("config|set", L, config_set, notes="only settings that apply at run time"),
    Command(
        "cluster|keyslot",
        L,
        cluster_keyslot,
        notes="answered although cluster mode is off (Redis refuses it then)",
    ),
]
