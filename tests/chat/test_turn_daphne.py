"""The same real turn through a real daphne process and a real websocket client, then read over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

from chat.models import ToolCall, Turn, TurnStatus
from tests.factories import (
    assert_turn_well_formed,
    is_finish,
    make_session,
    make_user,
    receive_until,
    script,
    send_frame,
    streamed_text,
    wait_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@database_sync_to_async
def turn_rows(turn_id):
    return Turn.objects.get(pk=turn_id).status, ToolCall.objects.filter(turn_id=turn_id, status="completed").count()


@pytest.fixture
def owner():
    user = make_user()
    return user, make_session(user), Token.objects.create(user=user).key


async def test_scripted_parallel_turn_over_a_real_socket(daphne_server, owner):
    user, session, token = owner
    headers = {"Authorization": f"Token {token}"}
    text = script({"text": "Starting.", "tools": [wait_tool(1), wait_tool(0.5), wait_tool(1.5)]}, {"text": "Done now."})
    async with websockets.connect(f"{daphne_server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers=headers) as socket:
        await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        await socket.send(json.dumps(send_frame(text)))
        frames = await receive_until(socket, is_finish)

    ack, events = frames[0], frames[1:]
    assert ack["type"] == "ack"
    assert_turn_well_formed(events)
    assert streamed_text(events) == "Starting.Done now."
    outputs = [e["chunk"]["output"] for e in events if e["chunk"]["type"] == "tool-output-available"]
    assert sorted(o["seconds"] for o in outputs) == [0.5, 1, 1.5]

    turn_status, completed_calls = await turn_rows(ack["turn_id"])
    assert turn_status == TurnStatus.COMPLETED
    assert completed_calls == 3

    async with httpx.AsyncClient(base_url=daphne_server.http_url, headers=headers) as client:
        snapshot = (await client.get(f"/api/sessions/{session.id}/")).json()
    assert snapshot["active_turn"] is None
    assert snapshot["last_seq"] == events[-1]["seq"]
    user_message, answer = snapshot["messages"]
    assert user_message["role"] == "user" and user_message["parts"][0]["text"] == text
    assert [p["type"] for p in answer["parts"]] == ["text", "dynamic-tool", "dynamic-tool", "dynamic-tool", "text"]
    assert all(p["state"] == "output-available" for p in answer["parts"] if p["type"] == "dynamic-tool")


async def test_a_browser_origin_from_elsewhere_is_refused(daphne_server, owner):
    user, session, token = owner
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{daphne_server.ws_url}/ws/sessions/{session.id}/",
                                      additional_headers={"Authorization": f"Token {token}"},
                                      origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_closing_the_socket_does_not_stop_the_turn(daphne_server, owner):
    user, session, token = owner
    async with websockets.connect(f"{daphne_server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers={"Authorization": f"Token {token}"}) as socket:
        await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        await socket.send(json.dumps(send_frame(script({"tools": [wait_tool(1)]}, {"text": "finished alone"}))))
        frames = await receive_until(socket, lambda f: f.get("type") == "event"
                                     and f["chunk"]["type"] == "tool-input-available")
    turn_id = frames[0]["turn_id"]
    # Nobody is watching now; a new socket later resumes and sees the end.
    async with websockets.connect(f"{daphne_server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers={"Authorization": f"Token {token}"}) as socket:
        await socket.send(json.dumps({"type": "resume", "after_seq": frames[-1]["seq"]}))
        rest = await receive_until(socket, is_finish)
    assert_turn_well_formed([f for f in frames if f["type"] == "event"] + rest)
    assert streamed_text(rest) == "finished alone"
    status, completed_calls = await turn_rows(turn_id)
    assert status == TurnStatus.COMPLETED and completed_calls == 1


async def test_sigterm_ends_a_running_turn_as_interrupted(local_model, tmp_path, owner):
    from tests.conftest import ServerProcess

    user, session, token = owner
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path)
    try:
        async with websockets.connect(f"{server.ws_url}/ws/sessions/{session.id}/",
                                      additional_headers={"Authorization": f"Token {token}"}) as socket:
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
            await socket.send(json.dumps(send_frame(script({"tools": [wait_tool(60)]}))))
            frames = await receive_until(socket, lambda f: f.get("type") == "event"
                                         and f["chunk"]["type"] == "tool-input-available")
            server.process.terminate()
            rest = await receive_until(socket, is_finish, timeout=20)
    finally:
        server.stop()
    events = [f for f in frames if f["type"] == "event"] + rest
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == "interrupted"
    status, _ = await turn_rows(frames[0]["turn_id"])
    assert status == TurnStatus.INTERRUPTED
