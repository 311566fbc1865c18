"""The SSE stream (PROTOCOL §4), read by a real HTTP client from a real daphne process."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.factories import assert_turn_well_formed, make_user, script, streamed_text, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def read_sse(response) -> tuple[list[dict], bool]:
    """The events of an SSE response (id + parsed chunk), and whether it ended with [DONE]."""
    events, current_id, done = [], None, False
    for line in response.iter_lines():
        if line.startswith("id: "):
            current_id = int(line[4:])
        elif line.startswith("data: "):
            if line == "data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            if not chunk.get("transient"):  # transient parts (liveness) are never part of a message
                events.append({"seq": current_id, "chunk": chunk})
    return events, done


def post_message(client, session, text):
    response = client.post(f"/api/sessions/{session.id}/messages/",
                           json={"text": text, "client_message_id": str(uuid.uuid4())})
    assert response.status_code == 202, response.text
    return response.json()


def test_idle_session_is_204(api):
    client, session = api
    assert client.get(f"/api/sessions/{session.id}/stream/").status_code == 204


def test_streams_the_active_turn_from_its_start_then_done(api):
    client, session = api
    post_message(client, session, script({"text": "Streaming over SSE.", "tools": [wait_tool(0.5)]}, {"text": "!"}))
    with client.stream("GET", f"/api/sessions/{session.id}/stream/") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        events, done = read_sse(response)
    assert done
    assert events[0]["chunk"]["type"] == "start"
    assert_turn_well_formed(events)
    assert streamed_text(events) == "Streaming over SSE.!"


def test_last_event_id_resumes_mid_turn_and_after_the_end(api):
    client, session = api
    post_message(client, session, script({"text": "one two", "tools": [wait_tool(0.5)]}, {"text": "three"}))
    with client.stream("GET", f"/api/sessions/{session.id}/stream/") as response:
        first = []
        for line in response.iter_lines():
            if line.startswith("id: "):
                first.append(int(line[4:]))
            if len(first) == 4:
                break
    with client.stream("GET", f"/api/sessions/{session.id}/stream/", headers={"Last-Event-ID": str(first[-1])}) as resp:
        rest, done = read_sse(resp)
    assert done and rest[0]["seq"] == first[-1] + 1 and rest[-1]["chunk"]["type"] == "finish"
    # Right after the end, a client that missed the last events still gets them, then [DONE].
    with client.stream("GET", f"/api/sessions/{session.id}/stream/?after={rest[-3]['seq']}") as resp:
        tail, done = read_sse(resp)
    assert done and [e["chunk"]["type"] for e in tail] == ["data-turn", "finish"]
    assert client.get(f"/api/sessions/{session.id}/stream/?after={rest[-1]['seq']}").status_code == 204


@pytest.mark.parametrize("after", ["-1", "x", "99999"])
def test_bad_after_is_400(api, after):
    client, session = api
    response = client.get(f"/api/sessions/{session.id}/stream/?after={after}")
    assert response.status_code == 400 and response.json()["code"] == "bad_seq"


def test_another_users_stream_is_404_and_anonymous_is_401(api, daphne_server):
    client, session = api
    stranger = Token.objects.create(user=make_user()).key
    response = httpx.get(f"{daphne_server.http_url}/api/sessions/{session.id}/stream/",
                         headers={"Authorization": f"Token {stranger}"})
    assert response.status_code == 404 and response.json() == {"code": "not_found", "message": "no such session"}
    assert httpx.get(f"{daphne_server.http_url}/api/sessions/{session.id}/stream/").status_code == 401
