"""Schedules: cron with a timezone, next_run_at, one run per due time whatever the number of workers, missed times
run once, quotas, bad cron, and a schedule whose agent was deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun, RunStatus, RunTrigger, Schedule
from agents.schedules import do_run_due_schedules, next_run_time
from tests.agents.conftest import create_agent, greeting_pipeline, two_waits_and_a_join, wait_for, wait_for_run

pytestmark = pytest.mark.django_db


def schedule(api, agent_id, **body):
    response = api.post(f"/api/agents/{agent_id}/schedules/", body, format="json")
    assert response.status_code == 201, response.data
    return response.data


def test_a_schedule_says_when_it_runs_next_in_its_timezone(api):
    agent_id = create_agent(api, greeting_pipeline())
    made = schedule(api, agent_id, cron="30 9 * * *", timezone="Asia/Tokyo")
    assert set(made) >= {"id", "cron", "timezone", "next_run_at"}
    assert made["cron"] == "30 9 * * *" and made["timezone"] == "Asia/Tokyo"
    next_at = datetime.fromisoformat(made["next_run_at"])
    assert next_at > timezone.now() and next_at - timezone.now() <= timedelta(days=1)
    assert (next_at.astimezone(UTC).hour, next_at.minute) == (0, 30)  # 9:30 in Tokyo is 0:30 UTC
    utc = schedule(api, agent_id, cron="0 12 * * *")
    assert utc["timezone"] == "UTC"
    listed = api.get(f"/api/agents/{agent_id}/schedules/").data
    assert listed["count"] == 2 and {item["id"] for item in listed["results"]} == {made["id"], utc["id"]}
    assert api.get(f"/api/agents/{agent_id}/").data["next_run_at"] == min(made["next_run_at"], utc["next_run_at"])
    assert api.delete(f"/api/schedules/{made['id']}/").status_code == 204
    assert api.delete(f"/api/schedules/{made['id']}/").status_code == 404


def test_a_timezone_with_summer_time_moves_the_utc_time():
    winter = next_run_time("0 9 * * *", "Europe/Paris", after=datetime(2026, 1, 10, tzinfo=UTC))
    summer = next_run_time("0 9 * * *", "Europe/Paris", after=datetime(2026, 7, 10, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", "* * * *", "* * * * * * *", "", 5, None,
                                  "0 0 31 2 *", "*/0 * * * *", "x" * 200])
def test_bad_cron_is_a_clear_400(api, cron):
    agent_id = create_agent(api, greeting_pipeline())
    response = api.post(f"/api/agents/{agent_id}/schedules/", {"cron": cron}, format="json")
    assert response.status_code == 400 and response.data["code"] == "bad_cron", response.data
    assert "cron" in response.data["message"]
    assert Schedule.objects.count() == 0


@pytest.mark.parametrize(("body", "code"), [
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "bad_timezone"),
    ({"cron": "* * * * *", "timezone": 3}, "bad_timezone"),
    ({"cron": "* * * * *", "inputs": {"ghost": {"x": 1}}}, "bad_inputs"),
    ({"cron": "* * * * *", "inputs": {"greet": {"template": 5}}}, "bad_inputs"),
    ({"cron": "* * * * *", "every": "day"}, "invalid"),
])
def test_bad_timezones_and_inputs_are_refused(api, body, code):
    agent_id = create_agent(api, greeting_pipeline())
    response = api.post(f"/api/agents/{agent_id}/schedules/", body, format="json")
    assert response.status_code == 400 and response.data["code"] == code, response.data


def test_another_users_agent_and_schedule_are_not_found(api, client):
    from rest_framework.test import APIClient

    from tests.factories import make_user
    agent_id = create_agent(api, greeting_pipeline())
    made = schedule(api, agent_id, cron="* * * * *")
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.post(f"/api/agents/{agent_id}/schedules/", {"cron": "* * * * *"}, format="json").status_code == 404
    assert other.get(f"/api/agents/{agent_id}/schedules/").status_code == 404
    assert other.delete(f"/api/schedules/{made['id']}/").status_code == 404


def test_times_missed_while_no_worker_ran_are_run_once(api):
    agent_id = create_agent(api, greeting_pipeline())
    made = schedule(api, agent_id, cron="*/5 * * * *", inputs={"greet": {"values": {"name": "Grace"}}})
    Schedule.objects.filter(pk=made["id"]).update(next_run_at=timezone.now() - timedelta(hours=3))  # 36 times missed
    [run_id] = do_run_due_schedules()
    run = AgentRun.objects.get(pk=run_id)
    assert run.trigger == RunTrigger.SCHEDULE and run.inputs == {"greet": {"values": {"name": "Grace"}}}
    moved = Schedule.objects.get(pk=made["id"])
    assert moved.next_run_at > timezone.now() and moved.last_run_id == run.id and moved.last_error == ""
    assert do_run_due_schedules() == []
    assert api.get(f"/api/runs/{run_id}/").data["trigger"] == "schedule"


def test_quotas_apply_to_scheduled_runs(api, settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_QUEUED_RUNS_PER_USER": 1}
    agent_id = create_agent(api, two_waits_and_a_join(0))
    api.post(f"/api/agents/{agent_id}/runs/", {}, format="json")  # the one run allowed, still queued
    made = schedule(api, agent_id, cron="0 * * * *")
    Schedule.objects.filter(pk=made["id"]).update(next_run_at=timezone.now() - timedelta(minutes=1))
    assert do_run_due_schedules() == []
    refused = Schedule.objects.get(pk=made["id"])
    assert refused.last_error.startswith("too_many_runs:") and refused.next_run_at > timezone.now()
    assert AgentRun.objects.filter(trigger=RunTrigger.SCHEDULE).count() == 0
    assert "too_many_runs" in api.get(f"/api/schedules/{made['id']}/").data["last_error"]


def test_a_schedule_of_a_deleted_agent_goes_with_it(api):
    agent_id = create_agent(api, greeting_pipeline())
    made = schedule(api, agent_id, cron="* * * * *")
    Schedule.objects.filter(pk=made["id"]).update(next_run_at=timezone.now() - timedelta(minutes=1))
    assert api.delete(f"/api/agents/{agent_id}/").status_code == 204
    assert do_run_due_schedules() == []
    assert api.get(f"/api/schedules/{made['id']}/").status_code == 404
    assert AgentRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_several_workers_queue_each_due_time_exactly_once(api, start_worker):
    """Three real workers look for due schedules five times a second; twelve schedules, each due (and long
    overdue), each run once: the claims race, and every claim but one of each time comes away empty."""
    agent_ids = [create_agent(api, greeting_pipeline(), name=f"scheduled {n}") for n in range(3)]
    made = [schedule(api, agent_ids[n % 3], cron="0 0 1 1 *") for n in range(12)]  # next due next year
    Schedule.objects.update(next_run_at=timezone.now() - timedelta(days=2))
    workers = [start_worker(COPILOT_SCHEDULER_SECONDS="0.2") for _ in range(3)]
    wait_for(lambda: Schedule.objects.filter(next_run_at__lte=timezone.now()).count(), lambda due: due == 0,
             what="the due schedules")
    runs = list(AgentRun.objects.filter(trigger=RunTrigger.SCHEDULE))
    assert len(runs) == 12
    assert sorted(str(s.last_run_id) for s in Schedule.objects.all()) == sorted(str(run.id) for run in runs)
    for run in runs:
        assert wait_for_run(run.id).status == RunStatus.COMPLETED
    assert len(made) == 12 and all(worker.process.poll() is None for worker in workers)
