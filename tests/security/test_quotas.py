"""Quotas, so one user cannot starve the others: disk, memory, sessions, agents, runs, sockets; and the admin's
write actions need the change permission."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents.actions import do_create_agent, do_enqueue_run
from agents.models import AgentRun, RunStatus
from chat.actions.sessions import do_write_title
from chat.engine import policy
from chat.engine.registry import begin_turn, running_turns
from chat.events.chunks import text_delta, tool_output_available
from chat.events.factory import get_event_log
from chat.events.memory_log import InMemoryEventLog
from chat.models import ChatSession, Message, SessionNotice, ToolCall, TranscriptEntry, Turn
from chat.workspaces import transcript_project_key, workspace_path
from copilot_site.asgi import application
from localmodel.server import LocalModel
from tests.agents.conftest import greeting_pipeline
from tests.factories import make_session, make_user, next_frame, script, text_tool

pytestmark = pytest.mark.django_db(transaction=True)


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def quota(settings, **values):
    settings.COPILOT = {**settings.COPILOT, **values}


# --- disk ---

@pytest.mark.usefixtures("no_turn_left_running")
async def test_a_write_past_the_workspace_quota_is_refused_with_its_reason_and_the_turn_goes_on(chat, settings):
    quota(settings, MAX_WORKSPACE_BYTES=10_000)
    (chat.workspace / "big.bin").write_bytes(b"x" * 9_000)
    denied_before = policy.denials[("Write", policy.WORKSPACE_FULL)]
    result = await chat.run(script(
        {"tools": [{"name": "Write", "input": {"file_path": "more.txt", "content": "y" * 2_000}},
                   {"name": "Write", "input": {"file_path": "small.txt", "content": "fits"}}]},
        {"text": "done writing"}))
    refused = result.output_of("Write", file_path="more.txt")
    assert refused["type"] == "tool-output-error"
    assert "may hold 10,000 bytes and has 1,000 left; this Write would add 2,000" in refused["errorText"]
    assert result.output_of("Write", file_path="small.txt")["type"] == "tool-output-available"
    assert not (chat.workspace / "more.txt").exists() and (chat.workspace / "small.txt").read_text() == "fits"
    assert result.status() == "completed"
    assert policy.denials[("Write", policy.WORKSPACE_FULL)] == denied_before + 1


def test_an_edit_is_measured_by_what_it_adds(tmp_path, settings):
    quota(settings, MAX_WORKSPACE_BYTES=1_000)
    (tmp_path / "notes.txt").write_text("ab" * 200)  # 400 bytes
    state = policy.TurnState()
    replace_all = {"file_path": "notes.txt", "old_string": "a", "new_string": "aaaaa", "replace_all": True}
    assert isinstance(policy.decide("Edit", replace_all, workspace=tmp_path, turn_state=state), policy.Deny)  # +800
    one = {"file_path": "notes.txt", "old_string": "ab", "new_string": "abc"}
    assert isinstance(policy.decide("Edit", one, workspace=tmp_path, turn_state=state), policy.Allow)
    shrink = {"file_path": "notes.txt", "content": ""}
    quota(settings, MAX_WORKSPACE_BYTES=0)
    assert isinstance(policy.decide("Write", shrink, workspace=tmp_path, turn_state=state), policy.Allow)


@pytest.mark.usefixtures("no_turn_left_running")
async def test_deleting_a_chat_leaves_nothing_behind(chat):
    result = await chat.run(script(
        {"tools": [{"name": "Write", "input": {"file_path": "kept.txt", "content": "hello"}}]}, {"text": "saved"}))
    assert result.status() == "completed" and (chat.workspace / "kept.txt").exists()
    # A second version of the message and another answer to it: branches, and the SDK sessions they forked.
    edited = await begin_turn(session=chat.session, text=script({"text": "edited"}), client_message_id=uuid.uuid4(),
                              edit_of=result.turn.user_message_id)
    await running_turns.task_for(str(chat.session.id))
    await begin_turn(session=chat.session, text="", client_message_id=uuid.uuid4(),
                     regenerate=edited.turn.assistant_message_id)
    await running_turns.task_for(str(chat.session.id))
    session_id = chat.session.id
    await database_sync_to_async(do_write_title)(session_id=session_id, title="A title")  # a notice
    sdk_sessions = await database_sync_to_async(lambda: set(Turn.objects.filter(session_id=session_id).values_list(
        "sdk_session_id", flat=True)))()
    assert len(sdk_sessions) == 3 and "" not in sdk_sessions  # the first, and one fork per branch
    key = transcript_project_key(session_id)
    for sdk_session_id in sdk_sessions:
        assert await database_sync_to_async(TranscriptEntry.objects.filter(session_id=sdk_session_id).count)() > 0
    assert await get_event_log().last_seq(str(session_id)) > 0
    owner = await database_sync_to_async(lambda: chat.session.owner)()

    response = await database_sync_to_async(lambda: client_of(owner).delete(f"/api/sessions/{session_id}/"))()

    assert response.status_code == 204
    assert not await database_sync_to_async(ChatSession.objects.filter(pk=session_id).exists)()
    for model in (Message, Turn, ToolCall, SessionNotice):
        assert not await database_sync_to_async(model.objects.filter(session_id=session_id).exists
                                                 if model is not ToolCall else
                                                 model.objects.filter(turn__session_id=session_id).exists)()
    assert await database_sync_to_async(TranscriptEntry.objects.filter(project_key=key).count)() == 0
    assert await database_sync_to_async(TranscriptEntry.objects.filter(session_id__in=sdk_sessions).count)() == 0
    assert not workspace_path(session_id).exists()
    assert await get_event_log().read_after(str(session_id), 0) == []
    assert await get_event_log().last_seq(str(session_id)) == 0


# --- memory ---

async def test_the_memory_log_forgets_the_least_recently_used_chats_past_its_byte_budget():
    seeds = {}

    async def seed(session_id: str) -> int:
        return seeds.get(session_id, 0)

    log = InMemoryEventLog(seed_last_seq=seed, max_events=1000, max_bytes=4_500)

    async def durable(seq: int) -> bool:
        seeds[session] = seq  # as the database would keep it
        return True

    for session in ("a", "b", "c", "d"):  # about 1 kB each
        for n in range(5):
            await log.append(session, "t", [tool_output_available(f"call-{n}", "x" * 80)], durable)
    assert log.kept_sessions() == ["a", "b", "c", "d"]
    assert len(await log.read_after("a", 0)) == 5  # "a" was read lately
    mid_turn = "e"
    for _ in range(16):  # about 3 kB without a durable write: a turn streaming its answer
        await log.append(mid_turn, "t", [text_delta("text-0", "y" * 80)])

    assert log.bytes <= 4_500
    assert log.kept_sessions() == ["a", mid_turn]  # the least recently used went first; never one mid-turn
    assert await log.read_after("b", 0) is None  # a client resuming it gets a snapshot (PROTOCOL §3)
    assert await log.last_seq("b") == 5  # seeded again, exactly, from what was saved


def test_the_local_model_keeps_no_history_unless_asked_to():
    model = LocalModel()
    assert model.keep_requests is False
    from localmodel.script import Step
    from localmodel.server import MAX_FAULT_KEYS

    for n in range(MAX_FAULT_KEYS + 50):
        model._should_fail(f"key-{n}", Step(error="overloaded"))
    assert len(model.fault_counts) == MAX_FAULT_KEYS


# --- sessions, agents, runs, sockets ---

def test_a_user_at_the_session_quota_gets_429_and_keeps_the_others(settings):
    quota(settings, MAX_SESSIONS_PER_USER=2)
    user = make_user()
    client = client_of(user)
    assert [client.post("/api/sessions/", {}, format="json").status_code for _ in range(2)] == [201, 201]
    refused = client.post("/api/sessions/", {}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_sessions"
    assert client_of(make_user()).post("/api/sessions/", {}, format="json").status_code == 201
    assert ChatSession.objects.filter(owner=user).count() == 2


def test_a_user_at_the_agent_quota_gets_429(settings):
    quota(settings, MAX_AGENTS_PER_USER=1)
    client = client_of(make_user())
    assert client.post("/api/agents/", {"name": "one", "graph": greeting_pipeline()}, format="json").status_code == 201
    refused = client.post("/api/agents/", {"name": "two", "graph": greeting_pipeline()}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_agents"


def test_a_graph_past_max_graph_nodes_is_refused(settings):
    quota(settings, MAX_GRAPH_NODES=2)
    graph = {"nodes": [{"id": f"n{i}", "block": "wait", "input": {"seconds": 0}} for i in range(3)], "links": []}
    refused = client_of(make_user()).post("/api/agents/", {"name": "wide", "graph": graph}, format="json")
    assert refused.status_code == 400 and "at most 2 nodes (3 given)" in refused.json()["message"]


def test_queued_runs_past_the_quota_get_429_too_many_runs(settings):
    quota(settings, MAX_QUEUED_RUNS_PER_USER=2)
    user = make_user()
    agent = do_create_agent(owner_id=user.pk, name="greeter", graph=greeting_pipeline())
    client = client_of(user)
    assert [client.post(f"/api/agents/{agent.id}/runs/", {}, format="json").status_code for _ in range(2)] == [202,
                                                                                                              202]
    refused = client.post(f"/api/agents/{agent.id}/runs/", {}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_runs"
    AgentRun.objects.filter(agent=agent).update(status=RunStatus.COMPLETED)  # they ended: room again
    assert client.post(f"/api/agents/{agent.id}/runs/", {}, format="json").status_code == 202


@pytest.mark.usefixtures("no_turn_left_running")
async def test_run_agent_past_the_quota_is_a_tool_error_and_the_turn_goes_on(chat, settings):
    quota(settings, MAX_QUEUED_RUNS_PER_USER=1)
    owner_id = await database_sync_to_async(lambda: chat.session.owner_id)()
    agent = await database_sync_to_async(do_create_agent)(owner_id=owner_id, name="greeter",
                                                          graph=greeting_pipeline())
    await database_sync_to_async(do_enqueue_run)(agent=agent)
    call = {"name": "mcp__copilot__run_agent", "input": {"agent_id": str(agent.id)}}
    result = await chat.run(script({"tools": [call]}, {"text": "told"}))
    refused = result.output_of("mcp__copilot__run_agent")
    assert refused["type"] == "tool-output-error" and "runs queued or running, the most allowed" in refused["errorText"]
    assert result.status() == "completed"


async def connect(session, token) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                         headers=[(b"authorization", f"Token {token}".encode())])
    assert (await communicator.connect())[0]
    return communicator


async def test_a_user_past_the_socket_quota_is_told_and_closed_and_others_connect(settings):
    quota(settings, MAX_WEBSOCKETS_PER_USER=2)
    session, token = await database_sync_to_async(lambda: (lambda u: (make_session(u), Token.objects.create(
        user=u).key))(make_user()))()
    open_ones = [await connect(session, token) for _ in range(2)]
    third = await connect(session, token)
    assert (await next_frame(third, timeout=5))["code"] == "too_many_sockets"
    assert (await third.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4429}
    await open_ones[0].disconnect()
    again = await connect(session, token)  # one closed: room for another
    await again.send_json_to({"type": "ping"})
    assert await next_frame(again, timeout=5) == {"type": "pong"}
    for communicator in (open_ones[1], again):
        await communicator.disconnect()


# --- stored tool outputs ---

@pytest.mark.usefixtures("no_turn_left_running")
async def test_a_tool_output_past_what_a_call_may_store_is_saved_as_a_preview(chat, settings):
    quota(settings, TOOL_OUTPUT_STORED_CHARS=100)
    result = await chat.run(script({"tools": [text_tool("z" * 500)]}, {"text": "ok"}))
    [call] = await database_sync_to_async(lambda: list(ToolCall.objects.filter(turn=result.turn)))()
    assert call.output["truncated"] is True and call.output["total_chars"] > 500
    assert len(call.output["preview"]) == 100 and "TOOL_OUTPUT_STORED_CHARS" in call.output["note"]


# --- the admin ---

def test_a_view_only_staff_member_cannot_cancel_runs_from_the_admin():
    owner = make_user()
    agent = do_create_agent(owner_id=owner.pk, name="greeter", graph=greeting_pipeline())
    run = do_enqueue_run(agent=agent)
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_agentrun"))
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/agents/agentrun/")
    assert page.status_code == 200 and "cancel_runs" not in page.content.decode()
    client.post("/admin/agents/agentrun/", {"action": "cancel_runs", "_selected_action": [str(run.pk)]})
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    staff.user_permissions.add(Permission.objects.get(codename="change_agentrun"))
    client.post("/admin/agents/agentrun/", {"action": "cancel_runs", "_selected_action": [str(run.pk)]})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


