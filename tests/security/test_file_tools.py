"""The file tools through the real SDK and CLI: escapes of every kind are refused, work inside the workspace works."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from chat.engine import policy
from chat.models import ToolCallStatus, TurnStatus
from tests.factories import assert_turn_well_formed, script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


def read(path) -> dict:
    return {"name": "Read", "input": {"file_path": str(path)}}


def assert_refused(result, tool_name: str, expected_words: str | None = "workspace", **input_fields) -> str:
    output = result.output_of(tool_name, **input_fields)
    assert output["type"] == "tool-output-error", output
    assert output["errorText"], output
    if expected_words:
        assert expected_words in output["errorText"], output
    return output["errorText"]


def denied_count() -> int:
    return sum(policy.denials.values())


async def test_reads_that_escape_the_workspace_are_refused_and_the_turn_goes_on(chat, outside, model_saw):
    os.symlink(outside.secret_file, chat.workspace / "innocent.txt")
    os.symlink(outside.folder, chat.workspace / "innocent-folder")
    climbing = os.path.relpath(outside.secret_file, chat.workspace)
    assert climbing.startswith("..")
    denied_before = denied_count()

    result = await chat.run(script(
        {"tools": [read(climbing), read("/etc/passwd"), read(outside.secret_file), read("innocent.txt"),
                   read("innocent-folder/secret.txt"), read("/dev/zero")]},
        {"text": "Nothing to read, then."}))

    assert_turn_well_formed(result.events)
    for path in [outside.secret_file, "/etc/passwd", "innocent.txt", "innocent-folder/secret.txt"]:
        assert_refused(result, "Read", file_path=str(path))
    assert_refused(result, "Read", file_path=climbing)  # the CLI makes it absolute; still outside
    assert_refused(result, "Read", expected_words=None, file_path="/dev/zero")  # the CLI refuses devices first
    assert result.status() == "completed" and result.turn.status == TurnStatus.COMPLETED
    assert result.turn.assistant_message.text == "Nothing to read, then."
    assert {call.status for call in result.calls} == {ToolCallStatus.FAILED}
    # Nothing outside reached the model, the events or the database.
    assert not model_saw(outside.secret) and not model_saw("root:x:0:0")
    assert outside.secret not in json.dumps(result.events)
    assert denied_count() - denied_before >= 5


async def test_searches_that_escape_the_workspace_are_refused(chat, outside, model_saw):
    os.symlink(outside.folder, chat.workspace / "innocent-folder")
    (chat.workspace / "mine.txt").write_text("TOP SECRET is also in here, harmlessly")
    denied_before = policy.denials.copy()

    result = await chat.run(script({"tools": [
        {"name": "Glob", "input": {"pattern": "/**"}},
        {"name": "Glob", "input": {"pattern": "../**/secret.txt"}},
        {"name": "Glob", "input": {"pattern": "*.txt", "path": str(outside.folder)}},
        {"name": "Grep", "input": {"pattern": "TOP SECRET", "path": "/", "output_mode": "content"}},
        {"name": "Grep", "input": {"pattern": "TOP SECRET", "path": "innocent-folder", "output_mode": "content"}},
        {"name": "Grep", "input": {"pattern": "TOP SECRET", "glob": "../**", "output_mode": "content"}},
    ]}))

    assert_turn_well_formed(result.events)
    assert_refused(result, "Glob", "relative to the folder searched", pattern="/**")
    assert_refused(result, "Glob", "without '..'", pattern="../**/secret.txt")
    assert_refused(result, "Glob", path=str(outside.folder))
    assert_refused(result, "Grep", path="/")
    assert_refused(result, "Grep", path="innocent-folder")
    assert_refused(result, "Grep", "without '..'", glob="../**")
    assert result.status() == "completed"
    assert not model_saw(outside.secret)
    assert policy.denials[("Glob", policy.BAD_PATTERN)] - denied_before[("Glob", policy.BAD_PATTERN)] == 2
    assert policy.denials[("Grep", policy.OUTSIDE_WORKSPACE)] - denied_before[("Grep", policy.OUTSIDE_WORKSPACE)] == 2


async def test_writes_outside_the_workspace_are_refused_and_nothing_is_written(chat, outside):
    os.symlink(outside.folder, chat.workspace / "innocent-folder")
    os.symlink(outside.secret_file, chat.workspace / "innocent.txt")
    os.symlink(outside.folder / "new.txt", chat.workspace / "dangling.txt")
    elsewhere = Path("/tmp") / f"copilot-pwned-{uuid.uuid4().hex}.txt"
    climbing = os.path.relpath(outside.folder / "pwned.txt", chat.workspace)

    result = await chat.run(script(
        {"tools": [read("innocent.txt")]},  # Edit wants a Read first: it is refused as well
        {"tools": [
            {"name": "Write", "input": {"file_path": str(elsewhere), "content": "pwned"}},
            {"name": "Write", "input": {"file_path": climbing, "content": "pwned"}},
            {"name": "Write", "input": {"file_path": "innocent-folder/pwned.txt", "content": "pwned"}},
            {"name": "Write", "input": {"file_path": "dangling.txt", "content": "pwned"}},
            {"name": "Write", "input": {"file_path": "innocent.txt", "content": "pwned"}},
            {"name": "Edit", "input": {"file_path": "innocent.txt", "old_string": "TOP", "new_string": "pwned"}},
        ]},
        {"text": "Could not write there."}))

    assert_turn_well_formed(result.events)
    assert_refused(result, "Write", file_path=str(elsewhere))
    assert_refused(result, "Write", file_path=climbing)
    assert_refused(result, "Write", file_path="innocent-folder/pwned.txt")
    assert_refused(result, "Write", "a link that leads outside", file_path="dangling.txt")
    # An existing file must be read before it is written, and its Read was refused: the CLI refuses these first.
    assert_refused(result, "Write", expected_words=None, file_path="innocent.txt")
    assert_refused(result, "Edit", expected_words=None, file_path="innocent.txt")
    assert result.status() == "completed"
    assert outside.untouched() and not elsewhere.exists()
    assert (chat.workspace / "innocent.txt").is_symlink() and (chat.workspace / "dangling.txt").is_symlink()


async def test_file_tools_work_inside_the_workspace(chat):
    result = await chat.run(script(
        {"tools": [{"name": "Write", "input": {"file_path": "notes/hello.txt", "content": "hello from the copilot\n"}}]},
        {"tools": [read("notes/hello.txt"), {"name": "Glob", "input": {"pattern": "**/*.txt"}},
                   {"name": "Grep", "input": {"pattern": "hello", "output_mode": "files_with_matches"}}]},
        {"tools": [{"name": "Edit", "input": {"file_path": str(chat.workspace / "notes/hello.txt"),
                                              "old_string": "hello", "new_string": "goodbye"}}]},
        {"text": "Written, read, found and edited."}))

    assert_turn_well_formed(result.events)
    outputs = list(result.outputs().values())
    assert [o["type"] for o in outputs] == ["tool-output-available"] * 5, outputs
    assert "hello from the copilot" in json.dumps(result.output_of("Read")["output"])
    assert "notes/hello.txt" in json.dumps(result.output_of("Glob")["output"])
    assert "hello.txt" in json.dumps(result.output_of("Grep")["output"])
    assert (chat.workspace / "notes" / "hello.txt").read_text() == "goodbye from the copilot\n"
    assert result.status() == "completed"


async def test_a_large_file_is_truncated_in_the_event_and_kept_whole(chat, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "TOOL_OUTPUT_EVENT_CHARS": 1000}
    (chat.workspace / "big.txt").write_text("".join(f"line {n:03d} " + "x" * 90 + "\n" for n in range(60)))

    result = await chat.run(script({"tools": [read("big.txt")]}))

    output = result.output_of("Read")["output"]
    assert output["truncated"] is True and len(output["preview"]) == 1000 and "saved whole" in output["note"]
    [call] = result.calls
    assert "line 059" in json.dumps(call.output)
