"""SORT and SORT_RO (Redis's ``sort.c``) over lists, sets and sorted sets."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
