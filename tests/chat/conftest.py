"""Fixtures of the chat tests that read a real server over HTTP."""

from __future__ import annotations

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.factories import make_session, make_user


@pytest.fixture
def api(daphne_server):
    """An HTTP client of a real daphne process with a new user's token, and a session of that user."""
    user = make_user()
    session = make_session(user)
    token = Token.objects.create(user=user).key
    with httpx.Client(base_url=daphne_server.http_url, headers={"Authorization": f"Token {token}"},
                      timeout=30) as client:
        yield client, session
