"""core.db.hot_path_database: a turn's writes skip the health check a request would make, and still drop a broken
or old connection. PostgreSQL (CI) shows the check itself; elsewhere the bookkeeping is what can be seen."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from core import db
from core.db import hot_path_database


def checks_pending() -> bool:
    """Whether the connection will be health-checked (a `SELECT 1`) before its next statement."""
    return connection.health_check_enabled and not connection.health_check_done


def touch() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return checks_pending()


@pytest.fixture
def health_checks_on():
    """The connection as deployed: kept for a minute, health-checked."""
    saved = {key: connection.settings_dict[key] for key in ("CONN_HEALTH_CHECKS", "CONN_MAX_AGE")}
    connection.close()
    connection.settings_dict.update(CONN_HEALTH_CHECKS=True, CONN_MAX_AGE=60)
    yield
    connection.close()
    connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
async def test_writes_in_a_row_are_checked_once_a_second_not_before_each(health_checks_on, monkeypatch):
    monkeypatch.setattr(db, "HEALTH_CHECK_SECONDS", 3600)
    await hot_path_database(lambda: connection.close())()  # the sync thread's own connection: opened anew, as configured
    await hot_path_database(touch)()
    assert [await hot_path_database(touch)() for _ in range(5)] == [False] * 5
    # channels' wrapper marks the connection for a check at every call: what the hot path avoids.
    assert await database_sync_to_async(checks_pending)() is True


@pytest.mark.django_db(transaction=True)
async def test_a_connection_that_had_an_error_or_outlived_its_age_is_dropped(health_checks_on, monkeypatch):
    monkeypatch.setattr(db, "HEALTH_CHECK_SECONDS", 3600)
    await hot_path_database(lambda: connection.close())()
    await hot_path_database(touch)()

    def broken() -> None:
        connection.errors_occurred = True

    await hot_path_database(broken)()  # after the call: checked now, dropped if unusable
    assert await hot_path_database(lambda: connection.errors_occurred)() is False

    def aged() -> None:
        connection.close_at = time.monotonic() - 1

    await hot_path_database(aged)()
    assert await hot_path_database(lambda: connection.connection is None)() is True  # closed; reopened on use
    assert await hot_path_database(touch)() is False


@pytest.mark.django_db(transaction=True)
async def test_a_healthy_connection_is_checked_again_after_a_while(health_checks_on, monkeypatch):
    monkeypatch.setattr(db, "HEALTH_CHECK_SECONDS", 0)
    await hot_path_database(lambda: connection.close())()
    await hot_path_database(touch)()
    assert await hot_path_database(checks_pending)() is True
