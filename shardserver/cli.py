"""The launcher: read the settings, start the shard processes, run the acceptor.

``redis-clone`` (the script at the top of the repository) calls :func:`main`. The acceptor runs
in this process, on uvloop; each shard is a child process forked by ``multiprocessing`` that
closes every inherited descriptor but its own two pipe ends, so when this process dies,
however it dies, each shard reads end of file on its command pipe and exits. (``fork`` rather
than ``spawn``: no re-import per shard, and no extra resource-tracker process.)
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys

from shardserver import REDIS_COMPAT_VERSION, __version__
from shardserver.acceptor import Acceptor, ShardLink
from shardserver.config import SETTINGS, Config, ConfigError, parse_args
from shardserver.logs import setup_logging
from shardserver.persistence import aof
from shardserver.slots import slot_ranges
from shardserver.worker import enlarge_pipe, run_worker, wait_ready

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


class ShardStartError(RuntimeError):
    """A shard could not load its data; the server must not start."""


def start_shard(context, index: int, config: Config, layout: int | None = None) -> ShardLink:
    """Start one shard process, wait until it has loaded its data, and return the
    acceptor's end of its pipes. ``layout`` is the shard count of the append-only files on
    disk (a shard restarted later reads its own layout's files)."""
    return await_shard(launch_shard(context, index, config, layout), config)


def launch_shard(context, index: int, config: Config, layout: int | None = None) -> ShardLink:
    """Start one shard process (it begins loading its data at once); see :func:`await_shard`."""
    settings = config.as_plain()
    settings["aof-layout"] = layout if layout is not None else int(config["shards"])
    command_read, command_write = context.Pipe(duplex=False)
    reply_read, reply_write = context.Pipe(duplex=False)
    enlarge_pipe(command_write.fileno())
    enlarge_pipe(reply_write.fileno())
    process = context.Process(
        target=run_worker,
        args=(index, settings, command_read, reply_write),
        name=f"redis-clone-shard-{index}",
        daemon=True,
    )
    process.start()
    command_read.close()
    reply_write.close()
    command_fd = os.dup(command_write.fileno())
    reply_fd = os.dup(reply_read.fileno())
    command_write.close()
    reply_read.close()
    return ShardLink(index, process, command_fd, reply_fd)


def await_shard(link: ShardLink, config: Config) -> ShardLink:
    """Wait for a launched shard's start-up handshake; raises ShardStartError if it failed."""
    problem = wait_ready(link.reply_fd)
    if problem is not None:
        for fd in (link.command_fd, link.reply_fd):
            os.close(fd)
        link.process.join(2)
        raise ShardStartError(f"shard {link.index}: {problem}")
    first, last = slot_ranges(int(config["shards"]))[link.index]
    log.info("shard %d pid %d slots %d-%d", link.index, link.process.pid, first, last)
    return link


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
    import uvloop

    log.info(
        "redis-clone %s (Redis %s compatible) starting, pid %d, config %s",
        __version__,
        REDIS_COMPAT_VERSION,
        os.getpid(),
        config.source or "(defaults)",
    )
    context = multiprocessing.get_context("fork")
    shards = int(config["shards"])
    links: list[ShardLink] = []
    launched: list[ShardLink] = []
    try:
        layout = aof.read_layout(config["dir"], config["appendfilename"])
        # Every shard starts loading at once (each keeps its own slots); then each reports.
        launched = [launch_shard(context, index, config, layout) for index in range(shards)]
        for link in launched:
            links.append(await_shard(link, config))
    except (ShardStartError, aof.AofError) as problem:
        log.warning("Fatal error loading the data on disk, not starting: %s", problem)
        for link in launched:
            for fd in (link.command_fd, link.reply_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if link.process.exitcode is None:
                link.process.kill()
            link.process.join(2)
        return 1
    if config["appendonly"] == "yes":
        aof.commit_layout(config["dir"], config["appendfilename"], shards)
    acceptor = Acceptor(config, links, lambda index: start_shard(context, index, config))
    return uvloop.run(acceptor.serve())
