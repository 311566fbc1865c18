"""Titles of new chats (PROTOCOL §8): written by the model after the first turn, else from the first message's words;
never `#script` text; a person's title always wins; every socket of the chat hears `data-title`."""

from __future__ import annotations

import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.actions.sessions import do_create_session, do_rename_session, do_write_title
from chat.engine.registry import begin_turn
from chat.models import ChatSession, SessionNotice
from chat.selectors import session_snapshot
from chat.titles import cleaned_model_title, fitted, title_writer
from copilot_site.asgi import application
from tests.factories import EventWatcher, make_user, receive_until, script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]

TRIP = "plan a weekend trip to lisbon in may, with museums\n" + script({"text": "Here is a plan."})


@pytest.fixture(autouse=True)
def titles_on(settings):
    settings.COPILOT = {**settings.COPILOT, "WRITE_TITLES": True}


@database_sync_to_async
def new_chat(title=None):
    return do_create_session(owner=make_user(), title=title)


reload = database_sync_to_async(lambda session: ChatSession.objects.get(pk=session.pk))


async def first_turn_and_title(session, text: str = TRIP) -> tuple[dict, float]:
    """Run the chat's first turn; returns the `data-title` event and the seconds from `finish` to it."""
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=text, client_message_id=uuid.uuid4())
        await watcher.until_finish()
        finished = time.monotonic()
        events = await watcher.until(lambda chunk: chunk["type"] == "data-title", timeout=10)
    await title_writer.settle()
    return next(event for event in events if event["chunk"]["type"] == "data-title"), time.monotonic() - finished


async def test_the_model_writes_the_title_after_the_first_turn_and_every_socket_hears_it():
    session = await new_chat()
    event, seconds = await first_turn_and_title(session)
    assert event["turn_id"] is None and event["chunk"] == {"type": "data-title",
                                                            "data": {"title": "Plan A Weekend Trip To Lisbon"}}
    assert seconds < 10
    assert (await reload(session)).title == "Plan A Weekend Trip To Lisbon"
    snapshot = await database_sync_to_async(session_snapshot)(await reload(session))
    assert snapshot["title"] == "Plan A Weekend Trip To Lisbon"
    assert snapshot["reports"] == [] and snapshot["last_seq"] == event["seq"]  # the title is the session's, not a report


async def test_without_a_model_the_first_words_make_the_title(settings):
    settings.COPILOT = {**settings.COPILOT, "TITLE_MODEL": "unknown-title-model"}  # the model API answers 404
    session = await new_chat()
    event, _ = await first_turn_and_title(session)
    assert event["chunk"]["data"]["title"] == "Plan a weekend trip to lisbon in may, with museums"
    assert "#script" not in (await reload(session)).title


async def test_a_message_that_is_only_a_script_is_titled_from_its_answer(settings):
    session = await new_chat()
    event, _ = await first_turn_and_title(session, script({"text": "Three tools ran in parallel and all passed."}))
    title = event["chunk"]["data"]["title"]
    assert title == "Three tools ran in parallel and all passed." and "#script" not in title


async def test_a_renamed_or_named_chat_keeps_its_title_and_hears_no_title():
    named = await new_chat(title="My own name")
    renamed = await new_chat()
    await database_sync_to_async(do_rename_session)(session=renamed, title="Renamed first")
    for session in (named, renamed):
        async with EventWatcher(session.id) as watcher:
            await begin_turn(session=session, text=TRIP, client_message_id=uuid.uuid4())
            await watcher.until_finish()
        await title_writer.settle()
        assert not await database_sync_to_async(SessionNotice.objects.filter(session=session).exists)()
    assert (await reload(named)).title == "My own name" and (await reload(renamed)).title == "Renamed first"


async def test_a_rename_wins_over_a_title_being_written():
    session = await new_chat()
    await database_sync_to_async(do_rename_session)(session=session, title="Mine")
    assert not await database_sync_to_async(do_write_title)(session_id=session.id, title="The model's")
    assert (await reload(session)).title == "Mine"


async def test_only_the_first_turn_writes_a_title():
    session = await new_chat()
    await first_turn_and_title(session)
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text="another topic entirely\n" + script({"text": "ok"}),
                         client_message_id=uuid.uuid4())
        await watcher.until_finish()
    await title_writer.settle()
    assert (await reload(session)).title == "Plan A Weekend Trip To Lisbon"
    assert await database_sync_to_async(SessionNotice.objects.filter(session=session, kind="title").count)() == 1


async def test_two_open_sockets_both_get_the_title():
    session = await new_chat()
    token = await database_sync_to_async(lambda: Token.objects.create(user_id=session.owner_id).key)()
    sockets = [WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                     headers=[(b"authorization", f"Token {token}".encode())]) for _ in range(2)]
    for socket in sockets:
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "resume", "after_seq": 0})
    await sockets[0].send_json_to({"type": "send", "text": TRIP, "client_message_id": str(uuid.uuid4())})
    for socket in sockets:
        frames = await receive_until(socket, lambda f: f.get("type") == "event" and f["chunk"]["type"] == "data-title",
                                     timeout=30)
        assert frames[-1]["turn_id"] is None and frames[-1]["chunk"]["data"]["title"] == "Plan A Weekend Trip To Lisbon"
        await socket.disconnect()
    await title_writer.settle()


def test_titles_are_one_short_line_without_script_text():
    assert fitted("word " * 40).endswith("…") and len(fitted("word " * 40)) <= 60
    assert cleaned_model_title('Title: "Lisbon in May."\nmore text') == "Lisbon in May"
    assert cleaned_model_title("**Trip planning**") == "Trip planning"
    assert cleaned_model_title("#script [1]\n") == ""
    assert "#script" not in cleaned_model_title("Run the #script now")
