"""DUMP and RESTORE: one value in Redis's serialized format (RDB encoding, version, CRC-64)."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
