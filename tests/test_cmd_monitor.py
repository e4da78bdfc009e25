"""MONITOR against redis-server: the lines another client's commands make, with the time and
the client's port masked, at 1 and 4 shards; a monitor on one acceptor hearing a client
of the other; with two acceptors, one shard's lines in the order that shard ran them; and
the shard side of that (``@monitored``) as a plain object.
"""

from __future__ import annotations

import re
import threading
import time

from conftest import RawConnection, ServerProcess, encode_command

from shardserver import events
from shardserver.shard import Shard

SEQUENCE = [
    ["SET", b'k\r\n"\\\x01\xff', "v v"],
    ["SELECT", "3"],
    ["GET", "x"],
    ["MULTI"],
    ["INCR", "n"],
    ["SELECT", "4"],
    ["MSET", "a", "1", "b", "2"],
    ["EXEC"],
    ["CONFIG", "GET", "port"],
    ["AUTH", "x"],
    ["PING"],
    ["NOPE"],
    ["GET"],
    ["HELLO", "2"],
    ["BLPOP", "nothing", "0.01"],
    ["MSET", "x", "1", "y", "2", "z", "3", "w", "4"],
    ["RENAME", "x", "renamed"],
    ["BLPOP", "nothing", "other", "0.01"],
    ["WATCH", "y"],
    ["MULTI"],
    ["GET", "y"],
    ["RENAME", "renamed", "x"],
    ["EXEC"],
    ["CLIENT", "TRACKING", "ON"],
    ["GET", "y"],
    ["MGET", "y", "z", "w"],
    ["SET", "y", "5"],
    ["CLIENT", "TRACKING", "OFF"],
    ["MONITOR"],
]
_TIME_AND_PORT = re.compile(rb"^\+\d+\.\d{6} \[(\d+) 127\.0\.0\.1:\d+\]")


def _masked(line: bytes) -> bytes:
    return _TIME_AND_PORT.sub(rb"+T [\1 ADDR]", line)


def monitor_lines(server: ServerProcess) -> list[bytes]:
    with RawConnection(server.port) as monitor, RawConnection(server.port) as client:
        assert monitor.command("MONITOR") == b"+OK\r\n"
        for command in SEQUENCE:
            client.command(*command)
        client.command("ECHO", "end")
        lines = []
        while True:
            line = monitor.read_reply()
            if b'"ECHO" "end"' in line:
                break
            lines.append(_masked(line))
        assert monitor.command("GET", "k") == b"-ERR Replica can't interact with the keyspace\r\n"
        assert monitor.command("RESET") == b"+RESET\r\n"  # no longer a monitor: no line
    return lines


def test_lines_match_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    expected = monitor_lines(redis_server)
    assert len(expected) > 8
    assert monitor_lines(clone) == expected


def test_a_monitor_hears_the_other_acceptor(module_servers) -> None:
    server = module_servers.clone(2, ["--acceptors", "2"])
    monitor = server.client_on(0)
    client = server.client_on(1)
    with monitor.monitor() as feed:
        client.set("seen", "yes")
        client.echo("end")
        commands = []
        while not commands or commands[-1] != "ECHO end":
            commands.append(feed.next_command()["command"])
    assert "SET seen yes" in commands
    client.close()


_INCR_LINE = re.compile(rb'^\+\d+\.\d{6} \[0 ([0-9.]+:\d+)\] "INCR" "(\{order\}[nm])"\r\n$')
#: Two counters on one shard (one hash tag).
_COUNTERS = (b"{order}n", b"{order}m")
#: Clients per acceptor, rounds of pipelined INCRs per client, INCRs of each counter a round.
_CLIENTS, _ROUNDS, _PIPELINE = 2, 30, 10


def _raw_on(server: ServerProcess, acceptor: int) -> RawConnection:
    """A raw connection served by acceptor ``acceptor`` (reconnect until one lands there)."""
    for _ in range(64):
        raw = server.raw()
        info = raw.request(encode_command("INFO", "shards"))
        if b"connection_acceptor:%d\r\n" % acceptor in info:
            return raw
        raw.close()
    raise AssertionError(f"no connection landed on acceptor {acceptor}")


def _addr(client: RawConnection) -> str:
    info = client.request(encode_command("CLIENT", "INFO"))
    return re.search(rb" addr=(\S+) ", info).group(1).decode()


def _increments(client: RawConnection, got: dict[bytes, list[int]]) -> None:
    """Pipelined rounds of INCRs of both counters, alternating; the values got, per counter."""
    batch = b"".join(encode_command("INCR", counter) for counter in _COUNTERS) * _PIPELINE
    for _ in range(_ROUNDS):
        client.send(batch)
        for _ in range(_PIPELINE):
            for counter in _COUNTERS:
                got[counter].append(int(client.read_reply()[1:-2]))


def _incr_lines(monitor: RawConnection, total: int) -> dict[bytes, list[str]]:
    """Per counter, the addresses of the INCR lines the monitor sees, until it has them all."""
    seen: dict[bytes, list[str]] = {counter: [] for counter in _COUNTERS}
    deadline = time.monotonic() + 30
    while sum(map(len, seen.values())) < total:
        line = monitor.read_reply(timeout=max(0.1, deadline - time.monotonic()))
        matched = _INCR_LINE.match(line)
        if matched is not None:
            seen[matched.group(2)].append(matched.group(1).decode())
    return seen


def test_a_shards_lines_follow_its_execution_order_across_acceptors(module_servers) -> None:
    """Clients on both acceptors INCR two counters of one shard at once: for each counter, the
    i-th INCR line a monitor sees must be the client's that got i (the order the shard ran
    them), on either acceptor."""
    server = module_servers.clone(2, ["--acceptors", "2"])
    clients = [_raw_on(server, acceptor) for acceptor in (0, 1) for _ in range(_CLIENTS)]
    monitors = [_raw_on(server, acceptor) for acceptor in (0, 1)]
    try:
        addrs = [_addr(client) for client in clients]
        clients[0].request(encode_command("DEL", *_COUNTERS))
        for monitor in monitors:
            assert monitor.request(encode_command("MONITOR")) == b"+OK\r\n"
        got: list[dict[bytes, list[int]]] = [{c: [] for c in _COUNTERS} for _ in clients]
        threads = [
            threading.Thread(target=_increments, args=(client, mine))
            for client, mine in zip(clients, got, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        each = len(clients) * _ROUNDS * _PIPELINE
        expected = {}
        for counter in _COUNTERS:
            owner = {
                value: addr
                for addr, mine in zip(addrs, got, strict=True)
                for value in mine[counter]
            }
            assert sorted(owner) == list(range(1, each + 1))
            expected[counter] = [owner[value] for value in range(1, each + 1)]
        for monitor in monitors:
            seen = _incr_lines(monitor, each * len(_COUNTERS))
            for counter in _COUNTERS:
                wrong = [
                    i
                    for i, pair in enumerate(zip(seen[counter], expected[counter], strict=True), 1)
                    if pair[0] != pair[1]
                ]
                assert not wrong, (
                    f"{counter!r}: INCR line {wrong[0]} is not of the client that got {wrong[0]}"
                )
    finally:
        for each_connection in clients + monitors:
            each_connection.close()


def test_a_shard_writes_the_lines_it_carries_as_it_runs_them() -> None:
    """``@monitored``: each command's tails stamped and sent to every acceptor's stream, in
    run order, one event per stream for a batch; the command's own reply, in a run of one
    (called as a part) and in a run of several (as a command)."""
    shard = Shard(0, {"acceptors": 2})
    one = [b"@monitored", 0, [b' [0 a:1] "INCR" "k"\r\n'], [b"incr", b"k"]]
    two = [b"@monitored", 0, [b' [0 b:2] "INCR" "k"\r\n'], [b"incr", b"k"]]
    three = [b"@monitored", 0, [b' [0 b:2] "GET" "k"\r\n'], [b"get", b"k"]]
    assert shard.execute_batch([[0, one], [0, two, three]]) == [b":1\r\n", b":2\r\n$1\r\n2\r\n"]
    assert [stream for stream, _event in shard.events] == [0, 1]
    kind, lines = shard.events[0][1]
    assert kind == events.MONITORED
    assert [re.sub(rb"^\+\d+\.\d{6} ", b"", line) for line in lines] == [
        b'[0 a:1] "INCR" "k"\r\n',
        b'[0 b:2] "INCR" "k"\r\n',
        b'[0 b:2] "GET" "k"\r\n',
    ]
    assert shard.calls[b"incr"] == 2 and shard.commands_processed == 3
