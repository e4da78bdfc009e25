"""Pipelining: replies leave in request order per client, however the shards interleave.

Each test keeps a model of the keyspace and checks every reply at its position, so a reply
delivered out of order, lost, or duplicated fails the test.
"""

from __future__ import annotations

import random
import threading
import time

import hiredis
from conftest import RawConnection, ServerProcess, encode_command

PIPELINE_COMMANDS = 100_000


def mixed_workload(
    seed: int, count: int, prefix: bytes, key_count: int
) -> tuple[list[tuple[bytes, ...]], list[object]]:
    """Random SET/GET/ECHO commands over `key_count` keys, and the reply each must get.

    Replies are as hiredis decodes RESP2: b"OK" for SET, the value or None for GET.
    """
    rng = random.Random(seed)
    keys = [b"%s:%d" % (prefix, i) for i in range(key_count)]
    model: dict[bytes, bytes] = {}
    commands: list[tuple[bytes, ...]] = []
    expected: list[object] = []
    for i in range(count):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.5:
            value = b"v%d" % i
            model[key] = value
            commands.append((b"SET", key, value))
            expected.append(b"OK")
        elif roll < 0.95:
            commands.append((b"GET", key))
            expected.append(model.get(key))
        else:
            commands.append((b"ECHO", b"#%d" % i))
            expected.append(b"#%d" % i)
    return commands, expected


def stream_and_collect(
    conn: RawConnection, payload: bytes, reply_count: int, timeout: float = 60.0
) -> list[object]:
    """Send `payload` from a thread while reading `reply_count` replies, as a real client does."""
    sender_error: list[BaseException] = []

    def send() -> None:
        try:
            conn.send(payload)
        except BaseException as exc:  # reported below
            sender_error.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    reader = hiredis.Reader()
    replies: list[object] = []
    deadline = time.monotonic() + timeout
    conn.sock.settimeout(timeout)
    while len(replies) < reply_count:
        assert time.monotonic() < deadline, f"only {len(replies)} of {reply_count} replies"
        chunk = conn.sock.recv(1 << 20)
        assert chunk, f"connection closed after {len(replies)} of {reply_count} replies"
        reader.feed(chunk)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    sender.join(timeout)
    assert not sender_error, sender_error[0]
    assert reader.gets() is False, "more replies than requests"
    return replies


def first_mismatch(got: list[object], expected: list[object]) -> str:
    """Describe the first position where the replies differ."""
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"reply {i}: got {a!r}, expected {b!r}"
    return f"lengths differ: {len(got)} != {len(expected)}"


def test_raw_pipeline_100k_in_order(clone: ServerProcess) -> None:
    """100,000 mixed commands streamed on one socket get 100,000 replies, each in its place."""
    commands, expected = mixed_workload(1, PIPELINE_COMMANDS, b"raw100k", 5000)
    payload = b"".join(encode_command(*c) for c in commands)
    with clone.raw() as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        replies = stream_and_collect(conn, payload, len(commands))
    assert replies == expected, first_mismatch(replies, expected)


def test_redis_py_pipeline_100k_in_order(clone: ServerProcess) -> None:
    """A redis-py pipeline of 100,000 SET/GET (written whole, then read) gets every reply."""
    commands, expected = mixed_workload(2, PIPELINE_COMMANDS, b"py100k", 5000)
    r = clone.client(socket_timeout=60)
    r.flushall()
    pipe = r.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    # Command names as bytes bypass redis-py's reply callbacks: replies stay as parsed.
    replies = pipe.execute()
    assert replies == expected, first_mismatch(replies, expected)
    assert r.dbsize() == len({c[1] for c in commands if c[0] == b"SET"})


def test_concurrent_pipelining_clients(clone: ServerProcess) -> None:
    """20 clients pipelining at once over shared and private keys each get their own replies."""
    clients = 20
    errors: list[str] = []
    barrier = threading.Barrier(clients)

    def run(index: int) -> None:
        commands, expected = mixed_workload(100 + index, 5000, b"c%d" % index, 300)
        payload = b"".join(encode_command(*c) for c in commands)
        try:
            with clone.raw(timeout=60) as conn:
                barrier.wait(30)
                replies = stream_and_collect(conn, payload, len(commands))
            if replies != expected:
                errors.append(f"client {index}: {first_mismatch(replies, expected)}")
        except BaseException as exc:  # reported by the main thread
            errors.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a client did not finish"
    assert not errors, errors


def test_concurrent_redis_py_clients_shared_counter_keys(clone: ServerProcess) -> None:
    """Concurrent redis-py clients writing the same keys: each sees its own writes' replies."""
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            r = clone.client(socket_timeout=60)
            for round_ in range(10):
                pipe = r.pipeline(transaction=False)
                for i in range(200):
                    pipe.set(b"shared:%d" % (i % 50), b"%d:%d:%d" % (index, round_, i))
                    pipe.echo(b"%d:%d:%d" % (index, round_, i))
                replies = pipe.execute()
                want = [x for i in range(200) for x in (True, b"%d:%d:%d" % (index, round_, i))]
                if replies != want:
                    errors.append(f"client {index}: {first_mismatch(replies, want)}")
                    return
        except BaseException as exc:  # reported by the main thread
            errors.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a client did not finish"
    assert not errors, errors
    assert clone.client().dbsize() >= 50


def test_slow_reader_gets_everything(clone: ServerProcess) -> None:
    """A client that asks for 64 MB of replies and reads them slowly still gets all, in order."""
    value = b"0123456789abcdef" * 65536
    with clone.raw(timeout=60) as conn:
        assert conn.command("SET", "slow:big", value) == b"+OK\r\n"
        conn.send(b"".join(encode_command("GET", "slow:big") for _ in range(64)))
        conn.send(encode_command("ECHO", "last"))
        with clone.raw() as other:
            assert other.command("PING") == b"+PONG\r\n"
        reply = b"$%d\r\n%s\r\n" % (len(value), value)
        for _ in range(64):
            assert conn.read_reply() == reply
        assert conn.read_reply() == b"$4\r\nlast\r\n"


def test_reply_order_with_slow_and_fast_commands(clone: ServerProcess) -> None:
    """A large SET followed by small commands to other shards: replies keep request order."""
    big = b"x" * (8 * 1024 * 1024)
    payload = encode_command("SET", "order:big", big)
    payload += b"".join(encode_command("ECHO", b"%d" % i) for i in range(1000))
    payload += encode_command("GET", "order:big")
    with clone.raw(timeout=60) as conn:
        replies = stream_and_collect(conn, payload, 1002)
    assert replies[0] == b"OK"
    assert replies[1:1001] == [b"%d" % i for i in range(1000)]
    assert replies[1001] == big
