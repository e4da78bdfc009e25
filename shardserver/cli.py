"""The launcher: read the settings, start the shard processes, run the acceptor.

``redis-clone`` (the script at the top of the repository) calls :func:`main`. The acceptor runs
in this process, on uvloop; each shard is a child process forked by ``multiprocessing`` that
closes every inherited descriptor but its own two pipe ends, so when this process dies,
however it dies, each shard reads end of file on its command pipe and exits. (``fork`` rather
than ``spawn``: no re-import per shard, and no extra resource-tracker process.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvloop

from shardserver import REDIS_COMPAT_VERSION, __version__
from shardserver.acceptor import Acceptor
from shardserver.config import SETTINGS, Config, ConfigError, parse_args
from shardserver.links import ShardLink, ShardStartError, await_shard, launch_shard
from shardserver.logs import setup_logging
from shardserver.ordering import TicketBook
from shardserver.peers import Peers, close_others, socket_pairs
from shardserver.persistence import aof
from shardserver.processes import name_process
from shardserver.scripting.board import ScriptBoard
from shardserver.shared import ServerWords
from shardserver.tls import TlsError, enabled, plain_port_wanted, server_context

log = logging.getLogger("shardserver.cli")

USAGE = """\
Usage: redis-clone [--config FILE] [--port PORT] [--bind ADDR] [--shards N]
                   [--loglevel debug|verbose|notice|warning|nothing] [--NAME VALUE ...]

Any setting can be given as --NAME VALUE (as redis-server takes them); flags override the
config file (default: config.toml beside this launcher). Settings:
"""


def usage() -> str:
    lines = [USAGE]
    for setting in SETTINGS.values():
        lines.append(f"  --{setting.name:<26} {setting.doc or ''} (default: {setting.default})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        config, actions = parse_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as problem:
        print(f"redis-clone: {problem}", file=sys.stderr)
        return 2
    if actions["help"]:
        print(usage())
        return 0
    if actions["version"]:
        print(f"redis-clone v={__version__} (compatible with Redis {REDIS_COMPAT_VERSION})")
        return 0
    setup_logging(config["loglevel"], config["logfile"], role="M")
    log.info(
        "redis-clone %s (Redis %s compatible) starting, pid %d, config %s",
        __version__,
        REDIS_COMPAT_VERSION,
        os.getpid(),
        config.source or "(defaults)",
    )
    if enabled(config):
        try:
            server_context(config)  # as Redis, settings that make no TLS context stop the start
        except TlsError as problem:
            log.warning("%s", problem)
            log.warning("Failed to configure TLS. Check logs for more info.")
            return 1
    context = multiprocessing.get_context("fork")
    shards = int(config["shards"])
    acceptors = int(config["acceptors"])
    book = TicketBook(acceptors, context) if acceptors > 1 else None
    words = ServerWords(context)
    board = ScriptBoard(shards + acceptors, context)
    launched: list[list[ShardLink]] = []
    try:
        layout = aof.read_layout(config["dir"], config["appendfilename"])
        # Every shard starts loading at once (each keeps its own slots); then each reports.
        launched = [
            launch_shard(context, index, config, book, layout, board) for index in range(shards)
        ]
        for links in launched:
            await_shard(links, config)
    except (ShardStartError, aof.AofError) as problem:
        log.warning("Fatal error loading the data on disk, not starting: %s", problem)
        for links in launched:
            for link in links:
                link.close_fds()
            if links[0].process.exitcode is None:
                links[0].process.kill()
            links[0].process.join(2)
        return 1
    if config["appendonly"] == "yes":
        aof.commit_layout(config["dir"], config["appendfilename"], shards)
    launcher = functools.partial(launch_shard, context, config=config, book=book, board=board)
    if acceptors == 1:
        acceptor = Acceptor(
            config, [links[0] for links in launched], launcher, words=words, board=board
        )
        return uvloop.run(acceptor.serve())
    try:
        sockets = listeners(config, acceptors) if plain_port_wanted(config) else [None] * acceptors
    except OSError as problem:
        log.warning(
            "Could not create server TCP listening socket %s:%s: %s",
            config["bind"],
            config["port"],
            problem.strerror,
        )
        return 1
    return run_acceptors(config, launched, sockets, book, words, launcher, board)


def listeners(config: Config, count: int) -> list[socket.socket]:
    """One listening socket per acceptor on the same address (SO_REUSEPORT: the kernel
    spreads new connections over them); port 0 takes the port the first one got."""
    found: list[socket.socket] = []
    port = config["port"]
    for _ in range(count):
        family = socket.AF_INET6 if ":" in config["bind"] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((config["bind"], port))
        except OSError:
            sock.close()
            for each in found:
                each.close()
            raise
        sock.listen(config["tcp-backlog"])
        port = sock.getsockname()[1]
        found.append(sock)
    return found


def run_acceptors(
    config: Config,
    launched: list[list[ShardLink]],
    sockets: list[socket.socket | None],
    book: Any,
    words: ServerWords,
    launcher: Callable[[int], list[ShardLink]],
    board: ScriptBoard,
) -> int:
    """Fork acceptors 1..N-1, each with its own pipes to every shard, its own listening
    socket and a control socket to every other acceptor; run acceptor 0 here. Each child
    closes what belongs to the others, so that every end of file means what it should."""
    count = len(sockets)
    control = socket_pairs(count)
    children = []
    for index in range(1, count):
        pid = os.fork()
        if pid == 0:
            _keep_only(index, launched, sockets)
            close_others(control, index)
            name_process(f"redis-clone-a{index}")
            acceptor = Acceptor(
                config,
                [links[index] for links in launched],
                None,
                index=index,
                book=book,
                listener=sockets[index],
                words=words,
                peers=Peers(control[index]),
                board=board,
            )
            os._exit(uvloop.run(acceptor.serve()))
        children.append(pid)
    _keep_only(0, launched, sockets)
    close_others(control, 0)
    acceptor = Acceptor(
        config,
        [links[0] for links in launched],
        launcher,
        book=book,
        listener=sockets[0],
        words=words,
        peers=Peers(control[0]),
        board=board,
    )
    status = uvloop.run(acceptor.serve())
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return status


def _keep_only(
    index: int, launched: list[list[ShardLink]], sockets: list[socket.socket | None]
) -> None:
    """In acceptor ``index``: close the other acceptors' pipe ends and listening sockets."""
    for links in launched:
        for other, link in enumerate(links):
            if other != index:
                link.close_fds()
    for other, sock in enumerate(sockets):
        if other != index and sock is not None:
            sock.close()
