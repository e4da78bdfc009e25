"""Lists (Redis's ``t_list.c``): the list value class and its commands."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
