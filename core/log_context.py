"""The ids a log line is about (session, turn, tool call, user), carried by context rather than pasted into messages.

Whoever knows an id binds it for the code it runs (`bound`); contextvars follow that code into the tasks it starts
and the threads `sync_to_async` runs it in. The JSON log format (LOG_FORMAT=json) writes them on each line.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

FIELDS = ("session_id", "turn_id", "tool_call_id", "user_id")
_ids: dict[str, contextvars.ContextVar[Any]] = {name: contextvars.ContextVar(f"log_{name}", default=None)
                                                 for name in FIELDS}


@contextlib.contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Bind these ids (None values are skipped) for the code inside, then restore what was there."""
    tokens = [(_ids[name], _ids[name].set(value)) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def current() -> dict[str, Any]:
    """The ids bound here, by field name; those not known are left out."""
    known = {}
    for name, variable in _ids.items():
        value = variable.get()
        if value is not None:
            known[name] = value
    return known
