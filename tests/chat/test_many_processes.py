"""Many devices and many server processes: the chaos test, and turns that cross processes (PROTOCOL §2, §3)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid

import httpx
import pytest
import websockets
from rest_framework.authtoken.models import Token

from tests.conftest import ServerProcess
from tests.factories import (
    assert_turn_well_formed,
    is_finish,
    make_session,
    make_user,
    next_frame,
    receive_until,
    script,
    text_tool,
    wait_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

REDIS_URL = os.environ.get("REDIS_URL")
CHAOS_SEED = int(os.environ.get("CHAOS_SEED", "20261126"))
# The chaotic client reconnects far more often than a person: past the limit on resumes a person gets.
CHAOS_ENV = {"COPILOT_RATE_LIMITS": "resumes=10000/10"}


@pytest.fixture(scope="module")
def in_memory_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("memory"),
                           extra_env={"REDIS_URL": "", **CHAOS_ENV})
    yield [server]
    server.stop()


@pytest.fixture(scope="module")
def redis_servers(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    if not REDIS_URL:
        pytest.skip("needs REDIS_URL: two processes share their event log and channel layer through Redis")
    servers = [ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp(name), extra_env=CHAOS_ENV)
               for name in ("process-a", "process-b")]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def owner():
    user = make_user()
    return user, Token.objects.create(user=user).key


def connect(server, session_id, token):
    return websockets.connect(f"{server.ws_url}/ws/sessions/{session_id}/",
                              additional_headers={"Authorization": f"Token {token}"})


class ChaoticClient:
    """Sends turns to one session, cutting its socket at random points and resuming on a random server."""

    def __init__(self, *, servers, session_id, token, rng: random.Random) -> None:
        self.servers, self.session_id, self.token, self.rng = servers, session_id, token, rng
        self.events: list[dict] = []
        self.cuts = 0

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    async def run_turn(self, text: str) -> list[dict]:
        client_message_id = str(uuid.uuid4())
        acked = False
        first_of_turn = len(self.events)
        while True:
            async with connect(self.rng.choice(self.servers), self.session_id, self.token) as socket:
                await socket.send(json.dumps({"type": "resume", "after_seq": self.last_seq}))
                if not acked:
                    await socket.send(json.dumps({"type": "send", "text": text,
                                                  "client_message_id": client_message_id}))
                cut_after = self.rng.randint(1, 25)
                received = 0
                while True:
                    frame = await next_frame(socket, timeout=60)
                    if frame["type"] == "ack":
                        assert frame["client_message_id"] == client_message_id
                        acked = True
                        continue
                    assert frame["type"] == "event", frame
                    assert frame["seq"] == self.last_seq + 1, (frame["seq"], self.last_seq)  # no gap, no repeat
                    self.events.append(frame)
                    if frame["chunk"]["type"] == "finish" and acked:
                        return self.events[first_of_turn:]
                    received += 1
                    if received >= cut_after and self.rng.random() < 0.5:
                        break
                socket.transport.abort()  # the network drops, no goodbye
            self.cuts += 1
            await asyncio.sleep(self.rng.uniform(0, 0.3))  # the time the client stays offline


def chaos_script(rng: random.Random) -> str:
    tools = [wait_tool(round(rng.uniform(0.05, 0.4), 2)) for _ in range(rng.randint(1, 3))]
    return script({"text": "Working on it.", "tools": tools}, {"text": f"Finished {len(tools)} calls."})


def snapshot_state(snapshot) -> list:
    state = []
    for message in snapshot["messages"]:
        if message["role"] != "assistant":
            continue
        text = "".join(p["text"] for p in message["parts"] if p["type"] == "text")
        tools = {p["toolCallId"]: (p["state"], p.get("output")) for p in message["parts"] if p["type"] == "dynamic-tool"}
        state.append((message["id"], text, tools))
    return state


def streamed_state(events) -> list:
    state, current = [], None
    for event in events:
        chunk = event["chunk"]
        if chunk["type"] == "start":
            current = [chunk["messageId"], "", {}]
            state.append(current)
        elif chunk["type"] == "text-delta":
            current[1] += chunk["delta"]
        elif chunk["type"] == "tool-output-available":
            current[2][chunk["toolCallId"]] = ("output-available", chunk["output"])
        elif chunk["type"] == "tool-output-error":
            current[2][chunk["toolCallId"]] = ("output-error", None)
    return [tuple(entry) for entry in state]


def user_with_session():
    user = make_user()
    return str(make_session(user).id), Token.objects.create(user=user).key


async def run_chaos(servers, *, sessions: int, turns_each: int) -> None:
    """Each session has a user of its own, as people do (and so per-user rate limits stay out of the way)."""
    rng = random.Random(CHAOS_SEED)
    owners = [await asyncio.to_thread(user_with_session) for _ in range(sessions)]
    clients = [ChaoticClient(servers=servers, session_id=sid, token=token, rng=random.Random(rng.random()))
               for sid, token in owners]

    async def drive(client):
        turns = []
        for _ in range(turns_each):
            turns.append(await client.run_turn(chaos_script(client.rng)))
        return turns

    results = await asyncio.gather(*(drive(client) for client in clients))
    assert sum(client.cuts for client in clients) >= sessions * turns_each // 3  # the chaos really happened
    async with httpx.AsyncClient(base_url=servers[0].http_url) as http:
        for client, turns in zip(clients, results):
            assert [e["seq"] for e in client.events] == list(range(1, len(client.events) + 1))
            for turn_events in turns:
                assert_turn_well_formed(turn_events)
                assert turn_events[-2]["chunk"]["data"]["status"] == "completed"
            snapshot = (await http.get(f"/api/sessions/{client.session_id}/",
                                       headers={"Authorization": f"Token {client.token}"})).json()
            assert snapshot["last_seq"] == client.last_seq
            assert snapshot_state(snapshot) == streamed_state(client.events)


async def test_chaos_in_memory_one_process(in_memory_server):
    await run_chaos(in_memory_server, sessions=3, turns_each=10)


async def test_chaos_redis_two_processes(redis_servers):
    await run_chaos(redis_servers, sessions=3, turns_each=10)


async def test_a_turn_in_one_process_streams_to_and_stops_from_another(redis_servers, owner):
    user, token = owner
    session = await asyncio.to_thread(make_session, user)
    process_a, process_b = redis_servers
    async with connect(process_a, session.id, token) as on_a, connect(process_b, session.id, token) as on_b:
        for socket in (on_a, on_b):
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        await on_a.send(json.dumps({"type": "send", "text": script({"tools": [wait_tool(30)]}),
                                    "client_message_id": str(uuid.uuid4())}))
        seen_on_b = await receive_until(on_b, lambda f: f.get("type") == "event"
                                        and f["chunk"]["type"] == "tool-input-available")
        await on_b.send(json.dumps({"type": "stop"}))
        rest_on_b = await receive_until(on_b, is_finish, timeout=15)
        on_a_all = [f for f in await receive_until(on_a, is_finish, timeout=15) if f["type"] == "event"]
    on_b_all = seen_on_b + rest_on_b
    assert on_b_all == on_a_all  # both processes' sockets saw the same events
    assert_turn_well_formed(on_b_all)
    assert on_b_all[-2]["chunk"]["data"]["status"] == "stopped"


async def test_approvals_and_cancels_reach_the_turn_from_another_process(redis_servers, owner):
    """PROTOCOL §7 across processes: the turn runs in A; a device on B allows one call, allows and then cancels
    another; the same decision sent second, from A, is refused. Both sockets see the same events."""
    user, token = owner
    session = await asyncio.to_thread(make_session, user)
    await asyncio.to_thread(lambda: type(session).objects.filter(pk=session.pk).update(approval_mode="ask"))
    process_a, process_b = redis_servers
    seen = {"a": [], "b": []}

    async def until(side, socket, predicate, timeout=30):
        frames = await receive_until(socket, predicate, timeout=timeout)
        seen[side].extend(frames)
        return frames[-1]

    def event_of(kind, **data):
        return lambda f: f.get("type") == "event" and f["chunk"]["type"] == kind and all(
            f["chunk"].get("data", {}).get(key) == value for key, value in data.items())

    async with connect(process_a, session.id, token) as on_a, connect(process_b, session.id, token) as on_b:
        for socket in (on_a, on_b):
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        await on_a.send(json.dumps({"type": "send", "client_message_id": str(uuid.uuid4()), "text": script(
            {"tools": [text_tool("allowed")]}, {"tools": [wait_tool(600)]}, {"text": "Both handled."})}))
        first = (await until("b", on_b, event_of("data-approval")))["chunk"]["data"]
        await on_b.send(json.dumps({"type": "decide", "approval_id": first["approval_id"], "decision": "allow"}))
        await until("b", on_b, event_of("data-approval-decision", approval_id=first["approval_id"]))
        await on_a.send(json.dumps({"type": "decide", "approval_id": first["approval_id"], "decision": "deny"}))
        refused = await until("a", on_a, lambda f: f.get("type") == "error")
        second = (await until("b", on_b, lambda f: event_of("data-approval")(f)
                              and f["chunk"]["data"]["approval_id"] != first["approval_id"]))["chunk"]["data"]
        await on_b.send(json.dumps({"type": "decide", "approval_id": second["approval_id"], "decision": "allow"}))
        await until("b", on_b, event_of("data-approval-decision", approval_id=second["approval_id"]))
        await on_b.send(json.dumps({"type": "cancel_tool", "toolCallId": second["toolCallId"]}))
        await until("b", on_b, is_finish, timeout=60)
        await until("a", on_a, is_finish, timeout=60)
    assert refused["code"] == "already_decided"
    on_a_events, on_b_events = ([f for f in seen[side] if f["type"] == "event"] for side in ("a", "b"))
    assert on_a_events == on_b_events  # both processes' sockets saw the same events
    assert_turn_well_formed(on_a_events)
    chunks = [f["chunk"] for f in on_a_events]
    decisions = [c["data"] for c in chunks if c["type"] == "data-approval-decision"]
    assert [(d["decision"], d["by"]) for d in decisions] == [("allow", "user"), ("allow", "user")]
    outputs = {c["toolCallId"]: c for c in chunks if c["type"] in ("tool-output-available", "tool-output-error")}
    assert outputs[first["toolCallId"]]["type"] == "tool-output-available"
    assert outputs[second["toolCallId"]]["errorText"].startswith("cancelled by the user")
    assert chunks[-2]["data"]["status"] == "completed"


async def test_a_process_that_dies_has_its_turn_ended_by_another_and_the_next_turn_runs_there(
        redis_servers, owner, local_model, tmp_path):
    """With the default STALE_TURN_SECONDS (15 s), another process ends the dead one's turn as interrupted — its
    socket hears the `finish` — and the chat's next message runs there."""
    user, token = owner
    session = await asyncio.to_thread(make_session, user)
    doomed = await asyncio.to_thread(ServerProcess, local_model_url=local_model.url, var_dir=tmp_path,
                                     extra_env=CHAOS_ENV)
    survivor = redis_servers[0]
    try:
        async with connect(doomed, session.id, token) as there, connect(survivor, session.id, token) as here:
            for socket in (there, here):
                await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
            await there.send(json.dumps({"type": "send", "text": script({"tools": [wait_tool(600)]}),
                                         "client_message_id": str(uuid.uuid4())}))
            await receive_until(here, lambda f: f.get("type") == "event" and f["chunk"]["type"] == "tool-input-available")
            doomed.process.kill()
            ended = await receive_until(here, is_finish, timeout=40)  # reaped within 20 s by the contract
            await here.send(json.dumps({"type": "send", "text": script({"text": "Here now."}),
                                        "client_message_id": str(uuid.uuid4())}))
            after = await receive_until(here, is_finish, timeout=30)
    finally:
        doomed.stop()
    statuses = [f["chunk"]["data"]["status"] for f in ended + after
                if f.get("type") == "event" and f["chunk"]["type"] == "data-turn"]
    assert statuses == ["interrupted", "completed"], [f["chunk"] for f in after if f.get("type") == "event"
                                                      and f["chunk"]["type"] in ("error", "data-turn")]
