"""The chat page in a real browser against a real daphne process."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, make_user, script, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def log_in(page, server, username):
    page.goto(f"{server.http_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your chats")).to_be_visible()


def test_log_in_and_watch_a_parallel_tool_turn_complete(daphne_server, page):
    make_user("grace", portable=True)
    log_in(page, daphne_server, "grace")
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))

    page.get_by_label("Message").fill(script({"text": "Three at once.", "tools": [wait_tool(1.5), wait_tool(0.5),
                                                                                  wait_tool(1)]},
                                             {"text": "All three finished."}))
    page.get_by_label("Message").press("Enter")

    cards = page.locator(".message.assistant .tool")
    expect(cards).to_have_count(3)
    expect(page.locator(".tool[data-state=running]")).to_have_count(3)  # side by side, all running
    expect(page.locator(".tool[data-state=done]")).to_have_count(3)
    expect(page.locator(".message.assistant .text").last).to_have_text("All three finished.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()

    page.reload()  # what was streamed is what was saved
    expect(page.locator(".tool[data-state=done]")).to_have_count(3)
    expect(page.locator(".message.assistant .text").first).to_have_text("Three at once.")
