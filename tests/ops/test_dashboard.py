"""The staff dashboard (/admin/dashboard/): its numbers against rows made here, a fixed number of aggregate queries
whatever the rows, and who may see it. PostgreSQL computes the percentiles itself (DATABASE_URL=postgres://…);
SQLite reads the durations and interpolates the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import Approval, ToolCall, Turn, TurnStatus
from ops.selectors import WINDOWS, dashboard, percentile_cont
from tests.factories import make_session, make_user, text_tool
from tests.web.builders import saved_turn

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 34, tzinfo=UTC)
RUN_BLOCK = "mcp__copilot__run_block"
DASHBOARD = "/admin/dashboard/"
# Aggregate queries of one dashboard: turns per bucket, the window's totals, tool calls per bucket and per tool,
# approvals per bucket;
# SQLite reads the turns' durations once more (it has no percentile function).
QUERIES = {"postgresql": 5, "sqlite": 6}


def turn_at(session, started: datetime, *, seconds: float, first_token: float | None = None,
            status: str = TurnStatus.COMPLETED, retries: int = 0, denials: int = 0,
            tools: tuple[tuple[str, float, str], ...] = ()) -> Turn:
    """A finished turn that started at `started` and took `seconds`, its tool calls (name, seconds, status)
    started one after the other from its start."""
    turn = saved_turn(session, prompt="a question", answer="an answer", status=status,
                      tools=[{**text_tool("x"), "name": name, "output": {"text": "x"}} for name, _, _ in tools])
    Turn.objects.filter(pk=turn.pk).update(
        started_at=started, finished_at=started + timedelta(seconds=seconds), model_retries=retries,
        policy_denials=denials, first_token_at=started + timedelta(seconds=first_token) if first_token else None)
    for call, (_, call_seconds, call_status) in zip(turn.tool_calls.order_by("part_index"), tools, strict=True):
        ToolCall.objects.filter(pk=call.pk).update(started_at=started, status=call_status,
                                                   finished_at=started + timedelta(seconds=call_seconds))
    return turn


@pytest.fixture
def day_of_turns():
    """Four turns of three users in the day before NOW, and one older that no window of a day shows."""
    ada, bea, cy = make_user("ada"), make_user("bea"), make_user("cy")
    ada_chat, bea_chat, cy_chat = make_session(ada), make_session(bea), make_session(cy)
    turn_at(ada_chat, NOW.replace(minute=5), seconds=2.0, first_token=0.5,
            tools=((RUN_BLOCK, 1.0, "completed"), (RUN_BLOCK, 3.0, "completed")))
    turn_at(ada_chat, NOW.replace(minute=20), seconds=4.0, first_token=1.5, status=TurnStatus.FAILED, retries=2,
            denials=1, tools=(("Read", 0.1, "failed"),))
    turn_at(bea_chat, NOW.replace(hour=10, minute=10), seconds=6.0, first_token=2.5,
            tools=((RUN_BLOCK, 2.0, "completed"),))
    turn_at(bea_chat, NOW - timedelta(days=2), seconds=9.0, first_token=9.0, tools=((RUN_BLOCK, 9.0, "completed"),))
    turn_at(cy_chat, NOW - timedelta(hours=23, minutes=4), seconds=1.0, status=TurnStatus.STOPPED)  # 13:30 yesterday


def test_percentile_cont_interpolates_as_postgresql_does():
    assert percentile_cont([1.0, 2.0, 4.0, 6.0], 0.5) == 3.0
    assert percentile_cont([1.0, 2.0, 4.0, 6.0], 0.95) == pytest.approx(5.7)
    assert percentile_cont([7.0], 0.95) == 7.0
    assert percentile_cont([None, 2.0, None], 0.5) == 2.0
    assert percentile_cont([], 0.5) is None


def test_a_day_of_turns_by_status_latency_tools_failures_and_users(day_of_turns):
    figures = dashboard(WINDOWS["day"], now=NOW)

    assert figures["buckets"][0] == "2026-06-14T13:00:00+00:00" and figures["buckets"][-1] == "2026-06-15T12:00:00+00:00"
    assert len(figures["buckets"]) == 24
    turns = figures["turns"]
    assert (turns["completed"][23], turns["failed"][23], turns["completed"][21], turns["stopped"][0]) == (1, 1, 1, 1)
    assert sum(map(sum, turns.values())) == 4  # the turn of two days ago is outside the window
    assert turns["running"] == [0] * 24
    assert figures["users"][23] == 1 and figures["users"][21] == 1 and figures["users"][0] == 1
    assert sum(figures["users"]) == 3

    assert figures["ttft"]["p50"][23] == pytest.approx(1.0, abs=1e-3)
    assert figures["ttft"]["p95"][23] == pytest.approx(1.45, abs=1e-3)
    assert figures["ttft"]["p50"][0] is None  # a stopped turn that never streamed
    assert figures["ttft"]["p50"][5] is None  # no turn at all
    assert figures["duration"]["p50"][21] == pytest.approx(6.0, abs=1e-3)

    failures = figures["failures"]
    assert (failures["failed_turns"][23], failures["failed_tool_calls"][23]) == (1, 1)
    assert (failures["policy_denials"][23], failures["model_retries"][23]) == (1, 2)
    assert sum(failures["model_retries"]) == 2

    tools = figures["tools"]
    assert [tool["tool"] for tool in tools] == [RUN_BLOCK, "Read"]
    run_block, read = tools
    assert (run_block["calls"], run_block["failed"]) == (3, 0)
    assert run_block["p50"] == pytest.approx(2.0, abs=1e-3) and run_block["p95"] == pytest.approx(2.9, abs=1e-3)
    assert (read["calls"], read["failed"]) == (1, 1) and read["p50"] == pytest.approx(0.1, abs=1e-3)

    totals = figures["totals"]
    assert {key: totals[key] for key in ("turns", "failed_turns", "users", "model_retries", "policy_denials",
                                         "tool_calls", "failed_tool_calls")} == {
        "turns": 4, "failed_turns": 1, "users": 3, "model_retries": 2, "policy_denials": 1, "tool_calls": 4,
        "failed_tool_calls": 1}
    assert totals["ttft_p50"] == pytest.approx(1.5, abs=1e-3) and totals["ttft_p95"] == pytest.approx(2.4, abs=1e-3)
    assert totals["duration_p50"] == pytest.approx(3.0, abs=1e-3)
    assert totals["duration_p95"] == pytest.approx(5.7, abs=1e-3)


def test_approvals_are_counted_by_how_they_ended_in_the_bucket_they_were_asked(day_of_turns):
    turn = Turn.objects.filter(started_at__gte=NOW.replace(minute=0)).first()
    outcomes = [("allow", "user", 0), ("deny", "user", 0), ("deny", "timeout", 0), ("deny", "cancel", 0),
                ("", "", 0), ("allow", "user", 2)]  # the last asked two hours earlier
    for number, (decision, by, hours_before) in enumerate(outcomes):
        approval = Approval.objects.create(turn=turn, tool_use_id=f"toolu_{number}", tool_name=RUN_BLOCK,
                                           expires_at=NOW + timedelta(minutes=10), decision=decision, decided_by=by)
        Approval.objects.filter(pk=approval.pk).update(requested_at=NOW.replace(minute=30) - timedelta(
            hours=hours_before))
    figures = dashboard(WINDOWS["day"], now=NOW)
    latest = {name: series[23] for name, series in figures["approvals"].items()}
    assert latest == {"allowed": 1, "denied": 1, "timed_out": 1, "stopped_or_cancelled": 1, "waiting": 1}
    assert figures["approvals"]["allowed"][21] == 1
    assert (figures["totals"]["approvals"], figures["totals"]["approvals_waiting"]) == (6, 1)


def test_an_hour_and_a_week_bucket_the_same_rows_otherwise(day_of_turns):
    hour = dashboard(WINDOWS["hour"], now=NOW)
    assert len(hour["buckets"]) == 12 and hour["buckets"][-1] == "2026-06-15T12:30:00+00:00"
    assert hour["turns"]["completed"][6] == 1 and hour["turns"]["failed"][9] == 1  # 12:05 and 12:20 from 11:35
    assert hour["totals"]["turns"] == 2
    week = dashboard(WINDOWS["week"], now=NOW)
    assert len(week["buckets"]) == 28 and week["totals"]["turns"] == 5  # two days ago is inside a week
    # Six-hour buckets from midnight UTC: 12:05 and 12:20 fall in the last, 10:10 in the one before.
    assert (week["turns"]["completed"][-1], week["turns"]["failed"][-1], week["turns"]["completed"][-2]) == (1, 1, 1)


def queries_of_one_dashboard() -> int:
    with CaptureQueriesContext(connection) as queries:
        dashboard(WINDOWS["day"], now=NOW)
    return len(queries)


def test_the_dashboard_is_a_fixed_number_of_aggregate_queries_whatever_the_rows(day_of_turns):
    assert queries_of_one_dashboard() == QUERIES[connection.vendor]
    more = make_session(make_user())
    for minute in range(30):
        turn_at(more, NOW.replace(minute=minute), seconds=1 + minute, first_token=0.2,
                tools=((RUN_BLOCK, 0.5, "completed"), (f"mcp__copilot__tool_{minute % 4}", 0.2, "failed")))
    assert queries_of_one_dashboard() == QUERIES[connection.vendor]
    assert dashboard(WINDOWS["day"], now=NOW)["totals"]["turns"] == 34


# --- the page ---


def staff(*, superuser: bool = False, perms: tuple[str, ...] = ("view_turn",)):
    user = make_user(is_staff=True, is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="chat", codename__in=perms))
    return user


def test_the_page_shows_the_figures_of_the_window_it_is_asked_for(client):
    user = staff()
    chat = make_session(make_user())
    now = timezone.now()
    turn_at(chat, now - timedelta(minutes=2), seconds=3.0, first_token=0.4, tools=((RUN_BLOCK, 1.5, "completed"),))
    turn_at(chat, now - timedelta(minutes=1), seconds=2.0, status=TurnStatus.FAILED, denials=2)
    turn_at(chat, now - timedelta(days=3), seconds=2.0)
    client.force_login(user)

    response = client.get(DASHBOARD, {"window": "hour"})
    assert response.status_code == 200
    html = response.content.decode()
    assert '<dd id="total-turns">2</dd>' in html
    assert '<dd id="total-failed-turns" class="attention">1</dd>' in html
    assert '<dd id="total-denials">2</dd>' in html
    assert f"<code>{RUN_BLOCK}</code>" in html
    assert 'aria-current="page">Last hour</a>' in html
    figures = json.loads(html.split('<script id="dashboard-figures" type="application/json">')[1].split("</script>")[0])
    assert figures["window"] == "hour" and figures["totals"]["turns"] == 2 and len(figures["buckets"]) == 12
    assert client.get(DASHBOARD, {"window": "week"}).context["figures"]["totals"]["turns"] == 3
    assert client.get(DASHBOARD).context["window"].name == "day"


def test_a_window_that_is_not_one_of_the_three_is_a_clear_400(client):
    client.force_login(staff())
    response = client.get(DASHBOARD, {"window": "year"})
    assert response.status_code == 400


def test_only_staff_who_may_view_turns_see_it(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    client.force_login(make_user())
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    client.force_login(staff(perms=()))
    assert client.get(DASHBOARD).status_code == 403
    client.force_login(staff(superuser=True, perms=()))
    assert client.get(DASHBOARD).status_code == 200


def test_the_admin_index_links_to_it_beside_needs_attention(client):
    client.force_login(staff(perms=("view_turn", "view_toolcall")))
    html = client.get("/admin/").content.decode()
    assert html.index('id="moderation-module"') < html.index('id="dashboard-module"')
    assert f'<a href="{DASHBOARD}">Dashboard</a>' in html
    client.force_login(staff(perms=("view_toolcall",)))
    assert 'id="dashboard-module"' not in client.get("/admin/").content.decode()


def test_the_page_makes_as_many_queries_for_many_turns_as_for_few(client):
    client.force_login(staff())
    chat = make_session(make_user())
    now = timezone.now()

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(DASHBOARD).status_code == 200
        return len(queries)

    turn_at(chat, now - timedelta(minutes=5), seconds=1.0, tools=((RUN_BLOCK, 0.5, "completed"),))
    few = page_queries()
    for minute in range(20):
        turn_at(chat, now - timedelta(minutes=30 + minute), seconds=1.0, tools=((RUN_BLOCK, 0.5, "completed"),))
    assert page_queries() == few
