"""Differential test of ACL rules: random ACL SETUSER sequences against redis-clone and
redis-server.

Hypothesis builds a few users from random rules (every kind: flags, passwords and hashes,
key patterns with and without permissions, channels, commands, subcommands, categories,
first arguments, selectors, the resets, and rules that fail), sends the same SETUSERs to
both servers, then asks both ACL LIST, ACL GETUSER of each user and ACL DRYRUN of a set of
command lines (commands of every category, keys read and written, channels, patterns).
Every reply must be byte-identical, except that the single-command rules Redis prints
after the categories come in its hash table's order (random per start): each run of them
is sorted on both sides before comparing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from conftest import RawConnection, ServerPool, ServerProcess, require_redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("ACL_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: The users changed (the default user is left alone: one without +acl would lock the
#: test out of both servers), and those looked at.
USERS = [b"u1", b"u2"]
SHOWN = [*USERS, b"default"]
SIMPLE_RULES = [
    b"on",
    b"off",
    b">pw",
    b">other",
    b"<pw",
    b"nopass",
    b"resetpass",
    b"reset",
    b"#" + b"a" * 64,
    b"!" + b"a" * 64,
    b"#abc",
    b"~*",
    b"allkeys",
    b"resetkeys",
    b"~app:*",
    b"~b?",
    b"%R~ro:*",
    b"%W~wo:*",
    b"%RW~rw*",
    b"%R~app:*",
    b"%~x",
    b"&*",
    b"allchannels",
    b"resetchannels",
    b"&news.*",
    b"&chan",
    b"+@all",
    b"-@all",
    b"allcommands",
    b"nocommands",
    b"+get",
    b"-get",
    b"+set",
    b"-set",
    b"+hset",
    b"+client",
    b"-client|kill",
    b"+config|get",
    b"+select|0",
    b"+select|1",
    b"+@read",
    b"-@read",
    b"+@write",
    b"-@write",
    b"+@hash",
    b"-@dangerous",
    b"+@string",
    b"-@fast",
    b"+@pubsub",
    b"-@admin",
    b"+@keyspace",
    b"-@slow",
    b"+nosuch",
    b"+@nosuch",
    b"clearselectors",
    b"sanitize-payload",
    b"skip-sanitize-payload",
    b"bogus",
    b"~*",
    b"+publish",
    b"+psubscribe",
    b"+eval",
]
SELECTOR_RULES = [b"~s:*", b"+get", b"+set", b"+@hash", b"&s.*", b"%R~r:*", b"-@all", b"+@all"]
SELECTORS = st.lists(st.sampled_from(SELECTOR_RULES), min_size=1, max_size=3).map(
    lambda rules: b"(" + b" ".join(rules) + b")"
)
#: Most users start from many commands, so the key and channel rules after them decide.
STARTS = st.sampled_from(
    [[], [b"+@all"], [b"+@all"], [b"+@read", b"+@write"], [b"+@all", b"-@write"]]
)
KEY_RULES = [b"~app:*", b"%R~ro:*", b"%W~wo:*", b"%RW~rw*", b"%R~app:*", b"&news.*", b"&chan"]
RULES = st.builds(
    lambda start, rules: start + rules,
    STARTS,
    st.lists(
        st.one_of(st.sampled_from(SIMPLE_RULES), st.sampled_from(KEY_RULES), SELECTORS),
        max_size=7,
    ),
)
SETUSERS = st.lists(st.tuples(st.sampled_from(USERS), RULES), min_size=1, max_size=4)

DRYRUNS = [
    [b"get", b"app:1"],
    [b"get", b"ro:1"],
    [b"set", b"ro:1", b"v"],
    [b"set", b"wo:1", b"v"],
    [b"set", b"wo:1", b"v", b"get"],
    [b"get", b"wo:1"],
    [b"get", b"rw1"],
    [b"llen", b"wo:1"],
    [b"lpush", b"ro:1", b"v"],
    [b"lpush", b"wo:1", b"v"],
    [b"hget", b"ro:1", b"f"],
    [b"copy", b"ro:1", b"wo:1"],
    [b"sort", b"ro:1", b"store", b"wo:1"],
    [b"zunionstore", b"wo:1", b"2", b"ro:1", b"app:1"],
    [b"get", b"s:1"],
    [b"sort", b"app:1", b"by", b"w_*"],
    [b"sort", b"app:1", b"get", b"#"],
    [b"set", b"s:1", b"v"],
    [b"hset", b"s:1", b"f", b"v"],
    [b"mset", b"app:1", b"a", b"zz", b"b"],
    [b"lmove", b"rw1", b"app:2", b"left", b"right"],
    [b"client", b"kill", b"id", b"1"],
    [b"client", b"id"],
    [b"config", b"get", b"hz"],
    [b"select", b"0"],
    [b"select", b"1"],
    [b"publish", b"news.1", b"m"],
    [b"publish", b"s.x", b"m"],
    [b"psubscribe", b"news.*"],
    [b"psubscribe", b"news.1*"],
    [b"subscribe", b"chan", b"other"],
    [b"eval", b"return 1", b"1", b"app:9"],
    [b"flushall"],
    [b"ping"],
]


def _commands(setusers: list[tuple[bytes, list[bytes]]]) -> list[list[bytes]]:
    commands = [[b"ACL", b"SETUSER", name, *rules] for name, rules in setusers]
    commands.append([b"ACL", b"LIST"])
    for name in SHOWN:
        commands.append([b"ACL", b"GETUSER", name])
        commands.extend([b"ACL", b"DRYRUN", name, *line] for line in DRYRUNS)
    commands.append([b"ACL", b"DELUSER", *USERS])
    return commands


_RULE = rb"[+-][a-z_\-]+(?:\|[a-z0-9_\-]+)?"


def _normalized(reply: bytes) -> bytes:
    """Each run of single-command rules sorted (Redis prints them in hash order)."""
    return re.sub(
        _RULE + rb"(?: " + _RULE + rb")*",
        lambda match: b" ".join(sorted(match.group(0).split(b" "))),
        reply,
    )


@pytest.fixture(scope="module")
def pair(module_servers: ServerPool) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    require_redis_server()
    yield module_servers.start_redis(), module_servers.clone(4)


def _replies(server: ServerProcess, commands: list[list[bytes]], protocol: int) -> list[bytes]:
    with RawConnection(server.port) as raw:
        if protocol == 3:
            raw.command("HELLO", "3")
        return [raw.command(*command) for command in commands]


@SETTINGS
@given(setusers=SETUSERS, protocol=st.sampled_from([2, 3]))
def test_random_rules_match_redis(
    pair: tuple[ServerProcess, ServerProcess],
    setusers: list[tuple[bytes, list[bytes]]],
    protocol: int,
) -> None:
    oracle, clone = pair
    commands = _commands(setusers)
    theirs = _replies(oracle, commands, protocol)
    ours = _replies(clone, commands, protocol)
    for command, mine, expected in zip(commands, ours, theirs, strict=True):
        assert _normalized(mine) == _normalized(expected), command
