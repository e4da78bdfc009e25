"""Protected mode and protected actions: who may connect, run DEBUG, or set protected configs.

Redis 7.0 guards three things by where a client comes from (``networking.c``, ``server.c``,
``config.c``):

- **protected mode** (``protected-mode yes``, the default): while the default user has no
  password, a client that is not local gets :data:`DENIED` as soon as it connects, and is
  closed (``clientAcceptHandler``; counted in INFO's ``rejected_connections``). Redis 7.0 asks
  only where the client is, whatever ``bind`` says: redis-server bound to 127.0.0.1 denies a
  client from 127.0.0.2 too;
- **DEBUG and MODULE LOAD, LOADEX, UNLOAD** (the commands Redis flags ``protected``;
  ``enable-debug-command``, ``enable-module-command``: ``no``, the default, ``yes`` or
  ``local``): refused with Redis's text in ``processCommand``'s place, after the arity check
  and before NOAUTH (so a client's DEBUG, not a script's);
- **protected configs** (``enable-protected-configs``): CONFIG SET of ``dir`` and
  ``dbfilename`` (the configs redis-server 7.0 flags ``PROTECTED_CONFIG``) is refused.

"Local" is Redis's ``islocalClient``: a Unix socket, or a peer whose address reads exactly
``127.0.0.1`` or ``::1`` (127.0.0.2 is not local, nor is ``::ffff:127.0.0.1``).
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import bad_arity
from shardserver.config import ALIASES, PASSIVE, SETTINGS
from shardserver.errors import error

#: The peer addresses Redis's ``islocalClient`` calls local.
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1"})

#: What a client that protected mode refuses gets (redis-server 7.0.15's text, its typo
#: "Setup a an" included), before its connection is closed.
DENIED = error(
    "DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers to Redis you may "
    "adopt one of the following solutions: 1) Just disable protected mode sending the command "
    "'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from "
    "the same host the server is running, however MAKE SURE Redis is not publicly accessible "
    "from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    "Alternatively you can just disable the protected mode by editing the Redis configuration "
    "file, and setting the protected mode option to 'no', and then restarting the server. 3) "
    "If you started the server manually just for testing, restart it with the "
    "'--protected-mode no' option. 4) Setup a an authentication password for the default "
    "user. NOTE: You only need to do one of the above things in order for the server to start "
    "accepting connections from the outside."
)

#: Commands (or subcommands) Redis flags ``protected``: the setting that guards each, and the
#: name Redis's refusal uses (MODULE LIST and HELP are not protected).
GUARDED_COMMANDS = {
    "debug": ("enable-debug-command", "DEBUG"),
    "module|load": ("enable-module-command", "MODULE"),
    "module|loadex": ("enable-module-command", "MODULE"),
    "module|unload": ("enable-module-command", "MODULE"),
}
#: The commands whose name (or a subcommand's) is guarded: the client asks only for these.
GUARDED = frozenset(name.partition("|")[0] for name in GUARDED_COMMANDS)

#: The configs redis-server 7.0 flags PROTECTED_CONFIG (every other visible config is
#: either mutable or immutable for everyone: checked by setting each to its own value).
PROTECTED_CONFIGS = frozenset({"dir", "dbfilename"})


def peer_host(transport: Any) -> str:
    """The address a connection comes from, as Redis prints it ("" when not an IP socket)."""
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) and peer else ""


def is_local(host: str) -> bool:
    """Redis's ``islocalClient`` for a TCP peer (we listen on no Unix socket)."""
    return host in LOCAL_HOSTS


def allowed(mode: str, host: str) -> bool:
    """Redis's ``allowProtectedAction``: ``yes``, or ``local`` and a local client."""
    return mode == "yes" or (mode == "local" and is_local(host))


def denies_connection(config: Any, host: str, default_nopass: bool) -> bool:
    """Whether protected mode refuses a client from ``host`` as it connects;
    ``default_nopass``: the default user has the ``nopass`` flag (Redis 7.0 asks that, so
    ``requirepass``, or an ACL password given to ``default``, lifts it)."""
    return config["protected-mode"] == "yes" and default_nopass and not is_local(host)


def command_refusal(config: Any, spec: Any, argv: list[bytes], host: str) -> bytes | None:
    """DEBUG's or MODULE's refusal for a client at ``host``, or None when it may run (or when
    its subcommand is unknown or has the wrong arity: that error comes first in Redis, and
    the dispatch gives it)."""
    name = spec.name
    if spec.subcommands:
        sub = spec.subcommands.get(argv[1].lower().decode("utf-8", "replace"))
        if sub is None or bad_arity(sub.arity, len(argv)):
            return None
        name = sub.name
    guard = GUARDED_COMMANDS.get(name)
    if guard is None or allowed(config[guard[0]], host):
        return None
    setting, shown = guard
    return error(
        f'ERR {shown} command not allowed. If the {setting} option is set to "local", you can '
        "run it from a local connection, otherwise you need to set this option in the "
        "configuration file, and then restart the server."
    )


def config_set_refusal(config: Any, names: list[str], host: str) -> bytes | None:
    """CONFIG SET's first refused name, as Redis checks every pair before it sets any: an
    immutable config, or a protected one unless ``enable-protected-configs`` allows this
    client. None when every name passes (unknown names are left to CONFIG SET)."""
    for given in names:
        name = ALIASES.get(given, given)
        setting = SETTINGS.get(name)
        if setting is None:
            if name in PASSIVE:
                continue
            return None  # an unknown option comes first: CONFIG SET reports it
        if not setting.mutable:
            why = "can't set immutable config"
        elif name in PROTECTED_CONFIGS and not allowed(config["enable-protected-configs"], host):
            why = "can't set protected config"
        else:
            continue
        return error(f"ERR CONFIG SET failed (possibly related to argument '{given}') - {why}")
    return None
