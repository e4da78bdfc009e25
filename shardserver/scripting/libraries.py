"""The C libraries Redis loads into Lua (cjson, cmsgpack, struct, bit): not yet here."""

from __future__ import annotations

from typing import Any


def install(runtime: Any) -> None:
    """Define the globals cjson, cmsgpack, struct and bit in this runtime, as Redis loads them."""
