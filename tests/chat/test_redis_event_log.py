"""The Redis event log on its own: one seq order across processes, with and without durable writes."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from chat.events.redis_log import RedisEventLog

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL), as in CI")


def new_log(seeded_at: int = 0) -> RedisEventLog:
    async def seed(session_id: str) -> int:
        return seeded_at

    return RedisEventLog(url=os.environ["REDIS_URL"], seed_last_seq=seed, prefix=f"test-log-{uuid.uuid4().hex[:8]}")


def text(n: int) -> dict:
    return {"type": "text-delta", "id": "t1", "delta": f"{n} "}


async def test_two_processes_appending_at_once_share_one_contiguous_seq_order():
    first_process = new_log(seeded_at=7)
    second_process = RedisEventLog(url=os.environ["REDIS_URL"], seed_last_seq=first_process._seed_last_seq,
                                   prefix=first_process._prefix)
    session_id = str(uuid.uuid4())
    durable_seqs = []

    async def durable_write(seq: int) -> bool:
        durable_seqs.append(seq)
        await asyncio.sleep(0)  # another append may run meanwhile; it must wait for the lock
        return True

    async def writer(log: RedisEventLog, name: str) -> list[int]:
        seqs = []
        for n in range(40):
            write = durable_write if n % 5 == 0 else None
            [event] = await log.append(session_id, "turn", [{**text(n), "id": name}], write)
            seqs.append(event.seq)
        return seqs

    try:
        a, b = await asyncio.gather(writer(first_process, "a"), writer(second_process, "b"))
        assert sorted(a + b) == list(range(8, 88))  # seeded at 7, then 80 appends, none twice
        assert a == sorted(a) and b == sorted(b)
        assert set(durable_seqs) <= set(a + b)
        stored = await first_process.read_after(session_id, 7)
        assert [event.seq for event in stored] == list(range(8, 88))
        by_seq = {event.seq: event.chunk["id"] for event in stored}
        assert [by_seq[seq] for seq in a] == ["a"] * 40 and [by_seq[seq] for seq in b] == ["b"] * 40
    finally:
        await first_process.close()
        await second_process.close()


async def test_an_append_without_a_durable_write_waits_while_another_process_holds_the_lock():
    log = new_log()
    session_id = str(uuid.uuid4())
    try:
        await log.append(session_id, "turn", [text(0)])
        holder_may_commit = asyncio.Event()
        holding = asyncio.Event()

        async def slow_durable_write(seq: int) -> bool:
            holding.set()
            await holder_may_commit.wait()
            return True

        other_process = RedisEventLog(url=os.environ["REDIS_URL"], seed_last_seq=log._seed_last_seq,
                                      prefix=log._prefix)
        holder = asyncio.create_task(other_process.append(session_id, "turn", [text(1)], slow_durable_write))
        await holding.wait()
        waiter = asyncio.create_task(log.append(session_id, "turn", [text(2)]))
        await asyncio.sleep(0.05)  # nothing to await: the waiter must NOT append in this time
        assert not waiter.done()
        holder_may_commit.set()
        [held], [waited] = await asyncio.gather(holder, waiter)
        assert (held.seq, waited.seq) == (2, 3)
        await other_process.close()
    finally:
        await log.close()


async def test_a_dropped_durable_write_appends_nothing_and_the_next_append_takes_its_seq():
    log = new_log(seeded_at=3)
    session_id = str(uuid.uuid4())

    async def refuse(seq: int) -> bool:
        return False

    try:
        assert await log.append(session_id, "turn", [text(0)], refuse) == []
        [event] = await log.append(session_id, "turn", [text(1)])
        assert event.seq == 4
        assert [e.seq for e in await log.read_after(session_id, 3)] == [4]
    finally:
        await log.close()


async def test_an_append_without_a_durable_write_takes_no_lock_once_the_seq_is_stored(monkeypatch):
    log = new_log(seeded_at=10)
    session_id = str(uuid.uuid4())
    try:
        await log.append(session_id, "turn", [text(0)])  # the first append seeds and stores the seq

        async def no_lock(*args, **kwargs):
            raise AssertionError("a plain append took the session lock")

        monkeypatch.setattr(log, "_acquire", no_lock)
        events = await log.append(session_id, "turn", [text(1), text(2)])
        assert [event.seq for event in events] == [12, 13]
        assert [e.seq for e in await log.read_after(session_id, 10)] == [11, 12, 13]
    finally:
        await log.close()
