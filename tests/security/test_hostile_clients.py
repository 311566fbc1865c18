"""Hostile websocket frames (hypothesis) get an answer or an error, never a crash; CSRF and production cookies."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.middleware.csrf import get_token
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from copilot_site.asgi import application
from tests.factories import make_session, make_user, next_frame

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
frame_types = st.sampled_from(["send", "resume", "stop", "ping", "dance", "", "SEND"]) | st.text(max_size=8)
frames = st.one_of(
    st.builds(lambda kind, extra: json.dumps({"type": kind, **extra}), frame_types,
              st.dictionaries(st.sampled_from(["text", "client_message_id", "after_seq", "x"]), json_values,
                              max_size=3)),
    json_values.map(json.dumps),
    st.text(min_size=1, max_size=200),  # Channels' test client cannot send an empty frame
    st.binary(min_size=1, max_size=200),
)


@pytest.fixture
def owner(settings):
    # No message is short enough, so every well-formed `send` is answered at once with a clear refusal.
    settings.COPILOT = {**settings.COPILOT, "MAX_MESSAGE_CHARS": 0,
                        "RATE_LIMITS": {**settings.COPILOT["RATE_LIMITS"], "frames": (10**6, 1),
                                        "resumes": (10**6, 1), "turns": (10**6, 1)}}
    user = make_user()
    return make_session(user), Token.objects.create(user=user).key


async def exchange(session, token, raw) -> list[dict]:
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                         headers=[(b"authorization", f"Token {token}".encode())])
    connected, _ = await communicator.connect()
    assert connected
    if isinstance(raw, bytes):
        await communicator.send_to(bytes_data=raw)
    else:
        await communicator.send_to(text_data=raw)
    await communicator.send_json_to({"type": "ping"})
    answers = []
    while True:  # every frame is answered; the ping's pong proves the socket still serves
        answer = await next_frame(communicator, timeout=30)  # a bound for a loaded machine, not a speed
        answers.append(answer)
        if answer == {"type": "pong"} and (len(answers) > 1 or json_type(raw) != "ping"):
            break
    await communicator.disconnect()
    return answers


def json_type(raw):
    try:
        frame = json.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return frame.get("type") if isinstance(frame, dict) else None


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=frames)
def test_every_frame_is_answered_and_the_socket_keeps_serving(owner, raw):
    session, token = owner
    answers = async_to_sync(exchange)(session, token, raw)
    first = answers[0]
    assert first["type"] in {"error", "pong"}, first
    if first["type"] == "error":
        assert first["code"] in {"bad_frame", "unknown_type", "too_large", "bad_message", "bad_seq",
                                 "nothing_running", "rate_limited"} and first["message"]


def test_a_state_changing_form_without_its_csrf_token_is_refused():
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    session = make_session(user)
    refused = client.post(f"/sessions/{session.id}/rename/", {"title": "hijacked"})
    assert refused.status_code == 403
    session.refresh_from_db()
    assert session.title == "Test chat"
    page = client.get("/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else get_token(page.wsgi_request)
    accepted = client.post(f"/sessions/{session.id}/rename/", {"title": "mine", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302


def test_production_settings_secure_the_cookies_and_send_hsts():
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR

    probe = ("import django, json; django.setup(); from django.conf import settings as s; "
             "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.DEBUG]))")
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "copilot_site.settings", "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": "x" * 50, "COPILOT_VAR_DIR": str(PROJECT_DIR / "var")}
    output = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True,
                            text=True, check=True).stdout
    session_secure, csrf_secure, hsts_seconds, debug = json.loads(output)
    assert (session_secure, csrf_secure, debug) == (True, True, False) and hsts_seconds >= 31536000
