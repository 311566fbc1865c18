"""`json_extract {data, path}`: picks a value out of JSON data by a path like `a.b[0].c`.

Dots separate object keys, `[n]` indexes a list (n from 0). An empty path is the whole data.
Data given as a string is parsed as JSON first. The value picked is part of the data, so the output is never
much larger than the input (NaN and Infinity, which are not JSON, are refused).
"""

import json
import re
from typing import Any

from agents.blocks import Block, BlockError, json_kind, register

KEY = re.compile(r"[^.\[\]]+")
INDEX = re.compile(r"\[([0-9]+)\]")


def parse_path(path: str) -> list[str | int]:
    """The steps of a path: keys (str) and list indices (int)."""
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        if path[position] == "[":
            match = INDEX.match(path, position)
            if match is None:
                raise BlockError(f"json_extract: bad path {path!r}: a list index is a number in brackets, like [0]")
            steps.append(int(match.group(1)))
        else:
            if steps:
                if path[position] != ".":
                    raise BlockError(f"json_extract: bad path {path!r}: expected '.' or '[' at position {position}")
                position += 1
            match = KEY.match(path, position)
            if match is None:
                raise BlockError(f"json_extract: bad path {path!r}: empty key at position {position}")
            steps.append(match.group())
        position = match.end()
    return steps


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _where(steps: list[str | int]) -> str:
    text = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps).lstrip(".")
    return f"the value at {text!r}" if text else "the data"


def extract(data: Any, path: str) -> Any:
    steps = parse_path(path)
    value = data
    for done, step in enumerate(steps):
        where = _where(steps[:done])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise BlockError(f"json_extract: path {path!r}: {where} is {json_kind(value)}, not a list")
            if step >= len(value):
                raise BlockError(f"json_extract: path {path!r}: no index {step} in {where}, "
                                 f"a list of {len(value)}")
            value = value[step]
        else:
            if not isinstance(value, dict):
                raise BlockError(f"json_extract: path {path!r}: {where} is {json_kind(value)}, not an object")
            if step not in value:
                raise BlockError(f"json_extract: path {path!r}: no key {step!r} in {where}")
            value = value[step]
    return value


async def run(block_input: dict) -> dict:
    if "data" not in block_input:
        raise BlockError("json_extract: data is required (JSON, or a string of JSON)")
    data, path = block_input["data"], block_input.get("path")
    if not isinstance(path, str):
        raise BlockError("json_extract: path must be a string, like \"a.b[0].c\"")
    if isinstance(data, str):
        try:
            data = json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or a number of over 4,300 digits
            raise BlockError(f"json_extract: data is a string that is not JSON: {exc}") from None
    return {"value": extract(data, path)}


register(Block(
    name="json_extract",
    description="Pick a value out of JSON data by a path like a.b[0].c (dots for keys, [n] for list indices).",
    input_schema={"type": "object",
                  "properties": {"data": {"description": "JSON data, or a string of JSON"},
                                 "path": {"type": "string", "description": "where the value is, like a.b[0].c"}},
                  "required": ["data", "path"]},
    output_schema={"type": "object", "properties": {"value": {}}},
    run=run,
))
