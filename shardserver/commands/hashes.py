"""Hashes (Redis's ``t_hash.c``): the hash value class and its commands."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
