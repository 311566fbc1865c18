"""A background agent run reports back on the chat page, live and after a reload (real worker, real browser)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents.actions import do_create_agent
from chat.models import ChatSession
from tests.agents.conftest import agents_worker, two_waits_and_a_join  # noqa: F401  (a fixture, used below)
from tests.factories import make_user, script
from tests.web.test_chat_page import log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_run_started_from_the_chat_reports_back_on_the_page(agents_worker, daphne_server, page):  # noqa: F811
    user = make_user(portable=True)
    agent = do_create_agent(owner_id=user.pk, name="waiter", description="waits twice",
                            graph=two_waits_and_a_join(0.5))
    log_in(page, daphne_server, user.username)
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert ChatSession.objects.filter(owner=user).exists()
    send(page, script({"tools": [{"name": "mcp__copilot__run_agent", "input": {"agent_id": str(agent.id)}}]},
                      {"text": "It runs in the background."}))
    expect(page.locator(".message.assistant .text").last).to_have_text("It runs in the background.")
    report = page.locator(".message.report")
    expect(report).to_contain_text(re.compile("Agent run completed"), timeout=60_000)
    expect(report).to_contain_text("waited 0.5s and 0.5s")
    page.reload()
    expect(page.locator(".message.report")).to_contain_text("waited 0.5s and 0.5s")
