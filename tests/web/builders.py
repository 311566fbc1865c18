"""Builders of the browser tests: finished turns saved through the turn actions, as the engine leaves them."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from chat.actions.turns import (
    do_finish_turn,
    do_record_tool_input,
    do_record_tool_output,
    do_record_turn_start,
    do_save_message_parts,
    do_start_turn,
)
from chat.events.durable_seq import last_durable_seq
from chat.models import ChatSession, Turn, TurnStatus

_tool_ids = itertools.count()


def saved_turn(session: ChatSession, *, prompt: str, answer: str, tools: list[dict[str, Any]] = (),
               status: str = TurnStatus.COMPLETED, dangling: int = 0) -> Turn:
    """A turn that ran and ended: the prompt, calls of `tools` ({name, input, output}) and the answer's text.

    `dangling` more calls are left without an output after the turn ended, as when a worker is lost.
    """
    seq = last_durable_seq(str(session.id))
    turn = do_start_turn(session=session, text=prompt, client_message_id=uuid.uuid4()).turn
    seq += 1
    do_record_turn_start(turn_id=turn.id, seq=seq)

    def record_call(name: str, tool_input: Any, part_index: int) -> str:
        nonlocal seq
        tool_use_id = f"toolu_web_{next(_tool_ids)}"
        seq += 1
        do_record_tool_input(turn_id=turn.id, message_id=turn.assistant_message_id, tool_use_id=tool_use_id,
                             name=name, tool_input=tool_input, part_index=part_index, seq=seq)
        return tool_use_id

    for index, call in enumerate(tools):
        tool_use_id = record_call(call["name"], call["input"], index + 1)
        seq += 1
        do_record_tool_output(turn_id=turn.id, tool_use_id=tool_use_id, seq=seq, output=call["output"])
    seq += 1
    do_save_message_parts(message_id=turn.assistant_message_id, seq=seq,
                          parts=[{"type": "text", "index": 0, "text": answer}])
    seq += 1
    do_finish_turn(turn_id=turn.id, status=status, seq=seq)
    for index in range(dangling):
        record_call("mcp__copilot__list_blocks", {}, len(tools) + index + 1)
    turn.refresh_from_db()
    return turn
