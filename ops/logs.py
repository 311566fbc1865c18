"""JSON log lines (LOG_FORMAT=json, PROTOCOL §9) and the ids they carry from context (core.log_context).

copilot_site/settings.py puts `LogContextFilter` and `JsonFormatter` on the console handler when LOG_FORMAT is
json; `LogContextObserver` binds a turn's session, turn and user ids for everything the turn runs.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger import json as json_logger

from chat.engine.observers import TurnInfo, TurnObserver
from core import log_context


class LogContextFilter(logging.Filter):
    """Stamps each record with the ids bound where it was logged (never overriding ids passed as `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in log_context.current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(json_logger.JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the ids and other extras."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(["levelname", "name", "message"], rename_fields={"levelname": "level", "name": "logger"},
                         **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)


class LogContextObserver(TurnObserver):
    """A turn runs with its session, turn and user ids bound: every line it logs carries them."""

    def turn_scope(self, turn: TurnInfo) -> contextlib.AbstractContextManager:
        return log_context.bound(session_id=turn.session_id, turn_id=turn.turn_id, user_id=turn.user_id)
