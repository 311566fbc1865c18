"""The copilot's agent tools in real turns (the SDK, its CLI and the local model), with a real worker behind them.

A turn that hands work to the background answers at once; the chat hears the end later, as an event outside
turns (`turn_id: null`) that also stays in the session's snapshot.
"""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from agents.actions import do_create_agent
from agents.models import Agent, AgentRun
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
    # A report is published by the notice relay, the turn's events by the turn: they may arrive out of order, and a
    # client orders them by seq (as the page's cursor does).
    window = sorted(events[first:last + 1], key=lambda event: event["seq"])
    assert_turn_well_formed(window)  # seqs run on through a report in between
    assert all(event["turn_id"] in (turn_id, None) for event in window)
    own = [event for event in window if event["turn_id"] == turn_id]
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


async def test_the_copilot_composes_checks_fixes_and_saves_a_graph(session):
    """No graph is invented: create_agent without one is refused; validate_agent names each problem's node and
    field, as the API does; the fixed graph is saved as version 1."""
    wrong = {"nodes": [{"id": "hello", "block": "text", "input": {"template": 5}},
                       {"id": "shout", "block": "calculator"}],
             "links": [{"from": "hello", "output": "text", "to": "nowhere", "input": "expression"}]}
    fixed = {"nodes": [{"id": "hello", "block": "text", "input": {"template": "Hello, {name}!",
                                                                 "values": {"name": "Ada"}}}], "links": []}
    async with EventWatcher(session.id) as watcher:
        events = await turn(session, {"tools": [call("create_agent", name="greeter", description="greets")]},
                            {"tools": [call("list_blocks")]},
                            {"tools": [call("validate_agent", graph=wrong)]},
                            {"tools": [call("validate_agent", graph=fixed)]},
                            {"tools": [call("create_agent", name="greeter", description="greets", graph=fixed)]},
                            {"text": "Saved."}, watcher=watcher)
    refused, listed, problems, valid, created = tool_outputs(events)
    assert "graph" in refused and "required" in refused
    assert "text" in {block["name"] for block in listed["blocks"]}
    assert problems["ok"] is False and problems["code"] == "bad_graph"
    assert {(p["node"], p["field"]) for p in problems["problems"]} >= {("hello", "input.template"),
                                                                        ("hello", "links[0].to")}
    api_problems = await database_sync_to_async(_validate_over_http)(session.owner, wrong)
    assert api_problems == {key: problems[key] for key in ("code", "message", "problems")}
    assert valid == {"ok": True}
    assert created["status"] == "ready"
    agent = await database_sync_to_async(Agent.objects.get)(pk=created["agent_id"])
    assert agent.name == "greeter" and await database_sync_to_async(agent.versions.count)() == 1


def _validate_over_http(user, graph) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    response = client.post("/api/agents/validate/", {"graph": graph}, format="json")
    assert response.status_code == 400
    return response.json()


async def test_find_and_inspect_agents_and_their_runs(agents_worker, session, library):
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
                                                call("get_agent_run", run_id=run_id),
                                                call("find_agent", query="loan payment")]}, watcher=watcher)
    found, nothing, shown, library = tool_outputs(looked)
    assert library["agents"] == [] and [entry["slug"] for entry in library["library"]] == ["loan-payment"]
    assert library["library"][0]["graph"]["nodes"][0]["block"] == "text"
    assert found["agents"] == [{"agent_id": agent_id, "name": "quick sum", "description": "adds",
                                "status": "ready", "version": 1}]
    assert nothing == {"agents": [], "library": []}
    assert shown["status"] == "completed" and shown["outputs"] == {"add": {"result": 4}}
    assert (await database_sync_to_async(AgentRun.objects.get)(pk=run_id)).trigger == "copilot"
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



async def test_the_local_models_demo_builds_an_agent_the_honest_way(session):
    """Unscripted, "build me an agent that…" plays list_blocks → validate_agent → create_agent, and the agent is
    saved with the graph it checked."""
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text="Please build me an agent that greets new members.",
                                   client_message_id=uuid.uuid4())
        events = await watcher.until(lambda chunk: chunk["type"] == "finish", timeout=60)
    own = [event for event in events if event["turn_id"] == str(started.turn.id)]
    calls = [event["chunk"]["toolName"] for event in own if event["chunk"]["type"] == "tool-input-available"]
    assert calls == ["mcp__copilot__list_blocks", "mcp__copilot__validate_agent", "mcp__copilot__create_agent"]
    listed, checked, created = tool_outputs(own)
    assert checked == {"ok": True} and created["status"] == "ready"
    agent = await database_sync_to_async(Agent.objects.get)(pk=created["agent_id"])
    assert agent.name == "Agent that greets new members"
    graph = (await database_sync_to_async(lambda: agent.versions.get().graph)())
    assert graph["nodes"][0]["input"]["template"] == "This agent greets new members. Input: {input}"
