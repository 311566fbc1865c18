"""Django admin for agents and their runs: stuck and failed runs are a filter away, and can be cancelled."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone

from agents.actions import do_cancel_run
from agents.models import Agent, AgentRun, AgentRunNode, AgentVersion, RunStatus
from core.conf import copilot_setting
from core.errors import ApplicationError


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    extra = 0
    fields = ["number", "created_at", "graph"]
    readonly_fields = fields
    can_delete = False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "status", "created_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["id", "name", "description", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = ["id", "installed_from", "created_at", "updated_at"]
    inlines = [AgentVersionInline]


class StuckFilter(admin.SimpleListFilter):
    """Runs that need a look: running without a fresh heartbeat, or queued for long (no worker taking them)."""

    title = "stuck"
    parameter_name = "stuck"
    QUEUED_FOR_LONG = timedelta(minutes=5)

    def lookups(self, request, model_admin):
        return [("running", "running, heartbeat stale"), ("queued", "queued over 5 minutes")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "running":
            return queryset.filter(status=RunStatus.RUNNING,
                                   heartbeat_at__lt=now - timedelta(seconds=copilot_setting("STALE_RUN_SECONDS")))
        if self.value() == "queued":
            return queryset.filter(status=RunStatus.QUEUED, queued_at__lt=now - self.QUEUED_FOR_LONG)
        return queryset


class AgentRunNodeInline(admin.TabularInline):
    model = AgentRunNode
    extra = 0
    fields = ["position", "node_id", "block", "status", "started_at", "finished_at", "error", "input", "output"]
    readonly_fields = fields
    can_delete = False
    ordering = ["position"]


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "status", "trigger", "queued_at", "started_at", "heartbeat_at", "finished_at", "process"]
    list_filter = ["status", "trigger", StuckFilter]
    search_fields = ["id", "agent__name", "agent__owner__username", "process", "task_id"]
    list_select_related = ["agent"]
    readonly_fields = ["id", "agent", "version", "session", "trigger", "inputs", "outputs", "status", "error", "queued_at",
                       "started_at", "finished_at", "heartbeat_at", "process", "task_id"]
    inlines = [AgentRunNodeInline]
    actions = ["cancel_runs"]

    @admin.action(description="Cancel the selected runs (queued or running)", permissions=["change"])
    def cancel_runs(self, request, queryset):
        cancelled = 0
        for run in queryset.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]):
            try:
                do_cancel_run(run=run)
            except ApplicationError:
                continue  # it ended meanwhile
            cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} run(s).", messages.SUCCESS)
