"""Checking graphs without saving them (node and field of each problem), and the library of ready-made agents."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agents.models import Agent, AgentVersion
from tests.agents.conftest import greeting_pipeline
from tests.factories import make_user

pytestmark = pytest.mark.django_db

OFFLINE_BLOCKS = {"text", "calculator", "json_extract", "wait"}


def problems_of(api, graph) -> list[tuple]:
    response = api.post("/api/agents/validate/", {"graph": graph}, format="json")
    assert response.status_code == 400 and response.data["code"] == "bad_graph", response.data
    assert set(response.data) == {"code", "message", "problems"}
    return [(p["node"], p["field"], p["message"]) for p in response.data["problems"]]


def test_a_good_graph_validates_and_nothing_is_saved(api):
    assert api.post("/api/agents/validate/", {"graph": greeting_pipeline()}, format="json").data == {"ok": True}
    assert Agent.objects.count() == 0


def test_a_cyclic_graph_names_the_cycle(api):
    graph = {"nodes": [{"id": "a", "block": "text", "input": {"template": "x"}},
                       {"id": "b", "block": "text", "input": {"template": "y"}}],
             "links": [{"from": "a", "output": "text", "to": "b", "input": "values.a"},
                       {"from": "b", "output": "text", "to": "a", "input": "values.b"}]}
    [(node, field, message)] = problems_of(api, graph)
    assert (node, field) == ("a", "links") and "cycle: a → b → a" in message


def test_a_too_large_graph_is_a_problem_of_the_whole_graph(api, settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_GRAPH_NODES": 3}
    graph = {"nodes": [{"id": f"n{i}", "block": "wait", "input": {"seconds": 0}} for i in range(4)]}
    [(node, field, message)] = problems_of(api, graph)
    assert (node, field) == (None, "nodes") and "at most 3 nodes (4 given)" in message


def test_unknown_blocks_and_nodes_and_type_mismatches_name_node_and_field(api):
    graph = {"nodes": [{"id": "w", "block": "wait", "input": {"seconds": "soon"}},
                       {"id": "x", "block": "teleport"},
                       {"id": "t", "block": "text", "input": {}}],
             "links": [{"from": "w", "output": "seconds", "to": "t", "input": "template"},
                       {"from": "w", "output": "seconds", "to": "ghost", "input": "template"}]}
    found = problems_of(api, graph)
    fields = {(node, field) for node, field, _ in found}
    assert ("x", "block") in fields
    assert ("w", "input.seconds") in fields
    unknown_block = next(message for node, field, message in found if field == "block")
    assert "unknown block 'teleport'" in unknown_block


def test_links_to_unknown_nodes_and_type_mismatches(api):
    graph = {"nodes": [{"id": "w", "block": "wait", "input": {"seconds": 1}},
                       {"id": "t", "block": "text", "input": {}}],
             "links": [{"from": "w", "output": "seconds", "to": "t", "input": "template"},
                       {"from": "w", "output": "seconds", "to": "ghost", "input": "template"}]}
    found = {(node, field): message for node, field, message in problems_of(api, graph)}
    assert "type mismatch: 'seconds' of 'wait' is a number" in found[("w", "links[0]")]
    assert "no node 'ghost'" in found[("w", "links[1].to")]


def test_saving_a_bad_graph_answers_the_same_400(api):
    graph = {"nodes": [{"id": "w", "block": "wait", "input": {"seconds": -1}}]}
    checked = api.post("/api/agents/validate/", {"graph": graph}, format="json")
    saved = api.post("/api/agents/", {"name": "bad", "graph": graph}, format="json")
    assert saved.status_code == checked.status_code == 400 and saved.data == checked.data
    assert checked.data["problems"] == [{"node": "w", "field": "input.seconds",
                                         "message": "node 'w' (wait): input.seconds: -1 is less than the minimum of 0"}]
    created = api.post("/api/agents/", {"name": "ok", "graph": greeting_pipeline()}, format="json").data
    patched = api.patch(f"/api/agents/{created['id']}/", {"graph": graph}, format="json")
    assert patched.status_code == 400 and patched.data == checked.data
    assert AgentVersion.objects.filter(agent_id=created["id"]).count() == 1


def test_validate_needs_a_graph(api):
    response = api.post("/api/agents/validate/", {}, format="json")
    assert response.status_code == 400 and response.data["code"] == "invalid"
    assert problems_of(api, "nodes")[0][0] is None


def test_the_library_lists_at_least_six_offline_agents_with_typed_inputs(api, library):
    listed = api.get("/api/library/").json()
    assert len(listed) >= 6
    for entry in listed:
        assert set(entry) == {"slug", "name", "description", "inputs", "graph"}
        assert entry["description"] and entry["inputs"]
        assert {node["block"] for node in entry["graph"]["nodes"]} <= OFFLINE_BLOCKS, entry["slug"]
        for declared in entry["inputs"]:
            assert {"node", "input", "type", "description"} <= set(declared)
            assert declared["type"] in {"string", "number", "integer", "object", "array", "boolean", "any"}
        assert api.post("/api/agents/validate/", {"graph": entry["graph"]}, format="json").data == {"ok": True}
    loan = next(entry for entry in listed if entry["slug"] == "loan-payment")
    terms = next(declared for declared in loan["inputs"] if declared["node"] == "terms"
                 and declared["input"] == "values")
    assert terms["type"] == "object" and terms["default"] == {"amount": 200000, "rate": 4.5, "years": 30}
    assert "rate" in terms["description"]


def test_installing_gives_the_user_their_own_copy(api, library):
    first = api.post("/api/library/loan-payment/install/")
    assert first.status_code == 201 and set(first.data) == {"agent_id"}
    again = api.post("/api/library/loan-payment/install/")
    mine = api.get(f"/api/agents/{first.data['agent_id']}/").data
    assert mine["name"] == "Loan payment" and mine["version"] == 1
    assert api.get(f"/api/agents/{again.data['agent_id']}/").data["name"] == "Loan payment 2"
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.get(f"/api/agents/{first.data['agent_id']}/").status_code == 404
    assert other.get("/api/agents/").data["count"] == 0
    assert api.post("/api/library/no-such-agent/install/").status_code == 404


def test_an_agent_can_be_deleted(api):
    created = api.post("/api/agents/", {"name": "gone", "graph": greeting_pipeline()}, format="json").data
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.delete(f"/api/agents/{created['id']}/").status_code == 404
    assert api.delete(f"/api/agents/{created['id']}/").status_code == 204
    assert api.get(f"/api/agents/{created['id']}/").status_code == 404
