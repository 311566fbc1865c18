"""Edit, regenerate, retry and branch switching (PROTOCOL §8), with the real SDK and CLI: the local model's `echo`
step says which conversation the model was given, so each test checks what the model saw, not only what is saved."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.db import database_sync_to_async

from chat.actions.sessions import do_switch_branch
from chat.engine.registry import begin_turn, running_turns
from chat.errors import TurnRunning, UnknownMessage
from chat.models import ChatSession, Message, TranscriptEntry, Turn
from chat.selectors import session_snapshot
from tests.factories import EventWatcher, make_session, make_user, script, streamed_text, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


def echoing(text: str) -> str:
    """A message the local model answers with the JSON list of the user messages it was given."""
    return f"{text}\n{script({'echo': 'user_messages'})}"


def seen(answer: str) -> list[str]:
    """What the model was given, without the script lines."""
    return [text.split("\n#script")[0] for text in json.loads(answer)]


@database_sync_to_async
def new_session():
    return make_session(make_user())


snapshot_of = database_sync_to_async(lambda session: session_snapshot(ChatSession.objects.get(pk=session.pk)))


async def turn(session, text: str = "", **how) -> tuple[str, Turn]:
    """Run one turn (a send, `edit_of=…` or `regenerate=…`) to its end; returns the answer and the turn."""
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=text, client_message_id=uuid.uuid4(), **how)
        await watcher.until(lambda chunk: chunk["type"] == "finish" and watcher_turn(watcher, started), timeout=60)
    task = running_turns.task_for(str(session.id))
    if task is not None:
        await task
    events = [event for event in watcher.events if event["turn_id"] == str(started.turn.id)]
    return streamed_text(events), await database_sync_to_async(Turn.objects.get)(pk=started.turn.id)


def watcher_turn(watcher, started) -> bool:
    return any(event["turn_id"] == str(started.turn.id) and event["chunk"]["type"] == "finish"
               for event in watcher.events)


def texts(snapshot) -> list[str]:
    return [part["text"].split("\n#script")[0] for message in snapshot["messages"] for part in message["parts"]
            if part["type"] == "text" and message["role"] == "user"]


async def test_an_edit_is_answered_after_what_the_edited_message_followed_and_both_versions_are_kept():
    session = await new_session()
    await turn(session, echoing("one"))
    _, second = await turn(session, echoing("two"))
    answer, edited = await turn(session, echoing("two, better"), edit_of=second.user_message_id)
    assert seen(answer) == ["one", "two, better"]  # not "two"

    snapshot = await snapshot_of(session)
    assert texts(snapshot) == ["one", "two, better"] and len(snapshot["messages"]) == 4
    new_version = snapshot["messages"][2]
    assert new_version["id"] == str(edited.user_message_id)
    assert new_version["branch"] == {"index": 1, "count": 2,
                                     "siblings": [str(second.user_message_id), str(edited.user_message_id)]}
    assert snapshot["messages"][0]["branch"] == {"index": 0, "count": 1, "siblings": [snapshot["messages"][0]["id"]]}
    assert snapshot["active_leaf"] == str(edited.assistant_message_id)

    # The next message continues the edited branch.
    answer, _ = await turn(session, echoing("three"))
    assert seen(answer) == ["one", "two, better", "three"]


async def test_switching_back_to_an_earlier_version_continues_that_branch():
    session = await new_session()
    await turn(session, echoing("one"))
    _, second = await turn(session, echoing("two"))
    await turn(session, echoing("three"))
    await turn(session, echoing("two, again"), edit_of=second.user_message_id)

    await database_sync_to_async(do_switch_branch)(session=session, message_id=second.user_message_id)
    snapshot = await snapshot_of(session)
    assert texts(snapshot) == ["one", "two", "three"]  # down to that version's newest message
    assert snapshot["messages"][2]["branch"]["index"] == 0 and snapshot["messages"][2]["branch"]["count"] == 2

    answer, _ = await turn(session, echoing("four"))
    assert seen(answer) == ["one", "two", "three", "four"]


async def test_regenerate_answers_the_same_message_again_and_keeps_the_earlier_answer():
    session = await new_session()
    await turn(session, echoing("one"))
    first_answer, second = await turn(session, echoing("two"))
    answer, regenerated = await turn(session, regenerate=second.assistant_message_id)
    assert seen(answer) == ["one", "two"]  # the same question, once: the earlier answer is not in the model's view
    assert regenerated.user_message_id == second.user_message_id

    snapshot = await snapshot_of(session)
    assert texts(snapshot) == ["one", "two"]
    assert snapshot["messages"][-1]["id"] == str(regenerated.assistant_message_id)
    assert snapshot["messages"][-1]["branch"]["siblings"] == [str(second.assistant_message_id),
                                                              str(regenerated.assistant_message_id)]
    assert await database_sync_to_async(Message.objects.filter(role="user").count)() == 2  # no new user message


async def test_editing_the_first_message_starts_the_conversation_afresh():
    session = await new_session()
    _, first = await turn(session, echoing("hello"))
    await turn(session, echoing("more"))
    answer, _ = await turn(session, echoing("hello there"), edit_of=first.user_message_id)
    assert seen(answer) == ["hello there"]
    assert texts(await snapshot_of(session)) == ["hello there"]


async def test_retry_after_a_failed_turn_resends_the_same_message(settings):
    session = await new_session()
    await turn(session, echoing("one"))
    settings.COPILOT = {**settings.COPILOT, "MAX_TURN_SECONDS": 1.0}
    slow = "slow\n" + script({"tools": [wait_tool(3)]}, {"echo": "user_messages"})
    _, failed = await turn(session, slow)
    assert failed.status == "failed" and "time limit" in failed.error
    settings.COPILOT = {**settings.COPILOT, "MAX_TURN_SECONDS": 600.0}

    answer, retried = await turn(session, regenerate=failed.assistant_message_id)
    assert retried.status == "completed" and retried.user_message_id == failed.user_message_id
    assert seen(answer) == ["one", "slow"]  # the same message, once


async def test_a_branch_forks_the_sdk_session_and_leaves_the_original_untouched():
    session = await new_session()
    _, first = await turn(session, echoing("one"))
    _, second = await turn(session, echoing("two"))
    entries_before = await database_sync_to_async(
        TranscriptEntry.objects.filter(session_id=second.sdk_session_id).count)()
    _, edited = await turn(session, echoing("two, edited"), edit_of=second.user_message_id)

    assert first.sdk_session_id == second.sdk_session_id  # a straight line stays one SDK session
    assert edited.sdk_session_id and edited.sdk_session_id != second.sdk_session_id
    assert edited.sdk_leaf_uuid
    assert await database_sync_to_async(
        TranscriptEntry.objects.filter(session_id=second.sdk_session_id).count)() == entries_before


async def test_bad_edits_and_regenerates_are_refused_and_change_nothing():
    session, other = await new_session(), await new_session()
    _, first = await turn(session, echoing("one"))
    _, elsewhere = await turn(other, echoing("not yours"))
    with pytest.raises(UnknownMessage):
        await begin_turn(session=session, text="x", client_message_id=uuid.uuid4(), edit_of=elsewhere.user_message_id)
    with pytest.raises(UnknownMessage):
        await begin_turn(session=session, text="x", client_message_id=uuid.uuid4(), edit_of=first.assistant_message_id)
    with pytest.raises(UnknownMessage):
        await begin_turn(session=session, text="", client_message_id=uuid.uuid4(), regenerate=first.user_message_id)
    with pytest.raises(UnknownMessage):
        await database_sync_to_async(do_switch_branch)(session=session, message_id=elsewhere.user_message_id)
    assert await database_sync_to_async(Turn.objects.filter(session=session).count)() == 1

    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"tools": [wait_tool(1)]}), client_message_id=uuid.uuid4())
        with pytest.raises(TurnRunning):
            await database_sync_to_async(do_switch_branch)(session=session, message_id=first.user_message_id)
        with pytest.raises(TurnRunning):
            await begin_turn(session=session, text="", client_message_id=uuid.uuid4(),
                             regenerate=first.assistant_message_id)
        await watcher.until_finish()


async def test_the_same_regenerate_request_twice_starts_one_turn():
    session = await new_session()
    _, first = await turn(session, echoing("one"))
    request_id = uuid.uuid4()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text="", client_message_id=request_id,
                                   regenerate=first.assistant_message_id)
        again = await begin_turn(session=session, text="", client_message_id=request_id,
                                 regenerate=first.assistant_message_id)
        await watcher.until_finish()
    assert again.turn.id == started.turn.id and not again.created
