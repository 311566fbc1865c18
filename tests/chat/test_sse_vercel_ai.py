"""The SSE stream read by the Vercel AI SDK's own chat client (`ai` on npm: Chat + DefaultChatTransport,
as `useChat({resume: true})` uses them), run with Node.js against a real daphne process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from rest_framework.authtoken.models import Token

from chat.models import ChatSession
from tests.conftest import ServerProcess
from tests.factories import make_session, make_user, receive_until, script, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CLIENT_DIR = Path(__file__).resolve().parent.parent / "vercel_ai"


@pytest.fixture(scope="module")
def node():
    """Node.js with the `ai` package that `./dev test` installs into tests/vercel_ai (npm ci)."""
    node = shutil.which("node")
    if node is None or not (CLIENT_DIR / "node_modules" / "ai").is_dir():
        reason = "needs Node.js and npm (./dev test then installs the AI SDK into tests/vercel_ai)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return node


def resume_with_use_chat(node, client, session, messages, *, recorded_sse: str | None = None) -> dict:
    """What the AI SDK's chat holds after resuming the session's stream from `messages` (or reading
    `recorded_sse` as that stream)."""
    token = client.headers["Authorization"].removeprefix("Token ")
    env = {**os.environ, "CHAT_MESSAGES": json.dumps(messages)}
    if recorded_sse is not None:
        env["CHAT_SSE"] = recorded_sse
    result = subprocess.run([node, "resume_chat.mjs", str(client.base_url).rstrip("/"), str(session.id), token],
                            cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def snapshot(client, session) -> dict:
    response = client.get(f"/api/sessions/{session.id}/")
    assert response.status_code == 200, response.text
    return response.json()


def until_tools_are_running(client, session, count: int, timeout: float = 30) -> dict:
    """The snapshot once the running turn shows `count` pending tool calls."""
    deadline = time.monotonic() + timeout
    while True:
        body = snapshot(client, session)
        if body["active_turn"] and body["messages"]:
            tools = [p for p in body["messages"][-1]["parts"] if p["type"] == "dynamic-tool"]
            if len(tools) == count:
                return body
        assert time.monotonic() < deadline, "the turn's tool calls did not show"
        time.sleep(0.05)  # another process's turn: polling the API is how a client learns this


def comparable(message: dict) -> list[dict]:
    """A message's text and tool parts, as both sides name them."""
    parts = []
    for part in message["parts"]:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif part["type"] == "dynamic-tool":
            parts.append({key: part.get(key) for key in ("type", "toolCallId", "toolName", "state", "input", "output")})
    return parts


def test_use_chat_resumes_a_running_turn_and_ends_with_the_saved_message(node, api):
    client, session = api
    response = client.post(f"/api/sessions/{session.id}/messages/", json={
        "text": script({"text": "Two at once.", "tools": [wait_tool(1.5), wait_tool(1)]}, {"text": "Both **done**."}),
        "client_message_id": str(uuid.uuid4())})
    assert response.status_code == 202, response.text
    hydrated = until_tools_are_running(client, session, 2)  # a page opened mid-turn

    chat = resume_with_use_chat(node, client, session, hydrated["messages"])

    assert chat["errors"] == [] and chat["error"] is None and chat["status"] == "ready"
    saved = snapshot(client, session)
    assert saved["active_turn"] is None
    assistant = saved["messages"][-1]
    assert [m["id"] for m in chat["messages"]] == [m["id"] for m in saved["messages"]]  # replayed, not appended
    assert chat["finishes"] == [{"id": assistant["id"], "isAbort": False, "isDisconnect": False, "isError": False}]
    resumed = chat["messages"][-1]
    assert comparable(resumed) == comparable(assistant)
    tools = [part for part in resumed["parts"] if part["type"] == "dynamic-tool"]
    assert [part["state"] for part in tools] == ["output-available", "output-available"]
    assert "".join(part["text"] for part in resumed["parts"] if part["type"] == "text") == "Two at once.Both **done**."
    usage = [part for part in resumed["parts"] if part["type"] == "data-usage"]  # PROTOCOL §8, read as a data part
    assert len(usage) == 1 and usage[0]["data"] == assistant["usage"] and usage[0]["data"]["cost_usd"] > 0


def test_use_chat_resume_on_an_idle_session_leaves_the_chat_as_it_was(node, api):
    client, session = api
    hydrated = snapshot(client, session)["messages"]
    chat = resume_with_use_chat(node, client, session, hydrated)
    assert chat == {"status": "ready", "error": None, "errors": [], "finishes": [], "messages": hydrated}


@pytest.fixture(scope="module")
def titling_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    """A server that writes titles after first turns, as deployed."""
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("titles"),
                           extra_env={"COPILOT_WRITE_TITLES": "1"})
    yield server
    server.stop()


async def events_until_title(server, session, token) -> list[dict]:
    async with websockets.connect(f"{server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers={"Authorization": f"Token {token}"}) as socket:
        await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        frames = await receive_until(socket, lambda frame: frame.get("type") == "event"
                                     and frame["chunk"]["type"] == "data-title", timeout=30)
    return [frame for frame in frames if frame["type"] == "event"]


def test_use_chat_reads_a_first_turn_and_the_title_that_follows_it(node, titling_server):
    user = make_user()
    session = make_session(user, title="New chat")
    ChatSession.objects.filter(pk=session.pk).update(title_set=False)
    token = Token.objects.create(user=user).key
    with httpx.Client(base_url=titling_server.http_url, headers={"Authorization": f"Token {token}"},
                      timeout=30) as client:
        response = client.post(f"/api/sessions/{session.id}/messages/", json={
            "text": "compare two wait times\n" + script({"tools": [wait_tool(1)]}, {"text": "One second."})})
        assert response.status_code == 202
        live = resume_with_use_chat(node, client, session, until_tools_are_running(client, session, 1)["messages"])
        assert live["errors"] == [] and live["status"] == "ready"

        events = asyncio.run(events_until_title(titling_server, session, token))
        title = events[-1]
        assert title["turn_id"] is None and title["chunk"]["data"]["title"] == "Compare Two Wait Times"
        # The event stream carries turns only; the title reaches the sockets and the snapshot. As the same SSE:
        recorded = "".join(f"id: {event['seq']}\ndata: {json.dumps(event['chunk'])}\n\n" for event in events)
        read = resume_with_use_chat(node, client, session, [], recorded_sse=recorded + "data: [DONE]\n\n")
    assert read["errors"] == [] and read["error"] is None and read["status"] == "ready"
    parts = read["messages"][-1]["parts"]
    assert {"type": "data-title", "data": {"title": "Compare Two Wait Times"}} in parts
    assert any(part["type"] == "data-usage" for part in parts)
    assert "One second." in "".join(part.get("text", "") for part in parts if part["type"] == "text")
