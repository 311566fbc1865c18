"""The running slots of a process (chat.engine.capacity): a turn that cannot start waits in line, in order, and a
user's own cap bounds their share only while others wait."""

from __future__ import annotations

import asyncio

import pytest

from chat.engine.capacity import Admission, max_concurrent_turns, memory_capacity


@pytest.fixture
def slots(settings):
    def configure(turns: int, per_user: int) -> Admission:
        settings.COPILOT = {**settings.COPILOT, "MAX_CONCURRENT_TURNS": turns, "MAX_WARM_CLIENTS": turns,
                            "MAX_RUNNING_TURNS_PER_USER": per_user}
        return Admission()
    return configure


async def test_turns_past_capacity_wait_and_start_in_the_order_they_came(slots):
    admission = slots(turns=2, per_user=10)
    started: list[str] = []

    async def turn(name: str, user: int) -> None:
        await admission.enter(user)
        started.append(name)

    assert admission.try_enter(1) and admission.try_enter(2)
    waiting = [asyncio.ensure_future(turn(name, user)) for name, user in [("c", 3), ("d", 4), ("e", 5)]]
    await asyncio.sleep(0)  # they are in line
    assert started == [] and admission.waiting() == 3
    admission.leave(1)
    await asyncio.sleep(0)
    assert started == ["c"]
    admission.leave(2)
    admission.leave(3)
    await asyncio.gather(*waiting)
    assert started == ["c", "d", "e"]  # none refused, each in its turn


async def test_a_user_past_their_share_waits_only_while_others_wait(slots):
    admission = slots(turns=3, per_user=1)
    assert admission.try_enter(7)
    assert admission.try_enter(7)  # an idle machine: one user may use what is free
    other = asyncio.ensure_future(admission.enter(8))
    await asyncio.sleep(0)
    assert other.done()  # a free slot, and within user 8's share
    assert not admission.try_enter(7)  # full
    mine = asyncio.ensure_future(admission.enter(7))
    theirs = asyncio.ensure_future(admission.enter(9))
    await asyncio.sleep(0)
    assert not mine.done() and not theirs.done()
    admission.leave(8)
    await asyncio.sleep(0)
    assert theirs.done() and not mine.done()  # user 7, past their share, came first; user 9 goes first
    admission.leave(9)
    await asyncio.wait_for(mine, 1)  # nobody else waits now


async def test_a_turn_that_stops_waiting_leaves_the_line(slots):
    admission = slots(turns=1, per_user=1)
    assert admission.try_enter(1)
    waiting = asyncio.ensure_future(admission.enter(2))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    after = asyncio.ensure_future(admission.enter(3))
    admission.leave(1)
    await asyncio.wait_for(after, 1)
    assert admission.total == 1 and admission.waiting() == 0


def test_the_default_capacity_comes_from_memory(settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_CONCURRENT_TURNS": 0, "MAX_WARM_CLIENTS": 0}
    assert memory_capacity() >= 1 and max_concurrent_turns() == memory_capacity()
    settings.COPILOT = {**settings.COPILOT, "MAX_WARM_CLIENTS": 2}
    assert max_concurrent_turns() == 2  # never more turns than CLIs
