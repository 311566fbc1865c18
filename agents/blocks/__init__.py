"""The block registry. A block is a typed step: a name, JSON Schemas for input and output, and a run function.

Adding a block is adding a module here that calls `register(Block(...))`, and importing it below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


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


async def run_block(name: str, block_input: Any) -> dict[str, Any]:
    if not isinstance(block_input, dict):
        raise BlockError("a block's input is a JSON object")
    return await get_block(name).run(block_input)


from agents.blocks import calculator, http_get, json_extract, llm, text, wait  # noqa: E402,F401  (registers them)
