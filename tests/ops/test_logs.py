"""LOG_FORMAT=json (PROTOCOL §9): one JSON object per line, with the ids of the session, turn, tool call and user
carried by context, not pasted into messages; text stays the default."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

from ops.logs import JsonFormatter, LogContextFilter
from tests.conftest import PROJECT_DIR, ServerProcess
from tests.factories import is_finish, make_session, make_user, receive_until, script, send_frame, wait_tool
from tests.ops.conftest import new_session, run_turn


@pytest.fixture
def json_lines():
    """What the root logger writes, as LOG_FORMAT=json formats it (the settings' formatter and filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_the_lines_of_a_turn_carry_its_ids_and_a_denied_call_its_tool_call_id(json_lines):
    session = await new_session()
    events, turn, calls = await run_turn(session, script(
        {"tools": [{"name": "Read", "input": {"file_path": "/etc/passwd"}}]}, {"text": "Not allowed."}))
    [call] = calls
    lines = json_lines()

    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    ids = {"session_id": str(session.id), "turn_id": str(turn.id), "user_id": session.owner_id}
    ended = [line for line in lines if line["logger"] == "chat.engine.runner" and "ended completed" in line["message"]]
    assert len(ended) == 1 and ended[0]["level"] == "INFO"
    assert {key: ended[0].get(key) for key in ids} == ids
    assert "tool_call_id" not in ended[0]  # no call is being handled there
    [denied] = [line for line in lines if line["logger"] == "chat.engine.policy"]
    assert denied["level"] == "WARNING" and "denied Read" in denied["message"]
    assert {key: denied.get(key) for key in ids} == ids
    assert denied["tool_call_id"] == call.tool_use_id
    assert denied["time"].endswith("+00:00")


def test_lines_outside_a_turn_carry_no_ids(json_lines):
    logging.getLogger("copilot.test").warning("nothing to do with any turn: %s", 42)
    [line] = [line for line in json_lines() if line["logger"] == "copilot.test"]
    assert line["message"] == "nothing to do with any turn: 42"
    assert not {"session_id", "turn_id", "tool_call_id", "user_id"} & set(line)


@database_sync_to_async
def owner_with_a_session():
    user = make_user()
    return str(make_session(user).id), Token.objects.create(user=user).key


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
async def test_a_server_with_log_format_json_writes_json_lines(local_model, tmp_path):
    session_id, token = await owner_with_a_session()
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path, extra_env={"LOG_FORMAT": "json"})
    try:
        async with websockets.connect(f"{server.ws_url}/ws/sessions/{session_id}/",
                                      additional_headers={"Authorization": f"Token {token}"}) as client:
            await client.send(json.dumps({"type": "resume", "after_seq": 0}))
            await client.send(json.dumps(send_frame(script({"tools": [wait_tool(0.1)]}, {"text": "Logged."}))))
            frames = await receive_until(client, is_finish)
    finally:
        server.stop()
    output = server.log_path.read_text().splitlines()
    # serve's own banner (its command output) comes first; everything logged is JSON.
    logged = [json.loads(line) for line in output if line.startswith("{")]
    assert len(logged) >= 2 and len(logged) == len([line for line in output if not banner(line)])
    ended = [line for line in logged if line.get("turn_id") == frames[0]["turn_id"] and line["message"].endswith("ended completed")]
    assert len(ended) == 1 and ended[0]["session_id"] == session_id


def banner(line: str) -> bool:
    return line.startswith(("Local model at", "Model endpoint", "copilot is ready at", "Stop with", "Log in as",
                            "Operations to perform", "  ")) or not line.strip()


def test_a_log_format_that_is_neither_text_nor_json_stops_the_server(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, capture_output=True, text=True,
                            env={**os.environ, "LOG_FORMAT": "xml", "COPILOT_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "LOG_FORMAT='xml'" in result.stderr
