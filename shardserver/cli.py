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

import uvloop

from shardserver import REDIS_COMPAT_VERSION, __version__
from shardserver.acceptor import Acceptor
from shardserver.config import SETTINGS, ConfigError, parse_args
from shardserver.links import ShardLink, ShardStartError, await_shard, launch_shard
from shardserver.logs import setup_logging
from shardserver.persistence import aof

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
            link.close_fds()
            if link.process.exitcode is None:
                link.process.kill()
            link.process.join(2)
        return 1
    if config["appendonly"] == "yes":
        aof.commit_layout(config["dir"], config["appendfilename"], shards)
    acceptor = Acceptor(config, links, lambda index: launch_shard(context, index, config))
    return uvloop.run(acceptor.serve())
