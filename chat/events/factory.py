"""The process's event log: on Redis Streams when REDIS_URL is set (any number of processes), else in memory."""

from __future__ import annotations

from chat.events.durable_seq import last_durable_seq_async
from chat.events.log import EventLog
from chat.events.memory_log import InMemoryEventLog
from chat.events.redis_log import RedisEventLog
from core.conf import copilot_setting

_event_log: EventLog | None = None


def get_event_log() -> EventLog:
    """Built on first use, from the settings of that moment."""
    global _event_log
    if _event_log is None:
        redis_url = copilot_setting("REDIS_URL")
        if redis_url:
            _event_log = RedisEventLog(url=redis_url, seed_last_seq=last_durable_seq_async,
                                       prefix=copilot_setting("REDIS_PREFIX"))
        else:
            _event_log = InMemoryEventLog(seed_last_seq=last_durable_seq_async)
    return _event_log


def reset_event_log() -> None:
    """Forget the process's event log (tests start each case with a new one)."""
    global _event_log
    _event_log = None
