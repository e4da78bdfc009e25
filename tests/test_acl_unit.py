"""The ACL's pure parts (shardserver/acl.py): rules, their errors, LIST's canonical strings,
key, channel and command checks, selectors, the LOG's grouping, the ACL file's reading.

The expected strings were printed by redis-server 7.0.15 for the same rules (with the
single-command rules after the categories in name order: Redis prints those in its command
table's hash order, which changes with every start).
"""

from __future__ import annotations

import pytest

from shardserver import acl


def user_of(*ops: bytes, name: bytes = b"u") -> acl.User:
    registry = acl.Registry()
    user, problem = registry.set_user(name, list(ops))
    assert problem is None, problem
    return user


@pytest.mark.parametrize(
    ("ops", "line"),
    [
        ((), b"off resetchannels -@all"),
        ((b"reset",), b"off sanitize-payload resetchannels -@all"),
        (
            (b"on", b">pw", b"~foo*", b"%R~bar*", b"&chan*", b"+get", b"+set", b"-@dangerous"),
            b"on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~foo* "
            b"%R~bar* resetchannels &chan* -@all +get +set",
        ),
        ((b"+@all", b"-get", b"-set", b"-@hash"), b"off resetchannels +@all -@hash -get -set"),
        (
            (b"-@all", b"+@string", b"-append", b"+select|0"),
            b"off resetchannels -@all +@string -append +select|0",
        ),
        ((b"+@all", b"-@dangerous", b"~*", b"&*"), b"off ~* &* +@all -@dangerous"),
        ((b"+client", b"-client|kill"), b"off resetchannels -@all +client -client|kill"),
        ((b"%RW~x", b"%R~y", b"%W~y", b"%W~z"), b"off ~x ~y %W~z resetchannels -@all"),
        (
            (b"on", b"nopass", b"(~x* +hget)", b"(&n* +publish)"),
            b"on nopass resetchannels -@all "
            b"(~x* resetchannels -@all +hget) (resetchannels &n* -@all +publish)",
        ),
        ((b"+@read", b"+@write"), b"off resetchannels -@all +@write +@read"),
    ],
)
def test_list_prints_rules_as_redis(ops: tuple[bytes, ...], line: bytes) -> None:
    assert user_of(*ops).describe() == line


def test_the_default_user_and_a_configured_one() -> None:
    registry = acl.Registry()
    assert registry.lines() == [b"user default on nopass ~* &* +@all"]
    assert registry.default.unrestricted
    users = acl.configured_users(["default on nopass ~* &* +@all", "alice on >pw ~a* +get"])
    assert isinstance(users, dict)
    # a configured default user starts from "reset", which sets sanitize-payload
    assert users[b"default"].describe() == b"on nopass sanitize-payload ~* &* +@all"
    assert not users[b"alice"].unrestricted


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (b"bogus", "Syntax error"),
        (b"%~x", "Syntax error"),
        (b"+nosuch", "Unknown command or category name in ACL"),
        (b"+@nope", "Unknown command or category name in ACL"),
        (b"-select|0", "Unknown command or category name in ACL"),
        (b"+config|get|x", "Allowing first-arg of a subcommand is not supported"),
        (b"+config|", "Syntax error"),
        (
            b"#abc",
            "The password hash must be exactly 64 characters and contain only lowercase "
            "hexadecimal characters",
        ),
        (b"<zz", "The password you are trying to remove from the user does not exist"),
    ],
)
def test_rule_errors_are_redis_texts(op: bytes, message: str) -> None:
    _user, problem = acl.Registry().set_user(b"u", [op])
    assert problem == b"-ERR Error in ACL SETUSER modifier '" + op + b"': " + message.encode() + (
        b"\r\n"
    )


def test_a_failed_setuser_changes_nothing() -> None:
    registry = acl.Registry()
    registry.set_user(b"u", [b"on", b"+get"])
    _user, problem = registry.set_user(b"u", [b"+set", b"~*", b"~a"])
    assert problem is not None and b"Adding a pattern after the * pattern" in problem
    assert registry.get(b"u").describe() == b"on resetchannels -@all +get"
    _user, problem = registry.set_user(b"u", [b"(~a", b"+get"])
    assert problem == b"-ERR Unmatched parenthesis in acl selector starting at '(~a'.\r\n"
    _user, problem = registry.set_user(b"a b", [])
    assert problem == b"-ERR Usernames can't contain spaces or null characters\r\n"


def test_selector_spread_over_arguments_is_merged() -> None:
    assert acl.merge_selectors([b"on", b"(~a", b"+get)", b"off"]) == [b"on", b"(~a +get)", b"off"]
    assert acl.merge_selectors([b"(~a", b"+get"]) == 0


def test_passwords_and_flags() -> None:
    user = user_of(b"on", b">one", b">two", b"<one")
    assert user.check_password(b"two") and not user.check_password(b"one")
    assert user.passwords == [acl.hash_password(b"two")]
    user.apply(b"off")
    assert not user.check_password(b"two")  # a disabled user cannot log in
    user.apply(b"on")
    user.apply(b"nopass")
    assert user.check_password(b"anything") and user.passwords == []
    user.apply(b"resetpass")
    assert not user.check_password(b"anything")
    user.apply(b"#" + acl.hash_password(b"three").encode())
    assert user.check_password(b"three")


def test_commands_categories_and_first_args() -> None:
    user = user_of(b"~*", b"+@string", b"-append", b"+select|0", b"+config|get")
    assert user.check("get", [b"get", b"k"]) == (0, 0)
    assert user.check("append", [b"append", b"k", b"v"]) == (acl.DENIED_CMD, 0)
    assert user.check("select", [b"select", b"0"])[0] != acl.DENIED_CMD
    assert user.check("select", [b"select", b"1"]) == (acl.DENIED_CMD, 0)
    assert user.check("config|get", [b"config", b"get", b"x"]) == (0, 0)
    assert user.check("config|set", [b"config", b"set", b"x", b"y"]) == (acl.DENIED_CMD, 0)
    # AUTH, HELLO, QUIT, RESET are no_auth: every user may run them
    assert user.check("auth", [b"auth", b"x"]) == (0, 0)


def test_keys_by_pattern_and_permission() -> None:
    user = user_of(b"+@all", b"~app:*", b"%R~ro:*", b"%W~wo:*")
    assert user.check("get", [b"get", b"app:1"]) == (0, 0)
    assert user.check("get", [b"get", b"other"]) == (acl.DENIED_KEY, 1)
    assert user.check("get", [b"get", b"ro:1"]) == (0, 0)
    assert user.check("set", [b"set", b"ro:1", b"v"]) == (acl.DENIED_KEY, 1)
    assert user.check("set", [b"set", b"wo:1", b"v"]) == (0, 0)
    # SET ... GET also reads: a write-only pattern is not enough
    assert user.check("set", [b"set", b"wo:1", b"v", b"GET"]) == (acl.DENIED_KEY, 1)
    assert user.check("get", [b"get", b"wo:1"]) == (acl.DENIED_KEY, 1)
    # every key of a multi-key command; the first refused is reported
    assert user.check("mset", [b"mset", b"app:1", b"a", b"x", b"b"]) == (acl.DENIED_KEY, 3)
    # LMOVE reads and writes its source, writes its destination
    assert user.check("lmove", [b"lmove", b"ro:1", b"app:2", b"LEFT", b"RIGHT"])[0]
    # numkeys commands: the keys named by their count
    line = [b"zunionstore", b"wo:d", b"2", b"ro:a", b"app:b"]
    assert user.check("zunionstore", line) == (0, 0)
    line = [b"eval", b"return 1", b"1", b"other"]
    assert user.check("eval", line) == (acl.DENIED_KEY, 3)
    # SORT's STORE destination is written
    assert user.check("sort", [b"sort", b"ro:1", b"STORE", b"ro:2"]) == (acl.DENIED_KEY, 3)
    assert user.check("sort", [b"sort", b"ro:1", b"STORE", b"wo:2"]) == (0, 0)


def test_channels_and_psubscribe_literal_patterns() -> None:
    user = user_of(b"+@all", b"~*", b"resetchannels", b"&news.*")
    assert user.check("publish", [b"publish", b"news.1", b"m"]) == (0, 0)
    assert user.check("publish", [b"publish", b"sport", b"m"]) == (acl.DENIED_CHANNEL, 1)
    assert user.check("subscribe", [b"subscribe", b"news.a", b"x"]) == (acl.DENIED_CHANNEL, 2)
    # a pattern subscription must be one of the user's patterns, as written
    assert user.check("psubscribe", [b"psubscribe", b"news.*"]) == (0, 0)
    assert user.check("psubscribe", [b"psubscribe", b"news.1*"]) == (acl.DENIED_CHANNEL, 1)
    assert user.check("unsubscribe", [b"unsubscribe", b"sport"]) == (0, 0)


def test_selectors_any_may_allow_and_the_relevant_refusal_is_reported() -> None:
    user = user_of(b"+get", b"~a*", b"(+set ~b*)")
    assert user.check("get", [b"get", b"a1"]) == (0, 0)
    assert user.check("set", [b"set", b"b1", b"v"]) == (0, 0)
    assert user.check("set", [b"set", b"a1", b"v"]) == (acl.DENIED_KEY, 1)  # key beats command
    assert user.check("hget", [b"hget", b"a1", b"f"]) == (acl.DENIED_CMD, 0)
    assert not user.unrestricted
    user.apply(b"clearselectors")
    user.refresh()
    assert user.check("set", [b"set", b"b1", b"v"]) == (acl.DENIED_CMD, 0)


def test_unrestricted_only_with_every_command_key_and_channel() -> None:
    assert user_of(b"+@all", b"~*", b"&*").unrestricted
    assert not user_of(b"+@all", b"~*").unrestricted
    assert not user_of(b"+@all", b"-get", b"~*", b"&*").unrestricted
    assert user_of(b"+get", b"(+@all ~* &*)").unrestricted


def test_categories_as_acl_cat_lists_them() -> None:
    assert acl.category_commands("nosuch") is None
    assert "get" in acl.category_commands("read")
    assert "config|get" in acl.category_commands("admin")
    assert "set" not in acl.category_commands("read")


def test_acl_file_lines_and_their_errors() -> None:
    users = acl.parse_user_lines([b"user a on >x ~* +@all", b"", b"user b (~x +get)"], "f.acl")
    assert isinstance(users, dict) and sorted(users) == [b"a", b"b"]
    assert users[b"b"].describe() == b"off resetchannels -@all (~x resetchannels -@all +get)"
    problem = acl.parse_user_lines([b"user a bogus", b"nouser x", b"user a on"], "f.acl")
    assert problem == (
        "f.acl:1: Syntax error. f.acl:2 should start with user keyword followed by the "
        "username. WARNING: Duplicate user 'a' found on line 3. WARNING: ACL errors detected, "
        "no change to the previously active ACL rules was performed"
    )


def test_printed_rules_read_back_the_same() -> None:
    user = user_of(b"on", b">p", b"%R~r*", b"&c", b"+@hash", b"-hdel", b"+select|0", b"(~x +get)")
    line = b"user u " + user.describe()
    again = acl.parse_user_lines([line], "f")[b"u"]
    assert again.describe() == user.describe()


def test_log_groups_like_entries_of_the_last_minute() -> None:
    log = acl.AclLog(max_len=3)
    log.add(acl.DENIED_CMD, "toplevel", b"get", b"u", b"info1", 1_000_000)
    log.add(acl.DENIED_CMD, "toplevel", b"get", b"u", b"info2", 2_000_000)
    assert len(log.entries) == 1 and log.entries[0].count == 2
    assert log.entries[0].client_info == b"info2"
    log.add(acl.DENIED_CMD, "toplevel", b"get", b"u", b"info3", 63_000_000)
    assert [entry.count for entry in log.entries] == [1, 2]
    for name in (b"a", b"b", b"c"):
        log.add(acl.DENIED_KEY, "multi", name, b"u", b"i", 70_000_000)
    assert [entry.object for entry in log.entries] == [b"c", b"b", b"a"]


def test_genpass_length() -> None:
    assert len(acl.generate_password(256)) == 64
    assert len(acl.generate_password(5)) == 2
    assert all(chr(c) in "0123456789abcdef" for c in acl.generate_password(128))


def test_keys_whose_flags_depend_on_the_arguments() -> None:
    command = acl.lookup("set")
    assert acl.key_references(command, [b"set", b"k", b"v"]) == [(1, acl.WRITE)]
    assert acl.key_references(command, [b"set", b"k", b"v", b"GET"]) == [(1, acl.READ | acl.WRITE)]
    bitfield = acl.lookup("bitfield")
    assert acl.key_references(bitfield, [b"bitfield", b"k", b"GET", b"u8", b"0"]) == [(1, acl.READ)]
    line = [b"bitfield", b"k", b"INCRBY", b"u8", b"0", b"1"]
    assert acl.key_references(bitfield, line) == [(1, acl.READ | acl.WRITE)]
    migrate = acl.lookup("migrate")
    line = [b"migrate", b"h", b"1", b"", b"0", b"5", b"KEYS", b"a", b"b"]
    assert [position for position, _ in acl.key_references(migrate, line)] == [7, 8]
    # a keyword spec (GEORADIUS ... STORE dest), and a numkeys one past the line's end
    georadius = acl.lookup("georadius")
    line = [b"georadius", b"g", b"0", b"0", b"1", b"km", b"STORE", b"dest"]
    assert acl.key_references(georadius, line) == [(1, acl.READ), (7, acl.WRITE)]
    assert acl.key_references(acl.lookup("zunionstore"), [b"zunionstore", b"d", b"5", b"a"]) == [
        (1, acl.WRITE),
        (3, acl.READ),
    ]


def test_sort_options_need_every_key() -> None:
    some = user_of(b"+@all", b"~l*")
    assert acl.sort_option_refusal(some, [b"sort", b"l", b"BY", b"w_*"]).startswith(b"-ERR BY")
    assert acl.sort_option_refusal(some, [b"sort", b"l", b"GET", b"#"]).startswith(b"-ERR GET")
    assert acl.sort_option_refusal(some, [b"sort", b"l", b"BY", b"nosort"]) is None
    assert acl.sort_option_refusal(some, [b"sort", b"l", b"LIMIT", b"0", b"1", b"ASC"]) is None
    every = user_of(b"+@all", b"%R~*")
    assert acl.sort_option_refusal(every, [b"sort", b"l", b"BY", b"w_*"]) is None


def test_a_load_replaces_every_user_but_the_default_one() -> None:
    registry = acl.Registry()
    kept, _ = registry.set_user(b"kept", [b"on", b"+get"])
    again = {b"kept": acl.User(b"kept")}
    assert registry.replace(dict(again)) == [] and registry.get(b"kept") is kept
    assert registry.replace(dict(again), keep=False) == [kept]
    assert registry.get(b"kept") is not kept
    assert registry.get(b"default") is registry.default  # its clients keep their user


def test_logs_of_several_acceptors_merge_newest_first_and_group() -> None:
    first = [(2, acl.DENIED_KEY, "toplevel", b"k", b"u", 5_000_000, b"a")]
    second = [
        (1, acl.DENIED_KEY, "toplevel", b"k", b"u", 4_000_000, b"b"),
        (1, acl.DENIED_CMD, "toplevel", b"get", b"u", 3_000_000, b"c"),
        (1, acl.DENIED_KEY, "toplevel", b"k", b"u", (5 - 70) * 1_000_000, b"d"),
    ]
    assert acl.merge_logs([first, second]) == [
        (3, acl.DENIED_KEY, "toplevel", b"k", b"u", 5_000_000, b"a"),
        (1, acl.DENIED_CMD, "toplevel", b"get", b"u", 3_000_000, b"c"),
        (1, acl.DENIED_KEY, "toplevel", b"k", b"u", (5 - 70) * 1_000_000, b"d"),
    ]
