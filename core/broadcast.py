"""Waking other processes: a small message on a topic reaches every process listening to it, at once.

For what must not wait for a poll: a queued run (idle workers), a cancelled run (its worker), a notice saved
by a worker (the web process that holds the event log). Three carriers, chosen by the setting BROADCAST
("auto": the first that applies):
- PostgreSQL `LISTEN/NOTIFY`; `send` inside a transaction is delivered when it commits, and not at all when it
  rolls back;
- Redis pub/sub (REDIS_URL);
- datagrams between processes of one machine (`local`: the SQLite default), through Unix sockets in a folder
  named after the database file, which is what the processes of one deployment share.
A message is at most a few hundred bytes of JSON. Nothing is kept: a listener hears what is sent while it
listens, so whoever listens reads the state it cares about once after it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from core.conf import copilot_setting

MAX_MESSAGE_BYTES = 4000  # PostgreSQL's NOTIFY takes under 8000 bytes


def carrier() -> str:
    chosen = copilot_setting("BROADCAST")
    if chosen != "auto":
        return chosen
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return "postgres"
    return "redis" if copilot_setting("REDIS_URL") else "local"


def _channel(topic: str) -> str:
    """The topic as a name all three carriers accept, kept apart per deployment (REDIS_PREFIX)."""
    return f"{copilot_setting('REDIS_PREFIX')}.{topic}".replace("-", "_").replace(".", "__")


def _payload(message: dict[str, Any] | None) -> str:
    payload = json.dumps(message or {})
    if len(payload.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a broadcast message is at most {MAX_MESSAGE_BYTES} bytes")
    return payload


def send(topic: str, message: dict[str, Any] | None = None) -> None:
    """Tell every process listening to `topic` (synchronous; on PostgreSQL, on commit when in a transaction)."""
    payload = _payload(message)
    kind = carrier()
    if kind == "postgres":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [_channel(topic), payload])
    elif kind == "redis":
        _redis_client().publish(_channel(topic), payload)
    else:
        _local_send(topic, payload)


async def asend(topic: str, message: dict[str, Any] | None = None) -> None:
    from channels.db import database_sync_to_async

    await database_sync_to_async(send)(topic, message)


class Inbox:
    """What a listener hears, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def put(self, topic: str, payload: str | bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        self._queue.put_nowait((topic, message if isinstance(message, dict) else {}))

    async def get(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next (topic, message); None when nothing comes within `timeout` seconds."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def drain(self) -> int:
        """Forget what has come so far; returns how many messages that was."""
        count = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            count += 1
        return count


@contextlib.asynccontextmanager
async def listen(*topics: str) -> AsyncIterator[Inbox]:
    """Hear `topics` until the block ends. Listening has begun when the block is entered."""
    inbox = Inbox()
    kind = carrier()
    listener = {"postgres": _listen_postgres, "redis": _listen_redis, "local": _listen_local}[kind]
    async with listener(topics, inbox):
        yield inbox


# --- PostgreSQL ---

def _postgres_conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    return make_conninfo(dbname=db["NAME"], user=db.get("USER") or None, password=db.get("PASSWORD") or None,
                         host=db.get("HOST") or None, port=db.get("PORT") or None)


@contextlib.asynccontextmanager
async def _listen_postgres(topics: tuple[str, ...], inbox: Inbox) -> AsyncIterator[None]:
    import psycopg
    from psycopg import sql

    by_channel = {_channel(topic): topic for topic in topics}
    async with await psycopg.AsyncConnection.connect(_postgres_conninfo(), autocommit=True) as listener:
        for channel in by_channel:
            await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

        async def pump() -> None:
            async for notify in listener.notifies():
                inbox.put(by_channel.get(notify.channel, notify.channel), notify.payload)

        task = asyncio.create_task(pump(), name="broadcast listener (postgres)")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --- Redis ---

_redis = None


def _redis_client():
    global _redis
    import redis

    if _redis is None:
        _redis = redis.Redis.from_url(copilot_setting("REDIS_URL"))
    return _redis


@contextlib.asynccontextmanager
async def _listen_redis(topics: tuple[str, ...], inbox: Inbox) -> AsyncIterator[None]:
    import redis.asyncio as aioredis

    by_channel = {_channel(topic): topic for topic in topics}
    client = aioredis.Redis.from_url(copilot_setting("REDIS_URL"))
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(*by_channel)

    async def pump() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                channel = message["channel"].decode()
                inbox.put(by_channel.get(channel, channel), message["data"])

    task = asyncio.create_task(pump(), name="broadcast listener (redis)")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()


# --- datagrams on this machine ---

def _topic_dir(topic: str) -> Path:
    # Short (a Unix socket's path has at most ~107 bytes), and the same for every process on this database.
    deployment = hashlib.sha256(str(settings.DATABASES["default"]["NAME"]).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "copilot-broadcast" / deployment / _channel(topic)


def _local_send(topic: str, payload: str) -> None:
    folder = _topic_dir(topic)
    try:
        addresses = list(folder.iterdir())
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for address in addresses:
            try:
                sender.sendto(payload.encode(), str(address))
            except (ConnectionRefusedError, FileNotFoundError):
                address.unlink(missing_ok=True)  # its listener is gone
            except BlockingIOError:
                pass  # that listener is far behind: it reads the state again when it catches up


@contextlib.asynccontextmanager
async def _listen_local(topics: tuple[str, ...], inbox: Inbox) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    sockets: list[tuple[socket.socket, Path]] = []
    try:
        for topic in topics:
            folder = _topic_dir(topic)
            folder.mkdir(parents=True, exist_ok=True)
            # A short name: a Unix socket's path is at most ~107 bytes.
            address = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            receiver.setblocking(False)
            receiver.bind(str(address))
            sockets.append((receiver, address))
            loop.add_reader(receiver.fileno(), _read_datagrams, receiver, topic, inbox)
        yield
    finally:
        for receiver, address in sockets:
            loop.remove_reader(receiver.fileno())
            receiver.close()
            address.unlink(missing_ok=True)


def _read_datagrams(receiver: socket.socket, topic: str, inbox: Inbox) -> None:
    while True:
        try:
            payload = receiver.recv(MAX_MESSAGE_BYTES * 2)
        except BlockingIOError:
            return
        inbox.put(topic, payload)
