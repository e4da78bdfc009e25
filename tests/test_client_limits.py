"""Client limits as Redis 7.0 enforces them: maxclients, timeout, output and query buffer
limits, maxmemory-clients and CLIENT NO-EVICT, and CLIENT LIST's buffer figures.

Every server test runs at 1 shard, 4 shards, and 4 shards with two acceptors (where
maxclients and maxmemory-clients count both acceptors' clients); replies and error texts
are compared with redis-server's where Redis's behaviour is the reference.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import ServerPool, ServerProcess, encode_command, pid_alive, wait_until

from shardserver.config import ConfigError, parse_args
from shardserver.limits import EVICTION_FLOOR, ClientLimits, open_files_for

CONFIGS = {
    "shards1": (1, ()),
    "shards4": (4, ()),
    "shards4-acceptors2": (4, ("--acceptors", "2")),
}
BIG = 1 << 20  # a 1 MB value: its GET replies fill output buffers fast


@pytest.fixture(scope="module", params=list(CONFIGS))
def server(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    shards, args = CONFIGS[request.param]
    return module_servers.clone(shards, args)


@contextlib.contextmanager
def settings(server: ServerProcess, **values: str) -> Iterator[redis.Redis]:
    """CONFIG SET ``values`` (underscores for dashes) for the block, then the old values."""
    names = {name.replace("_", "-"): value for name, value in values.items()}
    with server.client() as control:
        before = {name: control.config_get(name)[name] for name in names}
        for name, value in names.items():
            control.config_set(name, value)
        try:
            yield control
        finally:
            with server.client() as fresh:  # the control connection may have timed out
                for name, value in before.items():
                    fresh.config_set(name, value)


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def connect_seen(control: redis.Redis, port: int, rcvbuf: int | None = None) -> socket.socket:
    """A connection the server has accepted: CLIENT LIST shows it (a test that waits for
    it to leave CLIENT LIST must not start before it is there)."""
    sock = connect(port, rcvbuf)
    assert wait_until(lambda: listed(control, sock) is not None, 5)
    return sock


def ping(sock: socket.socket) -> None:
    sock.sendall(b"PING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> bytes | None:
    """Everything until the server closes (a reset counts), or None if it keeps it open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return data


def addr_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def fields(line: str) -> dict[str, str | int]:
    """A CLIENT LIST line's fields, numbers as ints."""
    pairs = (item.split("=", 1) for item in line.split())
    return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in pairs}


def listed(control: redis.Redis, sock: socket.socket) -> dict | None:
    """The CLIENT LIST entry of the connection ``sock`` (None when the server dropped it)."""
    wanted = addr_of(sock)
    for entry in control.client_list():
        if entry["addr"] == wanted:
            return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in entry.items()}
    return None


def log_count(server: ServerProcess, text: str) -> int:
    return server.log_text().count(text)


def acceptor_pids(server: ServerProcess) -> list[int]:
    with server.client() as control:
        shards = control.info("shards")
    return [int(shards[f"acceptor{i}"]["pid"]) for i in range(int(shards["acceptors"]))]


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


# -- settings --------------------------------------------------------------------------------


CONFIG_COMMANDS = [
    ("CONFIG", "GET", "maxclients"),
    ("CONFIG", "SET", "maxclients", "0"),
    ("CONFIG", "SET", "maxclients", "abc"),
    ("CONFIG", "SET", "maxclients", "5000"),
    ("CONFIG", "GET", "maxclients"),
    ("CONFIG", "SET", "maxclients", "10000"),
    ("CONFIG", "GET", "timeout"),
    ("CONFIG", "SET", "timeout", "-1"),
    ("CONFIG", "SET", "timeout", "300"),
    ("CONFIG", "GET", "timeout"),
    ("CONFIG", "SET", "timeout", "0"),
    ("CONFIG", "GET", "client-query-buffer-limit"),
    ("CONFIG", "SET", "client-query-buffer-limit", "100"),
    ("CONFIG", "SET", "client-query-buffer-limit", "2mb"),
    ("CONFIG", "GET", "client-query-buffer-limit"),
    ("CONFIG", "SET", "client-query-buffer-limit", "1gb"),
    ("CONFIG", "GET", "maxmemory-clients"),
    ("CONFIG", "SET", "maxmemory-clients", "10%"),
    ("CONFIG", "GET", "maxmemory-clients"),
    ("CONFIG", "SET", "maxmemory-clients", "101%"),
    ("CONFIG", "SET", "maxmemory-clients", "-1"),
    ("CONFIG", "SET", "maxmemory-clients", "x%"),
    ("CONFIG", "SET", "maxmemory-clients", "1mb"),
    ("CONFIG", "GET", "maxmemory-clients"),
    ("CONFIG", "SET", "maxmemory-clients", "0"),
    ("CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 2mb 3"),
    ("CONFIG", "GET", "client-output-buffer-limit"),
    ("CONFIG", "SET", "client-output-buffer-limit", "replica 1gb 1kb 0 pubsub 1MB 1Kb 5"),
    ("CONFIG", "GET", "client-output-buffer-limit"),
    ("CONFIG", "SET", "client-output-buffer-limit", "normal 1 2"),
    (
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    ("CONFIG", "GET", "client-output-buffer-limit"),
    ("CLIENT", "NO-EVICT", "maybe"),
    ("CLIENT", "NO-EVICT", "on"),
    ("CLIENT", "NO-EVICT", "off"),
    ("CLIENT", "NO-EVICT"),
]


def test_config_replies_match_redis(redis_server: ServerProcess, server: ServerProcess) -> None:
    def replies(target: ServerProcess) -> list[bytes]:
        with target.raw() as conn:
            return [conn.command(*command) for command in CONFIG_COMMANDS]

    assert replies(server) == replies(redis_server)


def test_info_fields_are_redis_fields(redis_server: ServerProcess, server: ServerProcess) -> None:
    wanted = ["rejected_connections", "evicted_clients", "mem_clients_slaves", "mem_clients_normal"]
    for target in (redis_server, server):
        with target.client() as control:
            found = {**control.info("stats"), **control.info("memory")}
        assert all(isinstance(found[name], int) for name in wanted), target.name
    with server.client() as control:
        assert control.info("memory")["mem_clients_normal"] > 0 or wait_until(
            lambda: control.info("memory")["mem_clients_normal"] > 0, 5
        )


def test_limit_settings_parse_as_redis_writes_them() -> None:
    config, _ = parse_args(["--maxmemory-clients", "5%", "--client-query-buffer-limit", "64mb"])
    assert config["maxmemory-clients"] == -5
    assert config.get_all()["maxmemory-clients"] == "5%"
    assert config["client-query-buffer-limit"] == 64 << 20
    with pytest.raises(ConfigError):
        parse_args(["--maxmemory-clients", "-5"])


class _Server:
    """What ClientLimits reads of an acceptor, for the eviction limit alone."""

    def __init__(self, config) -> None:
        self.config = config
        self.clients: dict = {}


@pytest.mark.parametrize(
    ("maxmemory", "setting", "limit"),
    [
        ("0", "0", 0),
        ("0", "10%", 0),  # a percentage of no maxmemory: no eviction, as Redis
        ("100mb", "10%", 10 << 20),
        ("100mb", "2mb", 2 << 20),
        ("0", "1kb", EVICTION_FLOOR),  # Redis's floor of 128 KB
    ],
)
def test_eviction_limit(maxmemory: str, setting: str, limit: int) -> None:
    config, _ = parse_args(["--maxmemory", maxmemory, "--maxmemory-clients", setting])
    assert ClientLimits(_Server(config)).eviction_limit() == limit


# -- maxclients --------------------------------------------------------------------------------


def test_open_files_follow_maxclients() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 200:
        pytest.skip("the hard limit of open files is too low to raise one")
    resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
    try:
        assert open_files_for(150, 10) == 150
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 160
        assert open_files_for(50, 10) == 50  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 160
        if hard != resource.RLIM_INFINITY:
            assert open_files_for(hard + 100, 10) == hard - 10
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_maxclients_past_the_open_files_limit(
    redis_server: ServerProcess, server: ServerProcess
) -> None:
    """Both servers inherit this process's limit of open files (redis-server 7.0 computes
    maxclients + 32 in 32 bits: 2**32 - 1 would pass it)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 1_000_000:
        pytest.skip("the hard limit of open files is too high to pass")
    replies = []
    for target in (server, redis_server):
        with target.raw() as conn:
            replies.append(conn.command("CONFIG", "SET", "maxclients", "2000000"))
            assert conn.call("CONFIG", "GET", "maxclients") == [b"maxclients", b"10000"]
    assert replies[0] == replies[1]
    assert replies[0].startswith(
        b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating "
        b"system is not able to handle the specified number of clients, try with "
    )


def settled_clients(control: redis.Redis) -> int:
    """connected_clients once no connection an earlier test closed is still going away."""
    seen: list[int] = []

    def settled() -> bool:
        seen.append(control.info("clients")["connected_clients"])
        return len(seen) > 3 and len(set(seen[-4:])) == 1

    assert wait_until(settled, 10, interval=0.05)
    return seen[-1]


def refusals(server: ServerProcess, tries: int) -> list[bytes | None]:
    """With maxclients set to the clients connected now, what ``tries`` new connections
    read before the server closes them."""
    with server.client() as control:
        connected = settled_clients(control)
        control.config_set("maxclients", str(connected))
        try:
            replies = []
            for _ in range(tries):
                with contextlib.closing(connect(server.port)) as extra:
                    replies.append(read_to_end(extra))
        finally:
            control.config_set("maxclients", "10000")
    return replies


def test_maxclients_refuses_the_one_past_it(
    redis_server: ServerProcess, server: ServerProcess
) -> None:
    held = [connect(server.port) for _ in range(6)]
    try:
        for sock in held:
            ping(sock)
        with server.client() as control:
            before = control.info("stats")
            if server.acceptors() == 2:  # the limit counts both acceptors' clients
                shards = control.info("shards")
                assert all(int(shards[f"acceptor{i}"]["clients"]) > 0 for i in (0, 1))
        tries = 8  # with two acceptors the kernel spreads them over both
        assert refusals(server, tries) == [b"-ERR max number of clients reached\r\n"] * tries
        assert refusals(redis_server, 1) == [b"-ERR max number of clients reached\r\n"]
        with server.client() as control:
            after = control.info("stats")
            assert after["rejected_connections"] - before["rejected_connections"] == tries
            # refused connections are not counted as received, as in Redis (only this
            # test's control connections are)
            received = after["total_connections_received"] - before["total_connections_received"]
            assert received <= 3
            assert control.info("clients")["maxclients"] == 10000
            control.config_resetstat()  # as Redis, it zeroes the count (on every acceptor)
            assert control.info("stats")["rejected_connections"] == 0
        # a place freed is a place taken
        with server.client() as control:
            control.config_set("maxclients", str(settled_clients(control)))
            try:
                held.pop().close()
                assert wait_until(
                    lambda: (
                        control.info("clients")["connected_clients"]
                        == int(control.config_get("maxclients")["maxclients"]) - 1
                    ),
                    5,
                )
                again = connect(server.port)
                ping(again)
                again.close()
            finally:
                control.config_set("maxclients", "10000")
    finally:
        for sock in held:
            sock.close()


def test_a_dead_acceptors_clients_no_longer_count(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(1, ["--acceptors", "2"])
    held = [server.client_on(1) for _ in range(4)]
    with server.client_on(0) as control:
        pid = int(control.info("shards")["acceptor1"]["pid"])
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(pid), 5)
        for client in held:
            client.close()
        assert wait_until(lambda: control.info("clients")["connected_clients"] == 1, 5)
        control.config_set("maxclients", "2")  # this connection, and one more
        extra = connect_seen(control, server.port)
        ping(extra)
        extra.close()


# -- timeout -----------------------------------------------------------------------------------


def timeout_spares_blocked_subscribed_and_monitors(server: ServerProcess) -> None:
    """With timeout 1 an idle client is closed; a blocked one, a subscriber and a MONITOR
    idle as long stay."""
    key = "timeout:list"
    idle, blocked, subscriber, monitor = (connect(server.port) for _ in range(4))
    try:
        with settings(server, timeout="1"):
            ping(idle)
            started = time.monotonic()
            blocked.sendall(encode_command("BLPOP", key, "0"))
            subscriber.sendall(encode_command("SUBSCRIBE", "timeout:ch"))
            assert subscriber.recv(100).startswith(b"*3\r\n$9\r\nsubscribe")
            monitor.sendall(b"MONITOR\r\n")
            assert monitor.recv(100) == b"+OK\r\n"
            assert read_to_end(idle, timeout=10) == b""
            assert time.monotonic() - started > 1.0
            time.sleep(1.5)  # the others stay idle past the timeout, and stay connected
            with server.client() as control:
                control.rpush(key, "v")
                assert control.publish("timeout:ch", "m") == 1
        blocked.settimeout(5)
        assert blocked.recv(100) == b"*2\r\n$12\r\ntimeout:list\r\n$1\r\nv\r\n"
        subscriber.settimeout(5)
        assert subscriber.recv(100) == b"*3\r\n$7\r\nmessage\r\n$10\r\ntimeout:ch\r\n$1\r\nm\r\n"
        heard = b""
        monitor.settimeout(5)
        while b'"timeout:list" "v"' not in heard:
            heard += monitor.recv(1000)
    finally:
        for sock in (idle, blocked, subscriber, monitor):
            sock.close()


def test_timeout_closes_idle_clients_but_not_blocked_subscribed_or_monitors(
    server: ServerProcess,
) -> None:
    timeout_spares_blocked_subscribed_and_monitors(server)


def test_timeout_as_redis_server(redis_server: ServerProcess) -> None:
    timeout_spares_blocked_subscribed_and_monitors(redis_server)


def test_an_unblocked_client_is_not_timed_out_at_once(server: ServerProcess) -> None:
    """Redis counts the reply a blocked client gets as interaction: its idle time starts
    there, not at the BLPOP it sent."""
    key = "timeout:later"
    blocked = connect(server.port)
    try:
        with settings(server, timeout="2"):
            blocked.sendall(encode_command("BLPOP", key, "0"))
            time.sleep(2.5)
            with server.client() as control:
                control.rpush(key, "v")
            blocked.settimeout(5)
            assert blocked.recv(100).endswith(b"$1\r\nv\r\n")
            time.sleep(0.5)
            ping(blocked)
    finally:
        blocked.close()


# -- output buffers ----------------------------------------------------------------------------


def pipeline_gets(sock: socket.socket, key: str, stop: threading.Event) -> None:
    """Send GETs of ``key`` without reading a byte, until the server drops the connection."""
    batch = encode_command("GET", key) * 100
    sent = 0
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sent += sock.send(batch[sent:])  # whole commands only: no protocol error
        except TimeoutError:
            continue
        except OSError:
            return
        if sent == len(batch):
            sent = 0


def test_output_hard_limit_drops_a_pipeliner_that_never_reads(
    server: ServerProcess, redis_server: ServerProcess
) -> None:
    for target in (server, redis_server):
        with target.client() as control:
            control.set("obuf:big", b"x" * BIG)
    said = log_count(server, "scheduled to be closed ASAP for overcoming of output buffer limits")
    with settings(server, client_output_buffer_limit="normal 4mb 0 0") as control:
        pids = acceptor_pids(server)
        baseline = sum(rss_kb(pid) for pid in pids)
        peak = baseline
        greedy = [connect_seen(control, server.port, rcvbuf=64 * 1024) for _ in range(3)]
        stop = threading.Event()
        senders = [
            threading.Thread(target=pipeline_gets, args=(sock, "obuf:big", stop)) for sock in greedy
        ]
        for sender in senders:
            sender.start()
        try:

            def all_dropped() -> bool:
                nonlocal peak
                peak = max(peak, sum(rss_kb(pid) for pid in pids))
                assert control.get("obuf:big") == b"x" * BIG  # the others carry on
                return all(listed(control, sock) is None for sock in greedy)

            assert wait_until(all_dropped, 20, interval=0.05)
        finally:
            stop.set()
            for sender in senders:
                sender.join(10)
            for sock in greedy:
                sock.close()
        assert (peak - baseline) / 1024 < 150, f"acceptors grew by {(peak - baseline) // 1024} MB"
        assert wait_until(
            lambda: (
                log_count(
                    server, "scheduled to be closed ASAP for overcoming of output buffer limits"
                )
                >= said + 3
            ),
            5,
        )
    # redis-server drops such a client the same way
    with settings(redis_server, client_output_buffer_limit="normal 4mb 0 0") as control:
        greedy = [connect_seen(control, redis_server.port, rcvbuf=64 * 1024)]
        stop = threading.Event()
        sender = threading.Thread(target=pipeline_gets, args=(greedy[0], "obuf:big", stop))
        sender.start()
        try:
            assert wait_until(lambda: listed(control, greedy[0]) is None, 20, interval=0.05)
        finally:
            stop.set()
            sender.join(10)
            greedy[0].close()


def test_output_limit_counts_a_large_reply_as_it_arrives(server: ServerProcess) -> None:
    """20 pipelined GETs of a 5 MB value are one run, whose reply comes from its shard in
    pieces: past the hard limit the client is dropped while they come, and the acceptor
    never holds the 100 MB."""
    with server.client() as control:
        control.set("obuf:huge", b"h" * (5 << 20))
    with settings(server, client_output_buffer_limit="normal 8mb 0 0") as control:
        pids = acceptor_pids(server)
        baseline = sum(rss_kb(pid) for pid in pids)
        greedy = connect_seen(control, server.port, rcvbuf=64 * 1024)
        try:
            greedy.sendall(encode_command("GET", "obuf:huge") * 20)
            peak = baseline

            def dropped() -> bool:
                nonlocal peak
                peak = max(peak, sum(rss_kb(pid) for pid in pids))
                return listed(control, greedy) is None

            assert wait_until(dropped, 20, interval=0.02)
            assert (peak - baseline) / 1024 < 60, f"grew by {(peak - baseline) // 1024} MB"
            assert control.strlen("obuf:huge") == 5 << 20
        finally:
            greedy.close()


def soft_limit_drops_after_its_seconds(server: ServerProcess) -> None:
    """Past ``normal 0 2mb 2`` a client that does not read is dropped, after 2 s."""
    with server.client() as control:
        control.set("obuf:soft", b"y" * BIG)
    with settings(server, client_output_buffer_limit="normal 0 2mb 2") as control:
        slow = connect(server.port, rcvbuf=64 * 1024)
        try:
            slow.sendall(encode_command("GET", "obuf:soft") * 40)

            def over_soft() -> dict | None:
                entry = listed(control, slow)
                return entry if entry is not None and entry["omem"] >= 2 << 20 else None

            entry = wait_until(over_soft, 10)
            assert entry is not None
            seen_over = time.monotonic()
            assert entry["tot-mem"] >= entry["omem"] and entry["oll"] >= 0
            assert wait_until(lambda: listed(control, slow) is None, 10, interval=0.05)
            # past 2 s over the soft limit, not before (the first sight of it was later
            # than its start by up to one poll)
            assert time.monotonic() - seen_over > 1.0
        finally:
            slow.close()


def test_output_soft_limit_drops_after_its_seconds(server: ServerProcess) -> None:
    soft_limit_drops_after_its_seconds(server)


def test_output_soft_limit_as_redis_server(redis_server: ServerProcess) -> None:
    soft_limit_drops_after_its_seconds(redis_server)


def pubsub_limit_drops_a_slow_subscriber(server: ServerProcess) -> None:
    """Past ``pubsub 1mb 512kb 60`` a subscriber that does not read is dropped; the one
    that reads gets every message."""
    channel = "limits:pubsub"
    with settings(server, client_output_buffer_limit="pubsub 1mb 512kb 60") as control:
        slow = connect(server.port, rcvbuf=64 * 1024)
        fast = server.client(single_connection_client=True)
        pubsub = fast.pubsub()
        try:
            slow.sendall(encode_command("SUBSCRIBE", channel))
            pubsub.subscribe(channel)
            assert wait_until(lambda: control.pubsub_numsub(channel)[0][1] == 2, 5)
            payload = b"z" * (256 * 1024)
            counts = []
            for _ in range(100):
                counts.append(control.publish(channel, payload))
                message = pubsub.get_message(timeout=5)
                while message is not None and message["type"] != "message":
                    message = pubsub.get_message(timeout=5)
                assert message is not None and message["data"] == payload
            assert counts[0] == 2 and counts[-1] == 1
            assert listed(control, slow) is None
        finally:
            pubsub.close()
            fast.close()
            slow.close()


def test_pubsub_limit_drops_a_slow_subscriber(server: ServerProcess) -> None:
    pubsub_limit_drops_a_slow_subscriber(server)


def test_pubsub_limit_as_redis_server(redis_server: ServerProcess) -> None:
    pubsub_limit_drops_a_slow_subscriber(redis_server)


# -- query buffers -----------------------------------------------------------------------------


def big_partial_set(key: str, announced: int, sent: int) -> bytes:
    """A SET whose value announces ``announced`` bytes, of which ``sent`` arrive."""
    return (
        encode_command("SET", key, "")[: -len("$0\r\n\r\n")]
        + b"$%d\r\n" % announced
        + (b"q" * sent)
    )


def test_query_buffer_limit_closes_the_client(
    server: ServerProcess, redis_server: ServerProcess
) -> None:
    said = log_count(server, "Closing client that reached max query buffer length")
    for target in (server, redis_server):
        with settings(target, client_query_buffer_limit="1mb") as control:
            greedy = connect(target.port)
            try:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    # (it may be closed while this is still sending)
                    greedy.sendall(big_partial_set("qbuf:k", 3_000_000, 1_500_000))
                assert read_to_end(greedy) == b"", target.name
                assert control.exists("qbuf:k") == 0
                control.ping()
            finally:
                greedy.close()
    assert log_count(server, "Closing client that reached max query buffer length") == said + 1


def test_bulk_longer_than_proto_max_bulk_len(
    server: ServerProcess, redis_server: ServerProcess
) -> None:
    replies = []
    for target in (server, redis_server):
        with settings(target, proto_max_bulk_len="1mb"):
            greedy = connect(target.port)
            try:
                greedy.sendall(big_partial_set("qbuf:k", 2 << 20, 10))
                replies.append(read_to_end(greedy))
            finally:
                greedy.close()
    assert replies[0] == replies[1] == b"-ERR Protocol error: invalid bulk length\r\n"


# -- maxmemory-clients, CLIENT NO-EVICT -------------------------------------------------------


def evicts_the_largest_but_not_no_evict(target: ServerProcess) -> None:
    """With maxmemory-clients 4mb: a no-evict client holding 1.5 MB of a command stays, and
    so do the small ones; one that then holds 3 MB is evicted (the total passed 4 MB)."""
    with target.client() as control:
        evicted_before = control.info("stats")["evicted_clients"]
    kept = connect(target.port)
    big = connect(target.port)
    small = connect(target.port)
    try:
        kept.sendall(encode_command("CLIENT", "NO-EVICT", "on"))
        assert kept.recv(100) == b"+OK\r\n"
        ping(small)
        with settings(target, maxmemory_clients="4mb") as control:
            kept.sendall(big_partial_set("evict:a", 3 << 20, 1_500_000))
            assert wait_until(lambda: (listed(control, kept) or {}).get("qbuf", 0) > 1_400_000, 5)
            assert "e" in listed(control, kept)["flags"]
            assert listed(control, big) is not None
            time.sleep(1.2)  # the count has seen it: nothing to evict yet (1.5 MB < 4 MB)
            assert listed(control, small) is not None
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                big.sendall(big_partial_set("evict:b", 6 << 20, 3_000_000))
            assert wait_until(lambda: listed(control, big) is None, 10)
            assert read_to_end(big) is not None
            assert listed(control, kept) is not None and listed(control, small) is not None
            assert control.info("stats")["evicted_clients"] == evicted_before + 1
        ping(small)
    finally:
        for sock in (kept, big, small):
            sock.close()


def test_maxmemory_clients_evicts_the_largest_but_not_no_evict(
    server: ServerProcess, redis_server: ServerProcess
) -> None:
    said = log_count(server, "Evicting client: ")
    evicts_the_largest_but_not_no_evict(server)
    assert log_count(server, "Evicting client: ") == said + 1
    evicts_the_largest_but_not_no_evict(redis_server)


# -- CLIENT LIST -------------------------------------------------------------------------------


def test_client_list_buffer_fields(server: ServerProcess, redis_server: ServerProcess) -> None:
    # argv-mem of the caller's own command, as Redis counts it
    for target in (server, redis_server):
        with target.raw() as conn:
            own = fields(conn.call("CLIENT", "INFO").decode())
            assert own["argv-mem"] == 10, target.name  # "client" + "info"
    partial = connect(server.port)
    queued = connect(server.port)
    try:
        data = big_partial_set("list:k", 1 << 20, 100_000)
        partial.sendall(data)
        queued.sendall(encode_command("MULTI") + encode_command("SET", "list:k", "v" * 1000))
        assert queued.recv(100) == b"+OK\r\n+QUEUED\r\n"
        with server.client() as control:
            assert wait_until(lambda: (listed(control, partial) or {}).get("qbuf") == len(data), 5)
            entry = listed(control, partial)
            assert entry["tot-mem"] >= entry["qbuf"] and entry["omem"] == 0
            assert wait_until(
                lambda: control.info("clients")["client_recent_max_input_buffer"] >= len(data), 5
            )
            multi = listed(control, queued)
            assert multi["multi"] == 1 and multi["multi-mem"] >= 3 + 6 + 1000
            assert multi["qbuf"] == 0
    finally:
        partial.close()
        queued.close()
