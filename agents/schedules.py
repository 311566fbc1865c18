"""Schedules: check a cron expression and timezone (`check_*`), save and delete schedules (`do_*`), and the
scheduler every agents worker runs.

Exactly once, with any number of workers: a worker claims a due schedule by moving its `next_run_at` on, in the
transaction that queues the run, with a conditional UPDATE (`WHERE next_run_at = <the due time>`) — on PostgreSQL
after `SELECT … FOR UPDATE SKIP LOCKED`, so workers pass over the rows another is claiming instead of waiting. A
second claimer of the same time finds the row moved on and queues nothing. The next time is computed from *now*,
not from the time that was due, so times missed while no worker ran are run once, not once each.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from channels.db import database_sync_to_async
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from agents.actions import do_enqueue_run
from agents.graphs import check_graph, check_run_inputs
from agents.models import Agent, RunTrigger, Schedule
from agents.selectors import latest_version
from core.conf import copilot_setting
from core.errors import ApplicationError, QuotaExceeded

logger = logging.getLogger(__name__)

MAX_CRON_CHARS = 100
CLAIM_BATCH = 100


class BadCron(ApplicationError):
    code = "bad_cron"
    http_status = 400


class BadTimezone(ApplicationError):
    code = "bad_timezone"
    http_status = 400


def check_timezone(name: object) -> str:
    if name is None:
        return "UTC"
    if not isinstance(name, str) or not name or len(name) > 64:
        raise BadTimezone("timezone: an IANA name like Europe/Paris, or UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTimezone(f"timezone: unknown timezone {name!r}; use an IANA name like Europe/Paris, or UTC") from None
    if name not in available_timezones() and name != "UTC":
        raise BadTimezone(f"timezone: unknown timezone {name!r}; use an IANA name like Europe/Paris, or UTC")
    return name


def check_cron(cron: object) -> str:
    """A cron expression of five fields (minute hour day-of-month month day-of-week), as croniter reads them."""
    if not isinstance(cron, str) or not cron.strip():
        raise BadCron("cron: a cron expression is required, like \"0 9 * * 1-5\" (9:00 on weekdays)")
    cron = " ".join(cron.split())
    if len(cron) > MAX_CRON_CHARS:
        raise BadCron(f"cron: at most {MAX_CRON_CHARS} characters")
    if len(cron.split(" ")) != 5 and not cron.startswith("@"):
        raise BadCron(f"cron: {cron!r} is not five fields (minute hour day-of-month month day-of-week), "
                      "like \"*/15 * * * *\"")
    if not croniter.is_valid(cron):
        raise BadCron(f"cron: {cron!r} is not a cron expression croniter can read, like \"*/15 * * * *\"")
    try:
        next_run_time(cron, "UTC", after=timezone.now())
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        raise BadCron(f"cron: {cron!r} never comes round: {exc}") from None
    return cron


def next_run_time(cron: str, timezone_name: str, *, after: datetime) -> datetime:
    """The first time of the cron expression after `after`, read in the timezone; as an aware UTC datetime."""
    local = after.astimezone(ZoneInfo(timezone_name))
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


def do_create_schedule(*, agent: Agent, cron: object, inputs: Any = None, timezone_name: object = None) -> Schedule:
    """Save a schedule of the agent; its inputs are checked against the agent's newest version now (and again at
    each run). Raises BadCron, BadTimezone, InputsError or QuotaExceeded (MAX_SCHEDULES_PER_AGENT)."""
    cron, timezone_name = check_cron(cron), check_timezone(timezone_name)
    version = latest_version(agent)
    checked = check_run_inputs(check_graph(version.graph), inputs) if version else (inputs or {})
    limit = copilot_setting("MAX_SCHEDULES_PER_AGENT")
    if agent.schedules.count() >= limit:
        raise QuotaExceeded(f"the agent has {limit} schedules, the most allowed", code="too_many_schedules")
    return Schedule.objects.create(agent=agent, cron=cron, timezone=timezone_name, inputs=checked,
                                   next_run_at=next_run_time(cron, timezone_name, after=timezone.now()))


def do_delete_schedule(*, schedule: Schedule) -> None:
    schedule.delete()


def _claim_and_queue(schedule_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    """Claim one due time of a schedule and queue its run, in one transaction. Returns the run's id; None when
    another worker claimed it, or the run was refused (the reason is kept in `last_error`; the time is spent)."""
    with transaction.atomic():
        due = Schedule.objects.filter(pk=schedule_id, next_run_at__lte=now)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        schedule = due.select_related("agent").first()
        if schedule is None:
            return None  # claimed (or being claimed) by another worker, or deleted with its agent
        moved_on = next_run_time(schedule.cron, schedule.timezone, after=now)
        if not Schedule.objects.filter(pk=schedule.pk, next_run_at=schedule.next_run_at).update(
                next_run_at=moved_on, last_run_at=now):
            return None
        run_id, error = None, ""
        try:
            with transaction.atomic():
                run_id = do_enqueue_run(agent=schedule.agent, inputs=schedule.inputs or None,
                                        trigger=RunTrigger.SCHEDULE).id
        except ApplicationError as exc:  # quotas, inputs the agent's new version refuses, an agent with no graph
            error = f"{exc.code}: {exc.message}"
            logger.warning("schedule=%s agent=%s: no run at %s: %s", schedule.pk, schedule.agent_id, now, error)
        Schedule.objects.filter(pk=schedule.pk).update(last_run_id=run_id, last_error=error)
        return run_id


def do_run_due_schedules(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Queue one run of every schedule due by `now` that this call claims; returns the runs queued."""
    now = now or timezone.now()
    due = list(Schedule.objects.filter(next_run_at__lte=now).order_by("next_run_at").values_list("id", flat=True)[
        :CLAIM_BATCH])
    queued = []
    for schedule_id in due:
        run_id = _claim_and_queue(schedule_id, now)
        if run_id is not None:
            queued.append(run_id)
    return queued


async def schedule_periodically() -> None:
    """The scheduler of an agents worker: look for due schedules every SCHEDULER_SECONDS."""
    run_due = database_sync_to_async(do_run_due_schedules)
    while True:
        try:
            queued = await run_due()
            if queued:
                logger.info("scheduler queued %d run(s)", len(queued))
        except DatabaseError as exc:
            logger.warning("the scheduler could not look at the schedules (%s); trying again", exc)
        except Exception:
            logger.exception("the scheduler failed; trying again")
        await asyncio.sleep(copilot_setting("SCHEDULER_SECONDS"))
