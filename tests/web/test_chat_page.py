"""The chat page in a real browser (Debian's Chromium via Playwright) against a real daphne process."""

from __future__ import annotations

import os
import re
import tempfile

import pytest
from playwright.sync_api import expect

from chat.models import ChatSession
from tests.factories import PASSWORD, make_session, make_user, script, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

# The README's screenshots are refreshed with COPILOT_SCREENSHOTS_DIR=docs/screenshots ./dev test tests/web
SCREENSHOTS = os.environ.get("COPILOT_SCREENSHOTS_DIR") or tempfile.gettempdir()


def log_in(page, server, username):
    page.goto(f"{server.http_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your chats")).to_be_visible()


@pytest.fixture
def chat(daphne_server, page):
    """A logged-in user on a new chat page; returns (page, session)."""
    user = make_user(portable=True)
    log_in(page, daphne_server, user.username)
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    session = ChatSession.objects.get(owner=user)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()  # the socket is open
    return page, session


def send(page, text):
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")  # the page took the message


def answer_texts(page):
    return page.locator(".message.assistant .text")


def test_three_parallel_tool_cards_run_side_by_side_and_complete(chat):
    page, _ = chat
    send(page, script({"text": "Three at once.", "tools": [wait_tool(1.5), wait_tool(0.5), wait_tool(1)]},
                      {"text": "All three **finished**."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(3)
    expect(page.get_by_role("button", name="Queue")).to_be_visible()  # a message sent now waits for its turn
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/chat-tools-running.png")
    expect(page.locator(".tool[data-state=done]")).to_have_count(3)
    expect(answer_texts(page).last).to_have_text("All three finished.")
    expect(answer_texts(page).last.locator("strong")).to_have_text("finished")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    page.locator(".tool summary").first.click()  # a card opens to show its input and output
    expect(page.locator(".tool").first.locator(".tool-details")).to_contain_text('"seconds": 1.5')
    page.screenshot(path=f"{SCREENSHOTS}/chat-turn-complete.png")


def test_reload_while_tools_run_brings_the_cards_back_running_then_done(chat):
    page, _ = chat
    send(page, script({"tools": [wait_tool(2), wait_tool(2.5)]}, {"text": "Survived the reload."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(2)
    page.reload()
    expect(page.locator(".tool[data-state=running]")).to_have_count(2)
    expect(page.locator(".tool[data-state=done]")).to_have_count(2)
    expect(answer_texts(page).last).to_have_text("Survived the reload.")
    expect(page.locator(".tool")).to_have_count(2)


def test_offline_mid_turn_shows_the_banner_and_recovers_without_duplicates(chat, daphne_server):
    page, _ = chat
    context = page.context
    send(page, script({"text": "Going through a tunnel.", "tools": [wait_tool(2)]}, {"text": "Out the other side."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(1)
    context.set_offline(True)
    expect(page.locator("#connection")).to_have_text(re.compile("offline|reconnecting", re.I))
    context.set_offline(False)
    expect(page.locator("#connection")).to_be_hidden()
    expect(answer_texts(page).last).to_have_text("Out the other side.")
    expect(page.locator(".tool")).to_have_count(1)
    expect(answer_texts(page)).to_have_count(2)
    expect(answer_texts(page).first).to_have_text("Going through a tunnel.")


def test_a_second_tab_follows_the_turn_live(chat):
    page, session = chat
    second = page.context.new_page()
    second.goto(page.url)
    expect(second.get_by_role("button", name="Send")).to_be_enabled()
    send(page, script({"text": "Seen from two tabs.", "tools": [wait_tool(0.5)]}, {"text": "Both saw it."}))
    expect(second.locator(".message.user .text")).to_have_text(re.compile("#script"))
    expect(second.locator(".tool[data-state=done]")).to_have_count(1)
    expect(answer_texts(second).last).to_have_text("Both saw it.")
    second.close()


def test_stop_mid_tool_interrupts_the_cards_and_the_page_stays_usable(chat):
    page, _ = chat
    send(page, script({"tools": [wait_tool(30), wait_tool(20)]}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(2)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".tool[data-state=interrupted]")).to_have_count(2)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.screenshot(path=f"{SCREENSHOTS}/chat-stopped.png")
    send(page, script({"text": "Next message works."}))
    expect(answer_texts(page).last).to_have_text("Next message works.")


def test_a_model_fault_shows_a_clear_error_not_a_spinner(chat):
    page, _ = chat
    send(page, script({"tools": [wait_tool(0.2)]}, {"error": "api_error"}))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(re.compile("API Error", re.I))
    expect(page.locator(".tool[data-state=running]")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.screenshot(path=f"{SCREENSHOTS}/chat-model-error.png")
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("API Error", re.I))


def test_hostile_markdown_renders_inert(chat):
    page, _ = chat
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
    hostile = ("<script>alert('x')</script> [click](javascript:alert('y')) <img src=x onerror=alert('z')> "
               "[safe](https://example.com)")
    send(page, script({"text": hostile}))
    answer = answer_texts(page).last
    expect(answer).to_contain_text("<script>alert('x')</script>")
    assert answer.locator("script, img, iframe").count() == 0
    links = answer.locator("a")
    expect(links).to_have_count(1)
    assert links.first.get_attribute("href") == "https://example.com"
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0


def test_session_list_renames_deletes_and_badges_running_chats(daphne_server, page):
    user = make_user(portable=True)
    log_in(page, daphne_server, user.username)
    session = make_session(user, title="Old name")
    page.reload()
    page.get_by_text("Manage").click()
    page.get_by_label("New title for “Old name”").fill("Trip planning")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("link", name="Trip planning")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/session-list.png")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_text("Manage").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("link", name="Trip planning")).to_have_count(0)
    assert not ChatSession.objects.filter(pk=session.pk).exists()


def test_phone_width_keeps_the_chat_usable(chat):
    page, _ = chat
    page.set_viewport_size({"width": 390, "height": 800})
    send(page, script({"text": "Small screen.", "tools": [wait_tool(0.2), wait_tool(0.2)]}, {"text": "Fits."}))
    expect(answer_texts(page).last).to_have_text("Fits.")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
