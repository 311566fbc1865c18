"""The admin for staff: finding stale turns and dangling or stuck tool calls, resolving them live, reading a session."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from agents import blocks
from agents.blocks import Block
from chat.actions.moderation import STAFF_INTERRUPTED, TRANSCRIPT_INTERRUPTED, open_tool_uses, transcript_of
from chat.engine.registry import begin_turn, running_turns
from chat.models import ChatSession, Message, MessageRole, ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.selectors import session_snapshot
from copilot_site.asgi import application
from tests.conftest import CHROMIUM
from tests.factories import (
    PASSWORD,
    EventWatcher,
    assert_turn_well_formed,
    is_finish,
    make_session,
    make_user,
    receive_until,
    script,
    streamed_text,
    wait_tool,
)

MODERATED = ["chatsession", "message", "turn", "toolcall"]
INDEX = "/admin/"
TURNS = "/admin/chat/turn/"
TOOL_CALLS = "/admin/chat/toolcall/"
SESSIONS = "/admin/chat/chatsession/"


# --- builders ------------------------------------------------------------------------------------------------------

def make_staff(*, may_act: bool = True, portable: bool = False):
    """A staff member with the moderator's permissions: view the conversation models and, if `may_act`, act."""
    staff = make_user(is_staff=True, portable=portable)
    verbs = ["view", "change"] if may_act else ["view"]
    staff.user_permissions.set(Permission.objects.filter(
        content_type__app_label="chat", codename__in=[f"{verb}_{model}" for verb in verbs for model in MODERATED]))
    return staff


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def make_turn(session: ChatSession, *, status: str = TurnStatus.RUNNING, age: float = 5, heartbeat_age: float = 1,
              prompt: str = "hello", answer: str = "") -> Turn:
    """A turn as the engine leaves it: its two messages, and its times set `age` seconds back."""
    position = session.messages.count()
    user_message = Message.objects.create(session=session, position=position + 1, role=MessageRole.USER,
                                          parts=[{"type": "text", "index": 0, "text": prompt}])
    parts = [{"type": "text", "index": 0, "text": answer}] if answer else []
    answer_message = Message.objects.create(session=session, position=position + 2, role=MessageRole.ASSISTANT,
                                            parts=parts)
    turn = Turn.objects.create(session=session, user_message=user_message, assistant_message=answer_message,
                               status=status, process="web-1:4242")
    Turn.objects.filter(pk=turn.pk).update(
        started_at=ago(age), heartbeat_at=ago(heartbeat_age),
        finished_at=None if status == TurnStatus.RUNNING else ago(heartbeat_age))
    turn.refresh_from_db()
    return turn


def make_call(turn: Turn, *, status: str = ToolCallStatus.RUNNING, age: float = 2, seconds: float = 30,
              name: str = "mcp__copilot__run_block", **fields) -> ToolCall:
    call = ToolCall.objects.create(
        turn=turn, message=turn.assistant_message, tool_use_id=f"toolu_{uuid.uuid4().hex[:24]}", name=name,
        input=fields.pop("input", {"block": "wait", "input": {"seconds": seconds}}), status=status,
        part_index=turn.tool_calls.count() + 1, **fields)
    ToolCall.objects.filter(pk=call.pk).update(
        started_at=ago(age), finished_at=None if status == ToolCallStatus.RUNNING else ago(age / 2))
    call.refresh_from_db()
    return call


class Deployment:
    """A deployment with some of everything: healthy turns and calls, and each kind of trouble."""

    def __init__(self, *, stale_seconds: int, stuck_seconds: int) -> None:
        self.ada, self.bob = make_user("ada"), make_user("bob")
        healthy = make_session(self.ada, "Healthy chat")
        done = make_turn(healthy, status=TurnStatus.COMPLETED, age=120, heartbeat_age=100, answer="All done.")
        self.completed_call = make_call(done, status=ToolCallStatus.COMPLETED, output={"seconds": 1})
        self.live_turn = make_turn(make_session(self.ada, "Live chat"))
        self.live_call = make_call(self.live_turn, age=3)
        # Its process died: running in the database, no heartbeat for longer than the stale period.
        self.stale_turn = make_turn(make_session(self.bob, "Crashed chat"), age=stale_seconds * 3,
                                    heartbeat_age=stale_seconds + 30)
        self.call_in_stale_turn = make_call(self.stale_turn, age=stale_seconds * 2, name="mcp__copilot__list_blocks",
                                            input={})
        slow = make_turn(make_session(self.bob, "Slow chat"), age=stuck_seconds + 100)
        self.slow_call = make_call(slow, age=stuck_seconds + 60, seconds=3600)
        # Their turns ended and left them open: nothing will ever end them.
        ended = make_turn(make_session(self.ada, "Failed chat"), status=TurnStatus.FAILED, age=300, heartbeat_age=200)
        self.dangling_calls = [make_call(ended, age=250), make_call(ended, age=240, name="mcp__copilot__run_agent",
                                                                    input={"agent_id": "a1"})]


@pytest.fixture
def deployment(copilot_settings):
    return Deployment(stale_seconds=copilot_settings["STALE_TURN_SECONDS"],
                      stuck_seconds=copilot_settings["STUCK_TOOL_CALL_SECONDS"])


@pytest.fixture
def staff_client(client):
    client.force_login(make_staff())
    return client


def listed(response) -> set:
    return {row.pk for row in response.context["cl"].result_list}


def index_counts(html: str) -> dict[str, int]:
    rows = re.findall(r'<a href="([^"]+)" title="[^"]*">([^<]+)</a></th>\s*<td[^>]*><a href="\1"><strong[^>]*>(\d+)',
                      html)
    return {label: int(count) for _, label, count in rows}


# --- who may use it ------------------------------------------------------------------------------------------------

STAFF_ONLY_PAGES = [("get", INDEX), ("get", SESSIONS), ("get", TURNS), ("get", f"{TURNS}?attention=stale"),
                    ("get", f"{TOOL_CALLS}?attention=dangling"), ("post", f"{TURNS}reap/")]


@pytest.mark.django_db
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "not-staff"])
@pytest.mark.parametrize(("method", "url"), STAFF_ONLY_PAGES)
def test_the_admin_sends_everyone_but_staff_to_the_login(client, deployment, logged_in, method, url):
    if logged_in:
        client.force_login(make_user())
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    assert Turn.objects.get(pk=deployment.stale_turn.pk).status == TurnStatus.RUNNING


@pytest.mark.django_db
def test_the_moderation_views_send_a_non_staff_user_to_the_login(client, deployment):
    client.force_login(make_user())
    session = deployment.live_turn.session
    for method, url in [("get", reverse("admin:chat_chatsession_transcript", args=[session.pk])),
                        ("post", reverse("admin:chat_toolcall_interrupt", args=[deployment.dangling_calls[0].pk])),
                        ("post", reverse("admin:chat_turn_stop", args=[deployment.live_turn.pk]))]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith("/admin/login/"), url
    assert ToolCall.objects.get(pk=deployment.dangling_calls[0].pk).status == ToolCallStatus.RUNNING


@pytest.mark.django_db
def test_staff_who_may_only_view_see_everything_and_can_act_on_nothing(client, deployment):
    client.force_login(make_staff(may_act=False))
    calls = client.get(f"{TOOL_CALLS}?attention=dangling")
    assert calls.status_code == 200 and listed(calls) == {call.pk for call in deployment.dangling_calls}
    assert b"Mark interrupted" not in calls.content
    assert calls.context["action_form"] is None  # no action is offered
    assert b"Reap stale turns now" not in client.get(INDEX).content
    for url in [reverse("admin:chat_toolcall_interrupt", args=[deployment.dangling_calls[0].pk]),
                reverse("admin:chat_turn_stop", args=[deployment.live_turn.pk]), reverse("admin:chat_turn_reap")]:
        assert client.post(url).status_code == 403, url
    refused = client.post(TOOL_CALLS, {"action": "mark_interrupted", "index": 0,
                                       "_selected_action": [deployment.dangling_calls[0].pk]})
    assert refused.status_code == 200  # the list again: there is no action to run
    assert ToolCall.objects.get(pk=deployment.dangling_calls[0].pk).status == ToolCallStatus.RUNNING
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_the_moderation_views_take_only_posts(staff_client, deployment):
    assert staff_client.get(reverse("admin:chat_turn_reap")).status_code == 405
    assert staff_client.get(reverse("admin:chat_toolcall_interrupt", args=[deployment.dangling_calls[0].pk])
                            ).status_code == 405


# --- finding trouble -----------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_index_counts_what_needs_attention_and_links_each_count_to_its_list(staff_client, deployment):
    html = staff_client.get(INDEX).content.decode()
    assert index_counts(html) == {"Stale turns": 1, "Dangling tool calls": 2, "Stuck tool calls": 2}
    assert f'href="{TURNS}?attention=stale"' in html and f'href="{TOOL_CALLS}?attention=dangling"' in html
    assert f'href="{TOOL_CALLS}?attention=stuck"' in html and "Reap stale turns now" in html
    assert "Chat sessions" in html  # the usual app list is still there


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "expected"), [
    (f"{TURNS}?attention=stale", lambda d: {d.stale_turn.pk}),
    (f"{TOOL_CALLS}?attention=dangling", lambda d: {call.pk for call in d.dangling_calls}),
    (f"{TOOL_CALLS}?attention=stuck", lambda d: {d.call_in_stale_turn.pk, d.slow_call.pk}),
    (f"{TURNS}?status=running", lambda d: {d.live_turn.pk, d.stale_turn.pk, d.slow_call.turn_id}),
    (f"{TOOL_CALLS}?status=completed", lambda d: {d.completed_call.pk}),
], ids=["stale-turns", "dangling-calls", "stuck-calls", "running-turns", "completed-calls"])
def test_each_filter_lists_exactly_its_rows(staff_client, deployment, url, expected):
    response = staff_client.get(url)
    assert response.status_code == 200
    assert listed(response) == expected(deployment)


@pytest.mark.django_db
def test_stuck_follows_the_setting(staff_client, deployment, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "STUCK_TOOL_CALL_SECONDS": 1}
    stuck = listed(staff_client.get(f"{TOOL_CALLS}?attention=stuck"))
    assert stuck == {deployment.call_in_stale_turn.pk, deployment.slow_call.pk, deployment.live_call.pk}


@pytest.mark.django_db
def test_search_by_user_session_id_and_tool_name(staff_client, deployment):
    crashed = deployment.stale_turn.session
    assert listed(staff_client.get(TOOL_CALLS, {"q": "run_agent"})) == {deployment.dangling_calls[1].pk}
    assert listed(staff_client.get(TOOL_CALLS, {"q": str(crashed.id)})) == {deployment.call_in_stale_turn.pk}
    assert listed(staff_client.get(TOOL_CALLS, {"q": "bob"})) == {deployment.call_in_stale_turn.pk,
                                                                 deployment.slow_call.pk}
    assert listed(staff_client.get(TURNS, {"q": str(crashed.id)})) == {deployment.stale_turn.pk}
    assert listed(staff_client.get(TURNS, {"q": "bob"})) == {deployment.stale_turn.pk, deployment.slow_call.turn_id}
    assert listed(staff_client.get(SESSIONS, {"q": str(crashed.id)})) == {crashed.pk}
    assert {s.title for s in staff_client.get(SESSIONS, {"q": "bob"}).context["cl"].result_list} == {
        "Crashed chat", "Slow chat"}


@pytest.mark.django_db
def test_the_session_list_shows_owner_message_count_activity_and_running_turn(staff_client, deployment):
    rows = {s.title: s for s in staff_client.get(SESSIONS).context["cl"].result_list}
    live = rows["Live chat"]
    assert (live.owner.username, live.message_count, live.running_turn_id) == ("ada", 2, deployment.live_turn.pk)
    assert rows["Healthy chat"].running_turn_id is None
    assert rows["Healthy chat"].last_activity >= rows["Healthy chat"].updated_at
    html = staff_client.get(SESSIONS).content.decode()
    assert reverse("admin:chat_turn_change", args=[deployment.live_turn.pk]) in html


@pytest.mark.django_db
def test_a_session_page_has_its_messages_and_tool_calls_inline(staff_client, deployment):
    session = deployment.completed_call.turn.session
    html = staff_client.get(reverse("admin:chat_chatsession_change", args=[session.pk])).content.decode()
    assert "All done." in html and "hello" in html  # the messages
    assert reverse("admin:chat_toolcall_change", args=[deployment.completed_call.pk]) in html  # its tool call
    assert "Transcript" in html and 'name="_save"' not in html  # read-only


@pytest.mark.django_db
def test_the_transcript_reads_like_the_chat(staff_client):
    session = make_session(make_user("carol"), "Blocks chat")
    turn = make_turn(session, status=TurnStatus.COMPLETED, prompt="Please wait a little",
                     answer="Waited, but one call broke.")
    done = make_call(turn, status=ToolCallStatus.COMPLETED, output={"seconds": 2})
    broken = make_call(turn, status=ToolCallStatus.FAILED, error_text="the block blew up")
    make_turn(session, status=TurnStatus.FAILED, prompt="again?")
    Turn.objects.filter(session=session, status=TurnStatus.FAILED).update(error="the model failed")

    html = staff_client.get(reverse("admin:chat_chatsession_transcript", args=[session.pk])).content.decode()
    assert html.index("Please wait a little") < html.index("Waited, but one call broke.") < html.index("again?")
    assert "run_block" in html and "&quot;seconds&quot;: 2" in html and "the block blew up" in html
    assert reverse("admin:chat_toolcall_change", args=[done.pk]) in html
    assert reverse("admin:chat_toolcall_change", args=[broken.pk]) in html
    assert "turn completed" in html and "turn failed" in html and "the model failed" in html


# --- no query per row ----------------------------------------------------------------------------------------------

def build_rows(count: int) -> ChatSession:
    """`count` sessions, each with a finished turn and a tool call; returns one with `count` turns of its own."""
    owner = make_user()
    big = make_session(owner, "Long chat")
    for n in range(count):
        turn = make_turn(make_session(owner, f"Chat {n}"), status=TurnStatus.COMPLETED, answer=f"answer {n}")
        make_call(turn, status=ToolCallStatus.COMPLETED, output={"seconds": 1})
        make_call(turn, status=ToolCallStatus.FAILED, error_text="broke")
        big_turn = make_turn(big, status=TurnStatus.FAILED, answer=f"long answer {n}")
        make_call(big_turn)  # dangling
    return big


PAGES = [
    ("index", lambda big: INDEX),
    ("sessions", lambda big: SESSIONS),
    ("turns", lambda big: TURNS),
    ("tool-calls", lambda big: TOOL_CALLS),
    ("dangling", lambda big: f"{TOOL_CALLS}?attention=dangling"),
    ("stuck", lambda big: f"{TOOL_CALLS}?attention=stuck"),
    ("stale", lambda big: f"{TURNS}?attention=stale"),
    ("search", lambda big: f"{TOOL_CALLS}?q=run_block"),
    ("session-page", lambda big: reverse("admin:chat_chatsession_change", args=[big.pk])),
    ("transcript", lambda big: reverse("admin:chat_chatsession_transcript", args=[big.pk])),
    ("turn-page", lambda big: reverse("admin:chat_turn_change", args=[big.turns.first().pk])),
    ("tool-call-page", lambda big: reverse("admin:chat_toolcall_change", args=[big.turns.first().tool_calls.get().pk])),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), PAGES, ids=[name for name, _ in PAGES])
def test_a_page_makes_as_many_queries_for_30_rows_as_for_3(staff_client, django_assert_max_num_queries, name, url):
    big = build_rows(3)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url(big)).status_code == 200
    for n in range(27):
        turn = make_turn(make_session(big.owner, f"More {n}"), status=TurnStatus.COMPLETED)
        make_call(turn, status=ToolCallStatus.COMPLETED, output={"seconds": 1})
        make_call(make_turn(big, status=TurnStatus.FAILED))
    assert ToolCall.objects.count() >= 30 * 2
    with django_assert_max_num_queries(20):
        assert staff_client.get(url(big)).status_code == 200
    with CaptureQueriesContext(connection) as many:
        staff_client.get(url(big))
    assert len(many) <= len(few), [query["sql"] for query in many.captured_queries]


# --- resolving trouble, live for whoever watches ---------------------------------------------------------------------

@database_sync_to_async
def staff_member(**kwargs):
    return make_staff(**kwargs)


async def staff_async_client(async_client, **kwargs):
    await async_client.aforce_login(await staff_member(**kwargs))
    return async_client


@database_sync_to_async
def log_messages(obj) -> list[str]:
    return [entry.change_message for entry in LogEntry.objects.filter(object_id=str(obj.pk))]


@database_sync_to_async
def reload(obj):
    obj.refresh_from_db()
    return obj


@pytest.mark.django_db(transaction=True)
async def test_a_dangling_call_is_resolved_from_the_list_in_one_click_and_the_watcher_sees_it(async_client, deployment):
    client = await staff_async_client(async_client)
    call = deployment.dangling_calls[0]
    session_id = await database_sync_to_async(lambda: call.turn.session_id)()
    dangling_list = f"http://testserver{TOOL_CALLS}?attention=dangling"
    page = (await client.get(dangling_list)).content.decode()
    button = reverse("admin:chat_toolcall_interrupt", args=[call.pk])
    assert f'formaction="{button}"' in page  # the row's "Mark interrupted" button

    async with EventWatcher(session_id) as watcher:
        response = await client.post(button, headers={"referer": dangling_list})
        events = await watcher.until(lambda chunk: chunk["type"] == "tool-output-error", timeout=5)
    assert response.status_code == 302 and response.url == dangling_list  # back to the filtered list
    [event] = events
    assert event["turn_id"] == str(call.turn_id)
    assert event["chunk"] == {"type": "tool-output-error", "toolCallId": call.tool_use_id,
                              "errorText": STAFF_INTERRUPTED, "dynamic": True}
    call = await reload(call)
    assert (call.status, call.error_text, call.output_seq) == (ToolCallStatus.INTERRUPTED, STAFF_INTERRUPTED,
                                                               event["seq"])
    assert await log_messages(call) == ["Staff interrupt: marked interrupted, watchers told."]
    after = await client.get(dangling_list)
    assert "marked interrupted" in after.content.decode() and listed(after) == {deployment.dangling_calls[1].pk}
    snapshot = await database_sync_to_async(lambda: session_snapshot(call.turn.session))()
    [part] = [p for m in snapshot["messages"] for p in m["parts"] if p.get("toolCallId") == call.tool_use_id]
    assert (part["state"], part["errorText"], snapshot["last_seq"]) == ("output-error", STAFF_INTERRUPTED,
                                                                        event["seq"])

    again = await client.post(button)
    assert again.status_code == 302
    assert await log_messages(call) == ["Staff interrupt: marked interrupted, watchers told."]  # nothing twice


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_staff_interrupt_a_stuck_call_of_a_live_turn_its_work_stops_and_the_model_goes_on(async_client):
    client = await staff_async_client(async_client)
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(600), wait_tool(0.1)]},
                                                                {"text": "went on without it"}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda chunk: chunk["type"] == "tool-output-available")  # the short call ended
        [stuck] = await database_sync_to_async(
            lambda: list(ToolCall.objects.filter(turn=started.turn, status=ToolCallStatus.RUNNING)))()
        response = await client.post(TOOL_CALLS, {"action": "mark_interrupted", "index": 0,
                                                   "_selected_action": [stuck.pk]})
        assert response.status_code == 302
        events = await watcher.until_finish(timeout=30)  # a wait of 600 s that kept running would not end
    assert_turn_well_formed(events)  # one output per call: the tool's own end did not add a second
    [output] = [e["chunk"] for e in events if e["chunk"]["type"] == "tool-output-error"]
    assert output["toolCallId"] == stuck.tool_use_id and output["errorText"] == STAFF_INTERRUPTED
    assert "went on without it" in "".join(e["chunk"].get("delta", "") for e in events
                                          if e["chunk"]["type"] == "text-delta")
    assert events[-2]["chunk"]["data"]["status"] == TurnStatus.COMPLETED
    assert (await reload(stuck)).status == ToolCallStatus.INTERRUPTED
    assert await log_messages(stuck) == [
        "Staff interrupt: marked interrupted, watchers told; its work stopped in the live turn."]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
@pytest.mark.parametrize("where", ["turn-list", "session-list"])
async def test_the_stop_action_stops_a_running_turn_for_whoever_watches(async_client, where):
    client = await staff_async_client(async_client)
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(30)]}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda chunk: chunk["type"] == "tool-input-available")
        url, action, pk = ((TURNS, "stop_turns", started.turn.pk) if where == "turn-list"
                           else (SESSIONS, "stop_running_turns", session.pk))
        response = await client.post(url, {"action": action, "index": 0, "_selected_action": [pk]})
        assert response.status_code == 302
        events = await watcher.until_finish(timeout=15)
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == TurnStatus.STOPPED
    audited = started.turn if where == "turn-list" else session
    assert await log_messages(audited) == [f"Stopped turn {started.turn.id} (staff)."]
    again = await client.post(url, {"action": action, "index": 0, "_selected_action": [pk]}, follow=True)
    assert "No turn was running." in again.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_reap_stale_turns_now_reaches_the_owner_on_the_websocket(async_client, deployment):
    client = await staff_async_client(async_client)
    turn = deployment.stale_turn
    token = await database_sync_to_async(lambda: Token.objects.create(user=turn.session.owner).key)()
    socket = WebsocketCommunicator(application, f"/ws/sessions/{turn.session_id}/",
                                   headers=[(b"authorization", f"Token {token}".encode())])
    assert (await socket.connect())[0]
    await socket.send_json_to({"type": "resume", "after_seq": 0})

    response = await client.post(reverse("admin:chat_turn_reap"), headers={"referer": f"http://testserver{INDEX}"})
    frames = await receive_until(socket, is_finish, timeout=10)
    await socket.disconnect()
    assert response.status_code == 302 and response.url == f"http://testserver{INDEX}"
    assert [f["chunk"]["type"] for f in frames] == ["tool-output-error", "error", "data-turn", "finish"]
    assert frames[2]["chunk"]["data"] == {"turn_id": str(turn.id), "status": TurnStatus.INTERRUPTED}
    assert (await reload(turn)).status == TurnStatus.INTERRUPTED
    assert (await reload(deployment.live_turn)).status == TurnStatus.RUNNING  # its heartbeat is fresh
    assert await log_messages(turn) == ["Reaped as stale (staff): ended as interrupted."]
    counts = (await client.get(INDEX)).content.decode()
    assert index_counts(counts)["Stale turns"] == 0 and "Reap stale turns now" not in counts


# --- the SDK conversation stays valid ------------------------------------------------------------------------------

def tool_results_sent(request: dict, tool_use_id: str) -> list[dict]:
    return [block for message in request["messages"] if message["role"] == "user"
            and isinstance(message["content"], list) for block in message["content"]
            if block.get("type") == "tool_result" and block.get("tool_use_id") == tool_use_id]


async def run_turn(session: ChatSession, text: str) -> list[dict]:
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=text, client_message_id=uuid.uuid4())
        return await watcher.until_finish()


async def until_the_store_has_an_open_tool_use(session, *, timeout: float = 10) -> None:
    """Wait until the CLI's mirror of its transcript has reached the session store with the call's tool_use.

    The CLI writes its transcript file first and mirrors it to the SDK in batches after; a CLI killed in
    between leaves the store without the tool_use, which is not the case this test is about.
    """
    async with asyncio.timeout(timeout):
        while not await database_sync_to_async(open_tool_uses)(session):
            await asyncio.sleep(0.05)  # written by the SDK as the CLI's batches arrive: nothing to await here


@pytest.fixture
def hanging_block(monkeypatch) -> asyncio.Event:
    """A block that hangs once it runs (by then the CLI has written its tool_use); the event says it runs."""
    running = asyncio.Event()

    async def hang(block_input):
        running.set()
        await asyncio.sleep(60)

    monkeypatch.setitem(blocks._REGISTRY, "hang", Block(name="hang", description="Hangs (test only).",
                                                        input_schema={"type": "object"},
                                                        output_schema={"type": "object"}, run=hang))
    return running


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_after_the_cli_died_mid_call_staff_repair_the_conversation_and_the_next_turn_resumes_it(
        async_client, local_model, hanging_block):
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    await run_turn(session, "my secret word is pelican")
    session = await database_sync_to_async(ChatSession.objects.get)(pk=session.pk)  # with its SDK session id
    hang = {"name": "mcp__copilot__run_block", "input": {"block": "hang", "input": {}}}
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"text": "Waiting.", "tools": [hang]}),
                         client_message_id=uuid.uuid4())
        await hanging_block.wait()
        await until_the_store_has_an_open_tool_use(session)
        os.kill(running_turns._runners[str(session.id)].cli_pid, signal.SIGKILL)  # the CLI dies mid-call
        events = await watcher.until_finish()
    assert events[-2]["chunk"]["data"]["status"] == TurnStatus.FAILED
    session = await database_sync_to_async(ChatSession.objects.get)(pk=session.pk)
    call = await database_sync_to_async(lambda: ToolCall.objects.get(turn__session=session))()
    # The chat shows the call interrupted, but the CLI's saved conversation has its tool_use and no result.
    assert call.status == ToolCallStatus.INTERRUPTED
    assert [use.tool_use_id for use in await database_sync_to_async(open_tool_uses)(session)] == [call.tool_use_id]

    client = await staff_async_client(async_client)
    transcript_page = reverse("admin:chat_chatsession_transcript", args=[session.pk])
    assert f"<code>{call.tool_use_id}</code>" in (await client.get(transcript_page)).content.decode()
    response = await client.post(TOOL_CALLS, {"action": "mark_interrupted", "index": 0, "_selected_action": [call.pk]},
                                 follow=True)
    assert "repaired the SDK transcript for 1" in response.content.decode()
    assert await log_messages(call) == ["Staff interrupt: SDK transcript given its tool_result."]
    assert f"<code>{call.tool_use_id}</code>" not in (await client.get(transcript_page)).content.decode()

    rows = await database_sync_to_async(lambda: list(transcript_of(session)))()
    [use_row] = [row for row in rows if row.entry["type"] == "assistant" and call.tool_use_id in str(row.entry)]
    [result_row] = [row for row in rows if row.entry["type"] == "user" and call.tool_use_id in str(row.entry)]
    assert result_row.id == rows[-1].id  # appended at the end, after what the CLI wrote
    assert result_row.entry["message"]["content"] == [{"type": "tool_result", "content": TRANSCRIPT_INTERRUPTED,
                                                       "is_error": True, "tool_use_id": call.tool_use_id}]
    # Chained as the CLI chains a tool_result: to the assistant entry holding its tool_use.
    assert result_row.entry["parentUuid"] == result_row.entry["sourceToolAssistantUUID"] == use_row.uuid
    assert result_row.uuid == result_row.entry["uuid"] and result_row.project_key == use_row.project_key
    assert result_row.entry["sessionId"] == session.sdk_session_id == use_row.entry["sessionId"]
    assert await database_sync_to_async(open_tool_uses)(session) == []

    requests_before = len(local_model.model.requests)
    events = await run_turn(session, script({"text": "Your word was pelican."}))
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == TurnStatus.COMPLETED
    assert streamed_text(events) == "Your word was pelican."
    request = local_model.model.requests[requests_before]
    assert tool_results_sent(request, call.tool_use_id) == [
        {"type": "tool_result", "content": TRANSCRIPT_INTERRUPTED, "is_error": True, "tool_use_id": call.tool_use_id}]
    assert "my secret word is pelican" in str(request["messages"])


# --- three clicks, in a browser ------------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
async def test_staff_resolve_a_dangling_call_from_the_admin_index_in_two_clicks(daphne_server, copilot_settings):
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    # The async API: the sync one would leave its event loop on this worker's thread for the tests after this one.
    from playwright.async_api import async_playwright, expect

    staff = await database_sync_to_async(make_staff)(portable=True)
    deployment = await database_sync_to_async(Deployment)(stale_seconds=copilot_settings["STALE_TURN_SECONDS"],
                                                          stuck_seconds=copilot_settings["STUCK_TOOL_CALL_SECONDS"])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = await browser.new_page(viewport={"width": 1280, "height": 760})
        await page.goto(f"{daphne_server.http_url}/admin/login/")
        await page.get_by_label("Username").fill(staff.username)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()

        await page.get_by_role("link", name="Dangling tool calls").click()  # 1
        rows = page.locator("#result_list tbody tr")
        await expect(rows).to_have_count(2)
        await rows.filter(has_text="run_agent").get_by_role("button", name="Mark interrupted").click()  # 2
        await expect(page.locator(".messagelist")).to_contain_text("marked interrupted")
        await expect(rows).to_have_count(1)
        await browser.close()
    call = await reload(deployment.dangling_calls[1])
    assert (call.status, call.error_text) == (ToolCallStatus.INTERRUPTED, STAFF_INTERRUPTED)
