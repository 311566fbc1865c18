"""PROTOCOL §8 on the JSON API, in process: search, models, branch switching, files, usage and budgets, export.
Turns these need are saved through the turn actions (tests/web/builders.py), as the engine leaves them; the
scenarios that run the model are in test_branches.py, test_conversations_live.py and test_titles.py."""

from __future__ import annotations

import hashlib
import io
import json
import uuid

import pytest
from django.core.cache import cache
from django.db import connection  # noqa: F401 (read by a skipif condition)
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.actions.turns import add_usage_of_today
from chat.models import ChatSession, Message, Turn, UsageDay
from chat.workspaces import workspace_path
from tests.factories import make_session, make_user
from tests.web.builders import saved_turn

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def api(user):
    return client_of(user)


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def usage(cost: float, tokens: int = 100) -> dict:
    return {"input_tokens": tokens, "output_tokens": tokens // 10, "cache_read_input_tokens": tokens * 2,
            "cache_creation_input_tokens": 0, "cost_usd": cost}


# --- search ---

def test_search_finds_titles_and_messages_with_every_word_and_a_snippet_around_the_match(api, user):
    trip = make_session(user, title="Trip to Lisbon")
    saved_turn(trip, prompt="Which museums open on Mondays?", answer="The tile museum opens on Mondays.")
    budget = make_session(user, title="Money")
    saved_turn(budget, prompt="Help me plan a budget " + "with many words before " * 10 + "for the Lisbon trip",
               answer="Sure.")
    make_session(user, title="Unrelated")
    make_session(make_user(), title="Someone else's Lisbon trip")  # never found by this user

    found = api.get("/api/sessions/", {"q": "lisbon"}).json()
    assert [result["id"] for result in found["results"]] == [str(budget.id), str(trip.id)]  # newest first
    by_id = {result["id"]: result["match"] for result in found["results"]}
    assert by_id[str(trip.id)] == {"message_id": None, "snippet": "Trip to Lisbon"}  # only the title matched
    match = by_id[str(budget.id)]
    assert match["message_id"] == str(Message.objects.get(session=budget, role="user").id)
    assert "Lisbon trip" in match["snippet"] and match["snippet"].startswith("…")
    assert len(match["snippet"]) < 230

    both = api.get("/api/sessions/", {"q": "MUSEUM mondays"}).json()["results"]
    assert [result["id"] for result in both] == [str(trip.id)]
    assert both[0]["match"]["message_id"] is not None and "Mondays" in both[0]["match"]["snippet"]
    assert api.get("/api/sessions/", {"q": "museum lisbon-nowhere"}).json()["count"] == 0  # every word
    spread = api.get("/api/sessions/", {"q": "lisbon mondays"}).json()["results"]  # one in the title, one in a message
    assert [result["id"] for result in spread] == [str(trip.id)]
    assert "Mondays" in spread[0]["match"]["snippet"]


def test_a_search_without_words_is_a_clear_400(api):
    response = api.get("/api/sessions/", {"q": " !!! "})
    assert response.status_code == 400 and response.json()["code"] == "bad_query"
    assert api.get("/api/sessions/", {"q": " ".join(f"w{n}" for n in range(11))}).json()["code"] == "bad_query"
    assert api.get("/api/sessions/", {"q": "  "}).status_code == 200  # blank: no search, the whole list


def test_search_is_paginated_in_constant_queries(api, user, django_assert_max_num_queries):
    for number in range(30):
        saved_turn(make_session(user, title=f"chat {number}"), prompt=f"about pelicans, number {number}",
                   answer="Pelicans.")
    with django_assert_max_num_queries(6):
        page = api.get("/api/sessions/", {"q": "pelicans", "page_size": 20}).json()
    assert page["count"] == 30 and len(page["results"]) == 20
    assert all(result["match"]["message_id"] for result in page["results"])


# --- models ---

def test_models_are_listed_and_a_session_may_choose_one(api, user, settings):
    settings.COPILOT = {**settings.COPILOT, "MODELS": [
        {"id": "claude-sonnet-5", "label": "Claude Sonnet 5", "default": True},
        {"id": "claude-opus-5", "label": "Claude Opus 5", "default": False}]}
    assert api.get("/api/models/").json() == settings.COPILOT["MODELS"]
    session = make_session(user)
    assert api.get(f"/api/sessions/{session.id}/").json()["model"] == "claude-sonnet-5"
    changed = api.patch(f"/api/sessions/{session.id}/", {"model": "claude-opus-5"}, format="json")
    assert changed.status_code == 200 and changed.json()["model"] == "claude-opus-5"
    assert ChatSession.objects.get(pk=session.pk).model == "claude-opus-5"

    refused = api.patch(f"/api/sessions/{session.id}/", {"model": "gpt-9"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "bad_model"
    assert ChatSession.objects.get(pk=session.pk).model == "claude-opus-5"
    assert api.patch(f"/api/sessions/{session.id}/", {"model": 5}, format="json").status_code == 400
    assert api.patch(f"/api/sessions/{session.id}/", {}, format="json").status_code == 400


# --- branches ---

def test_active_leaf_switches_the_branch_the_snapshot_shows(api, user):
    session = make_session(user)
    first = saved_turn(session, prompt="one", answer="first answer")
    Turn.objects.filter(pk=first.pk).update(sdk_session_id="")
    second = saved_turn(session, prompt="two", answer="second answer")
    # A second version of "two", as an edit makes it.
    from chat.actions.turns import do_start_turn
    edit = do_start_turn(session=session, text="two, edited", client_message_id=uuid.uuid4(),
                         edit_of=second.user_message_id).turn
    Turn.objects.filter(pk=edit.pk).update(status="completed")

    shown = api.get(f"/api/sessions/{session.id}/").json()
    assert [m["id"] for m in shown["messages"]] == [str(first.user_message_id), str(first.assistant_message_id),
                                                     str(edit.user_message_id), str(edit.assistant_message_id)]
    assert shown["messages"][2]["branch"] == {"index": 1, "count": 2, "siblings": [str(second.user_message_id),
                                                                                 str(edit.user_message_id)]}
    switched = api.patch(f"/api/sessions/{session.id}/", {"active_leaf": str(second.user_message_id)}, format="json")
    assert switched.status_code == 200
    assert [m["id"] for m in switched.json()["messages"]][2:] == [str(second.user_message_id),
                                                                  str(second.assistant_message_id)]
    assert switched.json()["active_leaf"] == str(second.assistant_message_id)
    assert [m["id"] for m in api.get(f"/api/sessions/{session.id}/").json()["messages"]][2:] == [
        str(second.user_message_id), str(second.assistant_message_id)]

    other = saved_turn(make_session(make_user()), prompt="x", answer="y")
    refused = api.patch(f"/api/sessions/{session.id}/", {"active_leaf": str(other.user_message_id)}, format="json")
    assert refused.status_code == 404 and refused.json()["code"] == "unknown_message"
    assert api.patch(f"/api/sessions/{session.id}/", {"active_leaf": "nope"}, format="json").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_edit_of_and_regenerate_refuse_what_is_not_the_sessions(api, user):
    session = make_session(user)
    turn = saved_turn(session, prompt="one", answer="first answer")
    elsewhere = saved_turn(make_session(make_user()), prompt="x", answer="y")
    refused = api.post(f"/api/sessions/{session.id}/messages/",
                       {"text": "edited", "edit_of": str(elsewhere.user_message_id)}, format="json")
    assert refused.status_code == 404 and refused.json()["code"] == "unknown_message"
    for message_id in (turn.user_message_id, elsewhere.assistant_message_id, "not-a-uuid"):
        again = api.post(f"/api/sessions/{session.id}/messages/{message_id}/regenerate/", {}, format="json")
        assert again.status_code == 404, again.json()
    assert api.post(f"/api/sessions/{session.id}/messages/{turn.assistant_message_id}/regenerate/",
                    {"client_message_id": "x"}, format="json").status_code == 400
    assert Turn.objects.filter(session=session).count() == 1


# --- usage and budgets ---

def test_usage_is_shown_per_answer_per_session_on_every_branch_and_per_user_per_day(api, user, settings):
    settings.COPILOT = {**settings.COPILOT, "USER_DAILY_BUDGET_USD": 1.0}
    session = make_session(user)
    first = saved_turn(session, prompt="one", answer="a")
    second = saved_turn(session, prompt="two", answer="b")
    Message.objects.filter(pk=first.assistant_message_id).update(usage=usage(0.25))
    Message.objects.filter(pk=second.assistant_message_id).update(usage=usage(0.125, tokens=50))
    from chat.actions.sessions import do_switch_branch
    do_switch_branch(session=session, message_id=first.assistant_message_id)  # second is on no shown branch now
    add_usage_of_today(owner_id=user.pk, usage=usage(0.25))
    add_usage_of_today(owner_id=user.pk, usage=usage(0.125, tokens=50))
    UsageDay.objects.create(user=user, day=timezone.now().date() - timezone.timedelta(days=1), turns=1, cost_usd=9)

    snapshot = api.get(f"/api/sessions/{session.id}/").json()
    assert snapshot["messages"][1]["usage"] == usage(0.25)
    assert snapshot["usage"] == {"input_tokens": 150, "output_tokens": 15, "cache_read_input_tokens": 300,
                                 "cache_creation_input_tokens": 0, "cost_usd": 0.375}
    mine = api.get("/api/usage/").json()
    assert mine["today"]["cost_usd"] == 0.375 and mine["today"]["turns"] == 2 and mine["today"]["input_tokens"] == 150
    assert mine["budget_usd"] == 1.0 and mine["remaining_usd"] == 0.625
    assert [day["cost_usd"] for day in mine["days"]] == [0.375, 9.0]
    assert client_of(make_user()).get("/api/usage/").json()["today"]["cost_usd"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_send_over_the_daily_budget_is_refused_with_over_budget(api, user, settings):
    settings.COPILOT = {**settings.COPILOT, "USER_DAILY_BUDGET_USD": 0.5}
    session = make_session(user)
    add_usage_of_today(owner_id=user.pk, usage=usage(0.5))
    refused = api.post(f"/api/sessions/{session.id}/messages/", {"text": "hello"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "over_budget"
    assert "budget" in refused.json()["message"]
    assert not Message.objects.filter(session=session).exists()  # nothing saved, nothing lost: the text is the client's
    UsageDay.objects.filter(user=user).update(day=timezone.now().date() - timezone.timedelta(days=1))
    assert api.get("/api/usage/").json()["remaining_usd"] == 0.5  # a new day, a new budget


def test_deleting_a_chat_does_not_give_its_spending_back(api, user):
    session = make_session(user)
    add_usage_of_today(owner_id=user.pk, usage=usage(0.3))
    assert api.delete(f"/api/sessions/{session.id}/").status_code == 204
    assert api.get("/api/usage/").json()["today"]["cost_usd"] == 0.3


# --- files ---

def upload(api, session, name: str, content: bytes, **fields):
    file = io.BytesIO(content)
    file.name = name
    return api.post(f"/api/sessions/{session.id}/files/", {"file": file, **fields}, format="multipart")


def test_upload_list_download_and_delete_a_file(api, user):
    session = make_session(user)
    created = upload(api, session, "notes.txt", b"first line\nsecond line\n")
    assert created.status_code == 201
    assert created.json() == {"path": "notes.txt", "size": 23,
                              "sha256": hashlib.sha256(b"first line\nsecond line\n").hexdigest()}
    nested = upload(api, session, "ignored.csv", b"a,b\n1,2\n", path="data/table.csv")
    assert nested.status_code == 201 and nested.json()["path"] == "data/table.csv"

    listed = api.get(f"/api/sessions/{session.id}/files/").json()
    assert [(file["path"], file["size"]) for file in listed] == [("data/table.csv", 8), ("notes.txt", 23)]
    assert all(file["modified_at"] for file in listed)

    downloaded = api.get(f"/api/sessions/{session.id}/files/data/table.csv")
    assert downloaded.status_code == 200 and b"".join(downloaded.streaming_content) == b"a,b\n1,2\n"
    assert downloaded["Content-Disposition"] == 'attachment; filename="table.csv"'
    assert downloaded["Content-Type"] == "application/octet-stream"

    assert api.delete(f"/api/sessions/{session.id}/files/notes.txt").status_code == 204
    assert [file["path"] for file in api.get(f"/api/sessions/{session.id}/files/").json()] == ["data/table.csv"]
    assert api.get(f"/api/sessions/{session.id}/files/notes.txt").status_code == 404
    assert api.delete(f"/api/sessions/{session.id}/files/notes.txt").status_code == 404


def test_upload_paths_follow_the_tool_policy(api, user, tmp_path):
    session = make_session(user)
    (tmp_path / "secret.txt").write_text("secret")
    workspace = workspace_path(session.id)
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "link").symlink_to(tmp_path)
    for path in ["../escape.txt", "/etc/passwd", "~/x", "link/secret.txt", "a/../../b"]:
        refused = upload(api, session, "x.txt", b"x", path=path)
        assert refused.status_code == 400 and refused.json()["code"] == "bad_path", path
        assert api.get(f"/api/sessions/{session.id}/files/{path}").status_code in (400, 404)
    assert (tmp_path / "secret.txt").read_text() == "secret"
    assert api.get(f"/api/sessions/{session.id}/files/link/secret.txt").json()["code"] == "bad_path"
    # A name with folders in it keeps only its own name: nothing from the client leads elsewhere.
    sneaky = upload(api, session, "../../sneaky.txt", b"x")
    assert sneaky.status_code == 201 and sneaky.json()["path"] == "sneaky.txt"
    assert (workspace / "sneaky.txt").stat().st_mode & 0o111 == 0  # never executable


def test_uploads_past_the_size_limits_are_refused_and_leave_nothing(api, user, settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_UPLOAD_BYTES": 1_000, "MAX_WORKSPACE_BYTES": 1_500}
    session = make_session(user)
    too_big = upload(api, session, "big.bin", b"x" * 1_001)
    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"
    assert upload(api, session, "one.bin", b"x" * 1_000).status_code == 201
    full = upload(api, session, "two.bin", b"x" * 600)
    assert full.status_code == 413 and full.json()["code"] == "workspace_full"
    assert [file["path"] for file in api.get(f"/api/sessions/{session.id}/files/").json()] == ["one.bin"]
    assert sorted(path.name for path in workspace_path(session.id).iterdir()) == ["one.bin"]  # no partial file
    missing = api.post(f"/api/sessions/{session.id}/files/", {"path": "x"}, format="multipart")
    assert missing.status_code == 400
    assert api.post(f"/api/sessions/{session.id}/files/", {"x": 1}, format="json").status_code == 415


def test_another_users_files_are_not_found(api, user):
    stranger = make_session(make_user())
    workspace_path(stranger.id).mkdir(parents=True, exist_ok=True)
    (workspace_path(stranger.id) / "theirs.txt").write_text("theirs")
    assert api.get(f"/api/sessions/{stranger.id}/files/").status_code == 404
    assert api.get(f"/api/sessions/{stranger.id}/files/theirs.txt").status_code == 404
    assert upload(api, stranger, "mine.txt", b"x").status_code == 404
    assert api.delete(f"/api/sessions/{stranger.id}/files/theirs.txt").status_code == 404
    assert (workspace_path(stranger.id) / "theirs.txt").exists()


# --- export ---

def test_export_as_markdown_and_json_has_the_active_branch_and_its_tool_calls(api, user):
    session = make_session(user, title="Weather plans")
    saved_turn(session, prompt="What is 2+3?", answer="It is **5**.",
               tools=[{"name": "mcp__copilot__run_block", "input": {"block": "calculator", "input": {"a": 2}},
                       "output": {"result": 5}}])
    markdown = api.get(f"/api/sessions/{session.id}/export/", {"format": "markdown"})
    assert markdown.status_code == 200 and markdown["Content-Type"].startswith("text/markdown")
    assert markdown["Content-Disposition"] == 'attachment; filename="weather-plans.md"'
    text = markdown.content.decode()
    assert text.startswith("# Weather plans\n")
    for expected in ["## You", "What is 2+3?", "## Copilot", "It is **5**.", "### Tool call `mcp__copilot__run_block`",
                     '"block": "calculator"', '"result": 5']:
        assert expected in text, expected

    exported = api.get(f"/api/sessions/{session.id}/export/", {"format": "json"})
    assert exported["Content-Disposition"] == 'attachment; filename="weather-plans.json"'
    body = json.loads(exported.content)
    assert body["title"] == "Weather plans" and [m["role"] for m in body["messages"]] == ["user", "assistant"]
    tool = next(part for part in body["messages"][1]["parts"] if part["type"] == "dynamic-tool")
    assert tool["input"] == {"block": "calculator", "input": {"a": 2}} and tool["output"] == {"result": 5}

    assert api.get(f"/api/sessions/{session.id}/export/").status_code == 200  # markdown by default
    bad = api.get(f"/api/sessions/{session.id}/export/", {"format": "pdf"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_format"
    assert client_of(make_user()).get(f"/api/sessions/{session.id}/export/").status_code == 404


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="full-text indexes are PostgreSQL's (CI runs it)")
def test_on_postgresql_search_uses_its_gin_indexes_and_ranks_the_best_message(api, user):

    from chat.search import messages_with, titles_with

    session = make_session(user, title="Birds")
    saved_turn(session, prompt="Pelican, pelican, pelican: tell me about the pelican.", answer="It is a pelican.")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # on a tiny table the planner would rather scan it
        for query in (messages_with(["pelican"], every=True).values("id"), titles_with("birds")):
            sql, params = query.query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "message_body_search" in plan or "session_title_search" in plan, plan
    match = api.get("/api/sessions/", {"q": "pelican"}).json()["results"][0]["match"]
    assert match["message_id"] == str(Message.objects.get(session=session, role="user").id)  # ranked, not newest
