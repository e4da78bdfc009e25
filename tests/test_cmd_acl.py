"""ACL users on the real server, at 1 and 4 shards: each rule kind allows what it should and
refuses the rest (through redis-py and through ``redis-cli --user --pass``), commands over
several shards refused whole, MULTI, scripts, pub/sub channels, the ACL LOG, the ACL file,
``user`` entries in the configuration, AUTH and HELLO AUTH, users on two acceptors, and
the replies of the ACL command compared with redis-server 7.0 byte for byte.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import HOST, ServerPool, ServerProcess, clone_command

from shardserver.slots import shard_table, slot_for_key

NOPERM_KEY = "this user has no permissions to access one of the keys used as arguments"
NOPERM_CHANNEL = "this user has no permissions to access one of the channels used as arguments"


def noperm_command(name: str) -> str:
    return f"this user has no permissions to run the '{name}' command"


@pytest.fixture
def admin(clone: ServerProcess) -> Iterator[redis.Redis]:
    """The default user's client; the users a test made are deleted after it."""
    client = clone.client()
    yield client
    for name in client.acl_users():
        if name != "default":
            client.acl_deluser(name)
    client.flushall()


def as_user(server: ServerProcess, name: str, password: str = "pw", **kwargs) -> redis.Redis:
    return server.client(username=name, password=password, single_connection_client=True, **kwargs)


def cli(server: ServerProcess, user: str, password: str, *args: str) -> str:
    """redis-cli --user --pass: its output (errors included), stripped."""
    done = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(server.port), "--user", user, "--pass", password]
        + ["--no-auth-warning", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (done.stdout + done.stderr).strip()


def keys_on_different_shards(shards: int, prefix: str, count: int = 2) -> list[str]:
    """Keys with ``prefix`` on ``count`` different shards (any keys with one shard)."""
    table = shard_table(shards)
    found: dict[int, str] = {}
    i = 0
    while len(found) < min(count, shards):
        found.setdefault(table[slot_for_key(f"{prefix}{i}".encode())], f"{prefix}{i}")
        i += 1
    names = list(found.values())
    while len(names) < count:
        names.append(f"{prefix}x{len(names)}")
    return names


def shard_count(server: ServerProcess) -> int:
    with server.client() as client:
        return int(client.info("shards")["shards"])


# -- each rule kind -----------------------------------------------------------------------


RULE_CASES = [
    # (rules, an allowed command, a refused command, the refusal)
    (["+get", "~*"], ["GET", "k"], ["SET", "k", "v"], noperm_command("set")),
    (["+@all", "-set", "~*"], ["GET", "k"], ["SET", "k", "v"], noperm_command("set")),
    (["+@read", "~*"], ["HGET", "k", "f"], ["HSET", "k", "f", "v"], noperm_command("hset")),
    (["+@all", "-@write", "~*"], ["LLEN", "k"], ["LPUSH", "k", "v"], noperm_command("lpush")),
    (["allcommands", "~*"], ["LPUSH", "k", "v"], ["PUBLISH", "c", "m"], NOPERM_CHANNEL),
    (["nocommands", "+ping"], ["PING"], ["GET", "k"], noperm_command("get")),
    (["+config|get"], ["CONFIG", "GET", "hz"], ["CONFIG", "SET", "hz", "10"], None),
    (["+select|0"], ["SELECT", "0"], ["SELECT", "1"], noperm_command("select")),
    (["+client", "-client|kill"], ["CLIENT", "ID"], ["CLIENT", "KILL", "ID", "999"], None),
    (["+@all", "~app:*"], ["GET", "app:1"], ["GET", "other"], NOPERM_KEY),
    (["+@all", "allkeys", "resetkeys", "~b*"], ["GET", "b1"], ["GET", "a1"], NOPERM_KEY),
    (["+@all", "%R~ro:*"], ["GET", "ro:1"], ["SET", "ro:1", "v"], NOPERM_KEY),
    (["+@all", "%W~wo:*"], ["SET", "wo:1", "v"], ["GET", "wo:1"], NOPERM_KEY),
    (["+@all", "%RW~rw:*"], ["INCR", "rw:1"], ["INCR", "x:1"], NOPERM_KEY),
    (["+@all", "~*", "&news.*"], ["PUBLISH", "news.1", "m"], ["PUBLISH", "x", "m"], NOPERM_CHANNEL),
    (["+@all", "allchannels"], ["PUBLISH", "any", "m"], ["GET", "k"], NOPERM_KEY),
    (["+@all", "~*", "&*", "resetchannels"], ["GET", "k"], ["PUBLISH", "a", "m"], NOPERM_CHANNEL),
    (["-@all", "(+get ~a*)", "(+set ~b*)"], ["SET", "b1", "v"], ["SET", "a1", "v"], NOPERM_KEY),
    (["+get", "~*", "(+set ~b*)", "clearselectors"], ["GET", "b"], ["SET", "b", "v"], None),
    (["+@all", "~*", "reset", "on", "nopass", "+get", "~*"], ["GET", "k"], ["SET", "k", "v"], None),
]


@pytest.mark.parametrize(("rules", "allowed", "refused", "why"), RULE_CASES)
def test_each_rule_allows_and_refuses(
    clone: ServerProcess,
    admin: redis.Redis,
    rules: list[str],
    allowed: list[str],
    refused: list[str],
    why: str | None,
) -> None:
    admin.acl_setuser("ruled", reset=True)
    assert admin.execute_command("ACL", "SETUSER", "ruled", "on", ">pw", *rules) == b"OK"
    if "reset" in rules:  # the rules after reset give the password back: nopass
        admin.execute_command("ACL", "SETUSER", "ruled", ">pw")
    user = as_user(clone, "ruled")
    user.execute_command(*allowed)
    refusal = why or noperm_command(_full_name(refused))
    with pytest.raises(redis.exceptions.NoPermissionError, match=re.escape(refusal)):
        user.execute_command(*refused)
    # the same through redis-cli
    assert "NOPERM" not in cli(clone, "ruled", "pw", *allowed)
    assert cli(clone, "ruled", "pw", *refused) == f"NOPERM {refusal}"
    user.close()


def _full_name(argv: list[str]) -> str:
    if argv[0].upper() in ("CONFIG", "CLIENT", "OBJECT"):
        return f"{argv[0].lower()}|{argv[1].lower()}"
    return argv[0].lower()


def test_default_user_keeps_everything(clone: ServerProcess, admin: redis.Redis) -> None:
    assert admin.acl_whoami() == "default"
    assert admin.set("k", "v") and admin.get("k") == b"v"
    assert admin.acl_list() == ["user default on nopass ~* &* +@all"]


# -- multi-shard commands, MULTI, scripts, channels ----------------------------------------


def test_a_command_over_several_shards_is_refused_whole(
    clone: ServerProcess, admin: redis.Redis
) -> None:
    shards = shard_count(clone)
    ok, bad = keys_on_different_shards(shards, "ok:", 1)[0], "bad:{x}"
    admin.execute_command("ACL", "SETUSER", "multi", "on", ">pw", "+@all", "~ok:*")
    user = as_user(clone, "multi")
    others = keys_on_different_shards(shards, "ok:", 4)
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        user.mset({others[0]: "1", others[1]: "2", bad: "3", others[2]: "4"})
    assert admin.exists(*others, bad) == 0  # nothing written, on any shard
    admin.set(ok, "src")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        user.rename(ok, bad)
    assert admin.get(ok) == b"src" and not admin.exists(bad)
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        user.delete(others[1], bad)
    user.mset({others[0]: "1", others[1]: "2"})
    assert admin.mget(others[0], others[1]) == [b"1", b"2"]
    user.close()


def test_multi_refuses_at_queue_time(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "tx", "on", ">pw", "+@all", "~ok*")
    raw = clone.raw()
    assert raw.command("AUTH", "tx", "pw") == b"+OK\r\n"
    assert raw.command("MULTI") == b"+OK\r\n"
    assert raw.command("SET", "ok1", "v") == b"+QUEUED\r\n"
    assert raw.command("SET", "bad", "v") == b"-NOPERM " + NOPERM_KEY.encode() + b"\r\n"
    assert raw.command("EXEC") == (
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )
    assert not admin.exists("ok1", "bad")
    raw.close()


def test_exec_checks_again_rules_changed_after_queueing(
    clone: ServerProcess, admin: redis.Redis
) -> None:
    admin.execute_command("ACL", "SETUSER", "late", "on", ">pw", "+@all", "~*", "&*")
    raw = clone.raw()
    assert raw.command("AUTH", "late", "pw") == b"+OK\r\n"
    raw.command("MULTI")
    for command in (["SET", "k", "v"], ["GET", "zz"], ["PUBLISH", "ch", "m"], ["PING"]):
        assert raw.command(*command) == b"+QUEUED\r\n"
    admin.execute_command("ACL", "SETUSER", "late", "-set", "resetkeys", "~k", "resetchannels")
    changed = (
        b"-NOPERM ACLs rules changed between the moment the transaction was accumulated and "
        b"the EXEC call. This command is no longer allowed for the following reason: "
    )
    assert raw.command("EXEC") == (
        b"*4\r\n"
        + changed
        + b"no permission to execute the command or subcommand\r\n"
        + changed
        + b"no permission to touch the specified keys\r\n"
        + changed
        + b"no permission to access one of the channels used as arguments\r\n+PONG\r\n"
    )
    assert not admin.exists("k")
    raw.close()


def test_scripts_check_every_call(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command(
        "ACL", "SETUSER", "lua", "on", ">pw", "+eval", "+evalsha", "+get", "~k*", "&c*"
    )
    admin.execute_command("ACL", "SETUSER", "lua", "+publish")
    user = as_user(clone, "lua")
    admin.set("k1", "v1")
    assert user.eval("return redis.call('get', KEYS[1])", 1, "k1") == b"v1"
    cases = [
        ("return redis.call('set', 'k1', 'x')", "can't run this command or subcommand"),
        ("return redis.call('get', 'zz')", "can't access at least one of the keys"),
        ("return redis.call('publish', 'zz', 'm')", "can't publish to the channel"),
    ]
    for body, text in cases:
        with pytest.raises(redis.exceptions.ResponseError, match=re.escape(text)):
            user.eval(body, 0)
    assert admin.get("k1") == b"v1"
    assert user.eval("return redis.acl_check_cmd('get', 'k1')", 0) == 1
    assert user.eval("return redis.acl_check_cmd('set', 'k1', 'v')", 0) is None
    assert admin.eval("return redis.acl_check_cmd('set', 'k1', 'v')", 0) == 1
    # a script learned on its keys' shard (the default user's fast path) is still checked
    body = "redis.call('get', KEYS[1]); return redis.call('set', KEYS[1], ARGV[1])"
    for _ in range(3):
        admin.eval(body, 1, "k2", "mine")
    with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
        user.eval(body, 1, "k2", "theirs")
    assert admin.get("k2") == b"mine"
    user.close()


def test_channels_for_publish_and_subscriptions(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "ps", "on", ">pw", "+@all", "~*", "&news.*")
    user = as_user(clone, "ps")
    assert user.publish("news.1", "m") == 0
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_CHANNEL):
        user.publish("sport", "m")
    raw = clone.raw()
    raw.command("AUTH", "ps", "pw")
    refused = b"-NOPERM " + NOPERM_CHANNEL.encode() + b"\r\n"
    assert raw.command("SUBSCRIBE", "news.1", "sport") == refused
    assert raw.command("PSUBSCRIBE", "news.1*") == refused  # patterns must match as written
    assert raw.call("PSUBSCRIBE", "news.*") == [b"psubscribe", b"news.*", 1]
    assert raw.call("SUBSCRIBE", "news.2") == [b"subscribe", b"news.2", 2]
    # revoking the channel disconnects the subscriber, as Redis does
    admin.execute_command("ACL", "SETUSER", "ps", "resetchannels", "&other")
    assert raw.read_until_closed() == b""
    user.close()


def test_sort_by_and_get_need_every_key(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "sorter", "on", ">pw", "+@all", "~l*")
    admin.rpush("l1", 3, 1, 2)
    user = as_user(clone, "sorter")
    for option, pattern in (("BY", "w_*"), ("GET", "#"), ("GET", "w_*")):
        with pytest.raises(redis.exceptions.ResponseError) as problem:
            user.execute_command("SORT", "l1", option, pattern)
        text = f"{option} option of SORT denied due to insufficient ACL permissions."
        assert str(problem.value) == text
    assert user.execute_command("SORT", "l1", "BY", "nosort") == [b"3", b"1", b"2"]
    admin.execute_command("ACL", "SETUSER", "sorter", "%R~*")
    assert user.execute_command("SORT", "l1", "BY", "w_*") == [b"1", b"2", b"3"]
    user.close()


# -- the ACL LOG -----------------------------------------------------------------------------


def test_acl_log_records_refusals(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.acl_log_reset()
    admin.execute_command("ACL", "SETUSER", "logged", "on", ">pw", "+get", "~a*")
    user = as_user(clone, "logged")
    for _ in range(2):
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("b")
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("a", "1")
    raw = clone.raw()
    assert raw.command("AUTH", "logged", "wrong").startswith(b"-WRONGPASS")
    raw.close()
    entries = admin.acl_log()
    assert [(e["reason"], e["context"], e["object"], e["username"]) for e in entries] == [
        ("auth", "toplevel", "AUTH", "logged"),  # the command as sent, the name tried
        ("command", "toplevel", "set", "logged"),
        ("key", "toplevel", "b", "logged"),
    ]
    assert entries[2]["count"] == 2
    info = entries[2]["client-info"]  # redis-py parses it as CLIENT LIST's fields
    assert info["cmd"] == "get" and info["user"] == "logged"
    assert len(admin.acl_log(1)) == 1
    assert admin.acl_log_reset() and admin.acl_log() == []
    admin.config_set("acllog-max-len", "1")
    try:
        for key in ("b1", "b2"):
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.get(key)
        assert [entry["object"] for entry in admin.acl_log()] == ["b2"]
    finally:
        admin.config_set("acllog-max-len", "128")
    user.close()


# -- AUTH and HELLO --------------------------------------------------------------------------


def test_auth_and_hello_auth(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "who", "on", ">pw", "+@all", "~*", "&*")
    raw = clone.raw()
    assert raw.command("AUTH", "who", "bad") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    )
    assert raw.command("AUTH", "nobody", "pw").startswith(b"-WRONGPASS")
    assert raw.command("AUTH", "pw") == (
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?\r\n"
    )
    assert raw.command("AUTH", "who", "pw") == b"+OK\r\n"
    assert raw.call("ACL", "WHOAMI") == b"who"
    # the default user has no password: any works for it
    assert raw.command("HELLO", "3", "AUTH", "default", "x").startswith(b"%7\r\n")
    assert raw.call("ACL", "WHOAMI") == b"default"
    assert raw.command("HELLO", "2", "AUTH", "who", "nope").startswith(b"-WRONGPASS")
    user = clone.client(username="who", password="pw", protocol=3)
    assert user.acl_whoami() in ("who", b"who")  # redis-py decodes RESP3 replies less
    user.close()
    admin.execute_command("ACL", "SETUSER", "who", "off")
    assert raw.call("PING") == b"PONG"  # an authenticated connection stays, as in Redis
    assert raw.command("AUTH", "who", "pw").startswith(b"-WRONGPASS")
    assert raw.command("RESET") == b"+RESET\r\n"
    assert raw.call("ACL", "WHOAMI") == b"default"
    raw.close()


def test_requirepass_is_the_default_users_password(clone: ServerProcess) -> None:
    admin = clone.client(single_connection_client=True)
    assert admin.config_set("requirepass", "s3cret")
    try:
        line = admin.acl_list()[-1]
        assert line.startswith("user default on #") and "nopass" not in line
        raw = clone.raw()
        assert raw.command("GET", "x") == b"-NOAUTH Authentication required.\r\n"
        assert raw.command("AUTH", "s3cret") == b"+OK\r\n"
        assert raw.command("AUTH", "default", "s3cret") == b"+OK\r\n"
        raw.close()
        # a connection that did not authenticate runs while the default user needs none
        raw = clone.raw()
        assert raw.command("GET", "x").startswith(b"-NOAUTH")
        admin.config_set("requirepass", "")
        assert raw.command("GET", "x") == b"$-1\r\n"
        admin.config_set("requirepass", "again")
        assert raw.command("GET", "x").startswith(b"-NOAUTH")
        raw.close()
    finally:
        admin.config_set("requirepass", "")
    assert admin.acl_list()[-1] == "user default on nopass ~* &* +@all"
    admin.close()


def test_client_list_and_kill_by_user(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "killme", "on", ">pw", "+@all", "~*", "&*")
    users = [as_user(clone, "killme") for _ in range(3)]
    for user in users:
        user.ping()
    assert sum(1 for c in admin.client_list() if c["user"] == "killme") == 3
    assert admin.client_kill_filter(user="killme") == 3
    with pytest.raises(redis.exceptions.ResponseError, match="No such user 'nobody'"):
        admin.client_kill_filter(user="nobody")
    for user in users:
        with pytest.raises(redis.exceptions.ConnectionError):
            user.connection.send_command("PING")
            user.connection.read_response()
        user.close()


def test_deluser_disconnects_its_clients(clone: ServerProcess, admin: redis.Redis) -> None:
    admin.execute_command("ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*", "&*")
    raw = clone.raw()
    assert raw.command("AUTH", "gone", "pw") == b"+OK\r\n"
    with pytest.raises(redis.exceptions.ResponseError, match="cannot be removed"):
        admin.acl_deluser("default")
    assert admin.acl_deluser("gone", "nobody") == 1
    assert raw.read_until_closed() == b""
    raw.close()


# -- the ACL file and configured users ---------------------------------------------------------


def test_acl_save_and_load(clone_factory: ServerPool, tmp_path: Path) -> None:
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\nuser filed on >pw ~f* +get\n")
    server = clone_factory.start_clone(4, ["--aclfile", str(aclfile)])
    admin = server.client()
    assert admin.acl_users() == ["default", "filed"]
    user = as_user(server, "filed")
    assert user.get("f1") is None
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("f1", "v")
    admin.execute_command("ACL", "SETUSER", "filed", "+set")
    admin.execute_command("ACL", "SETUSER", "extra", "on", "nopass", "+ping")
    assert admin.acl_save()
    saved = aclfile.read_text().splitlines()
    assert saved == admin.acl_list()
    assert saved[2].startswith("user filed on #") and saved[2].endswith("-@all +get +set")
    aclfile.write_text("user default on nopass ~* &* +@all\nuser filed on >pw ~f* +get\n")
    raw = server.raw()
    assert raw.command("AUTH", "filed", "pw") == b"+OK\r\n"
    assert admin.acl_load()
    assert admin.acl_users() == ["default", "filed"]
    # Redis 7.0's LOAD frees every user but the default one: their clients go
    assert raw.read_until_closed() == b""
    raw.close()
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("f1", "v")  # reconnected: the loaded rules
    aclfile.write_text("user filed bogus\nnot a user line\n")
    with pytest.raises(redis.exceptions.ResponseError) as problem:
        admin.acl_load()
    assert (
        f"{aclfile}:1: Syntax error. {aclfile}:2 should start with user keyword followed by "
        "the username. WARNING: ACL errors detected, no change to the previously active ACL "
        "rules was performed"
    ) in str(problem.value)
    assert admin.acl_users() == ["default", "filed"]
    user.close()
    admin.close()


def test_load_and_save_need_an_acl_file(clone: ServerProcess, admin: redis.Redis) -> None:
    for command in ("LOAD", "SAVE"):
        with pytest.raises(redis.exceptions.ResponseError, match="not configured to use an ACL"):
            admin.execute_command("ACL", command)


def test_users_from_the_configuration(clone_factory: ServerPool, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('user = ["alice on >a ~a* +@all", "bob on >b ~b* +get"]\n')
    flags = ["--config", str(config), "--user", "carol on nopass ~* +@read"]
    server = clone_factory.start_clone(1, flags)
    admin = server.client()
    assert admin.acl_users() == ["alice", "bob", "carol", "default"]
    assert as_user(server, "alice", "a").set("a1", "v")
    assert as_user(server, "carol", "x").get("a1") == b"v"
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_user(server, "bob", "b").get("a1")
    admin.close()


def test_configured_users_and_an_acl_file_refuse_to_start(tmp_path: Path) -> None:
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("")
    cases = [
        (["--aclfile", str(aclfile), "--user", "x on"], "please define either an ACL file"),
        (["--user", "x on bogus"], "Error loading ACL rule 'bogus' for the user named 'x'"),
        (["--aclfile", str(tmp_path / "none")], "Error loading ACLs, opening file"),
    ]
    for flags, text in cases:
        done = subprocess.run(
            [*clone_command(), "--port", "0", *flags], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0 and text in done.stderr


# -- two acceptors --------------------------------------------------------------------------


def test_rules_hold_on_both_acceptors(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(4, ["--acceptors", "2"])
    first, second = server.client_on(0), server.client_on(1)
    for round_ in range(10):
        rules = ["on", ">pw", "+get", "+info", "~*"]  # INFO: client_on asks which acceptor
        assert first.execute_command("ACL", "SETUSER", "both", *rules) == b"OK"
        on_second = server.client_on(1, username="both", password="pw")
        on_second.get("k")  # allowed
        with pytest.raises(redis.exceptions.NoPermissionError):
            on_second.set("k", "v")
        # a change through the second holds on the first from its reply on
        second.execute_command("ACL", "SETUSER", "both", "+set")
        on_first = server.client_on(0, username="both", password="pw")
        assert on_first.set("k", str(round_))
        assert on_second.set("k", "again")  # the same connection sees it too
        assert second.acl_list() == first.acl_list()
        first.acl_deluser("both")
        with pytest.raises(redis.exceptions.ConnectionError):
            on_second.get("k")
        on_first.close()
        on_second.close()
        assert second.acl_users() == ["default"]
    # changes of different users at once through both acceptors all hold on both
    for pair in range(5):
        names = [f"at-once-{pair}-{side}" for side in (0, 1)]
        for client, name in zip((first, second), names, strict=True):
            client.connection.send_command("ACL", "SETUSER", name, "on")
        for client in (first, second):
            assert client.connection.read_response() == b"OK"
        for client in (first, second):
            assert set(names) <= set(client.acl_users())
        second.acl_deluser(*names)
        assert first.acl_users() == ["default"]
    first.execute_command("ACL", "SETUSER", "many", "on", ">pw", "+@all", "~*", "&*")
    users = [server.client_on(n % 2, username="many", password="pw") for n in range(4)]
    assert second.client_kill_filter(user="many") == 4
    for user in users:
        with pytest.raises(redis.exceptions.ConnectionError):  # no reconnect: it was killed
            user.connection.send_command("PING")
            user.connection.read_response()
        user.close()
    late = server.client_on(1, username="many", password="pw")
    first.execute_command("ACL", "SETUSER", "many", "resetkeys")
    with pytest.raises(redis.exceptions.NoPermissionError):
        late.get("k")
    late.close()
    first.close()
    second.close()


# -- against redis-server ---------------------------------------------------------------------

DIFFERENTIAL = [
    # a line break in a refused rule is a space in the error, or the reply would end early
    ["ACL", "SETUSER", "d0", "x\r\ny"],
    ["ACL", "SETUSER", "d0", "(x\r\ny"],
    ["ACL", "SETUSER", "d1", "on", ">pw", "~foo*", "%R~bar*", "&chan*", "+@read", "-@hash"],
    ["ACL", "SETUSER", "d2", "+@all", "-@dangerous", "~*", "(~x* +hget)", "(&n* +publish)"],
    ["ACL", "SETUSER", "d3", "reset", "+select|0", "+config|get", "nopass", "on"],
    ["ACL", "SETUSER", "d3", "#" + "a" * 64, "!" + "a" * 64],
    ["ACL", "GETUSER", "d1"],
    ["ACL", "GETUSER", "d2"],
    ["ACL", "GETUSER", "d3"],
    ["ACL", "GETUSER", "nobody"],
    ["ACL", "LIST"],
    ["ACL", "USERS"],
    ["ACL", "WHOAMI"],
    ["ACL", "CAT"],
    ["ACL", "CAT", "nosuch"],
    ["ACL", "DRYRUN", "d1", "get", "foo1"],
    ["ACL", "DRYRUN", "d1", "get", "zz"],
    ["ACL", "DRYRUN", "d1", "set", "foo1", "v"],
    ["ACL", "DRYRUN", "d2", "publish", "n1", "m"],
    ["ACL", "DRYRUN", "d2", "publish", "z", "m"],
    ["ACL", "DRYRUN", "d2", "hget", "x1", "f"],
    ["ACL", "DRYRUN", "nobody", "get", "x"],
    ["ACL", "DRYRUN", "d1", "nosuch"],
    ["ACL", "DRYRUN", "d1", "config", "nosuch"],
    ["ACL", "DRYRUN", "d3", "config", "get", "x"],
    ["ACL", "DRYRUN", "d3", "select", "1"],
    ["ACL", "SETUSER", "d4", "bogus"],
    ["ACL", "SETUSER", "d4", "+nosuch"],
    ["ACL", "SETUSER", "d4", "~*", "~a"],
    ["ACL", "SETUSER", "d4", "&*", "&a"],
    ["ACL", "SETUSER", "d4", "(~a", "+get"],
    ["ACL", "SETUSER", "d4", "+config|get|x"],
    ["ACL", "SETUSER", "d4", "#abc"],
    ["ACL", "SETUSER", "d4", "<nothere"],
    ["ACL", "SETUSER", "a b"],
    ["ACL", "DELUSER", "default"],
    ["ACL", "DELUSER", "d4", "d3", "nobody"],
    ["ACL", "GENPASS", "0"],
    ["ACL", "GENPASS", "x"],
    ["ACL", "LOG", "x"],
    ["ACL", "LOG", "0"],
    ["ACL", "HELP"],
    ["ACL", "NOSUCH"],
    ["ACL", "WHOAMI", "extra"],
    ["ACL", "GETUSER"],
]


def _single_rules_sorted(reply: bytes) -> bytes:
    """Redis prints the single-command rules after the categories in its hash order
    (different at every start): sort each run of them, in every string of the reply."""

    def fix(match: re.Match[bytes]) -> bytes:
        return b" ".join(sorted(match.group(0).split(b" ")))

    return re.sub(
        rb"[+-][a-z_\-]+(?:\|[a-z0-9_\-]+)?(?: [+-][a-z_\-]+(?:\|[a-z0-9_\-]+)?)*", fix, reply
    )


def _reply_bytes(server: ServerProcess, commands: list[list[str]], protocol: int) -> list[bytes]:
    raw = server.raw()
    if protocol == 3:
        raw.command("HELLO", "3")
    replies = [raw.command(*command) for command in commands]
    raw.close()
    return replies


@pytest.mark.parametrize("protocol", [2, 3])
def test_acl_replies_match_redis(
    clone: ServerProcess, admin: redis.Redis, redis_server: ServerProcess, protocol: int
) -> None:
    oracle = redis_server.client()
    try:
        ours = _reply_bytes(clone, DIFFERENTIAL, protocol)
        theirs = _reply_bytes(redis_server, DIFFERENTIAL, protocol)
    finally:
        for name in oracle.acl_users():
            if name != "default":
                oracle.acl_deluser(name)
        oracle.close()
    differences = [
        (command, mine, expected)
        for command, mine, expected in zip(DIFFERENTIAL, ours, theirs, strict=True)
        if _single_rules_sorted(mine) != _single_rules_sorted(expected)
    ]
    assert differences == []


def test_acl_cat_of_each_category_matches_redis(
    clone: ServerProcess, admin: redis.Redis, redis_server: ServerProcess
) -> None:
    oracle = redis_server.client()
    for category in oracle.acl_cat():
        assert sorted(admin.acl_cat(category)) == sorted(oracle.acl_cat(category)), category
    oracle.close()
