"""Shared builders for test data, and helpers that read a turn's frames the way a client would."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from chat.engine.registry import begin_turn, running_turns
from chat.models import ChatSession, ToolCall, Turn

PASSWORD = "correct horse battery staple"


def make_user(username: str | None = None, *, portable: bool = False, **extra: Any):
    """A user with PASSWORD; `portable` hashes it as production does, for logins on a server process."""
    user = get_user_model()(username=username or f"user-{uuid.uuid4().hex[:8]}", **extra)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256" if portable else "default")
    user.save()
    return user


def make_session(owner, title: str = "Test chat") -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=title)


def text_tool(template: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run_block call of the `text` block: its output is `template` filled with `values`."""
    return {"name": "mcp__copilot__run_block",
            "input": {"block": "text", "input": {"template": template, "values": values or {}}}}


def wait_tool(seconds: float) -> dict[str, Any]:
    return {"name": "mcp__copilot__run_block", "input": {"block": "wait", "input": {"seconds": seconds}}}


def script(*steps: dict[str, Any]) -> str:
    """A user message that makes the local model play `steps`."""
    return "#script " + json.dumps(list(steps))


def send_frame(text: str, client_message_id: str | None = None) -> dict[str, Any]:
    return {"type": "send", "text": text, "client_message_id": client_message_id or str(uuid.uuid4())}


def chunk_types(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["chunk"]["type"] for frame in frames if frame.get("type", "event") == "event"]


def assert_turn_well_formed(events: list[dict[str, Any]]) -> None:
    """PROTOCOL §2 for one turn: contiguous seqs, one start and one finish, every tool input has one output."""
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seqs not contiguous: {seqs}"
    types = chunk_types(events)
    assert types[0] == "start" and types[-1] == "finish" and types.count("finish") == 1, types
    assert types[-2] == "data-turn", types
    inputs = [e["chunk"]["toolCallId"] for e in events if e["chunk"]["type"] == "tool-input-available"]
    outputs = [e["chunk"]["toolCallId"] for e in events
               if e["chunk"]["type"] in {"tool-output-available", "tool-output-error"}]
    assert sorted(inputs) == sorted(outputs), (inputs, outputs)
    assert len(set(outputs)) == len(outputs), f"an output was shown twice: {outputs}"
    for tool_call_id in inputs:
        first_input = next(i for i, e in enumerate(events) if e["chunk"].get("toolCallId") == tool_call_id
                           and e["chunk"]["type"] == "tool-input-available")
        output = next(i for i, e in enumerate(events) if e["chunk"].get("toolCallId") == tool_call_id
                      and e["chunk"]["type"] in {"tool-output-available", "tool-output-error"})
        assert first_input < output


def streamed_text(events: list[dict[str, Any]]) -> str:
    discarded = {part for e in events if e["chunk"]["type"] in {"data-retry", "data-discard"}
                 for part in e["chunk"]["data"]["discard"]}
    return "".join(e["chunk"]["delta"] for e in events
                   if e["chunk"]["type"] == "text-delta" and e["chunk"]["id"] not in discarded)


async def next_frame(communicator_or_socket, *, timeout: float = 60, keep_liveness: bool = False) -> dict:
    """The next frame of a websocket client (a Channels communicator or a real socket); liveness frames
    (PROTOCOL §7: not events, sent on every change) are skipped unless asked for."""
    async with asyncio.timeout(timeout):
        while True:
            if hasattr(communicator_or_socket, "receive_json_from"):
                frame = await communicator_or_socket.receive_json_from(timeout=timeout)
            else:
                frame = json.loads(await communicator_or_socket.recv())
            if keep_liveness or frame.get("type") != "liveness":
                return frame


async def receive_until(communicator_or_socket, predicate, *, timeout: float = 60,
                        keep_liveness: bool = False) -> list[dict]:
    """Frames received until one matches `predicate` (included); liveness frames skipped unless asked for."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await next_frame(communicator_or_socket, timeout=timeout, keep_liveness=keep_liveness)
            frames.append(frame)
            if predicate(frame):
                return frames


def is_finish(frame: dict) -> bool:
    return frame.get("type") == "event" and frame["chunk"]["type"] == "finish"


class EventWatcher:
    """Listens to a session's published events as a client would, without a socket."""

    def __init__(self, session_id) -> None:
        self.session_id = str(session_id)
        self.events: list[dict] = []

    async def __aenter__(self) -> "EventWatcher":
        from channels.layers import get_channel_layer

        from chat.events.log import session_group

        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(session_group(self.session_id), self.channel)
        return self

    async def __aexit__(self, *exc) -> None:
        from chat.events.log import session_group

        await self.layer.group_discard(session_group(self.session_id), self.channel)

    async def until(self, predicate, *, timeout: float = 60) -> list[dict]:
        """Events received until one's chunk matches `predicate` (returns all received so far)."""
        for event in self.events:
            if predicate(event["chunk"]):
                return self.events
        async with asyncio.timeout(timeout):
            while True:
                message = await self.layer.receive(self.channel)
                if message["type"] != "chat.events":
                    continue  # liveness and the like: not events
                self.events.extend(message["events"])
                if any(predicate(event["chunk"]) for event in message["events"]):
                    return self.events

    async def until_finish(self, *, timeout: float = 60) -> list[dict]:
        return await self.until(lambda chunk: chunk["type"] == "finish", timeout=timeout)


# --- turns run in this process, as the engine tests drive them ---

@database_sync_to_async
def rows(turn_id):
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    return turn, list(ToolCall.objects.filter(turn=turn).order_by("part_index"))


async def run_turn(session, text: str, *, timeout: float = 60):
    """Start a turn and watch it to its `finish`; returns (events, turn, tool call rows)."""
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=text, client_message_id=uuid.uuid4())
        events = await watcher.until_finish(timeout=timeout)
    await running_turns.task_for(str(session.id)) if running_turns.task_for(str(session.id)) else None
    turn, calls = await rows(started.turn.id)
    return events, turn, calls


def outputs_by_id(events):
    return {e["chunk"]["toolCallId"]: e["chunk"] for e in events
            if e["chunk"]["type"] in {"tool-output-available", "tool-output-error"}}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until_gone(pid: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while pid_alive(pid):
            await asyncio.sleep(0.05)  # a process's exit cannot be awaited from outside its parent
