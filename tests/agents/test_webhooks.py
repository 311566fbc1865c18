"""Signed webhooks: the URL and secret, HMAC-SHA256 over timestamp and body, stale and replayed requests, inputs
checked against the agent, rotating the secret, revoking, and the rate per webhook."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.test import APIClient

from agents.models import AgentRun, RunTrigger
from agents.webhooks import sign
from tests.agents.conftest import create_agent, greeting_pipeline
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(api):
    agent_id = create_agent(api, greeting_pipeline())
    made = api.post(f"/api/agents/{agent_id}/webhooks/")
    assert made.status_code == 201 and set(made.data) >= {"id", "url", "secret"}
    return made.data


def send(client, hook, body: bytes | dict, *, timestamp: int | None = None, secret: str | None = None,
         signature: str | None = None, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = {"HTTP_X_COPILOT_TIMESTAMP": str(timestamp),
              "HTTP_X_COPILOT_SIGNATURE": signature or sign(secret or hook["secret"], timestamp, raw)}
    return client.post(hook["url"], raw, content_type="application/json",
                       **(headers if headers is not None else signed))


def test_a_signed_request_runs_the_agent_with_its_body_as_inputs(client, hook):
    assert hook["url"].startswith("http://testserver/api/hooks/")
    accepted = send(client, hook, {"greet": {"values": {"name": "Grace"}}})
    assert accepted.status_code == 202, accepted.json()
    run = AgentRun.objects.get(pk=accepted.json()["run_id"])
    assert run.trigger == RunTrigger.WEBHOOK and run.inputs == {"greet": {"values": {"name": "Grace"}}}
    assert send(client, hook, b"").status_code == 202  # an empty body: the agent's own inputs


@pytest.mark.parametrize("case", ["no headers", "no signature", "wrong secret", "tampered body", "not hex",
                                  "stale", "future", "bad timestamp"])
def test_wrong_stale_or_missing_signatures_are_401(client, hook, case):
    body = {"greet": {"values": {"name": "Mallory"}}}
    raw = json.dumps(body).encode()
    now = int(time.time())
    response = {
        "no headers": lambda: send(client, hook, body, headers={}),
        "no signature": lambda: send(client, hook, body, headers={"HTTP_X_COPILOT_TIMESTAMP": str(now)}),
        "wrong secret": lambda: send(client, hook, body, secret="whsec_guessed"),
        "tampered body": lambda: send(client, hook, body, signature=sign(hook["secret"], now, raw + b" ")),
        "not hex": lambda: send(client, hook, body, signature="sha256=zz"),
        "stale": lambda: send(client, hook, body, timestamp=now - 301),
        "future": lambda: send(client, hook, body, timestamp=now + 301),
        "bad timestamp": lambda: send(client, hook, body, headers={"HTTP_X_COPILOT_TIMESTAMP": "soon",
                                                                  "HTTP_X_COPILOT_SIGNATURE": "sha256=00"}),
    }[case]()
    assert response.status_code == 401, response.json()
    assert set(response.json()) == {"code", "message"}
    assert AgentRun.objects.count() == 0


def test_a_timestamp_just_inside_the_window_is_accepted(client, hook):
    assert send(client, hook, {}, timestamp=int(time.time()) - 290).status_code == 202


def test_a_replayed_request_is_409(client, hook):
    now = int(time.time())
    assert send(client, hook, {"greet": {"values": {"name": "A"}}}, timestamp=now).status_code == 202
    again = send(client, hook, {"greet": {"values": {"name": "A"}}}, timestamp=now)
    assert again.status_code == 409 and again.json()["code"] == "replayed"
    assert AgentRun.objects.count() == 1


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'"text"', b'{"ghost": {"x": 1}}',
                                  b'{"greet": {"template": 5}}', b'{"greet": 3}', b"[" * 100 + b"]" * 100])
def test_bodies_that_do_not_fit_the_agent_are_400(client, hook, body):
    response = send(client, hook, body)
    assert response.status_code == 400 and response.json()["code"] == "bad_inputs", response.json()
    assert response.json()["message"]
    assert AgentRun.objects.count() == 0


def test_rotating_the_secret_retires_the_old_one(api, client, hook):
    rotated = api.post(f"/api/webhooks/{hook['id']}/rotate/")
    assert rotated.status_code == 200 and rotated.data["secret"] != hook["secret"]
    assert rotated.data["url"] == hook["url"]
    assert send(client, hook, {}).status_code == 401
    assert send(client, {**hook, "secret": rotated.data["secret"]}, {}).status_code == 202
    listed = api.get(f"/api/agents/{hook['agent_id']}/webhooks/").data["results"]
    assert [item["id"] for item in listed] == [hook["id"]] and "secret" not in listed[0]


def test_a_revoked_webhook_is_gone(api, client, hook):
    assert api.delete(f"/api/webhooks/{hook['id']}/").status_code == 204
    assert send(client, hook, {}).status_code == 404
    assert api.post(f"/api/webhooks/{hook['id']}/rotate/").status_code == 404


def test_each_webhook_has_its_rate(api, client, hook, settings):
    settings.COPILOT = {**settings.COPILOT, "WEBHOOK_RATE_PER_MINUTE": 3}
    other = api.post(f"/api/agents/{hook['agent_id']}/webhooks/").data
    codes = [send(client, hook, {"greet": {"values": {"name": str(n)}}}).status_code for n in range(4)]
    assert codes == [202, 202, 202, 429]
    assert send(client, hook, {"x": 1}).json()["code"] == "rate_limited"
    assert send(client, other, {}).status_code == 202  # another webhook has its own rate
    assert send(client, hook, {}, secret="wrong").status_code == 401  # unsigned requests are refused first


def test_webhooks_of_another_user_are_not_found(hook):
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.get(f"/api/webhooks/{hook['id']}/").status_code == 404
    assert other.post(f"/api/webhooks/{hook['id']}/rotate/").status_code == 404
    assert other.delete(f"/api/webhooks/{hook['id']}/").status_code == 404
    assert other.post(f"/api/agents/{hook['agent_id']}/webhooks/").status_code == 404


def test_only_post_and_unknown_ids(client, hook):
    assert client.get(hook["url"]).status_code == 405
    assert client.post("/api/hooks/00000000-0000-0000-0000-000000000000/", b"{}",
                       content_type="application/json").status_code == 404
