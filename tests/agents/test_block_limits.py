"""Blocks cannot exhaust the server: the text block's placeholders, the output cap, and what links bring a node."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from agents.blocks import BlockError, run_block
from agents.copilot_tools import run_block_tool
from agents.executor import execute_run
from agents.models import NodeStatus, RunStatus
from tests.agents.conftest import create_agent, start_run, wait_for_run
from tests.agents.test_more_blocks import LocalSite
from tests.agents.test_runs import queued_run, run_and_nodes

ALLOWED = "a placeholder is a plain name, like {name}, with no !conversion and no :format spec"


def with_cap(settings, cap: int, **extra) -> None:
    settings.COPILOT = {**settings.COPILOT, "BLOCK_MAX_OUTPUT_BYTES": cap, **extra}


@dataclass
class Peak:
    bytes: int = 0


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """The most memory Python had allocated at once (beyond what it held before) while the block ran."""
    peak = Peak()
    tracemalloc.start()
    try:
        yield peak
        peak.bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- the text block: plain names only ---


@pytest.mark.parametrize(("template", "refused"), [
    ("{a:>300000000}", "the placeholder '{a:>300000000}' has a format spec"),
    ("x{a:,>99999999}y", "the placeholder '{a:,>99999999}' has a format spec"),
    ("{a:{w}}", "the placeholder '{a:{w}}' has a format spec"),  # a nested field
    ("{a!r}", "the placeholder '{a!r}' has a conversion"),
    ("{a!s:^99999}", "the placeholder '{a!s:^99999}' has a conversion"),
    ("{a.__class__}", "the placeholder '{a.__class__}' is not a plain name"),
    ("{a[0]}", "the placeholder '{a[0]}' is not a plain name"),
    ("{0}", "the placeholder '{0}' is not a plain name"),
    ("{}", "the placeholder '{}' is not a plain name"),
])
async def test_text_refuses_placeholders_that_are_not_plain_names(template, refused):
    with pytest.raises(BlockError) as caught:
        await run_block("text", {"template": template, "values": {"a": "x", "w": "300000000"}})
    assert str(caught.value) == f"text: {refused}; {ALLOWED} ({{{{ and }}}} are braces)"


async def test_text_keeps_doubled_braces_literal_and_fills_repeated_names():
    result = await run_block("text", {"template": "{{a}} is {a}, {a} again; {{{b}}}", "values": {"a": 1, "b": "B"}})
    assert result == {"text": "{a} is 1, 1 again; {B}"}


async def test_text_refuses_a_text_over_the_cap_before_building_it():
    block_input = {"template": "{a}" * 1_000, "values": {"a": "x" * 2_000}}  # 3,000 characters for 2,000,000
    with peak_memory() as peak, pytest.raises(BlockError) as caught:
        await run_block("text", block_input)
    assert str(caught.value) == ("text: the text would be 2,000,000 characters, more than BLOCK_MAX_OUTPUT_BYTES "
                                 "(1,000,000) allows; use fewer or shorter placeholders")
    assert peak.bytes < 1_000_000  # the 2 MB text was never built


async def test_a_text_that_fits_the_cap_is_made_and_one_byte_more_is_not(settings):
    with_cap(settings, 1_012)
    result = await run_block("text", {"template": "{a}" * 10, "values": {"a": "y" * 100}})
    assert len(json.dumps(result)) == 1_012  # {"text": "..."} around 1,000 characters
    # 1,001 characters pass the block's own check; their JSON does not pass the cap.
    with pytest.raises(BlockError, match=r"^text: the block's output is 1,013 bytes as JSON"):
        await run_block("text", {"template": "{a}" * 10 + "!", "values": {"a": "y" * 100}})


# --- every block's output is capped, in one place ---


async def test_an_output_over_the_cap_is_refused_with_its_size(settings):
    data = {"rows": ["r" * 1_000] * 3_400}
    size = len(json.dumps({"value": data}))
    assert size > 3_400_000
    with pytest.raises(BlockError) as caught:
        await run_block("json_extract", {"data": data, "path": ""})
    assert str(caught.value) == (f"json_extract: the block's output is {size:,} bytes as JSON, "
                                 "more than BLOCK_MAX_OUTPUT_BYTES (1,000,000)")


async def test_the_cap_is_a_setting_that_holds_for_every_block(settings):
    with_cap(settings, 200)
    with pytest.raises(BlockError, match=r"^calculator: the block's output is 314 bytes as JSON, "
                                         r"more than BLOCK_MAX_OUTPUT_BYTES \(200\)$"):
        await run_block("calculator", {"expression": "2 ** 1000"})
    exactly = {"value": "v" * 187}
    assert len(json.dumps(exactly)) == 200
    assert await run_block("json_extract", {"data": {"k": "v" * 187}, "path": "k"}) == exactly
    with pytest.raises(BlockError, match=r"^json_extract: the block's output is 201 bytes as JSON"):
        await run_block("json_extract", {"data": {"k": "v" * 188}, "path": "k"})


async def test_the_cap_defaults_to_a_million_bytes():
    from django.conf import settings as django_settings

    assert django_settings.COPILOT["BLOCK_MAX_OUTPUT_BYTES"] == 1_000_000


@pytest.mark.parametrize(("data", "refused"), [
    ("[NaN]", "NaN is not a JSON number"), ('{"a": Infinity}', "Infinity is not a JSON number"),
    ("1" * 5_000, "4300 digits"),
])
async def test_json_extract_refuses_data_that_is_not_json(data, refused):
    with pytest.raises(BlockError, match=f"json_extract: data is a string that is not JSON: .*{refused}"):
        await run_block("json_extract", {"data": data, "path": ""})


async def test_through_the_copilot_tool_a_large_output_is_a_tool_error(settings):
    with_cap(settings, 200)
    refused = await run_block_tool.handler({"block": "calculator", "input": {"expression": "2 ** 1000"}})
    assert refused == {"content": [{"type": "text", "text": "calculator: the block's output is 314 bytes as JSON, "
                                    "more than BLOCK_MAX_OUTPUT_BYTES (200)"}], "is_error": True}
    ok = await run_block_tool.handler({"block": "calculator", "input": {"expression": "2 ** 10"}})
    assert ok["is_error"] is False and json.loads(ok["content"][0]["text"]) == {"result": 1024}


async def test_http_get_cuts_its_text_to_fit_the_cap(settings):
    site = LocalSite()
    await site.start()
    try:
        with_cap(settings, 5_000, HTTP_GET_ALLOWED_HOSTS=[site.entry], HTTP_GET_MAX_BYTES=10_000)
        result = await run_block("http_get", {"url": site.url("/big")})  # 5,000 × "é": 30,000 bytes as JSON
    finally:
        await site.stop()
    assert result["truncated"] is True and result["status"] == 200
    assert 4_990 <= len(json.dumps(result)) <= 5_000
    assert set(result["text"]) == {"é"} and len(result["text"]) > 800


# --- agent runs: the same cap, and what links bring a node ---

runs = pytest.mark.django_db(transaction=True)


def extract(node_id: str, data) -> dict:
    return {"id": node_id, "block": "json_extract", "input": {"data": data, "path": ""}}


def link(source: str, output: str, target: str, target_input: str) -> dict:
    return {"from": source, "output": output, "to": target, "input": target_input}


@runs
@pytest.mark.usefixtures("relay_stopped")
async def test_a_node_over_the_cap_fails_the_run_cleanly(settings):
    with_cap(settings, 10_000)
    graph = {"nodes": [extract("big", {"rows": ["r" * 100] * 120}), {"id": "after", "block": "text",
                                                                     "input": {"template": "{x}"}},
                       {"id": "other", "block": "calculator", "input": {"expression": "6 * 7"}}],
             "links": [link("big", "value", "after", "values.x")]}
    size = len(json.dumps({"value": {"rows": ["r" * 100] * 120}}))
    run, _ = await queued_run(graph)
    assert await execute_run(run.id) == RunStatus.FAILED
    run, nodes = await run_and_nodes(run.id)
    error = f"json_extract: the block's output is {size:,} bytes as JSON, more than BLOCK_MAX_OUTPUT_BYTES (10,000)"
    assert run.error == f"node 'big' (json_extract) failed: {error}"
    assert (nodes["big"].status, nodes["big"].error, nodes["big"].output) == (NodeStatus.FAILED, error, None)
    assert nodes["after"].status == NodeStatus.SKIPPED and nodes["other"].status == NodeStatus.COMPLETED
    assert run.outputs == {"other": {"result": 42}}


@runs
@pytest.mark.usefixtures("relay_stopped")
async def test_one_large_output_may_feed_many_nodes(settings):
    with_cap(settings, 10_000)
    page = "p" * 9_000
    graph = {"nodes": [{"id": "page", "block": "text", "input": {"template": page}},
                       *({"id": f"use{i}", "block": "text", "input": {"template": "{p}"}} for i in range(10))],
             "links": [link("page", "text", f"use{i}", "values.p") for i in range(10)]}
    run, _ = await queued_run(graph)
    assert await execute_run(run.id) == RunStatus.COMPLETED
    run, nodes = await run_and_nodes(run.id)
    assert run.outputs == {f"use{i}": {"text": page} for i in range(10)}
    assert all(nodes[f"use{i}"].input == {"template": "{p}", "values": {"p": page}} for i in range(10))


@runs
@pytest.mark.usefixtures("relay_stopped")
async def test_links_may_not_bring_a_node_more_than_one_output_may_be(settings):
    with_cap(settings, 10_000)
    graph = {"nodes": [{"id": "left", "block": "text", "input": {"template": "l" * 6_000}},
                       {"id": "right", "block": "text", "input": {"template": "r" * 6_000}},
                       {"id": "join", "block": "text", "input": {"template": "{l}"}}],
             "links": [link("left", "text", "join", "values.l"), link("right", "text", "join", "values.r")]}
    run, _ = await queued_run(graph)
    assert await execute_run(run.id) == RunStatus.FAILED
    run, nodes = await run_and_nodes(run.id)
    brought = 2 * len(json.dumps("l" * 6_000))
    assert nodes["join"].error == (f"bad input, not run: what its links bring is {brought:,} bytes as JSON, "
                                   "more than BLOCK_MAX_OUTPUT_BYTES (10,000)")
    assert nodes["join"].status == NodeStatus.FAILED and nodes["join"].started_at is None
    assert nodes["join"].input is None  # refused before the input was put together


@runs
@pytest.mark.usefixtures("relay_stopped")
async def test_a_chain_that_doubles_stops_at_the_cap(settings):
    with_cap(settings, 10_000)
    nodes = [{"id": "n0", "block": "text", "input": {"template": "x" * 1_000}}]
    links = []
    for step in range(1, 6):  # 2,000, 4,000, 8,000, then 16,000 characters: refused
        nodes.append({"id": f"n{step}", "block": "text", "input": {"template": "{a}{a}"}})
        links.append(link(f"n{step - 1}", "text", f"n{step}", "values.a"))
    run, _ = await queued_run({"nodes": nodes, "links": links})
    assert await execute_run(run.id) == RunStatus.FAILED
    run, saved = await run_and_nodes(run.id)
    assert [saved[f"n{i}"].status for i in range(6)] == [NodeStatus.COMPLETED] * 4 + [NodeStatus.FAILED,
                                                                                   NodeStatus.SKIPPED]
    assert saved["n4"].error == ("text: the text would be 16,000 characters, more than BLOCK_MAX_OUTPUT_BYTES "
                                 "(10,000) allows; use fewer or shorter placeholders")


@runs
@pytest.mark.e2e
def test_a_worker_process_applies_the_cap_from_its_environment(start_worker, api):
    start_worker(COPILOT_BLOCK_MAX_OUTPUT_BYTES="1000")
    graph = {"nodes": [{"id": "wide", "block": "text", "input": {"template": "{a}{a}", "values": {"a": "w" * 600}}},
                       {"id": "fine", "block": "text", "input": {"template": "{a}", "values": {"a": "w" * 600}}}]}
    run = wait_for_run(start_run(api, create_agent(api, graph)))
    assert run.status == RunStatus.FAILED
    assert run.error == ("node 'wide' (text) failed: text: the text would be 1,200 characters, more than "
                         "BLOCK_MAX_OUTPUT_BYTES (1,000) allows; use fewer or shorter placeholders")
    assert run.outputs == {"fine": {"text": "w" * 600}}
