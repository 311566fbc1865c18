"""Readiness (PROTOCOL §9 `/readyz`): can this process serve? The database answers, Redis when configured, and
the process is not shutting down. Each check gets READY_CHECK_TIMEOUT_SECONDS and says why it failed.

The database is asked from two threads of its own: a database that hangs holds those, not the threads everything
else runs its ORM calls in, and they are daemon threads, so a hung check never keeps a stopping server alive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import redis.asyncio
from django.db import DEFAULT_DB_ALIAS, connections

from chat import lifecycle
from chat.selectors import ModerationCounts, moderation_counts
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

OK = "ok"
SKIPPED = "skipped"
SHUTTING_DOWN = "shutting down"
MAX_REASON_CHARS = 200


class DaemonThreads:
    """A few daemon threads that run what is submitted, each keeping its own database connection between calls.
    (concurrent.futures joins its threads at exit, which a check stuck in a connect would block.)"""

    def __init__(self, count: int, name: str) -> None:
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._started = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.count, self.name = count, name

    def submit(self, function: Callable[[], Any]) -> concurrent.futures.Future:
        with self._started:
            if not self._threads:
                self._threads = [threading.Thread(target=self._serve, name=f"{self.name}-{index}", daemon=True)
                                 for index in range(self.count)]
                for thread in self._threads:
                    thread.start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._work.put((future, function))
        return future

    def _serve(self) -> None:
        while True:
            future, function = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue  # its caller stopped waiting
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)


_database_threads = DaemonThreads(2, "readiness")


def reason(exc: BaseException) -> str:
    """Why a check failed, in a line: the error's type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:MAX_REASON_CHARS]


def _ask_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        connection.close()  # the next check connects afresh
        raise


async def _in_database_thread(function: Any) -> Any:
    return await asyncio.wrap_future(_database_threads.submit(function))


async def check_database(timeout: float) -> str:
    try:
        await asyncio.wait_for(_in_database_thread(_ask_database), timeout)
    except TimeoutError:
        return f"timed out after {timeout:g} s"
    except Exception as exc:
        return reason(exc)
    return OK


async def check_redis(timeout: float) -> str:
    url = copilot_setting("REDIS_URL")
    if not url:
        return SKIPPED
    client = redis.asyncio.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except TimeoutError:
        return f"timed out after {timeout:g} s"
    except Exception as exc:
        return reason(exc)
    finally:
        await client.aclose()
    return OK


async def readiness() -> dict[str, str]:
    """Each check's value: "ok", "skipped" (Redis not configured), or why it failed. While the process shuts
    down, `shutdown` says so."""
    timeout = copilot_setting("READY_CHECK_TIMEOUT_SECONDS")
    database, redis_check = await asyncio.gather(check_database(timeout), check_redis(timeout))
    checks = {"database": database, "redis": redis_check}
    if lifecycle.draining():
        checks["shutdown"] = SHUTTING_DOWN
    return checks


def is_ready(checks: dict[str, str]) -> bool:
    return all(value in {OK, SKIPPED} for value in checks.values())


async def attention_counts() -> ModerationCounts | None:
    """The admin's "Needs attention" counts for /metrics; None when the database does not answer in time."""
    timeout = copilot_setting("READY_CHECK_TIMEOUT_SECONDS")
    try:
        return await asyncio.wait_for(_in_database_thread(_counts), timeout)
    except Exception as exc:
        logger.warning("metrics: the database did not give the stale turn counts: %s", reason(exc))
        return None


def _counts() -> ModerationCounts:
    try:
        return moderation_counts()
    finally:
        connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
