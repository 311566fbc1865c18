"""Runs and builds through a real worker process: end to end, in parallel, cancelled, built from a description."""

from __future__ import annotations

import pytest

from agents.models import AgentRunNode, NodeStatus, RunStatus
from tests.agents.conftest import (
    create_agent,
    greeting_pipeline,
    start_run,
    two_waits_and_a_join,
    wait_for,
    wait_for_run,
    worker_pid,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_five_node_agent_runs_end_to_end_through_a_real_worker(agents_worker, api):
    agent_id = create_agent(api, greeting_pipeline())
    run_id = start_run(api, agent_id, inputs={"greet": {"values": {"name": "Lin"}}})
    run = wait_for_run(run_id)
    assert worker_pid(run) == agents_worker.pid  # another process ran it

    shown = api.get(f"/api/runs/{run_id}/").data
    assert shown["status"] == "completed" and shown["error"] == ""
    assert shown["outputs"] == {"sentence": {"text": "Hello Lin, the answer is 42."}, "doubled": {"result": 42},
                                "pick": {"value": 42}}
    nodes = {node["id"]: node for node in shown["nodes"]}
    assert [node["id"] for node in shown["nodes"]] == ["greet", "sum", "sentence", "doubled", "pick"]
    assert all(node["status"] == "completed" and node["duration_ms"] is not None for node in nodes.values())
    assert nodes["sentence"]["input"]["values"] == {"greeting": "Hello Lin", "n": 42}
    assert nodes["sentence"]["started_at"] >= max(nodes["greet"]["finished_at"], nodes["sum"]["finished_at"])
    listed = api.get(f"/api/agents/{agent_id}/runs/").data
    assert listed["count"] == 1 and listed["results"][0]["run_id"] == run_id


def test_parallel_branches_really_overlap(agents_worker, api):
    run_id = start_run(api, create_agent(api, two_waits_and_a_join(1), name="two waits"))
    run = wait_for_run(run_id)
    assert run.status == RunStatus.COMPLETED and run.outputs == {"join": {"text": "waited 1s and 1s"}}
    left, right = (AgentRunNode.objects.get(run_id=run_id, node_id=name) for name in ("left", "right"))
    assert (left.finished_at - left.started_at).total_seconds() >= 1
    assert (right.finished_at - right.started_at).total_seconds() >= 1
    assert left.started_at < right.finished_at and right.started_at < left.finished_at  # they overlapped
    assert (run.finished_at - run.started_at).total_seconds() < 2


def test_cancelling_a_running_run_stops_its_nodes_and_frees_the_worker(agents_worker, api):
    agent_id = create_agent(api, {"nodes": [{"id": "long", "block": "wait", "input": {"seconds": 60}},
                                            {"id": "quick", "block": "text", "input": {"template": "done"}}]})
    run_id = start_run(api, agent_id)
    wait_for(lambda: dict(AgentRunNode.objects.filter(run_id=run_id).values_list("node_id", "status")),
             lambda statuses: statuses == {"long": NodeStatus.RUNNING, "quick": NodeStatus.COMPLETED})
    cancelled = api.post(f"/api/runs/{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.data["status"] == "cancelled"
    statuses = {node["id"]: node["status"] for node in cancelled.data["nodes"]}
    assert statuses == {"long": "cancelled", "quick": "completed"}
    assert cancelled.data["outputs"] == {"quick": {"text": "done"}}
    again = api.post(f"/api/runs/{run_id}/cancel/")
    assert again.status_code == 409 and again.data["code"] == "run_finished"
    # The worker stops the 60 s wait at its next heartbeat, so the next run starts long before that.
    next_run = wait_for_run(start_run(api, agent_id, inputs={"long": {"seconds": 0}}), timeout=15)
    assert next_run.status == RunStatus.COMPLETED
    assert AgentRunNode.objects.get(run_id=run_id, node_id="long").status == NodeStatus.CANCELLED


def test_an_agent_that_asks_the_model_runs_in_the_worker(agents_worker, api):
    graph = {"nodes": [{"id": "instructions", "block": "text",
                        "input": {"template": "Write a haiku about {{the topic}}.\n\n{request}",
                                  "values": {"request": ""}}},
                       {"id": "answer", "block": "llm", "input": {"system": "Answer briefly."}}],
             "links": [{"from": "instructions", "output": "text", "to": "answer", "input": "prompt"}]}
    agent_id = create_agent(api, graph, name="haiku")
    run = wait_for_run(start_run(api, agent_id, inputs={"instructions": {"values": {"request": "The sea."}}}))
    assert run.status == RunStatus.COMPLETED, run.error
    prompt = AgentRunNode.objects.get(run_id=run.id, node_id="answer").input["prompt"]
    assert prompt == "Write a haiku about {the topic}.\n\nThe sea."
    assert run.outputs["answer"]["text"]  # the local model answered


def test_every_library_agent_runs_offline_once_installed(agents_worker, api, library):
    expected = {"loan-payment": {"summary": {"text": "Pay 1013.37 a month; 364813.2 in all."}},
                "celsius-to-fahrenheit": {"say": {"text": "69.8 °F"}},
                "split-the-bill": {"say": {"text": "Each of you pays 34.5."}}}
    runs = {}
    for entry in library:
        agent_id = api.post(f"/api/library/{entry['slug']}/install/").data["agent_id"]
        inputs = {"delay": {"seconds": 0}} if entry["slug"] == "timed-reminder" else None
        runs[entry["slug"]] = start_run(api, agent_id, inputs=inputs)
    for slug, run_id in runs.items():
        run = wait_for_run(run_id, timeout=90)  # seven runs, one worker, one after another
        assert run.status == RunStatus.COMPLETED, (slug, run.error)
        if slug in expected:
            assert run.outputs == expected[slug]
