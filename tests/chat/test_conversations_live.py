"""PROTOCOL §8 over real HTTP against a real daphne: files the model reads and writes, edits and regenerates that
change what the model is given, the chosen model, and the export of what happened."""

from __future__ import annotations

import json
import uuid

import pytest

from chat.models import ChatSession
from tests.factories import script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ECHO = script({"echo": "user_messages"})


def turn(client, session, body: dict, *, path: str = "messages/") -> tuple[dict, list[dict]]:
    """Start a turn (a send, an edit or a regenerate) and read its stream to the end."""
    started = client.post(f"/api/sessions/{session.id}/{path}", json={"client_message_id": str(uuid.uuid4()), **body})
    assert started.status_code == 202, started.text
    chunks = []
    with client.stream("GET", f"/api/sessions/{session.id}/stream/") as response:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                return started.json(), chunks
            if line.startswith("data: "):
                chunks.append(json.loads(line[6:]))
    raise AssertionError("the stream ended without [DONE]")


def answer(chunks) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def tool_output(chunks, tool_name: str) -> dict:
    call = next(chunk for chunk in chunks if chunk["type"] == "tool-input-available" and chunk["toolName"] == tool_name)
    return next(chunk for chunk in chunks if chunk.get("toolCallId") == call["toolCallId"]
                and chunk["type"] in {"tool-output-available", "tool-output-error"})


def test_the_model_reads_a_file_uploaded_before_the_turn(api):
    client, session = api
    uploaded = client.post(f"/api/sessions/{session.id}/files/",
                           files={"file": ("meeting notes.txt", b"Budget: 1200 EUR\nVenue: the old library\n")})
    assert uploaded.status_code == 201 and uploaded.json()["path"] == "meeting notes.txt"
    _, chunks = turn(client, session, {"text": "What is the budget?\n" + script(
        {"tools": [{"name": "Read", "input": {"file_path": "meeting notes.txt"}}]}, {"text": "It is 1200 EUR."})})
    read = tool_output(chunks, "Read")
    assert read["type"] == "tool-output-available" and "Budget: 1200 EUR" in json.dumps(read["output"])
    assert answer(chunks) == "It is 1200 EUR."


def test_a_file_the_model_wrote_is_listed_and_downloaded(api):
    client, session = api
    _, chunks = turn(client, session, {"text": script(
        {"tools": [{"name": "Write", "input": {"file_path": "out/report.md", "content": "# Report\n\nAll good.\n"}}]},
        {"text": "Written."})})
    assert tool_output(chunks, "Write")["type"] == "tool-output-available"
    listed = client.get(f"/api/sessions/{session.id}/files/").json()
    assert [(file["path"], file["size"]) for file in listed] == [("out/report.md", 20)]
    downloaded = client.get(f"/api/sessions/{session.id}/files/out/report.md")
    assert downloaded.status_code == 200 and downloaded.content == b"# Report\n\nAll good.\n"
    assert downloaded.headers["content-disposition"] == 'attachment; filename="report.md"'
    assert downloaded.headers["x-content-type-options"] == "nosniff"


def test_edit_and_regenerate_over_http_change_what_the_model_is_given(api):
    client, session = api
    turn(client, session, {"text": f"one\n{ECHO}"})
    second, _ = turn(client, session, {"text": f"two\n{ECHO}"})
    edited, chunks = turn(client, session, {"text": f"two, edited\n{ECHO}", "edit_of": second["message_id"]})
    assert [text.split("\n")[0] for text in json.loads(answer(chunks))] == ["one", "two, edited"]

    snapshot = client.get(f"/api/sessions/{session.id}/").json()
    answer_id = snapshot["messages"][-1]["id"]
    regenerated, chunks = turn(client, session, {}, path=f"messages/{answer_id}/regenerate/")
    assert regenerated["message_id"] == edited["message_id"]
    assert [text.split("\n")[0] for text in json.loads(answer(chunks))] == ["one", "two, edited"]
    snapshot = client.get(f"/api/sessions/{session.id}/").json()
    assert snapshot["messages"][-1]["branch"]["count"] == 2 and snapshot["messages"][-1]["branch"]["index"] == 1
    assert snapshot["messages"][2]["branch"]["siblings"] == [second["message_id"], edited["message_id"]]

    switched = client.patch(f"/api/sessions/{session.id}/", json={"active_leaf": second["message_id"]})
    assert [m["id"] for m in switched.json()["messages"]][2] == second["message_id"]
    _, chunks = turn(client, session, {"text": f"three\n{ECHO}"})
    assert [text.split("\n")[0] for text in json.loads(answer(chunks))] == ["one", "two", "three"]


def test_the_chosen_model_runs_the_next_turn(api, local_model):
    client, session = api
    models = client.get("/api/models/").json()
    chosen = next(model["id"] for model in models if not model["default"])
    assert client.patch(f"/api/sessions/{session.id}/", json={"model": chosen}).json()["model"] == chosen
    sent_before = len(local_model.model.requests)
    _, chunks = turn(client, session, {"text": "which model?\n" + script({"text": "this one"})})
    assert answer(chunks) == "this one"
    asked = {request["model"] for request in local_model.model.requests[sent_before:] if request.get("messages")}
    assert chosen in asked
    assert ChatSession.objects.get(pk=session.pk).model == chosen


def test_export_has_what_the_turn_did(api):
    client, session = api
    turn(client, session, {"text": "write it down\n" + script(
        {"tools": [{"name": "Write", "input": {"file_path": "a.txt", "content": "A"}}]}, {"text": "Done, see a.txt."})})
    markdown = client.get(f"/api/sessions/{session.id}/export/", params={"format": "markdown"})
    assert markdown.status_code == 200 and "attachment" in markdown.headers["content-disposition"]
    assert "### Tool call `Write`" in markdown.text and '"file_path": "a.txt"' in markdown.text
    assert "Done, see a.txt." in markdown.text
    exported = client.get(f"/api/sessions/{session.id}/export/", params={"format": "json"}).json()
    tool = next(part for part in exported["messages"][1]["parts"] if part["type"] == "dynamic-tool")
    assert tool["toolName"] == "Write" and tool["input"]["content"] == "A" and tool["state"] == "output-available"
    assert exported["messages"][1]["usage"]["cost_usd"] > 0
