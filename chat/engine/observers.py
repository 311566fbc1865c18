"""What the engine tells whoever watches it (metrics, traces, logs, follow-up work such as titles) as a turn's
moments happen.

Observers register themselves, as the engine's tools do (an app's AppConfig.ready). The engine calls every
registered observer in the turn's own task, at once and synchronously: an observer does little, and hands
anything slow to a task of its own. One that raises is logged and skipped; watching never breaks a turn.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnInfo:
    session_id: str
    turn_id: str
    user_id: int | None
    model: str = ""
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)  # for observers, e.g. "first turn"


class TurnObserver:
    """The moments of a turn; override those you watch. Times are in seconds."""

    def turn_scope(self, turn: TurnInfo) -> contextlib.AbstractContextManager | None:
        """A context the turn runs inside, start to end (a trace span made current, log context…)."""
        return None

    def cli_scope(self, *, session_id: str) -> contextlib.AbstractContextManager | None:
        """A context a session's CLI is started in: what it inherits (its trace context) lasts its life, across
        every turn it serves."""
        return None

    def turn_started(self, turn: TurnInfo) -> None: ...

    def client_acquired(self, turn: TurnInfo, *, warm: bool) -> None:
        """The turn has its CLI: one kept connected from before (`warm`), or one just started."""

    def first_token(self, turn: TurnInfo, *, seconds: float) -> None:
        """The turn's first text or reasoning delta, `seconds` after the turn started."""

    def tool_call_started(self, turn: TurnInfo, *, tool_call_id: str, tool_name: str) -> None: ...

    def tool_call_ended(self, turn: TurnInfo, *, tool_call_id: str, tool_name: str, status: str,
                        seconds: float) -> None:
        """`status`: completed, failed, denied, cancelled or interrupted."""

    def wait_started(self, turn: TurnInfo, *, kind: str, key: str) -> None:
        """The turn waits: `kind` is "capacity" (for a model process) or "approval" (`key`: the approval)."""

    def wait_ended(self, turn: TurnInfo, *, kind: str, key: str, seconds: float, outcome: str) -> None: ...

    def model_retry(self, turn: TurnInfo, *, attempt: int, status: int | None) -> None: ...

    def policy_denial(self, *, session_id: str, turn_id: str, tool_name: str, kind: str) -> None: ...

    def turn_ended(self, turn: TurnInfo, *, status: str, seconds: float, usage: dict[str, Any] | None) -> None: ...


_observers: list[TurnObserver] = []


def register(observer: TurnObserver) -> None:
    if not any(type(known) is type(observer) for known in _observers):
        _observers.append(observer)


def unregister(observer: TurnObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def notify(moment: str, *args: Any, **kwargs: Any) -> None:
    """Tell every observer of `moment` (the name of a TurnObserver method)."""
    for observer in _observers:
        try:
            getattr(observer, moment)(*args, **kwargs)
        except Exception:
            logger.exception("observer %s failed on %s; the turn goes on", type(observer).__name__, moment)


def turn_scope(turn: TurnInfo) -> contextlib.AbstractContextManager:
    """Every observer's turn_scope, entered for the turn's life."""
    return _scopes("turn_scope", turn)


def cli_scope(*, session_id: str) -> contextlib.AbstractContextManager:
    """Every observer's cli_scope, entered while a session's CLI starts."""
    return _scopes("cli_scope", session_id=session_id)


@contextlib.contextmanager
def _scopes(kind: str, *args: Any, **kwargs: Any) -> Iterator[None]:
    with contextlib.ExitStack() as scopes:
        for observer in _observers:
            try:
                scope = getattr(observer, kind)(*args, **kwargs)
                if scope is not None:
                    scopes.enter_context(scope)
            except Exception:
                logger.exception("observer %s failed to open its %s", type(observer).__name__, kind)
        yield
