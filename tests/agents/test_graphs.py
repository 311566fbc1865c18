"""Agent graphs are checked before they are saved or run: every problem is named, nothing runs that cannot."""

from __future__ import annotations

import pytest

from agents.blocks import BlockError, get_block
from agents.graphs import GraphError, InputsError, check_graph, check_run_inputs, resolve_input
from tests.agents.conftest import greeting_pipeline, two_waits_and_a_join


def problems_of(graph) -> list[str]:
    with pytest.raises(GraphError) as refused:
        check_graph(graph)
    return refused.value.problems


def node(node_id, block, **block_input):
    return {"id": node_id, "block": block, "input": block_input}


def link(source, output, target, target_input):
    return {"from": source, "output": output, "to": target, "input": target_input}


def test_a_valid_graph_orders_its_nodes_upstream_first():
    graph = check_graph({"nodes": [node("b", "text"), node("a", "text", template="hi")],
                         "links": [link("a", "text", "b", "template")]})
    assert [n.id for n in graph.nodes] == ["a", "b"]
    assert graph.upstream("b") == ["a"] and graph.sinks() == ["b"]


def test_a_graph_listed_upstream_first_keeps_its_order():
    graph = check_graph(greeting_pipeline())
    assert [n.id for n in graph.nodes] == ["greet", "sum", "sentence", "doubled", "pick"]
    assert set(graph.sinks()) == {"sentence", "doubled", "pick"}
    assert check_graph(two_waits_and_a_join()).upstream("join") == ["left", "right"]


def test_links_may_be_left_out_and_inputs_too_when_nothing_is_required():
    graph = check_graph({"nodes": [node("w", "wait", seconds=0)]})
    assert graph.links == [] and graph.sinks() == ["w"]


@pytest.mark.parametrize(("graph", "expected"), [
    ([], "a graph is an object with nodes and links, not a list"),
    ({"nodes": []}, "graph: nodes must be a non-empty list"),
    ({"nodes": [node("a", "text", template="x")], "links": {}}, "graph: links must be a list"),
    ({"nodes": [node("a", "text", template="x")], "edges": []}, "graph: unknown key 'edges'"),
    ({"nodes": [node("a", "text", template="x")] * 51}, "graph: at most 50 nodes (51 given)"),
    ({"nodes": ["a"]}, "nodes[0]: a node is an object with id, block and input, not a string"),
    ({"nodes": [{"id": "has space", "block": "text"}]}, "nodes[0]: id must be 1 to 64 letters"),
    ({"nodes": [node("a", "text", template="x"), node("a", "text", template="y")]},
     "node 'a': the id is used by another node"),
    ({"nodes": [{"id": "a", "block": "text", "input": "x"}]}, "node 'a': input must be an object, not a string"),
    ({"nodes": [{"id": "a", "block": "text", "inputs": {}}]}, "node 'a': unknown key 'inputs'"),
    ({"nodes": [node("a", "text", template="nul \x00 here")]}, "graph: text may not contain NUL characters"),
])
def test_malformed_graphs_say_what_is_wrong(graph, expected):
    assert any(expected in problem for problem in problems_of(graph)), problems_of(graph)


def test_an_unknown_block_is_named_with_the_known_ones():
    [problem] = problems_of({"nodes": [node("a", "summarise", text="x")]})
    assert problem.startswith("node 'a': unknown block 'summarise'; known blocks: calculator, http_get")


def test_a_required_input_nobody_gives_is_missing():
    [problem] = problems_of({"nodes": [node("a", "text", values={})]})
    assert problem == "node 'a' (text): required input 'template' is neither set nor fed by a link"


def test_a_linked_input_is_not_missing():
    check_graph({"nodes": [node("a", "text", template="x"), node("b", "llm")],
                 "links": [link("a", "text", "b", "prompt")]})


def test_inputs_that_fail_their_block_schema_are_refused():
    problems = problems_of({"nodes": [node("w", "wait", seconds=-1), node("t", "text", template=3),
                                      node("c", "calculator", expression="1", precision=2)]})
    assert "node 'w' (wait): input.seconds: -1 is less than the minimum of 0" in problems
    assert "node 't' (text): input.template: 3 is not of type 'string'" in problems
    assert any("node 'c' (calculator): block 'calculator' has no input 'precision'" in p for p in problems)


def test_links_between_unknown_nodes_outputs_or_inputs():
    problems = problems_of({"nodes": [node("a", "text", template="x"), node("b", "text", template="y")],
                            "links": [link("a", "text", "ghost", "template"), link("a", "words", "b", "values.w"),
                                      link("a", "text", "b", "tempo"), link("a", "text", "a", "values.x"),
                                      {"from": "a", "to": "b"}]})
    assert "link a.text → ghost.template: no node 'ghost'" in problems
    assert "link a.words → b.values.w: block 'text' has no output 'words'; its outputs are text" in problems
    assert "link a.text → b.tempo: block 'text' has no input 'tempo'; its inputs are template, values" in problems
    assert "link a.text → a.values.x: a node cannot feed itself" in problems
    assert "links[4]: a link is an object of four strings: from, output, to, input" in problems


def test_a_type_mismatch_between_an_output_and_an_input():
    [problem] = problems_of({"nodes": [node("w", "wait", seconds=1), node("t", "text")],
                             "links": [link("w", "seconds", "t", "template")]})
    assert problem == ("link w.seconds → t.template: type mismatch: 'seconds' of 'wait' is a number, "
                       "but 'template' of 'text' takes a string")


def test_an_integer_feeds_a_number_and_anything_goes_into_an_object_input():
    check_graph({"nodes": [node("c", "calculator", expression="1"), node("w", "wait"),
                           node("t", "text", template="{n}")],
                 "links": [link("c", "result", "w", "seconds"), link("c", "result", "t", "values.n")]})


def test_a_dotted_path_only_goes_into_an_object_input():
    [problem] = problems_of({"nodes": [node("a", "text", template="x"), node("b", "text")],
                             "links": [link("a", "text", "b", "template.inner")]})
    assert "input 'template' of 'text' is a string, so a dotted path cannot go into it" in problem


def test_an_input_set_twice_is_refused():
    problems = problems_of({"nodes": [node("a", "text", template="x"), node("b", "text", template="x"),
                                      node("c", "text", template="{v}", values={"v": 1})],
                            "links": [link("a", "text", "c", "values.v"), link("b", "text", "c", "values.v")]})
    assert "link a.text → c.values.v: c.values.v is also set in the node's input; keep one of the two" in problems
    assert "link b.text → c.values.v: c.values.v is already fed by a.text → c.values.v" in problems


def test_a_cycle_is_named():
    problems = problems_of({"nodes": [node("a", "text"), node("b", "text"), node("c", "text"),
                                      node("after", "text")],
                            "links": [link("a", "text", "b", "template"), link("b", "text", "c", "template"),
                                      link("c", "text", "a", "template"), link("c", "text", "after", "template")]})
    assert problems == ["the links make a cycle: a → b → c → a"]


def test_every_problem_is_reported_at_once():
    problems = problems_of({"nodes": [node("w", "wait", seconds="soon"), node("t", "text")],
                            "links": [link("w", "seconds", "t", "template")]})
    assert len(problems) == 2


def test_run_inputs_are_laid_over_the_nodes_own_and_checked():
    graph = check_graph(two_waits_and_a_join())
    assert check_run_inputs(graph, {"left": {"seconds": 0}}) == {"left": {"seconds": 0}}
    assert check_run_inputs(graph, None) == {}
    for inputs, expected in [
        ([], "inputs must be an object of node ids to inputs, not a list"),
        ({"middle": {}}, "inputs: no node 'middle'; the nodes are left, right, join"),
        ({"left": 3}, "inputs.left: must be an object of input names to values, not a number"),
        ({"left": {"seconds": -2}}, "inputs.left: input.seconds: -2 is less than the minimum of 0"),
        ({"join": {"values.l": 1}}, "inputs.join.values.l: fed by a link, so a run cannot set it"),
        ({"left": {"minutes": 1}}, "inputs.left: block 'wait' has no input 'minutes'"),
        ({"join": {"template": "\x00"}}, "inputs: at most 200,000 characters as JSON, and no NUL characters"),
    ]:
        with pytest.raises(InputsError) as refused:
            check_run_inputs(graph, inputs)
        assert refused.value.code == "bad_inputs"
        assert any(expected in problem for problem in refused.value.problems), refused.value.problems


def test_resolve_input_applies_run_inputs_then_links():
    graph = check_graph(greeting_pipeline())
    sentence = graph.node("sentence")
    resolved = resolve_input(sentence, {"template": "{greeting}! {n}"}, graph.incoming("sentence"),
                             {"greet": {"text": "Hi"}, "sum": {"result": 42}})
    assert resolved == {"template": "{greeting}! {n}", "values": {"greeting": "Hi", "n": 42}}
    assert sentence.input == {"template": "{greeting}, the answer is {n}."}  # the saved graph is untouched
    with pytest.raises(BlockError, match="node 'greet' gave no output 'text'"):
        resolve_input(sentence, {}, graph.incoming("sentence"), {"greet": {}, "sum": {"result": 1}})


def test_graph_errors_are_application_errors_with_a_code():
    with pytest.raises(GraphError) as refused:
        check_graph({"nodes": [node("a", "nope")]})
    assert refused.value.code == "bad_graph" and refused.value.http_status == 400
    assert "unknown block 'nope'" in refused.value.message
    assert get_block("text").name == "text"
