"""Pub/sub against a real redis-server, byte for byte, at 1 and 4 shards; then what only our
server can show: several acceptors, slow subscribers, messages behind owed replies.

A sequence is a list of steps ``(connection, command)`` (None: only read). After each step
(but those inside MULTI, which read their one reply) the test sends ``PING <marker>`` on that
connection and reads every reply up to the marker's, so a step's replies (several
confirmations, messages published by another connection) are compared whole, and the PING's
own form (``pong`` as an array in subscribed mode) too.

Channel names are unique to each sequence, since PUBLISH counts and PUBSUB NUMSUB are
server-wide. Where Redis's order comes from its hash tables (UNSUBSCRIBE of several channels
without arguments, PUBSUB CHANNELS, several patterns matching one message), the sequences
avoid it: we answer in subscription order (docs/commands.md).
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
import redis
from conftest import (
    DEBUG_ENABLED,
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    wait_until,
)

#: DEBUG SLEEP holds the shards in the ordering tests.
CLONE_ARGS = DEBUG_ENABLED

MARKER = b"~end-of-step~"

#: A step inside MULTI reads its one reply and sends no marker (it would be queued).
ONE_REPLY = "one reply"
Step = tuple[int, list | None] | tuple[int, list, str]

SEQUENCES: dict[str, list[Step]] = {
    "confirmations": [
        (0, ["UNSUBSCRIBE"]),
        (0, ["PUNSUBSCRIBE"]),
        (0, ["SUNSUBSCRIBE"]),
        (0, ["SUBSCRIBE", "c1:a", "c1:b", "c1:a"]),
        (0, ["PSUBSCRIBE", "c1:h*"]),
        (0, ["SSUBSCRIBE", "c1:x"]),
        (0, ["UNSUBSCRIBE", "c1:zz"]),
        (0, ["UNSUBSCRIBE", "c1:a"]),
        (0, ["UNSUBSCRIBE"]),
        (0, ["PSUBSCRIBE", "c1:p", "c1:p", "c1:q"]),
        (0, ["PUNSUBSCRIBE", "c1:none"]),
        (0, ["PUNSUBSCRIBE"]),
        (0, ["SUNSUBSCRIBE"]),
        (0, ["GET", "k"]),
    ],
    "subscribed mode refuses the rest": [
        (0, ["SUBSCRIBE", "c2:a"]),
        (0, ["GET", "k"]),
        (0, ["SET", "k", "v"]),
        (0, ["get", "k"]),
        (0, ["ECHO", "x"]),
        (0, ["CLIENT", "LIST"]),
        (0, ["CONFIG", "GET", "x"]),
        (0, ["PUBLISH", "c2:a", "m"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
        (0, ["HELLO", "3"]),
        (0, ["AUTH", "x"]),
        (0, ["PING"]),
        (0, ["PING", "hi"]),
        (0, ["PING", "a", "b"]),
        (0, ["FOO"]),
        (0, ["GET"]),
        (0, ["CLIENT", "FOO"]),
        (0, ["SUBSCRIBE"]),
        (0, ["UNSUBSCRIBE"]),
        (0, ["GET", "k"]),
        (0, ["PING"]),
    ],
    "shard channels keep subscribed mode, counted apart": [
        (0, ["SSUBSCRIBE", "c3:x"]),
        (0, ["GET", "k"]),
        (0, ["SUBSCRIBE", "c3:a"]),
        (0, ["UNSUBSCRIBE"]),
        (0, ["GET", "k"]),
        (0, ["SUNSUBSCRIBE"]),
        (0, ["GET", "k"]),
    ],
    "RESET leaves subscribed mode": [
        (0, ["SUBSCRIBE", "c4:a"]),
        (0, ["PSUBSCRIBE", "c4:p*"]),
        (0, ["RESET"]),
        (0, ["GET", "k"]),
        (0, ["PUBSUB", "NUMSUB", "c4:a"]),
        (1, ["PUBLISH", "c4:a", "m"]),
        (1, ["PUBLISH", "c4:pq", "m"]),
        (0, None),
    ],
    "SUBSCRIBE queued in MULTI": [
        (0, ["MULTI"], ONE_REPLY),
        (0, ["SUBSCRIBE", "c5:a", "c5:b"], ONE_REPLY),
        (0, ["PING"], ONE_REPLY),
        (0, ["EXEC"]),
        (0, ["GET", "k"]),
        (0, ["RESET"]),
        (0, ["GET", "k"]),
    ],
    "RESP3 pushes, every command allowed": [
        (0, ["SUBSCRIBE", "c6:a"]),
        (0, ["GET", "k"]),
        (0, ["PING"]),
        (0, ["PUBLISH", "c6:a", "m"]),
        (0, ["PSUBSCRIBE", "c6:*"]),
        (0, ["PUBSUB", "NUMSUB", "c6:a"]),
        (0, ["PUBSUB", "CHANNELS", "c6:*"]),
        (0, ["UNSUBSCRIBE"]),
        (0, ["PUBLISH", "c6:a", "m2"]),
        (0, ["PUNSUBSCRIBE"]),
        (0, ["UNSUBSCRIBE"]),
        (0, ["SSUBSCRIBE", "c6:s"]),
        (0, ["SPUBLISH", "c6:s", "m3"]),
        (0, ["SUNSUBSCRIBE"]),
    ],
    "messages from another connection": [
        (0, ["SUBSCRIBE", "c7:news", "c7:\r\nbin\x00"]),
        (0, ["PSUBSCRIBE", "c7:w*"]),
        (2, ["SUBSCRIBE", "c7:news"]),
        (1, ["PUBLISH", "c7:news", "hello\r\nworld"]),
        (1, ["PUBLISH", "c7:\r\nbin\x00", "\x00\xff"]),
        (1, ["PUBLISH", "c7:weather", "rain"]),
        (1, ["PUBLISH", "c7:nobody", "x"]),
        (1, ["PUBLISH", "", "empty"]),
        (0, None),
        (2, None),
        (1, ["PUBSUB", "NUMSUB", "c7:news", "c7:weather", "c7:news"]),
        (1, ["PUBSUB", "CHANNELS", "c7:n*"]),
        (1, ["PUBSUB", "CHANNELS", "c7:[m-o]?ws"]),
        (0, ["UNSUBSCRIBE", "c7:news"]),
        (1, ["PUBLISH", "c7:news", "again"]),
        (2, None),
        (0, None),
    ],
    "a RESP3 and a RESP2 subscriber": [
        (0, ["SUBSCRIBE", "c8:a"]),
        (2, ["SUBSCRIBE", "c8:a"]),
        (2, ["PSUBSCRIBE", "c8:?"]),
        (1, ["PUBLISH", "c8:a", "m"]),
        (0, None),
        (2, None),
    ],
    "shard messages": [
        (0, ["SSUBSCRIBE", "c9:s1", "c9:s2"]),
        (1, ["SPUBLISH", "c9:s1", "hi"]),
        (1, ["PUBLISH", "c9:s1", "not for shard subscribers"]),
        (1, ["PUBSUB", "SHARDNUMSUB", "c9:s1", "c9:q"]),
        (1, ["PUBSUB", "SHARDCHANNELS", "c9:s1*"]),
        (0, None),
    ],
    "PUBSUB errors and help": [
        (0, ["PUBSUB", "HELP"]),
        (0, ["PUBSUB", "NUMSUB"]),
        (0, ["pubsub", "numsub"]),
        (0, ["PUBSUB", "NUMPAT", "x"]),
        (0, ["PUBSUB", "CHANNELS", "a", "b"]),
        (0, ["PUBSUB", "SHARDCHANNELS", "a", "b"]),
        (0, ["PUBSUB"]),
        (0, ["PUBSUB", "FOO"]),
        (0, ["PUBLISH", "a"]),
        (0, ["SPUBLISH", "a"]),
        (0, ["PSUBSCRIBE"]),
        (0, ["PUBSUB", "CHANNELS", "c10:nothing*"]),
    ],
}
#: Connections that switch to RESP3 (HELLO 3, whose reply holds the client ID, not compared).
RESP3 = {"RESP3 pushes, every command allowed": {0}, "a RESP3 and a RESP2 subscriber": {2}}


def step_replies(conn: RawConnection) -> list[bytes]:
    """Every reply up to and including the marker PING's."""
    replies = []
    while True:
        reply = conn.read_reply()
        replies.append(reply)
        if MARKER in reply:
            return replies


def run_sequence(server: ServerProcess, name: str) -> list[tuple[int, list[bytes]]]:
    steps = SEQUENCES[name]
    conns = {index: RawConnection(server.port) for index in {step[0] for step in steps}}
    try:
        for index in RESP3.get(name, ()):
            assert conns[index].command("HELLO", "3").startswith(b"%")
        seen = []
        for index, command, *how in steps:
            data = encode_command(*command) if command is not None else b""
            if how:
                seen.append((index, [conns[index].request(data)]))
                continue
            conns[index].send(data + encode_command("PING", MARKER))
            seen.append((index, step_replies(conns[index])))
        return seen
    finally:
        for conn in conns.values():
            conn.close()


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_sequences_match_redis(
    redis_server: ServerProcess, clone: ServerProcess, name: str
) -> None:
    assert run_sequence(clone, name) == run_sequence(redis_server, name)


def test_inline_commands_in_subscribed_mode(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    def replies(server: ServerProcess) -> list[bytes]:
        with RawConnection(server.port) as conn:
            conn.send(b"SUBSCRIBE inline:a\r\nPING\r\nPING x\r\nGET k\r\n")
            return [conn.read_reply() for _ in range(4)]

    assert replies(clone) == replies(redis_server)


def test_quit_in_subscribed_mode(redis_server: ServerProcess, clone: ServerProcess) -> None:
    def replies(server: ServerProcess) -> bytes:
        with RawConnection(server.port) as conn:
            conn.send(encode_command("SUBSCRIBE", "quit:a") + encode_command("QUIT"))
            return conn.read_until_closed()

    assert replies(clone) == replies(redis_server)


def test_client_list_shows_subscriptions(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as sub, RawConnection(clone.port) as other:
        sub.send(
            encode_command("SUBSCRIBE", "cl:a", "cl:b")
            + encode_command("PSUBSCRIBE", "cl:*")
            + encode_command("SSUBSCRIBE", "cl:s")
        )
        for _ in range(4):
            sub.read_reply()
        listing = other.command("CLIENT", "LIST", "TYPE", "pubsub").decode()
        assert " flags=P " in listing and " sub=2 psub=1 ssub=1 " in listing
        assert "cmd=ssubscribe" in listing
        normal = other.command("CLIENT", "LIST", "TYPE", "normal").decode()
        assert "cmd=ssubscribe" not in normal and "cmd=client|list" in normal
        assert other.command("CLIENT", "KILL", "TYPE", "pubsub") == b":1\r\n"
        assert sub.read_until_closed() == b""


def test_numpat_and_disconnects_drop_subscriptions(clone: ServerProcess) -> None:
    with clone.client() as client:
        before = client.pubsub_numpat()
        with RawConnection(clone.port) as sub:
            sub.send(encode_command("PSUBSCRIBE", "np:a*", "np:b*"))
            sub.read_reply()
            sub.read_reply()
            assert client.pubsub_numpat() == before + 2
            sub.send(encode_command("SUBSCRIBE", "np:chan"))
            sub.read_reply()
            assert client.pubsub_numsub("np:chan") == [(b"np:chan", 1)]
        assert wait_until(lambda: client.pubsub_numsub("np:chan") == [(b"np:chan", 0)], 10)
        assert wait_until(lambda: client.pubsub_numpat() == before, 10)
        assert client.publish("np:chan", "x") == 0


def test_redis_py_publisher_and_subscribers(clone: ServerProcess) -> None:
    with clone.client() as publisher, clone.client() as client:
        exact, patterned = client.pubsub(), client.pubsub()
        channel = b"py:\r\n\x00\xffchan"
        exact.subscribe(channel, "py:plain")
        patterned.psubscribe("py:*")
        for pubsub, count in ((exact, 2), (patterned, 1)):
            for _ in range(count):
                assert wait_for_message(pubsub)["type"] in ("subscribe", "psubscribe")
        payloads = [b"a\r\nb", b"\x00" * 10, b"*3\r\n$3\r\nfoo\r\n", b"x" * 100_000]
        for payload in payloads:
            assert publisher.publish(channel, payload) == 2
        assert publisher.publish("py:plain", "p") == 2
        got = [wait_for_message(exact) for _ in range(5)]
        assert [(m["channel"], m["data"]) for m in got] == [
            *[(channel, payload) for payload in payloads],
            (b"py:plain", b"p"),
        ]
        got = [wait_for_message(patterned) for _ in range(5)]
        assert {m["pattern"] for m in got} == {b"py:*"}
        assert [m["data"] for m in got] == [*payloads, b"p"]
        exact.close()
        patterned.close()


def wait_for_message(pubsub: redis.client.PubSub, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return message
    raise AssertionError("no message before the deadline")


def test_messages_leave_after_replies_already_owed(clone: ServerProcess) -> None:
    # DEBUG SLEEP holds the shards: the subscriber's reply is owed while the acceptor takes
    # the PUBLISH, so the push must wait behind it.
    with RawConnection(clone.port) as sub, RawConnection(clone.port) as publisher:
        assert sub.command("HELLO", "3").startswith(b"%")
        assert sub.command("SUBSCRIBE", "owed:a").startswith(b">3")
        sub.send(encode_command("DEBUG", "SLEEP", "0.5") + encode_command("GET", "owed:k"))
        assert wait_until(lambda: b"cmd=get" in publisher.command("CLIENT", "LIST"), 5)
        assert publisher.command("PUBLISH", "owed:a", "m") == b":1\r\n"
        assert sub.read_reply() == b"+OK\r\n"
        assert sub.read_reply() == b"_\r\n"
        assert sub.read_reply() == b">3\r\n$7\r\nmessage\r\n$6\r\nowed:a\r\n$1\r\nm\r\n"


# -- several acceptors ------------------------------------------------------------------------


def raw_on(server: ServerProcess, acceptor: int, attempts: int = 64) -> RawConnection:
    """A raw connection served by acceptor ``acceptor``."""
    for _ in range(attempts):
        conn = server.raw()
        info = conn.call("INFO", "shards").decode()
        if f"connection_acceptor:{acceptor}\r\n" in info:
            return conn
        conn.close()
    raise AssertionError(f"no connection landed on acceptor {acceptor}")


def test_two_acceptors_deliver_every_message_once_in_order(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(2, ["--acceptors", "2"])
    channels = [f"ch{i}".encode() for i in range(4)]
    subscriptions = {0: (channels, [b"ch[02]"]), 1: (channels[1:], [b"p*", b"ch*"])}
    subscribers = {index: raw_on(server, index) for index in subscriptions}
    for index, (names, patterns) in subscriptions.items():
        subscribers[index].send(
            encode_command("SUBSCRIBE", *names) + encode_command("PSUBSCRIBE", *patterns)
        )
        for _ in range(len(names) + len(patterns)):
            subscribers[index].read_reply()
    targets = [*channels, b"p1", b"other"]
    expected: dict[int, list[bytes]] = {0: [], 1: []}
    published = []
    for number in range(2000):
        channel = targets[number % len(targets)]
        payload = b"m%d\r\n" % number
        count = 0
        for index, (names, patterns) in subscriptions.items():
            if channel in names:
                expected[index].append(encode_reply(b"message", channel, payload))
                count += 1
            for pattern in patterns:
                if re.fullmatch(glob_regex(pattern), channel):
                    expected[index].append(encode_reply(b"pmessage", pattern, channel, payload))
                    count += 1
        published.append((channel, payload, count))
    # The first half from a publisher on acceptor 0, then the rest from one on acceptor 1.
    halves = [published[:1000], published[1000:]]
    for acceptor, half in enumerate(halves):
        with raw_on(server, acceptor) as publisher:
            publisher.send(b"".join(encode_command("PUBLISH", c, p) for c, p, _ in half))
            counts = [publisher.read_reply() for _ in half]
            assert counts == [b":%d\r\n" % n for _, _, n in half]
    for index, conn in subscribers.items():
        got = [conn.read_reply() for _ in expected[index]]
        assert got == expected[index]
        conn.send(encode_command("PING", MARKER))
        assert MARKER in conn.read_reply()  # nothing more came
    with server.client_on(0) as first, server.client_on(1) as second:
        for client in (first, second):
            assert client.pubsub_numsub("ch0", "ch1", "nope") == [
                (b"ch0", 1),
                (b"ch1", 2),
                (b"nope", 0),
            ]
            assert client.pubsub_numpat() == 3
            assert sorted(client.pubsub_channels()) == channels
            assert client.info("stats")["pubsub_channels"] == 4
    for conn in subscribers.values():
        conn.close()


def encode_reply(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%b\r\n" % (len(i), i) for i in items)


def glob_regex(pattern: bytes) -> bytes:
    """The few glob forms the test above uses, as a regular expression."""
    return pattern.replace(b"*", b".*")


# -- a slow subscriber ------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Read what the socket still holds until end of file or a reset (True); a timeout
    means the server kept the connection open."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    return True


def test_config_get_client_output_buffer_limit(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    def replies(server: ServerProcess) -> list[bytes]:
        with RawConnection(server.port) as conn:
            commands = [
                ("CONFIG", "GET", "client-output-buffer-limit"),
                ("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 512kb"),
                ("CONFIG", "SET", "client-output-buffer-limit", "foo 1 1 1"),
                ("CONFIG", "SET", "client-output-buffer-limit", "normal 1x 1 1"),
                ("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 61"),
                ("CONFIG", "GET", "client-output-buffer-limit"),
                ("CONFIG", "SET", "client-output-buffer-limit", "pubsub 33554432 8388608 60"),
                ("CONFIG", "GET", "client-output-buffer-l*"),
            ]
            return [conn.command(*command) for command in commands]

    assert replies(clone) == replies(redis_server)


def test_a_subscriber_that_never_reads_is_dropped(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(1, ["--acceptors", "1"])
    with server.client() as control:
        control.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 60")
    slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    slow_sock.connect(("127.0.0.1", server.port))
    slow_sock.sendall(encode_command("SUBSCRIBE", "big"))
    fast = server.raw(timeout=30)
    fast.send(encode_command("SUBSCRIBE", "big"))
    assert fast.read_reply().startswith(b"*3\r\n$9\r\nsubscribe")
    publisher = server.raw(timeout=30)
    assert wait_until(
        lambda: publisher.command("PUBSUB", "NUMSUB", "big") == b"*2\r\n$3\r\nbig\r\n:2\r\n", 10
    )
    baseline = rss_kb(server.pid)
    payload = b"x" * (256 * 1024)
    counts = []
    received = []
    for _ in range(400):  # 100 MB in all; the other subscriber keeps up, one message behind
        counts.append(publisher.command("PUBLISH", "big", payload))
        received.append(fast.read_reply())
    assert counts[0] == b":2\r\n" and counts[-1] == b":1\r\n"
    assert len(received) == 400 and all(r.endswith(payload + b"\r\n") for r in received)
    grown_mb = (rss_kb(server.pid) - baseline) / 1024
    assert grown_mb < 50, f"the acceptor grew by {grown_mb:.0f} MB"
    assert "scheduled to be closed ASAP for overcoming of output buffer limits" in (
        server.log_text()
    )
    assert closed_by_server(slow_sock)
    slow_sock.close()
    assert publisher.command("PING") == b"+PONG\r\n"
    fast.close()
    publisher.close()
