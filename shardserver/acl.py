"""ACL users as Redis 7.0 has them: the user model, its rules, and the permission checks.

Pure: no sockets, no processes. A :class:`User` has flags (on/off, nopass, the payload
sanitizing flags), password hashes (SHA-256 hex, as Redis keeps them) and *selectors*: the
root one (the rules given outside parentheses) and any number of ``(...)`` ones. A command
is allowed when any selector allows the command, every key it names (with the read/write
access its key specs say, for ``%R~``/``%W~`` patterns) and every channel it names.

The command universe is Redis 7.0's own (``commands/meta.json``: every command's COMMAND
INFO reply, which carries its ACL categories and key specs), served here or not, so
category rules cover, count and print exactly the commands Redis's do. Each command (and
subcommand) has a bit; a selector's commands are one Python int, so a category's counts
are two popcounts. Rules are applied and printed as ``acl.c`` does (``ACLSetUser``,
``ACLSetSelector``, ``ACLDescribeUser``), including its greedy choice of categories when
it prints a selector's commands. One difference: Redis prints the single-command rules
that follow the categories in its command table's hash order, which changes with every
start (its dict seed is random); here they follow the command names' order.

:class:`Registry` holds the users by name (LIST and USERS in name order, as Redis's radix
tree gives them) and :class:`AclLog` the ACL LOG entries, grouped as Redis groups them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import hiredis

from shardserver.commands.metadata import META
from shardserver.errors import error_bytes
from shardserver.glob import compile_glob

#: Redis's categories, in its order (``ACLCommandCategories``): ACL CAT lists them so, and
#: the printer tries them so.
CATEGORIES = (
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
)

#: Why a command is refused (Redis's ACL_DENIED_* values: a larger one is the more
#: relevant error when several selectors refuse).
DENIED_CMD, DENIED_KEY, DENIED_AUTH, DENIED_CHANNEL = 1, 2, 3, 4
REASON_NAMES = {DENIED_CMD: "command", DENIED_KEY: "key", DENIED_AUTH: "auth"}
REASON_NAMES[DENIED_CHANNEL] = "channel"

#: Key permissions of a pattern (``%R~``, ``%W~``, ``~`` is both).
READ, WRITE = 1, 2
ALL_PERMISSIONS = READ | WRITE

#: The longest a password comparison looks at (Redis's CONFIG_AUTHPASS_MAX_LEN).
_HASH_LENGTH = 64


class AclError(ValueError):
    """A rule that cannot be applied; the message is Redis's ``ACLSetUserStringError``."""


_SYNTAX = "Syntax error"
_UNKNOWN = "Unknown command or category name in ACL"
_KEYS_AFTER_ALL = (
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not "
    "have any effect. Try 'resetkeys' to start with an empty list of patterns"
)
_CHANNELS_AFTER_ALL = (
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does "
    "not have any effect. Try 'resetchannels' to start with an empty list of channels"
)
_NO_SUCH_PASSWORD = "The password you are trying to remove from the user does not exist"
_BAD_HASH = (
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal "
    "characters"
)
_FIRSTARG_OF_SUB = "Allowing first-arg of a subcommand is not supported"


# -- the command universe ---------------------------------------------------------------


@dataclass
class KeySpec:
    """One key spec of a command, as COMMAND INFO gives it."""

    flags: frozenset[str]
    begin: tuple  # ("index", i) | ("keyword", word, startfrom) | ("unknown",)
    find: tuple  # ("range", lastkey, step, limit) | ("keynum", idx, first, step) | ("unknown",)


@dataclass
class AclCommand:
    """A command or subcommand as the ACL sees it."""

    name: str  # full name: ``get``, ``config|get``
    bit: int
    categories: int  # bit i: CATEGORIES[i]
    arity: int
    no_auth: bool
    key_specs: list[KeySpec]
    parent: AclCommand | None = None
    subcommands: dict[str, AclCommand] = field(default_factory=dict)

    @property
    def mask(self) -> int:
        """Its bit and its subcommands' (what a ``+command`` rule sets)."""
        mask = 1 << self.bit
        for sub in self.subcommands.values():
            mask |= 1 << sub.bit
        return mask


def _pairs(flat: list) -> dict[str, object]:
    return {
        (k.decode() if isinstance(k, bytes) else k): v
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key_spec(raw: list) -> KeySpec:
    spec = _pairs(raw)
    flags = frozenset(_text(flag).lower() for flag in spec["flags"])
    begin = _pairs(spec["begin_search"])
    find = _pairs(spec["find_keys"])
    begin_spec = _pairs(begin["spec"]) if begin["spec"] else {}
    find_spec = _pairs(find["spec"]) if find["spec"] else {}
    kind = _text(begin["type"])
    if kind == "index":
        begin_search: tuple = ("index", begin_spec["index"])
    elif kind == "keyword":
        begin_search = ("keyword", _text(begin_spec["keyword"]), begin_spec["startfrom"])
    else:
        begin_search = ("unknown",)
    kind = _text(find["type"])
    if kind == "range":
        find_keys: tuple = (
            "range",
            find_spec["lastkey"],
            find_spec["keystep"],
            find_spec["limit"],
        )
    elif kind == "keynum":
        find_keys = ("keynum", find_spec["keynumidx"], find_spec["firstkey"], find_spec["keystep"])
    else:
        find_keys = ("unknown",)
    return KeySpec(flags, begin_search, find_keys)


def _categories(raw: list) -> int:
    mask = 0
    for name in raw:
        text = _text(name).lstrip("@")
        if text in CATEGORIES:
            mask |= 1 << CATEGORIES.index(text)
    return mask


def _universe() -> tuple[dict[str, AclCommand], int]:
    """Every Redis 7.0 command and subcommand by full name, and the number of bits."""
    commands: dict[str, AclCommand] = {}
    bit = 0
    for name in sorted(name for name in META if name != "|subcommands"):
        reader = hiredis.Reader()
        reader.feed(base64.b64decode(META[name]["info2"]))
        info = reader.gets()
        top = AclCommand(
            name,
            bit,
            _categories(info[6]),
            info[1],
            b"no_auth" in info[2],
            [_key_spec(spec) for spec in info[8]],
        )
        bit += 1
        commands[name] = top
        for sub in sorted(info[9], key=lambda each: each[0]):
            full = _text(sub[0]).lower()
            entry = AclCommand(
                full,
                bit,
                _categories(sub[6]),
                sub[1],
                b"no_auth" in sub[2],
                [_key_spec(spec) for spec in sub[8]],
                parent=top,
            )
            bit += 1
            top.subcommands[full.partition("|")[2]] = entry
            commands[full] = entry
    return commands, bit


#: Every command by full name (``config|get``), lower case.
COMMANDS, _BITS = _universe()
#: The bit that only ``+@all``/``allcommands`` sets: "future commands" (acl.c's trick to
#: know whether a selector's rules started from +@all).
FUTURE_BIT = 1 << _BITS
EVERY_COMMAND = (1 << (_BITS + 1)) - 1


def _category_masks() -> tuple[list[int], list[int]]:
    """Per category: the commands in it (to count), and what ``+@category`` sets (a
    container in a category brings all its subcommands, as ACLChangeSelectorPerm does)."""
    counted = [0] * len(CATEGORIES)
    applied = [0] * len(CATEGORIES)
    for command in COMMANDS.values():
        for index in range(len(CATEGORIES)):
            if command.categories >> index & 1:
                counted[index] |= 1 << command.bit
                applied[index] |= command.mask
    return counted, applied


_COUNTED, _APPLIED = _category_masks()
#: Commands in the order the printer walks them: each top-level one, then its subcommands.
_WALK = list(COMMANDS.values())


def lookup(name: str) -> AclCommand | None:
    """A command by ``name`` or ``container|sub`` (any case), as ACLLookupCommand finds it."""
    return COMMANDS.get(name.lower())


def full_name(argv: list[bytes]) -> str:
    """The full name a command line runs (``config|get`` for a container's subcommand)."""
    name = argv[0].lower().decode("utf-8", "replace")
    command = COMMANDS.get(name)
    if command is not None and command.subcommands and len(argv) > 1:
        return name + "|" + argv[1].lower().decode("utf-8", "replace")
    return name


def category_commands(category: str) -> list[str] | None:
    """ACL CAT <category>: the full names of its commands, or None for no such category."""
    name = category.lower()
    if name not in CATEGORIES:
        return None
    index = CATEGORIES.index(name)
    return [command.name for command in _WALK if command.categories >> index & 1]


# -- selectors and users ------------------------------------------------------------------


class KeyPattern:
    """A key pattern with its permissions (``~``: both, ``%R~``, ``%W~``)."""

    __slots__ = ("pattern", "flags", "matches")

    def __init__(self, pattern: bytes, flags: int) -> None:
        self.pattern = pattern
        self.flags = flags
        self.matches = compile_glob(pattern)

    def describe(self) -> bytes:
        prefix = {ALL_PERMISSIONS: b"~", READ: b"%R~", WRITE: b"%W~"}[self.flags]
        return prefix + self.pattern


class Selector:
    """One set of permissions: commands (a bit each), key patterns, channel patterns."""

    __slots__ = (
        "root",
        "allowed",
        "firstargs",
        "all_keys",
        "patterns",
        "all_channels",
        "channels",
    )

    def __init__(self, root: bool = False) -> None:
        self.root = root
        self.allowed = 0
        #: Command bit to the first arguments allowed of an otherwise refused command
        #: (``+select|0``), in the order given.
        self.firstargs: dict[int, list[bytes]] = {}
        self.all_keys = False
        self.patterns: list[KeyPattern] = []
        #: acl-pubsub-default is resetchannels in Redis 7.0: no channel until given.
        self.all_channels = False
        self.channels: list[bytes] = []

    def copy(self) -> Selector:
        twin = Selector(self.root)
        twin.allowed = self.allowed
        twin.firstargs = {bit: list(args) for bit, args in self.firstargs.items()}
        twin.all_keys = self.all_keys
        twin.patterns = [KeyPattern(each.pattern, each.flags) for each in self.patterns]
        twin.all_channels = self.all_channels
        twin.channels = list(self.channels)
        return twin

    def unrestricted(self) -> bool:
        return self.all_keys and self.all_channels and self.allowed == EVERY_COMMAND

    # -- rules ---------------------------------------------------------------------------

    def apply(self, op: bytes) -> None:
        """One selector rule (``ACLSetSelector``); raises AclError."""
        lowered = op.lower()
        if lowered in (b"allkeys", b"~*"):
            self.all_keys = True
            self.patterns = []
        elif lowered == b"resetkeys":
            self.all_keys = False
            self.patterns = []
        elif lowered in (b"allchannels", b"&*"):
            self.all_channels = True
            self.channels = []
        elif lowered == b"resetchannels":
            self.all_channels = False
            self.channels = []
        elif lowered in (b"allcommands", b"+@all"):
            self.allowed = EVERY_COMMAND
            self.firstargs = {}
        elif lowered in (b"nocommands", b"-@all"):
            self.allowed = 0
            self.firstargs = {}
        elif op[:1] in (b"~", b"%"):
            self._add_key_pattern(op)
        elif op[:1] == b"&":
            if self.all_channels:
                raise AclError(_CHANNELS_AFTER_ALL)
            pattern = op[1:]
            if _has_spaces(pattern):
                raise AclError(_SYNTAX)
            if pattern not in self.channels:
                self.channels.append(pattern)
        elif op[:1] == b"+" and op[1:2] != b"@":
            self._allow(op[1:])
        elif op[:1] == b"-" and op[1:2] != b"@":
            command = lookup(op[1:].decode("utf-8", "replace"))
            if command is None:
                raise AclError(_UNKNOWN)
            self._change(command, False)
        elif op[:1] in (b"+", b"-") and op[1:2] == b"@":
            name = op[2:].decode("utf-8", "replace").lower()
            if name not in CATEGORIES:
                raise AclError(_UNKNOWN)
            index = CATEGORIES.index(name)
            for command in _WALK:
                if command.categories >> index & 1:
                    self._change(command, op[:1] == b"+")
        else:
            raise AclError(_SYNTAX)

    def _add_key_pattern(self, op: bytes) -> None:
        if self.all_keys:
            raise AclError(_KEYS_AFTER_ALL)
        flags = 0
        offset = 1
        if op[:1] == b"%":
            while offset < len(op):
                letter = op[offset : offset + 1].upper()
                if letter == b"R" and not flags & READ:
                    flags |= READ
                elif letter == b"W" and not flags & WRITE:
                    flags |= WRITE
                elif letter == b"~":
                    offset += 1
                    break
                else:
                    raise AclError(_SYNTAX)
                offset += 1
            # Redis 7.0.15 refuses a permission without letters (``%~x``); ``%R`` alone is
            # the empty pattern
            if not flags:
                raise AclError(_SYNTAX)
        else:
            flags = ALL_PERMISSIONS
        pattern = op[offset:]
        if _has_spaces(pattern):
            raise AclError(_SYNTAX)
        for existing in self.patterns:
            if existing.pattern == pattern:
                existing.flags |= flags
                break
        else:
            self.patterns.append(KeyPattern(pattern, flags))

    def _allow(self, name: bytes) -> None:
        """``+command``, ``+container|sub`` or ``+command|firstarg``."""
        text = name.decode("utf-8", "replace")
        if "|" not in text:
            command = lookup(text)
            if command is None:
                raise AclError(_UNKNOWN)
            self._change(command, True)
            return
        head, _, first = text.rpartition("|")
        command = lookup(head)
        if command is None:
            raise AclError(_UNKNOWN)
        if command.parent is not None:
            raise AclError(_FIRSTARG_OF_SUB)
        if not first:
            raise AclError(_SYNTAX)
        if command.subcommands:
            sub = lookup(text)
            if sub is None:
                raise AclError(_UNKNOWN)
            self._change(sub, True)
            return
        allowed = self.firstargs.setdefault(command.bit, [])
        raw = name.rpartition(b"|")[2]
        if all(each.lower() != raw.lower() for each in allowed):
            allowed.append(raw)

    def _change(self, command: AclCommand, allow: bool) -> None:
        """ACLChangeSelectorPerm: the command and, for a container, its subcommands."""
        if allow:
            self.allowed |= command.mask
        else:
            self.allowed &= ~command.mask
        self.firstargs.pop(command.bit, None)

    # -- printing ------------------------------------------------------------------------

    def describe_commands(self) -> bytes:
        """The command rules as ACLDescribeSelectorCommandRules prints them."""
        additive = not self.allowed & FUTURE_BIT
        fake = Selector()
        rules = [b"-@all" if additive else b"+@all"]
        fake.allowed = 0 if additive else EVERY_COMMAND
        temp = self.allowed
        applied = [False] * len(CATEGORIES)
        while True:
            best = -1
            least_diff, most_same = 1 << 62, 0
            for index in range(len(CATEGORIES)):
                if applied[index]:
                    continue
                on = (temp & _COUNTED[index]).bit_count()
                off = _COUNTED[index].bit_count() - on
                diff, same = (off, on) if additive else (on, off)
                if same > diff and (diff < least_diff or (diff == least_diff and same > most_same)):
                    best, least_diff, most_same = index, diff, same
            if best < 0:
                break
            name = CATEGORIES[best].encode()
            if additive:
                fake.allowed |= _APPLIED[best]
                temp &= ~_APPLIED[best]
                rules.append(b"+@" + name)
            else:
                fake.allowed &= ~_APPLIED[best]
                temp |= _APPLIED[best]
                rules.append(b"-@" + name)
            applied[best] = True
        for command in _WALK:
            mine = self.allowed >> command.bit & 1
            if mine != fake.allowed >> command.bit & 1:
                rules.append((b"+" if mine else b"-") + command.name.encode())
                fake._change(command, bool(mine))
            if not mine:
                for first in self.firstargs.get(command.bit, ()):
                    rules.append(b"+" + command.name.encode() + b"|" + first)
        return b" ".join(rules)

    def describe_keys(self) -> bytes:
        if self.all_keys:
            return b"~*"
        return b" ".join(pattern.describe() for pattern in self.patterns)

    def describe_channels(self) -> bytes:
        if self.all_channels:
            return b"&*"
        return b" ".join(b"&" + channel for channel in self.channels)

    def describe(self) -> bytes:
        """ACLDescribeSelector: keys, channels, commands."""
        words = []
        if self.all_keys:
            words.append(b"~*")
        else:
            words.extend(pattern.describe() for pattern in self.patterns)
        if self.all_channels:
            words.append(b"&*")
        else:
            words.append(b"resetchannels")
            words.extend(b"&" + channel for channel in self.channels)
        words.append(self.describe_commands())
        return b" ".join(words)

    # -- checks --------------------------------------------------------------------------

    def check(self, command: AclCommand, argv: list[bytes], keys: list) -> tuple[int, int]:
        """ACLSelectorCheckCmd: (0, 0) when allowed, else (reason, position)."""
        if not self.allowed >> command.bit & 1 and not command.no_auth:
            firsts = self.firstargs.get(command.bit)
            if not firsts or len(argv) < 2:
                return DENIED_CMD, 0
            wanted = argv[2 if command.parent is not None else 1].lower()
            if all(first.lower() != wanted for first in firsts):
                return DENIED_CMD, 0
        if not self.all_keys:
            for position, flags in keys:
                if not self.key_allowed(argv[position], flags):
                    return DENIED_KEY, position
        if not self.all_channels:
            channels = _channel_positions(command.name, len(argv))
            if channels is not None:
                literal = command.name == "psubscribe"
                for position in channels:
                    if not _channel_allowed(self.channels, argv[position], literal):
                        return DENIED_CHANNEL, position
        return 0, 0

    def key_allowed(self, key: bytes, flags: int) -> bool:
        """ACLSelectorCheckKey, ``flags`` being the READ/WRITE the access needs."""
        if self.all_keys:
            return True
        for pattern in self.patterns:
            if pattern.flags & flags == flags and pattern.matches(key):
                return True
        return False


def _has_spaces(text: bytes) -> bool:
    """ACLStringHasSpaces: C's isspace, or a NUL byte."""
    return any(byte in b" \t\n\v\f\r\0" for byte in text)


def _channel_positions(name: str, argc: int) -> range | None:
    """Where a command's channels are (ACLDoesCommandHaveChannels); the unsubscribing
    commands name none."""
    if name in ("publish", "spublish"):
        return range(1, 2)
    if name in ("subscribe", "ssubscribe", "psubscribe"):
        return range(1, argc)
    return None


def _channel_allowed(channels: list[bytes], channel: bytes, literal: bool) -> bool:
    """ACLCheckChannelAgainstList: a PSUBSCRIBE pattern must be one of the user's patterns
    as written; a channel must match one."""
    for pattern in channels:
        if literal:
            if pattern.split(b"\0", 1)[0] == channel.split(b"\0", 1)[0]:
                return True
        elif compile_glob(pattern)(channel):
            return True
    return False


def key_references(command: AclCommand, argv: list[bytes]) -> list[tuple[int, int]]:
    """The keys of a command line: (position, READ/WRITE it needs), as Redis's
    getKeysFromCommandWithSpecs finds them (its key specs, or its getkeys function where
    the specs are not enough: SET and BITFIELD, whose flags vary, SORT, MIGRATE)."""
    name = command.name
    if name in _GETKEYS:
        return _GETKEYS[name](argv)
    found = []
    argc = len(argv)
    for spec in command.key_specs:
        if "not_key" in spec.flags:
            continue
        positions = _spec_positions(spec, argv, argc, command.arity)
        if positions is None:
            continue
        needs = _needs(spec.flags)
        found.extend((position, needs) for position in positions)
    return found


def _needs(flags: frozenset[str]) -> int:
    needs = READ if "access" in flags else 0
    if flags & {"insert", "delete", "update"}:
        needs |= WRITE
    return needs


def _spec_positions(spec: KeySpec, argv: list[bytes], argc: int, arity: int) -> list[int] | None:
    if spec.begin[0] == "index":
        first = spec.begin[1]
    elif spec.begin[0] == "keyword":
        _kind, word, start = spec.begin
        first = 0
        begin = start if start > 0 else argc + start
        end = argc - 1 if start > 0 else 0
        i = begin
        while i != end:
            if i >= argc or i < 1:
                break
            if argv[i].lower() == word.lower().encode():
                first = i + 1
                break
            i = i + 1 if begin <= end else i - 1
        if not first:
            return None
    else:
        return None
    if spec.find[0] == "range":
        _kind, lastkey, step, limit = spec.find
        if lastkey >= 0:
            last = first + lastkey
        elif not limit:
            last = argc + lastkey
        else:
            last = first + ((argc - first) // limit + lastkey)
    elif spec.find[0] == "keynum":
        _kind, index, firstkey, step = spec.find
        if first + index >= argc:
            return None
        try:
            count = int(argv[first + index])
        except ValueError:
            return None
        if count < 0:
            return None
        first += firstkey
        last = first + count - 1
    else:
        return None
    return [i for i in range(first, last + 1, max(step, 1)) if i < argc]


def _set_keys(argv: list[bytes]) -> list[tuple[int, int]]:
    """setGetKeys: SET ... GET reads the key too."""
    reads = any(arg.lower() == b"get" for arg in argv[3:])
    return [(1, READ | WRITE if reads else WRITE)]


def _bitfield_keys(argv: list[bytes]) -> list[tuple[int, int]]:
    """bitfieldGetKeys: only GETs (and OVERFLOW) read; SET and INCRBY write too."""
    writes = any(arg.lower() in (b"set", b"incrby") for arg in argv[2:])
    return [(1, READ | WRITE if writes else READ)]


def _sort_keys(argv: list[bytes]) -> list[tuple[int, int]]:
    """sortGetKeys: the key, and STORE's destination (skipping LIMIT's, BY's, GET's
    arguments as SORT parses them)."""
    found = [(1, READ)]
    skips = {b"limit": 2, b"get": 1, b"by": 1}
    i = 2
    store = None
    while i < len(argv):
        word = argv[i].lower()
        if word in skips:
            i += skips[word]
        elif word == b"store" and i + 1 < len(argv):
            store = i + 1  # the last STORE wins, as SORT's own parsing
            i += 1
        i += 1
    if store is not None:
        found.append((store, WRITE))
    return found


def _sort_ro_keys(argv: list[bytes]) -> list[tuple[int, int]]:
    return [(1, READ)]


def _migrate_keys(argv: list[bytes]) -> list[tuple[int, int]]:
    """migrateGetKeys: the key argument, or with an empty one the keys after KEYS."""
    if len(argv) > 3 and argv[3]:
        return [(3, READ | WRITE)]
    for i in range(6, len(argv)):
        if argv[i].lower() == b"keys":
            return [(j, READ | WRITE) for j in range(i + 1, len(argv))]
    return []


_GETKEYS: dict[str, Callable[[list[bytes]], list[tuple[int, int]]]] = {
    "set": _set_keys,
    "bitfield": _bitfield_keys,
    "sort": _sort_keys,
    "sort_ro": _sort_ro_keys,
    "migrate": _migrate_keys,
}


def sort_option_refusal(user: User, argv: list[bytes]) -> bytes | None:
    """SORT's BY (with a ``*`` pattern) and GET read keys no key spec names: Redis 7.0
    refuses them to a user without access to every key, with this error, as SORT parses
    its options (a syntax error before them is SORT's own)."""
    if any(selector.key_allowed(b"*", 0) for selector in user.selectors):
        return None
    i = 2
    while i < len(argv):
        word = argv[i].lower()
        left = len(argv) - i - 1
        if word in (b"asc", b"desc", b"alpha"):
            i += 1
        elif word == b"limit" and left >= 2:
            i += 3
        elif word == b"store" and left >= 1:
            i += 2
        elif word == b"by" and left >= 1:
            if b"*" in argv[i + 1]:
                return b"-ERR BY option of SORT denied due to insufficient ACL permissions.\r\n"
            i += 2
        elif word == b"get" and left >= 1:
            return b"-ERR GET option of SORT denied due to insufficient ACL permissions.\r\n"
        else:
            return None
    return None


def hash_password(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _valid_hash(text: bytes) -> bool:
    return len(text) == _HASH_LENGTH and all(byte in b"0123456789abcdef" for byte in text)


class User:
    """An ACL user: flags, password hashes, the root selector and the others."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.enabled = False
        self.nopass = False
        #: None, "sanitize-payload" or "skip-sanitize-payload" (accepted and shown; they
        #: change nothing here).
        self.sanitize: str | None = None
        self.passwords: list[str] = []
        self.selectors: list[Selector] = [Selector(root=True)]
        #: Whether it may run everything (one selector with every command, key and
        #: channel): its clients then skip every check, and keep the fast path.
        self.unrestricted = False

    @classmethod
    def default(cls) -> User:
        """Redis's ``default`` user: on, nopass, ``~* &* +@all``."""
        user = cls(b"default")
        for op in (b"+@all", b"~*", b"&*", b"on", b"nopass"):
            user.apply(op)
        user.refresh()
        return user

    def copy(self, name: bytes | None = None) -> User:
        twin = User(self.name if name is None else name)
        twin.take(self)
        return twin

    def take(self, other: User) -> None:
        """ACLCopyUser: this user gets ``other``'s rules (its name and identity stay, so
        its connections see the new rules at once)."""
        self.enabled = other.enabled
        self.nopass = other.nopass
        self.sanitize = other.sanitize
        self.passwords = list(other.passwords)
        self.selectors = [selector.copy() for selector in other.selectors]
        self.refresh()

    def refresh(self) -> None:
        self.unrestricted = any(selector.unrestricted() for selector in self.selectors)

    @property
    def root(self) -> Selector:
        return self.selectors[0]

    def apply(self, op: bytes) -> None:
        """One rule (``ACLSetUser``); raises AclError. Call :meth:`refresh` after."""
        if not op:
            return
        lowered = op.lower()
        if lowered == b"on":
            self.enabled = True
        elif lowered == b"off":
            self.enabled = False
        elif lowered == b"skip-sanitize-payload":
            self.sanitize = "skip-sanitize-payload"
        elif lowered == b"sanitize-payload":
            self.sanitize = "sanitize-payload"
        elif lowered == b"nopass":
            self.nopass = True
            self.passwords = []
        elif lowered == b"resetpass":
            self.nopass = False
            self.passwords = []
        elif op[:1] in (b">", b"#"):
            if op[:1] == b">":
                hashed = hash_password(op[1:])
            elif _valid_hash(op[1:]):
                hashed = op[1:].decode()
            else:
                raise AclError(_BAD_HASH)
            if hashed not in self.passwords:
                self.passwords.append(hashed)
            self.nopass = False
        elif op[:1] in (b"<", b"!"):
            if op[:1] == b"<":
                hashed = hash_password(op[1:])
            elif _valid_hash(op[1:]):
                hashed = op[1:].decode()
            else:
                raise AclError(_BAD_HASH)
            if hashed not in self.passwords:
                raise AclError(_NO_SUCH_PASSWORD)
            self.passwords.remove(hashed)
        elif op[:1] == b"(" and op[-1:] == b")":
            selector = Selector()
            for inner in split_args(op[1:-1]):
                selector.apply(inner)
            self.selectors.append(selector)
        elif lowered == b"clearselectors":
            del self.selectors[1:]
        elif lowered == b"reset":
            for each in (b"resetpass", b"resetkeys", b"resetchannels", b"off"):
                self.apply(each)
            self.apply(b"sanitize-payload")
            self.apply(b"clearselectors")
            self.apply(b"-@all")
        else:
            self.root.apply(op)

    def check_password(self, password: bytes) -> bool:
        """ACLCheckUserCredentials, once the user is known: on, and nopass or a match."""
        if not self.enabled:
            return False
        if self.nopass:
            return True
        hashed = hash_password(password)
        found = False
        for each in self.passwords:
            found |= secrets.compare_digest(each, hashed)  # no early exit, as Redis's
        return found

    def flags(self) -> list[bytes]:
        """The flags in Redis's order (``ACLUserFlags``)."""
        flags = [b"on" if self.enabled else b"off"]
        if self.nopass:
            flags.append(b"nopass")
        if self.sanitize == "skip-sanitize-payload":
            flags.append(b"skip-sanitize-payload")
        elif self.sanitize == "sanitize-payload":
            flags.append(b"sanitize-payload")
        return flags

    def describe(self) -> bytes:
        """ACLDescribeUser: what ACL LIST prints after ``user <name>``."""
        words = self.flags() + [b"#" + each.encode() for each in self.passwords]
        words.append(self.root.describe())
        text = b" ".join(words)
        for selector in self.selectors[1:]:
            text += b" (" + selector.describe() + b")"
        return text

    def check(self, name: str, argv: list[bytes]) -> tuple[int, int]:
        """ACLCheckAllUserCommandPerm for a command (full name) and its line: (0, 0) when
        allowed, else (reason, position of the key or channel) of the relevant refusal."""
        command = COMMANDS.get(name)
        if command is None:
            return 0, 0  # a command of ours Redis lacks (CLIENT SETINFO): as its container
        keys = key_references(command, argv) if command.key_specs or name in _GETKEYS else []
        reason, last = DENIED_CMD, 0
        for selector in self.selectors:
            denied, position = selector.check(command, argv, keys)
            if not denied:
                return 0, 0
            if denied > reason or (denied == reason and position > last):
                reason, last = denied, position
        return reason, last

    def channel_allowed(self, channel: bytes, literal: bool) -> bool:
        """ACLUserCheckChannelPerm."""
        for selector in self.selectors:
            if selector.all_channels or _channel_allowed(selector.channels, channel, literal):
                return True
        return False


def merge_selectors(ops: list[bytes]) -> list[bytes] | int:
    """ACLMergeSelectorArguments: a selector spread over several arguments joined into
    one; the index of the opening one when a parenthesis is not closed."""
    merged: list[bytes] = []
    opened = -1
    current = b""
    for index, op in enumerate(ops):
        if opened < 0 and op[:1] == b"(" and op[-1:] != b")":
            current = op
            opened = index
            continue
        if opened >= 0:
            current += b" " + op
            if op[-1:] == b")":
                merged.append(current)
                opened = -1
            continue
        merged.append(op)
    return opened if opened >= 0 else merged


def split_args(text: bytes) -> list[bytes]:
    """sdssplitargs for a selector's inside: words split on spaces (quotes kept simple:
    a word in double or single quotes is taken without them)."""
    words = []
    for word in text.split():
        if len(word) >= 2 and word[:1] == word[-1:] and word[:1] in (b'"', b"'"):
            word = word[1:-1]
        words.append(word)
    return words


def setuser_error(op: bytes, message: str) -> bytes:
    """ACL SETUSER's error reply for a rule that failed."""
    # the rule is the client's bytes: a line break in it must not end the reply early
    return error_bytes(b"ERR Error in ACL SETUSER modifier '" + op + b"': " + message.encode())


class Registry:
    """Every user by name; the default user is always there (and always the same object)."""

    def __init__(self) -> None:
        self.default = User.default()
        self.users: dict[bytes, User] = {b"default": self.default}

    def get(self, name: bytes) -> User | None:
        return self.users.get(name)

    def names(self) -> list[bytes]:
        return sorted(self.users)

    def set_user(self, name: bytes, ops: list[bytes]) -> tuple[User | None, bytes | None]:
        """ACL SETUSER: (the user, None) once every rule applied, else (None, its error
        reply) and nothing changed."""
        if _has_spaces(name):
            return None, b"-ERR Usernames can't contain spaces or null characters\r\n"
        merged = merge_selectors(ops)
        if isinstance(merged, int):
            opening = ops[merged]
            return (
                None,
                error_bytes(
                    b"ERR Unmatched parenthesis in acl selector starting at '%b'." % opening
                ),
            )
        existing = self.users.get(name)
        staged = existing.copy() if existing is not None else User(name)
        for op in merged:
            try:
                staged.apply(op)
            except AclError as problem:
                return None, setuser_error(op, str(problem))
        if existing is None:
            existing = self.users[name] = User(name)
        existing.take(staged)
        return existing, None

    def delete(self, name: bytes) -> User | None:
        if name == b"default":
            return None
        return self.users.pop(name, None)

    def lines(self) -> list[bytes]:
        """ACL LIST, and ACL SAVE's file: one ``user <name> <rules>`` per user, by name."""
        return [b"user " + name + b" " + self.users[name].describe() for name in self.names()]

    def replace(self, users: dict[bytes, User], keep: bool = True) -> list[User]:
        """Take a whole new set of users: the users gone are returned (their clients must
        go). The default user keeps its identity and takes the new rules; with ``keep`` (the
        configured users at start) so does any user of the same name; without (ACL LOAD,
        which in Redis 7.0 frees every other user) every other user is gone."""
        gone = [
            user
            for name, user in self.users.items()
            if name != b"default" and (name not in users or not keep)
        ]
        fresh: dict[bytes, User] = {}
        for name, user in users.items():
            kept = self.users.get(name) if keep or name == b"default" else None
            if kept is None:
                fresh[name] = user
            else:
                kept.take(user)
                fresh[name] = kept
        if b"default" not in fresh:
            self.default.take(User.default())
            fresh[b"default"] = self.default
        self.users = fresh
        return gone


def parse_user_lines(lines: list[bytes], source: str) -> dict[bytes, User] | str:
    """ACLLoadFromFile's reading of ``user <name> <rules>`` lines: the users, or every
    problem found in Redis's words (nothing is taken then)."""
    errors = ""
    users: dict[bytes, User] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip(b" \t\r\n")
        if not line:
            continue
        words = [word for word in line.split(b" ") if word]
        if not words:
            continue
        if words[0] != b"user" or len(words) < 2:
            errors += f"{source}:{number} should start with user keyword followed by the username. "
            continue
        name = words[1]
        if name in users:
            shown = name.decode("utf-8", "replace")
            errors += f"WARNING: Duplicate user '{shown}' found on line {number}. "
            continue
        user = users[name] = User(name)
        merged = merge_selectors(words[2:])
        if isinstance(merged, int):
            errors += f"{source}:{number}: Unmatched parenthesis in selector definition."
            continue
        for op in merged:
            try:
                user.apply(op.strip(b"\t\r\n"))
            except AclError as problem:
                errors += f"{source}:{number}: {problem}. "
        user.refresh()
    if errors:
        return (
            errors + "WARNING: ACL errors detected, no change to the previously active ACL "
            "rules was performed"
        )
    return users


def configured_users(definitions: list[str]) -> dict[bytes, User] | str:
    """Users from the configuration (``user`` entries, as redis.conf's ``user`` lines):
    ACLLoadConfiguredUsers; a configured ``default`` starts from ``reset``. A problem is
    returned as the message that stops the start."""
    users: dict[bytes, User] = {}
    for definition in definitions:
        words = definition.encode().split()
        if not words:
            return "a user entry needs a name"
        name = words[0]
        if name in users:
            return (
                f"Error in user declaration '{definition}': Duplicate user found. A user can "
                "only be defined once in config files"
            )
        user = User.default() if name == b"default" else User(name)
        if name == b"default":
            user.apply(b"reset")
        merged = merge_selectors(words[1:])
        if isinstance(merged, int):
            return f"Error in user declaration '{definition}': Unmatched parenthesis"
        for op in merged:
            try:
                user.apply(op)
            except AclError as problem:
                return (
                    f"Error loading ACL rule '{op.decode('utf-8', 'replace')}' for the user "
                    f"named '{name.decode('utf-8', 'replace')}': {problem}"
                )
        user.refresh()
        users[name] = user
    return users


def generate_password(bits: int) -> bytes:
    """ACL GENPASS: ``bits`` random bits as hex, rounded up to whole hex digits."""
    chars = (bits + 3) // 4
    return secrets.token_hex((chars + 1) // 2)[:chars].encode()


# -- the log ---------------------------------------------------------------------------------

#: Entries within this many milliseconds of each other may be grouped into one.
_GROUPING_US = 60_000_000
#: acllog-max-len's default.
LOG_MAX_LEN = 128


@dataclass
class LogEntry:
    count: int
    reason: int
    context: str
    object: bytes
    username: bytes
    #: When it was last updated, in microseconds (Redis keeps milliseconds: the finer
    #: clock orders entries of several acceptors made within one millisecond).
    created_us: int
    client_info: bytes


class AclLog:
    """ACL LOG: the newest entries first; an entry like one of the last ten (same reason,
    context, object and user, within a minute) bumps that one's count instead."""

    def __init__(self, max_len: int = LOG_MAX_LEN) -> None:
        self.entries: list[LogEntry] = []
        self.max_len = max_len

    def add(
        self,
        reason: int,
        context: str,
        obj: bytes,
        username: bytes,
        client_info: bytes,
        now_us: int,
    ) -> None:
        for index, entry in enumerate(self.entries[:10]):
            if (
                entry.reason == reason
                and entry.context == context
                and abs(entry.created_us - now_us) <= _GROUPING_US
                and entry.object == obj
                and entry.username == username
            ):
                del self.entries[index]
                entry.count += 1
                entry.created_us = now_us
                entry.client_info = client_info
                self.entries.insert(0, entry)
                return
        self.entries.insert(0, LogEntry(1, reason, context, obj, username, now_us, client_info))
        del self.entries[self.max_len :]

    def reset(self) -> None:
        self.entries.clear()


def startup_problem(definitions: list[str], aclfile: str) -> str | None:
    """Why the server must not start with these configured users or this ACL file (a
    rule that does not apply, a file that does not load), as Redis stops: or None."""
    users = configured_users(definitions)
    if isinstance(users, str):
        return users
    if not aclfile:
        return None
    try:
        with open(aclfile, "rb") as handle:
            lines = handle.read().split(b"\n")
    except OSError as problem:
        return (
            "Aborting Redis startup because of ACL errors: Error loading ACLs, opening file "
            f"'{aclfile}': {problem.strerror}"
        )
    loaded = parse_user_lines(lines, aclfile)
    if isinstance(loaded, str):
        return f"Aborting Redis startup because of ACL errors: {loaded}"
    return None


def merge_logs(logs: list[list[tuple]]) -> list[tuple]:
    """Several acceptors' ACL LOG entries (``(count, reason, context, object, username,
    created_us, client_info)``, each log newest first) as one log, newest first: added
    oldest first into one :class:`AclLog`-like list, an entry like one of the ten newest
    within a minute grouped into it (its count added, its time and client taken), as
    Redis adds each refusal to its log."""
    merged: list[list] = []  # newest first
    # oldest first; within one log, entries of one millisecond keep their order
    added = sorted(
        ((entry[5], place, entry) for log in logs for place, entry in enumerate(reversed(log))),
        key=lambda item: item[:2],
    )
    for _created, _place, entry in added:
        count, reason, context, obj, username, created, info = entry
        for index, newer in enumerate(merged[:10]):
            same = (newer[1], newer[2], newer[3], newer[4]) == (reason, context, obj, username)
            if same and abs(created - newer[5]) <= _GROUPING_US:
                del merged[index]
                newer[0] += count
                newer[5], newer[6] = created, info
                merged.insert(0, newer)
                break
        else:
            merged.insert(0, list(entry))
    return [tuple(entry) for entry in merged]
