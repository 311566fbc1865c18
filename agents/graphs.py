"""Agent graphs (PROTOCOL §6), checked before they are saved or run, so a saved graph always runs.

A graph is `{"nodes": [{"id", "block", "input"}], "links": [{"from", "output", "to", "input"}]}`. A link
feeds one output of a node into an input of another; a link's `input` may be a dotted path into an object
input (`"values.name"` sets `name` in a text block's `values`). `check_graph` refuses, with every problem
it finds: unknown blocks or inputs, static inputs that fail their block's schema, required inputs nobody
gives, links between unknown nodes or names, links whose types do not match, and cycles.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from agents.blocks import Block, BlockError, get_block, json_kind
from core.conf import copilot_setting
from core.errors import ApplicationError

MAX_LINKS_PER_NODE = 4  # a graph may have this many links per node it may have (MAX_GRAPH_NODES)
MAX_GRAPH_CHARS = 200_000
MAX_PATH_DEPTH = 4
NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GRAPH_KEYS = {"nodes", "links"}
NODE_KEYS = {"id", "block", "input"}
LINK_KEYS = ("from", "output", "to", "input")


@dataclass(frozen=True)
class Problem:
    """One reason a graph cannot run (PROTOCOL §10): the node it is in (a link's source; None for the graph as a
    whole), the field of it (`input.seconds`, `block`, `links[2]`…; None when there is none), and what is wrong."""

    node: str | None
    field: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "field": self.field, "message": self.message}


class GraphError(ApplicationError):
    """A graph (or a run's inputs) that cannot run; `problems` lists each reason as text, `details` as Problems."""

    code = "bad_graph"
    http_status = 400

    def __init__(self, problems: list[Problem | str], *, code: str | None = None) -> None:
        self.details = [problem if isinstance(problem, Problem) else Problem(None, None, problem)
                        for problem in problems]
        self.problems = [problem.message for problem in self.details]
        super().__init__("; ".join(self.problems), code=code)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "problems": [p.as_json() for p in self.details]}


class InputsError(GraphError):
    code = "bad_inputs"


@dataclass(frozen=True)
class Node:
    id: str
    block: Block
    input: dict[str, Any]


@dataclass(frozen=True)
class Link:
    source: str
    output: str
    target: str
    input: str  # a name, or a dotted path into an object input

    @property
    def path(self) -> list[str]:
        return self.input.split(".")

    def describe(self) -> str:
        return f"{self.source}.{self.output} → {self.target}.{self.input}"


@dataclass(frozen=True)
class Graph:
    """A checked graph: nodes in dependency order (upstream first), and the links between them."""

    nodes: list[Node]
    links: list[Link]
    _incoming: dict[str, list[Link]] = field(default_factory=dict, repr=False)

    def node(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.id == node_id)

    def incoming(self, node_id: str) -> list[Link]:
        return self._incoming.get(node_id, [])

    def upstream(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(link.source for link in self.incoming(node_id)))

    def sinks(self) -> list[str]:
        """The nodes no link leaves: their outputs are the run's outputs."""
        sources = {link.source for link in self.links}
        return [node.id for node in self.nodes if node.id not in sources]

    def as_json(self) -> dict[str, Any]:
        return {"nodes": [{"id": node.id, "block": node.block.name, "input": node.input} for node in self.nodes],
                "links": [{"from": link.source, "output": link.output, "to": link.target, "input": link.input}
                          for link in self.links]}




def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _property_type(schema: dict[str, Any], name: str) -> str | None:
    """The JSON type of a property of an object schema; None when it may be anything."""
    declared = (schema.get("properties") or {}).get(name, {}).get("type")
    return declared if isinstance(declared, str) else None


def _types_match(output_type: str | None, input_type: str | None) -> bool:
    if output_type is None or input_type is None or output_type == input_type:
        return True
    return output_type == "integer" and input_type == "number"


def schema_problems(schema: dict[str, Any], instance: Any, *, where: str, optional: Iterable[str] = (),
                    node: str | None = None) -> list[Problem]:
    """What is wrong with `instance` for a block's input schema; inputs in `optional` may be missing."""
    optional = set(optional)
    if optional:
        schema = {**schema, "required": [name for name in schema.get("required", []) if name not in optional]}
    problems = []
    for error in sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        location = ".".join(str(step) for step in error.absolute_path)
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        problems.append(Problem(node, f"input.{location}" if location else "input",
                                f"{where}: {f'input.{location}: ' if location else ''}{message}"))
    return problems


def check_block_input(block: Block, block_input: dict[str, Any]) -> None:
    """Raise BlockError when an input, links applied, does not match its block's input schema."""
    problems = schema_problems(block.input_schema, block_input, where=block.name)
    if problems:
        raise BlockError("; ".join(problem.message for problem in problems))


def has_nul(value: Any) -> bool:
    """Does any string in this JSON value hold a NUL character? PostgreSQL can store none."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    return False


def _check_shape(raw: Any) -> list[Problem]:
    if not isinstance(raw, dict):
        return [Problem(None, None, f"a graph is an object with nodes and links, not {json_kind(raw)}")]
    problems = [Problem(None, key, f"graph: unknown key {key!r} (a graph has nodes and links)")
                for key in sorted(set(raw) - GRAPH_KEYS)]
    if not isinstance(raw.get("nodes"), list) or not raw["nodes"]:
        problems.append(Problem(None, "nodes", "graph: nodes must be a non-empty list"))
    elif len(raw["nodes"]) > copilot_setting("MAX_GRAPH_NODES"):
        problems.append(Problem(None, "nodes", f"graph: at most {copilot_setting('MAX_GRAPH_NODES')} nodes "
                                               f"({len(raw['nodes'])} given)"))
    if not isinstance(raw.get("links", []), list):
        problems.append(Problem(None, "links", "graph: links must be a list"))
    elif len(raw.get("links", [])) > (max_links := MAX_LINKS_PER_NODE * copilot_setting("MAX_GRAPH_NODES")):
        problems.append(Problem(None, "links", f"graph: at most {max_links} links ({len(raw['links'])} given)"))
    try:
        size = len(json.dumps(raw))
    except (TypeError, ValueError, RecursionError):
        return problems + [Problem(None, None, "graph: not plain JSON data")]
    if size > MAX_GRAPH_CHARS:
        problems.append(Problem(None, None, f"graph: at most {MAX_GRAPH_CHARS:,} characters as JSON ({size:,} given)"))
    elif has_nul(raw):
        problems.append(Problem(None, None, "graph: text may not contain NUL characters"))
    return problems


def _parse_nodes(raw_nodes: list[Any]) -> tuple[list[Node], list[Problem]]:
    nodes: list[Node] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_nodes):
        where, node = f"nodes[{index}]", None
        if not isinstance(raw, dict):
            problems.append(Problem(None, where, f"{where}: a node is an object with id, block and input, "
                                                 f"not {json_kind(raw)}"))
            continue
        node_id = raw.get("id")
        if isinstance(node_id, str) and NODE_ID.match(node_id):
            where, node = f"node {node_id!r}", node_id
            if node_id in seen:
                problems.append(Problem(node, "id", f"{where}: the id is used by another node; ids are unique"))
            seen.add(node_id)
        else:
            problems.append(Problem(None, f"nodes[{index}].id", f"{where}: id must be 1 to 64 letters, digits, '-' "
                                                                f"or '_' (got {_shown(node_id)})"))
        problems += [Problem(node, key, f"{where}: unknown key {key!r} (a node has id, block and input)")
                     for key in sorted(set(raw) - NODE_KEYS)]
        node_input = raw.get("input", {})
        if not isinstance(node_input, dict):
            problems.append(Problem(node, "input", f"{where}: input must be an object, not {json_kind(node_input)}"))
            node_input = {}
        try:
            block = get_block(raw.get("block") if isinstance(raw.get("block"), str) else "")
        except BlockError as exc:
            problems.append(Problem(node, "block", f"{where}: {exc}" if isinstance(raw.get("block"), str)
                                    else f"{where}: block must be the name of a block (see list_blocks)"))
            continue
        if isinstance(node_id, str):
            nodes.append(Node(id=node_id, block=block, input=node_input))
    return nodes, problems


def _is_link(raw: Any) -> bool:
    return isinstance(raw, dict) and set(raw) == set(LINK_KEYS) and all(isinstance(raw[key], str) for key in LINK_KEYS)


def _parse_links(raw_links: list[Any], nodes: dict[str, Node]) -> tuple[list[Link], list[Problem]]:
    links: list[Link] = []
    problems: list[Problem] = []
    fed: dict[tuple[str, str], Link] = {}
    for index, raw in enumerate(raw_links):
        where = f"links[{index}]"
        if not _is_link(raw):
            source = raw.get("from") if isinstance(raw, dict) and isinstance(raw.get("from"), str) else None
            problems.append(Problem(source if source in nodes else None, where,
                                    f"{where}: a link is an object of four strings: from, output, to, input"))
            continue
        link = Link(source=raw["from"], output=raw["output"], target=raw["to"], input=raw["input"])
        field_name, where = f"links[{index}]", f"link {link.describe()}"
        source = link.source if link.source in nodes else None
        unknown = [name for name in (link.source, link.target) if name not in nodes]
        if unknown:
            problems += [Problem(source, f"{field_name}.{'from' if name == link.source else 'to'}",
                                 f"{where}: no node {name!r}") for name in dict.fromkeys(unknown)]
            continue
        if link.source == link.target:
            problems.append(Problem(source, field_name, f"{where}: a node cannot feed itself"))
            continue
        problems += _link_problems(link, nodes[link.source], nodes[link.target], where, field_name)
        key = (link.target, link.input)
        if key in fed:
            problems.append(Problem(source, f"{field_name}.input",
                                    f"{where}: {link.target}.{link.input} is already fed by {fed[key].describe()}"))
        fed[key] = link
        links.append(link)
    return links, problems


def _link_problems(link: Link, source: Node, target: Node, where: str, field_name: str) -> list[Problem]:
    problems = []
    outputs = source.block.output_schema.get("properties")
    if outputs is not None and link.output not in outputs:
        problems.append(Problem(source.id, f"{field_name}.output",
                                f"{where}: block {source.block.name!r} has no output {link.output!r}; "
                                f"its outputs are {', '.join(sorted(outputs))}"))
    path = link.path
    if not all(path) or len(path) > MAX_PATH_DEPTH:
        return problems + [Problem(source.id, f"{field_name}.input",
                                   f"{where}: input must be a name, or a dotted path like values.name")]
    inputs = target.block.input_schema.get("properties")
    if inputs is not None and path[0] not in inputs:
        return problems + [Problem(source.id, f"{field_name}.input",
                                   f"{where}: block {target.block.name!r} has no input {path[0]!r}; "
                                   f"its inputs are {', '.join(sorted(inputs))}")]
    input_type = _property_type(target.block.input_schema, path[0])
    if len(path) > 1:
        if input_type not in (None, "object"):
            problems.append(Problem(source.id, f"{field_name}.input",
                                    f"{where}: input {path[0]!r} of {target.block.name!r} is a {input_type}, "
                                    "so a dotted path cannot go into it"))
        input_type = None  # inside an object input anything goes
    output_type = _property_type(source.block.output_schema, link.output) if outputs is not None else None
    if not problems and not _types_match(output_type, input_type):
        problems.append(Problem(source.id, field_name,
                                f"{where}: type mismatch: {link.output!r} of {source.block.name!r} is a "
                                f"{output_type}, but {path[0]!r} of {target.block.name!r} takes a {input_type}"))
    if _has_path(target.input, path):
        problems.append(Problem(source.id, f"{field_name}.input",
                                f"{where}: {target.id}.{link.input} is also set in the node's input; "
                                "keep one of the two"))
    return problems


def _has_path(value: dict[str, Any], path: list[str]) -> bool:
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return False
        value = value[step]
    return True


def _input_problems(node: Node, node_input: dict[str, Any], links: list[Link], *, where: str) -> list[Problem]:
    """Unknown inputs, required inputs nobody gives, and schema failures of a node's own input."""
    schema = node.block.input_schema
    known = schema.get("properties")
    problems = []
    if known is not None:
        problems += [Problem(node.id, f"input.{name}", f"{where}: block {node.block.name!r} has no input {name!r}; "
                                                       f"its inputs are {', '.join(sorted(known))}")
                     for name in node_input if name not in known]
    linked = {link.path[0] for link in links}
    missing = [name for name in schema.get("required", []) if name not in node_input and name not in linked]
    problems += [Problem(node.id, f"input.{name}", f"{where}: required input {name!r} is neither set nor fed by a link")
                 for name in missing]
    problems += schema_problems(schema, node_input, where=where, optional=linked | set(missing), node=node.id)
    return problems


def _dependency_order(nodes: list[Node], links: list[Link]) -> tuple[list[Node], list[Problem]]:
    """Nodes with every upstream node first (listing order among equals), or the cycle that prevents it."""
    downstream: dict[str, list[str]] = {node.id: [] for node in nodes}
    waiting_on = {node.id: 0 for node in nodes}
    for link in {(link.source, link.target) for link in links}:
        downstream[link[0]].append(link[1])
        waiting_on[link[1]] += 1
    by_id = {node.id: node for node in nodes}
    ordered: list[Node] = []
    ready = [node.id for node in nodes if waiting_on[node.id] == 0]
    while ready:
        node_id = ready.pop(0)
        ordered.append(by_id[node_id])
        for target in downstream[node_id]:
            waiting_on[target] -= 1
            if waiting_on[target] == 0:
                ready.append(target)
        ready.sort(key=lambda name: nodes.index(by_id[name]))
    if len(ordered) == len(nodes):
        return ordered, []
    cycle = _find_cycle(downstream, waiting_on)
    return ordered, [Problem(cycle[0], "links", f"the links make a cycle: {' → '.join(cycle)}")]


def _find_cycle(downstream: dict[str, list[str]], waiting_on: dict[str, int]) -> list[str]:
    """A cycle among the nodes left unordered. Each waits on another of them, so walking upstream must loop."""
    stuck = {node_id for node_id, count in waiting_on.items() if count > 0}
    upstream: dict[str, list[str]] = {node_id: [] for node_id in stuck}
    for source, targets in downstream.items():
        for target in targets:
            if source in stuck and target in stuck:
                upstream[target].append(source)
    path = [min(stuck)]
    while True:
        node_id = min(upstream[path[-1]])
        if node_id in path:
            cycle = path[path.index(node_id):] + [node_id]
            return list(reversed(cycle))
        path.append(node_id)


def check_graph(raw: Any) -> Graph:
    """The graph, checked; raises GraphError listing every problem found."""
    problems = _check_shape(raw)
    if problems:
        raise GraphError(problems)
    nodes, problems = _parse_nodes(raw["nodes"])
    if problems:
        # Links cannot be checked against nodes that are missing, but the inputs of the others still can.
        loose = [Link(source=link["from"], output=link["output"], target=link["to"], input=link["input"])
                 for link in raw.get("links", []) if _is_link(link)]
        for node in nodes:
            problems += _input_problems(node, node.input, [link for link in loose if link.target == node.id],
                                        where=f"node {node.id!r} ({node.block.name})")
        raise GraphError(problems)
    by_id = {node.id: node for node in nodes}
    links, problems = _parse_links(raw.get("links", []), by_id)
    for node in nodes:
        problems += _input_problems(node, node.input, [link for link in links if link.target == node.id],
                                    where=f"node {node.id!r} ({node.block.name})")
    ordered, cycle = _dependency_order(nodes, links)
    problems += cycle
    if problems:
        raise GraphError(problems)
    incoming: dict[str, list[Link]] = {}
    for link in links:
        incoming.setdefault(link.target, []).append(link)
    return Graph(nodes=ordered, links=links, _incoming=incoming)


def check_run_inputs(graph: Graph, raw: Any) -> dict[str, dict[str, Any]]:
    """A run's inputs, `{node id: {input: value}}` laid over the nodes' own; raises InputsError."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputsError([f"inputs must be an object of node ids to inputs, not {json_kind(raw)}"])
    try:
        if len(json.dumps(raw)) > MAX_GRAPH_CHARS or has_nul(raw):
            raise InputsError([f"inputs: at most {MAX_GRAPH_CHARS:,} characters as JSON, and no NUL characters"])
    except (TypeError, ValueError, RecursionError):
        raise InputsError(["inputs: not plain JSON data"]) from None
    problems = []
    node_ids = [node.id for node in graph.nodes]
    for node_id, node_inputs in raw.items():
        if node_id not in node_ids:
            problems.append(Problem(None, f"inputs.{node_id}",
                                    f"inputs: no node {node_id!r}; the nodes are {', '.join(node_ids)}"))
            continue
        if not isinstance(node_inputs, dict):
            problems.append(Problem(node_id, "inputs", f"inputs.{node_id}: must be an object of input names to "
                                                         f"values, not {json_kind(node_inputs)}"))
            continue
        node, links = graph.node(node_id), graph.incoming(node_id)
        fed = {link.input for link in links}
        problems += [Problem(node_id, f"input.{name}", f"inputs.{node_id}.{name}: fed by a link, so a run cannot "
                                                       "set it") for name in node_inputs if name in fed]
        problems += _input_problems(node, {**node.input, **node_inputs}, links, where=f"inputs.{node_id}")
    if problems:
        raise InputsError(problems)
    return raw


def resolve_input(node: Node, run_input: dict[str, Any], links: list[Link],
                  outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A node's input as its block gets it: its own, the run's over it, then each link's value."""
    resolved = copy.deepcopy({**node.input, **run_input})
    for link in links:
        source_output = outputs[link.source]
        if not isinstance(source_output, dict) or link.output not in source_output:
            raise BlockError(f"node {link.source!r} gave no output {link.output!r} for {link.describe()}")
        holder = resolved
        for step in link.path[:-1]:
            if not isinstance(holder.get(step), dict):
                holder[step] = {}
            holder = holder[step]
        holder[link.path[-1]] = copy.deepcopy(source_output[link.output])
    return resolved


def saved_form(raw: dict[str, Any]) -> dict[str, Any]:
    """A checked graph as it is saved: as given, with an empty input and links where they were left out."""
    return {"nodes": [{"id": node["id"], "block": node["block"], "input": node.get("input", {})}
                      for node in raw["nodes"]],
            "links": [dict(link) for link in raw.get("links", [])]}


def sink_ids(saved: dict[str, Any]) -> list[str]:
    """The ids of a saved graph's nodes that no link leaves: their outputs are a run's outputs."""
    sources = {link["from"] for link in saved.get("links", [])}
    return [node["id"] for node in saved["nodes"] if node["id"] not in sources]


def declared_inputs(saved: dict[str, Any], descriptions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What a run of this saved graph may set (PROTOCOL §10 "Inputs"): each input of each node that no link feeds
    whole, as `{node, input, type, description, default?}` (`default`: the node's own value, when it has one).

    `descriptions` ("node.input" → text) say what an input means here, over its block's own description.
    """
    descriptions = descriptions or {}
    fed = {(link["to"], link["input"]) for link in saved.get("links", [])}
    declared = []
    for node in saved["nodes"]:
        try:
            block = get_block(node["block"])
        except BlockError:
            continue
        for name, schema in (block.input_schema.get("properties") or {}).items():
            if (node["id"], name) in fed:
                continue
            kind = schema.get("type") if isinstance(schema.get("type"), str) else "any"
            entry = {"node": node["id"], "input": name, "type": kind,
                     "description": descriptions.get(f"{node['id']}.{name}", schema.get("description", ""))}
            if name in node.get("input", {}):
                entry["default"] = node["input"][name]
            declared.append(entry)
    return declared
