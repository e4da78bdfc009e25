"""Multi-key commands are atomic across shards: no client ever sees half of one.

Writer threads repeat a multi-key command over keys spread over all 4 shards (no hash tags,
so every command is split or coordinated), while reader threads read the whole group with one
MGET (itself a multi-key command) and check an invariant on every reply:

- MSET: every key holds the same value (all keys are set to the writer's round token at once);
- MSET + DEL (and UNLINK): all keys hold the same value, or none exists;
- MSETNX + DEL: the same, while two writers race to create the group (all or none);
- RENAME back and forth between two keys on different shards: the value is under exactly one
  of the names, never both, never neither;
- SWAPDB 0 1 with the group all A in one database and all B in the other: database 0 reads
  all A or all B, never a mix of swapped and unswapped shards;
- MULTI/EXEC of one SET per key (and of one DEL per key): as MSET (and MSET + DEL); of a
  RENAME across shards and a GET: as RENAME.

A checker that never fails proves nothing, so each invariant is also run against a writer that
does the same thing non-atomically, as separate single-key commands (what a torn MSET looks like
from outside), and the test asserts that the readers DO catch it within a bounded time.

Every loop is bounded by a deadline of a few seconds; the tests also require that writers and
readers made progress and that readers saw several rounds, so a stalled writer cannot pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis
from conftest import ServerPool, ServerProcess, wait_until

from shardserver.slots import shard_table, slot_for_key
from shardserver.worker import BREAK_ORDER_ENV

SHARDS = 4
#: How long the atomic commands are hammered, per test.
RUN_S = 2.0
#: The most time the non-atomic writer gets before the checker must have caught it.
CATCH_DEADLINE_S = 15.0
WRITERS = 2
READERS = 3


def keys_on_every_shard(prefix: str, per_shard: int) -> list[bytes]:
    """`per_shard` keys on each of the SHARDS shards, none with a hash tag."""
    table = shard_table(SHARDS)
    found: dict[int, list[bytes]] = {shard: [] for shard in range(SHARDS)}
    i = 0
    while any(len(keys) < per_shard for keys in found.values()):
        key = f"{prefix}:{i}".encode()
        keys = found[table[slot_for_key(key)]]
        if len(keys) < per_shard:
            keys.append(key)
        i += 1
    # Interleave the shards, so that consecutive keys of the group are on different shards.
    return [found[shard][n] for n in range(per_shard) for shard in range(SHARDS)]


GROUP = keys_on_every_shard("atom", 2)
#: RENAME's two names, on different shards.
SOURCE, TARGET = GROUP[0], GROUP[1]


@pytest.fixture(scope="module", params=[1, 2], ids=["acceptors1", "acceptors2"])
def server(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    """A 4-shard redis-clone of this module's own, with one acceptor and with two (the
    clients then spread over both, so that their commands meet only in the shards)."""
    return module_servers.clone(SHARDS, ["--acceptors", str(request.param)])


@dataclass
class Outcome:
    """What one run of writers and readers did and saw."""

    writes: int = 0
    reads: int = 0
    seen: set[object] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


#: A writer: (client, writer index, round number) -> None; one round of writes.
Writer = Callable[[redis.Redis, int, int], None]
#: A check of one MGET reply: the reason it is torn, or None when it is consistent.
Check = Callable[[list[bytes | None]], str | None]


def hammer(
    server: ServerProcess,
    writer: Writer,
    check: Check,
    keys: list[bytes],
    duration: float,
    stop_at_first_violation: bool = False,
    writers: int = WRITERS,
) -> Outcome:
    """Run `writers` writer threads and READERS reader threads for `duration` seconds.

    Readers MGET `keys` and record every reply `check` rejects; with `stop_at_first_violation`
    everyone stops as soon as one is seen. Exceptions in any thread are recorded, not lost.
    """
    outcome = Outcome()
    stop = threading.Event()
    acceptors = server.acceptors()
    writer_clients = [server.client_on(i % acceptors) for i in range(writers)]
    reader_clients = [server.client_on((i + 1) % acceptors) for i in range(READERS)]
    deadline = time.monotonic() + duration

    def write_loop(index: int) -> None:
        client = writer_clients[index]
        try:
            round_no = 0
            while not stop.is_set() and time.monotonic() < deadline:
                writer(client, index, round_no)
                round_no += 1
                with outcome.lock:
                    outcome.writes += 1
        except Exception as exc:  # reported by the test, with its thread
            outcome.errors.append(f"writer {index}: {exc!r}")
        finally:
            client.close()

    def read_loop(index: int) -> None:
        client = reader_clients[index]
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                values = client.mget(keys)
                problem = check(values)
                with outcome.lock:
                    outcome.reads += 1
                    outcome.seen.add(tuple(values))
                    if problem is not None:
                        outcome.violations.append(f"{problem}: {values!r}")
                if problem is not None and stop_at_first_violation:
                    stop.set()
        except Exception as exc:  # reported by the test, with its thread
            outcome.errors.append(f"reader {index}: {exc!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=write_loop, args=(i,)) for i in range(writers)]
    threads += [threading.Thread(target=read_loop, args=(i,)) for i in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
        assert not thread.is_alive(), "a client thread is stuck: the server stopped answering"
    return outcome


def token(index: int, round_no: int) -> bytes:
    """The value a writer gives every key in one round: unique per writer and round."""
    return b"w%d:r%d" % (index, round_no)


# -- Invariants -----------------------------------------------------------------------------------


def all_equal(values: list[bytes | None]) -> str | None:
    """MSET's invariant: every key has the same value (and once set, keys are never missing)."""
    if len(set(values)) != 1:
        return "keys hold values of different rounds (a torn MSET)"
    return None


def all_equal_or_none(values: list[bytes | None]) -> str | None:
    """MSET+DEL and MSETNX's invariant: all keys hold one value, or none exists."""
    if len(set(values)) != 1:
        return "keys hold different values, or some exist and some do not (torn write/delete)"
    return None


def exactly_one(values: list[bytes | None]) -> str | None:
    """RENAME's invariant: the value is under exactly one of the two names."""
    present = [value for value in values if value is not None]
    if len(present) != 1:
        return "the value is under both names or under neither (a torn RENAME)"
    if present[0] != b"token":
        return "the value changed in a RENAME"
    return None


# -- Writers: atomic, with the real multi-key commands ----------------------------------------


def mset_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """One MSET of the whole group to this round's token."""
    value = token(index, round_no)
    client.mset(dict.fromkeys(GROUP, value))


def mset_del_writer(delete: str) -> Writer:
    """MSET of the group, then one DEL (or UNLINK) of the whole group."""

    def write(client: redis.Redis, index: int, round_no: int) -> None:
        client.mset(dict.fromkeys(GROUP, token(index, round_no)))
        client.execute_command(delete, *GROUP)

    return write


def msetnx_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """MSETNX of the group (two writers race: one wins), and the winner deletes it again."""
    if client.msetnx(dict.fromkeys(GROUP, token(index, round_no))):
        client.delete(*GROUP)


def rename_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """RENAME the value to the other name, whichever name it is under now.

    Two writers race, so a RENAME may find its source gone ('no such key'): that is Redis's
    answer too and changes nothing, so it is ignored.
    """
    source, target = (SOURCE, TARGET) if (index + round_no) % 2 == 0 else (TARGET, SOURCE)
    try:
        client.rename(source, target)
    except redis.ResponseError as exc:
        if "no such key" not in str(exc):
            raise


def swapdb_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """SWAPDB 0 1: every shard's databases swap at one point of the order."""
    client.swapdb(0, 1)


# -- Writers: the same effects done non-atomically, as separate commands --------------------------


def torn_mset_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """MSET done as one SET per key (each shard's keys written separately)."""
    value = token(index, round_no)
    for key in GROUP:
        client.set(key, value)


def torn_mset_del_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """MSET and DEL done one key at a time."""
    for key in GROUP:
        client.set(key, token(index, round_no))
    for key in GROUP:
        client.delete(key)


def torn_msetnx_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """MSETNX done as SETNX per key (all-or-none lost), then DEL per key by whoever won any."""
    won = [client.setnx(key, token(index, round_no)) for key in GROUP]
    if any(won):
        for key in GROUP:
            client.delete(key)


def exec_set_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """MULTI, a SET of each key of the group (each its own single-key command), EXEC."""
    with client.pipeline(transaction=True) as pipe:
        for key in GROUP:
            pipe.set(key, token(index, round_no))
        assert pipe.execute() == [True] * len(GROUP)


def exec_set_del_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """A transaction setting every key, then one deleting them one DEL each."""
    exec_set_writer(client, index, round_no)
    with client.pipeline(transaction=True) as pipe:
        for key in GROUP:
            pipe.delete(key)
        pipe.execute()


def exec_rename_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """RENAME back and forth inside MULTI/EXEC, with a read of the new name after it."""
    source, target = (SOURCE, TARGET) if round_no % 2 == 0 else (TARGET, SOURCE)
    with client.pipeline(transaction=True) as pipe:
        pipe.rename(source, target)
        pipe.get(target)
        assert pipe.execute() == [True, b"token"]


def torn_rename_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """RENAME done as GET, SET of the new name, DEL of the old one."""
    source, target = (SOURCE, TARGET) if round_no % 2 == 0 else (TARGET, SOURCE)
    value = client.get(source)
    if value is not None:
        client.set(target, value)
        client.delete(source)


def torn_swapdb_writer(client: redis.Redis, index: int, round_no: int) -> None:
    """What a SWAPDB that swapped one shard at a time looks like from database 0."""
    value = b"A" if round_no % 2 else b"B"
    for key in GROUP:
        client.set(key, value)


# -- The tests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One invariant: how to start, the atomic writer, its non-atomic twin, and the check."""

    name: str
    setup: Callable[[redis.Redis], None]
    atomic: Writer
    torn: Writer
    check: Check
    keys: list[bytes]
    writers: int = WRITERS
    torn_writers: int = WRITERS
    #: Distinct group states readers must see, so that a stalled writer cannot pass.
    min_states: int = 3


def start_group_set(client: redis.Redis) -> None:
    """All keys of the group set to one value."""
    client.delete(SOURCE, TARGET, *GROUP)
    client.mset(dict.fromkeys(GROUP, b"start"))


def start_group_empty(client: redis.Redis) -> None:
    """No key of the group exists."""
    client.delete(SOURCE, TARGET, *GROUP)


def start_rename(client: redis.Redis) -> None:
    """The value under the first name only."""
    client.delete(*GROUP)
    client.set(SOURCE, b"token")


def start_swapdb(client: redis.Redis) -> None:
    """The group holds A in database 0 and B in database 1 (this module's server only)."""
    client.flushall()
    client.mset(dict.fromkeys(GROUP, b"B"))
    client.swapdb(0, 1)
    client.mset(dict.fromkeys(GROUP, b"A"))


CASES = [
    Case("MSET", start_group_set, mset_writer, torn_mset_writer, all_equal, GROUP),
    Case(
        "MSET+DEL",
        start_group_empty,
        mset_del_writer("DEL"),
        torn_mset_del_writer,
        all_equal_or_none,
        GROUP,
    ),
    Case(
        "MSET+UNLINK",
        start_group_empty,
        mset_del_writer("UNLINK"),
        torn_mset_del_writer,
        all_equal_or_none,
        GROUP,
    ),
    Case("MSETNX", start_group_empty, msetnx_writer, torn_msetnx_writer, all_equal_or_none, GROUP),
    # One torn renamer: two would also race each other's GET/SET/DEL, which proves nothing more.
    Case(
        "RENAME",
        start_rename,
        rename_writer,
        torn_rename_writer,
        exactly_one,
        [SOURCE, TARGET],
        torn_writers=1,
        min_states=2,  # (token, nil) and (nil, token) are all there is
    ),
    Case("SWAPDB", start_swapdb, swapdb_writer, torn_swapdb_writer, all_equal, GROUP, min_states=2),
    Case("EXEC", start_group_set, exec_set_writer, torn_mset_writer, all_equal, GROUP),
    Case(
        "EXEC+RENAME",
        start_rename,
        exec_rename_writer,
        torn_rename_writer,
        exactly_one,
        [SOURCE, TARGET],
        writers=1,
        torn_writers=1,
        min_states=2,
    ),
    Case(
        "EXEC+DEL",
        start_group_empty,
        exec_set_del_writer,
        torn_mset_del_writer,
        all_equal_or_none,
        GROUP,
    ),
]


def test_group_spans_every_shard() -> None:
    """The premise: the group has keys on all 4 shards, and RENAME's names differ in shard."""
    table = shard_table(SHARDS)
    assert {table[slot_for_key(key)] for key in GROUP} == set(range(SHARDS))
    assert table[slot_for_key(SOURCE)] != table[slot_for_key(TARGET)]
    assert not any(b"{" in key for key in GROUP)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_readers_never_see_a_torn_command(server: ServerProcess, case: Case) -> None:
    """Concurrent readers never see a multi-key command half done, across 4 shards."""
    with server.client() as client:
        case.setup(client)
    outcome = hammer(server, case.atomic, case.check, case.keys, RUN_S, writers=case.writers)
    assert not outcome.errors, outcome.errors
    assert not outcome.violations, (
        f"{len(outcome.violations)} torn reads of {outcome.reads}; first: {outcome.violations[:3]}"
    )
    # Not vacuous: writers wrote, readers read, and readers saw the group change.
    assert outcome.writes >= 20, outcome
    assert outcome.reads >= 50, outcome
    assert len(outcome.seen) >= case.min_states, f"readers saw too few states: {outcome.seen}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_checker_catches_a_non_atomic_writer(server: ServerProcess, case: Case) -> None:
    """The same readers catch tearing when the writer does the command as separate commands.

    This is what keeps test_readers_never_see_a_torn_command honest: its checker is shown to
    fail on exactly the fault it exists to find, within CATCH_DEADLINE_S.
    """
    with server.client() as client:
        case.setup(client)
    outcome = hammer(
        server,
        case.torn,
        case.check,
        case.keys,
        CATCH_DEADLINE_S,
        stop_at_first_violation=True,
        writers=case.torn_writers,
    )
    assert not outcome.errors, outcome.errors
    assert outcome.violations, (
        f"no torn read in {outcome.reads} reads and {outcome.writes} non-atomic rounds: "
        "the checker cannot tell atomic from torn"
    )


BROKEN_CASES = [case for case in CASES if case.name in ("MSET", "RENAME", "EXEC", "EXEC+RENAME")]


@pytest.mark.parametrize("case", BROKEN_CASES, ids=[case.name for case in BROKEN_CASES])
def test_checker_catches_shards_that_ignore_ticket_order(
    clone_factory: ServerPool, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    """With two acceptors, what keeps a multi-shard command whole is that every shard runs
    ticketed steps in ticket order (shardserver.scheduler). Shards told to ignore tickets
    and holds (the worker's BREAK_ORDER_ENV) must be caught by the same readers, with the
    real atomic commands this time."""
    monkeypatch.setenv(BREAK_ORDER_ENV, "1")
    server = clone_factory.start_clone(SHARDS, ["--acceptors", "2"])
    assert wait_until(lambda: "ticket order switched off" in server.log_text(), 5.0)
    with server.client() as client:
        case.setup(client)
    outcome = hammer(
        server,
        case.atomic,
        case.check,
        case.keys,
        CATCH_DEADLINE_S,
        stop_at_first_violation=True,
        writers=case.writers,
    )
    assert not outcome.errors, outcome.errors
    assert outcome.violations, (
        f"no torn read in {outcome.reads} reads and {outcome.writes} rounds with ticket order "
        "off: the test cannot tell ordered shards from unordered ones"
    )
