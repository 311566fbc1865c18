"""Hostile input at a real server process (`manage.py serve`): oversized and deeply nested frames, nested bodies,
foreign origins. What the in-process consumer tests cannot see: daphne's and autobahn's own limits and pages."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from tests.conftest import ServerProcess
from tests.factories import make_session, make_user, next_frame

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("hostile"),
                           extra_env={"DJANGO_CSRF_TRUSTED_ORIGINS": "https://copilot.example.com"})
    yield server
    server.stop()


@pytest.fixture
def owner():
    user = make_user()
    return make_session(user), Token.objects.create(user=user).key


def socket_to(server, session, token, **headers):
    return websockets.connect(f"{server.ws_url}/ws/sessions/{session.id}/", max_size=None,
                              additional_headers={"Authorization": f"Token {token}", **headers})


async def answer_to(socket, raw: str) -> dict:
    await socket.send(raw)
    return await next_frame(socket)


async def still_serves(socket) -> None:
    assert await answer_to(socket, json.dumps({"type": "ping"})) == {"type": "pong"}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_a_frame_over_one_mebibyte_gets_too_large_and_the_socket_stays_open(server, owner):
    session, token = owner
    async with socket_to(server, session, token) as socket:
        huge = json.dumps({"type": "send", "text": "x" * (2 * MIB), "client_message_id": str(uuid.uuid4())})
        error = await answer_to(socket, huge)
        assert error["type"] == "error" and error["code"] == "too_large"
        await still_serves(socket)
        just_over = json.dumps({"type": "ping", "pad": "x" * MIB})
        assert (await answer_to(socket, just_over))["code"] == "too_large"
        await still_serves(socket)


async def test_a_deeply_nested_frame_is_a_bad_frame_and_the_socket_stays_open(server, owner):
    session, token = owner
    async with socket_to(server, session, token) as socket:
        for raw in (nested(100_000), '{"type": "resume", "after_seq": 0, "x": ' + nested(5_000) + "}"):
            error = await answer_to(socket, raw)
            assert error["type"] == "error" and error["code"] == "bad_frame", error
            await still_serves(socket)


def api(server, token) -> httpx.Client:
    return httpx.Client(base_url=server.http_url, headers={"Authorization": f"Token {token}"}, timeout=30)


ENDPOINTS = ["/api/sessions/", "/api/sessions/{session}/messages/", "/api/agents/",
             "/api/sessions/{session}/"]


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(min_value=1, max_value=200_000), endpoint=st.sampled_from(ENDPOINTS),
       wrapper=st.sampled_from(["{}", '{{"text": {}}}', '{{"graph": {}, "name": "n"}}', '{{"title": {}}}']),
       kind=st.sampled_from("[{"))
def test_no_nested_body_gets_a_500_and_every_error_is_code_and_message(server, owner, depth, endpoint, wrapper,
                                                                         kind):
    session, token = owner
    inner = nested(depth) if kind == "[" else '{"a": ' * depth + "1" + "}" * depth
    body = wrapper.format(inner)
    method = "PATCH" if endpoint.endswith("{session}/") else "POST"
    with api(server, token) as client:
        response = client.request(method, endpoint.format(session=session.id), content=body,
                                  headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()
        assert set(error) >= {"code", "message"}, error
        assert "REDIS_URL" not in response.text and "Traceback" not in response.text


def test_a_body_nested_deeper_than_the_limit_is_a_400_with_its_reason(server, owner):
    session, token = owner
    with api(server, token) as client:
        response = client.post("/api/sessions/", content=nested(10_000), headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"code": "parse_error", "message": "JSON nested deeper than 64 levels is refused"}


@pytest.mark.parametrize(("origin", "accepted"), [
    ("{own}", True),
    ("http://127.0.0.1:1", False),  # the same host on another port is another site
    ("https://127.0.0.1:{port}", False),  # another scheme too
    ("http://localhost:{port}", False),  # the page's origin must be the socket's own
    ("http://evil.example:{port}", False),
    ("null", False),
    ("https://copilot.example.com", True),  # listed in CSRF_TRUSTED_ORIGINS (behind a TLS proxy)
])
async def test_the_websocket_origin_must_match_scheme_host_and_port(server, owner, origin, accepted):
    session, token = owner
    origin = origin.format(own=server.http_url, port=server.port)
    if accepted:
        async with socket_to(server, session, token, Origin=origin) as socket:
            await socket.send(json.dumps({"type": "ping"}))
            assert await next_frame(socket) == {"type": "pong"}
    else:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with socket_to(server, session, token, Origin=origin):
                pass
        assert refused.value.response.status_code == 403


def test_the_event_stream_is_described_in_the_schema(server, owner):
    _, token = owner
    with api(server, token) as client:
        schema = client.get("/api/schema/", params={"format": "json"}).json()
    stream = schema["paths"]["/api/sessions/{session_id}/stream/"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"204", "400", "401", "404"} <= set(stream["responses"])
    assert {(p["name"], p["in"]) for p in stream["parameters"]} == {
        ("session_id", "path"), ("after", "query"), ("Last-Event-ID", "header")}


def test_a_server_without_debug_shows_no_debug_page(server, owner):
    _, token = owner
    with api(server, token) as client:
        page = client.get("/no/such/page/")
        api_error = client.get("/api/no/such/endpoint/")
    assert page.status_code == 404 and "URLconf" not in page.text and "REDIS_URL" not in page.text
    assert api_error.status_code == 404 and api_error.json()["code"] == "not_found"
