"""The launcher: read the settings, start the shard processes, run the acceptor.

``redis-clone`` (the script at the top of the repository) calls :func:`main`. The acceptor runs
in this process, on uvloop; each shard is a child process forked by ``multiprocessing`` that
closes every inherited descriptor but its own two pipe ends, so when this process dies,
however it dies, each shard reads end of file on its command pipe and exits. (``fork`` rather
than ``spawn``: no re-import per shard, and no extra resource-tracker process.)
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys

from shardserver import REDIS_COMPAT_VERSION, __version__
from shardserver.acceptor import Acceptor, ShardLink
from shardserver.config import SETTINGS, Config, ConfigError, parse_args
from shardserver.logs import setup_logging
from shardserver.slots import slot_ranges
from shardserver.worker import enlarge_pipe, run_worker

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


def start_shard(context, index: int, config: Config) -> ShardLink:
    """Start one shard process and return the acceptor's end of its pipes."""
    command_read, command_write = context.Pipe(duplex=False)
    reply_read, reply_write = context.Pipe(duplex=False)
    enlarge_pipe(command_write.fileno())
    enlarge_pipe(reply_write.fileno())
    process = context.Process(
        target=run_worker,
        args=(index, config.as_plain(), command_read, reply_write),
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
    first, last = slot_ranges(int(config["shards"]))[index]
    log.info("shard %d pid %d slots %d-%d", index, process.pid, first, last)
    return ShardLink(index, process, command_fd, reply_fd)


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
    links = [start_shard(context, i, config) for i in range(int(config["shards"]))]
    acceptor = Acceptor(config, links, lambda index: start_shard(context, index, config))
    return uvloop.run(acceptor.serve())
