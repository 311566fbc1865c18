"""Prometheus metrics (PROTOCOL §9) after real turns: counts and histogram sums where the engine measured them,
bounded labels, and /metrics of a real server adding up its own figures and an agents worker's."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from agents.actions import do_cancel_run, do_create_agent, do_enqueue_run
from agents.models import RunStatus
from chat.engine.control import cancel_tool_call
from chat.engine.registry import begin_turn, running_turns, stop_turn
from ops.metrics import forget_processes_gone, tool_label
from tests.agents.conftest import WorkerForTests, two_waits_and_a_join, wait_for_run_async
from tests.conftest import ServerProcess
from tests.factories import (
    EventWatcher,
    assert_turn_well_formed,
    is_finish,
    make_session,
    make_user,
    receive_until,
    script,
    send_frame,
    wait_tool,
)
from tests.ops.conftest import copilot_samples, new_session, run_turn

RUN_BLOCK = "mcp__copilot__run_block"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_a_turn_with_parallel_tools_is_counted_with_the_times_the_engine_measured(samples):
    session = await new_session()
    events, turn, calls = await run_turn(session, script(
        {"text": "Three at once.", "tools": [wait_tool(0.5), wait_tool(1), wait_tool(1.5)]}, {"text": "Done."}))

    assert_turn_well_formed(events)
    assert samples.grew("copilot_turns_total", status="completed") == 1
    assert samples.grew("copilot_turn_duration_seconds_count") == 1
    turn_seconds = (turn.finished_at - turn.started_at).total_seconds()
    # The engine's clocks, not the test's: a few ms either way of the waits' own seconds.
    assert 1.5 - 0.05 <= samples.grew("copilot_turn_duration_seconds_sum") <= turn_seconds + 0.5
    assert samples.grew("copilot_time_to_first_token_seconds_count") == 1
    first_token = samples.grew("copilot_time_to_first_token_seconds_sum")
    assert 0 < first_token <= (turn.first_token_at - turn.started_at).total_seconds() + 0.5
    assert samples.grew("copilot_tool_calls_total", tool=RUN_BLOCK, status="completed") == 3
    assert samples.grew("copilot_tool_call_duration_seconds_count", tool=RUN_BLOCK) == 3
    assert 3.0 - 0.05 <= samples.grew("copilot_tool_call_duration_seconds_sum", tool=RUN_BLOCK) < 3.0 + 3 * 2
    assert samples.grew("copilot_tool_call_duration_seconds_bucket", tool=RUN_BLOCK, le="0.25") == 0
    assert samples.grew("copilot_tool_call_duration_seconds_bucket", tool=RUN_BLOCK, le="10.0") == 3
    assert samples.grew("copilot_model_tokens_total", kind="output") > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_denials_retries_and_made_up_tools_are_counted_with_bounded_labels(samples):
    session = await new_session()
    made_up = "mcp__elsewhere__exfiltrate_9f2c"
    events, turn, calls = await run_turn(session, script(
        {"error": "overloaded", "error_times": 1, "tools": [
            {"name": "Read", "input": {"file_path": "/etc/passwd"}}, {"name": made_up, "input": {}}]},
        {"text": "Refused, both."}))

    assert turn.status == "completed"
    assert turn.policy_denials == 2 and turn.model_retries == 1
    assert samples.grew("copilot_model_retries_total") == 1
    assert samples.grew("copilot_tool_calls_total", tool="Read", status="denied") == 1
    assert samples.grew("copilot_tool_calls_total", tool="other", status="denied") == 1
    assert samples.grew("copilot_policy_denials_total", tool="Read", kind="outside_workspace") == 1
    assert samples.grew("copilot_policy_denials_total", tool="other", kind="not_granted") == 1
    assert not any(made_up in str(labels) for _, labels in copilot_samples())  # never a label of its own


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_failed_cancelled_and_interrupted_calls_are_counted_by_their_status(samples):
    session = await new_session()
    failing = {"name": RUN_BLOCK, "input": {"block": "no_such_block", "input": {}}}
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"tools": [wait_tool(600), failing]}, {"text": "Went on."}),
                         client_message_id=uuid.uuid4())
        await watcher.until(lambda chunk: chunk["type"] == "tool-output-error")  # the unknown block failed
        [waiting] = [e["chunk"]["toolCallId"] for e in watcher.events if e["chunk"]["type"] == "tool-input-available"
                     and e["chunk"]["input"]["block"] == "wait"]
        await cancel_tool_call(session=session, tool_call_id=waiting)
        await watcher.until_finish(timeout=60)
    await ended(session)
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"tools": [wait_tool(600)]}), client_message_id=uuid.uuid4())
        await watcher.until(lambda chunk: chunk["type"] == "tool-input-available")
        await stop_turn(session=session)
        await watcher.until_finish(timeout=60)
    await ended(session)

    assert samples.grew("copilot_tool_calls_total", tool=RUN_BLOCK, status="failed") == 1
    assert samples.grew("copilot_tool_calls_total", tool=RUN_BLOCK, status="cancelled") == 1
    assert samples.grew("copilot_tool_calls_total", tool=RUN_BLOCK, status="interrupted") == 1
    assert samples.grew("copilot_turns_total", status="completed") == 1
    assert samples.grew("copilot_turns_total", status="stopped") == 1


async def ended(session) -> None:
    """The turn's task is done: its end is counted."""
    task = running_turns.task_for(str(session.id))
    if task is not None:
        await task


def test_tool_labels_are_the_known_names_or_other():
    assert tool_label(RUN_BLOCK) == RUN_BLOCK
    assert tool_label("Write") == "Write"
    assert tool_label("Bash") == "Bash"  # refused by default, but a name worth seeing
    assert tool_label("mcp__copilot__no_such_tool") == "other"
    assert tool_label("x" * 300) == "other"


def test_the_figures_of_processes_that_are_gone_are_forgotten(tmp_path):
    gone_pid = 2 ** 22 + 12345  # above Linux's pid_max
    for name in (f"counter_{os.getpid()}.db", f"histogram_{gone_pid}.db", f"gauge_livesum_{gone_pid}.db",
                 "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert forget_processes_gone(tmp_path) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"counter_{os.getpid()}.db", "notes.txt"]


def scrape(server: ServerProcess) -> dict[str, dict[tuple, float]]:
    """/metrics of a server, as Prometheus reads it: {sample name: {sorted labels: value}}."""
    response = httpx.get(f"{server.http_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    figures: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            figures.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return figures


def value(figures: dict, sample: str, **labels: str) -> float | None:
    return figures.get(sample, {}).get(tuple(sorted(labels.items())))


@database_sync_to_async
def user_with_a_session():
    user = make_user()
    return user.pk, str(make_session(user).id), Token.objects.create(user=user).key


@database_sync_to_async
def enqueue_agent_run(owner_id: int):
    agent = do_create_agent(owner_id=owner_id, name="two waits", graph=two_waits_and_a_join(0.05))
    return do_enqueue_run(agent=agent)


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
async def test_metrics_of_a_real_server_add_up_its_turn_and_an_agents_workers_run(local_model, tmp_path):
    owner_id, session_id, token = await user_with_a_session()
    (tmp_path / "server").mkdir()
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path / "server")
    worker = None
    try:
        async with websockets.connect(f"{server.ws_url}/ws/sessions/{session_id}/",
                                      additional_headers={"Authorization": f"Token {token}"}) as socket:
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
            await socket.send(json.dumps(send_frame(script({"tools": [wait_tool(0.2), wait_tool(0.4)]},
                                                           {"text": "Both done."}))))
            await receive_until(socket, is_finish)
            while_open = await asyncio.to_thread(scrape, server)
        # The worker writes its figures where the server's /metrics reads them: one machine, one folder.
        worker = WorkerForTests(local_model_url=local_model.url, var_dir=tmp_path / "worker",
                                extra_env={"COPILOT_METRICS_DIR": str(tmp_path / "server" / "metrics")})
        run = await enqueue_agent_run(owner_id)
        assert (await wait_for_run_async(run.id)).status == RunStatus.COMPLETED
        after = await asyncio.to_thread(scrape, server)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()

    assert value(while_open, "copilot_websocket_connections") == 1
    assert value(after, "copilot_websocket_connections") == 0
    assert value(after, "copilot_running_turns") == 0
    assert value(while_open, "copilot_warm_clients") == 1  # kept connected for the session's next turn
    assert value(after, "copilot_turns_total", status="completed") == 1
    assert value(after, "copilot_tool_calls_total", tool=RUN_BLOCK, status="completed") == 2
    assert value(after, "copilot_tool_call_duration_seconds_count", tool=RUN_BLOCK) == 2
    assert value(after, "copilot_tool_call_duration_seconds_sum", tool=RUN_BLOCK) >= 0.6
    assert value(after, "copilot_tool_call_duration_seconds_bucket", tool=RUN_BLOCK, le="+Inf") == 2
    assert value(after, "copilot_turn_duration_seconds_count") == 1
    assert value(after, "copilot_time_to_first_token_seconds_count") == 1
    assert value(after, "copilot_agent_runs_total", status="completed") == 1  # counted by the worker process
    assert value(after, "copilot_ready", check="database") == 1
    assert value(after, "copilot_ready", check="redis") == 1  # skipped: no Redis configured, which is fine
    assert value(after, "copilot_stale_turns") == 0
    assert value(after, "copilot_stuck_tool_calls") == 0


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_in_the_web_process_is_counted_there(samples):
    run = do_enqueue_run(agent=do_create_agent(owner_id=make_user().pk, name="waits", graph=two_waits_and_a_join()))
    do_cancel_run(run=run)
    assert samples.grew("copilot_agent_runs_total", status="cancelled") == 1
