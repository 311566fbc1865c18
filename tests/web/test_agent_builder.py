"""The visual builder in a real browser: build a three-node agent (a link drawn with the pointer, one added from
the keyboard), see its problems as you edit, save it, run it and see its outputs; edit it into a new version; view
it on a phone-width screen."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from agents.actions import do_create_agent
from agents.models import Agent, AgentVersion
from tests.agents.conftest import (  # noqa: F401  (fixtures, used below)
    agents_worker,
    greeting_pipeline,
    library,
    two_waits_and_a_join,
)
from tests.agents.test_webhooks_live import CURL_RECIPE
from tests.factories import make_user
from tests.web.test_chat_page import SCREENSHOTS, log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def node_box(page, block: str, nth: int = 0):
    return page.locator(f".drawflow-node.block-{block}").nth(nth)


def test_build_save_run_and_see_the_outputs(agents_worker, daphne_server, page):  # noqa: F811
    user = make_user(portable=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, daphne_server, user.username)
    page.goto(f"{daphne_server.http_url}/agents/new/")
    expect(page.locator("#builder")).to_have_attribute("aria-busy", "false")
    palette = page.locator("#palette")
    expect(palette.get_by_role("button", name="Add a calculator block")).to_contain_text("arithmetic expression")

    # 1. text: builds the expression.
    palette.get_by_role("button", name="Add a text block").click()
    page.get_by_label("template (required)").fill("2 + 3")
    expect(page.locator("#problems")).to_contain_text("No problems")
    # 2. calculator: its expression is required, and nothing gives it yet.
    palette.get_by_role("button", name="Add a calculator block").click()
    expect(page.locator("#problems")).to_contain_text("required input 'expression' is neither set nor fed by a link")
    expect(node_box(page, "calculator")).to_have_class(re.compile("has-problem"))
    # A link from the keyboard: text_1.text → calculator_1.expression.
    page.locator("#link-from").select_option("text_1|text")
    page.locator("#link-to").select_option("calculator_1")
    page.get_by_label("Input (a name, or a path like values.name)").fill("expression")
    page.get_by_role("button", name="Add link").click()
    expect(page.locator("#links")).to_contain_text("text_1.text → calculator_1.expression")
    expect(page.locator("#problems")).to_contain_text("No problems")
    expect(node_box(page, "calculator")).not_to_have_class(re.compile("has-problem"))
    # 3. text: says the sum; its `values` fed by a link drawn with the pointer.
    palette.get_by_role("button", name="Add a text block").click()
    page.get_by_label("template (required)").fill("Sum: {calculator_1}")
    node_box(page, "calculator").locator(".output_1").drag_to(node_box(page, "text", 1).locator(".input_2"))
    expect(page.locator("#links")).to_contain_text("calculator_1.result → text_2.values.calculator_1")
    expect(page.locator("#problems")).to_contain_text("No problems")
    expect(page.locator(".drawflow .connection")).to_have_count(2)

    page.get_by_label("Name", exact=True).fill("adder")
    page.get_by_label("Description", exact=True).fill("adds two and three")
    node_box(page, "calculator").click()
    page.screenshot(path=f"{SCREENSHOTS}/agent-builder.png")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile("adder"))).to_be_visible()
    agent = Agent.objects.get(owner=user, name="adder")
    assert AgentVersion.objects.get(agent=agent).graph == {
        "nodes": [{"id": "text_1", "block": "text", "input": {"template": "2 + 3"}},
                  {"id": "calculator_1", "block": "calculator", "input": {}},
                  {"id": "text_2", "block": "text", "input": {"template": "Sum: {calculator_1}"}}],
        "links": [{"from": "text_1", "output": "text", "to": "calculator_1", "input": "expression"},
                  {"from": "calculator_1", "output": "result", "to": "text_2", "input": "values.calculator_1"}]}

    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run").first).to_contain_text("Sum: 5", timeout=60_000)  # the page follows the run
    expect(page.locator(".run .status").first).to_have_text("completed")
    expect(page.locator(".run .node-timeline rect")).to_have_count(3)


def test_a_runs_nodes_show_as_a_timeline(agents_worker, daphne_server, page):  # noqa: F811
    user = make_user(portable=True)
    agent = do_create_agent(owner_id=user.pk, name="two waits", description="waits side by side, then joins",
                            graph=two_waits_and_a_join(0.5))
    log_in(page, daphne_server, user.username)
    page.goto(f"{daphne_server.http_url}/agents/{agent.id}/")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run .status").first).to_have_text("completed", timeout=60_000)
    bars = page.locator(".run").first.locator(".node-timeline rect")
    expect(bars).to_have_count(3)
    left, right, join = (float(bars.nth(index).get_attribute("x")) for index in range(3))
    widths = [float(bars.nth(index).get_attribute("width")) for index in range(3)]
    assert join >= left + widths[0] - 1 and join >= right + widths[1] - 1  # the join starts when both waits end
    assert abs(left - right) < widths[0] / 2  # the waits ran side by side
    expect(page.locator(".run-history")).to_contain_text("page")
    page.locator("#monitoring").screenshot(path=f"{SCREENSHOTS}/agent-monitoring.png")
    page.locator(".run").first.screenshot(path=f"{SCREENSHOTS}/agent-run-timeline.png")


def test_editing_saves_a_new_version_and_the_keyboard_reaches_everything(daphne_server, page):
    user = make_user(portable=True)
    agent = do_create_agent(owner_id=user.pk, name="greeter", graph=greeting_pipeline())
    log_in(page, daphne_server, user.username)
    page.goto(f"{daphne_server.http_url}/agents/{agent.id}/edit/")
    expect(page.locator(".drawflow-node")).to_have_count(5)
    expect(page.locator(".drawflow .connection")).to_have_count(2)
    expect(page.get_by_label("Name", exact=True)).to_have_value("greeter")
    # The keyboard: a node from the list, a field of it, a bad value, its problem named on the field.
    page.locator("#node-list").get_by_role("button", name="sum (calculator)").focus()
    page.keyboard.press("Enter")
    field = page.get_by_label("expression (required)")
    expect(field).to_have_value("20 + 22")
    field.focus()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")  # in a field, Delete edits the text: the node stays
    expect(page.locator(".drawflow-node")).to_have_count(5)
    expect(page.locator("#problems")).to_contain_text("node 'sum' (calculator): required input 'expression'")
    expect(page.locator("#inspector .field-problem").first).to_contain_text("required input 'expression'")
    page.keyboard.type("6 * 7")
    expect(page.locator("#problems")).to_contain_text("No problems")
    page.locator("#palette").get_by_role("button", name="Add a wait block").focus()
    page.keyboard.press("Enter")
    page.get_by_label("seconds (required)").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#save-status")).to_have_text("Saved version 2.")
    saved = AgentVersion.objects.get(agent=agent, number=2).graph
    assert {node["id"]: node["input"] for node in saved["nodes"]}["sum"] == {"expression": "6 * 7"}
    assert saved["nodes"][-1] == {"id": "wait_1", "block": "wait", "input": {"seconds": 0}}
    # Saving a graph with problems is refused with the same problems.
    page.locator("#node-list").get_by_role("button", name="wait_1 (wait)").click()
    page.get_by_label("seconds (required)").fill("-5")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    expect(page.locator("#problems")).to_contain_text("-5 is less than the minimum of 0")
    assert AgentVersion.objects.filter(agent=agent).count() == 2


def test_the_builder_is_viewable_on_a_phone(daphne_server, browser):
    user = make_user(portable=True)
    agent = do_create_agent(owner_id=user.pk, name="greeter", graph=greeting_pipeline())
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        log_in(page, daphne_server, user.username)
        page.goto(f"{daphne_server.http_url}/agents/{agent.id}/edit/")
        expect(page.locator(".drawflow-node")).to_have_count(5)
        expect(page.locator("#canvas")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        canvas = page.locator("#canvas").bounding_box()
        assert canvas["width"] <= 390 and canvas["height"] > 200
        expect(page.locator("#problems")).to_contain_text("No problems")
    finally:
        context.close()


def test_a_new_user_installs_changes_schedules_triggers_and_watches_an_agent(agents_worker, library, daphne_server,  # noqa: F811
                                                                              page):
    """The whole way, from the pages: the library, the builder, a schedule, a webhook triggered by curl, the runs."""
    user = make_user(portable=True)
    log_in(page, daphne_server, user.username)
    page.goto(f"{daphne_server.http_url}/agents/")
    expect(page.locator(".agents-table")).to_contain_text("No agents yet")
    page.get_by_role("link", name="Library").first.click()
    expect(page.locator(".library-entry")).to_have_count(7)
    page.screenshot(path=f"{SCREENSHOTS}/agent-library.png", full_page=True)
    page.get_by_role("button", name="Install Celsius to Fahrenheit").click()
    expect(page.locator(".notices")).to_contain_text("Installed 'Celsius to Fahrenheit'")

    page.get_by_role("link", name="Edit in the builder").click()
    expect(page.locator(".drawflow-node")).to_have_count(3)
    page.locator("#node-list").get_by_role("button", name="formula (text)").click()
    page.locator("#field-formula-values").fill('{"celsius": 100}')
    expect(page.locator("#problems")).to_contain_text("No problems")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#save-status")).to_have_text("Saved version 2.")
    page.get_by_role("link", name="Back to the agent").click()

    page.get_by_label("Cron").fill("0 8 * * 1-5")
    page.get_by_label("Timezone").fill("Europe/Paris")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.locator(".schedule-list")).to_contain_text("Europe/Paris")
    expect(page.locator(".schedule-list .next-run")).to_have_count(1)

    page.get_by_role("button", name="Add webhook").click()
    notice = page.locator(".notices").inner_text()
    secret = re.search(r"shown this once: (\S+)", notice).group(1)
    url = page.locator(".webhook-url").inner_text()
    done = subprocess.run(["bash", "-c", f"ts=$(date +%s)\n{CURL_RECIPE}"], capture_output=True, text=True,
                          timeout=30, check=True, env={"URL": url, "SECRET": secret, "body": "{}",
                                                       "PATH": "/usr/bin:/bin"})
    assert done.stdout.endswith(" 202"), done.stdout
    page.reload()  # the run the webhook queued: the page follows it to its end
    expect(page.locator(".run").first).to_contain_text("212.0 °F", timeout=60_000)
    expect(page.locator(".run-history")).to_contain_text("webhook")
    expect(page.locator(".run-history .status").first).to_have_text("completed", timeout=60_000)
    expect(page.locator("#chart-desc")).to_have_text("1 completed")
