"""Makes a first graph for an agent from its name and description (a `create_agent` without a graph).

The graph is deliberately simple: a `text` node that puts the run's request under the description, and an
`llm` node that answers it. A run asks with inputs `{"instructions": {"values": {"request": "…"}}}`.
"""

from __future__ import annotations

from typing import Any

from agents.graphs import check_graph, saved_form


def _literal(text: str) -> str:
    """Text as a `text` template that shows it as is: braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def graph_from_description(*, name: str, description: str) -> dict[str, Any]:
    """A checked graph (as saved) that does what the description says, by asking the model."""
    graph = {
        "nodes": [
            {"id": "instructions", "block": "text",
             "input": {"template": _literal(description) + "\n\n{request}", "values": {"request": ""}}},
            {"id": "answer", "block": "llm",
             "input": {"system": f"You are the agent {name!r}. Do what the instructions say; answer briefly."}},
        ],
        "links": [{"from": "instructions", "output": "text", "to": "answer", "input": "prompt"}],
    }
    check_graph(graph)
    return saved_form(graph)
