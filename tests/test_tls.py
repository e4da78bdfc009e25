"""TLS, protected mode and the protected actions, against redis-server 7.0 where it can answer.

A throwaway CA, a server certificate (localhost, 127.0.0.1), a client certificate and a second
CA with a client certificate of its own are made with the ``openssl`` binary when the module
starts. Servers listen on a TLS port beside their plain one (the plain one drives them),
or on the TLS port alone (``--port 0``). Clients: redis-py ``ssl=True``, ``redis-cli --tls``,
``redis-benchmark --tls`` and raw ``ssl`` sockets. Protected mode needs a client that is not
local: Linux routes all of 127/8 to the loopback interface, so a socket bound to 127.0.0.2
reaches a server on 127.0.0.1 (or 0.0.0.0) from an address Redis calls remote.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import (
    HOST,
    ServerPool,
    ServerProcess,
    encode_command,
    free_port,
    reply_end,
    require_redis_server,
    wait_until,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from shardserver.config import parse_args
from shardserver.protection import DENIED, allowed, config_set_refusal, denies_connection, is_local
from shardserver.tls import TlsError, parse_protocols, server_context

REMOTE = "127.0.0.2"
DEBUG_REFUSED = (
    b'-ERR DEBUG command not allowed. If the enable-debug-command option is set to "local", '
    b"you can run it from a local connection, otherwise you need to set this option in the "
    b"configuration file, and then restart the server.\r\n"
)


# -- certificates -------------------------------------------------------------------------------


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _signed(directory: Path, name: str, ca: str, subject: str, extensions: str = "") -> None:
    """A key and a certificate ``name`` signed by the CA ``ca``."""
    _openssl(
        directory,
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key"),
        *("-out", f"{name}.csr", "-subj", subject),
    )
    extra = []
    if extensions:
        (directory / f"{name}.ext").write_text(extensions)
        extra = ["-extfile", f"{name}.ext"]
    _openssl(
        directory,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA ``ca`` with ``server`` and ``client``; CA ``other`` with ``stranger`` and
    ``server2`` (a server certificate only ``other`` vouches for)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl binary is not installed")
    directory = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other"):
        _openssl(
            directory,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key"),
            *("-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN={ca} test CA"),
        )
    names = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    _signed(directory, "server", "ca", "/CN=localhost", names)
    _signed(directory, "server2", "other", "/CN=localhost", names)
    _signed(directory, "client", "ca", "/CN=client")
    _signed(directory, "stranger", "other", "/CN=stranger")
    return directory


def tls_args(certs: Path, tls_port: int, *extra: str) -> list[str]:
    """A server's flags for a TLS port with ``server``'s certificate and ``ca`` as CA."""
    return [
        *("--tls-port", str(tls_port)),
        *("--tls-cert-file", str(certs / "server.crt")),
        *("--tls-key-file", str(certs / "server.key")),
        *("--tls-ca-cert-file", str(certs / "ca.crt")),
        *extra,
    ]


def tls_client(
    certs: Path, port: int, cert: str | None = "client", ca: str = "ca", **kwargs: object
) -> redis.Redis:
    """redis-py over TLS, with client certificate ``cert`` (None: without one)."""
    return redis.Redis(
        host=HOST,
        port=port,
        ssl=True,
        ssl_ca_certs=str(certs / f"{ca}.crt"),
        ssl_certfile=str(certs / f"{cert}.crt") if cert else None,
        ssl_keyfile=str(certs / f"{cert}.key") if cert else None,
        # no retries: a refused handshake is the answer, at once
        **{"socket_timeout": 10, "retry": Retry(NoBackoff(), 0), **kwargs},
    )


def tls_socket(
    certs: Path, port: int, source: str = HOST, cert: str | None = "client"
) -> ssl.SSLSocket:
    """A raw TLS connection from ``source``."""
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if cert:
        context.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
    plain = socket.create_connection((HOST, port), timeout=10, source_address=(source, 0))
    return context.wrap_socket(plain, server_hostname="localhost")


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def cli(certs: Path, port: int, *args: str, cert: str | None = "client") -> str:
    """redis-cli over TLS; its output, errors included."""
    tool("redis-cli")
    flags = ["--tls", "--cacert", str(certs / "ca.crt")]
    if cert:
        flags += ["--cert", str(certs / f"{cert}.crt"), "--key", str(certs / f"{cert}.key")]
    done = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), *flags, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout + done.stderr


def tool(name: str) -> None:
    """Skip without one of redis-tools' binaries (under CI, which installs them: fail)."""
    if shutil.which(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI installs it")
        pytest.skip(f"{name} is not installed")


def answers_ping(certs: Path, port: int) -> bool:
    try:
        with tls_client(certs, port, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def tls_server(
    request: pytest.FixtureRequest, module_servers: ServerPool, certs: Path
) -> tuple[ServerProcess, int]:
    """A redis-clone on a plain port and a TLS port, shared by the module: (server, port)."""
    port = free_port()
    return module_servers.clone(request.param, tls_args(certs, port)), port


@pytest.fixture
def restore(tls_server: tuple[ServerProcess, int], certs: Path) -> Iterator[redis.Redis]:
    """A plain client of the shared server; its TLS settings are the fixture's again after."""
    server, port = tls_server
    client = server.client()
    settings = client.config_get("tls-*")
    yield client
    client.execute_command("CONFIG", "SET", *[each for pair in settings.items() for each in pair])
    client.close()
    assert wait_until(lambda: answers_ping(certs, port), 10)


# -- clients over TLS ---------------------------------------------------------------------------


def test_redis_py_over_tls(tls_server: tuple[ServerProcess, int], certs: Path) -> None:
    """Commands, a 5 MB value and 20,000 pipelined commands over TLS; the keys are the
    plain port's too."""
    server, port = tls_server
    with tls_client(certs, port) as client, server.client() as plain:
        assert client.set("tls:k", "v") and plain.get("tls:k") == b"v"
        big = bytes(range(256)) * (5 * 4096)
        client.set("tls:big", big)
        assert client.get("tls:big") == big
        pipe = client.pipeline(transaction=False)
        for i in range(10_000):
            pipe.set(f"tls:{i}", i)
            pipe.get(f"tls:{i}")
        replies = pipe.execute()
        assert replies[1::2] == [str(i).encode() for i in range(10_000)]
        assert plain.delete(*[f"tls:{i}" for i in range(10_000)], "tls:big", "tls:k") == 10_002


def test_redis_cli_over_tls(tls_server: tuple[ServerProcess, int], certs: Path) -> None:
    _server, port = tls_server
    assert cli(certs, port, "SET", "cli:k", "hello") == "OK\n"
    assert cli(certs, port, "GET", "cli:k") == "hello\n"
    assert cli(certs, port, "DEL", "cli:k") == "1\n"


def test_a_slow_reader_over_tls_gets_every_reply_in_order(
    tls_server: tuple[ServerProcess, int], certs: Path
) -> None:
    """3,000 pipelined GETs of a 16 kB value (48 MB of replies) sent without reading: the
    server stops reading (pause_reading) while the replies wait, and every reply arrives,
    in order."""
    server, port = tls_server
    value = b"x" * 16384
    with server.client() as plain:
        plain.set("slow:k", value)
    count = 3000
    sock = tls_socket(certs, port)
    request = encode_command("GET", "slow:k") * count
    sender = threading.Thread(target=sock.sendall, args=(request,))
    sender.start()
    buffer = bytearray()
    seen = 0
    expected = b"$16384\r\n" + value + b"\r\n"
    while seen < count:
        chunk = sock.recv(1 << 14)
        assert chunk, f"closed after {seen} replies"
        buffer += chunk
        while (end := reply_end(buffer)) is not None:
            assert bytes(buffer[:end]) == expected
            del buffer[:end]
            seen += 1
    sender.join(10)
    sock.close()


def test_redis_benchmark_over_tls(tls_server: tuple[ServerProcess, int], certs: Path) -> None:
    _server, port = tls_server
    tool("redis-benchmark")
    done = subprocess.run(
        [
            *("redis-benchmark", "-h", HOST, "-p", str(port), "--tls"),
            *("--cacert", str(certs / "ca.crt")),
            *("--cert", str(certs / "client.crt"), "--key", str(certs / "client.key")),
            *("-t", "set,get", "-n", "2000", "-c", "10", "-P", "8", "-q"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "SET:" in done.stdout and "GET:" in done.stdout, done.stdout + done.stderr


# -- who may connect ----------------------------------------------------------------------------


def test_a_client_without_a_certificate_is_refused(
    tls_server: tuple[ServerProcess, int], certs: Path
) -> None:
    """tls-auth-clients yes (the default): a certificate is required."""
    _server, port = tls_server
    with pytest.raises(redis.ConnectionError), tls_client(certs, port, cert=None) as client:
        client.ping()
    assert "PONG" not in cli(certs, port, "PING", cert=None)


def test_a_server_the_client_does_not_trust_is_refused(
    tls_server: tuple[ServerProcess, int], certs: Path
) -> None:
    _server, port = tls_server
    refused = pytest.raises(redis.ConnectionError, match="certificate verify failed")
    with refused, tls_client(certs, port, ca="other") as client:
        client.ping()


def test_tls_auth_clients_no_and_optional(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis
) -> None:
    """no: anyone; optional: without a certificate, or with one the CA signed, not with one
    another CA signed; yes again: none without."""
    _server, port = tls_server
    restore.config_set("tls-auth-clients", "no")
    with tls_client(certs, port, cert=None) as client:
        assert client.ping()
    restore.config_set("tls-auth-clients", "optional")
    with tls_client(certs, port, cert=None) as client:
        assert client.ping()
    with tls_client(certs, port) as client:
        assert client.ping()
    with pytest.raises(redis.ConnectionError), tls_client(certs, port, "stranger") as client:
        client.ping()
    restore.config_set("tls-auth-clients", "yes")
    with pytest.raises(redis.ConnectionError), tls_client(certs, port, cert=None) as client:
        client.ping()


def test_config_set_serves_new_connections_with_a_new_certificate(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis
) -> None:
    """A certificate and its key in one CONFIG SET: new connections get the new one (only
    the other CA trusts it), a connection made before goes on with the old context."""
    _server, port = tls_server
    before = tls_client(certs, port, single_connection_client=True)
    assert before.ping()
    assert restore.execute_command(
        "CONFIG",
        "SET",
        *("tls-cert-file", str(certs / "server2.crt")),
        *("tls-key-file", str(certs / "server2.key")),
    )

    def trusted_by_other() -> bool:
        try:
            with tls_client(certs, port, ca="other", socket_timeout=1) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    assert wait_until(trusted_by_other, 10)
    with pytest.raises(redis.ConnectionError), tls_client(certs, port) as client:
        client.ping()
    assert before.ping()
    before.close()


def test_config_set_tls_port_moves_the_listener(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis
) -> None:
    _server, port = tls_server
    moved = free_port()
    assert restore.config_set("tls-port", moved)
    assert wait_until(lambda: answers_ping(certs, moved), 10)
    assert wait_until(lambda: not answers_ping(certs, port), 10)
    assert restore.config_get("tls-port") == {"tls-port": str(moved)}


def test_a_bad_tls_setting_changes_nothing(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis
) -> None:
    _server, port = tls_server
    before = restore.config_get("tls-*")
    for args in [
        ("tls-cert-file", "/nonexistent.crt"),
        ("tls-protocols", "TLSv1.9"),
        ("tls-ciphers", "NOPE"),
        ("tls-ciphersuites", "NOPE"),
        ("tls-key-file", str(certs / "server2.key")),  # not the certificate's key
    ]:
        with pytest.raises(redis.ResponseError) as refused:
            restore.config_set(*args)
        assert str(refused.value) == (
            f"CONFIG SET failed (possibly related to argument '{args[0]}') - "
            "Unable to update TLS configuration. Check server logs."
        )
    with pytest.raises(redis.ResponseError, match="argument 'tls-cert-file'"):
        restore.execute_command(
            "CONFIG", "SET", "tls-cert-file", "/nonexistent.crt", "tls-protocols", "TLSv1.3"
        )
    assert restore.config_get("tls-*") == before
    assert answers_ping(certs, port)


def test_tls_protocols_and_ciphersuites_take_effect(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis
) -> None:
    _server, port = tls_server
    restore.config_set("tls-protocols", "TLSv1.2")
    restore.config_set("tls-ciphers", "ECDHE-RSA-AES128-GCM-SHA256")

    def negotiated() -> tuple[str | None, str | None]:
        with tls_socket(certs, port) as sock:
            sock.sendall(encode_command("PING"))
            assert sock.recv(100) == b"+PONG\r\n"
            cipher = sock.cipher()
            return sock.version(), cipher[0] if cipher else None

    assert wait_until(lambda: negotiated() == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), 10)
    restore.execute_command(
        "CONFIG",
        "SET",
        *("tls-protocols", "TLSv1.3", "tls-ciphers", ""),
        *("tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
    )
    assert wait_until(lambda: negotiated() == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), 10)


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_caching_lets_a_client_resume(
    tls_server: tuple[ServerProcess, int], certs: Path, restore: redis.Redis, version: str
) -> None:
    """tls-session-caching yes (the default): a client offering its last session resumes
    it; no: a full handshake."""
    _server, port = tls_server
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
    context.maximum_version = ssl.TLSVersion[version]

    def resumed() -> bool:
        session = None
        for _ in range(2):
            plain = socket.create_connection((HOST, port), timeout=10)
            with context.wrap_socket(plain, server_hostname="localhost", session=session) as sock:
                sock.sendall(encode_command("PING"))
                assert sock.recv(100) == b"+PONG\r\n"  # TLSv1.3's ticket came before it
                session, reused = sock.session, sock.session_reused
        return reused

    assert resumed()
    restore.config_set("tls-session-caching", "no")
    assert wait_until(lambda: not resumed(), 10)


def test_a_session_resumes_on_whichever_acceptor_serves_it(
    clone_factory: ServerPool, certs: Path
) -> None:
    """With two acceptors the kernel spreads connections over both: every one seals tickets
    with the same keys, so each of many reconnections resumes (TLS 1.2 and 1.3)."""
    port = free_port()
    clone_factory.start_clone(1, ["--acceptors", "2", *tls_args(certs, port)])
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
        context.maximum_version = version
        session, reused = None, []
        for _ in range(12):
            plain = socket.create_connection((HOST, port), timeout=10)
            with context.wrap_socket(plain, server_hostname="localhost", session=session) as sock:
                sock.sendall(encode_command("PING"))
                assert sock.recv(100) == b"+PONG\r\n"
                session = sock.session
                reused.append(sock.session_reused)
        assert reused == [False] + [True] * 11, version


def test_tls_port_alone(clone_factory: ServerPool, certs: Path) -> None:
    """--port 0 beside a TLS port: no plain port (as Redis); INFO's tcp_port is the TLS one."""
    port = free_port()
    server = clone_factory.start_clone(2, ["--port", "0", *tls_args(certs, port)], wait=False)
    assert wait_until(lambda: answers_ping(certs, port), 30), server.log_text()
    with pytest.raises(OSError):
        socket.create_connection((HOST, server.port), timeout=2).close()
    with tls_client(certs, port) as client:
        assert client.config_get("port") == {"port": "0"}
        assert client.info("server")["tcp_port"] == port
        assert client.set("alone", "1") and client.get("alone") == b"1"


def test_both_ports_with_two_acceptors(clone_factory: ServerPool, certs: Path) -> None:
    """Every acceptor serves the TLS port, and a CONFIG SET through one reaches the other."""
    port = free_port()
    server = clone_factory.start_clone(2, ["--acceptors", "2", *tls_args(certs, port)])
    seen = set()
    for _ in range(64):
        with tls_client(certs, port) as client:
            seen.add(client.info("shards")["connection_acceptor"])
        if len(seen) == 2:
            break
    assert seen == {0, 1}
    with server.client() as plain:
        plain.config_set("tls-auth-clients", "no")
    for _ in range(16):
        with tls_client(certs, port, cert=None) as client:
            assert client.ping()


def test_a_bad_tls_configuration_stops_the_start(clone_factory: ServerPool, certs: Path) -> None:
    """As Redis: a TLS port without a CA (tls-auth-clients yes) does not start."""
    args = ["--tls-port", str(free_port()), *("--tls-cert-file", str(certs / "server.crt"))]
    server = clone_factory.start_clone(
        1, [*args, "--tls-key-file", str(certs / "server.key")], False
    )
    assert server.proc is not None and server.proc.wait(30) == 1
    assert "Either tls-ca-cert-file or tls-ca-cert-dir must be specified" in server.log_text()


# -- settings as redis-server 7.0 shows them ----------------------------------------------------


def _settings(server: ServerProcess, pattern: str) -> dict:
    with server.client() as client:
        return client.config_get(pattern)


def test_defaults_as_redis(redis_server: ServerProcess, clone_factory: ServerPool) -> None:
    ours = clone_factory.start_clone(1)
    for pattern in ("tls-*", "enable-*", "protected-mode"):
        assert _settings(ours, pattern) == _settings(redis_server, pattern)


CONFIG_SET_CASES = [
    ("tls-auth-clients", "maybe"),
    ("tls-session-cache-size", "-1"),
    ("tls-session-cache-size", "abc"),
    ("tls-prefer-server-ciphers", "maybe"),
    ("enable-debug-command", "yes"),
    ("enable-protected-configs", "yes"),
    ("enable-module-command", "yes"),
    ("dir", "/tmp"),
    ("dbfilename", "x.rdb"),
    ("protected-mode", "maybe"),
    # TLS is off: a setting is only kept, then the port that needs it cannot listen
    ("tls-cert-file", "/nonexistent.crt"),
    ("tls-port", str(free_port())),
    ("tls-cert-file", ""),
]


def test_config_set_answers_as_redis(clone_factory: ServerPool) -> None:
    require_redis_server()
    oracle = clone_factory.start_redis()
    ours = clone_factory.start_clone(2)

    def answers(server: ServerProcess) -> list[bytes]:
        with server.raw() as conn:
            replies = [conn.command("CONFIG", "SET", *case) for case in CONFIG_SET_CASES]
            replies.append(conn.command("CONFIG", "SET", "hz", "11", "dir", "/tmp"))
            replies.append(conn.command("CONFIG", "GET", "hz"))
            return replies

    assert answers(ours) == answers(oracle)


# -- protected mode -----------------------------------------------------------------------------


def _from_remote(port: int, request: bytes = b"") -> bytes:
    with socket.create_connection((HOST, port), timeout=10, source_address=(REMOTE, 0)) as sock:
        if request:
            sock.sendall(request)
        return read_all(sock)


@pytest.fixture(scope="module")
def open_servers(module_servers: ServerPool) -> list[ServerProcess]:
    """redis-server and redis-clone listening on every address, protected mode on."""
    require_redis_server()
    return [
        module_servers.start_redis(["--bind", "0.0.0.0"]),
        module_servers.start_clone(2, ["--bind", "0.0.0.0"]),
    ]


def test_protected_mode_denies_a_client_that_is_not_local(
    open_servers: list[ServerProcess],
) -> None:
    denied = [_from_remote(server.port) for server in open_servers]
    assert denied == [DENIED, DENIED]
    for server in open_servers:
        with server.client() as client:  # from 127.0.0.1: served
            assert client.info("stats")["rejected_connections"] >= 1


def test_protected_mode_denies_even_on_a_loopback_bind(
    redis_server: ServerProcess, clone_factory: ServerPool
) -> None:
    """Redis 7.0 asks where the client is, not where the server listens."""
    ours = clone_factory.start_clone(1)  # bound to 127.0.0.1
    assert _from_remote(ours.port) == _from_remote(redis_server.port) == DENIED


def test_a_password_or_protected_mode_no_lets_remote_clients_in(
    open_servers: list[ServerProcess],
) -> None:
    """With a password, the remote client is asked for it; with protected-mode no, served."""
    ping = encode_command("PING") + encode_command("QUIT")
    for server in open_servers:
        with server.client() as client:
            client.config_set("requirepass", "secret")
            try:
                assert _from_remote(server.port, ping) == (
                    b"-NOAUTH Authentication required.\r\n+OK\r\n"
                )
            finally:
                client.execute_command("AUTH", "secret")
                client.config_set("requirepass", "")
            # an ACL password for the default user lifts it too (Redis asks its nopass flag)
            client.execute_command("ACL", "SETUSER", "default", "resetpass", ">acl-secret")
            try:
                assert _from_remote(server.port, ping) == (
                    b"-NOAUTH Authentication required.\r\n+OK\r\n"
                )
            finally:
                client.execute_command("AUTH", "acl-secret")
                client.execute_command("ACL", "SETUSER", "default", "nopass")
            client.config_set("protected-mode", "no")
            try:
                assert _from_remote(server.port, ping) == b"+PONG\r\n+OK\r\n"
            finally:
                client.config_set("protected-mode", "yes")


def test_protected_mode_over_tls(clone_factory: ServerPool, certs: Path) -> None:
    """The refusal comes after the handshake, over TLS, as Redis writes it."""
    port = free_port()
    clone_factory.start_clone(1, ["--bind", "0.0.0.0", *tls_args(certs, port)])
    with tls_socket(certs, port, source=REMOTE) as sock:
        assert read_all(sock) == DENIED


# -- DEBUG and protected configs by where the client is ----------------------------------------


def _remote_replies(server: ServerProcess, *commands: tuple[str, ...]) -> list[bytes]:
    """Each command's reply, sent from 127.0.0.2 on one connection."""
    with socket.create_connection(
        (HOST, server.port), timeout=10, source_address=(REMOTE, 0)
    ) as sock:
        replies = []
        buffer = bytearray()
        for command in commands:
            sock.sendall(encode_command(*command))
            while (end := reply_end(buffer)) is None:
                chunk = sock.recv(1 << 16)
                assert chunk, f"closed; have {bytes(buffer)!r}"
                buffer += chunk
            replies.append(bytes(buffer[:end]))
            del buffer[:end]
        return replies


@pytest.mark.parametrize("mode", ["no", "local", "yes"])
def test_debug_and_protected_configs_by_mode(
    clone_factory: ServerPool, tmp_path: Path, mode: str
) -> None:
    """enable-debug-command and enable-protected-configs: no, local (127.0.0.1 only) or yes,
    from a local and a remote client, as redis-server answers; and where DEBUG's refusal
    comes: before NOAUTH, and at MULTI's queueing."""
    flags = [
        *("--bind", "0.0.0.0", "--protected-mode", "no"),
        *("--enable-debug-command", mode, "--enable-protected-configs", mode),
        *("--enable-module-command", mode),
    ]
    require_redis_server()
    servers = [clone_factory.start_redis(flags), clone_factory.start_clone(2, flags)]
    commands = [
        ("DEBUG", "SLEEP", "0"),
        ("CONFIG", "SET", "dir", str(tmp_path)),
        ("CONFIG", "SET", "dbfilename", "x.rdb"),
        ("MULTI",),
        ("DEBUG", "SLEEP", "0"),
        ("EXEC",),
        ("MODULE", "LIST"),
        ("MODULE", "HELP"),
        ("MODULE", "LOAD", "/nonexistent/module.so"),
        ("MODULE", "LOADEX", "/nonexistent/module.so", "ARGS", "x"),
        ("MODULE", "UNLOAD", "nosuch"),
        ("MODULE", "NOSUCH"),
        ("MODULE", "LIST", "x"),
        ("CONFIG", "SET", "requirepass", "pw"),
        ("DEBUG", "SLEEP", "0"),
        ("PING",),
        ("AUTH", "pw"),
        ("CONFIG", "SET", "requirepass", ""),
    ]
    local, remote = [], []
    for server in servers:
        with server.raw() as conn:
            local.append([conn.command(*command) for command in commands])
        remote.append(_remote_replies(server, *commands))
    assert local[1] == local[0] and remote[1] == remote[0]
    assert (local[0][0] == DEBUG_REFUSED) == (mode == "no")
    assert (remote[0][0] == DEBUG_REFUSED) == (mode != "yes")
    # a connection that has not authenticated yet: DEBUG's refusal comes before NOAUTH
    password = ("CONFIG", "SET", "requirepass", "pw")
    unauthenticated = []
    for server in servers:
        with server.raw() as admin, server.raw() as newcomer:
            assert admin.command(*password) == b"+OK\r\n"
            unauthenticated.append(
                [newcomer.command(*command) for command in [("DEBUG", "SLEEP", "0"), ("PING",)]]
            )
            newcomer.command("AUTH", "pw")
            assert newcomer.command("CONFIG", "SET", "requirepass", "") == b"+OK\r\n"
    assert unauthenticated[0] == unauthenticated[1]


def test_scripts_are_not_asked_about_enable_debug_command(
    redis_server: ServerProcess, clone_factory: ServerPool
) -> None:
    """Redis checks enable-debug-command in processCommand only: a script's DEBUG gets the
    script's own refusal (DEBUG is noscript), not the setting's."""
    script = ("EVAL", "return redis.pcall('debug', 'sleep', 0)", "0")
    replies = []
    for server in (redis_server, clone_factory.start_clone(1)):
        with server.raw() as conn:
            replies.append(conn.command(*script))
    assert replies[0] == replies[1]
    assert b"not allowed from script" in replies[0]


# -- the pure parts -----------------------------------------------------------------------------


def test_local_is_redis_s_islocalclient() -> None:
    assert is_local("127.0.0.1") and is_local("::1")
    assert not is_local("127.0.0.2") and not is_local("::ffff:127.0.0.1") and not is_local("")
    assert allowed("yes", "10.0.0.1") and allowed("local", "::1")
    assert not allowed("local", "127.0.0.2") and not allowed("no", "127.0.0.1")


def test_protected_mode_asks_the_default_user_s_nopass_flag() -> None:
    config, _ = parse_args([])
    assert denies_connection(config, "10.1.2.3", True)
    assert not denies_connection(config, "127.0.0.1", True)
    assert not denies_connection(config, "10.1.2.3", False)  # requirepass or an ACL password
    config.set("protected-mode", "no")
    assert not denies_connection(config, "10.1.2.3", True)


def test_config_set_refusal_takes_the_first_refused_name() -> None:
    config, _ = parse_args([])
    assert config_set_refusal(config, ["hz", "dir"], "127.0.0.1") == (
        b"-ERR CONFIG SET failed (possibly related to argument 'dir') - "
        b"can't set protected config\r\n"
    )
    assert b"'databases') - can't set immutable" in config_set_refusal(
        config, ["databases", "dir"], "127.0.0.1"
    )
    assert config_set_refusal(config, ["nosuch", "dir"], "127.0.0.1") is None
    assert config_set_refusal(config, ["hz", "maxmemory"], "127.0.0.1") is None


def test_tls_protocols_parse_as_redis() -> None:
    assert parse_protocols("") == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    assert parse_protocols("tlsv1.3 TLSv1.2") == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    for bad in ("TLSv1.4", "TLSv1.2  TLSv1.3", "ssl3"):
        with pytest.raises(TlsError, match="Invalid tls-protocols"):
            parse_protocols(bad)


def test_server_context_needs_what_redis_needs(certs: Path) -> None:
    config, _ = parse_args(["--tls-port", "1"])
    with pytest.raises(TlsError, match="No tls-cert-file configured!"):
        server_context(config)
    config.set("tls-cert-file", str(certs / "server.crt"))
    config.set("tls-key-file", str(certs / "server.key"))
    with pytest.raises(TlsError, match="Either tls-ca-cert-file or tls-ca-cert-dir"):
        server_context(config)
    config.set("tls-auth-clients", "no")
    assert server_context(config).verify_mode == ssl.CERT_NONE
    config.set("tls-auth-clients", "optional")
    config.set("tls-ca-cert-dir", str(certs))
    assert server_context(config).verify_mode == ssl.CERT_OPTIONAL


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1.* is deprecated:DeprecationWarning")
def test_a_version_between_two_named_is_off(certs: Path) -> None:
    """As Redis sets SSL_OP_NO_TLSv1_2 for "TLSv1.1 TLSv1.3" (through OpenSSL itself: ssl
    sets a range)."""
    args = ["--tls-port", "1", "--tls-auth-clients", "no"]
    args += ["--tls-cert-file", str(certs / "server.crt")]
    config, _ = parse_args([*args, "--tls-key-file", str(certs / "server.key")])
    gaps = ssl.OP_NO_TLSv1_1 | ssl.OP_NO_TLSv1_2
    for protocols, off in [
        ("TLSv1 TLSv1.3", gaps),
        ("TLSv1.1 TLSv1.3", ssl.OP_NO_TLSv1_2),
        ("TLSv1.2 TLSv1.3", 0),
        ("TLSv1.2", 0),
    ]:
        config.set("tls-protocols", protocols)
        assert server_context(config).options & gaps == off, protocols
