"""Sets (Redis's ``t_set.c``): the set value class and its commands."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
