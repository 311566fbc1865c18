"""Who hears that an agent run ended (metrics): whichever process ended it tells them, once the ending commits.

Observers register themselves in an app's AppConfig.ready. One that raises is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

RunEnded = Callable[[str], None]  # called with the run's final status
_observers: list[RunEnded] = []


def register(observer: RunEnded) -> None:
    if observer not in _observers:
        _observers.append(observer)


def run_ended(status: str) -> None:
    for observer in _observers:
        try:
            observer(status)
        except Exception:
            logger.exception("run observer %r failed", observer)
