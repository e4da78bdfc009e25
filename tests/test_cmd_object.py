"""OBJECT against redis-server and our server at 1 and 4 shards: byte-identical replies.

Encodings are the interesting part: each type's compact encoding while Redis's thresholds
allow, the big one after (for ever, even when the value shrinks again).
"""

from __future__ import annotations

import pytest
from conftest import RawConnection, ServerProcess

Script = list[tuple[str, ...]]

SCRIPTS: dict[str, Script] = {
    "strings": [
        ("SET", "int", "12345"),
        ("SET", "neg", "-7"),
        ("SET", "big", "123456789012345678901"),
        ("SET", "short", "x" * 44),
        ("SET", "long", "x" * 45),
        ("SET", "lead", "0123"),
        ("OBJECT", "ENCODING", "int"),
        ("OBJECT", "ENCODING", "neg"),
        ("OBJECT", "ENCODING", "big"),
        ("OBJECT", "ENCODING", "short"),
        ("OBJECT", "ENCODING", "long"),
        ("OBJECT", "ENCODING", "lead"),
        ("OBJECT", "REFCOUNT", "int"),
        ("SET", "small", "42"),
        ("OBJECT", "REFCOUNT", "small"),
        ("OBJECT", "REFCOUNT", "neg"),
        ("OBJECT", "ENCODING", "missing"),
        ("OBJECT", "REFCOUNT", "missing"),
        ("OBJECT", "IDLETIME", "missing"),
        ("OBJECT", "FREQ", "missing"),
        ("OBJECT", "FREQ", "int"),
    ],
    "containers": [
        ("RPUSH", "list", "a"),
        ("OBJECT", "ENCODING", "list"),
        ("HSET", "hash", "f", "v"),
        ("OBJECT", "ENCODING", "hash"),
        ("HSET", "hash", "long", "v" * 65),
        ("OBJECT", "ENCODING", "hash"),
        ("HDEL", "hash", "long"),
        ("OBJECT", "ENCODING", "hash"),
        ("SADD", "ints", "1", "2", "3"),
        ("OBJECT", "ENCODING", "ints"),
        ("SADD", "ints", "x"),
        ("OBJECT", "ENCODING", "ints"),
        ("SREM", "ints", "x"),
        ("OBJECT", "ENCODING", "ints"),
        ("ZADD", "z", "1", "m"),
        ("OBJECT", "ENCODING", "z"),
        ("ZADD", "z", "2", "m" * 65),
        ("OBJECT", "ENCODING", "z"),
        ("OBJECT", "REFCOUNT", "z"),
    ],
    "errors": [
        ("OBJECT", "NOSUCH", "k"),
        ("OBJECT", "ENCODING"),
        ("OBJECT", "ENCODING", "a", "b"),
        ("OBJECT",),
        ("OBJECT", "HELP"),
        ("OBJECT", "help"),
    ],
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_object_replies_match(endpoint: ServerProcess, script: str) -> None:
    with RawConnection(endpoint.port) as conn:
        conn.command("FLUSHALL")
        replies = [conn.command(*command) for command in SCRIPTS[script]]
    assert replies == EXPECTED[script]


def _expected() -> dict[str, list[bytes]]:
    """The oracle's replies, recorded from redis-server 7.0.15 (checked against it by
    running this test on the ``redis-server`` endpoint)."""
    help_text = [
        b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        b"ENCODING <key>",
        b"    Return the kind of internal representation used in order to store the value",
        b"    associated with a <key>.",
        b"FREQ <key>",
        b"    Return the access frequency index of the <key>. The returned integer is",
        b"    proportional to the logarithm of the recent access frequency of the key.",
        b"IDLETIME <key>",
        b"    Return the idle time of the <key>, that is the approximated number of",
        b"    seconds elapsed since the last access to the key.",
        b"REFCOUNT <key>",
        b"    Return the number of references of the value associated with the specified",
        b"    <key>.",
        b"HELP",
        b"    Prints this help.",
    ]
    help_reply = b"*%d\r\n" % len(help_text) + b"".join(b"+%b\r\n" % line for line in help_text)
    ok, null = b"+OK\r\n", b"$-1\r\n"

    def bulk(text: bytes) -> bytes:
        return b"$%d\r\n%b\r\n" % (len(text), text)

    not_lfu = (
        b"-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please "
        b"note that when switching between policies at runtime LRU and LFU data will take "
        b"some time to adjust.\r\n"
    )
    return {
        "strings": [ok] * 6
        + [bulk(b"int"), bulk(b"int"), bulk(b"embstr"), bulk(b"embstr"), bulk(b"raw")]
        + [bulk(b"embstr"), b":1\r\n", ok, b":2147483647\r\n", b":1\r\n"]
        + [null, null, null, null, not_lfu],
        "containers": [
            b":1\r\n",
            bulk(b"quicklist"),
            b":1\r\n",
            bulk(b"listpack"),
            b":1\r\n",
            bulk(b"hashtable"),
            b":1\r\n",
            bulk(b"hashtable"),
            b":3\r\n",
            bulk(b"intset"),
            b":1\r\n",
            bulk(b"hashtable"),
            b":1\r\n",
            bulk(b"hashtable"),
            b":1\r\n",
            bulk(b"listpack"),
            b":1\r\n",
            bulk(b"skiplist"),
            b":1\r\n",
        ],
        "errors": [
            b"-ERR unknown subcommand 'NOSUCH'. Try OBJECT HELP.\r\n",
            b"-ERR wrong number of arguments for 'object|encoding' command\r\n",
            b"-ERR wrong number of arguments for 'object|encoding' command\r\n",
            b"-ERR wrong number of arguments for 'object' command\r\n",
            help_reply,
            help_reply,
        ],
    }


EXPECTED = _expected()
