"""Server settings: their names, types, defaults and validation.

Settings have Redis's names (``port``, ``hz``, ``proto-max-bulk-len``...). They come from, in
order of precedence: command-line flags (``--name value``, as ``redis-server`` takes them), the
TOML file (``--config FILE``, default ``config.toml`` beside the launcher), and the defaults
below. ``CONFIG GET``/``CONFIG SET`` read and change the same table at run time.

Redis 7.0 settings that mean nothing here (encoding thresholds and the like) are accepted, kept
and returned, so tools that tune them keep working; they are listed in :data:`PASSIVE`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shardserver.acl import startup_problem
from shardserver.eventclasses import classes_text, parse_classes


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the problem in one line."""


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_memory(text: str) -> int:
    """A Redis memory size: ``1024``, ``64mb``, ``1gb``, ``5k`` (case-insensitive)."""
    raw = text.strip().lower()
    digits = raw.rstrip("kmgb")
    unit = raw[len(digits) :]
    if not digits.lstrip("-").isdigit() or unit not in _UNITS:
        raise ConfigError(f"argument must be a memory value: {text!r}")
    return int(digits) * _UNITS[unit]


def _yes_no(text: str) -> str:
    value = text.strip().lower()
    if value not in ("yes", "no"):
        raise ConfigError("argument must be 'yes' or 'no'")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting: its default, how to parse a value, and whether CONFIG SET may change it."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    mutable: bool = True
    doc: str = ""
    #: For a value given relative to the current one (``client-output-buffer-limit``
    #: names only the classes it changes): ``update(text, current) -> value``.
    update: Callable[[str, Any], Any] | None = None
    #: How CONFIG GET shows a value stored in another form (default: ``str``).
    show: Callable[[Any], str] = str


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ConfigError("argument couldn't be parsed into an integer") from None
        if not low <= value <= high:
            raise ConfigError(f"argument must be between {low} and {high} inclusive")
        return value

    return parse


def _enum(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise ConfigError(f"argument(s) must be one of the following: {', '.join(choices)}")
        return value

    return parse


def _memory_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_memory(str(text))
        if not low <= value <= high:
            raise ConfigError(f"argument must be between {low} and {high} inclusive")
        return value

    return parse


def _maxmemory_policy(text: str) -> str:
    """``maxmemory-policy``, refused with Redis's own list of the policies."""
    value = str(text).strip().lower()
    if value not in MAXMEMORY_POLICIES:
        raise ConfigError(
            "argument(s) must be one of the following: " + ", ".join(MAXMEMORY_POLICIES)
        )
    return value


#: Redis 7.0's eviction policies, in the order its error message lists them.
MAXMEMORY_POLICIES = (
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
)


def _memory_or_percent(text: str) -> int:
    """``maxmemory-clients``: bytes, or ``N%`` of ``maxmemory`` kept as -N, as Redis keeps a
    percent setting (its error texts)."""
    raw = str(text).strip()
    if len(raw) > 1 and raw.endswith("%") and raw[:-1].isdigit():
        if int(raw[:-1]) > 100:
            raise ConfigError("percentage argument must be less or equal to 100")
        return -int(raw[:-1])
    try:
        value = parse_memory(raw)
    except ConfigError:
        value = -1
    if value < 0:
        raise ConfigError("argument must be a memory or percent value")
    return value


def _show_memory_or_percent(value: int) -> str:
    return f"{-value}%" if value < 0 else str(value)


def _string(text: str) -> str:
    return str(text)


#: Redis 7.0's values of the settings that guard a protected action (protection.py).
_protected_action = _enum("no", "yes", "local")


def _keyspace_events(text: str) -> int:
    """``notify-keyspace-events``: Redis's class letters, kept as their flags."""
    try:
        return parse_classes(str(text))
    except ValueError as problem:
        raise ConfigError(str(problem)) from None


def _percentiles(text: str) -> tuple[float, ...]:
    """``latency-tracking-info-percentiles``: numbers from 0 to 100, as Redis checks them."""
    values = []
    for word in str(text).split():
        try:
            value = float(word)
        except ValueError:
            raise ConfigError("Invalid latency-tracking-info-percentiles parameters") from None
        if not 0.0 <= value <= 100.0:
            raise ConfigError(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
            )
        values.append(value)
    return tuple(values)


def _show_percentiles(values: tuple[float, ...]) -> str:
    """As CONFIG GET shows them: each ``%f`` with its trailing zeros trimmed."""
    return " ".join(f"{value:f}".rstrip("0").rstrip(".") for value in values)


def _save_rules(text: str) -> str:
    """``save``: pairs of positive seconds and change counts, or empty (no snapshots)."""
    words = str(text).split()
    if len(words) % 2 or not all(word.isdigit() for word in words):
        raise ConfigError("Invalid save parameters")
    return " ".join(words)


#: Redis's client classes for ``client-output-buffer-limit`` (``replica`` is ``slave``), in
#: the order CONFIG GET lists them, and its default.
BUFFER_CLASSES = {"normal": "normal", "slave": "slave", "replica": "slave", "pubsub": "pubsub"}
DEFAULT_BUFFER_LIMITS = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"


def buffer_limits(text: str) -> dict[str, tuple[int, int, int]]:
    """A ``client-output-buffer-limit`` value as stored (canonical: every class, in bytes and
    seconds) to ``{class: (hard bytes, soft bytes, soft seconds)}``."""
    words = text.split()
    return {
        words[i]: (int(words[i + 1]), int(words[i + 2]), int(words[i + 3]))
        for i in range(0, len(words), 4)
    }


def _update_buffer_limits(text: str, current: str) -> str:
    """``client-output-buffer-limit <class> <hard> <soft> <soft seconds> ...``, checked as
    Redis checks it (its error texts); the classes not named keep their limits."""
    words = str(text).split()
    if len(words) % 4:
        raise ConfigError("Wrong number of arguments in buffer limit configuration.")
    limits = buffer_limits(current)
    for i in range(0, len(words), 4):
        kind = BUFFER_CLASSES.get(words[i].lower())
        if kind is None:
            raise ConfigError("Invalid client class specified in buffer limit configuration.")
        try:
            hard, soft = parse_memory(words[i + 1]), parse_memory(words[i + 2])
            seconds = int(words[i + 3]) if words[i + 3].isdigit() else -1
        except ConfigError:
            hard = soft = seconds = -1
        if hard < 0 or soft < 0 or seconds < 0:
            raise ConfigError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        limits[kind] = (hard, soft, seconds)
    return " ".join(f"{kind} {h} {s} {t}" for kind, (h, s, t) in limits.items())


def auto_shards(acceptors: int = 1) -> int:
    """One shard per core, less the cores the acceptors need; at least one.

    Measured (docs/benchmarks.md): with few cores, a shard more than that competes with the
    acceptors and splits pipelines into smaller batches, and costs throughput.
    """
    return max(1, (os.cpu_count() or 1) - acceptors)


def _shards(text: str) -> int:
    value = str(text).strip().lower()
    if value == "auto":
        return auto_shards()
    return _int_range(1, 1024)(value)


def auto_acceptors() -> int:
    """Half the cores from four up, else one (docs/benchmarks.md has the measurements).

    An acceptor parses and writes for its clients; a shard executes. Measured per command
    (bench/cpu_split.py), an acceptor spends about 1.2 times a shard's CPU with 16-deep
    pipelines and 3.5 times without them, so with many cores about half of them parsing
    keeps both roles busy. Below four cores one acceptor is faster: a second competes with
    the shards and the clients for the same cores.
    """
    cores = os.cpu_count() or 1
    return cores // 2 if cores >= 4 else 1


def _acceptors(text: str) -> int:
    value = str(text).strip().lower()
    if value == "auto":
        return auto_acceptors()
    return _int_range(1, 64)(value)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("bind", "127.0.0.1", _string, False, "address to listen on"),
        Setting("port", 6379, _int_range(0, 65535), False, "TCP port (0 picks a free one)"),
        Setting("shards", "auto", _shards, False, "shard processes; auto: cores acceptors leave"),
        Setting("acceptors", "auto", _acceptors, False, "acceptor processes; auto: cores/2 (4+)"),
        Setting("hz", 10, _int_range(1, 500), True, "active expiry sweeps per second, per shard"),
        Setting("loglevel", "notice", _enum("debug", "verbose", "notice", "warning", "nothing")),
        Setting("logfile", "", _string, False, "log file; empty logs to standard error"),
        Setting("databases", 16, _int_range(1, 1024), False, "number of logical databases"),
        Setting("proto-max-bulk-len", 512 * 1024 * 1024, _memory_range(1024 * 1024, 2**40)),
        # Client limits, enforced by shardserver/limits.py as Redis 7.0 enforces them.
        Setting("maxclients", 10000, _int_range(1, 2**32 - 1), True, "most clients at once"),
        Setting("timeout", 0, _int_range(0, 2**31 - 1), True, "idle client timeout, 0 = never"),
        Setting(
            "client-query-buffer-limit",
            1024**3,
            _memory_range(1024**2, 2**63 - 1),
            True,
            "unparsed input a client may hold",
        ),
        Setting(
            "maxmemory-clients",
            0,
            _memory_or_percent,
            True,
            "clients' memory before the largest are evicted (bytes, or N% of maxmemory)",
            show=_show_memory_or_percent,
        ),
        Setting("client-output-buffer-pause", 64 * 1024 * 1024, _memory_range(0, 2**40)),
        Setting(
            "client-output-buffer-limit",
            DEFAULT_BUFFER_LIMITS,
            lambda text: _update_buffer_limits(text, DEFAULT_BUFFER_LIMITS),
            True,
            "class hard soft seconds ...; normal and pubsub are enforced (no replicas here)",
            update=_update_buffer_limits,
        ),
        Setting(
            "notify-keyspace-events",
            0,
            _keyspace_events,
            True,
            "keyspace notification classes (Redis's letters: KEA, Kl, Ex ...)",
            show=classes_text,
        ),
        Setting("save", "", _save_rules, True, 'snapshot rules: "seconds changes ..."'),
        Setting("appendonly", "no", _yes_no, True, "append-only log, one per shard"),
        Setting("appendfsync", "everysec", _enum("always", "everysec", "no")),
        Setting("aof-load-truncated", "yes", _yes_no, True, "load a log cut mid-write"),
        Setting("dir", ".", _string, True, "working directory for data files"),
        Setting("dbfilename", "dump.rdb", _string, True, "snapshot file name"),
        Setting("appendfilename", "appendonly.aof", _string, False, "append-only file name"),
        Setting("requirepass", "", _string, True, "password (AUTH); empty means none"),
        Setting("aclfile", "", _string, False, "ACL users file (ACL LOAD, ACL SAVE)"),
        Setting("acllog-max-len", 128, _int_range(0, 2**63 - 1), True, "ACL LOG's entries"),
        Setting("tcp-backlog", 511, _int_range(0, 65535), False, "listen backlog"),
        Setting("tcp-keepalive", 300, _int_range(0, 2**31 - 1), True, "keepalive seconds"),
        Setting("daemonize", "no", _yes_no, False, "accepted for compatibility; always 'no'"),
        # -- protected mode, TLS and hardening (shardserver/protection.py, shardserver/tls.py)
        Setting("protected-mode", "yes", _yes_no, True, "only local clients while no password"),
        Setting("enable-protected-configs", "no", _protected_action, False, "CONFIG SET dir ..."),
        Setting("enable-debug-command", "no", _protected_action, False, "DEBUG: no, yes, local"),
        Setting("enable-module-command", "no", _protected_action, False, "MODULE: no, yes, local"),
        Setting("tls-port", 0, _int_range(0, 65535), True, "TLS port (0: none)"),
        Setting("tls-cert-file", "", _string, True, "the server's certificate (PEM)"),
        Setting("tls-key-file", "", _string, True, "its private key (PEM)"),
        Setting("tls-key-file-pass", "", _string, True, "the key's passphrase"),
        Setting("tls-client-cert-file", "", _string),
        Setting("tls-client-key-file", "", _string),
        Setting("tls-client-key-file-pass", "", _string),
        Setting("tls-dh-params-file", "", _string, True, "DH parameters (PEM)"),
        Setting("tls-ca-cert-file", "", _string, True, "CA bundle that client certificates need"),
        Setting("tls-ca-cert-dir", "", _string, True, "CA directory (c_rehash'ed)"),
        Setting("tls-auth-clients", "yes", _enum("no", "yes", "optional"), True, "client certs"),
        Setting("tls-protocols", "", _string, True, 'e.g. "TLSv1.2 TLSv1.3" (empty: those)'),
        Setting("tls-ciphers", "", _string, True, "TLSv1.2 cipher list (OpenSSL syntax)"),
        Setting("tls-ciphersuites", "", _string, True, "TLSv1.3 cipher suites"),
        Setting("tls-prefer-server-ciphers", "no", _yes_no),
        Setting("tls-session-caching", "yes", _yes_no),
        Setting("tls-session-cache-size", 20480, _int_range(0, 2**31 - 1)),
        Setting("tls-session-cache-timeout", 300, _int_range(0, 2**31 - 1), True, "seconds"),
        Setting("tls-cluster", "no", _yes_no, True, "accepted (no cluster bus here)"),
        Setting("tls-replication", "no", _yes_no, True, "accepted (no replication here)"),
        # -- end of protected mode, TLS and hardening
        # Encoding thresholds: OBJECT ENCODING reports what Redis would pick by them, and
        # dumps use the compact encodings they allow. Defaults are redis-server 7.0's
        # built-in ones (its sample redis.conf sets hash-max-listpack-entries to 128).
        Setting("hash-max-listpack-entries", 512, _int_range(0, 2**63 - 1)),
        Setting("hash-max-listpack-value", 64, _int_range(0, 2**63 - 1)),
        Setting("zset-max-listpack-entries", 128, _int_range(0, 2**63 - 1)),
        Setting("zset-max-listpack-value", 64, _int_range(0, 2**63 - 1)),
        Setting("set-max-intset-entries", 512, _int_range(0, 2**63 - 1)),
        Setting("list-max-listpack-size", -2, _int_range(-(2**31), 2**31 - 1)),
        Setting("list-compress-depth", 0, _int_range(0, 2**31 - 1)),
        Setting("hll-sparse-max-bytes", 3000, _memory_range(0, 2**63 - 1)),
        # A stream's listpack nodes are cut where Redis cuts them (XTRIM ~ counts follow).
        Setting("stream-node-max-bytes", 4096, _int_range(0, 2**63 - 1)),
        Setting("stream-node-max-entries", 100, _int_range(0, 2**63 - 1)),
        # No replica ever connects here: with both set, every write is refused (NOREPLICAS),
        # as Redis refuses writes while it has fewer good replicas than asked for.
        Setting(
            "min-replicas-to-write",
            0,
            _int_range(0, 2**31 - 1),
            True,
            "writes need this many replicas (none here: any number but 0 refuses writes)",
        ),
        Setting("min-replicas-max-lag", 10, _int_range(0, 2**31 - 1), True, "seconds"),
        # maxmemory and eviction (shardserver/memory.py): the budget is split over shards.
        Setting("maxmemory", 0, _memory_range(0, 2**63 - 1), True, "bytes for keys, 0 = no limit"),
        Setting("maxmemory-policy", "noeviction", _maxmemory_policy, True, "what goes when full"),
        Setting("maxmemory-samples", 5, _int_range(1, 64), True, "keys sampled per eviction"),
        Setting("maxmemory-eviction-tenacity", 10, _int_range(0, 100)),
        Setting("lfu-log-factor", 10, _int_range(0, 2**31 - 1)),
        Setting("lfu-decay-time", 1, _int_range(0, 2**31 - 1)),
        Setting(
            "busy-reply-threshold",
            5000,
            _int_range(0, 2**63 - 1),
            True,
            "ms a script runs before other clients get -BUSY (alias lua-time-limit)",
        ),
        # Introspection (shardserver/slowlog.py, shardserver/latency.py): Redis 7.0's ranges.
        Setting("slowlog-log-slower-than", 10000, _int_range(-1, 2**63 - 1), True, "µs"),
        Setting("slowlog-max-len", 128, _int_range(0, 2**63 - 1), True, "entries kept"),
        Setting("latency-monitor-threshold", 0, _int_range(0, 2**63 - 1), True, "ms, 0 = off"),
        Setting("latency-tracking", "yes", _yes_no, True, "per-command latency histograms"),
        Setting(
            "latency-tracking-info-percentiles",
            (50.0, 99.0, 99.9),
            _percentiles,
            True,
            "INFO latencystats' percentiles",
            show=_show_percentiles,
        ),
    ]
}

#: Redis 7.0's old names for settings, which CONFIG GET lists too and CONFIG SET accepts.
ALIASES: dict[str, str] = {
    "hash-max-ziplist-entries": "hash-max-listpack-entries",
    "hash-max-ziplist-value": "hash-max-listpack-value",
    "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
    "list-max-ziplist-size": "list-max-listpack-size",
    "lua-time-limit": "busy-reply-threshold",
}

#: Redis 7.0 settings with no effect here, kept and returned by CONFIG GET as Redis would.
PASSIVE: dict[str, str] = {
    "activerehashing": "yes",
    "lazyfree-lazy-eviction": "no",
    "lazyfree-lazy-expire": "no",
    "lazyfree-lazy-server-del": "no",
    "lazyfree-lazy-user-del": "no",
    "lazyfree-lazy-user-flush": "no",
    "active-expire-effort": "1",
    "dynamic-hz": "yes",
    "stop-writes-on-bgsave-error": "yes",
    "rdbcompression": "yes",
    "rdbchecksum": "yes",
    "aof-use-rdb-preamble": "yes",
    "no-appendfsync-on-rewrite": "no",
    "auto-aof-rewrite-percentage": "100",
    "auto-aof-rewrite-min-size": "67108864",
    "replica-read-only": "yes",
    "cluster-enabled": "no",
    "io-threads": "1",
}


class Config:
    """The live settings of one server: known settings, passive ones, and where they came from."""

    def __init__(
        self, values: dict[str, Any], source: str | None = None, users: list[str] | None = None
    ) -> None:
        self.values = values
        self.source = source
        #: ACL users as redis.conf's ``user`` lines give them (``user`` in the TOML file,
        #: a string or a list of them, and each ``--user``), without the word ``user``.
        self.users = users or []

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get_all(self) -> dict[str, str]:
        """Every setting as CONFIG GET shows it."""
        shown = dict(PASSIVE)
        shown.update({k: SETTINGS[k].show(v) for k, v in self.values.items() if k in SETTINGS})
        shown.update({k: v for k, v in self.values.items() if k not in SETTINGS})
        shown.update({alias: shown[name] for alias, name in ALIASES.items()})
        return shown

    def set(self, name: str, text: str) -> str:
        """Change a setting at run time, as CONFIG SET does; raises ConfigError. Returns the
        setting's name (an old alias gives the current name)."""
        name = ALIASES.get(name, name)
        setting = SETTINGS.get(name)
        if setting is None:
            if name not in PASSIVE and name not in self.values:
                raise ConfigError(
                    f"Unknown option or number of arguments for CONFIG SET - '{name}'"
                )
            self.values[name] = text
            return name
        if not setting.mutable:
            raise ConfigError(
                f"CONFIG SET failed (possibly related to argument '{name}') - "
                "can't set immutable config"
            )
        if setting.update is not None:
            self.values[name] = setting.update(text, self.values[name])
        else:
            self.values[name] = setting.parse(text)
        return name

    def as_plain(self) -> dict[str, Any]:
        """The settings as plain data, to hand to a shard process."""
        return dict(self.values)


def _apply(values: dict[str, Any], name: str, raw: Any, origin: str) -> None:
    key = _key(name)
    setting = SETTINGS.get(key)
    if setting is None:
        if key in PASSIVE:
            values[key] = str(raw)
            return
        raise ConfigError(f"{origin}: unknown setting '{name}'")
    text = str(raw) if not isinstance(raw, str) else raw
    try:
        if setting.update is not None:
            values[key] = setting.update(text, values[key])
        else:
            values[key] = setting.parse(text)
    except ConfigError as error:
        raise ConfigError(f"{origin}: bad value for '{key}' ({raw!r}): {error}") from None


def default_config_path() -> str:
    """``config.toml`` beside the launcher (the repository root)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config.toml")


FLAG_ALIASES = {"c": "config", "p": "port", "h": "help", "v": "version"}


def parse_args(argv: list[str]) -> tuple[Config, dict[str, bool]]:
    """Build the configuration from command-line arguments; raises ConfigError.

    Returns the config and the actions requested (``help``, ``version``).
    """
    overrides: list[tuple[str, str]] = []
    actions = {"help": False, "version": False}
    config_path: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"unexpected argument '{arg}' (settings are given as --name value)")
        name = arg.lstrip("-")
        name, eq, inline_value = name.partition("=")
        name = (
            FLAG_ALIASES.get(name, name)
            if arg.startswith("-") and not arg.startswith("--")
            else name
        )
        if name in ("help", "version"):
            actions[name] = True
            i += 1
            continue
        if eq:
            value = inline_value
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"option '--{name}' needs a value")
            value = argv[i + 1]
            i += 2
        if name == "config":
            config_path = value
        else:
            overrides.append((name, value))

    values = {name: setting.default for name, setting in SETTINGS.items()}
    users: list[str] = []
    values["acceptors"] = _acceptors("auto")
    table: dict[str, Any] = {}
    source = config_path or default_config_path()
    if config_path is not None or os.path.exists(source):
        try:
            with open(source, "rb") as handle:
                table = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file '{source}' not found") from None
        except OSError as error:
            raise ConfigError(f"config file '{source}' cannot be read: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file '{source}' is not valid TOML: {error}") from None
        for name, raw in table.items():
            if _key(name) == "user":
                users.extend(_user_entries(raw, source))
                continue
            if isinstance(raw, dict | list):
                raise ConfigError(f"{source}: setting '{name}' must be a single value")
            _apply(values, name, raw, source)
    else:
        source = None
    for name, raw in overrides:
        if _key(name) == "user":
            users.append(raw)
            continue
        _apply(values, name, raw, "command line")
    if users and values["aclfile"]:
        # Redis refuses the mix: "please define either an ACL file or declare users
        # directly in your redis.conf, but not both"
        raise ConfigError(
            "Configuring Redis with users defined in redis.conf and at the same setting an "
            "ACL file path is invalid. This setup is very likely to lead to configuration "
            "errors and security holes, please define either an ACL file or declare users "
            "directly in your redis.conf, but not both."
        )
    problem = startup_problem(users, values["aclfile"])
    if problem is not None:
        raise ConfigError(problem)
    # "auto" shards take the cores the acceptors leave.
    given = [raw for name, raw in [*table.items(), *overrides] if _key(name) == "shards"]
    if not given or str(given[-1]).strip().lower() == "auto":
        values["shards"] = auto_shards(values["acceptors"])
    return Config(values, source, users), actions


def _user_entries(raw: Any, source: str) -> list[str]:
    """``user`` in the TOML file: one user's rules, or a list of them."""
    entries = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(entry, str) for entry in entries):
        raise ConfigError(f"{source}: 'user' must be a string or a list of strings")
    return entries


def _key(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return ALIASES.get(key, key)
