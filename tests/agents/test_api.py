"""The agents JSON API: create, list, read, change, run and cancel; isolation between users; every error shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agents.actions import do_cancel_run
from agents.models import Agent, AgentRun, AgentVersion
from chat.models import SessionNotice
from chat.selectors import session_snapshot
from tests.agents.conftest import create_agent, greeting_pipeline, start_run, two_waits_and_a_join
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db


def test_blocks_are_listed(api):
    blocks = api.get("/api/blocks/").data["blocks"]
    assert {"wait", "text", "calculator", "json_extract", "http_get", "llm"} <= {block["name"] for block in blocks}


def test_create_list_read_and_save_a_new_version(api):
    agent_id = create_agent(api, greeting_pipeline(), name="greeter")
    listed = api.get("/api/agents/").data
    assert listed["count"] == 1
    assert listed["results"][0] | {"updated_at": None, "created_at": None} == {
        "id": agent_id, "name": "greeter", "description": "a test agent", "status": "ready", "version": 1,
        "run_count": 0, "last_run_at": None, "created_at": None, "updated_at": None}
    shown = api.get(f"/api/agents/{agent_id}/").data
    assert shown["graph"]["nodes"][0] == {"id": "greet", "block": "text",
                                          "input": {"template": "Hello {name}", "values": {"name": "Ada"}}}
    changed = api.patch(f"/api/agents/{agent_id}/", {"name": "waiter", "graph": two_waits_and_a_join(0)}, format="json")
    assert changed.status_code == 200 and changed.data["name"] == "waiter" and changed.data["version"] == 2
    assert AgentVersion.objects.filter(agent_id=agent_id).count() == 2


def test_a_run_is_queued_at_once_and_read_back(api):
    agent_id = create_agent(api, two_waits_and_a_join(0))
    run_id = start_run(api, agent_id, inputs={"left": {"seconds": 0.5}})
    shown = api.get(f"/api/runs/{run_id}/").data
    assert shown["status"] == "queued" and shown["inputs"] == {"left": {"seconds": 0.5}} and shown["version"] == 1
    assert shown["trigger"] == "api"
    assert [(node["id"], node["status"]) for node in shown["nodes"]] == [
        ("left", "pending"), ("right", "pending"), ("join", "pending")]
    assert api.get("/api/agents/").data["results"][0]["run_count"] == 1


def test_an_bad_graph_is_refused_with_every_problem_and_nothing_saved(api):
    refused = api.post("/api/agents/", {"name": "broken", "graph": {
        "nodes": [{"id": "a", "block": "wait", "input": {"seconds": -1}}, {"id": "b", "block": "text"}],
        "links": [{"from": "a", "output": "seconds", "to": "b", "input": "template"}]}}, format="json")
    assert refused.status_code == 400 and refused.data["code"] == "bad_graph"
    assert "input.seconds: -1 is less than the minimum of 0" in refused.data["message"]
    assert "type mismatch: 'seconds' of 'wait' is a number" in refused.data["message"]
    assert Agent.objects.count() == 0


@pytest.mark.parametrize(("body", "code", "status"), [
    ({}, "invalid", 400),
    ({"name": 5, "graph": {}}, "invalid", 400),
    ({"name": "x", "grpah": {}}, "invalid", 400),
    ({"name": "x", "description": "greet people"}, "bad_graph", 400),  # no graph: nothing invents one
    ({"name": "  ", "description": "d"}, "invalid", 400),
    ({"name": "x", "graph": "nodes"}, "bad_graph", 400),
])
def test_bad_agent_input(api, body, code, status):
    response = api.post("/api/agents/", body, format="json")
    assert (response.status_code, response.data["code"]) == (status, code), response.data
    assert set(response.data) == ({"code", "message", "problems"} if code == "bad_graph" else {"code", "message"})
    assert Agent.objects.count() == 0


def test_names_are_unique_per_user(api):
    create_agent(api, greeting_pipeline(), name="same")
    again = api.post("/api/agents/", {"name": "same", "graph": greeting_pipeline()}, format="json")
    assert again.status_code == 409 and again.data["code"] == "agent_exists"
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.post("/api/agents/", {"name": "same", "graph": greeting_pipeline()}, format="json").status_code == 201


def test_bad_run_inputs_queue_nothing(api):
    agent_id = create_agent(api, two_waits_and_a_join(0))
    refused = api.post(f"/api/agents/{agent_id}/runs/", {"inputs": {"left": {"seconds": "never"}}}, format="json")
    assert refused.status_code == 400 and refused.data["code"] == "bad_inputs"
    assert "inputs.left: input.seconds: 'never' is not of type 'number'" in refused.data["message"]
    assert AgentRun.objects.count() == 0


def test_another_users_agents_and_runs_are_not_found(api):
    agent_id = create_agent(api, two_waits_and_a_join(0))
    run_id = start_run(api, agent_id)
    stranger = APIClient()
    stranger.force_authenticate(make_user())
    for method, path in [("get", f"/api/agents/{agent_id}/"), ("patch", f"/api/agents/{agent_id}/"),
                         ("get", f"/api/agents/{agent_id}/runs/"), ("post", f"/api/agents/{agent_id}/runs/"),
                         ("get", f"/api/runs/{run_id}/"), ("post", f"/api/runs/{run_id}/cancel/"),
                         ("get", "/api/agents/not-a-uuid/"), ("get", "/api/runs/not-a-uuid/")]:
        response = getattr(stranger, method)(path, {}, format="json")
        assert response.status_code == 404 and response.data["code"] == "not_found", (method, path, response.data)
    assert stranger.get("/api/agents/").data["count"] == 0
    assert AgentRun.objects.count() == 1 and AgentRun.objects.get().status == "queued"  # nothing ran, nothing stopped


def test_unauthenticated_calls_are_refused():
    response = APIClient().get("/api/agents/")
    assert response.status_code == 401 and response.data["code"] == "not_authenticated"


def test_cancel_a_queued_run_then_it_has_ended(api):
    run_id = start_run(api, create_agent(api, two_waits_and_a_join(0)))
    cancelled = api.post(f"/api/runs/{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.data["status"] == "cancelled"
    assert {node["status"] for node in cancelled.data["nodes"]} == {"cancelled"}
    again = api.post(f"/api/runs/{run_id}/cancel/")
    assert again.status_code == 409 and again.data == {"code": "run_finished",
                                                       "message": "the run has ended already (cancelled)"}


def test_the_schema_documents_the_agents_api(api):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    assert {"/api/agents/", "/api/agents/{agent_id}/", "/api/agents/{agent_id}/runs/", "/api/runs/{run_id}/",
            "/api/runs/{run_id}/cancel/", "/api/blocks/"} <= set(paths)


def test_deleting_an_agent_takes_its_versions_and_runs_but_the_chat_keeps_its_reports(api):
    agent = Agent.objects.get(pk=create_agent(api, two_waits_and_a_join(0)))
    session = make_session(agent.owner)
    run = AgentRun.objects.get(pk=start_run(api, agent.id))
    AgentRun.objects.filter(pk=run.pk).update(session=session)
    do_cancel_run(run=AgentRun.objects.get(pk=run.pk))
    SessionNotice.objects.filter(session=session).update(seq=1)  # as if appended to the session's log
    agent.delete()
    assert not AgentRun.objects.exists() and not AgentVersion.objects.exists()
    [kept] = session_snapshot(session)["reports"]
    assert kept["chunk"]["data"]["status"] == "cancelled" and kept["chunk"]["data"]["run_id"] == str(run.id)
    agent.owner.delete()  # and a user goes with everything of theirs
    assert not SessionNotice.objects.exists()
