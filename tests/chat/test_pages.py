"""The server-rendered pages: login, the session list, the chat page."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from chat.models import ChatSession
from tests.factories import PASSWORD, make_session, make_user

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_login_then_list_and_create_a_chat(client):
    user = make_user("ada")
    make_session(user, title="Older chat")
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302
    listing = client.get("/")
    assert b"Older chat" in listing.content and b"New chat" in listing.content
    created = client.post(reverse("chat:session-create"))
    session = ChatSession.objects.filter(owner=user).order_by("-created_at").first()
    assert created.url == f"/sessions/{session.id}/"


def test_chat_page_embeds_the_snapshot(client):
    user = make_user()
    session = make_session(user)
    client.force_login(user)
    page = client.get(f"/sessions/{session.id}/")
    assert page.status_code == 200
    assert b'<label for="message-input"' in page.content and b">Message</label>" in page.content
    snapshot = json.loads(page.content.split(b'<script id="snapshot" type="application/json">')[1].split(b"</script>")[0])
    assert snapshot["id"] == str(session.id) and snapshot["last_seq"] == 0


def test_another_users_chat_is_not_found(client):
    session = make_session(make_user())
    client.force_login(make_user())
    assert client.get(f"/sessions/{session.id}/").status_code == 404
    assert b"Test chat" not in client.get("/").content
