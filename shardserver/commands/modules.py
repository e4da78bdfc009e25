"""MODULE (Redis's ``module.c``): no module is ever loaded here, but the command answers as
redis-server 7.0 does without modules.

LIST is empty; LOAD and LOADEX fail as a library that cannot be opened fails; UNLOAD finds no
module of that name. LOAD, LOADEX and UNLOAD are the subcommands Redis flags ``protected``:
``enable-module-command`` (default ``no``) refuses them before they run
(:mod:`shardserver.protection`); LIST and HELP always run.
"""

from __future__ import annotations

import logging
from typing import Any

from shardserver.commands.spec import local
from shardserver.errors import error

log = logging.getLogger("shardserver.modules")

_HELP = [
    "MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LIST",
    "    Return a list of loaded modules.",
    "LOAD <path> [<arg> ...]",
    "    Load a module library from <path>, passing to it any optional arguments.",
    "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
    "    Load a module library from <path>, while passing it module configurations and "
    "optional arguments.",
    "UNLOAD <name>",
    "    Unload a module.",
    "HELP",
    "    Prints this help.",
]
_LOAD_FAILED = error("ERR Error loading the extension. Please check the server logs.")
_NO_SUCH_MODULE = error("ERR Error unloading module: no such module with that name")


def module_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


def module_list(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([])


def module_load(session: Any, argv: list[bytes]) -> bytes:
    log.warning(
        "Module %s failed to load: modules are not supported", argv[2].decode("utf-8", "replace")
    )
    return _LOAD_FAILED


def module_unload(session: Any, argv: list[bytes]) -> bytes:
    return _NO_SUCH_MODULE


_NOTES = "no module is ever loaded: LOAD and LOADEX fail as a library that cannot be opened"
ROWS = [
    local("module|help", module_help),
    local("module|list", module_list),
    local("module|load", module_load, notes=_NOTES),
    local("module|loadex", module_load, notes=_NOTES),
    local("module|unload", module_unload),
]
