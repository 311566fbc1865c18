"""Parsing JSON from clients: a document nested deeper than MAX_JSON_DEPTH is refused before anything walks it.

Python's parser itself overflows its stack on a few thousand levels (RecursionError), and whatever recurses
over a parsed value later (serializers, JSON Schema, the database's encoder) does so sooner.
"""

from __future__ import annotations

import json
from typing import Any

from core.errors import BadInput

MAX_JSON_DEPTH = 64


def nesting_depth(value: Any) -> int:
    """How deep containers nest in `value` (a scalar is 0); iterative, so any depth can be measured."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any) -> Any:
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused")
    return value


def parse_json(raw: str | bytes) -> Any:
    """The JSON value of `raw`; BadInput for malformed JSON and for nesting deeper than MAX_JSON_DEPTH."""
    try:
        return check_depth(json.loads(raw))
    except RecursionError:
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"not valid JSON: {exc}") from None
