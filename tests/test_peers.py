"""The acceptors' control channel, two ends in one event loop: asks and their answers,
tells, descriptors handed over with a message, and a peer that goes away."""

from __future__ import annotations

import asyncio
import os

import uvloop

from shardserver.peers import Peers, close_others, socket_pairs


def two_peers() -> tuple[Peers, Peers]:
    ends = socket_pairs(2)
    return Peers(ends[0]), Peers(ends[1])


def run(coroutine_function) -> object:
    return uvloop.run(coroutine_function())


def test_an_ask_gathers_every_peers_answer_and_tells_arrive_in_order() -> None:
    async def main() -> tuple:
        first, second = two_peers()
        told: list = []
        second.handlers["double"] = lambda n: n * 2
        second.handlers["note"] = told.append
        loop = asyncio.get_running_loop()
        first.start(loop)
        second.start(loop)
        for n in range(3):
            first.tell("note", n)
        answers = await asyncio.wait_for(first.ask("double", 21), 5)
        first.close()
        second.close()
        return answers, told

    answers, told = run(main)
    assert answers == {1: 42}
    assert told == [0, 1, 2]


def test_descriptors_handed_over_work_on_the_other_side_in_message_order() -> None:
    async def main() -> tuple:
        first, second = two_peers()
        got: list = []
        second.handlers["note"] = lambda n: got.append(("note", n))
        second.handlers["pipe"] = lambda name, fds: got.append((name, fds))
        loop = asyncio.get_running_loop()
        first.start(loop)
        second.start(loop)
        read_end, write_end = os.pipe()
        first.tell("note", 1)
        first.hand_over("pipe", ("mine",), [write_end], to=1)
        first.tell("note", 2)
        os.close(write_end)  # the peer holds its own copy now
        while len(got) < 3:
            await asyncio.sleep(0.01)
        first.close()
        second.close()
        return got, read_end

    got, read_end = run(main)
    assert got[0] == ("note", 1) and got[2] == ("note", 2)
    name, fds = got[1]
    assert name == "mine" and len(fds) == 1
    os.write(fds[0], b"through the copy")
    os.close(fds[0])
    assert os.read(read_end, 100) == b"through the copy"
    os.close(read_end)


def test_a_lost_peer_answers_nothing_and_is_reported() -> None:
    async def main() -> tuple:
        ends = socket_pairs(2)
        first = Peers(ends[0])
        lost: list[int] = []
        first.on_lost = lost.append
        loop = asyncio.get_running_loop()
        first.start(loop)
        pending = first.ask("anything")
        close_others(ends, 0)  # the other acceptor's end closes: it is gone
        answers = await asyncio.wait_for(pending, 5)
        after = await asyncio.wait_for(first.ask("anything"), 5)
        first.close()
        return answers, after, lost

    answers, after, lost = run(main)
    assert answers == {} and after == {}
    assert lost == [1]
