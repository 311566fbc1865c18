"""The staff dashboard in a real browser (Chromium via Playwright) against a real daphne process: a day of turns
drawn as charts under the site's Content-Security-Policy; the README's screenshots."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import TurnStatus
from ops.selectors import WINDOWS
from tests.factories import PASSWORD, make_session, make_user
from tests.ops.test_dashboard import turn_at
from tests.web.test_chat_page import SCREENSHOTS
from tests.web.test_content_security_policy import LISTEN_FOR_VIOLATIONS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

TOOLS = ["mcp__copilot__run_block", "mcp__copilot__list_blocks", "mcp__copilot__run_agent", "Read", "Write"]
CHARTS = ["chart-turns", "chart-ttft", "chart-duration", "chart-tools", "chart-failures", "chart-users"]


def a_day_of_work(now) -> int:
    """Turns of eight people over the last day, busier in the afternoon, some failing; returns how many."""
    chance = random.Random(17)
    since = WINDOWS["day"].origin(now)
    chats = [make_session(make_user(f"person-{index}")) for index in range(8)]
    made = 0
    for hours_ago in range(23, -1, -1):
        busy = 2 + (6 if 8 <= (now - timedelta(hours=hours_ago)).hour % 24 <= 17 else 0)
        for _ in range(chance.randint(busy // 2, busy)):
            started = now - timedelta(hours=hours_ago, minutes=chance.randint(0, 59))
            if not since <= started <= now:
                continue
            status = chance.choices([TurnStatus.COMPLETED, TurnStatus.FAILED, TurnStatus.STOPPED, TurnStatus.INTERRUPTED],
                                    weights=[85, 7, 5, 3])[0]
            tools = tuple((chance.choice(TOOLS), round(chance.lognormvariate(-0.5, 0.9), 2),
                           "failed" if chance.random() < 0.06 else "completed") for _ in range(chance.randint(0, 4)))
            turn_at(chance.choice(chats), started, seconds=round(chance.lognormvariate(1.6, 0.6), 2),
                    first_token=round(chance.lognormvariate(-0.3, 0.5), 2), status=status,
                    retries=chance.choices([0, 1, 2], weights=[90, 8, 2])[0],
                    denials=chance.choices([0, 1], weights=[94, 6])[0], tools=tools)
            made += 1
    return made


def test_staff_see_a_day_of_turns_drawn_as_charts(daphne_server, page):
    turns = a_day_of_work(timezone.now())
    staff = make_user(portable=True, is_staff=True, is_superuser=True)
    page.add_init_script(LISTEN_FOR_VIOLATIONS)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{daphne_server.http_url}/admin/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.locator("#dashboard-module")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/admin-index.png")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator(".ops-dashboard[data-drawn=true]")).to_be_visible()
    expect(page.locator("#total-turns")).to_have_text(str(turns))
    for chart in CHARTS:
        drawn = page.evaluate("(id) => { const chart = Chart.getChart(id); return chart && "
                              "chart.data.datasets.map((set) => set.data.length); }", chart)
        assert drawn and all(drawn), (chart, drawn)
    bars = page.evaluate("() => Chart.getChart('chart-turns').data.datasets"
                         ".reduce((sum, set) => sum + set.data.reduce((a, b) => a + b, 0), 0)")
    assert bars == turns  # every turn of the day is in a bar
    assert page.evaluate("window.cspViolations") == []
    page.screenshot(path=f"{SCREENSHOTS}/admin-dashboard.png", full_page=True)

    page.get_by_role("link", name="Last week").click()
    expect(page.locator(".dashboard-windows [aria-current=page]")).to_have_text("Last week")
    expect(page.locator(".ops-dashboard[data-drawn=true]")).to_be_visible()
    assert page.evaluate("Chart.getChart('chart-users').data.labels.length") == 28

    page.emulate_media(color_scheme="dark")
    page.reload()
    expect(page.locator(".ops-dashboard[data-drawn=true]")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/admin-dashboard-dark.png", full_page=True)
