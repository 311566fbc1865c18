"""The copilot's agent tools in real turns (the SDK, its CLI and the local model), with a real worker behind them.

A turn that hands work to the background answers at once; the chat hears the end later, as an event outside
turns (`turn_id: null`) that also stays in the session's snapshot.
"""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async

from agents.actions import do_create_agent
from agents.models import AgentRun
from chat.engine.registry import begin_turn
from chat.selectors import session_snapshot
from tests.agents.conftest import two_waits_and_a_join
from tests.factories import EventWatcher, assert_turn_well_formed, make_session, make_user, script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e,
              pytest.mark.usefixtures("no_turn_left_running", "notice_relay_running")]


def call(tool: str, **tool_input) -> dict:
    return {"name": f"mcp__copilot__{tool}", "input": tool_input}


@pytest.fixture
async def session():
    return await database_sync_to_async(lambda: make_session(make_user()))()


async def turn(session, *steps, watcher: EventWatcher) -> list[dict]:
    """Run one scripted turn; returns its events. A report may come in the middle: it is left out."""
    started = await begin_turn(session=session, text=script(*steps), client_message_id=uuid.uuid4())
    turn_id = str(started.turn.id)
    await watcher.until(lambda chunk: chunk["type"] == "data-turn" and chunk["data"]["turn_id"] == turn_id)
    events = await watcher.until(lambda chunk: chunk["type"] == "finish")
    first = next(index for index, event in enumerate(events) if event["turn_id"] == turn_id)
    last = max(index for index, event in enumerate(events) if event["turn_id"] == turn_id)
    assert_turn_well_formed(events[first:last + 1])  # seqs run on through a report in between
    assert all(event["turn_id"] in (turn_id, None) for event in events[first:last + 1])
    own = [event for event in events[first:last + 1] if event["turn_id"] == turn_id]
    assert own[-2]["chunk"]["data"]["status"] == "completed"
    return own


def the_report(events: list[dict], chunk_type: str) -> dict:
    [report] = [event for event in events if event["chunk"]["type"] == chunk_type]
    return report


def tool_outputs(events: list[dict]) -> list:
    return [event["chunk"].get("output", event["chunk"].get("errorText")) for event in events
            if event["chunk"]["type"] in {"tool-output-available", "tool-output-error"}]


async def test_create_then_run_an_agent_from_the_chat_and_hear_when_it_is_done(agents_worker, session):
    graph = two_waits_and_a_join(2)
    async with EventWatcher(session.id) as watcher:
        created = await turn(session, {"tools": [call("create_agent", name="waiter", description="waits twice",
                                                      graph=graph)]},
                             {"text": "Created."}, watcher=watcher)
        [agent] = tool_outputs(created)
        assert agent["status"] == "ready"

        ran = await turn(session, {"tools": [call("run_agent", agent_id=agent["agent_id"])]},
                         {"text": "It is running; I will tell you when it is done."}, watcher=watcher)
        [queued] = tool_outputs(ran)
        assert queued == {"run_id": queued["run_id"], "status": "queued"}

        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=60)
    report = the_report(events, "data-agent-run")
    assert report["turn_id"] is None
    assert report["chunk"]["data"] == {"run_id": queued["run_id"], "agent_id": agent["agent_id"],
                                       "status": "completed", "outputs": {"join": {"text": "waited 2s and 2s"}}}
    assert report["seq"] > ran[-1]["seq"]  # the turn answered at once; the run ended after it
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(events) + 1))  # one log: turns and reports share its seqs

    snapshot = await database_sync_to_async(session_snapshot)(session)
    assert [r["chunk"] for r in snapshot["reports"]] == [report["chunk"]]
    assert snapshot["last_seq"] == report["seq"]
    answer = snapshot["messages"][-1]
    assert answer["parts"][0]["output"] == queued


async def test_an_agent_built_in_the_background_reports_when_it_is_ready(agents_worker, session):
    async with EventWatcher(session.id) as watcher:
        created = await turn(session, {"tools": [call("create_agent", name="greeter",
                                                      description="Greet whoever the request names.")]},
                             {"text": "Building it."}, watcher=watcher)
        [building] = tool_outputs(created)
        assert building["status"] == "building"
        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-build", timeout=60)
    report = the_report(events, "data-agent-build")
    assert report["turn_id"] is None
    assert report["chunk"]["data"] == {"agent_id": building["agent_id"], "name": "greeter", "status": "ready",
                                           "error": ""}


async def test_find_and_inspect_agents_and_their_runs(agents_worker, session):
    async with EventWatcher(session.id) as watcher:
        created = await turn(session, {"tools": [call("create_agent", name="quick sum", description="adds",
                                                      graph={"nodes": [{"id": "add", "block": "calculator",
                                                                        "input": {"expression": "2 + 2"}}]})]},
                             watcher=watcher)
        agent_id = tool_outputs(created)[0]["agent_id"]
        ran = await turn(session, {"tools": [call("run_agent", agent_id=agent_id)]}, watcher=watcher)
        run_id = tool_outputs(ran)[0]["run_id"]
        await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=60)
        looked = await turn(session, {"tools": [call("find_agent", query="sum"), call("find_agent", query="nothing"),
                                                call("get_agent_run", run_id=run_id)]}, watcher=watcher)
    found, nothing, shown = tool_outputs(looked)
    assert found == {"agents": [{"agent_id": agent_id, "name": "quick sum", "description": "adds",
                                 "status": "ready", "version": 1}]}
    assert nothing == {"agents": []}
    assert shown["status"] == "completed" and shown["outputs"] == {"add": {"result": 4}}
    assert [(node["id"], node["status"], node["output"]) for node in shown["nodes"]] == [
        ("add", "completed", {"result": 4})]


async def test_bad_requests_are_tool_errors_and_nothing_runs(session):
    others_agent = await database_sync_to_async(lambda: do_create_agent(
        owner_id=make_user().pk, name="theirs", graph=two_waits_and_a_join(0)))()
    bad_graph = {"nodes": [{"id": "a", "block": "nope"}, {"id": "b", "block": "wait", "input": {"seconds": "x"}}]}
    async with EventWatcher(session.id) as watcher:
        events = await turn(session, {"tools": [call("create_agent", name="broken", description="", graph=bad_graph)]},
                            {"tools": [call("run_agent", agent_id=str(others_agent.id))]},
                            {"tools": [call("run_agent", agent_id="not-an-id")]},
                            {"tools": [call("get_agent_run", run_id=str(uuid.uuid4()))]},
                            {"text": "None of that worked."}, watcher=watcher)
    errors = [event["chunk"]["errorText"] for event in events if event["chunk"]["type"] == "tool-output-error"]
    assert len(errors) == 4, tool_outputs(events)
    assert "node 'a': unknown block 'nope'" in errors[0] and "input.seconds: 'x' is not of type 'number'" in errors[0]
    assert "no such agent" in errors[1] and "no such agent" in errors[2]
    assert "no such run" in errors[3]
    assert await database_sync_to_async(AgentRun.objects.count)() == 0

