"""Regenerate ``shardserver/commands/meta.json`` from a running redis-server 7.0.

The file holds, for every command Redis 7.0 has (served here or not yet), Redis's own
metadata: arity, flags, key positions, and the exact ``COMMAND INFO`` and ``COMMAND DOCS``
replies in RESP2 and RESP3 (base64), so our ``COMMAND`` answers byte for byte as Redis does.

Usage: redis-server --port 7000 --save '' & python3 scripts/gen_command_meta.py 7000
"""

from __future__ import annotations

import base64
import json
import socket
import sys
from pathlib import Path

import hiredis

OUT = Path(__file__).resolve().parent.parent / "shardserver" / "commands" / "meta.json"


def encode(*args: str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class Raw:
    """A connection that returns each reply's raw bytes (and its parsed form)."""

    def __init__(self, port: int, protocol: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        if protocol == 3:
            self.call("HELLO", "3")

    def call(self, *args: str) -> tuple[bytes, object]:
        """Send one command and read its whole reply (nothing else is in flight)."""
        self.sock.sendall(encode(*args))
        reader = hiredis.Reader()
        raw = b""
        while True:
            data = self.sock.recv(1 << 20)
            raw += data
            reader.feed(data)
            reply = reader.gets()
            if reply is not False:
                assert not reader.has_data()
                return raw, reply


def strip_array_header(raw: bytes) -> bytes:
    """The single element of a one-element array or map reply."""
    return raw[raw.index(b"\r\n") + 2 :]


def main() -> None:
    port = int(sys.argv[1])
    conns = {2: Raw(port, 2), 3: Raw(port, 3)}
    meta = {}
    _, listed = conns[2].call("COMMAND", "LIST")
    names = sorted(n.decode() for n in listed if b"|" not in n)
    for name in names:
        raw_info, info = conns[2].call("COMMAND", "INFO", name)
        if info == [None]:
            continue
        entry = info[0]
        record = {
            "arity": entry[1],
            "flags": [f.decode() for f in entry[2]],
            "first_key": entry[3],
            "last_key": entry[4],
            "step": entry[5],
            "subcommands": {
                sub[0].decode(): [sub[1], [f.decode() for f in sub[2]], sub[3], sub[4], sub[5]]
                for sub in entry[9]
            },
        }
        for protocol in (2, 3):
            raw_info, _ = conns[protocol].call("COMMAND", "INFO", name)
            raw_docs, _ = conns[protocol].call("COMMAND", "DOCS", name)
            record[f"info{protocol}"] = base64.b64encode(strip_array_header(raw_info)).decode()
            record[f"docs{protocol}"] = base64.b64encode(strip_array_header(raw_docs)).decode()
        meta[name] = record
        for sub in record["subcommands"]:
            for protocol in (2, 3):
                raw_info, _ = conns[protocol].call("COMMAND", "INFO", sub)
                raw_docs, _ = conns[protocol].call("COMMAND", "DOCS", sub)
                meta.setdefault("|subcommands", {}).setdefault(sub, {})[f"info{protocol}"] = (
                    base64.b64encode(strip_array_header(raw_info)).decode()
                )
                meta["|subcommands"][sub][f"docs{protocol}"] = base64.b64encode(
                    strip_array_header(raw_docs)
                ).decode()
    OUT.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(meta)} commands to {OUT}")


if __name__ == "__main__":
    main()
