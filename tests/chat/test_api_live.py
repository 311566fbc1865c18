"""The API over real HTTP against a real daphne: turns started, repeated and stopped; schemathesis."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token

from chat.models import Turn
from tests.factories import make_session, make_user, script, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def api(daphne_server):
    user = make_user()
    token = Token.objects.create(user=user).key
    with httpx.Client(base_url=daphne_server.http_url, headers={"Authorization": f"Token {token}"},
                      timeout=30) as client:
        yield client, make_session(user), token


def stream_until_done(client, session, after=None) -> list[dict]:
    params = {"after": after} if after is not None else {}
    chunks = []
    with client.stream("GET", f"/api/sessions/{session.id}/stream/", params=params) as response:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                return chunks
            if line.startswith("data: "):
                chunks.append(json.loads(line[6:]))
    raise AssertionError("the stream ended without [DONE]")


def test_the_same_client_message_id_starts_one_turn(api):
    client, session, _ = api
    body = {"text": script({"tools": [wait_tool(0.5)]}, {"text": "once"}), "client_message_id": str(uuid.uuid4())}
    first = client.post(f"/api/sessions/{session.id}/messages/", json=body)
    again = client.post(f"/api/sessions/{session.id}/messages/", json=body)
    busy = client.post(f"/api/sessions/{session.id}/messages/", json={"text": "another"})
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert busy.status_code == 409 and busy.json()["code"] == "turn_running"
    chunks = stream_until_done(client, session)
    assert chunks[-2]["data"]["status"] == "completed"
    after = client.post(f"/api/sessions/{session.id}/messages/", json=body)
    assert after.status_code == 202 and after.json() == first.json()  # still the same turn, after its end
    assert Turn.objects.filter(session=session).count() == 1
    assert client.get(f"/api/sessions/{session.id}/").json()["active_turn"] is None


def test_stop_over_http(api):
    client, session, _ = api
    client.post(f"/api/sessions/{session.id}/messages/", json={"text": script({"tools": [wait_tool(30)]})})
    with client.stream("GET", f"/api/sessions/{session.id}/stream/") as response:
        chunks = []
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
                if chunks[-1]["type"] == "tool-input-available":
                    assert client.post(f"/api/sessions/{session.id}/stop/").status_code == 202
            if line == "data: [DONE]":
                break
    assert chunks[-2]["data"]["status"] == "stopped"
    assert [c["type"] for c in chunks].count("tool-output-error") == 1
    assert client.post(f"/api/sessions/{session.id}/stop/").json()["code"] == "nothing_running"


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(api, daphne_server):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    client, session, token = api
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_url(f"{daphne_server.http_url}/api/schema/?format=json", headers=headers)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    calls = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case):
            if "session_id" in (case.path_parameters or {}) and case.path_parameters["session_id"] == "":
                return
            calls.append(case.call_and_validate(base_url=daphne_server.http_url, headers=headers, checks=checks))

        check()
    assert len(calls) >= 5 * len(operations)
    assert {response.status_code for response in calls} >= {200, 201, 400, 404}
    # Turns the generated messages started end on their own; wait for them before the database is flushed.
    for session_id in Turn.objects.filter(status="running").values_list("session_id", flat=True):
        with client.stream("GET", f"/api/sessions/{session_id}/stream/") as response:
            for _ in response.iter_lines():
                pass
