"""Fixtures of the security tests: real turns, a chat's workspace, and a secret outside it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from chat.engine.registry import begin_turn, running_turns
from chat.models import ToolCall, Turn
from chat.workspaces import workspace_for
from tests.factories import EventWatcher, make_session, make_user


@dataclass
class TurnResult:
    events: list[dict]
    turn: Turn
    calls: list[ToolCall]

    def outputs(self) -> dict[str, dict]:
        """Each tool call's output chunk, by tool call id."""
        return {e["chunk"]["toolCallId"]: e["chunk"] for e in self.events
                if e["chunk"]["type"] in {"tool-output-available", "tool-output-error"}}

    def output_of(self, tool_name: str, **input_fields) -> dict:
        """The output chunk of the one call of `tool_name` whose input has these fields."""
        [call_id] = [e["chunk"]["toolCallId"] for e in self.events if e["chunk"]["type"] == "tool-input-available"
                     and e["chunk"]["toolName"] == tool_name
                     and all(e["chunk"]["input"].get(k) == v for k, v in input_fields.items())]
        return self.outputs()[call_id]

    def status(self) -> str:
        return self.events[-2]["chunk"]["data"]["status"]


@dataclass
class Chat:
    """A chat session of a new user, with its workspace folder."""

    session: object
    workspace: Path

    async def run(self, text: str, *, timeout: float = 60) -> TurnResult:
        """Start a turn and watch it to its `finish`."""
        async with EventWatcher(self.session.id) as watcher:
            started = await begin_turn(session=self.session, text=text, client_message_id=uuid.uuid4())
            events = await watcher.until_finish(timeout=timeout)
        task = running_turns.task_for(str(self.session.id))
        if task is not None:
            await task
        turn, calls = await database_sync_to_async(lambda: (
            Turn.objects.select_related("assistant_message").get(pk=started.turn.id),
            list(ToolCall.objects.filter(turn_id=started.turn.id).order_by("part_index"))))()
        return TurnResult(events=events, turn=turn, calls=calls)


@pytest.fixture
async def chat() -> Chat:
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    return Chat(session=session, workspace=workspace_for(str(session.id)))


@dataclass
class Outside:
    """A folder outside every workspace, with a secret file the model must never see."""

    folder: Path
    secret_file: Path
    secret: str

    def untouched(self) -> bool:
        return sorted(p.name for p in self.folder.iterdir()) == ["secret.txt"] and \
            self.secret_file.read_text() == self.secret


@pytest.fixture
def outside(tmp_path) -> Outside:
    folder = tmp_path / "outside"
    folder.mkdir()
    secret = f"TOP SECRET {uuid.uuid4().hex}"
    (folder / "secret.txt").write_text(secret)
    return Outside(folder=folder, secret_file=folder / "secret.txt", secret=secret)


@pytest.fixture
def model_saw(local_model):
    """model_saw(text): whether any request the CLI sent to the model during this test holds `text`."""
    first = len(local_model.model.requests)
    return lambda text: any(text in json.dumps(body) for body in local_model.model.requests[first:])
