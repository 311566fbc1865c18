"""The SSE stream read by the Vercel AI SDK's own chat client (`ai` on npm: Chat + DefaultChatTransport,
as `useChat({resume: true})` uses them), run with Node.js against a real daphne process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.factories import script, wait_tool

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


def resume_with_use_chat(node, client, session, messages) -> dict:
    """What the AI SDK's chat holds after resuming the session's stream from `messages`."""
    token = client.headers["Authorization"].removeprefix("Token ")
    result = subprocess.run([node, "resume_chat.mjs", str(client.base_url).rstrip("/"), str(session.id), token],
                            cwd=CLIENT_DIR,
                            env={**os.environ, "CHAT_MESSAGES": json.dumps(messages)},
                            capture_output=True, text=True, timeout=60)
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


def test_use_chat_resume_on_an_idle_session_leaves_the_chat_as_it_was(node, api):
    client, session = api
    hydrated = snapshot(client, session)["messages"]
    chat = resume_with_use_chat(node, client, session, hydrated)
    assert chat == {"status": "ready", "error": None, "errors": [], "finishes": [], "messages": hydrated}
