"""Redis 7.0's own metadata for every command: arity, flags, key positions, COMMAND replies.

``meta.json`` is captured from redis-server 7.0 by ``scripts/gen_command_meta.py``: for each
command its arity, flags and key positions, and the exact ``COMMAND INFO`` and ``COMMAND
DOCS`` replies in RESP2 and RESP3, so our ``COMMAND`` answers byte for byte as Redis does.
Nothing here knows which commands are served (that is :mod:`shardserver.commands.table`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import hiredis

_META_PATH = Path(__file__).with_name("meta.json")

#: Every Redis 7.0 command by name, plus ``|subcommands``: the subcommands' replies.
META: dict[str, dict] = json.loads(_META_PATH.read_text())

#: Subcommands that Redis 7.0 lacks but clients send (redis-py 5+ sends CLIENT SETINFO).
#: Same layout as meta.json's subcommand entries: arity, flags, first/last key, step.
NEWER_THAN_7_0: dict[str, list] = {
    "client|setinfo": [-4, ["noscript", "loading", "stale"], 0, 0, 0],
}


def sub_meta(info: list) -> dict:
    """Arity, flags and key positions from a raw ``COMMAND INFO`` subcommand entry."""
    return {
        "arity": info[0],
        "flags": info[1],
        "first_key": info[2],
        "last_key": info[3],
        "step": info[4],
    }


def raw_info(name: str, protocol: int) -> bytes:
    """Redis's exact ``COMMAND INFO`` entry for a top-level command."""
    return base64.b64decode(META[name][f"info{protocol}"])


def raw_docs(name: str, protocol: int) -> bytes:
    """Redis's exact ``COMMAND DOCS`` entry (name and doc map) for a top-level command."""
    return base64.b64decode(META[name][f"docs{protocol}"])


def raw_sub_info(name: str, protocol: int, spec: Any) -> bytes:
    """``COMMAND INFO container|sub``; a minimal entry, from the served ``spec``, for
    subcommands newer than Redis 7.0."""
    meta = META["|subcommands"].get(name)
    if meta is None:
        return _minimal_info(spec, protocol)
    return base64.b64decode(meta[f"info{protocol}"])


def raw_sub_docs(name: str, protocol: int) -> bytes:
    meta = META["|subcommands"].get(name)
    if meta is None:
        return b"$%d\r\n%b\r\n" % (len(name), name.encode()) + (
            b"%0\r\n" if protocol == 3 else b"*0\r\n"
        )
    return base64.b64decode(meta[f"docs{protocol}"])


def _minimal_info(spec: Any, protocol: int) -> bytes:
    flags = b"".join(b"+%b\r\n" % f.encode() for f in spec.flags)
    set_header = b"~" if protocol == 3 else b"*"
    return (
        b"*10\r\n$%d\r\n%b\r\n:%d\r\n" % (len(spec.name), spec.name.encode(), spec.arity)
        + set_header
        + b"%d\r\n" % len(spec.flags)
        + flags
        + b":%d\r\n:%d\r\n:%d\r\n" % (spec.first_key, spec.last_key, spec.step)
        + set_header
        + b"0\r\n*0\r\n*0\r\n*0\r\n"
    )


def redis_arity_and_flags(name: str) -> tuple[int, list[str]] | None:
    """Redis 7.0's arity and flags of a command (``container|sub`` for a subcommand), served
    here or not; None for a command Redis 7.0 lacks."""
    meta = META["|subcommands"].get(name) if "|" in name else META.get(name)
    if meta is None:
        return None
    if "|" not in name:
        return meta["arity"], list(meta["flags"])
    reader = hiredis.Reader()
    reader.feed(base64.b64decode(meta["info2"]))
    entry = reader.gets()
    return entry[1], [flag.decode() for flag in entry[2]]
