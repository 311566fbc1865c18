"""PROTOCOL §7 on the chat page, in a real browser against a real daphne: the liveness line, approval cards decided
on any tab, "Ask before tools", cancelling one running call, and messages queued while a turn runs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.models import ChatSession, Message
from tests.factories import script, text_tool, wait_tool
from tests.web.test_chat_page import SCREENSHOTS, answer_texts, chat, send  # noqa: F401  (chat: a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def ask_before_tools(session):
    ChatSession.objects.filter(pk=session.pk).update(approval_mode="ask")


def liveness(page):
    return page.locator("#liveness")


def queued_messages(page):
    return page.get_by_role("list", name="Queued to send next").get_by_role("listitem")


def open_second_tab(page):
    second = page.context.new_page()
    second.goto(page.url)
    expect(second.get_by_role("button", name="Send")).to_be_enabled()
    return second


def test_a_call_allowed_on_a_second_tab_runs_and_both_tabs_show_who_allowed_it(chat):  # noqa: F811
    page, session = chat
    ask_before_tools(session)
    page.reload()
    second = open_second_tab(page)
    send(page, script({"text": "I will greet Ada.", "tools": [text_tool("Hello {name}", {"name": "Ada"})]},
                      {"text": "Greeted."}))
    for tab in (page, second):
        card = tab.locator(".tool[data-state=waiting]")
        expect(card).to_have_count(1)
        expect(card.get_by_role("group", name="Approval of run_block")).to_contain_text("Allow run_block to run")
        expect(card.locator(".approval-input")).to_contain_text('"template": "Hello {name}"')
        expect(card.locator(".approval-time")).to_have_text(re.compile(r"\d+ min left"))
        expect(card.get_by_role("button", name="Allow")).to_be_enabled()
    expect(liveness(page).get_by_role("status")).to_have_text("Waiting for your approval of run_block")
    page.screenshot(path=f"{SCREENSHOTS}/chat-approval.png")
    second.locator(".tool").get_by_role("button", name="Allow").click()
    for tab in (page, second):
        expect(tab.locator(".tool .approval-outcome")).to_have_text("Allowed by you")
        expect(tab.locator(".tool[data-state=done]")).to_have_count(1)
        expect(tab.get_by_role("button", name="Allow")).to_have_count(0)
        expect(tab.get_by_role("button", name="Deny")).to_have_count(0)
        expect(answer_texts(tab).last).to_have_text("Greeted.")
    second.close()


def test_a_call_denied_from_the_keyboard_ends_denied_and_the_answer_goes_on(chat):  # noqa: F811
    page, session = chat
    ask_before_tools(session)
    page.reload()
    expect(page.get_by_label("Ask before tools")).to_be_checked()  # the snapshot's approval_mode
    send(page, script({"tools": [text_tool("a secret")]}, {"text": "Went on without it."}))
    deny = page.locator(".tool").get_by_role("button", name="Deny")
    deny.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".tool[data-state=denied]")).to_have_count(1)
    expect(page.locator(".tool .approval-outcome")).to_have_text("Denied by you")
    expect(answer_texts(page).last).to_have_text("Went on without it.")
    page.locator(".tool summary").click()
    expect(page.locator(".tool .tool-details")).to_contain_text("denied by the user")


def test_an_approval_waiting_before_a_reload_is_still_there_after_it(chat):  # noqa: F811
    page, session = chat
    ask_before_tools(session)
    page.reload()
    send(page, script({"tools": [text_tool("after the reload")]}, {"text": "Allowed after a reload."}))
    expect(page.locator(".tool[data-state=waiting]")).to_have_count(1)
    page.reload()  # the snapshot's active_turn.pending_approvals brings the card back
    page.locator(".tool").get_by_role("button", name="Allow").click()
    expect(page.locator(".tool .approval-outcome")).to_have_text("Allowed by you")
    expect(answer_texts(page).last).to_have_text("Allowed after a reload.")


def test_ask_before_tools_is_kept_for_the_chat_across_reloads(chat):  # noqa: F811
    page, session = chat
    toggle = page.get_by_label("Ask before tools")
    expect(toggle).not_to_be_checked()
    toggle.check()
    expect(page.locator("#composer-status")).to_contain_text("Tools wait for your approval")
    page.reload()
    expect(toggle).to_be_checked()
    session.refresh_from_db()
    assert session.approval_mode == "ask"
    toggle.uncheck()
    expect(page.locator("#composer-status")).to_contain_text("Tools run without asking")
    page.reload()
    expect(toggle).not_to_be_checked()


def test_cancelling_one_of_two_running_calls_leaves_the_other_to_finish(chat):  # noqa: F811
    page, _ = chat
    send(page, script({"tools": [wait_tool(30), wait_tool(4)]}, {"text": "The other one finished."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(2)
    slow = page.locator(".tool").filter(has_text='"seconds":30')
    slow.get_by_role("button", name="Cancel").click()
    expect(slow).to_have_attribute("data-state", "cancelled")
    expect(slow.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)  # gone once the call ended
    expect(page.locator(".tool[data-state=done]")).to_have_count(1)
    expect(page.locator(".tool[data-state=done]").get_by_role("button")).to_have_count(0)
    expect(answer_texts(page).last).to_have_text("The other one finished.")
    slow.locator("summary").click()
    expect(slow.locator(".tool-details")).to_contain_text("cancelled by the user")
    page.screenshot(path=f"{SCREENSHOTS}/chat-cancelled-call.png")


def test_a_message_sent_during_a_turn_is_queued_then_runs_after_it(chat):  # noqa: F811
    page, _ = chat
    send(page, script({"text": "Looking into it.", "tools": [wait_tool(3)]}, {"text": "First answer."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(1)
    expect(page.get_by_role("button", name="Queue")).to_be_enabled()
    send(page, "And then sum up what you found.\n" + script({"text": "The queued answer."}))
    expect(queued_messages(page)).to_have_count(1)
    expect(queued_messages(page)).to_contain_text("And then sum up what you found.")
    expect(liveness(page).get_by_role("status")).to_have_text("Running run_block")
    page.screenshot(path=f"{SCREENSHOTS}/chat-queued-and-liveness.png")
    expect(answer_texts(page).last).to_have_text("The queued answer.")
    expect(queued_messages(page)).to_have_count(0)
    expect(page.locator(".message.user")).to_have_count(2)
    expect(page.locator(".message.user").last).to_contain_text("And then sum up what you found.")
    expect(page.locator(".message.assistant").first).to_contain_text("First answer.")


def test_a_queued_message_removed_before_its_turn_never_runs(chat):  # noqa: F811
    page, session = chat
    send(page, script({"tools": [wait_tool(3)]}, {"text": "Only this one."}))
    expect(page.locator(".tool[data-state=running]")).to_have_count(1)
    send(page, "Never mind this.\n" + script({"text": "Should not run."}))
    expect(queued_messages(page)).to_have_count(1)
    queued_messages(page).get_by_role("button", name=re.compile("Remove")).click()
    expect(queued_messages(page)).to_have_count(0)
    expect(answer_texts(page).last).to_have_text("Only this one.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator(".message.user")).to_have_count(1)
    assert not [message for message in Message.objects.filter(session=session) if "Never mind" in message.text]


def test_the_liveness_line_says_which_tool_runs_and_goes_away_at_the_end(chat):  # noqa: F811
    page, _ = chat
    line = liveness(page)
    expect(line.get_by_role("status")).to_have_attribute("aria-live", "polite")
    send(page, script({"tools": [wait_tool(2.5)]}, {"text": "Rested."}))
    expect(line).to_have_attribute("data-state", "tools")
    expect(line.get_by_role("status")).to_have_text("Running run_block")
    expect(line).to_contain_text(re.compile(r"Running run_block · \d+ s"))
    expect(answer_texts(page).last).to_have_text("Rested.")
    expect(line).to_have_attribute("data-state", "idle")
    expect(line).to_have_text("")
