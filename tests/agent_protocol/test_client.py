"""The Agent Protocol v1 through `agent-protocol-client` (PyPI) against a real server: tasks are chat sessions, steps
are turns (answered when they end), artifacts are workspace files; and per-user isolation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from agent_protocol.models import ProtocolTask
from chat.models import Turn
from tests.factories import make_user, script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SCENARIO = Path(__file__).with_name("client_scenario.py")


def test_the_pypi_client_runs_a_task_end_to_end(daphne_server, protocol_client):
    token = Token.objects.create(user=make_user()).key
    other = Token.objects.create(user=make_user()).key
    step_input = script({"tools": [{"name": "Write", "input": {"file_path": "notes/answer.txt",
                                                               "content": "forty-two"}}]},
                        {"text": "I wrote the answer down."})
    done = subprocess.run([str(protocol_client), str(SCENARIO), daphne_server.http_url, token, other, step_input],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    task_id = seen["task"]["task_id"]
    assert seen["task"]["input"] == step_input and seen["task"]["artifacts"] == []
    assert seen["task"]["additional_input"] == {"source": "client"}
    assert seen["tasks"] == [task_id]
    assert seen["tasks_pagination"] == {"total_items": 1, "total_pages": 1, "current_page": 1, "page_size": 5}
    assert seen["got_task"]["task_id"] == task_id

    step = seen["step"]
    turn = Turn.objects.get(pk=step["step_id"])
    assert str(turn.session_id) == task_id and turn.status == "completed"
    assert step["status"] == "completed" and step["output"] == "I wrote the answer down."
    assert step["additional_output"] == {"turn_status": "completed"} and step["is_last"] is False
    assert [(a["relative_path"], a["file_name"], a["agent_created"]) for a in step["artifacts"]] == [
        ("notes", "answer.txt", True)]
    assert seen["got_step"]["output"] == step["output"] and seen["steps"] == [step["step_id"]]

    assert seen["uploaded"]["file_name"] == "data.csv" and seen["uploaded"]["agent_created"] is False
    assert seen["uploaded"]["relative_path"] == "inputs"
    assert sorted((a["relative_path"], a["file_name"]) for a in seen["artifacts"]) == [
        ("inputs", "data.csv"), ("notes", "answer.txt")]
    assert seen["artifacts_pagination"]["total_items"] == 2
    assert seen["downloaded"] == "a,b\n1,2\n"

    assert seen["other_user"] == 404 and seen["other_tasks"] == []
    assert ProtocolTask.objects.get(session_id=task_id).session.owner.auth_token.key == token
