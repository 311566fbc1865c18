"""The database from async code on the hot path: a turn's durable writes, many a second.

channels' `database_sync_to_async` calls Django's `close_old_connections()` before and after every call, as a
request does. With `CONN_HEALTH_CHECKS` on, that marks each connection to be checked before its next use: one
`SELECT 1` round trip before every write. `hot_path_database` keeps what that clean-up is for — a connection left
broken by an error, in another autocommit mode, or past `CONN_MAX_AGE` is closed (and checked or reopened on its
next use) — and checks a healthy connection again only once `HEALTH_CHECK_SECONDS` have passed since its last
check.
"""

from __future__ import annotations

import time
import weakref

from asgiref.sync import SyncToAsync
from django.db import connections

HEALTH_CHECK_SECONDS = 1.0

_checked_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection wrapper → when it was checked


def close_broken_or_old_connections() -> None:
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        broken = conn.errors_occurred or conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]
        old = conn.close_at is not None and now >= conn.close_at
        if broken or old or now - _checked_at.get(conn, 0.0) >= HEALTH_CHECK_SECONDS:
            conn.close_if_unusable_or_obsolete()  # the next use checks the connection (or opens a new one)
            _checked_at[conn] = now


class HotPathDatabase(SyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        close_broken_or_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_broken_or_old_connections()


hot_path_database = HotPathDatabase
