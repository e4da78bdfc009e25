"""A shard's scheduler over several acceptors' streams: FIFO streams, tickets in one order,
holds. A stand-in shard records the order in which runs execute."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.scheduler import HOLD, RELEASE, Scheduler


class Recorder:
    """Executes runs by noting their names."""

    def __init__(self) -> None:
        self.order: list[bytes] = []

    def execute_batch(self, runs: list) -> list:
        replies = []
        for run in runs:
            assert run[0].__class__ is int, "tickets are taken off before execution"
            names = [argv[0] for argv in run[1:]]
            self.order.extend(names)
            replies.append(b"+".join(names))
        return replies


def plain(name: bytes) -> list:
    return [0, [name]]


def ticketed(name: bytes, ticket: int, mark: int = 0) -> list:
    return [(0, ticket, mark), [name]]


RELEASE_RUN = [(0, None, RELEASE), [b"@release"]]


def level(watermark: int) -> list[int]:
    """The same watermark for each of up to three streams."""
    return [watermark] * 3


def test_unticketed_runs_go_at_once_and_streams_keep_their_order() -> None:
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(0, [plain(b"a1"), plain(b"a2")])
    scheduler.add(1, [plain(b"b1")])
    scheduler.add(0, [plain(b"a3")])
    done = scheduler.run(level(0))
    assert shard.order == [b"a1", b"a2", b"a3", b"b1"]
    assert done == [(0, [b"a1", b"a2"]), (0, [b"a3"]), (1, [b"b1"])]


def test_tickets_run_in_ticket_order_across_streams() -> None:
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 3)
    scheduler.add(0, [ticketed(b"t5", 5), plain(b"after5")])
    scheduler.add(1, [plain(b"free"), ticketed(b"t3", 3)])
    scheduler.add(2, [ticketed(b"t4", 4)])
    scheduler.run(level(10))
    assert shard.order == [b"free", b"t3", b"t4", b"t5", b"after5"]


def test_a_ticket_waits_for_the_watermark_but_its_stream_only() -> None:
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(0, [ticketed(b"t7", 7), plain(b"behind")])
    scheduler.add(1, [plain(b"other")])
    assert scheduler.run(level(7)) == [(1, [b"other"])]
    assert scheduler.waiting and shard.order == [b"other"]
    assert scheduler.run(level(8)) == [(0, [b"t7", b"behind"])]
    assert not scheduler.waiting


def test_a_ticket_waits_only_for_the_other_streams_watermark() -> None:
    """Stream 0's own smaller tickets would be ahead of t3 on its stream, so only stream 1's
    mark can hold t3 back; stream 1's t4 waits for stream 0's mark."""
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(0, [ticketed(b"t3", 3)])
    assert scheduler.run([9, 3]) == [(0, [b"t3"])]
    scheduler.add(1, [ticketed(b"t4", 4)])
    assert scheduler.run([9, 4]) == [] and scheduler.waiting
    assert scheduler.run([4, 5]) == [(1, [b"t4"])]


def test_a_hold_runs_only_its_stream_until_the_release() -> None:
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(0, [ticketed(b"read", 1, HOLD)])
    scheduler.add(1, [plain(b"waits"), ticketed(b"t2", 2)])
    scheduler.run(level(5))
    # b's unticketed run went before the hold was taken; then only stream 0 runs
    assert shard.order == [b"waits", b"read"] and scheduler.holder == 0
    scheduler.add(1, [plain(b"still-waits")])
    scheduler.add(0, [plain(b"write"), RELEASE_RUN, plain(b"later")])
    done = scheduler.run(level(5))
    assert shard.order == [b"waits", b"read", b"write", b"later", b"t2", b"still-waits"]
    assert (0, [b"write", None, b"later"]) in done and scheduler.holder is None


def test_after_a_release_a_waiting_streams_free_run_goes_before_any_ticket_is_picked() -> None:
    """Stream 0's ticket 6 sits behind a free run that arrived while stream 1 held the shard;
    once stream 1 releases, its next ticket (7) must not overtake 6 (a deadlock of two
    coordinations, each holding one shard and waiting for the other, when it did)."""
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(1, [ticketed(b"hold5", 5, HOLD)])
    scheduler.run(level(10))
    scheduler.add(0, [plain(b"free")])
    scheduler.add(0, [ticketed(b"hold6", 6, HOLD)])
    scheduler.add(1, [plain(b"write5"), RELEASE_RUN])
    scheduler.add(1, [ticketed(b"hold7", 7, HOLD)])
    scheduler.run(level(10))
    assert shard.order == [b"hold5", b"write5", b"free", b"hold6"]
    assert scheduler.holder == 0


def test_closing_the_holder_ends_its_hold() -> None:
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 2)
    scheduler.add(0, [ticketed(b"read", 1, HOLD)])
    scheduler.run(level(5))
    scheduler.add(1, [plain(b"x")])
    scheduler.close(0)
    scheduler.run(level(5))
    assert shard.order == [b"read", b"x"]


@settings(max_examples=300, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 2), st.booleans()),  # (stream, ticketed) in global order
        min_size=1,
        max_size=30,
    ),
    cuts=st.lists(st.integers(0, 30), max_size=5),
)
def test_any_arrival_keeps_fifo_and_ticket_order(plan: list, cuts: list) -> None:
    """Runs given tickets in the order they were planned, spread over streams and over several
    deliveries, come out with each stream in order and every ticket in ticket order."""
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 3)
    per_stream: list[list] = [[], [], []]
    for number, (stream, has_ticket) in enumerate(plan):
        name = b"%d" % number
        per_stream[stream].append(ticketed(name, number) if has_ticket else plain(name))
    for stream, runs in enumerate(per_stream):
        if runs:
            split = min(cuts[0], len(runs)) if cuts else len(runs)
            for piece in (runs[:split], runs[split:]):
                if piece:
                    scheduler.add(stream, piece)
    scheduler.run(level(len(plan)))
    order = [int(name) for name in shard.order]
    assert sorted(order) == list(range(len(plan)))
    for stream in range(3):
        mine = [n for n in order if plan[n][0] == stream]
        assert mine == sorted(mine)
    tickets = [n for n in order if plan[n][1]]
    assert tickets == sorted(tickets)


@settings(max_examples=300, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["free", "ticket", "hold"])),
        min_size=1,
        max_size=25,
    ),
    deliveries=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), max_size=40),
)
def test_holds_keep_ticket_order_whatever_the_arrival(plan: list, deliveries: list) -> None:
    """Free runs, tickets and holds (a held read, the holder's write, the release), arriving
    in any pieces with a run after each (a stream's watermark: the smallest ticket the other
    streams have not yet sent):
    every stream stays in order, tickets run in ticket order, and a hold's write follows its
    read with nothing of another stream between."""
    shard = Recorder()
    scheduler = Scheduler(shard.execute_batch, 3)
    per_stream: list[list] = [[], [], []]
    for number, (stream, kind) in enumerate(plan):
        if kind == "free":
            per_stream[stream].append(plain(b"f%d" % number))
        elif kind == "ticket":
            per_stream[stream].append(ticketed(b"t%d" % number, number))
        else:
            per_stream[stream].append(ticketed(b"h%d" % number, number, HOLD))
            per_stream[stream].append(plain(b"w%d" % number))
            per_stream[stream].append(RELEASE_RUN)
    sent = [0, 0, 0]
    for stream, count in deliveries + [(s, len(per_stream[s])) for s in range(3)]:
        piece = per_stream[stream][sent[stream] : sent[stream] + count]
        if piece:
            scheduler.add(stream, piece)
            sent[stream] += len(piece)
        unsent = [
            [
                run[0][1]
                for run in per_stream[s][sent[s] :]
                if run[0].__class__ is tuple and run[0][1] is not None
            ]
            for s in range(3)
        ]
        # each stream's watermark leaves out its own unsent tickets, as the book does
        others = [[t for o in range(3) if o != s for t in unsent[o]] for s in range(3)]
        scheduler.run([min(tickets, default=len(plan)) for tickets in others])
    names = [name.decode() for name in shard.order if name != b"@release"]
    assert len(names) == sum(1 if kind != "hold" else 2 for _s, kind in plan)
    number_of = {name: int(name[1:]) for name in names}
    for stream in range(3):
        mine = [number_of[n] for n in names if plan[number_of[n]][0] == stream]
        assert mine == sorted(mine)
    tickets = [number_of[n] for n in names if n[0] in "th"]
    assert tickets == sorted(tickets)
    for at, name in enumerate(names):
        if name[0] == "h":
            assert names[at + 1] == "w" + name[1:], "a hold's write follows it at once"
