"""Server commands: COMMAND, CONFIG, CLUSTER, INFO, TIME, DEBUG, SHUTDOWN.

Most are answered by the acceptor: each handler takes ``(session, argv)`` and returns the
encoded reply. INFO, CONFIG RESETSTAT and DEBUG SLEEP need every shard, so they fan out: a
``*_part(shard, db, argv)`` runs in each shard and returns plain data, and a
``*_merge(session, argv, parts)`` builds the reply in the acceptor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shardserver import info, protection
from shardserver.commands import metadata
from shardserver.commands.spec import (
    NO_REPLY,
    Command,
    Later,
    Route,
    bad_arity,
    key_positions,
    local,
)
from shardserver.config import ConfigError
from shardserver.errors import SYNTAX, error, error_bytes
from shardserver.glob import compile_glob
from shardserver.slots import slot_for_key

# -- CLUSTER --------------------------------------------------------------------------------


def cluster_keyslot(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(slot_for_key(argv[2]))


# -- COMMAND --------------------------------------------------------------------------------


def command(session, argv: list[bytes]) -> bytes:
    entries = [metadata.raw_info(name, session.protocol) for name in session.server.commands]
    return b"*%d\r\n" % len(entries) + b"".join(entries)


def command_count(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(len(session.server.commands))


def _served(session, name: str):
    """The served command (or subcommand) of this lower-case name, or None."""
    parent, _, sub = name.partition("|")
    spec = session.server.commands.get(parent)
    if spec is None or not sub:
        return spec
    return next((s for s in spec.subcommands.values() if s.name == name), None)


def command_info(session, argv: list[bytes]) -> bytes:
    names = [a.decode("utf-8", "replace").lower() for a in argv[2:]]
    if not names:
        return command(session, argv)
    entries = []
    for name in names:
        spec = _served(session, name)
        if spec is None:
            entries.append(session.enc.NULL)
        elif "|" in name:
            entries.append(metadata.raw_sub_info(name, session.protocol, spec))
        else:
            entries.append(metadata.raw_info(name, session.protocol))
    return b"*%d\r\n" % len(entries) + b"".join(entries)


def command_docs(session, argv: list[bytes]) -> bytes:
    names = [a.decode("utf-8", "replace").lower() for a in argv[2:]]
    docs = []
    for name in dict.fromkeys(names or session.server.commands):
        if _served(session, name) is None:
            continue
        if "|" in name:
            docs.append(metadata.raw_sub_docs(name, session.protocol))
        else:
            docs.append(metadata.raw_docs(name, session.protocol))
    if session.protocol == 3:
        return b"%%%d\r\n" % len(docs) + b"".join(docs)
    return b"*%d\r\n" % (2 * len(docs)) + b"".join(docs)


def command_list(session, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        return SYNTAX
    names = []
    for spec in session.server.commands.values():
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


def config_set(session, argv: list[bytes]) -> bytes | Later:
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
    refused = protection.config_set_refusal(session.server.config, names, session.host)
    if refused is not None:
        return refused
    texts = [(name, value.decode("utf-8", "replace")) for name, value in pairs]
    tls = [(name, text) for name, text in texts if name.startswith("tls-")]
    done = []
    try:
        if tls:  # together: a new certificate and its key make one context
            session.server.tls.set(tls)
            done.extend(tls)
        for name, text in texts:
            if not name.startswith("tls-"):
                session.server.set_config(name, text)
                done.append((name, text))
    except ConfigError as problem:
        if done:
            session.server.told_everywhere(b"", "config", done)
        text = str(problem)
        if text.startswith("Unknown option") or text.startswith("CONFIG SET failed"):
            return error_bytes(b"ERR " + text.encode())
        return error_bytes(
            f"ERR CONFIG SET failed (possibly related to argument '{name}') - {text}".encode()
        )
    return session.server.told_everywhere(b"+OK\r\n", "config", done)


def config_resetstat_part(shard, db, argv: list[bytes]) -> int:
    """Each shard forgets its own counters (calls, operations, expired keys), then counts
    this call again: Redis counts a command after it ran, so RESETSTAT's own call stays."""
    info.reset_shard(shard)
    shard.calls[argv[0]] += 1
    return 0


def config_resetstat_merge(session, argv: list[bytes], parts: list[int]) -> bytes:
    """Then the acceptors forget their counters, once every shard has."""
    session.server.reset_stats()
    session.server.peers.tell("resetstat")
    return b"+OK\r\n"


# -- COMMAND GETKEYS ------------------------------------------------------------------------


def command_getkeys(session, argv: list[bytes]) -> bytes:
    """The key arguments of a command line, from the table's key positions (as Redis 7.0)."""
    target = argv[2:]
    spec = session.server.commands.get(target[0].decode("utf-8", "replace").lower())
    if spec is not None and spec.subcommands and len(target) > 1:
        spec = spec.subcommands.get(target[1].decode("utf-8", "replace").lower())
    if spec is None:
        return error("ERR Invalid command specified")
    if spec.first_key <= 0 and spec.keys is None:
        return error("ERR The command has no key arguments")
    if bad_arity(spec.arity, len(target)):
        return error("ERR Invalid number of arguments specified for command")
    positions = key_positions(spec, target)
    if not positions and "no_mandatory_keys" not in spec.flags:
        return error("ERR Invalid arguments specified for command")  # a bad numkeys
    return session.enc.bulk_array([target[i] for i in positions])


# -- INFO -----------------------------------------------------------------------------------


def info_part(shard, db, argv: list[bytes]) -> dict:
    return info.shard_numbers(shard)


def over_every_process(
    session, part: list[bytes], peer_op: str, finish: Callable[[list, list], bytes]
) -> Later:
    """``finish(shard_values, acceptor_answers)`` once every shard has run ``part`` (one
    step: a consistent cut) and every other acceptor has answered ``peer_op``; a shard's
    failure is the reply instead."""
    server = session.server
    parts = server.call_shards([part] * server.shard_count)
    peers = server.peers.ask(peer_op)

    async def reply() -> bytes:
        shard_parts = await parts
        failed = [each for each in shard_parts if each.__class__ is bytes]
        if failed:
            return failed[0]
        return finish(shard_parts, [each for each in (await peers).values() if each is not None])

    return Later(server.loop.create_task(reply()))


def info_(session, argv: list[bytes]) -> Later:
    """Redis's INFO text (a bulk string in RESP2, a verbatim string in RESP3), from every
    shard's numbers (one consistent step) and every acceptor's."""
    server = session.server
    return over_every_process(
        session,
        [b"@info"],
        "stats",
        lambda parts, others: session.enc.verbatim(
            info.render(server, argv[1:], parts, others).encode()
        ),
    )


# -- TIME, SHUTDOWN ------------------------------------------------------------------------


def time_(session, argv: list[bytes]) -> bytes:
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return session.enc.bulk_array([b"%d" % seconds, b"%d" % micros])


def shutdown(session, argv: list[bytes]) -> bytes | object:
    """Stop the server; the caller gets no reply, as with Redis (its connection just closes)."""
    flags = set()
    abort = False
    for raw in argv[1:]:
        word = raw.lower()
        if word in (b"nosave", b"save", b"now", b"force"):
            flags.add(word)
        elif word == b"abort":
            abort = True
        else:
            return SYNTAX
    if (abort and flags) or {b"nosave", b"save"} <= flags:
        return SYNTAX
    if abort:
        return error("ERR No shutdown in progress.")
    if b"nosave" in flags:
        session.server.shutdown_save = False
    elif b"save" in flags:
        session.server.shutdown_save = True
    session.server.request_stop("SHUTDOWN")
    return NO_REPLY


ALL = Route.ALL
ROWS = [
    local("command", command, notes="lists only the commands served here"),
    local("command|count", command_count),
    local("command|info", command_info),
    local("command|docs", command_docs),
    local("command|list", command_list, notes="FILTERBY is not supported"),
    local(
        "command|getkeys",
        command_getkeys,
        notes="only for commands served here (others: 'Invalid command specified')",
    ),
    local("config|get", config_get),
    local("config|set", config_set, notes="only settings that apply at run time"),
    Command(
        "config|resetstat",
        ALL,
        part=config_resetstat_part,
        merge=config_resetstat_merge,
        notes="resets the shards' and the acceptor's counters",
    ),
    local(
        "cluster|keyslot",
        cluster_keyslot,
        notes="answered although cluster mode is off (Redis refuses it then)",
    ),
    local(
        "info",
        info_,
        part=info_part,
        notes=(
            "adds a `shards` section (in the default set) and `redis_clone_version`; "
            "used_memory is what the shards account for their keys, used_memory_rss every "
            "process's resident memory; commandstats usec are each shard's execution time "
            "(scripts' are 0), and a "
            "multi-key command split over shards counts once per shard; "
            "keyspace_hits/misses and net bytes are not measured (0); "
            "instantaneous_ops_per_sec is measured between INFO calls"
        ),
    ),
    local("time", time_),
    local(
        "shutdown",
        shutdown,
        notes=(
            "snapshots first when save rules are set or SAVE is given (NOSAVE skips); if that "
            "snapshot fails the server stays up and the caller gets no reply; ABORT always "
            "finds no shutdown in progress"
        ),
    ),
]
