"""TLS: the server context built from the ``tls-*`` settings, and each acceptor's TLS port.

The settings are Redis 7.0's, with its defaults and its checks (``tls.c``'s
``tlsConfigure``): a certificate and key are required, a CA file or directory too unless
``tls-auth-clients no``; ``tls-protocols`` is a space-separated choice of TLSv1, TLSv1.1,
TLSv1.2 and TLSv1.3 (empty: TLSv1.2 and TLSv1.3); ``tls-ciphers`` is the TLSv1.2 list,
``tls-ciphersuites`` the TLSv1.3 one; ``tls-auth-clients`` is ``yes`` (a client certificate
is required), ``optional`` (checked when given) or ``no``; the session cache is the server
side cache of OpenSSL, with Redis's size and timeout.

The standard library's ``ssl`` has no call for TLSv1.3 cipher suites nor for the session
cache's mode, size and timeout, and sets protocol versions as a range only (a version between
two named ones is switched off with an option it deprecates): those go to OpenSSL directly,
through ``ctypes``, on the ``SSL_CTX`` the context wraps.

Every acceptor listens on ``tls-port`` with a socket of its own (SO_REUSEPORT, as the plain
port's sockets are shared). The context of a listening server cannot change, so CONFIG SET of
a ``tls-*`` setting builds a new context (Redis's ``applyTlsCfg``: refused, with every setting
of the command as it was, when it cannot be built) and serves the same socket anew with it;
connections already made keep theirs, as in Redis. The new server is made in the loop turn
after the command's (a task queued before its reply is written), so a connection made after
the reply is accepted by it. (Handing each accepted connection to ``loop.start_tls`` with the
context of the moment would need no new server, but uvloop's ``start_tls`` reset
redis-benchmark's connections.) CONFIG SET ``tls-port`` listens on the new port (0: on none)
and closes the old one.
"""

from __future__ import annotations

import _ssl
import asyncio
import ctypes
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from shardserver.config import Config, ConfigError

log = logging.getLogger("shardserver.tls")

#: ``tls-protocols`` words (case-insensitive, as Redis's ``parseProtocolsConfig``).
_PROTOCOLS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_DEFAULT_PROTOCOLS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
#: The versions that can lie between two named ones, and OpenSSL's option that disables each.
_NO_VERSION = {
    ssl.TLSVersion.TLSv1_1: int(ssl.OP_NO_TLSv1_1),
    ssl.TLSVersion.TLSv1_2: int(ssl.OP_NO_TLSv1_2),
}
_VERIFY = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}
#: CONFIG SET's answers when a TLS change cannot take effect (Redis's texts).
UNABLE_TO_CONFIGURE = "Unable to update TLS configuration. Check server logs."
UNABLE_TO_LISTEN = "Unable to listen on this port. Check server logs."


class TlsError(ValueError):
    """The settings make no TLS context; the message is the line Redis would log."""


def plain_port_wanted(config: Config) -> bool:
    """Whether to listen on ``port``: as Redis, ``port 0`` beside a TLS port means TLS only
    (alone, port 0 keeps its meaning here: a free port, logged)."""
    return bool(config["port"]) or not config["tls-port"]


def enabled(config: Config) -> bool:
    """Whether a context is needed: Redis configures TLS when it listens on a TLS port or
    uses TLS for replication or the cluster bus."""
    return bool(config["tls-port"]) or "yes" in (config["tls-replication"], config["tls-cluster"])


def parse_protocols(text: str) -> tuple[ssl.TLSVersion, ...]:
    """``tls-protocols``: the versions named (empty: Redis's default, TLSv1.2 and TLSv1.3)."""
    if not text:
        return _DEFAULT_PROTOCOLS
    versions = [_PROTOCOLS.get(word.lower()) for word in text.split(" ")]
    if None in versions:
        raise TlsError(
            "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', "
            "'TLSv1.2' and 'TLSv1.3'."
        )
    return tuple(sorted(set(versions)))  # type: ignore[type-var]


def server_context(config: Config) -> ssl.SSLContext:
    """The server context the settings describe; raises TlsError (Redis's log line)."""
    cert, key = config["tls-cert-file"], config["tls-key-file"]
    if not cert:
        raise TlsError("No tls-cert-file configured!")
    if not key:
        raise TlsError("No tls-key-file configured!")
    ca_file, ca_dir = config["tls-ca-cert-file"], config["tls-ca-cert-dir"]
    needs_ca = config["tls-auth-clients"] != "no" or "yes" in (
        config["tls-replication"],
        config["tls-cluster"],
    )
    if needs_ca and not ca_file and not ca_dir:
        raise TlsError(
            "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, "
            "tls-replication or tls-auth-clients are enabled!"
        )
    versions = parse_protocols(config["tls-protocols"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = versions[0], versions[-1]
    if config["tls-prefer-server-ciphers"] == "yes":
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert, key, password=config["tls-key-file-pass"] or None)
    except (OSError, ssl.SSLError) as problem:
        raise TlsError(f"Failed to load certificate: {cert}: {problem}") from None
    if ca_file or ca_dir:
        try:
            context.load_verify_locations(cafile=ca_file or None, capath=ca_dir or None)
        except (OSError, ssl.SSLError) as problem:
            raise TlsError(
                f"Failed to configure CA certificate(s) file/directory: {problem}"
            ) from None
    if config["tls-dh-params-file"]:
        try:
            context.load_dh_params(config["tls-dh-params-file"])
        except (OSError, ssl.SSLError) as problem:
            raise TlsError(f"Failed to load {config['tls-dh-params-file']}: {problem}") from None
    try:
        # OpenSSL's default list, as Redis leaves it (Python's own is narrower).
        context.set_ciphers(config["tls-ciphers"] or "DEFAULT")
    except ssl.SSLError:
        raise TlsError(f"Failed to configure ciphers: {config['tls-ciphers']}") from None
    openssl = _OpenSSL(context)
    # a version between two named ones is off too, as Redis sets SSL_OP_NO_TLSv1_2 for
    # "TLSv1.1 TLSv1.3" (ssl's own options for that are deprecated: a range is all it sets)
    off = sum(
        flag
        for version, flag in _NO_VERSION.items()
        if versions[0] < version < versions[-1] and version not in versions
    )
    if off:
        openssl.switch_off(off)
    if config["tls-ciphersuites"] and not openssl.set_ciphersuites(config["tls-ciphersuites"]):
        raise TlsError(f"Failed to configure ciphersuites: {config['tls-ciphersuites']}")
    if config["tls-session-caching"] == "yes":
        openssl.cache(config["tls-session-cache-size"], config["tls-session-cache-timeout"])
    else:
        # No resumption at all: no cache, and no tickets either (redis-server 7.0 leaves
        # tickets on and then fails a resuming client's handshake with an internal error;
        # here that client gets a full handshake).
        openssl.no_cache()
        context.options |= ssl.OP_NO_TICKET
    context.verify_mode = _VERIFY[config["tls-auth-clients"]]
    return context


# -- what the ssl module does not reach -------------------------------------------------------

#: ``SSL_CTX_ctrl`` commands and session cache modes (openssl/ssl.h).
_SET_SESS_CACHE_SIZE = 42
_SET_TLSEXT_TICKET_KEYS = 59
_SET_SESS_CACHE_MODE = 44
_SESS_CACHE_OFF = 0
_SESS_CACHE_SERVER = 2


class _OpenSSL:
    """OpenSSL calls on one context's ``SSL_CTX``. The symbols come through ``_ssl``'s own
    library handle, so they are the libssl that ``ssl`` uses; the ``SSL_CTX`` pointer is the
    first field of CPython's ``PySSLContext`` after the object header (checked: OpenSSL's
    options read through it must equal ``context.options``)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        lib = _library()
        self.lib = lib
        self.ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        if lib.SSL_CTX_get_options(self.ctx) != int(context.options):
            raise TlsError("cannot reach OpenSSL's context for TLS settings")

    def switch_off(self, options: int) -> None:
        """Set OpenSSL options (``SSL_CTX_set_options``) that ``ssl`` has deprecated."""
        self.lib.SSL_CTX_set_options(self.ctx, options)

    def set_ciphersuites(self, suites: str) -> bool:
        return bool(self.lib.SSL_CTX_set_ciphersuites(self.ctx, suites.encode()))

    def cache(self, size: int, timeout: int) -> None:
        """Redis's session cache: server side, ``size`` sessions, ``timeout`` seconds."""
        self.lib.SSL_CTX_ctrl(self.ctx, _SET_SESS_CACHE_MODE, _SESS_CACHE_SERVER, None)
        self.lib.SSL_CTX_ctrl(self.ctx, _SET_SESS_CACHE_SIZE, size, None)
        self.lib.SSL_CTX_set_timeout(self.ctx, timeout)
        self.lib.SSL_CTX_set_session_id_context(self.ctx, b"redis", 5)
        keys = ctypes.create_string_buffer(_TICKET_KEYS, len(_TICKET_KEYS))
        if self.lib.SSL_CTX_ctrl(self.ctx, _SET_TLSEXT_TICKET_KEYS, len(_TICKET_KEYS), keys) != 1:
            raise TlsError("Failed to set the session tickets' keys")

    def no_cache(self) -> None:
        self.lib.SSL_CTX_ctrl(self.ctx, _SET_SESS_CACHE_MODE, _SESS_CACHE_OFF, None)


#: The keys session tickets are sealed with (name 16, HMAC 32, AES 32 bytes), drawn once in
#: the launcher before it forks the acceptors: every acceptor seals and opens tickets with
#: the same keys, so a client resumes whichever acceptor the kernel hands its next
#: connection to (Redis is one process; each acceptor drawing its own keys failed that).
_TICKET_KEYS = os.urandom(80)

_LIBRARY: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _LIBRARY
    if _LIBRARY is None:
        lib = ctypes.CDLL(_ssl.__file__)
        pointer, uint = ctypes.c_void_p, ctypes.c_uint
        for name, restype, argtypes in [
            ("SSL_CTX_get_options", ctypes.c_uint64, [pointer]),
            ("SSL_CTX_set_options", ctypes.c_uint64, [pointer, ctypes.c_uint64]),
            ("SSL_CTX_set_ciphersuites", ctypes.c_int, [pointer, ctypes.c_char_p]),
            ("SSL_CTX_ctrl", ctypes.c_long, [pointer, ctypes.c_int, ctypes.c_long, pointer]),
            ("SSL_CTX_set_timeout", ctypes.c_long, [pointer, ctypes.c_long]),
            ("SSL_CTX_set_session_id_context", ctypes.c_int, [pointer, ctypes.c_char_p, uint]),
        ]:
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
        _LIBRARY = lib
    return _LIBRARY


# -- one acceptor's TLS port ------------------------------------------------------------------


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on ``host:port`` that every acceptor may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class TlsPort:
    """One acceptor's TLS listener: its socket, the context it serves with, its server."""

    def __init__(self, config: Config, factory: Callable[[], asyncio.Protocol]) -> None:
        self.config = config
        self.factory = factory
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sock: socket.socket | None = None
        self.context: ssl.SSLContext | None = None
        self.server: Any = None
        #: Swaps of the server not yet done, in order (CONFIG SET answers before them).
        self.swaps: asyncio.Task | None = None

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen on ``tls-port`` (nothing when it is 0); raises TlsError or OSError."""
        self.loop = loop
        if enabled(self.config):
            self.context = server_context(self.config)
        port = self.config["tls-port"]
        if port:
            self.sock = listening_socket(self.config["bind"], port, self.config["tcp-backlog"])
            await self._serve()
            if self.server is None:
                raise OSError(f"cannot serve the TLS port {port}")

    async def _serve(self) -> None:
        """Serve the socket with the current context; the old server stops accepting (its
        connections go on). The socket is the server's own copy: ours stays open."""
        old = self.server
        self.server = None
        if self.sock is not None:
            try:
                self.server = await self.loop.create_server(
                    self.factory,
                    sock=self.sock.dup(),
                    ssl=self.context,
                    backlog=self.config["tcp-backlog"],
                )
            except OSError as problem:  # out of descriptors: the old server goes on
                log.warning("Could not serve the TLS port anew: %s", problem)
                self.server = old
                return
        if old is not None:
            old.close()

    def set(self, pairs: list[tuple[str, str]]) -> None:
        """CONFIG SET of ``tls-*`` settings, applied together (a new certificate and its key
        in one command): the new context and port take effect, or ConfigError (Redis's
        text, naming the first setting) with every one of them as it was."""
        values = self.config.values
        previous = dict(values)
        for name, text in pairs:
            try:
                self.config.set(name, text)
            except ConfigError as problem:
                values.update(previous)
                raise _failed(name, str(problem)) from None
        names = [name for name, _ in pairs]
        try:
            context = server_context(self.config) if enabled(self.config) else None
        except TlsError as problem:
            values.update(previous)
            log.warning("%s", problem)
            log.warning(
                "Failed applying new configuration. Possibly related to new %s setting. "
                "Restoring previous settings.",
                names[0],
            )
            raise _failed(names[0], UNABLE_TO_CONFIGURE) from None
        sock = self.sock
        port = self.config["tls-port"]
        if port != previous["tls-port"]:
            try:
                sock = (
                    listening_socket(self.config["bind"], port, self.config["tcp-backlog"])
                    if port
                    else None
                )
            except OSError as problem:
                values.update(previous)
                log.warning("Could not create server TLS listening socket *:%s: %s", port, problem)
                raise _failed("tls-port", UNABLE_TO_LISTEN) from None
        self.context = context
        if sock is not self.sock:
            if self.sock is not None:
                self.sock.close()
            self.sock = sock
        if self.loop is not None:
            self.swaps = self.loop.create_task(self._swap(self.swaps))

    async def _swap(self, before: asyncio.Task | None) -> None:
        if before is not None:
            await before
        await self._serve()

    def close(self) -> None:
        """Stop listening (at shutdown)."""
        if self.server is not None:
            self.server.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _failed(name: str, why: str) -> ConfigError:
    return ConfigError(f"CONFIG SET failed (possibly related to argument '{name}') - {why}")
