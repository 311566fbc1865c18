"""Bursts of deltas are merged (DeltaThrottle), alone and in real turns through the SDK and the CLI."""

from __future__ import annotations

import asyncio

import pytest

from chat.engine.throttle import DeltaThrottle
from tests.chat.test_engine import new_session, run_turn
from tests.factories import assert_turn_well_formed, chunk_types, script, streamed_text


def delta(part: str, text: str, kind: str = "text-delta") -> dict:
    return {"type": kind, "id": part, "delta": text}


class Sink:
    def __init__(self) -> None:
        self.chunks: list[dict] = []
        self.grew = asyncio.Event()

    async def __call__(self, chunk: dict) -> None:
        self.chunks.append(chunk)
        self.grew.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.chunks) < count:
                self.grew.clear()
                await self.grew.wait()


async def test_a_zero_window_passes_every_chunk_through():
    sink = Sink()
    throttle = DeltaThrottle(sink, window=0)
    for word in ("a ", "b ", "c"):
        await throttle.put(delta("t1", word))
    assert [c["delta"] for c in sink.chunks] == ["a ", "b ", "c"]


async def test_a_burst_goes_out_as_the_first_delta_then_one_merged_delta_before_the_next_chunk():
    sink = Sink()
    throttle = DeltaThrottle(sink, window=60)
    first, second = delta("t1", "Hello "), delta("t1", "there ")
    for chunk in (first, second, delta("t1", "you.")):
        await throttle.put(chunk)
    assert sink.chunks == [first]  # at once: no wait before the first words
    await throttle.put({"type": "text-end", "id": "t1"})
    assert sink.chunks == [first, delta("t1", "there you."), {"type": "text-end", "id": "t1"}]
    assert second == delta("t1", "there ")  # the caller's chunk is not changed by the merge


async def test_deltas_of_another_part_are_not_merged_and_keep_their_order():
    sink = Sink()
    throttle = DeltaThrottle(sink, window=60)
    for chunk in (delta("r1", "think ", "reasoning-delta"), delta("r1", "hard", "reasoning-delta"),
                  delta("t1", "Answer"), delta("t1", "!")):
        await throttle.put(chunk)
    await throttle.close()
    assert sink.chunks == [delta("r1", "think ", "reasoning-delta"), delta("r1", "hard", "reasoning-delta"),
                           delta("t1", "Answer!")]


async def test_a_held_delta_goes_out_when_its_window_ends_without_another_chunk():
    sink = Sink()
    throttle = DeltaThrottle(sink, window=0.05)
    for word in ("one ", "two ", "three"):
        await throttle.put(delta("t1", word))
    assert len(sink.chunks) == 1
    await sink.until(2)
    assert sink.chunks == [delta("t1", "one "), delta("t1", "two three")]
    await throttle.close()


async def test_close_sends_what_is_held_and_later_chunks_pass_straight_through():
    sink = Sink()
    throttle = DeltaThrottle(sink, window=60)
    await throttle.put(delta("t1", "a"))
    await throttle.put(delta("t1", "b"))
    await throttle.close()
    await throttle.put(delta("t1", "c"))
    await throttle.put(delta("t1", "d"))
    assert [c["delta"] for c in sink.chunks] == ["a", "b", "c", "d"]


WORDS = " ".join(f"w{index}" for index in range(40))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_a_fast_model_is_streamed_in_few_deltas_with_the_same_text():
    session = await new_session()
    events, turn, _ = await run_turn(session, script({"text": WORDS}))
    assert_turn_well_formed(events)
    assert streamed_text(events) == WORDS == turn.assistant_message.text
    assert chunk_types(events).count("text-delta") <= 10  # 40 words as fast as the model can


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_a_model_slower_than_the_window_gets_every_word_as_its_own_delta(copilot_settings):
    copilot_settings["DELTA_WINDOW_MS"] = 20
    session = await new_session()
    text = "slow words keep their own frames"
    events, _, _ = await run_turn(session, script({"text": text, "delay_ms": 150}))
    assert streamed_text(events) == text
    assert [e["chunk"]["delta"] for e in events if e["chunk"]["type"] == "text-delta"] == [
        "slow ", "words ", "keep ", "their ", "own ", "frames"]


async def test_a_held_delta_that_failed_to_go_out_does_not_stop_the_turn_from_closing():
    sent, failed = [], asyncio.Event()

    async def flaky(chunk: dict) -> None:  # the event log fails once, for the held delta only
        if chunk["delta"] == "held":
            failed.set()
            raise ConnectionError("the event log was briefly unreachable")
        sent.append(chunk)

    throttle = DeltaThrottle(flaky, window=0.05)
    await throttle.put(delta("t1", "first"))
    await throttle.put(delta("t1", "held"))
    await failed.wait()
    await throttle.close()  # logs the failure: a turn's _finish closes the throttle first, then ends the turn
    await throttle.put(delta("t1", "after"))
    assert [chunk["delta"] for chunk in sent] == ["first", "after"]
