"""What each watching socket does per event: sends the JSON made once at publish, with no per-event thread hop."""

from __future__ import annotations

import json

import pytest
from channels.layers import get_channel_layer

from chat.events import chunks
from chat.events.factory import get_event_log
from chat.events.log import Event, publish, session_group
from tests.chat.test_turn_websocket import connect, owner_with_session
from tests.factories import next_frame

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_socket_sends_each_event_as_the_json_made_when_it_was_published():
    _, session, token = await owner_with_session()
    communicator = await connect(session, token)
    await communicator.send_json_to({"type": "resume", "after_seq": 0})
    await communicator.send_json_to({"type": "ping"})
    assert await next_frame(communicator) == {"type": "pong"}
    frame = {"type": "event", "seq": 1, "turn_id": None, "chunk": chunks.start("m1")}
    made_once = json.dumps(frame, separators=(",", ":"))  # not how the socket would write it itself
    await get_channel_layer().group_send(session_group(str(session.id)),
                                         {"type": "chat.events", "events": [frame], "texts": [made_once]})
    assert await communicator.receive_from() == made_once
    await communicator.disconnect()


async def test_publish_makes_each_frame_json_once_for_every_socket(monkeypatch):
    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append(message)

    monkeypatch.setattr("chat.events.log.get_channel_layer", Layer)
    events = [Event.of(7, "s1", "t1", chunks.start("m1")), Event.of(8, "s1", "t1", chunks.finish())]
    await publish("s1", events)
    [message] = sent
    assert message["events"] == [event.frame() for event in events]
    assert [json.loads(text) for text in message["texts"]] == message["events"]


async def test_a_socket_delivers_events_without_closing_old_database_connections_each_time(monkeypatch):
    _, session, token = await owner_with_session()
    communicator = await connect(session, token)
    await communicator.send_json_to({"type": "resume", "after_seq": 0})
    await communicator.send_json_to({"type": "ping"})
    assert await next_frame(communicator) == {"type": "pong"}
    hops = []

    async def counted_hop():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counted_hop)
    events = await get_event_log().append(str(session.id), None, [chunks.start("m1"), chunks.finish()])
    for event in events:
        assert (await next_frame(communicator))["seq"] == event.seq
    assert hops == []
    await communicator.disconnect()
