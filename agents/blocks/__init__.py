"""The block registry. A block is a typed step: a name, JSON Schemas for input and output, and a run function.

Adding a block is adding a module here that calls `register(Block(...))`, and importing it below. Blocks run
through `run_block` only (the copilot's `run_block` tool and the executor alike), which holds every output to
BLOCK_MAX_OUTPUT_BYTES of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.conf import copilot_setting


class BlockError(ValueError):
    """Bad input for a block, or a block that cannot do what it was asked."""


@dataclass(frozen=True)
class Block:
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema, "output_schema": self.output_schema}


def json_kind(value: Any) -> str:
    """What kind of JSON value this is, for error messages: "an object", "a list", "a string"…"""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


_REGISTRY: dict[str, Block] = {}


def register(block: Block) -> Block:
    _REGISTRY[block.name] = block
    return block


def get_block(name: str) -> Block:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BlockError(f"unknown block {name!r}; known blocks: {', '.join(sorted(_REGISTRY))}") from None


def all_blocks() -> list[Block]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def max_output_bytes() -> int:
    return int(copilot_setting("BLOCK_MAX_OUTPUT_BYTES"))


def json_size(value: Any) -> int:
    """The bytes of JSON `value` is saved and sent as (json.dumps: non-ASCII escaped, so characters are bytes)."""
    return len(json.dumps(value, allow_nan=False))


def too_large(what: str, size: int, *, at_least: bool = False) -> BlockError:
    return BlockError(f"{what} is {'at least ' if at_least else ''}{size:,} bytes as JSON, "
                      f"more than BLOCK_MAX_OUTPUT_BYTES ({max_output_bytes():,})")


def checked_output(name: str, output: Any) -> dict[str, Any]:
    """A block's output, refused when it is not a JSON object or is larger than BLOCK_MAX_OUTPUT_BYTES as JSON."""
    if not isinstance(output, dict):
        raise BlockError(f"{name}: the block's output is not a JSON object but {json_kind(output)}")
    try:
        size = json_size(output)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BlockError(f"{name}: the block's output is not JSON: {exc}") from None
    if size > max_output_bytes():
        raise too_large(f"{name}: the block's output", size)
    return output


async def run_block(name: str, block_input: Any) -> dict[str, Any]:
    """Run a block on an input object; its output, checked by `checked_output`. Raises BlockError."""
    if not isinstance(block_input, dict):
        raise BlockError("a block's input is a JSON object")
    return checked_output(name, await get_block(name).run(block_input))


from agents.blocks import calculator, http_get, json_extract, llm, text, wait  # noqa: E402,F401  (registers them)
