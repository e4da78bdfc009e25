"""Connection commands, answered by the acceptor from the client's session state.

Each handler takes ``(session, argv)`` and returns the encoded reply. ``session`` is the
client's :class:`shardserver.acceptor.ClientConnection`: ``protocol``, ``enc``, ``db``,
``name``, ``id``, and the acceptor as ``server``, whose ``clients`` CLIENT LIST and KILL walk.
(Handlers reach the acceptor only through the session; they never import it.)
"""

from __future__ import annotations

import time

from shardserver import REDIS_COMPAT_VERSION, pausing
from shardserver.blocked import UNBLOCKED
from shardserver.clientmemory import client_memory
from shardserver.commands import transactions
from shardserver.commands.blocking import TIMED_OUT
from shardserver.commands.spec import Later, local
from shardserver.errors import DB_INDEX, NOT_INTEGER, SYNTAX, error, error_bytes, subcommand_syntax
from shardserver.invalidations import list_flags, redirect_of
from shardserver.numbers import LLONG_MAX, parse_int
from shardserver.resp import encoder_for


def ping(session, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        return error("ERR wrong number of arguments for 'ping' command")
    if session.pubsub_only:  # RESP2's subscribed mode: "pong" and the argument, an array
        enc = session.enc
        return enc.array([enc.bulk(b"pong"), enc.bulk(argv[1] if len(argv) == 2 else b"")])
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
            if not session.server.acl.authenticate(session, argv[i + 1], argv[i + 2], argv[0]):
                return _WRONGPASS
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


def auth(session, argv: list[bytes]) -> bytes:
    """AUTH [username] password: the ACL user (``default`` without a name) the connection
    runs as from now on (:mod:`shardserver.commands.acl`)."""
    if len(argv) > 3:
        return SYNTAX
    if len(argv) == 2:
        if session.server.acl.registry.default.nopass:
            return error(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        user, password = b"default", argv[1]
    else:
        user, password = argv[1], argv[2]
    if not session.server.acl.authenticate(session, user, password, argv[0]):
        return _WRONGPASS
    return b"+OK\r\n"


_WRONGPASS = error("WRONGPASS invalid username-password pair or user is disabled.")


def reset(session, argv: list[bytes]) -> bytes:
    """Back to a fresh connection's state: database 0, RESP2, no name, default user, no
    subscriptions.

    As in Redis 7.0, CLIENT NO-EVICT survives a RESET, and with a password set the client
    must AUTH again.
    """
    session.select_db(0)
    session.set_protocol(2)
    session.name = None
    session.multi = None  # a transaction in progress is discarded, watched keys forgotten
    session.multi_failed = False
    transactions.unwatch_all(session)
    session.server.pubsub.drop(session)
    session.subscriptions_changed()
    session.server.monitors.remove(session)
    session.server.tracking.disable(session)
    session.server.acl.start_session(session)
    return b"+RESET\r\n"


# -- CLIENT LIST / INFO / KILL ----------------------------------------------------------------


def client_line(client, command: str | None = None, argv: list[bytes] | None = None) -> str:
    """One client as Redis 7.0's CLIENT LIST writes it, without the newline.

    Buffer and memory figures are what the acceptor holds for the client
    (:mod:`shardserver.clientmemory`); there is no fixed reply buffer (``rbs``, ``rbp`` and
    ``obl`` read 0). ``command`` names the caller's own command (``client|list``) and
    ``argv`` is its arguments (``argv-mem``); for other clients the last command seen is
    shown.
    """
    transport = client.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    in_multi = client.multi is not None
    subscribed = client.channels or client.patterns or client.shard_channels
    flags = ("O" if client.monitoring else "") + ("P" if subscribed else "")
    flags += "x" if in_multi else ""
    flags += "b" if client.blocked is not None else ""
    flags += list_flags(client)
    flags += "c" if client.closing else ""
    flags += "e" if client.no_evict else ""
    if command is None:
        command = _command_name(client, client.last_command)
    memory = client_memory(client, argv)
    return (
        f"id={client.id} addr={client.addr} laddr={client.laddr} "
        f"fd={sock.fileno() if sock is not None else -1} "
        f"name={client.name.decode('ascii', 'replace') if client.name else ''} "
        f"age={int(time.time() - client.created_at)} "
        f"idle={int(time.monotonic() - client.last_active)} flags={flags or 'N'} "
        f"db={client.db} sub={len(client.channels)} psub={len(client.patterns)} "
        f"ssub={len(client.shard_channels)} multi={len(client.multi) if in_multi else -1} "
        f"qbuf={memory.qbuf} qbuf-free=0 argv-mem={memory.argv_mem} "
        f"multi-mem={memory.multi_mem} rbs=0 rbp=0 obl=0 oll={memory.oll} "
        f"omem={memory.omem} tot-mem={memory.tot_mem} events=r "
        f"cmd={command} user={client.user.name.decode('utf-8', 'replace')} "
        f"redir={redirect_of(client)} resp={client.protocol}"
    )


def _command_name(client, raw: bytes) -> str:
    """A command name as CLIENT LIST shows it: lower case, ``NULL`` for none or unknown."""
    name = raw.decode("utf-8", "replace").lower()
    return name if name in client.server.commands else "NULL"


def _live_clients(server) -> list:
    """Connected clients, without those already killed or closing."""
    return [
        client
        for client in server.clients.values()
        if client.transport is not None and not client.transport.is_closing()
    ]


#: CLIENT LIST/KILL TYPE names to the type of client they select ("": none exist here).
_CLIENT_TYPES = {b"normal": "normal", b"pubsub": "pubsub", b"master": "", b"slave": ""}
_CLIENT_TYPES[b"replica"] = ""


def client_type(client) -> str:
    """Redis's client type: ``pubsub`` while it subscribes to anything, else ``normal``."""
    if client.channels or client.patterns or client.shard_channels:
        return "pubsub"
    return "normal"


def _unknown_type(name: bytes) -> bytes:
    return error_bytes(b"ERR Unknown client type '" + name + b"'")


def client_list(session, argv: list[bytes]) -> bytes | Later:
    """CLIENT LIST [TYPE type | ID id ...], over every acceptor's clients; every client here
    is of type normal or pubsub."""
    kind = None
    if len(argv) == 4 and argv[2].lower() == b"type":
        kind = _CLIENT_TYPES.get(argv[3].lower())
        if kind is None:
            return _unknown_type(argv[3])
        ids = None if kind else []
    elif len(argv) > 3 and argv[2].lower() == b"id":
        ids = []
        for raw in argv[3:]:
            client_id = parse_int(raw)
            if client_id is None:
                return error("ERR Invalid client ID")
            ids.append(client_id)
    elif len(argv) != 2:
        return SYNTAX
    else:
        ids = None
    mine = listed_here(session.server, ids, session, kind, argv)

    def reply(found: list[list[tuple[int, str]]]) -> bytes:
        lines = sorted(line for each in found for line in each)
        return session.enc.verbatim("".join(text + "\n" for _, text in lines).encode())

    return session.server.everywhere(mine, reply, "client_lines", ids, kind)


def listed_here(
    server,
    ids: list[int] | None,
    caller=None,
    kind: str | None = None,
    argv: list[bytes] | None = None,
) -> list[tuple[int, str]]:
    """(order, CLIENT LIST line) of this acceptor's clients: all of them (of type ``kind``),
    by id, or those of ``ids`` in the order (repeats included) they were asked for, as
    Redis lists them."""
    clients = _live_clients(server)
    if kind is not None:
        clients = [client for client in clients if client_type(client) == kind]

    def line(client) -> str:
        if client is caller:
            return client_line(client, "client|list", argv)
        return client_line(client)

    if ids is None:
        return [(client.id, line(client)) for client in clients]
    by_id = {client.id: client for client in clients}
    return [(n, line(by_id[wanted])) for n, wanted in enumerate(ids) if wanted in by_id]


def client_info(session, argv: list[bytes]) -> bytes:
    return session.enc.verbatim((client_line(session, "client|info", argv) + "\n").encode())


def client_kill(session, argv: list[bytes]) -> bytes | Later:
    """CLIENT KILL addr (old form, may kill the caller) or CLIENT KILL option value ...,
    over every acceptor's clients.

    Another client's connection is dropped at once, unsent replies and all, as Redis frees
    it; the caller's own closes after this reply.
    """
    addr = laddr = user = None
    client_id = 0
    kind = None
    skipme = len(argv) > 3
    if len(argv) == 3:
        addr = argv[2]
    else:
        for i in range(2, len(argv), 2):
            if i + 1 >= len(argv):
                return SYNTAX
            option, value = argv[i].lower(), argv[i + 1]
            if option == b"id":
                client_id = parse_int(value) or 0
                if not 0 < client_id <= LLONG_MAX:
                    return error("ERR client-id should be greater than 0")
            elif option == b"type":
                kind = _CLIENT_TYPES.get(value.lower())
                if kind is None:
                    return _unknown_type(value)
            elif option == b"addr":
                addr = value
            elif option == b"laddr":
                laddr = value
            elif option == b"user":
                if session.server.acl.registry.get(value) is None:
                    return error_bytes(b"ERR No such user '" + value + b"'")
                user = value
            elif option == b"skipme" and value.lower() in (b"yes", b"no"):
                skipme = value.lower() == b"yes"
            else:
                return SYNTAX
    filters = (addr, laddr, client_id, kind, user)
    mine = killed_here(session.server, filters, session, skipme)

    def reply(counts: list[int]) -> bytes:
        killed = sum(counts)
        if len(argv) == 3:
            return b"+OK\r\n" if killed else error("ERR No such client")
        return session.enc.integer(killed)

    return session.server.everywhere(mine, reply, "client_kill", filters)


def killed_here(server, filters: tuple, caller=None, skipme: bool = False) -> int:
    """Drop this acceptor's clients that match CLIENT KILL's filters; how many."""
    addr, laddr, client_id, kind, user = filters
    killed = 0
    for client in _live_clients(server) if kind != "" else []:
        if kind is not None and client_type(client) != kind:
            continue
        if addr is not None and client.addr.encode() != addr:
            continue
        if laddr is not None and client.laddr.encode() != laddr:
            continue
        if client_id and client.id != client_id:
            continue
        if user is not None and client.user.name != user:
            continue
        if client is caller:
            if skipme:
                continue
            # after the reply is queued: closing now would drop it
            server.loop.call_soon(caller.close_after_reply)
        else:
            client.transport.abort()
        killed += 1
    return killed


def client_unblock(session, argv: list[bytes]) -> bytes | Later:
    """CLIENT UNBLOCK id [TIMEOUT|ERROR]: end a blocking command of a client on any acceptor
    as its timeout would (the default) or with Redis's UNBLOCKED error; 1 if one waited."""
    client_id = parse_int(argv[2])
    if client_id is None:
        return NOT_INTEGER
    how = argv[3].lower() if len(argv) > 3 else b"timeout"
    if len(argv) > 4 or how not in (b"timeout", b"error"):
        return error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    server = session.server
    target = server.clients.get(client_id)
    if target is not None:
        return session.enc.integer(int(unblocked_here(server, client_id, how)))

    def finish(answers: list[bool]) -> bytes:
        return session.enc.integer(int(any(answers)))

    return server.everywhere(False, finish, "client_unblock", client_id, how)


def unblocked_here(server, client_id: int, how: bytes) -> bool:
    """CLIENT UNBLOCK of this acceptor's client: whether it was waiting."""
    client = server.clients.get(client_id)
    if client is None or client.blocked is None:
        return False
    reply = UNBLOCKED if how == b"error" else TIMED_OUT[client.protocol]
    client.blocked.end(reply)
    return True


def monitor(session, argv: list[bytes]) -> bytes | Later:
    """MONITOR: this client hears every command from its +OK on, on every acceptor (they
    all know before the reply: :mod:`shardserver.monitoring`)."""
    monitors = session.server.monitors
    monitors.add(session)
    return session.server.told_everywhere(b"+OK\r\n", "monitors", *monitors.count())


def client_pause(session, argv: list[bytes]) -> bytes | Later:
    """CLIENT PAUSE ms [WRITE|ALL] (:mod:`shardserver.pausing`)."""
    if len(argv) > 4:
        return subcommand_syntax(argv)
    milliseconds = parse_int(argv[2])
    if milliseconds is None:
        return error("ERR timeout is not an integer or out of range")
    if milliseconds < 0:
        return error("ERR timeout is negative")
    mode = pausing.mode_of(argv[3]) if len(argv) == 4 else pausing.ALL
    if mode is None:
        return error("ERR CLIENT PAUSE mode must be WRITE or ALL")
    session.server.pause.start(mode, milliseconds)
    return session.server.told_everywhere(b"+OK\r\n", "pause", mode, milliseconds)


def client_unpause(session, argv: list[bytes]) -> bytes | Later:
    session.server.pause.end()
    return session.server.told_everywhere(b"+OK\r\n", "unpause")


def client_no_evict(session, argv: list[bytes]) -> bytes:
    """CLIENT NO-EVICT on|off: whether maxmemory-clients may evict this client (CLIENT
    LIST's flag ``e``; :mod:`shardserver.limits`)."""
    mode = argv[2].lower()
    if mode not in (b"on", b"off"):
        return SYNTAX
    session.no_evict = mode == b"on"
    return b"+OK\r\n"


_CLIENT_HELP = {
    "": ["CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"],
    "caching": [
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    ],
    "getredir": [
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
    ],
    "getname": ["GETNAME", "    Return the name of the current connection."],
    "id": ["ID", "    Return the ID of the current connection."],
    "info": ["INFO", "    Return information about the current client connection."],
    "kill": [
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.",
        "    * USER <username>",
        "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).",
    ],
    "list": [
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
    ],
    "setname": ["SETNAME <name>", "    Assign the name <name> to the current connection."],
    "pause": [
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend all, or just write, clients for <timeout> milliseconds.",
    ],
    "unpause": ["UNPAUSE", "    Stop the current client pause, resuming traffic."],
    "unblock": [
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Unblock the specified blocked client.",
    ],
    "tracking": [
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
        "         [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
    ],
    "trackinginfo": ["TRACKINGINFO", "    Report tracking status for the current connection."],
    "no-evict": ["NO-EVICT (ON|OFF)", "    Protect current client connection from eviction."],
    "help": ["HELP", "    Prints this help."],
}


def client_help(session, argv: list[bytes]) -> bytes:
    """Redis's CLIENT HELP text, cut to the subcommands served here."""
    lines = [line for entry in _CLIENT_HELP.values() for line in entry]
    return session.enc.array([session.enc.simple(line) for line in lines])


ROWS = [
    local("ping", ping),
    local("echo", echo),
    local("quit", quit),
    local("hello", hello),
    local("select", select),
    local(
        "auth",
        auth,
        notes="ACL users (shardserver/commands/acl.py)",
    ),
    local("reset", reset),
    local("client|setname", client_setname),
    local("client|getname", client_getname),
    local("client|setinfo", client_setinfo, notes="Redis 7.2's; redis-py sends it"),
    local("client|id", client_id),
    local(
        "client|list",
        client_list,
        notes="buffer figures are what the acceptor holds (no fixed reply buffer: rbs, rbp, "
        "obl read 0); other clients' cmd is their last command's name",
    ),
    local("client|info", client_info, notes="as CLIENT LIST"),
    local(
        "client|kill",
        client_kill,
        notes="only normal and pubsub clients exist",
    ),
    local("monitor", monitor, notes="across acceptors, each shard's lines in its order"),
    local("client|unblock", client_unblock),
    local("client|pause", client_pause, notes="expiry goes on while paused"),
    local("client|unpause", client_unpause),
    local("client|no-evict", client_no_evict),
    local("client|help", client_help, notes="lists only the subcommands served here"),
]
