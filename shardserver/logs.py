"""Log lines in Redis's format: ``pid:role dd Mon yyyy hh:mm:ss.mmm <level> message``."""

from __future__ import annotations

import logging
import os
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "verbose": logging.INFO - 5,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "nothing": logging.CRITICAL + 10,
}
_MARKS = {logging.DEBUG: ".", logging.INFO - 5: "-", logging.INFO: "*", logging.WARNING: "#"}


class RedisFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        mark = _MARKS.get(record.levelno, "#")
        text = f"{os.getpid()}:{self.role} {stamp}.{millis:03d} {mark} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str, logfile: str = "", role: str = "M") -> None:
    """Send the ``shardserver`` loggers to standard error (or ``logfile``) at ``level``."""
    handler: logging.Handler
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedisFormatter(role))
    root = logging.getLogger("shardserver")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
    root.propagate = False
