"""ACL: the command, authentication, and the acceptor's side of Redis 7.0's access control.

The user model, its rules and checks are :mod:`shardserver.acl` (pure). This module owns
what needs a server: :class:`AccessControl` (one per acceptor: the users, the ACL LOG, the
ACL file, who is logged in as whom) and the ``ACL`` subcommands.

Every acceptor keeps every user. A change (SETUSER, DELUSER, LOAD; CONFIG SET requirepass
reaches every acceptor as settings do) is made where the command arrived, then what changed
(the user as ACL LIST prints it, the names deleted, or all the users loaded) is told to the
other acceptors, and the reply waits for a barrier ask after it: from the reply on, the
rules hold on every acceptor (as script changes do, see ``commands/scripting.py``). A user
changed keeps its identity and takes the new rules, so its connections see them at once;
the clients of a user deleted are disconnected, on every acceptor, as Redis's DELUSER does.

The checks cost nothing to the default user as it starts (``+@all ~* &*``): a client
whose user is *unrestricted* (one selector allowing every command, key and channel) skips
them, and keeps the single-key fast path; any other client's commands take the checked
path, where :meth:`AccessControl.refusal` looks at the command, its keys (by Redis's key
specs) and its channels before anything is queued: a command over several shards is
refused, or allowed, whole, before any part of it runs. Its scripts run over every shard
held, in the acceptor, where each ``redis.call`` is checked against the same user.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import replace
from typing import Any

from shardserver import acl
from shardserver.commands.connection import client_line
from shardserver.commands.spec import Later, Route, local
from shardserver.errors import NOT_INTEGER, error, error_bytes
from shardserver.glob import compile_glob
from shardserver.numbers import parse_int

_NOPERM_KEY = (
    b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
)
_NOPERM_CHANNEL = (
    b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
)
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
#: A script's ``redis.call`` refused by the ACL (Redis's scriptVerifyACL texts).
_SCRIPT_DENIED = {
    acl.DENIED_CMD: b"-ERR The user executing the script can't run this command or subcommand\r\n",
    acl.DENIED_KEY: b"-ERR The user executing the script can't access at least one of the keys "
    b"mentioned in the command arguments\r\n",
    acl.DENIED_CHANNEL: b"-ERR The user executing the script can't publish to the channel "
    b"mentioned in the command\r\n",
}
_NO_ACL_FILE = error(
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify "
    "users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a "
    "Redis configuration file set) in order to store users in the Redis configuration."
)


#: What a queued command refused at EXEC answers (its rules changed since it was queued).
_CHANGED = {
    reason: error(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and "
        f"the EXEC call. This command is no longer allowed for the following reason: {why}"
    )
    for reason, why in (
        (acl.DENIED_CMD, "no permission to execute the command or subcommand"),
        (acl.DENIED_KEY, "no permission to touch the specified keys"),
        (acl.DENIED_CHANNEL, "no permission to access one of the channels used as arguments"),
    )
}


_SORTS = frozenset({"sort", "sort_ro"})


def _noperm_command(name: str) -> bytes:
    return error(f"NOPERM this user has no permissions to run the '{name}' command")


class AccessControl:
    """One acceptor's users, ACL LOG and ACL file, and the checks its clients go through."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.registry = acl.Registry()
        self.log = acl.AclLog()
        config = server.config
        self.aclfile: str = config["aclfile"]
        self.requirepass_changed()
        # the configuration was checked at start-up (acl.startup_problem): these load
        users = acl.configured_users(config.users)
        if isinstance(users, dict):
            self.take({**self.registry.users, **users})
        if self.aclfile:
            self.load()

    def handlers(self) -> dict[str, Any]:
        """What the other acceptors may tell or ask this one."""
        return {
            "acl_set": self.adopt_set,
            "acl_deleted": self.adopt_deleted,
            "acl_loaded": self.adopt_loaded,
            "acl_log": self.log_entries,
            "acl_log_reset": self.log.reset,
        }

    # -- authentication ------------------------------------------------------------------

    def opens_authenticated(self) -> bool:
        """Whether a new connection is authenticated at once (the default user is on and
        nopass), as Redis's createClient decides."""
        default = self.registry.default
        return default.nopass and default.enabled

    def start_session(self, session: Any) -> None:
        """A new or RESET connection: the default user, authenticated if it needs none."""
        session.user = self.registry.default
        session.authenticated = self.opens_authenticated()

    def authenticate(self, session: Any, name: bytes, password: bytes, word: bytes) -> bool:
        """AUTH and HELLO AUTH: the session's user from now on, or a log entry of why not
        (Redis logs the name tried, and the command's first word as sent)."""
        user = self.registry.get(name)
        if user is not None and user.check_password(password):
            session.user = user
            session.authenticated = True
            return True
        context = "multi" if session.multi is not None else "toplevel"
        self.record(session, name, acl.DENIED_AUTH, context, word, None)
        return False

    def requirepass_changed(self) -> None:
        """requirepass is the default user's password (ACLUpdateDefaultUserPassword)."""
        default = self.registry.default
        default.apply(b"resetpass")
        password = self.server.config["requirepass"]
        default.apply(b">" + password.encode() if password else b"nopass")
        default.refresh()

    # -- checks --------------------------------------------------------------------------

    def refusal(self, session: Any, name: str, argv: list[bytes]) -> bytes | None:
        """Redis's NOPERM reply for a client's command its user may not run (logged), or
        None. ``name`` is the full name (``config|get``)."""
        reason, position = session.user.check(name, argv)
        if not reason:
            return acl.sort_option_refusal(session.user, argv) if name in _SORTS else None
        context = "multi" if session.multi is not None else "toplevel"
        logged = _logged_object(reason, name, argv, position)
        self.record(session, session.user.name, reason, context, logged, name)
        if reason == acl.DENIED_CMD:
            return _noperm_command(name)
        return _NOPERM_KEY if reason == acl.DENIED_KEY else _NOPERM_CHANNEL

    def recheck(self, session: Any, queued: list[tuple[Any, list[bytes]]]) -> list[tuple]:
        """EXEC of a user with rules: each queued command is checked again (the rules may
        have changed since it was queued), and one refused answers Redis's NOPERM in its
        place in the array, the others running (execCommand)."""
        user = session.user
        checked = []
        for spec, argv in queued:
            reason, position = user.check(spec.name, argv)
            if reason:
                logged = _logged_object(reason, spec.name, argv, position)
                self.record(session, user.name, reason, "multi", logged, "exec")
                spec = replace(spec, route=Route.LOCAL, run=_answer(_CHANGED[reason]))
            checked.append((spec, argv))
        return checked

    def script_refusal(self, client: Any, name: str, argv: list[bytes]) -> bytes | None:
        """The error a script's ``redis.call`` gets when the user of the client that runs
        the script may not run it (logged with the ``lua`` context and that client's
        info, as Redis logs its script caller), or None."""
        user = client.user
        if user.unrestricted:
            return None
        reason, position = user.check(name, argv)
        if not reason:
            return None
        logged = _logged_object(reason, name, argv, position)
        self.record(client, user.name, reason, "lua", logged, None)
        return _SCRIPT_DENIED[reason]

    def record(
        self, client: Any, username: bytes, reason: int, context: str, obj: bytes, command: Any
    ) -> None:
        """An entry of this acceptor's ACL LOG; the client's info shows ``command`` (its
        last one if None). ACL LOG joins every acceptor's entries (:func:`acl.merge_logs`),
        so it shows every refusal already answered, on any acceptor."""
        info = client_line(client, command).encode()
        self.log.max_len = self.server.config["acllog-max-len"]
        self.log.add(reason, context, obj, username, info, time.time_ns() // 1000)

    # -- changes -------------------------------------------------------------------------

    def changed(self, reply: bytes, op: str, *args: Any) -> bytes | Later:
        """After a change here: the other acceptors make it too (``op``: the users set,
        deleted, or loaded), and the reply leaves once they all have (a barrier ask after
        the tell). Only what changed travels, so changes of different users made at once
        through different acceptors all hold everywhere."""
        peers = self.server.peers
        if not len(peers):
            return reply
        peers.tell(op, *args)
        return self.server.told_everywhere(reply, "barrier")

    def adopt_set(self, lines: list[bytes]) -> None:
        """Users another acceptor's SETUSER made or changed, as its ACL LIST prints them."""
        users = acl.parse_user_lines(lines, "acl")
        if isinstance(users, str):  # cannot happen: these lines are what we print
            return
        for name, user in users.items():
            kept = self.registry.get(name)
            if kept is None:
                self.registry.users[name] = user
            else:
                self.kill_revoked_subscribers(kept, kept, user)
                kept.take(user)

    def adopt_deleted(self, names: list[bytes]) -> None:
        """Users another acceptor's DELUSER deleted: their clients here go too."""
        for name in names:
            user = self.registry.delete(name)
            if user is not None:
                self.kill_clients_of(user)

    def adopt_loaded(self, lines: list[bytes]) -> None:
        """Another acceptor's ACL LOAD: the users it loaded."""
        users = acl.parse_user_lines(lines, "acl")
        if isinstance(users, dict):
            self.take(users, reloaded=True)

    def take(
        self, users: dict[bytes, acl.User], reloaded: bool = False, caller: Any = None
    ) -> None:
        """A whole new set of users: pub/sub clients whose channels were revoked and the
        clients of users gone are disconnected, as Redis does. After ACL LOAD
        (``reloaded``) that is every client of a user other than the default one: Redis
        7.0 frees the old users, and their clients with them."""
        if not reloaded:
            for name, user in users.items():
                kept = self.registry.get(name)
                if kept is not None:
                    self.kill_revoked_subscribers(kept, kept, user)
        for gone in self.registry.replace(users, keep=not reloaded):
            self.kill_clients_of(gone, caller)

    def kill_clients_of(self, user: acl.User, caller: Any = None) -> None:
        """ACLFreeUserAndKillClients: this acceptor's clients of a deleted user go (the
        caller after its reply), as the default user, unauthenticated."""
        for client in list(self.server.clients.values()):
            if client.user is user:
                client.user = self.registry.default
                client.authenticated = False
                _close(client, self.server, caller)

    def kill_revoked_subscribers(self, user: acl.User, old: acl.User, new: acl.User) -> None:
        """ACLKillPubsubClientsIfNeeded: when the new rules no longer list every channel
        pattern the old ones did, the user's subscribers whose subscriptions the new
        patterns do not cover are disconnected (a user that had ``&*`` lists none, so in
        Redis 7.0 its subscribers stay)."""
        if any(selector.all_channels for selector in new.selectors):
            return
        upcoming = [channel for selector in new.selectors for channel in selector.channels]
        kept = all(
            channel in upcoming for selector in old.selectors for channel in selector.channels
        )
        if kept:
            return
        for client in list(self.server.clients.values()):
            if client.user is not user or not (
                client.channels or client.patterns or client.shard_channels
            ):
                continue
            bad = any(pattern not in upcoming for pattern in client.patterns) or any(
                not any(compile_glob(each)(channel) for each in upcoming)
                for channel in [*client.channels, *client.shard_channels]
            )
            if bad:
                _close(client, self.server)

    # -- the ACL file --------------------------------------------------------------------

    def load(self, caller: Any = None) -> str | None:
        """ACL LOAD: every user from the ACL file, or (changing nothing) every problem."""
        try:
            with open(self.aclfile, "rb") as handle:
                lines = handle.read().split(b"\n")
        except OSError as problem:
            return f"Error loading ACLs, opening file '{self.aclfile}': {problem.strerror}"
        users = acl.parse_user_lines(lines, self.aclfile)
        if isinstance(users, str):
            return users
        self.take(users, reloaded=True, caller=caller)
        return None

    def save(self) -> bool:
        """ACL SAVE: the users, as ACL LIST prints them, replace the ACL file at once."""
        text = b"".join(line + b"\n" for line in self.registry.lines())
        temporary = f"{self.aclfile}.tmp-{os.getpid()}-{int(time.time() * 1000)}"
        try:
            with open(temporary, "wb") as handle:
                handle.write(text)
            os.replace(temporary, self.aclfile)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False
        return True

    # -- the log over every acceptor -------------------------------------------------------

    def log_entries(self) -> list[tuple]:
        """This acceptor's ACL LOG entries as plain data, for ACL LOG through any."""
        return [
            (e.count, e.reason, e.context, e.object, e.username, e.created_us, e.client_info)
            for e in self.log.entries
        ]


def _answer(reply: bytes) -> Any:
    """A handler that answers ``reply``."""
    return lambda _session, _argv: reply


def _close(client: Any, server: Any, caller: Any = None) -> None:
    """Disconnect a client: another at once, the caller once its reply is queued."""
    if client.transport is None or client.transport.is_closing():
        return
    if client is caller:
        server.loop.call_soon(client.close_after_reply)
    else:
        client.transport.abort()


def _logged_object(reason: int, name: str, argv: list[bytes], position: int) -> bytes:
    """What an ACL LOG entry names: the command, or the key or channel refused."""
    return name.encode() if reason == acl.DENIED_CMD else argv[position]


# -- ACL subcommands ------------------------------------------------------------------------


def _service(session: Any) -> AccessControl:
    return session.server.acl


def acl_setuser(session: Any, argv: list[bytes]) -> bytes | Later:
    service = _service(session)
    old = service.registry.get(argv[2])
    before = old.copy() if old is not None else None
    user, problem = service.registry.set_user(argv[2], argv[3:])
    if problem is not None:
        return problem
    if before is not None:
        service.kill_revoked_subscribers(user, before, user)
    return service.changed(b"+OK\r\n", "acl_set", [b"user " + argv[2] + b" " + user.describe()])


def acl_deluser(session: Any, argv: list[bytes]) -> bytes | Later:
    service = _service(session)
    if any(name == b"default" for name in argv[2:]):
        return error("ERR The 'default' user cannot be removed")
    deleted = 0
    for name in argv[2:]:
        user = service.registry.delete(name)
        if user is not None:
            service.kill_clients_of(user, session)
            deleted += 1
    return service.changed(session.enc.integer(deleted), "acl_deleted", argv[2:])


def acl_getuser(session: Any, argv: list[bytes]) -> bytes:
    user = _service(session).registry.get(argv[2])
    enc = session.enc
    if user is None:
        return enc.NULL  # Redis 7.0 answers a null (later versions an error)
    bulk = enc.bulk
    fields = [
        (bulk(b"flags"), enc.set([bulk(flag) for flag in user.flags()])),
        (bulk(b"passwords"), enc.array([bulk(each.encode()) for each in user.passwords])),
        *_selector_fields(enc, user.root),
        (
            bulk(b"selectors"),
            enc.array([enc.map(_selector_fields(enc, each)) for each in user.selectors[1:]]),
        ),
    ]
    return enc.map(fields)


def _selector_fields(enc: Any, selector: acl.Selector) -> list[tuple[bytes, bytes]]:
    bulk = enc.bulk
    return [
        (bulk(b"commands"), bulk(selector.describe_commands())),
        (bulk(b"keys"), bulk(selector.describe_keys())),
        (bulk(b"channels"), bulk(selector.describe_channels())),
    ]


def acl_list(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.bulk_array(_service(session).registry.lines())


def acl_users(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.bulk_array(_service(session).registry.names())


def acl_whoami(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.bulk(session.user.name)


def acl_cat(session: Any, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        return _subcommand_error(argv)
    if len(argv) == 2:
        return session.enc.bulk_array([name.encode() for name in acl.CATEGORIES])
    names = acl.category_commands(argv[2].decode("utf-8", "replace"))
    if names is None:
        return error_bytes(b"ERR Unknown category '" + argv[2][:128] + b"'")
    return session.enc.bulk_array([name.encode() for name in names])


def acl_genpass(session: Any, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        return _subcommand_error(argv)
    bits = 256
    if len(argv) == 3:
        bits = parse_int(argv[2])
        if bits is None:
            return NOT_INTEGER
    if not 0 < bits <= 4096:
        return error(
            "ERR ACL GENPASS argument must be the number of bits for the output password, "
            "a positive number up to 4096"
        )
    return session.enc.bulk(acl.generate_password(bits))


def acl_log(session: Any, argv: list[bytes]) -> bytes | Later:
    """ACL LOG [count | RESET]: every acceptor's entries, newest first."""
    if len(argv) > 3:
        return _subcommand_error(argv)
    server = session.server
    count = 10
    if len(argv) == 3:
        if argv[2].lower() == b"reset":
            server.acl.log.reset()
            return server.told_everywhere(b"+OK\r\n", "acl_log_reset")
        count = parse_int(argv[2])
        if count is None:
            return NOT_INTEGER
        count = max(count, 0)
    mine = server.acl.log_entries()

    def reply(found: list[list[tuple]]) -> bytes:
        return _log_reply(session.enc, acl.merge_logs(found)[:count])

    return server.everywhere(mine, reply, "acl_log")


def _log_reply(enc: Any, entries: list[tuple]) -> bytes:
    now = int(time.time() * 1000)
    bulk = enc.bulk
    items = []
    for count, reason, context, obj, username, created, info in entries:
        age = b"%.17g" % ((now - created // 1000) / 1000)  # milliseconds, as Redis's
        items.append(
            enc.map(
                [
                    (bulk(b"count"), enc.integer(count)),
                    (bulk(b"reason"), bulk(acl.REASON_NAMES[reason].encode())),
                    (bulk(b"context"), bulk(context.encode())),
                    (bulk(b"object"), bulk(obj)),
                    (bulk(b"username"), bulk(username)),
                    (bulk(b"age-seconds"), enc.double(age)),
                    (bulk(b"client-info"), bulk(info)),
                ]
            )
        )
    return enc.array(items)


def acl_dryrun(session: Any, argv: list[bytes]) -> bytes:
    user = _service(session).registry.get(argv[2])
    if user is None:
        return error_bytes(b"ERR User '" + argv[2] + b"' not found")
    line = argv[3:]
    name = acl.full_name(line)
    if acl.lookup(name) is None:  # an unknown subcommand too, as lookupCommand finds none
        return error_bytes(b"ERR Command '" + argv[3] + b"' not found")
    reason, position = user.check(name, line)
    if reason == acl.DENIED_CMD:
        text = f"This user has no permissions to run the '{name}' command".encode()
    elif reason == acl.DENIED_KEY:
        text = b"This user has no permissions to access the '" + line[position] + b"' key"
    elif reason == acl.DENIED_CHANNEL:
        text = b"This user has no permissions to access the '" + line[position] + b"' channel"
    else:
        return b"+OK\r\n"
    return session.enc.bulk(text)


def acl_load(session: Any, argv: list[bytes]) -> bytes | Later:
    service = _service(session)
    if not service.aclfile:
        return _NO_ACL_FILE
    problem = service.load(session)
    if problem is not None:
        return error("ERR " + problem)
    return service.changed(b"+OK\r\n", "acl_loaded", service.registry.lines())


def acl_save(session: Any, argv: list[bytes]) -> bytes:
    service = _service(session)
    if not service.aclfile:
        return _NO_ACL_FILE
    if not service.save():
        return error(
            "ERR There was an error trying to save the ACLs. Please check the server logs for "
            "more information"
        )
    return b"+OK\r\n"


_HELP = [
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
]


def acl_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


def _subcommand_error(argv: list[bytes]) -> bytes:
    """Redis's reply when a subcommand's arguments fit none of its forms."""
    return error_bytes(
        b"ERR unknown subcommand or wrong number of arguments for '"
        + argv[1][:128]
        + b"'. Try ACL HELP."
    )


ROWS = [
    local("acl|setuser", acl_setuser, notes="on every acceptor from its reply on"),
    local("acl|deluser", acl_deluser, notes="disconnects the users' clients on every acceptor"),
    local("acl|getuser", acl_getuser),
    local(
        "acl|list",
        acl_list,
        notes="single-command rules in name order (Redis's order changes with each start)",
    ),
    local("acl|users", acl_users),
    local("acl|whoami", acl_whoami),
    local("acl|cat", acl_cat),
    local("acl|genpass", acl_genpass),
    local(
        "acl|log",
        acl_log,
        notes="every acceptor's entries; like entries of two acceptors group when listed",
    ),
    local("acl|dryrun", acl_dryrun),
    local("acl|load", acl_load),
    local("acl|save", acl_save),
    local("acl|help", acl_help),
]
