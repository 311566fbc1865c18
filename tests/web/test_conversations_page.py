"""PROTOCOL §8 on the pages, in a real browser against a real daphne: search, editing a message and switching
versions, regenerating and retrying, files (attach, the copilot reads them, download what it wrote), the model
picker, what turns cost and the budget left, the written title, export. Each takes a README screenshot."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from chat.models import ChatSession
from tests.conftest import SHARED_WORKSPACES, ServerProcess
from tests.factories import make_session, make_user, script
from tests.web.builders import saved_turn
from tests.web.test_chat_page import SCREENSHOTS, answer_texts, chat, log_in, send  # noqa: F401  (chat: a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ECHO = script({"echo": "user_messages"})


def echoing(text: str) -> str:
    return f"{text}\n{ECHO}"


def seen(answer) -> list[str]:
    """The user messages the model was given, as an echo step's answer on the page lists them (Markdown drew it, so
    its JSON lost the backslashes before quotes)."""
    return re.findall(r'"([^"]*?)\\n#script', answer.inner_text())


def done(page, count: int) -> None:
    """Wait for the page to show `count` answers and be ready for the next message."""
    expect(answer_texts(page)).to_have_count(count)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


@pytest.fixture(scope="module")
def priced_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    """A server as deployed with a daily budget and titles written after first turns."""
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("priced"),
                           extra_env={"COPILOT_USER_DAILY_BUDGET_USD": "5", "COPILOT_WRITE_TITLES": "1"})
    yield server
    server.stop()


def test_search_finds_chats_by_title_and_message_and_marks_the_words(daphne_server, page):
    user = make_user(portable=True)
    trip = make_session(user, title="Lisbon in May")
    saved_turn(trip, prompt="Which museums are open on Mondays?", answer="The tile museum is.")
    money = make_session(user, title="Budget")
    saved_turn(money, prompt="How much should the Lisbon museum tickets cost?", answer="About 15 EUR each.")
    make_session(user, title="Groceries")
    log_in(page, daphne_server, user.username)

    page.get_by_label("Search chats").fill("lisbon museum")
    page.get_by_role("button", name="Search").click()
    results = page.locator(".search-results li")
    expect(results).to_have_count(2)
    expect(results.first.get_by_role("link")).to_have_text("Budget")
    expect(results.first.locator(".snippet mark")).to_have_text(["Lisbon", "museum"])
    expect(results.nth(1).get_by_role("link").locator("mark")).to_have_text(["Lisbon"])
    expect(page.get_by_role("link", name="Groceries")).to_have_count(0)
    page.screenshot(path=f"{SCREENSHOTS}/chat-search.png")
    results.first.get_by_role("link").click()
    expect(page.locator("#chat-title")).to_have_text("Budget")


def test_editing_a_message_answers_the_new_version_and_the_arrows_switch_back(chat):  # noqa: F811
    page, _ = chat
    send(page, echoing("one"))
    done(page, 1)
    send(page, echoing("two"))
    done(page, 2)
    second = page.locator(".message.user").nth(1)
    second.hover()
    second.get_by_role("button", name="Edit").click()
    editor = second.get_by_label("Edited text")
    editor.fill(echoing("two, edited"))
    second.get_by_role("button", name="Save").click()

    expect(page.locator(".message.user")).to_have_count(2)
    expect(page.locator(".message.user").nth(1).locator(".text")).to_contain_text("two, edited")
    done(page, 2)
    assert seen(answer_texts(page).last) == ["one", "two, edited"]
    edited = page.locator(".message.user").nth(1)
    expect(edited.get_by_label("Version 2 of 2")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/chat-edit-branches.png")

    edited.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message.user").nth(1).get_by_label("Version 1 of 2")).to_be_visible()
    expect(page.locator(".message.user").nth(1).locator(".text")).to_have_text(re.compile(r"^two\n"))
    assert seen(answer_texts(page).last) == ["one", "two"]
    page.reload()  # the server keeps the version shown
    expect(page.locator(".message.user").nth(1).get_by_label("Version 1 of 2")).to_be_visible()
    send(page, echoing("three"))
    done(page, 3)
    assert seen(answer_texts(page).last) == ["one", "two", "three"]


def test_regenerate_gives_a_second_answer_beside_the_first(chat):  # noqa: F811
    page, _ = chat
    send(page, echoing("a question"))
    done(page, 1)
    first = page.locator(".message.assistant").last
    first.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".message.assistant").last.get_by_label("Version 2 of 2")).to_be_visible()
    done(page, 1)
    assert seen(answer_texts(page).last) == ["a question"]  # asked once, not twice
    page.screenshot(path=f"{SCREENSHOTS}/chat-regenerated.png")
    page.locator(".message.assistant").last.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message.assistant").last.get_by_label("Version 1 of 2")).to_be_visible()
    expect(page.locator(".message.user")).to_have_count(1)


def test_retry_after_a_failed_turn_sends_the_same_message_again(chat):  # noqa: F811
    page, session = chat
    send(page, "try me\n" + script({"error": "api_error"}))
    expect(page.get_by_role("alert")).to_contain_text(re.compile("API Error", re.I))
    failed = page.locator(".message.assistant").last
    expect(failed.get_by_role("button", name="Regenerate")).to_be_hidden()
    failed.get_by_role("button", name="Retry").click()
    expect(page.locator(".message.assistant").last.get_by_label("Version 2 of 2")).to_be_visible()
    expect(page.locator(".message.user")).to_have_count(1)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert ChatSession.objects.get(pk=session.pk).turns.count() == 2


def test_an_attached_file_is_read_by_the_copilot_and_listed_in_files(chat, tmp_path):  # noqa: F811
    page, _ = chat
    notes = tmp_path / "meeting-notes.txt"
    notes.write_text("Budget: 1200 EUR\nVenue: the old library\n")
    page.locator("#attach-input").set_input_files(str(notes))
    expect(page.get_by_label("Attached files").get_by_text("meeting-notes.txt")).to_be_visible()
    send(page, "What is the budget?\n" + script(
        {"tools": [{"name": "Read", "input": {"file_path": "meeting-notes.txt"}}]}, {"text": "It is 1200 EUR."}))
    done(page, 1)
    expect(page.locator(".message.user .text")).to_contain_text("Attached: `meeting-notes.txt`")
    expect(page.get_by_label("Attached files")).to_be_hidden()
    card = page.locator(".tool[data-state=done]")
    card.locator("summary").click()
    expect(card.locator(".tool-details")).to_contain_text("Budget: 1200 EUR")
    page.get_by_role("button", name="Files").click()
    expect(page.locator(".file-list").get_by_role("link", name="meeting-notes.txt")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/chat-files.png")


def test_a_file_dropped_on_the_page_is_attached(chat):  # noqa: F811
    page, session = chat
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["dropped contents"], "dropped.txt", {type: "text/plain"}));
        const target = document.querySelector("#message-input");
        target.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true}));
        target.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    expect(page.get_by_label("Attached files").get_by_text("dropped.txt")).to_be_visible()
    # The server's workspaces (tests/conftest.py ServerProcess) hold it, under its own name.
    assert (SHARED_WORKSPACES / str(session.id) / "dropped.txt").read_text() == "dropped contents"


def test_a_file_the_copilot_wrote_downloads_from_its_card(chat):  # noqa: F811
    page, _ = chat
    send(page, script({"tools": [{"name": "Write", "input": {"file_path": "report.md",
                                                             "content": "# Report\n\nAll good.\n"}}]},
                      {"text": "Written to report.md."}))
    done(page, 1)
    link = page.locator(".tool").get_by_role("link", name="Download report.md")
    expect(link).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/chat-download.png")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "report.md"
    assert open(download.value.path(), encoding="utf-8").read() == "# Report\n\nAll good.\n"


def test_the_model_picker_sets_the_model_of_the_next_turn(chat, local_model):  # noqa: F811
    page, session = chat
    picker = page.get_by_label("Model")
    expect(picker).to_have_value("claude-sonnet-5")
    picker.select_option(label="Claude Opus 5")
    expect(page.locator("#composer-status")).to_have_text("Claude Opus 5 answers from your next message.")
    assert ChatSession.objects.get(pk=session.pk).model == "claude-opus-5"
    asked_before = len(local_model.model.requests)
    send(page, "which model answers?\n" + script({"text": "Opus does."}))
    done(page, 1)
    assert "claude-opus-5" in {request["model"] for request in local_model.model.requests[asked_before:]}
    page.screenshot(path=f"{SCREENSHOTS}/chat-model-picker.png")
    page.reload()
    expect(page.get_by_label("Model")).to_have_value("claude-opus-5")


def test_costs_of_each_turn_and_the_chat_and_the_budget_left_are_shown(priced_server, page):
    user = make_user(portable=True)
    log_in(page, priced_server, user.username)
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("#budget-left")).to_have_text("Left today: $5.00 of $5.00")
    send(page, "plan a weekend in porto\n" + script({"tools": [{"name": "mcp__copilot__list_blocks", "input": {}}]},
                                                      {"text": "Here is a plan."}))
    done(page, 1)
    meta = page.locator(".message.assistant .message-meta").last
    expect(meta).to_have_text(re.compile(r"^\$0\.\d{4} · [\d.]+k? in, \d+ out$"))
    cost = float(re.match(r"\$([\d.]+)", meta.inner_text()).group(1))
    assert cost > 0
    expect(page.locator("#chat-cost")).to_have_text(f"This chat: ${cost:.4f}")
    expect(page.locator("#budget-left")).to_have_text(re.compile(r"Left today: \$4\.\d\d of \$5\.00"))
    expect(page.locator("#chat-title")).to_have_text("Plan A Weekend In Porto")  # written after the first turn
    expect(page).to_have_title("Plan A Weekend In Porto · copilot")
    page.screenshot(path=f"{SCREENSHOTS}/chat-cost.png")
    page.reload()
    expect(page.locator("#chat-cost")).to_have_text(f"This chat: ${cost:.4f}")
    expect(page.locator(".message.assistant .message-meta").last).to_have_text(meta.inner_text())


def test_export_menu_downloads_the_chat(chat):  # noqa: F811
    page, _ = chat
    send(page, script({"text": "Exported **answer**."}))
    done(page, 1)
    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Markdown (.md)").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert download.value.suggested_filename.endswith(".md")
    assert "## You" in text and "Exported **answer**." in text
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON").click()
    assert json.loads(open(download.value.path(), encoding="utf-8").read())["messages"][1]["role"] == "assistant"
