"""Runs executed in this process (the executor itself), the reaper, cancels, and the reports a chat session hears."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from agents.actions import do_cancel_run, do_create_agent, do_enqueue_run
from agents.errors import AgentNotReady, RunFinished
from agents.executor import execute_run
from agents.graphs import InputsError
from agents.models import Agent, AgentRun, AgentRunNode, AgentStatus, NodeStatus, RunStatus
from agents.reaper import reap_stale_work
from chat.events import notices
from chat.events.factory import get_event_log
from chat.events.notices import notice_relay
from chat.models import SessionNotice
from chat.selectors import session_snapshot
from tests.agents.conftest import greeting_pipeline, two_waits_and_a_join
from tests.factories import EventWatcher, make_session, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_stopped")]


def agent_with(graph, *, name="agent", owner=None):
    owner = owner or make_user()
    return do_create_agent(owner_id=owner.pk, name=name, description="for a test", graph=graph)


@database_sync_to_async
def queued_run(graph, *, inputs=None, with_session=False):
    owner = make_user()
    session = make_session(owner) if with_session else None
    run = do_enqueue_run(agent=agent_with(graph, owner=owner), inputs=inputs,
                         session_id=session.id if session else None)
    return run, session


@database_sync_to_async
def run_and_nodes(run_id):
    run = AgentRun.objects.get(pk=run_id)
    return run, {node.node_id: node for node in AgentRunNode.objects.filter(run_id=run_id)}


async def test_a_run_executes_in_dependency_order_and_records_every_node():
    run, _ = await queued_run(greeting_pipeline())
    assert run.status == RunStatus.QUEUED and run.task_id
    assert await execute_run(run.id) == RunStatus.COMPLETED
    run, nodes = await run_and_nodes(run.id)
    assert run.status == RunStatus.COMPLETED and run.error == "" and run.started_at and run.finished_at
    assert run.outputs == {"sentence": {"text": "Hello Ada, the answer is 42."}, "doubled": {"result": 42},
                           "pick": {"value": 42}}
    assert {node.status for node in nodes.values()} == {NodeStatus.COMPLETED}
    sentence = nodes["sentence"]
    assert sentence.input == {"template": "{greeting}, the answer is {n}.",
                              "values": {"greeting": "Hello Ada", "n": 42}}
    assert sentence.started_at >= max(nodes["greet"].finished_at, nodes["sum"].finished_at)
    assert all(node.started_at <= node.finished_at for node in nodes.values())
    assert await execute_run(run.id) is None  # a second delivery of the task runs nothing


async def test_a_failing_node_fails_the_run_and_skips_only_what_depends_on_it():
    graph = {"nodes": [{"id": "divide", "block": "calculator", "input": {"expression": "1 / 0"}},
                       {"id": "say", "block": "text", "input": {"template": "{x}"}},
                       {"id": "other", "block": "wait", "input": {"seconds": 0.1}}],
             "links": [{"from": "divide", "output": "result", "to": "say", "input": "values.x"}]}
    run, _ = await queued_run(graph)
    assert await execute_run(run.id) == RunStatus.FAILED
    run, nodes = await run_and_nodes(run.id)
    assert run.error == "node 'divide' (calculator) failed: calculator: division by zero"
    assert (nodes["divide"].status, nodes["say"].status, nodes["other"].status) == (
        NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.COMPLETED)
    assert nodes["say"].error == "not run: upstream node 'divide' did not complete" and nodes["say"].started_at is None
    assert run.outputs == {"other": {"seconds": 0.1}}


async def test_a_linked_value_that_fails_the_block_schema_is_not_run():
    graph = {"nodes": [{"id": "pick", "block": "json_extract", "input": {"data": {"s": "soon"}, "path": "s"}},
                       {"id": "sleep", "block": "wait"}],
             "links": [{"from": "pick", "output": "value", "to": "sleep", "input": "seconds"}]}
    run, _ = await queued_run(graph)
    started = asyncio.get_running_loop().time()
    assert await execute_run(run.id) == RunStatus.FAILED
    run, nodes = await run_and_nodes(run.id)
    assert nodes["sleep"].status == NodeStatus.FAILED and nodes["sleep"].input == {"seconds": "soon"}
    assert nodes["sleep"].error == "bad input, not run: wait: input.seconds: 'soon' is not of type 'number'"
    assert asyncio.get_running_loop().time() - started < 5


async def test_run_inputs_are_laid_over_the_nodes_own():
    run, _ = await queued_run(greeting_pipeline(), inputs={"greet": {"values": {"name": "Grace"}}})
    await execute_run(run.id)
    run, _ = await run_and_nodes(run.id)
    assert run.outputs["sentence"] == {"text": "Hello Grace, the answer is 42."}


async def test_a_nul_character_in_an_output_is_saved_as_a_replacement_character():
    graph = {"nodes": [{"id": "pick", "block": "json_extract", "input": {"data": '{"s": "a\\u0000b"}', "path": "s"}}]}
    run, _ = await queued_run(graph)
    assert await execute_run(run.id) == RunStatus.COMPLETED
    run, _ = await run_and_nodes(run.id)
    assert run.outputs == {"pick": {"value": "a\ufffdb"}}


def test_bad_run_inputs_and_agents_not_ready_queue_nothing():
    owner = make_user()
    agent = agent_with(two_waits_and_a_join(), owner=owner)
    with pytest.raises(InputsError, match="inputs.left: input.seconds: -1 is less than the minimum of 0"):
        do_enqueue_run(agent=agent, inputs={"left": {"seconds": -1}})
    # An agent left without a graph by the background builds that were removed (migration 0003) cannot run.
    unbuilt = Agent.objects.create(owner=owner, name="later", status=AgentStatus.FAILED,
                                   build_error="the background build was removed")
    with pytest.raises(AgentNotReady, match="has no graph to run: the background build was removed"):
        do_enqueue_run(agent=unbuilt)
    assert AgentRun.objects.count() == 0
    assert DBTaskResult.objects.count() == 0


async def test_a_cancelled_queued_run_never_runs_and_its_session_hears_it():
    run, session = await queued_run(two_waits_and_a_join(), with_session=True)
    async with EventWatcher(session.id) as watcher:
        run = await database_sync_to_async(do_cancel_run)(run=run)  # its report is appended once committed
        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=5)
    assert events[-1]["turn_id"] is None
    assert events[-1]["chunk"]["data"] == {"run_id": str(run.id), "agent_id": str(run.agent_id),
                                           "status": "cancelled", "outputs": {}}
    assert await execute_run(run.id) is None
    _, nodes = await run_and_nodes(run.id)
    assert {node.status for node in nodes.values()} == {NodeStatus.CANCELLED}
    with pytest.raises(RunFinished):
        await database_sync_to_async(do_cancel_run)(run=run)


@database_sync_to_async
def run_left_by_a_dead_worker(*, heartbeat_age_seconds: float):
    """A run whose worker died mid-way: one node done, one running, one never started."""
    owner = make_user()
    session = make_session(owner)
    graph = {"nodes": [{"id": "first", "block": "wait", "input": {"seconds": 0}},
                       {"id": "second", "block": "wait", "input": {"seconds": 60}},
                       {"id": "third", "block": "text", "input": {"template": "{f} {s}"}}],
             "links": [{"from": "first", "output": "seconds", "to": "third", "input": "values.f"},
                       {"from": "second", "output": "seconds", "to": "third", "input": "values.s"}]}
    run = do_enqueue_run(agent=agent_with(graph, owner=owner), session_id=session.id)
    long_ago = timezone.now() - timedelta(seconds=heartbeat_age_seconds)
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=long_ago, heartbeat_at=long_ago,
                                              process="gone-host:1")
    AgentRunNode.objects.filter(run=run, node_id="first").update(status=NodeStatus.COMPLETED, output={"seconds": 0},
                                                                 started_at=long_ago, finished_at=long_ago)
    AgentRunNode.objects.filter(run=run, node_id="second").update(status=NodeStatus.RUNNING, started_at=long_ago)
    return run, session


async def test_the_reaper_fails_a_run_whose_worker_died_and_reports_it_once(copilot_settings):
    stale = copilot_settings["STALE_RUN_SECONDS"]
    fresh_run, _ = await run_left_by_a_dead_worker(heartbeat_age_seconds=1)
    run, session = await run_left_by_a_dead_worker(heartbeat_age_seconds=stale + 5)
    async with EventWatcher(session.id) as watcher:
        assert await reap_stale_work() == [f"run {run.id}"]
        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=5)
    assert events[-1]["chunk"]["data"]["status"] == "failed"
    run, nodes = await run_and_nodes(run.id)
    assert run.status == RunStatus.FAILED
    assert run.error == f"the worker running it stopped (no heartbeat for {stale:g}s)"
    assert [nodes[name].status for name in ("first", "second", "third")] == [
        NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED]
    assert nodes["second"].error.startswith("interrupted: the worker running it stopped")
    assert await reap_stale_work() == []  # only once
    assert (await run_and_nodes(fresh_run.id))[0].status == RunStatus.RUNNING


async def test_a_run_whose_task_was_taken_by_a_worker_that_died_before_starting_it_is_queued_again(copilot_settings):
    run, _ = await queued_run(two_waits_and_a_join(0))
    long_ago = timezone.now() - timedelta(seconds=copilot_settings["STALE_RUN_SECONDS"] + 5)
    await database_sync_to_async(DBTaskResult.objects.filter(pk=run.task_id).update)(
        status="RUNNING", started_at=long_ago, worker_ids=["gone-host:1"])
    assert await reap_stale_work() == []
    requeued = await database_sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert requeued.status == RunStatus.QUEUED and requeued.task_id != run.task_id
    statuses = await database_sync_to_async(lambda: dict(DBTaskResult.objects.values_list("id", "status")))()
    assert (statuses[uuid.UUID(run.task_id)], statuses[uuid.UUID(requeued.task_id)]) == ("FAILED", "READY")
    assert await execute_run(run.id) == RunStatus.COMPLETED


async def test_reports_stay_in_the_session_snapshot_in_seq_order():
    run, session = await queued_run(greeting_pipeline(), with_session=True)
    before = await database_sync_to_async(session_snapshot)(session)
    async with EventWatcher(session.id) as watcher:
        await execute_run(run.id)
        [event] = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=5)
    after = await database_sync_to_async(session_snapshot)(session)
    assert before["reports"] == [] and before["last_seq"] == 0
    # old state + events == fresh state
    [report] = after["reports"]
    assert {"type": "event", "seq": report["seq"], "turn_id": report["turn_id"], "chunk": report["chunk"]} == event
    assert after["last_seq"] == event["seq"] == 1
    assert event["chunk"] == {"type": "data-agent-run", "data": {
        "run_id": str(run.id), "agent_id": str(run.agent_id), "status": "completed",
        "outputs": {"sentence": {"text": "Hello Ada, the answer is 42."}, "doubled": {"result": 42},
                    "pick": {"value": 42}}}}
    # The next process's event log continues after the report's seq.
    from chat.events.factory import reset_event_log

    reset_event_log()
    assert await get_event_log().last_seq(str(session.id)) == 1


def report_of(run) -> SessionNotice:
    return SessionNotice.objects.get(key=f"agent-run:{run.id}")


async def test_a_worker_without_a_shared_log_leaves_reports_to_the_web_process_relay(monkeypatch, settings):
    # Without a shared event log (REDIS_URL unset) the web process's relay appends what workers saved.
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None}
    run, session = await queued_run(two_waits_and_a_join(0), with_session=True)
    monkeypatch.setattr(notices, "_holds_no_log", True)  # as in the worker: it must not append
    await execute_run(run.id)
    saved = await database_sync_to_async(report_of)(run)
    assert saved.seq is None
    monkeypatch.setattr(notices, "_holds_no_log", False)  # back in the web process
    async with EventWatcher(session.id) as watcher:
        notice_relay.start()
        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=5)
    assert events[-1]["chunk"]["data"]["status"] == "completed"
    assert (await database_sync_to_async(report_of)(run)).seq == events[-1]["seq"]


async def test_the_web_process_relay_appends_a_report_as_soon_as_a_worker_says_it_saved_one(monkeypatch, settings):
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None}
    run, session = await queued_run(two_waits_and_a_join(0), with_session=True)
    notice_relay.start()
    await asyncio.wait_for(notice_relay.listening.wait(), timeout=10)
    async with EventWatcher(session.id) as watcher:
        monkeypatch.setattr(notices, "_holds_no_log", True)  # the worker's side: save, and tell the web process
        await execute_run(run.id)
        monkeypatch.setattr(notices, "_holds_no_log", False)
        events = await watcher.until(lambda chunk: chunk["type"] == "data-agent-run", timeout=5)
    assert (await database_sync_to_async(report_of)(run)).seq == events[-1]["seq"]
