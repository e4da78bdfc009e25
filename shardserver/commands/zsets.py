"""Sorted sets (Redis's ``t_zset.c``): the sorted-set value class and its commands."""

from __future__ import annotations

from shardserver.commands.spec import Command

ROWS: list[Command] = []
