"""MONITOR against redis-server: the lines another client's commands make, with the time and
the client's port masked, at 1 and 4 shards; and a monitor on one acceptor hearing a client
of the other.
"""

from __future__ import annotations

import re

from conftest import RawConnection, ServerProcess

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
