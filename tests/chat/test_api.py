"""The JSON API (PROTOCOL §4): happy paths, isolation, idempotency, and every kind of bad input."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from chat.models import ChatSession, Message, ToolCall, Turn
from tests.factories import make_session, make_user

pytestmark = pytest.mark.django_db
# Posting a message and stopping reach the engine's async code, whose database work runs on other threads.
reaches_the_engine = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def running_turn_in(session) -> Turn:
    """A turn that runs somewhere (its row says so), without starting a CLI."""
    user_message = Message.objects.create(session=session, position=1, role="user",
                                          parts=[{"type": "text", "index": 0, "text": "hi"}],
                                          client_message_id=uuid.uuid4())
    answer = Message.objects.create(session=session, position=2, role="assistant")
    turn = Turn.objects.create(session=session, user_message=user_message, assistant_message=answer)
    ToolCall.objects.create(turn=turn, message=answer, tool_use_id="toolu_1", name="mcp__copilot__run_block",
                            input={"block": "wait"}, input_seq=3)
    return turn


def test_create_list_retrieve_rename_delete(api):
    created = api.post("/api/sessions/", {"title": "Plans"}, format="json")
    assert created.status_code == 201 and created.data["title"] == "Plans"
    session_id = created.data["id"]
    listed = api.get("/api/sessions/")
    assert listed.status_code == 200 and listed.data["count"] == 1 and listed.data["results"][0]["id"] == session_id
    snapshot = api.get(f"/api/sessions/{session_id}/").data
    assert snapshot["messages"] == [] and snapshot["active_turn"] is None and snapshot["last_seq"] == 0
    renamed = api.patch(f"/api/sessions/{session_id}/", {"title": "Better plans"}, format="json")
    assert renamed.status_code == 200 and renamed.data["title"] == "Better plans"
    assert api.delete(f"/api/sessions/{session_id}/").status_code == 204
    assert api.get(f"/api/sessions/{session_id}/").status_code == 404


def test_list_is_paginated_newest_first_in_constant_queries(api, user, django_assert_max_num_queries):
    sessions = [make_session(user, title=f"chat {n}") for n in range(60)]
    with django_assert_max_num_queries(4):
        page = api.get("/api/sessions/").data
    assert page["count"] == 60 and len(page["results"]) == 50 and page["next"]
    assert page["results"][0]["id"] == str(sessions[-1].id)
    assert len(api.get("/api/sessions/?page=2").data["results"]) == 10


def test_turns_list_and_detail_show_tool_calls(api, user):
    turn = running_turn_in(make_session(user))
    turns = api.get(f"/api/sessions/{turn.session_id}/turns/").data
    assert [t["id"] for t in turns["results"]] == [str(turn.id)]
    detail = api.get(f"/api/turns/{turn.id}/").data
    assert detail["status"] == "running" and detail["tool_calls"][0]["toolCallId"] == "toolu_1"


@reaches_the_engine
def test_a_running_turn_shows_in_the_snapshot_and_blocks_a_second_message_and_deletion(api, user):
    session = make_session(user)
    turn = running_turn_in(session)
    snapshot = api.get(f"/api/sessions/{session.id}/").data
    assert snapshot["active_turn"]["id"] == str(turn.id)
    tool = snapshot["messages"][1]["parts"][0]
    assert tool["state"] == "input-available"  # pending: its turn runs
    response = api.post(f"/api/sessions/{session.id}/messages/", {"text": "again"}, format="json")
    assert response.status_code == 409 and response.data["code"] == "turn_running"
    assert api.delete(f"/api/sessions/{session.id}/").status_code == 409
    assert Message.objects.filter(session=session).count() == 2  # nothing half-written


def test_a_dead_turns_call_is_never_shown_pending(api, user):
    turn = running_turn_in(make_session(user))
    Turn.objects.filter(pk=turn.pk).update(status="interrupted")
    tool = api.get(f"/api/sessions/{turn.session_id}/").data["messages"][1]["parts"][0]
    assert tool["state"] == "output-error" and "interrupted" in tool["errorText"]


@reaches_the_engine
def test_stop_when_nothing_runs_is_409(api, user):
    session = make_session(user)
    response = api.post(f"/api/sessions/{session.id}/stop/")
    assert response.status_code == 409 and response.data == {"code": "nothing_running",
                                                              "message": "no turn is running in this session"}


def test_another_users_session_and_turn_are_404_everywhere(api):
    other = make_session(make_user())
    turn = running_turn_in(other)
    for method, path in [("get", f"/api/sessions/{other.id}/"), ("patch", f"/api/sessions/{other.id}/"),
                         ("delete", f"/api/sessions/{other.id}/"), ("post", f"/api/sessions/{other.id}/messages/"),
                         ("post", f"/api/sessions/{other.id}/stop/"), ("get", f"/api/sessions/{other.id}/turns/"),
                         ("get", f"/api/turns/{turn.id}/")]:
        response = getattr(api, method)(path, {"title": "x", "text": "x"}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.data["code"] == "not_found"
    assert ChatSession.objects.get(pk=other.pk).title == "Test chat"
    assert api.get("/api/sessions/").data["count"] == 0


def test_unauthenticated_is_401_with_the_error_shape():
    response = APIClient().get("/api/sessions/")
    assert response.status_code == 401
    assert response.data["code"] == "not_authenticated" and response.data["message"]


@reaches_the_engine
@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, "parse_error"),
    (b'{"text": "hi", "extra": 1}', "application/json", 400, "invalid"),
    (b'{"text": 5}', "application/json", 400, "invalid"),
    (b'{"text": ""}', "application/json", 400, "bad_message"),
    (b'{"text": "   "}', "application/json", 400, "bad_message"),
    (b'{"text": "hi", "client_message_id": "nope"}', "application/json", 400, "invalid"),
    (b"text=hi", "text/plain", 415, "unsupported_media_type"),
])
def test_bad_message_bodies(api, user, body, content_type, status, code):
    session = make_session(user)
    response = api.generic("POST", f"/api/sessions/{session.id}/messages/", body, content_type=content_type)
    assert response.status_code == status and response.data["code"] == code, response.data
    assert response.data["message"]
    assert not Message.objects.filter(session=session).exists()


@reaches_the_engine
def test_over_long_text_is_400_and_oversized_body_is_413(api, user, settings):
    session = make_session(user)
    settings.COPILOT = {**settings.COPILOT, "MAX_MESSAGE_CHARS": 100}
    response = api.post(f"/api/sessions/{session.id}/messages/", {"text": "x" * 101}, format="json")
    assert response.status_code == 400 and response.data["code"] == "bad_message"
    huge = api.post(f"/api/sessions/{session.id}/messages/", {"text": "x" * (3 * 1024 * 1024)}, format="json")
    assert huge.status_code == 413 and huge.data["code"] == "too_large"


def test_wrong_method_is_405(api, user):
    response = api.put(f"/api/sessions/{make_session(user).id}/messages/", {}, format="json")
    assert response.status_code == 405 and response.data["code"] == "method_not_allowed"


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404 and response.json() == {"code": "not_found", "message": "not found"}


@reaches_the_engine
def test_message_posting_is_throttled_per_user(api, user, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"messages": "2/minute"})
    session = make_session(user)
    running_turn_in(session)
    statuses = [api.post(f"/api/sessions/{session.id}/messages/", {"text": "hi"}, format="json").status_code
                for _ in range(3)]
    assert statuses == [409, 409, 429]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user()).key}")
    assert other.get("/api/sessions/").status_code == 200  # another user is not affected


def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/sessions/", "/api/sessions/{session_id}/", "/api/sessions/{session_id}/messages/",
            "/api/sessions/{session_id}/stop/", "/api/turns/{turn_id}/"} <= set(paths)
    assert api.get("/api/docs/").status_code == 200
