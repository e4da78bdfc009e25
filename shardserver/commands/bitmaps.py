"""Bit operations on strings (Redis's ``bitops.c``): SETBIT, GETBIT, BITCOUNT, BITPOS,
BITOP, BITFIELD."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
