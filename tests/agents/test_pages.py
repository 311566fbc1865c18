"""The agent pages (the library, an agent with its graph and runs) and the admin of agents and runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.actions import do_create_agent, do_enqueue_run
from agents.models import AgentRun, NodeStatus, RunStatus, RunTrigger
from tests.agents.conftest import greeting_pipeline, two_waits_and_a_join
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client):
    user = make_user("ada")
    client.force_login(user)
    return user


def finished_run(agent):
    """A run as a worker leaves it: every node completed with timings, outputs saved."""
    run = do_enqueue_run(agent=agent)
    start = timezone.now()
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, started_at=start, heartbeat_at=start,
                                              finished_at=start + timedelta(seconds=1.5),
                                              outputs={"join": {"text": "waited 1s and 1s"}})
    for index, node in enumerate(run.nodes.all()):
        node.status, node.input, node.output = NodeStatus.COMPLETED, {"seconds": 1}, {"seconds": 1}
        node.started_at, node.finished_at = start + timedelta(milliseconds=index), start + timedelta(seconds=1)
        node.save()
    return run


def test_pages_need_a_login(client):
    for path in ["/agents/", f"/agents/{'0' * 8}-0000-0000-0000-{'0' * 12}/"]:
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_the_library_lists_the_users_agents_only(client, owner):
    do_create_agent(owner_id=owner.pk, name="Greeter", description="says hello", graph=greeting_pipeline())
    do_create_agent(owner_id=make_user().pk, name="Somebody else's", graph=greeting_pipeline())
    page = client.get("/agents/")
    assert page.status_code == 200
    assert b"Greeter" in page.content and b"says hello" in page.content and b"v1" in page.content
    assert b"Somebody else" not in page.content


def test_an_agent_page_shows_its_graph_as_tables_and_its_runs_per_node(client, owner):
    agent = do_create_agent(owner_id=owner.pk, name="Waiter", description="waits", graph=two_waits_and_a_join(1))
    run = finished_run(agent)
    page = client.get(f"/agents/{agent.id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<caption>Nodes</caption>" in html and "<caption>Links</caption>" in html
    assert "left.seconds → values.l" in html  # what feeds the join node
    assert "<td>left</td><td>seconds</td><td>join</td><td>values.l</td>" in html
    assert f'id="run-{run.id}"' in html and "took 1.50 s" in html
    assert html.count('class="status status-completed"') >= 4  # the run and its three nodes
    assert "+0 ms" in html and "+2 ms" in html and "1000 ms" in html
    assert "waited 1s and 1s" in html


def test_another_users_agent_is_not_found(client, owner):
    theirs = do_create_agent(owner_id=make_user().pk, name="Theirs", graph=greeting_pipeline())
    assert client.get(f"/agents/{theirs.id}/").status_code == 404
    assert client.post(f"/agents/{theirs.id}/run/").status_code == 404
    run = do_enqueue_run(agent=theirs)
    assert client.post(f"/agents/runs/{run.id}/cancel/").status_code == 404
    assert AgentRun.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_run_and_cancel_from_the_page(client, owner):
    agent = do_create_agent(owner_id=owner.pk, name="Waiter", graph=two_waits_and_a_join(1))
    queued = client.post(f"/agents/{agent.id}/run/", {"inputs": '{"left": {"seconds": 0}}'})
    assert queued.status_code == 302 and queued.url == f"/agents/{agent.id}/"
    run = AgentRun.objects.get()
    assert run.inputs == {"left": {"seconds": 0}}
    page = client.get(queued.url).content.decode()
    assert f"Run {run.id} queued." in page and "Cancel" in page
    client.post(f"/agents/runs/{run.id}/cancel/")
    assert AgentRun.objects.get().status == RunStatus.CANCELLED
    refused = client.post(f"/agents/{agent.id}/run/", {"inputs": '{"left": {"seconds": -1}}'})
    assert refused.status_code == 400 and b"is less than the minimum of 0" in refused.content
    assert client.post(f"/agents/{agent.id}/run/", {"inputs": "{nope"}).status_code == 400
    assert AgentRun.objects.count() == 1


def test_the_admin_filters_stuck_runs_and_cancels_them(client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    agent = do_create_agent(owner_id=admin.pk, name="Waiter", graph=two_waits_and_a_join(1))
    stuck, fresh, failed = (do_enqueue_run(agent=agent) for _ in range(3))
    long_ago = timezone.now() - timedelta(hours=1)
    AgentRun.objects.filter(pk=stuck.pk).update(status=RunStatus.RUNNING, heartbeat_at=long_ago)
    AgentRun.objects.filter(pk=fresh.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    AgentRun.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED, error="node 'left' failed")

    listed = client.get("/admin/agents/agentrun/?stuck=running").content.decode()
    assert str(stuck.id) in listed and str(fresh.id) not in listed and str(failed.id) not in listed
    failed_only = client.get("/admin/agents/agentrun/?status__exact=failed").content.decode()
    assert str(failed.id) in failed_only and str(stuck.id) not in failed_only
    assert client.get(f"/admin/agents/agentrun/{stuck.id}/change/").status_code == 200
    assert client.get(f"/admin/agents/agent/{agent.id}/change/").status_code == 200

    response = client.post("/admin/agents/agentrun/", {"action": "cancel_runs",
                                                       "_selected_action": [str(stuck.id), str(failed.id)]})
    assert response.status_code == 302
    assert AgentRun.objects.get(pk=stuck.pk).status == RunStatus.CANCELLED
    assert AgentRun.objects.get(pk=failed.pk).status == RunStatus.FAILED  # ended runs are left as they are


def test_the_library_page_installs_a_copy(client, owner, library):
    page = client.get("/agents/library/")
    assert page.status_code == 200
    html = page.content.decode()
    for entry in library:
        assert entry["name"] in html and f'action="/agents/library/{entry["slug"]}/install/"' in html
    installed = client.post("/agents/library/split-the-bill/install/")
    assert installed.status_code == 302
    agent = owner.agents.get()
    assert installed["Location"] == f"/agents/{agent.id}/" and agent.name == "Split the bill"
    assert "Split the bill" in client.get(installed["Location"]).content.decode()
    assert client.post("/agents/library/nope/install/").status_code == 404
    assert client.get("/agents/library/split-the-bill/install/").status_code == 405


def test_the_agent_page_schedules_and_shows_the_next_run(client, owner):
    agent = do_create_agent(owner_id=owner.pk, name="daily", graph=greeting_pipeline())
    bad = client.post(f"/agents/{agent.id}/schedules/", {"cron": "every day", "timezone": "UTC"})
    assert bad.status_code == 400 and "is not five fields" in bad.content.decode()
    made = client.post(f"/agents/{agent.id}/schedules/", {"cron": "0 7 * * *", "timezone": "Europe/Paris"})
    assert made.status_code == 302
    schedule = agent.schedules.get()
    page = client.get(f"/agents/{agent.id}/").content.decode()
    assert "0 7 * * *" in page and "Europe/Paris" in page
    assert f'datetime="{schedule.next_run_at.isoformat()}"'.replace("+00:00", "+00:00") in page
    assert client.post(f"/agents/schedules/{schedule.id}/delete/").status_code == 302
    assert not agent.schedules.exists()


def test_the_agent_page_makes_rotates_and_revokes_webhooks(client, owner):
    agent = do_create_agent(owner_id=owner.pk, name="hooked", graph=greeting_pipeline())
    made = client.post(f"/agents/{agent.id}/webhooks/", follow=True).content.decode()
    webhook = agent.webhooks.get()
    assert f"shown this once: {webhook.secret}" in made and f"/api/hooks/{webhook.id}/" in made
    assert "openssl dgst -sha256 -hmac" in made
    rotated = client.post(f"/agents/webhooks/{webhook.id}/rotate/", follow=True).content.decode()
    webhook.refresh_from_db()
    assert f"shown this once: {webhook.secret}" in rotated
    assert webhook.secret not in client.get(f"/agents/{agent.id}/").content.decode()  # once only
    client.post(f"/agents/webhooks/{webhook.id}/revoke/")
    assert f"/api/hooks/{webhook.id}/" not in client.get(f"/agents/{agent.id}/").content.decode()


def test_the_agent_page_monitors_its_runs(client, owner):
    agent = do_create_agent(owner_id=owner.pk, name="watched", graph=two_waits_and_a_join())
    done = finished_run(agent)
    failed = do_enqueue_run(agent=agent, trigger=RunTrigger.SCHEDULE)
    AgentRun.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED, error="boom")
    old = do_enqueue_run(agent=agent, trigger=RunTrigger.WEBHOOK)
    AgentRun.objects.filter(pk=old.pk).update(status=RunStatus.COMPLETED, queued_at=timezone.now() - timedelta(days=3))
    html = client.get(f"/agents/{agent.id}/").content.decode()
    history = html[html.index('class="run-history"'):html.index("</table>", html.index('class="run-history"'))]
    assert history.count("<tr data-run-id=") == 3  # three runs, each followed while unfinished
    for trigger in ("api", "schedule", "webhook"):
        assert f"trigger-{trigger}" in history
    assert "1.50 s" in history
    # The chart of the last 24 hours counts the two recent runs by status; the 14 days all three.
    assert "<desc id=\"chart-desc\">1 completed, 1 failed</desc>" in html
    fortnight = client.get(f"/agents/{agent.id}/?window=14d").content.decode()
    assert "<desc id=\"chart-desc\">2 completed, 1 failed</desc>" in fortnight
    assert client.get(f"/agents/{agent.id}/?window=nope").status_code == 200
    # The finished run's nodes as a timeline: one bar per node, with its timing.
    timeline = html[html.index(f'id="run-{done.id}"'):]
    timeline = timeline[timeline.index('class="node-timeline"'):timeline.index("</svg>")]
    assert timeline.count("<rect") == 3 and "took 1000 ms" in timeline and "join (text)" in timeline
